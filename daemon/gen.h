/*
 * gen.h: a deterministic, realistic clickstream generator that knows the
 * truth (`nextactd gen`).
 *
 * The process. Users (U of them, activity Zipf by rank) browse in sessions.
 * After each event of a user, the user's NEXT event is drawn at once from a
 * competing-hazards process whose parameters depend only on that user's
 * history up to and including this event (the latent activity rate of the
 * user aside):
 *
 *   - with probability q the session continues: the gap is Exp(lambda) and
 *     the type is drawn from pi (click, cart, purchase);
 *   - otherwise the session ends and the next session starts with a click
 *     after a gap drawn from a mixture: with probability w_short a quick
 *     return, Exp(mu_short) (abandoned carts come back), else a
 *     non-homogeneous Poisson arrival with rate mu_long * m(hour of week),
 *     m being a fixed time-of-week profile of mean 1.
 *
 * q, lambda and pi depend on the session position and duration, the gap
 * since the previous event, revisits of the same item and category, cart
 * adds in the session, the item's price, a purchase in the last 24 h and the
 * hour of day. So for each event the TRUE probability of the user's next
 * action within the horizon H is known in closed form:
 *
 *   P(k within H) = q (1 - e^{-lambda H}) pi_k + (1 - q) F(H) [k = click]
 *   P(none)       = q e^{-lambda H} + (1 - q) (1 - F(H))
 *
 * where F is the session-gap CDF. Timestamps are whole ms: the next event is
 * at ts + ceil(gap), so "next.ts - ts <= H_ms" holds exactly when the drawn
 * gap is <= H: the truth is exact for the stream, not an approximation.
 *
 * Guarantees. Same params (seed included) give a bit-identical stream on
 * any machine with IEEE doubles and a correctly rounded libm; no rand(),
 * one seeded xoshiro256** stream per generator. Events come out in time order
 * (ties by user index); with jitter_ms > 0 they come out of order by at most
 * jitter_ms, but each user's own events stay in order. nx_gen_next costs
 * O(log U) (users sit in a binary heap keyed by their pre-drawn next event
 * time) and allocates nothing once the small reorder buffer has warmed up;
 * memory is O(U + items / categories). Not thread-safe: one generator per
 * thread.
 *
 * Ownership: nx_gen_new copies what it needs from params (type names
 * included). The strings in nx_gen_event_t belong to the generator and are
 * valid until the next call to nx_gen_next or nx_gen_destroy.
 *
 * No Kafka, Avro or libconfig here: daemon/gen_cmd.c is the command line
 * that writes the stream to an Avro file or a Kafka topic.
 */
#ifndef NX_GEN_H
#define NX_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* The three event roles the process knows. Their names are parameters. */
#define NX_GEN_CLICK    0
#define NX_GEN_CART     1
#define NX_GEN_PURCHASE 2
#define NX_GEN_TYPES    3
/* Index of `none` in probability vectors: p[NX_GEN_TYPES + 1]. */
#define NX_GEN_NONE NX_GEN_TYPES

/* Items kept in a user's recent-items ring (for revisits). */
#define NX_GEN_RECENT 8

/* Seeded generator: the model's xoshiro256** seeded by splitmix64
 * (model/rng.h). Small enough to copy, so tests can fork it. */
typedef nx_rng_t nx_gen_rng_t;

void nx_gen_rng_seed(nx_gen_rng_t *rng, uint64_t seed);
uint64_t nx_gen_rng_next(nx_gen_rng_t *rng);
/* Uniform on (0, 1]: never 0, so -log(u) is finite. */
double nx_gen_rng_uniform(nx_gen_rng_t *rng);

typedef struct nx_gen_params {
    uint32_t users;      /* U >= 1 */
    uint32_t items;      /* >= categories */
    uint32_t categories; /* >= 1 */
    uint64_t seed;
    int64_t start_ms;                     /* simulated clock start, ms since the epoch */
    int64_t horizon_ms;                   /* H, for the truth; > 0 */
    int64_t jitter_ms;                    /* max out-of-order delay, 0 = strict time order */
    double user_zipf;                     /* activity of user of rank r ~ r^-s */
    double item_zipf;                     /* item popularity within a category */
    double category_zipf;                 /* category popularity */
    const char *type_names[NX_GEN_TYPES]; /* click, cart, purchase roles */
} nx_gen_params_t;

