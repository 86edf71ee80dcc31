/* gatys_cuda.h - the optimization-based transfer on the GPU (internal, callable from C).
 *
 * transfer/gatys.c builds one of these when the configuration's device is CUDA and
 * drives it with the same step loop as the CPU (progress, Ctrl-C, non-finite checks).
 * Everything of a run lives on the GPU: the image, the gradient, the content and style
 * targets, the optimizer's state (Adam, or L-BFGS mirroring optim/lbfgs.c), allocated
 * when the run is built. A step reads back only the losses (one small copy; L-BFGS: one
 * per line-search trial, with the scalars its decisions need). */
#ifndef NST_GATYS_CUDA_H
#define NST_GATYS_CUDA_H

#include "nst.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gatys_cuda gatys_cuda;

/* Builds a run for an H x W image (the canvas, see gatys.h): uploads the weights, computes
 * the style targets (each style image resized, preprocessed and padded on the host by
 * gatys_style_input, its Gram on the GPU, blended with weights blend[i], which sum to 1)
 * and the content targets from content_input (host, (3,H,W), preprocessed), and sets the
 * image to x0 (host, (3,H,W)). cfg must stay valid while the run lives. */
nst_status gatys_cuda_build(gatys_cuda **g, const nst_transfer_config *cfg, const nst_vgg19 *net, int W, int H,
                            const float *content_input, const nst_image *styles, const float *blend,
                            int n_styles, const float *x0, nst_error *err);
void gatys_cuda_free(gatys_cuda *g);

/* Sets the image to x (host, (3,H,W)), evaluates, writes df/dx into grad (host) and the
 * total loss into *f. (For tests; the optimizers below never leave the GPU.) */
nst_status gatys_cuda_eval(gatys_cuda *g, const float *x, float *grad, double *f, nst_error *err);
/* After an evaluation: the weighted content, style and total-variation losses, and the
 * unweighted content and style loss at layer l. */
void gatys_cuda_losses(const gatys_cuda *g, double *content, double *style, double *tv);
void gatys_cuda_layer_losses(const gatys_cuda *g, int l, double *content, double *style);

/* Adam: evaluates at the current image (*f = the loss before the update), then updates. */
nst_status gatys_cuda_adam_step(gatys_cuda *g, double *f, nst_error *err);
/* L-BFGS: lbfgs_start evaluates the starting point (*f); each lbfgs_step is one
 * iteration of optim/lbfgs.c's lbfgs_step: *moved = 1 if it moved, 0 if no step lowered
 * the loss (the image is unchanged). */
nst_status gatys_cuda_lbfgs_start(gatys_cuda *g, double *f, nst_error *err);
nst_status gatys_cuda_lbfgs_step(gatys_cuda *g, double *f, int *moved, nst_error *err);

/* Copies the current image (3,H,W) to the host. */
nst_status gatys_cuda_download(gatys_cuda *g, float *x, nst_error *err);

/* nst bench on the GPU: times forward, forward+backward and a whole Adam step of this
 * run (built from the bench's seed-preset configuration) with CUDA events, best of
 * cfg->iters after cfg->warmup. */
nst_status gatys_cuda_bench(gatys_cuda *g, const nst_bench_config *cfg, nst_bench_result *res, nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
