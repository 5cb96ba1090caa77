/*
 * store_evict.c: which users leave the store, and when.
 *
 * Owns the two policies that remove users: the cap (max_users), by
 * sampled LRU, one user per insert beyond it; and the idle TTL, by a scan
 * over the slab in time-budgeted slices from nx_store_maintain. Removal
 * itself is the table's (store_table.c). Both are deterministic: sampling
 * draws from the store's generator (seeded by params.seed, saved with the
 * store), and the scan's cursor is state too.
 */
#include "store_int.h"

/* Users sampled per eviction: the least recently active of 5 random users,
 * as Redis' approximated LRU (maxmemory-samples 5): O(1) per eviction, no
 * per-user list links, and in practice close to true LRU. */
#define NX_EVICT_SAMPLES 5

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nx_evict_one(nx_store_t *store) {
    uint32_t best = UINT32_MAX;
    int64_t best_clock = INT64_MAX;
    for (int s = 0; s < NX_EVICT_SAMPLES; s++) {
        uint32_t i = (uint32_t)(splitmix64(&store->rng) % store->n_users);
        int64_t c = rec(store, i)->clock;
        if (c < best_clock) {
            best_clock = c;
            best = i;
        }
    }
    if (rec(store, best)->flags & NX_F_PENDING)
        store->st.labels_lost++;
    nx_table_remove(store, best);
    store->st.evictions++;
}

size_t nx_evict_expired(nx_store_t *store, int64_t now_ms, int64_t deadline) {
    /* Downwards, so the record moved into a hole (from the end) has already
     * been visited in this pass. At most one pass per call. */
    size_t expired = 0;
    uint64_t visits = store->n_users;
    int64_t ttl = store->p.user_ttl_ms;
    for (uint64_t v = 0; v < visits && store->n_users; v++) {
        if (store->ttl_cursor < 0 || store->ttl_cursor >= (int64_t)store->n_users) {
            if (store->ttl_cursor < 0)
                store->st.ttl_scans++;
            store->ttl_cursor = (int64_t)store->n_users - 1;
        }
        uint32_t i = (uint32_t)store->ttl_cursor--;
        nx_user_t *u = rec(store, i);
        if (u->clock <= now_ms - ttl) {
            if (u->flags & NX_F_PENDING)
                store->st.labels_lost++;
            nx_table_remove(store, i);
            store->st.expirations++;
            expired++;
        }
        if ((v % NX_MAINT_CHECK) == NX_MAINT_CHECK - 1 && nx_past(deadline))
            break;
    }
    return expired;
}
