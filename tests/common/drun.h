/*
 * drun.h: nextactd runs on the real broker, for the integration tests that
 * kill, restart, starve or rebalance the daemon and compare what it ends
 * with against an uninterrupted reference run (test_ops_crash,
 * test_ops_durable). The reference run itself, with the checks every such
 * test makes of it, is refrun.h.
 *
 * A set (nx_drun_t) is one scratch directory, one input topic of
 * NX_DRUN_PARTS partitions filled by the event generator (keyed by user id,
 * so a user lives on one partition), and one user-id hash key that every
 * daemon of the set shares, so the store dumps of any two runs (sorted by
 * user hash) line up user for user. A run has a name: its configuration
 * is <dir>/<name>.conf, its log <dir>/<name>.log. Groups are named too: the
 * group g is the consumer group "<input topic>-g".
 *
 * The helpers print what they find on stderr and return it; the tests
 * decide what to CHECK (check.h counts failures per executable file). Every
 * call blocks, with bounded timeouts. One thread calls them; the input
 * producer runs in a thread of its own and writes n_events' end offsets
 * (ends) last: read them after nx_drun_produce_wait.
 */
#ifndef NX_DRUN_H
#define NX_DRUN_H

#include <avro.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "siphash.h"

#define NX_DRUN_PARTS     4 /* partitions of the input and output topics, by default */
#define NX_DRUN_MAX_PARTS 8 /* at most (nx_drun_init_parts) */

typedef struct nx_drun {
    const char *nextactd; /* the binary under test */
    const char *src_dir;  /* source tree (conf/schemas) */
    char dir[128];        /* scratch directory */
    char in_topic[128];   /* input topic */
    long long n_events;   /* events to produce (nx_drun_produce_start) */
    int bad_every;        /* > 0: a malformed record after every bad_every events */
    long long n_bad;      /* malformed records among them */
    long long n_records;  /* both: the input's records */
    unsigned char *bad_at[NX_DRUN_MAX_PARTS]; /* per input offset: 1 = malformed (once
                                                 produced; NULL without any) */
    int parts;                                /* partitions of the input (and output) topics */
    long long ends[NX_DRUN_MAX_PARTS];        /* end offset per input partition, once produced */
    uint8_t key[NX_SIPHASH_KEY_LEN];
    double rate;      /* events/s; 0: as fast as the producer goes */
    pthread_t thread; /* the producer */
    int producing;    /* thread started, not joined */
    int produce_rc;   /* the thread's result: 0, or -1 (said on stderr) */
} nx_drun_t;

/* Makes the scratch directory /tmp/<prefix>.XXXXXX, the input topic and a
 * random user-id hash key. 0, or -1 with the reason on stderr. */
int nx_drun_init(nx_drun_t *dr, const char *nextactd, const char *src_dir, const char *prefix);
/* The same with `parts` input partitions (1 .. NX_DRUN_MAX_PARTS). */
int nx_drun_init_parts(nx_drun_t *dr, const char *nextactd, const char *src_dir, const char *prefix,
                       int parts);

/* Creates a topic of NX_DRUN_PARTS partitions named from prefix (see
 * nx_fixture_topic_name) into name; nx_drun_topic_parts: of `parts`. 0 or -1. */
int nx_drun_topic(const char *prefix, char *name, size_t size);
int nx_drun_topic_parts(const char *prefix, char *name, size_t size, int parts);

/* Starts producing n_events generated events (20000 users, seed 17, event
 * times from 400 days ago on) to the input topic, at rate events/s (0: as
 * fast as the broker takes them), from a thread of its own; 0 or -1.
 * Record batches of 100 events at most keep the partitions interleaved
 * when a daemon reads them: the broker hands out whole batches whatever
 * the fetch size, and a 10k-record batch of one partition is 20 days of
 * this stream ahead of the others (see nx_drun_compare). A paced stream
 * lets a test act on a daemon while its input is still coming. */
int nx_drun_produce_start(nx_drun_t *dr, long long n_events, double rate);

