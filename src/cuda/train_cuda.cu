/* train_cuda.cu - a fast-style training step on the GPU (see train_cuda.h): the style
 * network (johnson_cuda.cu), the VGG19 and losses of the Gatys path (vgg19_cuda.h,
 * losses_cuda.h), Adam (layers_cuda.cu). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.cuh"
#include "cuda/johnson_cuda.h"
#include "cuda/layers_cuda.h"
#include "cuda/losses_cuda.h"
#include "cuda/train_cuda.h"
#include "cuda/vgg19_cuda.h"
extern "C" {
#include "net/vgg19.h" /* a C header: the layers' kinds */
}

#define THREADS 256

struct fast_cuda {
    nst_cuda *ctx;
    int B, S, depth, content_depth;
    float lr, tv_weight;
    float content_w[NST_NUM_LAYERS], style_w[NST_NUM_LAYERS];
    unsigned char is_tap[NST_NUM_LAYERS];
    jn_cuda *net;
    vgg19_cuda *vgg;
    vgg19_cuda_acts va;
    cuda_reduce_scratch red;
    float *P[NST_NUM_LAYERS];                          /* content targets (C,H,W) */
    float *A[NST_NUM_LAYERS], *G[NST_NUM_LAYERS], *dG[NST_NUM_LAYERS]; /* (C,C) */
    float *dout;  /* (B,3,S,S) d(loss)/d(network output) */
    float *vgrad; /* (3,S,S) d(loss)/d(VGG input) */
    float *m, *v; /* Adam */
    double *slots;      /* device: per image and layer (content, style), then per image tv */
    double *host_slots; /* pinned host copy */
    size_t n_slots;
    float *pinned;      /* the caller's batch buffer, page-locked here (or NULL) */
};

/* ---- the network's output <-> the VGG's input ------------------------------------------- */

static const float MEAN_BGR[3] = {103.939f, 116.779f, 123.68f};

/* v (3,HW) BGR minus the mean <- x (3,HW) RGB times scale (255 for the photo in 0..1, 1
 * for the network's output in 0..255) */
__global__ static void to_vgg_kernel(float *v, const float *x, size_t hw, float scale, float m0, float m1, float m2) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= hw) return;
    v[i] = x[2 * hw + i] * scale - m0;
    v[hw + i] = x[hw + i] * scale - m1;
    v[2 * hw + i] = x[i] * scale - m2;
}

/* d (3,HW) RGB <- g (3,HW) BGR (overwritten) */
__global__ static void from_vgg_kernel(float *d, const float *g, size_t hw) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= hw) return;
    d[i] = g[2 * hw + i];
    d[hw + i] = g[hw + i];
    d[2 * hw + i] = g[i];
}

static nst_status to_vgg(fast_cuda *f, const float *x, float scale, nst_error *err) {
    size_t hw = (size_t)f->S * f->S;
    to_vgg_kernel<<<nst_cuda_blocks(hw), THREADS, 0, f->ctx->stream>>>(f->va.input, x, hw, scale, MEAN_BGR[0],
                                                                        MEAN_BGR[1], MEAN_BGR[2]);
    return nst_cuda_check(cudaGetLastError(), "VGG input", err);
}

/* ---- building --------------------------------------------------------------------------- */

void fast_cuda_free(fast_cuda *f) {
    if (!f) return;
    cudaStreamSynchronize(f->ctx->stream);
    jn_cuda_free(f->net);
    vgg19_cuda_acts_free(&f->va);
    vgg19_cuda_free(f->vgg);
    cuda_reduce_scratch_free(&f->red);
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        cudaFree(f->P[l]);
        cudaFree(f->A[l]);
        cudaFree(f->G[l]);
        cudaFree(f->dG[l]);
    }
    cudaFree(f->dout);
    cudaFree(f->vgrad);
    cudaFree(f->m);
    cudaFree(f->slots);
    cudaFreeHost(f->host_slots);
    if (f->pinned) cudaHostUnregister(f->pinned);
    free(f);
}

static float gram_norm(int C, int N) { return (float)(1.0 / ((double)C * N)); }

