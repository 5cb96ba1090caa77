/* gen.c: the clickstream generator and its oracle (see gen.h). */
#include "gen.h"

#include "codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_HOUR 3600000LL
#define MS_PER_DAY  86400000LL
#define MS_PER_WEEK (7 * MS_PER_DAY)
/* 1970-01-01 was a Thursday: the first Monday 00:00 UTC is 4 days later.
 * The time-of-week profile is indexed from a Monday. */
#define WEEK_ORIGIN_MS (4 * MS_PER_DAY)

#define NO_ITEM UINT32_MAX

/* ---- random numbers ---------------------------------------------------- */

void nx_gen_rng_seed(nx_gen_rng_t *rng, uint64_t seed) {
    nx_rng_seed(rng, seed);
}

uint64_t nx_gen_rng_next(nx_gen_rng_t *rng) {
    return nx_rng_next(rng);
}

double nx_gen_rng_uniform(nx_gen_rng_t *rng) {
    /* The top 53 bits, shifted by one: (k + 1) / 2^53 lies in (0, 1]. */
    return (double)((nx_gen_rng_next(rng) >> 11) + 1) * 0x1.0p-53;
}

static double rng_exp(nx_gen_rng_t *rng) {
    return -log(nx_gen_rng_uniform(rng));
}

/* ---- time-of-week profile ---------------------------------------------- */

/* Relative activity per hour of day (UTC; one market's clock): a trough at
 * 3-4 h, a lunch bump and the evening peak at 20 h, the shape published
 * e-commerce traffic curves show. The raw values sum to HOUR_SUM and are
 * divided by HOUR_SUM / 24 so that the day's mean is 1 (test_gen checks). */
static const double hour_raw[24] = {0.55, 0.35, 0.25, 0.20, 0.20, 0.25, 0.40, 0.60,
                                    0.80, 0.95, 1.05, 1.10, 1.20, 1.15, 1.10, 1.10,
                                    1.15, 1.25, 1.40, 1.60, 1.75, 1.70, 1.40, 0.95};
#define HOUR_SUM 22.45
/* Monday .. Sunday: weekends busier. Sums to 7 (mean 1). */
static const double day_factor[7] = {0.95, 0.93, 0.93, 0.95, 1.00, 1.12, 1.12};

/* Profile rate m during the hour slot containing phase (ms into the week). */
static double profile_rate(int64_t phase) {
    int d = (int)(phase / MS_PER_DAY);
    int h = (int)((phase % MS_PER_DAY) / MS_PER_HOUR);
    return day_factor[d] * hour_raw[h] * (24.0 / HOUR_SUM);
}

/* Integral of m over the week up to phase (ms into the week), in hours. */
static double profile_within(int64_t phase) {
    int d = (int)(phase / MS_PER_DAY);
    int64_t in_day = phase % MS_PER_DAY;
    int h = (int)(in_day / MS_PER_HOUR);
    double acc = 0.0;
    for (int i = 0; i < d; i++)
        acc += day_factor[i] * 24.0;
    double day = 0.0;
    for (int i = 0; i < h; i++)
        day += hour_raw[i];
    day += hour_raw[h] * (double)(in_day % MS_PER_HOUR) / (double)MS_PER_HOUR;
    return acc + day_factor[d] * day * (24.0 / HOUR_SUM);
}

