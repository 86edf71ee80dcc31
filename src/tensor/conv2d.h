/* conv2d.h - general 2-D convolution for the feed-forward (Johnson et al.) network:
 * KxK kernels (any K >= 1; the fast paths are tuned for odd K <= 9), stride S >= 1 (fast
 * for S = 1, 2), NO padding (the caller pads, e.g. with reflection), one image (C,H,W)
 * float at a time. Output size Ho = (H-K)/S+1, Wo = (W-K)/S+1; input rows/columns past
 * (Ho-1)*S+K (when (H-K) is not a multiple of S) are never read and get zero gradient.
 *
 * As in ops.h: a *_ref version next to each fast one (the tests compare them), fast paths
 * on weights packed once by conv2d_pack, OpenMP threads, deterministic results (the
 * weight gradient sums over pixels in fixed chunks, added in a fixed order: the result
 * is the same for any thread count). The kernels are chosen by conv2d_pack from the
 * tuning (NST_KERNEL=portable forces the plain C path). */
#ifndef NST_CONV2D_H
#define NST_CONV2D_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/ops.h"

/* ---- reference ------------------------------------------------------------------ */

/* out is (C_out,Ho,Wo) with Ho = (H-K)/S+1, Wo = (W-K)/S+1; inp is (C_in,H,W) (already padded);
 * weight is (C_out,C_in,K,K); bias is (C_out) or NULL */
void conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                        int C_in, int C_out, int H, int W, int K, int S);
/* dinp is (C_in,H,W), OVERWRITTEN; dout is (C_out,Ho,Wo) */
void conv2d_backward_input_ref(float *dinp, const float *dout, const float *weight,
                               int C_in, int C_out, int H, int W, int K, int S);
/* ACCUMULATES (+=): dweight is (C_out,C_in,K,K), dbias is (C_out) or NULL */
void conv2d_backward_weight_ref(float *dweight, float *dbias, const float *dout, const float *inp,
                                int C_in, int C_out, int H, int W, int K, int S);

/* ---- fast path ------------------------------------------------------------------ */

/* Weights repacked for the fast kernels (layouts private to conv2d.c). Zero-initialise
 * before the first conv2d_pack (conv2d_packed p = {0}); packing again after a weight
 * update reuses the memory when the shape is unchanged. */
typedef struct {
    int C_in, C_out, K, S;
    int mr_f, mr_b;    /* output channels per register block: forward, backward to input */
    float *fwd;        /* (ceil(C_out/mr_f), C_in, K, K, mr_f) */
    float *bwd;        /* the S*S phase kernels of the backward pass, flipped and transposed,
                        * one after the other: (ceil(C_in/mr_b), C_out, Ka, Kb, mr_b) each */
    size_t fwd_cap, bwd_cap; /* floats allocated */
    int use3;          /* 1: K=3, S=1 runs on conv3x3 of ops.h (AVX-512 CPUs), packed in c3 */
    cpu_tier tier;     /* the kernels every call on these weights runs (from the tuning) */
    conv3x3_packed c3;
    /* Precision NST_PRECISION_BF16 where the tuning allows AVX512-BF16 (and S <= 2):
     * BF16_AVX512, and every pass runs in bf16 (conv2d_avx512bf16.c) but for use3's
     * forward and backward to the input, which are c3's bf16 Winograd (in bf16, use3 is
     * kept only where conv3x3 builds that: >= 64 channels each). fwd16/bwd16 are fwd/bwd with the reduction's
     * channels in pairs, one word (bf16 of channel 2p low, 2p+1 high, zero past the
     * count): (ceil(C_out/mr_f), ceil(C_in/2), K, K, mr_f) and per phase
     * (ceil(C_in/mr_b), ceil(C_out/2), Ka, Kb, mr_b); NULL where use3. BF16_NONE: fp32. */
    cpu_bf16_tier bf16;
    uint32_t *fwd16, *bwd16;
    size_t fwd16_cap, bwd16_cap; /* words allocated */
} conv2d_packed;

/* Caller-owned scratch, zero-initialised, grown on demand, one call at a time; NULL =>
 * allocated per call. c3 is the scratch of the conv3x3 kernels this path may call. */
typedef struct {
    float *buf;
    size_t n;
    conv3x3_workspace c3;
} conv2d_workspace;
void conv2d_workspace_free(conv2d_workspace *ws);

