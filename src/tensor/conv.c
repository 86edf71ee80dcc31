/* conv.c - 3x3 convolution, stride 1, zero padding 1, for one image (C,H,W).
 *
 * Three tiers: the *_ref loops (obviously correct, slow, used by the tests), a
 * portable blocked C path, and the intrinsics kernels of conv_avx512.c / conv_avx2.c
 * chosen when the weights are packed (the tuning's kernel, NST_KERNEL=portable|avx2,
 * caps the choice, for tests and benchmarks). The direct paths are a plain float32 sum over
 * (input channel, kh, kw), so they agree with the reference (and PyTorch) to rounding.
 *
 * The gradient to the input is itself a 3x3 "same" convolution of dout with the kernel
 * flipped in space and transposed in channels:
 *   dinp[ci][h][w] = sum_{co,kh,kw} dout[co][h+1-kh][w+1-kw] * W[co][ci][kh][kw]
 *                  = sum_{co,a,b}   dout[co][h+a-1][w+b-1]   * W[co][ci][2-a][2-b]
 * so conv3x3_pack stores that kernel in p->bwd and the same forward kernels run it.
 *
 * Where the AVX-512 kernel runs and both channel counts are >= 64, the default is
 * Winograd F(2x2,3x3) instead (winograd_avx512.c; not the forward pass of 64 -> 64, see
 * winograd_forward_ok): 2.25x fewer multiplies, results within ~1e-6 relative L2 of the
 * reference (as close to float64 as the direct sum, or closer) but not the same rounding.
 * The tuning's conv_direct (NST_CONV=direct) turns it off.
 */
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"
#include "tensor/bf16.h"

#define CONV_KB 4 /* output channels per packed block; the kernels assume the same value */

#ifdef NST_X86
void conv3x3_run_avx512(float *out, const float *inp, const float *wpack, const float *bias,
                        const float *mask, int relu, int C_in, int C_out, int H, int W);
void conv3x3_run_avx2(float *out, const float *inp, const float *wpack, const float *bias,
                      int C_in, int C_out, int H, int W);
int conv3x3_run_winograd_avx512bf16(float *out, const float *inp, const uint32_t *U16, const float *bias,
                                    const float *mask, int relu, int C_in, int C_out, int H, int W,
                                    conv3x3_workspace *ws);
int conv3x3_run_winograd_amx(float *out, const float *inp, const uint32_t *U16, const float *bias, const float *mask,
                             int relu, int C_in, int C_out, int H, int W, conv3x3_workspace *ws);
int conv3x3_run_winograd_avx512(float *out, const float *inp, const float *U, const float *bias,
                                const float *mask, int relu, int u_transposed, int C_in, int C_out, int H,
                                int W, conv3x3_workspace *ws);
#endif
#define WINO_KB 8   /* output channels per block of the Winograd weights (winograd_avx512.c) */
#define WINO_MIN_C 64 /* Winograd only where both channel counts are at least this */

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

/* The Winograd weights U = G g G^T of the kernel k(o, i, 3x3) (as in pack_blocks) into
 * (16, ceil(n_out/8), n_in, 8): for each of the 16 transform points xi, blocks of 8 output
 * channels whose 8 values of one input channel are adjacent. Zero past n_out. */
static void pack_winograd(float *dst, const float *weight, int C_in, int n_out, int n_in,
                          int transpose_flip) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    int nb = (n_out + WINO_KB - 1) / WINO_KB;
    for (int o = 0; o < nb * WINO_KB; o++)
        for (int i = 0; i < n_in; i++) {
            double g[3][3] = {{0}}, t[4][3], u[4][4];
            for (int k = 0; k < 9 && o < n_out; k++)
                g[k / 3][k % 3] = transpose_flip ? weight[((size_t)i * C_in + o) * 9 + (8 - k)]
                                                 : weight[((size_t)o * C_in + i) * 9 + k];
            for (int a = 0; a < 4; a++) /* t = G g */
                for (int c = 0; c < 3; c++)
                    t[a][c] = G[a][0] * g[0][c] + G[a][1] * g[1][c] + G[a][2] * g[2][c];
            for (int a = 0; a < 4; a++) /* u = t G^T */
                for (int b = 0; b < 4; b++)
                    u[a][b] = t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2];
            for (int xi = 0; xi < 16; xi++)
                dst[(((size_t)xi * nb + o / WINO_KB) * n_in + i) * WINO_KB + o % WINO_KB] =
                    (float)u[xi / 4][xi % 4];
        }
}


