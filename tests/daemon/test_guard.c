/*
 * test_guard: reasons and the model guard, through the pipeline as replay
 * runs it (in process, on the generator's stream).
 *
 * Reasons (output.explain = 3):
 * - the records are byte-identical however the input is cut into batches;
 * - every record served by the model carries 3 reasons, largest
 *   contribution first, named from the feature list;
 * - explaining purchase (output.explain_class), the reasons of the strong
 *   purchase predictions name the signals the generator's oracle drives
 *   purchases with (cart activity and revisits of the same item) far more
 *   often than chance;
 * - the summary holds every feature's importance.
 * (That contributions add up to the score's difference from the baseline is
 * tested on the network itself, tests/model test_explain.)
 * The guard:
 * - a fresh pipeline serves the prior (warming) first, then the model
 *   (serving) once the model beats it;
 * - a burst of scrambled labels makes it roll back, and quality after the
 *   burst comes back to within 5% of a run without the burst;
 * - an absurd feature value (a price of +inf, which the codec would refuse
 *   but the store must survive) changes nothing: it counts as no price;
 * - an absurd learning rate makes the model diverge: the guard rolls back;
 * - no record in any run has a probability that is not in [0, 1];
 * - on its own (guard.h), window by window: warming until the model beats
 *   the prior, a non-finite output rolls back at once (once per window) and
 *   lowers the learning rate, a window back within the margin restores it,
 *   one bad window does not roll back and two do, a guard that is off never
 *   acts.
 *
 * usage: test_guard [SOURCE_DIR]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "config.h"
#include "gen.h"
#include "guard.h"
#include "pipeline.h"

#define EVENTS 120000
#define USERS  3000
/* A purchase probability this high is a strong prediction on this stream
 * (purchases are ~2% of next actions). */
#define PURCHASE_HIGH 0.2f

static const char *srcdir;
static nx_event_t *events; /* EVENTS decoded events */
static uint8_t *arena;     /* their payloads (user ids point here) */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL; /* FNV-1a 64 prime */
    return h;
}

static nx_config_t *config(const char *extra) {
    char path[] = "/tmp/test_guard.XXXXXX", err[512];
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return NULL;
    fprintf(f,
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "kafka: { brokers = \"mock\"; input_topics = [\"in\"]; output_topic = \"out\"; };\n"
            "%s\n",
            srcdir, extra);
    fclose(f);
    nx_config_t *cfg = nx_config_load(path, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "config: %s\n", err);
    unlink(path);
    return cfg;
}

/* The generator's stream, decoded once; with scramble, the types of
 * events [from, to) are drawn at random (a burst of labels that say
 * nothing). */
static int generate(nx_config_t *cfg, uint64_t scramble_from, uint64_t scramble_to) {
    char err[256];
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = USERS;
    gp.seed = 5;
    nx_gen_t *gen = nx_gen_new(&gp, err, sizeof err);
    nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
    free(arena);
    free(events);
    arena = malloc((size_t)EVENTS * 256);
    events = malloc(EVENTS * sizeof *events);
    if (!gen || !codec || !arena || !events) {
        fprintf(stderr, "generate: %s\n", err);
        return -1;
    }
    uint64_t rng = 0x243f6a8885a308d3ULL;
    size_t at = 0;
    for (int i = 0; i < EVENTS; i++) {
        nx_gen_event_t ge;
        nx_gen_next(gen, &ge);
        if ((uint64_t)i >= scramble_from && (uint64_t)i < scramble_to) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            ge.type = (int)(rng % 3);
            ge.type_name = gp.type_names[ge.type];
        }
        int64_t n = nx_gen_encode_event(&ge, -1, arena + at, 256);
        if (n <= 0) {
            fprintf(stderr, "encode %d: %lld\n", i, (long long)n);
            return -1;
        }
        nx_codec_reason_t why =
            nx_codec_decode(codec, arena + at, (size_t)n, 0, INT64_MAX, &events[i]);
        if (why != NX_CODEC_OK) {
            fprintf(stderr, "decode %d: %s\n", i, nx_codec_reason_name(why));
            return -1;
        }
        events[i].partition = 0;
        events[i].offset = i;
        at += (size_t)n;
    }
    nx_codec_destroy(codec);
    nx_gen_destroy(gen);
    return 0;
}

typedef struct out {
    uint64_t hash; /* of every record, in order */
    long records, bad_probs, warming, serving, fallback;
    long with_reasons, purchase, purchase_signal, purchase_reasons;
    long first_serving; /* record index of the first served by the model */
    double ll_tail;     /* log loss of the served probabilities over the last 20% */
    long n_tail;
} out_t;

