/* norm.c: online normaliser (see norm.h). */
#include "norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Variance below this counts as zero: a feature that has not varied yet. */
#define NX_NORM_MIN_VAR 1e-12

/* The float mean and 1/std that apply uses are refreshed on every vector
 * while fewer than NX_NORM_WARMUP have been seen (the statistics still move
 * fast), then every NX_NORM_REFRESH vectors: a sqrt and a divide per feature
 * per event would be the largest cost of the hot path, and 16 more vectors move
 * settled statistics by ~1/n. The vectors between two refreshes (a group)
 * are summed, not merged one by one: see struct nx_norm. */
#define NX_NORM_WARMUP  256
#define NX_NORM_REFRESH 16

/* x86-64: nx_norm_step has an AVX build, chosen at run time. */
#if defined(__x86_64__) && defined(__GNUC__)
#define NX_NORM_AVX 1
#endif

/* Stream tags: "NXN2" format version 2 of the normaliser state (with the
 * open group); "NXN1", version 1 (no group), is still read. */
#define NX_NORM_MAGIC    0x324e584eu
#define NX_NORM_MAGIC_V1 0x314e584eu

/*
 * Statistics in two parts. mean/m2 (double) hold the vectors up to the last
 * refresh; the vectors since (the group, g of them) are kept as sums of
 * d = x - mean_f, the float mean apply subtracts anyway: s1 = sum d,
 * s2 = sum d^2, in float. At each refresh the group is merged into
 * mean/m2 by the pairwise formulas (Chan et al.): with n_b = g,
 * mean_b = mean_f + s1/g, M2_b = s2 - s1^2/g, delta = mean_b - mean,
 *   mean += delta g/n,   m2 += M2_b + delta^2 (n - g) g / n.
 * Welford per vector in double costs far more (a dependent double update
 * per feature and vector); the group sums share apply's subtraction and run
 * 8 floats a vector. A group is at
 * most 16 vectors of d (centred by a mean at most 16 vectors old), so float
 * sums lose nothing that float features carry. Groups follow the count of
 * vectors alone, so the state does not depend on how callers batch them.
 */
struct nx_norm {
    size_t dim;
    float clip;
    uint64_t n;       /* vectors seen */
    uint64_t g;       /* of which in the open group (since the last refresh) */
    double *mean;     /* (dim) mean of the first n - g vectors */
    double *m2;       /* (dim) their sum of squared deviations */
    float *mean_f;    /* (dim) mean as float, for apply; the group's centre */
    float *inv_std_f; /* (dim) 1/std, or 1 while the variance is ~0 */
    float *s1, *s2;   /* (dim) group sums of d and d^2 */
    int isa;          /* the build in use: 2 AVX-512F, 1 AVX, 0 baseline */
    /* that build's group pass (out may be NULL), refresh and step */
    void (*group)(nx_norm_t *norm, const float *raw, float *out);
    void (*refresh)(nx_norm_t *norm);
    void (*step)(nx_norm_t *norm, const float *raw, float *out);
};

static void select_isa(nx_norm_t *norm, int isa);

nx_norm_t *nx_norm_new(size_t dim, float clip) {
    nx_norm_t *norm = NULL;
    if (dim == 0 || !(clip > 0))
        return NULL;
    norm = calloc(1, sizeof *norm);
    if (!norm)
        goto err;
    norm->dim = dim;
    norm->clip = clip;
    size_t pad = (dim + 7) & ~(size_t)7; /* whole vectors; the padding stays 0 */
    norm->mean = calloc(pad, sizeof *norm->mean);
    norm->m2 = calloc(pad, sizeof *norm->m2);
    norm->mean_f = calloc(pad, sizeof *norm->mean_f);
    norm->inv_std_f = malloc(pad * sizeof *norm->inv_std_f);
    norm->s1 = calloc(pad, sizeof *norm->s1);
    norm->s2 = calloc(pad, sizeof *norm->s2);
    if (!norm->mean || !norm->m2 || !norm->mean_f || !norm->inv_std_f || !norm->s1 || !norm->s2)
        goto err;
    for (size_t i = 0; i < pad; i++)
        norm->inv_std_f[i] = 1.0f;
    select_isa(norm, 2); /* the best the CPU has */
    return norm;
err:
    nx_norm_destroy(norm);
    return NULL;
}

