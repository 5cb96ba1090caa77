/* registry_fixture.c: a Confluent Schema Registry stand-in (registry_fixture.h). */
#include "registry_fixture.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_IDS      64
#define MAX_SUBJECTS 16
#define MAX_TIMES    256 /* arrival times kept per id */
#define FIRST_ID     100 /* ids given by registration */

typedef struct id_rec {
    uint32_t id;
    char *schema;       /* NULL: not found */
    int fail_status;    /* answered while failing */
    int64_t fail_until; /* mono ms; INT64_MAX: until told otherwise; 0: not failing */
    int gets;
    int64_t times[MAX_TIMES];
} id_rec_t;

typedef struct subject_rec {
    char *subject;
    int64_t id;
    char *schema;
} subject_rec_t;

struct nx_registry_fixture {
    struct MHD_Daemon *mhd;
    char url[64];
    atomic_int stopping;
    pthread_mutex_t lock;
    /* under lock */
    id_rec_t ids[MAX_IDS];
    int n_ids;
    subject_rec_t subjects[MAX_SUBJECTS];
    int n_subjects;
    int64_t next_id;
    int delay_ms;
    int refuse;
    char *auth; /* expected Authorization header, NULL = none */
    char last_auth[512];
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The record of id, made on first mention. Under lock. */
static id_rec_t *id_rec(nx_registry_fixture_t *fx, uint32_t id) {
    for (int i = 0; i < fx->n_ids; i++)
        if (fx->ids[i].id == id)
            return &fx->ids[i];
    if (fx->n_ids == MAX_IDS)
        return NULL;
    id_rec_t *r = &fx->ids[fx->n_ids++];
    memset(r, 0, sizeof *r);
    r->id = id;
    return r;
}

/* ---- the registry's answers -------------------------------------------------
 *
 * Each one follows the Confluent Schema Registry API reference,
 * https://docs.confluent.io/platform/current/schema-registry/develop/api.html
 * (cited below as "API reference"). Bodies are JSON with the content type
 * application/vnd.schemaregistry.v1+json (API reference, "Content types").
 */

typedef struct answer {
    unsigned status;
    char *body; /* JSON text, malloc'd */
} answer_t;

static answer_t json_answer(unsigned status, json_t *obj) {
    answer_t a = {status, obj ? json_dumps(obj, JSON_COMPACT) : NULL};
    json_decref(obj);
    return a;
}

/* API reference, "Errors": every error status (4xx, 5xx) carries
 * {"error_code": <int>, "message": <string>}; error_code is the HTTP
 * status or a finer code that starts with it (40403, 50001). */
static answer_t error_answer(unsigned status, int error_code, const char *message) {
    return json_answer(status,
                       json_pack("{s:i, s:s}", "error_code", error_code, "message", message));
}

/* API reference, "Schemas", GET /schemas/ids/{int: id}: 200 with
 * {"schema": <the schema as a JSON string>}; "schemaType" is left out for
 * Avro (it is only given for other types). Errors: 404 with error_code
 * 40403 "Schema not found"; 500 with error_code 50001 "Error in the backend
 * datastore". Here a failing id answers its status with error_code
 * status * 100 + 1 (500 -> 50001). */
static answer_t get_schema(nx_registry_fixture_t *fx, uint32_t id) {
    answer_t a;
    int64_t now = mono_ms();
    pthread_mutex_lock(&fx->lock);
    id_rec_t *r = id_rec(fx, id);
    if (!r) {
        a = error_answer(500, 50001, "fixture: too many ids");
    } else {
        if (r->gets < MAX_TIMES)
            r->times[r->gets] = now;
        r->gets++;
        if (r->fail_until && now < r->fail_until) {
            char msg[64];
            snprintf(msg, sizeof msg, "%s",
                     r->fail_status == 500 ? "Error in the backend datastore" : "fixture: failing");
            a = error_answer((unsigned)r->fail_status, r->fail_status * 100 + 1, msg);
        } else if (r->schema) {
            a = json_answer(200, json_pack("{s:s}", "schema", r->schema));
        } else {
            a = error_answer(404, 40403, "Schema not found");
        }
    }
    pthread_mutex_unlock(&fx->lock);
    return a;
}

/* API reference, "Subjects", POST /subjects/(string: subject)/versions:
 * the request is {"schema": <the schema as a JSON string>} (schemaType
 * defaults to AVRO); 200 with {"id": <int>}, the schema's global id: the
 * same schema registered again, under this subject or another, gets the
 * id it has. Errors: 409 Conflict, "Incompatible schema" (error_code 409);
 * 422 with error_code 42201 "Invalid schema". */
static answer_t register_schema(nx_registry_fixture_t *fx, const char *subject, const char *body,
                                size_t len) {
    json_t *req = json_loadb(body ? body : "", len, 0, NULL);
    json_t *s = req ? json_object_get(req, "schema") : NULL;
    answer_t a;
    if (!json_is_string(s)) {
        json_decref(req);
        return error_answer(422, 42201, "Invalid schema");
    }
    const char *schema = json_string_value(s);
    pthread_mutex_lock(&fx->lock);
    if (fx->refuse) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "Schema being registered is incompatible with an earlier schema for subject "
                 "\"%.200s\"",
                 subject);
        a = error_answer(409, 409, msg);
        goto out;
    }
    int64_t id = -1;
    for (int i = 0; i < fx->n_ids && id < 0; i++)
        if (fx->ids[i].schema && strcmp(fx->ids[i].schema, schema) == 0)
            id = fx->ids[i].id;
    if (id < 0) {
        id_rec_t *r = id_rec(fx, (uint32_t)fx->next_id);
        if (!r || !(r->schema = strdup(schema))) {
            a = error_answer(500, 50001, "fixture: out of room");
            goto out;
        }
        id = fx->next_id++;
    }
    subject_rec_t *sr = NULL;
    for (int i = 0; i < fx->n_subjects && !sr; i++)
        if (strcmp(fx->subjects[i].subject, subject) == 0)
            sr = &fx->subjects[i];
    if (!sr && fx->n_subjects < MAX_SUBJECTS) {
        sr = &fx->subjects[fx->n_subjects++];
        sr->subject = strdup(subject);
    }
    if (sr) {
        free(sr->schema);
        sr->schema = strdup(schema);
        sr->id = id;
    }
    a = json_answer(200, json_pack("{s:I}", "id", (json_int_t)id));
