/* half.c: fp16 conversion of whole vectors (see half.h). */
#include "half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define NX_HAVE_F16C 1
#endif

int nx_half_isa(void) {
#ifdef NX_HAVE_F16C
    /* F16C from CPUID leaf 1 (ECX bit 29): clang 14's
     * __builtin_cpu_supports does not know "f16c"; "avx" also checks that
     * the OS saves the YMM state */
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__builtin_cpu_supports("avx") || !__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_F16C))
        return NX_HALF_PORTABLE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return NX_HALF_AVX512;
    return NX_HALF_F16C;
#else
    return NX_HALF_PORTABLE;
#endif
}

#ifdef NX_HAVE_F16C
/* n >= 4. The last n % 8 values are converted by one conversion of the last
 * 8 (or 4) values, overlapping values already done (same results, written
 * twice): cheaper than padding the tail through a copy. n < 4 takes the
 * portable path. */
__attribute__((target("avx,f16c"))) static void enc_f16c(const float *x, uint16_t *h, size_t n) {
    if (n < 8) { /* 4..7: the first 4 and the last 4 */
        _mm_storel_epi64((__m128i *)h, _mm_cvtps_ph(_mm_loadu_ps(x), _MM_FROUND_TO_NEAREST_INT));
        _mm_storel_epi64((__m128i *)(h + n - 4),
                         _mm_cvtps_ph(_mm_loadu_ps(x + n - 4), _MM_FROUND_TO_NEAREST_INT));
        return;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n)
        _mm_storeu_si128((__m128i *)(h + n - 8),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + n - 8), _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("avx,f16c"))) static void dec_f16c(const uint16_t *h, float *x, size_t n) {
    if (n < 8) {
        _mm_storeu_ps(x, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)h)));
        _mm_storeu_ps(x + n - 4, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(h + n - 4))));
        return;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    if (i < n)
        _mm256_storeu_ps(x + n - 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + n - 8))));
}

/* AVX-512 (F, BW, VL): 16 values an instruction, the tail by a lane mask
 * instead of overlapping vectors; the same conversion, the same bits. */
#define NX_AVX512_FBWVL __attribute__((target("avx512f,avx512bw,avx512vl")))
NX_AVX512_FBWVL static void enc_avx512(const float *x, uint16_t *h, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m256i v = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(h + i, m, v);
    }
}
NX_AVX512_FBWVL static void dec_avx512(const uint16_t *h, float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i)));
    }
}
#endif

void nx_half_encode(int isa, const float *x, uint16_t *h, size_t n) {
#ifdef NX_HAVE_F16C
    if (isa == NX_HALF_AVX512) {
        enc_avx512(x, h, n);
        return;
    }
    if (isa == NX_HALF_F16C && n >= 4) {
        enc_f16c(x, h, n);
        return;
    }
#else
    (void)isa;
#endif
    for (size_t i = 0; i < n; i++)
        h[i] = nx_half_from_float(x[i]);
}

void nx_half_decode(int isa, const uint16_t *h, float *x, size_t n) {
#ifdef NX_HAVE_F16C
    if (isa == NX_HALF_AVX512) {
        dec_avx512(h, x, n);
        return;
    }
    if (isa == NX_HALF_F16C && n >= 4) {
        dec_f16c(h, x, n);
        return;
    }
#else
    (void)isa;
#endif
    for (size_t i = 0; i < n; i++)
        x[i] = nx_half_to_float(h[i]);
}
