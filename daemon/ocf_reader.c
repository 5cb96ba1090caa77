/* ocf_reader.c: Avro Object Container File replay reader (ocf_reader.h). */
#include "ocf_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <snappy-c.h>
#include <zlib.h>

#include "ocf.h"

/* Header metadata values (the schema) larger than this are refused. */
#define META_MAX (1u << 20)

struct nx_ocf_reader {
    nx_codec_t *codec;
    FILE *fp;
    const char *path;
    nx_replay_stats_t *st;
    char error[256];

    nx_codec_prog_t *prog; /* compiled from the file's schema */
    int ocf_codec;         /* NX_OCF_NULL, NX_OCF_DEFLATE, NX_OCF_SNAPPY */
    uint8_t sync[NX_OCF_SYNC_LEN];
    uint8_t *blk; /* compressed block */
    size_t blk_cap;
    uint8_t *inf; /* inflated block */
    size_t inf_cap;
    z_stream zs;
    int zs_init;
    const uint8_t *dp, *dend; /* datums left in the current block */
    int64_t d_left;
    uint64_t rec_no;
};

const char *nx_ocf_reader_error(const nx_ocf_reader_t *rd) {
    return rd->error;
}

/* A varint from the file. 0, or -1 at EOF before its first byte, -2 on a
 * bad varint or EOF inside it. */
static int f_long(FILE *fp, int64_t *v) {
    uint64_t u = 0;
    for (int i = 0; i < 10; i++) { /* 10 bytes: ceil(64 / 7) */
        int c = getc(fp);
        if (c == EOF)
            return i == 0 ? -1 : -2;
        u |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
            return 0;
        }
    }
    return -2;
}

static int read_header(nx_ocf_reader_t *rd, char *errstr, size_t errstr_size) {
    uint8_t magic[NX_OCF_MAGIC_LEN];
    char *schema = NULL, *key = NULL, *val = NULL;
    size_t schema_len = 0;
    int64_t count, n;

    if (fread(magic, 1, NX_OCF_MAGIC_LEN, rd->fp) != NX_OCF_MAGIC_LEN ||
        memcmp(magic, nx_ocf_magic, NX_OCF_MAGIC_LEN) != 0)
        goto bad;
    for (;;) {
        if (f_long(rd->fp, &count) != 0)
            goto bad;
        if (count == 0)
            break;
        if (count < 0) {
            if (count == INT64_MIN || f_long(rd->fp, &n) != 0) /* block size, unused */
                goto bad;
            count = -count;
        }
        for (int64_t i = 0; i < count; i++) {
            int64_t klen, vlen;
            if (f_long(rd->fp, &klen) != 0 || klen < 0 || klen > 256)
                goto bad;
            key = calloc(1, (size_t)klen + 1);
            if (!key || fread(key, 1, (size_t)klen, rd->fp) != (size_t)klen)
                goto bad;
            if (f_long(rd->fp, &vlen) != 0 || vlen < 0 || vlen > META_MAX)
                goto bad;
            val = calloc(1, (size_t)vlen + 1);
            if (!val || fread(val, 1, (size_t)vlen, rd->fp) != (size_t)vlen)
                goto bad;
            if (strcmp(key, "avro.schema") == 0) {
                free(schema);
                schema = val;
                schema_len = (size_t)vlen;
                val = NULL;
            } else if (strcmp(key, "avro.codec") == 0) {
                if ((rd->ocf_codec = nx_ocf_codec_parse(val)) < 0) {
                    snprintf(errstr, errstr_size,
                             "%s: unsupported codec \"%s\" (null, deflate, snappy)", rd->path, val);
                    goto err;
                }
            }
            free(key);
            free(val);
            key = val = NULL;
        }
    }
    if (fread(rd->sync, 1, NX_OCF_SYNC_LEN, rd->fp) != NX_OCF_SYNC_LEN || !schema)
        goto bad;
    char err[256];
    rd->prog = nx_codec_prog_new(rd->codec, schema, schema_len, err, sizeof err);
    if (!rd->prog) {
        snprintf(errstr, errstr_size, "%s: %s", rd->path, err);
        goto err;
    }
    free(schema);
    return 0;
bad:
    snprintf(errstr, errstr_size, "%s: not a valid Avro container header", rd->path);
err:
    free(schema);
    free(key);
    free(val);
    return -1;
}

