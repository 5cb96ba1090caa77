/*
 * offsets.h: the input offsets the pipeline's state covers.
 *
 * For every input (topic, partition) the map holds the next offset the
 * state has not seen: records before it are counted in the store and the
 * model, records from it on are not. The loop advances it as batches are
 * processed; checkpoints save it with the state ("offsets.v" section) and
 * restore it, so a restart seeks exactly where the restored state ends; a
 * snapshot taken when a checkpoint starts is what may be committed once
 * that checkpoint is durable.
 *
 * Cost: lookups are a linear scan with a one-entry cache (the partitions of
 * one poll batch come in runs), at most NX_OFFSETS_MAX entries.
 * Ownership: plain values; topic names are borrowed from the caller for the
 * map's lifetime. Not thread-safe: the loop's thread.
 */
#ifndef NX_OFFSETS_H
#define NX_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include "kafka.h"

/* Input partitions one daemon can own (as kafka.c). */
#define NX_OFFSETS_MAX 1024

typedef struct nx_offsets {
    const char *const *topics; /* input topic names, by index (borrowed) */
    int n_topics;
    nx_kafka_offset_t v[NX_OFFSETS_MAX]; /* offset -1: known partition, nothing seen */
    int n, last;
} nx_offsets_t;

/* An empty map over the input topics `topics` (n_topics names). */
void nx_offsets_init(nx_offsets_t *offs, const char *const *topics, int n_topics);

/* The entry of (topic, partition); with add, created (offset -1) when
 * missing. NULL if missing (add = 0) or the map is full. */
nx_kafka_offset_t *nx_offsets_find(nx_offsets_t *offs, int topic, int32_t partition, int add);

/* Index of topic name in the input topics, -1 if not an input. */
int nx_offsets_topic(const nx_offsets_t *offs, const char *name);

void nx_offsets_remove(nx_offsets_t *offs, int topic, int32_t partition);

/* Copies the entries with an offset (>= 0) into out (room for
 * NX_OFFSETS_MAX); returns their count. */
int nx_offsets_snapshot(const nx_offsets_t *offs, nx_kafka_offset_t *out);

/* Checkpoint section: u32 version, u32 count, then per partition u16
 * topic-name length, name, i32 partition, i64 next offset (host order, as
 * the rest of the checkpoint). Topics by name, so reordering the input
 * topics keeps them; a topic that is no longer an input is ignored (logged).
 * load replaces the map's entries; an older, unversioned "offsets" section
 * is read by nx_offsets_load_legacy. 0 or -1. */
#define NX_OFFSETS_SECTION        "offsets.v"
#define NX_OFFSETS_SECTION_LEGACY "offsets"
int nx_offsets_save(void *offs, int (*write)(void *w, const void *buf, size_t len), void *w);
int nx_offsets_load(void *offs, int (*read)(void *r, void *buf, size_t len), void *r, uint64_t len);
int nx_offsets_load_legacy(void *offs, int (*read)(void *r, void *buf, size_t len), void *r,
                           uint64_t len);

#endif /* NX_OFFSETS_H */
