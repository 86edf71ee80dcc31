/* dataset.c - the training photos of a feed-forward style network (see dataset.h).
 *
 * The folder is listed once (image extensions only: .jpg .jpeg .png .webp .tif .tiff .bmp
 * .gif .ppm .pgm, any case; sorted by name). Each epoch draws the training files in an
 * order shuffled from (seed, epoch); each drawn photo is cropped and flipped with a
 * generator seeded from (seed, epoch, index), so nothing depends on what was drawn
 * before: a position of four numbers is a complete resume point, and a file that fails
 * to decode does not shift the randomness of the others. */
#include "transfer/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

struct nst_dataset {
    char *dir;
    char **paths; /* (count) dir/name, sorted by name */
    int count;
    int n_holdout;
    nst_limits limits; /* for decoding the photos */
    int photo_size;    /* the crops' scale before the window (0: the batch's size) */
    /* the position (dataset_position) */
    uint64_t seed;
    int64_t epoch, index, failures;
    /* epoch perm_epoch's order of the training files (n_train), or perm_epoch = -1 */
    int *perm;
    int64_t perm_epoch;
    /* skipped files, for the caller's log */
    int64_t skipped;
    char warning[1024];
};

/* ---- listing ------------------------------------------------------------------------------- */

/* The extensions of the formats nst_image_load reads (it goes by content; the name only
 * keeps other files out of the listing). */
static int is_image_name(const char *name) {
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff",
                                       ".bmp", ".gif", ".ppm", ".pgm"};
    const char *dot = strrchr(name, '.');
    if (name[0] == '.' || !dot) return 0; /* hidden files: e.g. macOS's ._photo.jpg */
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(dot, exts[i]) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void nst_free_paths(char **paths, int count) {
    if (!paths) return;
    for (int i = 0; i < count; i++) free(paths[i]);
    free(paths);
}

nst_status nst_list_images(const char *dir, char ***out, int *out_count, nst_error *err) {
    *out = NULL;
    *out_count = 0;
    if (!dir || !*dir) return nst_fail(err, NST_ERR_ARG, "no folder given");
    DIR *d = opendir(dir);
    if (!d) return nst_fail(err, NST_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    char **paths = NULL;
    int count = 0, cap = 0;
    nst_status st = NST_OK;
    /* names first (sorted), joined with dir afterwards */
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) st = nst_fail(err, NST_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
            break;
        }
        if (!is_image_name(e->d_name)) continue;
        if (count == cap) {
            int ncap = cap ? 2 * cap : 256;
            char **p = cap < (1 << 28) ? realloc(paths, (size_t)ncap * sizeof *p) : NULL;
            if (!p) { st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory listing the folder", dir); break; }
            paths = p;
            cap = ncap;
        }
        if (!(paths[count] = strdup(e->d_name))) {
            st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory listing the folder", dir);
            break;
        }
        count++;
    }
    closedir(d);
    if (st == NST_OK && count == 0)
        st = nst_fail(err, NST_ERR_ARG, "%s: no image files (.jpg, .jpeg, .png) in the folder", dir);
    if (st == NST_OK) {
        qsort(paths, (size_t)count, sizeof *paths, cmp_str);
        size_t dl = strlen(dir);
        const char *sep = dir[dl - 1] == '/' ? "" : "/";
        for (int i = 0; i < count && st == NST_OK; i++) {
            size_t n = dl + strlen(sep) + strlen(paths[i]) + 1;
            char *p = malloc(n);
            if (!p) {
                st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory listing the folder", dir);
                break;
            }
            snprintf(p, n, "%s%s%s", dir, sep, paths[i]);
            free(paths[i]);
            paths[i] = p;
        }
    }
    if (st != NST_OK) {
        nst_free_paths(paths, count);
        return st;
    }
    *out = paths;
    *out_count = count;
    return NST_OK;
}

nst_status dataset_open(nst_dataset **out, const char *dir, nst_error *err) {
    *out = NULL;
    if (!dir || !*dir) return nst_fail(err, NST_ERR_ARG, "dataset: no folder given");
    nst_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->dir = strdup(dir))) {
        free(ds);
        return nst_fail(err, NST_ERR_NOMEM, "%s: out of memory listing the folder", dir);
    }
    nst_status st = nst_list_images(dir, &ds->paths, &ds->count, err);
    if (st == NST_OK && !(ds->perm = nst_alloc_array((size_t)ds->count, sizeof *ds->perm)))
        st = nst_fail(err, NST_ERR_NOMEM, "%s: out of memory listing the folder", dir);
    if (st != NST_OK) {
        dataset_free(ds);
        return st;
    }
    ds->perm_epoch = -1;
    *out = ds;
    return NST_OK;
}

