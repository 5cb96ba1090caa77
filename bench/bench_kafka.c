/*
 * bench_kafka.c: nextactd end to end on a real broker. Prints
 * figures; not a test.
 *
 * Two measurements, each against a `nextactd run` this tool starts (and
 * stops with SIGTERM) on fresh topics: an input topic of PARTS partitions,
 * an output topic, a dead-letter topic.
 *
 * throughput (--rate 0, the default): N generated events are produced
 *   first (keyed by user id, Avro per event.avsc), then the daemon starts
 *   and drains them. Figures: events/s between the first and the last
 *   prediction's arrival on the output topic, and the wall time until the
 *   group's committed offsets reach the end offsets (start-up and group
 *   join included). Every input offset must get its prediction.
 *
 * latency (--rate R): the daemon starts first and a warm-up batch makes
 *   sure it has its partitions; then events are produced at R events/s,
 *   paced each millisecond, for 2 s of warm-up (not measured) and S
 *   seconds. Each prediction carries its input partition and offset; the
 *   produce time of every (partition, offset) is kept from the delivery
 *   report, so latency = arrival of the prediction at this tool's consumer
 *   - the produce() call of its event, both on this process's monotonic
 *   clock. p50, p99, p99.9 and max are printed. NX_BENCH_LATENCY_DUMP=FILE
 *   writes "produce_ms latency_ms partition" per event (for plots).
 *
 *   Where the time goes: the input and output topics use LogAppendTime,
 *   so each record carries its broker append time. Printed per stage (p50,
 *   p99, ms): this tool's producer to the broker's append of the input;
 *   the daemon's own stages from its /metrics histograms (fetch: append to
 *   the loop's poll; wait; predict; ack: produce() to the delivery report;
 *   their deltas over the timed part, quantiles interpolated within
 *   buckets); and the broker's append of the prediction to its arrival here
 *   (this tool's own fetch). Also the trainer's steps and the examples it
 *   shed over the timed part.
 *
 * ceiling (--ceiling on, throughput only): beside the daemon, a plain
 *   librdkafka consume -> produce loop (rd_kafka_consume_batch_queue, the
 *   daemon's producer and consumer tuning from kafka.h, no decoding, no
 *   model) reads the same input topic in a group of its own and copies each
 *   record to an output topic of the same layout, once before the daemon
 *   starts and once after it stopped. Its events/s (first record consumed
 *   to last delivery report), the better of the two, is the most this
 *   broker and client give on this host; the daemon's events/s is printed
 *   as a share of it.
 *
 * changelog (--changelog on, throughput only): the daemon keeps its user
 *   state in a changelog topic (state.changelog); besides events/s it
 *   prints the changelog bytes and records per input event (from its
 *   /metrics), then starts a second daemon in the same group with an empty
 *   state directory (the same key) and reports how fast it restores every
 *   partition from the changelog (users/s and MB/s over the longest
 *   partition restore; partitions restore in parallel).
 *
 * transactional (--transactional on): exactly-once (kafka.transactional,
 *   which implies the changelog, every kafka.transaction_interval_ms = 100);
 *   this tool reads the output read_committed in every mode (librdkafka's
 *   default), so a prediction arrives when its transaction commits: the
 *   latency figures include the wait for the commit.
 * join (--join on, with --changelog on, throughput only): before the
 *   daemon A stops, a second daemon B joins the group. The eager rebalance
 *   revokes all of A's partitions and gives it half back, which A restores
 *   from the users it kept at the revoke (reading only the changelog after
 *   them), while B restores the other half whole from the changelog; both
 *   are printed (users, records read, the longest partition's time).
 *
 * fail-over (--failover on, with --changelog on and --rate R): a second
 *   daemon B (same group and key, a state directory of its own) runs beside
 *   the first, A; half-way through the timed part A is killed (SIGKILL).
 *   Printed per input partition: the time from the kill to the arrival of
 *   the first prediction of an event produced after it. B's own partitions
 *   go on within milliseconds; those that move from A wait for the group to
 *   notice (session.timeout.ms), the rebalance and their restore from the
 *   changelog: the largest is the fail-over time. The latency figures of
 *   such a run include that gap.
 *
 * --users N sets the generator's users (default 100000), e.g. 1M users
 *   for a restore of that size; NX_BENCH_CONF="..." is appended to the
 *   daemon's configuration (e.g. 'features: { user_ttl_s = 31536000; };'
 *   so that no user expires during a sparse stream).
 *
 * NX_BENCH_EXPLAIN=N sets output.explain (reasons per prediction, default 0).
 * NX_BENCH_KAFKA_CONF="..." is pasted into the daemon's kafka { } block,
 * e.g. 'consumer = { queued_min_messages = 100000; };' to compare settings.
 *
 * The generator (gen.h) makes the events, so the stream is the one
 * `nextactd gen` writes. model.enabled can be switched off (--model off) to
 * show what the model costs.
 *
 * usage: bench_kafka NEXTACTD SOURCE_DIR [--events N] [--rate R]
 *                    [--seconds S] [--model on|off] [--changelog on|off]
 *                    [--transactional on|off] [--ceiling on|off] [--failover on|off]
 *                    [--join on|off] [--users N] [--brokers B]
 *        (brokers: $NX_TEST_BROKERS, else 127.0.0.1:$NX_KAFKA_PORT or 39092)
 */
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_ceiling.h"
#include "bench_figures.h"
#include "codec.h"
#include "gen.h"
#include "kafka.h"
#include "kafka_fixture.h"
#include "scrape.h"

