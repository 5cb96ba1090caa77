/*
 * run.c: the daemon's main loop and the demo (run.h).
 *
 * Operations (issue 7), on top of the loop run.h describes:
 * - systemd (notify.h): READY=1 once configuration, checkpoint and
 *   consumer are up; STATUS= with the status line every
 *   metrics.status_interval_s; WATCHDOG=1 from the loop (ops_tick) at half
 *   the interval systemd asks for; STOPPING=1 when shutdown begins.
 * - Checkpoints (ckpt.h) in checkpoint.dir (default <state_dir>/checkpoints):
 *   every checkpoint.interval_s, after a revoke, and at shutdown. The
 *   producer is drained first, so the input offsets recorded with the state
 *   (an "offsets" section: the next offset per partition the state has not
 *   seen) are exactly where the state ends and nothing before them lacks an
 *   acknowledged prediction. Periodic ones are written by a forked child
 *   (copy-on-write snapshot); the final one in this thread. At start the
 *   newest valid checkpoint is loaded (older ones if it is refused, loudly)
 *   and each assigned partition seeks to the offset it records, so records
 *   after it are read again (their predictions are sent again: duplicates,
 *   never gaps) and none is counted twice in a window.
 * - Rebalances: a revoked partition's users are saved to
 *   <state_dir>/handover/p<N>.nxs with their offsets and dropped; when the
 *   partition is assigned again to this process, they are restored and it
 *   seeks to those offsets. Files left by an earlier process are removed at
 *   start (its checkpoint is newer truth). Several hosts: the state
 *   directory is per host, so a partition moving to another host starts
 *   there from the committed offsets with no user state (windows rebuilt
 *   from new events); a shared changelog topic is the way to move state
 *   between hosts (DESIGN.md, Scale-out). Users of partitions this process
 *   loaded from its checkpoint but is not assigned stay in the store until
 *   they expire (TTL).
 * - Metrics (http.h): a snapshot of the figures is published to the HTTP
 *   thread every PUBLISH_MS.
 * - Test-only environment: NX_DEBUG_HANG_AFTER_MS=N stops the loop N ms
 *   after it starts (no polls, no watchdog pings) until SIGTERM;
 *   NX_DEBUG_DUMP_STORE=PATH writes every user's state (nx_store_dump_user,
 *   sorted by user hash) at shutdown. Neither is meant for production.
 */
#include "run.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "codec.h"
#include "config.h"
#include "gen.h"
#include "http.h"
#include "kafka.h"
#include "blas.h"
#include "log.h"
#include "notify.h"
#include "pipeline.h"
#include "preflight.h"
#include "siphash.h"
#include "store.h"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig) {
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- latency histogram ---------------------------------------------------- */

/* Upper bounds (ms) of the latency buckets: fine where the p99 target (20
 * ms) lies, coarse beyond a second. */
static const int64_t lat_bounds[] = {1,   2,   3,    4,    5,    6,     8,     10,    12,       15,
                                     20,  25,  30,   40,   50,   75,    100,   150,   200,      300,
                                     500, 750, 1000, 2000, 5000, 10000, 30000, 60000, INT64_MAX};
#define N_LAT (sizeof lat_bounds / sizeof lat_bounds[0])

typedef struct latency {
    uint64_t count[N_LAT];
    uint64_t n;
} latency_t;

static void latency_add(latency_t *l, int64_t ms) {
    size_t i = 0;
    while (ms > lat_bounds[i])
        i++;
    l->count[i]++;
    l->n++;
}

static int64_t latency_quantile(const latency_t *l, double q) {
    if (l->n == 0)
        return -1;
    uint64_t want = (uint64_t)ceil(q * (double)l->n), seen = 0;
    for (size_t i = 0; i < N_LAT; i++) {
        seen += l->count[i];
        if (seen >= want)
            return lat_bounds[i];
    }
    return lat_bounds[N_LAT - 1];
}

/* ---- the loop --------------------------------------------------------------- */

/* Input partitions whose next offset the loop remembers (the offsets a
 * checkpoint covers); as many as kafka.c can own. */
#define MAX_OFFSETS 1024

/* Next input offset per (topic, partition): the first record the pipeline
 * state does not include yet. */
typedef struct part_offset {
    int topic; /* index in kafka.input_topics */
    int32_t partition;
    int64_t next;
} part_offset_t;

typedef struct run {
    nx_config_t *cfg;
    nx_kafka_t *kafka;
    nx_codec_t *codec;
    nx_pipeline_t *pipe;
    rd_kafka_message_t **msgs;
    nx_event_t *evs;
    nx_ticket_t *tickets;
    const char **topics;
    latency_t lat, lat_window;
    double lat_sum_s; /* sum of acknowledged latencies, seconds */
    uint64_t bad, skipped, stale;
    uint64_t events_in[NX_CONFIG_MAX_LIST]; /* records consumed per input topic */
    int status_tty;                         /* live status line on a terminal */
    uint8_t key[NX_SIPHASH_KEY_LEN];
    /* operations (ops): systemd, checkpoints, hand-over, metrics */
    nx_notify_t *notify;
    nx_ckptdir_t *ckdir;
    nx_http_t *http;
    nx_http_metrics_t metrics;
    char handover_dir[4096];
    part_offset_t offs[MAX_OFFSETS];
    int n_offs, last_off;
    int64_t last_ckpt_mono;    /* ms; last checkpoint started (or start-up) */
    int64_t last_publish_mono; /* ms */
    int ckpt_requested;        /* a revoke asked for one */
    int64_t ckpt_retry_mono;   /* ms; no attempt before (producer not drained) */
    int stopping;              /* shutdown: revokes keep their users */
} run_t;

