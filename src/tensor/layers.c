/* layers.c - reflection padding, instance normalisation, nearest-neighbour upsampling,
 * the 255*sigmoid output and the residual sum, forward and backward (see layers.h).
 *
 * All of them are memory-bound: one or two passes over the data. Per-channel work is
 * split over OpenMP threads by channel (or by row where rows are independent), and each
 * channel's sums are taken by one thread in double, so every result is the same for any
 * thread count. Small tensors skip the thread start-up (the `if` clauses). */
#include <math.h>
#include <string.h>

#include "tensor/layers.h"
#include "tensor/ops.h"

/* below this many elements a parallel region costs more than it saves */
#define PAR_MIN ((size_t)1 << 14)

/* ---- reflection padding --------------------------------------------------------------- */

/* source index of padded index k - p, reflected about the edges without repeating them:
 * -1 -> 1, n -> n-2 (valid for p < n) */
static inline int reflect_index(int k, int n) {
    return k < 0 ? -k : k >= n ? 2 * (n - 1) - k : k;
}

void reflect_pad_forward(float *out, const float *inp, int C, int H, int W, int p) {
    int Ho = H + 2 * p, Wo = W + 2 * p;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)C * Ho * Wo >= PAR_MIN)
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < Ho; i++) {
            const float *src = inp + ((size_t)c * H + reflect_index(i - p, H)) * W;
            float *dst = out + ((size_t)c * Ho + i) * Wo;
            for (int j = 0; j < p; j++) dst[j] = src[p - j];                  /* left */
            memcpy(dst + p, src, (size_t)W * sizeof(float));                  /* middle */
            for (int j = 0; j < p; j++) dst[p + W + j] = src[W - 2 - j];      /* right */
        }
    }
}

void reflect_pad_backward(float *dinp, const float *dout, int C, int H, int W, int p) {
    int Ho = H + 2 * p, Wo = W + 2 * p;
    /* by channel only: the padded rows i and 2p-i both add into source row p-i */
    #pragma omp parallel for schedule(static) if ((size_t)C * Ho * Wo >= PAR_MIN)
    for (int c = 0; c < C; c++) {
        float *plane = dinp + (size_t)c * H * W;
        memset(plane, 0, (size_t)H * W * sizeof(float));
        for (int i = 0; i < Ho; i++) {
            const float *g = dout + ((size_t)c * Ho + i) * Wo;
            float *d = plane + (size_t)reflect_index(i - p, H) * W;
            for (int x = 0; x < W; x++) d[x] += g[p + x];
            for (int j = 0; j < p; j++) d[p - j] += g[j];
            for (int j = 0; j < p; j++) d[W - 2 - j] += g[p + W + j];
        }
    }
}

/* The same as upsample2x_forward then reflect_pad_forward, without the upsampled image
 * in between (at 1024x1024 that buffer is 268 MB): padded pixel (i,j) copies source
 * pixel (reflect(i-p)/2, reflect(j-p)/2) of the 2H x 2W upsampled grid.
 * out is (C,2H+2p,2W+2p), inp is (C,H,W); needs p < 2H and p < 2W. */
void upsample2x_reflect_pad_forward(float *out, const float *inp, int C, int H, int W, int p) {
    int H2 = 2 * H, W2 = 2 * W, Ho = H2 + 2 * p, Wo = W2 + 2 * p;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)C * Ho * Wo >= PAR_MIN)
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < Ho; i++) {
            const float *src = inp + ((size_t)c * H + reflect_index(i - p, H2) / 2) * W;
            float *dst = out + ((size_t)c * Ho + i) * Wo;
            for (int j = 0; j < p; j++) dst[j] = src[reflect_index(j - p, W2) / 2];
            for (int x = 0; x < W; x++) dst[p + 2 * x] = dst[p + 2 * x + 1] = src[x];
            for (int j = 0; j < p; j++) dst[p + W2 + j] = src[reflect_index(W2 + j, W2) / 2];
        }
    }
}

/* ---- instance normalisation ------------------------------------------------------------- */


#define NORM_FN(name) name##_portable
#include "tensor/instance_norm_impl.h"
#undef NORM_FN

#ifdef NST_X86
void instance_norm_forward_avx512(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                  const float *beta, int C, int N, int relu);
void instance_norm_backward_avx512(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *out,
                                   const float *inp, const float *mean, const float *rstd, const float *gamma, int C,
                                   int N, int relu);
#endif

/* The AVX-512 build of the same code where the CPU has it (the same bits: see
 * instance_norm_impl.h); memory-bound planes, so no tier below matters. */
void instance_norm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *gamma, const float *beta, int C, int N, int relu) {
#ifdef NST_X86
    if (cpu_best_tier() == CPU_AVX512) {
        instance_norm_forward_avx512(out, mean, rstd, inp, gamma, beta, C, N, relu);
        return;
    }
#endif
    instance_norm_forward_portable(out, mean, rstd, inp, gamma, beta, C, N, relu);
}

