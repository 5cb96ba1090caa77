/*
 * test_config_preflight: every configuration problem that would stop a
 * start makes both `nextactd run -c CONF` and `nextactd --check-config
 * CONF` exit 78, with a message naming the key, the file and the reason.
 *
 * Each case is conf/nextactd.conf with its paths made absolute, a state
 * directory of its own under a temporary directory, brokers that nothing
 * listens on (a run that got past its configuration would be stopped after
 * 20 s and counted as a failure; none needs a broker), and one thing
 * wrong. The valid base passes, and checking it creates nothing.
 *
 * usage: test_config_preflight NEXTACTD SOURCE_DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "preflight.h"

static const char *nextactd, *src;
static char tmpdir[] = "/tmp/nx_test_preflight.XXXXXX";
static char *shipped; /* conf/nextactd.conf */
static int n_case;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void spit(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

/* Replaces every occurrence of `from` in *text by `to`. */
static void replace_all(char **text, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = *text; (p = strstr(p, from)) != NULL; p += fl)
        n++;
    char *out = malloc(strlen(*text) + n * tl + 1), *o = out;
    const char *p = *text, *q;
    while ((q = strstr(p, from)) != NULL) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    strcpy(o, p);
    free(*text);
    *text = out;
}

/* Sets the one line "<indent>leaf = ...;" of the file to "leaf = value;".
 * "group.leaf" looks only inside the top-level group (features.price is
 * not input.fields.price). */
static void set_leaf(char **text, const char *name, const char *value) {
    const char *leaf = name, *from = *text, *to = NULL;
    const char *dot = strchr(name, '.');
    if (dot) {
        char head[64];
        snprintf(head, sizeof head, "\n%.*s:\n", (int)(dot - name), name);
        leaf = dot + 1;
        from = strstr(*text, head);
        to = from ? strstr(from, "\n};") : NULL;
    }
    size_t ll = strlen(leaf);
    char *hit = NULL;
    int hits = 0;
    for (char *line = from ? strchr(from, '\n') : NULL; line && (!to || line < to);
         line = strchr(line + 1, '\n')) {
        char *p = line + 1;
        while (*p == ' ')
            p++;
        if (strncmp(p, leaf, ll) == 0 && strncmp(p + ll, " = ", 3) == 0) {
            hit = p;
            hits++;
        }
    }
    if (hits != 1) {
        fprintf(stderr, "set_leaf %s: %d lines\n", name, hits);
        abort();
    }
    size_t at = (size_t)(hit - *text), end = at + strcspn(hit, "\n");
    char repl[4096];
    snprintf(repl, sizeof repl, "%s = %s;", leaf, value);
    char *out = malloc(strlen(*text) + strlen(repl) + 1);
    memcpy(out, *text, at);
    strcpy(out + at, repl);
    strcat(out, *text + end);
    free(*text);
    *text = out;
}

/* A case: its directory, and the base configuration for it. */
typedef struct tcase {
    char dir[512];
    char state[600];
    char conf[600];
    char *text;
} tcase_t;

static void case_begin(tcase_t *c) {
    snprintf(c->dir, sizeof c->dir, "%s/c%02d", tmpdir, ++n_case);
    if (mkdir(c->dir, 0700) < 0)
        abort();
    snprintf(c->state, sizeof c->state, "%s/state", c->dir);
    snprintf(c->conf, sizeof c->conf, "%s/nextactd.conf", c->dir);
    c->text = strdup(shipped);
    char schemas[600], value[700];
    snprintf(schemas, sizeof schemas, "\"%s/conf/schemas/", src);
    replace_all(&c->text, "\"schemas/", schemas);
    snprintf(value, sizeof value, "\"%s\"", c->state);
    set_leaf(&c->text, "state_dir", value);
    set_leaf(&c->text, "brokers", "\"127.0.0.1:1\"");
    set_leaf(&c->text, "listen", "\"\"");
}

/* c->dir/name, for files a case makes. */
static const char *in_case(const tcase_t *c, const char *name) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    return path;
}

static void set_path(tcase_t *c, const char *leaf, const char *path) {
    char value[800];
    snprintf(value, sizeof value, "\"%s\"", path);
    set_leaf(&c->text, leaf, value);
}

