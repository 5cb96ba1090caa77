/*
 * codec.h: Avro payloads (raw or Confluent-framed) to nx_event_t.
 *
 * Each writer schema is parsed once (avro_schema_from_json) and compiled into
 * a flat program: a table of nodes (one per schema type) plus, for the
 * top-level record, the role each field plays (user id, timestamp, type,
 * item, ...), found by the field names in the configuration. Decoding is one
 * pass over the payload that both validates it and extracts the mapped
 * fields, so writer schemas that add, drop or reorder fields, promote
 * int->long->float->double or string<->bytes, or wrap fields in unions with
 * null all decode the same.
 *
 * Validation is what Avro C 1.11.1 lacks on untrusted bytes: every varint at
 * most 10 bytes (ints within 32 bits), every length non-negative, within the
 * bytes left and under the configured cap, union and enum indexes in range,
 * booleans 0 or 1, collection items bounded per payload
 * (input.max_collection, summed over all collections so that nested and
 * zero-size items cannot multiply the work), nesting bounded
 * (NX_CODEC_MAX_DEPTH), and no trailing bytes. A payload this walk accepts
 * is safe to give to Avro C's own decoder (the tests do exactly that).
 *
 * Confluent schema ids: without a schema source, an id's writer schema is
 * <schema_dir>/<id>.avsc, read and compiled the first time the id is seen,
 * and the answer (program or none) is cached. With a source (a Schema
 * Registry, registry.h; nx_codec_set_source) the source is asked first and
 * never waited for: an id it is still fetching makes the payload
 * NX_CODEC_SCHEMA_PENDING, to be decoded again later; a schema it found is
 * compiled once and cached; an id it says it does not have falls back to
 * <schema_dir>/<id>.avsc, and without that file is unknown_schema_id for
 * now (not cached: the source may find it later).
 *
 * Guarantees: decoding allocates nothing, logs nothing, and runs in time
 * linear in the payload length plus input.max_collection. The only
 * allocations after nx_codec_new() happen the first time a Confluent schema
 * id's writer schema is found (read and compiled once, then cached; at most
 * NX_CODEC_MAX_SCHEMAS ids are cached).
 *
 * Ownership: the codec copies what it needs from the configuration. Decoded
 * events borrow user_id from the payload: valid while the payload is.
 *
 * Threads: one codec per thread (counters are plain integers).
 */
#ifndef NX_CODEC_H
#define NX_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"

/* Nesting deeper than this is rejected (too_deep): it bounds the stack of
 * the recursive walk; real event schemas nest two or three levels. */
#define NX_CODEC_MAX_DEPTH 32

/* Schema files larger than this are refused: real schemas are a few KiB. */
#define NX_CODEC_SCHEMA_FILE_MAX (1 << 20)

/* Confluent schema ids cached (found or not found) per codec. */
#define NX_CODEC_MAX_SCHEMAS 256

/* Timestamps before 2000-01-01T00:00:00Z are rejected (ts_too_old): such
 * values are units mistakes (seconds for ms) or defaults, not events. */
#define NX_CODEC_MIN_TS_MS 946684800000LL

/* Why a payload was rejected. Structural reasons (truncated ...
 * too_deep) stop the walk: the payload's length is unknown after them.
 * Semantic reasons (missing_field ... bad_row) come from a well-formed
 * payload. NX_CODEC_SKIPPED is not an error: the type map sends this
 * event type nowhere (e.g. Taobao's `fav`); nor is NX_CODEC_SCHEMA_PENDING:
 * the payload is neither good nor bad yet. The order is stable; names are
 * stable snake_case strings for metrics labels and dead-letter headers. */
