/* bench_figures.c: figures of a daemon, the broker and the host for
 * bench_kafka (see bench_figures.h). */
#include "bench_figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int bench_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sets message.timestamp.type = LogAppendTime on a fresh topic (the
 * records then carry the broker's append time). 0 or -1. */
int bench_log_append_time(rd_kafka_t *rk, const char *topic) {
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_ConfigResource_set_config(res, "message.timestamp.type", "LogAppendTime");
    rd_kafka_AlterConfigs(rk, &res, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    int rc = -1;
    if (ev && !rd_kafka_event_error(ev)) {
        size_t n = 0;
        const rd_kafka_ConfigResource_t **r =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
        rc = n == 1 && !rd_kafka_ConfigResource_error(r[0]) ? 0 : -1;
    }
    if (rc < 0)
        fprintf(stderr, "bench_kafka: %s: cannot set LogAppendTime: %s\n", topic,
                ev ? rd_kafka_event_error_string(ev) : "timed out");
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    return rc;
}

/* The series `name`_bucket{`labels`le="..."} of text into *h (labels "" or
 * `stage="fetch",`). */
void bench_hist_get(const char *text, const char *name, const char *labels, bench_hist_t *h) {
    char prefix[200];
    int pl = snprintf(prefix, sizeof prefix, "%s_bucket{%sle=\"", name, labels);
    h->n = 0;
    for (const char *p = text; (p = strstr(p, prefix)) != NULL && h->n < 40; p += pl) {
        if (p != text && p[-1] != '\n')
            continue;
        const char *v = p + pl;
        h->le[h->n] = strncmp(v, "+Inf", 4) == 0 ? INFINITY : atof(v);
        const char *sp = strchr(v, ' ');
        h->cum[h->n++] = sp ? atof(sp + 1) : 0;
    }
}

/* Quantile q of the events added between two scrapes (b - a), seconds,
 * interpolated linearly within its bucket as Prometheus's
 * histogram_quantile; NAN when none. */
double bench_hist_quantile(const bench_hist_t *a, const bench_hist_t *b, double q) {
    if (b->n == 0 || (a->n && a->n != b->n))
        return NAN;
    double total = b->cum[b->n - 1] - (a->n ? a->cum[a->n - 1] : 0);
    if (total <= 0)
        return NAN;
    double want = q * total, prev = 0, lo = 0;
    for (int i = 0; i < b->n; i++) {
        double c = b->cum[i] - (a->n ? a->cum[i] : 0);
        if (c >= want) {
            if (isinf(b->le[i]))
                return lo; /* beyond the last bound: that bound */
            return lo + (b->le[i] - lo) * (c > prev ? (want - prev) / (c - prev) : 1);
        }
        prev = c;
        lo = b->le[i];
    }
    return lo;
}

/* CPU time (user + system, all threads) of process pid so far, seconds;
 * -1 if unknown. */
double bench_proc_cpu_s(pid_t pid) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    /* fields 14 and 15 (utime, stime); p is at the end of field 2 */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The local broker's pid (scripts/kafka keeps it), 0 if unknown. */
pid_t bench_broker_pid(void) {
    const char *port = getenv("NX_KAFKA_PORT");
    char path[128];
    snprintf(path, sizeof path, "/tmp/nextact-kafka-%s/pid", port ? port : "39092");
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

/* CPU per event over a span: what the host's other load cannot inflate as
 * much as it does wall-clock figures. */
void bench_print_cpu(double daemon_s, double broker_s, long long events) {
    if (events <= 0 || daemon_s < 0)
        return;
    printf("cpu per event: nextactd %.2f us", daemon_s * 1e6 / (double)events);
    if (broker_s >= 0)
        printf(", broker %.2f us", broker_s * 1e6 / (double)events);
    printf(" (user + system, all threads)\n");
}

/* p50 and p99 (ms) of per-event durations (us), "p50/p99". */
void bench_p50_p99(char *out, size_t size, int64_t *v, long long n) {
    if (n == 0) {
        snprintf(out, size, "-");
        return;
    }
    qsort(v, (size_t)n, sizeof *v, bench_cmp_i64);
    snprintf(out, size, "%.2f/%.2f", (double)v[(long long)(0.5 * (double)(n - 1))] / 1000,
             (double)v[(long long)(0.99 * (double)(n - 1))] / 1000);
}

double bench_metric_double(const char *text, const char *name) {
    size_t len = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name))
        if ((p == text || p[-1] == '\n') && p[len] == ' ')
            return strtod(p + len + 1, NULL);
    return 0;
}

int64_t bench_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
