/* wct_cov_impl.h - the feature covariance's inner kernel, written once and compiled
 * twice: in wct.c for any CPU, and in wct_avx512.c with AVX-512 enabled, where the
 * compiler turns each 4x4 block's position loop into 8-wide double vectors. */
#include <stddef.h>

/* cov (P,P) += X X^T over L positions of X (P rows, ld apart), P a multiple of 4; only
 * the blocks on and above the diagonal. Each thread owns block rows: deterministic. */
static inline void covariance_accumulate_impl(double *cov, const double *X, int P, size_t ld, int L) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int bi = 0; bi < P / 4; bi++) {
        int i = 4 * bi;
        const double *a0 = X + (size_t)i * ld, *a1 = a0 + ld, *a2 = a1 + ld, *a3 = a2 + ld;
        for (int j = i; j < P; j += 4) {
            const double *b0 = X + (size_t)j * ld, *b1 = b0 + ld, *b2 = b1 + ld, *b3 = b2 + ld;
            double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
            double s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)
            for (int n = 0; n < L; n++) {
                double x0 = a0[n], x1 = a1[n], x2 = a2[n], x3 = a3[n];
                double y0 = b0[n], y1 = b1[n], y2 = b2[n], y3 = b3[n];
                s00 += x0 * y0, s01 += x0 * y1, s02 += x0 * y2, s03 += x0 * y3;
                s10 += x1 * y0, s11 += x1 * y1, s12 += x1 * y2, s13 += x1 * y3;
                s20 += x2 * y0, s21 += x2 * y1, s22 += x2 * y2, s23 += x2 * y3;
                s30 += x3 * y0, s31 += x3 * y1, s32 += x3 * y2, s33 += x3 * y3;
            }
            double *c0 = cov + (size_t)i * P + j, *c1 = c0 + P, *c2 = c1 + P, *c3 = c2 + P;
            c0[0] += s00, c0[1] += s01, c0[2] += s02, c0[3] += s03;
            c1[0] += s10, c1[1] += s11, c1[2] += s12, c1[3] += s13;
            c2[0] += s20, c2[1] += s21, c2[2] += s22, c2[3] += s23;
            c3[0] += s30, c3[1] += s31, c3[2] += s32, c3[3] += s33;
        }
    }
}
