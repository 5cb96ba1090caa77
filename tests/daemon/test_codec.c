/*
 * test_codec.c: the validating Avro decoder against Avro C's own reader.
 *
 * - our encoder writes the same bytes as Avro C's writer for event.avsc;
 * - round trips (raw and Confluent) keep every field;
 * - random valid events under evolved writer schemas (fields added,
 *   removed, reordered, promoted, enum and bytes types, unions either way
 *   round) decode to what Avro C reads (the reference twin);
 * - every bad-input class gives its exact reason;
 * - hostile lengths are rejected without allocating;
 * - randomly mutated payloads that the walk accepts are read by Avro C
 *   without error, to the same field values.
 */
#include <malloc.h>

#include "test_codec_util.h"

/* Writer schemas differing from event.avsc. */
static const char *const evolved[] = {
    /* reordered, extra fields of every Avro type, promotions: bytes user id,
     * long item id, float price, long quantity, enum type, reversed unions */
    "{\"type\":\"record\",\"name\":\"E2\",\"fields\":["
    "{\"name\":\"extra_rec\",\"type\":{\"type\":\"record\",\"name\":\"Inner\",\"fields\":["
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"f\",\"type\":{\"type\":\"fixed\","
    "\"name\":\"F4\",\"size\":4}},{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":"
    "\"long\"}}]}},"
    "{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":"
    "[\"view\",\"cart\",\"purchase\",\"pv\",\"buy\",\"click\",\"fav\"]}},"
    "{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"user_id\",\"type\":\"bytes\"},"
    "{\"name\":\"item_id\",\"type\":[\"long\",\"null\"]},"
    "{\"name\":\"price\",\"type\":[\"null\",\"float\"]},"
    "{\"name\":\"f32\",\"type\":\"float\"},{\"name\":\"f64\",\"type\":\"double\"},"
    "{\"name\":\"i32\",\"type\":\"int\"},{\"name\":\"again\",\"type\":\"Inner\"},"
    "{\"name\":\"quantity\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"string\",\"Inner\"]},"
    "{\"name\":\"session_id\",\"type\":[\"string\",\"null\"]}]}",
    /* fields removed: only the required ones, category as bytes union */
    "{\"type\":\"record\",\"name\":\"E3\",\"fields\":["
    "{\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"event_type\",\"type\":\"string\"},"
    "{\"name\":\"category\",\"type\":[\"null\",\"bytes\"]}]}",
    /* required fields as nullable unions, int price, recursive extra field */
    "{\"type\":\"record\",\"name\":\"E4\",\"fields\":["
    "{\"name\":\"next\",\"type\":[\"null\",\"E4\"]},"
    "{\"name\":\"user_id\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"ts\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"event_type\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"price\",\"type\":[\"null\",\"int\"]}]}",
};

static int t_has_field(avro_schema_t schema, const char *name) {
    return avro_schema_record_field_get_index(schema, name) >= 0;
}

/* Reads a payload with Avro C and derives the event our decoder should
 * produce (user id copied into uid). Returns 0 when Avro C read it. */
