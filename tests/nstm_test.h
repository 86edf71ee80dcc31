/* nstm_test.h - helpers shared by the model file's test (test_model_file.c) and its
 * fuzz harness (fuzz_model.c). */
#ifndef NST_NSTM_TEST_H
#define NST_NSTM_TEST_H

#include <stdint.h>
#include <string.h>

#include "net/model_file.h"

/* Same entries in the same order, the floats equal bit for bit. */
static inline int nstm_models_equal(const nstm_model *a, const nstm_model *b) {
    if (a->n_ints != b->n_ints || a->n_strings != b->n_strings || a->n_tensors != b->n_tensors) return 0;
    for (int i = 0; i < a->n_ints; i++)
        if (strcmp(a->ints[i].name, b->ints[i].name) || a->ints[i].value != b->ints[i].value) return 0;
    for (int i = 0; i < a->n_strings; i++)
        if (strcmp(a->strings[i].name, b->strings[i].name) || strcmp(a->strings[i].value, b->strings[i].value))
            return 0;
    for (int i = 0; i < a->n_tensors; i++) {
        const nstm_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        if (strcmp(x->name, y->name) || x->ndim != y->ndim || x->count != y->count ||
            memcmp(x->dims, y->dims, sizeof x->dims) || memcmp(x->data, y->data, x->count * sizeof(float)))
            return 0;
    }
    return 1;
}

/* Rewrites the size field (n) and the trailing CRC-32 of a whole file of n bytes in
 * place (n >= NSTM_HEADER_BYTES + NSTM_TRAILER_BYTES), so that a crafted or mutated
 * file passes the framing checks and reaches the record parser behind them. */
static inline void nstm_refinish(unsigned char *b, size_t n) {
    uint64_t size = n;
    for (int i = 0; i < 8; i++) b[12 + i] = (unsigned char)(size >> (8 * i));
    uint32_t crc = nstm_crc32(0, b, n - NSTM_TRAILER_BYTES);
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (unsigned char)(crc >> (8 * i));
}

#endif