/* The bf16 Winograd weights: pack_winograd's (16, nb, n_in, 8) floats as (16, nb,
 * ceil(n_in/2), 8) words of channel pairs. tmp holds 16*nb*8*n_in floats. */
static void pack_winograd_bf16(uint32_t *dst, float *tmp, const float *weight, int C_in, int n_out, int n_in,
                               int transpose_flip) {
    pack_winograd(tmp, weight, C_in, n_out, n_in, transpose_flip);
    int nb = (n_out + WINO_KB - 1) / WINO_KB, np = (n_in + 1) / 2;
    for (int xb = 0; xb < 16 * nb; xb++)
        for (int p = 0; p < np; p++)
            for (int k = 0; k < WINO_KB; k++) {
                const float *t = tmp + (size_t)xb * n_in * WINO_KB;
                float a = t[(size_t)(2 * p) * WINO_KB + k], b = 2 * p + 1 < n_in ? t[(size_t)(2 * p + 1) * WINO_KB + k] : 0.0f;
                dst[((size_t)xb * np + p) * WINO_KB + k] = bf16_pair(a, b);
            }
}

/* The same for the AMX kernels: (16, ceil(n_out/16), P/16, 16, 16) words, P = ceil(n_in/2)
 * rounded up to 16 pairs: per transform point and block of 16 output channels, one 1 KB A
 * tile per 16 channel pairs (row = output channel), zero past n_out and n_in. */
static size_t amx_words(int n_out, int n_in) {
    return (size_t)16 * ((n_out + 15) / 16) * 16 * (((n_in + 1) / 2 + 15) / 16 * 16);
}
static void pack_winograd_amx(uint32_t *dst, float *tmp, const float *weight, int C_in, int n_out, int n_in,
                              int transpose_flip) {
    pack_winograd(tmp, weight, C_in, n_out, n_in, transpose_flip);
    int nb8 = (n_out + WINO_KB - 1) / WINO_KB, nb16 = (n_out + 15) / 16, np = ((n_in + 1) / 2 + 15) / 16 * 16;
    for (int xi = 0; xi < 16; xi++)
        for (int b = 0; b < nb16; b++)
            for (int kb = 0; kb < np / 16; kb++)
                for (int r = 0; r < 16; r++)
                    for (int k = 0; k < 16; k++) {
                        int co = b * 16 + r, i = 2 * (kb * 16 + k);
                        float v[2] = {0.0f, 0.0f};
                        for (int h = 0; h < 2; h++)
                            if (co < n_out && i + h < n_in)
                                v[h] = tmp[(((size_t)xi * nb8 + co / WINO_KB) * n_in + i + h) * WINO_KB + co % WINO_KB];
                        dst[((((size_t)xi * nb16 + b) * (np / 16) + kb) * 16 + r) * 16 + k] = bf16_pair(v[0], v[1]);
                    }
}

static int winograd_forward_ok(const conv3x3_packed *w);

static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

