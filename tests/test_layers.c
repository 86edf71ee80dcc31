/* test_layers.c - the style network's layers (tensor/layers.h): every backward against
 * central finite differences, PyTorch's reflection and upsampling on hand-checked
 * examples, the fast instance norm against the reference, the statistics of its output,
 * and determinism (two runs, and one thread against two).
 *
 * Method: for L(x) = sum(w .* op(x)) with a fixed random projection w, the analytic
 * dL/dx_i (the backward applied to w) is compared with (L(x + h e_i) - L(x - h e_i)) / 2h
 * at every coordinate, the forward in float and the sums in double. */
#include <omp.h>

#include "tensor/layers.h"
#include "tensor/ops.h"
#include "test_util.h"

static unsigned long long rng = 7;

static void fill(float *a, size_t n, float scale, float offset) {
    for (size_t i = 0; i < n; i++) a[i] = offset + scale * test_rand(&rng);
}

static float *falloc(size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* a scalar loss of some parameters; sets *kinked when the point it was evaluated at lies
 * across a ReLU kink from the unperturbed one (finite differences are meaningless there) */
typedef double (*loss_fn)(void *ctx, int *kinked);

/* Compares grad[i] with central differences of loss in param[i] for every i < n.
 * Relative error, with a floor on the denominator for near-zero gradients (the float
 * forward's rounding is ~1e-7 of the outputs, divided by 2h). Returns how many were checked. */
static int fd_check(const char *what, loss_fn loss, void *ctx, float *param, const float *grad,
                    int n, float h, double tol, double floor) {
    int checked = 0;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        float save = param[i];
        int k1 = 0, k2 = 0;
        float xp = save + h, xm = save - h; /* the steps as taken, in float */
        param[i] = xp; double lp = loss(ctx, &k1);
        param[i] = xm; double lm = loss(ctx, &k2);
        param[i] = save;
        if (k1 || k2) continue;
        double num = (lp - lm) / ((double)xp - (double)xm), ana = grad[i];
        double e = fabs(num - ana) / fmax(fmax(fabs(num), fabs(ana)), floor);
        if (e > worst) worst = e;
        CHECK(e < tol, "%s [%d]: analytic %.8g numeric %.8g (rel %.3g)", what, i, ana, num, e);
        checked++;
    }
    printf("  %-34s %4d of %4d coordinates, worst rel error %.2e\n", what, checked, n, worst);
    return checked;
}

/* ---- reflection padding ------------------------------------------------------------------ */

typedef struct { int C, H, W, p; float *x, *y, *w; } pad_ctx;

static double pad_loss(void *ctx, int *kinked) {
    pad_ctx *t = ctx;
    reflect_pad_forward(t->y, t->x, t->C, t->H, t->W, t->p);
    return dotd(t->w, t->y, (size_t)t->C * (t->H + 2 * t->p) * (t->W + 2 * t->p));
}

