/* cpu.c - which instruction-set tier the fast kernels may use: what the CPU supports,
 * capped by the tuning's kernel (NST_KERNEL=portable|avx2, read by nst_tuning_from_env;
 * for tests and benchmarks). */
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

cpu_tier cpu_kernel_tier(nst_kernel cap) {
    cpu_tier best = cpu_best_tier(), want = best;
    if (cap == NST_KERNEL_PORTABLE) want = CPU_PORTABLE;
    else if (cap == NST_KERNEL_AVX2) want = CPU_AVX2;
    return want < best ? want : best;
}

const char *cpu_tier_name(cpu_tier tier) {
    switch (tier) {
    case CPU_AVX512: return "avx512";
    case CPU_AVX2: return "avx2";
    default: return "portable";
    }
}