static part_offset_t *offset_find(run_t *r, int topic, int32_t partition, int add) {
    part_offset_t *o = &r->offs[r->last_off];
    if (r->n_offs && o->topic == topic && o->partition == partition)
        return o;
    for (int i = 0; i < r->n_offs; i++) {
        o = &r->offs[i];
        if (o->topic == topic && o->partition == partition) {
            r->last_off = i;
            return o;
        }
    }
    if (!add || r->n_offs == MAX_OFFSETS)
        return NULL;
    o = &r->offs[r->n_offs];
    *o = (part_offset_t){topic, partition, -1};
    r->last_off = r->n_offs++;
    return o;
}

static void offset_remove(run_t *r, int topic, int32_t partition) {
    part_offset_t *o = offset_find(r, topic, partition, 0);
    if (o) {
        *o = r->offs[--r->n_offs];
        r->last_off = 0;
    }
}

static int emit(void *opaque, size_t index, const nx_event_t *ev, const void *rec, size_t len) {
    run_t *r = opaque;
    return nx_kafka_produce(r->kafka, r->tickets[index], ev->user_id, ev->user_id_len, rec, len);
}

static void delivered(void *opaque, int is_dlq, rd_kafka_resp_err_t err, int64_t latency_ms) {
    run_t *r = opaque;
    if (!is_dlq && !err && latency_ms >= 0) {
        latency_add(&r->lat, latency_ms);
        latency_add(&r->lat_window, latency_ms);
        r->lat_sum_s += (double)latency_ms / 1000;
    }
}

static void process_batch(run_t *r, int n) {
    int64_t now = nx_now_wall_ms();
    size_t ng = 0;
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = r->msgs[i];
        nx_ticket_t t = nx_kafka_track(r->kafka, m);
        if (t == NX_TICKET_NONE) {
            r->stale++; /* its partition was revoked during the poll */
            continue;
        }
        int topic = nx_kafka_topic_index(r->kafka, m);
        if (topic >= 0) {
            /* the pipeline's state covers this record once the batch is
             * processed (good, skipped or dead-lettered alike) */
            part_offset_t *o = offset_find(r, topic, m->partition, 1);
            if (o)
                o->next = m->offset + 1;
            r->events_in[topic]++;
        }
        nx_event_t *ev = &r->evs[ng];
        nx_codec_reason_t why = nx_codec_decode(r->codec, m->payload, m->len, topic, now, ev);
        if (why == NX_CODEC_OK) {
            ev->partition = m->partition;
            ev->offset = m->offset;
            ev->topic = topic;
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
    if (ng)
        nx_pipeline_process(r->pipe, r->evs, ng, r->topics, now);
    for (int i = 0; i < n; i++)
        rd_kafka_message_destroy(r->msgs[i]);
}

static void status_line(run_t *r, double secs, uint64_t events_before, double interval) {
    nx_pipeline_stats_t s;
    nx_kafka_stats_t ks;
    nx_pipeline_stats(r->pipe, &s);
    nx_kafka_stats(r->kafka, &ks);
    int purchase = nx_config_type_index(r->cfg, "purchase");
    double auc = purchase >= 0 ? s.window_auc[purchase] : NAN;
    char line[512];
    snprintf(line, sizeof line,
             "%6.0fs  %8.0f ev/s  events %llu  users %llu  pending %llu  bad %llu  "
             "logloss %.4f  auc(purchase) %.3f  latency p50 %lld ms p99 %lld ms",
             secs, (double)(s.events - events_before) / interval, (unsigned long long)s.events,
             (unsigned long long)s.users, (unsigned long long)s.pending, (unsigned long long)r->bad,
             s.window_logloss, auc, (long long)latency_quantile(&r->lat_window, 0.5),
             (long long)latency_quantile(&r->lat_window, 0.99));
    if (r->status_tty)
        fprintf(stderr, "\r%s\033[K", line);
    else
        nx_info("%s", line);
    nx_notify_status(r->notify, line);
    memset(&r->lat_window, 0, sizeof r->lat_window);
}

/* The effective configuration as text, one "key = value;" per line. */
static char *config_text(const nx_config_t *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    nx_config_dump(cfg, f, 0);
    fclose(f);
    return buf;
}

/* SIGHUP: re-read the file; apply the log level; name every other setting
 * that changed, since those need a restart (the consumer, store and model
 * are built from them). Logs go to stderr (journald): nothing to reopen. */
static void reload(run_t *r) {
    char err[1024];
    nx_config_t *fresh = nx_config_load(r->cfg->path, err, sizeof err);
    if (!fresh) {
        nx_err("reload: %s; keeping the running configuration", err);
        return;
    }
    nx_log_set_level(nx_log_level_parse(fresh->log_level));
    free(r->cfg->log_level);
    r->cfg->log_level = strdup(fresh->log_level);
    nx_notice("reload: log_level = %s applied", fresh->log_level);
    char *now = config_text(r->cfg), *want = config_text(fresh);
    int changed = 0;
    if (now && want) {
        /* line by line: the dump's order is the table's, so a changed value
         * is a differing line at the same place */
        char *sa = NULL, *sb = NULL;
        char *la = strtok_r(now, "\n", &sa), *lb = strtok_r(want, "\n", &sb);
        for (; la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
            if (strcmp(la, lb) == 0)
                continue;
            while (*lb == ' ')
                lb++;
            nx_warn("reload: not applied until restart: %s", lb);
            changed++;
        }
    }
    if (!changed)
        nx_notice("reload: no other setting changed");
    free(now);
    free(want);
    nx_config_destroy(fresh);
}

/* ---- checkpoints ------------------------------------------------------------ */

/* The "offsets" section: the input offsets the checkpoint's state covers.
 * u32 count, then per partition: u16 topic-name length, name, i32
 * partition, i64 next offset (host order, as the rest of the file).
 * Topics by name, so reordering kafka.input_topics keeps them. */
static int offsets_save(void *opaque, int (*write)(void *w, const void *buf, size_t len), void *w) {
    run_t *r = opaque;
    uint32_t n = 0;
    for (int i = 0; i < r->n_offs; i++)
        n += r->offs[i].next >= 0;
    int rc = write(w, &n, sizeof n);
    for (int i = 0; i < r->n_offs && rc == 0; i++) {
        const part_offset_t *o = &r->offs[i];
        if (o->next < 0)
            continue;
        const char *name = r->topics[o->topic];
        uint16_t len = (uint16_t)strlen(name);
        rc |= write(w, &len, sizeof len);
        rc |= write(w, name, len);
        rc |= write(w, &o->partition, sizeof o->partition);
        rc |= write(w, &o->next, sizeof o->next);
    }
    return rc ? -1 : 0;
}

static int offsets_load(void *opaque, int (*read)(void *rd, void *buf, size_t len), void *rd,
                        uint64_t len) {
    run_t *r = opaque;
    uint32_t n;
    (void)len;
    r->n_offs = 0;
    if (read(rd, &n, sizeof n) < 0 || n > MAX_OFFSETS)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint16_t nl;
        char name[256];
        int32_t partition;
        int64_t next;
        if (read(rd, &nl, sizeof nl) < 0 || nl >= sizeof name || read(rd, name, nl) < 0 ||
            read(rd, &partition, sizeof partition) < 0 || read(rd, &next, sizeof next) < 0)
            return -1;
        name[nl] = '\0';
        int topic = -1;
        for (int t = 0; t < r->cfg->kafka.input_topics.n; t++)
            if (strcmp(r->topics[t], name) == 0)
                topic = t;
        if (topic < 0) {
            nx_warn("checkpoint: topic %s is not an input any more; its offsets are ignored", name);
            continue;
        }
        part_offset_t *o = offset_find(r, topic, partition, 1);
        if (o)
            o->next = next;
    }
    return 0;
}

