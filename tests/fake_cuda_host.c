/* fake_cuda_host.c - the CUDA entry points test_cuda_johnson uses, on host memory, for
 * checking the test's own buffer sizes without a GPU (dev/asan-cuda-test-host.sh).
 *
 * Each "device" buffer is a malloc of exactly the size asked for; each "kernel" reads
 * every value its inputs hold and writes (zeros) every value of its outputs, by the
 * extents layers_cuda.h documents. Under AddressSanitizer a test buffer smaller than
 * what a call touches, on either side, then fails at that call. Nothing is computed:
 * the test's comparisons fail, as expected; only the sanitizer's verdict counts.
 * The network (stylenet_cuda_*) is not faked: run the test with --layers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_common.h"
#include "cuda/stylenet_cuda.h"
#include "cuda/layers_cuda.h"
#include "transfer/stylenet_backend.h"
#include "util/util.h"

struct nst_cuda {
    int unused;
};

/* every byte of an input is read, every byte of an output written */
static void rd(const void *p, size_t bytes) {
    const volatile unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < bytes; i++) s += b[i];
    (void)s;
}
static void wr(void *p, size_t bytes) { memset(p, 0, bytes); }
#define F sizeof(float)
#define HALF 2

nst_status nst_cuda_probe(nst_error *err) { (void)err; return NST_OK; }
nst_status nst_cuda_create(nst_cuda **ctx, nst_error *err) {
    (void)err;
    *ctx = calloc(1, sizeof **ctx);
    return NST_OK;
}
void nst_cuda_destroy(nst_cuda *ctx) { free(ctx); }
void nst_cuda_describe(char *buf, size_t size) { snprintf(buf, size, "fake (host memory, nothing computed)"); }

nst_status cu_buffer(nst_cuda *ctx, float **p, size_t n, nst_error *err) {
    (void)ctx, (void)err;
    *p = malloc(n * F);
    if (!*p) abort();
    wr(*p, n * F);
    return NST_OK;
}
void cu_buffer_free(float *p) { free(p); }
nst_status cu_upload(nst_cuda *ctx, float *dst, const float *src, size_t n, nst_error *err) {
    (void)ctx, (void)err;
    memcpy(dst, src, n * F);
    return NST_OK;
}
nst_status cu_download(nst_cuda *ctx, float *dst, const float *src, size_t n, nst_error *err) {
    (void)ctx, (void)err;
    memcpy(dst, src, n * F);
    return NST_OK;
}
nst_status cu_sync(nst_cuda *ctx, nst_error *err) { (void)ctx, (void)err; return NST_OK; }

static size_t P(int n, int p) { return (size_t)(n + 2 * p); }

nst_status cu_reflect_pad_forward(nst_cuda *ctx, float *out, const float *inp, int NC, int H, int W, int p, nst_error *err) {
    (void)ctx, (void)err;
    rd(inp, (size_t)NC * H * W * F), wr(out, (size_t)NC * P(H, p) * P(W, p) * F);
    return NST_OK;
}
nst_status cu_reflect_pad_backward(nst_cuda *ctx, float *dinp, const float *dout, int NC, int H, int W, int p, nst_error *err) {
    (void)ctx, (void)err;
    rd(dout, (size_t)NC * P(H, p) * P(W, p) * F), wr(dinp, (size_t)NC * H * W * F);
    return NST_OK;
}
nst_status cu_upsample2x_reflect_pad_forward(nst_cuda *ctx, float *out, const float *inp, int NC, int H, int W, int p,
                                             nst_error *err) {
    (void)ctx, (void)err;
    rd(inp, (size_t)NC * H * W * F), wr(out, (size_t)NC * P(2 * H, p) * P(2 * W, p) * F);
    return NST_OK;
}
nst_status cu_upsample2x_reflect_pad_backward(nst_cuda *ctx, float *dinp, const float *dout, int NC, int H, int W, int p,
                                              nst_error *err) {
    (void)ctx, (void)err;
    rd(dout, (size_t)NC * P(2 * H, p) * P(2 * W, p) * F), wr(dinp, (size_t)NC * H * W * F);
    return NST_OK;
}

