/*
 * test_registry: the Schema Registry client (daemon/registry.h) against
 * the registry fixture (tests/common/registry_fixture.h).
 *
 * - an id is fetched once and then answered from the cache;
 * - 404 with error_code 40403 is NOT_FOUND, asked again after
 *   not_found_retry_ms (a schema registered late is found then); a 404
 *   without 40403 (a wrong URL), a 500, a 401 and a timeout are failures:
 *   the id stays PENDING, never NOT_FOUND;
 * - failed fetches are retried after waits that double from
 *   retry_backoff_ms, at most a quarter longer, never over
 *   retry_backoff_max_ms, and counted;
 * - basic authentication sends the configured credentials; a second URL
 *   answers when the first refuses connections;
 * - over HTTPS the schema is fetched when ca_location names the server's
 *   certificate, and never when the certificate cannot be verified;
 * - registration returns the registry's id, the same one again for the
 *   same schema; a 409 (incompatible) is an error naming it;
 * - the codec with the registry as its source: PENDING while fetching,
 *   then the event; an id the registry lacks falls back to schema_dir;
 * - destroy ends an exchange under way promptly; bad settings are refused;
 * - `nextactd run` whose prediction schema the registry refuses (409), or
 *   that asks for registration without Confluent framing, stops at start
 *   with exit 78 and says why.
 *
 * usage: test_registry SOURCE_DIR NEXTACTD
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "config.h"
#include "log.h"
#include "registry.h"
#include "registry_fixture.h"

static const char *source_dir;
static char event_schema[4096];

static void read_event_schema(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/conf/schemas/event.avsc", source_dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    size_t n = f ? fread(event_schema, 1, sizeof event_schema - 1, f) : 0;
    event_schema[n] = '\0';
    if (f)
        fclose(f);
}

/* A connection to the fixture with short waits. */
static nx_config_registry_t conf_for(const nx_registry_fixture_t *fx) {
    nx_config_registry_t c = {0};
    c.url = (char *)nx_registry_fixture_url(fx);
    c.timeout_ms = 2000;
    c.retry_backoff_ms = 50;
    c.retry_backoff_max_ms = 400;
    c.not_found_retry_ms = 1000;
    return c;
}

/* Asks for id every 2 ms until the answer is not PENDING or timeout_ms
 * passes; returns the last answer. */
static nx_registry_answer_t wait_answer(nx_registry_t *reg, uint32_t id, const char **schema,
                                        int timeout_ms) {
    int64_t until = nx_now_mono_ms() + timeout_ms, wait;
    nx_registry_answer_t a;
    while ((a = nx_registry_lookup(reg, id, schema, &wait)) == NX_REGISTRY_PENDING &&
           nx_now_mono_ms() < until)
        usleep(2000);
    return a;
}

/* Asks for id every 2 ms for ms milliseconds; returns 1 if every answer
 * was PENDING. */
static int stays_pending(nx_registry_t *reg, uint32_t id, int ms) {
    int64_t until = nx_now_mono_ms() + ms, wait;
    const char *schema;
    int all = 1;
    while (nx_now_mono_ms() < until) {
        all &= nx_registry_lookup(reg, id, &schema, &wait) == NX_REGISTRY_PENDING;
        usleep(2000);
    }
    return all;
}

static void test_cache(nx_registry_fixture_t *fx) {
    char err[512];
    nx_config_registry_t c = conf_for(fx);
    CHECK_INT(nx_registry_fixture_add(fx, 7, event_schema), 0);
    nx_registry_t *reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    const char *schema = NULL;
    int64_t wait = -1;
    /* first sight: queued, never waited for */
    CHECK_INT(nx_registry_lookup(reg, 7, &schema, &wait), NX_REGISTRY_PENDING);
    CHECK(wait > 0 && wait <= NX_REGISTRY_POLL_MS);
    CHECK_INT(wait_answer(reg, 7, &schema, 3000), NX_REGISTRY_FOUND);
    CHECK(schema && strcmp(schema, event_schema) == 0);
    for (int i = 0; i < 100; i++)
        CHECK_INT(nx_registry_lookup(reg, 7, &schema, &wait), NX_REGISTRY_FOUND);
    /* the registry forgetting it changes nothing: ids are immutable */
    nx_registry_fixture_fail(fx, 7, 500, -1);
    CHECK_INT(nx_registry_lookup(reg, 7, &schema, &wait), NX_REGISTRY_FOUND);
    nx_registry_fixture_fail(fx, 7, 500, 0);
    CHECK_INT(nx_registry_fixture_gets(fx, 7, NULL, 0), 1);
    nx_registry_stats_t st;
    nx_registry_stats(reg, &st);
    CHECK_INT(st.found, 1);
    CHECK_INT(st.fetches, 1);
    CHECK_INT(st.cached, 1);
    CHECK_INT(st.pending, 0);
    CHECK_INT(st.failures, 0);
    nx_registry_destroy(reg);
}

