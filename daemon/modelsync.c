/* modelsync.c: the group's model through a compacted topic (modelsync.h). */
#include "modelsync.h"

#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "kadmin.h"
#include "log.h"
#include "merge.h"
#include "norm.h"

#define MAGIC   0x534d584eu /* "NXMS" little-endian */
#define VERSION 1u
#define HEADER  80 /* bytes before the slabs (see modelsync.h) */

/* What the trainer has in hand: nothing, the round's copy, the merge. */
enum { PHASE_IDLE = 0, PHASE_COPY, PHASE_MERGE };
/* Instances of one group we keep a record of. */
#define MAX_PEERS 256
/* Start-up: reading the topic to its end, and topic metadata. */
#define START_READ_MS    30000
#define ADMIN_TIMEOUT_MS 15000
/* Records read per tick at most: the loop's other work waits meanwhile. */
#define READ_PER_TICK 64
/* At shutdown, the record being published gets this long. */
#define CLOSE_FLUSH_MS 2000

/* The latest record of one instance. */
typedef struct peer {
    char *id;
    int64_t offset;        /* of this record */
    int64_t merged_offset; /* record last blended in (or adopted, or found stale); -1 none */
    int64_t wall_ms;
    uint64_t step, examples, events, count, seq;
    int serving;     /* its guard served the model when it was copied */
    float *slab;     /* (3, n_params) weights, m, v */
    double *moments; /* (2, dim) mean, var */
} peer_t;

struct nx_modelsync {
    const nx_config_t *cfg;
    nx_pipeline_t *pipe;
    nx_norm_t *norm;
    char topic[256];
    char id[256]; /* this instance */
    size_t np, dim;
    uint64_t layout;
    size_t rec_size;
    rd_kafka_t *producer, *reader;
    rd_kafka_topic_t *rkt;
    peer_t peers[MAX_PEERS];
    int n_peers;
    /* the round in hand (see modelsync.h) */
    nx_trainer_merge_t xchg;
    int phase;              /* PHASE_*: what the trainer has in hand */
    int64_t round;          /* last round begun (its copy asked for) */
    int64_t snap_round;     /* round whose copy is published and not merged yet; -1 none */
    float *snap;            /* (3, n_params) that copy */
    uint64_t snap_examples; /* its weight: examples trained in the round before it */
    uint64_t snap_step;
    int snap_serving;         /* the guard served the model at the copy */
    double *acc;              /* (3, n_params) */
    double *own_moments;      /* (2, dim) the normaliser at the copy, for the record */
    uint64_t own_events;      /* vectors in the round before the copy, for the record */
    uint64_t count_at_sync;   /* normaliser count at the previous copy */
    uint64_t events_at_merge; /* normaliser count at the previous merge */
    double *nacc;             /* (2, dim) sum of a_j mean_j, a_j (var_j + mean_j^2) */
    uint8_t *rec;             /* (rec_size) one record, ours */
    nx_modelsync_stats_t st;
};

/* ---- little-endian fields --------------------------------------------------- */

static void put32(uint8_t *b, uint32_t v) {
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *b, uint64_t v) {
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *b) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}
static uint64_t get64(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* x86-64 and arm64 are little-endian: floats go as their bytes. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "record layout is little-endian");

/* ---- records ------------------------------------------------------------------ */

/* FNV-1a of the feature schema hash and the model's shape: replicas whose
 * slabs do not line up weight for weight must not meet. */
static uint64_t layout_of(const nx_pipeline_t *pipe) {
    const nx_mlp_t *mlp = nx_pipeline_mlp(pipe);
    const nx_mlp_params_t *p = nx_mlp_params(mlp);
    uint64_t v[4 + 2 * NX_MLP_MAX_HIDDEN + 2];
    size_t n = 0;
    v[n++] = nx_store_schema_hash(nx_pipeline_store((nx_pipeline_t *)pipe));
    v[n++] = (uint64_t)p->act;
    v[n++] = (uint64_t)p->opt;
    v[n++] = (uint64_t)p->binary_head;
    for (int l = 0; l < nx_mlp_num_layers(mlp); l++) {
        v[n++] = (uint64_t)nx_mlp_layer_in(mlp, l);
        v[n++] = (uint64_t)nx_mlp_layer_out(mlp, l);
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 8; k++) {
            h ^= (v[i] >> (8 * k)) & 0xff;
            h *= 0x100000001b3ULL;
        }
    return h;
}

