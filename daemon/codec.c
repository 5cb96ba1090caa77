/* codec.c: validating single-pass Avro decoder for events (see codec.h). */
#include "codec.h"

#include <avro.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avrobin.h"

/* ---- programs ---------------------------------------------------------- */

/* One node per schema type. Named types used twice (or recursively, through
 * Avro C's links) share one node. */
enum {
    K_NULL,
    K_BOOL,
    K_INT,
    K_LONG,
    K_FLOAT,
    K_DOUBLE,
    K_BYTES,
    K_STRING,
    K_FIXED,
    K_ENUM,
    K_ARRAY,
    K_MAP,
    K_UNION,
    K_RECORD
};

typedef struct node {
    uint8_t kind;
    uint32_t n;     /* record: fields; union: branches; enum: symbols; fixed: bytes */
    uint32_t first; /* record/union: first entry in kids[]; array/map: item node;
                       enum: first entry in enum_type[] */
} node_t;

/* The role a top-level field plays in nx_event_t. */
enum { R_NONE, R_USER, R_TS, R_TYPE, R_ITEM, R_CAT, R_PRICE, R_QTY, R_SESSION, R_N };

struct nx_codec_prog {
    node_t *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t *kids;
    uint32_t n_kids, cap_kids;
    int32_t *enum_type; /* per enum symbol: nx_codec_type_lookup() of its name */
    uint32_t n_enum, cap_enum;
    uint8_t *roles; /* per field of the root record */
    uint32_t root;
};

typedef struct type_entry {
    char *value;
    size_t len;
    int type; /* index in event_types, -2 = skip */
} type_entry_t;

typedef struct schema_slot {
    uint32_t id;
    nx_codec_prog_t *prog; /* NULL: no such schema (cached miss) */
} schema_slot_t;

struct nx_codec {
    int confluent;
    char *schema_dir;
    char *field[R_N]; /* configured field name per role, "" = unmapped */
    type_entry_t *types;
    int n_types;
    int n_event_types;
    int topic_type[NX_CONFIG_MAX_LIST]; /* fixed type per input topic, -1 = none */
    int n_topics;
    int64_t max_user_id_len;
    int64_t max_string_len;
    int64_t max_collection;
    double max_price;
    int64_t max_future_ms;
    nx_codec_prog_t *raw_prog;
    schema_slot_t schemas[NX_CODEC_MAX_SCHEMAS];
    int n_schemas;
    nx_codec_source_t source; /* lookup NULL = none */
    int64_t pending_wait_ms;  /* the last SCHEMA_PENDING's hint */
    uint64_t counters[NX_CODEC_N_REASONS];
};

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

/* Grows *arr (elements of `size` bytes) so that it holds `need`. */
static int grow(void **arr, uint32_t *cap, uint32_t need, size_t size) {
    if (need <= *cap)
        return 0;
    uint32_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * size);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

void nx_codec_prog_destroy(nx_codec_prog_t *prog) {
    if (!prog)
        return;
    free(prog->nodes);
    free(prog->kids);
    free(prog->enum_type);
    free(prog->roles);
    free(prog);
}

/* Named schemas already compiled, so links and repeated names share a node
 * (and recursive types terminate). */
#define COMPILE_MAX_NAMED 256

typedef struct compile_ctx {
    nx_codec_t *codec;
    nx_codec_prog_t *prog;
    avro_schema_t named[COMPILE_MAX_NAMED];
    uint32_t named_node[COMPILE_MAX_NAMED];
    int n_named;
    char *errstr;
    size_t errstr_size;
} compile_ctx_t;

static int new_node(compile_ctx_t *c, uint8_t kind, uint32_t *idx) {
    nx_codec_prog_t *prog = c->prog;
    if (grow((void **)&prog->nodes, &prog->cap_nodes, prog->n_nodes + 1, sizeof(node_t)) < 0) {
        snprintf(c->errstr, c->errstr_size, "out of memory compiling schema");
        return -1;
    }
    *idx = prog->n_nodes++;
    prog->nodes[*idx] = (node_t){.kind = kind};
    return 0;
}

static int remember(compile_ctx_t *c, avro_schema_t s, uint32_t idx) {
    if (c->n_named == COMPILE_MAX_NAMED) {
        snprintf(c->errstr, c->errstr_size, "schema has more than %d named types",
                 COMPILE_MAX_NAMED);
        return -1;
    }
    c->named[c->n_named] = s;
    c->named_node[c->n_named++] = idx;
    return 0;
}

