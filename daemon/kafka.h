/*
 * kafka.h: nextactd's Kafka side: one consumer in a consumer group over the
 * input topics, one producer for predictions and dead letters, and the
 * bookkeeping that makes delivery at-least-once.
 *
 * At-least-once: enable.auto.offset.store=false. Every consumed record gets
 * a ticket (nx_kafka_track); when the pipeline is done with it (its
 * prediction or dead letter acknowledged by the broker, or nothing to
 * produce) the ticket is marked done, and a partition's stored offset
 * advances over the longest prefix of done records.
 *
 * Exactly-once (kafka.transactional; txn.h): the producer is transactional
 * (transactional.id from nx_txn_id) and shared with the changelog; a failed
 * delivery is never produced again here: its transaction aborts and the
 * span is processed again.
 *
 * Commits: enable.auto.commit=false. This module never commits on its own:
 * the owner decides what may be committed, because an offset may only be
 * committed once the state it changed is durable (DESIGN.md, Durability).
 * nx_kafka_commit_offsets commits offsets the owner names (those a durable
 * checkpoint covers); nx_kafka_commit_acknowledged commits the stored
 * offsets (for an owner that keeps no durable state between checkpoints).
 * Either commits only partitions this consumer owns.
 *
 * Rebalances: the eager protocol only (librdkafka's "range,roundrobin";
 * configuration refuses cooperative-sticky, which librdkafka 2.0.2 can abort
 * on when closed before its first assignment, fixed in 2.3.0). The callback
 * tells the owner through hooks: `assigned` before consumption of new
 * partitions starts (it may set start offsets, e.g. from a checkpoint),
 * `revoked` after their in-flight records were delivered and committed (it
 * may save and drop the partitions' user state).
 *
 * Back-pressure: when the producer's queue or a partition's ticket ring is
 * full, nx_kafka_poll_batch pauses the assigned partitions and keeps serving
 * callbacks (so the consumer stays in its group, well within
 * max.poll.interval.ms) until they drain, then resumes.
 *
 * Rewinds: a record the owner cannot handle yet (its writer schema is still
 * being fetched) is not tracked; nx_kafka_rewind sends its partition back
 * to it and pauses that partition for a while, the others flowing on. The
 * partition's records after it that were polled already are not tracked
 * either: they are fetched again. So nothing is lost, and the stored
 * offsets, which advance over tracked records only, never pass it.
 *
 * Mock mode: kafka.brokers = "mock" creates librdkafka's in-process mock
 * cluster with the input, output and dead-letter topics (for the demo and
 * fault-injection tests); everything else is the same code.
 *
 * Threads: all calls from the owning (main) thread. Delivery reports run in
 * that thread too (served by rd_kafka_poll in nx_kafka_poll_batch).
 */
#ifndef NX_KAFKA_H
#define NX_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct nx_kafka nx_kafka_t;

/* The performance settings nextactd gives its producer and consumer
 * before the user's pass-through properties (kafka.producer,
 * kafka.consumer), as name, value, ..., NULL. Exported so that a benchmark
 * can run a plain client loop with the same settings. */
extern const char *const nx_kafka_producer_tuning[];
extern const char *const nx_kafka_consumer_tuning[];

/* A consumed record's place in the at-least-once bookkeeping. */
typedef uint64_t nx_ticket_t;
#define NX_TICKET_NONE 0

typedef struct nx_kafka_hooks {
    /* New partitions, before they are consumed. Set parts->elems[i].offset
     * to start elsewhere than the committed offset (RD_KAFKA_OFFSET_INVALID
     * leaves it). topic_index: index in kafka.input_topics. */
    void (*assigned)(void *opaque, rd_kafka_topic_partition_list_t *parts);
    /* Partitions taken away, after their predictions were flushed, while
     * they are still assigned (the hook may commit them; see
     * nx_kafka_revoke_lost). */
    void (*revoked)(void *opaque, const rd_kafka_topic_partition_list_t *parts);
    /* A produced record was acknowledged (err 0) or failed for good.
     * latency_ms: from the consumed record's broker timestamp (its
     * producer's create time) to now, -1 if unknown. ack_us: from its
     * produce() call to now, -1 if unknown. */
    void (*delivered)(void *opaque, int is_dead_letter, rd_kafka_resp_err_t err, int64_t latency_ms,
                      int64_t ack_us);
    void *opaque;
} nx_kafka_hooks_t;

