/*
 * ocf_reader.h: events from an Avro Object Container File (replay input).
 *
 * The header's metadata (avro.schema, avro.codec: null, deflate or snappy)
 * is read at nx_ocf_reader_new(), and the file's own schema compiled there,
 * so field mapping and schema evolution work as for Kafka. Each block's
 * datums then go through the same validating decoder as Kafka payloads
 * (nx_codec_decode_datum).
 *
 * Bad input is never fatal: a bad datum is counted under its reason; a
 * corrupt block (bad sync marker, bad sizes, inflate or CRC error, a datum
 * that cannot be delimited, a record count that disagrees with the data)
 * is counted, and reading goes on from the next sync marker. Only I/O
 * errors end reading early.
 *
 * Records lost in a corrupt block are counted from its record count only
 * when that count is plausible: every datum takes at least one byte, so a
 * block cannot hold more datums than its bytes (uncompressed; of a
 * compressed block that cannot be uncompressed, the most its codec can
 * expand to). A count that cannot be read (a truncated or damaged block
 * header) or is not plausible says nothing: the block is counted in
 * unreadable_blocks and its lost records are unknown, never guessed. So
 * lost_records is bounded by the bytes read.
 *
 * Ownership: borrows codec, fp, path and st, which must outlive the reader;
 * the caller closes fp after nx_ocf_reader_destroy(). Events' user_id
 * bytes live in the reader's block buffers and stay valid until the next
 * nx_ocf_reader_next() or nx_ocf_reader_destroy(). offset = record number
 * (from 0); partition = -1; topic = 0.
 *
 * Memory: bounded by the largest block (NX_OCF_READER_BLOCK_MAX compressed,
 * NX_OCF_READER_INFLATED_MAX inflated). Not thread-safe.
 */
#ifndef NX_OCF_READER_H
#define NX_OCF_READER_H

#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "event.h"
#include "replay_stats.h"

/* Largest block accepted, compressed (bytes): Avro writers use 16 KiB
 * to a few MiB; anything past 64 MiB is a corrupt size field. */
#define NX_OCF_READER_BLOCK_MAX (64u << 20)
/* Largest block after inflation: deflate expands at most ~1000x, but event
 * data compresses 3-10x; a bomb past this is a corrupt block. */
#define NX_OCF_READER_INFLATED_MAX (256u << 20)

typedef struct nx_ocf_reader nx_ocf_reader_t;

/* Reads the header from fp (at the file's start) and compiles the file's
 * schema. NULL + errstr on a bad header, an unknown codec or a schema the
 * codec refuses. */
nx_ocf_reader_t *nx_ocf_reader_new(nx_codec_t *codec, FILE *fp, const char *path,
                                   nx_replay_stats_t *st, char *errstr, size_t errstr_size);

/* Fills up to max (> 0) events. Returns how many (> 0), 0 at the end of the
 * file, -1 on an I/O error (nx_ocf_reader_error() says which). now_ms is
 * passed to the codec's ts_in_future check (INT64_MAX disables it). */
int nx_ocf_reader_next(nx_ocf_reader_t *r, nx_event_t *evs, int max, int64_t now_ms);

/* The last I/O error, "" if none. */
const char *nx_ocf_reader_error(const nx_ocf_reader_t *r);

void nx_ocf_reader_destroy(nx_ocf_reader_t *r);

#endif /* NX_OCF_READER_H */
