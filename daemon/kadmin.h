/*
 * kadmin.h: what nextactd's own clients (the changelog's, model sync's)
 * need at start: their configuration, how many partitions a topic has, and
 * creating a compacted one.
 *
 * Both block (bounded by timeout_ms) and are for start-up only. rk is any
 * client handle (a producer is fine); nothing is kept.
 */
#ifndef NX_KADMIN_H
#define NX_KADMIN_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

/* A client configuration: bootstrap.servers = brokers, the daemon's log
 * level, the user's pass-through properties in pass (security settings
 * apply to these clients too), then props (name, value, ..., NULL), log
 * lines through log_cb. NULL + errstr ("WHO: name = value: why"). */
rd_kafka_conf_t *nx_kadmin_client_conf(const char *who, const char *brokers,
                                       const nx_strmap_t *pass, const char *const *props,
                                       void (*log_cb)(const rd_kafka_t *, int, const char *,
                                                      const char *),
                                       char *errstr, size_t errstr_size);

/* Partitions of topic: the count, 0 if the topic does not exist, -1 +
 * errstr on error. */
int nx_kadmin_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                         size_t errstr_size);

/* Creates topic with cleanup.policy=compact, `partitions` partitions,
 * replication factor `replication` (-1: the broker's default) and the
 * extra topic configs in configs (name, value, ..., NULL; may be NULL).
 * A topic that exists already (another instance was first) is no error.
 * Then waits until the metadata shows it. 0, or -1 + errstr. */
int nx_kadmin_create_compacted(rd_kafka_t *rk, const char *topic, int partitions, int replication,
                               const char *const *configs, int timeout_ms, char *errstr,
                               size_t errstr_size);

#endif /* NX_KADMIN_H */
