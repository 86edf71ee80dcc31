/* gram_avx512.c - AVX-512 kernels of the Gram matrix G = scale * F F^T and its
 * gradient dF += scale * (dG + dG^T) F, F being (C,N) with N = H*W large.
 *
 * Forward is a SYRK done GEMM-style: for a chunk of GF_NC pixels, a thread transposes
 * F[j0:j0+64, chunk] into a panel P (GF_NC,64) that stays in L1, then a 6x64 register
 * tile sums G[i0:i0+6, j0:j0+64] += F[i,k] (broadcast) * P[k,:] for each i-tile with
 * i0 < j0+64 (the upper triangle by blocks). The chunks are summed in order into G, and
 * every G entry belongs to exactly one tile, so the result does not depend on the
 * number of threads. The lower triangle is mirrored at the end.
 *
 * Backward: S = scale*(dG + dG^T) is symmetric, so row j of S holds S[i][j] for
 * consecutive i; it is packed in 6-row panels. A 6x64 tile of dF sums S[i][j]
 * (broadcast) * F[j, n0:n0+64] over all j in registers, then adds to dF once.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define GF_NC 128 /* pixels per chunk: the (GF_NC,64) panel is 32 KB, inside L1 */
#define G_MR 6    /* rows of G (or dF) per register tile */
#define G_NB 64   /* columns per register tile: 4 vectors */
#define GB_NB 256 /* pixels per backward block (a multiple of G_NB) */

/* Transposes 16 rows of 16 floats (row r at src + r*ld, lanes past kmask zero, rows
 * with rmask bit clear zero) into dst (16 rows of 16, dst row k at dst + k*ldd). */
static inline void transpose16(float *dst, int ldd, const float *src, size_t ld,
                               __mmask16 kmask, unsigned rmask) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) {
        int ok = (rmask >> i) & 1; /* rows past C are zeros, and their address unused */
        r[i] = _mm512_maskz_loadu_ps(ok ? kmask : 0, ok ? src + (size_t)i * ld : src);
    }
    /* three butterfly stages: 32-bit pairs, 64-bit pairs, 128-bit lanes (twice) */
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* r[4q+s] now holds, in its 128-bit lane L, rows 4q..4q+3 of column 4L+s; the
     * two lane shuffles gather lane L of r[s], r[4+s], r[8+s], r[12+s] into row 4L+s */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);       /* lanes 0,2 of each */
        t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);   /* lanes 1,3 */
        t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        __m512 a = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        __m512 b = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
        __m512 c = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
        __m512 d = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xDD);
        _mm512_storeu_ps(dst + (size_t)(i + 0) * ldd, a);
        _mm512_storeu_ps(dst + (size_t)(i + 8) * ldd, b);
        _mm512_storeu_ps(dst + (size_t)(i + 4) * ldd, c);
        _mm512_storeu_ps(dst + (size_t)(i + 12) * ldd, d);
    }
}

/* The 6x64 forward tile over one chunk: acc[a][v] = sum_k A[a][k] * P[k][16v..16v+15]
 * for k < kc; A rows are F rows (stride N), P is the (GF_NC,64) panel. Adds into G rows
 * i0..i0+nrow-1, columns j0..j0+63 masked to < C (or stores if first). */
static inline __attribute__((always_inline)) void
gram_fwd_tile(float *G, int C, const float *A, size_t N, const float *P, int kc, int i0, int nrow,
              int j0, int first, const int v0) {
    __m512 acc[G_MR][4];
    const float *a[G_MR];
    for (int r = 0; r < G_MR; r++) {
        a[r] = A + (size_t)(r < nrow ? r : nrow - 1) * N; /* clamp: extra rows are dropped */
        for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        __m512 b[4];
#pragma GCC unroll 4
        for (int v = v0; v < 4; v++) b[v] = _mm512_load_ps(P + k * G_NB + 16 * v);
#pragma GCC unroll 6
        for (int r = 0; r < G_MR; r++) {
            __m512 x = _mm512_set1_ps(a[r][k]);
#pragma GCC unroll 4
            for (int v = v0; v < 4; v++) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
        }
    }
    for (int r = 0; r < nrow; r++) {
        float *g = G + (size_t)(i0 + r) * C + j0;
        for (int v = v0; v < 4; v++) {
            int rem = C - j0 - 16 * v;
            if (rem <= 0) break;
            __mmask16 m = rem >= 16 ? 0xFFFF : (__mmask16)((1u << rem) - 1);
            __m512 s = first ? acc[r][v] : _mm512_add_ps(_mm512_maskz_loadu_ps(m, g + 16 * v), acc[r][v]);
            _mm512_mask_storeu_ps(g + 16 * v, m, s);
        }
    }
}

