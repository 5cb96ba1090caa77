/*
 * test_store.c: unit tests of the feature store (features/store.h) by
 * hand, linking only nx_features: exact vectors for written-out event
 * sequences, scores kept with pending examples, incremental resize,
 * parameter checks, and the feature layout against both read-outs (every
 * family set, and the unrolled default against the generic one, bit for
 * bit). The brute-force reference is test_store_ref.c; saving, restoring,
 * partitions and records are test_store_persist.c.
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

/* --- exact vectors for a hand-written sequence ------------------------------- */

static void test_hand_sequence(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.n_types = 2;
    strcpy(p.type_names[0], "click");
    strcpy(p.type_names[1], "buy");
    p.n_windows = 1;
    p.window_ms[0] = 60000;
    p.value_type = 1;
    p.cart_type = -1; /* no cart type: session_carts stays 0 */
    p.session_gap_ms = 100000;
    p.horizon_ms = 30000;
    p.user_ttl_ms = 3600000;
    p.recent_items = 2;
    p.normalise = 0;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    static const char *names[] = {"cnt_1m_click",
                                  "cnt_1m_buy",
                                  "value_1m",
                                  "since_click_s",
                                  "since_click_missing",
                                  "since_buy_s",
                                  "since_buy_missing",
                                  "session_events",
                                  "session_duration_s",
                                  "session_new",
                                  "since_prev_event_s",
                                  "since_prev_event_missing",
                                  "session_carts",
                                  "session_cart_open",
                                  "item_revisits",
                                  "category_revisit",
                                  "session_revisits",
                                  "category_run",
                                  "is_click",
                                  "is_buy",
                                  "hour_sin",
                                  "hour_cos",
                                  "dow_sin",
                                  "dow_cos",
                                  "log_price",
                                  "price_missing"};
    size_t dim = nx_store_dim(store);
    CHECK(dim == 26, "dim %zu", dim);
    for (size_t i = 0; i < dim && i < 26; i++)
        CHECK(strcmp(nx_store_feature_name(store, i), names[i]) == 0, "feature %zu is %s, want %s",
              i, nx_store_feature_name(store, i), names[i]);

    const int64_t t0 = 1000000; /* 00:16:40 on Thursday 1970-01-01 */
    nx_event_t ev[5] = {
        mk_event("u1", 0, t0, 11, 21, 0, NAN, 0, 0),
        mk_event("u1", 1, t0 + 60000, 11, 21, 0, 10.0, 2, 0),
        mk_event("u1", 0, t0 + 70000, 12, 21, 0, NAN, 0, 0),
        mk_event("u1", 0, t0 + 65000, 14, 22, 0, NAN, 0, 0),  /* late for the user */
        mk_event("u1", 0, t0 + 200000, 12, 21, 0, NAN, 0, 0), /* gap 130 s > 100 s */
    };
    float x[5][26];
    uint8_t st[5];
    exbuf_t rb;
    exbuf_init(&rb, dim, 8);
    /* e0, e1 in one batch: e0 is resolved by e1 (gap 60 s >= H 30 s: none). */
    CHECK(nx_store_update(store, ev, 2, 0, &x[0][0], st, &rb.ex) == 0, "update");
    CHECK(rb.ex.n == 1 && rb.label[0] == 2 && rb.ts[0] == t0, "e0 label: n %zu label %d ts %lld",
          rb.ex.n, rb.label[0], (long long)rb.ts[0]);
    double e = exp(-1.0);
    double want1[26] = {log1p(e),
                        log1p(1.0),
                        log1p(20.0),
                        log1p(60.0),
                        0,
                        0,
                        0,
                        log1p(2.0),
                        log1p(60.0),
                        0,
                        log1p(60.0), /* since e0 */
                        0,
                        0, /* no cart type */
                        0,
                        1, /* item 11 seen once before */
                        1,
                        log1p(1.0),
                        2, /* category 21 twice in a row */
                        0,
                        1,
                        sin(2 * M_PI * 1060000 / 86400000.0),
                        cos(2 * M_PI * 1060000 / 86400000.0),
                        sin(2 * M_PI * 3 / 7.0),
                        cos(2 * M_PI * 3 / 7.0),
                        log1p(10.0),
                        0};
    for (int i = 0; i < 26; i++)
        if (i < 3) /* the counters, rounded twice */
            CHECK_COUNTER(x[1][i], want1[i], 2);
        else
            CHECK_NEAR(x[1][i], want1[i], 1e-6);
    /* the resolved vector is e0's row through fp16 */
    for (int i = 0; i < 26; i++)
        CHECK(rb.x[i] == pend_rt(&p, x[0][i]), "e0 pending %d", i);
    CHECK(x[0][4] == 0 && x[0][5] == 0 && x[0][6] == 1, "e0 recency flags");
    CHECK(x[0][9] == 1 && x[0][24] == 0 && x[0][25] == 1, "e0 session_new / price missing");
    CHECK(x[0][10] == 0 && x[0][11] == 1 && x[0][14] == 0 && x[0][17] == 1,
          "e0: first event (gap missing), no revisit, category run 1");

    /* e2: resolves e1 with click (10 s < 30 s); e3 late: no label. */
    CHECK(nx_store_update(store, ev + 2, 2, 0, &x[2][0], st, &rb.ex) == 0, "update");
    CHECK(rb.ex.n == 1 && rb.label[0] == 0 && rb.ts[0] == t0 + 60000, "e1 label %d", rb.label[0]);
    CHECK_COUNTER(x[2][0], log1p(exp(-70.0 / 60) + 1), 3);
    CHECK_COUNTER(x[2][1], log1p(exp(-10.0 / 60)), 3);
    CHECK_COUNTER(x[2][2], log1p(20 * exp(-10.0 / 60)), 3);
    CHECK(x[2][14] == 0 && x[2][15] == 1, "e2 revisits item %g cat %g", (double)x[2][14],
          (double)x[2][15]);
    CHECK_NEAR(x[2][10], log1p(10.0), 1e-6);
    CHECK(x[2][11] == 0 && x[2][17] == 3, "e2 gap flag %g, category run %g", (double)x[2][11],
          (double)x[2][17]);
    CHECK(x[3][10] == 0 && x[3][11] == 0 && x[3][17] == 3 && x[3][14] == 0,
          "late e3: gap 0 %g, run unchanged %g, new item %g", (double)x[3][10], (double)x[3][17],
          (double)x[3][14]);
    CHECK_COUNTER(x[3][0], log1p(exp(-70.0 / 60) + 1 + exp(-5.0 / 60)), 4);
    CHECK(x[3][3] == 0, "since_click after late click stays 0: %g", (double)x[3][3]);
    CHECK_NEAR(x[3][7], log1p(3.0), 1e-6); /* late event not in the session */
    CHECK(x[3][9] == 0, "late event is no new session");
    CHECK(st[1] == NX_STORE_OK, "status %d", st[1]);

    /* e4: new session by gap; resolves e2 (130 s >= H) to none. */
    CHECK(nx_store_update(store, ev + 4, 1, 0, &x[4][0], st, &rb.ex) == 0, "update");
    CHECK(rb.ex.n == 1 && rb.label[0] == 2 && rb.ts[0] == t0 + 70000, "e2 label %d", rb.label[0]);
    CHECK(x[4][9] == 1 && x[4][7] == (float)log1p(1.0) && x[4][8] == 0, "e4 new session");
    CHECK(x[4][14] == 1, "item 12 is among the 2 recent (14, 12), seen once");
    CHECK_NEAR(x[4][10], log1p(130.0), 1e-6);
    CHECK(x[4][17] == 1, "new session: category run restarts at 1: %g", (double)x[4][17]);

    /* expiry: nothing before t4 + H, then e4 as none */
    CHECK(nx_store_expire_labels(store, t0 + 200000 + 29999, &rb.ex) == 0, "early expiry");
    CHECK(nx_store_expire_labels(store, t0 + 230000, &rb.ex) == 1 && rb.label[0] == 2 &&
              rb.ts[0] == t0 + 200000,
          "expiry");
    CHECK(nx_store_expire_labels(store, t0 + 230000, &rb.ex) == 0, "expired twice");

    /* watermark: late and too old */
    nx_event_t late = mk_event("u2", 0, 5000000, 0, 0, 0, NAN, 0, 0);
    nx_event_t old = mk_event("u2", 0, 5000000 - 60001, 0, 0, 0, NAN, 0, 0);
    CHECK(nx_store_update(store, &late, 1, 5000001, &x[0][0], st, &rb.ex) == 0 &&
              st[0] == NX_STORE_LATE,
          "late status %d", st[0]);
    CHECK(nx_store_update(store, &old, 1, 5000000, &x[0][0], st, &rb.ex) == 0 &&
              st[0] == NX_STORE_DROPPED && x[0][0] == 0,
          "dropped status %d", st[0]);
    nx_event_t bad = mk_event("u2", 2, 5000000, 0, 0, 0, NAN, 0, 0);
    CHECK(nx_store_update(store, &bad, 1, 0, &x[0][0], st, &rb.ex) == 0 &&
              st[0] == NX_STORE_INVALID,
          "invalid type status %d", st[0]);
    nx_store_stats_t s;
    nx_store_stats(store, &s);
    CHECK(s.users == 2 && s.late == 1 && s.dropped == 1 && s.invalid == 1 && s.events == 6,
          "stats users %llu late %llu dropped %llu invalid %llu events %llu",
          (unsigned long long)s.users, (unsigned long long)s.late, (unsigned long long)s.dropped,
          (unsigned long long)s.invalid, (unsigned long long)s.events);
    /* TTL boundary: a user expires once clock + ttl <= now (u2 clock 5000000) */
    CHECK(nx_store_maintain(store, 5000000 + 3600000 - 1, 0) == 1, "u1 expires, u2 stays");
    CHECK(nx_store_contains(store, nx_store_user_hash(store, "u2", 2)), "u2 expired early");
    CHECK(nx_store_maintain(store, 5000000 + 3600000, 0) == 1, "u2 expires at clock + ttl");
    nx_store_stats(store, &s);
    CHECK(s.users == 0 && s.expirations == 2 && s.labels_lost == 1,
          "users %llu expirations %llu lost %llu", (unsigned long long)s.users,
          (unsigned long long)s.expirations, (unsigned long long)s.labels_lost);
    CHECK(rb.ex.cap >= 1 && nx_store_update(store, ev, 9, 0, &x[0][0], st, &rb.ex) == -1,
          "cap < n accepted");
    nx_store_destroy(store);
    exbuf_free(&rb);
}

