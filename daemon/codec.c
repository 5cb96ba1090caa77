/*
 * codec.c: the validating single-pass Avro decoder for events (codec.h):
 * the per-datum walk over a compiled program (codec_schema.c), the
 * Confluent framing in front of it, the reason counters and the event
 * encoder. The programs and the codec's layout are in codec_int.h.
 */
#include "codec_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avrobin.h"

static const char *const reason_names[NX_CODEC_N_REASONS] = {
    [NX_CODEC_OK] = "ok",
    [NX_CODEC_TRUNCATED] = "truncated",
    [NX_CODEC_TRAILING_BYTES] = "trailing_bytes",
    [NX_CODEC_BAD_MAGIC] = "bad_magic",
    [NX_CODEC_UNKNOWN_SCHEMA_ID] = "unknown_schema_id",
    [NX_CODEC_BAD_VARINT] = "bad_varint",
    [NX_CODEC_INT_OUT_OF_RANGE] = "int_out_of_range",
    [NX_CODEC_NEGATIVE_LENGTH] = "negative_length",
    [NX_CODEC_BAD_UNION_INDEX] = "bad_union_index",
    [NX_CODEC_BAD_ENUM_INDEX] = "bad_enum_index",
    [NX_CODEC_BAD_BOOLEAN] = "bad_boolean",
    [NX_CODEC_COLLECTION_OVER_CAP] = "collection_over_cap",
    [NX_CODEC_TOO_DEEP] = "too_deep",
    [NX_CODEC_LENGTH_OVER_CAP] = "length_over_cap",
    [NX_CODEC_MISSING_FIELD] = "missing_field",
    [NX_CODEC_NULL_FIELD] = "null_field",
    [NX_CODEC_WRONG_TYPE] = "wrong_type",
    [NX_CODEC_UNKNOWN_EVENT_TYPE] = "unknown_event_type",
    [NX_CODEC_TS_TOO_OLD] = "ts_too_old",
    [NX_CODEC_TS_IN_FUTURE] = "ts_in_future",
    [NX_CODEC_EMPTY_USER_ID] = "empty_user_id",
    [NX_CODEC_USER_ID_TOO_LONG] = "user_id_too_long",
    [NX_CODEC_BAD_PRICE] = "bad_price",
    [NX_CODEC_BAD_QUANTITY] = "bad_quantity",
    [NX_CODEC_BAD_NUMBER] = "bad_number",
    [NX_CODEC_BAD_TIMESTAMP] = "bad_timestamp",
    [NX_CODEC_BAD_ROW] = "bad_row",
    [NX_CODEC_SKIPPED] = "skipped",
    [NX_CODEC_SCHEMA_PENDING] = "schema_pending",
};

const char *nx_codec_reason_name(nx_codec_reason_t reason) {
    if ((unsigned)reason >= NX_CODEC_N_REASONS)
        return "unknown";
    return reason_names[reason];
}

int nx_codec_reason_is_structural(nx_codec_reason_t reason) {
    return reason >= NX_CODEC_TRUNCATED && reason <= NX_CODEC_TOO_DEEP;
}

const uint64_t *nx_codec_counters(const nx_codec_t *codec) {
    return codec->counters;
}

void nx_codec_count(nx_codec_t *codec, nx_codec_reason_t reason) {
    if ((unsigned)reason < NX_CODEC_N_REASONS)
        codec->counters[reason]++;
}

int nx_codec_type_lookup(const nx_codec_t *codec, const char *value, size_t len) {
    for (int i = 0; i < codec->n_types; i++) {
        const type_entry_t *t = &codec->types[i];
        if (t->len == len && memcmp(t->value, value, len) == 0)
            return t->type;
    }
    return -1;
}

/* ---- the walk ------------------------------------------------------------ */

typedef struct walk {
    const uint8_t *p, *end;
    int64_t items_left;    /* collection items still allowed in this payload */
    nx_codec_reason_t sem; /* first semantic reason seen, the walk goes on */
} walk_t;

static inline void sem(walk_t *w, nx_codec_reason_t r) {
    if (w->sem == NX_CODEC_OK)
        w->sem = r;
}

/* A zig-zag varint exactly as Avro C reads it: at most 10 bytes, the bits
 * beyond 64 dropped. */
