/* conv2d_avx512bf16.c - the AVX512-BF16 kernels of conv2d.c: the valid KxK correlation
 * with stride 1 or 2 (the forward pass and the backward pass to the input), and the
 * weight gradient, with bf16 inputs (rounded to nearest even) and fp32 sums. VDPBF16PS
 * adds to each fp32 lane the products of one pair of bf16: two FMAs' work at once.
 *
 * The correlation is conv2d_avx512.c's with the pairs along input channels: the tile's
 * input copy in buf holds, for each input column, the word (channel 2p in the low half,
 * 2p+1 in the high half), rounded to bf16 as it is copied; the packed weights (conv2d.c)
 * hold the same pairs, a missing odd channel zero on both sides (3-channel layers: one
 * pair and a half). The register tiles over output pixels (MR x NV), the masks and the
 * stride-2 split into even and odd columns are as there.
 *
 * The weight gradient pairs consecutive output pixels instead: lane l of a vector holds
 * pixels 2l and 2l+1 of 32 in one row, which is just the memory order of bf16 copies of
 * dout and of the input (for stride 2 of the input's even and odd columns, copied
 * apart), so every vector is one load and no channel is wasted on 3-channel layers. The
 * copies are made once per call, in the caller's scratch.
 *
 * Each output element (a pixel, or a weight's chunk sum) is summed by one thread in a
 * fixed order: the result does not depend on the thread count.
 */
#include <immintrin.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tensor/conv2d.h"

/* Bits 0..n-1 of a 32-bit mask (n clamped to 0..32). */
static inline uint32_t low_bits32(long n) {
    if (n <= 0) return 0;
    if (n >= 32) return 0xFFFFFFFFu;
    return (1u << n) - 1u;
}

