/* universal.h - universal style transfer (Li et al. 2017): any painting in one pass. The
 * photo's VGG19 features at relu<k>_1 are whitened and coloured with the painting's
 * (tensor/wct.h) and decoded back to an image by the level's decoder (a stylenet of kind
 * STYLENET_DECODER, trained on photos by nst train --decoder), from the deepest level
 * present down to relu1_1, each level re-encoding the previous level's image.
 *
 * Images of any size: each level runs on the image padded (edges clamped) to a multiple
 * of 2^(k-1) on each side, and the result is cropped back. */
#ifndef NST_UNIVERSAL_H
#define NST_UNIVERSAL_H

#include "net/stylenet.h"
#include "net/vgg19.h"
#include "nst.h"
#include "tensor/wct.h"

/* The features of img (H,W,3, 0..255) at relu<level>_1: *F (C,h,w), malloc'd; img's
 * sides must be multiples of 2^(level-1), at least 2^level. packs: vgg19_packs_build's
 * (NULL: the network's fp32). */
nst_status universal_encode(const nst_vgg19 *vgg, const conv3x3_packed *packs, const nst_image *img, int level,
                            float **F, int *C, int *h, int *w, nst_error *err);

/* img -> relu<level>_1 -> dec -> out (img's size, clamped to 0..255). */
nst_status universal_reconstruct(const nst_vgg19 *vgg, const conv3x3_packed *packs, const stylenet *dec,
                                 const nst_image *img, nst_image *out, nst_error *err);

/* One painting's feature statistics at every level a decoder is given for. */
typedef struct {
    wct_stats level[6]; /* [k]: relu<k>_1's (C 0 where not computed) */
    double *std[6];     /* [k]: each channel's standard deviation (AdaIN), or NULL */
} universal_style;

nst_status universal_style_compute(universal_style *st, const nst_vgg19 *vgg, const conv3x3_packed *packs,
                                   const stylenet *const dec[6], const nst_image *painting, nst_error *err);
void universal_style_free(universal_style *st);

/* The AdaIN pass: img -> relu4_1 -> AdaIN with the mix -> dec[4] -> out. */
nst_status universal_adain(const nst_vgg19 *vgg, const conv3x3_packed *packs, const stylenet *dec4,
                           const universal_style *const *styles, const float *w, int n, float alpha,
                           const nst_image *img, nst_image *out, nst_error *err);

/* The WCT pass: for k = 5 .. 1 where dec[k] is given, img -> relu<k>_1 -> WCT with the
 * colouring col[k] (the paintings' mix, wct_colouring_build) at strength alpha -> dec[k]
 * -> the next level's input. out: img's size. */
nst_status universal_stylize(const nst_vgg19 *vgg, const conv3x3_packed *packs, const stylenet *const dec[6],
                             const wct_colouring col[6], float alpha, const nst_image *img, nst_image *out,
                             nst_error *err);

#endif
