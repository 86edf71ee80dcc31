/* stylenet_train_cuda.cu - a fast-style training step on the GPU (see stylenet_train_cuda.h): the style
 * network (stylenet_cuda.cu), the VGG19 and losses of the Gatys path (vgg19_cuda.h,
 * losses_cuda.h), Adam (layers_cuda.cu). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.cuh"
#include "cuda/stylenet_cuda.h"
#include "cuda/layers_cuda.h"
#include "cuda/losses_cuda.h"
#include "cuda/stylenet_train_cuda.h"
#include "cuda/vgg19_cuda.h"
#include "optim/optim.h"
#include "transfer/stylenet_backend.h"
extern "C" {
#include "net/vgg19.h" /* a C header: the layers' kinds */
}

#define THREADS 256
#define MAX_LANES 8 /* at most; 4 unless $NST_CUDA_LANES says otherwise */

typedef struct stylenet_train_cuda_lane lane;

/* $NST_CUDA_PROFILE=1: timing events. The step's phases on the main stream: start, batch
 * uploaded, network forward, VGG19 losses joined, network backward, Adam. A lane's first
 * photo: start, content target, forward + losses (from the end of the content target: it
 * includes waiting for the network's output), VGG19 backward, TV. */
enum { PH_START, PH_UPLOAD, PH_FWD, PH_LOSS, PH_BWD, PH_ADAM, STEP_EV };
enum { LANE_EV = 5 };

/* The VGG19 loss of one photo at a time, on a stream of its own: a batch's photos run in
 * up to MAX_LANES lanes at once (the VGG19 on the GPU takes one image, and one image's
 * deeper convolutions leave most of the GPU idle; several streams fill it). Each lane has
 * its own context (stream, cuDNN and cuBLAS handles), its own copy of the VGG19 weights
 * (bound to that context), activations and loss buffers: the photos are independent, so
 * the result is the same whatever runs beside what. */
struct stylenet_train_cuda_lane {
    stylenet_train_cuda *f;
    nst_cuda *ctx;
    vgg19_cuda *vgg;
    vgg19_cuda_acts va;
    cuda_reduce_scratch red;
    float *P[NST_NUM_LAYERS];                      /* content targets (C,H,W) */
    float *G[NST_NUM_LAYERS], *dG[NST_NUM_LAYERS]; /* (C,C) */
    float *vgrad;                                  /* (3,S,S) d(loss)/d(VGG input) */
    cudaEvent_t done;                              /* the lane's photos of the step */
    cudaEvent_t pev[LANE_EV];                      /* profiling: around its first photo's parts */
    vgg19_cuda_prof vprof;                         /* profiling, lane 0: its VGG19 per layer */
    int has_vprof;
};

struct stylenet_train_cuda {
    nst_cuda *ctx; /* the network, Adam and the step's order */
    int B, S, depth, content_depth;
    float lr;
    perceptual_plan plan; /* the taps, their weights; read_losses fills its values per photo */
    const nst_tuning *tuning; /* the config's (its log: the profile, messages) */
    stylenet_cuda *net;
    float *A[NST_NUM_LAYERS]; /* the painting's Grams (C,C), shared by the lanes */
    int n_lanes;
    lane lanes[MAX_LANES];
    cudaEvent_t ready;  /* the network's forward pass of the step */
    cudaEvent_t uploaded; /* the step's batch on the device (the content targets start) */
    float *dout;        /* (B,3,S,S) d(loss)/d(network output) */
    float *m, *v;       /* Adam */
    double *slots;      /* device: per image and layer (content, style), then per image tv */
    double *host_slots; /* pinned host copy */
    size_t n_slots;
    float *pinned;      /* the caller's batch buffer, page-locked here (or NULL) */
    int prof, prof_adam;                   /* profiling on; this step ran Adam */
    int use_graph, steps_done;             /* capture the step as a CUDA graph; steps run */
    cudaGraphExec_t exec;                  /* the captured step (run_body) */
    cudaEvent_t pev[STEP_EV];
    double prof_ms[STEP_EV + LANE_EV];     /* sums over the steps after the first */
    int prof_steps, prof_seen;             /* steps summed, steps seen */
};

