/*
 * kafka_int.h: nextactd's Kafka client state, private to kafka.c (the
 * clients, callbacks, rebalances, the loop's calls), kafka_track.c (the
 * at-least-once tickets: which consumed records are done, and the offsets
 * that follow from them) and kafka_stats.c (librdkafka's statistics read).
 * Everyone else uses kafka.h.
 *
 * Threads: as kafka.h: every field belongs to the owning (main) thread;
 * librdkafka's callbacks run there too.
 */
#ifndef NX_KAFKA_INT_H
#define NX_KAFKA_INT_H

#include <stdint.h>

#include "kafka.h" /* librdkafka/rdkafka.h first: rdkafka_mock.h needs it */

#include <librdkafka/rdkafka_mock.h>

/* Records of one partition in flight (consumed, not yet acknowledged). At
 * 65536 a partition is paused until its head is acknowledged: that is over
 * a second of input at the rates we target, far more than the producer's
 * round trip. */
#define TRACK_CAP  65536u
#define TRACK_MASK (TRACK_CAP - 1)
/* Partitions one daemon can own at once. */
#define MAX_TRACKERS 1024

typedef struct tracker {
    int used;
    int topic; /* index in input topics */
    int32_t partition;
    uint16_t gen;       /* bumps when the slot is reused: stale tickets miss */
    uint64_t head;      /* oldest seq not yet done */
    uint64_t tail;      /* next seq to hand out */
    int64_t stored;     /* next offset to read, as last stored; -1 none */
    int dirty;          /* stored advanced since the last offsets_store */
    int64_t committed;  /* last offset this process committed for it; -1 none */
    int held;           /* paused by the owner (nx_kafka_hold) until released */
    int64_t hold_until; /* mono ms; >0: rewound and paused until then (nx_kafka_rewind) */
    int64_t rewind_to;  /* the offset the held partition seeks to */
    int seek_due;       /* that seek was refused: keep it paused, seek again */
    int rewound;        /* sent back by nx_kafka_rewind; its record not tracked since */
    int64_t *offset;    /* (TRACK_CAP) offset of each seq */
    int64_t *in_ts;     /* (TRACK_CAP) broker timestamp of each input record, ms */
    uint8_t *done;      /* (TRACK_CAP) */
} tracker_t;

struct nx_kafka {
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_t *mock_rk; /* owns the mock cluster in mock mode */
    rd_kafka_mock_cluster_t *mock;
    char *brokers;
    nx_strlist_t topics; /* borrowed copies (owned here) */
    char *output_topic;
    char *dlq_topic; /* NULL = off */
    int flush_timeout_ms;
    nx_kafka_hooks_t hooks;
    void (*other_dr)(void *opaque, const rd_kafka_message_t *m); /* nx_kafka_on_other_delivery */
    void *other_dr_opaque;
    tracker_t trackers[MAX_TRACKERS];
    int last_tracker;
    int n_trackers;
    int paused;
    int n_held;        /* trackers with hold_until > 0 */
    int64_t dr_now_ms; /* wall clock for the delivery reports served now; 0 = read it */
    int closed;
    int close_unfinished; /* leaving the group did not finish: the consumer is left as is */
    int close_assigned;   /* an assignment came during the close: not taken */
    int transactional;    /* exactly-once: failed deliveries abort, never retried here */
    int revoke_lost;      /* inside the revoked hook: the partitions were lost */
    nx_kafka_stats_t stats;
    nx_kafka_lag_t lags[NX_KAFKA_MAX_LAGS]; /* from the last statistics */
    int n_lags;
};

/* ---- tickets (kafka_track.c) ------------------------------------------- */

/* The tracker of (topic, partition), NULL if not assigned. */
tracker_t *nx_kafka_tracker_find(nx_kafka_t *kafka, int topic, int32_t partition);
/* Index of topic name in the input topics, -1 if not an input. */
int nx_kafka_topic_of(const nx_kafka_t *kafka, const char *name);
/* A tracker for a newly assigned partition (the existing one if any); NULL
 * when every slot is taken or out of memory. */
tracker_t *nx_kafka_tracker_add(nx_kafka_t *kafka, int topic, int32_t partition);
void nx_kafka_tracker_remove(nx_kafka_t *kafka, tracker_t *t);
/* Marks the ticket's record done; returns its input broker timestamp (ms),
 * or -1 for a stale ticket. */
int64_t nx_kafka_ticket_done(nx_kafka_t *kafka, nx_ticket_t ticket);
/* Stores the advanced offsets of the trackers with librdkafka (for the lag
 * it reports; commits are the owner's: kafka.h). */
void nx_kafka_store_offsets(nx_kafka_t *kafka);

/* What nx_kafka_parse_stats reads from one statistics JSON document. */
typedef struct nx_kafka_parsed_stats {
    int n_lags;           /* partitions with a known lag, written to lags */
    int64_t consumer_lag; /* their sum; -1 when none is known yet */
    int brokers_up;       /* brokers known by id in state UP */
} nx_kafka_parsed_stats_t;

/* Reads librdkafka's statistics JSON (statistics.interval.ms): the lag of
 * each partition of the given input topics (behind the stored offsets when
 * known, else behind the committed offset; unknown ones left out), at most
 * max_lags of them, and the brokers up. A tolerant scan: a document it does
 * not understand yields no lags and no broker, never a crash. */
void nx_kafka_parse_stats(const char *json, char *const *topics, int n_topics, nx_kafka_lag_t *lags,
                          int max_lags, nx_kafka_parsed_stats_t *out);

#endif /* NX_KAFKA_INT_H */