static void test_not_found(nx_registry_fixture_t *fx) {
    char err[512];
    nx_config_registry_t c = conf_for(fx);
    nx_registry_t *reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    const char *schema = NULL;
    int64_t wait;
    CHECK_INT(wait_answer(reg, 8, &schema, 3000), NX_REGISTRY_NOT_FOUND);
    CHECK_INT(nx_registry_fixture_gets(fx, 8, NULL, 0), 1);
    /* cached as not found until not_found_retry_ms */
    for (int i = 0; i < 50; i++)
        CHECK_INT(nx_registry_lookup(reg, 8, &schema, &wait), NX_REGISTRY_NOT_FOUND);
    CHECK_INT(nx_registry_fixture_gets(fx, 8, NULL, 0), 1);
    /* registered late: the re-check finds it, answering NOT_FOUND until then */
    CHECK_INT(nx_registry_fixture_add(fx, 8, event_schema), 0);
    usleep(1100 * 1000);
    CHECK_INT(nx_registry_lookup(reg, 8, &schema, &wait), NX_REGISTRY_NOT_FOUND);
    int64_t until = nx_now_mono_ms() + 3000;
    nx_registry_answer_t a;
    while ((a = nx_registry_lookup(reg, 8, &schema, &wait)) == NX_REGISTRY_NOT_FOUND &&
           nx_now_mono_ms() < until)
        usleep(2000);
    CHECK_INT(a, NX_REGISTRY_FOUND);
    CHECK_INT(nx_registry_fixture_gets(fx, 8, NULL, 0), 2);
    nx_registry_stats_t st;
    nx_registry_stats(reg, &st);
    CHECK_INT(st.not_found, 1);
    CHECK_INT(st.found, 1);
    CHECK_INT(st.failures, 0);
    nx_registry_destroy(reg);

    /* a 404 that is not 40403 is a wrong URL: a failure, not "not found" */
    char url[256];
    snprintf(url, sizeof url, "%s/no/such/prefix", nx_registry_fixture_url(fx));
    c.url = url;
    reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    CHECK(stays_pending(reg, 7, 600));
    nx_registry_stats(reg, &st);
    CHECK(st.failures >= 2);
    CHECK_INT(st.not_found, 0);
    nx_registry_destroy(reg);
}

/* 500 for a while: PENDING throughout, retried with bounded exponential
 * backoff, then found. */
static void test_backoff(nx_registry_fixture_t *fx) {
    char err[512];
    nx_config_registry_t c = conf_for(fx);
    CHECK_INT(nx_registry_fixture_add(fx, 9, event_schema), 0);
    nx_registry_fixture_fail(fx, 9, 500, -1);
    nx_registry_t *reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    int64_t t0 = nx_now_mono_ms(), max_wait = 0, wait;
    const char *schema;
    int all_pending = 1;
    while (nx_now_mono_ms() - t0 < 3000) {
        all_pending &= nx_registry_lookup(reg, 9, &schema, &wait) == NX_REGISTRY_PENDING;
        if (wait > max_wait)
            max_wait = wait;
        usleep(1000);
    }
    CHECK(all_pending);
    CHECK(max_wait <= c.retry_backoff_max_ms);
    int64_t times[64];
    int n = nx_registry_fixture_gets(fx, 9, times, 64);
    /* waits 50, 100, 200, then 400 (the bound): 3 s hold about 9 fetches
     * on an idle machine; a busy one delays retries (fewer), never hastens
     * them (more than 12 would mean a wait was skipped) */
    CHECK(n >= 3 && n <= 12);
    int late = 0;
    for (int i = 1; i < n && i < 64; i++) {
        int64_t gap = times[i] - times[i - 1];
        int64_t d = c.retry_backoff_ms << (i - 1 < 4 ? i - 1 : 4);
        if (d > c.retry_backoff_max_ms)
            d = c.retry_backoff_max_ms;
        /* at least the wait: that is the backoff's promise. The upper end
         * (the wait with its jitter) is not checked here: a busy machine's
         * scheduling can add any delay; the bound on the wait itself is
         * checked above (max_wait) and by the fetch count */
        if (gap < d - 2) {
            fprintf(stderr, "fetch %d came %lld ms after the one before; want at least %lld\n", i,
                    (long long)gap, (long long)d);
            late++;
        }
    }
    CHECK_INT(late, 0);
    nx_registry_stats_t st;
    nx_registry_stats(reg, &st);
    CHECK_INT(st.failures, n);
    CHECK_INT(st.retries, n - 1);
    CHECK_INT(st.pending, 1);
    CHECK_INT(st.not_found, 0);
    /* the registry is back: found by the next retry */
    nx_registry_fixture_fail(fx, 9, 500, 0);
    CHECK_INT(wait_answer(reg, 9, &schema, 2000), NX_REGISTRY_FOUND);
    nx_registry_stats(reg, &st);
    CHECK_INT(st.pending, 0);
    nx_registry_destroy(reg);
}

