/*
 * test_features.c: unit tests for features/ (SipHash, key file, fp16,
 * normaliser, feature store), linking only nx_features.
 *
 * The store is checked against a brute-force reference that keeps every
 * accepted event of each user and recomputes every feature from that list
 * (decayed counts as explicit sums in double, recency as maxima, sessions
 * and revisits by rescanning the list), on random streams with out-of-order
 * and too-old events, TTL expiry and a user cap.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "half.h"
#include "quant.h"
#include "store_int.h"
#include "norm.h"
#include "siphash.h"
#include "store.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            if (failures > 20)                                                                     \
                exit(1);                                                                           \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    CHECK(fabs((double)(a) - (double)(b)) <= (tol) * (1.0 + fabs((double)(b))),                    \
          "%s = %.9g, want %.9g", #a, (double)(a), (double)(b))

/* A counter feature, log1p(c), of a bfloat16 counter rounded n times
 * (stochastically: each rounding moves c by under one step, 2^-7 of it,
 * and log1p(c) by under 2^-7). */
#define CHECK_COUNTER(a, b, n)                                                                     \
    CHECK(fabs((double)(a) - (double)(b)) <= (n)*0x1p-7, "%s = %.9g, want %.9g (%d roundings)",    \
          #a, (double)(a), (double)(b), (n))

static const uint8_t test_key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* A feature as a resolved example gives it back: a normalised store with a
 * clip within NX_QUANT_CLIP_MAX keeps 8-bit codes (quant.h), any other
 * fp16. */
static float pend_rt(const nx_store_params_t *p, float x) {
    if (p->normalise && p->clip <= NX_QUANT_CLIP_MAX) {
        int8_t q;
        nx_quant_encode(NX_HALF_PORTABLE, &x, &q, 1, p->clip);
        float y;
        nx_quant_decode(NX_HALF_PORTABLE, &q, &y, 1, p->clip);
        return y;
    }
    return nx_half_to_float(nx_half_from_float(x));
}

/* --- a memory stream ------------------------------------------------------ */

typedef struct membuf {
    char *data;
    size_t len, cap, pos;
} membuf_t;

static int mem_write(void *opaque, const void *buf, size_t len) {
    membuf_t *m = opaque;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + len)
            cap *= 2;
        char *d = realloc(m->data, cap);
        if (!d)
            return -1;
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, buf, len);
    m->len += len;
    return 0;
}

static int mem_read(void *opaque, void *buf, size_t len) {
    membuf_t *m = opaque;
    if (m->pos + len > m->len)
        return -1;
    memcpy(buf, m->data + m->pos, len);
    m->pos += len;
    return 0;
}

/* --- SipHash ----------------------------------------------------------------- */

static void test_siphash(void) {
    /* Reference implementation vectors (key 00..0f, message 00..len-1),
     * lengths 0..11, as little-endian 64-bit words. */
    static const uint64_t want[12] = {
        0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
        0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
        0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
    };
    uint8_t msg[16];
    for (int i = 0; i < 16; i++)
        msg[i] = (uint8_t)i;
    for (int len = 0; len < 12; len++) {
        uint64_t got = nx_siphash24(test_key, msg, (size_t)len);
        CHECK(got == want[len], "len %d: %016llx want %016llx", len, (unsigned long long)got,
              (unsigned long long)want[len]);
    }
    /* The paper's worked example (Appendix A): 15-byte message. */
    uint64_t got = nx_siphash24(test_key, msg, 15);
    CHECK(got == 0xa129ca6149be45e5ULL, "paper example: %016llx", (unsigned long long)got);
}

static void test_keyfile(void) {
    char dir[] = "/tmp/nx-test-key-XXXXXX", path[128], err[256];
    uint8_t k1[16], k2[16];
    int created = -1;
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(nx_siphash_key_load(dir, k1, &created, err, sizeof err) == 0, "create: %s", err);
    CHECK(created == 1, "created %d", created);
    snprintf(path, sizeof path, "%s/%s", dir, NX_SIPHASH_KEY_FILE);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode %o",
          (unsigned)(st.st_mode & 0777));
    CHECK(st.st_size == 16, "size %lld", (long long)st.st_size);
    CHECK(nx_siphash_key_load(dir, k2, &created, err, sizeof err) == 0, "reload: %s", err);
    CHECK(created == 0 && memcmp(k1, k2, 16) == 0, "reload gave another key");
    chmod(path, 0644);
    CHECK(nx_siphash_key_load(dir, k2, NULL, err, sizeof err) == -1, "0644 key accepted");
    unlink(path);
    rmdir(dir);
    CHECK(nx_siphash_key_load("/nonexistent/nx", k2, NULL, err, sizeof err) == -1,
          "missing dir accepted");
}

/* --- fp16 ------------------------------------------------------------------- */

static void test_half(void) {
    CHECK(nx_half_from_float(1.0f) == 0x3c00, "1.0 -> %04x", nx_half_from_float(1.0f));
    CHECK(nx_half_from_float(-2.0f) == 0xc000, "-2.0");
    CHECK(nx_half_from_float(65504.0f) == 0x7bff, "max");
    CHECK(nx_half_from_float(65520.0f) == 0x7c00, "65520 rounds to inf");
    CHECK(nx_half_from_float(5.960464477539063e-08f) == 0x0001, "min subnormal");
    CHECK(nx_half_from_float(1.0f + 1.0f / 2048) == 0x3c00, "tie rounds to even (down)");
    CHECK(nx_half_from_float(1.0f + 3.0f / 2048) == 0x3c02, "tie rounds to even (up)");
    /* Every finite half round-trips exactly. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        float f = nx_half_to_float((uint16_t)h);
        uint16_t back = nx_half_from_float(f);
        if (back != h && !(h == 0x8000 && back == 0x8000)) {
            CHECK(0, "half %04x -> %g -> %04x", h, (double)f, back);
            break;
        }
    }
    /* Every vector path this CPU has gives the portable bits, at every
     * length up to 40 (tails of both 4- and 8-wide conversions and of the
     * 16-lane masks): all 65536 halves back, and floats around the
     * rounding ties, subnormals and overflow there. A NaN only has to stay
     * a NaN: the instructions quiet a signalling one. */
    enum { N = 65536, LEN = 40 };
    static float f[N], fv[N];
    static uint16_t h[N], hv[N];
    uint64_t s = 3;
    for (uint32_t i = 0; i < N; i++) {
        h[i] = (uint16_t)i;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t bits = (uint32_t)(s >> 32);
        memcpy(&f[i], &bits, sizeof bits);
        if (i % 2) /* near the fp16 range: exponents 2^-26 .. 2^17 */
            f[i] = ldexpf(1.0f + (float)(bits & 0xffffff) / 16777216.0f, (int)(bits >> 26) - 26) *
                   (bits & 0x80 ? -1.0f : 1.0f);
    }
    for (int isa = NX_HALF_PORTABLE; isa <= nx_half_isa(); isa++) {
        int bad = 0;
        for (size_t off = 0; off + LEN <= N; off += LEN * 3) {
            for (size_t n = 1; n <= LEN; n++) {
                memset(hv, 0xab, (n + 1) * sizeof *hv);
                nx_half_encode(isa, f + off, hv, n);
                for (size_t i = 0; i < n; i++) {
                    uint16_t want = nx_half_from_float(f[off + i]);
                    if (isnan(f[off + i]))
                        bad += (hv[i] & 0x7c00) != 0x7c00 || !(hv[i] & 0x3ff);
                    else
                        bad += hv[i] != want;
                }
                bad += hv[n] != 0xabab; /* nothing written past n */
            }
        }
        for (size_t off = 0; off + LEN <= N; off += LEN) {
            size_t n = 1 + off / LEN % LEN;
            fv[n] = 7.0f;
            nx_half_decode(isa, h + off, fv, n);
            for (size_t i = 0; i < n; i++) {
                float want = nx_half_to_float(h[off + i]);
                if (isnan(want))
                    bad += !isnan(fv[i]);
                else
                    bad += memcmp(&fv[i], &want, sizeof want) != 0;
            }
            bad += fv[n] != 7.0f;
        }
        CHECK(bad == 0, "fp16 path %d: %d values differ from the portable conversion", isa, bad);
    }
}

/* --- normaliser ---------------------------------------------------------------- */

static void test_norm(void) {
    const size_t dim = 3;
    nx_norm_t *norm = nx_norm_new(dim, 2.0f);
    double sum[3] = {0}, sq[3] = {0};
    float raw[3], out[3];
    uint64_t s = 7;
    int n = 1024; /* a multiple of the refresh period: apply sees all */
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        raw[0] = (float)((s >> 40) % 1000) / 100.0f; /* 0..10 */
        raw[1] = 4.0f;                               /* constant */
        raw[2] = (float)i;
        nx_norm_update(norm, raw);
        for (size_t j = 0; j < dim; j++) {
            sum[j] += raw[j];
            sq[j] += (double)raw[j] * raw[j];
        }
    }
    for (size_t j = 0; j < dim; j++) {
        double mean = sum[j] / n, var = sq[j] / n - mean * mean;
        /* float features: the statistics as exact as a float carries */
        CHECK(fabs(nx_norm_mean(norm, j) - mean) <= 1e-6 * (fabs(mean) + sqrt(var)),
              "mean %zu %.9g want %.9g", j, nx_norm_mean(norm, j), mean);
        CHECK(fabs(nx_norm_var(norm, j) - var) <= 1e-6 * (1 + var), "var %zu %g want %g", j,
              nx_norm_var(norm, j), var);
    }
    raw[0] = 1e6f;
    raw[1] = 4.0f;
    raw[2] = (float)(sum[2] / n);
    nx_norm_apply(norm, raw, out);
    CHECK(out[0] == 2.0f, "clip: %g", (double)out[0]);
    CHECK(out[1] == 0.0f, "constant feature: %g", (double)out[1]);
    CHECK(fabsf(out[2]) < 1e-4f, "mean maps to 0: %g", (double)out[2]);
    membuf_t m = {0};
    CHECK(nx_norm_save(norm, mem_write, &m) == 0, "save");
    nx_norm_t *norm2 = nx_norm_new(dim, 2.0f);
    char err[128];
    CHECK(nx_norm_load(norm2, mem_read, &m, err, sizeof err) == 0, "load: %s", err);
    float out2[3];
    nx_norm_apply(norm2, raw, out2);
    CHECK(memcmp(out, out2, sizeof out) == 0, "restored normaliser differs");
    CHECK(nx_norm_count(norm2) == (uint64_t)n, "count");
    nx_norm_destroy(norm2);
    nx_norm_destroy(norm);
    free(m.data);
}

/* Replicas of a normaliser meeting (nx_norm_moments, nx_norm_blend): two
 * that saw different halves of a stream, blended with their counts as
 * weights, hold the moments of the whole stream (a mixture weighted by
 * counts is the pooled sample); self weight 0 takes the other's. */
static void test_norm_blend(void) {
    enum { DIM = 2, NA = 1000, NB = 613 }; /* NB: an open group at the end */
    nx_norm_t *a = nx_norm_new(DIM, 5.0f), *b = nx_norm_new(DIM, 5.0f), *c = nx_norm_new(DIM, 5.0f);
    double sum[DIM] = {0}, sq[DIM] = {0};
    uint64_t s = 11;
    for (int i = 0; i < NA + NB; i++) {
        float raw[DIM];
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        raw[0] = (float)((s >> 40) % 1000) / 100.0f + (i < NA ? 0.0f : 3.0f);
        raw[1] = i < NA ? 1.0f : 2.0f; /* constant within each half */
        nx_norm_update(i < NA ? a : b, raw);
        for (int j = 0; j < DIM; j++) {
            sum[j] += raw[j];
            sq[j] += (double)raw[j] * raw[j];
        }
    }
    double mean[DIM], var[DIM], mb[DIM], vb[DIM];
    nx_norm_moments(b, mb, vb);
    for (int j = 0; j < DIM; j++) {
        CHECK(fabs(mb[j] - nx_norm_mean(b, j)) < 1e-12, "moments: mean %d", j);
        CHECK(fabs(vb[j] - nx_norm_var(b, j)) < 1e-12, "moments: var %d", j);
    }
    nx_norm_blend(a, mb, vb, NA, NB, 0);
    nx_norm_moments(a, mean, var);
    for (int j = 0; j < DIM; j++) {
        double m = sum[j] / (NA + NB), v = sq[j] / (NA + NB) - m * m;
        CHECK(fabs(mean[j] - m) <= 1e-6 * (fabs(m) + 1), "pooled mean %d: %.9g want %.9g", j,
              mean[j], m);
        CHECK(fabs(var[j] - v) <= 1e-6 * (1 + v), "pooled var %d: %.9g want %.9g", j, var[j], v);
    }
    CHECK(nx_norm_count(a) == NA, "count kept: %llu", (unsigned long long)nx_norm_count(a));
    /* apply uses the blend at once: the pooled mean maps to 0 */
    float raw[DIM] = {(float)(sum[0] / (NA + NB)), (float)(sum[1] / (NA + NB))}, out[DIM];
    nx_norm_apply(a, raw, out);
    CHECK(fabsf(out[0]) < 1e-4f && fabsf(out[1]) < 1e-4f, "pooled mean maps to %g %g",
          (double)out[0], (double)out[1]);
    /* an empty replica adopting another's: its moments and at least its count */
    nx_norm_blend(c, mb, vb, 0, 1, nx_norm_count(b));
    nx_norm_moments(c, mean, var);
    for (int j = 0; j < DIM; j++)
        CHECK(fabs(mean[j] - mb[j]) < 1e-12 && fabs(var[j] - vb[j]) < 1e-9, "adopted %d", j);
    CHECK(nx_norm_count(c) == NB, "adopted count %llu", (unsigned long long)nx_norm_count(c));
    /* no weight: nothing changes */
    nx_norm_blend(c, mean, var, 0, 0, 99999);
    CHECK(nx_norm_count(c) == NB, "no-weight blend changed the count");
    nx_norm_destroy(a);
    nx_norm_destroy(b);
    nx_norm_destroy(c);
}

/* nx_norm_step (the store's one-pass form) against update + apply: the
 * same outputs and state, bit for bit, through the warm-up (refresh every
 * vector) and after it (refresh every 16th), with clipping and a constant
 * feature; dim 19 leaves a remainder for any vectorised loop. */
static void test_norm_step(void) {
    enum { DIM = 19, N = 700 };
    nx_norm_t *a = nx_norm_new(DIM, 3.0f), *b = nx_norm_new(DIM, 3.0f);
    float raw[DIM], oa[DIM], ob[DIM];
    uint64_t s = 11;
    int diff = 0;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < DIM; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            /* spread in scale by feature; feature 0 constant; rare outliers clip */
            raw[j] = j == 0 ? 1.5f : (float)((s >> 40) % 10000) * (0.001f * (float)j);
            if ((s >> 20) % 97 == 0)
                raw[j] *= 1000.0f;
        }
        nx_norm_update(a, raw);
        nx_norm_apply(a, raw, oa);
        nx_norm_step(b, raw, ob);
        diff += memcmp(oa, ob, sizeof oa) != 0;
    }
    CHECK(diff == 0, "nx_norm_step differs from update+apply on %d of %d vectors", diff, N);
    membuf_t ma = {0}, mb = {0};
    CHECK(nx_norm_save(a, mem_write, &ma) == 0 && nx_norm_save(b, mem_write, &mb) == 0, "save");
    CHECK(ma.len == mb.len && memcmp(ma.data, mb.data, ma.len) == 0,
          "nx_norm_step leaves other state than update+apply");
    free(ma.data);
    free(mb.data);
    nx_norm_destroy(b);
    nx_norm_destroy(a);
}

/* A version-1 normaliser state (before the group sums: "NXN1", dim, n,
 * mean, m2, mean_f, inv_std_f) still loads: the same count, statistics and
 * outputs, and updates go on from it. */
