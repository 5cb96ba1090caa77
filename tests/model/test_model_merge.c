/*
 * test_model_merge.c: unit tests of model/merge.h (averaging model
 * replicas: the example-weighted sum and blend, the rebase that keeps what
 * a replica learnt since its copy, the relative L2 distance) against the
 * formulas written out per element in double. Links only nx_model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "model_check.h"

/* Model averaging (merge.h) against the formula spelled out per element,
 * in double, and the distance's landmarks. */
static void test_merge(void) {
    enum { N = 1003 };
    static float a[N], b[N], c[N], x[N], zero[N], neg[N];
    static double acc[N];
    fill(a, N, -1, 1);
    fill(b, N, -2, 2);
    fill(c, N, -0.5f, 0.5f);
    memset(acc, 0, sizeof acc);
    nx_merge_add(acc, a, N, 2.0);
    nx_merge_add(acc, b, N, 1.0);
    memcpy(x, c, sizeof x);
    nx_merge_apply(x, acc, N, 3.0, 3.0);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = (3.0 * c[i] + 2.0 * a[i] + 1.0 * b[i]) / 6.0;
        worst = fmax(worst, fabs(x[i] - want));
    }
    CHECK(worst < 1e-6, "weighted mean off by %g", worst);
    /* a replica that trained nothing takes the others' mean */
    memcpy(x, c, sizeof x);
    nx_merge_apply(x, acc, N, 0.0, 3.0);
    worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(x[i] - (2.0 * a[i] + b[i]) / 3.0));
    CHECK(worst < 1e-6, "others' mean off by %g", worst);
    /* no weight anywhere: unchanged, bit for bit */
    memcpy(x, c, sizeof x);
    nx_merge_apply(x, acc, N, 0.0, 0.0);
    CHECK(memcmp(x, c, sizeof x) == 0, "changed without weight");
    /* the order the others come in changes rounding only */
    static double acc2[N];
    memset(acc2, 0, sizeof acc2);
    nx_merge_add(acc2, b, N, 1.0);
    nx_merge_add(acc2, a, N, 2.0);
    worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(acc[i] - acc2[i]));
    CHECK(worst < 1e-12, "order moved the sum by %g", worst);
    for (int i = 0; i < N; i++)
        neg[i] = -a[i];
    CHECK_CLOSE(nx_merge_rel_l2(a, a, N), 0.0, 0, 0);
    CHECK_CLOSE(nx_merge_rel_l2(a, neg, N), 2.0, 1e-9, 0);
    CHECK_CLOSE(nx_merge_rel_l2(a, zero, N), sqrt(2.0), 1e-9, 0);
    CHECK_CLOSE(nx_merge_rel_l2(zero, zero, N), 0.0, 0, 0);
    CHECK_CLOSE(nx_merge_rel_l2(a, b, N), nx_merge_rel_l2(b, a, N), 0, 0);
    /* rebase on the mean, keeping what moved since the copy; clamped */
    static float snap[N], y[N];
    for (int i = 0; i < N; i++) {
        snap[i] = c[i] - 0.25f;
        y[i] = c[i];
    }
    nx_merge_rebase(y, acc, 3.0, snap, N, 0);
    worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(y[i] - ((2.0 * a[i] + b[i]) / 3.0 + 0.25)));
    CHECK(worst < 1e-6, "rebase off by %g", worst);
    memcpy(y, c, sizeof y);
    nx_merge_rebase(y, acc, 3.0, snap, N, 1);
    int negative = 0;
    for (int i = 0; i < N; i++)
        negative += y[i] < 0;
    CHECK(negative == 0, "%d negative after a clamped rebase", negative);
    memcpy(y, c, sizeof y);
    nx_merge_rebase(y, acc, 0.0, snap, N, 0);
    CHECK(memcmp(y, c, sizeof y) == 0, "rebased without weight");
    /* the distance from a mean: as from the mean written out */
    static float mean[N];
    for (int i = 0; i < N; i++)
        mean[i] = (float)(acc[i] / 3.0);
    CHECK_CLOSE(nx_merge_rel_l2_mean(c, acc, 3.0, N), nx_merge_rel_l2(c, mean, N), 1e-6, 1e-5);
    /* against the definition */
    double d2 = 0, a2 = 0, b2 = 0;
    for (int i = 0; i < N; i++) {
        d2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        a2 += (double)a[i] * a[i];
        b2 += (double)b[i] * b[i];
    }
    CHECK_CLOSE(nx_merge_rel_l2(a, b, N), sqrt(d2) / sqrt((a2 + b2) / 2), 1e-12, 1e-9);
}

int main(void) {
    test_rng_seed();
    test_merge();
    return check_exit("test_model_merge");
}
