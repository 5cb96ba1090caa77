/*
 * store_table.c: where user records live and how they are found.
 *
 * Owns the slab (dense records in one reserved mapping), the chained hash
 * index over it with its incremental grow (a thread of its own faults the
 * next bucket array in first; the old array is unmapped in slices
 * afterwards), and the expiry list of pending examples. Inserts and
 * removals keep all three consistent: a removal moves the last record into
 * the hole and repoints its chain and list neighbours. Layout and
 * invariants: store_int.h; the why of the design: store.h.
 *
 * Threads: only the populating thread runs beside the owner, and it only
 * faults in a bucket array nobody reads yet (madvise, no data written).
 */
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "store_int.h"

/* Slab memory given back by nx_store_trim keeps this many spare records. */
#define NX_SLAB_SPARE 4096u

/* Initial bucket count (power of two); the table doubles at load 1. */
#define NX_INIT_BUCKETS 1024u

/* Buckets moved per insert while a grow is under way: 2 > 1 so a grow of a
 * table of S buckets completes within S/2 inserts, before the new table
 * (2S buckets) reaches load 1 again. */
#define NX_REHASH_PER_INSERT 2

/* A finished grow's old bucket array is unmapped this many bytes at a time
 * between clock checks: munmap costs ~40 us per MB of touched 4 KB pages on
 * a quiet machine, and twice that with other processes on the cores; 256 KB
 * stays well within the maintenance margin (NX_MAINT_MARGIN_US) either
 * way, where the whole array (32 MB at 10M users) would take over a
 * millisecond. */
#define NX_RELEASE_CHUNK (256u << 10)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Anonymous zeroed memory of len bytes, or NULL. huge: ask for transparent
 * huge pages (advice only; the slab and bucket arrays of at least a huge
 * page do, see maybe_grow). */
static void *map_zeroed(size_t len, int huge) {
    void *p =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (huge && len >= NX_HUGE_PAGE)
        madvise(p, len, MADV_HUGEPAGE);
    return p;
}

static void unmap(void *p, size_t len) {
    munmap(p, len);
}

static size_t bucket_bytes(uint64_t mask) {
    return (mask + 1) * sizeof(uint32_t);
}

int nx_table_init(nx_store_t *store) {
    /* The slab reserves address space for max_users records at once
     * (MAP_NORESERVE: no memory is committed until a page is touched), so
     * records never move and inserts never allocate. */
    store->slab_bytes = (size_t)store->p.max_users * store->rec_size;
    store->slab_bytes = (store->slab_bytes + NX_HUGE_PAGE - 1) / NX_HUGE_PAGE * NX_HUGE_PAGE;
    store->slab = map_zeroed(store->slab_bytes, 1);
    store->bk[0] = map_zeroed(NX_INIT_BUCKETS * sizeof(uint32_t), 0);
    store->mask[0] = NX_INIT_BUCKETS - 1;
    store->rehash_idx = -1;
    return store->slab && store->bk[0] ? 0 : -1;
}

/* --- grow --------------------------------------------------------------- */

/* Hands a finished grow's old bucket array to nx_table_step, which unmaps
 * it in slices. Grows are 2x apart, so a second one finishing before the
 * first is released means maintenance is not running: then the older one
 * goes at once. */
static void retire(nx_store_t *store, void *p, size_t len) {
    if (store->dead)
        unmap(store->dead, store->dead_len);
    store->dead = p;
    store->dead_len = len;
}

/* Unmaps up to NX_RELEASE_CHUNK bytes of the retired bucket array, from its
 * end (the mapping shrinks; its start stays the address to unmap). */
static void release_step(nx_store_t *store) {
    size_t n = store->dead_len < NX_RELEASE_CHUNK ? store->dead_len : NX_RELEASE_CHUNK;
    store->dead_len -= n;
    unmap(store->dead + store->dead_len, n);
    if (store->dead_len == 0)
        store->dead = NULL;
}

/* Moves up to n non-empty buckets of the grow to the new array. */
static void rehash_steps(nx_store_t *store, int n) {
    int empty_visits = n * 10; /* as Redis: bound the walk over empty buckets */
    while (store->rehash_idx >= 0 && n > 0) {
        if ((uint64_t)store->rehash_idx > store->mask[0]) {
            retire(store, store->bk[0], bucket_bytes(store->mask[0]));
            store->bk[0] = store->bk[1];
            store->mask[0] = store->mask[1];
            store->bk[1] = NULL;
            store->rehash_idx = -1;
            return;
        }
        uint32_t i = store->bk[0][store->rehash_idx];
        if (!i && --empty_visits > 0) {
            store->rehash_idx++;
            continue;
        }
        while (i) {
            nx_user_t *u = rec(store, i - 1);
            uint32_t next = u->chain;
            uint32_t *head = &store->bk[1][u->hash & store->mask[1]];
            u->chain = *head;
            *head = i;
            i = next;
        }
        store->bk[0][store->rehash_idx++] = 0;
        n--;
        if (empty_visits <= 0)
            return;
    }
}

