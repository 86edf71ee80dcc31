/* test_tuning.c - nst_tuning_from_env parses every variable of docs/environment.md (bad
 * values ignored as documented), the library reads none of them itself (a variable set
 * in the environment changes nothing that a tuning did not say), a tuning carried in a
 * config or given at load reaches the kernels, and a config's thread count is scoped to
 * the call. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "net/vgg19.h"
#include "tensor/ops.h"
#include "test_util.h"
#include "util/util.h"

static const char *const VARS[] = {"NST_KERNEL", "NST_CONV", "NST_CUDNN_SEARCH", "NST_CUDNN_CACHE",
                                   "XDG_CACHE_HOME", "HOME", "NST_CUDA_OWN_CONV", "NST_CUDA_PROFILE",
                                   "NST_CUDA_GRAPH", "NST_CUDA_LOSS_STREAM", "NST_CUDA_LANES", "TMPDIR"};
#define NVARS (sizeof VARS / sizeof VARS[0])

static nst_tuning from_env(void) {
    nst_tuning t;
    nst_error err;
    memset(&t, 0x5a, sizeof t); /* every field must be written */
    CHECK(nst_tuning_from_env(&t, &err) == NST_OK, "from_env");
    return t;
}

static void clear_env(void) {
    for (size_t i = 0; i < NVARS; i++) unsetenv(VARS[i]);
}

static void test_parse(void) {
    clear_env();
    nst_tuning t = from_env(), zero = {0};
    CHECK(memcmp(&t, &zero, sizeof t) == 0, "nothing set: the zeroed defaults");

    static const struct { const char *v; nst_kernel k; } kern[] = {
        {"portable", NST_KERNEL_PORTABLE}, {"avx2", NST_KERNEL_AVX2}, {"avx512", NST_KERNEL_AVX512},
        {"avx512bf16", NST_KERNEL_AVX512_BF16}, {"amx", NST_KERNEL_BEST},
        {"", NST_KERNEL_BEST},             {"AVX2", NST_KERNEL_BEST}, {"bogus", NST_KERNEL_BEST}};
    for (size_t i = 0; i < sizeof kern / sizeof kern[0]; i++) {
        setenv("NST_KERNEL", kern[i].v, 1);
        CHECK(from_env().kernel == kern[i].k, "NST_KERNEL=%s", kern[i].v);
    }
    unsetenv("NST_KERNEL");

    setenv("NST_CONV", "direct", 1);
    CHECK(from_env().conv_direct == 1, "NST_CONV=direct");
    setenv("NST_CONV", "winograd", 1);
    CHECK(from_env().conv_direct == 0, "NST_CONV=winograd: the default");
    unsetenv("NST_CONV");

    static const struct { const char *v; nst_cudnn_search s; } search[] = {
        {"1", NST_CUDNN_SEARCH_MEASURE}, {"0", NST_CUDNN_SEARCH_HEURISTIC}, {"flip", NST_CUDNN_SEARCH_FLIP},
        {"own", NST_CUDNN_SEARCH_OWN},   {"", NST_CUDNN_SEARCH_DEFAULT},    {"yes", NST_CUDNN_SEARCH_HEURISTIC}};
    for (size_t i = 0; i < sizeof search / sizeof search[0]; i++) {
        setenv("NST_CUDNN_SEARCH", search[i].v, 1);
        CHECK(from_env().cudnn_search == search[i].s, "NST_CUDNN_SEARCH=%s", search[i].v);
    }
    unsetenv("NST_CUDNN_SEARCH");

    /* the cache: explicit, "0" or "" for none; else XDG, else HOME (whose folders may be made) */
    setenv("HOME", "/home/u", 1);
    t = from_env();
    CHECK(!strcmp(t.cudnn_cache, "/home/u/.cache/nst/cudnn-algos.txt") && t.cudnn_cache_mkdir, "HOME: %s",
          t.cudnn_cache);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    t = from_env();
    CHECK(!strcmp(t.cudnn_cache, "/xdg/nst/cudnn-algos.txt") && t.cudnn_cache_mkdir, "XDG: %s", t.cudnn_cache);
    setenv("XDG_CACHE_HOME", "", 1);
    CHECK(!strcmp(from_env().cudnn_cache, "/home/u/.cache/nst/cudnn-algos.txt"), "empty XDG: HOME's");
    setenv("NST_CUDNN_CACHE", "/tmp/algos.txt", 1);
    t = from_env();
    CHECK(!strcmp(t.cudnn_cache, "/tmp/algos.txt") && !t.cudnn_cache_mkdir, "NST_CUDNN_CACHE: %s", t.cudnn_cache);
    setenv("NST_CUDNN_CACHE", "0", 1);
    CHECK(from_env().cudnn_cache[0] == 0, "NST_CUDNN_CACHE=0: no file");
    setenv("NST_CUDNN_CACHE", "", 1);
    CHECK(from_env().cudnn_cache[0] == 0, "NST_CUDNN_CACHE empty: no file");
    unsetenv("NST_CUDNN_CACHE");
    unsetenv("HOME");
    unsetenv("XDG_CACHE_HOME");
    CHECK(from_env().cudnn_cache[0] == 0, "no HOME: no file");
    char *longp = malloc(NST_PATH_MAX + 10);
    memset(longp, 'a', NST_PATH_MAX + 9);
    longp[0] = '/';
    longp[NST_PATH_MAX + 9] = 0;
    setenv("NST_CUDNN_CACHE", longp, 1);
    CHECK(from_env().cudnn_cache[0] == 0, "a path too long: no file (not a cut one)");
    setenv("TMPDIR", longp, 1);
    CHECK(from_env().tmp_dir[0] == 0, "TMPDIR too long: /tmp");
    unsetenv("NST_CUDNN_CACHE");
    free(longp);

    static const char *const flags[] = {"NST_CUDA_OWN_CONV", "NST_CUDA_PROFILE", "NST_CUDA_GRAPH",
                                        "NST_CUDA_LOSS_STREAM"};
    static const char *const on[] = {"0", "1", "0", "0"}, *const off[] = {"1", "0", "1", "1"};
    for (int i = 0; i < 4; i++) {
        for (int pass = 0; pass < 3; pass++) {
            const char *v = pass == 0 ? on[i] : pass == 1 ? off[i] : "maybe";
            setenv(flags[i], v, 1);
            t = from_env();
            int got = i == 0 ? t.cuda_no_own_conv : i == 1 ? t.cuda_profile : i == 2 ? t.cuda_no_graph : t.cuda_one_stream;
            CHECK(got == (pass == 0), "%s=%s: %d", flags[i], v, got);
        }
        unsetenv(flags[i]);
    }

    static const struct { const char *v; int lanes; } lanes[] = {
        {"1", 1}, {"8", 8}, {"3", 3}, {"0", 0}, {"9", 0}, {"-2", 0}, {"many", 0}, {"", 0}};
    for (size_t i = 0; i < sizeof lanes / sizeof lanes[0]; i++) {
        setenv("NST_CUDA_LANES", lanes[i].v, 1);
        CHECK(from_env().cuda_lanes == lanes[i].lanes, "NST_CUDA_LANES=%s", lanes[i].v);
    }
    unsetenv("NST_CUDA_LANES");

    setenv("TMPDIR", "/scratch", 1);
    CHECK(!strcmp(from_env().tmp_dir, "/scratch"), "TMPDIR");
    unsetenv("TMPDIR");
}

