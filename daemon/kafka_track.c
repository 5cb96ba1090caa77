/*
 * kafka_track.c: the at-least-once bookkeeping of kafka.h: a ticket per
 * consumed record, a ring per partition of the records in flight, and the
 * offset that advances over the longest prefix of done records.
 *
 * Cost: O(1) per ticket; a ring is TRACK_CAP records of a partition
 * (kafka_int.h), allocated once per slot and reused.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_int.h"
#include "log.h"

/* ---- tickets ----------------------------------------------------------- */

static nx_ticket_t ticket_make(int slot, uint16_t gen, uint64_t seq) {
    return ((uint64_t)(slot + 1) << 48) | ((uint64_t)gen << 32) | (seq & 0xffffffffu);
}

tracker_t *nx_kafka_tracker_find(nx_kafka_t *kafka, int topic, int32_t partition) {
    tracker_t *t = &kafka->trackers[kafka->last_tracker];
    if (t->used && t->topic == topic && t->partition == partition)
        return t;
    for (int i = 0; i < MAX_TRACKERS; i++) {
        t = &kafka->trackers[i];
        if (t->used && t->topic == topic && t->partition == partition) {
            kafka->last_tracker = i;
            return t;
        }
    }
    return NULL;
}

int nx_kafka_topic_of(const nx_kafka_t *kafka, const char *name) {
    for (int i = 0; i < kafka->topics.n; i++)
        if (strcmp(kafka->topics.v[i], name) == 0)
            return i;
    return -1;
}

tracker_t *nx_kafka_tracker_add(nx_kafka_t *kafka, int topic, int32_t partition) {
    tracker_t *t = nx_kafka_tracker_find(kafka, topic, partition);
    if (t)
        return t;
    for (int i = 0; i < MAX_TRACKERS; i++) {
        t = &kafka->trackers[i];
        if (t->used)
            continue;
        if (!t->offset) {
            t->offset = malloc(TRACK_CAP * sizeof *t->offset);
            t->in_ts = malloc(TRACK_CAP * sizeof *t->in_ts);
            t->done = malloc(TRACK_CAP);
            if (!t->offset || !t->in_ts || !t->done)
                return NULL;
            /* Touch the ring now (1.1 MB a partition): its pages would
             * otherwise become resident one by one as records flow, which
             * looks like a leak in the first 65536 records of a partition. */
            memset(t->offset, 0, TRACK_CAP * sizeof *t->offset);
            memset(t->in_ts, 0, TRACK_CAP * sizeof *t->in_ts);
            memset(t->done, 0, TRACK_CAP);
        }
        t->used = 1;
        t->topic = topic;
        t->partition = partition;
        t->gen++;
        t->head = t->tail = 0;
        t->stored = -1;
        t->committed = -1;
        t->dirty = 0;
        t->held = 0;
        t->hold_until = 0;
        t->seek_due = 0;
        t->rewound = 0;
        kafka->n_trackers++;
        return t;
    }
    return NULL;
}

void nx_kafka_tracker_remove(nx_kafka_t *kafka, tracker_t *t) {
    if (t->hold_until)
        kafka->n_held--;
    t->hold_until = 0;
    t->used = 0;
    kafka->n_trackers--;
}

nx_ticket_t nx_kafka_track(nx_kafka_t *kafka, const rd_kafka_message_t *msg) {
    int topic = nx_kafka_topic_index(kafka, msg);
    tracker_t *t = topic < 0 ? NULL : nx_kafka_tracker_find(kafka, topic, msg->partition);
    if (!t || t->tail - t->head >= TRACK_CAP)
        return NX_TICKET_NONE;
    uint64_t seq = t->tail++;
    t->rewound = 0;
    t->offset[seq & TRACK_MASK] = msg->offset;
    t->in_ts[seq & TRACK_MASK] = rd_kafka_message_timestamp(msg, NULL);
    t->done[seq & TRACK_MASK] = 0;
    return ticket_make((int)(t - kafka->trackers), t->gen, seq);
}

/* Marks the ticket's record done; returns its input broker timestamp (ms),
 * or -1 for a stale ticket. */
int64_t nx_kafka_ticket_done(nx_kafka_t *kafka, nx_ticket_t ticket) {
    if (ticket == NX_TICKET_NONE)
        return -1;
    int slot = (int)(ticket >> 48) - 1;
    uint16_t gen = (uint16_t)(ticket >> 32);
    uint32_t seq32 = (uint32_t)ticket;
    if (slot < 0 || slot >= MAX_TRACKERS)
        return -1;
    tracker_t *t = &kafka->trackers[slot];
    if (!t->used || t->gen != gen)
        return -1; /* the partition was revoked meanwhile */
    /* in flight < TRACK_CAP < 2^32, so the low 32 bits identify the seq */
    uint64_t seq = t->head + (uint32_t)(seq32 - (uint32_t)t->head);
    if (seq >= t->tail)
        return -1;
    int64_t in_ts = t->in_ts[seq & TRACK_MASK];
    t->done[seq & TRACK_MASK] = 1;
    while (t->head < t->tail && t->done[t->head & TRACK_MASK]) {
        t->stored = t->offset[t->head & TRACK_MASK] + 1;
        t->head++;
        t->dirty = 1;
    }
    return in_ts;
}

void nx_kafka_forget_inflight(nx_kafka_t *kafka) {
    for (int i = 0; i < MAX_TRACKERS; i++) {
        tracker_t *t = &kafka->trackers[i];
        if (!t->used)
            continue;
        t->gen++; /* outstanding tickets miss */
        t->head = t->tail;
    }
}

void nx_kafka_done(nx_kafka_t *kafka, nx_ticket_t ticket) {
    nx_kafka_ticket_done(kafka, ticket);
}

/* Stores the advanced offsets of every (or one topic/partition list's)
 * tracker with librdkafka; they are committed by auto-commit or
 * nx_kafka_commit. */
void nx_kafka_store_offsets(nx_kafka_t *kafka) {
    rd_kafka_topic_partition_list_t *list = NULL;
    for (int i = 0; i < MAX_TRACKERS; i++) {
        tracker_t *t = &kafka->trackers[i];
        if (!t->used || !t->dirty)
            continue;
        if (!list)
            list = rd_kafka_topic_partition_list_new(kafka->n_trackers);
        rd_kafka_topic_partition_list_add(list, kafka->topics.v[t->topic], t->partition)->offset =
            t->stored;
        t->dirty = 0;
    }
    if (!list)
        return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(kafka->consumer, list);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
        NX_LOG_RL(NX_LOG_WARNING, "kafka: storing offsets: %s", rd_kafka_err2str(err));
    /* A partition assigned a moment ago may not count as assigned yet
     * (__STATE): keep its offset dirty and store it at the next poll. */
    for (int i = 0; i < list->cnt; i++) {
        if (list->elems[i].err != RD_KAFKA_RESP_ERR__STATE)
            continue;
        int topic = nx_kafka_topic_of(kafka, list->elems[i].topic);
        tracker_t *t =
            topic < 0 ? NULL : nx_kafka_tracker_find(kafka, topic, list->elems[i].partition);
        if (t)
            t->dirty = 1;
    }
    rd_kafka_topic_partition_list_destroy(list);
}
