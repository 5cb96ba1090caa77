/*
 * rng.h: the model's seeded random generators (no rand(), no global state).
 *
 * splitmix64 (Steele, Lea, Flood 2014) seeds and drives weight
 * initialisation; xoshiro256** (Blackman, Vigna 2018) drives the negative
 * down-sampling decisions. Both are pure functions of their state, so the
 * same seed gives the same sequence on every machine; the state is a plain
 * value the checkpoint saves. Header-only: the functions are tiny and sit
 * on the per-example path.
 */
#ifndef NX_RNG_H
#define NX_RNG_H

#include <stdint.h>

typedef struct nx_rng {
    uint64_t s[4]; /* xoshiro256** state, never all zero */
} nx_rng_t;

/* Next value of the splitmix64 sequence whose state is *x (the golden-ratio
 * increment and the two multipliers are the published constants). */
static inline uint64_t nx_rng_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seeds xoshiro from splitmix64 as its authors recommend: four outputs,
 * which cannot all be zero. */
static inline void nx_rng_seed(nx_rng_t *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = nx_rng_splitmix64(&x);
}

static inline uint64_t nx_rng_rotl(uint64_t v, int k) {
    return (v << k) | (v >> (64 - k));
}

/* xoshiro256**: next 64 random bits (shift/rotate constants from the
 * reference implementation). */
static inline uint64_t nx_rng_next(nx_rng_t *rng) {
    uint64_t *s = rng->s;
    uint64_t result = nx_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = nx_rng_rotl(s[3], 45);
    return result;
}

/* Uniform double in [0, 1): the top 53 bits, a double's mantissa width. */
static inline double nx_rng_uniform(nx_rng_t *rng) {
    return (double)(nx_rng_next(rng) >> 11) * 0x1.0p-53;
}

#endif /* NX_RNG_H */
