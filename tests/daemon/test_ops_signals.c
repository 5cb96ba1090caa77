/*
 * test_ops_signals: start then SIGTERM, many times, on the real broker.
 *
 * One shared input topic (4 partitions) gets a steady stream of generated
 * events from a producer thread for the whole test (load). Each cycle starts
 * a daemon, waits a random 0-1.5 s, then sends SIGTERM either to that new
 * daemon (caught in start-up or its first group join) or to the previous
 * one, which is then in the rebalance the newcomer's join caused. Every
 * daemon must exit 0 within its stop timeout (STOP_LIMIT_MS); none may
 * abort. The daemons run librdkafka's default eager assignors ("range,
 * roundrobin"), which is what this test keeps honest (librdkafka 2.0.2 can
 * abort a cooperative-sticky consumer closed before its first assignment).
 * Checkpoints are on (every second), so SIGTERM also lands during
 * background checkpoint writes.
 *
 * usage: test_ops_signals NEXTACTD SOURCE_DIR [CYCLES]
 * Prints the cycles, exits and stop times (max, mean) measured.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "gen.h"
#include "kafka_fixture.h"

#define PARTS 4
/* A daemon must be gone this long after SIGTERM: kafka.flush_timeout_ms
 * (set to 5 s below) + a final checkpoint + leaving the group, with room. */
#define STOP_LIMIT_MS 20000
/* Events per second from the load thread: enough that every daemon has
 * batches in hand when SIGTERM comes, little enough for 2 shared cores. */
#define LOAD_RATE 3000
/* Time for exec and the dynamic loader to reach main() on a loaded 2-core
 * machine. */
#define START_MS 100

static char topic[128], out_topic[128], group[160];
static atomic_int load_stop;
static atomic_llong load_sent;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *load_thread(void *arg) {
    (void)arg;
    char err[512];
    rd_kafka_t *p = nx_fixture_producer(err, sizeof err, (const char *[]){"linger.ms", "20", NULL});
    if (!p)
        return NULL;
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = 5000;
    gp.seed = 11;
    gp.start_ms = (int64_t)(time(NULL) - 400 * 86400) * 1000;
    char gerr[256];
    nx_gen_t *gen = nx_gen_new(&gp, gerr, sizeof gerr);
    uint8_t buf[2048];
    int64_t t0 = mono_ms();
    while (gen && !atomic_load(&load_stop)) {
        long long due = (mono_ms() - t0) * LOAD_RATE / 1000;
        while (atomic_load(&load_sent) < due) {
            nx_gen_event_t ge;
            nx_gen_next(gen, &ge);
            int64_t len = nx_gen_encode_event(&ge, -1, buf, sizeof buf);
            if (len > 0 &&
                rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)),
                                  RD_KAFKA_V_VALUE(buf, (size_t)len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) != 0)
                break;
            atomic_fetch_add(&load_sent, 1);
        }
        rd_kafka_poll(p, 10);
    }
    rd_kafka_flush(p, 10000);
    nx_gen_destroy(gen);
    rd_kafka_destroy(p);
    return NULL;
}

typedef struct daemon {
    pid_t pid;
    int64_t started; /* mono ms */
    int slot;
} daemon_t;

static int n_stopped, n_ok;
static int64_t max_stop, sum_stop;
static char dir[] = "/tmp/test_ops_signals.XXXXXX";

/* SIGTERM, then wait up to STOP_LIMIT_MS (then SIGKILL, counted as a
 * failure). */
static void stop_daemon(daemon_t *d, int cycle, const char *when) {
    int64_t t0 = mono_ms();
    kill(d->pid, SIGTERM);
    int status = 0;
    pid_t got = 0;
    while ((got = waitpid(d->pid, &status, WNOHANG)) == 0 && mono_ms() - t0 < STOP_LIMIT_MS)
        usleep(5000);
    int64_t took = mono_ms() - t0;
    if (got == 0) {
        /* where it hangs: every thread's stack, when gdb is at hand */
        if (access("/usr/bin/gdb", X_OK) == 0) {
            char cmd[200];
            snprintf(cmd, sizeof cmd, "gdb -p %d -batch -ex 'thread apply all bt' 2>/dev/null 1>&2",
                     (int)d->pid);
            if (system(cmd) != 0)
                fprintf(stderr, "(gdb could not attach)\n");
        }
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &status, 0);
        fprintf(stderr, "cycle %d: daemon %d (%s) still running %d ms after SIGTERM\n", cycle,
                (int)d->pid, when, STOP_LIMIT_MS);
    }
    n_stopped++;
    int ok = got > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "cycle %d: daemon %d (%s, up %lld ms) ended with status 0x%x%s\n", cycle,
                (int)d->pid, when, (long long)(t0 - d->started), status,
                WIFSIGNALED(status) ? " (signal)" : "");
        char cmd[512];
        snprintf(cmd, sizeof cmd, "tail -n 30 %s/log%d 1>&2", dir, d->slot);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    } else {
        n_ok++;
    }
    if (took > max_stop)
        max_stop = took;
    sum_stop += took;
    d->pid = 0;
}

