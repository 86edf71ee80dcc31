/* wct.h - the feature transforms of universal style transfer: whitening and colouring
 * (WCT, Li et al. 2017) and adaptive instance normalisation (AdaIN, Huang & Belongie
 * 2017), on one image's features (C,N): C channels of N positions, float, C order.
 *
 * WCT: with m_c, Cov_c = E_c D_c E_c^T the photo's feature mean and covariance and m_s,
 * Cov_s = E_s D_s E_s^T the painting's,
 *     out = alpha (K_s W_c (f - m_c) + m_s) + (1 - alpha) f
 *     W_c = E_c D_c^(-1/2) E_c^T (whitening: identity covariance),
 *     K_s = E_s D_s^(1/2) E_s^T (colouring: the painting's covariance).
 * Several paintings mix their coloured features: K = sum_k w_k K_k, m = sum_k w_k m_k.
 * Means and covariances are summed in double and decomposed in double (LAPACK's dsyevd);
 * eigenvalues at most WCT_EIG_FLOOR times the largest count as zero (whitening drops those
 * directions; the rank says how many were kept). The transform is then one C x C matrix
 * and a shift, applied in float. */
#ifndef NST_WCT_H
#define NST_WCT_H

#include <stddef.h>

#include "nst.h"
#include "tensor/ops.h"

#define WCT_EIG_FLOOR 1e-5

/* One image's feature statistics: mean (C), the covariance's eigenvalues (C, ascending)
 * and eigenvectors (C,C: row j is the eigenvector of val[j]), the positions n, and the
 * rank (eigenvalues above the floor). One allocation. */
typedef struct {
    int C, rank;
    size_t n;
    double *mean, *val, *vec;
} wct_stats;

/* Statistics of f (C,N), N >= 1 (N = 1: a zero covariance). NST_ERR_NOMEM, or NST_ERR_ARG
 * when LAPACK fails (say which). tier: the covariance's kernels (CPU_AVX512: vectorised
 * for it; the sums' order, and so the last bits, differ between tiers). */
nst_status wct_stats_compute(wct_stats *s, const float *f, int C, size_t N, cpu_tier tier, nst_error *err);
void wct_stats_free(wct_stats *s);

/* The transform of content's features coloured by the mix of n styles (weights w, >= 0,
 * summing to 1): T (C,C) float = sum_k w_k K_k W_c and shift (C) = sum_k w_k m_k - T m_c,
 * so that the WCT of f is T f + shift. */
nst_status wct_transform_build(float *T, float *shift, const wct_stats *content, const wct_stats *const *styles,
                               const float *w, int n, nst_error *err);
/* The same in two parts: the colouring, which depends on the paintings only (what a run
 * computes once for all its photos), K (C,C) = sum_k w_k K_k and mean (C) = sum_k w_k m_k
 * in double, one allocation; then each photo's T = K W_c and shift = mean - T m_c. */
typedef struct {
    int C;
    double *K, *mean;
} wct_colouring;
nst_status wct_colouring_build(wct_colouring *c, const wct_stats *const *styles, const float *w, int n,
                               nst_error *err);
void wct_colouring_free(wct_colouring *c);
nst_status wct_transform_colour(float *T, float *shift, const wct_stats *content, const wct_colouring *c,
                                nst_error *err);
/* out (C,N) = alpha (T f + shift) + (1 - alpha) f. out may not be f. tier: the CPU's
 * kernels (CPU_AVX512: wct_avx512.c's register tiles; else portable loops). */
void wct_transform_apply(float *out, const float *f, const float *T, const float *shift, int C, size_t N,
                         float alpha, cpu_tier tier);

/* The reference: the same transform computed in double from f and the statistics, for
 * the tests. */
void wct_forward_ref(double *out, const float *f, int C, size_t N, const wct_stats *content,
                     const wct_stats *const *styles, const float *w, int n, float alpha);

/* AdaIN: out (C,N) = alpha (sigma_s (f - mu_c) / sigma_c + mu_s) + (1 - alpha) f, per
 * channel (the mix of n styles' mu_s and sigma_s); the standard deviations over the N
 * positions (a flat channel: its sigma_c taken as 1). mean_s, std_s: (n, C). */
void adain_forward(float *out, const float *f, int C, size_t N, const double *mean_s, const double *std_s,
                   const float *w, int n, float alpha);
/* A channel's mean and standard deviation (C each), in double. */
void channel_stats(double *mean, double *std, const float *f, int C, size_t N);

#endif
