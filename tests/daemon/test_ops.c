/*
 * test_ops: the operations side of nextactd without a broker.
 *
 * 1. Checkpoint directory (ckptdir.h) against the model checkpoint format:
 *    numbering, pruning to `keep`, background writes reaped, a corrupt
 *    newest file refused with a fallback to the previous one, and a
 *    background writer killed mid-write leaving the old checkpoint loadable
 *    (and its temporary file cleaned up at the next open).
 * 2. Prometheus formatting (http.h) of a known snapshot.
 * 3. `nextactd demo` on librdkafka's mock cluster with a NOTIFY_SOCKET
 *    datagram socket owned by this test, WATCHDOG_USEC/WATCHDOG_PID, the
 *    metrics endpoint on, and NX_DEBUG_HANG_AFTER_MS: READY=1 comes, STATUS=
 *    lines come, WATCHDOG=1 comes at about half the interval while the loop
 *    runs and stops while it hangs; /metrics has the expected names and its
 *    counters move; /healthz answers 200; SIGTERM gives STOPPING=1 and
 *    exit 0.
 *
 * usage: test_ops NEXTACTD SOURCE_DIR
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "kafka_fixture.h"
#include "checkpoint.h"
#include "ckptdir.h"
#include "http.h"
#include "log.h"
#include "scrape.h"

/* ---- 1. checkpoint directory ---------------------------------------------- */

#define SCHEMA 0x5eedULL

typedef struct writer {
    uint64_t value; /* written into the "data" section */
    int slow;       /* sleep between chunks (the kill test) */
} writer_t;

static int write_ckpt(void *opaque, const char *path, char *errstr, size_t errstr_size) {
    writer_t *w = opaque;
    nx_checkpoint_writer_t *cw = nx_checkpoint_begin(path, SCHEMA, errstr, errstr_size);
    if (!cw)
        return -1;
    nx_checkpoint_section_begin(cw, "data");
    uint8_t chunk[4096];
    memset(chunk, 0xab, sizeof chunk);
    nx_checkpoint_write(cw, &w->value, sizeof w->value);
    /* 256 kB, so a killed writer leaves a partial temporary file */
    for (int i = 0; i < 64; i++) {
        nx_checkpoint_write(cw, chunk, sizeof chunk);
        if (w->slow)
            usleep(20000);
    }
    nx_checkpoint_section_end(cw);
    return nx_checkpoint_commit(cw, errstr, errstr_size);
}

static int load_ckpt(void *opaque, const char *path, char *errstr, size_t errstr_size) {
    uint64_t *value = opaque;
    nx_checkpoint_reader_t *r = nx_checkpoint_open(path, SCHEMA, errstr, errstr_size);
    if (!r)
        return -1;
    int rc =
        nx_checkpoint_section_open(r, "data") < 0 || nx_checkpoint_read(r, value, sizeof *value) < 0
            ? -1
            : 0;
    nx_checkpoint_close(r);
    if (rc < 0)
        snprintf(errstr, errstr_size, "no data section");
    return rc;
}