static void test_norm_v1(void) {
    enum { DIM = 3 };
    const uint32_t magic = 0x314e584eu;
    const uint64_t dim = DIM, n = 1000;
    const double mean[DIM] = {1.5, -2.0, 0.25}, m2[DIM] = {4000.0, 1000.0, 0.0};
    const float mean_f[DIM] = {1.5f, -2.0f, 0.25f}, inv_std_f[DIM] = {0.5f, 1.0f, 1.0f};
    membuf_t m = {0};
    CHECK(mem_write(&m, &magic, sizeof magic) == 0 && mem_write(&m, &dim, sizeof dim) == 0 &&
              mem_write(&m, &n, sizeof n) == 0 && mem_write(&m, mean, sizeof mean) == 0 &&
              mem_write(&m, m2, sizeof m2) == 0 && mem_write(&m, mean_f, sizeof mean_f) == 0 &&
              mem_write(&m, inv_std_f, sizeof inv_std_f) == 0,
          "write v1");
    nx_norm_t *norm = nx_norm_new(DIM, 3.0f);
    char err[128];
    CHECK(nx_norm_load(norm, mem_read, &m, err, sizeof err) == 0, "load v1: %s", err);
    CHECK(nx_norm_count(norm) == n, "count");
    for (int j = 0; j < DIM; j++) {
        CHECK(nx_norm_mean(norm, (size_t)j) == mean[j], "mean %d", j);
        CHECK(nx_norm_var(norm, (size_t)j) == m2[j] / (double)n, "var %d", j);
    }
    float raw[DIM] = {3.5f, -2.0f, 7.0f}, out[DIM];
    nx_norm_apply(norm, raw, out);
    CHECK(out[0] == 1.0f && out[1] == 0.0f && out[2] == 3.0f, "apply: %g %g %g", (double)out[0],
          (double)out[1], (double)out[2]);
    for (int i = 0; i < 16; i++) /* through a refresh */
        nx_norm_step(norm, raw, out);
    CHECK(nx_norm_count(norm) == n + 16 && nx_norm_mean(norm, 0) > mean[0], "updates after load");
    nx_norm_destroy(norm);
    free(m.data);
}

/* Every build of the normaliser (baseline, AVX, AVX-512F, as far as this
 * CPU has them) gives the same outputs and state bit for bit, on a
 * dimension with a tail (38 = the default layout's) and a short one. */
static void test_norm_isa(void) {
    const size_t dims[2] = {38, 5};
    for (int di = 0; di < 2; di++) {
        size_t dim = dims[di];
        enum { N = 900, ISAS = 3 };
        nx_norm_t *nm[ISAS];
        float raw[38], out[ISAS][38];
        int isa[ISAS], diff = 0;
        for (int k = 0; k < ISAS; k++) {
            nm[k] = nx_norm_new(dim, 4.0f);
            isa[k] = nx_norm_set_isa(nm[k], k);
        }
        uint64_t s = 5 + (uint64_t)di;
        for (int i = 0; i < N; i++) {
            for (size_t j = 0; j < dim; j++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                raw[j] = (float)((s >> 40) % 20000) * 0.01f - (float)j;
                if ((s >> 20) % 89 == 0)
                    raw[j] *= -500.0f; /* clipped both ways */
            }
            for (int k = 0; k < ISAS; k++) {
                if (i % 3 == 2) { /* the two-call form too */
                    nx_norm_update(nm[k], raw);
                    nx_norm_apply(nm[k], raw, out[k]);
                } else {
                    nx_norm_step(nm[k], raw, out[k]);
                }
            }
            for (int k = 1; k < ISAS; k++)
                diff += memcmp(out[0], out[k], dim * sizeof(float)) != 0;
        }
        CHECK(diff == 0, "dim %zu: builds %d/%d/%d differ on %d vectors", dim, isa[0], isa[1],
              isa[2], diff);
        membuf_t m[ISAS] = {{0}};
        for (int k = 0; k < ISAS; k++)
            CHECK(nx_norm_save(nm[k], mem_write, &m[k]) == 0, "save");
        for (int k = 1; k < ISAS; k++)
            CHECK(m[k].len == m[0].len && memcmp(m[k].data, m[0].data, m[0].len) == 0,
                  "dim %zu: build %d leaves other state than build %d", dim, isa[k], isa[0]);
        for (int k = 0; k < ISAS; k++) {
            free(m[k].data);
            nx_norm_destroy(nm[k]);
        }
    }
}

/* --- store helpers -------------------------------------------------------- */

static nx_event_t mk_event(const char *user, int type, int64_t ts, uint64_t item, uint64_t cat,
                           uint64_t session, double price, int qty, int partition) {
    nx_event_t e;
    memset(&e, 0, sizeof e);
    e.user_id = user;
    e.user_id_len = (uint32_t)strlen(user);
    e.type = type;
    e.ts_ms = ts;
    e.item = item;
    e.category = cat;
    e.session = session;
    e.price = price;
    e.quantity = qty;
    e.partition = partition;
    return e;
}

typedef struct exbuf {
    float *x;
    float *score; /* (cap, NX_STORE_MAX_SCORES) */
    int32_t label[4096];
    int64_t ts[4096];
    uint64_t user[4096];
    int32_t part[4096];
    nx_examples_t ex;
} exbuf_t;

static void exbuf_init(exbuf_t *b, size_t dim, size_t cap) {
    b->x = calloc(cap * dim, sizeof(float));
    b->score = calloc(cap * NX_STORE_MAX_SCORES, sizeof(float));
    b->ex = (nx_examples_t){.x = b->x,
                            .label = b->label,
                            .ts_ms = b->ts,
                            .user = b->user,
                            .partition = b->part,
                            .score = b->score,
                            .cap = cap};
}

static void exbuf_free(exbuf_t *b) {
    free(b->x);
    free(b->score);
}

/* --- exact vectors for a hand-written sequence ------------------------------- */

static void test_hand_sequence(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.n_types = 2;
    strcpy(p.type_names[0], "click");
    strcpy(p.type_names[1], "buy");
    p.n_windows = 1;
    p.window_ms[0] = 60000;
    p.value_type = 1;
    p.cart_type = -1; /* no cart type: session_carts stays 0 */
    p.session_gap_ms = 100000;
    p.horizon_ms = 30000;
    p.user_ttl_ms = 3600000;
    p.recent_items = 2;
    p.normalise = 0;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    static const char *names[] = {"cnt_1m_click",
                                  "cnt_1m_buy",
                                  "value_1m",
                                  "since_click_s",
                                  "since_click_missing",
                                  "since_buy_s",
                                  "since_buy_missing",
                                  "session_events",
                                  "session_duration_s",
                                  "session_new",
                                  "since_prev_event_s",
                                  "since_prev_event_missing",
                                  "session_carts",
                                  "session_cart_open",
                                  "item_revisits",
                                  "category_revisit",
                                  "session_revisits",
                                  "category_run",
                                  "is_click",
                                  "is_buy",
                                  "hour_sin",
                                  "hour_cos",
                                  "dow_sin",
                                  "dow_cos",
                                  "log_price",
                                  "price_missing"};
    size_t dim = nx_store_dim(store);
    CHECK(dim == 26, "dim %zu", dim);
    for (size_t i = 0; i < dim && i < 26; i++)
        CHECK(strcmp(nx_store_feature_name(store, i), names[i]) == 0, "feature %zu is %s, want %s",
              i, nx_store_feature_name(store, i), names[i]);

    const int64_t t0 = 1000000; /* 00:16:40 on Thursday 1970-01-01 */
    nx_event_t ev[5] = {
        mk_event("u1", 0, t0, 11, 21, 0, NAN, 0, 0),
        mk_event("u1", 1, t0 + 60000, 11, 21, 0, 10.0, 2, 0),
        mk_event("u1", 0, t0 + 70000, 12, 21, 0, NAN, 0, 0),
        mk_event("u1", 0, t0 + 65000, 14, 22, 0, NAN, 0, 0),  /* late for the user */
        mk_event("u1", 0, t0 + 200000, 12, 21, 0, NAN, 0, 0), /* gap 130 s > 100 s */
    };
    float x[5][26];
    uint8_t st[5];
    exbuf_t rb;
    exbuf_init(&rb, dim, 8);
    /* e0, e1 in one batch: e0 is resolved by e1 (gap 60 s >= H 30 s: none). */
    CHECK(nx_store_update(store, ev, 2, 0, &x[0][0], st, &rb.ex) == 0, "update");
    CHECK(rb.ex.n == 1 && rb.label[0] == 2 && rb.ts[0] == t0, "e0 label: n %zu label %d ts %lld",
          rb.ex.n, rb.label[0], (long long)rb.ts[0]);
    double e = exp(-1.0);
    double want1[26] = {log1p(e),
                        log1p(1.0),
                        log1p(20.0),
                        log1p(60.0),
                        0,
                        0,
                        0,
                        log1p(2.0),
                        log1p(60.0),
                        0,
                        log1p(60.0), /* since e0 */
                        0,
                        0, /* no cart type */
                        0,
                        1, /* item 11 seen once before */
                        1,
                        log1p(1.0),
                        2, /* category 21 twice in a row */
                        0,
                        1,
                        sin(2 * M_PI * 1060000 / 86400000.0),
                        cos(2 * M_PI * 1060000 / 86400000.0),
                        sin(2 * M_PI * 3 / 7.0),
                        cos(2 * M_PI * 3 / 7.0),
                        log1p(10.0),
                        0};
    for (int i = 0; i < 26; i++)
        if (i < 3) /* the counters, rounded twice */
            CHECK_COUNTER(x[1][i], want1[i], 2);
        else
            CHECK_NEAR(x[1][i], want1[i], 1e-6);
    /* the resolved vector is e0's row through fp16 */
    for (int i = 0; i < 26; i++)
        CHECK(rb.x[i] == pend_rt(&p, x[0][i]), "e0 pending %d", i);
    CHECK(x[0][4] == 0 && x[0][5] == 0 && x[0][6] == 1, "e0 recency flags");
    CHECK(x[0][9] == 1 && x[0][24] == 0 && x[0][25] == 1, "e0 session_new / price missing");
    CHECK(x[0][10] == 0 && x[0][11] == 1 && x[0][14] == 0 && x[0][17] == 1,
          "e0: first event (gap missing), no revisit, category run 1");

    /* e2: resolves e1 with click (10 s < 30 s); e3 late: no label. */
    CHECK(nx_store_update(store, ev + 2, 2, 0, &x[2][0], st, &rb.ex) == 0, "update");
    CHECK(rb.ex.n == 1 && rb.label[0] == 0 && rb.ts[0] == t0 + 60000, "e1 label %d", rb.label[0]);
    CHECK_COUNTER(x[2][0], log1p(exp(-70.0 / 60) + 1), 3);
    CHECK_COUNTER(x[2][1], log1p(exp(-10.0 / 60)), 3);
    CHECK_COUNTER(x[2][2], log1p(20 * exp(-10.0 / 60)), 3);
    CHECK(x[2][14] == 0 && x[2][15] == 1, "e2 revisits item %g cat %g", (double)x[2][14],
          (double)x[2][15]);
    CHECK_NEAR(x[2][10], log1p(10.0), 1e-6);
    CHECK(x[2][11] == 0 && x[2][17] == 3, "e2 gap flag %g, category run %g", (double)x[2][11],
          (double)x[2][17]);
    CHECK(x[3][10] == 0 && x[3][11] == 0 && x[3][17] == 3 && x[3][14] == 0,
          "late e3: gap 0 %g, run unchanged %g, new item %g", (double)x[3][10], (double)x[3][17],
          (double)x[3][14]);
    CHECK_COUNTER(x[3][0], log1p(exp(-70.0 / 60) + 1 + exp(-5.0 / 60)), 4);
    CHECK(x[3][3] == 0, "since_click after late click stays 0: %g", (double)x[3][3]);
    CHECK_NEAR(x[3][7], log1p(3.0), 1e-6); /* late event not in the session */
    CHECK(x[3][9] == 0, "late event is no new session");
    CHECK(st[1] == NX_STORE_OK, "status %d", st[1]);

    /* e4: new session by gap; resolves e2 (130 s >= H) to none. */
    CHECK(nx_store_update(store, ev + 4, 1, 0, &x[4][0], st, &rb.ex) == 0, "update");
    CHECK(rb.ex.n == 1 && rb.label[0] == 2 && rb.ts[0] == t0 + 70000, "e2 label %d", rb.label[0]);
    CHECK(x[4][9] == 1 && x[4][7] == (float)log1p(1.0) && x[4][8] == 0, "e4 new session");
    CHECK(x[4][14] == 1, "item 12 is among the 2 recent (14, 12), seen once");
    CHECK_NEAR(x[4][10], log1p(130.0), 1e-6);
    CHECK(x[4][17] == 1, "new session: category run restarts at 1: %g", (double)x[4][17]);

    /* expiry: nothing before t4 + H, then e4 as none */
    CHECK(nx_store_expire_labels(store, t0 + 200000 + 29999, &rb.ex) == 0, "early expiry");
    CHECK(nx_store_expire_labels(store, t0 + 230000, &rb.ex) == 1 && rb.label[0] == 2 &&
              rb.ts[0] == t0 + 200000,
          "expiry");
    CHECK(nx_store_expire_labels(store, t0 + 230000, &rb.ex) == 0, "expired twice");

    /* watermark: late and too old */
    nx_event_t late = mk_event("u2", 0, 5000000, 0, 0, 0, NAN, 0, 0);
    nx_event_t old = mk_event("u2", 0, 5000000 - 60001, 0, 0, 0, NAN, 0, 0);
    CHECK(nx_store_update(store, &late, 1, 5000001, &x[0][0], st, &rb.ex) == 0 &&
              st[0] == NX_STORE_LATE,
          "late status %d", st[0]);
    CHECK(nx_store_update(store, &old, 1, 5000000, &x[0][0], st, &rb.ex) == 0 &&
              st[0] == NX_STORE_DROPPED && x[0][0] == 0,
          "dropped status %d", st[0]);
    nx_event_t bad = mk_event("u2", 2, 5000000, 0, 0, 0, NAN, 0, 0);
    CHECK(nx_store_update(store, &bad, 1, 0, &x[0][0], st, &rb.ex) == 0 &&
              st[0] == NX_STORE_INVALID,
          "invalid type status %d", st[0]);
    nx_store_stats_t s;
    nx_store_stats(store, &s);
    CHECK(s.users == 2 && s.late == 1 && s.dropped == 1 && s.invalid == 1 && s.events == 6,
          "stats users %llu late %llu dropped %llu invalid %llu events %llu",
          (unsigned long long)s.users, (unsigned long long)s.late, (unsigned long long)s.dropped,
          (unsigned long long)s.invalid, (unsigned long long)s.events);
    /* TTL boundary: a user expires once clock + ttl <= now (u2 clock 5000000) */
    CHECK(nx_store_maintain(store, 5000000 + 3600000 - 1, 0) == 1, "u1 expires, u2 stays");
    CHECK(nx_store_contains(store, nx_store_user_hash(store, "u2", 2)), "u2 expired early");
    CHECK(nx_store_maintain(store, 5000000 + 3600000, 0) == 1, "u2 expires at clock + ttl");
    nx_store_stats(store, &s);
    CHECK(s.users == 0 && s.expirations == 2 && s.labels_lost == 1,
          "users %llu expirations %llu lost %llu", (unsigned long long)s.users,
          (unsigned long long)s.expirations, (unsigned long long)s.labels_lost);
    CHECK(rb.ex.cap >= 1 && nx_store_update(store, ev, 9, 0, &x[0][0], st, &rb.ex) == -1,
          "cap < n accepted");
    nx_store_destroy(store);
    exbuf_free(&rb);
}

