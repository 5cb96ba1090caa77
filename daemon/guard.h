/*
 * guard.h: the model guard: what serves predictions, and when the model
 * is rolled back.
 *
 * The guard sees every labelled example as progressive validation scores
 * it (the model's probabilities published at the event, and the label)
 * and, beside the model, the running prior: the classes' label
 * frequencies so far (add-one smoothed). It cuts the examples into
 * windows of `window` and compares the model's log loss over a window with
 * the prior's over the same examples; their ratio r says how much the
 * model beats the base rates, whatever the stream's difficulty of the day.
 *
 * States (predenc.h's nx_model_state_t):
 * - warming: the model has not yet beaten the prior over a window; the
 *   prior's probabilities are served. At the first window with r < 1 the
 *   guard serves the model and takes a snapshot.
 * - serving: the model is served. A window with r no worse than the best of
 *   the recent good windows by margin/2 is good: a snapshot is taken. Two
 *   windows in a row worse than the best by more than margin (one can be
 *   noise), or a non-finite output (nx_guard_nonfinite), roll the model back
 *   to its last good snapshot and scale its learning rate by GUARD_LR_SCALE.
 * - fallback: after a rollback the rolled-back model is served, marked so.
 *   The first window back within the margin returns to serving (learning
 *   rate restored). After FALLBACK_WINDOWS windows still outside it the
 *   guard takes the stream as changed (concept drift: the old snapshot is
 *   no better) and serves the model at its full learning rate, the recent
 *   windows forgotten; a burst of bad labels is ridden out, a lasting
 *   change is learned.
 * The decisions fall at fixed counts of labelled examples, so in replay
 * they are a function of the input: deterministic.
 *
 * Ownership: plain memory of its own; the caller carries out the actions
 * (the trainer, trainer.h). Not thread-safe: the pipeline's thread.
 */
#ifndef NX_GUARD_H
#define NX_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "predenc.h"
#include "stream.h"

typedef struct nx_guard nx_guard_t;

typedef struct nx_guard_params {
    int enabled;     /* 0: always serving, never an action */
    int K;           /* classes */
    uint64_t window; /* labelled examples per window */
    double margin;   /* relative degradation that rolls back */
} nx_guard_params_t;

/* What the trainer is to do, before the examples that follow. */
typedef struct nx_guard_action {
    int snapshot; /* keep the model as the last good snapshot */
    int rollback; /* put the last good snapshot back */
    float lr;     /* learning-rate multiplier to set; 0 = leave it */
} nx_guard_action_t;

typedef struct nx_guard_stats {
    nx_model_state_t state;
    uint64_t windows, rollbacks, snapshots;
    double last_ratio; /* model loss / prior loss of the last window; NAN before one */
    double best_ratio; /* best of the recent good windows; NAN before one */
} nx_guard_stats_t;

/* NULL + errstr on bad params. Caller frees with nx_guard_destroy. */
nx_guard_t *nx_guard_new(const nx_guard_params_t *params, char *errstr, size_t errstr_size);
void nx_guard_destroy(nx_guard_t *g);

/* The state predictions are served in now. */
nx_model_state_t nx_guard_state(const nx_guard_t *g);

/* The running prior (K probabilities), what warming serves. */
void nx_guard_prior(const nx_guard_t *g, float *q);

/* One labelled example: p (K) the model's probabilities published at its
 * event, y its label. Returns 1 and fills *act when the window it ends
 * calls for an action. */
int nx_guard_example(nx_guard_t *g, const float *p, int32_t y, nx_guard_action_t *act);

/* A prediction had a probability that is not finite or outside [0, 1]:
 * roll back now (once per window). Returns 1 and fills *act if so. */
int nx_guard_nonfinite(nx_guard_t *g, nx_guard_action_t *act);

void nx_guard_stats(const nx_guard_t *g, nx_guard_stats_t *stats);

/* The guard's state for a checkpoint (u32 version, then its fields) and
 * back. 0 or -1. */
int nx_guard_save(const nx_guard_t *g, nx_stream_write_fn write, void *w);
int nx_guard_load(nx_guard_t *g, nx_stream_read_fn read, void *r);

/* After a model was loaded from a checkpoint without a guard state (an
 * older daemon's): serve it, without a snapshot yet. */
void nx_guard_serve_loaded(nx_guard_t *g);

#endif /* NX_GUARD_H */
