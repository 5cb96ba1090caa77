/*
 * handover.h: a revoked partition's users, kept on local disk until the
 * partition comes back to this process.
 *
 * On revoke, the users of a partition number (users are keyed by partition
 * number across the input topics) are written to
 * <state_dir>/handover/p<N>.nxs with the offsets where their state ends, and
 * dropped from the store. When the partition is assigned to this process
 * again, they are restored and its input seeks to those offsets: the events
 * another member processed meanwhile are read again (their predictions are
 * sent again) and counted exactly once in the restored windows. The
 * pipeline moves its watermark back to the partition's clock on assignment
 * (nx_pipeline_assign), so none of them is dropped as too old.
 *
 * File: magic "NXHO", u32 version, u32 count of (u16 topic-name length,
 * name, i64 next offset), then the pipeline's partition stream
 * (nx_pipeline_save_partition). Files live for one process: a process
 * starts from its checkpoint, which is newer truth, so nx_handover_init
 * removes files an earlier process left, and they are not fsync'd.
 *
 * Ownership: nx_handover_t is a plain value; the pipeline and the offsets
 * map are borrowed for each call. Not thread-safe: the loop's thread
 * (rebalance callbacks run there).
 */
#ifndef NX_HANDOVER_H
#define NX_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#include "offsets.h"
#include "pipeline.h"

typedef struct nx_handover {
    char dir[4096];
} nx_handover_t;

/* Creates <state_dir>/handover (0700) and removes what it holds. 0 or -1 +
 * errstr. */
int nx_handover_init(nx_handover_t *ho, const char *state_dir, char *errstr, size_t errstr_size);

/* Saves the users of `partition` with the offsets map's entries of
 * (topic, partition) for each of the n topic indices, then drops the users
 * and removes those entries. Returns the number of users handed over, or -1
 * if the file could not be written (logged with errno; users and offsets
 * are kept, so nothing is lost if the partition comes back). */
long long nx_handover_save(const nx_handover_t *ho, nx_pipeline_t *pipe, nx_offsets_t *offs,
                           int32_t partition, const int *topics, int n);

/* Restores the users of `partition` if a file holds them, and their
 * offsets into the map; the file is removed. 1 restored, 0 no file, -1 an
 * unreadable file (logged: the partition starts from its committed offset
 * without those users). */
int nx_handover_restore(const nx_handover_t *ho, nx_pipeline_t *pipe, nx_offsets_t *offs,
                        int32_t partition);

#endif /* NX_HANDOVER_H */
