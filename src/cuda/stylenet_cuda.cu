/* stylenet_cuda.cu - the fast-style network on the GPU: stylenet_forward / stylenet_backward
 * (net/stylenet.c) layer for layer, on a batch, with the ops of layers_cuda.cu. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.cuh"
#include "cuda/stylenet_cuda.h"
#include "cuda/layers_cuda.h"
#include "transfer/stylenet_backend.h"

/* timing events per layer (profiling): forward start, after the conv; backward start,
 * after the norm (or sigmoid + bias), after the weight gradient, after the input gradient */
enum { EV_F0, EV_F1, EV_B0, EV_B1, EV_B2, EV_B3, N_EV };

/* one layer's shape and its parameters' offsets in the parameter vector */
typedef struct {
    int C_in, C_out, K, S, upsample, pad, norm, relu, residual;
    size_t w_off, b_off, g_off, be_off; /* weight; bias (no norm) or gamma, beta */
} dev_layer;

struct stylenet_cuda {
    nst_cuda *ctx;
    int train, n_layers;
    nst_precision precision;
    int search; /* cudnnFind instead of cuDNN's heuristics ($NST_CUDNN_SEARCH=1) */
    nst_tuning log; /* the network's tuning, for its log (messages, the profile) */
    int own;    /* own kernels where they apply (not the tuning's cuda_no_own_conv) */
    int own_out; /* NST_PRECISION_FP16: the last layer (9x9/1 -> 3) + sigmoid on cu_h_conv9_output, not cuDNN */
    dev_layer L[STYLENET_MAX_LAYERS];
    size_t n_params;
    float *params, *grads; /* device */
    /* the size-dependent part (stylenet_cuda_resize) */
    int N, H, W;
    int Hi[STYLENET_MAX_LAYERS], Wi[STYLENET_MAX_LAYERS], Hp[STYLENET_MAX_LAYERS], Wp[STYLENET_MAX_LAYERS];
    int Ho[STYLENET_MAX_LAYERS], Wo[STYLENET_MAX_LAYERS];
    float *input, *pad[STYLENET_MAX_LAYERS], *z[STYLENET_MAX_LAYERS], *y[STYLENET_MAX_LAYERS];
    float *mean[STYLENET_MAX_LAYERS], *rstd[STYLENET_MAX_LAYERS];
    float *g_a, *g_skip, *g_z, *g_pad;
    cu_conv *conv[STYLENET_MAX_LAYERS];
    unsigned char conv_own[STYLENET_MAX_LAYERS]; /* layers of the same geometry share one */
    void *memory, *ws, *norm_scratch;
    size_t bytes, ws_bytes;
    /* NST_PRECISION_FP16 (inference): channels padded to multiples of 8 (cu_h_channels) and the
     * weights in fp16 (Co_e,K,K,Ci_e), layer l's at wh + wh_off[l] (2-byte units) */
    int Ci_e[STYLENET_MAX_LAYERS], Co_e[STYLENET_MAX_LAYERS];
    unsigned short *wh;
    size_t wh_off[STYLENET_MAX_LAYERS + 1];
    float *img;        /* apply's (H,W,3) staging buffer, device */
    size_t img_cap;    /* its floats */
    /* inference: the forward pass of this size captured as a CUDA graph on its second
     * run and replayed (not with $NST_CUDA_GRAPH=0 or profiling) */
    int use_graph, fwd_runs;
    cudaGraphExec_t fwd_exec;
    /* $NST_CUDA_PROFILE=1: timing events around each layer's parts (stylenet_cuda_profile_print) */
    int prof, prof_fwd, prof_bwd; /* profiling on; a forward / backward pass recorded */
    cudaEvent_t ev[STYLENET_MAX_LAYERS + 1][N_EV];
};

