/*
 * test_model_metrics.c: unit tests of model/metrics.h (streaming
 * progressive-validation metrics), against direct recomputation: an exact
 * sort-based AUC, log loss and accuracy summed in double. Links only
 * nx_model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "model_check.h"
#include "rng.h"

static double gauss(void) {
    const double u1 = 1.0 - nx_rng_uniform(&trng), u2 = nx_rng_uniform(&trng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

typedef struct {
    float s;
    int pos;
} scored_t;

static int cmp_scored(const void *a, const void *b) {
    const float x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return (x > y) - (x < y);
}

/* Exact ROC AUC: sort by score, average ranks over ties (Mann-Whitney U). */
static double auc_exact(scored_t *v, size_t n) {
    qsort(v, n, sizeof(*v), cmp_scored);
    double rank_sum = 0, np = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].s == v[i].s)
            j++;
        const double avg_rank = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
        for (size_t t = i; t < j; t++)
            if (v[t].pos) {
                rank_sum += avg_rank;
                np++;
            }
        i = j;
    }
    const double nn = (double)n - np;
    return (rank_sum - np * (np + 1) / 2) / (np * nn);
}

/* Scores like a model's: softmax of sep * onehot(label) + noise, classes
 * with skewed frequencies (one rare), plus a case with heavy exact ties
 * (scores rounded to 0.05). Figures against direct recomputation. */
static void test_metrics(void) {
    enum { K = 4, N = 100000, W = 5000 };
    char err[256];
    const double freq[K] = {0.6, 0.3, 0.08, 0.02};
    for (int variant = 0; variant < 3; variant++) {
        nx_metrics_t *m = nx_metrics_new(K, W, err, sizeof(err));
        nx_metrics_t *tail = nx_metrics_new(K, W, err, sizeof(err));
        CHECK(m && tail, "%s", err);
        if (!m || !tail)
            return;
        float *P = malloc(sizeof(float) * N * K);
        int32_t *Y = malloc(sizeof(int32_t) * N);
        const double sep = variant == 1 ? 4.0 : 1.0, noise = variant == 1 ? 2.0 : 1.0;
        for (int i = 0; i < N; i++) {
            double u = nx_rng_uniform(&trng), c = 0;
            int y = K - 1;
            for (int k = 0; k < K; k++)
                if (u < (c += freq[k])) {
                    y = k;
                    break;
                }
            double z[K], s = 0;
            for (int k = 0; k < K; k++)
                s += z[k] = exp((k == y ? sep : 0.0) + noise * gauss() + log(freq[k]));
            for (int k = 0; k < K; k++) {
                float p = (float)(z[k] / s);
                if (variant == 2)
                    p = roundf(p * 20) / 20;
                P[i * K + k] = p;
            }
            Y[i] = y;
            CHECK(nx_metrics_add(m, P + i * K, y) == 0, "add");
            if (i >= N - W)
                nx_metrics_add(tail, P + i * K, y);
        }
        nx_metrics_report_t r, rw, rt;
        nx_metrics_report(m, NX_METRICS_CUMULATIVE, &r);
        nx_metrics_report(m, NX_METRICS_WINDOW, &rw);
        nx_metrics_report(tail, NX_METRICS_CUMULATIVE, &rt);
        CHECK(r.n == N && rw.n == W, "n %llu window %llu", (unsigned long long)r.n,
              (unsigned long long)rw.n);
        /* The window is exactly the metrics of the last W examples. */
        CHECK(memcmp(&rw, &rt, sizeof(rw)) == 0 ||
                  (rw.log_loss == rt.log_loss && rw.ece == rt.ece && rw.auc[3] == rt.auc[3]),
              "window differs from a fresh count of the last %d", W);
        CHECK(rw.log_loss == rt.log_loss, "%.17g vs %.17g", rw.log_loss, rt.log_loss);
        for (int k = 0; k < K; k++)
            CHECK(rw.auc[k] == rt.auc[k] || (isnan(rw.auc[k]) && isnan(rt.auc[k])),
                  "window auc %d: %.17g vs %.17g", k, rw.auc[k], rt.auc[k]);
        /* Direct recomputation. */
        double ll = 0, ent = 0, cal_c[10] = {0}, cal_p[10] = {0};
        long correct = 0, tp[K] = {0}, pn[K] = {0}, ln[K] = {0};
        scored_t *v = malloc(sizeof(scored_t) * N);
        for (int i = 0; i < N; i++) {
            const float *p = P + i * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                best = p[k] > p[best] ? k : best;
            ll += -log(fmax(p[Y[i]], 1e-7f));
            correct += best == Y[i];
            tp[Y[i]] += best == Y[i];
            pn[best]++;
            ln[Y[i]]++;
            int b = (int)(p[best] * 10);
            b = b > 9 ? 9 : b;
            cal_c[b] += best == Y[i];
            cal_p[b] += p[best];
        }
        double ece = 0;
        for (int b = 0; b < 10; b++)
            ece += fabs(cal_c[b] - cal_p[b]) / N;
        for (int k = 0; k < K; k++)
            ent -= (double)ln[k] / N * log((double)ln[k] / N);
        CHECK_CLOSE(r.log_loss, ll / N, 1e-6, 0);
        CHECK_CLOSE(r.norm_entropy, ll / N / ent, 1e-6, 0);
        CHECK_CLOSE(r.accuracy, (double)correct / N, 1e-12, 0);
        CHECK_CLOSE(r.ece, ece, 1e-6, 0);
        for (int k = 0; k < K; k++) {
            CHECK(r.count[k] == (uint64_t)ln[k], "count");
            if (pn[k])
                CHECK_CLOSE(r.precision[k], (double)tp[k] / pn[k], 1e-12, 0);
            CHECK_CLOSE(r.recall[k], (double)tp[k] / ln[k], 1e-12, 0);
            for (int i = 0; i < N; i++) {
                v[i].s = P[i * K + k];
                v[i].pos = Y[i] == k;
            }
            const double exact = auc_exact(v, N);
            CHECK(fabs(r.auc[k] - exact) < 0.001,
                  "variant %d class %d: binned AUC %.6f, exact %.6f", variant, k, r.auc[k], exact);
            CHECK(exact > 0.55, "variant %d class %d: AUC %.3f, scores carry no signal", variant, k,
                  exact);
        }
        free(v);
        free(P);
        free(Y);
        nx_metrics_destroy(m);
        nx_metrics_destroy(tail);
    }
    /* Bins are monotone in p across the whole range. */
    int prev = -1, ok = 1;
    for (float p = 0.0f; p <= 1.0f; p += 1e-5f) {
        const int b = nx_metrics_auc_bin(p);
        ok &= b >= prev && b < nx_metrics_auc_bins();
        prev = b;
    }
    CHECK(ok, "AUC bins not monotone");
    float bad[4] = {NAN, 0.5f, 0.25f, 0.25f};
    nx_metrics_t *m = nx_metrics_new(4, 10, err, sizeof(err));
    CHECK(nx_metrics_add(m, bad, 0) == -1, "NaN accepted");
    CHECK(nx_metrics_add(m, bad + 1, 4) == -1, "label 4 of 4 accepted");
    nx_metrics_report_t r;
    nx_metrics_report(m, NX_METRICS_CUMULATIVE, &r);
    CHECK(r.n == 0 && isnan(r.log_loss) && isnan(r.auc[0]), "empty report");
    nx_metrics_destroy(m);
    CHECK(nx_metrics_new(1, 10, err, sizeof(err)) == NULL, "1 class accepted");
}

int main(void) {
    test_rng_seed();
    test_metrics();
    return check_exit("test_model_metrics");
}