/* p->wino16_fwd, p->wino16_bwd in the layout of p->bf16's kernels. 0, or -1 (p freed). */
static int pack_bf16(conv3x3_packed *p, const float *weight) {
    int C_in = p->C_in, C_out = p->C_out, amx = p->bf16 == BF16_AMX;
    size_t wf = amx ? amx_words(C_out, C_in) : (size_t)16 * ((C_out + WINO_KB - 1) / WINO_KB) * WINO_KB * ((C_in + 1) / 2);
    size_t wb = amx ? amx_words(C_in, C_out) : (size_t)16 * ((C_in + WINO_KB - 1) / WINO_KB) * WINO_KB * ((C_out + 1) / 2);
    size_t nt = (size_t)16 * ((C_in > C_out ? C_in : C_out) + WINO_KB) * (C_in > C_out ? C_in : C_out);
    float *tmp = malloc(nt * sizeof(float));
    p->wino16_fwd = alloc64(wf * sizeof(uint32_t));
    p->wino16_bwd = alloc64(wb * sizeof(uint32_t));
    if (!tmp || !p->wino16_fwd || !p->wino16_bwd) {
        free(tmp);
        conv3x3_packed_free(p);
        return -1;
    }
    if (amx) {
        pack_winograd_amx(p->wino16_fwd, tmp, weight, C_in, C_out, C_in, 0);
        pack_winograd_amx(p->wino16_bwd, tmp, weight, C_in, C_in, C_out, 1);
    } else {
        pack_winograd_bf16(p->wino16_fwd, tmp, weight, C_in, C_out, C_in, 0);
        pack_winograd_bf16(p->wino16_bwd, tmp, weight, C_in, C_in, C_out, 1);
    }
    free(tmp);
    return 0;
}

/* For the tests (not in ops.h): a lean bf16 pack in the layout of tier t's kernels
 * whatever this CPU runs (the AMX layout is checked under an emulator elsewhere). */
int conv3x3_pack_bf16_as(conv3x3_packed *p, const float *weight, int C_in, int C_out, cpu_bf16_tier t) {
    memset(p, 0, sizeof(*p));
    p->C_in = C_in;
    p->C_out = C_out;
    p->weight = weight;
    p->tier = CPU_AVX512;
    p->winograd = 1;
    p->bf16 = t;
    return pack_bf16(p, weight);
}

/* lean: leave out the direct packs that Winograd makes useless (conv3x3_pack_lean). */
static int pack(conv3x3_packed *p, const float *weight, int C_in, int C_out, const nst_tuning *tuning,
                nst_precision precision, int lean) {
    memset(p, 0, sizeof(*p));
    p->C_in = C_in;
    p->C_out = C_out;
    p->weight = weight;
    /* the kernels are chosen here, once: no call on p asks the tuning again */
    p->tier = cpu_kernel_tier(tuning ? tuning->kernel : NST_KERNEL_BEST);
    p->winograd = !(tuning && tuning->conv_direct);
    int wino = C_in >= WINO_MIN_C && C_out >= WINO_MIN_C && cpu_best_tier() == CPU_AVX512;
    if (precision == NST_PRECISION_BF16 && wino && p->tier == CPU_AVX512 && p->winograd)
        p->bf16 = cpu_bf16_kernel(tuning ? tuning->kernel : NST_KERNEL_BEST);
    if (p->bf16) {
        if (pack_bf16(p, weight)) return -1;
        if (lean) return 0; /* both passes in bf16: no fp32 pack (the reference is the fallback) */
    }
    /* (the Winograd packs are built whatever the tuning: the tests compare the paths) */
    lean = lean && wino && p->tier == CPU_AVX512 && p->winograd;
    int need_fwd = !lean || !winograd_forward_ok(p), need_bwd = !lean;
    size_t nf = (size_t)((C_out + CONV_KB - 1) / CONV_KB) * CONV_KB * C_in * 9;
    size_t nb = (size_t)((C_in + CONV_KB - 1) / CONV_KB) * CONV_KB * C_out * 9;
    /* 64-byte alignment keeps a block's broadcasts within as few lines as possible */
    if (need_fwd) p->fwd = alloc64(nf * sizeof(float));
    if (need_bwd) p->bwd = alloc64(nb * sizeof(float));
    if ((need_fwd && !p->fwd) || (need_bwd && !p->bwd)) {
        conv3x3_packed_free(p);
        return -1;
    }
    if (need_fwd) pack_blocks(p->fwd, weight, C_in, C_out, C_in, 0);
    if (need_bwd) pack_blocks(p->bwd, weight, C_in, C_in, C_out, 1);
    if (wino) {
        size_t wf = (size_t)16 * ((C_out + WINO_KB - 1) / WINO_KB) * WINO_KB * C_in;
        size_t wb = (size_t)16 * ((C_in + WINO_KB - 1) / WINO_KB) * WINO_KB * C_out;
        /* the backward pass reads the forward transform transposed (winograd_avx512.c),
         * which needs whole blocks of 8 input channels; else it gets its own */
        int own_bwd = C_in % WINO_KB != 0;
        p->wino_fwd = alloc64(wf * sizeof(float));
        p->wino_bwd = own_bwd ? alloc64(wb * sizeof(float)) : NULL;
        if (!p->wino_fwd || (own_bwd && !p->wino_bwd)) {
            conv3x3_packed_free(p);
            return -1;
        }
        pack_winograd(p->wino_fwd, weight, C_in, C_out, C_in, 0);
        if (own_bwd) pack_winograd(p->wino_bwd, weight, C_in, C_in, C_out, 1);
    }
    return 0;
}

