/*
 * run.c: the daemon's main loop (run.h, run_int.h).
 *
 * Around the loop run.h describes:
 * - systemd (notify.h): READY=1 once configuration, checkpoint and
 *   consumer are up; STATUS= with the status line every
 *   metrics.status_interval_s; WATCHDOG=1 from the loop (ops_tick) at half
 *   the interval systemd asks for; STOPPING=1 when shutdown begins.
 * - Checkpoints (ckptdir.h) in checkpoint.dir (default <state_dir>/checkpoints):
 *   every checkpoint.interval_s, after a revoke, and at shutdown. The
 *   producer is drained first, so the input offsets recorded with the state
 *   (offsets.h: the next offset per partition the state has not seen) are
 *   exactly where the state ends and nothing before them lacks an
 *   acknowledged prediction. Periodic ones are written by a forked child
 *   (copy-on-write snapshot); the final one in this thread. At start the
 *   newest valid checkpoint is loaded (older ones if it is refused, loudly)
 *   and each assigned partition seeks to the offset it records, so records
 *   after it are read again (their predictions are sent again: duplicates,
 *   never gaps) and none is counted twice in a window. A checkpoint written
 *   under another user-id hash key is refused (exit 78) unless
 *   --start-afresh says to discard it.
 * - Commits (DESIGN.md, Durability): with periodic checkpoints
 *   (checkpoint.interval_s > 0) an input offset is committed only once a
 *   checkpoint holding the state it changed is durable: the offsets a
 *   checkpoint recorded are committed when its writer has renamed it into
 *   place and synced the directory, and the final checkpoint's at shutdown.
 *   A checkpoint that fails (full disk, say) is logged with its reason,
 *   counted, and makes /readyz answer "not ready"; commits then stay where
 *   the last durable one left them, and a shutdown whose final checkpoint
 *   fails exits NX_EXIT_STATE_NOT_SAVED. With checkpoint.interval_s = 0 the
 *   operator has chosen no durable state between restarts: acknowledged
 *   offsets are committed every kafka.commit_interval_ms and on revoke.
 *   Either way, a partition that starts from a committed offset past its log
 *   start with no state here covering it (state lost, or held by another
 *   host) is an error in the log and in nextactd_state_gaps_total.
 * - Rebalances: a revoked partition's users go to a hand-over file
 *   (handover.h) and come back if the partition does; elsewhere its new
 *   owner starts from the committed offsets with no user state. Users of
 *   partitions this process loaded from its checkpoint but is not assigned
 *   stay in the store until they expire (TTL).
 * - State in Kafka (state.changelog set; changelog.h): the changelog is the
 *   truth and its transactions are the only commits of input offsets
 *   (every kafka.commit_interval_ms, on revoke, at shutdown). An assigned
 *   partition is held and restored from it (slices in ops_tick; not ready
 *   meanwhile), a revoked one flushed and dropped; no seek to checkpoint or
 *   hand-over offsets. Checkpoints still keep the model; their offsets are
 *   not committed. A fenced changelog producer stops the loop (exit 1).
 * - Exactly-once (kafka.transactional; txn.h): the predictions go into the
 *   changelog's transaction, committed by txn.c every
 *   kafka.transaction_interval_ms (ops_tick; the poll waits no longer than
 *   that), on revoke and at shutdown; the latency histogram measures to
 *   the commit. A fenced producer stops the loop (exit NX_EXIT_FENCED).
 * - Metrics (http.h; run_metrics.c): a snapshot of the figures is
 *   published to the HTTP thread every PUBLISH_MS.
 * - Test-only environment: NX_DEBUG_HANG_AFTER_MS=N stops the loop N ms
 *   after it starts (no polls, no watchdog pings) until SIGTERM;
 *   NX_DEBUG_DUMP_STORE=PATH writes every user's state (sorted by user hash)
 *   at shutdown. Neither is meant for production.
 */
#include "run.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "log.h"
#include "preflight.h"
#include "run_int.h"

volatile sig_atomic_t nx_run_stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig) {
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        nx_run_stop_requested = 1;
}

void nx_run_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit (RLIMIT_FSIZE) makes a write fail with EFBIG, which
     * the checkpoint code reports; the signal's default would kill us */
    signal(SIGXFSZ, SIG_IGN);
}

/* ---- the loop --------------------------------------------------------------- */

