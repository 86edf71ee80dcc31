/* losses_cuda.cu - content, style (Gram) and total-variation losses on the GPU, and the
 * deterministic double-precision sums they and the optimizers use. See losses_cuda.h;
 * the definitions are those of loss/losses.c. */
#include "cuda/common_kernels.cuh"
#include "cuda/losses_cuda.h"

/* ---- sums: a fixed grid of CUDA_REDUCE_BLOCKS x 256 threads, each summing a strided
 * slice in double; a tree per block; one block then sums the partials in a fixed
 * order. The same inputs give the same bits on every run. -------------------------- */

enum { RED_DOT, RED_SQDIFF, RED_ABSMAX, RED_TV };
#define RED_THREADS 256

__device__ static double combine(double x, double y, int kind) { return kind == RED_ABSMAX ? fmax(x, y) : x + y; }

/* sdata holds RED_THREADS (or CUDA_REDUCE_BLOCKS) values: a fixed tree over them */
__device__ static double block_reduce(double *sdata, double v, int kind) {
    unsigned t = threadIdx.x;
    sdata[t] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sdata[t] = combine(sdata[t], sdata[t + s], kind);
        __syncthreads();
    }
    return sdata[0];
}

/* partial[block] = the block's share of: sum a*b (DOT), sum (a-b)^2 (SQDIFF, b may be
 * NULL), max |a| (ABSMAX), or the total variation sum of a (C,H,W) image (TV). */
static __global__ void reduce_partial_kernel(double *partial, int kind, const float *a, const float *b, size_t n, int H,
                                      int W) {
    __shared__ double sdata[RED_THREADS];
    double acc = 0.0;
    NST_GRID_LOOP(i, n) {
        double v;
        if (kind == RED_DOT) {
            v = (double)a[i] * b[i];
        } else if (kind == RED_SQDIFF) {
            double d = (double)a[i] - (b ? (double)b[i] : 0.0);
            v = d * d;
        } else if (kind == RED_ABSMAX) {
            v = fabs((double)a[i]);
        } else { /* TV: the right and the lower neighbour of element (c,y,x) */
            int x = (int)(i % W), y = (int)(i / W % H);
            v = 0.0;
            if (x + 1 < W) {
                double d = (double)a[i + 1] - a[i];
                v += d * d;
            }
            if (y + 1 < H) {
                double d = (double)a[i + W] - a[i];
                v += d * d;
            }
        }
        acc = combine(acc, v, kind);
    }
    double r = block_reduce(sdata, acc, kind);
    if (threadIdx.x == 0) partial[blockIdx.x] = r;
}

/* *out = mul * (the partials combined); one block of CUDA_REDUCE_BLOCKS threads */
static __global__ void reduce_final_kernel(double *out, const double *partial, int kind, double mul) {
    __shared__ double sdata[CUDA_REDUCE_BLOCKS];
    double r = block_reduce(sdata, partial[threadIdx.x], kind);
    if (threadIdx.x == 0) *out = mul * r;
}

nst_status cuda_reduce_scratch_build(cuda_reduce_scratch *r, nst_cuda *ctx, nst_error *err) {
    return nst_cuda_alloc(ctx, (void **)&r->partial, CUDA_REDUCE_BLOCKS, sizeof(double), "reduction scratch", err);
}

void cuda_reduce_scratch_free(cuda_reduce_scratch *r) {
    cudaFree(r->partial);
    r->partial = NULL;
}

static nst_status reduce(nst_cuda *ctx, cuda_reduce_scratch *r, int kind, const float *a, const float *b, size_t n,
                         int H, int W, double mul, double *out, nst_error *err) {
    reduce_partial_kernel<<<CUDA_REDUCE_BLOCKS, RED_THREADS, 0, ctx->stream>>>(r->partial, kind, a, b, n, H, W);
    reduce_final_kernel<<<1, CUDA_REDUCE_BLOCKS, 0, ctx->stream>>>(out, r->partial, kind, mul);
    NST_CUDA_TRY(cudaGetLastError(), err);
    return NST_OK;
}

nst_status cuda_dot(nst_cuda *ctx, cuda_reduce_scratch *r, const float *a, const float *b, size_t n, double *out,
                    nst_error *err) {
    return reduce(ctx, r, RED_DOT, a, b, n, 1, 1, 1.0, out, err);
}

nst_status cuda_sum_sq_diff(nst_cuda *ctx, cuda_reduce_scratch *r, const float *a, const float *b, size_t n,
                            double *out, nst_error *err) {
    return reduce(ctx, r, RED_SQDIFF, a, b, n, 1, 1, 1.0, out, err);
}

nst_status cuda_abs_max(nst_cuda *ctx, cuda_reduce_scratch *r, const float *a, size_t n, double *out,
                        nst_error *err) {
    return reduce(ctx, r, RED_ABSMAX, a, NULL, n, 1, 1, 1.0, out, err);
}

/* ---- content loss ------------------------------------------------------------------ */

nst_status cuda_content_loss_forward(nst_cuda *ctx, cuda_reduce_scratch *r, const float *F, const float *P,
                                     size_t n, double *out, nst_error *err) {
    return reduce(ctx, r, RED_SQDIFF, F, P, n, 1, 1, 1.0 / (double)n, out, err);
}

/* dF, F, P are (n): dF += k * (F - P) */
static __global__ void content_backward_kernel(float *dF, const float *F, const float *P, float k, size_t n) {
    NST_GRID_LOOP(i, n) dF[i] += k * (F[i] - P[i]);
}

