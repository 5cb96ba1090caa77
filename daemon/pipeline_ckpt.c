/* pipeline_ckpt.c: the pipeline's checkpoints (pipeline.h): model, store,
 * the "pipeline.v" section (and the reader of its unversioned form) and the
 * caller's extra sections. */
#include <stddef.h>
#include <string.h>

#include "checkpoint.h"
#include "log.h"
#include "pipeline_int.h"

void nx_pipeline_quiesce(nx_pipeline_t *pipe) {
    if (pipe->tr)
        nx_trainer_quiesce(pipe->tr);
}

/* "pipeline.v" section: watermark, partition clocks, the examples not yet
 * trained on (the trainer's partial mini-batch and the segment being
 * filled) and counters, so a restored pipeline loses no label. The trainer
 * must be idle (nx_trainer_sync).
 *
 * Versioned: u32 version (PIPELINE_SECTION_VERSION), then explicit fields;
 * the counters are a length-prefixed copy of nx_pipeline_stats_t, whose
 * fields are only ever appended, so an older copy loads into a newer struct
 * (the new fields start at 0). Version 3 appends the model guard's state
 * (guard.h). Checkpoints written before the section was versioned hold the
 * raw "pipeline" section instead: it is still read. */
#define PIPELINE_SECTION         "pipeline.v"
#define PIPELINE_SECTION_LEGACY  "pipeline"
#define PIPELINE_SECTION_VERSION 3u

/* The partition clock as stored in a checkpoint, fields explicit. */
typedef struct part_clock_rec {
    int32_t topic, partition;
    int64_t max_ts, last_wall_ms;
    int32_t revoked;
} part_clock_rec_t;

/* The examples not yet trained on, behind the feature count they were
 * made with: a checkpoint of another feature layout is refused. */
static int save_examples(const nx_pipeline_t *pipe, nx_checkpoint_writer_t *w) {
    uint64_t dim = pipe->dim;
    int rc = nx_checkpoint_write(w, &dim, sizeof dim);
    rc |= nx_trainer_save(pipe->tr, nx_checkpoint_write, w);
    return rc ? -1 : 0;
}

static int load_examples(nx_pipeline_t *pipe, nx_checkpoint_reader_t *r) {
    uint64_t dim;
    if (nx_checkpoint_read(r, &dim, sizeof dim) < 0 || dim != pipe->dim)
        return -1;
    return nx_trainer_load(pipe->tr, nx_checkpoint_read, r);
}

static int save_pipeline_section(nx_pipeline_t *pipe, nx_checkpoint_writer_t *w) {
    uint32_t version = PIPELINE_SECTION_VERSION, np = (uint32_t)pipe->n_parts;
    uint32_t st_len = sizeof pipe->st;
    int rc = nx_checkpoint_section_begin(w, PIPELINE_SECTION);
    rc |= nx_checkpoint_write(w, &version, sizeof version);
    rc |= nx_checkpoint_write(w, &pipe->watermark, sizeof pipe->watermark);
    rc |= nx_checkpoint_write(w, &np, sizeof np);
    for (int i = 0; i < pipe->n_parts; i++) {
        const part_clock_t *c = &pipe->parts[i];
        part_clock_rec_t rec = {c->topic, c->partition, c->max_ts, c->last_wall_ms, c->revoked};
        rc |= nx_checkpoint_write(w, &rec.topic, sizeof rec.topic);
        rc |= nx_checkpoint_write(w, &rec.partition, sizeof rec.partition);
        rc |= nx_checkpoint_write(w, &rec.max_ts, sizeof rec.max_ts);
        rc |= nx_checkpoint_write(w, &rec.last_wall_ms, sizeof rec.last_wall_ms);
        rc |= nx_checkpoint_write(w, &rec.revoked, sizeof rec.revoked);
    }
    rc |= save_examples(pipe, w);
    rc |= nx_checkpoint_write(w, &st_len, sizeof st_len);
    rc |= nx_checkpoint_write(w, &pipe->st, sizeof pipe->st);
    rc |= nx_checkpoint_write(w, &pipe->maintained_at, sizeof pipe->maintained_at);
    rc |= nx_guard_save(pipe->guard, nx_checkpoint_write, w);
    rc |= nx_checkpoint_section_end(w);
    return rc ? -1 : 0;
}

/* A checkpoint without the guard's state (an older daemon's): a model that
 * has trained is served as it was, not warmed up again. */
