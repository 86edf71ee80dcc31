/* winograd_impl.h - the 3x3 convolution (stride 1, pad 1) by Winograd F(2x2,3x3), AVX-512,
 * written once for two element types of the GEMMs: included by winograd_avx512.c (fp32:
 * FMAs) and by winograd_avx512bf16.c (WINO_BF16: the transforms in fp32, V and U rounded to
 * bf16, the GEMMs on VDPBF16PS with fp32 sums).
 *
 * The image is cut into 2x2 output tiles, numbered row-major (ty, tx) -> ty*ntx + tx.
 * Tile t reads the 4x4 input patch at rows 2ty-1.., columns 2tx-1.. (zeros outside).
 *   V = B^T d B           16 values per tile per input channel    (input transform)
 *   M[xi] = U[xi] V[xi]   16 GEMMs (C_out x C_in) x (C_in x tiles)
 *   Y = A^T M A           the 2x2 outputs of the tile             (output transform)
 * with U = G g G^T computed once by conv.c. 16 multiplies per 4 outputs instead of 36.
 *
 * Work goes in blocks of up to 96 consecutive tiles (fewer on small images, to keep both
 * threads busy; there the output channels are split too). One block's V (16, C_in, tiles)
 * and M (C_out, 16, tiles) are private to a thread. Where all of V fits in L2 (C_in <= 64
 * or so) the block is done 8 output channels at a time - 16 GEMMs, then their output
 * transform - which keeps M in L1 and lets the output's store misses (prefetched during
 * the GEMMs) drain behind the FMAs. Otherwise GEMM by GEMM: V[xi] (C_in x tiles, <= 200
 * KB) stays in L2 while every output channel block streams its U past it.
 * The transforms are vectorized across 16 consecutive tiles: tile row boundaries may
 * fall inside a vector, so a vector's lanes are split into runs ("segments") on one
 * tile row each, and the loads/stores of each run are masked to its lanes.
 *
 * In bf16, V and U hold pairs of input channels (2p, 2p+1) in one 32-bit word, so every
 * array keeps its fp32 shape with C_in pairs in place of C_in channels, and one VDPBF16PS
 * does the work of two FMAs.
 *
 * The GEMM micro-kernel keeps 8 output channels x 48 tiles (24 zmm) in registers and sums
 * all C_in in one fixed order, so nothing depends on the split of work over threads.
 * It runs near the FMA peak; what is left is the transforms (~25% of the time at 64
 * channels, ~4% at 512) and partly empty vectors on small images (14x14: 49 tiles in 64
 * lanes).
 */
#include <immintrin.h>

#include "tensor/ops.h"
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifndef WINO_BF16
#define WINO_BF16 0
#endif
#ifndef WINO_AMX /* (implies WINO_BF16) */
#define WINO_AMX 0
#endif

#if WINO_AMX
#define WINO_KB 16 /* output channels per C tile (rows); conv.c packs U with the same value */
#define WINO_KP 16 /* channel pairs per A/B tile: CK is padded to a multiple (zero pairs) */
#else
#define WINO_KB 8  /* output channels per register tile; conv.c packs U with the same value */
#define WINO_KP 1
#endif
#define WINO_NV 3  /* 16-tile vectors per register tile */
#define WINO_NG (16 * WINO_NV) /* tiles per packed group of V */
#define WINO_BT 96 /* tiles per block, when there are enough to keep all threads busy */
#define WINO_VPF 8 /* input channels ahead to prefetch V in the GEMM micro-kernel */
#define WINO_PF 2 /* input channels ahead to prefetch in the input transform */
#define WINO_L2V (640 << 10) /* bytes of V that stay in L2 (1 MB) next to the rest */
#define WINO_MAXV 8 /* most 16-tile vectors in one block (WINO_BT rounded up, /16, +slack) */

/* Strides of the scratch arrays, padded by a cache line: unpadded, the 16 streams of the
 * input transform's stores are a multiple of 4 KB apart and fight over one L1 set. */
