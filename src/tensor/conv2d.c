/* conv2d.c - general 2-D convolution (KxK, stride S, no padding) for one image (C,H,W).
 *
 * Every pass of the fast path is one "valid correlation" (conv2d_run_*: out = bias +
 * sum over (ci, kh, kw) of weight * input, stride S, on a view of some input):
 *   forward:         the input, the packed weights, stride S.
 *   backward input:  dout zero-padded, stride 1, with the kernel flipped in space and
 *                    transposed in channels. For stride S the input gradient splits into
 *                    S*S phases (y%S, x%S); phase (py,px) sees only the taps kh = py+S*a,
 *                    kw = px+S*b, so it is a stride-1 correlation of the padded dout with
 *                    a ceil((K-py)/S) x ceil((K-px)/S) sub-kernel, written to a plane and
 *                    interleaved into dinp. No multiplies by inserted zeros.
 *   backward weight: dW (C_out, C_in*K*K) = dout (C_out, P) x taps (P, C_in*K*K), summed
 *                    over the P output pixels in fixed chunks of rows, chunk after chunk:
 *                    the same result for any thread count (conv2d_dweight_*).
 * In bf16 (conv2d_pack with NST_PRECISION_BF16) the same passes run on the bf16 kernels of
 * conv2d_avx512bf16.c: the correlations on weights packed in channel pairs (fwd16, bwd16),
 * the weight gradient on bf16 copies of dout and the input.
 * K=3, S=1 goes instead to conv3x3 of ops.h where AVX-512 runs (its Winograd F(2x2,3x3)
 * for both channel counts >= 64 is 2x faster than any direct kernel; its direct kernel
 * reuses each input vector for 3 output rows): its "same" convolution of the padded (H,W) input is, in
 * the interior (H-2)x(W-2), exactly the valid result; its backward to the input, run on
 * dout set in a zero border, is exactly the valid conv's.
 */
#include <stdlib.h>
#include <string.h>

#include "tensor/bf16.h"
#include "tensor/conv2d.h"

/* ---- reference ------------------------------------------------------------------ */

/* out is (C_out,Ho,Wo), inp is (C_in,H,W), weight is (C_out,C_in,K,K), bias is (C_out) or NULL */
void conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                        int C_in, int C_out, int H, int W, int K, int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    for (int co = 0; co < C_out; co++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                float s = bias ? bias[co] : 0.0f;
                for (int ci = 0; ci < C_in; ci++)
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++)
                            s += inp[((size_t)ci * H + i * S + kh) * W + j * S + kw] *
                                 weight[(((size_t)co * C_in + ci) * K + kh) * K + kw];
                out[((size_t)co * Ho + i) * Wo + j] = s;
            }
}

/* dinp is (C_in,H,W) (overwritten), dout is (C_out,Ho,Wo), weight is (C_out,C_in,K,K).
 * The scatter of the forward pass: the most literal form of the chain rule. */
void conv2d_backward_input_ref(float *dinp, const float *dout, const float *weight,
                               int C_in, int C_out, int H, int W, int K, int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    memset(dinp, 0, (size_t)C_in * H * W * sizeof(float));
    for (int co = 0; co < C_out; co++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                float g = dout[((size_t)co * Ho + i) * Wo + j];
                for (int ci = 0; ci < C_in; ci++)
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++)
                            dinp[((size_t)ci * H + i * S + kh) * W + j * S + kw] +=
                                g * weight[(((size_t)co * C_in + ci) * K + kh) * K + kw];
            }
}

/* accumulates: dweight is (C_out,C_in,K,K), dbias is (C_out) or NULL, dout is (C_out,Ho,Wo),
 * inp is (C_in,H,W) */
void conv2d_backward_weight_ref(float *dweight, float *dbias, const float *dout, const float *inp,
                                int C_in, int C_out, int H, int W, int K, int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    for (int co = 0; co < C_out; co++) {
        const float *g = dout + (size_t)co * Ho * Wo;
        if (dbias) {
            float s = 0.0f;
            for (size_t p = 0; p < (size_t)Ho * Wo; p++) s += g[p];
            dbias[co] += s;
        }
        for (int ci = 0; ci < C_in; ci++)
            for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++) {
                    float s = 0.0f;
                    for (int i = 0; i < Ho; i++)
                        for (int j = 0; j < Wo; j++)
                            s += g[(size_t)i * Wo + j] *
                                 inp[((size_t)ci * H + i * S + kh) * W + j * S + kw];
                    dweight[(((size_t)co * C_in + ci) * K + kh) * K + kw] += s;
                }
    }
}