static double profile_week_total(void) {
    double acc = 0.0;
    for (int i = 0; i < 7; i++)
        acc += day_factor[i] * 24.0;
    return acc;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Integral of m from t0 to t0 + len (ms), in profile hours. Computed from
 * t0's week so that it stays exact to double rounding for any t0. */
static double profile_integral(int64_t t0, int64_t len) {
    int64_t rel = t0 - WEEK_ORIGIN_MS;
    int64_t week = floor_div(rel, MS_PER_WEEK);
    int64_t phase0 = rel - week * MS_PER_WEEK;
    int64_t end = phase0 + len;
    int64_t weeks = end / MS_PER_WEEK;
    int64_t phase1 = end - weeks * MS_PER_WEEK;
    return (double)weeks * profile_week_total() + profile_within(phase1) - profile_within(phase0);
}

/* Inverse of profile_integral: the real time (ms, fractional) after t0 at
 * which the integral reaches target profile hours. */
static double profile_inverse(int64_t t0, double target) {
    int64_t rel = t0 - WEEK_ORIGIN_MS;
    int64_t phase = rel - floor_div(rel, MS_PER_WEEK) * MS_PER_WEEK;
    double elapsed = 0.0;
    /* finish the current hour slot */
    double rate = profile_rate(phase);
    int64_t left = MS_PER_HOUR - phase % MS_PER_HOUR;
    double cap = rate * (double)left / (double)MS_PER_HOUR;
    if (cap >= target)
        return target / rate * (double)MS_PER_HOUR;
    target -= cap;
    elapsed += (double)left;
    phase = (phase + left) % MS_PER_WEEK;
    /* skip whole weeks, then walk at most a week of slots */
    double week_total = profile_week_total();
    double weeks = floor(target / week_total);
    target -= weeks * week_total;
    elapsed += weeks * (double)MS_PER_WEEK;
    for (;;) {
        rate = profile_rate(phase);
        if (rate >= target)
            return elapsed + target / rate * (double)MS_PER_HOUR;
        target -= rate;
        elapsed += (double)MS_PER_HOUR;
        phase = (phase + MS_PER_HOUR) % MS_PER_WEEK;
    }
}

/* ---- Zipf tables --------------------------------------------------------- */

/* CDF of P(rank r) ~ (r + 1)^-s over n ranks; sampled by binary search. */
static double *zipf_cdf_new(uint32_t n, double s) {
    double *cdf = malloc((size_t)n * sizeof *cdf);
    if (!cdf)
        return NULL;
    double acc = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        acc += pow((double)i + 1.0, -s);
        cdf[i] = acc;
    }
    for (uint32_t i = 0; i < n; i++)
        cdf[i] /= acc;
    cdf[n - 1] = 1.0; /* so a draw of exactly 1 finds a rank */
    return cdf;
}

static uint32_t zipf_draw(const double *cdf, uint32_t n, nx_gen_rng_t *rng) {
    double u = nx_gen_rng_uniform(rng);
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] >= u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---- the generator ----------------------------------------------------- */

/* A generated event waiting in the reorder buffer (jitter_ms > 0). */
typedef struct pending {
    int64_t key; /* ms, emission time */
    uint64_t seq;
    uint32_t session_no;
    nx_gen_event_t ev; /* string pointers unset */
} pending_t;

struct nx_gen {
    nx_gen_params_t params;
    char type_names[NX_GEN_TYPES][32];
    nx_gen_rng_t rng;        /* the process */
    nx_gen_rng_t jitter_rng; /* emission delays only, so jitter leaves the events alone */
    nx_gen_user_t *users;    /* (U) */
    uint32_t *heap;          /* (U) user indices, min-heap by (next_ts, index) */
    double *cat_cdf;         /* (C) */
    double *item_cdf;        /* (items_per_cat) */
    double *item_price;      /* (items_per_cat * C) unit prices */
    uint32_t items_per_cat;
    int64_t *user_key; /* (U) latest emission key per user, jitter only */
    pending_t *buf;    /* reorder min-heap by (key, seq) */
    size_t buf_n, buf_cap;
    uint64_t seq;
    uint64_t index;
    char user_buf[16], item_buf[16], cat_buf[16], session_buf[32];
};

/* Writes v in decimal after prefix; returns the end. snprintf would cost
 * more than the rest of an event. */
static char *fmt_u32(char *p, uint32_t v) {
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    *p = '\0';
    return p;
}

static void fmt_id(char *buf, char prefix, uint32_t v) {
    buf[0] = prefix;
    fmt_u32(buf + 1, v);
}

void nx_gen_params_default(nx_gen_params_t *params) {
    memset(params, 0, sizeof *params);
    params->users = 10000;
    params->items = 20000;
    params->categories = 50;
    params->seed = 1;
    params->start_ms = 1767571200000LL;  /* 2026-01-05 00:00:00 UTC, a Monday */
    params->horizon_ms = 30 * 60 * 1000; /* 30 min, DESIGN.md's example */
    params->jitter_ms = 0;
    params->user_zipf = 0.8;
    params->item_zipf = 1.0;
    params->category_zipf = 0.9;
    params->type_names[NX_GEN_CLICK] = "click";
    params->type_names[NX_GEN_CART] = "cart";
    params->type_names[NX_GEN_PURCHASE] = "purchase";
}

const nx_gen_params_t *nx_gen_params(const nx_gen_t *gen) {
    return &gen->params;
}

const nx_gen_user_t *nx_gen_user(const nx_gen_t *gen, uint32_t user) {
    return &gen->users[user];
}

static inline int heap_less(const nx_gen_t *gen, uint32_t a, uint32_t b) {
    int64_t ta = gen->users[a].next_ts, tb = gen->users[b].next_ts;
    return ta < tb || (ta == tb && a < b);
}

