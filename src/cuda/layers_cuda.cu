/* layers_cuda.cu - the fast-style network's layers on the GPU (see layers_cuda.h): own
 * kernels for the memory-bound ops, cuDNN for the convolutions.
 *
 * Reductions (instance norm statistics and gradients, the bias gradient) are two-level:
 * a grid of (P parts, NC planes) blocks, each summing its slice of a plane in double per
 * thread and then by a fixed shared-memory tree, writes partial sums; a second small
 * kernel adds the P partials of each plane in order. No atomics: the result is the same
 * bit for bit from run to run, and large planes (4K images) still fill the GPU. */
#include <cuda_fp16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.cuh"
#include "cuda/layers_cuda.h"

#define THREADS 256
#define INSTANCE_NORM_EPS 1e-5f /* tensor/layers.h */

/* the status of the last launch */
static nst_status launched(const char *what, nst_error *err) {
    return nst_cuda_check(cudaGetLastError(), what, err);
}

/* a 2-D grid: x covers n items (256 per block), y the planes */
static dim3 plane_grid(size_t n, int planes) { return dim3((unsigned)((n + THREADS - 1) / THREADS), (unsigned)planes); }

/* ---- reflection padding and upsampling ---------------------------------------------------- */

/* source index of padded index k - p (k in 0..n+2p-1), reflected without repeating the edge */
__device__ static inline int reflect_index(int t, int n) { return t < 0 ? -t : t >= n ? 2 * (n - 1) - t : t; }

/* The padded indices k (0-based, padded coordinates) whose reflect(k - p) is s: at most 3
 * (s itself, its mirror past the start, its mirror past the end). Needs p < n. */
__device__ static inline int reflect_sources(int s, int n, int p, int k[3]) {
    int c = 0;
    k[c++] = s + p;
    if (s >= 1 && s <= p) k[c++] = p - s;
    if (s <= n - 2 && s >= n - 1 - p) k[c++] = 2 * (n - 1) - s + p;
    return c;
}

/* out (NC,Ho,Wo) <- inp (NC,H,W); up = 1: the source grid is the 2x upsampled one */
__global__ static void pad_forward_kernel(float *out, const float *inp, int H, int W, int p, int up) {
    int Hs = H << up, Ws = W << up, Ho = Hs + 2 * p, Wo = Ws + 2 * p;
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x; /* a plane has < 2^31 pixels */
    size_t plane = blockIdx.y;
    if (i >= (unsigned)Ho * Wo) return;
    int k = (int)(i / (unsigned)Wo), j = (int)(i % (unsigned)Wo); /* 32-bit division: much cheaper */
    int si = reflect_index(k - p, Hs) >> up, sj = reflect_index(j - p, Ws) >> up;
    out[plane * Ho * Wo + i] = inp[(plane * H + si) * W + sj];
}

/* dinp (NC,H,W) <- the sum of the padded gradients that copied each pixel (a gather: no atomics) */
__global__ static void pad_backward_kernel(float *dinp, const float *dout, int H, int W, int p, int up) {
    int Hs = H << up, Ws = W << up, Ho = Hs + 2 * p, Wo = Ws + 2 * p;
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    size_t plane = blockIdx.y;
    if (i >= (unsigned)H * W) return;
    int y = (int)(i / (unsigned)W), x = (int)(i % (unsigned)W);
    const float *g = dout + plane * Ho * Wo;
    float sum = 0.0f;
    for (int dy = 0; dy <= up; dy++) {
        int kr[3], nr = reflect_sources((y << up) + dy, Hs, p, kr);
        for (int a = 0; a < nr; a++)
            for (int dx = 0; dx <= up; dx++) {
                int kc[3], nc = reflect_sources((x << up) + dx, Ws, p, kc);
                for (int b = 0; b < nc; b++) sum += g[(size_t)kr[a] * Wo + kc[b]];
            }
    }
    dinp[plane * H * W + i] = sum;
}

nst_status cu_reflect_pad_forward(nst_cuda *ctx, float *out, const float *inp, int NC, int H, int W, int p,
                                  nst_error *err) {
    pad_forward_kernel<<<plane_grid((size_t)(H + 2 * p) * (W + 2 * p), NC), THREADS, 0, ctx->stream>>>(out, inp, H, W, p, 0);
    return launched("reflect pad", err);
}

nst_status cu_reflect_pad_backward(nst_cuda *ctx, float *dinp, const float *dout, int NC, int H, int W, int p,
                                   nst_error *err) {
    pad_backward_kernel<<<plane_grid((size_t)H * W, NC), THREADS, 0, ctx->stream>>>(dinp, dout, H, W, p, 0);
    return launched("reflect pad backward", err);
}

nst_status cu_upsample2x_reflect_pad_forward(nst_cuda *ctx, float *out, const float *inp, int NC, int H, int W,
                                             int p, nst_error *err) {
    pad_forward_kernel<<<plane_grid((size_t)(2 * H + 2 * p) * (2 * W + 2 * p), NC), THREADS, 0, ctx->stream>>>(out, inp, H, W, p, 1);
    return launched("upsample + reflect pad", err);
}

nst_status cu_upsample2x_reflect_pad_backward(nst_cuda *ctx, float *dinp, const float *dout, int NC, int H,
                                              int W, int p, nst_error *err) {
    pad_backward_kernel<<<plane_grid((size_t)H * W, NC), THREADS, 0, ctx->stream>>>(dinp, dout, H, W, p, 1);
    return launched("upsample + reflect pad backward", err);
}

/* ---- reductions ------------------------------------------------------------------------------ */

/* parts per plane: about 8192 pixels each, at most 128 */
static int n_parts(int HW) {
    int P = (HW + 8191) / 8192;
    return P < 1 ? 1 : P > 128 ? 128 : P;
}

/* sums a and b over the block by a fixed tree (THREADS a power of two); thread 0 gets them */
__device__ static inline void block_sum2(double *a, double *b) {
    __shared__ double sa[THREADS], sb[THREADS];
    int t = threadIdx.x;
    sa[t] = *a;
    sb[t] = *b;
    __syncthreads();
    for (int s = THREADS / 2; s > 0; s >>= 1) {
        if (t < s) {
            sa[t] += sa[t + s];
            sb[t] += sb[t + s];
        }
        __syncthreads();
    }
    *a = sa[0];
    *b = sb[0];
}

/* the slice [*lo, *hi) of a plane of HW pixels that part blockIdx.x of P sums */
__device__ static inline void part_range(int HW, int P, int *lo, int *hi) {
    int chunk = (HW + P - 1) / P;
    *lo = blockIdx.x * chunk;
    *hi = min(HW, *lo + chunk);
}

/* part[(plane*P + part)*2 + {0,1}] = sum x, sum x^2 over the part's slice */
__global__ static void norm_stats_partial(double *part, const float *x, int HW, int P) {
    size_t plane = blockIdx.y;
    const float *xp = x + plane * HW;
    int lo, hi;
    part_range(HW, P, &lo, &hi);
    double s = 0.0, ss = 0.0;
    for (int i = lo + threadIdx.x; i < hi; i += THREADS) {
        double v = xp[i];
        s += v;
        ss += v * v;
    }
    block_sum2(&s, &ss);
    if (threadIdx.x == 0) {
        part[(plane * P + blockIdx.x) * 2] = s;
        part[(plane * P + blockIdx.x) * 2 + 1] = ss;
    }
}

/* mean and rstd of each plane from its partial sums (in double: the variance as
 * E[x^2] - mean^2 loses nothing that matters at double precision) */
__global__ static void norm_stats_final(float *mean, float *rstd, const double *part, int NC, int HW, int P) {
    int plane = blockIdx.x * blockDim.x + threadIdx.x;
    if (plane >= NC) return;
    double s = 0.0, ss = 0.0;
    for (int k = 0; k < P; k++) {
        s += part[((size_t)plane * P + k) * 2];
        ss += part[((size_t)plane * P + k) * 2 + 1];
    }
    double m = s / HW, var = ss / HW - m * m;
    if (var < 0.0) var = 0.0;
    mean[plane] = (float)m;
    rstd[plane] = (float)(1.0 / sqrt(var + (double)INSTANCE_NORM_EPS));
}

