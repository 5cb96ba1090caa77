/*
 * test_txn: exactly-once (kafka.transactional = true) on the real broker.
 *
 * Every case feeds generated events (keyed by user) to one input topic of 4
 * partitions and runs, beside the daemons under test, a reference
 * (refrun.h): one uninterrupted at-least-once `nextactd run` in its own
 * group, into its own output topic, with a prediction for every input
 * offset. The daemons under test share the group "eos", its changelog
 * topic and an output topic; a read_committed consumer of that output
 * (what a downstream system reads) must see EXACTLY one prediction per
 * input offset: none missing, none twice. Their per-user state at the
 * end must equal the reference's, user for user (nx_drun_compare: pending
 * examples apart; compared when the reference saw no late or dropped
 * event). Cases (the CASE argument; each is its own ctest):
 *
 * kill1: 300k events at 8,000/s, and a malformed record after every 1,000 of
 *   them, whose dead letter must be there exactly once too (read_committed,
 *   by its source partition and offset); one daemon, `kill -9` five times,
 *   each once the group's committed offsets pass another seventh of the
 *   input, and restarted at once (the same instance id: its
 *   init_transactions fences and aborts what the killed one left open).
 *   Its last incarnation's store dump is compared.
 * kill3: the same with three daemons in the group (range assignor), the
 *   victims taken in turn; the survivors take the victim's partitions and
 *   restore them from the changelog, the restarted victim rejoins. At the
 *   end all three stop and a fourth daemon with an empty state directory
 *   restores every partition from the changelog alone: its dump is
 *   compared.
 * abort: 100k events, one daemon whose 2nd non-empty transaction carries a
 *   record the broker refuses (NX_DEBUG_TXN_POISON; 2 MB against the
 *   topic's 1 MB limit), a real produce error: the transaction aborts
 *   (logged, nextactd_transactions_aborted_total), the state goes back to
 *   the last commit and the span is processed again. A read_uncommitted
 *   reader sees more predictions than input offsets (the aborted ones are
 *   in the log), the read_committed one exactly one each.
 *
 * fence: 100k events at 20k/s; once daemon a has committed 10k offsets, a
 *   second process a2 starts under the same instance id (a state directory
 *   of its own): its init_transactions fences a, which must stop with exit
 *   status 69 saying so; a2 runs to the end, exactly once.
 *
 * Every wait is bounded; nothing is timed tightly, so a busy 2-core host
 * passes (each case takes 40-90 s there).
 *
 * usage: test_txn NEXTACTD SOURCE_DIR kill1|kill3|abort|fence
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "drun.h"
#include "kafka_fixture.h"
#include "refrun.h"
#include "scrape.h"

#define RUN_MS 300000
#define KILLS  5
/* One malformed record after every BAD_EVERY events of the kill cases. */
#define BAD_EVERY 1000
/* Events/s of the kill cases' input: 300k take 37 s, so every kill comes
 * while input is still arriving (an idle host's daemons would otherwise
 * read it all within the first kills). */
#define KILL_RATE 8000

static nx_drun_t dr;
static char out_topic[128], dlq_topic[128], kafka_eos[256], extra_fmt[512];
static int metrics_port;

/* ---- the daemons under test --------------------------------------------------------- */

/* Daemon `name` of the group "eos": exactly-once, the changelog, instance
 * id = name (or instance); port: its metrics (0: none). */
static int eos_conf_as(const char *name, const char *instance, int port, const char *kafka_more) {
    char extra[600];
    snprintf(extra, sizeof extra, extra_fmt, instance);
    snprintf(kafka_eos, sizeof kafka_eos, "transactional = true; transaction_interval_ms = 100; %s",
             kafka_more ? kafka_more : "");
    return nx_drun_write_conf(&dr, &(nx_drun_conf_t){.name = name,
                                                     .group = "eos",
                                                     .out_topic = out_topic,
                                                     .dlq_topic = dlq_topic[0] ? dlq_topic : NULL,
                                                     .metrics_port = port,
                                                     .kafka = kafka_eos,
                                                     .extra = extra});
}

static long long committed_sum(void) {
    long long c[NX_DRUN_PARTS], sum = 0;
    if (nx_drun_committed(&dr, "eos", c) < 0)
        return 0;
    for (int p = 0; p < NX_DRUN_PARTS; p++)
        sum += c[p] > 0 ? c[p] : 0;
    return sum;
}

