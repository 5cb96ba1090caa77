/*
 * run_metrics.c: what the daemon's loop shows of itself (run_int.h): the
 * latency histogram of input record to acknowledged prediction (or to the
 * commit of its transaction), the status line (log, systemd STATUS=), and
 * the snapshot of every figure published to the HTTP thread (http.h) with
 * the readiness answer derived from it. All of it runs in the loop's
 * thread; the HTTP thread only ever sees published copies.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "run_int.h"

/* ---- latency histogram ---------------------------------------------------- */

/* Upper bounds (ms) of the latency buckets: fine where the p99 target (20
 * ms) lies, coarse beyond a second. */
static const int64_t lat_bounds[NX_RUN_LAT_BUCKETS] = {
    1,  2,   3,   4,   5,   6,   8,   10,   12,   15,   20,    25,    30,    40,       50,
    75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000, 30000, 60000, INT64_MAX};

void nx_run_latency_add(nx_latency_t *l, int64_t ms) {
    size_t i = 0;
    while (ms > lat_bounds[i])
        i++;
    l->count[i]++;
    l->n++;
}

int64_t nx_run_latency_quantile(const nx_latency_t *l, double q) {
    if (l->n == 0)
        return -1;
    uint64_t want = (uint64_t)ceil(q * (double)l->n), seen = 0;
    for (size_t i = 0; i < NX_RUN_LAT_BUCKETS; i++) {
        seen += l->count[i];
        if (seen >= want)
            return lat_bounds[i];
    }
    return lat_bounds[NX_RUN_LAT_BUCKETS - 1];
}

void nx_run_status_line(nx_run_t *r, double secs, uint64_t events_before, double interval) {
    nx_pipeline_stats_t s;
    nx_kafka_stats_t ks;
    nx_pipeline_stats(r->pipe, &s);
    nx_kafka_stats(r->kafka, &ks);
    int purchase = nx_config_type_index(r->cfg, "purchase");
    double auc = purchase >= 0 ? s.window_auc[purchase] : NAN;
    char line[512], lat[64] = "latency -";
    if (r->lat_window.n > 0) /* an interval without predictions has no latency to show */
        snprintf(lat, sizeof lat, "latency p50 %lld ms p99 %lld ms",
                 (long long)nx_run_latency_quantile(&r->lat_window, 0.5),
                 (long long)nx_run_latency_quantile(&r->lat_window, 0.99));
    snprintf(line, sizeof line,
             "%6.0fs  %8.0f ev/s  events %llu  users %llu  pending %llu  bad %llu  "
             "logloss %.4f  auc(purchase) %.3f  %s",
             secs, (double)(s.events - events_before) / interval, (unsigned long long)s.events,
             (unsigned long long)s.users, (unsigned long long)s.pending, (unsigned long long)r->bad,
             s.window_logloss, auc, lat);
    if (r->status_tty)
        fprintf(stderr, "\r%s\033[K", line);
    else
        nx_info("%s", line);
    nx_notify_status(r->notify, line);
    memset(&r->lat_window, 0, sizeof r->lat_window);
}

/* ---- the HTTP snapshot -------------------------------------------------------- */

void nx_run_metrics_init(nx_run_t *r) {
    nx_http_metrics_t *m = &r->metrics;
    m->n_topics = r->cfg->kafka.input_topics.n;
    for (int i = 0; i < m->n_topics && i < NX_HTTP_MAX_TOPICS; i++)
        snprintf(m->topic[i], NX_HTTP_NAME, "%s", r->topics[i]);
    snprintf(m->output_topic, NX_HTTP_NAME, "%s", r->cfg->kafka.output_topic);
    snprintf(m->dead_letter_topic, NX_HTTP_NAME, "%s", r->cfg->kafka.dead_letter_topic);
    /* every refusal reason: all but ok and skipped */
    m->n_reasons = 0;
    for (int k = NX_CODEC_OK + 1; k < NX_CODEC_SKIPPED && m->n_reasons < NX_HTTP_MAX_REASONS; k++)
        snprintf(m->reason[m->n_reasons++], NX_HTTP_NAME, "%s",
                 nx_codec_reason_name((nx_codec_reason_t)k));
    m->n_buckets = NX_RUN_LAT_BUCKETS;
    for (size_t i = 0; i < NX_RUN_LAT_BUCKETS; i++)
        m->bucket_le[i] = (double)lat_bounds[i] / 1000;
}