nst_status fast_cuda_build(fast_cuda **out, nst_cuda *ctx, const nst_train_config *cfg, const nst_vgg19 *vgg,
                           const johnson_net *net, const float *content_w, const float *style_w,
                           const float *const *style_A, float *batch, nst_error *err) {
    *out = NULL;
    fast_cuda *f = (fast_cuda *)calloc(1, sizeof *f);
    if (!f) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    f->ctx = ctx;
    f->B = cfg->batch;
    f->S = cfg->size;
    f->lr = cfg->lr;
    f->tv_weight = cfg->tv_weight;
    unsigned char keep[NST_NUM_LAYERS] = {0};
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        f->content_w[l] = content_w[l];
        f->style_w[l] = style_w[l];
        f->is_tap[l] = content_w[l] != 0.0f || style_w[l] != 0.0f;
        if (f->is_tap[l]) f->depth = l + 1;
        if (content_w[l] != 0.0f) f->content_depth = l + 1;
        keep[l] = f->is_tap[l] && vgg19_layer_kind(l) == VGG_CONV;
    }
    int prec = cfg->precision == NST_PRECISION_TF32 ? CU_TF32 : CU_FP32;
    size_t n = net->n_params, hw = (size_t)f->S * f->S;
    nst_status s;
    if ((s = jn_cuda_create(&f->net, ctx, net, 1, prec, err)) || (s = jn_cuda_resize(f->net, f->B, f->S, f->S, err)) ||
        (s = vgg19_cuda_upload(&f->vgg, ctx, vgg, f->depth, err)) ||
        (s = vgg19_cuda_acts_build(&f->va, f->vgg, f->depth, f->S, f->S, keep, cfg->precision, err)) ||
        (s = cuda_reduce_scratch_build(&f->red, ctx, err)) || (s = cuda_set_gemm_precision(ctx, cfg->precision, err)) ||
        (s = nst_cuda_alloc(ctx, (void **)&f->dout, (size_t)f->B * 3 * hw, sizeof(float), "the training gradients", err)) ||
        (s = nst_cuda_alloc(ctx, (void **)&f->vgrad, 3 * hw, sizeof(float), "the training gradients", err)) ||
        (s = nst_cuda_alloc(ctx, (void **)&f->m, 2 * n, sizeof(float), "the Adam state", err)))
        goto fail;
    f->v = f->m + n;
    if ((s = nst_cuda_check(cudaMemsetAsync(f->m, 0, 2 * n * sizeof(float), ctx->stream), "cudaMemsetAsync", err))) goto fail;
    for (int l = 0; l < f->depth; l++) {
        int C = f->va.C[l];
        if (content_w[l] != 0.0f &&
            (s = nst_cuda_alloc(ctx, (void **)&f->P[l], vgg19_cuda_layer_size(&f->va, l), sizeof(float), "the content targets", err)))
            goto fail;
        if (style_w[l] == 0.0f) continue;
        if (!style_A[l]) {
            s = nst_fail(err, NST_ERR_ARG, "no style target at %s", nst_layer_name(l));
            goto fail;
        }
        if ((s = nst_cuda_alloc(ctx, (void **)&f->A[l], (size_t)C * C, sizeof(float), "the style targets", err)) ||
            (s = nst_cuda_alloc(ctx, (void **)&f->G[l], (size_t)C * C, sizeof(float), "the style targets", err)) ||
            (s = nst_cuda_alloc(ctx, (void **)&f->dG[l], (size_t)C * C, sizeof(float), "the style targets", err)) ||
            (s = nst_cuda_check(cudaMemcpy(f->A[l], style_A[l], (size_t)C * C * sizeof(float), cudaMemcpyHostToDevice),
                                "cudaMemcpy", err)))
            goto fail;
    }
    f->n_slots = (size_t)f->B * NST_NUM_LAYERS * 2 + f->B;
    if ((s = nst_cuda_alloc(ctx, (void **)&f->slots, f->n_slots, sizeof(double), "the loss values", err)) ||
        (s = nst_cuda_check(cudaMallocHost((void **)&f->host_slots, f->n_slots * sizeof(double)), "cudaMallocHost", err)))
        goto fail;
    /* a page-locked batch uploads at full speed; not being able to lock it only costs time */
    if (batch && cudaHostRegister(batch, (size_t)f->B * 3 * hw * sizeof(float), cudaHostRegisterDefault) == cudaSuccess)
        f->pinned = batch;
    cudaGetLastError(); /* (a refused registration is not an error) */
    *out = f;
    return NST_OK;
