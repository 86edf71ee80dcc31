/* test_wct.c - the feature transforms of universal style transfer against double
 * precision: the statistics (mean, covariance = V^T diag(val) V, orthonormal V), whitened
 * features of identity covariance, coloured ones of the painting's covariance and mean,
 * the float path against the double reference, strength, blends, rank-deficient and flat
 * features, and AdaIN's per-channel moments. */
#include "tensor/wct.h"
#include "test_util.h"

/* f (C,N) = A z + m: correlated channels of distinct means (z uniform; A of rank
 * columns, the identity plus noise where rank = C, so that it is well conditioned) */
static float *make_features(int C, size_t N, int rank, unsigned long long seed) {
    unsigned long long st = seed;
    float *A = malloc((size_t)C * rank * sizeof *A), *m = malloc((size_t)C * sizeof *m);
    float *f = malloc((size_t)C * N * sizeof *f), *z = malloc((size_t)rank * sizeof *z);
    for (int i = 0; i < C * rank; i++) A[i] = (rank == C ? 0.5f / sqrtf((float)C) : 1.0f) * test_rand(&st) + (i / rank == i % rank);
    for (int c = 0; c < C; c++) m[c] = 3.0f * test_rand(&st) + 2.0f;
    for (size_t n = 0; n < N; n++) {
        for (int r = 0; r < rank; r++) z[r] = test_rand(&st);
        for (int c = 0; c < C; c++) {
            double s = m[c];
            for (int r = 0; r < rank; r++) s += A[c * rank + r] * z[r];
            f[(size_t)c * N + n] = (float)s;
        }
    }
    free(A), free(m), free(z);
    return f;
}

/* mean (C) and covariance (C,C, divisor N-1) of x (C,N) in double */
static void moments(double *mean, double *cov, const double *x, int C, size_t N) {
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (size_t n = 0; n < N; n++) s += x[(size_t)c * N + n];
        mean[c] = s / (double)N;
    }
    for (int a = 0; a < C; a++)
        for (int b = 0; b < C; b++) {
            double s = 0;
            for (size_t n = 0; n < N; n++) s += (x[(size_t)a * N + n] - mean[a]) * (x[(size_t)b * N + n] - mean[b]);
            cov[(size_t)a * C + b] = s / (double)(N - 1);
        }
}

static double *to_double(const float *f, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    return d;
}

static double max_abs_diff(const double *a, const double *b, size_t n, double *scale) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    if (scale) *scale = s;
    return m;
}

/* with the covariance kernels of tier (the portable ones, and the CPU's best) */
static void test_stats_tier(int C, size_t N, cpu_tier tier) {
    float *f = make_features(C, N, C, 11);
    wct_stats s;
    nst_error err;
    CHECK(wct_stats_compute(&s, f, C, N, tier, &err) == NST_OK, "%s", err.msg);
    double *x = to_double(f, (size_t)C * N), *mean = malloc(C * sizeof *mean), *cov = malloc((size_t)C * C * sizeof *cov);
    moments(mean, cov, x, C, N);
    double sc, d = max_abs_diff(s.mean, mean, C, &sc);
    CHECK(d <= 1e-12 * sc, "C %d: mean off by %g", C, d);
    /* V^T diag(val) V is the covariance; V V^T is the identity */
    double *rec = calloc((size_t)C * C, sizeof *rec), *eye = calloc((size_t)C * C, sizeof *eye), worst_orth = 0;
    for (int a = 0; a < C; a++)
        for (int b = 0; b < C; b++) {
            double r = 0, o = 0;
            for (int j = 0; j < C; j++) {
                r += s.vec[(size_t)j * C + a] * s.val[j] * s.vec[(size_t)j * C + b];
                o += s.vec[(size_t)a * C + j] * s.vec[(size_t)b * C + j];
            }
            rec[(size_t)a * C + b] = r;
            worst_orth = fmax(worst_orth, fabs(o - (a == b)));
        }
    d = max_abs_diff(rec, cov, (size_t)C * C, &sc);
    CHECK(d <= 1e-10 * sc, "C %d: covariance reconstructed off by %g (of %g)", C, d, sc);
    CHECK(worst_orth <= 1e-10, "C %d: eigenvectors not orthonormal (%g)", C, worst_orth);
    CHECK(s.rank == C, "C %d: full-rank features gave rank %d", C, s.rank);
    for (int j = 1; j < C; j++) CHECK(s.val[j] >= s.val[j - 1], "eigenvalues not ascending at %d", j);
    (void)eye;
    free(rec), free(eye), free(x), free(mean), free(cov), free(f);
    wct_stats_free(&s);
}