static size_t record_size(size_t np, size_t dim) {
    return HEADER + 3 * np * sizeof(float) + 2 * dim * sizeof(double) + 4;
}

/* Our record from the exchange the trainer filled. */
static void encode(nx_modelsync_t *ms, int64_t wall_ms) {
    uint8_t *b = ms->rec;
    put32(b, MAGIC);
    b[4] = (uint8_t)VERSION;
    b[5] = (uint8_t)ms->snap_serving;
    b[6] = b[7] = 0;
    put64(b + 8, ms->layout);
    put64(b + 16, ms->xchg.local_step);
    put64(b + 24, ms->xchg.local_examples);
    put64(b + 32, ms->own_events);
    put64(b + 40, nx_norm_count(ms->norm));
    put64(b + 48, (uint64_t)ms->round);
    put64(b + 56, (uint64_t)wall_ms);
    put32(b + 64, (uint32_t)ms->np);
    put32(b + 68, (uint32_t)ms->dim);
    memcpy(b + 72, &ms->st.distance, 8);
    size_t off = HEADER;
    memcpy(b + off, ms->xchg.local, 3 * ms->np * sizeof(float));
    off += 3 * ms->np * sizeof(float);
    memcpy(b + off, ms->own_moments, 2 * ms->dim * sizeof(double));
    off += 2 * ms->dim * sizeof(double);
    put32(b + off, nx_crc32c(0, b, off));
}