static int ckpt_write(void *opaque, const char *path, char *errstr, size_t errstr_size) {
    run_t *r = opaque;
    nx_pipeline_section_t sec = {"offsets", offsets_save, offsets_load, r};
    return nx_pipeline_save(r->pipe, path, &sec, 1, errstr, errstr_size);
}

static int ckpt_load(void *opaque, const char *path, char *errstr, size_t errstr_size) {
    run_t *r = opaque;
    nx_pipeline_section_t sec = {"offsets", offsets_save, offsets_load, r};
    if (nx_pipeline_load(r->pipe, path, &sec, 1, errstr, errstr_size) == 0)
        return 0;
    /* a refused file may have left the pipeline half restored: start the
     * next attempt (or the fresh start) from a new one */
    char err[512];
    nx_pipeline_out_t po = {emit, r};
    nx_pipeline_destroy(r->pipe);
    r->n_offs = 0;
    if (!(r->pipe = nx_pipeline_new(r->cfg, r->key, 1, &po, err, sizeof err)))
        nx_err("checkpoint: rebuilding the pipeline: %s", err);
    return -1;
}

/* A checkpoint's offsets say where its state ends, and a restart seeks
 * there: a record before that point whose prediction is still
 * unacknowledged would never be predicted again. So the producer is drained
 * first (bounded by kafka.flush_timeout_ms); if it cannot be, the
 * checkpoint waits. Returns 0 when drained. */
static int ckpt_drain(run_t *r, int timeout_ms) {
    int left = nx_kafka_flush(r->kafka, timeout_ms);
    if (left > 0)
        NX_LOG_RL(NX_LOG_WARNING,
                  "checkpoint: %d prediction(s) unacknowledged after %d ms; postponed", left,
                  timeout_ms);
    return left > 0 ? -1 : 0;
}

/* Longest the loop waits for the producer before a periodic checkpoint:
 * within the 200 ms a checkpoint may pause the loop (issue 7). A healthy
 * broker acknowledges within tens of ms; when it does not, the checkpoint
 * is tried again DRAIN_RETRY_MS later instead of stalling the loop for
 * kafka.flush_timeout_ms. */
#define DRAIN_PERIODIC_MS 150
#define DRAIN_RETRY_MS    1000

/* Brings the pipeline's trainer thread to rest before a fork: the child has
 * only the forking thread, so a snapshot taken while the trainer updates
 * the model would be torn, and the child must not wait for a trainer that
 * does not exist there (nx_pipeline_quiesce). */
static void pipeline_quiesce(run_t *r) {
    nx_pipeline_quiesce(r->pipe);
}

/* Starts a background checkpoint (forked writer). */
static void ckpt_start(run_t *r, int64_t now_mono) {
    char err[1024];
    if (!r->ckdir || nx_ckptdir_busy(r->ckdir))
        return;
    int timeout = (int)r->cfg->kafka.flush_timeout_ms;
    if (ckpt_drain(r, timeout < DRAIN_PERIODIC_MS ? timeout : DRAIN_PERIODIC_MS) < 0) {
        r->ckpt_retry_mono = now_mono + DRAIN_RETRY_MS;
        return;
    }
    r->last_ckpt_mono = now_mono;
    r->ckpt_requested = 0;
    pipeline_quiesce(r);
    if (nx_ckptdir_save_bg(r->ckdir, ckpt_write, r, err, sizeof err) < 0)
        nx_err("checkpoint: %s", err);
}