/* Input partitions: the layout of test_e2e_kafka. */
#define PARTS 4
/* Warm-up events before the timed latency run. */
#define WARMUP 2000

/* Then this long at the fixed rate before the timed part: the first 200 ms
 * after the burst above ran at 85-100 ms latency in every run (the broker's
 * and the daemon's paths at a steady rate, first taken), 2% of a 10 s run
 * and so its p99 by themselves. Not in the figures, as any warm-up. */
#define PACED_WARMUP_S 2.0
/* Users of the generated stream, by default. */
#define USERS 100000
/* Pacing tick of the latency run (ms). */
#define TICK_MS 1

static const char *nextactd, *srcdir;
static char in_topic[128], out_topic[128], dlq_topic[128], group[160];
static long long n_events = 1000000;
static double rate = 0, seconds = 10;
static int model_on = 1;
static int changelog_on = 0;
static int txn_on = 0;
static int ceiling_on = 0;
static int failover_on = 0;
static int join_on = 0;
static long long n_users = USERS;
static int metrics_port;
/* CLOCK_REALTIME - CLOCK_MONOTONIC, us: broker timestamps onto this clock */
static int64_t wall_minus_mono_us;

/* per input partition, per offset: produce time and prediction arrival
 * (us on CLOCK_MONOTONIC; 0 = not yet) */
static int64_t *t_prod[PARTS], *t_arr[PARTS];
/* latency runs: broker append time of each input record and of its
 * prediction, on CLOCK_MONOTONIC, us (0 = unknown) */
static int64_t *t_in_app[PARTS], *t_out_app[PARTS];
static long long cap_per_part;
static long long produced, delivered, delivery_failed, predictions, duplicates, out_of_range;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        delivery_failed++;
        return;
    }
    delivered++;
    int64_t t = (int64_t)(intptr_t)m->_private;
    if (m->partition >= 0 && m->partition < PARTS && m->offset >= 0 && m->offset < cap_per_part) {
        t_prod[m->partition][m->offset] = t;
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        if (t_in_app[0] && tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME && ts > 0)
            t_in_app[m->partition][m->offset] = ts * 1000 - wall_minus_mono_us;
    }
}

/* Zig-zag varint at *p; -1 on a bad one. */
static int get_long(const uint8_t **p, const uint8_t *end, int64_t *v) {
    uint64_t u = 0;
    for (int s = 0; s < 64 && *p < end; s += 7) {
        uint8_t b = *(*p)++;
        u |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) {
            *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return 0;
        }
    }
    return -1;
}

/* Input partition and offset of a prediction record (raw Avro,
 * prediction.avsc: user_id string, event_ts long, topic string, partition
 * int, offset long, ...): only the leading fields are read. */
static int parse_prediction(const void *buf, size_t len, int64_t *part, int64_t *off) {
    const uint8_t *p = buf, *end = p + len;
    int64_t n, ts;
    if (get_long(&p, end, &n) < 0 || n < 0 || n > end - p)
        return -1;
    p += n;
    if (get_long(&p, end, &ts) < 0 || get_long(&p, end, &n) < 0 || n < 0 || n > end - p)
        return -1;
    p += n;
    return get_long(&p, end, part) < 0 || get_long(&p, end, off) < 0 ? -1 : 0;
}

/* Takes every prediction available now, then waits for more up to wait_ms
 * (0: returns once nothing is left). */
/* The daemon has not exited: a start-up error (its log says which) ends the
 * run at once instead of at the deadline. */
static pid_t exited_pid = 0;
static int exited_status = 0;
static int daemon_alive(pid_t pid) {
    if (exited_pid == pid)
        return 0;
    if (waitpid(pid, &exited_status, WNOHANG) == pid) {
        exited_pid = pid;
        fprintf(stderr, "bench_kafka: nextactd exited early (status %d)\n", exited_status);
        return 0;
    }
    return 1;
}

static void consume_outputs(rd_kafka_t *cons, int wait_ms, int64_t *first, int64_t *last) {
    int64_t stop = bench_now_us() + (int64_t)wait_ms * 1000;
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 0);
        if (!m) {
            if (bench_now_us() >= stop)
                return;
            m = rd_kafka_consumer_poll(cons, 5);
            if (!m)
                continue;
        }
        if (!m->err) {
            int64_t t = bench_now_us(), part, off;
            if (parse_prediction(m->payload, m->len, &part, &off) == 0 && part >= 0 &&
                part < PARTS && off >= 0 && off < cap_per_part) {
                rd_kafka_timestamp_type_t tt;
                int64_t ts = rd_kafka_message_timestamp(m, &tt);
                if (t_arr[part][off]) {
                    duplicates++;
                } else {
                    t_arr[part][off] = t;
                    if (t_out_app[0] && tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME && ts > 0)
                        t_out_app[part][off] = ts * 1000 - wall_minus_mono_us;
                }
                predictions++;
                if (!*first)
                    *first = t;
                *last = t;
            } else {
                out_of_range++;
            }
        }
        rd_kafka_message_destroy(m);
    }
}