/* The word pairs (a[l] low, b[l] high) of 16 floats a and b, in bf16. */
static inline __m512i pair_bf16(__m512 a, __m512 b) {
    /* cvtne2ps puts b's bf16 in elements 0..15 of the result (low), a's in 16..31 */
    const __m512i ipair = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                           23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(ipair, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

/* This thread's share [*a,*b) of n items: contiguous blocks, as schedule(static). */
static void my_share(long n, long *a, long *b) {
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
    long q = n / nt, r = n % nt;
    *a = t * q + (t < r ? t : r);
    *b = *a + q + (t < r);
}

/* ---- the correlation ------------------------------------------------------------ */

/* Words per packed input segment, as the floats of conv2d_avx512.c: stride 1, the
 * 16+Kw-1 input columns under 16 output pixels; stride 2, their even columns, then odd. */
static inline int seg_half(int Kw) { return 16 + (Kw - 1) / 2; }
static inline int seg_len(int Kw, int S) { return S == 1 ? 16 + Kw - 1 : 2 * seg_half(Kw); }

/* One tile: output vectors g0..g0+NV-1 (flat over rows; nvr vectors per row) of every
 * output channel. out is (Co,Ho,Wo), wp the packed pairs (ceil(Co/MR),ceil(Ci/2),Kh,Kw,MR).
 * The tile's input goes first to buf (ceil(Ci/2),Kh,NV,SEG) as channel pairs in bf16. */
static inline __attribute__((always_inline)) void
run_tile(float *out, const conv2d_view *v, const uint32_t *wp, const float *bias, long g0, int nvr,
         uint32_t *buf, const int MR, const int NV, const int S) {
    const size_t HoWo = (size_t)v->Ho * v->Wo;
    const long ng = (long)v->Ho * nvr;
    const int Ci = v->Ci, Cp = (Ci + 1) / 2, Kh = v->Kh, Kw = v->Kw, Co = v->Co;
    const int SEG = seg_len(Kw, S), half = seg_half(Kw);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    size_t ioff[24], ooff[24]; /* NV <= 24, MR <= 8, MR*NV <= 24 */
    long avail[24];            /* floats readable from the vector's first input column */
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
    /* pack: channel pairs (2cp, 2cp+1), the second zero past Ci */
    uint32_t *dst = buf;
    for (int cp = 0; cp < Cp; cp++)
        for (int kh = 0; kh < Kh; kh++) {
            const float *p0 = v->inp + (size_t)(2 * cp) * v->cs + (size_t)kh * v->ld;
            const float *p1 = p0 + v->cs;
            const int has1 = 2 * cp + 1 < Ci;
            for (int l = 0; l < NV * 16 * S; l += 16) { /* the next tile's part (conv2d_avx512.c) */
                _mm_prefetch((const char *)(p0 + ioff[0] + NV * 16 * S + l), _MM_HINT_T0);
                if (has1) _mm_prefetch((const char *)(p1 + ioff[0] + NV * 16 * S + l), _MM_HINT_T0);
            }
            for (int s = 0; s < NV; s++, dst += SEG) {
                const float *a0 = p0 + ioff[s], *a1 = p1 + ioff[s];
                if (S == 1) {
                    for (int o = 0; o < SEG; o += 16) {
                        __mmask16 m = (__mmask16)low_bits32(avail[s] - o);
                        __m512 x0 = _mm512_maskz_loadu_ps(m, a0 + o);
                        __m512 x1 = has1 ? _mm512_maskz_loadu_ps(m, a1 + o) : _mm512_setzero_ps();
                        _mm512_mask_storeu_epi32(dst + o, (__mmask16)low_bits32(SEG - o), pair_bf16(x0, x1));
                    }
                } else {
                    for (int o = 0; o < SEG; o += 32) {
                        uint32_t m = low_bits32(avail[s] - o);
                        __m512 a = _mm512_maskz_loadu_ps((__mmask16)m, a0 + o);
                        __m512 b = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), a0 + o + 16);
                        __m512 c = _mm512_setzero_ps(), d = c;
                        if (has1) {
                            c = _mm512_maskz_loadu_ps((__mmask16)m, a1 + o);
                            d = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), a1 + o + 16);
                        }
                        __mmask16 ms = (__mmask16)low_bits32(half - o / 2);
                        _mm512_mask_storeu_epi32(dst + o / 2, ms,
                                                 pair_bf16(_mm512_permutex2var_ps(a, even, b),
                                                           _mm512_permutex2var_ps(c, even, d)));
                        _mm512_mask_storeu_epi32(dst + half + o / 2, ms,
                                                 pair_bf16(_mm512_permutex2var_ps(a, odd, b),
                                                           _mm512_permutex2var_ps(c, odd, d)));
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
        const uint32_t *wr = wp + (size_t)co0 * Cp * Kh * Kw;
        const uint32_t *bp = buf;
        for (int r = 0; r < Cp * Kh; r++, bp += NV * SEG) {
            for (int kw = 0; kw < Kw; kw++, wr += MR) {
                const uint32_t *xp = bp + (S == 1 ? kw : (kw & 1) * half + kw / 2);
                __m512i x[24];
#pragma GCC unroll 24
                for (int s = 0; s < NV; s++) {
                    x[s] = _mm512_loadu_si512((const void *)(xp + s * SEG));
                    __asm__("" : "+v"(x[s])); /* one load, not one per VDPBF16PS */
                }
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    __m512bh wv = (__m512bh)_mm512_set1_epi32((int)wr[m]);
#pragma GCC unroll 24
                    for (int s = 0; s < NV; s++)
                        acc[s * MR + m] = _mm512_dpbf16_ps(acc[s * MR + m], (__m512bh)x[s], wv);
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

static inline __attribute__((always_inline)) void
run_items(float *out, const conv2d_view *v, const uint32_t *wp, const float *bias, long it0, long it1,
          uint32_t *buf, const int MR, const int NV, const int S) {
    const int nvr = (v->Wo + 15) / 16;
    for (long tile = it0; tile < it1; tile++) run_tile(out, v, wp, bias, tile * NV, nvr, buf, MR, NV, S);
}

/* One function per (MR, NV, S), compiled for those constants (see conv2d_avx512.c). */
#define RUN_VARIANT(MR, NV)                                                                      \
    static void run_##MR##_s1(float *o, const conv2d_view *v, const uint32_t *w, const float *b, \
                              long i0, long i1, uint32_t *buf) {                                 \
        run_items(o, v, w, b, i0, i1, buf, MR, NV, 1);                                           \
    }                                                                                            \
    static void run_##MR##_s2(float *o, const conv2d_view *v, const uint32_t *w, const float *b, \
                              long i0, long i1, uint32_t *buf) {                                 \
        run_items(o, v, w, b, i0, i1, buf, MR, NV, 2);                                           \
    }
RUN_VARIANT(8, 3)
RUN_VARIANT(4, 6)
RUN_VARIANT(3, 7)
RUN_VARIANT(2, 10)
RUN_VARIANT(1, 16)

/* Register tile width (vectors) for MR output channels, as in conv2d_avx512.c. */
static int nv_for(int mr) { return mr == 8 ? 3 : mr == 4 ? 6 : mr == 3 ? 7 : mr == 2 ? 10 : 16; }

/* out is (Co,Ho,Wo); v as for conv2d_run_portable; wp the bf16 pairs (conv2d.h). -1
 * (nothing done) if the shape is not one this kernel has, or no memory for its buffers. */
int conv2d_run_avx512bf16(float *out, const conv2d_view *v, const uint32_t *wp, const float *bias) {
    if ((v->S != 1 && v->S != 2) || (v->mr != 8 && v->mr != 4 && v->mr != 3 && v->mr != 2 && v->mr != 1))
        return -1;
    const int nv = nv_for(v->mr), s2 = v->S == 2;
    const long ntiles = ((long)v->Ho * ((v->Wo + 15) / 16) + nv - 1) / nv;
    /* one tile buffer per thread, cache lines apart */
    const size_t nbuf = ((size_t)(v->Ci + 1) / 2 * v->Kh * nv * seg_len(v->Kw, v->S) + 31) / 16 * 16;
    const int nth = omp_get_max_threads();
    uint32_t *bufs = aligned_alloc(64, nbuf * nth * sizeof(uint32_t));
    if (!bufs) return -1;
#pragma omp parallel num_threads(nth)
    {
        long a, b;
        my_share(ntiles, &a, &b);
        uint32_t *buf = bufs + nbuf * omp_get_thread_num();
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

/* dst[0..n) = bf16 of src[0..n). */
static void to_bf16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)h);
    }
    for (; i < n; i += 16) {
        __mmask16 m = (__mmask16)low_bits32((long)(n - i));
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, (__m256i)h);
    }
}

