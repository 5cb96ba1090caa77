/*
 * half.h: IEEE 754 binary16 conversion (private to features/).
 *
 * Pending examples are stored as fp16 to halve their memory. Conversion is
 * round-to-nearest-even, handles subnormals, infinities and NaN, and is
 * portable C (no F16C assumption), a few integer ops per value.
 */
#ifndef NX_HALF_H
#define NX_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

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
