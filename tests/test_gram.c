/* test_gram.c - the Gram matrix: the reference against finite differences, the fast
 * paths (dispatched, AVX2 and portable) against the reference, symmetry, determinism. */
#include <omp.h>

#include "tensor/ops.h"
#include "test_util.h"

/* Exposed by gram.c for the tests only: the portable path whatever the CPU. */
void gram_forward_portable_test(float *G, const float *F, int C, int N, float scale);
void gram_backward_portable_test(float *dF, const float *dG, const float *F, int C, int N, float scale);
/* ... and the AVX2 path: returns -1 (and does nothing) if the CPU has no AVX2+FMA. */
int gram_forward_avx2_test(float *G, const float *F, int C, int N, float scale);
int gram_backward_avx2_test(float *dF, const float *dG, const float *F, int C, int N, float scale);

static int have_avx2; /* set in main: whether the AVX2 path runs here */
static cpu_tier tier;  /* set in main: the dispatched path's, NST_KERNEL's cap on the best */

static float *rand_array(size_t n, unsigned long long *st) {
    float *a = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = test_rand(st);
    return a;
}

/* L = sum(G * R) in double, G = scale F F^T; F is (C,N), R is (C,C) */
static double gram_loss(const double *F, const float *R, int C, int N, double scale) {
    double L = 0.0;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += F[(size_t)i * N + n] * F[(size_t)j * N + n];
            L += scale * s * R[(size_t)i * C + j];
        }
    return L;
}

static void test_reference(int C, int N) {
    unsigned long long st = 42 + C;
    const float scale = 0.37f;
    float *F = rand_array((size_t)C * N, &st), *R = rand_array((size_t)C * C, &st);
    double *Fd = malloc((size_t)C * N * sizeof(double));
    for (size_t i = 0; i < (size_t)C * N; i++) Fd[i] = F[i];

    /* forward: G against the double loss, and symmetric */
    float *G = malloc((size_t)C * C * sizeof(float));
    gram_forward_ref(G, F, C, N, scale);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)C * C; i++) L += (double)G[i] * R[i];
    double Ld = gram_loss(Fd, R, C, N, scale);
    CHECK(fabs(L - Ld) <= 1e-5 * (fabs(Ld) + 1.0), "forward_ref vs double: %g vs %g", L, Ld);

    /* backward (accumulating on top of ones) against central differences */
    float *dF = malloc((size_t)C * N * sizeof(float));
    for (size_t i = 0; i < (size_t)C * N; i++) dF[i] = 1.0f;
    gram_backward_ref(dF, R, F, C, N, scale);
    const double eps = 1e-3;
    double maxerr = 0.0, maxg = 1e-30;
    for (size_t i = 0; i < (size_t)C * N; i++) {
        double keep = Fd[i];
        Fd[i] = keep + eps;
        double lp = gram_loss(Fd, R, C, N, scale);
        Fd[i] = keep - eps;
        double lm = gram_loss(Fd, R, C, N, scale);
        Fd[i] = keep;
        double g = dF[i] - 1.0;
        double fd = (lp - lm) / (2 * eps);
        if (fabs(fd - g) > maxerr) maxerr = fabs(fd - g);
        if (fabs(g) > maxg) maxg = fabs(g);
    }
    CHECK(maxerr / maxg < 1e-5, "backward_ref vs finite differences C=%d N=%d: %g", C, N, maxerr / maxg);
    free(F); free(R); free(Fd); free(G); free(dF);
}

