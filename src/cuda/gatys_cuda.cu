/* gatys_cuda.cu - the optimisation transfer's CUDA device (transfer/gatys_device.h): the
 * targets, the objective (VGG19 forward with the losses at each tap, backward with their
 * gradients, total variation) and the optimizers' vector operations (optim/optim.h), all
 * on the run's stream. The optimizers themselves are optim/'s, run from the host: they
 * queue these operations and read back only what their decisions need.
 *
 * The losses' values and their gradients with respect to the tapped layers (which need
 * only the forward pass) are computed on a second stream, each as soon as its layer is
 * computed, so that they overlap the next layers; the backward pass waits for them and
 * adds each gradient at its layer.
 * The objective's values go into device slots (double): slot[l] the content loss at
 * layer l, slot[NST_NUM_LAYERS + l] the style loss, then total variation, then the
 * optimizer's scalars; read() fetches them with one copy. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/common_kernels.cuh"
#include "cuda/losses_cuda.h"
#include "cuda/vgg19_cuda.h"
extern "C" {
#include "net/vgg19.h"
#include "transfer/gatys.h"
#include "transfer/gatys_device.h"
#include "util/util.h"
}

/* the slots: the losses, then the optimizer's scalars (optim.h's numbers) */
enum {
    SLOT_CONTENT = 0,                   /* + l */
    SLOT_STYLE = NST_NUM_LAYERS,        /* + l */
    SLOT_TV = 2 * NST_NUM_LAYERS,
    SLOT_OPT                            /* + k: the optimizer's scalar k */
};

/* The convolutions' algorithms, unless NST_CUDNN_SEARCH says: 1 measured (the fastest
 * deterministic ones, kept in the cache file so that every later run takes the same:
 * see vgg19_cuda.h), 0 cuDNN's heuristics. */
#define GATYS_MEASURE_DEFAULT 1

typedef struct {
    float *P;                 /* device (C,H,W) content target */
    float *T;                 /* device (C,H,W): the losses' gradient at this layer, computed
                                 on the loss stream during the forward pass (it depends on
                                 the forward pass only); the backward pass adds it */
    float *A, *G, *dG;        /* device (C,C) style target, the image's Gram, its gradient */
    float gscale;             /* the Gram's scale for the image being optimized */
} layer_cuda;

typedef struct gatys_cuda {
    gatys_device base;       /* first: what gatys.c sees */
    optim_device optim;      /* the optimizers' operations on this device */
    const nst_transfer_config *cfg;
    perceptual_plan *plan;   /* taps and weights; read() writes the values */
    nst_cuda *ctx;
    vgg19_cuda *vgg;
    vgg19_cuda_acts acts;
    int H, W, depth;
    size_t n; /* 3*H*W */
    layer_cuda loss[NST_NUM_LAYERS];
    void *mem;      /* device: Grams, the optimizer's vectors, slots */
    float *targets; /* device: the content targets (sized once the content's shapes are known) */
    float *tgrads;  /* device: the T of every tap layer */
    float **vec;    /* (n_vectors) the optimizer's vectors (optim.h): vec[OPTIM_X] the image */
    int n_vectors, n_scalars;
    cuda_reduce_scratch red;
    /* the losses' values run on a second stream (lctx), each as soon as its layer is
     * computed, overlapping the next layers: ev_tap[l] (main) before layer l's losses,
     * ev_losses (loss stream) before the backward pass, which reads their Grams */
    nst_cuda *lctx;   /* == ctx (one stream) with NST_CUDA_LOSS_STREAM=0 */
    int own_lctx;     /* lctx is a context of its own, destroyed with g */
    cuda_reduce_scratch lred;
    cudaEvent_t ev_tap[NST_NUM_LAYERS], ev_losses;
    cudaEvent_t lprof[2]; /* the profile: timing events around the loss stream's work, or NULL */
    double *slot;      /* device */
    double *host_slot; /* pinned, SLOT_OPT + n_scalars */
    size_t free_at_start; /* free GPU memory once the context exists (for the bench) */
} gatys_cuda;

static gatys_cuda *cuda_of(gatys_device *d) { return (gatys_cuda *)d; }
static gatys_cuda *cuda_of_optim(optim_device *o) {
    return (gatys_cuda *)((char *)o - offsetof(gatys_cuda, optim));
}

/* ---- element-wise kernels of the optimizers ------------------------------------------ */

/* x, grad, m, v are (n): optim/adam_rule.h, the CPU's rule */
static __global__ void adam_kernel(float *x, const float *grad, float *m, float *v, adam_coeffs c, size_t n) {
    NST_GRID_LOOP(i, n) {
        float xi = x[i], mi = m[i], vi = v[i];
        adam_rule(&xi, grad[i], &mi, &vi, c);
        x[i] = xi;
        m[i] = mi;
        v[i] = vi;
    }
}

/* out = a + t * b */
static __global__ void axpy_to_kernel(float *out, const float *a, float t, const float *b, size_t n) {
    NST_GRID_LOOP(i, n) out[i] = a[i] + t * b[i];
}

/* out = a - b */
static __global__ void sub_kernel(float *out, const float *a, const float *b, size_t n) {
    NST_GRID_LOOP(i, n) out[i] = a[i] - b[i];
}