static int64_t clock_us(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int nx_run_emit(void *opaque, size_t index, const nx_event_t *ev, const void *rec, size_t len) {
    nx_run_t *r = opaque;
    /* one clock read per prediction (vDSO, tens of ns): the stages of
     * events later in a batch differ by the steps before them */
    int64_t now = clock_us(CLOCK_MONOTONIC);
    nx_stages_add(&r->stages, NX_STAGE_PREDICT, now - r->piped_mono_us, 1);
    if (r->rec_ts[index] > 0)
        nx_stages_add(&r->stages, NX_STAGE_TO_PRODUCE,
                      r->polled_wall_us + (now - r->polled_mono_us) - r->rec_ts[index] * 1000, 1);
    if (r->txn)
        nx_txn_note(r->txn, r->rec_ts[index]);
    return nx_kafka_produce(r->kafka, r->tickets[index], ev->user_id, ev->user_id_len, rec, len);
}

static void delivered(void *opaque, int is_dlq, rd_kafka_resp_err_t err, int64_t latency_ms,
                      int64_t ack_us) {
    nx_run_t *r = opaque;
    /* exactly-once: visible at the commit, measured there (txn_committed) */
    if (!is_dlq && !err && latency_ms >= 0 && !r->txn) {
        nx_run_latency_add(&r->lat, latency_ms);
        nx_run_latency_add(&r->lat_window, latency_ms);
        r->lat_sum_s += (double)latency_ms / 1000;
    }
    if (!is_dlq && !err && ack_us >= 0)
        nx_stages_add(&r->stages, NX_STAGE_ACK, ack_us, 1);
}

/* Exactly-once: a transaction committed; its predictions' latency runs from
 * their input record to now. */
static void txn_committed(void *opaque, const int64_t *in_ts, size_t n, int64_t now_wall_ms) {
    nx_run_t *r = opaque;
    for (size_t i = 0; i < n; i++) {
        if (in_ts[i] <= 0)
            continue;
        int64_t ms = now_wall_ms - in_ts[i];
        nx_run_latency_add(&r->lat, ms);
        nx_run_latency_add(&r->lat_window, ms);
        r->lat_sum_s += (double)ms / 1000;
    }
}

/* Partitions of one batch stopped at a record whose writer schema is not
 * in yet: at most one per assigned partition. */
typedef struct waiting {
    int n;
    struct {
        int topic;
        int32_t partition;
    } v[NX_OFFSETS_MAX];
} waiting_t;

static int is_waiting(const waiting_t *w, int topic, int32_t partition) {
    for (int i = 0; i < w->n; i++)
        if (w->v[i].topic == topic && w->v[i].partition == partition)
            return 1;
    return 0;
}

/* Splits broker timestamp -> poll of one record (us, wall clock) into the
 * fetch and the time it sat in the client while the loop was busy elsewhere
 * ("queued"). When it reached the client is not known; it was after its
 * timestamp and, unless the previous batch was full, after the previous
 * poll returned. So if this poll started after both, the record waited at
 * most from the later of them to the poll's start: that is counted as
 * queued, the rest as fetch. */
static void fetch_and_queued(nx_run_t *r, int64_t ts_us) {
    int64_t to_wall = r->polled_wall_us - r->polled_mono_us; /* mono -> wall */
    int64_t start = r->poll_start_mono_us + to_wall, prev = r->prev_polled_mono_us + to_wall;
    int64_t from = ts_us > prev ? ts_us : prev;
    int64_t queued = start > from ? start - from : 0;
    nx_stages_add(&r->stages, NX_STAGE_QUEUED, queued, 1);
    nx_stages_add(&r->stages, NX_STAGE_FETCH, r->polled_wall_us - ts_us - queued, 1);
}

static void process_batch(nx_run_t *r, int n) {
    int64_t now = nx_now_wall_ms();
    size_t ng = 0;
    static waiting_t waiting; /* the loop's thread only; 12 kB off the stack */
    waiting.n = 0;
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = r->msgs[i];
        int topic = nx_kafka_topic_index(r->kafka, m);
        /* a partition sent back to a record waiting for its schema: its
         * later records are read again after it, not now */
        if (waiting.n && is_waiting(&waiting, topic, m->partition))
            continue;
        nx_event_t *ev = &r->evs[ng];
        nx_codec_reason_t why = nx_codec_decode(r->codec, m->payload, m->len, topic, now, ev);
        if (why == NX_CODEC_SCHEMA_PENDING) {
            /* The registry is fetching its writer schema (or waits to try
             * again): neither good nor bad yet. The partition stops here and
             * reads it again once the schema may be in; no ticket, and the
             * offsets the state covers stay before it. */
            if (nx_kafka_rewind(r->kafka, topic, m->partition, m->offset,
                                nx_codec_pending_wait_ms(r->codec)) < 0) {
                r->stale++; /* its partition was revoked during the poll */
            } else if (waiting.n < NX_OFFSETS_MAX) {
                waiting.v[waiting.n].topic = topic;
                waiting.v[waiting.n++].partition = m->partition;
            }
            continue;
        }
        nx_ticket_t t = nx_kafka_track(r->kafka, m);
        if (t == NX_TICKET_NONE) {
            r->stale++; /* its partition was revoked during the poll */
            continue;
        }
        if (topic >= 0) {
            /* the pipeline's state covers this record once the batch is
             * processed (good, skipped or dead-lettered alike) */
            nx_kafka_offset_t *o = nx_offsets_find(&r->offs, topic, m->partition, 1);
            if (o)
                o->offset = m->offset + 1;
            r->events_in[topic]++;
        }
        if (why == NX_CODEC_OK) {
            ev->partition = m->partition;
            ev->offset = m->offset;
            ev->topic = topic;
            int64_t ts = rd_kafka_message_timestamp(m, NULL);
            r->rec_ts[ng] = ts;
            if (ts > 0)
                fetch_and_queued(r, ts * 1000);
            r->tickets[ng++] = t;
        } else if (why == NX_CODEC_SKIPPED) {
            r->skipped++;
            nx_kafka_done(r->kafka, t);
        } else {
            r->bad++;
            NX_LOG_RL(NX_LOG_WARNING, "bad record %s [%d] @%lld: %s", rd_kafka_topic_name(m->rkt),
                      (int)m->partition, (long long)m->offset, nx_codec_reason_name(why));
            nx_kafka_dead_letter(r->kafka, t, m, nx_codec_reason_name(why));
        }
    }
    if (ng) {
        r->piped_mono_us = clock_us(CLOCK_MONOTONIC);
        nx_stages_add(&r->stages, NX_STAGE_DECODE, r->piped_mono_us - r->polled_mono_us, ng);
        nx_pipeline_process(r->pipe, r->evs, ng, r->topics, now);
    }
    for (int i = 0; i < n; i++)
        rd_kafka_message_destroy(r->msgs[i]);
}

