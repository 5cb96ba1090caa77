/*
 * test_config: the shipped conf/nextactd.conf loads and documents every key
 * of the table; each kind of bad configuration is refused with FILE:LINE and
 * its reason, and `nextactd --check-config` and `nextactd run` exit 78 on it;
 * pass-through librdkafka properties that would undo the delivery
 * guarantees are refused; --dump-config output loads back to the same
 * configuration.
 *
 * usage: test_config CONF NEXTACTD
 */
#include <libconfig.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static const char *nextactd;

/* The three keys with no default, so each bad case below is valid apart
 * from the one thing it gets wrong. */
#define BASE                                                                                       \
    "kafka: { brokers = \"127.0.0.1:9092\"; input_topics = [\"a\"]; output_topic = \"p\"; };\n"

static char tmpdir[] = "/tmp/nx_test_config.XXXXXX";

static const char *write_conf(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
    return path;
}

static int run_check(const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --check-config '%s' >/dev/null 2>&1", nextactd, path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `nextactd run -c path`: a configuration it refuses stops it before it
 * connects anywhere; one it takes would run, so it is stopped after 20 s
 * (timeout's 124, never 78). */
static int run_daemon(const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "timeout -s KILL 20 '%s' run -c '%s' >/dev/null 2>&1", nextactd,
             path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Loads `text`; expects failure naming `line` and containing `why`. */
static void expect_bad(const char *text, int line, const char *why) {
    char err[1024] = "";
    const char *path = write_conf("bad.conf", text);
    nx_config_t *cfg = nx_config_load(path, err, sizeof err);
    CHECK(cfg == NULL);
    nx_config_destroy(cfg);
    char where[600];
    snprintf(where, sizeof where, "%s:%d: ", path, line);
    CHECK_STR_HAS(err, where);
    CHECK_STR_HAS(err, why);
    CHECK_INT(run_check(path), NX_EXIT_CONFIG);
    CHECK_INT(run_daemon(path), NX_EXIT_CONFIG);
}

/* kafka.<side> = { <prop> }; refused at load naming the property as
 * `shown`, with <why>. */
static void expect_refused(const char *side, const char *prop, const char *shown, const char *why) {
    char text[1024], want[256], err[1024] = "";
    snprintf(text, sizeof text,
             "kafka: { brokers = \"x\"; input_topics = [\"a\"]; output_topic = \"p\";\n"
             "  %s = { %s; }; };\n",
             side, prop);
    snprintf(want, sizeof want, "kafka.%s.\"%s\": refused: ", side, shown);
    expect_bad(text, 2, want);
    nx_config_t *cfg = nx_config_load(write_conf("bad.conf", text), err, sizeof err);
    CHECK_STR_HAS(err, why);
    nx_config_destroy(cfg);
}

/* kafka.<side> = { <prop> }; accepted. */
static void expect_passed(const char *side, const char *prop) {
    char text[1024], err[1024];
    snprintf(text, sizeof text,
             "kafka: { brokers = \"x\"; input_topics = [\"a\"]; output_topic = \"p\";\n"
             "  %s = { %s; }; };\n",
             side, prop);
    nx_config_t *cfg = nx_config_load(write_conf("ok.conf", text), err, sizeof err);
    CHECK(cfg != NULL);
    if (!cfg)
        fprintf(stderr, "%s = { %s; }: %s\n", side, prop, err);
    nx_config_destroy(cfg);
}

/* Pass-through properties that would undo the delivery guarantees, or
 * that the table has a key of its own for. */
static void test_refused(void) {
    expect_refused("consumer", "enable_auto_commit = false", "enable.auto.commit",
                   "commits offsets itself");
    expect_refused("consumer", "auto_commit_enable = true", "auto.commit.enable",
                   "commits offsets itself");
    expect_refused("consumer", "auto_commit_interval_ms = 100", "auto.commit.interval.ms",
                   "kafka.commit_interval_ms");
    expect_refused("consumer", "enable_auto_offset_store = true", "enable.auto.offset.store",
                   "only once the record's prediction is acknowledged");
    expect_refused("consumer", "partition_assignment_strategy = \"range,cooperative-sticky\"",
                   "partition.assignment.strategy", "aborts");
    expect_refused("consumer", "group_id = \"g\"", "group.id", "set kafka.group_id");
    expect_refused("consumer", "bootstrap_servers = \"h:9092\"", "bootstrap.servers",
                   "set kafka.brokers");
    expect_refused("producer", "metadata_broker_list = \"h:9092\"", "metadata.broker.list",
                   "set kafka.brokers");
    expect_refused("consumer", "auto_offset_reset = \"latest\"", "auto.offset.reset",
                   "only earliest");
    expect_refused("consumer", "isolation_level = \"read_uncommitted\"", "isolation.level",
                   "only read_committed");
    expect_refused("consumer", "offset_store_method = \"file\"", "offset.store.method",
                   "consumer group");
    expect_refused("producer", "acks = \"1\"", "acks", "only all (-1)");
    expect_refused("producer", "acks = 0", "acks", "only all (-1)");
    expect_refused("producer", "request_required_acks = 1", "request.required.acks",
                   "only all (-1)");
    expect_refused("producer", "enable_idempotence = false", "enable.idempotence", "only true");
    expect_refused("producer", "max_in_flight = 6", "max.in.flight", "1 to 5 only");
    expect_refused("producer", "retries = 0", "retries", "at least 1");
    expect_refused("producer", "delivery_report_only_error = true", "delivery.report.only.error",
                   "delivery report");
    expect_refused("producer", "transactional_id = \"t\"", "transactional.id",
                   "kafka.transactional");
    /* the same properties set the way nextactd sets them, or harmlessly */
    expect_passed("producer", "acks = \"all\"");
    expect_passed("producer", "acks = -1");
    expect_passed("producer", "enable_idempotence = true");
    expect_passed("producer", "max_in_flight = 5");
    expect_passed("producer", "retries = 3");
    expect_passed("consumer", "auto_offset_reset = \"earliest\"");
    expect_passed("consumer", "isolation_level = \"read_committed\"");
    expect_passed("consumer", "partition_assignment_strategy = \"roundrobin\"");
    /* a producer property on the consumer is ignored by librdkafka */
    expect_passed("consumer", "acks = 1");
}

static void test_shipped(const char *conf) {
    char err[1024] = "";
    nx_config_t *cfg = nx_config_load(conf, err, sizeof err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_INT(run_check(conf), 0);
    /* every key of the table is written in the shipped file */
    config_t c;
    config_init(&c);
    CHECK(config_read_file(&c, conf) == CONFIG_TRUE);
    for (const char *const *k = nx_config_keys(); *k; k++) {
        int found = config_lookup(&c, *k) != NULL;
        if (!found)
            fprintf(stderr, "key %s missing from %s\n", *k, conf);
        CHECK(found);
    }
    config_destroy(&c);
    /* and documented: a comment line right above each leaf */
    CHECK_INT(cfg->event_types.n, 3);
    CHECK_INT(nx_config_type_index(cfg, "purchase"), 2);
    CHECK_INT(cfg->labels.horizon_s, 1800);
    nx_config_destroy(cfg);
}

static void test_dump_roundtrip(const char *conf) {
    char err[1024];
    nx_config_t *a = nx_config_load(conf, err, sizeof err);
    CHECK(a != NULL);
    if (!a)
        return;
    char *t1 = NULL, *t2 = NULL;
    size_t n1, n2;
    FILE *f = open_memstream(&t1, &n1);
    nx_config_dump(a, f, NX_CONFIG_DUMP_COMMENTS | NX_CONFIG_DUMP_SECRETS);
    fclose(f);
    const char *path = write_conf("dumped.conf", t1);
    nx_config_t *b = nx_config_load(path, err, sizeof err);
    CHECK(b != NULL);
    if (b) {
        f = open_memstream(&t2, &n2);
        nx_config_dump(b, f, NX_CONFIG_DUMP_COMMENTS | NX_CONFIG_DUMP_SECRETS);
        fclose(f);
        CHECK(n1 == n2 && memcmp(t1, t2, n1) == 0);
    }
    free(t1);
    free(t2);
    nx_config_destroy(a);
    nx_config_destroy(b);
}

static void test_values(void) {
    char err[1024];
    const char *path =
        write_conf("ok.conf", BASE "features: { max_users = 20000000L; windows_s = [60, 600]; };\n"
                                   "kafka: { };\n");
    /* a duplicate group is a libconfig syntax error */
    nx_config_t *cfg = nx_config_load(path, err, sizeof err);
    CHECK(cfg == NULL);
    nx_config_destroy(cfg);

    path = write_conf(
        "ok.conf",
        "kafka: { brokers = \"b:1\"; input_topics = [\"a\", \"b\"]; output_topic = \"p\";\n"
        "  consumer = { security_protocol = \"plaintext\"; fetch_wait_max_ms = 10; };\n};\n"
        "features: { max_users = 20000000L; windows_s = [60, 600]; };\n"
        "input: { writer_schema = \"my.avsc\"; type_map = { pv = \"click\"; fav = \"\"; }; };\n"
        "model: { hidden = []; lr_floor = 0.25; head_init_scale = 0.0; };\n");
    cfg = nx_config_load(path, err, sizeof err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_INT(cfg->features.max_users, 20000000);
    CHECK_INT(cfg->features.windows_s.n, 2);
    CHECK_INT(cfg->kafka.input_topics.n, 2);
    CHECK_INT(cfg->kafka.consumer.n, 2);
    CHECK_STR_HAS(cfg->kafka.consumer.key[0], "security.protocol");
    CHECK_STR_HAS(cfg->kafka.consumer.key[1], "fetch.wait.max.ms");
    CHECK_STR_HAS(cfg->kafka.consumer.val[1], "10");
    CHECK_INT(cfg->input.type_map.n, 2);
    CHECK_INT(cfg->model.hidden.n, 0); /* [] is a linear model, not the default [64, 32] */
    CHECK(cfg->model.lr_floor == 0.25);
    CHECK(cfg->model.head_init_scale == 0.0);
    /* relative paths resolve against the file's directory */
    char want[600];
    snprintf(want, sizeof want, "%s/my.avsc", tmpdir);
    CHECK_STR_HAS(cfg->input.writer_schema, want);
    nx_config_destroy(cfg);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_config CONF NEXTACTD\n");
        return 2;
    }
    nextactd = argv[2];
    if (!mkdtemp(tmpdir))
        return 2;

    test_shipped(argv[1]);
    test_dump_roundtrip(argv[1]);
    test_values();

    /* syntax error */
    expect_bad(BASE "model: { hidden = = [64, 32]; };\n", 2, "syntax error");
    /* unknown key, with what the group allows */
    expect_bad(BASE "model:\n{\n  hiden = [64];\n};\n", 4, "unknown key 'model.hiden'");
    expect_bad(BASE "model: { hiden = [64]; };\n", 2, "allowed in group 'model'");
    expect_bad(BASE "colour = \"blue\";\n", 2, "unknown key 'colour'");
    /* wrong type */
    expect_bad(BASE "labels: { horizon_s = \"30m\"; };\n", 2, "must be an integer, not a string");
    expect_bad(BASE "model: { enabled = 1; };\n", 2, "must be true or false");
    expect_bad(BASE "model: { hidden = [64, \"x\"]; };\n", 2, "syntax error"); /* mixed array */
    expect_bad(BASE "event_types = \"click\";\n", 2, "must be an array of strings");
    /* out of range */
    expect_bad(BASE "model: { learning_rate = -0.1; };\n", 2, "out of range; allowed");
    expect_bad(BASE "model: { batch_size = 0; };\n", 2, "model.batch_size = 0 is out of range");
    expect_bad(BASE "features: { windows_s = [300, 0, 86400]; };\n", 2, "out of range");
    expect_bad(BASE "features: { windows_s = []; };\n", 2, "has 0 windows; 1 to 4 allowed");
    expect_bad(BASE "model: { activation = \"gelu\"; };\n", 2, "one of relu|tanh|sigmoid");
    expect_bad(BASE "model: { learning_rate = 1e400; };\n", 2, "out of range");
    /* the floor is a share of learning_rate, so it can never exceed it */
    expect_bad(BASE "model: { lr_floor = 1.5; };\n", 2, "model.lr_floor = 1.5 is out of range");
    expect_bad(BASE "model: { head_init_scale = -0.1; };\n", 2, "out of range");
    /* libconfig's 32-bit wrap is caught, not read as a negative number */
    expect_bad(BASE "features: { max_users = 3000000000; };\n", 2,
               "does not fit libconfig's 32-bit");
    expect_bad(BASE "features: { max_users = 3000000000L; };\n", 2,
               "out of range; allowed 1 to 1000000000");
    expect_bad(BASE "model: { seed = 99999999999999999999L; };\n", 2, "does not fit 64 bits");
    /* missing required key */
    expect_bad("kafka: { brokers = \"x\"; output_topic = \"p\"; };\n", 0,
               "missing required key 'kafka.input_topics'");
    /* unknown or invalid librdkafka property, as librdkafka says */
    expect_bad("kafka: { brokers = \"x\"; input_topics = [\"a\"]; output_topic = \"p\";\n"
               "  producer = { no_such_property = \"x\"; }; };\n",
               2, "librdkafka refuses");
    expect_bad("kafka: { brokers = \"x\"; input_topics = [\"a\"]; output_topic = \"p\";\n"
               "  consumer = { session_timeout_ms = \"soon\"; }; };\n",
               2, "session.timeout.ms");
    /* cross-key checks */
    expect_bad(BASE "features: { windows_s = [60, 300, 3600, 86400, 604800]; };\n", 2,
               "5 windows; 1 to 4 allowed");
    expect_bad(BASE "input: { type_map = { pv = \"clik\"; }; };\n", 2, "is not an event type");
    expect_bad(BASE "event_types = [\"click\", \"click\"];\n", 2, "names \"click\" twice");
    expect_bad(BASE "model: { class_weights = [1.0, 2.0]; };\n", 2, "give none or 4");
    /* exactly-once needs the state in Kafka, and says so */
    expect_bad("kafka: { brokers = \"x\"; input_topics = [\"a\"]; output_topic = \"p\";\n"
               "  transactional = true; };\n",
               2, "needs state.changelog");
    {
        char err[1024] = "";
        const char *path = write_conf("txn.conf", "kafka: { brokers = \"x\"; input_topics = "
                                                  "[\"a\"]; output_topic = \"p\";\n"
                                                  "  transactional = true; "
                                                  "transaction_interval_ms = 50; };\n"
                                                  "state: { changelog = \"s\"; };\n");
        nx_config_t *cfg = nx_config_load(path, err, sizeof err);
        CHECK(cfg != NULL);
        if (!cfg)
            fprintf(stderr, "%s\n", err);
        CHECK(cfg && cfg->kafka.transactional && cfg->kafka.transaction_interval_ms == 50 &&
              cfg->kafka.transaction_max_events == 50000);
        nx_config_destroy(cfg);
    }
    expect_bad("kafka: { brokers = \"x\"; input_topics = [\"a\"]; output_topic = \"p\";\n"
               "  transaction_interval_ms = 5; };\n",
               2, "transaction_interval_ms");

    test_refused();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return nx_check_exit("test_config");
}