/* Lines of a log that contain `what`. */
static int count_lines_with(const char *path, const char *what) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_ops_signals NEXTACTD SOURCE_DIR [CYCLES]\n");
        return 2;
    }
    int cycles = argc > 3 ? atoi(argv[3]) : 100;
    char err[512];
    nx_fixture_topic_name(topic, sizeof topic, "sig-in");
    nx_fixture_topic_name(out_topic, sizeof out_topic, "sig-out");
    snprintf(group, sizeof group, "%s-group", topic);
    if (nx_fixture_create_topic(topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(out_topic, PARTS, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_fixture_print_log();
        return 1;
    }
    if (!mkdtemp(dir))
        return 1;
    /* two configurations (state directories): a daemon and the previous
     * one overlap, and each needs its own checkpoints */
    char conf[2][300], log[2][300];
    for (int s = 0; s < 2; s++) {
        snprintf(conf[s], sizeof conf[s], "%s/nextactd%d.conf", dir, s);
        snprintf(log[s], sizeof log[s], "%s/log%d", dir, s);
        FILE *f = fopen(conf[s], "w");
        if (!f)
            return 1;
        fprintf(f,
                "state_dir = \"%s/state%d\";\nlog_level = \"%s\";\n"
                "kafka: { brokers = \"%s\"; group_id = \"%s\"; input_topics = [\"%s\"];\n"
                "  output_topic = \"%s\"; dead_letter_topic = \"\"; commit_interval_ms = 500;\n"
                "  flush_timeout_ms = 5000;\n"
                "  consumer = { session_timeout_ms = \"6000\"; heartbeat_interval_ms = \"500\";%s "
                "}; };\n"
                "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
                "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
                "checkpoint: { interval_s = 1; };\nmetrics: { listen = \"\"; };\n",
                dir, s, getenv("NX_TEST_RDKAFKA_DEBUG") ? "debug" : "notice", nx_fixture_brokers(),
                group, topic, out_topic,
                getenv("NX_TEST_RDKAFKA_DEBUG") ? " debug = \"cgrp,consumer\";" : "", argv[2],
                argv[2]);
        fclose(f);
    }
    pthread_t th;
    pthread_create(&th, NULL, load_thread, NULL);

    /* the test's own generator of random moments: a fixed seed, so a
     * failure can be rerun with the same schedule */
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    daemon_t d[2] = {{0}, {0}};
    int64_t t_start = mono_ms();
    int kills_new = 0, kills_prev = 0;
    for (int i = 0; n_stopped < cycles; i++) {
        int s = i % 2;
        if (d[s].pid) /* the slot's daemon from two cycles ago */
            stop_daemon(&d[s], i, "old");
        d[s].pid = nx_fixture_start_daemon(argv[1], conf[s], log[s], NULL);
        d[s].started = mono_ms();
        d[s].slot = s;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        /* a third of the cycles stop the newcomer; the others the
         * previous daemon if there is one (else both keep running) */
        int kill_new = (rng >> 32) % 3 == 0;
        useconds_t delay_ms = (useconds_t)(rng % 1500); /* 0-1.5 s */
        /* a signal that lands before main() installed its handlers kills
         * any program (systemd counts that SIGTERM as a clean stop); the
         * newcomer gets at least START_MS to reach main */
        if (kill_new && delay_ms < START_MS)
            delay_ms = START_MS;
        usleep(delay_ms * 1000);
        daemon_t *prev = &d[1 - s];
        if (kill_new) {
            stop_daemon(&d[s], i, "new, in start-up");
            kills_new++;
        } else if (prev->pid) {
            stop_daemon(prev, i, "previous, in the newcomer's rebalance");
            kills_prev++;
        }
    }
    for (int s = 0; s < 2; s++)
        if (d[s].pid)
            stop_daemon(&d[s], cycles, "last");
    atomic_store(&load_stop, 1);
    pthread_join(th, NULL);
    fprintf(stderr,
            "%d cycles in %.1f s: %d daemons stopped (%d new in start-up, %d in a rebalance), "
            "%d exited 0; stop time max %lld ms, mean %lld ms; %lld events of load\n",
            cycles, (double)(mono_ms() - t_start) / 1000, n_stopped, kills_new, kills_prev, n_ok,
            (long long)max_stop, (long long)(n_stopped ? sum_stop / n_stopped : 0),
            (long long)atomic_load(&load_sent));
    /* leaving the group is bounded: a daemon whose close waited on a join
     * under way exits without it (the broker then moves its partitions
     * after session.timeout.ms); say how often that happened */
    int unfinished = 0;
    for (int s = 0; s < 2; s++)
        unfinished += count_lines_with(log[s], "leaving the consumer group did not finish");
    fprintf(stderr, "%d daemon(s) stopped without finishing their group leave\n", unfinished);
    CHECK_INT(n_ok, n_stopped);
    CHECK(n_stopped >= cycles);
    CHECK(atomic_load(&load_sent) > 0);
    if (!nx_check_failures) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    } else {
        nx_fixture_print_log();
    }
    return nx_check_exit("test_ops_signals");
}
