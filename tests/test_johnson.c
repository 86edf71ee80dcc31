/* test_johnson.c - the fast-style network and its training:
 *   - the whole network's backward (parameters and input) against central finite
 *     differences, on the reference convolutions;
 *   - the fast path against the reference, forward and backward;
 *   - a model saved and loaded gives bit-identical outputs; bad model files are refused;
 *   - the decoders of universal style transfer (the same layers): backward, fast path,
 *     file round trip;
 *   - a tiny training run lowers the loss by a stated margin, and a run stopped and
 *     resumed from its checkpoint ends with bit-identical parameters. */
#include <unistd.h>

#include "cuda/cuda_common.h"
#include "net/model_file.h"
#include "net/stylenet.h"
#include "test_util.h"
#include "transfer/stylenet_backend.h"
#include "transfer/stylenet_train.h"

static unsigned long long rng = 7;

static void fill(float *a, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * 0.5f * (test_rand(&rng) + 1.0f);
}

static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* L = <R, net(x)> / 255 on the reference path */
static double net_loss(stylenet *net, stylenet_acts *a, const float *R) {
    nst_error err;
    stylenet_forward(net, a, 1, &err);
    return dotd(R, stylenet_output(net, a), (size_t)3 * a->H_out * a->W_out) / 255.0;
}

typedef struct {
    int checked, kinked, bad;
    double worst;
} fd_stats;

/* Central differences at two steps: where they disagree, a step crossed a ReLU kink and
 * the coordinate is skipped (counted); elsewhere the analytic value must match. The
 * floor 1e-2 in the denominator is the float network's rounding noise in (L+ - L-)/2h. */
static void fd_check(fd_stats *st, stylenet *net, stylenet_acts *a, const float *R, float *x, double ana) {
    double num[2];
    float save = *x;
    for (int k = 0; k < 2; k++) {
        float h = k ? 1e-3f : 2e-3f;
        *x = save + h; double lp = net_loss(net, a, R);
        *x = save - h; double lm = net_loss(net, a, R);
        *x = save;
        num[k] = (lp - lm) / (2.0 * h);
    }
    if (fabs(num[0] - num[1]) > 2e-2 * fmax(fabs(num[0]), fabs(num[1])) + 1e-2) {
        st->kinked++;
        return;
    }
    double e = fabs(num[1] - ana) / (fmax(fabs(num[1]), fabs(ana)) + 1e-2);
    if (e > st->worst) st->worst = e;
    if (e > 5e-2) st->bad++; /* a wrong term is O(1) off; float noise reaches ~4% */
    st->checked++;
}

static void fd_report(const fd_stats *st, int relu, const char *what) {
    CHECK(st->bad == 0, "relu %d: %s: %d of %d off (worst rel %.3g)", relu, what, st->bad, st->checked, st->worst);
    CHECK(st->kinked * 2 < st->checked, "relu %d: %s: too many kinks (%d) to check", relu, what, st->kinked);
    printf("network (relu %s) %s: %d checked, %d skipped at kinks, worst rel error %.3g\n", relu ? "on" : "off", what,
           st->checked, st->kinked, st->worst);
}

/* relu = 0 turns every ReLU off: the network is then smooth. With the ReLUs on, a step
 * can cross a kink somewhere in the (tiny, so densely kinked) network: fd_check skips
 * those coordinates. The fused norm+ReLU backward is also checked alone in test_layers. */
static void test_gradcheck(int relu) {
    stylenet net;
    stylenet_acts a;
    nst_error err;
    nst_rng r;
    nst_rng_seed(&r, 3);
    CHECK(stylenet_build(&net, 2, 1, 1, &err) == NST_OK, "%s", err.msg);
    stylenet_init_params(&net, &r, &err);
    /* non-trivial norms: gamma away from 1, beta away from 0 */
    for (int l = 0; l < net.n_layers; l++)
        if (net.layer[l].norm) {
            fill(net.layer[l].gamma, net.layer[l].C_out, 0.5f, 1.5f);
            fill(net.layer[l].beta, net.layer[l].C_out, -0.3f, 0.3f);
        }
    if (!relu)
        for (int l = 0; l < net.n_layers; l++) net.layer[l].relu = 0;
    int H = 16, W = 12;
    CHECK(stylenet_acts_build(&a, &net, H, W, 1, &err) == NST_OK, "%s", err.msg);
    size_t n = (size_t)3 * H * W;
    float *R = malloc(n * 4), *dout = malloc(n * 4), *dx = malloc(n * 4);
    fill(a.input, n, 0.0f, 1.0f);
    fill(R, n, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) dout[i] = R[i] / 255.0f;
    net_loss(&net, &a, R);
    memset(net.grads, 0, net.n_params * 4);
    CHECK(stylenet_backward(&net, &a, dout, dx, 1, &err) == NST_OK, "%s", err.msg);

    /* double-precision-like differences: float network, so a large-ish step and a
     * tolerance that still catches any wrong term (those are O(1) off) */
    fd_stats ps = {0}, xs = {0};
    for (size_t i = 0; i < net.n_params; i += 1 + net.n_params / 150) fd_check(&ps, &net, &a, R, &net.params[i], net.grads[i]);
    for (size_t i = 0; i < n; i += 5) fd_check(&xs, &net, &a, R, &a.input[i], dx[i]);
    fd_report(&ps, relu, "parameter gradients");
    fd_report(&xs, relu, "input gradient");
    free(R); free(dout); free(dx);
    stylenet_acts_free(&a);
    stylenet_free(&net);
}

