/*
 * modelsync.h: the model of a group of daemons kept as one, through a
 * compacted Kafka topic (DESIGN.md, Scale-out: model).
 *
 * Each instance of the group trains its own replica on the users of its
 * partitions. Every model.sync_interval_ms it
 *   1. takes the records the others published since it last merged, and
 *      leaves out those older than NX_MODELSYNC_STALE_SYNCS intervals (an
 *      instance that left or died: counted stale);
 *   2. has the trainer thread blend them into its model, each weighted by
 *      the examples its publisher trained since its own previous sync, its
 *      own weight being the examples it trained since its previous sync
 *      (merge.h; the optimizer moments are blended alike, the step becomes
 *      the largest: model versions only grow, across the group);
 *   3. blends the others' normaliser statistics into its own, weighted by
 *      the vectors each saw since its previous sync (nx_norm_blend);
 *   4. publishes what it had before the blend (weights, optimizer moments,
 *      step, examples, normaliser statistics) under its instance id.
 * Replicas that train apart for an interval and then meet at the weighted
 * mean are model averaging ("local SGD"): with equal traffic each instance
 * ends the merge at the group's mean of the last round. A new or restarted
 * instance starts from the group's model: at start the topic is read to
 * its end and, when its newest records are further on (larger step) than
 * the model the checkpoint gave, the instance takes their example-weighted
 * mean (equal weights if none trained) and the mixture of their
 * normaliser statistics, instead of random weights.
 *
 * Topic (model.sync_topic, default "<group_id>-model" when state.changelog
 * is set): one partition, cleanup.policy=compact, created when missing;
 * key = the instance id (state.instance_id, default the host name); value,
 * little-endian:
 *   u32 magic "NXMS", u16 version 1, u16 0,
 *   u64 layout (feature schema hash and model shape: replicas of another
 *       layout are refused),
 *   u64 step, u64 examples trained since the previous sync,
 *   u64 normaliser vectors since the previous sync, u64 normaliser count,
 *   u64 sync number, i64 wall-clock time (ms),
 *   u32 n_params, u32 dim,
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

/* A record older than this many sync intervals is not merged: its
 * instance has stopped publishing (left the group or died), and its
 * replica only falls further behind the live ones. Three intervals leave
 * room for a publisher delayed by a busy host. */
#define NX_MODELSYNC_STALE_SYNCS 3

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

/* From the loop, every iteration: reads what arrived, starts a merge when
 * the interval is up, publishes when the trainer has done it. now_mono: ms. */
void nx_modelsync_tick(nx_modelsync_t *ms, int64_t now_mono);

void nx_modelsync_stats(const nx_modelsync_t *ms, nx_modelsync_stats_t *stats);

/* Flushes what is being published (bounded), frees. NULL does nothing.
 * After the pipeline is destroyed (see Threads). */
void nx_modelsync_destroy(nx_modelsync_t *ms);

#endif /* NX_MODELSYNC_H */
