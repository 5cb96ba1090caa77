/*
 * featurize.h: the features (private to the store's files): the one place
 * to add one.
 *
 * Owns the feature layout (NX_LAYOUT below: every feature's family, place
 * and name), what an event does to a user's feature state (decayed
 * windows, recency, session, recent items and categories) and to the item
 * table (xstats.h), what a resolved label does to both (the user's label
 * history, the item's and category's rates), and the raw vector read from
 * them. featurize.c builds the schema (names, offsets,
 * hash) and the lookup tables from the same layout.
 *
 * The per-event code is here, inline, because the update pipeline
 * (store.c) applies it once per event inside its loop: there the compiler
 * keeps the constants of the vector math in registers across events and
 * interleaves the feature work with the record traffic, which a call into
 * another file forgoes (measurably: bench/NOTES.md).
 *
 * Adding a feature:
 * 1. Give it a row in NX_LAYOUT, inside its family (a new family also needs
 *    an NX_FEAT_* bit in store.h and a switch for it where params are set,
 *    daemon/config.c). Its place, name and the schema hash follow from the
 *    table; models and checkpoints of the old layout are refused by the
 *    hash.
 * 2. State it needs across events: a field of the record (nx_user_t in
 *    store_int.h, or the record tail laid out in nx_store_new), updated in
 *    nx_featurize_apply. A record change changes the record size, which the
 *    store's stream header checks (store_persist.c: also bump its magic and
 *    the user record's version, store_changes.c, and convert the previous
 *    layout as nx_persist_from_v3 does).
 * 3. Its value: written by its row name (o[NX_ROW_...]) through its
 *    family's writer (write_*), which both read-outs call: vector_generic
 *    (any layout) and vector_333 (the default layout, unrolled at the
 *    table's constant offsets). A log of a value the unrolled read-out can
 *    batch into its 4-lane logs arrives as the writer's argument.
 * 4. Tests: ref_features (tests/features/test_store_ref.c) recomputes
 *    every feature from the user's event list; test_layout_table
 *    (tests/features/test_store.c) fails while a read-out leaves a place of
 *    the layout unwritten, test_layout333 while the two read-outs differ in
 *    a bit.
 *
 * Guarantees: nx_featurize_apply and nx_featurize_vector allocate nothing
 * and are deterministic (the same state and event give the same bits);
 * vector_333 gives vector_generic's bits. The featurizer's tables
 * (nx_featurizer_t in store_int.h) are written once by nx_featurize_init.
 */
#ifndef NX_FEATURIZE_H
#define NX_FEATURIZE_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "half.h"
#include "store_int.h"

/* --- the layout ---------------------------------------------------------- */

/*
 * The feature vector, family by family in this order; a family switched
 * off (params.families) takes no place. F(family, repeat, rows):
 * - family: its NX_FEAT_* bit, without the prefix;
 * - repeat: how its rows repeat: ONCE; TYPE (per event type: the rows of
 *   type 0, then of type 1, ...); CLASS (per class: the types, then
 *   `none`); WINDOW (per window); WINDOW_TYPE (per window, and within it
 *   per type);
 * - rows: R(row, name) in order, name a printf pattern given the window
 *   then the type name (as far as the family repeats by them).
 * The read-outs write each row by name: NX_ROW_<row> is its place within
 * one repetition of its family, NX_NROWS_<family> the family's rows.
 */
#define NX_LAYOUT(F)                                                                               \
    F(COUNTS, WINDOW_TYPE, NX_ROWS_COUNTS)                                                         \
    F(VALUE, WINDOW, NX_ROWS_VALUE)                                                                \
    F(RECENCY, TYPE, NX_ROWS_RECENCY)                                                              \
    F(SESSION, ONCE, NX_ROWS_SESSION)                                                              \
    F(REVISITS, ONCE, NX_ROWS_REVISITS)                                                            \
    F(ONEHOT, TYPE, NX_ROWS_ONEHOT)                                                                \
    F(TIME, ONCE, NX_ROWS_TIME)                                                                    \
    F(PRICE, ONCE, NX_ROWS_PRICE)                                                                  \
    F(LABELS, CLASS, NX_ROWS_LABELS)                                                               \
    F(ITEMPOP, ONCE, NX_ROWS_ITEMPOP)                                                              \
    F(ITEMRATE, CLASS, NX_ROWS_ITEMRATE)

/* log1p(decayed count of the type's events in the window) */
#define NX_ROWS_COUNTS(R) R(CNT, "cnt_%.23s_%.31s")
/* log1p(decayed price * quantity of value_type events in the window) */
#define NX_ROWS_VALUE(R) R(VALUE, "value_%.23s")
/* log1p(seconds since the type's latest event), 1 if none yet (then 0 s) */
#define NX_ROWS_RECENCY(R) R(SINCE_S, "since_%.31s_s") R(SINCE_MISSING, "since_%.31s_missing")
/* session (store.h): log1p(events), log1p(seconds since its start), 1 if
 * this event started it, log1p(seconds since the previous event), 1 on the
 * user's first event, log1p(cart adds since the last purchase), 1 if any */
