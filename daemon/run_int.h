/*
 * run_int.h: the daemon loop's state and steps, private to run.c and the
 * demo (demo.c), which drives the same loop with a hook of its own.
 *
 * nx_run_setup builds everything from r->cfg (key, codec, pipeline,
 * checkpoint, consumer, metrics endpoint); nx_run_loop polls, processes and
 * ticks until a stop is requested, calling hook->step once per iteration;
 * nx_run_stop writes the final checkpoint and commits what it covers;
 * nx_run_teardown leaves the group and frees. Ownership: the run owns what
 * setup built; cfg is the caller's and must outlive the run. One thread.
 */
#ifndef NX_RUN_INT_H
#define NX_RUN_INT_H

#include <signal.h>
#include <stdint.h>

#include "changelog.h"
#include "ckptdir.h"
#include "codec.h"
#include "config.h"
#include "handover.h"
#include "http.h"
#include "kafka.h"
#include "modelsync.h"
#include "notify.h"
#include "offsets.h"
#include "pipeline.h"
#include "registry.h"
#include "siphash.h"
#include "stages.h"
#include "txn.h"

/* Exit status of a stop whose final checkpoint could not be written: the
 * state since the last durable checkpoint is not on disk (sysexits'
 * EX_IOERR; systemd restarts the unit, the next start re-reads it). */
#define NX_EXIT_STATE_NOT_SAVED 74

/* Latency histogram: upper bounds (ms) in run.c. */
#define NX_RUN_LAT_BUCKETS 29
typedef struct nx_latency {
    uint64_t count[NX_RUN_LAT_BUCKETS];
    uint64_t n;
} nx_latency_t;

typedef struct nx_run nx_run_t;

/* Called once per loop iteration, after the poll and the tick; returns 1 to
 * end the loop. now_mono: ms. */
typedef struct nx_run_hook {
    int (*step)(void *opaque, nx_run_t *r, int64_t now_mono);
    void *opaque;
    double status_interval_s; /* status line period; 0 = metrics.status_interval_s */
} nx_run_hook_t;

struct nx_run {
    nx_config_t *cfg; /* borrowed */
    nx_kafka_t *kafka;
    nx_codec_t *codec;
    nx_registry_t *registry; /* input writer schemas; NULL without a registry */
    nx_pipeline_t *pipe;
    rd_kafka_message_t **msgs; /* (kafka.poll_batch) */
    nx_event_t *evs;           /* (kafka.poll_batch) */
    nx_ticket_t *tickets;      /* (kafka.poll_batch) */
    const char **topics;       /* input topic names, by index (the config's) */
    nx_latency_t lat, lat_window;
    double lat_sum_s;           /* sum of acknowledged latencies, seconds */
    nx_stages_t stages;         /* where the latency goes (stages.h) */
    int64_t *rec_ts;            /* (kafka.poll_batch) broker timestamps of the batch's events, ms */
    int64_t poll_start_mono_us; /* when the loop's last poll began */
    int64_t polled_mono_us, polled_wall_us; /* when it returned (wall: with records) */
    int64_t prev_polled_mono_us;            /* when the poll before it returned */
    int64_t piped_mono_us;                  /* when the batch went to the pipeline */
    uint64_t bad, skipped, stale;
    uint64_t events_in[NX_CONFIG_MAX_LIST]; /* records consumed per input topic */
    int status_tty;                         /* live status line on a terminal */
    uint8_t key[NX_SIPHASH_KEY_LEN];
    int start_afresh; /* --start-afresh: a checkpoint of another key is set aside */
    int demo;         /* the demo: its state is thrown away at the end anyway */
    /* operations: systemd, checkpoints, hand-over, metrics */
    nx_notify_t *notify;
    nx_ckptdir_t *ckdir;
    nx_http_t *http;
    nx_http_metrics_t metrics;
    nx_handover_t handover;
    nx_offsets_t offs;
    /* state in Kafka (state.changelog set): the changelog's transactions
     * commit the input offsets; checkpoints then keep only a cache */
    nx_changelog_t *changelog; /* NULL = off */
    /* exactly-once (kafka.transactional; txn.h): predictions, changelog
     * records and input offsets commit together */
    nx_txn_t *txn; /* NULL = off */
    /* the group's model in Kafka (modelsync.h) */
    nx_modelsync_t *modelsync; /* NULL = off */
    /* durability: with periodic checkpoints, input offsets are committed
     * only once a checkpoint holding the state they changed is durable */
    int durable;                                 /* checkpoint.interval_s > 0 */
    nx_kafka_offset_t ckpt_offs[NX_OFFSETS_MAX]; /* what the running checkpoint covers */
    int n_ckpt_offs;
    int key_mismatch;          /* a checkpoint was written under another user-id key */
    uint64_t state_gaps;       /* partitions started from a committed offset no state covers */
    int64_t last_ckpt_mono;    /* ms; last checkpoint started (or start-up) */
    int64_t last_publish_mono; /* ms */
    int64_t last_commit_mono;  /* ms; acknowledged offsets committed (no periodic checkpoints) */
    int ckpt_requested;        /* a revoke asked for one */
    int64_t ckpt_retry_mono;   /* ms; no attempt before (producer not drained) */
    int stopping;              /* shutdown: revokes keep their users */
    int exit_now;              /* teardown left librdkafka threads running: _exit */
};

