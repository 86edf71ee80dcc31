/* vgg19_cuda.cu - VGG19 on the GPU: the weights uploaded once, activations in one
 * allocation, cuDNN convolutions, own kernels for bias (+ the ReLU after it), ReLU and 2x2
 * max-pooling (forward and backward, the pool's backward with the ReLU below it), mirroring
 * net/vgg19.c layer by layer. See vgg19_cuda.h. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cuda/common_kernels.cuh"
#include "cuda/vgg19_cuda.h"
extern "C" {
#include "net/vgg19.h"
}

typedef struct {
    int C_in, C_out;
    float *weight;   /* device (C_out,C_in,3,3) */
    float *weight_t; /* device (C_in,C_out,3,3): transposed and flipped, so that the
                        backward pass to the input can run as a forward convolution */
    float *bias;     /* device (C_out) */
    cudnnFilterDescriptor_t desc, desc_t;
} conv_cuda;

/* How a convolution runs: forward (x -> y) by cuDNN or by an own kernel; backward to the
 * input (dy -> dx) by cudnnConvolutionBackwardData, or as a forward convolution of dy
 * with the flipped filter (weight_t) by cuDNN or by an own kernel. */
enum { CONV_FWD, CONV_BWD, CONV_FLIP, CONV_OWN, CONV_OWN_FLIP, CONV_KINDS };

/* A measured choice of algorithms (NST_CUDNN_SEARCH=1), kept for the next activations of
 * the same shape (a run builds the style image's and the content's). */
typedef struct {
    int k, H, W, prec, mode; /* conv k on an H x W input, in this precision and search mode */
    int fwd_kind, fwd_algo, bwd_kind, bwd_algo;
    cudnnMathType_t fwd_math, bwd_math;
    float fwd_ms, fwd_ref_ms, bwd_ms, bwd_ref_ms, bwd_data_ms, bwd_flip_ms;
} algo_memo;
#define ALGO_MEMOS 256

struct vgg19_cuda {
    nst_cuda *ctx;
    int depth;
    float *params; /* device: every uploaded weight (also transposed) and bias */
    conv_cuda conv[16];
    algo_memo memo[ALGO_MEMOS]; /* the measured choices, newest last */
    int n_memo;
    int cache_read;             /* the cache file has been read into memo */
    int search_default;         /* the algorithms' choice without a tuned one (search_mode) */
    nst_cudnn_search search;    /* the tuning's (DEFAULT, zero, until vgg19_cuda_set_tuning) */
    char cache[NST_PATH_MAX];   /* the tuning's cache file ("": none) */
    int cache_mkdir;            /* the tuning's cudnn_cache_mkdir */
    char tag[300];              /* GPU and cuDNN version: the cache file's key */
};

struct vgg19_cuda_plan {
    /* for conv layers: input and output tensors, the convolution with its math type for
     * the forward and for the backward pass (bwd_desc for cudnnConvolutionBackwardData,
     * flip_desc for the forward convolution with the flipped filter), the algorithms
     * chosen, and with measuring their times and those of the heuristic's choice */
    cudnnTensorDescriptor_t x[NST_NUM_LAYERS], y[NST_NUM_LAYERS];
    cudnnConvolutionDescriptor_t fwd_desc[NST_NUM_LAYERS], bwd_desc[NST_NUM_LAYERS], flip_desc[NST_NUM_LAYERS];
    cudnnConvolutionFwdAlgo_t fwd_algo[NST_NUM_LAYERS];
    int fwd_kind[NST_NUM_LAYERS];  /* CONV_FWD (cuDNN) or CONV_OWN (own kernel) */
    int bwd_kind[NST_NUM_LAYERS];  /* CONV_BWD, CONV_FLIP (cuDNN forward with weight_t) or CONV_OWN_FLIP */
    int bwd_algo[NST_NUM_LAYERS];  /* a cudnnConvolutionBwdDataAlgo_t, or with CONV_FLIP a Fwd one */
    float fwd_ms[NST_NUM_LAYERS], fwd_ref_ms[NST_NUM_LAYERS], bwd_ms[NST_NUM_LAYERS], bwd_ref_ms[NST_NUM_LAYERS];
    float bwd_data_ms[NST_NUM_LAYERS], bwd_flip_ms[NST_NUM_LAYERS]; /* the fastest of each way */
};

/* ---- kernels ----------------------------------------------------------------------
 * Per-channel kernels run on a (blocks, C) grid: blockIdx.y is the channel, x loops over
 * the channel's pixels (int arithmetic, no division per element). */

static inline dim3 channel_grid(size_t per_channel, int C) {
    size_t b = (per_channel + 255) / 256;
    return dim3(b < 1 ? 1u : b > 4096 ? 4096u : (unsigned)b, (unsigned)C);
}
#define NST_CHANNEL_LOOP(i, n) for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

/* out, relu are (C,HW), bias (C); v = out + bias:
 *   relu NULL:          out = v
 *   relu == out:        out = max(v,0)            (the ReLU in place: the conv's output is not kept)
 *   relu elsewhere:     out = v, relu = max(v,0)  (the conv's output kept for a loss)
 * With HW % 4 == 0 in float4s (every channel then starts 16-byte aligned). */
static __global__ void bias_relu_kernel(float *out, float *relu, const float *bias, int HW) {
    int c = blockIdx.y;
    float b = bias[c];
    size_t base = (size_t)c * HW;
    if ((HW & 3) == 0) {
        float4 *o4 = (float4 *)(out + base), *r4 = relu ? (float4 *)(relu + base) : NULL;
        NST_CHANNEL_LOOP(i, HW / 4) {
            float4 v = o4[i];
            v.x += b; v.y += b; v.z += b; v.w += b;
            float4 r = make_float4(fmaxf(v.x, 0.0f), fmaxf(v.y, 0.0f), fmaxf(v.z, 0.0f), fmaxf(v.w, 0.0f));
            if (relu == out) {
                o4[i] = r;
            } else {
                o4[i] = v;
                if (r4) r4[i] = r;
            }
        }
        return;
    }
    NST_CHANNEL_LOOP(i, HW) {
        float v = out[base + i] + b;
        float r = v > 0.0f ? v : 0.0f;
        if (relu == out) {
            out[base + i] = r;
        } else {
            out[base + i] = v;
            if (relu) relu[base + i] = r;
        }
    }
}

/* out, inp are (n); out may equal inp */
static __global__ void relu_forward_kernel(float *out, const float *inp, size_t n) {
    NST_GRID_LOOP(i, n) {
        float v = inp[i];
        out[i] = v > 0.0f ? v : 0.0f;
    }
}

/* g, mask are (n): g = mask > 0 ? g : 0 (in place; mask is the ReLU's output) */
static __global__ void relu_backward_kernel(float *g, const float *mask, size_t n) {
    NST_GRID_LOOP(i, n) if (!(mask[i] > 0.0f)) g[i] = 0.0f;
}

/* out is (C,H/2,W/2), inp is (C,H,W); the same comparisons as maxpool2x2_forward */
static __global__ void maxpool_forward_kernel(float *out, const float *inp, int H, int W) {
    int Ho = H / 2, Wo = W / 2, c = blockIdx.y;
    const float *ic = inp + (size_t)c * H * W;
    float *oc = out + (size_t)c * Ho * Wo;
    NST_CHANNEL_LOOP(o, Ho * Wo) {
        int i = o / Wo, j = o - i * Wo;
        const float *r0 = ic + (size_t)(2 * i) * W + 2 * j, *r1 = r0 + W;
        float a = r0[0], b = r0[1], d = r1[0], e = r1[1];
        float m0 = a >= b ? a : b, m1 = d >= e ? d : e;
        oc[o] = m0 >= m1 ? m0 : m1;
    }
}

/* dinp is (C,H,W) (overwritten), dout is (C,H/2,W/2), inp is (C,H,W): one thread per
 * window writes its four gradients: the window's gradient to its first maximum in
 * row-major order (as maxpool2x2_backward), 0 elsewhere; rows and columns past 2*(H/2)
 * get 0. relu_below: inp is a ReLU's output and that ReLU's backward is fused in (the
 * gradient passes only where inp > 0). */