static void test_reflect_pad(void) {
    /* PyTorch: nn.ReflectionPad2d(1)(torch.arange(1., 10.).view(1, 1, 3, 3)) */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[25];
    const float want[25] = {5, 4, 5, 6, 5, 2, 1, 2, 3, 2, 5, 4, 5, 6, 5, 8, 7, 8, 9, 8, 5, 4, 5, 6, 5};
    reflect_pad_forward(y, x, 1, 3, 3, 1);
    CHECK(memcmp(y, want, sizeof want) == 0, "reflect pad 3x3 by 1 matches PyTorch");
    /* p = 2 on a 3-wide row: the widest reflection a 3x3 input allows */
    float x2[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y2[49];
    reflect_pad_forward(y2, x2, 1, 3, 3, 2);
    const float row0[7] = {9, 8, 7, 8, 9, 8, 7}; /* padded row 0 reflects source row 2 */
    CHECK(memcmp(y2, row0, sizeof row0) == 0, "reflect pad by 2: first row %g %g %g %g %g %g %g",
          y2[0], y2[1], y2[2], y2[3], y2[4], y2[5], y2[6]);

    const int sizes[][4] = {{2, 3, 5, 1}, {2, 5, 7, 4}, {1, 9, 5, 4}, {3, 4, 6, 0}}; /* C,H,W,p */
    for (int s = 0; s < 4; s++) {
        pad_ctx t = {sizes[s][0], sizes[s][1], sizes[s][2], sizes[s][3], 0, 0, 0};
        size_t n = (size_t)t.C * t.H * t.W, no = (size_t)t.C * (t.H + 2 * t.p) * (t.W + 2 * t.p);
        t.x = falloc(n); t.y = falloc(no); t.w = falloc(no);
        float *dx = falloc(n);
        fill(t.x, n, 1, 0); fill(t.w, no, 1, 0);
        reflect_pad_backward(dx, t.w, t.C, t.H, t.W, t.p);
        char what[64];
        snprintf(what, sizeof what, "reflect_pad %dx%dx%d p=%d", t.C, t.H, t.W, t.p);
        fd_check(what, pad_loss, &t, t.x, dx, (int)n, 1e-2f, 1e-3, 1e-2);
        /* every padded pixel's gradient lands somewhere: the sums agree */
        double sw = 0, sd = 0;
        for (size_t i = 0; i < no; i++) sw += t.w[i];
        for (size_t i = 0; i < n; i++) sd += dx[i];
        CHECK(fabs(sw - sd) < 1e-4 * no, "%s: gradient mass %g vs %g", what, sd, sw);
        free(t.x); free(t.y); free(t.w); free(dx);
    }
}

/* ---- instance normalisation ---------------------------------------------------------------- */

typedef struct {
    int C, N, relu;
    float *x, *gamma, *beta, *w;
    float *y, *pre, *mean, *rstd; /* scratch */
    float *pre0;                  /* pre-activations at the unperturbed point (relu only) */
} in_ctx;

static double in_loss(void *ctx, int *kinked) {
    in_ctx *t = ctx;
    size_t n = (size_t)t->C * t->N;
    instance_norm_forward(t->y, t->mean, t->rstd, t->x, t->gamma, t->beta, t->C, t->N, t->relu);
    if (t->relu) {
        instance_norm_forward(t->pre, t->mean, t->rstd, t->x, t->gamma, t->beta, t->C, t->N, 0);
        for (size_t i = 0; i < n; i++)
            if ((t->pre[i] > 0) != (t->pre0[i] > 0)) *kinked = 1;
    }
    return dotd(t->w, t->y, n);
}

static void test_instance_norm_grad(int relu) {
    in_ctx t = {3, 7 * 5, relu, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    size_t n = (size_t)t.C * t.N;
    t.x = falloc(n); t.w = falloc(n); t.y = falloc(n); t.pre = falloc(n); t.pre0 = falloc(n);
    t.gamma = falloc(t.C); t.beta = falloc(t.C); t.mean = falloc(t.C); t.rstd = falloc(t.C);
    float *dx = falloc(n), *dgamma = falloc(t.C), *dbeta = falloc(t.C);
    /* channels of different offsets and spreads; one negative gamma */
    for (int c = 0; c < t.C; c++) fill(t.x + (size_t)c * t.N, t.N, 1.0f + c, 3.0f * c - 2.0f);
    fill(t.w, n, 1, 0);
    const float g[3] = {1.3f, -0.7f, 0.9f}, b[3] = {0.2f, -0.3f, 0.5f};
    memcpy(t.gamma, g, sizeof g);
    memcpy(t.beta, b, sizeof b);

    instance_norm_forward(t.y, t.mean, t.rstd, t.x, t.gamma, t.beta, t.C, t.N, relu);
    instance_norm_forward(t.pre0, t.mean, t.rstd, t.x, t.gamma, t.beta, t.C, t.N, 0);
    for (int c = 0; c < t.C; c++) dgamma[c] = dbeta[c] = 0.0f;
    instance_norm_backward(dx, dgamma, dbeta, t.w, t.y, t.x, t.mean, t.rstd, t.gamma, t.C, t.N, relu);

    /* h: small next to the spread (kinks are detected and skipped), large enough that the
     * float forward's rounding stays well under the tolerance */
    const char *names[3][2] = {{"instance_norm dx", "instance_norm+relu dx"},
                               {"instance_norm dgamma", "instance_norm+relu dgamma"},
                               {"instance_norm dbeta", "instance_norm+relu dbeta"}};
    int k = fd_check(names[0][relu], in_loss, &t, t.x, dx, (int)n, 1e-2f, 1e-2, 1e-2);
    CHECK(k >= (int)n * 2 / 3, "%s: only %d of %zu coordinates away from kinks", names[0][relu], k, n);
    fd_check(names[1][relu], in_loss, &t, t.gamma, dgamma, t.C, 1e-2f, 1e-3, 1e-2);
    fd_check(names[2][relu], in_loss, &t, t.beta, dbeta, t.C, 1e-2f, 1e-3, 1e-2);
    if (relu) {
        int zeros = 0;
        for (size_t i = 0; i < n; i++) zeros += t.y[i] == 0.0f;
        CHECK(zeros > 0 && zeros < (int)n, "the fused relu clips some outputs (%d of %zu)", zeros, n);
    }

    /* fd_check's last evaluation left a perturbed output: back to the point of dx */
    instance_norm_forward(t.y, t.mean, t.rstd, t.x, t.gamma, t.beta, t.C, t.N, relu);
    /* parameter gradients accumulate; dinp may equal dout (in place gives the same bits) */
    float *dx2 = falloc(n), *dg2 = falloc(t.C), *db2 = falloc(t.C);
    for (int c = 0; c < t.C; c++) { dg2[c] = dgamma[c]; db2[c] = dbeta[c]; }
    memcpy(dx2, t.w, n * sizeof(float));
    instance_norm_backward(dx2, dg2, db2, dx2, t.y, t.x, t.mean, t.rstd, t.gamma, t.C, t.N, relu);
    CHECK(memcmp(dx2, dx, n * sizeof(float)) == 0, "instance norm backward in place (relu=%d)", relu);
    for (int c = 0; c < t.C; c++)
        CHECK(fabsf(dg2[c] - 2 * dgamma[c]) <= 1e-6f * fabsf(dgamma[c]) &&
              fabsf(db2[c] - 2 * dbeta[c]) <= 1e-6f * fabsf(dbeta[c]),
              "dgamma/dbeta accumulate (channel %d)", c);
    if (!relu) { /* out is not needed without the ReLU */
        instance_norm_backward(dx2, dg2, db2, t.w, NULL, t.x, t.mean, t.rstd, t.gamma, t.C, t.N, 0);
        CHECK(memcmp(dx2, dx, n * sizeof(float)) == 0, "instance norm backward with out = NULL");
        instance_norm_backward_ref(dx2, dg2, db2, t.w, NULL, t.x, t.mean, t.rstd, t.gamma, t.C, t.N, 0);
        CHECK(rel_l2(dx2, dx, n) < 1e-5, "instance norm backward ref with out = NULL");
    }
    free(dx2); free(dg2); free(db2);
    free(t.x); free(t.w); free(t.y); free(t.pre); free(t.pre0);
    free(t.gamma); free(t.beta); free(t.mean); free(t.rstd);
    free(dx); free(dgamma); free(dbeta);
}

/* Fast against reference on awkward data: a large offset (1000 + noise), a constant
 * channel (variance 0: rstd = 1/sqrt(eps), output beta), N not a multiple of 8. */
static void test_instance_norm_fast_vs_ref(void) {
    int C = 6, N = 33 * 17;
    size_t n = (size_t)C * N;
    float *x = falloc(n), *w = falloc(n), *y1 = falloc(n), *y2 = falloc(n);
    float *dx1 = falloc(n), *dx2 = falloc(n), gamma[6], beta[6], m1[6], m2[6], r1[6], r2[6];
    float dg1[6], dg2[6], db1[6], db2[6];
    fill(x, n, 1, 0);
    for (int i = 0; i < N; i++) x[N + i] += 1000.0f;
    for (int i = 0; i < N; i++) x[2 * N + i] = 3.25f;
    for (int i = 0; i < N; i++) x[3 * N + i] *= 1e-3f;
    fill(w, n, 1, 0);
    fill(gamma, C, 1, 0);
    fill(beta, C, 1, 0);
    for (int relu = 0; relu < 2; relu++) {
        instance_norm_forward(y1, m1, r1, x, gamma, beta, C, N, relu);
        instance_norm_forward_ref(y2, m2, r2, x, gamma, beta, C, N, relu);
        double ey = rel_l2(y1, y2, n), em = rel_l2(m1, m2, C), er = rel_l2(r1, r2, C);
        CHECK(ey < 1e-6 && em < 1e-7 && er < 1e-6,
              "instance norm forward fast vs ref (relu=%d): out %.3g mean %.3g rstd %.3g", relu, ey, em, er);
        for (int c = 0; c < C; c++) dg1[c] = dg2[c] = db1[c] = db2[c] = 1.0f;
        instance_norm_backward(dx1, dg1, db1, w, y1, x, m1, r1, gamma, C, N, relu);
        instance_norm_backward_ref(dx2, dg2, db2, w, y2, x, m2, r2, gamma, C, N, relu);
        double ed = rel_l2(dx1, dx2, n), eg = rel_l2(dg1, dg2, C), eb = rel_l2(db1, db2, C);
        CHECK(ed < 1e-5 && eg < 1e-6 && eb < 1e-6,
              "instance norm backward fast vs ref (relu=%d): dx %.3g dgamma %.3g dbeta %.3g", relu, ed, eg, eb);
        printf("  instance_norm fast vs ref (relu=%d): out %.1e, dx %.1e, dgamma %.1e\n", relu, ey, ed, eg);
    }
    /* the constant channel: output beta (before the relu), no gradient to its input */
    instance_norm_forward(y1, m1, r1, x, gamma, beta, C, N, 0);
    CHECK(y1[2 * N] == beta[2] && y1[3 * N - 1] == beta[2], "constant channel gives beta");
    /* ... and its gradient is gamma * rstd * (w - mean(w)): only the mean's path is left */
    instance_norm_backward(dx1, dg1, db1, w, y1, x, m1, r1, gamma, C, N, 0);
    double mw = 0, worst = 0;
    for (int i = 0; i < N; i++) mw += w[2 * N + i];
    mw /= N;
    for (int i = 0; i < N; i++) {
        double want = (double)gamma[2] * r1[2] * (w[2 * N + i] - mw);
        worst = fmax(worst, fabs(dx1[2 * N + i] - want) / fmax(fabs(want), 1.0));
    }
    CHECK(worst < 1e-5, "constant channel's gradient (rel %.3g)", worst);
    free(x); free(w); free(y1); free(y2); free(dx1); free(dx2);
}

/* The output of each channel has mean beta and standard deviation |gamma| (up to the eps
 * in the variance, negligible for unit-scale data). */
static void test_instance_norm_stats(void) {
    int C = 4, N = 64 * 48;
    size_t n = (size_t)C * N;
    float *x = falloc(n), *y = falloc(n), mean[4], rstd[4];
    const float gamma[4] = {1.0f, 2.5f, -0.5f, 0.1f}, beta[4] = {0.0f, -1.0f, 3.0f, 0.25f};
    for (int c = 0; c < C; c++) fill(x + (size_t)c * N, N, 1.0f + 2 * c, 10.0f * c - 5.0f);
    instance_norm_forward(y, mean, rstd, x, gamma, beta, C, N, 0);
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < N; i++) s += y[(size_t)c * N + i];
        double m = s / N;
        for (int i = 0; i < N; i++) s2 += (y[(size_t)c * N + i] - m) * (y[(size_t)c * N + i] - m);
        double sd = sqrt(s2 / N);
        CHECK(fabs(m - beta[c]) < 1e-5 * (1 + fabsf(gamma[c])), "channel %d: mean %.7g, beta %g", c, m, beta[c]);
        CHECK(fabs(sd - fabsf(gamma[c])) < 1e-4 * fabsf(gamma[c]), "channel %d: std %.7g, |gamma| %g", c, sd, fabsf(gamma[c]));
    }
    free(x); free(y);
}

