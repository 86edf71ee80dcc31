/* fuzz_weights.c - libFuzzer entry point for the VGG19 weights loader: each input is
 * written as model.json into a temporary weights folder and loaded with nst_vgg19_load.
 * Not part of the CMake build; scripts/fuzz.sh builds and runs it (seeds in
 * tests/fuzz/corpus/weights/, dictionary in tests/fuzz/weights.dict).
 *
 * The real shards are 20 MB; a few small shard files, written once at start, keep every
 * run fast. Their sizes match some tensors exactly (conv1_1's kernel and bias as uint8,
 * a 64-value bias as float32, ...), so the fuzzer can get past the size checks into the
 * decoding and offset bookkeeping. A folder and a file outside the weights folder are
 * there too, for the "not a regular file" and ".." paths. A full, valid load needs ~20 MB
 * of shards and is out of reach: every run ends in an error, which must be a single line
 * naming the folder or its model.json, with nothing leaked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nst.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_root[64];      /* holds the weights folder and a file beside it */
static char g_dir[128];      /* the weights folder */
static char g_json[192];     /* its model.json */

/* name, size in bytes */
static const struct { const char *name; size_t size; } SHARDS[] = {
    {"group1-shard1of20.bin", 1728}, /* block1_conv1/kernel, uint8: 3*3*3*64 */
    {"group1-shard2of20.bin", 64},   /* block1_conv1/bias, uint8 */
    {"group1-shard3of20.bin", 256},  /* a 64-value bias as float32, or block3 bias as uint8 */
    {"group1-shard4of20.bin", 128},  /* block2 bias as uint8, or a 64-value bias as uint16 */
    {"group1-shard5of20.bin", 300},  /* fits nothing */
    {"group1-shard6of20.bin", 0},    /* empty */
};

static void write_file(const char *path, size_t size, unsigned seed) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    for (size_t i = 0; i < size; i++) fputc((int)((i * 131 + seed * 17) & 0xff), f);
    if (fclose(f) != 0) abort();
}

static void cleanup(void) {
    char path[256];
    for (size_t i = 0; i < sizeof SHARDS / sizeof SHARDS[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, SHARDS[i].name);
        unlink(path);
    }
    unlink(g_json);
    snprintf(path, sizeof path, "%s/adir", g_dir);
    rmdir(path);
    rmdir(g_dir);
    snprintf(path, sizeof path, "%s/outside.bin", g_root);
    unlink(path);
    rmdir(g_root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(g_root, sizeof g_root, "/tmp/nst_fuzz_weights_XXXXXX");
    if (!mkdtemp(g_root)) abort();
    snprintf(g_dir, sizeof g_dir, "%s/w", g_root);
    snprintf(g_json, sizeof g_json, "%s/model.json", g_dir);
    if (mkdir(g_dir, 0700) != 0) abort();
    char path[256];
    for (size_t i = 0; i < sizeof SHARDS / sizeof SHARDS[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, SHARDS[i].name);
        write_file(path, SHARDS[i].size, (unsigned)i);
    }
    snprintf(path, sizeof path, "%s/adir", g_dir); /* a shard path naming a folder */
    if (mkdir(path, 0700) != 0) abort();
    snprintf(path, sizeof path, "%s/outside.bin", g_root); /* reachable only through ".." */
    write_file(path, 64, 99);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(g_json, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();

    nst_vgg19 *net = (nst_vgg19 *)1; /* must be reset to NULL on failure */
    nst_error err;
    memset(&err, 0, sizeof err);
    nst_status st = nst_vgg19_load(&net, g_dir, 0, &err);
    if (st == NST_OK) {
        if (!net) abort();
        nst_vgg19_free(net);
        return 0;
    }
    /* One line, naming the folder (hence model.json or the shard) unless memory ran out. */
    if (net != NULL || err.msg[0] == '\0' || strchr(err.msg, '\n') || strchr(err.msg, '\r')) {
        fprintf(stderr, "bad error: status %d, net %p, message '%s'\n", (int)st, (void *)net, err.msg);
        abort();
    }
    if (st != NST_ERR_NOMEM && !strstr(err.msg, g_dir)) {
        fprintf(stderr, "error does not name the file: '%s'\n", err.msg);
        abort();
    }
    return 0;
}
