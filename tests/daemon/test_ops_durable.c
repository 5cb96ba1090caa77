/*
 * test_ops_durable: an input offset is committed only once the state it
 * changed is durable, on the real broker.
 *
 * Every case feeds generated events (keyed by user) to one input topic of
 * 4 partitions and runs, beside the daemon(s) under test, a reference
 * (refrun.h): one uninterrupted `nextactd run` in its own group, into its
 * own output topic, with no periodic checkpoint. Runs end with SIGTERM
 * once every input offset has a prediction in their output; their
 * committed offsets must then be the input's end offsets. At the end each
 * case compares the tested daemon's store dump (NX_DEBUG_DUMP_STORE; one
 * user-id hash key for all runs, so dumps line up user for user) with the
 * reference's: the same users, and the same feature state
 * (nx_drun_compare). Cases (the CASE argument; each is its own ctest):
 *
 * durable_kill: 200k events at 20k/s; checkpoint.interval_s = 3600, so no
 *   periodic checkpoint is written before a `kill -9` 3.5 s after the
 *   first predictions appear (mid-stream); then a restart and a run to the
 *   end. Offsets no checkpoint covers must not have been committed: the
 *   restart reads them again and no user's early events are lost.
 * durable_kill_busy: the same beside three CPU-bound processes (for as long
 *   as the case runs), as on a busy host.
 * full_disk: 50k events; the state directory on a 16 KB tmpfs (or, when
 *   this test may not mount one, the daemon under RLIMIT_FSIZE of 16 KB:
 *   said in the output; NX_TEST_FULL_DISK_RLIMIT=1 chooses it), checkpoints
 *   every second, so none can be written. Within 60 s: the log names the
 *   errno ("No space left on device", or "File too large"), /metrics
 *   counts failed checkpoints and sets nextactd_checkpoint_failing, /readyz
 *   answers 503 "not ready: ..." (/healthz stays 200), and no offset is
 *   committed (the group's stay at the 0 the test committed). SIGTERM: the
 *   final checkpoint fails too, exit status 74 (EX_IOERR), still no
 *   commit. Then the same group restarts on a plain directory with the
 *   same key and runs to the end: its state equals the reference's
 *   (nothing read before was taken as done).
 * handover: 300k events at 20k/s, checkpoints every second; daemon A
 *   starts alone; once a third of the events have A's prediction and the
 *   group has offsets committed on every partition, daemon B (own state
 *   directory, own output topic) joins the group and takes 2 partitions
 *   (range assignor); 5 s after B has them, B gets SIGTERM and A takes
 *   them back from its hand-over files, reading again from where that
 *   state ends. A's output must then hold a prediction for every input
 *   offset; A's dump: no event dropped as too old, and its state equals
 *   the reference's. B, which starts from committed offsets with no state
 *   of its own, says so ("no state covers it").
 *
 * Figures printed: predictions, duplicates and missing offsets per run,
 * committed offsets at the kill and at B's join, times to the full-disk
 * signs, dump counters. Every wait is bounded; nothing is timed tightly,
 * so a busy 2-core host passes.
 *
 * usage: test_ops_durable NEXTACTD SOURCE_DIR CASE
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "kafka_fixture.h"
#include "drun.h"
#include "refrun.h"
#include "scrape.h"

/* Bounds of a run to the end: a daemon reads these inputs in well under a
 * minute on an idle host. */
#define RUN_MS  300000
#define STOP_MS 120000
/* Events/s of a paced input: a daemon reads 50-100k/s on an idle host, so
 * the kill and the rebalance come while input is still arriving, as in
 * production, not after the daemon has read it all. */
#define RATE 20000
/* The reference (refrun.h) is not interrupted either: exactly one
 * prediction per input offset, its offsets committed to the end, and the
 * late and dropped counters in every dump. */
#define REF_CHECKS (NX_REFRUN_ONCE | NX_REFRUN_COMMITTED | NX_REFRUN_COUNTERS)

static nx_drun_t dr;

/* ---- checks shared by the cases --------------------------------------------------- */

/* A tested run's output after it ended: a prediction for every input
 * offset (duplicates allowed: records read again after a restart). */
static void check_outputs(nx_drun_out_t *out, const char *label) {
    CHECK_INT(nx_drun_out_drain(out, 120000), 0);
    fprintf(stderr,
            "%s: %lld predictions for %lld input events, %lld duplicates (%.2f%%), %lld "
            "missing\n",
            label, out->got, dr.n_events, out->dups,
            100.0 * (double)out->dups / (double)dr.n_events, out->missing);
    CHECK_INT(out->missing, 0);
    CHECK_INT(out->bad, 0);
    CHECK_INT(out->got, dr.n_events + out->dups);
}

