/* replay_io.c: OCF and CSV replay readers, OCF writer (see replay_io.h). */
#include "replay_io.h"

#include <avro.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <snappy-c.h>
#include <zlib.h>

/* Avro OCF: magic "Obj" + version 1; 16-byte sync markers. */
static const uint8_t ocf_magic[4] = {'O', 'b', 'j', 1};
#define SYNC_LEN 16
/* Header metadata values (the schema) larger than this are refused. */
#define META_MAX (1u << 20)

enum { TS_EPOCH_S, TS_EPOCH_MS, TS_DATETIME };

/* Avro container codecs read and written here (the spec's names "null",
 * "deflate", "snappy"). snappy: each block is the Snappy-compressed data
 * followed by the CRC-32 (ISO 3309, zlib's crc32) of the uncompressed
 * data, 4 bytes big-endian. */
enum { OCF_NULL, OCF_DEFLATE, OCF_SNAPPY };

static int ocf_codec_of(const char *name) {
    if (strcmp(name, "null") == 0)
        return OCF_NULL;
    if (strcmp(name, "deflate") == 0)
        return OCF_DEFLATE;
    if (strcmp(name, "snappy") == 0)
        return OCF_SNAPPY;
    return -1;
}

/* CSV column roles (which nx_codec_fields_t member a column fills). */
enum { C_NONE, C_USER, C_TS, C_TYPE, C_ITEM, C_CAT, C_PRICE, C_QTY, C_SESSION };

struct nx_replay {
    const nx_config_t *cfg;
    nx_codec_t *codec;
    FILE *fp;
    char *path;
    int is_ocf;
    int eof;
    nx_replay_stats_t st;
    char error[256];

    /* OCF */
    nx_codec_prog_t *prog;
    int ocf_codec; /* OCF_NULL, OCF_DEFLATE, OCF_SNAPPY */
    uint8_t sync[SYNC_LEN];
    uint8_t *blk; /* compressed block */
    size_t blk_cap;
    uint8_t *inf; /* inflated block */
    size_t inf_cap;
    z_stream zs;
    int zs_init;
    const uint8_t *dp, *dend; /* datums left in the current block */
    int64_t d_left;
    uint64_t rec_no;

    /* CSV */
    char *buf; /* NX_REPLAY_CSV_BUF + 1 (room for a final '\n') */
    size_t start, len;
    int discard; /* inside a line too long for the buffer */
    uint64_t lineno;
    int header_pending;
    int stop_at_header; /* nx_replay_open reads the header line only */
    char delim;
    int ts_mode;
    int n_cols;                       /* columns mapped */
    int col_role[NX_CONFIG_MAX_LIST]; /* role per column */
    int need_cols;                    /* a row must have at least this many */
};

const nx_replay_stats_t *nx_replay_stats(const nx_replay_t *rp) {
    return &rp->st;
}

const char *nx_replay_format(const nx_replay_t *rp) {
    return rp->is_ocf ? "ocf" : "csv";
}

const char *nx_replay_error(const nx_replay_t *rp) {
    return rp->error;
}

/* Counts one rejected row or datum, keeping the first few for the caller
 * to report (replay.c logs them; logging here too printed each twice). */
static void note_bad(nx_replay_t *rp, uint64_t where, nx_codec_reason_t reason) {
    rp->st.bad++;
    rp->st.by_reason[reason]++;
    if (rp->st.n_first_bad < NX_REPLAY_FIRST_BAD)
        rp->st.first_bad[rp->st.n_first_bad++] = (nx_replay_bad_t){where, reason};
}

/* ---- OCF ---------------------------------------------------------------- */

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

