/* pipeline.c: one micro-batch through features, model and outputs
 * (pipeline.h). */
#include "pipeline.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "mlp.h"
#include "predenc.h"
#include "store.h"

/* Events per step (see process_step): one forward pass and one training
 * segment each. Big enough for sgemm to reach its speed, small enough that
 * activations stay in L2. */
#define STEP 256
/* Replay runs store maintenance to completion every this many events:
 * deterministic, and at 1M users a full TTL scan costs ~15 ns per event
 * amortised. */
#define REPLAY_MAINTAIN_EVERY 65536
/* Live maintenance slices are at least this far apart (ms): with the
 * default 500 us budget, at most 5% of a core. At ~10 M users/s scanned, a
 * TTL pass over 1 M users takes about 2 s. */
#define MAINTAIN_EVERY_MS 10
/* Partitions whose watermarks are tracked (topics x partitions). */
#define MAX_PARTS 1024
/* Bytes of one encoded prediction record: user id (<= 256), topic name
 * (<= 249), class names and numbers fit well within this. */
#define REC_MAX 4096

/*
 * Training runs on a thread of its own, beside prediction, without losing
 * determinism. The main thread hands the labelled examples of each step to
 * the trainer as a numbered segment; the trainer applies down-sampling,
 * trains in mini-batches, and after each segment publishes its weights into
 * predictor slot (segment % NSLOT). In replay, before predicting, the main
 * thread waits for the snapshot of segment (segments pushed - 1 - LAG) and
 * predicts from exactly that one: which weights a prediction uses depends
 * only on the input order, never on the trainer's speed. LAG segments of
 * slack let both threads run at once; the trainer can never be more than
 * LAG segments ahead of the snapshot in use, so NSLOT = LAG + 1 slots are
 * never overwritten while read (see pick_predictor). Live, the newest
 * snapshot is taken without waiting.
 */
#define LAG   4
#define NSLOT (LAG + 1)
/* Segments queued for the trainer at most; the main thread waits beyond. */
#define QUEUE 8

typedef struct segment {
    float *x;       /* (cap, dim) */
    int32_t *label; /* (cap) */
    size_t n, cap;
} segment_t;

typedef struct trainer {
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* any change of pushed, trained or stop */
    segment_t seg[QUEUE];
    int64_t pushed;  /* segments handed over */
    int idle;        /* main thread: trainer known idle since the last push */
    int64_t trained; /* segments trained and published, -1 = none */
    int stop;
    nx_mlp_predictor_t *slot[NSLOT];
    nx_mlp_predictor_t *initial; /* the weights before any training */
    _Atomic uint64_t steps;      /* nx_mlp_step, readable from the main thread */
    _Atomic uint64_t kept;       /* examples trained on */
    /* trainer-owned mini-batch */
    float *tx;   /* (batch, dim) */
    int32_t *ty; /* (batch) */
    int tn, tcap;
} trainer_t;

typedef struct part_clock {
    int32_t topic, partition;
    int64_t max_ts;       /* largest event time seen, ms; INT64_MIN = none yet */
    int64_t last_wall_ms; /* wall clock of its last event, or of its assignment (live) */
    int revoked;          /* no longer ours: does not hold the watermark */
} part_clock_t;

struct nx_pipeline {
    const nx_config_t *cfg;
    int live;
    nx_pipeline_out_t out;
    nx_store_t *store;
    nx_mlp_t *mlp; /* NULL when model.enabled = false */
    nx_metrics_t *metrics;
    nx_predenc_t *enc;
    size_t dim;
    int n_types, K;
    int64_t horizon_ms, lateness_ms, idle_ms;

    /* per-step buffers: a step holds at most STEP events */
    float *X;         /* (STEP, dim) */
    uint8_t *status;  /* (STEP) */
    float *P;         /* (STEP, K) */
    nx_examples_t ex; /* resolved or expired examples, cap STEP */
    uint8_t *rec;     /* REC_MAX */

    trainer_t tr;
    segment_t *fill; /* the segment being filled by the main thread */

    part_clock_t parts[MAX_PARTS];
    int n_parts;
    int64_t watermark;

    nx_pipeline_stats_t st;
    uint64_t maintained_at; /* st.events at the last replay maintenance */
    int64_t maintained_ms;  /* wall clock of the last live maintenance slice */
};

static int trainer_start(nx_pipeline_t *pipe, char *errstr, size_t errstr_size);
static void trainer_stop(nx_pipeline_t *pipe);

static void store_params_from(const nx_config_t *cfg, nx_store_params_t *sp) {
    nx_store_params_default(sp);
    sp->n_types = cfg->event_types.n;
    for (int i = 0; i < sp->n_types; i++)
        snprintf(sp->type_names[i], sizeof sp->type_names[i], "%s", cfg->event_types.v[i]);
    sp->n_windows = cfg->features.windows_s.n;
    for (int i = 0; i < sp->n_windows; i++)
        sp->window_ms[i] = cfg->features.windows_s.v[i] * 1000;
    /* purchase value and session cart adds follow the type names */
    sp->value_type = -1;
    sp->cart_type = -1;
    for (int i = 0; i < sp->n_types; i++) {
        if (strcmp(cfg->event_types.v[i], "purchase") == 0)
            sp->value_type = i;
        if (strcmp(cfg->event_types.v[i], "cart") == 0)
            sp->cart_type = i;
    }
    sp->user_ttl_ms = cfg->features.user_ttl_s * 1000;
    sp->max_users = (uint64_t)cfg->features.max_users;
    sp->session_gap_ms = cfg->features.session_gap_s * 1000;
    sp->recent_items = (int)cfg->features.recent_items;
    sp->families =
        (cfg->features.counts ? NX_FEAT_COUNTS : 0) | (cfg->features.value ? NX_FEAT_VALUE : 0) |
        (cfg->features.recency ? NX_FEAT_RECENCY : 0) |
        (cfg->features.session ? NX_FEAT_SESSION : 0) |
        (cfg->features.revisits ? NX_FEAT_REVISITS : 0) |
        (cfg->features.event ? NX_FEAT_ONEHOT : 0) | (cfg->features.time ? NX_FEAT_TIME : 0) |
        (cfg->features.price ? NX_FEAT_PRICE : 0);
    sp->clip = (float)cfg->features.clip;
    sp->horizon_ms = cfg->labels.horizon_s * 1000;
    sp->seed = (uint64_t)cfg->model.seed;
    sp->n_scores = cfg->event_types.n + 1;
}