__global__ static void norm_apply(float *out, const float *x, const float *mean, const float *rstd,
                                  const float *gamma, const float *beta, const float *skip, int C, int HW,
                                  int relu) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    int plane = blockIdx.y, c = plane % C;
    if (i >= (size_t)HW) return;
    size_t k = (size_t)plane * HW + i;
    float m = mean[plane], scale = gamma[c] * rstd[plane], b = beta[c];
    float t = (x[k] - m) * scale + b; /* the CPU's expression (layers.c) */
    if (relu) t = t > 0.0f ? t : 0.0f;
    if (skip) t = t + skip[k];
    out[k] = t;
}

size_t cu_instance_norm_scratch_bytes(int NC, int HW) {
    return (size_t)NC * n_parts(HW) * 2 * sizeof(double) + (size_t)NC * 2 * sizeof(float);
}

nst_status cu_instance_norm_stats(nst_cuda *ctx, float *mean, float *rstd, const float *inp, int NC, int HW,
                                  void *scratch, nst_error *err) {
    int P = n_parts(HW);
    double *part = (double *)scratch;
    norm_stats_partial<<<dim3(P, NC), THREADS, 0, ctx->stream>>>(part, inp, HW, P);
    norm_stats_final<<<(NC + THREADS - 1) / THREADS, THREADS, 0, ctx->stream>>>(mean, rstd, part, NC, HW, P);
    return launched("instance norm statistics", err);
}

nst_status cu_instance_norm_forward(nst_cuda *ctx, float *out, float *mean, float *rstd, const float *inp,
                                    const float *gamma, const float *beta, const float *skip, int N, int C,
                                    int HW, int relu, void *scratch, nst_error *err) {
    nst_status s = cu_instance_norm_stats(ctx, mean, rstd, inp, N * C, HW, scratch, err);
    if (s) return s;
    norm_apply<<<plane_grid(HW, N * C), THREADS, 0, ctx->stream>>>(out, inp, mean, rstd, gamma, beta, skip, C, HW, relu);
    return launched("instance norm", err);
}

/* each padded pixel: the normalised value of the pixel it copies (norm_apply's expression) */
__global__ static void norm_pad_kernel(float *out, const float *x, const float *mean, const float *rstd,
                                       const float *gamma, const float *beta, int C, int H, int W, int p, int up,
                                       int relu) {
    int Hs = H << up, Ws = W << up, Ho = Hs + 2 * p, Wo = Ws + 2 * p;
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    size_t plane = blockIdx.y;
    if (i >= (unsigned)Ho * Wo) return;
    int k = (int)(i / (unsigned)Wo), j = (int)(i % (unsigned)Wo);
    int si = reflect_index(k - p, Hs) >> up, sj = reflect_index(j - p, Ws) >> up;
    int c = (int)(plane % C);
    float m = mean[plane], scale = gamma[c] * rstd[plane], b = beta[c];
    float t = (x[(plane * H + si) * W + sj] - m) * scale + b;
    if (relu) t = t > 0.0f ? t : 0.0f;
    out[plane * Ho * Wo + i] = t;
}

nst_status cu_instance_norm_pad(nst_cuda *ctx, float *out, const float *inp, const float *mean, const float *rstd,
                                const float *gamma, const float *beta, int N, int C, int H, int W, int p, int up,
                                int relu, nst_error *err) {
    size_t n = (size_t)((H << up) + 2 * p) * ((W << up) + 2 * p);
    norm_pad_kernel<<<plane_grid(n, N * C), THREADS, 0, ctx->stream>>>(out, inp, mean, rstd, gamma, beta, C, H, W, p, up, relu);
    return launched("instance norm + padding", err);
}

/* part: sum g, sum g * xhat over the slice, g the gradient masked by the ReLU */
__global__ static void norm_grad_partial(double *part, const float *dout, const float *out, const float *x,
                                         const float *mean, const float *rstd, int HW, int P, int relu) {
    size_t plane = blockIdx.y;
    size_t base = plane * HW;
    float m = mean[plane], rs = rstd[plane];
    int lo, hi;
    part_range(HW, P, &lo, &hi);
    double sg = 0.0, sgx = 0.0;
    for (int i = lo + threadIdx.x; i < hi; i += THREADS) {
        float g = dout[base + i];
        if (relu && !(out[base + i] > 0.0f)) g = 0.0f;
        float xh = (x[base + i] - m) * rs;
        sg += g;
        sgx += (double)g * xh;
    }
    block_sum2(&sg, &sgx);
    if (threadIdx.x == 0) {
        part[(plane * P + blockIdx.x) * 2] = sg;
        part[(plane * P + blockIdx.x) * 2 + 1] = sgx;
    }
}

/* one thread per channel: each plane's mean(g), mean(g xhat) into pstat (NC,2); the
 * batch's sums into dbeta, dgamma */
__global__ static void norm_grad_final(float *pstat, float *dgamma, float *dbeta, const double *part, int N,
                                       int C, int HW, int P) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double tg = 0.0, tgx = 0.0;
    for (int n = 0; n < N; n++) {
        size_t plane = (size_t)n * C + c;
        double sg = 0.0, sgx = 0.0;
        for (int k = 0; k < P; k++) {
            sg += part[(plane * P + k) * 2];
            sgx += part[(plane * P + k) * 2 + 1];
        }
        pstat[plane * 2] = (float)(sg / HW);
        pstat[plane * 2 + 1] = (float)(sgx / HW);
        tg += sg;
        tgx += sgx;
    }
    dbeta[c] += (float)tg;
    dgamma[c] += (float)tgx;
}

__global__ static void norm_grad_apply(float *dinp, const float *dout, const float *out, const float *x,
                                       const float *mean, const float *rstd, const float *gamma,
                                       const float *pstat, int C, int HW, int relu) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    int plane = blockIdx.y, c = plane % C;
    if (i >= (size_t)HW) return;
    size_t k = (size_t)plane * HW + i;
    float m = mean[plane], rs = rstd[plane], scale = gamma[c] * rs;
    float mg = pstat[2 * plane], mgx = pstat[2 * plane + 1];
    float g = dout[k];
    if (relu && !(out[k] > 0.0f)) g = 0.0f;
    float xh = (x[k] - m) * rs;
    dinp[k] = scale * (g - mg - xh * mgx);
}

nst_status cu_instance_norm_backward(nst_cuda *ctx, float *dinp, float *dgamma, float *dbeta,
                                     const float *dout, const float *out, const float *inp,
                                     const float *mean, const float *rstd, const float *gamma, int N,
                                     int C, int HW, int relu, void *scratch, nst_error *err) {
    int NC = N * C, P = n_parts(HW);
    double *part = (double *)scratch;
    float *pstat = (float *)(part + (size_t)NC * P * 2);
    norm_grad_partial<<<dim3(P, NC), THREADS, 0, ctx->stream>>>(part, dout, out, inp, mean, rstd, HW, P, relu);
    norm_grad_final<<<(C + THREADS - 1) / THREADS, THREADS, 0, ctx->stream>>>(pstat, dgamma, dbeta, part, N, C, HW, P);
    norm_grad_apply<<<plane_grid(HW, NC), THREADS, 0, ctx->stream>>>(dinp, dout, out, inp, mean, rstd, gamma, pstat, C, HW, relu);
    return launched("instance norm backward", err);
}

/* ---- elementwise ------------------------------------------------------------------------------ */

__global__ static void sigmoid255_kernel(float *out, const float *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 255.0f / (1.0f + expf(-inp[i])); /* expf overflow -> inf -> 0, never NaN */
}

__global__ static void sigmoid255_backward_kernel(float *dinp, const float *dout, const float *out, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dinp[i] = dout[i] * out[i] * (1.0f - out[i] * (1.0f / 255.0f));
}

