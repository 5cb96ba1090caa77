/*
 * store.h: the per-user feature store.
 *
 * Turns a stream of nx_event_t into per-user state, one feature vector per
 * event, and labelled examples for training (DESIGN.md, Feature store).
 *
 * Layout and why:
 * - Users live in a dense slab of fixed-size records (size from the params:
 *   144 bytes with the defaults, 152 with 4 scores; the labels and
 *   item_rates families add their fields only when on: 184 with all three
 *   later families and 4 scores). The slab reserves
 *   address space for max_users records up front (MAP_NORESERVE; memory is committed only as
 *   pages are touched) and asks for transparent huge pages, so records never
 *   move, inserts never allocate and random access at 10M users does not
 *   also miss the TLB. Removal moves the last record into the hole,
 *   so the slab stays dense: iteration is a linear walk and the sampled-LRU
 *   eviction can pick uniformly random users in O(1).
 * - A chained hash table indexes the slab: buckets are 4-byte record indices
 *   (+1, 0 = empty) and each record holds the next index of its chain. That
 *   costs 4-8 bytes per user (load factor 0.5-1), against ~1.5-2x the record
 *   size for open addressing with inline records, and it makes incremental
 *   resize simple: as in Redis' dict, a grow allocates a second bucket array
 *   and moves old buckets over a few at a time (each insert moves two, each
 *   nx_store_maintain call moves more within its budget); lookups consult the
 *   old or new array depending on the bucket's position against the cursor.
 *   nx_store_update moves a user it finds to the front of its chain, so an
 *   active user is the record its prefetch brings in (chain order is not
 *   state: saves clear the links, lookups answer the same).
 *   The old array is not unmapped when the grow ends (one munmap of its
 *   32 MB at 10M users takes over a millisecond): nx_store_maintain unmaps
 *   it 256 KB per clock check.
 * - Windows are exponentially decayed counters, one per window and
 *   type (+ one for purchase value): count_w = sum over the user's events of
 *   exp(-(T - ts) / L_w), T = the user's clock (latest event time seen), L_w
 *   the window length. O(1) update in either time direction (a late event adds
 *   exp(-(T - ts)/L_w)), 2 bytes per counter (fp16, rounded stochastically
 *   so that it neither stalls nor drifts, each rounding within 2^-10 of
 *   it: half.h; values count in units of 1024, up to 67 million); bucketed rings of the default
 *   10/12/24 buckets would take ~46 counters per type instead of 3 (see
 *   bench/bench_features.c for the measured comparison).
 * - Each user holds at most one pending example: its normalised vector at its
 *   latest event, kept as 8-bit linear codes of [-clip, clip] (1 byte per
 *   feature, error <= clip / 254: 0.02 standard deviations at the default
 *   clip of 5; quant.h), or as IEEE fp16 (2 bytes, rel. error < 2^-11) when
 *   the store does not normalise or its clip is over 8, and the n_scores
 *   probabilities published for that event (fp16, set by
 *   nx_store_set_scores), for progressive validation.
 * - Other times than the user's clock (latest event per type, session
 *   start) are kept as 32-bit ages before it, saturating at ~49.7 days;
 *   recent items, categories and the session id as 16-bit tags of their
 *   hashes (two of a user's few recent ids collide with probability 2^-16
 *   a comparison).
 *
 * Time and lateness: for each event, with W = the watermark passed in:
 * - ts < W - longest window: dropped (counted, state untouched, zero row);
 * - ts < W: late (counted), still applied to the windows;
 * - ts < the user's clock T (the user's own events came out of order): the
 *   event is applied to counters, recency and recent items, but it neither
 *   changes the session nor takes part in labels: labels follow event time,
 *   so a late event neither resolves the pending example (it is not "next")
 *   nor becomes pending (a later event already exists).
 * Labels: when an event with ts >= the pending time arrives, the pending
 * example is resolved with label = the event's type if ts - pending < H, else
 * `none` (= n_types); then the event becomes pending. nx_store_expire_labels
 * resolves to `none` those with pending + H <= watermark, oldest first.
 *
 * Session and revisit features (per event; a late event, ts < the user's
 * clock, leaves the session state alone and reads it as it stands):
 * - since_prev_event_s: log1p(seconds from the user's previous event, any
 *   type, to this one), taken before the update (since_<type>_s are taken
 *   after it); since_prev_event_missing = 1 on the user's first event (then
 *   0 s); a late event reads 0 s.
 * - session_carts: log1p(cart adds, cart_type, in the session since its
 *   last purchase, value_type; saturates at 255); session_cart_open: > 0.
 * - item_revisits: events on this item before this one while it stayed
 *   among the recent_items most recent items (late events count), at most
 *   NX_STORE_REVISIT_CAP.
 * - category_run: events in a row in this event's category within the
 *   session, this one included (0 without a category), at most
 *   NX_STORE_CATEGORY_RUN_CAP.
 *
 * Label and cross-user features (families labels, item_popularity,
 * item_rates); the label counts are updated only when a label
 * resolves, with the label: never from the future. Classes are the event
 * types, then `none`.
 * - lab_<class>: the user's own label history: per class a decayed count
 *   (times label_decay at each resolved label, + 1 for its class; fp16 in
 *   the record), read as its share h_c / (1 + sum of h).
 * - item_pop, cat_pop: log1p(decayed events of all users on the event's item
 *   / category), this one included (xstats.h, one table for both).
 * - item_next_<class>, cat_next_<class>: the item's / category's share of
 *   each label among the resolved examples of all users' events on it,
 *   shrunk towards the share over all items (xstats.h). The record keeps
 *   the pending event's item and category fingerprints for its label.
 *
 * Guarantees: nx_store_update, nx_store_expire_labels and nx_store_maintain
 * allocate nothing except when the table starts a grow (one lazily zeroed
 * mapping, never a copy of the whole table), print nothing, and are
 * deterministic: the same events, watermarks, maintain calls and params give
 * bit-identical vectors, labels and state (eviction draws from a generator
 * seeded by params.seed). Not thread-safe: one owner (the main loop).
 * The store owns all its memory; caller buffers are only written.
 */
