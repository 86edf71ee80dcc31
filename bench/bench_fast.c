/* bench_fast.c - fast style transfer end to end: the Johnson et al. network's forward
 * pass as nst apply runs it (inference buffers) at a few square sizes, and one training
 * step as nst train runs it (stylenet_trainer_step: the batch's photos through the network
 * and the VGG19 loss, backward, Adam), split into the network's share and the rest.
 * Inputs are random (fixed seeds); each time is the best of --iters after one warm-up,
 * because the machine may be shared.
 *
 *   bench_fast [--threads N] [--iters K] [--sizes 512,1024] [--widths 32,16]
 *              [--train-size 256] [--batch 4] [--no-train] [--no-apply]
 *              [--weights DIR] [--style FILE]
 *
 * The last lines are machine-readable (bench/compare_fast_pytorch.py reads them):
 * apply_ms_w32_1024=..., apply_mb_w32_1024=..., train_step_ms_w32=..., train_net_ms_w32=...,
 * train_rest_ms_w32=...
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/stylenet.h"
#include "transfer/stylenet_train.h"
#include "util/util.h"
#include "bench_common.h"

#define MAX_LIST 16
#define SEED 1

static void check(nst_status s, const nst_error *err) { bench_check("bench_fast", s, err); }

/* "512,1024" -> {512, 1024}; returns the count, 0 on a bad list. */
static int parse_list(const char *s, int *out) {
    int n = 0;
    while (*s && n < MAX_LIST) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 100000) return 0;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return *s ? 0 : n;
}

/* The repository root, from this file's path (CMake compiles it by its absolute path,
 * bench/bench_fast.c under the root); "." when the path is relative. */
static void repo_root(char *buf, size_t len) {
    snprintf(buf, len, "%s", __FILE__);
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';            /* .../bench */
    slash = strrchr(buf, '/');
    if (slash) *slash = '\0';            /* ... */
    else snprintf(buf, len, ".");
}

/* Best-of-iters ms of the inference forward pass at side x side; *mb: its activations. */
static double time_apply(int width, int side, int iters, double *mb) {
    nst_error err;
    stylenet net;
    stylenet_acts a;
    nst_rng rng;
    nst_rng_seed(&rng, SEED);
    check(stylenet_build(&net, width, 5, 0, &err), &err);
    nst_tuning_from_env(&net.tuning, &err); /* $NST_KERNEL: the packs' kernels */
    check(stylenet_init_params(&net, &rng, &err), &err);
    check(stylenet_acts_build(&a, &net, side, side, 0, &err), &err);
    fill_uniform(a.input, (size_t)3 * side * side, 0.0f, 1.0f, &rng);
    double best = 1e30;
    for (int it = 0; it <= iters; it++) { /* it 0: warm-up (scratch allocation, caches) */
        double t0 = omp_get_wtime();
        check(stylenet_forward(&net, &a, 0, &err), &err);
        double dt = omp_get_wtime() - t0;
        if (it > 0 && dt < best) best = dt;
    }
    *mb = a.bytes / 1e6;
    stylenet_acts_free(&a);
    stylenet_free(&net);
    return best * 1e3;
}

/* Best-of-iters ms of the network's share of a training step on one image: forward with
 * the training buffers and backward to the parameters (not to the photo), as the
 * trainer runs it; *mb: those buffers. */
static double time_net_train(int width, int side, int iters, double *mb) {
    nst_error err;
    stylenet net;
    stylenet_acts a;
    nst_rng rng;
    nst_rng_seed(&rng, SEED);
    check(stylenet_build(&net, width, 5, 1, &err), &err);
    nst_tuning_from_env(&net.tuning, &err); /* $NST_KERNEL: the packs' kernels */
    check(stylenet_init_params(&net, &rng, &err), &err);
    check(stylenet_acts_build(&a, &net, side, side, 1, &err), &err);
    size_t n = (size_t)3 * side * side;
    float *dout = nst_alloc_array(n, sizeof(float));
    if (!dout) { fprintf(stderr, "bench_fast: out of memory\n"); exit(1); }
    fill_uniform(a.input, n, 0.0f, 1.0f, &rng);
    fill_uniform(dout, n, -1e-3f, 1e-3f, &rng);
    double best = 1e30;
    for (int it = 0; it <= iters; it++) {
        double t0 = omp_get_wtime();
        check(stylenet_forward(&net, &a, 0, &err), &err);
        check(stylenet_backward(&net, &a, dout, NULL, 0, &err), &err);
        double dt = omp_get_wtime() - t0;
        if (it > 0 && dt < best) best = dt;
    }
    *mb = a.bytes / 1e6;
    free(dout);
    stylenet_acts_free(&a);
    stylenet_free(&net);
    return best * 1e3;
}

