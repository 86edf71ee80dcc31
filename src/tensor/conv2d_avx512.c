/* conv2d_avx512.c - the AVX-512 kernels of conv2d.c: the valid KxK correlation with
 * stride 1 or 2 (every pass of the fast path is one: see conv2d.c), and the weight
 * gradient.
 *
 * Vectors run along output pixels (16 of one row), never along channels, so 3-channel
 * layers (the network's first and last) use the FMAs as well as 128-channel ones. The
 * pixels of the output, row by row, are cut into vectors (the last of a row masked); a
 * register tile holds NV such vectors (consecutive, possibly across rows) x MR output
 * channels, and sums over (input channel, kh, kw) with FMAs of an input vector and a
 * broadcast weight. For stride 1 the input vector of a tap is one unaligned load; for
 * stride 2 it is two loads and an even-lane permute. Loads are masked to the row (lanes
 * past the row read nothing, so they cannot fault).
 *
 * MR x NV is 8x3, 4x6, 3x8, 2x12 or 1x24 (24 accumulators) so that few-channel layers
 * waste no lanes; conv2d.c picks MR from the channel count. Each output element is summed
 * by one thread in a fixed order: the result does not depend on the thread count.
 */
#include <immintrin.h>
#include <stddef.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "tensor/conv2d.h"

/* Bits 0..n-1 of a 32-bit mask (n clamped to 0..32). */
static inline uint32_t low_bits32(long n) {
    if (n <= 0) return 0;
    if (n >= 32) return 0xFFFFFFFFu;
    return (1u << n) - 1u;
}

/* 16 input values at stride 2 from p: elements p[0], p[2], .., p[30], of which only the
 * first avail may be read (the rest of the row). */
static inline __m512 load_s2(const float *p, long avail, __m512i even) {
    uint32_t m = low_bits32(avail);
    __m512 a = _mm512_maskz_loadu_ps((__mmask16)m, p);
    __m512 b = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), p + 16);
    return _mm512_permutex2var_ps(a, even, b);
}

/* ---- the correlation ------------------------------------------------------------ */

/* Floats per packed input segment: stride 1, the 16+Kw-1 input columns under 16 output
 * pixels; stride 2, their even columns (half of the segment) then their odd ones. */
static inline int seg_half(int Kw) { return 16 + (Kw - 1) / 2; }
static inline int seg_len(int Kw, int S) { return S == 1 ? 16 + Kw - 1 : 2 * seg_half(Kw); }

/* One tile: output vectors g0..g0+NV-1 (flat over rows; nvr vectors per row) of every
 * output channel. out is (Co,Ho,Wo), wp the packed weights (ceil(Co/MR),Ci,Kh,Kw,MR).
 * The tile's input is first copied to buf (Ci,Kh,NV,SEG): contiguous (input rows of
 * consecutive channels are a multiple of 4 KB apart on the network's sizes and would all
 * fall in one L1 set), stride 2 split into even and odd columns (every tap becomes one
 * load), zeros past the row; then every channel block of MR runs over it from L1/L2. */