__global__ static void add_kernel(float *out, const float *a, const float *b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

__global__ static void add_bias_kernel(float *x, const float *bias, int C, int HW) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)HW) x[(size_t)blockIdx.y * HW + i] += bias[blockIdx.y % C];
}

/* one block per channel: dbias[c] += the sum over the batch and the pixels, in a fixed order */
__global__ static void bias_backward_kernel(float *dbias, const float *dout, int N, int C, int HW) {
    int c = blockIdx.x;
    double s = 0.0, unused = 0.0;
    for (int n = 0; n < N; n++) {
        const float *g = dout + ((size_t)n * C + c) * HW;
        for (int i = threadIdx.x; i < HW; i += THREADS) s += g[i];
    }
    block_sum2(&s, &unused);
    if (threadIdx.x == 0) dbias[c] += (float)s;
}

/* optim/adam_rule.h, the CPU's rule */
__global__ static void adam_kernel(float *x, float *m, float *v, const float *g, size_t n, adam_coeffs c) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float xi = x[i], mi = m[i], vi = v[i];
    adam_rule(&xi, g[i], &mi, &vi, c);
    x[i] = xi;
    m[i] = mi;
    v[i] = vi;
}

nst_status cu_sigmoid255_forward(nst_cuda *ctx, float *out, const float *inp, size_t n, nst_error *err) {
    sigmoid255_kernel<<<nst_cuda_blocks(n), THREADS, 0, ctx->stream>>>(out, inp, n);
    return launched("sigmoid", err);
}

nst_status cu_sigmoid255_backward(nst_cuda *ctx, float *dinp, const float *dout, const float *out, size_t n,
                                  nst_error *err) {
    sigmoid255_backward_kernel<<<nst_cuda_blocks(n), THREADS, 0, ctx->stream>>>(dinp, dout, out, n);
    return launched("sigmoid backward", err);
}

nst_status cu_add(nst_cuda *ctx, float *out, const float *a, const float *b, size_t n, nst_error *err) {
    add_kernel<<<nst_cuda_blocks(n), THREADS, 0, ctx->stream>>>(out, a, b, n);
    return launched("add", err);
}

nst_status cu_add_bias(nst_cuda *ctx, float *x, const float *bias, int N, int C, int HW, nst_error *err) {
    add_bias_kernel<<<plane_grid(HW, N * C), THREADS, 0, ctx->stream>>>(x, bias, C, HW);
    return launched("bias", err);
}

nst_status cu_bias_backward(nst_cuda *ctx, float *dbias, const float *dout, int N, int C, int HW, nst_error *err) {
    bias_backward_kernel<<<C, THREADS, 0, ctx->stream>>>(dbias, dout, N, C, HW);
    return launched("bias backward", err);
}

nst_status cu_adam_update(nst_cuda *ctx, float *x, float *m, float *v, const float *g, size_t n, adam_coeffs c,
                          nst_error *err) {
    adam_kernel<<<nst_cuda_blocks(n), THREADS, 0, ctx->stream>>>(x, m, v, g, n, c);
    return launched("Adam", err);
}

/* ---- images <-> planes ------------------------------------------------------------------------ */

__global__ static void image_to_planes_kernel(float *x, const float *img, int H, int W, int Hp, int Wp) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    int c = blockIdx.y;
    if (i >= (unsigned)Hp * Wp) return;
    int y = (int)(i / (unsigned)Wp), xx = (int)(i % (unsigned)Wp);
    int sy = y < H ? y : H - 1, sx = xx < W ? xx : W - 1;
    x[(size_t)c * Hp * Wp + i] = img[((size_t)sy * W + sx) * 3 + c] * (1.0f / 255.0f);
}

__global__ static void planes_to_image_kernel(float *img, const float *yv, int H, int W, int Hp, int Wp) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (unsigned)H * W) return;
    int y = (int)(i / (unsigned)W), x = (int)(i % (unsigned)W);
    for (int c = 0; c < 3; c++) img[(size_t)i * 3 + c] = yv[((size_t)c * Hp + y) * Wp + x];
}

nst_status cu_image_to_planes(nst_cuda *ctx, float *x, const float *img, int H, int W, int Hp, int Wp,
                              nst_error *err) {
    image_to_planes_kernel<<<plane_grid((size_t)Hp * Wp, 3), THREADS, 0, ctx->stream>>>(x, img, H, W, Hp, Wp);
    return launched("image to planes", err);
}

nst_status cu_planes_to_image(nst_cuda *ctx, float *img, const float *y, int H, int W, int Hp, int Wp,
                              nst_error *err) {
    planes_to_image_kernel<<<nst_cuda_blocks((size_t)H * W), THREADS, 0, ctx->stream>>>(img, y, H, W, Hp, Wp);
    return launched("planes to image", err);
}

/* ---- device buffers ---------------------------------------------------------------------------- */

nst_status cu_buffer(nst_cuda *ctx, float **p, size_t n, nst_error *err) {
    return nst_cuda_alloc(ctx, (void **)p, n, sizeof(float), "a buffer", err);
}

void cu_buffer_free(float *p) { cudaFree(p); }

nst_status cu_upload(nst_cuda *ctx, float *dst, const float *src, size_t n, nst_error *err) {
    NST_CUDA_TRY(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, ctx->stream), err);
    return cu_sync(ctx, err);
}

nst_status cu_download(nst_cuda *ctx, float *dst, const float *src, size_t n, nst_error *err) {
    NST_CUDA_TRY(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, ctx->stream), err);
    return cu_sync(ctx, err);
}

nst_status cu_sync(nst_cuda *ctx, nst_error *err) {
    NST_CUDA_TRY(cudaStreamSynchronize(ctx->stream), err);
    return NST_OK;
}

/* ---- convolution (cuDNN) -------------------------------------------------------------------- */

/* The legacy convolution API is deprecated in cuDNN 9 but remains the simplest complete
 * one (find, forward, both backward passes); its warnings are silenced here only. */
#pragma nv_diag_suppress 1215
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

struct cu_conv {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t desc;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    int train;
    /* own: the 9x9/1 kernels below instead of cuDNN (at most 4 output channels, fp32/tf32) */
    int own, N, C_in, C_out, H, W, Ho, Wo, K, S, bands, rb;
    char about[96];
};

void cu_conv_destroy(cu_conv *c) {
    if (!c) return;
    if (c->x) cudnnDestroyTensorDescriptor(c->x);
    if (c->y) cudnnDestroyTensorDescriptor(c->y);
    if (c->w) cudnnDestroyFilterDescriptor(c->w);
    if (c->desc) cudnnDestroyConvolutionDescriptor(c->desc);
    free(c);
}

const char *cu_conv_describe(const cu_conv *c) { return c->about; }

/* ---- own kernels: the 9x9 stride-1 convolution with at most 4 output channels ----------------
 * The style network's output layer (9x9/1, width -> 3). cuDNN has no good kernel for 3 output
 * channels (measured on an H100: 7.4 ms of a 17.8 ms 1024x1024 forward pass; in training
 * 8.9 ms of the 26 ms network step), because its GEMMs tile the 3 channels up to 32 or 64.
 * These kernels put the output channels in a float4 and tile the pixels instead:
 *   forward   a block computes a 32x32 tile of output pixels (a thread: 4 rows of a column,
 *             every output channel) from the input tile (+8 halo) and the weights, staged
 *             through shared memory a few input channels at a time;
 *   data      the same, gathered (no atomics): a 32x32 tile of input pixels, from the
 *             output-gradient tile (-8 halo, all channels) and 8 input channels at a time;
 *   filter    a block owns 3 input channels x 81 taps (one thread per tap, a float4 of the
 *             output channels) and a fixed band of rows of one image; it writes its partial
 *             sums, and a second kernel adds the bands in order (in double) into dweight.
 * Sums run in a fixed order: the same bits every run. Plain float FMA (fp32 and tf32 alike). */
