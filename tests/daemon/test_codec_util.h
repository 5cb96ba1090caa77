/*
 * test_codec_util.h: helpers shared by the ingest tests (codec, predenc,
 * replay): an assertion macro that prints file:line and both values, a
 * seeded generator, a hand-filled configuration (so the tests do not depend
 * on config.c), and an Avro C encoder that writes an event under any writer
 * schema, finding the event's fields by name (the reference side of the
 * codec tests). Header-only: each test is one translation unit.
 */
#ifndef NX_TEST_CODEC_UTIL_H
#define NX_TEST_CODEC_UTIL_H

#include <avro.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"

static int t_failures __attribute__((unused));

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            t_failures++;                                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_I(a, b)                                                                           \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            t_failures++;                                                                          \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    a_, b_);                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_U(a, b)                                                                           \
    do {                                                                                           \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);             \
        if (a_ != b_) {                                                                            \
            t_failures++;                                                                          \
            fprintf(stderr, "%s:%d: %s == %s failed: %llu != %llu\n", __FILE__, __LINE__, #a, #b,  \
                    a_, b_);                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_REASON(got, want)                                                                    \
    do {                                                                                           \
        nx_codec_reason_t g_ = (got), w_ = (want);                                                 \
        if (g_ != w_) {                                                                            \
            t_failures++;                                                                          \
            fprintf(stderr, "%s:%d: reason %s, want %s\n", __FILE__, __LINE__,                     \
                    nx_codec_reason_name(g_), nx_codec_reason_name(w_));                           \
        }                                                                                          \
    } while (0)

/* splitmix64: a seeded generator of our own, so runs are reproducible. */
static uint64_t t_rng_state = 0x9e3779b97f4a7c15ULL;
static inline uint64_t t_rand(void) {
    uint64_t z = (t_rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline double t_unif(void) {
    return (double)(t_rand() >> 11) * (1.0 / 9007199254740992.0); /* 2^53 */
}

/* 2024-01-01T00:00:00Z, the tests' "now". */
#define T_NOW_MS 1704067200000LL

/* A configuration filled by hand: event.avsc field names, types click,
 * cart, purchase, Taobao-ish and REES46-ish type values. */
static inline nx_config_t *t_config(const char *framing) {
    static nx_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.input.framing = (char *)framing;
    cfg.input.writer_schema = (char *)NX_SOURCE_DIR "/conf/schemas/event.avsc";
    cfg.input.schema_dir = (char *)"";
    cfg.input.field_user_id = (char *)"user_id";
    cfg.input.field_timestamp = (char *)"ts";
    cfg.input.field_type = (char *)"event_type";
    cfg.input.field_item = (char *)"item_id";
    cfg.input.field_category = (char *)"category";
    cfg.input.field_price = (char *)"price";
    cfg.input.field_quantity = (char *)"quantity";
    cfg.input.field_session = (char *)"session_id";
    static const char *map[][2] = {{"pv", "click"},
                                   {"view", "click"},
                                   {"buy", "purchase"},
                                   {"fav", ""},
                                   {"remove_from_cart", ""}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        cfg.input.type_map.key[i] = (char *)map[i][0];
        cfg.input.type_map.val[i] = (char *)map[i][1];
    }
    cfg.input.type_map.n = (int)(sizeof map / sizeof map[0]);
    cfg.input.max_user_id_len = 64;
    cfg.input.max_string_len = 1024;
    cfg.input.max_collection = 1000;
    cfg.input.max_price = 1e6;
    cfg.input.max_future_ms = 24LL * 3600 * 1000;
    cfg.input.csv_header = 0;
    cfg.input.csv_delimiter = (char *)",";
    cfg.input.csv_timestamp = (char *)"epoch_ms";
    cfg.event_types.n = 3;
    cfg.event_types.v[0] = (char *)"click";
    cfg.event_types.v[1] = (char *)"cart";
    cfg.event_types.v[2] = (char *)"purchase";
    cfg.output.format = (char *)"avro";
    cfg.output.schema_id = 7;
    return &cfg;
}

/* The event.avsc schema text. */
static const char t_event_schema[] =
    "{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"io.nextact\",\"fields\":["
    "{\"name\":\"user_id\",\"type\":\"string\"},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"event_type\",\"type\":\"string\"},"
    "{\"name\":\"item_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"category\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"price\",\"type\":[\"null\",\"double\"],\"default\":null},"
    "{\"name\":\"quantity\",\"type\":[\"null\",\"int\"],\"default\":null},"
    "{\"name\":\"session_id\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

/* Fills any value with seeded random content (unmapped fields). */
static inline void t_fill_random(avro_value_t *v, int depth) {
    avro_value_t child;
    char s[24];
    size_t n = 0;
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        avro_value_set_null(v);
        break;
    case AVRO_BOOLEAN:
        avro_value_set_boolean(v, (int)(t_rand() & 1));
        break;
    case AVRO_INT32:
        avro_value_set_int(v, (int32_t)t_rand());
        break;
    case AVRO_INT64:
        avro_value_set_long(v, (int64_t)t_rand());
        break;
    case AVRO_FLOAT:
        avro_value_set_float(v, (float)(t_unif() * 100 - 50));
        break;
    case AVRO_DOUBLE:
        avro_value_set_double(v, t_unif() * 1e6 - 5e5);
        break;
    case AVRO_STRING:
    case AVRO_BYTES:
        n = t_rand() % 20;
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('a' + t_rand() % 26);
        s[n] = '\0';
        if (avro_value_get_type(v) == AVRO_STRING)
            avro_value_set_string(v, s);
        else
            avro_value_set_bytes(v, s, n);
        break;
    case AVRO_FIXED: {
        int64_t fs = avro_schema_fixed_size(avro_value_get_schema(v));
        char fb[64] = {0};
        for (int64_t i = 0; i < fs && i < 64; i++)
            fb[i] = (char)t_rand();
        avro_value_set_fixed(v, fb, (size_t)fs);
        break;
    }
    case AVRO_ENUM:
        avro_value_set_enum(v, (int)(t_rand() % (uint64_t)avro_schema_enum_number_of_symbols(
                                                    avro_value_get_schema(v))));
        break;
    case AVRO_ARRAY:
        n = depth > 3 ? 0 : t_rand() % 4;
        for (size_t i = 0; i < n; i++) {
            avro_value_append(v, &child, NULL);
            t_fill_random(&child, depth + 1);
        }
        break;
    case AVRO_MAP:
        n = depth > 3 ? 0 : t_rand() % 4;
        for (size_t i = 0; i < n; i++) {
            snprintf(s, sizeof s, "k%zu", i);
            avro_value_add(v, s, &child, NULL, NULL);
            t_fill_random(&child, depth + 1);
        }
        break;
    case AVRO_UNION: {
        avro_schema_t us = avro_value_get_schema(v);
        size_t nb = avro_schema_union_size(us), b = t_rand() % nb;
        if (depth > 3) { /* recursive schemas: end with the null branch */
            for (size_t i = 0; i < nb; i++) {
                if (avro_typeof(avro_schema_union_branch(us, (int)i)) == AVRO_NULL)
                    b = i;
            }
        }
        avro_value_set_branch(v, (int)b, &child);
        t_fill_random(&child, depth + 1);
        break;
    }
    case AVRO_RECORD:
        avro_value_get_size(v, &n);
        for (size_t i = 0; i < n; i++) {
            avro_value_get_by_index(v, i, &child, NULL);
            t_fill_random(&child, depth + 1);
        }
        break;
    default:
        break;
    }
}

/* Sets a mapped field from text: picks the union branch (null when text is
 * NULL, else the first non-null one) and converts to the writer's type. */
static inline void t_set_field(avro_value_t *v, const char *text) {
    avro_value_t branch;
    if (avro_value_get_type(v) == AVRO_UNION) {
        avro_schema_t us = avro_value_get_schema(v);
        for (size_t i = 0; i < avro_schema_union_size(us); i++) {
            int is_null = avro_typeof(avro_schema_union_branch(us, (int)i)) == AVRO_NULL;
            if (is_null == (text == NULL)) {
                avro_value_set_branch(v, (int)i, &branch);
                t_set_field(&branch, text);
                return;
            }
        }
        return;
    }
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        avro_value_set_null(v);
        break;
    case AVRO_STRING:
        avro_value_set_string(v, text);
        break;
    case AVRO_BYTES:
        avro_value_set_bytes(v, (void *)text, strlen(text));
        break;
    case AVRO_INT32:
        avro_value_set_int(v, (int32_t)strtoll(text, NULL, 10));
        break;
    case AVRO_INT64:
        avro_value_set_long(v, strtoll(text, NULL, 10));
        break;
    case AVRO_FLOAT:
        avro_value_set_float(v, strtof(text, NULL));
        break;
    case AVRO_DOUBLE:
        avro_value_set_double(v, strtod(text, NULL));
        break;
    case AVRO_ENUM:
        avro_value_set_enum(v, avro_schema_enum_get_by_name(avro_value_get_schema(v), text));
        break;
    default:
        t_fill_random(v, 0);
    }
}

/* Text of field `name` of rec, NULL when absent; mapped names follow
 * event.avsc. `tmp` holds formatted numbers. */
static inline const char *t_field_text(const nx_codec_record_t *rec, const char *name, char *tmp,
                                       size_t tmp_size, int *mapped) {
    *mapped = 1;
    if (!strcmp(name, "user_id"))
        return rec->user_id;
    if (!strcmp(name, "event_type"))
        return rec->event_type;
    if (!strcmp(name, "item_id"))
        return rec->item_id;
    if (!strcmp(name, "category"))
        return rec->category;
    if (!strcmp(name, "session_id"))
        return rec->session_id;
    if (!strcmp(name, "ts")) {
        snprintf(tmp, tmp_size, "%" PRId64, rec->ts_ms);
        return tmp;
    }
    if (!strcmp(name, "price")) {
        if (isnan(rec->price))
            return NULL;
        snprintf(tmp, tmp_size, "%.17g", rec->price);
        return tmp;
    }
    if (!strcmp(name, "quantity")) {
        if (!rec->has_quantity)
            return NULL;
        snprintf(tmp, tmp_size, "%d", rec->quantity);
        return tmp;
    }
    *mapped = 0;
    return NULL;
}

/* Encodes rec under writer schema `schema` with Avro C (random content in
 * unmapped fields). Returns the length or -1. */
static inline int64_t t_avro_encode(avro_schema_t schema, const nx_codec_record_t *rec, void *buf,
                                    size_t cap) {
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t val, fv;
    avro_writer_t writer = NULL;
    int64_t len = -1;
    size_t n = 0;
    char tmp[64];
    if (!iface || avro_generic_value_new(iface, &val) != 0)
        return -1;
    avro_value_get_size(&val, &n);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        int mapped;
        avro_value_get_by_index(&val, i, &fv, &name);
        const char *text = t_field_text(rec, name, tmp, sizeof tmp, &mapped);
        if (mapped)
            t_set_field(&fv, text);
        else
            t_fill_random(&fv, 1);
    }
    writer = avro_writer_memory(buf, (int64_t)cap);
    if (avro_value_write(writer, &val) == 0)
        len = avro_writer_tell(writer);
    avro_writer_free(writer);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    return len;
}

