/* store.c: per-user feature store (see store.h for layout and guarantees). */
#include "store.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "norm.h"
#include "siphash.h"
#include "store_int.h"

/* Software pipeline of nx_store_update: while event i is applied, event
 * i + NX_AHEAD_BUCKET is hashed and its bucket head prefetched, event
 * i + NX_AHEAD_RECORD has its bucket read and the first record of the
 * chain prefetched (every line), and event i + NX_AHEAD_LIST, if that
 * record is its user's, has its expiry-list neighbours prefetched (a
 * resolving event unlinks the user: two random records); if it is not
 * (~6% of events at 10M users, Zipf), the next record of the chain is
 * prefetched instead and the neighbours follow at i + NX_AHEAD_CHAIN, so
 * no stage waits on a line it did not prefetch. That keeps ~8 lines a step
 * in flight, within the core's line fill buffers; the blocked passes this
 * replaced issued 32 x 5 record prefetches in one burst and stalled on the
 * prefetches themselves (10M users: 480-605 ns an update before). DRAM
 * latency here is ~220 ns, an update ~270 ns: each stage leaves at least
 * two updates' time for its lines to arrive. Measured in alternating runs
 * at 10M users, once the neighbour prefetch was really emitted (see
 * NX_PREFETCH_FN): 24/12/5/2 ran 3.43-4.08M updates/s, 20/10/5/2
 * 3.39-3.81M, 20/12/5/2 and 28/14/6/2 alike, 16/8/5/2 3.20-3.81M. The
 * distances can be set with -D for such sweeps. Everything read ahead is
 * only a hint: apply looks the user up again. */
#ifndef NX_AHEAD_BUCKET
#define NX_AHEAD_BUCKET 24
#define NX_AHEAD_RECORD 12
#define NX_AHEAD_LIST   5
#define NX_AHEAD_CHAIN  2
#endif
#define NX_RING 32 /* > NX_AHEAD_BUCKET, a power of two */
_Static_assert(NX_AHEAD_BUCKET < NX_RING && NX_AHEAD_CHAIN < NX_AHEAD_LIST &&
                   NX_AHEAD_LIST < NX_AHEAD_RECORD && NX_AHEAD_RECORD < NX_AHEAD_BUCKET,
               "pipeline stages in order, within the ring");

/* The time of day is looked up by quarter hour (96 a day; ms). */
#define NX_QUARTER_MS 900000

/* Maintenance stops this long before its budget ends: the longest slice
 * between clock checks (256 KB unmapped, ~25 us; 16 removals, ~16 us) must
 * still fit, so a tick ends within its budget. 50 us let 1 ms ticks end at
 * up to 1.04 ms at 10M users here (slices slowed by other processes). Budgets under twice this
 * get half of themselves as margin. */
#define NX_MAINT_MARGIN_US 100

/* --- small helpers ------------------------------------------------------ */

/* 32-bit fingerprint of an item/category/session hash, never 0. */
static inline uint32_t fp32(uint64_t h) {
    return (uint32_t)(h ^ (h >> 32)) | 1u;
}