static int all_finite_f(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}
static int all_finite_d(const double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* Checks a record and decodes it into peer (its slabs allocated here).
 * NULL, or what is wrong with it. */
static const char *decode(const nx_modelsync_t *ms, const uint8_t *b, size_t len, peer_t *peer) {
    static char why[160];
    if (len < HEADER + 4) {
        snprintf(why, sizeof why, "%zu bytes, too short for a model record", len);
        return why;
    }
    if (get32(b) != MAGIC)
        return "not a model record (magic)";
    if (b[4] != VERSION) {
        snprintf(why, sizeof why, "version %u, this daemon reads %u", b[4], VERSION);
        return why;
    }
    if (get64(b + 8) != ms->layout || get32(b + 64) != ms->np || get32(b + 68) != ms->dim) {
        snprintf(why, sizeof why,
                 "another model layout or feature schema (%u parameters, %u features; here %zu, "
                 "%zu)",
                 get32(b + 64), get32(b + 68), ms->np, ms->dim);
        return why;
    }
    if (len != ms->rec_size) {
        snprintf(why, sizeof why, "%zu bytes, want %zu", len, ms->rec_size);
        return why;
    }
    if (get32(b + len - 4) != nx_crc32c(0, b, len - 4))
        return "checksum mismatch";
    /* the record's bytes are not aligned for float/double loads: copied */
    float *s = malloc(3 * ms->np * sizeof *s);
    double *m = malloc(2 * ms->dim * sizeof *m);
    if (!s || !m) {
        free(s);
        free(m);
        return "out of memory";
    }
    memcpy(s, b + HEADER, 3 * ms->np * sizeof *s);
    memcpy(m, b + HEADER + 3 * ms->np * sizeof *s, 2 * ms->dim * sizeof *m);
    if (!all_finite_f(s, 3 * ms->np) || !all_finite_d(m, 2 * ms->dim)) {
        free(s);
        free(m);
        return "non-finite values";
    }
    peer->step = get64(b + 16);
    peer->examples = get64(b + 24);
    peer->events = get64(b + 32);
    peer->count = get64(b + 40);
    peer->seq = get64(b + 48);
    peer->serving = b[5] == 1;
    peer->wall_ms = (int64_t)get64(b + 56);
    peer->slab = s;
    peer->moments = m;
    return NULL;
}

static void peer_clear(peer_t *p) {
    free(p->slab);
    free(p->moments);
    p->slab = NULL;
    p->moments = NULL;
}

static peer_t *peer_find(nx_modelsync_t *ms, const char *id, size_t len, int add) {
    for (int i = 0; i < ms->n_peers; i++)
        if (strlen(ms->peers[i].id) == len && memcmp(ms->peers[i].id, id, len) == 0)
            return &ms->peers[i];
    if (!add || ms->n_peers == MAX_PEERS)
        return NULL;
    peer_t *p = &ms->peers[ms->n_peers];
    memset(p, 0, sizeof *p);
    if (!(p->id = strndup(id, len)))
        return NULL;
    p->merged_offset = -1;
    ms->n_peers++;
    return p;
}

/* One record of the topic: the newest of its instance, or refused. */
static void take_record(nx_modelsync_t *ms, const rd_kafka_message_t *m) {
    char shown[64];
    snprintf(shown, sizeof shown, "%.*s", (int)(m->key_len < 40 ? m->key_len : 40),
             m->key ? (const char *)m->key : "");
    if (!m->key || m->key_len == 0) {
        ms->st.skipped++;
        NX_LOG_RL(NX_LOG_WARNING, "model sync: record at offset %lld of %s skipped: no key",
                  (long long)m->offset, ms->topic);
        return;
    }
    if (!m->payload) { /* a tombstone: the instance is gone for good */
        peer_t *p = peer_find(ms, m->key, m->key_len, 0);
        if (p)
            peer_clear(p);
        return;
    }
    peer_t rec = {0};
    const char *why = decode(ms, m->payload, m->len, &rec);
    if (why) {
        ms->st.skipped++;
        NX_LOG_RL(NX_LOG_WARNING,
                  "model sync: bad record skipped: key \"%s\", offset %lld of %s: %s", shown,
                  (long long)m->offset, ms->topic, why);
        return;
    }
    peer_t *p = peer_find(ms, m->key, m->key_len, 1);
    if (!p) {
        peer_clear(&rec);
        NX_LOG_RL(NX_LOG_WARNING, "model sync: more than %d instances in %s; \"%s\" left out",
                  MAX_PEERS, ms->topic, shown);
        return;
    }
    peer_clear(p);
    p->offset = m->offset;
    p->wall_ms = rec.wall_ms;
    p->step = rec.step;
    p->examples = rec.examples;
    p->events = rec.events;
    p->count = rec.count;
    p->seq = rec.seq;
    p->serving = rec.serving;
    p->slab = rec.slab;
    p->moments = rec.moments;
}

/* Reads up to max records (waiting at most wait_ms for the first). Returns
 * 1 at the partition's end, 0 otherwise. */
static int read_some(nx_modelsync_t *ms, int max, int wait_ms) {
    int at_end = 0;
    for (int i = 0; i < max; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ms->reader, i == 0 ? wait_ms : 0);
        if (!m)
            break;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            at_end = 1;
        else if (m->err)
            NX_LOG_RL(NX_LOG_WARNING, "model sync: reading %s: %s", ms->topic,
                      rd_kafka_message_errstr(m));
        else
            take_record(ms, m);
        rd_kafka_message_destroy(m);
    }
    return at_end;
}

/* ---- merging ----------------------------------------------------------------- */

/* The normaliser's mixture with the others' (weights a_j in nacc, total
 * a), own weight self_w; n: the count to keep at least. */
static void blend_norm(nx_modelsync_t *ms, double self_w, double a, uint64_t n) {
    if (!(a > 0))
        return;
    double *mean = ms->nacc, *ex2 = ms->nacc + ms->dim;
    for (size_t i = 0; i < ms->dim; i++) {
        mean[i] /= a;
        ex2[i] = ex2[i] / a - mean[i] * mean[i]; /* now the variance */
    }
    nx_norm_blend(ms->norm, mean, ex2, self_w, a, n);
}

static void nacc_add(nx_modelsync_t *ms, const peer_t *p, double a) {
    const double *mean = p->moments, *var = p->moments + ms->dim;
    for (size_t i = 0; i < ms->dim; i++) {
        ms->nacc[i] += a * mean[i];
        ms->nacc[ms->dim + i] += a * (var[i] + mean[i] * mean[i]);
    }
}