/* Two runs give the same bits, and so do one thread and two (each channel is summed by
 * one thread in a fixed order). */
static void test_determinism(void) {
    int C = 16, H = 40, W = 36, N = H * W, p = 4;
    size_t n = (size_t)C * N, np = (size_t)C * (H + 2 * p) * (W + 2 * p);
    float *x = falloc(n), *w = falloc(n), gamma[16], beta[16];
    fill(x, n, 2, 0.5f);
    fill(w, n, 1, 0);
    fill(gamma, C, 1, 0);
    fill(beta, C, 1, 0);
    float *res[3][4]; /* run: out, dx, dgamma, padded-backward */
    int threads[3] = {2, 2, 1};
    int saved = omp_get_max_threads();
    for (int r = 0; r < 3; r++) {
        omp_set_num_threads(threads[r]);
        float *y = falloc(n), *dx = falloc(n), *dg = calloc(2 * C, sizeof(float)), *pd = falloc(n);
        float *pad = falloc(np), mean[16], rstd[16];
        instance_norm_forward(y, mean, rstd, x, gamma, beta, C, N, 1);
        instance_norm_backward(dx, dg, dg + C, w, y, x, mean, rstd, gamma, C, N, 1);
        reflect_pad_forward(pad, dx, C, H, W, p);
        reflect_pad_backward(pd, pad, C, H, W, p);
        res[r][0] = y; res[r][1] = dx; res[r][2] = dg; res[r][3] = pd;
        free(pad);
    }
    omp_set_num_threads(saved);
    size_t sizes[4] = {n, n, 2 * (size_t)C, n};
    for (int k = 0; k < 4; k++) {
        CHECK(memcmp(res[0][k], res[1][k], sizes[k] * sizeof(float)) == 0, "two runs agree (output %d)", k);
        CHECK(memcmp(res[0][k], res[2][k], sizes[k] * sizeof(float)) == 0, "1 and 2 threads agree (output %d)", k);
    }
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 4; k++) free(res[r][k]);
    free(x); free(w);
}