static inline nx_codec_reason_t rd_long(walk_t *w, int64_t *v) {
    const uint8_t *p = w->p;
    if (p < w->end && *p < 0x80) { /* one byte: the common case */
        uint64_t u = *p;
        w->p = p + 1;
        *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
        return NX_CODEC_OK;
    }
    uint64_t u = 0;
    for (int i = 0;; i++) {
        if (i == NX_AVROBIN_VARINT_MAX)
            return NX_CODEC_BAD_VARINT;
        if (p == w->end)
            return NX_CODEC_TRUNCATED;
        uint8_t b = *p++;
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    w->p = p;
    *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    return NX_CODEC_OK;
}

static inline nx_codec_reason_t rd_int(walk_t *w, int64_t *v) {
    nx_codec_reason_t r = rd_long(w, v);
    if (r == NX_CODEC_OK && (*v < INT32_MIN || *v > INT32_MAX))
        return NX_CODEC_INT_OUT_OF_RANGE;
    return r;
}

/* A string or bytes value: length checked against the bytes left (fatal)
 * and against `cap` (semantic, the walk can skip it). */
static inline nx_codec_reason_t rd_bytes(walk_t *w, int64_t cap, const uint8_t **s, size_t *len) {
    int64_t n;
    nx_codec_reason_t r = rd_long(w, &n);
    if (r != NX_CODEC_OK)
        return r;
    if (n < 0)
        return NX_CODEC_NEGATIVE_LENGTH;
    if (n > w->end - w->p)
        return NX_CODEC_TRUNCATED;
    if (n > cap)
        sem(w, NX_CODEC_LENGTH_OVER_CAP);
    *s = w->p;
    *len = (size_t)n;
    w->p += n;
    return NX_CODEC_OK;
}

static inline nx_codec_reason_t rd_fixed(walk_t *w, size_t n, const uint8_t **s) {
    if ((size_t)(w->end - w->p) < n)
        return NX_CODEC_TRUNCATED;
    *s = w->p;
    w->p += n;
    return NX_CODEC_OK;
}

static double le_double(const uint8_t *b) {
    uint64_t u = 0;
    double d;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)b[i] << (8 * i);
    memcpy(&d, &u, 8);
    return d;
}

