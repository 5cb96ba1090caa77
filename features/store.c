/*
 * store.c: the feature store's public operations (see store.h for the
 * design and guarantees): construction, the update pipeline with its
 * prefetches, scores and labels, maintenance and counters. The other rooms,
 * behind store_int.h: store_table.c (slab, index, expiry list),
 * store_evict.c (cap and TTL), featurize.[ch] (the features),
 * store_persist.c (streams).
 */
#include "store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "featurize.h"
#include "half.h"
#include "norm.h"
#include "quant.h"
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
 * in flight, within the core's line fill buffers (a batch's prefetches
 * issued in one burst stall on the prefetches themselves). With DRAM
 * latency ~220 ns and an update ~270 ns at 10M users, each stage leaves at
 * least two updates' time for its lines to arrive. The distances are the
 * best of a sweep (bench/NOTES.md) and can be set with -D for another.
 * Everything read ahead is only a hint: apply looks the user up again. */
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

/* Maintenance stops this long before its budget ends: the longest slice
 * between clock checks (256 KB unmapped, ~25 us; 16 removals, ~16 us) must
 * still fit, also when other processes on the cores slow it down, so that
 * a tick ends within its budget (bench/NOTES.md). Budgets under twice this
 * get half of themselves as margin. */
#define NX_MAINT_MARGIN_US 100

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
    params->value_type = 2;
    params->cart_type = 1;
    params->user_ttl_ms = 24 * 60 * 60 * 1000;
    params->max_users = 10000000;
    params->session_gap_ms = 30 * 60 * 1000;
    params->recent_items = 4;
    params->families = NX_FEAT_BASE; /* the label families are the caller's choice */
    params->clip = 5.0f;             /* 5 sigma: keeps outliers from dominating a step */
    params->horizon_ms = 30 * 60 * 1000;
    params->normalise = 1;
    params->seed = 1;
    /* 0.95: about the last 20 labels; a user's own rates settle within a
     * day of shopping yet follow a change of habit */
    params->label_decay = 0.95f;
    params->item_stats_bytes = 32u << 20; /* 1M slots of 32 bytes: 2-way, no churn below ~500k
                                             active items and categories */
    params->item_stats_window_ms = 24 * 60 * 60 * 1000;
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
    if (!(p->label_decay > 0.0f && p->label_decay < 1.0f))
        BAD("features: label_decay %g not in (0, 1)", (double)p->label_decay);
    if ((p->families & (NX_FEAT_ITEMPOP | NX_FEAT_ITEMRATE)) &&
        (p->item_stats_bytes < 4096 || p->item_stats_window_ms <= 0))
        BAD("features: the item table needs >= 4096 bytes and a window > 0");
    if (p->n_scores < 0 || p->n_scores > NX_STORE_MAX_SCORES)
        BAD("features: n_scores %d not in 0..%d", p->n_scores, NX_STORE_MAX_SCORES);
#undef BAD
    return 0;
}

static size_t align8(size_t x) {
    return (x + 7) & ~(size_t)7;
}

nx_store_t *nx_store_new(const nx_store_params_t *params, const uint8_t key[NX_SIPHASH_KEY_LEN],
                         char *errstr, size_t errstr_size) {
    nx_store_t *store = NULL;
    if (check_params(params, errstr, errstr_size))
        return NULL;
    store = calloc(1, sizeof *store);
    if (!store)
        goto oom;
    store->p = *params;
    memcpy(store->key, key, NX_SIPHASH_KEY_LEN);
    if (nx_featurize_init(&store->fz, &store->p, errstr, errstr_size))
        goto err;
    const nx_store_params_t *p = &store->p;
    store->max_window_ms = p->window_ms[p->n_windows - 1];

    /* Widest fields first, so each stays aligned without padding. */
    size_t off = sizeof(nx_user_t);
    store->off_last = off;
    off += sizeof(uint32_t) * (size_t)p->n_types;
    /* The state of the families after the first eight only when they are
     * on: a layout without them keeps its record (and its saved streams). */
    store->off_xfp = off; /* item_rates: the pending event's item/category keys */
    if (p->families & NX_FEAT_ITEMRATE)
        off += 2 * sizeof(uint32_t);
    store->off_cnt = off; /* fp16 counters (half.h) */
    off += sizeof(uint16_t) * (size_t)p->n_windows * (size_t)p->n_types;
    store->off_val = off; /* right after the counts: decay scales both in one loop */
    off += sizeof(uint16_t) * (size_t)p->n_windows;
    store->off_items = off;
    off += sizeof(uint16_t) * (size_t)p->recent_items;
    store->off_cats = off;
    off += sizeof(uint16_t) * (size_t)p->recent_items;
    store->off_score = off;
    off += sizeof(uint16_t) * (size_t)p->n_scores;
    store->off_lab = off; /* labels: fp16 per class */
    if (p->families & NX_FEAT_LABELS)
        off += sizeof(uint16_t) * (size_t)(p->n_types + 1);
    /* Normalised features lie within [-clip, clip]: 8-bit codes hold them
     * to clip / 254 (quant.h), finer than the noise of any one example;
     * raw features, or a wide clip, keep fp16. */
    store->pend8 = p->normalise && p->clip <= NX_QUANT_CLIP_MAX;
    store->off_pend = off;
    off += (store->pend8 ? 1 : sizeof(uint16_t)) * store->fz.dim;
    store->off_views = off; /* bytes last: no alignment to keep after them */
    off += (size_t)p->recent_items;
    store->rec_size = align8(off);

    if (nx_table_init(store))
        goto oom;
    if (p->families & (NX_FEAT_ITEMPOP | NX_FEAT_ITEMRATE)) {
        store->xs = nx_xstats_new((size_t)p->item_stats_bytes, p->n_types + 1,
                                  p->item_stats_window_ms, errstr, errstr_size);
        if (!store->xs)
            goto err;
    }
    store->norm = nx_norm_new(store->fz.dim, p->clip);
    store->raw = calloc(store->fz.dim, sizeof *store->raw);
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
    nx_xstats_destroy(store->xs);
    nx_table_free(store);
    nx_featurize_free(&store->fz);
    free(store);
}

