/* csv_reader.c: CSV replay reader (csv_reader.h). */
#include "csv_reader.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TS_EPOCH_S, TS_EPOCH_MS, TS_DATETIME };

/* CSV column roles (which nx_codec_fields_t member a column fills). */
enum { C_NONE, C_USER, C_TS, C_TYPE, C_ITEM, C_CAT, C_PRICE, C_QTY, C_SESSION };

struct nx_csv_reader {
    const nx_config_t *cfg;
    nx_codec_t *codec;
    FILE *fp;
    const char *path;
    nx_replay_stats_t *st;
    char error[256];
    int eof;

    char *buf; /* NX_CSV_READER_BUF + 1 (room for a final '\n') */
    size_t start, len;
    int discard; /* inside a line too long for the buffer */
    uint64_t lineno;
    int header_pending;
    int stop_at_header; /* nx_csv_reader_new reads the header line only */
    char delim;
    int ts_mode;
    int n_cols;                       /* columns mapped */
    int col_role[NX_CONFIG_MAX_LIST]; /* role per column */
    int need_cols;                    /* a row must have at least this many */
};

const char *nx_csv_reader_error(const nx_csv_reader_t *cr) {
    return cr->error;
}

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

static int parse_ts(const nx_csv_reader_t *cr, const char *s, size_t len, int64_t *ms) {
    int64_t v;
    if (cr->ts_mode == TS_DATETIME)
        return parse_datetime(s, len, ms);
    if (parse_int(s, &v) == 0) {
        /* epoch seconds beyond +-9.2e15 would overflow in ms */
        if (cr->ts_mode == TS_EPOCH_S && (v > INT64_MAX / 1000 || v < INT64_MIN / 1000))
            return -1;
        *ms = cr->ts_mode == TS_EPOCH_S ? v * 1000 : v;
        return 0;
    }
    /* fractional epoch seconds: "1511544070.5" */
    char *end;
    double d = strtod(s, &end);
    if (*end || !*s || cr->ts_mode != TS_EPOCH_S || !isfinite(d) || fabs(d) > 9e15)
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
static int set_columns(nx_csv_reader_t *cr, char *const *names, int n, char *errstr,
                       size_t errstr_size) {
    int have_user = 0, have_ts = 0, have_type = 0;
    cr->n_cols = n;
    cr->need_cols = 0;
    for (int i = 0; i < n; i++) {
        cr->col_role[i] = role_of(cr->cfg, names[i]);
        if (cr->col_role[i] != C_NONE)
            cr->need_cols = i + 1;
        have_user |= cr->col_role[i] == C_USER;
        have_ts |= cr->col_role[i] == C_TS;
        have_type |= cr->col_role[i] == C_TYPE;
    }
    if (!have_user || !have_ts || !have_type) {
        snprintf(errstr, errstr_size,
                 "%s: input.csv_columns must name the user id (\"%s\"), timestamp (\"%s\") and "
                 "type (\"%s\") columns",
                 cr->path, cr->cfg->input.field_user_id, cr->cfg->input.field_timestamp,
                 cr->cfg->input.field_type);
        return -1;
    }
    return 0;
}

/* Turns one data line into an event. */
static nx_codec_reason_t csv_row(nx_csv_reader_t *cr, char *line, size_t len, int64_t now_ms,
                                 nx_event_t *ev) {
    char *f[NX_CONFIG_MAX_LIST];
    size_t flen[NX_CONFIG_MAX_LIST];
    nx_codec_fields_t fields;
    int n = split(line, len, cr->delim, f, flen, NX_CONFIG_MAX_LIST);

    if (n < cr->need_cols)
        return NX_CODEC_BAD_ROW;
    memset(&fields, 0, sizeof fields);
    for (int i = 0; i < cr->n_cols && i < n; i++) {
        const char *s = f[i];
        size_t sl = flen[i];
        switch (cr->col_role[i]) {
        case C_USER:
            fields.user_id = s;
            fields.user_id_len = sl;
            break;
        case C_TS:
            if (parse_ts(cr, s, sl, &fields.ts_ms) < 0)
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
    return nx_codec_from_fields(cr->codec, &fields, -1, now_ms, ev);
}

/* Moves the unread bytes to the front of the buffer and reads more after
 * them. 0, or -1 on an I/O error; eof is set once a read gets nothing. */
static int csv_fill(nx_csv_reader_t *cr) {
    memmove(cr->buf, cr->buf + cr->start, cr->len - cr->start);
    cr->len -= cr->start;
    cr->start = 0;
    size_t got = fread(cr->buf + cr->len, 1, NX_CSV_READER_BUF - cr->len, cr->fp);
    cr->len += got;
    cr->st->bytes_read += got;
    if (got == 0) {
        if (ferror(cr->fp)) {
            snprintf(cr->error, sizeof cr->error, "%s: %s", cr->path, strerror(errno));
            return -1;
        }
        cr->eof = 1;
    }
    return 0;
}

/* CSV is text: the file's first NX_CSV_READER_TEXT_CHECK bytes (in the
 * buffer) must hold no control byte but tab, LF, VT, FF and CR. 0, or -1
 * with errstr saying where the binary byte is. */
static int check_text(const nx_csv_reader_t *cr, char *errstr, size_t errstr_size) {
    size_t n = cr->len < NX_CSV_READER_TEXT_CHECK ? cr->len : NX_CSV_READER_TEXT_CHECK;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)cr->buf[i];
        if (c >= 0x20 || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
            continue;
        /* the metadata keys of an Avro container survive a damaged magic */
        int avro = memmem(cr->buf, n, "avro.schema", 11) || memmem(cr->buf, n, "avro.codec", 10);
        snprintf(errstr, errstr_size, "%s: not CSV: binary byte 0x%02x at offset %zu%s", cr->path,
                 c, i,
                 avro ? " (an Avro container header with a damaged \"Obj\\x01\" magic)"
                      : " (nor an Avro container: no \"Obj\\x01\" magic)");
        return -1;
    }
    return 0;
}

/* Handles one line (without its '\n'); 1 when it produced an event. */
static int csv_line(nx_csv_reader_t *cr, char *line, size_t len, int64_t now_ms, nx_event_t *ev,
                    char *errstr, size_t errstr_size) {
    cr->lineno++;
    if (len && line[len - 1] == '\r')
        len--;
    line[len] = '\0';
    if (cr->header_pending) {
        cr->header_pending = 0;
        if (cr->n_cols == 0) {
            char *f[NX_CONFIG_MAX_LIST];
            size_t flen[NX_CONFIG_MAX_LIST];
            int n = split(line, len, cr->delim, f, flen, NX_CONFIG_MAX_LIST);
            if (set_columns(cr, f, n, errstr, errstr_size) < 0)
                return -1;
        }
        return 0;
    }
    if (len == 0)
        return 0; /* blank lines are not rows */
    cr->st->records++;
    nx_codec_reason_t r = csv_row(cr, line, len, now_ms, ev);
    if (r == NX_CODEC_BAD_ROW || r == NX_CODEC_BAD_NUMBER || r == NX_CODEC_BAD_TIMESTAMP)
        nx_codec_count(cr->codec, r); /* the codec never saw this row */
    if (r == NX_CODEC_OK) {
        ev->partition = -1;
        ev->offset = (int64_t)cr->lineno;
        cr->st->events++;
        return 1;
    }
    if (r == NX_CODEC_SKIPPED)
        cr->st->skipped++;
    else
        nx_replay_stats_note_bad(cr->st, cr->lineno, r);
    return 0;
}

int nx_csv_reader_next(nx_csv_reader_t *cr, nx_event_t *evs, int max, int64_t now_ms) {
    int n = 0;
    while (n < max) {
        char *line = cr->buf + cr->start;
        char *nl = memchr(line, '\n', cr->len - cr->start);
        if (!nl && cr->eof && cr->start < cr->len) {
            nl = cr->buf + cr->len; /* last line without '\n': room was kept */
            cr->len++;
        }
        if (!nl) {
            if (cr->eof || n > 0)
                break; /* refill only when no event points into the buffer */
            if (cr->start == 0 && cr->len == NX_CSV_READER_BUF) {
                /* a line longer than the buffer: a bad row, skipped whole */
                if (!cr->discard) {
                    cr->st->records++;
                    nx_codec_count(cr->codec, NX_CODEC_BAD_ROW);
                    nx_replay_stats_note_bad(cr->st, cr->lineno + 1, NX_CODEC_BAD_ROW);
                }
                cr->discard = 1;
                cr->len = 0;
            }
            if (csv_fill(cr) < 0)
                return -1;
            if (cr->eof && cr->discard) { /* the long line ran to the end of file */
                cr->lineno++;
                cr->len = cr->start = 0;
            }
            continue;
        }
        size_t len = (size_t)(nl - line);
        cr->start += len + 1;
        if (cr->discard) {
            cr->discard = 0;
            cr->lineno++;
            continue;
        }
        int hdr = cr->header_pending;
        int r = csv_line(cr, line, len, now_ms, &evs[n], cr->error, sizeof cr->error);
        if (r < 0)
            return -1;
        n += r;
        if (hdr && cr->stop_at_header)
            break;
    }
    if (n == 0 && cr->eof && cr->st->records > 0 && cr->st->bad == cr->st->records) {
        /* not one row made an event or a skip: the file is not CSV for
         * these settings, which a run reporting only bad rows would hide */
        snprintf(cr->error, sizeof cr->error,
                 "all %llu row(s) bad, no event: not CSV with these columns "
                 "(input.csv_columns, csv_delimiter, csv_timestamp)",
                 (unsigned long long)cr->st->records);
        return -1;
    }
    return n;
}

void nx_csv_reader_destroy(nx_csv_reader_t *cr) {
    if (!cr)
        return;
    free(cr->buf);
    free(cr);
}

nx_csv_reader_t *nx_csv_reader_new(const nx_config_t *cfg, nx_codec_t *codec, FILE *fp,
                                   const char *path, nx_replay_stats_t *st, char *errstr,
                                   size_t errstr_size) {
    nx_csv_reader_t *cr = calloc(1, sizeof *cr);
    if (!cr) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    cr->cfg = cfg;
    cr->codec = codec;
    cr->fp = fp;
    cr->path = path;
    cr->st = st;
    /* the first buffer now, so that binary data fails here, whatever the
     * CSV settings say */
    cr->buf = malloc(NX_CSV_READER_BUF + 1);
    if (!cr->buf) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (csv_fill(cr) < 0) {
        snprintf(errstr, errstr_size, "%s", cr->error);
        goto err;
    }
    if (check_text(cr, errstr, errstr_size) < 0)
        goto err;
    const char *d = cfg->input.csv_delimiter;
    cr->delim = (d && d[0]) ? (strcmp(d, "\\t") == 0 ? '\t' : d[0]) : ',';
    const char *tsm = cfg->input.csv_timestamp ? cfg->input.csv_timestamp : "epoch_ms";
    if (strcmp(tsm, "epoch_s") == 0) {
        cr->ts_mode = TS_EPOCH_S;
    } else if (strcmp(tsm, "epoch_ms") == 0) {
        cr->ts_mode = TS_EPOCH_MS;
    } else if (strcmp(tsm, "datetime") == 0) {
        cr->ts_mode = TS_DATETIME;
    } else {
        snprintf(errstr, errstr_size,
                 "input.csv_timestamp: \"%s\" is not epoch_s, epoch_ms or datetime", tsm);
        goto err;
    }
    cr->header_pending = cfg->input.csv_header;
    if (cfg->input.csv_columns.n > 0) {
        if (set_columns(cr, cfg->input.csv_columns.v, cfg->input.csv_columns.n, errstr,
                        errstr_size) < 0)
            goto err;
    } else if (!cfg->input.csv_header) {
        snprintf(errstr, errstr_size, "%s: CSV needs input.csv_columns or input.csv_header", path);
        goto err;
    }
    if (cr->header_pending && cr->n_cols == 0) {
        /* read the header now, so a bad one fails at open */
        nx_event_t ev;
        cr->stop_at_header = 1;
        int r = nx_csv_reader_next(cr, &ev, 1, INT64_MAX);
        cr->stop_at_header = 0;
        if (r < 0) {
            snprintf(errstr, errstr_size, "%s", cr->error);
            goto err;
        }
        if (cr->n_cols == 0) {
            snprintf(errstr, errstr_size, "%s: no header line", path);
            goto err;
        }
    }
    return cr;
err:
    nx_csv_reader_destroy(cr);
    return NULL;
}
