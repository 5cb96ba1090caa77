/*
 * test_ops_ready: /readyz follows the broker. `nextactd run` against a
 * librdkafka mock cluster that this test owns (one broker on 127.0.0.1):
 * - /readyz answers 200 "ready" once the daemon owns its partitions;
 * - with the broker down (the mock refuses connections), /readyz answers
 *   503 "not ready: no broker reachable" within a few statistics intervals,
 *   while /healthz (liveness: the loop turns) stays 200;
 * - with the broker back, /readyz answers 200 again;
 * - SIGTERM stops the daemon with status 0.
 * Every wait is bounded (60 s each, far above the 5 s statistics interval
 * and librdkafka's reconnect backoff, for a busy machine).
 *
 * usage: test_ops_ready NEXTACTD SOURCE_DIR
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "kafka_fixture.h"
#include "scrape.h"

#define WAIT_MS 60000

static char dir[] = "/tmp/test_ops_ready.XXXXXX";

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *body(const char *resp) {
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* Polls /readyz every 200 ms until it answers status with a body that
 * starts with text, for at most WAIT_MS. Milliseconds it took, or -1; *last
 * is the last answer seen. */
static int64_t wait_ready(int port, int status, const char *text, char *last, size_t size) {
    int64_t t0 = mono_ms();
    while (mono_ms() - t0 < WAIT_MS) {
        int code = nx_scrape_get(port, "/readyz", last, size);
        if (code == status && strncmp(body(last), text, strlen(text)) == 0)
            return mono_ms() - t0;
        usleep(200000);
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_ops_ready NEXTACTD SOURCE_DIR\n");
        return 2;
    }
    const char *nextactd = argv[1], *src = argv[2];
    char why[512];
    if (!mkdtemp(dir))
        return 2;

    /* the cluster: a handle that only hosts it, one broker, the topics */
    rd_kafka_conf_t *mconf = rd_kafka_conf_new();
    rd_kafka_conf_set(mconf, "log_level", "0", why, sizeof why);
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, why, sizeof why);
    rd_kafka_mock_cluster_t *mock = mrk ? rd_kafka_mock_cluster_new(mrk, 1) : NULL;
    CHECK(mock != NULL);
    if (!mock)
        return nx_check_exit("test_ops_ready");
    CHECK_INT(rd_kafka_mock_topic_create(mock, "in", 2, 1), 0);
    CHECK_INT(rd_kafka_mock_topic_create(mock, "out", 2, 1), 0);

    char conf[300], log[300], state[300];
    snprintf(conf, sizeof conf, "%s/ready.conf", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    CHECK_INT(mkdir(state, 0700), 0);
    int port = nx_fixture_port(0);
    FILE *f = fopen(conf, "w");
    if (!f)
        return 2;
    fprintf(f,
            "state_dir = \"%s\";\n"
            "kafka: { brokers = \"%s\"; input_topics = [\"in\"]; output_topic = \"out\";\n"
            "  dead_letter_topic = \"\"; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "metrics: { listen = \"127.0.0.1:%d\"; };\n",
            state, rd_kafka_mock_cluster_bootstraps(mock), src, src, port);
    fclose(f);

    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr))
            _exit(126);
        execl(nextactd, nextactd, "run", "-c", conf, (char *)NULL);
        _exit(127);
    }
    static char resp[8192];
    int64_t t_ready = wait_ready(port, 200, "ready", resp, sizeof resp);
    printf("ready after %.1f s\n", (double)t_ready / 1000);
    CHECK(t_ready >= 0);

    rd_kafka_mock_broker_set_down(mock, 1);
    int64_t t_down = wait_ready(port, 503, "not ready: no broker reachable", resp, sizeof resp);
    printf("broker down: not ready after %.1f s (last answer: %.80s)\n", (double)t_down / 1000,
           body(resp));
    CHECK(t_down >= 0);
    CHECK_INT(nx_scrape_get(port, "/healthz", resp, sizeof resp), 200);

    rd_kafka_mock_broker_set_up(mock, 1);
    int64_t t_up = wait_ready(port, 200, "ready", resp, sizeof resp);
    printf("broker up: ready after %.1f s\n", (double)t_up / 1000);
    CHECK(t_up >= 0);

    kill(pid, SIGTERM);
    int status = -1, reaped = 0;
    for (int64_t t0 = mono_ms(); !reaped && mono_ms() - t0 < WAIT_MS;)
        if (!(reaped = waitpid(pid, &status, WNOHANG) == pid))
            usleep(100000);
    if (!reaped) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECK(reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (nx_check_failures) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -30 '%s' >&2", log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    }
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mrk);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return nx_check_exit("test_ops_ready");
}