/* The effective configuration as text, one "key = value;" per line; flags
 * as nx_config_dump's. */
static char *config_text(const nx_config_t *cfg, int flags) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    nx_config_dump(cfg, f, flags);
    fclose(f);
    return buf;
}

/* SIGHUP: re-read the file; apply the log level; name every other setting
 * that changed, since those need a restart (the consumer, store and model
 * are built from them). Logs go to stderr (journald): nothing to reopen. */
static void reload(nx_run_t *r) {
    char err[1024];
    nx_config_t *fresh = nx_config_reload(r->cfg, err, sizeof err);
    if (!fresh) {
        nx_err("reload: %s; keeping the running configuration", err);
        return;
    }
    /* the registered id stands in for the file's (output.schema_registry) */
    if (r->cfg->output.schema_registry.enabled)
        fresh->output.schema_id = r->cfg->output.schema_id;
    nx_log_set_level(nx_log_level_parse(fresh->log_level));
    free(r->cfg->log_level);
    r->cfg->log_level = strdup(fresh->log_level);
    nx_notice("reload: log_level = %s applied", fresh->log_level);
    /* compared with the secrets (a changed password is a change), logged
     * with them masked: the masked dump has the same lines, in the same
     * places */
    char *now = config_text(r->cfg, NX_CONFIG_DUMP_SECRETS);
    char *want = config_text(fresh, NX_CONFIG_DUMP_SECRETS), *shown = config_text(fresh, 0);
    int changed = 0;
    if (now && want && shown) {
        /* line by line: the dump's order is the table's, so a changed value
         * is a differing line at the same place */
        char *sa = NULL, *sb = NULL, *sc = NULL;
        char *la = strtok_r(now, "\n", &sa), *lb = strtok_r(want, "\n", &sb);
        char *lc = strtok_r(shown, "\n", &sc);
        for (; la && lb && lc; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb),
                               lc = strtok_r(NULL, "\n", &sc)) {
            if (strcmp(la, lb) == 0)
                continue;
            while (*lc == ' ')
                lc++;
            nx_warn("reload: not applied until restart: %s", lc);
            changed++;
        }
    }
    if (!changed)
        nx_notice("reload: no other setting changed");
    free(now);
    free(want);
    free(shown);
    nx_config_destroy(fresh);
}

/* ---- rebalances ----------------------------------------------------------------- */

/* Tells the pipeline which partitions hold its watermark. */
static void watermark_parts(nx_run_t *r, const rd_kafka_topic_partition_list_t *parts, int assign) {
    for (int i = 0; i < parts->cnt; i++) {
        int t = nx_offsets_topic(&r->offs, parts->elems[i].topic);
        if (t < 0)
            continue;
        if (assign)
            nx_pipeline_assign(r->pipe, t, parts->elems[i].partition, nx_now_wall_ms());
        else
            nx_pipeline_revoke(r->pipe, t, parts->elems[i].partition);
    }
}

