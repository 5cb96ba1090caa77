/*
 * bench_features.c: figures for the feature store.
 *
 *   bench_features [users] [events] [batch]
 *
 * 1. Memory: inserts `users` users (one event each, default params) and
 *    prints resident-set growth / users, next to the store's own estimate.
 *    Maintenance ticks (1 ms budget) run every 64 batches meanwhile, so the
 *    longest tick includes table-grow work.
 * 2. Throughput: `events` events over those users with Zipf-like access
 *    (rank = floor((users+1)^u) - 1, u uniform: P(rank) ~ 1/rank), in
 *    batches of `batch` (256 ~ a polled Kafka batch; 1 shows the cost
 *    without prefetch), timing nx_store_update (update + vector out) alone,
 *    then with nx_store_set_scores (4 scores, as the daemon) and label expiry.
 *    Besides the totals, the median over ten rounds of the update rate per
 *    CPU second (the cores are shared; a round slowed by another process's
 *    cache and memory traffic is discounted).
 * 3. Maintenance: moves the clock so half the users pass their TTL and
 *    calls nx_store_maintain(now, 1000 us) until they are gone: the longest
 *    tick, the number of ticks and the users expired.
 * 4. Bucketed rings: the record bytes the default windows would take as rings
 *    (30 s, 5 min and 1 h buckets: RING_BUCKETS below), against the decayed
 *    counters used.
 * Output is plain "name: value" lines. Deterministic streams (fixed seed).
 * NX_DEBUG_TICK=1 in the environment names each insert-phase tick over
 * 1.1 ms on stderr, with the store's grow state.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

/* Buckets per window of the bucketed rings the decayed counters stand in
 * for, at the default windows (5 min, 1 h, 24 h): 30 s, 5 min and 1 h
 * buckets, the resolution such rings would need (part 4). */
