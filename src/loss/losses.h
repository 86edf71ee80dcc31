/* losses.h - the losses of style transfer, each a forward (value) / backward (gradient)
 * pair. Forward values are computed in double with a fixed summation order, so they do
 * not depend on the thread count. Backward functions ACCUMULATE (+=) into the gradient,
 * scaled by `scale` = dTotal/dThisLoss (the loss's weight). */
#ifndef NST_LOSSES_H
#define NST_LOSSES_H

#include <stddef.h>

#include "tensor/ops.h"

/* Content loss mean((F-P)^2). F, P, dF are (n). */
double content_loss_forward(const float *F, const float *P, size_t n);
void content_loss_backward(float *dF, const float *F, const float *P, size_t n, float scale);

/* Style loss mean((G-A)^2) over the C*C entries, G = gscale * F F^T.
 * F is (C,N) (a feature map (C,H,W) with N = H*W), A and G are (C,C).
 * forward writes G (needed by backward). backward: dF += scale * dL/dF, using dG as a
 * (C,C) scratch buffer. tier: the Gram's kernels (the network's, nst_vgg19.tier). */
double style_loss_forward(float *G, const float *F, const float *A, int C, int N, float gscale, cpu_tier tier);
void style_loss_backward(float *dF, float *dG, const float *G, const float *A, const float *F,
                         int C, int N, float gscale, float scale, cpu_tier tier);

/* Total variation: mean over the image of the squared differences between horizontal
 * and vertical neighbours, sum_{c,i,j} (x[c,i,j+1]-x[c,i,j])^2 + (x[c,i+1,j]-x[c,i,j])^2
 * divided by C*H*W. x and dx are (C,H,W). */
double tv_loss_forward(const float *x, int C, int H, int W);
void tv_loss_backward(float *dx, const float *x, int C, int H, int W, float scale);

#endif
