/*
 * trainer.h: online training on a thread of its own, beside prediction,
 * without losing determinism.
 *
 * The pipeline's thread (the "main thread" below) appends the labelled
 * examples of each step to the segment being filled (nx_trainer_add) and
 * hands it over as a numbered segment (nx_trainer_push). The trainer thread
 * takes segments in order, applies negative down-sampling (nx_mlp_keep),
 * trains in mini-batches of model.batch_size, and after each segment
 * publishes its weights into predictor slot (segment % NX_TRAINER_NSLOT).
 *
 * Determinism: which weights a prediction uses (nx_trainer_predictor)
 *   - in replay, depends only on the input, never on the trainer's speed,
 *     and is as fresh as the live daemon's would be: each pushed segment is
 *     stamped with the event time its examples had resolved by (the clock
 *     the main thread sets, nx_trainer_set_clock), and a prediction at
 *     event time t uses the snapshot after the newest segment stamped at or
 *     before t - lag_ms (before any: the initial weights), the trainer's
 *     latency live. The main thread waits for that snapshot when the
 *     trainer is behind. On a stream so dense in event time that lag_ms
 *     spans more than NX_TRAINER_MAX_LAG segments, the snapshot is the one
 *     NX_TRAINER_MAX_LAG segments behind the last pushed: the trainer is
 *     never further ahead of the snapshot in use than that, so the
 *     NX_TRAINER_NSLOT slots are never overwritten while read. The model
 *     itself is trained on the segments in push order, so it is
 *     bit-identical from run to run too.
 *   - live, the newest snapshot published, without waiting: outputs depend
 *     on arrival timing anyway, and the loop's latency matters more than a
 *     trainer the scheduler has put aside.
 *
 * Threads: one trainer thread per trainer ("nx-trainer"), started by
 * nx_trainer_new and joined by nx_trainer_destroy. Every other function is
 * for the main thread only (one owner thread).
 *
 * Live, prediction never waits on training: the trainer thread runs at a
 * lower priority than the loop (nice 19 or SCHED_IDLE, see
 * NX_TRAINER_PRIO_*), so it takes the cores the loop and the broker leave;
 * the predictor is taken without a lock; and when NX_TRAINER_QUEUE segments
 * are queued, a push drops the segment's examples (counted:
 * nx_trainer_shed) instead of waiting. Only checkpoints (for the segment
 * in training, nx_trainer_quiesce) and shutdown wait for it. In replay the main thread waits when
 * the queue is full (back-pressure: every example is trained) and for the snapshot it must predict
 * from.
 *
 * Locking: the segment counts (pushed, written by the main thread; trained,
 * by the trainer) and the stop flag are atomics. The trainer sleeps on a
 * semaphore posted at each push and at stop; the main thread waits for
 * `trained` on a condition variable, broadcast under its mutex after each
 * segment (never taken on the live prediction path). A queued
 * segment belongs to the trainer from its push until it is counted as
 * trained; the segment being filled belongs to the main thread. The model
 * (nx_mlp_t) and the partial mini-batch belong to the trainer thread while
 * segments are queued; once nx_trainer_sync returns they belong to the main
 * thread until the next push (this is how checkpoints read and write them).
 * Predictor slots are handed over without locks (nx_mlp_publish / acquire,
 * see mlp.h). The counters behind nx_trainer_steps and nx_trainer_kept are
 * atomics, readable at any time. So is the step-duration histogram: whoever
 * runs a training step (the trainer thread, or the main thread once the
 * trainer is idle) times it on the monotonic clock and adds 1 to its
 * bucket's counter and the nanoseconds to a sum, both relaxed atomics;
 * nx_trainer_step_hist reads them from any thread. Each counter is exact;
 * a read during a step may see its bucket counted and its time not yet.
 *
 * Ownership: borrows mlp, which must outlive the trainer and which only
 * the trainer thread changes while segments are queued. The trainer owns its segments,
 * its mini-batch and its predictors. The hot path (add, push, predictor)
 * allocates nothing.
 */
#ifndef NX_TRAINER_H
#define NX_TRAINER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mlp.h"
#include "stream.h"

/* The most segments replay's snapshot lags the last pushed one (about 4,000
 * events of 256: a second of event time at 4,000 events/s), the predictor
 * slots that needs, and the segments queued at most before the main thread
 * waits. */
#define NX_TRAINER_MAX_LAG 15
#define NX_TRAINER_NSLOT   (NX_TRAINER_MAX_LAG + 1)
#define NX_TRAINER_QUEUE   8

