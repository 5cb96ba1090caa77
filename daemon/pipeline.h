/*
 * pipeline.h: the work done on every micro-batch of events, the same for
 * Kafka (run.c) and files (replay.c):
 *
 *   watermark -> store update (features, labels resolved by next events)
 *   -> one batched forward pass -> one prediction record per event (emit)
 *   -> labels expired by the watermark -> progressive-validation metrics
 *   -> mini-batch training on the labelled examples.
 *
 * Determinism: given the same events in the same order, config and seed,
 * the pipeline emits bit-identical records and reaches a bit-identical
 * model, however the input is cut into batches. Training runs on a second
 * thread; in replay, which weights each prediction uses is fixed by the
 * input order (see trainer.h). Live (the daemon), two things follow the
 * clock instead: predictions use the newest weights the trainer has
 * published, and idle partitions advance the watermark by wall clock.
 *
 * Time: per (topic, partition) the watermark is the largest event time seen
 * minus labels.allowed_lateness_ms; the pipeline's watermark is the minimum
 * over partitions seen. In live mode a partition quiet for
 * labels.idle_advance_ms (wall clock) stops holding the minimum back and
 * advances by the wall clock, so a quiet input cannot hold labels forever.
 *
 * Ownership: borrows cfg (must outlive the pipeline). Records passed to
 * emit are valid during the call only. Not thread-safe: one owner thread.
 * The hot path allocates nothing.
 */
#ifndef NX_PIPELINE_H
#define NX_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "event.h"
#include "siphash.h"
#include "store.h"
#include "stream.h"
#include "trainer.h"

typedef struct nx_pipeline nx_pipeline_t;

/* Where prediction records go. emit is called once per event, in event
 * order; `index` is the event's position in the batch given to
 * nx_pipeline_process. Returns 0, or -1 to count an output failure. */
typedef struct nx_pipeline_out {
    int (*emit)(void *opaque, size_t index, const nx_event_t *ev, const void *rec, size_t len);
    void *opaque;
} nx_pipeline_out_t;

/* Classes the statistics have room for: the event types and `none`, with
 * room to spare (the stats struct is kept in checkpoints: its size stays). */
#define NX_PIPELINE_MAX_CLASSES 16
/* Reasons per prediction at most (output.explain's bound). */
#define NX_PIPELINE_MAX_REASONS 16

typedef struct nx_pipeline_stats {
    uint64_t events;      /* events processed */
    uint64_t predictions; /* records emitted */
    uint64_t emit_errors;
    uint64_t labelled; /* examples with a known label */
    uint64_t trained;  /* examples trained on (after down-sampling) */
    uint64_t steps;    /* training steps = model version */
    uint64_t users;    /* users in the store */
    uint64_t pending;  /* pending labels */
    uint64_t late, dropped;
    double bytes_per_user;
    int64_t watermark_ms;
    /* progressive validation, cumulative and over the rolling window */
    double logloss, accuracy, normalized_entropy, calibration_error;
    double window_logloss, window_accuracy;
    int n_classes;
    double auc[NX_PIPELINE_MAX_CLASSES];        /* one-vs-rest, cumulative, per class */
    double window_auc[NX_PIPELINE_MAX_CLASSES]; /* rolling window */
    /* the model guard (guard.h); fields are only ever appended here, as a
     * checkpoint keeps a length-prefixed copy of this struct */
    int model_state;          /* nx_model_state_t now */
    uint64_t guard_rollbacks; /* rollbacks so far */
    double guard_ratio;       /* last window: model loss / prior loss, NAN before one */
    uint64_t served_prior;    /* predictions that served the prior (warming, non-finite) */
    uint64_t explained;       /* predictions with reasons */
} nx_pipeline_stats_t;

/* nx_pipeline_new's flags. LIVE: the daemon (wall-clock watermark
 * advance, the newest weights predict); without it, replay. ORACLE: each
 * event comes with an oracle's probabilities (nx_pipeline_process_oracle,
 * e.g. the generator's truth), kept with the pending example beside the
 * model's and scored on the same examples; the summary adds its figures
 * and the model's excess log loss over it. */
#define NX_PIPELINE_LIVE   1
#define NX_PIPELINE_ORACLE 2

/* Builds store, model and metrics from cfg. key: the user-id hash key
 * (from the state directory, see nx_siphash_key_load). flags:
 * NX_PIPELINE_*. Caller frees with nx_pipeline_destroy. NULL + errstr on
 * bad configuration. */