/* SIGTERM/SIGINT seen (the loop ends), SIGHUP seen (reload). */
extern volatile sig_atomic_t nx_run_stop_requested;

void nx_run_install_signals(void);

/* 0, or -1 + errstr with the exit status to use in *status (78 for a
 * configuration problem, 1 otherwise). */
int nx_run_setup(nx_run_t *r, int *status, char *errstr, size_t errstr_size);
/* Returns 0, or 1 after a fatal consumer error. hook may be NULL. */
int nx_run_loop(nx_run_t *r, const nx_run_hook_t *hook);
/* STOPPING=1, final checkpoint, commit. Returns 0, or
 * NX_EXIT_STATE_NOT_SAVED if the final checkpoint failed (logged). */
int nx_run_stop(nx_run_t *r);
void nx_run_teardown(nx_run_t *r);

/* The pipeline's output: a prediction record produced for the input
 * record of its ticket (run.c). */
int nx_run_emit(void *opaque, size_t index, const nx_event_t *ev, const void *rec, size_t len);

/* Checkpoints (run_ckpt.c). Load: the newest one this key can read, at
 * start; a checkpoint under another key stops the start (*status 78)
 * unless r->start_afresh. Start: a background write, when the producer
 * drains in time (else retried). Final: in this thread, then the commit of
 * what it covers; 0 or NX_EXIT_STATE_NOT_SAVED. */
int nx_run_ckpt_load(nx_run_t *r, int *status, char *errstr, size_t errstr_size);
void nx_run_ckpt_start(nx_run_t *r, int64_t now_mono);
int nx_run_ckpt_final(nx_run_t *r);

/* A fingerprint of the user-id hash key (a SipHash of a fixed text under
 * it): tells keys apart, says nothing about them. Checkpoints and the
 * changelog's position records carry it. */
uint64_t nx_run_key_fingerprint(const uint8_t key[NX_SIPHASH_KEY_LEN]);

/* What the loop shows of itself (run_metrics.c). Latency: one prediction
 * (ms) into a histogram; a quantile (ms) of it, -1 when empty. Status line:
 * to the log (or the terminal) and systemd's STATUS=, resetting the
 * window's latency. Metrics: the fixed labels once at setup, then a
 * snapshot of every figure published to the HTTP thread, readiness
 * included. */
void nx_run_latency_add(nx_latency_t *l, int64_t ms);
int64_t nx_run_latency_quantile(const nx_latency_t *l, double q);
void nx_run_status_line(nx_run_t *r, double secs, uint64_t events_before, double interval);
void nx_run_metrics_init(nx_run_t *r);
void nx_run_metrics_publish(nx_run_t *r);

#endif /* NX_RUN_INT_H */
