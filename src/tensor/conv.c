/* conv.c - 3x3 convolution, stride 1, zero padding 1, for one image (C,H,W).
 *
 * Three tiers: the *_ref loops (obviously correct, slow, used by the tests), a
 * portable blocked C path, and the intrinsics kernels of conv_avx512.c / conv_avx2.c
 * chosen at run time (the environment variable NST_KERNEL=portable|avx2|avx512 caps
 * the choice, for tests and benchmarks). All fast paths are a direct convolution with a plain float32 sum over
 * (input channel, kh, kw) - no Winograd/FFT - so they agree with the reference (and
 * with PyTorch) to rounding.
 *
 * The gradient to the input is itself a 3x3 "same" convolution of dout with the kernel
 * flipped in space and transposed in channels:
 *   dinp[ci][h][w] = sum_{co,kh,kw} dout[co][h+1-kh][w+1-kw] * W[co][ci][kh][kw]
 *                  = sum_{co,a,b}   dout[co][h+a-1][w+b-1]   * W[co][ci][2-a][2-b]
 * so conv3x3_pack stores that kernel in p->bwd and the same forward kernels run it.
 */
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

#define CONV_KB 4 /* output channels per packed block; the kernels assume the same value */

#ifdef NST_X86
void conv3x3_run_avx512(float *out, const float *inp, const float *wpack, const float *bias,
                        const float *mask, int C_in, int C_out, int H, int W);
void conv3x3_run_avx2(float *out, const float *inp, const float *wpack, const float *bias,
                      int C_in, int C_out, int H, int W);
#endif

/* ---- reference ------------------------------------------------------------------ */

/* out is (C_out,H,W), inp is (C_in,H,W), weight is (C_out,C_in,3,3), bias is (C_out) */
void conv3x3_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                         int C_in, int C_out, int H, int W) {
    for (int co = 0; co < C_out; co++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                float s = bias ? bias[co] : 0.0f;
                for (int ci = 0; ci < C_in; ci++)
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int y = h + kh - 1, x = w + kw - 1;
                            if (y < 0 || y >= H || x < 0 || x >= W) continue;
                            s += inp[((size_t)ci * H + y) * W + x] *
                                 weight[(((size_t)co * C_in + ci) * 3 + kh) * 3 + kw];
                        }
                out[((size_t)co * H + h) * W + w] = s;
            }
}

/* dinp is (C_in,H,W), dout is (C_out,H,W), weight is (C_out,C_in,3,3).
 * Written as the scatter of the forward pass, the most literal form of the chain rule. */
void conv3x3_backward_input_ref(float *dinp, const float *dout, const float *weight,
                                int C_in, int C_out, int H, int W) {
    memset(dinp, 0, (size_t)C_in * H * W * sizeof(float));
    for (int co = 0; co < C_out; co++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                float g = dout[((size_t)co * H + h) * W + w];
                for (int ci = 0; ci < C_in; ci++)
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int y = h + kh - 1, x = w + kw - 1;
                            if (y < 0 || y >= H || x < 0 || x >= W) continue;
                            dinp[((size_t)ci * H + y) * W + x] +=
                                g * weight[(((size_t)co * C_in + ci) * 3 + kh) * 3 + kw];
                        }
            }
}

/* accumulates: dweight is (C_out,C_in,3,3), dbias is (C_out) or NULL, dout is
 * (C_out,H,W), inp is (C_in,H,W) */
void conv3x3_backward_weight_ref(float *dweight, float *dbias, const float *dout,
                                 const float *inp, int C_in, int C_out, int H, int W) {
    for (int co = 0; co < C_out; co++) {
        const float *g = dout + (size_t)co * H * W;
        if (dbias) {
            float s = 0.0f;
            for (size_t i = 0; i < (size_t)H * W; i++) s += g[i];
            dbias[co] += s;
        }
        for (int ci = 0; ci < C_in; ci++)
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) {
                    float s = 0.0f;
                    for (int h = 0; h < H; h++)
                        for (int w = 0; w < W; w++) {
                            int y = h + kh - 1, x = w + kw - 1;
                            if (y < 0 || y >= H || x < 0 || x >= W) continue;
                            s += g[(size_t)h * W + w] * inp[((size_t)ci * H + y) * W + x];
                        }
                    dweight[(((size_t)co * C_in + ci) * 3 + kh) * 3 + kw] += s;
                }
    }
}

/* ---- packing -------------------------------------------------------------------- */

/* Packs a kernel given as k(o, i, tap) (o < n_out, i < n_in) into (ceil(n_out/KB), n_in,
 * 9, KB), zero-filling the channels past n_out of the last block. */