/* ---- upsampling ------------------------------------------------------------------------------- */

typedef struct { int C, H, W; float *x, *y, *w; } up_ctx;

static double up_loss(void *ctx, int *kinked) {
    up_ctx *t = ctx;
    upsample2x_forward(t->y, t->x, t->C, t->H, t->W);
    return dotd(t->w, t->y, (size_t)t->C * 4 * t->H * t->W);
}

static void test_upsample(void) {
    float x[6] = {1, 2, 3, 4, 5, 6}, y[24]; /* (1,2,3) -> (1,4,6) */
    const float want[24] = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6};
    upsample2x_forward(y, x, 1, 2, 3);
    CHECK(memcmp(y, want, sizeof want) == 0, "upsample 2x3 matches nearest neighbour");
    up_ctx t = {3, 5, 7, 0, 0, 0};
    size_t n = (size_t)t.C * t.H * t.W;
    t.x = falloc(n); t.y = falloc(4 * n); t.w = falloc(4 * n);
    float *dx = falloc(n);
    fill(t.x, n, 1, 0);
    fill(t.w, 4 * n, 1, 0);
    upsample2x_backward(dx, t.w, t.C, t.H, t.W);
    fd_check("upsample2x 3x5x7", up_loss, &t, t.x, dx, (int)n, 1e-2f, 1e-3, 1e-2);
    free(t.x); free(t.y); free(t.w); free(dx);
}