/* ---- packing -------------------------------------------------------------------- */

/* Output channels per register block for n output channels: the AVX-512 kernels have
 * 8, 4, 3, 2 and 1; below 5 channels a smaller block wastes no lanes. */
static int block_for(int n) { return n >= 5 ? 8 : n; }

/* Taps of phase p (0 <= p < S) of a K-tap kernel in one dimension: kh = p + S*a. */
static int phase_taps(int K, int S, int p) { return p < K ? (K - p + S - 1) / S : 0; }

/* Floats of the S*S packed phase kernels: sum over phases of Ka*Kb*C_out*ceil(C_in/mr)*mr. */
static size_t bwd_floats(int C_in, int C_out, int K, int S, int mr) {
    size_t n = 0;
    for (int py = 0; py < S; py++)
        for (int px = 0; px < S; px++)
            n += (size_t)phase_taps(K, S, py) * phase_taps(K, S, px);
    return n * C_out * ((C_in + mr - 1) / mr) * mr;
}

/* Grows *buf to n floats (64-byte aligned); keeps it if it is big enough. 0 or -1. */
static int grow(float **buf, size_t *cap, size_t n) {
    if (*buf && *cap >= n) return 0;
    free(*buf);
    *buf = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    *cap = *buf ? n : 0;
    return *buf ? 0 : -1;
}

/* The same for 32-bit words. */
static int grow_words(uint32_t **buf, size_t *cap, size_t n) {
    if (*buf && *cap >= n) return 0;
    free(*buf);
    *buf = aligned_alloc(64, (n * sizeof(uint32_t) + 63) / 64 * 64);
    *cap = *buf ? n : 0;
    return *buf ? 0 : -1;
}

/* Words of the bf16 phase kernels: bwd_floats with the C_out channels in pairs. */
static size_t bwd16_words(int C_in, int C_out, int K, int S, int mr) {
    return bwd_floats(C_in, (C_out + 1) / 2, K, S, mr);
}

/* The bf16 pairs of fwd and bwd (conv2d.h): the word of channel pair cp holds the
 * weights of reduction channels 2cp and 2cp+1 (0 past the count) at one place. */
static void pack_bf16(conv2d_packed *p, const float *weight) {
    const int C_in = p->C_in, C_out = p->C_out, K = p->K, S = p->S, mf = p->mr_f, mb = p->mr_b;
    const size_t KK = (size_t)K * K;
    const int Cip = (C_in + 1) / 2, Cop = (C_out + 1) / 2;
    const int nbf = (C_out + mf - 1) / mf, nbb = (C_in + mb - 1) / mb;
#define W_AT(co, ci, t) ((co) < C_out && (ci) < C_in ? weight[((size_t)(co) * C_in + (ci)) * KK + (t)] : 0.0f)
    for (int b = 0; b < nbf; b++)
        for (int cp = 0; cp < Cip; cp++)
            for (size_t t = 0; t < KK; t++)
                for (int m = 0; m < mf; m++) {
                    int co = b * mf + m;
                    p->fwd16[(((size_t)b * Cip + cp) * KK + t) * mf + m] =
                        bf16_pair(W_AT(co, 2 * cp, t), W_AT(co, 2 * cp + 1, t));
                }
    uint32_t *dst = p->bwd16;
    for (int py = 0; py < S; py++)
        for (int px = 0; px < S; px++) {
            const int Ka = phase_taps(K, S, py), Kb = phase_taps(K, S, px);
            for (int b = 0; b < nbb; b++)
                for (int cp = 0; cp < Cop; cp++)
                    for (int a = 0; a < Ka; a++)
                        for (int c = 0; c < Kb; c++)
                            for (int m = 0; m < mb; m++) {
                                int ci = b * mb + m;
                                size_t t = (size_t)(py + S * (Ka - 1 - a)) * K + px + S * (Kb - 1 - c);
                                *dst++ = bf16_pair(W_AT(2 * cp, ci, t), W_AT(2 * cp + 1, ci, t));
                            }
        }
#undef W_AT
}