static int eos_conf(const char *name, int port, const char *kafka_more) {
    return eos_conf_as(name, name, port, kafka_more);
}

/* The read_committed output: every input offset exactly once. Its end
 * offsets count aborted records and transaction markers too, so it is read
 * until nothing more comes for 5 s (every daemon has stopped: all is
 * committed), then counted. */
static void check_exactly_once(nx_drun_out_t *out, const char *label) {
    int64_t until = nx_drun_mono_ms() + 120000, quiet = nx_drun_mono_ms();
    long long got = out->got;
    while (nx_drun_mono_ms() - quiet < 5000 && nx_drun_mono_ms() < until) {
        nx_drun_out_poll(out, 500);
        if (out->got != got) {
            got = out->got;
            quiet = nx_drun_mono_ms();
        }
    }
    nx_drun_out_drain(out, 0); /* exact missing and bad counts; its end is not ours */
    fprintf(stderr,
            "%s (read_committed): %lld predictions for %lld input events, %lld duplicates, "
            "%lld missing, %lld bad\n",
            label, out->got, dr.n_events, out->dups, out->missing, out->bad);
    CHECK_INT(out->missing, 0);
    CHECK_INT(out->dups, 0);
    CHECK_INT(out->bad, 0);
    CHECK_INT(out->got, dr.n_events);
}

/* The read_committed dead-letter topic: exactly one dead letter per
 * malformed input record (nx-source-partition/-offset headers), none for
 * any other record, read until nothing more comes for 5 s. */
static void check_dead_letters(const char *label) {
    char err[512], group[200];
    snprintf(group, sizeof group, "%s-checker", dlq_topic);
    rd_kafka_t *c = nx_fixture_consumer(
        group, err, sizeof err,
        (const char *[]){"isolation.level", "read_committed", "enable.auto.commit", "false", NULL});
    CHECK(c != NULL);
    if (!c)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NX_DRUN_PARTS);
    for (int p = 0; p < NX_DRUN_PARTS; p++)
        rd_kafka_topic_partition_list_add(l, dlq_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    unsigned char *seen[NX_DRUN_PARTS];
    for (int p = 0; p < NX_DRUN_PARTS; p++)
        seen[p] = calloc((size_t)dr.ends[p] + 1, 1);
    long long got = 0, dups = 0, wrong = 0;
    int64_t until = nx_drun_mono_ms() + 120000, quiet = nx_drun_mono_ms();
    while (nx_drun_mono_ms() - quiet < 5000 && nx_drun_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m)
            continue;
        rd_kafka_headers_t *h = NULL;
        const void *pv = NULL, *ov = NULL;
        size_t pn = 0, on = 0;
        if (!m->err) {
            got++;
            quiet = nx_drun_mono_ms();
            char pbuf[16] = "", obuf[24] = "";
            if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                rd_kafka_header_get_last(h, "nx-source-partition", &pv, &pn) == 0 &&
                rd_kafka_header_get_last(h, "nx-source-offset", &ov, &on) == 0 &&
                pn < sizeof pbuf && on < sizeof obuf) {
                memcpy(pbuf, pv, pn);
                memcpy(obuf, ov, on);
            }
            long part = strtol(pbuf, NULL, 10);
            long long off = strtoll(obuf, NULL, 10);
            if (!pbuf[0] || !obuf[0] || part < 0 || part >= NX_DRUN_PARTS || off < 0 ||
                off >= dr.ends[part] || !dr.bad_at[part] || !dr.bad_at[part][off])
                wrong++;
            else if (seen[part][off]++)
                dups++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    for (int p = 0; p < NX_DRUN_PARTS; p++)
        free(seen[p]);
    fprintf(stderr,
            "%s: %lld dead letters (read_committed) for %lld malformed input records, %lld "
            "duplicates, %lld for other records\n",
            label, got, dr.n_bad, dups, wrong);
    CHECK(dr.n_bad > 0);
    CHECK_INT(got, dr.n_bad);
    CHECK_INT(dups, 0);
    CHECK_INT(wrong, 0);
}

