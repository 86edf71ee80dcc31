/* test_oracle.c - nst against PyTorch: ../shared/oracle/gatys64 holds a 64x64 transfer
 * computed by PyTorch on the same weights. Checks, each as a relative L2 error:
 *   weights loader (per-tensor sums and first values),
 *   preprocessing of the PNG inputs,
 *   every conv layer's output (fast and reference convolutions)        < 1e-5
 *   the Grams, each per-layer loss, the gradients, 5 Adam steps          < 1e-4
 * The losses, gradients and Adam steps run on every device there is (test_devices.h:
 * CUDA's tolerances are looser); the network's layers are the CPU's here and CUDA's in
 * test_cuda_gatys. */
#include "net/vgg19.h"
#include "oracle.h"
#include "test_devices.h"
#include "test_util.h"
#include "transfer/gatys.h"

#define FEATURE_TOL 1e-5
#define LOSS_TOL 1e-4

static void test_weights(const nst_vgg19 *net) {
    const cJSON *sums = cJSON_GetObjectItem(oracle_index, "weights_checksums");
    for (int k = 0; k < 16; k++) {
        const vgg_conv *c = &net->conv[k];
        for (int is_bias = 0; is_bias < 2; is_bias++) {
            int b = 0, i = k;
            static const int convs[5] = {2, 2, 4, 4, 4};
            while (i >= convs[b]) i -= convs[b++];
            char name[64];
            snprintf(name, sizeof name, "block%d_conv%d/%s", b + 1, i + 1, is_bias ? "bias" : "kernel");
            const cJSON *e = cJSON_GetObjectItem(sums, name);
            size_t n = is_bias ? (size_t)c->C_out : (size_t)9 * c->C_in * c->C_out;
            const float *v = is_bias ? c->bias : c->weight;
            double sum = 0, sumsq = 0;
            for (size_t j = 0; j < n; j++) { sum += v[j]; sumsq += (double)v[j] * v[j]; }
            double want_sum = cJSON_GetObjectItem(e, "sum")->valuedouble;
            double want_sq = cJSON_GetObjectItem(e, "sumsq")->valuedouble;
            CHECK(fabs(sum - want_sum) < 1e-6 * (1 + sqrt(want_sq * n)), "%s sum %.9g want %.9g", name, sum, want_sum);
            CHECK(rel_err(sumsq, want_sq) < 1e-9, "%s sumsq %.12g want %.12g", name, sumsq, want_sq);
            /* first4 are in HWIO order: kh=kw=ci=0, co=0..3 -> OIHW index co*C_in*9 */
            const cJSON *f4 = cJSON_GetObjectItem(e, "first4");
            for (int j = 0; j < 4; j++) {
                float got = is_bias ? v[j] : v[(size_t)j * c->C_in * 9];
                float want = (float)cJSON_GetArrayItem(f4, j)->valuedouble;
                CHECK(got == want, "%s first4[%d] %.9g want %.9g", name, j, got, want);
            }
        }
    }
}

static void test_preprocess(void) {
    static const char *names[2] = {"content", "style"};
    for (int i = 0; i < 2; i++) {
        char path[512], arr[64];
        char file[64];
        snprintf(file, sizeof file, "%s_64.png", names[i]);
        oracle_file(path, sizeof path, file);
        nst_image img = {0};
        nst_error err;
        CHECK(nst_image_load(&img, path, NULL, &err) == NST_OK, "%s", err.msg);
        if (!img.pixels) continue;
        float x[3 * 64 * 64];
        vgg19_preprocess(x, &img);
        snprintf(arr, sizeof arr, "input_%s", names[i]);
        float *want = oracle(arr, 3 * 64 * 64);
        double e = rel_l2(x, want, 3 * 64 * 64);
        CHECK(e < 1e-7, "preprocess %s: rel err %.3g", names[i], e);
        nst_image_free(&img);
        free(want);
    }
}