/* One chunk of pixels k0..k0+kc-1 of panel j0 (64 columns of G; rmask[q]: which of its
 * rows 16q.. exist): transposes F's panel rows into P, then runs i-tiles lo..hi-1 of the
 * panel into G (stores if first, else adds). */
static void gram_fwd_chunk(float *G, const float *F, int C, int N, float *P, int j0,
                           const unsigned rmask[4], long k0, int kc, int lo, int hi, int first) {
    /* The 64 rows of the panel are 64 streams, more than the hardware prefetcher
     * tracks: fetch their next chunk while this one is used. */
    if (k0 + 2 * GF_NC <= N)
        for (int q = 0; q < G_NB && j0 + q < C; q++)
            for (int l = 0; l < GF_NC; l += 16)
                _mm_prefetch((const char *)(F + (size_t)(j0 + q) * N + k0 + GF_NC + l), _MM_HINT_T1);
    for (int kk = 0; kk < kc; kk += 16) {
        int rem = kc - kk;
        __mmask16 km = rem >= 16 ? 0xFFFF : (__mmask16)((1u << rem) - 1);
        for (int q = 0; q < 4; q++)
            transpose16(P + kk * G_NB + 16 * q, G_NB, F + (size_t)(j0 + 16 * q) * N + k0 + kk,
                        (size_t)N, km, rmask[q]);
    }
    for (int it = lo; it < hi; it++) {
        int i0 = it * G_MR;
        int nrow = C - i0 < G_MR ? C - i0 : G_MR;
        const float *A = F + (size_t)i0 * N + k0;
        /* vectors of columns all left of the diagonal (j < i0) are the lower triangle:
         * skipped, the mirror fills them */
        int v0 = (i0 - j0) / 16;
        if (v0 <= 0) gram_fwd_tile(G, C, A, (size_t)N, P, kc, i0, nrow, j0, first, 0);
        else if (v0 == 1) gram_fwd_tile(G, C, A, (size_t)N, P, kc, i0, nrow, j0, first, 1);
        else if (v0 == 2) gram_fwd_tile(G, C, A, (size_t)N, P, kc, i0, nrow, j0, first, 2);
        else gram_fwd_tile(G, C, A, (size_t)N, P, kc, i0, nrow, j0, first, 3);
    }
}

static void panel_rmask(unsigned rmask[4], int C, int j0) {
    for (int q = 0; q < 4; q++) {
        int rows = C - j0 - 16 * q;
        rows = rows < 0 ? 0 : rows > 16 ? 16 : rows;
        rmask[q] = (1u << rows) - 1u;
    }
}

/* Few channels (C <= GF_SPLIT_C: one or two panels) leave too few tiles to share, and
 * every thread on a panel would transpose all of it. So the pixels are cut into
 * GF_PARTS fixed parts instead, each summed into its own G (all panels, all tiles), and
 * the parts are added in order: the same sums for any number of threads. */
#define GF_SPLIT_C 128
#define GF_PARTS 8
static void gram_forward_parts(float *G, const float *F, int C, int N, float scale) {
    const int npj = (C + G_NB - 1) / G_NB, nit = (C + G_MR - 1) / G_MR;
    const long nchunks = ((long)N + GF_NC - 1) / GF_NC;
    const int parts = nchunks < GF_PARTS ? (int)nchunks : GF_PARTS;
    const size_t cc = (size_t)C * C;
    const int nthr = omp_get_max_threads();
    float *Gp = aligned_alloc(64, ((size_t)parts * cc * sizeof(float) + 63) / 64 * 64);
    float *Pbuf = aligned_alloc(64, (size_t)nthr * GF_NC * G_NB * sizeof(float));
    if (!Gp || !Pbuf) { /* 512 KB at most; nothing sensible to do without them */
        free(Gp);
        free(Pbuf);
        return;
    }
#pragma omp parallel
    {
        float *P = Pbuf + (size_t)omp_get_thread_num() * GF_NC * G_NB;
#pragma omp for schedule(static)
        for (int p = 0; p < parts; p++) {
            long c0 = p * nchunks / parts, c1 = (p + 1) * nchunks / parts;
            for (int jp = 0; jp < npj; jp++) {
                int j0 = jp * G_NB, hi = (j0 + G_NB + G_MR - 1) / G_MR;
                unsigned rmask[4];
                panel_rmask(rmask, C, j0);
                for (long c = c0; c < c1; c++) {
                    long k0 = c * GF_NC;
                    int kc = N - k0 < GF_NC ? (int)(N - k0) : GF_NC;
                    gram_fwd_chunk(Gp + p * cc, F, C, N, P, j0, rmask, k0, kc, 0, hi < nit ? hi : nit, c == c0);
                }
            }
        }
        /* G's upper triangle = scale * the parts' sum in order, then mirrored down */
#pragma omp for schedule(static)
        for (int i = 0; i < C; i++)
            for (int j = i; j < C; j++) {
                float sum = Gp[(size_t)i * C + j];
                for (int p = 1; p < parts; p++) sum += Gp[p * cc + (size_t)i * C + j];
                G[(size_t)i * C + j] = scale * sum;
            }
#pragma omp for schedule(static)
        for (int i = 0; i < C; i++)
            for (int j = 0; j < i; j++) G[(size_t)i * C + j] = G[(size_t)j * C + i];
    }
    free(Gp);
    free(Pbuf);
}

