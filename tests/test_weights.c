/* test_weights.c - the weights loader on malformed manifests and shards: each case is
 * written to a fresh temporary folder, and nst_vgg19_load must fail with a one-line
 * error that names model.json or the shard at fault, leaving nothing allocated. Some
 * cases are the inputs tests/fuzz_weights.c found (control characters that broke the
 * one-line messages). The real weights in NST_SHARED_DIR are not needed. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nst.h"
#include "test_util.h"

static char g_root[64];
static int g_case = 0;

static void write_bytes(const char *dir, const char *name, const void *data, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* A shard of len bytes (arbitrary values). */
static void write_shard(const char *dir, const char *name, size_t len) {
    unsigned char *buf = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)(i * 7);
    write_bytes(dir, name, buf, len);
    free(buf);
}

/* A new empty weights folder for one case. */
static void new_dir(char *dir, size_t len) {
    snprintf(dir, len, "%s/case%02d", g_root, ++g_case);
    if (mkdir(dir, 0700) != 0) {
        perror(dir);
        exit(1);
    }
}

/* Loads dir; checks that it fails with status want (or any failure for want < 0) and
 * a one-line message holding both substrings (NULL: not checked). */
static void expect_fail(const char *what, const char *dir, int want, const char *sub1,
                        const char *sub2) {
    nst_vgg19 *net = (nst_vgg19 *)1;
    nst_error err;
    memset(&err, 0, sizeof err);
    nst_status st = nst_vgg19_load(&net, dir, 0, &err);
    CHECK(st != NST_OK, "%s: loaded", what);
    if (st == NST_OK) {
        nst_vgg19_free(net);
        return;
    }
    CHECK(net == NULL, "%s: net not reset", what);
    CHECK(want < 0 || (int)st == want, "%s: status %s, wanted %s", what, nst_status_name(st),
          nst_status_name((nst_status)want));
    CHECK(err.msg[0] && !strchr(err.msg, '\n') && !strchr(err.msg, '\r'), "%s: not one line: '%s'",
          what, err.msg);
    CHECK(strstr(err.msg, dir) != NULL, "%s: does not name the folder: '%s'", what, err.msg);
    CHECK(!sub1 || strstr(err.msg, sub1), "%s: '%s' lacks '%s'", what, err.msg, sub1);
    CHECK(!sub2 || strstr(err.msg, sub2), "%s: '%s' lacks '%s'", what, err.msg, sub2);
}

/* Writes model.json from a printf format, then expects the load to fail. */
static void manifest_case(const char *what, const char *dir, int want, const char *sub1,
                          const char *sub2, const char *fmt, ...) {
    static char json[20000];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof json) {
        fprintf(stderr, "%s: manifest too long\n", what);
        exit(1);
    }
    write_bytes(dir, "model.json", json, (size_t)n);
    expect_fail(what, dir, want, sub1, sub2);
}

#define Q8 "\"quantization\":{\"dtype\":\"uint8\",\"scale\":0.01,\"min\":-1}"
/* conv1_1's kernel (1728 values) and bias (64), uint8, in shards s1 and s2 */
#define KERNEL11 "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float32\"," Q8 "}"
#define BIAS11 "{\"name\":\"block1_conv1/bias\",\"shape\":[64],\"dtype\":\"float32\"," Q8 "}"
#define GROUP(paths, weights) "{\"weightsManifest\":[{\"paths\":[" paths "],\"weights\":[" weights "]}]}"