/* Fills the defaults: 10000 users, 20000 items, 50 categories, seed 1,
 * start 2026-01-05 00:00 UTC (a Monday), H = 30 min, no jitter, exponents
 * 0.8 / 1.0 / 0.9, types "click", "cart", "purchase". */
void nx_gen_params_default(nx_gen_params_t *params);

/* What the generator remembers of a user: only observable history (plus the
 * latent activity rate and the pre-drawn next event). */
typedef struct nx_gen_user {
    int64_t next_ts;                /* ms, pre-drawn time of the next event */
    int64_t last_ts;                /* ms, latest event, INT64_MIN = none yet */
    int64_t prev_ts;                /* ms, the event before it in the session, INT64_MIN = none */
    int64_t session_start;          /* ms */
    int64_t last_purchase_ts;       /* ms, INT64_MIN = never */
    double activity;                /* latent: sessions per day at m = 1 */
    uint32_t session_no;            /* sessions started so far */
    uint32_t position;              /* events so far in the current session */
    uint32_t carts;                 /* cart adds since the session start or last purchase */
    uint32_t cat_views;             /* events in the current category in this session */
    uint32_t item;                  /* item of the latest event */
    uint32_t category;              /* category of the latest event */
    uint32_t cart_item;             /* latest carted item, UINT32_MAX = none */
    uint32_t fav_category;          /* latent: the category sessions tend to open in */
    uint32_t recent[NX_GEN_RECENT]; /* recently seen items, ring */
    uint16_t recent_views[NX_GEN_RECENT]; /* views of each */
    uint8_t recent_head;
    uint8_t last_type; /* type of the latest event */
    uint8_t next_type; /* pre-drawn type of the next event */
    uint8_t next_new_session;
} nx_gen_user_t;

/* The next-event law fixed at one event (see the top of this file). */
typedef struct nx_gen_hazard {
    int64_t ts_ms;           /* the event it is anchored at */
    double q;                /* P(session continues) */
    double lambda;           /* per ms, within-session arrival rate */
    double pi[NX_GEN_TYPES]; /* type of a continuation, sums to 1 */
    double w_short;          /* P(quick return | session ends) */
    double mu_short;         /* per ms */
    double mu_long;          /* per ms of profile time (m = 1) */
} nx_gen_hazard_t;

/* One generated event. Strings: NUL-terminated, owned by the generator,
 * valid until the next nx_gen_next or nx_gen_destroy. */
typedef struct nx_gen_event {
    uint64_t index;         /* 0-based position in the stream */
    const char *user_id;    /* "u<rank>", rank 0 = most active */
    const char *item_id;    /* "i<n>" */
    const char *category;   /* "c<n>" */
    const char *session_id; /* "s<rank>-<session no>" */
    const char *type_name;
    int32_t type; /* NX_GEN_CLICK, _CART, _PURCHASE */
    int64_t ts_ms;
    double price;     /* unit price, 2 decimals */
    int32_t quantity; /* 0 (absent) for clicks, >= 1 otherwise */
    uint32_t user;    /* user index (rank) */
    uint32_t item_index;
    uint32_t category_index;
    double p[NX_GEN_TYPES + 1]; /* truth: P(next of this user within H is k), p[NX_GEN_NONE] */
    nx_gen_hazard_t hazard;     /* the law those come from */
} nx_gen_event_t;

typedef struct nx_gen nx_gen_t;

/* Returns NULL and writes why into errstr on bad params or OOM.
 * Caller frees with nx_gen_destroy. */
nx_gen_t *nx_gen_new(const nx_gen_params_t *params, char *errstr, size_t errstr_size);

/* Produces the next event into *out (never runs dry). */
void nx_gen_next(nx_gen_t *gen, nx_gen_event_t *out);

void nx_gen_destroy(nx_gen_t *gen);