/* ---- the network's output <-> the VGG's input ------------------------------------------- */

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

static nst_status to_vgg(lane *ln, const float *x, float scale, nst_error *err) {
    size_t hw = (size_t)ln->f->S * ln->f->S;
    to_vgg_kernel<<<nst_cuda_blocks(hw), THREADS, 0, ln->ctx->stream>>>(ln->va.input, x, hw, scale, vgg19_mean_bgr[0],
                                                                         vgg19_mean_bgr[1], vgg19_mean_bgr[2]);
    return nst_cuda_check(cudaGetLastError(), "VGG input", err);
}

/* ---- building --------------------------------------------------------------------------- */

static void lane_free(lane *ln) {
    if (ln->ctx) cudaStreamSynchronize(ln->ctx->stream);
    vgg19_cuda_acts_free(&ln->va);
    vgg19_cuda_free(ln->vgg);
    cuda_reduce_scratch_free(&ln->red);
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        cudaFree(ln->P[l]);
        cudaFree(ln->G[l]);
        cudaFree(ln->dG[l]);
    }
    cudaFree(ln->vgrad);
    if (ln->done) cudaEventDestroy(ln->done);
    for (int k = 0; k < LANE_EV; k++)
        if (ln->pev[k]) cudaEventDestroy(ln->pev[k]);
    if (ln->has_vprof) vgg19_cuda_prof_destroy(&ln->vprof);
    nst_cuda_destroy(ln->ctx);
    memset(ln, 0, sizeof *ln);
}

static void profile_log(stylenet_train_cuda *f);

void stylenet_train_cuda_free(stylenet_train_cuda *f) {
    if (!f) return;
    cudaStreamSynchronize(f->ctx->stream);
    if (f->prof && f->net && f->prof_seen > 0) profile_log(f);
    if (f->exec) cudaGraphExecDestroy(f->exec);
    for (int k = 0; k < STEP_EV; k++)
        if (f->pev[k]) cudaEventDestroy(f->pev[k]);
    for (int k = 0; k < MAX_LANES; k++) lane_free(&f->lanes[k]);
    stylenet_cuda_free(f->net);
    for (int l = 0; l < NST_NUM_LAYERS; l++) cudaFree(f->A[l]);
    if (f->ready) cudaEventDestroy(f->ready);
    if (f->uploaded) cudaEventDestroy(f->uploaded);
    cudaFree(f->dout);
    cudaFree(f->m);
    cudaFree(f->slots);
    cudaFreeHost(f->host_slots);
    if (f->pinned) cudaHostUnregister(f->pinned);
    free(f);
}

static float gram_norm(int C, int N) { return perceptual_gram_scale(NST_GRAM_NORMALIZED, C, N); }

#define TRY(call)                      \
    do {                               \
        nst_status s_ = (call);        \
        if (s_ != NST_OK) return s_;   \
    } while (0)

/* profiling marks (nothing unless $NST_CUDA_PROFILE=1) */
#define STEP_MARK(k)                                                                        \
    do {                                                                                    \
        if (f->prof) NST_CUDA_TRY(cudaEventRecord(f->pev[k], f->ctx->stream), err);         \
    } while (0)
#define LANE_MARK(k)                                                                        \
    do {                                                                                    \
        if (f->prof && mark) NST_CUDA_TRY(cudaEventRecord(ln->pev[k], ctx->stream), err);   \
    } while (0)

/* a lane's context, weights, activations and loss buffers (freed by lane_free, also
 * after a failure half-way) */