/* Runs cmd with stderr to c->dir/err; its exit status, -1 if killed. */
static int run(const tcase_t *c, const char *args, char *out, size_t out_size) {
    char cmd[2048], errpath[700];
    snprintf(errpath, sizeof errpath, "%s/err", c->dir);
    snprintf(cmd, sizeof cmd, "timeout -s KILL 20 '%s' %s '%s' >/dev/null 2>'%s'", nextactd, args,
             c->conf, errpath);
    int st = system(cmd);
    char *text = slurp(errpath);
    snprintf(out, out_size, "%s", text ? text : "");
    free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Writes the case's configuration; both commands exit 78 and
 * --check-config says each of the `n` expected strings. */
static void expect_refused(tcase_t *c, int n, ...) {
    char out[8192];
    spit(c->conf, c->text);
    CHECK_INT(run(c, "--check-config", out, sizeof out), NX_EXIT_CONFIG);
    fprintf(stderr, "case %d: %s", n_case, out);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        CHECK_STR_HAS(out, va_arg(ap, const char *));
    va_end(ap);
    CHECK_STR_HAS(out, c->conf); /* which file */
    CHECK_INT(run(c, "run -c", out, sizeof out), NX_EXIT_CONFIG);
    free(c->text);
}

static void expect_ok(tcase_t *c) {
    char out[8192];
    spit(c->conf, c->text);
    CHECK_INT(run(c, "--check-config", out, sizeof out), 0);
    if (out[0])
        fprintf(stderr, "case %d: %s", n_case, out);
    free(c->text);
}

static void make_key(const tcase_t *c, int len, mode_t mode) {
    char path[700];
    if (mkdir(c->state, 0700) < 0)
        abort();
    snprintf(path, sizeof path, "%s/user-hash.key", c->state);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    char key[64] = "0123456789abcdef0123456789abcdef";
    if (fd < 0 || write(fd, key, (size_t)len) != len || fchmod(fd, mode) < 0 || close(fd) < 0)
        abort();
}

static void test_valid(void) {
    tcase_t c;
    case_begin(&c);
    spit(c.conf, c.text);
    char err[4096];
    nx_config_t *cfg = nx_config_load(c.conf, err, sizeof err);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_INT(nx_preflight_check(cfg, err, sizeof err), 0);
        if (err[0])
            fprintf(stderr, "valid base: %s\n", err);
        /* the check created nothing: the state directory is made at start */
        struct stat st;
        CHECK(stat(c.state, &st) < 0 && errno == ENOENT);
    }
    nx_config_destroy(cfg);
    expect_ok(&c);

    /* JSON output needs no schema file */
    case_begin(&c);
    set_leaf(&c.text, "format", "\"json\"");
    set_leaf(&c.text, "schema", "\"\"");
    expect_ok(&c);
}

static void test_schemas(void) {
    tcase_t c;
    case_begin(&c);
    set_path(&c, "writer_schema", in_case(&c, "missing.avsc"));
    expect_refused(&c, 2, "input.writer_schema: ", "missing.avsc: No such file or directory");

    case_begin(&c);
    set_path(&c, "writer_schema", c.dir); /* a directory: read fails */
    expect_refused(&c, 2, "input.writer_schema: ", "Is a directory");

    if (geteuid() != 0) { /* root reads any file */
        case_begin(&c);
        spit(in_case(&c, "e.avsc"), "{\"type\": \"record\", \"name\": \"e\", \"fields\": []}");
        chmod(in_case(&c, "e.avsc"), 0);
        set_path(&c, "writer_schema", in_case(&c, "e.avsc"));
        expect_refused(&c, 2, "input.writer_schema: ", "Permission denied");
    }

    case_begin(&c);
    spit(in_case(&c, "bad.avsc"), "{\"type\": \"record\", \"name\": \"e\", \"fields\": [");
    set_path(&c, "writer_schema", in_case(&c, "bad.avsc"));
    expect_refused(&c, 2, "input.writer_schema: ", "bad.avsc: not an Avro schema");

    case_begin(&c);
    spit(in_case(&c, "str.avsc"), "\"string\"");
    set_path(&c, "writer_schema", in_case(&c, "str.avsc"));
    expect_refused(&c, 2, "input.writer_schema: ", "not an Avro record schema");

    /* Avro, but not what the field mapping needs (the decoder says so) */
    case_begin(&c);
    spit(in_case(&c, "nouser.avsc"),
         "{\"type\": \"record\", \"name\": \"e\", \"fields\": [{\"name\": \"ts\", \"type\": "
         "\"long\"}, {\"name\": \"event_type\", \"type\": \"string\"}]}");
    set_path(&c, "writer_schema", in_case(&c, "nouser.avsc"));
    expect_refused(&c, 2, "input.writer_schema: ", "has no field \"user_id\"");

    case_begin(&c);
    set_path(&c, "schema", in_case(&c, "missing.avsc"));
    expect_refused(&c, 2, "output.schema: ", "No such file or directory");

    case_begin(&c);
    spit(in_case(&c, "bad.avsc"), "not json");
    set_path(&c, "schema", in_case(&c, "bad.avsc"));
    expect_refused(&c, 2, "output.schema: ", "not an Avro schema");

    case_begin(&c);
    set_leaf(&c.text, "schema", "\"\"");
    expect_refused(&c, 1, "output.schema: required");

    /* Confluent framing: the registry directory and its schemas */
    case_begin(&c);
    set_leaf(&c.text, "framing", "\"confluent\"");
    set_path(&c, "schema_dir", in_case(&c, "registry"));
    expect_refused(&c, 2, "input.schema_dir: ", "registry: No such file or directory");

    case_begin(&c);
    set_leaf(&c.text, "framing", "\"confluent\"");
    mkdir(in_case(&c, "registry"), 0700);
    spit(in_case(&c, "registry/7.avsc"), "{");
    set_path(&c, "schema_dir", in_case(&c, "registry"));
    expect_refused(&c, 2, "input.schema_dir: ", "7.avsc: not an Avro schema");
}