size_t cu_instance_norm_scratch_bytes(int NC, int HW) { return (size_t)NC * (HW > 8192 ? 8 : 1) * 2 * 8 + (size_t)NC * 2 * F; }
nst_status cu_instance_norm_stats(nst_cuda *ctx, float *mean, float *rstd, const float *inp, int NC, int HW, void *scratch,
                                  nst_error *err) {
    (void)ctx, (void)err;
    rd(inp, (size_t)NC * HW * F), wr(scratch, cu_instance_norm_scratch_bytes(NC, HW));
    wr(mean, NC * F), wr(rstd, NC * F);
    return NST_OK;
}
nst_status cu_instance_norm_forward(nst_cuda *ctx, float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                    const float *beta, const float *skip, int N, int C, int HW, int relu, void *scratch,
                                    nst_error *err) {
    (void)relu;
    size_t n = (size_t)N * C * HW * F;
    rd(gamma, C * F), rd(beta, C * F);
    if (skip) rd(skip, n);
    cu_instance_norm_stats(ctx, mean, rstd, inp, N * C, HW, scratch, err);
    wr(out, n);
    return NST_OK;
}
nst_status cu_instance_norm_pad(nst_cuda *ctx, float *out, const float *inp, const float *mean, const float *rstd,
                                const float *gamma, const float *beta, int N, int C, int H, int W, int p, int up, int relu,
                                nst_error *err) {
    (void)ctx, (void)err, (void)relu;
    rd(inp, (size_t)N * C * H * W * F), rd(mean, (size_t)N * C * F), rd(rstd, (size_t)N * C * F), rd(gamma, C * F), rd(beta, C * F);
    wr(out, (size_t)N * C * P(H << up, p) * P(W << up, p) * F);
    return NST_OK;
}
nst_status cu_instance_norm_backward(nst_cuda *ctx, float *dinp, float *dgamma, float *dbeta, const float *dout,
                                     const float *out, const float *inp, const float *mean, const float *rstd,
                                     const float *gamma, int N, int C, int HW, int relu, void *scratch, nst_error *err) {
    (void)ctx, (void)err;
    size_t n = (size_t)N * C * HW * F;
    rd(dout, n), rd(inp, n), rd(mean, (size_t)N * C * F), rd(rstd, (size_t)N * C * F), rd(gamma, C * F);
    if (relu || out) rd(out, n);
    rd(dgamma, C * F), rd(dbeta, C * F), wr(dgamma, C * F), wr(dbeta, C * F);
    wr(scratch, cu_instance_norm_scratch_bytes(N * C, HW)), wr(dinp, n);
    return NST_OK;
}

nst_status cu_sigmoid255_forward(nst_cuda *ctx, float *out, const float *inp, size_t n, nst_error *err) {
    (void)ctx, (void)err;
    rd(inp, n * F), wr(out, n * F);
    return NST_OK;
}
nst_status cu_sigmoid255_backward(nst_cuda *ctx, float *dinp, const float *dout, const float *out, size_t n, nst_error *err) {
    (void)ctx, (void)err;
    rd(dout, n * F), rd(out, n * F), wr(dinp, n * F);
    return NST_OK;
}
nst_status cu_add(nst_cuda *ctx, float *out, const float *a, const float *b, size_t n, nst_error *err) {
    (void)ctx, (void)err;
    rd(a, n * F), rd(b, n * F), wr(out, n * F);
    return NST_OK;
}
nst_status cu_add_bias(nst_cuda *ctx, float *x, const float *bias, int N, int C, int HW, nst_error *err) {
    (void)ctx, (void)err;
    rd(bias, C * F), rd(x, (size_t)N * C * HW * F), wr(x, (size_t)N * C * HW * F);
    return NST_OK;
}
nst_status cu_bias_backward(nst_cuda *ctx, float *dbias, const float *dout, int N, int C, int HW, nst_error *err) {
    (void)ctx, (void)err;
    rd(dout, (size_t)N * C * HW * F), rd(dbias, C * F), wr(dbias, C * F);
    return NST_OK;
}
nst_status cu_adam_update(nst_cuda *ctx, float *x, float *m, float *v, const float *g, size_t n, adam_coeffs c,
                          nst_error *err) {
    (void)ctx, (void)err, (void)c;
    rd(g, n * F), wr(x, n * F), wr(m, n * F), wr(v, n * F);
    return NST_OK;
}

