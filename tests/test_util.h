/* test_util.h - a minimal test harness: CHECK macros, a pass/fail count, helpers to
 * read the oracle's raw float32 files. Each test program ends with TEST_DONE(). */
#ifndef NST_TEST_UTIL_H
#define NST_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_ = 0, test_failed_ = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            test_passed_++;                                                \
        } else {                                                           \
            test_failed_++;                                                \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

#define TEST_DONE()                                                         \
    do {                                                                    \
        printf("%d passed, %d failed\n", test_passed_, test_failed_);       \
        return test_failed_ ? 1 : 0;                                        \
    } while (0)

/* Relative L2 error |a-b| / |b| in double. */
static inline double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Reads exactly n float32 values from path; returns a malloc'd array or NULL. */
static inline float *read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return NULL; }
    float *buf = malloc(n * sizeof(float));
    size_t got = buf ? fread(buf, sizeof(float), n, f) : 0;
    fclose(f);
    if (got != n) { fprintf(stderr, "%s: read %zu of %zu floats\n", path, got, n); free(buf); return NULL; }
    return buf;
}

/* Deterministic uniform random numbers in [-1, 1) for test data. */
static inline float test_rand(unsigned long long *state) {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*state >> 40) * (1.0 / (1ULL << 24))) * 2.0f - 1.0f;
}

#endif
