/* cuda_common.h - the CUDA backend's context (internal, callable from C).
 *
 * One nst_cuda per run: the GPU, one stream that every kernel and library call of the run
 * is queued on, and the cuBLAS and cuDNN handles bound to that stream. Built from
 * cuda_common.cu when CMake finds CUDA, else from no_cuda.c, whose functions say that
 * this build has no CUDA. Code outside src/cuda reaches CUDA only through the backend
 * tables (transfer/gatys_device.h), whose CUDA entries no_cuda.c also supplies, so no
 * caller needs #ifdef NST_HAVE_CUDA. */
#ifndef NST_CUDA_COMMON_H
#define NST_CUDA_COMMON_H

#include <stddef.h>
#include "nst.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nst_cuda nst_cuda;

/* NST_OK when a GPU can be used; else NST_ERR_ARG and the reason (built without CUDA,
 * no driver, no GPU). Cheap after the first call of a process (the driver caches it). */
nst_status nst_cuda_probe(nst_error *err);
/* Opens device 0 with a stream and cuBLAS/cuDNN handles. */
nst_status nst_cuda_create(nst_cuda **ctx, nst_error *err);
void nst_cuda_destroy(nst_cuda *ctx);

#ifdef __cplusplus
}
#endif
#endif
