/* offsets.c: the input offsets the pipeline's state covers (offsets.h). */
#include "offsets.h"

#include <string.h>

#include "log.h"

#define SECTION_VERSION 1u

void nx_offsets_init(nx_offsets_t *offs, const char *const *topics, int n_topics) {
    memset(offs, 0, sizeof *offs);
    offs->topics = topics;
    offs->n_topics = n_topics;
}

nx_kafka_offset_t *nx_offsets_find(nx_offsets_t *offs, int topic, int32_t partition, int add) {
    nx_kafka_offset_t *o = &offs->v[offs->last];
    if (offs->n && o->topic == topic && o->partition == partition)
        return o;
    for (int i = 0; i < offs->n; i++) {
        o = &offs->v[i];
        if (o->topic == topic && o->partition == partition) {
            offs->last = i;
            return o;
        }
    }
    if (!add || offs->n == NX_OFFSETS_MAX)
        return NULL;
    o = &offs->v[offs->n];
    *o = (nx_kafka_offset_t){topic, partition, -1};
    offs->last = offs->n++;
    return o;
}

int nx_offsets_topic(const nx_offsets_t *offs, const char *name) {
    for (int t = 0; t < offs->n_topics; t++)
        if (strcmp(offs->topics[t], name) == 0)
            return t;
    return -1;
}

void nx_offsets_remove(nx_offsets_t *offs, int topic, int32_t partition) {
    nx_kafka_offset_t *o = nx_offsets_find(offs, topic, partition, 0);
    if (o) {
        *o = offs->v[--offs->n];
        offs->last = 0;
    }
}

int nx_offsets_snapshot(const nx_offsets_t *offs, nx_kafka_offset_t *out) {
    int n = 0;
    for (int i = 0; i < offs->n; i++)
        if (offs->v[i].offset >= 0)
            out[n++] = offs->v[i];
    return n;
}

int nx_offsets_save(void *opaque, int (*write)(void *w, const void *buf, size_t len), void *w) {
    const nx_offsets_t *offs = opaque;
    uint32_t version = SECTION_VERSION, n = 0;
    for (int i = 0; i < offs->n; i++)
        n += offs->v[i].offset >= 0;
    int rc = write(w, &version, sizeof version) | write(w, &n, sizeof n);
    for (int i = 0; i < offs->n && rc == 0; i++) {
        const nx_kafka_offset_t *o = &offs->v[i];
        if (o->offset < 0)
            continue;
        const char *name = offs->topics[o->topic];
        uint16_t len = (uint16_t)strlen(name);
        rc |= write(w, &len, sizeof len);
        rc |= write(w, name, len);
        rc |= write(w, &o->partition, sizeof o->partition);
        rc |= write(w, &o->offset, sizeof o->offset);
    }
    return rc ? -1 : 0;
}

/* The entries after the version: u32 count, then the partitions. */
static int load_entries(nx_offsets_t *offs, int (*read)(void *r, void *buf, size_t len), void *r) {
    uint32_t n;
    offs->n = 0;
    offs->last = 0;
    if (read(r, &n, sizeof n) < 0 || n > NX_OFFSETS_MAX)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint16_t nl;
        char name[256];
        int32_t partition;
        int64_t next;
        if (read(r, &nl, sizeof nl) < 0 || nl >= sizeof name || read(r, name, nl) < 0 ||
            read(r, &partition, sizeof partition) < 0 || read(r, &next, sizeof next) < 0)
            return -1;
        name[nl] = '\0';
        int topic = nx_offsets_topic(offs, name);
        if (topic < 0) {
            nx_warn("checkpoint: topic %s is not an input any more; its offsets are ignored", name);
            continue;
        }
        nx_kafka_offset_t *o = nx_offsets_find(offs, topic, partition, 1);
        if (o)
            o->offset = next;
    }
    return 0;
}

int nx_offsets_load(void *opaque, int (*read)(void *r, void *buf, size_t len), void *r,
                    uint64_t len) {
    nx_offsets_t *offs = opaque;
    uint32_t version;
    (void)len;
    if (!read) /* no versioned section: the legacy one is tried */
        return 0;
    if (read(r, &version, sizeof version) < 0 || version == 0 || version > SECTION_VERSION)
        return -1;
    return load_entries(offs, read, r);
}

int nx_offsets_load_legacy(void *opaque, int (*read)(void *r, void *buf, size_t len), void *r,
                           uint64_t len) {
    (void)len;
    if (!read) /* absent: fine when the versioned section was there */
        return 0;
    return load_entries(opaque, read, r);
}
