/*
 * xstats.c: the item and category statistics table (xstats.h).
 */
#include "xstats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Stream tag "NXX1" and the version of what follows it. */
#define XS_MAGIC   0x3158584eu
#define XS_VERSION 1u

/* A slot, as 32-bit words: the key (0 = empty), its latest time (s), the
 * decayed event count, then the decayed label count of each class. */
enum { W_KEY, W_TIME, W_EVENTS, W_LABELS };

struct nx_xstats {
    uint32_t *slots;                    /* (n_slots * words) mapped, lazily zeroed */
    size_t map_bytes;                   /* mapped length */
    uint64_t n_slots;                   /* a power of two, >= 2 */
    int shift;                          /* 64 - log2(buckets): the bucket is the hash's top bits */
    int words;                          /* words per slot: 8 or 16 */
    int n_classes;                      /* label classes */
    int64_t window_ms;                  /* decay time constant */
    float inv_window_s;                 /* 1 / window, per second */
    uint32_t prior_time;                /* the prior's latest time (s) */
    float prior[NX_XSTATS_MAX_CLASSES]; /* decayed label counts over all keys */
};

/* exp(x) for x <= 0: n = round(x / ln 2), r = x - n ln 2 (two parts,
 * |r| <= 0.347), exp(r) by its Taylor series to r^6 (truncation < 1.3e-7),
 * times 2^n from the exponent bits; 0 below -87. Plain float operations, so
 * the same bits everywhere (libm's expf may take another path on another
 * CPU). */