static int ref_decode(avro_schema_t schema, const nx_codec_t *codec, const void *buf, size_t len,
                      nx_event_t *ev, char *uid, size_t uid_size) {
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t val, fv, br;
    avro_reader_t reader = avro_reader_memory(buf, (int64_t)len);
    static const char *names[] = {"user_id",  "ts",    "event_type", "item_id",
                                  "category", "price", "quantity",   "session_id"};
    int rc = -1;
    memset(ev, 0, sizeof *ev);
    ev->price = NAN;
    avro_generic_value_new(iface, &val);
    if (avro_value_read(reader, &val) != 0)
        goto out;
    for (int k = 0; k < 8; k++) {
        if (avro_value_get_by_name(&val, names[k], &fv, NULL) != 0)
            continue;
        if (avro_value_get_type(&fv) == AVRO_UNION) {
            avro_value_get_current_branch(&fv, &br);
            fv = br;
        }
        const char *s = NULL;
        size_t sl = 0;
        int64_t l = 0;
        int32_t i32 = 0;
        float f = 0;
        double d = NAN;
        int is_num = 0, is_str = 0;
        switch (avro_value_get_type(&fv)) {
        case AVRO_STRING:
            avro_value_get_string(&fv, &s, &sl);
            sl--; /* Avro C counts the NUL */
            is_str = 1;
            break;
        case AVRO_BYTES:
            avro_value_get_bytes(&fv, (const void **)&s, &sl);
            is_str = 1;
            break;
        case AVRO_INT32:
            avro_value_get_int(&fv, &i32);
            l = i32;
            d = i32;
            is_num = 1;
            break;
        case AVRO_INT64:
            avro_value_get_long(&fv, &l);
            d = (double)l;
            is_num = 1;
            break;
        case AVRO_FLOAT:
            avro_value_get_float(&fv, &f);
            d = f;
            break;
        case AVRO_DOUBLE:
            avro_value_get_double(&fv, &d);
            break;
        case AVRO_ENUM: {
            int e = 0;
            avro_value_get_enum(&fv, &e);
            s = avro_schema_enum_get(avro_value_get_schema(&fv), e);
            sl = strlen(s);
            is_str = 1;
            break;
        }
        default:
            continue; /* null */
        }
        char num[32];
        if (is_num && k != 1 && k != 5 && k != 6) {
            sl = (size_t)snprintf(num, sizeof num, "%lld", (long long)l);
            s = num;
            is_str = 1;
        }
        switch (k) {
        case 0:
            memcpy(uid, s, sl < uid_size ? sl : uid_size);
            ev->user_id_len = (uint32_t)sl;
            break;
        case 1:
            ev->ts_ms = l;
            break;
        case 2:
            ev->type = nx_codec_type_lookup(codec, s, sl);
            break;
        case 3:
            ev->item = nx_event_id_hash(s, sl);
            break;
        case 4:
            ev->category = nx_event_id_hash(s, sl);
            break;
        case 5:
            ev->price = d;
            break;
        case 6:
            ev->quantity = (int32_t)l;
            break;
        case 7:
            ev->session = nx_event_id_hash(s, sl);
            break;
        }
        (void)is_str;
    }
    rc = 0;
out:
    avro_reader_free(reader);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    return rc;
}

static void check_same(const nx_event_t *got, const nx_event_t *want, const char *want_uid) {
    CHECK_EQ_U(got->user_id_len, want->user_id_len);
    CHECK(memcmp(got->user_id, want_uid, got->user_id_len) == 0);
    CHECK_EQ_I(got->ts_ms, want->ts_ms);
    CHECK_EQ_I(got->type, want->type);
    CHECK_EQ_U(got->item, want->item);
    CHECK_EQ_U(got->category, want->category);
    CHECK_EQ_U(got->session, want->session);
    CHECK((isnan(got->price) && isnan(want->price)) || got->price == want->price);
    CHECK_EQ_I(got->quantity, want->quantity);
}

static void test_encoder_matches_avro_c(void) {
    avro_schema_t schema;
    CHECK(avro_schema_from_json_literal(t_event_schema, &schema) == 0);
    for (int i = 0; i < 500; i++) {
        nx_codec_record_t rec = t_random_record();
        uint8_t ours[512], theirs[512];
        int64_t n1 = nx_codec_encode_event(&rec, -1, ours, sizeof ours);
        int64_t n2 = t_avro_encode(schema, &rec, theirs, sizeof theirs);
        CHECK(n1 > 0);
        CHECK_EQ_I(n1, n2);
        CHECK(n1 == n2 && memcmp(ours, theirs, (size_t)n1) == 0);
    }
    /* too small a buffer: -1, never a partial length */
    nx_codec_record_t rec = t_random_record();
    uint8_t small[8];
    CHECK_EQ_I(nx_codec_encode_event(&rec, -1, small, sizeof small), -1);
    avro_schema_decref(schema);
}