static inline size_t v_xstride(int ngroups, int C_in) { return (size_t)ngroups * C_in * WINO_NG + 16; }
static inline size_t m_cstride(size_t mt) { return 16 * mt + 16; }

/* A run of lanes [la, lb) of a 16-tile vector lying on tile row ty from column tx (for
 * lane la). Raw element e (0..31) of a row load belongs to lane e/2. */
typedef struct {
    int ty, la, lb;
    int xb;            /* input column of raw element 0 of the (c=0,1) load: 2(tx-la)-1 */
    uint32_t m01, m23; /* raw elements to load for columns c=0,1 / c=2,3 of the patches */
    uint32_t mo;       /* raw elements to store of an output row (columns xb+1+e) */
} wino_seg;

/* Bits lo <= b < hi of a 32-bit mask. */
static inline uint32_t bits32(int lo, int hi) {
    if (lo < 0) lo = 0;
    if (hi > 32) hi = 32;
    if (hi <= lo) return 0;
    return (uint32_t)((((uint64_t)1 << (hi - lo)) - 1) << lo);
}

/* The segments of tiles t0..t0+15 (only those < tend); returns their number (<= 16). */
static int tile_segs(wino_seg *s, long t0, long tend, int ntx, int W) {
    int n = 0, nl = tend - t0 < 16 ? (int)(tend - t0) : 16;
    for (int l = 0; l < nl;) {
        long t = t0 + l;
        int ty = (int)(t / ntx), tx = (int)(t % ntx);
        int len = ntx - tx < nl - l ? ntx - tx : nl - l;
        wino_seg g;
        g.ty = ty;
        g.la = l;
        g.lb = l + len;
        g.xb = 2 * (tx - l) - 1;
        uint32_t lanes = bits32(2 * g.la, 2 * g.lb);
        g.m01 = lanes & bits32(-g.xb, W - g.xb);
        g.m23 = lanes & bits32(-g.xb - 2, W - g.xb - 2);
        g.mo = lanes & bits32(-g.xb - 1, W - g.xb - 1);
        s[n++] = g;
        l += len;
    }
    return n;
}

/* The 16 transformed values r[xi] of channel ic's patches for vector v of the block (16
 * tiles, lanes past the image zero). Prefetches channel ic + WINO_PF*HW if pf. */
static inline __attribute__((always_inline)) void
wino_input_vec(__m512 r[16], const float *ic, const wino_seg *segs, int nseg, int pf, size_t HW, int H, int W) {
    /* even / odd raw elements of a 32-element pair (a, b) */
    const __m512i ieven = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i iodd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 t[4][4];
#pragma GCC unroll 4
    for (int rr = 0; rr < 4; rr++) {
        __m512 a = _mm512_setzero_ps(), b = a, a2 = a, b2 = a;
        for (int s = 0; s < nseg; s++) {
            const wino_seg *g = &segs[s];
            int y = 2 * g->ty - 1 + rr;
            if (y < 0 || y >= H) continue;
            const float *row = ic + (size_t)y * W + g->xb;
            /* Channels are H*W apart, a stride no hardware prefetcher follows:
             * fetch this patch row of channel ci+WINO_PF (if any) now. */
            if (pf) {
                _mm_prefetch((const char *)(row + WINO_PF * HW + 2 * g->la), _MM_HINT_T0);
                _mm_prefetch((const char *)(row + WINO_PF * HW + 2 * g->la + 16), _MM_HINT_T0);
                _mm_prefetch((const char *)(row + WINO_PF * HW + 2 * g->lb + 1), _MM_HINT_T0);
            }
            a = _mm512_mask_loadu_ps(a, (__mmask16)g->m01, row);
            b = _mm512_mask_loadu_ps(b, (__mmask16)(g->m01 >> 16), row + 16);
            a2 = _mm512_mask_loadu_ps(a2, (__mmask16)g->m23, row + 2);
            b2 = _mm512_mask_loadu_ps(b2, (__mmask16)(g->m23 >> 16), row + 18);
        }
        /* d[c] lane l = patch column c of tile l */
        __m512 d0 = _mm512_permutex2var_ps(a, ieven, b), d1 = _mm512_permutex2var_ps(a, iodd, b);
        __m512 d2 = _mm512_permutex2var_ps(a2, ieven, b2), d3 = _mm512_permutex2var_ps(a2, iodd, b2);
        /* rows of d B */
        t[rr][0] = _mm512_sub_ps(d0, d2);
        t[rr][1] = _mm512_add_ps(d1, d2);
        t[rr][2] = _mm512_sub_ps(d2, d1);
        t[rr][3] = _mm512_sub_ps(d1, d3);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) { /* B^T (d B), column j */
        r[0 * 4 + j] = _mm512_sub_ps(t[0][j], t[2][j]);
        r[1 * 4 + j] = _mm512_add_ps(t[1][j], t[2][j]);
        r[2 * 4 + j] = _mm512_sub_ps(t[2][j], t[1][j]);
        r[3 * 4 + j] = _mm512_sub_ps(t[1][j], t[3][j]);
    }
}

