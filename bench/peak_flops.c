/* peak_flops.c - the CPU's arithmetic peak, measured: AVX-512 fp32 FMA (VFMADD231PS) and,
 * where the compiler and the CPU have it, AVX512-BF16 VDPBF16PS (bf16 pairs into fp32
 * sums), on T threads at once. Each thread runs ACC independent accumulators in
 * registers so that the loop is bound by the FMA units' throughput, not their latency;
 * the best of REPS runs is printed.
 *
 * It is not part of the build: bench/compare_pytorch.py compiles it into its temporary
 * folder (needs cc with OpenMP) to put nst's convolution throughput against the peak:
 *   cc -O2 -fopenmp -mavx512f -mavx512bf16 bench/peak_flops.c -o /tmp/peak_flops
 *   (without -mavx512bf16 and with -DNO_BF16 where the compiler lacks it)
 *   /tmp/peak_flops [THREADS] [REPS]
 * prints fp32_fma_gflops=... and bf16_dp_gflops=... (0 when VDPBF16PS was not measured:
 * no compiler support or no AVX512-BF16 on this CPU). FLOPs: 2 per fp32 lane per FMA
 * (16 lanes), 4 per fp32 lane per VDPBF16PS (two bf16 products and their sum, 16 lanes).
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define ACC 12          /* independent accumulators: more than latency x throughput (4 x 2) */
#define INNER 10000000L /* iterations of the ACC instructions per run */

static float fp32_run(void) {
    __m512 acc[ACC];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < ACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < INNER; n++)
#pragma GCC unroll 16
        for (int i = 0; i < ACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    __m512 s = acc[0];
    for (int i = 1; i < ACC; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

#ifndef NO_BF16
static float bf16_run(void) {
    __m512 acc[ACC];
    const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
    for (int i = 0; i < ACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < INNER; n++)
#pragma GCC unroll 16
        for (int i = 0; i < ACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    __m512 s = acc[0];
    for (int i = 1; i < ACC; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}
#endif

/* GFLOP/s of run() on threads threads, best of reps; flops_per_run per thread. */
static double measure(float (*run)(void), int threads, int reps, double flops_per_run, float *sink) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads)
        {
            float v = run();
#pragma omp atomic
            *sink += v;
        }
        double dt = omp_get_wtime() - t0;
        if (dt < best) best = dt;
    }
    return threads * flops_per_run / best / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "usage: peak_flops [THREADS] [REPS]\n");
        return 2;
    }
    float sink = 0.0f; /* keeps the loops from being optimised away */
    double fp32 = measure(fp32_run, threads, reps, 2.0 * 16 * ACC * INNER, &sink);
    double bf16 = 0.0;
#ifndef NO_BF16
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16")) bf16 = measure(bf16_run, threads, reps, 4.0 * 16 * ACC * INNER, &sink);
#endif
    printf("threads=%d\nfp32_fma_gflops=%.1f\nbf16_dp_gflops=%.1f\nsink=%g\n", threads, fp32, bf16, (double)sink);
    return 0;
}