static int mlp_params_from(const nx_config_t *cfg, int n_in, int K, nx_mlp_params_t *mp,
                           char *errstr, size_t errstr_size) {
    nx_mlp_params_default(mp, n_in, K);
    mp->n_hidden = cfg->model.hidden.n;
    for (int i = 0; i < mp->n_hidden; i++)
        mp->hidden[i] = (int)cfg->model.hidden.v[i];
    const char *a = cfg->model.activation, *o = cfg->model.optimizer;
    mp->act = strcmp(a, "tanh") == 0      ? NX_ACT_TANH
              : strcmp(a, "sigmoid") == 0 ? NX_ACT_SIGMOID
                                          : NX_ACT_RELU;
    mp->opt = strcmp(o, "sgd") == 0        ? NX_OPT_SGD
              : strcmp(o, "momentum") == 0 ? NX_OPT_MOMENTUM
              : strcmp(o, "adagrad") == 0  ? NX_OPT_ADAGRAD
                                           : NX_OPT_ADAM;
    mp->lr = (float)cfg->model.learning_rate;
    mp->momentum = (float)cfg->model.momentum;
    mp->beta1 = (float)cfg->model.beta1;
    mp->beta2 = (float)cfg->model.beta2;
    mp->eps = (float)cfg->model.epsilon;
    mp->weight_decay = (float)cfg->model.weight_decay;
    mp->clip_norm = (float)cfg->model.clip_norm;
    mp->warmup_steps = (int)cfg->model.warmup_steps;
    mp->lr_decay = (float)cfg->model.lr_decay;
    mp->lr_min = (float)(cfg->model.learning_rate * cfg->model.lr_floor);
    mp->head_init = (float)cfg->model.head_init_scale;
    mp->max_batch = (int)(cfg->model.batch_size > STEP ? cfg->model.batch_size : STEP);
    mp->seed = (uint64_t)cfg->model.seed;
    for (int k = 0; k < cfg->model.class_weights.n; k++)
        mp->class_weights[k] = (float)cfg->model.class_weights.v[k];
    mp->neg_class = K - 1; /* `none` */
    mp->neg_rate = (float)cfg->model.negative_rate;
    mp->threads = (int)cfg->model.threads;
    return nx_mlp_params_check(mp, errstr, errstr_size);
}

nx_pipeline_t *nx_pipeline_new(const nx_config_t *cfg, const uint8_t key[16], int live,
                               const nx_pipeline_out_t *out, char *errstr, size_t errstr_size) {
    nx_pipeline_t *pipe = calloc(1, sizeof *pipe);
    if (!pipe) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pipe->cfg = cfg;
    pipe->live = live;
    if (out)
        pipe->out = *out;
    pipe->n_types = cfg->event_types.n;
    pipe->K = pipe->n_types + 1;
    pipe->horizon_ms = cfg->labels.horizon_s * 1000;
    pipe->lateness_ms = cfg->labels.allowed_lateness_ms;
    pipe->idle_ms = cfg->labels.idle_advance_ms;
    /* No watermark yet: the epoch, before any accepted event (the codec
     * refuses timestamps before 2000), so nothing is late or expired. */
    pipe->watermark = 0;

    nx_store_params_t sp;
    store_params_from(cfg, &sp);
    pipe->store = nx_store_new(&sp, key, errstr, errstr_size);
    if (!pipe->store)
        goto err;
    pipe->dim = nx_store_dim(pipe->store);

    if (cfg->model.enabled) {
        nx_mlp_params_t mp;
        if (mlp_params_from(cfg, (int)pipe->dim, pipe->K, &mp, errstr, errstr_size) < 0)
            goto err;
        pipe->mlp = nx_mlp_new(&mp, errstr, errstr_size);
        if (!pipe->mlp)
            goto err;
    }
    pipe->metrics =
        nx_metrics_new(pipe->K, (uint32_t)cfg->model.metrics_window, errstr, errstr_size);
    if (!pipe->metrics)
        goto err;
    pipe->enc = nx_predenc_new(cfg, errstr, errstr_size);
    if (!pipe->enc)
        goto err;

    size_t mb = STEP;
    pipe->X = calloc(mb * pipe->dim, sizeof *pipe->X);
    pipe->status = calloc(mb, 1);
    pipe->P = calloc(mb * (size_t)pipe->K, sizeof *pipe->P);
    pipe->ex.x = malloc(mb * pipe->dim * sizeof *pipe->ex.x);
    pipe->ex.label = malloc(mb * sizeof *pipe->ex.label);
    pipe->ex.ts_ms = malloc(mb * sizeof *pipe->ex.ts_ms);
    pipe->ex.score = malloc(mb * (size_t)pipe->K * sizeof *pipe->ex.score);
    pipe->ex.cap = mb;
    pipe->rec = malloc(REC_MAX);
    if (!pipe->X || !pipe->status || !pipe->P || !pipe->ex.x || !pipe->ex.label ||
        !pipe->ex.ts_ms || !pipe->ex.score || !pipe->rec) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (pipe->mlp && trainer_start(pipe, errstr, errstr_size) < 0)
        goto err;
    pipe->st.n_classes = pipe->K;
    return pipe;
err:
    nx_pipeline_destroy(pipe);
    return NULL;
}

void nx_pipeline_destroy(nx_pipeline_t *pipe) {
    if (!pipe)
        return;
    trainer_stop(pipe);
    nx_predenc_destroy(pipe->enc);
    nx_metrics_destroy(pipe->metrics);
    nx_mlp_destroy(pipe->mlp);
    nx_store_destroy(pipe->store);
    free(pipe->X);
    free(pipe->status);
    free(pipe->P);
    free(pipe->ex.x);
    free(pipe->ex.label);
    free(pipe->ex.ts_ms);
    free(pipe->ex.score);
    free(pipe->rec);
    free(pipe);
}

const char *nx_pipeline_class_name(const nx_pipeline_t *pipe, int k) {
    return k < pipe->n_types ? pipe->cfg->event_types.v[k] : "none";
}

/* ---- time ------------------------------------------------------------------ */

