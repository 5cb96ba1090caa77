/*
 * store_persist.c: the store as a byte stream, and one user as text.
 *
 * Owns the stream format of nx_store_save / nx_store_restore (the whole
 * store) and nx_store_save_partition / nx_store_restore_partition (the
 * users of one input partition), nx_store_drop_partition, and
 * nx_store_dump_user. A stream is a header (magic, record size, schema
 * hash, score count), the records with their index and list links
 * cleared, then the expiry order as user hashes (slab positions change on
 * restore); a whole-store stream adds the generator, TTL cursor, counters
 * and the normaliser, then the item table when the layout has one (its
 * own versioned stream, xstats.h). Records are raw memory: a stream is read back only by
 * a store of the same layout on a machine of the same byte order (the
 * header check refuses another layout). Records of the previous version
 * (version 3: full times, float counters, 32-bit fingerprints, fp16
 * pending features) are
 * converted as they are read (nx_persist_from_v3, also used for single
 * user records).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "norm.h"
#include "quant.h"
#include "store_int.h"

/* Stream tags: "NXU4" whole store, "NXP4" one partition (version 2: the
 * header carries n_scores; 3: records hold cart count, category run and
 * item view counts; 4: the compact record of store_int.h, with the label
 * and item families' fields when they are on: the header's record size
 * and schema hash tell those layouts apart). Version 3 streams are still
 * read. */
#define NX_STORE_MAGIC    0x3455584eu
#define NX_PART_MAGIC     0x3450584eu
#define NX_STORE_MAGIC_V3 0x3355584eu
#define NX_PART_MAGIC_V3  0x3350584eu

/* --- version 3 records ---------------------------------------------------- */

/* The head of a version 3 record; its tail followed in this order: last
 * event time per type (int64), the counts and values (float), recent items
 * and categories (32-bit fingerprints), the pending features and scores
 * (fp16), the item view counts (bytes), padded to 8 bytes. */
typedef struct nx_user_v3 {
    uint64_t hash;
    int64_t clock;
    int64_t sess_start;
    uint32_t chain, lprev, lnext;
    int32_t partition;
    uint32_t sess_fp, cat_fp;
    uint16_t sess_len;
    uint8_t sess_rev, flags, n_items, n_cats, carts, cat_run;
} nx_user_v3_t;
_Static_assert(sizeof(nx_user_v3_t) == 56, "the version 3 head was 56 bytes");

/* Offsets of the version 3 tail (after the head). Version 3 records had no
 * fields of the label or item families: with those on, the header check
 * (schema, record size) refuses a version 3 stream before any conversion. */
typedef struct v3_layout {
    size_t last, cnt, items, cats, pend, score, views, size;
} v3_layout_t;

static v3_layout_t v3_layout(const nx_store_t *store) {
    const nx_store_params_t *p = &store->p;
    size_t k = (size_t)p->recent_items;
    v3_layout_t l;
    l.last = sizeof(nx_user_v3_t);
    l.cnt = l.last + 8 * (size_t)p->n_types;
    l.items = l.cnt + 4 * (size_t)p->n_windows * ((size_t)p->n_types + 1);
    l.cats = l.items + 4 * k;
    l.pend = l.cats + 4 * k;
    l.score = l.pend + 2 * store->fz.dim;
    l.views = l.score + 2 * (size_t)p->n_scores;
    l.size = (l.views + k + 7) & ~(size_t)7;
    return l;
}

size_t nx_persist_v3_size(const nx_store_t *store) {
    return v3_layout(store).size;
}

/* The age of a version 3 time t at clock c (ms). */
static uint32_t v3_age(int64_t c, int64_t t) {
    if (t == INT64_MIN)
        return NX_AGE_NEVER;
    return c - t <= 0 ? 0 : nx_age_of(c - t);
}

