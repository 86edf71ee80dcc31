/* gram_avx2.c - AVX2+FMA kernels of the Gram matrix G = scale * F F^T and its
 * gradient dF += scale * (dG + dG^T) F, F being (C,N) with N = H*W large; for x86-64
 * CPUs without AVX-512. Simpler than gram_avx512.c (no transposed panels).
 *
 * Forward: a 3x4 block of G (rows i0.., columns j0..) is 12 dot products over a chunk of
 * GK pixels, each held in 8 lanes (12 ymm accumulators), reduced at the end of the chunk
 * in a fixed order and added to G. Chunks are the outer loop, so a chunk of all C rows
 * (C*GK floats) stays in L2 while a thread sweeps its blocks. Threads own whole rows of
 * 3-blocks (dealt cyclically, for the triangle), and chunks are summed in order, so the
 * result does not depend on the thread count. Only j >= i is computed; the lower
 * triangle is mirrored at the end.
 *
 * Backward: S = scale*(dG + dG^T) is symmetric, so row j of S holds S[i][j] for
 * consecutive i; it is packed in 6-row panels. A block of GB pixels of F is copied to a
 * contiguous buffer (rows of F are a page or more apart), then a 6x16 register tile of
 * dF sums S[i][j] (broadcast) * F[j, n0:n0+16] over all j in registers and adds to dF
 * once. Threads split the pixel blocks.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define GF_MA 3   /* rows of G per forward tile */
#define GF_MB 4   /* columns of G per forward tile: 3x4 = 12 accumulators */
#define GF_K 512  /* pixels per chunk: C*GF_K floats (1 MB at C = 512) stay in L2 */
#define GB_MR 6   /* rows of dF per backward tile */
#define GB_NB 128 /* pixels per backward block: the (C,GB_NB) copy is 256 KB at C = 512 */

/* Lanes l < n set (all ones), the others clear. */
static inline __m256i lanes_below(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

/* Sum of the 8 lanes of each of a, b, c, d: (sum a, sum b, sum c, sum d), fixed order. */
static inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* G[i0+a][j0+b] += sum_k A[a][k] * B[b][k] for k < kc, for a < GF_MA, b < GF_MB with
 * i = i0+a < C, j = j0+b < C and j >= i. A rows are F rows i0.. (stride N, rows past C
 * clamped, their sums dropped), B rows are F rows j0.. likewise. */
static inline void gram_fwd_tile(float *G, const float *F, int C, size_t N, int k0, int kc,
                                 int i0, int j0) {
    const float *a[GF_MA], *b[GF_MB];
    for (int r = 0; r < GF_MA; r++) a[r] = F + (size_t)(i0 + r < C ? i0 + r : C - 1) * N + k0;
    for (int q = 0; q < GF_MB; q++) b[q] = F + (size_t)(j0 + q < C ? j0 + q : C - 1) * N + k0;
    __m256 acc[GF_MA][GF_MB];
#pragma GCC unroll 3
    for (int r = 0; r < GF_MA; r++)
#pragma GCC unroll 4
        for (int q = 0; q < GF_MB; q++) acc[r][q] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 x[GF_MA];
#pragma GCC unroll 3
        for (int r = 0; r < GF_MA; r++) x[r] = _mm256_loadu_ps(a[r] + k);
#pragma GCC unroll 4
        for (int q = 0; q < GF_MB; q++) {
            __m256 y = _mm256_loadu_ps(b[q] + k);
#pragma GCC unroll 3
            for (int r = 0; r < GF_MA; r++) acc[r][q] = _mm256_fmadd_ps(x[r], y, acc[r][q]);
        }
    }
    if (k < kc) { /* the last pixels of F: masked loads, so nothing past a row is read */
        __m256i m = lanes_below(kc - k);
        __m256 x[GF_MA];
#pragma GCC unroll 3
        for (int r = 0; r < GF_MA; r++) x[r] = _mm256_maskload_ps(a[r] + k, m);
#pragma GCC unroll 4
        for (int q = 0; q < GF_MB; q++) {
            __m256 y = _mm256_maskload_ps(b[q] + k, m);
#pragma GCC unroll 3
            for (int r = 0; r < GF_MA; r++) acc[r][q] = _mm256_fmadd_ps(x[r], y, acc[r][q]);
        }
    }
    /* constant trip counts (and unrolled) so acc stays in registers, not on the stack */
#pragma GCC unroll 3
    for (int r = 0; r < GF_MA; r++) {
        int i = i0 + r;
        if (i >= C) break;
        float s[4];
        _mm_storeu_ps(s, hsum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
        for (int q = 0; q < GF_MB; q++) {
            int j = j0 + q;
            if (j >= i && j < C) G[(size_t)i * C + j] += s[q];
        }
    }
}

/* G is (C,C), F is (C,N): G = scale * F F^T */
void gram_forward_avx2(float *G, const float *F, int C, int N, float scale) {
    const int nib = (C + GF_MA - 1) / GF_MA;
#pragma omp parallel
    {
        /* the upper triangle of this thread's rows starts at 0 */
#pragma omp for schedule(static, 1)
        for (int ib = 0; ib < nib; ib++)
            for (int i = ib * GF_MA; i < C && i < (ib + 1) * GF_MA; i++)
                memset(G + (size_t)i * C + i, 0, (size_t)(C - i) * sizeof(float));
        /* same static schedule: each thread meets the same i-blocks in every chunk */
        for (int k0 = 0; k0 < N; k0 += GF_K) {
            int kc = N - k0 < GF_K ? N - k0 : GF_K;
#pragma omp for schedule(static, 1) nowait
            for (int ib = 0; ib < nib; ib++) {
                int i0 = ib * GF_MA;
                /* column blocks holding some j >= i0 */
                for (int j0 = i0 / GF_MB * GF_MB; j0 < C; j0 += GF_MB)
                    gram_fwd_tile(G, F, C, (size_t)N, k0, kc, i0, j0);
            }
        }
#pragma omp barrier
        /* scale the upper triangle (with the diagonal), then mirror it down */
#pragma omp for schedule(static)
        for (int i = 0; i < C; i++)
            for (int j = i; j < C; j++) G[(size_t)i * C + j] *= scale;
#pragma omp for schedule(static)
        for (int i = 0; i < C; i++)
            for (int j = 0; j < i; j++) G[(size_t)i * C + j] = G[(size_t)j * C + i];
    }
}

/* The 6x16 backward tile: acc[r][v] = sum_j Sp[j][r] * Fp[j][8v..8v+7], then dF rows
 * += acc. Sp is the packed panel (C,6) of S rows i0..i0+5, Fp the packed pixel block
 * (C,GB_NB) at this tile's 16 columns; nn of the 16 pixels are inside dF. */
static inline void gram_bwd_tile(float *dF, const float *Fp, const float *Sp, int C, size_t N,
                                 int nrow, int nn) {
    __m256 acc[GB_MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < GB_MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int j = 0; j < C; j++, Fp += GB_NB, Sp += GB_MR) {
        __m256 b0 = _mm256_load_ps(Fp), b1 = _mm256_load_ps(Fp + 8);
#pragma GCC unroll 6
        for (int r = 0; r < GB_MR; r++) {
            __m256 x = _mm256_broadcast_ss(Sp + r);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
    /* constant trip counts (and unrolled) so acc stays in registers, not on the stack */
    if (nn >= 16) {
#pragma GCC unroll 6
        for (int r = 0; r < GB_MR; r++) {
            if (r >= nrow) break;
            float *d = dF + (size_t)r * N;
            _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), acc[r][0]));
            _mm256_storeu_ps(d + 8, _mm256_add_ps(_mm256_loadu_ps(d + 8), acc[r][1]));
        }
    } else {
        __m256i m0 = lanes_below(nn), m1 = lanes_below(nn - 8);
#pragma GCC unroll 6
        for (int r = 0; r < GB_MR; r++) {
            if (r >= nrow) break;
            float *d = dF + (size_t)r * N;
            _mm256_maskstore_ps(d, m0, _mm256_add_ps(_mm256_maskload_ps(d, m0), acc[r][0]));
            _mm256_maskstore_ps(d + 8, m1, _mm256_add_ps(_mm256_maskload_ps(d + 8, m1), acc[r][1]));
        }
    }
}

