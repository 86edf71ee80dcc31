/* test_model_file.c - the nstm model file format (src/net/model_file.c): exact bytes of a
 * tiny model, save/load round trips (bit-identical floats), lookups, and refusals: a
 * small model truncated at every length and corrupted at every byte, bad magic, newer
 * version, duplicates, absurd shapes, non-finite values, bad names and UTF-8, trailing
 * garbage, empty files, folders, FIFOs, missing files; atomic saves (no temporary left,
 * a failed save keeps the old file). Every refusal must be one line naming the file.
 * Records crafted byte by byte get a valid size field and checksum (raw_finish), so
 * that they reach the record parser behind the checksum.
 *
 * `test_model_file --write-corpus DIR` writes the fuzzing seeds of tests/fuzz_model.c
 * (tests/fuzz/corpus/model/) instead of testing. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/model_file.h"
#include "nst.h"
#include "nstm_test.h"
#include "test_util.h"

static char g_dir[64];

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", g_dir, name); }

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* Files in g_dir whose name holds ".tmp-" (what nst_atomic_open leaves while writing). */
static int temp_files_left(void) {
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return n;
}

static int model_is_zero(const nstm_model *m) {
    return m->n_ints == 0 && m->n_strings == 0 && m->n_tensors == 0 && !m->ints && !m->strings && !m->tensors;
}

/* Checks a refusal: status want (< 0: NST_ERR_FORMAT or NST_ERR_LIMIT), one line,
 * naming file, holding sub (NULL: not checked), model left zeroed. */
static void check_refusal(const char *what, nst_status st, const nstm_model *m, const nst_error *err, int want,
                          const char *file, const char *sub) {
    CHECK(st != NST_OK, "%s: accepted", what);
    if (st == NST_OK) return;
    if (want < 0)
        CHECK(st == NST_ERR_FORMAT || st == NST_ERR_LIMIT, "%s: status %s", what, nst_status_name(st));
    else
        CHECK((int)st == want, "%s: status %s, wanted %s ('%s')", what, nst_status_name(st),
              nst_status_name((nst_status)want), err->msg);
    CHECK(err->msg[0] && !strchr(err->msg, '\n') && !strchr(err->msg, '\r'), "%s: not one line: '%s'", what,
          err->msg);
    CHECK(strncmp(err->msg, file, strlen(file)) == 0 && strncmp(err->msg + strlen(file), ": ", 2) == 0,
          "%s: does not start with the file: '%s'", what, err->msg);
    CHECK(!sub || strstr(err->msg, sub), "%s: '%s' lacks '%s'", what, err->msg, sub);
    CHECK(model_is_zero(m), "%s: model not reset", what);
}

static void expect_mem_fail(const char *what, const void *data, size_t len, int want, const char *sub) {
    nstm_model m;
    nst_error err;
    memset(&err, 0, sizeof err);
    nst_status st = nstm_load_memory(&m, data, len, "mem.nstm", &err);
    check_refusal(what, st, &m, &err, want, "mem.nstm", sub);
    if (st == NST_OK) nstm_free(&m);
}

static void expect_file_fail(const char *what, const char *path, int want, const char *sub) {
    nstm_model m;
    nst_error err;
    memset(&err, 0, sizeof err);
    nst_status st = nstm_load(&m, path, NULL, &err);
    check_refusal(what, st, &m, &err, want, path, sub);
    if (st == NST_OK) nstm_free(&m);
}

/* The exact message for data loaded as mem.nstm ("mem.nstm: " + tail). */
static void expect_mem_msg(const char *what, const void *data, size_t len, int want, const char *tail) {
    nstm_model m;
    nst_error err;
    char full[1100];
    memset(&err, 0, sizeof err);
    nst_status st = nstm_load_memory(&m, data, len, "mem.nstm", &err);
    check_refusal(what, st, &m, &err, want, "mem.nstm", NULL);
    snprintf(full, sizeof full, "mem.nstm: %s", tail);
    CHECK(st == NST_OK || strcmp(err.msg, full) == 0, "%s: '%s', wanted '%s'", what, err.msg, full);
    if (st == NST_OK) nstm_free(&m);
}

/* ---- models written byte by byte ---- */

typedef struct {
    unsigned char b[1 << 16];
    size_t n;
} raw;

static void raw_bytes(raw *r, const void *p, size_t n) {
    memcpy(r->b + r->n, p, n);
    r->n += n;
}
static void raw_u8(raw *r, unsigned v) { r->b[r->n++] = (unsigned char)v; }
static void raw_u32(raw *r, uint32_t v) {
    for (int i = 0; i < 4; i++) raw_u8(r, (v >> (8 * i)) & 0xff);
}
static void raw_f32(raw *r, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    raw_u32(r, u);
}
static void raw_name(raw *r, const char *s) {
    raw_u8(r, (unsigned)strlen(s));
    raw_bytes(r, s, strlen(s));
}
static void raw_header(raw *r, uint32_t ints, uint32_t strings, uint32_t tensors) {
    r->n = 0;
    raw_bytes(r, "NSTMODEL", 8);
    raw_u32(r, 1);
    raw_u32(r, 0); /* file size, set by raw_finish */
    raw_u32(r, 0);
    raw_u32(r, ints);
    raw_u32(r, strings);
    raw_u32(r, tensors);
}
/* Appends the checksum and sets the size field: the file passes every check before
 * the records. */
static void raw_finish(raw *r) {
    raw_u32(r, 0);
    nstm_refinish(r->b, r->n);
}

/* A small model with every kind of entry (used for the truncation and corruption loops). */
static void small_model(nstm_model *m) {
    nst_error err;
    memset(m, 0, sizeof *m);
    int d1[1] = {3}, d4[4] = {2, 1, 1, 2};
    float v1[3] = {1.5f, -0.0f, 1e-45f}, v4[4] = {0.25f, -3.0f, 1e30f, 7.0f};
    if (nstm_add_int(m, "width", 32, &err) || nstm_add_int(m, "res_blocks", 5, &err) ||
        nstm_add_string(m, "style", "starry_night.jpg", &err) || nstm_add_string(m, "steps", "4000", &err) ||
        nstm_add_tensor(m, "conv1.bias", 1, d1, v1, &err) || nstm_add_tensor(m, "conv1.weight", 4, d4, v4, &err)) {
        fprintf(stderr, "small_model: %s\n", err.msg);
        exit(1);
    }
}