/* p->fwd = (ceil(C_out/mr_f), C_in, K, K, mr_f), zero past C_out;
 * p->bwd = phase (py,px) after phase: (ceil(C_in/mr_b), C_out, Ka, Kb, mr_b) holding at
 * (a', b') the tap kh = py + S*(Ka-1-a'), kw = px + S*(Kb-1-b') of W[co][ci] (flipped, so
 * that the backward pass is a correlation too), zero past C_in. */
int conv2d_pack(conv2d_packed *p, const float *weight, int C_in, int C_out, int K, int S,
                const nst_tuning *tuning, nst_precision precision) {
    const int mf = block_for(C_out), mb = block_for(C_in);
    const size_t KK = (size_t)K * K;
    size_t nf = (size_t)((C_out + mf - 1) / mf) * mf * C_in * KK;
    if (grow(&p->fwd, &p->fwd_cap, nf) || grow(&p->bwd, &p->bwd_cap, bwd_floats(C_in, C_out, K, S, mb))) {
        conv2d_packed_free(p);
        return -1;
    }
    p->C_in = C_in;
    p->C_out = C_out;
    p->K = K;
    p->S = S;
    p->tier = cpu_kernel_tier(tuning ? tuning->kernel : NST_KERNEL_BEST); /* chosen once, here */
    p->mr_f = mf;
    p->mr_b = mb;
    for (size_t b = 0; b < nf / (mf * C_in * KK); b++)
        for (int ci = 0; ci < C_in; ci++)
            for (size_t t = 0; t < KK; t++)
                for (int m = 0; m < mf; m++) {
                    size_t co = b * mf + m;
                    p->fwd[((b * C_in + ci) * KK + t) * mf + m] =
                        co < (size_t)C_out ? weight[(co * C_in + ci) * KK + t] : 0.0f;
                }
    float *dst = p->bwd;
    const int nb = (C_in + mb - 1) / mb;
    for (int py = 0; py < S; py++)
        for (int px = 0; px < S; px++) {
            const int Ka = phase_taps(K, S, py), Kb = phase_taps(K, S, px);
            for (int b = 0; b < nb; b++)
                for (int co = 0; co < C_out; co++)
                    for (int a = 0; a < Ka; a++)
                        for (int c = 0; c < Kb; c++)
                            for (int m = 0; m < mb; m++) {
                                int ci = b * mb + m, kh = py + S * (Ka - 1 - a), kw = px + S * (Kb - 1 - c);
                                *dst++ = ci < C_in ? weight[(((size_t)co * C_in + ci) * K + kh) * K + kw] : 0.0f;
                            }
        }
    /* conv3x3 for K=3, S=1 where AVX-512 runs; conv3x3_pack allocates afresh */
    conv3x3_packed_free(&p->c3);
    p->use3 = 0;
    /* bf16: the kernels of conv2d_avx512bf16.c, where the tuning allows them */
    p->bf16 = BF16_NONE;
#ifdef NST_X86
    if (precision == NST_PRECISION_BF16 && p->tier == CPU_AVX512 && S <= 2 &&
        cpu_bf16_kernel(tuning ? tuning->kernel : NST_KERNEL_BEST) != BF16_NONE)
        p->bf16 = BF16_AVX512;
#endif
    if (K == 3 && S == 1 && cpu_best_tier() == CPU_AVX512) {
        /* (bf16: the lean pack, no fp32 transforms that its bf16 ones make useless; the
         * trainer repacks every step) */
        int e = precision == NST_PRECISION_BF16 ? conv3x3_pack_lean(&p->c3, weight, C_in, C_out, tuning, precision)
                                                : conv3x3_pack(&p->c3, weight, C_in, C_out, tuning, precision);
        if (e) {
            conv2d_packed_free(p);
            return -1;
        }
        p->use3 = 1;
        /* in bf16, conv3x3 only where it runs bf16 Winograd: where it would run fp32
         * (fewer than 64 channels) the bf16 correlation is ~1.5x faster (bench_conv2d) */
        if (p->bf16 && p->c3.bf16 == BF16_NONE) {
            conv3x3_packed_free(&p->c3);
            p->use3 = 0;
        }
    }
    if (p->bf16 && !p->use3) {
        if (grow_words(&p->fwd16, &p->fwd16_cap, nf / C_in * ((C_in + 1) / 2)) ||
            grow_words(&p->bwd16, &p->bwd16_cap, bwd16_words(C_in, C_out, K, S, mb))) {
            conv2d_packed_free(p);
            return -1;
        }
        pack_bf16(p, weight);
    } else { /* none kept from an earlier pack */
        free(p->fwd16);
        free(p->bwd16);
        p->fwd16 = p->bwd16 = NULL;
        p->fwd16_cap = p->bwd16_cap = 0;
    }
    return 0;
}