/* accumulates: dF is (C,N), dG is (C,C): dF += scale * (dG + dG^T) F */
void gram_backward_avx2(float *dF, const float *dG, const float *F, int C, int N, float scale) {
    const int nit = (C + GB_MR - 1) / GB_MR;
    const int nthr = omp_get_max_threads();
    /* Sp[it][j][r] = scale * (dG[i][j] + dG[j][i]), i = 6 it + r (0 past C) */
    float *Sp = aligned_alloc(32, ((size_t)nit * GB_MR * C * sizeof(float) + 31) / 32 * 32);
    /* per thread, the (C,GB_NB) pixel block of F, contiguous */
    float *Fbuf = aligned_alloc(32, (size_t)nthr * C * GB_NB * sizeof(float));
    if (!Sp || !Fbuf) { /* a few MB at most; nothing sensible to do without them */
        free(Sp);
        free(Fbuf);
        return;
    }
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int it = 0; it < nit; it++)
            for (int j = 0; j < C; j++)
                for (int r = 0; r < GB_MR; r++) {
                    int i = it * GB_MR + r;
                    Sp[((size_t)it * C + j) * GB_MR + r] =
                        i < C ? scale * (dG[(size_t)i * C + j] + dG[(size_t)j * C + i]) : 0.0f;
                }
        float *Fp = Fbuf + (size_t)omp_get_thread_num() * C * GB_NB;
        const long nblk = ((long)N + GB_NB - 1) / GB_NB;
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblk; blk++) {
            size_t n0 = (size_t)blk * GB_NB;
            int nb = (size_t)N - n0 < GB_NB ? (int)((size_t)N - n0) : GB_NB;
            /* copy the block, zero past N so the tiles can load whole vectors */
            for (int j = 0; j < C; j++) {
                const float *src = F + (size_t)j * N + n0;
                float *dst = Fp + (size_t)j * GB_NB;
                for (int l = 0; l < GB_NB; l += 8) {
                    if (l + 8 <= nb) _mm256_store_ps(dst + l, _mm256_loadu_ps(src + l));
                    else _mm256_store_ps(dst + l, _mm256_maskload_ps(src + l, lanes_below(nb - l)));
                }
            }
            for (int it = 0; it < nit; it++) {
                int i0 = it * GB_MR, nrow = C - i0 < GB_MR ? C - i0 : GB_MR;
                for (int s = 0; s < nb; s += 16)
                    gram_bwd_tile(dF + (size_t)i0 * N + n0 + s, Fp + s, Sp + (size_t)it * C * GB_MR, C,
                                  (size_t)N, nrow, nb - s);
            }
        }
    }
    free(Sp);
    free(Fbuf);
}