/* d = -g; with div (device, may be NULL): d /= *div when *div > 0 */
static __global__ void neg_kernel(float *d, const float *g, const double *div, size_t n) {
    float m = div ? (float)*div : 0.0f;
    NST_GRID_LOOP(i, n) {
        float v = -g[i];
        d[i] = m > 0.0f ? v / m : v;
    }
}

/* out = a * b; d += (float)-out * y. Thread 0 stores out. */
static __global__ void sub_scaled_kernel(float *d, const float *y, double *out, const double *a, const double *b,
                                         size_t n) {
    double s = *a * *b;
    float sf = (float)-s;
    if (blockIdx.x == 0 && threadIdx.x == 0) *out = s;
    NST_GRID_LOOP(i, n) d[i] += sf * y[i];
}

/* d += (float)(c - a * b) * s */
static __global__ void add_scaled_kernel(float *d, const float *s, const double *c, const double *a, const double *b,
                                         size_t n) {
    float sf = (float)(*c - *a * *b);
    NST_GRID_LOOP(i, n) d[i] += sf * s[i];
}

/* d *= num / den (in double, as the CPU) */
static __global__ void scale_ratio_kernel(float *d, const double *num, const double *den, size_t n) {
    double r = *num / *den;
    NST_GRID_LOOP(i, n) d[i] = (float)(d[i] * r);
}

/* *out = 1 / *in */
static __global__ void reciprocal_kernel(double *out, const double *in) { *out = 1.0 / *in; }

#define LAUNCH_CHECK(err) NST_CUDA_TRY(cudaGetLastError(), err)

/* ---- the objective ------------------------------------------------------------------- */

/* T = k * (F - P): the content loss's gradient (k as cuda_content_loss_backward's) */
static __global__ void content_grad_kernel(float *T, const float *F, const float *P, float k, size_t n) {
    NST_GRID_LOOP(i, n) T[i] = k * (F[i] - P[i]);
}

/* g += T; n4 float4s (both 16-byte aligned), then the n - 4*n4 floats after them */
static __global__ void add_kernel(float *g, const float *T, size_t n4, size_t n) {
    NST_GRID_LOOP(i, n4) {
        float4 a = ((float4 *)g)[i], b = ((const float4 *)T)[i];
        a.x += b.x;
        a.y += b.y;
        a.z += b.z;
        a.w += b.w;
        ((float4 *)g)[i] = a;
    }
    NST_GRID_LOOP(i, n - 4 * n4) g[4 * n4 + i] += T[4 * n4 + i];
}

/* Queues, on the loss stream, the losses' gradient at tap layer l into L->T: the content
 * term, then the style term added by the Gram's backward GEMM. */
static nst_status tap_gradient(gatys_cuda *g, int l, nst_error *err) {
    const vgg19_cuda_acts *a = &g->acts;
    layer_cuda *L = &g->loss[l];
    const perceptual_layer *W = &g->plan->layer[l];
    size_t n = vgg19_cuda_layer_size(a, l);
    cudaStream_t ls = g->lctx->stream;
    if (L->P) {
        float k = (float)(2.0 * W->content_w / (double)n);
        content_grad_kernel<<<nst_grid_for(n), 256, 0, ls>>>(L->T, a->out[l], L->P, k, n);
        LAUNCH_CHECK(err);
    } else {
        NST_CUDA_TRY(cudaMemsetAsync(L->T, 0, n * sizeof(float), ls), err);
    }
    if (L->A) {
        int C = a->C[l], N = a->Hl[l] * a->Wl[l];
        return cuda_style_loss_backward(g->lctx, L->T, L->dG, L->G, L->A, a->out[l], C, N, L->gscale, W->style_w, err);
    }
    return NST_OK;
}

/* The losses' gradient at layer l, added into grad during the backward pass: T, or
 * (where there was no memory for the T buffers) computed here. */
static nst_status tap_backward(void *ctxp, const vgg19_cuda_acts *a, int l, float *grad, nst_error *err) {
    gatys_cuda *g = (gatys_cuda *)ctxp;
    layer_cuda *L = &g->loss[l];
    const perceptual_layer *W = &g->plan->layer[l];
    size_t n = vgg19_cuda_layer_size(a, l);
    if (L->T) {
        add_kernel<<<nst_grid_for(n / 4 + 1), 256, 0, g->ctx->stream>>>(grad, L->T, n / 4, n);
        LAUNCH_CHECK(err);
        return NST_OK;
    }
    nst_status s = NST_OK;
    if (L->P) s = cuda_content_loss_backward(g->ctx, grad, a->out[l], L->P, n, W->content_w, err);
    if (!s && L->A) {
        int C = a->C[l], N = a->Hl[l] * a->Wl[l];
        s = cuda_style_loss_backward(g->ctx, grad, L->dG, L->G, L->A, a->out[l], C, N, L->gscale, W->style_w, err);
    }
    return s;
}