typedef struct nx_trainer nx_trainer_t;

/* The trainer thread's scheduling, live (replay runs it as the loop):
 * NORMAL as the loop; LOW nice 19 (under contention a few percent of a
 * core, never starved); IDLE SCHED_IDLE (only CPU nothing else wants). */
#define NX_TRAINER_PRIO_NORMAL 0
#define NX_TRAINER_PRIO_LOW    1
#define NX_TRAINER_PRIO_IDLE   2

/* Starts a trainer for mlp over examples of dim features: mini-batches of
 * batch examples, segments of at most seg_cap examples (a full segment is
 * pushed early by nx_trainer_add). live: 1 takes the newest snapshot, 0 the
 * one of replay, lag_ms (>= 0) of event time behind (see above).
 * priority: NX_TRAINER_PRIO_*, live only. Caller frees with
 * nx_trainer_destroy. NULL + errstr when out of memory or the thread
 * cannot start. */
nx_trainer_t *nx_trainer_new(nx_mlp_t *mlp, size_t dim, int batch, size_t seg_cap, int live,
                             int priority, int64_t lag_ms, char *errstr, size_t errstr_size);

/* Trains every segment pushed so far, stops and joins the thread, frees.
 * The segment being filled and the partial mini-batch are discarded. */
void nx_trainer_destroy(nx_trainer_t *tr);

/* Main thread: appends one labelled example (x: dim floats) to the segment
 * being filled; a full segment is pushed first. */
void nx_trainer_add(nx_trainer_t *tr, const float *x, int32_t label);

/* Main thread: hands the segment being filled to the trainer and starts
 * the next one. With NX_TRAINER_QUEUE segments queued, replay waits; live
 * drops the segment's examples (its guard commands stay) and refills it.
 * Empty segments are pushed too: the segment count, not the example count,
 * fixes which weights predict. */
void nx_trainer_push(nx_trainer_t *tr);

/* Main thread: the event time (ms) the examples added so far had resolved
 * by; every segment pushed from now on is stamped with it. Never moves
 * back (an earlier time is ignored). Replay only; live ignores it. */
void nx_trainer_set_clock(nx_trainer_t *tr, int64_t ms);

/* Main thread: the predictor to predict events at event time t_ms from
 * (see Determinism; live ignores t_ms), its snapshot acquired. Valid until
 * the next call. Replay: t_ms never moves back from call to call. */
nx_mlp_predictor_t *nx_trainer_predictor(nx_trainer_t *tr, int64_t t_ms);

/* Main thread: waits until every segment pushed so far is trained. Returns
 * at once when marked idle by nx_trainer_quiesce and nothing was pushed
 * since (also in a forked child, which has no trainer thread). */
void nx_trainer_sync(nx_trainer_t *tr);

/* Main thread: nx_trainer_sync, then marks the trainer idle until the next
 * push, so that a fork's child can save the state (nx_trainer_save) without
 * waiting for a thread it does not have. Live, the segments queued and not
 * started are not trained on (counted in nx_trainer_shed; their commands
 * are carried out): the loop waits for the segment in training only. */
void nx_trainer_quiesce(nx_trainer_t *tr);

/* Commands of the model guard, attached with nx_trainer_command to the
 * segment being filled and carried out by the trainer before that
 * segment's examples, so they fall at the same place of the training
 * sequence in every run (replay stays deterministic):
 * - SNAPSHOT keeps the model's weights and optimizer moments as the last
 *   good snapshot;
 * - ROLLBACK puts the last good snapshot back (the initial or loaded
 *   weights if there is none yet) and drops the partial mini-batch;
 * - SET_LR sets the learning-rate multiplier (nx_mlp_set_lr_scale).
 * ROLLBACK comes before SNAPSHOT when a segment carries both. */
#define NX_TRAINER_SNAPSHOT 1u
#define NX_TRAINER_ROLLBACK 2u
#define NX_TRAINER_SET_LR   4u
void nx_trainer_command(nx_trainer_t *tr, unsigned cmd, float lr_scale);