struct cu_conv {
    int N, C_in, C_out, H, W, K, S, Ho, Wo;
};
nst_status cu_conv_create(cu_conv **conv, nst_cuda *ctx, int N, int C_in, int C_out, int H, int W, int K, int S, nst_precision precision,
                          int train, int search, int own, size_t ws_limit, size_t *ws_bytes, nst_error *err) {
    (void)ctx, (void)precision, (void)train, (void)search, (void)own, (void)ws_limit, (void)err;
    cu_conv *c = calloc(1, sizeof *c);
    *c = (cu_conv){N, C_in, C_out, H, W, K, S, (H - K) / S + 1, (W - K) / S + 1};
    *conv = c;
    *ws_bytes = 100;
    return NST_OK;
}
void cu_conv_destroy(cu_conv *conv) { free(conv); }
const char *cu_conv_describe(const cu_conv *c) { return c->K == 9 && c->S == 1 && c->C_out <= 4 ? "own (fake)" : "fake"; }
static size_t xs(const cu_conv *c) { return (size_t)c->N * c->C_in * c->H * c->W * F; }
static size_t ys(const cu_conv *c) { return (size_t)c->N * c->C_out * c->Ho * c->Wo * F; }
static size_t wsz(const cu_conv *c) { return (size_t)c->C_out * c->C_in * c->K * c->K * F; }
nst_status cu_conv_forward(nst_cuda *ctx, const cu_conv *c, float *out, const float *inp, const float *weight, void *ws,
                           size_t ws_bytes, nst_error *err) {
    (void)ctx, (void)err;
    rd(inp, xs(c)), rd(weight, wsz(c)), wr(ws, ws_bytes), wr(out, ys(c));
    return NST_OK;
}
nst_status cu_conv_backward_input(nst_cuda *ctx, const cu_conv *c, float *dinp, const float *dout, const float *weight, void *ws,
                                  size_t ws_bytes, nst_error *err) {
    (void)ctx, (void)err;
    rd(dout, ys(c)), rd(weight, wsz(c)), wr(ws, ws_bytes), wr(dinp, xs(c));
    return NST_OK;
}
nst_status cu_conv_backward_weight(nst_cuda *ctx, const cu_conv *c, float *dweight, const float *dout, const float *inp,
                                   void *ws, size_t ws_bytes, nst_error *err) {
    (void)ctx, (void)err;
    rd(dout, ys(c)), rd(inp, xs(c)), wr(ws, ws_bytes), rd(dweight, wsz(c)), wr(dweight, wsz(c));
    return NST_OK;
}

/* fp16 (values of 2 bytes, NHWC, channels padded: cu_h_channels) */
nst_status cu_h_weights(nst_cuda *ctx, void *wh, const float *w, int C_out, int C_in, int K, nst_error *err) {
    (void)ctx, (void)err;
    rd(w, (size_t)C_out * C_in * K * K * F), wr(wh, (size_t)cu_h_channels(C_out) * K * K * cu_h_channels(C_in) * HALF);
    return NST_OK;
}
nst_status cu_h_input_pad(nst_cuda *ctx, void *out, const float *x, int N, int H, int W, int p, int Ce, nst_error *err) {
    (void)ctx, (void)err;
    rd(x, (size_t)N * 3 * H * W * F), wr(out, (size_t)N * P(H, p) * P(W, p) * Ce * HALF);
    return NST_OK;
}
nst_status cu_h_pad(nst_cuda *ctx, void *out, const void *inp, int N, int H, int W, int Ce, int p, int up, nst_error *err) {
    (void)ctx, (void)err;
    rd(inp, (size_t)N * H * W * Ce * HALF), wr(out, (size_t)N * P(H << up, p) * P(W << up, p) * Ce * HALF);
    return NST_OK;
}
size_t cu_h_norm_scratch_bytes(int N, int Ce, int HW) { return (size_t)N * (HW > 16 ? 16 : HW) * Ce * 2 * 8; }
nst_status cu_h_norm_stats(nst_cuda *ctx, float *mean, float *rstd, const void *z, int N, int C, int Ce, int HW, void *scratch,
                           nst_error *err) {
    (void)ctx, (void)err;
    rd(z, (size_t)N * HW * Ce * HALF), wr(scratch, cu_h_norm_scratch_bytes(N, Ce, HW));
    wr(mean, (size_t)N * C * F), wr(rstd, (size_t)N * C * F);
    return NST_OK;
}
nst_status cu_h_norm_apply(nst_cuda *ctx, void *out, const void *z, const float *mean, const float *rstd, const float *gamma,
                           const float *beta, const void *skip, int N, int C, int Ce, int H, int W, int p, int up, int relu,
                           nst_error *err) {
    (void)ctx, (void)err, (void)relu;
    size_t n = (size_t)N * H * W * Ce * HALF;
    rd(z, n), rd(mean, (size_t)N * C * F), rd(rstd, (size_t)N * C * F), rd(gamma, C * F), rd(beta, C * F);
    if (skip) rd(skip, n);
    wr(out, (size_t)N * P(H << up, p) * P(W << up, p) * Ce * HALF);
    return NST_OK;
}
nst_status cu_h_output(nst_cuda *ctx, float *y, const void *z, const float *bias, int N, int H, int W, int Ce, nst_error *err) {
    (void)ctx, (void)err;
    rd(z, (size_t)N * H * W * Ce * HALF), rd(bias, 3 * F), wr(y, (size_t)N * 3 * H * W * F);
    return NST_OK;
}
nst_status cu_h_conv9_output(nst_cuda *ctx, float *y, const void *inp, const void *wh, const float *bias, int N, int Hp, int Wp,
                             int Ce, nst_error *err) {
    (void)ctx, (void)err;
    rd(inp, (size_t)N * Hp * Wp * Ce * HALF), rd(wh, (size_t)8 * 81 * Ce * HALF), rd(bias, 3 * F);
    wr(y, (size_t)N * 3 * (Hp - 8) * (Wp - 8) * F);
    return NST_OK;
}