/* The final checkpoint, in this thread. */
static void ckpt_final(run_t *r) {
    char err[1024];
    if (!r->ckdir || !r->pipe || !r->kafka)
        return;
    /* the final checkpoint supersedes a background one still running */
    nx_ckptdir_cancel(r->ckdir);
    if (ckpt_drain(r, (int)r->cfg->kafka.flush_timeout_ms) < 0) {
        nx_err("checkpoint: no final checkpoint (predictions undelivered); the next start "
               "resumes from the previous one");
        return;
    }
    int64_t t0 = nx_now_mono_ms();
    if (nx_ckptdir_save(r->ckdir, ckpt_write, r, err, sizeof err) < 0)
        nx_err("checkpoint: final: %s", err);
    else
        nx_notice("checkpoint: final checkpoint written in %lld ms",
                  (long long)(nx_now_mono_ms() - t0));
}

/* ---- partition hand-over ------------------------------------------------------ */

/* A revoked partition's users go to <state_dir>/handover/p<partition>.nxs:
 * magic "NXHO", u32 count of (u16 name length, name, i64 next offset) for
 * the revoked topics with that partition number, then the store stream of
 * nx_store_save_partition. The store keys users by partition number only,
 * so one file holds a partition number's users of every input topic. */
#define HANDOVER_MAGIC 0x4f48584eu /* "NXHO" */

static int file_write(void *opaque, const void *buf, size_t len) {
    return fwrite(buf, 1, len, opaque) == len ? 0 : -1;
}

static int file_read(void *opaque, void *buf, size_t len) {
    return fread(buf, 1, len, opaque) == len ? 0 : -1;
}

static void handover_path(const run_t *r, int32_t partition, char *buf, size_t size) {
    snprintf(buf, size, "%s/p%d.nxs", r->handover_dir, (int)partition);
}

/* Tells the pipeline which partitions hold its watermark. */
static void watermark_parts(run_t *r, const rd_kafka_topic_partition_list_t *parts, int assign) {
    for (int i = 0; i < parts->cnt; i++)
        for (int t = 0; t < r->cfg->kafka.input_topics.n; t++) {
            if (strcmp(parts->elems[i].topic, r->cfg->kafka.input_topics.v[t]) != 0)
                continue;
            if (assign)
                nx_pipeline_assign(r->pipe, t, parts->elems[i].partition, nx_now_wall_ms());
            else
                nx_pipeline_revoke(r->pipe, t, parts->elems[i].partition);
        }
}

static void on_revoked(void *opaque, const rd_kafka_topic_partition_list_t *parts) {
    run_t *r = opaque;
    watermark_parts(r, parts, 0);
    if (r->stopping)
        return; /* the final checkpoint covers every user */
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= parts->elems[j].partition == p;
        if (seen)
            continue;
        char path[4200], tmp[4300];
        handover_path(r, p, path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "wb");
        int rc = f ? 0 : -1;
        uint32_t magic = HANDOVER_MAGIC, n = 0;
        for (int j = i; j < parts->cnt; j++)
            n += parts->elems[j].partition == p;
        if (f) {
            rc |= file_write(f, &magic, sizeof magic) | file_write(f, &n, sizeof n);
            for (int j = i; j < parts->cnt; j++) {
                if (parts->elems[j].partition != p)
                    continue;
                int topic = -1;
                for (int t = 0; t < r->cfg->kafka.input_topics.n; t++)
                    if (strcmp(r->topics[t], parts->elems[j].topic) == 0)
                        topic = t;
                part_offset_t *o = topic < 0 ? NULL : offset_find(r, topic, p, 0);
                int64_t next = o ? o->next : -1;
                uint16_t nl = (uint16_t)strlen(parts->elems[j].topic);
                rc |= file_write(f, &nl, sizeof nl) | file_write(f, parts->elems[j].topic, nl) |
                      file_write(f, &next, sizeof next);
            }
            rc |= nx_store_save_partition(nx_pipeline_store(r->pipe), p, file_write, f);
            rc |= fflush(f) ? -1 : 0;
            rc |= fclose(f) ? -1 : 0;
        }
        if (rc < 0 || rename(tmp, path) < 0) {
            /* keep the users and their offsets: if the partition comes back
             * here, nothing was lost; elsewhere, its new owner starts from
             * the committed offsets */
            nx_err("hand-over: cannot save partition %d to %s: %s; keeping its users", (int)p, path,
                   strerror(errno));
            unlink(tmp);
            continue;
        }
        size_t dropped = nx_store_drop_partition(nx_pipeline_store(r->pipe), p);
        for (int j = i; j < parts->cnt; j++) {
            if (parts->elems[j].partition != p)
                continue;
            for (int t = 0; t < r->cfg->kafka.input_topics.n; t++)
                if (strcmp(r->topics[t], parts->elems[j].topic) == 0)
                    offset_remove(r, t, p);
        }
        nx_info("hand-over: partition %d: %zu user(s) saved to %s", (int)p, dropped, path);
    }
    r->ckpt_requested = 1;
}

/* Restores a hand-over file if one exists for partition p; its offsets go
 * to the map. */