void nx_norm_destroy(nx_norm_t *norm) {
    if (!norm)
        return;
    free(norm->s2);
    free(norm->s1);
    free(norm->inv_std_f);
    free(norm->mean_f);
    free(norm->m2);
    free(norm->mean);
    free(norm);
}

/* The pairwise merge of a group (sums s1, s2 of d = x - mf) into a mean
 * and m2: inv_g = 1/g, w = g/n, v = (n - g) g / n. One formula for the
 * read-outs and the scalar refresh (refresh_avx spells it in intrinsics). */
static inline __attribute__((always_inline)) void merge_group(double s1, double s2, double mf,
                                                              double mean0, double m20,
                                                              double inv_g, double w, double v,
                                                              double *mean, double *m2) {
    double m2b = s2 - s1 * s1 * inv_g;
    double delta = (mf + s1 * inv_g) - mean0;
    *mean = mean0 + delta * w;
    *m2 = m20 + (m2b > 0 ? m2b : 0) + delta * delta * v;
}

static void merge_consts(const nx_norm_t *norm, double *inv_g, double *w, double *v) {
    double g = (double)norm->g, n = (double)norm->n;
    *inv_g = 1.0 / g;
    *w = g / n;
    *v = (n - g) * g / n;
}

/* Mean and m2 of feature i over all n vectors (the open group included, not
 * closed). */
static void merged(const nx_norm_t *norm, size_t i, double *mean, double *m2) {
    if (!norm->g) {
        *mean = norm->mean[i];
        *m2 = norm->m2[i];
        return;
    }
    double inv_g, w, v;
    merge_consts(norm, &inv_g, &w, &v);
    merge_group(norm->s1[i], norm->s2[i], norm->mean_f[i], norm->mean[i], norm->m2[i], inv_g, w, v,
                mean, m2);
}

/* Closes the group into mean/m2 and refreshes apply's floats: element-wise
 * (vectorised where the build allows; no fused multiply-add, so the same
 * bits either way). */
static inline __attribute__((always_inline)) void
refresh_body(size_t dim, double *restrict mean_d, double *restrict m2_d, float *restrict mean_f,
             float *restrict inv_std_f, float *restrict s1_f, float *restrict s2_f, double inv_g,
             double w, double v, double inv_n) {
    for (size_t i = 0; i < dim; i++) {
        double mean, m2;
        merge_group(s1_f[i], s2_f[i], mean_f[i], mean_d[i], m2_d[i], inv_g, w, v, &mean, &m2);
        double var = m2 * inv_n;
        mean_d[i] = mean;
        m2_d[i] = m2;
        s1_f[i] = 0.0f;
        s2_f[i] = 0.0f;
        mean_f[i] = (float)mean;
        inv_std_f[i] = var > NX_NORM_MIN_VAR ? (float)(1.0 / sqrt(var)) : 1.0f;
    }
}

static void refresh_plain(nx_norm_t *norm) {
    double inv_g, w, v;
    merge_consts(norm, &inv_g, &w, &v);
    refresh_body(norm->dim, norm->mean, norm->m2, norm->mean_f, norm->inv_std_f, norm->s1, norm->s2,
                 inv_g, w, v, 1.0 / (double)norm->n);
    norm->g = 0;
}

#ifdef NX_NORM_AVX
#include <immintrin.h>
/* refresh_body 4 doubles at a time, operation for operation (the arrays
 * are padded to a multiple of 8 with zeros, which stay zero and are never
 * read outside). max(x, 0) and the masked select give what the scalar
 * ternaries give, NaN and -0 included. */