static __global__ void maxpool_backward_kernel(float *dinp, const float *dout, const float *inp, int H, int W,
                                               int relu_below) {
    int Ho = H / 2, Wo = W / 2, c = blockIdx.y;
    const float *ic = inp + (size_t)c * H * W, *dc = dout + (size_t)c * Ho * Wo;
    float *gc = dinp + (size_t)c * H * W;
    NST_CHANNEL_LOOP(o, Ho * Wo) {
        int i = o / Wo, j = o - i * Wo;
        size_t at = (size_t)(2 * i) * W + 2 * j;
        const float *r0 = ic + at, *r1 = r0 + W;
        float a = r0[0], b = r0[1], cc = r1[0], d = r1[1];
        int kb = b > a;
        float m1 = kb ? b : a;
        int kc = cc > m1;
        float m2 = kc ? cc : m1;
        int kd = d > m2;
        float m = kd ? d : m2;
        int k = kd ? 3 : kc ? 2 : kb ? 1 : 0;
        float v = dc[o];
        if (relu_below && !(m > 0.0f)) v = 0.0f;
        float *g0 = gc + at, *g1 = g0 + W;
        g0[0] = k == 0 ? v : 0.0f;
        g0[1] = k == 1 ? v : 0.0f;
        g1[0] = k == 2 ? v : 0.0f;
        g1[1] = k == 3 ? v : 0.0f;
        if ((W & 1) && j == Wo - 1) { /* the column no window covers */
            g0[2] = 0.0f;
            g1[2] = 0.0f;
        }
        if ((H & 1) && i == Ho - 1) { /* the row no window covers */
            float *g2 = g1 + W;
            g2[0] = 0.0f;
            g2[1] = 0.0f;
            if ((W & 1) && j == Wo - 1) g2[2] = 0.0f;
        }
    }
}

/* wt (C_in,C_out,3,3) = w (C_out,C_in,3,3) transposed, each 3x3 kernel turned by 180
 * degrees: the backward pass to the input is then the forward convolution of the output
 * gradient with wt (stride 1, pad 1). */
static __global__ void flip_filter_kernel(float *wt, const float *w, int C_out, int C_in) {
    size_t n = (size_t)C_out * C_in * 9;
    NST_GRID_LOOP(idx, n) {
        int k = (int)(idx % 9);
        size_t oc = idx / 9;
        int ci = (int)(oc % C_in), co = (int)(oc / C_in);
        wt[((size_t)ci * C_out + co) * 9 + (8 - k)] = w[idx];
    }
}

/* Own direct 3x3 convolutions (pad 1, cross-correlation, no bias) for the layers cuDNN
 * runs poorly: 3 input channels (conv1_1 forward) and 3 output channels (conv1_1's
 * backward to the image, as a forward convolution with the flipped filter). A block
 * computes a OWN_TW x OWN_TH tile of pixels from its input tile (with a 1-pixel halo) in
 * shared memory; each thread one pixel. */
#define OWN_TW 32
#define OWN_TH 8
#define OWN_CG 16 /* conv_in3: output channels per block (blockIdx.z picks the group) */
#define OWN_CC 8  /* conv_out3: input channels staged per round */

/* y (C_out,H,W) = conv(x (3,H,W), w (C_out,3,3,3)); C_out a multiple of OWN_CG */
static __global__ void conv_in3_kernel(float *y, const float *x, const float *w, int H, int W) {
    __shared__ float sx[3][OWN_TH + 2][OWN_TW + 2];
    __shared__ float sw[OWN_CG][27];
    int tx = threadIdx.x % OWN_TW, ty = threadIdx.x / OWN_TW;
    int x0 = blockIdx.x * OWN_TW, y0 = blockIdx.y * OWN_TH, c0 = blockIdx.z * OWN_CG;
    for (int i = threadIdx.x; i < 3 * (OWN_TH + 2) * (OWN_TW + 2); i += blockDim.x) {
        int c = i / ((OWN_TH + 2) * (OWN_TW + 2)), r = i % ((OWN_TH + 2) * (OWN_TW + 2));
        int ry = r / (OWN_TW + 2), rx = r % (OWN_TW + 2), yy = y0 - 1 + ry, xx = x0 - 1 + rx;
        sx[c][ry][rx] = yy >= 0 && yy < H && xx >= 0 && xx < W ? x[((size_t)c * H + yy) * W + xx] : 0.0f;
    }
    for (int i = threadIdx.x; i < OWN_CG * 27; i += blockDim.x) sw[i / 27][i % 27] = w[(size_t)c0 * 27 + i];
    __syncthreads();
    int px = x0 + tx, py = y0 + ty;
    if (px >= W || py >= H) return;
    float in[27];
    for (int c = 0; c < 3; c++)
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++) in[c * 9 + kh * 3 + kw] = sx[c][ty + kh][tx + kw];
    size_t HW = (size_t)H * W, at = (size_t)py * W + px;
    for (int o = 0; o < OWN_CG; o++) {
        float acc = 0.0f;
        for (int k = 0; k < 27; k++) acc = fmaf(sw[o][k], in[k], acc);
        y[(c0 + o) * HW + at] = acc;
    }
}

/* y (3,H,W) = conv(x (C_in,H,W), w (3,C_in,3,3)) */
static __global__ void conv_out3_kernel(float *y, const float *x, const float *w, int C_in, int H, int W) {
    __shared__ float sx[OWN_CC][OWN_TH + 2][OWN_TW + 2];
    __shared__ float sw[3][OWN_CC * 9];
    int tx = threadIdx.x % OWN_TW, ty = threadIdx.x / OWN_TW;
    int x0 = blockIdx.x * OWN_TW, y0 = blockIdx.y * OWN_TH;
    int px = x0 + tx, py = y0 + ty, inside = px < W && py < H;
    float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f;
    for (int c0 = 0; c0 < C_in; c0 += OWN_CC) {
        __syncthreads(); /* the previous round's reads are done */
        for (int i = threadIdx.x; i < OWN_CC * (OWN_TH + 2) * (OWN_TW + 2); i += blockDim.x) {
            int c = i / ((OWN_TH + 2) * (OWN_TW + 2)), r = i % ((OWN_TH + 2) * (OWN_TW + 2));
            int ry = r / (OWN_TW + 2), rx = r % (OWN_TW + 2), yy = y0 - 1 + ry, xx = x0 - 1 + rx;
            sx[c][ry][rx] = c0 + c < C_in && yy >= 0 && yy < H && xx >= 0 && xx < W
                                ? x[((size_t)(c0 + c) * H + yy) * W + xx]
                                : 0.0f;
        }
        for (int i = threadIdx.x; i < 3 * OWN_CC * 9; i += blockDim.x) {
            int o = i / (OWN_CC * 9), r = i % (OWN_CC * 9), c = r / 9;
            sw[o][r] = c0 + c < C_in ? w[((size_t)o * C_in + c0 + c) * 9 + r % 9] : 0.0f;
        }
        __syncthreads();
        if (inside)
            for (int c = 0; c < OWN_CC; c++)
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) {
                        float v = sx[c][ty + kh][tx + kw];
                        int k = c * 9 + kh * 3 + kw;
                        acc0 = fmaf(sw[0][k], v, acc0);
                        acc1 = fmaf(sw[1][k], v, acc1);
                        acc2 = fmaf(sw[2][k], v, acc2);
                    }
    }
    if (inside) {
        size_t HW = (size_t)H * W, at = (size_t)py * W + px;
        y[at] = acc0;
        y[HW + at] = acc1;
        y[2 * HW + at] = acc2;
    }
}

/* ---- parameters ------------------------------------------------------------------- */

nst_cuda *vgg19_cuda_ctx(const vgg19_cuda *g) { return g->ctx; }

void vgg19_cuda_set_search(vgg19_cuda *g, int measure) { g->search_default = measure ? 1 : 0; }

void vgg19_cuda_set_tuning(vgg19_cuda *g, const nst_tuning *t) {
    g->search = NST_CUDNN_SEARCH_DEFAULT;
    g->cache[0] = 0;
    g->cache_mkdir = 0;
    if (!t) return;
    g->search = t->cudnn_search;
    snprintf(g->cache, sizeof g->cache, "%s", t->cudnn_cache);
    g->cache_mkdir = t->cudnn_cache_mkdir;
}

static int conv_layer_of(int k) { /* the layer index of conv k */
    for (int l = 0; l < NST_NUM_LAYERS; l++)
        if (vgg19_layer_kind(l) == VGG_CONV && vgg19_layer_conv(l) == k) return l;
    return NST_NUM_LAYERS;
}

void vgg19_cuda_free(vgg19_cuda *g) {
    if (!g) return;
    if (g->ctx && g->ctx->stream) cudaStreamSynchronize(g->ctx->stream);
    for (int k = 0; k < 16; k++) {
        if (g->conv[k].desc) cudnnDestroyFilterDescriptor(g->conv[k].desc);
        if (g->conv[k].desc_t) cudnnDestroyFilterDescriptor(g->conv[k].desc_t);
    }
    cudaFree(g->params);
    free(g);
}

