/*
 * test_quality.c: the model against the truth, in-process.
 *
 * 200k events of the generator (10000 users, fixed seed) go through the
 * codec (encoded with nx_codec_encode_event, decoded as Kafka payloads) and
 * the pipeline, in polls of 1024 as the daemon does. Every prediction is
 * kept (JSON records parsed back) beside the generator's true
 * probabilities, and both are scored on the same examples against the
 * labels the stream itself gives (the type of the user's next event within
 * H, else none once the stream has passed ts + H; the rest censored):
 *
 * - the oracle figures computed here agree with nx_gen_oracle's (so the
 *   labels are the generator's);
 * - the model's progressive log loss is within 4% of the oracle's and its
 *   purchase AUC within 0.02 of the oracle's, over all 200k
 *   events (the cold start included) and over the second 100k; its cart
 *   AUC within CART_GAP_MAX over the second 100k;
 * - bad payloads mixed into the stream (1 in 100: truncated, trailing
 *   bytes, empty, negative length, random bytes) are all rejected by the
 *   codec and change none of the prediction records of the good events,
 *   byte for byte.
 *
 * Two ways to mix the bad payloads in: by default they come on top of the
 * poll batches, so the good events are batched as without them (the codec
 * and pipeline must keep no trace of a rejected payload); with
 * --bad-takes-slots a bad message takes a poll slot as in the daemon, so
 * batch boundaries move too and the pipeline must not depend on them
 * (pipeline.h's contract; test_quality_batches in replay.cmake).
 *
 * usage: test_quality [--bad-takes-slots] [--drift] [--seed S] [EXTRA.conf]
 * (S: the generator's seed, default SEED; EXTRA is appended to the test's
 * configuration, for measuring other settings). --drift measures how the
 * model follows a change: from the 100,000th event on, click and cart swap
 * names (and true probabilities); it prints the log-loss ratio in windows
 * after the change and checks LOGLOSS_RATIO_MAX before the change
 * and over the last 50k events (the model has caught up).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "config.h"
#include "gen.h"
#include "pipeline.h"

#define USERS  10000
#define EVENTS 200000
#define SEED   20261129 /* the generator's, unless --seed */
/* kafka.poll_batch's default: the daemon's batches. */
#define POLL 1024
/* One bad payload after a good one with this probability. */
#define BAD_RATE 0.01
/* The classes: click, cart, purchase, none (event_types' default order,
 * the generator's too). */
#define K 4
/* Probabilities are clamped to this before the log, for model and oracle
 * alike (JSON carries 9 significant digits; float32 underflow aside). */
#define P_MIN 1e-7
/* The quality bounds the model must hold against the oracle. */
#define LOGLOSS_RATIO_MAX 1.04
#define AUC_GAP_MAX       0.02
/* The cart AUC gap over the second 100k. Measured with the defaults on
 * generator seeds 20261129 / 7 / 99: 0.0188 / 0.0216 / 0.0191 (model seeds
 * 1, 5, 42 and 123: 0.0187-0.0221; OpenBLAS's Haswell, Sandybridge and
 * SkylakeX kernels within 0.0001 of each other); a store that forgets idle users after
 * two days (features.user_ttl_s = 172800, the default before) loses the
 * items a returning user comes back to, the generator's strongest cart
 * driver: 0.0282 / 0.0312 / 0.0287. */
#define CART_GAP_MAX 0.025

/* The stream, generated once. */
static uint8_t *arena;        /* encoded good payloads */
static size_t *pay_off;       /* EVENTS + 1 offsets into arena */
static uint32_t *user_of;     /* generator's user index */
static int64_t *ts_of;        /* ms */
static int8_t *type_of;       /* 0..2 */
static double (*truth)[K];    /* generator's P(next = k within H) */
static float (*pred[2])[K];   /* the model's, runs A (good only) and B (with bad) */
static uint64_t *rec_hash[2]; /* FNV-1a of each good event's record, runs A and B */
/* Bad payload before good event g: bad_arena[bad_off[g], bad_off[g + 1] - 1)
 * (one spare byte each, so an empty payload still marks its place). */