static int compile(compile_ctx_t *c, avro_schema_t s, uint32_t *out, int depth) {
    nx_codec_prog_t *prog = c->prog;
    uint32_t idx, n, first, child;

    if (depth > NX_CODEC_MAX_DEPTH) {
        snprintf(c->errstr, c->errstr_size, "schema nests deeper than %d", NX_CODEC_MAX_DEPTH);
        return -1;
    }
    if (avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    for (int i = 0; i < c->n_named; i++) {
        if (c->named[i] == s) {
            *out = c->named_node[i];
            return 0;
        }
    }
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return new_node(c, K_NULL, out);
    case AVRO_BOOLEAN:
        return new_node(c, K_BOOL, out);
    case AVRO_INT32:
        return new_node(c, K_INT, out);
    case AVRO_INT64:
        return new_node(c, K_LONG, out);
    case AVRO_FLOAT:
        return new_node(c, K_FLOAT, out);
    case AVRO_DOUBLE:
        return new_node(c, K_DOUBLE, out);
    case AVRO_BYTES:
        return new_node(c, K_BYTES, out);
    case AVRO_STRING:
        return new_node(c, K_STRING, out);
    case AVRO_FIXED:
        if (new_node(c, K_FIXED, &idx) < 0 || remember(c, s, idx) < 0)
            return -1;
        prog->nodes[idx].n = (uint32_t)avro_schema_fixed_size(s);
        *out = idx;
        return 0;
    case AVRO_ENUM:
        if (new_node(c, K_ENUM, &idx) < 0 || remember(c, s, idx) < 0)
            return -1;
        n = (uint32_t)avro_schema_enum_number_of_symbols(s);
        first = prog->n_enum;
        if (grow((void **)&prog->enum_type, &prog->cap_enum, first + n, sizeof(int32_t)) < 0)
            goto oom;
        for (uint32_t i = 0; i < n; i++) {
            const char *sym = avro_schema_enum_get(s, (int)i);
            prog->enum_type[first + i] = nx_codec_type_lookup(c->codec, sym, strlen(sym));
        }
        prog->n_enum += n;
        prog->nodes[idx].n = n;
        prog->nodes[idx].first = first;
        *out = idx;
        return 0;
    case AVRO_ARRAY:
    case AVRO_MAP:
        if (new_node(c, avro_typeof(s) == AVRO_ARRAY ? K_ARRAY : K_MAP, &idx) < 0)
            return -1;
        if (compile(c,
                    avro_typeof(s) == AVRO_ARRAY ? avro_schema_array_items(s)
                                                 : avro_schema_map_values(s),
                    &child, depth + 1) < 0)
            return -1;
        prog->nodes[idx].first = child;
        *out = idx;
        return 0;
    case AVRO_UNION:
    case AVRO_RECORD:
        if (new_node(c, avro_typeof(s) == AVRO_UNION ? K_UNION : K_RECORD, &idx) < 0)
            return -1;
        if (avro_typeof(s) == AVRO_RECORD && remember(c, s, idx) < 0)
            return -1;
        n = (uint32_t)(avro_typeof(s) == AVRO_UNION ? avro_schema_union_size(s)
                                                    : avro_schema_record_size(s));
        first = prog->n_kids;
        if (grow((void **)&prog->kids, &prog->cap_kids, first + n, sizeof(uint32_t)) < 0)
            goto oom;
        prog->n_kids += n;
        prog->nodes[idx].n = n;
        prog->nodes[idx].first = first;
        for (uint32_t i = 0; i < n; i++) {
            avro_schema_t sub = avro_typeof(s) == AVRO_UNION
                                    ? avro_schema_union_branch(s, (int)i)
                                    : avro_schema_record_field_get_by_index(s, (int)i);
            if (compile(c, sub, &child, depth + 1) < 0)
                return -1;
            prog->kids[first + i] = child;
        }
        *out = idx;
        return 0;
    default:
        snprintf(c->errstr, c->errstr_size, "unsupported Avro type %d", (int)avro_typeof(s));
        return -1;
    }
oom:
    snprintf(c->errstr, c->errstr_size, "out of memory compiling schema");
    return -1;
}