/* Queues one evaluation at x (device): the losses into the slots, df/dx into grad. */
static nst_status eval_device(gatys_cuda *g, const float *x, float *grad, nst_error *err) {
    vgg19_cuda_acts *a = &g->acts;
    cudaStream_t st = g->ctx->stream;
    NST_CUDA_TRY(cudaMemsetAsync(g->slot, 0, (SLOT_TV + 1) * sizeof(double), st), err);
    NST_CUDA_TRY(cudaMemcpyAsync(a->input, x, g->n * sizeof(float), cudaMemcpyDeviceToDevice, st), err);
    cudaStream_t ls = g->lctx->stream;
    int first = 1;
    for (int l = 0; l < a->depth; l++) {
        nst_status s = vgg19_cuda_forward_layer(g->vgg, a, l, err);
        if (s) return s;
        layer_cuda *L = &g->loss[l];
        if (!L->P && !L->A) continue;
        /* the layer's output is read on the loss stream; nothing overwrites it before
         * the backward pass (a conv that a loss reads keeps its own buffer) */
        NST_CUDA_TRY(cudaEventRecord(g->ev_tap[l], st), err);
        NST_CUDA_TRY(cudaStreamWaitEvent(ls, g->ev_tap[l], 0), err);
        if (first && g->lprof[0]) NST_CUDA_TRY(cudaEventRecord(g->lprof[0], ls), err);
        first = 0;
        if (L->P) {
            s = cuda_content_loss_forward(g->lctx, &g->lred, a->out[l], L->P, vgg19_cuda_layer_size(a, l),
                                          g->slot + SLOT_CONTENT + l, err);
            if (s) return s;
        }
        if (L->A) {
            int C = a->C[l], N = a->Hl[l] * a->Wl[l];
            s = cuda_style_loss_forward(g->lctx, &g->lred, L->G, a->out[l], L->A, C, N, L->gscale,
                                        g->slot + SLOT_STYLE + l, err);
            if (s) return s;
        }
        if (L->T && (s = tap_gradient(g, l, err))) return s;
    }
    if (g->lprof[1]) NST_CUDA_TRY(cudaEventRecord(g->lprof[1], ls), err);
    NST_CUDA_TRY(cudaEventRecord(g->ev_losses, ls), err);
    NST_CUDA_TRY(cudaStreamWaitEvent(st, g->ev_losses, 0), err);
    nst_status s = vgg19_cuda_backward(g->vgg, a, g->plan->tap, tap_backward, g, grad, err);
    if (s) return s;
    if (g->cfg->tv_weight > 0.0f) {
        s = cuda_tv_loss_forward(g->ctx, &g->red, x, 3, g->H, g->W, g->slot + SLOT_TV, err);
        if (!s) s = cuda_tv_loss_backward(g->ctx, grad, x, 3, g->H, g->W, g->cfg->tv_weight, err);
    }
    return s;
}

/* Waits for the queued work and reads the slots: the losses (into the plan, whose sum is
 * the CPU's) when total is not NULL, and the optimizer's scalars k[0..nk). One copy. */
static nst_status read_slots(gatys_cuda *g, double *total, const int *k, double *vals, int nk, nst_error *err) {
    int lo = total ? 0 : SLOT_OPT + g->n_scalars, hi = total ? SLOT_OPT : 0;
    for (int i = 0; i < nk; i++) {
        if (SLOT_OPT + k[i] < lo) lo = SLOT_OPT + k[i];
        if (SLOT_OPT + k[i] + 1 > hi) hi = SLOT_OPT + k[i] + 1;
    }
    if (hi <= lo) return NST_OK;
    nst_status s = nst_cuda_copy_sync(g->ctx, g->host_slot + lo, g->slot + lo, (size_t)(hi - lo) * sizeof(double),
                                      cudaMemcpyDeviceToHost, err);
    if (s) return s;
    for (int i = 0; i < nk; i++) vals[i] = g->host_slot[SLOT_OPT + k[i]];
    if (!total) return NST_OK;
    perceptual_plan *p = g->plan;
    for (int l = 0; l < g->depth; l++) {
        if (p->layer[l].content) p->layer[l].content_value = g->host_slot[SLOT_CONTENT + l];
        if (p->layer[l].style) p->layer[l].style_value = g->host_slot[SLOT_STYLE + l];
    }
    p->tv_value = g->host_slot[SLOT_TV];
    *total = perceptual_finish(p);
    return NST_OK;
}

/* ---- the optimizers' operations (optim.h) ------------------------------------------------ */

/* a kernel over the image's n floats on the run's stream; scalar k's slot */
#define OVER_IMAGE(g) nst_grid_for((g)->n), 256, 0, (g)->ctx->stream
#define SC(k) (g->slot + SLOT_OPT + (k))

static nst_status op_copy(optim_device *o, int dst, int src, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    NST_CUDA_TRY(cudaMemcpyAsync(g->vec[dst], g->vec[src], g->n * sizeof(float), cudaMemcpyDeviceToDevice, g->ctx->stream),
                 err);
    return NST_OK;
}

static nst_status op_axpy_to(optim_device *o, int out, int a, float t, int b, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    axpy_to_kernel<<<OVER_IMAGE(g)>>>(g->vec[out], g->vec[a], t, g->vec[b], g->n);
    LAUNCH_CHECK(err);
    return NST_OK;
}