static part_clock_t *part_clock(nx_pipeline_t *pipe, int32_t topic, int32_t partition) {
    for (int i = 0; i < pipe->n_parts; i++)
        if (pipe->parts[i].topic == topic && pipe->parts[i].partition == partition)
            return &pipe->parts[i];
    if (pipe->n_parts == MAX_PARTS)
        return NULL;
    part_clock_t *c = &pipe->parts[pipe->n_parts++];
    c->topic = topic;
    c->partition = partition;
    c->max_ts = INT64_MIN;
    c->last_wall_ms = 0;
    return c;
}

/* The global watermark: the minimum over our partitions of max_ts -
 * lateness. A partition assigned but not yet heard from holds it back (its
 * events may be older than the others'), until, live, it has been quiet for
 * idle_ms; a partition quiet that long stops holding it back and advances by
 * the wall clock. Only an assignment moves it backwards (nx_pipeline_assign). */
static void watermark_update(nx_pipeline_t *pipe, int64_t now_ms) {
    int64_t wm = INT64_MAX;
    for (int i = 0; i < pipe->n_parts; i++) {
        const part_clock_t *c = &pipe->parts[i];
        if (c->revoked)
            continue;
        int idle = pipe->live && now_ms - c->last_wall_ms > pipe->idle_ms;
        if (c->max_ts == INT64_MIN) {
            if (idle)
                continue;
            return; /* assigned, nothing seen yet: hold */
        }
        int64_t w = c->max_ts - pipe->lateness_ms;
        if (idle)
            w += now_ms - c->last_wall_ms - pipe->idle_ms;
        if (w < wm)
            wm = w;
    }
    if (wm != INT64_MAX && wm > pipe->watermark)
        pipe->watermark = wm;
}

void nx_pipeline_assign(nx_pipeline_t *pipe, int32_t topic, int32_t partition, int64_t now_ms) {
    part_clock_t *c = part_clock(pipe, topic, partition);
    if (!c)
        return;
    c->revoked = 0;
    c->last_wall_ms = now_ms;
    /* A partition we have read before comes back (after a revoke, or from a
     * checkpoint): its users' state ends at its clock and its input resumes
     * there, however far the other partitions went meanwhile. The watermark
     * is the minimum over our partitions, so it moves back to this one's:
     * otherwise its re-read events would be late or dropped as too old,
     * which they are not. Labels already expired stay expired; the ones
     * still pending wait until the minimum passes them again, as they would
     * have had the partition never left. */
    if (c->max_ts != INT64_MIN && c->max_ts - pipe->lateness_ms < pipe->watermark)
        pipe->watermark = c->max_ts - pipe->lateness_ms;
}

int64_t nx_pipeline_partition_clock(nx_pipeline_t *pipe, int32_t topic, int32_t partition) {
    part_clock_t *c = part_clock(pipe, topic, partition);
    return c ? c->max_ts : INT64_MIN;
}

void nx_pipeline_set_partition_clock(nx_pipeline_t *pipe, int32_t topic, int32_t partition,
                                     int64_t max_ts_ms) {
    part_clock_t *c = part_clock(pipe, topic, partition);
    if (!c || max_ts_ms == INT64_MIN)
        return;
    c->max_ts = max_ts_ms;
    /* as nx_pipeline_assign: the restored users' state ends at this clock */
    if (max_ts_ms - pipe->lateness_ms < pipe->watermark)
        pipe->watermark = max_ts_ms - pipe->lateness_ms;
}

nx_store_t *nx_pipeline_store(nx_pipeline_t *pipe) {
    return pipe->store;
}

void nx_pipeline_revoke(nx_pipeline_t *pipe, int32_t topic, int32_t partition) {
    part_clock_t *c = part_clock(pipe, topic, partition);
    if (c)
        c->revoked = 1;
}

/* ---- training ------------------------------------------------------------------ */

/* Trainer thread: one mini-batch step, then on. */
static void train_flush(nx_pipeline_t *pipe) {
    trainer_t *tr = &pipe->tr;
    if (tr->tn == 0)
        return;
    float loss;
    if (nx_mlp_train(pipe->mlp, tr->tx, tr->ty, tr->tn, &loss) < 0)
        NX_LOG_RL(NX_LOG_WARNING, "model: training step refused (non-finite loss); batch skipped");
    atomic_fetch_add(&tr->kept, (uint64_t)tr->tn);
    atomic_store(&tr->steps, nx_mlp_step(pipe->mlp));
    tr->tn = 0;
}

/* Trainer thread: down-sampling, mini-batches, in segment order. */
static void train_segment(nx_pipeline_t *pipe, const segment_t *seg) {
    trainer_t *tr = &pipe->tr;
    for (size_t r = 0; r < seg->n; r++) {
        int32_t y = seg->label[r];
        if (!nx_mlp_keep(pipe->mlp, y))
            continue;
        memcpy(tr->tx + (size_t)tr->tn * pipe->dim, seg->x + r * pipe->dim,
               pipe->dim * sizeof *tr->tx);
        tr->ty[tr->tn++] = y;
        if (tr->tn == tr->tcap)
            train_flush(pipe);
    }
}

static void *trainer_main(void *arg) {
    nx_pipeline_t *pipe = arg;
    trainer_t *tr = &pipe->tr;
    pthread_setname_np(pthread_self(), "nx-trainer"); /* for top -H, perf */
    pthread_mutex_lock(&tr->mu);
    for (;;) {
        while (tr->trained + 1 >= tr->pushed && !tr->stop)
            pthread_cond_wait(&tr->cond, &tr->mu);
        if (tr->trained + 1 >= tr->pushed)
            break; /* stop, and nothing left */
        int64_t s = tr->trained + 1;
        segment_t *seg = &tr->seg[s % QUEUE];
        pthread_mutex_unlock(&tr->mu);
        train_segment(pipe, seg);
        nx_mlp_publish(pipe->mlp, tr->slot[s % NSLOT]);
        pthread_mutex_lock(&tr->mu);
        tr->trained = s;
        pthread_cond_broadcast(&tr->cond);
    }
    pthread_mutex_unlock(&tr->mu);
    return NULL;
}