static uint8_t *bad_arena;
static size_t *bad_off;
static nx_gen_oracle_report_t oracle_rep;
static int64_t horizon_ms;
/* --bad-takes-slots: a bad message takes a poll slot, as in the daemon, so
 * the good events' batch boundaries move. */
static int bad_takes_slot;
static uint64_t gen_seed = SEED;
/* --drift: from the middle of the stream on, click and cart swap names (and
 * their true probabilities), a concept drift the model must follow */
static int drift;

/* splitmix64 of our own for the bad payloads. */
static uint64_t rng_state = 0x5eed0bad5eed0badULL;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis */
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL; /* FNV 64 prime */
    return h;
}

/* A bad payload from good payload g: each kind is one the codec must
 * reject (random bytes that happen to parse are redrawn as a truncation). */
static size_t make_bad(int g, uint8_t *buf, size_t cap) {
    const uint8_t *src = arena + pay_off[g];
    size_t n = pay_off[g + 1] - pay_off[g];
    switch (rnd() % 5) {
    case 0: /* truncated */
        memcpy(buf, src, n / 2);
        return n / 2;
    case 1: /* a trailing byte */
        memcpy(buf, src, n);
        buf[n] = 0;
        return n + 1;
    case 2: /* empty */
        return 0;
    case 3: /* the user id's length as -1 (zig-zag 0x01) */
        memcpy(buf, src, n);
        buf[0] = 0x01;
        return n;
    default: { /* random bytes */
        size_t m = 1 + rnd() % (cap < 64 ? cap : 64);
        for (size_t i = 0; i < m; i++)
            buf[i] = (uint8_t)rnd();
        return m;
    }
    }
}

static int generate(void) {
    char err[256];
    nx_gen_params_t params;
    nx_gen_params_default(&params);
    params.users = USERS;
    params.seed = gen_seed;
    horizon_ms = params.horizon_ms;
    nx_gen_t *gen = nx_gen_new(&params, err, sizeof err);
    nx_gen_oracle_t *oracle = nx_gen_oracle_new(USERS, params.horizon_ms, 1);
    size_t cap = (size_t)EVENTS * 160; /* an event is ~60-100 bytes encoded */
    arena = malloc(cap);
    pay_off = malloc((EVENTS + 1) * sizeof *pay_off);
    user_of = malloc(EVENTS * sizeof *user_of);
    ts_of = malloc(EVENTS * sizeof *ts_of);
    type_of = malloc(EVENTS * sizeof *type_of);
    truth = malloc(EVENTS * sizeof *truth);
    pred[0] = calloc(EVENTS, sizeof *pred[0]);
    pred[1] = calloc(EVENTS, sizeof *pred[1]);
    rec_hash[0] = calloc(EVENTS, sizeof(uint64_t));
    rec_hash[1] = calloc(EVENTS, sizeof(uint64_t));
    if (!gen || !oracle || !arena || !pay_off || !user_of || !ts_of || !type_of || !truth ||
        !pred[0] || !pred[1] || !rec_hash[0] || !rec_hash[1]) {
        fprintf(stderr, "generate: %s\n", gen ? "out of memory" : err);
        return -1;
    }
    size_t at = 0;
    for (int i = 0; i < EVENTS; i++) {
        nx_gen_event_t ev;
        nx_gen_next(gen, &ev);
        if (drift && i >= EVENTS / 2 && ev.type != NX_GEN_PURCHASE) {
            ev.type = NX_GEN_CLICK + NX_GEN_CART - ev.type;
            ev.type_name = params.type_names[ev.type];
            double p0 = ev.p[NX_GEN_CLICK];
            ev.p[NX_GEN_CLICK] = ev.p[NX_GEN_CART];
            ev.p[NX_GEN_CART] = p0;
        }
        pay_off[i] = at;
        int64_t n = nx_gen_encode_event(&ev, -1, arena + at, cap - at);
        CHECK(n > 0);
        at += n > 0 ? (size_t)n : 0;
        user_of[i] = ev.user;
        ts_of[i] = ev.ts_ms;
        type_of[i] = (int8_t)ev.type;
        for (int k = 0; k < K; k++)
            truth[i][k] = ev.p[k];
        CHECK(nx_gen_oracle_add(oracle, &ev) == 0);
    }
    pay_off[EVENTS] = at;

    /* the bad messages, drawn once: before good event g with BAD_RATE */
    size_t bcap = (size_t)(EVENTS * BAD_RATE * 4 + 64) * 256, bat = 0;
    bad_arena = malloc(bcap);
    bad_off = malloc((EVENTS + 1) * sizeof *bad_off);
    CHECK(bad_arena && bad_off);
    if (!bad_arena || !bad_off)
        return -1;
    for (int g = 0; g < EVENTS; g++) {
        bad_off[g] = bat;
        if (g > 0 && (double)(rnd() >> 11) * 0x1p-53 < BAD_RATE && bat + 256 < bcap)
            bat += make_bad(g - 1, bad_arena + bat, 128) + 1;
    }
    bad_off[EVENTS] = bat;
    nx_gen_oracle_finish(oracle, ts_of[EVENTS - 1], &oracle_rep);
    nx_gen_oracle_destroy(oracle);
    nx_gen_destroy(gen);
    return 0;
}

