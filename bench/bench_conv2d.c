/* bench_conv2d.c - the general convolution (conv2d.h) on the Johnson et al. transformer
 * network's layers, width w = 32 (standard) and 16 (slim): inference at 1024x1024
 * (forward) and training at 256x256 (forward, backward to the input, backward to the
 * weights), ms and GFLOP/s per layer (2*Ho*Wo*C_in*C_out*K*K flops per pass), and the
 * totals over the network's convs (the residual conv counted 10 times). Each figure is
 * the best of a few runs (the machine is shared). --bf16: instead, w = 32 only, each pass
 * in fp32 and in bf16 (conv2d_pack with NST_PRECISION_BF16) side by side, and the speed-up.
 *
 *   bench_conv2d [--threads N] [--reps R] [--size N] [--train-size N] [--bf16 [--only LAYER]]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/conv2d.h"

#include "bench_common.h"

/* A layer: channels in multiples of w (0: 3, the image), kernel, stride, the side of its
 * (unpadded) input as a divisor of the image side, and how many the network has. */
typedef struct { const char *name; int ci_w, co_w, K, S, div, count; } layer;
static const layer layers[] = {
    {"c1", 0, 1, 9, 1, 1, 1},  {"c2", 1, 2, 3, 2, 1, 1},  {"c3", 2, 4, 3, 2, 2, 1},
    {"res", 4, 4, 3, 1, 4, 10}, {"u1", 4, 2, 3, 1, 2, 1},  {"u2", 2, 1, 3, 1, 1, 1},
    {"out", 1, 0, 9, 1, 1, 1},
};
#define NLAYERS (int)(sizeof(layers) / sizeof(layers[0]))

/* Best-of-reps seconds of the three passes on one layer (t[1], t[2] only if train). */
static nst_tuning tun; /* NST_KERNEL from the environment (main) */

static void time_layer(const layer *l, int w, int side, int reps, int train, nst_precision prec, double t[3]) {
    const int Ci = l->ci_w ? l->ci_w * w : 3, Co = l->co_w ? l->co_w * w : 3, K = l->K, S = l->S;
    const int H = side / l->div + K - 1, W = H; /* reflection-padded input */
    const int Ho = (H - K) / S + 1, Wo = (W - K) / S + 1;
    unsigned st = 1;
    size_t ni = (size_t)Ci * H * W, no = (size_t)Co * Ho * Wo, nw = (size_t)Co * Ci * K * K;
    float *inp = rand_array(ni, &st), *out = rand_array(no, &st), *weight = rand_array(nw, &st);
    float *bias = rand_array(Co, &st);
    float *dinp = train ? rand_array(ni, &st) : NULL, *dw = train ? rand_array(nw, &st) : NULL;
    float *db = rand_array(Co, &st);
    conv2d_packed p = {0};
    conv2d_workspace ws = {0}; /* kept across calls, as the network keeps it */
    if (conv2d_pack(&p, weight, Ci, Co, K, S, &tun, prec)) { fprintf(stderr, "out of memory\n"); exit(1); }
    t[0] = t[1] = t[2] = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
        if (conv2d_forward(out, inp, &p, bias, H, W, &ws)) { fprintf(stderr, "out of memory\n"); exit(1); }
        double t1 = omp_get_wtime();
        if (t1 - t0 < t[0]) t[0] = t1 - t0;
        if (!train) continue;
        if (conv2d_backward_input(dinp, out, &p, H, W, &ws)) { fprintf(stderr, "out of memory\n"); exit(1); }
        double t2 = omp_get_wtime();
        if (conv2d_backward_weight(dw, db, out, inp, &p, H, W, &ws)) { fprintf(stderr, "out of memory\n"); exit(1); }
        double t3 = omp_get_wtime();
        if (t2 - t1 < t[1]) t[1] = t2 - t1;
        if (t3 - t2 < t[2]) t[2] = t3 - t2;
    }
    conv2d_packed_free(&p);
    conv2d_workspace_free(&ws);
    free(inp); free(out); free(weight); free(bias); free(dinp); free(dw); free(db);
}

static double layer_flops(const layer *l, int w, int side) {
    const int Ci = l->ci_w ? l->ci_w * w : 3, Co = l->co_w ? l->co_w * w : 3;
    double Ho = side / l->div / l->S;
    return 2.0 * Ho * Ho * Ci * Co * l->K * l->K;
}

static void bench_inference(int w, int side, int reps) {
    printf("inference %dx%d, w=%d, forward, best of %d\n", side, side, w, reps);
    printf("%-4s %9s %2s %2s %11s | %9s %8s\n", "conv", "C", "K", "S", "out", "ms", "GFLOP/s");
    double total = 0, flops = 0;
    for (int i = 0; i < NLAYERS; i++) {
        const layer *l = &layers[i];
        double t[3], f = layer_flops(l, w, side);
        time_layer(l, w, side, reps, 0, NST_PRECISION_FP32, t);
        int Ho = side / l->div / l->S;
        printf("%-4s %4d->%-4d %2d %2d %5dx%-5d | %9.2f %8.1f%s\n", l->name, l->ci_w ? l->ci_w * w : 3,
               l->co_w ? l->co_w * w : 3, l->K, l->S, Ho, Ho, t[0] * 1e3, f / t[0] * 1e-9,
               l->count > 1 ? "  (x10 in the network)" : "");
        total += l->count * t[0];
        flops += l->count * f;
    }
    printf("all %d forward convs, w=%d at %d: %.1f ms, %.1f GFLOP (%.1f GFLOP/s)\n\n", NLAYERS + 9, w,
           side, total * 1e3, flops * 1e-9, flops / total * 1e-9);
}