static int trainer_start(nx_pipeline_t *pipe, char *errstr, size_t errstr_size) {
    trainer_t *tr = &pipe->tr;
    tr->tcap = (int)pipe->cfg->model.batch_size;
    tr->tx = malloc((size_t)tr->tcap * pipe->dim * sizeof *tr->tx);
    tr->ty = malloc((size_t)tr->tcap * sizeof *tr->ty);
    if (!tr->tx || !tr->ty)
        return nx_errf(errstr, errstr_size, "out of memory");
    /* a segment holds one batch's resolved examples plus expired ones */
    for (int i = 0; i < QUEUE; i++) {
        segment_t *g = &tr->seg[i];
        g->cap = 2 * STEP;
        g->x = malloc(g->cap * pipe->dim * sizeof *g->x);
        g->label = malloc(g->cap * sizeof *g->label);
        if (!g->x || !g->label)
            return nx_errf(errstr, errstr_size, "out of memory");
    }
    if (!(tr->initial = nx_mlp_predictor_new(pipe->mlp, errstr, errstr_size)))
        return -1;
    for (int i = 0; i < NSLOT; i++)
        if (!(tr->slot[i] = nx_mlp_predictor_new(pipe->mlp, errstr, errstr_size)))
            return -1;
    tr->trained = -1;
    pipe->fill = &tr->seg[0];
    pthread_mutex_init(&tr->mu, NULL);
    pthread_cond_init(&tr->cond, NULL);
    if (pthread_create(&tr->thread, NULL, trainer_main, pipe) != 0)
        return nx_errf(errstr, errstr_size, "cannot start the trainer thread");
    tr->started = 1;
    return 0;
}

/* Waits until the trainer has trained every segment pushed so far. */
static void trainer_sync(nx_pipeline_t *pipe) {
    trainer_t *tr = &pipe->tr;
    if (!tr->started || tr->idle)
        return; /* idle: also true in a forked child, which has no trainer */
    pthread_mutex_lock(&tr->mu);
    while (tr->trained + 1 < tr->pushed)
        pthread_cond_wait(&tr->cond, &tr->mu);
    pthread_mutex_unlock(&tr->mu);
}

static void trainer_stop(nx_pipeline_t *pipe) {
    trainer_t *tr = &pipe->tr;
    if (tr->started) {
        pthread_mutex_lock(&tr->mu);
        tr->stop = 1;
        pthread_cond_broadcast(&tr->cond);
        pthread_mutex_unlock(&tr->mu);
        pthread_join(tr->thread, NULL);
        pthread_mutex_destroy(&tr->mu);
        pthread_cond_destroy(&tr->cond);
        tr->started = 0;
    }
    for (int i = 0; i < QUEUE; i++) {
        free(tr->seg[i].x);
        free(tr->seg[i].label);
    }
    for (int i = 0; i < NSLOT; i++)
        nx_mlp_predictor_destroy(tr->slot[i]);
    nx_mlp_predictor_destroy(tr->initial);
    free(tr->tx);
    free(tr->ty);
    memset(tr, 0, sizeof *tr);
}

/* Main thread: hands the filled segment to the trainer (waiting while the
 * queue is full) and starts the next one. Empty segments are pushed too:
 * the segment count, not the example count, fixes which weights predict. */
static void segment_push(nx_pipeline_t *pipe) {
    trainer_t *tr = &pipe->tr;
    pthread_mutex_lock(&tr->mu);
    tr->pushed++;
    tr->idle = 0;
    pthread_cond_broadcast(&tr->cond);
    while (tr->pushed - (tr->trained + 1) >= QUEUE)
        pthread_cond_wait(&tr->cond, &tr->mu);
    pipe->fill = &tr->seg[tr->pushed % QUEUE];
    pthread_mutex_unlock(&tr->mu);
    pipe->fill->n = 0;
}

/* Main thread: the predictor holding the weights after segment
 * pushed - 1 - LAG (waiting for the trainer if it is not there yet). */
static nx_mlp_predictor_t *pick_predictor(nx_pipeline_t *pipe) {
    trainer_t *tr = &pipe->tr;
    int64_t need = tr->pushed - 1 - LAG;
    pthread_mutex_lock(&tr->mu);
    if (pipe->live) {
        /* Live, outputs depend on arrival timing anyway: take the newest
         * snapshot rather than wait for a trainer that the scheduler has
         * put aside (the loop's latency matters more). */
        need = tr->trained;
    } else {
        while (need >= 0 && tr->trained < need)
            pthread_cond_wait(&tr->cond, &tr->mu);
    }
    pthread_mutex_unlock(&tr->mu);
    if (need < 0)
        return tr->initial;
    /* Replay: the trainer is at most at segment pushed - 1 = need + LAG, so
     * slot need % NSLOT holds exactly snapshot `need`: acquire takes it.
     * (Live, a newer one may have replaced it: still a whole snapshot.) */
    nx_mlp_predictor_t *pred = tr->slot[need % NSLOT];
    nx_mlp_predictor_acquire(pred);
    return pred;
}

/* Labelled examples in pipe->ex: score them (progressive validation, with
 * the probabilities published at their events) and queue them for the
 * trainer. */
static void take_examples(nx_pipeline_t *pipe) {
    const nx_examples_t *ex = &pipe->ex;
    for (size_t r = 0; r < ex->n; r++) {
        int32_t y = ex->label[r];
        nx_metrics_add(pipe->metrics, ex->score + r * (size_t)pipe->K, y);
        pipe->st.labelled++;
        if (!pipe->mlp)
            continue;
        segment_t *g = pipe->fill;
        if (g->n == g->cap)
            segment_push(pipe), g = pipe->fill;
        memcpy(g->x + g->n * pipe->dim, ex->x + r * pipe->dim, pipe->dim * sizeof *g->x);
        g->label[g->n++] = y;
    }
}

static void expire_labels(nx_pipeline_t *pipe) {
    if (pipe->watermark == 0)
        return;
    /* bounded per call by ex.cap; loop until the queue holds no more due */
    for (int rounds = 0; rounds < 64; rounds++) {
        size_t n = nx_store_expire_labels(pipe->store, pipe->watermark, &pipe->ex);
        take_examples(pipe);
        if (n < pipe->ex.cap)
            break;
    }
}

/* ---- the batch ------------------------------------------------------------------ */

/* A piece of a step: at most STEP events, never across a multiple of STEP
 * in the count of events processed so far. Every decision that depends on
 * where a step ends (the watermark used for lateness, label expiry, the
 * order of examples for training, which weights predict, replay
 * maintenance) is taken at those fixed points of the input, so in replay
 * the outputs do not depend on how the input was cut into batches.
 * `base` is the index of ev[0] in the caller's batch. */