static nst_status upload(vgg19_cuda *g, const nst_vgg19 *net, nst_error *err) {
    size_t total = 0;
    for (int k = 0; k < 16; k++) {
        const vgg_conv *c = &net->conv[k];
        if (conv_layer_of(k) >= g->depth) break;
        total += 2 * (size_t)9 * c->C_in * c->C_out + c->C_out;
    }
    nst_status s = nst_cuda_alloc(g->ctx, (void **)&g->params, total, sizeof(float), "VGG19 weights", err);
    if (s) return s;
    float *p = g->params;
    for (int k = 0; k < 16; k++) {
        const vgg_conv *c = &net->conv[k];
        if (conv_layer_of(k) >= g->depth) break;
        conv_cuda *d = &g->conv[k];
        size_t nw = (size_t)9 * c->C_in * c->C_out;
        d->C_in = c->C_in;
        d->C_out = c->C_out;
        d->weight = p;
        d->weight_t = p + nw;
        d->bias = p + 2 * nw;
        p += 2 * nw + c->C_out;
        nst_status s = nst_cuda_copy_sync(g->ctx, d->weight, c->weight, nw * sizeof(float), cudaMemcpyHostToDevice, err);
        if (!s) s = nst_cuda_copy_sync(g->ctx, d->bias, c->bias, c->C_out * sizeof(float), cudaMemcpyHostToDevice, err);
        if (s) return s;
        flip_filter_kernel<<<nst_grid_for(nw), 256, 0, g->ctx->stream>>>(d->weight_t, d->weight, c->C_out, c->C_in);
        NST_CUDA_TRY(cudaGetLastError(), err);
        NST_CUDNN_TRY(cudnnCreateFilterDescriptor(&d->desc), err);
        NST_CUDNN_TRY(cudnnSetFilter4dDescriptor(d->desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, c->C_out,
                                                 c->C_in, 3, 3), err);
        NST_CUDNN_TRY(cudnnCreateFilterDescriptor(&d->desc_t), err);
        NST_CUDNN_TRY(cudnnSetFilter4dDescriptor(d->desc_t, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, c->C_in,
                                                 c->C_out, 3, 3), err);
    }
    NST_CUDA_TRY(cudaStreamSynchronize(g->ctx->stream), err);
    return NST_OK;
}

nst_status vgg19_cuda_upload(vgg19_cuda **out, nst_cuda *ctx, const nst_vgg19 *net, int depth, nst_error *err) {
    *out = NULL;
    if (depth <= 0 || depth > net->depth) depth = net->depth;
    vgg19_cuda *g = (vgg19_cuda *)calloc(1, sizeof *g);
    if (!g) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    g->ctx = ctx;
    g->depth = depth;
    snprintf(g->tag, sizeof g->tag, "%s/cudnn%zu", ctx->name, cudnnGetVersion());
    for (char *c = g->tag; *c; c++)
        if (*c == ' ' || *c == '\t' || *c == '\n') *c = '_';
    nst_status s = upload(g, net, err);
    if (s) {
        vgg19_cuda_free(g);
        return s;
    }
    *out = g;
    return NST_OK;
}

/* ---- activations and the plan ------------------------------------------------------- */

static void plan_free(vgg19_cuda_plan *p) {
    if (!p) return;
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        if (p->x[l]) cudnnDestroyTensorDescriptor(p->x[l]);
        if (p->y[l]) cudnnDestroyTensorDescriptor(p->y[l]);
        if (p->fwd_desc[l]) cudnnDestroyConvolutionDescriptor(p->fwd_desc[l]);
        if (p->bwd_desc[l]) cudnnDestroyConvolutionDescriptor(p->bwd_desc[l]);
        if (p->flip_desc[l]) cudnnDestroyConvolutionDescriptor(p->flip_desc[l]);
    }
    free(p);
}

void vgg19_cuda_acts_free(vgg19_cuda_acts *a) {
    cudaFree(a->memory);
    plan_free(a->plan);
    memset(a, 0, sizeof *a);
}

/* fp32: cuDNN must not use TF32 (CUDNN_DEFAULT_MATH would allow it on Ampere and newer),
 * so the descriptor says CUDNN_FMA_MATH. tf32: TF32 tensor cores allowed. Never a
 * conversion to fp16. */
static cudnnMathType_t base_math(nst_precision prec) {
    return prec == NST_PRECISION_TF32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* Whether an algorithm ranked with math type m may be used: strict (pass 0) takes, in
 * fp32, only those ranked as FMA; relaxed (pass 1) also those ranked with the default
 * math (they then run with the descriptor's FMA math). */
static int math_ok(cudnnMathType_t m, nst_precision prec, int relaxed) {
    if (m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return 0;
    if (prec == NST_PRECISION_TF32) return 1;
    return m == CUDNN_FMA_MATH || (relaxed && m == CUDNN_DEFAULT_MATH);
}

/* The math type the descriptor gets for an algorithm ranked with m. */
static cudnnMathType_t run_math(cudnnMathType_t m, nst_precision prec) {
    return prec == NST_PRECISION_TF32 ? m : CUDNN_FMA_MATH;
}

static nst_status make_conv_desc(cudnnConvolutionDescriptor_t *d, nst_precision prec, nst_error *err) {
    NST_CUDNN_TRY(cudnnCreateConvolutionDescriptor(d), err);
    NST_CUDNN_TRY(cudnnSetConvolution2dDescriptor(*d, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                  err);
    NST_CUDNN_TRY(cudnnSetConvolutionMathType(*d, base_math(prec)), err);
    return NST_OK;
}

/* cuDNN's heuristics rank the algorithms; the first that is allowed in this precision and
 * fits the workspace limit is taken (for the backward pass a deterministic one first). If
 * none is, the implicit-GEMM algorithms, which need no workspace. The workspace each
 * needs is taken into *ws. */
static nst_status choose_heuristic(vgg19_cuda_plan *p, cudnnHandle_t h, cudnnFilterDescriptor_t fd, int l,
                                   nst_precision prec, size_t limit, size_t *ws, nst_error *err) {
    cudnnConvolutionFwdAlgoPerf_t fperf[2 * CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0, found = 0;
    size_t bytes = 0;
    NST_CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, p->x[l], fd, p->fwd_desc[l], p->y[l],
                                                         2 * CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fperf), err);
    for (int pass = 0; pass < 2 && !found; pass++)
        for (int i = 0; i < n && !found; i++) {
            if (fperf[i].status != CUDNN_STATUS_SUCCESS || !math_ok(fperf[i].mathType, prec, pass)) continue;
            NST_CUDNN_TRY(cudnnSetConvolutionMathType(p->fwd_desc[l], run_math(fperf[i].mathType, prec)), err);
            if (cudnnGetConvolutionForwardWorkspaceSize(h, p->x[l], fd, p->fwd_desc[l], p->y[l], fperf[i].algo,
                                                        &bytes) != CUDNN_STATUS_SUCCESS || bytes > limit)
                continue;
            p->fwd_algo[l] = fperf[i].algo;
            found = 1;
        }
    if (!found) {
        p->fwd_algo[l] = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        NST_CUDNN_TRY(cudnnSetConvolutionMathType(p->fwd_desc[l], base_math(prec)), err);
        NST_CUDNN_TRY(cudnnGetConvolutionForwardWorkspaceSize(h, p->x[l], fd, p->fwd_desc[l], p->y[l], p->fwd_algo[l],
                                                              &bytes), err);
    }
    if (bytes > *ws) *ws = bytes;

    cudnnConvolutionBwdDataAlgoPerf_t bperf[2 * CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    n = 0;
    found = 0;
    bytes = 0;
    p->fwd_kind[l] = CONV_FWD;
    p->bwd_kind[l] = CONV_BWD;
    NST_CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, fd, p->y[l], p->bwd_desc[l], p->x[l],
                                                              2 * CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, bperf),
                  err);
    for (int pass = 0; pass < 4 && !found; pass++) /* strict+deterministic, strict, relaxed+det., relaxed */
        for (int i = 0; i < n && !found; i++) {
            if (bperf[i].status != CUDNN_STATUS_SUCCESS || !math_ok(bperf[i].mathType, prec, pass >= 2)) continue;
            if (pass % 2 == 0 && bperf[i].determinism != CUDNN_DETERMINISTIC) continue;
            NST_CUDNN_TRY(cudnnSetConvolutionMathType(p->bwd_desc[l], run_math(bperf[i].mathType, prec)), err);
            if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, fd, p->y[l], p->bwd_desc[l], p->x[l], bperf[i].algo,
                                                             &bytes) != CUDNN_STATUS_SUCCESS || bytes > limit)
                continue;
            p->bwd_algo[l] = bperf[i].algo;
            found = 1;
        }
    if (!found) {
        p->bwd_algo[l] = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
        NST_CUDNN_TRY(cudnnSetConvolutionMathType(p->bwd_desc[l], base_math(prec)), err);
        NST_CUDNN_TRY(cudnnGetConvolutionBackwardDataWorkspaceSize(h, fd, p->y[l], p->bwd_desc[l], p->x[l],
                                                                   (cudnnConvolutionBwdDataAlgo_t)p->bwd_algo[l],
                                                                   &bytes), err);
    }
    if (bytes > *ws) *ws = bytes;
    return NST_OK;
}

