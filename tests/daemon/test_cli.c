/*
 * test_cli: nextactd's command line. `-X key=value` overrides of every kind
 * of key reach the loaded configuration (and survive a reload); bad ones
 * are refused by every command that loads a configuration with exit 78 and
 * "-X key=value: why"; every sub-command answers --help (and `nextactd help
 * COMMAND`) on stdout with exit 0 and describes each of its long options.
 *
 * usage: test_cli NEXTACTD
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static const char *nextactd;
static char tmpdir[] = "/tmp/nx_test_cli.XXXXXX";

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

/* Runs a shell command; its exit status, and its stdout (2>&1 when asked)
 * in out. */
static int run(const char *cmd, char *out, size_t size) {
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    while (fgetc(p) != EOF) /* drain, so the child does not block */
        ;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The file sets two consumer properties; the overrides change one kind of
 * key each. */
static void test_overrides(void) {
    char err[1024];
    const char *path = write_conf(
        "x.conf", "kafka: { input_topics = [\"a\"]; output_topic = \"p\";\n"
                  "  consumer = { security_protocol = \"plaintext\"; fetch_wait_max_ms = 10; };\n"
                  "};\nmodel: { hidden = [64]; };\n");
    const char *x[] = {
        "kafka.brokers=127.0.0.1:9092", /* a required key, unquoted string */
        "kafka.group_id = \"g 1\"",     /* quoted, spaces around = */
        "checkpoint.interval_s=10",     /* integer */
        "model.learning_rate=0.5",      /* double */
        "model.hidden=[32, 16]",        /* integer list, replacing the file's */
        "features.counts=false",        /* boolean */
        "log_level=debug",              /* enum */
        "input.writer_schema=rel.avsc", /* path: relative to the working directory */
        "model.class_weights=[1.0, 2.0, 3.0, 4.0]",
        "event_types=[\"click\", \"cart\", \"purchase\"]",
        "kafka.consumer.fetch_wait_max_ms=5",     /* replaces the file's entry */
        "kafka.consumer.socket.timeout.ms=30000", /* librdkafka's own dotted spelling */
        "kafka.producer.linger_ms=7",
        "input.type_map.pv=click",
        "checkpoint.interval_s=20", /* the later one wins */
    };
    int n = (int)(sizeof x / sizeof x[0]);
    nx_config_t *cfg = nx_config_load_ex(path, x, n, err, sizeof err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_STR_HAS(cfg->kafka.brokers, "127.0.0.1:9092");
    CHECK(strcmp(cfg->kafka.group_id, "g 1") == 0);
    CHECK_INT(cfg->checkpoint.interval_s, 20);
    CHECK(cfg->model.learning_rate == 0.5);
    CHECK_INT(cfg->model.hidden.n, 2);
    CHECK_INT(cfg->model.hidden.v[0], 32);
    CHECK_INT(cfg->model.hidden.v[1], 16);
    CHECK_INT(cfg->features.counts, 0);
    CHECK(strcmp(cfg->log_level, "debug") == 0);
    CHECK(strcmp(cfg->input.writer_schema, "rel.avsc") == 0);
    CHECK_INT(cfg->model.class_weights.n, 4);
    CHECK(cfg->model.class_weights.v[3] == 4.0);
    CHECK_INT(cfg->event_types.n, 3);
    CHECK_INT(cfg->kafka.consumer.n, 3);
    CHECK(strcmp(cfg->kafka.consumer.key[0], "security.protocol") == 0);
    CHECK(strcmp(cfg->kafka.consumer.key[1], "fetch.wait.max.ms") == 0);
    CHECK(strcmp(cfg->kafka.consumer.val[1], "5") == 0);
    CHECK(strcmp(cfg->kafka.consumer.key[2], "socket.timeout.ms") == 0);
    CHECK_INT(cfg->kafka.producer.n, 1);
    CHECK(strcmp(cfg->kafka.producer.key[0], "linger.ms") == 0);
    CHECK(strcmp(cfg->kafka.producer.val[0], "7") == 0);
    int pv = -1;
    for (int i = 0; i < cfg->input.type_map.n; i++)
        if (strcmp(cfg->input.type_map.key[i], "pv") == 0)
            pv = i;
    CHECK(pv >= 0 && strcmp(cfg->input.type_map.val[pv], "click") == 0);
    CHECK_INT(cfg->n_overrides, n);

    /* SIGHUP's reload reads the file again under the same overrides */
    nx_config_t *again = nx_config_reload(cfg, err, sizeof err);
    CHECK(again != NULL);
    if (again) {
        CHECK_INT(again->checkpoint.interval_s, 20);
        CHECK_INT(again->model.hidden.n, 2);
        CHECK_INT(again->kafka.consumer.n, 3);
    }
    nx_config_destroy(again);
    nx_config_destroy(cfg);

    /* without the -X, the file lacks a required key */
    cfg = nx_config_load_ex(path, NULL, 0, err, sizeof err);
    CHECK(cfg == NULL);
    CHECK_STR_HAS(err, "missing required key 'kafka.brokers'");
    nx_config_destroy(cfg);

    /* without a file: the defaults, overridden */
    const char *one[] = {"model.hidden=[8]"};
    cfg = nx_config_load_ex(NULL, one, 1, err, sizeof err);
    CHECK(cfg != NULL && cfg->model.hidden.n == 1 && cfg->model.hidden.v[0] == 8);
    nx_config_destroy(cfg);
}

/* A bad -X: refused by the loader with "-X arg: why", and by each command
 * that loads a configuration with exit 78, naming the key. */
static void expect_bad(const char *arg, const char *why) {
    char err[1024] = "", want[600], out[8192];
    const char *conf = write_conf("ok.conf", "kafka: { brokers = \"127.0.0.1:9\"; input_topics = "
                                             "[\"a\"]; output_topic = \"p\"; };\n");
    nx_config_t *cfg = nx_config_load_ex(conf, &arg, 1, err, sizeof err);
    CHECK(cfg == NULL);
    nx_config_destroy(cfg);
    snprintf(want, sizeof want, "-X %s: ", arg);
    CHECK_STR_HAS(err, want);
    CHECK_STR_HAS(err, why);

    static const char *forms[] = {
        "check-config '%s'",        "dump-config -c '%s'", "features -c '%s'",
        "--check-config '%s'",      "run -c '%s'",         "demo --seconds 1 -c '%s'",
        "replay -c '%s' /dev/null",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char form[256], cmd[2048];
        snprintf(form, sizeof form, forms[i], conf);
        snprintf(cmd, sizeof cmd, "timeout -s KILL 20 '%s' %s -X '%s' 2>&1", nextactd, form, arg);
        int rc = run(cmd, out, sizeof out);
        CHECK_INT(rc, NX_EXIT_CONFIG);
        CHECK_STR_HAS(out, want);
        if (rc != NX_EXIT_CONFIG)
            fprintf(stderr, "  (%s)\n", cmd);
    }
}

/* A good -X reaches what each command prints. */
static void test_commands(void) {
    char cmd[2048], out[65536], conf[512];
    snprintf(conf, sizeof conf, "%s",
             write_conf("ok.conf", "kafka: { brokers = \"127.0.0.1:9\"; input_topics = "
                                   "[\"a\"]; output_topic = \"p\"; };\n"));
    snprintf(cmd, sizeof cmd, "'%s' dump-config -c '%s' -X model.hidden=[7] 2>&1", nextactd, conf);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    CHECK_STR_HAS(out, "hidden = [7];");
    snprintf(cmd, sizeof cmd, "'%s' --dump-config -X checkpoint.keep=9 2>&1", nextactd);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    CHECK_STR_HAS(out, "keep = 9;");
    /* -X supplies the file's missing required key */
    const char *nobrokers =
        write_conf("nb.conf", "kafka: { input_topics = [\"a\"]; output_topic = \"p\"; };\n");
    snprintf(cmd, sizeof cmd, "'%s' dump-config -c '%s' -X kafka.brokers=h:1 2>&1", nextactd,
             nobrokers);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    CHECK_STR_HAS(out, "brokers = \"h:1\";");
    /* secrets are masked unless asked for; unset ones stay "" */
    snprintf(cmd, sizeof cmd,
             "'%s' dump-config -c '%s' -X kafka.consumer.sasl_password=hunter2 "
             "-X input.schema_registry.basic_auth_user_info=u:pw7 2>&1",
             nextactd, conf);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "hunter2") == NULL && strstr(out, "pw7") == NULL);
    CHECK_STR_HAS(out, "sasl_password = \"" NX_CONFIG_MASK "\";");
    CHECK_STR_HAS(out, "basic_auth_user_info = \"" NX_CONFIG_MASK "\";");
    CHECK_STR_HAS(out, "key_password = \"\";");
    snprintf(cmd, sizeof cmd,
             "'%s' dump-config --show-secrets -c '%s' -X kafka.consumer.sasl_password=hunter2 2>&1",
             nextactd, conf);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    CHECK_STR_HAS(out, "sasl_password = \"hunter2\";");
    snprintf(cmd, sizeof cmd, "'%s' features -c '%s' -X features.counts=false 2>&1", nextactd,
             conf);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    char with[65536];
    snprintf(cmd, sizeof cmd, "'%s' features -c '%s' 2>&1", nextactd, conf);
    CHECK_INT(run(cmd, with, sizeof with), 0);
    CHECK(strlen(out) < strlen(with)); /* fewer features without the counts family */
    snprintf(cmd, sizeof cmd, "'%s' man-config 2>&1", nextactd);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    CHECK_STR_HAS(out, ".TH NEXTACTD.CONF 5");
}