/* Scans forward from `pos` for the sync marker; leaves the file just after
 * it. 0 found, -1 at EOF. */
static int resync(nx_ocf_reader_t *rd, off_t pos) {
    uint8_t win[NX_OCF_SYNC_LEN];
    size_t have = 0;
    if (fseeko(rd->fp, pos, SEEK_SET) != 0)
        return -1;
    for (;;) {
        int c = getc(rd->fp);
        if (c == EOF)
            return -1;
        if (have < NX_OCF_SYNC_LEN) {
            win[have++] = (uint8_t)c;
        } else {
            memmove(win, win + 1, NX_OCF_SYNC_LEN - 1);
            win[NX_OCF_SYNC_LEN - 1] = (uint8_t)c;
        }
        if (have == NX_OCF_SYNC_LEN && memcmp(win, rd->sync, NX_OCF_SYNC_LEN) == 0)
            return 0;
    }
}

/* Inflates blk[0..size) (raw deflate, RFC 1951, as Avro writes it) into
 * rd->inf. Returns the inflated length, or -1. */
static int64_t inflate_block(nx_ocf_reader_t *rd, size_t size) {
    if (!rd->zs_init) {
        if (inflateInit2(&rd->zs, -15) != Z_OK) /* -15: raw deflate, 32 KiB window */
            return -1;
        rd->zs_init = 1;
    } else if (inflateReset(&rd->zs) != Z_OK) {
        return -1;
    }
    if (nx_ocf_reserve(&rd->inf, &rd->inf_cap, size * 4) < 0)
        return -1;
    rd->zs.next_in = rd->blk;
    rd->zs.avail_in = (uInt)size;
    size_t out = 0;
    for (;;) {
        rd->zs.next_out = rd->inf + out;
        rd->zs.avail_out = (uInt)(rd->inf_cap - out);
        int zr = inflate(&rd->zs, Z_FINISH);
        out = rd->inf_cap - rd->zs.avail_out;
        if (zr == Z_STREAM_END)
            return (int64_t)out;
        if (zr != Z_BUF_ERROR && zr != Z_OK)
            return -1;
        if (rd->zs.avail_in == 0 && zr == Z_BUF_ERROR)
            return -1; /* input ended before the stream did */
        if (rd->inf_cap >= NX_OCF_READER_INFLATED_MAX ||
            nx_ocf_reserve(&rd->inf, &rd->inf_cap, rd->inf_cap * 2) < 0)
            return -1;
    }
}

/* Uncompresses a snappy block blk[0..size) (data + CRC-32) into rd->inf
 * and checks the CRC. Returns the uncompressed length, or -1. */
static int64_t unsnappy_block(nx_ocf_reader_t *rd, size_t size) {
    size_t out = 0;
    if (size < NX_OCF_SNAPPY_CRC_LEN ||
        snappy_uncompressed_length((const char *)rd->blk, size - NX_OCF_SNAPPY_CRC_LEN, &out) !=
            SNAPPY_OK ||
        out > NX_OCF_READER_INFLATED_MAX || nx_ocf_reserve(&rd->inf, &rd->inf_cap, out + 1) < 0 ||
        snappy_uncompress((const char *)rd->blk, size - NX_OCF_SNAPPY_CRC_LEN, (char *)rd->inf,
                          &out) != SNAPPY_OK)
        return -1;
    const uint8_t *c = rd->blk + size - NX_OCF_SNAPPY_CRC_LEN;
    uint32_t want = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
    if ((uint32_t)crc32(0L, rd->inf, (uInt)out) != want)
        return -1;
    return (int64_t)out;
}