/* 1 if parts->elems[i]'s partition number came earlier in the list. */
static int seen_before(const rd_kafka_topic_partition_list_t *parts, int i) {
    for (int j = 0; j < i; j++)
        if (parts->elems[j].partition == parts->elems[i].partition)
            return 1;
    return 0;
}

static void on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    nx_run_t *r = opaque;
    /* exactly-once: the open transaction commits (or aborts) while the
     * partitions are still ours; at shutdown the final one is committed */
    int committed = 1;
    if (r->txn && !r->stopping)
        committed = nx_txn_revoke(r->txn, nx_kafka_revoke_lost(r->kafka)) == 0;
    watermark_parts(r, parts, 0);
    if (!r->durable && !r->changelog && !nx_kafka_revoke_lost(r->kafka))
        nx_kafka_commit_acknowledged(r->kafka, 0);
    if (r->stopping)
        return; /* the final checkpoint covers every user */
    if (r->changelog) {
        nx_changelog_revoke(r->changelog, parts, nx_kafka_revoke_lost(r->kafka), committed);
        return;
    }
    for (int i = 0; i < parts->cnt; i++) {
        if (seen_before(parts, i))
            continue;
        int32_t p = parts->elems[i].partition;
        int topics[NX_CONFIG_MAX_LIST], n = 0;
        for (int j = i; j < parts->cnt; j++) {
            int t = nx_offsets_topic(&r->offs, parts->elems[j].topic);
            if (parts->elems[j].partition == p && t >= 0 && n < NX_CONFIG_MAX_LIST)
                topics[n++] = t;
        }
        nx_handover_save(&r->handover, r->pipe, &r->offs, p, topics, n);
    }
    r->ckpt_requested = 1;
}

/* Partitions that start with no state here covering them: from a
 * committed offset past the log start, their users' earlier events are not
 * in the store (state lost, or held by another host). An error, counted. */
static void report_gaps(nx_run_t *r, rd_kafka_topic_partition_list_t *fresh) {
    if (fresh->cnt == 0 || nx_kafka_committed(r->kafka, fresh, 10000) < 0)
        return;
    for (int i = 0; i < fresh->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &fresh->elems[i];
        if (e->offset < 0)
            continue; /* no committed offset: read from the start, nothing missed */
        int64_t start = nx_kafka_log_start(r->kafka, e->topic, e->partition, 5000);
        if (start >= 0 && e->offset <= start)
            continue;
        r->state_gaps++;
        nx_err("kafka: %s [%d] starts at its committed offset %lld but no state covers it "
               "here: its users' events before it are missing from their windows (state "
               "lost, or kept by another instance)",
               e->topic, (int)e->partition, (long long)e->offset);
    }
}

static void on_assigned(void *opaque, rd_kafka_topic_partition_list_t *parts) {
    nx_run_t *r = opaque;
    watermark_parts(r, parts, 1);
    if (r->changelog) {
        /* the changelog is the truth: no seek to checkpoint or hand-over */
        nx_changelog_assign(r->changelog, parts);
        return;
    }
    for (int i = 0; i < parts->cnt; i++)
        if (!seen_before(parts, i))
            nx_handover_restore(&r->handover, r->pipe, &r->offs, parts->elems[i].partition);
    /* seek to where the state ends: checkpoint or hand-over */
    rd_kafka_topic_partition_list_t *fresh = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *e = &parts->elems[i];
        int t = nx_offsets_topic(&r->offs, e->topic);
        if (t < 0)
            continue;
        nx_kafka_offset_t *o = nx_offsets_find(&r->offs, t, e->partition, 0);
        if (o && o->offset >= 0) {
            e->offset = o->offset;
            nx_info("kafka: %s [%d] starts at offset %lld (where its state ends)", e->topic,
                    (int)e->partition, (long long)o->offset);
        } else {
            rd_kafka_topic_partition_list_add(fresh, e->topic, e->partition);
        }
    }
    report_gaps(r, fresh);
    rd_kafka_topic_partition_list_destroy(fresh);
}

/* Publish at most this often (ms): a scrape every few seconds sees fresh
 * figures, and a fast loop does not copy 5 kB per iteration for nothing. */
#define PUBLISH_MS 100

/* Restore work per loop iteration (changelog mode): the other partitions'
 * records wait at most about this long for their next poll. */
#define RESTORE_SLICE_US 20000

/* Once per loop iteration: watchdog, checkpoint writer and the commits it
 * allows (or the changelog's restore slice and flush), metrics. */
