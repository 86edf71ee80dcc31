/* wct.c - whitening and colouring (WCT) and AdaIN feature transforms (see wct.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/wct.h"
#include "util/util.h"

/* LAPACK (Fortran): the symmetric eigensolver, divide and conquer. The two trailing
 * arguments are gfortran's hidden lengths of the character arguments. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t len_jobz,
                    size_t len_uplo);

enum { CHUNK = 512 }; /* positions per pass of the covariance: (C_pad, CHUNK) doubles */

void channel_stats(double *mean, double *std, const float *f, int C, size_t N) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const float *x = f + (size_t)c * N;
        double s = 0.0;
        for (size_t i = 0; i < N; i++) s += x[i];
        double m = s / (double)N, v = 0.0;
        for (size_t i = 0; i < N; i++) {
            double d = x[i] - m;
            v += d * d;
        }
        mean[c] = m;
        if (std) std[c] = sqrt(v / (double)N);
    }
}

#include "tensor/wct_cov_impl.h"

#ifdef NST_X86
void wct_covariance_avx512(double *cov, const double *X, int P, size_t ld, int L);
#endif

static void covariance_accumulate(double *cov, const double *X, int P, size_t ld, int L, cpu_tier tier) {
#ifdef NST_X86
    if (tier == CPU_AVX512) {
        wct_covariance_avx512(cov, X, P, ld, L);
        return;
    }
#else
    (void)tier;
#endif
    covariance_accumulate_impl(cov, X, P, ld, L);
}

nst_status wct_stats_compute(wct_stats *s, const float *f, int C, size_t N, cpu_tier tier, nst_error *err) {
    memset(s, 0, sizeof *s);
    if (C < 1 || N < 1) return nst_fail(err, NST_ERR_ARG, "feature statistics of an empty map (%d x %zu)", C, N);
    int P = (C + 3) / 4 * 4;
    double *mem = malloc(((size_t)2 * C + (size_t)C * C) * sizeof *mem);
    double *cov = calloc((size_t)P * P, sizeof *cov), *X = malloc((size_t)P * CHUNK * sizeof *X);
    if (!mem || !cov || !X) {
        free(mem), free(cov), free(X);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for the feature covariance (%d channels)", C);
    }
    s->C = C, s->n = N, s->mean = mem, s->val = mem + C, s->vec = mem + 2 * C;
    channel_stats(s->mean, NULL, f, C, N);
    memset(X, 0, (size_t)P * CHUNK * sizeof *X); /* the padding rows stay zero */
    for (size_t n0 = 0; n0 < N; n0 += CHUNK) {
        int L = N - n0 < CHUNK ? (int)(N - n0) : CHUNK;
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++)
            for (int n = 0; n < L; n++) X[(size_t)c * CHUNK + n] = (double)f[(size_t)c * N + n0 + n] - s->mean[c];
        covariance_accumulate(cov, X, P, CHUNK, L, tier);
    }
    free(X);
    double div = N > 1 ? (double)(N - 1) : 1.0;
    for (int i = 0; i < C; i++)
        for (int j = i; j < C; j++) s->vec[(size_t)i * C + j] = s->vec[(size_t)j * C + i] = cov[(size_t)i * P + j] / div;
    free(cov);

    /* the workspace query, then the decomposition (in place: vec's columns in Fortran's
     * order are its rows in ours) */
    int n = C, lwork = -1, liwork = -1, info = 0, iq = 0;
    double wq = 0.0;
    dsyevd_("V", "U", &n, s->vec, &n, s->val, &wq, &lwork, &iq, &liwork, &info, 1, 1);
    lwork = (int)wq + 1, liwork = iq + 1;
    double *work = info == 0 ? malloc((size_t)lwork * sizeof *work) : NULL;
    int *iwork = work ? malloc((size_t)liwork * sizeof *iwork) : NULL;
    if (!iwork) {
        free(work);
        wct_stats_free(s);
        return info ? nst_fail(err, NST_ERR_ARG, "LAPACK dsyevd refused %d channels (info %d)", C, info)
                    : nst_fail(err, NST_ERR_NOMEM, "out of memory for the eigendecomposition (%d channels)", C);
    }
    dsyevd_("V", "U", &n, s->vec, &n, s->val, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (info != 0) {
        wct_stats_free(s);
        return nst_fail(err, NST_ERR_ARG, "the feature covariance (%d channels) did not decompose (LAPACK info %d)", C, info);
    }
    double floor = WCT_EIG_FLOOR * (s->val[C - 1] > 0.0 ? s->val[C - 1] : 0.0);
    for (int j = 0; j < C; j++) s->rank += s->val[j] > floor && s->val[j] > 0.0;
    return NST_OK;
}