static nst_status op_sub(optim_device *o, int out, int a, int b, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    sub_kernel<<<OVER_IMAGE(g)>>>(g->vec[out], g->vec[a], g->vec[b], g->n);
    LAUNCH_CHECK(err);
    return NST_OK;
}

static nst_status op_dot(optim_device *o, int k, int a, int b, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    return cuda_dot(g->ctx, &g->red, g->vec[a], g->vec[b], g->n, SC(k), err);
}

static nst_status op_abs_max(optim_device *o, int k, int a, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    return cuda_abs_max(g->ctx, &g->red, g->vec[a], g->n, SC(k), err);
}

static nst_status op_neg(optim_device *o, int d, int gv, int k_div, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    neg_kernel<<<OVER_IMAGE(g)>>>(g->vec[d], g->vec[gv], k_div >= 0 ? SC(k_div) : NULL, g->n);
    LAUNCH_CHECK(err);
    return NST_OK;
}

static nst_status op_sub_scaled(optim_device *o, int d, int y, int k_out, int k_a, int k_b, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    sub_scaled_kernel<<<OVER_IMAGE(g)>>>(g->vec[d], g->vec[y], SC(k_out), SC(k_a), SC(k_b), g->n);
    LAUNCH_CHECK(err);
    return NST_OK;
}

static nst_status op_add_scaled(optim_device *o, int d, int s, int k_c, int k_a, int k_b, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    add_scaled_kernel<<<OVER_IMAGE(g)>>>(g->vec[d], g->vec[s], SC(k_c), SC(k_a), SC(k_b), g->n);
    LAUNCH_CHECK(err);
    return NST_OK;
}

static nst_status op_scale_ratio(optim_device *o, int d, int k_num, int k_den, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    scale_ratio_kernel<<<OVER_IMAGE(g)>>>(g->vec[d], SC(k_num), SC(k_den), g->n);
    LAUNCH_CHECK(err);
    return NST_OK;
}

static nst_status op_reciprocal(optim_device *o, int k_out, int k_in, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    reciprocal_kernel<<<1, 1, 0, g->ctx->stream>>>(SC(k_out), SC(k_in));
    LAUNCH_CHECK(err);
    return NST_OK;
}

static nst_status op_adam(optim_device *o, int x, int gv, int m, int v, adam_coeffs c, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    adam_kernel<<<OVER_IMAGE(g)>>>(g->vec[x], g->vec[gv], g->vec[m], g->vec[v], c, g->n);
    LAUNCH_CHECK(err);
    return NST_OK;
}

static nst_status op_evaluate(optim_device *o, int x, int gv, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    return eval_device(g, g->vec[x], g->vec[gv], err);
}

static nst_status op_read(optim_device *o, double *f, const int *k, double *vals, int nk, nst_error *err) {
    gatys_cuda *g = cuda_of_optim(o);
    return read_slots(g, f, k, vals, nk, err);
}

static const optim_device_ops cuda_optim_ops = {
    op_copy, op_axpy_to, op_sub, op_dot, op_abs_max, op_neg, op_sub_scaled,
    op_add_scaled, op_scale_ratio, op_reciprocal, op_adam, op_evaluate, op_read,
};

static nst_status cuda_upload(gatys_device *d, int v, const float *x, nst_error *err) {
    gatys_cuda *g = cuda_of(d);
    return nst_cuda_copy_sync(g->ctx, g->vec[v], x, g->n * sizeof(float), cudaMemcpyHostToDevice, err);
}

static nst_status cuda_download(gatys_device *d, int v, float *x, nst_error *err) {
    gatys_cuda *g = cuda_of(d);
    return nst_cuda_copy_sync(g->ctx, x, g->vec[v], g->n * sizeof(float), cudaMemcpyDeviceToHost, err);
}

/* ---- building ---------------------------------------------------------------------- */

/* The channels of layer l's output (the table of net/vgg19.c: 64, 128, 256, 512, 512). */
static int layer_channels(const nst_vgg19 *net, int l) {
    while (vgg19_layer_kind(l) != VGG_CONV) l--;
    return net->conv[vgg19_layer_conv(l)].C_out;
}

static void cuda_free(gatys_device *d) {
    gatys_cuda *g = cuda_of(d);
    if (!g) return;
    if (g->ctx) cudaStreamSynchronize(g->ctx->stream);
    if (g->lctx) cudaStreamSynchronize(g->lctx->stream);
    vgg19_cuda_acts_free(&g->acts);
    vgg19_cuda_free(g->vgg);
    cuda_reduce_scratch_free(&g->red);
    cuda_reduce_scratch_free(&g->lred);
    for (int l = 0; l < NST_NUM_LAYERS; l++)
        if (g->ev_tap[l]) cudaEventDestroy(g->ev_tap[l]);
    if (g->ev_losses) cudaEventDestroy(g->ev_losses);
    if (g->own_lctx) nst_cuda_destroy(g->lctx);
    cudaFree(g->mem);
    cudaFree(g->targets);
    cudaFree(g->tgrads);
    cudaFreeHost(g->host_slot);
    nst_cuda_destroy(g->ctx);
    free(g->vec);
    free(g);
}

/* Style targets A: the blend-weighted sum of the style images' Grams, each computed on
 * activations of its own size that are freed before the next. */