nx_codec_prog_t *nx_codec_prog_new(nx_codec_t *codec, const char *json, size_t json_len,
                                   char *errstr, size_t errstr_size) {
    avro_schema_t schema = NULL;
    nx_codec_prog_t *prog = NULL;
    compile_ctx_t c = {.codec = codec, .errstr = errstr, .errstr_size = errstr_size};

    if (avro_schema_from_json_length(json, json_len, &schema) != 0) {
        snprintf(errstr, errstr_size, "writer schema does not parse: %s", avro_strerror());
        goto err;
    }
    if (avro_typeof(schema) != AVRO_RECORD) {
        snprintf(errstr, errstr_size, "writer schema is not a record");
        goto err;
    }
    prog = calloc(1, sizeof *prog);
    if (!prog)
        goto oom;
    c.prog = prog;
    if (compile(&c, schema, &prog->root, 0) < 0)
        goto err;
    size_t n = avro_schema_record_size(schema);
    prog->roles = calloc(n ? n : 1, 1);
    if (!prog->roles)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(schema, (int)i);
        for (int r = R_USER; r < R_N; r++) {
            if (codec->field[r][0] && strcmp(codec->field[r], name) == 0)
                prog->roles[i] = (uint8_t)r;
        }
    }
    avro_schema_decref(schema);
    return prog;
oom:
    snprintf(errstr, errstr_size, "out of memory compiling schema");
err:
    nx_codec_prog_destroy(prog);
    if (schema)
        avro_schema_decref(schema);
    return NULL;
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

/* ---- Confluent schema ids ------------------------------------------------ */

static int add_slot(nx_codec_t *codec, uint32_t id, nx_codec_prog_t *prog) {
    for (int i = 0; i < codec->n_schemas; i++) {
        if (codec->schemas[i].id == id) {
            nx_codec_prog_destroy(codec->schemas[i].prog);
            codec->schemas[i].prog = prog;
            return 0;
        }
    }
    if (codec->n_schemas == NX_CODEC_MAX_SCHEMAS)
        return -1;
    codec->schemas[codec->n_schemas++] = (schema_slot_t){.id = id, .prog = prog};
    return 0;
}

int nx_codec_add_schema(nx_codec_t *codec, uint32_t schema_id, const char *json, char *errstr,
                        size_t errstr_size) {
    nx_codec_prog_t *prog = nx_codec_prog_new(codec, json, strlen(json), errstr, errstr_size);
    if (!prog)
        return -1;
    if (add_slot(codec, schema_id, prog) < 0) {
        nx_codec_prog_destroy(prog);
        snprintf(errstr, errstr_size, "more than %d schema ids", NX_CODEC_MAX_SCHEMAS);
        return -1;
    }
    return 0;
}

#define SCHEMA_FILE_MAX NX_CODEC_SCHEMA_FILE_MAX

/* Reads a whole (small) file; caller frees. NULL on error. */
static char *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    if (!fp)
        return NULL;
    buf = malloc(SCHEMA_FILE_MAX + 1);
    if (buf) {
        *len = fread(buf, 1, SCHEMA_FILE_MAX + 1, fp);
        if (ferror(fp) || *len > SCHEMA_FILE_MAX) {
            free(buf);
            buf = NULL;
        } else {
            buf[*len] = '\0';
        }
    }
    fclose(fp);
    return buf;
}

/* Caches prog (NULL: a miss) for id; returns it, or NULL if the cache is
 * full. Ids beyond the cap are looked up each time and refused (the
 * program is not kept): real deployments see a handful of ids. */
static const nx_codec_prog_t *cache(nx_codec_t *codec, uint32_t id, nx_codec_prog_t *prog) {
    if (add_slot(codec, id, prog) < 0) {
        nx_codec_prog_destroy(prog);
        return NULL;
    }
    return prog;
}

/* <schema_dir>/<id>.avsc compiled, or NULL (no such file, or bad). */
static nx_codec_prog_t *schema_file(nx_codec_t *codec, uint32_t id) {
    if (!codec->schema_dir[0])
        return NULL;
    char path[4096], err[256];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%u.avsc", codec->schema_dir, id);
    char *json = read_file(path, &len);
    nx_codec_prog_t *prog = json ? nx_codec_prog_new(codec, json, len, err, sizeof err) : NULL;
    free(json);
    return prog;
}

/* The program for a Confluent schema id, or NULL with *why the reason
 * (unknown_schema_id, or schema_pending while the source fetches it). What
 * is found is cached; so is a miss when nothing can change it: without a
 * source, and for a source's schema that does not compile (an id's schema
 * never changes). */