void wct_stats_free(wct_stats *s) {
    free(s->mean);
    memset(s, 0, sizeof *s);
}

/* M (C,C) = A^T B (ta = 1) or A B (ta = 0), A and B (C,C), in double: rows of M in
 * parallel, the inner loop along rows of B */
static void matmul(double *M, const double *A, int ta, const double *B, int C) {
#pragma omp parallel for schedule(static)
    for (int a = 0; a < C; a++) {
        double *m = M + (size_t)a * C;
        memset(m, 0, (size_t)C * sizeof *m);
        for (int j = 0; j < C; j++) {
            double t = ta ? A[(size_t)j * C + a] : A[(size_t)a * C + j];
            const double *b = B + (size_t)j * C;
#pragma omp simd
            for (int k = 0; k < C; k++) m[k] += t * b[k];
        }
    }
}

/* M (C,C) = sum over kept eigenpairs of val^p v v^T (p = -1/2: whitening, 1/2:
 * colouring); U: (C,C) doubles of scratch */
static void eigen_power(double *M, const wct_stats *s, double p, double *U) {
    int C = s->C;
    double floor = WCT_EIG_FLOOR * s->val[C - 1];
    for (int j = 0; j < C; j++) {
        double d = s->val[j] > floor && s->val[j] > 0.0 ? pow(s->val[j], p) : 0.0;
        for (int b = 0; b < C; b++) U[(size_t)j * C + b] = d * s->vec[(size_t)j * C + b];
    }
    matmul(M, s->vec, 1, U, C);
}

nst_status wct_colouring_build(wct_colouring *c, const wct_stats *const *styles, const float *w, int n,
                               nst_error *err) {
    memset(c, 0, sizeof *c);
    if (n < 1) return nst_fail(err, NST_ERR_ARG, "no painting to colour with");
    int C = styles[0]->C;
    for (int k = 1; k < n; k++)
        if (styles[k]->C != C)
            return nst_fail(err, NST_ERR_ARG, "the paintings' features have %d and %d channels", C, styles[k]->C);
    size_t CC = (size_t)C * C;
    double *mem = calloc(CC + C, sizeof *mem), *Kk = malloc(CC * sizeof *Kk), *U = malloc(CC * sizeof *U);
    if (!mem || !Kk || !U) {
        free(mem), free(Kk), free(U);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for the colouring (%d channels)", C);
    }
    c->C = C, c->K = mem, c->mean = mem + CC;
    for (int k = 0; k < n; k++) {
        eigen_power(Kk, styles[k], 0.5, U);
        for (size_t i = 0; i < CC; i++) c->K[i] += w[k] * Kk[i];
        for (int j = 0; j < C; j++) c->mean[j] += w[k] * styles[k]->mean[j];
    }
    free(Kk), free(U);
    return NST_OK;
}

void wct_colouring_free(wct_colouring *c) {
    free(c->K);
    memset(c, 0, sizeof *c);
}

/* Td (C,C) = K W_c in double; 0 if out of memory. */
static int whiten_colour(double *Td, const wct_stats *content, const wct_colouring *col) {
    int C = content->C;
    size_t CC = (size_t)C * C;
    double *W = malloc(CC * sizeof *W), *U = malloc(CC * sizeof *U);
    int ok = W && U;
    if (ok) {
        eigen_power(W, content, -0.5, U);
        matmul(Td, col->K, 0, W, C);
    }
    free(W), free(U);
    return ok;
}

/* Td (C,C) = sum_k w_k K_k W_c and sd (C) = sum_k w_k m_k, in double; 0 if out of memory. */
static int wct_matrices(double *Td, double *sd, const wct_stats *content, const wct_stats *const *styles,
                        const float *w, int n) {
    wct_colouring col;
    nst_error ignored;
    if (wct_colouring_build(&col, styles, w, n, &ignored)) return 0;
    int ok = whiten_colour(Td, content, &col);
    memcpy(sd, col.mean, (size_t)content->C * sizeof *sd);
    wct_colouring_free(&col);
    return ok;
}

