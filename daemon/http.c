/* http.c: /metrics, /healthz and /readyz over libmicrohttpd (http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

/* Response buffer: a scrape is a few kB (topics x reasons x classes are all
 * bounded, see NX_HTTP_MAX_*); 64 kB holds the largest with room. */
#define RESPONSE_MAX 65536

struct nx_http {
    struct MHD_Daemon *mhd;
    pthread_mutex_t lock;
    nx_http_metrics_t snap; /* under lock */
};

/* ---- formatting ------------------------------------------------------------ */

typedef struct out {
    char *buf;
    size_t size, len;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->len < o->size ? o->buf + o->len : NULL,
                      o->len < o->size ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static void head(out_t *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values here are topic, reason and class names from the
 * configuration: escape what the text format requires anyway. */
static void put_label(out_t *o, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(o, "\\%c", *v);
        else if (*v == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *v);
    }
}

/* One histogram series from per-bucket counts (not cumulative); the last
 * bucket is +Inf, so its cumulative count is the total. labels: "" or
 * `key="value",` (with the comma). */
static void put_series(out_t *o, const char *name, const char *labels, int n, const double *le,
                       const uint64_t *count, double sum) {
    uint64_t cum = 0;
    for (int i = 0; i < n; i++) {
        cum += count[i];
        if (i == n - 1)
            put(o, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
        else
            put(o, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, le[i], (unsigned long long)cum);
    }
    size_t l = strlen(labels);
    if (l) /* the labels without their trailing comma */
        put(o, "%s_sum{%.*s} %.6f\n%s_count{%.*s} %llu\n", name, (int)(l - 1), labels, sum, name,
            (int)(l - 1), labels, (unsigned long long)cum);
    else
        put(o, "%s_sum %.6f\n%s_count %llu\n", name, sum, name, (unsigned long long)cum);
}

static void put_histogram(out_t *o, const char *name, const char *help, int n, const double *le,
                          const uint64_t *count, double sum) {
    head(o, name, "histogram", help);
    put_series(o, name, "", n, le, count, sum);
}

/* The stage histograms: to_produce on its own, the others by stage. */
static void put_stages(out_t *o, const nx_http_metrics_t *m) {
    int to_produce = -1;
    for (int k = 0; k < m->n_stages; k++)
        if (strcmp(m->stage_name[k], "to_produce") == 0)
            to_produce = k;
    if (to_produce >= 0)
        put_histogram(o, "nextactd_produce_latency_seconds",
                      "Input record (broker timestamp) to its prediction handed to the producer.",
                      m->n_stage_buckets, m->stage_le, m->stage_count[to_produce],
                      m->stage_sum_s[to_produce]);
    head(o, "nextactd_stage_seconds", "histogram",
         "Where the latency goes: fetch = broker timestamp to the loop's poll, less queued = "
         "held in the client while the loop was busy; decode = poll to the pipeline, predict = "
         "pipeline to produce(), ack = produce() to the delivery report.");
    for (int k = 0; k < m->n_stages; k++) {
        if (k == to_produce)
            continue;
        char labels[64];
        snprintf(labels, sizeof labels, "stage=\"%s\",", m->stage_name[k]);
        put_series(o, "nextactd_stage_seconds", labels, m->n_stage_buckets, m->stage_le,
                   m->stage_count[k], m->stage_sum_s[k]);
    }
}

/* A gauge whose value may not be known: left out then, as Prometheus
 * expects, rather than a placeholder a rule would take for a value. */
static void put_gauge_if(out_t *o, const char *name, const char *help, int known, double v) {
    head(o, name, "gauge", help);
    if (known && isfinite(v))
        put(o, "%s %.6f\n", name, v);
}

/* The process_* metrics of the Prometheus client libraries, from /proc:
 * each is left out if its source cannot be read. */
static void put_process(out_t *o) {
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    /* after the command name (which may hold spaces and parentheses): field
     * 3 (state) onwards; utime 14, stime 15, starttime 22, vsize 23, rss 24 */
    const char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    int ok = p && tick > 0 && page > 0 &&
             sscanf(p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                    "%*d %llu %llu %lld",
                    &utime, &stime, &start, &vsize, &rss) == 5;
    if (ok) {
        head(o, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.");
        put(o, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)tick);
        head(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        put(o, "process_virtual_memory_bytes %llu\n", vsize);
        head(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        put(o, "process_resident_memory_bytes %lld\n", rss * (long long)page);
    }
    /* the start: boot time (/proc/stat btime) plus starttime ticks */
    unsigned long long btime = 0;
    if (ok && (f = fopen("/proc/stat", "r"))) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "btime %llu", &btime) == 1)
                break;
        fclose(f);
        if (btime) {
            head(o, "process_start_time_seconds", "gauge",
                 "Start time of the process since unix epoch in seconds.");
            put(o, "process_start_time_seconds %.2f\n",
                (double)btime + (double)start / (double)tick);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = 0;
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        head(o, "process_open_fds", "gauge", "Number of open file descriptors.");
        put(o, "process_open_fds %ld\n", fds - 1); /* less the one listing them */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        head(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        put(o, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

size_t nx_http_format(const nx_http_metrics_t *m, int64_t now_wall_ms, char *buf, size_t size) {
    out_t o = {buf, size, 0};
    if (size)
        buf[0] = '\0';
    head(&o, "nextactd_build_info", "gauge", "The running nextactd's version, as a label; 1.");
    put(&o, "nextactd_build_info{version=\"");
    put_label(&o, NX_VERSION);
    put(&o, "\"} 1\n");
    head(&o, "nextactd_events_in_total", "counter", "Records consumed per input topic.");
    for (int i = 0; i < m->n_topics; i++) {
        put(&o, "nextactd_events_in_total{topic=\"");
        put_label(&o, m->topic[i]);
        put(&o, "\"} %llu\n", (unsigned long long)m->events_in[i]);
    }
    /* each record out is counted once: predictions here, dead letters in
     * nextactd_dead_letters_total, so summing both adds up */
    head(&o, "nextactd_events_out_total", "counter",
         "Predictions acknowledged by the broker, per output topic (dead letters: "
         "nextactd_dead_letters_total).");
    put(&o, "nextactd_events_out_total{topic=\"");
    put_label(&o, m->output_topic);
    put(&o, "\"} %llu\n", (unsigned long long)m->predictions_out);
    head(&o, "nextactd_dead_letters_total", "counter",
         "Bad records acknowledged by the broker on the dead-letter topic (every bad "
         "record: nextactd_decode_errors_total).");
    put(&o, "nextactd_dead_letters_total %llu\n", (unsigned long long)m->dead_letters);
    head(&o, "nextactd_decode_errors_total", "counter",
         "Records refused by the decoder, by reason.");
    for (int i = 0; i < m->n_reasons; i++) {
        put(&o, "nextactd_decode_errors_total{reason=\"");
        put_label(&o, m->reason[i]);
        put(&o, "\"} %llu\n", (unsigned long long)m->decode_errors[i]);
    }
    head(&o, "nextactd_events_processed_total", "counter", "Events through the pipeline.");
    put(&o, "nextactd_events_processed_total %llu\n", (unsigned long long)m->events_processed);
    head(&o, "nextactd_consumer_lag", "gauge",
         "Records behind the end of each assigned partition (librdkafka statistics, every 5 s).");
    for (int i = 0; i < m->n_lags; i++) {
        int t = m->lag[i].topic;
        put(&o, "nextactd_consumer_lag{topic=\"");
        put_label(&o, t >= 0 && t < m->n_topics ? m->topic[t] : "");
        put(&o, "\",partition=\"%d\"} %lld\n", (int)m->lag[i].partition, (long long)m->lag[i].lag);
    }
    head(&o, "nextactd_consumer_lag_records", "gauge",
         "Records behind the end of all assigned partitions together (absent until known).");
    if (m->consumer_lag >= 0)
        put(&o, "nextactd_consumer_lag_records %lld\n", (long long)m->consumer_lag);
    head(&o, "nextactd_assigned_partitions", "gauge", "Input partitions owned.");
    put(&o, "nextactd_assigned_partitions %d\n", m->assigned_partitions);
    head(&o, "nextactd_rebalances_total", "counter", "Consumer-group rebalance callbacks.");
    put(&o, "nextactd_rebalances_total %llu\n", (unsigned long long)m->rebalances);
    head(&o, "nextactd_input_paused", "gauge",
         "1 while back-pressure holds the input partitions paused (producer queue full).");
    put(&o, "nextactd_input_paused %d\n", m->input_paused);
    head(&o, "nextactd_backpressure_pauses_total", "counter",
         "Times the input was paused because predictions were not being acknowledged.");
    put(&o, "nextactd_backpressure_pauses_total %llu\n", (unsigned long long)m->pauses);
    head(&o, "nextactd_producer_queue", "gauge",
         "Predictions and dead letters produced and not yet acknowledged by the broker.");
    put(&o, "nextactd_producer_queue %d\n", m->producer_queue);
    head(&o, "nextactd_produce_retries_total", "counter",
         "Records produced again after a failed delivery (none is ever skipped).");
    put(&o, "nextactd_produce_retries_total %llu\n", (unsigned long long)m->produce_retries);

    put_histogram(&o, "nextactd_latency_seconds",
                  m->transactional
                      ? "Input record (broker timestamp) to the commit of its prediction's "
                        "transaction."
                      : "Input record (broker timestamp) to its prediction acknowledged.",
                  m->n_buckets, m->bucket_le, m->bucket_count, m->latency_sum);
    put_stages(&o, m);
    put_histogram(&o, "nextactd_training_step_seconds",
                  "Duration of one training step (mini-batch forward, backward, update).",
                  m->n_step_buckets, m->step_le, m->step_count, m->step_sum_s);

    head(&o, "nextactd_users", "gauge", "Users in the feature store.");
    put(&o, "nextactd_users %llu\n", (unsigned long long)m->users);
    put_gauge_if(&o, "nextactd_user_state_bytes", "Feature-store memory per user, mean, bytes.",
                 m->users > 0, m->bytes_per_user);
    head(&o, "nextactd_pending_labels", "gauge", "Examples waiting for their label.");
    put(&o, "nextactd_pending_labels %llu\n", (unsigned long long)m->pending_labels);
    head(&o, "nextactd_training_steps_total", "counter", "Optimizer steps (= model version).");
    put(&o, "nextactd_training_steps_total %llu\n", (unsigned long long)m->training_steps);
    head(&o, "nextactd_training_examples_total", "counter",
         "Labelled examples trained on (after negative down-sampling).");
    put(&o, "nextactd_training_examples_total %llu\n", (unsigned long long)m->training_examples);
    head(&o, "nextactd_training_examples_shed_total", "counter",
         "Labelled examples not trained on because the trainer, which runs at a lower "
         "priority than predictions, was too far behind.");
    put(&o, "nextactd_training_examples_shed_total %llu\n", (unsigned long long)m->training_shed);
    put_gauge_if(&o, "nextactd_rolling_logloss",
                 "Progressive-validation log loss over the rolling window (absent before any "
                 "labelled example).",
                 1, m->rolling_logloss);
    head(&o, "nextactd_rolling_auc", "gauge",
         "Progressive-validation one-vs-rest AUC over the rolling window, per class (absent "
         "while undefined).");
    for (int k = 0; k < m->n_classes; k++) {
        if (!isfinite(m->rolling_auc[k]))
            continue;
        put(&o, "nextactd_rolling_auc{class=\"");
        put_label(&o, m->class_name[k]);
        put(&o, "\"} %.6f\n", m->rolling_auc[k]);
    }
    put_gauge_if(&o, "nextactd_checkpoint_age_seconds",
                 "Seconds since the last checkpoint was complete (absent before the first).",
                 m->checkpoint_wall_ms != 0, (double)(now_wall_ms - m->checkpoint_wall_ms) / 1000);
    put_gauge_if(&o, "nextactd_checkpoint_duration_seconds", "Time the last checkpoint took.",
                 m->checkpoint_wall_ms != 0, m->checkpoint_duration_s);
    put_gauge_if(&o, "nextactd_checkpoint_fork_seconds",
                 "Main-loop pause of the last checkpoint's fork().", m->checkpoint_wall_ms != 0,
                 m->checkpoint_fork_s);
    head(&o, "nextactd_checkpoints_total", "counter", "Checkpoints written.");
    put(&o, "nextactd_checkpoints_total %llu\n", (unsigned long long)m->checkpoints_written);
    head(&o, "nextactd_checkpoint_failures_total", "counter", "Checkpoint writes that failed.");
    put(&o, "nextactd_checkpoint_failures_total %llu\n", (unsigned long long)m->checkpoints_failed);
    head(&o, "nextactd_checkpoint_failing", "gauge",
         "1 while checkpoints fail (state not durable, commits held back).");
    put(&o, "nextactd_checkpoint_failing %d\n", m->checkpoint_failing);
    head(&o, "nextactd_model_state", "gauge",
         "What serves predictions: 1 on the current state (serving, warming, fallback).");
    static const char *const states[] = {"serving", "warming", "fallback"};
    for (int k = 0; k < 3; k++)
        put(&o, "nextactd_model_state{state=\"%s\"} %d\n", states[k], m->model_state == k);
    put_gauge_if(&o, "nextactd_model_loss_ratio",
                 "The model's progressive log loss over the prior's (the classes' running base "
                 "rates) on the guard's last window of labelled examples: over 1, the prior "
                 "predicts better (absent before the first window).",
                 1, m->model_loss_ratio);
    head(&o, "nextactd_model_rollbacks_total", "counter",
         "Rollbacks of the model to its last good snapshot by the guard.");
    put(&o, "nextactd_model_rollbacks_total %llu\n", (unsigned long long)m->model_rollbacks);
    head(&o, "nextactd_state_gaps_total", "counter",
         "Partitions started from a committed offset with no state covering it.");
    put(&o, "nextactd_state_gaps_total %llu\n", (unsigned long long)m->state_gaps);
    head(&o, "nextactd_offset_commits_total", "counter", "Input offset commits acknowledged.");
    put(&o, "nextactd_offset_commits_total %llu\n", (unsigned long long)m->offset_commits);
    head(&o, "nextactd_offset_commit_failures_total", "counter",
         "Input offset commits that failed.");
    put(&o, "nextactd_offset_commit_failures_total %llu\n",
        (unsigned long long)m->offset_commit_failures);
    if (m->changelog) {
        head(&o, "nextactd_restore_partitions", "gauge",
             "Partitions restoring from the changelog or waiting to (their input is held).");
        put(&o, "nextactd_restore_partitions %d\n", m->restore_partitions);
        head(&o, "nextactd_restore_records_total", "counter",
             "Changelog records read by restores.");
        put(&o, "nextactd_restore_records_total %llu\n", (unsigned long long)m->restore_records);
        head(&o, "nextactd_restores_kept_total", "counter",
             "Partition restores that started from the users this instance kept when the "
             "partition was revoked, reading only the changelog written after them.");
        put(&o, "nextactd_restores_kept_total %llu\n", (unsigned long long)m->restores_kept);
        head(&o, "nextactd_changelog_bad_records_total", "counter",
             "Changelog records skipped at restore (truncated, another version or layout).");
        put(&o, "nextactd_changelog_bad_records_total %llu\n",
            (unsigned long long)m->changelog_bad_records);
        head(&o, "nextactd_changelog_records_total", "counter",
             "User records and tombstones written to the changelog.");
        put(&o, "nextactd_changelog_records_total %llu\n",
            (unsigned long long)m->changelog_records);
        head(&o, "nextactd_changelog_bytes_total", "counter",
             "Keys and values written to the changelog, bytes before compression.");
        put(&o, "nextactd_changelog_bytes_total %llu\n", (unsigned long long)m->changelog_bytes);
        head(&o, "nextactd_changelog_flushes_total", "counter",
             "Changelog transactions committed (with the input offsets they cover).");
        put(&o, "nextactd_changelog_flushes_total %llu\n",
            (unsigned long long)m->changelog_flushes);
        head(&o, "nextactd_changelog_aborts_total", "counter",
             "Changelog transactions aborted (their users are written by the next).");
        put(&o, "nextactd_changelog_aborts_total %llu\n", (unsigned long long)m->changelog_aborts);
    }
    if (m->transactional) {
        head(&o, "nextactd_transactions_committed_total", "counter",
             "Exactly-once transactions committed (predictions, dead letters, changelog records "
             "and input offsets of a span of input).");
        put(&o, "nextactd_transactions_committed_total %llu\n",
            (unsigned long long)m->txn_committed);
        head(&o, "nextactd_transactions_aborted_total", "counter",
             "Exactly-once transactions aborted: the state went back to the last committed one "
             "and the span was processed again.");
        put(&o, "nextactd_transactions_aborted_total %llu\n", (unsigned long long)m->txn_aborted);
        put_histogram(&o, "nextactd_transaction_duration_seconds",
                      "Committed transactions, from their start to the end of their commit.",
                      m->n_txn_buckets, m->txn_le, m->txn_count, m->txn_sum_s);
        head(&o, "nextactd_transaction_commit_seconds_total", "counter",
             "Time the loop spent committing transactions (it waits for each commit).");
        put(&o, "nextactd_transaction_commit_seconds_total %.6f\n", m->txn_commit_s);
    }
    if (m->model_sync) {
        head(&o, "nextactd_model_syncs_total", "counter",
             "Model sync records: own copies published, the other instances' merged, skipped "
             "(bad size, version, layout or checksum) or stale (too late for their round).");
        put(&o, "nextactd_model_syncs_total{result=\"published\"} %llu\n",
            (unsigned long long)m->model_syncs_published);
        put(&o, "nextactd_model_syncs_total{result=\"merged\"} %llu\n",
            (unsigned long long)m->model_syncs_merged);
        put(&o, "nextactd_model_syncs_total{result=\"skipped\"} %llu\n",
            (unsigned long long)m->model_syncs_skipped);
        put(&o, "nextactd_model_syncs_total{result=\"stale\"} %llu\n",
            (unsigned long long)m->model_syncs_stale);
        head(&o, "nextactd_model_sync_replicas", "gauge",
             "Other instances whose models the last sync merged.");
        put(&o, "nextactd_model_sync_replicas %d\n", m->model_sync_replicas);
        head(&o, "nextactd_model_sync_distance", "gauge",
             "Relative L2 distance of this instance's weights from the group's mean right after "
             "the last round's merge.");
        put(&o, "nextactd_model_sync_distance %.6g\n", m->model_sync_distance);
    }
    head(&o, "nextactd_schema_registry_fetches_total", "counter",
         "Writer schema fetches from the Schema Registry by outcome (failed: no answer, timeout, "
         "HTTP 5xx, ...).");
    put(&o, "nextactd_schema_registry_fetches_total{result=\"found\"} %llu\n",
        (unsigned long long)m->registry_found);
    put(&o, "nextactd_schema_registry_fetches_total{result=\"not_found\"} %llu\n",
        (unsigned long long)m->registry_not_found);
    put(&o, "nextactd_schema_registry_fetches_total{result=\"failed\"} %llu\n",
        (unsigned long long)m->registry_failures);
    head(&o, "nextactd_schema_registry_retries_total", "counter",
         "Fetches of a schema id after a failed one (bounded exponential backoff).");
    put(&o, "nextactd_schema_registry_retries_total %llu\n",
        (unsigned long long)m->registry_retries);
    head(&o, "nextactd_schema_registry_pending_ids", "gauge",
         "Schema ids waiting for the registry's answer.");
    put(&o, "nextactd_schema_registry_pending_ids %d\n", m->registry_pending);
    head(&o, "nextactd_schema_waits_total", "counter",
         "Times an input partition stopped at a record whose writer schema was not in yet.");
    put(&o, "nextactd_schema_waits_total %llu\n", (unsigned long long)m->schema_waits);
    head(&o, "nextactd_schema_waiting_partitions", "gauge",
         "Input partitions stopped now at a record waiting for its writer schema.");
    put(&o, "nextactd_schema_waiting_partitions %d\n", m->schema_waiting_partitions);
    put_process(&o);
    return o.len;
}

/* ---- serving ----------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls) {
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    nx_http_t *http = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", strdup("GET only\n"), 9);
    if (strcmp(url, "/metrics") == 0) {
        /* the scrape thread allocates; the loop never does for this */
        nx_http_metrics_t *m = malloc(sizeof *m);
        char *body = malloc(RESPONSE_MAX);
        if (!m || !body) {
            free(m);
            free(body);
            return MHD_NO;
        }
        pthread_mutex_lock(&http->lock);
        *m = http->snap;
        pthread_mutex_unlock(&http->lock);
        size_t len = nx_http_format(m, nx_now_wall_ms(), body, RESPONSE_MAX);
        free(m);
        if (len >= RESPONSE_MAX)
            len = RESPONSE_MAX - 1;
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0) {
        pthread_mutex_lock(&http->lock);
        int64_t at = http->snap.published_mono_ms;
        int ready = http->snap.ready;
        char why[NX_HTTP_REASON];
        snprintf(why, sizeof why, "%s",
                 http->snap.not_ready[0] ? http->snap.not_ready : "starting");
        pthread_mutex_unlock(&http->lock);
        int live = at > 0 && nx_now_mono_ms() - at < NX_HTTP_STALE_MS;
        char *body;
        int ok;
        if (strcmp(url, "/healthz") == 0) {
            ok = live;
            body = strdup(ok ? "ok\n" : "stalled\n");
        } else {
            /* a loop that stopped publishing serves nothing, whatever it
             * said last */
            ok = live && ready;
            body = ok ? strdup("ready\n") : NULL;
            if (!ok && asprintf(&body, "not ready: %s\n", at > 0 && !live ? "stalled" : why) < 0)
                body = NULL;
        }
        return reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", body,
                     body ? strlen(body) : 0);
    }
    return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", strdup("not found\n"), 10);
}

int nx_http_parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6, char *errstr,
                         size_t errstr_size) {
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1])
        return nx_errf(errstr, errstr_size, "\"%s\" is not host:port", listen);
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return nx_errf(errstr, errstr_size, "host of \"%.64s...\" is too long", listen);
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end || errno || port < 1 || port > 65535)
        return nx_errf(errstr, errstr_size, "\"%s\": port %s: want a number in 1..65535", listen,
                       colon + 1);
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *v6 = 1;
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return nx_errf(errstr, errstr_size, "\"%s\": %s is not an IPv6 address", listen,
                           host + 1);
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *v6 = 0;
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return nx_errf(errstr, errstr_size,
                       "\"%s\": %s is not an IPv4 address (IPv6 is written [addr]:port)", listen,
                       host);
    return 0;
}

