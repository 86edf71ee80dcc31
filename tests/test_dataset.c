/* test_dataset.c - the training-photo sampler (transfer/dataset.h) on a temporary folder
 * of small images written here: the listing (extensions, case, sorting), holdout, batch
 * layout and values, epochs as permutations, crops and flips, determinism, resumption,
 * skipped files and the errors; then one batch from ../shared/datasets/photos256.
 *
 * Each test PNG has a constant red plane that identifies the file (10, 60, 110, 160, 210)
 * and a green plane that rises left to right, so a sample tells which file it came from,
 * whether it was flipped, and how wide its crop was. */
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "transfer/dataset.h"
#include "util/util.h"

#define S 16 /* batch image size */

static char tmp_root[64];

static void write_png(const char *dir, const char *name, int w, int h, float red, int flat) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    nst_image img;
    nst_error err;
    if (nst_image_alloc(&img, w, h, &err) != NST_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *p = img.pixels + ((size_t)y * w + x) * 3;
            p[0] = red;
            p[1] = flat ? 128.0f : 245.0f * x / (w - 1);
            p[2] = flat ? 64.0f : 200.0f * y / (h - 1);
        }
    if (nst_image_save(&img, path, &err) != NST_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    nst_image_free(&img);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(1); }
    fputs(text, f);
    fclose(f);
}

static void make_dir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", tmp_root, name);
    if (mkdir(out, 0700) != 0) { perror(out); exit(1); }
}

static const char *base(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* which test file a sample is: its mean red, 10..210 in steps of 50 -> 0..4 (-1: none) */
static int sample_id(const float *x) {
    double s = 0;
    for (int i = 0; i < S * S; i++) s += x[i];
    double r = 255.0 * s / (S * S);
    int k = (int)lround((r - 10.0) / 50.0);
    return k >= 0 && k <= 4 && fabs(r - (10.0 + 50.0 * k)) < 8.0 ? k : -1;
}

static int all_in_unit(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(x[i] >= 0.0f && x[i] <= 1.0f)) return 0;
    return 1;
}

static int one_line(const char *msg) { return msg[0] && !strchr(msg, '\n'); }