/* The most bytes `size` stored bytes of a block can hold uncompressed:
 * as many for null; under 22 times as many for snappy (its densest
 * element, a 3-byte copy, makes 64 bytes); 1032 times for deflate (its
 * longest match, 258 bytes, in as little as 2 bits); and never more than
 * the reader accepts of a block. */
static uint64_t max_plain_bytes(const nx_ocf_reader_t *rd, uint64_t size) {
    uint64_t ratio = rd->ocf_codec == NX_OCF_DEFLATE  ? 1032
                     : rd->ocf_codec == NX_OCF_SNAPPY ? 22
                                                      : 1;
    uint64_t max = size * ratio; /* size < 2^26: no overflow */
    if (rd->ocf_codec != NX_OCF_NULL && max > NX_OCF_READER_INFLATED_MAX)
        max = NX_OCF_READER_INFLATED_MAX;
    return max;
}

/* A corrupt block's `records` (from its record count) are lost. Every
 * datum takes at least one byte (an event has a user id and a timestamp),
 * so the count is believed only when the block's bytes can hold that many
 * (max_records); a count beyond it is damage, and then the records lost
 * are unknown: counted as an unreadable block, not as lost records. */
static void lose_records(nx_ocf_reader_t *rd, uint64_t records, uint64_t max_records) {
    if (records <= max_records) {
        rd->st->lost_records += records;
        rd->rec_no += records;
    } else {
        rd->st->unreadable_blocks++;
    }
}

/* After a bad block, where to scan for the next sync marker. */
static int recover(nx_ocf_reader_t *rd, off_t *fallback, off_t at) {
    off_t from = *fallback >= 0 ? *fallback : at + 1;
    *fallback = -1;
    return resync(rd, from);
}

/* Loads the next good block. 1 loaded, 0 end of file, -1 I/O error.
 *
 * A block whose marker does not match is lost. If only its marker was
 * damaged, the next block starts right after it, so that is tried first;
 * if that fails too, the file is scanned for the marker from just after
 * the damaged block's start (its size field may have been the damage). */
static int load_block(nx_ocf_reader_t *rd) {
    off_t fallback = -1;
    for (;;) {
        int64_t count, size;
        off_t at = ftello(rd->fp);
        int r = f_long(rd->fp, &count);
        if (r == -1 && fallback < 0)
            return 0; /* clean end */
        if (r == 0)
            r = f_long(rd->fp, &size);
        if (r != 0 || count < 0 || count > INT32_MAX || size < 0 ||
            size > NX_OCF_READER_BLOCK_MAX) {
            /* a damaged header: how many records the block held is unknown */
            if (fallback < 0) {
                rd->st->corrupt_blocks++;
                rd->st->unreadable_blocks++;
            }
            if (recover(rd, &fallback, at) < 0)
                return 0;
            continue;
        }
        if (nx_ocf_reserve(&rd->blk, &rd->blk_cap, (size_t)size + NX_OCF_SYNC_LEN) < 0) {
            snprintf(rd->error, sizeof rd->error, "out of memory");
            return -1;
        }
        size_t got = fread(rd->blk, 1, (size_t)size + NX_OCF_SYNC_LEN, rd->fp);
        if (ferror(rd->fp)) {
            snprintf(rd->error, sizeof rd->error, "%s: %s", rd->path, strerror(errno));
            return -1;
        }
        rd->st->bytes_read = (uint64_t)ftello(rd->fp);
        if (got != (size_t)size + NX_OCF_SYNC_LEN ||
            memcmp(rd->blk + size, rd->sync, NX_OCF_SYNC_LEN) != 0) {
            if (fallback < 0) {
                rd->st->corrupt_blocks++;
                /* of a cut block, only the bytes read bound its count */
                lose_records(rd, (uint64_t)count,
                             max_plain_bytes(rd, got < (size_t)size ? got : (uint64_t)size));
                if (got == (size_t)size + NX_OCF_SYNC_LEN) {
                    fallback = at + 1; /* try the next block in place first */
                    continue;
                }
            }
            if (recover(rd, &fallback, at) < 0)
                return 0;
            continue;
        }
        fallback = -1;
        const uint8_t *data = rd->blk;
        int64_t dlen = size;
        if (rd->ocf_codec != NX_OCF_NULL) {
            dlen = rd->ocf_codec == NX_OCF_DEFLATE ? inflate_block(rd, (size_t)size)
                                                   : unsnappy_block(rd, (size_t)size);
            data = rd->inf;
            if (dlen < 0) {
                rd->st->corrupt_blocks++;
                lose_records(rd, (uint64_t)count, max_plain_bytes(rd, (uint64_t)size));
                continue;
            }
        }
        rd->dp = data;
        rd->dend = data + dlen;
        rd->d_left = count;
        return 1;
    }
}