/* The group's committed offsets into c, printed; 0 or -1. */
static int print_committed(const char *what, const char *group, long long c[NX_DRUN_PARTS]) {
    if (nx_drun_committed(&dr, group, c) < 0)
        return -1;
    fprintf(stderr, "%s: committed offsets", what);
    for (int p = 0; p < NX_DRUN_PARTS; p++)
        fprintf(stderr, " %lld", c[p]);
    fprintf(stderr, " (-1: none)\n");
    return 0;
}

/* ---- durable_kill, durable_kill_busy -------------------------------------------- */

#define SPINNERS 3

/* CPU-bound children, as on a busy host: each stops by itself after
 * limit_s, and with this test (PR_SET_PDEATHSIG). */
static void spin_start(pid_t pids[SPINNERS], int limit_s) {
    for (int i = 0; i < SPINNERS; i++) {
        pids[i] = fork();
        if (pids[i] != 0)
            continue;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int64_t until = nx_drun_mono_ms() + (int64_t)limit_s * 1000;
        volatile uint64_t x = 0;
        while (nx_drun_mono_ms() < until)
            for (int k = 0; k < 1000000; k++)
                x += (uint64_t)k * 2654435761u;
        _exit(0);
    }
}

static void case_durable_kill(int busy) {
    nx_refrun_t ref = {0};
    pid_t spin[SPINNERS] = {0};
    char out_topic[128], dump[300];
    nx_drun_out_t *out = NULL;
    snprintf(dump, sizeof dump, "%s/crash.dump", dr.dir);
    CHECK_INT(nx_drun_produce_start(&dr, 200000, RATE), 0);
    CHECK_INT(nx_drun_topic("durable-out", out_topic, sizeof out_topic), 0);
    CHECK_INT(
        nx_drun_write_conf(
            &dr, &(nx_drun_conf_t){.name = "crash", .out_topic = out_topic, .interval_s = 3600}),
        0);
    CHECK_INT(nx_drun_commit_zero(&dr, "crash"), 0);
    CHECK((out = nx_drun_out_new(&dr, out_topic)) != NULL);
    if (busy)
        spin_start(spin, 600); /* longer than the ctest timeout of this case */
    CHECK_INT(nx_refrun_start(&ref, &dr, "durable-ref-out", REF_CHECKS), 0);
    if (nx_check_failures)
        goto out;

    int64_t t0 = nx_drun_mono_ms();
    pid_t pid = nx_drun_start(&dr, "crash", NULL, 0);
    while (out->got == 0 && nx_drun_mono_ms() - t0 < 180000)
        nx_drun_out_poll(out, 200);
    CHECK(out->got > 0);
    int64_t first = nx_drun_mono_ms();
    nx_drun_out_poll(out, 3500);
    CHECK(nx_drun_kill(pid));
    fprintf(stderr,
            "kill -9 %.1f s after the first predictions (%.1f s after start), %lld predictions "
            "out\n",
            (double)(nx_drun_mono_ms() - first) / 1000, (double)(first - t0) / 1000, out->got);
    /* 0s (the test's) unless a checkpoint was written after all (a
     * rebalance may ask for one): the state comparison below is the check */
    long long c[NX_DRUN_PARTS];
    print_committed("at the kill", "crash", c);

    pid = nx_drun_start(&dr, "crash", dump, 0);
    int64_t restarted = nx_drun_mono_ms();
    CHECK_INT(nx_drun_produce_wait(&dr), 0);
    /* its checkpoint interval (an hour) leaves commits to the shutdown: the
     * run is complete when every offset is predicted (the restart re-reads
     * from the start, in order), and the commit is checked after it */
    CHECK_INT(nx_drun_finish(out, pid, restarted, RUN_MS, NULL), 0);
    CHECK(nx_drun_committed_at_end(&dr, "crash"));
    fprintf(stderr,
            "crash run done %.1f s after its first start; %lld log line(s) about state "
            "gaps\n",
            (double)(nx_drun_mono_ms() - t0) / 1000,
            nx_drun_log_count(&dr, "crash", "no state covers it"));
    CHECK_INT(nx_refrun_finish(&ref, RUN_MS), 0);
    check_outputs(out, "crash run");
    CHECK_INT(nx_refrun_check_state(&ref, dump, "crash run", 0), 0);
out:
    nx_refrun_kill(&ref);
    for (int i = 0; i < SPINNERS && busy; i++)
        if (spin[i] > 0)
            nx_drun_kill(spin[i]);
    nx_drun_out_destroy(out);
}