/* Index of the feature named name, or dim if absent. */
static size_t feat_index(const nx_store_t *store, const char *name) {
    size_t i = 0;
    while (i < nx_store_dim(store) && strcmp(nx_store_feature_name(store, i), name) != 0)
        i++;
    return i;
}

/* Cart adds, the item revisit cap and the category run, by hand: one user,
 * one item and category throughout, events 10 s apart; the last one opens a
 * new session (another session id). */
static void test_hand_session_counts(void) {
    nx_store_params_t p;
    nx_store_params_default(&p); /* click, cart (cart_type 1), purchase (value_type 2) */
    p.normalise = 0;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    size_t dim = nx_store_dim(store);
    size_t i_carts = feat_index(store, "session_carts"),
           i_open = feat_index(store, "session_cart_open");
    size_t i_gap = feat_index(store, "since_prev_event_s");
    size_t i_miss = feat_index(store, "since_prev_event_missing");
    size_t i_item = feat_index(store, "item_revisits"), i_run = feat_index(store, "category_run");
    CHECK(i_carts < dim && i_open < dim && i_gap < dim && i_miss < dim && i_item < dim &&
              i_run < dim,
          "feature names");
    if (i_carts >= dim || i_open >= dim || i_gap >= dim || i_miss >= dim || i_item >= dim ||
        i_run >= dim) {
        nx_store_destroy(store);
        return;
    }
    enum { N = 8 };
    static const int type[N] = {0, 1, 1, 2, 1, 0, 0, 0};
    /* session 77 throughout, 78 for the last event */
    static const double carts[N] = {0, 1, 2, 0, 1, 1, 1, 0};
    static const double item[N] = {0, 1, 2, 3, 3, 3, 3, 3}; /* capped at 3 */
    static const double run[N] = {1, 2, 3, 4, 5, 5, 5, 1};  /* capped at 5; new session: 1 */
    const int64_t t0 = 1700000000000LL;
    nx_event_t ev[N];
    for (int i = 0; i < N; i++)
        ev[i] = mk_event("c1", type[i], t0 + 10000 * i, 1234567, 7654321, i < N - 1 ? 77 : 78, NAN,
                         0, 0);
    float *x = calloc((size_t)N * dim, sizeof *x);
    exbuf_t rb;
    exbuf_init(&rb, dim, N);
    CHECK(nx_store_update(store, ev, N, 0, x, NULL, &rb.ex) == 0, "update");
    for (int i = 0; i < N; i++) {
        const float *r = x + (size_t)i * dim;
        CHECK_NEAR(r[i_carts], log1p(carts[i]), 1e-6);
        CHECK(r[i_open] == (carts[i] > 0), "event %d cart open %g", i, (double)r[i_open]);
        CHECK_NEAR(r[i_gap], i ? log1p(10.0) : 0.0, 1e-6);
        CHECK(r[i_miss] == (i == 0), "event %d gap missing %g", i, (double)r[i_miss]);
        CHECK(r[i_item] == item[i], "event %d item revisits %g want %g", i, (double)r[i_item],
              item[i]);
        CHECK(r[i_run] == run[i], "event %d category run %g want %g", i, (double)r[i_run], run[i]);
    }
    free(x);
    exbuf_free(&rb);
    nx_store_destroy(store);
}

/* --- brute-force reference ------------------------------------------------------ */

#define REF_MAX_USERS 512
#define REF_MAX_HIST  4096

typedef struct ref_user {
    char id[16];
    nx_event_t hist[REF_MAX_HIST]; /* accepted events since the user (re)appeared */
    int n;
    int pending; /* holds a pending example */
    int64_t pending_ts;
    long pending_row; /* row of X holding the pending vector */
    int present;      /* in the store (as far as the reference knows) */
} ref_user_t;

typedef struct ref {
    const nx_store_params_t *p;
    ref_user_t *users;
    int n_users;
    int fifo[1 << 16]; /* expiry order: user indices, -1 = removed */
    int fifo_head, fifo_tail;
} ref_t;

/* The store's 16-bit tag of an id (store_int.h), spelled out. */
static uint32_t ref_fp(uint64_t h) {
    uint32_t f = (uint32_t)(h ^ (h >> 32)) | 1u;
    return ((f ^ (f >> 16)) & 0xffffu) | 1u;
}

/* 1 if fp is among the k most recent distinct fingerprints of hist[0..n). */
static int ref_recent(const nx_event_t *hist, int n, int k, int cat, uint64_t id) {
    uint32_t seen[NX_STORE_MAX_RECENT];
    int ns = 0;
    if (!id || k == 0)
        return 0;
    for (int j = n - 1; j >= 0 && ns < k; j--) {
        uint64_t v = cat ? hist[j].category : hist[j].item;
        if (!v)
            continue;
        uint32_t f = ref_fp(v);
        int dup = 0;
        for (int s = 0; s < ns; s++)
            dup |= seen[s] == f;
        if (!dup)
            seen[ns++] = f;
    }
    for (int s = 0; s < ns; s++)
        if (seen[s] == ref_fp(id))
            return 1;
    return 0;
}

/* Events on item before hist[i] while it stayed among the k most recent
 * distinct items: each earlier event on it counts while the one after it
 * found it still recent. */
static int ref_item_views(const nx_event_t *hist, int i, int k, uint64_t item) {
    int views = 0;
    while (item && ref_recent(hist, i, k, 0, item)) {
        int j = i - 1;
        while (!(hist[j].item && ref_fp(hist[j].item) == ref_fp(item)))
            j--;
        views++;
        i = j;
    }
    return views;
}

static int ref_min(int a, int b) {
    return a < b ? a : b;
}

/* Features of the user after hist[0..n) (the last one is the current event),
 * recomputed from scratch. */
static void ref_features(const nx_store_params_t *p, const nx_event_t *hist, int n, double *out) {
    const nx_event_t *e = &hist[n - 1];
    int64_t T = INT64_MIN;
    for (int j = 0; j < n; j++)
        if (hist[j].ts_ms > T)
            T = hist[j].ts_ms;
    /* sessions: replay the in-order events */
    int64_t clock = 0, sess_start = 0;
    uint32_t sess_fp = 0;
    int sess_len = 0, sess_rev = 0, cur_new = 0, cur_late = 0;
    int carts = 0, run = 0;
    uint32_t run_fp = 0;
    int64_t cur_gap = 0; /* from the previous in-order event */
    for (int j = 0; j < n; j++) {
        int late = j > 0 && hist[j].ts_ms < clock;
        if (j == n - 1)
            cur_late = late;
        if (late)
            continue;
        int64_t gap = j ? hist[j].ts_ms - clock : 0;
        uint32_t sfp = hist[j].session ? ref_fp(hist[j].session) : 0;
        int nw = j == 0 || sfp != sess_fp || (!sfp && gap > p->session_gap_ms);
        if (nw) {
            sess_start = hist[j].ts_ms;
            sess_len = sess_rev = 0;
            sess_fp = sfp;
            carts = run = 0;
            run_fp = 0;
        }
        sess_len++;
        sess_rev += ref_recent(hist, j, p->recent_items, 0, hist[j].item);
        if (hist[j].type == p->cart_type)
            carts++;
        else if (hist[j].type == p->value_type)
            carts = 0;
        uint32_t cf = hist[j].category ? ref_fp(hist[j].category) : 0;
        run = cf && cf == run_fp ? run + 1 : cf ? 1 : 0;
        run_fp = cf;
        clock = hist[j].ts_ms;
        if (j == n - 1) {
            cur_new = nw;
            cur_gap = gap;
        }
    }
    size_t d = 0;
    int nt = p->n_types;
    if (p->families & NX_FEAT_COUNTS)
        for (int w = 0; w < p->n_windows; w++)
            for (int t = 0; t < nt; t++) {
                double c = 0;
                for (int j = 0; j < n; j++)
                    if (hist[j].type == t)
                        c += exp(-(double)(T - hist[j].ts_ms) / (double)p->window_ms[w]);
                out[d++] = log1p(c);
            }
    if (p->families & NX_FEAT_VALUE)
        for (int w = 0; w < p->n_windows; w++) {
            double v = 0;
            for (int j = 0; j < n; j++) {
                const nx_event_t *h = &hist[j];
                if ((p->value_type < 0 || h->type == p->value_type) && h->price >= 0)
                    v += h->price * (h->quantity > 0 ? h->quantity : 1) *
                         exp(-(double)(T - h->ts_ms) / (double)p->window_ms[w]);
            }
            out[d++] = log1p(v);
        }
    if (p->families & NX_FEAT_RECENCY)
        for (int t = 0; t < nt; t++) {
            int64_t last = INT64_MIN;
            for (int j = 0; j < n; j++)
                if (hist[j].type == t && hist[j].ts_ms > last)
                    last = hist[j].ts_ms;
            out[d++] = last == INT64_MIN ? 0 : log1p((double)(T - last) / 1000.0);
            out[d++] = last == INT64_MIN ? 1 : 0;
        }
    if (p->families & NX_FEAT_SESSION) {
        out[d++] = log1p(sess_len);
        out[d++] = log1p((double)(T - sess_start) / 1000.0);
        out[d++] = cur_late ? 0 : cur_new;
        out[d++] = cur_late ? 0 : log1p((double)cur_gap / 1000.0);
        out[d++] = n == 1; /* the user's first event */
        out[d++] = log1p(ref_min(carts, 255));
        out[d++] = carts > 0;
    }
    if (p->families & NX_FEAT_REVISITS) {
        out[d++] =
            ref_min(ref_item_views(hist, n - 1, p->recent_items, e->item), NX_STORE_REVISIT_CAP);
        out[d++] = ref_recent(hist, n - 1, p->recent_items, 1, e->category);
        out[d++] = log1p(ref_min(sess_rev, 255));
        out[d++] = ref_min(run, NX_STORE_CATEGORY_RUN_CAP);
    }
    if (p->families & NX_FEAT_ONEHOT)
        for (int t = 0; t < nt; t++)
            out[d++] = t == e->type;
    if (p->families & NX_FEAT_TIME) {
        int64_t day = 86400000, days = e->ts_ms / day;
        if (e->ts_ms % day < 0)
            days--;
        double ms = (double)(e->ts_ms - days * day);
        int dow = (int)(((days + 3) % 7 + 7) % 7);
        out[d++] = sin(2 * M_PI * ms / 86400000.0);
        out[d++] = cos(2 * M_PI * ms / 86400000.0);
        out[d++] = sin(2 * M_PI * dow / 7.0);
        out[d++] = cos(2 * M_PI * dow / 7.0);
    }
    if (p->families & NX_FEAT_PRICE) {
        out[d++] = e->price >= 0 ? log1p(e->price) : 0;
        out[d++] = e->price >= 0 ? 0 : 1;
    }
}

static void ref_forget(ref_t *r, int u) {
    r->users[u].n = 0;
    r->users[u].pending = 0;
    r->users[u].present = 0;
    for (int k = r->fifo_head; k < r->fifo_tail; k++)
        if (r->fifo[k] == u)
            r->fifo[k] = -1;
}

typedef struct stream_cfg {
    int n_users, n_events, batch;
    int64_t lateness_ms;
    uint64_t seed;
    int check_cap; /* after each batch, forget users the store evicted */
} stream_cfg_t;

/* The score "published" for event i of a stream, class c: any function of
 * both will do, as long as every event's differs. */
static float ref_score(long i, int c) {
    return (float)((i * 37 + c * 11) % 1000) / 1000.0f;
}

/* fp16 round trip, as the store keeps scores. */
static float rt16(float f) {
    return nx_half_to_float(nx_half_from_float(f));
}

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* Generates a random stream (Zipf-ish users, out-of-order and too-old events,
 * sessions, items, prices), runs it through the store and the reference, and
 * compares every vector, label and expiry. */
