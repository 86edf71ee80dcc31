/* vgg19_cuda.cu - VGG19 on the GPU: the weights uploaded once, activations in one
 * allocation, cuDNN convolutions, own kernels for bias, ReLU and 2x2 max-pooling
 * (forward and backward), mirroring net/vgg19.c layer by layer. See vgg19_cuda.h. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/common_kernels.cuh"
#include "cuda/vgg19_cuda.h"
extern "C" {
#include "net/vgg19.h"
}

typedef struct {
    int C_in, C_out;
    float *weight; /* device (C_out,C_in,3,3) */
    float *bias;   /* device (C_out) */
    cudnnFilterDescriptor_t desc;
} conv_cuda;

struct vgg19_cuda {
    nst_cuda *ctx;
    int depth;
    float *params; /* device: every uploaded weight and bias */
    conv_cuda conv[16];
};

struct vgg19_cuda_plan {
    /* for conv layers: input and output tensors, the convolution with its math type for
     * the forward and for the backward pass, and the algorithms chosen */
    cudnnTensorDescriptor_t x[NST_NUM_LAYERS], y[NST_NUM_LAYERS];
    cudnnConvolutionDescriptor_t fwd_desc[NST_NUM_LAYERS], bwd_desc[NST_NUM_LAYERS];
    cudnnConvolutionFwdAlgo_t fwd_algo[NST_NUM_LAYERS];
    cudnnConvolutionBwdDataAlgo_t bwd_algo[NST_NUM_LAYERS];
};

/* ---- kernels: one thread per element (grid-stride loops: any size) --------------- */