static void bench_training(int w, int side, int reps) {
    printf("training %dx%d, w=%d, one image, best of %d\n", side, side, w, reps);
    printf("%-4s %9s %2s %2s %9s | %8s %7s | %8s %7s | %8s %7s\n", "conv", "C", "K", "S", "out", "fwd ms",
           "GF/s", "bwd-in", "GF/s", "bwd-w", "GF/s");
    double tot[3] = {0, 0, 0};
    for (int i = 0; i < NLAYERS; i++) {
        const layer *l = &layers[i];
        double t[3], f = layer_flops(l, w, side);
        time_layer(l, w, side, reps, 1, NST_PRECISION_FP32, t);
        int Ho = side / l->div / l->S;
        printf("%-4s %4d->%-4d %2d %2d %4dx%-4d | %8.2f %7.1f | %8.2f %7.1f | %8.2f %7.1f\n", l->name,
               l->ci_w ? l->ci_w * w : 3, l->co_w ? l->co_w * w : 3, l->K, l->S, Ho, Ho, t[0] * 1e3,
               f / t[0] * 1e-9, t[1] * 1e3, f / t[1] * 1e-9, t[2] * 1e3, f / t[2] * 1e-9);
        for (int k = 0; k < 3; k++) tot[k] += l->count * t[k];
    }
    printf("network per image (res x10): fwd %.1f ms, bwd-in %.1f ms, bwd-w %.1f ms, all %.1f ms; "
           "batch of 4: %.1f ms\n\n", tot[0] * 1e3, tot[1] * 1e3, tot[2] * 1e3,
           (tot[0] + tot[1] + tot[2]) * 1e3, 4 * (tot[0] + tot[1] + tot[2]) * 1e3);
}

/* fp32 against bf16, w = 32: inference (forward) at side, training (all three) at tside */
static void bench_bf16(int side, int tside, int reps, const char *only) {
    static const char *pass[3] = {"fwd", "bwd-in", "bwd-w"};
    for (int train = 0; train < 2; train++) {
        int sd = train ? tside : side;
        printf("%s %dx%d, w=32, ms fp32 / bf16 (speed-up), best of %d\n", train ? "training" : "inference", sd, sd, reps);
        printf("%-4s %9s %2s %2s %9s", "conv", "C", "K", "S", "out");
        for (int k = 0; k < (train ? 3 : 1); k++) printf(" | %-22s", pass[k]);
        printf("\n");
        double tot[2][3] = {{0}};
        for (int i = 0; i < NLAYERS; i++) {
            const layer *l = &layers[i];
            if (only && strcmp(only, l->name)) continue;
            double t32[3], t16[3];
            time_layer(l, 32, sd, reps, train, NST_PRECISION_FP32, t32);
            time_layer(l, 32, sd, reps, train, NST_PRECISION_BF16, t16);
            int Ho = sd / l->div / l->S;
            printf("%-4s %4d->%-4d %2d %2d %4dx%-4d", l->name, l->ci_w ? l->ci_w * 32 : 3, l->co_w ? l->co_w * 32 : 3,
                   l->K, l->S, Ho, Ho);
            for (int k = 0; k < (train ? 3 : 1); k++) {
                printf(" | %7.2f %7.2f (%4.2fx)", t32[k] * 1e3, t16[k] * 1e3, t32[k] / t16[k]);
                tot[0][k] += l->count * t32[k];
                tot[1][k] += l->count * t16[k];
            }
            printf("\n");
        }
        printf("network (res x10):");
        double a = 0, b = 0;
        for (int k = 0; k < (train ? 3 : 1); k++) {
            printf(" %s %.1f / %.1f ms (%.2fx)", pass[k], tot[0][k] * 1e3, tot[1][k] * 1e3, tot[0][k] / tot[1][k]);
            a += tot[0][k];
            b += tot[1][k];
        }
        printf("; all %.1f / %.1f ms (%.2fx)\n\n", a * 1e3, b * 1e3, a / b);
    }
}

int main(int argc, char **argv) {
    int reps = 3, side = 1024, tside = 256, bf16 = 0;
    const char *only = NULL; /* --only NAME: one layer (with --bf16) */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) omp_set_num_threads(atoi(argv[++i]));
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) side = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--train-size") && i + 1 < argc) tside = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_conv2d [--threads N] [--reps R] [--size N] [--train-size N] [--bf16 [--only LAYER]]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    nst_error terr;
    nst_tuning_from_env(&tun, &terr);
    printf("conv2d kernel: %s, %d threads\n\n", cpu_kernel_tier(tun.kernel) == CPU_AVX512 ? "avx512" : "portable",
           omp_get_max_threads());
    if (bf16) {
        if (cpu_bf16_kernel(tun.kernel) == BF16_NONE) {
            fprintf(stderr, "bench_conv2d: no bf16 kernel on this CPU (or NST_KERNEL rules it out)\n");
            return 1;
        }
        bench_bf16(side, tside, reps, only);
        return 0;
    }
    bench_inference(32, side, reps);
    bench_inference(16, side, reps);
    bench_training(32, tside, reps);
    bench_training(16, tside, reps);
    return 0;
}
