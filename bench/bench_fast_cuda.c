/* bench_fast_cuda.c - fast style transfer on CUDA: the style network's forward pass as
 * nst apply --device cuda runs it (the network alone, image already on the GPU; and end
 * to end: upload, network, download), and one training step as nst train --device cuda
 * runs it (stylenet_trainer_step: the batch uploaded, the network on the whole batch, the
 * VGG19 loss per photo, backward, Adam, the losses read back), plus the network's share.
 * Random inputs (fixed seeds); each time is the best of --iters after --warmup runs
 * (the first also chooses cuDNN's algorithms).
 * The painting (whose Grams are the style targets; any painting costs the same) is
 * --style, else $NST_SHARED_DIR/images/style/starry_night.jpg, else the one beside the
 * VGG19 weights (WEIGHTS/../../images/style/, the shared folder's layout).
 * With NST_CUDA_PROFILE=1 it also prints, from GPU events: each network layer's time in
 * the last apply run of each configuration, and for the training step the mean time of
 * its phases (upload, network forward, VGG19 losses, network backward, Adam), one photo's
 * VGG19 parts, and each network layer's forward and backward in the last step.
 * fp16 (nst apply --precision fp16) is measured for apply only (training has no fp16).
 *
 *   bench_fast_cuda [--iters K] [--warmup W] [--sizes 1024x1024,3840x2160] [--widths 32]
 *                   [--precisions fp32,tf32,fp16] [--train-size 256] [--batch 4]
 *                   [--no-train] [--no-apply] [--weights DIR] [--style FILE]
 *
 * The last lines are machine-readable (bench/compare_fast_cuda_pytorch.py reads them):
 * apply_ms_w32_1024x1024_fp32=..., apply_e2e_ms_w32_1024x1024_fp32=...,
 * apply_mb_w32_1024x1024_fp32=..., train_step_ms_w32_fp32=..., train_net_ms_w32_fp32=...
 * Without CUDA or a GPU it says so and exits 77. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nst.h"

#ifndef NST_HAVE_CUDA
int main(void) {
    printf("SKIP: this nst was built without CUDA\n");
    return 77;
}
#else

#include "cuda/cuda_common.h"
#include "cuda/stylenet_cuda.h"
#include "cuda/layers_cuda.h"
#include "net/stylenet.h"
#include "transfer/stylenet_train.h"
#include "util/util.h"
#include "bench_common.h"

#define MAX_LIST 16

static void check(nst_status s, const nst_error *err) { bench_check("bench_fast_cuda", s, err); }

/* "1024x1024,3840x2160" or "512,1024" (squares) -> widths and heights; the count, 0 if bad */
static int parse_sizes(const char *s, int *w, int *h) {
    int n = 0;
    while (*s && n < MAX_LIST) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s || a < 1 || a > 100000) return 0;
        if (*end == 'x') {
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s || b < 1 || b > 100000) return 0;
        }
        w[n] = (int)a, h[n] = (int)b, n++;
        if (*end && *end != ',') return 0;
        s = *end == ',' ? end + 1 : end;
    }
    return *s ? 0 : n;
}

static int parse_ints(const char *s, int *out) {
    int n = 0;
    while (*s && n < MAX_LIST) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 100000) return 0;
        out[n++] = (int)v;
        if (*end && *end != ',') return 0;
        s = *end == ',' ? end + 1 : end;
    }
    return *s ? 0 : n;
}

static int parse_precisions(const char *s, nst_precision *out) {
    int n = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *t = strtok(buf, ","); t && n < 3; t = strtok(NULL, ",")) {
        if (!strcmp(t, "fp32")) out[n++] = NST_PRECISION_FP32;
        else if (!strcmp(t, "tf32")) out[n++] = NST_PRECISION_TF32;
        else if (!strcmp(t, "fp16")) out[n++] = NST_PRECISION_FP16;
        else return 0;
    }
    return n;
}

static const char *prec_name(nst_precision p) { return p == NST_PRECISION_TF32 ? "tf32" : p == NST_PRECISION_FP16 ? "fp16" : "fp32"; }

