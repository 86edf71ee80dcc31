/* layers_cuda.h - the fast-style network's layers on the GPU (internal, callable from C):
 * the CUDA twins of tensor/layers.h and tensor/conv2d.h, with the same definitions.
 *
 * Conventions
 *   - Every pointer is device memory; a batch of N images is (N,C,H,W) in C order, and the
 *     per-plane ops (padding, upsampling) take NC = N*C planes.
 *   - Every function queues its work on ctx's stream and returns without waiting; the
 *     status only reports a failed launch or library call (one-line message).
 *   - As on the CPU, backward functions OVERWRITE their input gradient and ACCUMULATE (+=)
 *     into parameter gradients. Parameter gradients are summed over the batch.
 *   - Deterministic: reductions run in a fixed order (per-thread double sums, fixed
 *     trees, no atomics), and the convolutions use deterministic cuDNN algorithms, so one
 *     input gives one output bit for bit, run after run.
 * Built only with CUDA (called by the CUDA sources, and by tests built with CUDA). */
#ifndef NST_LAYERS_CUDA_H
#define NST_LAYERS_CUDA_H

#include <stddef.h>

#include "cuda/cuda_common.h"
#include "optim/adam_rule.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reflection padding and nearest-neighbour upsampling -------------------------------- */

/* out is (NC,H+2p,W+2p), inp is (NC,H,W); p < H, p < W (PyTorch ReflectionPad2d) */
nst_status cu_reflect_pad_forward(nst_cuda *ctx, float *out, const float *inp, int NC, int H, int W,
                                  int p, nst_error *err);
/* dinp is (NC,H,W) (overwritten), dout is (NC,H+2p,W+2p) */
nst_status cu_reflect_pad_backward(nst_cuda *ctx, float *dinp, const float *dout, int NC, int H, int W,
                                   int p, nst_error *err);
/* nearest 2x then reflect pad, in one pass: out is (NC,2H+2p,2W+2p), inp is (NC,H,W); p < 2H, p < 2W */
nst_status cu_upsample2x_reflect_pad_forward(nst_cuda *ctx, float *out, const float *inp, int NC, int H,
                                             int W, int p, nst_error *err);
/* its backward: dinp is (NC,H,W) (overwritten), dout is (NC,2H+2p,2W+2p) */
nst_status cu_upsample2x_reflect_pad_backward(nst_cuda *ctx, float *dinp, const float *dout, int NC, int H,
                                              int W, int p, nst_error *err);

/* ---- instance normalisation ---------------------------------------------------------------- */

/* Device scratch (bytes) the norm's reductions need for NC planes of HW pixels. */
size_t cu_instance_norm_scratch_bytes(int NC, int HW);
/* out = gamma * (inp - mean) * rstd + beta per plane (biased variance, eps 1e-5), then
 * ReLU if relu, then + skip if skip is not NULL (the residual sum, after the norm).
 * out, inp, skip are (N,C,HW); gamma, beta are (C); mean, rstd are (N,C), written here.
 * scratch: cu_instance_norm_scratch_bytes(N*C, HW) bytes. out must not alias inp. */
nst_status cu_instance_norm_forward(nst_cuda *ctx, float *out, float *mean, float *rstd, const float *inp,
                                    const float *gamma, const float *beta, const float *skip, int N, int C,
                                    int HW, int relu, void *scratch, nst_error *err);
/* Inference's fusion of a norm with the next layer's padding: the statistics alone
 * (mean, rstd (N,C) of inp (N,C,HW)), then out = reflect_pad(upsample2x if up(relu(norm(inp))))
 * in one pass, without the normalised image in between: out is (N*C, Hs+2p, Ws+2p) with
 * Hs = H << up, Ws = W << up; inp is (N,C,H,W); every value is the bits that
 * cu_instance_norm_forward then the padding would give. */
nst_status cu_instance_norm_stats(nst_cuda *ctx, float *mean, float *rstd, const float *inp, int NC, int HW,
                                  void *scratch, nst_error *err);
nst_status cu_instance_norm_pad(nst_cuda *ctx, float *out, const float *inp, const float *mean, const float *rstd,
                                const float *gamma, const float *beta, int N, int C, int H, int W, int p, int up,
                                int relu, nst_error *err);
/* dinp, dout, out, inp are (N,C,HW); dgamma, dbeta (C) accumulate (summed over the batch);
 * out is read for the ReLU's mask only (may be NULL when relu = 0). dinp may equal dout. */
nst_status cu_instance_norm_backward(nst_cuda *ctx, float *dinp, float *dgamma, float *dbeta,
                                     const float *dout, const float *out, const float *inp,
                                     const float *mean, const float *rstd, const float *gamma, int N,
                                     int C, int HW, int relu, void *scratch, nst_error *err);