static void test_state(void) {
    tcase_t c;
    case_begin(&c);
    spit(c.state, "a file, not a directory\n");
    expect_refused(&c, 2, "state_dir: ", "state: Not a directory");

    case_begin(&c);
    set_path(&c, "state_dir", in_case(&c, "no/such/state"));
    expect_refused(&c, 2, "state_dir: ", "cannot be created");

    case_begin(&c);
    make_key(&c, 16, 0644);
    expect_refused(&c, 2, "state_dir: ", "user-hash.key: mode 0644");

    case_begin(&c);
    make_key(&c, 8, 0600);
    expect_refused(&c, 2, "state_dir: ", "user-hash.key: 8 bytes");

    case_begin(&c);
    spit(in_case(&c, "ck"), "a file\n");
    set_path(&c, "dir", in_case(&c, "ck"));
    expect_refused(&c, 2, "checkpoint.dir: ", "ck: Not a directory");

    case_begin(&c);
    spit(in_case(&c, "file"), "a file\n");
    set_path(&c, "dir", in_case(&c, "file/ck"));
    expect_refused(&c, 2, "checkpoint.dir: ", "Not a directory");
}

static void test_other(void) {
    tcase_t c;
    case_begin(&c);
    set_leaf(&c.text, "listen", "\"127.0.0.1:70000\"");
    expect_refused(&c, 2, "metrics.listen: ", "1..65535");

    case_begin(&c);
    set_leaf(&c.text, "listen", "\"localhost:9464\"");
    expect_refused(&c, 2, "metrics.listen: ", "not an IPv4 address");

    /* TEST-NET-1 (RFC 5737): an address no host here has */
    case_begin(&c);
    set_leaf(&c.text, "listen", "\"192.0.2.1:9464\"");
    expect_refused(&c, 2, "metrics.listen: ", "not an address of this host");

    /* the pipeline's own checks */
    case_begin(&c);
    static const char *families[] = {"counts",   "value", "recency", "session",
                                     "revisits", "event", "time",    "price"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "features.%s", families[i]);
        set_leaf(&c.text, name, "false");
    }
    expect_refused(&c, 1, "every family is switched off");

    /* librdkafka: a file it would open, a combination it would refuse */
    case_begin(&c);
    char value[800];
    snprintf(value, sizeof value, "{ security_protocol = \"ssl\"; ssl_ca_location = \"%s\"; }",
             in_case(&c, "ca.pem"));
    set_leaf(&c.text, "consumer", value);
    expect_refused(&c, 2,
                   "kafka.consumer.\"ssl.ca.location\": ", "ca.pem: No such file or directory");

    case_begin(&c);
    set_leaf(&c.text, "consumer", "{ fetch_max_bytes = 1000; }");
    expect_refused(&c, 2, "kafka.consumer: librdkafka refuses the consumer configuration",
                   "fetch.max.bytes");

    /* several problems: all of them, one per line */
    case_begin(&c);
    set_path(&c, "writer_schema", in_case(&c, "missing.avsc"));
    set_leaf(&c.text, "listen", "\"127.0.0.1:0\"");
    spit(in_case(&c, "ck"), "a file\n");
    set_path(&c, "dir", in_case(&c, "ck"));
    expect_refused(&c, 3, "input.writer_schema: ", "\n", "metrics.listen: ");
    char out[8192];
    run(&c, "--check-config", out, sizeof out);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    CHECK_INT(lines, 3);
    CHECK_STR_HAS(out, "checkpoint.dir: ");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_config_preflight NEXTACTD SOURCE_DIR\n");
        return 2;
    }
    nextactd = argv[1];
    src = argv[2];
    char path[600];
    snprintf(path, sizeof path, "%s/conf/nextactd.conf", src);
    if (!mkdtemp(tmpdir) || !(shipped = slurp(path)))
        return 2;

    test_valid();
    test_schemas();
    test_state();
    test_other();

    free(shipped);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return nx_check_exit("test_config_preflight");
}