/* Returns 0, or -1 if out of memory. weight is (C_out,C_in,3,3). */
int conv3x3_pack(conv3x3_packed *p, const float *weight, int C_in, int C_out, const nst_tuning *tuning,
                 nst_precision precision) {
    return pack(p, weight, C_in, C_out, tuning, precision, 0);
}

int conv3x3_pack_lean(conv3x3_packed *p, const float *weight, int C_in, int C_out, const nst_tuning *tuning,
                      nst_precision precision) {
    return pack(p, weight, C_in, C_out, tuning, precision, 1);
}

void conv3x3_workspace_free(conv3x3_workspace *ws) {
    free(ws->buf);
    ws->buf = NULL;
    ws->n = 0;
}

void conv3x3_packed_free(conv3x3_packed *p) {
    free(p->fwd);
    free(p->bwd);
    free(p->wino_fwd);
    free(p->wino_bwd);
    free(p->wino16_fwd);
    free(p->wino16_bwd);
    p->fwd = p->bwd = p->wino_fwd = p->wino_bwd = NULL;
    p->wino16_fwd = p->wino16_bwd = NULL;
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

/* ---- dispatch (the tier and Winograd choice the pack was made with) --------------- */

const char *conv3x3_kernel_name(const conv3x3_packed *w) {
    return w->bf16 ? cpu_bf16_name(w->bf16) : cpu_tier_name(w->tier);
}

/* The bf16 Winograd pass of a bf16 pack (conv_run's contract; -1: no memory for its
 * scratch, or no such kernel in this build). */
static int conv_run_bf16(float *out, const float *inp, const uint32_t *wino16, const float *bias, const float *mask,
                         int relu, int C_in, int C_out, int H, int W, conv3x3_workspace *ws, cpu_bf16_tier t) {
#ifdef NST_X86
    if (t == BF16_AMX) return conv3x3_run_winograd_amx(out, inp, wino16, bias, mask, relu, C_in, C_out, H, W, ws);
    return conv3x3_run_winograd_avx512bf16(out, inp, wino16, bias, mask, relu, C_in, C_out, H, W, ws);
#else
    (void)out, (void)inp, (void)wino16, (void)bias, (void)mask, (void)relu, (void)C_in, (void)C_out, (void)H, (void)W,
        (void)ws, (void)t;
    return -1;
#endif
}

/* mask: NULL, or (C_out,H,W): out is zeroed where mask <= 0 (a fused ReLU backward; the
 * AVX-512 kernels do it in registers, the others in a second pass). relu: out = max(out,
 * 0) (a fused ReLU forward, likewise). wino: the Winograd weights of the same kernel, or
 * NULL (also where the pack said no Winograd). tier: the pack's. */
static int conv_run(float *out, const float *inp, const float *wpack, const float *wino, int wino_tr,
                    const float *bias, const float *mask, int relu, int C_in, int C_out, int H,
                    int W, conv3x3_workspace *ws, cpu_tier tier) {
#ifdef NST_X86
    switch (tier) {
    case CPU_AVX512:
        /* (-1: no memory for its scratch; the direct kernel needs none) */
        if (wino &&
            conv3x3_run_winograd_avx512(out, inp, wino, bias, mask, relu, wino_tr, C_in, C_out, H, W, ws) == 0)
            return 0;
        if (!wpack) return -1; /* a lean pack: the caller runs the reference */
        conv3x3_run_avx512(out, inp, wpack, bias, mask, relu, C_in, C_out, H, W);
        return 0;
    case CPU_AVX2:
        if (!wpack) return -1;
        conv3x3_run_avx2(out, inp, wpack, bias, C_in, C_out, H, W);
        break;
    default:
        if (!wpack) return -1;
        conv_run_portable(out, inp, wpack, bias, C_in, C_out, H, W);
        break;
    }
#else
    (void)wino;
    (void)tier;
    if (!wpack) return -1;
    conv_run_portable(out, inp, wpack, bias, C_in, C_out, H, W);
#endif
    if (mask) relu_backward(out, out, mask, (size_t)C_out * H * W);
    if (relu) relu_forward(out, out, (size_t)C_out * H * W);
    return 0;
}


/* Whether the forward pass may use Winograd: not for 64 -> 64 (VGG19's conv1_2). The
 * forward pass feeds discrete choices (ReLU signs, max-pool argmaxes) and a different
 * rounding can break a near-tie the other way: on the oracle image, Winograd at conv1_2
 * (though 2x closer to float64 in L2 than the direct sum) flips one pool2 argmax whose
 * float64 gap is 4.5e-7 relative, and the image gradient then differs from PyTorch's by
 * 3.6e-3. It is also the layer where Winograd gains least (overhead of the transforms is
 * largest against 64 channels). The backward pass has no such choices: Winograd there. */
static int winograd_forward_ok(const conv3x3_packed *w) {
    return w->C_in > WINO_MIN_C || w->C_out > WINO_MIN_C;
}

/* The forward pass, its ReLU fused in if relu. A lean pack whose direct pack is missing
 * (conv_run says -1) runs the reference convolution instead. */
static void forward(float *out, const float *inp, const conv3x3_packed *w, const float *bias, int relu, int H,
                    int W, conv3x3_workspace *ws) {
    if (w->wino16_fwd && conv_run_bf16(out, inp, w->wino16_fwd, bias, NULL, relu, w->C_in, w->C_out, H, W, ws, w->bf16) == 0)
        return;
    if (conv_run(out, inp, w->fwd, w->winograd && winograd_forward_ok(w) ? w->wino_fwd : NULL, 0, bias, NULL, relu,
                 w->C_in, w->C_out, H, W, ws, w->tier) == 0)
        return;
    conv3x3_forward_ref(out, inp, w->weight, bias, w->C_in, w->C_out, H, W);
    if (relu) relu_forward(out, out, (size_t)w->C_out * H * W);
}

/* The backward pass's Winograd weights: its own, or the forward's read transposed. */
static const float *wino_backward(const conv3x3_packed *w, int *tr) {
    *tr = w->wino_bwd == NULL && w->wino_fwd != NULL;
    return w->wino_bwd ? w->wino_bwd : w->wino_fwd;
}

/* The backward pass to the input, the ReLU mask applied if mask; the same fallback. */
static void backward(float *dinp, const float *dout, const conv3x3_packed *w, const float *mask, int H, int W,
                     conv3x3_workspace *ws) {
    if (w->wino16_bwd && conv_run_bf16(dinp, dout, w->wino16_bwd, NULL, mask, 0, w->C_out, w->C_in, H, W, ws, w->bf16) == 0)
        return;
    int tr;
    const float *wino = wino_backward(w, &tr);
    if (conv_run(dinp, dout, w->bwd, w->winograd ? wino : NULL, tr, NULL, mask, 0, w->C_out, w->C_in, H, W, ws,
                 w->tier) == 0)
        return;
    conv3x3_backward_input_ref(dinp, dout, w->weight, w->C_in, w->C_out, H, W);
    if (mask) relu_backward(dinp, dinp, mask, (size_t)w->C_in * H * W);
}

/* out is (C_out,H,W), inp is (C_in,H,W), bias is (C_out) or NULL */
void conv3x3_forward(float *out, const float *inp, const conv3x3_packed *w, const float *bias,
                     int H, int W, conv3x3_workspace *ws) {
    forward(out, inp, w, bias, 0, H, W, ws);
}
void conv3x3_forward_relu(float *out, const float *inp, const conv3x3_packed *w, const float *bias,
                          int H, int W, conv3x3_workspace *ws) {
    forward(out, inp, w, bias, 1, H, W, ws);
}

/* dinp is (C_in,H,W), dout is (C_out,H,W) */
void conv3x3_backward_input(float *dinp, const float *dout, const conv3x3_packed *w, int H, int W,
                            conv3x3_workspace *ws) {
    backward(dinp, dout, w, NULL, H, W, ws);
}
/* dinp, mask are (C_in,H,W), dout is (C_out,H,W) */
void conv3x3_backward_input_relu(float *dinp, const float *dout, const conv3x3_packed *w,
                                 const float *mask, int H, int W, conv3x3_workspace *ws) {
    backward(dinp, dout, w, mask, H, W, ws);
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

/* The AVX2 path whatever the pack's tier, for the tests (not in ops.h). Returns 0, or
 * -1 without touching out if the CPU (or the build) has no AVX2+FMA. */
int conv3x3_forward_avx2(float *out, const float *inp, const conv3x3_packed *w,
                         const float *bias, int H, int W) {
#ifdef NST_X86
    if (cpu_best_tier() >= CPU_AVX2) {
        conv3x3_run_avx2(out, inp, w->fwd, bias, w->C_in, w->C_out, H, W);
        return 0;
    }
#endif
    return -1;
}
int conv3x3_backward_input_avx2(float *dinp, const float *dout, const conv3x3_packed *w,
                                int H, int W) {
#ifdef NST_X86
    if (cpu_best_tier() >= CPU_AVX2) {
        conv3x3_run_avx2(dinp, dout, w->bwd, NULL, w->C_out, w->C_in, H, W);
        return 0;
    }
#endif
    return -1;
}

/* The Winograd path whatever the pack's choice, for the tests (not in ops.h). Returns 0, or
 * -1 without touching out where it does not exist (no AVX-512, channels < 64) or has no
 * memory. mask as in conv3x3_backward_input_relu (NULL: none). */
int conv3x3_forward_winograd(float *out, const float *inp, const conv3x3_packed *w,
                             const float *bias, int H, int W) {
#ifdef NST_X86
    if (w->wino_fwd && cpu_best_tier() == CPU_AVX512)
        return conv3x3_run_winograd_avx512(out, inp, w->wino_fwd, bias, NULL, 0, 0, w->C_in, w->C_out, H, W, NULL);
#endif
    return -1;
}
int conv3x3_backward_input_winograd(float *dinp, const float *dout, const conv3x3_packed *w,
                                    const float *mask, int H, int W) {
#ifdef NST_X86
    int tr;
    const float *wino = wino_backward(w, &tr);
    if (wino && cpu_best_tier() == CPU_AVX512)
        return conv3x3_run_winograd_avx512(dinp, dout, wino, NULL, mask, 0, tr, w->C_out, w->C_in, H, W, NULL);
#endif
    return -1;
}
