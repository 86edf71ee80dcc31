/* host.c - optim_host: the optimizers' device on host arrays (the CPU). Each operation
 * runs at once; read() only copies out what is already there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"
#include "tensor/ops.h"
#include "util/util.h"

static optim_host *host_of(optim_device *dev) { return (optim_host *)dev; }
#define V(h, i) ((h)->vec[i])

static nst_status h_copy(optim_device *dev, int dst, int src, nst_error *err) {
    optim_host *h = host_of(dev);
    memcpy(V(h, dst), V(h, src), h->n * sizeof(float));
    return NST_OK;
}

static nst_status h_axpy_to(optim_device *dev, int out, int a, float t, int b, nst_error *err) {
    optim_host *h = host_of(dev);
    float *o = V(h, out);
    const float *x = V(h, a), *y = V(h, b);
    for (size_t i = 0; i < h->n; i++) o[i] = x[i] + t * y[i];
    return NST_OK;
}

static nst_status h_sub(optim_device *dev, int out, int a, int b, nst_error *err) {
    optim_host *h = host_of(dev);
    float *o = V(h, out);
    const float *x = V(h, a), *y = V(h, b);
    for (size_t i = 0; i < h->n; i++) o[i] = x[i] - y[i];
    return NST_OK;
}

static nst_status h_dot(optim_device *dev, int k, int a, int b, nst_error *err) {
    optim_host *h = host_of(dev);
    h->scalar[k] = dot_product(V(h, a), V(h, b), h->n);
    return NST_OK;
}

static nst_status h_abs_max(optim_device *dev, int k, int a, nst_error *err) {
    optim_host *h = host_of(dev);
    const float *x = V(h, a);
    float m = 0.0f;
    for (size_t i = 0; i < h->n; i++) m = fmaxf(m, fabsf(x[i]));
    h->scalar[k] = m;
    return NST_OK;
}

static nst_status h_neg(optim_device *dev, int d, int g, int k_div, nst_error *err) {
    optim_host *h = host_of(dev);
    float *o = V(h, d);
    const float *x = V(h, g);
    float m = k_div >= 0 ? (float)h->scalar[k_div] : 0.0f;
    for (size_t i = 0; i < h->n; i++) o[i] = m > 0.0f ? -x[i] / m : -x[i];
    return NST_OK;
}

/* y += a * x */
static void axpy(float *y, double a, const float *x, size_t n) {
    float af = (float)a;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += af * x[i];
}

static nst_status h_sub_scaled(optim_device *dev, int d, int y, int k_out, int k_a, int k_b, nst_error *err) {
    optim_host *h = host_of(dev);
    h->scalar[k_out] = h->scalar[k_a] * h->scalar[k_b];
    axpy(V(h, d), -h->scalar[k_out], V(h, y), h->n);
    return NST_OK;
}

static nst_status h_add_scaled(optim_device *dev, int d, int s, int k_c, int k_a, int k_b, nst_error *err) {
    optim_host *h = host_of(dev);
    axpy(V(h, d), h->scalar[k_c] - h->scalar[k_a] * h->scalar[k_b], V(h, s), h->n);
    return NST_OK;
}

static nst_status h_scale_ratio(optim_device *dev, int d, int k_num, int k_den, nst_error *err) {
    optim_host *h = host_of(dev);
    double r = h->scalar[k_num] / h->scalar[k_den];
    float *o = V(h, d);
    for (size_t i = 0; i < h->n; i++) o[i] = (float)(o[i] * r);
    return NST_OK;
}

static nst_status h_reciprocal(optim_device *dev, int k_out, int k_in, nst_error *err) {
    optim_host *h = host_of(dev);
    h->scalar[k_out] = 1.0 / h->scalar[k_in];
    return NST_OK;
}

static nst_status h_adam(optim_device *dev, int x, int g, int m, int v, adam_coeffs c, nst_error *err) {
    optim_host *h = host_of(dev);
    float *xs = V(h, x), *ms = V(h, m), *vs = V(h, v);
    const float *gs = V(h, g);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < h->n; i++) adam_rule(&xs[i], gs[i], &ms[i], &vs[i], c);
    return NST_OK;
}

static nst_status h_evaluate(optim_device *dev, int x, int g, nst_error *err) {
    optim_host *h = host_of(dev);
    return h->fn(h->ctx, V(h, x), V(h, g), &h->f, err);
}

static nst_status h_read(optim_device *dev, double *f, const int *k, double *vals, int nk, nst_error *err) {
    optim_host *h = host_of(dev);
    if (f) *f = h->f;
    for (int i = 0; i < nk; i++) vals[i] = h->scalar[k[i]];
    return NST_OK;
}

static const optim_device_ops host_ops = {
    .copy = h_copy,
    .axpy_to = h_axpy_to,
    .sub = h_sub,
    .dot = h_dot,
    .abs_max = h_abs_max,
    .neg = h_neg,
    .sub_scaled = h_sub_scaled,
    .add_scaled = h_add_scaled,
    .scale_ratio = h_scale_ratio,
    .reciprocal = h_reciprocal,
    .adam = h_adam,
    .evaluate = h_evaluate,
    .read = h_read,
};

nst_status optim_host_build(optim_host *h, size_t n, int n_vectors, int n_scalars, float *x, float *g,
                            objective_fn fn, void *ctx, nst_error *err) {
    memset(h, 0, sizeof *h);
    h->base.ops = &host_ops;
    h->n = n;
    h->n_vectors = n_vectors;
    h->fn = fn;
    h->ctx = ctx;
    int own = n_vectors - OPTIM_OWN + (x ? 0 : 1) + (g ? 0 : 1);
    h->vec = calloc((size_t)n_vectors, sizeof *h->vec);
    h->scalar = calloc((size_t)(n_scalars > 0 ? n_scalars : 1), sizeof *h->scalar);
    h->mem = nst_calloc_array((size_t)(own > 0 ? own : 1), n * sizeof(float));
    if (!h->vec || !h->scalar || !h->mem) {
        optim_host_free(h);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for the optimizer's state (%d vectors of %zu)", own, n);
    }
    float *p = h->mem;
    for (int i = 0; i < n_vectors; i++) {
        if (i == OPTIM_X && x) h->vec[i] = x;
        else if (i == OPTIM_G && g) h->vec[i] = g;
        else {
            h->vec[i] = p;
            p += n;
        }
    }
    return NST_OK;
}

void optim_host_free(optim_host *h) {
    free(h->vec);
    free(h->scalar);
    free(h->mem);
    memset(h, 0, sizeof *h);
}
