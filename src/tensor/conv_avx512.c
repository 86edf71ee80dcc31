/* conv_avx512.c - the AVX-512 kernel of the direct 3x3 convolution (stride 1, pad 1).
 *
 * Vectors run along W (16 output pixels of one row). A register tile holds CONV_RT
 * output rows x CONV_KB output channels x 16 pixels (CONV_RT*CONV_KB zmm accumulators),
 * and sums over every input channel and the 9 taps with FMAs of an input vector and a
 * broadcast weight. One input row vector (for one kw) feeds up to 3 output rows (one
 * per kh), so each load is used 3*CONV_KB times. Zero padding: columns by masked
 * loads (masked lanes read nothing, so they also cannot fault), rows by pointing the
 * out-of-range rows at a zero buffer. Any W works: the last vector of a row is masked.
 *
 * Weights come packed by conv.c as (ceil(C_out/KB), C_in, 9, KB): for one block of KB
 * output channels, the KB weights of one (ci, tap) are adjacent. The backward pass to
 * the input is the same kernel run with the flipped, transposed kernel packed that way.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define CONV_KB 4 /* output channels per packed block; conv.c packs with the same value */
#define CONV_RT 4 /* output rows per register tile (VGG's H are mostly multiples of 4) */
/* Prefetch distance in input channels (~200 cycles of FMAs). Longer leads measured
 * worse, even when the input streams from DRAM: they crowd L1 and the miss buffers. */
#define CONV_PF 3
#define CONV_CB 128 /* input channels per cache block: keeps a tile's input rows in L1/L2 */

/* Out-of-range input rows read from here; 16 lanes plus one each side of slack. */
static const float conv_zeros[48] __attribute__((aligned(64)));

/* Bits l of a 16-lane mask with lo <= l < hi. */
static inline __mmask16 lane_range(int lo, int hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << (hi - lo)) - 1u) << lo);
}

/* One register tile, summing input channels [c0, c1).
 * out is (C_out,H,W) at channel co0 already (out + co0*H*W), inp is (C_in,H,W),
 * wb is the packed block (C_in,9,KB). Rows h0..h0+RT-1 (only < H are stored), columns
 * w0..w0+15 (only < W), channels co0..co0+nco-1. first: start from bias (or 0), else
 * add to what out holds (the previous channel blocks' partial sums, in a fixed order). */
static inline __attribute__((always_inline)) void
conv_tile(float *out, const float *inp, const float *wb, const float *bias, const float *mask,
          int relu, int c0, int c1, int first, int H, int W, int h0, int w0, int nco) {
    const size_t HW = (size_t)H * W;
    const __mmask16 mo = lane_range(0, W - w0);
    const __mmask16 mk[3] = {lane_range(1 - w0, W - w0 + 1), mo, lane_range(0, W - w0 - 1)};
    __m512 acc[CONV_RT][CONV_KB];
    __mmask16 mrow[CONV_RT];
#pragma GCC unroll 8
    for (int r = 0; r < CONV_RT; r++) mrow[r] = (h0 + r < H) ? mo : 0;
#pragma GCC unroll 8
    for (int k = 0; k < CONV_KB; k++) {
        __m512 b;
        if (first) b = _mm512_set1_ps((bias && k < nco) ? bias[k] : 0.0f);
#pragma GCC unroll 8
        for (int r = 0; r < CONV_RT; r++) {
            if (first) acc[r][k] = b;
            else acc[r][k] = _mm512_maskz_loadu_ps(mrow[r] & (k < nco ? 0xFFFF : 0),
                                                   out + k * HW + (size_t)(h0 + r) * W + w0);
        }
    }
    /* Input row j of the tile is image row h0-1+j; rows outside the image read zeros
     * and do not advance with the channel (step 0). */
    const float *rp[CONV_RT + 2];
    size_t step[CONV_RT + 2];
#pragma GCC unroll 8
    for (int j = 0; j < CONV_RT + 2; j++) {
        int h = h0 - 1 + j;
        int ok = h >= 0 && h < H;
        rp[j] = ok ? inp + (size_t)c0 * HW + (size_t)h * W + w0 : conv_zeros + 16;
        step[j] = ok ? HW : 0;
    }
    const float *wc = wb + (size_t)c0 * 9 * CONV_KB;
    for (int ci = c0; ci < c1; ci++) {
        /* Consecutive channels are H*W floats apart, a stride no hardware prefetcher
         * follows (and a new page each time): fetch the rows of channel ci+CONV_PF. */
#pragma GCC unroll 8
        for (int j = 0; j < CONV_RT + 2; j++) {
            _mm_prefetch((const char *)(rp[j] + CONV_PF * step[j]), _MM_HINT_T0);
            _mm_prefetch((const char *)(rp[j] + CONV_PF * step[j] + 15), _MM_HINT_T0);
        }
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; kw++) {
            __m512 x[CONV_RT + 2];
#pragma GCC unroll 8
            for (int j = 0; j < CONV_RT + 2; j++) x[j] = _mm512_maskz_loadu_ps(mk[kw], rp[j] + kw - 1);
#pragma GCC unroll 3
            for (int kh = 0; kh < 3; kh++) {
#pragma GCC unroll 8
                for (int k = 0; k < CONV_KB; k++) {
                    __m512 wv = _mm512_set1_ps(wc[(kh * 3 + kw) * CONV_KB + k]);
#pragma GCC unroll 8
                    for (int r = 0; r < CONV_RT; r++) acc[r][k] = _mm512_fmadd_ps(x[r + kh], wv, acc[r][k]);
                }
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < CONV_RT + 2; j++) rp[j] += step[j];
        wc += 9 * CONV_KB;
    }
#pragma GCC unroll 8
    for (int k = 0; k < CONV_KB; k++) {
        if (k >= nco) break;
#pragma GCC unroll 8
        for (int r = 0; r < CONV_RT; r++) {
            size_t o = k * HW + (size_t)(h0 + r) * W + w0;
            __m512 v = acc[r][k];
            if (mask) { /* fused ReLU backward: zero where the ReLU's output was not > 0 */
                __m512 m = _mm512_maskz_loadu_ps(mrow[r], mask + o);
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ), v);
            }
            if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps()); /* fused ReLU: v > 0 ? v : 0 */
            _mm512_mask_storeu_ps(out + o, mrow[r], v);
        }
    }
}