/* --- labels ------------------------------------------------------------- */

void nx_store_pend_decode(const nx_store_t *store, nx_user_t *u, float *x) {
    if (store->pend8)
        nx_quant_decode(store->half_isa, u_pend(store, u), x, store->fz.dim, store->p.clip);
    else
        nx_half_decode(store->half_isa, u_pend(store, u), x, store->fz.dim);
}

void nx_store_pend_encode(const nx_store_t *store, const float *x, nx_user_t *u) {
    if (store->pend8)
        nx_quant_encode(store->half_isa, x, u_pend(store, u), store->fz.dim, store->p.clip);
    else
        nx_half_encode(store->half_isa, x, u_pend(store, u), store->fz.dim);
}

static void emit_example(const nx_store_t *store, nx_user_t *u, int32_t label, nx_examples_t *ex) {
    size_t r = ex->n++;
    float *x = ex->x + r * store->fz.dim;
    nx_store_pend_decode(store, u, x);
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
            memset(xrow, 0, store->fz.dim * sizeof *xrow);
            return UINT32_MAX;
        }
        fresh = 1;
        rec(store, idx)->clock = ev->ts_ms;
    }
    nx_user_t *u = rec(store, idx);
    u->partition = ev->partition;
    if (store->track)
        nx_mark_dirty(store, idx);
    nx_ev_ctx_t cx;
    if (nx_featurize_apply(store, u, ev, fresh, &cx)) {
        /* Label of the pending example (made at the old clock): the user's
         * next event in event time resolves it. After the feature update on
         * purpose: unlinking writes the list neighbours, whose prefetched
         * lines get that work's time to arrive. */
        if (u->flags & NX_F_PENDING) {
            int32_t label = ev->ts_ms - u->clock < p->horizon_ms ? ev->type : p->n_types;
            size_t row = resolved->n;
            emit_example(store, u, label, resolved);
            nx_featurize_label(store, u, label);
            /* made by an event of this batch: set_scores fills the row in */
            if (store->memo_maker && row < NX_STORE_SCORE_MEMO)
                store->memo_maker[row] = (u->flags & NX_F_FRESH) ? u_score(store, u)[0] : -1;
            u->flags &= (uint8_t)~NX_F_FRESH;
            nx_table_list_unlink(store, idx);
            store->st.resolved++;
        }
        u->clock = ev->ts_ms;
    }
    nx_featurize_read_items(store, ev, &cx);

    float *raw = p->normalise ? store->raw : xrow;
    nx_featurize_vector(store, u, ev, &cx, raw);
    if (p->normalise) {
        nx_norm_step(store->norm, raw, xrow);
    }
    if (ev->ts_ms == u->clock && !(u->flags & NX_F_PENDING)) {
        nx_store_pend_encode(store, xrow, u);
        nx_featurize_pending(store, u, ev);
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
 * dead, silently: every test still passes (the features_prefetch test
 * counts the prefetch instructions). */
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
        memset(xrow, 0, store->fz.dim * sizeof *xrow);
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
     * at once competing for the line fill buffers. */
    for (size_t k = 0; k < n + NX_AHEAD_BUCKET; k++) {
        size_t j = k - (NX_AHEAD_BUCKET - NX_AHEAD_RECORD);
        if (k >= NX_AHEAD_BUCKET - NX_AHEAD_RECORD && j < n &&
            st[j & (NX_RING - 1)] <= NX_STORE_LATE)
            prefetch_record(store, *bucket_of(store, h[j & (NX_RING - 1)]));
        if (k >= NX_AHEAD_BUCKET) {
            size_t i = k - NX_AHEAD_BUCKET;
            apply_slot(store, &ev[i], i, st[i & (NX_RING - 1)], h[i & (NX_RING - 1)],
                       x + i * store->fz.dim, status, resolved);
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
                /* the item's slot of the item table: a random line of a
                 * large table, as far ahead as the user's bucket (the
                 * category's are few and stay cached) */
                if (store->xs && e->item)
                    nx_xstats_prefetch(store->xs, xs_item_key(e));
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
        uint32_t idx;
        if (memo_ok && i < NX_STORE_SCORE_MEMO) {
            /* Event i made the user's pending example iff the user is still
             * marked fresh with i in its slot: a later event of the batch
             * that made a newer one put its own index there. */
            idx = memo_find(store, i);
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
            idx = find(store, nx_siphash24(store->key, ev[i].user_id, ev[i].user_id_len));
            if (idx == UINT32_MAX)
                continue;
            u = rec(store, idx);
            if (!(u->flags & NX_F_PENDING) || (u->flags & NX_F_FRESH) || u->clock != ev[i].ts_ms)
                continue;
        }
        nx_half_encode(store->half_isa, scores + i * (size_t)k, u_score(store, u), (size_t)k);
        if (store->track)
            nx_mark_dirty(store, idx);
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
        nx_featurize_label(store, u, store->p.n_types);
        nx_table_list_unlink(store, idx);
        if (store->track)
            nx_mark_dirty(store, idx);
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