static void test_stats(int C, size_t N) {
    test_stats_tier(C, N, CPU_PORTABLE);
    if (cpu_best_tier() != CPU_PORTABLE) test_stats_tier(C, N, cpu_best_tier());
}

/* The coloured features' moments are the painting's; the float path matches the double
 * reference; whitening alone (an identity "painting") gives identity covariance. */
/* wct_transform_apply with the portable loops and with this CPU's best kernels (the
 * AVX-512 tiles where it has them): the same result to rounding; out gets the fast one's. */
static void apply_tiers(float *out, const float *f, const float *T, const float *shift, int C, size_t N, float alpha) {
    float *ref = malloc((size_t)C * N * sizeof *ref);
    wct_transform_apply(ref, f, T, shift, C, N, alpha, CPU_PORTABLE);
    wct_transform_apply(out, f, T, shift, C, N, alpha, cpu_best_tier());
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < (size_t)C * N; i++) {
        worst = fmax(worst, fabs((double)out[i] - ref[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    CHECK(worst <= 1e-5 * scale + 1e-30, "C %d N %zu alpha %g: the %s kernel is %g off the portable one (of %g)", C,
          N, alpha, cpu_tier_name(cpu_best_tier()), worst, scale);
    free(ref);
}

static void test_transform(int C, size_t Nc, size_t Ns) {
    float *fc = make_features(C, Nc, C, 21), *fs = make_features(C, Ns, C, 31);
    wct_stats sc, ss;
    nst_error err;
    CHECK(wct_stats_compute(&sc, fc, C, Nc, cpu_best_tier(), &err) == NST_OK, "%s", err.msg);
    CHECK(wct_stats_compute(&ss, fs, C, Ns, cpu_best_tier(), &err) == NST_OK, "%s", err.msg);
    const wct_stats *styles[1] = {&ss};
    float w[1] = {1.0f};
    double *ref = malloc((size_t)C * Nc * sizeof *ref), *mean = malloc(C * sizeof *mean),
           *cov = malloc((size_t)C * C * sizeof *cov), *want = malloc((size_t)C * C * sizeof *want),
           *wmean = malloc(C * sizeof *wmean);
    wct_forward_ref(ref, fc, C, Nc, &sc, styles, w, 1, 1.0f);
    moments(mean, cov, ref, C, Nc);
    double *xs = to_double(fs, (size_t)C * Ns);
    moments(wmean, want, xs, C, Ns);
    double scale, d = max_abs_diff(cov, want, (size_t)C * C, &scale);
    CHECK(d <= 1e-8 * scale, "C %d: coloured covariance off by %g (of %g)", C, d, scale);
    d = max_abs_diff(mean, wmean, C, &scale);
    CHECK(d <= 1e-9 * scale, "C %d: coloured mean off by %g", C, d);

    /* the float path */
    float *T = malloc((size_t)C * C * sizeof *T), *shift = malloc(C * sizeof *shift);
    float *out = malloc((size_t)C * Nc * sizeof *out);
    CHECK(wct_transform_build(T, shift, &sc, styles, w, 1, &err) == NST_OK, "%s", err.msg);
    apply_tiers(out, fc, T, shift, C, Nc, 1.0f);
    double *outd = to_double(out, (size_t)C * Nc);
    d = max_abs_diff(outd, ref, (size_t)C * Nc, &scale);
    CHECK(d <= 2e-5 * scale, "C %d: float transform off by %g (of %g)", C, d, scale);
    /* strength: 0 is the photo's features exactly, 0.5 halfway */
    apply_tiers(out, fc, T, shift, C, Nc, 0.0f);
    CHECK(memcmp(out, fc, (size_t)C * Nc * sizeof *out) == 0, "strength 0 changed the features");
    wct_forward_ref(ref, fc, C, Nc, &sc, styles, w, 1, 0.5f);
    apply_tiers(out, fc, T, shift, C, Nc, 0.5f);
    free(outd);
    outd = to_double(out, (size_t)C * Nc);
    d = max_abs_diff(outd, ref, (size_t)C * Nc, &scale);
    CHECK(d <= 2e-5 * scale, "C %d: strength 0.5 off by %g", C, d);

    /* whitening: an identity painting (zero mean, unit eigenvalues) */
    wct_stats id = {.C = C, .rank = C, .n = 2};
    double *idmem = calloc((size_t)C * (C + 2), sizeof *idmem);
    id.mean = idmem, id.val = idmem + C, id.vec = idmem + 2 * C;
    for (int c = 0; c < C; c++) id.val[c] = 1.0, id.vec[(size_t)c * C + c] = 1.0;
    const wct_stats *white[1] = {&id};
    wct_forward_ref(ref, fc, C, Nc, &sc, white, w, 1, 1.0f);
    moments(mean, cov, ref, C, Nc);
    double worst = 0;
    for (int a = 0; a < C; a++) {
        worst = fmax(worst, fabs(mean[a]));
        for (int b = 0; b < C; b++) worst = fmax(worst, fabs(cov[(size_t)a * C + b] - (a == b)));
    }
    CHECK(worst <= 1e-8, "C %d: whitened features are not of identity covariance and zero mean (%g)", C, worst);

    /* a blend of two paintings is the mix of their colourings */
    float *fs2 = make_features(C, Ns, C, 41);
    wct_stats ss2;
    CHECK(wct_stats_compute(&ss2, fs2, C, Ns, cpu_best_tier(), &err) == NST_OK, "%s", err.msg);
    const wct_stats *two[2] = {&ss, &ss2};
    float w2[2] = {0.3f, 0.7f};
    CHECK(wct_transform_build(T, shift, &sc, two, w2, 2, &err) == NST_OK, "%s", err.msg);
    apply_tiers(out, fc, T, shift, C, Nc, 1.0f);
    wct_forward_ref(ref, fc, C, Nc, &sc, two, w2, 2, 1.0f);
    free(outd);
    outd = to_double(out, (size_t)C * Nc);
    d = max_abs_diff(outd, ref, (size_t)C * Nc, &scale);
    CHECK(d <= 2e-5 * scale, "C %d: a blend off by %g", C, d);
    /* ... whose mean is the weighted mean */
    moments(mean, cov, ref, C, Nc);
    for (int c = 0; c < C; c++) {
        double m = (double)w2[0] * ss.mean[c] + (double)w2[1] * ss2.mean[c];
        CHECK(fabs(mean[c] - m) <= 1e-9 * (1 + fabs(m)), "blend mean %d: %g, want %g", c, mean[c], m);
    }

    wct_stats_free(&ss2);
    free(fs2), free(idmem), free(T), free(shift), free(out), free(outd), free(ref), free(mean), free(cov), free(want);
    free(wmean), free(xs), free(fc), free(fs);
    wct_stats_free(&sc);
    wct_stats_free(&ss);
}

/* A painting of fewer positions than channels, features of low rank and a flat photo:
 * the ranks are said, every value stays finite, the mean is the painting's. */
static void test_degenerate(void) {
    int C = 24;
    size_t N = 500;
    nst_error err;
    float *fc = make_features(C, N, C, 51), *small = make_features(C, 9, C, 61), *low = make_features(C, N, 5, 71);
    wct_stats sc, ssm, slow;
    CHECK(wct_stats_compute(&sc, fc, C, N, cpu_best_tier(), &err) == NST_OK, "%s", err.msg);
    CHECK(wct_stats_compute(&ssm, small, C, 9, cpu_best_tier(), &err) == NST_OK, "%s", err.msg);
    CHECK(ssm.rank <= 8, "9 positions gave rank %d", ssm.rank);
    CHECK(wct_stats_compute(&slow, low, C, N, cpu_best_tier(), &err) == NST_OK, "%s", err.msg);
    CHECK(slow.rank == 5, "rank-5 features gave rank %d", slow.rank);
    float *T = malloc((size_t)C * C * sizeof *T), *shift = malloc(C * sizeof *shift), *out = malloc((size_t)C * N * sizeof *out);
    float w[1] = {1.0f};
    const wct_stats *styles[1] = {&ssm};
    CHECK(wct_transform_build(T, shift, &sc, styles, w, 1, &err) == NST_OK, "%s", err.msg);
    apply_tiers(out, fc, T, shift, C, N, 1.0f);
    int finite = 1;
    for (size_t i = 0; i < (size_t)C * N; i++) finite &= isfinite(out[i]);
    CHECK(finite, "a tiny painting gave non-finite features");
    double *mean = malloc(C * sizeof *mean);
    channel_stats(mean, NULL, out, C, N);
    for (int c = 0; c < C; c++) CHECK(fabs(mean[c] - ssm.mean[c]) <= 1e-4 * (1 + fabs(ssm.mean[c])), "tiny painting mean %d", c);

    /* a flat photo: nothing to whiten, the painting's mean everywhere */
    float *flat = malloc((size_t)C * N * sizeof *flat);
    for (size_t i = 0; i < (size_t)C * N; i++) flat[i] = 0.5f;
    wct_stats sf;
    CHECK(wct_stats_compute(&sf, flat, C, N, cpu_best_tier(), &err) == NST_OK, "%s", err.msg);
    CHECK(sf.rank == 0, "flat features gave rank %d", sf.rank);
    CHECK(wct_transform_build(T, shift, &sf, styles, w, 1, &err) == NST_OK, "%s", err.msg);
    apply_tiers(out, flat, T, shift, C, N, 1.0f);
    double worst = 0;
    for (int c = 0; c < C; c++)
        for (size_t n = 0; n < N; n++) worst = fmax(worst, fabs(out[(size_t)c * N + n] - ssm.mean[c]));
    CHECK(worst <= 1e-4, "a flat photo: %g from the painting's mean", worst);
    /* one position */
    wct_stats one;
    CHECK(wct_stats_compute(&one, fc, C, 1, cpu_best_tier(), &err) == NST_OK && one.rank == 0, "one position: rank %d", one.rank);
    wct_stats_free(&one);
    CHECK(wct_stats_compute(&one, fc, C, 0, cpu_best_tier(), &err) == NST_ERR_ARG, "no positions accepted");

    wct_stats_free(&sf);
    free(flat), free(mean), free(T), free(shift), free(out), free(fc), free(small), free(low);
    wct_stats_free(&sc), wct_stats_free(&ssm), wct_stats_free(&slow);
}

static void test_adain(void) {
    int C = 7;
    size_t N = 1000;
    float *fc = make_features(C, N, C, 81), *fs = make_features(C, 300, C, 91), *out = malloc((size_t)C * N * sizeof *out);
    double ms[7], ss[7], mo[7], so[7];
    channel_stats(ms, ss, fs, C, 300);
    float w[1] = {1.0f};
    adain_forward(out, fc, C, N, ms, ss, w, 1, 1.0f);
    channel_stats(mo, so, out, C, N);
    for (int c = 0; c < C; c++) {
        CHECK(fabs(mo[c] - ms[c]) <= 1e-4 * (1 + fabs(ms[c])), "AdaIN mean %d: %g, want %g", c, mo[c], ms[c]);
        CHECK(fabs(so[c] - ss[c]) <= 1e-4 * ss[c], "AdaIN std %d: %g, want %g", c, so[c], ss[c]);
    }
    adain_forward(out, fc, C, N, ms, ss, w, 1, 0.0f);
    double worst = 0;
    for (size_t i = 0; i < (size_t)C * N; i++) worst = fmax(worst, fabs(out[i] - fc[i]));
    CHECK(worst <= 1e-5, "AdaIN strength 0 moved the features by %g", worst);
    free(fc), free(fs), free(out);
}

int main(void) {
    test_stats(5, 40);
    test_stats(37, 2000);
    test_stats(128, 3000);
    test_transform(6, 300, 200);
    test_transform(37, 1500, 900);
    test_degenerate();
    test_adain();
    TEST_DONE();
}
