/*
 * http.h: the metrics endpoint: GET /metrics (Prometheus text exposition
 * format 0.0.4), GET /healthz and GET /readyz, served by libmicrohttpd on its
 * own thread.
 *
 * The main loop owns the figures. Once per tick it hands a copy of them
 * (nx_http_metrics_t, plain numbers, no pointers into the loop's state) to
 * nx_http_publish, which copies it under a mutex; the handler formats a
 * response from its own copy taken under the same mutex. So the loop never
 * waits on a scrape for longer than one struct copy, and a scrape never sees
 * half a tick.
 *
 * /healthz answers 200 "ok" while the loop published within the last
 * NX_HTTP_STALE_MS and 503 otherwise (a stuck loop is unhealthy): the
 * liveness probe. /readyz answers 200 "ready" while the loop says it is
 * ready (the snapshot's `ready`) and is not stalled, else 503 "not ready:
 * <reason>": the readiness probe. Until the loop says otherwise the reason
 * is "starting".
 *
 * /metrics follows the Prometheus conventions promtool checks: units in the
 * names (_seconds, _bytes, _records), counters end in _total, a figure not
 * known yet is left out rather than shown as -1 or NaN. Beside the loop's
 * figures it shows nextactd_build_info and the process_* metrics the client
 * libraries export, read from /proc/self at scrape time.
 *
 * Clients cannot lock the probes out: one polling thread serves every
 * connection without blocking on any, up to NX_HTTP_MAX_CONNECTIONS in all
 * and NX_HTTP_MAX_PER_IP from one address, and a connection idle for
 * NX_HTTP_IDLE_TIMEOUT_S is closed.
 *
 * Ownership: nx_http_t is the caller's (nx_http_start / nx_http_stop).
 * Threads: nx_http_publish from one thread; libmicrohttpd's thread serves.
 */
#ifndef NX_HTTP_H
#define NX_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A loop that did not publish for this long is reported unhealthy: 30 s is
 * far beyond one poll timeout plus the longest batch, and short enough for a
 * probe to notice before the systemd watchdog (WatchdogSec=60) fires. */
#define NX_HTTP_STALE_MS 30000

/* Connections. A probe or a scraper needs one for a few milliseconds; the
 * limits leave room for hundreds of slow or idle clients besides them (each
 * costs a descriptor and at most libmicrohttpd's 32 kB pool: 16 MB in all),
 * and one address can take only a quarter of the room, so it takes four
 * misbehaving hosts to keep a probe from another host out. A loopback probe
 * shares its address with local clients: 128 leaves it room beside dozens
 * of stuck local scrapers. A request arrives in one round trip, so 5 s of
 * silence means an idle or stuck client, not a slow one. */
#define NX_HTTP_MAX_CONNECTIONS 512
#define NX_HTTP_MAX_PER_IP      128
#define NX_HTTP_IDLE_TIMEOUT_S  5

#define NX_HTTP_MAX_TOPICS  16 /* = NX_CONFIG_MAX_LIST */
#define NX_HTTP_MAX_REASONS 40 /* >= NX_CODEC_N_REASONS */
#define NX_HTTP_MAX_CLASSES 16
#define NX_HTTP_MAX_BUCKETS 40
#define NX_HTTP_MAX_STAGES  8
#define NX_HTTP_NAME        64
#define NX_HTTP_MAX_LAGS    64 /* partitions shown (= NX_KAFKA_MAX_LAGS) */
#define NX_HTTP_REASON      160