static void test_fast_vs_ref(void) {
    stylenet net;
    stylenet_acts a;
    nst_error err;
    nst_rng r;
    nst_rng_seed(&r, 5);
    CHECK(stylenet_build(&net, 8, 2, 1, &err) == NST_OK, "%s", err.msg);
    stylenet_init_params(&net, &r, &err);
    int H = 36, W = 28;
    CHECK(stylenet_acts_build(&a, &net, H, W, 1, &err) == NST_OK, "%s", err.msg);
    size_t n = (size_t)3 * H * W;
    float *dout = malloc(n * 4), *dx_ref = malloc(n * 4), *dx = malloc(n * 4), *y_ref = malloc(n * 4);
    float *g_ref = malloc(net.n_params * 4);
    fill(a.input, n, 0.0f, 1.0f);
    fill(dout, n, -1.0f, 1.0f);
    stylenet_forward(&net, &a, 1, &err);
    memcpy(y_ref, stylenet_output(&net, &a), n * 4);
    memset(net.grads, 0, net.n_params * 4);
    stylenet_backward(&net, &a, dout, dx_ref, 1, &err);
    memcpy(g_ref, net.grads, net.n_params * 4);
    CHECK(stylenet_forward(&net, &a, 0, &err) == NST_OK, "%s", err.msg);
    double ey = rel_l2(stylenet_output(&net, &a), y_ref, n);
    memset(net.grads, 0, net.n_params * 4);
    CHECK(stylenet_backward(&net, &a, dout, dx, 0, &err) == NST_OK, "%s", err.msg);
    double eg = rel_l2(net.grads, g_ref, net.n_params), ex = rel_l2(dx, dx_ref, n);
    CHECK(ey < 1e-5, "fast forward vs reference: rel L2 %.3g", ey);
    CHECK(eg < 1e-4, "fast parameter gradients vs reference: rel L2 %.3g", eg);
    CHECK(ex < 1e-4, "fast input gradient vs reference: rel L2 %.3g", ex);
    printf("fast vs reference: output %.3g, parameter grads %.3g, input grad %.3g\n", ey, eg, ex);
    /* the forward-only (shared buffers) mode gives the same output bit for bit */
    stylenet_acts b;
    CHECK(stylenet_acts_build(&b, &net, H, W, 0, &err) == NST_OK, "%s", err.msg);
    memcpy(b.input, a.input, n * 4);
    stylenet_forward(&net, &a, 0, &err);
    stylenet_forward(&net, &b, 0, &err);
    CHECK(memcmp(stylenet_output(&net, &a), stylenet_output(&net, &b), n * 4) == 0, "inference mode == training mode");
    stylenet_acts_free(&b);
    free(dout); free(dx_ref); free(dx); free(y_ref); free(g_ref);
    stylenet_acts_free(&a);
    stylenet_free(&net);
}

/* A decoder of universal style transfer (the same layers, another table): its backward
 * against finite differences (its input: the features), the fast path against the
 * reference, its output's size, a file round trip bit for bit, and each kind of file
 * refused where the other is expected. */