/* Cart adds, the item revisit cap and the category run, by hand: one user,
 * one item and category throughout, events 10 s apart; the last one opens a
 * new session (another session id). */
static void test_hand_session_counts(void) {
    nx_store_params_t p;
    nx_store_params_default(&p); /* click, cart (cart_type 1), purchase (value_type 2) */
    p.normalise = 0;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    size_t dim = nx_store_dim(store);
    size_t i_carts = feat_index(store, "session_carts"),
           i_open = feat_index(store, "session_cart_open");
    size_t i_gap = feat_index(store, "since_prev_event_s");
    size_t i_miss = feat_index(store, "since_prev_event_missing");
    size_t i_item = feat_index(store, "item_revisits"), i_run = feat_index(store, "category_run");
    CHECK(i_carts < dim && i_open < dim && i_gap < dim && i_miss < dim && i_item < dim &&
              i_run < dim,
          "feature names");
    if (i_carts >= dim || i_open >= dim || i_gap >= dim || i_miss >= dim || i_item >= dim ||
        i_run >= dim) {
        nx_store_destroy(store);
        return;
    }
    enum { N = 8 };
    static const int type[N] = {0, 1, 1, 2, 1, 0, 0, 0};
    /* session 77 throughout, 78 for the last event */
    static const double carts[N] = {0, 1, 2, 0, 1, 1, 1, 0};
    static const double item[N] = {0, 1, 2, 3, 3, 3, 3, 3}; /* capped at 3 */
    static const double run[N] = {1, 2, 3, 4, 5, 5, 5, 1};  /* capped at 5; new session: 1 */
    const int64_t t0 = 1700000000000LL;
    nx_event_t ev[N];
    for (int i = 0; i < N; i++)
        ev[i] = mk_event("c1", type[i], t0 + 10000 * i, 1234567, 7654321, i < N - 1 ? 77 : 78, NAN,
                         0, 0);
    float *x = calloc((size_t)N * dim, sizeof *x);
    exbuf_t rb;
    exbuf_init(&rb, dim, N);
    CHECK(nx_store_update(store, ev, N, 0, x, NULL, &rb.ex) == 0, "update");
    for (int i = 0; i < N; i++) {
        const float *r = x + (size_t)i * dim;
        CHECK_NEAR(r[i_carts], log1p(carts[i]), 1e-6);
        CHECK(r[i_open] == (carts[i] > 0), "event %d cart open %g", i, (double)r[i_open]);
        CHECK_NEAR(r[i_gap], i ? log1p(10.0) : 0.0, 1e-6);
        CHECK(r[i_miss] == (i == 0), "event %d gap missing %g", i, (double)r[i_miss]);
        CHECK(r[i_item] == item[i], "event %d item revisits %g want %g", i, (double)r[i_item],
              item[i]);
        CHECK(r[i_run] == run[i], "event %d category run %g want %g", i, (double)r[i_run], run[i]);
    }
    free(x);
    exbuf_free(&rb);
    nx_store_destroy(store);
}