nst_status stylenet_cuda_create(stylenet_cuda **out, nst_cuda *ctx, const stylenet *net, int train, nst_precision precision,
                          nst_error *err) {
    *out = NULL;
    stylenet_cuda *g = (stylenet_cuda *)calloc(1, sizeof *g);
    if (!g) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    g->ctx = ctx;
    g->train = train;
    g->precision = precision;
    const nst_tuning *tu = &net->tuning; /* the settings the network was given */
    g->log = *tu;                         /* (for its messages: the tuning's log) */
    g->search = tu->cudnn_search == NST_CUDNN_SEARCH_MEASURE;
    g->own = !tu->cuda_no_own_conv;
    int n_l = net->n_layers;
    g->own_out = precision == NST_PRECISION_FP16 && n_l > 0 && net->layer[n_l - 1].K == 9 && net->layer[n_l - 1].S == 1 &&
                 !net->layer[n_l - 1].norm && net->layer[n_l - 1].C_out == 3 && g->own;
    g->n_layers = net->n_layers;
    g->n_params = net->n_params;
    g->prof = tu->cuda_profile;
    g->use_graph = !train && !g->prof && !tu->cuda_no_graph;
    for (int l = 0; g->prof && l <= net->n_layers; l++)
        for (int k = 0; k < N_EV; k++)
            if (cudaEventCreate(&g->ev[l][k]) != cudaSuccess) {
                stylenet_cuda_free(g);
                return nst_fail(err, NST_ERR_IO, "cudaEventCreate failed (profiling)");
            }
    for (int l = 0; l < net->n_layers; l++) {
        const stylenet_layer *s = &net->layer[l];
        dev_layer *d = &g->L[l];
        d->C_in = s->C_in, d->C_out = s->C_out, d->K = s->K, d->S = s->S, d->upsample = s->upsample;
        d->pad = s->pad, d->norm = s->norm, d->relu = s->relu, d->residual = s->residual;
        d->w_off = (size_t)(s->weight - net->params);
        if (s->norm) {
            d->g_off = (size_t)(s->gamma - net->params);
            d->be_off = (size_t)(s->beta - net->params);
        } else {
            d->b_off = (size_t)(s->bias - net->params);
        }
    }
    if (precision == NST_PRECISION_FP16) {
        /* the fp16 path's assumptions: an RGB input without upsampling, and only the last
         * layer without a norm (3 channels out, then the sigmoid) */
        int n = net->n_layers;
        for (int l = 0; l < n; l++) {
            const dev_layer *L = &g->L[l];
            if (train || (l == 0 && (L->C_in != 3 || L->upsample)) || (!L->norm && (l != n - 1 || L->C_out != 3))) {
                stylenet_cuda_free(g);
                return nst_fail(err, NST_ERR_ARG, "fp16 runs the standard style network's inference only");
            }
            g->Ci_e[l] = cu_h_channels(L->C_in);
            g->Co_e[l] = cu_h_channels(L->C_out);
            g->wh_off[l + 1] = g->wh_off[l] + (size_t)g->Co_e[l] * L->K * L->K * g->Ci_e[l];
        }
    }
    nst_status st = nst_cuda_alloc(ctx, (void **)&g->params, net->n_params, sizeof(float), "the style network's parameters", err);
    if (!st && precision == NST_PRECISION_FP16)
        st = nst_cuda_alloc(ctx, (void **)&g->wh, g->wh_off[net->n_layers], 2, "the style network's fp16 weights", err);
    if (!st && train) st = nst_cuda_alloc(ctx, (void **)&g->grads, net->n_params, sizeof(float), "the style network's gradients", err);
    if (!st) st = stylenet_cuda_upload_params(g, net->params, err);
    if (!st && train) st = stylenet_cuda_zero_grads(g, err);
    if (st) {
        stylenet_cuda_free(g);
        return st;
    }
    *out = g;
    return NST_OK;
}

/* frees the size-dependent part */
static void release_size(stylenet_cuda *g) {
    if (g->fwd_exec) cudaGraphExecDestroy(g->fwd_exec);
    g->fwd_exec = NULL;
    g->fwd_runs = 0;
    for (int l = 0; l < g->n_layers; l++) {
        if (g->conv_own[l]) cu_conv_destroy(g->conv[l]);
        g->conv[l] = NULL;
        g->conv_own[l] = 0;
    }
    cudaFree(g->memory);
    cudaFree(g->ws);
    cudaFree(g->norm_scratch);
    g->memory = g->ws = g->norm_scratch = NULL;
    g->bytes = g->ws_bytes = 0;
    g->N = g->H = g->W = 0;
}

void stylenet_cuda_free(stylenet_cuda *g) {
    if (!g) return;
    if (g->ctx) cudaStreamSynchronize(g->ctx->stream);
    release_size(g);
    cudaFree(g->params);
    cudaFree(g->grads);
    cudaFree(g->img);
    cudaFree(g->wh);
    for (int l = 0; l <= STYLENET_MAX_LAYERS; l++)
        for (int k = 0; k < N_EV; k++)
            if (g->ev[l][k]) cudaEventDestroy(g->ev[l][k]);
    free(g);
}

nst_status stylenet_cuda_upload_params(stylenet_cuda *g, const float *params, nst_error *err) {
    NST_CUDA_TRY(cudaMemcpyAsync(g->params, params, g->n_params * sizeof(float), cudaMemcpyHostToDevice, g->ctx->stream), err);
    for (int l = 0; g->wh && l < g->n_layers; l++) {
        const dev_layer *L = &g->L[l];
        nst_status s = cu_h_weights(g->ctx, g->wh + g->wh_off[l], g->params + L->w_off, L->C_out, L->C_in, L->K, err);
        if (s) return s;
    }
    NST_CUDA_TRY(cudaStreamSynchronize(g->ctx->stream), err);
    return NST_OK;
}

nst_status stylenet_cuda_download_params(stylenet_cuda *g, float *params, nst_error *err) {
    NST_CUDA_TRY(cudaMemcpyAsync(params, g->params, g->n_params * sizeof(float), cudaMemcpyDeviceToHost, g->ctx->stream), err);
    NST_CUDA_TRY(cudaStreamSynchronize(g->ctx->stream), err);
    return NST_OK;
}