static nst_status style_targets(gatys_cuda *g, const nst_image *styles, const float *blend, int n_styles,
                                nst_error *err) {
    const nst_transfer_config *cfg = g->cfg;
    for (int i = 0; i < n_styles; i++) {
        float *xs = NULL;
        int w, h;
        nst_status s = gatys_style_input(cfg, &styles[i], i, &xs, &w, &h, err);
        if (s) return s;
        /* a conv tap must keep its output: without it the ReLU is fused into the conv's
         * bias kernel in place, and the Gram would be taken after the ReLU */
        unsigned char keep[NST_NUM_LAYERS] = {0};
        for (int l = 0; l < g->depth; l++) keep[l] = g->loss[l].A && vgg19_layer_kind(l) == VGG_CONV;
        vgg19_cuda_acts sa;
        s = gatys_blame(err, vgg19_cuda_acts_build(&sa, g->vgg, g->depth, h, w, keep, cfg->precision, err), cfg, i, w,
                        h);
        if (!s) s = nst_cuda_copy_sync(g->ctx, sa.input, xs, (size_t)3 * w * h * sizeof(float), cudaMemcpyHostToDevice, err);
        free(xs);
        for (int l = 0; !s && l < g->depth; l++) {
            s = vgg19_cuda_forward_layer(g->vgg, &sa, l, err);
            layer_cuda *L = &g->loss[l];
            if (s || !L->A) continue;
            int C = sa.C[l], N = sa.Hl[l] * sa.Wl[l];
            s = cuda_gram_forward(g->ctx, L->A, sa.out[l], C, N, perceptual_gram_scale(cfg->gram_norm, C, N) * blend[i],
                                  i == 0 ? 0.0f : 1.0f, err);
        }
        if (!s) s = nst_cuda_check(cudaStreamSynchronize(g->ctx->stream), "style targets", err);
        vgg19_cuda_acts_free(&sa);
        if (s) return s;
    }
    return NST_OK;
}