/* --- scores kept with pending examples ---------------------------------------- */

/* Checks row r of ex's scores against want (k values) within fp16 rounding. */
#define CHECK_SCORES(ex, r, want, k)                                                               \
    for (int c_ = 0; c_ < (k); c_++)                                                               \
    CHECK(fabsf((ex).score[(size_t)(r) * (k) + c_] - (want)[c_]) <= 1.0f / 2048 * (want)[c_] &&    \
              ((ex).score[(size_t)(r) * (k) + c_] == 0) == ((want)[c_] == 0),                      \
          "row %d score %d = %g, want %g", (int)(r), c_,                                           \
          (double)(ex).score[(size_t)(r) * (k) + c_], (double)(want)[c_])

static void test_scores(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.n_scores = 3;
    p.normalise = 0;
    char err[256];
    nx_store_t *store, *twin;
    if (twin_stores(&p, &store, &twin) < 0)
        return;
    size_t dim = nx_store_dim(store);
    const int64_t t0 = 1700000000000LL;
    exbuf_t rb, xb;
    exbuf_init(&rb, dim, 16);
    exbuf_init(&xb, dim, 16);
    float X[8 * 64];
    uint8_t st[8];
    float S[8 * 3];
    for (int i = 0; i < 8 * 3; i++)
        S[i] = 0.1f + 0.01f * (float)i;
    const float zero[3] = {0, 0, 0};

    /* Batch 1: a@t0, b@t0, a@t0+1s (resolves a's first, made in this batch),
     * a@t0+0.5s (out of order for a: makes nothing). */
    nx_event_t b1[4] = {mk_event("a", 0, t0, 1, 1, 0, NAN, 0, 0),
                        mk_event("b", 0, t0, 1, 1, 0, NAN, 0, 1),
                        mk_event("a", 1, t0 + 1000, 2, 1, 0, NAN, 0, 0),
                        mk_event("a", 0, t0 + 500, 3, 1, 0, NAN, 0, 0)};
    CHECK(nx_store_update(store, b1, 4, 0, X, st, &rb.ex) == 0 && rb.ex.n == 1, "b1: %zu", rb.ex.n);
    CHECK_SCORES(rb.ex, 0, zero, 3); /* unknown until set_scores */
    nx_store_set_scores(store, b1, 4, st, S);
    CHECK_SCORES(rb.ex, 0, S + 0 * 3, 3); /* a@t0 gets event 0's scores */

    /* Batch 2: b@t0+2s resolves b (event 1 of batch 1); a@t0+1s twice: the
     * first resolves a's (event 2 of batch 1), the second the first's; the
     * later one's scores stay pending. */
    nx_event_t b2[3] = {mk_event("b", 1, t0 + 2000, 1, 1, 0, NAN, 0, 1),
                        mk_event("a", 0, t0 + 1000, 4, 1, 0, NAN, 0, 0),
                        mk_event("a", 1, t0 + 1000, 5, 1, 0, NAN, 0, 0)};
    const float *S2 = S + 12; /* other values for batch 2 */
    CHECK(nx_store_update(store, b2, 3, 0, X, st, &rb.ex) == 0 && rb.ex.n == 3, "b2: %zu", rb.ex.n);
    nx_store_set_scores(store, b2, 3, st, S2);
    CHECK_SCORES(rb.ex, 0, S + 1 * 3, 3);
    CHECK_SCORES(rb.ex, 1, S + 2 * 3, 3);
    CHECK_SCORES(rb.ex, 2, S2 + 1 * 3, 3);

    /* Save (whole and one partition), restore into the twin, expire both:
     * b (batch 2 event 0) then a (event 2, later wins over event 1). */
    membuf_t m = {0}, mp = {0};
    CHECK(nx_store_save(store, mem_write, &m) == 0 &&
              nx_store_save_partition(store, 0, mem_write, &mp) == 0,
          "save");
    CHECK(nx_store_restore(twin, mem_read, &m, err, sizeof err) == 0, "restore: %s", err);
    nx_store_t *both[2] = {store, twin};
    for (int s = 0; s < 2; s++) {
        CHECK(nx_store_expire_labels(both[s], t0 + 3600000, &xb.ex) == 2, "expired %zu", xb.ex.n);
        CHECK(xb.user[0] == nx_store_user_hash(store, "b", 1), "expiry order");
        CHECK_SCORES(xb.ex, 0, S2 + 0 * 3, 3);
        CHECK_SCORES(xb.ex, 1, S2 + 2 * 3, 3);
    }
    /* partition 0 (user a) restored into the emptied store */
    nx_store_drop_partition(store, 0);
    CHECK(nx_store_restore_partition(store, mem_read, &mp, err, sizeof err) == 0, "restore: %s",
          err);
    CHECK(nx_store_expire_labels(store, t0 + 3600000, &xb.ex) == 1, "partition: %zu", xb.ex.n);
    CHECK_SCORES(xb.ex, 0, S2 + 2 * 3, 3);

    /* Scores never set (no set_scores before the next update) stay 0; a
     * set_scores given another batch than the update's falls back to
     * lookups: pending examples get their scores, in-batch resolved rows 0. */
    nx_event_t b3[1] = {mk_event("c", 0, t0 + 5000, 1, 1, 0, NAN, 0, 2)};
    nx_store_update(store, b3, 1, 0, X, st, &rb.ex);
    nx_event_t b4[3] = {mk_event("d", 0, t0 + 5000, 1, 1, 0, NAN, 0, 2),
                        mk_event("d", 0, t0 + 6000, 1, 1, 0, NAN, 0, 2),
                        mk_event("d", 0, t0 + 5500, 1, 1, 0, NAN, 0, 2)};
    nx_event_t b4copy[3];
    memcpy(b4copy, b4, sizeof b4);
    CHECK(nx_store_update(store, b4, 3, 0, X, st, &rb.ex) == 0 && rb.ex.n == 1, "b4");
    nx_store_set_scores(store, b4copy, 3, st, S);
    CHECK_SCORES(rb.ex, 0, zero, 3);
    CHECK(nx_store_expire_labels(store, t0 + 3600000, &xb.ex) == 2, "expired %zu", xb.ex.n);
    CHECK_SCORES(xb.ex, 0, zero, 3);      /* c: never set */
    CHECK_SCORES(xb.ex, 1, S + 1 * 3, 3); /* d: event 1, not the late event 2 */

    /* A stream of another n_scores is refused. */
    p.n_scores = 2;
    nx_store_t *other = nx_store_new(&p, test_key, err, sizeof err);
    m.pos = 0;
    CHECK(other && nx_store_restore(other, mem_read, &m, err, sizeof err) == -1,
          "restore with another n_scores accepted");
    p.n_scores = NX_STORE_MAX_SCORES + 1;
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "n_scores 17 accepted");
    nx_store_destroy(other);
    free(m.data);
    free(mp.data);
    exbuf_free(&rb);
    exbuf_free(&xb);
    nx_store_destroy(store);
    nx_store_destroy(twin);
}