/* The params in force (type names point into the generator). */
const nx_gen_params_t *nx_gen_params(const nx_gen_t *gen);

/* Current state of user `user` (read-only view, valid until the next
 * nx_gen_next). Right after an event of that user is returned with
 * jitter_ms = 0 it is the state at that event. */
const nx_gen_user_t *nx_gen_user(const nx_gen_t *gen, uint32_t user);

/* The hazard at an event of type `type` at ts_ms, for a user whose state
 * (already updated by that event) is *user. Pure: depends on nothing else
 * but the generator's fixed item prices. */
void nx_gen_hazard_compute(const nx_gen_t *gen, const nx_gen_user_t *user, int64_t ts_ms,
                           nx_gen_hazard_t *hz);

/* P(next event within horizon_ms and of type k), k < NX_GEN_TYPES, and
 * p[NX_GEN_NONE]; sums to 1. */
void nx_gen_hazard_truth(const nx_gen_hazard_t *hz, int64_t horizon_ms, double p[NX_GEN_TYPES + 1]);

/* Draws the next event from hz: returns the gap in ms (>= 1), its type in
 * *type and whether it opens a new session in *new_session. */
int64_t nx_gen_hazard_draw(const nx_gen_hazard_t *hz, nx_gen_rng_t *rng, int *type,
                           int *new_session);

/* Session-gap CDF F(h) at an end of session anchored at hz->ts_ms. */
double nx_gen_session_gap_cdf(const nx_gen_hazard_t *hz, int64_t h_ms);

/*
 * The oracle: scores the truth against the labels the stream itself gives
 * (the type of the same user's next event if it comes within H, else none).
 * Feed every event in stream order; labels resolve as the user's next event
 * arrives. Per-user order is all it needs, so jittered streams work too.
 */
typedef struct nx_gen_oracle nx_gen_oracle_t;

typedef struct nx_gen_oracle_report {
    uint64_t events;                   /* fed */
    uint64_t type_count[NX_GEN_TYPES]; /* events of each type */
    uint64_t labelled;                 /* examples with a known label */
    uint64_t label_count[NX_GEN_TYPES + 1];
    double sum_p[NX_GEN_TYPES + 1];   /* sum of stated p over labelled examples */
    double sum_var[NX_GEN_TYPES + 1]; /* sum of p (1 - p): variance of the count */
    double log_loss;                  /* mean multi-class log loss, nats */
    double auc[NX_GEN_TYPES + 1];     /* one-vs-rest ROC AUC, NaN if not kept */
} nx_gen_oracle_report_t;

/* keep_scores = 1 keeps one score per class and example (for AUC; 20 bytes
 * an example), 0 keeps O(U) memory only. NULL on OOM. */
nx_gen_oracle_t *nx_gen_oracle_new(uint32_t users, int64_t horizon_ms, int keep_scores);

/* Returns -1 on OOM (score arrays), 0 otherwise. */
int nx_gen_oracle_add(nx_gen_oracle_t *oracle, const nx_gen_event_t *ev);

/* Resolves pending examples whose horizon ended before end_ts as `none`
 * (the rest are censored and left out) and fills *rep. Call once. */
void nx_gen_oracle_finish(nx_gen_oracle_t *oracle, int64_t end_ts, nx_gen_oracle_report_t *rep);

void nx_gen_oracle_destroy(nx_gen_oracle_t *oracle);

/* Encodes ev as raw Avro binary per conf/schemas/event.avsc, with the
 * Confluent header for schema_id >= 0 (nx_codec_encode_event): the payload
 * the demo, the tests and the benchmarks produce. Returns the length, or
 * -1 if buf is too small. Allocates nothing. */
int64_t nx_gen_encode_event(const nx_gen_event_t *ev, int64_t schema_id, void *buf, size_t cap);

/* `nextactd gen ...` (argv[0] = "gen"); daemon/gen_cmd.c. Returns the exit
 * status: 0, 1 on failure, 2 (EX_USAGE-like) on bad arguments. */
int nx_gen_main(int argc, char **argv);

#endif /* NX_GEN_H */