/* V is (16, ngroups, CK, 48): the transformed patches of the block's nvec vectors of
 * tiles (vector v is lanes 16*(v%3).. of group v/3), CK = C_in (fp32) or ceil(C_in/2)
 * channel pairs (bf16; a missing odd channel is zero). inp is (C_in,H,W). */
__attribute__((noinline)) static void wino_input(float *V, const float *inp, const wino_seg (*seg)[16], const int *nseg,
                       int nvec, int ngroups, int C_in, int H, int W) {
    const size_t HW = (size_t)H * W;
#if WINO_BF16
    const int CK = ((C_in + 1) / 2 + WINO_KP - 1) / WINO_KP * WINO_KP;
    /* bf16 elements (a0..a15, b0..b15) -> (a0, b0, a1, b1, ..) */
    const __m512i ipair = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                           23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const size_t xstride = v_xstride(ngroups, CK); /* between xi */
    for (int cp = 0; cp < CK; cp++) {
        const int c0 = 2 * cp, c1 = c0 + 1;
        for (int v = 0; v < nvec; v++) {
            __m512 r0[16], r1[16];
            if (c0 < C_in) wino_input_vec(r0, inp + (size_t)c0 * HW, seg[v], nseg[v], c0 + WINO_PF < C_in, HW, H, W);
            else
                for (int xi = 0; xi < 16; xi++) r0[xi] = _mm512_setzero_ps();
            if (c1 < C_in) wino_input_vec(r1, inp + (size_t)c1 * HW, seg[v], nseg[v], c1 + WINO_PF < C_in, HW, H, W);
            else
                for (int xi = 0; xi < 16; xi++) r1[xi] = _mm512_setzero_ps();
            float *o = V + ((size_t)(v / WINO_NV) * CK + cp) * WINO_NG + (v % WINO_NV) * 16;
#pragma GCC unroll 16
            for (int xi = 0; xi < 16; xi++) {
                __m512i h = (__m512i)_mm512_cvtne2ps_pbh(r1[xi], r0[xi]);
                _mm512_store_si512((void *)(o + xi * xstride), _mm512_permutexvar_epi16(ipair, h));
            }
        }
    }
#else
    const size_t xstride = v_xstride(ngroups, C_in); /* between xi */
    for (int ci = 0; ci < C_in; ci++) {
        const float *ic = inp + (size_t)ci * HW;
        for (int v = 0; v < nvec; v++) {
            __m512 r[16];
            wino_input_vec(r, ic, seg[v], nseg[v], ci + WINO_PF < C_in, HW, H, W);
            float *o = V + ((size_t)(v / WINO_NV) * C_in + ci) * WINO_NG + (v % WINO_NV) * 16;
#pragma GCC unroll 16
            for (int xi = 0; xi < 16; xi++) _mm512_store_ps(o + xi * xstride, r[xi]);
        }
    }
#endif
}

