/*
 * test_changelog: user state in a Kafka changelog topic, on the real broker.
 *
 * 300k generated events on one input topic x 4 partitions (keyed by user),
 * every daemon sharing one user-id hash key:
 * - the reference: one daemon, no changelog, one uninterrupted run;
 * - (a) two daemons in one group with state.changelog, A and B; A is
 *   killed (SIGKILL) mid-stream; B takes its partitions, restores them
 *   from the changelog and runs to the end. Every input offset must have a
 *   prediction in the changelog group's output; B's per-user feature
 *   state must equal the reference's, user for user (as test_ops_crash
 *   compares it: pending examples apart; compared when neither run had a
 *   late or dropped event, else reported);
 * - (b) a new daemon C with a wiped state directory (only the key) in the
 *   same group restores everything from the changelog alone: its per-user
 *   feature state equals B's (the pending flag apart: see below);
 * - (c) garbage records appended to the changelog (a truncated record, a
 *   record of another version, random bytes, a key that is neither a user
 *   hash nor the position, a position of another version) are counted in
 *   nextactd_changelog_bad_records_total and skipped: daemon D, restoring
 *   past them, dumps the same users as C, line for line.
 *
 * usage: test_changelog NEXTACTD SOURCE_DIR [EVENTS]
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
#include "gen.h"
#include "kafka_fixture.h"
#include "schema_file.h"
#include "scrape.h"
#include "siphash.h"

#define PARTS 4

static char in_topic[128], state_topic[160];
static long long n_events = 300000;
static long long ends[PARTS];
static char dir[] = "/tmp/test_changelog.XXXXXX";
static const char *src_dir, *nextactd;
static int metrics_port;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The input, as test_ops_crash produces it (small batches keep the
 * partitions interleaved in event time): a third before the daemons start,
 * the rest while they run (produce_more), so that A's kill falls
 * mid-stream however fast the group reads. */
static rd_kafka_t *prod;
static nx_gen_t *gen;
static long long produced;

static void produce_more(long long upto) {
    uint8_t buf[2048];
    for (; prod && gen && produced < upto && produced < n_events; produced++) {
        nx_gen_event_t ge;
        nx_gen_next(gen, &ge);
        int64_t len = nx_gen_encode_event(&ge, -1, buf, sizeof buf);
        while (rd_kafka_producev(
                   prod, RD_KAFKA_V_TOPIC(in_topic), RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)),
                   RD_KAFKA_V_VALUE(buf, (size_t)len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                   RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(prod, 50);
        rd_kafka_poll(prod, 0);
    }
    if (prod)
        CHECK_INT(rd_kafka_flush(prod, 60000), 0);
}

static void produce_start(void) {
    char err[512], gerr[256];
    prod = nx_fixture_producer(
        err, sizeof err, (const char *[]){"linger.ms", "5", "batch.num.messages", "100", NULL});
    CHECK(prod != NULL);
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = 20000;
    gp.seed = 17;
    gp.start_ms = (int64_t)(time(NULL) - 400 * 86400) * 1000;
    gen = nx_gen_new(&gp, gerr, sizeof gerr);
    CHECK(gen != NULL);
    produce_more(n_events / 3);
}

static void produce_finish(void) {
    produce_more(n_events);
    nx_gen_destroy(gen);
    gen = NULL;
    if (prod) {
        CHECK_INT(nx_fixture_end_offsets(prod, in_topic, PARTS, ends), n_events);
        rd_kafka_destroy(prod);
        prod = NULL;
    }
}

/* name: the daemon (its state directory, log, instance id); group: the
 * consumer group suffix; changelog: 1 = state.changelog on. */
static void write_conf(const char *name, const char *group, const char *out_topic, int changelog,
                       int port) {
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
            "  consumer = { session_timeout_ms = \"6000\"; heartbeat_interval_ms = \"500\";\n"
            "    max_partition_fetch_bytes = \"8192\"; }; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "features: { user_ttl_s = 31536000; };\n"
            "labels: { idle_advance_ms = 3600000; allowed_lateness_ms = 86400000; };\n"
            "checkpoint: { interval_s = %d; };\n",
            dir, name, nx_fixture_brokers(), in_topic, group, in_topic, out_topic, src_dir, src_dir,
            changelog ? 5 : 0);
    if (port)
        fprintf(f, "metrics: { listen = \"127.0.0.1:%d\"; };\n", port);
    else
        fprintf(f, "metrics: { listen = \"\"; };\n");
    if (changelog)
        fprintf(f, "state: { changelog = \"%s\"; instance_id = \"%s\"; };\n", state_topic, name);
    fclose(f);
}