nst_status stylenet_cuda_download_grads(stylenet_cuda *g, float *grads, nst_error *err) {
    if (!g->grads) return nst_fail(err, NST_ERR_ARG, "the GPU style network was not built for training");
    NST_CUDA_TRY(cudaMemcpyAsync(grads, g->grads, g->n_params * sizeof(float), cudaMemcpyDeviceToHost, g->ctx->stream), err);
    NST_CUDA_TRY(cudaStreamSynchronize(g->ctx->stream), err);
    return NST_OK;
}

float *stylenet_cuda_params(stylenet_cuda *g) { return g->params; }
float *stylenet_cuda_grads(stylenet_cuda *g) { return g->grads; }
size_t stylenet_cuda_n_params(const stylenet_cuda *g) { return g->n_params; }
size_t stylenet_cuda_bytes(const stylenet_cuda *g) { return g->bytes + g->ws_bytes + (g->wh ? g->wh_off[g->n_layers] * 2 : 0); }
float *stylenet_cuda_input(stylenet_cuda *g) { return g->input; }
const float *stylenet_cuda_output(const stylenet_cuda *g) { return g->y[g->n_layers - 1]; }
const char *stylenet_cuda_conv_about(const stylenet_cuda *g, int l) {
    if (g->own_out && l == g->n_layers - 1) return "own 9x9 + sigmoid (fp16)";
    return l >= 0 && l < g->n_layers && g->conv[l] ? cu_conv_describe(g->conv[l]) : "";
}

nst_status stylenet_cuda_zero_grads(stylenet_cuda *g, nst_error *err) {
    if (!g->grads) return nst_fail(err, NST_ERR_ARG, "the GPU style network was not built for training");
    NST_CUDA_TRY(cudaMemsetAsync(g->grads, 0, g->n_params * sizeof(float), g->ctx->stream), err);
    return NST_OK;
}

/* Buffers start on 256-byte boundaries (cuDNN's vectorised kernels want aligned tensors):
 * a buffer of n floats takes al(n). */
static size_t al(size_t n) { return (n + 63) / 64 * 64; }
/* the floats that n fp16 values take */
static size_t hf(size_t n) { return (n + 1) / 2; }