/* A model the group's guards passed is served here too: the replicas are
 * one model, and each guard alone would warm on its own share of the
 * examples, serving the prior N times as long as one daemon would. */
static void trust(nx_modelsync_t *ms, int serving) {
    if (serving && nx_pipeline_model_trust(ms->pipe))
        nx_notice("model sync: serving the group's model (its guards passed it)");
}

/* Start-up: the group's model, if it is further on than ours. */
static void adopt(nx_modelsync_t *ms) {
    const peer_t *newest = NULL;
    for (int i = 0; i < ms->n_peers; i++)
        if (ms->peers[i].slab && (!newest || ms->peers[i].wall_ms > newest->wall_ms))
            newest = &ms->peers[i];
    uint64_t own = nx_mlp_step(nx_pipeline_mlp(ms->pipe));
    if (!newest) {
        nx_notice("model sync: no model in %s yet; starting from this one (step %llu)", ms->topic,
                  (unsigned long long)own);
        return;
    }
    /* the group: the instances that published within the stale horizon of
     * the newest record; weights as at a merge, equal if none trained */
    int64_t horizon = NX_MODELSYNC_STALE_SYNCS * ms->cfg->model.sync_interval_ms;
    double w = 0, a = 0;
    uint64_t step = 0, count = 0;
    int k = 0;
    for (int i = 0; i < ms->n_peers; i++) {
        const peer_t *p = &ms->peers[i];
        if (!p->slab || p->wall_ms < newest->wall_ms - horizon)
            continue;
        w += (double)p->examples;
        a += (double)p->events;
        step = p->step > step ? p->step : step;
        count = p->count > count ? p->count : count;
        k++;
    }
    if (step <= own) {
        nx_notice("model sync: this model (step %llu) is as far on as the group's in %s (step "
                  "%llu); keeping it",
                  (unsigned long long)own, ms->topic, (unsigned long long)step);
        return;
    }
    memset(ms->acc, 0, 3 * ms->np * sizeof *ms->acc);
    memset(ms->nacc, 0, 2 * ms->dim * sizeof *ms->nacc);
    double wsum = 0, asum = 0;
    int serving = 0;
    for (int i = 0; i < ms->n_peers; i++) {
        peer_t *p = &ms->peers[i];
        if (!p->slab || p->wall_ms < newest->wall_ms - horizon)
            continue;
        double wi = w > 0 ? (double)p->examples : 1.0, ai = a > 0 ? (double)p->events : 1.0;
        nx_merge_add(ms->acc, p->slab, 3 * ms->np, wi);
        nacc_add(ms, p, ai);
        wsum += wi;
        asum += ai;
        serving |= p->serving;
        p->merged_offset = p->offset;
    }
    float *slab = ms->xchg.local; /* free until the first merge */
    for (size_t i = 0; i < 3 * ms->np; i++)
        slab[i] = (float)(ms->acc[i] / wsum);
    nx_pipeline_model_adopt(ms->pipe, slab, step);
    blend_norm(ms, 0, asum, count);
    ms->count_at_sync = nx_norm_count(ms->norm);
    ms->st.adopted_step = step;
    trust(ms, serving);
    nx_notice("model sync: starting from the group's model in %s: step %llu (this one: %llu), "
              "the mean of %d instance(s)",
              ms->topic, (unsigned long long)step, (unsigned long long)own, k);
}

/* The round's first half: the trainer copies the model as it stands. */
static void copy_start(nx_modelsync_t *ms) {
    uint64_t count = nx_norm_count(ms->norm);
    ms->own_events = count - ms->count_at_sync;
    ms->count_at_sync = count;
    nx_norm_moments(ms->norm, ms->own_moments, ms->own_moments + ms->dim);
    ms->xchg.acc = NULL;
    ms->xchg.acc_weight = 0;
    ms->xchg.max_step = 0;
    ms->xchg.snap = NULL;
    atomic_store(&ms->xchg.done, 0);
    if (nx_pipeline_model_merge(ms->pipe, &ms->xchg) == 0)
        ms->phase = PHASE_COPY;
}

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    nx_modelsync_t *ms = opaque;
    if (!m->err)
        ms->st.published++;
    else
        NX_LOG_RL(NX_LOG_WARNING,
                  "model sync: publishing to %s failed: %s; the next round publishes again",
                  ms->topic, rd_kafka_err2str(m->err));
}

