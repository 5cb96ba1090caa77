/*
 * store_int.h: the feature store's record layout and internal state.
 *
 * Private to the store's files (store.c, store_table.c, store_evict.c,
 * store_persist.c, store_changes.c, featurize.[ch]): nothing outside
 * features/ includes it, and nothing in it is API. It owns the user record (a fixed head,
 * nx_user_t, then a tail laid out from the params by nx_store_new), struct
 * nx_store with every file's fields, the record accessors, the read side
 * of the hash index (inline: the update pipeline calls it for every
 * event), and the calls the files make into store_table.c,
 * store_evict.c and store_persist.c. Everything here has the store's single owner, except the
 * pf_* fields shared with the populating thread (see store_table.c).
 *
 * Invariants every file keeps: records are dense in the slab (index
 * 0..n_users-1); a record is in exactly one bucket chain; a record is in
 * the expiry list iff flags has NX_F_PENDING; links are index+1, 0 = none.
 */
#ifndef NX_STORE_INT_H
#define NX_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "norm.h"
#include "siphash.h"
#include "store.h"
#include "xstats.h"

/* Huge page size: the slab and bucket arrays ask for transparent huge
 * pages. At 10M users (2.4 GB) with 4 KB pages nearly every record access
 * would also miss the TLB and walk the page tables. */
#define NX_HUGE_PAGE (2u << 20)

/* Maintenance checks the clock every this many steps: a step costs up to
 * ~1 us (a removal touches ~5 random records), so the budget is overrun by
 * at most ~16 us; clock_gettime (vDSO, ~20 ns) every 16 steps is noise. */
#define NX_MAINT_CHECK 16

#define NX_F_PENDING 1u /* flags: holds a pending example */
/* flags: the pending example was made by the current update batch and
 * awaits its scores; until nx_store_set_scores, score slot 0 holds the index
 * of the event that made it (< NX_STORE_SCORE_MEMO = 65536: fits 16 bits). */
#define NX_F_FRESH 2u
_Static_assert(NX_STORE_SCORE_MEMO <= 65536, "event index must fit a 16-bit score slot");
/* flags: changed since the last nx_store_take_changes handed it out (only
 * while change tracking is on); the user's hash is in the change list. */
#define NX_F_DIRTY 4u

/* The fixed head of a user record; the variable tail follows at offsets
 * computed from the params (see nx_store_new). Times other than the clock
 * are kept as ages before it (ms, saturating at NX_AGE_MAX, about 49.7
 * days): every feature reads them as such, and 4 bytes instead of 8 a
 * time keep the record small. Item, category and session ids are 16-bit
 * tags (tag16): two ids of one user's few recent ones share a tag with
 * probability 2^-16 per comparison. */
typedef struct nx_user {
    uint64_t hash;  /* keyed SipHash of the user id */
    int64_t clock;  /* latest event time seen, ms (= pending time) */
    uint32_t chain; /* next record in the bucket chain, index+1, 0 = end */
    uint32_t lprev; /* expiry list neighbours, index+1, 0 = none */
    uint32_t lnext;
    int32_t partition; /* input partition of the latest event */
    uint32_t sess_age; /* ms from the session's first event to the clock */
    uint16_t sess_tag; /* session id tag, 0 = none (gap rule) */
    uint16_t cat_tag;  /* category tag of the session's latest event, 0 = none */
    uint16_t sess_len; /* events in the session (saturating) */
    uint8_t sess_rev;  /* item revisits in the session (saturating) */
    uint8_t flags;     /* NX_F_* */
    uint8_t n_items;   /* entries used in the recent items ring */
    uint8_t n_cats;    /* entries used in the recent categories ring */
    uint8_t carts;     /* cart adds in the session since its last purchase (saturating) */
    uint8_t cat_run;   /* events in a row in category cat_tag in the session (saturating) */
} nx_user_t;
_Static_assert(sizeof(nx_user_t) == 48, "the record head packs into 48 bytes");

/* Ages (ms before the clock) saturate here; NX_AGE_NEVER = no such event. */
#define NX_AGE_MAX   (UINT32_MAX - 1)
#define NX_AGE_NEVER UINT32_MAX

/* a + g ms (g <= NX_AGE_MAX, from nx_age_of), saturating at NX_AGE_MAX;
 * NX_AGE_NEVER stays. Branch-free: the update adds to every age. */
static inline uint32_t nx_age_add(uint32_t a, uint32_t g) {
    uint64_t s = (uint64_t)a + g;
    uint32_t r = s > NX_AGE_MAX ? NX_AGE_MAX : (uint32_t)s;
    return a == NX_AGE_NEVER ? a : r;
}