void nx_persist_from_v3(const nx_store_t *store, const void *in, void *out) {
    const nx_store_params_t *p = &store->p;
    const char *b = in;
    v3_layout_t l = v3_layout(store);
    nx_user_v3_t o;
    memcpy(&o, b, sizeof o);
    memset(out, 0, store->rec_size);
    nx_user_t *u = out;
    u->hash = o.hash;
    u->clock = o.clock;
    u->partition = o.partition;
    u->sess_age = v3_age(o.clock, o.sess_start);
    u->sess_tag = o.sess_fp ? nx_tag16_of32(o.sess_fp) : 0;
    u->cat_tag = o.cat_fp ? nx_tag16_of32(o.cat_fp) : 0;
    u->sess_len = o.sess_len;
    u->sess_rev = o.sess_rev;
    u->flags = o.flags;
    u->n_items = o.n_items;
    u->n_cats = o.n_cats;
    u->carts = o.carts;
    u->cat_run = o.cat_run;
    for (int t = 0; t < p->n_types; t++) {
        int64_t last;
        memcpy(&last, b + l.last + 8 * (size_t)t, 8);
        u_last(store, u)[t] = v3_age(o.clock, last);
    }
    /* counts then values, in the same order, to the nearest fp16 of what
     * they count in (nx_half_round_sr with half the dropped range: to
     * nearest, saturating) */
    for (int k = 0; k < p->n_windows * (p->n_types + 1); k++) {
        float c;
        memcpy(&c, b + l.cnt + 4 * (size_t)k, 4);
        u_cnt(store, u)[k] = nx_half_round_sr(c / store->fz.lane_unit[k], 0x1000u);
    }
    for (int i = 0; i < p->recent_items; i++) {
        uint32_t f;
        memcpy(&f, b + l.items + 4 * (size_t)i, 4);
        u_items(store, u)[i] = i < o.n_items ? nx_tag16_of32(f) : 0;
        memcpy(&f, b + l.cats + 4 * (size_t)i, 4);
        u_cats(store, u)[i] = i < o.n_cats ? nx_tag16_of32(f) : 0;
    }
    memcpy(u_views(store, u), b + l.views, (size_t)p->recent_items);
    memcpy(u_score(store, u), b + l.score, 2 * (size_t)p->n_scores);
    if (!store->pend8) {
        memcpy(u_pend(store, u), b + l.pend, 2 * store->fz.dim);
        return;
    }
    int8_t *q = u_pend(store, u);
    for (size_t i = 0; i < store->fz.dim; i++) {
        uint16_t h;
        memcpy(&h, b + l.pend + 2 * i, 2);
        float x = nx_half_to_float(h);
        nx_quant_encode(NX_HALF_PORTABLE, &x, &q[i], 1, p->clip);
    }
}

int nx_store_dump_user(const nx_store_t *store, uint64_t user, char *buf, size_t size) {
    uint32_t idx = find(store, user);
    if (idx == UINT32_MAX)
        return -1;
    const nx_store_params_t *p = &store->p;
    nx_user_t *u = rec(store, idx);
    size_t off = 0;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        int r_ =                                                                                   \
            snprintf(off < size ? buf + off : NULL, off < size ? size - off : 0, __VA_ARGS__);     \
        off += (size_t)(r_ > 0 ? r_ : 0);                                                          \
    } while (0)
    OUT("user %016" PRIx64 " partition %d clock %" PRId64 " pending %d\n", u->hash, u->partition,
        u->clock, (u->flags & NX_F_PENDING) ? 1 : 0);
    OUT("session tag %04x age %" PRIu32 " len %u revisits %u carts %u category %04x run %u\n",
        u->sess_tag, u->sess_age, u->sess_len, u->sess_rev, u->carts, u->cat_tag, u->cat_run);
    const uint32_t *last = u_last(store, u);
    const uint16_t *cnt = u_cnt(store, u), *val = u_val(store, u);
    int nc = p->n_windows * p->n_types;
    for (int t = 0; t < p->n_types; t++)
        if (last[t] == NX_AGE_NEVER)
            OUT("last %s never\n", p->type_names[t]);
        else
            OUT("last %s age %" PRIu32 "\n", p->type_names[t], last[t]);
    for (int w = 0; w < p->n_windows; w++) {
        OUT("window %" PRId64 ":", p->window_ms[w]);
        for (int t = 0; t < p->n_types; t++)
            OUT(" %a", (double)nx_half_to_float(cnt[w * p->n_types + t]));
        OUT(" value %a\n", (double)(nx_half_to_float(val[w]) * store->fz.lane_unit[nc + w]));
    }
    OUT("items");
    for (int i = 0; i < u->n_items; i++)
        OUT(" %04x/%u", u_items(store, u)[i], u_views(store, u)[i]);
    OUT("\ncategories");
    for (int i = 0; i < u->n_cats; i++)
        OUT(" %04x", u_cats(store, u)[i]);
    OUT("\n");
    if (p->families & NX_FEAT_LABELS) {
        OUT("labels");
        for (int c = 0; c <= p->n_types; c++)
            OUT(" %04x", u_lab(store, u)[c]);
        OUT("\n");
    }
    if (p->families & NX_FEAT_ITEMRATE)
        OUT("pending keys %08x %08x\n", u_xfp(store, u)[0], u_xfp(store, u)[1]);
    if (u->flags & NX_F_PENDING) {
        OUT("pending");
        for (size_t i = 0; i < store->fz.dim; i++)
            if (store->pend8)
                OUT(" %02x", (uint8_t)((int8_t *)u_pend(store, u))[i]);
            else
                OUT(" %04x", ((uint16_t *)u_pend(store, u))[i]);
        OUT("\n");
        if (p->n_scores) {
            OUT("scores");
            for (int i = 0; i < p->n_scores; i++)
                OUT(" %04x", u_score(store, u)[i]);
            OUT("\n");
        }
    }