nst_status cuda_content_loss_backward(nst_cuda *ctx, float *dF, const float *F, const float *P, size_t n,
                                      float scale, nst_error *err) {
    float k = (float)(2.0 * scale / (double)n);
    content_backward_kernel<<<nst_grid_for(n), 256, 0, ctx->stream>>>(dF, F, P, k, n);
    NST_CUDA_TRY(cudaGetLastError(), err);
    return NST_OK;
}

/* ---- Gram matrices ---------------------------------------------------------------------
 * F (C,N) in C order is, to column-major cuBLAS, an N x C matrix with leading dimension
 * N; G (C,C) is C x C. G = F F^T is then gemm(T, N): G(i,j) = sum_n F(n,i) F(n,j); and
 * dF += S F is gemm(N, N): dF(n,i) += sum_j F(n,j) S(j,i) with S symmetric. */

nst_status cuda_gram_forward(nst_cuda *ctx, float *G, const float *F, int C, int N, float gscale, float beta,
                             nst_error *err) {
    NST_CUBLAS_TRY(cublasSgemm(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, C, C, N, &gscale, F, N, F, N, &beta, G, C),
                   err);
    return NST_OK;
}

/* S (C,C) = k * (D + D^T) where D = X - Y (Y may be NULL: D = X). One thread per pair
 * i <= j writes S[i][j] and S[j][i], so S may equal X. */
static __global__ void symmetrize_kernel(float *S, const float *X, const float *Y, float k, int C) {
    size_t n = (size_t)C * C;
    NST_GRID_LOOP(idx, n) {
        int i = (int)(idx / C), j = (int)(idx % C);
        if (i > j) continue;
        size_t ij = (size_t)i * C + j, ji = (size_t)j * C + i;
        float dij = Y ? X[ij] - Y[ij] : X[ij];
        float dji = Y ? X[ji] - Y[ji] : X[ji];
        float s = k * dij + k * dji;
        S[ij] = s;
        S[ji] = s;
    }
}

static nst_status gram_backward_sym(nst_cuda *ctx, float *dF, const float *S, const float *F, int C, int N,
                                    float gscale, nst_error *err) {
    const float one = 1.0f;
    NST_CUBLAS_TRY(cublasSgemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, N, C, C, &gscale, F, N, S, C, &one, dF, N),
                   err);
    return NST_OK;
}

nst_status cuda_gram_backward(nst_cuda *ctx, float *dF, float *S, const float *dG, const float *F, int C, int N,
                              float gscale, nst_error *err) {
    size_t cc = (size_t)C * C;
    symmetrize_kernel<<<nst_grid_for(cc), 256, 0, ctx->stream>>>(S, dG, NULL, 1.0f, C);
    NST_CUDA_TRY(cudaGetLastError(), err);
    return gram_backward_sym(ctx, dF, S, F, C, N, gscale, err);
}

/* ---- style loss ---------------------------------------------------------------------- */

nst_status cuda_style_loss_forward(nst_cuda *ctx, cuda_reduce_scratch *r, float *G, const float *F, const float *A,
                                   int C, int N, float gscale, double *out, nst_error *err) {
    nst_status s = cuda_gram_forward(ctx, G, F, C, N, gscale, 0.0f, err);
    if (s) return s;
    size_t cc = (size_t)C * C;
    return reduce(ctx, r, RED_SQDIFF, G, A, cc, 1, 1, 1.0 / (double)cc, out, err);
}

nst_status cuda_style_loss_backward(nst_cuda *ctx, float *dF, float *dG, const float *G, const float *A,
                                    const float *F, int C, int N, float gscale, float scale, nst_error *err) {
    size_t cc = (size_t)C * C;
    float k = (float)(2.0 * scale / (double)cc);
    /* dG = k (G - A), then S = dG + dG^T, written into dG at once */
    symmetrize_kernel<<<nst_grid_for(cc), 256, 0, ctx->stream>>>(dG, G, A, k, C);
    NST_CUDA_TRY(cudaGetLastError(), err);
    return gram_backward_sym(ctx, dF, dG, F, C, N, gscale, err);
}

/* ---- total variation ------------------------------------------------------------------ */

nst_status cuda_tv_loss_forward(nst_cuda *ctx, cuda_reduce_scratch *r, const float *x, int C, int H, int W,
                                double *out, nst_error *err) {
    size_t n = (size_t)C * H * W;
    return reduce(ctx, r, RED_TV, x, NULL, n, H, W, 1.0 / (double)n, out, err);
}

/* dx, x are (C,H,W): dx += k * sum over the (up to 4) neighbours of (x - neighbour) */
static __global__ void tv_backward_kernel(float *dx, const float *x, int H, int W, float k, size_t n) {
    NST_GRID_LOOP(i, n) {
        int c0 = (int)(i % W), r0 = (int)(i / W % H);
        float g = 0.0f, v = x[i];
        if (c0 + 1 < W) g += v - x[i + 1];
        if (c0 > 0) g += v - x[i - 1];
        if (r0 + 1 < H) g += v - x[i + W];
        if (r0 > 0) g += v - x[i - W];
        dx[i] += k * g;
    }
}

nst_status cuda_tv_loss_backward(nst_cuda *ctx, float *dx, const float *x, int C, int H, int W, float scale,
                                 nst_error *err) {
    size_t n = (size_t)C * H * W;
    float k = (float)(2.0 * scale / (double)n);
    tv_backward_kernel<<<nst_grid_for(n), 256, 0, ctx->stream>>>(dx, x, H, W, k, n);
    NST_CUDA_TRY(cudaGetLastError(), err);
    return NST_OK;
}

nst_status cuda_set_gemm_precision(nst_cuda *ctx, nst_precision p, nst_error *err) {
    NST_CUBLAS_TRY(cublasSetMathMode(ctx->cublas, p == NST_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                           : CUBLAS_DEFAULT_MATH), err);
    return NST_OK;
}