#define C9_TW 32                /* tile width: threads in x */
#define C9_TY 8                 /* threads in y */
#define C9_R 4                  /* rows per thread */
#define C9_TH (C9_TY * C9_R)    /* tile height */
#define C9_IH (C9_TH + 8)       /* with the halo */
#define C9_IW (C9_TW + 8)
#define C9_FCI 4                /* forward: input channels per stage */
#define C9_DCI 8                /* data: input channels per pass */
#define C9_WR 16                /* filter: output rows per tile */
#define C9_WCI 3                /* filter: input channels per block (3 x 81 = 243 threads) */
#define C9_WP 41                /* filter: row pitch of the input tile (41 = 9 mod 32: no bank conflicts) */

__device__ static inline float f4c(const float4 &v, int c) { return c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w; }

/* HALF = 0: inp (N,C_in,H,W) fp32 planes, w (CO,C_in,9,9) fp32, out (N,CO,Ho,Wo) = the sums.
 * HALF = 1: inp (N,H,W,Ce) fp16, w (Co_e,9,9,Ce) fp16 (layers_cuda.h's fp16 layouts), out
 * (N,CO,Ho,Wo) fp32 planes = 255 sigmoid(sum + bias): the fp16 network's last layer and
 * its output (cu_h_output) in one kernel. */
template <int CO, int HALF>
__global__ static void __launch_bounds__(C9_TW * C9_TY) conv9_fwd_kernel(float *out, const void *inp_v, const void *w_v,
                                                                         const float *bias, int C_in, int Ce, int H,
                                                                         int W, int Ho, int Wo) {
    __shared__ float in_s[C9_FCI][C9_IH][C9_IW];
    __shared__ float4 w_s[C9_FCI][81];
    int tx = threadIdx.x, ty = threadIdx.y, tid = ty * C9_TW + tx;
    int x0 = blockIdx.x * C9_TW, y0 = blockIdx.y * C9_TH;
    size_t n = blockIdx.z;
    float acc[C9_R][CO];
#pragma unroll
    for (int r = 0; r < C9_R; r++)
#pragma unroll
        for (int c = 0; c < CO; c++) acc[r][c] = 0.0f;
    for (int ci0 = 0; ci0 < C_in; ci0 += C9_FCI) {
        __syncthreads();
        for (int i = tid; i < C9_FCI * C9_IH * C9_IW; i += C9_TW * C9_TY) {
            /* (fp16 NHWC: the channels fastest, so that neighbouring threads read neighbouring values) */
            int cl = HALF ? i % C9_FCI : i / (C9_IH * C9_IW), rc = HALF ? i / C9_FCI : i % (C9_IH * C9_IW);
            int r = rc / C9_IW, c = rc % C9_IW, ci = ci0 + cl, gy = y0 + r, gx = x0 + c;
            float v = 0.0f;
            if (ci < C_in && gy < H && gx < W) {
                if (HALF) v = __half2float(((const __half *)inp_v)[((n * H + gy) * W + gx) * Ce + ci]);
                else v = ((const float *)inp_v)[((n * C_in + ci) * H + gy) * W + gx];
            }
            in_s[cl][r][c] = v;
        }
        for (int i = tid; i < C9_FCI * 81; i += C9_TW * C9_TY) {
            int cl = i / 81, k = i % 81, ci = ci0 + cl;
            float t[4];
#pragma unroll
            for (int co = 0; co < 4; co++)
                t[co] = co >= CO || ci >= C_in ? 0.0f
                        : HALF ? __half2float(((const __half *)w_v)[((size_t)co * 81 + k) * Ce + ci])
                               : ((const float *)w_v)[((size_t)co * C_in + ci) * 81 + k];
            w_s[cl][k] = make_float4(t[0], t[1], t[2], t[3]);
        }
        __syncthreads();
#pragma unroll 1
        for (int cl = 0; cl < C9_FCI; cl++) {
#pragma unroll
            for (int kx = 0; kx < 9; kx++) {
                float v[C9_R + 8];
#pragma unroll
                for (int j = 0; j < C9_R + 8; j++) v[j] = in_s[cl][ty * C9_R + j][tx + kx];
#pragma unroll
                for (int ky = 0; ky < 9; ky++) {
                    float4 wv = w_s[cl][ky * 9 + kx];
#pragma unroll
                    for (int r = 0; r < C9_R; r++)
#pragma unroll
                        for (int c = 0; c < CO; c++) acc[r][c] = fmaf(f4c(wv, c), v[r + ky], acc[r][c]);
                }
            }
        }
    }
    int x = x0 + tx;
    if (x >= Wo) return;
#pragma unroll
    for (int r = 0; r < C9_R; r++) {
        int y = y0 + ty * C9_R + r;
        if (y >= Ho) break;
#pragma unroll
        for (int c = 0; c < CO; c++) {
            float t = acc[r][c];
            if (HALF) t = 255.0f / (1.0f + expf(-(t + bias[c])));
            out[((n * CO + c) * Ho + y) * Wo + x] = t;
        }
    }
}

/* dinp (N,C_in,H,W) = the gradient of the forward's sums, from dout (N,CO,Ho,Wo) */
template <int CO>
__global__ static void __launch_bounds__(C9_TW * C9_TY) conv9_data_kernel(float *dinp, const float *dout, const float *w,
                                                                          int C_in, int H, int W, int Ho, int Wo) {
    __shared__ float4 d_s[C9_IH][C9_IW];
    __shared__ float4 w_s[C9_DCI][81];
    int tx = threadIdx.x, ty = threadIdx.y, tid = ty * C9_TW + tx;
    int x0 = blockIdx.x * C9_TW, y0 = blockIdx.y * C9_TH;
    size_t n = blockIdx.z;
    /* the output gradient at (y0 - 8 + r, x0 - 8 + c), zero outside the output */
    for (int i = tid; i < C9_IH * C9_IW; i += C9_TW * C9_TY) {
        int r = i / C9_IW, c = i % C9_IW, gy = y0 - 8 + r, gx = x0 - 8 + c;
        int in = gy >= 0 && gy < Ho && gx >= 0 && gx < Wo;
        float t[4];
#pragma unroll
        for (int co = 0; co < 4; co++) t[co] = co < CO && in ? dout[((n * CO + co) * Ho + gy) * Wo + gx] : 0.0f;
        d_s[r][c] = make_float4(t[0], t[1], t[2], t[3]);
    }
    int x = x0 + tx;
    for (int ci0 = 0; ci0 < C_in; ci0 += C9_DCI) {
        __syncthreads();
        for (int i = tid; i < C9_DCI * 81; i += C9_TW * C9_TY) {
            int cl = i / 81, k = i % 81, ci = ci0 + cl;
            float t[4];
#pragma unroll
            for (int co = 0; co < 4; co++) t[co] = co < CO && ci < C_in ? w[((size_t)co * C_in + ci) * 81 + k] : 0.0f;
            w_s[cl][k] = make_float4(t[0], t[1], t[2], t[3]);
        }
        __syncthreads();
        float acc[C9_DCI][C9_R];
#pragma unroll
        for (int cl = 0; cl < C9_DCI; cl++)
#pragma unroll
            for (int r = 0; r < C9_R; r++) acc[cl][r] = 0.0f;
        /* input pixel (y, x) takes dout (y - ky, x - kx): tile row ty*R + r + 8 - ky */
#pragma unroll 1
        for (int kx = 0; kx < 9; kx++) {
            float4 v[C9_R + 8];
#pragma unroll
            for (int j = 0; j < C9_R + 8; j++) v[j] = d_s[ty * C9_R + j][tx + 8 - kx];
#pragma unroll
            for (int ky = 0; ky < 9; ky++)
#pragma unroll
                for (int cl = 0; cl < C9_DCI; cl++) {
                    float4 wv = w_s[cl][ky * 9 + kx];
#pragma unroll
                    for (int r = 0; r < C9_R; r++)
#pragma unroll
                        for (int c = 0; c < CO; c++) acc[cl][r] = fmaf(f4c(wv, c), f4c(v[r + 8 - ky], c), acc[cl][r]);
                }
        }
        if (x < W)
#pragma unroll
            for (int cl = 0; cl < C9_DCI; cl++) {
                int ci = ci0 + cl;
                if (ci >= C_in) break;
#pragma unroll
                for (int r = 0; r < C9_R; r++) {
                    int y = y0 + ty * C9_R + r;
                    if (y < H) dinp[((n * C_in + ci) * H + y) * W + x] = acc[cl][r];
                }
            }
    }
}

