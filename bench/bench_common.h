/* bench_common.h - pieces shared by the benchmarks (bench_conv.c, bench_conv2d.c,
 * bench_fast.c, bench_fast_cuda.c). */
#ifndef NST_BENCH_COMMON_H
#define NST_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "nst.h"
#include "util/util.h"

/* Exits with "PROG: the error" unless s is NST_OK. */
static inline void bench_check(const char *prog, nst_status s, const nst_error *err) {
    if (s == NST_OK) return;
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    exit(1);
}

/* n values uniform in [lo, hi) from rng. */
static inline void fill_uniform(float *x, size_t n, float lo, float hi, nst_rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)nst_rng_uniform(rng);
}

/* n floats in [-0.5, 0.5) from a linear congruential generator (state *st), so that every
 * run times the same data; exits on out of memory. */
static inline float *rand_array(size_t n, unsigned *st) {
    float *a = malloc(n * sizeof(float));
    if (!a) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) {
        *st = *st * 1664525u + 1013904223u;
        a[i] = (float)(*st >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
    return a;
}

#endif