/* ---- elementwise ----------------------------------------------------------------------------- */

/* out = 255 * sigmoid(inp); out may equal inp */
nst_status cu_sigmoid255_forward(nst_cuda *ctx, float *out, const float *inp, size_t n, nst_error *err);
/* dinp = dout * out * (1 - out/255); dinp may equal dout */
nst_status cu_sigmoid255_backward(nst_cuda *ctx, float *dinp, const float *dout, const float *out, size_t n,
                                  nst_error *err);
/* out = a + b; out may equal a or b */
nst_status cu_add(nst_cuda *ctx, float *out, const float *a, const float *b, size_t n, nst_error *err);
/* x (N,C,HW) += bias (C) per channel */
nst_status cu_add_bias(nst_cuda *ctx, float *x, const float *bias, int N, int C, int HW, nst_error *err);
/* dbias (C) += the sum of dout (N,C,HW) over n and pixels */
nst_status cu_bias_backward(nst_cuda *ctx, float *dbias, const float *dout, int N, int C, int HW,
                            nst_error *err);

/* Adam, optim/adam_rule.h on each of the n elements, with the step's coefficients from
 * adam_next (in double, as the CPU does). */
nst_status cu_adam_update(nst_cuda *ctx, float *x, float *m, float *v, const float *g, size_t n, adam_coeffs c,
                          nst_error *err);

/* ---- images <-> planes ------------------------------------------------------------------------ */

/* img (H,W,3) 0..255 -> x (3,Hp,Wp) 0..1, the border past W, H clamped to the edge (stylenet_train.c) */
nst_status cu_image_to_planes(nst_cuda *ctx, float *x, const float *img, int H, int W, int Hp, int Wp,
                              nst_error *err);
/* y (3,Hp,Wp) -> img (H,W,3), the top-left H x W */
nst_status cu_planes_to_image(nst_cuda *ctx, float *img, const float *y, int H, int W, int Hp, int Wp,
                              nst_error *err);

/* ---- device buffers, for tests and tools (synchronous copies) ------------------------------ */

nst_status cu_buffer(nst_cuda *ctx, float **p, size_t n, nst_error *err); /* n floats */
void cu_buffer_free(float *p);
nst_status cu_upload(nst_cuda *ctx, float *dst, const float *src, size_t n, nst_error *err);
nst_status cu_download(nst_cuda *ctx, float *dst, const float *src, size_t n, nst_error *err);
/* waits for everything queued on ctx's stream */
nst_status cu_sync(nst_cuda *ctx, nst_error *err);

/* ---- convolution (cuDNN) -------------------------------------------------------------------- */

/* Precision of the convolutions (nst_precision): NST_PRECISION_FP32 (plain float FMA, the
 * CPU's definition) or NST_PRECISION_TF32 (tensor cores with TF32 inputs, float accumulation:
 * faster, ~1e-3 relative), or NST_PRECISION_FP16 (inference only: fp16 tensors in NHWC
 * layout, tensor cores with float accumulation; see the fp16 section below). */

/* One convolution geometry (conv2d.h: valid, stride S, no bias inside; the caller pads):
 * inp (N,C_in,H,W), weight (C_out,C_in,K,K), out (N,C_out,Ho,Wo), Ho = (H-K)/S+1.
 * With NST_PRECISION_FP16 (train = 0 only) the tensors are fp16 NHWC, (N,H,W,C_in) -> (N,Ho,Wo,C_out),
 * the weights fp16 (C_out,K,K,C_in), and cu_conv_forward's float pointers are those
 * buffers, cast.
 * Algorithms are chosen once here, for each pass (train = 0: the forward pass only): the
 * first deterministic one (else, never seen, the first other) in the precision asked for
 * that needs at most ws_limit bytes of workspace, in the order of cudnnFind's
 * measurements (search = 1: the fastest on this
 * GPU now, but timing noise may pick another one next run) or of cuDNN's heuristics
 * (search = 0: the same choice every run, so that training is reproducible bit for bit).
 * *ws_bytes receives the most workspace that any of its passes needs.
 * Exceptions to cuDNN: the 9x9 stride-1 geometry with at most 4 output channels (the
 * network's output layer; fp32 and tf32) runs on own kernels (plain float FMA, fixed-order
 * sums, about 10x faster than cuDNN's choices there) where own is 1 (the tuning's
 * cuda_no_own_conv, $NST_CUDA_OWN_CONV=0, makes it 0); and a
 * 3x3 stride-1 backward-data by heuristics takes ALGO_1 when cuDNN lists it (FFT_TILING,
 * often ranked first, is several times slower on Hopper). */
