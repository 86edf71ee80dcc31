/* ops.h - the layers of the VGG19 feature network and the losses' building blocks.
 *
 * Every tensor is a plain float array in C order; a feature map of one image is
 * (C,H,W). Each op is a *_forward / *_backward pair. Backward functions OVERWRITE their
 * input gradient unless the comment says "accumulates". Heavy ops (conv3x3, gram) have a
 * simple reference implementation (*_ref) next to the fast one, and the tests compare
 * them. Fast ops use OpenMP threads; for a given thread count they are deterministic. */
#ifndef NST_OPS_H
#define NST_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "nst.h"

/* ---- CPU dispatch ------------------------------------------------------------------ */

typedef enum { CPU_PORTABLE = 0, CPU_AVX2 = 1, CPU_AVX512 = 2 } cpu_tier;
/* What this CPU supports (AVX2 needs FMA too; AVX-512 needs F, VL, BW and DQ). */
cpu_tier cpu_best_tier(void);
/* The tier the fast kernels use: the best, or a lower one that cap names (the tuning's
 * kernel, from NST_KERNEL). Resolved where weights are packed, so no call asks again. */
cpu_tier cpu_kernel_tier(nst_kernel cap);
/* "avx512", "avx2" or "portable". */
const char *cpu_tier_name(cpu_tier tier);

/* The bf16 kernels (bf16 inputs, fp32 sums), a tier of their own beside the fp32 one:
 * AMX tile multiplies (AMX-BF16, with the kernel's permission for tile data), or
 * AVX512-BF16's VDPBF16PS (with the AVX-512 tier above). */
typedef enum { BF16_NONE = 0, BF16_AVX512 = 1, BF16_AMX = 2 } cpu_bf16_tier;
/* What this CPU (and the kernel) allows. The first call asks Linux for AMX state
 * (arch_prctl ARCH_REQ_XCOMP_PERM); it is granted once for the whole process. */
cpu_bf16_tier cpu_bf16_best(void);
/* The best, capped by the tuning's kernel: avx512bf16 keeps AMX out, avx512 and below
 * leave no bf16 kernel (BF16_NONE). */
cpu_bf16_tier cpu_bf16_kernel(nst_kernel cap);
/* "amx", "avx512bf16" or "none". */
const char *cpu_bf16_name(cpu_bf16_tier t);

/* ---- 3x3 convolution, stride 1, zero padding 1 ("same") ------------------------ */

/* out is (C_out,H,W), inp is (C_in,H,W), weight is (C_out,C_in,3,3), bias is (C_out) */
void conv3x3_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                         int C_in, int C_out, int H, int W);
/* dinp is (C_in,H,W), dout is (C_out,H,W), weight is (C_out,C_in,3,3) */
void conv3x3_backward_input_ref(float *dinp, const float *dout, const float *weight,
                                int C_in, int C_out, int H, int W);
/* accumulates: dweight is (C_out,C_in,3,3), dbias is (C_out); inp is (C_in,H,W) */
void conv3x3_backward_weight_ref(float *dweight, float *dbias, const float *dout,
                                 const float *inp, int C_in, int C_out, int H, int W);

/* The fast path works on weights repacked once into layouts private to conv.c. */
typedef struct {
    int C_in, C_out;
    float *fwd; /* packed for the forward pass */
    float *bwd; /* packed (flipped, transposed) for the backward pass to the input */
    /* Winograd F(2x2,3x3) transforms of the same two kernels (conv.c), or NULL: built only
     * where that path pays (C_in >= 64 and C_out >= 64) and the CPU has AVX-512. Each is
     * 16/9 the size of the weights. wino_bwd is NULL where the backward pass reads wino_fwd
     * transposed (C_in a multiple of 8: all of VGG19, saving 143 MB of its 285). */
    float *wino_fwd, *wino_bwd;
    const float *weight; /* the caller's (C_out,C_in,3,3) weights, borrowed: the lean
                            pack's fallback when a direct pack was not kept */
    cpu_tier tier;       /* the kernels every call on these weights runs (from the tuning) */
    int winograd;        /* 1: Winograd where it was built (not NST_CONV=direct) */
    /* Precision NST_PRECISION_BF16: where Winograd is built, both passes run it with bf16
     * GEMMs on these kernels, from wino16_fwd / wino16_bwd, (16, ceil(n_out/8),
     * ceil(n_in/2), 8) words each holding the bf16 transforms of input channels 2p (low
     * half) and 2p+1; the lean pack then keeps no fp32 pack of this layer. Elsewhere (fewer
     * than 64 channels) the layer runs in fp32. BF16_NONE: fp32 throughout. */
    cpu_bf16_tier bf16;
    uint32_t *wino16_fwd, *wino16_bwd;
} conv3x3_packed;

