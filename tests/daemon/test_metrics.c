/*
 * test_metrics: /metrics of a running daemon passes `promtool check metrics`
 * (the Prometheus project's own linter: names, units, counter suffixes, HELP
 * and TYPE lines, histogram layout), right after start and once it has
 * trained and checkpointed; no sample is a -1 or NaN placeholder; the build
 * and process metrics are there, the training-step histogram counts the
 * training steps, the latency stage histograms (fetch, queued, decode,
 * predict, ack, and broker timestamp to produce()) count the predictions,
 * a fresh daemon's model state is warming, then serving once its model
 * beats the prior (the ratio of their log losses is shown), and a
 * prediction is counted once (the dead-letter topic has no
 * nextactd_events_out_total sample of its own). Then the same with
 * exactly-once (kafka.transactional, state.changelog): the transaction
 * metrics pass promtool too, the duration histogram counts the committed
 * transactions and the latency histogram, taken at the commit, counts.
 *
 * `nextactd demo` on librdkafka's mock cluster: no broker needed (unit).
 * promtool comes with Debian's prometheus package (scripts/setup).
 *
 * usage: test_metrics NEXTACTD SOURCE_DIR
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "kafka_fixture.h"
#include "scrape.h"

static char dir[] = "/tmp/test_metrics.XXXXXX";

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The body of a scrape into buf; 0 unless the answer was 200. */
static int scrape(int port, char *buf, size_t size) {
    if (nx_scrape_get(port, "/metrics", buf, size) != 200)
        return 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (!body)
        return 0;
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return 1;
}

/* promtool check metrics on text: its exit status; what it said in out. */
static int promtool(const char *text, const char *name, char *out, size_t size) {
    char path[300], cmd[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Every sample line: no placeholder value. */
static void check_values(const char *text) {
    char line[512];
    for (const char *p = text; *p;) {
        size_t l = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(l < sizeof line - 1 ? l : sizeof line - 1), p);
        p += l + (p[l] ? 1 : 0);
        if (!line[0] || line[0] == '#')
            continue;
        const char *v = strrchr(line, ' ');
        CHECK(v != NULL);
        if (!v)
            continue;
        v++;
        int bad = strcmp(v, "-1") == 0 || strncmp(v, "-1.0", 4) == 0 || strcasecmp(v, "NaN") == 0;
        CHECK(!bad);
        if (bad)
            fprintf(stderr, "  placeholder sample: %s\n", line);
    }
}

static void check_text(const char *text, const char *name) {
    char out[8192];
    int rc = promtool(text, name, out, sizeof out);
    CHECK_INT(rc, 0);
    CHECK_INT(strlen(out), 0); /* promtool prints nothing when it finds nothing */
    if (rc != 0 || out[0])
        fprintf(stderr, "promtool check metrics on %s:\n%s\n", name, out);
    check_values(text);
}

/* `nextactd demo -c conf` until a scrape of port satisfies done (bounded,
 * 40 s), then SIGTERM: that scrape into text, 1 if it came; *status: the
 * exit status (-1 if it did not exit). */
static int demo_until(const char *nextactd, const char *conf, const char *log, int port,
                      int (*done)(const char *), char *text, size_t size, int *status) {
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr))
            _exit(126);
        execl(nextactd, nextactd, "demo", "-c", conf, "--seconds", "60", "--rate", "2000",
              "--users", "500", (char *)NULL);
        _exit(127);
    }
    int got = 0;
    int64_t t0 = mono_ms();
    while (mono_ms() - t0 < 40000 && !got) {
        usleep(100000);
        got = scrape(port, text, size) && done(text);
    }
    kill(pid, SIGTERM);
    int st = -1;
    waitpid(pid, &st, 0);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return got;
}

static int txn_done(const char *text) {
    return nx_scrape_metric(text, "nextactd_transactions_committed_total") > 2 &&
           nx_scrape_metric(text, "nextactd_latency_seconds_count") > 0;
}

