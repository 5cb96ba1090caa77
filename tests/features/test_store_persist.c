/*
 * test_store_persist.c: the feature store's state in and out
 * (features/store.h), linking only nx_features: per-partition save, drop
 * and restore, change tracking and single-user records, records of the
 * previous version (3) converted on load, the record with the later
 * families (fields disjoint, round trips), whole-store checkpoints, and
 * the label families by hand.
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
    nx_store_t *store, *twin;
    if (twin_stores(&p, &store, &twin) < 0)
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
    nx_store_t *store, *twin;
    if (twin_stores(&p, &store, &twin) < 0)
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
    nx_store_t *a, *b;
    if (twin_stores(&p, &a, &b) < 0)
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

int main(void) {
    test_partitions();
    test_changes();
    test_v3_records();
    test_checkpoint(NX_FEAT_BASE);
    test_checkpoint(NX_FEAT_ALL);
    test_label_families();
    test_family_records();
    return check_exit("test_store_persist");
}