static void heap_sift_down(nx_gen_t *gen, size_t i) {
    size_t n = gen->params.users;
    uint32_t *h = gen->heap;
    uint32_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(gen, h[c + 1], h[c]))
            c++;
        if (!heap_less(gen, h[c], x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Sessions per day of the user of rank r at profile rate 1: the most active
 * user opens ~10 sessions a day (a heavy shopper or a small B2B buyer);
 * rank 10000 at the default exponent 0.8 about one every 160 days. */
#define ACTIVITY_MAX_PER_DAY 10.0

/* Standard normal from two uniforms (Box-Muller, one output used). */
static double normal(nx_gen_rng_t *rng) {
    double u1 = nx_gen_rng_uniform(rng), u2 = nx_gen_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

nx_gen_t *nx_gen_new(const nx_gen_params_t *params, char *errstr, size_t errstr_size) {
    nx_gen_t *gen = NULL;
    const nx_gen_params_t *p = params;
    if (p->users < 1 || p->categories < 1 || p->items < p->categories) {
        snprintf(errstr, errstr_size,
                 "gen: need users >= 1, categories >= 1 and items >= categories "
                 "(got %u, %u, %u)",
                 p->users, p->categories, p->items);
        return NULL;
    }
    if (p->horizon_ms <= 0 || p->jitter_ms < 0) {
        snprintf(errstr, errstr_size, "gen: horizon must be > 0 and jitter >= 0");
        return NULL;
    }
    if (!(p->user_zipf >= 0 && p->item_zipf >= 0 && p->category_zipf >= 0)) {
        snprintf(errstr, errstr_size, "gen: Zipf exponents must be >= 0");
        return NULL;
    }
    for (int k = 0; k < NX_GEN_TYPES; k++) {
        if (!p->type_names[k] || !*p->type_names[k] || strlen(p->type_names[k]) >= 32) {
            snprintf(errstr, errstr_size, "gen: event type %d needs a name of 1..31 bytes", k);
            return NULL;
        }
    }

    gen = calloc(1, sizeof *gen);
    if (!gen)
        goto oom;
    gen->params = *p;
    for (int k = 0; k < NX_GEN_TYPES; k++) {
        strcpy(gen->type_names[k], p->type_names[k]);
        gen->params.type_names[k] = gen->type_names[k];
    }
    uint32_t C = p->categories, U = p->users;
    gen->items_per_cat = p->items / C;
    size_t n_items = (size_t)gen->items_per_cat * C;
    gen->users = calloc(U, sizeof *gen->users);
    gen->heap = malloc((size_t)U * sizeof *gen->heap);
    gen->item_price = malloc(n_items * sizeof *gen->item_price);
    gen->cat_cdf = zipf_cdf_new(C, p->category_zipf);
    gen->item_cdf = zipf_cdf_new(gen->items_per_cat, p->item_zipf);
    if (!gen->users || !gen->heap || !gen->item_price || !gen->cat_cdf || !gen->item_cdf)
        goto oom;
    if (p->jitter_ms > 0) {
        gen->user_key = malloc((size_t)U * sizeof *gen->user_key);
        gen->buf_cap = 1024; /* grows by doubling if a burst needs more */
        gen->buf = malloc(gen->buf_cap * sizeof *gen->buf);
        if (!gen->user_key || !gen->buf)
            goto oom;
        for (uint32_t u = 0; u < U; u++)
            gen->user_key[u] = INT64_MIN;
    }

    nx_gen_rng_seed(&gen->rng, p->seed);
    /* A second stream for delays: the constant is arbitrary (the golden
     * ratio's bits) and only has to differ from 0. */
    nx_gen_rng_seed(&gen->jitter_rng, p->seed ^ 0x9e3779b97f4a7c15ULL);

    /* Prices: each category has a median unit price, log-normal around 25
     * (sigma 1: from a few units to a few hundred); items spread around it
     * by sigma 0.4. Rounded to cents, at least 0.50. */
    {
        nx_gen_rng_t prng;
        nx_gen_rng_seed(&prng, p->seed ^ 0x5851f42d4c957f2dULL); /* arbitrary, != 0 */
        for (uint32_t c = 0; c < C; c++) {
            double median = 25.0 * exp(normal(&prng));
            for (uint32_t r = 0; r < gen->items_per_cat; r++) {
                double price = median * exp(0.4 * normal(&prng));
                price = round(price * 100.0) / 100.0;
                gen->item_price[(size_t)r * C + c] = price < 0.5 ? 0.5 : price;
            }
        }
    }

    /* Users: latent activity by rank, a favourite category, and a first
     * event (a session-opening click) at the first arrival of their
     * session process from start_ms. */
    for (uint32_t u = 0; u < U; u++) {
        nx_gen_user_t *user = &gen->users[u];
        user->last_ts = INT64_MIN;
        user->prev_ts = INT64_MIN;
        user->last_purchase_ts = INT64_MIN;
        user->cart_item = NO_ITEM;
        user->item = NO_ITEM;
        user->category = NO_ITEM;
        for (int i = 0; i < NX_GEN_RECENT; i++)
            user->recent[i] = NO_ITEM;
        user->activity = ACTIVITY_MAX_PER_DAY * pow((double)u + 1.0, -p->user_zipf);
        user->fav_category = zipf_draw(gen->cat_cdf, C, &gen->rng);
        double mu = user->activity / (double)MS_PER_DAY;
        double gap = profile_inverse(p->start_ms, rng_exp(&gen->rng) / (mu * MS_PER_HOUR));
        user->next_ts = p->start_ms + (int64_t)ceil(gap);
        user->next_type = NX_GEN_CLICK;
        user->next_new_session = 1;
        gen->heap[u] = u;
    }
    for (size_t i = U / 2; i-- > 0;)
        heap_sift_down(gen, i);
    return gen;

oom:
    snprintf(errstr, errstr_size, "gen: out of memory for %u users, %u items", p->users, p->items);
    nx_gen_destroy(gen);
    return NULL;
}

void nx_gen_destroy(nx_gen_t *gen) {
    if (!gen)
        return;
    free(gen->buf);
    free(gen->user_key);
    free(gen->item_cdf);
    free(gen->cat_cdf);
    free(gen->item_price);
    free(gen->heap);
    free(gen->users);
    free(gen);
}

/* ---- the law of the next event ------------------------------------------ */

static double sigmoid(double x) {
    return 1.0 / (1.0 + exp(-x));
}

static double minf(double a, double b) {
    return a < b ? a : b;
}

/*
 * The coefficients below are the generator's "ground truth model". Each is
 * a log-odds shift chosen so that the stream looks like a shop (sessions of
 * ~6 events, carts a few %, purchases ~1-3 %) and so that every feature the
 * model sees (DESIGN.md) carries some signal; none is fitted to data.
 */
void nx_gen_hazard_compute(const nx_gen_t *gen, const nx_gen_user_t *user, int64_t ts_ms,
                           nx_gen_hazard_t *hz) {
    const int type = user->last_type;
    const double pos = (double)user->position;
    const double prev_gap_s =
        user->prev_ts == INT64_MIN ? 0.0 : (double)(ts_ms - user->prev_ts) / 1000.0;
    const double dur_min = (double)(ts_ms - user->session_start) / 60000.0;
    const double carts = (double)user->carts;
    uint32_t views = 0;
    for (int i = 0; i < NX_GEN_RECENT; i++)
        if (user->recent[i] == user->item)
            views = user->recent_views[i];
    /* revisits: views of this item before this one, at most 3 counted */
    const double revisits = minf(views > 0 ? views - 1.0 : 0.0, 3.0);
    /* price relative to the typical 25: cheaper items convert better */
    const double log_price = log(gen->item_price[user->item] / 25.0);
    const int64_t tod = ((ts_ms % MS_PER_DAY) + MS_PER_DAY) % MS_PER_DAY;
    const double hour = (double)tod / (double)MS_PER_HOUR;
    const double recent_purchase =
        user->last_purchase_ts != INT64_MIN && ts_ms - user->last_purchase_ts < MS_PER_DAY ? 1.0
                                                                                           : 0.0;

    /* Does the session go on? Fatigue with position and duration, slow
     * browsers (long previous gap) leave, engaged ones (same category, a
     * full cart) stay, a purchase usually ends the visit; more staying in
     * the evening (peak at 20 h). */
    double q_logit = 1.9 - 0.05 * pos - 0.25 * log1p(dur_min) - 0.45 * log1p(prev_gap_s / 30.0) +
                     0.12 * minf(user->cat_views, 5.0) + 0.8 * (carts > 0) -
                     1.6 * (type == NX_GEN_PURCHASE) + 0.3 * cos(2.0 * M_PI * (hour - 20.0) / 24.0);
    hz->q = sigmoid(q_logit);

    /* Within a session: ~40 s between views, twice that after a cart add
     * (the shopper goes to the cart page). */
    double mean_gap_ms = 40000.0 * (type == NX_GEN_CART ? 2.0 : 1.0);
    hz->lambda = 1.0 / mean_gap_ms;

    /* Which action next: clicks are the reference (logit 0). Carts follow
     * revisits of the same item and cheap items; purchases follow cart adds
     * (most of all right after one), in the evening (peak 21 h), and rarely
     * twice within a day. */
    double l_cart = -3.3 + 0.8 * revisits - 0.35 * log_price - 0.8 * (type == NX_GEN_CART);
    double l_purchase = -6.6 + 3.2 * (carts > 0) + 0.5 * minf(carts, 3.0) +
                        1.5 * (type == NX_GEN_CART) - 0.35 * log_price +
                        0.4 * cos(2.0 * M_PI * (hour - 21.0) / 24.0) - 1.5 * recent_purchase;
    double e_cart = exp(l_cart), e_purchase = exp(l_purchase);
    double z = 1.0 + e_cart + e_purchase;
    hz->pi[NX_GEN_CLICK] = 1.0 / z;
    hz->pi[NX_GEN_CART] = e_cart / z;
    hz->pi[NX_GEN_PURCHASE] = e_purchase / z;

    /* Session over: 6 % come back soon anyway, 36 % with an abandoned cart;
     * a quick return takes ~20 min. Otherwise the user's own rhythm. */
    hz->w_short = 0.06 + 0.30 * (carts > 0 && type != NX_GEN_PURCHASE);
    hz->mu_short = 1.0 / (20.0 * 60000.0);
    hz->mu_long = user->activity / (double)MS_PER_DAY;
    hz->ts_ms = ts_ms;
}

double nx_gen_session_gap_cdf(const nx_gen_hazard_t *hz, int64_t h_ms) {
    double lam = hz->mu_long * (double)MS_PER_HOUR * profile_integral(hz->ts_ms, h_ms);
    double f_short = -expm1(-hz->mu_short * (double)h_ms);
    double f_long = -expm1(-lam);
    return hz->w_short * f_short + (1.0 - hz->w_short) * f_long;
}

void nx_gen_hazard_truth(const nx_gen_hazard_t *hz, int64_t horizon_ms,
                         double p[NX_GEN_TYPES + 1]) {
    double f_in = -expm1(-hz->lambda * (double)horizon_ms); /* 1 - e^{-lambda H} */
    double f_gap = nx_gen_session_gap_cdf(hz, horizon_ms);
    for (int k = 0; k < NX_GEN_TYPES; k++)
        p[k] = hz->q * f_in * hz->pi[k];
    p[NX_GEN_CLICK] += (1.0 - hz->q) * f_gap;
    /* computed directly, not as 1 - sum, so a tiny p_none keeps its digits */
    p[NX_GEN_NONE] = hz->q * (1.0 - f_in) + (1.0 - hz->q) * (1.0 - f_gap);
}

int64_t nx_gen_hazard_draw(const nx_gen_hazard_t *hz, nx_gen_rng_t *rng, int *type,
                           int *new_session) {
    double gap;
    /* Always three uniforms, in this order, so the stream's use of the
     * generator does not depend on which branch is taken. */
    double u1 = nx_gen_rng_uniform(rng);
    double u2 = nx_gen_rng_uniform(rng);
    double u3 = nx_gen_rng_uniform(rng);
    if (u1 <= hz->q) {
        gap = -log(u2) / hz->lambda;
        double c = hz->pi[NX_GEN_CLICK];
        if (u3 <= c)
            *type = NX_GEN_CLICK;
        else if (u3 <= c + hz->pi[NX_GEN_CART])
            *type = NX_GEN_CART;
        else
            *type = NX_GEN_PURCHASE;
        *new_session = 0;
    } else {
        if (u2 <= hz->w_short)
            gap = -log(u3) / hz->mu_short;
        else
            gap = profile_inverse(hz->ts_ms, -log(u3) / (hz->mu_long * (double)MS_PER_HOUR));
        *type = NX_GEN_CLICK;
        *new_session = 1;
    }
    /* ceil: next.ts - ts <= H (whole ms) exactly when gap <= H, which is
     * what the truth states; at least 1 ms so time moves on. */
    double g = ceil(gap);
    if (g < 1.0)
        g = 1.0;
    if (g > 1e15) /* ~30000 years: a user who never comes back */
        g = 1e15;
    return (int64_t)g;
}

/* ---- stepping a user ------------------------------------------------------ */

static void recent_touch(nx_gen_user_t *user, uint32_t item) {
    for (int i = 0; i < NX_GEN_RECENT; i++) {
        if (user->recent[i] == item) {
            if (user->recent_views[i] < UINT16_MAX)
                user->recent_views[i]++;
            return;
        }
    }
    user->recent_head = (uint8_t)((user->recent_head + 1) % NX_GEN_RECENT);
    user->recent[user->recent_head] = item;
    user->recent_views[user->recent_head] = 1;
}

/* Probability that a click in a running session goes back to one of the
 * recently seen items; that a click stays in the session's category; that a
 * session opens in the user's favourite category. */
#define P_REVISIT       0.25
#define P_STAY_CATEGORY 0.85
#define P_FAVOURITE     0.6

/* Applies the pre-drawn next event of the heap's top user, draws the one
 * after it, and fills ev (no strings); returns the user's index. */
static uint32_t step(nx_gen_t *gen, nx_gen_event_t *ev, uint32_t *session_no) {
    const uint32_t C = gen->params.categories;
    uint32_t u = gen->heap[0];
    nx_gen_user_t *user = &gen->users[u];
    nx_gen_rng_t *rng = &gen->rng;
    int64_t t = user->next_ts;
    int type = user->next_type;
    uint32_t item = user->item;

    if (user->next_new_session) {
        user->session_no++;
        user->position = 0;
        user->carts = 0;
        user->cart_item = NO_ITEM;
        user->session_start = t;
        user->prev_ts = INT64_MIN;
    } else {
        user->prev_ts = user->last_ts;
    }
    /* u_a picks favourite-or-not (new session) or revisit-or-not; u_b
     * stay-in-category-or-not. */
    double u_a = nx_gen_rng_uniform(rng), u_b = nx_gen_rng_uniform(rng);
    if (type == NX_GEN_CLICK) {
        uint32_t cat;
        if (user->next_new_session)
            cat = u_a <= P_FAVOURITE ? user->fav_category : zipf_draw(gen->cat_cdf, C, rng);
        else if (u_b <= P_STAY_CATEGORY)
            cat = user->category;
        else
            cat = zipf_draw(gen->cat_cdf, C, rng);
        if (!user->next_new_session && u_a <= P_REVISIT) {
            /* back to a recent item: uniform over the filled ring slots */
            int filled = 0;
            for (int i = 0; i < NX_GEN_RECENT; i++)
                filled += user->recent[i] != NO_ITEM;
            int pick = (int)(nx_gen_rng_next(rng) % (uint64_t)filled); /* filled >= 1 */
            for (int i = 0; i < NX_GEN_RECENT; i++) {
                if (user->recent[i] == NO_ITEM)
                    continue;
                if (pick-- == 0) {
                    item = user->recent[i];
                    break;
                }
            }
        } else {
            item = zipf_draw(gen->item_cdf, gen->items_per_cat, rng) * C + cat;
        }
    } else if (type == NX_GEN_CART) {
        item = user->item; /* the item just viewed */
        user->cart_item = item;
        user->carts++;
    } else {
        item = user->cart_item != NO_ITEM ? user->cart_item : user->item;
        user->carts = 0;
        user->cart_item = NO_ITEM;
        user->last_purchase_ts = t;
    }
    uint32_t cat = item % C;
    user->cat_views = (!user->next_new_session && cat == user->category) ? user->cat_views + 1 : 1;
    recent_touch(user, item);
    user->position++;
    user->last_ts = t;
    user->item = item;
    user->category = cat;
    user->last_type = (uint8_t)type;

    ev->type = type;
    ev->type_name = gen->type_names[type];
    ev->ts_ms = t;
    ev->user = u;
    ev->item_index = item;
    ev->category_index = cat;
    ev->price = gen->item_price[item];
    if (type == NX_GEN_CLICK) {
        ev->quantity = 0;
    } else {
        /* 80 % buy one, 15 % two, 5 % three */
        double uq = nx_gen_rng_uniform(rng);
        ev->quantity = uq <= 0.80 ? 1 : uq <= 0.95 ? 2 : 3;
    }
    *session_no = user->session_no;

    nx_gen_hazard_compute(gen, user, t, &ev->hazard);
    nx_gen_hazard_truth(&ev->hazard, gen->params.horizon_ms, ev->p);
    int next_type, new_session;
    int64_t gap = nx_gen_hazard_draw(&ev->hazard, rng, &next_type, &new_session);
    user->next_ts = t + gap;
    user->next_type = (uint8_t)next_type;
    user->next_new_session = (uint8_t)new_session;
    heap_sift_down(gen, 0);
    return u;
}

static void finish_event(nx_gen_t *gen, nx_gen_event_t *ev, uint32_t session_no) {
    fmt_id(gen->user_buf, 'u', ev->user);
    fmt_id(gen->item_buf, 'i', ev->item_index);
    fmt_id(gen->cat_buf, 'c', ev->category_index);
    char *p = gen->session_buf;
    *p++ = 's';
    p = fmt_u32(p, ev->user);
    *p++ = '-';
    fmt_u32(p, session_no);
    ev->user_id = gen->user_buf;
    ev->item_id = gen->item_buf;
    ev->category = gen->cat_buf;
    ev->session_id = gen->session_buf;
    ev->index = gen->index++;
}

/* ---- reorder buffer (jitter) -------------------------------------------- */

static inline int buf_less(const pending_t *a, const pending_t *b) {
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static int buf_push(nx_gen_t *gen, const pending_t *x) {
    if (gen->buf_n == gen->buf_cap) {
        size_t cap = gen->buf_cap * 2;
        pending_t *nb = realloc(gen->buf, cap * sizeof *nb);
        if (!nb)
            return -1;
        gen->buf = nb;
        gen->buf_cap = cap;
    }
    size_t i = gen->buf_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!buf_less(x, &gen->buf[parent]))
            break;
        gen->buf[i] = gen->buf[parent];
        i = parent;
    }
    gen->buf[i] = *x;
    return 0;
}

static void buf_pop(nx_gen_t *gen, pending_t *out) {
    *out = gen->buf[0];
    pending_t last = gen->buf[--gen->buf_n];
    size_t n = gen->buf_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && buf_less(&gen->buf[c + 1], &gen->buf[c]))
            c++;
        if (!buf_less(&gen->buf[c], &last))
            break;
        gen->buf[i] = gen->buf[c];
        i = c;
    }
    if (n > 0)
        gen->buf[i] = last;
}

