/*
 * norm.h: online feature normaliser (running mean and variance, clipped).
 *
 * Each raw feature vector updates, in event order, a per-feature running
 * mean and variance (in double, the vectors since the last refresh summed
 * in float and merged at the refresh); a vector is normalised
 * as (x - mean) / std, clipped to [-clip, clip]. A feature whose variance is
 * still (near) zero is only centred (std taken as 1), so constant features
 * stay 0 instead of blowing up. apply uses the statistics as of the last
 * refresh: after every vector while fewer than 256 have been seen, then
 * after every 16th (a sqrt and divide per feature per event would be the
 * hot path's largest cost). Save/load carry the refreshed values too, so a
 * restored normaliser applies bit-identically.
 *
 * Guarantees: update and apply are O(dim), allocate nothing and are
 * deterministic (same vectors in the same order give bit-identical state).
 * The state depends on the vectors alone, not on how calls batch them.
 * nx_norm_step, their one-pass form, runs an AVX build where the CPU has
 * it: no fused multiply-add, so the same bits as the SSE2 one.
 * Not thread-safe; one owner. Save/load round-trips the state bit-exactly.
 */
#ifndef NX_NORM_H
#define NX_NORM_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"

typedef struct nx_norm nx_norm_t;

/* New normaliser of dim features (dim >= 1, clip > 0). Caller frees with
 * nx_norm_destroy. Returns NULL on allocation failure or bad arguments. */
nx_norm_t *nx_norm_new(size_t dim, float clip);
void nx_norm_destroy(nx_norm_t *norm);

/* Adds one raw vector (dim floats) to the running statistics. */
void nx_norm_update(nx_norm_t *norm, const float *raw);

/* Writes the normalised, clipped raw into out (both dim floats; they may
 * alias). Uses the statistics as they are now. */
void nx_norm_apply(const nx_norm_t *norm, const float *raw, float *out);

/* nx_norm_update(raw) then nx_norm_apply(raw, out), bit-identically, in
 * one pass (the hot path's form). raw and out must not alias. */
void nx_norm_step(nx_norm_t *norm, const float *raw, float *out);

/* Tests: limits the builds nx_norm_step and update use to isa (2 AVX-512F,
 * 1 AVX, 0 baseline) or fewer, as the CPU allows. Returns the one in use.
 * Every build gives the same bits; this is how that is checked. */
int nx_norm_set_isa(nx_norm_t *norm, int isa);

/* Number of vectors seen, and the running mean / population variance of
 * feature i (for tests and metrics). */
uint64_t nx_norm_count(const nx_norm_t *norm);
double nx_norm_mean(const nx_norm_t *norm, size_t i);
double nx_norm_var(const nx_norm_t *norm, size_t i);

/* The statistics a replica of this normaliser exchanges with the others
 * (a group of daemons, each seeing a share of the users): the mean and
 * population variance of each feature over every vector seen, into mean
 * and var (dim doubles each). */
void nx_norm_moments(const nx_norm_t *norm, double *mean, double *var);

/* Blends in the statistics of other replicas: mean and var (dim each)
 * describe the distribution of their vectors, weighing other_w against
 * this normaliser's self_w. Each feature gets the mixture's moments:
 *     mean = (self_w m_s + other_w m_o) / W,
 *     var  = (self_w (v_s + m_s^2) + other_w (v_o + m_o^2)) / W - mean^2,
 * W = self_w + other_w. The vector count becomes max(count, n): it sets how
 * far one more vector moves the statistics, and a replica that adopts the
 * group's (self_w = 0) must not start its warm-up again. apply uses the
 * result at once. Nothing happens when W <= 0 or the count stays 0. */
void nx_norm_blend(nx_norm_t *norm, const double *mean, const double *var, double self_w,
                   double other_w, uint64_t n);

/* Saves / restores the state. Load requires the same dim; it replaces the
 * statistics and keeps the clip given at nx_norm_new. 0 or -1 (+ errstr). */
int nx_norm_save(const nx_norm_t *norm, nx_stream_write_fn write, void *opaque);
int nx_norm_load(nx_norm_t *norm, nx_stream_read_fn read, void *opaque, char *errstr,
                 size_t errstr_size);

#endif /* NX_NORM_H */