static inline __attribute__((always_inline)) void
run_tile(float *out, const conv2d_view *v, const float *wp, const float *bias, long g0, int nvr,
         float *buf, const int MR, const int NV, const int S) {
    const size_t HoWo = (size_t)v->Ho * v->Wo;
    const long ng = (long)v->Ho * nvr;
    const int Ci = v->Ci, Kh = v->Kh, Kw = v->Kw, Co = v->Co;
    const int SEG = seg_len(Kw, S), half = seg_half(Kw);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    size_t ioff[24], ooff[24]; /* NV <= 24, MR <= 8, MR*NV <= 24 */
    long avail[24]; /* floats readable from the vector's first input column */
    __mmask16 mo[24];
#pragma GCC unroll 24
    for (int s = 0; s < NV; s++) {
        long g = g0 + s;
        if (g < ng) {
            int i = (int)(g / nvr), j = (int)(g % nvr) * 16;
            int n = v->Wo - j < 16 ? v->Wo - j : 16;
            mo[s] = (__mmask16)((1u << n) - 1u);
            ioff[s] = (size_t)i * S * v->ld + (size_t)j * S;
            ooff[s] = (size_t)i * v->Wo + j;
            avail[s] = (long)v->Wi - (long)j * S;
        } else { /* past the last pixel: zeros in, nothing out */
            mo[s] = 0;
            ioff[s] = ooff[s] = 0;
            avail[s] = 0;
        }
    }
    /* pack */
    float *dst = buf;
    for (int ci = 0; ci < Ci; ci++)
        for (int kh = 0; kh < Kh; kh++) {
            const float *pr = v->inp + (size_t)ci * v->cs + (size_t)kh * v->ld;
            /* the next tile's part of this row (the row's continuation, if the tile
             * is not the last of its row), for the co-block loop below to hide */
            for (int l = 0; l < NV * 16 * S; l += 16)
                _mm_prefetch((const char *)(pr + ioff[0] + NV * 16 * S + l), _MM_HINT_T0);
            for (int s = 0; s < NV; s++, dst += SEG) {
                const float *src = pr + ioff[s];
                if (S == 1) {
                    for (int o = 0; o < SEG; o += 16) {
                        __m512 x = _mm512_maskz_loadu_ps((__mmask16)low_bits32(avail[s] - o), src + o);
                        _mm512_mask_storeu_ps(dst + o, (__mmask16)low_bits32(SEG - o), x);
                    }
                } else {
                    for (int o = 0; o < SEG; o += 32) {
                        uint32_t m = low_bits32(avail[s] - o);
                        __m512 a = _mm512_maskz_loadu_ps((__mmask16)m, src + o);
                        __m512 b = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), src + o + 16);
                        __mmask16 ms = (__mmask16)low_bits32(half - o / 2);
                        _mm512_mask_storeu_ps(dst + o / 2, ms, _mm512_permutex2var_ps(a, even, b));
                        _mm512_mask_storeu_ps(dst + half + o / 2, ms, _mm512_permutex2var_ps(a, odd, b));
                    }
                }
            }
        }
    /* every block of MR output channels over the packed tile */
    for (int co0 = 0; co0 < Co; co0 += MR) {
        const int nco = Co - co0 < MR ? Co - co0 : MR;
        __m512 acc[24]; /* acc[s*MR+m]: vector s, channel m */
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            __m512 b = _mm512_set1_ps(bias && m < nco ? bias[co0 + m] : 0.0f);
#pragma GCC unroll 24
            for (int s = 0; s < NV; s++) acc[s * MR + m] = b;
        }
        const float *wr = wp + (size_t)co0 * Ci * Kh * Kw;
        const float *bp = buf;
        for (int r = 0; r < Ci * Kh; r++, bp += NV * SEG) {
            for (int kw = 0; kw < Kw; kw++, wr += MR) {
                const float *xp = bp + (S == 1 ? kw : (kw & 1) * half + kw / 2);
                /* all NV input vectors in registers (loaded once), one weight at a time */
                __m512 x[24];
#pragma GCC unroll 24
                for (int s = 0; s < NV; s++) {
                    x[s] = _mm512_loadu_ps(xp + s * SEG);
                    /* keep it in a register: gcc otherwise folds the load into each of
                     * the MR FMAs, MR loads (often split across lines) instead of one */
                    __asm__("" : "+v"(x[s]));
                }
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    __m512 wv = _mm512_set1_ps(wr[m]);
#pragma GCC unroll 24
                    for (int s = 0; s < NV; s++)
                        acc[s * MR + m] = _mm512_fmadd_ps(x[s], wv, acc[s * MR + m]);
                }
            }
        }
#pragma GCC unroll 8
        for (int m = 0; m < MR; m++) {
            if (m >= nco) break;
            float *oc = out + (size_t)(co0 + m) * HoWo;
#pragma GCC unroll 24
            for (int s = 0; s < NV; s++) _mm512_mask_storeu_ps(oc + ooff[s], mo[s], acc[s * MR + m]);
        }
    }
}

/* Tiles [it0,it1) of one (MR, NV, S). */
static inline __attribute__((always_inline)) void
run_items(float *out, const conv2d_view *v, const float *wp, const float *bias, long it0, long it1,
          float *buf, const int MR, const int NV, const int S) {
    const int nvr = (v->Wo + 15) / 16;
    for (long tile = it0; tile < it1; tile++) run_tile(out, v, wp, bias, tile * NV, nvr, buf, MR, NV, S);
}

/* One function per (MR, NV, S), so that the kernel is compiled for those constants (an
 * OpenMP region inside an inline function is outlined before the constants reach it:
 * the parallel region is in conv2d_run_avx512 instead). */
#define RUN_VARIANT(MR, NV)                                                                  \
    static void run_##MR##_s1(float *o, const conv2d_view *v, const float *w, const float *b, \
                              long i0, long i1, float *buf) {                                \
        run_items(o, v, w, b, i0, i1, buf, MR, NV, 1);                                       \
    }                                                                                        \
    static void run_##MR##_s2(float *o, const conv2d_view *v, const float *w, const float *b, \
                              long i0, long i1, float *buf) {                                \
        run_items(o, v, w, b, i0, i1, buf, MR, NV, 2);                                       \
    }
RUN_VARIANT(8, 3)
RUN_VARIANT(4, 6)
RUN_VARIANT(3, 7)
RUN_VARIANT(2, 10)
RUN_VARIANT(1, 16)

