/* fast.h - the fast-style trainer's internals, for nst_train_run and the tests.
 * Life cycle: fast_trainer_build (style targets, network, buffers) -> fill
 * fast_trainer_batch() and call fast_trainer_step() many times -> fast_trainer_free. */
#ifndef NST_FAST_H
#define NST_FAST_H

#include "nst.h"
#include "net/johnson.h"

typedef struct fast_trainer fast_trainer;

nst_status fast_trainer_build(fast_trainer **t, const nst_train_config *cfg, const nst_vgg19 *vgg,
                              nst_error *err);
void fast_trainer_free(fast_trainer *t);
johnson_net *fast_trainer_net(fast_trainer *t);
/* (batch,3,size,size) photos, RGB planes 0..1, for the next step. */
float *fast_trainer_batch(fast_trainer *t);
/* One Adam step on the mean loss over the batch. */
nst_status fast_trainer_step(fast_trainer *t, nst_error *err);
/* The loss of one photo (3,size,size), added (divided by the batch size) to the running
 * losses; with backward, its gradient is added to the network's. (For evaluation.) */
nst_status fast_trainer_image_loss(fast_trainer *t, const float *photo, int backward, nst_error *err);
/* The weighted losses of the last step (mean over the batch); returns their sum. */
/* Writes the network (and its training record) as a model file. */
nst_status fast_trainer_save_model(fast_trainer *t, const char *path, nst_error *err);
/* The gradient of the last step (n_params floats into grads), from the CPU or the GPU. */
nst_status fast_trainer_gradients(fast_trainer *t, float *grads, nst_error *err);
double fast_trainer_losses(const fast_trainer *t, double *content, double *style, double *tv);

#endif