/* libmicrohttpd's own complaints (a full connection table, a client that
 * hung up) come in bursts when clients misbehave: rate-limited. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    NX_LOG_RL(NX_LOG_WARNING, "metrics endpoint: %s", msg);
}

nx_http_t *nx_http_start(const char *listen, char *errstr, size_t errstr_size) {
    struct sockaddr_storage ss;
    int v6 = 0;
    char why[512];
    if (nx_http_parse_listen(listen, &ss, &v6, why, sizeof why) < 0) {
        nx_errf(errstr, errstr_size, "metrics.listen %s", why);
        return NULL;
    }
    nx_http_t *http = calloc(1, sizeof *http);
    if (!http) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&http->lock, NULL);
    /* MHD_USE_AUTO: epoll on Linux, so no FD_SETSIZE limit on descriptor
     * numbers (librdkafka holds many) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    uint16_t port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    /* the logger first: libmicrohttpd reports with its own logger what the
     * options before it say */
    http->mhd = MHD_start_daemon(flags, port, NULL, NULL, handle, http, MHD_OPTION_EXTERNAL_LOGGER,
                                 mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)NX_HTTP_MAX_CONNECTIONS,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)NX_HTTP_MAX_PER_IP,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)NX_HTTP_IDLE_TIMEOUT_S,
                                 MHD_OPTION_END);
    if (!http->mhd) {
        nx_errf(errstr, errstr_size, "metrics.listen %s: cannot listen (address in use?)", listen);
        pthread_mutex_destroy(&http->lock);
        free(http);
        return NULL;
    }
    return http;
}

void nx_http_stop(nx_http_t *http) {
    if (!http)
        return;
    MHD_stop_daemon(http->mhd);
    pthread_mutex_destroy(&http->lock);
    free(http);
}

void nx_http_publish(nx_http_t *http, const nx_http_metrics_t *m) {
    if (!http)
        return;
    pthread_mutex_lock(&http->lock);
    http->snap = *m;
    http->snap.published_mono_ms = nx_now_mono_ms();
    pthread_mutex_unlock(&http->lock);
}