static int read_header(nx_replay_t *rp, char *errstr, size_t errstr_size) {
    uint8_t magic[4];
    char *schema = NULL, *key = NULL, *val = NULL;
    size_t schema_len = 0;
    int64_t count, n;

    if (fread(magic, 1, 4, rp->fp) != 4 || memcmp(magic, ocf_magic, 4) != 0)
        goto bad;
    for (;;) {
        if (f_long(rp->fp, &count) != 0)
            goto bad;
        if (count == 0)
            break;
        if (count < 0) {
            if (count == INT64_MIN || f_long(rp->fp, &n) != 0) /* block size, unused */
                goto bad;
            count = -count;
        }
        for (int64_t i = 0; i < count; i++) {
            int64_t klen, vlen;
            if (f_long(rp->fp, &klen) != 0 || klen < 0 || klen > 256)
                goto bad;
            key = calloc(1, (size_t)klen + 1);
            if (!key || fread(key, 1, (size_t)klen, rp->fp) != (size_t)klen)
                goto bad;
            if (f_long(rp->fp, &vlen) != 0 || vlen < 0 || vlen > META_MAX)
                goto bad;
            val = calloc(1, (size_t)vlen + 1);
            if (!val || fread(val, 1, (size_t)vlen, rp->fp) != (size_t)vlen)
                goto bad;
            if (strcmp(key, "avro.schema") == 0) {
                free(schema);
                schema = val;
                schema_len = (size_t)vlen;
                val = NULL;
            } else if (strcmp(key, "avro.codec") == 0) {
                if ((rp->ocf_codec = ocf_codec_of(val)) < 0) {
                    snprintf(errstr, errstr_size,
                             "%s: unsupported codec \"%s\" (null, deflate, snappy)", rp->path, val);
                    goto err;
                }
            }
            free(key);
            free(val);
            key = val = NULL;
        }
    }
    if (fread(rp->sync, 1, SYNC_LEN, rp->fp) != SYNC_LEN || !schema)
        goto bad;
    char err[256];
    rp->prog = nx_codec_prog_new(rp->codec, schema, schema_len, err, sizeof err);
    if (!rp->prog) {
        snprintf(errstr, errstr_size, "%s: %s", rp->path, err);
        goto err;
    }
    free(schema);
    return 0;
bad:
    snprintf(errstr, errstr_size, "%s: not a valid Avro container header", rp->path);
err:
    free(schema);
    free(key);
    free(val);
    return -1;
}

/* Scans forward from `pos` for the sync marker; leaves the file just after
 * it. 0 found, -1 at EOF. */
static int resync(nx_replay_t *rp, off_t pos) {
    uint8_t win[SYNC_LEN];
    size_t have = 0;
    if (fseeko(rp->fp, pos, SEEK_SET) != 0)
        return -1;
    for (;;) {
        int c = getc(rp->fp);
        if (c == EOF)
            return -1;
        if (have < SYNC_LEN) {
            win[have++] = (uint8_t)c;
        } else {
            memmove(win, win + 1, SYNC_LEN - 1);
            win[SYNC_LEN - 1] = (uint8_t)c;
        }
        if (have == SYNC_LEN && memcmp(win, rp->sync, SYNC_LEN) == 0)
            return 0;
    }
}

static int ensure(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 65536;
    while (ncap < need)
        ncap *= 2;
    uint8_t *p = realloc(*buf, ncap);
    if (!p)
        return -1;
    *buf = p;
    *cap = ncap;
    return 0;
}

/* Inflates blk[0..size) (raw deflate, RFC 1951, as Avro writes it) into
 * rp->inf. Returns the inflated length, or -1. */
static int64_t inflate_block(nx_replay_t *rp, size_t size) {
    if (!rp->zs_init) {
        if (inflateInit2(&rp->zs, -15) != Z_OK) /* -15: raw deflate, 32 KiB window */
            return -1;
        rp->zs_init = 1;
    } else if (inflateReset(&rp->zs) != Z_OK) {
        return -1;
    }
    if (ensure(&rp->inf, &rp->inf_cap, size * 4) < 0)
        return -1;
    rp->zs.next_in = rp->blk;
    rp->zs.avail_in = (uInt)size;
    size_t out = 0;
    for (;;) {
        rp->zs.next_out = rp->inf + out;
        rp->zs.avail_out = (uInt)(rp->inf_cap - out);
        int zr = inflate(&rp->zs, Z_FINISH);
        out = rp->inf_cap - rp->zs.avail_out;
        if (zr == Z_STREAM_END)
            return (int64_t)out;
        if (zr != Z_BUF_ERROR && zr != Z_OK)
            return -1;
        if (rp->zs.avail_in == 0 && zr == Z_BUF_ERROR)
            return -1; /* input ended before the stream did */
        if (rp->inf_cap >= NX_REPLAY_INFLATED_MAX ||
            ensure(&rp->inf, &rp->inf_cap, rp->inf_cap * 2) < 0)
            return -1;
    }
}