typedef enum nx_codec_reason {
    NX_CODEC_OK = 0,
    /* structural */
    NX_CODEC_TRUNCATED,
    NX_CODEC_TRAILING_BYTES,
    NX_CODEC_BAD_MAGIC,
    NX_CODEC_UNKNOWN_SCHEMA_ID,
    NX_CODEC_BAD_VARINT,       /* longer than 10 bytes */
    NX_CODEC_INT_OUT_OF_RANGE, /* an Avro int outside 32 bits */
    NX_CODEC_NEGATIVE_LENGTH,
    NX_CODEC_BAD_UNION_INDEX,
    NX_CODEC_BAD_ENUM_INDEX,
    NX_CODEC_BAD_BOOLEAN,
    NX_CODEC_COLLECTION_OVER_CAP,
    NX_CODEC_TOO_DEEP,
    /* semantic */
    NX_CODEC_LENGTH_OVER_CAP,
    NX_CODEC_MISSING_FIELD,
    NX_CODEC_NULL_FIELD,
    NX_CODEC_WRONG_TYPE,
    NX_CODEC_UNKNOWN_EVENT_TYPE,
    NX_CODEC_TS_TOO_OLD,
    NX_CODEC_TS_IN_FUTURE,
    NX_CODEC_EMPTY_USER_ID,
    NX_CODEC_USER_ID_TOO_LONG,
    NX_CODEC_BAD_PRICE,
    NX_CODEC_BAD_QUANTITY,
    NX_CODEC_BAD_NUMBER,    /* CSV: a numeric column that does not parse */
    NX_CODEC_BAD_TIMESTAMP, /* CSV: a timestamp that does not parse */
    NX_CODEC_BAD_ROW,       /* CSV: too few columns, line too long */
    /* not an error */
    NX_CODEC_SKIPPED,
    NX_CODEC_SCHEMA_PENDING, /* the schema source is still fetching the writer schema */
    NX_CODEC_N_REASONS
} nx_codec_reason_t;

/* Stable snake_case name ("truncated", "bad_union_index", ...); "ok" for
 * NX_CODEC_OK, "unknown" outside the enum. Static storage. */
const char *nx_codec_reason_name(nx_codec_reason_t reason);

/* 1 when the walk stopped at this reason (the payload length is unknown). */
int nx_codec_reason_is_structural(nx_codec_reason_t reason);

typedef struct nx_codec nx_codec_t;
typedef struct nx_codec_prog nx_codec_prog_t;

/* Builds a codec from cfg->input (framing, writer_schema, schema_dir, field
 * names, type_map, topic_types, caps), cfg->event_types and
 * cfg->kafka.input_topics (topic index i of a decode call is
 * input_topics.v[i]). With raw framing the writer schema is loaded and
 * compiled now and must hold the mapped required fields. type_map values
 * name configured event types, or are "" for "skip silently". Returns NULL
 * with a message in errstr on bad configuration. Caller frees with
 * nx_codec_destroy(). */
nx_codec_t *nx_codec_new(const nx_config_t *cfg, char *errstr, size_t errstr_size);
void nx_codec_destroy(nx_codec_t *codec);

/* Registers the writer schema (JSON text) for a Confluent schema id, as if
 * read from <schema_dir>/<id>.avsc. For tests and tools. 0 or -1 with
 * errstr. */
int nx_codec_add_schema(nx_codec_t *codec, uint32_t schema_id, const char *json, char *errstr,
                        size_t errstr_size);

/* What a schema source answers for one id. */
typedef enum nx_codec_lookup {
    NX_CODEC_LOOKUP_FOUND,   /* *json is the writer schema */
    NX_CODEC_LOOKUP_PENDING, /* not known yet: ask again in *wait_ms */
    NX_CODEC_LOOKUP_ABSENT,  /* the source does not have it */
} nx_codec_lookup_t;

/* Where writer schemas of Confluent ids come from besides schema_dir.
 * lookup must not block; a FOUND *json (NUL-terminated) stays valid as long
 * as the source; *wait_ms is only read after PENDING. */
typedef struct nx_codec_source {
    nx_codec_lookup_t (*lookup)(void *opaque, uint32_t id, const char **json, int64_t *wait_ms);
    void *opaque;
} nx_codec_source_t;

/* Asks `source` (copied; NULL = none) for ids not cached. The source must
 * outlive the codec, or be unset first. */
void nx_codec_set_source(nx_codec_t *codec, const nx_codec_source_t *source);

/* After nx_codec_decode returned NX_CODEC_SCHEMA_PENDING: how long (ms)
 * before decoding that payload again may give another answer. */
int64_t nx_codec_pending_wait_ms(const nx_codec_t *codec);

