/*
 * half.h: IEEE 754 binary16 conversion (private to features/).
 *
 * Scores (and pending examples of a store that does not normalise) are
 * stored as fp16 to halve their memory; the decayed window counters too,
 * rounded stochastically. Owns every fp16 conversion of features/: the
 * portable one value at a time (inline below: round-to-nearest-even,
 * subnormals, infinities and NaN, a few integer ops per value, no F16C
 * assumption), whole vectors through the CPU's conversion instructions
 * (half.c), and the counters' conversions, one value or four lanes at a
 * time (inline below).
 *
 * Counters. Rounded to nearest, an fp16 counter would stop changing where
 * the change is under half a step: a count at 2048 and up no longer grows
 * by 1, and a 24 h window no longer decays between events 21-42 s apart
 * or closer (a factor exp(-gap/86400) within half a step, 2^-12 to 2^-11,
 * of 1). So each update rounds stochastically: up
 * with probability equal to the fraction dropped, given random bits, which
 * leaves the stored value unbiased (its expectation is the float) and
 * within one step (2^-10 relative) of it. Counters are finite and >= 0;
 * they saturate at 65504 (values are counted in units of 1024, see
 * featurize.h), and below 2^-14 (subnormal) round to nearest.
 *
 * Guarantees: every path gives the portable conversion's bits for every
 * value but NaN (the instructions round to nearest even too; a NaN stays a
 * NaN, its payload may differ); the 4-lane counter conversions give the
 * one-value ones' bits lane by lane; a counter that is an fp16 value comes
 * back unchanged whatever the random bits; nothing allocates; the vector
 * functions only read their input and write n values of the caller's
 * output.
 */
#ifndef NX_HALF_H
#define NX_HALF_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

/* --- counters ------------------------------------------------------------ */

#define NX_HALF_MAX 0x7bffu /* 65504, the largest finite fp16 */

/* Counter x (finite, >= 0) to fp16, rounded stochastically with the low 13
 * bits of r in the normal range; saturating at 65504. */
static inline uint16_t nx_half_round_sr(float x, uint32_t r) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    if (b >= 0x477fe000u) /* x >= 65504 */
        return NX_HALF_MAX;
    if (b < 0x38800000u) /* x < 2^-14: subnormal half */
        return nx_half_from_float(x);
    /* rebias the exponent (127 - 15 = 112) and drop 13 mantissa bits,
     * adding r's 13 to them: a carry with probability dropped / 2^13 (it
     * may roll into the exponent, as it should) */
    return (uint16_t)((b - 0x38000000u + (r & 0x1fffu)) >> 13);
}

typedef float nx_half_v4f __attribute__((vector_size(16)));
typedef int32_t nx_half_v4i __attribute__((vector_size(16)));

/* The 4 uint16 at h4 widened to 32-bit lanes (SSE2: one 8-byte load and
 * an interleave with zeros; GCC's generic shuffles and conversions of
 * 16-bit lanes do not compile to those). */
static inline nx_half_v4i nx_half_widen4(const uint16_t *h4) {
#ifdef __SSE2__
    return (nx_half_v4i)_mm_unpacklo_epi16(_mm_loadl_epi64((const __m128i *)h4),
                                           _mm_setzero_si128());
#else
    nx_half_v4i u = {h4[0], h4[1], h4[2], h4[3]};
    return u;
#endif
}

/* The 4 lanes of u (each within 0..0x7fff) stored as uint16 at h4. */
static inline void nx_half_narrow4(uint16_t *h4, nx_half_v4i u) {
#ifdef __SSE2__
    /* a signed saturating pack: exact for these lanes */
    _mm_storel_epi64((__m128i *)h4, _mm_packs_epi32((__m128i)u, (__m128i)u));
#else
    for (int i = 0; i < 4; i++)
        h4[i] = (uint16_t)u[i];
#endif
}

/* 4 counters (fp16 >= 0) to floats: nx_half_to_float lane by lane. */
static inline nx_half_v4f nx_half_counter4(const uint16_t *h4) {
    nx_half_v4i u = nx_half_widen4(h4); /* < 0x7c00: signed operations do */
    nx_half_v4i norm = (u << 13) + 0x38000000;
    nx_half_v4f sub = __builtin_convertvector(u, nx_half_v4f) * (1.0f / 16777216.0f);
    nx_half_v4i is_sub = u < 0x400;
    return (nx_half_v4f)((norm & ~is_sub) | ((nx_half_v4i)sub & is_sub));
}

/* 4 counters x to fp16 at h4, rounded stochastically with r's 16-bit lanes
 * (lane i: bits 16i..16i+15): nx_half_round_sr lane by lane. */
static inline void nx_half_store_counter4(uint16_t *h4, nx_half_v4f x, uint64_t r) {
    uint16_t r4[4];
    memcpy(r4, &r, sizeof r4);
    nx_half_v4i rb = nx_half_widen4(r4);
    /* x >= 0: its bits compare as signed integers */
    nx_half_v4i b = (nx_half_v4i)x;
    nx_half_v4i norm = (b - 0x38000000 + (rb & 0x1fff)) >> 13;
    /* subnormal: round x * 2^24 to nearest even by adding and taking
     * away 1.5 * 2^23 (x * 2^24 < 1024 there) */
    const nx_half_v4f magic = {12582912.0f, 12582912.0f, 12582912.0f, 12582912.0f};
    nx_half_v4i sub = (nx_half_v4i)(x * 16777216.0f + magic) - (nx_half_v4i)magic;
    nx_half_v4i is_sub = b < 0x38800000, is_max = b >= 0x477fe000;
    nx_half_v4i out = (norm & ~is_sub) | (sub & is_sub);
    out = (out & ~is_max) | (is_max & (int32_t)NX_HALF_MAX);
    nx_half_narrow4(h4, out);
}

#endif /* NX_HALF_H */
