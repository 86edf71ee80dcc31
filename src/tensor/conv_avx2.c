/* conv_avx2.c - the AVX2+FMA kernel of the direct 3x3 convolution (stride 1, pad 1),
 * for x86-64 CPUs without AVX-512. Same design as conv_avx512.c at half the width.
 *
 * Vectors run along W (8 output pixels of one row). A register tile holds RT output
 * rows (RT <= 3) x CONV_KB output channels x 8 pixels: 12 ymm accumulators, which
 * leaves 4 of the 16 ymm registers. So instead of holding all RT+2 input rows of a kw
 * at once (as the AVX-512 kernel does), the rows slide: kh = 0 uses input rows 0..2,
 * kh = 1 rows 1..3, kh = 2 rows 2..4, loading one new row per kh. That takes 3 input
 * registers + 1 broadcast weight: 16 in all, and each input load still feeds up to
 * 3*CONV_KB FMAs.
 *
 * Zero padding: interior tiles (all 10 input columns inside the row) use plain loads;
 * border tiles use _mm256_maskload_ps (masked lanes read nothing, so cannot fault).
 * Rows outside the image point at a zero buffer. The tile's row count is a compile-
 * time constant (3 for full tiles, 1 or 2 for the last one), so no row is wasted.
 *
 * Weights come packed by conv.c as (ceil(C_out/KB), C_in, 9, KB): for one block of KB
 * output channels, the KB weights of one (ci, tap) are adjacent. The backward pass to
 * the input is the same kernel run with the flipped, transposed kernel packed that way.
 */
#include <immintrin.h>
#include <stddef.h>

#define CONV_KB 4 /* output channels per packed block; conv.c packs with the same value */
#define CONV_RT 3 /* output rows per full register tile: 3*KB = 12 accumulators */
#define CONV_PF 3 /* prefetch distance in input channels, as in conv_avx512.c */
#define CONV_CB 128 /* input channels per cache block: keeps a tile's input rows in L1/L2 */

/* Out-of-range input rows read from here: 8 lanes plus one each side of slack. */
static const float conv_zeros[32] __attribute__((aligned(32)));

/* Lanes l with lo <= l < hi set (all ones), the others clear. */
static inline __m256i lane_range(int lo, int hi) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(lo - 1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), idx));
}

/* One register tile, summing input channels [c0, c1).
 * out is (C_out,H,W) at channel co0 already (out + co0*H*W), inp is (C_in,H,W),
 * wb is the packed block (C_in,9,KB). Rows h0..h0+RT-1 (all < H), columns w0..w0+7
 * (only < W are stored), channels co0..co0+nco-1. first: start from bias (or 0), else
 * add to what out holds (the previous channel blocks' partial sums, in a fixed order).
 * border: some of the input columns w0-1..w0+8 are outside the row, so loads are
 * masked. RT, first and border are constants at every call site. */
static inline __attribute__((always_inline)) void
conv_tile(float *out, const float *inp, const float *wb, const float *bias, int c0, int c1,
          const int first, const int border, const int RT, int H, int W, int h0, int w0, int nco) {
    const size_t HW = (size_t)H * W;
    __m256i mo = _mm256_set1_epi32(-1), mk[3] = {mo, mo, mo};
    if (border) {
        mo = lane_range(0, W - w0);
        mk[0] = lane_range(1 - w0, W - w0 + 1);
        mk[1] = mo;
        mk[2] = lane_range(0, W - w0 - 1);
    }
    __m256 acc[CONV_RT][CONV_KB];
#pragma GCC unroll 4
    for (int k = 0; k < CONV_KB; k++) {
        __m256 b;
        if (first) b = _mm256_set1_ps((bias && k < nco) ? bias[k] : 0.0f);
#pragma GCC unroll 3
        for (int r = 0; r < RT; r++) {
            const float *o = out + (k < nco ? k : 0) * HW + (size_t)(h0 + r) * W + w0;
            if (first) acc[r][k] = b;
            else if (k >= nco) acc[r][k] = _mm256_setzero_ps(); /* never stored */
            else if (border) acc[r][k] = _mm256_maskload_ps(o, mo);
            else acc[r][k] = _mm256_loadu_ps(o);
        }
    }
    /* Input row j of the tile is image row h0-1+j; rows outside the image read zeros
     * and do not advance with the channel (step 0). */
    const float *rp[CONV_RT + 2];
    size_t step[CONV_RT + 2];
#pragma GCC unroll 5
    for (int j = 0; j < RT + 2; j++) {
        int h = h0 - 1 + j;
        int ok = h >= 0 && h < H;
        rp[j] = ok ? inp + (size_t)c0 * HW + (size_t)h * W + w0 : conv_zeros + 8;
        step[j] = ok ? HW : 0;
    }
    const float *wc = wb + (size_t)c0 * 9 * CONV_KB;
    for (int ci = c0; ci < c1; ci++) {
        /* Consecutive channels are H*W floats apart, a stride no hardware prefetcher
         * follows: fetch the rows of channel ci+CONV_PF (the 10 columns span <= 2 lines). */
#pragma GCC unroll 5
        for (int j = 0; j < RT + 2; j++) {
            _mm_prefetch((const char *)(rp[j] + CONV_PF * step[j] - 1), _MM_HINT_T0);
            _mm_prefetch((const char *)(rp[j] + CONV_PF * step[j] + 8), _MM_HINT_T0);
        }
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; kw++) {
            /* x[j] is input row j at columns w0+kw-1..; loaded when first needed
             * (rows 0..RT-1 for kh = 0, then row RT-1+kh), dead after kh = j */
            __m256 x[CONV_RT + 2];
#pragma GCC unroll 3
            for (int kh = 0; kh < 3; kh++) {
#pragma GCC unroll 5
                for (int j = kh == 0 ? 0 : RT - 1 + kh; j < RT + kh; j++) {
                    if (border) x[j] = _mm256_maskload_ps(rp[j] + kw - 1, mk[kw]);
                    else x[j] = _mm256_loadu_ps(rp[j] + kw - 1);
                }
#pragma GCC unroll 4
                for (int k = 0; k < CONV_KB; k++) {
                    __m256 wv = _mm256_broadcast_ss(wc + (kh * 3 + kw) * CONV_KB + k);
#pragma GCC unroll 3
                    for (int r = 0; r < RT; r++) acc[r][k] = _mm256_fmadd_ps(x[r + kh], wv, acc[r][k]);
                }
            }
        }
#pragma GCC unroll 5
        for (int j = 0; j < RT + 2; j++) rp[j] += step[j];
        wc += 9 * CONV_KB;
    }