/* opens dir with seed and holdout, draws n batches of B into out (n*B*3*S*S) */
static nst_dataset *draw(const char *dir, uint64_t seed, int holdout, float *out, int n, int B) {
    nst_dataset *ds;
    nst_error err;
    if (dataset_open(&ds, dir, &err) != NST_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    dataset_set_seed(ds, seed);
    dataset_set_holdout(ds, holdout);
    for (int k = 0; k < n; k++) {
        nst_status st = dataset_next_batch(ds, out + (size_t)k * B * 3 * S * S, B, S, &err);
        CHECK(st == NST_OK, "batch %d: %s", k, err.msg);
    }
    return ds;
}

static void test_listing(const char *dir) {
    nst_dataset *ds;
    nst_error err;
    CHECK(dataset_open(&ds, dir, &err) == NST_OK, "%s", err.msg);
    /* strcmp order: upper case first; .txt, no extension, a folder and "x.png.txt" left out */
    const char *want[] = {"B.PNG", "a.png", "c.jpeg", "d.png", "e.jpg", "f.png"};
    CHECK(dataset_count(ds) == 6, "count %d", dataset_count(ds));
    for (int i = 0; i < 6 && i < dataset_count(ds); i++)
        CHECK(strcmp(base(dataset_path(ds, i)), want[i]) == 0, "file %d is %s, want %s", i,
              dataset_path(ds, i), want[i]);
    CHECK(strncmp(dataset_path(ds, 0), dir, strlen(dir)) == 0, "paths start with the folder");
    CHECK(dataset_path(ds, -1) == NULL && dataset_path(ds, 6) == NULL, "out-of-range path is NULL");
    dataset_set_holdout(ds, 2);
    CHECK(dataset_train_count(ds) == 4, "holdout 2 leaves 4");
    dataset_set_holdout(ds, 99);
    CHECK(dataset_train_count(ds) == 0, "holdout clamps to the count");
    float *b = malloc(3 * S * S * sizeof(float));
    CHECK(dataset_next_batch(ds, b, 1, S, &err) == NST_ERR_ARG && one_line(err.msg),
          "all held out: %s", err.msg);
    dataset_set_holdout(ds, 0);
    CHECK(dataset_next_batch(ds, b, 0, S, &err) == NST_ERR_ARG, "batch of 0");
    free(b);
    dataset_free(ds);
}

/* nst_list_images, which dataset_open uses (and nst apply for folders): the same files,
 * hidden ones left out, one separator whether or not the folder ends in '/'; and the
 * limits the photos are decoded under. */
static void test_list_images(const char *dir) {
    char **paths;
    int n;
    nst_error err;
    CHECK(nst_list_images(dir, &paths, &n, &err) == NST_OK && n == 6, "list: %d, %s", n, err.msg);
    nst_dataset *ds;
    CHECK(dataset_open(&ds, dir, &err) == NST_OK, "%s", err.msg);
    for (int i = 0; i < n && i < dataset_count(ds); i++)
        CHECK(strcmp(paths[i], dataset_path(ds, i)) == 0, "%s and %s", paths[i], dataset_path(ds, i));
    nst_free_paths(paths, n);
    char slash[200];
    snprintf(slash, sizeof slash, "%s/", dir);
    CHECK(nst_list_images(slash, &paths, &n, &err) == NST_OK && n == 6 && strcmp(paths[0], dataset_path(ds, 0)) == 0,
          "a folder ending in '/': %s", n > 0 ? paths[0] : err.msg);
    nst_free_paths(paths, n);

    /* every photo is over 100 pixels: all are skipped, and the error says why */
    nst_limits lim = {100, 0};
    dataset_set_limits(ds, &lim);
    float *b = malloc(3 * S * S * sizeof(float));
    nst_status st = dataset_next_batch(ds, b, 1, S, &err);
    CHECK(st == NST_ERR_LIMIT || st == NST_ERR_FORMAT, "status %s", nst_status_name(st));
    CHECK(strstr(err.msg, "could not be read") && one_line(err.msg), "%s", err.msg);
    CHECK(strstr(dataset_last_warning(ds), "more than the limit of 100") ||
              strstr(dataset_last_warning(ds), "not an image nst can read"),
          "warning: %s", dataset_last_warning(ds));
    free(b);
    dataset_free(ds);
    paths = (char **)1;
    CHECK(nst_list_images("", &paths, &n, &err) == NST_ERR_ARG && paths == NULL && n == 0, "empty name");
}

/* Epochs are permutations of the training files (the held-out f.png never drawn, the junk
 * e.jpg skipped each epoch); crops are 80..100% wide and both flips occur. */
static void test_epochs(const char *dir) {
    enum { EPOCHS = 12, B = 4 }; /* 4 good training files: one batch per epoch */
    size_t img = 3 * S * S;
    float *x = malloc(EPOCHS * B * img * sizeof(float));
    nst_dataset *ds = draw(dir, 42, 1, x, EPOCHS, B);
    CHECK(all_in_unit(x, EPOCHS * B * img), "values in [0,1]");
    int flips[2] = {0, 0}, orders_differ = 0, first[B];
    double min_range = 1, max_range = 0;
    for (int e = 0; e < EPOCHS; e++) {
        int seen[5] = {0};
        for (int b = 0; b < B; b++) {
            const float *s = x + (size_t)(e * B + b) * img;
            int id = sample_id(s);
            CHECK(id >= 0 && id <= 3, "epoch %d sample %d: file %d (want a, B, c or d)", e, b, id);
            if (id >= 0) seen[id]++;
            if (e == 0) first[b] = id;
            else if (id != first[b]) orders_differ = 1;
            if (id == 0 || id == 1 || id == 3) { /* the green ramps (c.jpeg is flat) */
                const float *g = s + S * S + (S / 2) * S; /* middle row of green */
                flips[g[S - 1] < g[0]]++;
                if (id == 1) { /* a.png, 50x50: green spans 245/255 over the full width */
                    double r = fabs(g[S - 1] - g[0]) / (245.0 / 255.0);
                    min_range = fmin(min_range, r);
                    max_range = fmax(max_range, r);
                }
            }
        }
        for (int k = 0; k < 4; k++) CHECK(seen[k] == 1, "epoch %d draws file %d %d times", e, k, seen[k]);
    }
    CHECK(orders_differ, "each epoch is shuffled anew");
    CHECK(flips[0] > 0 && flips[1] > 0, "both flips occur (%d, %d)", flips[0], flips[1]);
    /* a crop of side s (40..50 of 50) spans (s-1)/49 of the ramp, a bit less after the
     * averaging of the edge pixels by the downscale */
    CHECK(min_range > 0.7 && max_range <= 1.0 && max_range - min_range > 0.02,
          "crop widths: green range %.3f .. %.3f", min_range, max_range);
    printf("  %d epochs: flips %d/%d, a.png's green range %.3f .. %.3f\n", EPOCHS, flips[0], flips[1],
           min_range, max_range);
    int64_t skipped = dataset_skipped(ds);
    CHECK(skipped >= EPOCHS - 1 && skipped <= EPOCHS, "e.jpg skipped once per epoch (%lld)", (long long)skipped);
    CHECK(strstr(dataset_last_warning(ds), "e.jpg") != NULL, "warning names the file: %s", dataset_last_warning(ds));
    dataset_free(ds);
    free(x);
}

static void test_determinism_and_resume(const char *dir) {
    enum { B = 3, N = 4 };
    size_t img = 3 * S * S, bytes = N * B * img * sizeof(float);
    float *x1 = malloc(bytes), *x2 = malloc(bytes), *x3 = malloc(bytes);
    dataset_free(draw(dir, 7, 1, x1, N, B));
    dataset_free(draw(dir, 7, 1, x2, N, B));
    CHECK(memcmp(x1, x2, bytes) == 0, "same seed, same batches");
    dataset_free(draw(dir, 8, 1, x3, N, B));
    CHECK(memcmp(x1, x3, B * img * sizeof(float)) != 0, "another seed, another first batch");

    /* resume after the first batch (the batches straddle epochs: 4 training files, B = 3) */
    nst_dataset *ds = draw(dir, 7, 1, x2, 1, B);
    dataset_position pos;
    dataset_get_position(ds, &pos);
    dataset_free(ds);
    nst_error err;
    CHECK(dataset_open(&ds, dir, &err) == NST_OK, "%s", err.msg);
    dataset_set_holdout(ds, 1);
    CHECK(dataset_set_position(ds, &pos, &err) == NST_OK, "%s", err.msg);
    memset(x2, 0, bytes);
    for (int k = 1; k < N; k++)
        CHECK(dataset_next_batch(ds, x2 + k * B * img, B, S, &err) == NST_OK, "%s", err.msg);
    CHECK(memcmp(x1 + B * img, x2 + B * img, (N - 1) * B * img * sizeof(float)) == 0,
          "a resumed run draws the same batches");
    /* ... whatever the batch size after the resumption */
    CHECK(dataset_set_position(ds, &pos, &err) == NST_OK, "%s", err.msg);
    CHECK(dataset_next_batch(ds, x2, (N - 1) * B, S, &err) == NST_OK, "%s", err.msg);
    CHECK(memcmp(x1 + B * img, x2, (N - 1) * B * img * sizeof(float)) == 0,
          "one big batch equals the small ones");
    /* a position from another training set is refused */
    dataset_set_holdout(ds, 0);
    CHECK(dataset_set_position(ds, &pos, &err) == NST_ERR_ARG && one_line(err.msg), "mismatch: %s", err.msg);
    dataset_position bad = pos;
    bad.index = 99;
    dataset_set_holdout(ds, 1);
    CHECK(dataset_set_position(ds, &bad, &err) == NST_ERR_ARG, "index past the epoch");
    dataset_free(ds);
    free(x1); free(x2); free(x3);
}

static void test_errors(void) {
    nst_dataset *ds = (nst_dataset *)1;
    nst_error err;
    char missing[128], dir[128];
    snprintf(missing, sizeof missing, "%s/no-such-folder", tmp_root);
    CHECK(dataset_open(&ds, missing, &err) == NST_ERR_IO && ds == NULL, "missing folder");
    CHECK(strstr(err.msg, missing) && one_line(err.msg), "message names it: %s", err.msg);

    make_dir(dir, sizeof dir, "text-only");
    write_text(dir, "readme.txt", "not an image\n");
    CHECK(dataset_open(&ds, dir, &err) == NST_ERR_ARG, "a folder without images");
    CHECK(strstr(err.msg, dir) && strstr(err.msg, "no image files") && one_line(err.msg), "%s", err.msg);

    /* only junk with image names: listed, then the first batch fails */
    make_dir(dir, sizeof dir, "junk");
    write_text(dir, "x.jpg", "not a jpeg\n");
    write_text(dir, "y.png", "");
    CHECK(dataset_open(&ds, dir, &err) == NST_OK, "%s", err.msg);
    float *b = malloc(3 * S * S * sizeof(float));
    nst_status st = dataset_next_batch(ds, b, 1, S, &err);
    CHECK(st == NST_ERR_FORMAT, "a folder of junk: %s", nst_status_name(st));
    CHECK(strstr(err.msg, dir) && strstr(err.msg, "could not be read") && one_line(err.msg), "%s", err.msg);
    dataset_free(ds);

    /* 3 junk of 5: the third failure of the epoch is more than half; 2 good ones may come first */
    write_text(dir, "z.jpeg", "junk");
    write_png(dir, "p.png", 20, 20, 10, 0);
    write_png(dir, "q.png", 20, 20, 60, 0);
    CHECK(dataset_open(&ds, dir, &err) == NST_OK, "%s", err.msg);
    int failed_at = -1;
    for (int k = 0; k < 3 && failed_at < 0; k++)
        if (dataset_next_batch(ds, b, 1, S, &err) != NST_OK) failed_at = k;
    CHECK(failed_at >= 0, "3 of 5 files junk is an error within the epoch");
    CHECK(strstr(err.msg, "3 of the 5") != NULL, "%s", err.msg);
    dataset_free(ds);
    free(b);
}

static void test_photos256(void) {
    const char *dir = NST_SHARED_DIR "/datasets/photos256";
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        printf("  %s absent: skipped\n", dir);
        return;
    }
    nst_dataset *ds;
    nst_error err;
    double t0 = nst_now();
    CHECK(dataset_open(&ds, dir, &err) == NST_OK, "%s", err.msg);
    if (!ds) return;
    int n = dataset_count(ds), sorted = 1;
    for (int i = 1; i < n; i++) sorted &= strcmp(dataset_path(ds, i - 1), dataset_path(ds, i)) < 0;
    CHECK(n > 100 && sorted, "photos256: %d files, sorted %d", n, sorted);
    dataset_set_seed(ds, 1);
    dataset_set_holdout(ds, 8);
    enum { B = 4, SZ = 128 };
    float *b = malloc((size_t)B * 3 * SZ * SZ * sizeof(float));
    CHECK(dataset_next_batch(ds, b, B, SZ, &err) == NST_OK, "%s", err.msg);
    double mean = 0;
    for (size_t i = 0; i < (size_t)B * 3 * SZ * SZ; i++) mean += b[i];
    mean /= (double)B * 3 * SZ * SZ;
    CHECK(all_in_unit(b, (size_t)B * 3 * SZ * SZ) && mean > 0.05 && mean < 0.95, "photo values, mean %.3f", mean);
    CHECK(dataset_skipped(ds) == 0, "no photo skipped: %s", dataset_last_warning(ds));
    printf("  photos256: %d files, a batch of %d at %d px: %.0f ms in all\n", n, B, SZ, 1e3 * (nst_now() - t0));
    free(b);
    dataset_free(ds);
}