fail:
    fast_cuda_free(f);
    return s;
}

/* ---- a step ------------------------------------------------------------------------------ */

/* the losses' gradient at VGG layer l (vgg19_cuda_tap_fn), as fast.c's tap_backward */
static nst_status tap_grad(void *vf, const vgg19_cuda_acts *a, int l, float *grad, nst_error *err) {
    fast_cuda *f = (fast_cuda *)vf;
    float inv_b = 1.0f / (float)f->B; /* the loss is the batch's mean */
    nst_status s = NST_OK;
    if (f->content_w[l] != 0.0f)
        s = cuda_content_loss_backward(f->ctx, grad, a->out[l], f->P[l], vgg19_cuda_layer_size(a, l), f->content_w[l] * inv_b, err);
    if (!s && f->style_w[l] != 0.0f) {
        int C = a->C[l], N = a->Hl[l] * a->Wl[l];
        s = cuda_style_loss_backward(f->ctx, grad, f->dG[l], f->G[l], f->A[l], a->out[l], C, N, gram_norm(C, N),
                                     f->style_w[l] * inv_b, err);
    }
    return s;
}

#define TRY(call)                      \
    do {                               \
        nst_status s_ = (call);        \
        if (s_ != NST_OK) return s_;   \
    } while (0)

/* the batch's losses (into the device slots) and gradient (into the network's) */
static nst_status loss_grad(fast_cuda *f, const float *batch, nst_error *err) {
    nst_cuda *ctx = f->ctx;
    size_t hw = (size_t)f->S * f->S, n = 3 * hw;
    float *x = jn_cuda_input(f->net);
    NST_CUDA_TRY(cudaMemcpyAsync(x, batch, f->B * n * sizeof(float), cudaMemcpyHostToDevice, ctx->stream), err);
    NST_CUDA_TRY(cudaMemsetAsync(f->slots, 0, f->n_slots * sizeof(double), ctx->stream), err);
    TRY(jn_cuda_forward(f->net, err));
    const float *y = jn_cuda_output(f->net);
    for (int b = 0; b < f->B; b++) {
        /* content target: the photo's features */
        TRY(to_vgg(f, x + b * n, 255.0f, err));
        for (int l = 0; l < f->content_depth; l++) {
            TRY(vgg19_cuda_forward_layer(f->vgg, &f->va, l, err));
            if (f->P[l])
                NST_CUDA_TRY(cudaMemcpyAsync(f->P[l], f->va.out[l], vgg19_cuda_layer_size(&f->va, l) * sizeof(float),
                                             cudaMemcpyDeviceToDevice, ctx->stream), err);
        }
        /* the stylised photo's losses */
        const float *yb = y + b * n;
        TRY(to_vgg(f, yb, 1.0f, err));
        double *slot = f->slots + (size_t)b * NST_NUM_LAYERS * 2;
        for (int l = 0; l < f->depth; l++) {
            TRY(vgg19_cuda_forward_layer(f->vgg, &f->va, l, err));
            if (f->content_w[l] != 0.0f)
                TRY(cuda_content_loss_forward(ctx, &f->red, f->va.out[l], f->P[l], vgg19_cuda_layer_size(&f->va, l),
                                              slot + 2 * l, err));
            if (f->style_w[l] != 0.0f) {
                int C = f->va.C[l], N = f->va.Hl[l] * f->va.Wl[l];
                TRY(cuda_style_loss_forward(ctx, &f->red, f->G[l], f->va.out[l], f->A[l], C, N, gram_norm(C, N),
                                            slot + 2 * l + 1, err));
            }
        }
        float *db = f->dout + b * n;
        TRY(vgg19_cuda_backward(f->vgg, &f->va, f->is_tap, tap_grad, f, f->vgrad, err));
        from_vgg_kernel<<<nst_cuda_blocks(hw), THREADS, 0, ctx->stream>>>(db, f->vgrad, hw);
        NST_CUDA_TRY(cudaGetLastError(), err);
        if (f->tv_weight > 0.0f) {
            double *tv = f->slots + (size_t)f->B * NST_NUM_LAYERS * 2 + b;
            TRY(cuda_tv_loss_forward(ctx, &f->red, yb, 3, f->S, f->S, tv, err));
            TRY(cuda_tv_loss_backward(ctx, db, yb, 3, f->S, f->S, f->tv_weight / f->B, err));
        }
    }
    TRY(jn_cuda_zero_grads(f->net, err));
    return jn_cuda_backward(f->net, f->dout, NULL, err);
}