nst_status stylenet_cuda_resize(stylenet_cuda *g, int N, int H, int W, nst_error *err) {
    if (g->memory && g->N == N && g->H == H && g->W == W) return NST_OK;
    release_size(g);
    if (N < 1 || H < 8 || W < 8 || H % 4 || W % 4)
        return nst_fail(err, NST_ERR_ARG, "style network input %dx%d (batch %d): sides must be multiples of 4, at least 8", W, H, N);
    /* shapes and the largest buffer of each kind, as stylenet_acts_build, times N */
    size_t n_in = (size_t)N * 3 * H * W, max_pad = 0, max_z = 0, max_g = n_in, total = al(n_in), scratch = 0;
    int fp16 = g->precision == NST_PRECISION_FP16;
    size_t max_pad_h = 0, max_z_h = 0; /* fp16: values, channels padded */
    int h = H, w = W;
    for (int l = 0; l < g->n_layers; l++) {
        const dev_layer *L = &g->L[l];
        g->Hi[l] = h;
        g->Wi[l] = w;
        if (L->upsample) h *= 2, w *= 2;
        g->Hp[l] = h + 2 * L->pad;
        g->Wp[l] = w + 2 * L->pad;
        g->Ho[l] = (g->Hp[l] - L->K) / L->S + 1;
        g->Wo[l] = (g->Wp[l] - L->K) / L->S + 1;
        size_t np = (size_t)N * L->C_in * g->Hp[l] * g->Wp[l], nz = (size_t)N * L->C_out * g->Ho[l] * g->Wo[l];
        size_t ni = (size_t)N * L->C_in * g->Hi[l] * g->Wi[l];
        if (np > INT_MAX || nz > INT_MAX)
            return nst_fail(err, NST_ERR_LIMIT, "style network at %dx%d (batch %d): layer %d needs a tensor of %zu values, more than cuDNN takes (2^31)",
                            W, H, N, l, np > nz ? np : nz);
        if (np > max_pad) max_pad = np;
        if (nz > max_z) max_z = nz;
        if (nz > max_g) max_g = nz;
        if (ni > max_g) max_g = ni;
        if (g->train) total += al(np) + 2 * al(nz) + 2 * al((size_t)N * L->C_out);
        size_t sb = cu_instance_norm_scratch_bytes(N * L->C_out, g->Ho[l] * g->Wo[l]);
        if (fp16) {
            size_t nph = (size_t)N * g->Ci_e[l] * g->Hp[l] * g->Wp[l], nzh = (size_t)N * g->Co_e[l] * g->Ho[l] * g->Wo[l];
            if (nph > INT_MAX || nzh > INT_MAX)
                return nst_fail(err, NST_ERR_LIMIT, "style network at %dx%d (batch %d): layer %d needs a tensor of %zu values, more than cuDNN takes (2^31)",
                                W, H, N, l, nph > nzh ? nph : nzh);
            if (nph > max_pad_h) max_pad_h = nph;
            if (nzh > max_z_h) max_z_h = nzh;
            sb = cu_h_norm_scratch_bytes(N, g->Co_e[l], g->Ho[l] * g->Wo[l]);
        }
        if (sb > scratch) scratch = sb;
        h = g->Ho[l];
        w = g->Wo[l];
    }
    if (g->train) total += 2 * al(max_g) + al(max_z) + al(max_pad);
    else if (fp16) {
        total += al(hf(max_pad_h)) + 4 * al(hf(max_z_h)) + al(n_in);
        for (int l = 0; l < g->n_layers; l++) total += 2 * al((size_t)N * g->L[l].C_out);
    } else {
        total += al(max_pad) + 4 * al(max_z);
        for (int l = 0; l < g->n_layers; l++) total += 2 * al((size_t)N * g->L[l].C_out);
    }
    char what[96];
    snprintf(what, sizeof what, "the style network at %dx%d (batch %d)", W, H, N);
    nst_status st = nst_cuda_alloc(g->ctx, &g->memory, total, sizeof(float), what, err);
    if (!st) st = nst_cuda_alloc(g->ctx, &g->norm_scratch, scratch, 1, what, err);
    if (st) {
        release_size(g);
        return st;
    }
    g->bytes = total * sizeof(float) + scratch;
    float *p = (float *)g->memory;
    g->input = p, p += al(n_in);
    if (g->train) {
        /* (the CPU's g_b is not needed: upsampling and padding are one backward kernel) */
        for (int l = 0; l < g->n_layers; l++) {
            const dev_layer *L = &g->L[l];
            size_t nz = (size_t)N * L->C_out * g->Ho[l] * g->Wo[l];
            g->pad[l] = p, p += al((size_t)N * L->C_in * g->Hp[l] * g->Wp[l]);
            g->z[l] = p, p += al(nz);
            g->y[l] = p, p += al(nz);
            g->mean[l] = p, p += al((size_t)N * L->C_out);
            g->rstd[l] = p, p += al((size_t)N * L->C_out);
        }
        g->g_a = p, p += al(max_g);
        g->g_skip = p, p += al(max_g);
        g->g_z = p, p += al(max_z);
        g->g_pad = p, p += al(max_pad);
    } else if (fp16) {
        /* as below, in fp16 NHWC; the last layer writes fp32 planes */
        float *pad = p, *z = (p += al(hf(max_pad_h))), *ys[3];
        p += al(hf(max_z_h));
        for (int k = 0; k < 3; k++) ys[k] = p, p += al(hf(max_z_h));
        float *out = p;
        p += al(n_in);
        for (int l = 0; l < g->n_layers; l++) {
            g->pad[l] = pad;
            g->z[l] = z;
            g->y[l] = l == g->n_layers - 1 ? out : ys[l % 3];
            g->mean[l] = p, p += al((size_t)N * g->L[l].C_out);
            g->rstd[l] = p, p += al((size_t)N * g->L[l].C_out);
        }
    } else {
        /* one padded input and one conv output for every layer, three rotating outputs */
        float *pad = p, *z = (p += al(max_pad)), *ys[3];
        p += al(max_z);
        for (int k = 0; k < 3; k++) ys[k] = p, p += al(max_z);
        for (int l = 0; l < g->n_layers; l++) {
            g->pad[l] = pad;
            g->z[l] = z;
            g->y[l] = ys[l % 3];
            g->mean[l] = p, p += al((size_t)N * g->L[l].C_out);
            g->rstd[l] = p, p += al((size_t)N * g->L[l].C_out);
        }
    }
    if ((size_t)(p - (float *)g->memory) != total) { /* (the two counts must agree) */
        release_size(g);
        return nst_fail(err, NST_ERR_ARG, "internal error: style network buffers miscounted");
    }
    /* the convolutions: algorithms chosen once per geometry (cu_conv_create); workspace up
     * to a quarter of the memory left, at most 2 GiB */
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    size_t limit = free_b / 4 < ((size_t)2 << 30) ? free_b / 4 : ((size_t)2 << 30), need = 0;
    for (int l = 0; l < g->n_layers && !st; l++) {
        const dev_layer *L = &g->L[l];
        for (int j = 0; j < l && !g->conv[l]; j++)
            if (g->L[j].C_in == L->C_in && g->L[j].C_out == L->C_out && g->L[j].K == L->K && g->L[j].S == L->S &&
                g->Hp[j] == g->Hp[l] && g->Wp[j] == g->Wp[l])
                g->conv[l] = g->conv[j];
        if (g->conv[l] || (g->own_out && l == g->n_layers - 1)) continue;
        size_t ws = 0;
        /* cuDNN's heuristics by default: the same algorithms every run, so the same bits
         * (reproducible models and images); measured with $NST_CUDNN_SEARCH=1 */
        st = cu_conv_create(&g->conv[l], g->ctx, N, fp16 ? g->Ci_e[l] : L->C_in, fp16 ? g->Co_e[l] : L->C_out, g->Hp[l],
                            g->Wp[l], L->K, L->S, g->precision, g->train, g->search, g->own, limit, &ws, err);
        if (!st) g->conv_own[l] = 1;
        if (ws > need) need = ws;
    }
    if (!st && need) st = nst_cuda_alloc(g->ctx, &g->ws, need, 1, "the convolutions' workspace", err);
    if (st) {
        release_size(g);
        return st;
    }
    g->ws_bytes = need;
    g->N = N, g->H = H, g->W = W;
    return NST_OK;
}