#ifndef NX_STORE_H
#define NX_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event.h"
#include "norm.h"
#include "siphash.h"
#include "stream.h"

#define NX_STORE_MAX_WINDOWS      4     /* window lengths configurable */
#define NX_STORE_MAX_RECENT       32    /* recent items/categories per user */
#define NX_STORE_TYPE_NAME_MAX    32    /* bytes incl. NUL */
#define NX_STORE_FEATURE_NAME_MAX 80    /* bytes incl. NUL */
#define NX_STORE_MAX_SCORES       16    /* probabilities kept with a pending example */
#define NX_STORE_SCORE_MEMO       65536 /* events per update remembered for set_scores */
/* Bounds of the revisit counts: they enter the vector linearly, and a
 * handful of repeats already says "engaged"; a bound keeps one long run from
 * stretching the feature's scale for everyone after normalisation. */
#define NX_STORE_REVISIT_CAP      3
#define NX_STORE_CATEGORY_RUN_CAP 5

/* Feature families, each switched on by one bit of params.families. */
enum {
    NX_FEAT_COUNTS = 1 << 0,    /* per window and type: log1p(decayed count) */
    NX_FEAT_VALUE = 1 << 1,     /* per window: log1p(decayed purchase value) */
    NX_FEAT_RECENCY = 1 << 2,   /* per type: log1p(seconds since last), missing flag */
    NX_FEAT_SESSION = 1 << 3,   /* session events, duration, new-session flag, gap since the
                                   previous event, cart adds since the last purchase */
    NX_FEAT_REVISITS = 1 << 4,  /* item views / category seen among recent, session revisits,
                                   same-category run */
    NX_FEAT_ONEHOT = 1 << 5,    /* the event's type, one-hot */
    NX_FEAT_TIME = 1 << 6,      /* hour of day and day of week as sin/cos (UTC) */
    NX_FEAT_PRICE = 1 << 7,     /* log1p(price), missing flag */
    NX_FEAT_LABELS = 1 << 8,    /* per class: its share of the user's decayed resolved labels */
    NX_FEAT_ITEMPOP = 1 << 9,   /* log1p(decayed events on the item / category, all users) */
    NX_FEAT_ITEMRATE = 1 << 10, /* per class: how often an event on the item / category was
                                   followed by it (all users, decayed, shrunk to the prior) */
    NX_FEAT_ALL = 0x7ff,
    NX_FEAT_BASE = 0xff /* the families of the user's own events (counts .. price) */
};

