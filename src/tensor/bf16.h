/* bf16.h - bfloat16 numbers as the bf16 kernels store them: the top 16 bits of an IEEE
 * float, rounded to nearest even (as VCVTNE2PS2BF16 rounds), NaN kept a quiet NaN. */
#ifndef NST_BF16_H
#define NST_BF16_H

#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* f rounded to the nearest bf16, as a float (for references that model the kernels). */
static inline float bf16_round(float f) { return bf16_to_float(bf16_from_float(f)); }

/* Two bf16 in the word the kernels read: a in the low half (the even channel), b high. */
static inline uint32_t bf16_pair(float a, float b) {
    return (uint32_t)bf16_from_float(a) | (uint32_t)bf16_from_float(b) << 16;
}

#endif
