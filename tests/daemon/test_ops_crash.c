/*
 * test_ops_crash: kill -9 and restart on the real broker; state and input
 * must agree through checkpoints.
 *
 * 300k generated events on one input topic x 4 partitions (keyed by user).
 * Two groups consume them with `nextactd run`, each into its own output
 * topic:
 * - the reference: one uninterrupted run;
 * - the crash run: checkpoints every second, `kill -9` at 5 random moments
 *   (a fixed-seed schedule, 2-9 s after each start: during the group join,
 *   mid-stream, or during a background checkpoint write), a restart after
 *   each, then a run to the end.
 * Both end with SIGTERM (exit 0) once their committed offsets reach the end
 * offsets, dumping the store (NX_DEBUG_DUMP_STORE, every user sorted by
 * hash). Checks:
 * - every input offset has at least one prediction in the crash run's
 *   output (none lost); duplicates are counted and printed;
 * - the reference has exactly one per offset;
 * - the per-user feature state (windows, last-event times, session,
 *   recent items and categories) of the crash run equals the reference's,
 *   user for user (both runs share one user-id hash key). Left out, and
 *   counted: the pending example (its flag, feature vector and scores).
 *   Whether an example is still pending at the end depends on when the
 *   watermark let it expire, and the watermark (minimum over partitions of
 *   what was read) and the global normaliser and model depend on the order
 *   the partitions were fetched in, in any two runs, killed or not.
 *   Compared only when neither run had a late or dropped event (small
 *   record batches and fetches keep the partitions interleaved; see
 *   produce_input and write_conf); otherwise reported.
 * Events re-read after a crash (offsets between the checkpoint and the
 * crash) must not count twice in any window: that holds only because state
 * and offsets come from the same checkpoint.
 *
 * usage: test_ops_crash NEXTACTD SOURCE_DIR [EVENTS]
 */
#include <avro.h>
#include <signal.h>
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
#include "schema_file.h"
#include "siphash.h"

#define PARTS 4
#define KILLS 5

static char in_topic[128];
static long long n_events = 300000;
static long long ends[PARTS];
static char dir[] = "/tmp/test_ops_crash.XXXXXX";
static const char *src_dir, *nextactd;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void produce_input(void) {
    char err[512], gerr[256];
    /* Small record batches: the broker hands out whole batches whatever
     * the fetch size, and a 10k-record batch of one partition is 20 days of
     * this stream ahead of the others (see the state comparison below). */
    rd_kafka_t *p = nx_fixture_producer(
        err, sizeof err, (const char *[]){"linger.ms", "5", "batch.num.messages", "100", NULL});
    CHECK(p != NULL);
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = 20000;
    gp.seed = 17;
    gp.start_ms = (int64_t)(time(NULL) - 400 * 86400) * 1000;
    nx_gen_t *gen = nx_gen_new(&gp, gerr, sizeof gerr);
    CHECK(gen != NULL);
    uint8_t buf[2048];
    for (long long i = 0; p && gen && i < n_events; i++) {
        nx_gen_event_t ge;
        nx_gen_next(gen, &ge);
        int64_t len = nx_gen_encode_event(&ge, -1, buf, sizeof buf);
        while (rd_kafka_producev(
                   p, RD_KAFKA_V_TOPIC(in_topic), RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)),
                   RD_KAFKA_V_VALUE(buf, (size_t)len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                   RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 50);
        rd_kafka_poll(p, 0);
    }
    CHECK_INT(rd_kafka_flush(p, 60000), 0);
    nx_gen_destroy(gen);
    long long total = nx_fixture_end_offsets(p, in_topic, PARTS, ends);
    CHECK_INT(total, n_events);
    rd_kafka_destroy(p);
}