/* Packs take their kernels from the tuning they are given, never from the environment. */
static void test_packs_ignore_env(void) {
    setenv("NST_KERNEL", "portable", 1);
    setenv("NST_CONV", "direct", 1);
    float w[64 * 64 * 9] = {0};
    conv3x3_packed p;
    CHECK(conv3x3_pack(&p, w, 64, 64, NULL, NST_PRECISION_FP32) == 0, "pack");
    CHECK(p.tier == cpu_best_tier() && p.winograd, "NST_KERNEL/NST_CONV in the environment: the pack has the defaults");
    conv3x3_packed_free(&p);
    nst_tuning t = from_env(); /* the same variables, read the one documented way */
    CHECK(conv3x3_pack(&p, w, 64, 64, &t, NST_PRECISION_FP32) == 0, "pack");
    CHECK(p.tier == CPU_PORTABLE && !p.winograd, "the tuning from the environment: portable, direct");
    conv3x3_packed_free(&p);
    unsetenv("NST_KERNEL");
    unsetenv("NST_CONV");
}

/* The network loaded with a tuning runs its kernels; without one, the best. */
static void test_vgg_tuning(nst_vgg19 *best) {
    nst_vgg19 *net = NULL;
    nst_error err;
    nst_tuning t = {0};
    t.kernel = NST_KERNEL_PORTABLE;
    CHECK(nst_vgg19_load_tuned(&net, nst_vgg19_dir(best), 4, &t, &err) == NST_OK, "%s", err.msg);
    if (!net) return;
    CHECK(net->tier == CPU_PORTABLE && net->conv[0].packed.tier == CPU_PORTABLE &&
              net->conv[1].packed.tier == CPU_PORTABLE,
          "kernel portable reaches the packs");
    CHECK(net->conv[1].packed.fwd && net->conv[1].packed.bwd, "a portable network keeps its direct packs");
    CHECK(best->tier == cpu_best_tier() && best->conv[1].packed.tier == cpu_best_tier(), "no tuning: the best");
    /* the same layer on both: the portable one equals the portable kernel on the same pack */
    vgg19_acts a;
    CHECK(vgg19_acts_build(&a, 2, 9, 11, NULL, &err) == NST_OK, "%s", err.msg);
    for (int i = 0; i < 3 * 9 * 11; i++) a.input[i] = (float)((i * 37) % 101) - 50.0f;
    vgg19_forward_layer(net, &a, 0);
    size_t n = vgg19_layer_size(&a, 0);
    float *want = malloc(n * sizeof(float));
    conv3x3_forward_ref(want, a.input, net->conv[0].weight, net->conv[0].bias, 3, 64, 9, 11);
    CHECK(rel_l2(a.out[0], want, n) < 1e-6, "portable network's conv1_1 vs the reference");
    free(want);
    vgg19_acts_free(&a);
    nst_vgg19_free(net);
}