static void handover_restore(run_t *r, int32_t p) {
    char path[4200], err[512];
    handover_path(r, p, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    uint32_t magic = 0, n = 0;
    int ok = file_read(f, &magic, sizeof magic) == 0 && magic == HANDOVER_MAGIC &&
             file_read(f, &n, sizeof n) == 0 && n <= MAX_OFFSETS;
    for (uint32_t i = 0; ok && i < n; i++) {
        uint16_t nl;
        char name[256];
        int64_t next;
        ok = file_read(f, &nl, sizeof nl) == 0 && nl < sizeof name && file_read(f, name, nl) == 0 &&
             file_read(f, &next, sizeof next) == 0;
        name[ok ? nl : 0] = '\0';
        for (int t = 0; ok && t < r->cfg->kafka.input_topics.n; t++) {
            if (strcmp(r->topics[t], name) != 0 || next < 0)
                continue;
            part_offset_t *o = offset_find(r, t, p, 1);
            if (o)
                o->next = next;
        }
    }
    if (ok &&
        nx_store_restore_partition(nx_pipeline_store(r->pipe), file_read, f, err, sizeof err) < 0) {
        nx_err("hand-over: %s: %s", path, err);
        ok = 0;
    }
    fclose(f);
    if (!ok)
        nx_err("hand-over: %s unreadable; partition %d starts from its committed offset", path,
               (int)p);
    else
        nx_info("hand-over: partition %d restored from %s", (int)p, path);
    unlink(path);
}

static void on_assigned(void *opaque, rd_kafka_topic_partition_list_t *parts) {
    run_t *r = opaque;
    watermark_parts(r, parts, 1);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= parts->elems[j].partition == p;
        if (!seen)
            handover_restore(r, p);
    }
    /* seek to where the state ends: checkpoint or hand-over */
    for (int i = 0; i < parts->cnt; i++) {
        for (int t = 0; t < r->cfg->kafka.input_topics.n; t++) {
            if (strcmp(r->topics[t], parts->elems[i].topic) != 0)
                continue;
            part_offset_t *o = offset_find(r, t, parts->elems[i].partition, 0);
            if (o && o->next >= 0) {
                parts->elems[i].offset = o->next;
                nx_info("kafka: %s [%d] starts at offset %lld (checkpoint)", parts->elems[i].topic,
                        (int)parts->elems[i].partition, (long long)o->next);
            }
        }
    }
}

/* Hand-over files left by a previous process are older than the
 * checkpoint it left: the checkpoint is the truth at start-up. */
static int handover_init(run_t *r, char *err, size_t err_size) {
    snprintf(r->handover_dir, sizeof r->handover_dir, "%s/handover", r->cfg->state_dir);
    if (mkdir(r->handover_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "%.900s: %s", r->handover_dir, strerror(errno));
        return -1;
    }
    DIR *d = opendir(r->handover_dir);
    struct dirent *de;
    char path[8192];
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", r->handover_dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    return 0;
}

/* ---- metrics ---------------------------------------------------------------- */

static void metrics_init(run_t *r) {
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
    m->n_buckets = (int)N_LAT;
    for (size_t i = 0; i < N_LAT; i++)
        m->bucket_le[i] = (double)lat_bounds[i] / 1000;
}

static void metrics_publish(run_t *r) {
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
    for (size_t i = 0; i < N_LAT; i++)
        m->bucket_count[i] = r->lat.count[i];
    m->latency_count = r->lat.n;
    m->latency_sum = r->lat_sum_s;
    m->users = s.users;
    m->bytes_per_user = s.bytes_per_user;
    m->pending_labels = s.pending;
    m->training_steps = s.steps;
    m->events_processed = s.events;
    m->rolling_logloss = s.window_logloss;
    m->n_classes = s.n_classes < NX_HTTP_MAX_CLASSES ? s.n_classes : NX_HTTP_MAX_CLASSES;
    for (int k = 0; k < m->n_classes; k++) {
        snprintf(m->class_name[k], NX_HTTP_NAME, "%s", nx_pipeline_class_name(r->pipe, k));
        m->rolling_auc[k] = s.window_auc[k];
    }
    if (r->ckdir) {
        nx_ckptdir_stats_t cs;
        nx_ckptdir_stats(r->ckdir, &cs);
        m->checkpoint_wall_ms = cs.last_wall_ms;
        m->checkpoint_duration_s = (double)cs.last_ms / 1000;
        m->checkpoint_fork_s = (double)cs.fork_us / 1e6;
        m->checkpoints_written = cs.written;
        m->checkpoints_failed = cs.failed;
    }
    nx_http_publish(r->http, m);
}

/* Publish at most this often (ms): a scrape every few seconds sees fresh
 * figures, and a fast loop does not copy 5 kB per iteration for nothing. */
#define PUBLISH_MS 100