/* ---- full_disk ---------------------------------------------------------------------- */

/* Room for the key file, none for a checkpoint: even an empty store's
 * checkpoint with the default model is about 27 KB, and a few thousand
 * users' fit in 1 MB since the compact user record. */
#define TINY_BYTES (16 * 1024)

/* Body of an HTTP response (after the blank line). */
static const char *http_body(const char *resp) {
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* No checkpoint was written, so the full-disk group's committed offsets
 * are still the 0s the test committed. */
static void check_nothing_committed(const char *what) {
    long long c[NX_DRUN_PARTS];
    CHECK_INT(print_committed(what, "disk", c), 0);
    for (int p = 0; p < NX_DRUN_PARTS; p++)
        CHECK_INT(c[p], 0);
}

static void case_full_disk(void) {
    nx_refrun_t ref = {0};
    char tiny[300], out_topic[128], out2_topic[128], dump[300], resp[65536];
    nx_drun_out_t *out = NULL, *out2 = NULL;
    int mounted = 0;
    long long fsize = 0;
    int port = nx_fixture_port(0);
    snprintf(tiny, sizeof tiny, "%s/tiny-state", dr.dir);
    snprintf(dump, sizeof dump, "%s/disk2.dump", dr.dir);
    CHECK_INT(mkdir(tiny, 0700), 0);
    if (!getenv("NX_TEST_FULL_DISK_RLIMIT") &&
        mount("nx-full-disk", tiny, "tmpfs", MS_NOSUID | MS_NODEV, "size=16k,mode=0700") == 0) {
        mounted = 1;
        fprintf(stderr, "full disk: state_dir on a 16 KB tmpfs (%s)\n", tiny);
    } else {
        fsize = TINY_BYTES;
        fprintf(stderr,
                "full disk: no tmpfs (%s); the daemon runs under RLIMIT_FSIZE of 16 KB instead\n",
                getenv("NX_TEST_FULL_DISK_RLIMIT") ? "NX_TEST_FULL_DISK_RLIMIT set"
                                                   : strerror(errno));
    }
    const char *errno_text = mounted ? "No space left on device" : "File too large";
    CHECK_INT(nx_drun_produce(&dr, 50000), 0);
    CHECK_INT(nx_drun_topic("disk-out", out_topic, sizeof out_topic), 0);
    CHECK_INT(nx_drun_topic("disk2-out", out2_topic, sizeof out2_topic), 0);
    CHECK_INT(nx_drun_write_conf(&dr, &(nx_drun_conf_t){.name = "disk",
                                                        .out_topic = out_topic,
                                                        .state_dir = tiny,
                                                        .interval_s = 1,
                                                        .metrics_port = port}),
              0);
    CHECK_INT(nx_drun_write_conf(&dr, &(nx_drun_conf_t){.name = "disk2",
                                                        .group = "disk",
                                                        .out_topic = out2_topic,
                                                        .interval_s = 1}),
              0);
    CHECK_INT(nx_drun_commit_zero(&dr, "disk"), 0);
    CHECK((out = nx_drun_out_new(&dr, out_topic)) != NULL);
    CHECK((out2 = nx_drun_out_new(&dr, out2_topic)) != NULL);
    CHECK_INT(nx_refrun_start(&ref, &dr, "durable-ref-out", REF_CHECKS), 0);
    if (nx_check_failures)
        goto out;

    /* the signs of a failing checkpoint, and enough time after the first
     * predictions for a periodic commit (every 500 ms) to have happened */
    int64_t t0 = nx_drun_mono_ms(), first = 0, t_log = 0, t_metric = 0, t_ready = 0;
    long long failures = -1, failing = -1;
    int ready = -1, health = -1;
    pid_t pid = nx_drun_start(&dr, "disk", NULL, fsize);
    while (nx_drun_mono_ms() - t0 < 60000 &&
           !(first && nx_drun_mono_ms() - first > 3000 && t_log && t_metric && t_ready)) {
        nx_drun_out_poll(out, 500);
        int64_t now = nx_drun_mono_ms();
        if (!first && out->got > 0)
            first = now;
        if (!t_log && nx_drun_log_count(&dr, "disk", errno_text) > 0)
            t_log = now;
        if (nx_scrape_get(port, "/metrics", resp, sizeof resp) == 200) {
            failures = nx_scrape_metric(http_body(resp), "nextactd_checkpoint_failures_total");
            failing = nx_scrape_metric(http_body(resp), "nextactd_checkpoint_failing");
            if (!t_metric && failures > 0)
                t_metric = now;
        }
        ready = nx_scrape_get(port, "/readyz", resp, sizeof resp);
        if (!t_ready && ready == 503 && strncmp(http_body(resp), "not ready:", 10) == 0)
            t_ready = now;
    }
    health = nx_scrape_get(port, "/healthz", resp, sizeof resp);
    ready = nx_scrape_get(port, "/readyz", resp, sizeof resp);
    fprintf(stderr,
            "full disk, s after start (0: never): first predictions %.1f, \"%s\" logged %.1f, "
            "failures counted %.1f, /readyz 503 %.1f; %lld predictions out; "
            "nextactd_checkpoint_failures_total %lld, nextactd_checkpoint_failing %lld; /readyz "
            "%d \"%.60s\"; /healthz %d\n",
            first ? (double)(first - t0) / 1000 : 0, errno_text,
            t_log ? (double)(t_log - t0) / 1000 : 0, t_metric ? (double)(t_metric - t0) / 1000 : 0,
            t_ready ? (double)(t_ready - t0) / 1000 : 0, out->got, failures, failing, ready,
            http_body(resp), health);
    CHECK(first > 0);
    CHECK(t_log > 0);
    CHECK(failures > 0);
    CHECK_INT(failing, 1);
    CHECK_INT(ready, 503);
    CHECK(strncmp(http_body(resp), "not ready:", 10) == 0);
    CHECK_INT(health, 200);
    check_nothing_committed("full disk, running");

    int status = nx_drun_stop(pid, STOP_MS);
    long long final_lines = nx_drun_log_count(&dr, "disk", "final checkpoint failed");
    fprintf(stderr,
            "full disk, SIGTERM: exit status %d, %lld \"final checkpoint failed\" line(s)\n",
            status, final_lines);
    CHECK_INT(status, 74);
    CHECK(final_lines > 0);
    check_nothing_committed("full disk, after exit");

    /* the same group on a directory with room, the same key */
    pid = nx_drun_start(&dr, "disk2", dump, 0);
    CHECK_INT(nx_drun_finish(out2, pid, nx_drun_mono_ms(), RUN_MS, "disk"), 0);
    CHECK(nx_drun_committed_at_end(&dr, "disk"));
    CHECK_INT(nx_refrun_finish(&ref, RUN_MS), 0);
    check_outputs(out2, "restart with room");
    CHECK_INT(nx_refrun_check_state(&ref, dump, "restart with room", 0), 0);
out:
    nx_refrun_kill(&ref);
    if (mounted && umount2(tiny, MNT_DETACH) < 0)
        fprintf(stderr, "umount %s: %s\n", tiny, strerror(errno));
    nx_drun_out_destroy(out);
    nx_drun_out_destroy(out2);
}

/* ---- handover ----------------------------------------------------------------------- */

/* 1 if the group has a committed offset past 0 on every input partition. */
static int committed_everywhere(const char *group) {
    long long c[NX_DRUN_PARTS];
    int ok = nx_drun_committed(&dr, group, c) == 0;
    for (int p = 0; p < NX_DRUN_PARTS && ok; p++)
        ok = c[p] > 0;
    return ok;
}

static void case_handover(void) {
    nx_refrun_t ref = {0};
    char a_topic[128], b_topic[128], dump[300];
    nx_drun_out_t *a_out = NULL, *b_out = NULL;
    snprintf(dump, sizeof dump, "%s/a.dump", dr.dir);
    CHECK_INT(nx_drun_produce_start(&dr, 300000, RATE), 0);
    /* one output topic each: A's must end with a prediction for every
     * input offset, those it predicted before B came and those it read
     * again after B left */
    CHECK_INT(nx_drun_topic("handover-a-out", a_topic, sizeof a_topic), 0);
    CHECK_INT(nx_drun_topic("handover-b-out", b_topic, sizeof b_topic), 0);
    CHECK_INT(
        nx_drun_write_conf(
            &dr,
            &(nx_drun_conf_t){.name = "a", .group = "ho", .out_topic = a_topic, .interval_s = 1}),
        0);
    CHECK_INT(
        nx_drun_write_conf(
            &dr,
            &(nx_drun_conf_t){.name = "b", .group = "ho", .out_topic = b_topic, .interval_s = 1}),
        0);
    CHECK_INT(nx_drun_commit_zero(&dr, "ho"), 0);
    CHECK((a_out = nx_drun_out_new(&dr, a_topic)) != NULL);
    CHECK((b_out = nx_drun_out_new(&dr, b_topic)) != NULL);
    CHECK_INT(nx_refrun_start(&ref, &dr, "durable-ref-out", REF_CHECKS), 0);
    if (nx_check_failures)
        goto out;

    /* B comes once a third is predicted and A has committed offsets on
     * every partition (a checkpoint covers them): B, with no state of its
     * own, then starts from offsets past 0 */
    int64_t t0 = nx_drun_mono_ms();
    pid_t a = nx_drun_start(&dr, "a", dump, 0);
    while ((a_out->got < dr.n_events / 3 || !committed_everywhere("ho")) &&
           nx_drun_mono_ms() - t0 < RUN_MS)
        nx_drun_out_poll(a_out, 200);
    int64_t tb = nx_drun_mono_ms();
    pid_t b = nx_drun_start(&dr, "b", NULL, 0);
    fprintf(stderr, "B joins %.1f s after A's start, %lld of A's predictions out\n",
            (double)(tb - t0) / 1000, a_out->got);
    long long c[NX_DRUN_PARTS];
    print_committed("when B joins", "ho", c);
    /* B holds its partitions for 5 s (the join itself may take a few) */
    while (nx_drun_log_count(&dr, "b", "kafka: assigned") <= 0 && nx_drun_mono_ms() - tb < 60000)
        nx_drun_out_poll(a_out, 200);
    int64_t assigned = nx_drun_mono_ms();
    nx_drun_out_poll(a_out, 5000);
    fprintf(stderr, "B assigned %.1f s after it started; SIGTERM 5 s later\n",
            (double)(assigned - tb) / 1000);
    CHECK_INT(nx_drun_stop(b, STOP_MS), 0);
    CHECK_INT(nx_drun_produce_wait(&dr), 0);

    CHECK_INT(nx_drun_finish(a_out, a, t0, RUN_MS, "ho"), 0);
    CHECK(nx_drun_committed_at_end(&dr, "ho"));
    CHECK_INT(nx_drun_out_drain(b_out, 120000), 0);
    long long gaps_b = nx_drun_log_count(&dr, "b", "no state covers it");
    fprintf(stderr,
            "hand-over run done %.1f s after A's start; B predicted %lld events; A restored "
            "%lld hand-over file(s); B logged %lld state gap line(s)\n",
            (double)(nx_drun_mono_ms() - t0) / 1000, b_out->got,
            nx_drun_log_count(&dr, "a", "restored from"), gaps_b);
    CHECK(b_out->got > 0);
    CHECK(gaps_b > 0);
    CHECK_INT(nx_refrun_finish(&ref, RUN_MS), 0);
    check_outputs(a_out, "daemon A");
    long long dropped = nx_drun_dump_stat(dump, "dropped");
    fprintf(stderr, "A: %lld event(s) dropped as too old, %lld late\n", dropped,
            nx_drun_dump_stat(dump, "late"));
    CHECK_INT(dropped, 0);
    /* strict: A must have seen every event as the reference did */
    CHECK_INT(nx_refrun_check_state(&ref, dump, "daemon A", 1), 0);
out:
    nx_refrun_kill(&ref);
    nx_drun_out_destroy(a_out);
    nx_drun_out_destroy(b_out);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_ops_durable NEXTACTD SOURCE_DIR "
                        "durable_kill|durable_kill_busy|full_disk|handover\n");
        return 2;
    }
    const char *c = argv[3];
    if (strcmp(c, "durable_kill") != 0 && strcmp(c, "durable_kill_busy") != 0 &&
        strcmp(c, "full_disk") != 0 && strcmp(c, "handover") != 0) {
        fprintf(stderr, "test_ops_durable: unknown case %s\n", c);
        return 2;
    }
    if (nx_drun_init(&dr, argv[1], argv[2], "test_ops_durable") < 0)
        return 1;
    if (strcmp(c, "durable_kill") == 0)
        case_durable_kill(0);
    else if (strcmp(c, "durable_kill_busy") == 0)
        case_durable_kill(1);
    else if (strcmp(c, "full_disk") == 0)
        case_full_disk();
    else
        case_handover();
    nx_drun_produce_wait(&dr); /* a case that stopped early */
    nx_drun_cleanup(&dr, nx_check_failures,
                    (const char *[]){"crash", "disk", "disk2", "a", "b", NULL});
    return nx_check_exit(c);
}