/* Forward pass on a preprocessed oracle input; compares the named conv layers. */
static void test_features(const nst_vgg19 *net, const char *input, const char *prefix, int all_convs, int ref) {
    vgg19_acts a;
    nst_error err;
    CHECK(vgg19_acts_build(&a, NST_NUM_LAYERS - 1, 64, 64, NULL, &err) == NST_OK, "%s", err.msg);
    float *x = oracle(input, 3 * 64 * 64);
    memcpy(a.input, x, sizeof(float) * 3 * 64 * 64);
    double worst = 0;
    for (int l = 0; l < a.depth; l++) {
        float *pre = NULL;
        if (ref) vgg19_forward_layer_ref(net, &a, l);
        else vgg19_forward_layer(net, &a, l);
        const char *name = nst_layer_name(l);
        if (vgg19_layer_kind(l) != VGG_CONV) continue;
        if (!all_convs && name[6] != '1') continue; /* the taps convB_1 only */
        char arr[64];
        snprintf(arr, sizeof arr, "%s_%s", prefix, name);
        size_t n = vgg19_layer_size(&a, l);
        pre = oracle(arr, n);
        double e = rel_l2(a.out[l], pre, n);
        if (e > worst) worst = e;
        CHECK(e < FEATURE_TOL, "%s (%s conv): rel err %.3g", arr, ref ? "reference" : "fast", e);
        free(pre);
    }
    printf("features %-8s %-9s worst rel L2 error %.3g\n", prefix, ref ? "reference" : "fast", worst);
    free(x);
    vgg19_acts_free(&a);
}

/* vgg19_forward_taps (no activations kept): each tap against the oracle's conv outputs,
 * before the ReLU where a conv is tapped and after it (fused) where its ReLU is. */
typedef struct {
    int relu, calls, take_at; /* take_at: the layer whose buffer the tap takes, or -1 */
    double worst;
    float *taken;
} taps_check;

static nst_status check_tap(void *ctx, int l, float *out, int C, int h, int w, int *take, nst_error *err) {
    (void)err;
    taps_check *tc = ctx;
    int conv = tc->relu ? l - 1 : l;
    char arr[64];
    snprintf(arr, sizeof arr, "content_%s", nst_layer_name(conv));
    size_t n = (size_t)C * h * w;
    float *want = oracle(arr, n);
    if (tc->relu)
        for (size_t i = 0; i < n; i++) want[i] = want[i] > 0.0f ? want[i] : 0.0f;
    double e = rel_l2(out, want, n);
    CHECK(e < FEATURE_TOL, "forward_taps at %s%s: rel err %.3g", nst_layer_name(l), tc->relu ? "" : " (pre-ReLU)", e);
    if (e > tc->worst) tc->worst = e;
    free(want);
    tc->calls++;
    if (l == tc->take_at) *take = 1, tc->taken = out;
    return NST_OK;
}