/* The label of each event: the type of the user's next event within the
 * horizon, else none (3); -1 for the last events, whose future is unknown. */
static int8_t *labels;
static int64_t horizon_ms;

static void make_labels(void) {
    free(labels);
    labels = malloc(EVENTS);
    for (int i = 0; i < EVENTS; i++)
        labels[i] = -1;
    /* users by id string: the stream has USERS users; a small map on the
     * id's hash, probed linearly */
    enum { M = 1 << 14 };
    static uint64_t key[M];
    static int32_t last[M];
    memset(key, 0, sizeof key);
    for (int i = 0; i < EVENTS; i++) {
        uint64_t h = fnv1a(0xcbf29ce484222325ULL, events[i].user_id, events[i].user_id_len) | 1;
        size_t s = h & (M - 1);
        while (key[s] && key[s] != h)
            s = (s + 1) & (M - 1);
        if (key[s]) {
            int j = last[s];
            labels[j] = events[i].ts_ms - events[j].ts_ms < horizon_ms ? (int8_t)events[i].type : 3;
        }
        key[s] = h;
        last[s] = i;
    }
    int64_t end = events[EVENTS - 1].ts_ms;
    for (int i = 0; i < EVENTS; i++)
        if (labels[i] < 0 && events[i].ts_ms + horizon_ms < end)
            labels[i] = 3;
}

static int emit(void *opaque, size_t index, const nx_event_t *ev, const void *rec, size_t len) {
    (void)index;
    out_t *o = opaque;
    const char *r = rec;
    o->hash = fnv1a(o->hash, rec, len);
    long i = o->records++;
    /* probabilities: {"click":p,"cart":p,"purchase":p,"none":p} */
    const char *p = memmem(r, len, "\"probabilities\":{", 17);
    float prob[4] = {0};
    if (p)
        p += 17;
    for (int k = 0; p && k < 4; k++) {
        p = memchr(p, ':', len - (size_t)(p - r));
        if (p)
            prob[k] = strtof(++p, NULL);
    }
    for (int k = 0; k < 4; k++)
        o->bad_probs += !(prob[k] >= 0.0f && prob[k] <= 1.0f);
    if (memmem(r, len, "\"model_state\":\"warming\"", 23))
        o->warming++;
    else if (memmem(r, len, "\"model_state\":\"fallback\"", 24))
        o->fallback++;
    else if (memmem(r, len, "\"model_state\":\"serving\"", 23)) {
        if (!o->serving++)
            o->first_serving = i;
    }
    const char *rs = memmem(r, len, "\"reasons\":[", 11);
    if (rs) {
        o->with_reasons++;
        /* the most likely buyers: purchase probability over PURCHASE_HIGH */
        if (prob[2] > PURCHASE_HIGH) {
            o->purchase++;
            /* the oracle's purchase drivers: carts (counts, recency,
             * session carts) and revisits of the same item */
            const char *q = rs;
            for (int k = 0; k < 3 && (q = memmem(q, len - (size_t)(q - r), "\"feature\":\"", 11));
                 k++) {
                q += 11;
                o->purchase_reasons++;
                o->purchase_signal += strncmp(q, "item_revisits", 13) == 0 ||
                                      strncmp(q, "session_revisits", 16) == 0 ||
                                      memmem(q, 24, "cart", 4) != NULL;
            }
        }
    }
    long tail_from = EVENTS * 8 / 10;
    if (i >= tail_from && labels && labels[ev->offset] >= 0) {
        float py = prob[labels[ev->offset]];
        o->ll_tail += -log(py > 1e-7f ? py : 1e-7f);
        o->n_tail++;
    }
    return 0;
}

static void run(const nx_config_t *cfg, int poll, out_t *o, nx_pipeline_stats_t *st,
                int inf_price_at) {
    char err[256];
    static const uint8_t key[16] = "nextact-guard";
    memset(o, 0, sizeof *o);
    o->hash = 0xcbf29ce484222325ULL;
    o->first_serving = -1;
    nx_pipeline_out_t po = {emit, o};
    nx_pipeline_t *pipe = nx_pipeline_new(cfg, key, 0, &po, err, sizeof err);
    CHECK(pipe != NULL);
    if (!pipe) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    const char *topics[] = {"in"};
    nx_event_t *batch = malloc((size_t)poll * sizeof *batch);
    for (int g = 0; g < EVENTS; g += poll) {
        int n = EVENTS - g < poll ? EVENTS - g : poll;
        memcpy(batch, events + g, (size_t)n * sizeof *batch);
        for (int i = 0; i < n; i++)
            if (g + i >= inf_price_at && g + i < inf_price_at + 50)
                batch[i].price = INFINITY;
        nx_pipeline_process(pipe, batch, (size_t)n, topics, events[0].ts_ms);
        nx_pipeline_tick(pipe, events[0].ts_ms);
    }
    nx_pipeline_finish(pipe);
    nx_pipeline_stats(pipe, st);
    nx_pipeline_destroy(pipe);
    free(batch);
    CHECK_INT(o->records, EVENTS);
    CHECK_INT(o->bad_probs, 0);
}