static void process_step(nx_pipeline_t *pipe, const nx_event_t *ev, size_t n, size_t base,
                         const char *const *topic_names, int64_t now_ms) {
    /* 1. features against the watermark so far, labels resolved by these
     *    events */
    /* rows sit at their place in the step: X, P and status hold a step */
    size_t off = (size_t)(pipe->st.events % STEP);
    float *X = pipe->X + off * pipe->dim, *P = pipe->P + off * (size_t)pipe->K;
    uint8_t *status = pipe->status + off;
    if (nx_store_update(pipe->store, ev, n, pipe->watermark, X, status, &pipe->ex) < 0)
        return; /* cannot happen: ex.cap >= STEP >= n */

    /* 2. one forward pass */
    int K = pipe->K;
    uint64_t version = 0;
    if (pipe->mlp) {
        nx_mlp_predictor_t *pred = pick_predictor(pipe);
        version = nx_mlp_predictor_version(pred);
        /* sgemm's rounding of a row may depend on the rows around it (edge
         * tiles): replay always multiplies the whole step, so a row's
         * probabilities do not depend on where a batch ended. Live, only
         * the new rows. */
        if (pipe->live)
            nx_mlp_predictor_predict(pred, X, (int)n, P);
        else
            nx_mlp_predictor_predict(pred, pipe->X, STEP, pipe->P);
    } else {
        for (size_t i = 0; i < n * (size_t)K; i++)
            P[i] = 1.0f / (float)K;
    }
    nx_store_set_scores(pipe->store, ev, n, status, P);

    /* 3. one record per event */
    for (size_t i = 0; i < n; i++) {
        nx_prediction_t pr = {
            .user_id = ev[i].user_id,
            .user_id_len = ev[i].user_id_len,
            .event_ts_ms = ev[i].ts_ms,
            .topic = topic_names ? topic_names[ev[i].topic] : "",
            .partition = ev[i].partition,
            .offset = ev[i].offset,
            /* replay: event time, so outputs are reproducible */
            .predicted_at_ms = pipe->live ? now_ms : ev[i].ts_ms,
            .horizon_ms = pipe->horizon_ms,
            .probs = P + i * (size_t)K,
            .model_version = (int64_t)version,
        };
        int64_t len = nx_predenc_encode(pipe->enc, &pr, pipe->rec, REC_MAX);
        if (len < 0 || !pipe->out.emit ||
            pipe->out.emit(pipe->out.opaque, base + i, &ev[i], pipe->rec, (size_t)len) < 0)
            pipe->st.emit_errors++;
        else
            pipe->st.predictions++;
    }
    pipe->st.events += n;

    /* 4. examples resolved by these events */
    take_examples(pipe);

    /* 5. advance the clocks, expire labels the watermark passed */
    for (size_t i = 0; i < n; i++) {
        if (status[i] != NX_STORE_OK && status[i] != NX_STORE_LATE)
            continue;
        part_clock_t *c = part_clock(pipe, ev[i].topic, ev[i].partition);
        if (c && ev[i].ts_ms > c->max_ts)
            c->max_ts = ev[i].ts_ms;
        if (c) {
            c->last_wall_ms = now_ms;
            c->revoked = 0;
        }
    }

    /* The rest happens once per step, when its last event is in: a batch
     * that ends inside a step leaves it for the next batch. */
    if (pipe->st.events % STEP != 0)
        return;
    watermark_update(pipe, now_ms);
    expire_labels(pipe);

    /* 6. in replay, store maintenance at fixed points of the input */
    if (!pipe->live && pipe->st.events - pipe->maintained_at >= REPLAY_MAINTAIN_EVERY) {
        nx_store_maintain(pipe->store, pipe->watermark, 0);
        pipe->maintained_at = pipe->st.events;
    }

    /* 7. this step's labelled examples go to the trainer as one segment */
    if (pipe->mlp)
        segment_push(pipe);
}

void nx_pipeline_process(nx_pipeline_t *pipe, const nx_event_t *ev, size_t n,
                         const char *const *topic_names, int64_t now_ms) {
    size_t i = 0;
    while (i < n) {
        size_t room = STEP - (size_t)(pipe->st.events % STEP);
        size_t len = n - i < room ? n - i : room;
        process_step(pipe, ev + i, len, i, topic_names, now_ms);
        i += len;
    }
}

void nx_pipeline_tick(nx_pipeline_t *pipe, int64_t now_ms) {
    /* TTL runs on event time: the store's clock is the watermark. Live, each
     * tick spends a time budget. In replay a time budget would make the
     * results depend on the machine's speed, so maintenance runs to
     * completion at fixed points of the input instead (process_step). */
    /* Live: one maintenance slice per MAINTAIN_EVERY_MS at most. The TTL
     * scan always finds work, so a slice per loop iteration would spend the
     * whole budget between every two small polls. */
    if (pipe->live && pipe->watermark != 0 && now_ms - pipe->maintained_ms >= MAINTAIN_EVERY_MS) {
        nx_store_maintain(pipe->store, pipe->watermark, pipe->cfg->features.maintenance_budget_us);
        pipe->maintained_ms = now_ms;
    }
    if (pipe->live) {
        watermark_update(pipe, now_ms);
        expire_labels(pipe);
    }
}

void nx_pipeline_finish(nx_pipeline_t *pipe) {
    /* the last, partial step */
    watermark_update(pipe, 0);
    expire_labels(pipe);
    if (!pipe->mlp)
        return;
    if (pipe->fill->n)
        segment_push(pipe);
    trainer_sync(pipe);
    train_flush(pipe); /* the trainer is idle: its state is ours */
}

void nx_pipeline_stats(const nx_pipeline_t *pipe, nx_pipeline_stats_t *stats) {
    *stats = pipe->st;
    nx_store_stats_t ss;
    nx_store_stats(pipe->store, &ss);
    stats->users = ss.users;
    stats->pending = ss.pending;
    stats->late = ss.late;
    stats->dropped = ss.dropped;
    stats->bytes_per_user = ss.bytes_per_user;
    stats->steps = atomic_load(&pipe->tr.steps);
    stats->trained = atomic_load(&pipe->tr.kept);
    stats->watermark_ms = pipe->watermark;
    nx_metrics_report_t r, w;
    nx_metrics_report(pipe->metrics, NX_METRICS_CUMULATIVE, &r);
    nx_metrics_report(pipe->metrics, NX_METRICS_WINDOW, &w);
    stats->logloss = r.log_loss;
    stats->accuracy = r.accuracy;
    stats->normalized_entropy = r.norm_entropy;
    stats->calibration_error = r.ece;
    stats->window_logloss = w.log_loss;
    stats->window_accuracy = w.accuracy;
    for (int k = 0; k < pipe->K && k < 16; k++) {
        stats->auc[k] = r.auc[k];
        stats->window_auc[k] = w.auc[k];
    }
}

