/* pipeline.c: one micro-batch through features, model and outputs
 * (pipeline.h). */
#include "pipeline_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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
/* Bytes of one encoded prediction record: user id (<= 256), topic name
 * (<= 249), class names and numbers fit well within this. */
#define REC_MAX 4096

static void store_params_from(const nx_config_t *cfg, int n_scores, nx_store_params_t *sp) {
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
        (cfg->features.price ? NX_FEAT_PRICE : 0) | (cfg->features.labels ? NX_FEAT_LABELS : 0) |
        (cfg->features.item_popularity ? NX_FEAT_ITEMPOP : 0) |
        (cfg->features.item_rates ? NX_FEAT_ITEMRATE : 0);
    sp->label_decay = (float)cfg->features.label_decay;
    sp->item_stats_bytes = (uint64_t)cfg->features.item_stats_mb << 20;
    sp->item_stats_window_ms = cfg->features.item_stats_window_s * 1000;
    sp->clip = (float)cfg->features.clip;
    sp->horizon_ms = cfg->labels.horizon_s * 1000;
    sp->seed = (uint64_t)cfg->model.seed;
    sp->n_scores = n_scores;
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

nx_pipeline_t *nx_pipeline_new(const nx_config_t *cfg, const uint8_t key[NX_SIPHASH_KEY_LEN],
                               int flags, const nx_pipeline_out_t *out, char *errstr,
                               size_t errstr_size) {
    nx_pipeline_t *pipe = calloc(1, sizeof *pipe);
    if (!pipe) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pipe->cfg = cfg;
    pipe->live = (flags & NX_PIPELINE_LIVE) != 0;
    const int live = pipe->live;
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
    pipe->clock = INT64_MIN;

    /* the model's scores kept with each pending example, and the
     * oracle's after them */
    pipe->n_scores = (flags & NX_PIPELINE_ORACLE) ? 2 * pipe->K : pipe->K;
    if (pipe->n_scores > NX_STORE_MAX_SCORES) {
        nx_errf(errstr, errstr_size, "oracle probabilities: %d classes are too many", pipe->K);
        goto err;
    }
    nx_store_params_t sp;
    store_params_from(cfg, pipe->n_scores, &sp);
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
    if (flags & NX_PIPELINE_ORACLE) {
        pipe->oracle_metrics =
            nx_metrics_new(pipe->K, (uint32_t)cfg->model.metrics_window, errstr, errstr_size);
        pipe->S = malloc((size_t)STEP * (size_t)pipe->n_scores * sizeof *pipe->S);
        if (!pipe->oracle_metrics || !pipe->S) {
            if (pipe->oracle_metrics)
                nx_errf(errstr, errstr_size, "out of memory");
            goto err;
        }
    }
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
    pipe->ex.score = malloc(mb * (size_t)pipe->n_scores * sizeof *pipe->ex.score);
    pipe->ex.cap = mb;
    pipe->rec = malloc(REC_MAX);
    if (!pipe->X || !pipe->status || !pipe->P || !pipe->ex.x || !pipe->ex.label ||
        !pipe->ex.ts_ms || !pipe->ex.score || !pipe->rec) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (pipe->mlp) {
        /* a segment holds one step's resolved examples plus expired ones */
        const char *prio = cfg->model.trainer_priority;
        pipe->tr = nx_trainer_new(pipe->mlp, pipe->dim, (int)cfg->model.batch_size, 2 * STEP, live,
                                  strcmp(prio, "idle") == 0  ? NX_TRAINER_PRIO_IDLE
                                  : strcmp(prio, "low") == 0 ? NX_TRAINER_PRIO_LOW
                                                             : NX_TRAINER_PRIO_NORMAL,
                                  cfg->model.replay_lag_ms, errstr, errstr_size);
        if (!pipe->tr)
            goto err;
    }
    nx_guard_params_t gp = {.enabled = cfg->model.guard && pipe->mlp != NULL,
                            .K = pipe->K,
                            .window = (uint64_t)cfg->model.guard_window,
                            .margin = cfg->model.guard_margin};
    if (!(pipe->guard = nx_guard_new(&gp, errstr, errstr_size)))
        goto err;
    pipe->Q = calloc(mb * (size_t)pipe->K, sizeof *pipe->Q);
    pipe->served = calloc(mb, 1);
    if (!pipe->Q || !pipe->served) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    pipe->explain = pipe->mlp ? (int)cfg->output.explain : 0;
    if (pipe->explain > (int)pipe->dim)
        pipe->explain = (int)pipe->dim;
    pipe->explain_class = -1;
    if (pipe->explain && cfg->output.explain_class && cfg->output.explain_class[0]) {
        for (int k = 0; k < pipe->K; k++)
            if (strcmp(nx_pipeline_class_name(pipe, k), cfg->output.explain_class) == 0)
                pipe->explain_class = k;
        if (pipe->explain_class < 0) {
            nx_errf(errstr, errstr_size,
                    "output.explain_class \"%s\" is not a class (an event type or \"none\")",
                    cfg->output.explain_class);
            goto err;
        }
    }
    if (pipe->explain) {
        if (!(pipe->explainer = nx_explainer_new(nx_mlp_params(pipe->mlp), errstr, errstr_size)))
            goto err;
        pipe->C = malloc(mb * pipe->dim * sizeof *pipe->C);
        pipe->x0 = calloc(pipe->dim, sizeof *pipe->x0);
        pipe->cls = calloc(mb, sizeof *pipe->cls);
        pipe->reasons = calloc(mb * (size_t)pipe->explain, sizeof *pipe->reasons);
        pipe->importance = calloc(pipe->dim, sizeof *pipe->importance);
        pipe->importance_step = calloc(pipe->dim, sizeof *pipe->importance_step);
        if (!pipe->C || !pipe->x0 || !pipe->cls || !pipe->reasons || !pipe->importance ||
            !pipe->importance_step) {
            nx_errf(errstr, errstr_size, "out of memory");
            goto err;
        }
    }
    pipe->st.n_classes = pipe->K;
    return pipe;
err:
    nx_pipeline_destroy(pipe);
    return NULL;
}

void nx_pipeline_destroy(nx_pipeline_t *pipe) {
    if (!pipe)
        return;
    nx_trainer_destroy(pipe->tr); /* before the model it trains */
    nx_predenc_destroy(pipe->enc);
    nx_metrics_destroy(pipe->metrics);
    nx_metrics_destroy(pipe->oracle_metrics);
    free(pipe->S);
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
    nx_guard_destroy(pipe->guard);
    free(pipe->Q);
    free(pipe->served);
    nx_explainer_destroy(pipe->explainer);
    free(pipe->C);
    free(pipe->x0);
    free(pipe->cls);
    free(pipe->reasons);
    free(pipe->importance);
    free(pipe->importance_step);
    free(pipe);
}

void nx_pipeline_step_hist(const nx_pipeline_t *pipe, nx_trainer_step_hist_t *h) {
    nx_trainer_step_hist(pipe->tr, h);
}

uint64_t nx_pipeline_shed(const nx_pipeline_t *pipe) {
    return pipe->tr ? nx_trainer_shed(pipe->tr) : 0;
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
    if (!c)
        return;
    c->max_ts = max_ts_ms;
    /* Its clock is unknown until its first event, which may be far older
     * than the others' (their input read on while nobody covered this
     * partition): the watermark starts over (0: none yet, as at start), and
     * the partition, assigned and not yet heard from, holds it there until
     * watermark_update takes the minimum over all of them again. */
    if (max_ts_ms == INT64_MIN) {
        pipe->watermark = 0;
        return;
    }
    /* as nx_pipeline_assign: the restored users' state ends at this clock */
    if (max_ts_ms - pipe->lateness_ms < pipe->watermark)
        pipe->watermark = max_ts_ms - pipe->lateness_ms;
}

nx_store_t *nx_pipeline_store(nx_pipeline_t *pipe) {
    return pipe->store;
}

const nx_mlp_t *nx_pipeline_mlp(const nx_pipeline_t *pipe) {
    return pipe->mlp;
}

int nx_pipeline_model_merge(nx_pipeline_t *pipe, nx_trainer_merge_t *m) {
    if (!pipe->tr)
        return -1;
    nx_trainer_merge(pipe->tr, m);
    return 0;
}

int nx_pipeline_model_adopt(nx_pipeline_t *pipe, const float *slab, uint64_t step) {
    if (!pipe->tr)
        return -1;
    nx_trainer_sync(pipe->tr); /* the model is this thread's until the next push */
    size_t np = nx_mlp_num_params(pipe->mlp), bytes = np * sizeof(float);
    memcpy(nx_mlp_weights(pipe->mlp), slab, bytes);
    memcpy(nx_mlp_opt_m(pipe->mlp), slab + np, bytes);
    memcpy(nx_mlp_opt_v(pipe->mlp), slab + 2 * np, bytes);
    nx_mlp_set_step(pipe->mlp, step);
    nx_trainer_adopt(pipe->tr);
    return 0;
}

int nx_pipeline_model_serving(const nx_pipeline_t *pipe) {
    return pipe->mlp && nx_guard_state(pipe->guard) == NX_MODEL_SERVING;
}

int nx_pipeline_model_trust(nx_pipeline_t *pipe) {
    if (!pipe->mlp || nx_guard_state(pipe->guard) != NX_MODEL_WARMING)
        return 0;
    nx_guard_serve_loaded(pipe->guard);
    return nx_guard_state(pipe->guard) == NX_MODEL_SERVING;
}

void nx_pipeline_revoke(nx_pipeline_t *pipe, int32_t topic, int32_t partition) {
    part_clock_t *c = part_clock(pipe, topic, partition);
    if (c)
        c->revoked = 1;
}

/* ---- labels ------------------------------------------------------------------ */

/* Labelled examples in pipe->ex: score them (progressive validation, with
 * the probabilities published at their events) and queue them for the
 * trainer. */
/* The guard's action goes to the trainer with the segment being filled:
 * it is carried out before the examples that follow. */
static void guard_act(nx_pipeline_t *pipe, const nx_guard_action_t *act) {
    if (!pipe->tr)
        return;
    unsigned cmd = (act->rollback ? NX_TRAINER_ROLLBACK : 0) |
                   (act->snapshot ? NX_TRAINER_SNAPSHOT : 0) |
                   (act->lr > 0 ? NX_TRAINER_SET_LR : 0);
    if (cmd)
        nx_trainer_command(pipe->tr, cmd, act->lr);
}

static void take_examples(nx_pipeline_t *pipe) {
    const nx_examples_t *ex = &pipe->ex;
    for (size_t r = 0; r < ex->n; r++) {
        int32_t y = ex->label[r];
        const float *score = ex->score + r * (size_t)pipe->n_scores;
        nx_metrics_add(pipe->metrics, score, y);
        if (pipe->oracle_metrics)
            nx_metrics_add(pipe->oracle_metrics, score + pipe->K, y);
        pipe->st.labelled++;
        nx_guard_action_t act;
        if (nx_guard_example(pipe->guard, score, y, &act))
            guard_act(pipe, &act);
        if (pipe->tr)
            nx_trainer_add(pipe->tr, ex->x + r * pipe->dim, y);
    }
}

/* ---- what is served ------------------------------------------------------------- */

/* At the start of a step: the guard's state and prior it serves. */
static void latch_guard(nx_pipeline_t *pipe) {
    pipe->step_state = nx_guard_state(pipe->guard);
    nx_guard_prior(pipe->guard, pipe->step_prior);
}

/* A row of probabilities a consumer can use: finite, in [0, 1]. */
static int row_ok(const float *p, int K) {
    for (int k = 0; k < K; k++)
        if (!(p[k] >= 0.0f && p[k] <= 1.0f))
            return 0;
    return 1;
}

/* The rows served (Q) and what served them: the model's rows (P), or the
 * guard's prior while warming or where the model's row is not a
 * probability (the guard rolls back then). A bad model row is replaced by
 * the prior in P too, so the metrics and the pending scores stay finite. */
static void serve(nx_pipeline_t *pipe, float *P, float *Q, uint8_t *served, size_t n) {
    const int K = pipe->K;
    const float *prior = pipe->step_prior;
    for (size_t i = 0; i < n; i++) {
        float *p = P + i * (size_t)K, *q = Q + i * (size_t)K;
        nx_model_state_t state = pipe->step_state;
        if (!row_ok(p, K)) {
            nx_guard_action_t act;
            if (nx_guard_nonfinite(pipe->guard, &act))
                guard_act(pipe, &act);
            memcpy(p, prior, sizeof(float) * (size_t)K);
            state = NX_MODEL_FALLBACK;
        }
        memcpy(q, state == NX_MODEL_WARMING ? prior : p, sizeof(float) * (size_t)K);
        pipe->st.served_prior += state == NX_MODEL_WARMING;
        served[i] = (uint8_t)state;
    }
}

/* ---- reasons -------------------------------------------------------------------- */

/* Largest contributions first; ties by feature index, so the order is the
 * same on every run. */
static void top_reasons(const nx_pipeline_t *pipe, const float *c, const float *x,
                        nx_reason_t *out) {
    const int N = pipe->explain;
    int idx[NX_PIPELINE_MAX_REASONS], m = 0;
    for (size_t j = 0; j < pipe->dim; j++) {
        int pos = m < N ? m++ : N;
        if (pos == N && !(c[j] > c[idx[N - 1]]))
            continue;
        if (pos == N)
            pos = N - 1;
        while (pos > 0 && c[j] > c[idx[pos - 1]]) {
            idx[pos] = idx[pos - 1];
            pos--;
        }
        idx[pos] = (int)j;
    }
    for (int r = 0; r < m; r++)
        out[r] =
            (nx_reason_t){nx_store_feature_name(pipe->store, (size_t)idx[r]), x[idx[r]], c[idx[r]]};
}

/* Contributions of the explained class (output.explain_class, or each
 * row's most likely) for the rows served by the model; rows gets the first row's place in the step
 * and n the rows to report. W: the weights that predicted them. */
static void explain_rows(nx_pipeline_t *pipe, const float *W, const float *X, const float *P,
                         int rows, size_t first, size_t n) {
    const int K = pipe->K;
    for (int i = 0; i < rows; i++) {
        const float *p = P + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (p[k] > p[best])
                best = k;
        pipe->cls[i] = pipe->explain_class >= 0 ? pipe->explain_class : best;
    }
    if (nx_explain_rows(pipe->explainer, W, X, pipe->x0, pipe->cls, rows, pipe->C, NULL) < 0)
        return;
    for (size_t i = first; i < first + n; i++) {
        const float *c = pipe->C + i * pipe->dim;
        top_reasons(pipe, c, X + i * pipe->dim, pipe->reasons + i * (size_t)pipe->explain);
        float *acc = pipe->importance_step;
        for (size_t j = 0; j < pipe->dim; j++)
            acc[j] += fabsf(c[j]);
    }
    for (size_t j = 0; j < pipe->dim; j++) {
        pipe->importance[j] += pipe->importance_step[j];
        pipe->importance_step[j] = 0;
    }
    pipe->explained += n;
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

/* One prediction record per event of the piece: rows off.. of the step's
 * served probabilities (Q), their states and reasons; version: the weights
 * that predicted them. */
static void emit_records(nx_pipeline_t *pipe, const nx_event_t *ev, size_t n, size_t base,
                         const char *const *topic_names, int64_t now_ms, size_t off,
                         uint64_t version) {
    const int K = pipe->K;
    const float *Q = pipe->Q + off * (size_t)K;
    const uint8_t *served = pipe->served + off;
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
            .probs = Q + i * (size_t)K,
            .model_version = (int64_t)version,
            .model_state = (nx_model_state_t)served[i],
        };
        /* reasons say why the model said what it said: not for the prior */
        if (pipe->explainer && served[i] != NX_MODEL_WARMING) {
            pr.reasons = pipe->reasons + (pipe->live ? i : off + i) * (size_t)pipe->explain;
            pr.n_reasons = pipe->explain;
        }
        int64_t len = nx_predenc_encode(pipe->enc, &pr, pipe->rec, REC_MAX);
        if (len < 0 || !pipe->out.emit ||
            pipe->out.emit(pipe->out.opaque, base + i, &ev[i], pipe->rec, (size_t)len) < 0)
            pipe->st.emit_errors++;
        else
            pipe->st.predictions++;
    }
}