#define TRY(call)                                  \
    do {                                           \
        nst_status s_ = (call);                    \
        if (s_ != NST_OK) return s_;               \
    } while (0)

/* a profiling mark (nothing unless $NST_CUDA_PROFILE=1) */
#define MARK(l, k)                                                                  \
    do {                                                                            \
        if (g->prof) NST_CUDA_TRY(cudaEventRecord(g->ev[l][k], ctx->stream), err); \
    } while (0)

/* a norm whose output only the next layer reads (no residual sum of its own, not a
 * block's input): in inference it writes the next layer's padded input directly */
static int fuses_pad(const stylenet_cuda *g, int l) {
    const dev_layer *L = &g->L[l];
    return L->norm && !g->train && !L->residual && l + 1 < g->n_layers && !(l + 2 < g->n_layers && g->L[l + 2].residual);
}

/* NST_PRECISION_FP16: the forward pass in fp16 NHWC (cu_h_* of layers_cuda.h) */
static nst_status forward_fp16(stylenet_cuda *g, nst_error *err) {
    nst_cuda *ctx = g->ctx;
    int N = g->N, padded = 0;
    for (int l = 0; l < g->n_layers; l++) {
        const dev_layer *L = &g->L[l];
        MARK(l, EV_F0);
        if (l == 0) TRY(cu_h_input_pad(ctx, g->pad[0], g->input, N, g->H, g->W, L->pad, g->Ci_e[0], err));
        else if (!padded) TRY(cu_h_pad(ctx, g->pad[l], g->y[l - 1], N, g->Hi[l], g->Wi[l], g->Ci_e[l], L->pad, L->upsample, err));
        padded = 0;
        if (g->own_out && l == g->n_layers - 1) { /* the conv, the bias and the sigmoid in one kernel */
            TRY(cu_h_conv9_output(ctx, g->y[l], g->pad[l], g->wh + g->wh_off[l], g->params + L->b_off, N, g->Hp[l], g->Wp[l],
                                  g->Ci_e[l], err));
            MARK(l, EV_F1);
            continue;
        }
        TRY(cu_conv_forward(ctx, g->conv[l], g->z[l], g->pad[l], (const float *)(g->wh + g->wh_off[l]), g->ws, g->ws_bytes, err));
        MARK(l, EV_F1);
        int HW = g->Ho[l] * g->Wo[l];
        if (!L->norm) { /* the last layer (stylenet_cuda_create checked) */
            TRY(cu_h_output(ctx, g->y[l], g->z[l], g->params + L->b_off, N, g->Ho[l], g->Wo[l], g->Co_e[l], err));
            continue;
        }
        TRY(cu_h_norm_stats(ctx, g->mean[l], g->rstd[l], g->z[l], N, L->C_out, g->Co_e[l], HW, g->norm_scratch, err));
        const float *gamma = g->params + L->g_off, *beta = g->params + L->be_off;
        if (fuses_pad(g, l)) {
            const dev_layer *next = &g->L[l + 1];
            TRY(cu_h_norm_apply(ctx, g->pad[l + 1], g->z[l], g->mean[l], g->rstd[l], gamma, beta, NULL, N, L->C_out, g->Co_e[l],
                                g->Ho[l], g->Wo[l], next->pad, next->upsample, L->relu, err));
            padded = 1;
        } else {
            TRY(cu_h_norm_apply(ctx, g->y[l], g->z[l], g->mean[l], g->rstd[l], gamma, beta, L->residual ? g->y[l - 2] : NULL,
                                N, L->C_out, g->Co_e[l], g->Ho[l], g->Wo[l], 0, 0, L->relu, err));
        }
    }
    MARK(g->n_layers, EV_F0);
    g->prof_fwd = g->prof;
    return NST_OK;
}

static nst_status forward_eager(stylenet_cuda *g, nst_error *err);

