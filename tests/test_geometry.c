/* test_geometry.c - optimization-based transfer at any photo size and shape:
 *   - the reflection padding's indices (sides of 1, 2, 3, pads longer than the side) and
 *     the planes padded around an image;
 *   - nst_transfer_run with photos too small or too thin for the network's pools (4000x10,
 *     10x4000, 1x1, 3x3, --size 16 and 20 on 4:3, the seed preset squashed to 8) and style
 *     images too small (1x1, 5x300): each returns the photo's fitted size exactly, finite
 *     pixels, snapshots of that size, and the loss falls where there is something to fit;
 *   - the limits that remain name the image and the flag to change.
 * Every run is a few steps on canvases of at most 64x16, so the whole test takes seconds.
 * (test_oracle and the other transfer tests check that sizes needing no padding are
 * computed as before.) */
#include "net/vgg19.h"
#include "test_util.h"
#include "transfer/gatys.h"
#include "util/util.h"

static unsigned long long rng = 12;

/* The mirror walked step by step: what gatys_reflect_index must compute. */
static int reflect_walk(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

static void test_reflect(void) {
    /* the sides the pools need: none before pool1, 16 up to relu5_1, 32 with pool5 */
    CHECK(vgg19_min_side(nst_layer_index("relu1_2") + 1) == 1, "relu1_2");
    CHECK(vgg19_min_side(nst_layer_index("pool1") + 1) == 2, "pool1");
    CHECK(vgg19_min_side(nst_layer_index("relu5_1") + 1) == 16, "relu5_1");
    CHECK(vgg19_min_side(NST_NUM_LAYERS) == 32, "pool5");
    for (int i = -7; i <= 7; i++) CHECK(gatys_reflect_index(i, 1) == 0, "n=1, i=%d", i);
    static const int want2[] = {0, 1, 0, 1, 0, 1, 0, 1}; /* i = -4..3 */
    for (int i = -4; i <= 3; i++) CHECK(gatys_reflect_index(i, 2) == want2[i + 4], "n=2, i=%d", i);
    static const int want3[] = {0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2}; /* i = -4..6 */
    for (int i = -4; i <= 6; i++) CHECK(gatys_reflect_index(i, 3) == want3[i + 4], "n=3, i=%d", i);
    for (int n = 1; n <= 9; n++)
        for (int i = -40; i <= 40; i++) {
            int r = gatys_reflect_index(i, n);
            CHECK(r == reflect_walk(i, n) && r >= 0 && r < n, "n=%d, i=%d: %d", n, i, r);
        }

    /* a 2x3 image onto 7x16, and a 1x1 onto 16x16: the image where it was put, the rest
     * its mirror image, nothing read outside it */
    int sizes[][6] = {{2, 3, 7, 16, 2, 6}, {1, 1, 16, 16, 7, 7}, {5, 1, 5, 16, 0, 7}};
    for (int k = 0; k < 3; k++) {
        int w = sizes[k][0], h = sizes[k][1], W = sizes[k][2], H = sizes[k][3], x0 = sizes[k][4], y0 = sizes[k][5];
        float *src = malloc((size_t)3 * w * h * 4), *dst = malloc((size_t)3 * W * H * 4);
        for (int i = 0; i < 3 * w * h; i++) src[i] = (float)i;
        gatys_pad_planes(dst, W, H, src, w, h, x0, y0);
        int ok = 1;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    float want = src[(c * h + reflect_walk(i - y0, h)) * w + reflect_walk(j - x0, w)];
                    ok &= dst[(c * H + i) * W + j] == want;
                }
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) ok &= dst[(c * H + y0 + i) * W + x0 + j] == src[(c * h + i) * w + j];
        CHECK(ok, "%dx%d padded onto %dx%d at %d,%d", w, h, W, H, x0, y0);
        free(src);
        free(dst);
    }
}

/* A photo-like test image: smooth gradients and noise. */
static void synthetic(nst_image *img, int w, int h) {
    nst_error err;
    nst_image_alloc(img, w, h, &err);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int c = 0; c < 3; c++) {
                float v = 128.0f + 80.0f * sinf(0.05f * (c + 1) * i + 0.03f * (3 - c) * j) + 30.0f * test_rand(&rng);
                img->pixels[((size_t)i * w + j) * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
            }
}

