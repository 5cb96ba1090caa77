/* registry.c: Confluent Schema Registry client (registry.h). */
#include "registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

/* The registry's error_code for "Schema not found" (GET /schemas/ids/{id}):
 * the one answer that says the id does not exist. */
#define ERR_SCHEMA_NOT_FOUND 40403

/* Used when a configuration leaves timeout_ms at 0 (tests build theirs by
 * hand); the table's default is the same. */
#define DEFAULT_TIMEOUT_MS 5000

/* Where an id stands. */
enum { E_FREE, E_QUEUED, E_FETCHING, E_FAILED, E_FOUND, E_NOT_FOUND };

typedef struct entry {
    uint32_t id;
    uint8_t state;
    uint8_t absent;   /* the last definitive answer was 40403 (a re-check may be under way) */
    int failures;     /* fetches failed in a row */
    int64_t due_mono; /* ms; E_FAILED: next fetch, E_NOT_FOUND: next re-check */
    uint64_t seq;     /* queueing order: the worker takes the oldest */
    char *schema;     /* E_FOUND; never changes once set */
} entry_t;

struct nx_registry {
    char *name; /* settings' group, for messages */
    char *urls[NX_REGISTRY_MAX_URLS];
    int n_urls;
    int url_next;                                     /* worker only: the URL that answered last */
    char *user_info, *ca, *cert, *key, *key_password; /* NULL = unset */
    long timeout_ms;
    int64_t backoff_ms, backoff_max_ms, not_found_retry_ms;
    pthread_t worker;
    int started;
    atomic_int stop;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* an id was queued, or stop */
    /* under lock */
    entry_t entries[NX_REGISTRY_MAX_IDS];
    int n_entries; /* slots ever used */
    uint64_t seq;
    uint64_t rng; /* jitter of the backoff */
    nx_registry_stats_t stats;
};

/* ---- HTTP ------------------------------------------------------------------- */

/* One curl handle with its answer buffer. A handle is used by one thread. */
typedef struct http {
    CURL *curl;
    long status; /* of the last exchange; 0 = no HTTP answer */
    char *body;  /* NUL-terminated */
    size_t len, cap;
    int too_big;
    char err[CURL_ERROR_SIZE];
} http_t;

static size_t on_body(char *data, size_t size, size_t n, void *opaque) {
    http_t *h = opaque;
    size_t add = size * n;
    if (h->len + add > NX_REGISTRY_MAX_BODY) {
        h->too_big = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (h->len + add + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 4096;
        while (cap < h->len + add + 1)
            cap *= 2;
        char *p = realloc(h->body, cap);
        if (!p)
            return 0;
        h->body = p;
        h->cap = cap;
    }
    memcpy(h->body + h->len, data, add);
    h->len += add;
    h->body[h->len] = '\0';
    return add;
}

/* Ends an exchange under way when the registry is being destroyed. */
static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    nx_registry_t *reg = opaque;
    return atomic_load(&reg->stop) ? 1 : 0;
}

/* A handle with the connection settings; abortable: nx_registry_destroy
 * ends its exchanges. -1 if curl cannot make one (out of memory). */
static int http_init(http_t *h, nx_registry_t *reg, int abortable) {
    memset(h, 0, sizeof *h);
    if (!(h->curl = curl_easy_init()))
        return -1;
    CURL *c = h->curl;
    /* no signals: this runs beside the daemon's own handlers, in threads */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "nextactd/" NX_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    if (reg->user_info) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, reg->user_info);
    }
    if (reg->ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, reg->ca);
    if (reg->cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, reg->cert);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (reg->key) {
        curl_easy_setopt(c, CURLOPT_SSLKEY, reg->key);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (reg->key_password)
        curl_easy_setopt(c, CURLOPT_KEYPASSWD, reg->key_password);
    if (abortable) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, reg);
    }
    return 0;
}

static void http_free(http_t *h) {
    if (h->curl)
        curl_easy_cleanup(h->curl);
    free(h->body);
}

/* One exchange with base URL `base`: GET path, or POST `post` (JSON) to
 * it. 0 when an HTTP answer came (h->status, h->body), -1 otherwise with
 * the reason in h->err. */
