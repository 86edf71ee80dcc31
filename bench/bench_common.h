/* bench_common.h - pieces shared by the micro-benchmarks (bench_conv.c, bench_conv2d.c). */
#ifndef NST_BENCH_COMMON_H
#define NST_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>

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