static float exp_neg(float x) {
    if (x < -87.0f)
        return 0.0f;
    const float shift = 12582912.0f; /* 1.5 * 2^23: rounds to nearest */
    float n = (x * 1.44269504f + shift) - shift;
    float r = x - n * 0.693145752f - n * 1.42860677e-6f;
    float p =
        1.0f +
        r * (1.0f +
             r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Event time in whole seconds, as a slot keeps it: the codec refuses times
 * before 2000, and 32 bits of seconds reach 2106. Out of range: clamped. */
static uint32_t secs(int64_t ts_ms) {
    if (ts_ms <= 0)
        return 0;
    int64_t s = ts_ms / 1000;
    return s > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static float word_f(const uint32_t *w) {
    float f;
    memcpy(&f, w, sizeof f);
    return f;
}
static void set_f(uint32_t *w, float f) {
    memcpy(w, &f, sizeof f);
}

/* Brings counters c[0..n) kept at *time to time t: decayed if t is later
 * (t becomes their time); returns the weight of an addition at t (1, or
 * its decay to *time if t is earlier). */
static float advance(const nx_xstats_t *xs, uint32_t *time, uint32_t t, uint32_t *c, int n) {
    if (t > *time) {
        float f = exp_neg(-(float)(t - *time) * xs->inv_window_s);
        for (int k = 0; k < n; k++)
            set_f(&c[k], word_f(&c[k]) * f);
        *time = t;
        return 1.0f;
    }
    if (t < *time)
        return exp_neg(-(float)(*time - t) * xs->inv_window_s);
    return 1.0f;
}

static uint64_t bucket_of(const nx_xstats_t *xs, uint32_t key) {
    return ((uint64_t)key * 0x9e3779b97f4a7c15ull) >> xs->shift;
}

static uint32_t *slot(const nx_xstats_t *xs, uint64_t i) {
    return xs->slots + i * (uint64_t)xs->words;
}

/* The slot holding key, or NULL. */
static uint32_t *lookup(const nx_xstats_t *xs, uint32_t key) {
    uint64_t b = bucket_of(xs, key) * 2;
    for (int j = 0; j < 2; j++) {
        uint32_t *s = slot(xs, b + (uint64_t)j);
        if (s[W_KEY] == key)
            return s;
    }
    return NULL;
}

/* The slot of key, taken if need be: the first empty one of its bucket,
 * else the one with the older time (the first on a tie), zeroed for key at
 * time t. */
static uint32_t *claim(nx_xstats_t *xs, uint32_t key, uint32_t t) {
    uint64_t b = bucket_of(xs, key) * 2;
    uint32_t *s0 = slot(xs, b), *s1 = slot(xs, b + 1), *s;
    if (s0[W_KEY] == key)
        return s0;
    if (s1[W_KEY] == key)
        return s1;
    if (!s0[W_KEY])
        s = s0;
    else if (!s1[W_KEY])
        s = s1;
    else
        s = s1[W_TIME] < s0[W_TIME] ? s1 : s0;
    memset(s, 0, (size_t)xs->words * sizeof *s);
    s[W_KEY] = key;
    s[W_TIME] = t;
    return s;
}

nx_xstats_t *nx_xstats_new(size_t bytes, int n_classes, int64_t window_ms, char *errstr,
                           size_t errstr_size) {
    if (n_classes < 1 || n_classes > NX_XSTATS_MAX_CLASSES || window_ms <= 0 || bytes < 4096) {
        snprintf(errstr, errstr_size,
                 "xstats: need 1..%d classes, a window > 0 and at least 4096 bytes (%d, %" PRId64
                 " ms, %zu)",
                 NX_XSTATS_MAX_CLASSES, n_classes, window_ms, bytes);
        return NULL;
    }
    nx_xstats_t *xs = calloc(1, sizeof *xs);
    if (!xs) {
        snprintf(errstr, errstr_size, "xstats: out of memory");
        return NULL;
    }
    xs->n_classes = n_classes;
    xs->words = W_LABELS + n_classes <= 8 ? 8 : 16;
    xs->window_ms = window_ms;
    xs->inv_window_s = (float)(1000.0 / (double)window_ms);
    size_t slot_bytes = (size_t)xs->words * sizeof(uint32_t);
    uint64_t n = 2;
    while (n * 2 * slot_bytes <= bytes)
        n *= 2;
    xs->n_slots = n;
    int log2b = 0;
    while (((uint64_t)1 << log2b) < n / 2)
        log2b++;
    xs->shift = 64 - log2b;
    xs->map_bytes = n * slot_bytes;
    void *p = mmap(NULL, xs->map_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        snprintf(errstr, errstr_size, "xstats: cannot map %zu bytes", xs->map_bytes);
        free(xs);
        return NULL;
    }
    xs->slots = p;
    return xs;
}

void nx_xstats_destroy(nx_xstats_t *xs) {
    if (!xs)
        return;
    munmap(xs->slots, xs->map_bytes);
    free(xs);
}

size_t nx_xstats_bytes(const nx_xstats_t *xs) {
    return xs->map_bytes;
}

void nx_xstats_event(nx_xstats_t *xs, uint32_t key, int64_t ts_ms) {
    uint32_t t = secs(ts_ms);
    uint32_t *s = claim(xs, key, t);
    float w = advance(xs, &s[W_TIME], t, s + W_EVENTS, 1 + xs->n_classes);
    set_f(&s[W_EVENTS], word_f(&s[W_EVENTS]) + w);
}

void nx_xstats_label(nx_xstats_t *xs, uint32_t key, int64_t ts_ms, int label) {
    if (label < 0 || label >= xs->n_classes)
        return;
    uint32_t t = secs(ts_ms);
    uint32_t *s = claim(xs, key, t);
    float w = advance(xs, &s[W_TIME], t, s + W_EVENTS, 1 + xs->n_classes);
    set_f(&s[W_LABELS + label], word_f(&s[W_LABELS + label]) + w);
    /* the prior: the same decay, its own clock */
    float pw = 1.0f;
    if (t > xs->prior_time) {
        float f = exp_neg(-(float)(t - xs->prior_time) * xs->inv_window_s);
        for (int k = 0; k < xs->n_classes; k++)
            xs->prior[k] *= f;
        xs->prior_time = t;
    } else if (t < xs->prior_time) {
        pw = exp_neg(-(float)(xs->prior_time - t) * xs->inv_window_s);
    }
    xs->prior[label] += pw;
}

void nx_xstats_read(const nx_xstats_t *xs, uint32_t key, int64_t ts_ms, float *events,
                    float *rate) {
    int C = xs->n_classes;
    float psum = 0.0f;
    for (int k = 0; k < C; k++)
        psum += xs->prior[k];
    float A = NX_XSTATS_PRIOR, n = 0.0f, f = 1.0f;
    const uint32_t *s = key ? lookup(xs, key) : NULL; /* 0: no key (an empty slot's) */
    uint32_t t = secs(ts_ms);
    if (s && t > s[W_TIME])
        f = exp_neg(-(float)(t - s[W_TIME]) * xs->inv_window_s);
    if (s)
        for (int k = 0; k < C; k++)
            n += word_f(&s[W_LABELS + k]);
    n *= f;
    *events = s ? word_f(&s[W_EVENTS]) * f : 0.0f;
    for (int k = 0; k < C; k++) {
        float prior = psum > 0.0f ? xs->prior[k] / psum : 1.0f / (float)C;
        float own = s ? word_f(&s[W_LABELS + k]) * f : 0.0f;
        rate[k] = (own + A * prior) / (n + A);
    }
}

void nx_xstats_prefetch(const nx_xstats_t *xs, uint32_t key) {
    __builtin_prefetch(slot(xs, bucket_of(xs, key) * 2), 1);
}

/* --- streams ------------------------------------------------------------ */

typedef struct xs_head {
    uint32_t magic, version;
    uint32_t n_classes, words;
    int64_t window_ms;
    uint64_t n_slots; /* of the table saved */
    uint64_t n_used;  /* slots that follow */
    uint32_t prior_time, reserved;
} xs_head_t;

int nx_xstats_save(const nx_xstats_t *xs, nx_stream_write_fn write, void *opaque) {
    xs_head_t hd = {XS_MAGIC,
                    XS_VERSION,
                    (uint32_t)xs->n_classes,
                    (uint32_t)xs->words,
                    xs->window_ms,
                    xs->n_slots,
                    0,
                    xs->prior_time,
                    0};
    for (uint64_t i = 0; i < xs->n_slots; i++)
        hd.n_used += slot(xs, i)[W_KEY] != 0;
    if (write(opaque, &hd, sizeof hd) ||
        write(opaque, xs->prior, sizeof(float) * (size_t)xs->n_classes))
        return -1;
    /* Used slots in index order, each behind its index. Pages of the table
     * that were never touched read as zeros without being committed. */
    for (uint64_t i = 0; i < xs->n_slots; i++) {
        const uint32_t *s = slot(xs, i);
        if (!s[W_KEY])
            continue;
        if (write(opaque, &i, sizeof i) || write(opaque, s, (size_t)xs->words * sizeof *s))
            return -1;
    }
    return 0;
}

int nx_xstats_restore(nx_xstats_t *xs, nx_stream_read_fn read, void *opaque, char *errstr,
                      size_t errstr_size) {
    xs_head_t hd;
    uint32_t buf[16];
    if (read(opaque, &hd, sizeof hd) || hd.magic != XS_MAGIC) {
        snprintf(errstr, errstr_size, "xstats: not a table stream");
        return -1;
    }
    if (hd.version > XS_VERSION) {
        snprintf(errstr, errstr_size, "xstats: stream version %u is newer than this one's (%u)",
                 hd.version, XS_VERSION);
        return -1;
    }
    if (hd.n_classes != (uint32_t)xs->n_classes || hd.words != (uint32_t)xs->words ||
        hd.window_ms != xs->window_ms) {
        snprintf(errstr, errstr_size,
                 "xstats: stream of %u classes, window %" PRId64 " ms; the table has %d, %" PRId64
                 " ms",
                 hd.n_classes, hd.window_ms, xs->n_classes, xs->window_ms);
        return -1;
    }
    /* empty the table without touching its pages: private anonymous
     * pages read as zeros again once dropped */
    if (madvise(xs->slots, xs->map_bytes, MADV_DONTNEED)) {
        snprintf(errstr, errstr_size, "xstats: cannot empty the table");
        return -1;
    }
    if (read(opaque, xs->prior, sizeof(float) * (size_t)xs->n_classes))
        goto short_read;
    xs->prior_time = hd.prior_time;
    for (uint64_t k = 0; k < hd.n_used; k++) {
        uint64_t i;
        if (read(opaque, &i, sizeof i) || read(opaque, buf, (size_t)xs->words * sizeof *buf))
            goto short_read;
        if (!buf[W_KEY] || i >= hd.n_slots) {
            snprintf(errstr, errstr_size, "xstats: bad slot in stream");
            return -1;
        }
        uint32_t *s;
        if (hd.n_slots == xs->n_slots) {
            s = slot(xs, i);
        } else {
            /* another size: by the insertion rule; a key met twice (two
             * fingerprints folding into one bucket pair) keeps the later */
            s = claim(xs, buf[W_KEY], buf[W_TIME]);
        }
        memcpy(s, buf, (size_t)xs->words * sizeof *s);
    }
    return 0;
short_read:
    snprintf(errstr, errstr_size, "xstats: short read");
    return -1;
}