/* the network: not faked (the test's --layers mode does not reach it) */
static nst_status no_net(nst_error *err) { return nst_fail(err, NST_ERR_ARG, "fake CUDA: no network (run with --layers)"); }
nst_status stylenet_cuda_create(stylenet_cuda **g, nst_cuda *ctx, const stylenet *net, int train, nst_precision precision, nst_error *err) {
    (void)ctx, (void)net, (void)train, (void)precision;
    *g = NULL;
    return no_net(err);
}
void stylenet_cuda_free(stylenet_cuda *g) { (void)g; }
nst_status stylenet_cuda_resize(stylenet_cuda *g, int N, int H, int W, nst_error *err) { (void)g, (void)N, (void)H, (void)W; return no_net(err); }
float *stylenet_cuda_input(stylenet_cuda *g) { (void)g; return NULL; }
const float *stylenet_cuda_output(const stylenet_cuda *g) { (void)g; return NULL; }
nst_status stylenet_cuda_forward(stylenet_cuda *g, nst_error *err) { (void)g; return no_net(err); }
nst_status stylenet_cuda_backward(stylenet_cuda *g, const float *dout, float *dinput, nst_error *err) {
    (void)g, (void)dout, (void)dinput;
    return no_net(err);
}
nst_status stylenet_cuda_download_grads(stylenet_cuda *g, float *grads, nst_error *err) { (void)g, (void)grads; return no_net(err); }
nst_status stylenet_cuda_zero_grads(stylenet_cuda *g, nst_error *err) { (void)g; return no_net(err); }

/* the CUDA tables (transfer/stylenet_backend.h): defined here so that the link does not
 * take them, and no_cuda.c's nst_cuda_* with them, from the CPU-only library */
static nst_status no_runner(stylenet_runner **r, const stylenet *net, nst_precision precision, nst_error *err) {
    (void)net, (void)precision;
    *r = NULL;
    return no_net(err);
}
static nst_status no_apply(stylenet_runner *r, const nst_image *img, int Hp, int Wp, nst_image *out, nst_error *err) {
    (void)r, (void)img, (void)Hp, (void)Wp;
    memset(out, 0, sizeof *out);
    return no_net(err);
}
static void no_runner_free(stylenet_runner *r) { (void)r; }
const stylenet_backend stylenet_cuda_backend = {
    .name = "cuda (fake)", .device = NST_DEVICE_CUDA, .create = no_runner, .apply = no_apply, .free = no_runner_free};

static nst_status no_build(stylenet_train_runner **r, const stylenet_train_setup *setup, nst_error *err) {
    (void)setup;
    *r = NULL;
    return no_net(err);
}
static nst_status no_step(stylenet_train_runner *r, const float *batch, int adam_t, double losses[3], nst_error *err) {
    (void)r, (void)batch, (void)adam_t, (void)losses;
    return no_net(err);
}
static nst_status no_get_state(stylenet_train_runner *r, float *params, float *m, float *v, nst_error *err) {
    (void)r, (void)params, (void)m, (void)v;
    return no_net(err);
}
static nst_status no_set_state(stylenet_train_runner *r, const float *params, const float *m, const float *v, nst_error *err) {
    (void)r, (void)params, (void)m, (void)v;
    return no_net(err);
}
static nst_status no_get_grads(stylenet_train_runner *r, float *grads, nst_error *err) {
    (void)r, (void)grads;
    return no_net(err);
}
static void no_train_free(stylenet_train_runner *r) { (void)r; }
const stylenet_trainer_backend stylenet_trainer_cuda_backend = {.name = "cuda (fake)",
                                                                .own_state = 1,
                                                                .build = no_build,
                                                                .step = no_step,
                                                                .get_state = no_get_state,
                                                                .set_state = no_set_state,
                                                                .get_grads = no_get_grads,
                                                                .free = no_train_free};