/* ---- measuring the algorithms (NST_CUDNN_SEARCH=1) ----------------------------------- */

typedef struct {
    int kind, algo;
    cudnnMathType_t math;
} conv_choice;

/* One convolution call's operands. */
typedef struct {
    cudnnHandle_t h;
    cudaStream_t st;
    cudnnTensorDescriptor_t src_d, dst_d;  /* forward kinds: x, y; backward kinds: y, x */
    cudnnFilterDescriptor_t fd;            /* the flipped kinds: the flipped filter's */
    cudnnConvolutionDescriptor_t cd;
    const float *w, *src;
    float *dst;
    void *ws;
    size_t ws_bytes;
    int src_c, dst_c, H, W;                /* channels of src and dst, the image size */
} conv_args;

/* The operands of conv layer l (on an H x W input) for a kind: src to dst. */
static conv_args layer_args(const vgg19_cuda *g, const vgg19_cuda_plan *p, int l, int kind, int H, int W,
                            const float *src, float *dst, void *ws, size_t ws_bytes) {
    const conv_cuda *c = &g->conv[vgg19_layer_conv(l)];
    conv_args a;
    a.h = g->ctx->cudnn;
    a.st = g->ctx->stream;
    int fwd = kind == CONV_FWD || kind == CONV_OWN, flip = kind == CONV_FLIP || kind == CONV_OWN_FLIP;
    a.src_d = fwd ? p->x[l] : p->y[l];
    a.dst_d = fwd ? p->y[l] : p->x[l];
    a.fd = flip ? c->desc_t : c->desc;
    a.cd = fwd ? p->fwd_desc[l] : flip ? p->flip_desc[l] : p->bwd_desc[l];
    a.w = flip ? c->weight_t : c->weight;
    a.src = src;
    a.dst = dst;
    a.ws = ws;
    a.ws_bytes = ws_bytes;
    a.src_c = fwd ? c->C_in : c->C_out;
    a.dst_c = fwd ? c->C_out : c->C_in;
    a.H = H;
    a.W = W;
    return a;
}

/* Whether an own kernel computes this kind for this conv: CONV_OWN for 3 input channels,
 * CONV_OWN_FLIP for 3 (the backward pass to the image). */
static int own_ok(const conv_args *c, int kind) {
    if (kind == CONV_OWN) return c->src_c == 3 && c->dst_c % OWN_CG == 0;
    if (kind == CONV_OWN_FLIP) return c->dst_c == 3;
    return 1;
}

