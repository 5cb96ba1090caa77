/* kafka_close.c: the shutdown of kafka.h's client: leaving the consumer
 * group (bounded, librdkafka 2.0.2 can wait on it without end) and
 * freeing it all. */
#include "kafka.h"

#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>

#include "kafka_int.h"
#include "log.h"

/* Longest wait at shutdown for the revocation after unsubscribing: a
 * rebalance round trip on a healthy cluster is well under a second. */
#define UNSUBSCRIBE_WAIT_MS 3000
/* Longest wait for the consumer close (leaving the group). librdkafka 2.0.2
 * waits for a join under way to answer first, and the broker holds a join
 * until every member rejoined (up to max.poll.interval.ms): seen about once
 * in 100 start/SIGTERM cycles under rebalances. By then the final offsets
 * are committed, so past this the process exits without the LeaveGroup and
 * the group moves the partitions after session.timeout.ms. */
#define CLOSE_WAIT_MS 6000

void nx_kafka_close(nx_kafka_t *kafka) {
    if (!kafka || kafka->closed)
        return;
    kafka->closed = 1;
    int left = nx_kafka_flush(kafka, kafka->flush_timeout_ms);
    if (left > 0)
        nx_warn("kafka: %d record(s) undelivered at shutdown; their input will be re-read", left);
    /* Leave the subscription first and serve the consumer until the
     * revocation is through (bounded): librdkafka 2.0.2 can abort in
     * consumer close when an assignment is still being applied
     * ("rd_kafka_cgrp_terminated: assert: !rd_kafka_assignment_in_progress",
     * seen once in 100 start/SIGTERM cycles under rebalances; unsubscribing
     * before closing is the workaround librdkafka's users report). A join
     * under way when unsubscribing can still end in an assignment, which
     * rebalance_cb does not take. Records polled here are not processed:
     * their offsets are not stored, so they are read again. */
    rd_kafka_unsubscribe(kafka->consumer);
    int64_t until = nx_now_mono_ms() + UNSUBSCRIBE_WAIT_MS;
    while (nx_now_mono_ms() < until) {
        rd_kafka_topic_partition_list_t *parts = NULL;
        int left = 1;
        if (rd_kafka_assignment(kafka->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            left = parts->cnt;
            rd_kafka_topic_partition_list_destroy(parts);
        }
        if (left == 0)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kafka->consumer, 50);
        if (m)
            rd_kafka_message_destroy(m);
    }
    /* Close leaves the group; a pending revoke callback still runs, served
     * here from the close's own queue, for CLOSE_WAIT_MS at most. */
    rd_kafka_queue_t *q = rd_kafka_queue_new(kafka->consumer);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(kafka->consumer, q);
    if (e) {
        nx_warn("kafka: consumer close: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_queue_destroy(q);
        return;
    }
    int64_t close_until = nx_now_mono_ms() + CLOSE_WAIT_MS;
    while (!rd_kafka_consumer_closed(kafka->consumer) && nx_now_mono_ms() < close_until)
        rd_kafka_queue_poll_callback(q, 100);
    if (!rd_kafka_consumer_closed(kafka->consumer)) {
        /* the group thread still forwards to q: both stay as they are */
        nx_warn("kafka: leaving the consumer group did not finish in %d ms (a rebalance under "
                "way); stopping without it: the group moves this instance's partitions after "
                "session.timeout.ms",
                CLOSE_WAIT_MS);
        kafka->close_unfinished = 1;
        return;
    }
    rd_kafka_queue_destroy(q);
}

int nx_kafka_close_unfinished(const nx_kafka_t *kafka) {
    return kafka && kafka->close_unfinished;
}

void nx_kafka_destroy(nx_kafka_t *kafka) {
    if (!kafka)
        return;
    /* A consumer whose close did not finish is left to the process's exit:
     * rd_kafka_destroy would wait for that same close. */
    if (kafka->consumer && !kafka->close_unfinished) {
        if (!kafka->closed)
            rd_kafka_consumer_close(kafka->consumer);
        rd_kafka_destroy(kafka->consumer);
    }
    if (kafka->producer)
        rd_kafka_destroy(kafka->producer);
    if (kafka->mock)
        rd_kafka_mock_cluster_destroy(kafka->mock);
    if (kafka->mock_rk)
        rd_kafka_destroy(kafka->mock_rk);
    for (int i = 0; i < MAX_TRACKERS; i++) {
        free(kafka->trackers[i].offset);
        free(kafka->trackers[i].in_ts);
        free(kafka->trackers[i].done);
    }
    for (int i = 0; i < kafka->topics.n; i++)
        free(kafka->topics.v[i]);
    free(kafka->output_topic);
    free(kafka->dlq_topic);
    free(kafka->brokers);
    free(kafka);
}
