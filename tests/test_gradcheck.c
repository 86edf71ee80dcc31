/* test_gradcheck.c - every backward pass of the ops and losses owned by the network and
 * transfer code against central finite differences in double precision: ReLU, max-pool,
 * content loss, style (Gram) loss raw and normalised, total variation, and the whole
 * objective (VGG19 forward + losses + backward) with the real weights.
 * (conv3x3 and gram have their own tests in test_conv.c and test_gram.c.)
 *
 * Method: for a scalar L(x) = sum(R * op(x)) with fixed random R (or the loss itself),
 * compare the analytic dL/dx with (L(x+h e_i) - L(x-h e_i)) / 2h at many coordinates. */
#include "loss/losses.h"
#include "net/vgg19.h"
#include "tensor/ops.h"
#include "test_devices.h"
#include "test_util.h"
#include "transfer/gatys.h"

static unsigned long long rng = 42;

static void fill(float *a, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) a[i] = scale * test_rand(&rng);
}

/* <R, y> in double */
static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void check_close(const char *what, double analytic, double numeric, double tol) {
    double err = fabs(analytic - numeric) / fmax(fmax(fabs(analytic), fabs(numeric)), 1e-3);
    CHECK(err < tol, "%s: analytic %.8g numeric %.8g (rel %.3g)", what, analytic, numeric, err);
}

static void test_relu(void) {
    enum { N = 257 };
    float x[N], y[N], R[N], dx[N];
    fill(x, N, 1.0f);
    fill(R, N, 1.0f);
    relu_backward(dx, R, x, N);
    for (int i = 0; i < N; i += 7) {
        if (fabsf(x[i]) < 1e-2f) continue; /* the kink */
        float h = 1e-3f, save = x[i];
        x[i] = save + h; relu_forward(y, x, N); double lp = dotd(R, y, N);
        x[i] = save - h; relu_forward(y, x, N); double lm = dotd(R, y, N);
        x[i] = save;
        check_close("relu", dx[i], (lp - lm) / (2 * h), 1e-3);
    }
}

static void test_maxpool(void) {
    /* odd sizes: the last row/column is dropped (floor) and gets zero gradient */
    int C = 3, H = 7, W = 9, Ho = 3, Wo = 4;
    size_t n = (size_t)C * H * W, no = (size_t)C * Ho * Wo;
    float *x = malloc(n * 4), *dx = malloc(n * 4), *y = malloc(no * 4), *R = malloc(no * 4);
    fill(x, n, 1.0f);
    fill(R, no, 1.0f);
    maxpool2x2_backward(dx, R, x, C, H, W, 0);
    for (size_t i = 0; i < n; i++) {
        float h = 1e-4f, save = x[i];
        x[i] = save + h; maxpool2x2_forward(y, x, C, H, W); double lp = dotd(R, y, no);
        x[i] = save - h; maxpool2x2_forward(y, x, C, H, W); double lm = dotd(R, y, no);
        x[i] = save;
        check_close("maxpool", dx[i], (lp - lm) / (2 * h), 2e-2);
    }
    /* ties: the whole gradient goes to one element of the window */
    float xt[4] = {1, 1, 1, 1}, dxt[4], g = 2.0f;
    maxpool2x2_backward(dxt, &g, xt, 1, 2, 2, 0);
    CHECK(dxt[0] == 2.0f && dxt[1] == 0 && dxt[2] == 0 && dxt[3] == 0, "tie goes to the first maximum");
    /* fused with the ReLU below: equal to pooling backward then relu_backward */
    for (size_t i = 0; i < n; i += 3) x[i] = x[i] > 0 ? x[i] : 0.0f; /* a ReLU output, with ties at 0 */
    float *dy = malloc(n * 4);
    maxpool2x2_backward(dx, R, x, C, H, W, 0);
    relu_backward(dx, dx, x, n);
    maxpool2x2_backward(dy, R, x, C, H, W, 1);
    CHECK(memcmp(dx, dy, n * 4) == 0, "maxpool backward with fused relu");
    free(dy);
    free(x); free(dx); free(y); free(R);
}