/* Inference replays the forward pass of a size as one CUDA graph from its second run on:
 * one launch instead of ~50 kernels and 16 cuDNN calls from the host, whose cost per
 * call is about that of a small layer's kernel. The same kernels: the same bits. A
 * capture that fails falls back to the eager pass (with a note). */
nst_status stylenet_cuda_forward(stylenet_cuda *g, nst_error *err) {
    if (!g->memory) return nst_fail(err, NST_ERR_ARG, "the GPU style network has no buffers (stylenet_cuda_resize)");
    cudaStream_t st = g->ctx->stream;
    if (g->fwd_exec) return nst_cuda_check(cudaGraphLaunch(g->fwd_exec, st), "cudaGraphLaunch", err);
    if (!g->use_graph || g->fwd_runs++ < 1) return forward_eager(g, err);
    NST_CUDA_TRY(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), err);
    nst_status s = forward_eager(g, err);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(st, &graph);
    if (!s && e == cudaSuccess && graph && cudaGraphInstantiate(&g->fwd_exec, graph, 0) == cudaSuccess) {
        cudaGraphDestroy(graph);
        return nst_cuda_check(cudaGraphLaunch(g->fwd_exec, st), "cudaGraphLaunch", err);
    }
    if (graph) cudaGraphDestroy(graph);
    g->fwd_exec = NULL;
    g->use_graph = 0;
    cudaGetLastError(); /* (the capture's error: the eager pass follows) */
    nst_log(&g->log, "nst: the style network could not be captured as a CUDA graph (%s); it runs without one",
            s ? err->msg : cudaGetErrorString(e));
    return forward_eager(g, err);
}

static nst_status forward_eager(stylenet_cuda *g, nst_error *err) {
    if (g->precision == NST_PRECISION_FP16) return forward_fp16(g, err);
    nst_cuda *ctx = g->ctx;
    int N = g->N, padded = 0; /* padded: this layer's input was padded by the layer before */
    for (int l = 0; l < g->n_layers; l++) {
        const dev_layer *L = &g->L[l];
        const float *src = l == 0 ? g->input : g->y[l - 1];
        MARK(l, EV_F0);
        if (padded) padded = 0;
        else if (L->upsample) TRY(cu_upsample2x_reflect_pad_forward(ctx, g->pad[l], src, N * L->C_in, g->Hi[l], g->Wi[l], L->pad, err));
        else TRY(cu_reflect_pad_forward(ctx, g->pad[l], src, N * L->C_in, g->Hi[l], g->Wi[l], L->pad, err));
        TRY(cu_conv_forward(ctx, g->conv[l], g->z[l], g->pad[l], g->params + L->w_off, g->ws, g->ws_bytes, err));
        MARK(l, EV_F1);
        int HW = g->Ho[l] * g->Wo[l];
        if (fuses_pad(g, l)) {
            const dev_layer *next = &g->L[l + 1];
            TRY(cu_instance_norm_stats(ctx, g->mean[l], g->rstd[l], g->z[l], N * L->C_out, HW, g->norm_scratch, err));
            TRY(cu_instance_norm_pad(ctx, g->pad[l + 1], g->z[l], g->mean[l], g->rstd[l], g->params + L->g_off,
                                     g->params + L->be_off, N, L->C_out, g->Ho[l], g->Wo[l], next->pad, next->upsample,
                                     L->relu, err));
            padded = 1;
            continue;
        }
        if (L->norm) {
            TRY(cu_instance_norm_forward(ctx, g->y[l], g->mean[l], g->rstd[l], g->z[l], g->params + L->g_off,
                                         g->params + L->be_off, L->residual ? g->y[l - 2] : NULL, N, L->C_out, HW,
                                         L->relu, g->norm_scratch, err));
        } else {
            TRY(cu_add_bias(ctx, g->z[l], g->params + L->b_off, N, L->C_out, HW, err));
            TRY(cu_sigmoid255_forward(ctx, g->y[l], g->z[l], (size_t)N * L->C_out * HW, err));
        }
    }
    MARK(g->n_layers, EV_F0);
    g->prof_fwd = g->prof;
    return NST_OK;
}

