/* adam_rule.h - Adam's update of one element, shared by the CPU (optim/adam.c) and the
 * CUDA kernels, so that the rule is written once. The order is
 * PyTorch 1.13's, which the oracle's steps reproduce: scalars in double (adam_next),
 * vectors in float. */
#ifndef NST_ADAM_RULE_H
#define NST_ADAM_RULE_H

#include <math.h>

#ifdef __CUDACC__
#define NST_HOST_DEVICE __host__ __device__
#else
#define NST_HOST_DEVICE
#endif

typedef struct {
    float step;     /* lr / (1 - beta1^t) */
    float bc2_sqrt; /* sqrt(1 - beta2^t) */
    float beta1, beta2, eps;
} adam_coeffs;

/* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; x -= step * m / (sqrt(v) / bc2_sqrt + eps) */
static inline NST_HOST_DEVICE void adam_rule(float *x, float g, float *m, float *v, adam_coeffs c) {
    float mi = *m * c.beta1 + g * (1.0f - c.beta1);
    float vi = *v * c.beta2 + g * g * (1.0f - c.beta2);
    *m = mi;
    *v = vi;
    float denom = sqrtf(vi) / c.bc2_sqrt + c.eps;
    *x += -c.step * (mi / denom);
}

#endif