static void guard_adopt(nx_pipeline_t *pipe) {
    if (pipe->mlp && nx_mlp_step(pipe->mlp) > 0)
        nx_guard_serve_loaded(pipe->guard);
}

static int load_pipeline_v2(nx_pipeline_t *pipe, nx_checkpoint_reader_t *r, char *errstr,
                            size_t errstr_size) {
    uint32_t version, np, st_len;
    if (nx_checkpoint_read(r, &version, sizeof version) < 0)
        return nx_errf(errstr, errstr_size, "checkpoint: empty pipeline section");
    if (version > PIPELINE_SECTION_VERSION)
        return nx_errf(errstr, errstr_size,
                       "checkpoint: pipeline section version %u is newer than this daemon's (%u)",
                       version, PIPELINE_SECTION_VERSION);
    if (nx_checkpoint_read(r, &pipe->watermark, sizeof pipe->watermark) < 0 ||
        nx_checkpoint_read(r, &np, sizeof np) < 0 || np > MAX_PARTS)
        goto bad;
    for (uint32_t i = 0; i < np; i++) {
        part_clock_rec_t rec;
        if (nx_checkpoint_read(r, &rec.topic, sizeof rec.topic) < 0 ||
            nx_checkpoint_read(r, &rec.partition, sizeof rec.partition) < 0 ||
            nx_checkpoint_read(r, &rec.max_ts, sizeof rec.max_ts) < 0 ||
            nx_checkpoint_read(r, &rec.last_wall_ms, sizeof rec.last_wall_ms) < 0 ||
            nx_checkpoint_read(r, &rec.revoked, sizeof rec.revoked) < 0)
            goto bad;
        pipe->parts[i] = (part_clock_t){rec.topic, rec.partition, rec.max_ts, rec.last_wall_ms,
                                        rec.revoked != 0};
    }
    pipe->n_parts = (int)np;
    if (load_examples(pipe, r) < 0 || nx_checkpoint_read(r, &st_len, sizeof st_len) < 0)
        goto bad;
    /* counters: an older, shorter copy leaves the newer fields at 0; a
     * longer one (impossible for an older daemon) is cut */
    memset(&pipe->st, 0, sizeof pipe->st);
    size_t keep = st_len < sizeof pipe->st ? st_len : sizeof pipe->st;
    if (nx_checkpoint_read(r, &pipe->st, keep) < 0)
        goto bad;
    for (size_t skip = st_len - keep; skip > 0;) {
        char junk[256];
        size_t k = skip < sizeof junk ? skip : sizeof junk;
        if (nx_checkpoint_read(r, junk, k) < 0)
            goto bad;
        skip -= k;
    }
    if (nx_checkpoint_read(r, &pipe->maintained_at, sizeof pipe->maintained_at) < 0)
        goto bad;
    /* the guard's state from version 3 on */
    if (version >= 3 ? nx_guard_load(pipe->guard, nx_checkpoint_read, r) < 0 : 0)
        goto bad;
    if (version < 3)
        guard_adopt(pipe);
    return 0;
bad:
    return nx_errf(errstr, errstr_size, "checkpoint: bad pipeline section");
}

/* The section as written before it was versioned: the watermark, the
 * partition clocks and the counters as raw structs. The clocks' layout is
 * still that one; the counters were the struct up to the guard's fields
 * (appended since), which start at 0. */
#define LEGACY_STATS_SIZE offsetof(nx_pipeline_stats_t, model_state)
static int load_pipeline_legacy(nx_pipeline_t *pipe, nx_checkpoint_reader_t *r, char *errstr,
                                size_t errstr_size) {
    int32_t np;
    memset(&pipe->st, 0, sizeof pipe->st);
    if (nx_checkpoint_read(r, &pipe->watermark, sizeof pipe->watermark) < 0 ||
        nx_checkpoint_read(r, &np, sizeof np) < 0 || np < 0 || np > MAX_PARTS ||
        nx_checkpoint_read(r, pipe->parts, (size_t)np * sizeof pipe->parts[0]) < 0 ||
        load_examples(pipe, r) < 0 || nx_checkpoint_read(r, &pipe->st, LEGACY_STATS_SIZE) < 0 ||
        nx_checkpoint_read(r, &pipe->maintained_at, sizeof pipe->maintained_at) < 0)
        return nx_errf(errstr, errstr_size, "checkpoint: bad pipeline section");
    pipe->n_parts = np;
    guard_adopt(pipe);
    return 0;
}