/* A state directory holding only the shared key file. */
static void key_dir(const char *name) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -m 700 %s/%s-state && cp -p %s/key %s/%s-state/%s", dir, name,
             dir, dir, name, NX_SIPHASH_KEY_FILE);
    CHECK_INT(system(cmd), 0);
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

/* Sum of the group's committed offsets over the partitions (0 if none). */
static long long committed_sum(const char *group) {
    char err[512];
    rd_kafka_t *c = nx_fixture_consumer(group, err, sizeof err, NULL);
    if (!c)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, in_topic, p);
    long long sum = 0;
    if (rd_kafka_committed(c, l, 10000) == 0)
        for (int p = 0; p < PARTS; p++)
            sum += l->elems[p].offset > 0 ? l->elems[p].offset : 0;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return sum;
}

static void commit_zero(const char *group_suffix) {
    char err[512], group[300];
    snprintf(group, sizeof group, "%s-%s", in_topic, group_suffix);
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

static int stop(pid_t pid) {
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Waits for the group's commits to reach the end (and 5 s up), then stops. */
static int finish(const char *group_suffix, pid_t pid, int64_t started) {
    char group[300];
    snprintf(group, sizeof group, "%s-%s", in_topic, group_suffix);
    int64_t deadline = mono_ms() + 300000;
    while ((!committed_at_end(group) || mono_ms() - started < 5000) && mono_ms() < deadline)
        usleep(500000);
    CHECK(committed_at_end(group));
    return stop(pid);
}

/* Lines of the daemon's log containing what. */
static int log_count(const char *name, const char *what) {
    char path[300], line[4096];
    snprintf(path, sizeof path, "%s/%s.log", dir, name);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* Waits until the daemon logged `n` restored partitions. */
static int wait_restored(const char *name, int n) {
    int64_t deadline = mono_ms() + 120000;
    while (log_count(name, "restored in") < n && mono_ms() < deadline)
        usleep(200000);
    return log_count(name, "restored in") >= n;
}

/* Counts the predictions per input offset in out_topic. */
static void read_outputs(const char *out_topic, unsigned char *seen[PARTS], long long *got) {
    char err[512], path[512];
    snprintf(path, sizeof path, "%s/conf/schemas/prediction.avsc", src_dir);
    avro_schema_t schema;
    CHECK_INT(nx_schema_file(path, &schema), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t val;
    avro_generic_value_new(iface, &val);
    rd_kafka_t *c = nx_fixture_consumer("changelog-checker", err, sizeof err, NULL);
    long long out_ends[PARTS];
    long long want = nx_fixture_end_offsets(c, out_topic, PARTS, out_ends);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, out_topic, p)->offset = 0;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    *got = 0;
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
            else if (seen[part][off] < 255)
                seen[part][off]++;
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

/* Compares two store dumps line by line, the "stats" line apart. With
 * feature_only, pending vectors and scores are skipped and the pending
 * flag is counted apart (see test_ops_crash: it follows the watermark,
 * i.e. the order partitions were fetched in). Returns the differing lines. */
static long long compare_dumps(const char *a, const char *b, int feature_only, long long *users,
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
        char *ra, *rb;
        do
            ra = fgets(la, sizeof la, fa);
        while (ra && feature_only && (!strncmp(la, "pending ", 8) || !strncmp(la, "scores ", 7)));
        do
            rb = fgets(lb, sizeof lb, fb);
        while (rb && feature_only && (!strncmp(lb, "pending ", 8) || !strncmp(lb, "scores ", 7)));
        if (!ra || !rb) {
            diff += (ra || rb);
            break;
        }
        if (!strncmp(la, "stats ", 6)) {
            fprintf(stderr, "%s: %s%s: %s", a, la, b, lb);
            continue;
        }
        if (!strncmp(la, "user ", 5)) {
            (*users)++;
            char *pa = strstr(la, " pending "), *pb = strstr(lb, " pending ");
            if (feature_only && pa && pb && strcmp(pa, pb) != 0) {
                (*pending_diff)++;
                *pa = *pb = '\0';
            }
        }
        if (strcmp(la, lb) == 0)
            continue;
        diff++;
        if (shown++ < 5)
            fprintf(stderr, "dump differs:\n  %s: %s  %s: %s", a, la, b, lb);
    }
    fclose(fa);
    fclose(fb);
    return diff;
}

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

/* Users per input partition in a dump ("user HASH partition P ..."). */
static void users_per_part(const char *path, long long n[PARTS]) {
    FILE *f = fopen(path, "r");
    static char line[65536];
    CHECK(f != NULL);
    for (int p = 0; p < PARTS; p++)
        n[p] = 0;
    int part;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "user %*s partition %d", &part) == 1 && part >= 0 && part < PARTS)
            n[part]++;
    if (f)
        fclose(f);
}

/* (c): records the restore must count and skip, 5 per partition. */
#define GARBAGE_PER_PART 5
static void produce_garbage(void) {
    char err[512];
    rd_kafka_t *p = nx_fixture_producer(err, sizeof err, NULL);
    CHECK(p != NULL);
    if (!p)
        return;
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (int part = 0; part < PARTS; part++) {
        uint8_t key[8], val[400];
        for (int k = 0; k < 8; k++)
            key[k] = (uint8_t)(0xa0 + part + k);
        for (size_t k = 0; k < sizeof val; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            val[k] = (uint8_t)s;
        }
        struct {
            const void *key;
            size_t klen;
            const void *val;
            size_t vlen;
        } g[GARBAGE_PER_PART] = {
            {key, 8, "\x01\x00\x00", 3}, /* truncated */
            {key, 8,
             "\x07\x00\x00\x00\xf8\x00\x00\x00" /* another version */
             "\x00\x00\x00\x00\x00\x00\x00\x00",
             16},
            {key, 8, val, sizeof val},                /* random bytes */
            {"zzz", 3, val, 40},                      /* neither user nor position */
            {"nextactd.position", 17, "\x09\x01", 2}, /* position of another version */
        };
        for (int i = 0; i < GARBAGE_PER_PART; i++)
            CHECK_INT(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(state_topic),
                                        RD_KAFKA_V_PARTITION(part),
                                        RD_KAFKA_V_KEY(g[i].key, g[i].klen),
                                        RD_KAFKA_V_VALUE((void *)g[i].val, g[i].vlen),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                      0);
    }
    CHECK_INT(rd_kafka_flush(p, 30000), 0);
    rd_kafka_destroy(p);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_changelog NEXTACTD SOURCE_DIR [EVENTS]\n");
        return 2;
    }
    nextactd = argv[1];
    src_dir = argv[2];
    if (argc > 3)
        n_events = atoll(argv[3]);
    metrics_port = nx_fixture_port(0);
    char err[512], ref_out[128], cl_out[128];
    nx_fixture_topic_name(in_topic, sizeof in_topic, "cl-in");
    nx_fixture_topic_name(ref_out, sizeof ref_out, "cl-ref-out");
    nx_fixture_topic_name(cl_out, sizeof cl_out, "cl-out");
    snprintf(state_topic, sizeof state_topic, "%s-state", in_topic);
    if (nx_fixture_create_topic(in_topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(ref_out, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(cl_out, PARTS, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_fixture_print_log();
        return 1;
    }
    if (!mkdtemp(dir))
        return 1;
    produce_start();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "head -c %d /dev/urandom > %s/key && chmod 600 %s/key",
             NX_SIPHASH_KEY_LEN, dir, dir);
    CHECK_INT(system(cmd), 0);
    const char *names[] = {"ref", "a", "b", "c", "d"};
    for (int i = 0; i < 5; i++)
        key_dir(names[i]);
    write_conf("ref", "ref", ref_out, 0, 0);
    write_conf("a", "cl", cl_out, 1, 0);
    write_conf("b", "cl", cl_out, 1, 0);
    write_conf("c", "cl", cl_out, 1, 0);
    write_conf("d", "cl", cl_out, 1, metrics_port);
    char ref_dump[300], b_dump[300], c_dump[300], d_dump[300];
    snprintf(ref_dump, sizeof ref_dump, "%s/ref.dump", dir);
    snprintf(b_dump, sizeof b_dump, "%s/b.dump", dir);
    snprintf(c_dump, sizeof c_dump, "%s/c.dump", dir);
    snprintf(d_dump, sizeof d_dump, "%s/d.dump", dir);
    commit_zero("ref");
    commit_zero("cl");

    /* (a) A and B share the group; A dies mid-stream */
    pid_t ref = start_daemon("ref", ref_dump);
    int64_t ref_start = mono_ms(), t0 = mono_ms();
    pid_t a = start_daemon("a", NULL);
    pid_t b = start_daemon("b", b_dump);
    int64_t b_start = mono_ms();
    /* mid-stream: once the group has committed a sixth of the input */
    char cl_group[300];
    snprintf(cl_group, sizeof cl_group, "%s-cl", in_topic);
    /* the rest of the input at about 20,000 events/s; A is killed once the
     * group has committed a sixth of it, or at two thirds produced */
    int64_t kill_by = mono_ms() + 120000;
    while (committed_sum(cl_group) < n_events / 6 && produced < 2 * n_events / 3 &&
           mono_ms() < kill_by) {
        produce_more(produced + 2000);
        usleep(100000);
    }
    long long at_kill = committed_sum(cl_group);
    int b_assigned = log_count("b", "assigned 4 partition(s)");
    int b_restored = log_count("b", "restored in");
    CHECK(at_kill < n_events);
    kill(a, SIGKILL);
    int st = 0;
    waitpid(a, &st, 0);
    CHECK(WIFSIGNALED(st));
    fprintf(stderr,
            "kill -9 A %.1f s after the start, %lld of %lld input offsets committed, %lld "
            "produced\n",
            (double)(mono_ms() - t0) / 1000, at_kill, n_events, produced);
    produce_finish();
    /* B owns all four partitions (A's restored from the changelog) before
     * it is stopped: A may have read its own partitions to the end already */
    int64_t own_by = mono_ms() + 120000;
    while (log_count("b", "assigned 4 partition(s)") == b_assigned && mono_ms() < own_by)
        usleep(200000);
    CHECK(log_count("b", "assigned 4 partition(s)") > b_assigned);
    /* and has restored all four: when A had read its partitions to the
     * end, the group's offsets are complete while B still restores them,
     * and a B stopped then would dump none of their users */
    while (log_count("b", "restored in") < b_restored + PARTS && mono_ms() < own_by)
        usleep(200000);
    CHECK(log_count("b", "restored in") >= b_restored + PARTS);
    CHECK_INT(finish("cl", b, b_start), 0);
    fprintf(stderr, "B done %.1f s after the start\n", (double)(mono_ms() - t0) / 1000);
    CHECK_INT(finish("ref", ref, ref_start), 0);
    CHECK(log_count("a", "restored in") >= 1);
    CHECK(log_count("b", "restored in") >= 2); /* A's partitions came to B */

    unsigned char *seen[PARTS];
    for (int p = 0; p < PARTS; p++)
        seen[p] = calloc((size_t)ends[p] + 1, 1);
    long long got, missing = 0, dups = 0;
    read_outputs(cl_out, seen, &got);
    for (int p = 0; p < PARTS; p++)
        for (long long o = 0; o < ends[p]; o++) {
            missing += seen[p][o] == 0;
            dups += seen[p][o] > 1;
        }
    fprintf(stderr,
            "changelog group: %lld predictions for %lld input events, %lld offsets "
            "predicted more than once, %lld missing\n",
            got, n_events, dups, missing);
    CHECK_INT(missing, 0);

    long long users = 0, pending_diff = 0;
    long long diff = compare_dumps(ref_dump, b_dump, 1, &users, &pending_diff);
    fprintf(stderr,
            "reference vs B: %lld users, %lld differing feature-state lines, %lld "
            "pending in one run only (not compared)\n",
            users, diff, pending_diff);
    CHECK(users > 1000);
    /* Whatever the read order made late, every user of every partition is
     * there: a partition B took over with no state anywhere (its owner died
     * before its first flush) is read from its start, and none of its
     * events may be dropped as older than the partitions B read before. */
    long long ref_users[PARTS], b_users[PARTS];
    users_per_part(ref_dump, ref_users);
    users_per_part(b_dump, b_users);
    for (int p = 0; p < PARTS; p++) {
        fprintf(stderr, "partition %d: reference %lld users, B %lld\n", p, ref_users[p],
                b_users[p]);
        CHECK_INT(b_users[p], ref_users[p]);
    }
    long long lates = dump_stat(ref_dump, "late") + dump_stat(b_dump, "late") +
                      dump_stat(ref_dump, "dropped") + dump_stat(b_dump, "dropped");
    if (lates == 0)
        CHECK_INT(diff, 0);
    else
        fprintf(stderr,
                "WARNING: per-user state NOT compared: %lld late/dropped events make it "
                "depend on the partition read order\n",
                lates);

    /* (b) a new instance, state directory wiped: the changelog alone */
    pid_t c = start_daemon("c", c_dump);
    CHECK(wait_restored("c", PARTS));
    usleep(1000 * 1000);
    CHECK_INT(stop(c), 0);
    /* The pending flag apart: the changelog does not carry the order of
     * the expiry list (restored users join it in changelog order), and
     * label expiry stops at the first example the watermark has not
     * reached, so which of the examples it could expire are still pending
     * differs (counted). Pending vectors and scores of users pending in
     * both are compared in the C vs D step. */
    diff = compare_dumps(b_dump, c_dump, 1, &users, &pending_diff);
    fprintf(stderr,
            "B vs C (restored from the changelog alone): %lld users, %lld differing "
            "feature-state lines, %lld pending in one only\n",
            users, diff, pending_diff);
    CHECK(users > 1000);
    CHECK_INT(diff, 0);

    /* (c) garbage in the changelog: counted, skipped */
    produce_garbage();
    pid_t d = start_daemon("d", d_dump);
    CHECK(wait_restored("d", PARTS));
    static char text[1 << 20];
    long long bad = -1, restoring = -1;
    /* the snapshot /metrics serves is republished by the loop every 100
     * ms: right after the log says "restored", a busy machine may still
     * serve one from before the restores began (0 restoring, 0 bad) */
    for (int k = 0; k < 50 && (restoring != 0 || bad < PARTS * GARBAGE_PER_PART); k++) {
        usleep(200000);
        if (nx_scrape_get(metrics_port, "/metrics", text, sizeof text) == 200) {
            bad = nx_scrape_metric(text, "nextactd_changelog_bad_records_total");
            restoring = nx_scrape_metric(text, "nextactd_restore_partitions");
        }
    }
    CHECK_INT(bad, PARTS * GARBAGE_PER_PART);
    CHECK_INT(restoring, 0);
    CHECK_INT(stop(d), 0);
    /* the users' own state must be the same; which labels are still
     * pending depends on how long each daemon ran before its dump (quiet
     * partitions advance the watermark by the wall clock and expire them),
     * so it is left out, as for B and C */
    diff = compare_dumps(c_dump, d_dump, 1, &users, &pending_diff);
    fprintf(stderr, "C vs D (past %lld bad records): %lld users, %lld differing lines\n", bad,
            users, diff);
    CHECK_INT(diff, 0);
    CHECK(log_count("d", "bad record skipped") >= 1);

    for (int p = 0; p < PARTS; p++)
        free(seen[p]);
    if (nx_check_failures) {
        snprintf(cmd, sizeof cmd, "grep -h -E '<[0-4]>' %s/*.log | tail -n 40 1>&2", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        fprintf(stderr, "files kept in %s\n", dir);
    } else {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return nx_check_exit("test_changelog");
}
