/*
 * bench_ceiling.h: the Kafka ceiling measured beside nextactd: a plain
 * librdkafka consume -> produce loop over the same input topic, with the
 * daemon's client tuning (nx_kafka_consumer_tuning, _producer_tuning) and
 * batch consume, but no decoding, features or model. The daemon's events/s
 * over this loop's is how close it comes to what the client and broker
 * allow on the host. Bench code, not part of nextactd.
 */
#ifndef NX_BENCH_CEILING_H
#define NX_BENCH_CEILING_H

/* Copies the `total` records of in_topic (`parts` partitions) to a new
 * topic, reading from its start in a consumer group of its own; the
 * events/s between the first record read and the last acknowledged, or 0
 * if not every record was copied within 300 s (said on stdout). */
double nx_bench_ceiling_run(const char *in_topic, int parts, long long total);

#endif /* NX_BENCH_CEILING_H */