static void run_reference(const nx_store_params_t *p, const stream_cfg_t *cfg) {
    char err[256];
    struct {
        long n;
        double sum, sum2, max;
    } cnt_err = {0, 0, 0, 0};
    nx_store_t *store = nx_store_new(p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    size_t dim = nx_store_dim(store);
    ref_t *r = calloc(1, sizeof *r);
    r->p = p;
    r->n_users = cfg->n_users;
    r->users = calloc((size_t)cfg->n_users, sizeof *r->users);
    for (int u = 0; u < cfg->n_users; u++)
        snprintf(r->users[u].id, sizeof r->users[u].id, "user-%d", u);
    nx_event_t *ev = calloc((size_t)cfg->n_events, sizeof *ev);
    int *ev_user = calloc((size_t)cfg->n_events, sizeof *ev_user);
    float *X = calloc((size_t)cfg->n_events * dim, sizeof *X);
    uint8_t *st = calloc((size_t)cfg->n_events, 1);
    int ns = p->n_scores;
    float *S = calloc((size_t)cfg->batch * (size_t)(ns ? ns : 1), sizeof *S);
    double *want = calloc(dim, sizeof *want);
    exbuf_t rb, xb;
    exbuf_init(&rb, dim, 4096);
    exbuf_init(&xb, dim, 4096);
    uint64_t s = cfg->seed;
    int64_t now = 1700000000000LL; /* Nov 2023, ms */
    int64_t *last_ts = calloc((size_t)cfg->n_users, sizeof *last_ts);
    for (int i = 0; i < cfg->n_events; i++) {
        now += (int64_t)(lcg(&s) % 30000); /* 0-30 s between events */
        /* Zipf-ish: the square of a uniform favours low user numbers */
        double uu = (double)(lcg(&s) % 1000000) / 1e6;
        int u = (int)(uu * uu * cfg->n_users);
        int64_t ts = now;
        uint64_t k = lcg(&s) % 100;
        if (k < 10)
            ts -= (int64_t)(lcg(&s) % (2 * 3600000)); /* out of order by up to 2 h */
        else if (k < 12)
            ts -= 30LL * 3600000; /* far too old */
        else if (k < 15)
            ts -= p->window_ms[0]; /* exactly one window back */
        else if (k < 18 && last_ts[u])
            ts = last_ts[u] + p->horizon_ms; /* exactly H after the user's last */
        else if (k < 21 && last_ts[u])
            ts = last_ts[u] + p->session_gap_ms; /* exactly the session gap */
        if (ts > last_ts[u])
            last_ts[u] = ts;
        int type = (int)(lcg(&s) % (uint64_t)p->n_types);
        uint64_t item = lcg(&s) % 4 ? 1000 + lcg(&s) % 12 : 0;
        uint64_t cat = lcg(&s) % 3 ? 2000 + lcg(&s) % 4 : 0;
        uint64_t sess = lcg(&s) % 2 ? 3000 + (uint64_t)(now / 600000) % 3 : 0;
        double price = lcg(&s) % 3 ? (double)(lcg(&s) % 10000) / 100.0 : NAN;
        int qty = (int)(lcg(&s) % 3);
        ev[i] = mk_event(r->users[u].id, type, ts, item, cat, sess, price, qty, u % 4);
        ev_user[i] = u;
    }
    free(last_ts);
    int64_t max_ts = INT64_MIN;
    for (int b0 = 0; b0 < cfg->n_events; b0 += cfg->batch) {
        int bn = cfg->n_events - b0 < cfg->batch ? cfg->n_events - b0 : cfg->batch;
        int64_t wm = max_ts == INT64_MIN ? INT64_MIN / 2 : max_ts - cfg->lateness_ms;
        CHECK(nx_store_update(store, ev + b0, (size_t)bn, wm, X + (size_t)b0 * dim, st + b0,
                              &rb.ex) == 0,
              "update");
        /* the scores published for this batch, kept with pending examples */
        for (int i = 0; i < bn; i++)
            for (int c = 0; c < ns; c++)
                S[(size_t)i * ns + c] = ref_score(b0 + i, c);
        nx_store_set_scores(store, ev + b0, (size_t)bn, st + b0, S);
        size_t rpos = 0;
        for (int i = b0; i < b0 + bn; i++) {
            ref_user_t *ru = &r->users[ev_user[i]];
            const nx_event_t *e = &ev[i];
            int want_st = e->ts_ms < wm - p->window_ms[p->n_windows - 1] ? NX_STORE_DROPPED
                          : e->ts_ms < wm                                ? NX_STORE_LATE
                                                                         : NX_STORE_OK;
            CHECK(st[i] == want_st, "event %d status %d want %d", i, st[i], want_st);
            if (e->ts_ms > max_ts)
                max_ts = e->ts_ms;
            if (want_st == NX_STORE_DROPPED)
                continue;
            int64_t clock = INT64_MIN;
            for (int j = 0; j < ru->n; j++)
                if (ru->hist[j].ts_ms > clock)
                    clock = ru->hist[j].ts_ms;
            int in_order = ru->n == 0 || e->ts_ms >= clock;
            if (ru->n >= REF_MAX_HIST) {
                CHECK(0, "reference history full");
                goto out;
            }
            ru->hist[ru->n++] = *e;
            ru->present = 1;
            ref_features(p, ru->hist, ru->n, want);
            const float *x = X + (size_t)i * dim;
            for (size_t f = 0; f < dim; f++) {
                const char *name = nx_store_feature_name(store, f);
                double err = x[f] - want[f];
                if (!strncmp(name, "cnt_", 4) || !strncmp(name, "value_", 6)) {
                    /* bfloat16 counters: see the bounds after the loop */
                    cnt_err.n++;
                    cnt_err.sum += err;
                    cnt_err.sum2 += err * err;
                    if (fabs(err) > cnt_err.max)
                        cnt_err.max = fabs(err);
                    continue;
                }
                CHECK(fabs(err) <= 2e-4 * (1 + fabs(want[f])),
                      "event %d user %d feature %s = %.7g, want %.7g", i, ev_user[i], name,
                      (double)x[f], want[f]);
            }
            if (!in_order)
                continue;
            if (ru->pending) {
                int32_t lab = e->ts_ms - ru->pending_ts < p->horizon_ms ? e->type : p->n_types;
                CHECK(rpos < rb.ex.n, "event %d: missing resolved example", i);
                if (rpos < rb.ex.n) {
                    CHECK(rb.label[rpos] == lab && rb.ts[rpos] == ru->pending_ts &&
                              rb.user[rpos] == nx_store_user_hash(store, ru->id, strlen(ru->id)),
                          "event %d: resolved label %d ts %lld, want %d ts %lld", i, rb.label[rpos],
                          (long long)rb.ts[rpos], lab, (long long)ru->pending_ts);
                    const float *px = X + (size_t)ru->pending_row * dim;
                    for (size_t f = 0; f < dim; f++)
                        CHECK(rb.x[rpos * dim + f] == pend_rt(p, px[f]),
                              "resolved vector feature %zu", f);
                    for (int c = 0; c < ns; c++)
                        CHECK(rb.score[rpos * ns + c] == rt16(ref_score(ru->pending_row, c)),
                              "event %d: resolved score %d = %g, want %g (event %ld)", i, c,
                              (double)rb.score[rpos * ns + c],
                              (double)rt16(ref_score(ru->pending_row, c)), ru->pending_row);
                }
                rpos++;
                for (int k = r->fifo_head; k < r->fifo_tail; k++)
                    if (r->fifo[k] == ev_user[i])
                        r->fifo[k] = -1;
            }
            ru->pending = 1;
            ru->pending_ts = e->ts_ms;
            ru->pending_row = i;
            r->fifo[r->fifo_tail++] = ev_user[i];
        }
        if (cfg->check_cap) /* one event per batch: trace the user it evicted */
            for (int u = 0; u < r->n_users; u++)
                if (r->users[u].present &&
                    !nx_store_contains(
                        store, nx_store_user_hash(store, r->users[u].id, strlen(r->users[u].id))))
                    ref_forget(r, u);
        CHECK(rpos == rb.ex.n, "batch at %d: %zu resolved, reference %zu", b0, rb.ex.n, rpos);
        /* label expiry, in the reference's FIFO order */
        nx_store_expire_labels(store, wm, &xb.ex);
        size_t xpos = 0;
        while (r->fifo_head < r->fifo_tail) {
            int u = r->fifo[r->fifo_head];
            if (u < 0) {
                r->fifo_head++;
                continue;
            }
            if (r->users[u].pending_ts + p->horizon_ms > wm)
                break;
            CHECK(xpos < xb.ex.n && xb.label[xpos] == p->n_types &&
                      xb.ts[xpos] == r->users[u].pending_ts,
                  "expiry %zu of %zu: user %d ts %lld", xpos, xb.ex.n, u,
                  (long long)r->users[u].pending_ts);
            for (int c = 0; c < ns && xpos < xb.ex.n; c++)
                CHECK(xb.score[xpos * ns + c] == rt16(ref_score(r->users[u].pending_row, c)),
                      "expiry %zu: score %d = %g, want %g", xpos, c,
                      (double)xb.score[xpos * ns + c],
                      (double)rt16(ref_score(r->users[u].pending_row, c)));
            xpos++;
            r->users[u].pending = 0;
            r->fifo_head++;
        }
        CHECK(xpos == xb.ex.n, "%zu expired, reference %zu", xb.ex.n, xpos);
        if (r->fifo_head > (1 << 15)) { /* compact the reference FIFO */
            memmove(r->fifo, r->fifo + r->fifo_head,
                    (size_t)(r->fifo_tail - r->fifo_head) * sizeof(int));
            r->fifo_tail -= r->fifo_head;
            r->fifo_head = 0;
        }
        /* TTL: a full maintenance pass removes every idle user */
        nx_store_maintain(store, wm, 0);
        for (int u = 0; u < r->n_users; u++) {
            ref_user_t *ru = &r->users[u];
            if (!ru->present)
                continue;
            int64_t clock = INT64_MIN;
            for (int j = 0; j < ru->n; j++)
                if (ru->hist[j].ts_ms > clock)
                    clock = ru->hist[j].ts_ms;
            int gone = clock <= wm - p->user_ttl_ms;
            int in = nx_store_contains(store, nx_store_user_hash(store, ru->id, strlen(ru->id)));
            CHECK(in == !gone, "user %d: in store %d, expired by reference %d", u, in, gone);
            if (gone)
                ref_forget(r, u);
        }
    }
    nx_store_stats_t sst;
    nx_store_stats(store, &sst);
    int present = 0, pend = 0;
    for (int u = 0; u < r->n_users; u++) {
        present += r->users[u].present;
        pend += r->users[u].present && r->users[u].pending;
    }
    CHECK(sst.users == (uint64_t)present, "users %llu, reference %d", (unsigned long long)sst.users,
          present);
    CHECK(sst.pending == (uint64_t)pend, "pending %llu, reference %d",
          (unsigned long long)sst.pending, pend);
    if (cfg->check_cap)
        CHECK(sst.evictions > 0 && sst.users <= p->max_users, "cap: evictions %llu users %llu",
              (unsigned long long)sst.evictions, (unsigned long long)sst.users);
    if (cnt_err.n) {
        double mean = cnt_err.sum / cnt_err.n, rms = sqrt(cnt_err.sum2 / cnt_err.n);
        /* fp16 counters rounded stochastically: unbiased (rounding to
         * nearest or down drifts), typically a fraction of one step
         * (2^-10 = 0.001), a few steps at worst (one user's errors decay
         * with the window). Measured: mean |.| < 3e-5, rms < 4e-4, max
         * < 0.004. */
        CHECK(fabs(mean) <= 1e-4 && rms <= 1e-3 && cnt_err.max <= 0.01,
              "counter features: error mean %.3g rms %.3g max %.3g over %ld", mean, rms,
              cnt_err.max, cnt_err.n);
    }
    CHECK(sst.dropped > 0 && sst.late > 0 && (cfg->check_cap || sst.expirations > 0) &&
              sst.expired_labels > 0,
          "stream exercised too little: dropped %llu late %llu expirations %llu expired %llu",
          (unsigned long long)sst.dropped, (unsigned long long)sst.late,
          (unsigned long long)sst.expirations, (unsigned long long)sst.expired_labels);
out:
    exbuf_free(&rb);
    exbuf_free(&xb);
    free(want);
    free(S);
    free(st);
    free(X);
    free(ev_user);
    free(ev);
    free(r->users);
    free(r);
    nx_store_destroy(store);
}

static void ref_params(nx_store_params_t *p) {
    nx_store_params_default(p);
    p->window_ms[0] = 60000; /* short windows, so streams cross their boundaries */
    p->window_ms[1] = 600000;
    p->window_ms[2] = 3600000;
    p->session_gap_ms = 300000;
    p->horizon_ms = 120000;
    p->user_ttl_ms = 2 * 3600000;
    p->normalise = 0;
    p->value_type = -1;
    p->n_scores = 4;
}

static void test_reference(void) {
    nx_store_params_t p;
    ref_params(&p);
    stream_cfg_t cfg = {60, 6000, 32, 600000, 42, 0};
    run_reference(&p, &cfg); /* batches of 32 */
    cfg.batch = 7;
    cfg.seed = 43;
    p.recent_items = 1;
    p.value_type = 2;
    p.n_scores = 1;          /* one 16-bit slot: the smallest */
    run_reference(&p, &cfg); /* odd batches, 1 recent item */
    /* 2 types x 3 windows: 9 decayed counters, not a multiple of 4, so the
     * store takes its scalar counter path (the defaults take the 4-lane one) */
    ref_params(&p);
    p.n_types = 2;
    p.cart_type = 0;
    p.value_type = 1;
    cfg.batch = 32;
    cfg.seed = 45;
    run_reference(&p, &cfg);
    /* cap: 40 of 120 users, one event per batch so evictions can be traced */
    ref_params(&p);
    p.max_users = 40;
    stream_cfg_t capcfg = {120, 3000, 1, 600000, 44, 1};
    run_reference(&p, &capcfg);
}

/* --- scores kept with pending examples ---------------------------------------- */

/* Checks row r of ex's scores against want (k values) within fp16 rounding. */
#define CHECK_SCORES(ex, r, want, k)                                                               \
    for (int c_ = 0; c_ < (k); c_++)                                                               \
    CHECK(fabsf((ex).score[(size_t)(r) * (k) + c_] - (want)[c_]) <= 1.0f / 2048 * (want)[c_] &&    \
              ((ex).score[(size_t)(r) * (k) + c_] == 0) == ((want)[c_] == 0),                      \
          "row %d score %d = %g, want %g", (int)(r), c_,                                           \
          (double)(ex).score[(size_t)(r) * (k) + c_], (double)(want)[c_])

static void test_scores(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.n_scores = 3;
    p.normalise = 0;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    nx_store_t *twin = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store && twin, "new: %s", err);
    if (!store || !twin)
        return;
    size_t dim = nx_store_dim(store);
    const int64_t t0 = 1700000000000LL;
    exbuf_t rb, xb;
    exbuf_init(&rb, dim, 16);
    exbuf_init(&xb, dim, 16);
    float X[8 * 64];
    uint8_t st[8];
    float S[8 * 3];
    for (int i = 0; i < 8 * 3; i++)
        S[i] = 0.1f + 0.01f * (float)i;
    const float zero[3] = {0, 0, 0};

    /* Batch 1: a@t0, b@t0, a@t0+1s (resolves a's first, made in this batch),
     * a@t0+0.5s (out of order for a: makes nothing). */
    nx_event_t b1[4] = {mk_event("a", 0, t0, 1, 1, 0, NAN, 0, 0),
                        mk_event("b", 0, t0, 1, 1, 0, NAN, 0, 1),
                        mk_event("a", 1, t0 + 1000, 2, 1, 0, NAN, 0, 0),
                        mk_event("a", 0, t0 + 500, 3, 1, 0, NAN, 0, 0)};
    CHECK(nx_store_update(store, b1, 4, 0, X, st, &rb.ex) == 0 && rb.ex.n == 1, "b1: %zu", rb.ex.n);
    CHECK_SCORES(rb.ex, 0, zero, 3); /* unknown until set_scores */
    nx_store_set_scores(store, b1, 4, st, S);
    CHECK_SCORES(rb.ex, 0, S + 0 * 3, 3); /* a@t0 gets event 0's scores */

    /* Batch 2: b@t0+2s resolves b (event 1 of batch 1); a@t0+1s twice: the
     * first resolves a's (event 2 of batch 1), the second the first's; the
     * later one's scores stay pending. */
    nx_event_t b2[3] = {mk_event("b", 1, t0 + 2000, 1, 1, 0, NAN, 0, 1),
                        mk_event("a", 0, t0 + 1000, 4, 1, 0, NAN, 0, 0),
                        mk_event("a", 1, t0 + 1000, 5, 1, 0, NAN, 0, 0)};
    const float *S2 = S + 12; /* other values for batch 2 */
    CHECK(nx_store_update(store, b2, 3, 0, X, st, &rb.ex) == 0 && rb.ex.n == 3, "b2: %zu", rb.ex.n);
    nx_store_set_scores(store, b2, 3, st, S2);
    CHECK_SCORES(rb.ex, 0, S + 1 * 3, 3);
    CHECK_SCORES(rb.ex, 1, S + 2 * 3, 3);
    CHECK_SCORES(rb.ex, 2, S2 + 1 * 3, 3);

    /* Save (whole and one partition), restore into the twin, expire both:
     * b (batch 2 event 0) then a (event 2, later wins over event 1). */
    membuf_t m = {0}, mp = {0};
    CHECK(nx_store_save(store, mem_write, &m) == 0 &&
              nx_store_save_partition(store, 0, mem_write, &mp) == 0,
          "save");
    CHECK(nx_store_restore(twin, mem_read, &m, err, sizeof err) == 0, "restore: %s", err);
    nx_store_t *both[2] = {store, twin};
    for (int s = 0; s < 2; s++) {
        CHECK(nx_store_expire_labels(both[s], t0 + 3600000, &xb.ex) == 2, "expired %zu", xb.ex.n);
        CHECK(xb.user[0] == nx_store_user_hash(store, "b", 1), "expiry order");
        CHECK_SCORES(xb.ex, 0, S2 + 0 * 3, 3);
        CHECK_SCORES(xb.ex, 1, S2 + 2 * 3, 3);
    }
    /* partition 0 (user a) restored into the emptied store */
    nx_store_drop_partition(store, 0);
    CHECK(nx_store_restore_partition(store, mem_read, &mp, err, sizeof err) == 0, "restore: %s",
          err);
    CHECK(nx_store_expire_labels(store, t0 + 3600000, &xb.ex) == 1, "partition: %zu", xb.ex.n);
    CHECK_SCORES(xb.ex, 0, S2 + 2 * 3, 3);

    /* Scores never set (no set_scores before the next update) stay 0; a
     * set_scores given another batch than the update's falls back to
     * lookups: pending examples get their scores, in-batch resolved rows 0. */
    nx_event_t b3[1] = {mk_event("c", 0, t0 + 5000, 1, 1, 0, NAN, 0, 2)};
    nx_store_update(store, b3, 1, 0, X, st, &rb.ex);
    nx_event_t b4[3] = {mk_event("d", 0, t0 + 5000, 1, 1, 0, NAN, 0, 2),
                        mk_event("d", 0, t0 + 6000, 1, 1, 0, NAN, 0, 2),
                        mk_event("d", 0, t0 + 5500, 1, 1, 0, NAN, 0, 2)};
    nx_event_t b4copy[3];
    memcpy(b4copy, b4, sizeof b4);
    CHECK(nx_store_update(store, b4, 3, 0, X, st, &rb.ex) == 0 && rb.ex.n == 1, "b4");
    nx_store_set_scores(store, b4copy, 3, st, S);
    CHECK_SCORES(rb.ex, 0, zero, 3);
    CHECK(nx_store_expire_labels(store, t0 + 3600000, &xb.ex) == 2, "expired %zu", xb.ex.n);
    CHECK_SCORES(xb.ex, 0, zero, 3);      /* c: never set */
    CHECK_SCORES(xb.ex, 1, S + 1 * 3, 3); /* d: event 1, not the late event 2 */

    /* A stream of another n_scores is refused. */
    p.n_scores = 2;
    nx_store_t *other = nx_store_new(&p, test_key, err, sizeof err);
    m.pos = 0;
    CHECK(other && nx_store_restore(other, mem_read, &m, err, sizeof err) == -1,
          "restore with another n_scores accepted");
    p.n_scores = NX_STORE_MAX_SCORES + 1;
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "n_scores 17 accepted");
    nx_store_destroy(other);
    free(m.data);
    free(mp.data);
    exbuf_free(&rb);
    exbuf_free(&xb);
    nx_store_destroy(store);
    nx_store_destroy(twin);
}