static nst_status lane_build(lane *ln, stylenet_train_cuda *f, const nst_train_config *cfg, const nst_vgg19 *vgg,
                             const unsigned char *keep, nst_error *err) {
    ln->f = f;
    TRY(nst_cuda_create(&ln->ctx, err));
    TRY(vgg19_cuda_upload(&ln->vgg, ln->ctx, vgg, f->depth, err));
    vgg19_cuda_set_tuning(ln->vgg, &cfg->tuning);
    TRY(vgg19_cuda_acts_build(&ln->va, ln->vgg, f->depth, f->S, f->S, keep, cfg->precision, err));
    TRY(cuda_reduce_scratch_build(&ln->red, ln->ctx, err));
    TRY(cuda_set_gemm_precision(ln->ctx, cfg->precision, err));
    TRY(nst_cuda_alloc(ln->ctx, (void **)&ln->vgrad, (size_t)3 * f->S * f->S, sizeof(float), "the training gradients", err));
    for (int l = 0; l < f->depth; l++) {
        size_t C = (size_t)ln->va.C[l];
        if (f->plan.layer[l].content)
            TRY(nst_cuda_alloc(ln->ctx, (void **)&ln->P[l], vgg19_cuda_layer_size(&ln->va, l), sizeof(float), "the content targets", err));
        if (f->plan.layer[l].style) {
            TRY(nst_cuda_alloc(ln->ctx, (void **)&ln->G[l], C * C, sizeof(float), "the Grams", err));
            TRY(nst_cuda_alloc(ln->ctx, (void **)&ln->dG[l], C * C, sizeof(float), "the Grams", err));
        }
    }
    NST_CUDA_TRY(cudaEventCreateWithFlags(&ln->done, cudaEventDisableTiming), err);
    for (int k = 0; f->prof && k < LANE_EV; k++) NST_CUDA_TRY(cudaEventCreate(&ln->pev[k]), err);
    if (f->prof && ln == &f->lanes[0]) { /* its VGG19 passes, per layer (the last photo's) */
        ln->has_vprof = 1;
        TRY(vgg19_cuda_prof_create(&ln->vprof, err));
        ln->va.prof = &ln->vprof;
    }
    return NST_OK;
}