static nst_status build(gatys_cuda *g, const nst_vgg19 *net, const float *content_input, const nst_image *styles,
                        const float *blend, int n_styles, nst_error *err) {
    const nst_transfer_config *cfg = g->cfg;
    nst_status s = nst_cuda_create(&g->ctx, err);
    if (s) return s;
    size_t total_b = 0;
    NST_CUDA_TRY(cudaMemGetInfo(&g->free_at_start, &total_b), err);
    /* the Grams in fp32 even with --precision tf32 (only the convolutions use TF32): the
     * style loss compares Grams that converge towards their targets, so TF32's rounding
     * of them would be a large part of what is left of the difference; they are a small
     * part of the work, and run on the loss stream */
    if ((s = cuda_set_gemm_precision(g->ctx, NST_PRECISION_FP32, err))) return s;
    if ((s = vgg19_cuda_upload(&g->vgg, g->ctx, net, g->depth, err))) return s;
    vgg19_cuda_set_tuning(g->vgg, &cfg->tuning);
    if ((s = cuda_reduce_scratch_build(&g->red, g->ctx, err))) return s;
    /* NST_CUDA_LOSS_STREAM=0 queues the losses on the main stream (events on one stream
     * order nothing new): the same work, serialised, to check the two-stream order */
    if (cfg->tuning.cuda_one_stream) {
        g->lctx = g->ctx;
    } else {
        if ((s = nst_cuda_create(&g->lctx, err))) return s;
        g->own_lctx = 1;
    }
    if ((s = cuda_set_gemm_precision(g->lctx, NST_PRECISION_FP32, err))) return s;
    if ((s = cuda_reduce_scratch_build(&g->lred, g->lctx, err))) return s;
    for (int l = 0; l < NST_NUM_LAYERS; l++)
        NST_CUDA_TRY(cudaEventCreateWithFlags(&g->ev_tap[l], cudaEventDisableTiming), err);
    NST_CUDA_TRY(cudaEventCreateWithFlags(&g->ev_losses, cudaEventDisableTiming), err);

    const perceptual_plan *p = g->plan;
    /* one allocation: Grams (A, G, dG per style tap), the optimizer's vectors, slots */
    size_t n = g->n, total = 0, cc[NST_NUM_LAYERS] = {0};
    for (int l = 0; l < g->depth; l++)
        if (p->layer[l].style) {
            int C = layer_channels(net, l);
            cc[l] = ((size_t)C * C + 63) / 64 * 64;
            total += 3 * cc[l];
        }
    size_t nv = (n + 63) / 64 * 64;
    total += (size_t)g->n_vectors * nv;
    size_t n_slots = SLOT_OPT + (size_t)g->n_scalars;
    size_t slot_floats = (2 * n_slots + 63) / 64 * 64; /* doubles, as pairs of floats */
    total += slot_floats;
    g->vec = (float **)calloc((size_t)g->n_vectors, sizeof *g->vec);
    if (!g->vec) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    if ((s = nst_cuda_alloc(g->ctx, &g->mem, total, sizeof(float), "the transfer's image, targets and optimizer state", err)))
        return s;
    float *q = (float *)g->mem;
    g->slot = (double *)q; /* first: 8-byte aligned */
    q += slot_floats;
    for (int l = 0; l < g->depth; l++) {
        if (!cc[l]) continue;
        g->loss[l].A = q;
        g->loss[l].G = q + cc[l];
        g->loss[l].dG = q + 2 * cc[l];
        q += 3 * cc[l];
    }
    for (int v = 0; v < g->n_vectors; v++, q += nv) g->vec[v] = q;
    /* the optimizer's state starts at zero (Adam's moments) */
    NST_CUDA_TRY(cudaMemsetAsync(g->vec[0], 0, (size_t)g->n_vectors * nv * sizeof(float), g->ctx->stream), err);
    NST_CUDA_TRY(cudaMemsetAsync(g->slot, 0, n_slots * sizeof(double), g->ctx->stream), err);
    NST_CUDA_TRY(cudaMallocHost((void **)&g->host_slot, n_slots * sizeof(double)), err);

    /* style targets first (their activations are freed before the content's exist) */
    if ((s = style_targets(g, styles, blend, n_styles, err))) return s;

    /* a conv whose output a loss reads keeps it: the ReLU after it gets its own buffer */
    unsigned char keep[NST_NUM_LAYERS] = {0};
    for (int l = 0; l < g->depth; l++) keep[l] = p->tap[l] && vgg19_layer_kind(l) == VGG_CONV;
    /* (the style images' one forward pass each took the heuristic's algorithms) */
    vgg19_cuda_set_search(g->vgg, GATYS_MEASURE_DEFAULT);
    if ((s = vgg19_cuda_acts_build(&g->acts, g->vgg, g->depth, g->H, g->W, keep, cfg->precision, err)))
        return gatys_blame(err, s, cfg, -1, g->W, g->H);
    vgg19_cuda_acts *a = &g->acts;
    for (int l = 0; l < g->depth; l++)
        if (g->loss[l].A) g->loss[l].gscale = perceptual_gram_scale(cfg->gram_norm, a->C[l], a->Hl[l] * a->Wl[l]);

    /* content targets P: the content's features at the content taps */
    size_t ptotal = 0;
    for (int l = 0; l < g->depth; l++)
        if (p->layer[l].content) ptotal += (vgg19_cuda_layer_size(a, l) + 63) / 64 * 64;
    if (ptotal) {
        if ((s = nst_cuda_alloc(g->ctx, (void **)&g->targets, ptotal, sizeof(float), "the content targets", err)))
            return s;
        float *q = g->targets;
        for (int l = 0; l < g->depth; l++)
            if (p->layer[l].content) {
                g->loss[l].P = q;
                q += (vgg19_cuda_layer_size(a, l) + 63) / 64 * 64;
            }
    }
    if ((s = nst_cuda_copy_sync(g->ctx, a->input, content_input, n * sizeof(float), cudaMemcpyHostToDevice, err)))
        return s;
    for (int l = 0; l < g->depth; l++) {
        if ((s = vgg19_cuda_forward_layer(g->vgg, a, l, err))) return s;
        if (g->loss[l].P)
            NST_CUDA_TRY(cudaMemcpyAsync(g->loss[l].P, a->out[l], vgg19_cuda_layer_size(a, l) * sizeof(float),
                                         cudaMemcpyDeviceToDevice, g->ctx->stream), err);
    }
    /* the losses' gradients, one per tap layer, if there is room (else the backward pass
     * computes them: the largest image that fits stays as large) */
    size_t ttotal = 0;
    for (int l = 0; l < g->depth; l++)
        if (p->tap[l]) ttotal += (vgg19_cuda_layer_size(a, l) + 63) / 64 * 64;
    size_t free_b = 0;
    NST_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b), err);
    if (ttotal && free_b > ttotal * sizeof(float) + ((size_t)256 << 20) && /* room left for the libraries */
        cudaMalloc((void **)&g->tgrads, ttotal * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        g->tgrads = NULL;
    }
    if (g->tgrads) {
        float *q = g->tgrads;
        for (int l = 0; l < g->depth; l++)
            if (p->tap[l]) {
                g->loss[l].T = q;
                q += (vgg19_cuda_layer_size(a, l) + 63) / 64 * 64;
            }
    }
    return NST_OK;
}

static nst_status cuda_bench(gatys_device *d, const nst_bench_config *cfg, nst_bench_result *res, nst_error *err);

static const gatys_device_ops cuda_device_ops = {cuda_free, cuda_upload, cuda_download, cuda_bench};

static nst_status cuda_build(gatys_device **out, const gatys_setup *su, nst_error *err) {
    *out = NULL;
    gatys_cuda *g = (gatys_cuda *)calloc(1, sizeof *g);
    if (!g) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    g->base.ops = &cuda_device_ops;
    g->base.optim = &g->optim;
    g->optim.ops = &cuda_optim_ops;
    g->cfg = su->cfg;
    g->plan = su->plan;
    g->W = su->W;
    g->H = su->H;
    g->n = (size_t)3 * su->H * su->W;
    g->depth = su->plan->depth;
    g->n_vectors = su->n_vectors;
    g->n_scalars = su->n_scalars;
    nst_status s = build(g, su->net, su->content_input, su->styles, su->blend, su->n_styles, err);
    if (s) {
        cuda_free(&g->base);
        return s;
    }
    *out = &g->base;
    return NST_OK;
}