/* Ready (/readyz) once partitions are assigned and restored, while a
 * broker is reachable (librdkafka's statistics, every 5 s), and as long as
 * the state can be made durable: a failing checkpoint makes the instance
 * not ready, so an orchestrator's readiness probe shows what the log says. */
static void readiness(nx_http_metrics_t *m, const nx_kafka_stats_t *ks,
                      const nx_ckptdir_stats_t *cs, const nx_changelog_stats_t *ls,
                      const nx_txn_stats_t *ts) {
    m->ready = 0;
    if (ts->failed)
        snprintf(m->not_ready, sizeof m->not_ready, "transactional producer fenced: stopping");
    else if (ls->failed)
        snprintf(m->not_ready, sizeof m->not_ready, "changelog failed (fenced?): stopping");
    else if (ls->restoring)
        snprintf(m->not_ready, sizeof m->not_ready, "restoring %d partition(s) from the changelog",
                 ls->restoring);
    else if (cs->failing)
        snprintf(m->not_ready, sizeof m->not_ready, "checkpoint failing: %.120s", cs->last_error);
    else if (ks->brokers_up == 0)
        snprintf(m->not_ready, sizeof m->not_ready, "no broker reachable");
    else if (ks->assigned_partitions == 0)
        snprintf(m->not_ready, sizeof m->not_ready, "no input partition assigned");
    else
        m->ready = 1;
    if (m->ready)
        m->not_ready[0] = '\0';
}