static void remove_tree(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/nst_test_weights_XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        return 1;
    }
    char d[256];

    /* the manifest itself */
    new_dir(d, sizeof d);
    expect_fail("no model.json", d, NST_ERR_IO, "model.json", "cannot open");
    new_dir(d, sizeof d);
    manifest_case("empty file", d, NST_ERR_FORMAT, "model.json", "not valid JSON", "%s", "");
    new_dir(d, sizeof d);
    manifest_case("not JSON", d, NST_ERR_FORMAT, "model.json", "not valid JSON", "%s", "{\"weightsManifest\":[");
    new_dir(d, sizeof d);
    {   /* cJSON stops at 1000 levels instead of running out of stack */
        char deep[4100];
        memset(deep, '[', 4000);
        deep[4000] = '\0';
        manifest_case("deeply nested", d, NST_ERR_FORMAT, "model.json", "not valid JSON", "%s", deep);
    }
    new_dir(d, sizeof d);
    manifest_case("no weightsManifest", d, NST_ERR_FORMAT, "model.json", "no weightsManifest", "%s",
                  "{\"modelTopology\":{}}");
    new_dir(d, sizeof d);
    manifest_case("weightsManifest of the wrong type", d, NST_ERR_FORMAT, "model.json", NULL, "%s",
                  "{\"weightsManifest\":{\"paths\":[]}}");
    new_dir(d, sizeof d);
    manifest_case("group without paths", d, NST_ERR_FORMAT, "model.json", "without paths", "%s",
                  "{\"weightsManifest\":[{\"weights\":[]}]}");

    /* tensor entries */
    new_dir(d, sizeof d);
    write_shard(d, "s1", 1728);
    manifest_case("wrong dtype", d, NST_ERR_FORMAT, "model.json", "unsupported dtype int32",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"int32\"}"));
    manifest_case("wrong shape", d, NST_ERR_FORMAT, "model.json", "wrong shape (VGG19 needs [3,3,3,64])",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,64,3],\"dtype\":\"float32\"," Q8 "}"));
    manifest_case("shape of the wrong rank", d, NST_ERR_FORMAT, "model.json", "wrong shape",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[1728],\"dtype\":\"float32\"," Q8 "}"));
    manifest_case("shape with a string", d, NST_ERR_FORMAT, "model.json", "wrong shape",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,\"3\",64],\"dtype\":\"float32\"," Q8 "}"));
    manifest_case("unknown tensor", d, NST_ERR_FORMAT, "model.json", "unexpected tensor block6_conv1/kernel",
                  GROUP("\"s1\"", "{\"name\":\"block6_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float32\"}"));
    manifest_case("name with trailing words", d, NST_ERR_FORMAT, "model.json", "unexpected tensor",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel extra\",\"shape\":[3,3,3,64],\"dtype\":\"float32\"," Q8 "}"));
    manifest_case("name with leading zeros", d, NST_ERR_FORMAT, "model.json", "unexpected tensor",
                  GROUP("\"s1\"", "{\"name\":\"block01_conv+1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float32\"," Q8 "}"));
    manifest_case("name missing", d, NST_ERR_FORMAT, "model.json", "without name",
                  GROUP("\"s1\"", "{\"shape\":[3,3,3,64],\"dtype\":\"float32\"}"));
    manifest_case("unsupported quantization", d, NST_ERR_FORMAT, "model.json", "unsupported quantization int4",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float32\","
                                  "\"quantization\":{\"dtype\":\"int4\",\"scale\":1,\"min\":0}}"));
    manifest_case("quantization without scale", d, NST_ERR_FORMAT, "model.json", "bad quantization",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float32\","
                                  "\"quantization\":{\"dtype\":\"uint8\",\"min\":0}}"));
    /* cJSON reads 1e999 as infinity; 1e308 * 255 overflows a float */
    static const char *const BAD_QUANT[] = {"\"scale\":1e999,\"min\":0", "\"scale\":0.1,\"min\":-1e999",
                                            "\"scale\":1e308,\"min\":-1e308", "\"scale\":-1,\"min\":0",
                                            "\"scale\":1e37,\"min\":0"};
    for (size_t i = 0; i < sizeof BAD_QUANT / sizeof BAD_QUANT[0]; i++)
        manifest_case(BAD_QUANT[i], d, NST_ERR_FORMAT, "model.json", "out of range",
                      GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float32\","
                                      "\"quantization\":{\"dtype\":\"uint8\",%s}}"),
                      BAD_QUANT[i]);

    /* control characters in manifest strings: found by fuzz_weights, they made the
     * message span several lines */
    manifest_case("newline in the quantization dtype", d, NST_ERR_FORMAT, "model.json", "unsupported quantization ui?7",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float32\","
                                  "\"quantization\":{\"dtype\":\"ui\\n7\",\"scale\":1,\"min\":0}}"));
    manifest_case("newline in the dtype", d, NST_ERR_FORMAT, "model.json", "unsupported dtype float?32",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float\\r32\"}"));
    manifest_case("newline in the name", d, NST_ERR_FORMAT, "model.json", "unexpected tensor block1_conv1/kernel?",
                  GROUP("\"s1\"", "{\"name\":\"block1_conv1/kernel\\n\",\"shape\":[3,3,3,64],\"dtype\":\"float32\"}"));
    manifest_case("carriage return in a shard path", d, NST_ERR_FORMAT, "model.json", "bad shard path",
                  GROUP("\"s\\r1\"", KERNEL11));
    manifest_case("raw control byte in a shard path", d, NST_ERR_FORMAT, "model.json", "bad shard path",
                  GROUP("\"s\x01" "1\"", KERNEL11));

    /* shard paths */
    manifest_case("shard path with ..", d, NST_ERR_FORMAT, "model.json", "bad shard path",
                  GROUP("\"../case01/s1\"", KERNEL11));
    manifest_case("absolute shard path", d, NST_ERR_FORMAT, "model.json", "bad shard path",
                  GROUP("\"/etc/hostname\"", KERNEL11));
    manifest_case("shard path not a string", d, NST_ERR_FORMAT, "model.json", "bad shard path",
                  GROUP("17", KERNEL11));
    manifest_case("missing shard", d, NST_ERR_IO, "/nothere.bin", "cannot open",
                  GROUP("\"nothere.bin\"", KERNEL11));
    {
        char longpath[8500];
        memset(longpath, 'a', sizeof longpath - 1);
        longpath[sizeof longpath - 1] = '\0';
        manifest_case("overlong shard path", d, NST_ERR_FORMAT, "model.json", "too long",
                      GROUP("\"%s\"", KERNEL11), longpath);
    }
    char sub[300];
    snprintf(sub, sizeof sub, "%s/adir", d);
    mkdir(sub, 0700);
    manifest_case("shard is a folder", d, NST_ERR_IO, "/adir", "not a regular file", GROUP("\"adir\"", KERNEL11));
    snprintf(sub, sizeof sub, "%s/fifo", d);
    if (mkfifo(sub, 0600) == 0) /* must be refused, not waited on */
        manifest_case("shard is a FIFO", d, NST_ERR_IO, "/fifo", "not a regular file", GROUP("\"fifo\"", KERNEL11));

    /* shard sizes and the tensors in them */
    new_dir(d, sizeof d);
    write_shard(d, "s1", 1728);
    write_shard(d, "s2", 64);
    write_shard(d, "short", 1000);
    write_shard(d, "long", 1729);
    write_shard(d, "empty", 0);
    /* found by fuzz_weights: an empty first shard made memcpy offset a NULL buffer (UBSan) */
    manifest_case("empty first shard", d, NST_ERR_FORMAT, "model.json", "block1_conv2/kernel is missing",
                  GROUP("\"empty\",\"s1\",\"empty\",\"s2\"", KERNEL11 "," BIAS11));
    manifest_case("empty shard only", d, NST_ERR_FORMAT, "model.json", "truncated", GROUP("\"empty\"", KERNEL11));
    manifest_case("truncated shard", d, NST_ERR_FORMAT, "model.json", "truncated", GROUP("\"short\"", KERNEL11));
    manifest_case("truncated shard, float32", d, NST_ERR_FORMAT, "model.json", "truncated",
                  GROUP("\"s1\",\"s2\"", "{\"name\":\"block1_conv1/kernel\",\"shape\":[3,3,3,64],\"dtype\":\"float32\"}"));
    manifest_case("extra bytes in the shards", d, NST_ERR_FORMAT, "model.json", "shards hold 1729 bytes",
                  GROUP("\"long\"", KERNEL11));
    manifest_case("missing tensor", d, NST_ERR_FORMAT, "model.json", "block1_conv2/kernel is missing",
                  GROUP("\"s1\",\"s2\"", KERNEL11 "," BIAS11));
    manifest_case("duplicate tensor", d, NST_ERR_FORMAT, "model.json", "block1_conv1/kernel is repeated",
                  GROUP("\"s1\",\"s1\",\"s2\"", KERNEL11 "," KERNEL11 "," BIAS11));
    manifest_case("duplicate tensor in two groups", d, NST_ERR_FORMAT, "model.json", "block1_conv1/bias is repeated",
                  "{\"weightsManifest\":[{\"paths\":[\"s1\",\"s2\"],\"weights\":[" KERNEL11 "," BIAS11 "]},"
                  "{\"paths\":[\"s2\"],\"weights\":[" BIAS11 "]}]}");
    {   /* many groups, all empty, then nothing: every tensor is missing */
        char many[8000] = "{\"weightsManifest\":[";
        for (int i = 0; i < 300; i++) strcat(many, i ? ",{\"paths\":[],\"weights\":[]}" : "{\"paths\":[],\"weights\":[]}");
        strcat(many, "]}");
        manifest_case("many empty groups", d, NST_ERR_FORMAT, "model.json", "block1_conv1/kernel is missing", "%s", many);
    }

    /* oversized streams: refused before they are read into memory */
    new_dir(d, sizeof d);
    char big[300];
    snprintf(big, sizeof big, "%s/big.bin", d);
    int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    /* sparse: takes no disk space; more than the 80 MB of VGG19 as float32 */
    CHECK(fd >= 0 && ftruncate(fd, (off_t)100 << 20) == 0, "cannot make %s", big);
    if (fd >= 0) close(fd);
    manifest_case("shard larger than VGG19", d, NST_ERR_LIMIT, "/big.bin", "limit", GROUP("\"big.bin\"", KERNEL11));
    snprintf(big, sizeof big, "%s/mid.bin", d);
    fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)30 << 20) == 0, "cannot make %s", big);
    if (fd >= 0) close(fd);
    manifest_case("one shard named again and again", d, NST_ERR_LIMIT, "/mid.bin", "more than",
                  GROUP("\"mid.bin\",\"mid.bin\",\"mid.bin\",\"mid.bin\"", KERNEL11));

    remove_tree(g_root);
    TEST_DONE();
}