/* out is (C_out,H,W), inp is (C_in,H,W), wpack is (ceil(C_out/KB),C_in,9,KB), bias is
 * (C_out) or NULL, mask is (C_out,H,W) or NULL (then out is zeroed where mask <= 0, as
 * the backward pass of a ReLU would, while the tile is still in registers); relu: out =
 * max(out, 0), the forward ReLU, also in registers. Work is split over (row tile, channel block) pairs, never over the
 * sum, so the result does not depend on the thread count at all. */
void conv3x3_run_avx512(float *out, const float *inp, const float *wpack, const float *bias,
                        const float *mask, int relu, int C_in, int C_out, int H, int W) {
    const size_t HW = (size_t)H * W;
    const int ncob = (C_out + CONV_KB - 1) / CONV_KB;
    const int nrt = (H + CONV_RT - 1) / CONV_RT;
    const int nwt = (W + 15) / 16;
    const long nitems = (long)nrt * ncob;
    /* Row tile outer, channel block inner: consecutive items of a thread share the
     * same input rows, which stay in its L2 while the weight blocks stream by. */
#pragma omp parallel for schedule(static)
    for (long item = 0; item < nitems; item++) {
        int rt = (int)(item / ncob), cob = (int)(item % ncob);
        int co0 = cob * CONV_KB;
        int nco = C_out - co0 < CONV_KB ? C_out - co0 : CONV_KB;
        const float *wb = wpack + (size_t)cob * C_in * 9 * CONV_KB;
        const float *bb = bias ? bias + co0 : NULL;
        float *ob = out + (size_t)co0 * HW;
        const float *mb = mask ? mask + (size_t)co0 * HW : NULL;
        for (int c0 = 0; c0 < C_in; c0 += CONV_CB) {
            int c1 = c0 + CONV_CB < C_in ? c0 + CONV_CB : C_in;
            const float *m = c1 == C_in ? mb : NULL; /* the mask applies to the final sums */
            const int rl = c1 == C_in && relu;       /* and so does the ReLU */
            for (int wt = 0; wt < nwt; wt++) {
                if (c0 == 0) conv_tile(ob, inp, wb, bb, m, rl, c0, c1, 1, H, W, rt * CONV_RT, wt * 16, nco);
                else conv_tile(ob, inp, wb, bb, m, rl, c0, c1, 0, H, W, rt * CONV_RT, wt * 16, nco);
            }
        }
    }
}