static cudnnStatus_t conv_workspace(const conv_args *c, int kind, int algo, size_t *bytes) {
    *bytes = 0;
    if (kind == CONV_OWN || kind == CONV_OWN_FLIP) return own_ok(c, kind) ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
    if (kind == CONV_BWD)
        return cudnnGetConvolutionBackwardDataWorkspaceSize(c->h, c->fd, c->src_d, c->cd, c->dst_d,
                                                            (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    return cudnnGetConvolutionForwardWorkspaceSize(c->h, c->src_d, c->fd, c->cd, c->dst_d,
                                                   (cudnnConvolutionFwdAlgo_t)algo, bytes);
}

static cudnnStatus_t conv_run(const conv_args *c, int kind, int algo) {
    const float one = 1.0f, zero = 0.0f;
    if (kind == CONV_OWN || kind == CONV_OWN_FLIP) {
        if (!own_ok(c, kind)) return CUDNN_STATUS_NOT_SUPPORTED;
        dim3 grid((c->W + OWN_TW - 1) / OWN_TW, (c->H + OWN_TH - 1) / OWN_TH, kind == CONV_OWN ? c->dst_c / OWN_CG : 1);
        if (kind == CONV_OWN)
            conv_in3_kernel<<<grid, OWN_TW * OWN_TH, 0, c->st>>>(c->dst, c->src, c->w, c->H, c->W);
        else
            conv_out3_kernel<<<grid, OWN_TW * OWN_TH, 0, c->st>>>(c->dst, c->src, c->w, c->src_c, c->H, c->W);
        return cudaGetLastError() == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED;
    }
    if (kind == CONV_BWD)
        return cudnnConvolutionBackwardData(c->h, &one, c->fd, c->w, c->src_d, c->src, c->cd,
                                            (cudnnConvolutionBwdDataAlgo_t)algo, c->ws, c->ws_bytes, &zero, c->dst_d,
                                            c->dst);
    return cudnnConvolutionForward(c->h, &one, c->src_d, c->src, c->fd, c->w, c->cd, (cudnnConvolutionFwdAlgo_t)algo,
                                   c->ws, c->ws_bytes, &zero, c->dst_d, c->dst);
}

/* The candidates for one convolution, in the heuristic's order: deterministic, allowed in
 * this precision, within the workspace limit, each (algorithm, math) once, the first
 * CANDIDATES_PER_KIND of them (the heuristic ranks the ones that never win for 3x3
 * convolutions, such as explicit GEMM, last; measuring them would only take time).
 * Appends to out[*n]. */
#define CANDIDATES_PER_KIND 5
static void candidates(const conv_args *c, int kind, nst_precision prec, size_t limit, conv_choice *out, int *n,
                       int max) {
    if (kind == CONV_OWN || kind == CONV_OWN_FLIP) {
        if (own_ok(c, kind) && *n < max) {
            out[*n].kind = kind;
            out[*n].algo = 0;
            out[*n].math = CUDNN_FMA_MATH;
            (*n)++;
        }
        return;
    }
    int algos[2 * CUDNN_CONVOLUTION_FWD_ALGO_COUNT + 2 * CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnMathType_t maths[sizeof algos / sizeof algos[0]];
    int m = 0;
    if (kind == CONV_BWD) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[2 * CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        int k = 0;
        if (cudnnGetConvolutionBackwardDataAlgorithm_v7(c->h, c->fd, c->src_d, c->cd, c->dst_d,
                                                        2 * CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &k, perf) !=
            CUDNN_STATUS_SUCCESS)
            k = 0;
        for (int i = 0; i < k; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
                math_ok(perf[i].mathType, prec, 1)) {
                algos[m] = perf[i].algo;
                maths[m++] = run_math(perf[i].mathType, prec);
            }
    } else {
        cudnnConvolutionFwdAlgoPerf_t perf[2 * CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int k = 0;
        if (cudnnGetConvolutionForwardAlgorithm_v7(c->h, c->src_d, c->fd, c->cd, c->dst_d,
                                                   2 * CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &k, perf) !=
            CUDNN_STATUS_SUCCESS)
            k = 0;
        for (int i = 0; i < k; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
                math_ok(perf[i].mathType, prec, 1)) {
                algos[m] = perf[i].algo;
                maths[m++] = run_math(perf[i].mathType, prec);
            }
    }
    int taken = 0;
    for (int i = 0; i < m && *n < max && taken < CANDIDATES_PER_KIND; i++) {
        int dup = 0;
        for (int j = 0; j < *n; j++) dup |= out[j].kind == kind && out[j].algo == algos[i] && out[j].math == maths[i];
        size_t bytes = 0;
        if (dup || cudnnSetConvolutionMathType(c->cd, maths[i]) != CUDNN_STATUS_SUCCESS ||
            conv_workspace(c, kind, algos[i], &bytes) != CUDNN_STATUS_SUCCESS || bytes > limit)
            continue;
        out[*n].kind = kind;
        out[*n].algo = algos[i];
        out[*n].math = maths[i];
        (*n)++;
        taken++;
    }
}

/* The time of one call in ms: a warm-up, then the best of two (one if it is already three
 * times slower than best_so_far, or if the warm-up took over 2 ms: large problems time
 * steadily); negative if cuDNN refuses it. On large problems (the best so far over 5 ms,
 * where loading a kernel is no longer a large part of the first call) a warm-up five
 * times slower than the best ends the measuring at once. */
static float time_conv(const conv_args *c, const conv_choice *ch, cudaStream_t st, cudaEvent_t e0, cudaEvent_t e1,
                       float best_so_far) {
    int own = ch->kind == CONV_OWN || ch->kind == CONV_OWN_FLIP;
    float warm = 0.0f;
    if (!own && cudnnSetConvolutionMathType(c->cd, ch->math) != CUDNN_STATUS_SUCCESS) return -1.0f;
    if (cudaEventRecord(e0, st) != cudaSuccess || conv_run(c, ch->kind, ch->algo) != CUDNN_STATUS_SUCCESS ||
        cudaEventRecord(e1, st) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
        cudaEventElapsedTime(&warm, e0, e1) != cudaSuccess)
        return -1.0f;
    if (best_so_far > 5.0f && warm > 5.0f * best_so_far) return warm;
    float best = -1.0f;
    for (int r = 0; r < (warm < 2.0f ? 2 : 1); r++) {
        float ms = 0.0f;
        if (cudaEventRecord(e0, st) != cudaSuccess || conv_run(c, ch->kind, ch->algo) != CUDNN_STATUS_SUCCESS ||
            cudaEventRecord(e1, st) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
            return -1.0f;
        if (best < 0.0f || ms < best) best = ms;
        if (best_so_far > 0.0f && ms > 3.0f * best_so_far) break;
    }
    return best;
}

/* Picks from cand[0..n-1] (cand[0] the heuristic's choice): the first, in that order,
 * within MEASURE_SLACK of the fastest. Preferring the earlier of near-equals keeps the
 * choice (and so the result's last bits) the same from run to run unless an algorithm
 * is clearly faster. *ref_ms: cand[0]'s time; t: each one's (negative: refused).
 * Returns the index, or -1 if none ran. */
#define MEASURE_SLACK 1.08f
static int measure(const conv_args *const args[CONV_KINDS], const conv_choice *cand, int n, cudaStream_t st, cudaEvent_t e0,
                   cudaEvent_t e1, float *ms_out, float *ref_ms, float t[64]) {
    float best = -1.0f;
    for (int i = 0; i < n && i < 64; i++) {
        t[i] = time_conv(args[cand[i].kind], &cand[i], st, e0, e1, best);
        if (t[i] >= 0.0f && (best < 0.0f || t[i] < best)) best = t[i];
    }
    cudaGetLastError(); /* a refused launch must not stay behind as the last error */
    *ref_ms = n > 0 ? t[0] : -1.0f;
    *ms_out = -1.0f;
    for (int i = 0; i < n && i < 64; i++)
        if (t[i] >= 0.0f && t[i] <= MEASURE_SLACK * best) {
            *ms_out = t[i];
            return i;
        }
    return -1;
}

/* ---- the measured choices on disk --------------------------------------------------
 * Measuring takes time and may choose differently on another run; so each choice is
 * appended to a cache file, and a later run on the same GPU model with the same cuDNN
 * takes it from there: the same algorithms (so the same bits) without measuring again.
 * The tuning's cudnn_cache names the file ("": none, the default: no file is written;
 * nst_tuning_from_env fills it from NST_CUDNN_CACHE, XDG_CACHE_HOME or HOME). One line per
 * choice: "nst-algos-1 TAG k H W prec mode fwd_kind fwd_algo fwd_math bwd_kind bwd_algo
 * bwd_math" and the six measured times; a line that does not parse is skipped. */

static int cache_path(const vgg19_cuda *g, char *buf, size_t size, int *make_dirs) {
    *make_dirs = g->cache_mkdir;
    if (!g->cache[0]) return 0;
    snprintf(buf, size, "%s", g->cache);
    return 1;
}

static void cache_read(vgg19_cuda *g) {
    char path[4096], line[1024];
    int make_dirs;
    g->cache_read = 1;
    if (!cache_path(g, path, sizeof path, &make_dirs)) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        char magic[16], tag[300];
        algo_memo m;
        int fm, bm;
        if (sscanf(line, "%15s %299s %d %d %d %d %d %d %d %d %d %d %d %f %f %f %f %f %f", magic, tag, &m.k, &m.H, &m.W,
                   &m.prec, &m.mode, &m.fwd_kind, &m.fwd_algo, &fm, &m.bwd_kind, &m.bwd_algo, &bm, &m.fwd_ms,
                   &m.fwd_ref_ms, &m.bwd_ms, &m.bwd_ref_ms, &m.bwd_data_ms, &m.bwd_flip_ms) != 19 ||
            strcmp(magic, "nst-algos-1") != 0 || strcmp(tag, g->tag) != 0 || m.k < 0 || m.k >= 16 ||
            (m.fwd_kind != CONV_FWD && m.fwd_kind != CONV_OWN) ||
            (m.bwd_kind != CONV_BWD && m.bwd_kind != CONV_FLIP && m.bwd_kind != CONV_OWN_FLIP))
            continue;
        m.fwd_math = (cudnnMathType_t)fm;
        m.bwd_math = (cudnnMathType_t)bm;
        if (g->n_memo == ALGO_MEMOS) /* keep the newest */
            memmove(g->memo, g->memo + 1, (ALGO_MEMOS - 1) * sizeof g->memo[0]);
        else
            g->n_memo++;
        g->memo[g->n_memo - 1] = m;
    }
    fclose(f);
}

static void cache_append(const vgg19_cuda *g, const algo_memo *m) {
    char path[4096];
    int make_dirs;
    if (!cache_path(g, path, sizeof path, &make_dirs)) return;
    if (make_dirs) { /* the folder and its parent (~/.cache), as far as they are missing */
        char *slash = strrchr(path, '/');
        if (slash) {
            *slash = 0;
            char *up = strrchr(path, '/');
            if (up) {
                *up = 0;
                mkdir(path, 0755);
                *up = '/';
            }
            mkdir(path, 0755);
            *slash = '/';
        }
    }
    char line[1024];
    int n = snprintf(line, sizeof line, "nst-algos-1 %s %d %d %d %d %d %d %d %d %d %d %d %.4f %.4f %.4f %.4f %.4f %.4f\n",
                     g->tag, m->k, m->H, m->W, m->prec, m->mode, m->fwd_kind, m->fwd_algo, (int)m->fwd_math,
                     m->bwd_kind, m->bwd_algo, (int)m->bwd_math, m->fwd_ms, m->fwd_ref_ms, m->bwd_ms, m->bwd_ref_ms,
                     m->bwd_data_ms, m->bwd_flip_ms);
    if (n <= 0 || (size_t)n >= sizeof line) return;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644); /* one write: lines from runs at once stay whole */
    if (fd < 0) return;
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

/* Whether a remembered choice can run here within the workspace limit. */
static int memo_usable(const vgg19_cuda *g, const vgg19_cuda_plan *p, int l, int hi, int wi, const algo_memo *m,
                       size_t limit) {
    size_t f = 0, b = 0;
    conv_args fa = layer_args(g, p, l, m->fwd_kind, hi, wi, NULL, NULL, NULL, 0);
    conv_args ba = layer_args(g, p, l, m->bwd_kind, hi, wi, NULL, NULL, NULL, 0);
    cudnnMathType_t f0 = CUDNN_FMA_MATH, b0 = CUDNN_FMA_MATH; /* restored after the check */
    cudnnGetConvolutionMathType(fa.cd, &f0);
    cudnnGetConvolutionMathType(ba.cd, &b0);
    int ok = (m->fwd_kind != CONV_FWD || cudnnSetConvolutionMathType(fa.cd, m->fwd_math) == CUDNN_STATUS_SUCCESS) &&
             conv_workspace(&fa, m->fwd_kind, m->fwd_algo, &f) == CUDNN_STATUS_SUCCESS && f <= limit &&
             (m->bwd_kind == CONV_OWN_FLIP || cudnnSetConvolutionMathType(ba.cd, m->bwd_math) == CUDNN_STATUS_SUCCESS) &&
             conv_workspace(&ba, m->bwd_kind, m->bwd_algo, &b) == CUDNN_STATUS_SUCCESS && b <= limit;
    cudnnSetConvolutionMathType(fa.cd, f0);
    cudnnSetConvolutionMathType(ba.cd, b0);
    return ok;
}

/* Measures the algorithms of conv layer l on an H x W input (or takes them from the memo),
 * starting from the heuristic's choice already in the plan; x/y are scratch buffers as
 * large as the layer's input and output, ws a workspace of limit bytes. mode 2: the
 * backward pass only as flipped forward convolutions (the tests). */
static nst_status choose_measured(vgg19_cuda *g, vgg19_cuda_plan *p, int l, int hi, int wi, nst_precision prec,
                                  int mode, float *x, float *y, void *ws, size_t limit, cudaEvent_t e0,
                                  cudaEvent_t e1, nst_error *err) {
    cudaStream_t st = g->ctx->stream;
    int k = vgg19_layer_conv(l);
    const algo_memo *m = NULL;
    if (!g->cache_read) cache_read(g);
    for (int i = g->n_memo - 1; i >= 0 && !m; i--) { /* the newest first */
        const algo_memo *q = &g->memo[i];
        if (q->k == k && q->H == hi && q->W == wi && q->prec == (int)prec && q->mode == mode &&
            memo_usable(g, p, l, hi, wi, q, limit))
            m = q;
    }
    if (m) {
        p->fwd_kind[l] = m->fwd_kind;
        p->fwd_algo[l] = (cudnnConvolutionFwdAlgo_t)m->fwd_algo;
        p->bwd_kind[l] = m->bwd_kind;
        p->bwd_algo[l] = m->bwd_algo;
        if (m->fwd_kind == CONV_FWD) NST_CUDNN_TRY(cudnnSetConvolutionMathType(p->fwd_desc[l], m->fwd_math), err);
        if (m->bwd_kind != CONV_OWN_FLIP)
            NST_CUDNN_TRY(cudnnSetConvolutionMathType(m->bwd_kind == CONV_FLIP ? p->flip_desc[l] : p->bwd_desc[l],
                                                      m->bwd_math), err);
        p->fwd_ms[l] = m->fwd_ms;
        p->fwd_ref_ms[l] = m->fwd_ref_ms;
        p->bwd_ms[l] = m->bwd_ms;
        p->bwd_ref_ms[l] = m->bwd_ref_ms;
        p->bwd_data_ms[l] = m->bwd_data_ms;
        p->bwd_flip_ms[l] = m->bwd_flip_ms;
        return NST_OK;
    }
    conv_args args[CONV_KINDS];
    const conv_args *ap[CONV_KINDS];
    for (int kind = 0; kind < CONV_KINDS; kind++) {
        int fwd = kind == CONV_FWD || kind == CONV_OWN;
        args[kind] = layer_args(g, p, l, kind, hi, wi, fwd ? x : y, fwd ? y : x, ws, limit);
        ap[kind] = &args[kind];
    }
    conv_choice cand[64];
    float t[64];
    int n = 0, pick;
    cudnnMathType_t m0;
    /* forward: the heuristic's choice first, then the others in its order, then own */
    if (mode == 3) candidates(ap[CONV_OWN], CONV_OWN, prec, limit, cand, &n, 64);
    if (n == 0) {
        NST_CUDNN_TRY(cudnnGetConvolutionMathType(p->fwd_desc[l], &m0), err);
        cand[n].kind = CONV_FWD;
        cand[n].algo = (int)p->fwd_algo[l];
        cand[n++].math = m0;
        candidates(ap[CONV_FWD], CONV_FWD, prec, limit, cand, &n, 64);
        candidates(ap[CONV_OWN], CONV_OWN, prec, limit, cand, &n, 64);
    }
    pick = measure(ap, cand, n, st, e0, e1, &p->fwd_ms[l], &p->fwd_ref_ms[l], t);
    if (pick < 0) pick = 0;
    p->fwd_kind[l] = cand[pick].kind;
    p->fwd_algo[l] = (cudnnConvolutionFwdAlgo_t)cand[pick].algo;
    if (cand[pick].kind == CONV_FWD) NST_CUDNN_TRY(cudnnSetConvolutionMathType(p->fwd_desc[l], cand[pick].math), err);
    cudnnMathType_t fwd_math = cand[pick].math;
    /* backward: cudnnConvolutionBackwardData (the heuristic's choice first), then the
     * flipped forward convolutions, then own */
    n = 0;
    if (mode == 3) candidates(ap[CONV_OWN_FLIP], CONV_OWN_FLIP, prec, limit, cand, &n, 64);
    if (n == 0 && mode != 2 && mode != 3) {
        NST_CUDNN_TRY(cudnnGetConvolutionMathType(p->bwd_desc[l], &m0), err);
        cand[n].kind = CONV_BWD;
        cand[n].algo = p->bwd_algo[l];
        cand[n++].math = m0;
        candidates(ap[CONV_BWD], CONV_BWD, prec, limit, cand, &n, 64);
    }
    if (n == 0) {
        candidates(ap[CONV_FLIP], CONV_FLIP, prec, limit, cand, &n, 64);
        candidates(ap[CONV_OWN_FLIP], CONV_OWN_FLIP, prec, limit, cand, &n, 64);
    }
    pick = measure(ap, cand, n, st, e0, e1, &p->bwd_ms[l], &p->bwd_ref_ms[l], t);
    if (pick < 0 && mode >= 2)
        return nst_fail(err, NST_ERR_IO, "cuDNN runs no flipped convolution for %s", nst_layer_name(l));
    if (pick < 0) pick = 0;
    p->bwd_data_ms[l] = p->bwd_flip_ms[l] = -1.0f; /* the best of each way */
    for (int i = 0; i < n; i++) {
        float *b = cand[i].kind == CONV_BWD ? &p->bwd_data_ms[l] : &p->bwd_flip_ms[l];
        if (t[i] >= 0.0f && (*b < 0.0f || t[i] < *b)) *b = t[i];
    }
    p->bwd_kind[l] = cand[pick].kind;
    p->bwd_algo[l] = cand[pick].algo;
    if (cand[pick].kind != CONV_OWN_FLIP)
        NST_CUDNN_TRY(cudnnSetConvolutionMathType(args[cand[pick].kind].cd, cand[pick].math), err);
    {
        algo_memo mm, *q = &mm;
        q->k = k;
        q->H = hi;
        q->W = wi;
        q->prec = (int)prec;
        q->mode = mode;
        q->fwd_kind = p->fwd_kind[l];
        q->fwd_algo = (int)p->fwd_algo[l];
        q->fwd_math = fwd_math;
        q->bwd_kind = p->bwd_kind[l];
        q->bwd_algo = p->bwd_algo[l];
        q->bwd_math = cand[pick].math;
        q->fwd_ms = p->fwd_ms[l];
        q->fwd_ref_ms = p->fwd_ref_ms[l];
        q->bwd_ms = p->bwd_ms[l];
        q->bwd_ref_ms = p->bwd_ref_ms[l];
        q->bwd_data_ms = p->bwd_data_ms[l];
        q->bwd_flip_ms = p->bwd_flip_ms[l];
        cache_append(g, q);
        if (g->n_memo < ALGO_MEMOS) g->memo[g->n_memo++] = mm;
    }
    return NST_OK;
}

/* The workspace the chosen algorithms of conv layer l need. */
static nst_status chosen_workspace(const vgg19_cuda *g, const vgg19_cuda_plan *p, int l, int hi, int wi, size_t *ws,
                                   nst_error *err) {
    size_t f = 0, b = 0;
    conv_args fa = layer_args(g, p, l, p->fwd_kind[l], hi, wi, NULL, NULL, NULL, 0);
    conv_args ba = layer_args(g, p, l, p->bwd_kind[l], hi, wi, NULL, NULL, NULL, 0);
    NST_CUDNN_TRY(conv_workspace(&fa, p->fwd_kind[l], (int)p->fwd_algo[l], &f), err);
    NST_CUDNN_TRY(conv_workspace(&ba, p->bwd_kind[l], p->bwd_algo[l], &b), err);
    if (f > *ws) *ws = f;
    if (b > *ws) *ws = b;
    return NST_OK;
}

static const char *fwd_algo_name(cudnnConvolutionFwdAlgo_t a) {
    static const char *const names[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                                        "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}

static const char *bwd_algo_name(cudnnConvolutionBwdDataAlgo_t a) {
    static const char *const names[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}

static const char *math_name(cudnnConvolutionDescriptor_t d) {
    cudnnMathType_t m = CUDNN_DEFAULT_MATH;
    cudnnGetConvolutionMathType(d, &m);
    return m == CUDNN_FMA_MATH ? "fma" : m == CUDNN_DEFAULT_MATH ? "default" : m == CUDNN_TENSOR_OP_MATH ? "tensor-op" : "other";
}

void vgg19_cuda_describe_algos(const vgg19_cuda_acts *a, int l, char *buf, size_t size) {
    const vgg19_cuda_plan *p = a->plan;
    if (size) buf[0] = 0;
    if (!p || l < 0 || l >= a->depth || vgg19_layer_kind(l) != VGG_CONV) return;
    char f[64], b[64];
    if (p->fwd_kind[l] == CONV_OWN) snprintf(f, sizeof f, "own direct");
    else snprintf(f, sizeof f, "%s %s", fwd_algo_name(p->fwd_algo[l]), math_name(p->fwd_desc[l]));
    if (p->bwd_kind[l] == CONV_OWN_FLIP)
        snprintf(b, sizeof b, "flipped own direct");
    else if (p->bwd_kind[l] == CONV_FLIP)
        snprintf(b, sizeof b, "flipped fwd %s %s", fwd_algo_name((cudnnConvolutionFwdAlgo_t)p->bwd_algo[l]),
                 math_name(p->flip_desc[l]));
    else
        snprintf(b, sizeof b, "data %s %s", bwd_algo_name((cudnnConvolutionBwdDataAlgo_t)p->bwd_algo[l]),
                 math_name(p->bwd_desc[l]));
    int n = snprintf(buf, size, "fwd %s, bwd %s", f, b);
    if (a->searched && n > 0 && (size_t)n < size) /* measured: each with the heuristic's choice's time */
        snprintf(buf + n, size - n, "; ms fwd %.3f (heuristic's %.3f), bwd %.3f (heuristic's %.3f, best data %.3f, "
                 "flipped %.3f)", p->fwd_ms[l], p->fwd_ref_ms[l], p->bwd_ms[l], p->bwd_ref_ms[l], p->bwd_data_ms[l],
                 p->bwd_flip_ms[l]);
}

nst_status vgg19_cuda_prof_create(vgg19_cuda_prof *p, nst_error *err) {
    memset(p, 0, sizeof *p);
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        for (int k = 0; k < 2; k++) NST_CUDA_TRY(cudaEventCreate(&p->fwd[l][k]), err);
        for (int k = 0; k < 3; k++) NST_CUDA_TRY(cudaEventCreate(&p->bwd[l][k]), err);
    }
    return NST_OK;
}

void vgg19_cuda_prof_destroy(vgg19_cuda_prof *p) {
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        for (int k = 0; k < 2; k++)
            if (p->fwd[l][k]) cudaEventDestroy(p->fwd[l][k]);
        for (int k = 0; k < 3; k++)
            if (p->bwd[l][k]) cudaEventDestroy(p->bwd[l][k]);
    }
    memset(p, 0, sizeof *p);
}

/* buffers start on 256-byte boundaries */
static size_t align_floats(size_t n) { return (n + 63) / 64 * 64; }

/* The tuning's cudnn_search (vgg19_cuda_set_tuning): MEASURE measures the algorithms (1),
 * HEURISTIC takes cuDNN's heuristic choice (0); DEFAULT: vgg19_cuda_set_search's choice
 * (heuristics unless set). For the tests: FLIP measures with only the flipped forward
 * convolutions for the backward pass (2); OWN also takes the own kernels wherever they
 * apply (3). */
static int search_mode(const vgg19_cuda *g) {
    switch (g->search) {
    case NST_CUDNN_SEARCH_HEURISTIC: return 0;
    case NST_CUDNN_SEARCH_MEASURE: return 1;
    case NST_CUDNN_SEARCH_FLIP: return 2;
    case NST_CUDNN_SEARCH_OWN: return 3;
    default: return g->search_default;
    }
}

static nst_status acts_build(vgg19_cuda_acts *a, vgg19_cuda *g, int depth, int H, int W, const unsigned char *keep,
                             nst_precision prec, nst_error *err) {
    a->depth = depth;
    a->H = H;
    a->W = W;
    a->precision = prec;
    int C = 3, h = H, w = W, pools = 0;
    size_t total = align_floats((size_t)3 * H * W), largest = (size_t)3 * H * W;
    for (int l = 0; l < depth; l++) {
        vgg_layer_kind kind = vgg19_layer_kind(l);
        if (kind == VGG_CONV) {
            C = g->conv[vgg19_layer_conv(l)].C_out;
        } else if (kind == VGG_POOL) {
            h /= 2;
            w /= 2;
            if (h >= 1 && w >= 1) pools++;
            if (h < 1 || w < 1)
                return nst_fail(err, NST_ERR_ARG,
                                "image %dx%d is too small for layer %s (each side needs at least %d pixels)", W, H,
                                nst_layer_name(l), 1 << ++pools);
        }
        a->C[l] = C;
        a->Hl[l] = h;
        a->Wl[l] = w;
        size_t n = (size_t)C * h * w;
        if (n > (size_t)INT_MAX) /* cuDNN's tensor descriptors count in int */
            return nst_fail(err, NST_ERR_LIMIT,
                            "image %dx%d is too large for the GPU path: layer %s would hold %zu values (cuDNN takes at most %d)",
                            W, H, nst_layer_name(l), n, INT_MAX);
        if (kind != VGG_RELU || (keep && keep[l - 1])) total += align_floats(n);
        if (n > largest) largest = n;
    }
    total += 2 * align_floats(largest);

    /* descriptors and the heuristic's algorithms; the workspace may take an eighth of the
     * free memory (at most 1 GiB) */
    vgg19_cuda_plan *p = (vgg19_cuda_plan *)calloc(1, sizeof *p);
    if (!p) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    a->plan = p;
    size_t free_b = 0, total_b = 0;
    NST_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b), err);
    size_t limit = free_b / 8 < ((size_t)1 << 30) ? free_b / 8 : ((size_t)1 << 30);
    size_t ws = 0;
    a->searched = search_mode(g);
    for (int l = 0; l < depth; l++) {
        if (vgg19_layer_kind(l) != VGG_CONV) continue;
        const conv_cuda *c = &g->conv[vgg19_layer_conv(l)];
        int hi = l == 0 ? H : a->Hl[l - 1], wi = l == 0 ? W : a->Wl[l - 1];
        NST_CUDNN_TRY(cudnnCreateTensorDescriptor(&p->x[l]), err);
        NST_CUDNN_TRY(cudnnCreateTensorDescriptor(&p->y[l]), err);
        NST_CUDNN_TRY(cudnnSetTensor4dDescriptor(p->x[l], CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, c->C_in, hi, wi), err);
        NST_CUDNN_TRY(cudnnSetTensor4dDescriptor(p->y[l], CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, c->C_out, hi, wi), err);
        nst_status s = make_conv_desc(&p->fwd_desc[l], prec, err);
        if (!s) s = make_conv_desc(&p->bwd_desc[l], prec, err);
        if (!s) s = make_conv_desc(&p->flip_desc[l], prec, err);
        if (!s) s = choose_heuristic(p, g->ctx->cudnn, c->desc, l, prec, limit, &ws, err);
        if (s) return s;
    }

    char what[96];
    snprintf(what, sizeof what, "VGG19 activations for a %dx%d image", W, H);
    /* measured on scratch buffers (the two gradient buffers' worth, each as large as the
     * largest layer) with a workspace of the limit; then the activations are allocated with
     * the workspace the choices need */
    void *scratch = NULL;
    if (a->searched) {
        size_t sws = align_floats((limit + sizeof(float) - 1) / sizeof(float));
        if (cudaMalloc(&scratch, (2 * align_floats(largest) + sws) * sizeof(float)) != cudaSuccess) {
            cudaGetLastError(); /* no room to measure in: the heuristic's choices */
            scratch = NULL;
            a->searched = 0;
        }
    }
    if (a->searched) {
        nst_status s = NST_OK;
        float *x = (float *)scratch, *y = x + align_floats(largest);
        cudaEvent_t e0 = NULL, e1 = NULL;
        s = nst_cuda_check(cudaMemsetAsync(scratch, 0, 2 * align_floats(largest) * sizeof(float), g->ctx->stream),
                           "cudaMemsetAsync", err);
        if (!s) s = nst_cuda_check(cudaEventCreate(&e0), "cudaEventCreate", err);
        if (!s) s = nst_cuda_check(cudaEventCreate(&e1), "cudaEventCreate", err);
        ws = 0;
        for (int l = 0; !s && l < depth; l++) {
            if (vgg19_layer_kind(l) != VGG_CONV) continue;
            int hi = l == 0 ? H : a->Hl[l - 1], wi = l == 0 ? W : a->Wl[l - 1];
            s = choose_measured(g, p, l, hi, wi, prec, a->searched, x, y, y + align_floats(largest), limit, e0, e1,
                                err);
            if (!s) s = chosen_workspace(g, p, l, hi, wi, &ws, err);
        }
        if (!s) s = nst_cuda_check(cudaStreamSynchronize(g->ctx->stream), "measuring the convolutions", err);
        if (e0) cudaEventDestroy(e0);
        if (e1) cudaEventDestroy(e1);
        cudaFree(scratch);
        if (s) return s;
    }
    size_t ws_floats = align_floats((ws + sizeof(float) - 1) / sizeof(float));
    nst_status s = nst_cuda_alloc(g->ctx, &a->memory, total + ws_floats, sizeof(float), what, err);
    if (s) return s;
    a->bytes = (total + ws_floats) * sizeof(float);
    float *q = (float *)a->memory;
    a->input = q;
    q += align_floats((size_t)3 * H * W);
    for (int l = 0; l < depth; l++) {
        if (vgg19_layer_kind(l) == VGG_RELU && !(keep && keep[l - 1])) {
            a->out[l] = a->out[l - 1];
        } else {
            a->out[l] = q;
            q += align_floats(vgg19_cuda_layer_size(a, l));
        }
    }
    a->grad_a = q;
    q += align_floats(largest);
    a->grad_b = q;
    q += align_floats(largest);
    a->workspace = ws ? (void *)q : NULL;
    a->workspace_bytes = ws;
    return NST_OK;
}

nst_status vgg19_cuda_acts_build(vgg19_cuda_acts *a, vgg19_cuda *g, int depth, int H, int W,
                                 const unsigned char *keep, nst_precision precision, nst_error *err) {
    memset(a, 0, sizeof *a);
    if (depth < 1 || depth > g->depth || H < 1 || W < 1)
        return nst_fail(err, NST_ERR_ARG, "bad network size %dx%d, depth %d (weights uploaded for %d layers)", W, H,
                        depth, g->depth);
    nst_status s = acts_build(a, g, depth, H, W, keep, precision, err);
    if (s) vgg19_cuda_acts_free(a);
    return s;
}

/* ---- forward and backward ----------------------------------------------------------- */

/* The ReLU after conv layer l runs in the conv's bias kernel when it is within depth. */
static int relu_fused_forward(const vgg19_cuda_acts *a, int l) {
    return l + 1 < a->depth && vgg19_layer_kind(l + 1) == VGG_RELU;
}

nst_status vgg19_cuda_forward_layer(const vgg19_cuda *g, vgg19_cuda_acts *a, int l, nst_error *err) {
    const float *inp = l == 0 ? a->input : a->out[l - 1];
    int Hi = l == 0 ? a->H : a->Hl[l - 1], Wi = l == 0 ? a->W : a->Wl[l - 1];
    size_t n = vgg19_cuda_layer_size(a, l);
    cudaStream_t st = g->ctx->stream;
    if (a->prof) NST_CUDA_TRY(cudaEventRecord(a->prof->fwd[l][0], st), err);
    switch (vgg19_layer_kind(l)) {
    case VGG_CONV: {
        const conv_cuda *c = &g->conv[vgg19_layer_conv(l)];
        vgg19_cuda_plan *p = a->plan;
        conv_args ca = layer_args(g, p, l, p->fwd_kind[l], Hi, Wi, inp, a->out[l], a->workspace, a->workspace_bytes);
        NST_CUDNN_TRY(conv_run(&ca, p->fwd_kind[l], (int)p->fwd_algo[l]), err);
        int HW = a->Hl[l] * a->Wl[l];
        float *relu = relu_fused_forward(a, l) ? a->out[l + 1] : NULL;
        bias_relu_kernel<<<channel_grid(HW % 4 == 0 ? HW / 4 : HW, a->C[l]), 256, 0, st>>>(a->out[l], relu, c->bias, HW);
        break;
    }
    case VGG_RELU:
        if (l > 0 && vgg19_layer_kind(l - 1) == VGG_CONV) break; /* done with the conv's bias */
        relu_forward_kernel<<<nst_grid_for(n), 256, 0, st>>>(a->out[l], inp, n);
        break;
    case VGG_POOL:
        maxpool_forward_kernel<<<channel_grid((size_t)a->Hl[l] * a->Wl[l], a->C[l]), 256, 0, st>>>(a->out[l], inp, Hi,
                                                                                                 Wi);
        break;
    }
    NST_CUDA_TRY(cudaGetLastError(), err);
    if (a->prof) NST_CUDA_TRY(cudaEventRecord(a->prof->fwd[l][1], st), err);
    return NST_OK;
}

nst_status vgg19_cuda_forward(const vgg19_cuda *g, vgg19_cuda_acts *a, nst_error *err) {
    for (int l = 0; l < a->depth; l++) {
        nst_status s = vgg19_cuda_forward_layer(g, a, l, err);
        if (s) return s;
    }
    return NST_OK;
}

nst_status vgg19_cuda_backward(const vgg19_cuda *g, vgg19_cuda_acts *a, const unsigned char *tap,
                               vgg19_cuda_tap_fn tap_fn, void *ctx, float *dinput, nst_error *err) {
    float *gr = a->grad_a, *spare = a->grad_b;
    int top = a->depth - 1, relu_done = 0;
    cudaStream_t st = g->ctx->stream;
    NST_CUDA_TRY(cudaMemsetAsync(gr, 0, vgg19_cuda_layer_size(a, top) * sizeof(float), st), err);
    for (int l = top; l >= 0; l--) {
        if (a->prof) NST_CUDA_TRY(cudaEventRecord(a->prof->bwd[l][0], st), err);
        if (tap && tap[l]) {
            nst_status s = tap_fn(ctx, a, l, gr, err);
            if (s) return s;
        }
        if (a->prof) NST_CUDA_TRY(cudaEventRecord(a->prof->bwd[l][1], st), err);
        float *dst = l == 0 ? dinput : spare;
        int Hi = l == 0 ? a->H : a->Hl[l - 1], Wi = l == 0 ? a->W : a->Wl[l - 1];
        switch (vgg19_layer_kind(l)) {
        case VGG_CONV: {
            vgg19_cuda_plan *p = a->plan;
            conv_args ca = layer_args(g, p, l, p->bwd_kind[l], Hi, Wi, gr, dst, a->workspace, a->workspace_bytes);
            NST_CUDNN_TRY(conv_run(&ca, p->bwd_kind[l], p->bwd_algo[l]), err);
            break;
        }
        case VGG_RELU: {
            /* out[l] holds max(x,0): positive exactly where x is, so it serves as the mask
             * (unless the pool above has applied it already) */
            if (!relu_done) {
                size_t n = vgg19_cuda_layer_size(a, l);
                relu_backward_kernel<<<nst_grid_for(n), 256, 0, st>>>(gr, a->out[l], n);
                NST_CUDA_TRY(cudaGetLastError(), err);
            }
            relu_done = 0;
            if (a->prof) NST_CUDA_TRY(cudaEventRecord(a->prof->bwd[l][2], st), err);
            continue; /* in place: gr stays the current buffer */
        }
        case VGG_POOL: {
            /* a ReLU below without a tap of its own: its mask is applied here */
            relu_done = l >= 1 && vgg19_layer_kind(l - 1) == VGG_RELU && !(tap && tap[l - 1]);
            maxpool_backward_kernel<<<channel_grid((size_t)a->Hl[l] * a->Wl[l], a->C[l]), 256, 0, st>>>(
                dst, gr, a->out[l - 1], Hi, Wi, relu_done);
            NST_CUDA_TRY(cudaGetLastError(), err);
            break;
        }
        }
        if (a->prof) NST_CUDA_TRY(cudaEventRecord(a->prof->bwd[l][2], st), err);
        float *t = gr;
        gr = spare;
        spare = t;
    }
    return NST_OK;
}

nst_status vgg19_cuda_upload_image(nst_cuda *ctx, float *dst, const nst_image *img, nst_error *err) {
    size_t n = (size_t)3 * img->width * img->height;
    float *x = (float *)nst_alloc_array(n, sizeof(float));
    if (!x) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    vgg19_preprocess(x, img);
    nst_status s = nst_cuda_copy_sync(ctx, dst, x, n * sizeof(float), cudaMemcpyHostToDevice, err);
    free(x);
    return s;
}
