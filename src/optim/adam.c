/* adam.c - Adam on a flat vector, in the order PyTorch 1.13 computes it so that the
 * oracle's five steps are reproduced: scalars in double, vectors in float. */
#include <math.h>
#include <stdlib.h>

#include "optim/optim.h"
#include "util/util.h"

nst_status adam_build(adam_state *s, size_t n, float lr, nst_error *err) {
    s->n = n;
    s->lr = lr;
    s->beta1 = 0.9f;
    s->beta2 = 0.999f;
    s->eps = 1e-8f;
    s->t = 0;
    s->m = nst_calloc_array(2 * n, sizeof(float));
    if (!s->m) return nst_fail(err, NST_ERR_NOMEM, "out of memory for the Adam state");
    s->v = s->m + n;
    return NST_OK;
}

void adam_update(adam_state *s, float *x, const float *grad) {
    s->t++;
    double bc1 = 1.0 - pow(0.9, s->t), bc2 = 1.0 - pow(0.999, s->t);
    float step = (float)(s->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float b1 = s->beta1, b2 = s->beta2, eps = s->eps;
    float *m = s->m, *v = s->v;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < s->n; i++) {
        float g = grad[i];
        m[i] = m[i] * b1 + g * (1.0f - b1);
        v[i] = v[i] * b2 + g * g * (1.0f - b2);
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        x[i] += -step * (m[i] / denom);
    }
}

void adam_free(adam_state *s) {
    free(s->m);
    s->m = s->v = NULL;
}