nst_status wct_transform_colour(float *T, float *shift, const wct_stats *content, const wct_colouring *col,
                                nst_error *err) {
    int C = content->C;
    if (col->C != C) return nst_fail(err, NST_ERR_ARG, "a painting's features have %d channels, the photo's %d", col->C, C);
    double *Td = malloc((size_t)C * C * sizeof *Td);
    if (!Td || !whiten_colour(Td, content, col)) {
        free(Td);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for the feature transform (%d channels)", C);
    }
    for (int a = 0; a < C; a++) {
        double m = col->mean[a];
        for (int b = 0; b < C; b++) m -= Td[(size_t)a * C + b] * content->mean[b];
        shift[a] = (float)m;
        for (int b = 0; b < C; b++) T[(size_t)a * C + b] = (float)Td[(size_t)a * C + b];
    }
    free(Td);
    return NST_OK;
}

nst_status wct_transform_build(float *T, float *shift, const wct_stats *content, const wct_stats *const *styles,
                               const float *w, int n, nst_error *err) {
    for (int k = 0; k < n; k++)
        if (styles[k]->C != content->C)
            return nst_fail(err, NST_ERR_ARG, "a painting's features have %d channels, the photo's %d", styles[k]->C,
                            content->C);
    wct_colouring col;
    nst_status s = wct_colouring_build(&col, styles, w, n, err);
    if (!s) s = wct_transform_colour(T, shift, content, &col, err);
    wct_colouring_free(&col);
    return s;
}

enum { APPLY_CHUNK = 256 }; /* positions per block: (C, APPLY_CHUNK) of f stays in cache */

#ifdef NST_X86
int wct_apply_avx512(float *out, const float *f, const float *T, const float *shift, int C, size_t N, float alpha);
#endif

void wct_transform_apply(float *out, const float *f, const float *T, const float *shift, int C, size_t N,
                         float alpha, cpu_tier tier) {
#ifdef NST_X86
    if (tier == CPU_AVX512 && wct_apply_avx512(out, f, T, shift, C, N, alpha) == 0) return;
#else
    (void)tier;
#endif
    size_t nb = (N + APPLY_CHUNK - 1) / APPLY_CHUNK;
#pragma omp parallel for schedule(static) collapse(2)
    for (size_t b = 0; b < nb; b++)
        for (int a = 0; a < C; a++) {
            size_t n0 = b * APPLY_CHUNK;
            int L = N - n0 < APPLY_CHUNK ? (int)(N - n0) : APPLY_CHUNK;
            float acc[APPLY_CHUNK];
            for (int i = 0; i < L; i++) acc[i] = shift[a];
            for (int k = 0; k < C; k++) {
                float t = T[(size_t)a * C + k];
                const float *x = f + (size_t)k * N + n0;
#pragma omp simd
                for (int i = 0; i < L; i++) acc[i] += t * x[i];
            }
            const float *x = f + (size_t)a * N + n0;
            float *y = out + (size_t)a * N + n0;
            for (int i = 0; i < L; i++) y[i] = alpha * acc[i] + (1.0f - alpha) * x[i];
        }
}

void wct_forward_ref(double *out, const float *f, int C, size_t N, const wct_stats *content,
                     const wct_stats *const *styles, const float *w, int n, float alpha) {
    double *Td = malloc((size_t)C * C * sizeof *Td), *sd = malloc((size_t)C * sizeof *sd);
    if (Td && sd && wct_matrices(Td, sd, content, styles, w, n)) {
        for (int a = 0; a < C; a++)
            for (size_t i = 0; i < N; i++) {
                double y = sd[a];
                for (int b = 0; b < C; b++) y += Td[(size_t)a * C + b] * ((double)f[(size_t)b * N + i] - content->mean[b]);
                out[(size_t)a * N + i] = alpha * y + (1.0 - alpha) * f[(size_t)a * N + i];
            }
    }
    free(Td), free(sd);
}

void adain_forward(float *out, const float *f, int C, size_t N, const double *mean_s, const double *std_s,
                   const float *w, int n, float alpha) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const float *x = f + (size_t)c * N;
        double s = 0.0, v = 0.0;
        for (size_t i = 0; i < N; i++) s += x[i];
        double m = s / (double)N;
        for (size_t i = 0; i < N; i++) v += (x[i] - m) * (x[i] - m);
        double sd = sqrt(v / (double)N), ms = 0.0, ss = 0.0;
        for (int k = 0; k < n; k++) ms += w[k] * mean_s[(size_t)k * C + c], ss += w[k] * std_s[(size_t)k * C + c];
        double g = ss / (sd > 1e-12 ? sd : 1.0);
        float a = (float)(alpha * g + (1.0 - alpha)), b = (float)(alpha * (ms - g * m));
        float *y = out + (size_t)c * N;
        for (size_t i = 0; i < N; i++) y[i] = a * x[i] + b;
    }
}
