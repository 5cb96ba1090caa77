/*
 * changelog_int.h: what changelog.c (topics, flush, rebalances) and
 * changelog_restore.c (restore on assignment) share; not for other
 * modules, whose interface is changelog.h.
 */
#ifndef NX_CHANGELOG_INT_H
#define NX_CHANGELOG_INT_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "changelog.h"
#include "store.h"

#define POSITION_KEY     "nextactd.position"
#define POSITION_VERSION 1u

/* Changes taken from the store per slice of a flush. */
#define TAKE_SLICE 4096
/* Longest wait for the predictions before a periodic flush, and the retry
 * period when they are not all acknowledged: as run.c's checkpoints
 * (DRAIN_PERIODIC_MS, DRAIN_RETRY_MS), a flush pauses the loop at most
 * about this long. */
#define DRAIN_PERIODIC_MS 150
#define DRAIN_RETRY_MS    1000
/* Blocking calls of the transactional API: long enough for a broker to
 * answer under load, short enough that a stuck one is reported. */
#define TXN_TIMEOUT_MS 30000
/* An open transaction of a crashed instance holds back read_committed
 * readers (the next owner's restore) until the coordinator aborts it:
 * 10 s instead of librdkafka's 60 s default. */
#define TXN_ABORT_AFTER_MS "10000"
/* A restore whose position disagrees with the group's committed offsets
 * reads on after this pause (ms), for at most RESTORE_AGREE_MS in all. */
#define RESTORE_RETRY_MS 500
#define RESTORE_AGREE_MS 60000
/* Metadata and topic creation at start. */
#define ADMIN_TIMEOUT_MS 15000

enum { P_NONE = 0, P_RESTORING, P_LIVE };

/* A revoked partition's users, kept in memory until the next assignment:
 * if the partition comes back, they are put back and only the changelog's
 * records after `tail` are read on top of them (what another owner wrote
 * meanwhile, if anything) instead of the whole partition. Records as the
 * changelog carries them (nx_store_user_record), each after its user hash
 * (u64) and length (u32), oldest clock first (the expiry order). */
typedef struct kept {
    uint8_t *buf;
    size_t len, cap;
    uint64_t users;
    int64_t tail; /* changelog offset the users are the state up to (exclusive) */
    int64_t offset[NX_CONFIG_MAX_LIST]; /* input offsets the state ends at, per topic */
    int64_t clock[NX_CONFIG_MAX_LIST];  /* the partition's clock, per topic */
    int have;
} kept_t;

/* A change written in the open transaction, listed again if it aborts. */
typedef struct sent {
    uint64_t user;
    int32_t partition;
} sent_t;

typedef struct restore {
    int64_t next; /* next changelog offset to read; -1 = from the beginning */
    int64_t started_mono;
    int at_end;         /* the reader saw the partition's end (its last stable offset) */
    int64_t retry_mono; /* read on from here at this time (0 = not waiting) */
    uint64_t records, bytes, users, removed, bad;
    int have_position;
    int64_t offset[NX_CONFIG_MAX_LIST]; /* from the position record, per topic; -1 none */
    int64_t clock[NX_CONFIG_MAX_LIST];
    uint64_t kept; /* users put back from what was kept at the revoke (kept_t) */
} restore_t;

struct nx_changelog {
    const nx_config_t *cfg;
    nx_kafka_t *kafka;
    nx_pipeline_t *pipe;
    nx_store_t *store;
    nx_offsets_t *offs;
    uint64_t key_fp;
    char *topic;
    int n_topics;
    int32_t n_parts;       /* partitions of every input topic and of the changelog */
    rd_kafka_t *producer;  /* transactional */
    int borrowed;          /* producer is kafka's (exactly-once, txn.h) */
    rd_kafka_t *reader;    /* restore consumer (manual assignment) */
    rd_kafka_topic_t *rkt; /* the changelog topic, for the producer */
    uint8_t *state;        /* (n_parts) P_* */
    restore_t *rs;         /* (n_parts) restores under way */
    kept_t *kept;          /* (n_parts) revoked partitions' users, until the next assignment */
    int64_t *tail;         /* (n_parts) changelog offset this process's state covers, -1 unknown */
    int64_t *pend_max;     /* (n_parts) highest offset delivered in the open transaction, -1 */
    int64_t *committed;    /* (n_parts * n_topics) offsets last committed, -1 none */
    nx_store_change_t *take; /* (TAKE_SLICE) */
    sent_t *sent;            /* changes of the open transaction */
    size_t n_sent, cap_sent;
    sent_t *deferred; /* changes of partitions being restored, listed again after */
    size_t n_deferred, cap_deferred;
    uint8_t *rec; /* one user record */
    size_t rec_size;
    int64_t last_flush_mono, retry_mono;
    uint64_t lost_seen; /* nx_store_changes_lost at the last flush */
    nx_changelog_stats_t st;
};

/* Byte order of the position record: little-endian. */
static inline void nx_changelog_put_u16(uint8_t *b, uint16_t v) {
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}
static inline void nx_changelog_put_u64(uint8_t *b, uint64_t v) {
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t nx_changelog_get_u16(const uint8_t *b) {
    return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint64_t nx_changelog_get_u64(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* The input offset last committed for (topic, partition p); -1 none. */
static inline int64_t *nx_changelog_committed_at(nx_changelog_t *cl, int topic, int32_t p) {
    return &cl->committed[(size_t)p * (size_t)cl->n_topics + (size_t)topic];
}

/* changelog_restore.c */
/* Forgets what this process held of partition p: users, offsets, commits. */
void nx_changelog_drop_partition(nx_changelog_t *cl, int32_t p);
/* Starts restoring partition p (the reader is reassigned after). */
void nx_changelog_restore_begin(nx_changelog_t *cl, int32_t p);
/* Points the restore reader at every partition being restored. */
void nx_changelog_reader_assign(nx_changelog_t *cl);
/* Reads restore records for about budget_us; ends finished restores. */
void nx_changelog_restore_slice(nx_changelog_t *cl, int64_t budget_us);
/* Partitions being restored. */
int nx_changelog_restoring(const nx_changelog_t *cl);
/* Keeps the users of each partition p with which[p] in cl->kept[p] (before
 * they are dropped), in one pass over the store; what memory does not
 * allow is not kept (logged). */
void nx_changelog_keep(nx_changelog_t *cl, const uint8_t *which);
/* Puts partition p's kept users back and starts its restore from where
 * they end; 0, or -1 (logged: the caller restores it whole). */
int nx_changelog_unkeep(nx_changelog_t *cl, int32_t p);
/* Frees what is kept of partition p. */
void nx_changelog_kept_free(nx_changelog_t *cl, int32_t p);

#endif