/* One row of W floats -> its even columns at ev[0..Wh) and odd ones at od[0..Wh) in bf16,
 * Wh = ceil(W/2) (an odd W's last odd entry is 0). */
static void split_bf16(uint16_t *ev, uint16_t *od, const float *row, int W) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const int Wh = (W + 1) / 2;
    for (int u = 0; u < Wh; u += 16) {
        uint32_t m = low_bits32(W - 2L * u);
        __m512 a = _mm512_maskz_loadu_ps((__mmask16)m, row + 2 * u);
        __m512 b = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), row + 2 * u + 16);
        __mmask16 ms = (__mmask16)low_bits32(Wh - u);
        _mm256_mask_storeu_epi16(ev + u, ms, (__m256i)_mm512_cvtneps_pbh(_mm512_permutex2var_ps(a, even, b)));
        _mm256_mask_storeu_epi16(od + u, ms, (__m256i)_mm512_cvtneps_pbh(_mm512_permutex2var_ps(a, odd, b)));
    }
}

/* One item: part[co][t] += the sum over output rows [i0,i1) of dout[co][i][j] * the input
 * under tap t = (ci,kh,kw) at (i,j), for the MR channels from co0 and the NR taps from t0,
 * on the bf16 copies: d16 (Co,Ho,Wo), x16 (Ci,H,Wx) with Wx = W (stride 1) or rows of
 * Wh even columns then Wh odd ones (stride 2, Wx = 2Wh). Per lane sums over 32 pixels at
 * a time (two per lane), then a fixed-order sum of the 16 lanes. */