void conv2d_packed_free(conv2d_packed *p) {
    free(p->fwd);
    free(p->bwd);
    conv3x3_packed_free(&p->c3);
    free(p->fwd16);
    free(p->bwd16);
    p->fwd = p->bwd = NULL;
    p->fwd16 = p->bwd16 = NULL;
    p->fwd_cap = p->bwd_cap = p->fwd16_cap = p->bwd16_cap = 0;
    p->use3 = 0;
    p->bf16 = BF16_NONE;
}

/* ---- scratch ---------------------------------------------------------------------- */

void conv2d_workspace_free(conv2d_workspace *ws) {
    free(ws->buf);
    ws->buf = NULL;
    ws->n = 0;
    conv3x3_workspace_free(&ws->c3);
}

/* n floats of scratch: the workspace's (grown), or a fresh block if ws is NULL. */
static float *scratch_get(conv2d_workspace *ws, size_t n) {
    if (!ws) return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64);
    if (grow(&ws->buf, &ws->n, n)) return NULL;
    return ws->buf;
}
static void scratch_put(conv2d_workspace *ws, float *p) {
    if (!ws) free(p);
}

/* ---- portable kernels ------------------------------------------------------------- */

/* y[j] += a * x[j*S] for 0 <= j < n. The fixed 8-wide loop lets gcc -O2 vectorise S=1. */
static inline void row_axpy(float *restrict y, const float *restrict x, float a, int n, int S) {
    int j = 0;
    if (S == 1)
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++) y[j + l] += a * x[j + l];
    for (; j < n; j++) y[j] += a * x[(size_t)j * S];
}

/* out is (Co,Ho,Wo); the view and wp (ceil(Co/mr),Ci,Kh,Kw,mr) as in conv2d.h. One work
 * item is one output row of one channel. */
void conv2d_run_portable(float *out, const conv2d_view *v, const float *wp, const float *bias) {
    const int Ho = v->Ho, Wo = v->Wo, mr = v->mr;
    const long nitems = (long)v->Co * Ho;
#pragma omp parallel for schedule(static)
    for (long item = 0; item < nitems; item++) {
        int co = (int)(item / Ho), i = (int)(item % Ho);
        float *o = out + ((size_t)co * Ho + i) * Wo;
        float b = bias ? bias[co] : 0.0f;
        for (int j = 0; j < Wo; j++) o[j] = b;
        const float *wb = wp + (size_t)(co / mr) * v->Ci * v->Kh * v->Kw * mr + co % mr;
        for (int ci = 0; ci < v->Ci; ci++)
            for (int kh = 0; kh < v->Kh; kh++) {
                const float *x = v->inp + ci * v->cs + (size_t)(i * v->S + kh) * v->ld;
                for (int kw = 0; kw < v->Kw; kw++)
                    row_axpy(o, x + kw, wb[(((size_t)ci * v->Kh + kh) * v->Kw + kw) * mr], Wo, v->S);
            }
    }
}

/* part is (Co, Ci*K*K), dout (Co,Ho,Wo), inp (Ci,H,W): part += the sum over all output
 * rows, chunk of R rows after chunk. One work item is one (co, ci) pair, which a thread
 * runs over every chunk in order. */
void conv2d_dweight_portable(float *part, const float *dout, const float *inp, int Ci, int Co,
                             int H, int W, int K, int S, int R) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
