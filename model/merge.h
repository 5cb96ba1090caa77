/*
 * merge.h: averaging replicas of one model, weighted by the examples each
 * trained on since they last merged (model averaging, as in "local SGD" /
 * federated averaging: replicas train apart for a while, then meet at the
 * weighted mean of their parameters).
 *
 * A replica merges the others into its own slab in two steps: the others'
 * slabs are accumulated, each times its weight, into a double sum
 * (nx_merge_add), then the replica's own slab becomes
 *     x = (w_self x + sum_j w_j x_j) / (w_self + sum_j w_j)
 * (nx_merge_apply). A replica that trained nothing since the last merge
 * (w_self = 0) takes the others' mean; with no weight anywhere nothing
 * changes. Replicas that meet in rounds instead sum every copy of a round,
 * their own included, and each rebases on that mean, keeping what it
 * learnt since its own copy (nx_merge_rebase). The same calls serve weights
 * and optimizer moments: any float slab.
 *
 * Guarantees: pure functions of their arguments, O(n), no allocation; the
 * sum in double, so the order the others arrive in moves the result by
 * rounding only. Knows nothing of Kafka or the daemon.
 */
#ifndef NX_MERGE_H
#define NX_MERGE_H

#include <stddef.h>

/* acc[i] += weight * x[i], i < n. */
void nx_merge_add(double *acc, const float *x, size_t n, double weight);

/* x[i] = (self_weight * x[i] + acc[i]) / (self_weight + acc_weight), i < n;
 * acc_weight: the sum of the weights added into acc. Nothing happens when
 * the denominator is not positive. */
void nx_merge_apply(float *x, const double *acc, size_t n, double self_weight, double acc_weight);

/* Rebases x on the mean acc / acc_weight, keeping what x moved since snap:
 * x[i] = acc[i] / acc_weight + (x[i] - snap[i]), i < n; nonneg: results
 * below 0 become 0 (a second moment). Nothing happens when acc_weight is
 * not positive. */
void nx_merge_rebase(float *x, const double *acc, double acc_weight, const float *snap, size_t n,
                     int nonneg);

/* nx_merge_rel_l2 of x against the mean acc / acc_weight (n values). */
double nx_merge_rel_l2_mean(const float *x, const double *acc, double acc_weight, size_t n);

/* The relative L2 distance of two slabs, symmetric and scale-free:
 * |a - b| / sqrt((|a|^2 + |b|^2) / 2). 0 for equal slabs (two zero slabs
 * included), sqrt(2) for a against zeros, 2 for a against -a. */
double nx_merge_rel_l2(const float *a, const float *b, size_t n);

#endif /* NX_MERGE_H */
