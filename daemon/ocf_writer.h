/*
 * ocf_writer.h: Avro Object Container Files out (predictions of `nextactd
 * replay`, events of `nextactd gen`); datums arrive already encoded.
 *
 * Our own writer, not Avro C's (which draws its 16-byte sync marker from
 * srand(time(NULL)) and so reseeds the process-wide rand()): the marker is
 * derived from a caller-given seed, so the same datums, codec, schema and
 * seed give a byte-identical file. Header: magic, metadata {avro.codec,
 * avro.schema}, sync; then blocks of (count, size, data, sync) of about
 * 1 MiB of datums each (ocf.h has the format), "deflate" being zlib raw
 * deflate at a fixed level (bytes reproducible for one zlib version),
 * "snappy" Snappy with the CRC-32 of the block appended.
 *
 * Threads: blocks are compressed and written by a thread of the writer's
 * own while the caller fills the next one (the bytes do not depend on it).
 * One writer belongs to one calling thread.
 *
 * Memory: two block buffers (+ a compressed copy).
 */
#ifndef NX_OCF_WRITER_H
#define NX_OCF_WRITER_H

#include <stddef.h>
#include <stdint.h>

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

#endif /* NX_OCF_WRITER_H */
