/* vgg19_cuda.h - VGG19 on the GPU (internal; callable from C and from .cu files).
 *
 * The same life cycle as net/vgg19.h, with every buffer in GPU memory and every operation
 * queued on the context's stream (nothing here waits for the GPU unless it says so):
 *   vgg19_cuda_upload()         the parameters, once per nst_vgg19, layers 0..depth-1
 *   vgg19_cuda_acts_build()     activations and gradients for one H x W image (batch 1),
 *                               in one allocation (the convolutions' workspace included)
 *   vgg19_cuda_forward_layer()  one layer at a time, so that a loss can read a tap as soon
 *                               as it is computed (a ReLU runs in place over its conv's
 *                               output unless keep[] gave the conv a buffer of its own)
 *   vgg19_cuda_backward()       from the deepest layer down to the image; a tap callback
 *                               adds the losses' gradients at each tapped layer
 *   vgg19_cuda_acts_free(), vgg19_cuda_free()
 *
 * Tensors are float32 (C,H,W) in C order, exactly as on the CPU: layer l's output is
 * a->out[l], C[l] x Hl[l] x Wl[l] values. Every float pointer in this header is GPU memory.
 * Convolutions are cuDNN's (3x3, pad 1, cross-correlation as in PyTorch), in fp32 FMA
 * math, or on TF32 tensor cores with NST_PRECISION_TF32; their algorithms are cuDNN's
 * heuristic choice (the same every run), or, when the tuning (vgg19_cuda_set_tuning) has
 * cudnn_search = MEASURE (or DEFAULT after vgg19_cuda_set_search(g, 1)),
 * measured among the deterministic ones (cudaEvents, once per conv
 * and input size for the uploaded weights); measuring also tries the backward pass to
 * the input as a forward convolution of the gradient with the transposed, 180-degree
 * turned filter, which cuDNN often runs faster, and own direct kernels for conv1_1
 * (3 input channels; backward to 3 channels). The first algorithm in the heuristic's
 * order within 8% of the fastest is taken, so that a rerun nearly always takes the same.
 * Bias, ReLU and max-pooling are own kernels that mirror tensor/ops.h (a pool's gradient
 * goes to the first maximum of its window in row-major order, as in PyTorch); the ReLU
 * after a conv runs in its bias kernel, and the backward of a ReLU below a pool in the
 * pool's backward (unless a tap is at that ReLU). So vgg19_cuda_forward_layer(l) for a
 * ReLU l does nothing: layer l-1 wrote it.
 *
 * Example (the Johnson trainer's perceptual loss on one image):
 *     vgg19_cuda *vgg;  vgg19_cuda_acts a;
 *     vgg19_cuda_upload(&vgg, ctx, net, depth, err);
 *     vgg19_cuda_acts_build(&a, vgg, depth, H, W, keep, NST_PRECISION_FP32, err);
 *     cudaMemcpyAsync(a.input, image, 3*H*W*4, cudaMemcpyDeviceToDevice, stream);
 *     for (l = 0; l < depth; l++) { vgg19_cuda_forward_layer(vgg, &a, l, err); ...losses at l... }
 *     vgg19_cuda_backward(vgg, &a, tap, my_tap_fn, my_ctx, d_image_grad, err);
 * The stream is ctx->stream (cuda_internal.cuh). */
#ifndef NST_VGG19_CUDA_H
#define NST_VGG19_CUDA_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "cuda/cuda_common.h"
#include "nst.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The weights on the GPU (opaque): one allocation, plus cuDNN filter descriptors. */
typedef struct vgg19_cuda vgg19_cuda;

/* Uploads the weights of layers 0..depth-1 (depth 0: all, at most net's own depth) and
 * keeps ctx for every later call. Synchronous (the host copy may be freed after). */
nst_status vgg19_cuda_upload(vgg19_cuda **g, nst_cuda *ctx, const nst_vgg19 *net, int depth,
                             nst_error *err);
void vgg19_cuda_free(vgg19_cuda *g);
/* The context given to vgg19_cuda_upload. */
nst_cuda *vgg19_cuda_ctx(const vgg19_cuda *g);
/* How later vgg19_cuda_acts_build calls choose the algorithms when the tuning's
 * cudnn_search is DEFAULT: 0 cuDNN's heuristics (the default), 1 measured (see above). */
void vgg19_cuda_set_search(vgg19_cuda *g, int measure);
/* The tuning's cudnn_search and cudnn_cache for later vgg19_cuda_acts_build calls (NULL:
 * the defaults: vgg19_cuda_set_search's choice, no cache file). Copied. */
void vgg19_cuda_set_tuning(vgg19_cuda *g, const nst_tuning *tuning);

typedef struct vgg19_cuda_plan vgg19_cuda_plan; /* opaque: cuDNN descriptors and algorithms */