static void test_decoder(int level, int width, int relu, const char *dir) {
    stylenet net;
    stylenet_acts a;
    nst_error err;
    nst_rng r;
    nst_rng_seed(&r, 11 + level);
    CHECK(stylenet_build_decoder(&net, level, width, 1, &err) == NST_OK, "%s", err.msg);
    stylenet_init_params(&net, &r, &err);
    if (!relu)
        for (int l = 0; l < net.n_layers; l++) net.layer[l].relu = 0;
    /* the output's x255 (checked below) off, for differences of the float network's scale */
    stylenet_layer *last = &net.layer[net.n_layers - 1];
    CHECK(last->scale255 && !last->relu, "decoder %d: its output is not linear x255", level);
    last->scale255 = 0;
    int H = 3, W = 2, f = 1 << (level - 1);
    CHECK(stylenet_acts_build(&a, &net, H, W, 1, &err) == NST_OK, "%s", err.msg);
    static const int vgg_channels[6] = {0, 64, 128, 256, 512, 512};
    CHECK(a.C_in == vgg_channels[level] && a.H_out == f * H && a.W_out == f * W,
          "level %d: input %d channels, output %dx%d", level, a.C_in, a.W_out, a.H_out);
    size_t n_in = (size_t)a.C_in * H * W, n_out = (size_t)3 * a.H_out * a.W_out;
    float *R = malloc(n_out * 4), *dout = malloc(n_out * 4), *dx = malloc(n_in * 4), *y_ref = malloc(n_out * 4);
    float *g_ref = malloc(net.n_params * 4), *dx_ref = malloc(n_in * 4);
    fill(a.input, n_in, 0.0f, 4.0f); /* post-ReLU features */
    fill(R, n_out, -1.0f, 1.0f);
    for (size_t i = 0; i < n_out; i++) dout[i] = R[i] / 255.0f;
    net_loss(&net, &a, R);
    memcpy(y_ref, stylenet_output(&net, &a), n_out * 4);
    memset(net.grads, 0, net.n_params * 4);
    CHECK(stylenet_backward(&net, &a, dout, dx_ref, 1, &err) == NST_OK, "%s", err.msg);
    memcpy(g_ref, net.grads, net.n_params * 4);
    fd_stats ps = {0}, xs = {0};
    double gmax = 0;
    for (size_t i = 0; i < net.n_params; i++) gmax = fmax(gmax, fabs(g_ref[i]));
    CHECK(gmax > 1e-3, "decoder %d: no gradient to check (%g): dead ReLUs?", level, gmax);
    for (size_t i = 0; i < net.n_params; i += 1 + net.n_params / 80) fd_check(&ps, &net, &a, R, &net.params[i], g_ref[i]);
    for (size_t i = 0; i < n_in; i += 1 + n_in / 60) fd_check(&xs, &net, &a, R, &a.input[i], dx_ref[i]);
    char what[64];
    snprintf(what, sizeof what, "decoder %d (width %d) parameters", level, width);
    fd_report(&ps, relu, what);
    snprintf(what, sizeof what, "decoder %d (width %d) input", level, width);
    fd_report(&xs, relu, what);
    /* the fast path */
    net_loss(&net, &a, R);
    memcpy(y_ref, stylenet_output(&net, &a), n_out * 4);
    CHECK(stylenet_forward(&net, &a, 0, &err) == NST_OK, "%s", err.msg);
    double ey = rel_l2(stylenet_output(&net, &a), y_ref, n_out);
    memset(net.grads, 0, net.n_params * 4);
    CHECK(stylenet_backward(&net, &a, dout, dx, 0, &err) == NST_OK, "%s", err.msg);
    double eg = rel_l2(net.grads, g_ref, net.n_params), ex = rel_l2(dx, dx_ref, n_in);
    CHECK(ey < 1e-5 && eg < 1e-4 && ex < 1e-4, "decoder %d fast vs reference: output %.3g, grads %.3g, input %.3g", level,
          ey, eg, ex);
    /* x255 on: the output 255 times larger, its gradients too */
    last->scale255 = 1;
    CHECK(stylenet_forward(&net, &a, 0, &err) == NST_OK, "%s", err.msg);
    double e255 = 0;
    for (size_t i = 0; i < n_out; i++) e255 = fmax(e255, fabs(stylenet_output(&net, &a)[i] - 255.0 * y_ref[i]));
    memset(net.grads, 0, net.n_params * 4);
    CHECK(stylenet_backward(&net, &a, dout, dx, 0, &err) == NST_OK, "%s", err.msg);
    for (size_t i = 0; i < net.n_params; i++) g_ref[i] *= 255.0f;
    CHECK(e255 < 1e-3 * 255 && rel_l2(net.grads, g_ref, net.n_params) < 1e-4, "decoder %d: x255 output %g off", level, e255);
    /* forward only, on the caller's input (layers overwriting their inputs in place):
     * the training buffers' output bit for bit, the input left as it was */
    {
        stylenet_acts fo;
        float *in = malloc(n_in * 4), *in0 = malloc(n_in * 4);
        memcpy(in, a.input, n_in * 4);
        memcpy(in0, a.input, n_in * 4);
        CHECK(stylenet_acts_build_on(&fo, &net, H, W, in, &err) == NST_OK && stylenet_forward(&net, &fo, 0, &err) == NST_OK,
              "%s", err.msg);
        CHECK(fo.input == in && fo.bytes < a.bytes, "decoder %d: forward-only buffers %zu of training's %zu", level,
              fo.bytes, a.bytes);
        CHECK(memcmp(stylenet_output(&net, &fo), stylenet_output(&net, &a), n_out * 4) == 0,
              "decoder %d: the forward-only output differs", level);
        CHECK(memcmp(in, in0, n_in * 4) == 0, "decoder %d: the forward pass changed its input", level);
        stylenet_acts_free(&fo);
        free(in), free(in0);
    }
    /* a file round trip; the wrong kind refused, saying what the file is */
    char path[512];
    snprintf(path, sizeof path, "%s/decoder%d.nstm", dir, level);
    nstm_model m = {0}, back = {0};
    CHECK(stylenet_model_add(&m, &net, &err) == NST_OK && nstm_save(&m, path, &err) == NST_OK, "%s", err.msg);
    stylenet net2, wrong;
    CHECK(nstm_load(&back, path, NULL, &err) == NST_OK && stylenet_decoder_read(&net2, &back, path, 0, &err) == NST_OK,
          "%s", err.msg);
    CHECK(net2.kind == STYLENET_DECODER && net2.level == level && net2.width == width && net2.n_params == net.n_params &&
              memcmp(net2.params, net.params, net.n_params * 4) == 0,
          "decoder %d: the file round trip changed it", level);
    CHECK(stylenet_model_read(&wrong, &back, path, 0, &err) == NST_ERR_FORMAT && strstr(err.msg, "a decoder"),
          "a decoder read as a style network: %s", err.msg);
    stylenet sn;
    nstm_model ms = {0};
    CHECK(stylenet_build(&sn, 2, 1, 0, &err) == NST_OK && stylenet_model_add(&ms, &sn, &err) == NST_OK, "%s", err.msg);
    CHECK(stylenet_decoder_read(&wrong, &ms, "style.nstm", 0, &err) == NST_ERR_FORMAT && strstr(err.msg, "a style network"),
          "a style network read as a decoder: %s", err.msg);
    CHECK(stylenet_build_decoder(&wrong, 6, 8, 0, &err) == NST_ERR_ARG, "level 6 built");
    stylenet_acts tiny;
    CHECK(stylenet_acts_build(&tiny, &net2, 1, 4, 0, &err) == NST_ERR_ARG, "a 4x1 input accepted");
    stylenet_free(&sn);
    nstm_free(&ms);
    stylenet_free(&net2);
    nstm_free(&m);
    nstm_free(&back);
    free(R); free(dout); free(dx); free(y_ref); free(g_ref); free(dx_ref);
    stylenet_acts_free(&a);
    stylenet_free(&net);
}