/* part[(chunk*C_in + ci)*81 + k] = the float4 (output channels) sums of dout * inp over
 * chunk = (image, band of rb rows); grid (chunks, ceil(C_in / 3)), 256 threads */
template <int CO>
__global__ static void __launch_bounds__(256) conv9_filter_kernel(float4 *part, const float *dout, const float *inp,
                                                                   int C_in, int H, int W, int Ho, int Wo, int bands,
                                                                   int rb) {
    __shared__ float4 d_s[C9_WR][C9_TW];
    __shared__ float in_s[C9_WCI][C9_WR + 8][C9_WP];
    int tid = threadIdx.x, chunk = blockIdx.x;
    size_t n = chunk / bands;
    int lo = (chunk % bands) * rb, hi = min(Ho, lo + rb);
    int cl = tid / 81, k = tid % 81, ky = k / 9, kx = k % 9, ci = blockIdx.y * C9_WCI + cl;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int y0 = lo; y0 < hi; y0 += C9_WR)
        for (int x0 = 0; x0 < Wo; x0 += C9_TW) {
            __syncthreads();
            for (int i = tid; i < C9_WR * C9_TW; i += 256) {
                int r = i / C9_TW, c = i % C9_TW, gy = y0 + r, gx = x0 + c;
                int in = gy < hi && gx < Wo;
                float t[4];
#pragma unroll
                for (int co = 0; co < 4; co++) t[co] = co < CO && in ? dout[((n * CO + co) * Ho + gy) * Wo + gx] : 0.0f;
                d_s[r][c] = make_float4(t[0], t[1], t[2], t[3]);
            }
            for (int i = tid; i < C9_WCI * (C9_WR + 8) * C9_IW; i += 256) {
                int l = i / ((C9_WR + 8) * C9_IW), rc = i % ((C9_WR + 8) * C9_IW), r = rc / C9_IW, c = rc % C9_IW;
                int cj = blockIdx.y * C9_WCI + l, gy = y0 + r, gx = x0 + c;
                in_s[l][r][c] = cj < C_in && gy < H && gx < W ? inp[((n * C_in + cj) * H + gy) * W + gx] : 0.0f;
            }
            __syncthreads();
            if (cl < C9_WCI) {
                const float *ip = &in_s[cl][ky][kx];
#pragma unroll 2
                for (int r = 0; r < C9_WR; r++)
#pragma unroll 8
                    for (int c = 0; c < C9_TW; c++) {
                        float4 d = d_s[r][c];
                        float v = ip[r * C9_WP + c];
                        acc.x = fmaf(d.x, v, acc.x);
                        if (CO > 1) acc.y = fmaf(d.y, v, acc.y);
                        if (CO > 2) acc.z = fmaf(d.z, v, acc.z);
                        if (CO > 3) acc.w = fmaf(d.w, v, acc.w);
                    }
            }
        }
    if (cl < C9_WCI && ci < C_in) part[((size_t)chunk * C_in + ci) * 81 + k] = acc;
}

/* dweight (CO,C_in,9,9) += the chunks' partial sums, added in order (double) */
__global__ static void conv9_filter_final(float *dweight, const float4 *part, int CO, int C_in, int chunks) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= CO * C_in * 81) return;
    int co = j / (C_in * 81), rest = j % (C_in * 81);
    double s = 0.0;
    for (int q = 0; q < chunks; q++) s += f4c(part[(size_t)q * C_in * 81 + rest], co);
    dweight[j] += (float)s;
}

/* the filter pass's bands: about 64 chunks over the batch, of whole 16-row tiles */
static void conv9_bands(int N, int Ho, int *bands, int *rb) {
    int tiles = (Ho + C9_WR - 1) / C9_WR, want = (64 + N - 1) / N;
    if (want > tiles) want = tiles;
    if (want < 1) want = 1;
    *rb = (tiles + want - 1) / want * C9_WR;
    *bands = (Ho + *rb - 1) / *rb;
}

#define C9_DISPATCH(CO_, launch) \
    switch (CO_) {               \
    case 1: launch(1); break;    \
    case 2: launch(2); break;    \
    case 3: launch(3); break;    \
    default: launch(4); break;   \
    }

static dim3 conv9_grid(int W, int H, int N) { return dim3((W + C9_TW - 1) / C9_TW, (H + C9_TH - 1) / C9_TH, N); }

nst_status cu_h_conv9_output(nst_cuda *ctx, float *y, const void *inp, const void *wh, const float *bias, int N,
                             int Hp, int Wp, int Ce, nst_error *err) {
    int Ho = Hp - 8, Wo = Wp - 8;
    if (Ho < 1 || Wo < 1 || Ce % 8) return nst_fail(err, NST_ERR_ARG, "fp16 9x9 output layer: %dx%d input, %d channels", Wp, Hp, Ce);
    conv9_fwd_kernel<3, 1><<<conv9_grid(Wo, Ho, N), dim3(C9_TW, C9_TY), 0, ctx->stream>>>(y, inp, wh, bias, Ce, Ce, Hp, Wp, Ho, Wo);
    return launched("fp16 9x9 output layer", err);
}

/* One candidate algorithm of a pass, from cudnnFind (measured, fastest first) or from
 * cuDNN's heuristics (cudnnGet*_v7, the same ranking every run). */
typedef struct {
    int algo;
    cudnnStatus_t status;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
    float ms;
    size_t memory;
} cand;

template <typename Perf> static int to_cands(const Perf *p, int n, cand *c) {
    for (int i = 0; i < n; i++) c[i] = {(int)p[i].algo, p[i].status, p[i].determinism, p[i].mathType, p[i].time, p[i].memory};
    return n;
}

enum { PASS_FWD, PASS_DATA, PASS_FILTER, MAXA = 16 };

/* the candidates of a pass, best first */
static cudnnStatus_t candidates(const cu_conv *c, cudnnHandle_t h, int pass, int search, cand *out, int *n) {
    cudnnStatus_t st;
    if (pass == PASS_FWD) {
        cudnnConvolutionFwdAlgoPerf_t p[MAXA];
        st = search ? cudnnFindConvolutionForwardAlgorithm(h, c->x, c->w, c->desc, c->y, MAXA, n, p)
                    : cudnnGetConvolutionForwardAlgorithm_v7(h, c->x, c->w, c->desc, c->y, MAXA, n, p);
        if (st == CUDNN_STATUS_SUCCESS) to_cands(p, *n, out);
    } else if (pass == PASS_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t p[MAXA];
        st = search ? cudnnFindConvolutionBackwardDataAlgorithm(h, c->w, c->y, c->desc, c->x, MAXA, n, p)
                    : cudnnGetConvolutionBackwardDataAlgorithm_v7(h, c->w, c->y, c->desc, c->x, MAXA, n, p);
        if (st == CUDNN_STATUS_SUCCESS) to_cands(p, *n, out);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t p[MAXA];
        st = search ? cudnnFindConvolutionBackwardFilterAlgorithm(h, c->x, c->y, c->desc, c->w, MAXA, n, p)
                    : cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, c->x, c->y, c->desc, c->w, MAXA, n, p);
        if (st == CUDNN_STATUS_SUCCESS) to_cands(p, *n, out);
    }
    return st;
}

