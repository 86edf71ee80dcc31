/* instance_norm_impl.h - instance normalisation's forward and backward passes, written
 * once and compiled twice: in layers.c for any x86-64 (or other) CPU, and in
 * layers_avx512.c with AVX-512 enabled, where the compiler turns the LANES double
 * accumulators into one vector. Every sum keeps its order (lane i % LANES, the fixed tree,
 * no contraction into FMAs under -std=c11), so the two give the same bits. Define
 * NORM_FN(name) before including. */
#include <math.h>
#include <stddef.h>

#include "tensor/layers.h"

#ifndef PAR_MIN
#define PAR_MIN ((size_t)1 << 14) /* elements below which a layer runs on one thread */
#endif

/* Per-channel sums run in LANES interleaved double accumulators, element i going to lane
 * i % LANES, combined by a fixed tree: the order is fixed by the code (not by the
 * compiler's vectoriser or the data's alignment), and the lanes hide the add latency. */
#define LANES 8
static inline double lanes_sum(const double a[LANES]) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}
void NORM_FN(instance_norm_forward)(float *out, float *mean, float *rstd, const float *inp,
                           const float *gamma, const float *beta, int C, int N, int relu) {
    #pragma omp parallel for schedule(static) if ((size_t)C * N >= PAR_MIN)
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * N;
        float *y = out + (size_t)c * N;
        /* two passes (mean, then squared deviations): no cancellation when the mean is
         * large next to the spread; the second pass reads a plane that is still in cache */
        double acc[LANES] = {0};
        int j = 0;
        for (; j + LANES <= N; j += LANES)
            for (int k = 0; k < LANES; k++) acc[k] += x[j + k];
        for (int k = 0; j < N; j++, k++) acc[k] += x[j];
        double m = lanes_sum(acc) / N;
        for (int k = 0; k < LANES; k++) acc[k] = 0.0;
        for (j = 0; j + LANES <= N; j += LANES)
            for (int k = 0; k < LANES; k++) acc[k] += (x[j + k] - m) * (x[j + k] - m);
        for (int k = 0; j < N; j++, k++) acc[k] += (x[j] - m) * (x[j] - m);
        double v = lanes_sum(acc);
        float mf = (float)m, rs = (float)(1.0 / sqrt(v / N + INSTANCE_NORM_EPS));
        mean[c] = mf;
        rstd[c] = rs;
        /* (x - mean) * scale + beta rather than x * a + b: the latter loses digits to
         * cancellation when |mean| is large */
        float scale = gamma[c] * rs, b = beta[c];
        if (relu) {
            #pragma omp simd
            for (int i = 0; i < N; i++) {
                float t = (x[i] - mf) * scale + b;
                y[i] = t > 0.0f ? t : 0.0f;
            }
        } else {
            #pragma omp simd
            for (int i = 0; i < N; i++) y[i] = (x[i] - mf) * scale + b;
        }
    }
}

/* With g = dout masked by the ReLU, xhat = (x - mean) * rstd and y = gamma * xhat + beta:
 *   dbeta = sum g,  dgamma = sum g * xhat,
 *   dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat))
 * (the last two terms are the gradient through the mean and through the variance). */
void NORM_FN(instance_norm_backward)(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *out, const float *inp, const float *mean,
                            const float *rstd, const float *gamma, int C, int N, int relu) {
    #pragma omp parallel for schedule(static) if ((size_t)C * N >= PAR_MIN)
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * N, *g = dout + (size_t)c * N;
        float *dx = dinp + (size_t)c * N;
        float m = mean[c], rs = rstd[c];
        /* the ReLU's mask as a select against a threshold, without a branch in the loops
         * (so they vectorise). Without a ReLU every value passes -inf: the gradient is
         * compared with it instead of out, which may then be NULL */
        const float thr = relu ? 0.0f : -INFINITY, *y = relu ? out + (size_t)c * N : g;
        double ag[LANES] = {0}, agx[LANES] = {0};
        float gb[LANES], xb[LANES];
        int j = 0;
        for (; j + LANES <= N; j += LANES) {
            /* masked gradient and xhat in float first: the float loop becomes a vector
             * blend, where the mixed float/double one compiles to an unpredictable branch */
            for (int k = 0; k < LANES; k++) {
                float gv = g[j + k];
                gb[k] = y[j + k] > thr ? gv : 0.0f;
                xb[k] = (x[j + k] - m) * rs;
            }
            for (int k = 0; k < LANES; k++) {
                ag[k] += gb[k];
                agx[k] += (double)gb[k] * xb[k];
            }
        }
        for (int k = 0; j < N; j++, k++) {
            float gv = g[j], gj = y[j] > thr ? gv : 0.0f;
            ag[k] += gj;
            agx[k] += (double)gj * ((x[j] - m) * rs);
        }
        double sg = lanes_sum(ag), sgx = lanes_sum(agx);
        dbeta[c] += (float)sg;
        dgamma[c] += (float)sgx;
        float scale = gamma[c] * rs, mg = (float)(sg / N), mgx = (float)(sgx / N);
        /* reads g[i] before writing dx[i]: dinp may equal dout */
        #pragma omp simd
        for (int i = 0; i < N; i++) {
            float gv = g[i], gi = y[i] > thr ? gv : 0.0f;
            float xh = (x[i] - m) * rs;
            dx[i] = scale * (gi - mg - xh * mgx);
        }
    }
}