#pragma omp parallel for schedule(static)
    for (long item = 0; item < (long)Co * Ci; item++) {
        int co = (int)(item / Ci), ci = (int)(item % Ci);
        const float *g = dout + (size_t)co * Ho * Wo;
        for (int i0 = 0; i0 < Ho; i0 += R)
            for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++) {
                    float s = 0.0f;
                    for (int i = i0; i < i0 + R && i < Ho; i++) {
                        const float *x = inp + ((size_t)ci * H + i * S + kh) * W + kw;
                        const float *gr = g + (size_t)i * Wo;
                        for (int j = 0; j < Wo; j++) s += gr[j] * x[(size_t)j * S];
                    }
                    part[(size_t)co * Ci * K * K + ((size_t)ci * K + kh) * K + kw] += s;
                }
    }
}

/* ---- dispatch ---------------------------------------------------------------------- */

const char *conv2d_kernel_name(const conv2d_packed *w) {
    return w->bf16 == BF16_AVX512 ? "avx512bf16" : w->tier == CPU_AVX512 ? "avx512" : "portable";
}

size_t conv2d_dweight_bf16_words(int Ci, int Co, int H, int W, int K, int S) {
    const size_t Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    const size_t nx = (size_t)Ci * H * (S == 1 ? W : 2 * ((W + 1) / 2));
    return (nx + 31) / 32 * 32 + Co * Ho * Wo;
}

/* The correlation on the kernels of this tier (AVX-512 only for S <= 2): in bf16 on wp16
 * if it is not NULL (fp32 on wp if that fails: no memory). */
static void run(float *out, const conv2d_view *v, const float *wp, const uint32_t *wp16, const float *bias,
                cpu_tier tier) {
#ifdef NST_X86
    if (tier == CPU_AVX512 && wp16 && conv2d_run_avx512bf16(out, v, wp16, bias) == 0) return;
    if (tier == CPU_AVX512 && conv2d_run_avx512(out, v, wp, bias) == 0) return;
#endif
    (void)tier;
    (void)wp16;
    conv2d_run_portable(out, v, wp, bias);
}

/* The weight gradient on the kernels of this tier: in bf16 if scratch16 is not NULL. */
static void dweight_run(float *part, const float *dout, const float *inp, int Ci, int Co, int H, int W,
                    int K, int S, int R, cpu_tier tier, uint16_t *scratch16) {
#ifdef NST_X86
    if (tier == CPU_AVX512 && scratch16 &&
        conv2d_dweight_avx512bf16(part, dout, inp, Ci, Co, H, W, K, S, R, scratch16) == 0)
        return;
    if (tier == CPU_AVX512 && conv2d_dweight_avx512(part, dout, inp, Ci, Co, H, W, K, S, R) == 0)
        return;
#endif
    (void)tier;
    (void)scratch16;
    conv2d_dweight_portable(part, dout, inp, Ci, Co, H, W, K, S, R);
}

/* out is (C_out,Ho,Wo), inp is (C_in,H,W), bias is (C_out) or NULL */
static int forward_tier(float *out, const float *inp, const conv2d_packed *w, const float *bias,
                        int H, int W, conv2d_workspace *ws, cpu_tier tier) {
    const int K = w->K, S = w->S, Co = w->C_out;
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    if (w->use3 && tier == CPU_AVX512) {
        /* the "same" conv of the padded input into scratch (Co,H,W), then its interior */
        float *tmp = scratch_get(ws, (size_t)Co * H * W);
        if (!tmp) return -1;
        conv3x3_forward(tmp, inp, &w->c3, bias, H, W, ws ? &ws->c3 : NULL);
#pragma omp parallel for schedule(static)
        for (long r = 0; r < (long)Co * Ho; r++) {
            int co = (int)(r / Ho), i = (int)(r % Ho);
            memcpy(out + r * Wo, tmp + ((size_t)co * H + i + 1) * W + 1, Wo * sizeof(float));
        }
        scratch_put(ws, tmp);
        return 0;
    }
    conv2d_view v = {inp, (size_t)H * W, W, W, w->C_in, Co, Ho, Wo, K, K, S, w->mr_f};
    run(out, &v, w->fwd, w->bf16 ? w->fwd16 : NULL, bias, tier);
    return 0;
}