static void start_rehash(nx_store_t *store, uint32_t *bk, uint64_t mask) {
    store->bk[1] = bk;
    store->mask[1] = mask;
    store->rehash_idx = 0;
}

/* Faults in (populates; writes nothing) the new bucket array. Without
 * MADV_POPULATE_WRITE (Linux < 5.14) the array falls back to 4 KB pages,
 * faulted in by the moves. */
static void *populate_main(void *arg) {
    nx_store_t *store = arg;
    if (madvise(store->pf_addr, store->pf_len, MADV_POPULATE_WRITE) != 0)
        madvise(store->pf_addr, store->pf_len, MADV_NOHUGEPAGE);
    atomic_store_explicit(&store->pf_done, 1, memory_order_release);
    return NULL;
}

/* Joins the populating thread; wait = 0: only if it is done. 1 if joined
 * (or none was running). */
static int join_populate(nx_store_t *store, int wait) {
    if (!store->pf_running)
        return 1;
    if (!wait && !atomic_load_explicit(&store->pf_done, memory_order_acquire))
        return 0;
    pthread_join(store->pf_thread, NULL);
    store->pf_running = 0;
    return 1;
}

/* Waits for the populating thread and unmaps the array it was filling. */
static void drop_prefault(nx_store_t *store) {
    join_populate(store, 1);
    if (store->pre) {
        unmap(store->pre, bucket_bytes(store->pre_mask));
        store->pre = NULL;
    }
}

/* The grow starts with the prefaulted array. */
static void finish_prefault(nx_store_t *store) {
    start_rehash(store, store->pre, store->pre_mask);
    store->pre = NULL;
}

/* At load 1 the table doubles. A bucket array of at least a huge page gets
 * huge pages: every lookup reads a random bucket, and at 10M users (64 MB
 * of buckets) in 4 KB pages nearly every one would also miss the TLB
 * (khugepaged does not collapse such an array soon enough to count on).
 * Faulting in (zeroing) a 2 MB page takes 0.3-0.4 ms, several ms in a VM
 * whose host backs fresh guest memory lazily: too long for a maintenance
 * tick or an update. So a thread of the store's faults the new array in
 * (MADV_POPULATE_WRITE) while the old one serves, and the moves start once
 * it is in (checked here and by nx_table_step). Should the table reach
 * load 1.5 first, the grow starts anyway: populate writes no data, and the
 * kernel orders the two threads' faults. */
static void maybe_grow(nx_store_t *store) {
    if (store->rehash_idx >= 0 || store->n_users <= store->mask[0] + 1)
        return;
    if (store->pre) {
        if (atomic_load_explicit(&store->pf_done, memory_order_acquire) ||
            store->n_users > (store->mask[0] + 1) + (store->mask[0] + 1) / 2)
            finish_prefault(store);
        join_populate(store, 0);
        return;
    }
    join_populate(store, 1); /* the last grow's thread, should it still run */
    uint64_t size = (store->mask[0] + 1) * 2;
    size_t len = size * sizeof(uint32_t);
    /* A fresh mapping is zero pages, faulted in lazily: O(1), no copy. On
     * failure the table just runs at a higher load. */
    uint32_t *bk = map_zeroed(len, len >= NX_HUGE_PAGE);
    if (!bk)
        return;
    if (len >= NX_HUGE_PAGE) {
        store->pf_addr = bk;
        store->pf_len = len;
        atomic_store_explicit(&store->pf_done, 0, memory_order_relaxed);
        if (pthread_create(&store->pf_thread, NULL, populate_main, store) == 0) {
            store->pf_running = 1;
            store->pre = bk;
            store->pre_mask = size - 1;
            return;
        }
        madvise(bk, len, MADV_NOHUGEPAGE); /* no thread: 4 KB pages, faulted in by the moves */
    }
    start_rehash(store, bk, size - 1);
}

int nx_table_step(nx_store_t *store, int64_t deadline) {
    /* Grow first: it bounds lookup cost for everything else (once its
     * array is in, the moves); then the memory a finished grow left
     * behind. */
    if (store->pre && atomic_load_explicit(&store->pf_done, memory_order_acquire))
        finish_prefault(store);
    join_populate(store, 0);
    while (store->rehash_idx >= 0) {
        rehash_steps(store, NX_MAINT_CHECK);
        if (nx_past(deadline))
            return 1;
    }
    while (store->dead) {
        release_step(store);
        if (nx_past(deadline))
            return 1;
    }
    return 0;
}

/* --- expiry list -------------------------------------------------------- */

void nx_table_list_append(nx_store_t *store, uint32_t idx) {
    nx_user_t *u = rec(store, idx);
    u->lprev = store->ltail;
    u->lnext = 0;
    if (store->ltail)
        rec(store, store->ltail - 1)->lnext = idx + 1;
    else
        store->lhead = idx + 1;
    store->ltail = idx + 1;
    u->flags |= NX_F_PENDING;
    store->st.pending++;
}