/* Best-of-iters ms of stylenet_trainer_step on a random batch. */
static double time_train_step(const nst_train_config *cfg, const nst_vgg19 *vgg, int iters) {
    nst_error err;
    stylenet_trainer *t;
    nst_rng rng;
    nst_rng_seed(&rng, SEED);
    check(stylenet_trainer_build(&t, cfg, vgg, &err), &err);
    fill_uniform(stylenet_trainer_batch(t), (size_t)cfg->batch * 3 * cfg->size * cfg->size, 0.0f, 1.0f, &rng);
    double best = 1e30;
    for (int it = 0; it <= iters; it++) {
        double t0 = omp_get_wtime();
        check(stylenet_trainer_step(t, &err), &err);
        double dt = omp_get_wtime() - t0;
        if (it > 0 && dt < best) best = dt;
    }
    stylenet_trainer_free(t);
    return best * 1e3;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_fast [--threads N] [--iters K] [--sizes 512,1024] [--widths 32,16]\n"
                    "                  [--train-size 256] [--batch 4] [--no-train] [--no-apply]\n"
                    "                  [--weights DIR] [--style FILE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int iters = 3, train_size = 256, batch = 4, do_train = 1, do_apply = 1;
    int sizes[MAX_LIST] = {512, 1024}, n_sizes = 2, widths[MAX_LIST] = {32, 16}, n_widths = 2;
    const char *weights = NULL, *style = NULL;
    char root[4096], style_buf[4200];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-train")) do_train = 0;
        else if (!strcmp(a, "--no-apply")) do_apply = 0;
        else if (!v) usage();
        else if (!strcmp(a, "--threads") && atoi(v) > 0) omp_set_num_threads(atoi(v)), i++;
        else if (!strcmp(a, "--iters") && atoi(v) > 0) iters = atoi(v), i++;
        else if (!strcmp(a, "--train-size") && atoi(v) > 0) train_size = atoi(v), i++;
        else if (!strcmp(a, "--batch") && atoi(v) > 0) batch = atoi(v), i++;
        else if (!strcmp(a, "--sizes") && (n_sizes = parse_list(v, sizes))) i++;
        else if (!strcmp(a, "--widths") && (n_widths = parse_list(v, widths))) i++;
        else if (!strcmp(a, "--weights")) weights = v, i++;
        else if (!strcmp(a, "--style")) style = v, i++;
        else usage();
    }
    if (!style) {
        repo_root(root, sizeof root);
        snprintf(style_buf, sizeof style_buf, "%s/../shared/images/style/starry_night.jpg", root);
        style = style_buf;
    }
    for (int s = 0; s < n_sizes; s++)
        if (sizes[s] % 4 || sizes[s] < 8) {
            fprintf(stderr, "bench_fast: size %d must be a multiple of 4, at least 8\n", sizes[s]);
            return 2;
        }

    int threads = omp_get_max_threads();
    double apply_ms[MAX_LIST][MAX_LIST], apply_mb[MAX_LIST][MAX_LIST];
    double step_ms[MAX_LIST], net_ms[MAX_LIST], net_mb[MAX_LIST];
    nst_tuning tuning;
    nst_error terr;
    nst_tuning_from_env(&tuning, &terr);
    printf("bench_fast: %d threads, kernel %s, best of %d after 1 warm-up\n\n", threads,
           cpu_tier_name(cpu_kernel_tier(tuning.kernel)), iters);

    if (do_apply) {
        printf("apply: the network's forward pass (inference buffers, as nst apply)\n");
        printf("%6s %11s | %10s %12s\n", "width", "size", "ms", "activ. MB");
        for (int w = 0; w < n_widths; w++)
            for (int s = 0; s < n_sizes; s++) {
                apply_ms[w][s] = time_apply(widths[w], sizes[s], iters, &apply_mb[w][s]);
                printf("%6d %5dx%-5d | %10.1f %12.1f\n", widths[w], sizes[s], sizes[s], apply_ms[w][s], apply_mb[w][s]);
                fflush(stdout);
            }
        printf("\n");
    }

    if (do_train) {
        nst_train_config cfg;
        nst_train_defaults(&cfg);
        cfg.device = NST_DEVICE_CPU; /* this is the CPU's benchmark (bench_fast_cuda: the GPU's) */
        cfg.size = train_size;
        cfg.batch = batch;
        cfg.style_path = style;
        nst_error err;
        nst_tuning_from_env(&cfg.tuning, &err); /* $NST_KERNEL and the rest, as nst train */
        nst_vgg19 *vgg = NULL;
        check(nst_vgg19_load_tuned(&vgg, weights, nst_train_depth(&cfg), &cfg.tuning, &err), &err);
        printf("train: one step (nst train's stylenet_trainer_step), batch %d at %dx%d, weights %s,\n"
               "style %s (Gram targets at %d px)\n", batch, train_size, train_size, nst_vgg19_dir(vgg), style,
               cfg.style_size);
        printf("  net = the network's forward + backward on one image, times %d; rest = the VGG19\n"
               "  loss (photo's content features, forward, backward to the image), Adam, repacking\n", batch);
        printf("%6s | %10s %10s %10s %8s | %14s\n", "width", "step ms", "net ms", "rest ms", "net %", "net buffers MB");
        for (int w = 0; w < n_widths; w++) {
            cfg.width = widths[w];
            step_ms[w] = time_train_step(&cfg, vgg, iters);
            net_ms[w] = batch * time_net_train(widths[w], train_size, iters, &net_mb[w]);
            printf("%6d | %10.1f %10.1f %10.1f %7.0f%% | %14.1f\n", widths[w], step_ms[w], net_ms[w], step_ms[w] - net_ms[w],
                   100.0 * net_ms[w] / step_ms[w], net_mb[w]);
            fflush(stdout);
        }
        nst_vgg19_free(vgg);
        printf("\n");
    }

    printf("threads=%d\n", threads);
    if (do_apply)
        for (int w = 0; w < n_widths; w++)
            for (int s = 0; s < n_sizes; s++) {
                printf("apply_ms_w%d_%d=%.3f\n", widths[w], sizes[s], apply_ms[w][s]);
                printf("apply_mb_w%d_%d=%.1f\n", widths[w], sizes[s], apply_mb[w][s]);
            }
    if (do_train)
        for (int w = 0; w < n_widths; w++) {
            printf("train_step_ms_w%d=%.3f\n", widths[w], step_ms[w]);
            printf("train_net_ms_w%d=%.3f\n", widths[w], net_ms[w]);
            printf("train_rest_ms_w%d=%.3f\n", widths[w], step_ms[w] - net_ms[w]);
        }
    return 0;
}