/* Uncompresses a snappy block blk[0..size) (data + CRC-32) into rp->inf
 * and checks the CRC. Returns the uncompressed length, or -1. */
static int64_t unsnappy_block(nx_replay_t *rp, size_t size) {
    size_t out = 0;
    if (size < 4 ||
        snappy_uncompressed_length((const char *)rp->blk, size - 4, &out) != SNAPPY_OK ||
        out > NX_REPLAY_INFLATED_MAX || ensure(&rp->inf, &rp->inf_cap, out + 1) < 0 ||
        snappy_uncompress((const char *)rp->blk, size - 4, (char *)rp->inf, &out) != SNAPPY_OK)
        return -1;
    const uint8_t *c = rp->blk + size - 4;
    uint32_t want = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
    if ((uint32_t)crc32(0L, rp->inf, (uInt)out) != want)
        return -1;
    return (int64_t)out;
}

/* After a bad block, where to scan for the next sync marker. */
static int recover(nx_replay_t *rp, off_t *fallback, off_t at) {
    off_t from = *fallback >= 0 ? *fallback : at + 1;
    *fallback = -1;
    return resync(rp, from);
}

/* Loads the next good block. 1 loaded, 0 end of file, -1 I/O error.
 *
 * A block whose marker does not match is lost. If only its marker was
 * damaged, the next block starts right after it, so that is tried first;
 * if that fails too, the file is scanned for the marker from just after
 * the damaged block's start (its size field may have been the damage). */
static int load_block(nx_replay_t *rp) {
    off_t fallback = -1;
    for (;;) {
        int64_t count, size;
        off_t at = ftello(rp->fp);
        int r = f_long(rp->fp, &count);
        if (r == -1 && fallback < 0)
            return 0; /* clean end */
        if (r == 0)
            r = f_long(rp->fp, &size);
        if (r != 0 || count < 0 || count > INT32_MAX || size < 0 || size > NX_REPLAY_BLOCK_MAX) {
            if (fallback < 0)
                rp->st.corrupt_blocks++;
            if (recover(rp, &fallback, at) < 0)
                return 0;
            continue;
        }
        if (ensure(&rp->blk, &rp->blk_cap, (size_t)size + SYNC_LEN) < 0) {
            snprintf(rp->error, sizeof rp->error, "out of memory");
            return -1;
        }
        size_t got = fread(rp->blk, 1, (size_t)size + SYNC_LEN, rp->fp);
        if (ferror(rp->fp)) {
            snprintf(rp->error, sizeof rp->error, "%s: %s", rp->path, strerror(errno));
            return -1;
        }
        rp->st.bytes_read = (uint64_t)ftello(rp->fp);
        if (got != (size_t)size + SYNC_LEN || memcmp(rp->blk + size, rp->sync, SYNC_LEN) != 0) {
            if (fallback < 0) {
                rp->st.corrupt_blocks++;
                rp->st.lost_records += (uint64_t)count;
                rp->rec_no += (uint64_t)count;
                if (got == (size_t)size + SYNC_LEN) {
                    fallback = at + 1; /* try the next block in place first */
                    continue;
                }
            }
            if (recover(rp, &fallback, at) < 0)
                return 0;
            continue;
        }
        fallback = -1;
        const uint8_t *data = rp->blk;
        int64_t dlen = size;
        if (rp->ocf_codec != OCF_NULL) {
            dlen = rp->ocf_codec == OCF_DEFLATE ? inflate_block(rp, (size_t)size)
                                                : unsnappy_block(rp, (size_t)size);
            data = rp->inf;
            if (dlen < 0) {
                rp->st.corrupt_blocks++;
                rp->st.lost_records += (uint64_t)count;
                rp->rec_no += (uint64_t)count;
                continue;
            }
        }
        rp->dp = data;
        rp->dend = data + dlen;
        rp->d_left = count;
        return 1;
    }
}