static void write_conf(const char *name, const char *out_topic, int interval_s) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s.conf", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "state_dir = \"%s/%s-state\";\nlog_level = \"info\";\n"
            "kafka: { brokers = \"%s\"; group_id = \"%s-%s\"; input_topics = [\"%s\"];\n"
            "  output_topic = \"%s\"; dead_letter_topic = \"\"; commit_interval_ms = 500;\n"
            /* small fetches interleave the partitions finely, as a live
             * stream would: no partition runs days of event time ahead of
             * the others, so no event falls behind the watermark by more
             * than the lateness (see labels below) in either run */
            "  consumer = { session_timeout_ms = \"6000\"; heartbeat_interval_ms = \"500\";\n"
            "    max_partition_fetch_bytes = \"8192\"; }; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            /* no expiry by time or wall clock in either run: the test
             * compares per-user state, not the maintenance schedule */
            "features: { user_ttl_s = 31536000; };\n"
            "labels: { idle_advance_ms = 3600000; allowed_lateness_ms = 86400000; };\n"
            "checkpoint: { interval_s = %d; keep = 3; };\nmetrics: { listen = \"\"; };\n",
            dir, name, nx_fixture_brokers(), in_topic, name, in_topic, out_topic, src_dir, src_dir,
            interval_s);
    fclose(f);
}

static pid_t start_daemon(const char *name, const char *dump) {
    char conf[300], log[300];
    snprintf(conf, sizeof conf, "%s/%s.conf", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    return nx_fixture_start_daemon(nextactd, conf, log, dump);
}

static int committed_at_end(const char *group) {
    char err[512];
    rd_kafka_t *c = nx_fixture_consumer(group, err, sizeof err, NULL);
    if (!c)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, in_topic, p);
    int ok = rd_kafka_committed(c, l, 10000) == 0;
    for (int p = 0; p < PARTS && ok; p++)
        ok = l->elems[p].offset == ends[p];
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return ok;
}

/* Commits offset 0 of every partition for the group, so its daemon starts
 * all partitions from committed offsets together (with no committed offset
 * each partition is reset on its own, and one may run ahead of the others
 * before they are fetched at all: see the state comparison below). */
static void commit_zero(const char *name) {
    char err[512], group[300];
    snprintf(group, sizeof group, "%s-%s", in_topic, name);
    rd_kafka_t *c = nx_fixture_consumer(group, err, sizeof err, NULL);
    CHECK(c != NULL);
    if (!c)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, in_topic, p)->offset = 0;
    CHECK_INT(rd_kafka_commit(c, l, 0), 0);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
}

/* Runs until the group's committed offsets reach the end (and the daemon
 * has been up MIN_UP_MS, so SIGTERM finds it started), then SIGTERM;
 * returns the exit status (-1 if it did not exit normally). */