/* Scores of every width come back as their exact fp16 round trip (the
 * portable conversion of half.h), whichever conversion the store uses: 1-3
 * portable, 4-7 two overlapping 4-lane F16C ones, 8 and more 8-lane ones
 * with an overlapping tail. Values include ties and subnormal halves. */
static void test_score_widths(void) {
    static const int widths[] = {1, 3, 4, 5, 7, 8, 11, 16};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        int k = widths[w];
        nx_store_params_t p;
        nx_store_params_default(&p);
        p.n_scores = k;
        char err[256];
        nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
        CHECK(store != NULL, "new: %s", err);
        if (!store)
            continue;
        size_t dim = nx_store_dim(store);
        exbuf_t rb, xb;
        exbuf_init(&rb, dim, 4);
        exbuf_init(&xb, dim, 4);
        float X[128], S[NX_STORE_MAX_SCORES];
        uint8_t st[1];
        for (int c = 0; c < k; c++) /* 1 + 2^-11: a tie; 3e-6: a subnormal half */
            S[c] = c % 3 == 0 ? 1.00048828125f : (c % 3 == 1 ? 3e-6f : 0.1f + 0.0137f * (float)c);
        nx_event_t e[1] = {mk_event("a", 0, 1700000000000LL, 1, 1, 0, NAN, 0, 0)};
        nx_store_update(store, e, 1, 0, X, st, &rb.ex);
        nx_store_set_scores(store, e, 1, st, S);
        CHECK(nx_store_expire_labels(store, 1800000000000LL, &xb.ex) == 1, "width %d", k);
        for (int c = 0; c < k; c++) {
            float want = nx_half_to_float(nx_half_from_float(S[c]));
            CHECK(memcmp(&xb.ex.score[c], &want, sizeof want) == 0, "width %d score %d: %a want %a",
                  k, c, (double)xb.ex.score[c], (double)want);
        }
        exbuf_free(&rb);
        exbuf_free(&xb);
        nx_store_destroy(store);
    }
}

/* --- incremental resize ------------------------------------------------------- */

static void test_resize(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.families = NX_FEAT_ONEHOT;
    p.normalise = 0;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    enum { B = 256, N = 1200 * B };
    static char ids[N][12];
    nx_event_t ev[B];
    float x[B * 3];
    exbuf_t rb;
    exbuf_init(&rb, nx_store_dim(store), B);
    int saw_rehash = 0, saw_release = 0;
    for (int b0 = 0; b0 < N; b0 += B) {
        for (int j = 0; j < B; j++) {
            snprintf(ids[b0 + j], sizeof ids[0], "r%d", b0 + j);
            ev[j] = mk_event(ids[b0 + j], 0, 1000 + b0 + j, 0, 0, 0, NAN, 0, 0);
        }
        nx_store_update(store, ev, B, 0, x, NULL, &rb.ex);
        nx_store_stats_t s;
        nx_store_stats(store, &s);
        saw_release += s.release_bytes > 0;
        if (s.rehashing) {
            saw_rehash++;
            /* mid-grow: every user so far is reachable */
            for (int i = 0; i < b0 + B; i += 97)
                CHECK(nx_store_contains(store, nx_store_user_hash(store, ids[i], strlen(ids[i]))),
                      "user %d lost mid-grow", i);
            if (b0 % (B * 16) == 0) /* sometimes advance the grow by maintenance */
                nx_store_maintain(store, 0, 50);
        }
    }
    CHECK(saw_rehash > 0, "no grow observed");
    CHECK(saw_release > 0, "no old bucket array left for maintenance to release");
    for (int i = 0; i < N; i++)
        if (!nx_store_contains(store, nx_store_user_hash(store, ids[i], strlen(ids[i])))) {
            CHECK(0, "user %d lost", i);
            break;
        }
    nx_store_maintain(store, 0, 0);
    nx_store_stats_t s;
    nx_store_stats(store, &s);
    CHECK(!s.rehashing && s.users == N && s.buckets >= N && s.release_bytes == 0,
          "after grow: users %llu buckets %llu release %zu", (unsigned long long)s.users,
          (unsigned long long)s.buckets, s.release_bytes);
    /* expire all via TTL in bounded slices: every slice returns, all go */
    int slices = 0;
    while (1) {
        nx_store_maintain(store, (int64_t)1000 * 1000 * 1000 * 1000, 200);
        nx_store_stats(store, &s);
        if (s.users == 0 || ++slices > 100000)
            break;
    }
    CHECK(s.users == 0 && s.expirations == N, "TTL slices: users %llu expirations %llu",
          (unsigned long long)s.users, (unsigned long long)s.expirations);
    nx_store_destroy(store);
    exbuf_free(&rb);
}

/* --- partitions and checkpoints ---------------------------------------------------- */

typedef struct dumps {
    const nx_store_t *store;
    uint64_t user[512];
    int32_t part[512];
    char *text[512];
    int n;
} dumps_t;

static void collect(void *opaque, uint64_t user, int32_t partition, int64_t clock_ms) {
    dumps_t *d = opaque;
    (void)clock_ms;
    if (d->n >= 512)
        return;
    char buf[4096];
    int len = nx_store_dump_user(d->store, user, buf, sizeof buf);
    d->user[d->n] = user;
    d->part[d->n] = partition;
    d->text[d->n] = len > 0 ? strdup(buf) : NULL;
    d->n++;
}

static void dumps_free(dumps_t *d) {
    for (int i = 0; i < d->n; i++)
        free(d->text[i]);
    d->n = 0;
}

/* A random stream of n events over n_users users (partition = user % 4). */
static nx_event_t *make_stream(int n, int n_users, uint64_t seed, int64_t t0, char (*ids)[16]) {
    nx_event_t *ev = calloc((size_t)n, sizeof *ev);
    uint64_t s = seed;
    int64_t now = t0;
    for (int u = 0; u < n_users; u++)
        snprintf(ids[u], 16, "p-%d", u);
    for (int i = 0; i < n; i++) {
        now += (int64_t)(lcg(&s) % 20000);
        int u = (int)(lcg(&s) % (uint64_t)n_users);
        int64_t ts = lcg(&s) % 10 ? now : now - (int64_t)(lcg(&s) % 600000);
        ev[i] = mk_event(ids[u], (int)(lcg(&s) % 3), ts, 1 + lcg(&s) % 9, 1 + lcg(&s) % 3, 0,
                         lcg(&s) % 2 ? 9.5 : NAN, 1, u % 4);
    }
    return ev;
}

static void run_batches(nx_store_t *store, const nx_event_t *ev, int n, float *X, exbuf_t *rb,
                        exbuf_t *xb, uint64_t *labels_sum) {
    size_t dim = nx_store_dim(store);
    for (int b0 = 0; b0 < n; b0 += 50) {
        int bn = n - b0 < 50 ? n - b0 : 50;
        int64_t wm = ev[b0].ts_ms - 300000;
        nx_store_update(store, ev + b0, (size_t)bn, wm, X + (size_t)b0 * dim, NULL, &rb->ex);
        for (size_t k = 0; k < rb->ex.n; k++)
            *labels_sum = *labels_sum * 31 + (uint64_t)rb->label[k] + (uint64_t)rb->ts[k];
        nx_store_expire_labels(store, wm, &xb->ex);
        for (size_t k = 0; k < xb->ex.n; k++)
            *labels_sum =
                *labels_sum * 31 + (uint64_t)xb->label[k] + (uint64_t)xb->ts[k] + xb->user[k];
        nx_store_maintain(store, wm, 0);
    }
}

static void test_partitions(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.normalise = 0; /* X then depends on user state only */
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    nx_store_t *twin = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store && twin, "new: %s", err);
    if (!store || !twin)
        return;
    static char ids[200][16];
    const int n = 4000;
    nx_event_t *ev = make_stream(2 * n, 200, 9, 1700000000000LL, ids);
    size_t dim = nx_store_dim(store);
    float *X = calloc((size_t)2 * n * dim, sizeof *X), *X2 = calloc((size_t)2 * n * dim, sizeof *X);
    exbuf_t rb, xb;
    exbuf_init(&rb, dim, 64);
    exbuf_init(&xb, dim, 4096);
    uint64_t l1 = 0, l2 = 0;
    run_batches(store, ev, n, X, &rb, &xb, &l1);
    run_batches(twin, ev, n, X2, &rb, &xb, &l2);

    dumps_t before = {store, {0}, {0}, {0}, 0}, after = {store, {0}, {0}, {0}, 0};
    nx_store_foreach(store, collect, &before);
    nx_store_stats_t s0, s1;
    nx_store_stats(store, &s0);
    membuf_t m = {0};
    CHECK(nx_store_save_partition(store, 2, mem_write, &m) == 0, "save partition");
    size_t removed = nx_store_drop_partition(store, 2);
    int in_p2 = 0;
    for (int i = 0; i < before.n; i++)
        in_p2 += before.part[i] == 2;
    CHECK(removed == (size_t)in_p2 && in_p2 > 0, "dropped %zu, want %d", removed, in_p2);
    for (int i = 0; i < before.n; i++) {
        char buf[4096];
        int len = nx_store_dump_user(store, before.user[i], buf, sizeof buf);
        if (before.part[i] == 2)
            CHECK(len < 0, "user %d of partition 2 still there", i);
        else
            CHECK(len > 0 && strcmp(buf, before.text[i]) == 0, "user %d of partition %d changed", i,
                  before.part[i]);
    }
    CHECK(nx_store_restore_partition(store, mem_read, &m, err, sizeof err) == 0, "restore: %s",
          err);
    nx_store_foreach(store, collect, &after);
    CHECK(after.n == before.n, "users %d, before %d", after.n, before.n);
    for (int i = 0; i < before.n; i++) {
        char buf[4096];
        int len = nx_store_dump_user(store, before.user[i], buf, sizeof buf);
        CHECK(len > 0 && strcmp(buf, before.text[i]) == 0, "user %d not restored bit-identically",
              i);
    }
    nx_store_stats(store, &s1);
    CHECK(s1.pending == s0.pending && s1.users == s0.users, "pending %llu/%llu users %llu/%llu",
          (unsigned long long)s1.pending, (unsigned long long)s0.pending,
          (unsigned long long)s1.users, (unsigned long long)s0.users);
    /* a corrupt stream is refused */
    m.pos = 0;
    m.data[0] ^= 1;
    CHECK(nx_store_restore_partition(store, mem_read, &m, err, sizeof err) == -1, "bad magic");
    /* Going on, the restored store computes what the untouched twin does. */
    run_batches(store, ev + n, n, X + (size_t)n * dim, &rb, &xb, &l1);
    run_batches(twin, ev + n, n, X2 + (size_t)n * dim, &rb, &xb, &l2);
    CHECK(memcmp(X + (size_t)n * dim, X2 + (size_t)n * dim, (size_t)n * dim * sizeof *X) == 0,
          "vectors differ after partition round trip");
    dumps_free(&before);
    dumps_free(&after);
    free(m.data);
    free(X);
    free(X2);
    free(ev);
    exbuf_free(&rb);
    exbuf_free(&xb);
    nx_store_destroy(store);
    nx_store_destroy(twin);
}

/* Change tracking and single-user records (store_changes.c): every user an
 * update touched is handed out once; label expiry lists its user; TTL
 * expiry, eviction and drop_partition list removals with the partition;
 * a user record put into another store gives the same user bit for bit,
 * and the two stores go on alike; bad records are refused untouched. */
static int take_all(nx_store_t *store, nx_store_change_t *out, size_t max) {
    size_t n = 0, k;
    while (n < max && (k = nx_store_take_changes(store, out + n, 7)) > 0) /* small slices */
        n += k;
    return (int)n;
}

static int find_change(const nx_store_change_t *c, int n, uint64_t user, int removed) {
    for (int i = 0; i < n; i++)
        if (c[i].user == user && c[i].removed == removed)
            return i;
    return -1;
}