nst_status stylenet_cuda_backward(stylenet_cuda *g, const float *dout, float *dinput, nst_error *err) {
    if (!g->train || !g->memory) return nst_fail(err, NST_ERR_ARG, "GPU style network backward needs training buffers");
    nst_cuda *ctx = g->ctx;
    int N = g->N;
    float *gr = g->g_a; /* d(loss)/d(output of layer l), then of its input */
    size_t n_out = (size_t)N * 3 * g->H * g->W;
    if (dout != gr) NST_CUDA_TRY(cudaMemcpyAsync(gr, dout, n_out * sizeof(float), cudaMemcpyDeviceToDevice, ctx->stream), err);
    for (int l = g->n_layers - 1; l >= 0; l--) {
        const dev_layer *L = &g->L[l];
        int HW = g->Ho[l] * g->Wo[l];
        size_t nz = (size_t)N * L->C_out * HW;
        MARK(l, EV_B0);
        if (L->norm) {
            /* a block's output gradient also flows straight to the block's input */
            if (L->residual)
                NST_CUDA_TRY(cudaMemcpyAsync(g->g_skip, gr, nz * sizeof(float), cudaMemcpyDeviceToDevice, ctx->stream), err);
            TRY(cu_instance_norm_backward(ctx, g->g_z, g->grads + L->g_off, g->grads + L->be_off, gr, g->y[l], g->z[l],
                                          g->mean[l], g->rstd[l], g->params + L->g_off, N, L->C_out, HW, L->relu,
                                          g->norm_scratch, err));
        } else {
            TRY(cu_sigmoid255_backward(ctx, g->g_z, gr, g->y[l], nz, err));
            TRY(cu_bias_backward(ctx, g->grads + L->b_off, g->g_z, N, L->C_out, HW, err));
        }
        MARK(l, EV_B1);
        TRY(cu_conv_backward_weight(ctx, g->conv[l], g->grads + L->w_off, g->g_z, g->pad[l], g->ws, g->ws_bytes, err));
        MARK(l, EV_B2);
        if (l == 0 && !dinput) { /* nobody needs the gradient of the photo */
            MARK(l, EV_B3);
            break;
        }
        TRY(cu_conv_backward_input(ctx, g->conv[l], g->g_pad, g->g_z, g->params + L->w_off, g->ws, g->ws_bytes, err));
        MARK(l, EV_B3);
        int h = g->Hi[l], w = g->Wi[l];
        if (L->upsample) TRY(cu_upsample2x_reflect_pad_backward(ctx, gr, g->g_pad, N * L->C_in, h, w, L->pad, err));
        else TRY(cu_reflect_pad_backward(ctx, gr, g->g_pad, N * L->C_in, h, w, L->pad, err));
        if (l + 1 < g->n_layers && g->L[l + 1].residual)
            TRY(cu_add(ctx, gr, gr, g->g_skip, (size_t)N * L->C_in * h * w, err)); /* the block's skip path */
    }
    if (dinput) NST_CUDA_TRY(cudaMemcpyAsync(dinput, gr, n_out * sizeof(float), cudaMemcpyDeviceToDevice, ctx->stream), err);
    MARK(g->n_layers, EV_B0);
    g->prof_bwd = g->prof;
    return NST_OK;
}

static float ev_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0.0f;
    if (cudaEventElapsedTime(&ms, a, b) != cudaSuccess) ms = -1.0f;
    return ms;
}

/* A line of the profile, written in pieces and then logged whole. */
typedef struct {
    char buf[512];
} log_line_buf;

static void line_add(log_line_buf *b, const char *fmt, ...) {
    size_t k = strlen(b->buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->buf + k, sizeof b->buf - k, fmt, ap);
    va_end(ap);
}

static void line_end(log_line_buf *b, const nst_tuning *t) {
    nst_log(t, "%s", b->buf);
    b->buf[0] = '\0';
}

nst_status stylenet_cuda_profile_log(stylenet_cuda *g, const char *title, nst_error *err) {
    log_line_buf line = {{0}};
#define OUT(...) line_add(&line, __VA_ARGS__)
#define END() line_end(&line, &g->log)
    if (!g->prof || !g->prof_fwd) {
        nst_log(&g->log, "%s: no profile (set NST_CUDA_PROFILE=1 before building the network)", title);
        return NST_OK;
    }
    NST_CUDA_TRY(cudaStreamSynchronize(g->ctx->stream), err);
    int n = g->n_layers, bwd = g->prof_bwd;
    nst_log(&g->log, "%s: batch %d at %dx%d, last pass, ms per layer (GPU events)", title, g->N, g->W, g->H);
    nst_log(&g->log, "%3s %-20s %9s | %7s %7s%s", "l", "layer", "out", "conv", "rest",
            bwd ? " | bwd norm   wgrad   dgrad  rest" : "");
    double tf[2] = {0, 0}, tb[4] = {0, 0, 0, 0};
    for (int l = 0; l < n; l++) {
        const dev_layer *L = &g->L[l];
        char name[48], size[24];
        snprintf(name, sizeof name, "%s%dx%d/%d %d>%d%s", L->upsample ? "up+" : "", L->K, L->K, L->S, L->C_in, L->C_out,
                 L->norm ? (L->relu ? " IN+R" : " IN") : " sig");
        snprintf(size, sizeof size, "%dx%d", g->Wo[l], g->Ho[l]);
        float f0 = ev_ms(g->ev[l][EV_F0], g->ev[l][EV_F1]), f1 = ev_ms(g->ev[l][EV_F1], g->ev[l + 1][EV_F0]);
        tf[0] += f0, tf[1] += f1;
        OUT("%3d %-20s %9s | %7.3f %7.3f", l, name, size, f0, f1);
        if (bwd) {
            /* backward runs from the last layer down: its "rest" (padding backward, the skip
             * sum) ends at the next lower layer's start (or the pass's end for layer 0) */
            cudaEvent_t end = l == 0 ? g->ev[n][EV_B0] : g->ev[l - 1][EV_B0];
            float b0 = ev_ms(g->ev[l][EV_B0], g->ev[l][EV_B1]), b1 = ev_ms(g->ev[l][EV_B1], g->ev[l][EV_B2]);
            float b2 = ev_ms(g->ev[l][EV_B2], g->ev[l][EV_B3]), b3 = ev_ms(g->ev[l][EV_B3], end);
            tb[0] += b0, tb[1] += b1, tb[2] += b2, tb[3] += b3;
            OUT(" | %8.3f %7.3f %7.3f %5.3f", b0, b1, b2, b3);
        }
        OUT("  %s", stylenet_cuda_conv_about(g, l));
        END();
    }
    OUT("%3s %-20s %9s | %7.3f %7.3f", "", "total", "", tf[0], tf[1]);
    if (bwd) OUT(" | %8.3f %7.3f %7.3f %5.3f", tb[0], tb[1], tb[2], tb[3]);
    END();
    OUT("%3s forward %.3f ms", "", ev_ms(g->ev[0][EV_F0], g->ev[n][EV_F0]));
    if (bwd) OUT(", backward %.3f ms", ev_ms(g->ev[n - 1][EV_B0], g->ev[n][EV_B0]));
    END();
    return NST_OK;
#undef OUT
#undef END
}