void nx_pipeline_print_features(const nx_pipeline_t *pipe, FILE *out) {
    for (size_t i = 0; i < pipe->dim; i++)
        fprintf(out, "%3zu %s\n", i, nx_store_feature_name(pipe->store, i));
    fprintf(out, "# %zu features, schema hash %016llx\n", pipe->dim,
            (unsigned long long)nx_store_schema_hash(pipe->store));
}

static void json_num(FILE *out, double v) {
    if (isfinite(v))
        fprintf(out, "%.6g", v);
    else
        fputs("null", out);
}

void nx_pipeline_write_summary(const nx_pipeline_t *pipe, FILE *out, double seconds,
                               uint64_t bad_records) {
    nx_pipeline_stats_t s;
    nx_pipeline_stats(pipe, &s);
    fprintf(out, "{\"events\": %llu, \"predictions\": %llu, \"bad_records\": %llu, ",
            (unsigned long long)s.events, (unsigned long long)s.predictions,
            (unsigned long long)bad_records);
    fprintf(out, "\"users\": %llu, \"seconds\": %.3f, \"events_per_second\": %.0f, ",
            (unsigned long long)s.users, seconds, seconds > 0 ? (double)s.events / seconds : 0.0);
    fprintf(out, "\"labelled\": %llu, \"trained\": %llu, \"steps\": %llu, \"logloss\": ",
            (unsigned long long)s.labelled, (unsigned long long)s.trained,
            (unsigned long long)s.steps);
    json_num(out, s.logloss);
    fputs(", \"accuracy\": ", out);
    json_num(out, s.accuracy);
    fputs(", \"normalized_entropy\": ", out);
    json_num(out, s.normalized_entropy);
    fputs(", \"auc\": {", out);
    for (int k = 0; k < pipe->K; k++) {
        fprintf(out, "%s\"%s\": ", k ? ", " : "", nx_pipeline_class_name(pipe, k));
        json_num(out, s.auc[k]);
    }
    fputs("}, \"calibration_error\": ", out);
    json_num(out, s.calibration_error);
    fprintf(out,
            ", \"late\": %llu, \"dropped\": %llu, \"pending\": %llu, "
            "\"bytes_per_user\": %.1f}\n",
            (unsigned long long)s.late, (unsigned long long)s.dropped,
            (unsigned long long)s.pending, s.bytes_per_user);
}

/* ---- checkpoints ------------------------------------------------------------- */

#include "checkpoint.h"

void nx_pipeline_quiesce(nx_pipeline_t *pipe) {
    trainer_sync(pipe);
    pipe->tr.idle = 1;
}

/* ---- partitions ------------------------------------------------------------- */

int nx_pipeline_save_partition(const nx_pipeline_t *pipe, int32_t partition,
                               nx_stream_write_fn write, void *w) {
    return nx_store_save_partition(pipe->store, partition, write, w);
}

size_t nx_pipeline_drop_partition(nx_pipeline_t *pipe, int32_t partition) {
    return nx_store_drop_partition(pipe->store, partition);
}

int nx_pipeline_restore_partition(nx_pipeline_t *pipe, nx_stream_read_fn read, void *r,
                                  char *errstr, size_t errstr_size) {
    return nx_store_restore_partition(pipe->store, read, r, errstr, errstr_size);
}

typedef struct user_list {
    uint64_t *v;
    size_t n, cap;
    int oom;
} user_list_t;