void nx_run_metrics_publish(nx_run_t *r) {
    nx_http_metrics_t *m = &r->metrics;
    nx_pipeline_stats_t s;
    nx_kafka_stats_t ks;
    nx_pipeline_stats(r->pipe, &s);
    nx_kafka_stats(r->kafka, &ks);
    for (int i = 0; i < m->n_topics; i++)
        m->events_in[i] = r->events_in[i];
    m->predictions_out = ks.produced;
    m->dead_letters = ks.dead_letters;
    const uint64_t *cnt = nx_codec_counters(r->codec);
    for (int k = 0; k < m->n_reasons; k++)
        m->decode_errors[k] = cnt[k + 1];
    m->consumer_lag = ks.consumer_lag;
    nx_kafka_lag_t lags[NX_HTTP_MAX_LAGS];
    m->n_lags = nx_kafka_lags(r->kafka, lags, NX_HTTP_MAX_LAGS);
    for (int i = 0; i < m->n_lags; i++) {
        m->lag[i].topic = lags[i].topic;
        m->lag[i].partition = lags[i].partition;
        m->lag[i].lag = lags[i].lag;
    }
    m->assigned_partitions = ks.assigned_partitions;
    m->rebalances = ks.rebalances;
    m->input_paused = ks.paused;
    m->pauses = ks.pauses;
    m->producer_queue = ks.producer_queue;
    m->produce_retries = ks.produce_retries;
    for (size_t i = 0; i < NX_RUN_LAT_BUCKETS; i++)
        m->bucket_count[i] = r->lat.count[i];
    m->latency_count = r->lat.n;
    m->latency_sum = r->lat_sum_s;
    _Static_assert(NX_STAGES_BUCKETS <= NX_HTTP_MAX_BUCKETS, "stage buckets");
    _Static_assert(NX_STAGE_N <= NX_HTTP_MAX_STAGES, "stages");
    m->n_stage_buckets = NX_STAGES_BUCKETS;
    m->n_stages = NX_STAGE_N;
    for (int b = 0; b < NX_STAGES_BUCKETS; b++)
        m->stage_le[b] = nx_stages_le(b);
    for (int k = 0; k < NX_STAGE_N; k++) {
        snprintf(m->stage_name[k], sizeof m->stage_name[k], "%s", nx_stage_name((nx_stage_t)k));
        memcpy(m->stage_count[k], r->stages.count[k], sizeof r->stages.count[k]);
        m->stage_sum_s[k] = r->stages.sum_s[k];
    }
    nx_trainer_step_hist_t sh;
    _Static_assert(NX_TRAINER_STEP_BUCKETS <= NX_HTTP_MAX_BUCKETS, "step buckets");
    nx_pipeline_step_hist(r->pipe, &sh);
    m->n_step_buckets = NX_TRAINER_STEP_BUCKETS;
    for (int i = 0; i < NX_TRAINER_STEP_BUCKETS; i++) {
        m->step_le[i] = sh.le[i];
        m->step_count[i] = sh.count[i];
    }
    m->steps_timed = sh.n;
    m->step_sum_s = sh.sum_s;
    m->users = s.users;
    m->bytes_per_user = s.bytes_per_user;
    m->pending_labels = s.pending;
    m->training_steps = s.steps;
    m->training_examples = s.trained;
    m->training_shed = nx_pipeline_shed(r->pipe);
    m->events_processed = s.events;
    m->rolling_logloss = s.window_logloss;
    m->n_classes = s.n_classes < NX_HTTP_MAX_CLASSES ? s.n_classes : NX_HTTP_MAX_CLASSES;
    for (int k = 0; k < m->n_classes; k++) {
        snprintf(m->class_name[k], NX_HTTP_NAME, "%s", nx_pipeline_class_name(r->pipe, k));
        m->rolling_auc[k] = s.window_auc[k];
    }
    nx_ckptdir_stats_t cs = {0};
    nx_changelog_stats_t ls = {0};
    if (r->ckdir) {
        nx_ckptdir_stats(r->ckdir, &cs);
        m->checkpoint_wall_ms = cs.last_wall_ms;
        m->checkpoint_duration_s = (double)cs.last_ms / 1000;
        m->checkpoint_fork_s = (double)cs.fork_us / 1e6;
        m->checkpoints_written = cs.written;
        m->checkpoints_failed = cs.failed;
        m->checkpoint_failing = cs.failing;
    }
    m->state_gaps = r->state_gaps;
    m->model_state = s.model_state;
    m->model_rollbacks = s.guard_rollbacks;
    m->model_loss_ratio = s.guard_ratio;
    m->offset_commits = ks.commits;
    m->offset_commit_failures = ks.commit_failures;
    if (r->changelog) {
        nx_changelog_stats(r->changelog, &ls);
        m->changelog = 1;
        m->restore_partitions = ls.restoring;
        m->restore_records = ls.restore_records;
        m->restores_kept = ls.restores_kept;
        m->changelog_bad_records = ls.bad_records;
        m->changelog_records = ls.records + ls.tombstones;
        m->changelog_bytes = ls.bytes;
        m->changelog_flushes = ls.flushes;
        m->changelog_aborts = ls.aborts;
        m->offset_commits = ls.flushes;
    }
    nx_txn_stats_t ts = {0};
    if (r->txn) {
        nx_txn_stats(r->txn, &ts);
        m->transactional = 1;
        m->txn_committed = ts.committed;
        m->txn_aborted = ts.aborted;
        _Static_assert(NX_TXN_BUCKETS <= NX_HTTP_MAX_BUCKETS, "transaction buckets");
        m->n_txn_buckets = NX_TXN_BUCKETS;
        for (int i = 0; i < NX_TXN_BUCKETS; i++) {
            m->txn_le[i] = nx_txn_bucket_le(i);
            m->txn_count[i] = ts.dur_count[i];
        }
        m->txn_sum_s = ts.dur_sum_s;
        m->txn_commit_s = ts.commit_s;
        m->offset_commits = ts.committed;
    }
    if (r->modelsync) {
        nx_modelsync_stats_t ss;
        nx_modelsync_stats(r->modelsync, &ss);
        m->model_sync = 1;
        m->model_syncs_published = ss.published;
        m->model_syncs_merged = ss.merged;
        m->model_syncs_skipped = ss.skipped;
        m->model_syncs_stale = ss.stale;
        m->model_sync_replicas = ss.replicas;
        m->model_sync_distance = ss.distance;
    }
    m->schema_waits = ks.rewinds;
    m->schema_waiting_partitions = ks.held_partitions;
    if (r->registry) {
        nx_registry_stats_t rs;
        nx_registry_stats(r->registry, &rs);
        m->registry_found = rs.found;
        m->registry_not_found = rs.not_found;
        m->registry_failures = rs.failures;
        m->registry_retries = rs.retries;
        m->registry_pending = rs.pending;
    }
    readiness(m, &ks, &cs, &ls, &ts);
    nx_http_publish(r->http, m);
}