static int count_files(const char *dir, const char *suffix) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '%s$'", dir, suffix);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static void test_ckptdir(void) {
    char dir[] = "/tmp/test_ops_ckpt.XXXXXX", sub[256], err[1024], path[4096];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    nx_ckptdir_t *ck = nx_ckptdir_open(sub, 2, err, sizeof err);
    CHECK(ck != NULL);
    uint64_t got = 99;
    CHECK_INT(nx_ckptdir_load(ck, load_ckpt, &got, err, sizeof err), 0); /* empty */

    /* three synchronous, one background: keep 2 */
    writer_t w = {0, 0};
    for (w.value = 1; w.value <= 3; w.value++)
        CHECK_INT(nx_ckptdir_save(ck, write_ckpt, &w, err, sizeof err), 0);
    w.value = 4;
    CHECK_INT(nx_ckptdir_save_bg(ck, write_ckpt, &w, err, sizeof err), 0);
    CHECK(nx_ckptdir_busy(ck));
    CHECK_INT(nx_ckptdir_save_bg(ck, write_ckpt, &w, err, sizeof err), -1); /* one at a time */
    CHECK_INT(nx_ckptdir_poll(ck, 1), 1);
    CHECK(!nx_ckptdir_busy(ck));
    CHECK_INT(count_files(sub, ".nxc"), 2);
    nx_ckptdir_stats_t st;
    nx_ckptdir_stats(ck, &st);
    CHECK_INT(st.written, 4);
    CHECK_INT(st.last_seq, 4);
    CHECK(st.last_wall_ms > 0);
    CHECK_INT(nx_ckptdir_load(ck, load_ckpt, &got, err, sizeof err), 4);
    CHECK_INT(got, 4);

    /* a background writer killed mid-write: old checkpoint intact */
    w.value = 5;
    w.slow = 1;
    CHECK_INT(nx_ckptdir_save_bg(ck, write_ckpt, &w, err, sizeof err), 0);
    usleep(300000); /* about a quarter of the way: 15 of 64 chunks */
    pid_t child = nx_ckptdir_child(ck);
    CHECK(child > 0);
    kill(child, SIGKILL);
    CHECK_INT(nx_ckptdir_poll(ck, 1), -1);
    nx_ckptdir_stats(ck, &st);
    CHECK_INT(st.failed, 1);
    nx_ckptdir_destroy(ck);
    /* a writer killed by kill -9 of the whole process leaves its .tmp:
     * make one by hand, as the crash would */
    snprintf(path, sizeof path, "%s/ckpt-%012d.nxc.tmp", sub, 6);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("NXCKPT partial", f);
        fclose(f);
    }
    ck = nx_ckptdir_open(sub, 2, err, sizeof err);
    CHECK(ck != NULL);
    CHECK_INT(count_files(sub, ".tmp"), 0);
    got = 0;
    CHECK_INT(nx_ckptdir_load(ck, load_ckpt, &got, err, sizeof err), 4);
    CHECK_INT(got, 4);

    /* corrupt the newest: fall back to the previous one (3) */
    nx_ckptdir_path(ck, 4, path, sizeof path);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    struct stat sb;
    fstat(fd, &sb);
    uint8_t byte;
    CHECK_INT(pread(fd, &byte, 1, sb.st_size / 2), 1);
    byte ^= 0x40;
    CHECK_INT(pwrite(fd, &byte, 1, sb.st_size / 2), 1);
    close(fd);
    got = 0;
    CHECK_INT(nx_ckptdir_load(ck, load_ckpt, &got, err, sizeof err), 3);
    CHECK_INT(got, 3);
    /* every one refused: -1 with the newest's reason */
    nx_ckptdir_path(ck, 3, path, sizeof path);
    CHECK_INT(truncate(path, 100), 0);
    CHECK_INT(nx_ckptdir_load(ck, load_ckpt, &got, err, sizeof err), -1);
    CHECK_STR_HAS(err, "ckpt-000000000004");
    /* the next write numbers after the newest file */
    w.slow = 0;
    w.value = 7;
    CHECK_INT(nx_ckptdir_save(ck, write_ckpt, &w, err, sizeof err), 0);
    nx_ckptdir_stats(ck, &st);
    CHECK_INT(st.last_seq, 5); /* 5 was never written */
    nx_ckptdir_destroy(ck);
    nx_ckptdir_destroy(NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

/* ---- 2. Prometheus text ------------------------------------------------------ */

static void test_format(void) {
    nx_http_metrics_t m;
    memset(&m, 0, sizeof m);
    m.n_topics = 2;
    strcpy(m.topic[0], "clicks");
    strcpy(m.topic[1], "we\"ird");
    m.events_in[0] = 12;
    m.events_in[1] = 3;
    strcpy(m.output_topic, "predictions");
    m.predictions_out = 14;
    strcpy(m.dead_letter_topic, "dead-letters");
    m.dead_letters = 3;
    m.n_buckets = 3;
    m.bucket_le[0] = 0.001;
    m.bucket_le[1] = 0.01;
    m.bucket_le[2] = 1e300;
    m.bucket_count[0] = 2;
    m.bucket_count[1] = 3;
    m.bucket_count[2] = 1;
    m.latency_count = 6;
    m.checkpoint_wall_ms = 1000;
    m.n_lags = 2;
    m.lag[0].topic = 0;
    m.lag[0].partition = 3;
    m.lag[0].lag = 42;
    m.lag[1].topic = 1;
    m.lag[1].partition = 0;
    m.lag[1].lag = 0;
    m.consumer_lag = 42;
    m.model_loss_ratio = NAN;
    char buf[65536];
    /* the guard's loss ratio: absent before its first window, then shown */
    nx_http_format(&m, 3500, buf, sizeof buf);
    CHECK_STR_HAS(buf, "# TYPE nextactd_model_loss_ratio gauge\n");
    CHECK(strstr(buf, "\nnextactd_model_loss_ratio ") == NULL);
    m.model_loss_ratio = 0.875;
    size_t len = nx_http_format(&m, 3500, buf, sizeof buf);
    CHECK_STR_HAS(buf, "\nnextactd_model_loss_ratio 0.875000\n");
    CHECK_INT(len, strlen(buf));
    CHECK_STR_HAS(buf, "nextactd_events_in_total{topic=\"clicks\"} 12\n");
    CHECK_STR_HAS(buf, "nextactd_events_in_total{topic=\"we\\\"ird\"} 3\n");
    CHECK_STR_HAS(buf, "nextactd_events_out_total{topic=\"predictions\"} 14\n");
    /* a dead letter is counted once, in its own counter */
    CHECK(strstr(buf, "nextactd_events_out_total{topic=\"dead-letters\"}") == NULL);
    CHECK_STR_HAS(buf, "nextactd_dead_letters_total 3\n");
    /* buckets are cumulative, the last is +Inf = count */
    CHECK_STR_HAS(buf, "nextactd_latency_seconds_bucket{le=\"0.001\"} 2\n");
    CHECK_STR_HAS(buf, "nextactd_latency_seconds_bucket{le=\"0.01\"} 5\n");
    CHECK_STR_HAS(buf, "nextactd_latency_seconds_bucket{le=\"+Inf\"} 6\n");
    CHECK_STR_HAS(buf, "nextactd_latency_seconds_count 6\n");
    CHECK_STR_HAS(buf, "nextactd_checkpoint_age_seconds 2.500000\n");
    CHECK_STR_HAS(buf, "nextactd_consumer_lag{topic=\"clicks\",partition=\"3\"} 42\n");
    CHECK_STR_HAS(buf, "nextactd_consumer_lag{topic=\"we\\\"ird\",partition=\"0\"} 0\n");
    CHECK_STR_HAS(buf, "nextactd_consumer_lag_records 42\n");
    CHECK_STR_HAS(buf, "# TYPE nextactd_latency_seconds histogram\n");
    /* a short buffer: the length needed, nothing written past it */
    char small[32];
    memset(small, 'x', sizeof small);
    CHECK_INT(nx_http_format(&m, 3500, small, 16), len);
    CHECK_INT(small[15], '\0');
    CHECK_INT(small[16], 'x');
}

/* ---- 3. the daemon under a fake systemd ---------------------------------------- */

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define MAX_MSGS 4096
static struct {
    int64_t at; /* ms since the daemon started */
    char text[256];
} msgs[MAX_MSGS];
static int n_msgs;

static void drain(int sock, int64_t t0) {
    char buf[512];
    ssize_t n;
    while ((n = recv(sock, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0 && n_msgs < MAX_MSGS) {
        buf[n] = '\0';
        msgs[n_msgs].at = mono_ms() - t0;
        snprintf(msgs[n_msgs].text, sizeof msgs[n_msgs].text, "%.255s", buf);
        n_msgs++;
    }
}

static int write_conf(const char *path, const char *src, int port, const char *level, int batch) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return -1;
    fprintf(f,
            "log_level = \"%s\";\n"
            "kafka: { brokers = \"mock\"; input_topics = [\"clicks\"]; output_topic = "
            "\"predictions\"; dead_letter_topic = \"dead-letters\"; poll_batch = %d; "
            "poll_timeout_ms = 50; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "checkpoint: { interval_s = 1; };\n"
            "metrics: { listen = \"127.0.0.1:%d\"; };\n",
            level, batch, src, src, port);
    return fclose(f) == 0 ? 0 : -1;
}

static void test_daemon(const char *nextactd, const char *src) {
    char dir[] = "/tmp/test_ops_sd.XXXXXX", sock_path[300], conf[300], log[300];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(sock_path, sizeof sock_path, "%s/notify", dir);
    snprintf(conf, sizeof conf, "%s/demo.conf", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    int port = nx_fixture_port(0);
    if (write_conf(conf, src, port, "info", 1024) < 0)
        return;

    int sock = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", sock_path);
    CHECK_INT(bind(sock, (struct sockaddr *)&sa, sizeof sa), 0);

    /* watchdog 1 s: pings every 500 ms; the loop hangs 9 s after it
     * starts (the mock group join takes about 4 s) */
    int64_t t0 = mono_ms();
    pid_t pid = fork();
    if (pid == 0) {
        char pidbuf[32];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
        setenv("NOTIFY_SOCKET", sock_path, 1);
        setenv("WATCHDOG_USEC", "1000000", 1);
        setenv("WATCHDOG_PID", pidbuf, 1);
        setenv("NX_DEBUG_HANG_AFTER_MS", "9000", 1);
        if (!freopen(log, "w", stderr))
            _exit(126);
        execl(nextactd, nextactd, "demo", "-c", conf, "--seconds", "60", "--rate", "2000",
              "--users", "2000", (char *)NULL);
        _exit(127);
    }
    char body[65536];
    long long in1 = -1, in2 = -1, out2 = -1, steps2 = -1;
    int healthz = -1, scraped = 0, reloaded = 0;
    int64_t hang_seen = 0;
    while (mono_ms() - t0 < 20000) {
        drain(sock, t0);
        int64_t now = mono_ms() - t0;
        if (!reloaded && now > 6000) {
            /* SIGHUP: the log level applies, poll_batch waits for a
             * restart and is named */
            CHECK_INT(write_conf(conf, src, port, "notice", 512), 0);
            kill(pid, SIGHUP);
            reloaded = 1;
        }
        if (in1 < 0 && now > 7000) {
            /* the datagrams are read between steps: no long sleeps here */
            nx_scrape_get(port, "/metrics", body, sizeof body);
            in1 = nx_scrape_metric(body, "nextactd_events_in_total{topic=\"clicks\"}");
        } else if (!scraped && now > 8000) {
            CHECK_INT(nx_scrape_get(port, "/metrics", body, sizeof body), 200);
            in2 = nx_scrape_metric(body, "nextactd_events_in_total{topic=\"clicks\"}");
            out2 = nx_scrape_metric(body, "nextactd_events_out_total{topic=\"predictions\"}");
            steps2 = nx_scrape_metric(body, "nextactd_training_steps_total");
            healthz = nx_scrape_get(port, "/healthz", body + 60000, 5000);
            scraped = 1;
            /* names README.md lists (Operations) */
            static const char *names[] = {
                "nextactd_events_in_total",
                "nextactd_events_out_total",
                "nextactd_decode_errors_total",
                "nextactd_dead_letters_total",
                "nextactd_consumer_lag",
                "nextactd_latency_seconds_bucket",
                "nextactd_users",
                "nextactd_user_state_bytes",
                "nextactd_training_step_seconds_bucket",
                "nextactd_build_info{version=",
                "process_resident_memory_bytes",
                "nextactd_pending_labels",
                "nextactd_training_steps_total",
                "nextactd_rolling_logloss",
                "nextactd_rolling_auc",
                "nextactd_checkpoint_age_seconds",
                "nextactd_checkpoint_duration_seconds",
            };
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                CHECK_STR_HAS(body, names[i]);
        }
        if (now > 13000) {
            hang_seen = now;
            break;
        }
        usleep(20000);
    }
    drain(sock, t0);
    kill(pid, SIGTERM);
    int status = -1;
    int64_t ts = mono_ms();
    waitpid(pid, &status, 0);
    int64_t stop_ms = mono_ms() - ts;
    drain(sock, t0);
    close(sock);

    CHECK(scraped);
    CHECK(in1 >= 0);
    CHECK(in2 > in1); /* counters move */
    CHECK(out2 > 0);
    CHECK(steps2 > 0);
    CHECK_INT(healthz, 200);
    CHECK(hang_seen > 0);
    CHECK(WIFEXITED(status));
    CHECK_INT(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    fprintf(stderr, "daemon stopped %lld ms after SIGTERM\n", (long long)stop_ms);

    /* READY first of the states, then STATUS and WATCHDOG; the last
     * message is STOPPING */
    int64_t ready_at = -1, last_ping = -1, max_gap = 0, first_ping = -1;
    int statuses = 0, pings = 0, stopping = 0, pings_after_hang = 0;
    for (int i = 0; i < n_msgs; i++) {
        const char *t = msgs[i].text;
        if (strcmp(t, "READY=1") == 0 && ready_at < 0)
            ready_at = msgs[i].at;
        else if (strncmp(t, "STATUS=", 7) == 0)
            statuses++;
        else if (strcmp(t, "STOPPING=1") == 0)
            stopping = i == n_msgs - 1 || stopping;
        else if (strcmp(t, "WATCHDOG=1") == 0) {
            pings++;
            if (first_ping < 0)
                first_ping = msgs[i].at;
            /* the loop starts after READY; it hangs 6 s later */
            if (ready_at >= 0 && msgs[i].at > ready_at + 9000 + 700)
                pings_after_hang++;
            else if (last_ping >= 0 && msgs[i].at - last_ping > max_gap) {
                max_gap = msgs[i].at - last_ping;
                fprintf(stderr, "watchdog gap %lld ms at %lld ms\n", (long long)max_gap,
                        (long long)msgs[i].at);
            }
            last_ping = msgs[i].at;
        }
    }
    fprintf(stderr,
            "notify: %d messages, READY at %lld ms, %d STATUS, %d WATCHDOG (max gap %lld ms "
            "before the hang), %d after it\n",
            n_msgs, (long long)ready_at, statuses, pings, (long long)max_gap, pings_after_hang);
    CHECK(ready_at >= 0);
    CHECK(first_ping >= ready_at);
    CHECK(statuses >= 2);
    CHECK(pings >= 12);    /* 500 ms apart over 9 s of loop */
    CHECK(max_gap < 1000); /* never a whole interval without a ping */
    CHECK(max_gap >= 450); /* not every iteration: half the interval */
    CHECK_INT(pings_after_hang, 0);
    CHECK(stopping);
    /* what the reload said */
    static char text[1 << 20];
    FILE *lf = fopen(log, "r");
    size_t tl = lf ? fread(text, 1, sizeof text - 1, lf) : 0;
    if (lf)
        fclose(lf);
    text[tl] = '\0';
    CHECK_STR_HAS(text, "reload: log_level = notice applied");
    CHECK_STR_HAS(text, "reload: not applied until restart: poll_batch = 512;");
    /* info lines stop after the reload to notice: the status line is info */
    const char *after = strstr(text, "reload: log_level = notice applied");
    CHECK(after && !strstr(after, "ev/s  events"));
    if (nx_check_failures) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -30 %s >&2", log);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot show %s\n", log);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_ops NEXTACTD SOURCE_DIR\n");
        return 2;
    }
    nx_log_set_level(NX_LOG_WARNING);
    test_ckptdir();
    test_format();
    test_daemon(argv[1], argv[2]);
    return nx_check_exit("test_ops");
}
