/* no_cuda.c - stands in for cuda_common.cu in a build without CUDA (CMake found no nvcc,
 * cuBLAS or cuDNN, or -DNST_CUDA=OFF): every entry point says so, and so do the stand-ins
 * for the CUDA backend tables (the only place that knows CUDA may be missing). */
#include <stdio.h>
#include <string.h>

#include "cuda/cuda_common.h"
#include "transfer/stylenet_backend.h"
#include "util/util.h"

static const char *const no_cuda_msg =
    "this nst was built without CUDA (no nvcc, cuBLAS or cuDNN at build time); use --device cpu";

nst_status nst_cuda_probe(nst_error *err) { return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg); }

nst_status nst_cuda_create(nst_cuda **ctx, nst_error *err) {
    *ctx = NULL;
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}

void nst_cuda_destroy(nst_cuda *ctx) { (void)ctx; }

void nst_cuda_describe(char *buf, size_t size) { snprintf(buf, size, "%s", no_cuda_msg); }

/* ---- the optimisation transfer's backend (transfer/gatys_device.h) ---- */
#include "transfer/gatys_device.h"

static nst_status no_gatys_build(gatys_device **out, const gatys_setup *setup, nst_error *err) {
    (void)setup;
    *out = NULL;
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}

const gatys_backend gatys_cuda_backend = {"cuda", no_gatys_build};

/* ---- the style network's CUDA tables (transfer/stylenet_backend.h), as stand-ins ------ */

static nst_status no_stylenet_create(stylenet_runner **r, const stylenet *net, nst_precision precision,
                                     nst_error *err) {
    (void)net, (void)precision;
    *r = NULL;
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}
static nst_status no_stylenet_apply(stylenet_runner *r, const nst_image *img, int Hp, int Wp, nst_image *out,
                                    nst_error *err) {
    (void)r, (void)img, (void)Hp, (void)Wp;
    memset(out, 0, sizeof *out);
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}
static void no_stylenet_free(stylenet_runner *r) { (void)r; }

const stylenet_backend stylenet_cuda_backend = {
    .name = "cuda",
    .device = NST_DEVICE_CUDA,
    .create = no_stylenet_create,
    .apply = no_stylenet_apply,
    .free = no_stylenet_free,
};

static nst_status no_train_build(stylenet_train_runner **r, const stylenet_train_setup *setup, nst_error *err) {
    (void)setup;
    *r = NULL;
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}
static nst_status no_train_step(stylenet_train_runner *r, const float *batch, int adam_t, double losses[3],
                                nst_error *err) {
    (void)r, (void)batch, (void)adam_t, (void)losses;
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}
static nst_status no_train_get_state(stylenet_train_runner *r, float *params, float *m, float *v, nst_error *err) {
    (void)r, (void)params, (void)m, (void)v;
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}
static nst_status no_train_set_state(stylenet_train_runner *r, const float *params, const float *m, const float *v,
                                     nst_error *err) {
    (void)r, (void)params, (void)m, (void)v;
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}
static nst_status no_train_get_grads(stylenet_train_runner *r, float *grads, nst_error *err) {
    (void)r, (void)grads;
    return nst_fail(err, NST_ERR_ARG, "%s", no_cuda_msg);
}
static void no_train_free(stylenet_train_runner *r) { (void)r; }

const stylenet_trainer_backend stylenet_trainer_cuda_backend = {
    .name = "cuda",
    .own_state = 1,
    .build = no_train_build,
    .step = no_train_step,
    .get_state = no_train_get_state,
    .set_state = no_train_set_state,
    .get_grads = no_train_get_grads,
    .free = no_train_free,
};