/* The age of a time dt ms before the clock (dt >= 0), saturating. */
static inline uint32_t nx_age_of(int64_t dt) {
    return (uint64_t)dt >= NX_AGE_MAX ? NX_AGE_MAX : (uint32_t)dt;
}

/* 32-bit fingerprint of an item/category/session hash, never 0 (the item
 * table's keys, featurize.h). */
static inline uint32_t fp32(uint64_t h) {
    return (uint32_t)(h ^ (h >> 32)) | 1u;
}

/* 16-bit tag of an item/category/session hash, never 0: the 64 bits folded
 * twice (so a record that kept 32-bit fingerprints, fp32, converts to the
 * same tags). */
static inline uint16_t nx_tag16_of32(uint32_t f) {
    return (uint16_t)((f ^ (f >> 16)) | 1u);
}
static inline uint16_t tag16(uint64_t h) {
    return nx_tag16_of32(fp32(h));
}

/* Decayed counters per user at most: per window, one per type and one value. */
#define NX_COUNTERS_MAX (NX_STORE_MAX_WINDOWS * (NX_EVENT_MAX_TYPES + 1))

#define NX_FEATURIZE_FAMILIES 11 /* one per NX_FEAT_* bit */

/* The featurizer's schema and tables: built by nx_featurize_init
 * (featurize.c), read by the per-event code (featurize.h). */
typedef struct nx_featurizer {
    size_t dim;                               /* features per vector */
    char (*names)[NX_STORE_FEATURE_NAME_MAX]; /* (dim) */
    uint64_t schema_hash;
    int16_t at[NX_FEATURIZE_FAMILIES]; /* vector offset of each family (layout order), -1 = off */
    float inv_window_ms[NX_STORE_MAX_WINDOWS]; /* 1/length per window, 0 unused */
    float q_sin[96], q_cos[96];   /* sin, cos of each quarter hour's start (angle of a day) */
    float dow_sin[7], dow_cos[7]; /* of each weekday (angle of a week) */
    float log1p_u8[256];          /* log1p(n) of the 8-bit counters (carts, session revisits) */
    /* The decayed counters (counts then values, NX_COUNTERS_MAX floats at
     * most) are updated 4 at a time when their number is a multiple of 4
     * (the defaults: 3 windows x (3 types + value) = 12): per lane its
     * window, the increment of an event of type t, and the value lanes
     * (mask). */
    int vec_counters; /* 1: the vector path applies */
    int layout333;    /* the default layout: 3 types, 3 windows, the first eight families on
                         (unrolled; the later families follow at their offsets) */
    uint8_t lane_win[NX_COUNTERS_MAX];                   /* window of lane k */
    float lane_inc[NX_EVENT_MAX_TYPES][NX_COUNTERS_MAX]; /* 1 on type t's count lanes */
    int32_t lane_val[NX_COUNTERS_MAX];                   /* all ones on the value lanes */
    float lane_unit[NX_COUNTERS_MAX]; /* what a lane counts in: 1, values NX_VALUE_UNIT */
} nx_featurizer_t;

struct nx_store {
    nx_store_params_t p;
    uint8_t key[NX_SIPHASH_KEY_LEN];

    nx_featurizer_t fz;    /* layout, schema and the featurizer's tables */
    int64_t max_window_ms; /* the longest window: older events are dropped */

    /* record layout */
    size_t rec_size;
    size_t off_last, off_cnt, off_val, off_items, off_cats, off_pend, off_score, off_views;
    size_t off_xfp; /* item_rates: the pending event's item and category keys (2 u32) */
    size_t off_lab; /* labels: the decayed label counts, fp16 per class */
    int pend8;      /* pending features as 8-bit codes (nx_quant), else fp16 */

    nx_xstats_t *xs; /* item and category statistics (item families on), else NULL */

    /* The last update's batch, for nx_store_set_scores (arrays allocated
     * only when n_scores > 0; entries for its first NX_STORE_SCORE_MEMO
     * events / resolved rows). */
    const nx_event_t *memo_ev; /* the last update's ev */
    size_t memo_n;             /* its n */
    int memo_open;             /* 1: users may carry NX_F_FRESH from that batch */
    uint64_t *memo_hash;       /* (MEMO) user hash per event */
    uint32_t *memo_idx;        /* (MEMO) slab index per event, UINT32_MAX = not applied */
    int32_t *memo_maker;   /* (MEMO) per resolved row: event of this batch that made it, or -1 */
    float *memo_res_score; /* the caller's resolved->score (may be NULL) */
    size_t memo_res_n;     /* rows resolved by that update */

    /* slab */
    char *slab;        /* max_users records of virtual memory, touched on use */
    size_t slab_bytes; /* mapped length */
    uint32_t n_users;