static int ocf_next(nx_replay_t *rp, nx_event_t *evs, int max, int64_t now_ms) {
    int n = 0;
    while (n < max) {
        if (rp->d_left == 0) {
            if (n > 0)
                break; /* the batch's events point into this block */
            int r = load_block(rp);
            if (r <= 0)
                return r < 0 ? -1 : 0;
            continue;
        }
        size_t used = 0;
        nx_event_t *ev = &evs[n];
        nx_codec_reason_t r = nx_codec_decode_datum(
            rp->codec, rp->prog, rp->dp, (size_t)(rp->dend - rp->dp), -1, now_ms, ev, &used);
        uint64_t rec = rp->rec_no++;
        rp->st.records++;
        rp->d_left--;
        if (nx_codec_reason_is_structural(r)) {
            /* the rest of the block cannot be delimited */
            note_bad(rp, rec, r);
            rp->st.corrupt_blocks++;
            rp->st.lost_records += (uint64_t)rp->d_left;
            rp->rec_no += (uint64_t)rp->d_left;
            rp->d_left = 0;
            continue;
        }
        rp->dp += used;
        if (rp->d_left == 0 && rp->dp != rp->dend)
            rp->st.corrupt_blocks++; /* bytes after the last datum */
        if (r == NX_CODEC_OK) {
            ev->partition = -1;
            ev->offset = (int64_t)rec;
            n++;
            rp->st.events++;
        } else if (r == NX_CODEC_SKIPPED) {
            rp->st.skipped++;
        } else {
            note_bad(rp, rec, r);
        }
    }
    return n;
}

/* ---- CSV ---------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (the civil-from-days
 * inverse, with years shifted to start in March so leap days fall last). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                  /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
    return era * 146097 + doe - 719468; /* 719468: days from 0000-03-01 to 1970-01-01 */
}

/* Parses exactly `n` digits at s. */
static int digits(const char *s, int n, int64_t *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* "YYYY-MM-DD HH:MM:SS" (or 'T'), optional ".f..." fraction, optional
 * " UTC", "Z" or "+00:00". Other zones are refused (ambiguous). */
static int parse_datetime(const char *s, size_t len, int64_t *ms) {
    int64_t y, mo, d, h, mi, se, frac = 0;
    if (len < 19 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != ' ' && s[10] != 'T') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        int64_t scale = 100; /* first fraction digit is hundreds of ms */
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            frac += (s[i] - '0') * scale;
            scale /= 10;
        }
    }
    const char *rest = s + i;
    size_t rlen = len - i;
    if (!(rlen == 0 || (rlen == 4 && memcmp(rest, " UTC", 4) == 0) ||
          (rlen == 1 && rest[0] == 'Z') || (rlen == 6 && memcmp(rest, "+00:00", 6) == 0)))
        return -1;
    *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + se * 1000 + frac;
    return 0;
}

/* A whole field as an integer (NUL-terminated by the splitter). */
static int parse_int(const char *s, int64_t *v) {
    char *end;
    if (!*s)
        return -1;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return (*end || errno) ? -1 : 0;
}

static int parse_ts(const nx_replay_t *rp, const char *s, size_t len, int64_t *ms) {
    int64_t v;
    if (rp->ts_mode == TS_DATETIME)
        return parse_datetime(s, len, ms);
    if (parse_int(s, &v) == 0) {
        /* epoch seconds beyond +-9.2e15 would overflow in ms */
        if (rp->ts_mode == TS_EPOCH_S && (v > INT64_MAX / 1000 || v < INT64_MIN / 1000))
            return -1;
        *ms = rp->ts_mode == TS_EPOCH_S ? v * 1000 : v;
        return 0;
    }
    /* fractional epoch seconds: "1511544070.5" */
    char *end;
    double d = strtod(s, &end);
    if (*end || !*s || rp->ts_mode != TS_EPOCH_S || !isfinite(d) || fabs(d) > 9e15)
        return -1;
    *ms = (int64_t)llround(d * 1000.0);
    return 0;
}

/* Splits a line in place: fields NUL-terminated, quotes removed. Returns
 * the number of fields (at most max). */
