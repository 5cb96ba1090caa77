/*
 * run_ckpt.c: the daemon's checkpoints (run_int.h): which sections it adds
 * to the pipeline's (the input offsets the state covers, the user-id key's
 * fingerprint), loading the newest one at start, the periodic background
 * write, and the final one at shutdown with the commit of what it covers.
 * The rules they follow (commits only over durable state) are run.c's
 * header comment's.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "run_int.h"

/* "key.v" section: u32 version, u64 fingerprint of the user-id hash key
 * (a SipHash of a fixed text under the key: it tells keys apart and says
 * nothing about them). Users are stored by their hash under the key, so a
 * checkpoint read under another key would orphan every user. */
#define KEY_SECTION         "key.v"
#define KEY_SECTION_VERSION 1u

uint64_t nx_run_key_fingerprint(const uint8_t key[NX_SIPHASH_KEY_LEN]) {
    static const char what[] = "nextactd user-id hash key fingerprint";
    return nx_siphash24(key, what, sizeof what - 1);
}

static int key_save(void *opaque, int (*write)(void *w, const void *buf, size_t len), void *w) {
    const nx_run_t *r = opaque;
    uint32_t version = KEY_SECTION_VERSION;
    uint64_t fp = nx_run_key_fingerprint(r->key);
    return write(w, &version, sizeof version) | write(w, &fp, sizeof fp) ? -1 : 0;
}

static int key_load(void *opaque, int (*read)(void *rd, void *buf, size_t len), void *rd,
                    uint64_t len) {
    nx_run_t *r = opaque;
    uint32_t version;
    uint64_t fp;
    (void)len;
    if (!read) {
        nx_warn("checkpoint: written before checkpoints recorded the user-id key; it cannot be "
                "checked against %s/%s",
                r->cfg->state_dir, NX_SIPHASH_KEY_FILE);
        return 0;
    }
    if (read(rd, &version, sizeof version) < 0 || version == 0 || version > KEY_SECTION_VERSION ||
        read(rd, &fp, sizeof fp) < 0)
        return -1;
    if (fp != nx_run_key_fingerprint(r->key)) {
        r->key_mismatch = 1;
        return -1;
    }
    return 0;
}

/* The sections run.c adds to the pipeline's checkpoint. */
static int ckpt_sections(nx_run_t *r, nx_pipeline_section_t sec[3]) {
    sec[0] =
        (nx_pipeline_section_t){NX_OFFSETS_SECTION, 1, nx_offsets_save, nx_offsets_load, &r->offs};
    sec[1] = (nx_pipeline_section_t){NX_OFFSETS_SECTION_LEGACY, 1, NULL, nx_offsets_load_legacy,
                                     &r->offs};
    sec[2] = (nx_pipeline_section_t){KEY_SECTION, 1, key_save, key_load, r};
    return 3;
}

static int ckpt_write(void *opaque, const char *path, char *errstr, size_t errstr_size) {
    nx_run_t *r = opaque;
    nx_pipeline_section_t sec[3];
    ckpt_sections(r, sec);
    /* the legacy offsets section is only ever read */
    nx_pipeline_section_t out[2] = {sec[0], sec[2]};
    return nx_pipeline_save(r->pipe, path, out, 2, errstr, errstr_size);
}

static int ckpt_load(void *opaque, const char *path, char *errstr, size_t errstr_size) {
    nx_run_t *r = opaque;
    nx_pipeline_section_t sec[3];
    int n = ckpt_sections(r, sec);
    int mismatch_before = r->key_mismatch;
    r->key_mismatch = 0;
    if (nx_pipeline_load(r->pipe, path, sec, n, errstr, errstr_size) == 0) {
        r->key_mismatch = mismatch_before;
        return 0;
    }
    if (r->key_mismatch)
        snprintf(errstr, errstr_size,
                 "written under another user-id hash key than %.200s/%s (the key file was "
                 "lost or replaced)",
                 r->cfg->state_dir, NX_SIPHASH_KEY_FILE);
    r->key_mismatch |= mismatch_before;
    /* a refused file may have left the pipeline half restored: start the
     * next attempt (or the fresh start) from a new one */
    char err[512];
    nx_pipeline_out_t po = {nx_run_emit, r};
    nx_pipeline_destroy(r->pipe);
    nx_offsets_init(&r->offs, r->topics, r->cfg->kafka.input_topics.n);
    if (!(r->pipe = nx_pipeline_new(r->cfg, r->key, NX_PIPELINE_LIVE, &po, err, sizeof err)))
        nx_err("checkpoint: rebuilding the pipeline: %s", err);
    return -1;
}

/* A checkpoint's offsets say where its state ends, and a restart seeks
 * there: a record before that point whose prediction is still
 * unacknowledged would never be predicted again. So the producer is drained
 * first (nx_kafka_flush, bounded by kafka.flush_timeout_ms); if it cannot
 * be, the checkpoint waits. */

/* Longest the loop waits for the producer before a periodic checkpoint:
 * within the 200 ms a checkpoint may pause the loop. A healthy broker
 * acknowledges within tens of ms; when it does not, the checkpoint is
 * tried again DRAIN_RETRY_MS later instead of stalling the loop for
 * kafka.flush_timeout_ms. */