/* Waits (bounded) until the group's commits pass want. */
static long long wait_committed(long long want, int timeout_ms) {
    int64_t until = nx_drun_mono_ms() + timeout_ms;
    long long c;
    while ((c = committed_sum()) < want && nx_drun_mono_ms() < until)
        usleep(100000);
    return c;
}

/* ---- kill1, kill3 ----------------------------------------------------------------------- */

static void case_kill(int n_daemons) {
    static const char *const names[] = {"a", "b", "c"};
    nx_refrun_t ref = {0};
    nx_drun_out_t *out = NULL;
    pid_t pid[3] = {0};
    char dump[300];
    const long long n = 300000;
    snprintf(dump, sizeof dump, "%s/a.dump", dr.dir);
    CHECK_INT(nx_drun_topic("txn-out", out_topic, sizeof out_topic), 0);
    /* malformed records among the input: their dead letters go in the
     * transactions too */
    CHECK_INT(nx_drun_topic("txn-dlq", dlq_topic, sizeof dlq_topic), 0);
    dr.bad_every = BAD_EVERY;
    for (int i = 0; i < n_daemons; i++)
        CHECK_INT(eos_conf(names[i], 0, NULL), 0);
    CHECK_INT(eos_conf("z", 0, NULL), 0);
    CHECK_INT(nx_drun_commit_zero(&dr, "eos"), 0);
    CHECK_INT(nx_drun_produce_start(&dr, n, KILL_RATE), 0);
    CHECK((out = nx_drun_out_new(&dr, out_topic)) != NULL);
    CHECK_INT(nx_refrun_start(&ref, &dr, "txn-ref-out", 0), 0);
    if (nx_check_failures)
        goto out;

    int64_t t0 = nx_drun_mono_ms(), restarted = t0;
    long long restored_before = 0; /* "restored in" lines of a's log before its last start */
    for (int i = 0; i < n_daemons; i++)
        pid[i] = nx_drun_start(&dr, names[i], n_daemons == 1 ? dump : NULL, 0);
    long long at = 0;
    for (int k = 1; k <= KILLS; k++) {
        /* the next seventh, and each incarnation commits some of it */
        long long want = n * k / (KILLS + 2);
        want = want > at + n / 50 ? want : at + n / 50;
        at = wait_committed(want < n ? want : n, 60000);
        int v = (k - 1) % n_daemons;
        nx_drun_out_poll(out, 0);
        CHECK(nx_drun_kill(pid[v]));
        fprintf(stderr, "kill -9 %s at %.1f s: %lld of %lld input offsets committed\n", names[v],
                (double)(nx_drun_mono_ms() - t0) / 1000, at, n);
        restored_before = nx_drun_log_count(&dr, names[v], "restored in");
        pid[v] = nx_drun_start(&dr, names[v], n_daemons == 1 ? dump : NULL, 0);
        restarted = nx_drun_mono_ms();
    }
    CHECK_INT(nx_drun_produce_wait(&dr), 0);
    if (n_daemons == 1) {
        /* The last kill can come after every offset is committed: the
         * last incarnation then has nothing to read, and stopping it
         * before it has restored its partitions would dump a partial
         * store. Wait (bounded) for its restores first. */
        nx_drun_log_wait(&dr, names[0], "restored in", restored_before + NX_DRUN_PARTS, 60000);
        CHECK_INT(nx_drun_finish(out, pid[0], restarted, RUN_MS, "eos"), 0);
        pid[0] = 0;
    } else {
        /* every offset predicted and committed, then the three stop */
        int64_t until = nx_drun_mono_ms() + RUN_MS;
        while ((out->missing > 0 || !nx_drun_committed_at_end(&dr, "eos")) &&
               nx_drun_mono_ms() < until)
            nx_drun_out_poll(out, 500);
        for (int i = 0; i < n_daemons; i++) {
            CHECK_INT(nx_drun_stop(pid[i], 120000), 0);
            pid[i] = 0;
        }
    }
    fprintf(stderr, "exactly-once group done %.1f s after its start\n",
            (double)(nx_drun_mono_ms() - t0) / 1000);
    CHECK(nx_drun_committed_at_end(&dr, "eos"));
    CHECK_INT(nx_refrun_finish(&ref, RUN_MS), 0);
    check_exactly_once(out, n_daemons == 1 ? "one daemon, 5 kills" : "three daemons, 5 kills");
    check_dead_letters(n_daemons == 1 ? "one daemon, 5 kills" : "three daemons, 5 kills");
    if (n_daemons > 1) {
        /* the state, from the changelog alone: a new instance restores
         * every partition */
        snprintf(dump, sizeof dump, "%s/z.dump", dr.dir);
        pid_t z = nx_drun_start(&dr, "z", dump, 0);
        CHECK_INT(nx_drun_log_wait(&dr, "z", "restored in", NX_DRUN_PARTS, 120000), NX_DRUN_PARTS);
        CHECK_INT(nx_drun_stop(z, 120000), 0);
    }
    CHECK_INT(nx_refrun_check_state(&ref, dump, n_daemons == 1 ? "daemon a" : "restored z", 0), 0);
out:
    for (int i = 0; i < n_daemons; i++)
        if (pid[i] > 0)
            nx_drun_kill(pid[i]);
    nx_refrun_kill(&ref);
    nx_drun_out_destroy(out);
}