static int split(char *line, size_t len, char delim, char **f, size_t *flen, int max) {
    int n = 0;
    size_t i = 0;
    for (;;) {
        char *out = line + i, *start = out;
        if (i < len && line[i] == '"') {
            i++;
            for (; i < len; i++) {
                if (line[i] == '"') {
                    if (i + 1 < len && line[i + 1] == '"') {
                        *out++ = '"';
                        i++;
                    } else {
                        i++;
                        break;
                    }
                } else {
                    *out++ = line[i];
                }
            }
            while (i < len && line[i] != delim) /* junk after the quote */
                i++;
        } else {
            while (i < len && line[i] != delim)
                i++;
            out = line + i;
        }
        if (n < max) {
            f[n] = start;
            flen[n] = (size_t)(out - start);
        }
        n++;
        int more = i < len;
        *out = '\0'; /* out <= line + i: overwrites the delimiter or the end */
        if (!more)
            break;
        i++;
    }
    return n < max ? n : max;
}

static int role_of(const nx_config_t *cfg, const char *name) {
    const struct {
        const char *field;
        int role;
    } map[] = {{cfg->input.field_user_id, C_USER}, {cfg->input.field_timestamp, C_TS},
               {cfg->input.field_type, C_TYPE},    {cfg->input.field_item, C_ITEM},
               {cfg->input.field_category, C_CAT}, {cfg->input.field_price, C_PRICE},
               {cfg->input.field_quantity, C_QTY}, {cfg->input.field_session, C_SESSION}};
    if (!name[0] || strcmp(name, "-") == 0)
        return C_NONE;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].field && map[i].field[0] && strcmp(map[i].field, name) == 0)
            return map[i].role;
    }
    return C_NONE;
}

/* Maps column names to roles; the user id, timestamp and type columns are
 * required. */
static int set_columns(nx_replay_t *rp, char *const *names, int n, char *errstr,
                       size_t errstr_size) {
    int have_user = 0, have_ts = 0, have_type = 0;
    rp->n_cols = n;
    rp->need_cols = 0;
    for (int i = 0; i < n; i++) {
        rp->col_role[i] = role_of(rp->cfg, names[i]);
        if (rp->col_role[i] != C_NONE)
            rp->need_cols = i + 1;
        have_user |= rp->col_role[i] == C_USER;
        have_ts |= rp->col_role[i] == C_TS;
        have_type |= rp->col_role[i] == C_TYPE;
    }
    if (!have_user || !have_ts || !have_type) {
        snprintf(errstr, errstr_size,
                 "%s: input.csv_columns must name the user id (\"%s\"), timestamp (\"%s\") and "
                 "type (\"%s\") columns",
                 rp->path, rp->cfg->input.field_user_id, rp->cfg->input.field_timestamp,
                 rp->cfg->input.field_type);
        return -1;
    }
    return 0;
}

/* Turns one data line into an event. */
static nx_codec_reason_t csv_row(nx_replay_t *rp, char *line, size_t len, int64_t now_ms,
                                 nx_event_t *ev) {
    char *f[NX_CONFIG_MAX_LIST];
    size_t flen[NX_CONFIG_MAX_LIST];
    nx_codec_fields_t fields;
    int n = split(line, len, rp->delim, f, flen, NX_CONFIG_MAX_LIST);

    if (n < rp->need_cols)
        return NX_CODEC_BAD_ROW;
    memset(&fields, 0, sizeof fields);
    for (int i = 0; i < rp->n_cols && i < n; i++) {
        const char *s = f[i];
        size_t sl = flen[i];
        switch (rp->col_role[i]) {
        case C_USER:
            fields.user_id = s;
            fields.user_id_len = sl;
            break;
        case C_TS:
            if (parse_ts(rp, s, sl, &fields.ts_ms) < 0)
                return NX_CODEC_BAD_TIMESTAMP;
            fields.has_ts = 1;
            break;
        case C_TYPE:
            fields.type = s;
            fields.type_len = sl;
            break;
        case C_ITEM:
            fields.item = sl ? s : NULL;
            fields.item_len = sl;
            break;
        case C_CAT:
            fields.category = sl ? s : NULL;
            fields.category_len = sl;
            break;
        case C_SESSION:
            fields.session = sl ? s : NULL;
            fields.session_len = sl;
            break;
        case C_PRICE:
            if (sl) {
                char *end;
                fields.price = strtod(s, &end);
                if (*end)
                    return NX_CODEC_BAD_NUMBER;
                fields.has_price = 1;
            }
            break;
        case C_QTY:
            if (sl) {
                if (parse_int(s, &fields.quantity) < 0)
                    return NX_CODEC_BAD_NUMBER;
                fields.has_quantity = 1;
            }
            break;
        default:
            break;
        }
    }
    return nx_codec_from_fields(rp->codec, &fields, -1, now_ms, ev);
}