/* Sum of the group's committed offsets on the input topic; -1 on error. */
static long long committed_sum(rd_kafka_t *rk) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, in_topic, p);
    long long sum = 0;
    if (rd_kafka_committed(rk, l, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        sum = -1;
    for (int i = 0; sum >= 0 && i < l->cnt; i++)
        sum += l->elems[i].offset > 0 ? l->elems[i].offset : 0;
    rd_kafka_topic_partition_list_destroy(l);
    return sum;
}

/* Produces one generated event; 0, or -1 when the queue stays full. */
static int produce_one(rd_kafka_t *prod, nx_gen_t *gen) {
    nx_gen_event_t ev;
    uint8_t buf[512];
    nx_gen_next(gen, &ev);
    int64_t len = nx_gen_encode_event(&ev, -1, buf, sizeof buf);
    if (len < 0)
        return -1;
    for (int tries = 0; tries < 1000; tries++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            prod, RD_KAFKA_V_TOPIC(in_topic), RD_KAFKA_V_KEY(ev.user_id, strlen(ev.user_id)),
            RD_KAFKA_V_VALUE(buf, (size_t)len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(intptr_t)bench_now_us()), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            produced++;
            return 0;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return -1;
        rd_kafka_poll(prod, 10); /* queue full: serve delivery reports */
    }
    return -1;
}

/* Changelog mode: bytes and records written per input event. */
static void changelog_figures(long long events) {
    static char text[1 << 20];
    if (nx_scrape_get(metrics_port, "/metrics", text, sizeof text) != 200) {
        printf("changelog: no metrics on port %d\n", metrics_port);
        return;
    }
    long long bytes = nx_scrape_metric(text, "nextactd_changelog_bytes_total");
    long long recs = nx_scrape_metric(text, "nextactd_changelog_records_total");
    long long flushes = nx_scrape_metric(text, "nextactd_changelog_flushes_total");
    printf("changelog: %lld records, %.1f MB in %lld transactions: %.1f bytes and %.3f records "
           "per input event (before compression)\n",
           recs, (double)bytes / 1e6, flushes, (double)bytes / (double)events,
           (double)recs / (double)events);
}

/* A second daemon in the same group with the same key: its own state
 * directory (DIR/NAME-state), instance id and log (DIR/NAME.log), no
 * metrics endpoint. The pid, or -1. */
static pid_t start_second(const char *dir, const char *conf, const char *name) {
    char cmd[1024], conf2[300], log2[300];
    snprintf(conf2, sizeof conf2, "%s/%s.conf", dir, name);
    snprintf(log2, sizeof log2, "%s/%s.log", dir, name);
    snprintf(cmd, sizeof cmd,
             "mkdir -m 700 %s/%s-state && cp -p %s/state/user-hash.key %s/%s-state/ && "
             "sed -e 's|%s/state|%s/%s-state|' -e 's|instance_id = \"bench\"|instance_id = "
             "\"%s\"|' -e 's|listen = \"[^\"]*\"|listen = \"\"|' %s > %s",
             dir, name, dir, dir, name, dir, dir, name, name, conf, conf2);
    /* the first daemon makes the key file: wait for it */
    char key[300];
    snprintf(key, sizeof key, "%s/state/user-hash.key", dir);
    for (int k = 0; k < 100 && access(key, R_OK) != 0; k++)
        usleep(100000);
    if (system(cmd) != 0) {
        printf("cannot prepare %s\n", conf2);
        return -1;
    }
    return nx_fixture_start_daemon(nextactd, conf2, log2, NULL);
}

/* Fail-over: per partition, kill -> first prediction of an event produced
 * after the kill. */
static void failover_figures(int64_t t_kill) {
    double worst = 0;
    printf("fail-over: kill -> first prediction of a later event, per partition:");
    for (int p = 0; p < PARTS; p++) {
        int64_t first = 0;
        for (long long o = 0; o < cap_per_part; o++)
            if (t_prod[p][o] >= t_kill && t_arr[p][o] && (!first || t_arr[p][o] < first))
                first = t_arr[p][o];
        double s = first ? (double)(first - t_kill) / 1e6 : NAN;
        printf(" %d: %.2f s", p, s);
        if (!first || s > worst)
            worst = first ? s : INFINITY;
    }
    printf("\nfail-over time (the slowest partition, one that moved): %.2f s\n", worst);
}

/* Restore lines of a log from its line `from` on ("partition P restored in
 * S s: U user(s), R removed, N record(s) (M MB)...", those ending "on K
 * user(s) kept at its revoke" apart): their count, sums and longest time. */
typedef struct restores {
    int n;
    long lines;
    double users, kept, records, mb, worst;
} restores_t;

static void read_restores(const char *path, long from, int kept, restores_t *r) {
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        if (r->lines++ < from)
            continue;
        const char *p = strstr(line, "restored in "), *k = strstr(line, "; on ");
        double sec, u, rm, n, m, ku = 0;
        if (!p || (kept != (k != NULL)) ||
            sscanf(p, "restored in %lf s: %lf user(s), %lf removed, %lf record(s) (%lf MB)", &sec,
                   &u, &rm, &n, &m) != 5 ||
            (k && sscanf(k, "; on %lf user(s) kept", &ku) != 1))
            continue;
        r->n++;
        r->users += u;
        r->kept += ku;
        r->records += n;
        r->mb += m;
        if (sec > r->worst)
            r->worst = sec;
    }
    if (f)
        fclose(f);
}