void nx_gen_next(nx_gen_t *gen, nx_gen_event_t *out) {
    uint32_t session_no;
    if (gen->params.jitter_ms == 0) {
        step(gen, out, &session_no);
        finish_event(gen, out, session_no);
        return;
    }
    /* Each event gets an emission key ts + U[0, jitter] (never before its
     * user's previous key, so per-user order holds). The buffered event with
     * the smallest key goes out once no event still to be generated can
     * have a smaller key: keys are >= ts >= the heap's next time. */
    for (;;) {
        int64_t next_ts = gen->users[gen->heap[0]].next_ts;
        if (gen->buf_n > 0 && gen->buf[0].key <= next_ts)
            break;
        pending_t pe;
        uint32_t u = step(gen, &pe.ev, &pe.session_no);
        int64_t delay =
            (int64_t)(nx_gen_rng_next(&gen->jitter_rng) % (uint64_t)(gen->params.jitter_ms + 1));
        pe.key = pe.ev.ts_ms + delay;
        if (pe.key < gen->user_key[u])
            pe.key = gen->user_key[u];
        gen->user_key[u] = pe.key;
        pe.seq = gen->seq++;
        if (buf_push(gen, &pe) < 0) {
            /* Out of memory for a longer buffer: emit this one now. Its
             * user's order still holds (its key is its user's latest); only
             * the global bound on lateness may be exceeded. */
            *out = pe.ev;
            finish_event(gen, out, pe.session_no);
            return;
        }
    }
    pending_t pe;
    buf_pop(gen, &pe);
    *out = pe.ev;
    finish_event(gen, out, pe.session_no);
}