/* Waits until every event is acknowledged and records the end offsets
 * (and, with bad_every set, which offsets hold the malformed records: read
 * back from the topic); 0, or -1 if not all arrived. Call before anything
 * that needs ends. A malformed record is NX_DRUN_BAD_PAYLOAD, keyed as the
 * event before it; no prediction is expected for it (nx_drun_out_t). */
int nx_drun_produce_wait(nx_drun_t *dr);

/* What a malformed input record holds: "NXBAD" then twelve 0xff bytes, a
 * string length (39) past the record's end to the event decoder. */
#define NX_DRUN_BAD_PAYLOAD     "NXBAD\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
#define NX_DRUN_BAD_PAYLOAD_LEN 17

/* Both: n_events as fast as the broker takes them. */
int nx_drun_produce(nx_drun_t *dr, long long n_events);

/* What differs between the runs of a set. */
typedef struct nx_drun_conf {
    const char *name;      /* <dir>/<name>.conf, <dir>/<name>.log */
    const char *group;     /* group name; NULL: name */
    const char *out_topic; /* output topic */
    const char *dlq_topic; /* dead-letter topic; NULL: none */
    const char *state_dir; /* NULL: <dir>/<name>-state */
    int interval_s;        /* checkpoint.interval_s */
    int metrics_port;      /* metrics.listen = 127.0.0.1:port; 0: none */
    const char *kafka;     /* more settings inside kafka { }; NULL: none */
    const char *extra;     /* more groups at the end of the file; NULL: none */
} nx_drun_conf_t;

/* Writes the configuration (fine-grained fetches, no expiry by time, event
 * lateness of a day; see drun.c) and makes its state directory (0700)
 * holding the set's key file (0600) unless it is there already. 0 or -1. */
int nx_drun_write_conf(const nx_drun_t *dr, const nx_drun_conf_t *conf);

/* Starts `nextactd run` with <dir>/<name>.conf, stderr appended to
 * <dir>/<name>.log; dump, if not NULL, gets the store dump at shutdown
 * (NX_DEBUG_DUMP_STORE); max_file_bytes > 0 sets RLIMIT_FSIZE in the child.
 * The pid, or -1. */
pid_t nx_drun_start(const nx_drun_t *dr, const char *name, const char *dump,
                    long long max_file_bytes);

/* SIGTERM, then waits up to timeout_ms (then SIGKILL). Returns the exit
 * status, or -1 if the daemon died of a signal or had to be killed (said
 * on stderr), or if pid is not a process's (<= 0: a failed start). */
int nx_drun_stop(pid_t pid, int timeout_ms);

/* SIGKILL and reap; 1 if it died of that signal (it was still running),
 * 0 otherwise and for a pid <= 0 (a failed start), which is left alone. */
int nx_drun_kill(pid_t pid);

/* Commits offset 0 of every partition for the group, so its daemon starts
 * all partitions from committed offsets together (with no committed offset
 * each partition is reset on its own, and one may run ahead of the others
 * before they are fetched at all: see nx_drun_compare). 0 or -1. */
int nx_drun_commit_zero(const nx_drun_t *dr, const char *group);

/* The group's committed offset per input partition (-1: none) into
 * committed (dr->parts entries). 0 or -1. */
int nx_drun_committed(const nx_drun_t *dr, const char *group, long long *committed);

/* 1 if the group's committed offsets are the input's end offsets. */
int nx_drun_committed_at_end(const nx_drun_t *dr, const char *group);

/* The predictions in an output topic, counted per input (partition,
 * offset) as they arrive. Counters are read-only for callers. */
typedef struct nx_drun_out {
    long long got;     /* records read */
    long long dups;    /* predictions for an input offset that had one */
    long long bad;     /* undecodable, or for no input offset of the set */
    long long missing; /* input offsets without a prediction */
    const nx_drun_t *dr;
    char topic[128];
    rd_kafka_t *consumer;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t val;
    long long undecodable;                  /* part of bad: for no offset of any partition */
    unsigned char *seen[NX_DRUN_MAX_PARTS]; /* predictions per input offset (saturating) */
} nx_drun_out_t;