#define NX_ROWS_SESSION(R)                                                                         \
    R(SESSION_EVENTS, "session_events")                                                            \
    R(SESSION_DURATION_S, "session_duration_s")                                                    \
    R(SESSION_NEW, "session_new")                                                                  \
    R(SINCE_PREV_EVENT_S, "since_prev_event_s")                                                    \
    R(SINCE_PREV_MISSING, "since_prev_event_missing")                                              \
    R(SESSION_CARTS, "session_carts")                                                              \
    R(SESSION_CART_OPEN, "session_cart_open")
/* events on this item among the recent ones (capped), 1 if the category is
 * among the recent ones, log1p(item revisits in the session), events in a
 * row in this category (capped) */
#define NX_ROWS_REVISITS(R)                                                                        \
    R(ITEM_REVISITS, "item_revisits")                                                              \
    R(CATEGORY_REVISIT, "category_revisit")                                                        \
    R(SESSION_REVISITS, "session_revisits")                                                        \
    R(CATEGORY_RUN, "category_run")
/* 1 for the event's own type */
#define NX_ROWS_ONEHOT(R) R(IS_TYPE, "is_%.31s")
/* time of day and day of week (UTC) as angles */
#define NX_ROWS_TIME(R)                                                                            \
    R(HOUR_SIN, "hour_sin") R(HOUR_COS, "hour_cos") R(DOW_SIN, "dow_sin") R(DOW_COS, "dow_cos")
/* log1p(price), or 0 and the flag when the event has none */
#define NX_ROWS_PRICE(R) R(LOG_PRICE, "log_price") R(PRICE_MISSING, "price_missing")
/* the class's share of the user's decayed label counts (store.h) */
#define NX_ROWS_LABELS(R) R(LAB_SHARE, "lab_%.31s")
/* log1p(decayed events of all users on the event's item, category) */
#define NX_ROWS_ITEMPOP(R) R(ITEM_POP, "item_pop") R(CAT_POP, "cat_pop")
/* how often an event on the item / category was followed by the class */
#define NX_ROWS_ITEMRATE(R) R(ITEM_NEXT, "item_next_%.31s") R(CAT_NEXT, "cat_next_%.31s")

/* NX_FAM_<family>: the family's index in the layout (fz.at[]). */
#define NX_FAM_ENUM(fam, rep, rows) NX_FAM_##fam,
enum { NX_LAYOUT(NX_FAM_ENUM) NX_FAM_N };
_Static_assert(NX_FAM_N == NX_FEATURIZE_FAMILIES, "one layout family per NX_FEAT_* bit");
#define NX_FAM_BIT(fam, rep, rows) | NX_FEAT_##fam
_Static_assert((0 NX_LAYOUT(NX_FAM_BIT)) == NX_FEAT_ALL, "every NX_FEAT_* family is in the layout");

/* NX_ROW_<row>: place within a repetition of its family; NX_NROWS_<family>. */
#define NX_ROW_ENUM(row, name)      NX_ROW_##row,
#define NX_FAM_ROWS(fam, rep, rows) enum { rows(NX_ROW_ENUM) NX_NROWS_##fam };
NX_LAYOUT(NX_FAM_ROWS)

/* The default layout (3 types, 3 windows, every family) as constants, for
 * the unrolled read-out: NX_AT333_<family> is the family's offset, NX_DIM333
 * the dimension. Each family's NX_END333_ is its last place, so that the
 * next family's NX_AT333_ follows it. nx_featurize_init checks these
 * against the offsets it computes (debug builds). */
#define NX_REPS333_ONCE        1
#define NX_REPS333_TYPE        3
#define NX_REPS333_CLASS       4
#define NX_REPS333_WINDOW      3
#define NX_REPS333_WINDOW_TYPE 9
#define NX_FAM_AT333(fam, rep, rows)                                                               \
    NX_AT333_##fam, NX_END333_##fam = NX_AT333_##fam + NX_NROWS_##fam * NX_REPS333_##rep - 1,
enum { NX_LAYOUT(NX_FAM_AT333) NX_DIM333 };

/* The decayed counters' logs are written as one run, in the record's order
 * (counts window-major, then values): both families one row each, the
 * values right after the counts. */
_Static_assert(NX_NROWS_COUNTS == 1 && NX_NROWS_VALUE == 1 && NX_FAM_VALUE == NX_FAM_COUNTS + 1,
               "counts then values, one row each");

/* --- math ---------------------------------------------------------------- */

/* Four floats at once: GCC/clang vector extensions, SSE on x86-64 and NEON
 * on aarch64 without intrinsics. The windows' decay factors are one 4-lane
 * exp instead of a libm expf per window. */
typedef float nx_v4f __attribute__((vector_size(16)));
typedef int32_t nx_v4i __attribute__((vector_size(16)));
typedef uint32_t nx_v4u __attribute__((vector_size(16)));

