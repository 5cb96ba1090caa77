/*
 * bench_figures.h: the figures bench_kafka reads off a running daemon, the
 * broker and the host, kept apart from its runs: histogram series of a
 * /metrics text and their quantiles between two scrapes, CPU time of a
 * process, percentiles of per-event durations, and the LogAppendTime
 * setting that makes records carry the broker's append time.
 *
 * No state; every function is a pure read or one admin request. Bench
 * code, not part of nextactd.
 */
#ifndef NX_BENCH_FIGURES_H
#define NX_BENCH_FIGURES_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A histogram series of a /metrics text: cumulative counts per bucket. */
typedef struct bench_hist {
    int n;
    double le[40], cum[40];
} bench_hist_t;

/* qsort comparator of int64_t, ascending. */
int bench_cmp_i64(const void *a, const void *b);

/* Sets message.timestamp.type = LogAppendTime on a fresh topic (the
 * records then carry the broker's append time). 0 or -1 (said on stderr). */
int bench_log_append_time(rd_kafka_t *rk, const char *topic);

/* The series `name`_bucket{`labels`le="..."} of text into *h (labels "" or
 * `stage="fetch",`). */
void bench_hist_get(const char *text, const char *name, const char *labels, bench_hist_t *h);

/* A metric's value in a /metrics text as a double (nx_scrape_metric reads
 * integers); 0 if absent. */
double bench_metric_double(const char *text, const char *name);

/* Quantile q of the events added between two scrapes (b - a), seconds,
 * interpolated within its bucket as Prometheus's histogram_quantile; NAN
 * when none. */
double bench_hist_quantile(const bench_hist_t *a, const bench_hist_t *b, double q);

/* CPU time (user + system, all threads) of process pid so far, seconds;
 * -1 if unknown. */
double bench_proc_cpu_s(pid_t pid);

/* The local broker's pid (scripts/kafka keeps it), 0 if unknown. */
pid_t bench_broker_pid(void);

/* Prints CPU per event over a span: what the host's other load cannot
 * inflate as much as it does wall-clock figures. */
void bench_print_cpu(double daemon_s, double broker_s, long long events);

/* "p50/p99" in ms of n per-event durations in us (sorts v); "-" if none. */
void bench_p50_p99(char *out, size_t size, int64_t *v, long long n);

/* The monotonic clock every bench figure is timed on, in microseconds. */
int64_t bench_now_us(void);

#endif /* NX_BENCH_FIGURES_H */
