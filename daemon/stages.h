/*
 * stages.h: where an event's latency goes, stage by stage, as histograms
 * for /metrics (and bench_kafka, which reads them there).
 *
 * The stages of one input record, end to end:
 *   fetch    its broker timestamp (the source producer's create time, or the
 *            broker's append time with LogAppendTime) to the loop's poll
 *            that took it, less `queued`: the producer's linger, the
 *            broker, the fetch wait;
 *   queued   waiting in the daemon: held in the client while the loop was
 *            busy elsewhere (an upper bound: from the later of the record's
 *            timestamp and the previous poll's return to this poll's start;
 *            0 when the loop was already waiting for it);
 *   decode   the poll's return to the batch handed to the pipeline
 *            (decoding of the batch, and the loop's bookkeeping);
 *   predict  the pipeline's start to the prediction handed to the producer
 *            (features, forward pass and encoding, of this event and of the
 *            batch's events before it);
 *   ack      produce() to the delivery report (linger.ms, the broker's
 *            acknowledgement, the report served by the loop).
 * and, as one figure, to_produce: broker timestamp to produce(), the sum of
 * the first four (the part the daemon and its input decide; ack depends
 * on the output topic's replication).
 *
 * Durations are added in microseconds; fetch and to_produce start from a
 * millisecond timestamp, so they carry up to 1 ms of rounding. Buckets: 50
 * us to 5 s, fine between 1 and 20 ms where latency targets lie.
 *
 * Threads: none of its own; the owner's thread adds, any copy may be read.
 * Plain counters, no allocation.
 */
#ifndef NX_STAGES_H
#define NX_STAGES_H

#include <stdint.h>

typedef enum nx_stage {
    NX_STAGE_FETCH,
    NX_STAGE_QUEUED,
    NX_STAGE_DECODE,
    NX_STAGE_PREDICT,
    NX_STAGE_ACK,
    NX_STAGE_TO_PRODUCE,
    NX_STAGE_N
} nx_stage_t;

#define NX_STAGES_BUCKETS 22

typedef struct nx_stages {
    uint64_t count[NX_STAGE_N][NX_STAGES_BUCKETS]; /* per bucket, not cumulative */
    double sum_s[NX_STAGE_N];                      /* durations added, seconds */
} nx_stages_t;

/* Adds n events that spent us microseconds in stage (a negative duration,
 * from clocks a little apart, counts as 0). */
void nx_stages_add(nx_stages_t *st, nx_stage_t stage, int64_t us, uint64_t n);

/* Upper bound of bucket b in seconds; the last is +Inf. */
double nx_stages_le(int b);

/* "fetch", "queued", "decode", "predict", "ack", "to_produce". */
const char *nx_stage_name(nx_stage_t stage);

#endif /* NX_STAGES_H */
