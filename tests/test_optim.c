/* test_optim.c - Adam against a hand computation; L-BFGS on an ill-conditioned quadratic
 * and the Rosenbrock function: it converges and never increases f. */
#include <string.h>

#include "optim/optim.h"
#include "test_util.h"

static void test_adam(void) {
    adam_state s;
    nst_error err;
    float x[2] = {1.0f, -2.0f}, g[2] = {0.5f, -3.0f};
    CHECK(adam_build(&s, 2, 0.1f, &err) == NST_OK, "%s", err.msg);
    /* two steps by hand, in double */
    double m[2] = {0}, v[2] = {0}, xe[2] = {1.0, -2.0};
    for (int t = 1; t <= 2; t++) {
        adam_update(&s, x, g);
        for (int i = 0; i < 2; i++) {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * (double)g[i] * g[i];
            double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
            xe[i] -= 0.1 * mh / (sqrt(vh) + 1e-8);
        }
    }
    for (int i = 0; i < 2; i++) CHECK(fabs(x[i] - xe[i]) < 1e-5, "adam x[%d] %.8f want %.8f", i, x[i], xe[i]);
    adam_free(&s);
}

/* f(x) = sum_i c_i (x_i - 1)^2, condition number 1e4 */
static nst_status quadratic(void *ctx, const float *x, float *g, double *fx, nst_error *err) {
    int n = *(int *)ctx;
    double f = 0;
    for (int i = 0; i < n; i++) {
        double c = pow(10.0, 4.0 * i / (n - 1));
        f += c * (x[i] - 1.0) * (x[i] - 1.0);
        g[i] = (float)(2 * c * (x[i] - 1.0));
    }
    *fx = f;
    return NST_OK;
}

static nst_status rosenbrock(void *ctx, const float *x, float *g, double *fx, nst_error *err) {
    int n = *(int *)ctx;
    double f = 0;
    for (int i = 0; i < n; i++) g[i] = 0;
    for (int i = 0; i + 1 < n; i++) {
        double a = x[i + 1] - (double)x[i] * x[i], b = 1.0 - x[i];
        f += 100 * a * a + b * b;
        g[i] += (float)(-400 * a * x[i] - 2 * b);
        g[i + 1] += (float)(200 * a);
    }
    *fx = f;
    return NST_OK;
}

/* L-BFGS on host vectors (optim_host): converges and never increases f. */
static void run_lbfgs(const char *name, objective_fn fn, int n, int iters, double tol) {
    lbfgs_state s;
    optim_host h;
    nst_error err;
    lbfgs_init(&s, 10);
    CHECK(optim_host_build(&h, n, LBFGS_VECTORS(10), LBFGS_SCALARS(10), NULL, NULL, fn, &n, &err) == NST_OK, "%s",
          err.msg);
    float *x = h.vec[OPTIM_X];
    for (int i = 0; i < n; i++) x[i] = (i % 2) ? 1.5f : -1.2f;
    double f, f_prev;
    CHECK(lbfgs_start(&s, &h.base, &f, &err) == NST_OK, "%s", err.msg);
    f_prev = f;
    int monotone = 1, it, moved = 1;
    for (it = 0; it < iters; it++) {
        CHECK(lbfgs_step(&s, &h.base, &f, &moved, &err) == NST_OK, "%s", err.msg);
        if (!moved) break;
        if (f > f_prev) monotone = 0;
        f_prev = f;
    }
    CHECK(monotone, "%s: f increased", name);
    CHECK(f < tol, "%s: f = %.3g after %d iterations", name, f, it);
    printf("lbfgs %-10s f = %.3g after %d iterations, %d evaluations\n", name, f, it, s.evals);
    optim_host_free(&h);
}

/* Adam through a device (adam_step) takes the same steps as on host vectors. */
static nst_status bowl(void *ctx, const float *x, float *g, double *fx, nst_error *err) {
    int n = *(int *)ctx;
    double f = 0;
    for (int i = 0; i < n; i++) {
        f += (i + 1.0) * x[i] * x[i];
        g[i] = (float)(2.0 * (i + 1.0) * x[i]);
    }
    *fx = f;
    return NST_OK;
}

static void test_adam_device(void) {
    int n = 7;
    nst_error err;
    optim_host h;
    CHECK(optim_host_build(&h, n, ADAM_VECTORS, ADAM_SCALARS, NULL, NULL, bowl, &n, &err) == NST_OK, "%s", err.msg);
    adam_state dev = {.lr = 0.05f}, host;
    CHECK(adam_build(&host, n, 0.05f, &err) == NST_OK, "%s", err.msg);
    float x[7], g[7];
    for (int i = 0; i < n; i++) x[i] = h.vec[OPTIM_X][i] = 1.0f - 0.3f * i;
    double f_first = 0, f = 0;
    for (int t = 0; t < 20; t++) {
        CHECK(adam_step(&dev, &h.base, &f, &err) == NST_OK, "%s", err.msg);
        if (t == 0) f_first = f;
        double fh;
        bowl(&n, x, g, &fh, &err);
        CHECK(fh == f, "step %d: device f %.17g, host f %.17g", t, f, fh);
        adam_update(&host, x, g);
    }
    CHECK(memcmp(x, h.vec[OPTIM_X], sizeof x) == 0, "adam on a device and on host vectors differ");
    CHECK(f < f_first, "adam did not descend: %g -> %g", f_first, f);
    adam_free(&host);
    optim_host_free(&h);
}

int main(void) {
    test_adam();
    test_adam_device();
    run_lbfgs("quadratic", quadratic, 50, 400, 1e-3);
    run_lbfgs("rosenbrock", rosenbrock, 10, 500, 1e-4);
    TEST_DONE();
}