void instance_norm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *out, const float *inp, const float *mean,
                            const float *rstd, const float *gamma, int C, int N, int relu) {
#ifdef NST_X86
    if (cpu_best_tier() == CPU_AVX512) {
        instance_norm_backward_avx512(dinp, dgamma, dbeta, dout, out, inp, mean, rstd, gamma, C, N, relu);
        return;
    }
#endif
    instance_norm_backward_portable(dinp, dgamma, dbeta, dout, out, inp, mean, rstd, gamma, C, N, relu);
}

void instance_norm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                               const float *gamma, const float *beta, int C, int N, int relu) {
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * N;
        double m = 0.0;
        for (int i = 0; i < N; i++) m += x[i];
        m /= N;
        double var = 0.0;
        for (int i = 0; i < N; i++) var += (x[i] - m) * (x[i] - m);
        var /= N;
        mean[c] = (float)m;
        rstd[c] = (float)(1.0 / sqrt(var + INSTANCE_NORM_EPS));
        for (int i = 0; i < N; i++) {
            float xhat = (x[i] - mean[c]) * rstd[c];
            float y = gamma[c] * xhat + beta[c];
            out[(size_t)c * N + i] = relu && !(y > 0.0f) ? 0.0f : y;
        }
    }
}

/* The textbook chain rule (Ioffe & Szegedy 2015), through var and mean separately. */
void instance_norm_backward_ref(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                const float *out, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int C, int N, int relu) {
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * N;
        const float *dy = dout + (size_t)c * N, *y = relu ? out + (size_t)c * N : NULL;
        double m = mean[c], rs = rstd[c];
        double dvar = 0.0, dmean = 0.0, sum_dev = 0.0, db = 0.0, dg = 0.0;
        for (int i = 0; i < N; i++) {
            double gi = relu && !(y[i] > 0.0f) ? 0.0 : dy[i];
            double xhat = (x[i] - m) * rs;
            db += gi;
            dg += gi * xhat;
            double dxhat = gi * gamma[c];
            dvar += dxhat * (x[i] - m) * -0.5 * rs * rs * rs;
            dmean += -dxhat * rs;
            sum_dev += x[i] - m;
        }
        dmean += dvar * -2.0 * sum_dev / N;
        dbeta[c] += (float)db;
        dgamma[c] += (float)dg;
        /* every gi is computed before dinp is written (the loop above), as dinp may equal dout */
        for (int i = 0; i < N; i++) {
            double gi = relu && !(y[i] > 0.0f) ? 0.0 : dy[i];
            double dxhat = gi * gamma[c];
            dinp[(size_t)c * N + i] = (float)(dxhat * rs + dvar * 2.0 * (x[i] - m) / N + dmean / N);
        }
    }
}

/* ---- nearest-neighbour upsampling by 2 ---------------------------------------------------- */

void upsample2x_forward(float *out, const float *inp, int C, int H, int W) {
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)C * H * W * 4 >= PAR_MIN)
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < H; i++) {
            const float *src = inp + ((size_t)c * H + i) * W;
            float *o0 = out + ((size_t)c * 2 * H + 2 * i) * 2 * W, *o1 = o0 + 2 * W;
            for (int j = 0; j < W; j++) {
                float v = src[j];
                o0[2 * j] = o0[2 * j + 1] = o1[2 * j] = o1[2 * j + 1] = v;
            }
        }
    }
}

void upsample2x_backward(float *dinp, const float *dout, int C, int H, int W) {
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)C * H * W * 4 >= PAR_MIN)
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < H; i++) {
            float *d = dinp + ((size_t)c * H + i) * W;
            const float *g0 = dout + ((size_t)c * 2 * H + 2 * i) * 2 * W, *g1 = g0 + 2 * W;
            for (int j = 0; j < W; j++)
                d[j] = (g0[2 * j] + g0[2 * j + 1]) + (g1[2 * j] + g1[2 * j + 1]);
        }
    }
}

/* ---- output layer ------------------------------------------------------------------------- */

void sigmoid255_forward(float *out, const float *inp, size_t n) {
    /* exp(-x) overflows to inf for x < -88: 255 / inf = 0, the right limit, never NaN */
    #pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = 255.0f / (1.0f + expf(-inp[i]));
}

void sigmoid255_backward(float *dinp, const float *dout, const float *out, size_t n) {
    /* d(255 s)/dx = 255 s (1 - s) = out (1 - out/255) */
    #pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * out[i] * (1.0f - out[i] * (1.0f / 255.0f));
}

/* ---- residual connection ------------------------------------------------------------------- */

void add_forward(float *out, const float *a, const float *b, size_t n) {
    #pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