static const nx_codec_prog_t *schema_for_id(nx_codec_t *codec, uint32_t id,
                                            nx_codec_reason_t *why) {
    *why = NX_CODEC_UNKNOWN_SCHEMA_ID;
    for (int i = 0; i < codec->n_schemas; i++) {
        if (codec->schemas[i].id == id)
            return codec->schemas[i].prog;
    }
    if (!codec->source.lookup)
        return cache(codec, id, schema_file(codec, id));
    const char *json = NULL;
    int64_t wait_ms = 0;
    char err[256];
    switch (codec->source.lookup(codec->source.opaque, id, &json, &wait_ms)) {
    case NX_CODEC_LOOKUP_FOUND:
        return cache(codec, id, nx_codec_prog_new(codec, json, strlen(json), err, sizeof err));
    case NX_CODEC_LOOKUP_PENDING:
        codec->pending_wait_ms = wait_ms;
        *why = NX_CODEC_SCHEMA_PENDING;
        return NULL;
    case NX_CODEC_LOOKUP_ABSENT:
        break;
    }
    /* the fallback: a local file is kept, its absence is not */
    nx_codec_prog_t *prog = schema_file(codec, id);
    return prog ? cache(codec, id, prog) : NULL;
}

void nx_codec_set_source(nx_codec_t *codec, const nx_codec_source_t *source) {
    codec->source = source ? *source : (nx_codec_source_t){0};
}