/* --photo-size: windows of a photo scaled to 4x the batch's size span a quarter of its
 * crop (the green ramp rises a quarter as much across one), differ in place, and come out
 * the same on a second run; a photo size up to the batch's size is the whole crop. */
static void test_photo_size(void) {
    char dir[160];
    make_dir(dir, sizeof dir, "one");
    write_png(dir, "d.png", 64, 48, 160, 0);
    enum { N = 8 };
    size_t img = (size_t)3 * S * S;
    float *whole = malloc(N * img * sizeof(float)), *same = malloc(N * img * sizeof(float));
    float *win = malloc(N * img * sizeof(float)), *again = malloc(N * img * sizeof(float));
    nst_error err;
    nst_dataset *ds[4] = {0};
    float *out[4] = {whole, same, win, again};
    int sizes[4] = {0, S, 4 * S, 4 * S};
    for (int k = 0; k < 4; k++) {
        CHECK(dataset_open(&ds[k], dir, &err) == NST_OK, "%s", err.msg);
        if (!ds[k]) return;
        dataset_set_seed(ds[k], 7);
        dataset_set_photo_size(ds[k], sizes[k]);
        CHECK(dataset_next_batch(ds[k], out[k], N, S, &err) == NST_OK, "%s", err.msg);
        dataset_free(ds[k]);
    }
    CHECK(memcmp(whole, same, N * img * sizeof(float)) == 0, "photo size = size: the default's samples");
    CHECK(memcmp(win, again, N * img * sizeof(float)) == 0, "photo size: the same windows on a second run");
    double span_whole = 0, span_win = 0;
    int distinct = 0;
    for (int b = 0; b < N; b++) {
        const float *g0 = whole + b * img + S * S, *g1 = win + b * img + S * S; /* the green planes */
        span_whole += fabs(g0[S - 1] - g0[0]) / N;
        span_win += fabs(g1[S - 1] - g1[0]) / N;
        CHECK(sample_id(win + b * img) == 3 && all_in_unit(win + b * img, img), "window %d: the photo's", b);
        if (b && fabs(g1[0] - (win + (b - 1) * img + S * S)[0]) > 1e-3) distinct++;
    }
    double ratio = span_win / span_whole;
    CHECK(ratio > 0.2 && ratio < 0.3, "a window spans a quarter of the crop: %.3f", ratio);
    CHECK(distinct >= N / 2, "windows at different places: %d of %d differ from the last", distinct, N - 1);
    free(whole);
    free(same);
    free(win);
    free(again);
}

