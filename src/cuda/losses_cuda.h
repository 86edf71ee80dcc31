/* losses_cuda.h - the losses of style transfer on the GPU (internal; callable from C and
 * from .cu files), with the definitions of loss/losses.h, each a forward (value) /
 * backward (gradient) pair. Every float pointer is GPU memory; every call only queues work
 * on ctx's stream.
 *
 * Values: a forward function does not return its value (that would wait for the GPU); it
 * writes it as a double into a device slot (`double *out`, GPU memory), so that all the
 * losses of a step can be read with one small copy. Sums run in double, in a fixed order
 * (a fixed grid, then one block), so they are the same from run to run.
 * Backward functions ACCUMULATE (+=) into the gradient, scaled by `scale` (the loss's
 * weight, dTotal/dThisLoss), as on the CPU. */
#ifndef NST_LOSSES_CUDA_H
#define NST_LOSSES_CUDA_H

#include <stddef.h>

#include "cuda/cuda_common.h"
#include "nst.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Scratch for the two-pass sums: allocate once (per run), pass to every forward call.
 * One reduction at a time per scratch (calls on one stream are serialised anyway). */
typedef struct {
    double *partial; /* device, CUDA_REDUCE_BLOCKS doubles */
} cuda_reduce_scratch;
#define CUDA_REDUCE_BLOCKS 512
nst_status cuda_reduce_scratch_build(cuda_reduce_scratch *r, nst_cuda *ctx, nst_error *err);
void cuda_reduce_scratch_free(cuda_reduce_scratch *r);

/* *out = sum_i a[i]*b[i] (a, b are (n)). */
nst_status cuda_dot(nst_cuda *ctx, cuda_reduce_scratch *r, const float *a, const float *b, size_t n,
                    double *out, nst_error *err);
/* *out = sum_i (a[i]-b[i])^2; b may be NULL (sum a^2). */
nst_status cuda_sum_sq_diff(nst_cuda *ctx, cuda_reduce_scratch *r, const float *a, const float *b,
                            size_t n, double *out, nst_error *err);
/* *out = max_i |a[i]|. */
nst_status cuda_abs_max(nst_cuda *ctx, cuda_reduce_scratch *r, const float *a, size_t n, double *out,
                        nst_error *err);

/* Content loss mean((F-P)^2): *out = the value. F, P, dF are (n).
 * backward: dF += (2*scale/n) * (F-P). */
nst_status cuda_content_loss_forward(nst_cuda *ctx, cuda_reduce_scratch *r, const float *F, const float *P,
                                     size_t n, double *out, nst_error *err);
nst_status cuda_content_loss_backward(nst_cuda *ctx, float *dF, const float *F, const float *P, size_t n,
                                      float scale, nst_error *err);

/* Gram matrix G = gscale * F F^T (cuBLAS SGEMM), F is (C,N) (a feature map (C,H,W), N =
 * H*W), G is (C,C). beta = 0 overwrites G; beta = 1 adds (accumulating several images'
 * Grams, e.g. a blend of styles: then gscale carries the blend weight). */
nst_status cuda_gram_forward(nst_cuda *ctx, float *G, const float *F, int C, int N, float gscale,
                             float beta, nst_error *err);
/* accumulates: dF += gscale * (dG + dG^T) F (cuBLAS SGEMM); S is a (C,C) scratch that
 * receives dG + dG^T (S may equal dG). */
nst_status cuda_gram_backward(nst_cuda *ctx, float *dF, float *S, const float *dG, const float *F, int C,
                              int N, float gscale, nst_error *err);

/* Style loss mean((G-A)^2) over the C*C entries with G = gscale * F F^T: writes G (needed
 * by backward) and *out = the value. F is (C,N); A, G are (C,C).
 * backward: dF += scale * dL/dF = gscale * (dG + dG^T) F with dG = (2*scale/C^2)(G-A);
 * dG is a (C,C) scratch. */
nst_status cuda_style_loss_forward(nst_cuda *ctx, cuda_reduce_scratch *r, float *G, const float *F,
                                   const float *A, int C, int N, float gscale, double *out, nst_error *err);
nst_status cuda_style_loss_backward(nst_cuda *ctx, float *dF, float *dG, const float *G, const float *A,
                                    const float *F, int C, int N, float gscale, float scale, nst_error *err);

/* Total variation: mean over the image of the squared differences between horizontal and
 * vertical neighbours (see loss/losses.h); x and dx are (C,H,W).
 * forward: *out = the value; backward: dx += scale * dTV/dx. */
nst_status cuda_tv_loss_forward(nst_cuda *ctx, cuda_reduce_scratch *r, const float *x, int C, int H, int W,
                                double *out, nst_error *err);
nst_status cuda_tv_loss_backward(nst_cuda *ctx, float *dx, const float *x, int C, int H, int W, float scale,
                                 nst_error *err);

/* Math mode of ctx's cuBLAS handle for the Grams: NST_PRECISION_FP32 (no tensor cores) or
 * NST_PRECISION_TF32. */
nst_status cuda_set_gemm_precision(nst_cuda *ctx, nst_precision p, nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