/* log(y) for finite y >= 1, inline and branch-free: the hot path takes ~20
 * logs per event, too many for libm calls. y = 2^e * m with m in
 * [sqrt(1/2), sqrt(2)), found by offsetting the bits by those of sqrt(1/2);
 * then log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, by its
 * series to s^9: truncation error 2|s|^11/11 < 2e-9. Result within a few
 * float ulps of log(y). Scalar on purpose: a 4-lane version loading
 * just-written features as vectors stalls on store forwarding (see
 * log1p4). */
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
 * its store buffer, or are gathered in registers; loading just-written
 * scalars as a vector cannot be forwarded. */
static inline nx_v4f log1p4(nx_v4f x) {
    nx_v4f y = 1.0f + x;
    nx_v4u t = (nx_v4u)y - 0x3f3504f3u; /* bits of sqrt(1/2) */
    nx_v4i e = (nx_v4i)t >> 23;
    nx_v4f m = (nx_v4f)((t & 0x007fffffu) + 0x3f3504f3u);
    nx_v4f sv = (m - 1.0f) / (m + 1.0f), s2 = sv * sv;
    nx_v4f poly = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
    return __builtin_convertvector(e, nx_v4f) * 0.693147181f + 2.0f * sv * poly;
}

/* out[k] = log1p(c[k] * unit[k]) of fp16 counters c, k < n (a multiple of
 * 4), 4 lanes at a time. */
static inline void log1p_run(float *out, const uint16_t *c, const float *unit, int n) {
    for (int k = 0; k < n; k += 4) {
        nx_v4f u;
        memcpy(&u, unit + k, sizeof u);
        nx_v4f v = log1p4(nx_half_counter4(c + k) * u);
        memcpy(out + k, &v, sizeof v);
    }
}

/* Floor division for ms -> days with negative times. */
static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The time of day is looked up by quarter hour (96 a day; ms). */
#define NX_QUARTER_MS 900000

/* sin and cos of the time of day, from the table of the 96 quarter hours
 * and the angle b past the quarter (b < 2 pi / 96 = 0.0655) by
 * sin(a + b) = sin a cos b + cos a sin b, sin b and cos b by their series
 * to b^5 and b^6 (truncation < 1e-11): within a few float ulps, without
 * two libm calls per event. */
static inline void day_sincos(const nx_featurizer_t *fz, int64_t ms_of_day, float *s, float *c) {
    int q = (int)(ms_of_day / NX_QUARTER_MS);
    float b = (float)(ms_of_day - (int64_t)q * NX_QUARTER_MS) * (float)(2.0 * M_PI / 86400000.0);
    float b2 = b * b;
    float sb = b * (1.0f - b2 * (1.0f / 6 - b2 * (1.0f / 120)));
    float cb = 1.0f - b2 * (0.5f - b2 * (1.0f / 24 - b2 * (1.0f / 720)));
    *s = fz->q_sin[q] * cb + fz->q_cos[q] * sb;
    *c = fz->q_cos[q] * cb - fz->q_sin[q] * sb;
}

/* exp(-dt / L_w) for every window w, at once (unused lanes get 1). */
static inline void decay_factors(const nx_featurizer_t *fz, float dt,
                                 float f[NX_STORE_MAX_WINDOWS]) {
    _Static_assert(NX_STORE_MAX_WINDOWS == 4, "one 4-lane exp covers the windows");
    nx_v4f inv;
    memcpy(&inv, fz->inv_window_ms, sizeof inv);
    nx_v4f v = exp4(-dt * inv);
    memcpy(f, &v, sizeof v);
}

/* --- state --------------------------------------------------------------- */

/* Classes of the label families: the event types, then `none`. */
#define NX_CLASSES_MAX (NX_EVENT_MAX_TYPES + 1)

/* What nx_featurize_apply learns of an event before the update overwrites it. */
typedef struct nx_ev_ctx {
    int new_sess;        /* the event started a session */
    int item_views;      /* events on its item before it among the recent ones */
    int cat_rev;         /* its category was among the recent ones */
    int gap_missing;     /* the user's first event */
    int64_t prev_gap_ms; /* from the user's previous event (0 if late or first) */
    /* item families only (else unset): the table read for the event */
    float item_ev, cat_ev;           /* decayed events on its item, category */
    float item_rate[NX_CLASSES_MAX]; /* per class, of its item (xstats.h) */
    float cat_rate[NX_CLASSES_MAX];  /* per class, of its category */
} nx_ev_ctx_t;

/* Keys of the item table (xstats.h): an item's 32-bit fingerprint, a
 * category's of its hash salted, so that items and categories, which share
 * the table, do not share keys; 0 = none. 32 bits, not the rings' 16-bit
 * tags: the table holds up to a million keys of all users, where 16 bits
 * would make most keys share a slot with another. */