#define MIN_UP_MS 5000
static int finish(const char *name, pid_t pid, int64_t started) {
    char group[300];
    snprintf(group, sizeof group, "%s-%s", in_topic, name);
    int64_t deadline = mono_ms() + 240000;
    while ((!committed_at_end(group) || mono_ms() - started < MIN_UP_MS) && mono_ms() < deadline)
        usleep(500000);
    CHECK(committed_at_end(group));
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Counts the predictions per input offset in out_topic. */
static void read_outputs(const char *out_topic, unsigned char *seen[PARTS], long long *dups,
                         long long *got) {
    char err[512], path[512];
    snprintf(path, sizeof path, "%s/conf/schemas/prediction.avsc", src_dir);
    avro_schema_t schema;
    CHECK_INT(nx_schema_file(path, &schema), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t val;
    avro_generic_value_new(iface, &val);
    rd_kafka_t *c = nx_fixture_consumer("crash-checker", err, sizeof err, NULL);
    long long out_ends[PARTS];
    long long want = nx_fixture_end_offsets(c, out_topic, PARTS, out_ends);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, out_topic, p)->offset = 0;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    *got = *dups = 0;
    long long bad = 0;
    int64_t deadline = mono_ms() + 120000;
    while (*got < want && mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (!m->err) {
            (*got)++;
            avro_reader_t rd = avro_reader_memory(m->payload, (int64_t)m->len);
            avro_value_reset(&val);
            avro_value_t fld;
            int32_t part = -1;
            int64_t off = -1;
            if (avro_value_read(rd, &val) == 0) {
                avro_value_get_by_name(&val, "partition", &fld, NULL);
                avro_value_get_int(&fld, &part);
                avro_value_get_by_name(&val, "offset", &fld, NULL);
                avro_value_get_long(&fld, &off);
            }
            if (part < 0 || part >= PARTS || off < 0 || off >= ends[part])
                bad++;
            else if (seen[part][off]++)
                (*dups)++;
            avro_reader_free(rd);
        }
        rd_kafka_message_destroy(m);
    }
    CHECK_INT(*got, want);
    CHECK_INT(bad, 0);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
}

static long long count_missing(unsigned char *seen[PARTS]) {
    long long missing = 0;
    for (int p = 0; p < PARTS; p++)
        for (long long o = 0; o < ends[p]; o++)
            missing += seen[p][o] == 0;
    return missing;
}

/* Next line of a dump that is about the user's own events: the pending
 * example's feature vector and scores (normaliser and model) are skipped.
 * NULL at the end. */
static char *next_line(FILE *f, char *buf, size_t size) {
    while (fgets(buf, (int)size, f))
        if (strncmp(buf, "pending ", 8) != 0 && strncmp(buf, "scores ", 7) != 0)
            return buf;
    return NULL;
}

/* Compares two store dumps user by user. The "user" line's pending flag is
 * compared apart (pending_diff): whether an example is still pending at the
 * end depends on when the watermark let it expire, and the watermark is the
 * minimum over partitions of what was read so far, i.e. on the order the
 * partitions were fetched in, in any two runs. Returns the number of other
 * differing lines (windows, last-event times, session, items, categories),
 * which must be 0. */
static long long compare_dumps(const char *a, const char *b, long long *users,
                               long long *pending_diff) {
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    CHECK(fa != NULL);
    CHECK(fb != NULL);
    if (!fa || !fb) {
        if (fa)
            fclose(fa);
        if (fb)
            fclose(fb);
        return -1;
    }
    static char la[65536], lb[65536];
    long long diff = 0, shown = 0;
    *users = *pending_diff = 0;
    for (;;) {
        char *ra = next_line(fa, la, sizeof la), *rb = next_line(fb, lb, sizeof lb);
        if (!ra || !rb) {
            if (ra || rb)
                diff++; /* one is longer */
            break;
        }
        if (strncmp(la, "stats ", 6) == 0) {
            fprintf(stderr, "reference %scrash run %s", la, lb);
            continue;
        }
        if (strncmp(la, "user ", 5) == 0) {
            (*users)++;
            char *pa = strstr(la, " pending "), *pb = strstr(lb, " pending ");
            if (pa && pb && strcmp(pa, pb) != 0) {
                (*pending_diff)++;
                *pa = *pb = '\0';
            }
        }
        if (strcmp(la, lb) == 0)
            continue;
        diff++;
        if (shown++ < 5)
            fprintf(stderr, "dump differs:\n  reference: %s  crash run: %s", la, lb);
    }
    fclose(fa);
    fclose(fb);
    return diff;
}

/* The counter `name` from the dump's "stats" line; -1 if absent. */
static long long dump_stat(const char *path, const char *name) {
    FILE *f = fopen(path, "r");
    static char line[65536];
    long long v = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "stats ", 6) != 0)
            continue;
        char key[64];
        snprintf(key, sizeof key, " %s ", name);
        const char *p = strstr(line, key);
        if (p)
            v = atoll(p + strlen(key));
    }
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_ops_crash NEXTACTD SOURCE_DIR [EVENTS]\n");
        return 2;
    }
    nextactd = argv[1];
    src_dir = argv[2];
    if (argc > 3)
        n_events = atoll(argv[3]);
    char err[512], ref_out[128], crash_out[128];
    nx_fixture_topic_name(in_topic, sizeof in_topic, "crash-in");
    nx_fixture_topic_name(ref_out, sizeof ref_out, "crash-ref-out");
    nx_fixture_topic_name(crash_out, sizeof crash_out, "crash-out");
    if (nx_fixture_create_topic(in_topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(ref_out, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(crash_out, PARTS, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_fixture_print_log();
        return 1;
    }
    if (!mkdtemp(dir))
        return 1;
    produce_input();
    write_conf("ref", ref_out, 0);
    write_conf("crash", crash_out, 1);
    char ref_dump[300], crash_dump[300];
    snprintf(ref_dump, sizeof ref_dump, "%s/ref.dump", dir);
    snprintf(crash_dump, sizeof crash_dump, "%s/crash.dump", dir);

    /* the crash run first and the reference meanwhile: both consume the
     * same input, each in its own group */
    /* one user-id hash key for both runs, so the dumps (sorted by user
     * hash) line up user for user */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "mkdir -m 700 %s/ref-state %s/crash-state && head -c %d /dev/urandom > "
             "%s/ref-state/%s && chmod 600 %s/ref-state/%s && cp -p %s/ref-state/%s "
             "%s/crash-state/",
             dir, dir, NX_SIPHASH_KEY_LEN, dir, NX_SIPHASH_KEY_FILE, dir, NX_SIPHASH_KEY_FILE, dir,
             NX_SIPHASH_KEY_FILE, dir);
    CHECK_INT(system(cmd), 0);
    commit_zero("ref");
    commit_zero("crash");
    pid_t ref = start_daemon("ref", ref_dump);
    int64_t ref_start = mono_ms();
    uint64_t rng = 0x2545f4914f6cdd1dULL;
    int64_t t0 = mono_ms();
    pid_t pid = start_daemon("crash", NULL);
    int64_t last_start = mono_ms();
    for (int k = 0; k < KILLS; k++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        useconds_t wait_ms = (useconds_t)(2000 + rng % 7000); /* 2-9 s */
        usleep(wait_ms * 1000);
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st));
        fprintf(stderr, "kill -9 #%d after %u ms (%.1f s into the run)\n", k + 1, wait_ms,
                (double)(mono_ms() - t0) / 1000);
        pid = start_daemon("crash", k == KILLS - 1 ? crash_dump : NULL);
        last_start = mono_ms();
    }
    CHECK_INT(finish("crash", pid, last_start), 0);
    CHECK_INT(finish("ref", ref, ref_start), 0);
    fprintf(stderr, "crash run done %.1f s after its first start\n",
            (double)(mono_ms() - t0) / 1000);

    unsigned char *seen_ref[PARTS], *seen_crash[PARTS];
    for (int p = 0; p < PARTS; p++) {
        seen_ref[p] = calloc((size_t)ends[p] + 1, 1);
        seen_crash[p] = calloc((size_t)ends[p] + 1, 1);
    }
    long long ref_dups, ref_got, dups, got;
    read_outputs(ref_out, seen_ref, &ref_dups, &ref_got);
    read_outputs(crash_out, seen_crash, &dups, &got);
    long long missing = count_missing(seen_crash);
    fprintf(stderr,
            "reference: %lld predictions, %lld duplicates, %lld missing; crash run: %lld "
            "predictions for %lld input events, %lld duplicates (%.2f%%), %lld missing\n",
            ref_got, ref_dups, count_missing(seen_ref), got, n_events, dups,
            100.0 * (double)dups / (double)n_events, missing);
    CHECK_INT(count_missing(seen_ref), 0);
    CHECK_INT(ref_dups, 0);
    CHECK_INT(missing, 0);
    CHECK_INT(got, n_events + dups);

    long long users = 0, pending_diff = 0;
    long long diff = compare_dumps(ref_dump, crash_dump, &users, &pending_diff);
    fprintf(stderr,
            "store dumps: %lld users; %lld differing feature-state lines; %lld users pending in "
            "one run only (watermark order, not compared)\n",
            users, diff, pending_diff);
    CHECK(users > 1000);
    /* Equal state needs the same events in every window. The pipeline
     * drops events older than its watermark minus the longest window and
     * counts late ones where their bucket still lives; its watermark is the
     * minimum over the partitions seen so far, so which events are late
     * depends on the order partitions were fetched in, in any run. Only
     * when neither run had a late or dropped event is the comparison about
     * checkpoints; otherwise it is reported, not checked. */
    long long late_ref = dump_stat(ref_dump, "late"), late_crash = dump_stat(crash_dump, "late");
    long long drop_ref = dump_stat(ref_dump, "dropped");
    long long drop_crash = dump_stat(crash_dump, "dropped");
    CHECK(late_ref >= 0 && late_crash >= 0 && drop_ref >= 0 && drop_crash >= 0);
    if (late_ref + late_crash + drop_ref + drop_crash == 0)
        CHECK_INT(diff, 0);
    else
        fprintf(stderr,
                "WARNING: per-user state NOT compared: late/dropped events (reference %lld/%lld, "
                "crash run %lld/%lld) make it depend on the partition read order (pipeline "
                "watermark), not on checkpoints\n",
                late_ref, drop_ref, late_crash, drop_crash);
    for (int p = 0; p < PARTS; p++) {
        free(seen_ref[p]);
        free(seen_crash[p]);
    }
    if (nx_check_failures) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "grep -h -E '<[0-4]>' %s/crash.log | tail -n 30 1>&2", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        fprintf(stderr, "files kept in %s\n", dir);
    } else {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return nx_check_exit("test_ops_crash");
}