extern "C" const gatys_backend gatys_cuda_backend = {"cuda", cuda_build};

/* ---- benchmark ------------------------------------------------------------------------ */

static float elapsed(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0.0f;
    return cudaEventElapsedTime(&ms, a, b) == cudaSuccess ? ms : 0.0f;
}

/* NST_CUDA_PROFILE=1: one more Adam step with events around every layer's forward and
 * backward, printed one line per conv layer (the ReLU and pool after it in the "rp"
 * columns; "loss" is the work queued on the main stream between that layer and the next:
 * in the forward pass only the hand-over to the loss stream, in the backward pass the
 * adding of the losses' gradient), with the algorithms; and the loss stream's time. */
static nst_status profile_step(gatys_cuda *g, adam_state *adam, nst_error *err) {
    vgg19_cuda_acts *a = &g->acts;
    cudaStream_t st = g->ctx->stream;
    vgg19_cuda_prof prof;
    cudaEvent_t ev[4] = {0}; /* start, backward done + TV, Adam done, losses read */
    nst_status s = vgg19_cuda_prof_create(&prof, err);
    for (int i = 0; i < 4 && !s; i++) s = nst_cuda_check(cudaEventCreate(&ev[i]), "cudaEventCreate", err);
    double f = 0.0;
    if (!s) s = nst_cuda_check(cudaEventCreate(&g->lprof[0]), "cudaEventCreate", err);
    if (!s) s = nst_cuda_check(cudaEventCreate(&g->lprof[1]), "cudaEventCreate", err);
    a->prof = &prof;
    if (!s) s = nst_cuda_check(cudaEventRecord(ev[0], st), "cudaEventRecord", err);
    if (!s) s = eval_device(g, g->vec[OPTIM_X], g->vec[OPTIM_G], err);
    if (!s) s = nst_cuda_check(cudaEventRecord(ev[1], st), "cudaEventRecord", err);
    if (!s) s = op_adam(&g->optim, OPTIM_X, OPTIM_G, ADAM_M, ADAM_V, adam_next(adam), err);
    if (!s) s = nst_cuda_check(cudaEventRecord(ev[2], st), "cudaEventRecord", err);
    if (!s) s = read_slots(g, &f, NULL, NULL, 0, err);
    if (!s) s = nst_cuda_check(cudaEventRecord(ev[3], st), "cudaEventRecord", err);
    if (!s) s = nst_cuda_check(cudaEventSynchronize(ev[3]), "cudaEventSynchronize", err);
    a->prof = NULL;
    if (!s) {
        int top = a->depth - 1;
        double sum[6] = {0};
        nst_log(&g->cfg->tuning, "profile: one seed step at %dx%d, %s, algorithms %s; ms per layer (rp: the ReLU and pool after the conv)\n",
               g->W, g->H, a->precision == NST_PRECISION_TF32 ? "tf32" : "fp32",
               a->searched ? "measured" : "cuDNN's heuristics");
        nst_log(&g->cfg->tuning, "%-8s %14s %7s %7s %7s %7s %7s %7s  %s\n", "layer", "output", "conv-f", "rp-f", "loss-f", "conv-b", "rp-b",
               "loss-b", "algorithms");
        for (int l = 0; l <= top; l++) {
            if (vgg19_layer_kind(l) != VGG_CONV) continue;
            double t[6] = {0};
            for (int k = l; k <= top && (k == l || vgg19_layer_kind(k) != VGG_CONV); k++) {
                float fwd = elapsed(prof.fwd[k][0], prof.fwd[k][1]);
                t[k == l ? 0 : 1] += fwd;
                t[2] += elapsed(prof.fwd[k][1], k < top ? prof.fwd[k + 1][0] : prof.bwd[top][0]);
                t[k == l ? 3 : 4] += elapsed(prof.bwd[k][1], prof.bwd[k][2]);
                t[5] += elapsed(prof.bwd[k][0], prof.bwd[k][1]);
            }
            char shape[48], algos[256];
            snprintf(shape, sizeof shape, "%dx%dx%d", a->C[l], a->Hl[l], a->Wl[l]);
            vgg19_cuda_describe_algos(a, l, algos, sizeof algos);
            nst_log(&g->cfg->tuning, "%-8s %14s %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f  %s\n", nst_layer_name(l), shape, t[0], t[1], t[2],
                   t[3], t[4], t[5], algos);
            for (int k = 0; k < 6; k++) sum[k] += t[k];
        }
        nst_log(&g->cfg->tuning, "%-8s %14s %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f\n", "sum", "", sum[0], sum[1], sum[2], sum[3], sum[4],
               sum[5]);
        nst_log(&g->cfg->tuning, "profile: start %.3f, forward %.3f, backward %.3f, TV %.3f, Adam %.3f, read-back %.3f; step %.3f ms\n",
               elapsed(ev[0], prof.fwd[0][0]), elapsed(prof.fwd[0][0], prof.bwd[top][0]),
               elapsed(prof.bwd[top][0], prof.bwd[0][2]), elapsed(prof.bwd[0][2], ev[1]), elapsed(ev[1], ev[2]),
               elapsed(ev[2], ev[3]), elapsed(ev[0], ev[3]));
        nst_log(&g->cfg->tuning, "profile: the losses' values and gradients on their own stream: %.3f ms from the first tap's to the "
               "end of the last's, overlapping the forward pass\n",
               elapsed(g->lprof[0], g->lprof[1]));
        nst_log(&g->cfg->tuning, "profile: losses content %.6g, style %.6g, tv %.6g, total %.6g\n", g->plan->content_loss,
               g->plan->style_loss, g->plan->tv_loss, f);
    }
    for (int i = 0; i < 2; i++) {
        if (g->lprof[i]) cudaEventDestroy(g->lprof[i]);
        g->lprof[i] = NULL;
    }
    for (int i = 0; i < 4; i++)
        if (ev[i]) cudaEventDestroy(ev[i]);
    vgg19_cuda_prof_destroy(&prof);
    return s;
}