/* m[r][16*j..] = sum_ci u[ci][r] * v[ci][16*j..] for r < 8, j < nv (bf16: ci runs over
 * channel pairs and each product is the pair's dot product).
 * v is (C_in, 48), m rows are ms floats apart. u is (C_in, 8), or with tr (the transpose
 * of a forward transform, see wino_gemms) u[ci][r] is at (ci/8)*bstride + ci%8 + 8r. */
static inline __attribute__((always_inline)) void
wino_kernel(float *m, size_t ms, const float *v, const float *u, int C_in, int nv, const int tr,
            size_t bstride) {
    __m512 acc[WINO_KB][WINO_NV];
#pragma GCC unroll 8
    for (int r = 0; r < WINO_KB; r++)
#pragma GCC unroll 3
        for (int j = 0; j < nv; j++) acc[r][j] = _mm512_setzero_ps();
    for (int ci = 0; ci < C_in; ci++) {
        __m512 x[WINO_NV];
        /* V comes from L2 when C_in is large (a group's panel is C_in*192 bytes); the
         * hardware prefetchers alone leave the FMAs waiting on it */
#pragma GCC unroll 3
        for (int j = 0; j < nv; j++) _mm_prefetch((const char *)(v + (size_t)(ci + WINO_VPF) * WINO_NG + 16 * j), _MM_HINT_T0);
#pragma GCC unroll 3
        for (int j = 0; j < nv; j++) x[j] = _mm512_load_ps(v + (size_t)ci * WINO_NG + 16 * j);
#pragma GCC unroll 8
        for (int r = 0; r < WINO_KB; r++) {
#if WINO_BF16 /* (ci is a channel pair, u and v hold bf16 pairs; no transposed U) */
            (void)tr;
            (void)bstride;
            __m512bh w = (__m512bh)_mm512_set1_epi32((int)((const uint32_t *)u)[(size_t)ci * WINO_KB + r]);
#pragma GCC unroll 3
            for (int j = 0; j < nv; j++) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)x[j], w);
#else
            __m512 w = _mm512_set1_ps(tr ? u[(size_t)(ci >> 3) * bstride + (ci & 7) + 8 * r]
                                         : u[(size_t)ci * WINO_KB + r]);
#pragma GCC unroll 3
            for (int j = 0; j < nv; j++) acc[r][j] = _mm512_fmadd_ps(x[j], w, acc[r][j]);
#endif
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < WINO_KB; r++)
#pragma GCC unroll 3
        for (int j = 0; j < nv; j++) _mm512_store_ps(m + r * ms + 16 * j, acc[r][j]);
}

#if WINO_AMX
/* The same product on AMX tiles: C tiles 0..nv-1 are 16 output channels x 16 tiles (fp32),
 * A (tile 3) 16 channels x 16 pairs of U (one contiguous KB), B (tiles 4..6) 16 pairs x 16
 * tiles of V in the pair-interleaved layout AMX wants (rows 48 words apart). u is
 * (CK/16, 16, 16) words, v (CK, 48) words; the tile configuration is the caller's
 * (amx_configure). */
__attribute__((noinline)) static void wino_kernel_nv(float *m, size_t ms, const float *v, const float *u, int CK, int nv,
                                                     size_t bstride) {
    (void)bstride;
    const char *vb = (const char *)v, *ub = (const char *)u;
    const size_t vrow = (size_t)WINO_NG * 4, vkb = (size_t)WINO_KP * WINO_NG * 4, ukb = (size_t)WINO_KP * WINO_KB * 4;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    for (int kb = 0; kb < CK / WINO_KP; kb++) {
        _tile_loadd(3, ub + kb * ukb, 64);
        _tile_loadd(4, vb + kb * vkb, vrow);
        _tile_dpbf16ps(0, 3, 4);
        if (nv > 1) {
            _tile_loadd(5, vb + kb * vkb + 64, vrow);
            _tile_dpbf16ps(1, 3, 5);
        }
        if (nv > 2) {
            _tile_loadd(6, vb + kb * vkb + 128, vrow);
            _tile_dpbf16ps(2, 3, 6);
        }
    }
    _tile_stored(0, m, ms * 4);
    if (nv > 1) _tile_stored(1, m + 16, ms * 4);
    if (nv > 2) _tile_stored(2, m + 32, ms * 4);
}