/* A registry slower than timeout_ms: failures, PENDING, then found once it
 * is fast again; destroy does not wait out a slow exchange. */
static void test_timeout(nx_registry_fixture_t *fx) {
    char err[512];
    nx_config_registry_t c = conf_for(fx);
    c.timeout_ms = 200;
    CHECK_INT(nx_registry_fixture_add(fx, 11, event_schema), 0);
    nx_registry_fixture_delay(fx, 1000);
    nx_registry_t *reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    CHECK(stays_pending(reg, 11, 700));
    nx_registry_stats_t st;
    nx_registry_stats(reg, &st);
    CHECK(st.failures >= 1);
    CHECK_INT(st.found, 0);
    nx_registry_fixture_delay(fx, 0);
    const char *schema;
    CHECK_INT(wait_answer(reg, 11, &schema, 3000), NX_REGISTRY_FOUND);
    nx_registry_destroy(reg);

    /* destroy during a slow exchange */
    c.timeout_ms = 10000;
    nx_registry_fixture_delay(fx, 5000);
    reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    int64_t wait;
    CHECK_INT(nx_registry_lookup(reg, 12, &schema, &wait), NX_REGISTRY_PENDING);
    usleep(200 * 1000);
    int64_t t0 = nx_now_mono_ms();
    nx_registry_destroy(reg);
    int64_t took = nx_now_mono_ms() - t0;
    fprintf(stderr, "destroy during a slow exchange took %lld ms\n", (long long)took);
    CHECK(took < 2000);
    nx_registry_fixture_delay(fx, 0);
}

static void test_auth_and_urls(nx_registry_fixture_t *fx) {
    char err[512], seen[512];
    nx_config_registry_t c = conf_for(fx);
    CHECK_INT(nx_registry_fixture_add(fx, 13, event_schema), 0);
    nx_registry_fixture_require_auth(fx, "alice:s3cret");
    /* wrong password: 401 is a failure (PENDING), not NOT_FOUND */
    c.basic_auth_user_info = "alice:wrong";
    nx_registry_t *reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (reg) {
        CHECK(stays_pending(reg, 13, 300));
        nx_registry_stats_t st;
        nx_registry_stats(reg, &st);
        CHECK(st.failures >= 1);
        nx_registry_destroy(reg);
    }
    /* the right one, after a URL that refuses connections (port 1) */
    char urls[256];
    snprintf(urls, sizeof urls, "http://127.0.0.1:1/, %s/", nx_registry_fixture_url(fx));
    c.url = urls;
    c.basic_auth_user_info = "alice:s3cret";
    reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (reg) {
        const char *schema;
        CHECK_INT(wait_answer(reg, 13, &schema, 3000), NX_REGISTRY_FOUND);
        nx_registry_stats_t st;
        nx_registry_stats(reg, &st);
        CHECK_INT(st.failures, 0); /* the second URL answered within the same fetch */
        nx_registry_destroy(reg);
    }
    nx_registry_fixture_last_auth(fx, seen, sizeof seen);
    CHECK(strcmp(seen, "Basic YWxpY2U6czNjcmV0") == 0); /* base64("alice:s3cret") */
    nx_registry_fixture_require_auth(fx, NULL);
}