/* The figures one scrape shows. Counters are totals since start. */
typedef struct nx_http_metrics {
    int64_t published_mono_ms;      /* set by nx_http_publish */
    int ready;                      /* 1: /readyz answers 200 */
    char not_ready[NX_HTTP_REASON]; /* why not, for /readyz; "" = "starting" */
    int n_topics;
    char topic[NX_HTTP_MAX_TOPICS][NX_HTTP_NAME];
    uint64_t events_in[NX_HTTP_MAX_TOPICS]; /* records consumed per input topic */
    char output_topic[NX_HTTP_NAME];
    char dead_letter_topic[NX_HTTP_NAME];
    uint64_t predictions_out; /* acknowledged by the broker */
    uint64_t dead_letters;    /* acknowledged */
    int n_reasons;
    char reason[NX_HTTP_MAX_REASONS][NX_HTTP_NAME];
    uint64_t decode_errors[NX_HTTP_MAX_REASONS];
    int64_t consumer_lag; /* records, summed over partitions; -1 unknown (not shown) */
    int n_lags;
    struct {
        int topic; /* index in topic[] */
        int32_t partition;
        int64_t lag;
    } lag[NX_HTTP_MAX_LAGS]; /* per partition, from the last statistics */
    int assigned_partitions;
    uint64_t rebalances;
    int input_paused;         /* back-pressure: 1 while the input is paused */
    uint64_t pauses;          /* back-pressure pauses */
    int producer_queue;       /* records awaiting acknowledgement */
    uint64_t produce_retries; /* records produced again after a failed delivery */
    /* latency from input record to acknowledged prediction */
    int n_buckets;
    double bucket_le[NX_HTTP_MAX_BUCKETS];      /* seconds, last = +Inf */
    uint64_t bucket_count[NX_HTTP_MAX_BUCKETS]; /* not cumulative */
    uint64_t latency_count;
    double latency_sum; /* seconds */
    /* where the latency goes (stages.h): per stage, laid out as the
     * latency; the stage named "to_produce" is shown as a histogram of its
     * own (nextactd_produce_latency_seconds), the others under
     * nextactd_stage_seconds{stage=...} */
    int n_stage_buckets, n_stages;
    double stage_le[NX_HTTP_MAX_BUCKETS]; /* seconds, last = +Inf */
    char stage_name[NX_HTTP_MAX_STAGES][16];
    uint64_t stage_count[NX_HTTP_MAX_STAGES][NX_HTTP_MAX_BUCKETS]; /* not cumulative */
    double stage_sum_s[NX_HTTP_MAX_STAGES];
    /* training-step durations (trainer.h), laid out as the latency */
    int n_step_buckets;
    double step_le[NX_HTTP_MAX_BUCKETS];      /* seconds, last = +Inf */
    uint64_t step_count[NX_HTTP_MAX_BUCKETS]; /* not cumulative */
    uint64_t steps_timed;
    double step_sum_s;
    uint64_t users;
    double bytes_per_user;
    uint64_t pending_labels;
    uint64_t training_steps;
    uint64_t training_examples; /* examples trained on (after down-sampling) */
    uint64_t training_shed;     /* examples dropped: the live trainer was too far behind */
    uint64_t events_processed;
    double rolling_logloss;
    int n_classes;
    char class_name[NX_HTTP_MAX_CLASSES][NX_HTTP_NAME];
    double rolling_auc[NX_HTTP_MAX_CLASSES];
    int64_t checkpoint_wall_ms; /* last checkpoint completed, 0 = none */
    double checkpoint_duration_s;
    double checkpoint_fork_s;
    uint64_t checkpoints_written, checkpoints_failed;
    int checkpoint_failing;   /* 1 from a failed checkpoint until one succeeds */
    uint64_t state_gaps;      /* partitions started from a committed offset no state covers */
    int model_state;          /* nx_model_state_t: serving, warming, fallback */
    uint64_t model_rollbacks; /* the guard's rollbacks */
    double model_loss_ratio;  /* the guard's last window: model log loss / the prior's; NAN
                               * before one (shown only when finite) */
    uint64_t offset_commits;  /* input offset commits acknowledged */
    uint64_t offset_commit_failures;
    /* state in Kafka (changelog.h); changelog 0 = off, the rest unshown */
    int changelog;
    int restore_partitions;         /* restoring or waiting to */
    uint64_t restore_records;       /* changelog records read by restores */
    uint64_t restores_kept;         /* restores from the users kept at a revoke */
    uint64_t changelog_bad_records; /* skipped at restore */
    uint64_t changelog_records;     /* user records and tombstones written */
    uint64_t changelog_bytes;       /* keys and values written */
    uint64_t changelog_flushes;     /* transactions committed */
    uint64_t changelog_aborts;      /* transactions aborted */
    /* exactly-once (txn.h); transactional 0 = off, the rest unshown */
    int transactional;
    uint64_t txn_committed, txn_aborted;
    int n_txn_buckets;
    double txn_le[NX_HTTP_MAX_BUCKETS]; /* s, the last +Inf */
    uint64_t txn_count[NX_HTTP_MAX_BUCKETS];
    double txn_sum_s;    /* transaction durations, open to committed */
    double txn_commit_s; /* time the loop spent committing */
    /* model sync (modelsync.h); model_sync 0 = off, the rest unshown */
    int model_sync;
    uint64_t model_syncs_published; /* own records acknowledged */
    uint64_t model_syncs_merged;    /* others' records merged in */
    uint64_t model_syncs_skipped;   /* others' records refused (size, version, layout, CRC) */
    uint64_t model_syncs_stale;     /* others' records too old to merge (a departed instance) */
    int model_sync_replicas;        /* others merged at the last sync */
    double
        model_sync_distance; /* relative L2, own weights vs the group's mean after the last merge */
    /* Schema Registry: writer schemas fetched by outcome, and the input
     * partitions waiting for one */
    uint64_t registry_found, registry_not_found, registry_failures, registry_retries;
    int registry_pending;          /* schema ids waiting for the registry */
    uint64_t schema_waits;         /* partitions sent back to a record waiting for its schema */
    int schema_waiting_partitions; /* partitions paused for that now */
} nx_http_metrics_t;

typedef struct nx_http nx_http_t;

/* Parses metrics.listen: "host:port" with an IPv4 address, or
 * "[v6 address]:port"; port 1..65535. Fills *ss and *v6 (1 for IPv6).
 * 0, or -1 + errstr saying what is wrong. Binds nothing. */
int nx_http_parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6, char *errstr,
                         size_t errstr_size);

/* Listens on "host:port" (as nx_http_parse_listen) with its own thread.
 * NULL + errstr (bad address, port in use). */
nx_http_t *nx_http_start(const char *listen, char *errstr, size_t errstr_size);

/* Stops the thread, closes the socket, frees. NULL does nothing. */
void nx_http_stop(nx_http_t *http);

/* Copies *m as the figures scrapes will show (stamps published_mono_ms). */
void nx_http_publish(nx_http_t *http, const nx_http_metrics_t *m);

/* Formats m as Prometheus text into buf, with the process_* metrics of the
 * calling process; returns the length it needed (like snprintf).
 * now_wall_ms: for the checkpoint age. */
size_t nx_http_format(const nx_http_metrics_t *m, int64_t now_wall_ms, char *buf, size_t size);

#endif /* NX_HTTP_H */