static void test_changes(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.normalise = 0;
    p.n_scores = 2;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    nx_store_t *twin = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store && twin, "new: %s", err);
    if (!store || !twin)
        return;
    CHECK(nx_store_track_changes(store, 1) == 0, "track");
    static char ids[200][16];
    const int n = 3000;
    nx_event_t *ev = make_stream(2 * n, 200, 21, 1700000000000LL, ids);
    size_t dim = nx_store_dim(store);
    float *X = calloc((size_t)2 * n * dim, sizeof *X);
    exbuf_t rb, xb;
    exbuf_init(&rb, dim, 64);
    exbuf_init(&xb, dim, 4096);
    uint64_t l1 = 0;
    static nx_store_change_t c[20000];
    /* the first 10 events: exactly their users, once each */
    run_batches(store, ev, 10, X, &rb, &xb, &l1);
    int got = take_all(store, c, 20000);
    int distinct = 0;
    for (int i = 0; i < 10; i++) {
        uint64_t h = nx_store_user_hash(store, ev[i].user_id, ev[i].user_id_len);
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= ev[j].user_id == ev[i].user_id;
        distinct += !seen;
        int at = find_change(c, got, h, 0);
        CHECK(at >= 0 && c[at].partition == ev[i].partition, "event %d's user listed", i);
    }
    CHECK(got == distinct, "changes %d, users %d", got, distinct);
    CHECK(take_all(store, c, 20000) == 0, "taken twice");
    run_batches(store, ev + 10, n - 10, X, &rb, &xb, &l1);
    got = take_all(store, c, 20000);
    nx_store_stats_t st;
    nx_store_stats(store, &st);
    CHECK(got > 0 && (uint64_t)got <= st.users, "changes %d, users %llu", got,
          (unsigned long long)st.users);

    /* records round trip into the twin, bit for bit (an empty update ends
     * the last batch's wait for scores, which records do not carry) */
    nx_store_update(store, ev, 0, 0, X, NULL, &rb.ex);
    uint8_t rbuf[4096];
    CHECK(nx_store_user_record_size(store) <= sizeof rbuf, "record size");
    dumps_t before = {store, {0}, {0}, {0}, 0};
    nx_store_foreach(store, collect, &before);
    for (int i = 0; i < before.n; i++) {
        long len = nx_store_user_record(store, before.user[i], rbuf, sizeof rbuf);
        uint64_t h = 0;
        CHECK(len == (long)nx_store_user_record_size(store), "record length %ld", len);
        CHECK(nx_store_put_user(twin, rbuf, (size_t)len, &h, err, sizeof err) == 0 &&
                  h == before.user[i],
              "put: %s", err);
        char buf[4096];
        CHECK(nx_store_dump_user(twin, h, buf, sizeof buf) > 0 && before.text[i] &&
                  strcmp(buf, before.text[i]) == 0,
              "user %d differs after the round trip", i);
    }
    nx_store_stats_t st2;
    nx_store_stats(twin, &st2);
    CHECK(st2.users == st.users && st2.pending == st.pending, "twin users %llu pending %llu",
          (unsigned long long)st2.users, (unsigned long long)st2.pending);
    CHECK(nx_store_user_record(store, 12345, rbuf, sizeof rbuf) == -1, "absent user");

    /* bad records are refused and change nothing */
    long len = nx_store_user_record(store, before.user[0], rbuf, sizeof rbuf);
    uint8_t bad[4096];
    memcpy(bad, rbuf, (size_t)len);
    CHECK(nx_store_put_user(twin, bad, (size_t)len - 1, NULL, err, sizeof err) == -1, "truncated");
    CHECK(nx_store_put_user(twin, bad, 3, NULL, err, sizeof err) == -1, "short");
    bad[0] = 9;
    CHECK(nx_store_put_user(twin, bad, (size_t)len, NULL, err, sizeof err) == -1, "version");
    memcpy(bad, rbuf, (size_t)len);
    bad[8] ^= 1;
    CHECK(nx_store_put_user(twin, bad, (size_t)len, NULL, err, sizeof err) == -1, "schema");
    uint64_t s = 99;
    for (int k = 0; k < 200; k++) {
        for (long i = 0; i < len; i++)
            bad[i] = (uint8_t)lcg(&s);
        CHECK(nx_store_put_user(twin, bad, (size_t)len, NULL, err, sizeof err) == -1, "random");
    }
    nx_store_stats(twin, &st2);
    CHECK(st2.users == st.users, "bad records changed the twin");

    /* the rest of the stream: both stores compute the same rows */
    float *X2 = calloc((size_t)n * dim, sizeof *X2);
    uint64_t l2 = 0;
    run_batches(store, ev + n, n, X, &rb, &xb, &l1);
    run_batches(twin, ev + n, n, X2, &rb, &xb, &l2);
    /* (labels may expire in another order: single records do not carry
     * the order among users) */
    CHECK(memcmp(X, X2, (size_t)n * dim * sizeof *X) == 0, "rows differ after the round trip");
    take_all(store, c, 20000);

    /* label expiry lists its users */
    size_t k = nx_store_expire_labels(store, INT64_MAX / 2, &xb.ex);
    got = take_all(store, c, 20000);
    CHECK(k > 0 && got == (int)k, "expired %zu, changes %d", k, got);
    for (size_t i = 0; i < k; i++)
        CHECK(find_change(c, got, xb.user[i], 0) >= 0, "expired user listed");

    /* drop_partition lists removals with the partition; mark_changed
     * lists again */
    nx_store_stats(store, &st);
    size_t dropped = nx_store_drop_partition(store, 1);
    got = take_all(store, c, 20000);
    CHECK(dropped > 0 && got == (int)dropped, "dropped %zu, removals %d", dropped, got);
    for (int i = 0; i < got; i++)
        CHECK(c[i].removed == 1 && c[i].partition == 1, "removal %d", i);
    nx_store_mark_changed(store, c[0].user, 1);
    int kept = 0;
    while (before.part[kept] == 1)
        kept++;
    nx_store_mark_changed(store, before.user[kept], 0);
    got = take_all(store, c, 20000);
    CHECK(got == 2 && c[0].removed == 1 && c[1].removed == 0, "marked again: %d", got);
    /* a user removed and put back is not listed as removed */
    len = nx_store_user_record(store, before.user[kept], rbuf, sizeof rbuf);
    CHECK(nx_store_remove_user(store, before.user[kept]) == 1, "remove");
    CHECK(nx_store_remove_user(store, before.user[kept]) == 0, "remove twice");
    CHECK(nx_store_put_user(store, rbuf, (size_t)len, NULL, err, sizeof err) == 0, "put back");
    got = take_all(store, c, 20000);
    CHECK(got == 0, "a user back as it was: %d changes", got);

    /* TTL expiry: every user goes, each listed once as removed */
    nx_store_stats(store, &st);
    nx_store_maintain(store, INT64_MAX / 2, 0);
    got = take_all(store, c, 20000);
    CHECK(st.users > 0 && got == (int)st.users, "expired %llu users, removals %d",
          (unsigned long long)st.users, got);

    /* eviction at the cap lists the evicted user */
    nx_store_params_t q = p;
    q.max_users = 20;
    nx_store_t *small = nx_store_new(&q, test_key, err, sizeof err);
    CHECK(small && nx_store_track_changes(small, 1) == 0, "small: %s", err);
    if (small) {
        run_batches(small, ev, 400, X, &rb, &xb, &l1);
        nx_store_stats(small, &st);
        got = take_all(small, c, 20000);
        int removals = 0;
        for (int i = 0; i < got; i++)
            removals += c[i].removed;
        CHECK(st.evictions > 0 && removals > 0 && removals <= (int)st.evictions,
              "evictions %llu, removals %d", (unsigned long long)st.evictions, removals);
        for (int i = 0; i < got; i++)
            CHECK(c[i].removed == !nx_store_contains(small, c[i].user), "change %d", i);
    }
    nx_store_destroy(small);
    dumps_free(&before);
    free(X);
    free(X2);
    free(ev);
    exbuf_free(&rb);
    exbuf_free(&xb);
    nx_store_destroy(store);
    nx_store_destroy(twin);
}

/* --- 8-bit pending features ----------------------------------------------- */

/* Codes round-trip exactly; values within the clip come back within
 * clip / 254 (plus a float rounding); beyond it they clamp, NaN is 0. */
static void test_quant(void) {
    const float clips[] = {0.5f, 1.0f, 5.0f, 8.0f};
    for (size_t c = 0; c < sizeof clips / sizeof *clips; c++) {
        float clip = clips[c];
        for (int q = -127; q <= 127; q++) {
            int8_t in = (int8_t)q, back;
            float x;
            nx_quant_decode(NX_HALF_PORTABLE, &in, &x, 1, clip);
            nx_quant_encode(NX_HALF_PORTABLE, &x, &back, 1, clip);
            CHECK(back == in, "clip %g code %d -> %g -> %d", (double)clip, q, (double)x, back);
        }
        double worst = 0;
        for (int i = -100000; i <= 100000; i++) {
            float x = clip * (float)i / 100000.0f, y;
            int8_t q;
            nx_quant_encode(NX_HALF_PORTABLE, &x, &q, 1, clip);
            nx_quant_decode(NX_HALF_PORTABLE, &q, &y, 1, clip);
            if (fabs((double)y - x) > worst)
                worst = fabs((double)y - x);
        }
        CHECK(worst <= clip / 254.0 * (1 + 1e-5), "clip %g: error %g > clip / 254", (double)clip,
              worst);
        CHECK(worst >= clip / 254.0 * 0.99, "clip %g: error %g, expected about clip / 254",
              (double)clip, worst);
        float odd[4] = {2 * clip, -3 * clip, NAN, INFINITY}, y[4];
        int8_t q[4];
        nx_quant_encode(NX_HALF_PORTABLE, odd, q, 4, clip);
        CHECK(q[0] == 127 && q[1] == -127 && q[2] == 0 && q[3] == 127, "clamps %d %d %d %d", q[0],
              q[1], q[2], q[3]);
        nx_quant_decode(NX_HALF_PORTABLE, q, y, 2, clip);
        CHECK(y[0] == clip && y[1] == -clip, "ends decode to +-clip");
    }
    /* every instruction-set path (and length: whole blocks, tails, short
     * vectors) gives the one-value path's codes and values */
    uint64_t s = 11;
    for (int isa = NX_HALF_PORTABLE; isa <= nx_half_isa(); isa++)
        for (size_t n = 1; n <= 70; n++) {
            float x[70], y[70], want_y[70];
            int8_t q[72], want_q[70];
            for (size_t i = 0; i < n; i++) {
                x[i] = (float)((int)(lcg(&s) % 20001) - 10000) / 1000.0f; /* beyond +-5 too */
                if (lcg(&s) % 50 == 0)
                    x[i] = NAN;
                nx_quant_encode(NX_HALF_PORTABLE, &x[i], &want_q[i], 1, 5.0f);
                nx_quant_decode(NX_HALF_PORTABLE, &want_q[i], &want_y[i], 1, 5.0f);
            }
            q[n] = q[n + 1] = 0x55;
            nx_quant_encode(isa, x, q, n, 5.0f);
            nx_quant_decode(isa, q, y, n, 5.0f);
            CHECK(memcmp(q, want_q, n) == 0 && memcmp(y, want_y, n * sizeof *y) == 0,
                  "isa %d, %zu values", isa, n);
            CHECK(q[n] == 0x55 && q[n + 1] == 0x55, "isa %d wrote past %zu codes", isa, n);
        }
}

/* fp16 counters (half.h): exact values stay whatever the random bits;
 * others go to one of their two neighbours, up with the dropped fraction's
 * probability (over all 2^13 random values: exactly); a count does not
 * stop growing where 1 is under half a step (nearest stalls at 2048); the
 * range saturates; the 4-lane conversions give the one-value bits. */
static void test_half_counters(void) {
    const float exact[] = {0.0f, 1.0f, 3.0f, 2048.0f, 0.75f, 65504.0f, 0x1p-20f};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++) {
        uint16_t h = nx_half_from_float(exact[i]);
        CHECK(nx_half_to_float(h) == exact[i], "%g is an fp16", (double)exact[i]);
        for (uint32_t r = 0; r < 65536; r += 97)
            CHECK(nx_half_round_sr(exact[i], r) == h, "exact %g moved by r %u", (double)exact[i],
                  r);
    }
    const float odd[] = {1.0f + 0x1p-12f, 2049.0f, 0.1f, 12345.678f, 3.3e-3f};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        float x = odd[i];
        uint16_t lo_h = nx_half_from_float(x);
        if (nx_half_to_float(lo_h) > x)
            lo_h--;
        float lo = nx_half_to_float(lo_h), hi = nx_half_to_float((uint16_t)(lo_h + 1));
        double sum = 0;
        for (uint32_t r = 0; r < 8192; r++) {
            float y = nx_half_to_float(nx_half_round_sr(x, r));
            CHECK(y == lo || y == hi, "%g rounded to %g, not %g or %g", (double)x, (double)y,
                  (double)lo, (double)hi);
            sum += y;
        }
        CHECK(sum / 8192 == (double)x, "%g: mean over all r %.10g", (double)x, sum / 8192);
    }
    CHECK(nx_half_round_sr(65504.5f, 0) == 0x7bff && nx_half_round_sr(1e30f, 8191) == 0x7bff,
          "saturates at 65504");
    CHECK(nx_half_round_sr(3e-6f, 8191) == nx_half_from_float(3e-6f), "subnormal: to nearest");
    uint64_t s = 5;
    float c = 0;
    for (int i = 0; i < 10000; i++)
        c = nx_half_to_float(nx_half_round_sr(c + 1.0f, (uint32_t)lcg(&s)));
    /* unbiased; its spread: above 8192 a step is 8 and +1 rounds up with
     * probability 1/8, from 2048 on the variances sum to ~3e4: a standard
     * deviation of ~170 */
    CHECK(fabs(c - 10000.0) < 700, "10000 increments counted %g", (double)c);
    /* 4 lanes = one value at a time, bit for bit */
    for (int k = 0; k < 20000; k++) {
        float x[4];
        uint16_t h4[4], in[4];
        for (int l = 0; l < 4; l++) {
            uint32_t bits = (uint32_t)lcg(&s) % 0x48000000u; /* 0 .. 2^17 */
            memcpy(&x[l], &bits, 4);
            in[l] = (uint16_t)(lcg(&s) % 0x7c00u);
        }
        uint64_t r = lcg(&s) << 33 ^ lcg(&s);
        nx_half_v4f v;
        memcpy(&v, x, sizeof v);
        nx_half_store_counter4(h4, v, r);
        nx_half_v4f back = nx_half_counter4(in);
        for (int l = 0; l < 4; l++) {
            CHECK(h4[l] == nx_half_round_sr(x[l], (uint32_t)(r >> (16 * l)) & 0xffffu),
                  "lane %d of %a", l, (double)x[l]);
            CHECK(back[l] == nx_half_to_float(in[l]), "lane %d of %04x", l, in[l]);
        }
    }
}

/* A normalised store gives back each resolved example as the 8-bit codes
 * of the vector it published: within clip / 254 of it. */
static void test_pend8(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    static char ids[50][16];
    const int n = 2000;
    nx_event_t *ev = make_stream(n, 50, 23, 1700000000000LL, ids);
    size_t dim = nx_store_dim(store);
    float *X = calloc((size_t)n * dim, sizeof *X);
    uint8_t *st = calloc((size_t)n, 1);
    long *made = calloc(50, sizeof *made); /* row of each user's pending example, -1 none */
    for (int u = 0; u < 50; u++)
        made[u] = -1;
    exbuf_t rb;
    exbuf_init(&rb, dim, 64);
    int64_t wm = INT64_MIN / 2; /* nothing late, nothing expires */
    long checked = 0;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        CHECK(nx_store_update(store, ev + i, 1, wm, X + (size_t)i * dim, st + i, &rb.ex) == 0,
              "update");
        int u = atoi(ev[i].user_id + 2); /* "p-<u>" */
        /* in order for its user (else late): it makes the pending example */
        int in_order = made[u] < 0 || ev[i].ts_ms >= ev[made[u]].ts_ms;
        if (rb.ex.n == 1 && made[u] >= 0) {
            for (size_t f = 0; f < dim; f++) {
                float want = X[(size_t)made[u] * dim + f];
                CHECK(rb.x[f] == pend_rt(&p, want), "event %d feature %zu", i, f);
                if (fabs((double)rb.x[f] - want) > worst)
                    worst = fabs((double)rb.x[f] - want);
            }
            checked++;
        }
        if (in_order)
            made[u] = i;
    }
    CHECK(checked > 1000, "only %ld examples resolved", checked);
    CHECK(worst <= p.clip / 254.0 * (1 + 1e-5), "error %g", worst);
    exbuf_free(&rb);
    free(made);
    free(st);
    free(X);
    free(ev);
    nx_store_destroy(store);
}

/* Ages (ms before the clock) saturate at ~49.7 days: a user whose click
 * was 60 days ago reads as 49.7 days; a type never seen stays missing. */
static void test_age_saturation(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.normalise = 0;
    p.user_ttl_ms = 100LL * 86400000; /* the user stays */
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    size_t dim = nx_store_dim(store);
    int f_click = -1, f_cart = -1, f_cart_miss = -1, f_dur = -1;
    for (size_t f = 0; f < dim; f++) {
        const char *name = nx_store_feature_name(store, f);
        f_click = !strcmp(name, "since_click_s") ? (int)f : f_click;
        f_cart = !strcmp(name, "since_cart_s") ? (int)f : f_cart;
        f_cart_miss = !strcmp(name, "since_cart_missing") ? (int)f : f_cart_miss;
        f_dur = !strcmp(name, "session_duration_s") ? (int)f : f_dur;
    }
    CHECK(f_click >= 0 && f_cart >= 0 && f_cart_miss >= 0 && f_dur >= 0, "feature names");
    const int64_t t0 = 1700000000000LL, day = 86400000;
    /* one session (id 7) throughout, so its duration grows too */
    nx_event_t ev[3] = {mk_event("old", 0, t0, 1, 1, 7, NAN, 1, 0),
                        mk_event("old", 2, t0 + 30 * day, 1, 1, 7, NAN, 1, 0),
                        mk_event("old", 2, t0 + 60 * day, 1, 1, 7, NAN, 1, 0)};
    float *x = calloc(3 * dim, sizeof *x);
    exbuf_t rb;
    exbuf_init(&rb, dim, 64);
    for (int i = 0; i < 3; i++)
        CHECK(nx_store_update(store, &ev[i], 1, INT64_MIN / 2, x + (size_t)i * dim, NULL, &rb.ex) ==
                  0,
              "update");
    double max_s = (double)(UINT32_MAX - 1) / 1000.0;
    CHECK_NEAR(x[dim + (size_t)f_click], log1p(30.0 * 86400), 1e-6);
    CHECK_NEAR(x[2 * dim + (size_t)f_click], log1p(max_s), 1e-6);
    CHECK_NEAR(x[2 * dim + (size_t)f_dur], log1p(max_s), 1e-6);
    CHECK(x[2 * dim + (size_t)f_cart] == 0 && x[2 * dim + (size_t)f_cart_miss] == 1,
          "a type never seen stays missing");
    exbuf_free(&rb);
    free(x);
    nx_store_destroy(store);
}