/* Reads a whole small file into a NUL-terminated buffer; NULL on error. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    char *buf = f ? calloc(1, 65536) : NULL;
    if (buf && fread(buf, 1, 65535, f) == 0) {
        free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

/* HTTPS: a fixture with a self-signed certificate for 127.0.0.1 (made by
 * openssl here). With that certificate as ca_location the schema is
 * fetched; without it (the system's CAs, which do not know it) every fetch
 * fails verification and the id stays PENDING: never fetched unverified. */
static void test_tls(void) {
    char dir[] = "/tmp/test_registry_tls.XXXXXX", cmd[1024], cert[300], key[300], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s' >/dev/null 2>&1",
             key, cert);
    CHECK_INT(system(cmd), 0); /* openssl: Debian's openssl package (scripts/setup) */
    char *cert_pem = slurp(cert), *key_pem = slurp(key);
    CHECK(cert_pem && key_pem);
    nx_registry_fixture_t *fx =
        cert_pem && key_pem ? nx_registry_fixture_start_tls(cert_pem, key_pem) : NULL;
    CHECK(fx != NULL);
    if (fx) {
        CHECK(strncmp(nx_registry_fixture_url(fx), "https://", 8) == 0);
        CHECK_INT(nx_registry_fixture_add(fx, 21, event_schema), 0);
        nx_config_registry_t c = conf_for(fx);
        c.ca_location = cert;
        nx_registry_t *reg = nx_registry_new(&c, "test", err, sizeof err);
        CHECK(reg != NULL);
        if (reg) {
            const char *schema = NULL;
            CHECK_INT(wait_answer(reg, 21, &schema, 5000), NX_REGISTRY_FOUND);
            CHECK(schema && strcmp(schema, event_schema) == 0);
            nx_registry_destroy(reg);
        }
        c.ca_location = "";
        reg = nx_registry_new(&c, "test", err, sizeof err);
        CHECK(reg != NULL);
        if (reg) {
            CHECK(stays_pending(reg, 21, 500));
            nx_registry_stats_t st;
            nx_registry_stats(reg, &st);
            CHECK(st.failures >= 1);
            CHECK_INT(st.found, 0);
            nx_registry_destroy(reg);
        }
        /* unverified, no request was sent: the one GET is the first client's */
        CHECK_INT(nx_registry_fixture_gets(fx, 21, NULL, 0), 1);
        nx_registry_fixture_stop(fx);
    }
    free(cert_pem);
    free(key_pem);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

