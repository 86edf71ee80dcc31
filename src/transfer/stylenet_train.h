/* stylenet_train.h - the style network's trainer (the host side), for nst_train_run, the
 * tests and the benchmarks. The steps run on the device's trainer table
 * (stylenet_backend.h: the CPU's, or CUDA's); the host keeps the style targets, the
 * data, checkpoints and previews.
 * Life cycle: stylenet_trainer_build (style targets, network, buffers, the device's
 * trainer) -> fill stylenet_trainer_batch() and call stylenet_trainer_step() many times
 * -> stylenet_trainer_free. */
#ifndef NST_STYLENET_TRAIN_H
#define NST_STYLENET_TRAIN_H

#include "nst.h"
#include "net/stylenet.h"

typedef struct stylenet_trainer stylenet_trainer;

nst_status stylenet_trainer_build(stylenet_trainer **t, const nst_train_config *cfg, const nst_vgg19 *vgg,
                                  nst_error *err);
void stylenet_trainer_free(stylenet_trainer *t);
/* The network, its parameters refreshed from the device if it stepped. */
stylenet *stylenet_trainer_net(stylenet_trainer *t);
/* (batch,3,size,size) photos, RGB planes 0..1, for the next step. */
float *stylenet_trainer_batch(stylenet_trainer *t);
/* One Adam step on the mean loss over the batch. */
nst_status stylenet_trainer_step(stylenet_trainer *t, nst_error *err);
/* The loss of one photo (3,size,size) on the CPU, added (divided by the batch size) to the
 * running losses; with backward, its gradient is added to the network's. (The CPU's
 * step; evaluation.) */
nst_status stylenet_trainer_image_loss(stylenet_trainer *t, const float *photo, int backward, nst_error *err);
/* Writes the network (and its training record) as a model file. */
nst_status stylenet_trainer_save_model(stylenet_trainer *t, const char *path, nst_error *err);
/* The gradient of the last step (n_params floats into grads), from the trainer's device. */
nst_status stylenet_trainer_gradients(stylenet_trainer *t, float *grads, nst_error *err);
/* The weighted losses of the last step (mean over the batch); returns their sum. */
double stylenet_trainer_losses(const stylenet_trainer *t, double *content, double *style, double *tv);

#endif