/* ---- the oracle ------------------------------------------------------------ */

typedef struct oracle_pending {
    int64_t ts; /* INT64_MIN = none pending */
    double p[NX_GEN_TYPES + 1];
} oracle_pending_t;

struct nx_gen_oracle {
    uint32_t users;
    int64_t horizon_ms;
    int keep_scores;
    oracle_pending_t *pend; /* (users) */
    double *scores;         /* (n, NX_GEN_TYPES + 1) when keep_scores */
    uint8_t *labels;        /* (n) */
    size_t n, cap;
    nx_gen_oracle_report_t rep;
};

nx_gen_oracle_t *nx_gen_oracle_new(uint32_t users, int64_t horizon_ms, int keep_scores) {
    nx_gen_oracle_t *oracle = calloc(1, sizeof *oracle);
    if (!oracle)
        return NULL;
    oracle->users = users;
    oracle->horizon_ms = horizon_ms;
    oracle->keep_scores = keep_scores;
    oracle->pend = malloc((size_t)users * sizeof *oracle->pend);
    if (!oracle->pend) {
        free(oracle);
        return NULL;
    }
    for (uint32_t u = 0; u < users; u++)
        oracle->pend[u].ts = INT64_MIN;
    return oracle;
}

void nx_gen_oracle_destroy(nx_gen_oracle_t *oracle) {
    if (!oracle)
        return;
    free(oracle->labels);
    free(oracle->scores);
    free(oracle->pend);
    free(oracle);
}