int64_t nx_codec_pending_wait_ms(const nx_codec_t *codec) {
    return codec->pending_wait_ms;
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
        prog = schema_for_id(codec, id, &r);
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

/* ---- construction ------------------------------------------------------- */

void nx_codec_destroy(nx_codec_t *codec) {
    if (!codec)
        return;
    for (int i = 0; i < codec->n_schemas; i++)
        nx_codec_prog_destroy(codec->schemas[i].prog);
    nx_codec_prog_destroy(codec->raw_prog);
    for (int i = 0; i < codec->n_types; i++)
        free(codec->types[i].value);
    free(codec->types);
    for (int r = 0; r < R_N; r++)
        free(codec->field[r]);
    free(codec->schema_dir);
    free(codec);
}

static char *dup_or_empty(const char *s) {
    return strdup(s ? s : "");
}

static int type_index(const nx_config_t *cfg, const char *name) {
    for (int i = 0; i < cfg->event_types.n; i++) {
        if (strcmp(cfg->event_types.v[i], name) == 0)
            return i;
    }
    return -1;
}

/* Built-in caps when the configuration leaves one at 0. */
#define DEFAULT_MAX_STRING     4096                 /* bytes: ids and names are far shorter */
#define DEFAULT_MAX_COLLECTION 10000                /* items per payload */
#define DEFAULT_MAX_FUTURE_MS  (24LL * 3600 * 1000) /* one day of clock skew */

nx_codec_t *nx_codec_new(const nx_config_t *cfg, char *errstr, size_t errstr_size) {
    nx_codec_t *codec = NULL;
    char *json = NULL;
    size_t len = 0;

    codec = calloc(1, sizeof *codec);
    if (!codec)
        goto oom;
    if (strcmp(cfg->input.framing, "confluent") == 0) {
        codec->confluent = 1;
    } else if (strcmp(cfg->input.framing, "raw") != 0) {
        snprintf(errstr, errstr_size, "input.framing: \"%s\" is not raw or confluent",
                 cfg->input.framing);
        goto err;
    }
    codec->schema_dir = dup_or_empty(cfg->input.schema_dir);
    codec->field[R_NONE] = strdup("");
    codec->field[R_USER] = dup_or_empty(cfg->input.field_user_id);
    codec->field[R_TS] = dup_or_empty(cfg->input.field_timestamp);
    codec->field[R_TYPE] = dup_or_empty(cfg->input.field_type);
    codec->field[R_ITEM] = dup_or_empty(cfg->input.field_item);
    codec->field[R_CAT] = dup_or_empty(cfg->input.field_category);
    codec->field[R_PRICE] = dup_or_empty(cfg->input.field_price);
    codec->field[R_QTY] = dup_or_empty(cfg->input.field_quantity);
    codec->field[R_SESSION] = dup_or_empty(cfg->input.field_session);
    if (!codec->schema_dir)
        goto oom;
    for (int r = 0; r < R_N; r++) {
        if (!codec->field[r])
            goto oom;
    }
    if (!codec->field[R_USER][0] || !codec->field[R_TS][0]) {
        snprintf(errstr, errstr_size, "input.field_user_id and input.field_timestamp must be set");
        goto err;
    }
    if (cfg->event_types.n < 1 || cfg->event_types.n > NX_EVENT_MAX_TYPES) {
        snprintf(errstr, errstr_size, "event_types: need 1..%d types", NX_EVENT_MAX_TYPES);
        goto err;
    }
    codec->n_event_types = cfg->event_types.n;

    /* type_map entries, then each type's own name unless mapped already */
    codec->types =
        calloc((size_t)(cfg->input.type_map.n + cfg->event_types.n), sizeof(type_entry_t));
    if (!codec->types)
        goto oom;
    for (int i = 0; i < cfg->input.type_map.n + cfg->event_types.n; i++) {
        const char *value, *target;
        if (i < cfg->input.type_map.n) {
            value = cfg->input.type_map.key[i];
            target = cfg->input.type_map.val[i];
        } else {
            value = target = cfg->event_types.v[i - cfg->input.type_map.n];
        }
        if (nx_codec_type_lookup(codec, value, strlen(value)) != -1)
            continue; /* first mapping wins */
        int t = target[0] ? type_index(cfg, target) : -2;
        if (t == -1) {
            snprintf(errstr, errstr_size,
                     "input.type_map: \"%s\" maps to \"%s\", which is not in event_types", value,
                     target);
            goto err;
        }
        type_entry_t *e = &codec->types[codec->n_types];
        e->value = strdup(value);
        if (!e->value)
            goto oom;
        e->len = strlen(value);
        e->type = t;
        codec->n_types++;
    }

    codec->n_topics = cfg->kafka.input_topics.n;
    for (int i = 0; i < codec->n_topics; i++) {
        codec->topic_type[i] = -1;
        for (int j = 0; j < cfg->input.topic_types.n; j++) {
            if (strcmp(cfg->input.topic_types.key[j], cfg->kafka.input_topics.v[i]) != 0)
                continue;
            codec->topic_type[i] = type_index(cfg, cfg->input.topic_types.val[j]);
            if (codec->topic_type[i] < 0) {
                snprintf(errstr, errstr_size, "input.topic_types: \"%s\" is not an event type",
                         cfg->input.topic_types.val[j]);
                goto err;
            }
        }
    }
    if (!codec->field[R_TYPE][0]) {
        for (int i = 0; i < codec->n_topics; i++) {
            if (codec->topic_type[i] < 0) {
                snprintf(errstr, errstr_size,
                         "input.field_type is empty but topic \"%s\" has no fixed type in "
                         "input.topic_types",
                         cfg->kafka.input_topics.v[i]);
                goto err;
            }
        }
    }

    codec->max_user_id_len = cfg->input.max_user_id_len;
    if (codec->max_user_id_len <= 0 || codec->max_user_id_len > NX_EVENT_USER_ID_MAX)
        codec->max_user_id_len = NX_EVENT_USER_ID_MAX;
    codec->max_string_len =
        cfg->input.max_string_len > 0 ? cfg->input.max_string_len : DEFAULT_MAX_STRING;
    codec->max_collection =
        cfg->input.max_collection > 0 ? cfg->input.max_collection : DEFAULT_MAX_COLLECTION;
    codec->max_price = cfg->input.max_price > 0 ? cfg->input.max_price : HUGE_VAL;
    codec->max_future_ms =
        cfg->input.max_future_ms > 0 ? cfg->input.max_future_ms : DEFAULT_MAX_FUTURE_MS;

    if (!codec->confluent) {
        const char *path = cfg->input.writer_schema;
        if (!path || !path[0]) {
            snprintf(errstr, errstr_size, "input.writer_schema: needed with raw framing");
            goto err;
        }
        json = read_file(path, &len);
        if (!json) {
            snprintf(errstr, errstr_size, "input.writer_schema: cannot read %s: %s", path,
                     strerror(errno));
            goto err;
        }
        char err[256];
        codec->raw_prog = nx_codec_prog_new(codec, json, len, err, sizeof err);
        if (!codec->raw_prog) {
            snprintf(errstr, errstr_size, "input.writer_schema: %s: %s", path, err);
            goto err;
        }
        /* Fail at start-up, not on every event, if a required field is
         * not in the writer schema. */
        static const int required[] = {R_USER, R_TS, R_TYPE};
        for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
            int r = required[k], found = 0;
            const node_t *root = &codec->raw_prog->nodes[codec->raw_prog->root];
            if (r == R_TYPE && !codec->field[R_TYPE][0])
                continue;
            for (uint32_t i = 0; i < root->n; i++)
                found |= codec->raw_prog->roles[i] == r;
            if (!found) {
                snprintf(errstr, errstr_size, "input.writer_schema: %s has no field \"%s\"", path,
                         codec->field[r]);
                goto err;
            }
        }
    }
    free(json);
    return codec;
oom:
    snprintf(errstr, errstr_size, "out of memory");
err:
    free(json);
    nx_codec_destroy(codec);
    return NULL;
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