/* Palette 1, every tile used as 16 rows of 64 bytes. */
static void amx_configure(void) {
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } __attribute__((aligned(64))) cfg = {0};
    cfg.palette = 1;
    for (int t = 0; t < 7; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}
#else
__attribute__((noinline)) static void wino_kernel_nv(float *m, size_t ms, const float *v, const float *u, int C_in, int nv,
                                                     size_t bstride) {
    if (bstride) {
        switch (nv) {
        case 3: wino_kernel(m, ms, v, u, C_in, 3, 1, bstride); break;
        case 2: wino_kernel(m, ms, v, u, C_in, 2, 1, bstride); break;
        default: wino_kernel(m, ms, v, u, C_in, 1, 1, bstride); break;
        }
        return;
    }
    switch (nv) {
    case 3: wino_kernel(m, ms, v, u, C_in, 3, 0, 0); break;
    case 2: wino_kernel(m, ms, v, u, C_in, 2, 0, 0); break;
    default: wino_kernel(m, ms, v, u, C_in, 1, 0, 0); break;
    }
}

#endif

/* M[cob - cb0] = U[xi][cob] V[xi] for xi in [x0, x1) and channel blocks [cb0, cb1): M is
 * ((cb1-cb0)*8, 16, mt) (channels m_cstride(mt) apart), V is (16, ngroups, C_in, 48) (xi
 * xstride apart), U is (16, ncob, C_in, 8). xi outer: one V[xi] panel at a time.
 * With tr_out = C_out > 0, U is instead the forward transform of the transposed problem,
 * (16, ceil(C_in/8), C_out, 8), read transposed: the kernel flipped in space has the
 * transform with points 0 and 3 swapped in each dimension (G J = P G, P swapping rows 0
 * and 3 of G), so the backward pass needs no transform of its own. */
static void wino_gemms(float *M, const float *V, const float *U, size_t xstride, size_t mt, int ncob,
                       int cb0, int cb1, int x0, int x1, int nvec, int C_in, int tr_out) {
    static const int swap03[4] = {3, 1, 2, 0};
    for (int xi = x0; xi < x1; xi++)
        for (int cob = cb0; cob < cb1; cob++) {
            const float *up;
            size_t bstride = 0;
            if (tr_out) {
                int xt = swap03[xi / 4] * 4 + swap03[xi % 4];
                up = U + (size_t)xt * ((C_in + WINO_KB - 1) / WINO_KB) * tr_out * WINO_KB + (size_t)cob * WINO_KB * WINO_KB;
                bstride = (size_t)tr_out * WINO_KB;
            } else {
                up = U + ((size_t)xi * ncob + cob) * C_in * WINO_KB;
            }
            float *mp = M + (size_t)(cob - cb0) * WINO_KB * m_cstride(mt) + xi * mt;
            for (int g = 0; g * WINO_NV < nvec; g++) {
                int nv = nvec - g * WINO_NV < WINO_NV ? nvec - g * WINO_NV : WINO_NV;
                wino_kernel_nv(mp + g * WINO_NG, m_cstride(mt), V + xi * xstride + (size_t)g * C_in * WINO_NG,
                               up, C_in, nv, bstride);
            }
        }
}

/* Prefetches output row 2ty+a of channel co for the block's tiles (for writing), and
 * the mask's (for reading). */
static void wino_prefetch_out(float *out, const float *mask, const wino_seg (*seg)[16], const int *nseg,
                              int nvec, int co, int a, int H, int W) {
    const size_t HW = (size_t)H * W;
    for (int v = 0; v < nvec; v++)
        for (int sg = 0; sg < nseg[v]; sg++) {
            const wino_seg *g = &seg[v][sg];
            int y = 2 * g->ty + a;
            if (y >= H) continue;
            int lo = g->xb + 1 + 2 * g->la, hi = g->xb + 1 + 2 * g->lb; /* columns */
            if (lo < 0) lo = 0;
            if (hi > W) hi = W;
            size_t o = (size_t)co * HW + (size_t)y * W;
            for (int x = lo; x < hi; x += 16) {
                __builtin_prefetch(out + o + x, 1, 3);
                if (mask) __builtin_prefetch(mask + o + x, 0, 3);
            }
            __builtin_prefetch(out + o + hi - 1, 1, 3);
            if (mask) __builtin_prefetch(mask + o + hi - 1, 0, 3);
        }
}

