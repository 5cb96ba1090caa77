/*
 * codec_schema.c: Avro schemas compiled into the programs the decoder walks
 * (codec_int.h), with each top-level field mapped to its role in the event
 * by the configured names; and the codec's construction from the
 * configuration (codec.h: nx_codec_new, nx_codec_destroy).
 */
#include "codec_int.h"

#include <avro.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- programs ---------------------------------------------------------- */

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

#define SCHEMA_FILE_MAX NX_CODEC_SCHEMA_FILE_MAX

char *nx_codec_schema_read(const char *path, size_t *len) {
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
        json = nx_codec_schema_read(path, &len);
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