static void fmt_dur(char *buf, size_t size, int64_t ms) {
    if (ms % 3600000 == 0)
        snprintf(buf, size, "%" PRId64 "h", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, size, "%" PRId64 "m", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%" PRId64 "s", ms / 1000);
    else
        snprintf(buf, size, "%" PRId64 "ms", ms);
}

void nx_store_params_default(nx_store_params_t *params) {
    memset(params, 0, sizeof *params);
    params->n_types = 3;
    strcpy(params->type_names[0], "click");
    strcpy(params->type_names[1], "cart");
    strcpy(params->type_names[2], "purchase");
    params->n_windows = 3;
    params->window_ms[0] = 5 * 60 * 1000;
    params->window_ms[1] = 60 * 60 * 1000;
    params->window_ms[2] = 24 * 60 * 60 * 1000;
    /* 30 s, 5 min and 1 h buckets: would-be ring resolution */
    params->window_buckets[0] = 10;
    params->window_buckets[1] = 12;
    params->window_buckets[2] = 24;
    params->value_type = 2;
    params->cart_type = 1;
    params->user_ttl_ms = 24 * 60 * 60 * 1000;
    params->max_users = 10000000;
    params->session_gap_ms = 30 * 60 * 1000;
    params->recent_items = 4;
    params->families = NX_FEAT_ALL;
    params->clip = 5.0f; /* 5 sigma: keeps outliers from dominating a step */
    params->horizon_ms = 30 * 60 * 1000;
    params->normalise = 1;
    params->seed = 1;
}

/* --- schema ------------------------------------------------------------- */

static int build_schema(nx_store_t *store, char *errstr, size_t errstr_size) {
    const nx_store_params_t *p = &store->p;
    /* per window and type + per window, 4 per type, and the fixed ones
     * (session 7, revisits 4, time 4, price 2) */
    size_t cap = (size_t)p->n_windows * (size_t)(p->n_types + 1) + 4 * (size_t)p->n_types + 17;
    char win[NX_STORE_MAX_WINDOWS][24];
    store->names = calloc(cap, sizeof *store->names);
    if (!store->names) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (int w = 0; w < p->n_windows; w++)
        fmt_dur(win[w], sizeof win[w], p->window_ms[w]);
    size_t d = 0;
#define NAME(...) snprintf(store->names[d++], NX_STORE_FEATURE_NAME_MAX, __VA_ARGS__)
    if (p->families & NX_FEAT_COUNTS)
        for (int w = 0; w < p->n_windows; w++)
            for (int t = 0; t < p->n_types; t++)
                NAME("cnt_%.23s_%.31s", win[w], p->type_names[t]);
    if (p->families & NX_FEAT_VALUE)
        for (int w = 0; w < p->n_windows; w++)
            NAME("value_%.23s", win[w]);
    if (p->families & NX_FEAT_RECENCY)
        for (int t = 0; t < p->n_types; t++) {
            NAME("since_%.31s_s", p->type_names[t]);
            NAME("since_%.31s_missing", p->type_names[t]);
        }
    if (p->families & NX_FEAT_SESSION) {
        NAME("session_events");
        NAME("session_duration_s");
        NAME("session_new");
        NAME("since_prev_event_s");
        NAME("since_prev_event_missing");
        NAME("session_carts");
        NAME("session_cart_open");
    }
    if (p->families & NX_FEAT_REVISITS) {
        NAME("item_revisits");
        NAME("category_revisit");
        NAME("session_revisits");
        NAME("category_run");
    }
    if (p->families & NX_FEAT_ONEHOT)
        for (int t = 0; t < p->n_types; t++)
            NAME("is_%.31s", p->type_names[t]);
    if (p->families & NX_FEAT_TIME) {
        NAME("hour_sin");
        NAME("hour_cos");
        NAME("dow_sin");
        NAME("dow_cos");
    }
    if (p->families & NX_FEAT_PRICE) {
        NAME("log_price");
        NAME("price_missing");
    }
#undef NAME
    if (d == 0) {
        snprintf(errstr, errstr_size, "features: every family is switched off");
        return -1;
    }
    store->dim = d;
    /* Hash: window kind tag, then the names, newline-separated. */
    size_t len = 16 + d * NX_STORE_FEATURE_NAME_MAX, off = 0;
    char *buf = malloc(len);
    if (!buf) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    off += (size_t)snprintf(buf, len, "decay-v1\n");
    for (size_t i = 0; i < d; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s\n", store->names[i]);
    store->schema_hash = nx_event_id_hash(buf, off);
    free(buf);
    return 0;
}

size_t nx_store_dim(const nx_store_t *store) {
    return store->dim;
}
const char *nx_store_feature_name(const nx_store_t *store, size_t i) {
    return i < store->dim ? store->names[i] : NULL;
}
uint64_t nx_store_schema_hash(const nx_store_t *store) {
    return store->schema_hash;
}

/* --- construction ------------------------------------------------------- */

static int check_params(const nx_store_params_t *p, char *errstr, size_t errstr_size) {
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(errstr, errstr_size, __VA_ARGS__);                                                \
        return -1;                                                                                 \
    } while (0)
    if (p->n_types < 1 || p->n_types > NX_EVENT_MAX_TYPES)
        BAD("features: n_types %d not in 1..%d", p->n_types, NX_EVENT_MAX_TYPES);
    for (int t = 0; t < p->n_types; t++)
        if (!p->type_names[t][0] || !memchr(p->type_names[t], 0, NX_STORE_TYPE_NAME_MAX))
            BAD("features: event type %d has no name (or one over %d bytes)", t,
                NX_STORE_TYPE_NAME_MAX - 1);
    if (p->n_windows < 1 || p->n_windows > NX_STORE_MAX_WINDOWS)
        BAD("features: n_windows %d not in 1..%d", p->n_windows, NX_STORE_MAX_WINDOWS);
    for (int w = 0; w < p->n_windows; w++) {
        if (p->window_ms[w] <= 0)
            BAD("features: window %d length %" PRId64 " ms must be > 0", w, p->window_ms[w]);
        if (w && p->window_ms[w] <= p->window_ms[w - 1])
            BAD("features: window lengths must be ascending");
    }
    if (p->value_type < -1 || p->value_type >= p->n_types)
        BAD("features: value_type %d not in -1..%d", p->value_type, p->n_types - 1);
    if (p->cart_type < -1 || p->cart_type >= p->n_types)
        BAD("features: cart_type %d not in -1..%d", p->cart_type, p->n_types - 1);
    if (p->horizon_ms <= 0)
        BAD("features: horizon %" PRId64 " ms must be > 0", p->horizon_ms);
    if (p->user_ttl_ms < p->horizon_ms)
        BAD("features: user_ttl %" PRId64 " ms must be >= horizon %" PRId64 " ms", p->user_ttl_ms,
            p->horizon_ms);
    if (p->max_users < 1 || p->max_users > 0xfffffff0u)
        BAD("features: max_users %" PRIu64 " not in 1..4294967280", p->max_users);
    if (p->session_gap_ms <= 0)
        BAD("features: session_gap must be > 0");
    if (p->recent_items < 0 || p->recent_items > NX_STORE_MAX_RECENT)
        BAD("features: recent_items %d not in 0..%d", p->recent_items, NX_STORE_MAX_RECENT);
    if (!(p->clip > 0) || p->clip > 60000.0f) /* fp16 pending storage tops at 65504 */
        BAD("features: clip %g not in (0, 60000]", (double)p->clip);
    if (p->n_scores < 0 || p->n_scores > NX_STORE_MAX_SCORES)
        BAD("features: n_scores %d not in 0..%d", p->n_scores, NX_STORE_MAX_SCORES);
#undef BAD
    return 0;
}

static size_t align8(size_t x) {
    return (x + 7) & ~(size_t)7;
}

nx_store_t *nx_store_new(const nx_store_params_t *params, const uint8_t key[16], char *errstr,
                         size_t errstr_size) {
    nx_store_t *store = NULL;
    if (check_params(params, errstr, errstr_size))
        return NULL;
    store = calloc(1, sizeof *store);
    if (!store)
        goto oom;
    store->p = *params;
    memcpy(store->key, key, NX_SIPHASH_KEY_LEN);
    if (build_schema(store, errstr, errstr_size))
        goto err;
    const nx_store_params_t *p = &store->p;
    for (int w = 0; w < p->n_windows; w++)
        store->inv_window_ms[w] = (float)(1.0 / (double)p->window_ms[w]);
    for (int q = 0; q < 96; q++) {
        double a = 2.0 * M_PI * q / 96.0;
        store->q_sin[q] = (float)sin(a);
        store->q_cos[q] = (float)cos(a);
    }
    for (int dw = 0; dw < 7; dw++) {
        float b = (float)dw * (float)(2.0 * M_PI / 7.0);
        store->dow_sin[dw] = sinf(b);
        store->dow_cos[dw] = cosf(b);
    }
    store->max_window_ms = p->window_ms[p->n_windows - 1];
    for (int n = 0; n < 256; n++)
        store->log1p_u8[n] = (float)log1p((double)n);
    int nc = p->n_windows * p->n_types, ncv = nc + p->n_windows;
    store->vec_counters = ncv % 4 == 0;
    store->layout333 =
        p->n_types == 3 && p->n_windows == 3 && p->families == NX_FEAT_ALL && !p->force_generic;
    for (int k = 0; k < ncv; k++) {
        int w = k < nc ? k / p->n_types : k - nc;
        store->lane_win[k] = (uint8_t)w;
        store->lane_val[k] = k < nc ? 0 : -1;
        for (int t = 0; t < p->n_types; t++)
            store->lane_inc[t][k] = k < nc && k % p->n_types == t ? 1.0f : 0.0f;
    }

    size_t off = sizeof(nx_user_t);
    store->off_last = off;
    off += sizeof(int64_t) * (size_t)p->n_types;
    store->off_cnt = off;
    off += sizeof(float) * (size_t)p->n_windows * (size_t)p->n_types;
    store->off_val = off; /* right after the counts: decay scales both in one loop */
    off += sizeof(float) * (size_t)p->n_windows;
    store->off_items = off;
    off += sizeof(uint32_t) * (size_t)p->recent_items;
    store->off_cats = off;
    off += sizeof(uint32_t) * (size_t)p->recent_items;
    store->off_pend = off;
    off += sizeof(uint16_t) * store->dim;
    store->off_score = off;
    off += sizeof(uint16_t) * (size_t)p->n_scores;
    store->off_views = off; /* bytes last: no alignment to keep after them */
    off += (size_t)p->recent_items;
    store->rec_size = align8(off);

    if (nx_table_init(store))
        goto oom;
    store->norm = nx_norm_new(store->dim, p->clip);
    store->raw = calloc(store->dim, sizeof *store->raw);
    if (!store->norm || !store->raw)
        goto oom;
    if (p->n_scores > 0) {
        store->memo_hash = malloc(NX_STORE_SCORE_MEMO * sizeof *store->memo_hash);
        store->memo_idx = malloc(NX_STORE_SCORE_MEMO * sizeof *store->memo_idx);
        store->memo_maker = malloc(NX_STORE_SCORE_MEMO * sizeof *store->memo_maker);
        if (!store->memo_hash || !store->memo_idx || !store->memo_maker)
            goto oom;
    }
    store->rng = p->seed;
    store->half_isa = nx_half_isa();
    store->st.record_bytes = store->rec_size;
    return store;
oom:
    snprintf(errstr, errstr_size, "features: out of memory");
err:
    nx_store_destroy(store);
    return NULL;
}

void nx_store_destroy(nx_store_t *store) {
    if (!store)
        return;
    free(store->memo_maker);
    free(store->memo_idx);
    free(store->memo_hash);
    free(store->raw);
    nx_norm_destroy(store->norm);
    nx_table_free(store);
    free(store->names);
    free(store);
}

/* --- features ----------------------------------------------------------- */

/* Four floats at once: GCC/clang vector extensions, SSE on x86-64 and NEON
 * on aarch64 without intrinsics. The windows' decay factors are one 4-lane
 * exp (3 libm expf calls were ~7% of an update's instructions). */
typedef float nx_v4f __attribute__((vector_size(16)));
typedef int32_t nx_v4i __attribute__((vector_size(16)));

/* log(y) for finite y >= 1, inline and branch-free (the hot path takes ~20
 * logs per event; a libm call each was ~15% of it). y = 2^e * m with m in
 * [sqrt(1/2), sqrt(2)), found by offsetting the bits by those of sqrt(1/2);
 * then log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, by its
 * series to s^9: truncation error 2|s|^11/11 < 2e-9. Result within a few
 * float ulps of log(y). Scalar on purpose: a 4-lane version loading the
 * just-written features as vectors stalled on store forwarding and was
 * slower despite fewer instructions. */
static inline float fast_log(float y) {
    uint32_t b;
    memcpy(&b, &y, sizeof b);
    uint32_t t = b - 0x3f3504f3u; /* bits of sqrt(1/2) */
    int32_t e = (int32_t)t >> 23;
    uint32_t mb = (t & 0x007fffffu) + 0x3f3504f3u;
    float m;
    memcpy(&m, &mb, sizeof m);
    float sv = (m - 1.0f) / (m + 1.0f), s2 = sv * sv;
    float poly = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
    return (float)e * 0.693147181f + 2.0f * sv * poly;
}

/* log(1 + x) for x >= 0. */
static inline float flog1p(float x) {
    return fast_log(1.0f + x);
}
static inline float log1p_pos(float x) {
    return flog1p(x > 0 ? x : 0);
}

/* exp(x) for x <= 0, 4 lanes, branch-free: 0 below -87 (exp = 1.6e-38),
 * n = round(x / ln 2) by the 1.5 * 2^23 trick (round to nearest even),
 * r = x - n ln 2 in two parts (|r| <= 0.347), exp(r) by its Taylor series
 * to r^6 (truncation |r|^7/7! < 1.3e-7), times 2^n built in the exponent
 * bits (n >= -126). Relative error < 3e-7. */
static inline nx_v4f exp4(nx_v4f x) {
    const nx_v4f lo = {-87.0f, -87.0f, -87.0f, -87.0f};
    nx_v4i below = x < lo;
    x = (nx_v4f)(((nx_v4i)x & ~below) | ((nx_v4i)lo & below));
    const float shift = 12582912.0f; /* 1.5 * 2^23 */
    nx_v4f n = (x * 1.44269504f + shift) - shift;
    nx_v4f r = x - n * 0.693145752f - n * 1.42860677e-6f; /* ln 2 = hi + lo */
    nx_v4f p =
        1.0f +
        r * (1.0f +
             r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    nx_v4i scale = (__builtin_convertvector(n, nx_v4i) + 127) << 23;
    /* below -87: 0, as expf gives there, so counters do not decay into
     * (slow) subnormals */
    return (nx_v4f)((nx_v4i)(p * (nx_v4f)scale) & ~below);
}

/* flog1p on 4 lanes: the same operations as fast_log(1 + x) lane by lane,
 * so the same bits. Used where the inputs are whole vectors in memory
 * written as vectors (the decayed counters), which the CPU forwards from
 * its store buffer; loading just-written scalars as a vector cannot be
 * forwarded (see fast_log). */
static inline nx_v4f log1p4(nx_v4f x) {
    typedef uint32_t nx_v4u __attribute__((vector_size(16)));
    nx_v4f y = 1.0f + x;
    nx_v4u t = (nx_v4u)y - 0x3f3504f3u; /* bits of sqrt(1/2) */
    nx_v4i e = (nx_v4i)t >> 23;
    nx_v4f m = (nx_v4f)((t & 0x007fffffu) + 0x3f3504f3u);
    nx_v4f sv = (m - 1.0f) / (m + 1.0f), s2 = sv * sv;
    nx_v4f poly = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
    return __builtin_convertvector(e, nx_v4f) * 0.693147181f + 2.0f * sv * poly;
}

/* Move-to-front insert of fp into a ring of at most k entries. views: NULL,
 * or the ring's per-entry event counts (saturating at 255), moved along.
 * Returns the entry's count before this event (0 = not there; 1 for a hit
 * without views). */
static inline int recent_touch(uint32_t *ring, uint8_t *views, uint8_t *n, int k, uint32_t fp) {
    int pos = -1;
    for (int i = 0; i < *n; i++)
        if (ring[i] == fp) {
            pos = i;
            break;
        }
    if (k == 0)
        return 0;
    int before = 0;
    if (pos >= 0) {
        before = views ? views[pos] : 1;
    } else {
        pos = *n < k ? *n : k - 1;
        if (*n < k)
            (*n)++;
    }
    /* Rotate entries 0..pos by one, fp in front. A few words: carried in a
     * register, as the shifting loop this replaced became a memmove call. */
    uint32_t carry = fp;
    for (int i = 0; i <= pos; i++) {
        uint32_t tmp = ring[i];
        ring[i] = carry;
        carry = tmp;
    }
    if (views) {
        uint8_t vc = (uint8_t)(before < UINT8_MAX ? before + 1 : UINT8_MAX);
        for (int i = 0; i <= pos; i++) {
            uint8_t tmp = views[i];
            views[i] = vc;
            vc = tmp;
        }
    }
    return before;
}

static inline double event_value(const nx_store_params_t *p, const nx_event_t *ev) {
    if (p->value_type >= 0 && ev->type != p->value_type)
        return 0.0;
    if (!(ev->price >= 0)) /* NaN (absent) or negative */
        return 0.0;
    return ev->price * (ev->quantity > 0 ? ev->quantity : 1);
}

/* Floor division for ms -> days with negative times. */
static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* sin and cos of the time of day, from the table of the 96 quarter hours
 * and the angle b past the quarter (b < 2 pi / 96 = 0.0655) by
 * sin(a + b) = sin a cos b + cos a sin b, sin b and cos b by their series
 * to b^5 and b^6 (truncation < 1e-11): within a few float ulps, without
 * two libm calls per event. */
static inline void day_sincos(const nx_store_t *store, int64_t ms_of_day, float *s, float *c) {
    int q = (int)(ms_of_day / NX_QUARTER_MS);
    float b = (float)(ms_of_day - (int64_t)q * NX_QUARTER_MS) * (float)(2.0 * M_PI / 86400000.0);
    float b2 = b * b;
    float sb = b * (1.0f - b2 * (1.0f / 6 - b2 * (1.0f / 120)));
    float cb = 1.0f - b2 * (0.5f - b2 * (1.0f / 24 - b2 * (1.0f / 720)));
    *s = store->q_sin[q] * cb + store->q_cos[q] * sb;
    *c = store->q_cos[q] * cb - store->q_sin[q] * sb;
}

/* exp(-dt / L_w) for every window w, at once (unused lanes get 1). */
static inline void decay_factors(const nx_store_t *store, float dt, float f[NX_STORE_MAX_WINDOWS]) {
    _Static_assert(NX_STORE_MAX_WINDOWS == 4, "one 4-lane exp covers the windows");
    nx_v4f inv;
    memcpy(&inv, store->inv_window_ms, sizeof inv);
    nx_v4f v = exp4(-dt * inv);
    memcpy(f, &v, sizeof v);
}

/* What apply_event learns of an event before the update overwrites it. */
typedef struct nx_ev_ctx {
    int new_sess;        /* the event started a session */
    int item_views;      /* events on its item before it among the recent ones */
    int cat_rev;         /* its category was among the recent ones */
    int gap_missing;     /* the user's first event */
    int64_t prev_gap_ms; /* from the user's previous event (0 if late or first) */
} nx_ev_ctx_t;

/* featurize for the default layout (3 types, 3 windows, every family, 38
 * features), unrolled: the 12 counters take three 4-lane logs as in
 * featurize, and the seven other logs (recency per type, session length,
 * duration, gap, price) two more, their inputs gathered in registers (not
 * stored and reloaded as vectors: see fast_log). Lane for lane the same
 * operations as featurize: the same bits (tested). */
static inline __attribute__((always_inline)) void featurize_333(const nx_store_t *store,
                                                                nx_user_t *u, const nx_event_t *ev,
                                                                const nx_ev_ctx_t *cx, float *out) {
    const float *cnt = u_cnt(store, u);
    for (int k = 0; k < 12; k += 4) {
        nx_v4f c;
        memcpy(&c, cnt + k, sizeof c);
        c = log1p4(c);
        memcpy(out + k, &c, sizeof c);
    }
    int64_t T = u->clock;
    const int64_t *last = u_last(store, u);
    int miss0 = last[0] == NX_NEVER, miss1 = last[1] == NX_NEVER, miss2 = last[2] == NX_NEVER;
    /* a missing type's log input is 0: log1p(0) = 0, its feature */
    nx_v4f a = {miss0 ? 0.0f : (float)(T - last[0]) * 0.001f,
                miss1 ? 0.0f : (float)(T - last[1]) * 0.001f,
                miss2 ? 0.0f : (float)(T - last[2]) * 0.001f, (float)u->sess_len};
    int has_price = ev->price >= 0;
    float price = has_price ? (float)ev->price : 0.0f;
    nx_v4f b = {(float)(T - u->sess_start) * 0.001f, (float)cx->prev_gap_ms * 0.001f,
                price > 0 ? price : 0.0f, 0.0f};
    a = log1p4(a);
    b = log1p4(b);
    out[12] = a[0];
    out[13] = (float)miss0;
    out[14] = a[1];
    out[15] = (float)miss1;
    out[16] = a[2];
    out[17] = (float)miss2;
    out[18] = a[3];
    out[19] = b[0];
    out[20] = (float)cx->new_sess;
    out[21] = b[1];
    out[22] = (float)cx->gap_missing;
    out[23] = store->log1p_u8[u->carts];
    out[24] = u->carts ? 1.0f : 0.0f;
    int iv = cx->item_views, run = u->cat_run;
    out[25] = (float)(iv < NX_STORE_REVISIT_CAP ? iv : NX_STORE_REVISIT_CAP);
    out[26] = (float)cx->cat_rev;
    out[27] = store->log1p_u8[u->sess_rev];
    out[28] = (float)(run < NX_STORE_CATEGORY_RUN_CAP ? run : NX_STORE_CATEGORY_RUN_CAP);
    out[29] = ev->type == 0 ? 1.0f : 0.0f;
    out[30] = ev->type == 1 ? 1.0f : 0.0f;
    out[31] = ev->type == 2 ? 1.0f : 0.0f;
    const int64_t day = 86400000; /* ms per day */
    int64_t days = floor_div(ev->ts_ms, day);
    int dow = (int)(((days + 3) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    day_sincos(store, ev->ts_ms - days * day, &out[32], &out[33]);
    out[34] = store->dow_sin[dow];
    out[35] = store->dow_cos[dow];
    out[36] = has_price ? b[2] : 0.0f;
    out[37] = has_price ? 0.0f : 1.0f;
}

/* Writes the raw vector of u (state after ev) into out. */
static void featurize(const nx_store_t *store, nx_user_t *u, const nx_event_t *ev,
                      const nx_ev_ctx_t *cx, float *out) {
    if (store->layout333) {
        featurize_333(store, u, ev, cx, out);
        return;
    }
    const nx_store_params_t *p = &store->p;
    size_t d = 0;
    int64_t T = u->clock;
    const uint32_t both = NX_FEAT_COUNTS | NX_FEAT_VALUE;
    if (store->vec_counters && (p->families & both) == both) {
        /* counts then values: the record's order; 4 lanes at a time */
        const float *cnt = u_cnt(store, u);
        for (int k = 0; k < p->n_windows * (p->n_types + 1); k += 4) {
            nx_v4f c;
            memcpy(&c, cnt + k, sizeof c);
            c = log1p4(c);
            memcpy(out + k, &c, sizeof c);
        }
        d = (size_t)p->n_windows * (size_t)(p->n_types + 1);
    } else {
        if (p->families & NX_FEAT_COUNTS) {
            const float *cnt = u_cnt(store, u);
            for (int k = 0; k < p->n_windows * p->n_types; k++)
                out[d++] = flog1p(cnt[k]);
        }
        if (p->families & NX_FEAT_VALUE) {
            const float *val = u_val(store, u);
            for (int w = 0; w < p->n_windows; w++)
                out[d++] = flog1p(val[w]);
        }
    }
    if (p->families & NX_FEAT_RECENCY) {
        const int64_t *last = u_last(store, u);
        for (int t = 0; t < p->n_types; t++) {
            if (last[t] == NX_NEVER) {
                out[d++] = 0.0f;
                out[d++] = 1.0f;
            } else {
                out[d++] = flog1p((float)(T - last[t]) * 0.001f);
                out[d++] = 0.0f;
            }
        }
    }
    if (p->families & NX_FEAT_SESSION) {
        out[d++] = flog1p((float)u->sess_len);
        out[d++] = flog1p((float)(T - u->sess_start) * 0.001f);
        out[d++] = (float)cx->new_sess;
        out[d++] = flog1p((float)cx->prev_gap_ms * 0.001f);
        out[d++] = (float)cx->gap_missing;
        out[d++] = store->log1p_u8[u->carts];
        out[d++] = u->carts ? 1.0f : 0.0f;
    }
    if (p->families & NX_FEAT_REVISITS) {
        int iv = cx->item_views, run = u->cat_run;
        out[d++] = (float)(iv < NX_STORE_REVISIT_CAP ? iv : NX_STORE_REVISIT_CAP);
        out[d++] = (float)cx->cat_rev;
        out[d++] = store->log1p_u8[u->sess_rev];
        out[d++] = (float)(run < NX_STORE_CATEGORY_RUN_CAP ? run : NX_STORE_CATEGORY_RUN_CAP);
    }
    if (p->families & NX_FEAT_ONEHOT)
        for (int t = 0; t < p->n_types; t++)
            out[d++] = t == ev->type ? 1.0f : 0.0f;
    if (p->families & NX_FEAT_TIME) {
        const int64_t day = 86400000; /* ms per day */
        int64_t days = floor_div(ev->ts_ms, day);
        /* 1970-01-01 was a Thursday: +3 makes Monday 0 */
        int dow = (int)(((days + 3) % 7 + 7) % 7);
        day_sincos(store, ev->ts_ms - days * day, &out[d], &out[d + 1]);
        out[d + 2] = store->dow_sin[dow];
        out[d + 3] = store->dow_cos[dow];
        d += 4;
    }
    if (p->families & NX_FEAT_PRICE) {
        int has = ev->price >= 0;
        out[d++] = has ? log1p_pos((float)ev->price) : 0.0f;
        out[d++] = has ? 0.0f : 1.0f;
    }
}

static void emit_example(const nx_store_t *store, nx_user_t *u, int32_t label, nx_examples_t *ex) {
    size_t r = ex->n++;
    float *x = ex->x + r * store->dim;
    nx_half_decode(store->half_isa, u_pend(store, u), x, store->dim);
    ex->label[r] = label;
    ex->ts_ms[r] = u->clock;
    if (ex->user)
        ex->user[r] = u->hash;
    if (ex->partition)
        ex->partition[r] = u->partition;
    if (ex->score) {
        /* a fresh example's slot holds an event index, not scores (yet) */
        float *out = ex->score + r * (size_t)store->p.n_scores;
        if (u->flags & NX_F_FRESH)
            for (int k = 0; k < store->p.n_scores; k++)
                out[k] = 0.0f;
        else
            nx_half_decode(store->half_isa, u_score(store, u), out, (size_t)store->p.n_scores);
    }
}

/* Slab index of the user of event i (< NX_STORE_SCORE_MEMO) of the memo
 * batch, or UINT32_MAX if not applied or gone. The remembered slot is
 * trusted only while it still holds the user: an eviction or removal since
 * may have moved records. */
static uint32_t memo_find(const nx_store_t *store, size_t i) {
    uint32_t idx = store->memo_idx[i];
    if (idx == UINT32_MAX)
        return UINT32_MAX;
    if (idx < store->n_users && rec(store, idx)->hash == store->memo_hash[i])
        return idx;
    return find(store, store->memo_hash[i]);
}

/* Ends the memo batch without scores: users still marked fresh keep 0s. */
static void close_memo(nx_store_t *store) {
    if (!store->memo_open)
        return;
    size_t n = store->memo_n < NX_STORE_SCORE_MEMO ? store->memo_n : NX_STORE_SCORE_MEMO;
    for (size_t i = 0; i < n; i++) {
        uint32_t idx = memo_find(store, i);
        if (idx == UINT32_MAX)
            continue;
        nx_user_t *u = rec(store, idx);
        if (u->flags & NX_F_FRESH) {
            u->flags &= (uint8_t)~NX_F_FRESH;
            memset(u_score(store, u), 0, sizeof(uint16_t) * (size_t)store->p.n_scores);
        }
    }
    store->memo_open = 0;
}

/* Counter lanes k..k+3 at c for an event of type t: c = c * fac (if decay)
 * + the lanes' increment (1 on t's counts, vv on the value lanes). */
static inline void lanes_update(const nx_store_t *store, float *c4, int t, int k, nx_v4f fac,
                                int decay, nx_v4f vv) {
    nx_v4f c, inc;
    nx_v4i vm;
    memcpy(&c, c4, sizeof c);
    memcpy(&inc, store->lane_inc[t] + k, sizeof inc);
    memcpy(&vm, store->lane_val + k, sizeof vm);
    if (decay)
        c *= fac;
    c += (nx_v4f)((nx_v4i)inc | ((nx_v4i)vv & vm));
    memcpy(c4, &c, sizeof c);
}

/* Applies one valid, not-dropped event with user hash h, event i of the
 * batch. Returns the user's slab index, or UINT32_MAX if the user could not
 * be inserted. */
static uint32_t apply_event(nx_store_t *store, const nx_event_t *ev, size_t i, uint64_t h,
                            float *xrow, nx_examples_t *resolved) {
    const nx_store_params_t *p = &store->p;
    uint32_t idx = find_front(store, h);
    int fresh = 0;
    if (idx == UINT32_MAX) {
        if (store->n_users >= p->max_users)
            nx_evict_one(store);
        idx = nx_table_insert(store, h);
        if (idx == UINT32_MAX) { /* out of memory: count as invalid, zero row */
            store->st.invalid++;
            memset(xrow, 0, store->dim * sizeof *xrow);
            return UINT32_MAX;
        }
        fresh = 1;
        nx_user_t *u = rec(store, idx);
        u->clock = ev->ts_ms;
        u->sess_start = ev->ts_ms;
        int64_t *last = u_last(store, u);
        for (int t = 0; t < p->n_types; t++)
            last[t] = NX_NEVER;
    }
    nx_user_t *u = rec(store, idx);
    u->partition = ev->partition;
    float *cnt = u_cnt(store, u), *val = u_val(store, u);
    int64_t *last = u_last(store, u);
    int nt = p->n_types, t = ev->type;
    float value = (float)event_value(p, ev);
    int k = p->recent_items;
    nx_ev_ctx_t cx = {0, 0, 0, fresh, 0};
    if (ev->item)
        cx.item_views =
            recent_touch(u_items(store, u), u_views(store, u), &u->n_items, k, fp32(ev->item));
    if (ev->category)
        cx.cat_rev = recent_touch(u_cats(store, u), NULL, &u->n_cats, k, fp32(ev->category));

    if (!fresh && ev->ts_ms < u->clock) {
        /* Out of order for this user: add the event decayed to the user's
         * clock; session and labels follow event time and are untouched. */
        float dt = (float)(u->clock - ev->ts_ms), f[NX_STORE_MAX_WINDOWS];
        decay_factors(store, dt, f);
        for (int w = 0; w < p->n_windows; w++) {
            cnt[w * nt + t] += f[w];
            val[w] += value * f[w];
        }
        if (ev->ts_ms > last[t])
            last[t] = ev->ts_ms;
    } else {
        int64_t gap = ev->ts_ms - u->clock;
        if (!fresh)
            cx.prev_gap_ms = gap;
        if (store->vec_counters) {
            /* c = c * exp(-gap / L) + increment, 4 lanes at a time; per
             * lane the same two operations as the scalar path below (x * 1
             * and x + 0 are exact for these finite, non-negative values) */
            nx_v4f vv = {value, value, value, value};
            float f[NX_STORE_MAX_WINDOWS] = {1.0f, 1.0f, 1.0f, 1.0f};
            if (gap > 0)
                decay_factors(store, (float)gap, f);
            const uint8_t *lw = store->lane_win;
            if (store->layout333) {
                /* lanes: counts w0 t0-2, w1 t0-2, w2 t0-2, values w0-2 */
                nx_v4f fv;
                memcpy(&fv, f, sizeof fv);
                const nx_v4i i0 = {0, 0, 0, 1}, i1 = {1, 1, 2, 2}, i2 = {2, 0, 1, 2};
                nx_v4f fac[3] = {__builtin_shuffle(fv, i0), __builtin_shuffle(fv, i1),
                                 __builtin_shuffle(fv, i2)};
                for (int k = 0; k < 12; k += 4)
                    lanes_update(store, cnt + k, t, k, fac[k / 4], gap > 0, vv);
            } else {
                for (int k = 0; k < nt * p->n_windows + p->n_windows; k += 4) {
                    nx_v4f fac = {f[lw[k]], f[lw[k + 1]], f[lw[k + 2]], f[lw[k + 3]]};
                    lanes_update(store, cnt + k, t, k, fac, gap > 0, vv);
                }
            }
        } else {
            if (gap > 0) { /* gap 0: factors of 1, nothing to do */
                /* counts (window-major) and values are contiguous: one
                 * element-wise product with the factors spread out */
                float f[NX_STORE_MAX_WINDOWS], fac[NX_STORE_MAX_WINDOWS * (NX_EVENT_MAX_TYPES + 1)];
                decay_factors(store, (float)gap, f);
                int nw = p->n_windows, nc = nw * nt;
                for (int w = 0; w < nw; w++) {
                    for (int j = 0; j < nt; j++)
                        fac[w * nt + j] = f[w];
                    fac[nc + w] = f[w];
                }
                for (int k = 0; k < nc + nw; k++)
                    cnt[k] *= fac[k];
            }
            for (int w = 0; w < p->n_windows; w++) {
                cnt[w * nt + t] += 1.0f;
                val[w] += value;
            }
        }
        last[t] = ev->ts_ms;
        /* Session: a change of session id (absent counts as a value), or
         * without an id a gap longer than session_gap, starts a new one. */
        uint32_t sfp = ev->session ? fp32(ev->session) : 0;
        cx.new_sess = fresh || sfp != u->sess_fp || (!sfp && gap > p->session_gap_ms);
        if (cx.new_sess) {
            u->sess_start = ev->ts_ms;
            u->sess_len = 0;
            u->sess_rev = 0;
            u->sess_fp = sfp;
            u->carts = 0;
            u->cat_run = 0;
            u->cat_fp = 0;
        }
        if (u->sess_len < UINT16_MAX)
            u->sess_len++;
        if (cx.item_views && u->sess_rev < UINT8_MAX)
            u->sess_rev++;
        if (t == p->cart_type) {
            if (u->carts < UINT8_MAX)
                u->carts++;
        } else if (t == p->value_type) { /* a purchase empties the cart */
            u->carts = 0;
        }
        /* the run goes on while the session's events stay in one category */
        uint32_t cfp = ev->category ? fp32(ev->category) : 0;
        if (cfp && cfp == u->cat_fp)
            u->cat_run = (uint8_t)(u->cat_run < UINT8_MAX ? u->cat_run + 1 : UINT8_MAX);
        else
            u->cat_run = cfp ? 1 : 0;
        u->cat_fp = cfp;
        /* Label of the pending example (made at the old clock). */
        if (u->flags & NX_F_PENDING) {
            int32_t label = gap < p->horizon_ms ? t : nt;
            size_t row = resolved->n;
            emit_example(store, u, label, resolved);
            /* made by an event of this batch: set_scores fills the row in */
            if (store->memo_maker && row < NX_STORE_SCORE_MEMO)
                store->memo_maker[row] = (u->flags & NX_F_FRESH) ? u_score(store, u)[0] : -1;
            u->flags &= (uint8_t)~NX_F_FRESH;
            nx_table_list_unlink(store, idx);
            store->st.resolved++;
        }
        u->clock = ev->ts_ms;
    }

    float *raw = p->normalise ? store->raw : xrow;
    featurize(store, u, ev, &cx, raw);
    if (p->normalise) {
        nx_norm_step(store->norm, raw, xrow);
    }
    if (ev->ts_ms == u->clock && !(u->flags & NX_F_PENDING)) {
        nx_half_encode(store->half_isa, xrow, u_pend(store, u), store->dim);
        /* 0 = no scores until nx_store_set_scores gives them */
        uint16_t *sc = u_score(store, u);
        memset(sc, 0, sizeof(uint16_t) * (size_t)p->n_scores);
        if (store->memo_idx && i < NX_STORE_SCORE_MEMO) {
            sc[0] = (uint16_t)i;
            u->flags |= NX_F_FRESH;
        }
        nx_table_list_append(store, idx);
    }
    store->st.events++;
    return idx;
}

/* The prefetch helpers are always inlined. A function whose only effect is
 * __builtin_prefetch looks free of side effects to GCC 12 (pure-const
 * analysis), and a call of it that is not inlined early is deleted as
 * dead: so it went with prefetch_links until this was added, and the
 * neighbours' lines were never prefetched (10M users: 2.2-3.0M updates/s
 * before, 2.7-3.4M after, in alternating runs). */
#define NX_PREFETCH_FN static inline __attribute__((always_inline))

/* Prefetches (for writing) every cache line of record i+1 (0 = none). */
NX_PREFETCH_FN void prefetch_record(const nx_store_t *store, uint32_t i) {
    if (!i)
        return;
    uintptr_t a = (uintptr_t)rec(store, i - 1), end = a + store->rec_size - 1;
    for (a &= ~(uintptr_t)63; a <= end; a += 64) /* 64-byte lines */
        __builtin_prefetch((const void *)a, 1);
}

/* Prefetches the expiry-list links of pending user u's neighbours. */
NX_PREFETCH_FN void prefetch_links(const nx_store_t *store, const nx_user_t *u) {
    if (!(u->flags & NX_F_PENDING))
        return;
    if (u->lprev)
        __builtin_prefetch(&rec(store, u->lprev - 1)->lnext, 1);
    if (u->lnext)
        __builtin_prefetch(&rec(store, u->lnext - 1)->lprev, 1);
}

/* Stage NX_AHEAD_LIST for user h, whose chain's first record was
 * prefetched: the neighbours' links if that record is h's; else the next
 * record of the chain, returning 1 (stage NX_AHEAD_CHAIN then looks again). */
NX_PREFETCH_FN int prefetch_front(const nx_store_t *store, uint64_t h) {
    uint32_t i = *bucket_of(store, h);
    if (!i)
        return 0;
    const nx_user_t *u = rec(store, i - 1);
    if (u->hash == h) {
        prefetch_links(store, u);
        return 0;
    }
    prefetch_record(store, u->chain);
    return u->chain != 0;
}

/* Stage NX_AHEAD_CHAIN: user h found further down its chain. */
NX_PREFETCH_FN void prefetch_deep(const nx_store_t *store, uint64_t h) {
    uint32_t i = find(store, h);
    if (i != UINT32_MAX)
        prefetch_links(store, rec(store, i));
}

/* Event i of the update batch, classified c (NX_STORE_*), user hash h:
 * counted, applied unless invalid or dropped (then a zero row), its slot
 * remembered for nx_store_set_scores. */
static inline void apply_slot(nx_store_t *store, const nx_event_t *ev, size_t i, uint8_t c,
                              uint64_t h, float *xrow, uint8_t *status, nx_examples_t *resolved) {
    uint32_t *memo = store->memo_idx;
    if (status)
        status[i] = c;
    if (memo && i < NX_STORE_SCORE_MEMO) {
        memo[i] = UINT32_MAX;
        store->memo_hash[i] = h;
    }
    if (c == NX_STORE_INVALID || c == NX_STORE_DROPPED) {
        if (c == NX_STORE_INVALID)
            store->st.invalid++;
        else
            store->st.dropped++;
        memset(xrow, 0, store->dim * sizeof *xrow);
        return;
    }
    if (c == NX_STORE_LATE)
        store->st.late++;
    uint32_t idx = apply_event(store, ev, i, h, xrow, resolved);
    if (memo && i < NX_STORE_SCORE_MEMO)
        memo[i] = idx;
}

int nx_store_update(nx_store_t *store, const nx_event_t *ev, size_t n, int64_t watermark_ms,
                    float *x, uint8_t *status, nx_examples_t *resolved) {
    if (resolved->cap < n)
        return -1;
    resolved->n = 0;
    const nx_store_params_t *p = &store->p;
    uint32_t *memo = store->memo_idx;
    if (memo) {
        close_memo(store); /* set_scores was not called for the last batch */
        store->memo_ev = ev;
        store->memo_n = n;
        store->memo_open = 1;
        store->memo_res_score = resolved->score;
    }
    int64_t too_old = watermark_ms - store->max_window_ms;
    uint64_t h[NX_RING];
    uint8_t st[NX_RING], deep[NX_RING]; /* deep: stage NX_AHEAD_CHAIN to do */
    /* Step k applies event k - NX_AHEAD_BUCKET and hashes event k. The
     * record lines are prefetched before the apply, the bucket and list
     * lines after it: two groups half an update apart rather than ~8 lines
     * at once competing for the line fill buffers (2-4% in interleaved
     * runs at 10M users). */
    for (size_t k = 0; k < n + NX_AHEAD_BUCKET; k++) {
        size_t j = k - (NX_AHEAD_BUCKET - NX_AHEAD_RECORD);
        if (k >= NX_AHEAD_BUCKET - NX_AHEAD_RECORD && j < n &&
            st[j & (NX_RING - 1)] <= NX_STORE_LATE)
            prefetch_record(store, *bucket_of(store, h[j & (NX_RING - 1)]));
        if (k >= NX_AHEAD_BUCKET) {
            size_t i = k - NX_AHEAD_BUCKET;
            apply_slot(store, &ev[i], i, st[i & (NX_RING - 1)], h[i & (NX_RING - 1)],
                       x + i * store->dim, status, resolved);
        }
        if (k < n) {
            const nx_event_t *e = &ev[k];
            size_t r = k & (NX_RING - 1);
            uint8_t c;
            if (e->type < 0 || e->type >= p->n_types || e->user_id_len == 0 ||
                e->user_id_len > NX_EVENT_USER_ID_MAX || !e->user_id)
                c = NX_STORE_INVALID;
            else if (e->ts_ms < too_old)
                c = NX_STORE_DROPPED;
            else
                c = e->ts_ms < watermark_ms ? NX_STORE_LATE : NX_STORE_OK;
            st[r] = c;
            h[r] = 0;
            if (c <= NX_STORE_LATE) {
                h[r] = nx_siphash24(store->key, e->user_id, e->user_id_len);
                __builtin_prefetch(bucket_of(store, h[r]));
            }
        }
        j = k - (NX_AHEAD_BUCKET - NX_AHEAD_LIST);
        if (k >= NX_AHEAD_BUCKET - NX_AHEAD_LIST && j < n)
            deep[j & (NX_RING - 1)] = st[j & (NX_RING - 1)] <= NX_STORE_LATE &&
                                      prefetch_front(store, h[j & (NX_RING - 1)]);
        j = k - (NX_AHEAD_BUCKET - NX_AHEAD_CHAIN);
        if (k >= NX_AHEAD_BUCKET - NX_AHEAD_CHAIN && j < n && deep[j & (NX_RING - 1)])
            prefetch_deep(store, h[j & (NX_RING - 1)]);
    }
    store->memo_res_n = resolved->n;
    return 0;
}

void nx_store_set_scores(nx_store_t *store, const nx_event_t *ev, size_t n, const uint8_t *status,
                         const float *scores) {
    int k = store->p.n_scores;
    if (k == 0)
        return;
    int memo_ok = store->memo_open && store->memo_ev == ev && store->memo_n == n;
    if (!memo_ok)
        close_memo(store);
    for (size_t i = 0; i < n; i++) {
        if (status[i] > NX_STORE_LATE)
            continue;
        nx_user_t *u;
        if (memo_ok && i < NX_STORE_SCORE_MEMO) {
            /* Event i made the user's pending example iff the user is still
             * marked fresh with i in its slot: a later event of the batch
             * that made a newer one put its own index there. */
            uint32_t idx = memo_find(store, i);
            if (idx == UINT32_MAX)
                continue;
            u = rec(store, idx);
            if (!(u->flags & NX_F_FRESH) || u_score(store, u)[0] != (uint16_t)i)
                continue;
            u->flags &= (uint8_t)~NX_F_FRESH;
        } else {
            /* Beyond the memo: event i made the pending example iff it was
             * in order for its user, so the user's clock is still its time
             * (an equal-time later event replaces it, later in this loop). */
            uint32_t idx = find(store, nx_siphash24(store->key, ev[i].user_id, ev[i].user_id_len));
            if (idx == UINT32_MAX)
                continue;
            u = rec(store, idx);
            if (!(u->flags & NX_F_PENDING) || (u->flags & NX_F_FRESH) || u->clock != ev[i].ts_ms)
                continue;
        }
        nx_half_encode(store->half_isa, scores + i * (size_t)k, u_score(store, u), (size_t)k);
    }
    /* Examples the same batch made and resolved: their scores were unknown
     * at update time; give them now (fp16 round trip, like every other). */
    if (memo_ok && store->memo_res_score) {
        size_t rn =
            store->memo_res_n < NX_STORE_SCORE_MEMO ? store->memo_res_n : NX_STORE_SCORE_MEMO;
        for (size_t r = 0; r < rn; r++) {
            int32_t m = store->memo_maker[r];
            if (m < 0 || (size_t)m >= n)
                continue;
            const float *src = scores + (size_t)m * (size_t)k;
            float *out = store->memo_res_score + r * (size_t)k;
            for (int c = 0; c < k; c++)
                out[c] = nx_half_to_float(nx_half_from_float(src[c]));
        }
    }
    store->memo_open = 0;
}

size_t nx_store_expire_labels(nx_store_t *store, int64_t watermark_ms, nx_examples_t *out) {
    out->n = 0;
    while (store->lhead && out->n < out->cap) {
        uint32_t idx = store->lhead - 1;
        nx_user_t *u = rec(store, idx);
        if (u->clock + store->p.horizon_ms > watermark_ms)
            break;
        emit_example(store, u, store->p.n_types, out);
        nx_table_list_unlink(store, idx);
        store->st.expired_labels++;
    }
    return out->n;
}

/* --- maintenance ---------------------------------------------------------- */

size_t nx_store_maintain(nx_store_t *store, int64_t now_ms, int64_t budget_us) {
    int64_t margin = budget_us < 2 * NX_MAINT_MARGIN_US ? budget_us / 2 : NX_MAINT_MARGIN_US;
    int64_t deadline = budget_us > 0 ? nx_now_us() + budget_us - margin : INT64_MAX;
    if (nx_table_step(store, deadline))
        return 0;
    return nx_evict_expired(store, now_ms, deadline);
}

/* --- users ------------------------------------------------------------------ */

uint64_t nx_store_user_hash(const nx_store_t *store, const char *user_id, size_t len) {
    return nx_siphash24(store->key, user_id, len);
}

int nx_store_contains(const nx_store_t *store, uint64_t user) {
    return find(store, user) != UINT32_MAX;
}

void nx_store_foreach(const nx_store_t *store,
                      void (*fn)(void *opaque, uint64_t user, int32_t partition, int64_t clock_ms),
                      void *opaque) {
    for (uint32_t i = 0; i < store->n_users; i++) {
        nx_user_t *u = rec(store, i);
        fn(opaque, u->hash, u->partition, u->clock);
    }
}

void nx_store_stats(const nx_store_t *store, nx_store_stats_t *stats) {
    *stats = store->st;
    stats->users = store->n_users;
    stats->buckets = store->mask[0] + 1 + (store->bk[1] ? store->mask[1] + 1 : 0);
    stats->rehashing = store->rehash_idx >= 0 || store->pre != NULL;
    stats->release_bytes = store->dead ? store->dead_len : 0;
    stats->record_bytes = store->rec_size;
    double users = store->n_users ? (double)store->n_users : 1.0;
    stats->bytes_per_user = (double)store->rec_size + (double)stats->buckets * 4.0 / users;
}