static void test_content_loss(void) {
    enum { N = 100 };
    float F[N], P[N], dF[N] = {0};
    fill(F, N, 3.0f);
    fill(P, N, 3.0f);
    float scale = 2.5f;
    content_loss_backward(dF, F, P, N, scale);
    for (int i = 0; i < N; i += 3) {
        float h = 1e-2f, save = F[i];
        F[i] = save + h; double lp = scale * content_loss_forward(F, P, N);
        F[i] = save - h; double lm = scale * content_loss_forward(F, P, N);
        F[i] = save;
        check_close("content loss", dF[i], (lp - lm) / (2 * h), 1e-3);
    }
}

static void test_style_loss(int normalized) {
    int C = 5, N = 23;
    float *F = malloc(C * N * 4), *dF = calloc(C * N, 4), A[25], G[25], dG[25];
    fill(F, C * N, 2.0f);
    fill(A, 25, 3.0f);
    float gs = normalized ? 1.0f / (C * N) : 1.0f, scale = 0.7f;
    style_loss_forward(G, F, A, C, N, gs, cpu_best_tier());
    style_loss_backward(dF, dG, G, A, F, C, N, gs, scale, cpu_best_tier());
    for (int i = 0; i < C * N; i += 2) {
        float h = 1e-2f, save = F[i];
        F[i] = save + h; double lp = scale * style_loss_forward(G, F, A, C, N, gs, cpu_best_tier());
        F[i] = save - h; double lm = scale * style_loss_forward(G, F, A, C, N, gs, cpu_best_tier());
        F[i] = save;
        check_close(normalized ? "style loss (normalized)" : "style loss (raw)", dF[i], (lp - lm) / (2 * h), 2e-3);
    }
    free(F); free(dF);
}

static void test_tv(void) {
    int C = 3, H = 5, W = 6;
    size_t n = (size_t)C * H * W;
    float x[90], dx[90] = {0};
    fill(x, n, 10.0f);
    float scale = 1.5f;
    tv_loss_backward(dx, x, C, H, W, scale);
    for (size_t i = 0; i < n; i++) {
        float h = 1e-2f, save = x[i];
        x[i] = save + h; double lp = scale * tv_loss_forward(x, C, H, W);
        x[i] = save - h; double lm = scale * tv_loss_forward(x, C, H, W);
        x[i] = save;
        check_close("tv loss", dx[i], (lp - lm) / (2 * h), 1e-3);
    }
    /* a constant image has no variation */
    for (size_t i = 0; i < n; i++) x[i] = 7.0f;
    CHECK(tv_loss_forward(x, C, H, W) == 0.0, "tv of a constant image is 0");
}

/* The whole objective with the real VGG19 at 32x32, for both presets' kinds of taps.
 * Directional derivative along random directions (finite differences of the full
 * network in float need a large step; the losses are smooth enough away from ReLU kinks). */
