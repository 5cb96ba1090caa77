/*
 * test_gen.c: the generator (daemon/gen.h) and `nextactd gen`.
 *
 * Determinism, time order (with and without jitter), rates and skew, the
 * truth (re-simulated by Monte Carlo from the same state, and calibrated
 * against the labels the stream itself produces), and the OCF file read back
 * with Avro C's reader. Tolerances are statistical: 4-5 standard deviations,
 * so a correct generator fails with odds below 1e-4 per check, and the
 * seeds are fixed, so a run is reproducible either way.
 */
#include "gen.h"

#include <avro.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static nx_gen_t *make_gen(uint32_t users, uint64_t seed, int64_t jitter_ms) {
    nx_gen_params_t params;
    char err[256];
    nx_gen_params_default(&params);
    params.users = users;
    params.seed = seed;
    params.jitter_ms = jitter_ms;
    nx_gen_t *gen = nx_gen_new(&params, err, sizeof err);
    if (!gen) {
        fprintf(stderr, "nx_gen_new: %s\n", err);
        exit(1);
    }
    return gen;
}

static uint64_t mix(uint64_t h, uint64_t x) {
    h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

static uint64_t hash_str(uint64_t h, const char *s) {
    while (*s)
        h = mix(h, (unsigned char)*s++);
    return h;
}

/* Hash of everything an event carries, strings and truth bits included. */
static uint64_t hash_event(uint64_t h, const nx_gen_event_t *ev) {
    uint64_t pbits;
    h = hash_str(h, ev->user_id);
    h = hash_str(h, ev->item_id);
    h = hash_str(h, ev->category);
    h = hash_str(h, ev->session_id);
    h = hash_str(h, ev->type_name);
    h = mix(h, (uint64_t)ev->ts_ms);
    h = mix(h, (uint64_t)ev->quantity);
    memcpy(&pbits, &ev->price, 8);
    h = mix(h, pbits);
    for (int k = 0; k <= NX_GEN_TYPES; k++) {
        memcpy(&pbits, &ev->p[k], 8);
        h = mix(h, pbits);
    }
    return h;
}

static void test_rng(void) {
    /* xoshiro256** reference outputs for the state {1, 2, 3, 4}
     * (prng.di.unimi.it reference C code). */
    nx_gen_rng_t rng = {{1, 2, 3, 4}};
    uint64_t want[4] = {11520ULL, 0ULL, 1509978240ULL, 1215971899390074240ULL};
    for (int i = 0; i < 4; i++) {
        uint64_t got = nx_gen_rng_next(&rng);
        CHECK(got == want[i], "output %d: %llu, want %llu", i, (unsigned long long)got,
              (unsigned long long)want[i]);
    }
    /* uniform in (0, 1], mean 1/2 */
    nx_gen_rng_seed(&rng, 42);
    double sum = 0, lo = 1, hi = 0;
    for (int i = 0; i < 100000; i++) {
        double u = nx_gen_rng_uniform(&rng);
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    CHECK(lo > 0 && hi <= 1, "range [%g, %g]", lo, hi);
    /* sd of the mean of 1e5 uniforms: 0.289 / 316 = 0.0009; 5 sd */
    CHECK(fabs(sum / 100000 - 0.5) < 0.0046, "mean %f", sum / 100000);
}

static void test_profile_mean(void) {
    /* Over exactly one week the time-of-week profile integrates to 168 h
     * (its mean is 1), wherever the week starts: F(1 week) of the long
     * component alone is 1 - exp(-mu * week). */
    nx_gen_hazard_t hz = {0};
    hz.w_short = 0.0;
    hz.mu_short = 1.0;
    hz.mu_long = 1.0 / (7 * 86400000.0); /* one expected arrival a week */
    int64_t week = 7 * 86400000LL;
    for (int64_t t = 1767571200000LL; t < 1767571200000LL + week; t += 37 * 3600000LL + 12345) {
        hz.ts_ms = t;
        double f = nx_gen_session_gap_cdf(&hz, week);
        CHECK(fabs(f - (1 - exp(-1.0))) < 1e-9, "F(week) = %.12f at %lld", f, (long long)t);
    }
    /* and it is not flat: the evening is busier than the night */
    hz.ts_ms = 1767571200000LL + 19 * 3600000LL; /* Monday 19:00 */
    double evening = nx_gen_session_gap_cdf(&hz, 3600000);
    hz.ts_ms = 1767571200000LL + 3 * 3600000LL; /* Monday 03:00 */
    double night = nx_gen_session_gap_cdf(&hz, 3600000);
    CHECK(evening > 3 * night, "evening %g night %g", evening, night);
}

static void test_determinism(void) {
    const int n = 50000;
    nx_gen_t *a = make_gen(2000, 11, 0), *b = make_gen(2000, 11, 0), *c = make_gen(2000, 12, 0);
    nx_gen_event_t ea, eb, ec;
    uint64_t ha = 1, hb = 1, hc = 1;
    int first_diff = -1;
    for (int i = 0; i < n; i++) {
        nx_gen_next(a, &ea);
        nx_gen_next(b, &eb);
        nx_gen_next(c, &ec);
        ha = hash_event(ha, &ea);
        hb = hash_event(hb, &eb);
        hc = hash_event(hc, &ec);
        if (first_diff < 0 && ha != hb)
            first_diff = i;
    }
    CHECK(ha == hb, "same seed differs from event %d", first_diff);
    CHECK(ha != hc, "seeds 11 and 12 give the same stream");
    nx_gen_destroy(a);
    nx_gen_destroy(b);
    nx_gen_destroy(c);
}

static void test_time_order(void) {
    const int n = 100000;
    const uint32_t users = 3000;
    const int64_t jitter = 5000; /* ms */
    nx_gen_t *plain = make_gen(users, 5, 0), *jit = make_gen(users, 5, jitter);
    uint64_t *hp = calloc(users, sizeof *hp), *hj = calloc(users, sizeof *hj);
    int64_t *last_j = malloc(users * sizeof *last_j);
    int64_t max_p = INT64_MIN, max_j = INT64_MIN, worst_late = 0;
    int order_p = 1, user_order_j = 1, late_ok = 1, out_of_order = 0, index_ok = 1;
    for (uint32_t u = 0; u < users; u++)
        last_j[u] = INT64_MIN;
    nx_gen_event_t ev;
    for (int i = 0; i < n; i++) {
        nx_gen_next(plain, &ev);
        order_p &= ev.ts_ms >= max_p;
        index_ok &= ev.index == (uint64_t)i;
        max_p = ev.ts_ms > max_p ? ev.ts_ms : max_p;
        hp[ev.user] = mix(mix(mix(hp[ev.user], (uint64_t)ev.ts_ms), ev.type), ev.item_index);

        nx_gen_next(jit, &ev);
        if (ev.ts_ms < max_j) {
            out_of_order++;
            worst_late = max_j - ev.ts_ms > worst_late ? max_j - ev.ts_ms : worst_late;
        }
        late_ok &= i == 0 || ev.ts_ms >= max_j - jitter;
        user_order_j &= ev.ts_ms >= last_j[ev.user];
        last_j[ev.user] = ev.ts_ms;
        max_j = ev.ts_ms > max_j ? ev.ts_ms : max_j;
        hj[ev.user] = mix(mix(mix(hj[ev.user], (uint64_t)ev.ts_ms), ev.type), ev.item_index);
    }
    CHECK(order_p, "jitter 0: timestamps go back");
    CHECK(index_ok, "index is not the stream position");
    CHECK(late_ok, "jitter %lld ms: an event %lld ms late", (long long)jitter,
          (long long)worst_late);
    CHECK(user_order_j, "jitter reorders a user's own events");
    CHECK(out_of_order > 100, "jitter produced only %d out-of-order events", out_of_order);
    /* The same events per user, in the same order, with and without jitter
     * (users whose last events are still buffered may differ: allow a few). */
    int differ = 0;
    for (uint32_t u = 0; u < users; u++)
        differ += hp[u] != hj[u];
    CHECK(differ < 50, "%d of %u users see other events under jitter", differ, users);
    free(hp);
    free(hj);
    free(last_j);
    nx_gen_destroy(plain);
    nx_gen_destroy(jit);
}

static int cmp_u64_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* Share of all counts held by the top `share` of the entries. */
static double top_share(uint64_t *count, size_t n, double share) {
    qsort(count, n, sizeof *count, cmp_u64_desc);
    uint64_t total = 0, top = 0;
    size_t k = (size_t)(share * (double)n);
    for (size_t i = 0; i < n; i++) {
        total += count[i];
        if (i < k)
            top += count[i];
    }
    return total ? (double)top / (double)total : 0;
}

static void test_rates(void) {
    const int n = 200000;
    nx_gen_t *gen = make_gen(10000, 3, 0);
    const nx_gen_params_t *params = nx_gen_params(gen);
    uint64_t type_count[NX_GEN_TYPES] = {0}, sessions = 0;
    uint64_t *per_user = calloc(params->users, sizeof *per_user);
    uint64_t *per_item = calloc(params->items, sizeof *per_item);
    uint64_t hour_count[24] = {0};
    double purchase_after_cart = 0, after_cart = 0, purchase_after_click = 0, after_click = 0;
    nx_gen_event_t ev;
    for (int i = 0; i < n; i++) {
        nx_gen_next(gen, &ev);
        type_count[ev.type]++;
        per_user[ev.user]++;
        per_item[ev.item_index]++;
        hour_count[(ev.ts_ms / 3600000) % 24]++;
        sessions += nx_gen_user(gen, ev.user)->position == 1;
        CHECK(ev.price >= 0.5 && ev.price < 1e5, "price %f", ev.price);
        CHECK((ev.type == NX_GEN_CLICK) == (ev.quantity == 0), "type %d quantity %d", ev.type,
              ev.quantity);
        double s = ev.p[0] + ev.p[1] + ev.p[2] + ev.p[3];
        CHECK(fabs(s - 1) < 1e-12, "probabilities sum to %.17g", s);
        if (ev.type == NX_GEN_CART) {
            after_cart++;
            purchase_after_cart += ev.p[NX_GEN_PURCHASE];
        } else if (ev.type == NX_GEN_CLICK) {
            after_click++;
            purchase_after_click += ev.p[NX_GEN_PURCHASE];
        }
        if (failures > 20)
            break;
    }
    double purchase = (double)type_count[NX_GEN_PURCHASE] / n;
    double cart = (double)type_count[NX_GEN_CART] / n;
    double events_per_session = (double)n / (double)sessions;
    CHECK(purchase >= 0.01 && purchase <= 0.03, "purchase share %.4f", purchase);
    CHECK(cart >= 0.02 && cart <= 0.08, "cart share %.4f", cart);
    CHECK(events_per_session >= 3 && events_per_session <= 15, "%.2f events per session",
          events_per_session);
    /* Zipf: activity ~ r^-0.8 over 10000 users puts ~25-30 % of the events
     * on the top 1 % of users; uniform would be 1 %. */
    double top_users = top_share(per_user, params->users, 0.01);
    CHECK(top_users > 0.15 && top_users < 0.45, "top 1%% of users hold %.3f", top_users);
    double top_items = top_share(per_item, params->items, 0.01);
    CHECK(top_items > 0.10, "top 1%% of items hold %.3f", top_items);
    /* time of day: the 20 h slot sees several times the 3 h slot */
    CHECK(hour_count[20] > 3 * hour_count[3], "20h %llu vs 3h %llu",
          (unsigned long long)hour_count[20], (unsigned long long)hour_count[3]);
    /* signal: a purchase is far likelier right after a cart add */
    double pc = purchase_after_cart / after_cart, pk = purchase_after_click / after_click;
    CHECK(pc > 5 * pk, "P(purchase | cart) %.4f vs | click %.4f", pc, pk);
    printf("rates: click %.4f cart %.4f purchase %.4f, %.2f events/session, top 1%% users %.3f, "
           "top 1%% items %.3f\n",
           (double)type_count[0] / n, cart, purchase, events_per_session, top_users, top_items);
    free(per_user);
    free(per_item);
    nx_gen_destroy(gen);
}

/* Monte Carlo of the next step from a hazard: counts of (type within h) and
 * none, at two horizons. */
static void mc_check(const nx_gen_hazard_t *hz, int64_t horizon, uint64_t seed, int m, double *zmax,
                     double *zsum, double *var_sum) {
    int64_t horizons[2] = {horizon, horizon / 4};
    for (int hi = 0; hi < 2; hi++) {
        double p[NX_GEN_TYPES + 1];
        nx_gen_hazard_truth(hz, horizons[hi], p);
        nx_gen_rng_t rng;
        nx_gen_rng_seed(&rng, seed * 2 + (uint64_t)hi);
        int count[NX_GEN_TYPES + 1] = {0};
        for (int i = 0; i < m; i++) {
            int type, new_session;
            int64_t gap = nx_gen_hazard_draw(hz, &rng, &type, &new_session);
            count[gap <= horizons[hi] ? type : NX_GEN_NONE]++;
            if (new_session && type != NX_GEN_CLICK)
                failures++, fprintf(stderr, "new session opened by type %d\n", type);
        }
        for (int k = 0; k <= NX_GEN_TYPES; k++) {
            double var = m * p[k] * (1 - p[k]);
            double dev = count[k] - m * p[k];
            /* a p so small that the count should be 0: any hit is suspect */
            double z = var > 1e-9 ? fabs(dev) / sqrt(var) : (count[k] ? 1e9 : 0);
            if (z > *zmax)
                *zmax = z;
            *zsum += dev;
            *var_sum += var;
        }
    }
}

static void test_truth_monte_carlo(void) {
    const int m = 4000; /* draws per sampled event */
    nx_gen_t *gen = make_gen(2000, 9, 0);
    const int64_t horizon = nx_gen_params(gen)->horizon_ms;
    double zmax = 0, zsum = 0, var_sum = 0;
    int sampled = 0, same_hazard = 1, long_gaps = 0;
    nx_gen_event_t ev;
    for (int i = 0; i < 60000; i++) {
        nx_gen_next(gen, &ev);
        if (i % 397 != 0) /* ~150 events across the stream */
            continue;
        /* Re-derive the law from a copy of the user's state: it must be the
         * one the stream used, bit for bit. */
        nx_gen_user_t state = *nx_gen_user(gen, ev.user);
        nx_gen_hazard_t hz;
        double p[NX_GEN_TYPES + 1];
        nx_gen_hazard_compute(gen, &state, ev.ts_ms, &hz);
        nx_gen_hazard_truth(&hz, horizon, p);
        same_hazard &= memcmp(&hz, &ev.hazard, sizeof hz) == 0 && memcmp(p, ev.p, sizeof p) == 0;
        long_gaps += ev.p[NX_GEN_NONE] > 0.2;
        mc_check(&hz, horizon, (uint64_t)i, m, &zmax, &zsum, &var_sum);
        sampled++;
    }
    /* A hazard where the long session gap matters within H (an active user
     * at the evening peak) and the short return does too. */
    nx_gen_hazard_t hz = {.ts_ms = 1767571200000LL + 19 * 3600000LL,
                          .q = 0.3,
                          .lambda = 1.0 / 600000.0,
                          .pi = {0.7, 0.2, 0.1},
                          .w_short = 0.4,
                          .mu_short = 1.0 / 1200000.0,
                          .mu_long = 1.0 / 3600000.0};
    mc_check(&hz, horizon, 777, 20000, &zmax, &zsum, &var_sum);
    CHECK(same_hazard, "the hazard recomputed from the user's state differs");
    /* 2 horizons x 4 classes x ~150 events: 5 sd per cell is never reached
     * by chance (p ~ 6e-7 each); and the sum of deviations within 4 sd. */
    CHECK(zmax < 5, "Monte Carlo vs truth: worst cell %.2f sd", zmax);
    CHECK(fabs(zsum) < 4 * sqrt(var_sum), "sum of deviations %.1f, sd %.1f", zsum, sqrt(var_sum));
    CHECK(long_gaps > 5, "only %d sampled events had p_none > 0.2", long_gaps);
    printf("truth: %d events x %d draws, worst cell %.2f sd\n", sampled, m, zmax);
    nx_gen_destroy(gen);
}

static void test_calibration(void) {
    const int n = 200000;
    nx_gen_t *gen = make_gen(10000, 2026, 0);
    const int64_t horizon = nx_gen_params(gen)->horizon_ms;
    nx_gen_oracle_t *oracle = nx_gen_oracle_new(10000, horizon, 1);
    /* purchase calibration by p bins: [0,.01) [.01,.05) [.05,.2) [.2,1] */
    static const double edge[5] = {0, 0.01, 0.05, 0.2, 1.0001};
    double bin_p[4] = {0}, bin_var[4] = {0}, bin_y[4] = {0};
    double *pending_p = calloc(10000, sizeof *pending_p);
    int64_t *pending_ts = malloc(10000 * sizeof *pending_ts);
    for (int u = 0; u < 10000; u++)
        pending_ts[u] = INT64_MIN;
    nx_gen_event_t ev;
    for (int i = 0; i < n; i++) {
        nx_gen_next(gen, &ev);
        CHECK(nx_gen_oracle_add(oracle, &ev) == 0, "oracle OOM");
        /* an independent labelling, for the binned check */
        if (pending_ts[ev.user] != INT64_MIN) {
            double p = pending_p[ev.user];
            int b = 0;
            while (p >= edge[b + 1])
                b++;
            bin_p[b] += p;
            bin_var[b] += p * (1 - p);
            bin_y[b] +=
                ev.ts_ms - pending_ts[ev.user] <= horizon && ev.type == NX_GEN_PURCHASE ? 1 : 0;
        }
        pending_ts[ev.user] = ev.ts_ms;
        pending_p[ev.user] = ev.p[NX_GEN_PURCHASE];
    }
    nx_gen_oracle_report_t rep;
    nx_gen_oracle_finish(oracle, ev.ts_ms, &rep);
    CHECK(rep.events == (uint64_t)n, "events %llu", (unsigned long long)rep.events);
    CHECK(rep.labelled > (uint64_t)(n - 10000) && rep.labelled <= (uint64_t)n, "labelled %llu",
          (unsigned long long)rep.labelled);
    static const char *name[4] = {"click", "cart", "purchase", "none"};
    for (int k = 0; k <= NX_GEN_TYPES; k++) {
        double dev = (double)rep.label_count[k] - rep.sum_p[k];
        CHECK(fabs(dev) < 4 * sqrt(rep.sum_var[k]), "%s: %llu labels, stated %.1f, sd %.1f",
              name[k], (unsigned long long)rep.label_count[k], rep.sum_p[k], sqrt(rep.sum_var[k]));
        printf("calibration %-8s observed %.5f stated %.5f (%+.2f%%)\n", name[k],
               (double)rep.label_count[k] / rep.labelled, rep.sum_p[k] / rep.labelled,
               100 * dev / rep.sum_p[k]);
    }
    for (int b = 0; b < 4; b++) {
        CHECK(bin_p[b] > 0, "bin %d empty", b);
        CHECK(fabs(bin_y[b] - bin_p[b]) < 4 * sqrt(bin_var[b]) + 1,
              "purchase bin [%.2f, %.2f): %.0f observed, %.1f stated", edge[b], edge[b + 1],
              bin_y[b], bin_p[b]);
    }
    /* Signal: the oracle must beat the base-rate predictor clearly. */
    double base = 0;
    for (int k = 0; k <= NX_GEN_TYPES; k++) {
        double f = (double)rep.label_count[k] / rep.labelled;
        base -= f > 0 ? f * log(f) : 0;
    }
    CHECK(rep.log_loss < base - 0.05, "oracle log loss %.4f vs base rate %.4f", rep.log_loss, base);
    CHECK(rep.auc[NX_GEN_PURCHASE] > 0.85, "purchase AUC %.4f", rep.auc[NX_GEN_PURCHASE]);
    CHECK(rep.auc[NX_GEN_NONE] > 0.6, "none AUC %.4f", rep.auc[NX_GEN_NONE]);
    printf("oracle on %d events (seed 2026): log loss %.4f (base rate %.4f), AUC click %.4f cart "
           "%.4f purchase %.4f none %.4f\n",
           n, rep.log_loss, base, rep.auc[0], rep.auc[1], rep.auc[2], rep.auc[3]);
    free(pending_p);
    free(pending_ts);
    nx_gen_oracle_destroy(oracle);
    nx_gen_destroy(gen);
}

static void test_oracle_auc(void) {
    /* A tiny hand-made case: scores 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.7
     * (neg), 0.1 (neg). Pairs pos>neg: 0.9 beats 3, 0.7 beats 1 and ties 1:
     * (3 + 1 + 0.5) / 6 = 0.75. */
    nx_gen_oracle_t *oracle = nx_gen_oracle_new(5, 1000, 1);
    double s[5] = {0.9, 0.8, 0.7, 0.7, 0.1};
    int pos[5] = {1, 0, 1, 0, 0};
    nx_gen_event_t ev = {0};
    for (int i = 0; i < 5; i++) {
        ev.user = (uint32_t)i;
        ev.ts_ms = 0;
        ev.type = NX_GEN_CLICK;
        ev.p[NX_GEN_PURCHASE] = s[i];
        ev.p[NX_GEN_CLICK] = 1 - s[i];
        nx_gen_oracle_add(oracle, &ev);
    }
    for (int i = 0; i < 5; i++) {
        ev.user = (uint32_t)i;
        ev.ts_ms = 500;
        ev.type = pos[i] ? NX_GEN_PURCHASE : NX_GEN_CLICK;
        nx_gen_oracle_add(oracle, &ev);
    }
    nx_gen_oracle_report_t rep;
    nx_gen_oracle_finish(oracle, 0, &rep); /* the second events stay censored */
    CHECK(rep.labelled == 5, "labelled %llu", (unsigned long long)rep.labelled);
    CHECK(fabs(rep.auc[NX_GEN_PURCHASE] - 0.75) < 1e-12, "AUC %.6f", rep.auc[NX_GEN_PURCHASE]);
    /* log loss: purchases at 0.9 and 0.7, clicks at 0.2, 0.3, 0.9 */
    double want = -(log(0.9) + log(0.2) + log(0.7) + log(0.3) + log(0.9)) / 5;
    CHECK(fabs(rep.log_loss - want) < 1e-12, "log loss %.9f want %.9f", rep.log_loss, want);
    nx_gen_oracle_destroy(oracle);
}

static int run_cli(int n, const char **args) {
    char *argv[32];
    for (int i = 0; i < n; i++)
        argv[i] = (char *)args[i];
    argv[n] = NULL;
    return nx_gen_main(n, argv);
}

static void test_cli_ocf(void) {
    char avro_path[] = "/tmp/test_gen_XXXXXX";
    int fd = mkstemp(avro_path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    char csv_path[64];
    snprintf(csv_path, sizeof csv_path, "%s.csv", avro_path);
    const char *args[] = {"gen",
                          "--events",
                          "3000",
                          "--users",
                          "300",
                          "--seed",
                          "4",
                          "--output",
                          avro_path,
                          "--truth",
                          csv_path,
                          "--schema",
                          NX_SOURCE_DIR "/conf/schemas/event.avsc"};
    int rc = run_cli(13, args);
    CHECK(rc == 0, "nextactd gen rc %d", rc);
    /* bit-identical files from the same seed (Avro C's random sync marker
     * is replaced by one drawn from the seed) */
    char again_path[64];
    snprintf(again_path, sizeof again_path, "%s.again", avro_path);
    args[8] = again_path;
    CHECK(run_cli(13, args) == 0, "second run");
    FILE *fa = fopen(avro_path, "rb"), *fb = fopen(again_path, "rb");
    long same = -1, size = 0;
    if (fa && fb) {
        int ca, cb;
        same = 1;
        do {
            ca = fgetc(fa);
            cb = fgetc(fb);
            same &= ca == cb;
            size++;
        } while (ca != EOF && cb != EOF);
    }
    CHECK(same == 1 && size > 1000, "two runs, one seed: files differ (same %ld, %ld bytes)", same,
          size);
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    unlink(again_path);

    /* the same stream, straight from the library */
    nx_gen_params_t params;
    char err[256];
    nx_gen_params_default(&params);
    params.users = 300;
    params.seed = 4;
    nx_gen_t *gen = nx_gen_new(&params, err, sizeof err);

    avro_file_reader_t reader;
    CHECK(avro_file_reader(avro_path, &reader) == 0, "%s", avro_strerror());
    avro_schema_t schema = avro_file_reader_get_writer_schema(reader);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t rec;
    avro_generic_value_new(iface, &rec);
    FILE *csv = fopen(csv_path, "r");
    char line[512];
    CHECK(csv && fgets(line, sizeof line, csv) &&
              strcmp(line, "index,user,ts,type,p_click,p_cart,p_purchase,p_none\n") == 0,
          "csv header %s", line);
    int count = 0, mismatches = 0, csv_mismatches = 0;
    while (avro_file_reader_read_value(reader, &rec) == 0) {
        nx_gen_event_t ev;
        nx_gen_next(gen, &ev);
        avro_value_t f, br;
        const char *s;
        size_t sz;
        int64_t ts;
        int32_t qty;
        double price;
        int bad = 0;
        avro_value_get_by_name(&rec, "user_id", &f, NULL);
        avro_value_get_string(&f, &s, &sz);
        bad |= strcmp(s, ev.user_id) != 0;
        avro_value_get_by_name(&rec, "ts", &f, NULL);
        avro_value_get_long(&f, &ts);
        bad |= ts != ev.ts_ms;
        avro_value_get_by_name(&rec, "event_type", &f, NULL);
        avro_value_get_string(&f, &s, &sz);
        bad |= strcmp(s, ev.type_name) != 0;
        avro_value_get_by_name(&rec, "item_id", &f, NULL);
        avro_value_get_current_branch(&f, &br);
        avro_value_get_string(&br, &s, &sz);
        bad |= strcmp(s, ev.item_id) != 0;
        avro_value_get_by_name(&rec, "category", &f, NULL);
        avro_value_get_current_branch(&f, &br);
        avro_value_get_string(&br, &s, &sz);
        bad |= strcmp(s, ev.category) != 0;
        avro_value_get_by_name(&rec, "session_id", &f, NULL);
        avro_value_get_current_branch(&f, &br);
        avro_value_get_string(&br, &s, &sz);
        bad |= strcmp(s, ev.session_id) != 0;
        avro_value_get_by_name(&rec, "price", &f, NULL);
        avro_value_get_current_branch(&f, &br);
        avro_value_get_double(&br, &price);
        bad |= price != ev.price;
        avro_value_get_by_name(&rec, "quantity", &f, NULL);
        int branch = -1;
        avro_value_get_discriminant(&f, &branch);
        if (ev.quantity == 0) {
            bad |= branch != 0; /* null */
        } else {
            avro_value_get_current_branch(&f, &br);
            avro_value_get_int(&br, &qty);
            bad |= branch != 1 || qty != ev.quantity;
        }
        mismatches += bad;
        /* the truth row: exact doubles */
        unsigned long long idx;
        char user[64], type[32];
        long long cts;
        double p[4];
        if (!csv || !fgets(line, sizeof line, csv) ||
            sscanf(line, "%llu,%63[^,],%lld,%31[^,],%lf,%lf,%lf,%lf", &idx, user, &cts, type, &p[0],
                   &p[1], &p[2], &p[3]) != 8 ||
            idx != ev.index || strcmp(user, ev.user_id) || cts != ev.ts_ms ||
            strcmp(type, ev.type_name) || memcmp(p, ev.p, sizeof p))
            csv_mismatches++;
        avro_value_reset(&rec);
        count++;
    }
    CHECK(count == 3000, "read %d records", count);
    CHECK(mismatches == 0, "%d records differ from the library's stream", mismatches);
    CHECK(csv_mismatches == 0, "%d truth rows differ", csv_mismatches);
    CHECK(csv && !fgets(line, sizeof line, csv), "extra truth rows");
    if (csv)
        fclose(csv);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    avro_file_reader_close(reader);
    nx_gen_destroy(gen);
    unlink(avro_path);
    unlink(csv_path);
}

static void test_cli_config(void) {
    /* A user's own schema: other field names, a float price, an extra
     * nullable field, no category; the config maps names and type values
     * (pv -> click). The OCF must follow the config. */
    char dir[] = "/tmp/test_gen_cfg_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char conf_path[128], schema_path[128], avro_path[128];
    snprintf(conf_path, sizeof conf_path, "%s/gen.conf", dir);
    snprintf(schema_path, sizeof schema_path, "%s/shop.avsc", dir);
    snprintf(avro_path, sizeof avro_path, "%s/out.avro", dir);
    FILE *f = fopen(schema_path, "w");
    fputs("{\"type\":\"record\",\"name\":\"Shop\",\"fields\":["
          "{\"name\":\"uid\",\"type\":\"string\"},"
          "{\"name\":\"extra\",\"type\":[\"null\",\"long\"],\"default\":null},"
          "{\"name\":\"time\",\"type\":\"long\"},"
          "{\"name\":\"kind\",\"type\":\"string\"},"
          "{\"name\":\"sku\",\"type\":[\"null\",\"string\"],\"default\":null},"
          "{\"name\":\"amount\",\"type\":[\"null\",\"float\"],\"default\":null}]}",
          f);
    fclose(f);
    f = fopen(conf_path, "w");
    fputs("kafka: { brokers = \"mock\"; input_topics = [\"shop\"]; output_topic = \"out\"; };\n"
          "input: { writer_schema = \"shop.avsc\";\n"
          "  fields: { user_id = \"uid\"; timestamp = \"time\"; type = \"kind\"; item = \"sku\";\n"
          "            category = \"\"; price = \"amount\"; quantity = \"\"; session = \"\"; };\n"
          "  type_map = { pv = \"click\"; cart = \"cart\"; buy = \"purchase\"; }; };\n"
          "labels: { horizon_s = 600; };\n",
          f);
    fclose(f);
    const char *args[] = {"gen", "-c",     conf_path, "--events", "500",    "--users",
                          "40",  "--seed", "5",       "--output", avro_path};
    int rc = run_cli(11, args);
    CHECK(rc == 0, "gen -c rc %d", rc);
    avro_file_reader_t reader;
    int count = 0, pv = 0, buy = 0, bad = 0;
    if (rc == 0 && avro_file_reader(avro_path, &reader) == 0) {
        avro_schema_t schema = avro_file_reader_get_writer_schema(reader);
        avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
        avro_value_t rec, fv, br;
        avro_generic_value_new(iface, &rec);
        while (avro_file_reader_read_value(reader, &rec) == 0) {
            const char *s;
            size_t sz;
            int branch = -1;
            float amount = 0;
            avro_value_get_by_name(&rec, "kind", &fv, NULL);
            avro_value_get_string(&fv, &s, &sz);
            pv += strcmp(s, "pv") == 0;
            buy += strcmp(s, "buy") == 0;
            avro_value_get_by_name(&rec, "extra", &fv, NULL);
            avro_value_get_discriminant(&fv, &branch);
            bad += branch != 0;
            avro_value_get_by_name(&rec, "amount", &fv, NULL);
            avro_value_get_current_branch(&fv, &br);
            avro_value_get_float(&br, &amount);
            bad += !(amount >= 0.5f);
            avro_value_reset(&rec);
            count++;
        }
        avro_value_decref(&rec);
        avro_value_iface_decref(iface);
        avro_schema_decref(schema);
        avro_file_reader_close(reader);
    }
    CHECK(count == 500 && pv > 400 && buy > 0 && bad == 0, "%d records, %d pv, %d buy, %d bad",
          count, pv, buy, bad);
    unlink(avro_path);
    unlink(conf_path);
    unlink(schema_path);
    rmdir(dir);
}

static void test_cli_kafka_mock(void) {
    /* librdkafka's in-process mock cluster: every message, bad ones
     * included, must be delivered and flushed. */
    const char *args[] = {"gen",
                          "--events",
                          "2000",
                          "--users",
                          "200",
                          "--seed",
                          "8",
                          "--topic",
                          "events",
                          "--brokers",
                          "mock",
                          "--bad-rate",
                          "0.2",
                          "--rate",
                          "0",
                          "--schema",
                          NX_SOURCE_DIR "/conf/schemas/event.avsc"};
    int rc = run_cli(17, args);
    CHECK(rc == 0, "gen --topic (mock) rc %d", rc);

    /* The token bucket: 1000 events at 4000/s take 0.25 s less one 10 ms
     * burst; allow slack above for a loaded machine. */
    const char *paced[] = {
        "gen",    "--events", "1000",    "--users",  "100",
        "--seed", "8",        "--topic", "events",   "--brokers",
        "mock",   "--rate",   "4000",    "--schema", NX_SOURCE_DIR "/conf/schemas/event.avsc"};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = run_cli(15, paced);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    CHECK(rc == 0, "gen --rate rc %d", rc);
    CHECK(secs >= 0.23 && secs < 5.0, "1000 events at 4000/s took %.3f s", secs);
}

static void test_cli_usage(void) {
    const char *no_events[] = {"gen", "--users", "10", "--null"};
    CHECK(run_cli(4, no_events) == 2, "missing --events accepted");
    const char *bad_rate[] = {"gen", "--events", "10", "--topic", "t", "--bad-rate", "1.5"};
    CHECK(run_cli(7, bad_rate) == 2, "--bad-rate 1.5 accepted");
    const char *two_sinks[] = {"gen", "--events", "10", "--null", "--output", "/tmp/x.avro"};
    CHECK(run_cli(6, two_sinks) == 2, "two sinks accepted");
    const char *bad_schema[] = {
        "gen",      "--events",         "10", "--output", "/tmp/test_gen_none.avro",
        "--schema", "/nonexistent.avsc"};
    CHECK(run_cli(7, bad_schema) == 1, "missing schema accepted");
    const char *ok[] = {"gen", "--events", "1000", "--users", "50", "--null", "--report"};
    CHECK(run_cli(7, ok) == 0, "--null run failed");
}

int main(void) {
    test_rng();
    test_profile_mean();
    test_oracle_auc();
    test_determinism();
    test_time_order();
    test_rates();
    test_truth_monte_carlo();
    test_calibration();
    test_cli_ocf();
    test_cli_usage();
    test_cli_config();
    test_cli_kafka_mock();
    if (failures) {
        fprintf(stderr, "test_gen: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_gen: all passed\n");
    return 0;
}
