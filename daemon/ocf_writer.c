/* ocf_writer.c: Avro Object Container File writer (ocf_writer.h). */
#include "ocf_writer.h"

#include <avro.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <snappy-c.h>
#include <zlib.h>

#include "avrobin.h"
#include "ocf.h"
#include "rng.h"

/* Our own container writer (Avro C's draws its sync marker from
 * srand(time(NULL)) and reseeds the process-wide rand()). Datums are
 * buffered into one block; a full block is written as
 * count, size, data (deflated or not), sync.
 *
 * Blocks are deflated and written by a thread of the writer's own, so that
 * compression and write(2) run beside the pipeline instead of in its loop
 * (deflate was ~30% of replay's main thread with predictions written). Two
 * block buffers: the caller fills one while the thread writes the other;
 * a full block waits only if the thread is still on the previous one. The
 * blocks and their order are those of a writer without a thread: the bytes
 * are the same. The thread owns fp, zs and zbuf while it runs; everything
 * shared is under mu. */
struct nx_ocf_writer {
    FILE *fp;
    int own_fp; /* 0 for stdout */
    char *path;
    int ocf_codec; /* NX_OCF_NULL, NX_OCF_DEFLATE, NX_OCF_SNAPPY */
    uint8_t sync[NX_OCF_SYNC_LEN];
    uint8_t *blk; /* datums of the open block (the caller's buffer) */
    size_t blk_len, blk_cap;
    int64_t blk_count;
    uint8_t *spare; /* the other block buffer: the thread's, or free */
    size_t spare_cap;
    uint8_t *zbuf; /* compressed block */
    size_t zcap;
    z_stream zs;
    int zs_init;

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* job handed over, job done, or stop */
    const uint8_t *job;  /* block to write, NULL = none */
    size_t job_len;
    int64_t job_count;
    int stop;
    _Atomic int failed; /* a write failed: later appends fail, close reports */
    char werr[256];     /* what failed */
};

/* A block is written once its datums reach this many bytes: large blocks
 * make large replay batches and compress better; 1 MiB is what the earlier
 * Avro C writer used, so readers see the same block sizes. */
#define OCF_BLOCK_SIZE (1u << 20)
/* zlib level: 1 (fastest). Prediction records are mostly float bits that
 * compress little better at 6, while level 1 costs a third of the time;
 * fixed so that the bytes are reproducible (for one zlib version). */
#define OCF_DEFLATE_LEVEL 1
/* Raw deflate (RFC 1951, as Avro's "deflate" codec) with a 32 KiB window;
 * memLevel 8 is zlib's default. */
#define OCF_DEFLATE_WBITS    (-15)
#define OCF_DEFLATE_MEMLEVEL 8

/* Writes len bytes; on failure sets failed and werr (the caller holds mu,
 * or no thread is running). */
