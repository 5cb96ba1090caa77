/*
 * replay_io.h: events from files (replay), and Avro container files out.
 *
 * Reader: nx_replay_open() sniffs the file. "Obj\x01" at the start means an
 * Avro Object Container File (codecs null, deflate and snappy), parsed here: header
 * metadata (avro.schema, avro.codec), blocks, sync markers. Each block's
 * datums go through the same validating decoder as Kafka payloads
 * (nx_codec_decode_datum, compiled from the file's own schema, so field
 * mapping and schema evolution work as for Kafka). Anything else is CSV:
 * columns named by input.csv_columns (or by the header line when
 * input.csv_header is set and csv_columns is empty), delimiter
 * input.csv_delimiter, timestamps per input.csv_timestamp (epoch_s,
 * epoch_ms, or datetime "YYYY-MM-DD HH:MM:SS[.fff][ UTC|Z]"), fields
 * optionally in double quotes ("" for a quote; no newlines inside quotes).
 *
 * Bad input is never fatal: a bad row or datum is counted under its reason
 * (the codec's reasons, also counted in the codec), the first
 * NX_REPLAY_FIRST_BAD are kept with their line (CSV) or record number (OCF)
 * in the stats, for the caller to report (the reader prints nothing); a corrupt OCF block (bad sync
 * marker, bad sizes, inflate error, a datum that does not parse) is counted, its remaining records
 * counted as lost, and reading goes on from the next sync marker. Only I/O errors end a replay
 * early.
 *
 * Ownership: the reader borrows cfg and codec (both must outlive it).
 * Events' user_id bytes live in the reader's buffers and stay valid until
 * the next nx_replay_next() or nx_replay_close(). offset = record number
 * (OCF, from 0) or line number (CSV, from 1); partition = -1; topic = 0.
 *
 * Memory: bounded by the largest OCF block (NX_REPLAY_BLOCK_MAX compressed,
 * NX_REPLAY_INFLATED_MAX inflated) or the CSV buffer (NX_REPLAY_CSV_BUF).
 * Not thread-safe; one reader per thread.
 */
#ifndef NX_REPLAY_IO_H
#define NX_REPLAY_IO_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "event.h"

/* Largest OCF block accepted, compressed (bytes): Avro writers use 16 KiB
 * to a few MiB; anything past 64 MiB is a corrupt size field. */
#define NX_REPLAY_BLOCK_MAX (64u << 20)
/* Largest block after inflation: deflate expands at most ~1000x, but event
 * data compresses 3-10x; a bomb past this is a corrupt block. */
#define NX_REPLAY_INFLATED_MAX (256u << 20)
/* CSV read buffer; a line longer than this is a bad row. */
#define NX_REPLAY_CSV_BUF (4u << 20)
/* Bad rows remembered (and logged) with their line numbers. */
#define NX_REPLAY_FIRST_BAD 10

typedef struct nx_replay nx_replay_t;

typedef struct nx_replay_bad {
    uint64_t where; /* CSV line (from 1) or OCF record number (from 0) */
    nx_codec_reason_t reason;
} nx_replay_bad_t;

typedef struct nx_replay_stats {
    uint64_t records; /* rows or datums read (header excluded) */
    uint64_t events;  /* events returned */
    uint64_t skipped; /* type mapped to "" */
    uint64_t bad;     /* rows or datums rejected */
    uint64_t by_reason[NX_CODEC_N_REASONS];
    uint64_t corrupt_blocks; /* OCF */
    uint64_t lost_records;   /* OCF: records in corrupt blocks never decoded */
    uint64_t bytes_read;
    uint64_t file_size; /* 0 when unknown (a pipe) */
    int n_first_bad;
    nx_replay_bad_t first_bad[NX_REPLAY_FIRST_BAD];
} nx_replay_stats_t;

/* Opens PATH ("-" = stdin, CSV only). For OCF the header is read and the
 * file's schema compiled now; a missing or unreadable file, a bad header, an
 * unknown codec or unmapped CSV columns fail here with errstr. */
nx_replay_t *nx_replay_open(const nx_config_t *cfg, nx_codec_t *codec, const char *path,
                            char *errstr, size_t errstr_size);

/* Fills up to max events. Returns how many (> 0), 0 at the end of the
 * file, -1 on an I/O error (nx_replay_error() says which). now_ms is
 * passed to the codec's ts_in_future check (INT64_MAX disables it). */
int nx_replay_next(nx_replay_t *rp, nx_event_t *evs, int max, int64_t now_ms);

const nx_replay_stats_t *nx_replay_stats(const nx_replay_t *rp);
/* "ocf" or "csv". */
const char *nx_replay_format(const nx_replay_t *rp);
/* The last I/O error, "" if none. */
const char *nx_replay_error(const nx_replay_t *rp);
void nx_replay_close(nx_replay_t *rp);

/* Avro Object Container File writer for outputs (predictions, generated
 * events); datums arrive already encoded. Our own, not Avro C's (which
 * draws its 16-byte sync marker from srand(time(NULL)) and so reseeds the
 * process-wide rand()): the marker is derived from a caller-given seed, so
 * the same datums, codec, schema and seed give a byte-identical file.
 * Header: magic, metadata {avro.codec, avro.schema}, sync; then blocks of
 * (count, size, data, sync) of about 1 MiB of datums each, "deflate" being
 * zlib raw deflate at a fixed level (bytes reproducible for one zlib
 * version), "snappy" Snappy with the CRC-32 of the block appended (as the
 * Avro spec has it). Blocks are compressed and written by a thread of the
 * writer's own while the caller fills the next one (the bytes do not
 * depend on it). Memory: two block buffers (+ a compressed copy). One
 * writer belongs to one calling thread. */
typedef struct nx_ocf_writer nx_ocf_writer_t;

/* PATH ("-" = stdout) is created or truncated and the header written.
 * codec: "null", "deflate" or "snappy". schema_json is copied into the header (it is
 * parsed once to refuse a bad one). Caller closes with
 * nx_ocf_writer_close(). NULL + errstr on failure. */
nx_ocf_writer_t *nx_ocf_writer_open(const char *path, const char *schema_json, const char *codec,
                                    uint64_t seed, char *errstr, size_t errstr_size);
/* Appends one datum (Avro binary under the writer's schema; not checked). */
int nx_ocf_writer_append(nx_ocf_writer_t *w, const void *datum, size_t len, char *errstr,
                         size_t errstr_size);
/* Flushes and closes; frees w in every case. 0 or -1 with errstr. */
int nx_ocf_writer_close(nx_ocf_writer_t *w, char *errstr, size_t errstr_size);

#endif /* NX_REPLAY_IO_H */