void dataset_set_limits(nst_dataset *ds, const nst_limits *limits) {
    if (limits) ds->limits = *limits;
}

void dataset_set_photo_size(nst_dataset *ds, int photo_size) { ds->photo_size = photo_size > 0 ? photo_size : 0; }

void dataset_free(nst_dataset *ds) {
    if (!ds) return;
    nst_free_paths(ds->paths, ds->count);
    free(ds->perm);
    free(ds->dir);
    free(ds);
}

int dataset_count(const nst_dataset *ds) { return ds->count; }

const char *dataset_path(const nst_dataset *ds, int i) {
    return i >= 0 && i < ds->count ? ds->paths[i] : NULL;
}

int dataset_train_count(const nst_dataset *ds) { return ds->count - ds->n_holdout; }

/* ---- position ------------------------------------------------------------------------------- */

static void restart(nst_dataset *ds) {
    ds->epoch = ds->index = ds->failures = 0;
    ds->perm_epoch = -1;
}

void dataset_set_holdout(nst_dataset *ds, int n_holdout) {
    ds->n_holdout = n_holdout < 0 ? 0 : n_holdout > ds->count ? ds->count : n_holdout;
    restart(ds);
}

void dataset_set_seed(nst_dataset *ds, uint64_t seed) {
    ds->seed = seed;
    restart(ds);
}

void dataset_get_position(const nst_dataset *ds, dataset_position *pos) {
    pos->seed = ds->seed;
    pos->epoch = ds->epoch;
    pos->index = ds->index;
    pos->n_train = dataset_train_count(ds);
    pos->failures = ds->failures;
}

nst_status dataset_set_position(nst_dataset *ds, const dataset_position *pos, nst_error *err) {
    int64_t n_train = dataset_train_count(ds);
    if (pos->n_train != n_train)
        return nst_fail(err, NST_ERR_ARG,
                        "%s: the saved position is for %lld training images, the folder has %lld",
                        ds->dir, (long long)pos->n_train, (long long)n_train);
    if (pos->epoch < 0 || pos->index < 0 || pos->index > n_train || pos->failures < 0 ||
        pos->failures > pos->index)
        return nst_fail(err, NST_ERR_ARG, "%s: invalid saved position (epoch %lld, index %lld, failures %lld)",
                        ds->dir, (long long)pos->epoch, (long long)pos->index, (long long)pos->failures);
    ds->seed = pos->seed;
    ds->epoch = pos->epoch;
    ds->index = pos->index;
    ds->failures = pos->failures;
    ds->perm_epoch = -1;
    return NST_OK;
}

int64_t dataset_skipped(const nst_dataset *ds) { return ds->skipped; }
const char *dataset_last_warning(const nst_dataset *ds) { return ds->warning; }

/* ---- sampling ------------------------------------------------------------------------------- */

/* SplitMix64's finaliser: spreads nearby inputs (epoch 3, epoch 4) to unrelated seeds */
static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* independent streams: the shuffle of an epoch, and the augmentation of one draw */
enum { STREAM_SHUFFLE = 1, STREAM_AUGMENT = 2 };
static void stream_seed(nst_rng *r, uint64_t seed, uint64_t stream, int64_t epoch, int64_t index) {
    nst_rng_seed(r, mix64(seed ^ mix64(stream ^ mix64((uint64_t)epoch ^ mix64((uint64_t)index)))));
}

/* Fisher-Yates over the training files, for ds->epoch */
static void make_order(nst_dataset *ds, int n_train) {
    if (ds->perm_epoch == ds->epoch) return;
    nst_rng r;
    stream_seed(&r, ds->seed, STREAM_SHUFFLE, ds->epoch, 0);
    for (int i = 0; i < n_train; i++) ds->perm[i] = i;
    for (int i = n_train - 1; i > 0; i--) {
        int j = (int)(nst_rng_uniform(&r) * (i + 1)); /* uniform in 0..i */
        int t = ds->perm[i];
        ds->perm[i] = ds->perm[j];
        ds->perm[j] = t;
    }
    ds->perm_epoch = ds->epoch;
}