#undef OUT
    return (int)off;
}

/* --- streams --------------------------------------------------------- */

typedef struct nx_stream_head {
    uint32_t magic;
    uint32_t rec_size;
    uint64_t schema_hash;
    uint64_t n_users;
    uint32_t n_scores; /* fp16 scores in each record's pending slot */
    uint32_t reserved; /* 0 */
} nx_stream_head_t;

/* Writes record u with its table/list links cleared (they are rebuilt). */
static int write_rec(const nx_store_t *store, nx_user_t *u, char *tmp, nx_stream_write_fn write,
                     void *opaque) {
    memcpy(tmp, u, store->rec_size);
    nx_user_t *c = (nx_user_t *)tmp;
    c->chain = c->lprev = c->lnext = 0;
    c->flags &= (uint8_t)~NX_F_DIRTY;
    if (c->flags & NX_F_FRESH) { /* saved before set_scores: no scores */
        c->flags &= (uint8_t)~NX_F_FRESH;
        memset(u_score(store, c), 0, sizeof(uint16_t) * (size_t)store->p.n_scores);
    }
    return write(opaque, tmp, store->rec_size);
}

int nx_store_save_partition(const nx_store_t *store, int32_t partition, nx_stream_write_fn write,
                            void *opaque) {
    char *tmp = malloc(store->rec_size);
    int rc = -1;
    if (!tmp)
        goto out;
    nx_stream_head_t hd = {NX_PART_MAGIC,
                           (uint32_t)store->rec_size,
                           store->fz.schema_hash,
                           0,
                           (uint32_t)store->p.n_scores,
                           0};
    uint64_t n_pend = 0;
    for (uint32_t i = 0; i < store->n_users; i++)
        if (rec(store, i)->partition == partition)
            hd.n_users++;
    for (uint32_t i = store->lhead; i; i = rec(store, i - 1)->lnext)
        if (rec(store, i - 1)->partition == partition)
            n_pend++;
    if (write(opaque, &hd, sizeof hd))
        goto out;
    for (uint32_t i = 0; i < store->n_users; i++) {
        nx_user_t *u = rec(store, i);
        if (u->partition == partition && write_rec(store, u, tmp, write, opaque))
            goto out;
    }
    /* Expiry order as user hashes (slab positions change on restore). */
    if (write(opaque, &n_pend, sizeof n_pend))
        goto out;
    for (uint32_t i = store->lhead; i; i = rec(store, i - 1)->lnext) {
        nx_user_t *u = rec(store, i - 1);
        if (u->partition == partition && write(opaque, &u->hash, sizeof u->hash))
            goto out;
    }
    rc = 0;
out:
    free(tmp);
    return rc;
}

size_t nx_store_drop_partition(nx_store_t *store, int32_t partition) {
    size_t removed = 0;
    for (int64_t i = (int64_t)store->n_users - 1; i >= 0; i--) {
        if (i >= (int64_t)store->n_users)
            continue;
        if (rec(store, (uint32_t)i)->partition == partition) {
            nx_table_remove(store, (uint32_t)i);
            removed++;
        }
    }
    nx_store_trim(store);
    return removed;
}

