/* gatys.h - the optimization-based transfer's internals, for nst_transfer_run and the
 * tests. Life cycle: gatys_build (targets from the content and style images) ->
 * gatys_eval (loss and gradient at any image, many times) -> gatys_free. */
#ifndef NST_GATYS_H
#define NST_GATYS_H

#include "nst.h"
#include "net/vgg19.h"

#ifdef __cplusplus
extern "C" { /* included by cuda/gatys_cuda.cu */
#endif

/* gatys_build resolves cfg->device (AUTO: CUDA if there, else the CPU) and builds the
 * run on that device (gatys_device.h). */

nst_status gatys_build(nst_transfer **t, const nst_transfer_config *cfg, const nst_vgg19 *net,
                       const nst_image *content, const nst_image *styles, const float *blend,
                       int n_styles, nst_error *err);
void gatys_free(nst_transfer *t);

/* Size of the image being optimized, the canvas; x below is (3,H,W) in the network's
 * input space. It is the result's size, or larger where the network needs more (the
 * photo reflected around it; see gatys.c): the result is the crop w x h at x0, y0. */
void gatys_size(const nst_transfer *t, int *W, int *H);
void gatys_crop(const nst_transfer *t, int *x0, int *y0, int *w, int *h);
/* The content image, preprocessed (3,H,W). */
const float *gatys_content_input(const nst_transfer *t);

/* Evaluates at x (host, (3,H,W)): *f the total loss, d(total)/dx into grad (host). (For
 * tests: it overwrites the optimizer's image.) */
nst_status gatys_eval(nst_transfer *t, const float *x, float *grad, double *f, nst_error *err);
/* After an evaluation: the unweighted content and style loss at layer l (0 if not a
 * tap), and the weighted content, style and total-variation losses. */
void gatys_layer_losses(const nst_transfer *t, int l, double *content, double *style);
void gatys_losses(const nst_transfer *t, double *content, double *style, double *tv);
/* nst bench's timings of this run on its device. */
nst_status gatys_bench(nst_transfer *t, const nst_bench_config *cfg, nst_bench_result *res, nst_error *err);

/* Style image number index (from 0) resized as cfg asks (squashed to size x size, or its
 * longer side style_scale * size), preprocessed and reflected onto a canvas as large as
 * the network needs: *x is (3,*H,*W), malloc'd. */
nst_status gatys_style_input(const nst_transfer_config *cfg, const nst_image *style, int index, float **x, int *W,
                             int *H, nst_error *err);

/* Reflection about the edges, for padding: the index in 0..n-1 that i (any integer)
 * stands for, mirrored as often as needed without repeating the edge (n = 1: 0). */
int gatys_reflect_index(int i, int n);
/* The planes src (3,h,w) onto dst (3,H,W) at x0, y0, the rest of dst their reflection. */
void gatys_pad_planes(float *dst, int W, int H, const float *src, int w, int h, int x0, int y0);
/* Names the image a failure s (already in err) is about: the content photo (style < 0)
 * or style image style + 1, on a W x H canvas, with the flag to change where it is a
 * matter of size. Returns s. */
nst_status gatys_blame(nst_error *err, nst_status s, const nst_transfer_config *cfg, int style, int W, int H);

#ifdef __cplusplus
}
#endif
#endif
