/*
 * test_store_ref.c: the feature store (features/store.h) against a
 * brute-force reference, linking only nx_features. The reference keeps
 * every accepted event of each user and recomputes every feature from that
 * list (decayed counts as explicit sums in double, recency as maxima,
 * sessions and revisits by rescanning the list), on random streams with
 * out-of-order and too-old events, TTL expiry and a user cap; vectors,
 * labels and expiries must agree.
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

/* --- brute-force reference ------------------------------------------------------ */

#define REF_MAX_USERS 512
#define REF_MAX_HIST  4096

typedef struct ref_user {
    char id[16];
    nx_event_t hist[REF_MAX_HIST]; /* accepted events since the user (re)appeared */
    int n;
    int pending; /* holds a pending example */
    int64_t pending_ts;
    long pending_row; /* row of X holding the pending vector */
    int present;      /* in the store (as far as the reference knows) */
} ref_user_t;

typedef struct ref {
    const nx_store_params_t *p;
    ref_user_t *users;
    int n_users;
    int fifo[1 << 16]; /* expiry order: user indices, -1 = removed */
    int fifo_head, fifo_tail;
} ref_t;

/* The store's 16-bit tag of an id (store_int.h), spelled out. */
static uint32_t ref_fp(uint64_t h) {
    uint32_t f = (uint32_t)(h ^ (h >> 32)) | 1u;
    return ((f ^ (f >> 16)) & 0xffffu) | 1u;
}

/* 1 if fp is among the k most recent distinct fingerprints of hist[0..n). */
static int ref_recent(const nx_event_t *hist, int n, int k, int cat, uint64_t id) {
    uint32_t seen[NX_STORE_MAX_RECENT];
    int ns = 0;
    if (!id || k == 0)
        return 0;
    for (int j = n - 1; j >= 0 && ns < k; j--) {
        uint64_t v = cat ? hist[j].category : hist[j].item;
        if (!v)
            continue;
        uint32_t f = ref_fp(v);
        int dup = 0;
        for (int s = 0; s < ns; s++)
            dup |= seen[s] == f;
        if (!dup)
            seen[ns++] = f;
    }
    for (int s = 0; s < ns; s++)
        if (seen[s] == ref_fp(id))
            return 1;
    return 0;
}

/* Events on item before hist[i] while it stayed among the k most recent
 * distinct items: each earlier event on it counts while the one after it
 * found it still recent. */
static int ref_item_views(const nx_event_t *hist, int i, int k, uint64_t item) {
    int views = 0;
    while (item && ref_recent(hist, i, k, 0, item)) {
        int j = i - 1;
        while (!(hist[j].item && ref_fp(hist[j].item) == ref_fp(item)))
            j--;
        views++;
        i = j;
    }
    return views;
}

static int ref_min(int a, int b) {
    return a < b ? a : b;
}

/* Features of the user after hist[0..n) (the last one is the current event),
 * recomputed from scratch. */