/* Changelog mode: a second daemon, same group and key, empty state
 * directory, restores every partition; figures from its log lines
 * "partition P restored in S s: U user(s), R removed, N record(s) (M MB)". */
static void restore_figures(const char *dir, const char *conf) {
    char log2[300];
    snprintf(log2, sizeof log2, "%s/restore.log", dir);
    pid_t pid = start_second(dir, conf, "restore");
    if (pid < 0)
        return;
    restores_t r = {0};
    for (int k = 0; k < 1200 && r.n < PARTS; k++) {
        usleep(100000);
        read_restores(log2, 0, 0, &r);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (r.n < PARTS) {
        printf("restore: only %d of %d partitions restored (see %s)\n", r.n, PARTS, log2);
        return;
    }
    printf("restore: %.0f users, %.0f records, %.1f MB in %.2f s (4 partitions in parallel, "
           "longest): %.0f users/s, %.1f MB/s\n",
           r.users, r.records, r.mb, r.worst, r.worst > 0 ? r.users / r.worst : 0,
           r.worst > 0 ? r.mb / r.worst : 0);
}

/* --join on: a second daemon joins while the first (log_a) runs; what each
 * restores, until both have every partition settled (or 120 s). */
static void join_figures(const char *dir, const char *conf, const char *log_a) {
    char log_b[300];
    snprintf(log_b, sizeof log_b, "%s/join.log", dir);
    restores_t a, b;
    read_restores(log_a, 0, 0, &a);
    long from = a.lines;
    pid_t pid = start_second(dir, conf, "join");
    if (pid < 0)
        return;
    for (int k = 0; k < 1200; k++) {
        usleep(100000);
        read_restores(log_a, from, 1, &a);
        read_restores(log_b, 0, 0, &b);
        if (a.n + b.n >= PARTS)
            break;
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    printf("join: A put back %d partition(s) from the %.0f users it kept at the revoke, reading "
           "%.0f changelog record(s) after them, longest %.3f s; B restored %d partition(s) "
           "whole from the changelog: %.0f records read (%.1f MB; a user changed in several "
           "flushes has several), longest %.2f s\n",
           a.n, a.kept, a.records, a.worst, b.n, b.records, b.mb, b.worst);
    if (a.n + b.n < PARTS)
        printf("join: only %d of %d partitions settled within 120 s (see %s, %s)\n", a.n + b.n,
               PARTS, log_a, log_b);
}

/* The daemon's /metrics body into buf; 0 or -1. */
static int scrape_metrics(char *buf, size_t size) {
    return nx_scrape_get(metrics_port, "/metrics", buf, size) == 200 ? 0 : -1;
}

/* Where the time of the timed events went (see the header). before, after:
 * the daemon's /metrics at the start and the end of the timed part. */
static void print_stages(const char *before, const char *after, int64_t t_start) {
    int64_t *v = malloc((size_t)(PARTS * cap_per_part) * sizeof *v);
    char in_app[40] = "-", own_fetch[40] = "-", daemon_part[300] = "";
    long long n = 0;
    for (int p = 0; p < PARTS; p++)
        for (long long o = 0; o < cap_per_part; o++)
            if (t_prod[p][o] >= t_start && t_arr[p][o] && t_in_app[p][o])
                v[n++] = t_in_app[p][o] - t_prod[p][o];
    bench_p50_p99(in_app, sizeof in_app, v, n);
    n = 0;
    for (int p = 0; p < PARTS; p++)
        for (long long o = 0; o < cap_per_part; o++)
            if (t_prod[p][o] >= t_start && t_arr[p][o] && t_out_app[p][o])
                v[n++] = t_arr[p][o] - t_out_app[p][o];
    bench_p50_p99(own_fetch, sizeof own_fetch, v, n);
    free(v);
    static const char *stages[] = {"fetch", "queued", "decode", "predict", "ack"};
    size_t len = 0;
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        char labels[64];
        bench_hist_t a, b;
        snprintf(labels, sizeof labels, "stage=\"%s\",", stages[i]);
        bench_hist_get(before, "nextactd_stage_seconds", labels, &a);
        bench_hist_get(after, "nextactd_stage_seconds", labels, &b);
        len += (size_t)snprintf(daemon_part + len, sizeof daemon_part - len, "%s %.2f/%.2f | ",
                                stages[i], bench_hist_quantile(&a, &b, 0.5) * 1000,
                                bench_hist_quantile(&a, &b, 0.99) * 1000);
        if (len >= sizeof daemon_part)
            break;
    }
    bench_hist_t a, b;
    bench_hist_get(before, "nextactd_produce_latency_seconds", "", &a);
    bench_hist_get(after, "nextactd_produce_latency_seconds", "", &b);
    printf("stages ms p50/p99: producer->broker %s | daemon: %sappend->produce() %.2f/%.2f | "
           "prediction append->this consumer %s\n",
           in_app, daemon_part, bench_hist_quantile(&a, &b, 0.5) * 1000,
           bench_hist_quantile(&a, &b, 0.99) * 1000, own_fetch);
    long long steps = nx_scrape_metric(after, "nextactd_training_steps_total") -
                      nx_scrape_metric(before, "nextactd_training_steps_total");
    long long shed = nx_scrape_metric(after, "nextactd_training_examples_shed_total") -
                     nx_scrape_metric(before, "nextactd_training_examples_shed_total");
    if (model_on)
        printf("trainer: %lld steps, %lld examples shed in the timed part\n", steps, shed);
    if (!txn_on)
        return;
    bench_hist_get(before, "nextactd_transaction_duration_seconds", "", &a);
    bench_hist_get(after, "nextactd_transaction_duration_seconds", "", &b);
    double wall_s = (double)(bench_now_us() - t_start) / 1e6;
    printf("transactions: %lld committed, %lld aborted in the timed part; duration (start to "
           "committed) p50 %.0f ms, p99 %.0f ms; the loop committing %.0f%% of the time\n",
           nx_scrape_metric(after, "nextactd_transactions_committed_total") -
               nx_scrape_metric(before, "nextactd_transactions_committed_total"),
           nx_scrape_metric(after, "nextactd_transactions_aborted_total") -
               nx_scrape_metric(before, "nextactd_transactions_aborted_total"),
           bench_hist_quantile(&a, &b, 0.5) * 1000, bench_hist_quantile(&a, &b, 0.99) * 1000,
           100 *
               (bench_metric_double(after, "nextactd_transaction_commit_seconds_total") -
                bench_metric_double(before, "nextactd_transaction_commit_seconds_total")) /
               wall_s);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_kafka NEXTACTD SOURCE_DIR [--events N] [--rate R] "
                    "[--seconds S] [--model on|off] [--changelog on|off] [--transactional on|off] "
                    "[--ceiling on|off] [--failover on|off] [--join on|off] [--users N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    char err[512];
    if (argc < 3)
        usage();
    nextactd = argv[1];
    srcdir = argv[2];
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--events") == 0)
            n_events = atoll(argv[++i]);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = atof(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--model") == 0)
            model_on = strcmp(argv[++i], "off") != 0;
        else if (strcmp(argv[i], "--changelog") == 0)
            changelog_on = strcmp(argv[++i], "off") != 0;
        else if (strcmp(argv[i], "--transactional") == 0)
            txn_on = strcmp(argv[++i], "off") != 0;
        else if (strcmp(argv[i], "--ceiling") == 0)
            ceiling_on = strcmp(argv[++i], "off") != 0;
        else if (strcmp(argv[i], "--failover") == 0)
            failover_on = strcmp(argv[++i], "off") != 0;
        else if (strcmp(argv[i], "--join") == 0)
            join_on = strcmp(argv[++i], "off") != 0;
        else if (strcmp(argv[i], "--users") == 0)
            n_users = atoll(argv[++i]);
        else if (strcmp(argv[i], "--brokers") == 0)
            setenv("NX_TEST_BROKERS", argv[++i], 1);
        else
            usage();
    }
    if (txn_on)
        changelog_on = 1; /* exactly-once keeps the state in the transaction */
    long long total = rate > 0 ? WARMUP + (long long)(rate * (seconds + PACED_WARMUP_S)) : n_events;
    /* keys spread users over partitions unevenly: room for all in each */
    cap_per_part = total + 1;
    for (int p = 0; p < PARTS; p++) {
        t_prod[p] = calloc((size_t)cap_per_part, sizeof(int64_t));
        t_arr[p] = calloc((size_t)cap_per_part, sizeof(int64_t));
        if (rate > 0) {
            t_in_app[p] = calloc((size_t)cap_per_part, sizeof(int64_t));
            t_out_app[p] = calloc((size_t)cap_per_part, sizeof(int64_t));
        }
        if (!t_prod[p] || !t_arr[p] || (rate > 0 && (!t_in_app[p] || !t_out_app[p]))) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
    }
    {
        struct timespec w;
        clock_gettime(CLOCK_REALTIME, &w);
        wall_minus_mono_us = (int64_t)w.tv_sec * 1000000 + w.tv_nsec / 1000 - bench_now_us();
    }

    nx_fixture_topic_name(in_topic, sizeof in_topic, "bench-in");
    nx_fixture_topic_name(out_topic, sizeof out_topic, "bench-pred");
    nx_fixture_topic_name(dlq_topic, sizeof dlq_topic, "bench-dlq");
    snprintf(group, sizeof group, "%s-group", out_topic);
    if (nx_fixture_create_topic(in_topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(out_topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(dlq_topic, 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    if (rd_kafka_conf_set(pc, "bootstrap.servers", nx_fixture_brokers(), err, sizeof err) ||
        rd_kafka_conf_set(pc, "linger.ms", rate > 0 ? "1" : "20", err, sizeof err) ||
        rd_kafka_conf_set(pc, "queue.buffering.max.messages", "1000000", err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    /* latency runs: records carry their broker append time (see the header) */
    if (prod && rate > 0 &&
        (bench_log_append_time(prod, in_topic) < 0 || bench_log_append_time(prod, out_topic) < 0))
        return 1;
    const char *cprops[] = {
        "auto.offset.reset", "earliest", "fetch.wait.max.ms", "5", "isolation.level",
        "read_committed",    NULL};
    char cgroup[200];
    snprintf(cgroup, sizeof cgroup, "%s-reader", out_topic);
    rd_kafka_t *cons = nx_fixture_consumer(cgroup, err, sizeof err, cprops);
    rd_kafka_t *admin = nx_fixture_consumer(group, err, sizeof err, NULL);
    if (!prod || !cons || !admin) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, out_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(cons, sub);
    rd_kafka_topic_partition_list_destroy(sub);

    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = (uint32_t)n_users;
    gp.seed = 7;
    /* 100k users make a sparse stream: 1M events span most of a year of
     * simulated time. Started three years back, none is "in the future"
     * (the daemon dead-letters events more than a day ahead). */
    gp.start_ms = ((int64_t)time(NULL) - 3 * 365 * 86400LL) * 1000;
    nx_gen_t *gen = nx_gen_new(&gp, err, sizeof err);
    if (!gen) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    char dir[] = "/tmp/bench_kafka.XXXXXX", conf[256], log[256];
    if (!mkdtemp(dir))
        return 1;
    snprintf(conf, sizeof conf, "%s/nextactd.conf", dir);
    snprintf(log, sizeof log, "%s/nextactd.log", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "log_level = \"notice\";\nstate_dir = \"%s/state\";\n"
            "kafka: { brokers = \"%s\"; group_id = \"%s\"; input_topics = [\"%s\"];\n"
            "  output_topic = \"%s\"; dead_letter_topic = \"%s\"; commit_interval_ms = 1000;\n"
            "  transactional = %s; %s };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; explain = %d; };\n"
            "model: { enabled = %s; };\n"
            "checkpoint: { interval_s = 0; };\n",
            dir, nx_fixture_brokers(), group, in_topic, out_topic, dlq_topic,
            txn_on ? "true" : "false",
            getenv("NX_BENCH_KAFKA_CONF") ? getenv("NX_BENCH_KAFKA_CONF") : "", srcdir, srcdir,
            getenv("NX_BENCH_EXPLAIN") ? atoi(getenv("NX_BENCH_EXPLAIN")) : 0,
            model_on ? "true" : "false");
    const char *kp = getenv("NX_KAFKA_PORT");
    metrics_port = (kp ? atoi(kp) : 39092) + 109;
    fprintf(f, "metrics: { listen = \"127.0.0.1:%d\"; };\n", metrics_port);
    if (changelog_on)
        fprintf(f, "state: { changelog = \"%s-state\"; instance_id = \"bench\"; };\n", in_topic);
    if (getenv("NX_BENCH_CONF"))
        fprintf(f, "%s\n", getenv("NX_BENCH_CONF"));
    fclose(f);
    if (failover_on && (!changelog_on || rate <= 0)) {
        fprintf(stderr, "--failover on needs --changelog on and --rate R\n");
        return 2;
    }

    int64_t first = 0, last = 0, t_start, t_end, t_kill = 0;
    pid_t pid_b = -1;          /* --failover: the second daemon */
    double daemon_rate = 0;    /* throughput runs: the daemon's events/s */
    double ceiling_before = 0; /* and the ceiling's, measured before it */
    pid_t pid;
    if (rate <= 0) {
        /* throughput: produce everything, then let the daemon drain it */
        for (long long i = 0; i < total; i++) {
            if (produce_one(prod, gen) < 0) {
                fprintf(stderr, "produce failed\n");
                return 1;
            }
            if ((i & 1023) == 0)
                rd_kafka_poll(prod, 0);
        }
        rd_kafka_flush(prod, 60000);
        printf("produced %lld events to %s (%d partitions), %lld delivered\n", produced, in_topic,
               PARTS, delivered);
        /* the ceiling before the daemon and again after it (see below):
         * the host's other load moves both, the better one is kept */
        if (ceiling_on)
            ceiling_before = nx_bench_ceiling_run(in_topic, PARTS, total);
        t_start = bench_now_us();
        double broker_cpu0 = bench_proc_cpu_s(bench_broker_pid());
        pid = nx_fixture_start_daemon(nextactd, conf, log, NULL);
        /* until every prediction is in, or the offsets are committed and
         * nothing more comes for 3 s (then some are missing) */
        int64_t deadline = t_start + 300 * 1000000LL;
        long long c = 0;
        t_end = 0;
        while (predictions < total && bench_now_us() < deadline && daemon_alive(pid)) {
            consume_outputs(cons, 200, &first, &last);
            if (!t_end && (c = committed_sum(admin)) >= total)
                t_end = bench_now_us();
            if (t_end && bench_now_us() - (last > t_end ? last : t_end) > 3000000)
                break;
        }
        while (!t_end) {
            if ((c = committed_sum(admin)) >= total || bench_now_us() >= deadline ||
                !daemon_alive(pid))
                t_end = bench_now_us(); /* at the deadline: c says how far it got */
            else
                usleep(100000);
        }
        long long missing = 0;
        for (int p = 0; p < PARTS; p++)
            for (long long o = 0; o < cap_per_part; o++)
                missing += t_prod[p][o] && !t_arr[p][o];
        if (missing)
            printf("%lld input offsets without a prediction (dead-lettered? see the log)\n",
                   missing);
        double span = (double)(last - first) / 1e6;
        printf("model %s, changelog %s, transactional %s: %lld predictions; %.0f events/s "
               "(first to last prediction, %.2f s); committed %lld/%lld after %.2f s from start "
               "(group join included)\n",
               model_on ? "on" : "off", changelog_on ? "on" : "off", txn_on ? "on" : "off",
               predictions, span > 0 ? (double)predictions / span : 0, span, c, total,
               (double)(t_end - t_start) / 1e6);
        if (changelog_on)
            changelog_figures(total);
        daemon_rate = span > 0 ? (double)predictions / span : 0;
        double broker_cpu = bench_proc_cpu_s(bench_broker_pid());
        bench_print_cpu(bench_proc_cpu_s(pid),
                        broker_cpu0 >= 0 && broker_cpu >= 0 ? broker_cpu - broker_cpu0 : -1,
                        predictions);
        static char text[1 << 20];
        if (model_on && scrape_metrics(text, sizeof text) == 0)
            printf("trainer: %lld steps, %lld examples trained on, %lld shed (the trainer runs "
                   "below the loop's priority)\n",
                   nx_scrape_metric(text, "nextactd_training_steps_total"),
                   nx_scrape_metric(text, "nextactd_training_examples_total"),
                   nx_scrape_metric(text, "nextactd_training_examples_shed_total"));
    } else {
        /* latency: daemon first, warm-up, then a fixed rate */
        pid = nx_fixture_start_daemon(nextactd, conf, log, NULL);
        if (failover_on && (pid_b = start_second(dir, conf, "failover")) < 0)
            return 1;
        for (int i = 0; i < WARMUP; i++)
            produce_one(prod, gen);
        rd_kafka_flush(prod, 10000);
        int64_t deadline = bench_now_us() + 60 * 1000000LL;
        while (predictions < WARMUP && bench_now_us() < deadline && daemon_alive(pid))
            consume_outputs(cons, 100, &first, &last);
        if (predictions < WARMUP) {
            fprintf(stderr, "warm-up: only %lld predictions of %d (see %s)\n", predictions, WARMUP,
                    log);
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
            return 1;
        }
        long long timed = (long long)(rate * (seconds + PACED_WARMUP_S));
        int64_t t_paced = bench_now_us();
        t_start = t_paced + (int64_t)(PACED_WARMUP_S * 1e6); /* measured from here */
        long long sent = 0;
        static char before[1 << 20], after[1 << 20];
        int scraped = 0;
        double cpu0_daemon = -1, cpu0_broker = -1;
        while (sent < timed) {
            if (!scraped && bench_now_us() >= t_start) {
                /* the daemon's histograms as the timed part begins */
                scraped = 1;
                cpu0_daemon = bench_proc_cpu_s(pid);
                cpu0_broker = bench_proc_cpu_s(bench_broker_pid());
                if (scrape_metrics(before, sizeof before) < 0)
                    before[0] = '\0';
            }
            if (failover_on && !t_kill &&
                bench_now_us() >= t_start + (int64_t)(seconds / 2 * 1e6)) {
                int kst;
                kill(pid, SIGKILL);
                t_kill = bench_now_us();
                waitpid(pid, &kst, 0);
                pid = pid_b; /* B is the daemon from here on */
                printf("fail-over: A killed (SIGKILL) %.1f s into the timed part\n",
                       (double)(t_kill - t_start) / 1e6);
            }
            int64_t due = (int64_t)((double)(bench_now_us() - t_paced) * rate / 1e6) + 1;
            while (sent < due && sent < timed) {
                produce_one(prod, gen);
                sent++;
            }
            rd_kafka_poll(prod, 0);
            consume_outputs(cons, 0, &first, &last);
            int64_t next_tick = t_paced + (int64_t)((double)(sent + 1) * 1e6 / rate);
            int64_t wait = next_tick - bench_now_us();
            if (wait > TICK_MS * 1000)
                wait = TICK_MS * 1000;
            if (wait > 0)
                usleep((useconds_t)wait);
        }
        double send_s = (double)(bench_now_us() - t_start) / 1e6;
        timed -= (long long)(rate * PACED_WARMUP_S); /* the measured ones */
        rd_kafka_flush(prod, 10000);
        deadline = bench_now_us() + 30 * 1000000LL;
        /* duplicates (predictions sent again after a fail-over) do not count */
        while (predictions - duplicates < total && bench_now_us() < deadline)
            consume_outputs(cons, 100, &first, &last);
        usleep(300000); /* the daemon publishes its figures every 100 ms */
        if (scrape_metrics(after, sizeof after) < 0)
            after[0] = '\0';
        double cpu_daemon = bench_proc_cpu_s(pid),
               cpu_broker = bench_proc_cpu_s(bench_broker_pid());
        /* latencies of the timed events (offsets past the warm-up ones) */
        int64_t *lat = malloc((size_t)total * sizeof *lat);
        long long n = 0, missing = 0;
        for (int p = 0; p < PARTS; p++) {
            for (long long o = 0; o < cap_per_part; o++) {
                if (!t_prod[p][o] || t_prod[p][o] < t_start)
                    continue;
                if (!t_arr[p][o]) {
                    missing++;
                    continue;
                }
                lat[n++] = t_arr[p][o] - t_prod[p][o];
            }
        }
        if (getenv("NX_BENCH_LATENCY_DUMP")) { /* "produce_ms latency_ms partition" per event */
            FILE *d = fopen(getenv("NX_BENCH_LATENCY_DUMP"), "w");
            for (int p = 0; d && p < PARTS; p++)
                for (long long o = 0; o < cap_per_part; o++)
                    if (t_prod[p][o] >= t_start && t_arr[p][o])
                        fprintf(d, "%.3f %.3f %d\n", (double)(t_prod[p][o] - t_start) / 1000,
                                (double)(t_arr[p][o] - t_prod[p][o]) / 1000, p);
            if (d)
                fclose(d);
        }
        qsort(lat, (size_t)n, sizeof *lat, bench_cmp_i64);
#define Q(q) (n ? (double)lat[(long long)((q) * (double)(n - 1))] / 1000 : NAN)
        printf("model %s: %.0f events/s offered for %.1f s (%lld events); %lld predictions, "
               "%lld missing; latency produce -> prediction ms: p50 %.2f p99 %.2f p99.9 %.2f "
               "max %.2f%s\n",
               model_on ? "on" : "off", (double)timed / send_s, send_s, timed, n, missing, Q(0.5),
               Q(0.99), Q(0.999), Q(1.0), txn_on ? " (transactional)" : "");
        free(lat);
        if (t_kill)
            failover_figures(t_kill);
        if (before[0] && after[0])
            print_stages(before, after, t_start);
        else
            printf("stages: no /metrics from the daemon on port %d\n", metrics_port);
        bench_print_cpu(cpu0_daemon >= 0 && cpu_daemon >= 0 ? cpu_daemon - cpu0_daemon : -1,
                        cpu0_broker >= 0 && cpu_broker >= 0 ? cpu_broker - cpu0_broker : -1, timed);
    }
    int st = 0;
    if (join_on && changelog_on && rate <= 0 && exited_pid != pid)
        join_figures(dir, conf, log);
    if (changelog_on && !txn_on && rate <= 0 && exited_pid != pid) {
        /* stopped first: its final flush is in the changelog for the restore */
        kill(pid, SIGTERM);
        waitpid(pid, &st, 0);
        exited_pid = pid;
        exited_status = st;
        restore_figures(dir, conf);
    }
    if (exited_pid == pid) {
        st = exited_status;
    } else {
        kill(pid, SIGTERM);
        waitpid(pid, &st, 0);
    }
    if (ceiling_on && rate <= 0) {
        /* once the daemon is gone: the loop has the host to itself, as the
         * daemon had */
        double after = nx_bench_ceiling_run(in_topic, PARTS, total);
        double ceiling = after > ceiling_before ? after : ceiling_before;
        if (ceiling > 0)
            printf("ceiling: plain librdkafka consume -> produce (batch consume, the daemon's "
                   "client tuning, no decoding, no model): %.0f events/s (before the daemon "
                   "%.0f, after %.0f); nextactd model %s: %.0f events/s = %.0f%% of it\n",
                   ceiling, ceiling_before, after, model_on ? "on" : "off", daemon_rate,
                   100.0 * daemon_rate / ceiling);
    }
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("nextactd exit %d; %lld duplicate and %lld unparsed predictions, %lld delivery "
           "failures%s%s\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, duplicates, out_of_range, delivery_failed,
           ok ? "" : "; log ", ok ? "" : log);
    if (ok) { /* the run directory is kept only when the daemon failed */
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }

    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    rd_kafka_consumer_close(admin);
    rd_kafka_destroy(admin);
    rd_kafka_destroy(prod);
    nx_gen_destroy(gen);
    for (int p = 0; p < PARTS; p++) {
        free(t_prod[p]);
        free(t_arr[p]);
        free(t_in_app[p]);
        free(t_out_app[p]);
    }
    return 0;
}
