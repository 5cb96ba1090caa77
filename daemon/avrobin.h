/*
 * avrobin.h: writing Avro binary primitives into a caller's buffer.
 *
 * Shared by the event encoder (codec.c, for tests and tools) and the
 * prediction encoder (predenc.c, hot path). Header-only so the hot path
 * inlines them. Every writer takes a cursor {p, end}: it writes nothing and
 * sets `p` to NULL when the value does not fit, and every later call on a
 * NULL cursor is a no-op, so a caller checks once at the end.
 *
 * Encodings follow the Avro 1.11 specification: int and long as zig-zag
 * varints (at most 10 bytes), float/double as little-endian IEEE 754, string
 * and bytes as a long length followed by the bytes.
 */
#ifndef NX_AVROBIN_H
#define NX_AVROBIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The longest varint: ceil(64 / 7) bytes. */
#define NX_AVROBIN_VARINT_MAX 10

typedef struct nx_avrobin {
    uint8_t *p; /* next byte to write, NULL after an overflow */
    uint8_t *end;
} nx_avrobin_t;

static inline void nx_avrobin_init(nx_avrobin_t *w, void *buf, size_t cap) {
    w->p = buf;
    w->end = (uint8_t *)buf + cap;
}

static inline void nx_avrobin_raw(nx_avrobin_t *w, const void *data, size_t len) {
    if (!w->p || (size_t)(w->end - w->p) < len) {
        w->p = NULL;
        return;
    }
    if (len)
        memcpy(w->p, data, len);
    w->p += len;
}

static inline void nx_avrobin_long(nx_avrobin_t *w, int64_t v) {
    uint8_t tmp[NX_AVROBIN_VARINT_MAX];
    size_t n = 0;
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zig-zag */
    while (z > 0x7f) {
        tmp[n++] = (uint8_t)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    tmp[n++] = (uint8_t)z;
    nx_avrobin_raw(w, tmp, n);
}

static inline void nx_avrobin_bytes(nx_avrobin_t *w, const void *data, size_t len) {
    nx_avrobin_long(w, (int64_t)len);
    nx_avrobin_raw(w, data, len);
}

static inline void nx_avrobin_string(nx_avrobin_t *w, const char *s) {
    nx_avrobin_bytes(w, s, strlen(s));
}

static inline void nx_avrobin_double(nx_avrobin_t *w, double d) {
    uint64_t bits;
    uint8_t b[8];
    memcpy(&bits, &d, 8);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(bits >> (8 * i));
    nx_avrobin_raw(w, b, 8);
}

static inline void nx_avrobin_float(nx_avrobin_t *w, float f) {
    uint32_t bits;
    uint8_t b[4];
    memcpy(&bits, &f, 4);
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(bits >> (8 * i));
    nx_avrobin_raw(w, b, 4);
}

/* Confluent wire-format header: magic byte 0, then the schema id as a 4-byte
 * big-endian integer. */
static inline void nx_avrobin_confluent(nx_avrobin_t *w, uint32_t schema_id) {
    uint8_t h[5] = {0, (uint8_t)(schema_id >> 24), (uint8_t)(schema_id >> 16),
                    (uint8_t)(schema_id >> 8), (uint8_t)schema_id};
    nx_avrobin_raw(w, h, sizeof h);
}

#endif /* NX_AVROBIN_H */
