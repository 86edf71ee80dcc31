/* layers.h - the layers of the feed-forward style network (Johnson et al. 2016) that
 * VGG19 does not have: reflection padding, instance normalisation (with a fused ReLU),
 * nearest-neighbour upsampling, the 255*sigmoid output layer and the residual sum.
 * (Its convolutions are conv3x3 from ops.h, on reflection-padded inputs.)
 *
 * The same conventions as ops.h: plain float arrays in C order, a feature map of one
 * image is (C,H,W); each op is a *_forward / *_backward pair; backward functions
 * OVERWRITE their input gradient (dinp) and ACCUMULATE (+=) into parameter gradients.
 * Per-channel ops run one OpenMP thread per channel and sum their statistics in double,
 * in a fixed order, so the results do not depend on the number of threads. */
#ifndef NST_LAYERS_H
#define NST_LAYERS_H

#include <stddef.h>

/* ---- reflection padding --------------------------------------------------------------- */

/* PyTorch ReflectionPad2d: the edge pixel is not repeated (row -1 is row 1, row H is
 * row H-2). Needs 0 <= p < H and p < W.
 * out is (C,H+2p,W+2p), inp is (C,H,W) */
void reflect_pad_forward(float *out, const float *inp, int C, int H, int W, int p);
/* dinp is (C,H,W) (overwritten), dout is (C,H+2p,W+2p): each padded pixel's gradient goes
 * back to the pixel it copied, so pixels near the border collect up to four of them. */
void reflect_pad_backward(float *dinp, const float *dout, int C, int H, int W, int p);

/* ---- instance normalisation ------------------------------------------------------------- */

#define INSTANCE_NORM_EPS 1e-5f

/* PyTorch InstanceNorm2d(affine=True): per channel, with the biased variance,
 *   out = gamma * (inp - mean) * rstd + beta,  rstd = 1 / sqrt(var + 1e-5)
 * relu = 1 fuses a ReLU after it (out = max(0, ...)).
 * out, inp are (C,N) with N = H*W; gamma, beta are (C);
 * mean, rstd are (C), written here for the backward pass.
 * out may equal inp for inference only: the backward pass needs the original inp. */
void instance_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *gamma, const float *beta, int C, int N, int relu);
/* dinp, dout, out, inp are (C,N); dgamma, dbeta are (C) and accumulate; mean, rstd, gamma
 * are (C). out is the forward output, read only for the fused ReLU's mask (out > 0), so it
 * may be NULL when relu = 0; xhat is recomputed from inp, mean and rstd (not from out,
 * which would divide by gamma). dinp may equal dout. */
void instance_norm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *out, const float *inp, const float *mean,
                            const float *rstd, const float *gamma, int C, int N, int relu);
/* The same contracts, written the obvious way (one thread; the backward is the textbook
 * chain rule through var and mean): the reference the tests compare the fast ones with. */
void instance_norm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                               const float *gamma, const float *beta, int C, int N, int relu);
void instance_norm_backward_ref(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                const float *out, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int C, int N, int relu);

/* ---- nearest-neighbour upsampling by 2 ---------------------------------------------------- */

/* out is (C,2H,2W), inp is (C,H,W): each pixel becomes a 2x2 block */
void upsample2x_forward(float *out, const float *inp, int C, int H, int W);
/* dinp is (C,H,W) (overwritten): the sum of its 2x2 block of dout (C,2H,2W) */
void upsample2x_backward(float *dinp, const float *dout, int C, int H, int W);
/* upsample2x_forward then reflect_pad_forward in one pass, without the upsampled image in
 * between: out is (C,2H+2p,2W+2p), inp is (C,H,W); needs p < 2H and p < 2W */
void upsample2x_reflect_pad_forward(float *out, const float *inp, int C, int H, int W, int p);

/* ---- output layer ------------------------------------------------------------------------- */

/* out = 255 * sigmoid(inp), elementwise; out, inp are (n); out may equal inp */
void sigmoid255_forward(float *out, const float *inp, size_t n);
/* dinp = dout * out * (1 - out/255), the derivative written with the forward output;
 * dinp, dout, out are (n); dinp may equal dout */
void sigmoid255_backward(float *dinp, const float *dout, const float *out, size_t n);

/* ---- residual connection ------------------------------------------------------------------- */

/* out = a + b; out, a, b are (n); out may equal a or b.
 * No backward function: the gradient of the sum passes unchanged to both a and b (the
 * caller adds dout into both branches' gradients). */
void add_forward(float *out, const float *a, const float *b, size_t n);

#endif