/* ---- output layer ------------------------------------------------------------------------------ */

typedef struct { size_t n; float *x, *y, *w; } sig_ctx;

static double sig_loss(void *ctx, int *kinked) {
    sig_ctx *t = ctx;
    sigmoid255_forward(t->y, t->x, t->n);
    return dotd(t->w, t->y, t->n);
}

static void test_sigmoid255(void) {
    sig_ctx t = {200, 0, 0, 0};
    t.x = falloc(t.n); t.y = falloc(t.n); t.w = falloc(t.n);
    float *dx = falloc(t.n);
    fill(t.x, t.n, 6, 0);
    fill(t.w, t.n, 1, 0);
    sigmoid255_forward(t.y, t.x, t.n);
    sigmoid255_backward(dx, t.w, t.y, t.n);
    /* elementwise, so only x_i's own output changes, but it is ~100 and rounds to ~4e-6,
     * which a step of h turns into ~4e-6/h of error: a floor of 1 on the denominator (the
     * gradients reach 64) and a step balancing that against the curvature (~5 h^2) */
    fd_check("sigmoid255", sig_loss, &t, t.x, dx, (int)t.n, 1e-2f, 3e-3, 1.0);
    sigmoid255_forward(t.y, t.x, t.n); /* fd_check left the last output perturbed */
    float *dx2 = falloc(t.n);
    memcpy(dx2, t.w, t.n * sizeof(float));
    sigmoid255_backward(dx2, dx2, t.y, t.n);
    CHECK(memcmp(dx, dx2, t.n * sizeof(float)) == 0, "sigmoid255 backward in place");
    float e[5] = {-1000.0f, -100.0f, 0.0f, 100.0f, 1000.0f}, ye[5];
    sigmoid255_forward(ye, e, 5);
    CHECK(ye[0] == 0.0f && ye[1] == 0.0f && ye[2] == 127.5f && ye[3] == 255.0f && ye[4] == 255.0f,
          "sigmoid255 limits: %g %g %g %g %g", ye[0], ye[1], ye[2], ye[3], ye[4]);
    free(t.x); free(t.y); free(t.w); free(dx); free(dx2);
}