typedef struct nx_store_params {
    int n_types; /* 1..NX_EVENT_MAX_TYPES */
    char type_names[NX_EVENT_MAX_TYPES][NX_STORE_TYPE_NAME_MAX];
    int n_windows;                           /* 1..NX_STORE_MAX_WINDOWS */
    int64_t window_ms[NX_STORE_MAX_WINDOWS]; /* ascending lengths, ms */
    int value_type;         /* type whose price*quantity is "value"; -1 = any priced event.
                               It is also the purchase that empties the session's cart count. */
    int cart_type;          /* type counted as a cart add (session_carts); -1 = none (the
                               count stays 0). Callers set it to the type named "cart". */
    int64_t user_ttl_ms;    /* idle users expire after this (>= horizon_ms) */
    uint64_t max_users;     /* hard cap (>= 1), least recently active evicted */
    int64_t session_gap_ms; /* a gap longer than this starts a session (no session id) */
    int recent_items;       /* 0..NX_STORE_MAX_RECENT remembered items and categories */
    uint32_t families;      /* NX_FEAT_* bits */
    float clip;             /* normalised values are clipped to [-clip, clip] */
    int64_t horizon_ms;     /* label horizon H */
    int normalise;          /* 1: X rows are normalised (default); 0: raw (tests) */
    int force_generic;      /* tests: 1 = never the unrolled default-layout code (same bits) */
    uint64_t seed;          /* eviction sampling generator */
    int n_scores;      /* 0..16 probabilities kept (fp16) with each pending example; 0 = none */
    float label_decay; /* labels family: the user's label counts are multiplied by this at
                          each resolved label, (0, 1) */
    uint64_t item_stats_bytes;    /* item families: the table's memory budget, >= 4096 */
    int64_t item_stats_window_ms; /* item families: the table's decay time constant, > 0 */
} nx_store_params_t;

/* Fills the defaults: types click, cart, purchase (value from purchase,
 * cart adds from cart);
 * windows 5 min/1 h/24 h; TTL 24 h; 10M users; session
 * gap 30 min; 4 recent items; the families of the user's own events
 * (NX_FEAT_BASE); clip 5; H 30 min; normalise;
 * no scores; label decay 0.95; a 32 MB item table decaying over 24 h. */
void nx_store_params_default(nx_store_params_t *params);

/* Event status written per row by nx_store_update. */
enum {
    NX_STORE_OK = 0,      /* applied */
    NX_STORE_LATE = 1,    /* applied, older than the watermark */
    NX_STORE_DROPPED = 2, /* older than watermark - longest window: ignored, zero row */
    NX_STORE_INVALID = 3  /* type out of range or bad user id: ignored, zero row */
};

/* Labelled examples handed out by nx_store_update / nx_store_expire_labels.
 * All arrays are the caller's, with room for cap rows; n is set to the rows
 * written. Row r is x[r*dim .. r*dim+dim). */