static int http_exchange(http_t *h, const char *base, const char *path, const char *post) {
    char url[4096 + 256];
    snprintf(url, sizeof url, "%s%s", base, path);
    h->status = 0;
    h->len = 0;
    h->too_big = 0;
    h->err[0] = '\0';
    if (h->body)
        h->body[0] = '\0';
    /* the media types the registry speaks, newest first (API reference,
     * "Content types") */
    struct curl_slist *hdrs =
        curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, "
                                "application/vnd.schemaregistry+json; q=0.9, "
                                "application/json; q=0.5");
    struct curl_slist *more = hdrs;
    if (hdrs && post)
        more = curl_slist_append(hdrs, "Content-Type: application/vnd.schemaregistry.v1+json");
    /* no "Expect: 100-continue" round trip before a body of a few KiB */
    if (more && post)
        more = curl_slist_append(hdrs, "Expect:");
    if (!more) {
        curl_slist_free_all(hdrs);
        snprintf(h->err, sizeof h->err, "out of memory");
        return -1;
    }
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
    if (post)
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, post);
    else
        curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
    CURLcode rc = curl_easy_perform(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        if (h->too_big)
            snprintf(h->err, sizeof h->err, "answer larger than %d bytes", NX_REGISTRY_MAX_BODY);
        else if (!h->err[0])
            snprintf(h->err, sizeof h->err, "%s", curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &h->status);
    return 0;
}

/* The error_code and message of an error answer; 0 and "" when the body is
 * not one. */
static void error_body(const http_t *h, int *code, char *msg, size_t msg_size) {
    *code = 0;
    snprintf(msg, msg_size, "%s", "");
    json_t *root = h->len ? json_loadb(h->body, h->len, 0, NULL) : NULL;
    if (!root)
        return;
    json_t *c = json_object_get(root, "error_code"), *m = json_object_get(root, "message");
    if (json_is_integer(c))
        *code = (int)json_integer_value(c);
    if (json_is_string(m))
        snprintf(msg, msg_size, "%s", json_string_value(m));
    json_decref(root);
}

/* "HTTP 500, error_code 50001: ..." and a hint for the statuses whose
 * cause is usually here, not at the registry. */
static void describe(const http_t *h, char *why, size_t why_size) {
    int code;
    char msg[256];
    error_body(h, &code, msg, sizeof msg);
    const char *hint = "";
    if (h->status == 401 || h->status == 403)
        hint = "; check basic_auth_user_info";
    else if (h->status == 404 && code != ERR_SCHEMA_NOT_FOUND)
        hint = "; not the registry's answer for a missing schema: check the url";
    if (code)
        snprintf(why, why_size, "HTTP %ld, error_code %d: %.200s%s", h->status, code, msg, hint);
    else
        snprintf(why, why_size, "HTTP %ld%s", h->status, hint);
}

/* ---- fetching ------------------------------------------------------------------ */

typedef enum { F_FOUND, F_NOT_FOUND, F_FAILED } fetch_t;

/* What a 200 answer to GET /schemas/ids/{id} holds. */
static fetch_t parse_schema(const http_t *h, char **schema, char *why, size_t why_size) {
    json_error_t jerr;
    json_t *root = json_loadb(h->body ? h->body : "", h->len, 0, &jerr);
    if (!root) {
        snprintf(why, why_size, "HTTP 200 with a body that is not JSON (%s)", jerr.text);
        return F_FAILED;
    }
    fetch_t f = F_FAILED;
    json_t *s = json_object_get(root, "schema"), *type = json_object_get(root, "schemaType");
    if (!json_is_string(s)) {
        snprintf(why, why_size, "HTTP 200 without a \"schema\" string");
    } else if (type &&
               !(json_is_string(type) && strcasecmp(json_string_value(type), "AVRO") == 0)) {
        snprintf(why, why_size, "a %s schema, not Avro",
                 json_is_string(type) ? json_string_value(type) : "non-Avro");
        f = F_NOT_FOUND;
    } else if (!(*schema = strdup(json_string_value(s)))) {
        snprintf(why, why_size, "out of memory");
    } else {
        f = F_FOUND;
    }
    json_decref(root);
    return f;
}

