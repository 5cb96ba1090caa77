/* drun.c: nextactd runs on the real broker (drun.h). */
#include "drun.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"
#include "kafka_fixture.h"
#include "schema_file.h"

int64_t nx_drun_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nx_drun_topic(const char *prefix, char *name, size_t size) {
    return nx_drun_topic_parts(prefix, name, size, NX_DRUN_PARTS);
}

int nx_drun_topic_parts(const char *prefix, char *name, size_t size, int parts) {
    char err[512];
    nx_fixture_topic_name(name, size, prefix);
    if (nx_fixture_create_topic(name, parts, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_fixture_print_log();
        return -1;
    }
    return 0;
}

int nx_drun_init(nx_drun_t *dr, const char *nextactd, const char *src_dir, const char *prefix) {
    return nx_drun_init_parts(dr, nextactd, src_dir, prefix, NX_DRUN_PARTS);
}

int nx_drun_init_parts(nx_drun_t *dr, const char *nextactd, const char *src_dir, const char *prefix,
                       int parts) {
    memset(dr, 0, sizeof *dr);
    if (parts < 1 || parts > NX_DRUN_MAX_PARTS) {
        fprintf(stderr, "%d partitions: 1 .. %d\n", parts, NX_DRUN_MAX_PARTS);
        return -1;
    }
    dr->parts = parts;
    dr->nextactd = nextactd;
    dr->src_dir = src_dir;
    snprintf(dr->dir, sizeof dr->dir, "/tmp/%s.XXXXXX", prefix);
    if (!mkdtemp(dr->dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", dr->dir, strerror(errno));
        return -1;
    }
    char topic_prefix[64];
    snprintf(topic_prefix, sizeof topic_prefix, "%s-in", prefix);
    if (nx_drun_topic_parts(topic_prefix, dr->in_topic, sizeof dr->in_topic, parts) < 0)
        return -1;
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(dr->key, 1, sizeof dr->key, f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof dr->key) {
        fprintf(stderr, "/dev/urandom: cannot read a key\n");
        return -1;
    }
    return 0;
}

static void *produce_thread(void *arg) {
    nx_drun_t *dr = arg;
    char err[512], gerr[256];
    rd_kafka_t *p = nx_fixture_producer(
        err, sizeof err, (const char *[]){"linger.ms", "5", "batch.num.messages", "100", NULL});
    nx_gen_t *gen = NULL;
    dr->produce_rc = -1;
    if (!p) {
        fprintf(stderr, "producer: %s\n", err);
        return NULL;
    }
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    /* 20k users per 300k events: a stream of 20k users spans about 400
     * days by 300k events, and a longer one would outlast the users' TTL
     * (at most a year), whose expiry a live daemon runs in wall-clock
     * slices: two runs would expire an idle user at different events */
    long long per = (dr->n_events + 299999) / 300000;
    gp.users = 20000 * (int)(per > 1 ? per : 1);
    gp.seed = 17;
    /* the whole stream in the past: the daemon refuses events over a day
     * ahead */
    gp.start_ms = (int64_t)(time(NULL) - 400 * 86400) * 1000;
    if (!(gen = nx_gen_new(&gp, gerr, sizeof gerr))) {
        fprintf(stderr, "generator: %s\n", gerr);
        goto out;
    }
    uint8_t buf[2048];
    int64_t t0 = nx_drun_mono_ms();
    for (long long i = 0; i < dr->n_events; i++) {
        while (dr->rate > 0 && (double)i > (double)(nx_drun_mono_ms() - t0) / 1000 * dr->rate)
            rd_kafka_poll(p, 5);
        nx_gen_event_t ge;
        nx_gen_next(gen, &ge);
        int64_t len = nx_gen_encode_event(&ge, -1, buf, sizeof buf);
        while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(dr->in_topic),
                                 RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)),
                                 RD_KAFKA_V_VALUE(buf, (size_t)len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 50);
        while (dr->bad_every > 0 && (i + 1) % dr->bad_every == 0 &&
               rd_kafka_producev(p, RD_KAFKA_V_TOPIC(dr->in_topic),
                                 RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)),
                                 RD_KAFKA_V_VALUE(NX_DRUN_BAD_PAYLOAD, NX_DRUN_BAD_PAYLOAD_LEN),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 50);
        rd_kafka_poll(p, 0);
    }
    if (rd_kafka_flush(p, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "producer: not flushed in 60 s\n");
        goto out;
    }
    long long total = nx_fixture_end_offsets(p, dr->in_topic, dr->parts, dr->ends);
    if (total != dr->n_records)
        fprintf(stderr, "input: %lld records on the topic, %lld produced\n", total, dr->n_records);
    else
        dr->produce_rc = 0;