/* the workspace an algorithm needs (SIZE_MAX if cuDNN cannot say) */
static size_t workspace(const cu_conv *c, cudnnHandle_t h, int pass, int algo) {
    size_t b = 0;
    cudnnStatus_t st =
        pass == PASS_FWD ? cudnnGetConvolutionForwardWorkspaceSize(h, c->x, c->w, c->desc, c->y, (cudnnConvolutionFwdAlgo_t)algo, &b)
        : pass == PASS_DATA
            ? cudnnGetConvolutionBackwardDataWorkspaceSize(h, c->w, c->y, c->desc, c->x, (cudnnConvolutionBwdDataAlgo_t)algo, &b)
            : cudnnGetConvolutionBackwardFilterWorkspaceSize(h, c->x, c->y, c->desc, c->w, (cudnnConvolutionBwdFilterAlgo_t)algo, &b);
    return st == CUDNN_STATUS_SUCCESS ? b : (size_t)-1;
}

/* The first usable candidate of a pass: it ran (or is supported), is deterministic (if any
 * usable one is), fits the workspace limit and computes in the precision asked for (fp32:
 * FMA only, never tensor cores; tf32: no conversion to half precision). */
static nst_status choose(cu_conv *c, nst_cuda *ctx, int pass, nst_precision precision, int search, size_t ws_limit, int *algo,
                         size_t *ws, nst_error *err) {
    static const char *const names[] = {"forward", "backward-data", "backward-filter"};
    cand cs[MAXA];
    int n = 0;
    NST_CUDNN_TRY(candidates(c, ctx->cudnn, pass, search, cs, &n), err);
    /* 3x3 stride-1 backward-data by heuristics: ALGO_1 when it is a usable candidate. The
     * heuristics rank FFT_TILING first for the residual blocks' 128 -> 128 layers, which
     * measured 0.6 ms per layer on an H100 (batch 4 at 64x64; the forward pass takes
     * 0.18 ms), where ALGO_1 (PyTorch's usual choice there; deterministic, no workspace
     * to speak of) takes about the forward's time. A fixed rule: the same choice every run. */
    if (pass == PASS_DATA && !search && c->K == 3 && c->S == 1)
        for (int k = 1; k < n; k++)
            if (cs[k].algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 && cs[k].status == CUDNN_STATUS_SUCCESS &&
                cs[k].determinism == CUDNN_DETERMINISTIC && cs[k].math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
                !(precision == NST_PRECISION_FP32 && cs[k].math == CUDNN_TENSOR_OP_MATH) &&
                workspace(c, ctx->cudnn, pass, cs[k].algo) <= ws_limit) {
                cand t = cs[k];
                memmove(cs + 1, cs, k * sizeof *cs);
                cs[0] = t;
                break;
            }
    /* a deterministic algorithm if one fits; else (never seen) the best of the others */
    for (int k = 0; k < 2 * n; k++) {
        const cand *p = &cs[k % n];
        if (p->status != CUDNN_STATUS_SUCCESS || (k < n && p->determinism != CUDNN_DETERMINISTIC)) continue;
        if (p->math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION || (precision == NST_PRECISION_FP32 && p->math == CUDNN_TENSOR_OP_MATH)) continue;
        size_t need = workspace(c, ctx->cudnn, pass, p->algo);
        if (need > ws_limit) continue;
        *algo = p->algo;
        if (need > *ws) *ws = need;
        size_t len = strlen(c->about);
        snprintf(c->about + len, sizeof c->about - len, "%s%s %d%s", len ? ", " : "", pass == PASS_FWD ? "fwd" : pass == PASS_DATA ? "data" : "filter",
                 p->algo, p->determinism == CUDNN_DETERMINISTIC ? "" : " (non-deterministic)");
        if (search) {
            len = strlen(c->about);
            snprintf(c->about + len, sizeof c->about - len, " (%.3f ms)", p->ms);
        }
        return NST_OK;
    }
    /* none: the plain implicit-GEMM kernels, which take any shape (and little workspace) */
    static const int fallback[3] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1};
    size_t need = workspace(c, ctx->cudnn, pass, fallback[pass]);
    if (need <= ws_limit) {
        *algo = fallback[pass];
        if (need > *ws) *ws = need;
        size_t len = strlen(c->about);
        snprintf(c->about + len, sizeof c->about - len, "%s%s %d (fallback)", len ? ", " : "",
                 pass == PASS_FWD ? "fwd" : pass == PASS_DATA ? "data" : "filter", fallback[pass]);
        return NST_OK;
    }
    return nst_fail(err, NST_ERR_IO, "cuDNN: no usable %s algorithm for a %s convolution (%d candidates)",
                    names[pass], precision == NST_PRECISION_FP32 ? "fp32" : precision == NST_PRECISION_TF32 ? "tf32" : "fp16", n);
}

