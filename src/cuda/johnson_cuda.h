/* johnson_cuda.h - the fast-style network (net/johnson.h) on the GPU (internal, callable
 * from C; built only with CUDA: callers guard with #ifdef NST_HAVE_CUDA).
 *
 * The same layers and definitions as johnson_forward / johnson_backward, on a batch of N
 * images at once (instance norm keeps the images independent; the parameter gradients
 * are summed over the batch). Life cycle:
 *   jn_cuda_create()    the network's shape, its parameters uploaded (one copy), and for
 *                       training a gradient vector on the device
 *   jn_cuda_resize()    activations, cuDNN algorithms and workspace for N x H x W; all
 *                       device memory of a size is allocated here, once
 *   jn_cuda_forward()   jn_cuda_input() -> jn_cuda_output()
 *   jn_cuda_backward()  accumulates into jn_cuda_grads()
 * Parameters live on the device in the host's layout (johnson_net.params): uploads and
 * downloads are one copy each. The convolutions' algorithms are cuDNN's heuristic choice,
 * the same every run (results reproducible bit for bit); with the network's tuning
 * (johnson_net.tuning) cudnn_search = MEASURE (NST_CUDNN_SEARCH=1) they are measured instead (cudnnFind: sometimes faster, but timing
 * noise may pick other algorithms in another run, which changes the last bits). */
#ifndef NST_JOHNSON_CUDA_H
#define NST_JOHNSON_CUDA_H

#include <stddef.h>
#include <stdio.h>

#include "cuda/cuda_common.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "net/johnson.h" /* a C header */

typedef struct jn_cuda jn_cuda;

/* ctx is borrowed (it must outlive the network). train: gradients and the backward pass.
 * precision: CU_FP32 or CU_TF32 (cuda/layers_cuda.h), or CU_FP16 for inference (train = 0):
 * activations in fp16 NHWC with channels padded to multiples of 8, convolutions on fp16
 * tensor cores accumulating in float, statistics, norms and the sigmoid in float; the
 * input and output stay fp32 planes. Copies the shape (layer flags included) and uploads
 * net->params. */
nst_status jn_cuda_create(jn_cuda **g, nst_cuda *ctx, const johnson_net *net, int train, int precision,
                          nst_error *err);
void jn_cuda_free(jn_cuda *g);

/* One copy each way of the whole parameter vector (net->n_params floats, host memory). */
nst_status jn_cuda_upload_params(jn_cuda *g, const float *params, nst_error *err);
nst_status jn_cuda_download_params(jn_cuda *g, float *params, nst_error *err);
/* The gradients, downloaded (tests). */
nst_status jn_cuda_download_grads(jn_cuda *g, float *grads, nst_error *err);
/* Device vectors of n_params floats. */
float *jn_cuda_params(jn_cuda *g);
float *jn_cuda_grads(jn_cuda *g);
size_t jn_cuda_n_params(const jn_cuda *g);
nst_status jn_cuda_zero_grads(jn_cuda *g, nst_error *err);

/* Buffers for N images of H x W (multiples of 4, at least 8); nothing happens when the
 * size is unchanged. Refused (NST_ERR_LIMIT) when a tensor would pass 2^31 elements. */
nst_status jn_cuda_resize(jn_cuda *g, int N, int H, int W, nst_error *err);
/* Device memory of the activations, workspace included (bytes). */
size_t jn_cuda_bytes(const jn_cuda *g);
/* The cuDNN algorithms chosen for layer l (for reports), or "" */
const char *jn_cuda_conv_about(const jn_cuda *g, int l);
/* (N,3,H,W) RGB planes 0..1, device */
float *jn_cuda_input(jn_cuda *g);
/* (N,3,H,W) 0..255, device, after jn_cuda_forward */
const float *jn_cuda_output(const jn_cuda *g);
nst_status jn_cuda_forward(jn_cuda *g, nst_error *err);
/* dout: d(loss)/d(output) (N,3,H,W), device. Adds d(loss)/d(params) into jn_cuda_grads;
 * writes d(loss)/d(input) into dinput (device, (N,3,H,W)) unless NULL. Needs train. */
nst_status jn_cuda_backward(jn_cuda *g, const float *dout, float *dinput, nst_error *err);

/* With the network's tuning cuda_profile (NST_CUDA_PROFILE=1) when it was created, every
 * pass records timing events around each layer's parts; this prints the last forward
 * (and backward) pass's times per layer to out (it waits for the stream). A line saying
 * so without the variable. */
nst_status jn_cuda_profile_print(jn_cuda *g, FILE *out, const char *title, nst_error *err);

/* Stylises img (H,W,3, 0..255, host) run at Hp x Wp (the caller's padding rule) into out
 * (allocated here): one upload of the image, the forward pass, one download. */
nst_status jn_cuda_apply(jn_cuda *g, const nst_image *img, int Hp, int Wp, nst_image *out, nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