/* Scores of every width come back as their exact fp16 round trip (the
 * portable conversion of half.h), whichever conversion the store uses: 1-3
 * portable, 4-7 two overlapping 4-lane F16C ones, 8 and more 8-lane ones
 * with an overlapping tail. Values include ties and subnormal halves. */
static void test_score_widths(void) {
    static const int widths[] = {1, 3, 4, 5, 7, 8, 11, 16};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        int k = widths[w];
        nx_store_params_t p;
        nx_store_params_default(&p);
        p.n_scores = k;
        char err[256];
        nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
        CHECK(store != NULL, "new: %s", err);
        if (!store)
            continue;
        size_t dim = nx_store_dim(store);
        exbuf_t rb, xb;
        exbuf_init(&rb, dim, 4);
        exbuf_init(&xb, dim, 4);
        float X[128], S[NX_STORE_MAX_SCORES];
        uint8_t st[1];
        for (int c = 0; c < k; c++) /* 1 + 2^-11: a tie; 3e-6: a subnormal half */
            S[c] = c % 3 == 0 ? 1.00048828125f : (c % 3 == 1 ? 3e-6f : 0.1f + 0.0137f * (float)c);
        nx_event_t e[1] = {mk_event("a", 0, 1700000000000LL, 1, 1, 0, NAN, 0, 0)};
        nx_store_update(store, e, 1, 0, X, st, &rb.ex);
        nx_store_set_scores(store, e, 1, st, S);
        CHECK(nx_store_expire_labels(store, 1800000000000LL, &xb.ex) == 1, "width %d", k);
        for (int c = 0; c < k; c++) {
            float want = nx_half_to_float(nx_half_from_float(S[c]));
            CHECK(memcmp(&xb.ex.score[c], &want, sizeof want) == 0, "width %d score %d: %a want %a",
                  k, c, (double)xb.ex.score[c], (double)want);
        }
        exbuf_free(&rb);
        exbuf_free(&xb);
        nx_store_destroy(store);
    }
}