/* --- records of the previous version ---------------------------------------- */

/* The version 3 record, spelled out here as the daemons that wrote it laid
 * it out (a fixed format: not taken from the store): a 56-byte head (hash,
 * clock, session start, chain, list links, partition, session and category
 * fingerprints, session length, revisits, flags, ring fills, carts,
 * category run), then the last time per type (int64), counts and values
 * (float), items and categories (uint32), pending features and scores
 * (fp16), item views (bytes), padded to 8 bytes. */
static size_t v3_size(const nx_store_t *store) {
    const nx_store_params_t *p = &store->p;
    size_t k = (size_t)p->recent_items;
    size_t n = 56 + 8 * (size_t)p->n_types + 4 * (size_t)p->n_windows * (p->n_types + 1) + 8 * k +
               2 * store->fz.dim + 2 * (size_t)p->n_scores + k;
    return (n + 7) & ~(size_t)7;
}

/* A current record (rec_size bytes) as version 3 would have held the same
 * state: times from the ages, a tag as its own 32-bit fingerprint (it
 * folds to itself), pending features decoded to fp16. */
static void to_v3(nx_store_t *store, const uint8_t *in, uint8_t *out) {
    const nx_store_params_t *p = &store->p;
    static _Alignas(8) uint8_t ubuf[4096];
    memcpy(ubuf, in, store->rec_size);
    nx_user_t *u = (nx_user_t *)ubuf;
    size_t k = (size_t)p->recent_items, nt = (size_t)p->n_types, o = 0;
    memset(out, 0, v3_size(store));
#define PUT(v)                                                                                     \
    do {                                                                                           \
        __typeof__(v) v_ = (v);                                                                    \
        memcpy(out + o, &v_, sizeof v_);                                                           \
        o += sizeof v_;                                                                            \
    } while (0)
    int64_t sess_start = u->clock - (int64_t)u->sess_age;
    uint32_t zero = 0, sfp = u->sess_tag, cfp = u->cat_tag;
    PUT(u->hash);
    PUT(u->clock);
    PUT(sess_start);
    PUT(zero);
    PUT(zero);
    PUT(zero);
    PUT(u->partition);
    PUT(sfp);
    PUT(cfp);
    PUT(u->sess_len);
    PUT(u->sess_rev);
    PUT(u->flags);
    PUT(u->n_items);
    PUT(u->n_cats);
    PUT(u->carts);
    PUT(u->cat_run);
    for (size_t t = 0; t < nt; t++) {
        uint32_t age = u_last(store, u)[t];
        PUT(age == NX_AGE_NEVER ? INT64_MIN : u->clock - (int64_t)age);
    }
    for (size_t c = 0; c < (size_t)p->n_windows * (nt + 1); c++)
        PUT(nx_half_to_float(u_cnt(store, u)[c]) * store->fz.lane_unit[c]);
    for (size_t i = 0; i < k; i++)
        PUT((uint32_t)u_items(store, u)[i]);
    for (size_t i = 0; i < k; i++)
        PUT((uint32_t)u_cats(store, u)[i]);
    float x[256];
    nx_store_pend_decode(store, u, x);
    for (size_t i = 0; i < store->fz.dim; i++)
        PUT(nx_half_from_float(x[i]));
    for (int c = 0; c < p->n_scores; c++)
        PUT(u_score(store, u)[c]);
    for (size_t i = 0; i < k; i++)
        PUT(u_views(store, u)[i]);
#undef PUT
}

/* Version 1 user records and version 3 streams (the record layout before
 * ages, tags and 8-bit pending features) load into the same state: a
 * store's users, written back in the old layout, come back byte for byte. */
static void test_v3_records(void) {
    for (int normalise = 0; normalise <= 1; normalise++) {
        nx_store_params_t p;
        nx_store_params_default(&p);
        p.normalise = normalise; /* 8-bit pending features, or fp16 */
        p.n_scores = 2;
        char err[256];
        nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
        nx_store_t *twin = nx_store_new(&p, test_key, err, sizeof err);
        nx_store_t *third = nx_store_new(&p, test_key, err, sizeof err);
        CHECK(store && twin && third, "new: %s", err);
        if (!store || !twin || !third)
            return;
        CHECK(store->pend8 == normalise, "pending format");
        static char ids[200][16];
        const int n = 3000;
        nx_event_t *ev = make_stream(n, 200, 17, 1700000000000LL, ids);
        size_t dim = nx_store_dim(store);
        float *X = calloc((size_t)n * dim, sizeof *X);
        exbuf_t rb, xb;
        exbuf_init(&rb, dim, 64);
        exbuf_init(&xb, dim, 4096);
        uint64_t l1 = 0;
        run_batches(store, ev, n, X, &rb, &xb, &l1);
        nx_store_update(store, ev, 0, 0, X, NULL, &rb.ex); /* no scores awaited */
        dumps_t before = {store, {0}, {0}, {0}, 0}, after = {third, {0}, {0}, {0}, 0};
        nx_store_foreach(store, collect, &before);
        size_t v3 = v3_size(store), len4 = nx_store_user_record_size(store);
        static uint8_t r4[4096], r1[4096], back[4096];
        membuf_t m = {0};
        uint64_t n_pend = 0;
        for (int i = 0; i < before.n; i++) {
            nx_store_user_record(store, before.user[i], r4, sizeof r4);
            n_pend += (((nx_user_t *)(r4 + 16))->flags & NX_F_PENDING) != 0;
        }
        /* stream header: magic "NXP3", record bytes, schema, users, scores */
        uint32_t hd32[2] = {0x3350584eu, (uint32_t)v3}, hd_tail[2] = {(uint32_t)p.n_scores, 0};
        uint64_t schema, users = (uint64_t)before.n;
        memcpy(&schema, r4 + 8, 8);
        mem_write(&m, hd32, sizeof hd32);
        mem_write(&m, &schema, 8);
        mem_write(&m, &users, 8);
        mem_write(&m, hd_tail, sizeof hd_tail);
        for (int i = 0; i < before.n; i++) {
            long len = nx_store_user_record(store, before.user[i], r4, sizeof r4);
            CHECK(len == (long)len4, "record length");
            /* version 1 user record: version, scores, 0, 0, bytes, schema */
            memcpy(r1, r4, 16);
            r1[0] = 1;
            uint32_t rs = (uint32_t)v3;
            memcpy(r1 + 4, &rs, 4);
            to_v3(store, r4 + 16, r1 + 16);
            mem_write(&m, r1 + 16, v3);
            uint64_t h = 0;
            CHECK(nx_store_put_user(twin, r1, 16 + v3, &h, err, sizeof err) == 0 &&
                      h == before.user[i],
                  "put version 1: %s", err);
            CHECK(nx_store_user_record(twin, h, back, sizeof back) == (long)len4 &&
                      memcmp(back + 16, r4 + 16, len4 - 16) == 0,
                  "user %d differs after the version 1 round trip", i);
            CHECK(nx_store_put_user(twin, r1, 16 + v3 - 1, NULL, err, sizeof err) == -1,
                  "truncated version 1 record");
        }
        mem_write(&m, &n_pend, 8);
        for (int i = 0; i < before.n; i++) {
            nx_store_user_record(store, before.user[i], r4, sizeof r4);
            if (((nx_user_t *)(r4 + 16))->flags & NX_F_PENDING)
                mem_write(&m, &before.user[i], 8);
        }
        CHECK(nx_store_restore_partition(third, mem_read, &m, err, sizeof err) == 0,
              "restore version 3 stream: %s", err);
        nx_store_foreach(third, collect, &after);
        CHECK(after.n == before.n, "users %d, want %d", after.n, before.n);
        for (int i = 0; i < before.n && i < after.n; i++) {
            char buf[4096];
            CHECK(nx_store_dump_user(third, before.user[i], buf, sizeof buf) > 0 &&
                      before.text[i] && strcmp(buf, before.text[i]) == 0,
                  "user %d differs after the version 3 stream", i);
        }
        dumps_free(&before);
        dumps_free(&after);
        free(m.data);
        exbuf_free(&rb);
        exbuf_free(&xb);
        free(X);
        free(ev);
        nx_store_destroy(third);
        nx_store_destroy(twin);
        nx_store_destroy(store);
    }
}

/* --- the record with the later families ----------------------------------- */

/* Field [off, off + len) of a record: aligned to its element, after the
 * head, inside the record, and overlapping no other field. */
typedef struct field {
    size_t off, len, align;
} field_t;

static void check_fields_disjoint(const field_t *f, int n, size_t rec_size, const char *what) {
    for (int i = 0; i < n; i++) {
        CHECK(f[i].off % f[i].align == 0 && f[i].off >= sizeof(nx_user_t) &&
                  f[i].off + f[i].len <= rec_size,
              "%s: field %d at %zu (+%zu) of %zu", what, i, f[i].off, f[i].len, rec_size);
        for (int j = 0; j < i; j++)
            CHECK(!f[i].len || !f[j].len || f[i].off + f[i].len <= f[j].off ||
                      f[j].off + f[j].len <= f[i].off,
                  "%s: fields %d and %d overlap", what, i, j);
    }
}

/* The compact record's layout with the label and item families: their
 * fields come only when they are on, aligned and apart from the others
 * (8-bit and fp16 pending features, with and without scores); the default
 * families keep the compact record's size. Records of every family round
 * trip through nx_store_user_record / nx_store_put_user bit for bit. */
static void test_family_records(void) {
    const uint32_t fams[] = {NX_FEAT_BASE, NX_FEAT_BASE | NX_FEAT_LABELS,
                             NX_FEAT_BASE | NX_FEAT_ITEMPOP, NX_FEAT_BASE | NX_FEAT_ITEMRATE,
                             NX_FEAT_ALL};
    char err[256], what[64];
    size_t base_size[2][2] = {{0}};
    for (size_t fi = 0; fi < sizeof fams / sizeof *fams; fi++)
        for (int norm = 0; norm <= 1; norm++)
            for (int sc = 0; sc <= 1; sc++) {
                nx_store_params_t p;
                nx_store_params_default(&p);
                p.families = fams[fi];
                p.normalise = norm;
                p.n_scores = sc ? 4 : 0;
                nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
                CHECK(store != NULL, "new: %s", err);
                if (!store)
                    continue;
                snprintf(what, sizeof what, "families %#x normalise %d scores %d", fams[fi], norm,
                         p.n_scores);
                size_t k = (size_t)p.recent_items, nc = (size_t)p.n_windows * p.n_types,
                       pw = store->pend8 ? 1 : 2;
                int lab = (fams[fi] & NX_FEAT_LABELS) != 0,
                    xfp = (fams[fi] & NX_FEAT_ITEMRATE) != 0;
                CHECK(store->pend8 == norm, "%s: 8-bit pending features iff normalised", what);
                field_t f[] = {
                    {store->off_last, 4 * (size_t)p.n_types, 4},
                    {store->off_xfp, xfp ? 8 : 0, 4},
                    {store->off_cnt, 2 * nc, 2},
                    {store->off_val, 2 * (size_t)p.n_windows, 2},
                    {store->off_items, 2 * k, 2},
                    {store->off_cats, 2 * k, 2},
                    {store->off_score, 2 * (size_t)p.n_scores, 2},
                    {store->off_lab, lab ? 2 * ((size_t)p.n_types + 1) : 0, 2},
                    {store->off_pend, pw * store->fz.dim, pw},
                    {store->off_views, k, 1},
                };
                check_fields_disjoint(f, (int)(sizeof f / sizeof *f), store->rec_size, what);
                size_t used = sizeof(nx_user_t);
                for (size_t i = 0; i < sizeof f / sizeof *f; i++)
                    used += f[i].len;
                CHECK(store->rec_size == ((used + 7) & ~(size_t)7), "%s: %zu bytes, %zu used", what,
                      store->rec_size, used);
                if (fams[fi] == NX_FEAT_BASE)
                    base_size[norm][sc] = store->rec_size;
                else if (!(fams[fi] & (NX_FEAT_LABELS | NX_FEAT_ITEMRATE)))
                    CHECK(store->rec_size == base_size[norm][sc],
                          "%s: item_popularity alone changes the record", what);
                nx_store_destroy(store);
            }
    /* the default record (4 scores, normalised): the compact one */
    CHECK(base_size[1][1] == 152, "default record %zu bytes", base_size[1][1]);

    for (size_t fi = 0; fi < sizeof fams / sizeof *fams; fi++) {
        nx_store_params_t p;
        nx_store_params_default(&p);
        p.families = fams[fi];
        p.n_scores = 4;
        nx_store_t *a = nx_store_new(&p, test_key, err, sizeof err);
        nx_store_t *b = nx_store_new(&p, test_key, err, sizeof err);
        CHECK(a && b, "new: %s", err);
        if (!a || !b) {
            nx_store_destroy(a);
            nx_store_destroy(b);
            continue;
        }
        static char ids[60][16];
        const int n = 1500;
        nx_event_t *ev = make_stream(n, 60, 29, 1700000000000LL, ids);
        size_t dim = nx_store_dim(a);
        float *X = calloc((size_t)n * dim, sizeof *X);
        exbuf_t rb, xb;
        exbuf_init(&rb, dim, 64);
        exbuf_init(&xb, dim, 4096);
        uint64_t ls = 0;
        run_batches(a, ev, n, X, &rb, &xb, &ls);
        nx_store_update(a, ev, 0, 0, X, NULL, &rb.ex); /* ends the wait for scores */
        dumps_t before = {a, {0}, {0}, {0}, 0};
        nx_store_foreach(a, collect, &before);
        uint8_t ra[4096], rb2[4096];
        long len = -1;
        int same = 1, labels_seen = 0;
        for (int i = 0; i < before.n; i++) {
            len = nx_store_user_record(a, before.user[i], ra, sizeof ra);
            uint64_t h = 0;
            CHECK(len == (long)nx_store_user_record_size(a) &&
                      nx_store_put_user(b, ra, (size_t)len, &h, err, sizeof err) == 0,
                  "families %#x: put: %s", fams[fi], err);
            same &= nx_store_user_record(b, h, rb2, sizeof rb2) == len &&
                    memcmp(ra, rb2, (size_t)len) == 0;
            char buf[4096];
            same &= nx_store_dump_user(b, h, buf, sizeof buf) > 0 && before.text[i] &&
                    strcmp(buf, before.text[i]) == 0;
            nx_user_t *u = rec(a, find(a, before.user[i]));
            if (fams[fi] & NX_FEAT_LABELS)
                for (int c = 0; c <= p.n_types; c++)
                    labels_seen |= u_lab(a, u)[c] != 0;
        }
        CHECK(before.n > 0 && same, "families %#x: records differ after the round trip", fams[fi]);
        if (fams[fi] & NX_FEAT_LABELS)
            CHECK(labels_seen, "families %#x: no label history in any record", fams[fi]);
        dumps_free(&before);
        free(X);
        free(ev);
        exbuf_free(&rb);
        exbuf_free(&xb);
        nx_store_destroy(a);
        nx_store_destroy(b);
    }
}

