/* gatys_cuda.cu - the optimization-based transfer on the GPU: targets, the objective
 * (VGG19 forward with the losses at each tap, backward with their gradients, total
 * variation), Adam and L-BFGS, all on the run's stream. See gatys_cuda.h.
 *
 * The losses' values and their gradients with respect to the tapped layers (which need
 * only the forward pass) are computed on a second stream, each as soon as its layer is
 * computed, so that they overlap the next layers; the backward pass waits for them and
 * adds each gradient at its layer.
 * The objective's values go into device slots (double): slot[l] the content loss at
 * layer l, slot[NST_NUM_LAYERS + l] the style loss, then total variation and the
 * L-BFGS scalars; the host reads them with one copy after a step or a trial. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/common_kernels.cuh"
#include "cuda/gatys_cuda.h"
#include "cuda/losses_cuda.h"
#include "cuda/vgg19_cuda.h"
extern "C" {
#include "net/vgg19.h"
#include "transfer/gatys.h"
}

/* the slots: read by the host (the first SLOT_READ), then device-only scalars */
enum {
    SLOT_CONTENT = 0,                   /* + l */
    SLOT_STYLE = NST_NUM_LAYERS,        /* + l */
    SLOT_TV = 2 * NST_NUM_LAYERS,
    SLOT_GD, SLOT_SY, SLOT_YY,          /* L-BFGS: g'd, s'y, y'y of the trial */
    SLOT_READ,
    SLOT_GMAX = SLOT_READ, SLOT_T1, SLOT_T2, /* L-BFGS direction scratch */
    SLOT_RHO                            /* + history: rho, then + history: alpha */
};

/* The convolutions' algorithms, unless NST_CUDNN_SEARCH says: 1 measured (the fastest
 * deterministic ones, kept in the cache file so that every later run takes the same:
 * see vgg19_cuda.h), 0 cuDNN's heuristics. */
#define GATYS_MEASURE_DEFAULT 1

#define ARMIJO_C1 1e-4 /* as optim/lbfgs.c */
#define MAX_BACKTRACKS 12

typedef struct {
    float content_w, style_w; /* cfg weight * per-layer weight; 0 when not a tap */
    float *P;                 /* device (C,H,W) content target */
    float *T;                 /* device (C,H,W): the losses' gradient at this layer, computed
                                 on the loss stream during the forward pass (it depends on
                                 the forward pass only); the backward pass adds it */
    float *A, *G, *dG;        /* device (C,C) style target, the image's Gram, its gradient */
    float gscale;             /* the Gram's scale for the image being optimized */
    double content_value, style_value; /* unweighted, at the last read */
} layer_cuda;

struct gatys_cuda {
    const nst_transfer_config *cfg;
    nst_cuda *ctx;
    vgg19_cuda *vgg;
    vgg19_cuda_acts acts;
    int H, W, depth;
    size_t n; /* 3*H*W */
    layer_cuda loss[NST_NUM_LAYERS];
    unsigned char tap[NST_NUM_LAYERS];
    void *mem;      /* device: Grams, image, gradient, optimizer state, slots */
    float *targets; /* device: the content targets (sized once the content's shapes are known) */
    float *tgrads;  /* device: the T of every tap layer */
    float *x, *grad;
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
    double *host_slot; /* pinned, SLOT_READ */
    double content_loss, style_loss, tv_loss; /* weighted, at the last read */
    size_t free_at_start; /* free GPU memory once the context exists (for the bench) */
    /* Adam */
    float *m, *v;
    int adam_t;
    /* L-BFGS (the fields of optim.h's lbfgs_state, vectors on the GPU) */
    int history, count, head, evals;
    float *s, *y, *d, *x_try, *g_try;
};

/* ---- element-wise kernels of the optimizers ------------------------------------------ */