/* ---- running the pipeline -------------------------------------------------- */

typedef struct run_ctx {
    int run;      /* 0: good only, 1: with bad payloads */
    size_t next;  /* good events emitted so far */
    int bad_json; /* records whose probabilities did not parse */
} run_ctx_t;

static int emit(void *opaque, size_t index, const nx_event_t *ev, const void *rec, size_t len) {
    (void)index;
    (void)ev;
    run_ctx_t *ctx = opaque;
    if (ctx->next >= EVENTS)
        return -1;
    /* {"click":p,"cart":p,"purchase":p,"none":p}, in class order; the
     * rest of the record is hashed */
    const char *r = rec, *p = memmem(rec, len, "\"probabilities\":{", 17);
    const char *end = p ? memchr(p, '}', len - (size_t)(p - r)) : NULL;
    if (!p || !end) {
        ctx->bad_json++;
        ctx->next++;
        return 0;
    }
    rec_hash[ctx->run][ctx->next] =
        fnv1a(r, (size_t)(p - r)) ^ (fnv1a(end, len - (size_t)(end - r)) * 31);
    p += 17;
    for (int k = 0; p && k < K; k++) {
        p = memchr(p, ':', (size_t)(end - p));
        if (p)
            pred[ctx->run][ctx->next][k] = strtof(++p, NULL);
    }
    ctx->bad_json += p == NULL;
    ctx->next++;
    return 0;
}

/* Runs the stream through codec + pipeline. with_bad: mix bad payloads in.
 * Good events carry the same offsets in both runs (their place in the
 * mixed stream), so their records can be compared byte for byte. */