static void test_checkpoint(uint32_t families) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.families = families;
    p.max_users = 120; /* eviction draws from the generator: it must be saved too */
    char err[256];
    nx_store_t *a = nx_store_new(&p, test_key, err, sizeof err);
    nx_store_t *b = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(a && b, "new: %s", err);
    if (!a || !b)
        return;
    static char ids[200][16];
    const int n = 3000;
    nx_event_t *ev = make_stream(2 * n, 200, 11, 1700000000000LL, ids);
    size_t dim = nx_store_dim(a);
    float *Xa = calloc((size_t)2 * n * dim, sizeof *Xa), *Xb = calloc((size_t)2 * n * dim, 4);
    exbuf_t rb, xb;
    exbuf_init(&rb, dim, 64);
    exbuf_init(&xb, dim, 4096);
    uint64_t la = 0, lb = 0;
    run_batches(a, ev, n, Xa, &rb, &xb, &la);
    membuf_t m = {0}, ma = {0}, mb = {0};
    CHECK(nx_store_save(a, mem_write, &m) == 0, "save");
    CHECK(nx_store_restore(b, mem_read, &m, err, sizeof err) == 0, "restore: %s", err);
    lb = la;
    run_batches(a, ev + n, n, Xa + (size_t)n * dim, &rb, &xb, &la);
    run_batches(b, ev + n, n, Xb + (size_t)n * dim, &rb, &xb, &lb);
    CHECK(memcmp(Xa + (size_t)n * dim, Xb + (size_t)n * dim, (size_t)n * dim * 4) == 0,
          "vectors differ after checkpoint restore");
    CHECK(la == lb, "labels differ after checkpoint restore");
    CHECK(nx_store_save(a, mem_write, &ma) == 0 && nx_store_save(b, mem_write, &mb) == 0, "save");
    CHECK(ma.len == mb.len && memcmp(ma.data, mb.data, ma.len) == 0, "final states differ");
    nx_store_stats_t s;
    nx_store_stats(a, &s);
    CHECK(s.evictions > 0, "no eviction exercised");
    free(m.data);
    free(ma.data);
    free(mb.data);
    free(Xa);
    free(Xb);
    free(ev);
    exbuf_free(&rb);
    exbuf_free(&xb);
    nx_store_destroy(a);
    nx_store_destroy(b);
}

/* The label families by hand (raw values): the user's label history moves
 * only when a label resolves (by the next event, or by the watermark as
 * `none`), and the item table counts events and labels of all users. */
static void test_label_families(void) {
    nx_store_params_t p;
    nx_store_params_default(&p); /* click, cart, purchase; H 30 min; table window 24 h */
    p.families = NX_FEAT_ALL;
    p.normalise = 0;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    size_t dim = nx_store_dim(store);
    size_t lab_click = feat_index(store, "lab_click"), lab_cart = feat_index(store, "lab_cart"),
           lab_none = feat_index(store, "lab_none"), ipop = feat_index(store, "item_pop"),
           cpop = feat_index(store, "cat_pop"), icart = feat_index(store, "item_next_cart"),
           iclick = feat_index(store, "item_next_click"),
           cnone = feat_index(store, "cat_next_none");
    CHECK(lab_click < dim && lab_cart < dim && lab_none < dim && ipop < dim && cpop < dim &&
              icart < dim && iclick < dim && cnone < dim,
          "label family names");
    const int64_t t0 = 1700000000000LL, H = p.horizon_ms;
    float *x = calloc(dim, sizeof *x);
    exbuf_t rb, xb;
    exbuf_init(&rb, dim, 16);
    exbuf_init(&xb, dim, 16);
    /* a: click on item 11 (category 21); nothing resolved yet */
    nx_event_t e = mk_event("a", 0, t0, 11, 21, 0, NAN, 1, 0);
    nx_store_update(store, &e, 1, t0, x, NULL, &rb.ex);
    CHECK(x[lab_click] == 0.0f && x[lab_cart] == 0.0f && x[lab_none] == 0.0f,
          "a new user has no label history");
    CHECK_NEAR(x[ipop], log1p(1.0), 1e-6);
    /* no label anywhere yet: the rates are uniform over the 4 classes */
    CHECK_NEAR(x[icart], 0.25, 1e-6);
    /* a: cart 10 s later resolves the click's example as `cart` */
    e = mk_event("a", 1, t0 + 10000, 11, 21, 0, 5.0, 1, 0);
    nx_store_update(store, &e, 1, t0, x, NULL, &rb.ex);
    CHECK(rb.ex.n == 1 && rb.label[0] == 1, "the click's label is cart");
    CHECK_NEAR(x[lab_cart], 1.0 / 2.0, 1e-6);
    CHECK(x[lab_click] == 0.0f && x[lab_none] == 0.0f, "only cart so far");
    /* one label (cart) on item 11 and over all items, resolved by this
     * very event: the rates read after it say cart */
    CHECK_NEAR(x[icart], 1.0, 1e-6);
    CHECK_NEAR(x[iclick], 0.0, 1e-6);
    CHECK_NEAR(x[ipop], log1p(exp(-10.0 / 86400) + 1.0), 1e-6);
    /* b: a click on the same item 20 s in reads the counts of a's events */
    e = mk_event("b", 0, t0 + 20000, 11, 21, 0, NAN, 1, 0);
    nx_store_update(store, &e, 1, t0, x, NULL, &rb.ex);
    CHECK(x[lab_cart] == 0.0f, "b's own history is empty");
    CHECK_NEAR(x[ipop], log1p(exp(-20.0 / 86400) + exp(-10.0 / 86400) + 1.0), 1e-6);
    CHECK_NEAR(x[cpop], log1p(exp(-20.0 / 86400) + exp(-10.0 / 86400) + 1.0), 1e-6);
    CHECK_NEAR(x[icart], 1.0, 1e-6);
    /* the watermark passes a's cart by H: resolved as `none` */
    nx_store_expire_labels(store, t0 + 20000 + H, &xb.ex);
    CHECK(xb.ex.n == 2, "a's and b's examples expire (%zu)", xb.ex.n);
    /* a comes back hours later: history 0.95 cart, 1 none (fp16) */
    e = mk_event("a", 0, t0 + 4 * H, 12, 22, 0, NAN, 1, 0);
    nx_store_update(store, &e, 1, t0 + 4 * H, x, NULL, &rb.ex);
    CHECK(rb.ex.n == 0, "nothing pending to resolve");
    double h_cart = nx_half_to_float(nx_half_from_float(0.95f)); /* kept as fp16 */
    CHECK_NEAR(x[lab_cart], h_cart / (1.0 + h_cart + 1.0), 1e-6);
    CHECK_NEAR(x[lab_none], 1.0 / (1.0 + h_cart + 1.0), 1e-6);
    /* item 12 is new: no events before this one, and the prior's rates:
     * a's click labelled cart, a's cart and b's click expired as none */
    double w0 = exp(-20.0 / 86400), w10 = exp(-10.0 / 86400); /* decayed to b's example */
    CHECK_NEAR(x[ipop], log1p(1.0), 1e-6);
    CHECK_NEAR(x[icart], w0 / (w0 + w10 + 1.0), 1e-6);
    /* category 22 is new too: the prior's share of none */
    CHECK_NEAR(x[cnone], (w10 + 1.0) / (w0 + w10 + 1.0), 1e-6);
    free(x);
    exbuf_free(&rb);
    exbuf_free(&xb);
    nx_store_destroy(store);
}

static void test_params(void) {
    nx_store_params_t p;
    char err[256];
    nx_store_params_default(&p);
    p.user_ttl_ms = p.horizon_ms - 1;
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "ttl < horizon accepted");
    nx_store_params_default(&p);
    p.window_ms[1] = p.window_ms[0];
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "non-ascending windows accepted");
    nx_store_params_default(&p);
    p.n_types = NX_EVENT_MAX_TYPES + 1;
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "too many types accepted");
    nx_store_params_default(&p);
    p.cart_type = p.n_types;
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "cart_type out of range accepted");
    nx_store_params_default(&p);
    nx_store_t *s1 = nx_store_new(&p, test_key, err, sizeof err);
    p.families &= ~(uint32_t)NX_FEAT_PRICE;
    nx_store_t *s2 = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(s1 && s2 && nx_store_schema_hash(s1) != nx_store_schema_hash(s2) &&
              nx_store_dim(s1) == nx_store_dim(s2) + 2,
          "schema hash/dim must follow the layout");
    nx_store_stats_t st;
    nx_store_stats(s1, &st);
    CHECK(st.record_bytes <= 240, "default record %zu bytes", st.record_bytes);
    nx_store_destroy(s1);
    nx_store_destroy(s2);
    nx_store_destroy(NULL);
}

/* Every place of the layout is written by the read-out that serves it, and
 * named: the raw vectors (normalise 0) of a few events, in rows the caller
 * filled with NaN, come back finite with nothing written past the last
 * row, and the names are as many as the places, non-empty and distinct.
 * For every set of families under 1..3 types and 1..4 windows, and the
 * default layout through both of its read-outs (unrolled and generic). A
 * row added to the layout that a read-out does not write fails here. */
static void test_layout_table(void) {
    static const int64_t win[NX_STORE_MAX_WINDOWS] = {60000, 300000, 3600000, 86400000};
    enum { E = 7 };
    char err[256];
    int unwritten = 0, overrun = 0, badnames = 0, stores = 0;
    for (int nt = 1; nt <= 3; nt++)
        for (int nw = 1; nw <= NX_STORE_MAX_WINDOWS; nw++)
            for (uint32_t fam = 1; fam <= NX_FEAT_ALL; fam++)
                for (int generic = 0; generic < 2; generic++) {
                    if (generic && !(nt == 3 && nw == 3 && fam == NX_FEAT_ALL))
                        continue;
                    nx_store_params_t p;
                    nx_store_params_default(&p);
                    p.n_types = nt;
                    p.n_windows = nw;
                    memcpy(p.window_ms, win, sizeof win);
                    p.value_type = nt - 1;
                    p.cart_type = nt >= 2 ? 1 : -1;
                    p.families = fam;
                    p.normalise = 0;
                    p.force_generic = generic;
                    p.max_users = 16;
                    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
                    CHECK(store, "store: %s", err);
                    if (!store)
                        continue;
                    stores++;
                    size_t dim = nx_store_dim(store);
                    int64_t t0 = 1700000000000LL;
                    /* first events, a priced one, a new session, a late one,
                     * a repeat of item and category, a user without price */
                    nx_event_t ev[E] = {
                        mk_event("a", 0, t0, 11, 21, 0, NAN, 1, 0),
                        mk_event("b", nt - 1, t0 + 1000, 12, 22, 5, 9.5, 2, 0),
                        mk_event("a", nt - 1, t0 + 5000, 11, 21, 0, 20.0, 1, 0),
                        mk_event("a", 0, t0 + 4000000, 13, 23, 0, NAN, 1, 0),
                        mk_event("a", nt > 1 ? 1 : 0, t0 + 3000, 11, 21, 0, 3.0, 1, 0),
                        mk_event("b", 0, t0 + 6000, 12, 22, 5, NAN, 1, 0),
                        mk_event("c", 0, t0 + 7000, 0, 0, 0, NAN, 1, 0)};
                    float *x = malloc((E * dim + 1) * sizeof *x);
                    float ex_x[E * 64];
                    int32_t label[E];
                    int64_t ts[E];
                    nx_examples_t res = {.x = ex_x, .label = label, .ts_ms = ts, .cap = E};
                    for (size_t i = 0; i < E * dim; i++)
                        x[i] = NAN;
                    x[E * dim] = 7.0f;
                    CHECK(dim <= 64 && nx_store_update(store, ev, E, t0, x, NULL, &res) == 0,
                          "update");
                    for (size_t i = 0; i < E * dim; i++)
                        unwritten += !isfinite(x[i]);
                    overrun += x[E * dim] != 7.0f;
                    for (size_t i = 0; i < dim; i++) {
                        const char *a = nx_store_feature_name(store, i);
                        badnames += !a || !a[0];
                        for (size_t j = 0; a && j < i; j++)
                            badnames += strcmp(a, nx_store_feature_name(store, j)) == 0;
                    }
                    badnames += nx_store_feature_name(store, dim) != NULL;
                    free(x);
                    nx_store_destroy(store);
                }
    CHECK(unwritten == 0 && overrun == 0 && badnames == 0,
          "%d layouts: %d places left unwritten, %d writes past the vector, %d bad names", stores,
          unwritten, overrun, badnames);
}

/* The unrolled default-layout code (vector_333, its counter update)
 * against the generic code: a random stream with out-of-order events,
 * sessions, prices present and absent, through two stores that differ only
 * in force_generic, normalised: identical vectors and examples, bit for
 * bit. */
static void test_layout333(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.n_scores = 4;
    nx_store_params_t pg = p;
    pg.force_generic = 1;
    char err[256];
    nx_store_t *a = nx_store_new(&p, test_key, err, sizeof err);
    nx_store_t *b = nx_store_new(&pg, test_key, err, sizeof err);
    CHECK(a && b, "store: %s", err);
    enum { N = 20000, B = 64, USERS = 300 };
    size_t dim = nx_store_dim(a);
    CHECK(dim == 38, "default layout has %zu features", dim);
    float *xa = calloc(B * dim, sizeof *xa), *xb = calloc(B * dim, sizeof *xb);
    float *ea = calloc(B * dim, sizeof *ea), *eb = calloc(B * dim, sizeof *eb);
    int32_t la[B], lb[B];
    int64_t ta[B], tb[B];
    uint8_t sa[B], sb[B];
    nx_examples_t ra = {.x = ea, .label = la, .ts_ms = ta, .cap = B};
    nx_examples_t rb = {.x = eb, .label = lb, .ts_ms = tb, .cap = B};
    char ids[B][16];
    nx_event_t ev[B];
    uint64_t s = 99;
    int64_t t = 1700000000000LL;
    int diff_x = 0, diff_ex = 0;
    for (int e0 = 0; e0 < N; e0 += B) {
        for (int j = 0; j < B; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t r = s >> 16;
            snprintf(ids[j], sizeof ids[j], "u%d", (int)(r % USERS));
            t += (int64_t)((r >> 10) % 40000); /* up to 40 s apart */
            int64_t ts = (r >> 30) % 10 == 0 ? t - (int64_t)((r >> 34) % 600000) : t; /* late */
            double price = (r >> 40) % 3 == 0 ? NAN : (double)((r >> 42) % 10000) / 100.0;
            ev[j] = mk_event(ids[j], (int)((r >> 50) % 3), ts, 1 + (r >> 20) % 7, 1 + (r >> 24) % 3,
                             (r >> 28) % 4 == 0 ? 0 : 1 + (r >> 44) % 5, price, 1, 0);
        }
        CHECK(nx_store_update(a, ev, B, t - 60000, xa, sa, &ra) == 0 &&
                  nx_store_update(b, ev, B, t - 60000, xb, sb, &rb) == 0,
              "update");
        diff_x += memcmp(xa, xb, B * dim * sizeof *xa) != 0;
        diff_ex += ra.n != rb.n || memcmp(ea, eb, ra.n * dim * sizeof *ea) != 0 ||
                   memcmp(la, lb, ra.n * sizeof *la) != 0;
    }
    CHECK(diff_x == 0 && diff_ex == 0,
          "default-layout path differs from the generic one: %d "
          "batches of vectors, %d of examples",
          diff_x, diff_ex);
    free(xa);
    free(xb);
    free(ea);
    free(eb);
    nx_store_destroy(a);
    nx_store_destroy(b);
}

int main(void) {
    test_siphash();
    test_keyfile();
    test_half();
    test_norm();
    test_norm_blend();
    test_norm_step();
    test_norm_isa();
    test_norm_v1();
    test_params();
    test_layout_table();
    test_layout333();
    test_hand_sequence();
    test_hand_session_counts();
    test_reference();
    test_resize();
    test_partitions();
    test_changes();
    test_quant();
    test_age_saturation();
    test_half_counters();
    test_pend8();
    test_v3_records();
    test_checkpoint(NX_FEAT_BASE);
    test_checkpoint(NX_FEAT_ALL);
    test_label_families();
    test_family_records();
    test_scores();
    test_score_widths();
    if (failures) {
        fprintf(stderr, "test_features: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_features: all passed\n");
    return 0;
}
