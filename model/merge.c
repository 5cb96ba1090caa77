/* merge.c: weighted averaging of model replicas (merge.h). */
#include "merge.h"

#include <math.h>

void nx_merge_add(double *acc, const float *x, size_t n, double weight) {
    for (size_t i = 0; i < n; i++)
        acc[i] += weight * (double)x[i];
}

void nx_merge_apply(float *x, const double *acc, size_t n, double self_weight, double acc_weight) {
    double total = self_weight + acc_weight;
    if (!(total > 0))
        return;
    double inv = 1.0 / total;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((self_weight * (double)x[i] + acc[i]) * inv);
}

void nx_merge_rebase(float *x, const double *acc, double acc_weight, const float *snap, size_t n,
                     int nonneg) {
    if (!(acc_weight > 0))
        return;
    double inv = 1.0 / acc_weight;
    for (size_t i = 0; i < n; i++) {
        double v = acc[i] * inv + ((double)x[i] - (double)snap[i]);
        x[i] = (float)(nonneg && v < 0 ? 0 : v);
    }
}

double nx_merge_rel_l2_mean(const float *x, const double *acc, double acc_weight, size_t n) {
    if (!(acc_weight > 0))
        return 0.0;
    double d2 = 0, a2 = 0, b2 = 0, inv = 1.0 / acc_weight;
    for (size_t i = 0; i < n; i++) {
        double b = acc[i] * inv, d = (double)x[i] - b;
        d2 += d * d;
        a2 += (double)x[i] * x[i];
        b2 += b * b;
    }
    double scale = sqrt((a2 + b2) / 2);
    return scale > 0 ? sqrt(d2) / scale : 0.0;
}

double nx_merge_rel_l2(const float *a, const float *b, size_t n) {
    double d2 = 0, a2 = 0, b2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        d2 += d * d;
        a2 += (double)a[i] * a[i];
        b2 += (double)b[i] * b[i];
    }
    double scale = sqrt((a2 + b2) / 2);
    return scale > 0 ? sqrt(d2) / scale : 0.0;
}