__attribute__((target("avx"))) static void refresh_avx(nx_norm_t *norm) {
    double inv_g_s, w_s, v_s;
    merge_consts(norm, &inv_g_s, &w_s, &v_s);
    const __m256d inv_g = _mm256_set1_pd(inv_g_s), w = _mm256_set1_pd(w_s), v = _mm256_set1_pd(v_s),
                  inv_n = _mm256_set1_pd(1.0 / (double)norm->n), zero = _mm256_setzero_pd(),
                  one = _mm256_set1_pd(1.0), min_var = _mm256_set1_pd(NX_NORM_MIN_VAR);
    for (size_t i = 0; i < norm->dim; i += 4) {
        __m256d s1 = _mm256_cvtps_pd(_mm_loadu_ps(norm->s1 + i));
        __m256d s2 = _mm256_cvtps_pd(_mm_loadu_ps(norm->s2 + i));
        __m256d mf = _mm256_cvtps_pd(_mm_loadu_ps(norm->mean_f + i));
        __m256d mean = _mm256_loadu_pd(norm->mean + i), m2 = _mm256_loadu_pd(norm->m2 + i);
        __m256d m2b = _mm256_sub_pd(s2, _mm256_mul_pd(_mm256_mul_pd(s1, s1), inv_g));
        __m256d delta = _mm256_sub_pd(_mm256_add_pd(mf, _mm256_mul_pd(s1, inv_g)), mean);
        mean = _mm256_add_pd(mean, _mm256_mul_pd(delta, w));
        m2 = _mm256_add_pd(_mm256_add_pd(m2, _mm256_max_pd(m2b, zero)),
                           _mm256_mul_pd(_mm256_mul_pd(delta, delta), v));
        __m256d var = _mm256_mul_pd(m2, inv_n);
        __m256d inv = _mm256_div_pd(one, _mm256_sqrt_pd(var));
        __m256d big = _mm256_cmp_pd(var, min_var, _CMP_GT_OQ);
        inv = _mm256_or_pd(_mm256_and_pd(big, inv), _mm256_andnot_pd(big, one));
        _mm256_storeu_pd(norm->mean + i, mean);
        _mm256_storeu_pd(norm->m2 + i, m2);
        _mm_storeu_ps(norm->s1 + i, _mm_setzero_ps());
        _mm_storeu_ps(norm->s2 + i, _mm_setzero_ps());
        _mm_storeu_ps(norm->mean_f + i, _mm256_cvtpd_ps(mean));
        _mm_storeu_ps(norm->inv_std_f + i, _mm256_cvtpd_ps(inv));
    }
    norm->g = 0;
}
#endif

static int due(const nx_norm_t *norm) {
    return norm->n < NX_NORM_WARMUP || norm->n % NX_NORM_REFRESH == 0;
}

/* Group sums and normalised output in one pass, 8 floats a vector. out may
 * be NULL (update alone). Element-wise, no fused multiply-add: every
 * build (and the scalar tail) gives the same bits. */
typedef float nx_v8f __attribute__((vector_size(32)));
typedef int32_t nx_v8i __attribute__((vector_size(32)));
/* lanes of a where mask is set, else of b (a macro: a function returning a
 * 32-byte vector has an ABI that depends on the build's AVX) */