static void test_register(nx_registry_fixture_t *fx) {
    char err[512];
    nx_config_registry_t c = conf_for(fx);
    nx_registry_t *reg = nx_registry_new(&c, "output.schema_registry", err, sizeof err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    const char *pred = "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"a\",\"type\":"
                       "\"string\"}]}";
    int64_t id = -1, id2 = -1;
    CHECK_INT(nx_registry_register(reg, "preds-value", pred, &id, err, sizeof err), 0);
    CHECK(id >= 100);
    char *got = NULL;
    CHECK_INT(nx_registry_fixture_registered(fx, "preds-value", &got), id);
    CHECK(got && strcmp(got, pred) == 0);
    free(got);
    /* the same schema again: the same id */
    CHECK_INT(nx_registry_register(reg, "preds-value", pred, &id2, err, sizeof err), 0);
    CHECK_INT(id2, id);
    /* the registered schema is served by id */
    const char *schema;
    CHECK_INT(wait_answer(reg, (uint32_t)id, &schema, 3000), NX_REGISTRY_FOUND);
    /* incompatible */
    nx_registry_fixture_refuse(fx, 1);
    err[0] = '\0';
    CHECK_INT(nx_registry_register(reg, "preds-value", pred, &id2, err, sizeof err), -1);
    CHECK_STR_HAS(err, "409");
    CHECK_STR_HAS(err, "incompatible");
    CHECK_STR_HAS(err, "preds-value");
    nx_registry_fixture_refuse(fx, 0);
    /* no registry there */
    nx_config_registry_t dead = conf_for(fx);
    dead.url = "http://127.0.0.1:1";
    nx_registry_t *nobody = nx_registry_new(&dead, "output.schema_registry", err, sizeof err);
    CHECK(nobody != NULL);
    if (nobody) {
        CHECK_INT(nx_registry_register(nobody, "preds-value", pred, &id2, err, sizeof err), -2);
        CHECK_STR_HAS(err, "127.0.0.1:1");
        nx_registry_destroy(nobody);
    }
    nx_registry_destroy(reg);
}

/* The codec asking the registry: PENDING while it fetches, then decoded;
 * an id the registry lacks falls back to schema_dir, else unknown. */
static void test_codec_source(nx_registry_fixture_t *fx) {
    char err[512], dir[] = "/tmp/nx_registry.XXXXXX", path[4200];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/21.avsc", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(event_schema, f);
        fclose(f);
    }
    nx_config_t *cfg = nx_config_new_defaults();
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    free(cfg->input.framing);
    cfg->input.framing = strdup("confluent");
    free(cfg->input.schema_dir);
    cfg->input.schema_dir = strdup(dir);
    nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
    CHECK(codec != NULL);
    nx_config_registry_t c = conf_for(fx);
    nx_registry_t *reg = nx_registry_new(&c, "test", err, sizeof err);
    CHECK(reg != NULL);
    if (!codec || !reg)
        goto out;
    nx_codec_source_t src = nx_registry_source(reg);
    nx_codec_set_source(codec, &src);
    CHECK_INT(nx_registry_fixture_add(fx, 20, event_schema), 0);
    nx_registry_fixture_fail(fx, 20, 503, 300);

    nx_codec_record_t rec = {
        .user_id = "u1", .ts_ms = NX_CODEC_MIN_TS_MS + 1000, .event_type = "click", .price = 1.5};
    uint8_t buf[512];
    nx_event_t ev;
    int64_t len = nx_codec_encode_event(&rec, 20, buf, sizeof buf);
    CHECK(len > 5);
    CHECK_INT(nx_codec_decode(codec, buf, (size_t)len, -1, INT64_MAX, &ev),
              NX_CODEC_SCHEMA_PENDING);
    CHECK(nx_codec_pending_wait_ms(codec) > 0);
    CHECK_INT(nx_codec_reason_is_structural(NX_CODEC_SCHEMA_PENDING), 0);
    nx_codec_reason_t r = NX_CODEC_SCHEMA_PENDING;
    int64_t until = nx_now_mono_ms() + 3000;
    while (r == NX_CODEC_SCHEMA_PENDING && nx_now_mono_ms() < until) {
        usleep(2000);
        r = nx_codec_decode(codec, buf, (size_t)len, -1, INT64_MAX, &ev);
    }
    CHECK_INT(r, NX_CODEC_OK);
    CHECK(ev.user_id_len == 2 && memcmp(ev.user_id, "u1", 2) == 0);
    CHECK(nx_codec_counters(codec)[NX_CODEC_SCHEMA_PENDING] >= 2);
    CHECK_INT(nx_codec_counters(codec)[NX_CODEC_UNKNOWN_SCHEMA_ID], 0);

    /* 21: not in the registry, in schema_dir */
    len = nx_codec_encode_event(&rec, 21, buf, sizeof buf);
    r = NX_CODEC_SCHEMA_PENDING;
    until = nx_now_mono_ms() + 3000;
    while (r == NX_CODEC_SCHEMA_PENDING && nx_now_mono_ms() < until) {
        usleep(2000);
        r = nx_codec_decode(codec, buf, (size_t)len, -1, INT64_MAX, &ev);
    }
    CHECK_INT(r, NX_CODEC_OK);
    /* 22: nowhere */
    len = nx_codec_encode_event(&rec, 22, buf, sizeof buf);
    r = NX_CODEC_SCHEMA_PENDING;
    until = nx_now_mono_ms() + 3000;
    while (r == NX_CODEC_SCHEMA_PENDING && nx_now_mono_ms() < until) {
        usleep(2000);
        r = nx_codec_decode(codec, buf, (size_t)len, -1, INT64_MAX, &ev);
    }
    CHECK_INT(r, NX_CODEC_UNKNOWN_SCHEMA_ID);
out:
    nx_codec_destroy(codec);
    nx_registry_destroy(reg);
    nx_config_destroy(cfg);
    unlink(path);
    rmdir(dir);
}