/* The copy is made: it is published, and kept for the merge. */
static void copy_done(nx_modelsync_t *ms, int64_t now_wall) {
    ms->phase = PHASE_IDLE;
    memcpy(ms->snap, ms->xchg.local, 3 * ms->np * sizeof *ms->snap);
    ms->snap_examples = ms->xchg.local_examples;
    ms->snap_step = ms->xchg.local_step;
    ms->snap_serving = nx_pipeline_model_serving(ms->pipe);
    ms->snap_round = ms->round;
    encode(ms, now_wall);
    if (rd_kafka_produce(ms->rkt, 0, RD_KAFKA_MSG_F_COPY, ms->rec, ms->rec_size, ms->id,
                         strlen(ms->id), NULL) != 0)
        NX_LOG_RL(NX_LOG_WARNING, "model sync: cannot publish to %s: %s", ms->topic,
                  rd_kafka_err2str(rd_kafka_last_error()));
}

/* The round's second half: the copies of round r, ours and the others',
 * make the group's mean; the model is rebased on it, the normaliser
 * blended with the others'. */
static void merge_start(nx_modelsync_t *ms, int64_t r) {
    double w = (double)ms->snap_examples, a = 0;
    uint64_t step = ms->snap_step;
    int k = 0, serving = 0;
    memset(ms->acc, 0, 3 * ms->np * sizeof *ms->acc);
    memset(ms->nacc, 0, 2 * ms->dim * sizeof *ms->nacc);
    nx_merge_add(ms->acc, ms->snap, 3 * ms->np, w);
    for (int i = 0; i < ms->n_peers; i++) {
        peer_t *p = &ms->peers[i];
        if (!p->slab || strcmp(p->id, ms->id) == 0 || p->offset <= p->merged_offset)
            continue;
        if ((int64_t)p->seq < r) { /* published too late for its round, or not at all */
            p->merged_offset = p->offset;
            ms->st.stale++;
            continue;
        }
        if ((int64_t)p->seq > r)
            continue; /* the next round's: for the next merge */
        p->merged_offset = p->offset;
        nx_merge_add(ms->acc, p->slab, 3 * ms->np, (double)p->examples);
        nacc_add(ms, p, (double)p->events);
        w += (double)p->examples;
        a += (double)p->events;
        step = p->step > step ? p->step : step;
        serving |= p->serving;
        k++;
    }
    ms->st.replicas = k;
    ms->st.merged += (uint64_t)k;
    ms->st.syncs++;
    if (k == 0 || !(w > 0))
        return; /* no one to meet, or no one trained: the model stays */
    uint64_t count = nx_norm_count(ms->norm);
    blend_norm(ms, (double)(count - ms->events_at_merge), a, 0);
    ms->events_at_merge = nx_norm_count(ms->norm);
    ms->xchg.acc = ms->acc;
    ms->xchg.acc_weight = w;
    ms->xchg.max_step = step;
    ms->xchg.snap = ms->snap;
    atomic_store(&ms->xchg.done, 0);
    if (nx_pipeline_model_merge(ms->pipe, &ms->xchg) == 0)
        ms->phase = PHASE_MERGE;
    trust(ms, serving);
}

void nx_modelsync_tick(nx_modelsync_t *ms, int64_t now_mono) {
    (void)now_mono;
    read_some(ms, READ_PER_TICK, 0);
    rd_kafka_poll(ms->producer, 0);
    const int64_t every = ms->cfg->model.sync_interval_ms;
    int64_t now = nx_now_wall_ms();
    if (ms->phase != PHASE_IDLE && !atomic_load(&ms->xchg.done))
        return;
    if (ms->phase == PHASE_COPY)
        copy_done(ms, now);
    else if (ms->phase == PHASE_MERGE)
        ms->st.distance = ms->xchg.deviation;
    ms->phase = PHASE_IDLE;
    if (ms->snap_round >= 0 && now >= ms->snap_round * every + every / NX_MODELSYNC_GRACE) {
        int64_t r = ms->snap_round;
        ms->snap_round = -1;
        merge_start(ms, r);
    } else if (now / every > ms->round) {
        ms->round = now / every;
        copy_start(ms);
    }
}