out:
    nx_gen_destroy(gen);
    rd_kafka_destroy(p);
    return NULL;
}

int nx_drun_produce_start(nx_drun_t *dr, long long n_events, double rate) {
    dr->n_events = n_events;
    dr->n_bad = dr->bad_every > 0 ? n_events / dr->bad_every : 0;
    dr->n_records = n_events + dr->n_bad;
    dr->rate = rate;
    if (pthread_create(&dr->thread, NULL, produce_thread, dr) != 0) {
        fprintf(stderr, "cannot start the producer thread\n");
        return -1;
    }
    dr->producing = 1;
    return 0;
}

/* Reads the input topic back and marks the offsets of the malformed
 * records in dr->bad_at; 0 if there are n_bad of them. */
static int find_bad(nx_drun_t *dr) {
    char err[512], group[300];
    snprintf(group, sizeof group, "%s-bad-finder", dr->in_topic);
    rd_kafka_t *c = nx_fixture_consumer(group, err, sizeof err, NULL);
    if (!c) {
        fprintf(stderr, "consumer: %s\n", err);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(dr->parts);
    long long left = 0, found = 0;
    for (int p = 0; p < dr->parts; p++) {
        if (!dr->bad_at[p] && !(dr->bad_at[p] = calloc((size_t)dr->ends[p] + 1, 1)))
            return -1;
        rd_kafka_topic_partition_list_add(l, dr->in_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        left += dr->ends[p];
    }
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t until = nx_drun_mono_ms() + 120000;
    while (left > 0 && nx_drun_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m)
            continue;
        if (!m->err && m->partition >= 0 && m->partition < dr->parts && m->offset >= 0 &&
            m->offset < dr->ends[m->partition]) {
            left--;
            if (m->len == NX_DRUN_BAD_PAYLOAD_LEN &&
                memcmp(m->payload, NX_DRUN_BAD_PAYLOAD, NX_DRUN_BAD_PAYLOAD_LEN) == 0) {
                dr->bad_at[m->partition][m->offset] = 1;
                found++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    if (left > 0 || found != dr->n_bad) {
        fprintf(stderr, "input: %lld malformed records found of %lld (%lld records unread)\n",
                found, dr->n_bad, left);
        return -1;
    }
    return 0;
}

int nx_drun_produce_wait(nx_drun_t *dr) {
    if (dr->producing) {
        pthread_join(dr->thread, NULL);
        dr->producing = 0;
        if (dr->produce_rc == 0 && dr->n_bad > 0 && find_bad(dr) < 0)
            dr->produce_rc = -1;
    }
    return dr->produce_rc;
}

int nx_drun_produce(nx_drun_t *dr, long long n_events) {
    return nx_drun_produce_start(dr, n_events, 0) < 0 ? -1 : nx_drun_produce_wait(dr);
}

static void group_id(const nx_drun_t *dr, const char *group, char *buf, size_t size) {
    snprintf(buf, size, "%s-%s", dr->in_topic, group);
}

/* Makes state_dir (0700) with the set's key file (0600) in it, unless one
 * is there. */
static int state_dir_make(const nx_drun_t *dr, const char *state_dir) {
    char path[512];
    if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "mkdir %s: %s\n", state_dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", state_dir, NX_SIPHASH_KEY_FILE);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    int ok = write(fd, dr->key, sizeof dr->key) == (ssize_t)sizeof dr->key;
    ok &= close(fd) == 0;
    if (!ok)
        fprintf(stderr, "%s: cannot write the key\n", path);
    return ok ? 0 : -1;
}

int nx_drun_write_conf(const nx_drun_t *dr, const nx_drun_conf_t *conf) {
    char path[300], state_dir[300], group[300], listen[64] = "";
    snprintf(path, sizeof path, "%s/%s.conf", dr->dir, conf->name);
    if (conf->state_dir)
        snprintf(state_dir, sizeof state_dir, "%s", conf->state_dir);
    else
        snprintf(state_dir, sizeof state_dir, "%s/%s-state", dr->dir, conf->name);
    group_id(dr, conf->group ? conf->group : conf->name, group, sizeof group);
    if (conf->metrics_port)
        snprintf(listen, sizeof listen, "127.0.0.1:%d", conf->metrics_port);
    if (state_dir_make(dr, state_dir) < 0)
        return -1;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "state_dir = \"%s\";\nlog_level = \"info\";\n"
            "kafka: { brokers = \"%s\"; group_id = \"%s\"; input_topics = [\"%s\"];\n"
            "  output_topic = \"%s\"; dead_letter_topic = \"%s\"; commit_interval_ms = 500;\n"
            /* small fetches interleave the partitions finely, as a live
             * stream would: no partition runs days of event time ahead of
             * the others, so no event falls behind the watermark by more
             * than the lateness (see labels below) in any run */
            "  consumer = { session_timeout_ms = \"6000\"; heartbeat_interval_ms = \"500\";\n"
            "    max_partition_fetch_bytes = \"8192\"; };\n  %s };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            /* no expiry by time or wall clock in any run: the tests compare
             * per-user state, not the maintenance schedule */
            "features: { user_ttl_s = 31536000; };\n"
            "labels: { idle_advance_ms = 3600000; allowed_lateness_ms = 86400000; };\n"
            "checkpoint: { interval_s = %d; keep = 3; };\nmetrics: { listen = \"%s\"; };\n%s\n",
            state_dir, nx_fixture_brokers(), group, dr->in_topic, conf->out_topic,
            conf->dlq_topic ? conf->dlq_topic : "", conf->kafka ? conf->kafka : "", dr->src_dir,
            dr->src_dir, conf->interval_s, listen, conf->extra ? conf->extra : "");
    return fclose(f) == 0 ? 0 : -1;
}

pid_t nx_drun_start(const nx_drun_t *dr, const char *name, const char *dump,
                    long long max_file_bytes) {
    char conf[300], log[300];
    snprintf(conf, sizeof conf, "%s/%s.conf", dr->dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dr->dir, name);
    return nx_fixture_start_daemon_fsize(dr->nextactd, conf, log, dump, max_file_bytes);
}

/* A reaped daemon's exit status, -1 (said) if a signal ended it. */
static int exit_status(pid_t pid, int st) {
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "daemon %d died of signal %d (%s)\n", (int)pid, WTERMSIG(st),
                strsignal(WTERMSIG(st)));
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int nx_drun_stop(pid_t pid, int timeout_ms) {
    int st = 0;
    pid_t got = 0;
    int64_t t0 = nx_drun_mono_ms();
    if (pid <= 0) { /* kill(2) would signal a process group, or every process */
        fprintf(stderr, "no daemon to stop (pid %d)\n", (int)pid);
        return -1;
    }
    kill(pid, SIGTERM);
    while ((got = waitpid(pid, &st, WNOHANG)) == 0 && nx_drun_mono_ms() - t0 < timeout_ms)
        usleep(20000);
    if (got == 0) {
        fprintf(stderr, "daemon %d still running %d ms after SIGTERM: killed\n", (int)pid,
                timeout_ms);
        nx_drun_kill(pid);
        return -1;
    }
    return exit_status(pid, st);
}

int nx_drun_kill(pid_t pid) {
    int st = 0;
    if (pid <= 0) /* as in nx_drun_stop */
        return 0;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/* A consumer of the fixture broker outside any daemon's group. */
static rd_kafka_t *group_consumer(const nx_drun_t *dr, const char *group) {
    char err[512], name[300];
    group_id(dr, group, name, sizeof name);
    rd_kafka_t *c = nx_fixture_consumer(name, err, sizeof err, NULL);
    if (!c)
        fprintf(stderr, "consumer: %s\n", err);
    return c;
}

static rd_kafka_topic_partition_list_t *input_partitions(const nx_drun_t *dr, int64_t offset) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(dr->parts);
    for (int p = 0; p < dr->parts; p++)
        rd_kafka_topic_partition_list_add(l, dr->in_topic, p)->offset = offset;
    return l;
}

int nx_drun_commit_zero(const nx_drun_t *dr, const char *group) {
    rd_kafka_t *c = group_consumer(dr, group);
    if (!c)
        return -1;
    rd_kafka_topic_partition_list_t *l = input_partitions(dr, 0);
    rd_kafka_resp_err_t e = rd_kafka_commit(c, l, 0);
    if (e)
        fprintf(stderr, "commit: %s\n", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return e ? -1 : 0;
}

int nx_drun_committed(const nx_drun_t *dr, const char *group, long long *committed) {
    rd_kafka_t *c = group_consumer(dr, group);
    if (!c)
        return -1;
    rd_kafka_topic_partition_list_t *l = input_partitions(dr, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_resp_err_t e = rd_kafka_committed(c, l, 10000);
    for (int p = 0; p < dr->parts; p++)
        committed[p] = l->elems[p].offset >= 0 ? l->elems[p].offset : -1;
    if (e)
        fprintf(stderr, "committed offsets: %s\n", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return e ? -1 : 0;
}

int nx_drun_committed_at_end(const nx_drun_t *dr, const char *group) {
    long long c[NX_DRUN_MAX_PARTS];
    if (nx_drun_committed(dr, group, c) < 0)
        return 0;
    int ok = 1;
    for (int p = 0; p < dr->parts; p++)
        ok &= c[p] == dr->ends[p];
    if (!ok) {
        fprintf(stderr, "%s: committed/end offsets:", group);
        for (int p = 0; p < dr->parts; p++)
            fprintf(stderr, " %lld/%lld", c[p], dr->ends[p]);
        fprintf(stderr, "\n");
    }
    return ok;
}

/* ---- predictions per input offset ------------------------------------------- */

nx_drun_out_t *nx_drun_out_new(const nx_drun_t *dr, const char *out_topic) {
    char err[512], path[512], group[300];
    nx_drun_out_t *out = calloc(1, sizeof *out);
    if (!out)
        return NULL;
    out->dr = dr;
    out->missing = dr->n_events;
    snprintf(out->topic, sizeof out->topic, "%s", out_topic);
    snprintf(path, sizeof path, "%s/conf/schemas/prediction.avsc", dr->src_dir);
    if (nx_schema_file(path, &out->schema) < 0) {
        fprintf(stderr, "%s: unreadable schema\n", path);
        goto err;
    }
    out->iface = avro_generic_class_from_schema(out->schema);
    avro_generic_value_new(out->iface, &out->val);
    /* any partition may hold them all; the end offsets may not be known
     * yet (a paced input) */
    for (int p = 0; p < dr->parts; p++)
        if (!(out->seen[p] = calloc((size_t)dr->n_records + 1, 1)))
            goto err;
    snprintf(group, sizeof group, "%s-checker", out_topic);
    /* read_committed: what a downstream consumer of exactly-once output
     * sees (librdkafka's default too; said here because tests rely on it) */
    out->consumer = nx_fixture_consumer(
        group, err, sizeof err,
        (const char *[]){"enable.auto.commit", "false", "isolation.level", "read_committed", NULL});
    if (!out->consumer) {
        fprintf(stderr, "consumer: %s\n", err);
        goto err;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(dr->parts);
    for (int p = 0; p < dr->parts; p++)
        rd_kafka_topic_partition_list_add(l, out_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(out->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    return out;
err:
    nx_drun_out_destroy(out);
    return NULL;
}

void nx_drun_out_destroy(nx_drun_out_t *out) {
    if (!out)
        return;
    if (out->consumer) {
        rd_kafka_consumer_close(out->consumer);
        rd_kafka_destroy(out->consumer);
    }
    if (out->iface) {
        avro_value_decref(&out->val);
        avro_value_iface_decref(out->iface);
    }
    if (out->schema)
        avro_schema_decref(out->schema);
    for (int p = 0; p < NX_DRUN_MAX_PARTS; p++)
        free(out->seen[p]);
    free(out);
}

/* Counts one prediction record against its input (partition, offset). */
static void out_count(nx_drun_out_t *out, const rd_kafka_message_t *m) {
    avro_reader_t rd = avro_reader_memory(m->payload, (int64_t)m->len);
    avro_value_t fld;
    int32_t part = -1;
    int64_t off = -1;
    out->got++;
    avro_value_reset(&out->val);
    if (avro_value_read(rd, &out->val) == 0) {
        if (avro_value_get_by_name(&out->val, "partition", &fld, NULL) == 0)
            avro_value_get_int(&fld, &part);
        if (avro_value_get_by_name(&out->val, "offset", &fld, NULL) == 0)
            avro_value_get_long(&fld, &off);
    }
    avro_reader_free(rd);
    if (part < 0 || part >= out->dr->parts || off < 0 || off >= out->dr->n_records) {
        out->undecodable++;
        out->bad++;
        return;
    }
    unsigned char *s = &out->seen[part][off];
    if (*s)
        out->dups++;
    else
        out->missing--;
    if (*s < 255)
        (*s)++;
}

void nx_drun_out_poll(nx_drun_out_t *out, int ms) {
    int64_t until = nx_drun_mono_ms() + ms;
    do {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(out->consumer, 100);
        if (!m)
            continue;
        if (!m->err)
            out_count(out, m);
        rd_kafka_message_destroy(m);
    } while (nx_drun_mono_ms() < until);
}

int nx_drun_out_drain(nx_drun_out_t *out, int timeout_ms) {
    long long ends[NX_DRUN_MAX_PARTS];
    long long want = nx_fixture_end_offsets(out->consumer, out->topic, out->dr->parts, ends);
    int64_t until = nx_drun_mono_ms() + timeout_ms;
    while (out->got < want && nx_drun_mono_ms() < until)
        nx_drun_out_poll(out, 200);
    /* exact counts now that the input's end offsets are known: a
     * prediction for an offset past them is bad, not one less missing */
    out->missing = 0;
    out->bad = out->undecodable;
    for (int p = 0; p < out->dr->parts; p++)
        for (long long o = 0; o < out->dr->n_records; o++) {
            if (o >= out->dr->ends[p])
                out->bad += out->seen[p][o];
            else if (out->dr->bad_at[p] && out->dr->bad_at[p][o])
                out->bad += out->seen[p][o]; /* a malformed record has no prediction */
            else
                out->missing += out->seen[p][o] == 0;
        }
    if (want < 0 || out->got != want) {
        fprintf(stderr, "%s: read %lld of %lld records\n", out->topic, out->got, want);
        return -1;
    }
    return 0;
}

int nx_drun_finish(nx_drun_out_t *out, pid_t pid, int64_t started_ms, int timeout_ms,
                   const char *group) {
    /* a daemon signalled before its handlers are set up, or before it
     * joined its group, tests something else */
    const int min_up_ms = 5000;
    /* a daemon that joined its group, or restarted, and then has no new
     * prediction for this long has none to come: the test has its answer */
    const int stall_ms = 90000;
    int64_t t0 = nx_drun_mono_ms(), changed = t0;
    long long last_got = out->got;
    int st = 0;
    int at_end = 0;
    while ((out->missing > 0 || !at_end || nx_drun_mono_ms() - started_ms < min_up_ms) &&
           nx_drun_mono_ms() - t0 < timeout_ms && nx_drun_mono_ms() - changed < stall_ms) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "%s: daemon %d ended before its run was complete\n", out->topic,
                    (int)pid);
            int rc = exit_status(pid, st);
            return rc == 0 ? -1 : rc;
        }
        nx_drun_out_poll(out, 500);
        if (out->got != last_got) {
            last_got = out->got;
            changed = nx_drun_mono_ms();
        }
        /* the daemon re-reads from where its state ends: its predictions
         * (duplicates) keep the stall clock moving until its commits are
         * at the end */
        if (out->missing == 0 && !at_end)
            at_end = !group || nx_drun_committed_at_end(out->dr, group);
    }
    if (out->missing > 0)
        fprintf(stderr,
                "%s: %lld input offset(s) still without a prediction after %.0f s, the last "
                "%.0f s without a new one\n",
                out->topic, out->missing, (double)(nx_drun_mono_ms() - t0) / 1000,
                (double)(nx_drun_mono_ms() - changed) / 1000);
    return nx_drun_stop(pid, 120000);
}

/* ---- store dumps ---------------------------------------------------------------- */

/* Next line of a dump that is about the user's own events: the pending
 * example's feature vector and scores (normaliser and model) are skipped.
 * NULL at the end. */
static char *next_line(FILE *f, char *buf, size_t size) {
    while (fgets(buf, (int)size, f))
        if (strncmp(buf, "pending ", 8) != 0 && strncmp(buf, "scores ", 7) != 0)
            return buf;
    return NULL;
}

int nx_drun_compare(const char *ref_dump, const char *run_dump, const char *run_label, int strict,
                    nx_drun_state_t *st) {
    static char la[65536], lb[65536];
    FILE *fa = fopen(ref_dump, "r"), *fb = fopen(run_dump, "r");
    long long shown = 0;
    memset(st, 0, sizeof *st);
    if (!fa || !fb) {
        fprintf(stderr, "store dump %s unreadable\n", fa ? run_dump : ref_dump);
        if (fa)
            fclose(fa);
        if (fb)
            fclose(fb);
        return -1;
    }
    for (;;) {
        char *ra = next_line(fa, la, sizeof la), *rb = next_line(fb, lb, sizeof lb);
        st->users_ref += ra && strncmp(la, "user ", 5) == 0;
        st->users_run += rb && strncmp(lb, "user ", 5) == 0;
        if (!ra || !rb) {
            st->diff += ra || rb; /* one is longer: count its users */
            while ((ra = next_line(fa, la, sizeof la)) != NULL)
                st->users_ref += strncmp(la, "user ", 5) == 0;
            while ((rb = next_line(fb, lb, sizeof lb)) != NULL)
                st->users_run += strncmp(lb, "user ", 5) == 0;
            break;
        }
        if (strncmp(la, "stats ", 6) == 0 && strncmp(lb, "stats ", 6) == 0)
            continue;
        if (strncmp(la, "user ", 5) == 0) {
            /* the pending flag is compared apart (see drun.h) */
            char *pa = strstr(la, " pending "), *pb = strstr(lb, " pending ");
            if (pa && pb && strcmp(pa, pb) != 0) {
                st->pending_diff++;
                *pa = *pb = '\0';
            }
        }
        if (strcmp(la, lb) == 0)
            continue;
        st->diff++;
        if (shown++ < 5)
            fprintf(stderr, "dump differs:\n  reference: %s  %s: %s", la, run_label, lb);
    }
    fclose(fa);
    fclose(fb);
    st->late_ref = nx_drun_dump_stat(ref_dump, "late");
    st->dropped_ref = nx_drun_dump_stat(ref_dump, "dropped");
    st->late_run = nx_drun_dump_stat(run_dump, "late");
    st->dropped_run = nx_drun_dump_stat(run_dump, "dropped");
    st->comparable = st->late_ref == 0 && st->dropped_ref == 0 &&
                     (strict || (st->late_run == 0 && st->dropped_run == 0));
    fprintf(stderr,
            "store dumps: reference %lld users, %s %lld; %lld differing feature-state lines; "
            "%lld users pending in one run only (watermark order, not compared); late/dropped "
            "events: reference %lld/%lld, %s %lld/%lld\n",
            st->users_ref, run_label, st->users_run, st->diff, st->pending_diff, st->late_ref,
            st->dropped_ref, run_label, st->late_run, st->dropped_run);
    if (!st->comparable)
        fprintf(stderr,
                "WARNING: per-user state NOT compared: late or dropped events make it depend on "
                "the partition read order (pipeline watermark), not on checkpoints\n");
    return 0;
}

long long nx_drun_dump_stat(const char *dump, const char *name) {
    static char line[65536];
    FILE *f = fopen(dump, "r");
    long long v = -1;
    char key[64];
    snprintf(key, sizeof key, " %s ", name);
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strncmp(line, "stats ", 6) == 0 ? strstr(line, key) : NULL;
        if (p)
            v = atoll(p + strlen(key));
    }
    if (f)
        fclose(f);
    return v;
}

/* ---- logs and the scratch directory ------------------------------------------ */

long long nx_drun_log_count(const nx_drun_t *dr, const char *name, const char *needle) {
    static char line[65536];
    char path[300];
    snprintf(path, sizeof path, "%s/%s.log", dr->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

long long nx_drun_log_wait(const nx_drun_t *dr, const char *name, const char *needle,
                           long long at_least, int timeout_ms) {
    int64_t until = nx_drun_mono_ms() + timeout_ms;
    long long n;
    while ((n = nx_drun_log_count(dr, name, needle)) < at_least && nx_drun_mono_ms() < until)
        usleep(200000);
    return n;
}

void nx_drun_cleanup(const nx_drun_t *dr, int failed, const char *const *logs) {
    char cmd[512];
    if (!failed) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dr->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dr->dir);
        return;
    }
    for (; logs && *logs; logs++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s.log", dr->dir, *logs);
        if (access(path, R_OK) != 0)
            continue;
        fprintf(stderr, "---- %s: last warnings and errors ----\n", path);
        snprintf(cmd, sizeof cmd, "grep -h -E '<[0-4]>' '%s' | tail -n 30 1>&2", path);
        if (system(cmd) != 0)
            fprintf(stderr, "(none)\n");
    }
    fprintf(stderr, "files kept in %s\n", dr->dir);
}