/* A random plausible event; strings live in static buffers until the next
 * call. */
static inline nx_codec_record_t t_random_record(void) {
    static char user[48], item[24], cat[24], sess[40];
    static const char *types[] = {"click", "cart", "purchase", "pv", "buy", "view"};
    nx_codec_record_t rec;
    size_t ulen = 1 + t_rand() % 40;
    for (size_t i = 0; i < ulen; i++)
        user[i] = (char)('a' + t_rand() % 26);
    user[ulen] = '\0';
    snprintf(item, sizeof item, "%" PRIu64, t_rand() % 1000000);
    snprintf(cat, sizeof cat, "%" PRIu64, t_rand() % 5000);
    snprintf(sess, sizeof sess, "s-%016" PRIx64, t_rand());
    rec.user_id = user;
    rec.ts_ms =
        NX_CODEC_MIN_TS_MS + (int64_t)(t_rand() % (uint64_t)(T_NOW_MS - NX_CODEC_MIN_TS_MS));
    rec.event_type = types[t_rand() % 6];
    rec.item_id = t_rand() % 5 ? item : NULL;
    rec.category = t_rand() % 5 ? cat : NULL;
    rec.price = t_rand() % 3 ? floor(t_unif() * 100000) / 100 : NAN;
    rec.has_quantity = (int)(t_rand() % 2);
    rec.quantity = (int32_t)(t_rand() % 10);
    rec.session_id = t_rand() % 4 ? sess : NULL;
    return rec;
}

#endif /* NX_TEST_CODEC_UTIL_H */
