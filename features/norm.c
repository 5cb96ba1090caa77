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
 * per event was the largest cost of the hot path, and 16 more vectors move
 * settled statistics by ~1/n. */
#define NX_NORM_WARMUP  256
#define NX_NORM_REFRESH 16

/* x86-64: nx_norm_step has an AVX build, chosen at run time. */
#if defined(__x86_64__) && defined(__GNUC__)
#define NX_NORM_AVX 1
#endif

/* Stream tag "NXN1": format version 1 of the normaliser state. */
#define NX_NORM_MAGIC 0x314e584eu

struct nx_norm {
    size_t dim;
    float clip;
    uint64_t n;       /* vectors seen */
    double *mean;     /* (dim) running mean */
    double *m2;       /* (dim) sum of squared deviations */
    float *mean_f;    /* (dim) mean as float, for apply */
    float *inv_std_f; /* (dim) 1/std, or 1 while the variance is ~0 */
    int avx;          /* nx_norm_step may use its AVX build */
};

nx_norm_t *nx_norm_new(size_t dim, float clip) {
    nx_norm_t *norm = NULL;
    if (dim == 0 || !(clip > 0))
        return NULL;
    norm = calloc(1, sizeof *norm);
    if (!norm)
        goto err;
    norm->dim = dim;
    norm->clip = clip;
    norm->mean = calloc(dim, sizeof *norm->mean);
    norm->m2 = calloc(dim, sizeof *norm->m2);
    norm->mean_f = calloc(dim, sizeof *norm->mean_f);
    norm->inv_std_f = malloc(dim * sizeof *norm->inv_std_f);
    if (!norm->mean || !norm->m2 || !norm->mean_f || !norm->inv_std_f)
        goto err;
    for (size_t i = 0; i < dim; i++)
        norm->inv_std_f[i] = 1.0f;
#ifdef NX_NORM_AVX
    norm->avx = __builtin_cpu_supports("avx");
#endif
    return norm;
err:
    nx_norm_destroy(norm);
    return NULL;
}

void nx_norm_destroy(nx_norm_t *norm) {
    if (!norm)
        return;
    free(norm->inv_std_f);
    free(norm->mean_f);
    free(norm->m2);
    free(norm->mean);
    free(norm);
}

static void refresh(nx_norm_t *norm, size_t i) {
    double var = norm->n ? norm->m2[i] / (double)norm->n : 0.0;
    norm->mean_f[i] = (float)norm->mean[i];
    norm->inv_std_f[i] = var > NX_NORM_MIN_VAR ? (float)(1.0 / sqrt(var)) : 1.0f;
}

void nx_norm_update(nx_norm_t *norm, const float *raw) {
    norm->n++;
    double inv_n = 1.0 / (double)norm->n;
    for (size_t i = 0; i < norm->dim; i++) {
        double x = raw[i];
        double d = x - norm->mean[i];
        norm->mean[i] += d * inv_n;
        norm->m2[i] += d * (x - norm->mean[i]);
    }
    if (norm->n < NX_NORM_WARMUP || norm->n % NX_NORM_REFRESH == 0)
        for (size_t i = 0; i < norm->dim; i++)
            refresh(norm, i);
}

void nx_norm_apply(const nx_norm_t *norm, const float *raw, float *out) {
    float c = norm->clip;
    for (size_t i = 0; i < norm->dim; i++) {
        float z = (raw[i] - norm->mean_f[i]) * norm->inv_std_f[i];
        out[i] = z > c ? c : (z < -c ? -c : z);
    }
}

/* update then apply in one pass over the features (the two passes were
 * ~11% of an update). Bit-identical to them: element i's refresh and
 * normalisation need only element i's statistics, and the arithmetic is
 * the same, in the same order. */
static inline __attribute__((always_inline)) void
step_body(size_t dim, double *restrict mean_d, double *restrict m2_d, float *restrict mean_f,
          float *restrict inv_std_f, const float *restrict raw, float *restrict out, double cnt,
          float c, int fresh) {
    double inv_n = 1.0 / cnt;
    for (size_t i = 0; i < dim; i++) {
        double x = raw[i];
        double d = x - mean_d[i];
        double mean = mean_d[i] + d * inv_n;
        double m2 = m2_d[i] + d * (x - mean);
        mean_d[i] = mean;
        m2_d[i] = m2;
        if (fresh) { /* refresh(), inline */
            double var = m2 / cnt;
            mean_f[i] = (float)mean;
            inv_std_f[i] = var > NX_NORM_MIN_VAR ? (float)(1.0 / sqrt(var)) : 1.0f;
        }
        float z = (raw[i] - mean_f[i]) * inv_std_f[i];
        out[i] = z > c ? c : (z < -c ? -c : z);
    }
}

