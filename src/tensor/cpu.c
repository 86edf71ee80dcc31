/* cpu.c - which instruction-set tier the fast kernels may use: what the CPU supports,
 * capped by the environment variable NST_KERNEL=portable|avx2 (for tests and
 * benchmarks; read at each call, so there is no global state). */
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"

cpu_tier cpu_best_tier(void) {
#ifdef NST_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return CPU_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CPU_AVX2;
#endif
    return CPU_PORTABLE;
}

cpu_tier cpu_kernel_tier(void) {
    cpu_tier best = cpu_best_tier(), want = best;
    const char *e = getenv("NST_KERNEL");
    if (e && strcmp(e, "portable") == 0) want = CPU_PORTABLE;
    else if (e && strcmp(e, "avx2") == 0) want = CPU_AVX2;
    return want < best ? want : best;
}