static void pack_blocks(float *dst, const float *weight, int C_in, int n_out, int n_in,
                        int transpose_flip) {
    int nb = (n_out + CONV_KB - 1) / CONV_KB;
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < n_in; i++)
            for (int t = 0; t < 9; t++)
                for (int k = 0; k < CONV_KB; k++) {
                    int o = b * CONV_KB + k;
                    float v = 0.0f;
                    if (o < n_out) {
                        if (transpose_flip) /* out channel o = ci, in channel i = co */
                            v = weight[((size_t)i * C_in + o) * 9 + (8 - t)];
                        else
                            v = weight[((size_t)o * C_in + i) * 9 + t];
                    }
                    dst[(((size_t)b * n_in + i) * 9 + t) * CONV_KB + k] = v;
                }
}

/* Returns 0, or -1 if out of memory. weight is (C_out,C_in,3,3). */
int conv3x3_pack(conv3x3_packed *p, const float *weight, int C_in, int C_out) {
    memset(p, 0, sizeof(*p));
    size_t nf = (size_t)((C_out + CONV_KB - 1) / CONV_KB) * CONV_KB * C_in * 9;
    size_t nb = (size_t)((C_in + CONV_KB - 1) / CONV_KB) * CONV_KB * C_out * 9;
    /* 64-byte alignment keeps a block's broadcasts within as few lines as possible */
    p->fwd = aligned_alloc(64, (nf * sizeof(float) + 63) / 64 * 64);
    p->bwd = aligned_alloc(64, (nb * sizeof(float) + 63) / 64 * 64);
    if (!p->fwd || !p->bwd) {
        conv3x3_packed_free(p);
        return -1;
    }
    p->C_in = C_in;
    p->C_out = C_out;
    pack_blocks(p->fwd, weight, C_in, C_out, C_in, 0);
    pack_blocks(p->bwd, weight, C_in, C_in, C_out, 1);
    return 0;
}

void conv3x3_packed_free(conv3x3_packed *p) {
    free(p->fwd);
    free(p->bwd);
    p->fwd = p->bwd = NULL;
}

/* ---- portable path -------------------------------------------------------------- */

/* y[w] += a * x[w] for lo <= w < hi. The fixed 8-wide inner loop (and restrict) lets
 * gcc's -O2 vectorizer, which refuses loops needing a runtime epilogue, do the bulk. */
static inline void row_axpy(float *restrict y, const float *restrict x, float a, int lo, int hi) {
    int w = lo;
    for (; w + 8 <= hi; w += 8)
        for (int l = 0; l < 8; l++) y[w + l] += a * x[w + l];
    for (; w < hi; w++) y[w] += a * x[w];
}

/* out is (C_out,H,W), inp is (C_in,H,W), wpack is (ceil(C_out/KB),C_in,9,KB), bias is
 * (C_out) or NULL. One work item is one output row of KB channels; the inner loops run
 * along W with the tap's valid column range hoisted, so the compiler vectorizes them. */
static void conv_run_portable(float *out, const float *inp, const float *wpack, const float *bias,
                              int C_in, int C_out, int H, int W) {
    const size_t HW = (size_t)H * W;
    const int ncob = (C_out + CONV_KB - 1) / CONV_KB;
    const long nitems = (long)ncob * H;
#pragma omp parallel for schedule(static)
    for (long item = 0; item < nitems; item++) {
        int cob = (int)(item / H), h = (int)(item % H);
        int co0 = cob * CONV_KB;
        int nco = C_out - co0 < CONV_KB ? C_out - co0 : CONV_KB;
        float *o[CONV_KB];
        for (int k = 0; k < nco; k++) {
            o[k] = out + (size_t)(co0 + k) * HW + (size_t)h * W;
            float b = bias ? bias[co0 + k] : 0.0f;
            for (int w = 0; w < W; w++) o[k][w] = b;
        }
        const float *wb = wpack + (size_t)cob * C_in * 9 * CONV_KB;
        for (int ci = 0; ci < C_in; ci++)
            for (int kh = 0; kh < 3; kh++) {
                int y = h + kh - 1;
                if (y < 0 || y >= H) continue;
                const float *in = inp + (size_t)ci * HW + (size_t)y * W;
                for (int kw = 0; kw < 3; kw++) {
                    /* output columns w whose input column w+kw-1 is inside the image */
                    int wlo = kw == 0 ? 1 : 0, whi = kw == 2 ? W - 1 : W;
                    const float *x = in + kw - 1;
                    const float *wt = wb + ((size_t)ci * 9 + kh * 3 + kw) * CONV_KB;
                    for (int k = 0; k < nco; k++)
                        row_axpy(o[k], x, wt[k], wlo, whi);
                }
            }
    }
}

