/* gram.c - the Gram matrix of a feature map F (C,N), N = H*W: G = scale * F F^T, and
 * its gradient dF += scale * (dG + dG^T) F.
 *
 * The *_ref loops sum in double (they are the yardstick of the tests); the fast path
 * is the AVX-512 kernels of gram_avx512.c when the CPU has them, else the AVX2+FMA
 * ones of gram_avx2.c, else the portable blocked loops below (the tuning's kernel, NST_KERNEL=portable|avx2,
 * caps the choice, as for conv3x3). All paths split work over G entries / rows of dF, never over a
 * sum, so a result does not depend on the thread count.
 */
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

#ifdef NST_X86
void gram_forward_avx512(float *G, const float *F, int C, int N, float scale);
void gram_backward_avx512(float *dF, const float *dG, const float *F, int C, int N, float scale);
void gram_forward_avx2(float *G, const float *F, int C, int N, float scale);
void gram_backward_avx2(float *dF, const float *dG, const float *F, int C, int N, float scale);
#endif

/* ---- reference ------------------------------------------------------------------ */

/* G is (C,C), F is (C,N): G = scale * F F^T */
void gram_forward_ref(float *G, const float *F, int C, int N, float scale) {
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += (double)F[(size_t)i * N + n] * F[(size_t)j * N + n];
            G[(size_t)i * C + j] = (float)(scale * s);
        }
}

/* accumulates: dF is (C,N), dG is (C,C): dF += scale * (dG + dG^T) F */
void gram_backward_ref(float *dF, const float *dG, const float *F, int C, int N, float scale) {
    for (int i = 0; i < C; i++)
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int j = 0; j < C; j++)
                s += ((double)dG[(size_t)i * C + j] + dG[(size_t)j * C + i]) * F[(size_t)j * N + n];
            dF[(size_t)i * N + n] += (float)(scale * s);
        }
}

/* ---- portable path -------------------------------------------------------------- */

#define GP_NC 2048 /* pixels per chunk: a chunk of two rows stays in L1/L2 */
#define GP_L 16    /* independent partial sums, so the dot product vectorizes without -ffast-math */

/* G is (C,C), F is (C,N). Each upper entry is a dot product done chunk by chunk in
 * GP_L lanes; rows of G are dealt out cyclically to balance the triangle. */
static void gram_forward_portable(float *G, const float *F, int C, int N, float scale) {
#pragma omp parallel for schedule(static, 1)
    for (int i = 0; i < C; i++) {
        const float *a = F + (size_t)i * N;
        for (int j = i; j < C; j++) G[(size_t)i * C + j] = 0.0f;
        for (int k0 = 0; k0 < N; k0 += GP_NC) {
            int kc = N - k0 < GP_NC ? N - k0 : GP_NC;
            for (int j = i; j < C; j++) {
                const float *b = F + (size_t)j * N + k0;
                float lane[GP_L] = {0};
                int k = 0;
                for (; k + GP_L <= kc; k += GP_L)
                    for (int l = 0; l < GP_L; l++) lane[l] += a[k0 + k + l] * b[k + l];
                for (; k < kc; k++) lane[0] += a[k0 + k] * b[k];
                float s = 0.0f;
                for (int l = 0; l < GP_L; l++) s += lane[l];
                G[(size_t)i * C + j] += s;
            }
        }
        for (int j = i; j < C; j++) G[(size_t)i * C + j] *= scale;
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < i; j++) G[(size_t)i * C + j] = G[(size_t)j * C + i];
}

/* dF, F are (C,N), dG is (C,C). Per chunk of pixels: acc = sum_j S[i][j] F[j] as axpys
 * into a chunk-sized buffer, then dF[i] += acc. */
static void gram_backward_portable(float *dF, const float *dG, const float *F, int C, int N,
                                   float scale) {
    float *S = malloc((size_t)C * C * sizeof(float));
    if (!S) return;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++)
            S[(size_t)i * C + j] = scale * (dG[(size_t)i * C + j] + dG[(size_t)j * C + i]);
    const int nchunk = (N + 255) / 256;
#pragma omp parallel
    {
        float acc[256];
#pragma omp for schedule(static)
        for (int c = 0; c < nchunk; c++) {
            int n0 = c * 256, nc = N - n0 < 256 ? N - n0 : 256;
            for (int i = 0; i < C; i++) {
                for (int n = 0; n < nc; n++) acc[n] = 0.0f;
                for (int j = 0; j < C; j++) {
                    float s = S[(size_t)i * C + j];
                    const float *f = F + (size_t)j * N + n0;
                    for (int n = 0; n < nc; n++) acc[n] += s * f[n];
                }
                float *d = dF + (size_t)i * N + n0;
                for (int n = 0; n < nc; n++) d[n] += acc[n];
            }
        }
    }
    free(S);
}

/* ---- dispatch (tier from cpu.c) ---------------------------------------------------- */

void gram_forward(float *G, const float *F, int C, int N, float scale, cpu_tier tier) {
#ifdef NST_X86
    switch (tier) {
    case CPU_AVX512: gram_forward_avx512(G, F, C, N, scale); return;
    case CPU_AVX2: gram_forward_avx2(G, F, C, N, scale); return;
    default: break;
    }
#else
    (void)tier;
#endif
    gram_forward_portable(G, F, C, N, scale);
}

void gram_backward(float *dF, const float *dG, const float *F, int C, int N, float scale, cpu_tier tier) {
#ifdef NST_X86
    switch (tier) {
    case CPU_AVX512: gram_backward_avx512(dF, dG, F, C, N, scale); return;
    case CPU_AVX2: gram_backward_avx2(dF, dG, F, C, N, scale); return;
    default: break;
    }
#else
    (void)tier;
#endif
    gram_backward_portable(dF, dG, F, C, N, scale);
}

/* The portable path whatever the CPU, for the tests (not in ops.h). */
void gram_forward_portable_test(float *G, const float *F, int C, int N, float scale) {
    gram_forward_portable(G, F, C, N, scale);
}
void gram_backward_portable_test(float *dF, const float *dG, const float *F, int C, int N,
                                 float scale) {
    gram_backward_portable(dF, dG, F, C, N, scale);
}

/* The AVX2 path whatever the tier asked for, for the tests (not in ops.h). Returns 0, or
 * -1 without touching the output if the CPU (or the build) has no AVX2+FMA. */
int gram_forward_avx2_test(float *G, const float *F, int C, int N, float scale) {
#ifdef NST_X86
    if (cpu_best_tier() >= CPU_AVX2) {
        gram_forward_avx2(G, F, C, N, scale);
        return 0;
    }
#endif
    return -1;
}
int gram_backward_avx2_test(float *dF, const float *dG, const float *F, int C, int N, float scale) {
#ifdef NST_X86
    if (cpu_best_tier() >= CPU_AVX2) {
        gram_backward_avx2(dF, dG, F, C, N, scale);
        return 0;
    }
#endif
    return -1;
}