/* A piece of a step: at most STEP events, never across a multiple of STEP
 * in the count of events processed so far. Every decision that depends on
 * where a step ends (the watermark used for lateness, label expiry, the
 * order of examples for training, which weights predict, replay
 * maintenance) is taken at those fixed points of the input, so in replay
 * the outputs do not depend on how the input was cut into batches.
 * `base` is the index of ev[0] in the caller's batch. */
static void process_step(nx_pipeline_t *pipe, const nx_event_t *ev, const float *oracle, size_t n,
                         size_t base, const char *const *topic_names, int64_t now_ms) {
    /* 1. features against the watermark so far, labels resolved by these
     *    events */
    /* rows sit at their place in the step: X, P and status hold a step */
    size_t off = (size_t)(pipe->st.events % STEP);
    float *X = pipe->X + off * pipe->dim, *P = pipe->P + off * (size_t)pipe->K;
    uint8_t *status = pipe->status + off;
    if (off == 0)
        latch_guard(pipe);
    if (nx_store_update(pipe->store, ev, n, pipe->watermark, X, status, &pipe->ex) < 0)
        return; /* cannot happen: ex.cap >= STEP >= n */
    /* The step's event time, for the weights that predict it: fixed by its
     * first event, so the same wherever a batch ends. The step's later
     * events are predicted as if at that time (never with fresher weights
     * than the live trainer could have had). */
    if (off == 0) {
        pipe->step_time = pipe->clock;
        if ((status[0] == NX_STORE_OK || status[0] == NX_STORE_LATE) &&
            ev[0].ts_ms > pipe->step_time)
            pipe->step_time = ev[0].ts_ms;
    }

    /* 2. one forward pass */
    int K = pipe->K;
    uint64_t version = 0;
    nx_mlp_predictor_t *pred = NULL; /* the weights that predict this step */
    if (pipe->tr) {
        pred = nx_trainer_predictor(pipe->tr, pipe->step_time);
        version = nx_mlp_predictor_version(pred);
        /* sgemm's rounding of a row may depend on the rows around it (edge
         * tiles): replay always multiplies the whole step, so a row's
         * probabilities do not depend on where a batch ended. Live, only
         * the new rows. */
        /* with reasons, the explainer's forward pass predicts (same bits)
         * and keeps what the explanation needs */
        if (pipe->explainer) {
            const float *W = nx_mlp_predictor_weights(pred);
            if (pipe->live)
                nx_explain_forward(pipe->explainer, W, X, (int)n, P);
            else
                nx_explain_forward(pipe->explainer, W, pipe->X, STEP, pipe->P);
        } else if (pipe->live) {
            nx_mlp_predictor_predict(pred, X, (int)n, P);
        } else {
            nx_mlp_predictor_predict(pred, pipe->X, STEP, pipe->P);
        }
    } else {
        for (size_t i = 0; i < n * (size_t)K; i++)
            P[i] = 1.0f / (float)K;
    }
    float *Q = pipe->Q + off * (size_t)K;
    uint8_t *served = pipe->served + off;
    serve(pipe, P, Q, served, n);
    if (pipe->S) {
        /* each row: the model's probabilities, then the oracle's (the
         * uniform guess where the caller gave none) */
        for (size_t i = 0; i < n; i++) {
            float *s = pipe->S + i * (size_t)pipe->n_scores;
            memcpy(s, P + i * (size_t)K, sizeof(float) * (size_t)K);
            for (int k = 0; k < K; k++)
                s[K + k] = oracle ? oracle[i * (size_t)K + (size_t)k] : 1.0f / (float)K;
        }
        nx_store_set_scores(pipe->store, ev, n, status, pipe->S);
    } else {
        nx_store_set_scores(pipe->store, ev, n, status, P);
    }

    /* 2b. reasons, from the weights that predicted (as the forward pass:
     * the whole step in replay, the new rows live; live, asking the trainer
     * again could hand out a newer snapshot than the one that predicted) */
    if (pipe->explainer) {
        const float *W = nx_mlp_predictor_weights(pred);
        if (pipe->live)
            explain_rows(pipe, W, X, P, (int)n, 0, n);
        else
            explain_rows(pipe, W, pipe->X, pipe->P, STEP, off, n);
    }

    /* 3. one record per event (replay: at the end, see there) */
    if (pipe->live)
        emit_records(pipe, ev, n, base, topic_names, now_ms, off, version);
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
        if (ev[i].ts_ms > pipe->clock)
            pipe->clock = ev[i].ts_ms;
    }
    /* the examples resolved so far resolved by this event time (pushes
     * happen at the step's end, when the clock holds the whole step) */
    if (pipe->tr)
        nx_trainer_set_clock(pipe->tr, pipe->clock);

    /* The rest happens once per step, when its last event is in: a batch
     * that ends inside a step leaves it for the next batch. */
    if (pipe->st.events % STEP != 0) {
        if (!pipe->live)
            emit_records(pipe, ev, n, base, topic_names, now_ms, off, version);
        return;
    }
    watermark_update(pipe, now_ms);
    expire_labels(pipe);

    /* 6. in replay, store maintenance at fixed points of the input */
    if (!pipe->live && pipe->st.events - pipe->maintained_at >= REPLAY_MAINTAIN_EVERY) {
        nx_store_maintain(pipe->store, pipe->watermark, 0);
        pipe->maintained_at = pipe->st.events;
    }

    /* 7. this step's labelled examples go to the trainer as one segment */
    if (pipe->tr)
        nx_trainer_push(pipe->tr);

    /* 8. replay: the records last, so that the trainer trains this step's
     * segment while they are encoded and written (the next step predicts
     * from it); what they hold was fixed above */
    if (!pipe->live)
        emit_records(pipe, ev, n, base, topic_names, now_ms, off, version);
}