/* ---- start and end ------------------------------------------------------------- */

int nx_modelsync_topic(const nx_config_t *cfg, char *buf, size_t size) {
    buf[0] = '\0';
    if (cfg->model.sync_interval_ms <= 0 || !cfg->model.enabled)
        return 0;
    if (cfg->model.sync_topic[0])
        snprintf(buf, size, "%s", cfg->model.sync_topic);
    else if (cfg->state.changelog[0])
        snprintf(buf, size, "%s-model", cfg->kafka.group_id);
    return buf[0] != '\0';
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    nx_log(level < NX_LOG_ERR ? NX_LOG_ERR : level, "model sync: %s: %s", fac, buf);
}

static int start_clients(nx_modelsync_t *ms, const char *brokers, char *errstr,
                         size_t errstr_size) {
    const nx_config_t *cfg = ms->cfg;
    char why[512], max_bytes[32], seg_bytes[32], group[600];
    /* a record is the whole model: the broker's 1 MB default may be short */
    size_t need = ms->rec_size + 4096 > 1048588 ? ms->rec_size + 4096 : 1048588;
    snprintf(max_bytes, sizeof max_bytes, "%zu", need);
    /* Segments roll every 10 min or 64 records per instance, whichever
     * first, so compaction keeps what a starting instance reads short. */
    snprintf(seg_bytes, sizeof seg_bytes, "%zu", need * 64);
    const char *pprops[] = {"client.id",
                            "nextactd-model",
                            "enable.idempotence",
                            "true",
                            "linger.ms",
                            "0",
                            "message.max.bytes",
                            max_bytes,
                            NULL};
    rd_kafka_conf_t *conf = nx_kadmin_client_conf("model sync", brokers, &cfg->kafka.producer,
                                                  pprops, log_cb, errstr, errstr_size);
    if (!conf)
        return -1;
    rd_kafka_conf_set_dr_msg_cb(conf, delivered);
    rd_kafka_conf_set_opaque(conf, ms);
    if (!(ms->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why))) {
        rd_kafka_conf_destroy(conf);
        return nx_errf(errstr, errstr_size, "model sync: producer: %s", why);
    }
    char e[512];
    int n = nx_kadmin_partitions(ms->producer, ms->topic, ADMIN_TIMEOUT_MS, e, sizeof e);
    if (n == 0) {
        const char *tprops[] = {"max.message.bytes",
                                max_bytes,
                                "segment.bytes",
                                seg_bytes,
                                "segment.ms",
                                "600000",
                                NULL};
        if (nx_kadmin_create_compacted(ms->producer, ms->topic, 1,
                                       (int)cfg->state.replication_factor, tprops, ADMIN_TIMEOUT_MS,
                                       e, sizeof e) < 0)
            n = -1;
    }
    if (n < 0)
        return nx_errf(errstr, errstr_size, "model sync: %s", e);
    ms->rkt = rd_kafka_topic_new(ms->producer, ms->topic, NULL);
    snprintf(group, sizeof group, "%s-model-%s", cfg->kafka.group_id, ms->id);
    const char *cprops[] = {"group.id",
                            group,
                            "client.id",
                            "nextactd-model-reader",
                            "enable.auto.commit",
                            "false",
                            "enable.auto.offset.store",
                            "false",
                            "enable.partition.eof",
                            "true",
                            "auto.offset.reset",
                            "earliest",
                            "fetch.max.bytes",
                            max_bytes,
                            NULL};
    if (!(conf = nx_kadmin_client_conf("model sync", brokers, &cfg->kafka.consumer, cprops, log_cb,
                                       errstr, errstr_size)))
        return -1;
    if (!(ms->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why))) {
        rd_kafka_conf_destroy(conf);
        return nx_errf(errstr, errstr_size, "model sync: reader: %s", why);
    }
    rd_kafka_poll_set_consumer(ms->reader);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, ms->topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(ms->reader, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        return nx_errf(errstr, errstr_size, "model sync: reading %s: %s", ms->topic,
                       rd_kafka_err2str(err));
    return 0;
}