/* --- incremental resize ------------------------------------------------------- */

static void test_resize(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.families = NX_FEAT_ONEHOT;
    p.normalise = 0;
    char err[256];
    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    enum { B = 256, N = 1200 * B };
    static char ids[N][12];
    nx_event_t ev[B];
    float x[B * 3];
    exbuf_t rb;
    exbuf_init(&rb, nx_store_dim(store), B);
    int saw_rehash = 0, saw_release = 0;
    for (int b0 = 0; b0 < N; b0 += B) {
        for (int j = 0; j < B; j++) {
            snprintf(ids[b0 + j], sizeof ids[0], "r%d", b0 + j);
            ev[j] = mk_event(ids[b0 + j], 0, 1000 + b0 + j, 0, 0, 0, NAN, 0, 0);
        }
        nx_store_update(store, ev, B, 0, x, NULL, &rb.ex);
        nx_store_stats_t s;
        nx_store_stats(store, &s);
        saw_release += s.release_bytes > 0;
        if (s.rehashing) {
            saw_rehash++;
            /* mid-grow: every user so far is reachable */
            for (int i = 0; i < b0 + B; i += 97)
                CHECK(nx_store_contains(store, nx_store_user_hash(store, ids[i], strlen(ids[i]))),
                      "user %d lost mid-grow", i);
            if (b0 % (B * 16) == 0) /* sometimes advance the grow by maintenance */
                nx_store_maintain(store, 0, 50);
        }
    }
    CHECK(saw_rehash > 0, "no grow observed");
    CHECK(saw_release > 0, "no old bucket array left for maintenance to release");
    for (int i = 0; i < N; i++)
        if (!nx_store_contains(store, nx_store_user_hash(store, ids[i], strlen(ids[i])))) {
            CHECK(0, "user %d lost", i);
            break;
        }
    nx_store_maintain(store, 0, 0);
    nx_store_stats_t s;
    nx_store_stats(store, &s);
    CHECK(!s.rehashing && s.users == N && s.buckets >= N && s.release_bytes == 0,
          "after grow: users %llu buckets %llu release %zu", (unsigned long long)s.users,
          (unsigned long long)s.buckets, s.release_bytes);
    /* expire all via TTL in bounded slices: every slice returns, all go */
    int slices = 0;
    while (1) {
        nx_store_maintain(store, (int64_t)1000 * 1000 * 1000 * 1000, 200);
        nx_store_stats(store, &s);
        if (s.users == 0 || ++slices > 100000)
            break;
    }
    CHECK(s.users == 0 && s.expirations == N, "TTL slices: users %llu expirations %llu",
          (unsigned long long)s.users, (unsigned long long)s.expirations);
    nx_store_destroy(store);
    exbuf_free(&rb);
}