static void ops_tick(nx_run_t *r, int64_t now_mono) {
    nx_notify_watchdog(r->notify, now_mono);
    if (r->ckdir) {
        /* a checkpoint just became durable: its offsets may be committed */
        if (nx_ckptdir_poll(r->ckdir, 0) == 1 && r->durable && !r->changelog)
            nx_kafka_commit_offsets(r->kafka, r->ckpt_offs, r->n_ckpt_offs, 1);
        int64_t every = r->cfg->checkpoint.interval_s * 1000;
        if (now_mono >= r->ckpt_retry_mono &&
            (r->ckpt_requested || (every > 0 && now_mono - r->last_ckpt_mono >= every)))
            nx_run_ckpt_start(r, now_mono);
    }
    if (r->txn)
        nx_txn_tick(r->txn, now_mono);
    if (r->modelsync)
        nx_modelsync_tick(r->modelsync, now_mono);
    if (r->changelog)
        nx_changelog_tick(r->changelog, now_mono, RESTORE_SLICE_US);
    else if (!r->durable && now_mono - r->last_commit_mono >= r->cfg->kafka.commit_interval_ms) {
        r->last_commit_mono = now_mono;
        nx_kafka_commit_acknowledged(r->kafka, 1);
    }
    if (r->http && now_mono - r->last_publish_mono >= PUBLISH_MS) {
        r->last_publish_mono = now_mono;
        nx_run_metrics_publish(r);
    }
}

/* ---- test-only hooks ------------------------------------------------------------ */

/* NX_DEBUG_HANG_AFTER_MS=N (tests only): N ms into the loop, stop iterating
 * (no polls, no watchdog pings) until SIGTERM, as a stuck loop would. */
static void debug_hang(int64_t since_ms) {
    static int done;
    static long long after_ms = -2; /* -2: not read yet, -1: unset */
    if (after_ms == -2) {
        const char *env = getenv("NX_DEBUG_HANG_AFTER_MS"); /* once, not per iteration */
        after_ms = env ? atoll(env) : -1;
    }
    if (done || after_ms < 0 || nx_now_mono_ms() - since_ms < after_ms)
        return;
    done = 1;
    nx_warn("NX_DEBUG_HANG_AFTER_MS: the loop hangs now (test only)");
    while (!nx_run_stop_requested)
        usleep(10000);
}

/* NX_DEBUG_DUMP_STORE=PATH (tests only): at shutdown, every user's state,
 * sorted by user hash (nx_pipeline_dump_users). */
static void debug_dump_store(nx_run_t *r) {
    const char *path = getenv("NX_DEBUG_DUMP_STORE");
    if (!path || !r->pipe)
        return;
    FILE *f = fopen(path, "w");
    long long n = f ? nx_pipeline_dump_users(r->pipe, f) : -1;
    if (!f || fclose(f) != 0 || n < 0)
        nx_err("NX_DEBUG_DUMP_STORE %s: %s", path, n < 0 ? "out of memory" : strerror(errno));
    else
        nx_notice("NX_DEBUG_DUMP_STORE: %lld user(s) written to %s", n, path);
}

/* ---- the loop ------------------------------------------------------------------ */

int nx_run_loop(nx_run_t *r, const nx_run_hook_t *hook) {
    int batch = (int)r->cfg->kafka.poll_batch;
    int64_t t0 = nx_now_mono_ms(), last_status = t0;
    uint64_t events_at_status = 0;
    double interval = hook && hook->status_interval_s > 0
                          ? hook->status_interval_s
                          : (double)r->cfg->metrics.status_interval_s;
    int rc = 0;
    while (!nx_run_stop_requested) {
        /* while a restore runs, the loop comes back to it at once */
        int wait = (int)r->cfg->kafka.poll_timeout_ms;
        if (r->changelog && nx_kafka_holding(r->kafka))
            wait = 0;
        if (r->txn)
            wait = nx_txn_wait_ms(r->txn, nx_now_mono_ms(), wait);
        int64_t poll_start = clock_us(CLOCK_MONOTONIC);
        int n = nx_kafka_poll_batch(r->kafka, r->msgs, batch, wait);
        if (n < 0) {
            nx_err("kafka: fatal consumer error; stopping");
            rc = 1;
            break;
        }
        r->poll_start_mono_us = poll_start;
        r->prev_polled_mono_us = r->polled_mono_us;
        r->polled_mono_us = clock_us(CLOCK_MONOTONIC);
        if (n > 0) {
            r->polled_wall_us = clock_us(CLOCK_REALTIME);
            process_batch(r, n);
        }
        nx_pipeline_tick(r->pipe, nx_now_wall_ms());
        ops_tick(r, nx_now_mono_ms());
        if (r->changelog) {
            nx_changelog_stats_t ls;
            nx_changelog_stats(r->changelog, &ls);
            if (ls.failed) {
                rc = 1;
                break;
            }
        }
        if (nx_txn_failed(r->txn)) {
            rc = NX_EXIT_FENCED;
            break;
        }
        debug_hang(t0);
        if (reload_requested) {
            reload_requested = 0;
            reload(r);
        }
        int64_t now = nx_now_mono_ms();
        if ((double)(now - last_status) / 1000 >= interval) {
            nx_pipeline_stats_t s;
            nx_pipeline_stats(r->pipe, &s);
            nx_run_status_line(r, (double)(now - t0) / 1000, events_at_status,
                               (double)(now - last_status) / 1000);
            events_at_status = s.events;
            last_status = now;
        }
        if (hook && hook->step(hook->opaque, r, now))
            break;
    }
    if (r->status_tty)
        fputc('\n', stderr);
    return rc;
}

