/*
 * half.h: IEEE 754 binary16 conversion (private to features/).
 *
 * Pending examples and their scores are stored as fp16 to halve their
 * memory. Owns every fp16 conversion of features/: the portable one value
 * at a time (inline below: round-to-nearest-even, subnormals, infinities
 * and NaN, a few integer ops per value, no F16C assumption), and whole
 * vectors through the CPU's conversion instructions (half.c).
 *
 * Guarantees: every path gives the portable conversion's bits for every
 * value but NaN (the instructions round to nearest even too; a NaN stays a
 * NaN, its payload may differ); nothing allocates; the vector functions
 * only read their input and write n values of the caller's output.
 */
#ifndef NX_HALF_H
#define NX_HALF_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Vector conversion paths, by instruction set. */
enum {
    NX_HALF_PORTABLE = 0, /* nx_half_from_float / nx_half_to_float per value */
    NX_HALF_F16C = 1,     /* F16C with AVX: 8 values an instruction */
    NX_HALF_AVX512 = 2    /* AVX-512 F, BW and VL: 16 values, masked tail */
};

/* The best path this CPU (and OS) supports; NX_HALF_PORTABLE off x86-64. */
int nx_half_isa(void);

/* n values to fp16 (h) and back (x), through path isa, which must be at
 * most nx_half_isa(). Same bits whatever the path (NaN aside). */
void nx_half_encode(int isa, const float *x, uint16_t *h, size_t n);
void nx_half_decode(int isa, const uint16_t *h, float *x, size_t n);

static inline uint16_t nx_half_from_float(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x47800000u) { /* |f| >= 65536 (2^16), inf or NaN */
        if (x > 0x7f800000u)
            return sign | 0x7e00u; /* quiet NaN */
        return sign | 0x7c00u;     /* infinity */
    }
    if (x < 0x38800000u) { /* |f| < 2^-14: half subnormal or zero */
        float a;
        memcpy(&a, &x, sizeof a);
        /* subnormal halves are multiples of 2^-24; lrintf rounds to even */
        return sign | (uint16_t)lrintf(a * 16777216.0f);
    }
    /* normal: rebias the exponent (127 - 15 = 112) and drop 13 mantissa
     * bits, rounding to nearest even; a carry may roll into inf, as it
     * should for 65520 <= |f| < 65536 */
    uint32_t r = x - 0x38000000u;
    r += 0x0fffu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
}

static inline float nx_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
    if (exp == 0) {
        float a = (float)mant * (1.0f / 16777216.0f); /* mant * 2^-24 */
        return sign ? -a : a;
    }
    if (exp == 31)
        x = sign | 0x7f800000u | (mant << 13);
    else
        x = sign | ((exp + 112u) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

#endif /* NX_HALF_H */