/* Per-layer timing (NST_CUDA_PROFILE=1 in nst bench): while vgg19_cuda_acts.prof points
 * at one of these, the passes record fwd[l][0] before and fwd[l][1] after layer l's
 * forward, bwd[l][0] before layer l's tap, bwd[l][1] after it and bwd[l][2] after layer
 * l's backward. Events created by vgg19_cuda_prof_create. */
typedef struct {
    cudaEvent_t fwd[NST_NUM_LAYERS][2], bwd[NST_NUM_LAYERS][3];
} vgg19_cuda_prof;

typedef struct {
    int depth;                    /* layers 0..depth-1 are computed */
    int H, W;                     /* input size */
    int C[NST_NUM_LAYERS], Hl[NST_NUM_LAYERS], Wl[NST_NUM_LAYERS]; /* output shape per layer */
    float *input;                 /* device (3,H,W), caffe-preprocessed image */
    float *out[NST_NUM_LAYERS];   /* device, output of each layer; a ReLU shares its conv's
                                     buffer unless keep[conv] was set */
    float *grad_a, *grad_b;       /* device ping-pong gradient buffers, each as large as the
                                     largest layer */
    void *workspace;              /* the convolutions' cuDNN workspace */
    size_t workspace_bytes;
    void *memory;                 /* the one device allocation behind all of the above */
    size_t bytes;                 /* its size */
    nst_precision precision;
    int searched;                 /* 0: cuDNN's heuristic choice; 1: measured (NST_CUDNN_SEARCH=1);
                                     2: measured, the backward passes only as flipped forward
                                     convolutions (NST_CUDNN_SEARCH=flip, for the tests);
                                     3: as 2, with the own kernels wherever they apply
                                     (NST_CUDNN_SEARCH=own, for the tests) */
    vgg19_cuda_plan *plan;
    vgg19_cuda_prof *prof;        /* NULL, or events to record (see vgg19_cuda_prof) */
} vgg19_cuda_acts;

/* Allocates activations for an H x W input computed up to layer depth-1 (depth <= the
 * uploaded depth) and chooses cuDNN's algorithms for each convolution. keep: NULL, or a
 * flag per layer: 1 where a conv's output must stay intact after the forward pass (a loss
 * reads it in the backward pass), so that the ReLU after it gets a buffer of its own.
 * precision: NST_PRECISION_FP32, or NST_PRECISION_TF32 to let cuDNN use TF32. */
nst_status vgg19_cuda_acts_build(vgg19_cuda_acts *a, vgg19_cuda *g, int depth, int H, int W,
                                 const unsigned char *keep, nst_precision precision, nst_error *err);
void vgg19_cuda_acts_free(vgg19_cuda_acts *a);
static inline size_t vgg19_cuda_layer_size(const vgg19_cuda_acts *a, int l) {
    return (size_t)a->C[l] * a->Hl[l] * a->Wl[l];
}

/* The algorithms chosen for conv layer l, e.g. "fwd IMPLICIT_PRECOMP_GEMM fma, bwd data
 * ALGO_1 fma" (measured: also "flipped fwd WINOGRAD fma", "own direct", and the times);
 * "" for other layers. */
void vgg19_cuda_describe_algos(const vgg19_cuda_acts *a, int l, char *buf, size_t size);

nst_status vgg19_cuda_prof_create(vgg19_cuda_prof *p, nst_error *err);
void vgg19_cuda_prof_destroy(vgg19_cuda_prof *p);

/* Computes layer l from layer l-1 (or from a->input for l = 0). */
nst_status vgg19_cuda_forward_layer(const vgg19_cuda *g, vgg19_cuda_acts *a, int l, nst_error *err);
/* Layers 0..depth-1. */
nst_status vgg19_cuda_forward(const vgg19_cuda *g, vgg19_cuda_acts *a, nst_error *err);

/* Adds the losses' gradient with respect to layer l's output into grad (device,
 * (C[l],Hl[l],Wl[l])), which holds the gradient flowing back from the layers above.
 * Queue the work on the stream; return NST_OK or fill err. */
typedef nst_status (*vgg19_cuda_tap_fn)(void *ctx, const vgg19_cuda_acts *a, int l, float *grad,
                                        nst_error *err);

/* Backward from layer depth-1 to the input: at each layer l with tap[l] set, tap_fn adds
 * the losses' gradient there. Writes dLoss/d(input) into dinput (device, (3,H,W);
 * overwritten, not accumulated). The forward pass must have run (it reads the outputs). */
nst_status vgg19_cuda_backward(const vgg19_cuda *g, vgg19_cuda_acts *a, const unsigned char *tap,
                               vgg19_cuda_tap_fn tap_fn, void *ctx, float *dinput, nst_error *err);

/* Caffe preprocessing on the GPU is not needed: preprocess on the host (vgg19_preprocess)
 * and copy; vgg19_cuda_upload_image does both for an nst_image. Synchronous. */
nst_status vgg19_cuda_upload_image(nst_cuda *ctx, float *dst, const nst_image *img, nst_error *err);

#ifdef __cplusplus
}
#endif
#endif
