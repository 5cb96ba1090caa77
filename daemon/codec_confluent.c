/*
 * codec_confluent.c: writer schemas by Confluent schema id (codec.h:
 * nx_codec_add_schema, nx_codec_set_source): the cache of compiled
 * programs per id, filled from the registry source or <schema_dir>/<id>.avsc
 * (codec_int.h: nx_codec_schema_for_id, used by the framing in codec.c).
 */
#include "codec_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_slot(nx_codec_t *codec, uint32_t id, nx_codec_prog_t *prog) {
    for (int i = 0; i < codec->n_schemas; i++) {
        if (codec->schemas[i].id == id) {
            nx_codec_prog_destroy(codec->schemas[i].prog);
            codec->schemas[i].prog = prog;
            return 0;
        }
    }
    if (codec->n_schemas == NX_CODEC_MAX_SCHEMAS)
        return -1;
    codec->schemas[codec->n_schemas++] = (schema_slot_t){.id = id, .prog = prog};
    return 0;
}

int nx_codec_add_schema(nx_codec_t *codec, uint32_t schema_id, const char *json, char *errstr,
                        size_t errstr_size) {
    nx_codec_prog_t *prog = nx_codec_prog_new(codec, json, strlen(json), errstr, errstr_size);
    if (!prog)
        return -1;
    if (add_slot(codec, schema_id, prog) < 0) {
        nx_codec_prog_destroy(prog);
        snprintf(errstr, errstr_size, "more than %d schema ids", NX_CODEC_MAX_SCHEMAS);
        return -1;
    }
    return 0;
}

/* Caches prog (NULL: a miss) for id; returns it, or NULL if the cache is
 * full. Ids beyond the cap are looked up each time and refused (the
 * program is not kept): real deployments see a handful of ids. */
static const nx_codec_prog_t *cache(nx_codec_t *codec, uint32_t id, nx_codec_prog_t *prog) {
    if (add_slot(codec, id, prog) < 0) {
        nx_codec_prog_destroy(prog);
        return NULL;
    }
    return prog;
}

/* <schema_dir>/<id>.avsc compiled, or NULL (no such file, or bad). */
static nx_codec_prog_t *schema_file(nx_codec_t *codec, uint32_t id) {
    if (!codec->schema_dir[0])
        return NULL;
    char path[4096], err[256];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%u.avsc", codec->schema_dir, id);
    char *json = nx_codec_schema_read(path, &len);
    nx_codec_prog_t *prog = json ? nx_codec_prog_new(codec, json, len, err, sizeof err) : NULL;
    free(json);
    return prog;
}

/* See codec_int.h. What
 * is found is cached; so is a miss when nothing can change it: without a
 * source, and for a source's schema that does not compile (an id's schema
 * never changes). */
const nx_codec_prog_t *nx_codec_schema_for_id(nx_codec_t *codec, uint32_t id,
                                              nx_codec_reason_t *why) {
    *why = NX_CODEC_UNKNOWN_SCHEMA_ID;
    for (int i = 0; i < codec->n_schemas; i++) {
        if (codec->schemas[i].id == id)
            return codec->schemas[i].prog;
    }
    if (!codec->source.lookup)
        return cache(codec, id, schema_file(codec, id));
    const char *json = NULL;
    int64_t wait_ms = 0;
    char err[256];
    switch (codec->source.lookup(codec->source.opaque, id, &json, &wait_ms)) {
    case NX_CODEC_LOOKUP_FOUND:
        return cache(codec, id, nx_codec_prog_new(codec, json, strlen(json), err, sizeof err));
    case NX_CODEC_LOOKUP_PENDING:
        codec->pending_wait_ms = wait_ms;
        *why = NX_CODEC_SCHEMA_PENDING;
        return NULL;
    case NX_CODEC_LOOKUP_ABSENT:
        break;
    }
    /* the fallback: a local file is kept, its absence is not */
    nx_codec_prog_t *prog = schema_file(codec, id);
    return prog ? cache(codec, id, prog) : NULL;
}

void nx_codec_set_source(nx_codec_t *codec, const nx_codec_source_t *source) {
    codec->source = source ? *source : (nx_codec_source_t){0};
}

int64_t nx_codec_pending_wait_ms(const nx_codec_t *codec) {
    return codec->pending_wait_ms;
}