static int run(const nx_config_t *cfg, int with_bad, nx_pipeline_stats_t *st_out, double *secs) {
    char err[256];
    static const uint8_t key[16] = "nextact-quality";
    run_ctx_t ctx = {.run = with_bad};
    nx_pipeline_out_t out = {emit, &ctx};
    nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
    nx_pipeline_t *pipe = codec ? nx_pipeline_new(cfg, key, 0, &out, err, sizeof err) : NULL;
    nx_event_t *evs = malloc(POLL * sizeof *evs);
    if (!codec || !pipe || !evs) {
        fprintf(stderr, "run: %s\n", err);
        nx_pipeline_destroy(pipe);
        nx_codec_destroy(codec);
        free(evs);
        return -1;
    }
    const char *topics[] = {"in"};
    /* a fixed "wall clock": prediction time must not depend on batch ends */
    const int64_t now = ts_of[0];
    int64_t offset = 0;
    long bad_fed = 0, bad_accepted = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int g = 0, bad_done = 0;
    while (g < EVENTS) {
        int n = 0;
        for (int polled = 0; polled < POLL && g < EVENTS; polled++) {
            if (bad_off[g] != bad_off[g + 1] && !bad_done) {
                /* a bad message before good event g: it takes an offset in
                 * both runs, and a poll slot when it is there */
                offset++;
                bad_done = 1;
                if (with_bad) {
                    nx_event_t ev;
                    bad_fed++;
                    nx_codec_reason_t r =
                        nx_codec_decode(codec, bad_arena + bad_off[g],
                                        bad_off[g + 1] - bad_off[g] - 1, 0, INT64_MAX, &ev);
                    if (r == NX_CODEC_OK || r == NX_CODEC_SKIPPED)
                        bad_accepted++;
                    if (!bad_takes_slot)
                        polled--; /* the same batches of good events as run A */
                    continue;
                }
            }
            nx_event_t *ev = &evs[n];
            nx_codec_reason_t r = nx_codec_decode(codec, arena + pay_off[g],
                                                  pay_off[g + 1] - pay_off[g], 0, INT64_MAX, ev);
            CHECK_INT(r, NX_CODEC_OK);
            ev->partition = 0;
            ev->offset = offset++;
            n += r == NX_CODEC_OK;
            g++;
            bad_done = 0;
        }
        nx_pipeline_process(pipe, evs, (size_t)n, topics, now);
        nx_pipeline_tick(pipe, now);
    }
    nx_pipeline_finish(pipe);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    nx_pipeline_stats(pipe, st_out);
    CHECK_INT(ctx.next, EVENTS);
    CHECK_INT(ctx.bad_json, 0);
    if (with_bad) {
        CHECK(bad_fed > EVENTS * BAD_RATE / 2);
        CHECK_INT(bad_accepted, 0);
        printf("run with bad payloads: %ld bad fed, %ld accepted\n", bad_fed, bad_accepted);
    }
    free(evs);
    nx_pipeline_destroy(pipe);
    nx_codec_destroy(codec);
    return 0;
}

/* ---- scoring ----------------------------------------------------------------- */

/* Labels from the stream: the type of the user's next event within H,
 * NX_GEN_NONE once the stream's end is past ts + H, else -1 (censored). */
static int8_t *make_labels(void) {
    int8_t *label = malloc(EVENTS);
    int32_t *last = malloc(USERS * sizeof *last);
    if (!label || !last)
        return NULL;
    for (int u = 0; u < USERS; u++)
        last[u] = -1;
    for (int i = 0; i < EVENTS; i++) {
        int32_t j = last[user_of[i]];
        if (j >= 0)
            label[j] = ts_of[i] - ts_of[j] <= horizon_ms ? type_of[i] : NX_GEN_NONE;
        last[user_of[i]] = i;
        label[i] = -1;
    }
    int64_t end = ts_of[EVENTS - 1];
    for (int u = 0; u < USERS; u++) {
        int32_t j = last[u];
        if (j >= 0 && ts_of[j] + horizon_ms < end)
            label[j] = NX_GEN_NONE;
    }
    free(last);
    return label;
}

typedef struct score_item {
    double s;
    int pos;
} score_item_t;

static int cmp_score(const void *a, const void *b) {
    double x = ((const score_item_t *)a)->s, y = ((const score_item_t *)b)->s;
    return (x > y) - (x < y);
}

/* Exact ROC AUC (ties count one half) of class k over labelled examples
 * in [from, to). model: 1 for pred, 0 for truth. */