static void collect_user(void *opaque, uint64_t user, int32_t partition, int64_t clock_ms) {
    (void)partition;
    (void)clock_ms;
    user_list_t *l = opaque;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = user;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

long long nx_pipeline_dump_users(const nx_pipeline_t *pipe, FILE *out) {
    user_list_t l = {0};
    nx_store_foreach(pipe->store, collect_user, &l);
    if (l.oom) {
        free(l.v);
        return -1;
    }
    qsort(l.v, l.n, sizeof *l.v, cmp_u64);
    char *buf = malloc(65536);
    for (size_t i = 0; buf && i < l.n; i++)
        if (nx_store_dump_user(pipe->store, l.v[i], buf, 65536) > 0)
            fputs(buf, out);
    /* the counters that say whether the per-user state depended on the
     * order partitions were read in */
    fprintf(out, "stats events %llu late %llu dropped %llu\n", (unsigned long long)pipe->st.events,
            (unsigned long long)pipe->st.late, (unsigned long long)pipe->st.dropped);
    long long n = buf ? (long long)l.n : -1;
    free(buf);
    free(l.v);
    return n;
}

/* "pipeline.v" section: watermark, partition clocks, the examples not yet
 * trained on (the trainer's partial mini-batch and the segment being
 * filled) and counters, so a restored pipeline loses no label. The trainer
 * must be idle (trainer_sync).
 *
 * Versioned: u32 version (PIPELINE_SECTION_VERSION), then explicit fields;
 * the counters are a length-prefixed copy of nx_pipeline_stats_t, whose
 * fields are only ever appended, so an older copy loads into a newer struct
 * (the new fields start at 0). Checkpoints written before the section was
 * versioned hold the raw "pipeline" section instead: it is still read. */
#define PIPELINE_SECTION         "pipeline.v"
#define PIPELINE_SECTION_LEGACY  "pipeline"
#define PIPELINE_SECTION_VERSION 2u

/* The partition clock as stored in a checkpoint, fields explicit. */
typedef struct part_clock_rec {
    int32_t topic, partition;
    int64_t max_ts, last_wall_ms;
    int32_t revoked;
} part_clock_rec_t;

static int save_examples(const nx_pipeline_t *pipe, nx_ckpt_writer_t *w) {
    const trainer_t *tr = &pipe->tr;
    int32_t tn = tr->tn;
    uint64_t dim = pipe->dim, fn = pipe->mlp ? pipe->fill->n : 0;
    int rc = nx_checkpoint_write(w, &dim, sizeof dim);
    rc |= nx_checkpoint_write(w, &tn, sizeof tn);
    if (tn) {
        rc |= nx_checkpoint_write(w, tr->tx, (size_t)tn * pipe->dim * sizeof *tr->tx);
        rc |= nx_checkpoint_write(w, tr->ty, (size_t)tn * sizeof *tr->ty);
    }
    rc |= nx_checkpoint_write(w, &fn, sizeof fn);
    if (fn) {
        rc |= nx_checkpoint_write(w, pipe->fill->x, fn * pipe->dim * sizeof *pipe->fill->x);
        rc |= nx_checkpoint_write(w, pipe->fill->label, fn * sizeof *pipe->fill->label);
    }
    return rc ? -1 : 0;
}

static int load_examples(nx_pipeline_t *pipe, nx_ckpt_reader_t *r) {
    trainer_t *tr = &pipe->tr;
    int32_t tn;
    uint64_t dim, fn;
    if (nx_checkpoint_read(r, &dim, sizeof dim) < 0 || dim != pipe->dim ||
        nx_checkpoint_read(r, &tn, sizeof tn) < 0 || tn < 0 || tn > tr->tcap ||
        (tn && (!pipe->mlp ||
                nx_checkpoint_read(r, tr->tx, (size_t)tn * pipe->dim * sizeof *tr->tx) < 0 ||
                nx_checkpoint_read(r, tr->ty, (size_t)tn * sizeof *tr->ty) < 0)) ||
        nx_checkpoint_read(r, &fn, sizeof fn) < 0 ||
        (fn && (!pipe->mlp || fn > pipe->fill->cap ||
                nx_checkpoint_read(r, pipe->fill->x, fn * pipe->dim * sizeof *pipe->fill->x) < 0 ||
                nx_checkpoint_read(r, pipe->fill->label, fn * sizeof *pipe->fill->label) < 0)))
        return -1;
    tr->tn = tn;
    if (pipe->mlp)
        pipe->fill->n = fn;
    return 0;
}

static int save_pipeline_section(nx_pipeline_t *pipe, nx_ckpt_writer_t *w) {
    uint32_t version = PIPELINE_SECTION_VERSION, np = (uint32_t)pipe->n_parts;
    uint32_t st_len = sizeof pipe->st;
    int rc = nx_checkpoint_section_begin(w, PIPELINE_SECTION);
    rc |= nx_checkpoint_write(w, &version, sizeof version);
    rc |= nx_checkpoint_write(w, &pipe->watermark, sizeof pipe->watermark);
    rc |= nx_checkpoint_write(w, &np, sizeof np);
    for (int i = 0; i < pipe->n_parts; i++) {
        const part_clock_t *c = &pipe->parts[i];
        part_clock_rec_t rec = {c->topic, c->partition, c->max_ts, c->last_wall_ms, c->revoked};
        rc |= nx_checkpoint_write(w, &rec.topic, sizeof rec.topic);
        rc |= nx_checkpoint_write(w, &rec.partition, sizeof rec.partition);
        rc |= nx_checkpoint_write(w, &rec.max_ts, sizeof rec.max_ts);
        rc |= nx_checkpoint_write(w, &rec.last_wall_ms, sizeof rec.last_wall_ms);
        rc |= nx_checkpoint_write(w, &rec.revoked, sizeof rec.revoked);
    }
    rc |= save_examples(pipe, w);
    rc |= nx_checkpoint_write(w, &st_len, sizeof st_len);
    rc |= nx_checkpoint_write(w, &pipe->st, sizeof pipe->st);
    rc |= nx_checkpoint_write(w, &pipe->maintained_at, sizeof pipe->maintained_at);
    rc |= nx_checkpoint_section_end(w);
    return rc ? -1 : 0;
}

static int load_pipeline_v2(nx_pipeline_t *pipe, nx_ckpt_reader_t *r, char *errstr,
                            size_t errstr_size) {
    uint32_t version, np, st_len;
    if (nx_checkpoint_read(r, &version, sizeof version) < 0)
        return nx_errf(errstr, errstr_size, "checkpoint: empty pipeline section");
    if (version > PIPELINE_SECTION_VERSION)
        return nx_errf(errstr, errstr_size,
                       "checkpoint: pipeline section version %u is newer than this daemon's (%u)",
                       version, PIPELINE_SECTION_VERSION);
    if (nx_checkpoint_read(r, &pipe->watermark, sizeof pipe->watermark) < 0 ||
        nx_checkpoint_read(r, &np, sizeof np) < 0 || np > MAX_PARTS)
        goto bad;
    for (uint32_t i = 0; i < np; i++) {
        part_clock_rec_t rec;
        if (nx_checkpoint_read(r, &rec.topic, sizeof rec.topic) < 0 ||
            nx_checkpoint_read(r, &rec.partition, sizeof rec.partition) < 0 ||
            nx_checkpoint_read(r, &rec.max_ts, sizeof rec.max_ts) < 0 ||
            nx_checkpoint_read(r, &rec.last_wall_ms, sizeof rec.last_wall_ms) < 0 ||
            nx_checkpoint_read(r, &rec.revoked, sizeof rec.revoked) < 0)
            goto bad;
        pipe->parts[i] = (part_clock_t){rec.topic, rec.partition, rec.max_ts, rec.last_wall_ms,
                                        rec.revoked != 0};
    }
    pipe->n_parts = (int)np;
    if (load_examples(pipe, r) < 0 || nx_checkpoint_read(r, &st_len, sizeof st_len) < 0)
        goto bad;
    /* counters: an older, shorter copy leaves the newer fields at 0; a
     * longer one (impossible for an older daemon) is cut */
    memset(&pipe->st, 0, sizeof pipe->st);
    size_t keep = st_len < sizeof pipe->st ? st_len : sizeof pipe->st;
    if (nx_checkpoint_read(r, &pipe->st, keep) < 0)
        goto bad;
    for (size_t skip = st_len - keep; skip > 0;) {
        char junk[256];
        size_t k = skip < sizeof junk ? skip : sizeof junk;
        if (nx_checkpoint_read(r, junk, k) < 0)
            goto bad;
        skip -= k;
    }
    if (nx_checkpoint_read(r, &pipe->maintained_at, sizeof pipe->maintained_at) < 0)
        goto bad;
    return 0;
bad:
    return nx_errf(errstr, errstr_size, "checkpoint: bad pipeline section");
}

/* The section as written before it was versioned: the watermark, the
 * partition clocks and the counters as raw structs (this build's layout of
 * both is still that one). */
static int load_pipeline_legacy(nx_pipeline_t *pipe, nx_ckpt_reader_t *r, char *errstr,
                                size_t errstr_size) {
    int32_t np;
    if (nx_checkpoint_read(r, &pipe->watermark, sizeof pipe->watermark) < 0 ||
        nx_checkpoint_read(r, &np, sizeof np) < 0 || np < 0 || np > MAX_PARTS ||
        nx_checkpoint_read(r, pipe->parts, (size_t)np * sizeof pipe->parts[0]) < 0 ||
        load_examples(pipe, r) < 0 || nx_checkpoint_read(r, &pipe->st, sizeof pipe->st) < 0 ||
        nx_checkpoint_read(r, &pipe->maintained_at, sizeof pipe->maintained_at) < 0)
        return nx_errf(errstr, errstr_size, "checkpoint: bad pipeline section");
    pipe->n_parts = np;
    return 0;
}

static int load_pipeline_section(nx_pipeline_t *pipe, nx_ckpt_reader_t *r, char *errstr,
                                 size_t errstr_size) {
    if (nx_checkpoint_section_open(r, PIPELINE_SECTION) == 0)
        return load_pipeline_v2(pipe, r, errstr, errstr_size);
    if (nx_checkpoint_section_open(r, PIPELINE_SECTION_LEGACY) == 0)
        return load_pipeline_legacy(pipe, r, errstr, errstr_size);
    return nx_errf(errstr, errstr_size, "checkpoint has no pipeline section");
}

int nx_pipeline_save(nx_pipeline_t *pipe, const char *path, const nx_pipeline_section_t *extra,
                     int n_extra, char *errstr, size_t errstr_size) {
    trainer_sync(pipe); /* the trainer's state is ours until the next push */
    nx_ckpt_writer_t *w =
        nx_checkpoint_begin(path, nx_store_schema_hash(pipe->store), errstr, errstr_size);
    if (!w)
        return -1;
    int rc = 0;
    if (pipe->mlp)
        rc |= nx_checkpoint_put_mlp(w, pipe->mlp);
    rc |= nx_checkpoint_section_begin(w, "store");
    rc |= nx_store_save(pipe->store, nx_checkpoint_write, w);
    rc |= nx_checkpoint_section_end(w);
    rc |= save_pipeline_section(pipe, w);
    for (int i = 0; i < n_extra; i++) {
        rc |= nx_checkpoint_section_begin(w, extra[i].name);
        rc |= extra[i].save(extra[i].opaque, nx_checkpoint_write, w);
        rc |= nx_checkpoint_section_end(w);
    }
    if (rc) {
        const char *why = nx_checkpoint_error(w);
        nx_errf(errstr, errstr_size, "checkpoint not written: %s",
                why ? why : "a section could not be serialised");
        nx_checkpoint_abort(w);
        return -1;
    }
    return nx_checkpoint_commit(w, errstr, errstr_size);
}

int nx_pipeline_load(nx_pipeline_t *pipe, const char *path, const nx_pipeline_section_t *extra,
                     int n_extra, char *errstr, size_t errstr_size) {
    trainer_sync(pipe);
    if (pipe->mlp) {
        /* the trainer is idle: restart the segment count at 0 */
        trainer_t *tr = &pipe->tr;
        pthread_mutex_lock(&tr->mu);
        tr->pushed = 0;
        tr->trained = -1;
        pipe->fill = &tr->seg[0];
        pipe->fill->n = 0;
        tr->tn = 0;
        pthread_mutex_unlock(&tr->mu);
    }
    nx_ckpt_reader_t *r =
        nx_checkpoint_open(path, nx_store_schema_hash(pipe->store), errstr, errstr_size);
    if (!r)
        return -1;
    int rc = -1;
    if (pipe->mlp && nx_checkpoint_get_mlp(r, pipe->mlp, errstr, errstr_size) < 0)
        goto out;
    if (nx_checkpoint_section_open(r, "store") < 0) {
        nx_errf(errstr, errstr_size, "checkpoint has no store section");
        goto out;
    }
    if (nx_store_restore(pipe->store, nx_checkpoint_read, r, errstr, errstr_size) < 0)
        goto out;
    if (load_pipeline_section(pipe, r, errstr, errstr_size) < 0)
        goto out;
    if (pipe->live) {
        /* the wall clock of each partition's last event belongs to the
         * process that wrote the checkpoint: counted from it, a restart
         * after an hour down would advance every quiet partition's
         * watermark by that hour at once and expire labels and users the
         * backlog is about to update. Quiet time counts from now. */
        int64_t now = nx_now_wall_ms();
        for (int i = 0; i < pipe->n_parts; i++)
            pipe->parts[i].last_wall_ms = now;
    }
    for (int i = 0; i < n_extra; i++) {
        if (nx_checkpoint_section_open(r, extra[i].name) < 0) {
            /* an optional section a checkpoint may lack: load sees NULL */
            if (extra[i].optional &&
                extra[i].load(extra[i].opaque, NULL, NULL, 0) == 0)
                continue;
            snprintf(errstr, errstr_size, "checkpoint has no %s section", extra[i].name);
            goto out;
        }
        if (extra[i].load(extra[i].opaque, nx_checkpoint_read, r, nx_checkpoint_section_left(r)) <
            0) {
            snprintf(errstr, errstr_size, "checkpoint: bad %s section", extra[i].name);
            goto out;
        }
    }
    if (pipe->mlp) {
        /* predict from the loaded weights until the trainer publishes */
        trainer_t *tr = &pipe->tr;
        nx_mlp_publish(pipe->mlp, tr->initial);
        nx_mlp_predictor_acquire(tr->initial);
        for (int i = 0; i < NSLOT; i++)
            nx_mlp_publish(pipe->mlp, tr->slot[i]);
        atomic_store(&tr->steps, nx_mlp_step(pipe->mlp));
    }
    rc = 0;
out:
    nx_checkpoint_close(r);
    return rc;
}