typedef struct cu_conv cu_conv;
nst_status cu_conv_create(cu_conv **conv, nst_cuda *ctx, int N, int C_in, int C_out, int H, int W, int K,
                          int S, nst_precision precision, int train, int search, int own, size_t ws_limit,
                          size_t *ws_bytes, nst_error *err);
void cu_conv_destroy(cu_conv *conv);
/* The algorithms chosen, e.g. "fwd 1 / data 1 / filter 1" (for reports). */
const char *cu_conv_describe(const cu_conv *conv);
/* out = conv(inp) (overwritten) */
nst_status cu_conv_forward(nst_cuda *ctx, const cu_conv *conv, float *out, const float *inp,
                           const float *weight, void *ws, size_t ws_bytes, nst_error *err);
/* dinp (N,C_in,H,W) = the gradient (overwritten) */
nst_status cu_conv_backward_input(nst_cuda *ctx, const cu_conv *conv, float *dinp, const float *dout,
                                  const float *weight, void *ws, size_t ws_bytes, nst_error *err);
/* dweight += the gradient, summed over the batch */
nst_status cu_conv_backward_weight(nst_cuda *ctx, const cu_conv *conv, float *dweight, const float *dout,
                                   const float *inp, void *ws, size_t ws_bytes, nst_error *err);

/* ---- fp16 NHWC inference (NST_PRECISION_FP16) ---------------------------------------------------------
 * The style network's forward pass for apply in half precision: activations are fp16
 * (N,H,W,Ce) with the channels padded to Ce = a multiple of 8 (zeros; tensor cores want
 * channel counts in multiples of 8), the statistics and every norm, ReLU, skip sum and
 * sigmoid computed in float (sums in double). Half buffers are void * here (device). */

/* channels padded to a multiple of 8 */
static inline int cu_h_channels(int C) { return (C + 7) / 8 * 8; }
/* wh (Co_e,K,K,Ci_e) fp16 <- w (C_out,C_in,K,K) fp32, zeros in the padded channels */
nst_status cu_h_weights(nst_cuda *ctx, void *wh, const float *w, int C_out, int C_in, int K, nst_error *err);
/* out (N,H+2p,W+2p,Ce) fp16 <- reflect_pad(x), x (N,3,H,W) fp32 planes; channels >= 3 zero */
nst_status cu_h_input_pad(nst_cuda *ctx, void *out, const float *x, int N, int H, int W, int p, int Ce,
                          nst_error *err);
/* out (N,(H<<up)+2p,(W<<up)+2p,Ce) <- reflect_pad(upsample2x if up(inp)), inp (N,H,W,Ce) */
nst_status cu_h_pad(nst_cuda *ctx, void *out, const void *inp, int N, int H, int W, int Ce, int p, int up,
                    nst_error *err);
/* Device scratch (bytes) of cu_h_norm_stats for N images of HW pixels and Ce channels. */
size_t cu_h_norm_scratch_bytes(int N, int Ce, int HW);
/* mean, rstd (N,C) of z (N,HW,Ce)'s first C channels (biased variance, eps 1e-5) */
nst_status cu_h_norm_stats(nst_cuda *ctx, float *mean, float *rstd, const void *z, int N, int C, int Ce, int HW,
                           void *scratch, nst_error *err);
/* out (N,(H<<up)+2p,(W<<up)+2p,Ce) <- reflect_pad(upsample(relu?(norm(z)) + skip)): z, skip
 * (N,H,W,Ce) (skip may be NULL), gamma, beta (C) fp32; the padded channels get 0 */
nst_status cu_h_norm_apply(nst_cuda *ctx, void *out, const void *z, const float *mean, const float *rstd,
                           const float *gamma, const float *beta, const void *skip, int N, int C, int Ce, int H,
                           int W, int p, int up, int relu, nst_error *err);
/* The fp16 network's last layer and output in one kernel (own, not cuDNN): y (N,3,Hp-8,Wp-8)
 * fp32 planes <- 255 * sigmoid(conv9x9(inp) + bias), inp (N,Hp,Wp,Ce) fp16 (padded), wh
 * (Co_e,9,9,Ce) fp16 as cu_h_weights leaves it (its first 3 output channels), products
 * and sums in float */
nst_status cu_h_conv9_output(nst_cuda *ctx, float *y, const void *inp, const void *wh, const float *bias, int N,
                             int Hp, int Wp, int Ce, nst_error *err);
/* y (N,3,H,W) fp32 planes <- 255 * sigmoid(z + bias) of z (N,H,W,Ce)'s first 3 channels */
nst_status cu_h_output(nst_cuda *ctx, float *y, const void *z, const float *bias, int N, int H, int W, int Ce,
                       nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
