/*
 * gen_avro.h: the Avro side of `nextactd gen` (gen_cmd.c): a generated event
 * (gen.h) as raw Avro binary under a writer schema whose fields are found by
 * name, and malformed payloads made from a good encoding (--bad-rate).
 *
 * The writer schema must be a record; the user id and the timestamp must be
 * fields of it, every other role may be missing (its name "" or not in the
 * schema), and every field gen does not know must be nullable (it is written
 * as null). A role's field may be a union with null: an absent value (a
 * quantity of 0) is then written as null.
 *
 * Allocation: nx_gen_avro_new allocates the schema, one reusable record and
 * a fixed NX_GEN_AVRO_MAX_RECORD-byte output buffer; fill and encode
 * allocate nothing. Determinism: the same event gives the same bytes; the
 * malformed payloads depend only on the good bytes and the caller's rng.
 * Not thread-safe: one nx_gen_avro_t per thread.
 */
#ifndef NX_GEN_AVRO_H
#define NX_GEN_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include "gen.h"

/* The roles gen writes, the index of every names[] array. */
enum {
    NX_GEN_AVRO_USER,
    NX_GEN_AVRO_TS,
    NX_GEN_AVRO_TYPE,
    NX_GEN_AVRO_ITEM,
    NX_GEN_AVRO_CATEGORY,
    NX_GEN_AVRO_PRICE,
    NX_GEN_AVRO_QUANTITY,
    NX_GEN_AVRO_SESSION,
    NX_GEN_AVRO_FIELDS
};

/* Bytes of the output buffer. Ids are short: a record is < 200 bytes. */
#define NX_GEN_AVRO_MAX_RECORD 4096
/* Bytes a malformed payload may add to the good one (nx_gen_avro_bad). */
#define NX_GEN_AVRO_BAD_EXTRA 64
/* Classes of malformed payload, each one reason the ingest side rejects. */
#define NX_GEN_AVRO_BAD_KINDS 9

typedef struct nx_gen_avro nx_gen_avro_t;

/* Reads the writer schema at schema_path and maps names[role] (the field
 * name of each role, "" = not written) onto it. NULL + errstr when the file
 * cannot be read or the schema does not fit (see above). Caller frees with
 * nx_gen_avro_destroy(). */
nx_gen_avro_t *nx_gen_avro_new(const char *schema_path, const char *const names[NX_GEN_AVRO_FIELDS],
                               char *errstr, size_t errstr_size);
void nx_gen_avro_destroy(nx_gen_avro_t *ga);

/* The writer schema's JSON text (for a container header); valid until
 * nx_gen_avro_destroy. */
const char *nx_gen_avro_schema_json(const nx_gen_avro_t *ga);

/* The default field name of a role ("user_id", "ts", ...). */
const char *nx_gen_avro_default_name(int role);

/* Sets the record's fields from ev. 0, or -1 (avro_strerror says why). */
int nx_gen_avro_fill(nx_gen_avro_t *ga, const nx_gen_event_t *ev);

/* Encodes the filled record; *out points at the bytes, valid until the next
 * call. Returns their length, or -1 (avro_strerror says why). */
int64_t nx_gen_avro_encode(nx_gen_avro_t *ga, const uint8_t **out);

/* A malformed payload of class `kind` (0 .. NX_GEN_AVRO_BAD_KINDS - 1) made
 * from `good` (len bytes, an encoding by this ga) into out, which holds
 * len + NX_GEN_AVRO_BAD_EXTRA bytes; draws from rng. Returns its length
 * (may be 0). */
size_t nx_gen_avro_bad(const nx_gen_avro_t *ga, int kind, const uint8_t *good, size_t len,
                       nx_gen_rng_t *rng, uint8_t *out);
/* The class's name for the report ("truncated", "garbage", ...). */
const char *nx_gen_avro_bad_name(int kind);

#endif