/* Fetches id's schema, trying the URLs from the one that answered last. */
static fetch_t fetch(nx_registry_t *reg, http_t *h, uint32_t id, char **schema, char *why,
                     size_t why_size) {
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%u", id);
    snprintf(why, why_size, "cannot make an HTTP handle");
    for (int k = 0; h->curl && k < reg->n_urls; k++) {
        int u = (reg->url_next + k) % reg->n_urls;
        if (http_exchange(h, reg->urls[u], path, NULL) < 0) {
            snprintf(why, why_size, "%s: %s", reg->urls[u], h->err);
            continue;
        }
        if (h->status >= 500) {
            char what[400];
            describe(h, what, sizeof what);
            snprintf(why, why_size, "%s: %s", reg->urls[u], what);
            continue;
        }
        reg->url_next = u;
        if (h->status == 200)
            return parse_schema(h, schema, why, why_size);
        int code;
        char msg[128];
        error_body(h, &code, msg, sizeof msg);
        describe(h, why, why_size);
        return h->status == 404 && code == ERR_SCHEMA_NOT_FOUND ? F_NOT_FOUND : F_FAILED;
    }
    return F_FAILED;
}

/* The wait after `failures` failed fetches in a row: retry_backoff_ms
 * doubled per failure after the first, plus up to a quarter, at most
 * retry_backoff_max_ms. Under lock (rng). */
static int64_t backoff(nx_registry_t *reg, int failures) {
    int64_t d = reg->backoff_ms;
    for (int i = 1; i < failures && d < reg->backoff_max_ms; i++)
        d *= 2;
    /* xorshift64: jitter needs no quality, only independence between
     * daemons (seeded per process) */
    reg->rng ^= reg->rng << 13;
    reg->rng ^= reg->rng >> 7;
    reg->rng ^= reg->rng << 17;
    d += (int64_t)(reg->rng % (uint64_t)(d / 4 + 1));
    return d < reg->backoff_max_ms ? d : reg->backoff_max_ms;
}

/* Records a fetch's outcome in its entry; returns the wait before the next
 * fetch (failures, re-checks). Under lock. */
static int64_t settle(nx_registry_t *reg, entry_t *e, fetch_t f, char *schema, int64_t now) {
    int64_t wait = 0;
    reg->stats.fetches++;
    switch (f) {
    case F_FOUND:
        e->schema = schema;
        e->state = E_FOUND;
        e->absent = 0;
        e->failures = 0;
        reg->stats.found++;
        break;
    case F_NOT_FOUND:
        e->state = E_NOT_FOUND;
        e->absent = 1;
        e->failures = 0;
        wait = reg->not_found_retry_ms;
        reg->stats.not_found++;
        break;
    case F_FAILED:
        e->failures++;
        /* a failed re-check leaves the last definitive answer standing */
        e->state = e->absent ? E_NOT_FOUND : E_FAILED;
        wait = backoff(reg, e->failures);
        reg->stats.failures++;
        break;
    }
    e->due_mono = now + wait;
    return wait;
}

static entry_t *oldest_queued(nx_registry_t *reg) {
    entry_t *best = NULL;
    for (int i = 0; i < reg->n_entries; i++) {
        entry_t *e = &reg->entries[i];
        if (e->state == E_QUEUED && (!best || e->seq < best->seq))
            best = e;
    }
    return best;
}

static void *worker_main(void *opaque) {
    nx_registry_t *reg = opaque;
    http_t h;
    if (http_init(&h, reg, 1) < 0)
        nx_err("%s: cannot make an HTTP handle; every fetch fails", reg->name);
    pthread_mutex_lock(&reg->lock);
    while (!atomic_load(&reg->stop)) {
        entry_t *e = oldest_queued(reg);
        if (!e) {
            pthread_cond_wait(&reg->wake, &reg->lock);
            continue;
        }
        /* an entry being fetched is never evicted: e stays valid */
        e->state = E_FETCHING;
        uint32_t id = e->id;
        int absent = e->absent;
        pthread_mutex_unlock(&reg->lock);

        char *schema = NULL, why[600] = "";
        fetch_t f = fetch(reg, &h, id, &schema, why, sizeof why);
        int64_t now = nx_now_mono_ms();
        pthread_mutex_lock(&reg->lock);
        int64_t wait = settle(reg, e, f, schema, now);
        int failures = e->failures;
        pthread_mutex_unlock(&reg->lock);

        if (atomic_load(&reg->stop)) {
            /* an exchange cut short by destroy is no news */
        } else if (f == F_FOUND) {
            nx_info("%s: schema id %u fetched", reg->name, id);
        } else if (f == F_NOT_FOUND) {
            NX_LOG_RL(NX_LOG_WARNING,
                      "%s: schema id %u: %s: its events are dead-lettered (unknown_schema_id); "
                      "asked again in %lld s",
                      reg->name, id, why, (long long)(wait / 1000));
        } else if (absent) {
            NX_LOG_RL(NX_LOG_WARNING, "%s: re-checking schema id %u: %s; again in %lld ms",
                      reg->name, id, why, (long long)wait);
        } else {
            NX_LOG_RL(NX_LOG_WARNING,
                      "%s: schema id %u: %s; its events wait; fetch %d failed, next in %lld ms",
                      reg->name, id, why, failures, (long long)wait);
        }
        pthread_mutex_lock(&reg->lock);
    }
    pthread_mutex_unlock(&reg->lock);
    http_free(&h);
    return NULL;
}