static int oracle_label(nx_gen_oracle_t *oracle, const double p[NX_GEN_TYPES + 1], int label) {
    nx_gen_oracle_report_t *rep = &oracle->rep;
    rep->labelled++;
    rep->label_count[label]++;
    for (int k = 0; k <= NX_GEN_TYPES; k++) {
        rep->sum_p[k] += p[k];
        rep->sum_var[k] += p[k] * (1.0 - p[k]);
    }
    /* 1e-15 keeps log finite should a stated p round to 0 */
    rep->log_loss -= log(p[label] > 1e-15 ? p[label] : 1e-15);
    if (!oracle->keep_scores)
        return 0;
    if (oracle->n == oracle->cap) {
        size_t cap = oracle->cap ? oracle->cap * 2 : 4096;
        double *s = realloc(oracle->scores, cap * (NX_GEN_TYPES + 1) * sizeof *s);
        if (!s)
            return -1;
        oracle->scores = s;
        uint8_t *l = realloc(oracle->labels, cap);
        if (!l)
            return -1;
        oracle->labels = l;
        oracle->cap = cap;
    }
    memcpy(&oracle->scores[oracle->n * (NX_GEN_TYPES + 1)], p, (NX_GEN_TYPES + 1) * sizeof *p);
    oracle->labels[oracle->n++] = (uint8_t)label;
    return 0;
}

