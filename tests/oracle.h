/* oracle.h - the PyTorch oracle for the tests: shared/oracle/gatys64 holds a 64x64
 * transfer computed by PyTorch on the same weights (index.json describes its arrays and
 * losses). Where the shared data is, the index, the float32 arrays, and the
 * preprocessed inputs back as images. For test programs (static functions, one index). */
#ifndef NST_TEST_ORACLE_H
#define NST_TEST_ORACLE_H

#include <cjson/cJSON.h>

#include "nst.h"
#include "test_util.h"

/* The shared data folder: $NST_SHARED_DIR if set, else the one the build was configured
 * with (CMake's NST_SHARED_DIR). */
static inline const char *shared_dir(void) {
    const char *env = getenv("NST_SHARED_DIR");
    return env && env[0] ? env : NST_SHARED_DIR;
}

/* buf = shared_dir()/rel; returns buf. */
static inline const char *shared_path(char *buf, size_t len, const char *rel) {
    snprintf(buf, len, "%s/%s", shared_dir(), rel);
    return buf;
}

/* buf = the oracle's file `name` (e.g. "content_64.png"); returns buf. */
static inline const char *oracle_file(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/oracle/gatys64/%s", shared_dir(), name);
    return buf;
}

static cJSON *oracle_index;

/* Reads index.json once; exits with a message if it cannot. */
static inline void oracle_load_index(void) {
    char path[4200];
    oracle_file(path, sizeof path, "index.json");
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(1); }
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    oracle_index = cJSON_Parse(text);
    if (!oracle_index) { fprintf(stderr, "%s does not parse\n", path); exit(1); }
}

static inline void oracle_free_index(void) {
    cJSON_Delete(oracle_index);
    oracle_index = NULL;
}

/* The oracle array `name` (name.f32), n floats, malloc'd; exits if missing. */
static inline float *oracle(const char *name, size_t n) {
    char file[256], path[4200];
    snprintf(file, sizeof file, "%s.f32", name);
    float *a = read_f32(oracle_file(path, sizeof path, file), n);
    if (!a) { fprintf(stderr, "missing oracle array %s\n", name); exit(1); }
    return a;
}

/* index.json's number at a/b/c (b, c may be NULL); exits if missing. */
static inline double json_num(const char *a, const char *b, const char *c) {
    const cJSON *j = cJSON_GetObjectItem(oracle_index, a);
    if (b) j = cJSON_GetObjectItem(j, b);
    if (c) j = cJSON_GetObjectItem(j, c);
    if (!cJSON_IsNumber(j)) { fprintf(stderr, "index.json: no %s/%s/%s\n", a, b ? b : "", c ? c : ""); exit(1); }
    return j->valuedouble;
}

static inline double rel_err(double a, double b) { return fabs(a - b) / (fabs(b) > 0 ? fabs(b) : 1.0); }

/* An nst_image from a preprocessed 64x64 oracle input (inverse of the preprocessing). */
static inline nst_image oracle_image(const char *input) {
    nst_image img = {0};
    nst_error err;
    nst_image_alloc(&img, 64, 64, &err);
    float *x = oracle(input, 3 * 64 * 64);
    static const float mean[3] = {103.939f, 116.779f, 123.68f};
    for (int i = 0; i < 64 * 64; i++)
        for (int c = 0; c < 3; c++) img.pixels[i * 3 + 2 - c] = x[c * 64 * 64 + i] + mean[c];
    free(x);
    return img;
}

#endif