static void test_objective(const test_device *dev, const nst_vgg19 *net, const char *preset) {
    nst_transfer_config cfg;
    nst_error err;
    nst_transfer_preset(&cfg, preset, &err);
    cfg.device = dev->device;
    cfg.size = 32;
    cfg.squash = 1;
    if (strcmp(preset, "gatys") == 0) cfg.tv_weight = 10.0f;
    nst_image content = {0}, style = {0};
    nst_image_alloc(&content, 40, 32, &err);
    nst_image_alloc(&style, 32, 32, &err);
    for (int i = 0; i < 40 * 32 * 3; i++) content.pixels[i] = 127.5f + 120.0f * test_rand(&rng);
    for (int i = 0; i < 32 * 32 * 3; i++) style.pixels[i] = 127.5f + 120.0f * test_rand(&rng);
    nst_transfer *t = NULL;
    CHECK(gatys_build(&t, &cfg, net, &content, &style, NULL, 1, &err) == NST_OK, "%s: %s", dev->name, err.msg);
    if (!t) return;
    size_t n = 3 * 32 * 32;
    float *x = malloc(n * 4), *g = malloc(n * 4), *d = malloc(n * 4), *xp = malloc(n * 4), *tmp = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = gatys_content_input(t)[i] + 10.0f * test_rand(&rng);
    double f0 = 0.0, fp = 0.0, fm = 0.0;
    CHECK(gatys_eval(t, x, g, &f0, &err) == NST_OK, "%s: %s", dev->name, err.msg);
    for (int trial = 0; trial < 3; trial++) {
        fill(d, n, 1.0f);
        double analytic = dotd(g, d, n);
        double h = 1e-2;
        for (size_t i = 0; i < n; i++) xp[i] = x[i] + (float)h * d[i];
        CHECK(gatys_eval(t, xp, tmp, &fp, &err) == NST_OK, "%s: %s", dev->name, err.msg);
        for (size_t i = 0; i < n; i++) xp[i] = x[i] - (float)h * d[i];
        CHECK(gatys_eval(t, xp, tmp, &fm, &err) == NST_OK, "%s: %s", dev->name, err.msg);
        char what[64];
        snprintf(what, sizeof what, "%s objective (%s preset), f=%.4g", dev->name, preset, f0);
        check_close(what, analytic, (fp - fm) / (2 * h), dev->fd_tol);
    }
    free(x); free(g); free(d); free(xp); free(tmp);
    gatys_free(t);
    nst_image_free(&content);
    nst_image_free(&style);
}

/* Adds a fixed random gradient at the top layer. */
static void add_top_grad(void *ctx, const vgg19_acts *a, int l, float *g) {
    const float *R = ctx;
    size_t n = vgg19_layer_size(a, l);
    for (size_t i = 0; i < n; i++) g[i] += R[i];
}

/* The network's backward with the fast convolutions equals the one with the reference,
 * with and without a kept (not in-place) ReLU. */
static void test_backward_fast_vs_ref(const nst_vgg19 *net) {
    for (int keep_conv = 0; keep_conv < 2; keep_conv++) {
        vgg19_acts a;
        nst_error err;
        int depth = nst_layer_index("relu3_1") + 1;
        unsigned char keep[NST_NUM_LAYERS] = {0};
        keep[nst_layer_index("conv2_1")] = (unsigned char)keep_conv;
        CHECK(vgg19_acts_build(&a, depth, 20, 28, keep, &err) == NST_OK, "%s", err.msg);
        CHECK((a.out[nst_layer_index("relu2_1")] != a.out[nst_layer_index("conv2_1")]) == keep_conv, "keep");
        fill(a.input, 3 * 20 * 28, 100.0f);
        vgg19_forward(net, &a);
        int top = depth - 1;
        unsigned char tap[NST_NUM_LAYERS] = {0};
        tap[top] = 1;
        size_t n = vgg19_layer_size(&a, top);
        float *R = malloc(n * 4);
        fill(R, n, 1.0f);
        float *d1 = malloc(3 * 20 * 28 * 4), *d2 = malloc(3 * 20 * 28 * 4);
        vgg19_backward(net, &a, tap, add_top_grad, R, d1, 0);
        vgg19_backward(net, &a, tap, add_top_grad, R, d2, 1);
        double e = rel_l2(d1, d2, 3 * 20 * 28);
        CHECK(e < 1e-5, "network backward fast vs reference: rel err %.3g", e);
        free(R); free(d1); free(d2);
        vgg19_acts_free(&a);
    }
}

int main(void) {
    test_relu();
    test_maxpool();
    test_content_loss();
    test_style_loss(0);
    test_style_loss(1);
    test_tv();
    nst_vgg19 *net;
    nst_error err;
    if (nst_vgg19_load(&net, NST_SHARED_DIR "/models/vgg19", 0, &err) != NST_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_backward_fast_vs_ref(net);
    test_device devs[2];
    int n_devs = test_devices(devs);
    for (int d = 0; d < n_devs; d++) {
        test_objective(&devs[d], net, "seed");
        test_objective(&devs[d], net, "gatys");
    }
    nst_vgg19_free(net);
    TEST_DONE();
}
