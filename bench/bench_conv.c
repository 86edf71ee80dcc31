/* bench_conv.c - GFLOP/s of the fast 3x3 convolution (forward and backward to the
 * input) on the VGG19 layer shapes at 224x224 and 512x512, and of the Gram matrix, with
 * 1 and 2 threads, for each kernel named (by setting NST_KERNEL; a kernel this CPU
 * lacks is skipped; these tables run the direct convolution, NST_CONV=direct). The name
 * "winograd" instead compares, with 2 threads, the direct AVX-512 kernel and Winograd
 * F(2x2,3x3) on the layers that use it (C_in, C_out >= 64), and sums one VGG19 forward
 * + backward pass over those layers; "bf16" compares that default with the bf16 kernels
 * (--precision bf16) the same way. Each figure is the best of a few runs (the machine
 * is shared).
 *
 *   bench_conv [reps] [kernels]   (default 3 avx512,avx2,winograd; e.g. portable,avx2)
 *
 * A conv pass counts 2*H*W*C_in*C_out*9 flops, Winograd too ("direct-equivalent"
 * GFLOP/s: proportional to 1/time); gram forward counts the SYRK's C*(C+1)*N (the upper
 * triangle), gram backward the GEMM's 2*C*C*N. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

#include "bench_common.h"

typedef struct { const char *name; int C_in, C_out, H; } conv_shape;

/* the kernels under test (what NST_KERNEL / NST_CONV would choose), set by main */
static nst_tuning tun;
static nst_precision prec = NST_PRECISION_FP32;

/* Best-of-reps seconds of conv3x3_forward and conv3x3_backward_input on one shape with
 * the kernels of tun. */
static void time_conv(const conv_shape *s, int H, int reps, double *tf, double *tb) {
    conv3x3_workspace ws = {0}; /* kept across calls, as the network keeps it */
    int W = H;
    unsigned st = 1;
    size_t ni = (size_t)s->C_in * H * W, no = (size_t)s->C_out * H * W;
    float *inp = rand_array(ni, &st), *out = rand_array(no, &st), *dinp = rand_array(ni, &st);
    float *weight = rand_array((size_t)s->C_out * s->C_in * 9, &st), *bias = rand_array(s->C_out, &st);
    conv3x3_packed p;
    if (conv3x3_pack_lean(&p, weight, s->C_in, s->C_out, &tun, prec)) { fprintf(stderr, "out of memory\n"); exit(1); }
    *tf = *tb = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = omp_get_wtime();
        conv3x3_forward(out, inp, &p, bias, H, W, &ws);
        t = omp_get_wtime() - t;
        if (t < *tf) *tf = t;
        t = omp_get_wtime();
        conv3x3_backward_input(dinp, out, &p, H, W, &ws);
        t = omp_get_wtime() - t;
        if (t < *tb) *tb = t;
    }
    conv3x3_packed_free(&p);
    conv3x3_workspace_free(&ws);
    free(inp); free(out); free(dinp); free(weight); free(bias);
}

/* GFLOP/s of one shape, forward and backward, on 1 and 2 threads. */
static void bench_conv_shape(const conv_shape *s, int reps) {
    double flops = 2.0 * s->H * s->H * s->C_in * s->C_out * 9;
    printf("%-8s %4d->%-4d %4dx%-4d", s->name, s->C_in, s->C_out, s->H, s->H);
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        double bf, bb;
        time_conv(s, s->H, reps, &bf, &bb);
        printf("  | %7.1f %7.1f", flops / bf * 1e-9, flops / bb * 1e-9);
    }
    printf("\n");
}

/* Direct vs Winograd, 2 threads, on the VGG19 convs with C_in, C_out >= 64 (all 16
 * layers; conv3_2..3_4, conv4_2..4_4, conv5_x repeat a shape, timed once, counted per
 * layer in the per-image total). */
static void bench_winograd(int reps) {
    static const char *names[] = {"conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2",
                                  "conv4_1", "conv4_2", "conv5_x"};
    static const int cin[] = {64, 64, 128, 128, 256, 256, 512, 512};
    static const int cout[] = {64, 128, 128, 256, 256, 512, 512, 512};
    static const int div[] = {1, 2, 2, 4, 4, 8, 8, 16};
    static const int count[] = {1, 1, 1, 1, 3, 1, 3, 4}; /* layers of that shape in VGG19 */
    omp_set_num_threads(2);
    printf("conv3x3 avx512, 2 threads: direct vs Winograd F(2x2,3x3), direct-equivalent GFLOP/s, best of %d\n", reps);
    printf("(the default dispatch; conv1_2's forward pass stays direct: see winograd_forward_ok in conv.c)\n");
    printf("%-8s %-9s %-9s    | direct: fwd    bwd | winograd: fwd  bwd | speedup fwd  bwd\n", "layer", "C", "HxW");
    for (int size = 224; size <= 512; size += 288) {
        double sum_d = 0, sum_w = 0; /* one image's forward + backward over these layers */
        for (int l = 0; l < 8; l++) {
            conv_shape s = {names[l], cin[l], cout[l], size / div[l]};
            int H = s.H;
            double df, db, wf, wb;
            tun.conv_direct = 1;
            time_conv(&s, H, reps, &df, &db);
            tun.conv_direct = 0;
            time_conv(&s, H, reps, &wf, &wb);
            double flops = 2.0 * H * H * s.C_in * s.C_out * 9;
            printf("%-8s %4d->%-4d %4dx%-4d   | %7.1f %7.1f   | %7.1f %7.1f   |  %5.2fx %5.2fx\n", s.name,
                   s.C_in, s.C_out, H, H, flops / df * 1e-9, flops / db * 1e-9, flops / wf * 1e-9,
                   flops / wb * 1e-9, df / wf, db / wb);
            sum_d += count[l] * (df + db);
            sum_w += count[l] * (wf + wb);
        }
        printf("VGG19 %dx%d, the 15 convs with C >= 64, forward + backward: direct %.1f ms, "
               "Winograd %.1f ms: %.2fx\n\n", size, size, sum_d * 1e3, sum_w * 1e3, sum_d / sum_w);
    }
}