nst_status stylenet_train_cuda_build(stylenet_train_cuda **out, nst_cuda *ctx, const nst_train_config *cfg, const nst_vgg19 *vgg,
                           const stylenet *net, const perceptual_plan *plan,
                           const float *const *style_A, float *batch, nst_error *err) {
    *out = NULL;
    stylenet_train_cuda *f = (stylenet_train_cuda *)calloc(1, sizeof *f);
    if (!f) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    f->ctx = ctx;
    f->B = cfg->batch;
    f->S = cfg->size;
    f->lr = cfg->lr;
    f->plan = *plan;
    f->tuning = &cfg->tuning;
    unsigned char keep[NST_NUM_LAYERS] = {0};
    for (int l = 0; l < NST_NUM_LAYERS; l++) {
        if (plan->tap[l]) f->depth = l + 1;
        if (plan->layer[l].content) f->content_depth = l + 1;
        keep[l] = plan->tap[l] && vgg19_layer_kind(l) == VGG_CONV;
    }
    if (cfg->precision == NST_PRECISION_FP16) {
        free(f);
        return nst_fail(err, NST_ERR_ARG, "training runs in fp32 or tf32 (fp16 is for applying a style network)");
    }
    nst_precision prec = cfg->precision == NST_PRECISION_TF32 ? NST_PRECISION_TF32 : NST_PRECISION_FP32;
    size_t n = net->n_params, hw = (size_t)f->S * f->S;
    nst_status s = NST_OK;
    /* 4 lanes; $NST_CUDA_LANES=1..8 for experiments (the results are the same bits: each
     * photo's work is the same on any lane) */
    int lanes = cfg->tuning.cuda_lanes;
    if (lanes < 1 || lanes > MAX_LANES) lanes = 4;
    f->prof = cfg->tuning.cuda_profile;
    f->use_graph = !f->prof && !cfg->tuning.cuda_no_graph;
    for (int k = 0; f->prof && k < STEP_EV && !s; k++)
        s = nst_cuda_check(cudaEventCreate(&f->pev[k]), "cudaEventCreate", err);
    if (s) goto fail;
    f->n_lanes = f->B < lanes ? f->B : lanes;
    if ((s = stylenet_cuda_create(&f->net, ctx, net, 1, prec, err)) || (s = stylenet_cuda_resize(f->net, f->B, f->S, f->S, err)) ||
        (s = nst_cuda_alloc(ctx, (void **)&f->dout, (size_t)f->B * 3 * hw, sizeof(float), "the training gradients", err)) ||
        (s = nst_cuda_alloc(ctx, (void **)&f->m, 2 * n, sizeof(float), "the Adam state", err)) ||
        (s = nst_cuda_check(cudaEventCreateWithFlags(&f->ready, cudaEventDisableTiming), "cudaEventCreate", err)) ||
        (s = nst_cuda_check(cudaEventCreateWithFlags(&f->uploaded, cudaEventDisableTiming), "cudaEventCreate", err)))
        goto fail;
    for (int k = 0; k < f->n_lanes; k++)
        if ((s = lane_build(&f->lanes[k], f, cfg, vgg, keep, err))) goto fail;
    f->v = f->m + n;
    if ((s = nst_cuda_check(cudaMemsetAsync(f->m, 0, 2 * n * sizeof(float), ctx->stream), "cudaMemsetAsync", err))) goto fail;
    for (int l = 0; l < f->depth; l++) {
        if (!plan->layer[l].style) continue;
        size_t C = (size_t)f->lanes[0].va.C[l];
        if (!style_A[l]) {
            s = nst_fail(err, NST_ERR_ARG, "no style target at %s", nst_layer_name(l));
            goto fail;
        }
        if ((s = nst_cuda_alloc(ctx, (void **)&f->A[l], C * C, sizeof(float), "the style targets", err)) ||
            (s = nst_cuda_check(cudaMemcpy(f->A[l], style_A[l], C * C * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy", err)))
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
    stylenet_train_cuda_free(f);
    return s;
}

/* ---- a step ------------------------------------------------------------------------------ */

/* the losses' gradient at VGG layer l (vgg19_cuda_tap_fn), as stylenet_train.c's tap_backward */
static nst_status tap_grad(void *vl, const vgg19_cuda_acts *a, int l, float *grad, nst_error *err) {
    lane *ln = (lane *)vl;
    const stylenet_train_cuda *f = ln->f;
    float inv_b = 1.0f / (float)f->B; /* the loss is the batch's mean */
    nst_status s = NST_OK;
    if (f->plan.layer[l].content)
        s = cuda_content_loss_backward(ln->ctx, grad, a->out[l], ln->P[l], vgg19_cuda_layer_size(a, l), f->plan.layer[l].content_w * inv_b, err);
    if (!s && f->plan.layer[l].style) {
        int C = a->C[l], N = a->Hl[l] * a->Wl[l];
        s = cuda_style_loss_backward(ln->ctx, grad, ln->dG[l], ln->G[l], f->A[l], a->out[l], C, N, gram_norm(C, N),
                                     f->plan.layer[l].style_w * inv_b, err);
    }
    return s;
}

/* photo b's losses (into its slots) and d(loss)/d(output b) (into dout), on the lane's
 * stream: x, y are the batch's photos and stylised photos (N,3,S,S) */
static nst_status lane_photo(lane *ln, int b, const float *x, const float *y, nst_error *err) {
    stylenet_train_cuda *f = ln->f;
    nst_cuda *ctx = ln->ctx;
    size_t hw = (size_t)f->S * f->S, n = 3 * hw;
    int mark = b < f->n_lanes; /* (the profile follows each lane's first photo) */
    LANE_MARK(0);
    /* content target: the photo's features */
    TRY(to_vgg(ln, x + b * n, 255.0f, err));
    for (int l = 0; l < f->content_depth; l++) {
        TRY(vgg19_cuda_forward_layer(ln->vgg, &ln->va, l, err));
        if (ln->P[l])
            NST_CUDA_TRY(cudaMemcpyAsync(ln->P[l], ln->va.out[l], vgg19_cuda_layer_size(&ln->va, l) * sizeof(float),
                                         cudaMemcpyDeviceToDevice, ctx->stream), err);
    }
    LANE_MARK(1);
    /* the stylised photo's losses, once the network's output is there (the content
     * targets above ran beside the network's forward pass) */
    NST_CUDA_TRY(cudaStreamWaitEvent(ctx->stream, f->ready, 0), err);
    const float *yb = y + b * n;
    TRY(to_vgg(ln, yb, 1.0f, err));
    double *slot = f->slots + (size_t)b * NST_NUM_LAYERS * 2;
    for (int l = 0; l < f->depth; l++) {
        TRY(vgg19_cuda_forward_layer(ln->vgg, &ln->va, l, err));
        if (f->plan.layer[l].content)
            TRY(cuda_content_loss_forward(ctx, &ln->red, ln->va.out[l], ln->P[l], vgg19_cuda_layer_size(&ln->va, l),
                                          slot + 2 * l, err));
        if (f->plan.layer[l].style) {
            int C = ln->va.C[l], N = ln->va.Hl[l] * ln->va.Wl[l];
            TRY(cuda_style_loss_forward(ctx, &ln->red, ln->G[l], ln->va.out[l], f->A[l], C, N, gram_norm(C, N),
                                        slot + 2 * l + 1, err));
        }
    }
    LANE_MARK(2);
    float *db = f->dout + b * n;
    TRY(vgg19_cuda_backward(ln->vgg, &ln->va, f->plan.tap, tap_grad, ln, ln->vgrad, err));
    from_vgg_kernel<<<nst_cuda_blocks(hw), THREADS, 0, ctx->stream>>>(db, ln->vgrad, hw);
    NST_CUDA_TRY(cudaGetLastError(), err);
    LANE_MARK(3);
    if (f->plan.tv_weight > 0.0f) {
        double *tv = f->slots + (size_t)f->B * NST_NUM_LAYERS * 2 + b;
        TRY(cuda_tv_loss_forward(ctx, &ln->red, yb, 3, f->S, f->S, tv, err));
        TRY(cuda_tv_loss_backward(ctx, db, yb, 3, f->S, f->S, f->plan.tv_weight / f->B, err));
    }
    LANE_MARK(4);
    return NST_OK;
}

/* the batch's losses (into the device slots) and gradient (into the network's) */
/* the step's device work after the upload, on the main stream and the lanes (what the
 * CUDA graph holds) */
static nst_status step_body(stylenet_train_cuda *f, nst_error *err) {
    cudaStream_t st = f->ctx->stream;
    float *x = stylenet_cuda_input(f->net);
    NST_CUDA_TRY(cudaMemsetAsync(f->slots, 0, f->n_slots * sizeof(double), st), err);
    STEP_MARK(PH_UPLOAD);
    /* the lanes start with the photos' content targets as soon as the batch is there,
     * beside the network's forward pass; each waits for its output (ready) before the
     * stylised photo's part ... */
    NST_CUDA_TRY(cudaEventRecord(f->uploaded, st), err);
    for (int k = 0; k < f->n_lanes; k++) NST_CUDA_TRY(cudaStreamWaitEvent(f->lanes[k].ctx->stream, f->uploaded, 0), err);
    TRY(stylenet_cuda_forward(f->net, err));
    STEP_MARK(PH_FWD);
    NST_CUDA_TRY(cudaEventRecord(f->ready, st), err);
    const float *y = stylenet_cuda_output(f->net);
    for (int b = 0; b < f->B; b++) TRY(lane_photo(&f->lanes[b % f->n_lanes], b, x, y, err));
    /* ... and the network's backward pass waits for all of them */
    for (int k = 0; k < f->n_lanes; k++) {
        NST_CUDA_TRY(cudaEventRecord(f->lanes[k].done, f->lanes[k].ctx->stream), err);
        NST_CUDA_TRY(cudaStreamWaitEvent(st, f->lanes[k].done, 0), err);
    }
    STEP_MARK(PH_LOSS);
    TRY(stylenet_cuda_zero_grads(f->net, err));
    TRY(stylenet_cuda_backward(f->net, f->dout, NULL, err));
    STEP_MARK(PH_BWD);
    return NST_OK;
}

/* The step body captured once as a CUDA graph (its second step: the first runs eagerly,
 * loading every kernel) and replayed: one launch instead of ~1000 kernel launches and
 * cuDNN/cuBLAS calls from the host. The same kernels in the same order: the same bits.
 * Not with profiling (events inside a graph are not timed), nor with NST_CUDA_GRAPH=0;
 * a capture that fails falls back to the eager step for the rest of the run. */
static nst_status run_body(stylenet_train_cuda *f, nst_error *err) {
    cudaStream_t st = f->ctx->stream;
    if (f->exec) return nst_cuda_check(cudaGraphLaunch(f->exec, st), "cudaGraphLaunch", err);
    if (!f->use_graph || f->steps_done < 1) return step_body(f, err);
    NST_CUDA_TRY(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), err);
    nst_status s = step_body(f, err);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(st, &graph);
    if (!s && e == cudaSuccess && graph && cudaGraphInstantiate(&f->exec, graph, 0) == cudaSuccess) {
        cudaGraphDestroy(graph);
        return nst_cuda_check(cudaGraphLaunch(f->exec, st), "cudaGraphLaunch", err);
    }
    if (graph) cudaGraphDestroy(graph);
    f->exec = NULL;
    f->use_graph = 0;
    cudaGetLastError(); /* (the capture's error: the eager step follows) */
    nst_log(f->tuning, "nst: the training step could not be captured as a CUDA graph (%s); it runs without one",
            s ? err->msg : cudaGetErrorString(e));
    return step_body(f, err);
}

static nst_status loss_grad(stylenet_train_cuda *f, const float *batch, nst_error *err) {
    cudaStream_t st = f->ctx->stream;
    size_t n = (size_t)3 * f->S * f->S;
    float *x = stylenet_cuda_input(f->net);
    f->prof_adam = 0;
    STEP_MARK(PH_START);
    NST_CUDA_TRY(cudaMemcpyAsync(x, batch, f->B * n * sizeof(float), cudaMemcpyHostToDevice, st), err);
    TRY(run_body(f, err));
    f->steps_done++;
    return NST_OK;
}

static double ev_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0.0f;
    return cudaEventElapsedTime(&ms, a, b) == cudaSuccess ? ms : 0.0;
}

/* after the step's synchronisation: its phases into the sums (the first step, which
 * loads the kernels, is left out) */
static void profile_add(stylenet_train_cuda *f) {
    if (!f->prof || f->prof_seen++ == 0) return;
    for (int k = 1; k < PH_ADAM; k++) f->prof_ms[k] += ev_ms(f->pev[k - 1], f->pev[k]);
    if (f->prof_adam) f->prof_ms[PH_ADAM] += ev_ms(f->pev[PH_BWD], f->pev[PH_ADAM]);
    for (int k = 1; k < LANE_EV; k++) /* lane 0's first photo */
        f->prof_ms[STEP_EV + k] += ev_ms(f->lanes[0].pev[k - 1], f->lanes[0].pev[k]);
    f->prof_steps++;
}

/* lane 0's last photo through the VGG19, one line per conv layer (rp: the ReLU and pool
 * after it; loss: the losses' values (forward) and gradients (backward) at its taps) */
static void vgg_profile_log(lane *ln, const nst_tuning *tu) {
    const vgg19_cuda_acts *a = &ln->va;
    const vgg19_cuda_prof *p = &ln->vprof;
    int top = a->depth - 1;
    double sum[6] = {0};
    nst_log(tu, "training step: the VGG19 of one photo (lane 0, the stylised photo's passes), ms per conv layer");
    nst_log(tu, "%-8s %12s %7s %7s %7s %7s %7s %7s  %s", "layer", "output", "conv-f", "rp-f", "loss-f", "conv-b", "rp-b",
            "loss-b", "algorithms");
    for (int l = 0; l <= top; l++) {
        if (vgg19_layer_kind(l) != VGG_CONV) continue;
        double t[6] = {0};
        for (int k = l; k <= top && (k == l || vgg19_layer_kind(k) != VGG_CONV); k++) {
            t[k == l ? 0 : 1] += ev_ms(p->fwd[k][0], p->fwd[k][1]);
            if (k < top) t[2] += ev_ms(p->fwd[k][1], p->fwd[k + 1][0]);
            t[k == l ? 3 : 4] += ev_ms(p->bwd[k][1], p->bwd[k][2]);
            t[5] += ev_ms(p->bwd[k][0], p->bwd[k][1]);
        }
        char shape[48], algos[160];
        snprintf(shape, sizeof shape, "%dx%dx%d", a->C[l], a->Hl[l], a->Wl[l]);
        vgg19_cuda_describe_algos(a, l, algos, sizeof algos);
        nst_log(tu, "%-8s %12s %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f  %.60s", nst_layer_name(l), shape, t[0], t[1], t[2],
                t[3], t[4], t[5], algos);
        for (int k = 0; k < 6; k++) sum[k] += t[k];
    }
    nst_log(tu, "%-8s %12s %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f", "sum", "", sum[0], sum[1], sum[2], sum[3], sum[4],
            sum[5]);
}

static void profile_log(stylenet_train_cuda *f) {
    const nst_tuning *tu = f->tuning;
    nst_error err;
    if (f->prof_steps > 0) {
        double c = f->prof_steps, *m = f->prof_ms;
        nst_log(tu, "training step profile, batch %d at %d px, mean of %d steps (GPU events, ms):", f->B, f->S,
                f->prof_steps);
        nst_log(tu, "  upload %.3f | net fwd (content targets beside it) %.3f | VGG19 after it (%d lanes) %.3f | "
                "net bwd %.3f | Adam %.3f | total %.3f",
                m[PH_UPLOAD] / c, m[PH_FWD] / c, f->n_lanes, m[PH_LOSS] / c, m[PH_BWD] / c, m[PH_ADAM] / c,
                (m[PH_UPLOAD] + m[PH_FWD] + m[PH_LOSS] + m[PH_BWD] + m[PH_ADAM]) / c);
        nst_log(tu, "  one photo (lane 0): content target %.3f | (wait for the net,) VGG19 fwd + losses %.3f | "
                "VGG19 bwd %.3f | TV %.3f",
                m[STEP_EV + 1] / c, m[STEP_EV + 2] / c, m[STEP_EV + 3] / c, m[STEP_EV + 4] / c);
    }
    if (f->lanes[0].has_vprof) vgg_profile_log(&f->lanes[0], tu);
    if (stylenet_cuda_profile_log(f->net, "training step: the style network", &err)) nst_log(tu, "%s", err.msg);
}

/* waits for the step and adds up its weighted losses, as stylenet_train.c */
static nst_status read_losses(stylenet_train_cuda *f, double losses[3], nst_error *err) {
    NST_CUDA_TRY(cudaMemcpyAsync(f->host_slots, f->slots, f->n_slots * sizeof(double), cudaMemcpyDeviceToHost, f->ctx->stream), err);
    NST_CUDA_TRY(cudaStreamSynchronize(f->ctx->stream), err);
    profile_add(f);
    losses[0] = losses[1] = losses[2] = 0.0;
    perceptual_plan *p = &f->plan;
    for (int b = 0; b < f->B; b++) {
        const double *slot = f->host_slots + (size_t)b * NST_NUM_LAYERS * 2;
        for (int l = 0; l < f->depth; l++) {
            p->layer[l].content_value = slot[2 * l];
            p->layer[l].style_value = slot[2 * l + 1];
        }
        p->tv_value = f->host_slots[(size_t)f->B * NST_NUM_LAYERS * 2 + b];
        perceptual_finish(p);
        losses[0] += p->content_loss / f->B;
        losses[1] += p->style_loss / f->B;
        losses[2] += p->tv_loss / f->B;
    }
    return NST_OK;
}

nst_status stylenet_train_cuda_loss_grad(stylenet_train_cuda *f, const float *batch, double losses[3], nst_error *err) {
    TRY(loss_grad(f, batch, err));
    return read_losses(f, losses, err);
}

nst_status stylenet_train_cuda_step(stylenet_train_cuda *f, const float *batch, int adam_t, double losses[3], nst_error *err) {
    TRY(loss_grad(f, batch, err));
    adam_state a = {}; /* the step's coefficients, as optim/adam.c */
    a.lr = f->lr;
    a.t = adam_t - 1;
    TRY(cu_adam_update(f->ctx, stylenet_cuda_params(f->net), f->m, f->v, stylenet_cuda_grads(f->net), stylenet_cuda_n_params(f->net),
                       adam_next(&a), err));
    STEP_MARK(PH_ADAM);
    f->prof_adam = 1;
    return read_losses(f, losses, err);
}

/* ---- state ---------------------------------------------------------------------------------- */

nst_status stylenet_train_cuda_get_state(stylenet_train_cuda *f, float *params, float *m, float *v, nst_error *err) {
    size_t bytes = stylenet_cuda_n_params(f->net) * sizeof(float);
    cudaStream_t st = f->ctx->stream;
    if (params) NST_CUDA_TRY(cudaMemcpyAsync(params, stylenet_cuda_params(f->net), bytes, cudaMemcpyDeviceToHost, st), err);
    if (m) NST_CUDA_TRY(cudaMemcpyAsync(m, f->m, bytes, cudaMemcpyDeviceToHost, st), err);
    if (v) NST_CUDA_TRY(cudaMemcpyAsync(v, f->v, bytes, cudaMemcpyDeviceToHost, st), err);
    NST_CUDA_TRY(cudaStreamSynchronize(st), err);
    return NST_OK;
}

nst_status stylenet_train_cuda_set_state(stylenet_train_cuda *f, const float *params, const float *m, const float *v, nst_error *err) {
    size_t bytes = stylenet_cuda_n_params(f->net) * sizeof(float);
    cudaStream_t st = f->ctx->stream;
    if (params) NST_CUDA_TRY(cudaMemcpyAsync(stylenet_cuda_params(f->net), params, bytes, cudaMemcpyHostToDevice, st), err);
    if (m) NST_CUDA_TRY(cudaMemcpyAsync(f->m, m, bytes, cudaMemcpyHostToDevice, st), err);
    if (v) NST_CUDA_TRY(cudaMemcpyAsync(f->v, v, bytes, cudaMemcpyHostToDevice, st), err);
    NST_CUDA_TRY(cudaStreamSynchronize(st), err);
    return NST_OK;
}

nst_status stylenet_train_cuda_get_grads(stylenet_train_cuda *f, float *grads, nst_error *err) { return stylenet_cuda_download_grads(f->net, grads, err); }

/* ---- the CUDA trainer table (transfer/stylenet_backend.h) ------------------------------------ */

/* the GPU context and the trainer on it, which holds the parameters and Adam's state */
typedef struct {
    stylenet_train_runner base;
    nst_cuda *ctx;
    stylenet_train_cuda *f;
} cuda_train_runner;

static stylenet_train_cuda *train_of(stylenet_train_runner *r) { return ((cuda_train_runner *)r)->f; }

static void cuda_train_free(stylenet_train_runner *base) {
    cuda_train_runner *r = (cuda_train_runner *)base;
    if (!r) return;
    stylenet_train_cuda_free(r->f); /* (before the context it runs on) */
    nst_cuda_destroy(r->ctx);
    free(r);
}

static nst_status cuda_train_build(stylenet_train_runner **out, const stylenet_train_setup *su, nst_error *err) {
    *out = NULL;
    cuda_train_runner *r = (cuda_train_runner *)calloc(1, sizeof *r);
    if (!r) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    r->base.ops = &stylenet_trainer_cuda_backend;
    nst_status s = nst_cuda_create(&r->ctx, err);
    if (!s)
        s = stylenet_train_cuda_build(&r->f, r->ctx, su->cfg, su->vgg, su->net, su->plan, su->style_A,
                                      su->batch, err);
    if (s) {
        cuda_train_free(&r->base);
        return s;
    }
    *out = &r->base;
    return NST_OK;
}

static nst_status cuda_train_step(stylenet_train_runner *r, const float *batch, int adam_t, double losses[3],
                                  nst_error *err) {
    return stylenet_train_cuda_step(train_of(r), batch, adam_t, losses, err);
}
static nst_status cuda_train_get_state(stylenet_train_runner *r, float *params, float *m, float *v, nst_error *err) {
    return stylenet_train_cuda_get_state(train_of(r), params, m, v, err);
}
static nst_status cuda_train_set_state(stylenet_train_runner *r, const float *params, const float *m, const float *v,
                                       nst_error *err) {
    return stylenet_train_cuda_set_state(train_of(r), params, m, v, err);
}
static nst_status cuda_train_get_grads(stylenet_train_runner *r, float *grads, nst_error *err) {
    return stylenet_train_cuda_get_grads(train_of(r), grads, err);
}

/* (C++: no designated initialisers) name, own_state, build, step, get_state, set_state,
 * get_grads, free */
extern "C" const stylenet_trainer_backend stylenet_trainer_cuda_backend = {
    "cuda",          1, cuda_train_build, cuda_train_step, cuda_train_get_state, cuda_train_set_state,
    cuda_train_get_grads, cuda_train_free,
};