/* out is (C,HW): out[c,i] += bias[c] */
static __global__ void bias_add_kernel(float *out, const float *bias, size_t HW, size_t n) {
    NST_GRID_LOOP(i, n) out[i] += bias[i / HW];
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
static __global__ void maxpool_forward_kernel(float *out, const float *inp, int H, int W, size_t n) {
    int Ho = H / 2, Wo = W / 2;
    NST_GRID_LOOP(o, n) {
        size_t c = o / ((size_t)Ho * Wo);
        int r = (int)(o % ((size_t)Ho * Wo)), i = r / Wo, j = r % Wo;
        const float *r0 = inp + (c * H + 2 * i) * W + 2 * j, *r1 = r0 + W;
        float a = r0[0], b = r0[1], d = r1[0], e = r1[1];
        float m0 = a >= b ? a : b, m1 = d >= e ? d : e;
        out[o] = m0 >= m1 ? m0 : m1;
    }
}

/* dinp is (C,H,W) (overwritten; rows/cols past 2*(H/2) get 0), dout is (C,H/2,W/2), inp is
 * (C,H,W): each input element takes its window's gradient if it is the window's first
 * maximum in row-major order (as maxpool2x2_backward), else 0. */
static __global__ void maxpool_backward_kernel(float *dinp, const float *dout, const float *inp, int H, int W,
                                        size_t n) {
    int Ho = H / 2, Wo = W / 2;
    NST_GRID_LOOP(idx, n) {
        size_t c = idx / ((size_t)H * W);
        int r = (int)(idx % ((size_t)H * W)), y = r / W, x = r % W;
        int i = y / 2, j = x / 2;
        float v = 0.0f;
        if (i < Ho && j < Wo) {
            const float *r0 = inp + (c * H + 2 * i) * W + 2 * j, *r1 = r0 + W;
            float a = r0[0], b = r0[1], cc = r1[0], d = r1[1];
            int kb = b > a;
            float m1 = kb ? b : a;
            int kc = cc > m1;
            float m2 = kc ? cc : m1;
            int kd = d > m2;
            int k = kd ? 3 : kc ? 2 : kb ? 1 : 0;
            if (k == (y & 1) * 2 + (x & 1)) v = dout[(c * Ho + i) * Wo + j];
        }
        dinp[idx] = v;
    }
}

/* ---- parameters ------------------------------------------------------------------- */

nst_cuda *vgg19_cuda_ctx(const vgg19_cuda *g) { return g->ctx; }

static int conv_layer_of(int k) { /* the layer index of conv k */
    for (int l = 0; l < NST_NUM_LAYERS; l++)
        if (vgg19_layer_kind(l) == VGG_CONV && vgg19_layer_conv(l) == k) return l;
    return NST_NUM_LAYERS;
}

void vgg19_cuda_free(vgg19_cuda *g) {
    if (!g) return;
    if (g->ctx && g->ctx->stream) cudaStreamSynchronize(g->ctx->stream);
    for (int k = 0; k < 16; k++)
        if (g->conv[k].desc) cudnnDestroyFilterDescriptor(g->conv[k].desc);
    cudaFree(g->params);
    free(g);
}

static nst_status upload(vgg19_cuda *g, const nst_vgg19 *net, nst_error *err) {
    size_t total = 0;
    for (int k = 0; k < 16; k++) {
        const vgg_conv *c = &net->conv[k];
        if (conv_layer_of(k) >= g->depth) break;
        total += (size_t)9 * c->C_in * c->C_out + c->C_out;
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
        d->bias = p + nw;
        p += nw + c->C_out;
        nst_status s = nst_cuda_copy_sync(g->ctx, d->weight, c->weight, nw * sizeof(float), cudaMemcpyHostToDevice, err);
        if (!s) s = nst_cuda_copy_sync(g->ctx, d->bias, c->bias, c->C_out * sizeof(float), cudaMemcpyHostToDevice, err);
        if (s) return s;
        NST_CUDNN_TRY(cudnnCreateFilterDescriptor(&d->desc), err);
        NST_CUDNN_TRY(cudnnSetFilter4dDescriptor(d->desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, c->C_out,
                                                 c->C_in, 3, 3), err);
    }
    return NST_OK;
}

nst_status vgg19_cuda_upload(vgg19_cuda **out, nst_cuda *ctx, const nst_vgg19 *net, int depth, nst_error *err) {
    *out = NULL;
    if (depth <= 0 || depth > net->depth) depth = net->depth;
    vgg19_cuda *g = (vgg19_cuda *)calloc(1, sizeof *g);
    if (!g) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    g->ctx = ctx;
    g->depth = depth;
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

/* cuDNN's heuristics rank the algorithms (with search, cudnnFind measures them: then
 * fastest first; the choice may change from run to run); the first that is allowed in
 * this precision and fits the workspace limit is taken (for the backward pass a
 * deterministic one first). If none is, the implicit-GEMM algorithms, which need no
 * workspace. */
static nst_status choose_algorithms(vgg19_cuda_plan *p, cudnnHandle_t h, cudnnFilterDescriptor_t fd, int l,
                                    nst_precision prec, int search, size_t limit, size_t *ws, nst_error *err) {
    cudnnConvolutionFwdAlgoPerf_t fperf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0, found = 0;
    size_t bytes = 0;
    if (!search || cudnnFindConvolutionForwardAlgorithm(h, p->x[l], fd, p->fwd_desc[l], p->y[l],
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fperf) != CUDNN_STATUS_SUCCESS)
        NST_CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, p->x[l], fd, p->fwd_desc[l], p->y[l],
                                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fperf), err);
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

    cudnnConvolutionBwdDataAlgoPerf_t bperf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    n = 0;
    found = 0;
    bytes = 0;
    if (!search || cudnnFindConvolutionBackwardDataAlgorithm(h, fd, p->y[l], p->bwd_desc[l], p->x[l],
                                                             CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n,
                                                             bperf) != CUDNN_STATUS_SUCCESS)
        NST_CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, fd, p->y[l], p->bwd_desc[l], p->x[l],
                                                                  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, bperf),
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
                                                                   p->bwd_algo[l], &bytes), err);
    }
    if (bytes > *ws) *ws = bytes;
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
    snprintf(buf, size, "fwd %s %s, bwd-data %s %s", fwd_algo_name(p->fwd_algo[l]), math_name(p->fwd_desc[l]),
             bwd_algo_name(p->bwd_algo[l]), math_name(p->bwd_desc[l]));
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

