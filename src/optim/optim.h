/* optim.h - the optimizers, written once for every device.
 *
 * An optimizer works on numbered vectors of n floats (the image x, its gradient g, and
 * its own state) and numbered double scalars, both held by a device: the CPU (optim_host
 * below, host arrays) or a GPU (its memory). It asks the device for the vector
 * operations it needs through optim_device_ops, queued in order; it sees a number only
 * through read(), which waits for the queued work. So a GPU keeps its vectors, and the
 * scalars of the two-loop recursion, in its own memory: L-BFGS reads back once to learn
 * the direction's slope, then once per line-search trial (the loss and the new pair's
 * products together).
 *
 * Life cycle: *_build (state once), *_start / *_step many times, *_free. */
#ifndef NST_OPTIM_H
#define NST_OPTIM_H

#include <stddef.h>
#include "nst.h"
#include "optim/adam_rule.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The vectors every optimizer shares; its own come after them. */
enum { OPTIM_X = 0, OPTIM_G = 1, OPTIM_OWN = 2 };

typedef struct optim_device optim_device;

/* A device's operations. v, a, b, d, ... are vector numbers; k_* scalar numbers;
 * S[k] is scalar k. Every call queues work and returns a status (a GPU's launch error). */
typedef struct {
    nst_status (*copy)(optim_device *dev, int dst, int src, nst_error *err);
    /* out = a + t * b */
    nst_status (*axpy_to)(optim_device *dev, int out, int a, float t, int b, nst_error *err);
    /* out = a - b */
    nst_status (*sub)(optim_device *dev, int out, int a, int b, nst_error *err);
    /* S[k] = sum a*b, in double */
    nst_status (*dot)(optim_device *dev, int k, int a, int b, nst_error *err);
    /* S[k] = max |a| */
    nst_status (*abs_max)(optim_device *dev, int k, int a, nst_error *err);
    /* d = -g, divided by S[k_div] where k_div >= 0 and S[k_div] > 0 */
    nst_status (*neg)(optim_device *dev, int d, int g, int k_div, nst_error *err);
    /* S[k_out] = S[k_a] * S[k_b]; then d += (float)(-S[k_out]) * y */
    nst_status (*sub_scaled)(optim_device *dev, int d, int y, int k_out, int k_a, int k_b, nst_error *err);
    /* d += (float)(S[k_c] - S[k_a] * S[k_b]) * s */
    nst_status (*add_scaled)(optim_device *dev, int d, int s, int k_c, int k_a, int k_b, nst_error *err);
    /* d = (float)(d * (S[k_num] / S[k_den])) */
    nst_status (*scale_ratio)(optim_device *dev, int d, int k_num, int k_den, nst_error *err);
    /* S[k_out] = 1 / S[k_in] */
    nst_status (*reciprocal)(optim_device *dev, int k_out, int k_in, nst_error *err);
    /* adam_rule on every element of x with gradient g and moments m, v */
    nst_status (*adam)(optim_device *dev, int x, int g, int m, int v, adam_coeffs c, nst_error *err);
    /* The objective: queues f(x) and its gradient into g. */
    nst_status (*evaluate)(optim_device *dev, int x, int g, nst_error *err);
    /* Waits for the queued work; *f = the last evaluation's value (if f is not NULL) and
     * vals[i] = S[k[i]] for i < nk. */
    nst_status (*read)(optim_device *dev, double *f, const int *k, double *vals, int nk, nst_error *err);
} optim_device_ops;

/* A device: its operations, first member of the device's own struct. */
struct optim_device {
    const optim_device_ops *ops;
};

/* ---- Adam (Kingma & Ba), with PyTorch's exact update order ---- */
typedef struct {
    float lr;
    int t;      /* steps taken */
    /* on host vectors (adam_update): */
    size_t n;
    float *m, *v; /* (n) first and second moments, one allocation */
} adam_state;

/* Adam's vectors on a device: the moments */
enum { ADAM_M = OPTIM_OWN, ADAM_V, ADAM_VECTORS };
#define ADAM_SCALARS 0

/* The coefficients of the next step (t is incremented). */
adam_coeffs adam_next(adam_state *s);
/* Host vectors: allocates m and v (n); adam_update: x (n) one step down grad (n). */
nst_status adam_build(adam_state *s, size_t n, float lr, nst_error *err);
void adam_update(adam_state *s, float *x, const float *grad);
void adam_free(adam_state *s);
/* On a device: evaluates at x (*f, the loss before the update), then updates x. */
nst_status adam_step(adam_state *s, optim_device *dev, double *f, nst_error *err);

/* ---- L-BFGS: two-loop recursion with a backtracking (Armijo) line search ---- */
typedef struct {
    int history;        /* pairs kept */
    int count, head;    /* pairs stored; index of the newest */
    int evals;          /* objective evaluations so far */
} lbfgs_state;

/* Its vectors on a device: direction, trial point and gradient, then history pairs s, y. */
enum { LBFGS_D = OPTIM_OWN, LBFGS_XT, LBFGS_GT, LBFGS_PAIRS };
#define LBFGS_S(h, i) (LBFGS_PAIRS + (i))
#define LBFGS_Y(h, i) (LBFGS_PAIRS + (h) + (i))
#define LBFGS_VECTORS(h) (LBFGS_PAIRS + 2 * (h))
/* Its scalars: g'd, s'y, y'y, max|g|, two dot products, then rho and alpha per pair. */
enum { LBFGS_GD, LBFGS_SY, LBFGS_YY, LBFGS_GMAX, LBFGS_T1, LBFGS_T2, LBFGS_RHO };
#define LBFGS_ALPHA(h, i) (LBFGS_RHO + (h) + (i))
#define LBFGS_SCALARS(h) (LBFGS_RHO + 2 * (h))

/* history < 1 counts as 1. */
void lbfgs_init(lbfgs_state *s, int history);
/* Evaluates the starting point: *f and OPTIM_G. */
nst_status lbfgs_start(lbfgs_state *s, optim_device *dev, double *f, nst_error *err);
/* One iteration from x, *f and g (after lbfgs_start or a step). On return they hold the
 * new point; *moved = 1 if it moved, 0 if no step decreasing f was found (x unchanged;
 * the history is reset). */
nst_status lbfgs_step(lbfgs_state *s, optim_device *dev, double *f, int *moved, nst_error *err);

/* ---- optim_host: a device of host arrays, for the CPU ---- */

/* An objective on host vectors: *f = f(x) and df/dx into grad (n). */
typedef nst_status (*objective_fn)(void *ctx, const float *x, float *grad, double *f, nst_error *err);

typedef struct {
    optim_device base;
    size_t n;
    int n_vectors;
    float **vec;     /* (n_vectors) vectors of n floats */
    double *scalar;  /* (n_scalars) */
    float *mem;      /* the vectors it allocated (all but those given) */
    double f;        /* the last evaluation's value */
    objective_fn fn;
    void *ctx;
} optim_host;

/* n_vectors vectors of n floats (zeroed) and n_scalars scalars; x and g (may be NULL:
 * then allocated too) are the caller's OPTIM_X and OPTIM_G. */
nst_status optim_host_build(optim_host *h, size_t n, int n_vectors, int n_scalars, float *x, float *g,
                            objective_fn fn, void *ctx, nst_error *err);
void optim_host_free(optim_host *h);

#ifdef __cplusplus
}
#endif
#endif