static void test_round_trip(void) {
    char err[256];
    nx_codec_t *raw = nx_codec_new(t_config("raw"), err, sizeof err);
    nx_codec_t *cfl = nx_codec_new(t_config("confluent"), err, sizeof err);
    CHECK(raw && cfl);
    if (!raw || !cfl)
        return;
    CHECK(nx_codec_add_schema(cfl, 42, t_event_schema, err, sizeof err) == 0);
    nx_codec_record_t rec = {.user_id = "u-1",
                             .ts_ms = 1700000000123LL,
                             .event_type = "purchase",
                             .item_id = "item-9",
                             .category = "shoes",
                             .price = 19.99,
                             .has_quantity = 1,
                             .quantity = 3,
                             .session_id = "sess-x"};
    uint8_t buf[256];
    nx_event_t ev;
    int64_t n = nx_codec_encode_event(&rec, -1, buf, sizeof buf);
    CHECK_REASON(nx_codec_decode(raw, buf, (size_t)n, -1, T_NOW_MS, &ev), NX_CODEC_OK);
    CHECK_EQ_U(ev.user_id_len, 3);
    CHECK(ev.user_id == (const char *)buf + 1); /* borrowed from the payload */
    CHECK_EQ_I(ev.ts_ms, 1700000000123LL);
    CHECK_EQ_I(ev.type, 2);
    CHECK_EQ_U(ev.item, nx_event_id_hash("item-9", 6));
    CHECK_EQ_U(ev.category, nx_event_id_hash("shoes", 5));
    CHECK_EQ_U(ev.session, nx_event_id_hash("sess-x", 6));
    CHECK(ev.price == 19.99);
    CHECK_EQ_I(ev.quantity, 3);
    CHECK_EQ_I(ev.topic, 0);

    n = nx_codec_encode_event(&rec, 42, buf, sizeof buf);
    CHECK_EQ_I(buf[0], 0);
    CHECK_EQ_I(buf[4], 42);
    CHECK_REASON(nx_codec_decode(cfl, buf, (size_t)n, -1, T_NOW_MS, &ev), NX_CODEC_OK);
    CHECK_EQ_I(ev.type, 2);
    CHECK(ev.price == 19.99);

    /* absent optionals */
    nx_codec_record_t bare = {
        .user_id = "u", .ts_ms = 1700000000000LL, .event_type = "pv", .price = NAN};
    n = nx_codec_encode_event(&bare, -1, buf, sizeof buf);
    CHECK_REASON(nx_codec_decode(raw, buf, (size_t)n, -1, T_NOW_MS, &ev), NX_CODEC_OK);
    CHECK_EQ_I(ev.type, 0);
    CHECK_EQ_U(ev.item, 0);
    CHECK_EQ_U(ev.category, 0);
    CHECK_EQ_U(ev.session, 0);
    CHECK(isnan(ev.price));
    CHECK_EQ_I(ev.quantity, 0);

    /* counters: 3 ok so far on both codecs together */
    CHECK_EQ_U(nx_codec_counters(raw)[NX_CODEC_OK], 2);
    CHECK_EQ_U(nx_codec_counters(cfl)[NX_CODEC_OK], 1);
    nx_codec_destroy(raw);
    nx_codec_destroy(cfl);
}

/* Random valid events under each writer schema: ours == Avro C's reading. */
static void test_reference_twin(void) {
    char err[256], uid[NX_EVENT_USER_ID_MAX];
    nx_codec_t *codec = nx_codec_new(t_config("confluent"), err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    const char *schemas[4] = {t_event_schema, evolved[0], evolved[1], evolved[2]};
    for (int s = 0; s < 4; s++) {
        avro_schema_t schema;
        CHECK(avro_schema_from_json_length(schemas[s], strlen(schemas[s]), &schema) == 0);
        CHECK(nx_codec_add_schema(codec, (uint32_t)(100 + s), schemas[s], err, sizeof err) == 0);
        int n_ok = 0;
        for (int i = 0; i < 2000; i++) {
            nx_codec_record_t rec = t_random_record();
            if (!t_has_field(schema, "event_type"))
                rec.event_type = "click";
            uint8_t buf[4096];
            int64_t n = t_avro_encode(schema, &rec, buf + 5, sizeof buf - 5);
            CHECK(n > 0);
            if (n <= 0)
                continue;
            buf[0] = 0;
            buf[1] = buf[2] = buf[3] = 0;
            buf[4] = (uint8_t)(100 + s);
            nx_event_t ev, want;
            nx_codec_reason_t r = nx_codec_decode(codec, buf, (size_t)n + 5, -1, T_NOW_MS, &ev);
            CHECK(ref_decode(schema, codec, buf + 5, (size_t)n, &want, uid, sizeof uid) == 0);
            if (r != NX_CODEC_OK) {
                fprintf(stderr, "schema %d event %d: %s\n", s, i, nx_codec_reason_name(r));
                t_failures++;
                continue;
            }
            check_same(&ev, &want, uid);
            n_ok++;
        }
        CHECK_EQ_I(n_ok, 2000);
        avro_schema_decref(schema);
    }
    nx_codec_destroy(codec);
}

/* A payload from hand-written bytes under a schema registered as id 1. */
static nx_codec_reason_t decode_bytes(nx_codec_t *codec, uint32_t id, const uint8_t *body,
                                      size_t n) {
    uint8_t buf[512] = {0, (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8),
                        (uint8_t)id};
    nx_event_t ev;
    memcpy(buf + 5, body, n);
    return nx_codec_decode(codec, buf, n + 5, -1, T_NOW_MS, &ev);
}

static nx_codec_reason_t decode_rec(nx_codec_t *codec, const nx_codec_record_t *rec) {
    uint8_t buf[4096];
    nx_event_t ev;
    int64_t n = nx_codec_encode_event(rec, 1, buf, sizeof buf);
    return nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev);
}