static int readable(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* The painting when --style is not given: $NST_SHARED_DIR's, else the one in the shared
 * folder that holds the weights (WEIGHTS = SHARED/models/vgg19). NULL if neither is there. */
static const char *find_style(const char *weights_dir, char *buf, size_t len) {
    const char *env = getenv("NST_SHARED_DIR");
    if (env && *env) {
        snprintf(buf, len, "%s/images/style/starry_night.jpg", env);
        if (readable(buf)) return buf;
    }
    snprintf(buf, len, "%s/../../images/style/starry_night.jpg", weights_dir);
    return readable(buf) ? buf : NULL;
}

typedef struct {
    double fwd_ms, e2e_ms, mb;
} apply_time;

static void print_line(void *user, const char *line) { fprintf(user, "%s\n", line); }

/* The settings of the environment ($NST_CUDA_PROFILE, ...), the messages on stdout. */
static void bench_tuning(nst_tuning *t) {
    nst_error err;
    nst_tuning_from_env(t, &err);
    t->log = print_line;
    t->log_user = stdout;
}

/* Best-of-iters ms of the network alone (input on the GPU, synchronised) and of
 * stylenet_cuda_apply end to end, W x H, batch 1. A failure (out of memory, no cuDNN algorithm)
 * is printed and gives negative times: the other configurations still run. */
static apply_time time_apply(nst_cuda *ctx, int width, int W, int H, nst_precision prec, int warmup, int iters) {
    nst_error err;
    stylenet net;
    nst_rng rng;
    nst_rng_seed(&rng, 1);
    check(stylenet_build(&net, width, 5, 0, &err), &err);
    bench_tuning(&net.tuning);
    check(stylenet_init_params(&net, &rng, &err), &err);
    stylenet_cuda *g = NULL;
    nst_image img = {0}, out = {0};
    check(nst_image_alloc(&img, W, H, &err), &err);
    fill_uniform(img.pixels, (size_t)W * H * 3, 0.0f, 255.0f, &rng);
    int Hp = (H + 3) / 4 * 4, Wp = (W + 3) / 4 * 4;
    apply_time t = {1e30, 1e30, 0};
    nst_status s = stylenet_cuda_create(&g, ctx, &net, 0, prec, &err);
    for (int it = 0; !s && it < warmup + iters; it++) { /* end to end (its first run sizes the buffers) */
        double t0 = nst_now();
        s = stylenet_cuda_apply(g, &img, Hp, Wp, &out, &err);
        double dt = nst_now() - t0;
        nst_image_free(&out);
        if (it >= warmup && dt < t.e2e_ms) t.e2e_ms = dt;
    }
    for (int it = 0; !s && it < warmup + iters; it++) { /* the network alone, on the uploaded image */
        double t0 = nst_now();
        s = stylenet_cuda_forward(g, &err);
        if (!s) s = cu_sync(ctx, &err);
        double dt = nst_now() - t0;
        if (it >= warmup && dt < t.fwd_ms) t.fwd_ms = dt;
    }
    if (!s && net.tuning.cuda_profile) {
        char title[96];
        snprintf(title, sizeof title, "profile: apply w%d %dx%d %s", width, W, H, prec_name(prec));
        s = stylenet_cuda_profile_log(g, title, &err);
    }
    t.fwd_ms *= 1e3;
    t.e2e_ms *= 1e3;
    if (s) {
        printf("apply w%d %dx%d %s failed: %s\n", width, W, H, prec_name(prec), err.msg);
        t.fwd_ms = t.e2e_ms = -1;
    }
    t.mb = g ? stylenet_cuda_bytes(g) / 1048576.0 : 0;
    nst_image_free(&img);
    stylenet_cuda_free(g);
    stylenet_free(&net);
    return t;
}

/* Best-of-iters ms of the network's forward + backward to its parameters on the batch. */
static double time_net_train(nst_cuda *ctx, int width, int B, int S, nst_precision prec, int warmup, int iters) {
    nst_error err;
    stylenet net;
    nst_rng rng;
    nst_rng_seed(&rng, 1);
    check(stylenet_build(&net, width, 5, 1, &err), &err);
    bench_tuning(&net.tuning);
    check(stylenet_init_params(&net, &rng, &err), &err);
    stylenet_cuda *g = NULL;
    check(stylenet_cuda_create(&g, ctx, &net, 1, prec, &err), &err);
    check(stylenet_cuda_resize(g, B, S, S, &err), &err);
    size_t n = (size_t)B * 3 * S * S;
    float *x = nst_alloc_array(n, sizeof(float)), *d = NULL;
    if (!x) { fprintf(stderr, "bench_fast_cuda: out of memory\n"); exit(1); }
    fill_uniform(x, n, 0.0f, 1.0f, &rng);
    check(cu_upload(ctx, stylenet_cuda_input(g), x, n, &err), &err);
    fill_uniform(x, n, -1e-3f, 1e-3f, &rng);
    check(cu_buffer(ctx, &d, n, &err), &err);
    check(cu_upload(ctx, d, x, n, &err), &err);
    double best = 1e30;
    for (int it = 0; it < warmup + iters; it++) {
        double t0 = nst_now();
        check(stylenet_cuda_zero_grads(g, &err), &err);
        check(stylenet_cuda_forward(g, &err), &err);
        check(stylenet_cuda_backward(g, d, NULL, &err), &err);
        check(cu_sync(ctx, &err), &err);
        double dt = nst_now() - t0;
        if (it >= warmup && dt < best) best = dt;
    }
    cu_buffer_free(d);
    free(x);
    stylenet_cuda_free(g);
    stylenet_free(&net);
    return best * 1e3;
}

/* Best-of-iters ms of stylenet_trainer_step on CUDA on a random batch. */
static double time_train_step(const nst_train_config *cfg, const nst_vgg19 *vgg, int warmup, int iters) {
    nst_error err;
    stylenet_trainer *t;
    nst_rng rng;
    nst_rng_seed(&rng, 1);
    check(stylenet_trainer_build(&t, cfg, vgg, &err), &err);
    fill_uniform(stylenet_trainer_batch(t), (size_t)cfg->batch * 3 * cfg->size * cfg->size, 0.0f, 1.0f, &rng);
    double best = 1e30;
    for (int it = 0; it < warmup + iters; it++) {
        double t0 = nst_now();
        check(stylenet_trainer_step(t, &err), &err); /* returns after the losses are read back */
        double dt = nst_now() - t0;
        if (it >= warmup && dt < best) best = dt;
    }
    fflush(stdout);
    stylenet_trainer_free(t); /* (which prints the step's profile to stderr with NST_CUDA_PROFILE=1) */
    return best * 1e3;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_fast_cuda [--iters K] [--warmup W] [--sizes 1024x1024,3840x2160] [--widths 32]\n"
                    "                       [--precisions fp32,tf32,fp16] [--train-size 256] [--batch 4]\n"
                    "                       [--no-train] [--no-apply] [--weights DIR] [--style FILE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int iters = 10, warmup = 2, train_size = 256, batch = 4, do_train = 1, do_apply = 1;
    int sw[MAX_LIST] = {1024, 3840}, sh[MAX_LIST] = {1024, 2160}, n_sizes = 2;
    int widths[MAX_LIST] = {32}, n_widths = 1, n_precs = 2;
    nst_precision precs[3] = {NST_PRECISION_FP32, NST_PRECISION_TF32};
    const char *weights = NULL, *style = NULL;
    char style_buf[4200];
    setvbuf(stdout, NULL, _IOLBF, 0); /* (the training profile goes to stderr: in order) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-train")) do_train = 0;
        else if (!strcmp(a, "--no-apply")) do_apply = 0;
        else if (!v) usage();
        else if (!strcmp(a, "--iters") && atoi(v) > 0) iters = atoi(v), i++;
        else if (!strcmp(a, "--warmup") && atoi(v) >= 0) warmup = atoi(v), i++;
        else if (!strcmp(a, "--train-size") && atoi(v) > 0 && atoi(v) % 4 == 0) train_size = atoi(v), i++;
        else if (!strcmp(a, "--batch") && atoi(v) > 0) batch = atoi(v), i++;
        else if (!strcmp(a, "--sizes") && (n_sizes = parse_sizes(v, sw, sh))) i++;
        else if (!strcmp(a, "--widths") && (n_widths = parse_ints(v, widths))) i++;
        else if (!strcmp(a, "--precisions") && (n_precs = parse_precisions(v, precs))) i++;
        else if (!strcmp(a, "--weights")) weights = v, i++;
        else if (!strcmp(a, "--style")) style = v, i++;
        else usage();
    }
    nst_error err;
    if (nst_cuda_probe(&err) != NST_OK) {
        printf("SKIP: %s\n", err.msg);
        return 77;
    }
    char about[512];
    nst_cuda_describe(about, sizeof about);
    printf("bench_fast_cuda: %s\nbest of %d after %d warm-up runs\n\n", about, iters, warmup);
    nst_cuda *ctx = NULL;
    check(nst_cuda_create(&ctx, &err), &err);

    apply_time at[MAX_LIST][MAX_LIST][3];
    double step_ms[MAX_LIST][3], net_ms[MAX_LIST][3];
    if (do_apply) {
        printf("apply: the network's forward pass (batch 1)\n");
        printf("%6s %11s %5s | %10s %12s %10s\n", "width", "size", "prec", "net ms", "end-to-end", "GPU MB");
        for (int w = 0; w < n_widths; w++)
            for (int s = 0; s < n_sizes; s++)
                for (int p = 0; p < n_precs; p++) {
                    at[w][s][p] = time_apply(ctx, widths[w], sw[s], sh[s], precs[p], warmup, iters);
                    printf("%6d %5dx%-5d %5s | %10.2f %12.2f %10.0f\n", widths[w], sw[s], sh[s], prec_name(precs[p]),
                           at[w][s][p].fwd_ms, at[w][s][p].e2e_ms, at[w][s][p].mb);
                    fflush(stdout);
                }
        printf("\n");
    }
    if (do_train) {
        nst_train_config cfg;
        nst_train_defaults(&cfg);
        cfg.size = train_size;
        cfg.batch = batch;
        cfg.device = NST_DEVICE_CUDA;
        bench_tuning(&cfg.tuning); /* $NST_CUDA_PROFILE and the rest, as nst train */
        nst_vgg19 *vgg = NULL;
        check(nst_vgg19_load_tuned(&vgg, weights, nst_train_depth(&cfg), &cfg.tuning, &err), &err);
        if (!style && !(style = find_style(nst_vgg19_dir(vgg), style_buf, sizeof style_buf))) {
            fprintf(stderr, "bench_fast_cuda: no painting: give --style FILE (none in $NST_SHARED_DIR/images/style "
                            "or beside the weights in %s/../../images/style)\n", nst_vgg19_dir(vgg));
            exit(1);
        }
        cfg.style_path = style;
        printf("train: one step (stylenet_trainer_step on CUDA), batch %d at %dx%d, weights %s\n", batch, train_size, train_size,
               nst_vgg19_dir(vgg));
        printf("%6s %5s | %10s %10s %8s\n", "width", "prec", "step ms", "net ms", "net %");
        for (int w = 0; w < n_widths; w++)
            for (int p = 0; p < n_precs; p++) {
                if (precs[p] == NST_PRECISION_FP16) continue; /* (inference only) */
                cfg.width = widths[w];
                cfg.precision = precs[p];
                step_ms[w][p] = time_train_step(&cfg, vgg, warmup, iters);
                net_ms[w][p] = time_net_train(ctx, widths[w], batch, train_size, precs[p], warmup, iters);
                printf("%6d %5s | %10.2f %10.2f %7.0f%%\n", widths[w], prec_name(precs[p]), step_ms[w][p], net_ms[w][p],
                       100.0 * net_ms[w][p] / step_ms[w][p]);
                fflush(stdout);
            }
        nst_vgg19_free(vgg);
        printf("\n");
    }
    if (do_apply)
        for (int w = 0; w < n_widths; w++)
            for (int s = 0; s < n_sizes; s++)
                for (int p = 0; p < n_precs; p++) {
                    const char *pn = prec_name(precs[p]);
                    if (at[w][s][p].fwd_ms < 0) continue; /* (failed, said above) */
                    printf("apply_ms_w%d_%dx%d_%s=%.3f\n", widths[w], sw[s], sh[s], pn, at[w][s][p].fwd_ms);
                    printf("apply_e2e_ms_w%d_%dx%d_%s=%.3f\n", widths[w], sw[s], sh[s], pn, at[w][s][p].e2e_ms);
                    printf("apply_mb_w%d_%dx%d_%s=%.1f\n", widths[w], sw[s], sh[s], pn, at[w][s][p].mb);
                }
    if (do_train)
        for (int w = 0; w < n_widths; w++)
            for (int p = 0; p < n_precs; p++) {
                if (precs[p] == NST_PRECISION_FP16) continue;
                printf("train_step_ms_w%d_%s=%.3f\n", widths[w], prec_name(precs[p]), step_ms[w][p]);
                printf("train_net_ms_w%d_%s=%.3f\n", widths[w], prec_name(precs[p]), net_ms[w][p]);
            }
    nst_cuda_destroy(ctx);
    return 0;
}
#endif
