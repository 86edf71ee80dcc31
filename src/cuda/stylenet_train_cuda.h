/* stylenet_train_cuda.h - a training step of the style network on the GPU (internal,
 * callable from C; built only with CUDA). The trainer of transfer/stylenet_train.c reaches
 * it through the CUDA trainer table (stylenet_trainer_cuda_backend, defined in
 * stylenet_train_cuda.cu; transfer/stylenet_backend.h); tests and benchmarks, built with
 * CUDA only, call it directly. The host trainer keeps the data, checkpoints and previews,
 * and the host copy of the parameters and Adam state, which it refreshes with
 * stylenet_train_cuda_get_state only at checkpoints.
 *
 * One step, all on the device, with the definitions of stylenet_train.c:
 *   the whole batch through the style network at once (stylenet_cuda, N = batch);
 *   per photo (the VGG19 on the GPU takes one image), on up to 4 streams at once: the
 *   photo's content features (beside the network's forward pass), then the stylised
 *   photo's VGG19 forward and losses, backward to the image, BGR -> RGB, total
 *   variation, into the batch's output gradient;
 *   the network's backward over the batch, then Adam (own kernel).
 * The only host round trip is the step's loss values (one small copy). From the second
 * step on, the work between the upload and Adam replays as one CUDA graph. */
#ifndef NST_STYLENET_TRAIN_CUDA_H
#define NST_STYLENET_TRAIN_CUDA_H

#include "cuda/cuda_common.h"
#include "nst.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "loss/perceptual.h"
#include "net/stylenet.h" /* a C header */

typedef struct stylenet_train_cuda stylenet_train_cuda;

/* ctx is borrowed. net: the network's shape and its initial parameters (uploaded).
 * content_w, style_w: the loss weight at each VGG layer (NST_NUM_LAYERS entries, 0 where
 * not a tap, weights already multiplied by cfg's content/style weight); style_A: the
 * painting's Gram (C,C) at each style layer (host, NULL elsewhere). Adam starts at zero.
 * batch: the host buffer the steps will upload from ((batch,3,size,size) floats, or NULL):
 * it is page-locked until stylenet_train_cuda_free, so that the upload is a fast DMA. */
nst_status stylenet_train_cuda_build(stylenet_train_cuda **f, nst_cuda *ctx, const nst_train_config *cfg, const nst_vgg19 *vgg,
                           const stylenet *net, const perceptual_plan *plan,
                           const float *const *style_A, float *batch, nst_error *err);
void stylenet_train_cuda_free(stylenet_train_cuda *f);

/* One Adam step on the batch (host, (batch,3,size,size) RGB planes 0..1). adam_t: Adam's
 * step count including this step (1 for the first). losses: the weighted losses, mean over
 * the batch (content, style, tv). */
nst_status stylenet_train_cuda_step(stylenet_train_cuda *f, const float *batch, int adam_t, double losses[3], nst_error *err);
/* The same without the update: the losses, and the gradient left in the device's vector
 * (stylenet_train_cuda_get_grads). */
nst_status stylenet_train_cuda_loss_grad(stylenet_train_cuda *f, const float *batch, double losses[3], nst_error *err);

/* Host <-> device copies of the parameters (stylenet.params layout) and Adam's m, v
 * (n_params each; m, v may be NULL to skip them). */
nst_status stylenet_train_cuda_get_state(stylenet_train_cuda *f, float *params, float *m, float *v, nst_error *err);
nst_status stylenet_train_cuda_set_state(stylenet_train_cuda *f, const float *params, const float *m, const float *v, nst_error *err);
nst_status stylenet_train_cuda_get_grads(stylenet_train_cuda *f, float *grads, nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