typedef struct {
    int calls, snap_w, snap_h, snap_ok;
    double first, last;
} run_log;

static int log_step(nst_transfer *t, const nst_progress *p, void *user) {
    run_log *log = user;
    if (log->calls++ == 0) {
        log->first = p->total_loss;
        nst_image snap = {0};
        nst_error err;
        log->snap_ok = nst_transfer_snapshot(t, &snap, &err) == NST_OK;
        log->snap_w = snap.width;
        log->snap_h = snap.height;
        nst_image_free(&snap);
    }
    log->last = p->total_loss;
    return 0;
}

/* One short transfer of a cw x ch content and an sw x sh style at this size: the result
 * has the content's fitted size and finite pixels; with falls, the loss fell. */
static void run(const nst_vgg19 *net, const char *preset, int cw, int ch, int sw, int sh, int size, int falls) {
    nst_transfer_config cfg;
    nst_error err;
    nst_transfer_preset(&cfg, preset, &err);
    cfg.device = NST_DEVICE_CPU;
    cfg.size = size;
    cfg.steps = 3;
    nst_image content = {0}, style = {0}, result = {0};
    synthetic(&content, cw, ch);
    synthetic(&style, sw, sh);
    run_log log = {0};
    nst_status s = nst_transfer_run(&cfg, net, &content, &style, NULL, 1, log_step, &log, &result, &err);
    int w, h;
    if (cfg.squash) w = h = size;
    else nst_image_fit_size(cw, ch, size, &w, &h);
    CHECK(s == NST_OK, "%s %dx%d content, %dx%d style, size %d: %s", preset, cw, ch, sw, sh, size, err.msg);
    CHECK(result.width == w && result.height == h, "%dx%d content at size %d: result %dx%d, want %dx%d", cw, ch, size,
          result.width, result.height, w, h);
    CHECK(log.calls >= 1 && log.snap_ok && log.snap_w == w && log.snap_h == h, "%dx%d content: snapshot %dx%d", cw, ch,
          log.snap_w, log.snap_h);
    int finite = result.pixels != NULL;
    for (size_t i = 0; finite && i < (size_t)3 * w * h; i++)
        finite = isfinite(result.pixels[i]) && result.pixels[i] >= 0.0f && result.pixels[i] <= 255.0f;
    CHECK(finite, "%dx%d content: result pixels finite, in 0..255", cw, ch);
    CHECK(isfinite(log.first) && isfinite(log.last), "%dx%d content: losses %g, %g", cw, ch, log.first, log.last);
    if (falls)
        CHECK(log.last < log.first, "%dx%d content, %dx%d style at size %d: loss %g -> %g over %d steps", cw, ch, sw, sh,
              size, log.first, log.last, log.calls);
    printf("%-5s %4dx%-4d content, %3dx%-3d style, size %2d -> %2dx%-2d: loss %.4g -> %.4g in %d steps\n", preset, cw,
           ch, sw, sh, size, w, h, log.first, log.last, log.calls);
    nst_image_free(&content);
    nst_image_free(&style);
    nst_image_free(&result);
}

/* Where the canvas is larger than the photo, and where it is not. */
static void test_canvas(const nst_vgg19 *net) {
    nst_transfer_config cfg;
    nst_error err;
    nst_transfer_preset(&cfg, "gatys", &err);
    cfg.device = NST_DEVICE_CPU;
    cfg.size = 40;
    int dims[][6] = {/* content w, h -> canvas W, H, crop x0, y0 */
                     {4000, 10, 40, 16, 0, 7},
                     {10, 4000, 16, 40, 7, 0},
                     {40, 30, 40, 30, 0, 0}};
    for (int k = 0; k < 3; k++) {
        nst_image content = {0}, style = {0};
        synthetic(&content, dims[k][0], dims[k][1]);
        synthetic(&style, 20, 20);
        nst_transfer *t = NULL;
        CHECK(gatys_build(&t, &cfg, net, &content, &style, NULL, 1, &err) == NST_OK, "%s", err.msg);
        if (t) {
            int W, H, x0, y0, w, h;
            gatys_size(t, &W, &H);
            gatys_crop(t, &x0, &y0, &w, &h);
            CHECK(W == dims[k][2] && H == dims[k][3] && x0 == dims[k][4] && y0 == dims[k][5],
                  "%dx%d content: canvas %dx%d, crop at %d,%d", dims[k][0], dims[k][1], W, H, x0, y0);
        }
        gatys_free(t);
        nst_image_free(&content);
        nst_image_free(&style);
    }
}