static void test_forward_taps(const nst_vgg19 *net) {
    nst_image img = oracle_image("input_content");
    nst_error err;
    int depth = nst_layer_index("relu5_4") + 1;
    unsigned char want[NST_NUM_LAYERS];
    for (int relu = 0; relu < 2; relu++) {
        taps_check tc = {.relu = relu, .take_at = relu ? depth - 1 : -1};
        int expect = 0;
        for (int l = 0; l < depth; l++) {
            want[l] = vgg19_layer_kind(l) == (relu ? VGG_RELU : VGG_CONV) && vgg19_layer_kind(l - relu) == VGG_CONV;
            expect += want[l];
        }
        CHECK(vgg19_forward_taps(net, NULL, &img, depth, want, check_tap, &tc, &err) == NST_OK, "%s", err.msg);
        CHECK(tc.calls == expect && expect == 16, "forward_taps: %d taps of %d", tc.calls, expect);
        CHECK(!relu || tc.taken, "the last tap's buffer was not handed over");
        free(tc.taken);
        printf("forward_taps %s: 16 taps, worst rel L2 error %.3g\n", relu ? "after the ReLUs" : "before the ReLUs",
               tc.worst);
    }
    /* only the last layer's buffer can be taken; a small image is refused by name */
    memset(want, 0, sizeof want);
    want[nst_layer_index("relu1_1")] = 1;
    taps_check tc = {.relu = 1, .take_at = nst_layer_index("relu1_1")};
    CHECK(vgg19_forward_taps(net, NULL, &img, depth, want, check_tap, &tc, &err) == NST_ERR_ARG &&
              strstr(err.msg, "last layer"),
          "a middle layer's buffer taken: %s", err.msg);
    nst_image tiny = {0};
    CHECK(nst_image_alloc(&tiny, 8, 8, &err) == NST_OK, "%s", err.msg);
    CHECK(vgg19_forward_taps(net, NULL, &tiny, depth, want, check_tap, &tc, &err) == NST_ERR_ARG &&
              strstr(err.msg, "too small"),
          "an 8x8 image through 4 pools: %s", err.msg);
    nst_image_free(&tiny);
    nst_image_free(&img);
}

static nst_transfer_config seed_config(nst_device device, float content_weight, float style_weight, int steps) {
    nst_transfer_config cfg;
    nst_error err;
    nst_transfer_preset(&cfg, "seed", &err);
    cfg.size = 64;
    cfg.content_weight = content_weight;
    cfg.style_weight = style_weight;
    cfg.steps = steps;
    cfg.device = device;
    return cfg;
}