nst_status cu_conv_create(cu_conv **out, nst_cuda *ctx, int N, int C_in, int C_out, int H, int W, int K, int S,
                          nst_precision precision, int train, int search, int own, size_t ws_limit,
                          size_t *ws_bytes, nst_error *err) {
    *out = NULL;
    *ws_bytes = 0;
    int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    if (H < K || W < K || Ho < 1 || Wo < 1)
        return nst_fail(err, NST_ERR_ARG, "convolution %dx%d of a %dx%d input: input too small", K, K, W, H);
    cu_conv *c = (cu_conv *)calloc(1, sizeof *c);
    if (!c) return nst_fail(err, NST_ERR_NOMEM, "out of memory");
    c->train = train;
    if (precision == NST_PRECISION_FP16 && train) {
        free(c);
        return nst_fail(err, NST_ERR_ARG, "fp16 convolutions are for inference only");
    }
    cudnnMathType_t math = precision == NST_PRECISION_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    /* fp16: NHWC half tensors (KRSC weights), accumulated in float */
    cudnnDataType_t dt = precision == NST_PRECISION_FP16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    cudnnTensorFormat_t fmt = precision == NST_PRECISION_FP16 ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    nst_status s;
#define TRY(call)                                                                  \
    if ((s = nst_cudnn_check((call), #call, err)) != NST_OK) {                     \
        cu_conv_destroy(c);                                                        \
        return s;                                                                  \
    }
    TRY(cudnnCreateTensorDescriptor(&c->x));
    TRY(cudnnCreateTensorDescriptor(&c->y));
    TRY(cudnnCreateFilterDescriptor(&c->w));
    TRY(cudnnCreateConvolutionDescriptor(&c->desc));
    TRY(cudnnSetTensor4dDescriptor(c->x, fmt, dt, N, C_in, H, W));
    TRY(cudnnSetTensor4dDescriptor(c->y, fmt, dt, N, C_out, Ho, Wo));
    TRY(cudnnSetFilter4dDescriptor(c->w, dt, fmt, C_out, C_in, K, K));
    TRY(cudnnSetConvolution2dDescriptor(c->desc, 0, 0, S, S, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    TRY(cudnnSetConvolutionMathType(c->desc, math));
#undef TRY
    int n, ch, h, w;
    if ((s = nst_cudnn_check(cudnnGetConvolution2dForwardOutputDim(c->desc, c->x, c->w, &n, &ch, &h, &w), "cuDNN output size", err)) ||
        (n != N || ch != C_out || h != Ho || w != Wo)) {
        cu_conv_destroy(c);
        return s ? s : nst_fail(err, NST_ERR_IO, "cuDNN: convolution output %dx%dx%dx%d, expected %dx%dx%dx%d", n, ch, h, w, N,
                                C_out, Ho, Wo);
    }
    c->N = N, c->C_in = C_in, c->C_out = C_out, c->H = H, c->W = W, c->Ho = Ho, c->Wo = Wo, c->K = K, c->S = S;
    {
        /* the output layer's geometry: own kernels (see above), unless the caller says not */
        size_t need = 0;
        if (K == 9 && S == 1 && C_out <= 4 && precision != NST_PRECISION_FP16 && own) {
            conv9_bands(N, Ho, &c->bands, &c->rb);
            need = train ? (size_t)N * c->bands * C_in * 81 * sizeof(float4) : 0;
            c->own = need <= ws_limit;
        }
        if (c->own) {
            snprintf(c->about, sizeof c->about, "own 9x9 kernels%s", train ? " (fwd, data, filter)" : "");
            *ws_bytes = need;
            *out = c;
            return NST_OK;
        }
    }
    int a = 0;
    if ((s = choose(c, ctx, PASS_FWD, precision, search, ws_limit, &a, ws_bytes, err))) goto fail;
    c->fwd = (cudnnConvolutionFwdAlgo_t)a;
    if (train) {
        if ((s = choose(c, ctx, PASS_DATA, precision, search, ws_limit, &a, ws_bytes, err))) goto fail;
        c->bwd_data = (cudnnConvolutionBwdDataAlgo_t)a;
        if ((s = choose(c, ctx, PASS_FILTER, precision, search, ws_limit, &a, ws_bytes, err))) goto fail;
        c->bwd_filter = (cudnnConvolutionBwdFilterAlgo_t)a;
    }
    *out = c;
    return NST_OK;
fail: {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    nst_fail(err, s, "%.700s (%dx%d/%d, %d -> %d channels, %dx%d input, batch %d)", msg, K, K, S, C_in, C_out, W, H, N);
    cu_conv_destroy(c);
    return s;
}
}

nst_status cu_conv_forward(nst_cuda *ctx, const cu_conv *c, float *out, const float *inp, const float *weight,
                           void *ws, size_t ws_bytes, nst_error *err) {
    if (c->own) {
#define LAUNCH(CO) conv9_fwd_kernel<CO, 0><<<conv9_grid(c->Wo, c->Ho, c->N), dim3(C9_TW, C9_TY), 0, ctx->stream>>>( \
        out, inp, weight, NULL, c->C_in, c->C_in, c->H, c->W, c->Ho, c->Wo)
        C9_DISPATCH(c->C_out, LAUNCH);
#undef LAUNCH
        return launched("9x9 convolution (own kernel)", err);
    }
    const float one = 1.0f, zero = 0.0f;
    NST_CUDNN_TRY(cudnnConvolutionForward(ctx->cudnn, &one, c->x, inp, c->w, weight, c->desc, c->fwd, ws, ws_bytes,
                                          &zero, c->y, out), err);
    return NST_OK;
}

nst_status cu_conv_backward_input(nst_cuda *ctx, const cu_conv *c, float *dinp, const float *dout,
                                  const float *weight, void *ws, size_t ws_bytes, nst_error *err) {
    if (!c->train) return nst_fail(err, NST_ERR_ARG, "convolution backward without training setup");
    if (c->own) {
#define LAUNCH(CO) conv9_data_kernel<CO><<<conv9_grid(c->W, c->H, c->N), dim3(C9_TW, C9_TY), 0, ctx->stream>>>( \
        dinp, dout, weight, c->C_in, c->H, c->W, c->Ho, c->Wo)
        C9_DISPATCH(c->C_out, LAUNCH);
#undef LAUNCH
        return launched("9x9 convolution backward-data (own kernel)", err);
    }
    const float one = 1.0f, zero = 0.0f;
    NST_CUDNN_TRY(cudnnConvolutionBackwardData(ctx->cudnn, &one, c->w, weight, c->y, dout, c->desc, c->bwd_data, ws,
                                               ws_bytes, &zero, c->x, dinp), err);
    return NST_OK;
}

nst_status cu_conv_backward_weight(nst_cuda *ctx, const cu_conv *c, float *dweight, const float *dout,
                                   const float *inp, void *ws, size_t ws_bytes, nst_error *err) {
    if (!c->train) return nst_fail(err, NST_ERR_ARG, "convolution backward without training setup");
    if (c->own) {
        int chunks = c->N * c->bands;
        if (ws_bytes < (size_t)chunks * c->C_in * 81 * sizeof(float4))
            return nst_fail(err, NST_ERR_ARG, "9x9 convolution backward-filter: workspace of %zu bytes too small", ws_bytes);
        float4 *part = (float4 *)ws;
        dim3 grid(chunks, (c->C_in + C9_WCI - 1) / C9_WCI);
#define LAUNCH(CO) conv9_filter_kernel<CO><<<grid, 256, 0, ctx->stream>>>(part, dout, inp, c->C_in, c->H, c->W, c->Ho, c->Wo, \
                                                                          c->bands, c->rb)
        C9_DISPATCH(c->C_out, LAUNCH);
#undef LAUNCH
        int n = c->C_out * c->C_in * 81;
        conv9_filter_final<<<(n + THREADS - 1) / THREADS, THREADS, 0, ctx->stream>>>(dweight, part, c->C_out, c->C_in, chunks);
        return launched("9x9 convolution backward-filter (own kernel)", err);
    }
    const float one = 1.0f;
    NST_CUDNN_TRY(cudnnConvolutionBackwardFilter(ctx->cudnn, &one, c->x, inp, c->y, dout, c->desc, c->bwd_filter, ws,
                                                 ws_bytes, &one, c->w, dweight), err);
    return NST_OK;
}

/* ---- fp16 NHWC inference (NST_PRECISION_FP16) -------------------------------------------------------- */

__global__ static void h_weights_kernel(__half *wh, const float *w, int C_out, int C_in, int K, int Ci_e, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int ci = (int)(i % Ci_e);
    size_t r = i / Ci_e;
    int kx = (int)(r % K);
    r /= K;
    int ky = (int)(r % K), co = (int)(r / K);
    float v = co < C_out && ci < C_in ? w[(((size_t)co * C_in + ci) * K + ky) * K + kx] : 0.0f;
    wh[i] = __float2half_rn(v);
}

nst_status cu_h_weights(nst_cuda *ctx, void *wh, const float *w, int C_out, int C_in, int K, nst_error *err) {
    size_t n = (size_t)cu_h_channels(C_out) * K * K * cu_h_channels(C_in);
    h_weights_kernel<<<nst_cuda_blocks(n), THREADS, 0, ctx->stream>>>((__half *)wh, w, C_out, C_in, K, cu_h_channels(C_in), n);
    return launched("fp16 weights", err);
}

/* one thread per padded pixel of image blockIdx.y: its Ce channels */
__global__ static void h_input_pad_kernel(__half2 *out, const float *x, int H, int W, int p, int Ce) {
    int Ho = H + 2 * p, Wo = W + 2 * p;
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    size_t n = blockIdx.y, hw = (size_t)H * W;
    if (i >= (unsigned)Ho * Wo) return;
    int k = (int)(i / (unsigned)Wo), j = (int)(i % (unsigned)Wo);
    int si = reflect_index(k - p, H), sj = reflect_index(j - p, W);
    const float *xp = x + n * 3 * hw + (size_t)si * W + sj;
    __half2 *o = out + ((n * Ho * Wo + i) * Ce) / 2;
    o[0] = __floats2half2_rn(xp[0], xp[hw]);
    o[1] = __floats2half2_rn(xp[2 * hw], 0.0f);
    for (int c = 2; c < Ce / 2; c++) o[c] = __floats2half2_rn(0.0f, 0.0f);
}

nst_status cu_h_input_pad(nst_cuda *ctx, void *out, const float *x, int N, int H, int W, int p, int Ce,
                          nst_error *err) {
    if (Ce < 4 || Ce % 2) return nst_fail(err, NST_ERR_ARG, "fp16 input: %d channels", Ce);
    h_input_pad_kernel<<<plane_grid((size_t)(H + 2 * p) * (W + 2 * p), N), THREADS, 0, ctx->stream>>>((__half2 *)out, x, H, W, p, Ce);
    return launched("fp16 input + padding", err);
}

/* one thread per (padded pixel, 8 channels) of image blockIdx.y: a 16-byte copy */
__global__ static void h_pad_kernel(uint4 *out, const uint4 *inp, int H, int W, int C8, int p, int up) {
    int Hs = H << up, Ws = W << up, Ho = Hs + 2 * p, Wo = Ws + 2 * p;
    size_t per = (size_t)Ho * Wo * C8, n = blockIdx.y;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= per) return;
    int c = (int)(i % C8);
    unsigned pix = (unsigned)(i / C8);
    int k = (int)(pix / (unsigned)Wo), j = (int)(pix % (unsigned)Wo);
    int si = reflect_index(k - p, Hs) >> up, sj = reflect_index(j - p, Ws) >> up;
    out[n * per + i] = inp[((n * H + si) * W + sj) * C8 + c];
}