/* MERGE: the model meets the other replicas of its group (modelsync.h),
 * before the segment's examples, in one of two ways:
 * - snap NULL: the trainer copies the model's weights, optimizer moments,
 *   step and the examples trained since the previous such MERGE into the
 *   exchange's out fields, then (acc_weight > 0) blends the others'
 *   weighted sums into the model (merge.h: its own weight is those
 *   examples);
 * - snap set (a copy the first way made earlier): the model is rebased on
 *   the group's mean, keeping what it learnt since that copy: each slab
 *   becomes acc / acc_weight + (itself - snap) (the second moment kept
 *   non-negative), and `deviation` says how far the weights then are from
 *   the mean (relative L2). The out fields are left alone.
 * Either way the model takes the larger step when anything was blended in,
 * and `done` is set last. The predictors get the result with the
 * segment's snapshot. */
#define NX_TRAINER_MERGE 8u

typedef struct nx_trainer_merge {
    /* in: written by the main thread before nx_trainer_merge */
    const double *acc; /* (3, n_params) sum of weight_j * (weights, m, v) */
    double acc_weight; /* sum of the weights; 0 = nothing to blend in */
    uint64_t max_step; /* the largest step among them */
    const float *snap; /* (3, n_params) or NULL: see above */
    /* out: written by the trainer thread, readable once done is 1 */
    float *local;            /* (3, n_params) weights, m, v before the blend */
    uint64_t local_step;     /* the step before the blend */
    uint64_t local_examples; /* examples trained since the previous copy */
    double deviation;        /* rebase: relative L2 of the weights from the mean */
    _Atomic int done;
} nx_trainer_merge_t;

/* Main thread, live: attaches MERGE with exchange m to the segment being
 * filled and pushes that segment, so that the merge is carried out as soon
 * as the trainer gets to it, traffic or none. m must stay valid, and its in
 * fields unchanged, until m->done is 1 (the caller clears done first). A
 * second call before then replaces the exchange. */
void nx_trainer_merge(nx_trainer_t *tr, nx_trainer_merge_t *m);

/* Main thread, end of input: pushes the segment being filled if it holds
 * examples, waits for the trainer, and trains the last partial
 * mini-batch. */
void nx_trainer_finish(nx_trainer_t *tr);

/* Training steps of the model (its version) and examples trained on (after
 * down-sampling) so far. Any thread. */
uint64_t nx_trainer_steps(const nx_trainer_t *tr);
uint64_t nx_trainer_kept(const nx_trainer_t *tr);
/* Live: examples dropped because the trainer was NX_TRAINER_QUEUE segments
 * behind. Any thread. */
uint64_t nx_trainer_shed(const nx_trainer_t *tr);

/* Duration of the training steps (one mini-batch forward, backward and
 * optimizer update each), as a Prometheus histogram wants it. Buckets from
 * 10 us (a small model at batch 32) to 100 ms (a step the host starved),
 * the last one +Inf. */
#define NX_TRAINER_STEP_BUCKETS 12
typedef struct nx_trainer_step_hist {
    double le[NX_TRAINER_STEP_BUCKETS];      /* upper bounds, seconds; last = INFINITY */
    uint64_t count[NX_TRAINER_STEP_BUCKETS]; /* steps per bucket, not cumulative */
    uint64_t n;                              /* steps: the sum of count[] */
    double sum_s;                            /* their durations added, seconds */
} nx_trainer_step_hist_t;

/* Fills *h. Any thread; tr NULL gives an empty histogram. */
void nx_trainer_step_hist(const nx_trainer_t *tr, nx_trainer_step_hist_t *h);

/* ---- checkpoints: the examples not yet trained on ----------------------- */

/* Writes the partial mini-batch and the segment being filled: i32 count,
 * then (count, dim) floats and (count) i32 labels if count > 0; then u64
 * count, and the same. The trainer must be synced (nx_trainer_sync). tr may
 * be NULL (a pipeline without a model): both counts are then 0. 0 or -1. */
int nx_trainer_save(const nx_trainer_t *tr, nx_stream_write_fn write, void *w);

/* Reads what nx_trainer_save wrote into a reset trainer (nx_trainer_reset).
 * Counts beyond the trainer's capacities are refused; with tr NULL, only
 * zero counts are accepted. 0 or -1. */
int nx_trainer_load(nx_trainer_t *tr, nx_stream_read_fn read, void *r);

/* Before a checkpoint is loaded: waits for the trainer, empties the
 * segment being filled and the partial mini-batch, and restarts the segment
 * count and the clock. */
void nx_trainer_reset(nx_trainer_t *tr);

/* After new weights were loaded into mlp: the initial snapshot and every
 * slot hold them, so predictions use them until the trainer publishes. */
void nx_trainer_adopt(nx_trainer_t *tr);

#endif /* NX_TRAINER_H */