/* removes the temporary tree (two levels, which is all the tests make) */
static void remove_tree(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (strncmp(dir, "/tmp/nst_dataset_", 17) == 0 && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/nst_dataset_XXXXXX");
    if (!mkdtemp(tmp_root)) { perror("mkdtemp"); return 1; }
    char dir[128];
    make_dir(dir, sizeof dir, "photos");
    write_png(dir, "a.png", 50, 50, 60, 0);   /* id 1 */
    write_png(dir, "B.PNG", 40, 30, 10, 0);   /* id 0 */
    write_png(dir, "c.jpeg", 30, 45, 110, 1); /* id 2, flat (JPEG would smear a ramp into red) */
    write_png(dir, "d.png", 64, 48, 160, 0);  /* id 3 */
    write_text(dir, "e.jpg", "this is not a JPEG\n");
    write_png(dir, "f.png", 20, 20, 210, 0);  /* id 4, held out */
    write_text(dir, "notes.txt", "junk");
    write_text(dir, "x.png.txt", "junk");
    write_text(dir, "README", "junk");
    write_png(dir, ".hidden.png", 20, 20, 10, 0); /* e.g. macOS's ._ files: left out */
    char sub[160];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    mkdir(sub, 0700);

    test_listing(dir);
    test_list_images(dir);
    test_epochs(dir);
    test_determinism_and_resume(dir);
    test_errors();
    test_photo_size();
    test_photos256();
    remove_tree(tmp_root);
    TEST_DONE();
}