#define NX_PICK(mask, a, b) ((nx_v8f)(((mask) & (nx_v8i)(a)) | (~(mask) & (nx_v8i)(b))))
static inline __attribute__((always_inline)) void
group_body(size_t dim, const float *restrict mean_f, const float *restrict inv_std_f,
           float *restrict s1, float *restrict s2, const float *restrict raw, float *restrict out,
           float c) {
    const nx_v8f hi = {c, c, c, c, c, c, c, c}, lo = -hi;
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        nx_v8f x, m, is, a, b;
        memcpy(&x, raw + i, sizeof x);
        memcpy(&m, mean_f + i, sizeof m);
        memcpy(&a, s1 + i, sizeof a);
        memcpy(&b, s2 + i, sizeof b);
        nx_v8f d = x - m;
        a += d;
        b += d * d;
        memcpy(s1 + i, &a, sizeof a);
        memcpy(s2 + i, &b, sizeof b);
        if (out) {
            memcpy(&is, inv_std_f + i, sizeof is);
            nx_v8f z = d * is;
            z = NX_PICK(z > hi, hi, z);
            z = NX_PICK(z < lo, lo, z);
            memcpy(out + i, &z, sizeof z);
        }
    }
    for (; i < dim; i++) {
        float d = raw[i] - mean_f[i];
        s1[i] += d;
        s2[i] += d * d;
        if (out) {
            float z = d * inv_std_f[i];
            out[i] = z > c ? c : (z < -c ? -c : z);
        }
    }
}

static void group_plain(nx_norm_t *norm, const float *raw, float *out) {
    group_body(norm->dim, norm->mean_f, norm->inv_std_f, norm->s1, norm->s2, raw, out, norm->clip);
}
#ifdef NX_NORM_AVX
/* AVX, the same operations: the last dim % 8 features by masked loads and
 * stores (a scalar tail would be a third of the pass at dim 38). */
__attribute__((target("avx"))) static inline void group_avx(nx_norm_t *norm, const float *raw,
                                                            float *out) {
    size_t dim = norm->dim;
    const float *mean_f = norm->mean_f, *inv_std_f = norm->inv_std_f;
    float *s1 = norm->s1, *s2 = norm->s2;
    const __m256 hi = _mm256_set1_ps(norm->clip), lo = _mm256_set1_ps(-norm->clip);
    size_t i = 0;
#define NX_GROUP_STEP(LOAD, STORE)                                                                 \
    do {                                                                                           \
        __m256 d = _mm256_sub_ps(LOAD(raw + i), LOAD(mean_f + i));                                 \
        STORE(s1 + i, _mm256_add_ps(LOAD(s1 + i), d));                                             \
        STORE(s2 + i, _mm256_add_ps(LOAD(s2 + i), _mm256_mul_ps(d, d)));                           \
        if (out) {                                                                                 \
            __m256 z = _mm256_mul_ps(d, LOAD(inv_std_f + i));                                      \
            /* min/max return their second operand on NaN: z, as the scalar clip */                \
            z = _mm256_max_ps(lo, _mm256_min_ps(hi, z));                                           \
            STORE(out + i, z);                                                                     \
        }                                                                                          \
    } while (0)
#define NX_LOADU(p)     _mm256_loadu_ps(p)
#define NX_STOREU(p, v) _mm256_storeu_ps(p, v)
    for (; i + 8 <= dim; i += 8)
        NX_GROUP_STEP(NX_LOADU, NX_STOREU);
    if (i < dim) {
        int r = (int)(dim - i);
        static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1};
        const __m256i mask = _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - r));
#define NX_LOADM(p)     _mm256_maskload_ps(p, mask)
#define NX_STOREM(p, v) _mm256_maskstore_ps(p, mask, v)
        NX_GROUP_STEP(NX_LOADM, NX_STOREM);
#undef NX_LOADM
#undef NX_STOREM
    }
#undef NX_LOADU
#undef NX_STOREU
#undef NX_GROUP_STEP
}
#endif

#ifdef NX_NORM_AVX
/* AVX-512F: 16 features a vector, the tail by a lane mask (dim 38: three
 * passes instead of five). The same operations: the same bits. */