/* Scratch for reading records: the record as read (in_size bytes: a
 * version 3 record if v3), then rec_size bytes for its conversion. Caller
 * frees with free(). */
static char *read_buf(const nx_store_t *store, int v3, size_t *in_size) {
    *in_size = v3 ? nx_persist_v3_size(store) : store->rec_size;
    return malloc(*in_size + store->rec_size);
}

/* Reads one record (in_size bytes; a version 3 record is converted) into
 * tmp (read_buf) and inserts it (replacing a user with the same hash). The
 * pending flag is cleared; the caller relinks the expiry order. */
static int read_insert(nx_store_t *store, char *tmp, size_t in_size, nx_stream_read_fn read,
                       void *opaque, char *errstr, size_t errstr_size) {
    if (read(opaque, tmp, in_size)) {
        snprintf(errstr, errstr_size, "features: short read in user records");
        return -1;
    }
    if (in_size != store->rec_size) {
        nx_persist_from_v3(store, tmp, tmp + in_size);
        tmp += in_size;
    }
    uint32_t idx = nx_table_put(store, tmp);
    if (idx == UINT32_MAX) {
        snprintf(errstr, errstr_size, "features: out of memory restoring users");
        return -1;
    }
    nx_user_t *u = rec(store, idx);
    u->flags &= (uint8_t) ~(NX_F_PENDING | NX_F_DIRTY);
    if (store->track)
        nx_mark_dirty(store, idx);
    return 0;
}

/* 0 if hd heads a stream of this store's layout (magic, or magic_v3 with
 * version 3 records, then *v3 = 1), else -1 + errstr. */
static int check_head(const nx_store_t *store, const nx_stream_head_t *hd, uint32_t magic,
                      uint32_t magic_v3, int *v3, char *errstr, size_t errstr_size) {
    *v3 = hd->magic == magic_v3;
    size_t want = *v3 ? nx_persist_v3_size(store) : store->rec_size;
    if ((hd->magic != magic && !*v3) || hd->rec_size != want ||
        hd->schema_hash != store->fz.schema_hash || hd->n_scores != (uint32_t)store->p.n_scores) {
        snprintf(errstr, errstr_size,
                 "features: stream is not a store of this layout (magic %08x, record %u bytes, "
                 "schema %016" PRIx64 ", %u scores)",
                 hd->magic, hd->rec_size, hd->schema_hash, hd->n_scores);
        return -1;
    }
    return 0;
}

static int read_pending_order(nx_store_t *store, nx_stream_read_fn read, void *opaque, char *errstr,
                              size_t errstr_size) {
    uint64_t n_pend;
    if (read(opaque, &n_pend, sizeof n_pend)) {
        snprintf(errstr, errstr_size, "features: short read in pending order");
        return -1;
    }
    for (uint64_t k = 0; k < n_pend; k++) {
        uint64_t h;
        if (read(opaque, &h, sizeof h)) {
            snprintf(errstr, errstr_size, "features: short read in pending order");
            return -1;
        }
        uint32_t idx = find(store, h);
        if (idx == UINT32_MAX || (rec(store, idx)->flags & NX_F_PENDING)) {
            snprintf(errstr, errstr_size, "features: pending order names an unknown user");
            return -1;
        }
        nx_table_list_append(store, idx);
    }
    return 0;
}

int nx_store_restore_partition(nx_store_t *store, nx_stream_read_fn read, void *opaque,
                               char *errstr, size_t errstr_size) {
    nx_stream_head_t hd;
    char *tmp = NULL;
    int rc = -1;
    if (read(opaque, &hd, sizeof hd)) {
        snprintf(errstr, errstr_size, "features: short read in partition header");
        goto out;
    }
    int v3;
    if (check_head(store, &hd, NX_PART_MAGIC, NX_PART_MAGIC_V3, &v3, errstr, errstr_size))
        goto out;
    if (store->n_users + hd.n_users > store->p.max_users) {
        snprintf(errstr, errstr_size,
                 "features: restoring %" PRIu64 " users would exceed max_users %" PRIu64,
                 hd.n_users, store->p.max_users);
        goto out;
    }
    size_t in_size;
    tmp = read_buf(store, v3, &in_size);
    if (!tmp) {
        snprintf(errstr, errstr_size, "features: out of memory");
        goto out;
    }
    for (uint64_t k = 0; k < hd.n_users; k++)
        if (read_insert(store, tmp, in_size, read, opaque, errstr, errstr_size))
            goto out;
    if (read_pending_order(store, read, opaque, errstr, errstr_size))
        goto out;
    rc = 0;
out:
    free(tmp);
    return rc;
}