/* Handles one line (without its '\n'); 1 when it produced an event. */
static int csv_line(nx_replay_t *rp, char *line, size_t len, int64_t now_ms, nx_event_t *ev,
                    char *errstr, size_t errstr_size) {
    rp->lineno++;
    if (len && line[len - 1] == '\r')
        len--;
    line[len] = '\0';
    if (rp->header_pending) {
        rp->header_pending = 0;
        if (rp->n_cols == 0) {
            char *f[NX_CONFIG_MAX_LIST];
            size_t flen[NX_CONFIG_MAX_LIST];
            int n = split(line, len, rp->delim, f, flen, NX_CONFIG_MAX_LIST);
            if (set_columns(rp, f, n, errstr, errstr_size) < 0)
                return -1;
        }
        return 0;
    }
    if (len == 0)
        return 0; /* blank lines are not rows */
    rp->st.records++;
    nx_codec_reason_t r = csv_row(rp, line, len, now_ms, ev);
    if (r == NX_CODEC_BAD_ROW || r == NX_CODEC_BAD_NUMBER || r == NX_CODEC_BAD_TIMESTAMP)
        nx_codec_count(rp->codec, r); /* the codec never saw this row */
    if (r == NX_CODEC_OK) {
        ev->partition = -1;
        ev->offset = (int64_t)rp->lineno;
        rp->st.events++;
        return 1;
    }
    if (r == NX_CODEC_SKIPPED)
        rp->st.skipped++;
    else
        note_bad(rp, rp->lineno, r);
    return 0;
}

static int csv_next(nx_replay_t *rp, nx_event_t *evs, int max, int64_t now_ms) {
    int n = 0;
    while (n < max) {
        char *line = rp->buf + rp->start;
        char *nl = memchr(line, '\n', rp->len - rp->start);
        if (!nl && rp->eof && rp->start < rp->len) {
            nl = rp->buf + rp->len; /* last line without '\n': room was kept */
            rp->len++;
        }
        if (!nl) {
            if (rp->eof || n > 0)
                break; /* refill only when no event points into the buffer */
            if (rp->start == 0 && rp->len == NX_REPLAY_CSV_BUF) {
                /* a line longer than the buffer: a bad row, skipped whole */
                if (!rp->discard) {
                    rp->st.records++;
                    nx_codec_count(rp->codec, NX_CODEC_BAD_ROW);
                    note_bad(rp, rp->lineno + 1, NX_CODEC_BAD_ROW);
                }
                rp->discard = 1;
                rp->len = 0;
            }
            memmove(rp->buf, rp->buf + rp->start, rp->len - rp->start);
            rp->len -= rp->start;
            rp->start = 0;
            size_t got = fread(rp->buf + rp->len, 1, NX_REPLAY_CSV_BUF - rp->len, rp->fp);
            rp->len += got;
            rp->st.bytes_read += got;
            if (got == 0) {
                if (ferror(rp->fp)) {
                    snprintf(rp->error, sizeof rp->error, "%s: %s", rp->path, strerror(errno));
                    return -1;
                }
                rp->eof = 1;
                if (rp->discard) { /* the long line ran to the end of file */
                    rp->lineno++;
                    rp->len = rp->start = 0;
                }
            }
            continue;
        }
        size_t len = (size_t)(nl - line);
        rp->start += len + 1;
        if (rp->discard) {
            rp->discard = 0;
            rp->lineno++;
            continue;
        }
        int hdr = rp->header_pending;
        int r = csv_line(rp, line, len, now_ms, &evs[n], rp->error, sizeof rp->error);
        if (r < 0)
            return -1;
        n += r;
        if (hdr && rp->stop_at_header)
            break;
    }
    return n;
}