/* The seed preset's run (Adam): forward, forward + backward and a whole step, with CUDA
 * events, best of cfg->iters after cfg->warmup. */
static nst_status cuda_bench(gatys_device *d, const nst_bench_config *cfg, nst_bench_result *res, nst_error *err) {
    gatys_cuda *g = cuda_of(d);
    cudaStream_t st = g->ctx->stream;
    adam_state adam = {0};
    adam.lr = g->cfg->lr;
    vgg19_cuda_acts *a = &g->acts;
    cudaEvent_t ev[4] = {0};
    nst_status s = NST_OK;
    for (int i = 0; i < 4 && !s; i++) s = nst_cuda_check(cudaEventCreate(&ev[i]), "cudaEventCreate", err);
    double f;
    /* one evaluation: the Grams the backward timing reuses */
    if (!s) s = eval_device(g, g->vec[OPTIM_X], g->vec[OPTIM_G], err);
    if (!s) s = read_slots(g, &f, NULL, NULL, 0, err);
    float best[3] = {1e30f, 1e30f, 1e30f};
    for (int it = 0; !s && it < cfg->warmup + cfg->iters; it++) {
        float ms[3];
        s = nst_cuda_check(cudaEventRecord(ev[0], st), "cudaEventRecord", err);
        if (!s) s = nst_cuda_check(cudaMemcpyAsync(a->input, g->vec[OPTIM_X], g->n * sizeof(float), cudaMemcpyDeviceToDevice, st),
                                   "cudaMemcpyAsync", err);
        if (!s) s = vgg19_cuda_forward(g->vgg, a, err);
        if (!s) s = nst_cuda_check(cudaEventRecord(ev[1], st), "cudaEventRecord", err);
        if (!s) s = vgg19_cuda_backward(g->vgg, a, g->plan->tap, tap_backward, g, g->vec[OPTIM_G], err);
        if (!s) s = nst_cuda_check(cudaEventRecord(ev[2], st), "cudaEventRecord", err);
        if (!s) s = adam_step(&adam, &g->optim, &f, err); /* waits for the losses, as a real step does */
        if (!s) s = nst_cuda_check(cudaEventRecord(ev[3], st), "cudaEventRecord", err);
        if (!s) s = nst_cuda_check(cudaEventSynchronize(ev[3]), "cudaEventSynchronize", err);
        if (s) break;
        cudaEventElapsedTime(&ms[0], ev[0], ev[1]);
        cudaEventElapsedTime(&ms[1], ev[0], ev[2]);
        cudaEventElapsedTime(&ms[2], ev[2], ev[3]);
        if (it < cfg->warmup) continue;
        for (int k = 0; k < 3; k++)
            if (ms[k] < best[k]) best[k] = ms[k];
    }
    for (int i = 0; i < 4; i++)
        if (ev[i]) cudaEventDestroy(ev[i]);
    if (!s && cfg->tuning.cuda_profile) s = profile_step(g, &adam, err);
    if (s) return s;
    res->forward_ms = best[0];
    res->forward_backward_ms = best[1];
    res->step_ms = best[2];
    res->activation_bytes = a->bytes;
    static const char *const kernels[2][2] = {
        {"cudnn-fp32, algorithms: cuDNN's heuristics (NST_CUDNN_SEARCH=1: measured)",
         "cudnn-fp32, algorithms: measured (NST_CUDNN_SEARCH=0: cuDNN's heuristics)"},
        {"cudnn-tf32, algorithms: cuDNN's heuristics (NST_CUDNN_SEARCH=1: measured)",
         "cudnn-tf32, algorithms: measured (NST_CUDNN_SEARCH=0: cuDNN's heuristics)"}};
    res->kernel = kernels[a->precision == NST_PRECISION_TF32][a->searched != 0];
    for (int l = 0; l < a->depth; l++)
        if (vgg19_layer_kind(l) == VGG_CONV) {
            int hi = l == 0 ? a->H : a->Hl[l - 1], wi = l == 0 ? a->W : a->Wl[l - 1];
            res->conv_gflop += 2e-9 * hi * wi * (l == 0 ? 3 : a->C[l - 1]) * a->C[l] * 9;
        }
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    res->device_bytes_used = g->free_at_start > free_b ? g->free_at_start - free_b : 0;
    res->device_bytes_total = total_b;
    snprintf(res->device_name, sizeof res->device_name, "%s", g->ctx->name);
    return NST_OK;
}