/* Output channels co0.. (nco of them) of the block: M is (>= nco, 16, mt) (channels
 * m_cstride(mt) apart) at tile 0 of the block; out, mask (or NULL) are (C_out,H,W); bias is (C_out) or NULL. */
__attribute__((noinline)) static void wino_output(float *out, const float *M, size_t mt, const float *bias, const float *mask,
                        int relu, const wino_seg (*seg)[16], const int *nseg, int nvec, int co0, int nco,
                        int H, int W) {
    const size_t HW = (size_t)H * W;
    /* interleave lanes of (y[a][0], y[a][1]) into raw elements 0..15 / 16..31 */
    const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int c = 0; c < nco; c++) {
        int co = co0 + c;
        const __m512 bv = _mm512_set1_ps(bias ? bias[co] : 0.0f);
        for (int v = 0; v < nvec; v++) {
            const float *mp = M + c * m_cstride(mt) + v * 16;
            __m512 s[4][2];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) { /* (M A) row i */
                __m512 m0 = _mm512_load_ps(mp + (i * 4 + 0) * mt), m1 = _mm512_load_ps(mp + (i * 4 + 1) * mt);
                __m512 m2 = _mm512_load_ps(mp + (i * 4 + 2) * mt), m3 = _mm512_load_ps(mp + (i * 4 + 3) * mt);
                s[i][0] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                s[i][1] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            __m512 row[2][2]; /* [output row a][raw half] */
#pragma GCC unroll 2
            for (int a = 0; a < 2; a++) {
                __m512 y0, y1;
                if (a == 0) {
                    y0 = _mm512_add_ps(_mm512_add_ps(s[0][0], s[1][0]), s[2][0]);
                    y1 = _mm512_add_ps(_mm512_add_ps(s[0][1], s[1][1]), s[2][1]);
                } else {
                    y0 = _mm512_sub_ps(_mm512_sub_ps(s[1][0], s[2][0]), s[3][0]);
                    y1 = _mm512_sub_ps(_mm512_sub_ps(s[1][1], s[2][1]), s[3][1]);
                }
                y0 = _mm512_add_ps(y0, bv);
                y1 = _mm512_add_ps(y1, bv);
                row[a][0] = _mm512_permutex2var_ps(y0, ilo, y1);
                row[a][1] = _mm512_permutex2var_ps(y0, ihi, y1);
            }
            for (int sg = 0; sg < nseg[v]; sg++) {
                const wino_seg *g = &seg[v][sg];
#pragma GCC unroll 2
                for (int a = 0; a < 2; a++) {
                    int y = 2 * g->ty + a;
                    if (y >= H) continue;
                    size_t o = (size_t)co * HW + (size_t)y * W + g->xb + 1;
                    __mmask16 k0 = (__mmask16)g->mo, k1 = (__mmask16)(g->mo >> 16);
                    __m512 r0 = row[a][0], r1 = row[a][1];
                    if (mask) { /* fused ReLU backward: zero where the ReLU's output was not > 0 */
                        __m512 z = _mm512_setzero_ps();
                        r0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(k0, mask + o), z, _CMP_GT_OQ), r0);
                        r1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(k1, mask + o + 16), z, _CMP_GT_OQ), r1);
                    }
                    if (relu) { /* fused forward ReLU: r > 0 ? r : 0 */
                        r0 = _mm512_max_ps(r0, _mm512_setzero_ps());
                        r1 = _mm512_max_ps(r1, _mm512_setzero_ps());
                    }
                    if (g->mo == 0xFFFFFFFFu) { /* (plain stores: cheaper than masked ones) */
                        _mm512_storeu_ps(out + o, r0);
                        _mm512_storeu_ps(out + o + 16, r1);
                    } else {
                        _mm512_mask_storeu_ps(out + o, k0, r0);
                        _mm512_mask_storeu_ps(out + o + 16, k1, r1);
                    }
                }
            }
        }
    }
}

