/*
 * quant.h: 8-bit linear codes of clipped vectors (private to features/).
 *
 * A normalised store keeps each pending example's features, which the
 * normaliser clipped to [-clip, clip], as signed 8-bit codes: one byte a
 * feature instead of two (fp16), the largest part of a user record. Codes
 * are q = round(x * 127 / clip) (to nearest, ties to even), decoded as
 * q * clip / 127.
 *
 * Guarantees: for x in [-clip, clip], |decode(encode(x)) - x| <= clip / 254
 * plus a float rounding (at the default clip of 5: 0.0197 standard
 * deviations of the feature); every code round-trips exactly
 * (encode(decode(q)) = q); values beyond the range clamp to +-127, NaN
 * encodes as 0. Deterministic, allocates nothing; every instruction-set
 * path gives the same codes and values.
 */
#ifndef NX_QUANT_H
#define NX_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* The largest clip the store quantises at (error <= 0.0315 standard
 * deviations); a larger clip, or raw features, keep fp16. */
#define NX_QUANT_CLIP_MAX 8.0f

/* n values of x to codes q (x within [-clip, clip], clip > 0), through
 * path isa (half.h's NX_HALF_*, at most nx_half_isa(): AVX-512 has its
 * own; any other takes SSE2 where the build has it, else one value at a
 * time). Every path gives the same codes. */
void nx_quant_encode(int isa, const float *x, int8_t *q, size_t n, float clip);
/* n codes of q to values x, through path isa; the same values on every
 * path. */
void nx_quant_decode(int isa, const int8_t *q, float *x, size_t n, float clip);

#endif /* NX_QUANT_H */