static void ref_features(const nx_store_params_t *p, const nx_event_t *hist, int n, double *out) {
    const nx_event_t *e = &hist[n - 1];
    int64_t T = INT64_MIN;
    for (int j = 0; j < n; j++)
        if (hist[j].ts_ms > T)
            T = hist[j].ts_ms;
    /* sessions: replay the in-order events */
    int64_t clock = 0, sess_start = 0;
    uint32_t sess_fp = 0;
    int sess_len = 0, sess_rev = 0, cur_new = 0, cur_late = 0;
    int carts = 0, run = 0;
    uint32_t run_fp = 0;
    int64_t cur_gap = 0; /* from the previous in-order event */
    for (int j = 0; j < n; j++) {
        int late = j > 0 && hist[j].ts_ms < clock;
        if (j == n - 1)
            cur_late = late;
        if (late)
            continue;
        int64_t gap = j ? hist[j].ts_ms - clock : 0;
        uint32_t sfp = hist[j].session ? ref_fp(hist[j].session) : 0;
        int nw = j == 0 || sfp != sess_fp || (!sfp && gap > p->session_gap_ms);
        if (nw) {
            sess_start = hist[j].ts_ms;
            sess_len = sess_rev = 0;
            sess_fp = sfp;
            carts = run = 0;
            run_fp = 0;
        }
        sess_len++;
        sess_rev += ref_recent(hist, j, p->recent_items, 0, hist[j].item);
        if (hist[j].type == p->cart_type)
            carts++;
        else if (hist[j].type == p->value_type)
            carts = 0;
        uint32_t cf = hist[j].category ? ref_fp(hist[j].category) : 0;
        run = cf && cf == run_fp ? run + 1 : cf ? 1 : 0;
        run_fp = cf;
        clock = hist[j].ts_ms;
        if (j == n - 1) {
            cur_new = nw;
            cur_gap = gap;
        }
    }
    size_t d = 0;
    int nt = p->n_types;
    if (p->families & NX_FEAT_COUNTS)
        for (int w = 0; w < p->n_windows; w++)
            for (int t = 0; t < nt; t++) {
                double c = 0;
                for (int j = 0; j < n; j++)
                    if (hist[j].type == t)
                        c += exp(-(double)(T - hist[j].ts_ms) / (double)p->window_ms[w]);
                out[d++] = log1p(c);
            }
    if (p->families & NX_FEAT_VALUE)
        for (int w = 0; w < p->n_windows; w++) {
            double v = 0;
            for (int j = 0; j < n; j++) {
                const nx_event_t *h = &hist[j];
                if ((p->value_type < 0 || h->type == p->value_type) && h->price >= 0)
                    v += h->price * (h->quantity > 0 ? h->quantity : 1) *
                         exp(-(double)(T - h->ts_ms) / (double)p->window_ms[w]);
            }
            out[d++] = log1p(v);
        }
    if (p->families & NX_FEAT_RECENCY)
        for (int t = 0; t < nt; t++) {
            int64_t last = INT64_MIN;
            for (int j = 0; j < n; j++)
                if (hist[j].type == t && hist[j].ts_ms > last)
                    last = hist[j].ts_ms;
            out[d++] = last == INT64_MIN ? 0 : log1p((double)(T - last) / 1000.0);
            out[d++] = last == INT64_MIN ? 1 : 0;
        }
    if (p->families & NX_FEAT_SESSION) {
        out[d++] = log1p(sess_len);
        out[d++] = log1p((double)(T - sess_start) / 1000.0);
        out[d++] = cur_late ? 0 : cur_new;
        out[d++] = cur_late ? 0 : log1p((double)cur_gap / 1000.0);
        out[d++] = n == 1; /* the user's first event */
        out[d++] = log1p(ref_min(carts, 255));
        out[d++] = carts > 0;
    }
    if (p->families & NX_FEAT_REVISITS) {
        out[d++] =
            ref_min(ref_item_views(hist, n - 1, p->recent_items, e->item), NX_STORE_REVISIT_CAP);
        out[d++] = ref_recent(hist, n - 1, p->recent_items, 1, e->category);
        out[d++] = log1p(ref_min(sess_rev, 255));
        out[d++] = ref_min(run, NX_STORE_CATEGORY_RUN_CAP);
    }
    if (p->families & NX_FEAT_ONEHOT)
        for (int t = 0; t < nt; t++)
            out[d++] = t == e->type;
    if (p->families & NX_FEAT_TIME) {
        int64_t day = 86400000, days = e->ts_ms / day;
        if (e->ts_ms % day < 0)
            days--;
        double ms = (double)(e->ts_ms - days * day);
        int dow = (int)(((days + 3) % 7 + 7) % 7);
        out[d++] = sin(2 * M_PI * ms / 86400000.0);
        out[d++] = cos(2 * M_PI * ms / 86400000.0);
        out[d++] = sin(2 * M_PI * dow / 7.0);
        out[d++] = cos(2 * M_PI * dow / 7.0);
    }
    if (p->families & NX_FEAT_PRICE) {
        out[d++] = e->price >= 0 ? log1p(e->price) : 0;
        out[d++] = e->price >= 0 ? 0 : 1;
    }
}