static void test_reasons(void) {
    char err[256];
    nx_codec_t *codec = nx_codec_new(t_config("confluent"), err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    CHECK(nx_codec_add_schema(codec, 1, t_event_schema, err, sizeof err) == 0);
    const nx_codec_record_t good = {.user_id = "u-1",
                                    .ts_ms = 1700000000000LL,
                                    .event_type = "click",
                                    .item_id = "i",
                                    .price = 5.0};
    nx_codec_record_t rec;
    uint8_t buf[4096];
    nx_event_t ev;
    int64_t n = nx_codec_encode_event(&good, 1, buf, sizeof buf);
    CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev), NX_CODEC_OK);

    /* every strict prefix is truncated */
    for (int64_t k = 0; k < n; k++) {
        nx_codec_reason_t r = nx_codec_decode(codec, buf, (size_t)k, -1, T_NOW_MS, &ev);
        CHECK_REASON(r, NX_CODEC_TRUNCATED);
    }
    buf[n] = 0;
    CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n + 1, -1, T_NOW_MS, &ev),
                 NX_CODEC_TRAILING_BYTES);
    buf[0] = 1;
    CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev), NX_CODEC_BAD_MAGIC);
    buf[0] = 0;
    buf[4] = 99;
    CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev),
                 NX_CODEC_UNKNOWN_SCHEMA_ID);

    /* hand-written bodies: user "u" (len 1 = 0x02), ts, type "click" */
    const uint8_t head[] = {0x02, 'u', 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, /* ts 1700000000000 */
                            0x0a, 'c', 'l',  'i',  'c',  'k'};
    uint8_t body[64];
    memcpy(body, head, sizeof head);
    /* item union index 2 (zig-zag 4) and -1 (zig-zag 1) */
    body[sizeof head] = 0x04;
    CHECK_REASON(decode_bytes(codec, 1, body, sizeof head + 1), NX_CODEC_BAD_UNION_INDEX);
    body[sizeof head] = 0x01;
    CHECK_REASON(decode_bytes(codec, 1, body, sizeof head + 1), NX_CODEC_BAD_UNION_INDEX);
    /* user id of negative length (zig-zag 1 = -1) */
    uint8_t neg[] = {0x01, 'u'};
    CHECK_REASON(decode_bytes(codec, 1, neg, sizeof neg), NX_CODEC_NEGATIVE_LENGTH);
    /* an 11-byte varint */
    uint8_t longv[12];
    memset(longv, 0xff, sizeof longv);
    CHECK_REASON(decode_bytes(codec, 1, longv, sizeof longv), NX_CODEC_BAD_VARINT);
    /* quantity 2^31 in an int field: zig-zag 2^32 = 0x80 0x80 0x80 0x80 0x10 */
    uint8_t qty[64];
    memcpy(qty, head, sizeof head);
    const uint8_t qtail[] = {0x00, 0x00, 0x00, 0x02, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00};
    memcpy(qty + sizeof head, qtail, sizeof qtail);
    CHECK_REASON(decode_bytes(codec, 1, qty, sizeof head + sizeof qtail),
                 NX_CODEC_INT_OUT_OF_RANGE);
    /* and a negative quantity is well formed but bad */
    qty[sizeof head + 4] = 0x01; /* -1 */
    qty[sizeof head + 5] = 0x00; /* session null */
    CHECK_REASON(decode_bytes(codec, 1, qty, sizeof head + 6), NX_CODEC_BAD_QUANTITY);

    /* semantic classes through the encoder */
    char longs[2048];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    rec = good;
    rec.item_id = longs; /* 2047 > max_string_len 1024 */
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_LENGTH_OVER_CAP);
    rec = good;
    rec.event_type = "teleport";
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_UNKNOWN_EVENT_TYPE);
    rec = good;
    rec.event_type = "fav";
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_SKIPPED);
    rec = good;
    rec.ts_ms = NX_CODEC_MIN_TS_MS - 1;
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_TS_TOO_OLD);
    rec.ts_ms = NX_CODEC_MIN_TS_MS;
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_OK);
    rec.ts_ms = T_NOW_MS + 24LL * 3600 * 1000;
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_OK);
    rec.ts_ms = T_NOW_MS + 24LL * 3600 * 1000 + 1;
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_TS_IN_FUTURE);
    rec = good;
    rec.user_id = "";
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_EMPTY_USER_ID);
    longs[65] = '\0'; /* 65 > max_user_id_len 64 */
    rec.user_id = longs;
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_USER_ID_TOO_LONG);
    longs[64] = '\0';
    CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_OK);
    rec = good;
    const double bad_prices[] = {-0.01, INFINITY, -INFINITY, 1e6 + 1};
    for (size_t i = 0; i < 4; i++) {
        rec.price = bad_prices[i];
        CHECK_REASON(decode_rec(codec, &rec), NX_CODEC_BAD_PRICE);
    }
    /* a NaN price on the wire (the encoder writes NaN as null) */
    uint8_t nanp[64];
    memcpy(nanp, head, sizeof head);
    const uint8_t ntail[] = {0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0x00, 0x00};
    memcpy(nanp + sizeof head, ntail, sizeof ntail);
    CHECK_REASON(decode_bytes(codec, 1, nanp, sizeof head + sizeof ntail), NX_CODEC_BAD_PRICE);

    /* schemas for the remaining classes */
    static const char no_ts[] = "{\"type\":\"record\",\"name\":\"A\",\"fields\":["
                                "{\"name\":\"user_id\",\"type\":\"string\"},"
                                "{\"name\":\"event_type\",\"type\":\"string\"}]}";
    static const char str_ts[] = "{\"type\":\"record\",\"name\":\"B\",\"fields\":["
                                 "{\"name\":\"user_id\",\"type\":\"string\"},"
                                 "{\"name\":\"ts\",\"type\":\"string\"},"
                                 "{\"name\":\"event_type\",\"type\":\"string\"}]}";
    static const char opt_user[] = "{\"type\":\"record\",\"name\":\"C\",\"fields\":["
                                   "{\"name\":\"user_id\",\"type\":[\"null\",\"string\"]},"
                                   "{\"name\":\"ts\",\"type\":\"long\"},"
                                   "{\"name\":\"event_type\",\"type\":{\"type\":\"enum\","
                                   "\"name\":\"K\",\"symbols\":[\"click\",\"buy\"]}},"
                                   "{\"name\":\"flag\",\"type\":\"boolean\"},"
                                   "{\"name\":\"xs\",\"type\":{\"type\":\"array\",\"items\":"
                                   "\"null\"}}]}";
    static const char deep[] = "{\"type\":\"record\",\"name\":\"D\",\"fields\":["
                               "{\"name\":\"next\",\"type\":[\"null\",\"D\"]}]}";
    CHECK(nx_codec_add_schema(codec, 2, no_ts, err, sizeof err) == 0);
    CHECK(nx_codec_add_schema(codec, 3, str_ts, err, sizeof err) == 0);
    CHECK(nx_codec_add_schema(codec, 4, opt_user, err, sizeof err) == 0);
    CHECK(nx_codec_add_schema(codec, 5, deep, err, sizeof err) == 0);
    const uint8_t b2[] = {0x02, 'u', 0x0a, 'c', 'l', 'i', 'c', 'k'};
    CHECK_REASON(decode_bytes(codec, 2, b2, sizeof b2), NX_CODEC_MISSING_FIELD);
    const uint8_t b3[] = {0x02, 'u', 0x02, '1', 0x0a, 'c', 'l', 'i', 'c', 'k'};
    CHECK_REASON(decode_bytes(codec, 3, b3, sizeof b3), NX_CODEC_WRONG_TYPE);
    /* user null, ts, enum 1 (buy), flag 0, empty array */
    uint8_t b4[] = {0x00, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, 0x02, 0x00, 0x00};
    CHECK_REASON(decode_bytes(codec, 4, b4, sizeof b4), NX_CODEC_NULL_FIELD);
    const uint8_t b4ok[] = {0x02, 0x02, 'u', 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, 0x02, 0x00, 0x00};
    CHECK_REASON(decode_bytes(codec, 4, b4ok, sizeof b4ok), NX_CODEC_OK);
    uint8_t b4e[sizeof b4ok];
    memcpy(b4e, b4ok, sizeof b4ok);
    b4e[9] = 0x04; /* enum index 2 of 2 symbols */
    CHECK_REASON(decode_bytes(codec, 4, b4e, sizeof b4e), NX_CODEC_BAD_ENUM_INDEX);
    memcpy(b4e, b4ok, sizeof b4ok);
    b4e[10] = 0x02; /* boolean 2 */
    CHECK_REASON(decode_bytes(codec, 4, b4e, sizeof b4e), NX_CODEC_BAD_BOOLEAN);
    /* nesting 40 deep through the recursive union */
    uint8_t b5[64];
    memset(b5, 0x02, 40);
    b5[40] = 0x00;
    CHECK_REASON(decode_bytes(codec, 5, b5, 41), NX_CODEC_TOO_DEEP);

    /* the named counters moved: one per class at least */
    const uint64_t *c = nx_codec_counters(codec);
    for (int r = NX_CODEC_TRUNCATED; r <= NX_CODEC_SKIPPED; r++) {
        if (r == NX_CODEC_BAD_NUMBER || r == NX_CODEC_BAD_TIMESTAMP || r == NX_CODEC_BAD_ROW)
            continue; /* CSV only: test_replay_io */
        if (r == NX_CODEC_COLLECTION_OVER_CAP)
            continue; /* test_hostile */
        if (c[r] == 0) {
            fprintf(stderr, "reason %s never counted\n",
                    nx_codec_reason_name((nx_codec_reason_t)r));
            t_failures++;
        }
    }
    /* names are stable and distinct */
    CHECK(strcmp(nx_codec_reason_name(NX_CODEC_BAD_UNION_INDEX), "bad_union_index") == 0);
    CHECK(strcmp(nx_codec_reason_name(NX_CODEC_N_REASONS), "unknown") == 0);
    for (int a = 0; a < NX_CODEC_N_REASONS; a++) {
        CHECK(nx_codec_reason_name((nx_codec_reason_t)a) != NULL);
        for (int b = a + 1; b < NX_CODEC_N_REASONS; b++)
            CHECK(strcmp(nx_codec_reason_name((nx_codec_reason_t)a),
                         nx_codec_reason_name((nx_codec_reason_t)b)) != 0);
    }
    nx_codec_destroy(codec);
}