__attribute__((target("avx512f"))) static inline void group_avx512(nx_norm_t *norm,
                                                                   const float *raw, float *out) {
    size_t dim = norm->dim;
    const __m512 hi = _mm512_set1_ps(norm->clip), lo = _mm512_set1_ps(-norm->clip);
    for (size_t i = 0; i < dim; i += 16) {
        __mmask16 m = dim - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (dim - i)) - 1);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, raw + i),
                                 _mm512_maskz_loadu_ps(m, norm->mean_f + i));
        _mm512_mask_storeu_ps(norm->s1 + i, m,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(m, norm->s1 + i), d));
        _mm512_mask_storeu_ps(
            norm->s2 + i, m,
            _mm512_add_ps(_mm512_maskz_loadu_ps(m, norm->s2 + i), _mm512_mul_ps(d, d)));
        if (out) {
            __m512 z = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, norm->inv_std_f + i));
            z = _mm512_max_ps(lo, _mm512_min_ps(hi, z));
            _mm512_mask_storeu_ps(out + i, m, z);
        }
    }
}
#endif

/* nx_norm_step per build, the group pass inlined: on a refresh the vector
 * is applied with the refreshed statistics (it is part of them), else in
 * the same pass as its sums. */
#define NX_NORM_STEP_FN(name, attr, group, refresh)                                                \
    attr static void name(nx_norm_t *norm, const float *raw, float *out) {                         \
        if (due(norm)) {                                                                           \
            group(norm, raw, NULL);                                                                \
            refresh(norm);                                                                         \
            nx_norm_apply(norm, raw, out);                                                         \
            return;                                                                                \
        }                                                                                          \
        group(norm, raw, out);                                                                     \
    }
NX_NORM_STEP_FN(step_plain, , group_plain, refresh_plain)
#ifdef NX_NORM_AVX
NX_NORM_STEP_FN(step_avx, __attribute__((target("avx"))), group_avx, refresh_avx)
NX_NORM_STEP_FN(step_avx512, __attribute__((target("avx512f"))), group_avx512, refresh_avx)
#endif

/* Uses build isa (clamped to what the CPU has). */
static void select_isa(nx_norm_t *norm, int isa) {
    int have = 0;
#ifdef NX_NORM_AVX
    have = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx") ? 1 : 0;
#endif
    norm->isa = isa < have ? (isa < 0 ? 0 : isa) : have;
    norm->group = group_plain;
    norm->refresh = refresh_plain;
    norm->step = step_plain;
#ifdef NX_NORM_AVX
    if (norm->isa >= 1) {
        norm->group = norm->isa == 2 ? group_avx512 : group_avx;
        norm->refresh = refresh_avx;
        norm->step = norm->isa == 2 ? step_avx512 : step_avx;
    }
#endif
}

void nx_norm_update(nx_norm_t *norm, const float *raw) {
    norm->n++;
    norm->g++;
    norm->group(norm, raw, NULL);
    if (due(norm))
        norm->refresh(norm);
}

void nx_norm_apply(const nx_norm_t *norm, const float *raw, float *out) {
    float c = norm->clip;
    for (size_t i = 0; i < norm->dim; i++) {
        float z = (raw[i] - norm->mean_f[i]) * norm->inv_std_f[i];
        out[i] = z > c ? c : (z < -c ? -c : z);
    }
}

void nx_norm_step(nx_norm_t *norm, const float *raw, float *out) {
    norm->n++;
    norm->g++;
    norm->step(norm, raw, out);
}

int nx_norm_set_isa(nx_norm_t *norm, int isa) {
    select_isa(norm, isa);
    return norm->isa;
}

uint64_t nx_norm_count(const nx_norm_t *norm) {
    return norm->n;
}
double nx_norm_mean(const nx_norm_t *norm, size_t i) {
    double mean, m2;
    merged(norm, i, &mean, &m2);
    return mean;
}
double nx_norm_var(const nx_norm_t *norm, size_t i) {
    double mean, m2;
    merged(norm, i, &mean, &m2);
    return norm->n ? m2 / (double)norm->n : 0.0;
}

void nx_norm_moments(const nx_norm_t *norm, double *mean, double *var) {
    for (size_t i = 0; i < norm->dim; i++) {
        double m2;
        merged(norm, i, &mean[i], &m2);
        var[i] = norm->n ? m2 / (double)norm->n : 0.0;
    }
}