typedef struct nx_kafka_stats {
    uint64_t consumed;         /* records consumed */
    uint64_t produced;         /* predictions acknowledged */
    uint64_t dead_letters;     /* dead letters acknowledged */
    uint64_t produce_retries;  /* records produced again after a failed delivery */
    uint64_t produce_failures; /* delivery errors (each retried) */
    uint64_t pauses;           /* back-pressure pauses */
    uint64_t rebalances;
    uint64_t commits;         /* offset commits acknowledged by the coordinator */
    uint64_t commit_failures; /* offset commits refused or failed */
    uint64_t rewinds;         /* nx_kafka_rewind calls */
    int assigned_partitions;
    int paused;           /* 1 while back-pressure holds the input paused */
    int held_partitions;  /* partitions sent back by nx_kafka_rewind whose record has
                           * not been tracked since: paused, or fetching it again */
    int producer_queue;   /* records produced and not yet acknowledged */
    int64_t consumer_lag; /* sum over assigned partitions, from statistics; -1 unknown */
    int brokers_up;       /* the consumer's cluster brokers connected (state UP), from
                           * statistics; -1 before the first */
} nx_kafka_stats_t;

/* One input partition's consumer lag (records behind its high watermark). */
typedef struct nx_kafka_lag {
    int topic; /* index in kafka.input_topics */
    int32_t partition;
    int64_t lag;
} nx_kafka_lag_t;
#define NX_KAFKA_MAX_LAGS 64

/* Consumer lag per assigned partition from librdkafka's last statistics
 * (statistics.interval.ms, 5 s): copies up to max into out, returns the
 * count (0 before the first statistics). */
int nx_kafka_lags(const nx_kafka_t *kafka, nx_kafka_lag_t *out, int max);

/* Creates consumer and producer from cfg->kafka (brokers, group, topics,
 * pass-through properties), subscribes to the input topics. Copies what it
 * needs from cfg. NULL + errstr on failure. Caller frees with
 * nx_kafka_destroy() after nx_kafka_close(). */
nx_kafka_t *nx_kafka_new(const nx_config_t *cfg, const nx_kafka_hooks_t *hooks, char *errstr,
                         size_t errstr_size);

/* Bootstrap servers actually used ("mock" resolves to the mock cluster's
 * address). Valid for the handle's lifetime. */
const char *nx_kafka_brokers(const nx_kafka_t *kafka);

/* Polls up to max records into msgs (caller destroys each with
 * rd_kafka_message_destroy), waiting at most timeout_ms for the first.
 * Serves delivery reports and rebalance callbacks; applies back-pressure.
 * Consumer errors are logged (fatal ones return -1); partition EOF and
 * errors are not returned as messages. Returns the count, or -1 on a
 * fatal consumer error. */
int nx_kafka_poll_batch(nx_kafka_t *kafka, rd_kafka_message_t **msgs, int max, int timeout_ms);

/* Index of a consumed record's topic in kafka.input_topics, -1 if unknown. */
int nx_kafka_topic_index(nx_kafka_t *kafka, const rd_kafka_message_t *msg);

/* Takes a ticket for a consumed record; records of one partition must be
 * tracked in consumption order. NX_TICKET_NONE if the record's partition is
 * not assigned any more (a stale record after a revoke: skip it). */
nx_ticket_t nx_kafka_track(nx_kafka_t *kafka, const rd_kafka_message_t *msg);

/* Sends input partition (topic index, partition) back to `offset` (a record
 * polled and not tracked, and the owner skips that partition's later
 * records in hand) and pauses it for hold_ms; nx_kafka_poll_batch resumes
 * it then (with the rest of the input, if back-pressure holds it). A
 * rewind of a held partition moves its offset and time. 0, or -1 if the
 * partition is not assigned (a stale record). */
int nx_kafka_rewind(nx_kafka_t *kafka, int topic, int32_t partition, int64_t offset,
                    int64_t hold_ms);

/* Sends input partition (topic index, partition) back to offset (or a
 * logical one: RD_KAFKA_OFFSET_BEGINNING) after an aborted transaction:
 * pauses it and seeks; it resumes at the next poll unless the owner holds
 * it (nx_kafka_hold), then at its release. 0, or -1 if not assigned. */
int nx_kafka_seek_back(nx_kafka_t *kafka, int topic, int32_t partition, int64_t offset);

/* Exactly-once, after an aborted transaction: every record in flight was
 * in it; their tickets are forgotten (their delivery reports, failures,
 * change nothing) so the rings do not hold back the input. */
void nx_kafka_forget_inflight(nx_kafka_t *kafka);

/* The record of this ticket needs nothing produced: done now. */
void nx_kafka_done(nx_kafka_t *kafka, nx_ticket_t ticket);