static void test_params(void) {
    nx_store_params_t p;
    char err[256];
    nx_store_params_default(&p);
    p.user_ttl_ms = p.horizon_ms - 1;
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "ttl < horizon accepted");
    nx_store_params_default(&p);
    p.window_ms[1] = p.window_ms[0];
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "non-ascending windows accepted");
    nx_store_params_default(&p);
    p.n_types = NX_EVENT_MAX_TYPES + 1;
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "too many types accepted");
    nx_store_params_default(&p);
    p.cart_type = p.n_types;
    CHECK(nx_store_new(&p, test_key, err, sizeof err) == NULL, "cart_type out of range accepted");
    nx_store_params_default(&p);
    nx_store_t *s1 = nx_store_new(&p, test_key, err, sizeof err);
    p.families &= ~(uint32_t)NX_FEAT_PRICE;
    nx_store_t *s2 = nx_store_new(&p, test_key, err, sizeof err);
    CHECK(s1 && s2 && nx_store_schema_hash(s1) != nx_store_schema_hash(s2) &&
              nx_store_dim(s1) == nx_store_dim(s2) + 2,
          "schema hash/dim must follow the layout");
    nx_store_stats_t st;
    nx_store_stats(s1, &st);
    CHECK(st.record_bytes <= 240, "default record %zu bytes", st.record_bytes);
    nx_store_destroy(s1);
    nx_store_destroy(s2);
    nx_store_destroy(NULL);
}