static inline uint32_t xs_item_key(const nx_event_t *ev) {
    return ev->item ? fp32(ev->item) : 0;
}
static inline uint32_t xs_cat_key(const nx_event_t *ev) {
    return ev->category ? fp32(ev->category ^ 0x5851f42d4c957f2dull) : 0;
}

/* Move-to-front insert of tag fp into a ring of at most k entries. views: NULL,
 * or the ring's per-entry event counts (saturating at 255), moved along.
 * Returns the entry's count before this event (0 = not there; 1 for a hit
 * without views). */
static inline int recent_touch(uint16_t *ring, uint8_t *views, uint8_t *n, int k, uint16_t fp) {
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
     * register (a shifting loop compiles to a memmove call). */
    uint16_t carry = fp;
    for (int i = 0; i <= pos; i++) {
        uint16_t tmp = ring[i];
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

/* The largest purchase value counted (no real order comes near it). */
#define NX_VALUE_MAX 1e30

static inline double event_value(const nx_store_params_t *p, const nx_event_t *ev) {
    if (p->value_type >= 0 && ev->type != p->value_type)
        return 0.0;
    if (!(ev->price >= 0 && ev->price <= FLT_MAX)) /* NaN (absent), negative or infinite */
        return 0.0;
    /* A value a float cannot sum would make the windows, and
     * through the normaliser everyone's features, infinite for good: capped
     * at NX_VALUE_MAX, so even 10^8 such events in a window stay finite. */
    double v = ev->price * (ev->quantity > 0 ? ev->quantity : 1);
    return v < NX_VALUE_MAX ? v : NX_VALUE_MAX;
}

/* --- the counters: fp16 in the record (half.h) ----------------------------- */

/* Value counters count in units of 1024 (an exact scaling): fp16's 65504
 * becomes 67 million a window, and the smallest normal value 1/16. */
#define NX_VALUE_UNIT     1024.0f
#define NX_VALUE_UNIT_INV (1.0f / 1024)

/* The random bits of an event's stochastic rounding: a hash of the user
 * and the event (time, type), so replays round alike. */
static inline uint64_t sr_seed(const nx_user_t *u, const nx_event_t *ev) {
    uint64_t z = u->hash ^ (((uint64_t)ev->ts_ms << 4) ^ (uint64_t)(uint32_t)ev->type) *
                               0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL; /* splitmix64's finaliser */
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The 64 random bits of counter lanes 4g..4g+3: the seed rotated, 16 bits
 * a lane (lanes of different groups overlap; each is still uniform). */
static inline uint64_t sr_group(uint64_t r0, int g) {
    int s = (21 * g) & 63;
    return (r0 << s) | (r0 >> ((64 - s) & 63));
}

/* The 16 random bits of counter k. */
static inline uint32_t sr_lane(uint64_t r0, int k) {
    return (uint32_t)(sr_group(r0, k >> 2) >> (16 * (k & 3))) & 0xffffu;
}

/* Counter lanes k..k+3 at c4 for an event of type t: c = c * fac (if decay)
 * + the lanes' increment (1 on t's counts, vv on the value lanes), rounded
 * with random bits r. */
static inline void lanes_update(const nx_featurizer_t *fz, uint16_t *c4, int t, int k, nx_v4f fac,
                                int decay, nx_v4f vv, uint64_t r) {
    nx_v4f c = nx_half_counter4(c4), inc;
    nx_v4i vm;
    memcpy(&inc, fz->lane_inc[t] + k, sizeof inc);
    memcpy(&vm, fz->lane_val + k, sizeof vm);
    if (decay)
        c *= fac;
    c += (nx_v4f)((nx_v4i)inc | ((nx_v4i)vv & vm));
    nx_half_store_counter4(c4, c, r);
}

/* The decayed counters of an event in order, gap ms after the user's clock:
 * every counter decays to the new clock, then the event's count (and value,
 * in NX_VALUE_UNIT) is added; each counter is then rounded to fp16 with its
 * lane's bits of r0. A counter the event leaves as it was (gap 0, nothing
 * added) stays exact: it is an fp16 value already. */
static inline void counters_in_order(const nx_store_t *store, nx_user_t *u, int t, float value,
                                     int64_t gap, uint64_t r0) {
    const nx_featurizer_t *fz = &store->fz;
    const nx_store_params_t *p = &store->p;
    uint16_t *cnt = u_cnt(store, u);
    int nt = p->n_types;
    float f[NX_STORE_MAX_WINDOWS] = {1.0f, 1.0f, 1.0f, 1.0f};
    if (gap > 0)
        decay_factors(fz, (float)gap, f);
    if (fz->vec_counters) {
        /* c = c * exp(-gap / L) + increment, 4 lanes at a time; per
         * lane the same two operations as the scalar path below (x * 1
         * and x + 0 are exact for these finite, non-negative values) */
        float vu = value * NX_VALUE_UNIT_INV;
        nx_v4f vv = {vu, vu, vu, vu};
        const uint8_t *lw = fz->lane_win;
        if (fz->layout333) {
            /* lanes: counts w0 t0-2, w1 t0-2, w2 t0-2, values w0-2 */
            nx_v4f fv;
            memcpy(&fv, f, sizeof fv);
            const nx_v4i i0 = {0, 0, 0, 1}, i1 = {1, 1, 2, 2}, i2 = {2, 0, 1, 2};
            nx_v4f fac[3] = {__builtin_shuffle(fv, i0), __builtin_shuffle(fv, i1),
                             __builtin_shuffle(fv, i2)};
            for (int k = 0; k < 12; k += 4)
                lanes_update(fz, cnt + k, t, k, fac[k / 4], gap > 0, vv, sr_group(r0, k / 4));
        } else {
            for (int k = 0; k < nt * p->n_windows + p->n_windows; k += 4) {
                nx_v4f fac = {f[lw[k]], f[lw[k + 1]], f[lw[k + 2]], f[lw[k + 3]]};
                lanes_update(fz, cnt + k, t, k, fac, gap > 0, vv, sr_group(r0, k / 4));
            }
        }
        return;
    }
    /* counts (window-major), then values: the same per counter */
    int nw = p->n_windows, nc = nw * nt;
    for (int k = 0; k < nc + nw; k++) {
        int w = k < nc ? k / nt : k - nc;
        float x = nx_half_to_float(cnt[k]);
        if (gap > 0)
            x *= f[w];
        x += k < nc ? (k % nt == t ? 1.0f : 0.0f) : value * NX_VALUE_UNIT_INV;
        cnt[k] = nx_half_round_sr(x, sr_lane(r0, k));
    }
}

/* The item table's part of event ev (item families on): counts it on its
 * item and category. Late events count as well (popularity is of all
 * events), at their own time. */
static inline void xs_event(const nx_store_t *store, const nx_event_t *ev) {
    uint32_t ik = xs_item_key(ev), ck = xs_cat_key(ev);
    if (ik)
        nx_xstats_event(store->xs, ik, ev->ts_ms);
    if (ck)
        nx_xstats_event(store->xs, ck, ev->ts_ms);
}

/* Reads the item table for event ev into cx (item families on): after
 * nx_featurize_apply and the label the event resolved, so the rates hold
 * every label known at its time. */
static inline void nx_featurize_read_items(const nx_store_t *store, const nx_event_t *ev,
                                           nx_ev_ctx_t *cx) {
    if (!store->xs)
        return;
    nx_xstats_read(store->xs, xs_item_key(ev), ev->ts_ms, &cx->item_ev, cx->item_rate);
    nx_xstats_read(store->xs, xs_cat_key(ev), ev->ts_ms, &cx->cat_ev, cx->cat_rate);
}

/* User u's pending example resolved with label (a class): into the user's
 * label history and the item table's rates of the pending event's item and
 * category, at the example's time (u's clock, not yet moved). */
static inline void nx_featurize_label(const nx_store_t *store, nx_user_t *u, int label) {
    const nx_featurizer_t *fz = &store->fz;
    if (fz->at[NX_FAM_LABELS] >= 0) {
        uint16_t *lab = u_lab(store, u);
        float g = store->p.label_decay;
        for (int c = 0; c <= store->p.n_types; c++) {
            float h = nx_half_to_float(lab[c]) * g + (c == label ? 1.0f : 0.0f);
            lab[c] = nx_half_from_float(h);
        }
    }
    if (fz->at[NX_FAM_ITEMRATE] >= 0) {
        const uint32_t *k = u_xfp(store, u);
        if (k[0])
            nx_xstats_label(store->xs, k[0], u->clock, label);
        if (k[1])
            nx_xstats_label(store->xs, k[1], u->clock, label);
    }
}

/* Event ev became u's pending example: its item and category keys are kept
 * for its label. */
static inline void nx_featurize_pending(const nx_store_t *store, nx_user_t *u,
                                        const nx_event_t *ev) {
    if (store->fz.at[NX_FAM_ITEMRATE] >= 0) {
        uint32_t *k = u_xfp(store, u);
        k[0] = xs_item_key(ev);
        k[1] = xs_cat_key(ev);
    }
}

/* Applies valid event ev to user u's feature state: the decayed windows,
 * recency and recent items always; the session only for an event at or
 * after u's clock, which the caller then moves to the event's time (after
 * resolving the user's pending example: labels are the store's). fresh: u
 * was just inserted, its clock set to ev's time and the rest zero. Fills
 * cx for nx_featurize_vector. Returns 1 if ev is in order (at or after the
 * clock), 0 if it is late for this user. */
static inline int nx_featurize_apply(const nx_store_t *store, nx_user_t *u, const nx_event_t *ev,
                                     int fresh, nx_ev_ctx_t *cx) {
    const nx_store_params_t *p = &store->p;
    uint32_t *last = u_last(store, u);
    int t = ev->type, k = p->recent_items;
    float value = (float)event_value(p, ev);
    cx->new_sess = 0;
    cx->item_views = 0;
    cx->cat_rev = 0;
    cx->gap_missing = fresh;
    cx->prev_gap_ms = 0;
    if (store->xs)
        xs_event(store, ev);
    if (fresh) {
        u->sess_age = 0;
        for (int j = 0; j < p->n_types; j++)
            last[j] = NX_AGE_NEVER;
    }
    if (ev->item)
        cx->item_views =
            recent_touch(u_items(store, u), u_views(store, u), &u->n_items, k, tag16(ev->item));
    if (ev->category)
        cx->cat_rev = recent_touch(u_cats(store, u), NULL, &u->n_cats, k, tag16(ev->category));

    if (!fresh && ev->ts_ms < u->clock) {
        /* Out of order for this user: add the event decayed to the user's
         * clock; the session follows event time and is untouched. */
        uint16_t *cnt = u_cnt(store, u), *val = u_val(store, u);
        float dt = (float)(u->clock - ev->ts_ms), f[NX_STORE_MAX_WINDOWS];
        decay_factors(&store->fz, dt, f);
        uint64_t r0 = sr_seed(u, ev);
        int nc = p->n_windows * p->n_types;
        for (int w = 0; w < p->n_windows; w++) {
            int k = w * p->n_types + t;
            cnt[k] = nx_half_round_sr(nx_half_to_float(cnt[k]) + f[w], sr_lane(r0, k));
            val[w] = nx_half_round_sr(nx_half_to_float(val[w]) + value * NX_VALUE_UNIT_INV * f[w],
                                      sr_lane(r0, nc + w));
        }
        uint32_t age = nx_age_of(u->clock - ev->ts_ms);
        if (age < last[t])
            last[t] = age;
        return 0;
    }
    int64_t gap = ev->ts_ms - u->clock;
    if (!fresh)
        cx->prev_gap_ms = gap;
    counters_in_order(store, u, t, value, gap, sr_seed(u, ev));
    /* the ages count from the clock, which moves to this event */
    if (gap > 0) {
        uint32_t g = nx_age_of(gap);
        for (int j = 0; j < p->n_types; j++)
            last[j] = nx_age_add(last[j], g);
        u->sess_age = nx_age_add(u->sess_age, g);
    }
    last[t] = 0;
    /* Session: a change of session id (absent counts as a value), or
     * without an id a gap longer than session_gap, starts a new one. */
    uint16_t sfp = ev->session ? tag16(ev->session) : 0;
    cx->new_sess = fresh || sfp != u->sess_tag || (!sfp && gap > p->session_gap_ms);
    if (cx->new_sess) {
        u->sess_age = 0;
        u->sess_len = 0;
        u->sess_rev = 0;
        u->sess_tag = sfp;
        u->carts = 0;
        u->cat_run = 0;
        u->cat_tag = 0;
    }
    if (u->sess_len < UINT16_MAX)
        u->sess_len++;
    if (cx->item_views && u->sess_rev < UINT8_MAX)
        u->sess_rev++;
    if (t == p->cart_type) {
        if (u->carts < UINT8_MAX)
            u->carts++;
    } else if (t == p->value_type) { /* a purchase empties the cart */
        u->carts = 0;
    }
    /* the run goes on while the session's events stay in one category */
    uint16_t cfp = ev->category ? tag16(ev->category) : 0;
    if (cfp && cfp == u->cat_tag)
        u->cat_run = (uint8_t)(u->cat_run < UINT8_MAX ? u->cat_run + 1 : UINT8_MAX);
    else
        u->cat_run = cfp ? 1 : 0;
    u->cat_tag = cfp;
    return 1;
}

/* --- read-out -------------------------------------------------------------- */

/* Each family's writer, o = the family's place in the vector. A log the
 * unrolled read-out takes four lanes at a time arrives as an argument. */

/* seconds of an age (ms before the clock) */
static inline float since_s(uint32_t age) {
    return (float)age * 0.001f;
}

static inline void write_recency(float *o, int missing, float log_since) {
    o[NX_ROW_SINCE_S] = log_since;
    o[NX_ROW_SINCE_MISSING] = (float)missing;
}

static inline void write_session(const nx_featurizer_t *fz, float *o, const nx_user_t *u,
                                 const nx_ev_ctx_t *cx, float log_events, float log_duration,
                                 float log_gap) {
    o[NX_ROW_SESSION_EVENTS] = log_events;
    o[NX_ROW_SESSION_DURATION_S] = log_duration;
    o[NX_ROW_SESSION_NEW] = (float)cx->new_sess;
    o[NX_ROW_SINCE_PREV_EVENT_S] = log_gap;
    o[NX_ROW_SINCE_PREV_MISSING] = (float)cx->gap_missing;
    o[NX_ROW_SESSION_CARTS] = fz->log1p_u8[u->carts];
    o[NX_ROW_SESSION_CART_OPEN] = u->carts ? 1.0f : 0.0f;
}

static inline void write_revisits(const nx_featurizer_t *fz, float *o, const nx_user_t *u,
                                  const nx_ev_ctx_t *cx) {
    int iv = cx->item_views, run = u->cat_run;
    o[NX_ROW_ITEM_REVISITS] = (float)(iv < NX_STORE_REVISIT_CAP ? iv : NX_STORE_REVISIT_CAP);
    o[NX_ROW_CATEGORY_REVISIT] = (float)cx->cat_rev;
    o[NX_ROW_SESSION_REVISITS] = fz->log1p_u8[u->sess_rev];
    o[NX_ROW_CATEGORY_RUN] =
        (float)(run < NX_STORE_CATEGORY_RUN_CAP ? run : NX_STORE_CATEGORY_RUN_CAP);
}

static inline void write_onehot(float *o, int type, int n_types) {
    for (int t = 0; t < n_types; t++)
        o[t * NX_NROWS_ONEHOT + NX_ROW_IS_TYPE] = t == type ? 1.0f : 0.0f;
}

static inline void write_time(const nx_featurizer_t *fz, float *o, int64_t ts_ms) {
    const int64_t day = 86400000; /* ms per day */
    int64_t days = floor_div(ts_ms, day);
    /* 1970-01-01 was a Thursday: +3 makes Monday 0 */
    int dow = (int)(((days + 3) % 7 + 7) % 7);
    day_sincos(fz, ts_ms - days * day, &o[NX_ROW_HOUR_SIN], &o[NX_ROW_HOUR_COS]);
    o[NX_ROW_DOW_SIN] = fz->dow_sin[dow];
    o[NX_ROW_DOW_COS] = fz->dow_cos[dow];
}

static inline void write_price(float *o, int has_price, float log_price) {
    o[NX_ROW_LOG_PRICE] = has_price ? log_price : 0.0f;
    o[NX_ROW_PRICE_MISSING] = has_price ? 0.0f : 1.0f;
}

/* the label history as shares: h_c / (1 + sum of h), 0 for a new user */
static inline void write_labels(float *o, const uint16_t *lab, int n_classes) {
    float h[NX_CLASSES_MAX], sum = 1.0f;
    for (int c = 0; c < n_classes; c++) {
        h[c] = nx_half_to_float(lab[c]);
        sum += h[c];
    }
    for (int c = 0; c < n_classes; c++)
        o[c * NX_NROWS_LABELS + NX_ROW_LAB_SHARE] = h[c] / sum;
}

static inline void write_itempop(float *o, const nx_ev_ctx_t *cx) {
    o[NX_ROW_ITEM_POP] = log1p_pos(cx->item_ev);
    o[NX_ROW_CAT_POP] = log1p_pos(cx->cat_ev);
}

static inline void write_itemrate(float *o, const nx_ev_ctx_t *cx, int n_classes) {
    for (int c = 0; c < n_classes; c++) {
        o[c * NX_NROWS_ITEMRATE + NX_ROW_ITEM_NEXT] = cx->item_rate[c];
        o[c * NX_NROWS_ITEMRATE + NX_ROW_CAT_NEXT] = cx->cat_rate[c];
    }
}

/* The families after the first eight, at their offsets (both read-outs). */
static inline void write_label_families(const nx_store_t *store, nx_user_t *u,
                                        const nx_ev_ctx_t *cx, float *out) {
    const int16_t *at = store->fz.at;
    int nc = store->p.n_types + 1;
    if (at[NX_FAM_LABELS] >= 0)
        write_labels(out + at[NX_FAM_LABELS], u_lab(store, u), nc);
    if (at[NX_FAM_ITEMPOP] >= 0)
        write_itempop(out + at[NX_FAM_ITEMPOP], cx);
    if (at[NX_FAM_ITEMRATE] >= 0)
        write_itemrate(out + at[NX_FAM_ITEMRATE], cx, nc);
}

/* The raw vector of u (state after ev) in any layout: each family that is
 * on at its offset. */
static inline void vector_generic(const nx_store_t *store, nx_user_t *u, const nx_event_t *ev,
                                  const nx_ev_ctx_t *cx, float *out) {
    const nx_featurizer_t *fz = &store->fz;
    const nx_store_params_t *p = &store->p;
    const int16_t *at = fz->at;
    int nt = p->n_types, nw = p->n_windows;
    const uint16_t *cnt = u_cnt(store, u);
    if (fz->vec_counters && at[NX_FAM_COUNTS] >= 0 && at[NX_FAM_VALUE] >= 0) {
        log1p_run(out + at[NX_FAM_COUNTS], cnt, fz->lane_unit, nw * (nt + 1));
    } else {
        if (at[NX_FAM_COUNTS] >= 0)
            for (int k = 0; k < nw * nt; k++)
                out[at[NX_FAM_COUNTS] + k] = flog1p(nx_half_to_float(cnt[k]));
        if (at[NX_FAM_VALUE] >= 0)
            for (int w = 0; w < nw; w++)
                out[at[NX_FAM_VALUE] + w] =
                    flog1p(nx_half_to_float(u_val(store, u)[w]) * NX_VALUE_UNIT);
    }
    if (at[NX_FAM_RECENCY] >= 0) {
        const uint32_t *last = u_last(store, u);
        for (int t = 0; t < nt; t++) {
            int miss = last[t] == NX_AGE_NEVER;
            write_recency(out + at[NX_FAM_RECENCY] + t * NX_NROWS_RECENCY, miss,
                          miss ? 0.0f : flog1p(since_s(last[t])));
        }
    }
    if (at[NX_FAM_SESSION] >= 0)
        write_session(fz, out + at[NX_FAM_SESSION], u, cx, flog1p((float)u->sess_len),
                      flog1p(since_s(u->sess_age)), flog1p((float)cx->prev_gap_ms * 0.001f));
    if (at[NX_FAM_REVISITS] >= 0)
        write_revisits(fz, out + at[NX_FAM_REVISITS], u, cx);
    if (at[NX_FAM_ONEHOT] >= 0)
        write_onehot(out + at[NX_FAM_ONEHOT], ev->type, nt);
    if (at[NX_FAM_TIME] >= 0)
        write_time(fz, out + at[NX_FAM_TIME], ev->ts_ms);
    if (at[NX_FAM_PRICE] >= 0) {
        /* an infinite price (which the codec refuses) counts as none: its
         * log would make the normaliser's statistics infinite for good */
        int has = ev->price >= 0 && ev->price <= FLT_MAX;
        write_price(out + at[NX_FAM_PRICE], has, has ? log1p_pos((float)ev->price) : 0.0f);
    }
    write_label_families(store, u, cx, out);
}

/* vector_generic for the default layout (its first eight families),
 * unrolled at the table's constant offsets: the 12 counters take three 4-lane logs, and the seven
 * other logs (recency per type, session length, duration, gap, price) two more, their inputs
 * gathered in registers. Lane for lane the same operations as vector_generic: the same bits
 * (test_layout333). */
static inline __attribute__((always_inline)) void vector_333(const nx_store_t *store, nx_user_t *u,
                                                             const nx_event_t *ev,
                                                             const nx_ev_ctx_t *cx, float *out) {
    const nx_featurizer_t *fz = &store->fz;
    log1p_run(out + NX_AT333_COUNTS, u_cnt(store, u), fz->lane_unit,
              9 * NX_NROWS_COUNTS + 3 * NX_NROWS_VALUE);
    const uint32_t *last = u_last(store, u);
    int miss0 = last[0] == NX_AGE_NEVER, miss1 = last[1] == NX_AGE_NEVER,
        miss2 = last[2] == NX_AGE_NEVER;
    /* a missing type's log input is 0: log1p(0) = 0, its feature */
    nx_v4f a = {miss0 ? 0.0f : since_s(last[0]), miss1 ? 0.0f : since_s(last[1]),
                miss2 ? 0.0f : since_s(last[2]), (float)u->sess_len};
    int has_price = ev->price >= 0;
    float price = has_price ? (float)ev->price : 0.0f;
    nx_v4f b = {since_s(u->sess_age), (float)cx->prev_gap_ms * 0.001f, price > 0 ? price : 0.0f,
                0.0f};
    a = log1p4(a);
    b = log1p4(b);
    write_recency(out + NX_AT333_RECENCY + 0 * NX_NROWS_RECENCY, miss0, a[0]);
    write_recency(out + NX_AT333_RECENCY + 1 * NX_NROWS_RECENCY, miss1, a[1]);
    write_recency(out + NX_AT333_RECENCY + 2 * NX_NROWS_RECENCY, miss2, a[2]);
    write_session(fz, out + NX_AT333_SESSION, u, cx, a[3], b[0], b[1]);
    write_revisits(fz, out + NX_AT333_REVISITS, u, cx);
    write_onehot(out + NX_AT333_ONEHOT, ev->type, 3);
    write_time(fz, out + NX_AT333_TIME, ev->ts_ms);
    write_price(out + NX_AT333_PRICE, has_price, b[2]);
    write_label_families(store, u, cx, out);
}

/* Writes the raw vector (fz.dim floats) of u's state after ev, which
 * nx_featurize_apply has applied and the caller has moved u's clock for, to
 * out. */
static inline __attribute__((always_inline)) void
nx_featurize_vector(const nx_store_t *store, nx_user_t *u, const nx_event_t *ev,
                    const nx_ev_ctx_t *cx, float *out) {
    if (store->fz.layout333)
        vector_333(store, u, ev, cx, out);
    else
        vector_generic(store, u, ev, cx, out);
}

/* --- featurize.c ------------------------------------------------------------ */

/* Builds the schema (names, family offsets, hash) and the tables for
 * params p (already checked). 0, or -1 + errstr (every family off, out of
 * memory); nx_featurize_free cleans up either way. */
int nx_featurize_init(nx_featurizer_t *fz, const nx_store_params_t *p, char *errstr,
                      size_t errstr_size);
void nx_featurize_free(nx_featurizer_t *fz);

#endif /* NX_FEATURIZE_H */
