/*
 * store_changes.c: what changed in the store, and single users as records.
 *
 * Owns the change list (store.h, Change tracking): entries are appended by
 * the store's other rooms through nx_mark_dirty (a changed user, listed
 * once while its NX_F_DIRTY flag is set) and nx_changes_append (a removal,
 * from nx_table_remove), and handed out by nx_store_take_changes. The list
 * is one reservation of address space, like the slab: appends never
 * allocate, and a take that empties it starts it over from the front, so
 * the pages in use stay those of the busiest interval between takes.
 *
 * Also owns the per-user record format (nx_store_user_record /
 * nx_store_put_user): the record bytes store_persist.c writes for a whole
 * partition, one user at a time, behind a header that names the layout.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "store_int.h"

/* Entries the list holds beyond 2 * max_users: a user can be listed as
 * changed and removed between two takes, and a burst of removals of users
 * that came and went adds a few more. */
#define NX_CHANGES_SLACK 65536u

/* Version 2: the compact record (store_int.h); version 1 records (the
 * layout of stream version 3) are converted when put. */
#define NX_USER_RECORD_VERSION 2u
#define NX_USER_RECORD_V1      1u
#define NX_USER_HEAD           16u

int nx_store_track_changes(nx_store_t *store, int on) {
    if (!on) {
        store->track = 0;
        store->chg_head = store->chg_n = 0;
        return 0;
    }
    if (!store->chg) {
        size_t cap = 2 * (size_t)store->p.max_users + NX_CHANGES_SLACK;
        size_t bytes = cap * sizeof(nx_store_change_t);
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return -1;
        store->chg = p;
        store->chg_cap = cap;
        store->chg_bytes = bytes;
    }
    store->track = 1;
    return 0;
}

/* Called by nx_table_free (store_table.c) through nx_store_destroy. */
void nx_changes_free(nx_store_t *store) {
    if (store->chg)
        munmap(store->chg, store->chg_bytes);
    store->chg = NULL;
}

void nx_changes_append(nx_store_t *store, uint64_t h, int32_t partition, int removed) {
    if (store->chg_n >= store->chg_cap) {
        store->chg_lost++;
        return;
    }
    nx_store_change_t *c = &store->chg[store->chg_n++];
    c->user = h;
    c->partition = partition;
    c->removed = removed;
}

uint64_t nx_store_changes_lost(const nx_store_t *store) {
    return store->chg_lost;
}

size_t nx_store_take_changes(nx_store_t *store, nx_store_change_t *out, size_t max) {
    size_t n = 0;
    while (n < max && store->chg_head < store->chg_n) {
        nx_store_change_t c = store->chg[store->chg_head++];
        uint32_t idx = find(store, c.user);
        if (c.removed) {
            /* back in the store: listed as changed again, or put there
             * from the record the changelog holds */
            if (idx == UINT32_MAX)
                out[n++] = c;
            continue;
        }
        if (idx == UINT32_MAX)
            continue; /* removed since: its removal entry follows */
        nx_user_t *u = rec(store, idx);
        if (!(u->flags & NX_F_DIRTY))
            continue; /* handed out by an earlier entry of the same user */
        u->flags &= (uint8_t)~NX_F_DIRTY;
        out[n++] = (nx_store_change_t){c.user, u->partition, 0};
    }
    if (store->chg_head == store->chg_n)
        store->chg_head = store->chg_n = 0;
    return n;
}

void nx_store_mark_changed(nx_store_t *store, uint64_t user, int32_t partition) {
    if (!store->track)
        return;
    uint32_t idx = find(store, user);
    if (idx != UINT32_MAX)
        nx_mark_dirty(store, idx);
    else
        nx_changes_append(store, user, partition, 1);
}

/* --- single users --------------------------------------------------------- */

size_t nx_store_user_record_size(const nx_store_t *store) {
    return NX_USER_HEAD + store->rec_size;
}

long nx_store_user_record(const nx_store_t *store, uint64_t user, void *buf, size_t size) {
    uint32_t idx = find(store, user);
    size_t len = NX_USER_HEAD + store->rec_size;
    if (idx == UINT32_MAX || size < len)
        return -1;
    uint8_t *b = buf;
    uint32_t rs = (uint32_t)store->rec_size;
    uint64_t schema = store->fz.schema_hash;
    b[0] = NX_USER_RECORD_VERSION;
    b[1] = (uint8_t)store->p.n_scores;
    b[2] = b[3] = 0;
    memcpy(b + 4, &rs, 4);
    memcpy(b + 8, &schema, 8);
    nx_user_t *c = (nx_user_t *)(b + NX_USER_HEAD);
    memcpy(c, rec(store, idx), store->rec_size);
    c->chain = c->lprev = c->lnext = 0;
    c->flags &= (uint8_t)~NX_F_DIRTY;
    if (c->flags & NX_F_FRESH) { /* taken before set_scores: no scores */
        c->flags &= (uint8_t)~NX_F_FRESH;
        memset(u_score(store, c), 0, sizeof(uint16_t) * (size_t)store->p.n_scores);
    }
    return (long)len;
}

