/*
 * changelog.h: per-user state in a compacted Kafka topic, the way Kafka
 * Streams keeps a store's changelog (DESIGN.md, Scale-out).
 *
 * Topic (state.changelog): as many partitions as the input topics, which
 * must be co-partitioned (checked at start: exit 78 otherwise); created
 * with cleanup.policy=compact when missing, refused when its partition
 * count differs. Changelog partition p holds the users of input partition
 * p. Records:
 * - key = the user's keyed hash, 8 bytes big-endian (never the raw id);
 *   value = the store's versioned user record (nx_store_user_record), or
 *   no value (a tombstone) when the user left the store;
 * - key "nextactd.position", one per partition: u8 version 1, u8 topic
 *   count, u64 fingerprint of the user-id hash key, then per input topic
 *   u16 name length, the name, i64 the next input offset the state covers
 *   (-1 = none yet), i64 the partition clock (largest event time seen,
 *   ms; INT64_MIN = none); integers little-endian.
 *
 * Flush (every kafka.commit_interval_ms, on revoke and at shutdown): the
 * prediction producer is drained first (as before a checkpoint: an offset
 * is committed only after its prediction is acknowledged), then ONE
 * transaction of the changelog's transactional producer
 * (transactional.id "<group_id>-state-<instance_id>") holds the records of
 * the users changed since the last flush, their tombstones, the position
 * records and the input offsets (rd_kafka_send_offsets_to_transaction with
 * the consumer's group metadata). In changelog mode this is the only way
 * input offsets are committed, so the committed offsets and the changelog
 * agree, and a zombie of an older group generation is fenced. An abortable
 * error aborts the transaction and lists the users again (the next flush
 * writes them); a fatal one (fenced) marks the changelog failed: the loop
 * stops and the daemon exits 1.
 *
 * Exactly-once (kafka.transactional): the changelog has no producer of its
 * own; kafka.c's producer, transactional under the same id, carries the
 * predictions too, and txn.c decides when its transactions commit (the
 * periodic and the revoke flush above are left to it: nx_changelog_txn_*).
 *
 * Restore: a partition assigned to this instance is held (nx_kafka_hold),
 * its stale users dropped, and its changelog partition read from the
 * beginning to its end (read_committed, a consumer of its own with no
 * group), in bounded slices from the loop's tick while the other
 * partitions flow: user records put, tombstones remove, the position
 * record sets the offsets map and the partition clock. Bad records are
 * counted and skipped. Then the input partitions are released and resume at
 * the group's committed offset, which the transaction made equal to the
 * position. Partitions assigned together are restored together, each
 * released as soon as its own end is read.
 *
 * Ownership: the changelog borrows cfg, kafka, pipe and offs (they outlive
 * it); it owns its producer and restore consumer. Not thread-safe: the
 * loop's thread (rebalance hooks run there).
 */
#ifndef NX_CHANGELOG_H
#define NX_CHANGELOG_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kafka.h"
#include "offsets.h"
#include "pipeline.h"

typedef struct nx_changelog nx_changelog_t;

typedef struct nx_changelog_stats {
    uint64_t flushes;         /* transactions committed */
    uint64_t aborts;          /* transactions aborted (their users written later) */
    uint64_t records;         /* user records written */
    uint64_t tombstones;      /* tombstones written */
    uint64_t bytes;           /* keys and values written, bytes (before compression) */
    uint64_t bad_records;     /* records skipped at restore */
    uint64_t restore_records; /* records read at restore */
    uint64_t restore_bytes;   /* their keys and values, bytes */
    uint64_t restored_users;  /* users put into the store at restore */
    uint64_t restores_kept;   /* restores that started from the users kept at a revoke */
    double restore_seconds;   /* time spent restoring, s */
    int restoring;            /* partitions restoring or waiting to */
    int failed;               /* 1 after a fatal producer error */
} nx_changelog_stats_t;

/* Checks co-partitioning of the input topics, creates or checks the
 * changelog topic, starts the transactional producer (fencing an older
 * instance of the same id) and the restore consumer, and turns the store's
 * change tracking on. key_fp: fingerprint of the user-id hash key, written
 * into position records and checked at restore. NULL + errstr and *status
 * (78 for a topic layout or configuration problem, 1 otherwise). Caller
 * frees with nx_changelog_destroy. */
nx_changelog_t *nx_changelog_new(const nx_config_t *cfg, nx_kafka_t *kafka, nx_pipeline_t *pipe,
                                 nx_offsets_t *offs, uint64_t key_fp, int *status, char *errstr,
                                 size_t errstr_size);
void nx_changelog_destroy(nx_changelog_t *cl);

/* From the `assigned` hook: holds the new partitions and queues their
 * restore (from what was kept of them, if anything); frees what was kept
 * of the partitions that went elsewhere. */
void nx_changelog_assign(nx_changelog_t *cl, const rd_kafka_topic_partition_list_t *parts);

/* From the `revoked` hook: flushes (unless lost), then drops the
 * partitions' users and offsets. When everything of theirs is in the
 * changelog (the flush, or with exactly-once the revoke's commit, went
 * through: committed = 1), their users are kept in memory until the next
 * assignment: a partition that comes back (an eager rebalance revokes
 * every partition, and gives most back) reads only the changelog's records
 * written after them. */
void nx_changelog_revoke(nx_changelog_t *cl, const rd_kafka_topic_partition_list_t *parts, int lost,
                         int committed);

/* From the loop, every iteration: a restore slice (at most budget_us) and
 * the periodic flush. now_mono: ms. */
void nx_changelog_tick(nx_changelog_t *cl, int64_t now_mono, int64_t budget_us);

/* Flushes now, waiting up to kafka.flush_timeout_ms for the predictions
 * (shutdown). 0, or -1 if nothing could be committed (logged). */
int nx_changelog_flush(nx_changelog_t *cl);

void nx_changelog_stats(const nx_changelog_t *cl, nx_changelog_stats_t *stats);

/* Exactly-once (kafka.transactional; txn.h drives the transaction, which
 * is open on kafka's producer, the changelog's then): the periodic and the
 * revoke flush are left to txn.c, which calls these.
 * txn_write: produces the changed users and the position records into the
 * open transaction; returns the input offsets to commit with it (NULL if
 * none moved; caller destroys), *written the user records and tombstones
 * produced, *e an error (caller destroys) when producing failed.
 * txn_end: after the commit (ok) or the abort of that transaction.
 * rewind: after an abort, every live partition goes back to what the last
 * committed transaction covers: its input held and sought back to the
 * committed offsets, its users dropped and restored from the changelog. */
rd_kafka_topic_partition_list_t *nx_changelog_txn_write(nx_changelog_t *cl, size_t *written,
                                                        rd_kafka_error_t **e);
void nx_changelog_txn_end(nx_changelog_t *cl, rd_kafka_topic_partition_list_t *offsets, int ok);
void nx_changelog_rewind(nx_changelog_t *cl);

#endif /* NX_CHANGELOG_H */