/* One photo: decode, random square crop (80..100% of the shorter side), resize to
 * scale x scale, a size x size window at a random position (all of it when scale is
 * size), random flip, into out (3,size,size) as 0..1 RGB planes. */
static nst_status load_sample(float *out, const char *path, const nst_limits *limits, int size, int scale,
                              nst_rng *r, nst_error *err) {
    /* all six numbers are drawn whatever the image, so the stream has one layout (the
     * window's two come last: runs from before they existed draw the same crops) */
    double u_side = nst_rng_uniform(r), u_x = nst_rng_uniform(r), u_y = nst_rng_uniform(r);
    int flip = (int)(nst_rng_next(r) >> 63);
    double u_wx = nst_rng_uniform(r), u_wy = nst_rng_uniform(r);
    int wx = (int)(u_wx * (scale - size + 1)), wy = (int)(u_wy * (scale - size + 1));

    nst_image img = {0}, crop = {0}, res = {0};
    nst_status st = nst_image_load(&img, path, limits, err);
    if (st != NST_OK) return st;
    int W = img.width, H = img.height, S = W < H ? W : H;
    int side = (int)lround(S * (0.8 + 0.2 * u_side));
    if (side < 1) side = 1;
    if (side > S) side = S;
    int x0 = (int)(u_x * (W - side + 1)), y0 = (int)(u_y * (H - side + 1));
    st = nst_image_alloc(&crop, side, side, err);
    if (st == NST_OK) {
        for (int y = 0; y < side; y++)
            memcpy(crop.pixels + (size_t)y * side * 3, img.pixels + ((size_t)(y0 + y) * W + x0) * 3,
                   (size_t)side * 3 * sizeof(float));
        st = nst_image_resize(&res, &crop, scale, scale, err);
    }
    nst_image_free(&img);
    nst_image_free(&crop);
    if (st != NST_OK) return st;

    size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            const float *px = res.pixels + ((size_t)(wy + y) * scale + wx + (flip ? size - 1 - x : x)) * 3;
            for (int c = 0; c < 3; c++) {
                float v = px[c] * (1.0f / 255.0f);
                out[c * plane + (size_t)y * size + x] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            }
        }
    nst_image_free(&res);
    return NST_OK;
}

nst_status dataset_next_batch(nst_dataset *ds, float *batch, int B, int size, nst_error *err) {
    if (B < 1 || size < 1 || size > NST_MAX_DIMENSION)
        return nst_fail(err, NST_ERR_ARG, "dataset: bad batch shape %d x 3 x %d x %d", B, size, size);
    int n_train = dataset_train_count(ds);
    if (n_train < 1)
        return nst_fail(err, NST_ERR_ARG, "%s: no training images (all %d are held out)", ds->dir, ds->count);
    for (int b = 0; b < B; b++) {
        for (;;) { /* until a file decodes; ends, as failures of an epoch are bounded below */
            if (ds->index >= n_train) {
                ds->epoch++;
                ds->index = ds->failures = 0;
            }
            make_order(ds, n_train);
            int64_t i = ds->index++;
            const char *path = ds->paths[ds->perm[i]];
            nst_rng r;
            stream_seed(&r, ds->seed, STREAM_AUGMENT, ds->epoch, i);
            nst_error lerr;
            int scale = ds->photo_size > size ? ds->photo_size : size;
            nst_status st = load_sample(batch + (size_t)b * 3 * size * size, path, &ds->limits, size, scale, &r, &lerr);
            if (st == NST_OK) break;
            if (st == NST_ERR_NOMEM) return nst_fail(err, st, "%s", lerr.msg); /* not the file's fault */
            ds->skipped++;
            ds->failures++;
            snprintf(ds->warning, sizeof ds->warning, "%s", lerr.msg);
            if (ds->failures * 2 > n_train)
                return nst_fail(err, st == NST_ERR_IO || st == NST_ERR_LIMIT ? st : NST_ERR_FORMAT,
                                "%s: %lld of the %d training images of epoch %lld could not be read; last: %s",
                                ds->dir, (long long)ds->failures, n_train, (long long)ds->epoch, ds->warning);
        }
    }
    return NST_OK;
}