/* ---- lookups ---------------------------------------------------------------------- */

static entry_t *find(nx_registry_t *reg, uint32_t id) {
    for (int i = 0; i < reg->n_entries; i++) {
        entry_t *e = &reg->entries[i];
        if (e->state != E_FREE && e->id == id)
            return e;
    }
    return NULL;
}

/* A slot for a new id: a free one, else the not-found id re-checked
 * longest ago (its events go on being refused until it is asked for again,
 * then it is fetched anew). NULL if every id waits or is found. */
static entry_t *add(nx_registry_t *reg, uint32_t id) {
    entry_t *e = NULL;
    for (int i = 0; i < reg->n_entries && !e; i++)
        if (reg->entries[i].state == E_FREE)
            e = &reg->entries[i];
    if (!e && reg->n_entries < NX_REGISTRY_MAX_IDS)
        e = &reg->entries[reg->n_entries++];
    for (int i = 0; i < reg->n_entries && !e; i++) {
        entry_t *c = &reg->entries[i];
        if (c->state == E_NOT_FOUND && (!e || c->due_mono < e->due_mono))
            e = c;
    }
    if (e)
        *e = (entry_t){.id = id};
    return e;
}

static void queue(nx_registry_t *reg, entry_t *e) {
    e->state = E_QUEUED;
    e->seq = ++reg->seq;
    pthread_cond_signal(&reg->wake);
}