typedef struct nx_examples {
    float *x;           /* (cap, dim) vector as the pending example kept it (8-bit or fp16) */
    int32_t *label;     /* (cap) event type index, or n_types for `none` */
    int64_t *ts_ms;     /* (cap) event time of the example's event */
    uint64_t *user;     /* (cap) user hash; may be NULL */
    int32_t *partition; /* (cap) input partition; may be NULL */
    float *score; /* (cap, n_scores) the scores set for the example's event by nx_store_set_scores
                     (0 if never set); may be NULL */
    size_t cap;
    size_t n;
} nx_examples_t;

typedef struct nx_store_stats {
    uint64_t users;          /* users now in the store */
    uint64_t events;         /* events applied (ok + late) */
    uint64_t late;           /* applied with ts < watermark */
    uint64_t dropped;        /* older than watermark - longest window */
    uint64_t invalid;        /* bad type or user id */
    uint64_t evictions;      /* users evicted by the max_users cap */
    uint64_t expirations;    /* users expired by TTL */
    uint64_t pending;        /* users holding a pending example */
    uint64_t labels_lost;    /* pending examples lost with an evicted/dropped user */
    uint64_t resolved;       /* examples resolved by a next event */
    uint64_t expired_labels; /* examples resolved to `none` by the watermark */
    uint64_t ttl_scans;      /* completed passes of the TTL scan over all users */
    uint64_t buckets;        /* hash buckets (both arrays during a grow) */
    int rehashing;           /* 1 while a grow is under way */
    size_t release_bytes;    /* old bucket memory nx_store_maintain has yet to unmap */
    size_t record_bytes;     /* bytes of one user record */
    double bytes_per_user;   /* estimate: record + buckets + slab slack */
} nx_store_stats_t;

typedef struct nx_store nx_store_t;

/* New store. Copies params and key. Caller frees with nx_store_destroy.
 * NULL + errstr on bad params or allocation failure. */
nx_store_t *nx_store_new(const nx_store_params_t *params, const uint8_t key[NX_SIPHASH_KEY_LEN],
                         char *errstr, size_t errstr_size);
void nx_store_destroy(nx_store_t *store);

/* --- Feature schema --------------------------------------------------- */

/* Features per vector. */
size_t nx_store_dim(const nx_store_t *store);
/* Name of feature i (< dim), e.g. "cnt_5m_click"; valid while the store
 * lives. */
const char *nx_store_feature_name(const nx_store_t *store, size_t i);
/* 64-bit hash of the layout (names in order, window kind); models and
 * checkpoints carry it so vectors of another layout are refused. */
uint64_t nx_store_schema_hash(const nx_store_t *store);
/* The online normaliser of the vectors (norm.h), owned by the store: for a
 * group of daemons that exchange its statistics. Same thread as the store. */
nx_norm_t *nx_store_norm(nx_store_t *store);

/* --- Hot path --------------------------------------------------------- */

/* Applies n events, in order, against watermark_ms (see the header comment).
 * x: (n, dim) caller buffer; row i receives event i's vector (normalised
 * unless params.normalise is 0; zero for dropped/invalid events).
 * status: (n) NX_STORE_* per event, may be NULL.
 * resolved: examples resolved by these events are appended from
 * resolved->n = 0; its cap must be >= n (each event resolves at most one).
 * Returns 0, or -1 only if resolved->cap < n (nothing is applied).
 * Lookups are software-pipelined with prefetch a few events ahead. */
int nx_store_update(nx_store_t *store, const nx_event_t *ev, size_t n, int64_t watermark_ms,
                    float *x, uint8_t *status, nx_examples_t *resolved);