void nx_table_list_unlink(nx_store_t *store, uint32_t idx) {
    nx_user_t *u = rec(store, idx);
    if (u->lprev)
        rec(store, u->lprev - 1)->lnext = u->lnext;
    else
        store->lhead = u->lnext;
    if (u->lnext)
        rec(store, u->lnext - 1)->lprev = u->lprev;
    else
        store->ltail = u->lprev;
    u->lprev = u->lnext = 0;
    u->flags &= (uint8_t)~NX_F_PENDING;
    store->st.pending--;
}

/* --- slab --------------------------------------------------------------- */

/* Replaces the link that points at old (index+1) in h's chain by new. */
static void relink_chain(nx_store_t *store, uint64_t h, uint32_t old, uint32_t new) {
    uint32_t *link = bucket_of(store, h);
    while (*link != old)
        link = &rec(store, *link - 1)->chain;
    *link = new;
}

uint32_t nx_table_insert(nx_store_t *store, uint64_t h) {
    uint32_t idx = store->n_users;
    if (idx >= store->p.max_users)
        return UINT32_MAX;
    store->n_users++;
    nx_user_t *u = rec(store, idx);
    memset(u, 0, store->rec_size);
    u->hash = h;
    uint32_t *head = bucket_of(store, h);
    u->chain = *head;
    *head = idx + 1;
    if (store->rehash_idx >= 0)
        rehash_steps(store, NX_REHASH_PER_INSERT);
    else
        maybe_grow(store);
    return idx;
}

uint32_t nx_table_put(nx_store_t *store, const void *in) {
    uint64_t h;
    /* in may be unaligned (a Kafka record's payload): no member access */
    memcpy(&h, (const char *)in + offsetof(nx_user_t, hash), sizeof h);
    uint32_t old = find(store, h);
    if (old != UINT32_MAX)
        nx_table_remove(store, old);
    uint32_t idx = nx_table_insert(store, h);
    if (idx == UINT32_MAX)
        return UINT32_MAX;
    nx_user_t *u = rec(store, idx);
    uint32_t chain = u->chain;
    memcpy(u, in, store->rec_size);
    u->chain = chain;
    u->lprev = u->lnext = 0;
    return idx;
}

void nx_table_remove(nx_store_t *store, uint32_t idx) {
    nx_user_t *u = rec(store, idx);
    if (store->track)
        nx_changes_append(store, u->hash, u->partition, 1);
    relink_chain(store, u->hash, idx + 1, u->chain);
    if (u->flags & NX_F_PENDING)
        nx_table_list_unlink(store, idx);
    uint32_t last = store->n_users - 1;
    if (idx != last) {
        nx_user_t *m = rec(store, last);
        relink_chain(store, m->hash, last + 1, idx + 1);
        if (m->flags & NX_F_PENDING) {
            if (m->lprev)
                rec(store, m->lprev - 1)->lnext = idx + 1;
            else
                store->lhead = idx + 1;
            if (m->lnext)
                rec(store, m->lnext - 1)->lprev = idx + 1;
            else
                store->ltail = idx + 1;
        }
        memcpy(u, m, store->rec_size);
    }
    store->n_users--;
}

void nx_table_clear(nx_store_t *store) {
    /* keeps the slab pages and the larger bucket array */
    drop_prefault(store);
    if (store->rehash_idx >= 0) {
        unmap(store->bk[0], bucket_bytes(store->mask[0]));
        store->bk[0] = store->bk[1];
        store->mask[0] = store->mask[1];
        store->bk[1] = NULL;
        store->rehash_idx = -1;
    }
    memset(store->bk[0], 0, bucket_bytes(store->mask[0]));
    store->n_users = 0;
    store->lhead = store->ltail = 0;
    store->st.pending = 0;
}

/* Slab pages are not returned as users leave: madvise(MADV_DONTNEED) of
 * megabytes (splitting huge pages) takes milliseconds, far over a
 * maintenance tick's budget. New users reuse them; nx_store_trim gives the
 * spare ones back when the caller can afford it. */
size_t nx_store_trim(nx_store_t *store) {
    size_t keep = ((size_t)store->n_users + NX_SLAB_SPARE) * store->rec_size;
    keep = (keep + NX_HUGE_PAGE - 1) / NX_HUGE_PAGE * NX_HUGE_PAGE;
    if (keep >= store->slab_bytes)
        return 0;
    madvise(store->slab + keep, store->slab_bytes - keep, MADV_DONTNEED);
    return store->slab_bytes - keep;
}

void nx_table_free(nx_store_t *store) {
    nx_changes_free(store);
    if (store->dead)
        unmap(store->dead, store->dead_len);
    drop_prefault(store);
    if (store->bk[1])
        unmap(store->bk[1], bucket_bytes(store->mask[1]));
    if (store->bk[0])
        unmap(store->bk[0], bucket_bytes(store->mask[0]));
    if (store->slab)
        unmap(store->slab, store->slab_bytes);
}