static double auc_of(const int8_t *label, int k, int model, int from, int to) {
    score_item_t *it = malloc((size_t)EVENTS * sizeof *it);
    size_t n = 0;
    for (int i = from; i < to; i++) {
        if (label[i] < 0)
            continue;
        it[n].s = model ? (double)pred[0][i][k] : truth[i][k];
        it[n].pos = label[i] == k;
        n++;
    }
    qsort(it, n, sizeof *it, cmp_score);
    double rank_sum = 0, n_pos = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && it[j].s == it[i].s)
            j++;
        double mid = (double)(i + j + 1) / 2; /* average 1-based rank of the tie */
        for (size_t t = i; t < j; t++) {
            if (it[t].pos) {
                rank_sum += mid;
                n_pos++;
            }
        }
        i = j;
    }
    free(it);
    double n_neg = (double)n - n_pos;
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg);
}

static double logloss_of(const int8_t *label, int model, int from, int to, long *count) {
    double sum = 0;
    long n = 0;
    for (int i = from; i < to; i++) {
        if (label[i] < 0)
            continue;
        double p = model ? (double)pred[0][i][label[i]] : truth[i][label[i]];
        sum -= log(p > P_MIN ? p : P_MIN);
        n++;
    }
    if (count)
        *count = n;
    return sum / (double)n;
}

/* The model's log loss minus the oracle's, summed over the labelled
 * examples in [from, to), in percent of total. */
static double excess_share(const int8_t *label, int from, int to, double total) {
    double ex = 0;
    for (int i = from; i < to; i++) {
        if (label[i] < 0)
            continue;
        double pm = pred[0][i][label[i]], po = truth[i][label[i]];
        ex += log(po > P_MIN ? po : P_MIN) - log(pm > P_MIN ? pm : P_MIN);
    }
    return 100 * ex / total;
}

static nx_config_t *load_config(const char *extra) {
    char path[] = "/tmp/test_quality.XXXXXX", err[512];
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "log_level = \"warning\";\n"
            "kafka: { brokers = \"none\"; input_topics = [\"in\"]; output_topic = \"out\"; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { format = \"json\"; schema = \"%s/conf/schemas/prediction.avsc\"; };\n",
            NX_SOURCE_DIR, NX_SOURCE_DIR);
    if (extra) {
        FILE *x = fopen(extra, "r");
        char line[1024];
        while (x && fgets(line, sizeof line, x))
            fputs(line, f);
        if (x)
            fclose(x);
        else
            fprintf(stderr, "cannot read %s\n", extra);
    }
    fclose(f);
    nx_config_t *cfg = nx_config_load(path, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    unlink(path);
    return cfg;
}

