/* adam.c - Adam: the step's coefficients, and the update on host vectors or a device. */
#include <math.h>
#include <stdlib.h>

#include "optim/optim.h"
#include "util/util.h"

#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.999f
#define ADAM_EPS 1e-8f

adam_coeffs adam_next(adam_state *s) {
    s->t++;
    double bc1 = 1.0 - pow(0.9, s->t), bc2 = 1.0 - pow(0.999, s->t);
    adam_coeffs c = {(float)(s->lr / bc1), (float)sqrt(bc2), ADAM_BETA1, ADAM_BETA2, ADAM_EPS};
    return c;
}

nst_status adam_build(adam_state *s, size_t n, float lr, nst_error *err) {
    s->n = n;
    s->lr = lr;
    s->t = 0;
    s->m = nst_calloc_array(2 * n, sizeof(float));
    if (!s->m) return nst_fail(err, NST_ERR_NOMEM, "out of memory for the Adam state");
    s->v = s->m + n;
    return NST_OK;
}

void adam_update(adam_state *s, float *x, const float *grad) {
    adam_coeffs c = adam_next(s);
    float *m = s->m, *v = s->v;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < s->n; i++) adam_rule(&x[i], grad[i], &m[i], &v[i], c);
}

void adam_free(adam_state *s) {
    free(s->m);
    s->m = s->v = NULL;
}

nst_status adam_step(adam_state *s, optim_device *dev, double *f, nst_error *err) {
    nst_status st = dev->ops->evaluate(dev, OPTIM_X, OPTIM_G, err);
    if (!st) st = dev->ops->adam(dev, OPTIM_X, OPTIM_G, ADAM_M, ADAM_V, adam_next(s), err);
    if (!st) st = dev->ops->read(dev, f, NULL, NULL, 0, err);
    return st;
}