int nx_ocf_reader_next(nx_ocf_reader_t *rd, nx_event_t *evs, int max, int64_t now_ms) {
    int n = 0;
    while (n < max) {
        if (rd->d_left == 0) {
            if (n > 0)
                break; /* the batch's events point into this block */
            int r = load_block(rd);
            if (r <= 0)
                return r < 0 ? -1 : 0;
            continue;
        }
        if (rd->dp == rd->dend) {
            /* the count promised more datums than the block's bytes hold:
             * the count is damage, the block's true number unknown */
            rd->st->corrupt_blocks++;
            rd->st->unreadable_blocks++;
            rd->d_left = 0;
            continue;
        }
        size_t used = 0;
        nx_event_t *ev = &evs[n];
        nx_codec_reason_t r = nx_codec_decode_datum(
            rd->codec, rd->prog, rd->dp, (size_t)(rd->dend - rd->dp), -1, now_ms, ev, &used);
        uint64_t rec = rd->rec_no++;
        rd->st->records++;
        rd->d_left--;
        if (nx_codec_reason_is_structural(r)) {
            /* the rest of the block cannot be delimited; the bad datum
             * took at least one of the bytes left */
            nx_replay_stats_note_bad(rd->st, rec, r);
            rd->st->corrupt_blocks++;
            lose_records(rd, (uint64_t)rd->d_left, (uint64_t)(rd->dend - rd->dp) - 1);
            rd->d_left = 0;
            continue;
        }
        rd->dp += used;
        if (rd->d_left == 0 && rd->dp != rd->dend) {
            /* bytes after the last datum the count promised: the count is
             * damage, the records in those bytes unknown */
            rd->st->corrupt_blocks++;
            rd->st->unreadable_blocks++;
        }
        if (r == NX_CODEC_OK) {
            ev->partition = -1;
            ev->offset = (int64_t)rec;
            n++;
            rd->st->events++;
        } else if (r == NX_CODEC_SKIPPED) {
            rd->st->skipped++;
        } else {
            nx_replay_stats_note_bad(rd->st, rec, r);
        }
    }
    return n;
}

void nx_ocf_reader_destroy(nx_ocf_reader_t *rd) {
    if (!rd)
        return;
    if (rd->zs_init)
        inflateEnd(&rd->zs);
    nx_codec_prog_destroy(rd->prog);
    free(rd->blk);
    free(rd->inf);
    free(rd);
}

nx_ocf_reader_t *nx_ocf_reader_new(nx_codec_t *codec, FILE *fp, const char *path,
                                   nx_replay_stats_t *st, char *errstr, size_t errstr_size) {
    nx_ocf_reader_t *rd = calloc(1, sizeof *rd);
    if (!rd) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    rd->codec = codec;
    rd->fp = fp;
    rd->path = path;
    rd->st = st;
    if (read_header(rd, errstr, errstr_size) < 0) {
        nx_ocf_reader_destroy(rd);
        return NULL;
    }
    st->bytes_read = (uint64_t)ftello(fp);
    return rd;
}