/* x, grad, m, v are (n): Adam, in the order of optim/adam.c */
static __global__ void adam_kernel(float *x, const float *grad, float *m, float *v, float step, float bc2_sqrt, float b1,
                            float b2, float eps, size_t n) {
    NST_GRID_LOOP(i, n) {
        float gi = grad[i];
        float mi = m[i] * b1 + gi * (1.0f - b1);
        float vi = v[i] * b2 + gi * gi * (1.0f - b2);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        x[i] += -step * (mi / denom);
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

/* d = -g; with gmax (device, may be NULL): d /= gmax when gmax > 0 */
static __global__ void neg_kernel(float *d, const float *g, const double *gmax, size_t n) {
    float m = gmax ? (float)*gmax : 0.0f;
    NST_GRID_LOOP(i, n) {
        float v = -g[i];
        d[i] = m > 0.0f ? v / m : v;
    }
}

/* The first loop of the two-loop recursion, one pair: alpha = rho * dot; d += -alpha * yk.
 * Thread 0 stores alpha for the second loop. */
static __global__ void lbfgs_loop1_kernel(float *d, const float *yk, const double *rho, const double *dot, double *alpha,
                                   size_t n) {
    double a = *rho * *dot;
    float af = (float)-a;
    if (blockIdx.x == 0 && threadIdx.x == 0) *alpha = a;
    NST_GRID_LOOP(i, n) d[i] += af * yk[i];
}

/* The second loop, one pair: beta = rho * dot; d += (alpha - beta) * sk */
static __global__ void lbfgs_loop2_kernel(float *d, const float *sk, const double *rho, const double *dot,
                                   const double *alpha, size_t n) {
    float af = (float)(*alpha - *rho * *dot);
    NST_GRID_LOOP(i, n) d[i] += af * sk[i];
}

/* d *= gamma = sy / yy (in double, as optim/lbfgs.c) */
static __global__ void lbfgs_gamma_kernel(float *d, const double *sy, const double *yy, size_t n) {
    double gamma = *sy / *yy;
    NST_GRID_LOOP(i, n) d[i] = (float)(d[i] * gamma);
}

/* *rho = 1 / *sy */
static __global__ void reciprocal_kernel(double *rho, const double *sy) { *rho = 1.0 / *sy; }

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
    size_t n = vgg19_cuda_layer_size(a, l);
    cudaStream_t ls = g->lctx->stream;
    if (L->P) {
        float k = (float)(2.0 * L->content_w / (double)n);
        content_grad_kernel<<<nst_grid_for(n), 256, 0, ls>>>(L->T, a->out[l], L->P, k, n);
        LAUNCH_CHECK(err);
    } else {
        NST_CUDA_TRY(cudaMemsetAsync(L->T, 0, n * sizeof(float), ls), err);
    }
    if (L->A) {
        int C = a->C[l], N = a->Hl[l] * a->Wl[l];
        return cuda_style_loss_backward(g->lctx, L->T, L->dG, L->G, L->A, a->out[l], C, N, L->gscale, L->style_w, err);
    }
    return NST_OK;
}

/* The losses' gradient at layer l, added into grad during the backward pass: T, or
 * (where there was no memory for the T buffers) computed here. */
static nst_status tap_backward(void *ctxp, const vgg19_cuda_acts *a, int l, float *grad, nst_error *err) {
    gatys_cuda *g = (gatys_cuda *)ctxp;
    layer_cuda *L = &g->loss[l];
    size_t n = vgg19_cuda_layer_size(a, l);
    if (L->T) {
        add_kernel<<<nst_grid_for(n / 4 + 1), 256, 0, g->ctx->stream>>>(grad, L->T, n / 4, n);
        LAUNCH_CHECK(err);
        return NST_OK;
    }
    nst_status s = NST_OK;
    if (L->P) s = cuda_content_loss_backward(g->ctx, grad, a->out[l], L->P, n, L->content_w, err);
    if (!s && L->A) {
        int C = a->C[l], N = a->Hl[l] * a->Wl[l];
        s = cuda_style_loss_backward(g->ctx, grad, L->dG, L->G, L->A, a->out[l], C, N, L->gscale, L->style_w, err);
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
    nst_status s = vgg19_cuda_backward(g->vgg, a, g->tap, tap_backward, g, grad, err);
    if (s) return s;
    if (g->cfg->tv_weight > 0.0f) {
        s = cuda_tv_loss_forward(g->ctx, &g->red, x, 3, g->H, g->W, g->slot + SLOT_TV, err);
        if (!s) s = cuda_tv_loss_backward(g->ctx, grad, x, 3, g->H, g->W, g->cfg->tv_weight, err);
    }
    return s;
}

/* Waits for the queued work, reads the slots and returns the total loss (summed on the
 * host in the order of gatys.c). */
static nst_status read_losses(gatys_cuda *g, double *total, nst_error *err) {
    nst_status s = nst_cuda_copy_sync(g->ctx, g->host_slot, g->slot, SLOT_READ * sizeof(double),
                                      cudaMemcpyDeviceToHost, err);
    if (s) return s;
    double content = 0.0, style = 0.0;
    for (int l = 0; l < g->depth; l++) {
        layer_cuda *L = &g->loss[l];
        if (L->P) {
            L->content_value = g->host_slot[SLOT_CONTENT + l];
            content += L->content_w * L->content_value;
        }
        if (L->A) {
            L->style_value = g->host_slot[SLOT_STYLE + l];
            style += L->style_w * L->style_value;
        }
    }
    double tv = g->cfg->tv_weight > 0.0f ? g->cfg->tv_weight * g->host_slot[SLOT_TV] : 0.0;
    g->content_loss = content;
    g->style_loss = style;
    g->tv_loss = tv;
    *total = content + style + tv;
    return NST_OK;
}

nst_status gatys_cuda_eval(gatys_cuda *g, const float *x, float *grad, double *f, nst_error *err) {
    nst_status s = nst_cuda_copy_sync(g->ctx, g->x, x, g->n * sizeof(float), cudaMemcpyHostToDevice, err);
    if (!s) s = eval_device(g, g->x, g->grad, err);
    if (!s) s = read_losses(g, f, err);
    if (!s) s = nst_cuda_copy_sync(g->ctx, grad, g->grad, g->n * sizeof(float), cudaMemcpyDeviceToHost, err);
    return s;
}

void gatys_cuda_losses(const gatys_cuda *g, double *content, double *style, double *tv) {
    *content = g->content_loss;
    *style = g->style_loss;
    *tv = g->tv_loss;
}

void gatys_cuda_layer_losses(const gatys_cuda *g, int l, double *content, double *style) {
    *content = g->loss[l].content_value;
    *style = g->loss[l].style_value;
}

nst_status gatys_cuda_download(gatys_cuda *g, float *x, nst_error *err) {
    return nst_cuda_copy_sync(g->ctx, x, g->x, g->n * sizeof(float), cudaMemcpyDeviceToHost, err);
}

/* ---- Adam ----------------------------------------------------------------------------- */

/* Queues the Adam update of the image with the gradient in g->grad. */
static nst_status adam_update(gatys_cuda *g, nst_error *err) {
    g->adam_t++;
    double bc1 = 1.0 - pow(0.9, g->adam_t), bc2 = 1.0 - pow(0.999, g->adam_t);
    float step = (float)(g->cfg->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    adam_kernel<<<nst_grid_for(g->n), 256, 0, g->ctx->stream>>>(g->x, g->grad, g->m, g->v, step, bc2_sqrt, 0.9f,
                                                                0.999f, 1e-8f, g->n);
    LAUNCH_CHECK(err);
    return NST_OK;
}

nst_status gatys_cuda_adam_step(gatys_cuda *g, double *f, nst_error *err) {
    nst_status s = eval_device(g, g->x, g->grad, err);
    if (!s) s = adam_update(g, err);
    return s ? s : read_losses(g, f, err);
}

/* ---- L-BFGS: optim/lbfgs.c with the vectors and the two-loop scalars on the GPU ---------- */

nst_status gatys_cuda_lbfgs_start(gatys_cuda *g, double *f, nst_error *err) {
    nst_status s = eval_device(g, g->x, g->grad, err);
    return s ? s : read_losses(g, f, err);
}

/* d = -H g by the two-loop recursion (see lbfgs.c), queued without waiting */
static nst_status direction(gatys_cuda *g, nst_error *err) {
    size_t n = g->n;
    cudaStream_t st = g->ctx->stream;
    unsigned grid = nst_grid_for(n);
    double *rho = g->slot + SLOT_RHO, *alpha = rho + g->history;
    nst_status s;
    if (g->count == 0) {
        s = cuda_abs_max(g->ctx, &g->red, g->grad, n, g->slot + SLOT_GMAX, err);
        if (s) return s;
        neg_kernel<<<grid, 256, 0, st>>>(g->d, g->grad, g->slot + SLOT_GMAX, n);
        LAUNCH_CHECK(err);
        return NST_OK;
    }
    neg_kernel<<<grid, 256, 0, st>>>(g->d, g->grad, NULL, n);
    LAUNCH_CHECK(err);
    int idx = g->head;
    for (int k = 0; k < g->count; k++) { /* newest to oldest */
        float *sk = g->s + (size_t)idx * n, *yk = g->y + (size_t)idx * n;
        if ((s = cuda_dot(g->ctx, &g->red, sk, g->d, n, g->slot + SLOT_T1, err))) return s;
        lbfgs_loop1_kernel<<<grid, 256, 0, st>>>(g->d, yk, rho + idx, g->slot + SLOT_T1, alpha + idx, n);
        LAUNCH_CHECK(err);
        idx = (idx - 1 + g->history) % g->history;
    }
    float *sn = g->s + (size_t)g->head * n, *yn = g->y + (size_t)g->head * n;
    if ((s = cuda_dot(g->ctx, &g->red, sn, yn, n, g->slot + SLOT_T1, err))) return s;
    if ((s = cuda_dot(g->ctx, &g->red, yn, yn, n, g->slot + SLOT_T2, err))) return s;
    lbfgs_gamma_kernel<<<grid, 256, 0, st>>>(g->d, g->slot + SLOT_T1, g->slot + SLOT_T2, n);
    LAUNCH_CHECK(err);
    idx = (g->head - g->count + 1 + g->history) % g->history;
    for (int k = 0; k < g->count; k++) { /* oldest to newest */
        float *sk = g->s + (size_t)idx * n, *yk = g->y + (size_t)idx * n;
        if ((s = cuda_dot(g->ctx, &g->red, yk, g->d, n, g->slot + SLOT_T1, err))) return s;
        lbfgs_loop2_kernel<<<grid, 256, 0, st>>>(g->d, sk, rho + idx, g->slot + SLOT_T1, alpha + idx, n);
        LAUNCH_CHECK(err);
        idx = (idx + 1) % g->history;
    }
    return NST_OK;
}

nst_status gatys_cuda_lbfgs_step(gatys_cuda *g, double *f, int *moved, nst_error *err) {
    size_t n = g->n;
    cudaStream_t st = g->ctx->stream;
    unsigned grid = nst_grid_for(n);
    nst_status s;
    *moved = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((s = direction(g, err))) return s;
        if ((s = cuda_dot(g->ctx, &g->red, g->grad, g->d, n, g->slot + SLOT_GD, err))) return s;
        /* the sign of g'd decides before any trial: read it (the first trial's read would
         * come too late to skip the evaluation) */
        double gd;
        if ((s = nst_cuda_copy_sync(g->ctx, &gd, g->slot + SLOT_GD, sizeof gd, cudaMemcpyDeviceToHost, err))) return s;
        if (!(gd < 0.0)) { /* not a descent direction: forget the history and retry */
            g->count = 0;
            continue;
        }
        double t = 1.0;
        int slot = (g->head + 1) % g->history;
        float *sk = g->s + (size_t)slot * n, *yk = g->y + (size_t)slot * n;
        for (int bt = 0; bt < MAX_BACKTRACKS; bt++) {
            float tf = (float)t;
            axpy_to_kernel<<<grid, 256, 0, st>>>(g->x_try, g->x, tf, g->d, n);
            LAUNCH_CHECK(err);
            if ((s = eval_device(g, g->x_try, g->g_try, err))) return s;
            /* the pair s = x_try - x, y = g_try - g and its products, computed before the
             * decision so that one read serves both: the slot it overwrites is the next in
             * the ring, which the direction has already used (lbfgs.c overwrites it too) */
            sub_kernel<<<grid, 256, 0, st>>>(sk, g->x_try, g->x, n);
            sub_kernel<<<grid, 256, 0, st>>>(yk, g->g_try, g->grad, n);
            LAUNCH_CHECK(err);
            if ((s = cuda_dot(g->ctx, &g->red, sk, yk, n, g->slot + SLOT_SY, err))) return s;
            if ((s = cuda_dot(g->ctx, &g->red, yk, yk, n, g->slot + SLOT_YY, err))) return s;
            double f_try;
            if ((s = read_losses(g, &f_try, err))) return s;
            g->evals++;
            if (isfinite(f_try) && f_try <= *f + ARMIJO_C1 * t * gd) {
                double sy = g->host_slot[SLOT_SY], yy = g->host_slot[SLOT_YY];
                if (sy > 1e-10 * yy && yy > 0.0) { /* curvature condition, else skip the pair */
                    g->head = slot;
                    reciprocal_kernel<<<1, 1, 0, st>>>(g->slot + SLOT_RHO + slot, g->slot + SLOT_SY);
                    LAUNCH_CHECK(err);
                    if (g->count < g->history) g->count++;
                } else if (g->count == g->history) {
                    g->count--; /* the skipped pair overwrote the oldest one */
                }
                NST_CUDA_TRY(cudaMemcpyAsync(g->x, g->x_try, n * sizeof(float), cudaMemcpyDeviceToDevice, st), err);
                NST_CUDA_TRY(cudaMemcpyAsync(g->grad, g->g_try, n * sizeof(float), cudaMemcpyDeviceToDevice, st), err);
                *f = f_try;
                *moved = 1;
                return NST_OK;
            }
            /* minimiser of the quadratic through f(0), f'(0), f(t), kept in [t/10, t/2] */
            double t_new = isfinite(f_try) ? -gd * t * t / (2.0 * (f_try - *f - gd * t)) : 0.1 * t;
            if (!(t_new > 0.1 * t)) t_new = 0.1 * t;
            if (t_new > 0.5 * t) t_new = 0.5 * t;
            t = t_new;
        }
        g->count = 0; /* the model was wrong: start again from steepest descent */
    }
    return NST_OK;
}

/* ---- building ---------------------------------------------------------------------- */

static int is_tap(const nst_tap *taps, int n, int l) {
    for (int i = 0; i < n; i++)
        if (taps[i].layer == l) return 1;
    return 0;
}

static float gram_scale(const nst_transfer_config *cfg, int C, int N) {
    return cfg->gram_norm == NST_GRAM_NORMALIZED ? (float)(1.0 / ((double)C * N)) : 1.0f;
}

/* The channels of layer l's output (the table of net/vgg19.c: 64, 128, 256, 512, 512). */
static int layer_channels(const nst_vgg19 *net, int l) {
    while (vgg19_layer_kind(l) != VGG_CONV) l--;
    return net->conv[vgg19_layer_conv(l)].C_out;
}

void gatys_cuda_free(gatys_cuda *g) {
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
    free(g);
}

/* Style targets A: the blend-weighted sum of the style images' Grams, each computed on
 * activations of its own size that are freed before the next. */
static nst_status style_targets(gatys_cuda *g, const nst_vgg19 *net, const nst_image *styles, const float *blend,
                                int n_styles, nst_error *err) {
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
            s = cuda_gram_forward(g->ctx, L->A, sa.out[l], C, N, gram_scale(cfg, C, N) * blend[i], i == 0 ? 0.0f : 1.0f,
                                  err);
        }
        if (!s) s = nst_cuda_check(cudaStreamSynchronize(g->ctx->stream), "style targets", err);
        vgg19_cuda_acts_free(&sa);
        if (s) return s;
    }
    return NST_OK;
}