static nst_train_config tiny_config(const char *out) {
    nst_train_config cfg;
    nst_train_defaults(&cfg);
    cfg.device = NST_DEVICE_CPU; /* the CPU's trainer (test_cuda_johnson tests the GPU's) */
    cfg.style_path = NST_SHARED_DIR "/images/style/starry_night.jpg";
    cfg.data_dir = NST_SHARED_DIR "/datasets/photos256";
    cfg.output_path = out;
    cfg.size = 64;
    cfg.style_size = 128;
    cfg.batch = 2;
    cfg.width = 8;
    cfg.n_res = 2;
    cfg.lr = 1e-2f;
    cfg.steps = 40;
    cfg.checkpoint_every = 0;
    return cfg;
}

/* Parameters of a model file, in the file's order. */
static float *model_params(const char *path, size_t *n) {
    nstm_model m = {0};
    nst_error err;
    if (nstm_load(&m, path, NULL, &err) != NST_OK) { fprintf(stderr, "%s\n", err.msg); return NULL; }
    size_t total = 0;
    for (int i = 0; i < m.n_tensors; i++) total += m.tensors[i].count;
    float *p = malloc(total * 4), *q = p;
    for (int i = 0; i < m.n_tensors; i++) {
        memcpy(q, m.tensors[i].data, m.tensors[i].count * 4);
        q += m.tensors[i].count;
    }
    nstm_free(&m);
    *n = total;
    return p;
}

/* What a run's progress callbacks saw: the first one's and the last one's. */
typedef struct {
    int calls;
    nst_train_progress first, last;
} progress_log;

static int log_progress(const nst_train_progress *p, void *user) {
    progress_log *log = user;
    if (log->calls++ == 0) log->first = *p;
    log->last = *p;
    return 0;
}

/* A copy of the checkpoint src without its training time, as older nst wrote them. */
static void strip_train_seconds(const char *src, const char *dst) {
    nstm_model m = {0}, old = {0};
    nst_error err;
    CHECK(nstm_load(&m, src, NULL, &err) == NST_OK, "%s", err.msg);
    for (int i = 0; i < m.n_ints; i++) nstm_add_int(&old, m.ints[i].name, m.ints[i].value, &err);
    for (int i = 0; i < m.n_strings; i++)
        if (strcmp(m.strings[i].name, "train_seconds") != 0) nstm_add_string(&old, m.strings[i].name, m.strings[i].value, &err);
    for (int i = 0; i < m.n_tensors; i++)
        nstm_add_tensor(&old, m.tensors[i].name, m.tensors[i].ndim, m.tensors[i].dims, m.tensors[i].data, &err);
    CHECK(nstm_save(&old, dst, &err) == NST_OK, "%s", err.msg);
    nstm_free(&old);
    nstm_free(&m);
}

