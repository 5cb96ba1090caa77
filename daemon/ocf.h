/*
 * ocf.h: the Avro Object Container File format, as the reader
 * (ocf_reader.h) and the writer (ocf_writer.h) share it.
 *
 * A file is the magic "Obj\x01", a metadata map (avro.schema, avro.codec,
 * ...), a 16-byte sync marker, then blocks: a datum count and a byte size
 * (zig-zag varints), that many bytes of datums (compressed per avro.codec),
 * and the sync marker again. Codecs here: "null", "deflate" (raw deflate,
 * RFC 1951) and "snappy" (Snappy data followed by the CRC-32, ISO 3309 as
 * zlib computes it, of the uncompressed data, 4 bytes big-endian), the
 * Avro 1.11 specification's names.
 *
 * This module owns those constants, the codec names and the growth of the
 * block buffers; it holds no state and is thread-safe.
 */
#ifndef NX_OCF_H
#define NX_OCF_H

#include <stddef.h>
#include <stdint.h>

/* "Obj" + format version 1. */
#define NX_OCF_MAGIC_LEN 4
extern const uint8_t nx_ocf_magic[NX_OCF_MAGIC_LEN];
#define NX_OCF_SYNC_LEN 16
/* Bytes of the CRC-32 closing a snappy block. */
#define NX_OCF_SNAPPY_CRC_LEN 4

typedef enum nx_ocf_codec { NX_OCF_NULL, NX_OCF_DEFLATE, NX_OCF_SNAPPY } nx_ocf_codec_t;

/* The codec named `name` ("null", "deflate", "snappy"), or -1. */
int nx_ocf_codec_parse(const char *name);

/* Grows *buf (capacity *cap) to hold at least `need` bytes, doubling from
 * 64 KiB so that a reader's buffers settle after a few blocks; the contents
 * are kept. 0, or -1 when out of memory (*buf is then unchanged). */
int nx_ocf_reserve(uint8_t **buf, size_t *cap, size_t need);

#endif /* NX_OCF_H */