void nx_norm_blend(nx_norm_t *norm, const double *mean, const double *var, double self_w,
                   double other_w, uint64_t n) {
    double total = self_w + other_w;
    uint64_t count = norm->n > n ? norm->n : n;
    if (!(total > 0) || count == 0)
        return;
    if (norm->g)
        norm->refresh(norm); /* the open group joins mean and m2 first */
    double a = self_w / total, b = other_w / total;
    double own_n = (double)norm->n;
    for (size_t i = 0; i < norm->dim; i++) {
        double ms = norm->mean[i], vs = own_n > 0 ? norm->m2[i] / own_n : 0.0;
        double m = a * ms + b * mean[i];
        double v = a * (vs + ms * ms) + b * (var[i] + mean[i] * mean[i]) - m * m;
        if (!(v > 0))
            v = 0; /* rounding, or a non-finite input: the feature is only centred */
        if (!isfinite(m))
            m = ms;
        norm->mean[i] = m;
        norm->m2[i] = v * (double)count;
        norm->mean_f[i] = (float)m;
        norm->inv_std_f[i] = v > NX_NORM_MIN_VAR ? (float)(1.0 / sqrt(v)) : 1.0f;
    }
    norm->n = count;
}

int nx_norm_save(const nx_norm_t *norm, nx_stream_write_fn write, void *opaque) {
    uint32_t magic = NX_NORM_MAGIC;
    uint64_t dim = norm->dim;
    if (write(opaque, &magic, sizeof magic) || write(opaque, &dim, sizeof dim) ||
        write(opaque, &norm->n, sizeof norm->n) || write(opaque, &norm->g, sizeof norm->g) ||
        write(opaque, norm->mean, norm->dim * sizeof *norm->mean) ||
        write(opaque, norm->m2, norm->dim * sizeof *norm->m2) ||
        write(opaque, norm->mean_f, norm->dim * sizeof *norm->mean_f) ||
        write(opaque, norm->inv_std_f, norm->dim * sizeof *norm->inv_std_f) ||
        write(opaque, norm->s1, norm->dim * sizeof *norm->s1) ||
        write(opaque, norm->s2, norm->dim * sizeof *norm->s2))
        return -1;
    return 0;
}

int nx_norm_load(nx_norm_t *norm, nx_stream_read_fn read, void *opaque, char *errstr,
                 size_t errstr_size) {
    uint32_t magic = 0;
    uint64_t dim = 0, n = 0, g = 0;
    if (read(opaque, &magic, sizeof magic) || read(opaque, &dim, sizeof dim) ||
        read(opaque, &n, sizeof n) || (magic == NX_NORM_MAGIC && read(opaque, &g, sizeof g))) {
        snprintf(errstr, errstr_size, "normaliser: short read");
        return -1;
    }
    if ((magic != NX_NORM_MAGIC && magic != NX_NORM_MAGIC_V1) || dim != norm->dim || g > n) {
        snprintf(errstr, errstr_size, "normaliser: bad magic, dim %llu (want %zu) or group",
                 (unsigned long long)dim, norm->dim);
        return -1;
    }
    if (read(opaque, norm->mean, norm->dim * sizeof *norm->mean) ||
        read(opaque, norm->m2, norm->dim * sizeof *norm->m2) ||
        read(opaque, norm->mean_f, norm->dim * sizeof *norm->mean_f) ||
        read(opaque, norm->inv_std_f, norm->dim * sizeof *norm->inv_std_f) ||
        (magic == NX_NORM_MAGIC && (read(opaque, norm->s1, norm->dim * sizeof *norm->s1) ||
                                    read(opaque, norm->s2, norm->dim * sizeof *norm->s2)))) {
        snprintf(errstr, errstr_size, "normaliser: short read");
        return -1;
    }
    if (magic == NX_NORM_MAGIC_V1) /* no open group in version 1 */
        for (size_t i = 0; i < norm->dim; i++)
            norm->s1[i] = norm->s2[i] = 0.0f;
    norm->n = n;
    norm->g = g;
    return 0;
}