/* The checks a record from outside passes before it enters the slab:
 * layout, and the fields that index into the record or the list. */
static int check_record(const nx_store_t *store, const uint8_t *b, size_t len, char *errstr,
                        size_t errstr_size) {
    uint32_t rs;
    uint64_t schema;
    if (len < NX_USER_HEAD) {
        snprintf(errstr, errstr_size, "features: user record of %zu bytes is truncated", len);
        return -1;
    }
    memcpy(&rs, b + 4, 4);
    memcpy(&schema, b + 8, 8);
    if (b[0] != NX_USER_RECORD_VERSION && b[0] != NX_USER_RECORD_V1) {
        snprintf(errstr, errstr_size, "features: user record version %u, not %u", b[0],
                 NX_USER_RECORD_VERSION);
        return -1;
    }
    size_t want = b[0] == NX_USER_RECORD_V1 ? nx_persist_v3_size(store) : store->rec_size;
    if (b[1] != (uint8_t)store->p.n_scores || b[2] || b[3] || rs != want ||
        schema != store->fz.schema_hash) {
        snprintf(errstr, errstr_size,
                 "features: user record of another layout (%u bytes, schema %016" PRIx64
                 ", %u scores)",
                 rs, schema, b[1]);
        return -1;
    }
    if (len != NX_USER_HEAD + want) {
        snprintf(errstr, errstr_size, "features: user record of %zu bytes, want %zu", len,
                 NX_USER_HEAD + want);
        return -1;
    }
    return 0;
}

/* The checks of a record's fields that index into the record or the list
 * (current layout). */
static int check_fields(const nx_store_t *store, const void *rec_in, char *errstr,
                        size_t errstr_size) {
    nx_user_t u;
    memcpy(&u, rec_in, sizeof u);
    int recent = store->p.recent_items;
    if (u.n_items > recent || u.n_cats > recent || (u.flags & ~NX_F_PENDING) || u.hash == 0) {
        snprintf(errstr, errstr_size, "features: user record with impossible fields");
        return -1;
    }
    return 0;
}

/* nx_store_put_user of record in (current layout). */
static int put_checked(nx_store_t *store, const void *in, uint64_t *user, char *errstr,
                       size_t errstr_size) {
    if (check_fields(store, in, errstr, errstr_size))
        return -1;
    uint64_t h;
    memcpy(&h, (const char *)in + offsetof(nx_user_t, hash), sizeof h);
    if (find(store, h) == UINT32_MAX && store->n_users >= store->p.max_users)
        nx_evict_one(store);
    uint32_t idx = nx_table_put(store, in);
    if (idx == UINT32_MAX) {
        snprintf(errstr, errstr_size, "features: out of memory restoring a user");
        return -1;
    }
    nx_user_t *u = rec(store, idx);
    int pending = u->flags & NX_F_PENDING;
    u->flags = 0;
    if (pending)
        nx_table_list_append(store, idx);
    if (user)
        *user = h;
    return 0;
}

int nx_store_put_user(nx_store_t *store, const void *buf, size_t len, uint64_t *user, char *errstr,
                      size_t errstr_size) {
    const uint8_t *b = buf;
    if (check_record(store, b, len, errstr, errstr_size))
        return -1;
    const void *in = b + NX_USER_HEAD;
    char *conv = NULL;
    if (b[0] == NX_USER_RECORD_V1) {
        conv = malloc(store->rec_size);
        if (!conv) {
            snprintf(errstr, errstr_size, "features: out of memory restoring a user");
            return -1;
        }
        nx_persist_from_v3(store, in, conv);
        in = conv;
    }
    int rc = put_checked(store, in, user, errstr, errstr_size);
    free(conv);
    return rc;
}

int nx_store_remove_user(nx_store_t *store, uint64_t user) {
    uint32_t idx = find(store, user);
    if (idx == UINT32_MAX)
        return 0;
    nx_table_remove(store, idx);
    return 1;
}