nx_modelsync_t *nx_modelsync_new(const nx_config_t *cfg, const char *brokers, nx_pipeline_t *pipe,
                                 char *errstr, size_t errstr_size) {
    nx_modelsync_t *ms = calloc(1, sizeof *ms);
    if (!ms) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    ms->cfg = cfg;
    ms->pipe = pipe;
    if (!nx_modelsync_topic(cfg, ms->topic, sizeof ms->topic) || !nx_pipeline_mlp(pipe)) {
        nx_errf(errstr, errstr_size, "model sync: off in this configuration");
        goto err;
    }
    const char *inst = cfg->state.instance_id;
    if (inst[0])
        snprintf(ms->id, sizeof ms->id, "%s", inst);
    else if (gethostname(ms->id, sizeof ms->id - 1) < 0 || !ms->id[0])
        snprintf(ms->id, sizeof ms->id, "nextactd");
    ms->norm = nx_store_norm(nx_pipeline_store(pipe));
    ms->np = nx_mlp_num_params(nx_pipeline_mlp(pipe));
    ms->dim = nx_store_dim(nx_pipeline_store(pipe));
    ms->layout = layout_of(pipe);
    ms->rec_size = record_size(ms->np, ms->dim);
    ms->acc = malloc(3 * ms->np * sizeof *ms->acc);
    ms->xchg.local = malloc(3 * ms->np * sizeof *ms->xchg.local);
    ms->snap = malloc(3 * ms->np * sizeof *ms->snap);
    ms->own_moments = malloc(2 * ms->dim * sizeof *ms->own_moments);
    ms->nacc = malloc(2 * ms->dim * sizeof *ms->nacc);
    ms->rec = malloc(ms->rec_size);
    if (!ms->acc || !ms->xchg.local || !ms->snap || !ms->own_moments || !ms->nacc || !ms->rec) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (start_clients(ms, brokers, errstr, errstr_size) < 0)
        goto err;
    /* the group's model as it stands: the topic to its end */
    int64_t until = nx_now_mono_ms() + START_READ_MS;
    int at_end = 0;
    while (!at_end && nx_now_mono_ms() < until)
        at_end = read_some(ms, 1024, 100);
    if (!at_end)
        nx_warn("model sync: %s not read to its end in %d s; starting from what was read",
                ms->topic, START_READ_MS / 1000);
    ms->count_at_sync = nx_norm_count(ms->norm);
    adopt(ms);
    ms->events_at_merge = ms->count_at_sync;
    ms->snap_round = -1;
    ms->round = nx_now_wall_ms() / cfg->model.sync_interval_ms; /* the next one is the first */
    nx_notice("model sync: topic %s, instance \"%s\", every %lld ms, %zu-byte records", ms->topic,
              ms->id, (long long)cfg->model.sync_interval_ms, ms->rec_size);
    return ms;
err:
    nx_modelsync_destroy(ms);
    return NULL;
}

void nx_modelsync_stats(const nx_modelsync_t *ms, nx_modelsync_stats_t *stats) {
    *stats = ms->st;
}

void nx_modelsync_destroy(nx_modelsync_t *ms) {
    if (!ms)
        return;
    if (ms->reader) {
        rd_kafka_consumer_close(ms->reader);
        rd_kafka_destroy(ms->reader);
    }
    if (ms->producer)
        rd_kafka_flush(ms->producer, CLOSE_FLUSH_MS);
    if (ms->rkt)
        rd_kafka_topic_destroy(ms->rkt);
    if (ms->producer)
        rd_kafka_destroy(ms->producer);
    for (int i = 0; i < ms->n_peers; i++) {
        peer_clear(&ms->peers[i]);
        free(ms->peers[i].id);
    }
    free(ms->acc);
    free(ms->xchg.local);
    free(ms->snap);
    free(ms->own_moments);
    free(ms->nacc);
    free(ms->rec);
    free(ms);
}