/* Register tile width (vectors) for MR output channels: MR*NV accumulators + NV inputs
 * + 1 weight within the 32 registers. */
static int nv_for(int mr) { return mr == 8 ? 3 : mr == 4 ? 6 : mr == 3 ? 7 : mr == 2 ? 10 : 16; }

/* This thread's share [*a,*b) of n items: contiguous blocks, as schedule(static). */
static void my_share(long n, long *a, long *b) {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    long q = n / nt, r = n % nt;
    *a = t * q + (t < r ? t : r);
    *b = *a + q + (t < r);
}

/* out is (Co,Ho,Wo); v, wp, bias as for conv2d_run_portable. -1 (nothing done) if the
 * shape is not one this kernel has, or there is no memory for its tile buffers. */
int conv2d_run_avx512(float *out, const conv2d_view *v, const float *wp, const float *bias) {
    if ((v->S != 1 && v->S != 2) || (v->mr != 8 && v->mr != 4 && v->mr != 3 && v->mr != 2 && v->mr != 1))
        return -1;
    const int nv = nv_for(v->mr), s2 = v->S == 2;
    const long ntiles = ((long)v->Ho * ((v->Wo + 15) / 16) + nv - 1) / nv;
    /* one tile buffer per thread, cache lines apart */
    const size_t nbuf = ((size_t)v->Ci * v->Kh * nv * seg_len(v->Kw, v->S) + 31) / 16 * 16;
    const int nth = omp_get_max_threads();
    float *bufs = aligned_alloc(64, nbuf * nth * sizeof(float));
    if (!bufs) return -1;
#pragma omp parallel num_threads(nth)
    {
        long a, b;
        my_share(ntiles, &a, &b);
        float *buf = bufs + nbuf * omp_get_thread_num();
        switch (v->mr) {
        case 8: (s2 ? run_8_s2 : run_8_s1)(out, v, wp, bias, a, b, buf); break;
        case 4: (s2 ? run_4_s2 : run_4_s1)(out, v, wp, bias, a, b, buf); break;
        case 3: (s2 ? run_3_s2 : run_3_s1)(out, v, wp, bias, a, b, buf); break;
        case 2: (s2 ? run_2_s2 : run_2_s1)(out, v, wp, bias, a, b, buf); break;
        default: (s2 ? run_1_s2 : run_1_s1)(out, v, wp, bias, a, b, buf); break;
        }
    }
    free(bufs);
    return 0;
}

/* ---- the weight gradient ---------------------------------------------------------- */

/* One item: part[co][t] += sum over output rows [i0,i1) of dout[co][i][j] * the input
 * under tap t = (ci,kh,kw) at pixel (i,j), for the MR channels from co0 and the NR taps
 * from t0. Per lane sums over the pixels, then a fixed-order sum of the 16 lanes. */
static inline __attribute__((always_inline)) void
dw_item(float *part, const float *dout, const float *inp, int Ci, int Co, int H, int W, int K,
        int i0, int i1, int co0, int t0, const int MR, const int NR, const int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    const int T = Ci * K * K;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const float *tp[24], *dp[8]; /* NR <= 24, MR <= 8, MR*NR <= 24 */
    int kwr[24];
#pragma GCC unroll 24
    for (int r = 0; r < NR; r++) {
        int t = t0 + r < T ? t0 + r : T - 1; /* past the end: repeat the last, discarded */
        int ci = t / (K * K), kh = t % (K * K) / K, kw = t % K;
        tp[r] = inp + (size_t)ci * H * W + (size_t)kh * W + kw;
        kwr[r] = kw;
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
        dp[m] = dout + (size_t)(co0 + m < Co ? co0 + m : Co - 1) * Ho * Wo;
    __m512 acc[24]; /* acc[m*NR+r] */
#pragma GCC unroll 24
    for (int a = 0; a < MR * NR; a++) acc[a] = _mm512_setzero_ps();
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < Wo; j += 16) {
            int n = Wo - j < 16 ? Wo - j : 16;
            __mmask16 mk = (__mmask16)((1u << n) - 1u);
            size_t pin = (size_t)i * S * W + (size_t)j * S, pout = (size_t)i * Wo + j;
            /* lanes past the row: dout reads 0 there, so what x holds does not count */
#define DW_X(r) (S == 1 ? _mm512_maskz_loadu_ps(mk, tp[r] + pin) \
                        : load_s2(tp[r] + pin, (long)W - (long)j * S - kwr[r], even))
            if (MR > NR) { /* all NR input vectors live */
                __m512 x[24];
#pragma GCC unroll 24
                for (int r = 0; r < NR; r++) {
                    x[r] = DW_X(r);
                    __asm__("" : "+v"(x[r])); /* one load, not one per FMA (see run_tile) */
                }
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    __m512 d = _mm512_maskz_loadu_ps(mk, dp[m] + pout);
#pragma GCC unroll 24
                    for (int r = 0; r < NR; r++)
                        acc[m * NR + r] = _mm512_fmadd_ps(d, x[r], acc[m * NR + r]);
                }
            } else { /* all MR dout vectors live */
                __m512 d[8];
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    d[m] = _mm512_maskz_loadu_ps(mk, dp[m] + pout);
                    __asm__("" : "+v"(d[m]));
                }