/* What is still refused says which image and which flag. */
static void test_messages(const nst_vgg19 *net) {
    nst_transfer_config cfg;
    nst_error err;
    nst_transfer_preset(&cfg, "gatys", &err);
    cfg.device = NST_DEVICE_CPU;
    nst_image content = {0}, style = {0}, result = {0};
    synthetic(&content, 8, 6);
    synthetic(&style, 8, 8);
    cfg.size = 16384;
    cfg.style_scale = 8.0f;
    nst_status s = nst_transfer_run(&cfg, net, &content, &style, NULL, 1, NULL, NULL, &result, &err);
    CHECK(s == NST_ERR_LIMIT && strstr(err.msg, "style images") && strstr(err.msg, "--style-scale"),
          "style too large: %d %s", s, err.msg);
    cfg.size = 0;
    cfg.style_scale = 1.0f;
    s = nst_transfer_run(&cfg, net, &content, &style, NULL, 1, NULL, NULL, &result, &err);
    CHECK(s == NST_ERR_ARG && strstr(err.msg, "1..65535"), "size 0: %d %s", s, err.msg);
    /* a failure in building is put down to its image */
    err.msg[0] = '\0';
    nst_fail(&err, NST_ERR_NOMEM, "out of memory for a 9x9 image");
    s = gatys_blame(&err, NST_ERR_NOMEM, &cfg, 1, 9, 9);
    CHECK(s == NST_ERR_NOMEM && strcmp(err.msg, "style image 2 at 9x9: out of memory for a 9x9 image; try a smaller --style-scale") == 0,
          "%s", err.msg);
    nst_fail(&err, NST_ERR_NOMEM, "out of memory");
    gatys_blame(&err, NST_ERR_NOMEM, &cfg, -1, 9, 9);
    CHECK(strcmp(err.msg, "content photo at 9x9: out of memory; try a smaller --size") == 0, "%s", err.msg);
    nst_image_free(&content);
    nst_image_free(&style);
}

int main(void) {
    test_reflect();
    nst_transfer_config cfg;
    nst_error err;
    nst_transfer_preset(&cfg, "gatys", &err);
    nst_vgg19 *net = NULL;
    if (nst_vgg19_load(&net, NST_SHARED_DIR "/models/vgg19", nst_transfer_depth(&cfg), &err) != NST_OK) {
        CHECK(0, "weights: %s", err.msg);
        TEST_DONE();
    }
    test_canvas(net);
    /* preset, content w, h, style w, h, size, the loss falls */
    run(net, "gatys", 4000, 10, 64, 48, 64, 1);  /* 64x1 on a 64x16 canvas */
    run(net, "gatys", 10, 4000, 48, 64, 64, 1);  /* 1x64 on 16x64 */
    run(net, "gatys", 1, 1, 32, 32, 1, 0);       /* 1x1 on 16x16 */
    run(net, "gatys", 1, 1, 32, 32, 24, 1);      /* a 1x1 photo at 24x24: no padding */
    run(net, "gatys", 3, 3, 32, 32, 3, 0);       /* 3x3 on 16x16 */
    run(net, "gatys", 40, 30, 32, 32, 16, 1);    /* 16x12 on 16x16 */
    run(net, "gatys", 40, 30, 32, 32, 20, 1);    /* 20x15 on 20x16 */
    run(net, "gatys", 40, 30, 1, 1, 24, 1);      /* a 1x1 painting: 24x24 */
    run(net, "gatys", 40, 30, 5, 300, 32, 1);    /* a 5x300 painting: 1x32 on 16x32 */
    run(net, "seed", 40, 30, 5, 300, 8, 0);      /* squashed to 8x8, on 16x16 */
    test_messages(net);
    nst_vgg19_free(net);
    TEST_DONE();
}
