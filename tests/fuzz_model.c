/* fuzz_model.c - libFuzzer entry point for the nstm model loader (src/net/model_file.c).
 * Not part of the CMake build; scripts/fuzz.sh builds and runs it on the seeds in
 * tests/fuzz/corpus/model/ (written by `test_model_file --write-corpus DIR`).
 *
 * Each input is loaded twice with nstm_load_memory: as it is, which exercises the
 * framing (magic, version, size field, checksum), and with its size field and CRC-32
 * rewritten to match, so that mutations reach the record parser behind the checksum
 * instead of dying at it. Either load must
 *   - fail with a one-line message that starts with the file's name, leaving the model
 *     zeroed and nothing leaked, or
 *   - succeed with a model that keeps every promise of model_file.h (names, shapes,
 *     finite values, UTF-8) and that serializes back to exactly the input bytes (the
 *     encoding is canonical), which reload to the same model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/model_file.h"
#include "nst.h"
#include "nstm_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.nstm"

static void fail(const char *why, const char *detail) {
    fprintf(stderr, "fuzz_model: %s: %s\n", why, detail);
    abort();
}

/* What a loaded model promises. */
static void check_model(const nstm_model *m) {
    if (m->version != NSTM_FORMAT_VERSION) fail("loaded", "unexpected version");
    if (m->n_ints < 0 || m->n_ints > NSTM_MAX_ENTRIES || m->n_strings < 0 || m->n_strings > NSTM_MAX_ENTRIES ||
        m->n_tensors < 0 || m->n_tensors > NSTM_MAX_ENTRIES)
        fail("loaded", "entry count out of range");
    for (int i = 0; i < m->n_ints; i++) {
        int32_t v;
        if (!nstm_get_int(m, m->ints[i].name, &v) || v != m->ints[i].value) fail("lookup", m->ints[i].name);
    }
    for (int i = 0; i < m->n_strings; i++) {
        if (nstm_get_string(m, m->strings[i].name) != m->strings[i].value) fail("lookup", m->strings[i].name);
        if (strlen(m->strings[i].value) > NSTM_MAX_STRING) fail("string too long", m->strings[i].name);
    }
    size_t total = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const nstm_tensor *t = &m->tensors[i];
        size_t len = strlen(t->name);
        if (len < 1 || len > NSTM_MAX_NAME) fail("bad name length", t->name);
        for (size_t k = 0; k < len; k++)
            if (t->name[k] < 0x21 || t->name[k] > 0x7e) fail("bad name byte", t->name);
        if (t->ndim < 1 || t->ndim > NSTM_MAX_DIMS) fail("bad ndim", t->name);
        size_t count = 1;
        for (int d = 0; d < NSTM_MAX_DIMS; d++) {
            if (d < t->ndim && t->dims[d] < 1) fail("dimension below 1", t->name);
            if (d >= t->ndim && t->dims[d] != 0) fail("unused dimension not 0", t->name);
            if (d < t->ndim) count *= (size_t)t->dims[d];
        }
        if (count != t->count || count > NSTM_MAX_ELEMENTS) fail("bad count", t->name);
        total += count;
        for (size_t k = 0; k < count; k++) {
            uint32_t u;
            memcpy(&u, &t->data[k], 4);
            if ((u & 0x7f800000u) == 0x7f800000u) fail("non-finite value", t->name);
        }
        const float *p = NULL;
        nst_error err;
        if (nstm_find_tensor(m, t->name) != t || nstm_expect_tensor(m, NAME, t->name, t->ndim, t->dims, &p, &err) ||
            p != t->data)
            fail("lookup", t->name);
    }
    if (total > NSTM_MAX_ELEMENTS) fail("loaded", "too many floats");
}

static void one_load(const uint8_t *data, size_t size) {
    nstm_model m;
    nst_error err;
    memset(&m, 0x5a, sizeof m); /* must be overwritten either way */
    memset(&err, 0, sizeof err);
    nst_status st = nstm_load_memory(&m, data, size, NAME, &err);
    if (st != NST_OK) {
        if (m.n_ints || m.n_strings || m.n_tensors || m.ints || m.strings || m.tensors)
            fail("model not zeroed after", err.msg);
        if (st != NST_ERR_FORMAT && st != NST_ERR_LIMIT && st != NST_ERR_NOMEM) fail("unexpected status", err.msg);
        if (strncmp(err.msg, NAME ": ", strlen(NAME) + 2) != 0 || strchr(err.msg, '\n') || strchr(err.msg, '\r') ||
            strlen(err.msg) < strlen(NAME) + 4)
            fail("bad message", err.msg);
        return;
    }
    check_model(&m);
    unsigned char *out = NULL;
    size_t n = 0;
    if (nstm_save_memory(&m, &out, &n, &err) != NST_OK) fail("cannot re-serialize a loaded model", err.msg);
    if (n != size || memcmp(out, data, size) != 0) fail("re-serialized bytes differ", "not canonical");
    nstm_model again;
    if (nstm_load_memory(&again, out, n, NAME, &err) != NST_OK) fail("cannot reload", err.msg);
    if (!nstm_models_equal(&m, &again)) fail("reloaded model differs", "");
    nstm_free(&again);
    nstm_free(&m);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one_load(data, size);
    if (size >= NSTM_HEADER_BYTES + NSTM_TRAILER_BYTES && memcmp(data, NSTM_MAGIC, 8) == 0) {
        unsigned char *copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        nstm_refinish(copy, size);
        one_load(copy, size);
        free(copy);
    }
    return 0;
}
