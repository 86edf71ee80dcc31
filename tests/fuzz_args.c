/* fuzz_args.c - libFuzzer entry point for the command line's parsers: the option parser
 * (src/cli/options.c: cli_parse over a table with flags, values, short forms, aliases and
 * a repeatable option; cli_split_list), the value parsers in src/cli/common.c
 * (parse_int, parse_float, parse_layers, parse_float_list) and output_prepare
 * (src/cli/files.c). The input is split at NUL bytes into strings; every string goes
 * through every value parser, and all of them together are one command line for
 * cli_parse; whatever a parser accepts is checked against its contract (in range,
 * finite, known layers, no more than the room given, every item from the table with a
 * value exactly when it takes one). output_prepare gets each string as a file name
 * inside a temporary folder, which holds a writable and a read-only subfolder. Not part
 * of the CMake build; scripts/fuzz.sh builds it with those files and runs it on
 * tests/fuzz/corpus/args/. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];

static void cleanup(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/rw", g_dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/ro", g_dir);
    rmdir(path);
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* The parsers report errors on stderr: millions of lines would drown the fuzzer's
     * own. Only the stdio stream is swapped (glibc's stderr is assignable): fd 2 stays
     * open, since libFuzzer (which copied the stderr pointer before main) and the
     * sanitizers write their reports there. */
    FILE *null = fopen("/dev/null", "w");
    if (!null) abort();
    stderr = null;
    stdout = null; /* --help and --version print there */
    snprintf(g_dir, sizeof g_dir, "/tmp/nst_fuzz_args_XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    char path[128];
    snprintf(path, sizeof path, "%s/rw", g_dir);
    if (mkdir(path, 0700) != 0) abort();
    snprintf(path, sizeof path, "%s/ro", g_dir);
    if (mkdir(path, 0500) != 0) abort();
    atexit(cleanup);
    return 0;
}

/* Ranges the command line really uses (sizes, steps, seeds, weights...). */
static const long INT_RANGES[][2] = {{1, 65535}, {0, 1000000}, {0, LONG_MAX}, {LONG_MIN, LONG_MAX}, {-5, 5}};
static const double FLOAT_RANGES[][2] = {{0.0, 1e30}, {1e-6, 10.0}, {-1.0, 1.0}, {0.0, 0.0}};

static void check_one(const char *s) {
    for (size_t r = 0; r < sizeof INT_RANGES / sizeof INT_RANGES[0]; r++) {
        long v = 12345;
        if (parse_int("--int", s, INT_RANGES[r][0], INT_RANGES[r][1], &v)) {
            if (v < INT_RANGES[r][0] || v > INT_RANGES[r][1]) abort();
        } else if (v != 12345) {
            abort(); /* a rejected value must leave the output alone */
        }
    }
    for (size_t r = 0; r < sizeof FLOAT_RANGES / sizeof FLOAT_RANGES[0]; r++) {
        double v = 0.5;
        if (parse_float("--float", s, FLOAT_RANGES[r][0], FLOAT_RANGES[r][1], &v)) {
            if (!isfinite(v) || v < FLOAT_RANGES[r][0] || v > FLOAT_RANGES[r][1]) abort();
        }
    }

    nst_tap taps[NST_MAX_TAPS];
    int n = -1;
    if (parse_layers("--layers", s, taps, &n)) {
        if (n < 0 || n > NST_MAX_TAPS) abort();
        for (int i = 0; i < n; i++)
            if (taps[i].layer < 0 || taps[i].layer >= NST_NUM_LAYERS || !isfinite(taps[i].weight) ||
                taps[i].weight < 0.0f)
                abort();
    }

    /* a guard value after the room given catches writes past max */
    float vals[NST_MAX_STYLES + 1];
    for (int max = 0; max <= NST_MAX_STYLES; max += 4) {
        vals[max] = -7.0f;
        int k = parse_float_list("--list", s, vals, max);
        if (k < -1 || k > max || vals[max] != -7.0f) abort();
        for (int i = 0; i < k; i++)
            if (!isfinite(vals[i]) || vals[i] < 0.0f) abort();
    }

    /* the string as a file name in the temporary folder, and in its subfolders */
    static const char *const SUB[] = {"", "rw/", "ro/", "missing/"};
    for (size_t i = 0; i < sizeof SUB / sizeof SUB[0]; i++) {
        size_t len = strlen(g_dir) + 1 + strlen(SUB[i]) + strlen(s) + 1;
        char *path = malloc(len);
        if (!path) abort();
        snprintf(path, len, "%s/%s%s", g_dir, SUB[i], s);
        nst_save_options opt = {0};
        char out[8192];
        /* no default name: a folder is refused, so nothing is created */
        if (output_prepare("-o", path, NULL, &opt, NULL, out, sizeof out) == EXIT_OK) {
            /* accepted: a known format, and the whole folder part must be writable */
            if (!nst_format_writable(opt.format) || strcmp(out, path) != 0) abort();
            *strrchr(path, '/') = '\0';
            if (access(path, W_OK | X_OK) != 0) abort();
        }
        free(path);
    }
}

static const cli_opt OPTS[] = {
    {1000, "content", 0, "FILE", "x", 0},
    {1001, "style", 0, "FILE", "x", OPT_REPEAT},
    {1002, "output", 'o', "FILE", "x", 0},
    {1003, "preserve-colors", 0, NULL, "x", 0},
    {1002, "output_image", 0, "FILE", NULL, OPT_ALIAS},
    {1003, "original_colors", 0, "0|1", NULL, OPT_ALIAS},
    CLI_QUIET_OPT,
    {0},
};
static const cli_cmd CMD = {"fuzz", "", "", OPTS, NULL};

static void check_list(const char *s) {
    char **items;
    int n = cli_split_list("--list", s, &items, 8);
    if (n < 0) return;
    if (n < 1 || n > 8) abort();
    for (int i = 0; i < n; i++) {
        size_t len = strlen(items[i]);
        if (len == 0 || len > strlen(s) || items[i][0] == ' ' || items[i][0] == '\t') abort();
    }
    free(items);
}

/* All the strings as one command line (argv[0] is the command). */
static void check_parse(char **argv, int argc) {
    cli_args a;
    if (cli_parse(&CMD, argc, argv, &a) != 0) return;
    if (a.n_items + a.n_positional > argc - 1) abort();
    int singles[2] = {0, 0};
    for (int i = 0; i < a.n_items; i++) {
        const cli_opt *o = a.items[i].opt;
        if (o < OPTS || o >= OPTS + sizeof OPTS / sizeof OPTS[0] - 1) abort();
        if ((o->value != NULL) != (a.items[i].value != NULL)) abort();
        if (o->id == 1000) singles[0]++;
        if (o->id == 1002) singles[1]++;
    }
    if (singles[0] > 1 || singles[1] > 1) abort(); /* a single-valued option twice is refused */
    cli_args_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private NUL-terminated copy, so that the last string ends too */
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[65] = {"fuzz"};
    int argc = 1;
    for (size_t start = 0; start <= size;) {
        char *s = buf + start;
        check_one(s);
        check_list(s);
        if (argc < 64) argv[argc++] = s;
        start += strlen(s) + 1;
    }
    argv[argc] = NULL;
    check_parse(argv, argc);
    free(buf);
    return 0;
}
