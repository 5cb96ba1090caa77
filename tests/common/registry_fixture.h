/*
 * registry_fixture.h: a Confluent Schema Registry stand-in for tests: an
 * HTTP server on 127.0.0.1 (libmicrohttpd, a thread per connection) serving
 * the REST subset nextactd uses (daemon/registry.h), with faults on demand:
 * slow answers, HTTP errors for an id for a while, 409 on registration,
 * basic authentication required.
 *
 * Every answer nextactd's client relies on is made in registry_fixture.c,
 * next to the part of Confluent's API reference it follows.
 *
 * Threads: the setters and readers may be called from any thread while
 * the server answers (one mutex). For tests only: nothing here is bounded
 * for untrusted clients beyond what a test needs.
 */
#ifndef NX_REGISTRY_FIXTURE_H
#define NX_REGISTRY_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

typedef struct nx_registry_fixture nx_registry_fixture_t;

/* Listens on 127.0.0.1, a port of the kernel's choosing. NULL on error
 * (printed). Stop with nx_registry_fixture_stop. */
nx_registry_fixture_t *nx_registry_fixture_start(void);
void nx_registry_fixture_stop(nx_registry_fixture_t *fx);

/* The same over HTTPS, with the server certificate and its private key
 * given as PEM text (read during the call); NULL if this libmicrohttpd
 * has no TLS (printed). */
nx_registry_fixture_t *nx_registry_fixture_start_tls(const char *cert_pem, const char *key_pem);

/* "http://127.0.0.1:PORT" ("https://" with TLS). Valid until stop. */
const char *nx_registry_fixture_url(const nx_registry_fixture_t *fx);

/* GET /schemas/ids/{id} serves `schema` (copied) from now on. 0 or -1. */
int nx_registry_fixture_add(nx_registry_fixture_t *fx, uint32_t id, const char *schema);

/* GET /schemas/ids/{id} answers HTTP `status` (500: error_code 50001) for
 * the next `ms` milliseconds (ms < 0: until told otherwise, 0: from now on
 * the real answer). */
void nx_registry_fixture_fail(nx_registry_fixture_t *fx, uint32_t id, int status, int64_t ms);

/* Every answer waits delay_ms first (0: none). */
void nx_registry_fixture_delay(nx_registry_fixture_t *fx, int delay_ms);

/* Requests without basic authentication as `user_info` ("user:password")
 * get 401; NULL: no authentication. */
void nx_registry_fixture_require_auth(nx_registry_fixture_t *fx, const char *user_info);

/* POST /subjects/{subject}/versions answers 409 (incompatible) while
 * refuse is 1; registers (ids from 100 up) while 0, the default. */
void nx_registry_fixture_refuse(nx_registry_fixture_t *fx, int refuse);

/* GET /schemas/ids/{id} requests received so far; up to max of their
 * arrival times (monotonic ms) into times (may be NULL). */
int nx_registry_fixture_gets(nx_registry_fixture_t *fx, uint32_t id, int64_t *times, int max);

/* The id the last registration under subject got, or -1; with schema, a
 * copy of the registered text (caller frees). */
int64_t nx_registry_fixture_registered(nx_registry_fixture_t *fx, const char *subject,
                                       char **schema);

/* The Authorization header of the last request ("" if none). */
void nx_registry_fixture_last_auth(nx_registry_fixture_t *fx, char *buf, size_t size);

#endif /* NX_REGISTRY_FIXTURE_H */