/* ---- open / next / close ------------------------------------------------- */

int nx_replay_next(nx_replay_t *rp, nx_event_t *evs, int max, int64_t now_ms) {
    if (max <= 0)
        return 0;
    return rp->is_ocf ? ocf_next(rp, evs, max, now_ms) : csv_next(rp, evs, max, now_ms);
}

void nx_replay_close(nx_replay_t *rp) {
    if (!rp)
        return;
    if (rp->fp && rp->fp != stdin)
        fclose(rp->fp);
    if (rp->zs_init)
        inflateEnd(&rp->zs);
    nx_codec_prog_destroy(rp->prog);
    free(rp->blk);
    free(rp->inf);
    free(rp->buf);
    free(rp->path);
    free(rp);
}

nx_replay_t *nx_replay_open(const nx_config_t *cfg, nx_codec_t *codec, const char *path,
                            char *errstr, size_t errstr_size) {
    nx_replay_t *rp = calloc(1, sizeof *rp);
    if (!rp || !(rp->path = strdup(path))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    rp->cfg = cfg;
    rp->codec = codec;
    rp->fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!rp->fp) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto err;
    }
    struct stat sb;
    if (fstat(fileno(rp->fp), &sb) == 0 && S_ISREG(sb.st_mode))
        rp->st.file_size = (uint64_t)sb.st_size;

    /* Sniff: an OCF starts with its magic. Peeked with getc/ungetc so that
     * stdin works for CSV. */
    int c0 = getc(rp->fp);
    if (c0 != EOF)
        ungetc(c0, rp->fp);
    if (c0 == 'O' && rp->fp != stdin) {
        uint8_t m[4] = {0};
        size_t got = fread(m, 1, 4, rp->fp);
        rewind(rp->fp);
        rp->is_ocf = got == 4 && memcmp(m, ocf_magic, 4) == 0;
    }
    if (rp->is_ocf) {
        if (read_header(rp, errstr, errstr_size) < 0)
            goto err;
        rp->st.bytes_read = (uint64_t)ftello(rp->fp);
        return rp;
    }

    /* CSV */
    const char *d = cfg->input.csv_delimiter;
    rp->delim = (d && d[0]) ? (strcmp(d, "\\t") == 0 ? '\t' : d[0]) : ',';
    const char *tsm = cfg->input.csv_timestamp ? cfg->input.csv_timestamp : "epoch_ms";
    if (strcmp(tsm, "epoch_s") == 0) {
        rp->ts_mode = TS_EPOCH_S;
    } else if (strcmp(tsm, "epoch_ms") == 0) {
        rp->ts_mode = TS_EPOCH_MS;
    } else if (strcmp(tsm, "datetime") == 0) {
        rp->ts_mode = TS_DATETIME;
    } else {
        snprintf(errstr, errstr_size,
                 "input.csv_timestamp: \"%s\" is not epoch_s, epoch_ms or datetime", tsm);
        goto err;
    }
    rp->header_pending = cfg->input.csv_header;
    if (cfg->input.csv_columns.n > 0) {
        if (set_columns(rp, cfg->input.csv_columns.v, cfg->input.csv_columns.n, errstr,
                        errstr_size) < 0)
            goto err;
    } else if (!cfg->input.csv_header) {
        snprintf(errstr, errstr_size, "%s: CSV needs input.csv_columns or input.csv_header", path);
        goto err;
    }
    rp->buf = malloc(NX_REPLAY_CSV_BUF + 1);
    if (!rp->buf) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (rp->header_pending && rp->n_cols == 0) {
        /* read the header now, so a bad one fails at open */
        nx_event_t ev;
        rp->stop_at_header = 1;
        int r = csv_next(rp, &ev, 1, INT64_MAX);
        rp->stop_at_header = 0;
        if (r < 0) {
            snprintf(errstr, errstr_size, "%s", rp->error);
            goto err;
        }
        if (rp->n_cols == 0) {
            snprintf(errstr, errstr_size, "%s: no header line", path);
            goto err;
        }
    }
    return rp;
err:
    nx_replay_close(rp);
    return NULL;
}

