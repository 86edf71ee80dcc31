/* cuda_common.cu - the CUDA context: device 0, one stream, cuBLAS and cuDNN handles. */
#include <stdio.h>
#include <stdlib.h>

#include "cuda/cuda_internal.cuh"

nst_status nst_cuda_check(cudaError_t e, const char *what, nst_error *err) {
    if (e == cudaSuccess) return NST_OK;
    cudaGetLastError(); /* clear a sticky-free error so that the next call starts clean */
    return nst_fail(err, e == cudaErrorMemoryAllocation ? NST_ERR_NOMEM : NST_ERR_IO,
                    "CUDA: %s: %s", what, cudaGetErrorString(e));
}

nst_status nst_cublas_check(cublasStatus_t s, const char *what, nst_error *err) {
    if (s == CUBLAS_STATUS_SUCCESS) return NST_OK;
    return nst_fail(err, s == CUBLAS_STATUS_ALLOC_FAILED ? NST_ERR_NOMEM : NST_ERR_IO,
                    "cuBLAS: %s: %s", what, cublasGetStatusString(s));
}

nst_status nst_cudnn_check(cudnnStatus_t s, const char *what, nst_error *err) {
    if (s == CUDNN_STATUS_SUCCESS) return NST_OK;
    return nst_fail(err, s == CUDNN_STATUS_ALLOC_FAILED ? NST_ERR_NOMEM : NST_ERR_IO,
                    "cuDNN: %s: %s", what, cudnnGetErrorString(s));
}

nst_status nst_cuda_alloc(nst_cuda *ctx, void **ptr, size_t count, size_t size, const char *what,
                          nst_error *err) {
    *ptr = NULL;
    if (size != 0 && count > (size_t)-1 / size)
        return nst_fail(err, NST_ERR_LIMIT, "out of GPU memory: %s: size overflows", what);
    size_t bytes = count * size;
    if (bytes == 0) bytes = 1;
    cudaError_t e = cudaMalloc(ptr, bytes);
    if (e == cudaSuccess) return NST_OK;
    cudaGetLastError();
    *ptr = NULL;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return nst_fail(err, NST_ERR_NOMEM, "out of GPU memory: %s needs %.0f MiB, %.0f MiB free of %.0f MiB",
                    what, bytes / 1048576.0, free_b / 1048576.0, total_b / 1048576.0);
}

nst_status nst_cuda_probe(nst_error *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return nst_fail(err, NST_ERR_ARG, "CUDA is not usable: no NVIDIA GPU and driver found (%s)",
                        cudaGetErrorString(e));
    }
    if (n == 0) return nst_fail(err, NST_ERR_ARG, "CUDA is not usable: no GPU found");
    return NST_OK;
}

nst_status nst_cuda_create(nst_cuda **out, nst_error *err) {
    *out = NULL;
    nst_status st = nst_cuda_probe(err);
    if (st != NST_OK) return st;
    nst_cuda *ctx = (nst_cuda *)calloc(1, sizeof *ctx);
    if (!ctx) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    cudaDeviceProp prop;
    if ((st = nst_cuda_check(cudaSetDevice(0), "cudaSetDevice", err)) != NST_OK ||
        (st = nst_cuda_check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties", err)) != NST_OK ||
        (st = nst_cuda_check(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking), "cudaStreamCreate", err)) != NST_OK ||
        (st = nst_cublas_check(cublasCreate(&ctx->cublas), "cublasCreate", err)) != NST_OK ||
        (st = nst_cublas_check(cublasSetStream(ctx->cublas, ctx->stream), "cublasSetStream", err)) != NST_OK ||
        (st = nst_cudnn_check(cudnnCreate(&ctx->cudnn), "cudnnCreate", err)) != NST_OK ||
        (st = nst_cudnn_check(cudnnSetStream(ctx->cudnn, ctx->stream), "cudnnSetStream", err)) != NST_OK) {
        nst_cuda_destroy(ctx);
        return st;
    }
    snprintf(ctx->name, sizeof ctx->name, "%s", prop.name);
    ctx->total_bytes = prop.totalGlobalMem;
    /* fp32 by default: no TF32 unless a caller opts in (cublasSetMathMode / cuDNN math type). */
    cublasSetMathMode(ctx->cublas, CUBLAS_PEDANTIC_MATH);
    *out = ctx;
    return NST_OK;
}

void nst_cuda_destroy(nst_cuda *ctx) {
    if (!ctx) return;
    if (ctx->stream) cudaStreamSynchronize(ctx->stream);
    if (ctx->cudnn) cudnnDestroy(ctx->cudnn);
    if (ctx->cublas) cublasDestroy(ctx->cublas);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    free(ctx);
}

void nst_cuda_describe(char *buf, size_t size) {
    nst_error err;
    if (nst_cuda_probe(&err) != NST_OK) {
        snprintf(buf, size, "%s", err.msg);
        return;
    }
    cudaDeviceProp prop;
    int rt = 0, drv = 0;
    cudaGetDeviceProperties(&prop, 0);
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    size_t cudnn = cudnnGetVersion();
    snprintf(buf, size, "%s, %.0f MiB, compute %d.%d, %d SMs, CUDA runtime %d.%d (driver %d.%d), cuDNN %zu.%zu.%zu",
             prop.name, prop.totalGlobalMem / 1048576.0, prop.major, prop.minor, prop.multiProcessorCount,
             rt / 1000, rt % 1000 / 10, drv / 1000, drv % 1000 / 10, cudnn / 10000, cudnn % 10000 / 100,
             cudnn % 100);
}