nst_status stylenet_cuda_apply(stylenet_cuda *g, const nst_image *img, int Hp, int Wp, nst_image *out, nst_error *err) {
    memset(out, 0, sizeof *out);
    nst_cuda *ctx = g->ctx;
    TRY(stylenet_cuda_resize(g, 1, Hp, Wp, err));
    size_t n = (size_t)img->width * img->height * 3;
    if (n > g->img_cap) {
        cudaFree(g->img);
        g->img = NULL;
        g->img_cap = 0;
        TRY(nst_cuda_alloc(ctx, (void **)&g->img, n, sizeof(float), "the image", err));
        g->img_cap = n;
    }
    NST_CUDA_TRY(cudaMemcpyAsync(g->img, img->pixels, n * sizeof(float), cudaMemcpyHostToDevice, ctx->stream), err);
    TRY(cu_image_to_planes(ctx, g->input, g->img, img->height, img->width, Hp, Wp, err));
    TRY(stylenet_cuda_forward(g, err));
    TRY(cu_planes_to_image(ctx, g->img, stylenet_cuda_output(g), img->height, img->width, Hp, Wp, err));
    TRY(nst_image_alloc(out, img->width, img->height, err));
    nst_status st = nst_cuda_check(cudaMemcpyAsync(out->pixels, g->img, n * sizeof(float), cudaMemcpyDeviceToHost, ctx->stream),
                                   "cudaMemcpyAsync", err);
    if (!st) st = nst_cuda_check(cudaStreamSynchronize(ctx->stream), "the style network on the GPU", err);
    if (st) nst_image_free(out);
    return st;
}

/* ---- the CUDA table for applying (transfer/stylenet_backend.h) --------------------------- */

/* the GPU context and the network on it */
typedef struct {
    stylenet_runner base;
    nst_cuda *ctx;
    stylenet_cuda *g;
} cuda_runner;

static void cuda_runner_free(stylenet_runner *base) {
    cuda_runner *r = (cuda_runner *)base;
    if (!r) return;
    stylenet_cuda_free(r->g);
    nst_cuda_destroy(r->ctx);
    free(r);
}

static nst_status cuda_runner_create(stylenet_runner **out, const stylenet *net, nst_precision precision,
                                     nst_error *err) {
    *out = NULL;
    cuda_runner *r = (cuda_runner *)calloc(1, sizeof *r);
    if (!r) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    r->base.ops = &stylenet_cuda_backend;
    /* (a value that is not a precision computes in fp32) */
    if (precision != NST_PRECISION_TF32 && precision != NST_PRECISION_FP16) precision = NST_PRECISION_FP32;
    nst_status s = nst_cuda_create(&r->ctx, err);
    if (!s) s = stylenet_cuda_create(&r->g, r->ctx, net, 0, precision, err);
    if (s) {
        cuda_runner_free(&r->base);
        return s;
    }
    *out = &r->base;
    return NST_OK;
}

static nst_status cuda_runner_apply(stylenet_runner *base, const nst_image *img, int Hp, int Wp, nst_image *out,
                                    nst_error *err) {
    return stylenet_cuda_apply(((cuda_runner *)base)->g, img, Hp, Wp, out, err);
}

/* (C++: no designated initialisers) name, device, create, apply, free */
extern "C" const stylenet_backend stylenet_cuda_backend = {
    "cuda", NST_DEVICE_CUDA, cuda_runner_create, cuda_runner_apply, cuda_runner_free,
};