static void test_bad_settings(void) {
    char err[512];
    nx_config_registry_t c = {0};
    c.url = "ftp://registry:8081";
    CHECK(nx_registry_new(&c, "input.schema_registry", err, sizeof err) == NULL);
    CHECK_STR_HAS(err, "input.schema_registry.url");
    c.url = " , ";
    CHECK(nx_registry_new(&c, "input.schema_registry", err, sizeof err) == NULL);
    CHECK_STR_HAS(err, "no URL");
    c.url = "https://registry:8081";
    c.ca_location = "/nonexistent/ca.pem";
    CHECK(nx_registry_new(&c, "input.schema_registry", err, sizeof err) == NULL);
    CHECK_STR_HAS(err, "input.schema_registry.ca_location: /nonexistent/ca.pem");
    c.ca_location = "";
    c.retry_backoff_ms = 500;
    c.retry_backoff_max_ms = 100;
    CHECK(nx_registry_new(&c, "input.schema_registry", err, sizeof err) == NULL);
    CHECK_STR_HAS(err, "retry_backoff_max_ms");
    nx_registry_destroy(NULL);
}

/* Runs `nextactd run` with output registration against the fixture;
 * returns its exit status, its stderr in out. */
static int run_daemon(const char *nextactd, const char *url, const char *format, char *out,
                      size_t out_size) {
    char dir[] = "/tmp/nx_registry_run.XXXXXX", conf[256], log[256], cmd[1024];
    if (!mkdtemp(dir))
        return -1;
    snprintf(conf, sizeof conf, "%s/nextactd.conf", dir);
    snprintf(log, sizeof log, "%s/stderr", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "state_dir = \"%s/state\";\n"
            "kafka: { brokers = \"127.0.0.1:1\"; input_topics = [\"clicks\"];\n"
            "  output_topic = \"predictions\"; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { format = \"%s\"; schema = \"%s/conf/schemas/prediction.avsc\";\n"
            "  schema_registry: { enabled = true; url = \"%s\"; start_timeout_ms = 700; }; };\n"
            "metrics: { listen = \"\"; };\n",
            dir, source_dir, format, source_dir, url);
    fclose(f);
    snprintf(cmd, sizeof cmd, "timeout 60 %s run -c %s 2>%s", nextactd, conf, log);
    int st = system(cmd);
    out[0] = '\0';
    if ((f = fopen(log, "r"))) {
        size_t n = fread(out, 1, out_size - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_start_refused(const char *nextactd, nx_registry_fixture_t *fx) {
    char out[8192];
    nx_registry_fixture_refuse(fx, 1);
    const char *url = nx_registry_fixture_url(fx);
    CHECK_INT(run_daemon(nextactd, url, "confluent", out, sizeof out), NX_EXIT_CONFIG);
    CHECK_STR_HAS(out, "refuses the schema for subject predictions-value");
    CHECK_STR_HAS(out, "incompatible");
    CHECK_STR_HAS(out, "HTTP 409");
    nx_registry_fixture_refuse(fx, 0);
    CHECK_INT(run_daemon(nextactd, url, "avro", out, sizeof out), NX_EXIT_CONFIG);
    CHECK_STR_HAS(out, "output.schema_registry.enabled needs output.format = \"confluent\"");
    CHECK_INT(nx_registry_fixture_registered(fx, "predictions-value", NULL), -1);
    /* no registry answers: tried again for start_timeout_ms, then 75 (a
     * restart), not 78 (systemd would give up on an outage) */
    CHECK_INT(run_daemon(nextactd, "http://127.0.0.1:1", "confluent", out, sizeof out),
              NX_EXIT_TEMPFAIL);
    CHECK_STR_HAS(out, "trying again in");
    CHECK_STR_HAS(out, "exit 75 for a restart");
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_registry SOURCE_DIR NEXTACTD\n");
        return 2;
    }
    source_dir = argv[1];
    nx_log_set_level(NX_LOG_NOTICE);
    read_event_schema();
    nx_registry_fixture_t *fx = nx_registry_fixture_start();
    CHECK(fx != NULL);
    if (!fx)
        return nx_check_exit("test_registry");
    test_cache(fx);
    test_not_found(fx);
    test_backoff(fx);
    test_timeout(fx);
    test_auth_and_urls(fx);
    test_tls();
    test_register(fx);
    test_codec_source(fx);
    test_bad_settings();
    test_start_refused(argv[2], fx);
    nx_registry_fixture_stop(fx);
    return nx_check_exit("test_registry");
}