/* waits for the step and adds up its weighted losses, as fast.c */
static nst_status read_losses(fast_cuda *f, double losses[3], nst_error *err) {
    NST_CUDA_TRY(cudaMemcpyAsync(f->host_slots, f->slots, f->n_slots * sizeof(double), cudaMemcpyDeviceToHost, f->ctx->stream), err);
    NST_CUDA_TRY(cudaStreamSynchronize(f->ctx->stream), err);
    losses[0] = losses[1] = losses[2] = 0.0;
    for (int b = 0; b < f->B; b++) {
        const double *slot = f->host_slots + (size_t)b * NST_NUM_LAYERS * 2;
        double content = 0.0, style = 0.0;
        for (int l = 0; l < f->depth; l++) {
            if (f->content_w[l] != 0.0f) content += f->content_w[l] * slot[2 * l];
            if (f->style_w[l] != 0.0f) style += f->style_w[l] * slot[2 * l + 1];
        }
        double tv = f->tv_weight > 0.0f ? f->tv_weight * f->host_slots[(size_t)f->B * NST_NUM_LAYERS * 2 + b] : 0.0;
        losses[0] += content / f->B;
        losses[1] += style / f->B;
        losses[2] += tv / f->B;
    }
    return NST_OK;
}

nst_status fast_cuda_loss_grad(fast_cuda *f, const float *batch, double losses[3], nst_error *err) {
    TRY(loss_grad(f, batch, err));
    return read_losses(f, losses, err);
}

nst_status fast_cuda_step(fast_cuda *f, const float *batch, int adam_t, double losses[3], nst_error *err) {
    TRY(loss_grad(f, batch, err));
    /* optim/adam.c: the scalars in double, the vectors in float */
    double bc1 = 1.0 - pow(0.9, adam_t), bc2 = 1.0 - pow(0.999, adam_t);
    TRY(cu_adam_update(f->ctx, jn_cuda_params(f->net), f->m, f->v, jn_cuda_grads(f->net), jn_cuda_n_params(f->net),
                       (float)(f->lr / bc1), (float)sqrt(bc2), 0.9f, 0.999f, 1e-8f, err));
    return read_losses(f, losses, err);
}

/* ---- state ---------------------------------------------------------------------------------- */

nst_status fast_cuda_get_state(fast_cuda *f, float *params, float *m, float *v, nst_error *err) {
    size_t bytes = jn_cuda_n_params(f->net) * sizeof(float);
    cudaStream_t st = f->ctx->stream;
    if (params) NST_CUDA_TRY(cudaMemcpyAsync(params, jn_cuda_params(f->net), bytes, cudaMemcpyDeviceToHost, st), err);
    if (m) NST_CUDA_TRY(cudaMemcpyAsync(m, f->m, bytes, cudaMemcpyDeviceToHost, st), err);
    if (v) NST_CUDA_TRY(cudaMemcpyAsync(v, f->v, bytes, cudaMemcpyDeviceToHost, st), err);
    NST_CUDA_TRY(cudaStreamSynchronize(st), err);
    return NST_OK;
}

nst_status fast_cuda_set_state(fast_cuda *f, const float *params, const float *m, const float *v, nst_error *err) {
    size_t bytes = jn_cuda_n_params(f->net) * sizeof(float);
    cudaStream_t st = f->ctx->stream;
    if (params) NST_CUDA_TRY(cudaMemcpyAsync(jn_cuda_params(f->net), params, bytes, cudaMemcpyHostToDevice, st), err);
    if (m) NST_CUDA_TRY(cudaMemcpyAsync(f->m, m, bytes, cudaMemcpyHostToDevice, st), err);
    if (v) NST_CUDA_TRY(cudaMemcpyAsync(f->v, v, bytes, cudaMemcpyHostToDevice, st), err);
    NST_CUDA_TRY(cudaStreamSynchronize(st), err);
    return NST_OK;
}

nst_status fast_cuda_get_grads(fast_cuda *f, float *grads, nst_error *err) { return jn_cuda_download_grads(f->net, grads, err); }