static void test_training(const nst_vgg19 *vgg, const char *dir) {
    char out[512], out2[512], ckpt[600], bad[512];
    snprintf(out, sizeof out, "%s/tiny.nstm", dir);
    snprintf(out2, sizeof out2, "%s/tiny2.nstm", dir);
    snprintf(bad, sizeof bad, "%s/bad.nstm", dir);
    nst_train_config cfg = tiny_config(out);
    nst_error err;

    /* the loss falls: mean of the last 5 steps below 60% of the first step's */
    stylenet_trainer *t;
    CHECK(stylenet_trainer_build(&t, &cfg, vgg, &err) == NST_OK, "%s", err.msg);
    if (!t) return;
    double first = 0, last = 0;
    /* a fixed set of photos through the trainer's own loop (the run below uses the dataset) */
    char files[8][600];
    nst_image img = {0}, sq = {0};
    for (int k = 0; k < 8; k++) snprintf(files[k], sizeof files[k], "%s/%05d.jpg", cfg.data_dir, k + 1);
    for (int step = 0; step < cfg.steps; step++) {
        float *batch = stylenet_trainer_batch(t);
        for (int b = 0; b < cfg.batch; b++) {
            const char *f = files[(step * cfg.batch + b) % 8];
            if (nst_image_load(&img, f, NULL, &err) || nst_image_resize(&sq, &img, 64, 64, &err)) {
                CHECK(0, "cannot read %s: %s", f, err.msg);
                return;
            }
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 64 * 64; i++) batch[(size_t)b * 3 * 4096 + c * 4096 + i] = sq.pixels[3 * i + c] / 255.0f;
            nst_image_free(&img);
            nst_image_free(&sq);
        }
        CHECK(stylenet_trainer_step(t, &err) == NST_OK, "%s", err.msg);
        double loss = stylenet_trainer_losses(t, NULL, NULL, NULL);
        if (step == 0) first = loss;
        if (step >= cfg.steps - 5) last += loss / 5;
    }
    printf("tiny training: loss %.4g at step 1, %.4g over the last 5 of %d steps (%.1f%%)\n", first, last, cfg.steps,
           100.0 * last / first);
    CHECK(last < 0.6 * first, "training loss fell from %.4g to only %.4g", first, last);

    /* save, load, apply: bit-identical to the network in memory */
    CHECK(stylenet_trainer_save_model(t, out, &err) == NST_OK, "%s", err.msg);
    nst_style_net *sn = NULL;
    CHECK(nst_style_net_load(&sn, out, NULL, &err) == NST_OK, "%s", err.msg);
    if (sn) {
        nst_image photo = {0}, res = {0};
        nst_image_alloc(&photo, 40, 28, &err);
        fill(photo.pixels, (size_t)40 * 28 * 3, 0.0f, 255.0f);
        CHECK(nst_style_net_apply(sn, &photo, &res, &err) == NST_OK, "%s", err.msg);
        stylenet_acts a;
        stylenet *net = stylenet_trainer_net(t);
        stylenet_acts_build(&a, net, 28, 40, 0, &err);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 28 * 40; i++) a.input[c * 28 * 40 + i] = photo.pixels[3 * i + c] * (1.0f / 255.0f);
        stylenet_forward(net, &a, 0, &err);
        const float *y = stylenet_output(net, &a);
        int same = res.width == 40 && res.height == 28;
        for (int c = 0; c < 3 && same; c++)
            for (int i = 0; i < 28 * 40; i++) same &= res.pixels[3 * i + c] == y[c * 28 * 40 + i];
        CHECK(same, "loaded model's output is bit-identical to the trained network's");
        stylenet_acts_free(&a);
        /* odd sizes, tiny images: same size out, no crop */
        int sizes[][2] = {{1, 1}, {7, 3}, {33, 17}, {5, 64}};
        for (int k = 0; k < 4; k++) {
            nst_image p2 = {0}, r2 = {0};
            nst_image_alloc(&p2, sizes[k][0], sizes[k][1], &err);
            fill(p2.pixels, (size_t)sizes[k][0] * sizes[k][1] * 3, 0.0f, 255.0f);
            CHECK(nst_style_net_apply(sn, &p2, &r2, &err) == NST_OK && r2.width == sizes[k][0] && r2.height == sizes[k][1],
                  "apply %dx%d", sizes[k][0], sizes[k][1]);
            nst_image_free(&p2);
            nst_image_free(&r2);
        }
        nst_image_free(&photo);
        nst_image_free(&res);
        nst_style_net_free(sn);
    }
    stylenet_trainer_free(t);

    /* bad model files: a tensor missing, a wrong shape, another kind of file */
    nstm_model m = {0};
    CHECK(nstm_load(&m, out, NULL, &err) == NST_OK, "%s", err.msg);
    nstm_model m2 = {0};
    for (int i = 0; i < m.n_ints; i++) nstm_add_int(&m2, m.ints[i].name, m.ints[i].value, &err);
    for (int i = 0; i < m.n_strings; i++) nstm_add_string(&m2, m.strings[i].name, m.strings[i].value, &err);
    for (int i = 1; i < m.n_tensors; i++) /* c1.weight dropped */
        nstm_add_tensor(&m2, m.tensors[i].name, m.tensors[i].ndim, m.tensors[i].dims, m.tensors[i].data, &err);
    nstm_save(&m2, bad, &err);
    CHECK(nst_style_net_load(&sn, bad, NULL, &err) == NST_ERR_FORMAT && strstr(err.msg, "bad.nstm") &&
              strstr(err.msg, "c1.weight") && !strchr(err.msg, '\n'),
          "missing tensor refused: %s", err.msg);
    nstm_free(&m2);
    nstm_model m3 = {0};
    for (int i = 0; i < m.n_ints; i++)
        nstm_add_int(&m3, m.ints[i].name, strcmp(m.ints[i].name, "width") ? m.ints[i].value : 9, &err);
    for (int i = 0; i < m.n_strings; i++) nstm_add_string(&m3, m.strings[i].name, m.strings[i].value, &err);
    for (int i = 0; i < m.n_tensors; i++)
        nstm_add_tensor(&m3, m.tensors[i].name, m.tensors[i].ndim, m.tensors[i].dims, m.tensors[i].data, &err);
    nstm_save(&m3, bad, &err);
    CHECK(nst_style_net_load(&sn, bad, NULL, &err) == NST_ERR_FORMAT && strstr(err.msg, "bad.nstm"),
          "shape mismatch refused: %s", err.msg);
    nstm_free(&m3);
    nstm_free(&m);
    CHECK(nst_style_net_load(&sn, NST_SHARED_DIR "/images/style/starry_night.jpg", NULL, &err) == NST_ERR_FORMAT &&
              strstr(err.msg, "starry_night.jpg"),
          "a JPEG is not a model: %s", err.msg);
    CHECK(nst_style_net_load(&sn, "no_such_style_anywhere", NULL, &err) == NST_ERR_IO && strstr(err.msg, "no_such_style_anywhere"),
          "unknown style name: %s", err.msg);

    /* stopped and resumed == straight through, bit for bit */
    cfg.steps = 6;
    cfg.holdout = 2;
    CHECK(nst_train_run(&cfg, vgg, NULL, NULL, &err) == NST_OK, "%s", err.msg);
    nst_train_config c2 = cfg;
    c2.output_path = out2;
    c2.steps = 3;
    progress_log run1 = {0}, run2 = {0};
    CHECK(nst_train_run(&c2, vgg, log_progress, &run1, &err) == NST_OK, "%s", err.msg);
    CHECK(run1.calls == 3 && run1.first.step == 1 && run1.first.start_step == 0 && run1.first.start_elapsed_s == 0.0 &&
              run1.last.elapsed_s >= run1.first.elapsed_s && run1.first.elapsed_s > 0.0,
          "first run's clock: %d calls, step %d from %d, %g s from %g s", run1.calls, run1.first.step,
          run1.first.start_step, run1.first.elapsed_s, run1.first.start_elapsed_s);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out2);
    nstm_model cm = {0};
    CHECK(nstm_load(&cm, ckpt, NULL, &err) == NST_OK, "%s", err.msg);
    const char *secs = nstm_get_string(&cm, "train_seconds");
    CHECK(secs && atof(secs) >= run1.last.elapsed_s, "checkpoint's train_seconds '%s' vs %g s trained",
          secs ? secs : "(none)", run1.last.elapsed_s);
    nstm_free(&cm);
    c2.steps = 6;
    c2.resume_path = ckpt;
    CHECK(nst_train_run(&c2, vgg, log_progress, &run2, &err) == NST_OK, "%s", err.msg);
    /* the resumed run's clock goes on from the checkpoint's */
    CHECK(run2.calls == 3 && run2.first.step == 4 && run2.first.start_step == 3 &&
              run2.first.start_elapsed_s >= run1.last.elapsed_s && run2.first.elapsed_s > run2.first.start_elapsed_s &&
              run2.last.elapsed_s >= run2.first.elapsed_s,
          "resumed run's clock: step %d from %d, %g s from %g s (the first run: %g s)", run2.first.step,
          run2.first.start_step, run2.first.elapsed_s, run2.first.start_elapsed_s, run1.last.elapsed_s);
    size_t n1 = 0, n2 = 0;
    float *p1 = model_params(out, &n1), *p2 = model_params(out2, &n2);
    CHECK(p1 && p2 && n1 == n2 && memcmp(p1, p2, n1 * 4) == 0, "resumed training gives the same parameters");
    free(p1);
    free(p2);
    /* a checkpoint without the training time (older nst) resumes with the clock at 0 */
    char old_ckpt[600];
    snprintf(old_ckpt, sizeof old_ckpt, "%s/old.ckpt", dir);
    strip_train_seconds(ckpt, old_ckpt);
    nst_train_config c3 = c2;
    c3.output_path = out2;
    c3.resume_path = old_ckpt;
    c3.steps = 7;
    progress_log run3 = {0};
    CHECK(nst_train_run(&c3, vgg, log_progress, &run3, &err) == NST_OK, "%s", err.msg);
    CHECK(run3.calls == 1 && run3.first.start_step == 6 && run3.first.start_elapsed_s == 0.0 &&
              run3.first.elapsed_s > 0.0,
          "old checkpoint's clock: step %d from %d, %g s from %g s", run3.first.step, run3.first.start_step,
          run3.first.elapsed_s, run3.first.start_elapsed_s);
    /* the preview of the last checkpoint exists */
    char prev[600];
    snprintf(prev, sizeof prev, "%s/tiny_step000006.jpg", dir);
    CHECK(access(prev, R_OK) == 0, "preview %s written", prev);
}