out:
    pthread_mutex_unlock(&fx->lock);
    json_decref(req);
    return a;
}

/* A path the API does not have: Confluent's server answers 404 with
 * error_code 404 (not a 404xx code), which a client must not take for
 * "schema not found". */
static answer_t no_such_path(void) {
    return error_answer(404, 404, "HTTP 404 Not Found");
}

/* With basic authentication on (Confluent Platform security,
 * "HTTP Basic Authentication" for Schema Registry), a request without
 * valid credentials gets 401 with error_code 401 "Unauthorized". */
static answer_t unauthorized(void) {
    return error_answer(401, 401, "Unauthorized");
}

/* ---- serving -------------------------------------------------------------------- */

typedef struct request {
    char *body;
    size_t len;
} request_t;

static void base64(const char *in, char *out, size_t size) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n && o + 5 < size; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, answer_t a) {
    if (!a.body)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(a.body), a.body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(a.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/vnd.schemaregistry.v1+json");
    enum MHD_Result rc = MHD_queue_response(conn, a.status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls) {
    (void)version;
    nx_registry_fixture_t *fx = cls;
    request_t *req = *req_cls;
    if (!req) { /* headers only so far */
        if (!(req = calloc(1, sizeof *req)))
            return MHD_NO;
        *req_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size) {
        char *p = realloc(req->body, req->len + *upload_data_size + 1);
        if (!p)
            return MHD_NO;
        memcpy(p + req->len, upload_data, *upload_data_size);
        req->body = p;
        req->len += *upload_data_size;
        req->body[req->len] = '\0';
        *upload_data_size = 0;
        return MHD_YES;
    }

    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&fx->lock);
    snprintf(fx->last_auth, sizeof fx->last_auth, "%s", auth ? auth : "");
    int denied = fx->auth && !(auth && strcmp(auth, fx->auth) == 0);
    int delay = fx->delay_ms;
    pthread_mutex_unlock(&fx->lock);
    for (int64_t until = mono_ms() + delay; mono_ms() < until && !atomic_load(&fx->stopping);)
        usleep(5000);

    unsigned id;
    int used = 0;
    char subject[256];
    if (denied)
        return send_answer(conn, unauthorized());
    if (strcmp(method, "GET") == 0 && sscanf(url, "/schemas/ids/%u%n", &id, &used) == 1 &&
        url[used] == '\0')
        return send_answer(conn, get_schema(fx, id));
    if (strcmp(method, "POST") == 0 &&
        sscanf(url, "/subjects/%255[^/]/versions%n", subject, &used) == 1 && url[used] == '\0')
        return send_answer(conn, register_schema(fx, subject, req->body, req->len));
    return send_answer(conn, no_such_path());
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode why) {
    (void)cls, (void)conn, (void)why;
    request_t *req = *req_cls;
    if (req) {
        free(req->body);
        free(req);
        *req_cls = NULL;
    }
}

nx_registry_fixture_t *nx_registry_fixture_start(void) {
    return nx_registry_fixture_start_tls(NULL, NULL);
}

nx_registry_fixture_t *nx_registry_fixture_start_tls(const char *cert_pem, const char *key_pem) {
    int tls = cert_pem && key_pem;
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        fprintf(stderr, "registry_fixture: this libmicrohttpd has no TLS\n");
        return NULL;
    }
    nx_registry_fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return NULL;
    pthread_mutex_init(&fx->lock, NULL);
    fx->next_id = FIRST_ID;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    /* a thread per connection: a slow answer holds up only its own */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (tls)
        fx->mhd = MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, handle, fx,
                                   MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
                                   completed, fx, MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
                                   MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_END);
    else
        fx->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, fx, MHD_OPTION_SOCK_ADDR, &sa,
                                   MHD_OPTION_NOTIFY_COMPLETED, completed, fx, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        fx->mhd ? MHD_get_daemon_info(fx->mhd, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info) {
        fprintf(stderr, "registry_fixture: cannot listen on 127.0.0.1\n");
        nx_registry_fixture_stop(fx);
        return NULL;
    }
    snprintf(fx->url, sizeof fx->url, "%s://127.0.0.1:%u", tls ? "https" : "http",
             (unsigned)info->port);
    return fx;
}