/* Keeps the scores published for events just applied, with the pending
 * examples they made, so progressive validation scores each example with
 * what was predicted at its event, before any training on it. Call right
 * after nx_store_update with the same ev, n and its status array (no other
 * store call in between). For each event i, in order, that became its
 * user's pending example, scores[i*n_scores .. +n_scores) is stored as fp16
 * (rel. error < 2^-11) with it; if a later event of the batch replaced it,
 * the later event's scores win. Examples made and resolved within that one
 * update (scores unknown then) get theirs now, written into the caller's
 * resolved->score rows of that update, which must still be there.
 * Examples carry the scores out in nx_examples_t.score; one never given
 * scores carries 0s (also when set_scores is skipped for a batch).
 * Does nothing when params.n_scores is 0. O(n), allocates nothing: update
 * remembers the users' slab slots for its first NX_STORE_SCORE_MEMO events
 * (beyond them, or for another ev pointer, users are looked up again and
 * in-batch resolved rows keep 0s). */
void nx_store_set_scores(nx_store_t *store, const nx_event_t *ev, size_t n, const uint8_t *status,
                         const float *scores);

/* Resolves to `none` the pending examples whose time + H <= watermark_ms, in
 * the order they became pending (approximately oldest first: a user's new
 * pending example goes to the back), at most out->cap of them, written
 * from out->n = 0. O(returned); call every batch. Returns the number. */
size_t nx_store_expire_labels(nx_store_t *store, int64_t watermark_ms, nx_examples_t *out);

/* --- Maintenance ------------------------------------------------------ */

/* One maintenance slice from the main loop's tick: unmaps (256 KB at a time)
 * the bucket array a finished grow left, advances the table grow and the
 * TTL scan (users whose clock + ttl <= now_ms are removed; their
 * pending example is dropped, counted in labels_lost), stopping once
 * budget_us less a 50 us margin has been spent (clock checked every 16
 * steps or 256 KB unmapped, the margin covering one such slice). A budget of 0
 * runs to completion (tests). Returns the number of users expired. */
size_t nx_store_maintain(nx_store_t *store, int64_t now_ms, int64_t budget_us);

/* Gives slab memory of departed users back to the system (all but 4096
 * spare records beyond what the users need, in whole huge pages). Expiry and
 * eviction never do this themselves: a release can take milliseconds, so
 * the slab keeps its high-water mark (reused by new users) until this is
 * called, e.g. after a rebalance or in a quiet moment. drop_partition calls
 * it. Returns the bytes released. */
size_t nx_store_trim(nx_store_t *store);

/* --- Users, partitions, checkpoints ------------------------------------ */

/* Keyed hash of a user id, as used for lookups. */
uint64_t nx_store_user_hash(const nx_store_t *store, const char *user_id, size_t len);

/* 1 if the user (by hash) is in the store. */
int nx_store_contains(const nx_store_t *store, uint64_t user);

/* Calls fn(opaque, user hash, partition, clock ms) for every user, in slab
 * order; fn must not change the store. */
void nx_store_foreach(const nx_store_t *store,
                      void (*fn)(void *opaque, uint64_t user, int32_t partition, int64_t clock_ms),
                      void *opaque);

/* Text dump of one user's full state (every field; floats as %a), for
 * tests and debugging. Returns the length snprintf would write, or -1 if the
 * user is absent. */
int nx_store_dump_user(const nx_store_t *store, uint64_t user, char *buf, size_t size);

/* Saves the users of one partition (records and pending order), without
 * changing the store. 0 or -1 (a write failed). */
int nx_store_save_partition(const nx_store_t *store, int32_t partition, nx_stream_write_fn write,
                            void *opaque);
/* Removes every user of the partition (their pending examples are dropped
 * without counting as lost). O(users). Returns the number removed. */
size_t nx_store_drop_partition(nx_store_t *store, int32_t partition);
/* Restores users saved by nx_store_save_partition: records come back
 * bit-identical, pending ones go to the back of the expiry order in their
 * saved order. A user already present is replaced. 0 or -1 + errstr (bad
 * stream or schema; users read before the error stay). */
int nx_store_restore_partition(nx_store_t *store, nx_stream_read_fn read, void *opaque,
                               char *errstr, size_t errstr_size);

