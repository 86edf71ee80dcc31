/* pool_relu.c - ReLU and 2x2 max pooling, forward and backward. Both are memory-bound
 * and simple enough that the plain loop is the reference and the fast path at once. */
#include <string.h>

#include "tensor/ops.h"

void relu_forward(float *out, const float *inp, size_t n) {
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
}

void maxpool2x2_forward(float *out, const float *inp, int C, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < Ho; i++) {
            const float *r0 = inp + ((size_t)c * H + 2 * i) * W;
            const float *r1 = r0 + W;
            float *o = out + ((size_t)c * Ho + i) * Wo;
            for (int j = 0; j < Wo; j++) {
                float a = r0[2 * j], b = r0[2 * j + 1], d = r1[2 * j], e = r1[2 * j + 1];
                float m0 = a >= b ? a : b, m1 = d >= e ? d : e;
                o[j] = m0 >= m1 ? m0 : m1;
            }
        }
    }
}

void maxpool2x2_backward(float *dinp, const float *dout, const float *inp, int C, int H, int W,
                         int relu_below) {
    int Ho = H / 2, Wo = W / 2;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float *dplane = dinp + (size_t)c * H * W;
        for (int i = 0; i < Ho; i++) {
            const float *r0 = inp + ((size_t)c * H + 2 * i) * W;
            const float *r1 = r0 + W;
            float *d0 = dplane + (size_t)(2 * i) * W, *d1 = d0 + W;
            const float *g = dout + ((size_t)c * Ho + i) * Wo;
            /* every element of the window is written (the winner gets the gradient, the
             * others 0), so the plane needs no separate clearing pass */
            #pragma omp simd
            for (int j = 0; j < Wo; j++) {
                /* first maximum in row-major order wins ties, as in PyTorch; written
                 * without branches (the winner is data-dependent, so branches mispredict) */
                float a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
                int kb = b > a;
                float m1 = kb ? b : a;
                int kc = c > m1;
                float m2 = kc ? c : m1;
                int kd = d > m2;
                float best = kd ? d : m2;
                int k = kd ? 3 : kc ? 2 : kb ? 1 : 0;
                /* with a ReLU below, its backward zeroes the winner where the max is 0 */
                float v = (!relu_below || best > 0.0f) ? g[j] : 0.0f;
                d0[2 * j] = k == 0 ? v : 0.0f;
                d0[2 * j + 1] = k == 1 ? v : 0.0f;
                d1[2 * j] = k == 2 ? v : 0.0f;
                d1[2 * j + 1] = k == 3 ? v : 0.0f;
            }
            if (W & 1) d0[W - 1] = d1[W - 1] = 0.0f; /* the column floor dropped */
        }
        if (H & 1) memset(dplane + (size_t)(H - 1) * W, 0, (size_t)W * sizeof(float)); /* the row */
    }
}