/* Reads out_topic from its start (nothing read yet), read_committed; after
 * nx_drun_produce_start. NULL on error (on stderr). The caller frees with
 * nx_drun_out_destroy. */
nx_drun_out_t *nx_drun_out_new(const nx_drun_t *dr, const char *out_topic);
void nx_drun_out_destroy(nx_drun_out_t *out);

/* Reads what arrives within ms. */
void nx_drun_out_poll(nx_drun_out_t *out, int ms);

/* Reads up to the topic's present end offsets (up to timeout_ms) and
 * counts missing and bad against the input's end offsets (after
 * nx_drun_produce_wait). 0 if the end was reached. */
int nx_drun_out_drain(nx_drun_out_t *out, int timeout_ms);

/* Waits (up to timeout_ms, or until no new prediction came for 90 s)
 * until every input offset has a prediction in out, the group's committed
 * offsets reach the input's end (group: the name nx_drun_write_conf was
 * given; the daemon's own state then covers the whole input: predictions
 * alone may come from an earlier, killed incarnation) and the daemon has
 * been up 5 s (so SIGTERM finds it started), then stops it (nx_drun_stop,
 * 120 s). Returns its exit status as nx_drun_stop does, or at once -1 (or
 * its non-zero status) if it ends by itself; the caller checks
 * out->missing. */
int nx_drun_finish(nx_drun_out_t *out, pid_t pid, int64_t started_ms, int timeout_ms,
                   const char *group);

/* A run's store dump against the reference's. */
typedef struct nx_drun_state {
    long long users_ref, users_run; /* users in each dump */
    long long diff;                 /* differing feature-state lines */
    long long pending_diff;         /* users with a pending example in one run only */
    long long late_ref, dropped_ref, late_run, dropped_run; /* dump counters; -1: absent */
    int comparable; /* no late or dropped event that may change the state: diff must be 0 */
} nx_drun_state_t;

/* Compares two store dumps (NX_DEBUG_DUMP_STORE) user by user and prints
 * the figures, run_label naming the run in them. The pending example (its
 * flag, feature vector and scores) is left out: whether an example is
 * still pending at the end depends on when the watermark let it expire,
 * and the watermark (minimum over partitions of what was read) and the
 * global normaliser and model depend on the order the partitions were
 * fetched in, in any two runs. Equal state needs the same events in every
 * window, and which events count as late or are dropped (older than the
 * watermark minus the longest window) depends on that order too: so diff
 * says something about checkpoints only when neither run had a late or
 * dropped event (comparable; otherwise a warning is printed). strict: the
 * run is meant to see every event as the reference does, whatever order
 * it read them in, so only the reference's late or dropped events make
 * the state incomparable. 0, or -1 if a dump cannot be read. */
int nx_drun_compare(const char *ref_dump, const char *run_dump, const char *run_label, int strict,
                    nx_drun_state_t *st);

/* The counter `name` of a dump's "stats" line; -1 if absent. */
long long nx_drun_dump_stat(const char *dump, const char *name);

/* Lines of <dir>/<name>.log that contain needle; -1 if there is no log. */
long long nx_drun_log_count(const nx_drun_t *dr, const char *name, const char *needle);
/* Waits (at most timeout_ms) until that count reaches at_least; returns
 * the count then. */
long long nx_drun_log_wait(const nx_drun_t *dr, const char *name, const char *needle,
                           long long at_least, int timeout_ms);

/* Monotonic clock, ms. */
int64_t nx_drun_mono_ms(void);

/* At the end of a test: if failed, prints the last warnings and errors of
 * each log named in logs (NULL-terminated) and keeps the directory (says
 * where); otherwise removes it. */
void nx_drun_cleanup(const nx_drun_t *dr, int failed, const char *const *logs);

#endif /* NX_DRUN_H */
