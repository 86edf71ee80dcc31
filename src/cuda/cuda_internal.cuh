/* cuda_internal.cuh - what the .cu files of the CUDA backend share: the context's fields,
 * error checks that turn a failed CUDA/cuBLAS/cuDNN call into an nst_error, and device
 * allocation with a clear out-of-memory message. Included by .cu files only. */
#ifndef NST_CUDA_INTERNAL_CUH
#define NST_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "cuda/cuda_common.h"
#include "util/util.h"

struct nst_cuda {
    int device;
    char name[256];
    size_t total_bytes;
    cudaStream_t stream;
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
};

/* Each returns NST_OK, or fills err with "what: the library's message" and returns
 * NST_ERR_NOMEM for out-of-memory, NST_ERR_IO otherwise. */
nst_status nst_cuda_check(cudaError_t e, const char *what, nst_error *err);
nst_status nst_cublas_check(cublasStatus_t s, const char *what, nst_error *err);
nst_status nst_cudnn_check(cudnnStatus_t s, const char *what, nst_error *err);

#define NST_CUDA_TRY(call, err)                                                              \
    do {                                                                                     \
        nst_status st_ = nst_cuda_check((call), #call, (err));                               \
        if (st_ != NST_OK) return st_;                                                       \
    } while (0)
#define NST_CUBLAS_TRY(call, err)                                                            \
    do {                                                                                     \
        nst_status st_ = nst_cublas_check((call), #call, (err));                             \
        if (st_ != NST_OK) return st_;                                                       \
    } while (0)
#define NST_CUDNN_TRY(call, err)                                                             \
    do {                                                                                     \
        nst_status st_ = nst_cudnn_check((call), #call, (err));                              \
        if (st_ != NST_OK) return st_;                                                       \
    } while (0)

/* cudaMalloc of count*size bytes (overflow-checked). On failure: NST_ERR_NOMEM and
 * "out of GPU memory: WHAT needs X MiB, Y MiB free of Z MiB". */
nst_status nst_cuda_alloc(nst_cuda *ctx, void **ptr, size_t count, size_t size, const char *what,
                          nst_error *err);

/* Blocks of 256 threads covering n items. */
static inline unsigned nst_cuda_blocks(size_t n) { return (unsigned)((n + 255) / 256); }

#endif
