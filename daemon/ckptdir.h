/*
 * ckptdir.h: the checkpoint directory: numbered checkpoint files, the newest
 * valid one loaded at start, background writes in a forked child.
 *
 * Files are "<dir>/ckpt-<seq>.nxc", seq a zero-padded decimal counter that
 * only grows. What a file holds is the caller's business (write and load
 * callbacks; nextactd writes nx_pipeline_save output): this module only
 * names, orders, prunes and forks.
 *
 * Guarantees:
 * - A writer killed at any point leaves the previous checkpoints intact: the
 *   callback writes a temporary file and renames it into place (the model
 *   checkpoint format does, with fsyncs), and this module deletes old checkpoints
 *   only after a newer one was written successfully. Stale
 *   "*.tmp" files are removed when the directory is opened.
 * - nx_ckptdir_load tries files newest first; a file the load callback
 *   refuses is reported at error level with its reason, and the next older
 *   one is tried ("falls back loudly").
 * - At most `keep` checkpoints are kept: older ones are removed after a new
 *   one is written.
 * - Background writes (nx_ckptdir_save_bg) fork(): the child sees a
 *   copy-on-write snapshot of the whole process (as Redis BGSAVE does),
 *   calls the write callback and _exit()s, touching nothing but its file.
 *   It dies with the parent (PR_SET_PDEATHSIG) and after CHILD_TIMEOUT_S.
 *   The parent's pause is the fork itself (page-table copy). One background
 *   write at a time; nx_ckptdir_poll reaps it from the loop.
 *
 * Ownership: the caller owns nx_ckptdir_t; the callbacks' opaque pointers are
 * borrowed for the call. Threads: one owner thread. The write callback runs
 * in the forked child, which has only the forking thread: it must not wait
 * on other threads (librdkafka's, BLAS workers) or their locks.
 */
#ifndef NX_CKPTDIR_H
#define NX_CKPTDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct nx_ckptdir nx_ckptdir_t;

/* Writes a checkpoint at path (atomically). 0 or -1 + errstr. */
typedef int (*nx_ckptdir_write_fn)(void *opaque, const char *path, char *errstr,
                                   size_t errstr_size);
/* Loads the checkpoint at path. 0 or -1 + errstr (the file is refused). */
typedef int (*nx_ckptdir_load_fn)(void *opaque, const char *path, char *errstr, size_t errstr_size);

typedef struct nx_ckptdir_stats {
    uint64_t written;     /* checkpoints written */
    uint64_t failed;      /* writes that failed (child error or killed) */
    int64_t last_wall_ms; /* wall clock when the last one was complete, 0 = none */
    int64_t last_ms;      /* duration of the last successful write, ms */
    int64_t fork_us;      /* the parent's pause for the last fork(), us */
    uint64_t last_seq;    /* sequence number of the newest checkpoint, 0 = none */
    int failing;          /* 1 from a failed write until the next successful one */
    char last_error[256]; /* why the last write failed (with the errno text), "" */
} nx_ckptdir_stats_t;

/* Opens (creating, mode 0700, with parents) dir, keeping `keep` (>= 1)
 * checkpoints. Removes stale temporary files. NULL + errstr. Caller frees
 * with nx_ckptdir_destroy. */
nx_ckptdir_t *nx_ckptdir_open(const char *dir, int keep, char *errstr, size_t errstr_size);

/* Waits for a background write, then frees. NULL does nothing. */
void nx_ckptdir_destroy(nx_ckptdir_t *ckdir);

/* Loads the newest checkpoint load() accepts, falling back to older ones
 * (each refusal logged at error level). Returns the sequence number loaded,
 * 0 if there is no checkpoint, -1 if every file was refused (errstr names
 * the newest one's reason). */
int64_t nx_ckptdir_load(nx_ckptdir_t *ckdir, nx_ckptdir_load_fn load, void *opaque, char *errstr,
                        size_t errstr_size);

/* Writes the next checkpoint in this thread (waiting for a background write
 * first), then prunes. 0 or -1 + errstr. */
int nx_ckptdir_save(nx_ckptdir_t *ckdir, nx_ckptdir_write_fn write, void *opaque, char *errstr,
                    size_t errstr_size);

/* Forks a child that writes the next checkpoint. 0 started, -1 + errstr
 * (fork failed, or a write is still running). */
int nx_ckptdir_save_bg(nx_ckptdir_t *ckdir, nx_ckptdir_write_fn write, void *opaque, char *errstr,
                       size_t errstr_size);

/* Reaps the background writer. wait: block until it ends. Returns 1 when a
 * write just completed (and old files were pruned), -1 when it failed
 * (logged with the child's reason, errno text included; counted; its
 * partial file removed), 0 when none ended. */
int nx_ckptdir_poll(nx_ckptdir_t *ckdir, int wait);

/* Kills a running background writer and reaps it (its partial file is
 * removed; the previous checkpoints stay). Nothing if none runs. */
void nx_ckptdir_cancel(nx_ckptdir_t *ckdir);

/* 1 while a background write runs. */
int nx_ckptdir_busy(const nx_ckptdir_t *ckdir);

/* Pid of the running background writer, 0 if none (tests kill it). */
pid_t nx_ckptdir_child(const nx_ckptdir_t *ckdir);

void nx_ckptdir_stats(const nx_ckptdir_t *ckdir, nx_ckptdir_stats_t *stats);

/* Path of checkpoint seq into buf. */
void nx_ckptdir_path(const nx_ckptdir_t *ckdir, uint64_t seq, char *buf, size_t size);

#endif /* NX_CKPTDIR_H */