static int run_alloc(nx_run_t *r, char *err, size_t err_size) {
    size_t batch = (size_t)r->cfg->kafka.poll_batch;
    r->msgs = calloc(batch, sizeof *r->msgs);
    r->evs = calloc(batch, sizeof *r->evs);
    r->tickets = calloc(batch, sizeof *r->tickets);
    r->rec_ts = calloc(batch, sizeof *r->rec_ts);
    r->topics = calloc((size_t)r->cfg->kafka.input_topics.n, sizeof *r->topics);
    if (!r->msgs || !r->evs || !r->tickets || !r->rec_ts || !r->topics) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    for (int i = 0; i < r->cfg->kafka.input_topics.n; i++)
        r->topics[i] = r->cfg->kafka.input_topics.v[i];
    nx_offsets_init(&r->offs, r->topics, r->cfg->kafka.input_topics.n);
    return 0;
}

/* input.schema_registry: the codec asks it for Confluent writer schemas. */
static int open_registry(nx_run_t *r, char *err, size_t err_size) {
    const nx_config_registry_t *conf = &r->cfg->input.schema_registry;
    if (!conf->url[0])
        return 0;
    if (strcmp(r->cfg->input.framing, "confluent") != 0) {
        nx_warn("input.schema_registry.url is set but input.framing is \"%s\": not used",
                r->cfg->input.framing);
        return 0;
    }
    if (!(r->registry = nx_registry_new(conf, "input.schema_registry", err, err_size)))
        return -1;
    nx_codec_source_t source = nx_registry_source(r->registry);
    nx_codec_set_source(r->codec, &source);
    nx_notice("input: writer schemas from the Schema Registry at %s", conf->url);
    return 0;
}

/* output.schema_registry: the prediction schema is registered under
 * <output_topic>-value before anything is produced, and its id frames the
 * predictions (the pipeline's encoder takes it from the configuration). A
 * registry that does not answer is asked again for start_timeout_ms, then
 * *status is NX_EXIT_TEMPFAIL: an outage is no configuration error, and
 * systemd starts the daemon again. A refusal keeps *status (78). */
static int register_output(nx_run_t *r, int *status, char *err, size_t err_size) {
    nx_config_t *cfg = r->cfg;
    const nx_config_registry_t *own = &cfg->output.schema_registry;
    const nx_config_registry_t *conf = own->url[0] ? own : &cfg->input.schema_registry;
    const char *name = own->url[0] ? "output.schema_registry" : "input.schema_registry";
    nx_registry_t *registry = NULL;
    char *schema = NULL, subject[512];
    size_t len = 0;
    int64_t id = -1;
    int rc = -1;
    if (!own->enabled)
        return 0;
    if (strcmp(cfg->output.format, "confluent") != 0)
        return nx_errf(err, err_size,
                       "output.schema_registry.enabled needs output.format = \"confluent\", "
                       "not \"%s\"",
                       cfg->output.format);
    if (!conf->url[0])
        return nx_errf(err, err_size,
                       "output.schema_registry.enabled: no registry; set "
                       "output.schema_registry.url (or input.schema_registry.url)");
    FILE *f = fopen(cfg->output.schema, "rb");
    if (!f || getdelim(&schema, &len, '\0', f) < 0) {
        nx_errf(err, err_size, "output.schema: cannot read %s: %s", cfg->output.schema,
                strerror(errno));
        goto out;
    }
    snprintf(subject, sizeof subject, "%s-value", cfg->kafka.output_topic);
    if (!(registry = nx_registry_new(conf, name, err, err_size)))
        goto out;
    /* the input's backoff: the output's own settings are only a connection */
    const nx_config_registry_t *in = &cfg->input.schema_registry;
    int64_t until = nx_now_mono_ms() + own->start_timeout_ms, wait = in->retry_backoff_ms;
    int got;
    while ((got = nx_registry_register(registry, subject, schema, &id, err, err_size)) == -2 &&
           nx_now_mono_ms() + wait <= until && !nx_run_stop_requested) {
        nx_warn("%s; trying again in %lld ms", err, (long long)wait);
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* a stop signal cuts it short */
        wait = wait * 2 < in->retry_backoff_max_ms ? wait * 2 : in->retry_backoff_max_ms;
    }
    if (got == -2) {
        *status = NX_EXIT_TEMPFAIL;
        size_t l = strlen(err);
        snprintf(err + l, err_size - l, " (for %lld ms; exit 75 for a restart)",
                 (long long)own->start_timeout_ms);
    }
    if (got < 0)
        goto out;
    cfg->output.schema_id = id;
    nx_notice("output: %s registered under %s as schema id %lld", cfg->output.schema, subject,
              (long long)id);
    rc = 0;
out:
    nx_registry_destroy(registry);
    free(schema);
    if (f)
        fclose(f);
    return rc;
}