/* 5-byte messages asking for 67 million array items or a 2^62-byte string
 * are rejected, and nothing is allocated on the way. */
static void test_hostile(void) {
    char err[256];
    nx_codec_t *codec = nx_codec_new(t_config("confluent"), err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    static const char arr[] = "{\"type\":\"record\",\"name\":\"H\",\"fields\":["
                              "{\"name\":\"xs\",\"type\":{\"type\":\"array\",\"items\":\"null\"}},"
                              "{\"name\":\"user_id\",\"type\":\"string\"}]}";
    CHECK(nx_codec_add_schema(codec, 9, arr, err, sizeof err) == 0);
    /* zig-zag 2^26 items: 0x80 0x80 0x80 0x40 */
    const uint8_t huge[] = {0x80, 0x80, 0x80, 0x40, 0x00};
    const uint8_t negblk[] = {0xff, 0xff, 0xff, 0x3f, 0x00}; /* count -(2^26), block size 0 */
    const uint8_t minblk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    const uint8_t bigstr[] = {0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    struct mallinfo2 before = mallinfo2();
    nx_codec_reason_t r1 = decode_bytes(codec, 9, huge, sizeof huge);
    nx_codec_reason_t r2 = decode_bytes(codec, 9, negblk, sizeof negblk);
    nx_codec_reason_t r3 = decode_bytes(codec, 9, minblk, sizeof minblk);
    nx_codec_reason_t r4 = decode_bytes(codec, 9, bigstr, sizeof bigstr);
    struct mallinfo2 after = mallinfo2();
    CHECK_REASON(r1, NX_CODEC_COLLECTION_OVER_CAP);
    CHECK_REASON(r2, NX_CODEC_COLLECTION_OVER_CAP);
    CHECK_REASON(r3, NX_CODEC_COLLECTION_OVER_CAP);
    CHECK_REASON(r4, NX_CODEC_TRUNCATED);
    CHECK_EQ_U(after.uordblks, before.uordblks);
    CHECK_EQ_U(after.hblkhd, before.hblkhd);
    nx_codec_destroy(codec);
}

/* Mutated payloads: whenever the walk accepts the structure, Avro C reads
 * the same bytes without error and agrees on the fields. */
static void test_mutations(void) {
    char err[256], uid[NX_EVENT_USER_ID_MAX];
    nx_codec_t *codec = nx_codec_new(t_config("confluent"), err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    avro_schema_t schema;
    CHECK(avro_schema_from_json_length(evolved[0], strlen(evolved[0]), &schema) == 0);
    CHECK(nx_codec_add_schema(codec, 1, evolved[0], err, sizeof err) == 0);
    int accepted = 0, rejected = 0;
    for (int i = 0; i < 20000; i++) {
        nx_codec_record_t rec = t_random_record();
        uint8_t buf[4096] = {0, 0, 0, 0, 1};
        int64_t n = t_avro_encode(schema, &rec, buf + 5, sizeof buf - 5);
        if (n <= 0)
            continue;
        int flips = 1 + (int)(t_rand() % 3);
        for (int k = 0; k < flips; k++)
            buf[5 + t_rand() % (uint64_t)n] ^= (uint8_t)(1u << (t_rand() % 8));
        size_t len = (size_t)n + 5;
        if (t_rand() % 4 == 0)
            len -= t_rand() % (uint64_t)n;
        nx_event_t ev, want;
        nx_codec_reason_t r = nx_codec_decode(codec, buf, len, -1, T_NOW_MS, &ev);
        if (nx_codec_reason_is_structural(r)) {
            rejected++;
            continue;
        }
        accepted++;
        int rc = ref_decode(schema, codec, buf + 5, len - 5, &want, uid, sizeof uid);
        CHECK_EQ_I(rc, 0);
        if (r == NX_CODEC_OK && rc == 0)
            check_same(&ev, &want, uid);
    }
    CHECK(accepted > 1000);
    CHECK(rejected > 1000);
    avro_schema_decref(schema);
    nx_codec_destroy(codec);
}

static void test_config_errors(void) {
    char err[256];
    nx_config_t *cfg = t_config("raw");
    cfg->input.field_timestamp = (char *)"when"; /* not in event.avsc */
    CHECK(nx_codec_new(cfg, err, sizeof err) == NULL);
    CHECK(strstr(err, "when") != NULL);
    cfg = t_config("raw");
    cfg->input.type_map.val[0] = (char *)"teleport";
    CHECK(nx_codec_new(cfg, err, sizeof err) == NULL);
    CHECK(strstr(err, "teleport") != NULL);
    cfg = t_config("avro");
    CHECK(nx_codec_new(cfg, err, sizeof err) == NULL);
    cfg = t_config("raw");
    cfg->input.writer_schema = (char *)"/nonexistent/x.avsc";
    CHECK(nx_codec_new(cfg, err, sizeof err) == NULL);
    nx_codec_destroy(NULL);
}

/* Fixed types per topic: the type field is not needed. */
static void test_topic_types(void) {
    char err[256];
    nx_config_t *cfg = t_config("confluent");
    cfg->kafka.input_topics.n = 2;
    cfg->kafka.input_topics.v[0] = (char *)"clicks";
    cfg->kafka.input_topics.v[1] = (char *)"purchases";
    cfg->input.topic_types.n = 1;
    cfg->input.topic_types.key[0] = (char *)"purchases";
    cfg->input.topic_types.val[0] = (char *)"purchase";
    nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    static const char no_type[] = "{\"type\":\"record\",\"name\":\"P\",\"fields\":["
                                  "{\"name\":\"user_id\",\"type\":\"string\"},"
                                  "{\"name\":\"ts\",\"type\":\"long\"}]}";
    CHECK(nx_codec_add_schema(codec, 1, no_type, err, sizeof err) == 0);
    uint8_t buf[] = {0, 0, 0, 0, 1, 0x02, 'u', 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62};
    nx_event_t ev;
    CHECK_REASON(nx_codec_decode(codec, buf, sizeof buf, 1, T_NOW_MS, &ev), NX_CODEC_OK);
    CHECK_EQ_I(ev.type, 2);
    CHECK_EQ_I(ev.topic, 1);
    CHECK_REASON(nx_codec_decode(codec, buf, sizeof buf, 0, T_NOW_MS, &ev), NX_CODEC_MISSING_FIELD);
    nx_codec_destroy(codec);
}

/* A schema source (a registry's stand-in): id 1 pending twice, then
 * found; every other id absent. */
static int source_calls;
static nx_codec_lookup_t source_lookup(void *opaque, uint32_t id, const char **json,
                                       int64_t *wait_ms) {
    source_calls++;
    if (id != 1)
        return NX_CODEC_LOOKUP_ABSENT;
    if (source_calls <= 2) {
        *wait_ms = 25;
        return NX_CODEC_LOOKUP_PENDING;
    }
    *json = opaque;
    return NX_CODEC_LOOKUP_FOUND;
}

/* With a source: PENDING (not an error, not cached) until the source has
 * the schema, which is then compiled once; an absent id is unknown and
 * asked again each time (the source may get it later). */
static void test_source(void) {
    char err[256];
    nx_codec_t *codec = nx_codec_new(t_config("confluent"), err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    nx_codec_source_t src = {source_lookup, (void *)t_event_schema};
    nx_codec_set_source(codec, &src);
    nx_codec_record_t rec = {
        .user_id = "u1", .ts_ms = 1700000000000LL, .event_type = "click", .price = NAN};
    uint8_t buf[256];
    nx_event_t ev;
    int64_t n = nx_codec_encode_event(&rec, 1, buf, sizeof buf);
    CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev),
                 NX_CODEC_SCHEMA_PENDING);
    CHECK_EQ_I(nx_codec_pending_wait_ms(codec), 25);
    CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev),
                 NX_CODEC_SCHEMA_PENDING);
    CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev), NX_CODEC_OK);
    CHECK(ev.user_id_len == 2 && memcmp(ev.user_id, "u1", 2) == 0);
    for (int i = 0; i < 10; i++)
        CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev), NX_CODEC_OK);
    CHECK_EQ_I(source_calls, 3);
    n = nx_codec_encode_event(&rec, 2, buf, sizeof buf);
    for (int i = 0; i < 3; i++)
        CHECK_REASON(nx_codec_decode(codec, buf, (size_t)n, -1, T_NOW_MS, &ev),
                     NX_CODEC_UNKNOWN_SCHEMA_ID);
    CHECK_EQ_I(source_calls, 6);
    const uint64_t *cnt = nx_codec_counters(codec);
    CHECK_EQ_U(cnt[NX_CODEC_SCHEMA_PENDING], 2);
    CHECK_EQ_U(cnt[NX_CODEC_UNKNOWN_SCHEMA_ID], 3);
    CHECK_EQ_U(cnt[NX_CODEC_OK], 11);
    CHECK(!nx_codec_reason_is_structural(NX_CODEC_SCHEMA_PENDING));
    CHECK(strcmp(nx_codec_reason_name(NX_CODEC_SCHEMA_PENDING), "schema_pending") == 0);
    nx_codec_destroy(codec);
}

int main(void) {
    test_encoder_matches_avro_c();
    test_round_trip();
    test_reference_twin();
    test_reasons();
    test_hostile();
    test_mutations();
    test_config_errors();
    test_topic_types();
    test_source();
    if (t_failures) {
        fprintf(stderr, "test_codec: %d failure(s)\n", t_failures);
        return 1;
    }
    printf("test_codec: ok\n");
    return 0;
}