/* Decodes one Kafka payload under the configured framing into *ev (every
 * field but partition and offset, which the caller sets). `topic` is the
 * index of the input topic (fixed types come from input.topic_types), or -1
 * when there is none (replay). `now_ms` is the wall clock for the
 * ts_in_future check; pass INT64_MAX to disable it. Returns NX_CODEC_OK,
 * NX_CODEC_SKIPPED, NX_CODEC_SCHEMA_PENDING (with a schema source) or the
 * rejection reason, and counts it. *ev is only meaningful on NX_CODEC_OK.
 * No allocation (except when a schema id's schema is first found, see
 * above). */
nx_codec_reason_t nx_codec_decode(nx_codec_t *codec, const void *payload, size_t len, int topic,
                                  int64_t now_ms, nx_event_t *ev);

/* Compiles a writer schema (JSON text) into a program for
 * nx_codec_decode_datum (OCF replay: the file carries its schema). Caller
 * frees with nx_codec_prog_destroy(). NULL with errstr on a schema that does
 * not parse or is not a record. */
nx_codec_prog_t *nx_codec_prog_new(nx_codec_t *codec, const char *json, size_t json_len,
                                   char *errstr, size_t errstr_size);
void nx_codec_prog_destroy(nx_codec_prog_t *prog);

/* Decodes one unframed datum at the start of buf[0..len) with `prog`; the
 * datum may be followed by others. On any non-structural result, *used is
 * the datum's length in bytes, so the caller can go on to the next one.
 * Otherwise as nx_codec_decode. */
nx_codec_reason_t nx_codec_decode_datum(nx_codec_t *codec, const nx_codec_prog_t *prog,
                                        const void *buf, size_t len, int topic, int64_t now_ms,
                                        nx_event_t *ev, size_t *used);

/* Fields of one event before the checks, as a text source (CSV) yields
 * them. Strings are borrowed and not NUL-terminated; NULL = absent. */
typedef struct nx_codec_fields {
    const char *user_id;
    size_t user_id_len;
    int has_ts;
    int64_t ts_ms;
    const char *type;
    size_t type_len;
    const char *item, *category, *session;
    size_t item_len, category_len, session_len;
    int has_price;
    double price;
    int has_quantity;
    int64_t quantity;
} nx_codec_fields_t;

/* Applies the same checks and mappings as decoding (type map, timestamp
 * bounds, user id length, price, quantity; id hashing) to fields from a text
 * source, fills *ev (but partition and offset) and counts the result. */
nx_codec_reason_t nx_codec_from_fields(nx_codec_t *codec, const nx_codec_fields_t *fields,
                                       int topic, int64_t now_ms, nx_event_t *ev);

/* Counts a rejection found outside the codec (CSV parse errors), so the
 * per-reason counters cover every input. */
void nx_codec_count(nx_codec_t *codec, nx_codec_reason_t reason);

/* Looks an event type value up the way decoding does: type_map first, then
 * the configured type names themselves. Returns the type index, -2 for a
 * value mapped to "" (skip), -1 if unknown. */
int nx_codec_type_lookup(const nx_codec_t *codec, const char *value, size_t len);

/* Per-reason counters since nx_codec_new(), indexed by nx_codec_reason_t
 * (NX_CODEC_OK counts accepted events). Valid for the codec's lifetime. */
const uint64_t *nx_codec_counters(const nx_codec_t *codec);

/* An event as text, for the encoders below. NULL strings, NaN price and
 * has_quantity = 0 encode as Avro null. */
typedef struct nx_codec_record {
    const char *user_id;
    int64_t ts_ms;
    const char *event_type;
    const char *item_id;
    const char *category;
    double price;
    int has_quantity;
    int32_t quantity;
    const char *session_id;
} nx_codec_record_t;

/* Encodes rec as Avro binary per conf/schemas/event.avsc into buf; with
 * schema_id >= 0, prefixed by the Confluent header for that id. Returns the
 * length, or -1 if buf is too small. Allocates nothing. */
int64_t nx_codec_encode_event(const nx_codec_record_t *rec, int64_t schema_id, void *buf,
                              size_t cap);

#endif /* NX_CODEC_H */