static nst_status build(gatys_cuda *g, const nst_vgg19 *net, const float *content_input, const nst_image *styles,
                        const float *blend, int n_styles, const float *x0, nst_error *err) {
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
    if ((s = cuda_reduce_scratch_build(&g->red, g->ctx, err))) return s;
    /* NST_CUDA_LOSS_STREAM=0 queues the losses on the main stream (events on one stream
     * order nothing new): the same work, serialised, to check the two-stream order */
    const char *ls_env = getenv("NST_CUDA_LOSS_STREAM");
    if (ls_env && strcmp(ls_env, "0") == 0) {
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

    /* per-layer weights, taps */
    for (int i = 0; i < cfg->n_content_taps; i++)
        g->loss[cfg->content_taps[i].layer].content_w += cfg->content_weight * cfg->content_taps[i].weight;
    for (int i = 0; i < cfg->n_style_taps; i++)
        g->loss[cfg->style_taps[i].layer].style_w += cfg->style_weight * cfg->style_taps[i].weight;

    /* one allocation: Grams (A, G, dG per style tap), image, gradient, optimizer, slots */
    size_t n = g->n, total = 0, cc[NST_NUM_LAYERS] = {0};
    for (int l = 0; l < g->depth; l++)
        if (is_tap(cfg->style_taps, cfg->n_style_taps, l)) {
            int C = layer_channels(net, l);
            cc[l] = ((size_t)C * C + 63) / 64 * 64;
            total += 3 * cc[l];
        }
    size_t nv = (n + 63) / 64 * 64;
    total += 2 * nv;
    if (cfg->optimizer == NST_OPT_ADAM) {
        total += 2 * nv;
    } else {
        g->history = cfg->lbfgs_history < 1 ? 1 : cfg->lbfgs_history;
        total += (size_t)(2 * g->history + 3) * nv;
    }
    size_t n_slots = SLOT_RHO + 2 * (size_t)(g->history > 0 ? g->history : 1);
    size_t slot_floats = (2 * n_slots + 63) / 64 * 64; /* doubles, as pairs of floats */
    total += slot_floats;
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
    g->x = q;
    g->grad = q + nv;
    q += 2 * nv;
    if (cfg->optimizer == NST_OPT_ADAM) {
        g->m = q;
        g->v = q + nv;
        NST_CUDA_TRY(cudaMemsetAsync(g->m, 0, 2 * nv * sizeof(float), g->ctx->stream), err);
    } else {
        g->s = q;
        g->y = q + (size_t)g->history * nv;
        g->d = q + (size_t)2 * g->history * nv;
        g->x_try = g->d + nv;
        g->g_try = g->x_try + nv;
    }
    NST_CUDA_TRY(cudaMemsetAsync(g->slot, 0, n_slots * sizeof(double), g->ctx->stream), err);
    NST_CUDA_TRY(cudaMallocHost((void **)&g->host_slot, SLOT_READ * sizeof(double)), err);

    /* style targets first (their activations are freed before the content's exist) */
    if ((s = style_targets(g, net, styles, blend, n_styles, err))) return s;

    /* a conv whose output a loss reads keeps it: the ReLU after it gets its own buffer */
    unsigned char keep[NST_NUM_LAYERS] = {0};
    for (int l = 0; l < g->depth; l++) {
        g->tap[l] = is_tap(cfg->content_taps, cfg->n_content_taps, l) || g->loss[l].A != NULL;
        keep[l] = g->tap[l] && vgg19_layer_kind(l) == VGG_CONV;
    }
    /* (the style images' one forward pass each took the heuristic's algorithms) */
    vgg19_cuda_set_search(g->vgg, GATYS_MEASURE_DEFAULT);
    if ((s = vgg19_cuda_acts_build(&g->acts, g->vgg, g->depth, g->H, g->W, keep, cfg->precision, err)))
        return gatys_blame(err, s, cfg, -1, g->W, g->H);
    vgg19_cuda_acts *a = &g->acts;
    for (int l = 0; l < g->depth; l++)
        if (g->loss[l].A) g->loss[l].gscale = gram_scale(cfg, a->C[l], a->Hl[l] * a->Wl[l]);

    /* content targets P: the content's features at the content taps */
    size_t ptotal = 0;
    for (int l = 0; l < g->depth; l++)
        if (is_tap(cfg->content_taps, cfg->n_content_taps, l)) ptotal += (vgg19_cuda_layer_size(a, l) + 63) / 64 * 64;
    if (ptotal) {
        if ((s = nst_cuda_alloc(g->ctx, (void **)&g->targets, ptotal, sizeof(float), "the content targets", err)))
            return s;
        float *p = g->targets;
        for (int l = 0; l < g->depth; l++)
            if (is_tap(cfg->content_taps, cfg->n_content_taps, l)) {
                g->loss[l].P = p;
                p += (vgg19_cuda_layer_size(a, l) + 63) / 64 * 64;
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
        if (g->tap[l]) ttotal += (vgg19_cuda_layer_size(a, l) + 63) / 64 * 64;
    size_t free_b = 0;
    NST_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b), err);
    if (ttotal && free_b > ttotal * sizeof(float) + ((size_t)256 << 20) && /* room left for the libraries */
        cudaMalloc((void **)&g->tgrads, ttotal * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        g->tgrads = NULL;
    }
    if (g->tgrads) {
        float *p = g->tgrads;
        for (int l = 0; l < g->depth; l++)
            if (g->tap[l]) {
                g->loss[l].T = p;
                p += (vgg19_cuda_layer_size(a, l) + 63) / 64 * 64;
            }
    }
    return nst_cuda_copy_sync(g->ctx, g->x, x0, n * sizeof(float), cudaMemcpyHostToDevice, err);
}

nst_status gatys_cuda_build(gatys_cuda **out, const nst_transfer_config *cfg, const nst_vgg19 *net, int W, int H,
                            const float *content_input, const nst_image *styles, const float *blend, int n_styles,
                            const float *x0, nst_error *err) {
    *out = NULL;
    gatys_cuda *g = (gatys_cuda *)calloc(1, sizeof *g);
    if (!g) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    g->cfg = cfg;
    g->W = W;
    g->H = H;
    g->n = (size_t)3 * H * W;
    g->depth = nst_transfer_depth(cfg);
    nst_status s = build(g, net, content_input, styles, blend, n_styles, x0, err);
    if (s) {
        gatys_cuda_free(g);
        return s;
    }
    *out = g;
    return NST_OK;
}

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
static nst_status profile_step(gatys_cuda *g, nst_error *err) {
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
    if (!s) s = eval_device(g, g->x, g->grad, err);
    if (!s) s = nst_cuda_check(cudaEventRecord(ev[1], st), "cudaEventRecord", err);
    if (!s) s = adam_update(g, err);
    if (!s) s = nst_cuda_check(cudaEventRecord(ev[2], st), "cudaEventRecord", err);
    if (!s) s = read_losses(g, &f, err);
    if (!s) s = nst_cuda_check(cudaEventRecord(ev[3], st), "cudaEventRecord", err);
    if (!s) s = nst_cuda_check(cudaEventSynchronize(ev[3]), "cudaEventSynchronize", err);
    a->prof = NULL;
    if (!s) {
        int top = a->depth - 1;
        double sum[6] = {0};
        printf("profile: one seed step at %dx%d, %s, algorithms %s; ms per layer (rp: the ReLU and pool after the conv)\n",
               g->W, g->H, a->precision == NST_PRECISION_TF32 ? "tf32" : "fp32",
               a->searched ? "measured" : "cuDNN's heuristics");
        printf("%-8s %14s %7s %7s %7s %7s %7s %7s  %s\n", "layer", "output", "conv-f", "rp-f", "loss-f", "conv-b", "rp-b",
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
            printf("%-8s %14s %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f  %s\n", nst_layer_name(l), shape, t[0], t[1], t[2],
                   t[3], t[4], t[5], algos);
            for (int k = 0; k < 6; k++) sum[k] += t[k];
        }
        printf("%-8s %14s %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f\n", "sum", "", sum[0], sum[1], sum[2], sum[3], sum[4],
               sum[5]);
        printf("profile: start %.3f, forward %.3f, backward %.3f, TV %.3f, Adam %.3f, read-back %.3f; step %.3f ms\n",
               elapsed(ev[0], prof.fwd[0][0]), elapsed(prof.fwd[0][0], prof.bwd[top][0]),
               elapsed(prof.bwd[top][0], prof.bwd[0][2]), elapsed(prof.bwd[0][2], ev[1]), elapsed(ev[1], ev[2]),
               elapsed(ev[2], ev[3]), elapsed(ev[0], ev[3]));
        printf("profile: the losses' values and gradients on their own stream: %.3f ms from the first tap's to the "
               "end of the last's, overlapping the forward pass\n",
               elapsed(g->lprof[0], g->lprof[1]));
        printf("profile: losses content %.6g, style %.6g, tv %.6g, total %.6g\n", g->content_loss, g->style_loss,
               g->tv_loss, f);
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

nst_status gatys_cuda_bench(gatys_cuda *g, const nst_bench_config *cfg, nst_bench_result *res, nst_error *err) {
    cudaStream_t st = g->ctx->stream;
    vgg19_cuda_acts *a = &g->acts;
    cudaEvent_t ev[4] = {0};
    nst_status s = NST_OK;
    for (int i = 0; i < 4 && !s; i++) s = nst_cuda_check(cudaEventCreate(&ev[i]), "cudaEventCreate", err);
    double f;
    if (!s) s = gatys_cuda_lbfgs_start(g, &f, err); /* one evaluation: the Grams the backward timing reuses */
    float best[3] = {1e30f, 1e30f, 1e30f};
    for (int it = 0; !s && it < cfg->warmup + cfg->iters; it++) {
        float ms[3];
        s = nst_cuda_check(cudaEventRecord(ev[0], st), "cudaEventRecord", err);
        if (!s) s = nst_cuda_check(cudaMemcpyAsync(a->input, g->x, g->n * sizeof(float), cudaMemcpyDeviceToDevice, st),
                                   "cudaMemcpyAsync", err);
        if (!s) s = vgg19_cuda_forward(g->vgg, a, err);
        if (!s) s = nst_cuda_check(cudaEventRecord(ev[1], st), "cudaEventRecord", err);
        if (!s) s = vgg19_cuda_backward(g->vgg, a, g->tap, tap_backward, g, g->grad, err);
        if (!s) s = nst_cuda_check(cudaEventRecord(ev[2], st), "cudaEventRecord", err);
        if (!s) s = gatys_cuda_adam_step(g, &f, err); /* waits for the losses, as a real step does */
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
    const char *prof = getenv("NST_CUDA_PROFILE");
    if (!s && prof && strcmp(prof, "1") == 0) s = profile_step(g, err);
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