/* dinp is (C_in,H,W) (overwritten), dout is (C_out,Ho,Wo) */
static int backward_input_tier(float *dinp, const float *dout, const conv2d_packed *w, int H, int W,
                               conv2d_workspace *ws, cpu_tier tier) {
    const int K = w->K, S = w->S, Ci = w->C_in, Co = w->C_out;
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    if (w->use3 && tier == CPU_AVX512) {
        /* dout set in a zero border (Co,H,W), then the "same" conv's backward */
        float *e = scratch_get(ws, (size_t)Co * H * W);
        if (!e) return -1;
#pragma omp parallel for schedule(static)
        for (long r = 0; r < (long)Co * H; r++) {
            int co = (int)(r / H), y = (int)(r % H);
            float *row = e + r * W;
            if (y == 0 || y == H - 1) {
                memset(row, 0, W * sizeof(float));
                continue;
            }
            row[0] = row[W - 1] = 0.0f;
            memcpy(row + 1, dout + ((size_t)co * Ho + y - 1) * Wo, Wo * sizeof(float));
        }
        conv3x3_backward_input(dinp, e, &w->c3, H, W, ws ? &ws->c3 : NULL);
        scratch_put(ws, e);
        return 0;
    }
    /* dout padded: Pt = (taps of phase 0) - 1 rows/columns of zeros before, enough after
     * for every phase plane: dp is (Co,Hd,Wd) with dp[r][c] = dout[r-Pt][c-Pt]. */
    const int Pt = phase_taps(K, S, 0) - 1;
    int Hd = Pt + Ho, Wd = Pt + Wo;
    for (int p = 0; p < S; p++) {
        int Ka = phase_taps(K, S, p);
        if (!Ka) continue;
        int Hp = (H - p + S - 1) / S, Wp = (W - p + S - 1) / S, off = Pt - (Ka - 1);
        if (off + Hp + Ka - 1 > Hd) Hd = off + Hp + Ka - 1;
        if (off + Wp + Ka - 1 > Wd) Wd = off + Wp + Ka - 1;
    }
    const size_t nd = (size_t)Co * Hd * Wd;
    const int Hp0 = (H + S - 1) / S, Wp0 = (W + S - 1) / S; /* the largest phase plane */
    const size_t nplane = S > 1 ? (size_t)Ci * Hp0 * Wp0 : 0;
    float *dp = scratch_get(ws, nd + nplane);
    if (!dp) return -1;
    float *plane = dp + nd;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)Co * Hd; r++) {
        int co = (int)(r / Hd), y = (int)(r % Hd) - Pt;
        float *row = dp + r * Wd;
        memset(row, 0, Wd * sizeof(float));
        if (y >= 0 && y < Ho) memcpy(row + Pt, dout + ((size_t)co * Ho + y) * Wo, Wo * sizeof(float));
    }
    const float *wb = w->bwd;
    const uint32_t *wb16 = w->bf16 ? w->bwd16 : NULL;
    for (int py = 0; py < S; py++)
        for (int px = 0; px < S; px++) {
            const int Ka = phase_taps(K, S, py), Kb = phase_taps(K, S, px);
            const int Hp = (H - py + S - 1) / S, Wp = (W - px + S - 1) / S;
            float *dst = S == 1 ? dinp : plane; /* stride 1: one phase, dinp itself */
            if (Ka && Kb) {
                const int oy = Pt - (Ka - 1), ox = Pt - (Kb - 1);
                conv2d_view v = {dp + (size_t)oy * Wd + ox, (size_t)Hd * Wd, Wd, Wd - ox, Co, Ci,
                                 Hp, Wp, Ka, Kb, 1, w->mr_b};
                run(dst, &v, wb, wb16, NULL, tier);
                wb += (size_t)Ka * Kb * Co * ((Ci + w->mr_b - 1) / w->mr_b) * w->mr_b;
                if (wb16) wb16 += (size_t)Ka * Kb * ((Co + 1) / 2) * ((Ci + w->mr_b - 1) / w->mr_b) * w->mr_b;
            } else {
                memset(dst, 0, (size_t)Ci * Hp * Wp * sizeof(float));
            }
            if (S == 1) break;
#pragma omp parallel for schedule(static)
            for (long r = 0; r < (long)Ci * Hp; r++) {
                int ci = (int)(r / Hp), yp = (int)(r % Hp);
                float *drow = dinp + ((size_t)ci * H + (size_t)yp * S + py) * W + px;
                const float *prow = plane + r * Wp;
                for (int xp = 0; xp < Wp; xp++) drow[(size_t)xp * S] = prow[xp];
            }
        }
    scratch_put(ws, dp);
    return 0;
}