nx_registry_answer_t nx_registry_lookup(nx_registry_t *reg, uint32_t id, const char **schema,
                                        int64_t *wait_ms) {
    int64_t now = nx_now_mono_ms();
    nx_registry_answer_t answer = NX_REGISTRY_PENDING;
    int full = 0;
    *wait_ms = NX_REGISTRY_POLL_MS;
    pthread_mutex_lock(&reg->lock);
    entry_t *e = find(reg, id);
    if (!e) {
        if ((e = add(reg, id)))
            queue(reg, e);
        else
            full = 1, answer = NX_REGISTRY_NOT_FOUND;
    } else {
        switch (e->state) {
        case E_FOUND:
            *schema = e->schema;
            answer = NX_REGISTRY_FOUND;
            break;
        case E_FAILED:
        case E_NOT_FOUND:
            if (now >= e->due_mono) {
                reg->stats.retries += e->failures > 0;
                queue(reg, e);
            } else if (e->state == E_FAILED) {
                *wait_ms = e->due_mono - now;
            }
            answer = e->absent ? NX_REGISTRY_NOT_FOUND : NX_REGISTRY_PENDING;
            break;
        default: /* queued or being fetched */
            answer = e->absent ? NX_REGISTRY_NOT_FOUND : NX_REGISTRY_PENDING;
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    if (full)
        NX_LOG_RL(NX_LOG_WARNING,
                  "%s: %d schema ids are waiting or found already; id %u is refused "
                  "(unknown_schema_id)",
                  reg->name, NX_REGISTRY_MAX_IDS, id);
    return answer;
}

static nx_codec_lookup_t codec_lookup(void *opaque, uint32_t id, const char **json,
                                      int64_t *wait_ms) {
    switch (nx_registry_lookup(opaque, id, json, wait_ms)) {
    case NX_REGISTRY_FOUND:
        return NX_CODEC_LOOKUP_FOUND;
    case NX_REGISTRY_PENDING:
        return NX_CODEC_LOOKUP_PENDING;
    default:
        return NX_CODEC_LOOKUP_ABSENT;
    }
}

nx_codec_source_t nx_registry_source(nx_registry_t *registry) {
    return (nx_codec_source_t){codec_lookup, registry};
}

void nx_registry_stats(nx_registry_t *reg, nx_registry_stats_t *stats) {
    pthread_mutex_lock(&reg->lock);
    *stats = reg->stats;
    stats->pending = stats->cached = 0;
    for (int i = 0; i < reg->n_entries; i++) {
        const entry_t *e = &reg->entries[i];
        stats->cached += e->state == E_FOUND;
        stats->pending +=
            !e->absent && (e->state == E_QUEUED || e->state == E_FETCHING || e->state == E_FAILED);
    }
    pthread_mutex_unlock(&reg->lock);
}

/* ---- registration ------------------------------------------------------------------ */

int nx_registry_register(nx_registry_t *reg, const char *subject, const char *schema, int64_t *id,
                         char *errstr, size_t errstr_size) {
    http_t h;
    json_t *req = NULL, *root = NULL;
    char *body = NULL, *esc = NULL, path[1024], why[600] = "no URL";
    int rc = -1, answered = 0;

    if (http_init(&h, reg, 0) < 0) {
        nx_errf(errstr, errstr_size, "%s: cannot make an HTTP handle", reg->name);
        goto out;
    }
    if (!(req = json_pack("{s:s}", "schema", schema)) || !(body = json_dumps(req, JSON_COMPACT))) {
        nx_errf(errstr, errstr_size, "%s: the schema is not UTF-8 text", reg->name);
        goto out;
    }
    if (!(esc = curl_easy_escape(h.curl, subject, 0))) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto out;
    }
    snprintf(path, sizeof path, "/subjects/%s/versions", esc);
    const char *url = "";
    for (int u = 0; u < reg->n_urls && !answered; u++) {
        url = reg->urls[u];
        if (http_exchange(&h, url, path, body) < 0) {
            snprintf(why, sizeof why, "%s", h.err);
        } else if (h.status >= 500) {
            describe(&h, why, sizeof why);
        } else {
            answered = 1;
        }
    }
    if (!answered) {
        nx_errf(errstr, errstr_size, "%s: registering the schema under %s at %s: %s", reg->name,
                subject, url, why);
        rc = -2;
        goto out;
    }
    describe(&h, why, sizeof why);
    if (h.status == 409) {
        nx_errf(errstr, errstr_size,
                "%s: %s refuses the schema for subject %s: it is incompatible with the "
                "subject's earlier versions under its compatibility level (%s)",
                reg->name, url, subject, why);
        goto out;
    }
    if (h.status == 422) {
        nx_errf(errstr, errstr_size, "%s: %s refuses the schema for subject %s as invalid (%s)",
                reg->name, url, subject, why);
        goto out;
    }
    if (h.status != 200) {
        nx_errf(errstr, errstr_size, "%s: registering the schema under %s at %s: %s", reg->name,
                subject, url, why);
        goto out;
    }
    root = json_loadb(h.body ? h.body : "", h.len, 0, NULL);
    json_t *jid = root ? json_object_get(root, "id") : NULL;
    if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
        json_integer_value(jid) > INT32_MAX) {
        nx_errf(errstr, errstr_size,
                "%s: registering the schema under %s at %s: HTTP 200 without an \"id\" that "
                "is a schema id",
                reg->name, subject, url);
        goto out;
    }
    *id = (int64_t)json_integer_value(jid);
    rc = 0;
out:
    json_decref(root);
    curl_free(esc);
    free(body);
    json_decref(req);
    http_free(&h);
    return rc;
}

/* ---- set-up --------------------------------------------------------------------------- */

static int curl_ready;

static void global_init(void) {
    /* once per process, before any thread uses curl; never undone (curl's
     * global state lives as long as the process) */
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    json_object_seed(0);
}

/* Copies s unless empty; *out NULL for "". -1 out of memory. */
static int dup_set(char **out, const char *s) {
    *out = NULL;
    if (!s || !s[0])
        return 0;
    return (*out = strdup(s)) ? 0 : -1;
}

static int check_file(const char *path, const char *name, const char *key, char *errstr,
                      size_t errstr_size) {
    if (path && access(path, R_OK) < 0)
        return nx_errf(errstr, errstr_size, "%s.%s: %s: %s", name, key, path, strerror(errno));
    return 0;
}

/* Splits the comma-separated URL list into reg->urls, without trailing
 * slashes (paths are appended). */