#pragma GCC unroll 24
                for (int r = 0; r < NR; r++) {
                    __m512 x = DW_X(r);
#pragma GCC unroll 8
                    for (int m = 0; m < MR; m++)
                        acc[m * NR + r] = _mm512_fmadd_ps(d[m], x, acc[m * NR + r]);
                }
            }
#undef DW_X
        }
    /* (constant trip counts, so that acc stays in registers: no variable index) */
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 24
        for (int r = 0; r < NR; r++)
            if (co0 + m < Co && t0 + r < T)
                part[(size_t)(co0 + m) * T + t0 + r] += _mm512_reduce_add_ps(acc[m * NR + r]);
}

/* Items [it0,it1) (channel block, tap block), taps inner: a thread keeps its MR
 * channels' dout rows in L1 while the taps go by. */
static inline __attribute__((always_inline)) void
dw_items(float *part, const float *dout, const float *inp, int Ci, int Co, int H, int W, int K,
         int i0, int i1, long it0, long it1, const int MR, const int NR, const int S) {
    const int ntb = (Ci * K * K + NR - 1) / NR;
    for (long item = it0; item < it1; item++)
        dw_item(part, dout, inp, Ci, Co, H, W, K, i0, i1, (int)(item / ntb) * MR,
                (int)(item % ntb) * NR, MR, NR, S);
}

#define DW_VARIANT(MR, NR)                                                                     \
    static void dw_##MR##_s1(float *p, const float *d, const float *x, int Ci, int Co, int H,   \
                             int W, int K, int i0, int i1, long a, long b) {                    \
        dw_items(p, d, x, Ci, Co, H, W, K, i0, i1, a, b, MR, NR, 1);                            \
    }                                                                                           \
    static void dw_##MR##_s2(float *p, const float *d, const float *x, int Ci, int Co, int H,   \
                             int W, int K, int i0, int i1, long a, long b) {                    \
        dw_items(p, d, x, Ci, Co, H, W, K, i0, i1, a, b, MR, NR, 2);                            \
    }
DW_VARIANT(8, 3)
DW_VARIANT(4, 6)
DW_VARIANT(3, 7)
DW_VARIANT(2, 10)
DW_VARIANT(1, 16)

/* part is (Co, Ci*K*K), dout (Co,Ho,Wo), inp (Ci,H,W): part += the sum over all output
 * rows, in chunks of R rows. -1 (nothing done) for S > 2. Each thread owns a fixed
 * share of the (channel block, tap block) items and runs the chunks over it in order:
 * no barrier between chunks, and the same sums whatever the thread count. */
int conv2d_dweight_avx512(float *part, const float *dout, const float *inp, int Ci, int Co, int H,
                          int W, int K, int S, int R) {
    if (S != 1 && S != 2) return -1;
    const int mr = Co >= 5 ? 8 : Co, s2 = S == 2, Ho = (H - K) / S + 1;
    const long nitems = (long)((Co + mr - 1) / mr) * ((Ci * K * K + nv_for(mr) - 1) / nv_for(mr));
#pragma omp parallel
    {
        long a, b;
        my_share(nitems, &a, &b);
        for (int i0 = 0; i0 < Ho; i0 += R) {
            int i1 = i0 + R < Ho ? i0 + R : Ho;
            switch (mr) {
            case 8: (s2 ? dw_8_s2 : dw_8_s1)(part, dout, inp, Ci, Co, H, W, K, i0, i1, a, b); break;
            case 4: (s2 ? dw_4_s2 : dw_4_s1)(part, dout, inp, Ci, Co, H, W, K, i0, i1, a, b); break;
            case 3: (s2 ? dw_3_s2 : dw_3_s1)(part, dout, inp, Ci, Co, H, W, K, i0, i1, a, b); break;
            case 2: (s2 ? dw_2_s2 : dw_2_s1)(part, dout, inp, Ci, Co, H, W, K, i0, i1, a, b); break;
            default: (s2 ? dw_1_s2 : dw_1_s1)(part, dout, inp, Ci, Co, H, W, K, i0, i1, a, b); break;
            }
        }
    }
    return 0;
}