/* Scalar state carried by a whole-store stream after the records. */
typedef struct nx_store_tail {
    uint64_t rng;
    int64_t ttl_cursor;
    nx_store_stats_t st;
} nx_store_tail_t;

int nx_store_save(const nx_store_t *store, nx_stream_write_fn write, void *opaque) {
    char *tmp = malloc(store->rec_size);
    int rc = -1;
    if (!tmp)
        goto out;
    nx_stream_head_t hd = {NX_STORE_MAGIC, (uint32_t)store->rec_size,   store->fz.schema_hash,
                           store->n_users, (uint32_t)store->p.n_scores, 0};
    if (write(opaque, &hd, sizeof hd))
        goto out;
    for (uint32_t i = 0; i < store->n_users; i++)
        if (write_rec(store, rec(store, i), tmp, write, opaque))
            goto out;
    uint64_t n_pend = store->st.pending;
    if (write(opaque, &n_pend, sizeof n_pend))
        goto out;
    for (uint32_t i = store->lhead; i; i = rec(store, i - 1)->lnext)
        if (write(opaque, &rec(store, i - 1)->hash, sizeof(uint64_t)))
            goto out;
    nx_store_tail_t tail;
    memset(&tail, 0, sizeof tail);
    tail.rng = store->rng;
    tail.ttl_cursor = store->ttl_cursor;
    tail.st = store->st;
    if (write(opaque, &tail, sizeof tail))
        goto out;
    if (nx_norm_save(store->norm, write, opaque))
        goto out;
    if (store->xs && nx_xstats_save(store->xs, write, opaque))
        goto out;
    rc = 0;
out:
    free(tmp);
    return rc;
}

int nx_store_restore(nx_store_t *store, nx_stream_read_fn read, void *opaque, char *errstr,
                     size_t errstr_size) {
    nx_stream_head_t hd;
    char *tmp = NULL;
    int rc = -1;
    if (read(opaque, &hd, sizeof hd)) {
        snprintf(errstr, errstr_size, "features: short read in store header");
        goto out;
    }
    int v3;
    if (check_head(store, &hd, NX_STORE_MAGIC, NX_STORE_MAGIC_V3, &v3, errstr, errstr_size))
        goto out;
    if (hd.n_users > store->p.max_users) {
        snprintf(errstr, errstr_size, "features: %" PRIu64 " users exceed max_users %" PRIu64,
                 hd.n_users, store->p.max_users);
        goto out;
    }
    size_t in_size;
    tmp = read_buf(store, v3, &in_size);
    if (!tmp) {
        snprintf(errstr, errstr_size, "features: out of memory");
        goto out;
    }
    nx_table_clear(store);
    /* Records go back at their slab positions (they were saved in order). */
    for (uint64_t k = 0; k < hd.n_users; k++)
        if (read_insert(store, tmp, in_size, read, opaque, errstr, errstr_size))
            goto out;
    if (read_pending_order(store, read, opaque, errstr, errstr_size))
        goto out;
    nx_store_tail_t tail;
    if (read(opaque, &tail, sizeof tail)) {
        snprintf(errstr, errstr_size, "features: short read in store counters");
        goto out;
    }
    store->rng = tail.rng;
    store->ttl_cursor = tail.ttl_cursor;
    size_t rec_bytes = store->st.record_bytes;
    store->st = tail.st;
    store->st.record_bytes = rec_bytes;
    if (nx_norm_load(store->norm, read, opaque, errstr, errstr_size))
        goto out;
    if (store->xs && nx_xstats_restore(store->xs, read, opaque, errstr, errstr_size))
        goto out;
    rc = 0;
out:
    free(tmp);
    return rc;
}