static int w_write(nx_ocf_writer_t *w, const void *b, size_t len) {
    if (fwrite(b, 1, len, w->fp) != len) {
        w->failed = 1;
        snprintf(w->werr, sizeof w->werr, "%s: %s", w->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* A zig-zag varint (Avro long). */
static int w_long(nx_ocf_writer_t *w, int64_t v) {
    uint8_t b[NX_AVROBIN_VARINT_MAX];
    nx_avrobin_t c;
    nx_avrobin_init(&c, b, sizeof b);
    nx_avrobin_long(&c, v);
    return w_write(w, b, (size_t)(c.p - b));
}

/* A metadata entry: key and value as Avro strings/bytes. */
static int w_meta(nx_ocf_writer_t *w, const char *key, const char *val, size_t vlen) {
    size_t klen = strlen(key);
    if (w_long(w, (int64_t)klen) < 0 || w_write(w, key, klen) < 0 || w_long(w, (int64_t)vlen) < 0 ||
        w_write(w, val, vlen) < 0)
        return -1;
    return 0;
}

/* Deflates data into zbuf; returns the compressed length or -1. */
static int64_t w_deflate(nx_ocf_writer_t *w, const uint8_t *data, size_t len) {
    if (deflateReset(&w->zs) != Z_OK)
        return -1;
    size_t bound = deflateBound(&w->zs, (uLong)len);
    if (nx_ocf_reserve(&w->zbuf, &w->zcap, bound) < 0)
        return -1;
    w->zs.next_in = (Bytef *)data;
    w->zs.avail_in = (uInt)len;
    w->zs.next_out = w->zbuf;
    w->zs.avail_out = (uInt)w->zcap;
    if (deflate(&w->zs, Z_FINISH) != Z_STREAM_END)
        return -1;
    return (int64_t)(w->zcap - w->zs.avail_out);
}

/* Snappy-compresses data into zbuf, CRC-32 of data appended (big-endian);
 * returns the length or -1. */
static int64_t w_snappy(nx_ocf_writer_t *w, const uint8_t *data, size_t len) {
    size_t out = snappy_max_compressed_length(len);
    if (nx_ocf_reserve(&w->zbuf, &w->zcap, out + NX_OCF_SNAPPY_CRC_LEN) < 0 ||
        snappy_compress((const char *)data, len, (char *)w->zbuf, &out) != SNAPPY_OK)
        return -1;
    uint32_t crc = (uint32_t)crc32(0L, data, (uInt)len);
    for (int i = 0; i < NX_OCF_SNAPPY_CRC_LEN; i++)
        w->zbuf[out + (size_t)i] = (uint8_t)(crc >> (24 - 8 * i));
    return (int64_t)(out + NX_OCF_SNAPPY_CRC_LEN);
}

/* Writes one block: count, size, data (compressed or not), sync. The
 * writer's thread, or the caller when none runs. 0 or -1 (werr set). */
static int w_write_block(nx_ocf_writer_t *w, const uint8_t *data, size_t len, int64_t count) {
    int64_t out_len = (int64_t)len;
    if (w->ocf_codec != NX_OCF_NULL) {
        out_len = w->ocf_codec == NX_OCF_DEFLATE ? w_deflate(w, data, len) : w_snappy(w, data, len);
        if (out_len < 0) {
            snprintf(w->werr, sizeof w->werr, "%s: %s failed", w->path,
                     w->ocf_codec == NX_OCF_DEFLATE ? "deflate" : "snappy");
            w->failed = 1;
            return -1;
        }
        data = w->zbuf;
    }
    if (w_long(w, count) < 0 || w_long(w, out_len) < 0 || w_write(w, data, (size_t)out_len) < 0 ||
        w_write(w, w->sync, NX_OCF_SYNC_LEN) < 0)
        return -1;
    return 0;
}

static void *w_thread_main(void *arg) {
    nx_ocf_writer_t *w = arg;
    pthread_setname_np(pthread_self(), "nx-ocf-writer"); /* for top -H, perf */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->job && !w->stop)
            pthread_cond_wait(&w->cond, &w->mu);
        if (!w->job)
            break; /* stop, and nothing left */
        const uint8_t *data = w->job;
        size_t len = w->job_len;
        int64_t count = w->job_count;
        int skip = w->failed;
        pthread_mutex_unlock(&w->mu);
        /* fp, zs, zbuf are this thread's while it runs; failed and werr
         * are set here only, read by the caller after the job is done */
        if (!skip)
            w_write_block(w, data, len, count);
        pthread_mutex_lock(&w->mu);
        w->job = NULL;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Waits until the thread has no job. Caller holds mu. */
static void w_wait_idle(nx_ocf_writer_t *w) {
    while (w->job)
        pthread_cond_wait(&w->cond, &w->mu);
}

/* Hands the open block to the thread (after it finished the previous one)
 * and continues in the spare buffer; without a thread, writes it here. */
static int w_flush_block(nx_ocf_writer_t *w, char *errstr, size_t errstr_size) {
    if (w->blk_count == 0)
        return 0;
    int rc = 0;
    if (!w->thread_started) {
        rc = w_write_block(w, w->blk, w->blk_len, w->blk_count);
    } else {
        pthread_mutex_lock(&w->mu);
        w_wait_idle(w); /* the spare buffer is free again */
        if (w->failed) {
            rc = -1;
        } else {
            w->job = w->blk;
            w->job_len = w->blk_len;
            w->job_count = w->blk_count;
            pthread_cond_broadcast(&w->cond);
            uint8_t *b = w->blk;
            size_t cap = w->blk_cap;
            w->blk = w->spare;
            w->blk_cap = w->spare_cap;
            w->spare = b;
            w->spare_cap = cap;
        }
        pthread_mutex_unlock(&w->mu);
    }
    if (rc < 0)
        snprintf(errstr, errstr_size, "%s", w->werr);
    w->blk_len = 0;
    w->blk_count = 0;
    return rc;
}

/* Stops the thread once its last job is written. */
static void w_stop_thread(nx_ocf_writer_t *w) {
    if (!w->thread_started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    w->thread_started = 0;
}

static void w_free(nx_ocf_writer_t *w) {
    w_stop_thread(w);
    if (w->fp && w->own_fp)
        fclose(w->fp);
    if (w->zs_init)
        deflateEnd(&w->zs);
    free(w->blk);
    free(w->spare);
    free(w->zbuf);
    free(w->path);
    free(w);
}

nx_ocf_writer_t *nx_ocf_writer_open(const char *path, const char *schema_json, const char *codec,
                                    uint64_t seed, char *errstr, size_t errstr_size) {
    avro_schema_t schema = NULL;
    nx_ocf_writer_t *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if ((w->ocf_codec = nx_ocf_codec_parse(codec)) < 0) {
        snprintf(errstr, errstr_size, "OCF codec \"%s\": use null, deflate or snappy", codec);
        goto err;
    }
    /* the schema is only copied into the header, but a file nobody can
     * read is better refused now: Avro C parses it once here */
    size_t schema_len = strlen(schema_json);
    if (avro_schema_from_json_length(schema_json, schema_len, &schema) != 0) {
        snprintf(errstr, errstr_size, "OCF schema: %s", avro_strerror());
        goto err;
    }
    avro_schema_decref(schema);
    if (w->ocf_codec == NX_OCF_DEFLATE) {
        if (deflateInit2(&w->zs, OCF_DEFLATE_LEVEL, Z_DEFLATED, OCF_DEFLATE_WBITS,
                         OCF_DEFLATE_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
            snprintf(errstr, errstr_size, "deflateInit2 failed");
            goto err;
        }
        w->zs_init = 1;
    }
    /* the marker depends on the seed only; the constant keeps it apart
     * from other streams drawn from the same seed */
    uint64_t x = seed ^ 0x6f63662d73796e63ULL; /* "ocf-sync" */
    for (int i = 0; i < NX_OCF_SYNC_LEN; i += 8) {
        uint64_t r = nx_rng_splitmix64(&x); /* 16 marker bytes from the seed */
        for (int b = 0; b < 8; b++)
            w->sync[i + b] = (uint8_t)(r >> (8 * b));
    }
    if (nx_ocf_reserve(&w->blk, &w->blk_cap, OCF_BLOCK_SIZE) < 0 ||
        nx_ocf_reserve(&w->spare, &w->spare_cap, OCF_BLOCK_SIZE) < 0) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (strcmp(path, "-") == 0) {
        w->fp = stdout;
    } else if ((w->fp = fopen(path, "wb")) != NULL) {
        w->own_fp = 1;
    } else {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto err;
    }
    /* header: magic, metadata map (one block of 2 entries, then 0), sync */
    if (w_write(w, nx_ocf_magic, NX_OCF_MAGIC_LEN) < 0 || w_long(w, 2) < 0 ||
        w_meta(w, "avro.codec", codec, strlen(codec)) < 0 ||
        w_meta(w, "avro.schema", schema_json, schema_len) < 0 || w_long(w, 0) < 0 ||
        w_write(w, w->sync, NX_OCF_SYNC_LEN) < 0) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto err;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, w_thread_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cond); /* blocks are then written in append */
    } else {
        w->thread_started = 1;
    }
    return w;
err:
    if (w)
        w_free(w);
    return NULL;
}

int nx_ocf_writer_append(nx_ocf_writer_t *w, const void *datum, size_t len, char *errstr,
                         size_t errstr_size) {
    /* failed is read unlocked: a block's failure shows at the latest when
     * the next full block is handed over (w_flush_block, under mu) */
    if (atomic_load_explicit(&w->failed, memory_order_relaxed)) {
        snprintf(errstr, errstr_size, "%s: an earlier write failed", w->path);
        return -1;
    }
    if (w->blk_len + len > w->blk_cap &&
        nx_ocf_reserve(&w->blk, &w->blk_cap, w->blk_len + len) < 0) { /* only a datum > 1 MiB */
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    memcpy(w->blk + w->blk_len, datum, len);
    w->blk_len += len;
    w->blk_count++;
    if (w->blk_len >= OCF_BLOCK_SIZE)
        return w_flush_block(w, errstr, errstr_size);
    return 0;
}

int nx_ocf_writer_close(nx_ocf_writer_t *w, char *errstr, size_t errstr_size) {
    if (!w)
        return 0;
    int rc = 0;
    if (w_flush_block(w, errstr, errstr_size) < 0)
        rc = -1;
    w_stop_thread(w); /* the last block is written */
    if (rc == 0 && w->failed) {
        snprintf(errstr, errstr_size, "%s", w->werr);
        rc = -1;
    }
    if (rc == 0 && fflush(w->fp) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", w->path, strerror(errno));
        rc = -1;
    }
    if (w->own_fp) {
        int cr = fclose(w->fp);
        w->fp = NULL;
        if (cr != 0 && rc == 0) {
            snprintf(errstr, errstr_size, "%s: %s", w->path, strerror(errno));
            rc = -1;
        }
    }
    w_free(w);
    return rc;
}