static void test_fast_vs_ref(int C, int N) {
    unsigned long long st = 1000 + (unsigned long long)C * 31 + N;
    const float scale = 1.0f / (float)N;
    size_t nf = (size_t)C * N, ng = (size_t)C * C;
    float *F = rand_array(nf, &st), *dG = rand_array(ng, &st), *dF0 = rand_array(nf, &st);
    float *Gr = malloc(ng * sizeof(float)), *Gf = malloc(ng * sizeof(float));
    float *dFr = malloc(nf * sizeof(float)), *dFf = malloc(nf * sizeof(float));

    gram_forward_ref(Gr, F, C, N, scale);
    for (size_t i = 0; i < ng; i++) Gf[i] = NAN;
    gram_forward(Gf, F, C, N, scale, tier);
    double e = rel_l2(Gf, Gr, ng);
    CHECK(e < 1e-6, "forward C=%d N=%d: %g", C, N, e);
    int sym = 1;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) sym &= Gf[(size_t)i * C + j] == Gf[(size_t)j * C + i];
    CHECK(sym, "forward symmetric C=%d N=%d", C, N);
    for (size_t i = 0; i < ng; i++) Gf[i] = NAN;
    gram_forward_portable_test(Gf, F, C, N, scale);
    e = rel_l2(Gf, Gr, ng);
    CHECK(e < 1e-6, "forward portable C=%d N=%d: %g", C, N, e);
    if (have_avx2) {
        for (size_t i = 0; i < ng; i++) Gf[i] = NAN;
        gram_forward_avx2_test(Gf, F, C, N, scale);
        e = rel_l2(Gf, Gr, ng);
        CHECK(e < 1e-6, "forward avx2 C=%d N=%d: %g", C, N, e);
        sym = 1;
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) sym &= Gf[(size_t)i * C + j] == Gf[(size_t)j * C + i];
        CHECK(sym, "forward avx2 symmetric C=%d N=%d", C, N);
    }

    /* backward from zero, so the check sees the increment at full precision; then on
     * top of dF0, which it must accumulate onto */
    for (int acc = 0; acc < 2; acc++) {
        for (size_t i = 0; i < nf; i++) dFr[i] = acc ? dF0[i] : 0.0f;
        gram_backward_ref(dFr, dG, F, C, N, scale);
        for (int path = 0; path < 2 + have_avx2; path++) {
            static const char *names[] = {"fast", "portable", "avx2"};
            for (size_t i = 0; i < nf; i++) dFf[i] = acc ? dF0[i] : 0.0f;
            if (path == 0) gram_backward(dFf, dG, F, C, N, scale, tier);
            else if (path == 1) gram_backward_portable_test(dFf, dG, F, C, N, scale);
            else gram_backward_avx2_test(dFf, dG, F, C, N, scale);
            e = rel_l2(dFf, dFr, nf);
            CHECK(e < 1e-6, "backward %s C=%d N=%d acc=%d: %g", names[path], C, N, acc, e);
        }
    }
    free(F); free(dG); free(dF0); free(Gr); free(Gf); free(dFr); free(dFf);
}

/* Two runs, and 1 vs 2 threads, give bit-identical results. avx2: test the AVX2 path
 * instead of the dispatched one. */
static void test_determinism(int C, int N, int avx2) {
    const char *name = avx2 ? "avx2" : "fast";
    unsigned long long st = 5;
    size_t nf = (size_t)C * N, ng = (size_t)C * C;
    float *F = rand_array(nf, &st), *dG = rand_array(ng, &st);
    float *G[3], *dF[3];
    int nt = omp_get_max_threads();
    for (int r = 0; r < 3; r++) {
        G[r] = malloc(ng * sizeof(float));
        dF[r] = calloc(nf, sizeof(float));
        omp_set_num_threads(r < 2 ? 2 : 1);
        if (avx2) {
            gram_forward_avx2_test(G[r], F, C, N, 0.5f);
            gram_backward_avx2_test(dF[r], dG, F, C, N, 0.5f);
        } else {
            gram_forward(G[r], F, C, N, 0.5f, tier);
            gram_backward(dF[r], dG, F, C, N, 0.5f, tier);
        }
    }
    omp_set_num_threads(nt);
    CHECK(memcmp(G[0], G[1], ng * sizeof(float)) == 0, "forward %s run to run C=%d", name, C);
    CHECK(memcmp(dF[0], dF[1], nf * sizeof(float)) == 0, "backward %s run to run C=%d", name, C);
    CHECK(memcmp(G[0], G[2], ng * sizeof(float)) == 0, "forward %s 1 vs 2 threads C=%d", name, C);
    CHECK(memcmp(dF[0], dF[2], nf * sizeof(float)) == 0, "backward %s 1 vs 2 threads C=%d", name, C);
    for (int r = 0; r < 3; r++) { free(G[r]); free(dF[r]); }
    free(F); free(dG);
}