static nst_status acts_build(vgg19_cuda_acts *a, const vgg19_cuda *g, int depth, int H, int W,
                             const unsigned char *keep, nst_precision prec, nst_error *err) {
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

    /* descriptors and algorithms; the workspace may take an eighth of the free memory
     * (at most 1 GiB) */
    vgg19_cuda_plan *p = (vgg19_cuda_plan *)calloc(1, sizeof *p);
    if (!p) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    a->plan = p;
    size_t free_b = 0, total_b = 0;
    NST_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b), err);
    size_t limit = free_b / 8 < ((size_t)1 << 30) ? free_b / 8 : ((size_t)1 << 30);
    size_t ws = 0;
    const char *env = getenv("NST_CUDNN_SEARCH"); /* as the style network's convolutions */
    int search = env && strcmp(env, "1") == 0;
    a->searched = search;
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
        if (!s) s = choose_algorithms(p, g->ctx->cudnn, c->desc, l, prec, search, limit, &ws, err);
        if (s) return s;
    }
    size_t ws_floats = align_floats((ws + sizeof(float) - 1) / sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "VGG19 activations for a %dx%d image", W, H);
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

nst_status vgg19_cuda_acts_build(vgg19_cuda_acts *a, const vgg19_cuda *g, int depth, int H, int W,
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

nst_status vgg19_cuda_forward_layer(const vgg19_cuda *g, vgg19_cuda_acts *a, int l, nst_error *err) {
    const float *inp = l == 0 ? a->input : a->out[l - 1];
    int Hi = l == 0 ? a->H : a->Hl[l - 1], Wi = l == 0 ? a->W : a->Wl[l - 1];
    size_t n = vgg19_cuda_layer_size(a, l);
    cudaStream_t st = g->ctx->stream;
    const float one = 1.0f, zero = 0.0f;
    if (a->prof) NST_CUDA_TRY(cudaEventRecord(a->prof->fwd[l][0], st), err);
    switch (vgg19_layer_kind(l)) {
    case VGG_CONV: {
        const conv_cuda *c = &g->conv[vgg19_layer_conv(l)];
        vgg19_cuda_plan *p = a->plan;
        NST_CUDNN_TRY(cudnnConvolutionForward(g->ctx->cudnn, &one, p->x[l], inp, c->desc, c->weight, p->fwd_desc[l],
                                              p->fwd_algo[l], a->workspace, a->workspace_bytes, &zero, p->y[l],
                                              a->out[l]), err);
        bias_add_kernel<<<nst_grid_for(n), 256, 0, st>>>(a->out[l], c->bias, (size_t)a->Hl[l] * a->Wl[l], n);
        break;
    }
    case VGG_RELU:
        relu_forward_kernel<<<nst_grid_for(n), 256, 0, st>>>(a->out[l], inp, n);
        break;
    case VGG_POOL:
        maxpool_forward_kernel<<<nst_grid_for(n), 256, 0, st>>>(a->out[l], inp, Hi, Wi, n);
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
    int top = a->depth - 1;
    cudaStream_t st = g->ctx->stream;
    const float one = 1.0f, zero = 0.0f;
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
            const conv_cuda *c = &g->conv[vgg19_layer_conv(l)];
            vgg19_cuda_plan *p = a->plan;
            NST_CUDNN_TRY(cudnnConvolutionBackwardData(g->ctx->cudnn, &one, c->desc, c->weight, p->y[l], gr,
                                                       p->bwd_desc[l], p->bwd_algo[l], a->workspace,
                                                       a->workspace_bytes, &zero, p->x[l], dst), err);
            break;
        }
        case VGG_RELU: {
            /* out[l] holds max(x,0): positive exactly where x is, so it serves as the mask */
            size_t n = vgg19_cuda_layer_size(a, l);
            relu_backward_kernel<<<nst_grid_for(n), 256, 0, st>>>(gr, a->out[l], n);
            NST_CUDA_TRY(cudaGetLastError(), err);
            if (a->prof) NST_CUDA_TRY(cudaEventRecord(a->prof->bwd[l][2], st), err);
            continue; /* in place: gr stays the current buffer */
        }
        case VGG_POOL: {
            size_t n = (size_t)a->C[l - 1] * Hi * Wi;
            maxpool_backward_kernel<<<nst_grid_for(n), 256, 0, st>>>(dst, gr, a->out[l - 1], Hi, Wi, n);
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
