/*
 * modelsync.h: the model of a group of daemons kept as one, through a
 * compacted Kafka topic (DESIGN.md, Scale-out: model).
 *
 * Each instance of the group trains its own replica on the users of its
 * partitions, and the replicas meet in rounds of model.sync_interval_ms,
 * aligned on the wall clock (round r begins at r * interval), so that the
 * instances of a group take part in the same rounds:
 *   1. as a round begins, the trainer thread copies the model between two
 *      segments (trainer.h, NX_TRAINER_MERGE), and the instance publishes
 *      the copy (weights, optimizer moments, step, the examples trained in
 *      the round before, normaliser statistics) under its instance id;
 *   2. interval / NX_MODELSYNC_GRACE later, the copies of that round, its
 *      own and the others', make the group's mean, each weighted by the
 *      examples its instance trained in the round before the copy (merge.h);
 *      the trainer rebases the model on that mean, keeping what it learnt
 *      since its copy (model = mean + (model - copy)), and takes the largest
 *      step, so model versions only grow, across the group; the normaliser
 *      blends in the others' statistics, weighted by the vectors each saw.
 * Every instance that saw the same copies leaves a round at the same mean
 * plus its own last quarter-interval of learning: model averaging in
 * synchronous rounds (local SGD / federated averaging), without a
 * coordinator. A copy that comes after its round's merge (a busy host, a
 * clock off by more than the grace) is left out and counted stale; so is
 * the last copy of an instance that left or died. An instance with nothing
 * trained in a round weighs nothing in it (and takes the mean). A guard
 * still warming serves the model once a copy merged in (or adopted) was
 * served by its own guard: the replicas are one model, and each guard on
 * its own share of the examples would serve the prior N times as long.
 *
 * A new or restarted instance starts from the group's model: at start the
 * topic is read to its end and, when its newest copies (those within
 * NX_MODELSYNC_STALE_SYNCS intervals of the newest) are further on (larger
 * step) than the model the checkpoint gave, the instance takes their
 * example-weighted mean (equal weights if none trained) and the mixture of
 * their normaliser statistics, instead of random weights.
 *
 * Topic (model.sync_topic, default "<group_id>-model" when state.changelog
 * is set): one partition, cleanup.policy=compact, created when missing;
 * key = the instance id (state.instance_id, default the host name); value,
 * little-endian:
 *   u32 magic "NXMS", u8 version 1, u8 1 if the publisher's guard served
 *       the model (model_state serving), u16 0,
 *   u64 layout (feature schema hash and model shape: replicas of another
 *       layout are refused),
 *   u64 step, u64 examples trained since the previous sync,
 *   u64 normaliser vectors since the previous sync, u64 normaliser count,
 *   u64 round, i64 wall-clock time of the copy (ms),
 *   u32 n_params, u32 dim,
 *   f64 relative L2 distance of the weights from the group's mean right
 *       after the previous round's merge (0 before one),
 *   f32 weights[n_params], m[n_params], v[n_params],
 *   f64 mean[dim], var[dim],
 *   u32 CRC32C of everything before it.
 * Any other record (size, magic, version, layout, checksum, non-finite
 * values) is counted as skipped, with a log line naming its key and
 * offset; it never reaches the model. A tombstone forgets the instance.
 *
 * Threads: the loop's thread. The trainer thread carries out the blend
 * (trainer.h, NX_TRAINER_MERGE) on an exchange this module owns, so
 * nx_modelsync_destroy must come after the pipeline's trainer is gone.
 * Ownership: borrows cfg and pipe; owns its producer, reader and buffers.
 */
#ifndef NX_MODELSYNC_H
#define NX_MODELSYNC_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pipeline.h"

/* At start, the group's model is made of the copies published within
 * this many intervals of the newest one: an instance that stopped
 * publishing longer ago (left the group or died) is not part of it. */
#define NX_MODELSYNC_STALE_SYNCS 3
/* A round's merge waits interval / NX_MODELSYNC_GRACE after the round
 * began, for the others' copies to arrive: a quarter of the interval
 * covers a busy host's publishing and clocks kept by NTP; what comes later
 * misses its round (counted stale). */
#define NX_MODELSYNC_GRACE 4

typedef struct nx_modelsync nx_modelsync_t;

typedef struct nx_modelsync_stats {
    uint64_t published;    /* own records acknowledged by the broker */
    uint64_t merged;       /* others' records blended in */
    uint64_t skipped;      /* others' records refused as bad */
    uint64_t stale;        /* others' records too old to merge */
    uint64_t syncs;        /* merges carried out */
    int replicas;          /* others blended in at the last merge */
    double distance;       /* relative L2, own weights vs the others' mean, last merge */
    uint64_t adopted_step; /* step taken from the group at start, 0 = none */
} nx_modelsync_stats_t;

/* The topic name into buf when model sync is on for cfg, else "" (and 0
 * returned): on with model.sync_interval_ms > 0, model.enabled, and
 * model.sync_topic set or state.changelog set. Returns 1 when on. */
int nx_modelsync_topic(const nx_config_t *cfg, char *buf, size_t size);

/* Creates the topic when missing, starts the producer and the reader,
 * reads the topic to its end and takes the group's model if it is further
 * on than pipe's. Call after the checkpoint was loaded, before the loop.
 * brokers: bootstrap servers (nx_kafka_brokers). NULL + errstr on error.
 * Caller frees with nx_modelsync_destroy. */
nx_modelsync_t *nx_modelsync_new(const nx_config_t *cfg, const char *brokers, nx_pipeline_t *pipe,
                                 char *errstr, size_t errstr_size);

/* From the loop, every iteration: reads what arrived, begins a round, or
 * merges one, when the wall clock says so, publishes a copy once the
 * trainer has made it. now_mono: ms (rounds follow the wall clock). */
void nx_modelsync_tick(nx_modelsync_t *ms, int64_t now_mono);

void nx_modelsync_stats(const nx_modelsync_t *ms, nx_modelsync_stats_t *stats);

/* Flushes what is being published (bounded), frees. NULL does nothing.
 * After the pipeline is destroyed (see Threads). */
void nx_modelsync_destroy(nx_modelsync_t *ms);

#endif /* NX_MODELSYNC_H */
