/*
 * txn.h: exactly-once (kafka.transactional = true): the predictions and dead
 * letters of a span of input, the changelog records of the state that span
 * produced and the span's input offsets go into ONE Kafka transaction
 * (DESIGN.md, Durability and delivery).
 *
 * The producer: kafka.c's, made transactional (transactional.id
 * "<group_id>-state-<instance_id>", nx_txn_id); the changelog borrows it
 * and its init_transactions fences an earlier process of the same id and
 * aborts what that one left open. So a restarted instance, or a zombie of
 * it, can never commit what its successor also commits.
 *
 * Spans: a transaction is always open while the loop runs; predictions are
 * produced into it as they come (nx_txn_note counts them and keeps their
 * input timestamps). It commits every kafka.transaction_interval_ms or once
 * it holds kafka.transaction_max_events predictions (nx_txn_tick), before
 * partitions are revoked (nx_txn_revoke) and at shutdown: the changelog
 * writes the users changed since the last commit and the position records
 * into it, the input offsets the state covers go in with the consumer's
 * group metadata, and rd_kafka_commit_transaction flushes and commits the
 * lot. A read_committed consumer then sees each input offset's prediction
 * exactly once, however the daemon crashes.
 *
 * Abortable errors (a failed delivery, a refused offset commit, a timeout):
 * the transaction is aborted and everything goes back to what the last
 * committed one covers: every live partition's users are dropped and
 * restored from the changelog (changelog.h, Restore), its input is sought
 * back to the committed position, and the span is processed again. What
 * is not per-user state is not rewound: the model may learn from the
 * span's examples twice, and the cross-user item tables
 * (features.item_popularity, item_rates) count its events twice.
 * Fatal errors (fenced by a newer instance of the same id, or the producer
 * failed for good): nx_txn_failed says so; the loop stops and the daemon
 * exits NX_EXIT_FENCED; systemd restarts it.
 *
 * Latency: a prediction is visible at its transaction's commit, so the
 * latency histogram is taken then (hooks.committed), not at the delivery
 * report.
 *
 * Test-only environment: NX_DEBUG_TXN_POISON=K puts into the K-th
 * non-empty transaction one record the broker refuses (2 MB, over a
 * topic's default max.message.bytes; the producer must be allowed it:
 * kafka.producer { message_max_bytes = "3000000"; }), a real produce
 * error that aborts it. Not meant for production.
 *
 * Ownership: borrows cfg, kafka and the changelog (they outlive it). Not
 * thread-safe: the loop's thread (rebalance hooks run there).
 */
#ifndef NX_TXN_H
#define NX_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "changelog.h"
#include "config.h"
#include "kafka.h"

/* Exit status after the transactional producer was fenced or failed
 * fatally (sysexits' EX_UNAVAILABLE): systemd restarts the unit. */
#define NX_EXIT_FENCED 69

/* Buckets of the transaction duration histogram: upper bounds in txn.c. */
#define NX_TXN_BUCKETS 14

typedef struct nx_txn nx_txn_t;

typedef struct nx_txn_hooks {
    /* A transaction committed. in_ts: the input broker timestamps (ms, <= 0
     * unknown) of its n predictions, valid during the call; now_wall_ms:
     * when the commit returned. */
    void (*committed)(void *opaque, const int64_t *in_ts, size_t n, int64_t now_wall_ms);
    void *opaque;
} nx_txn_hooks_t;

typedef struct nx_txn_stats {
    uint64_t committed;                 /* non-empty transactions committed */
    uint64_t aborted;                   /* transactions aborted (state rewound) */
    uint64_t dur_count[NX_TXN_BUCKETS]; /* open -> committed, per bucket */
    double dur_sum_s;
    double commit_s; /* time the loop spent committing, s */
    int failed;      /* fenced or fatal: the loop stops */
} nx_txn_stats_t;

/* Upper bound of bucket i of the duration histogram, seconds (INFINITY for
 * the last). */
double nx_txn_bucket_le(int i);

/* This instance's name (state.instance_id, else the host name) and the
 * transactional.id it writes under: "<group_id>-state-<instance>". */
void nx_txn_instance(const nx_config_t *cfg, char *buf, size_t size);
void nx_txn_id(const nx_config_t *cfg, char *buf, size_t size);

/* After nx_changelog_new (whose init_transactions fenced the predecessor):
 * opens the first transaction on kafka's producer. NULL + errstr. Caller
 * frees with nx_txn_destroy. */
nx_txn_t *nx_txn_new(const nx_config_t *cfg, nx_kafka_t *kafka, nx_changelog_t *cl,
                     const nx_txn_hooks_t *hooks, char *errstr, size_t errstr_size);
void nx_txn_destroy(nx_txn_t *txn);

/* A prediction was produced into the open transaction; in_ts_ms: its input
 * record's broker timestamp (<= 0 unknown). */
void nx_txn_note(nx_txn_t *txn, int64_t in_ts_ms);

/* The longest the loop may wait for input before the open transaction is
 * due (at most wait_ms). */
int nx_txn_wait_ms(const nx_txn_t *txn, int64_t now_mono, int wait_ms);

/* From the loop: commits when the interval has passed or the transaction
 * is full. now_mono: ms. */
void nx_txn_tick(nx_txn_t *txn, int64_t now_mono);

/* Commits now; final: no transaction is opened after it (shutdown).
 * 0 committed, 1 aborted (state rewound, the span is read again), -1
 * failed for good (logged). */
int nx_txn_commit(nx_txn_t *txn, int final);

/* From the `revoked` hook, before the changelog drops the partitions:
 * commits the open transaction, or aborts it when the partitions were lost
 * (their offsets can no longer be committed by this member). Revokes are
 * eager, every partition goes: an abort here rewinds nothing, the
 * partitions' next owner restores them. 0 if committed (everything of the
 * partitions is in the changelog), else nonzero. */
int nx_txn_revoke(nx_txn_t *txn, int lost);

int nx_txn_failed(const nx_txn_t *txn);
void nx_txn_stats(const nx_txn_t *txn, nx_txn_stats_t *stats);

#endif /* NX_TXN_H */