int nx_gen_oracle_add(nx_gen_oracle_t *oracle, const nx_gen_event_t *ev) {
    int rc = 0;
    oracle->rep.events++;
    oracle->rep.type_count[ev->type]++;
    oracle_pending_t *pe = &oracle->pend[ev->user];
    if (pe->ts != INT64_MIN) {
        int label = ev->ts_ms - pe->ts <= oracle->horizon_ms ? ev->type : NX_GEN_NONE;
        rc = oracle_label(oracle, pe->p, label);
    }
    pe->ts = ev->ts_ms;
    memcpy(pe->p, ev->p, sizeof pe->p);
    return rc;
}

/* qsort context-free comparator over (score, label) pairs */
typedef struct scored {
    double s;
    int y;
} scored_t;

static int scored_cmp(const void *a, const void *b) {
    double x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return (x > y) - (x < y);
}

/* ROC AUC by the rank-sum (Mann-Whitney) formula, ties given average rank. */
static double auc_of(scored_t *v, size_t n) {
    qsort(v, n, sizeof *v, scored_cmp);
    double pos = 0, rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].s == v[i].s)
            j++;
        double avg_rank = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
        for (size_t k = i; k < j; k++) {
            if (v[k].y) {
                pos++;
                rank_sum += avg_rank;
            }
        }
        i = j;
    }
    double neg = (double)n - pos;
    if (pos == 0 || neg == 0)
        return NAN;
    return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