static unsigned char *serialize(const nstm_model *m, size_t *n) {
    unsigned char *buf;
    nst_error err;
    if (nstm_save_memory(m, &buf, n, &err) != NST_OK) {
        fprintf(stderr, "serialize: %s\n", err.msg);
        exit(1);
    }
    return buf;
}

static int same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }


/* ---- the fuzzing seeds ---- */

static int write_corpus(const char *dir) {
    char path[512];
    nst_error err;
    unsigned char *buf;
    size_t n;
    nstm_model m;

    small_model(&m);
    buf = serialize(&m, &n);
    snprintf(path, sizeof path, "%s/small.nstm", dir);
    write_file(path, buf, n);
    /* broken ones: cut short, one byte flipped, a newer version */
    snprintf(path, sizeof path, "%s/truncated.nstm", dir);
    write_file(path, buf, n - 9);
    buf[60] ^= 0x10;
    snprintf(path, sizeof path, "%s/bad_checksum.nstm", dir);
    write_file(path, buf, n);
    buf[60] ^= 0x10;
    buf[8] = 2;
    snprintf(path, sizeof path, "%s/version2.nstm", dir);
    write_file(path, buf, n);
    free(buf);
    nstm_free(&m);

    memset(&m, 0, sizeof m); /* no entries at all */
    buf = serialize(&m, &n);
    snprintf(path, sizeof path, "%s/empty_model.nstm", dir);
    write_file(path, buf, n);
    free(buf);

    /* what a fast-style network's file looks like, in miniature */
    int c3[4] = {4, 3, 3, 3}, c1[1] = {4}, up[4] = {3, 4, 1, 1};
    float w[108];
    unsigned long long seed = 7;
    for (int i = 0; i < 108; i++) w[i] = test_rand(&seed);
    if (nstm_add_int(&m, "width", 4, &err) || nstm_add_int(&m, "res_blocks", 1, &err) ||
        nstm_add_int(&m, "upsample", 1, &err) || nstm_add_int(&m, "neg", -2147483647 - 1, &err) ||
        nstm_add_string(&m, "style", "starry_night.jpg", &err) ||
        nstm_add_string(&m, "command", "nst train --style starry_night.jpg", &err) ||
        nstm_add_string(&m, "created", "2024-01-01T00:00:00Z", &err) ||
        nstm_add_string(&m, "note", "Sternennacht \xe2\x80\x94 \xe6\x98\x9f\xe6\x9c\x88\xe5\xa4\x9c \xf0\x9f\x8c\x8c", &err) ||
        nstm_add_string(&m, "empty", "", &err) || nstm_add_tensor(&m, "conv1.weight", 4, c3, w, &err) ||
        nstm_add_tensor(&m, "conv1.bias", 1, c1, w + 100, &err) ||
        nstm_add_tensor(&m, "up.weight", 4, up, w + 50, &err)) {
        fprintf(stderr, "corpus: %s\n", err.msg);
        return 1;
    }
    buf = serialize(&m, &n);
    snprintf(path, sizeof path, "%s/network.nstm", dir);
    write_file(path, buf, n);
    free(buf);
    nstm_free(&m);
    printf("seeds written to %s\n", dir);
    return 0;
}

/* ---- the tests ---- */