/* Exactly-once on the mock cluster: its metrics. */
static void test_transactional(const char *nextactd, const char *src, int port) {
    char conf[300], log[300];
    static char text[65536];
    snprintf(conf, sizeof conf, "%s/txn.conf", dir);
    snprintf(log, sizeof log, "%s/txn.log", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return;
    fprintf(f,
            "kafka: { brokers = \"mock\"; input_topics = [\"clicks\"]; output_topic = "
            "\"predictions\"; dead_letter_topic = \"dead-letters\"; poll_timeout_ms = 50;\n"
            "  transactional = true; };\n"
            "state: { changelog = \"state\"; instance_id = \"metrics\"; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "checkpoint: { interval_s = 0; };\n"
            "metrics: { listen = \"127.0.0.1:%d\"; };\n",
            src, src, port);
    fclose(f);
    int status;
    int got = demo_until(nextactd, conf, log, port, txn_done, text, sizeof text, &status);
    CHECK_INT(status, 0);
    CHECK(got);
    if (!got)
        return;
    check_text(text, "txn.prom");
    long long committed = nx_scrape_metric(text, "nextactd_transactions_committed_total");
    CHECK_INT(nx_scrape_metric(text, "nextactd_transaction_duration_seconds_count"), committed);
    CHECK_INT(nx_scrape_metric(text, "nextactd_transactions_aborted_total"), 0);
    CHECK_STR_HAS(text, "\nnextactd_transaction_commit_seconds_total ");
    CHECK_STR_HAS(text, "# HELP nextactd_latency_seconds Input record (broker timestamp) to the "
                        "commit of its prediction's transaction.");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_metrics NEXTACTD SOURCE_DIR\n");
        return 2;
    }
    const char *nextactd = argv[1], *src = argv[2];
    if (system("promtool --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_metrics: promtool is missing: run scripts/setup (it installs "
                        "Debian's prometheus package, which has promtool)\n");
        return 1;
    }
    if (!mkdtemp(dir))
        return 2;
    char conf[300], log[300];
    snprintf(conf, sizeof conf, "%s/demo.conf", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    int port = nx_fixture_port(0);
    FILE *f = fopen(conf, "w");
    if (!f)
        return 2;
    fprintf(f,
            "kafka: { brokers = \"mock\"; input_topics = [\"clicks\"]; output_topic = "
            "\"predictions\"; dead_letter_topic = \"dead-letters\"; poll_timeout_ms = 50; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "checkpoint: { interval_s = 1; };\n"
            "metrics: { listen = \"127.0.0.1:%d\"; };\n",
            src, src, port);
    fclose(f);

    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr))
            _exit(126);
        execl(nextactd, nextactd, "demo", "-c", conf, "--seconds", "60", "--rate", "2000",
              "--users", "500", (char *)NULL);
        _exit(127);
    }
    static char early[65536], late[65536];
    int got_early = 0, got_late = 0;
    int64_t t0 = mono_ms();
    while (mono_ms() - t0 < 40000 && !got_late) {
        usleep(100000);
        if (!got_early) {
            got_early = scrape(port, early, sizeof early);
            continue;
        }
        if (scrape(port, late, sizeof late) &&
            nx_scrape_metric(late, "nextactd_training_steps_total") > 0 &&
            strstr(late, "\nnextactd_checkpoint_age_seconds ") &&
            strstr(late, "\nnextactd_rolling_logloss ") &&
            strstr(late, "\nnextactd_model_loss_ratio ") &&
            nx_scrape_metric(late, "nextactd_model_state{state=\"serving\"}") == 1)
            got_late = 1;
    }
    kill(pid, SIGTERM);
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(got_early);
    CHECK(got_late);

    if (got_early) {
        check_text(early, "early.prom");
        /* a fresh daemon serves the prior until its model beats it */
        if (nx_scrape_metric(early, "nextactd_training_steps_total") == 0)
            CHECK_INT(nx_scrape_metric(early, "nextactd_model_state{state=\"warming\"}"), 1);
    }
    if (got_late) {
        check_text(late, "late.prom");
        CHECK_STR_HAS(late, "nextactd_build_info{version=\"");
        static const char *process[] = {
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        };
        for (size_t i = 0; i < sizeof process / sizeof process[0]; i++)
            CHECK_STR_HAS(late, process[i]);
        CHECK(nx_scrape_metric(late, "process_open_fds") > 3);
        /* training steps are timed */
        long long timed = nx_scrape_metric(late, "nextactd_training_step_seconds_count");
        long long inf =
            nx_scrape_metric(late, "nextactd_training_step_seconds_bucket{le=\"+Inf\"}");
        CHECK(timed > 0 && inf == timed);
        /* the latency stages: each one counts, its +Inf bucket is its
         * count, and every acknowledged prediction was handed over first */
        static const char *stages[] = {"fetch", "queued", "decode", "predict", "ack"};
        long long handed = nx_scrape_metric(late, "nextactd_produce_latency_seconds_count");
        CHECK(handed > 0);
        CHECK_INT(nx_scrape_metric(late, "nextactd_produce_latency_seconds_bucket{le=\"+Inf\"}"),
                  handed);
        for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
            char name[128];
            snprintf(name, sizeof name, "nextactd_stage_seconds_count{stage=\"%s\"}", stages[i]);
            long long count = nx_scrape_metric(late, name);
            CHECK(count > 0);
            snprintf(name, sizeof name, "nextactd_stage_seconds_bucket{stage=\"%s\",le=\"+Inf\"}",
                     stages[i]);
            CHECK_INT(nx_scrape_metric(late, name), count);
            if (strcmp(stages[i], "predict") == 0)
                CHECK_INT(count, handed);
            if (strcmp(stages[i], "ack") == 0)
                CHECK(count <= handed);
        }
        CHECK(nx_scrape_metric(late, "nextactd_training_examples_shed_total") >= 0);
        /* the guard's window ratio, once a window has ended: a loss ratio */
        const char *ratio = strstr(late, "\nnextactd_model_loss_ratio ");
        double r = ratio ? strtod(ratio + strlen("\nnextactd_model_loss_ratio "), NULL) : -1;
        CHECK(r > 0 && r < 10);
        /* predictions once, dead letters once */
        CHECK(nx_scrape_metric(late, "nextactd_events_out_total{topic=\"predictions\"}") > 0);
        CHECK(strstr(late, "nextactd_events_out_total{topic=\"dead-letters\"}") == NULL);
        CHECK(nx_scrape_metric(late, "nextactd_dead_letters_total") == 0);
    }
    test_transactional(nextactd, src, port);
    if (nx_check_failures) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -20 '%s' >&2", log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return nx_check_exit("test_metrics");
}