static float le_float(const uint8_t *b) {
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Validates and skips one value of node `ni`. */
static nx_codec_reason_t skip(const nx_codec_t *codec, const nx_codec_prog_t *prog, walk_t *w,
                              uint32_t ni, int depth) {
    const node_t *nd = &prog->nodes[ni];
    const uint8_t *s;
    size_t len;
    int64_t v;
    nx_codec_reason_t r;

    switch (nd->kind) {
    case K_NULL:
        return NX_CODEC_OK;
    case K_BOOL:
        if ((r = rd_fixed(w, 1, &s)) != NX_CODEC_OK)
            return r;
        return *s > 1 ? NX_CODEC_BAD_BOOLEAN : NX_CODEC_OK;
    case K_INT:
        return rd_int(w, &v);
    case K_LONG:
        return rd_long(w, &v);
    case K_FLOAT:
        return rd_fixed(w, 4, &s);
    case K_DOUBLE:
        return rd_fixed(w, 8, &s);
    case K_BYTES:
    case K_STRING:
        return rd_bytes(w, codec->max_string_len, &s, &len);
    case K_FIXED:
        return rd_fixed(w, nd->n, &s);
    case K_ENUM:
        if ((r = rd_long(w, &v)) != NX_CODEC_OK)
            return r;
        return (v < 0 || v >= nd->n) ? NX_CODEC_BAD_ENUM_INDEX : NX_CODEC_OK;
    case K_UNION:
        if (depth >= NX_CODEC_MAX_DEPTH)
            return NX_CODEC_TOO_DEEP;
        if ((r = rd_long(w, &v)) != NX_CODEC_OK)
            return r;
        if (v < 0 || v >= nd->n)
            return NX_CODEC_BAD_UNION_INDEX;
        return skip(codec, prog, w, prog->kids[nd->first + (uint32_t)v], depth + 1);
    case K_RECORD:
        if (depth >= NX_CODEC_MAX_DEPTH)
            return NX_CODEC_TOO_DEEP;
        for (uint32_t i = 0; i < nd->n; i++) {
            if ((r = skip(codec, prog, w, prog->kids[nd->first + i], depth + 1)) != NX_CODEC_OK)
                return r;
        }
        return NX_CODEC_OK;
    case K_ARRAY:
    case K_MAP:
        if (depth >= NX_CODEC_MAX_DEPTH)
            return NX_CODEC_TOO_DEEP;
        for (;;) {
            int64_t count;
            if ((r = rd_long(w, &count)) != NX_CODEC_OK)
                return r;
            if (count == 0)
                return NX_CODEC_OK;
            if (count < 0) {
                /* A negative count is followed by the block's byte size
                 * (Avro C negates the count: INT64_MIN would overflow). */
                if (count == INT64_MIN)
                    return NX_CODEC_COLLECTION_OVER_CAP;
                count = -count;
                if ((r = rd_long(w, &v)) != NX_CODEC_OK)
                    return r;
                if (v < 0)
                    return NX_CODEC_NEGATIVE_LENGTH;
                if (v > w->end - w->p)
                    return NX_CODEC_TRUNCATED;
            }
            if (count > w->items_left)
                return NX_CODEC_COLLECTION_OVER_CAP;
            w->items_left -= count;
            for (int64_t i = 0; i < count; i++) {
                if (nd->kind == K_MAP &&
                    (r = rd_bytes(w, codec->max_string_len, &s, &len)) != NX_CODEC_OK)
                    return r;
                if ((r = skip(codec, prog, w, nd->first, depth + 1)) != NX_CODEC_OK)
                    return r;
            }
        }
    }
    return NX_CODEC_OK; /* not reached: every kind is handled */
}

/* Fields as the walk found them, before the checks in finish(). */
typedef struct raw {
    nx_codec_fields_t f;
    uint64_t item_h, cat_h, sess_h; /* pre-hashed numeric ids, 0 = use the string */
    int type_idx;                   /* from an enum symbol; -3 = use f.type */
    uint32_t seen;                  /* bit per role: the field is present */
    uint32_t null;                  /* bit per role: the field is present and null */
} raw_t;

#define TYPE_FROM_STRING (-3)

/* Hash of the decimal text of v, so that a numeric item id hashes as the
 * same id written in a CSV file. */
static uint64_t hash_decimal(int64_t v) {
    char buf[24]; /* 20 digits of 2^64, a sign, spare */
    char *p = buf + sizeof buf;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return nx_event_id_hash(p, (size_t)(buf + sizeof buf - p));
}

/* Reads the value of a mapped top-level field. */
static nx_codec_reason_t extract(const nx_codec_t *codec, const nx_codec_prog_t *prog, walk_t *w,
                                 uint32_t ni, int role, raw_t *raw) {
    const node_t *nd = &prog->nodes[ni];
    const uint8_t *s;
    size_t len;
    int64_t v;
    double d;
    nx_codec_reason_t r;

    if (nd->kind == K_UNION) {
        if ((r = rd_long(w, &v)) != NX_CODEC_OK)
            return r;
        if (v < 0 || v >= nd->n)
            return NX_CODEC_BAD_UNION_INDEX;
        ni = prog->kids[nd->first + (uint32_t)v];
        nd = &prog->nodes[ni];
    }
    raw->seen |= 1u << role;
    switch (nd->kind) {
    case K_NULL:
        raw->null |= 1u << role;
        return NX_CODEC_OK;
    case K_STRING:
    case K_BYTES:
        /* The user id has its own cap, checked in finish(); it still may
         * not run past the payload. */
        r = rd_bytes(w, role == R_USER ? INT64_MAX : codec->max_string_len, &s, &len);
        if (r != NX_CODEC_OK)
            return r;
        switch (role) {
        case R_USER:
            raw->f.user_id = (const char *)s;
            raw->f.user_id_len = len;
            break;
        case R_TYPE:
            raw->f.type = (const char *)s;
            raw->f.type_len = len;
            break;
        case R_ITEM:
            raw->f.item = (const char *)s;
            raw->f.item_len = len;
            break;
        case R_CAT:
            raw->f.category = (const char *)s;
            raw->f.category_len = len;
            break;
        case R_SESSION:
            raw->f.session = (const char *)s;
            raw->f.session_len = len;
            break;
        default:
            sem(w, NX_CODEC_WRONG_TYPE);
        }
        return NX_CODEC_OK;
    case K_INT:
    case K_LONG:
        if ((r = nd->kind == K_INT ? rd_int(w, &v) : rd_long(w, &v)) != NX_CODEC_OK)
            return r;
        switch (role) {
        case R_TS:
            raw->f.has_ts = 1;
            raw->f.ts_ms = v;
            break;
        case R_PRICE:
            raw->f.has_price = 1;
            raw->f.price = (double)v;
            break;
        case R_QTY:
            raw->f.has_quantity = 1;
            raw->f.quantity = v;
            break;
        case R_ITEM:
            raw->item_h = hash_decimal(v);
            break;
        case R_CAT:
            raw->cat_h = hash_decimal(v);
            break;
        case R_SESSION:
            raw->sess_h = hash_decimal(v);
            break;
        default:
            sem(w, NX_CODEC_WRONG_TYPE);
        }
        return NX_CODEC_OK;
    case K_FLOAT:
    case K_DOUBLE:
        if ((r = rd_fixed(w, nd->kind == K_FLOAT ? 4 : 8, &s)) != NX_CODEC_OK)
            return r;
        d = nd->kind == K_FLOAT ? (double)le_float(s) : le_double(s);
        if (role == R_PRICE) {
            raw->f.has_price = 1;
            raw->f.price = d;
        } else {
            sem(w, NX_CODEC_WRONG_TYPE);
        }
        return NX_CODEC_OK;
    case K_ENUM:
        if ((r = rd_long(w, &v)) != NX_CODEC_OK)
            return r;
        if (v < 0 || v >= nd->n)
            return NX_CODEC_BAD_ENUM_INDEX;
        if (role == R_TYPE)
            raw->type_idx = prog->enum_type[nd->first + (uint32_t)v];
        else
            sem(w, NX_CODEC_WRONG_TYPE);
        return NX_CODEC_OK;
    default:
        /* records, arrays, maps, fixed, booleans: no event field is one */
        sem(w, NX_CODEC_WRONG_TYPE);
        return skip(codec, prog, w, ni, 1);
    }
}

static inline uint64_t id_hash(const char *s, size_t len, uint64_t pre) {
    if (pre)
        return pre;
    return s ? nx_event_id_hash(s, len) : 0;
}

/* The checks shared by Avro and CSV input. */
static nx_codec_reason_t finish(const nx_codec_t *codec, const raw_t *raw, int topic,
                                int64_t now_ms, nx_event_t *ev) {
    const nx_codec_fields_t *f = &raw->f;
    int fixed_type = (topic >= 0 && topic < codec->n_topics) ? codec->topic_type[topic] : -1;

    if (!(raw->seen & (1u << R_USER)) || !(raw->seen & (1u << R_TS)))
        return NX_CODEC_MISSING_FIELD;
    if (fixed_type < 0 && !(raw->seen & (1u << R_TYPE)))
        return NX_CODEC_MISSING_FIELD;
    if ((raw->null & (1u << R_USER)) || (raw->null & (1u << R_TS)))
        return NX_CODEC_NULL_FIELD;
    if (fixed_type < 0 && (raw->null & (1u << R_TYPE)))
        return NX_CODEC_NULL_FIELD;
    if (f->user_id_len == 0)
        return NX_CODEC_EMPTY_USER_ID;
    if ((int64_t)f->user_id_len > codec->max_user_id_len)
        return NX_CODEC_USER_ID_TOO_LONG;
    if (f->ts_ms < NX_CODEC_MIN_TS_MS)
        return NX_CODEC_TS_TOO_OLD;
    if (now_ms != INT64_MAX && f->ts_ms > now_ms && f->ts_ms - now_ms > codec->max_future_ms)
        return NX_CODEC_TS_IN_FUTURE;
    int type = fixed_type;
    if (type < 0) {
        type = raw->type_idx != TYPE_FROM_STRING
                   ? raw->type_idx
                   : nx_codec_type_lookup(codec, f->type, f->type_len);
        if (type == -1)
            return NX_CODEC_UNKNOWN_EVENT_TYPE;
    }
    if (f->has_price && !(raw->null & (1u << R_PRICE)) &&
        (!(f->price >= 0.0) || f->price > codec->max_price)) /* NaN fails >= */
        return NX_CODEC_BAD_PRICE;
    if (f->has_quantity && (f->quantity < 0 || f->quantity > INT32_MAX))
        return NX_CODEC_BAD_QUANTITY;
    if (type == -2)
        return NX_CODEC_SKIPPED;

    ev->user_id = f->user_id;
    ev->user_id_len = (uint32_t)f->user_id_len;
    ev->type = type;
    ev->ts_ms = f->ts_ms;
    ev->item = id_hash(f->item, f->item_len, raw->item_h);
    ev->category = id_hash(f->category, f->category_len, raw->cat_h);
    ev->session = id_hash(f->session, f->session_len, raw->sess_h);
    ev->price = f->has_price ? f->price : NAN;
    ev->quantity = f->has_quantity ? (int32_t)f->quantity : 0;
    ev->topic = topic < 0 ? 0 : topic;
    return NX_CODEC_OK;
}

/* One datum of `prog` at buf; *used set unless the result is structural. */
static nx_codec_reason_t run(const nx_codec_t *codec, const nx_codec_prog_t *prog,
                             const uint8_t *buf, size_t len, int topic, int64_t now_ms,
                             nx_event_t *ev, size_t *used) {
    walk_t w = {.p = buf, .end = buf + len, .items_left = codec->max_collection};
    raw_t raw;
    nx_codec_reason_t r;
    const node_t *root = &prog->nodes[prog->root];

    memset(&raw, 0, sizeof raw);
    raw.type_idx = TYPE_FROM_STRING;
    for (uint32_t i = 0; i < root->n; i++) {
        uint32_t ni = prog->kids[root->first + i];
        r = prog->roles[i] == R_NONE ? skip(codec, prog, &w, ni, 1)
                                     : extract(codec, prog, &w, ni, prog->roles[i], &raw);
        if (r != NX_CODEC_OK)
            return r;
    }
    *used = (size_t)(w.p - buf);
    if (w.sem != NX_CODEC_OK)
        return w.sem;
    return finish(codec, &raw, topic, now_ms, ev);
}

nx_codec_reason_t nx_codec_decode_datum(nx_codec_t *codec, const nx_codec_prog_t *prog,
                                        const void *buf, size_t len, int topic, int64_t now_ms,
                                        nx_event_t *ev, size_t *used) {
    nx_codec_reason_t r = run(codec, prog, buf, len, topic, now_ms, ev, used);
    codec->counters[r]++;
    return r;
}

nx_codec_reason_t nx_codec_from_fields(nx_codec_t *codec, const nx_codec_fields_t *fields,
                                       int topic, int64_t now_ms, nx_event_t *ev) {
    raw_t raw;
    memset(&raw, 0, sizeof raw);
    raw.f = *fields;
    raw.type_idx = TYPE_FROM_STRING;
    if (fields->user_id)
        raw.seen |= 1u << R_USER;
    if (fields->has_ts)
        raw.seen |= 1u << R_TS;
    if (fields->type)
        raw.seen |= 1u << R_TYPE;
    nx_codec_reason_t r = finish(codec, &raw, topic, now_ms, ev);
    codec->counters[r]++;
    return r;
}

nx_codec_reason_t nx_codec_decode(nx_codec_t *codec, const void *payload, size_t len, int topic,
                                  int64_t now_ms, nx_event_t *ev) {
    const uint8_t *p = payload;
    const nx_codec_prog_t *prog = codec->raw_prog;
    size_t used = 0;
    nx_codec_reason_t r;

    if (codec->confluent) {
        /* magic byte 0, 4-byte big-endian schema id */
        if (len >= 1 && p[0] != 0) {
            r = NX_CODEC_BAD_MAGIC;
            goto done;
        }
        if (len < 5) {
            r = NX_CODEC_TRUNCATED;
            goto done;
        }
        uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        prog = nx_codec_schema_for_id(codec, id, &r);
        if (!prog)
            goto done;
        p += 5;
        len -= 5;
    }
    r = run(codec, prog, p, len, topic, now_ms, ev, &used);
    if (!nx_codec_reason_is_structural(r) && used != len)
        r = NX_CODEC_TRAILING_BYTES;
done:
    codec->counters[r]++;
    return r;
}

/* ---- encoding ------------------------------------------------------------ */

static void put_opt_string(nx_avrobin_t *w, const char *s) {
    /* ["null", "string"]: branch 0 is null, branch 1 the string */
    nx_avrobin_long(w, s ? 1 : 0);
    if (s)
        nx_avrobin_string(w, s);
}

int64_t nx_codec_encode_event(const nx_codec_record_t *rec, int64_t schema_id, void *buf,
                              size_t cap) {
    nx_avrobin_t w;
    nx_avrobin_init(&w, buf, cap);
    if (schema_id >= 0)
        nx_avrobin_confluent(&w, (uint32_t)schema_id);
    nx_avrobin_string(&w, rec->user_id);
    nx_avrobin_long(&w, rec->ts_ms);
    nx_avrobin_string(&w, rec->event_type);
    put_opt_string(&w, rec->item_id);
    put_opt_string(&w, rec->category);
    nx_avrobin_long(&w, isnan(rec->price) ? 0 : 1);
    if (!isnan(rec->price))
        nx_avrobin_double(&w, rec->price);
    nx_avrobin_long(&w, rec->has_quantity ? 1 : 0);
    if (rec->has_quantity)
        nx_avrobin_long(&w, rec->quantity);
    put_opt_string(&w, rec->session_id);
    if (!w.p)
        return -1;
    return (int64_t)(w.p - (uint8_t *)buf);
}