/* Each sub-command's long options, which its --help must describe. */
static const struct {
    const char *argv;
    const char *longopts; /* space-separated */
} helps[] = {
    {"run", "--config --start-afresh --help -X"},
    {"demo", "--seconds --rate --users --config --help -X"},
    {"replay", "--config --output --summary --metrics-every --metrics-csv --checkpoint --codec "
               "--help -X"},
    {"gen", "--events --users --seed --horizon --truth --bad-rate --output --topic --rate "
            "--brokers --schema --items --categories --start --jitter --report --null --help "
            "--config --codec"},
    {"check-config", "--help -X"},
    {"dump-config", "--config --comments --show-secrets --help -X"},
    {"features", "--config --help -X"},
    {"man-config", "--help"},
    {"", "--help --version"},
};

static void test_help(void) {
    char cmd[512], out[16384];
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' %s --help 2>/dev/null", nextactd, helps[i].argv);
        CHECK_INT(run(cmd, out, sizeof out), 0);
        char opts[512];
        snprintf(opts, sizeof opts, "%s", helps[i].longopts);
        for (char *save = NULL, *o = strtok_r(opts, " ", &save); o;
             o = strtok_r(NULL, " ", &save)) {
            /* as a word: --rate must not pass on --bad-rate alone */
            char word[64];
            snprintf(word, sizeof word, " %s", o);
            CHECK_STR_HAS(out, word);
        }
    }
    /* `help COMMAND` is COMMAND --help; `help` and --help the usage; `help`
     * of what is no command is a bad command line */
    char want[16384];
    snprintf(cmd, sizeof cmd, "'%s' dump-config --help", nextactd);
    CHECK_INT(run(cmd, want, sizeof want), 0);
    snprintf(cmd, sizeof cmd, "'%s' help dump-config", nextactd);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    CHECK_STR_HAS(out, "usage: nextactd dump-config ");
    CHECK(strcmp(out, want) == 0);
    snprintf(cmd, sizeof cmd, "'%s' help bogus 2>/dev/null", nextactd);
    CHECK_INT(run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' help", nextactd);
    CHECK_INT(run(cmd, want, sizeof want), 0);
    /* the top-level usage names every sub-command */
    snprintf(cmd, sizeof cmd, "'%s' --help", nextactd);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    CHECK(strcmp(out, want) == 0);
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
        if (helps[i].argv[0]) {
            char word[64];
            snprintf(word, sizeof word, "  %s ", helps[i].argv);
            CHECK_STR_HAS(out, word);
        }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_cli NEXTACTD\n");
        return 2;
    }
    nextactd = argv[1];
    if (!mkdtemp(tmpdir))
        return 2;

    test_overrides();
    test_commands();
    test_help();

    expect_bad("model.hidden=[32", "write numbers as");
    expect_bad("model.hidden=[0]", "model.hidden = 0 is out of range");
    expect_bad("model.hidden=32", "must be an array of integers");
    expect_bad("model.hiden=[32]", "unknown key 'model.hiden'");
    expect_bad("colour=blue", "unknown key 'colour'");
    expect_bad("checkpoint.interval_s=ten", "write numbers as");
    expect_bad("checkpoint.interval_s=999999", "out of range");
    expect_bad("features.counts=1", "must be true or false");
    expect_bad("log_level=loud", "one of error|warning");
    expect_bad("kafka.consumer.enable_auto_commit=true", "refused");
    expect_bad("kafka.consumer.no_such_property=1", "librdkafka refuses");
    expect_bad("model.hidden", "expected key=value");
    expect_bad("=5", "expected key=value");
    expect_bad("model..hidden=[1]", "is not a key");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return nx_check_exit("test_cli");
}