static int load_pipeline_section(nx_pipeline_t *pipe, nx_checkpoint_reader_t *r, char *errstr,
                                 size_t errstr_size) {
    if (nx_checkpoint_section_open(r, PIPELINE_SECTION) == 0)
        return load_pipeline_v2(pipe, r, errstr, errstr_size);
    if (nx_checkpoint_section_open(r, PIPELINE_SECTION_LEGACY) == 0)
        return load_pipeline_legacy(pipe, r, errstr, errstr_size);
    return nx_errf(errstr, errstr_size, "checkpoint has no pipeline section");
}

int nx_pipeline_save(nx_pipeline_t *pipe, const char *path, const nx_pipeline_section_t *extra,
                     int n_extra, char *errstr, size_t errstr_size) {
    if (pipe->tr)
        nx_trainer_sync(pipe->tr); /* the trainer's state is ours until the next push */
    nx_checkpoint_writer_t *w =
        nx_checkpoint_begin(path, nx_store_schema_hash(pipe->store), errstr, errstr_size);
    if (!w)
        return -1;
    int rc = 0;
    if (pipe->mlp)
        rc |= nx_checkpoint_put_mlp(w, pipe->mlp);
    rc |= nx_checkpoint_section_begin(w, "store");
    rc |= nx_store_save(pipe->store, nx_checkpoint_write, w);
    rc |= nx_checkpoint_section_end(w);
    rc |= save_pipeline_section(pipe, w);
    for (int i = 0; i < n_extra; i++) {
        rc |= nx_checkpoint_section_begin(w, extra[i].name);
        rc |= extra[i].save(extra[i].opaque, nx_checkpoint_write, w);
        rc |= nx_checkpoint_section_end(w);
    }
    if (rc) {
        const char *why = nx_checkpoint_error(w);
        nx_errf(errstr, errstr_size, "checkpoint not written: %s",
                why ? why : "a section could not be serialised");
        nx_checkpoint_abort(w);
        return -1;
    }
    return nx_checkpoint_commit(w, errstr, errstr_size);
}

int nx_pipeline_load(nx_pipeline_t *pipe, const char *path, const nx_pipeline_section_t *extra,
                     int n_extra, char *errstr, size_t errstr_size) {
    if (pipe->tr)
        nx_trainer_reset(pipe->tr);
    nx_checkpoint_reader_t *r =
        nx_checkpoint_open(path, nx_store_schema_hash(pipe->store), errstr, errstr_size);
    if (!r)
        return -1;
    int rc = -1;
    if (pipe->mlp && nx_checkpoint_get_mlp(r, pipe->mlp, errstr, errstr_size) < 0)
        goto out;
    if (nx_checkpoint_section_open(r, "store") < 0) {
        nx_errf(errstr, errstr_size, "checkpoint has no store section");
        goto out;
    }
    if (nx_store_restore(pipe->store, nx_checkpoint_read, r, errstr, errstr_size) < 0)
        goto out;
    if (load_pipeline_section(pipe, r, errstr, errstr_size) < 0)
        goto out;
    /* the event time reached: the latest over the restored partitions */
    pipe->clock = INT64_MIN;
    for (int i = 0; i < pipe->n_parts; i++)
        if (pipe->parts[i].max_ts > pipe->clock)
            pipe->clock = pipe->parts[i].max_ts;
    if (pipe->live) {
        /* the wall clock of each partition's last event belongs to the
         * process that wrote the checkpoint: counted from it, a restart
         * after an hour down would advance every quiet partition's
         * watermark by that hour at once and expire labels and users the
         * backlog is about to update. Quiet time counts from now. */
        int64_t now = nx_now_wall_ms();
        for (int i = 0; i < pipe->n_parts; i++)
            pipe->parts[i].last_wall_ms = now;
    }
    for (int i = 0; i < n_extra; i++) {
        if (nx_checkpoint_section_open(r, extra[i].name) < 0) {
            /* an optional section a checkpoint may lack: load sees NULL */
            if (extra[i].optional && extra[i].load(extra[i].opaque, NULL, NULL, 0) == 0)
                continue;
            snprintf(errstr, errstr_size, "checkpoint has no %s section", extra[i].name);
            goto out;
        }
        if (extra[i].load(extra[i].opaque, nx_checkpoint_read, r, nx_checkpoint_section_left(r)) <
            0) {
            snprintf(errstr, errstr_size, "checkpoint: bad %s section", extra[i].name);
            goto out;
        }
    }
    if (pipe->tr)
        nx_trainer_adopt(pipe->tr); /* predict from the loaded weights */
    rc = 0;
out:
    nx_checkpoint_close(r);
    return rc;
}