    /* table: bk[0] the main array; bk[1] the new one during a grow */
    uint32_t *bk[2];
    uint64_t mask[2];
    int64_t rehash_idx; /* next bk[0] bucket to move; -1 = no grow */

    /* the next bucket array while a thread of its own faults it in, before
     * the grow starts (see maybe_grow) */
    uint32_t *pre;       /* NULL = none */
    uint64_t pre_mask;   /* its bucket count - 1 */
    pthread_t pf_thread; /* the populating thread, while pf_running */
    int pf_running;      /* 1: pf_thread is to be joined */
    atomic_int pf_done;  /* set by pf_thread when the array is in */
    void *pf_addr;       /* what pf_thread populates (read-only to it) */
    size_t pf_len;

    /* the bucket array a finished grow left behind, unmapped in slices by
     * nx_store_maintain (one munmap of it could take milliseconds) */
    char *dead;      /* NULL = none */
    size_t dead_len; /* bytes still mapped from dead */

    /* expiry order of pending examples */
    uint32_t lhead, ltail; /* index+1 */

    nx_norm_t *norm;
    float *raw; /* (dim) scratch for the raw vector */
    uint64_t rng;
    int64_t ttl_cursor; /* next slab index the TTL scan visits (downwards) */

    int half_isa; /* NX_HALF_* path for fp16 vectors (same bits on every path) */

    /* change tracking (store_changes.c): off unless nx_store_track_changes */
    int track;                 /* 1: changes and removals are listed */
    nx_store_change_t *chg;    /* (chg_cap) reserved address space, touched on use */
    size_t chg_cap, chg_bytes; /* entries; mapped length */
    size_t chg_head, chg_n;    /* entries [chg_head, chg_n) not yet taken */
    uint64_t chg_lost;         /* entries dropped: the list was full */

    nx_store_stats_t st;
};

/* --- records ------------------------------------------------------------ */

static inline nx_user_t *rec(const nx_store_t *store, uint32_t i) {
    return (nx_user_t *)(store->slab + (size_t)i * store->rec_size);
}
/* per type: ms from its latest event to the clock, NX_AGE_NEVER = none */
static inline uint32_t *u_last(const nx_store_t *store, nx_user_t *u) {
    return (uint32_t *)((char *)u + store->off_last);
}
/* decayed counters (fp16, half.h): counts window-major, then values */
static inline uint16_t *u_cnt(const nx_store_t *store, nx_user_t *u) {
    return (uint16_t *)((char *)u + store->off_cnt);
}
static inline uint16_t *u_val(const nx_store_t *store, nx_user_t *u) {
    return (uint16_t *)((char *)u + store->off_val);
}
static inline uint16_t *u_items(const nx_store_t *store, nx_user_t *u) {
    return (uint16_t *)((char *)u + store->off_items);
}
static inline uint16_t *u_cats(const nx_store_t *store, nx_user_t *u) {
    return (uint16_t *)((char *)u + store->off_cats);
}
/* the pending features: dim 8-bit codes if pend8, else dim fp16 */
static inline void *u_pend(const nx_store_t *store, nx_user_t *u) {
    return (char *)u + store->off_pend;
}
static inline uint16_t *u_score(const nx_store_t *store, nx_user_t *u) {
    return (uint16_t *)((char *)u + store->off_score);
}
static inline uint8_t *u_views(const nx_store_t *store, nx_user_t *u) {
    return (uint8_t *)((char *)u + store->off_views);
}
static inline uint32_t *u_xfp(const nx_store_t *store, nx_user_t *u) {
    return (uint32_t *)((char *)u + store->off_xfp);
}
static inline uint16_t *u_lab(const nx_store_t *store, nx_user_t *u) {
    return (uint16_t *)((char *)u + store->off_lab);
}

/* The pending example of u to floats (dim), and x (dim) into it: 8-bit
 * codes or fp16 (store.c). */
void nx_store_pend_decode(const nx_store_t *store, nx_user_t *u, float *x);
void nx_store_pend_encode(const nx_store_t *store, const float *x, nx_user_t *u);

/* --- hash index, read side ---------------------------------------------- */

/* The bucket head that holds (or would hold) hash h: during a grow, buckets
 * below the cursor have moved to the new array. */
static inline uint32_t *bucket_of(const nx_store_t *store, uint64_t h) {
    uint64_t b = h & store->mask[0];
    if (store->rehash_idx >= 0 && b < (uint64_t)store->rehash_idx)
        return &store->bk[1][h & store->mask[1]];
    return &store->bk[0][b];
}

/* Slab index of user h, or UINT32_MAX. */
static inline uint32_t find(const nx_store_t *store, uint64_t h) {
    uint32_t i = *bucket_of(store, h);
    while (i) {
        nx_user_t *u = rec(store, i - 1);
        if (u->hash == h)
            return i - 1;
        i = u->chain;
    }
    return UINT32_MAX;
}

