/* stylenet_cuda.h - the style network (net/stylenet.h) on the GPU (internal, callable from
 * C; built only with CUDA). nst_style_net_apply reaches it through the CUDA table
 * (stylenet_cuda_backend, defined in stylenet_cuda.cu; transfer/stylenet_backend.h), the
 * trainer through stylenet_train_cuda.h; tests and benchmarks, built with CUDA only, call
 * it directly.
 *
 * The same layers and definitions as stylenet_forward / stylenet_backward, on a batch of N
 * images at once (instance norm keeps the images independent; the parameter gradients
 * are summed over the batch). Life cycle:
 *   stylenet_cuda_create()    the network's shape, its parameters uploaded (one copy), and for
 *                       training a gradient vector on the device
 *   stylenet_cuda_resize()    activations, cuDNN algorithms and workspace for N x H x W; all
 *                       device memory of a size is allocated here, once
 *   stylenet_cuda_forward()   stylenet_cuda_input() -> stylenet_cuda_output()
 *   stylenet_cuda_backward()  accumulates into stylenet_cuda_grads()
 * Parameters live on the device in the host's layout (stylenet.params): uploads and
 * downloads are one copy each. The convolutions' algorithms are cuDNN's heuristic choice,
 * the same every run (results reproducible bit for bit); with the network's tuning
 * (stylenet.tuning) cudnn_search = MEASURE (NST_CUDNN_SEARCH=1) they are measured instead (cudnnFind: sometimes faster, but timing
 * noise may pick other algorithms in another run, which changes the last bits). */
#ifndef NST_STYLENET_CUDA_H
#define NST_STYLENET_CUDA_H

#include <stddef.h>
#include <stdio.h>

#include "cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "net/stylenet.h" /* a C header */

typedef struct stylenet_cuda stylenet_cuda;

/* ctx is borrowed (it must outlive the network). train: gradients and the backward pass.
 * precision: NST_PRECISION_FP32 or NST_PRECISION_TF32 (cuda/layers_cuda.h), or
 * NST_PRECISION_FP16 for inference (train = 0): activations in fp16 NHWC with channels padded to multiples of 8, convolutions on fp16
 * tensor cores accumulating in float, statistics, norms and the sigmoid in float; the
 * input and output stay fp32 planes. Copies the shape (layer flags included) and uploads
 * net->params. */
nst_status stylenet_cuda_create(stylenet_cuda **g, nst_cuda *ctx, const stylenet *net, int train,
                                nst_precision precision, nst_error *err);
void stylenet_cuda_free(stylenet_cuda *g);

/* One copy each way of the whole parameter vector (net->n_params floats, host memory). */
nst_status stylenet_cuda_upload_params(stylenet_cuda *g, const float *params, nst_error *err);
nst_status stylenet_cuda_download_params(stylenet_cuda *g, float *params, nst_error *err);
/* The gradients, downloaded (tests). */
nst_status stylenet_cuda_download_grads(stylenet_cuda *g, float *grads, nst_error *err);
/* Device vectors of n_params floats. */
float *stylenet_cuda_params(stylenet_cuda *g);
float *stylenet_cuda_grads(stylenet_cuda *g);
size_t stylenet_cuda_n_params(const stylenet_cuda *g);
nst_status stylenet_cuda_zero_grads(stylenet_cuda *g, nst_error *err);

/* Buffers for N images of H x W (multiples of 4, at least 8); nothing happens when the
 * size is unchanged. Refused (NST_ERR_LIMIT) when a tensor would pass 2^31 elements. */
nst_status stylenet_cuda_resize(stylenet_cuda *g, int N, int H, int W, nst_error *err);
/* Device memory of the activations, workspace included (bytes). */
size_t stylenet_cuda_bytes(const stylenet_cuda *g);
/* The cuDNN algorithms chosen for layer l (for reports), or "" */
const char *stylenet_cuda_conv_about(const stylenet_cuda *g, int l);
/* (N,3,H,W) RGB planes 0..1, device */
float *stylenet_cuda_input(stylenet_cuda *g);
/* (N,3,H,W) 0..255, device, after stylenet_cuda_forward */
const float *stylenet_cuda_output(const stylenet_cuda *g);
nst_status stylenet_cuda_forward(stylenet_cuda *g, nst_error *err);
/* dout: d(loss)/d(output) (N,3,H,W), device. Adds d(loss)/d(params) into stylenet_cuda_grads;
 * writes d(loss)/d(input) into dinput (device, (N,3,H,W)) unless NULL. Needs train. */
nst_status stylenet_cuda_backward(stylenet_cuda *g, const float *dout, float *dinput, nst_error *err);

/* With the network's tuning cuda_profile (NST_CUDA_PROFILE=1) when it was created, every
 * pass records timing events around each layer's parts; this gives the last forward
 * (and backward) pass's times per layer to the tuning's log (it waits for the stream). A
 * line saying so without the variable. */
nst_status stylenet_cuda_profile_log(stylenet_cuda *g, const char *title, nst_error *err);

/* Stylises img (H,W,3, 0..255, host) run at Hp x Wp (the caller's padding rule) into out
 * (allocated here): one upload of the image, the forward pass, one download. */
nst_status stylenet_cuda_apply(stylenet_cuda *g, const nst_image *img, int Hp, int Wp, nst_image *out, nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