nst_status cu_h_pad(nst_cuda *ctx, void *out, const void *inp, int N, int H, int W, int Ce, int p, int up,
                    nst_error *err) {
    size_t per = (size_t)((H << up) + 2 * p) * ((W << up) + 2 * p) * (Ce / 8);
    h_pad_kernel<<<plane_grid(per, N), THREADS, 0, ctx->stream>>>((uint4 *)out, (const uint4 *)inp, H, W, Ce / 8, p, up);
    return launched("fp16 padding", err);
}

/* parts per image for the statistics: about 16384 values each, at most 1024 */
static int h_parts(int HW, int Ce) {
    size_t P = ((size_t)HW * Ce + 16383) / 16384;
    if (P > 1024) P = 1024;
    if (P > (size_t)HW) P = HW;
    return P < 1 ? 1 : (int)P;
}

size_t cu_h_norm_scratch_bytes(int N, int Ce, int HW) { return (size_t)N * h_parts(HW, Ce) * Ce * 2 * sizeof(double); }

/* block (C2 = Ce/2 channel pairs, R pixel rows), grid (P parts, N images): part[((n*P + part)*Ce
 * + c)*2 + {0,1}] = sum z, sum z^2 of channel c over the part's pixels (fixed order: per
 * thread, then over the R rows in order) */
__global__ static void h_stats_partial(double *part, const __half2 *z, int HW, int C2, int P) {
    extern __shared__ double sh[]; /* 4 * R * C2 */
    int tx = threadIdx.x, ty = threadIdx.y, R = blockDim.y;
    size_t n = blockIdx.y;
    int chunk = (HW + P - 1) / P, lo = blockIdx.x * chunk, hi = min(HW, lo + chunk);
    double s0 = 0.0, q0 = 0.0, s1 = 0.0, q1 = 0.0;
    for (int pix = lo + ty; pix < hi; pix += R) {
        float2 v = __half22float2(z[(n * HW + pix) * C2 + tx]);
        s0 += v.x, q0 += (double)v.x * v.x;
        s1 += v.y, q1 += (double)v.y * v.y;
    }
    int t = ty * C2 + tx, T = R * C2;
    sh[t] = s0, sh[T + t] = q0, sh[2 * T + t] = s1, sh[3 * T + t] = q1;
    __syncthreads();
    if (ty) return;
    for (int r = 1; r < R; r++) {
        int u = r * C2 + tx;
        s0 += sh[u], q0 += sh[T + u], s1 += sh[2 * T + u], q1 += sh[3 * T + u];
    }
    double *o = part + ((n * P + blockIdx.x) * (2 * C2) + 2 * tx) * 2;
    o[0] = s0, o[1] = q0, o[2] = s1, o[3] = q1;
}

__global__ static void h_stats_final(float *mean, float *rstd, const double *part, int N, int C, int Ce, int HW, int P) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * C) return;
    int n = k / C, c = k % C;
    double s = 0.0, ss = 0.0;
    for (int q = 0; q < P; q++) {
        const double *o = part + (((size_t)n * P + q) * Ce + c) * 2;
        s += o[0], ss += o[1];
    }
    double m = s / HW, var = ss / HW - m * m;
    if (var < 0.0) var = 0.0;
    mean[k] = (float)m;
    rstd[k] = (float)(1.0 / sqrt(var + (double)INSTANCE_NORM_EPS));
}

nst_status cu_h_norm_stats(nst_cuda *ctx, float *mean, float *rstd, const void *z, int N, int C, int Ce, int HW,
                           void *scratch, nst_error *err) {
    int C2 = Ce / 2, R = C2 >= 256 ? 1 : 256 / C2, P = h_parts(HW, Ce);
    if (Ce % 8 || C2 > 1024) return nst_fail(err, NST_ERR_ARG, "fp16 instance norm: %d channels", Ce);
    h_stats_partial<<<dim3(P, N), dim3(C2, R), 4 * (size_t)R * C2 * sizeof(double), ctx->stream>>>(
        (double *)scratch, (const __half2 *)z, HW, C2, P);
    h_stats_final<<<(N * C + THREADS - 1) / THREADS, THREADS, 0, ctx->stream>>>(mean, rstd, (const double *)scratch, N, C,
                                                                                 Ce, HW, P);
    return launched("fp16 instance norm statistics", err);
}

/* one thread per (output pixel, channel pair) of image blockIdx.y */
__global__ static void h_norm_apply_kernel(__half2 *out, const __half2 *z, const float *mean, const float *rstd,
                                           const float *gamma, const float *beta, const __half2 *skip, int C, int C2,
                                           int H, int W, int p, int up, int relu) {
    int Hs = H << up, Ws = W << up, Ho = Hs + 2 * p, Wo = Ws + 2 * p;
    size_t per = (size_t)Ho * Wo * C2, n = blockIdx.y;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= per) return;
    int c2 = (int)(i % C2);
    unsigned pix = (unsigned)(i / C2);
    int k = (int)(pix / (unsigned)Wo), j = (int)(pix % (unsigned)Wo);
    int si = reflect_index(k - p, Hs) >> up, sj = reflect_index(j - p, Ws) >> up;
    size_t src = ((n * H + si) * W + sj) * C2 + c2;
    float2 v = __half22float2(z[src]);
    int c = 2 * c2;
    float r0 = 0.0f, r1 = 0.0f;
    if (c < C) {
        size_t m = n * C + c;
        r0 = (v.x - mean[m]) * (gamma[c] * rstd[m]) + beta[c];
        if (relu) r0 = fmaxf(r0, 0.0f);
    }
    if (c + 1 < C) {
        size_t m = n * C + c + 1;
        r1 = (v.y - mean[m]) * (gamma[c + 1] * rstd[m]) + beta[c + 1];
        if (relu) r1 = fmaxf(r1, 0.0f);
    }
    if (skip) {
        float2 s = __half22float2(skip[src]);
        r0 += s.x, r1 += s.y;
    }
    out[n * per + i] = __floats2half2_rn(r0, r1);
}

nst_status cu_h_norm_apply(nst_cuda *ctx, void *out, const void *z, const float *mean, const float *rstd,
                           const float *gamma, const float *beta, const void *skip, int N, int C, int Ce, int H,
                           int W, int p, int up, int relu, nst_error *err) {
    size_t per = (size_t)((H << up) + 2 * p) * ((W << up) + 2 * p) * (Ce / 2);
    h_norm_apply_kernel<<<plane_grid(per, N), THREADS, 0, ctx->stream>>>((__half2 *)out, (const __half2 *)z, mean, rstd, gamma,
                                                                         beta, (const __half2 *)skip, C, Ce / 2, H, W, p, up,
                                                                         relu);
    return launched("fp16 instance norm", err);
}

__global__ static void h_output_kernel(float *y, const __half *z, const float *bias, int HW, int Ce) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    size_t n = blockIdx.y;
    if (i >= (unsigned)HW) return;
    const __half *zp = z + (n * HW + i) * Ce;
    for (int c = 0; c < 3; c++) {
        float t = __half2float(zp[c]) + bias[c];
        y[(n * 3 + c) * HW + i] = 255.0f / (1.0f + expf(-t));
    }
}

nst_status cu_h_output(nst_cuda *ctx, float *y, const void *z, const float *bias, int N, int H, int W, int Ce,
                       nst_error *err) {
    h_output_kernel<<<plane_grid((size_t)H * W, N), THREADS, 0, ctx->stream>>>(y, (const __half *)z, bias, H * W, Ce);
    return launched("fp16 output", err);
}