/* ---- OCF writer ----------------------------------------------------------- */

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
    int ocf_codec; /* OCF_NULL, OCF_DEFLATE, OCF_SNAPPY */
    uint8_t sync[SYNC_LEN];
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

/* splitmix64 step (Steele, Lea and Flood): 16 marker bytes from the seed. */
static uint64_t sm64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Zig-zag varint of v into p (at most 10 bytes); returns its length. */
static size_t put_long(uint8_t *p, int64_t v) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (u >= 0x80) {
        p[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    p[n++] = (uint8_t)u;
    return n;
}

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

/* A metadata entry: key and value as Avro strings/bytes. */
static int w_meta(nx_ocf_writer_t *w, const char *key, const char *val, size_t vlen) {
    uint8_t v[10];
    size_t klen = strlen(key);
    if (w_write(w, v, put_long(v, (int64_t)klen)) < 0 || w_write(w, key, klen) < 0 ||
        w_write(w, v, put_long(v, (int64_t)vlen)) < 0 || w_write(w, val, vlen) < 0)
        return -1;
    return 0;
}

/* Deflates data into zbuf; returns the compressed length or -1. */
static int64_t w_deflate(nx_ocf_writer_t *w, const uint8_t *data, size_t len) {
    if (deflateReset(&w->zs) != Z_OK)
        return -1;
    size_t bound = deflateBound(&w->zs, (uLong)len);
    if (ensure(&w->zbuf, &w->zcap, bound) < 0)
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
    if (ensure(&w->zbuf, &w->zcap, out + 4) < 0 ||
        snappy_compress((const char *)data, len, (char *)w->zbuf, &out) != SNAPPY_OK)
        return -1;
    uint32_t crc = (uint32_t)crc32(0L, data, (uInt)len);
    for (int i = 0; i < 4; i++)
        w->zbuf[out + (size_t)i] = (uint8_t)(crc >> (24 - 8 * i));
    return (int64_t)(out + 4);
}

/* Writes one block: count, size, data (compressed or not), sync. The
 * writer's thread, or the caller when none runs. 0 or -1 (werr set). */
static int w_write_block(nx_ocf_writer_t *w, const uint8_t *data, size_t len, int64_t count) {
    int64_t out_len = (int64_t)len;
    if (w->ocf_codec != OCF_NULL) {
        out_len = w->ocf_codec == OCF_DEFLATE ? w_deflate(w, data, len) : w_snappy(w, data, len);
        if (out_len < 0) {
            snprintf(w->werr, sizeof w->werr, "%s: %s failed", w->path,
                     w->ocf_codec == OCF_DEFLATE ? "deflate" : "snappy");
            w->failed = 1;
            return -1;
        }
        data = w->zbuf;
    }
    uint8_t v[20];
    size_t n = put_long(v, count);
    n += put_long(v + n, out_len);
    if (w_write(w, v, n) < 0 || w_write(w, data, (size_t)out_len) < 0 ||
        w_write(w, w->sync, SYNC_LEN) < 0)
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
    if ((w->ocf_codec = ocf_codec_of(codec)) < 0) {
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
    if (w->ocf_codec == OCF_DEFLATE) {
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
    for (int i = 0; i < SYNC_LEN; i += 8) {
        uint64_t r = sm64(&x);
        for (int b = 0; b < 8; b++)
            w->sync[i + b] = (uint8_t)(r >> (8 * b));
    }
    if (ensure(&w->blk, &w->blk_cap, OCF_BLOCK_SIZE) < 0 ||
        ensure(&w->spare, &w->spare_cap, OCF_BLOCK_SIZE) < 0) {
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
    uint8_t v[10];
    if (w_write(w, ocf_magic, sizeof ocf_magic) < 0 || w_write(w, v, put_long(v, 2)) < 0 ||
        w_meta(w, "avro.codec", codec, strlen(codec)) < 0 ||
        w_meta(w, "avro.schema", schema_json, schema_len) < 0 ||
        w_write(w, v, put_long(v, 0)) < 0 || w_write(w, w->sync, SYNC_LEN) < 0) {
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
        ensure(&w->blk, &w->blk_cap, w->blk_len + len) < 0) { /* only a datum > 1 MiB */
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