static inline __attribute__((always_inline)) void
dw_item(float *part, const uint16_t *d16, const uint16_t *x16, int Ci, int Co, int H, int W, int K,
        int i0, int i1, int co0, int t0, const int MR, const int NR, const int S) {
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    const int Wh = (W + 1) / 2, Wx = S == 1 ? W : 2 * Wh;
    const int T = Ci * K * K;
    const uint16_t *tp[24], *dp[8]; /* NR <= 24, MR <= 8, MR*NR <= 24 */
#pragma GCC unroll 24
    for (int r = 0; r < NR; r++) {
        int t = t0 + r < T ? t0 + r : T - 1; /* past the end: repeat the last, discarded */
        int ci = t / (K * K), kh = t % (K * K) / K, kw = t % K;
        /* pixel (i, j) of tap (kh, kw): input (i*S+kh, j*S+kw), for stride 2 the entry
         * j + kw/2 of the row's even (kw even) or odd columns */
        tp[r] = x16 + ((size_t)ci * H + kh) * Wx + (S == 1 ? kw : (kw & 1) * Wh + kw / 2);
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++) dp[m] = d16 + (size_t)(co0 + m < Co ? co0 + m : Co - 1) * Ho * Wo;
    __m512 acc[24]; /* acc[m*NR+r] */
#pragma GCC unroll 24
    for (int a = 0; a < MR * NR; a++) acc[a] = _mm512_setzero_ps();
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < Wo; j += 32) {
            /* pixels past the row read as 0 in both (nothing past it is read) */
            __mmask32 mk = (__mmask32)low_bits32(Wo - j);
            size_t pin = (size_t)i * S * Wx + j, pout = (size_t)i * Wo + j;
            if (MR > NR) { /* all NR input vectors live */
                __m512i x[24];
#pragma GCC unroll 24
                for (int r = 0; r < NR; r++) {
                    x[r] = _mm512_maskz_loadu_epi16(mk, tp[r] + pin);
                    __asm__("" : "+v"(x[r]));
                }
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    __m512bh d = (__m512bh)_mm512_maskz_loadu_epi16(mk, dp[m] + pout);
#pragma GCC unroll 24
                    for (int r = 0; r < NR; r++)
                        acc[m * NR + r] = _mm512_dpbf16_ps(acc[m * NR + r], d, (__m512bh)x[r]);
                }
            } else { /* all MR dout vectors live */
                __m512i d[8];
#pragma GCC unroll 8
                for (int m = 0; m < MR; m++) {
                    d[m] = _mm512_maskz_loadu_epi16(mk, dp[m] + pout);
                    __asm__("" : "+v"(d[m]));
                }
#pragma GCC unroll 24
                for (int r = 0; r < NR; r++) {
                    __m512bh x = (__m512bh)_mm512_maskz_loadu_epi16(mk, tp[r] + pin);
#pragma GCC unroll 8
                    for (int m = 0; m < MR; m++)
                        acc[m * NR + r] = _mm512_dpbf16_ps(acc[m * NR + r], (__m512bh)d[m], x);
                }
            }
        }
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 24
        for (int r = 0; r < NR; r++)
            if (co0 + m < Co && t0 + r < T)
                part[(size_t)(co0 + m) * T + t0 + r] += _mm512_reduce_add_ps(acc[m * NR + r]);
}

static inline __attribute__((always_inline)) void
dw_items(float *part, const uint16_t *d16, const uint16_t *x16, int Ci, int Co, int H, int W, int K,
         int i0, int i1, long it0, long it1, const int MR, const int NR, const int S) {
    const int ntb = (Ci * K * K + NR - 1) / NR;
    for (long item = it0; item < it1; item++)
        dw_item(part, d16, x16, Ci, Co, H, W, K, i0, i1, (int)(item / ntb) * MR, (int)(item % ntb) * NR,
                MR, NR, S);
}

