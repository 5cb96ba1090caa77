/*
 * fuzz_codec.c: libFuzzer target over framing + validation + decoding.
 *
 * Input: one selector byte, then the message. Selector bit 0: 0 = Confluent
 * framing through nx_codec_decode (schema ids 1..FUZZ_N_SCHEMAS registered,
 * so the fuzzer also meets bad magic, unknown ids and short headers);
 * 1 = an unframed datum of schema (selector >> 1) % FUZZ_N_SCHEMAS through
 * nx_codec_decode_datum, as OCF replay does.
 *
 * Oracle: besides ASan/UBSan, every payload the walk accepts structurally is
 * handed to Avro C's own decoder, which must read it without error (that is
 * the promise that makes Avro C safe behind the walk), and an accepted
 * event's user id and timestamp must be what Avro C reads.
 */
#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz_schemas.h"

static nx_codec_t *codec;
static avro_schema_t schemas[FUZZ_N_SCHEMAS];
static avro_value_iface_t *ifaces[FUZZ_N_SCHEMAS];

static void setup(void) {
    static nx_config_t cfg;
    static char *types[] = {"click", "cart", "purchase"};
    char err[256];
    cfg.input.framing = "confluent";
    cfg.input.schema_dir = "";
    cfg.input.field_user_id = "user_id";
    cfg.input.field_timestamp = "ts";
    cfg.input.field_type = "event_type";
    cfg.input.field_item = "item_id";
    cfg.input.field_category = "category";
    cfg.input.field_price = "price";
    cfg.input.field_quantity = "quantity";
    cfg.input.field_session = "session_id";
    cfg.input.type_map.n = 2;
    cfg.input.type_map.key[0] = "view";
    cfg.input.type_map.val[0] = "click";
    cfg.input.type_map.key[1] = "fav";
    cfg.input.type_map.val[1] = "";
    cfg.input.max_user_id_len = 64;
    cfg.input.max_string_len = 256;
    cfg.input.max_collection = 1000;
    cfg.input.max_price = 1e6;
    cfg.input.max_future_ms = 86400000;
    cfg.event_types.n = 3;
    for (int i = 0; i < 3; i++)
        cfg.event_types.v[i] = types[i];
    codec = nx_codec_new(&cfg, err, sizeof err);
    if (!codec) {
        fprintf(stderr, "fuzz_codec: %s\n", err);
        abort();
    }
    for (int i = 0; i < FUZZ_N_SCHEMAS; i++) {
        if (nx_codec_add_schema(codec, (uint32_t)(i + 1), fuzz_schemas[i], err, sizeof err) < 0 ||
            avro_schema_from_json_length(fuzz_schemas[i], strlen(fuzz_schemas[i]), &schemas[i]) !=
                0) {
            fprintf(stderr, "fuzz_codec: schema %d: %s\n", i, err);
            abort();
        }
        ifaces[i] = avro_generic_class_from_schema(schemas[i]);
    }
}

/* Avro C must read what the walk accepted. */
static void reference(int k, const uint8_t *datum, size_t len, nx_codec_reason_t r,
                      const nx_event_t *ev) {
    avro_value_t val, f, b;
    avro_reader_t reader = avro_reader_memory((const char *)datum, (int64_t)len);
    avro_generic_value_new(ifaces[k], &val);
    if (avro_value_read(reader, &val) != 0) {
        fprintf(stderr, "walk accepted (%s) what Avro C rejects: %s\n", nx_codec_reason_name(r),
                avro_strerror());
        abort();
    }
    if (r == NX_CODEC_OK) {
        const char *s;
        size_t sl;
        int64_t ts;
        /* a record the codec accepted reads back: any failure is a bug */
        if (avro_value_get_by_name(&val, "user_id", &f, NULL) != 0)
            abort();
        if (avro_value_get_type(&f) == AVRO_UNION) {
            if (avro_value_get_current_branch(&f, &b) != 0)
                abort();
            f = b;
        }
        if (avro_value_get_type(&f) == AVRO_STRING) {
            if (avro_value_get_string(&f, &s, &sl) != 0)
                abort();
            sl--;
        } else if (avro_value_get_bytes(&f, (const void **)&s, &sl) != 0) {
            abort();
        }
        if (sl != ev->user_id_len || memcmp(s, ev->user_id, sl) != 0)
            abort();
        if (avro_value_get_by_name(&val, "ts", &f, NULL) != 0)
            abort();
        if (avro_value_get_type(&f) == AVRO_UNION) {
            if (avro_value_get_current_branch(&f, &b) != 0)
                abort();
            f = b;
        }
        if (avro_value_get_long(&f, &ts) != 0 || ts != ev->ts_ms)
            abort();
    }
    avro_reader_free(reader);
    avro_value_decref(&val);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!codec)
        setup();
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *msg = data + 1;
    size_t len = size - 1;
    nx_event_t ev;
    /* 1704067200000 = 2024-01-01, a fixed "now" */
    if ((sel & 1) == 0) {
        nx_codec_reason_t r = nx_codec_decode(codec, msg, len, -1, 1704067200000LL, &ev);
        if (!nx_codec_reason_is_structural(r) && len >= 5) {
            uint32_t id =
                (uint32_t)msg[1] << 24 | (uint32_t)msg[2] << 16 | (uint32_t)msg[3] << 8 | msg[4];
            if (id < 1 || id > FUZZ_N_SCHEMAS)
                abort(); /* only registered ids get past the framing */
            reference((int)id - 1, msg + 5, len - 5, r, &ev);
        }
    } else {
        int k = (sel >> 1) % FUZZ_N_SCHEMAS;
        static nx_codec_prog_t *progs[FUZZ_N_SCHEMAS];
        if (!progs[k]) {
            char err[256];
            progs[k] =
                nx_codec_prog_new(codec, fuzz_schemas[k], strlen(fuzz_schemas[k]), err, sizeof err);
            if (!progs[k])
                abort();
        }
        size_t used = 0;
        nx_codec_reason_t r =
            nx_codec_decode_datum(codec, progs[k], msg, len, -1, 1704067200000LL, &ev, &used);
        if (!nx_codec_reason_is_structural(r)) {
            if (used > len)
                abort();
            reference(k, msg, used, r, &ev);
        }
    }
    return 0;
}
