/* quant.c: 8-bit linear codes of clipped vectors (see quant.h). */
#include "quant.h"

#include <string.h>

#include "half.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NX_HAVE_AVX512 1
#endif

/* The code of v = x * 127 / clip: NaN to 0, clamped to +-127, rounded to
 * nearest even by adding and taking away 1.5 * 2^23 (whose float spacing
 * is 1), which is lrintf's result. */
static inline int8_t code1(float v) {
    v = v == v ? v : 0.0f;
    v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
    v += 12582912.0f;
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return (int8_t)(b - 0x4b400000); /* the bits of 1.5 * 2^23 */
}

#ifdef __SSE2__
/* code1 on the 16 values at x, to q: NaN lanes masked to 0, clamped,
 * converted under the default rounding mode (to nearest even: the same),
 * packed down to bytes (saturating packs: within +-127 already). */
static inline void code16(const float *x, int8_t *q, __m128 s) {
    const __m128 top = _mm_set1_ps(127.0f), bot = _mm_set1_ps(-127.0f);
    __m128i c[4];
    for (int k = 0; k < 4; k++) {
        __m128 v = _mm_mul_ps(_mm_loadu_ps(x + 4 * k), s);
        v = _mm_and_ps(v, _mm_cmpord_ps(v, v));
        c[k] = _mm_cvtps_epi32(_mm_min_ps(_mm_max_ps(v, bot), top));
    }
    __m128i lo = _mm_packs_epi32(c[0], c[1]), hi = _mm_packs_epi32(c[2], c[3]);
    _mm_storeu_si128((__m128i *)q, _mm_packs_epi16(lo, hi));
}

/* The 16 codes at q to values at x: each byte sign-extended by pairing it
 * with itself and shifting arithmetically. */
static inline void value16(const int8_t *q, float *x, __m128 d) {
    __m128i b = _mm_loadu_si128((const __m128i *)q);
    __m128i w[2] = {_mm_srai_epi16(_mm_unpacklo_epi8(b, b), 8),
                    _mm_srai_epi16(_mm_unpackhi_epi8(b, b), 8)};
    for (int k = 0; k < 2; k++) {
        __m128i d0 = _mm_srai_epi32(_mm_unpacklo_epi16(w[k], w[k]), 16);
        __m128i d1 = _mm_srai_epi32(_mm_unpackhi_epi16(w[k], w[k]), 16);
        _mm_storeu_ps(x + 8 * k, _mm_mul_ps(_mm_cvtepi32_ps(d0), d));
        _mm_storeu_ps(x + 8 * k + 4, _mm_mul_ps(_mm_cvtepi32_ps(d1), d));
    }
}
#endif

#ifdef NX_HAVE_AVX512
/* AVX-512 (F, BW, VL): 16 values a step, the tail by a lane mask; the
 * same operations as code1 (a signed saturating narrowing to bytes, within
 * +-127 already), the same bits. */
#define NX_AVX512_FBWVL __attribute__((target("avx512f,avx512bw,avx512vl")))
NX_AVX512_FBWVL static void enc_avx512(const float *x, int8_t *q, size_t n, float s) {
    const __m512 sv = _mm512_set1_ps(s), top = _mm512_set1_ps(127.0f),
                 bot = _mm512_set1_ps(-127.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sv);
        __mmask16 num = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q); /* NaN lanes to 0 */
        v = _mm512_min_ps(_mm512_max_ps(_mm512_maskz_mov_ps(num, v), bot), top);
        _mm_mask_storeu_epi8(q + i, m, _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
    }
}
NX_AVX512_FBWVL static void dec_avx512(const int8_t *q, float *x, size_t n, float d) {
    const __m512 dv = _mm512_set1_ps(d);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512i c = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, q + i));
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_cvtepi32_ps(c), dv));
    }
}
#endif

/* With SSE2 and n >= 16, 16 values a step; the last n % 16 by one more
 * step over the last 16, overlapping values already done (the same
 * results, written twice): cheaper than padding the tail through a copy. */
void nx_quant_encode(int isa, const float *x, int8_t *q, size_t n, float clip) {
    const float s = 127.0f / clip;
#ifdef NX_HAVE_AVX512
    if (isa == NX_HALF_AVX512) {
        enc_avx512(x, q, n, s);
        return;
    }
#else
    (void)isa;
#endif
#ifdef __SSE2__
    if (n >= 16) {
        const __m128 sv = _mm_set1_ps(s);
        size_t i = 0;
        for (; i + 16 <= n; i += 16)
            code16(x + i, q + i, sv);
        if (i < n)
            code16(x + n - 16, q + n - 16, sv);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        q[i] = code1(x[i] * s);
}

void nx_quant_decode(int isa, const int8_t *q, float *x, size_t n, float clip) {
    const float d = clip / 127.0f;
#ifdef NX_HAVE_AVX512
    if (isa == NX_HALF_AVX512) {
        dec_avx512(q, x, n, d);
        return;
    }
#else
    (void)isa;
#endif
#ifdef __SSE2__
    if (n >= 16) {
        const __m128 dv = _mm_set1_ps(d);
        size_t i = 0;
        for (; i + 16 <= n; i += 16)
            value16(q + i, x + i, dv);
        if (i < n)
            value16(q + n - 16, x + n - 16, dv);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        x[i] = (float)q[i] * d;
}