static void test_reasons(void) {
    nx_config_t *cfg =
        config("output: { format = \"json\"; explain = 3; explain_class = \"purchase\"; };");
    CHECK(cfg != NULL);
    if (!cfg || generate(cfg, 0, 0) < 0) {
        CHECK(0);
        return;
    }
    horizon_ms = cfg->labels.horizon_s * 1000;
    make_labels();
    out_t a, b;
    nx_pipeline_stats_t sa, sb;
    run(cfg, 1000, &a, &sa, INT32_MAX);
    run(cfg, 77, &b, &sb, INT32_MAX);
    CHECK(a.hash == b.hash); /* however the input is cut */
    CHECK_INT(a.with_reasons, a.serving + a.fallback);
    CHECK(a.serving > EVENTS / 2);
    CHECK(sa.explained == (uint64_t)EVENTS);
    /* chance: 3 reasons out of 38 features, of which 9 are about carts or
     * revisits of the item: 9/38 ~ 24% of the reasons */
    double share = a.purchase_reasons ? (double)a.purchase_signal / (double)a.purchase_reasons : 0;
    printf("reasons (of purchase): %ld records explained; %ld strong purchase predictions "
           "(p > %.2f), %.1f%% of their reasons about carts or item revisits (chance ~24%%)\n",
           a.with_reasons, a.purchase, (double)PURCHASE_HIGH, 100 * share);
    CHECK(a.purchase >= 100);
    CHECK(share > 0.6);
    nx_config_destroy(cfg);
}

static void test_guard(void) {
    nx_config_t *cfg = config("output: { format = \"json\"; };");
    CHECK(cfg != NULL);
    if (!cfg || generate(cfg, 0, 0) < 0) {
        CHECK(0);
        return;
    }
    horizon_ms = cfg->labels.horizon_s * 1000;
    make_labels();
    out_t clean, burst, inf;
    nx_pipeline_stats_t sc, sbu, si;
    /* a fresh model: warming first, then serving */
    run(cfg, 1000, &clean, &sc, INT32_MAX);
    printf("clean: %ld warming then serving from record %ld; %ld fallback; tail log loss %.4f; "
           "rollbacks %llu\n",
           clean.warming, clean.first_serving, clean.fallback, clean.ll_tail / clean.n_tail,
           (unsigned long long)sc.guard_rollbacks);
    CHECK(clean.warming > 0);
    CHECK(clean.first_serving >= clean.warming);
    CHECK(clean.serving > EVENTS / 2);

    /* scrambled labels over 8% of the stream: a rollback, then recovery */
    if (generate(cfg, 40000, 50000) < 0) {
        CHECK(0);
        return;
    }
    make_labels();
    run(cfg, 1000, &burst, &sbu, INT32_MAX);
    double ll_c = clean.ll_tail / clean.n_tail, ll_b = burst.ll_tail / burst.n_tail;
    printf("burst: %llu rollback(s), %ld fallback records; tail log loss %.4f against %.4f "
           "clean (%+.2f%%)\n",
           (unsigned long long)sbu.guard_rollbacks, burst.fallback, ll_b, ll_c,
           100 * (ll_b / ll_c - 1));
    CHECK(sbu.guard_rollbacks >= 1);
    CHECK(burst.fallback > 0);
    CHECK(ll_b <= ll_c * 1.05);

    /* an absurd feature value (an infinite price) is not a price: outputs
     * stay probabilities and the stream's quality is untouched */
    if (generate(cfg, 0, 0) < 0) {
        CHECK(0);
        return;
    }
    make_labels();
    run(cfg, 1000, &inf, &si, 60000);
    double ll_i = inf.ll_tail / inf.n_tail;
    printf("infinite price on 50 events: tail log loss %.4f against %.4f clean; %llu rollback(s)\n",
           ll_i, ll_c, (unsigned long long)si.guard_rollbacks);
    CHECK(ll_i <= ll_c * 1.01);
    nx_config_destroy(cfg);

    /* an absurd learning rate: the model diverges until its outputs are not
     * probabilities; the guard serves the prior for them, rolls back, and
     * no record has a probability outside [0, 1] (run checks every one) */
    cfg = config("output: { format = \"json\"; };\n"
                 "model: { optimizer = \"sgd\"; learning_rate = 10.0; clip_norm = 0.0; };");
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    out_t div;
    nx_pipeline_stats_t sd;
    run(cfg, 1000, &div, &sd, INT32_MAX);
    printf("learning rate 10 (SGD): %llu rollback(s), %ld fallback records, %llu served the "
           "prior\n",
           (unsigned long long)sd.guard_rollbacks, div.fallback,
           (unsigned long long)sd.served_prior);
    CHECK(sd.guard_rollbacks >= 1);
    nx_config_destroy(cfg);
}