/* find(), moving the record found to the front of its chain: the
 * update pipeline prefetches the first record of a chain (the next link is
 * not known until that one arrives), so active users should be there. At
 * 10M users (Zipf, load 0.6) 6% of lookups still find their user further
 * down. Chain order is not state: saves clear the links, and lookups give
 * the same answers in any order. */
static inline uint32_t find_front(nx_store_t *store, uint64_t h) {
    uint32_t *head = bucket_of(store, h), *link = head, i = *head;
    while (i) {
        nx_user_t *u = rec(store, i - 1);
        if (u->hash == h) {
            if (link != head) {
                *link = u->chain;
                u->chain = *head;
                *head = i;
            }
            return i - 1;
        }
        link = &u->chain;
        i = *link;
    }
    return UINT32_MAX;
}

/* --- change tracking (store_changes.c) --------------------------------- */

/* Appends an entry to the change list (dropped and counted in chg_lost
 * if the list is full). */
void nx_changes_append(nx_store_t *store, uint64_t h, int32_t partition, int removed);
/* Unmaps the change list (nx_table_free). */
void nx_changes_free(nx_store_t *store);

/* Record idx changed: flagged and listed once until taken. Call only with
 * store->track set (callers test it: one branch when tracking is off). */
static inline void nx_mark_dirty(nx_store_t *store, uint32_t idx) {
    nx_user_t *u = rec(store, idx);
    if (!(u->flags & NX_F_DIRTY)) {
        u->flags |= NX_F_DIRTY;
        nx_changes_append(store, u->hash, u->partition, 0);
    }
}

/* --- time budgets ------------------------------------------------------- */

static inline int64_t nx_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 1 once the monotonic clock reaches deadline (us); a deadline of
 * INT64_MAX never comes, and the clock is not read for it. */
static inline int nx_past(int64_t deadline) {
    return deadline != INT64_MAX && nx_now_us() >= deadline;
}

/* --- store_table.c: slab, hash index, expiry list ----------------------- */

/* Maps the slab (address space for max_users records) and the first bucket
 * array. 0, or -1 if a mapping failed (nx_table_free cleans up). */
int nx_table_init(nx_store_t *store);
/* Unmaps everything the table holds, after joining the populating thread. */
void nx_table_free(nx_store_t *store);
/* Appends a zeroed record for h and links it into the index (moving a few
 * buckets of a grow, or starting one). Its index, or UINT32_MAX if the
 * slab is full (max_users). */
uint32_t nx_table_insert(nx_store_t *store, uint64_t h);
/* Removes record idx (and its pending example from the expiry list), moving
 * the last record into the hole: indices held across this go stale. */
void nx_table_remove(nx_store_t *store, uint32_t idx);
/* A copy of record `in` (rec_size bytes, from a stream) into the table,
 * replacing a user with the same hash; its chain and list links are the
 * table's, its flags as copied (the caller fixes them). Its index, or
 * UINT32_MAX when out of memory. */
uint32_t nx_table_put(nx_store_t *store, const void *in);
/* Empties the store, keeping the slab's pages and the larger bucket array. */
void nx_table_clear(nx_store_t *store);
/* Puts record idx at the back of the expiry list (sets NX_F_PENDING), or
 * takes it out (clears it). */
void nx_table_list_append(nx_store_t *store, uint32_t idx);
void nx_table_list_unlink(nx_store_t *store, uint32_t idx);
/* Maintenance slice of the index: starts a grow whose array is in, moves
 * buckets, then unmaps the array a finished grow left, until done (0) or
 * deadline (nx_past) is reached (1). */
int nx_table_step(nx_store_t *store, int64_t deadline);

/* --- store_persist.c: records of the previous version ------------------- */

/* Bytes of a version 3 record of this store's params. */
size_t nx_persist_v3_size(const nx_store_t *store);
/* Converts version 3 record in (nx_persist_v3_size bytes) to the current
 * layout in out (rec_size bytes): times become ages, fingerprints tags,
 * pending features the store's format; links and flags as they were. */
void nx_persist_from_v3(const nx_store_t *store, const void *in, void *out);

/* --- store_evict.c: who leaves ------------------------------------------ */

/* Removes the least recently active of a few random users (the store is
 * not empty); counts the eviction and a lost pending example. */
void nx_evict_one(nx_store_t *store);
/* TTL scan from the saved cursor: removes users idle for user_ttl_ms at
 * now_ms, at most one pass over the slab, stopping at deadline (checked
 * every NX_MAINT_CHECK users). Returns the number removed. */
size_t nx_evict_expired(nx_store_t *store, int64_t now_ms, int64_t deadline);

#endif /* NX_STORE_INT_H */