/* The scratch (V and M of every thread, a few MB) comes from the caller's workspace, kept
 * from call to call (allocating it afresh costs a page fault per 4 KB each time, ~10% on
 * the small late layers); without one it is allocated for this call only. */
static float *scratch_get(conv3x3_workspace *ws, size_t n) {
    if (!ws) return aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (ws->n < n) {
        free(ws->buf);
        ws->buf = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
        ws->n = ws->buf ? n : 0;
    }
    return ws->buf;
}

static void scratch_put(conv3x3_workspace *ws, float *p) {
    if (!ws) free(p);
}

/* u_transposed: U is the forward transform of the transposed problem instead (the
 * backward pass to the input, reading the forward pass's weights; C_out % 8 == 0; fp32 only).
 * out is (C_out,H,W), inp is (C_in,H,W), U is (16, ceil(C_out/8), CK, 8) (the transformed
 * weights, zero past C_out; CK as in wino_input: bf16 holds channel pairs), bias is (C_out)
 * or NULL, mask is (C_out,H,W) or NULL (then out is zeroed where mask <= 0); relu: out =
 * max(out, 0). Returns 0, or -1 (out untouched) if out of memory. */
#if WINO_AMX
int conv3x3_run_winograd_amx(float *out, const float *inp, const uint32_t *U16, const float *bias, const float *mask,
                             int relu, int C_in, int C_out, int H, int W, conv3x3_workspace *ws) {
    const float *U = (const float *)U16; /* (words, read as such by the kernel) */
    const int u_transposed = 0, CK = ((C_in + 1) / 2 + WINO_KP - 1) / WINO_KP * WINO_KP;
#elif WINO_BF16
int conv3x3_run_winograd_avx512bf16(float *out, const float *inp, const uint32_t *U16, const float *bias,
                                    const float *mask, int relu, int C_in, int C_out, int H, int W,
                                    conv3x3_workspace *ws) {
    const float *U = (const float *)U16; /* (words, read as such by the kernel) */
    const int u_transposed = 0, CK = (C_in + 1) / 2;
#else
int conv3x3_run_winograd_avx512(float *out, const float *inp, const float *U, const float *bias,
                                const float *mask, int relu, int u_transposed, int C_in, int C_out, int H,
                                int W, conv3x3_workspace *ws) {
    const int CK = C_in;
#endif
    if (H <= 0 || W <= 0 || C_out <= 0) return 0;
    const int tr_out = u_transposed ? C_out : 0; /* (C_out % 8 == 0: see conv3x3_pack) */
    const int nty = (H + 1) / 2, ntx = (W + 1) / 2;
    const long T = (long)nty * ntx, nvec_all = (T + 15) / 16;
    const int ncob = (C_out + WINO_KB - 1) / WINO_KB;
    const int nth = omp_get_max_threads();
    /* Blocks of ~WINO_BT tiles; fewer tiles per block (down to 48) when that gives each
     * thread two blocks. Block b holds vectors [b*nvec_all/nb, (b+1)*nvec_all/nb). */
    long nb = (T + WINO_BT - 1) / WINO_BT;
    if (nb < 2 * nth) {
        long nb48 = (T + 47) / 48;
        nb = nb48 < 2 * nth ? nb48 : 2 * nth;
    }
    /* A multiple of the thread count, so that no thread gets one block more than the
     * others (9 blocks on 2 threads idle one of them for a ninth of the layer) */
    nb = (nb + nth - 1) / nth * nth;
    if (nb > nvec_all) nb = nvec_all;
    while ((nvec_all + nb - 1) / nb > WINO_MAXV) nb++; /* (never: nb >= T/WINO_BT) */
    const int nvmax = (int)((nvec_all + nb - 1) / nb);
    /* Still too few blocks (small images): also split the output channels. */
    int nsplit = (int)((2 * nth + nb - 1) / nb);
    if (nsplit > ncob) nsplit = ncob;
    if (nsplit < 1) nsplit = 1;
    const int ngroups = (nvmax + WINO_NV - 1) / WINO_NV;
    const size_t mt = (size_t)ngroups * WINO_NG; /* M's tile stride */
    const int cobmax = (ncob + nsplit - 1) / nsplit;
    const size_t vsize = 16 * v_xstride(ngroups, CK);
    const size_t msize = (size_t)cobmax * WINO_KB * m_cstride(mt);
    float *scratch = scratch_get(ws, (vsize + msize) * nth);
    if (!scratch) return -1;
    const long nitems = nb * nsplit;
    const size_t xstride = v_xstride(ngroups, CK);
    const int small_v = 16 * xstride * sizeof(float) <= WINO_L2V;
#pragma omp parallel
    {
        float *V = scratch + (vsize + msize) * omp_get_thread_num();
        float *M = V + vsize;
#if WINO_AMX
        amx_configure(); /* (per thread: the tile configuration is thread state) */
#endif
        wino_seg seg[WINO_MAXV][16]; /* per vector of the block, its segments */
        int nseg[WINO_MAXV];
        long vlast = -1; /* block whose V is in this thread's buffer */
        /* Items are (block, channel part), block-major: a thread taking consecutive parts
         * of one block reuses its V. Each output is one item's, its sum in a fixed order:
         * the result does not depend on the schedule. */
#pragma omp for schedule(dynamic, 1)
        for (long item = 0; item < nitems; item++) {
            long b = item / nsplit;
            int part = (int)(item % nsplit);
            long v0 = b * nvec_all / nb, v1 = (b + 1) * nvec_all / nb;
            int nvec = (int)(v1 - v0);
            for (int v = 0; v < nvec; v++) nseg[v] = tile_segs(seg[v], (v0 + v) * 16, T, ntx, W);
            if (vlast != b) {
                wino_input(V, inp, (const wino_seg(*)[16])seg, nseg, nvec, ngroups, C_in, H, W);
                vlast = b;
            }
            int cb0 = (int)((long)part * ncob / nsplit), cb1 = (int)((long)(part + 1) * ncob / nsplit);
            if (small_v) {
                /* V fits in L2: one channel block at a time, all 16 GEMMs then its output
                 * transform, so the output's store misses drain while the next block's
                 * GEMMs run (and M stays in L1) */
                for (int cob = cb0; cob < cb1; cob++) {
                    int co0 = cob * WINO_KB, nco = C_out - co0 < WINO_KB ? C_out - co0 : WINO_KB;
                    for (int xi = 0; xi < 16; xi++) {
                        wino_gemms(M, V, U, xstride, mt, ncob, cob, cob + 1, xi, xi + 1, nvec, CK, tr_out);
                        /* fetch the lines the output transform will write (they miss:
                         * the image is far larger than the caches) in the GEMMs' shadow */
                        if (xi / 2 < nco)
                            wino_prefetch_out(out, mask, (const wino_seg(*)[16])seg, nseg, nvec, co0 + xi / 2, xi % 2, H, W);
                    }
                    wino_output(out, M, mt, bias, mask, relu, (const wino_seg(*)[16])seg, nseg, nvec, co0, nco, H, W);
                }
            } else {
                /* Large C_in: one GEMM at a time over all channel blocks, so only the
                 * V[xi] panel (C_in x tiles) needs to stay in L2 */
                wino_gemms(M, V, U, xstride, mt, ncob, cb0, cb1, 0, 16, nvec, CK, tr_out);
                int co0 = cb0 * WINO_KB, co1 = cb1 * WINO_KB < C_out ? cb1 * WINO_KB : C_out;
                wino_output(out, M, mt, bias, mask, relu, (const wino_seg(*)[16])seg, nseg, nvec, co0, co1 - co0, H, W);
            }
        }
#if WINO_AMX
        _tile_release();
#endif
    }
    scratch_put(ws, scratch);
    return 0;
}
