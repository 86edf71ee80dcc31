/* tuning.c - nst_tuning_from_env: the one place the library reads the variables that tune
 * its kernels (docs/environment.md). The rest of the library gets them in an nst_tuning,
 * so nothing is read on a hot path and a program can set them without the environment. */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* "" for unset, so that "unset or empty" is one test */
static const char *env(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

static int copy_path(char *dst, size_t size, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb >= size) return 0; /* too long: no path rather than a cut one */
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb + 1);
    return 1;
}

nst_status nst_tuning_from_env(nst_tuning *t, nst_error *err) {
    (void)err;
    memset(t, 0, sizeof *t);
    const char *k = env("NST_KERNEL");
    t->kernel = !strcmp(k, "portable")     ? NST_KERNEL_PORTABLE
                : !strcmp(k, "avx2")       ? NST_KERNEL_AVX2
                : !strcmp(k, "avx512")     ? NST_KERNEL_AVX512
                : !strcmp(k, "avx512bf16") ? NST_KERNEL_AVX512_BF16
                                           : NST_KERNEL_BEST;
    t->conv_direct = !strcmp(env("NST_CONV"), "direct");

    const char *s = env("NST_CUDNN_SEARCH");
    t->cudnn_search = !*s                  ? NST_CUDNN_SEARCH_DEFAULT
                      : !strcmp(s, "1")    ? NST_CUDNN_SEARCH_MEASURE
                      : !strcmp(s, "flip") ? NST_CUDNN_SEARCH_FLIP
                      : !strcmp(s, "own")  ? NST_CUDNN_SEARCH_OWN
                                           : NST_CUDNN_SEARCH_HEURISTIC;
    /* the cache: an explicit file as it is; else the XDG location, whose folders may be made */
    const char *cache = getenv("NST_CUDNN_CACHE"), *xdg = env("XDG_CACHE_HOME"), *home = env("HOME");
    if (cache) {
        if (*cache && strcmp(cache, "0") != 0) copy_path(t->cudnn_cache, sizeof t->cudnn_cache, cache, "");
    } else if (*xdg) {
        t->cudnn_cache_mkdir = copy_path(t->cudnn_cache, sizeof t->cudnn_cache, xdg, "/nst/cudnn-algos.txt");
    } else if (*home) {
        t->cudnn_cache_mkdir = copy_path(t->cudnn_cache, sizeof t->cudnn_cache, home, "/.cache/nst/cudnn-algos.txt");
    }

    t->cuda_no_own_conv = !strcmp(env("NST_CUDA_OWN_CONV"), "0");
    t->cuda_profile = !strcmp(env("NST_CUDA_PROFILE"), "1");
    t->cuda_no_graph = !strcmp(env("NST_CUDA_GRAPH"), "0");
    t->cuda_one_stream = !strcmp(env("NST_CUDA_LOSS_STREAM"), "0");
    /* atoi, as the trainer always read it: out of range is the default */
    int lanes = atoi(env("NST_CUDA_LANES"));
    t->cuda_lanes = lanes >= 1 && lanes <= 8 ? lanes : 0;
    copy_path(t->tmp_dir, sizeof t->tmp_dir, env("TMPDIR"), "");
    return NST_OK;
}
