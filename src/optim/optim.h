/* optim.h - optimizers over a flat float vector x (the image's pixels).
 * Life cycle: *_build (allocates state once), *_step / *_update, *_free. */
#ifndef NST_OPTIM_H
#define NST_OPTIM_H

#include <stddef.h>
#include "nst.h"

/* An objective: returns f(x) and writes df/dx into grad (n). */
typedef double (*objective_fn)(void *ctx, const float *x, float *grad);

/* ---- Adam (Kingma & Ba), with PyTorch's exact update order ---- */
typedef struct {
    size_t n;
    float lr, beta1, beta2, eps;
    int t;          /* steps taken */
    float *m, *v;   /* (n) first and second moments, one allocation */
} adam_state;

nst_status adam_build(adam_state *s, size_t n, float lr, nst_error *err);
/* x -= lr * mhat / (sqrt(vhat) + eps); x and grad are (n). */
void adam_update(adam_state *s, float *x, const float *grad);
void adam_free(adam_state *s);

/* ---- L-BFGS: two-loop recursion with a backtracking (Armijo) line search ---- */
typedef struct {
    size_t n;
    int history;        /* pairs kept */
    int count, head;    /* pairs stored; index of the newest */
    float *s, *y;       /* (history, n) steps and gradient changes */
    double *rho, *alpha;/* (history) */
    float *d;           /* (n) search direction */
    float *x_try, *g_try; /* (n) the line search's trial point */
    int evals;          /* objective evaluations so far */
} lbfgs_state;

nst_status lbfgs_build(lbfgs_state *s, size_t n, int history, nst_error *err);
/* One iteration from (x, *f, g), which must hold a point and its value and gradient
 * (evaluate once before the first step). On return they hold the new point. Returns 1 if
 * it moved, 0 if no step decreasing f was found (x unchanged; the history is reset). */
int lbfgs_step(lbfgs_state *s, float *x, double *f, float *g, objective_fn fn, void *ctx);
void lbfgs_free(lbfgs_state *s);

#endif