/* The tiers of the tuning's kernel portable / avx2 (NST_KERNEL) make gram_forward and
 * gram_backward run that path. */
static void test_kernel_override(void) {
    const int C = 19, N = 301;
    unsigned long long st = 11;
    size_t nf = (size_t)C * N, ng = (size_t)C * C;
    float *F = rand_array(nf, &st), *dG = rand_array(ng, &st);
    float *G1 = malloc(ng * sizeof(float)), *G2 = malloc(ng * sizeof(float));
    float *d1 = calloc(nf, sizeof(float)), *d2 = calloc(nf, sizeof(float));
    gram_forward(G1, F, C, N, 0.25f, cpu_kernel_tier(NST_KERNEL_PORTABLE));
    gram_backward(d1, dG, F, C, N, 0.25f, cpu_kernel_tier(NST_KERNEL_PORTABLE));
    gram_forward_portable_test(G2, F, C, N, 0.25f);
    gram_backward_portable_test(d2, dG, F, C, N, 0.25f);
    CHECK(memcmp(G1, G2, ng * sizeof(float)) == 0, "NST_KERNEL=portable: forward");
    CHECK(memcmp(d1, d2, nf * sizeof(float)) == 0, "NST_KERNEL=portable: backward");
    if (have_avx2) {
        memset(d1, 0, nf * sizeof(float));
        memset(d2, 0, nf * sizeof(float));
        gram_forward(G1, F, C, N, 0.25f, cpu_kernel_tier(NST_KERNEL_AVX2));
        gram_backward(d1, dG, F, C, N, 0.25f, cpu_kernel_tier(NST_KERNEL_AVX2));
        gram_forward_avx2_test(G2, F, C, N, 0.25f);
        gram_backward_avx2_test(d2, dG, F, C, N, 0.25f);
        CHECK(memcmp(G1, G2, ng * sizeof(float)) == 0, "NST_KERNEL=avx2: forward");
        CHECK(memcmp(d1, d2, nf * sizeof(float)) == 0, "NST_KERNEL=avx2: backward");
    }
    free(F); free(dG); free(G1); free(G2); free(d1); free(d2);
}

int main(void) {
    nst_tuning t;
    nst_error terr;
    nst_tuning_from_env(&t, &terr);
    tier = cpu_kernel_tier(t.kernel);
    {
        /* probe: does the AVX2 path run on this CPU? */
        float f = 1.0f, g;
        have_avx2 = gram_forward_avx2_test(&g, &f, 1, 1, 1.0f) == 0;
        if (!have_avx2) printf("note: no AVX2+FMA on this CPU (or not x86-64): AVX2 path not tested\n");
    }
    test_reference(3, 5);
    test_reference(4, 1);
    test_reference(2, 9);

    static const int shapes[][2] = {
        /* C, N */
        {1, 1},    {3, 1},    {3, 7},     {5, 33},   {17, 129},  {3, 50176}, {64, 1001},
        {64, 4097}, {65, 255}, {100, 333}, {128, 785}, {200, 17},  {256, 1025}, {512, 257},
    };
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) test_fast_vs_ref(shapes[s][0], shapes[s][1]);

    for (int avx2 = 0; avx2 <= have_avx2; avx2++) {
        test_determinism(64, 3001, avx2);
        test_determinism(130, 777, avx2);
    }
    test_kernel_override();
    TEST_DONE();
}