/* Saves / restores the whole store: every user in slab order, the expiry
 * order, the normaliser, counters and generator state, so a restored store
 * continues bit-identically. Restore needs a store made with the same
 * params; it replaces the current contents. 0 or -1 (+ errstr). */
int nx_store_save(const nx_store_t *store, nx_stream_write_fn write, void *opaque);
int nx_store_restore(nx_store_t *store, nx_stream_read_fn read, void *opaque, char *errstr,
                     size_t errstr_size);

/* Counters. */
void nx_store_stats(const nx_store_t *store, nx_store_stats_t *stats);

/* --- Change tracking and single users (store_changes.c) ----------------
 *
 * For a changelog kept elsewhere (the daemon's Kafka topic): with tracking
 * on, every user whose record changes (update, label resolution or expiry,
 * set_scores, restore) is flagged and listed once until handed out, and
 * every removal (TTL expiry, eviction, drop_partition, replacement) is
 * listed with the partition the user was in. The list lives in address
 * space reserved for 2 * max_users + 65536 entries (MAP_NORESERVE, pages
 * touched as used): appending never allocates; entries beyond it between
 * two takes are dropped and counted (nx_store_changes_lost). With tracking
 * off (the default) the hot path pays one predictable branch. */

typedef struct nx_store_change {
    uint64_t user;     /* user hash */
    int32_t partition; /* the user's input partition (of the removal, for removals) */
    int32_t removed;   /* 1: the user left the store (a tombstone); 0: its record changed */
} nx_store_change_t;

/* Turns tracking on (reserving the list) or off (emptying it and clearing
 * no flags: turn it on once, before the users to track change). 0, or -1
 * if the reservation failed. */
int nx_store_track_changes(nx_store_t *store, int on);

/* Hands out up to max changes, oldest first, into out: a changed user once
 * (its flag cleared), whatever it went through since the last take; a
 * removal only if the user is absent now (a user back in the store is
 * handed out as changed, or was restored as it is). O(entries consumed). */
size_t nx_store_take_changes(nx_store_t *store, nx_store_change_t *out, size_t max);

/* Lists a user again as changed (present) or removed (absent; partition
 * given), e.g. after a flush of its record failed. */
void nx_store_mark_changed(nx_store_t *store, uint64_t user, int32_t partition);

/* Change-list entries dropped because the list was full (the users they
 * named are not written until they change again). Not in nx_store_stats_t:
 * that struct is part of the checkpoint format. */
uint64_t nx_store_changes_lost(const nx_store_t *store);

/* Bytes of a user record made by nx_store_user_record (header + record). */
size_t nx_store_user_record_size(const nx_store_t *store);

/* One user's state as a versioned record: a 16-byte header (u8 version 2,
 * u8 score count, u16 0, u32 record size, u64 schema hash; host order) and
 * the record with its table and list links cleared, as store_persist.c
 * writes them. nx_store_put_user also takes version 1 records (the layout
 * before ages, tags and 8-bit pending features) and converts them. Returns the record's length, or
 * -1 if the user is absent or size is smaller than nx_store_user_record_size. Changes nothing. */
long nx_store_user_record(const nx_store_t *store, uint64_t user, void *buf, size_t size);

/* Puts a record made by nx_store_user_record into the store, replacing a
 * user with the same hash (at the cap, a user is evicted first); a pending
 * example goes to the back of the expiry order. The user is not listed as
 * changed (it is where the record came from). 0, or -1 + errstr for a
 * record of another version or layout, of the wrong length, or with
 * impossible fields (the store is unchanged). Its hash, on success, in
 * *user (may be NULL). */
int nx_store_put_user(nx_store_t *store, const void *buf, size_t len, uint64_t *user, char *errstr,
                      size_t errstr_size);

/* Removes a user (its pending example is dropped, not counted as lost).
 * 1 if it was there, else 0. */
int nx_store_remove_user(nx_store_t *store, uint64_t user);

#endif /* NX_STORE_H */