/* accumulates: dweight is (C_out,C_in,K,K), dbias is (C_out) or NULL */
static int backward_weight_tier(float *dweight, float *dbias, const float *dout, const float *inp,
                                int C_in, int C_out, int H, int W, int K, int S,
                                conv2d_workspace *ws, cpu_tier tier, cpu_bf16_tier bf16) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    const size_t T = (size_t)C_in * K * K, n = (size_t)C_out * T;
    const int use16 = bf16 == BF16_AVX512 && tier == CPU_AVX512;
    /* part, then in bf16 the copies of dout and inp (64-byte aligned) */
    const size_t n_part = (n + 15) / 16 * 16;
    const size_t n16 = use16 ? (conv2d_dweight_bf16_words(C_in, C_out, H, W, K, S) + 1) / 2 : 0;
    float *part = scratch_get(ws, n_part + n16);
    if (!part) return -1;
    memset(part, 0, n * sizeof(float));
    /* Chunks of R output rows: ~1024 pixels (a channel block's dout rows stay in L1),
     * and the chunk's input rows within ~512 KB of L2 (every channel block reads them
     * all). In bf16 (2-byte copies) the same bytes hold twice the pixels: fewer of each
     * sum's horizontal additions. R depends on the shape only, never on the threads. */
    const long esz = use16 ? 2 : (long)sizeof(float);
    int R = (int)(4096 / esz / Wo);
    long in_rows = (512L << 10) / (esz * C_in * W); /* input rows that fit */
    if ((in_rows - K) / S + 1 < R) R = (int)((in_rows - K) / S + 1);
    if (R < 1) R = 1;
    if (R > Ho) R = Ho;
    dweight_run(part, dout, inp, C_in, C_out, H, W, K, S, R, tier, use16 ? (uint16_t *)(part + n_part) : NULL);
#pragma omp parallel for schedule(static)
    for (size_t e = 0; e < n; e++) dweight[e] += part[e];
    if (dbias) {
        const size_t P = (size_t)Ho * Wo;
#pragma omp parallel for schedule(static)
        for (int co = 0; co < C_out; co++) {
            /* 16 running sums, then added in a fixed order (vectorisable, deterministic) */
            float s16[16] = {0};
            const float *g = dout + (size_t)co * P;
            size_t p = 0;
            for (; p + 16 <= P; p += 16)
                for (int l = 0; l < 16; l++) s16[l] += g[p + l];
            for (; p < P; p++) s16[0] += g[p];
            float s = 0.0f;
            for (int l = 0; l < 16; l++) s += s16[l];
            dbias[co] += s;
        }
    }
    scratch_put(ws, part);
    return 0;
}

int conv2d_forward(float *out, const float *inp, const conv2d_packed *w, const float *bias, int H,
                   int W, conv2d_workspace *ws) {
    return forward_tier(out, inp, w, bias, H, W, ws, w->tier);
}
int conv2d_backward_input(float *dinp, const float *dout, const conv2d_packed *w, int H, int W,
                          conv2d_workspace *ws) {
    return backward_input_tier(dinp, dout, w, H, W, ws, w->tier);
}
int conv2d_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
                           const conv2d_packed *w, int H, int W, conv2d_workspace *ws) {
    return backward_weight_tier(dweight, dbias, dout, inp, w->C_in, w->C_out, H, W, w->K, w->S, ws, w->tier,
                                w->bf16);
}

/* The portable path whatever the CPU, for the tests. */
int conv2d_forward_portable(float *out, const float *inp, const conv2d_packed *w, const float *bias,
                            int H, int W, conv2d_workspace *ws) {
    return forward_tier(out, inp, w, bias, H, W, ws, CPU_PORTABLE);
}
int conv2d_backward_input_portable(float *dinp, const float *dout, const conv2d_packed *w, int H,
                                   int W, conv2d_workspace *ws) {
    return backward_input_tier(dinp, dout, w, H, W, ws, CPU_PORTABLE);
}
int conv2d_backward_weight_portable(float *dweight, float *dbias, const float *dout,
                                    const float *inp, int C_in, int C_out, int H, int W, int K,
                                    int S, conv2d_workspace *ws) {
    return backward_weight_tier(dweight, dbias, dout, inp, C_in, C_out, H, W, K, S, ws, CPU_PORTABLE,
                                BF16_NONE);
}