void nx_pipeline_process_oracle(nx_pipeline_t *pipe, const nx_event_t *ev, const float *oracle,
                                size_t n, const char *const *topic_names, int64_t now_ms) {
    size_t i = 0;
    while (i < n) {
        size_t room = STEP - (size_t)(pipe->st.events % STEP);
        size_t len = n - i < room ? n - i : room;
        process_step(pipe, ev + i, oracle ? oracle + i * (size_t)pipe->K : NULL, len, i,
                     topic_names, now_ms);
        i += len;
    }
}

void nx_pipeline_process(nx_pipeline_t *pipe, const nx_event_t *ev, size_t n,
                         const char *const *topic_names, int64_t now_ms) {
    nx_pipeline_process_oracle(pipe, ev, NULL, n, topic_names, now_ms);
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
    if (pipe->tr)
        nx_trainer_finish(pipe->tr);
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
    stats->steps = pipe->tr ? nx_trainer_steps(pipe->tr) : 0;
    stats->trained = pipe->tr ? nx_trainer_kept(pipe->tr) : 0;
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
    nx_guard_stats_t gs;
    nx_guard_stats(pipe->guard, &gs);
    stats->model_state = (int)gs.state;
    stats->guard_rollbacks = gs.rollbacks;
    stats->guard_ratio = gs.last_ratio;
    stats->explained = pipe->explained;
    for (int k = 0; k < pipe->K && k < NX_PIPELINE_MAX_CLASSES; k++) {
        stats->auc[k] = r.auc[k];
        stats->window_auc[k] = w.auc[k];
    }
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