/* Scratch memory of the fast path (the Winograd transforms), kept by the caller from
 * call to call: allocating it afresh each time costs page faults, ~10% on small layers.
 * Zero-initialise; grown on demand; one call at a time may use it. NULL: allocated per call. */
typedef struct {
    float *buf;
    size_t n;
} conv3x3_workspace;
void conv3x3_workspace_free(conv3x3_workspace *ws);

/* Returns 0, or -1 if out of memory. weight is (C_out,C_in,3,3). tuning: its kernel and
 * conv_direct choose the kernels of every call on p (NULL: the best, Winograd). precision:
 * NST_PRECISION_FP32, or NST_PRECISION_BF16 (resolved: nst_precision_resolve_cpu) for the
 * bf16 kernels the tuning allows (fp32 where it allows none). */
int conv3x3_pack(conv3x3_packed *p, const float *weight, int C_in, int C_out, const nst_tuning *tuning,
                 nst_precision precision);
void conv3x3_packed_free(conv3x3_packed *p);
/* The same, but without the direct-kernel packs that the Winograd kernels make useless
 * (the forward one where Winograd runs the forward pass, the backward one where it runs
 * the backward pass): about 100 MB less for VGG19. Only where the pack's kernels are
 * AVX-512 with Winograd (the tuning asks for no other); if a direct pass is needed
 * anyway (no memory for Winograd's scratch), the reference convolution of the borrowed
 * weights runs instead: slow, the same results. weight must outlive the pack. */
int conv3x3_pack_lean(conv3x3_packed *p, const float *weight, int C_in, int C_out, const nst_tuning *tuning,
                      nst_precision precision);
/* Same contracts as the _ref versions. */
void conv3x3_forward(float *out, const float *inp, const conv3x3_packed *w, const float *bias,
                     int H, int W, conv3x3_workspace *ws);
void conv3x3_backward_input(float *dinp, const float *dout, const conv3x3_packed *w, int H, int W,
                            conv3x3_workspace *ws);
/* The forward pass fused with the ReLU after it: the same as conv3x3_forward then
 * relu_forward(out, out), without a second pass over memory. */
void conv3x3_forward_relu(float *out, const float *inp, const conv3x3_packed *w, const float *bias,
                          int H, int W, conv3x3_workspace *ws);
/* The backward pass to the input fused with the backward of the ReLU that produced this
 * conv's input: the same as conv3x3_backward_input then relu_backward(dinp, dinp, mask),
 * without a second pass over memory. mask is that ReLU's output, (C_in,H,W). */
void conv3x3_backward_input_relu(float *dinp, const float *dout, const conv3x3_packed *w,
                                 const float *mask, int H, int W, conv3x3_workspace *ws);
/* Which kernel the fast path dispatches to for w: "avx512", "avx2" or "portable", or for
 * a layer that runs in bf16 "amx" or "avx512bf16". */
const char *conv3x3_kernel_name(const conv3x3_packed *w);

/* ---- Gram matrix ---------------------------------------------------------------- */

/* G is (C,C), F is (C,N): G = scale * F F^T */
void gram_forward_ref(float *G, const float *F, int C, int N, float scale);
/* accumulates: dF is (C,N), dG is (C,C): dF += scale * (dG + dG^T) F */
void gram_backward_ref(float *dF, const float *dG, const float *F, int C, int N, float scale);
/* The fast path on the kernels of tier (cpu_kernel_tier; the network's, see vgg19.h). */
void gram_forward(float *G, const float *F, int C, int N, float scale, cpu_tier tier);
void gram_backward(float *dF, const float *dG, const float *F, int C, int N, float scale, cpu_tier tier);

/* ---- element-wise and pooling ----------------------------------------------------- */

/* out, inp are (n); out may equal inp */
void relu_forward(float *out, const float *inp, size_t n);
/* dinp, dout, inp are (n): dinp = dout where inp > 0, else 0; dinp may equal dout */
void relu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* 2x2 max pooling, stride 2, floor: out is (C,H/2,W/2), inp is (C,H,W) */
void maxpool2x2_forward(float *out, const float *inp, int C, int H, int W);
/* dinp is (C,H,W) (overwritten; rows/cols past 2*(H/2) get 0), dout is (C,H/2,W/2).
 * The gradient goes to the first maximum in each window (row-major), as PyTorch does.
 * relu_below: inp is a ReLU's output, and that ReLU's backward is fused in (the same as
 * relu_backward(dinp, dinp, inp) afterwards). */
void maxpool2x2_backward(float *dinp, const float *dout, const float *inp, int C, int H, int W,
                         int relu_below);

/* ---- reductions (double, fixed order: the same result for any thread count) ---- */

/* a, b are (n): sum a*b */
double dot_product(const float *a, const float *b, size_t n);
/* a, b are (n): sum (a-b)^2; b may be NULL (then sum a^2) */
double sum_sq_diff(const float *a, const float *b, size_t n);

#endif
