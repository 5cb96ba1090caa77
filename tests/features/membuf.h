/*
 * membuf.h: a growing memory buffer behind the stream callbacks of
 * features/stream.h, for the features tests' save and restore round trips.
 * Writes append (the buffer doubles, from 4 KB); reads take bytes from pos
 * on and fail, as a stream must, when fewer are left. The caller frees
 * data. Header-only: each test executable includes it once.
 */
#ifndef NX_MEMBUF_H
#define NX_MEMBUF_H

#include <stdlib.h>
#include <string.h>

typedef struct membuf {
    char *data;
    size_t len, cap, pos;
} membuf_t;

static inline int mem_write(void *opaque, const void *buf, size_t len) {
    membuf_t *m = opaque;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + len)
            cap *= 2;
        char *d = realloc(m->data, cap);
        if (!d)
            return -1;
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, buf, len);
    m->len += len;
    return 0;
}

static inline int mem_read(void *opaque, void *buf, size_t len) {
    membuf_t *m = opaque;
    if (m->pos + len > m->len)
        return -1;
    memcpy(buf, m->data + m->pos, len);
    m->pos += len;
    return 0;
}

#endif /* NX_MEMBUF_H */