/* 0 or -1 (no memory). weight is (C_out,C_in,K,K). tuning: its kernel and conv_direct
 * choose the kernels of every call on p (NULL: the best). precision: NST_PRECISION_FP32,
 * or NST_PRECISION_BF16 (resolved) for the bf16 kernels the tuning allows. */
int conv2d_pack(conv2d_packed *p, const float *weight, int C_in, int C_out, int K, int S,
                const nst_tuning *tuning, nst_precision precision);
void conv2d_packed_free(conv2d_packed *p);

/* Same contracts as the _ref versions; 0, or -1 (no memory for the scratch). */
int conv2d_forward(float *out, const float *inp, const conv2d_packed *w, const float *bias,
                   int H, int W, conv2d_workspace *ws);
int conv2d_backward_input(float *dinp, const float *dout, const conv2d_packed *w, int H, int W,
                          conv2d_workspace *ws);
/* The shape (C_in, C_out, K, S) and the kernels are w's, the layer's packed weights (the
 * gradient does not depend on their values). dbias is summed in fp32 at any precision. */
int conv2d_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
                           const conv2d_packed *w, int H, int W, conv2d_workspace *ws);

/* Which kernel the fast path dispatches to for w: "avx512bf16", "avx512" or "portable". */
const char *conv2d_kernel_name(const conv2d_packed *w);

/* ---- internals shared by conv2d.c and conv2d_avx512.c (and the tests) ------------- */

/* The core of every pass: out (Co,Ho,Wo) = bias + the valid correlation, stride S, of an
 * input view with packed weights wp (ceil(Co/mr), Ci, Kh, Kw, mr). The view: Ci channels
 * cs floats apart, rows ld floats apart, Wi readable floats per row from inp (>= (Wo-1)*S
 * + Kw). bias is (Co) or NULL. */
typedef struct {
    const float *inp;
    size_t cs;
    int ld, Wi;
    int Ci, Co, Ho, Wo, Kh, Kw, S, mr;
} conv2d_view;
void conv2d_run_portable(float *out, const conv2d_view *v, const float *wp, const float *bias);
/* The AVX-512 kernel: mr in {8,4,3,2,1}, S in {1,2} (else it returns -1 doing nothing). */
int conv2d_run_avx512(float *out, const conv2d_view *v, const float *wp, const float *bias);

/* The weight gradient: part (Co, Ci*K*K) += the sum over all output pixels of dout
 * (Co,Ho,Wo) x the input taps (input (Ci,H,W)), in chunks of R output rows, chunk after
 * chunk (each element of part gets one addition per chunk, in chunk order). */
void conv2d_dweight_portable(float *part, const float *dout, const float *inp, int Ci, int Co,
                             int H, int W, int K, int S, int R);
int conv2d_dweight_avx512(float *part, const float *dout, const float *inp, int Ci, int Co, int H,
                          int W, int K, int S, int R);

/* The same two kernels in bf16 (conv2d_avx512bf16.c, x86 builds only): inputs and weights
 * rounded to bf16 (nearest even), sums in fp32. The correlation's wp are the pairs of
 * conv2d_packed's fwd16/bwd16 ((ceil(Co/mr), ceil(Ci/2), Kh, Kw, mr) words); the weight
 * gradient copies dout and inp to bf16 in scratch, conv2d_dweight_bf16_words(..) uint16
 * (64-byte aligned). -1 (nothing done) where the fp32 kernel would return -1. */
int conv2d_run_avx512bf16(float *out, const conv2d_view *v, const uint32_t *wp, const float *bias);
int conv2d_dweight_avx512bf16(float *part, const float *dout, const float *inp, int Ci, int Co, int H,
                              int W, int K, int S, int R, uint16_t *scratch);
size_t conv2d_dweight_bf16_words(int Ci, int Co, int H, int W, int K, int S);

/* The portable path whatever the CPU (for the tests): as conv2d_forward etc. */
int conv2d_forward_portable(float *out, const float *inp, const conv2d_packed *w, const float *bias,
                            int H, int W, conv2d_workspace *ws);
int conv2d_backward_input_portable(float *dinp, const float *dout, const conv2d_packed *w, int H,
                                   int W, conv2d_workspace *ws);
int conv2d_backward_weight_portable(float *dweight, float *dbias, const float *dout,
                                    const float *inp, int C_in, int C_out, int H, int W, int K,
                                    int S, conv2d_workspace *ws);

#endif