/* The registry's tables, and the CPU's apply table against stylenet_forward. */
static void test_backends(void) {
    nst_error err;
    CHECK(stylenet_backend_get(NST_DEVICE_CPU) == &stylenet_cpu_backend, "CPU apply table");
    CHECK(stylenet_backend_get(NST_DEVICE_CUDA) == &stylenet_cuda_backend, "CUDA apply table");
    CHECK(stylenet_backend_get(NST_DEVICE_AUTO) == &stylenet_cpu_backend, "an unresolved device gets the CPU's");
    CHECK(stylenet_trainer_backend_get(NST_DEVICE_CPU) == &stylenet_trainer_cpu_backend, "CPU trainer table");
    CHECK(stylenet_trainer_backend_get(NST_DEVICE_CUDA) == &stylenet_trainer_cuda_backend, "CUDA trainer table");
    CHECK(stylenet_cpu_backend.device == NST_DEVICE_CPU && stylenet_cuda_backend.device == NST_DEVICE_CUDA, "devices");
    CHECK(!stylenet_trainer_cpu_backend.own_state && stylenet_trainer_cuda_backend.own_state, "own_state");
    if (nst_cuda_probe(&err) != NST_OK) { /* no GPU (or no CUDA): the CUDA table says why */
        stylenet net;
        stylenet_runner *r = NULL;
        CHECK(stylenet_build(&net, 2, 0, 0, &err) == NST_OK, "%s", err.msg);
        nst_status s = stylenet_cuda_backend.create(&r, &net, NST_PRECISION_FP32, &err);
        CHECK(s != NST_OK && r == NULL && err.msg[0], "CUDA create without a GPU fails with a reason");
        if (r) r->ops->free(r);
        stylenet_free(&net);
    }
    /* the CPU's table: padded to a multiple of 4, the border cropped off */
    stylenet net;
    stylenet_acts a;
    nst_rng r;
    nst_rng_seed(&r, 5);
    CHECK(stylenet_build(&net, 4, 1, 0, &err) == NST_OK, "%s", err.msg);
    stylenet_init_params(&net, &r, &err);
    nst_image img = {0}, out = {0};
    nst_image_alloc(&img, 12, 8, &err);
    fill(img.pixels, (size_t)12 * 8 * 3, 0.0f, 255.0f);
    stylenet_runner *run = NULL;
    CHECK(stylenet_cpu_backend.create(&run, &net, NST_PRECISION_FP16, &err) == NST_OK, "%s", err.msg);
    CHECK(stylenet_apply_image(run, &img, &out, &err) == NST_OK && out.width == 12 && out.height == 8, "apply");
    CHECK(stylenet_acts_build(&a, &net, 8, 12, 0, &err) == NST_OK, "%s", err.msg);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 8 * 12; i++) a.input[c * 8 * 12 + i] = img.pixels[3 * i + c] * (1.0f / 255.0f);
    stylenet_forward(&net, &a, 0, &err);
    int same = 1;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 8 * 12; i++) same &= out.pixels[3 * i + c] == stylenet_output(&net, &a)[c * 8 * 12 + i];
    CHECK(same, "the CPU table's apply is stylenet_forward, bit for bit (its precision ignored)");
    run->ops->free(run);
    stylenet_acts_free(&a);
    nst_image_free(&img);
    nst_image_free(&out);
    stylenet_free(&net);
}

