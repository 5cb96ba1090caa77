/*
 * pipeline_int.h: the pipeline's state, private to the pipeline's own
 * files: pipeline.c (the per-step work: features, forward pass, emit,
 * labels, metrics, the watermark) and pipeline_ckpt.c (its checkpoint
 * sections). Everyone else uses pipeline.h.
 *
 * Ownership: the pipeline owns everything below but cfg (borrowed) and
 * out (the caller's callbacks). The trainer (trainer.h) borrows mlp and
 * runs the only other thread; every field here belongs to the pipeline's
 * one owner thread.
 */
#ifndef NX_PIPELINE_INT_H
#define NX_PIPELINE_INT_H

#include <stdint.h>

#include "explain.h"
#include "guard.h"
#include "metrics.h"
#include "mlp.h"
#include "pipeline.h"
#include "predenc.h"
#include "store.h"
#include "trainer.h"

/* Partitions whose watermarks are tracked (topics x partitions). */
#define MAX_PARTS 1024

typedef struct part_clock {
    int32_t topic, partition;
    int64_t max_ts;       /* largest event time seen, ms; INT64_MIN = none yet */
    int64_t last_wall_ms; /* wall clock of its last event, or of its assignment (live) */
    int revoked;          /* no longer ours: does not hold the watermark */
} part_clock_t;

struct nx_pipeline {
    const nx_config_t *cfg;
    int live;
    nx_pipeline_out_t out;
    nx_store_t *store;
    nx_mlp_t *mlp;    /* NULL when model.enabled = false */
    nx_trainer_t *tr; /* trains mlp; NULL without it */
    nx_metrics_t *metrics;
    nx_metrics_t *oracle_metrics; /* NX_PIPELINE_ORACLE: the oracle's, else NULL */
    nx_predenc_t *enc;
    size_t dim;
    int n_types, K;
    int n_scores; /* kept with each pending example: K, 2 K with an oracle */
    int64_t horizon_ms, lateness_ms, idle_ms;

    /* per-step buffers: a step holds at most STEP events (pipeline.c) */
    float *X;         /* (STEP, dim) */
    uint8_t *status;  /* (STEP) */
    float *P;         /* (STEP, K) */
    float *S;         /* (STEP, 2 K) model and oracle scores; NULL without an oracle */
    nx_examples_t ex; /* resolved or expired examples, cap STEP */
    uint8_t *rec;     /* REC_MAX */

    /* what is served: the model's probabilities, or the guard's prior */
    nx_guard_t *guard;
    float *Q;        /* (STEP, K) probabilities served */
    uint8_t *served; /* (STEP) nx_model_state_t of each row */
    /* the guard's state and prior as they were when the step began: what a
     * step serves cannot depend on where a batch ended inside it */
    nx_model_state_t step_state;
    float step_prior[NX_PREDENC_MAX_CLASSES];

    /* reasons (output.explain > 0) */
    int explain;               /* reasons per prediction */
    int explain_class;         /* the class explained, -1 = each row's most likely */
    nx_explainer_t *explainer; /* NULL when off */
    float *C;                  /* (STEP, dim) contributions */
    float *x0;                 /* (dim) the baseline: every feature at its mean (0) */
    int32_t *cls;              /* (STEP) the class explained: the model's most likely */
    nx_reason_t *reasons;      /* (STEP, explain) */
    double *importance;        /* (dim) sum of |contribution| over explained events */
    float *importance_step;    /* (dim) the same over one call, added in float */
    uint64_t explained;        /* events explained */

    part_clock_t parts[MAX_PARTS];
    int n_parts;
    int64_t watermark;
    int64_t clock;     /* latest event time applied, ms; INT64_MIN = none */
    int64_t step_time; /* the step's event time, for its predictor (trainer.h) */

    nx_pipeline_stats_t st;
    uint64_t maintained_at; /* st.events at the last replay maintenance */
    int64_t maintained_ms;  /* wall clock of the last live maintenance slice */
};

#endif /* NX_PIPELINE_INT_H */