/* One function per (build, fresh) so that fresh is a constant in each
 * loop: with it a run-time value the loops were not vectorised. */
#define NX_NORM_STEP_FN(name, attr, fresh)                                                         \
    attr static void name(nx_norm_t *norm, const float *raw, float *out) {                         \
        step_body(norm->dim, norm->mean, norm->m2, norm->mean_f, norm->inv_std_f, raw, out,        \
                  (double)norm->n, norm->clip, fresh);                                             \
    }
NX_NORM_STEP_FN(step_plain_fresh, , 1)
NX_NORM_STEP_FN(step_plain, , 0)

#ifdef NX_NORM_AVX
/* The same loops compiled for AVX: 4 doubles a vector instead of 2, half
 * the instructions of the hot path's largest loop. AVX alone has no fused
 * multiply-add, so every operation rounds as in the SSE2 build: the same
 * bits on every x86-64 (tested against update + apply). */
NX_NORM_STEP_FN(step_avx_fresh, __attribute__((target("avx"))), 1)
NX_NORM_STEP_FN(step_avx, __attribute__((target("avx"))), 0)
#endif

void nx_norm_step(nx_norm_t *norm, const float *raw, float *out) {
    norm->n++;
    int fresh = norm->n < NX_NORM_WARMUP || norm->n % NX_NORM_REFRESH == 0;
#ifdef NX_NORM_AVX
    if (norm->avx) {
        if (fresh)
            step_avx_fresh(norm, raw, out);
        else
            step_avx(norm, raw, out);
        return;
    }
#endif
    if (fresh)
        step_plain_fresh(norm, raw, out);
    else
        step_plain(norm, raw, out);
}

uint64_t nx_norm_count(const nx_norm_t *norm) {
    return norm->n;
}
double nx_norm_mean(const nx_norm_t *norm, size_t i) {
    return norm->mean[i];
}
double nx_norm_var(const nx_norm_t *norm, size_t i) {
    return norm->n ? norm->m2[i] / (double)norm->n : 0.0;
}

int nx_norm_save(const nx_norm_t *norm, nx_stream_write_fn write, void *opaque) {
    uint32_t magic = NX_NORM_MAGIC;
    uint64_t dim = norm->dim;
    if (write(opaque, &magic, sizeof magic) || write(opaque, &dim, sizeof dim) ||
        write(opaque, &norm->n, sizeof norm->n) ||
        write(opaque, norm->mean, norm->dim * sizeof *norm->mean) ||
        write(opaque, norm->m2, norm->dim * sizeof *norm->m2) ||
        write(opaque, norm->mean_f, norm->dim * sizeof *norm->mean_f) ||
        write(opaque, norm->inv_std_f, norm->dim * sizeof *norm->inv_std_f))
        return -1;
    return 0;
}

int nx_norm_load(nx_norm_t *norm, nx_stream_read_fn read, void *opaque, char *errstr,
                 size_t errstr_size) {
    uint32_t magic = 0;
    uint64_t dim = 0, n = 0;
    if (read(opaque, &magic, sizeof magic) || read(opaque, &dim, sizeof dim) ||
        read(opaque, &n, sizeof n)) {
        snprintf(errstr, errstr_size, "normaliser: short read");
        return -1;
    }
    if (magic != NX_NORM_MAGIC || dim != norm->dim) {
        snprintf(errstr, errstr_size, "normaliser: bad magic or dim %llu (want %zu)",
                 (unsigned long long)dim, norm->dim);
        return -1;
    }
    if (read(opaque, norm->mean, norm->dim * sizeof *norm->mean) ||
        read(opaque, norm->m2, norm->dim * sizeof *norm->m2) ||
        read(opaque, norm->mean_f, norm->dim * sizeof *norm->mean_f) ||
        read(opaque, norm->inv_std_f, norm->dim * sizeof *norm->inv_std_f)) {
        snprintf(errstr, errstr_size, "normaliser: short read");
        return -1;
    }
    norm->n = n;
    return 0;
}