/* Every place of the layout is written by the read-out that serves it, and
 * named: the raw vectors (normalise 0) of a few events, in rows the caller
 * filled with NaN, come back finite with nothing written past the last
 * row, and the names are as many as the places, non-empty and distinct.
 * For every set of families under 1..3 types and 1..4 windows, and the
 * default layout through both of its read-outs (unrolled and generic). A
 * row added to the layout that a read-out does not write fails here. */
static void test_layout_table(void) {
    static const int64_t win[NX_STORE_MAX_WINDOWS] = {60000, 300000, 3600000, 86400000};
    enum { E = 7 };
    char err[256];
    int unwritten = 0, overrun = 0, badnames = 0, stores = 0;
    for (int nt = 1; nt <= 3; nt++)
        for (int nw = 1; nw <= NX_STORE_MAX_WINDOWS; nw++)
            for (uint32_t fam = 1; fam <= NX_FEAT_ALL; fam++)
                for (int generic = 0; generic < 2; generic++) {
                    if (generic && !(nt == 3 && nw == 3 && fam == NX_FEAT_ALL))
                        continue;
                    nx_store_params_t p;
                    nx_store_params_default(&p);
                    p.n_types = nt;
                    p.n_windows = nw;
                    memcpy(p.window_ms, win, sizeof win);
                    p.value_type = nt - 1;
                    p.cart_type = nt >= 2 ? 1 : -1;
                    p.families = fam;
                    p.normalise = 0;
                    p.force_generic = generic;
                    p.max_users = 16;
                    nx_store_t *store = nx_store_new(&p, test_key, err, sizeof err);
                    CHECK(store, "store: %s", err);
                    if (!store)
                        continue;
                    stores++;
                    size_t dim = nx_store_dim(store);
                    int64_t t0 = 1700000000000LL;
                    /* first events, a priced one, a new session, a late one,
                     * a repeat of item and category, a user without price */
                    nx_event_t ev[E] = {
                        mk_event("a", 0, t0, 11, 21, 0, NAN, 1, 0),
                        mk_event("b", nt - 1, t0 + 1000, 12, 22, 5, 9.5, 2, 0),
                        mk_event("a", nt - 1, t0 + 5000, 11, 21, 0, 20.0, 1, 0),
                        mk_event("a", 0, t0 + 4000000, 13, 23, 0, NAN, 1, 0),
                        mk_event("a", nt > 1 ? 1 : 0, t0 + 3000, 11, 21, 0, 3.0, 1, 0),
                        mk_event("b", 0, t0 + 6000, 12, 22, 5, NAN, 1, 0),
                        mk_event("c", 0, t0 + 7000, 0, 0, 0, NAN, 1, 0)};
                    float *x = malloc((E * dim + 1) * sizeof *x);
                    float ex_x[E * 64];
                    int32_t label[E];
                    int64_t ts[E];
                    nx_examples_t res = {.x = ex_x, .label = label, .ts_ms = ts, .cap = E};
                    for (size_t i = 0; i < E * dim; i++)
                        x[i] = NAN;
                    x[E * dim] = 7.0f;
                    CHECK(dim <= 64 && nx_store_update(store, ev, E, t0, x, NULL, &res) == 0,
                          "update");
                    for (size_t i = 0; i < E * dim; i++)
                        unwritten += !isfinite(x[i]);
                    overrun += x[E * dim] != 7.0f;
                    for (size_t i = 0; i < dim; i++) {
                        const char *a = nx_store_feature_name(store, i);
                        badnames += !a || !a[0];
                        for (size_t j = 0; a && j < i; j++)
                            badnames += strcmp(a, nx_store_feature_name(store, j)) == 0;
                    }
                    badnames += nx_store_feature_name(store, dim) != NULL;
                    free(x);
                    nx_store_destroy(store);
                }
    CHECK(unwritten == 0 && overrun == 0 && badnames == 0,
          "%d layouts: %d places left unwritten, %d writes past the vector, %d bad names", stores,
          unwritten, overrun, badnames);
}

