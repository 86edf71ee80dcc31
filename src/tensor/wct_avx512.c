/* wct_avx512.c - the AVX-512 kernels of WCT (wct.h): the feature covariance
 * (wct_cov_impl.h, compiled here for 8-wide double vectors), and applying the transform
 * out = alpha (T f + shift) + (1 - alpha) f, T (C,C), f and out (C,N).
 *
 * T is packed in panels of WA_MR rows (row j of panel p holds T[p*WA_MR + r][j] for
 * r = 0..WA_MR-1, consecutive, so that a tile's broadcasts read one cache line). A
 * register tile of WA_MR rows by WA_NB positions sums T[i][j] (broadcast) * f[j, n0..]
 * over all j, then mixes with f and is stored once: 24 accumulators, 4 loads of f per 24
 * FMAs. Tiles split the output, never a sum: the result does not depend on the thread
 * count. */
#include <immintrin.h>
#include <stdlib.h>

#include "tensor/wct_cov_impl.h"

void wct_covariance_avx512(double *cov, const double *X, int P, size_t ld, int L) {
    covariance_accumulate_impl(cov, X, P, ld, L);
}

#define WA_MR 6  /* rows of out per register tile */
#define WA_NB 64 /* positions per register tile: 4 vectors */

int wct_apply_avx512(float *out, const float *f, const float *T, const float *shift, int C, size_t N, float alpha) {
    int np = (C + WA_MR - 1) / WA_MR;
    float *P = malloc((size_t)np * C * WA_MR * sizeof *P);
    if (!P) return -1;
    for (int p = 0; p < np; p++)
        for (int j = 0; j < C; j++)
            for (int r = 0; r < WA_MR; r++) {
                int i = p * WA_MR + r;
                P[((size_t)p * C + j) * WA_MR + r] = i < C ? T[(size_t)i * C + j] : 0.0f;
            }
    long nb = (long)((N + WA_NB - 1) / WA_NB);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(1.0f - alpha);
#pragma omp parallel for collapse(2) schedule(static)
    for (long b = 0; b < nb; b++)
        for (int p = 0; p < np; p++) {
            size_t n0 = (size_t)b * WA_NB;
            int L = N - n0 < WA_NB ? (int)(N - n0) : WA_NB;
            __mmask16 m[4];
            for (int q = 0; q < 4; q++) {
                int k = L - 16 * q;
                m[q] = k >= 16 ? (__mmask16)0xFFFF : k <= 0 ? (__mmask16)0 : (__mmask16)((1u << k) - 1);
            }
            __m512 acc[WA_MR][4];
            for (int r = 0; r < WA_MR; r++)
                for (int q = 0; q < 4; q++) acc[r][q] = _mm512_setzero_ps();
            const float *pp = P + (size_t)p * C * WA_MR;
            for (int j = 0; j < C; j++) {
                const float *x = f + (size_t)j * N + n0;
                __m512 x0 = _mm512_maskz_loadu_ps(m[0], x), x1 = _mm512_maskz_loadu_ps(m[1], x + 16);
                __m512 x2 = _mm512_maskz_loadu_ps(m[2], x + 32), x3 = _mm512_maskz_loadu_ps(m[3], x + 48);
                for (int r = 0; r < WA_MR; r++) {
                    __m512 t = _mm512_set1_ps(pp[(size_t)j * WA_MR + r]);
                    acc[r][0] = _mm512_fmadd_ps(t, x0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(t, x1, acc[r][1]);
                    acc[r][2] = _mm512_fmadd_ps(t, x2, acc[r][2]);
                    acc[r][3] = _mm512_fmadd_ps(t, x3, acc[r][3]);
                }
            }
            for (int r = 0; r < WA_MR; r++) {
                int i = p * WA_MR + r;
                if (i >= C) break;
                __m512 s = _mm512_set1_ps(shift[i]);
                const float *x = f + (size_t)i * N + n0;
                float *y = out + (size_t)i * N + n0;
                for (int q = 0; q < 4; q++) {
                    __m512 v = _mm512_maskz_loadu_ps(m[q], x + 16 * q);
                    __m512 w = _mm512_fmadd_ps(va, _mm512_add_ps(acc[r][q], s), _mm512_mul_ps(vb, v));
                    _mm512_mask_storeu_ps(y + 16 * q, m[q], w);
                }
            }
        }
    free(P);
    return 0;
}