static void test_add(void) {
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, 50}, y[5];
    add_forward(y, a, b, 5);
    CHECK(y[0] == 11 && y[4] == 55, "add");
    add_forward(a, a, b, 5);
    CHECK(memcmp(a, y, sizeof y) == 0, "add in place");
}

/* the fused upsample + pad equals the two ops one after the other, bit for bit */
static void test_upsample_pad_fused(void) {
    int shapes[][4] = {{3, 5, 7, 1}, {2, 4, 4, 4}, {1, 3, 2, 1}, {4, 9, 6, 3}};
    for (int k = 0; k < 4; k++) {
        int C = shapes[k][0], H = shapes[k][1], W = shapes[k][2], p = shapes[k][3];
        size_t n = (size_t)C * H * W, nu = 4 * n, np = (size_t)C * (2 * H + 2 * p) * (2 * W + 2 * p);
        float *x = malloc(n * 4), *u = malloc(nu * 4), *a = malloc(np * 4), *b = malloc(np * 4);
        unsigned long long st = 99 + k;
        for (size_t i = 0; i < n; i++) x[i] = test_rand(&st);
        upsample2x_forward(u, x, C, H, W);
        reflect_pad_forward(a, u, C, 2 * H, 2 * W, p);
        upsample2x_reflect_pad_forward(b, x, C, H, W, p);
        CHECK(memcmp(a, b, np * 4) == 0, "fused upsample+pad %dx%dx%d p=%d", C, H, W, p);
        free(x); free(u); free(a); free(b);
    }
}

#ifdef NST_X86
void instance_norm_forward_portable(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                                    const float *beta, int C, int N, int relu);
void instance_norm_backward_portable(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *out,
                                     const float *inp, const float *mean, const float *rstd, const float *gamma, int C,
                                     int N, int relu);
/* The AVX-512 build of instance normalisation gives the portable build's bits. */
static void test_instance_norm_builds_agree(void) {
    if (cpu_best_tier() != CPU_AVX512) {
        printf("note: no AVX-512: one build of instance normalisation only\n");
        return;
    }
    const int C = 5, N = 1000 + 37;
    unsigned long long st = 12;
    size_t n = (size_t)C * N;
    float *x = malloc(n * 4), *g = malloc(n * 4), *y1 = malloc(n * 4), *y2 = malloc(n * 4), *d1 = malloc(n * 4),
          *d2 = malloc(n * 4), gamma[5], beta[5], m1[5], m2[5], r1[5], r2[5];
    float dg1[5] = {0}, dg2[5] = {0}, db1[5] = {0}, db2[5] = {0};
    for (size_t i = 0; i < n; i++) {
        x[i] = 3.0f + test_rand(&st);
        g[i] = test_rand(&st);
    }
    for (int c = 0; c < C; c++) {
        gamma[c] = 1.0f + 0.1f * c;
        beta[c] = 0.05f * c;
    }
    for (int relu = 0; relu < 2; relu++) {
        instance_norm_forward(y1, m1, r1, x, gamma, beta, C, N, relu);
        instance_norm_forward_portable(y2, m2, r2, x, gamma, beta, C, N, relu);
        CHECK(!memcmp(y1, y2, n * 4) && !memcmp(m1, m2, sizeof m1) && !memcmp(r1, r2, sizeof r1),
              "instance norm forward relu=%d: AVX-512 and portable builds agree bit for bit", relu);
        instance_norm_backward(d1, dg1, db1, g, y1, x, m1, r1, gamma, C, N, relu);
        instance_norm_backward_portable(d2, dg2, db2, g, y2, x, m2, r2, gamma, C, N, relu);
        CHECK(!memcmp(d1, d2, n * 4) && !memcmp(dg1, dg2, sizeof dg1) && !memcmp(db1, db2, sizeof db1),
              "instance norm backward relu=%d: the builds agree bit for bit", relu);
    }
    free(x); free(g); free(y1); free(y2); free(d1); free(d2);
}
#endif

int main(void) {
#ifdef NST_X86
    test_instance_norm_builds_agree();
#endif
    test_upsample_pad_fused();
    test_reflect_pad();
    test_instance_norm_grad(0);
    test_instance_norm_grad(1);
    test_instance_norm_fast_vs_ref();
    test_instance_norm_stats();
    test_determinism();
    test_upsample();
    test_sigmoid255();
    test_add();
    TEST_DONE();
}