/* G is (C,C), F is (C,N): G = scale * F F^T */
void gram_forward_avx512(float *G, const float *F, int C, int N, float scale) {
    if (N <= 0) { /* no pixels: the chunk loop below would leave G unwritten */
        memset(G, 0, (size_t)C * C * sizeof(float));
        return;
    }
    if (C <= GF_SPLIT_C) {
        gram_forward_parts(G, F, C, N, scale);
        return;
    }
    const int npj = (C + G_NB - 1) / G_NB;
    /* Tiles (jp, it) in order: panel jp has the i-tiles with i0 < min(C, 64(jp+1)). A
     * tile costs its vectors right of the diagonal (4 - v0); threads get contiguous
     * runs of tiles of about equal cost. */
    long total = 0;
    for (int jp = 0; jp < npj; jp++)
        for (int i0 = 0; i0 < C && i0 < (jp + 1) * G_NB; i0 += G_MR)
            total += 4 - (i0 > jp * G_NB ? (i0 - jp * G_NB) / 16 : 0);
    const int nthr = omp_get_max_threads();
    float *Pbuf = aligned_alloc(64, (size_t)nthr * GF_NC * G_NB * sizeof(float));
    if (!Pbuf) return; /* 32 KB per thread; nothing sensible to do without it */
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        float *P = Pbuf + (size_t)t * GF_NC * G_NB;
        long cum = 0;
        for (int jp = 0; jp < npj; jp++) {
            int j0 = jp * G_NB;
            /* this thread's i-tiles of panel jp: those whose cost starts in its share */
            int lo = -1, hi = -1;
            for (int i0 = 0; i0 < C && i0 < j0 + G_NB; i0 += G_MR) {
                if (cum * nt / total == t) {
                    if (lo < 0) lo = i0 / G_MR;
                    hi = i0 / G_MR + 1;
                }
                cum += 4 - (i0 > j0 ? (i0 - j0) / 16 : 0);
            }
            if (lo < 0) continue;
            unsigned rmask[4];
            panel_rmask(rmask, C, j0);
            for (long k0 = 0; k0 < N; k0 += GF_NC) {
                int kc = N - k0 < GF_NC ? (int)(N - k0) : GF_NC;
                gram_fwd_chunk(G, F, C, N, P, j0, rmask, k0, kc, lo, hi, k0 == 0);
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
    free(Pbuf);
}

/* The 6x64 backward tile: acc[a][v] = sum_j Sp[j][a] * Fp[j][16v..16v+15], then
 * dF rows += acc. Sp is the packed panel (C,6) of S rows i0..i0+5, Fp the packed pixel
 * block (C,GB_NB) at this tile's 64 columns; m[v] masks the pixels past N. */
static inline void gram_bwd_tile(float *dF, const float *Fp, const float *Sp, int C, size_t N,
                                 int nrow, const __mmask16 m[4]) {
    __m512 acc[G_MR][4];
    for (int r = 0; r < G_MR; r++)
        for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
    for (int j = 0; j < C; j++, Fp += GB_NB, Sp += G_MR) {
        __m512 b0 = _mm512_load_ps(Fp), b1 = _mm512_load_ps(Fp + 16);
        __m512 b2 = _mm512_load_ps(Fp + 32), b3 = _mm512_load_ps(Fp + 48);
#pragma GCC unroll 6
        for (int r = 0; r < G_MR; r++) {
            __m512 x = _mm512_set1_ps(Sp[r]);
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
        }
    }
    for (int r = 0; r < nrow; r++) {
        float *d = dF + (size_t)r * N;
        for (int v = 0; v < 4; v++)
            _mm512_mask_storeu_ps(d + 16 * v, m[v], _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], d + 16 * v), acc[r][v]));
    }
}

