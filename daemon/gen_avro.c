/*
 * gen_avro.c: generated events as Avro binary under a writer schema found
 * by field name, and the malformed payloads of --bad-rate (gen_avro.h).
 */
#include "gen_avro.h"

#include <avro.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_STRING, K_LONG, K_INT, K_DOUBLE };

static const char *const field_default_name[NX_GEN_AVRO_FIELDS] = {
    "user_id", "ts", "event_type", "item_id", "category", "price", "quantity", "session_id"};
static const int field_kind[NX_GEN_AVRO_FIELDS] = {K_STRING, K_LONG,   K_STRING, K_STRING,
                                                   K_STRING, K_DOUBLE, K_INT,    K_STRING};
/* user id and timestamp must exist; the others may be absent (the type too:
 * a config may give each topic a fixed type). A name "" means "not used". */
static const int field_required[NX_GEN_AVRO_FIELDS] = {1, 1, 0, 0, 0, 0, 0, 0};

typedef struct field_map {
    int index;        /* in the record, -1 = not in the schema */
    int union_branch; /* branch holding the value, -1 = not a union */
    int null_branch;  /* -1 = no null branch */
} field_map_t;

struct nx_gen_avro {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t rec;
    int have_rec;
    field_map_t map[NX_GEN_AVRO_FIELDS];
    char *json;        /* the writer schema's text, for the container header */
    avro_writer_t mem; /* raw binary into buf */
    char buf[NX_GEN_AVRO_MAX_RECORD];
};

static int kind_matches(avro_schema_t s, int kind) {
    switch (kind) {
    case K_STRING:
        return is_avro_string(s);
    case K_LONG:
        return is_avro_int64(s);
    case K_INT:
        return is_avro_int32(s) || is_avro_int64(s);
    default:
        return is_avro_double(s) || is_avro_float(s);
    }
}

