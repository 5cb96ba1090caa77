/*
 * pipeline_report.c: what the pipeline tells about itself beyond its
 * figures (pipeline.h): the feature list, the replay summary as JSON, and
 * the store's users dumped for tests (sorted by user hash). Read-only on
 * the pipeline, main thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_int.h"

void nx_pipeline_print_features(const nx_pipeline_t *pipe, FILE *out) {
    for (size_t i = 0; i < pipe->dim; i++)
        fprintf(out, "%3zu %s\n", i, nx_store_feature_name(pipe->store, i));
    fprintf(out, "# %zu features, schema hash %016llx\n", pipe->dim,
            (unsigned long long)nx_store_schema_hash(pipe->store));
}

static void json_num(FILE *out, double v) {
    if (isfinite(v))
        fprintf(out, "%.6g", v);
    else
        fputs("null", out);
}

/* {"<class>": v[k], ...} over the pipeline's classes. */
static void json_per_class(FILE *out, const nx_pipeline_t *pipe, const double *v) {
    fputc('{', out);
    for (int k = 0; k < pipe->K; k++) {
        fprintf(out, "%s\"%s\": ", k ? ", " : "", nx_pipeline_class_name(pipe, k));
        json_num(out, v[k]);
    }
    fputc('}', out);
}

void nx_pipeline_write_summary(const nx_pipeline_t *pipe, FILE *out, double seconds,
                               uint64_t bad_records) {
    nx_pipeline_stats_t s;
    nx_pipeline_stats(pipe, &s);
    fprintf(out, "{\"events\": %llu, \"predictions\": %llu, \"bad_records\": %llu, ",
            (unsigned long long)s.events, (unsigned long long)s.predictions,
            (unsigned long long)bad_records);
    fprintf(out, "\"users\": %llu, \"seconds\": %.3f, \"events_per_second\": %.0f, ",
            (unsigned long long)s.users, seconds, seconds > 0 ? (double)s.events / seconds : 0.0);
    fprintf(out, "\"labelled\": %llu, \"trained\": %llu, \"steps\": %llu, \"logloss\": ",
            (unsigned long long)s.labelled, (unsigned long long)s.trained,
            (unsigned long long)s.steps);
    json_num(out, s.logloss);
    fputs(", \"accuracy\": ", out);
    json_num(out, s.accuracy);
    fputs(", \"normalized_entropy\": ", out);
    json_num(out, s.normalized_entropy);
    fputs(", \"auc\": ", out);
    json_per_class(out, pipe, s.auc);
    fputs(", \"calibration_error\": ", out);
    json_num(out, s.calibration_error);
    if (pipe->oracle_metrics) {
        /* the oracle on the same examples, and the model's excess loss
         * over it: the distance to the best possible, when it is the truth */
        nx_metrics_report_t r;
        nx_metrics_report(pipe->oracle_metrics, NX_METRICS_CUMULATIVE, &r);
        fputs(", \"oracle_logloss\": ", out);
        json_num(out, r.log_loss);
        fputs(", \"oracle_auc\": ", out);
        json_per_class(out, pipe, r.auc);
        fputs(", \"excess_logloss\": ", out);
        json_num(out, s.logloss / r.log_loss - 1.0);
    }
    static const char *const states[] = {"serving", "warming", "fallback"};
    fprintf(out,
            ", \"late\": %llu, \"dropped\": %llu, \"pending\": %llu, "
            "\"bytes_per_user\": %.1f, \"model_state\": \"%s\", \"guard_rollbacks\": %llu, "
            "\"served_prior\": %llu",
            (unsigned long long)s.late, (unsigned long long)s.dropped,
            (unsigned long long)s.pending, s.bytes_per_user, states[s.model_state],
            (unsigned long long)s.guard_rollbacks, (unsigned long long)s.served_prior);
    if (pipe->explainer && pipe->explained) {
        fprintf(out, ", \"explained\": %llu, \"importance\": {",
                (unsigned long long)pipe->explained);
        for (size_t j = 0; j < pipe->dim; j++) {
            fprintf(out, "%s\"%s\": ", j ? ", " : "", nx_store_feature_name(pipe->store, j));
            json_num(out, pipe->importance[j] / (double)pipe->explained);
        }
        fputc('}', out);
    }
    fputs("}\n", out);
}

/* ---- the users, for tests ---------------------------------------------------- */

typedef struct user_list {
    uint64_t *v;
    size_t n, cap;
    int oom;
} user_list_t;

static void collect_user(void *opaque, uint64_t user, int32_t partition, int64_t clock_ms) {
    (void)partition;
    (void)clock_ms;
    user_list_t *l = opaque;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = user;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

long long nx_pipeline_dump_users(const nx_pipeline_t *pipe, FILE *out) {
    user_list_t l = {0};
    nx_store_foreach(pipe->store, collect_user, &l);
    if (l.oom) {
        free(l.v);
        return -1;
    }
    qsort(l.v, l.n, sizeof *l.v, cmp_u64);
    char *buf = malloc(65536);
    for (size_t i = 0; buf && i < l.n; i++)
        if (nx_store_dump_user(pipe->store, l.v[i], buf, 65536) > 0)
            fputs(buf, out);
    /* the counters that say whether the per-user state depended on the
     * order partitions were read in */
    nx_pipeline_stats_t st;
    nx_pipeline_stats(pipe, &st); /* late and dropped are the store's counts */
    fprintf(out, "stats events %llu late %llu dropped %llu\n", (unsigned long long)st.events,
            (unsigned long long)st.late, (unsigned long long)st.dropped);
    long long n = buf ? (long long)l.n : -1;
    free(buf);
    free(l.v);
    return n;
}