static void ref_forget(ref_t *r, int u) {
    r->users[u].n = 0;
    r->users[u].pending = 0;
    r->users[u].present = 0;
    for (int k = r->fifo_head; k < r->fifo_tail; k++)
        if (r->fifo[k] == u)
            r->fifo[k] = -1;
}

typedef struct stream_cfg {
    int n_users, n_events, batch;
    int64_t lateness_ms;
    uint64_t seed;
    int check_cap; /* after each batch, forget users the store evicted */
} stream_cfg_t;

/* The score "published" for event i of a stream, class c: any function of
 * both will do, as long as every event's differs. */
static float ref_score(long i, int c) {
    return (float)((i * 37 + c * 11) % 1000) / 1000.0f;
}

/* fp16 round trip, as the store keeps scores. */
static float rt16(float f) {
    return nx_half_to_float(nx_half_from_float(f));
}

/* Generates a random stream (Zipf-ish users, out-of-order and too-old events,
 * sessions, items, prices), runs it through the store and the reference, and
 * compares every vector, label and expiry. */
static void run_reference(const nx_store_params_t *p, const stream_cfg_t *cfg) {
    char err[256];
    struct {
        long n;
        double sum, sum2, max;
    } cnt_err = {0, 0, 0, 0};
    nx_store_t *store = nx_store_new(p, test_key, err, sizeof err);
    CHECK(store != NULL, "new: %s", err);
    if (!store)
        return;
    size_t dim = nx_store_dim(store);
    ref_t *r = calloc(1, sizeof *r);
    r->p = p;
    r->n_users = cfg->n_users;
    r->users = calloc((size_t)cfg->n_users, sizeof *r->users);
    for (int u = 0; u < cfg->n_users; u++)
        snprintf(r->users[u].id, sizeof r->users[u].id, "user-%d", u);
    nx_event_t *ev = calloc((size_t)cfg->n_events, sizeof *ev);
    int *ev_user = calloc((size_t)cfg->n_events, sizeof *ev_user);
    float *X = calloc((size_t)cfg->n_events * dim, sizeof *X);
    uint8_t *st = calloc((size_t)cfg->n_events, 1);
    int ns = p->n_scores;
    float *S = calloc((size_t)cfg->batch * (size_t)(ns ? ns : 1), sizeof *S);
    double *want = calloc(dim, sizeof *want);
    exbuf_t rb, xb;
    exbuf_init(&rb, dim, 4096);
    exbuf_init(&xb, dim, 4096);
    uint64_t s = cfg->seed;
    int64_t now = 1700000000000LL; /* Nov 2023, ms */
    int64_t *last_ts = calloc((size_t)cfg->n_users, sizeof *last_ts);
    for (int i = 0; i < cfg->n_events; i++) {
        now += (int64_t)(lcg(&s) % 30000); /* 0-30 s between events */
        /* Zipf-ish: the square of a uniform favours low user numbers */
        double uu = (double)(lcg(&s) % 1000000) / 1e6;
        int u = (int)(uu * uu * cfg->n_users);
        int64_t ts = now;
        uint64_t k = lcg(&s) % 100;
        if (k < 10)
            ts -= (int64_t)(lcg(&s) % (2 * 3600000)); /* out of order by up to 2 h */
        else if (k < 12)
            ts -= 30LL * 3600000; /* far too old */
        else if (k < 15)
            ts -= p->window_ms[0]; /* exactly one window back */
        else if (k < 18 && last_ts[u])
            ts = last_ts[u] + p->horizon_ms; /* exactly H after the user's last */
        else if (k < 21 && last_ts[u])
            ts = last_ts[u] + p->session_gap_ms; /* exactly the session gap */
        if (ts > last_ts[u])
            last_ts[u] = ts;
        int type = (int)(lcg(&s) % (uint64_t)p->n_types);
        uint64_t item = lcg(&s) % 4 ? 1000 + lcg(&s) % 12 : 0;
        uint64_t cat = lcg(&s) % 3 ? 2000 + lcg(&s) % 4 : 0;
        uint64_t sess = lcg(&s) % 2 ? 3000 + (uint64_t)(now / 600000) % 3 : 0;
        double price = lcg(&s) % 3 ? (double)(lcg(&s) % 10000) / 100.0 : NAN;
        int qty = (int)(lcg(&s) % 3);
        ev[i] = mk_event(r->users[u].id, type, ts, item, cat, sess, price, qty, u % 4);
        ev_user[i] = u;
    }
    free(last_ts);
    int64_t max_ts = INT64_MIN;
    for (int b0 = 0; b0 < cfg->n_events; b0 += cfg->batch) {
        int bn = cfg->n_events - b0 < cfg->batch ? cfg->n_events - b0 : cfg->batch;
        int64_t wm = max_ts == INT64_MIN ? INT64_MIN / 2 : max_ts - cfg->lateness_ms;
        CHECK(nx_store_update(store, ev + b0, (size_t)bn, wm, X + (size_t)b0 * dim, st + b0,
                              &rb.ex) == 0,
              "update");
        /* the scores published for this batch, kept with pending examples */
        for (int i = 0; i < bn; i++)
            for (int c = 0; c < ns; c++)
                S[(size_t)i * ns + c] = ref_score(b0 + i, c);
        nx_store_set_scores(store, ev + b0, (size_t)bn, st + b0, S);
        size_t rpos = 0;
        for (int i = b0; i < b0 + bn; i++) {
            ref_user_t *ru = &r->users[ev_user[i]];
            const nx_event_t *e = &ev[i];
            int want_st = e->ts_ms < wm - p->window_ms[p->n_windows - 1] ? NX_STORE_DROPPED
                          : e->ts_ms < wm                                ? NX_STORE_LATE
                                                                         : NX_STORE_OK;
            CHECK(st[i] == want_st, "event %d status %d want %d", i, st[i], want_st);
            if (e->ts_ms > max_ts)
                max_ts = e->ts_ms;
            if (want_st == NX_STORE_DROPPED)
                continue;
            int64_t clock = INT64_MIN;
            for (int j = 0; j < ru->n; j++)
                if (ru->hist[j].ts_ms > clock)
                    clock = ru->hist[j].ts_ms;
            int in_order = ru->n == 0 || e->ts_ms >= clock;
            if (ru->n >= REF_MAX_HIST) {
                CHECK(0, "reference history full");
                goto out;
            }
            ru->hist[ru->n++] = *e;
            ru->present = 1;
            ref_features(p, ru->hist, ru->n, want);
            const float *x = X + (size_t)i * dim;
            for (size_t f = 0; f < dim; f++) {
                const char *name = nx_store_feature_name(store, f);
                double err = x[f] - want[f];
                if (!strncmp(name, "cnt_", 4) || !strncmp(name, "value_", 6)) {
                    /* bfloat16 counters: see the bounds after the loop */
                    cnt_err.n++;
                    cnt_err.sum += err;
                    cnt_err.sum2 += err * err;
                    if (fabs(err) > cnt_err.max)
                        cnt_err.max = fabs(err);
                    continue;
                }
                CHECK(fabs(err) <= 2e-4 * (1 + fabs(want[f])),
                      "event %d user %d feature %s = %.7g, want %.7g", i, ev_user[i], name,
                      (double)x[f], want[f]);
            }
            if (!in_order)
                continue;
            if (ru->pending) {
                int32_t lab = e->ts_ms - ru->pending_ts < p->horizon_ms ? e->type : p->n_types;
                CHECK(rpos < rb.ex.n, "event %d: missing resolved example", i);
                if (rpos < rb.ex.n) {
                    CHECK(rb.label[rpos] == lab && rb.ts[rpos] == ru->pending_ts &&
                              rb.user[rpos] == nx_store_user_hash(store, ru->id, strlen(ru->id)),
                          "event %d: resolved label %d ts %lld, want %d ts %lld", i, rb.label[rpos],
                          (long long)rb.ts[rpos], lab, (long long)ru->pending_ts);
                    const float *px = X + (size_t)ru->pending_row * dim;
                    for (size_t f = 0; f < dim; f++)
                        CHECK(rb.x[rpos * dim + f] == pend_rt(p, px[f]),
                              "resolved vector feature %zu", f);
                    for (int c = 0; c < ns; c++)
                        CHECK(rb.score[rpos * ns + c] == rt16(ref_score(ru->pending_row, c)),
                              "event %d: resolved score %d = %g, want %g (event %ld)", i, c,
                              (double)rb.score[rpos * ns + c],
                              (double)rt16(ref_score(ru->pending_row, c)), ru->pending_row);
                }
                rpos++;
                for (int k = r->fifo_head; k < r->fifo_tail; k++)
                    if (r->fifo[k] == ev_user[i])
                        r->fifo[k] = -1;
            }
            ru->pending = 1;
            ru->pending_ts = e->ts_ms;
            ru->pending_row = i;
            r->fifo[r->fifo_tail++] = ev_user[i];
        }
        if (cfg->check_cap) /* one event per batch: trace the user it evicted */
            for (int u = 0; u < r->n_users; u++)
                if (r->users[u].present &&
                    !nx_store_contains(
                        store, nx_store_user_hash(store, r->users[u].id, strlen(r->users[u].id))))
                    ref_forget(r, u);
        CHECK(rpos == rb.ex.n, "batch at %d: %zu resolved, reference %zu", b0, rb.ex.n, rpos);
        /* label expiry, in the reference's FIFO order */
        nx_store_expire_labels(store, wm, &xb.ex);
        size_t xpos = 0;
        while (r->fifo_head < r->fifo_tail) {
            int u = r->fifo[r->fifo_head];
            if (u < 0) {
                r->fifo_head++;
                continue;
            }
            if (r->users[u].pending_ts + p->horizon_ms > wm)
                break;
            CHECK(xpos < xb.ex.n && xb.label[xpos] == p->n_types &&
                      xb.ts[xpos] == r->users[u].pending_ts,
                  "expiry %zu of %zu: user %d ts %lld", xpos, xb.ex.n, u,
                  (long long)r->users[u].pending_ts);
            for (int c = 0; c < ns && xpos < xb.ex.n; c++)
                CHECK(xb.score[xpos * ns + c] == rt16(ref_score(r->users[u].pending_row, c)),
                      "expiry %zu: score %d = %g, want %g", xpos, c,
                      (double)xb.score[xpos * ns + c],
                      (double)rt16(ref_score(r->users[u].pending_row, c)));
            xpos++;
            r->users[u].pending = 0;
            r->fifo_head++;
        }
        CHECK(xpos == xb.ex.n, "%zu expired, reference %zu", xb.ex.n, xpos);
        if (r->fifo_head > (1 << 15)) { /* compact the reference FIFO */
            memmove(r->fifo, r->fifo + r->fifo_head,
                    (size_t)(r->fifo_tail - r->fifo_head) * sizeof(int));
            r->fifo_tail -= r->fifo_head;
            r->fifo_head = 0;
        }
        /* TTL: a full maintenance pass removes every idle user */
        nx_store_maintain(store, wm, 0);
        for (int u = 0; u < r->n_users; u++) {
            ref_user_t *ru = &r->users[u];
            if (!ru->present)
                continue;
            int64_t clock = INT64_MIN;
            for (int j = 0; j < ru->n; j++)
                if (ru->hist[j].ts_ms > clock)
                    clock = ru->hist[j].ts_ms;
            int gone = clock <= wm - p->user_ttl_ms;
            int in = nx_store_contains(store, nx_store_user_hash(store, ru->id, strlen(ru->id)));
            CHECK(in == !gone, "user %d: in store %d, expired by reference %d", u, in, gone);
            if (gone)
                ref_forget(r, u);
        }
    }
    nx_store_stats_t sst;
    nx_store_stats(store, &sst);
    int present = 0, pend = 0;
    for (int u = 0; u < r->n_users; u++) {
        present += r->users[u].present;
        pend += r->users[u].present && r->users[u].pending;
    }
    CHECK(sst.users == (uint64_t)present, "users %llu, reference %d", (unsigned long long)sst.users,
          present);
    CHECK(sst.pending == (uint64_t)pend, "pending %llu, reference %d",
          (unsigned long long)sst.pending, pend);
    if (cfg->check_cap)
        CHECK(sst.evictions > 0 && sst.users <= p->max_users, "cap: evictions %llu users %llu",
              (unsigned long long)sst.evictions, (unsigned long long)sst.users);
    if (cnt_err.n) {
        double mean = cnt_err.sum / cnt_err.n, rms = sqrt(cnt_err.sum2 / cnt_err.n);
        /* fp16 counters rounded stochastically: unbiased (rounding to
         * nearest or down drifts), typically a fraction of one step
         * (2^-10 = 0.001), a few steps at worst (one user's errors decay
         * with the window). Measured: mean |.| < 3e-5, rms < 4e-4, max
         * < 0.004. */
        CHECK(fabs(mean) <= 1e-4 && rms <= 1e-3 && cnt_err.max <= 0.01,
              "counter features: error mean %.3g rms %.3g max %.3g over %ld", mean, rms,
              cnt_err.max, cnt_err.n);
    }
    CHECK(sst.dropped > 0 && sst.late > 0 && (cfg->check_cap || sst.expirations > 0) &&
              sst.expired_labels > 0,
          "stream exercised too little: dropped %llu late %llu expirations %llu expired %llu",
          (unsigned long long)sst.dropped, (unsigned long long)sst.late,
          (unsigned long long)sst.expirations, (unsigned long long)sst.expired_labels);
out:
    exbuf_free(&rb);
    exbuf_free(&xb);
    free(want);
    free(S);
    free(st);
    free(X);
    free(ev_user);
    free(ev);
    free(r->users);
    free(r);
    nx_store_destroy(store);
}