static int parse_urls(nx_registry_t *reg, const char *list, char *errstr, size_t errstr_size) {
    char *copy = strdup(list ? list : ""), *save = NULL;
    int rc = 0;
    if (!copy)
        return nx_errf(errstr, errstr_size, "out of memory");
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t' || tok[len - 1] == '/'))
            tok[--len] = '\0';
        if (len == 0)
            continue;
        if (strncasecmp(tok, "http://", 7) != 0 && strncasecmp(tok, "https://", 8) != 0)
            rc = nx_errf(errstr, errstr_size, "%s.url: \"%s\" is not an http:// or https:// URL",
                         reg->name, tok);
        else if (reg->n_urls == NX_REGISTRY_MAX_URLS)
            rc = nx_errf(errstr, errstr_size, "%s.url: more than %d URLs", reg->name,
                         NX_REGISTRY_MAX_URLS);
        else if (!(reg->urls[reg->n_urls++] = strdup(tok)))
            rc = nx_errf(errstr, errstr_size, "out of memory");
    }
    free(copy);
    if (rc == 0 && reg->n_urls == 0)
        rc = nx_errf(errstr, errstr_size, "%s.url: no URL given", reg->name);
    return rc;
}

nx_registry_t *nx_registry_new(const nx_config_registry_t *conf, const char *name, char *errstr,
                               size_t errstr_size) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    nx_registry_t *reg = NULL;
    pthread_once(&once, global_init);
    if (!curl_ready) {
        nx_errf(errstr, errstr_size, "%s: libcurl failed to initialise", name);
        return NULL;
    }
    if (!(reg = calloc(1, sizeof *reg))) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&reg->lock, NULL);
    pthread_cond_init(&reg->wake, NULL);
    if (!(reg->name = strdup(name))) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (parse_urls(reg, conf->url, errstr, errstr_size) < 0)
        goto err;
    if (dup_set(&reg->user_info, conf->basic_auth_user_info) < 0 ||
        dup_set(&reg->ca, conf->ca_location) < 0 ||
        dup_set(&reg->cert, conf->certificate_location) < 0 ||
        dup_set(&reg->key, conf->key_location) < 0 ||
        dup_set(&reg->key_password, conf->key_password) < 0) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (check_file(reg->ca, name, "ca_location", errstr, errstr_size) < 0 ||
        check_file(reg->cert, name, "certificate_location", errstr, errstr_size) < 0 ||
        check_file(reg->key, name, "key_location", errstr, errstr_size) < 0)
        goto err;
    if (conf->retry_backoff_ms > conf->retry_backoff_max_ms) {
        nx_errf(errstr, errstr_size,
                "%s.retry_backoff_ms (%lld) is over retry_backoff_max_ms (%lld)", name,
                (long long)conf->retry_backoff_ms, (long long)conf->retry_backoff_max_ms);
        goto err;
    }
    if (reg->user_info)
        for (int i = 0; i < reg->n_urls; i++)
            if (strncasecmp(reg->urls[i], "http://", 7) == 0)
                nx_warn("%s: basic authentication over %s sends the password in clear; use "
                        "https://",
                        name, reg->urls[i]);
    reg->timeout_ms = conf->timeout_ms > 0 ? (long)conf->timeout_ms : DEFAULT_TIMEOUT_MS;
    reg->backoff_ms = conf->retry_backoff_ms;
    reg->backoff_max_ms = conf->retry_backoff_max_ms;
    reg->not_found_retry_ms = conf->not_found_retry_ms;
    reg->rng = (uint64_t)nx_now_wall_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() ^
               (uint64_t)(uintptr_t)reg;
    if (!reg->rng)
        reg->rng = 1;

    /* the worker takes no signals: the daemon's handlers run in its main
     * thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&reg->worker, NULL, worker_main, reg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        nx_errf(errstr, errstr_size, "%s: cannot start its thread: %s", name, strerror(err));
        goto err;
    }
    reg->started = 1;
    return reg;
err:
    nx_registry_destroy(reg);
    return NULL;
}

void nx_registry_destroy(nx_registry_t *reg) {
    if (!reg)
        return;
    if (reg->started) {
        pthread_mutex_lock(&reg->lock);
        atomic_store(&reg->stop, 1);
        pthread_cond_broadcast(&reg->wake);
        pthread_mutex_unlock(&reg->lock);
        pthread_join(reg->worker, NULL);
    }
    for (int i = 0; i < reg->n_entries; i++)
        free(reg->entries[i].schema);
    for (int i = 0; i < reg->n_urls; i++)
        free(reg->urls[i]);
    free(reg->user_info);
    free(reg->ca);
    free(reg->cert);
    free(reg->key);
    free(reg->key_password);
    free(reg->name);
    pthread_cond_destroy(&reg->wake);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}