/* Once per loop iteration: watchdog, checkpoint writer, metrics. */
static void ops_tick(run_t *r, int64_t now_mono) {
    nx_notify_watchdog(r->notify, now_mono);
    if (r->ckdir) {
        nx_ckptdir_poll(r->ckdir, 0);
        int64_t every = r->cfg->checkpoint.interval_s * 1000;
        if (now_mono >= r->ckpt_retry_mono &&
            (r->ckpt_requested || (every > 0 && now_mono - r->last_ckpt_mono >= every)))
            ckpt_start(r, now_mono);
    }
    if (r->http && now_mono - r->last_publish_mono >= PUBLISH_MS) {
        r->last_publish_mono = now_mono;
        metrics_publish(r);
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
    while (!stop_requested)
        usleep(10000);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct user_list {
    uint64_t *v;
    size_t n, cap;
} user_list_t;

static void collect_user(void *opaque, uint64_t user, int32_t partition, int64_t clock_ms) {
    (void)partition;
    (void)clock_ms;
    user_list_t *l = opaque;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = user;
}

/* NX_DEBUG_DUMP_STORE=PATH (tests only): at shutdown, every user's state
 * (nx_store_dump_user), sorted by user hash. */
static void debug_dump_store(run_t *r) {
    const char *path = getenv("NX_DEBUG_DUMP_STORE");
    if (!path || !r->pipe)
        return;
    struct nx_store *store = nx_pipeline_store(r->pipe);
    user_list_t l = {0};
    nx_store_foreach(store, collect_user, &l);
    qsort(l.v, l.n, sizeof *l.v, cmp_u64);
    FILE *f = fopen(path, "w");
    char buf[65536];
    for (size_t i = 0; f && i < l.n; i++)
        if (nx_store_dump_user(store, l.v[i], buf, sizeof buf) > 0)
            fputs(buf, f);
    if (f) {
        /* a last line with the counters that say whether the per-user
         * state depended on the order partitions were read in */
        nx_pipeline_stats_t s;
        nx_pipeline_stats(r->pipe, &s);
        fprintf(f, "stats events %llu late %llu dropped %llu\n", (unsigned long long)s.events,
                (unsigned long long)s.late, (unsigned long long)s.dropped);
    }
    if (!f || fclose(f) != 0)
        nx_err("NX_DEBUG_DUMP_STORE %s: %s", path, strerror(errno));
    else
        nx_notice("NX_DEBUG_DUMP_STORE: %zu user(s) written to %s", l.n, path);
    free(l.v);
}

/* The generator feeding the mock cluster at a bounded rate, from the loop's
 * thread through a producer of its own. */
typedef struct demo_feed {
    nx_gen_t *gen;
    rd_kafka_t *producer;
    const char *topic;
    double rate; /* events/s */
    int64_t t0;  /* when paced feeding began (the probe's prediction was delivered), 0 = not yet */
    int64_t probe_at; /* when the probe event was produced */
    uint64_t produced;
    uint8_t buf[2048];
} demo_feed_t;

static void demo_feed_step(demo_feed_t *feed, int64_t now_mono, uint64_t delivered);

static int run_loop(run_t *r, demo_feed_t *feed, double max_seconds) {
    int batch = (int)r->cfg->kafka.poll_batch;
    int64_t t0 = nx_now_mono_ms(), last_status = t0;
    uint64_t events_at_status = 0;
    int rc = 0;
    int64_t drain_at = 0; /* demo: when its time was up and feeding stopped */
    while (!stop_requested) {
        int64_t now = nx_now_mono_ms();
        /* the demo's time counts from its first paced event; waiting for
         * the cluster (assignment, the probe) may take 30 s more */
        int64_t start = feed && feed->t0 ? feed->t0 : t0;
        double limit = feed && !feed->t0 ? max_seconds + 30 : max_seconds;
        if (max_seconds > 0 && (double)(now - start) / 1000 >= limit) {
            if (!feed || !feed->t0)
                break;
            if (!drain_at)
                drain_at = now;
        }
        if (feed) {
            nx_kafka_stats_t ks;
            nx_kafka_stats(r->kafka, &ks);
            if (drain_at) {
                /* time is up: no more events; those fed are still
                 * consumed (for 5 s at most), so the summary counts them */
                if (ks.consumed >= feed->produced || now - drain_at > 5000)
                    break;
                rd_kafka_poll(feed->producer, 0);
            } else if (ks.assigned_partitions > 0) {
                /* feed once the consumer owns its partitions, so the
                 * first events do not wait out the group join */
                demo_feed_step(feed, now, ks.produced);
            }
        }
        int n = nx_kafka_poll_batch(r->kafka, r->msgs, batch, (int)r->cfg->kafka.poll_timeout_ms);
        if (n < 0) {
            nx_err("kafka: fatal consumer error; stopping");
            rc = 1;
            break;
        }
        if (n > 0)
            process_batch(r, n);
        nx_pipeline_tick(r->pipe, nx_now_wall_ms());
        ops_tick(r, nx_now_mono_ms());
        debug_hang(t0);
        if (reload_requested) {
            reload_requested = 0;
            reload(r);
        }
        now = nx_now_mono_ms();
        double interval = feed ? 1.0 : (double)r->cfg->metrics.status_interval_s;
        if ((double)(now - last_status) / 1000 >= interval) {
            nx_pipeline_stats_t s;
            nx_pipeline_stats(r->pipe, &s);
            status_line(r, (double)(now - t0) / 1000, events_at_status,
                        (double)(now - last_status) / 1000);
            events_at_status = s.events;
            last_status = now;
        }
    }
    if (r->status_tty)
        fputc('\n', stderr);
    return rc;
}

static int run_alloc(run_t *r, char *err, size_t err_size);

static int run_setup(run_t *r, char *err, size_t err_size) {
    uint8_t *key = r->key;
    int created = 0;
    if (run_alloc(r, err, err_size) < 0)
        return -1;
    if (mkdir(r->cfg->state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "state_dir %s: %s", r->cfg->state_dir, strerror(errno));
        return -1;
    }
    if (nx_siphash_key_load(r->cfg->state_dir, key, &created, err, err_size) < 0)
        return -1;
    if (created)
        nx_notice("created the user-id hash key in %s", r->cfg->state_dir);
    if (!(r->codec = nx_codec_new(r->cfg, err, err_size)))
        return -1;
    nx_pipeline_out_t po = {emit, r};
    if (!(r->pipe = nx_pipeline_new(r->cfg, key, 1, &po, err, err_size)))
        return -1;
    for (int i = 0; i < r->cfg->kafka.input_topics.n; i++)
        r->topics[i] = r->cfg->kafka.input_topics.v[i];

    /* the newest valid checkpoint, then the consumer (seeking to it) */
    char dir[4096];
    if (r->cfg->checkpoint.dir[0])
        snprintf(dir, sizeof dir, "%s", r->cfg->checkpoint.dir);
    else
        snprintf(dir, sizeof dir, "%s/checkpoints", r->cfg->state_dir);
    if (!(r->ckdir = nx_ckptdir_open(dir, (int)r->cfg->checkpoint.keep, err, err_size)))
        return -1;
    if (nx_ckptdir_load(r->ckdir, ckpt_load, r, err, err_size) < 0)
        nx_err("checkpoint: %s; STARTING AFRESH from the committed offsets", err);
    if (!r->pipe) {
        snprintf(err, err_size, "cannot rebuild the pipeline after a refused checkpoint");
        return -1;
    }
    if (handover_init(r, err, err_size) < 0)
        return -1;
    r->last_ckpt_mono = nx_now_mono_ms();
    if (!(r->notify = nx_notify_new())) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    nx_kafka_hooks_t hooks = {
        .assigned = on_assigned, .revoked = on_revoked, .delivered = delivered, .opaque = r};
    if (!(r->kafka = nx_kafka_new(r->cfg, &hooks, err, err_size)))
        return -1;
    metrics_init(r);
    if (r->cfg->metrics.listen[0]) {
        if (!(r->http = nx_http_start(r->cfg->metrics.listen, err, err_size)))
            return -1;
        metrics_publish(r);
        nx_notice("metrics: http://%s/metrics", r->cfg->metrics.listen);
    }
    return 0;
}

static int run_alloc(run_t *r, char *err, size_t err_size) {
    size_t batch = (size_t)r->cfg->kafka.poll_batch;
    r->msgs = calloc(batch, sizeof *r->msgs);
    r->evs = calloc(batch, sizeof *r->evs);
    r->tickets = calloc(batch, sizeof *r->tickets);
    r->topics = calloc((size_t)r->cfg->kafka.input_topics.n, sizeof *r->topics);
    if (!r->msgs || !r->evs || !r->tickets || !r->topics) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

/* Shutdown after the loop: STOPPING=1, the final checkpoint (producer
 * drained first), the test-only store dump. nx_kafka_close (teardown) then
 * commits and leaves the group. */
static void run_stop(run_t *r) {
    nx_notify_stopping(r->notify);
    r->stopping = 1;
    if (r->kafka)
        ckpt_final(r);
    debug_dump_store(r);
}

/* Leaving the group after the final flush and commit: librdkafka 2.0.2's
 * consumer close can wait without end when a rebalance is under way (seen
 * about once in 100 start/SIGTERM cycles). By then the final checkpoint is
 * written and the offsets committed (or, if the broker is away, re-read
 * after the checkpoint's), so past this grace the process just exits. */
#define CLOSE_GRACE_S 15

static void on_close_timeout(int sig) {
    (void)sig;
    static const char msg[] = "<4>shutdown: leaving the consumer group takes too long; exiting "
                              "(the final checkpoint is written)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(0);
}

static void run_teardown(run_t *r) {
    r->stopping = 1;
    nx_http_stop(r->http);
    if (r->kafka) {
        signal(SIGALRM, on_close_timeout);
        alarm((unsigned)(r->cfg->kafka.flush_timeout_ms / 1000) + CLOSE_GRACE_S);
        nx_kafka_close(r->kafka);
    }
    nx_kafka_destroy(r->kafka);
    alarm(0);
    nx_ckptdir_destroy(r->ckdir);
    nx_notify_destroy(r->notify);
    nx_pipeline_destroy(r->pipe);
    nx_codec_destroy(r->codec);
    free(r->msgs);
    free(r->evs);
    free(r->tickets);
    free(r->topics);
}

int nx_run_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    const char *conf = NULL;
    char err[1024];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (opt == 'c')
            conf = optarg;
        else
            return 2;
    }
    if (!conf) {
        fprintf(stderr, "usage: nextactd run -c CONF\n");
        return 2;
    }
    run_t r = {0};
    /* first: a SIGTERM during start-up is a stop request too */
    install_signals();
    if (!(r.cfg = nx_config_load(conf, err, sizeof err))) {
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
    if (run_setup(&r, err, sizeof err) < 0) {
        nx_err("start-up: %s", err);
        goto out;
    }
    nx_notice("nextactd %s running: %d input topic(s) -> %s, OpenBLAS %s kernels", NX_VERSION,
              r.cfg->kafka.input_topics.n, r.cfg->kafka.output_topic, nx_blas_core());
    nx_notify_ready(r.notify);
    rc = run_loop(&r, NULL, 0);
    nx_notice("stopping: flushing predictions, checkpoint, committing offsets");
    run_stop(&r);
out:
    run_teardown(&r);
    nx_config_destroy(r.cfg);
    return rc;
}

/* ---- demo ------------------------------------------------------------------------ */

/* Produces the generator's next event; 0 if the producer's queue is full. */
static int demo_feed_one(demo_feed_t *feed) {
    nx_gen_event_t ge;
    nx_gen_next(feed->gen, &ge);
    int64_t len = nx_gen_encode_event(&ge, -1, feed->buf, sizeof feed->buf);
    if (len < 0)
        return 1; /* not encodable: skipped */
    rd_kafka_resp_err_t e = rd_kafka_producev(
        feed->producer, RD_KAFKA_V_TOPIC(feed->topic),
        RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)), RD_KAFKA_V_VALUE(feed->buf, (size_t)len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(feed->producer, 10);
        return 0;
    }
    feed->produced++;
    return 1;
}

/* One event goes first, alone; paced feeding starts once its prediction is
 * delivered (delivered: predictions the daemon's producer has had
 * acknowledged). Until the consumer fetches and the output producer knows
 * its topic, which takes a second or two after the partitions are
 * assigned, fed events just wait: the demo's whole-run p99 was 2 s while
 * every second after the first showed 30-40 ms. A probe not delivered in
 * 10 s (a configured cluster without the output topic, say) does not hold
 * the demo back any longer. */
static void demo_feed_step(demo_feed_t *feed, int64_t now_mono, uint64_t delivered) {
    if (feed->produced == 0) {
        demo_feed_one(feed);
        feed->probe_at = now_mono;
    } else if (feed->t0 == 0 && (delivered > 0 || now_mono - feed->probe_at > 10000)) {
        feed->t0 = now_mono;
    } else if (feed->t0) {
        uint64_t due = 1 + (uint64_t)((double)(now_mono - feed->t0) / 1000 * feed->rate);
        /* at most 20000 per step, so the loop keeps consuming */
        for (int i = 0; feed->produced < due && i < 20000; i++)
            if (!demo_feed_one(feed))
                break;
    }
    rd_kafka_poll(feed->producer, 0);
}

int nx_demo_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"seconds", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"users", required_argument, NULL, 'u'},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    double seconds = 20, rate = 20000;
    long users = 20000;
    const char *conf = NULL;
    char err[1024];
    int opt, rc = 1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:r:u:c:", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            seconds = atof(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 'u':
            users = atol(optarg);
            break;
        case 'c':
            conf = optarg;
            break;
        default:
            fprintf(stderr, "usage: nextactd demo [--seconds S] [--rate EVENTS_PER_S] "
                            "[--users U] [-c CONF]\n");
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 3600 || rate <= 0 || rate > 1e6 || users < 1 ||
        users > 10000000) {
        fprintf(stderr, "demo: --seconds in (0, 3600], --rate in (0, 1e6], --users in "
                        "[1, 1e7]\n");
        return 2;
    }
    run_t r = {0};
    demo_feed_t feed = {0};
    char state[] = "/tmp/nextactd-demo.XXXXXX";
    if (!mkdtemp(state)) {
        perror("demo: mkdtemp");
        return 1;
    }
    /* the embedded default: the shipped configuration, or -c CONF, with an
     * in-process mock cluster unless the file names real brokers */
    const char *path = conf ? conf : NX_SOURCE_DIR "/conf/demo.conf";
    if (!(r.cfg = nx_config_load(path, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return NX_EXIT_CONFIG;
    }
    free(r.cfg->state_dir);
    r.cfg->state_dir = strdup(state);
    /* checked with the state directory the demo uses */
    if (nx_preflight_check(r.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_config_destroy(r.cfg);
        rmdir(state);
        return NX_EXIT_CONFIG;
    }
    nx_log_set_level(nx_log_level_parse(r.cfg->log_level));
    install_signals();
    r.status_tty = isatty(STDERR_FILENO);
    if (run_setup(&r, err, sizeof err) < 0) {
        nx_err("demo: %s", err);
        goto out;
    }
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = (uint32_t)users;
    gp.seed = (uint64_t)r.cfg->model.seed;
    gp.horizon_ms = r.cfg->labels.horizon_s * 1000;
    if (!(feed.gen = nx_gen_new(&gp, err, sizeof err))) {
        nx_err("demo: generator: %s", err);
        goto out;
    }
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set(pc, "bootstrap.servers", nx_kafka_brokers(r.kafka), err, sizeof err);
    rd_kafka_conf_set(pc, "linger.ms", "5", err, sizeof err);
    if (!(feed.producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err))) {
        rd_kafka_conf_destroy(pc);
        nx_err("demo: producer: %s", err);
        goto out;
    }
    feed.topic = r.cfg->kafka.input_topics.v[0];
    feed.rate = rate;
    fprintf(stderr,
            "nextactd demo: generator -> %s (%s) -> nextactd -> %s, %.0f events/s, %ld users, "
            "%.0f s\n",
            feed.topic, nx_kafka_brokers(r.kafka), r.cfg->kafka.output_topic, rate, users, seconds);
    nx_notify_ready(r.notify);
    rc = run_loop(&r, &feed, seconds);
    run_stop(&r);

    /* summary */
    nx_kafka_flush(r.kafka, 5000);
    nx_pipeline_stats_t s;
    nx_kafka_stats_t ks;
    nx_pipeline_stats(r.pipe, &s);
    nx_kafka_stats(r.kafka, &ks);
    double secs = feed.t0 ? (double)(nx_now_mono_ms() - feed.t0) / 1000 : 0;
    printf("\nsummary: %llu events generated, %llu consumed, %llu predictions delivered, "
           "%llu bad\n",
           (unsigned long long)feed.produced, (unsigned long long)ks.consumed,
           (unsigned long long)ks.produced, (unsigned long long)r.bad);
    printf("  %.0f events/s over %.1f s; %llu users (%.0f bytes each); %llu training steps\n",
           (double)s.events / secs, secs, (unsigned long long)s.users, s.bytes_per_user,
           (unsigned long long)s.steps);
    printf("  progressive validation on %llu labelled examples: log loss %.4f, accuracy "
           "%.3f, normalised entropy %.3f\n",
           (unsigned long long)s.labelled, s.logloss, s.accuracy, s.normalized_entropy);
    printf("  one-vs-rest AUC:");
    for (int k = 0; k < s.n_classes; k++)
        printf(" %s %.3f", nx_pipeline_class_name(r.pipe, k), s.auc[k]);
    printf("\n  latency from event produce to prediction acknowledged: p50 %lld ms, p99 %lld "
           "ms\n",
           (long long)latency_quantile(&r.lat, 0.5), (long long)latency_quantile(&r.lat, 0.99));
out:
    if (feed.producer) {
        rd_kafka_flush(feed.producer, 1000);
        rd_kafka_destroy(feed.producer);
    }
    nx_gen_destroy(feed.gen);
    run_teardown(&r);
    nx_config_destroy(r.cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", state);
    if (system(cmd) != 0)
        nx_warn("demo: could not remove %s", state);
    return rc;
}
