/*
 * kafka_fixture.h: the real-broker fixture integration tests share.
 *
 * ctest starts the broker once (test `kafka_start`, FIXTURES_SETUP kafka,
 * running scripts/kafka start) and stops it at the end (`kafka_stop`);
 * integration tests declare FIXTURES_REQUIRED kafka and reach it through
 * nx_fixture_brokers(). Each test makes its own uniquely named topics, so
 * tests never see each other's records, and reruns never see old ones.
 *
 * All functions block, with bounded timeouts; errors return -1 with a
 * message in err. Not for the hot path: these are test helpers.
 */
#ifndef NX_KAFKA_FIXTURE_H
#define NX_KAFKA_FIXTURE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <sys/types.h>

/* $NX_TEST_BROKERS if set, else 127.0.0.1:$NX_KAFKA_PORT (the port
 * scripts/kafka uses), else 127.0.0.1:39092. */
const char *nx_fixture_brokers(void);

/* Writes "<prefix>-<pid>-<counter>-<time>" into buf. */
void nx_fixture_topic_name(char *buf, size_t size, const char *prefix);

/* Creates topic with `partitions` partitions (replication 1) and waits until
 * every partition has a leader. */
int nx_fixture_create_topic(const char *topic, int partitions, char *err, size_t err_size);

/* A producer / consumer on the fixture broker; props, if not NULL, holds
 * alternating property names and values, NULL-terminated
 * ({"linger.ms", "20", NULL}), set on the conf. Caller destroys with
 * rd_kafka_destroy (consumers: rd_kafka_consumer_close first). */
rd_kafka_t *nx_fixture_producer(char *err, size_t err_size, const char *const *props);
rd_kafka_t *nx_fixture_consumer(const char *group, char *err, size_t err_size,
                                const char *const *props);

/* Sum over partitions of the high watermark of `topic`; -1 on error. */
long long nx_fixture_end_offsets(rd_kafka_t *rk, const char *topic, int partitions,
                                 long long *per_partition);

/* Starts `NEXTACTD run -c CONF` in a child process, its stderr appended to
 * LOG; with dump set, the child gets NX_DEBUG_DUMP_STORE=dump (test-only
 * store dump at shutdown). Returns the pid (-1 if fork failed). */
pid_t nx_fixture_start_daemon(const char *nextactd, const char *conf, const char *log,
                              const char *dump);

/* The same, with RLIMIT_FSIZE set to max_file_bytes in the child (0: no
 * limit): a file write past it fails (EFBIG, or SIGXFSZ if the daemon does
 * not ignore that signal), as on a full disk, for users without the
 * privilege to mount a small file system. */
pid_t nx_fixture_start_daemon_fsize(const char *nextactd, const char *conf, const char *log,
                                    const char *dump, long long max_file_bytes);

/* A TCP port on loopback for a daemon this test process starts (its
 * metrics endpoint): slot 0-9 of a block of ten picked by the process id,
 * in 20000-31999. That is below Linux's ephemeral range (32768-60999), so
 * no client connection's local port can be holding it when the daemon
 * binds (a fixed port in that range once failed a start with "address in
 * use"). */
int nx_fixture_port(int slot);

/* Prints the last lines of the broker log to stderr (call on failure). */
void nx_fixture_print_log(void);

#endif /* NX_KAFKA_FIXTURE_H */
