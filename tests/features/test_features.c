/*
 * test_features.c: unit tests of features/' building blocks, linking only
 * nx_features: SipHash-2-4 against its reference vectors, the key file,
 * fp16 conversion (every value, both instruction sets), the normaliser
 * (against sums in double, its step form, its older stream, both
 * instruction sets), the 8-bit codes of pending features, fp16 counters
 * with stochastic rounding and saturating ages. The store itself is
 * tested by test_store.c, test_store_ref.c and test_store_persist.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "features_check.h"
#include "half.h"
#include "norm.h"
#include "quant.h"
#include "siphash.h"
#include "store.h"
#include "store_int.h"

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

int main(void) {
    test_siphash();
    test_keyfile();
    test_half();
    test_norm();
    test_norm_blend();
    test_norm_step();
    test_norm_isa();
    test_norm_v1();
    test_quant();
    test_age_saturation();
    test_half_counters();
    test_pend8();
    return check_exit("test_features");
}