int nx_run_setup(nx_run_t *r, int *status, char *err, size_t err_size) {
    int created = 0;
    /* what fails here is the configuration or the state directory it names
     * (exit 78: systemd must not restart into the same failure), except
     * running out of memory */
    *status = NX_EXIT_CONFIG;
    if (run_alloc(r, err, err_size) < 0) {
        *status = 1;
        return -1;
    }
    r->durable = r->cfg->checkpoint.interval_s > 0;
    if (mkdir(r->cfg->state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "state_dir %s: %s", r->cfg->state_dir, strerror(errno));
        return -1;
    }
    if (nx_siphash_key_load(r->cfg->state_dir, r->key, &created, err, err_size) < 0)
        return -1;
    if (created)
        nx_notice("created the user-id hash key in %s", r->cfg->state_dir);
    if (!(r->codec = nx_codec_new(r->cfg, err, err_size)))
        return -1;
    if (open_registry(r, err, err_size) < 0 || register_output(r, status, err, err_size) < 0)
        return -1;
    nx_pipeline_out_t po = {nx_run_emit, r};
    if (!(r->pipe = nx_pipeline_new(r->cfg, r->key, NX_PIPELINE_LIVE, &po, err, err_size)))
        return -1;

    /* the newest valid checkpoint, then the consumer (seeking to it) */
    char dir[4096];
    if (r->cfg->checkpoint.dir[0])
        snprintf(dir, sizeof dir, "%s", r->cfg->checkpoint.dir);
    else
        snprintf(dir, sizeof dir, "%s/checkpoints", r->cfg->state_dir);
    if (!(r->ckdir = nx_ckptdir_open(dir, (int)r->cfg->checkpoint.keep, err, err_size)))
        return -1;
    if (nx_run_ckpt_load(r, status, err, err_size) < 0)
        return -1;
    if (!r->durable && !r->demo && !r->cfg->state.changelog[0])
        nx_warn("checkpoint.interval_s = 0: offsets are committed as predictions are "
                "acknowledged and the state is saved only at shutdown; a crash loses the state "
                "since the last start");
    if (nx_handover_init(&r->handover, r->cfg->state_dir, err, err_size) < 0)
        return -1;
    r->last_ckpt_mono = r->last_commit_mono = nx_now_mono_ms();
    if (!(r->notify = nx_notify_new())) {
        snprintf(err, err_size, "out of memory");
        *status = 1;
        return -1;
    }
    nx_kafka_hooks_t hooks = {
        .assigned = on_assigned, .revoked = on_revoked, .delivered = delivered, .opaque = r};
    if (!(r->kafka = nx_kafka_new(r->cfg, &hooks, err, err_size)))
        return -1;
    if (r->cfg->state.changelog[0] &&
        !(r->changelog = nx_changelog_new(r->cfg, r->kafka, r->pipe, &r->offs,
                                          nx_run_key_fingerprint(r->key), status, err, err_size)))
        return -1;
    nx_txn_hooks_t txn_hooks = {.committed = txn_committed, .opaque = r};
    if (r->cfg->kafka.transactional &&
        !(r->txn = nx_txn_new(r->cfg, r->kafka, r->changelog, &txn_hooks, err, err_size))) {
        *status = 1;
        return -1;
    }
    char sync_topic[256];
    if (nx_modelsync_topic(r->cfg, sync_topic, sizeof sync_topic) &&
        !(r->modelsync =
              nx_modelsync_new(r->cfg, nx_kafka_brokers(r->kafka), r->pipe, err, err_size))) {
        *status = 1;
        return -1;
    }
    nx_run_metrics_init(r);
    if (r->cfg->metrics.listen[0]) {
        if (!(r->http = nx_http_start(r->cfg->metrics.listen, err, err_size)))
            return -1;
        nx_run_metrics_publish(r);
        nx_notice("metrics: http://%s/metrics", r->cfg->metrics.listen);
    }
    *status = 0;
    return 0;
}