static int read_file(const char *path, char **out, size_t *len, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* a schema file; 1 MiB is far beyond any real one */
    buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (!buf || ferror(f)) {
        snprintf(errstr, errstr_size, "%s: read failed", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

void nx_gen_avro_destroy(nx_gen_avro_t *ga) {
    if (!ga)
        return;
    free(ga->json);
    if (ga->mem)
        avro_writer_free(ga->mem);
    if (ga->have_rec)
        avro_value_decref(&ga->rec);
    if (ga->iface)
        avro_value_iface_decref(ga->iface);
    if (ga->schema)
        avro_schema_decref(ga->schema);
    free(ga);
}

nx_gen_avro_t *nx_gen_avro_new(const char *schema_path, const char *const names[NX_GEN_AVRO_FIELDS],
                               char *errstr, size_t errstr_size) {
    nx_gen_avro_t *ga = calloc(1, sizeof *ga);
    char *json = NULL;
    size_t json_len;
    if (!ga) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (read_file(schema_path, &json, &json_len, errstr, errstr_size) < 0)
        goto err;
    if (avro_schema_from_json_length(json, json_len, &ga->schema) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", schema_path, avro_strerror());
        goto err;
    }
    if (!is_avro_record(ga->schema)) {
        snprintf(errstr, errstr_size, "%s: the writer schema must be a record", schema_path);
        goto err;
    }
    for (int f = 0; f < NX_GEN_AVRO_FIELDS; f++) {
        field_map_t *m = &ga->map[f];
        m->index = names[f][0] ? avro_schema_record_field_get_index(ga->schema, names[f]) : -1;
        m->union_branch = m->null_branch = -1;
        if (m->index < 0) {
            if (field_required[f]) {
                snprintf(errstr, errstr_size, "%s: no field \"%s\"", schema_path, names[f]);
                goto err;
            }
            continue;
        }
        avro_schema_t fs = avro_schema_record_field_get_by_index(ga->schema, m->index);
        int ok = 0;
        if (is_avro_union(fs)) {
            for (size_t b = 0; b < avro_schema_union_size(fs); b++) {
                avro_schema_t bs = avro_schema_union_branch(fs, b);
                if (is_avro_null(bs) && m->null_branch < 0)
                    m->null_branch = (int)b;
                else if (kind_matches(bs, field_kind[f]) && m->union_branch < 0)
                    m->union_branch = (int)b;
            }
            ok = m->union_branch >= 0;
        } else {
            ok = kind_matches(fs, field_kind[f]);
        }
        if (!ok) {
            snprintf(errstr, errstr_size, "%s: field \"%s\" has a type gen cannot write (%s)",
                     schema_path, names[f],
                     field_kind[f] == K_STRING   ? "string"
                     : field_kind[f] == K_DOUBLE ? "double"
                                                 : "int or long");
            goto err;
        }
    }
    /* every other field must be nullable or gen cannot fill it */
    size_t n_fields = avro_schema_record_size(ga->schema);
    for (size_t i = 0; i < n_fields; i++) {
        int ours = 0;
        for (int f = 0; f < NX_GEN_AVRO_FIELDS; f++)
            ours |= ga->map[f].index == (int)i;
        avro_schema_t fs = avro_schema_record_field_get_by_index(ga->schema, (int)i);
        if (!ours && !(is_avro_union(fs) && is_avro_null(avro_schema_union_branch(fs, 0)))) {
            snprintf(errstr, errstr_size, "%s: field \"%s\" is neither known to gen nor nullable",
                     schema_path, avro_schema_record_field_name(ga->schema, (int)i));
            goto err;
        }
    }
    ga->iface = avro_generic_class_from_schema(ga->schema);
    if (!ga->iface || avro_generic_value_new(ga->iface, &ga->rec) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", schema_path, avro_strerror());
        goto err;
    }
    ga->have_rec = 1;
    /* Unknown nullable fields: null once; the value is reused. */
    for (size_t i = 0; i < n_fields; i++) {
        int ours = 0;
        for (int f = 0; f < NX_GEN_AVRO_FIELDS; f++)
            ours |= ga->map[f].index == (int)i;
        if (ours)
            continue;
        avro_value_t fv, branch;
        if (avro_value_get_by_index(&ga->rec, i, &fv, NULL) != 0 ||
            avro_value_set_branch(&fv, 0, &branch) != 0 || avro_value_set_null(&branch) != 0) {
            snprintf(errstr, errstr_size, "%s: %s", schema_path, avro_strerror());
            goto err;
        }
    }
    ga->json = json;
    json = NULL;
    ga->mem = avro_writer_memory(ga->buf, sizeof ga->buf);
    if (!ga->mem) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    return ga;
err:
    free(json);
    nx_gen_avro_destroy(ga);
    return NULL;
}

/* Sets field f (a role) to the string s / the number x; absent (NULL or NaN or
 * quantity 0) sets the null branch when there is one. */
static int set_field(nx_gen_avro_t *ga, int f, const char *s, double x, int64_t n, int absent) {
    const field_map_t *m = &ga->map[f];
    avro_value_t fv, v;
    if (m->index < 0)
        return 0;
    if (avro_value_get_by_index(&ga->rec, (size_t)m->index, &fv, NULL) != 0)
        return -1;
    if (m->union_branch >= 0) {
        if (absent && m->null_branch >= 0) {
            if (avro_value_set_branch(&fv, m->null_branch, &v) != 0)
                return -1;
            return avro_value_set_null(&v);
        }
        if (avro_value_set_branch(&fv, m->union_branch, &v) != 0)
            return -1;
    } else {
        v = fv;
    }
    switch (avro_value_get_type(&v)) {
    case AVRO_STRING:
        return avro_value_set_string(&v, s);
    case AVRO_INT64:
        return avro_value_set_long(&v, n);
    case AVRO_INT32:
        return avro_value_set_int(&v, (int32_t)n);
    case AVRO_DOUBLE:
        return avro_value_set_double(&v, x);
    case AVRO_FLOAT:
        return avro_value_set_float(&v, (float)x);
    default:
        return -1;
    }
}

int nx_gen_avro_fill(nx_gen_avro_t *ga, const nx_gen_event_t *ev) {
    if (set_field(ga, NX_GEN_AVRO_USER, ev->user_id, 0, 0, 0) ||
        set_field(ga, NX_GEN_AVRO_TS, NULL, 0, ev->ts_ms, 0) ||
        set_field(ga, NX_GEN_AVRO_TYPE, ev->type_name, 0, 0, 0) ||
        set_field(ga, NX_GEN_AVRO_ITEM, ev->item_id, 0, 0, 0) ||
        set_field(ga, NX_GEN_AVRO_CATEGORY, ev->category, 0, 0, 0) ||
        set_field(ga, NX_GEN_AVRO_PRICE, NULL, ev->price, 0, 0) ||
        set_field(ga, NX_GEN_AVRO_QUANTITY, NULL, 0, ev->quantity, ev->quantity == 0) ||
        set_field(ga, NX_GEN_AVRO_SESSION, ev->session_id, 0, 0, 0))
        return -1;
    return 0;
}

int64_t nx_gen_avro_encode(nx_gen_avro_t *ga, const uint8_t **out) {
    avro_writer_reset(ga->mem);
    if (avro_value_write(ga->mem, &ga->rec) != 0)
        return -1;
    *out = (const uint8_t *)ga->buf;
    return avro_writer_tell(ga->mem);
}

const char *nx_gen_avro_schema_json(const nx_gen_avro_t *ga) {
    return ga->json;
}

const char *nx_gen_avro_default_name(int role) {
    return field_default_name[role];
}

/* The classes the ingest side must reject, one reason each (the order of
 * bad_name; NX_GEN_AVRO_BAD_KINDS of them). */
enum {
    BAD_TRUNCATED,
    BAD_GARBAGE,
    BAD_HUGE_LENGTH,
    BAD_NEGATIVE_LENGTH,
    BAD_UNION_INDEX,
    BAD_TIMESTAMP,
    BAD_EMPTY_USER,
    BAD_PRICE,
    BAD_TRAILING,
};
_Static_assert(BAD_TRAILING + 1 == NX_GEN_AVRO_BAD_KINDS, "gen_avro.h counts the classes");
static const char *const bad_name[NX_GEN_AVRO_BAD_KINDS] = {
    "truncated",     "garbage",       "huge_length",  "negative_length", "bad_union_index",
    "bad_timestamp", "empty_user_id", "absurd_price", "trailing_bytes"};

const char *nx_gen_avro_bad_name(int kind) {
    return bad_name[kind];
}

static size_t put_varint(uint8_t *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    size_t n = 0;
    while (z >= 0x80) {
        p[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (uint8_t)z;
    return n;
}

static int get_varint(const uint8_t *p, size_t len, size_t *pos, int64_t *v) {
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -1;
        uint8_t b = p[(*pos)++];
        z |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 0;
        }
    }
    return -1;
}

/* Skips one value of a primitive or union-of-primitives schema. */
static int skip_value(avro_schema_t s, const uint8_t *p, size_t len, size_t *pos) {
    int64_t v;
    if (is_avro_union(s)) {
        if (get_varint(p, len, pos, &v) < 0 || v < 0 || (size_t)v >= avro_schema_union_size(s))
            return -1;
        return skip_value(avro_schema_union_branch(s, (int)v), p, len, pos);
    }
    if (is_avro_string(s) || is_avro_bytes(s)) {
        if (get_varint(p, len, pos, &v) < 0 || v < 0 || (uint64_t)v > len - *pos)
            return -1;
        *pos += (size_t)v;
        return 0;
    }
    if (is_avro_int32(s) || is_avro_int64(s))
        return get_varint(p, len, pos, &v);
    size_t w = is_avro_double(s) ? 8 : is_avro_float(s) ? 4 : is_avro_boolean(s) ? 1 : 0;
    if (!is_avro_null(s) && w == 0)
        return -1; /* records, arrays, ...: not walked */
    if (w > len - *pos)
        return -1;
    *pos += w;
    return 0;
}

/* Start offsets of the top-level fields of the record in p (n + 1 entries,
 * the last = end); -1 if the schema has more than 32 fields or one gen
 * cannot walk. */
#define MAX_WALK 32
static int walk_fields(avro_schema_t schema, const uint8_t *p, size_t len, size_t *off) {
    size_t n = avro_schema_record_size(schema), pos = 0;
    if (n > MAX_WALK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        off[i] = pos;
        if (skip_value(avro_schema_record_field_get_by_index(schema, (int)i), p, len, &pos) < 0)
            return -1;
    }
    off[n] = pos;
    return 0;
}

/* Replaces bytes [a, b) of the good encoding with rep[0..rep_len) into out. */
static size_t splice(uint8_t *out, const uint8_t *good, size_t len, size_t a, size_t b,
                     const uint8_t *rep, size_t rep_len) {
    memcpy(out, good, a);
    memcpy(out + a, rep, rep_len);
    memcpy(out + a + rep_len, good + b, len - b);
    return a + rep_len + (len - b);
}

size_t nx_gen_avro_bad(const nx_gen_avro_t *ga, int kind, const uint8_t *good, size_t len,
                       nx_gen_rng_t *rng, uint8_t *out) {
    size_t off[MAX_WALK + 1];
    uint8_t rep[32];
    int walked = walk_fields(ga->schema, good, len, off) == 0;
    const field_map_t *m = ga->map;
    size_t pos, n;
    int64_t v;
    switch (walked ? kind : BAD_GARBAGE) {
    case BAD_TRUNCATED:
        n = (size_t)(nx_gen_rng_next(rng) % len); /* 0 .. len - 1 bytes kept */
        memcpy(out, good, n);
        return n;
    case BAD_HUGE_LENGTH:
    case BAD_NEGATIVE_LENGTH:
    case BAD_EMPTY_USER:
        /* the user id string: replace its length (and, if empty, bytes) */
        pos = off[m[NX_GEN_AVRO_USER].index];
        if (m[NX_GEN_AVRO_USER].union_branch >= 0 && get_varint(good, len, &pos, &v) < 0)
            break;
        {
            size_t a = pos;
            if (get_varint(good, len, &pos, &v) < 0)
                break;
            /* 2^31 - 1: a length no 5-byte-per-varint message can hold */
            int64_t bad_len = kind == BAD_HUGE_LENGTH       ? 2147483647
                              : kind == BAD_NEGATIVE_LENGTH ? -3
                                                            : 0;
            n = put_varint(rep, bad_len);
            return splice(out, good, len, a, kind == BAD_EMPTY_USER ? pos + (size_t)v : pos, rep,
                          n);
        }
    case BAD_UNION_INDEX:
        /* the first union field's branch index, set beyond its branches */
        for (int i = 0; i < (int)avro_schema_record_size(ga->schema); i++) {
            avro_schema_t fs = avro_schema_record_field_get_by_index(ga->schema, i);
            if (!is_avro_union(fs))
                continue;
            pos = off[i];
            if (get_varint(good, len, &pos, &v) < 0)
                break;
            n = put_varint(rep, (int64_t)avro_schema_union_size(fs) + 5);
            return splice(out, good, len, off[i], pos, rep, n);
        }
        break;
    case BAD_TIMESTAMP: {
        /* alternately 1990-01-01 (before 2000) and 30 days ahead of the event */
        pos = off[m[NX_GEN_AVRO_TS].index];
        size_t a = pos;
        if (get_varint(good, len, &pos, &v) < 0)
            break;
        int64_t ts = (nx_gen_rng_next(rng) & 1) ? 631152000000LL : v + 30LL * 86400000;
        n = put_varint(rep, ts);
        return splice(out, good, len, a, pos, rep, n);
    }
    case BAD_PRICE:
        /* 1e15: no shop sells at that price (ingest caps input.max_price) */
        if (m[NX_GEN_AVRO_PRICE].index < 0 || m[NX_GEN_AVRO_PRICE].union_branch < 0 ||
            !is_avro_double(avro_schema_union_branch(
                avro_schema_record_field_get_by_index(ga->schema, m[NX_GEN_AVRO_PRICE].index),
                m[NX_GEN_AVRO_PRICE].union_branch)))
            break;
        {
            n = put_varint(rep, m[NX_GEN_AVRO_PRICE].union_branch);
            double x = 1e15;
            memcpy(rep + n, &x, 8); /* Avro doubles are little-endian, as is this host */
            return splice(out, good, len, off[m[NX_GEN_AVRO_PRICE].index],
                          off[m[NX_GEN_AVRO_PRICE].index + 1], rep, n + 8);
        }
    case BAD_TRAILING:
        memcpy(out, good, len);
        n = 1 + (size_t)(nx_gen_rng_next(rng) % 8); /* 1..8 stray bytes */
        for (size_t i = 0; i < n; i++)
            out[len + i] = (uint8_t)nx_gen_rng_next(rng);
        return len + n;
    default:
        break;
    }
    /* garbage, or a class this schema cannot express: random bytes, 1..64 */
    n = 1 + (size_t)(nx_gen_rng_next(rng) % 64);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)nx_gen_rng_next(rng);
    return n;
}