/* Conditional instance norm (stylenet_build_styles): each style's rows give their own
 * output; the gradient of a selected style goes to its rows only and matches finite
 * differences; a one-hot mix is that style bit for bit, a half-half mix the mean of two
 * rows; a model file keeps the tables; bad weights are refused. */
static void test_styles(void) {
    enum { NS = 3, H = 16, W = 12 };
    stylenet net, mix;
    stylenet_acts a;
    nst_error err;
    nst_rng r;
    nst_rng_seed(&r, 11);
    CHECK(stylenet_build_styles(&net, 2, 1, NS, 1, &err) == NST_OK && net.n_styles == NS, "%s", err.msg);
    stylenet_init_params(&net, &r, &err);
    for (int l = 0; l < net.n_layers; l++)
        if (net.layer[l].norm) {
            fill(net.layer[l].gammas, (size_t)NS * net.layer[l].C_out, 0.5f, 1.5f);
            fill(net.layer[l].betas, (size_t)NS * net.layer[l].C_out, -0.3f, 0.3f);
        }
    for (int l = 0; l < net.n_layers; l++) net.layer[l].relu = 0; /* smooth: no kinks in the differences */
    CHECK(stylenet_acts_build(&a, &net, H, W, 1, &err) == NST_OK, "%s", err.msg);
    size_t n = (size_t)3 * H * W;
    float *y[NS], *R = malloc(n * 4), *dout = malloc(n * 4);
    fill(a.input, n, 0.0f, 1.0f);
    fill(R, n, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) dout[i] = R[i] / 255.0f;
    for (int k = 0; k < NS; k++) {
        y[k] = malloc(n * 4);
        stylenet_select_style(&net, k);
        stylenet_forward(&net, &a, 1, &err);
        memcpy(y[k], stylenet_output(&net, &a), n * 4);
    }
    CHECK(rel_l2(y[0], y[1], n) > 1e-3 && rel_l2(y[1], y[2], n) > 1e-3, "the styles' outputs differ");

    /* style 1's gradient: its rows only, and right */
    stylenet_select_style(&net, 1);
    net_loss(&net, &a, R);
    memset(net.grads, 0, net.n_params * 4);
    CHECK(stylenet_backward(&net, &a, dout, NULL, 1, &err) == NST_OK, "%s", err.msg);
    int stray = 0, own = 0;
    fd_stats st = {0};
    for (int l = 0; l < net.n_layers; l++) {
        stylenet_layer *L = &net.layer[l];
        if (!L->norm) continue;
        for (int k = 0; k < NS; k++)
            for (int c = 0; c < L->C_out; c++) {
                float g = L->dgammas[k * L->C_out + c], b = L->dbetas[k * L->C_out + c];
                if (k != 1) stray += g != 0.0f || b != 0.0f;
                else own += g != 0.0f;
            }
        /* (a beta before a conv and another norm has no effect: its gradient is 0, and the
         * differences are rounding noise; those are checked for being small) */
        for (int c = 0; c < L->C_out; c++) {
            float *p[2] = {&L->gammas[L->C_out + c], &L->betas[L->C_out + c]};
            double g[2] = {L->dgammas[L->C_out + c], L->dbetas[L->C_out + c]};
            for (int k = 0; k < 2; k++) {
                if (fabs(g[k]) > 1e-4) {
                    fd_check(&st, &net, &a, R, p[k], g[k]);
                    continue;
                }
                float save = *p[k];
                *p[k] = save + 1e-3f; double lp = net_loss(&net, &a, R);
                *p[k] = save - 1e-3f; double lm = net_loss(&net, &a, R);
                *p[k] = save;
                CHECK(fabs(lp - lm) / 2e-3 < 5e-3, "a zero gradient where the difference is %g", (lp - lm) / 2e-3);
            }
        }
    }
    CHECK(stray == 0 && own > 0, "style 1's gradient in its rows only: %d stray, %d own", stray, own);
    fd_report(&st, 0, "a selected style's norm gradients");

    /* mixes */
    stylenet_acts b;
    for (int k = 0; k < NS; k++) {
        float w[NS] = {0};
        w[k] = 2.0f; /* (normalised: any scale) */
        CHECK(stylenet_mix_styles(&mix, &net, w, &err) == NST_OK && mix.n_styles == 1, "%s", err.msg);
        for (int l = 0; l < mix.n_layers; l++) mix.layer[l].relu = 0;
        CHECK(stylenet_acts_build(&b, &mix, H, W, 0, &err) == NST_OK, "%s", err.msg);
        memcpy(b.input, a.input, n * 4);
        stylenet_forward(&mix, &b, 1, &err);
        CHECK(memcmp(stylenet_output(&mix, &b), y[k], n * 4) == 0, "a one-hot mix is style %d bit for bit", k);
        stylenet_acts_free(&b);
        stylenet_free(&mix);
    }
    float half[NS] = {0.5f, 0.0f, 0.5f};
    CHECK(stylenet_mix_styles(&mix, &net, half, &err) == NST_OK, "%s", err.msg);
    double worst = 0;
    for (int l = 0; l < net.n_layers; l++) {
        const stylenet_layer *L = &net.layer[l];
        for (int c = 0; L->norm && c < L->C_out; c++)
            worst = fmax(worst, fabs(mix.layer[l].beta[c] - 0.5 * (L->betas[c] + L->betas[2 * L->C_out + c])) +
                                    fabs(mix.layer[l].gamma[c] - 0.5 * (L->gammas[c] + L->gammas[2 * L->C_out + c])));
    }
    CHECK(worst < 1e-6, "a half-half mix is the rows' mean (worst %g)", worst);
    stylenet_free(&mix);
    float neg[NS] = {1.0f, -0.5f, 0.5f}, zero[NS] = {0};
    CHECK(stylenet_mix_styles(&mix, &net, neg, &err) == NST_ERR_ARG && stylenet_mix_styles(&mix, &net, zero, &err) == NST_ERR_ARG,
          "negative or all-zero weights refused: %s", err.msg);

    /* the model file's tensors keep every style */
    nstm_model m = {0};
    stylenet back;
    CHECK(stylenet_model_add(&m, &net, &err) == NST_OK, "%s", err.msg);
    CHECK(stylenet_model_read(&back, &m, "mem", 0, &err) == NST_OK && back.n_styles == NS, "read: %s", err.msg);
    stylenet_select_style(&back, 2);
    for (int l = 0; l < back.n_layers; l++) back.layer[l].relu = 0;
    CHECK(stylenet_acts_build(&b, &back, H, W, 0, &err) == NST_OK, "%s", err.msg);
    memcpy(b.input, a.input, n * 4);
    stylenet_forward(&back, &b, 1, &err);
    CHECK(memcmp(stylenet_output(&back, &b), y[2], n * 4) == 0, "the file's style 2 is style 2");
    stylenet_acts_free(&b);
    stylenet_free(&back);
    nstm_free(&m);
    for (int k = 0; k < NS; k++) free(y[k]);
    free(R);
    free(dout);
    stylenet_acts_free(&a);
    stylenet_free(&net);
}

int main(void) {
    test_gradcheck(0);
    test_gradcheck(1);
    test_fast_vs_ref();
    test_styles();
    nst_vgg19 *vgg = NULL;
    nst_error err;
    nst_train_config cfg = tiny_config("x");
    if (nst_vgg19_load(&vgg, NST_SHARED_DIR "/models/vgg19", nst_train_depth(&cfg), &err) != NST_OK) {
        CHECK(0, "weights: %s", err.msg);
        TEST_DONE();
    }
    char dir[] = "/tmp/nst_test_johnson_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    for (int level = 1; level <= 5; level++) test_decoder(level, 2, level <= 2, dir);
    test_training(vgg, dir);
    nst_vgg19_free(vgg);
    test_backends(); /* (last: it draws from the test's random numbers) */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_DONE();
}