nx_pipeline_t *nx_pipeline_new(const nx_config_t *cfg, const uint8_t key[NX_SIPHASH_KEY_LEN],
                               int flags, const nx_pipeline_out_t *out, char *errstr,
                               size_t errstr_size);
void nx_pipeline_destroy(nx_pipeline_t *pipe);

/* Processes n events in order, any n. Internally the input is cut into
 * steps at fixed multiples of the event count, so how the caller batches
 * the input changes nothing in the outputs. topic_names: names of the input
 * topics, indexed by ev->topic, written into the records. now_ms: wall
 * clock (prediction time, idle advance). */
void nx_pipeline_process(nx_pipeline_t *pipe, const nx_event_t *ev, size_t n,
                         const char *const *topic_names, int64_t now_ms);

/* The same, with the oracle's probabilities of each event: oracle holds
 * (n, classes) floats in class order (NULL: the uniform guess). For a
 * pipeline made with NX_PIPELINE_ORACLE; without it they are ignored. */
void nx_pipeline_process_oracle(nx_pipeline_t *pipe, const nx_event_t *ev, const float *oracle,
                                size_t n, const char *const *topic_names, int64_t now_ms);

/* Main-loop tick: store maintenance within features.maintenance_budget_us,
 * idle-partition watermark advance (live) and the label expiry it allows. */
void nx_pipeline_tick(nx_pipeline_t *pipe, int64_t now_ms);

/* End of input (replay): trains the last partial batch. */
void nx_pipeline_finish(nx_pipeline_t *pipe);

void nx_pipeline_stats(const nx_pipeline_t *pipe, nx_pipeline_stats_t *stats);

/* The training-step duration histogram (trainer.h); empty with the model
 * off. Any thread. */
void nx_pipeline_step_hist(const nx_pipeline_t *pipe, nx_trainer_step_hist_t *h);

/* Live: examples not trained on because the trainer was too far behind
 * (trainer.h, nx_trainer_shed); 0 with the model off. Any thread. */
uint64_t nx_pipeline_shed(const nx_pipeline_t *pipe);

/* Class names: event types then "none". */
const char *nx_pipeline_class_name(const nx_pipeline_t *pipe, int k);

/* Prints the feature schema (index, name) and its hash. */
void nx_pipeline_print_features(const nx_pipeline_t *pipe, FILE *out);

/* Writes the summary JSON object (one line) to out: counts, rates,
 * progressive-validation figures, with NX_PIPELINE_ORACLE the oracle's on
 * the same examples (oracle_logloss, oracle_auc) and the model's
 * excess_logloss (its log loss over the oracle's, minus 1), the guard's,
 * and with output.explain the mean |contribution| of each feature (global
 * importance). */
void nx_pipeline_write_summary(const nx_pipeline_t *pipe, FILE *out, double seconds,
                               uint64_t bad_records);

/* ---- checkpoints ---------------------------------------------------------- */

/* Extra section the caller adds to a checkpoint (e.g. input offsets). */
typedef struct nx_pipeline_section {
    const char *name;
    /* 1: a checkpoint may lack it (written by an older daemon); load is
     * then called with read = NULL, and its answer decides. */
    int optional;
    int (*save)(void *opaque, int (*write)(void *w, const void *buf, size_t len), void *w);
    int (*load)(void *opaque, int (*read)(void *r, void *buf, size_t len), void *r, uint64_t len);
    void *opaque;
} nx_pipeline_section_t;

/* Writes model (weights, optimizer), feature store (windows, normaliser,
 * pending labels), watermarks and the pending training batch to path,
 * atomically (temporary file, fsync, rename, directory fsync), plus the
 * caller's sections. 0 or -1 + errstr. */
int nx_pipeline_save(nx_pipeline_t *pipe, const char *path, const nx_pipeline_section_t *extra,
                     int n_extra, char *errstr, size_t errstr_size);

/* Restores what nx_pipeline_save wrote; a checkpoint of another feature
 * layout or model shape is refused. On error the pipeline may be partly
 * restored: the caller starts afresh. 0 or -1 + errstr. */
int nx_pipeline_load(nx_pipeline_t *pipe, const char *path, const nx_pipeline_section_t *extra,
                     int n_extra, char *errstr, size_t errstr_size);

