/* no_cuda.c - stands in for cuda_common.cu in a build without CUDA (CMake found no nvcc,
 * cuBLAS or cuDNN, or -DNST_CUDA=OFF): every entry point says so. */
#include <stdio.h>

#include "cuda/cuda_common.h"
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
