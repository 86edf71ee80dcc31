/* bench_conv.c - GFLOP/s of the fast 3x3 convolution (forward and backward to the
 * input) on the VGG19 layer shapes at 224x224 and 512x512, and of the Gram matrix, with
 * 1 and 2 threads, for each kernel named (by setting NST_KERNEL; a kernel this CPU
 * lacks is skipped). Each figure is the best of a few runs (the machine is shared).
 *
 *   bench_conv [reps] [kernels]   (default 3 avx512,avx2; e.g. portable,avx2)
 *
 * A conv pass counts 2*H*W*C_in*C_out*9 flops; gram forward counts the SYRK's
 * C*(C+1)*N (the upper triangle), gram backward the GEMM's 2*C*C*N. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

static float *rand_array(size_t n, unsigned *st) {
    float *a = malloc(n * sizeof(float));
    if (!a) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) {
        *st = *st * 1664525u + 1013904223u;
        a[i] = (float)(*st >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
    return a;
}

typedef struct { const char *name; int C_in, C_out, H; } conv_shape;

static void bench_conv_shape(const conv_shape *s, int reps) {
    int H = s->H, W = s->H;
    unsigned st = 1;
    size_t ni = (size_t)s->C_in * H * W, no = (size_t)s->C_out * H * W;
    float *inp = rand_array(ni, &st), *out = rand_array(no, &st), *dinp = rand_array(ni, &st);
    float *weight = rand_array((size_t)s->C_out * s->C_in * 9, &st), *bias = rand_array(s->C_out, &st);
    conv3x3_packed p;
    if (conv3x3_pack(&p, weight, s->C_in, s->C_out)) { fprintf(stderr, "out of memory\n"); exit(1); }
    double flops = 2.0 * H * W * s->C_in * s->C_out * 9;
    printf("%-8s %4d->%-4d %4dx%-4d", s->name, s->C_in, s->C_out, H, W);
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        double bf = 1e30, bb = 1e30;
        for (int r = 0; r < reps; r++) {
            double t = omp_get_wtime();
            conv3x3_forward(out, inp, &p, bias, H, W);
            t = omp_get_wtime() - t;
            if (t < bf) bf = t;
            t = omp_get_wtime();
            conv3x3_backward_input(dinp, out, &p, H, W);
            t = omp_get_wtime() - t;
            if (t < bb) bb = t;
        }
        printf("  | %7.1f %7.1f", flops / bf * 1e-9, flops / bb * 1e-9);
    }
    printf("\n");
    conv3x3_packed_free(&p);
    free(inp); free(out); free(dinp); free(weight); free(bias);
}

static void bench_gram_shape(int C, int N, int reps) {
    unsigned st = 2;
    float *F = rand_array((size_t)C * N, &st), *dF = rand_array((size_t)C * N, &st);
    float *G = rand_array((size_t)C * C, &st), *dG = rand_array((size_t)C * C, &st);
    double ff = (double)C * (C + 1) * N, fb = 2.0 * C * C * N;
    printf("gram C=%-4d N=%-7d", C, N);
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        double bf = 1e30, bb = 1e30;
        for (int r = 0; r < reps; r++) {
            double t = omp_get_wtime();
            gram_forward(G, F, C, N, 1.0f / N);
            t = omp_get_wtime() - t;
            if (t < bf) bf = t;
            t = omp_get_wtime();
            gram_backward(dF, dG, F, C, N, 1.0f / N);
            t = omp_get_wtime() - t;
            if (t < bb) bb = t;
        }
        printf("  | %7.1f %7.1f", ff / bf * 1e-9, fb / bb * 1e-9);
    }
    printf("\n");
    free(F); free(dF); free(G); free(dG);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 3;
    if (reps < 1) reps = 1;
    const char *kernels = argc > 2 ? argv[2] : "avx512,avx2";
    int maxt = omp_get_max_threads();
    static const char *names[] = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1",
                                  "conv3_2", "conv4_1", "conv4_2", "conv5_1"};
    static const int cin[] = {3, 64, 64, 128, 128, 256, 256, 512, 512};
    static const int cout[] = {64, 64, 128, 128, 256, 256, 512, 512, 512};
    static const int div[] = {1, 1, 2, 2, 4, 4, 8, 8, 16};
    char list[256];
    snprintf(list, sizeof(list), "%s", kernels);
    for (char *save = NULL, *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        setenv("NST_KERNEL", k, 1);
        if (strcmp(conv3x3_kernel_name(), k) != 0) {
            printf("kernel %s: not available on this CPU, skipped\n\n", k);
            continue;
        }
        printf("conv3x3 kernel: %s, GFLOP/s, best of %d\n", k, reps);
        printf("%-8s %-9s %-9s    |  1 thread: fwd    bwd |  2 threads: fwd   bwd\n", "layer", "C", "HxW");
        for (int size = 224; size <= 512; size += 288)
            for (int l = 0; l < 9; l++) {
                conv_shape s = {names[l], cin[l], cout[l], size / div[l]};
                bench_conv_shape(&s, reps);
            }
        printf("\n%-22s |  1 thread: fwd    bwd |  2 threads: fwd   bwd\n", "gram");
        for (int size = 224; size <= 512; size += 288)
            for (int l = 0; l < 4; l++) {
                int C = 64 << l, side = size >> l;
                bench_gram_shape(C, side * side, reps);
            }
        printf("\n");
    }
    unsetenv("NST_KERNEL");
    omp_set_num_threads(maxt);
    return 0;
}