/* Shutdown after the loop: STOPPING=1, the final checkpoint (producer
 * drained first) and its commit, the test-only store dump.
 * nx_run_teardown then leaves the group. */
int nx_run_stop(nx_run_t *r) {
    nx_notify_stopping(r->notify);
    r->stopping = 1;
    int rc = r->kafka ? nx_run_ckpt_final(r) : 0;
    debug_dump_store(r);
    return rc;
}

/* Leaving the group after the final flush and commit: librdkafka 2.0.2's
 * consumer close can wait without end when a rebalance is under way (seen
 * about once in 100 start/SIGTERM cycles). By then the final checkpoint is
 * written and its offsets committed, so past this grace the process just
 * exits. */
#define CLOSE_GRACE_S 15

static void on_close_timeout(int sig) {
    (void)sig;
    static const char msg[] = "<4>shutdown: leaving the consumer group takes too long; exiting "
                              "(the final checkpoint is written)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(0);
}

void nx_run_teardown(nx_run_t *r) {
    r->stopping = 1;
    nx_http_stop(r->http);
    if (r->kafka) {
        signal(SIGALRM, on_close_timeout);
        alarm((unsigned)(r->cfg->kafka.flush_timeout_ms / 1000) + CLOSE_GRACE_S);
        nx_kafka_close(r->kafka);
        r->exit_now = nx_kafka_close_unfinished(r->kafka);
    }
    nx_txn_destroy(r->txn);
    nx_changelog_destroy(r->changelog);
    nx_kafka_destroy(r->kafka);
    alarm(0);
    nx_ckptdir_destroy(r->ckdir);
    nx_notify_destroy(r->notify);
    nx_pipeline_destroy(r->pipe);
    nx_modelsync_destroy(r->modelsync); /* after the trainer: it may hold its exchange */
    nx_codec_destroy(r->codec);
    nx_registry_destroy(r->registry);
    free(r->msgs);
    free(r->evs);
    free(r->tickets);
    free(r->rec_ts);
    free(r->topics);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: nextactd run -c CONF [--start-afresh] [-X KEY=VALUE]...\n"
            "  -c, --config CONF   configuration file (libconfig)\n"
            "  -X KEY=VALUE        override a configuration key (repeatable; SIGHUP keeps it)\n"
            "  --start-afresh      discard checkpoints written under another user-id hash key\n"
            "                      (key file lost or replaced) instead of refusing (exit 78)\n"
            "  -h, --help          this text\n");
}

int nx_run_main(int argc, char **argv) {
    enum { OPT_AFRESH = 256, OPT_HELP };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"start-afresh", no_argument, NULL, OPT_AFRESH},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    nx_config_overrides_t ov = {0};
    const char *conf = NULL;
    char err[1024];
    int opt, afresh = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:X:h", opts, NULL)) != -1) {
        if (opt == 'c') {
            conf = optarg;
        } else if (opt == 'X') {
            if (nx_config_overrides_add(&ov, optarg) < 0)
                return 2;
        } else if (opt == OPT_AFRESH) {
            afresh = 1;
        } else if (opt == OPT_HELP || opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!conf) {
        usage(stderr);
        return 2;
    }
    nx_run_t r = {0};
    r.start_afresh = afresh;
    /* first: a SIGTERM during start-up is a stop request too */
    nx_run_install_signals();
    if (!(r.cfg = nx_config_load_ex(conf, ov.v, ov.n, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return NX_EXIT_CONFIG;
    }
    /* what start-up would trip over because of the configuration: exit 78,
     * which systemd does not restart */
    if (nx_preflight_check(r.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_config_destroy(r.cfg);
        return NX_EXIT_CONFIG;
    }
    nx_log_set_level(nx_log_level_parse(r.cfg->log_level));
    int rc = 1;
    if (nx_run_setup(&r, &rc, err, sizeof err) < 0) {
        nx_err("start-up: %s", err);
        goto out;
    }
    nx_notice("nextactd %s running: %d input topic(s) -> %s, OpenBLAS %s kernels", NX_VERSION,
              r.cfg->kafka.input_topics.n, r.cfg->kafka.output_topic, nx_blas_core());
    nx_notify_ready(r.notify);
    rc = nx_run_loop(&r, NULL);
    nx_notice("stopping: flushing predictions, checkpoint, committing offsets");
    int stop = nx_run_stop(&r);
    if (rc == 0)
        rc = stop;
out:
    nx_run_teardown(&r);
    nx_config_destroy(r.cfg);
    if (r.exit_now) {
        /* the consumer whose close did not finish still has librdkafka
         * threads running on memory exit() would tear down under them
         * (atexit handlers, a sanitizer's leak check): end here */
        fflush(NULL);
        _exit(rc);
    }
    return rc;
}
