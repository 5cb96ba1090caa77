/*
 * test_config: the shipped conf/nextactd.conf loads and documents every key
 * of the table; each kind of bad configuration is refused with FILE:LINE and
 * its reason, and `nextactd --check-config` exits 78 on it; --dump-config
 * output loads back to the same configuration.
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
    nx_config_dump(a, f, 1);
    fclose(f);
    const char *path = write_conf("dumped.conf", t1);
    nx_config_t *b = nx_config_load(path, err, sizeof err);
    CHECK(b != NULL);
    if (b) {
        f = open_memstream(&t2, &n2);
        nx_config_dump(b, f, 1);
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
    expect_bad("kafka: { brokers = \"x\"; input_topics = [\"a\"]; output_topic = \"p\";\n"
               "  transactional = true; };\n",
               2, "not implemented yet");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return nx_check_exit("test_config");
}