/* accumulates: dF is (C,N), dG is (C,C): dF += scale * (dG + dG^T) F */
void gram_backward_avx512(float *dF, const float *dG, const float *F, int C, int N, float scale) {
    const int nit = (C + G_MR - 1) / G_MR;
    const int nthr = omp_get_max_threads();
    /* Sp[it][j][r] = scale * (dG[i][j] + dG[j][i]), i = 6 it + r (0 past C) */
    float *Sp = aligned_alloc(64, ((size_t)nit * G_MR * C * sizeof(float) + 63) / 64 * 64);
    /* per thread, the (C,GB_NB) pixel block of F, contiguous */
    float *Fbuf = aligned_alloc(64, (size_t)nthr * C * GB_NB * sizeof(float));
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
                for (int r = 0; r < G_MR; r++) {
                    int i = it * G_MR + r;
                    Sp[((size_t)it * C + j) * G_MR + r] =
                        i < C ? scale * (dG[(size_t)i * C + j] + dG[(size_t)j * C + i]) : 0.0f;
                }
        /* Rows of F are N floats apart, a page or more: read in place, every j of the
         * tile loop would be a TLB miss. So a block of GB_NB pixels is copied once into
         * Fp (in L2), then every i-tile streams it; an i-tile's S panel stays in L1
         * over the block's GB_NB/64 tiles. */
        float *Fp = Fbuf + (size_t)omp_get_thread_num() * C * GB_NB;
        /* Items are (pixel block, range of i-tiles). Small maps (14x14 has one block)
         * also split the i-tiles, so that every thread has work; a thread's items of
         * one block are consecutive and share its copy of the block. */
        const long nblk = ((long)N + GB_NB - 1) / GB_NB;
        int nsplit = (int)((2 * omp_get_num_threads() + nblk - 1) / nblk);
        if (nsplit > nit) nsplit = nit;
        long bcopied = -1;
#pragma omp for schedule(static)
        for (long item = 0; item < nblk * nsplit; item++) {
            long b = item / nsplit;
            int part = (int)(item % nsplit);
            int it0 = (int)((long)part * nit / nsplit), it1 = (int)((long)(part + 1) * nit / nsplit);
            size_t n0 = (size_t)b * GB_NB;
            int nb = (size_t)N - n0 < GB_NB ? (int)((size_t)N - n0) : GB_NB;
            for (int j = 0; j < C && bcopied != b; j++) {
                const float *src = F + (size_t)j * N + n0;
                float *dst = Fp + (size_t)j * GB_NB;
                if (nb == GB_NB) {
                    if (b + 1 < nblk) /* the next block of this row, for the next item */
                        for (int l = 0; l < GB_NB; l += 16) _mm_prefetch((const char *)(src + GB_NB + l), _MM_HINT_T2);
                    for (int l = 0; l < GB_NB; l += 16) _mm512_store_ps(dst + l, _mm512_loadu_ps(src + l));
                } else {
                    for (int l = 0; l < GB_NB; l += 16) {
                        int rem = nb - l;
                        __mmask16 m = rem >= 16 ? 0xFFFF : rem <= 0 ? 0 : (__mmask16)((1u << rem) - 1);
                        _mm512_store_ps(dst + l, _mm512_maskz_loadu_ps(m, src + l));
                    }
                }
            }
            bcopied = b;
            for (int it = it0; it < it1; it++) {
                int i0 = it * G_MR, nrow = C - i0 < G_MR ? C - i0 : G_MR;
                for (int s = 0; s < GB_NB / G_NB && s * G_NB < nb; s++) {
                    __mmask16 m[4];
                    for (int v = 0; v < 4; v++) {
                        int rem = nb - s * G_NB - 16 * v;
                        m[v] = rem >= 16 ? 0xFFFF : rem <= 0 ? 0 : (__mmask16)((1u << rem) - 1);
                    }
                    gram_bwd_tile(dF + (size_t)i0 * N + n0 + s * G_NB, Fp + s * G_NB,
                                  Sp + (size_t)it * C * G_MR, C, (size_t)N, nrow, m);
                }
            }
        }
    }
    free(Sp);
    free(Fbuf);
}