void nx_gen_oracle_finish(nx_gen_oracle_t *oracle, int64_t end_ts, nx_gen_oracle_report_t *rep) {
    for (uint32_t u = 0; u < oracle->users; u++) {
        oracle_pending_t *pe = &oracle->pend[u];
        if (pe->ts != INT64_MIN && pe->ts + oracle->horizon_ms < end_ts)
            oracle_label(oracle, pe->p, NX_GEN_NONE); /* OOM only loses AUC precision */
        pe->ts = INT64_MIN;
    }
    *rep = oracle->rep;
    if (rep->labelled > 0)
        rep->log_loss /= (double)rep->labelled;
    for (int k = 0; k <= NX_GEN_TYPES; k++)
        rep->auc[k] = NAN;
    if (!oracle->keep_scores || oracle->n == 0)
        return;
    scored_t *v = malloc(oracle->n * sizeof *v);
    if (!v)
        return;
    for (int k = 0; k <= NX_GEN_TYPES; k++) {
        for (size_t i = 0; i < oracle->n; i++) {
            v[i].s = oracle->scores[i * (NX_GEN_TYPES + 1) + k];
            v[i].y = oracle->labels[i] == k;
        }
        rep->auc[k] = auc_of(v, oracle->n);
    }
    free(v);
}

int64_t nx_gen_encode_event(const nx_gen_event_t *ev, int64_t schema_id, void *buf, size_t cap) {
    nx_codec_record_t rec = {
        .user_id = ev->user_id,
        .ts_ms = ev->ts_ms,
        .event_type = ev->type_name,
        .item_id = ev->item_id,
        .category = ev->category,
        .price = ev->price,
        .has_quantity = ev->quantity > 0,
        .quantity = ev->quantity,
        .session_id = ev->session_id,
    };
    return nx_codec_encode_event(&rec, schema_id, buf, cap);
}