static void test_crc_and_exact_bytes(void) {
    CHECK(nstm_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value %08x", nstm_crc32(0, "123456789", 9));
    CHECK(nstm_crc32(nstm_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u, "chained crc32");

    /* int w=-2, string s="é", tensor t 1x2 = {1, -0}: the layout of docs/model-format.md,
     * byte for byte (checksum from zlib.crc32) */
    static const unsigned char want[69] = {
        0x4e, 0x53, 0x54, 0x4d, 0x4f, 0x44, 0x45, 0x4c, 0x01, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x77, 0xfe, 0xff,
        0xff, 0xff, 0x01, 0x73, 0x02, 0x00, 0x00, 0x00, 0xc3, 0xa9, 0x01, 0x74, 0x02, 0x01, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x80, 0x05, 0xa8, 0x4b, 0xbe};
    nstm_model m = {0};
    nst_error err;
    int dims[2] = {1, 2};
    float v[2] = {1.0f, -0.0f};
    CHECK(nstm_add_int(&m, "w", -2, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_string(&m, "s", "\xc3\xa9", &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_tensor(&m, "t", 2, dims, v, &err) == NST_OK, "%s", err.msg);
    size_t n;
    unsigned char *buf = serialize(&m, &n);
    CHECK(n == sizeof want && memcmp(buf, want, n) == 0, "tiny model bytes differ (size %zu)", n);
    free(buf);
    nstm_free(&m);
    CHECK(model_is_zero(&m), "nstm_free zeroes");

    nstm_model r;
    CHECK(nstm_load_memory(&r, want, sizeof want, "tiny", &err) == NST_OK, "tiny: %s", err.msg);
    int32_t iv = 0;
    CHECK(r.version == 1 && nstm_get_int(&r, "w", &iv) && iv == -2, "tiny int");
    CHECK(nstm_get_string(&r, "s") && strcmp(nstm_get_string(&r, "s"), "\xc3\xa9") == 0, "tiny string");
    const nstm_tensor *t = nstm_find_tensor(&r, "t");
    CHECK(t && t->ndim == 2 && t->dims[0] == 1 && t->dims[1] == 2 && t->dims[2] == 0 && t->count == 2 &&
              same_bits(t->data, v, 2),
          "tiny tensor");
    nstm_free(&r);
}

static void test_round_trip(void) {
    nstm_model m = {0}, r;
    nst_error err;
    char path[256];
    path_in(path, sizeof path, "full.nstm");

    CHECK(nstm_add_int(&m, "width", 32, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_int(&m, "res_blocks", 5, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_int(&m, "upsample", 1, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_int(&m, "min", INT32_MIN, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_int(&m, "max", INT32_MAX, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_string(&m, "style", "starry_night.jpg", &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_string(&m, "command", "nst train --style starry_night.jpg --steps 4000", &err) == NST_OK, "%s",
          err.msg);
    CHECK(nstm_add_string(&m, "empty", "", &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_string(&m, "utf8", "\xe6\x98\x9f\xe6\x9c\x88\xe5\xa4\x9c \xf0\x9f\x8c\x8c \xc3\xa9", &err) == NST_OK,
          "%s", err.msg);
    char *big = malloc(NSTM_MAX_STRING + 1);
    memset(big, 'a', NSTM_MAX_STRING);
    big[NSTM_MAX_STRING] = '\0';
    CHECK(nstm_add_string(&m, "longest", big, &err) == NST_OK, "%s", err.msg);

    /* special bit patterns: -0, the smallest and largest denormals, FLT_MAX, FLT_MIN */
    static const uint32_t SPECIAL[] = {0x80000000u, 0x00000001u, 0x807fffffu, 0x7f7fffffu, 0xff7fffffu,
                                       0x00800000u, 0x3f800000u, 0x00000000u};
    float special[8];
    memcpy(special, SPECIAL, sizeof special);
    int d1[1] = {8};
    CHECK(nstm_add_tensor(&m, "special", 1, d1, special, &err) == NST_OK, "%s", err.msg);
    float data[2 * 3 * 5 * 7];
    unsigned long long seed = 1;
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) data[i] = test_rand(&seed) * 100;
    int d2[2] = {6, 35}, d3[3] = {2, 15, 7}, d4[4] = {2, 3, 5, 7};
    CHECK(nstm_add_tensor(&m, "m2", 2, d2, data, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_tensor(&m, "m3", 3, d3, data, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_tensor(&m, "res1.conv1.weight", 4, d4, data, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_tensor(&m, "zeros", 1, d1, NULL, &err) == NST_OK, "%s", err.msg);
    char longname[64];
    memset(longname, 'n', 63);
    longname[63] = '\0';
    CHECK(nstm_add_tensor(&m, longname, 1, d1, special, &err) == NST_OK, "63-byte name: %s", err.msg);

    CHECK(nstm_save(&m, path, &err) == NST_OK, "save: %s", err.msg);
    CHECK(temp_files_left() == 0, "temporary file left after save");
    CHECK(nstm_load(&r, path, NULL, &err) == NST_OK, "load: %s", err.msg);
    CHECK(r.version == NSTM_FORMAT_VERSION, "version %u", r.version);
    CHECK(nstm_models_equal(&m, &r), "loaded model differs");
    CHECK(strcmp(nstm_get_string(&r, "longest"), big) == 0, "64 KiB string");

    /* the file, the in-memory encoding and the re-encoding of what was loaded agree */
    size_t fn = 0, n1, n2;
    unsigned char *file = read_all(path, &fn);
    unsigned char *b1 = serialize(&m, &n1), *b2 = serialize(&r, &n2);
    CHECK(file && fn == n1 && n1 == n2 && memcmp(file, b1, n1) == 0 && memcmp(b1, b2, n1) == 0,
          "encodings differ (%zu, %zu, %zu bytes)", fn, n1, n2);
    free(file);
    free(b1);
    free(b2);

    /* saving over an existing file */
    CHECK(nstm_add_int(&m, "extra", 1, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_save(&m, path, &err) == NST_OK, "save over: %s", err.msg);
    nstm_free(&r);
    CHECK(nstm_load(&r, path, NULL, &err) == NST_OK && nstm_get_int(&r, "extra", NULL), "overwritten model: %s", err.msg);
    CHECK(temp_files_left() == 0, "temporary file left after a second save");
    nstm_free(&r);
    nstm_free(&m);
    free(big);
}

static void test_lookups(void) {
    nstm_model m;
    nst_error err;
    small_model(&m);
    const float *data = NULL;
    int want4[4] = {2, 1, 1, 2}, bad4[4] = {2, 1, 2, 1}, want1[1] = {3};
    CHECK(nstm_expect_tensor(&m, "x.nstm", "conv1.weight", 4, want4, &data, &err) == NST_OK && data &&
              data[1] == -3.0f,
          "expect_tensor: %s", err.msg);
    CHECK(nstm_expect_tensor(&m, "x.nstm", "conv1.bias", 1, want1, NULL, &err) == NST_OK, "expect bias: %s", err.msg);
    CHECK(nstm_expect_tensor(&m, "x.nstm", "conv1.weight", 4, bad4, &data, &err) == NST_ERR_FORMAT && !data &&
              strcmp(err.msg, "x.nstm: tensor 'conv1.weight' is 2x1x1x2, expected 2x1x2x1") == 0,
          "wrong shape: '%s'", err.msg);
    CHECK(nstm_expect_tensor(&m, "x.nstm", "conv1.weight", 1, want1, &data, &err) == NST_ERR_FORMAT &&
              strcmp(err.msg, "x.nstm: tensor 'conv1.weight' is 2x1x1x2, expected 3") == 0,
          "wrong rank: '%s'", err.msg);
    CHECK(nstm_expect_tensor(&m, "x.nstm", "conv2.weight", 4, want4, &data, &err) == NST_ERR_FORMAT &&
              strcmp(err.msg, "x.nstm: no tensor 'conv2.weight' in the model") == 0,
          "missing tensor: '%s'", err.msg);
    int32_t v = 0;
    CHECK(nstm_get_int(&m, "res_blocks", &v) == 1 && v == 5, "get_int");
    CHECK(nstm_get_int(&m, "nope", &v) == 0, "get_int missing");
    CHECK(nstm_get_int(&m, "style", &v) == 0, "kinds are separate");
    CHECK(nstm_expect_int(&m, "x.nstm", "width", 1, 1024, &v, &err) == NST_OK && v == 32, "expect_int: %s", err.msg);
    CHECK(nstm_expect_int(&m, "x.nstm", "width", 1, 16, &v, &err) == NST_ERR_FORMAT &&
              strcmp(err.msg, "x.nstm: 'width' is 32, expected 1 to 16") == 0,
          "int out of range: '%s'", err.msg);
    CHECK(nstm_expect_int(&m, "x.nstm", "depth", 1, 16, &v, &err) == NST_ERR_FORMAT &&
              strcmp(err.msg, "x.nstm: no int 'depth' in the model") == 0,
          "missing int: '%s'", err.msg);
    CHECK(nstm_get_string(&m, "steps") && strcmp(nstm_get_string(&m, "steps"), "4000") == 0, "get_string");
    CHECK(nstm_get_string(&m, "width") == NULL && nstm_find_tensor(&m, "width") == NULL, "missing lookups");
    nstm_free(&m);
}

/* Cut the small model at every length, and change every byte of it. */
static void test_truncation_and_corruption(void) {
    nstm_model m;
    small_model(&m);
    size_t n;
    unsigned char *buf = serialize(&m, &n);
    nstm_free(&m);
    char what[64];
    expect_mem_msg("empty", buf, 0, NST_ERR_FORMAT, "empty file (not an nst model)");
    for (size_t len = 1; len < n; len++) {
        snprintf(what, sizeof what, "cut at %zu of %zu", len, n);
        expect_mem_fail(what, buf, len, NST_ERR_FORMAT, "truncated");
    }
    char tail[128];
    snprintf(tail, sizeof tail, "truncated (file is %zu bytes, header says %zu)", n - 1, n);
    expect_mem_msg("cut by one", buf, n - 1, NST_ERR_FORMAT, tail);
    expect_mem_msg("cut in the magic", buf, 5, NST_ERR_FORMAT, "truncated (file is 5 bytes, a model has at least 36)");

    static const unsigned char FLIPS[] = {0x01, 0x80, 0xff};
    int by_checksum = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t f = 0; f < sizeof FLIPS; f++) {
            buf[i] ^= FLIPS[f];
            nstm_model r;
            nst_error err;
            memset(&err, 0, sizeof err);
            nst_status st = nstm_load_memory(&r, buf, n, "mem.nstm", &err);
            snprintf(what, sizeof what, "byte %zu ^ 0x%02x", i, FLIPS[f]);
            check_refusal(what, st, &r, &err, -1, "mem.nstm", NULL);
            if (st == NST_OK) nstm_free(&r);
            by_checksum += strstr(err.msg, "checksum") != NULL;
            total++;
            buf[i] ^= FLIPS[f];
        }
    }
    CHECK(by_checksum > total / 2, "only %d of %d corruptions caught by the checksum", by_checksum, total);

    /* the same file with a corrupted record but a recomputed checksum: the record parser
     * alone must refuse or accept it, never crash (ASan watches this) */
    for (size_t i = NSTM_HEADER_BYTES; i + 4 < n; i++) {
        unsigned char save = buf[i];
        buf[i] ^= 0xff;
        nstm_refinish(buf, n);
        nstm_model r;
        nst_error err;
        if (nstm_load_memory(&r, buf, n, "mem.nstm", &err) == NST_OK) nstm_free(&r);
        buf[i] = save;
    }
    nstm_refinish(buf, n);
    free(buf);
}

static void test_header_refusals(void) {
    nstm_model m;
    small_model(&m);
    size_t n;
    unsigned char *buf = serialize(&m, &n);
    nstm_free(&m);
    char tail[128];

    memcpy(buf, "NSTMODEX", 8);
    expect_mem_msg("bad magic", buf, n, NST_ERR_FORMAT, "not an nst model file (bad magic)");
    expect_mem_msg("a PNG", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, NST_ERR_FORMAT, "not an nst model file (bad magic)");
    expect_mem_msg("text", "hello", 5, NST_ERR_FORMAT, "not an nst model file (bad magic)");
    memcpy(buf, "NSTMODEL", 8);

    buf[8] = 7;
    nstm_refinish(buf, n);
    expect_mem_msg("newer version", buf, n, NST_ERR_FORMAT, "format version 7 is newer than this nst supports (1)");
    buf[8] = 0;
    buf[11] = 0x80;
    expect_mem_msg("huge version", buf, n, NST_ERR_FORMAT,
                   "format version 2147483648 is newer than this nst supports (1)");
    buf[11] = 0;
    nstm_refinish(buf, n);
    expect_mem_msg("version 0", buf, n, NST_ERR_FORMAT, "format version 0 does not exist (file corrupt)");
    buf[8] = 1;
    nstm_refinish(buf, n);

    buf[n - 1] ^= 1;
    expect_mem_msg("bad checksum", buf, n, NST_ERR_FORMAT, "checksum mismatch (file corrupt)");
    buf[n - 1] ^= 1;

    /* trailing garbage: as appended, and with the header and checksum made to match */
    unsigned char *longer = malloc(n + 8);
    memcpy(longer, buf, n);
    memset(longer + n, 0, 8);
    snprintf(tail, sizeof tail, "trailing garbage (file is %zu bytes, header says %zu)", n + 1, n);
    expect_mem_msg("one byte appended", longer, n + 1, NST_ERR_FORMAT, tail);
    memset(longer + n - 4, 0, 4); /* 4 zero bytes after the records, then the checksum */
    nstm_refinish(longer, n + 4);
    snprintf(tail, sizeof tail, "the records end at byte %zu, the checksum is at byte %zu (file corrupt)", n - 4, n);
    expect_mem_msg("padding before the checksum", longer, n + 4, NST_ERR_FORMAT, tail);
    /* a size field beyond 4 GiB */
    memcpy(longer, buf, n);
    longer[19] = 1;
    snprintf(tail, sizeof tail, "truncated (file is %zu bytes, header says %llu)", n,
             (unsigned long long)n + (1ull << 56));
    expect_mem_msg("size field 2^56", longer, n, NST_ERR_FORMAT, tail);
    free(longer);

    /* entry counts */
    raw *r = malloc(sizeof *r);
    raw_header(r, 257, 0, 0);
    raw_finish(r);
    expect_mem_msg("257 ints", r->b, r->n, NST_ERR_LIMIT, "257 ints, more than the limit of 256");
    raw_header(r, 0, 0, 0xffffffffu);
    raw_finish(r);
    expect_mem_msg("4G tensors", r->b, r->n, NST_ERR_LIMIT, "4294967295 tensors, more than the limit of 256");
    raw_header(r, 2, 0, 0);
    raw_name(r, "a");
    raw_u32(r, 1);
    raw_finish(r);
    expect_mem_msg("one int missing", r->b, r->n, NST_ERR_FORMAT,
                   "int #2 runs past the end of the records at byte 38 (file corrupt)");
    raw_header(r, 0, 0, 0);
    raw_finish(r);
    nstm_model e;
    nst_error err;
    CHECK(nstm_load_memory(&e, r->b, r->n, "mem.nstm", &err) == NST_OK && e.n_ints == 0 && e.n_tensors == 0,
          "empty model: %s", err.msg);
    nstm_free(&e);
    free(r);
    free(buf);
}

/* Records behind a valid checksum: names, strings, shapes, values. */
static void test_record_refusals(void) {
    raw *r = malloc(sizeof *r);

    /* duplicates */
    raw_header(r, 2, 0, 0);
    raw_name(r, "width");
    raw_u32(r, 1);
    raw_name(r, "width");
    raw_u32(r, 2);
    raw_finish(r);
    expect_mem_msg("duplicate int", r->b, r->n, NST_ERR_FORMAT, "duplicate int name 'width'");
    raw_header(r, 0, 2, 0);
    raw_name(r, "style");
    raw_u32(r, 0);
    raw_name(r, "style");
    raw_u32(r, 1);
    raw_u8(r, 'x');
    raw_finish(r);
    expect_mem_msg("duplicate string", r->b, r->n, NST_ERR_FORMAT, "duplicate string name 'style'");
    raw_header(r, 0, 0, 2);
    for (int i = 0; i < 2; i++) {
        raw_name(r, "conv1.bias");
        raw_u8(r, 1);
        raw_u32(r, 1);
        raw_f32(r, 1.0f);
    }
    raw_finish(r);
    expect_mem_msg("duplicate tensor", r->b, r->n, NST_ERR_FORMAT, "duplicate tensor name 'conv1.bias'");
    raw_header(r, 1, 0, 1); /* the same name in two kinds is allowed */
    raw_name(r, "x");
    raw_u32(r, 1);
    raw_name(r, "x");
    raw_u8(r, 1);
    raw_u32(r, 1);
    raw_f32(r, 1.0f);
    raw_finish(r);
    nstm_model m;
    nst_error err;
    CHECK(nstm_load_memory(&m, r->b, r->n, "mem.nstm", &err) == NST_OK, "int and tensor 'x': %s", err.msg);
    nstm_free(&m);

    /* names */
    static const char *const BAD_NAMES[] = {"", "with space", "new\nline", "caf\xc3\xa9", "tab\t", "del\x7f"};
    for (size_t i = 0; i < sizeof BAD_NAMES / sizeof BAD_NAMES[0]; i++) {
        raw_header(r, 1, 0, 0);
        raw_name(r, BAD_NAMES[i]);
        raw_u32(r, 1);
        raw_finish(r);
        expect_mem_msg("bad int name", r->b, r->n, NST_ERR_FORMAT,
                       "int #1 has a bad name (1 to 63 printable ASCII characters without spaces)");
    }
    char name64[65];
    memset(name64, 'a', 64);
    name64[64] = '\0';
    raw_header(r, 0, 0, 1);
    raw_name(r, name64);
    raw_u8(r, 1);
    raw_u32(r, 1);
    raw_f32(r, 1.0f);
    raw_finish(r);
    expect_mem_fail("64-byte name", r->b, r->n, NST_ERR_FORMAT, "tensor #1 has a bad name");
    raw_header(r, 0, 0, 1);
    raw_u8(r, 255); /* a name length past the end */
    raw_bytes(r, "abc", 3);
    raw_finish(r);
    expect_mem_fail("name past the end", r->b, r->n, NST_ERR_FORMAT, "runs past the end");

    /* strings */
    static const char *const BAD_UTF8[] = {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "a\xff",
                                           "\x80", "\xf8\x88\x80\x80\x80"};
    for (size_t i = 0; i < sizeof BAD_UTF8 / sizeof BAD_UTF8[0]; i++) {
        raw_header(r, 0, 1, 0);
        raw_name(r, "s");
        raw_u32(r, (uint32_t)strlen(BAD_UTF8[i]));
        raw_bytes(r, BAD_UTF8[i], strlen(BAD_UTF8[i]));
        raw_finish(r);
        expect_mem_msg("bad UTF-8", r->b, r->n, NST_ERR_FORMAT, "string 's' is not valid UTF-8 (or holds a NUL byte)");
    }
    raw_header(r, 0, 1, 0);
    raw_name(r, "s");
    raw_u32(r, 3);
    raw_bytes(r, "a\0b", 3);
    raw_finish(r);
    expect_mem_fail("NUL in a string", r->b, r->n, NST_ERR_FORMAT, "not valid UTF-8");
    raw_header(r, 0, 1, 0);
    raw_name(r, "s");
    raw_u32(r, NSTM_MAX_STRING + 1);
    raw_finish(r);
    expect_mem_msg("string too long", r->b, r->n, NST_ERR_LIMIT, "string 's' is 65537 bytes, more than the limit of 65536");
    raw_header(r, 0, 1, 0);
    raw_name(r, "s");
    raw_u32(r, 100);
    raw_bytes(r, "short", 5);
    raw_finish(r);
    expect_mem_fail("string past the end", r->b, r->n, NST_ERR_FORMAT, "string #1 runs past the end");

    /* shapes */
    struct { int ndim; uint32_t dims[5]; int status; const char *tail; } SHAPES[] = {
        {0, {0}, NST_ERR_FORMAT, "tensor 't' has 0 dimensions (1 to 4 allowed)"},
        {5, {1, 1, 1, 1, 1}, NST_ERR_FORMAT, "tensor 't' has 5 dimensions (1 to 4 allowed)"},
        {2, {3, 0}, NST_ERR_FORMAT, "tensor 't' has the shape 3x0 (each dimension must be at least 1)"},
        {4, {65536, 65536, 65536, 65536}, NST_ERR_LIMIT,
         "tensor 't' of shape 65536x65536x65536x65536 has more than the limit of 67108864 elements"},
        {2, {0xffffffffu, 0xffffffffu}, NST_ERR_LIMIT,
         "tensor 't' of shape 4294967295x4294967295 has more than the limit of 67108864 elements"},
        {4, {1024, 1024, 64, 1}, NST_ERR_FORMAT, "tensor #1 runs past the end of the records at byte 51 (file corrupt)"},
        {1, {1u << 26}, NST_ERR_FORMAT, "tensor #1 runs past the end"},
        {1, {(1u << 26) + 1}, NST_ERR_LIMIT, "has more than the limit of 67108864 elements"},
    };
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        raw_header(r, 0, 0, 1);
        raw_name(r, "t");
        raw_u8(r, (unsigned)SHAPES[i].ndim);
        for (int d = 0; d < SHAPES[i].ndim; d++) raw_u32(r, SHAPES[i].dims[d]);
        raw_f32(r, 1.0f);
        raw_finish(r);
        if (strncmp(SHAPES[i].tail, "tensor '", 8) == 0 || strncmp(SHAPES[i].tail, "tensor #1 runs past the end of", 30) == 0)
            expect_mem_msg(SHAPES[i].tail, r->b, r->n, SHAPES[i].status, SHAPES[i].tail);
        else
            expect_mem_fail(SHAPES[i].tail, r->b, r->n, SHAPES[i].status, SHAPES[i].tail);
    }

    /* values */
    static const uint32_t NONFINITE[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffffffffu, 0x7f800001u};
    for (size_t i = 0; i < sizeof NONFINITE / sizeof NONFINITE[0]; i++) {
        raw_header(r, 0, 0, 1);
        raw_name(r, "conv1.weight");
        raw_u8(r, 1);
        raw_u32(r, 3);
        raw_f32(r, 1.0f);
        raw_u32(r, NONFINITE[i]);
        raw_f32(r, 2.0f);
        raw_finish(r);
        expect_mem_msg("non-finite", r->b, r->n, NST_ERR_FORMAT,
                       "tensor 'conv1.weight' holds a non-finite value (element 1)");
    }
    free(r);
}

static void test_files(void) {
    char path[256];
    nstm_model m;
    nst_error err;

    path_in(path, sizeof path, "missing.nstm");
    expect_file_fail("missing file", path, NST_ERR_IO, "cannot open: No such file or directory");
    path_in(path, sizeof path, "empty.nstm");
    write_file(path, "", 0);
    expect_file_fail("empty file", path, NST_ERR_FORMAT, "empty file (not an nst model)");
    path_in(path, sizeof path, "adir.nstm");
    mkdir(path, 0700);
    expect_file_fail("a folder", path, NST_ERR_IO, "not a regular file");
    path_in(path, sizeof path, "fifo.nstm");
    if (mkfifo(path, 0600) == 0) /* refused, not waited on */
        expect_file_fail("a FIFO", path, NST_ERR_IO, "not a regular file");

    /* a file bigger than any model: a sparse one, refused before it is read */
    path_in(path, sizeof path, "huge.nstm");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0 && ftruncate(fd, (off_t)NSTM_MAX_FILE_BYTES + 1) == 0) {
        close(fd);
        expect_file_fail("huge file", path, NST_ERR_LIMIT, "more than the limit of");
    } else if (fd >= 0) {
        close(fd);
    }
    unlink(path);

    /* the messages of the brief, with a real path */
    small_model(&m);
    size_t n;
    unsigned char *buf = serialize(&m, &n);
    nstm_free(&m);
    path_in(path, sizeof path, "starry.nstm");
    write_file(path, buf, n - 10);
    char want[512];
    snprintf(want, sizeof want, "%s: truncated (file is %zu bytes, header says %zu)", path, n - 10, n);
    CHECK(nstm_load(&m, path, NULL, &err) == NST_ERR_FORMAT && strcmp(err.msg, want) == 0, "'%s'", err.msg);
    buf[8] = 7;
    write_file(path, buf, n);
    snprintf(want, sizeof want, "%s: format version 7 is newer than this nst supports (1)", path);
    CHECK(nstm_load(&m, path, NULL, &err) == NST_ERR_FORMAT && strcmp(err.msg, want) == 0, "'%s'", err.msg);
    buf[8] = 1;
    buf[40] ^= 4;
    write_file(path, buf, n);
    snprintf(want, sizeof want, "%s: checksum mismatch (file corrupt)", path);
    CHECK(nstm_load(&m, path, NULL, &err) == NST_ERR_FORMAT && strcmp(err.msg, want) == 0, "'%s'", err.msg);
    buf[40] ^= 4;
    write_file(path, buf, n);
    CHECK(nstm_load(&m, path, NULL, &err) == NST_OK && m.n_tensors == 2, "load: %s", err.msg);
    nstm_free(&m);
    free(buf);
}

static void test_builders_and_save_checks(void) {
    nstm_model m = {0};
    nst_error err;
    int d1[1] = {2}, d0[1] = {0}, dneg[2] = {3, -1}, dbig[4] = {65536, 65536, 65536, 65536};
    float nan_data[2] = {1.0f, NAN}, ok[2] = {1.0f, 2.0f};

    CHECK(nstm_add_int(&m, "w", 1, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_int(&m, "w", 2, &err) == NST_ERR_ARG && strcmp(err.msg, "model: duplicate int name 'w'") == 0,
          "'%s'", err.msg);
    CHECK(nstm_add_int(&m, "", 2, &err) == NST_ERR_ARG && strstr(err.msg, "bad int name ''"), "'%s'", err.msg);
    CHECK(nstm_add_int(&m, NULL, 2, &err) == NST_ERR_ARG, "NULL name");
    CHECK(nstm_add_int(&m, "a\nb", 2, &err) == NST_ERR_ARG && strstr(err.msg, "'a?b'") && !strchr(err.msg, '\n'),
          "'%s'", err.msg);
    char name64[65];
    memset(name64, 'a', 64);
    name64[64] = '\0';
    CHECK(nstm_add_tensor(&m, name64, 1, d1, ok, &err) == NST_ERR_ARG, "64-byte name");
    CHECK(nstm_add_string(&m, "s", "\xc0\x80", &err) == NST_ERR_ARG && strstr(err.msg, "not valid UTF-8"), "'%s'",
          err.msg);
    CHECK(nstm_add_string(&m, "s", NULL, &err) == NST_ERR_ARG, "NULL string");
    char *big = malloc(NSTM_MAX_STRING + 2);
    memset(big, 'a', NSTM_MAX_STRING + 1);
    big[NSTM_MAX_STRING + 1] = '\0';
    CHECK(nstm_add_string(&m, "s", big, &err) == NST_ERR_LIMIT, "long string: '%s'", err.msg);
    free(big);
    CHECK(nstm_add_tensor(&m, "t", 1, d0, ok, &err) == NST_ERR_ARG && strstr(err.msg, "shape 0"), "'%s'", err.msg);
    CHECK(nstm_add_tensor(&m, "t", 2, dneg, ok, &err) == NST_ERR_ARG && strstr(err.msg, "shape 3x-1"), "'%s'",
          err.msg);
    CHECK(nstm_add_tensor(&m, "t", 5, dbig, ok, &err) == NST_ERR_ARG && strstr(err.msg, "5 dimensions"), "'%s'",
          err.msg);
    CHECK(nstm_add_tensor(&m, "t", 0, dbig, ok, &err) == NST_ERR_ARG, "0 dimensions");
    CHECK(nstm_add_tensor(&m, "t", 4, dbig, NULL, &err) == NST_ERR_LIMIT, "huge tensor: '%s'", err.msg);
    CHECK(nstm_add_tensor(&m, "t", 1, d1, nan_data, &err) == NST_ERR_ARG &&
              strcmp(err.msg, "model: tensor 't' holds a non-finite value (element 1)") == 0,
          "'%s'", err.msg);
    CHECK(m.n_tensors == 0 && m.n_strings == 0 && m.n_ints == 1, "refused entries were added");
    for (int i = 1; i < NSTM_MAX_ENTRIES; i++) {
        char name[16];
        snprintf(name, sizeof name, "i%d", i);
        if (nstm_add_int(&m, name, i, &err) != NST_OK) break;
    }
    CHECK(m.n_ints == NSTM_MAX_ENTRIES, "%d ints", m.n_ints);
    CHECK(nstm_add_int(&m, "one_more", 1, &err) == NST_ERR_LIMIT && strcmp(err.msg, "model: more than 256 ints") == 0,
          "'%s'", err.msg);
    nstm_free(&m);

    /* the limit on all floats together; calloc'd zeros are never touched, so this costs
     * address space, not memory */
    int half[1] = {1 << 25}, one[1] = {1};
    CHECK(nstm_add_tensor(&m, "a", 1, half, NULL, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_tensor(&m, "b", 1, half, NULL, &err) == NST_OK, "%s", err.msg);
    CHECK(nstm_add_tensor(&m, "c", 1, one, NULL, &err) == NST_ERR_LIMIT && strstr(err.msg, "in all"), "'%s'", err.msg);
    nstm_free(&m);

    /* nstm_save checks models filled or changed by hand, and writes nothing then */
    char path[256];
    path_in(path, sizeof path, "never.nstm");
    CHECK(nstm_add_tensor(&m, "t", 1, d1, ok, &err) == NST_OK, "%s", err.msg);
    m.tensors[0].data[1] = INFINITY;
    CHECK(nstm_save(&m, path, &err) == NST_ERR_ARG && strstr(err.msg, "non-finite") && strstr(err.msg, path),
          "'%s'", err.msg);
    m.tensors[0].data[1] = 2.0f;
    m.tensors[0].count = 3;
    CHECK(nstm_save(&m, path, &err) == NST_ERR_ARG && strstr(err.msg, "count 3"), "'%s'", err.msg);
    m.tensors[0].count = 2;
    strcpy(m.tensors[0].name, "bad name");
    CHECK(nstm_save(&m, path, &err) == NST_ERR_ARG && strstr(err.msg, "bad name"), "'%s'", err.msg);
    strcpy(m.tensors[0].name, "t");
    CHECK(nstm_add_string(&m, "s", "ok", &err) == NST_OK, "%s", err.msg);
    m.strings[0].value[0] = (char)0xff;
    unsigned char *buf = NULL;
    size_t n = 0;
    CHECK(nstm_save_memory(&m, &buf, &n, &err) == NST_ERR_ARG && !buf && strstr(err.msg, "UTF-8"), "'%s'", err.msg);
    CHECK(access(path, F_OK) != 0 && temp_files_left() == 0, "a refused save wrote something");
    nstm_free(&m);
}

/* A save that fails keeps the old file and leaves no temporary. The write is made to
 * fail by a file size limit, which (unlike permissions) holds for root too. */
static void test_failed_save(void) {
    char path[256];
    nst_error err;
    nstm_model m;
    small_model(&m);
    path_in(path, sizeof path, "keep.nstm");
    CHECK(nstm_save(&m, path, &err) == NST_OK, "%s", err.msg);
    size_t n0 = 0;
    unsigned char *before = read_all(path, &n0);

    int dims[1] = {1 << 16}; /* 256 KiB of floats */
    CHECK(nstm_add_tensor(&m, "big", 1, dims, NULL, &err) == NST_OK, "%s", err.msg);
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        nst_status st = nstm_save(&m, path, &err);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(st == NST_ERR_IO && strstr(err.msg, path) && strstr(err.msg, "write failed") && !strchr(err.msg, '\n'),
              "save past the size limit: %s '%s'", nst_status_name(st), err.msg);
    } else {
        printf("note: cannot lower RLIMIT_FSIZE; failed-write case skipped\n");
    }
    signal(SIGXFSZ, prev);
    size_t n1 = 0;
    unsigned char *after = read_all(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "old file changed by a failed save");
    CHECK(temp_files_left() == 0, "temporary file left after a failed save");
    free(before);
    free(after);

    /* an unwritable folder: root writes anyway, so only checked for other users */
    char ro[256], inner[300];
    path_in(ro, sizeof ro, "readonly");
    mkdir(ro, 0700);
    snprintf(inner, sizeof inner, "%s/m.nstm", ro);
    CHECK(nstm_save(&m, inner, &err) == NST_OK, "%s", err.msg);
    if (geteuid() != 0 && chmod(ro, 0500) == 0) {
        nstm_model m2 = {0};
        CHECK(nstm_save(&m2, inner, &err) == NST_ERR_IO && strstr(err.msg, inner), "save in read-only folder: '%s'",
              err.msg);
        nstm_model r;
        CHECK(nstm_load(&r, inner, NULL, &err) == NST_OK && r.n_tensors == m.n_tensors, "old file lost: %s", err.msg);
        nstm_free(&r);
        chmod(ro, 0700);
    }
    unlink(inner);
    rmdir(ro);
    snprintf(inner, sizeof inner, "%s/no/such/folder/m.nstm", g_dir);
    CHECK(nstm_save(&m, inner, &err) == NST_ERR_IO && strstr(err.msg, inner), "save in a missing folder: '%s'",
          err.msg);
    nstm_free(&m);
}

/* Inputs found by tests/fuzz_model.c: none so far (the harness ran 10 minutes without a
 * finding). The corpus seeds are loaded here so that they stay what they claim to be. */
static void test_seeds(void) {
    nstm_model m;
    char path[512];
    nst_error err;
    if (write_corpus(g_dir) != 0) {
        CHECK(0, "write_corpus");
        return;
    }
    static const char *const GOOD[] = {"small.nstm", "empty_model.nstm", "network.nstm"};
    for (size_t i = 0; i < 3; i++) {
        path_in(path, sizeof path, GOOD[i]);
        CHECK(nstm_load(&m, path, NULL, &err) == NST_OK, "seed %s: %s", GOOD[i], err.msg);
        nstm_free(&m);
    }
    path_in(path, sizeof path, "truncated.nstm");
    expect_file_fail("seed truncated", path, NST_ERR_FORMAT, "truncated");
    path_in(path, sizeof path, "bad_checksum.nstm");
    expect_file_fail("seed bad_checksum", path, NST_ERR_FORMAT, "checksum mismatch");
    path_in(path, sizeof path, "version2.nstm");
    expect_file_fail("seed version2", path, NST_ERR_FORMAT, "newer than");
}

static void remove_tree(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* The user's file size limit: refused just below the file's size, before reading it,
 * with one line naming the file, its size, the limit and how to raise it; loaded at it. */
static void test_size_limit(void) {
    char path[128];
    path_in(path, sizeof path, "limit.nstm");
    nstm_model m, r;
    nst_error err;
    small_model(&m);
    CHECK(nstm_save(&m, path, &err) == NST_OK, "save: %s", err.msg);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size > 0, "stat");
    nst_limits lim = {0, (size_t)sb.st_size - 1};
    memset(&r, 0x5a, sizeof r);
    CHECK(nstm_load(&r, path, &lim, &err) == NST_ERR_LIMIT && r.n_tensors == 0 && r.tensors == NULL,
          "below the limit: %s", err.msg);
    char want[512];
    snprintf(want, sizeof want, "%s: file is %lld bytes (%.2f MB), more than the limit of %lld bytes (%.2f MB); "
             "raise it with --max-file-mb N or NST_MAX_FILE_MB=N", path, (long long)sb.st_size,
             (double)sb.st_size / 1048576, (long long)sb.st_size - 1, (double)(sb.st_size - 1) / 1048576);
    CHECK(strcmp(err.msg, want) == 0, "message '%s', want '%s'", err.msg, want);
    lim.max_file_bytes = (size_t)sb.st_size;
    CHECK(nstm_load(&r, path, &lim, &err) == NST_OK && nstm_models_equal(&m, &r), "at the limit: %s", err.msg);
    nstm_free(&r);
    /* a user limit above the format's own still leaves the format's in force */
    lim.max_file_bytes = (size_t)NSTM_MAX_FILE_BYTES * 2;
    CHECK(nstm_load(&r, path, &lim, &err) == NST_OK, "a large limit: %s", err.msg);
    nstm_free(&r);
    nstm_free(&m);
    unlink(path);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) return write_corpus(argv[2]);
    snprintf(g_dir, sizeof g_dir, "/tmp/nst_test_model_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_crc_and_exact_bytes();
    test_round_trip();
    test_lookups();
    test_truncation_and_corruption();
    test_header_refusals();
    test_record_refusals();
    test_files();
    test_builders_and_save_checks();
    test_failed_save();
    test_seeds();
    test_size_limit();
    remove_tree(g_dir);
    TEST_DONE();
}