#pragma GCC unroll 4
    for (int k = 0; k < CONV_KB; k++) {
        if (k >= nco) break;
#pragma GCC unroll 3
        for (int r = 0; r < RT; r++) {
            float *o = out + k * HW + (size_t)(h0 + r) * W + w0;
            if (border) _mm256_maskstore_ps(o, mo, acc[r][k]);
            else _mm256_storeu_ps(o, acc[r][k]);
        }
    }
}

/* The row count and first flag as constants, so each variant is fully unrolled. */
static void conv_tile_rows(float *out, const float *inp, const float *wb, const float *bias,
                           int c0, int c1, int first, int border, int rows, int H, int W,
                           int h0, int w0, int nco) {
#define CONV_TILE_CASE(F, B, R)                                                         \
    if (first == F && border == B && rows == R) {                                       \
        conv_tile(out, inp, wb, bias, c0, c1, F, B, R, H, W, h0, w0, nco);              \
        return;                                                                         \
    }
    CONV_TILE_CASE(1, 0, 3) CONV_TILE_CASE(0, 0, 3) CONV_TILE_CASE(1, 1, 3) CONV_TILE_CASE(0, 1, 3)
    CONV_TILE_CASE(1, 0, 2) CONV_TILE_CASE(0, 0, 2) CONV_TILE_CASE(1, 1, 2) CONV_TILE_CASE(0, 1, 2)
    CONV_TILE_CASE(1, 0, 1) CONV_TILE_CASE(0, 0, 1) CONV_TILE_CASE(1, 1, 1) CONV_TILE_CASE(0, 1, 1)
#undef CONV_TILE_CASE
}

/* out is (C_out,H,W), inp is (C_in,H,W), wpack is (ceil(C_out/KB),C_in,9,KB), bias is
 * (C_out) or NULL. Work is split over (row tile, channel block) pairs, never over the
 * sum, so the result does not depend on the thread count at all. */
void conv3x3_run_avx2(float *out, const float *inp, const float *wpack, const float *bias,
                      int C_in, int C_out, int H, int W) {
    const size_t HW = (size_t)H * W;
    const int ncob = (C_out + CONV_KB - 1) / CONV_KB;
    const int nrt = (H + CONV_RT - 1) / CONV_RT;
    const int nwt = (W + 7) / 8;
    const long nitems = (long)nrt * ncob;
    /* Row tile outer, channel block inner: consecutive items of a thread share the
     * same input rows, which stay in its L2 while the weight blocks stream by. */
#pragma omp parallel for schedule(static)
    for (long item = 0; item < nitems; item++) {
        int rt = (int)(item / ncob), cob = (int)(item % ncob);
        int co0 = cob * CONV_KB;
        int nco = C_out - co0 < CONV_KB ? C_out - co0 : CONV_KB;
        int h0 = rt * CONV_RT;
        int rows = H - h0 < CONV_RT ? H - h0 : CONV_RT;
        const float *wb = wpack + (size_t)cob * C_in * 9 * CONV_KB;
        const float *bb = bias ? bias + co0 : NULL;
        float *ob = out + (size_t)co0 * HW;
        for (int c0 = 0; c0 < C_in; c0 += CONV_CB) {
            int c1 = c0 + CONV_CB < C_in ? c0 + CONV_CB : C_in;
            for (int wt = 0; wt < nwt; wt++) {
                int w0 = wt * 8;
                /* interior: input columns w0-1 .. w0+8 all inside the row */
                int border = w0 == 0 || w0 + 9 > W;
                conv_tile_rows(ob, inp, wb, bb, c0, c1, c0 == 0, border, rows, H, W, h0, w0, nco);
            }
        }
    }
}
