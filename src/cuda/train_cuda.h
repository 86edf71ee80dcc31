/* train_cuda.h - a training step of the fast-style network on the GPU (internal, callable
 * from C; built only with CUDA: callers guard with #ifdef NST_HAVE_CUDA). The trainer of
 * transfer/fast.c uses it when the device is CUDA; fast.c keeps the data, checkpoints and
 * previews, and the host copy of the parameters and Adam state, which it refreshes with
 * fast_cuda_get_state only at checkpoints.
 *
 * One step, all on the device, with the definitions of fast.c:
 *   the whole batch through the style network at once (jn_cuda, N = batch);
 *   per photo (the VGG19 on the GPU takes one image), on up to 4 streams at once: the
 *   photo's content features (beside the network's forward pass), then the stylised
 *   photo's VGG19 forward and losses, backward to the image, BGR -> RGB, total
 *   variation, into the batch's output gradient;
 *   the network's backward over the batch, then Adam (own kernel).
 * The only host round trip is the step's loss values (one small copy). From the second
 * step on, the work between the upload and Adam replays as one CUDA graph. */
#ifndef NST_TRAIN_CUDA_H
#define NST_TRAIN_CUDA_H

#include "cuda/cuda_common.h"
#include "nst.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "net/johnson.h" /* a C header */

typedef struct fast_cuda fast_cuda;

/* ctx is borrowed. net: the network's shape and its initial parameters (uploaded).
 * content_w, style_w: the loss weight at each VGG layer (NST_NUM_LAYERS entries, 0 where
 * not a tap, weights already multiplied by cfg's content/style weight); style_A: the
 * painting's Gram (C,C) at each style layer (host, NULL elsewhere). Adam starts at zero.
 * batch: the host buffer the steps will upload from ((batch,3,size,size) floats, or NULL):
 * it is page-locked until fast_cuda_free, so that the upload is a fast DMA. */
nst_status fast_cuda_build(fast_cuda **f, nst_cuda *ctx, const nst_train_config *cfg, const nst_vgg19 *vgg,
                           const johnson_net *net, const float *content_w, const float *style_w,
                           const float *const *style_A, float *batch, nst_error *err);
void fast_cuda_free(fast_cuda *f);

/* One Adam step on the batch (host, (batch,3,size,size) RGB planes 0..1). adam_t: Adam's
 * step count including this step (1 for the first). losses: the weighted losses, mean over
 * the batch (content, style, tv). */
nst_status fast_cuda_step(fast_cuda *f, const float *batch, int adam_t, double losses[3], nst_error *err);
/* The same without the update: the losses, and the gradient left in the device's vector
 * (fast_cuda_get_grads). */
nst_status fast_cuda_loss_grad(fast_cuda *f, const float *batch, double losses[3], nst_error *err);

/* Host <-> device copies of the parameters (johnson_net.params layout) and Adam's m, v
 * (n_params each; m, v may be NULL to skip them). */
nst_status fast_cuda_get_state(fast_cuda *f, float *params, float *m, float *v, nst_error *err);
nst_status fast_cuda_set_state(fast_cuda *f, const float *params, const float *m, const float *v, nst_error *err);
nst_status fast_cuda_get_grads(fast_cuda *f, float *grads, nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