typedef struct {
    int max_threads; /* omp_get_max_threads() seen in the progress callback */
} run_log;

static int record(nst_transfer *t, const nst_progress *p, void *user) {
    (void)t, (void)p;
    ((run_log *)user)->max_threads = omp_get_max_threads();
    return 0;
}

static void synthetic(nst_image *img, int side, int seed) {
    nst_error err;
    CHECK(nst_image_alloc(img, side, side, &err) == NST_OK, "alloc");
    for (size_t i = 0; i < (size_t)side * side * 3; i++) img->pixels[i] = (float)((i * (7 + seed)) % 256);
}

/* cfg->threads holds for nst's call (its parallel regions and callbacks) and is given back
 * afterwards: the caller's thread count is as before, on success and on failure. */
static void test_threads_scoped(const nst_vgg19 *net) {
    nst_error err;
    nst_transfer_config cfg;
    CHECK(nst_transfer_preset(&cfg, "seed", &err) == NST_OK, "%s", err.msg);
    cfg.size = 32;
    cfg.steps = 1;
    cfg.device = NST_DEVICE_CPU;
    cfg.n_content_taps = cfg.n_style_taps = 1;
    cfg.content_taps[0].layer = cfg.style_taps[0].layer = nst_layer_index("relu1_1");
    cfg.threads = 1;
    nst_image content = {0}, style = {0}, out = {0};
    synthetic(&content, 32, 1);
    synthetic(&style, 32, 2);
    int before = omp_get_max_threads();
    omp_set_num_threads(3);
    run_log log = {0};
    CHECK(nst_transfer_run(&cfg, net, &content, &style, NULL, 1, record, &log, &out, &err) == NST_OK, "%s", err.msg);
    CHECK(log.max_threads == 1, "threads = 1 inside the run: %d", log.max_threads);
    CHECK(omp_get_max_threads() == 3, "the caller's count is back: %d", omp_get_max_threads());
    nst_image_free(&out);
    cfg.steps = -1; /* refused: the count is given back on failure too */
    CHECK(nst_transfer_run(&cfg, net, &content, &style, NULL, 1, record, &log, &out, &err) != NST_OK, "steps -1 refused");
    CHECK(omp_get_max_threads() == 3, "after a failure: %d", omp_get_max_threads());
    nst_image_free(&out);
    nst_bench_config b;
    nst_bench_defaults(&b);
    b.size = 32, b.iters = 1, b.warmup = 0, b.threads = 1, b.n_taps = 1;
    b.taps[0].layer = nst_layer_index("relu1_1"), b.taps[0].weight = 1.0f;
    nst_bench_result r;
    CHECK(nst_bench_run(&b, net, &r, &err) == NST_OK, "%s", err.msg);
    CHECK(omp_get_max_threads() == 3, "after a bench: %d", omp_get_max_threads());
    CHECK(!strcmp(r.kernel, cpu_tier_name(net->tier)), "bench names the network's kernel: %s", r.kernel);
    omp_set_num_threads(before);
    nst_image_free(&content);
    nst_image_free(&style);
}

/* nst_log hands each line of its text to the tuning's log, and nothing without one. */
typedef struct { char lines[4][64]; int n; } log_capture;

static void capture(void *user, const char *line) {
    log_capture *c = user;
    if (c->n < 4) snprintf(c->lines[c->n], sizeof c->lines[0], "%s", line);
    c->n++;
}

static void test_log(void) {
    nst_tuning t;
    memset(&t, 0, sizeof t);
    nst_log(&t, "dropped %d\n", 1); /* no log: nothing, no crash */
    nst_log(NULL, "dropped\n");
    log_capture c = {0};
    t.log = capture;
    t.log_user = &c;
    nst_log(&t, "profile: %s %d\nsecond line\n", "step", 3);
    nst_log(&t, "no newline");
    CHECK(c.n == 3, "%d lines logged, want 3", c.n);
    CHECK(!strcmp(c.lines[0], "profile: step 3"), "line 1 '%s'", c.lines[0]);
    CHECK(!strcmp(c.lines[1], "second line"), "line 2 '%s'", c.lines[1]);
    CHECK(!strcmp(c.lines[2], "no newline"), "line 3 '%s'", c.lines[2]);
}

int main(void) {
    test_log();
    /* keep what the rest of the run (the weights' search) may need */
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    test_parse();
    test_packs_ignore_env();
    if (home) setenv("HOME", home, 1);
    free(home);
    nst_vgg19 *net = NULL;
    nst_error err;
    if (nst_vgg19_load(&net, NST_SHARED_DIR "/models/vgg19", 4, &err) != NST_OK) {
        CHECK(0, "weights: %s", err.msg);
        TEST_DONE();
    }
    test_vgg_tuning(net);
    test_threads_scoped(net);
    nst_vgg19_free(net);
    TEST_DONE();
}