/* ---- dispatch ------------------------------------------------------------------- */

enum { K_PORTABLE, K_AVX2, K_AVX512 };

/* The best kernel this CPU runs. Cheap (cpu_init only reads cached cpuid data), so it
 * is simply asked at each call: no global state. */
static int cpu_best(void) {
#ifdef NST_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return K_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return K_AVX2;
#endif
    return K_PORTABLE;
}

/* The kernel to run: the best one, or a lower one named by NST_KERNEL (a name the CPU
 * cannot run, or an unknown one, leaves the best). Read at each call, so a test or
 * benchmark can switch paths with setenv. */
static int pick_kernel(void) {
    int best = cpu_best(), want = best;
    const char *e = getenv("NST_KERNEL");
    if (e && strcmp(e, "portable") == 0) want = K_PORTABLE;
    else if (e && strcmp(e, "avx2") == 0) want = K_AVX2;
    return want < best ? want : best;
}

const char *conv3x3_kernel_name(void) {
    switch (pick_kernel()) {
    case K_AVX512: return "avx512";
    case K_AVX2: return "avx2";
    default: return "portable";
    }
}

/* mask: NULL, or (C_out,H,W): out is zeroed where mask <= 0 (a fused ReLU backward; the
 * AVX-512 kernel does it in registers, the others in a second pass) */
static void conv_run(float *out, const float *inp, const float *wpack, const float *bias,
                     const float *mask, int C_in, int C_out, int H, int W) {
#ifdef NST_X86
    switch (pick_kernel()) {
    case K_AVX512: conv3x3_run_avx512(out, inp, wpack, bias, mask, C_in, C_out, H, W); return;
    case K_AVX2: conv3x3_run_avx2(out, inp, wpack, bias, C_in, C_out, H, W); break;
    default: conv_run_portable(out, inp, wpack, bias, C_in, C_out, H, W); break;
    }
#else
    conv_run_portable(out, inp, wpack, bias, C_in, C_out, H, W);
#endif
    if (mask) relu_backward(out, out, mask, (size_t)C_out * H * W);
}

/* out is (C_out,H,W), inp is (C_in,H,W), bias is (C_out) or NULL */
void conv3x3_forward(float *out, const float *inp, const conv3x3_packed *w, const float *bias,
                     int H, int W) {
    conv_run(out, inp, w->fwd, bias, NULL, w->C_in, w->C_out, H, W);
}

/* dinp is (C_in,H,W), dout is (C_out,H,W) */
void conv3x3_backward_input(float *dinp, const float *dout, const conv3x3_packed *w, int H, int W) {
    conv_run(dinp, dout, w->bwd, NULL, NULL, w->C_out, w->C_in, H, W);
}

/* dinp, mask are (C_in,H,W), dout is (C_out,H,W) */
void conv3x3_backward_input_relu(float *dinp, const float *dout, const conv3x3_packed *w,
                                 const float *mask, int H, int W) {
    conv_run(dinp, dout, w->bwd, NULL, mask, w->C_out, w->C_in, H, W);
}

/* The portable path whatever the CPU, for the tests (not in ops.h). */
void conv3x3_forward_portable(float *out, const float *inp, const conv3x3_packed *w,
                              const float *bias, int H, int W) {
    conv_run_portable(out, inp, w->fwd, bias, w->C_in, w->C_out, H, W);
}
void conv3x3_backward_input_portable(float *dinp, const float *dout, const conv3x3_packed *w,
                                     int H, int W) {
    conv_run_portable(dinp, dout, w->bwd, NULL, w->C_out, w->C_in, H, W);
}

/* The AVX2 path whatever NST_KERNEL says, for the tests (not in ops.h). Returns 0, or
 * -1 without touching out if the CPU (or the build) has no AVX2+FMA. */
int conv3x3_forward_avx2(float *out, const float *inp, const conv3x3_packed *w,
                         const float *bias, int H, int W) {
#ifdef NST_X86
    if (cpu_best() >= K_AVX2) {
        conv3x3_run_avx2(out, inp, w->fwd, bias, w->C_in, w->C_out, H, W);
        return 0;
    }
#endif
    return -1;
}
int conv3x3_backward_input_avx2(float *dinp, const float *dout, const conv3x3_packed *w,
                                int H, int W) {
#ifdef NST_X86
    if (cpu_best() >= K_AVX2) {
        conv3x3_run_avx2(dinp, dout, w->bwd, NULL, w->C_out, w->C_in, H, W);
        return 0;
    }
#endif
    return -1;
}
