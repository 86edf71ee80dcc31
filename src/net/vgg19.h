/* vgg19.h - the VGG19 feature network (internal). Life cycle:
 *   nst_vgg19_load()      parameters (weights read once, shared by every run)
 *   vgg19_acts_build()    activations and gradients for one image size and depth
 *   vgg19_forward_layer() one layer at a time, so that losses can read a tap as soon
 *                         as it is computed (ReLU runs in place over its conv's output)
 *   vgg19_backward()      from the deepest layer down to the image, adding the losses'
 *                         gradients at their taps
 *   vgg19_acts_free()
 */
#ifndef NST_VGG19_H
#define NST_VGG19_H

#include "nst.h"
#include "tensor/ops.h"

typedef enum { VGG_CONV, VGG_RELU, VGG_POOL } vgg_layer_kind;

typedef struct {
    int C_in, C_out;
    float *weight;         /* (C_out,C_in,3,3), points into nst_vgg19.params */
    float *bias;           /* (C_out) */
    conv3x3_packed packed; /* the same weights in the fast kernels' layouts */
} vgg_conv;

struct nst_vgg19 {
    char dir[4096];
    float *params;      /* every weight and bias, one allocation */
    vgg_conv conv[16];  /* conv1_1 .. conv5_4 */
    int depth;          /* layers 0..depth-1 can be run (their convs are packed) */
    cpu_tier tier;      /* the CPU kernels of its runs (the tuning at load): its convs' packs
                           and the Grams of the losses on its features */
};

/* The static shape of layer l: its kind, and for convs the index into net->conv. */
vgg_layer_kind vgg19_layer_kind(int layer);
int vgg19_layer_conv(int layer);

typedef struct {
    int depth;                      /* layers 0..depth-1 are computed */
    int H, W;                       /* input size */
    int C[NST_NUM_LAYERS], Hl[NST_NUM_LAYERS], Wl[NST_NUM_LAYERS]; /* output shape per layer */
    float *input;                   /* (3,H,W), caffe-preprocessed image */
    float *out[NST_NUM_LAYERS];     /* output of each layer; a ReLU shares its conv's buffer */
    float *grad_a, *grad_b;         /* ping-pong gradient buffers, as large as the largest layer */
    unsigned char fused_relu[NST_NUM_LAYERS]; /* conv l writes max(x,0): the ReLU l+1 is a no-op */
    float *memory;                  /* the one allocation behind all of the above */
    conv3x3_workspace ws;           /* the convolutions' scratch, kept from call to call */
    const conv3x3_packed *packs;    /* NULL: the network's (fp32) packs; else a run's own,
                                       one per conv (vgg19_packs_build), e.g. in bf16 */
    size_t bytes;
} vgg19_acts;

/* Allocates activations for an H x W input computed up to and including layer depth-1.
 * keep: NULL, or a flag per layer: 1 where a conv's output must stay intact after the
 * forward pass (a loss reads it during the backward pass), so that the ReLU after it gets
 * a buffer of its own instead of running in place. */
nst_status vgg19_acts_build(vgg19_acts *a, int depth, int H, int W, const unsigned char *keep,
                            nst_error *err);
void vgg19_acts_free(vgg19_acts *a);
/* Lets every conv whose ReLU runs in place (not kept) apply that ReLU as it stores its
 * output, saving a pass over memory and a parallel region per layer. Only for callers
 * that never read such a conv's output before its ReLU has run (taps on pre-ReLU convs
 * must be kept, as vgg19_acts_build's keep does). */
void vgg19_acts_fuse_relus(vgg19_acts *a);
static inline size_t vgg19_layer_size(const vgg19_acts *a, int l) {
    return (size_t)a->C[l] * a->Hl[l] * a->Wl[l];
}

/* The convolutions of layers 0..depth-1 packed for a run in precision (resolved: FP32 or
 * BF16) with the tuning's kernels: *packs is an array of 16 (index: conv), NULL for FP32
 * (the network's own packs serve). Set vgg19_acts.packs to it; free with vgg19_packs_free. */
nst_status vgg19_packs_build(conv3x3_packed **packs, const nst_vgg19 *net, int depth, const nst_tuning *tuning,
                             nst_precision precision, nst_error *err);
void vgg19_packs_free(conv3x3_packed *packs);
/* The kernels a run on these packs (NULL: the network's) uses for its convolutions:
 * "avx512bf16", "amx", "avx512", ... */
const char *vgg19_kernel_name(const nst_vgg19 *net, const conv3x3_packed *packs);

/* Computes layer l from layer l-1 (or from a->input for l = 0). */
void vgg19_forward_layer(const nst_vgg19 *net, vgg19_acts *a, int l);
/* Whole forward pass: layers 0..depth-1. */
void vgg19_forward(const nst_vgg19 *net, vgg19_acts *a);

/* A forward pass that keeps no activations: each layer's output is allocated on its own
 * and freed once the next layer has read it (the peak: two adjacent layers). At each layer
 * l with want[l] (want: depth flags), tap reads its output (C,h,w), valid until tap
 * returns; at the last layer (depth-1) it may set *take to keep the buffer (then its
 * caller frees it, with free()). A tap's error stops the pass. img: RGB 0..255. ReLUs run
 * in place; a tapped conv's output is its own, before its ReLU. */
typedef nst_status (*vgg19_take_fn)(void *ctx, int l, float *out, int C, int h, int w, int *take, nst_error *err);
nst_status vgg19_forward_taps(const nst_vgg19 *net, const conv3x3_packed *packs, const nst_image *img, int depth,
                              const unsigned char *want, vgg19_take_fn tap, void *ctx, nst_error *err);

/* Adds the losses' gradient with respect to the output of layer l into g, which is
 * (C[l],Hl[l],Wl[l]) and holds the gradient flowing back from the layers above. */
typedef void (*vgg19_tap_fn)(void *ctx, const vgg19_acts *a, int l, float *g);

/* Backward from layer depth-1 to the input: at each layer l with tap[l] set, tap_fn adds
 * the losses' gradient there (computing it now, instead of storing one gradient per tap,
 * saves memory). Writes dLoss/d(input) into dinput (3,H,W).
 * use_ref selects the reference convolution (for tests). */
void vgg19_backward(const nst_vgg19 *net, vgg19_acts *a, const unsigned char *tap, vgg19_tap_fn tap_fn,
                    void *ctx, float *dinput, int use_ref);
/* Forward with the reference convolution (for tests). */
void vgg19_forward_layer_ref(const nst_vgg19 *net, vgg19_acts *a, int l);

/* The smallest width and height an input run to layers 0..depth-1 may have: 2 to the
 * number of pools among them (each halves a side, rounding down, and must leave 1). */
int vgg19_min_side(int depth);

/* Layers to run for losses at these taps: the deepest tap + 1 (0 if none). */
int vgg19_taps_depth(const nst_tap *a, int na, const nst_tap *b, int nb);

/* The ImageNet mean the weights were trained with (Caffe's), BGR 0..255. */
extern const float vgg19_mean_bgr[3];
/* Caffe preprocessing of planes: RGB (3,H,W) 0..255 -> x, BGR minus the mean (3,H,W); hw = H*W. */
void vgg19_preprocess_planes(float *x, const float *rgb, size_t hw);
/* Caffe preprocessing: RGB 0..255 (H,W,3) -> BGR minus the ImageNet mean, (3,H,W). */
void vgg19_preprocess(float *x, const nst_image *img);
/* And back, clamped to 0..255. img must be allocated with the right size. */
void vgg19_deprocess(nst_image *img, const float *x);

#endif
