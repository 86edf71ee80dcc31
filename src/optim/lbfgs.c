/* lbfgs.c - limited-memory BFGS (Nocedal & Wright, algorithm 7.4) with a backtracking
 * line search that enforces sufficient decrease (Armijo), so it cannot diverge: every
 * accepted step lowers f. Pairs that fail the curvature condition are skipped. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"
#include "tensor/ops.h"
#include "util/util.h"

#define ARMIJO_C1 1e-4
#define MAX_BACKTRACKS 12

/* y += a * x */
static void axpy(float *y, double a, const float *x, size_t n) {
    float af = (float)a;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += af * x[i];
}

nst_status lbfgs_build(lbfgs_state *s, size_t n, int history, nst_error *err) {
    memset(s, 0, sizeof *s);
    if (history < 1) history = 1;
    s->n = n;
    s->history = history;
    s->s = nst_alloc_array((size_t)(2 * history + 3), n * sizeof(float));
    s->rho = nst_alloc_array((size_t)2 * history, sizeof(double));
    if (!s->s || !s->rho) {
        lbfgs_free(s);
        return nst_fail(err, NST_ERR_NOMEM, "out of memory for the L-BFGS state (history %d)", history);
    }
    s->y = s->s + (size_t)history * n;
    s->d = s->y + (size_t)history * n;
    s->x_try = s->d + n;
    s->g_try = s->x_try + n;
    s->alpha = s->rho + history;
    return NST_OK;
}

/* d = -H g by the two-loop recursion; H0 = gamma I with gamma = s'y / y'y of the newest
 * pair. Without history, the first step moves the largest pixel by one unit. */
static void direction(lbfgs_state *s, const float *g) {
    size_t n = s->n;
    float *d = s->d;
    for (size_t i = 0; i < n; i++) d[i] = -g[i];
    if (s->count == 0) {
        float gmax = 0.0f;
        for (size_t i = 0; i < n; i++) gmax = fmaxf(gmax, fabsf(g[i]));
        if (gmax > 0.0f) for (size_t i = 0; i < n; i++) d[i] /= gmax;
        return;
    }
    int idx = s->head;
    for (int k = 0; k < s->count; k++) { /* newest to oldest */
        float *sk = s->s + (size_t)idx * n, *yk = s->y + (size_t)idx * n;
        s->alpha[idx] = s->rho[idx] * dot_product(sk, d, n);
        axpy(d, -s->alpha[idx], yk, n);
        idx = (idx - 1 + s->history) % s->history;
    }
    float *sn = s->s + (size_t)s->head * n, *yn = s->y + (size_t)s->head * n;
    double gamma = dot_product(sn, yn, n) / dot_product(yn, yn, n);
    for (size_t i = 0; i < n; i++) d[i] = (float)(d[i] * gamma);
    idx = (s->head - s->count + 1 + s->history) % s->history;
    for (int k = 0; k < s->count; k++) { /* oldest to newest */
        float *sk = s->s + (size_t)idx * n, *yk = s->y + (size_t)idx * n;
        double beta = s->rho[idx] * dot_product(yk, d, n);
        axpy(d, s->alpha[idx] - beta, sk, n);
        idx = (idx + 1) % s->history;
    }
}

int lbfgs_step(lbfgs_state *s, float *x, double *f, float *g, objective_fn fn, void *ctx) {
    size_t n = s->n;
    for (int attempt = 0; attempt < 2; attempt++) {
        direction(s, g);
        double gd = dot_product(g, s->d, n);
        if (!(gd < 0.0)) { /* not a descent direction: forget the history and retry */
            s->count = 0;
            continue;
        }
        double t = 1.0;
        for (int bt = 0; bt < MAX_BACKTRACKS; bt++) {
            float tf = (float)t;
            for (size_t i = 0; i < n; i++) s->x_try[i] = x[i] + tf * s->d[i];
            double f_try = fn(ctx, s->x_try, s->g_try);
            s->evals++;
            if (isfinite(f_try) && f_try <= *f + ARMIJO_C1 * t * gd) {
                /* accept; store the pair s = x_try - x, y = g_try - g into the ring */
                int slot = (s->head + 1) % s->history;
                float *sk = s->s + (size_t)slot * n, *yk = s->y + (size_t)slot * n;
                for (size_t i = 0; i < n; i++) {
                    sk[i] = s->x_try[i] - x[i];
                    yk[i] = s->g_try[i] - g[i];
                }
                double sy = dot_product(sk, yk, n), yy = dot_product(yk, yk, n);
                if (sy > 1e-10 * yy && yy > 0.0) { /* curvature condition, else skip the pair */
                    s->head = slot;
                    s->rho[slot] = 1.0 / sy;
                    if (s->count < s->history) s->count++;
                } else if (s->count == s->history) {
                    s->count--; /* the skipped pair overwrote the oldest one */
                }
                memcpy(x, s->x_try, n * sizeof(float));
                memcpy(g, s->g_try, n * sizeof(float));
                *f = f_try;
                return 1;
            }
            /* minimiser of the quadratic through f(0), f'(0), f(t), kept in [t/10, t/2] */
            double t_new = isfinite(f_try) ? -gd * t * t / (2.0 * (f_try - *f - gd * t)) : 0.1 * t;
            if (!(t_new > 0.1 * t)) t_new = 0.1 * t;
            if (t_new > 0.5 * t) t_new = 0.5 * t;
            t = t_new;
        }
        s->count = 0; /* the model was wrong: start again from steepest descent */
    }
    return 0;
}

void lbfgs_free(lbfgs_state *s) {
    free(s->s);
    free(s->rho);
    memset(s, 0, sizeof *s);
}