static void test_grams_losses_gradients(const test_device *dev, const nst_vgg19 *net, const nst_image *content,
                                        const nst_image *style) {
    static const char *taps[5] = {"conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"};
    float *gen = oracle("input_gen", 3 * 64 * 64), *grad = malloc(sizeof(float) * 3 * 64 * 64);
    nst_error err;
    /* weights (content, style) for: total, content only, style only (unweighted) */
    static const struct { float cw, sw; const char *grad; const char *loss; } cases[3] = {
        {1.0f, 0.01f, "grad_total_gen", "total"}, {1.0f, 0.0f, "grad_content_gen", "content"},
        {0.0f, 1.0f, "grad_style_gen", "style"}};
    for (int k = 0; k < 3; k++) {
        nst_transfer_config cfg = seed_config(dev->device, cases[k].cw, cases[k].sw, 0);
        nst_transfer *t = NULL;
        CHECK(gatys_build(&t, &cfg, net, content, style, NULL, 1, &err) == NST_OK, "%s: %s", dev->name, err.msg);
        if (!t) continue;
        /* the content image is exactly the oracle's input */
        float *xc = oracle("input_content", 3 * 64 * 64);
        CHECK(rel_l2(gatys_content_input(t), xc, 3 * 64 * 64) < 1e-7, "content input differs");
        free(xc);
        double f = 0.0;
        CHECK(gatys_eval(t, gen, grad, &f, &err) == NST_OK, "%s: %s", dev->name, err.msg);
        float *want = oracle(cases[k].grad, 3 * 64 * 64);
        double e = rel_l2(grad, want, 3 * 64 * 64);
        CHECK(e < dev->grad_tie_tol, "%s %s: rel err %.3g", dev->name, cases[k].grad, e);
        printf("%-4s gradient %-22s rel L2 error %.3g\n", dev->name, cases[k].grad, e);
        free(want);
        double want_f = json_num("losses", "gen", cases[k].loss);
        if (k == 2) want_f = json_num("losses", "gen", "style"); /* unweighted */
        CHECK(rel_err(f, want_f) < dev->loss_tol, "%s loss %s %.10g want %.10g", dev->name, cases[k].loss, f, want_f);
        printf("%-4s loss     %-22s %.10g (oracle %.10g, rel error %.3g)\n", dev->name, cases[k].loss, f, want_f,
               rel_err(f, want_f));
        if (k == 0) {
            for (int i = 0; i < 5; i++) {
                double c, s;
                gatys_layer_losses(t, nst_layer_index(taps[i]), &c, &s);
                double wc = json_num("losses_per_layer", taps[i], "content_gen");
                double ws = json_num("losses_per_layer", taps[i], "style_gen");
                CHECK(rel_err(c, wc) < dev->loss_tol, "%s content loss %s %.10g want %.10g", dev->name, taps[i], c, wc);
                CHECK(rel_err(s, ws) < dev->loss_tol, "%s style loss %s %.10g want %.10g", dev->name, taps[i], s, ws);
                printf("%-4s layer    %-8s content rel error %.3g  style rel error %.3g\n", dev->name, taps[i],
                       rel_err(c, wc), rel_err(s, ws));
            }
            /* the style targets and the gen Grams (the CPU's network: once) */
            for (int i = 0; i < 5 && dev->device == NST_DEVICE_CPU; i++) {
                int l = nst_layer_index(taps[i]);
                int C = l == 0 ? 64 : l == 5 ? 128 : l == 10 ? 256 : 512;
                size_t cc = (size_t)C * C;
                vgg19_acts a;
                vgg19_acts_build(&a, l + 1, 64, 64, NULL, &err);
                static const char *which[3] = {"style", "content", "gen"};
                for (int w = 0; w < 3; w++) {
                    char arr[64];
                    snprintf(arr, sizeof arr, "input_%s", which[w]);
                    float *x = oracle(arr, 3 * 64 * 64);
                    memcpy(a.input, x, sizeof(float) * 3 * 64 * 64);
                    vgg19_forward(net, &a);
                    float *G = malloc(cc * sizeof(float));
                    gram_forward(G, a.out[l], C, a.Hl[l] * a.Wl[l], 1.0f, net->tier);
                    snprintf(arr, sizeof arr, "gram_%s_%s", which[w], taps[i]);
                    float *want_g = oracle(arr, cc);
                    double eg = rel_l2(G, want_g, cc);
                    CHECK(eg < LOSS_TOL, "%s: rel err %.3g", arr, eg);
                    printf("gram     %-22s rel L2 error %.3g\n", arr, eg);
                    free(G);
                    free(want_g);
                    free(x);
                }
                vgg19_acts_free(&a);
            }
            /* gradient at the content image: the seed's first step */
            float *xc2 = oracle("input_content", 3 * 64 * 64);
            double f0 = 0.0;
            CHECK(gatys_eval(t, xc2, grad, &f0, &err) == NST_OK, "%s: %s", dev->name, err.msg);
            want = oracle("grad_total_at_content", 3 * 64 * 64);
            e = rel_l2(grad, want, 3 * 64 * 64);
            CHECK(e < dev->loss_tol, "%s grad_total_at_content: rel err %.3g", dev->name, e);
            printf("%-4s gradient %-22s rel L2 error %.3g\n", dev->name, "grad_total_at_content", e);
            double wf0 = json_num("losses", "at_content", "total");
            CHECK(rel_err(f0, wf0) < dev->loss_tol, "%s loss at content %.10g want %.10g", dev->name, f0, wf0);
            free(want);
            free(xc2);
        }
        gatys_free(t);
    }
    free(gen);
    free(grad);
}

/* The seed preset's first 5 Adam steps through the public API. */
typedef struct { double total[8], content[8], style[8]; int n; } loss_log;

static int record(nst_transfer *t, const nst_progress *p, void *user) {
    loss_log *log = user;
    if (log->n < 8) {
        log->total[log->n] = p->total_loss;
        log->content[log->n] = p->content_loss;
        log->style[log->n] = p->style_loss;
        log->n++;
    }
    return 0;
}