int main(int argc, char **argv) {
    int a = 1;
    if (a < argc && strcmp(argv[a], "--bad-takes-slots") == 0) {
        bad_takes_slot = 1;
        a++;
    }
    if (a < argc && strcmp(argv[a], "--drift") == 0) {
        drift = 1;
        a++;
    }
    if (a + 1 < argc && strcmp(argv[a], "--seed") == 0) {
        gen_seed = strtoull(argv[a + 1], NULL, 0);
        a += 2;
    }
    nx_config_t *cfg = load_config(a < argc ? argv[a] : NULL);
    CHECK(cfg != NULL);
    if (!cfg || generate() < 0)
        return nx_check_exit("test_quality");
    CHECK_INT(cfg->labels.horizon_s * 1000, horizon_ms);

    nx_pipeline_stats_t st;
    double secs;
    CHECK(run(cfg, 0, &st, &secs) == 0);
    printf("run: %d events in %.2f s (%.0f events/s), %llu steps; pipeline's own figures: "
           "log loss %.4f, purchase AUC %.4f\n",
           EVENTS, secs, EVENTS / secs, (unsigned long long)st.steps, st.logloss, st.auc[2]);

    int8_t *label = make_labels();
    CHECK(label != NULL);
    if (!label)
        return nx_check_exit("test_quality");
    long n_lab;
    double ll_model = logloss_of(label, 1, 0, EVENTS, &n_lab);
    double ll_oracle = logloss_of(label, 0, 0, EVENTS, NULL);
    double auc_model = auc_of(label, NX_GEN_PURCHASE, 1, 0, EVENTS);
    double auc_oracle = auc_of(label, NX_GEN_PURCHASE, 0, 0, EVENTS);
    /* the second half: the model after warm-up */
    double ll_model2 = logloss_of(label, 1, EVENTS / 2, EVENTS, NULL);
    double ll_oracle2 = logloss_of(label, 0, EVENTS / 2, EVENTS, NULL);
    double auc_model2 = auc_of(label, NX_GEN_PURCHASE, 1, EVENTS / 2, EVENTS);
    double auc_oracle2 = auc_of(label, NX_GEN_PURCHASE, 0, EVENTS / 2, EVENTS);
    double cart_model2 = auc_of(label, NX_GEN_CART, 1, EVENTS / 2, EVENTS);
    double cart_oracle2 = auc_of(label, NX_GEN_CART, 0, EVENTS / 2, EVENTS);
    printf("%ld labelled examples of %d\n", n_lab, EVENTS);
    printf("all events:      log loss model %.4f oracle %.4f (ratio %.4f); purchase AUC model "
           "%.4f oracle %.4f (gap %.4f)\n",
           ll_model, ll_oracle, ll_model / ll_oracle, auc_model, auc_oracle,
           auc_oracle - auc_model);
    printf("second 100k:     log loss model %.4f oracle %.4f (ratio %.4f); purchase AUC model "
           "%.4f oracle %.4f (gap %.4f)\n",
           ll_model2, ll_oracle2, ll_model2 / ll_oracle2, auc_model2, auc_oracle2,
           auc_oracle2 - auc_model2);
    printf("second 100k:     cart AUC model %.4f oracle %.4f (gap %.4f)\n", cart_model2,
           cart_oracle2, cart_oracle2 - cart_model2);
    /* where the excess loss lies (the cold start): per tenth of the run,
     * then per 1000 events over its first 20k */
    printf("excess log loss per tenth of the run (%% of the run's oracle loss):");
    for (int t = 0; t < 10; t++)
        printf(" %.2f", excess_share(label, t * (EVENTS / 10), (t + 1) * (EVENTS / 10),
                                     ll_oracle * (double)n_lab));
    printf("\n  over its first 20k, per 1000 events:");
    for (int t = 0; t < 20; t++)
        printf(" %.2f", excess_share(label, t * 1000, (t + 1) * 1000, ll_oracle * (double)n_lab));
    printf("\npurchase AUC gap per tenth of the run:");
    for (int t = 0; t < 10; t++)
        printf(" %.4f",
               auc_of(label, NX_GEN_PURCHASE, 0, t * (EVENTS / 10), (t + 1) * (EVENTS / 10)) -
                   auc_of(label, NX_GEN_PURCHASE, 1, t * (EVENTS / 10), (t + 1) * (EVENTS / 10)));
    printf("\n");
    for (int k = 0; k < K; k++)
        printf("  AUC %-8s model %.4f oracle %.4f\n", k == 3 ? "none" : cfg->event_types.v[k],
               auc_of(label, k, 1, 0, EVENTS), auc_of(label, k, 0, 0, EVENTS));

    /* our labels are the generator's: same oracle figures */
    CHECK_INT(n_lab, oracle_rep.labelled);
    CHECK_NEAR(ll_oracle, oracle_rep.log_loss, 1e-3);
    if (!isnan(oracle_rep.auc[NX_GEN_PURCHASE]))
        CHECK_NEAR(auc_oracle, oracle_rep.auc[NX_GEN_PURCHASE], 1e-3);
    /* the pipeline's progressive figures agree with ours */
    CHECK_NEAR(st.logloss, ll_model, 0.01 * ll_model);

    /* the bounds over the whole run, cold start included, and over the
     * second half (the model that has seen 100k events). Measured with
     * the defaults (lr 0.01 decaying to a floor of 0.001, one hidden
     * layer of 32, output layer initialised at 0.1 x Xavier), generator
     * seeds 20261129 / 7 / 99: whole run ratio 1.026 / 1.027 / 1.027, AUC
     * gap 0.012 / 0.016 / 0.014; second half 1.014 / 1.013 / 1.015 and
     * 0.006 / 0.006 / 0.011. The thinnest margin is the whole run's AUC
     * gap on seed 7: 0.018 with model.seed 1 or 123 (0.0155 with 42); the
     * cold start's first 20k events carry most of it (gap 0.07 there).
     * The defaults before (constant lr 0.001, [64, 32], plain Xavier):
     * whole run 1.060, gap 0.020; second half 1.019, 0.009 (seed
     * 20261129). */
    if (!drift) {
        CHECK(ll_model <= LOGLOSS_RATIO_MAX * ll_oracle);
        CHECK(auc_oracle - auc_model <= AUC_GAP_MAX);
        CHECK(ll_model2 <= LOGLOSS_RATIO_MAX * ll_oracle2);
        CHECK(auc_oracle2 - auc_model2 <= AUC_GAP_MAX);
        CHECK(cart_oracle2 - cart_model2 <= CART_GAP_MAX);
    } else {
        /* the first half is the stationary stream; then the ratio in
         * windows after the change, and the excess over them all */
        static const int edge[] = {EVENTS / 2,         EVENTS / 2 + 5000,  EVENTS / 2 + 10000,
                                   EVENTS / 2 + 20000, EVENTS / 2 + 50000, EVENTS};
        double ll1 = logloss_of(label, 1, 0, EVENTS / 2, NULL);
        printf("drift: first half ratio %.4f; after the change, log-loss ratio in events",
               ll1 / logloss_of(label, 0, 0, EVENTS / 2, NULL));
        for (size_t w = 0; w + 1 < sizeof edge / sizeof edge[0]; w++)
            printf(" [%dk,%dk) %.4f", edge[w] / 1000, edge[w + 1] / 1000,
                   logloss_of(label, 1, edge[w], edge[w + 1], NULL) /
                       logloss_of(label, 0, edge[w], edge[w + 1], NULL));
        printf("\n");
        /* LOGLOSS_RATIO_MAX before the change, and again over the
         * last 50k events: the model has followed it. Measured, ratio over
         * [150k, 200k), seeds 20261129 / 7: the defaults 1.014 / 1.014;
         * with lr_decay 0.05, so that the rate is at its floor by the
         * change, lr_floor 0.3: 1.014 / 1.012, 0.1: 1.016 / 1.017, 0.03:
         * 1.034 / 1.039, and 0 (the rate decayed to 6e-5, a daemon that
         * has stopped learning): 1.243 / 1.311, failing here. */
        CHECK(ll1 <= LOGLOSS_RATIO_MAX * logloss_of(label, 0, 0, EVENTS / 2, NULL));
        CHECK(logloss_of(label, 1, edge[4], EVENTS, NULL) <=
              LOGLOSS_RATIO_MAX * logloss_of(label, 0, edge[4], EVENTS, NULL));
    }

    /* bad payloads change none of the good events' records, byte for byte
     * (checked as the record without its probabilities, hashed, and the
     * probabilities as floats, so a failure says which part moved) */
    CHECK(run(cfg, 1, &st, &secs) == 0);
    long differ = 0, bits = 0;
    double max_diff = 0;
    for (int i = 0; i < EVENTS; i++) {
        differ += rec_hash[0][i] != rec_hash[1][i];
        int same_bits = 1;
        for (int k = 0; k < K; k++) {
            double d = fabs((double)pred[0][i][k] - (double)pred[1][i][k]);
            max_diff = d > max_diff ? d : max_diff;
            same_bits &= pred[0][i][k] == pred[1][i][k];
        }
        bits += !same_bits;
    }
    printf("with bad payloads: %ld records differ outside the probabilities; %ld in the "
           "probabilities, by at most %.3g\n",
           differ, bits, max_diff);
    CHECK_INT(differ, 0);
    CHECK(max_diff == 0.0);

    free(label);
    nx_config_destroy(cfg);
    return nx_check_exit("test_quality");
}