/* The unrolled default-layout code (vector_333, its counter update)
 * against the generic code: a random stream with out-of-order events,
 * sessions, prices present and absent, through two stores that differ only
 * in force_generic, normalised: identical vectors and examples, bit for
 * bit. */
static void test_layout333(void) {
    nx_store_params_t p;
    nx_store_params_default(&p);
    p.n_scores = 4;
    nx_store_params_t pg = p;
    pg.force_generic = 1;
    char err[256];
    nx_store_t *a = nx_store_new(&p, test_key, err, sizeof err);
    nx_store_t *b = nx_store_new(&pg, test_key, err, sizeof err);
    CHECK(a && b, "store: %s", err);
    enum { N = 20000, B = 64, USERS = 300 };
    size_t dim = nx_store_dim(a);
    CHECK(dim == 38, "default layout has %zu features", dim);
    float *xa = calloc(B * dim, sizeof *xa), *xb = calloc(B * dim, sizeof *xb);
    float *ea = calloc(B * dim, sizeof *ea), *eb = calloc(B * dim, sizeof *eb);
    int32_t la[B], lb[B];
    int64_t ta[B], tb[B];
    uint8_t sa[B], sb[B];
    nx_examples_t ra = {.x = ea, .label = la, .ts_ms = ta, .cap = B};
    nx_examples_t rb = {.x = eb, .label = lb, .ts_ms = tb, .cap = B};
    char ids[B][16];
    nx_event_t ev[B];
    uint64_t s = 99;
    int64_t t = 1700000000000LL;
    int diff_x = 0, diff_ex = 0;
    for (int e0 = 0; e0 < N; e0 += B) {
        for (int j = 0; j < B; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t r = s >> 16;
            snprintf(ids[j], sizeof ids[j], "u%d", (int)(r % USERS));
            t += (int64_t)((r >> 10) % 40000); /* up to 40 s apart */
            int64_t ts = (r >> 30) % 10 == 0 ? t - (int64_t)((r >> 34) % 600000) : t; /* late */
            double price = (r >> 40) % 3 == 0 ? NAN : (double)((r >> 42) % 10000) / 100.0;
            ev[j] = mk_event(ids[j], (int)((r >> 50) % 3), ts, 1 + (r >> 20) % 7, 1 + (r >> 24) % 3,
                             (r >> 28) % 4 == 0 ? 0 : 1 + (r >> 44) % 5, price, 1, 0);
        }
        CHECK(nx_store_update(a, ev, B, t - 60000, xa, sa, &ra) == 0 &&
                  nx_store_update(b, ev, B, t - 60000, xb, sb, &rb) == 0,
              "update");
        diff_x += memcmp(xa, xb, B * dim * sizeof *xa) != 0;
        diff_ex += ra.n != rb.n || memcmp(ea, eb, ra.n * dim * sizeof *ea) != 0 ||
                   memcmp(la, lb, ra.n * sizeof *la) != 0;
    }
    CHECK(diff_x == 0 && diff_ex == 0,
          "default-layout path differs from the generic one: %d "
          "batches of vectors, %d of examples",
          diff_x, diff_ex);
    free(xa);
    free(xb);
    free(ea);
    free(eb);
    nx_store_destroy(a);
    nx_store_destroy(b);
}

int main(void) {
    test_params();
    test_layout_table();
    test_layout333();
    test_hand_sequence();
    test_hand_session_counts();
    test_resize();
    test_scores();
    test_score_widths();
    return check_exit("test_store");
}
