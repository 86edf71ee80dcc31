/* common_kernels.cuh - small helpers shared by the .cu files of the VGG19 / Gatys CUDA
 * path: launch geometry for element-wise kernels and copies that are ordered on the run's
 * stream. Included by .cu files only. */
#ifndef NST_COMMON_KERNELS_CUH
#define NST_COMMON_KERNELS_CUH

#include "cuda/cuda_internal.cuh"

/* Blocks of 256 threads for n elements, capped: the kernels loop over the rest. */
static inline unsigned nst_grid_for(size_t n) {
    size_t b = (n + 255) / 256;
    return b < 1 ? 1 : b > 65535u * 16 ? 65535u * 16 : (unsigned)b;
}
/* for (i over 0..n-1) spread over the grid, in size_t (tensors may pass 2^31 elements) */
#define NST_GRID_LOOP(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* A copy queued on ctx's stream, then waited for. (The run's stream does not synchronise
 * with the legacy default stream, so plain cudaMemcpy could race with its kernels.) */
static inline nst_status nst_cuda_copy_sync(nst_cuda *ctx, void *dst, const void *src, size_t bytes,
                                            cudaMemcpyKind kind, nst_error *err) {
    NST_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, ctx->stream), err);
    NST_CUDA_TRY(cudaStreamSynchronize(ctx->stream), err);
    return NST_OK;
}

#endif