/* ---- abort ------------------------------------------------------------------------------ */

/* Predictions in topic as a read_uncommitted reader sees them: aborted ones
 * included. */
static long long count_uncommitted(const char *topic) {
    char err[512], group[200];
    snprintf(group, sizeof group, "%s-uncommitted", topic);
    rd_kafka_t *c = nx_fixture_consumer(group, err, sizeof err,
                                        (const char *[]){"isolation.level", "read_uncommitted",
                                                         "enable.partition.eof", "true",
                                                         "enable.auto.commit", "false", NULL});
    if (!c)
        return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NX_DRUN_PARTS);
    for (int p = 0; p < NX_DRUN_PARTS; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    long long got = 0;
    int eof = 0;
    int64_t until = nx_drun_mono_ms() + 60000;
    while (eof < NX_DRUN_PARTS && nx_drun_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eof++;
        else if (!m->err)
            got++;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return eof == NX_DRUN_PARTS ? got : -1;
}

static void case_abort(void) {
    nx_refrun_t ref = {0};
    nx_drun_out_t *out = NULL;
    char dump[300];
    static char text[1 << 20];
    snprintf(dump, sizeof dump, "%s/a.dump", dr.dir);
    CHECK_INT(nx_drun_topic("txn-out", out_topic, sizeof out_topic), 0);
    /* the producer may send the 2 MB poison record; the broker refuses it */
    CHECK_INT(eos_conf("a", metrics_port, "producer = { message_max_bytes = \"3000000\"; };"), 0);
    CHECK_INT(nx_drun_commit_zero(&dr, "eos"), 0);
    CHECK_INT(nx_drun_produce_start(&dr, 100000, 20000), 0);
    CHECK((out = nx_drun_out_new(&dr, out_topic)) != NULL);
    CHECK_INT(nx_refrun_start(&ref, &dr, "txn-ref-out", 0), 0);
    if (nx_check_failures)
        goto out;
    setenv("NX_DEBUG_TXN_POISON", "2", 1);
    int64_t t0 = nx_drun_mono_ms();
    pid_t pid = nx_drun_start(&dr, "a", dump, 0);
    unsetenv("NX_DEBUG_TXN_POISON");
    CHECK_INT(nx_drun_produce_wait(&dr), 0);
    /* processing resumes after the abort: every offset, committed */
    long long aborted = -1, committed = -1;
    int64_t until = nx_drun_mono_ms() + RUN_MS;
    while ((out->missing > 0 || !nx_drun_committed_at_end(&dr, "eos")) && nx_drun_mono_ms() < until)
        nx_drun_out_poll(out, 500);
    if (nx_scrape_get(metrics_port, "/metrics", text, sizeof text) == 200) {
        aborted = nx_scrape_metric(text, "nextactd_transactions_aborted_total");
        committed = nx_scrape_metric(text, "nextactd_transactions_committed_total");
    }
    fprintf(stderr, "done %.1f s after the start; transactions: %lld committed, %lld aborted\n",
            (double)(nx_drun_mono_ms() - t0) / 1000, committed, aborted);
    CHECK(aborted >= 1);
    CHECK(committed >= 2); /* one before the abort, one at least after */
    CHECK(nx_drun_log_count(&dr, "a", "transaction aborted") >= 1);
    CHECK(nx_drun_log_count(&dr, "a", "restored in") >= 2 * NX_DRUN_PARTS);
    CHECK_INT(nx_drun_stop(pid, 120000), 0);
    CHECK_INT(nx_refrun_finish(&ref, RUN_MS), 0);
    check_exactly_once(out, "one daemon, a transaction aborted");
    long long all = count_uncommitted(out_topic);
    fprintf(stderr, "read_uncommitted: %lld predictions (%lld of aborted transactions)\n", all,
            all - dr.n_events);
    CHECK(all > dr.n_events);
    CHECK_INT(nx_refrun_check_state(&ref, dump, "daemon a", 0), 0);
out:
    nx_refrun_kill(&ref);
    nx_drun_out_destroy(out);
}

/* ---- fence ------------------------------------------------------------------------------- */

static void case_fence(void) {
    nx_drun_out_t *out = NULL;
    CHECK_INT(nx_drun_topic("txn-out", out_topic, sizeof out_topic), 0);
    CHECK_INT(eos_conf("a", 0, NULL), 0);
    CHECK_INT(eos_conf_as("a2", "a", 0, NULL), 0);
    CHECK_INT(nx_drun_commit_zero(&dr, "eos"), 0);
    CHECK_INT(nx_drun_produce_start(&dr, 100000, 20000), 0);
    CHECK((out = nx_drun_out_new(&dr, out_topic)) != NULL);
    if (nx_check_failures)
        goto out;
    int64_t t0 = nx_drun_mono_ms();
    pid_t a = nx_drun_start(&dr, "a", NULL, 0);
    long long at = wait_committed(10000, 120000);
    /* a second process under the same instance id: its init_transactions
     * fences the first, whose next transaction call fails for good */
    pid_t a2 = nx_drun_start(&dr, "a2", NULL, 0);
    int64_t started2 = nx_drun_mono_ms();
    int st = 0;
    pid_t got = 0;
    while ((got = waitpid(a, &st, WNOHANG)) == 0 && nx_drun_mono_ms() - started2 < 120000)
        usleep(100000);
    if (got == 0)
        nx_drun_kill(a);
    int status = got == a && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    fprintf(stderr,
            "a (%lld offsets committed when a2 started) exited %d, %.1f s after a2 started\n", at,
            status, (double)(nx_drun_mono_ms() - started2) / 1000);
    CHECK_INT(status, 69);
    CHECK(nx_drun_log_count(&dr, "a", "fenced") >= 1);
    CHECK_INT(nx_drun_produce_wait(&dr), 0);
    CHECK_INT(nx_drun_finish(out, a2, started2, RUN_MS, "eos"), 0);
    fprintf(stderr, "done %.1f s after the start\n", (double)(nx_drun_mono_ms() - t0) / 1000);
    check_exactly_once(out, "a fenced by a2");
out:
    nx_drun_out_destroy(out);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_txn NEXTACTD SOURCE_DIR kill1|kill3|abort|fence\n");
        return 2;
    }
    const char *c = argv[3];
    if (strcmp(c, "kill1") != 0 && strcmp(c, "kill3") != 0 && strcmp(c, "abort") != 0 &&
        strcmp(c, "fence") != 0) {
        fprintf(stderr, "test_txn: unknown case %s\n", c);
        return 2;
    }
    metrics_port = nx_fixture_port(0);
    if (nx_drun_init(&dr, argv[1], argv[2], "test_txn") < 0)
        return 1;
    snprintf(extra_fmt, sizeof extra_fmt,
             "state: { changelog = \"%s-state\"; instance_id = \"%%s\"; };", dr.in_topic);
    if (strcmp(c, "kill1") == 0)
        case_kill(1);
    else if (strcmp(c, "kill3") == 0)
        case_kill(3);
    else if (strcmp(c, "abort") == 0)
        case_abort();
    else
        case_fence();
    nx_drun_produce_wait(&dr);
    nx_drun_cleanup(&dr, nx_check_failures,
                    (const char *[]){"a", "a2", "b", "c", "z", "ref", NULL});
    return nx_check_exit(c);
}