void nx_registry_fixture_stop(nx_registry_fixture_t *fx) {
    if (!fx)
        return;
    atomic_store(&fx->stopping, 1);
    if (fx->mhd)
        MHD_stop_daemon(fx->mhd);
    for (int i = 0; i < fx->n_ids; i++)
        free(fx->ids[i].schema);
    for (int i = 0; i < fx->n_subjects; i++) {
        free(fx->subjects[i].subject);
        free(fx->subjects[i].schema);
    }
    free(fx->auth);
    pthread_mutex_destroy(&fx->lock);
    free(fx);
}

const char *nx_registry_fixture_url(const nx_registry_fixture_t *fx) {
    return fx->url;
}

int nx_registry_fixture_add(nx_registry_fixture_t *fx, uint32_t id, const char *schema) {
    int rc = -1;
    pthread_mutex_lock(&fx->lock);
    id_rec_t *r = id_rec(fx, id);
    char *copy = strdup(schema);
    if (r && copy) {
        free(r->schema);
        r->schema = copy;
        copy = NULL;
        rc = 0;
    }
    free(copy);
    pthread_mutex_unlock(&fx->lock);
    return rc;
}

void nx_registry_fixture_fail(nx_registry_fixture_t *fx, uint32_t id, int status, int64_t ms) {
    pthread_mutex_lock(&fx->lock);
    id_rec_t *r = id_rec(fx, id);
    if (r) {
        r->fail_status = status;
        r->fail_until = ms < 0 ? INT64_MAX : ms == 0 ? 0 : mono_ms() + ms;
    }
    pthread_mutex_unlock(&fx->lock);
}

void nx_registry_fixture_delay(nx_registry_fixture_t *fx, int delay_ms) {
    pthread_mutex_lock(&fx->lock);
    fx->delay_ms = delay_ms;
    pthread_mutex_unlock(&fx->lock);
}

void nx_registry_fixture_require_auth(nx_registry_fixture_t *fx, const char *user_info) {
    char *want = NULL;
    if (user_info) {
        char b64[512];
        base64(user_info, b64, sizeof b64);
        size_t n = strlen(b64) + 8;
        if ((want = malloc(n)))
            snprintf(want, n, "Basic %s", b64);
    }
    pthread_mutex_lock(&fx->lock);
    free(fx->auth);
    fx->auth = want;
    pthread_mutex_unlock(&fx->lock);
}

void nx_registry_fixture_refuse(nx_registry_fixture_t *fx, int refuse) {
    pthread_mutex_lock(&fx->lock);
    fx->refuse = refuse;
    pthread_mutex_unlock(&fx->lock);
}

int nx_registry_fixture_gets(nx_registry_fixture_t *fx, uint32_t id, int64_t *times, int max) {
    int n = 0;
    pthread_mutex_lock(&fx->lock);
    for (int i = 0; i < fx->n_ids; i++) {
        if (fx->ids[i].id != id)
            continue;
        n = fx->ids[i].gets;
        for (int k = 0; times && k < n && k < max && k < MAX_TIMES; k++)
            times[k] = fx->ids[i].times[k];
    }
    pthread_mutex_unlock(&fx->lock);
    return n;
}

int64_t nx_registry_fixture_registered(nx_registry_fixture_t *fx, const char *subject,
                                       char **schema) {
    int64_t id = -1;
    if (schema)
        *schema = NULL;
    pthread_mutex_lock(&fx->lock);
    for (int i = 0; i < fx->n_subjects; i++) {
        if (strcmp(fx->subjects[i].subject, subject) != 0)
            continue;
        id = fx->subjects[i].id;
        if (schema)
            *schema = strdup(fx->subjects[i].schema);
    }
    pthread_mutex_unlock(&fx->lock);
    return id;
}

void nx_registry_fixture_last_auth(nx_registry_fixture_t *fx, char *buf, size_t size) {
    pthread_mutex_lock(&fx->lock);
    snprintf(buf, size, "%s", fx->last_auth);
    pthread_mutex_unlock(&fx->lock);
}