static const int RING_BUCKETS[3] = {10, 12, 24};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: a tick's own cost, without the time the thread
 * spent preempted (the 2 cores here are shared). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rss_bytes(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return (double)res * (double)sysconf(_SC_PAGESIZE);
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* User ids live in one arena: "u<number>", 16 bytes a slot. */
#define ID_SLOT 16

int main(int argc, char **argv) {
    uint64_t users = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    uint64_t events = argc > 2 ? strtoull(argv[2], NULL, 10) : 5000000;
    size_t batch = argc > 3 ? strtoull(argv[3], NULL, 10) : 256;
    if (batch < 1 || batch > 4096 || users < 1) {
        fprintf(stderr, "usage: bench_features [users] [events] [batch 1..4096]\n");
        return 2;
    }
    static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    nx_store_params_t p;
    nx_store_params_default(&p);
    if (p.max_users < users)
        p.max_users = users;
    p.n_scores = 4; /* the daemon's default: 3 event types + none */
    char err[256];
    double rss0 = rss_bytes();
    nx_store_t *store = nx_store_new(&p, key, err, sizeof err);
    if (!store) {
        fprintf(stderr, "bench_features: %s\n", err);
        return 1;
    }
    size_t dim = nx_store_dim(store);
    nx_event_t *ev = calloc(batch, sizeof *ev);
    char *ids = calloc(batch, ID_SLOT);
    float *x = calloc(batch * dim, sizeof *x);
    uint8_t *status = calloc(batch, 1);
    float *scores = calloc(batch * 4, sizeof *scores);
    float *ex_score = calloc(4096 * 4, sizeof *ex_score);
    for (size_t i = 0; i < batch * 4; i++)
        scores[i] = 0.25f;
    float *ex_x = calloc(4096 * dim, sizeof *ex_x);
    int32_t *label = calloc(4096, sizeof *label);
    int64_t *ts = calloc(4096, sizeof *ts);
    nx_examples_t ex = {.x = ex_x, .label = label, .ts_ms = ts, .score = ex_score, .cap = 4096};
    const int64_t t0 = 1700000000000LL; /* event time base, ms */
    int64_t t = t0;
    double max_tick = 0, max_tick_cpu = 0, rss_before = rss_bytes();
    (void)rss0;

    /* 1. memory */
    double t_ins = now_s();
    uint64_t nb = 0;
    for (uint64_t u0 = 0; u0 < users; u0 += batch) {
        size_t bn = users - u0 < batch ? (size_t)(users - u0) : batch;
        for (size_t j = 0; j < bn; j++) {
            char *id = ids + j * ID_SLOT;
            int len = snprintf(id, ID_SLOT, "u%llu", (unsigned long long)(u0 + j));
            ev[j] = (nx_event_t){.user_id = id,
                                 .user_id_len = (uint32_t)len,
                                 .type = (int32_t)((u0 + j) % 3),
                                 .ts_ms = t++,
                                 .item = 1 + (u0 + j) % 1000,
                                 .category = 1 + (u0 + j) % 50,
                                 .price = (u0 + j) % 3 == 2 ? 19.99 : NAN,
                                 .partition = 0};
        }
        nx_store_update(store, ev, bn, t - 5000, x, status, &ex);
        nx_store_set_scores(store, ev, bn, status, scores);
        if (++nb % 64 == 0) {
            double a = now_s(), ac = cpu_s();
            nx_store_maintain(store, t - 5000, 1000);
            double d = now_s() - a, dc = cpu_s() - ac;
            if (d > max_tick)
                max_tick = d;
            if (dc > max_tick_cpu)
                max_tick_cpu = dc;
            if (getenv("NX_DEBUG_TICK") && d > 1.1e-3) {
                nx_store_stats_t s0;
                nx_store_stats(store, &s0);
                fprintf(stderr, "tick %.0f us users %llu buckets %llu rehashing %d release %zu\n",
                        d * 1e6, (unsigned long long)s0.users, (unsigned long long)s0.buckets,
                        s0.rehashing, s0.release_bytes);
            }
        }
    }
    t_ins = now_s() - t_ins;
    nx_store_maintain(store, t - 5000, 0); /* finish any grow */
    double rss_after = rss_bytes();
    nx_store_stats_t s;
    nx_store_stats(store, &s);
    printf("users: %llu\n", (unsigned long long)s.users);
    printf("dim: %zu\n", dim);
    printf("record_bytes: %zu\n", s.record_bytes);
    printf("bytes_per_user_rss: %.1f\n", (rss_after - rss_before) / (double)users);
    printf("bytes_per_user_estimate: %.1f\n", s.bytes_per_user);
    printf("insert_ns_per_user: %.1f\n", t_ins * 1e9 / (double)users);
    printf("max_tick_during_inserts_us: %.1f (cpu %.1f)\n", max_tick * 1e6, max_tick_cpu * 1e6);

    /* 2. throughput, Zipf-like access */
    uint64_t seed = 12345;
    double lg = log((double)users + 1.0);
    double t_upd = 0, t_all = 0, t_sc = 0, t_exp = 0, c_upd = 0;
    /* The cores here are shared: besides the totals, the update CPU time of
     * each tenth of the events, whose median discounts rounds slowed by
     * other processes (cache and memory contention shows in CPU time too). */
    enum { ROUNDS = 10 };
    double round_cpu[ROUNDS] = {0};
    uint64_t round_ev[ROUNDS] = {0};
    for (uint64_t e0 = 0; e0 < events; e0 += batch) {
        size_t bn = events - e0 < batch ? (size_t)(events - e0) : batch;
        for (size_t j = 0; j < bn; j++) {
            double uu = (double)(rng_next(&seed) >> 11) * (1.0 / 9007199254740992.0);
            uint64_t rank = (uint64_t)(exp(uu * lg) - 1.0);
            if (rank >= users)
                rank = users - 1;
            /* spread hot ranks over the id space (odd multiplier: a bijection
             * mod 2^64, then mod users; a few collisions do not matter) */
            uint64_t u = (rank * 0x9e3779b97f4a7c15ULL) % users;
            char *id = ids + j * ID_SLOT;
            int len = snprintf(id, ID_SLOT, "u%llu", (unsigned long long)u);
            ev[j] = (nx_event_t){.user_id = id,
                                 .user_id_len = (uint32_t)len,
                                 .type = (int32_t)(rng_next(&seed) % 3),
                                 .ts_ms = t++,
                                 .item = 1 + rng_next(&seed) % 1000,
                                 .category = 1 + u % 50,
                                 .price = NAN,
                                 .partition = 0};
        }
        double a = now_s(), ac = cpu_s();
        nx_store_update(store, ev, bn, t - 5000, x, status, &ex);
        double b = now_s();
        double dc = cpu_s() - ac;
        c_upd += dc;
        size_t rd = (size_t)(e0 * ROUNDS / events);
        round_cpu[rd] += dc;
        round_ev[rd] += bn;
        nx_store_set_scores(store, ev, bn, status, scores);
        double b2 = now_s();
        nx_store_expire_labels(store, t - 5000, &ex);
        double c = now_s();
        t_upd += b - a;
        t_sc += b2 - b;
        t_exp += c - b2;
        t_all += c - a;
    }
    nx_store_stats(store, &s);
    printf("zipf_events: %llu batch %zu\n", (unsigned long long)events, batch);
    printf("updates_per_s: %.0f\n", (double)events / t_upd);
    printf("ns_per_update: %.1f\n", t_upd * 1e9 / (double)events);
    /* thread CPU time: the same without time preempted (shared cores) */
    printf("updates_per_cpu_s: %.0f ns_per_update_cpu: %.1f\n", (double)events / c_upd,
           c_upd * 1e9 / (double)events);
    double rate[ROUNDS];
    int nr = 0;
    for (int r = 0; r < ROUNDS; r++)
        if (round_ev[r] && round_cpu[r] > 0)
            rate[nr++] = (double)round_ev[r] / round_cpu[r];
    for (int a = 1; a < nr; a++) /* insertion sort: 10 values */
        for (int b = a; b > 0 && rate[b - 1] > rate[b]; b--) {
            double tmp = rate[b];
            rate[b] = rate[b - 1];
            rate[b - 1] = tmp;
        }
    if (nr)
        printf("updates_per_cpu_s_median_of_%d_rounds: %.0f (min %.0f max %.0f)\n", nr,
               nr % 2 ? rate[nr / 2] : 0.5 * (rate[nr / 2 - 1] + rate[nr / 2]), rate[0],
               rate[nr - 1]);
    printf("set_scores_ns_per_event: %.1f\n", t_sc * 1e9 / (double)events);
    printf("expire_labels_ns_per_event: %.1f\n", t_exp * 1e9 / (double)events);
    printf("updates_per_s_with_scores_and_expiry: %.0f\n", (double)events / t_all);
    printf("pending: %llu resolved: %llu expired_labels: %llu\n", (unsigned long long)s.pending,
           (unsigned long long)s.resolved, (unsigned long long)s.expired_labels);

    /* 3. maintenance: half the users (clock < t0 + users/2) pass their TTL */
    int64_t now = t0 + (int64_t)(users / 2) + p.user_ttl_ms;
    max_tick = 0;
    max_tick_cpu = 0;
    uint64_t ticks = 0, expired = 0, before = s.users, scans0 = s.ttl_scans;
    double sum_tick = 0;
    enum { MAX_TICKS = 200000 };
    static float tick_us[MAX_TICKS], tick_cpu_us[MAX_TICKS];
    /* until the scan has wrapped twice: one whole pass after the start */
    while (ticks < MAX_TICKS) {
        double a = now_s(), ac = cpu_s();
        size_t got = nx_store_maintain(store, now, 1000);
        double d = now_s() - a, dc = cpu_s() - ac;
        if (dc > max_tick_cpu)
            max_tick_cpu = dc;
        tick_cpu_us[ticks] = (float)(dc * 1e6);
        tick_us[ticks++] = (float)(d * 1e6);
        sum_tick += d;
        if (d > max_tick)
            max_tick = d;
        expired += got;
        nx_store_stats(store, &s);
        if (s.ttl_scans >= scans0 + 2)
            break;
    }
    uint64_t over = 0, over_cpu = 0;
    for (uint64_t i = 0; i < ticks; i++) {
        over += tick_us[i] > 1100.0f;
        over_cpu += tick_cpu_us[i] > 1000.0f;
    }
    nx_store_stats(store, &s);
    printf("ttl_expired: %llu of %llu in %llu ticks\n", (unsigned long long)expired,
           (unsigned long long)before, (unsigned long long)ticks);
    printf("max_tick_us: %.1f (cpu %.1f) mean_tick_us: %.1f ticks_over_1.1ms: %llu "
           "cpu_over_1ms: %llu\n",
           max_tick * 1e6, max_tick_cpu * 1e6, sum_tick * 1e6 / (double)ticks,
           (unsigned long long)over, (unsigned long long)over_cpu);

    /* 4. bucketed rings for the same windows: per bucket and type a 16-bit
     * count, per bucket a float value, plus a 4-byte head per window */
    size_t ring = 0;
    for (int w = 0; w < p.n_windows && w < 3; w++)
        ring += (size_t)RING_BUCKETS[w] * ((size_t)p.n_types * 2 + 4) + 4;
    size_t decay = (size_t)p.n_windows * ((size_t)p.n_types + 1) * 2; /* fp16 counters */
    printf("window_bytes_decayed: %zu window_bytes_ring: %zu (record would be %zu)\n", decay, ring,
           s.record_bytes - decay + ring);
    nx_store_destroy(store);
    free(ts);
    free(label);
    free(ex_x);
    free(ex_score);
    free(scores);
    free(status);
    free(x);
    free(ids);
    free(ev);
    return 0;
}
