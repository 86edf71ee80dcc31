/* lbfgs.c - limited-memory BFGS (Nocedal & Wright, algorithm 7.4) with a backtracking
 * line search that enforces sufficient decrease (Armijo), so it cannot diverge: every
 * accepted step lowers f. Pairs that fail the curvature condition are skipped.
 *
 * The vectors live on the device (optim.h); only the decisions are made here. Each trial
 * computes its pair s = x_try - x, y = g_try - g and their products before the decision,
 * so that one read serves both: the ring slot it writes is the next one, which the
 * direction has already used and which a rejected trial leaves to the next trial (or to
 * a reset of the history). */
#include <math.h>
#include <string.h>

#include "optim/optim.h"

#define ARMIJO_C1 1e-4
#define MAX_BACKTRACKS 12

#define TRY(call)                      \
    do {                               \
        nst_status st_ = (call);       \
        if (st_ != NST_OK) return st_; \
    } while (0)

void lbfgs_init(lbfgs_state *s, int history) {
    memset(s, 0, sizeof *s);
    s->history = history < 1 ? 1 : history;
}

nst_status lbfgs_start(lbfgs_state *s, optim_device *dev, double *f, nst_error *err) {
    TRY(dev->ops->evaluate(dev, OPTIM_X, OPTIM_G, err));
    s->evals++;
    return dev->ops->read(dev, f, NULL, NULL, 0, err);
}

/* d = -H g by the two-loop recursion; H0 = gamma I with gamma = s'y / y'y of the newest
 * pair. Without history, the first step moves the largest pixel by one unit. */
static nst_status direction(lbfgs_state *s, optim_device *dev, nst_error *err) {
    const optim_device_ops *op = dev->ops;
    int h = s->history;
    if (s->count == 0) {
        TRY(op->abs_max(dev, LBFGS_GMAX, OPTIM_G, err));
        return op->neg(dev, LBFGS_D, OPTIM_G, LBFGS_GMAX, err);
    }
    TRY(op->neg(dev, LBFGS_D, OPTIM_G, -1, err));
    int idx = s->head;
    for (int k = 0; k < s->count; k++) { /* newest to oldest: alpha = rho s'd; d -= alpha y */
        TRY(op->dot(dev, LBFGS_T1, LBFGS_S(h, idx), LBFGS_D, err));
        TRY(op->sub_scaled(dev, LBFGS_D, LBFGS_Y(h, idx), LBFGS_ALPHA(h, idx), LBFGS_RHO + idx, LBFGS_T1, err));
        idx = (idx - 1 + h) % h;
    }
    TRY(op->dot(dev, LBFGS_T1, LBFGS_S(h, s->head), LBFGS_Y(h, s->head), err));
    TRY(op->dot(dev, LBFGS_T2, LBFGS_Y(h, s->head), LBFGS_Y(h, s->head), err));
    TRY(op->scale_ratio(dev, LBFGS_D, LBFGS_T1, LBFGS_T2, err));
    idx = (s->head - s->count + 1 + h) % h;
    for (int k = 0; k < s->count; k++) { /* oldest to newest: beta = rho y'd; d += (alpha - beta) s */
        TRY(op->dot(dev, LBFGS_T1, LBFGS_Y(h, idx), LBFGS_D, err));
        TRY(op->add_scaled(dev, LBFGS_D, LBFGS_S(h, idx), LBFGS_ALPHA(h, idx), LBFGS_RHO + idx, LBFGS_T1, err));
        idx = (idx + 1) % h;
    }
    return NST_OK;
}

nst_status lbfgs_step(lbfgs_state *s, optim_device *dev, double *f, int *moved, nst_error *err) {
    const optim_device_ops *op = dev->ops;
    int h = s->history;
    *moved = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        TRY(direction(s, dev, err));
        /* the sign of g'd decides before any trial: read it now */
        TRY(op->dot(dev, LBFGS_GD, OPTIM_G, LBFGS_D, err));
        const int k_gd = LBFGS_GD;
        double gd;
        TRY(op->read(dev, NULL, &k_gd, &gd, 1, err));
        if (!(gd < 0.0)) { /* not a descent direction: forget the history and retry */
            s->count = 0;
            continue;
        }
        double t = 1.0;
        int slot = (s->head + 1) % h;
        for (int bt = 0; bt < MAX_BACKTRACKS; bt++) {
            TRY(op->axpy_to(dev, LBFGS_XT, OPTIM_X, (float)t, LBFGS_D, err));
            TRY(op->evaluate(dev, LBFGS_XT, LBFGS_GT, err));
            TRY(op->sub(dev, LBFGS_S(h, slot), LBFGS_XT, OPTIM_X, err));
            TRY(op->sub(dev, LBFGS_Y(h, slot), LBFGS_GT, OPTIM_G, err));
            TRY(op->dot(dev, LBFGS_SY, LBFGS_S(h, slot), LBFGS_Y(h, slot), err));
            TRY(op->dot(dev, LBFGS_YY, LBFGS_Y(h, slot), LBFGS_Y(h, slot), err));
            const int k[2] = {LBFGS_SY, LBFGS_YY};
            double f_try, prod[2];
            TRY(op->read(dev, &f_try, k, prod, 2, err));
            s->evals++;
            if (isfinite(f_try) && f_try <= *f + ARMIJO_C1 * t * gd) {
                double sy = prod[0], yy = prod[1];
                if (sy > 1e-10 * yy && yy > 0.0) { /* curvature condition, else skip the pair */
                    s->head = slot;
                    TRY(op->reciprocal(dev, LBFGS_RHO + slot, LBFGS_SY, err));
                    if (s->count < h) s->count++;
                } else if (s->count == h) {
                    s->count--; /* the skipped pair overwrote the oldest one */
                }
                TRY(op->copy(dev, OPTIM_X, LBFGS_XT, err));
                TRY(op->copy(dev, OPTIM_G, LBFGS_GT, err));
                *f = f_try;
                *moved = 1;
                return NST_OK;
            }
            /* minimiser of the quadratic through f(0), f'(0), f(t), kept in [t/10, t/2] */
            double t_new = isfinite(f_try) ? -gd * t * t / (2.0 * (f_try - *f - gd * t)) : 0.1 * t;
            if (!(t_new > 0.1 * t)) t_new = 0.1 * t;
            if (t_new > 0.5 * t) t_new = 0.5 * t;
            t = t_new;
        }
        s->count = 0; /* the model was wrong: start again from steepest descent */
    }
    return NST_OK;
}
