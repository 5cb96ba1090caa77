/*
 * registry.h: a Confluent Schema Registry client: the writer schemas of
 * Confluent-framed input by id, for the codec, and the registration of the
 * prediction schema at start-up.
 *
 * The REST subset used (Confluent Schema Registry API reference,
 * https://docs.confluent.io/platform/current/schema-registry/develop/api.html):
 *   GET  /schemas/ids/{id}              200 {"schema": "<text>"[, "schemaType": "AVRO"]}
 *   POST /subjects/{subject}/versions   {"schema": "<text>"}  ->  200 {"id": N}
 *   errors                              HTTP status, {"error_code": N, "message": "..."}
 * tests/common/registry_fixture.c serves the same subset.
 *
 * Lookups never wait on the network. An id seen for the first time is
 * queued and answered PENDING; one worker thread fetches queued ids in turn
 * (libcurl, one connection kept open). What a fetch brings:
 * - 200 with an Avro schema: FOUND from then on, the text kept for the
 *   registry's lifetime (an id names one schema forever).
 * - 404 with error_code 40403 ("Schema not found"), the only definitive no:
 *   NOT_FOUND. A schema of another type (PROTOBUF, JSON) counts the same,
 *   since only Avro can be decoded. The first lookup after
 *   not_found_retry_ms fetches it again (a schema may be registered late),
 *   answering NOT_FOUND until the new answer is in.
 * - anything else (no connection, timeout, 5xx, 401/403, a 404 without
 *   40403, which is a wrong URL rather than a missing schema, a body that is
 *   not the JSON expected): a failure, logged (rate-limited) and counted;
 *   the id stays PENDING and the first lookup after a backoff fetches it
 *   again. The backoff doubles from retry_backoff_ms, each wait longer by up
 *   to a quarter at random (so that daemons do not come back in step after
 *   an outage), and never over retry_backoff_max_ms.
 * With several URLs, a fetch tries the next one when one fails to answer
 * (no connection, timeout, 5xx) and stays with the one that answered.
 *
 * Bounds: NX_REGISTRY_MAX_IDS ids are tracked at once (ids not found give
 * way to new ones); an answer over NX_REGISTRY_MAX_BODY bytes is a failure.
 *
 * Threads: nx_registry_lookup and nx_registry_stats from any thread (one
 * mutex, held for a table scan, never across I/O); the worker runs from
 * nx_registry_new to nx_registry_destroy, which stops an exchange under way
 * within about a second. nx_registry_register blocks its caller for one
 * request per URL (start-up).
 *
 * Ownership: the registry copies its configuration. Schema texts returned
 * by lookup stay valid until nx_registry_destroy.
 */
#ifndef NX_REGISTRY_H
#define NX_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"

/* Ids tracked at once: far more schema versions than any topic has. */
#define NX_REGISTRY_MAX_IDS 1024
/* Largest answer read: real schemas are a few KiB. */
#define NX_REGISTRY_MAX_BODY (1 << 20)
/* Base URLs in input.schema_registry.url (comma-separated). */
#define NX_REGISTRY_MAX_URLS 8
/* How soon an id being fetched is worth asking about again, ms: a healthy
 * registry answers within a few ms, and each ask of a waiting partition
 * costs a seek and a fetch from the broker. */
#define NX_REGISTRY_POLL_MS 50

typedef struct nx_registry nx_registry_t;

typedef enum nx_registry_answer {
    NX_REGISTRY_FOUND,     /* *schema is the writer schema */
    NX_REGISTRY_PENDING,   /* being fetched, or waiting to be fetched again */
    NX_REGISTRY_NOT_FOUND, /* the registry said 40403 (or it is not Avro) */
} nx_registry_answer_t;

typedef struct nx_registry_stats {
    uint64_t fetches;   /* fetches of an id finished, any outcome */
    uint64_t found;     /* schemas fetched */
    uint64_t not_found; /* 40403 answers */
    uint64_t failures;  /* fetches that brought no definitive answer */
    uint64_t retries;   /* fetches of an id after a failure */
    int pending;        /* ids waiting for a definitive answer */
    int cached;         /* schemas held */
} nx_registry_stats_t;

/* Checks conf (URLs are http:// or https://, the TLS files readable, the
 * backoff bounds in order) and starts the worker. `name` is the settings'
 * group, for messages ("input.schema_registry"). NULL + errstr on a bad
 * setting or if the thread cannot start. Caller frees with
 * nx_registry_destroy(). */
nx_registry_t *nx_registry_new(const nx_config_registry_t *conf, const char *name, char *errstr,
                               size_t errstr_size);

/* Stops the worker and frees everything. NULL does nothing. */
void nx_registry_destroy(nx_registry_t *registry);

/* The schema of id: FOUND with *schema (NUL-terminated, valid until
 * destroy), or PENDING with *wait_ms, the time after which asking again may
 * give another answer, or NOT_FOUND (also when NX_REGISTRY_MAX_IDS ids are
 * waiting or found). Queues a fetch when one is due. Never blocks on I/O. */
nx_registry_answer_t nx_registry_lookup(nx_registry_t *registry, uint32_t id, const char **schema,
                                        int64_t *wait_ms);

/* The codec's view of this registry (nx_codec_set_source): FOUND, PENDING,
 * and NOT_FOUND as ABSENT. */
nx_codec_source_t nx_registry_source(nx_registry_t *registry);

/* Registers schema (text) under subject and sets *id to the id the registry
 * gives it (the existing one if it is registered already). Blocks. 0; -1
 * with errstr when the registry refuses (a 409: incompatible with the
 * subject's earlier versions; a 422: invalid schema; any other answer
 * below 500), which asking again will not change; or -2 with errstr when no
 * registry answered or every one answered 5xx, which may pass. */
int nx_registry_register(nx_registry_t *registry, const char *subject, const char *schema,
                         int64_t *id, char *errstr, size_t errstr_size);

void nx_registry_stats(nx_registry_t *registry, nx_registry_stats_t *stats);

#endif /* NX_REGISTRY_H */