/* One window of `window` examples, labels cycling over K classes, the
 * model giving the label probability p_true (the rest shared). Returns what
 * nx_guard_example returned at the window's end; *act its action. */
static int feed_window(nx_guard_t *g, int K, int window, float p_true, nx_guard_action_t *act) {
    float p[4];
    int acted = 0;
    for (int i = 0; i < window; i++) {
        int y = i % K;
        for (int k = 0; k < K; k++)
            p[k] = k == y ? p_true : (1 - p_true) / (float)(K - 1);
        acted = nx_guard_example(g, p, y, act);
        if (i < window - 1)
            CHECK_INT(acted, 0); /* decisions fall only at a window's end */
    }
    return acted;
}

/* The guard's rules on its own (guard.h), window by window. */
static void test_guard_rules(void) {
    char err[256];
    const int K = 3, W = 200;
    nx_guard_params_t gp = {.enabled = 1, .K = K, .window = W, .margin = 0.25};
    nx_guard_t *g = nx_guard_new(&gp, err, sizeof err);
    CHECK(g != NULL);
    if (!g)
        return;
    nx_guard_action_t act;
    nx_guard_stats_t st;
    /* warming while the model is worse than the prior (1/3 each here) */
    CHECK_INT(nx_guard_state(g), NX_MODEL_WARMING);
    CHECK_INT(feed_window(g, K, W, 0.2f, &act), 0);
    CHECK_INT(nx_guard_state(g), NX_MODEL_WARMING);
    /* serving, with a snapshot, from the first window that beats it */
    CHECK_INT(feed_window(g, K, W, 0.8f, &act), 1);
    CHECK(act.snapshot && !act.rollback);
    CHECK_INT(nx_guard_state(g), NX_MODEL_SERVING);
    /* a prediction that is not a probability: roll back now, learning rate
     * lowered, once per window */
    CHECK_INT(nx_guard_nonfinite(g, &act), 1);
    CHECK(act.rollback && act.lr > 0 && act.lr < 1);
    CHECK_INT(nx_guard_state(g), NX_MODEL_FALLBACK);
    CHECK_INT(nx_guard_nonfinite(g, &act), 0);
    /* back within the margin: serving at the full learning rate */
    CHECK_INT(feed_window(g, K, W, 0.8f, &act), 1);
    CHECK(!act.rollback && act.lr == 1.0f);
    CHECK_INT(nx_guard_state(g), NX_MODEL_SERVING);
    /* one window far worse than the best is no rollback yet, two are */
    CHECK_INT(feed_window(g, K, W, 0.3f, &act), 0);
    CHECK_INT(nx_guard_state(g), NX_MODEL_SERVING);
    CHECK_INT(feed_window(g, K, W, 0.3f, &act), 1);
    CHECK(act.rollback && act.lr > 0 && act.lr < 1);
    CHECK_INT(nx_guard_state(g), NX_MODEL_FALLBACK);
    nx_guard_stats(g, &st);
    CHECK_INT(st.rollbacks, 2);
    CHECK(st.last_ratio > 1); /* worse than the prior over that window */
    nx_guard_destroy(g);
    /* off: always serving, never an action */
    gp.enabled = 0;
    g = nx_guard_new(&gp, err, sizeof err);
    CHECK(g != NULL);
    if (g) {
        CHECK_INT(nx_guard_state(g), NX_MODEL_SERVING);
        CHECK_INT(nx_guard_nonfinite(g, &act), 0);
        CHECK_INT(feed_window(g, K, W, 0.2f, &act), 0);
        nx_guard_destroy(g);
    }
}

int main(int argc, char **argv) {
    srcdir = argc > 1 ? argv[1] : NX_SOURCE_DIR;
    test_guard_rules();
    test_reasons();
    test_guard();
    free(events);
    free(arena);
    free(labels);
    return nx_check_exit("test_guard");
}