static void ref_params(nx_store_params_t *p) {
    nx_store_params_default(p);
    p->window_ms[0] = 60000; /* short windows, so streams cross their boundaries */
    p->window_ms[1] = 600000;
    p->window_ms[2] = 3600000;
    p->session_gap_ms = 300000;
    p->horizon_ms = 120000;
    p->user_ttl_ms = 2 * 3600000;
    p->normalise = 0;
    p->value_type = -1;
    p->n_scores = 4;
}

static void test_reference(void) {
    nx_store_params_t p;
    ref_params(&p);
    stream_cfg_t cfg = {60, 6000, 32, 600000, 42, 0};
    run_reference(&p, &cfg); /* batches of 32 */
    cfg.batch = 7;
    cfg.seed = 43;
    p.recent_items = 1;
    p.value_type = 2;
    p.n_scores = 1;          /* one 16-bit slot: the smallest */
    run_reference(&p, &cfg); /* odd batches, 1 recent item */
    /* 2 types x 3 windows: 9 decayed counters, not a multiple of 4, so the
     * store takes its scalar counter path (the defaults take the 4-lane one) */
    ref_params(&p);
    p.n_types = 2;
    p.cart_type = 0;
    p.value_type = 1;
    cfg.batch = 32;
    cfg.seed = 45;
    run_reference(&p, &cfg);
    /* cap: 40 of 120 users, one event per batch so evictions can be traced */
    ref_params(&p);
    p.max_users = 40;
    stream_cfg_t capcfg = {120, 3000, 1, 600000, 44, 1};
    run_reference(&p, &capcfg);
}

int main(void) {
    test_reference();
    return check_exit("test_store_ref");
}
