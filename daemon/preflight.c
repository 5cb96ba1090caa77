/* preflight.c: configuration checks before a start (preflight.h). */
#include "preflight.h"

#include <avro.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "http.h"
#include "pipeline.h"
#include "siphash.h"

/* The problems found so far, one line each, into the caller's errstr. */
typedef struct report {
    const char *conf; /* the configuration file, first on every line */
    char *buf;
    size_t size, len;
    int n;
} report_t;

static void add(report_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(report_t *r, const char *fmt, ...) {
    r->n++;
    if (!r->size || r->len + 1 >= r->size)
        return; /* full: the first ones are there */
    int n = snprintf(r->buf + r->len, r->size - r->len, "%s%s: ", r->len ? "\n" : "", r->conf);
    if (n > 0)
        r->len += (size_t)n;
    if (r->len >= r->size) {
        r->len = r->size - 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(r->buf + r->len, r->size - r->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->len += (size_t)n;
    if (r->len >= r->size)
        r->len = r->size - 1;
}

/* ---- files and directories ---------------------------------------------- */

/* Reads a schema file named by `key` and parses it as an Avro record. */
static int check_schema(report_t *r, const char *key, const char *path) {
    int fd = -1, rc = -1;
    char *json = NULL;
    avro_schema_t schema = NULL;
    struct stat st;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        add(r, "%s: %s: %s", key, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        add(r, "%s: %s: %s", key, path,
            S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file");
        goto out;
    }
    if (st.st_size > NX_CODEC_SCHEMA_FILE_MAX) {
        add(r, "%s: %s: %lld bytes; a schema file holds at most %d", key, path,
            (long long)st.st_size, NX_CODEC_SCHEMA_FILE_MAX);
        goto out;
    }
    size_t len = (size_t)st.st_size, got = 0;
    if (!(json = malloc(len + 1))) {
        add(r, "%s: %s: out of memory", key, path);
        goto out;
    }
    while (got < len) {
        ssize_t n = read(fd, json + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            add(r, "%s: %s: %s", key, path, n < 0 ? strerror(errno) : "shorter than its size");
            goto out;
        }
        got += (size_t)n;
    }
    json[len] = '\0';
    if (avro_schema_from_json_length(json, len, &schema) != 0) {
        add(r, "%s: %s: not an Avro schema: %s", key, path, avro_strerror());
        goto out;
    }
    if (avro_typeof(schema) != AVRO_RECORD) {
        add(r, "%s: %s: not an Avro record schema", key, path);
        goto out;
    }
    rc = 0;
out:
    if (schema)
        avro_schema_decref(schema);
    free(json);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Confluent framing: the directory of <id>.avsc files and each of them.
 * With a Schema Registry the directory is only a fallback: it may be
 * absent (with_registry), but the files it holds must be sound. */
static int check_schema_dir(report_t *r, const char *dir, int with_registry) {
    DIR *d = opendir(dir);
    if (!d && with_registry && errno == ENOENT)
        return 0;
    if (!d) {
        add(r, "input.schema_dir: %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t digits = strspn(de->d_name, "0123456789");
        if (digits == 0 || strcmp(de->d_name + digits, ".avsc") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        rc |= check_schema(r, "input.schema_dir", path);
    }
    closedir(d);
    return rc;
}

/* The directory that holds p (p is cut in place): "a/b/" -> "a", "/a" ->
 * "/", "a" -> ".". */
static void parent_of(char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    char *slash = strrchr(p, '/');
    if (!slash)
        strcpy(p, ".");
    else if (slash == p)
        p[1] = '\0';
    else
        *slash = '\0';
}

/* A directory nextactd writes into: if it exists, a directory it may write
 * to; if not, the directory that would hold it must be one. mkdir_p: every
 * missing level is created (checkpoint.dir), else only the last
 * (state_dir). */
static void check_dir(report_t *r, const char *key, const char *path, bool mkdir_p) {
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            add(r, "%s: %s: %s", key, path, strerror(ENOTDIR));
        else if (access(path, W_OK | X_OK) < 0)
            add(r, "%s: %s: %s", key, path, strerror(errno));
        return;
    }
    if (errno != ENOENT) {
        add(r, "%s: %s: %s", key, path, strerror(errno));
        return;
    }
    char up[4096];
    snprintf(up, sizeof up, "%s", path);
    do
        parent_of(up);
    while (mkdir_p && stat(up, &st) < 0 && errno == ENOENT && strcmp(up, "/") != 0 &&
           strcmp(up, ".") != 0);
    int e = stat(up, &st) < 0             ? errno
            : !S_ISDIR(st.st_mode)        ? ENOTDIR
            : access(up, W_OK | X_OK) < 0 ? errno
                                          : 0;
    if (e)
        add(r, "%s: %s: cannot be created: %s: %s", key, path, up, strerror(e));
}

/* The user-id hash key, if an earlier start created it: nx_siphash_key_load
 * refuses one that others may read or of the wrong size. */
static void check_key(report_t *r, const char *state_dir) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", state_dir, NX_SIPHASH_KEY_FILE);
    if (stat(path, &st) < 0) {
        if (errno != ENOENT) /* absent: created at start */
            add(r, "state_dir: %s: %s", path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode))
        add(r, "state_dir: %s: not a regular file", path);
    else if (st.st_mode & 077)
        add(r, "state_dir: %s: mode %04o lets others read the key; want 0600", path,
            (unsigned)(st.st_mode & 07777));
    else if (st.st_size != NX_SIPHASH_KEY_LEN)
        add(r, "state_dir: %s: %lld bytes; a key has %d", path, (long long)st.st_size,
            NX_SIPHASH_KEY_LEN);
    else if (access(path, R_OK) < 0)
        add(r, "state_dir: %s: %s", path, strerror(errno));
}

static void check_state(report_t *r, const nx_config_t *cfg) {
    const char *dir = cfg->state_dir;
    struct stat st;
    int before = r->n;
    check_dir(r, "state_dir", dir, false);
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        check_key(r, dir);
        char handover[4096];
        snprintf(handover, sizeof handover, "%s/handover", dir);
        if (stat(handover, &st) == 0 && !S_ISDIR(st.st_mode))
            add(r, "state_dir: %s: %s", handover, strerror(ENOTDIR));
    }
    if (cfg->checkpoint.dir[0]) {
        check_dir(r, "checkpoint.dir", cfg->checkpoint.dir, true);
    } else if (r->n == before) { /* else the state directory's problem is said already */
        char ck[4096];
        snprintf(ck, sizeof ck, "%s/checkpoints", dir);
        check_dir(r, "state_dir", ck, true);
    }
}

/* ---- metrics endpoint ------------------------------------------------------ */

/* The address must parse and be one of this host's: bound for a moment
 * with port 0, so a daemon already listening on the configured port (while
 * its successor's configuration is checked) does not make it fail. */
static void check_listen(report_t *r, const char *listen) {
    struct sockaddr_storage ss;
    int v6;
    char err[512];
    if (nx_http_parse_listen(listen, &ss, &v6, err, sizeof err) < 0) {
        add(r, "metrics.listen: %s", err);
        return;
    }
    socklen_t len;
    if (v6) {
        ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
        len = sizeof(struct sockaddr_in6);
    } else {
        ((struct sockaddr_in *)&ss)->sin_port = 0;
        len = sizeof(struct sockaddr_in);
    }
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0)
        add(r, "metrics.listen: \"%s\": not an address of this host: %s", listen, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* ---- librdkafka ----------------------------------------------------------- */

static void rdkafka_quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

/* Whether a pass-through property names a file librdkafka opens at start. */
static bool names_file(const char *key) {
    static const char *const keys[] = {
        "ssl.ca.location",  "ssl.certificate.location", "ssl.key.location",
        "ssl.crl.location", "ssl.keystore.location",    "sasl.kerberos.keytab",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

/* Creating a client with these runs kinit, fetches OAuth tokens, loads
 * plugin or engine code or starts a mock cluster: not a check without side
 * effects. */
static bool trial_unsafe(const nx_strmap_t *m) {
    for (int i = 0; i < m->n; i++) {
        const char *k = m->key[i], *v = m->val[i];
        if (strcmp(k, "plugin.library.paths") == 0 || strcmp(k, "ssl.engine.location") == 0 ||
            strcmp(k, "test.mock.num.brokers") == 0)
            return true;
        if ((strcmp(k, "sasl.mechanisms") == 0 || strcmp(k, "sasl.mechanism") == 0) &&
            (strcasecmp(v, "GSSAPI") == 0 || strcasecmp(v, "OAUTHBEARER") == 0))
            return true;
    }
    return false;
}

/* One client's pass-through properties: the files they name, then the
 * whole configuration as librdkafka's client constructor sees it. The
 * daemon's own settings that librdkafka checks the others against
 * (kafka.c: an idempotent producer, a consumer in a group) are set first;
 * no bootstrap servers, so the client connects nowhere. */
static void check_rdkafka(report_t *r, const nx_config_t *cfg, rd_kafka_type_t type) {
    const nx_strmap_t *m = type == RD_KAFKA_PRODUCER ? &cfg->kafka.producer : &cfg->kafka.consumer;
    const char *key = type == RD_KAFKA_PRODUCER ? "kafka.producer" : "kafka.consumer";
    char why[512];
    bool files_ok = true;
    for (int i = 0; i < m->n; i++) {
        if (!names_file(m->key[i]) || strcmp(m->val[i], "probe") == 0)
            continue;
        if (access(m->val[i], R_OK) < 0) {
            add(r, "%s.\"%s\": %s: %s", key, m->key[i], m->val[i], strerror(errno));
            files_ok = false;
        }
    }
    if (!files_ok || trial_unsafe(m))
        return;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, rdkafka_quiet);
    rd_kafka_conf_res_t res =
        type == RD_KAFKA_PRODUCER
            ? rd_kafka_conf_set(conf, "enable.idempotence", "true", why, sizeof why)
            : rd_kafka_conf_set(conf, "group.id", cfg->kafka.group_id, why, sizeof why);
    for (int i = 0; i < m->n && res == RD_KAFKA_CONF_OK; i++)
        res = rd_kafka_conf_set(conf, m->key[i], m->val[i], why, sizeof why);
    if (res != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        add(r, "%s: %s", key, why);
        return;
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why); /* takes conf if it succeeds */
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        add(r, "%s: librdkafka refuses the %s configuration: %s", key,
            type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
        return;
    }
    rd_kafka_destroy(rk);
}

/* ---- the whole check ------------------------------------------------------ */

int nx_preflight_check(const nx_config_t *cfg, char *errstr, size_t errstr_size) {
    report_t r = {cfg->path ? cfg->path : "(defaults)", errstr, errstr_size, 0, 0};
    char err[1024];
    if (errstr_size)
        errstr[0] = '\0';

    /* schemas; the decoder only when its files are sound, so a missing
     * file is said once */
    int input_ok =
        strcmp(cfg->input.framing, "confluent") == 0
            ? check_schema_dir(&r, cfg->input.schema_dir, cfg->input.schema_registry.url[0] != '\0')
            : check_schema(&r, "input.writer_schema", cfg->input.writer_schema);
    if (input_ok == 0) {
        nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
        if (!codec)
            add(&r, "%s", err);
        nx_codec_destroy(codec);
    }
    if (strcmp(cfg->output.format, "json") != 0) {
        if (!cfg->output.schema[0])
            add(&r, "output.schema: required: output.format = \"%s\" writes Avro records",
                cfg->output.format);
        else
            check_schema(&r, "output.schema", cfg->output.schema);
    }

    /* features and model, by the code that builds them; the key only
     * seeds hashing, which nothing here does */
    uint8_t key[NX_SIPHASH_KEY_LEN] = {0};
    nx_pipeline_t *pipe = nx_pipeline_new(cfg, key, 0, NULL, err, sizeof err);
    if (!pipe)
        add(&r, "%s", err);
    nx_pipeline_destroy(pipe);

    check_state(&r, cfg);

    if (cfg->metrics.listen[0])
        check_listen(&r, cfg->metrics.listen);

    check_rdkafka(&r, cfg, RD_KAFKA_CONSUMER);
    check_rdkafka(&r, cfg, RD_KAFKA_PRODUCER);
    return r.n ? -1 : 0;
}