/* Produces a prediction (key = user id) for the record of `ticket`; the
 * ticket is done when the broker acknowledges it. Copies key and value.
 * Failed deliveries are produced again (counted), never skipped.
 * Returns 0, or -1 if the producer refused it for good (logged). */
int nx_kafka_produce(nx_kafka_t *kafka, nx_ticket_t ticket, const void *key, size_t key_len,
                     const void *value, size_t value_len);

/* Produces the original bytes of a bad record to the dead-letter topic with
 * headers nx-reason, nx-source-topic, nx-source-partition, nx-source-offset;
 * the ticket is done when acknowledged (at once if there is no dead-letter
 * topic). */
int nx_kafka_dead_letter(nx_kafka_t *kafka, nx_ticket_t ticket, const rd_kafka_message_t *msg,
                         const char *reason);

/* A partition's next offset to read. topic: index in kafka.input_topics. */
typedef struct nx_kafka_offset {
    int topic;
    int32_t partition;
    int64_t offset;
} nx_kafka_offset_t;

/* Commits the given offsets of the partitions this consumer owns (others,
 * negative offsets and offsets already committed by this process are left
 * out). async: the result is served by a later nx_kafka_poll_batch
 * (counted, failures logged); else waits for it. 0, or -1 if the commit
 * failed (sync) or could not be sent (async). */
int nx_kafka_commit_offsets(nx_kafka_t *kafka, const nx_kafka_offset_t *offs, int n, int async);

/* Commits the acknowledged (stored) offsets of the owned partitions, after
 * serving pending delivery reports. As nx_kafka_commit_offsets. */
int nx_kafka_commit_acknowledged(nx_kafka_t *kafka, int async);

/* The group's committed offsets for parts (each element's offset is set;
 * RD_KAFKA_OFFSET_INVALID where none), waiting at most timeout_ms. Blocks:
 * for rebalance hooks and start-up. 0 or -1 (logged). */
int nx_kafka_committed(nx_kafka_t *kafka, rd_kafka_topic_partition_list_t *parts, int timeout_ms);

/* The first offset still in the partition's log (its low watermark),
 * asked of the broker (blocks up to timeout_ms); -1 on error. */
int64_t nx_kafka_log_start(nx_kafka_t *kafka, const char *topic, int32_t partition, int timeout_ms);

/* Holds an assigned input partition paused (topic: index in
 * kafka.input_topics), e.g. while its state is restored: called from the
 * `assigned` hook, the partition is paused as soon as it is assigned, and
 * back-pressure resumes leave it paused. Released, it resumes from where
 * the consumer stands (its committed offset if nothing was fetched). A
 * revoke forgets the hold. 0, or -1 if the partition is not assigned. */
int nx_kafka_hold(nx_kafka_t *kafka, int topic, int32_t partition);
void nx_kafka_release(nx_kafka_t *kafka, int topic, int32_t partition);
/* Partitions held now. */
int nx_kafka_holding(const nx_kafka_t *kafka);

/* The consumer handle (its group metadata goes into transactions that
 * commit input offsets: changelog.h). */
rd_kafka_t *nx_kafka_consumer(nx_kafka_t *kafka);

/* Inside the `revoked` hook: 1 if the partitions were lost (session timed
 * out; committing them would fail), else 0. */
int nx_kafka_revoke_lost(const nx_kafka_t *kafka);

/* Flushes the producer for at most timeout_ms; returns records left. */
int nx_kafka_flush(nx_kafka_t *kafka, int timeout_ms);

/* Shutdown: flush (bounded by kafka.flush_timeout_ms) and leave the group;
 * commits nothing (the owner commits first). Safe to call once; destroy
 * after. */
void nx_kafka_close(nx_kafka_t *kafka);
/* After nx_kafka_close: 1 if leaving the group did not finish in time. The
 * consumer and its threads are then left running (destroying it would wait
 * on that same close): the process should end with _exit. */
int nx_kafka_close_unfinished(const nx_kafka_t *kafka);
void nx_kafka_destroy(nx_kafka_t *kafka);

void nx_kafka_stats(const nx_kafka_t *kafka, nx_kafka_stats_t *stats);

/* The producer handle (the generator of the demo produces through it). */
rd_kafka_t *nx_kafka_producer(nx_kafka_t *kafka);

/* Exactly-once: fn is told of each record delivered through the producer
 * that is not a prediction or a dead letter (the changelog's, which share
 * its transactions), from the thread that polls the producer. */
void nx_kafka_on_other_delivery(nx_kafka_t *kafka,
                                void (*fn)(void *opaque, const rd_kafka_message_t *m),
                                void *opaque);

#endif /* NX_KAFKA_H */
