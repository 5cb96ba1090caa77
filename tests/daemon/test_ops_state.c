/*
 * test_ops_state: what a start does with the state directory it finds,
 * on librdkafka's mock cluster (no broker needed).
 *
 * 1. Key fingerprint: a daemon writes a checkpoint at shutdown; its
 *    user-id hash key file is then replaced (as after a lost key). The next
 *    start must refuse the checkpoint loudly and exit 78, not load it and
 *    orphan every user; `--start-afresh` starts anyway, saying so.
 * 2. An older checkpoint: tests/data/ckpt-unversioned.nxc was written by
 *    `nextactd replay --checkpoint` before checkpoint sections were
 *    versioned (raw "pipeline" and "mlp" sections, no "offsets" or key
 *    sections). The
 *    daemon loads it (its users come back) and says the key cannot be
 *    checked. The fixture holds the features of tests/data/ckpt.conf; a
 *    change of the feature layout refuses it (another schema hash) and
 *    needs a new fixture: see tests/data/README.md.
 *
 * usage: test_ops_state NEXTACTD SOURCE_DIR
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "siphash.h"

static const char *nextactd, *src;
static char dir[] = "/tmp/test_ops_state.XXXXXX";

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A run configuration over the fixture's: the mock cluster, the given
 * state directory. */
static void write_conf(const char *path, const char *state) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "@include \"%s/tests/data/ckpt.conf\"\n"
            "state_dir = \"%s\";\nlog_level = \"info\";\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "kafka: { brokers = \"mock\"; input_topics = [\"clicks\"]; output_topic = "
            "\"predictions\"; dead_letter_topic = \"\"; };\n"
            "checkpoint: { interval_s = 3600; };\nmetrics: { listen = \"\"; };\n",
            src, state, src, src);
    fclose(f);
}

/* Runs `nextactd run -c conf [extra]` with stderr to log; after up_ms (or
 * once it exits on its own) SIGTERM. Returns the exit status, -1 if killed
 * by a signal; any status but `expect` prints the daemon's log. */
static int run_daemon(const char *conf, const char *extra, const char *log, const char *dump,
                      int up_ms, int expect) {
    pid_t pid = fork();
    if (pid == 0) {
        FILE *l = freopen(log, "w", stderr);
        (void)l;
        if (dump)
            setenv("NX_DEBUG_DUMP_STORE", dump, 1);
        if (extra)
            execl(nextactd, "nextactd", "run", "-c", conf, extra, (char *)NULL);
        else
            execl(nextactd, "nextactd", "run", "-c", conf, (char *)NULL);
        _exit(127);
    }
    int st = 0, exited = 0;
    int64_t until = mono_ms() + up_ms;
    while (!exited && mono_ms() < until) {
        exited = waitpid(pid, &st, WNOHANG) == pid;
        if (!exited)
            usleep(50000);
    }
    if (!exited) {
        kill(pid, SIGTERM);
        waitpid(pid, &st, 0);
    }
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc != expect) {
        if (WIFSIGNALED(st))
            fprintf(stderr, "nextactd killed by signal %d; its log %s:\n", WTERMSIG(st), log);
        else
            fprintf(stderr, "nextactd exited with %d; its log %s:\n", rc, log);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "tail -n 60 %s >&2", log);
        if (system(cmd) != 0)
            fprintf(stderr, "(cannot show it)\n");
    }
    return rc;
}

static int log_has(const char *log, const char *text) {
    FILE *f = fopen(log, "r");
    static char line[8192];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    if (f)
        fclose(f);
    if (!found)
        fprintf(stderr, "%s: no line with \"%s\"\n", log, text);
    return found;
}

static void test_key_fingerprint(void) {
    char state[300], conf[300], log[300], cmd[2048];
    snprintf(state, sizeof state, "%s/key-state", dir);
    snprintf(conf, sizeof conf, "%s/key.conf", dir);
    write_conf(conf, state);

    snprintf(log, sizeof log, "%s/key-1.log", dir);
    CHECK_INT(run_daemon(conf, NULL, log, NULL, 3000, 0), 0);
    CHECK(log_has(log, "final checkpoint written"));

    /* another key, as a lost and re-created key file would be */
    snprintf(cmd, sizeof cmd,
             "head -c %d /dev/urandom > %s/%s.new && chmod 600 %s/%s.new && mv %s/%s.new %s/%s",
             NX_SIPHASH_KEY_LEN, state, NX_SIPHASH_KEY_FILE, state, NX_SIPHASH_KEY_FILE, state,
             NX_SIPHASH_KEY_FILE, state, NX_SIPHASH_KEY_FILE);
    CHECK_INT(system(cmd), 0);
    snprintf(log, sizeof log, "%s/key-2.log", dir);
    CHECK_INT(run_daemon(conf, NULL, log, NULL, 20000, 78), 78);
    CHECK(log_has(log, "another user-id hash key"));
    CHECK(log_has(log, "--start-afresh"));

    snprintf(log, sizeof log, "%s/key-3.log", dir);
    CHECK_INT(run_daemon(conf, "--start-afresh", log, NULL, 3000, 0), 0);
    CHECK(log_has(log, "STARTING AFRESH"));
    /* the state written under the new key is loaded from then on */
    snprintf(log, sizeof log, "%s/key-4.log", dir);
    CHECK_INT(run_daemon(conf, NULL, log, NULL, 3000, 0), 0);
    CHECK(log_has(log, "checkpoint: loaded"));
}

/* Users in tests/data/ckpt-unversioned.nxc (the replay summary's count). */
#define FIXTURE_USERS 466

static void test_unversioned(void) {
    char state[300], conf[300], log[300], dump[300], cmd[2048];
    snprintf(state, sizeof state, "%s/old-state", dir);
    snprintf(conf, sizeof conf, "%s/old.conf", dir);
    write_conf(conf, state);
    snprintf(cmd, sizeof cmd,
             "mkdir -p -m 700 %s/checkpoints && cp %s/tests/data/ckpt-unversioned.nxc "
             "%s/checkpoints/ckpt-000000000001.nxc",
             state, src, state);
    CHECK_INT(system(cmd), 0);
    snprintf(log, sizeof log, "%s/old.log", dir);
    snprintf(dump, sizeof dump, "%s/old.dump", dir);
    CHECK_INT(run_daemon(conf, NULL, log, dump, 3000, 0), 0);
    CHECK(log_has(log, "checkpoint: loaded"));
    CHECK(log_has(log, "cannot be checked"));
    /* its users are back, every one (the replay that wrote it had 466) */
    FILE *f = fopen(dump, "r");
    static char line[65536];
    int users = 0;
    while (f && fgets(line, sizeof line, f))
        users += strncmp(line, "user ", 5) == 0;
    if (f)
        fclose(f);
    CHECK_INT(users, FIXTURE_USERS);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_ops_state NEXTACTD SOURCE_DIR\n");
        return 2;
    }
    nextactd = argv[1];
    src = argv[2];
    if (!mkdtemp(dir))
        return 1;
    test_key_fingerprint();
    test_unversioned();
    if (nx_check_failures) {
        fprintf(stderr, "files kept in %s\n", dir);
    } else {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return nx_check_exit("test_ops_state");
}