#define DRAIN_PERIODIC_MS 150
#define DRAIN_RETRY_MS    1000

/* Starts a background checkpoint (forked writer). The trainer is brought
 * to rest first: the child has only the forking thread, so a snapshot taken
 * while the trainer updates the model would be torn (nx_pipeline_quiesce). */
void nx_run_ckpt_start(nx_run_t *r, int64_t now_mono) {
    char err[1024];
    if (!r->ckdir || nx_ckptdir_busy(r->ckdir))
        return;
    int timeout = (int)r->cfg->kafka.flush_timeout_ms;
    int left = nx_kafka_flush(r->kafka, timeout < DRAIN_PERIODIC_MS ? timeout : DRAIN_PERIODIC_MS);
    if (left > 0) {
        NX_LOG_RL(NX_LOG_WARNING,
                  "checkpoint: %d prediction(s) unacknowledged after %d ms; postponed", left,
                  DRAIN_PERIODIC_MS);
        r->ckpt_retry_mono = now_mono + DRAIN_RETRY_MS;
        return;
    }
    r->last_ckpt_mono = now_mono;
    r->ckpt_requested = 0;
    nx_pipeline_quiesce(r->pipe);
    /* what this checkpoint covers, committed once it is durable */
    r->n_ckpt_offs = nx_offsets_snapshot(&r->offs, r->ckpt_offs);
    if (nx_ckptdir_save_bg(r->ckdir, ckpt_write, r, err, sizeof err) < 0)
        nx_err("checkpoint: %s", err);
}

/* Changelog mode at shutdown: the local checkpoint (model, and a cache of
 * the users) is written, its offsets are not committed: the changelog's
 * transactions commit them. A failure is logged only. */
static void ckpt_local(nx_run_t *r) {
    char err[1024];
    r->n_ckpt_offs = nx_offsets_snapshot(&r->offs, r->ckpt_offs);
    if (nx_ckptdir_save(r->ckdir, ckpt_write, r, err, sizeof err) < 0)
        nx_warn("checkpoint: final checkpoint (model) failed: %s", err);
}

/* The final checkpoint, in this thread, and the commit of what it covers.
 * Returns 0, or NX_EXIT_STATE_NOT_SAVED. */
int nx_run_ckpt_final(nx_run_t *r) {
    char err[1024];
    if (!r->ckdir || !r->pipe || !r->kafka)
        return 0;
    /* the final checkpoint supersedes a background one still running */
    nx_ckptdir_cancel(r->ckdir);
    int timeout = (int)r->cfg->kafka.flush_timeout_ms;
    if (r->changelog) {
        /* the state's home: flushed (with the offsets it covers) first;
         * exactly-once: the last transaction, predictions and all */
        int cl = r->txn ? nx_txn_commit(r->txn, 1) : nx_changelog_flush(r->changelog);
        ckpt_local(r);
        return cl == 0 ? 0 : NX_EXIT_STATE_NOT_SAVED;
    }
    int left = nx_kafka_flush(r->kafka, timeout);
    int rc = 0;
    if (left > 0) {
        snprintf(err, sizeof err, "%d prediction(s) unacknowledged after %d ms", left, timeout);
        rc = -1;
    } else {
        int64_t t0 = nx_now_mono_ms();
        r->n_ckpt_offs = nx_offsets_snapshot(&r->offs, r->ckpt_offs);
        rc = nx_ckptdir_save(r->ckdir, ckpt_write, r, err, sizeof err);
        if (rc == 0)
            nx_notice("checkpoint: final checkpoint written in %lld ms",
                      (long long)(nx_now_mono_ms() - t0));
    }
    if (r->durable && rc == 0 &&
        nx_kafka_commit_offsets(r->kafka, r->ckpt_offs, r->n_ckpt_offs, 0) < 0)
        nx_warn("shutdown: committing the final checkpoint's offsets failed; the next start "
                "seeks to them from the checkpoint all the same");
    if (!r->durable)
        nx_kafka_commit_acknowledged(r->kafka, 0);
    if (rc == 0)
        return 0;
    nx_err("shutdown: the final checkpoint failed: %s; the input since the last durable "
           "checkpoint will be read again at the next start",
           err);
    return NX_EXIT_STATE_NOT_SAVED;
}

/* The newest checkpoint this key can read; a checkpoint under another key
 * stops the start unless --start-afresh. */
int nx_run_ckpt_load(nx_run_t *r, int *status, char *err, size_t err_size) {
    char why[1024];
    int64_t loaded = nx_ckptdir_load(r->ckdir, ckpt_load, r, why, sizeof why);
    if (!r->pipe) {
        snprintf(err, err_size, "cannot rebuild the pipeline after a refused checkpoint");
        *status = 1;
        return -1;
    }
    if (loaded >= 0)
        return 0;
    if (r->key_mismatch && !r->start_afresh) {
        *status = NX_EXIT_CONFIG;
        snprintf(err, err_size,
                 "%.700s. Restore the key file that wrote it, or start once with "
                 "--start-afresh to discard that state",
                 why);
        return -1;
    }
    nx_err("checkpoint: %s; STARTING AFRESH (partitions with committed offsets are reported "
           "as state gaps)",
           why);
    return 0;
}
