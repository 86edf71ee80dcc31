/* cpu.c - which instruction-set tier the fast kernels may use: what the CPU supports,
 * capped by the tuning's kernel (NST_KERNEL=portable|avx2|avx512|avx512bf16, read by
 * nst_tuning_from_env; for tests and benchmarks), and the precision a CPU run computes in. */
#define _DEFAULT_SOURCE /* syscall(2) */
#include "tensor/ops.h"
#include "util/util.h"

#if defined(NST_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#endif

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

#ifdef NST_X86
/* CPUID leaf 7: EAX=1 EAX bit 5 is AVX512-BF16; EAX=0 EDX bits 22 and 24 are AMX-BF16 and
 * AMX-TILE. (gcc 12's __builtin_cpu_supports knows neither.) */
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

/* Linux gives a process tile data only when asked; without it the first tile instruction
 * faults. Requesting again is harmless. */
static int amx_permitted(void) {
#ifdef __linux__
    unsigned long bits = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &bits) != 0) return 0;
    return (bits >> XFEATURE_XTILEDATA) & 1;
#else
    return 0;
#endif
}
#endif

cpu_bf16_tier cpu_bf16_best(void) {
#ifdef NST_X86
    if (cpu_best_tier() != CPU_AVX512) return BF16_NONE;
    unsigned r[4];
    cpuid(0, 0, r);
    if (r[0] < 7) return BF16_NONE;
    cpuid(7, 0, r);
    int amx = (r[3] >> 22 & 1) && (r[3] >> 24 & 1);
    cpuid(7, 1, r);
    int avx512bf16 = r[0] >> 5 & 1;
    if (amx && amx_permitted()) return BF16_AMX;
    if (avx512bf16) return BF16_AVX512;
#endif
    return BF16_NONE;
}

cpu_bf16_tier cpu_bf16_kernel(nst_kernel cap) {
    cpu_bf16_tier best = cpu_bf16_best();
    switch (cap) {
    case NST_KERNEL_BEST: return best;
    case NST_KERNEL_AVX512_BF16: return best > BF16_AVX512 ? BF16_AVX512 : best;
    default: return BF16_NONE;
    }
}

const char *cpu_bf16_name(cpu_bf16_tier t) {
    switch (t) {
    case BF16_AMX: return "amx";
    case BF16_AVX512: return "avx512bf16";
    default: return "none";
    }
}

const char *nst_precision_name(nst_precision p) {
    switch (p) {
    case NST_PRECISION_FP32: return "fp32";
    case NST_PRECISION_TF32: return "tf32";
    case NST_PRECISION_FP16: return "fp16";
    case NST_PRECISION_BF16: return "bf16";
    case NST_PRECISION_AUTO: return "auto";
    }
    return "?";
}

nst_status nst_precision_resolve_cpu(nst_precision p, const nst_tuning *tuning, nst_precision *resolved,
                                     nst_error *err) {
    cpu_bf16_tier t = cpu_bf16_kernel(tuning ? tuning->kernel : NST_KERNEL_BEST);
    switch (p) {
    case NST_PRECISION_FP32: *resolved = NST_PRECISION_FP32; return NST_OK;
    case NST_PRECISION_AUTO: *resolved = t ? NST_PRECISION_BF16 : NST_PRECISION_FP32; return NST_OK;
    case NST_PRECISION_BF16:
        if (t) {
            *resolved = NST_PRECISION_BF16;
            return NST_OK;
        }
        if (cpu_bf16_best())
            return nst_fail(err, NST_ERR_ARG, "bf16: NST_KERNEL rules out this CPU's bf16 kernels (use fp32 or auto)");
        return nst_fail(err, NST_ERR_ARG, "bf16 needs a CPU with AMX-BF16 or AVX512-BF16, and this one has neither (use fp32 or auto)");
    default: /* CUDA's TF32 and FP16: the CPU computes such a run in fp32, as it always did */
        *resolved = NST_PRECISION_FP32;
        return NST_OK;
    }
}

nst_status nst_precision_resolve(nst_device device, nst_precision p, const nst_tuning *tuning,
                                 nst_precision *resolved, nst_error *err) {
    if (device != NST_DEVICE_CUDA) return nst_precision_resolve_cpu(p, tuning, resolved, err);
    if (p == NST_PRECISION_BF16)
        return nst_fail(err, NST_ERR_ARG, "bf16 runs on the CPU only (CUDA computes in fp32, tf32 or fp16)");
    *resolved = p == NST_PRECISION_AUTO ? NST_PRECISION_FP32 : p;
    return NST_OK;
}

const char *nst_cpu_bf16_kernel(const nst_tuning *tuning) {
    cpu_bf16_tier t = cpu_bf16_kernel(tuning ? tuning->kernel : NST_KERNEL_BEST);
    return t ? cpu_bf16_name(t) : NULL;
}