static void test_adam(const test_device *dev, const nst_vgg19 *net, const nst_image *content, const nst_image *style) {
    nst_transfer_config cfg = seed_config(dev->device, 1.0f, 0.01f, 5);
    loss_log log = {0};
    nst_image out = {0};
    nst_error err;
    CHECK(nst_transfer_run(&cfg, net, content, style, NULL, 1, record, &log, &out, &err) == NST_OK, "%s: %s",
          dev->name, err.msg);
    CHECK(log.n == 5, "%s: %d progress calls", dev->name, log.n);
    const cJSON *steps = cJSON_GetObjectItem(cJSON_GetObjectItem(oracle_index, "adam"), "losses_before_each_step");
    for (int i = 0; i < 5 && i < log.n; i++) {
        const cJSON *s = cJSON_GetArrayItem(steps, i);
        double wt = cJSON_GetObjectItem(s, "total")->valuedouble;
        double wc = cJSON_GetObjectItem(s, "content")->valuedouble;
        double ws = cJSON_GetObjectItem(s, "style")->valuedouble * 0.01; /* progress reports weighted */
        CHECK(rel_err(log.total[i], wt) < dev->loss_tol, "%s adam step %d total %.10g want %.10g", dev->name, i,
              log.total[i], wt);
        CHECK(rel_err(log.style[i], ws) < dev->loss_tol, "%s adam step %d style %.10g want %.10g", dev->name, i,
              log.style[i], ws);
        /* the content loss is 0 before step 0, then the squared size of the first few
         * lr-sized moves: compare it relative to max(1, it) */
        CHECK(fabs(log.content[i] - wc) <
                  (i > 0 ? dev->content_step_tol : dev->loss_tol) * (wc > 1 ? wc : 1) + (i > 0) * dev->content_step_abs,
              "%s adam step %d content %.10g want %.10g", dev->name, i, log.content[i], wc);
    }
    if (!out.pixels) return;
    /* the image after 5 steps, in the network's input space (the result is clamped RGB:
     * compare the same clamp of the oracle) */
    float *want = oracle("adam_x_after_5", 3 * 64 * 64);
    nst_image want_img = {0};
    nst_image_alloc(&want_img, 64, 64, &err);
    vgg19_deprocess(&want_img, want);
    double e = rel_l2(out.pixels, want_img.pixels, 3 * 64 * 64);
    double maxd = 0;
    for (int i = 0; i < 3 * 64 * 64; i++) maxd = fmax(maxd, fabs(out.pixels[i] - want_img.pixels[i]));
    CHECK(e < dev->loss_tol, "%s adam x after 5: rel err %.3g", dev->name, e);
    CHECK(maxd < 2 * 0.0765 + 1e-3, "%s adam x after 5: max abs diff %.3g", dev->name, maxd);
    printf("%-4s adam     x after 5 steps       rel L2 error %.3g, max abs %.3g (lr 0.0765)\n", dev->name, e, maxd);
    free(want);
    nst_image_free(&want_img);
    nst_image_free(&out);
}

int main(void) {
    oracle_load_index();
    nst_vgg19 *net;
    nst_error err;
    char weights[4200];
    CHECK(nst_vgg19_load(&net, shared_path(weights, sizeof weights, "models/vgg19"), 0, &err) == NST_OK, "%s",
          err.msg);
    test_weights(net);
    test_preprocess();
    test_features(net, "input_content", "content", 1, 0);
    test_features(net, "input_content", "content", 1, 1);
    test_features(net, "input_style", "style", 0, 0);
    test_features(net, "input_gen", "gen", 0, 0);
    test_forward_taps(net);
    nst_image content = oracle_image("input_content"), style = oracle_image("input_style");
    test_device devs[2];
    int n_devs = test_devices(devs);
    for (int d = 0; d < n_devs; d++) {
        test_grams_losses_gradients(&devs[d], net, &content, &style);
        test_adam(&devs[d], net, &content, &style);
    }
    nst_image_free(&content);
    nst_image_free(&style);
    nst_vgg19_free(net);
    oracle_free_index();
    TEST_DONE();
}