/* fp32 (the default dispatch: Winograd, conv1_2's forward direct) against bf16 (Winograd
 * with bf16 GEMMs), 2 threads, on the same layers as bench_winograd. */
static void bench_bf16(int reps) {
    static const char *names[] = {"conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2",
                                  "conv4_1", "conv4_2", "conv5_x"};
    static const int cin[] = {64, 64, 128, 128, 256, 256, 512, 512};
    static const int cout[] = {64, 128, 128, 256, 256, 512, 512, 512};
    static const int div[] = {1, 2, 2, 4, 4, 8, 8, 16};
    static const int count[] = {1, 1, 1, 1, 3, 1, 3, 4};
    memset(&tun, 0, sizeof tun);
    cpu_bf16_tier t = cpu_bf16_kernel(tun.kernel);
    if (!t) {
        printf("bf16: no AVX512-BF16 or AMX-BF16 on this CPU, skipped\n\n");
        return;
    }
    omp_set_num_threads(2);
    printf("conv3x3, 2 threads: fp32 (default dispatch) vs bf16 (%s), direct-equivalent GFLOP/s, best of %d\n",
           cpu_bf16_name(t), reps);
    printf("%-8s %-9s %-9s    |  fp32: fwd    bwd |  bf16: fwd    bwd | speedup fwd  bwd\n", "layer", "C", "HxW");
    for (int size = 224; size <= 512; size += 288) {
        double sum_f = 0, sum_b = 0;
        for (int l = 0; l < 8; l++) {
            conv_shape s = {names[l], cin[l], cout[l], size / div[l]};
            int H = s.H;
            double ff, fb, bf, bb;
            prec = NST_PRECISION_FP32;
            time_conv(&s, H, reps, &ff, &fb);
            prec = NST_PRECISION_BF16;
            time_conv(&s, H, reps, &bf, &bb);
            prec = NST_PRECISION_FP32;
            double flops = 2.0 * H * H * s.C_in * s.C_out * 9;
            printf("%-8s %4d->%-4d %4dx%-4d   | %7.1f %7.1f   | %7.1f %7.1f   |  %5.2fx %5.2fx\n", s.name,
                   s.C_in, s.C_out, H, H, flops / ff * 1e-9, flops / fb * 1e-9, flops / bf * 1e-9,
                   flops / bb * 1e-9, ff / bf, fb / bb);
            sum_f += count[l] * (ff + fb);
            sum_b += count[l] * (bf + bb);
        }
        printf("VGG19 %dx%d, the 15 convs with C >= 64, forward + backward: fp32 %.1f ms, bf16 %.1f ms: %.2fx\n\n",
               size, size, sum_f * 1e3, sum_b * 1e3, sum_f / sum_b);
    }
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
            gram_forward(G, F, C, N, 1.0f / N, cpu_kernel_tier(tun.kernel));
            t = omp_get_wtime() - t;
            if (t < bf) bf = t;
            t = omp_get_wtime();
            gram_backward(dF, dG, F, C, N, 1.0f / N, cpu_kernel_tier(tun.kernel));
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
    const char *kernels = argc > 2 ? argv[2] : "avx512,avx2,winograd";
    int maxt = omp_get_max_threads();
    static const char *names[] = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1",
                                  "conv3_2", "conv4_1", "conv4_2", "conv5_1"};
    static const int cin[] = {3, 64, 64, 128, 128, 256, 256, 512, 512};
    static const int cout[] = {64, 64, 128, 128, 256, 256, 512, 512, 512};
    static const int div[] = {1, 1, 2, 2, 4, 4, 8, 8, 16};
    char list[256];
    snprintf(list, sizeof(list), "%s", kernels);
    for (char *save = NULL, *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        if (strcmp(k, "bf16") == 0) {
            bench_bf16(reps);
            continue;
        }
        if (strcmp(k, "winograd") == 0) {
            memset(&tun, 0, sizeof tun);
            if (cpu_kernel_tier(tun.kernel) != CPU_AVX512) {
                printf("winograd: needs AVX-512, skipped\n\n");
                continue;
            }
            bench_winograd(reps);
            continue;
        }
        memset(&tun, 0, sizeof tun);
        tun.conv_direct = 1;
        tun.kernel = !strcmp(k, "portable") ? NST_KERNEL_PORTABLE : !strcmp(k, "avx2") ? NST_KERNEL_AVX2 : NST_KERNEL_BEST;
        if (strcmp(cpu_tier_name(cpu_kernel_tier(tun.kernel)), k) != 0) {
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
    unsetenv("NST_CONV");
    omp_set_num_threads(maxt);
    return 0;
}
