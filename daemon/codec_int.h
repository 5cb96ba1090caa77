/*
 * codec_int.h: private to the codec (codec.c, the per-datum walk and the
 * framing; codec_schema.c, schema compilation, field mapping and
 * construction; codec_confluent.c, the schema ids and their source). Nothing
 * outside those files includes it: the public API is codec.h.
 *
 * A schema is compiled once into a program (nodes, kids, roles) that the
 * walk follows for every datum; the codec holds the configured field names
 * and limits, the raw program and the cache of programs by schema id.
 */
#ifndef NX_CODEC_INT_H
#define NX_CODEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* One node per schema type. Named types used twice (or recursively, through
 * Avro C's links) share one node. */
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

/* codec_schema.c: a whole schema file of at most NX_CODEC_SCHEMA_FILE_MAX
 * bytes, NUL-terminated, its length in *len; caller frees. NULL when it
 * cannot be read or is larger. */
char *nx_codec_schema_read(const char *path, size_t *len);

/* codec_confluent.c: the program for a Confluent schema id, or NULL with
 * *why the reason (unknown_schema_id, or schema_pending while the source
 * fetches it). Valid until nx_codec_destroy. */
const nx_codec_prog_t *nx_codec_schema_for_id(nx_codec_t *codec, uint32_t id,
                                              nx_codec_reason_t *why);

#endif