/* Brings the trainer thread to rest (every segment handed over is trained)
 * and marks it so: until the next event, a fork's child can save the
 * pipeline (nx_pipeline_save) without the trainer, which a child does not
 * have. */
void nx_pipeline_quiesce(nx_pipeline_t *pipe);

/* Partitions assigned to or revoked from this daemon (live). An assigned
 * partition holds the watermark back until its first event arrives (or it
 * stays quiet for labels.idle_advance_ms), so that a partition read ahead of
 * the others does not make their events late; a revoked one no longer
 * counts. A partition read before (its users' state ends at its clock: it
 * comes back after a revoke, or from a checkpoint) moves the watermark back
 * to its own clock, so the events re-read from where its state ends are
 * neither late nor dropped. topic: index in kafka.input_topics. */
void nx_pipeline_assign(nx_pipeline_t *pipe, int32_t topic, int32_t partition, int64_t now_ms);
void nx_pipeline_revoke(nx_pipeline_t *pipe, int32_t topic, int32_t partition);

/* A partition's clock (largest event time seen, ms; INT64_MIN = none), and
 * setting it for a partition whose users were restored from elsewhere (a
 * changelog): as nx_pipeline_assign does for a partition read before, the
 * watermark moves back to it. INT64_MIN (no state anywhere: its input is
 * read from the group's committed offset, usually its start) moves it back
 * to none, so that it becomes the minimum over the partitions again once
 * this one's first event is in; its events are then neither late nor
 * dropped against partitions read further. */
int64_t nx_pipeline_partition_clock(nx_pipeline_t *pipe, int32_t topic, int32_t partition);
void nx_pipeline_set_partition_clock(nx_pipeline_t *pipe, int32_t topic, int32_t partition,
                                     int64_t max_ts_ms);

/* The feature store, for a changelog that tracks and restores its users
 * one by one (changelog.h). Owned by the pipeline. */
nx_store_t *nx_pipeline_store(nx_pipeline_t *pipe);

/* ---- model sync (modelsync.h) ------------------------------------------------- */

/* The model, NULL with model.enabled off. Its shape (nx_mlp_num_params,
 * the layers' sizes) may be read at any time; its slabs belong to the
 * trainer thread: change them only through the two calls below. */
const nx_mlp_t *nx_pipeline_mlp(const nx_pipeline_t *pipe);

/* Live: the trainer merges the model with the group's replicas
 * (nx_trainer_merge; the same rules for m). 0, or -1 without a model. */
int nx_pipeline_model_merge(nx_pipeline_t *pipe, nx_trainer_merge_t *m);

/* At start, before any event: the model takes slab ((3, n_params):
 * weights, optimizer moments m and v) and step, and predicts from them
 * at once. 0, or -1 without a model. */
int nx_pipeline_model_adopt(nx_pipeline_t *pipe, const float *slab, uint64_t step);

/* What the model guard says of the model: 1 if it serves predictions (not
 * warming, not fallen back). */
int nx_pipeline_model_serving(const nx_pipeline_t *pipe);

/* The group's guards passed the model this one now shares (modelsync.h):
 * a guard still warming serves it from now on, as after a checkpoint.
 * Returns 1 if it switched. */
int nx_pipeline_model_trust(nx_pipeline_t *pipe);

/* ---- partition hand-over ------------------------------------------------------ */

/* The users of one partition number (of every input topic: users are keyed
 * by partition number) written to a stream, dropped, or restored from what
 * save_partition wrote. The store's format (store.h); 0 or -1 (+ errstr). */
int nx_pipeline_save_partition(const nx_pipeline_t *pipe, int32_t partition,
                               nx_stream_write_fn write, void *w);
/* Returns the number of users dropped; their pending examples go too. */
size_t nx_pipeline_drop_partition(nx_pipeline_t *pipe, int32_t partition);
int nx_pipeline_restore_partition(nx_pipeline_t *pipe, nx_stream_read_fn read, void *r,
                                  char *errstr, size_t errstr_size);

/* Writes every user's state (nx_store_dump_user), sorted by user hash, then
 * a "stats events N late N dropped N" line: for tests that compare runs.
 * Returns the number of users, -1 when out of memory. */
long long nx_pipeline_dump_users(const nx_pipeline_t *pipe, FILE *out);

#endif /* NX_PIPELINE_H */