#define DW_VARIANT(MR, NR)                                                                         \
    static void dw_##MR##_s1(float *p, const uint16_t *d, const uint16_t *x, int Ci, int Co, int H, \
                             int W, int K, int i0, int i1, long a, long b) {                        \
        dw_items(p, d, x, Ci, Co, H, W, K, i0, i1, a, b, MR, NR, 1);                                \
    }                                                                                               \
    static void dw_##MR##_s2(float *p, const uint16_t *d, const uint16_t *x, int Ci, int Co, int H, \
                             int W, int K, int i0, int i1, long a, long b) {                        \
        dw_items(p, d, x, Ci, Co, H, W, K, i0, i1, a, b, MR, NR, 2);                                \
    }
DW_VARIANT(8, 3)
DW_VARIANT(4, 6)
DW_VARIANT(3, 7)
DW_VARIANT(2, 10)
DW_VARIANT(1, 16)

/* part is (Co, Ci*K*K), dout (Co,Ho,Wo), inp (Ci,H,W): part += the sum over all output
 * rows, in chunks of R rows, in bf16. scratch: conv2d_dweight_bf16_words(..) uint16,
 * 64-byte aligned. -1 (nothing done) for S > 2. The copies are made by all threads (a
 * barrier), then each thread runs the chunks over its fixed share of the items. */
int conv2d_dweight_avx512bf16(float *part, const float *dout, const float *inp, int Ci, int Co, int H,
                              int W, int K, int S, int R, uint16_t *scratch) {
    if (S != 1 && S != 2) return -1;
    const int mr = Co >= 5 ? 8 : Co, s2 = S == 2, Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    const int Wh = (W + 1) / 2;
    const size_t nx = (size_t)Ci * H * (S == 1 ? W : 2 * Wh);
    uint16_t *x16 = scratch, *d16 = scratch + (nx + 31) / 32 * 32;
    const long nitems = (long)((Co + mr - 1) / mr) * ((Ci * K * K + nv_for(mr) - 1) / nv_for(mr));
#pragma omp parallel
    {
        long a, b;
        /* the copies, in blocks of 1024 values (stride 2: rows) */
        const size_t nd = (size_t)Co * Ho * Wo;
        my_share((long)((nd + 1023) / 1024), &a, &b);
        for (long k = a; k < b; k++) {
            size_t e0 = (size_t)k * 1024, e1 = e0 + 1024 < nd ? e0 + 1024 : nd;
            to_bf16(d16 + e0, dout + e0, e1 - e0);
        }
        if (S == 1) {
            my_share((long)((nx + 1023) / 1024), &a, &b);
            for (long k = a; k < b; k++) {
                size_t e0 = (size_t)k * 1024, e1 = e0 + 1024 < nx ? e0 + 1024 : nx;
                to_bf16(x16 + e0, inp + e0, e1 - e0);
            }
        } else {
            my_share((long)Ci * H, &a, &b);
            for (long rw = a; rw < b; rw++)
                split_bf16(x16 + (size_t)rw * 2 * Wh, x16 + (size_t)rw * 2 * Wh + Wh, inp + (size_t)rw * W, W);
        }
#pragma omp barrier
        my_share(nitems, &a, &b);
        for (int i0 = 0; i0 < Ho; i0 += R) {
            int i1 = i0 + R < Ho ? i0 + R : Ho;
            switch (mr) {
            case 8: (s2 ? dw_8_s2 : dw_8_s1)(part, d16, x16, Ci, Co, H, W, K, i0, i1, a, b); break;
            case 4: (s2 ? dw_4_s2 : dw_4_s1)(part, d16, x16, Ci, Co, H, W, K, i0, i1, a, b); break;
            case 3: (s2 ? dw_3_s2 : dw_3_s1)(part, d16, x16, Ci, Co, H, W, K, i0, i1, a, b); break;
            case 2: (s2 ? dw_2_s2 : dw_2_s1)(part, d16, x16, Ci, Co, H, W, K, i0, i1, a, b); break;
            default: (s2 ? dw_1_s2 : dw_1_s1)(part, d16, x16, Ci, Co, H, W, K, i0, i1, a, b); break;
            }
        }
    }
    return 0;
}
