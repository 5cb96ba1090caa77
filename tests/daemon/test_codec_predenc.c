/*
 * test_codec_predenc.c: the prediction encoder, decoded by Avro C against
 * conf/schemas/prediction.avsc (the reference), plus JSON lines and
 * buffer bounds.
 */
#include "predenc.h"
#include "test_codec_util.h"

static char *read_text(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *b = calloc(1, 1 << 16);
    if (b && fread(b, 1, (1 << 16) - 1, fp) == 0) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    return b;
}

static void check_with_avro_c(avro_schema_t schema, const nx_predenc_t *enc,
                              const nx_prediction_t *pred, const uint8_t *buf, size_t len) {
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t val, f, m;
    avro_reader_t reader = avro_reader_memory((const char *)buf, (int64_t)len);
    avro_generic_value_new(iface, &val);
    CHECK(avro_value_read(reader, &val) == 0);
    const char *s = "";
    size_t sl = 0;
    int64_t l = 0;
    int32_t i32 = 0;
    CHECK(avro_value_get_by_name(&val, "user_id", &f, NULL) == 0);
    avro_value_get_string(&f, &s, &sl);
    CHECK(sl - 1 == pred->user_id_len && memcmp(s, pred->user_id, sl - 1) == 0);
    avro_value_get_by_name(&val, "event_ts", &f, NULL);
    avro_value_get_long(&f, &l);
    CHECK_EQ_I(l, pred->event_ts_ms);
    avro_value_get_by_name(&val, "topic", &f, NULL);
    avro_value_get_string(&f, &s, &sl);
    CHECK(strcmp(s, pred->topic) == 0);
    avro_value_get_by_name(&val, "partition", &f, NULL);
    avro_value_get_int(&f, &i32);
    CHECK_EQ_I(i32, pred->partition);
    avro_value_get_by_name(&val, "offset", &f, NULL);
    avro_value_get_long(&f, &l);
    CHECK_EQ_I(l, pred->offset);
    avro_value_get_by_name(&val, "predicted_at", &f, NULL);
    avro_value_get_long(&f, &l);
    CHECK_EQ_I(l, pred->predicted_at_ms);
    avro_value_get_by_name(&val, "horizon_ms", &f, NULL);
    avro_value_get_long(&f, &l);
    CHECK_EQ_I(l, pred->horizon_ms);
    avro_value_get_by_name(&val, "probabilities", &m, NULL);
    size_t n = 0;
    avro_value_get_size(&m, &n);
    CHECK_EQ_I(n, nx_predenc_n_classes(enc));
    int best = 0;
    for (int i = 0; i < nx_predenc_n_classes(enc); i++) {
        float p;
        CHECK(avro_value_get_by_name(&m, nx_predenc_class(enc, i), &f, NULL) == 0);
        avro_value_get_float(&f, &p);
        CHECK(memcmp(&p, &pred->probs[i], sizeof p) == 0); /* bit-exact */
        if (pred->probs[i] > pred->probs[best])
            best = i;
    }
    avro_value_get_by_name(&val, "next_action", &f, NULL);
    avro_value_get_string(&f, &s, &sl);
    CHECK(strcmp(s, nx_predenc_class(enc, best)) == 0);
    avro_value_get_by_name(&val, "model_version", &f, NULL);
    avro_value_get_long(&f, &l);
    CHECK_EQ_I(l, pred->model_version);
    int e = -1;
    avro_value_get_by_name(&val, "model_state", &f, NULL);
    avro_value_get_enum(&f, &e);
    CHECK_EQ_I(e, (int)pred->model_state);
    avro_value_t u, arr, item, fld;
    int disc = -1;
    avro_value_get_by_name(&val, "reasons", &u, NULL);
    avro_value_get_discriminant(&u, &disc);
    CHECK_EQ_I(disc, pred->reasons ? 1 : 0);
    if (pred->reasons && avro_value_get_current_branch(&u, &arr) == 0) {
        size_t nr = 0;
        avro_value_get_size(&arr, &nr);
        CHECK_EQ_I(nr, pred->n_reasons);
        for (size_t i = 0; i < nr && (int)i < pred->n_reasons; i++) {
            float v;
            avro_value_get_by_index(&arr, i, &item, NULL);
            avro_value_get_by_name(&item, "feature", &fld, NULL);
            avro_value_get_string(&fld, &s, &sl);
            CHECK(strcmp(s, pred->reasons[i].feature) == 0);
            avro_value_get_by_name(&item, "value", &fld, NULL);
            avro_value_get_float(&fld, &v);
            CHECK(v == pred->reasons[i].value);
            avro_value_get_by_name(&item, "contribution", &fld, NULL);
            avro_value_get_float(&fld, &v);
            CHECK(v == pred->reasons[i].contribution);
        }
    }
    avro_reader_free(reader);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
}

/* The prediction schema before model_state and reasons were added: its
 * readers must keep reading the records written now (Avro schema
 * resolution: writer = today's schema, reader = this one). */
static const char old_schema_json[] =
    "{\"type\":\"record\",\"name\":\"Prediction\",\"namespace\":\"io.nextact\",\"fields\":[{"
    "\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"event_ts\",\"type\":{\"type\":\"long\","
    "\"logicalType\":\"timestamp-millis\"}},{\"name\":\"topic\",\"type\":\"string\"},{\"name\":"
    "\"partition\",\"type\":\"int\"},{\"name\":\"offset\",\"type\":\"long\"},{\"name\":\"predicted_"
    "at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},{\"name\":\"horizon_"
    "ms\",\"type\":\"long\"},{\"name\":\"probabilities\",\"type\":{\"type\":\"map\",\"values\":"
    "\"float\"}},{\"name\":\"next_action\",\"type\":\"string\"},{\"name\":\"model_version\","
    "\"type\":\"long\"}]}";

static void check_old_reader(avro_schema_t writer, const nx_predenc_t *enc,
                             const nx_prediction_t *pred) {
    avro_schema_t old = NULL;
    CHECK(avro_schema_from_json_length(old_schema_json, strlen(old_schema_json), &old) == 0);
    if (!old)
        return;
    uint8_t buf[512];
    int64_t n = nx_predenc_avro(enc, pred, 0, buf, sizeof buf);
    CHECK(n > 0);
    avro_value_iface_t *resolver = avro_resolved_writer_new(writer, old);
    avro_value_iface_t *iface = avro_generic_class_from_schema(old);
    CHECK(resolver != NULL && iface != NULL);
    avro_value_t dest, resolved, f;
    avro_generic_value_new(iface, &dest);
    avro_resolved_writer_new_value(resolver, &resolved);
    avro_resolved_writer_set_dest(&resolved, &dest);
    avro_reader_t reader = avro_reader_memory((const char *)buf, n);
    CHECK(avro_value_read(reader, &resolved) == 0);
    int64_t l = -1;
    avro_value_get_by_name(&dest, "model_version", &f, NULL);
    avro_value_get_long(&f, &l);
    CHECK_EQ_I(l, pred->model_version);
    const char *s = NULL;
    size_t sl = 0;
    avro_value_get_by_name(&dest, "next_action", &f, NULL);
    avro_value_get_string(&f, &s, &sl);
    CHECK(s != NULL && strcmp(s, "purchase") == 0);
    avro_reader_free(reader);
    avro_value_decref(&resolved);
    avro_value_decref(&dest);
    avro_value_iface_decref(iface);
    avro_value_iface_decref(resolver);
    avro_schema_decref(old);
}

int main(void) {
    char err[256];
    char *json = read_text(NX_SOURCE_DIR "/conf/schemas/prediction.avsc");
    avro_schema_t schema = NULL;
    CHECK(json != NULL);
    if (!json || avro_schema_from_json_length(json, strlen(json), &schema) != 0) {
        fprintf(stderr, "prediction.avsc: %s\n", avro_strerror());
        return 1;
    }
    nx_config_t *cfg = t_config("raw");
    cfg->output.format = (char *)"confluent";
    cfg->output.schema_id = 258; /* 0x00000102 */
    nx_predenc_t *enc = nx_predenc_new(cfg, err, sizeof err);
    CHECK(enc != NULL);
    if (!enc)
        return 1;
    CHECK_EQ_I(nx_predenc_n_classes(enc), 4);
    CHECK(strcmp(nx_predenc_class(enc, 3), "none") == 0);

    for (int k = 0; k < 2000; k++) {
        nx_codec_record_t rec = t_random_record();
        float probs[4], sum = 0;
        for (int i = 0; i < 4; i++)
            sum += probs[i] = (float)t_unif();
        for (int i = 0; i < 4; i++)
            probs[i] /= sum;
        static const nx_reason_t why[3] = {{"session_carts", 2.5f, 1.25f},
                                           {"item_revisits", 1.5f, 0.5f},
                                           {"count_300s_cart", 0.75f, -0.125f}};
        nx_prediction_t pred = {.user_id = rec.user_id,
                                .user_id_len = (uint32_t)strlen(rec.user_id),
                                .event_ts_ms = rec.ts_ms,
                                .topic = k % 2 ? "clicks" : "",
                                .partition = k % 2 ? (int32_t)(t_rand() % 64) : -1,
                                .offset = (int64_t)(t_rand() >> 20),
                                .predicted_at_ms = rec.ts_ms + 5,
                                .horizon_ms = 1800000,
                                .probs = probs,
                                .model_version = (int64_t)(t_rand() % 100000),
                                .model_state = (nx_model_state_t)(k % 3),
                                .reasons = k % 4 ? why : NULL,
                                .n_reasons = 1 + k % 3};
        uint8_t buf[512];
        int64_t n = nx_predenc_encode(enc, &pred, buf, sizeof buf);
        CHECK(n > 5);
        if (n <= 5)
            continue;
        CHECK(buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 1 && buf[4] == 2);
        check_with_avro_c(schema, enc, &pred, buf + 5, (size_t)n - 5);
        /* every smaller buffer fails cleanly */
        if (k < 20) {
            for (int64_t c = 0; c < n; c++)
                CHECK_EQ_I(nx_predenc_encode(enc, &pred, buf, (size_t)c), -1);
            uint8_t raw[512];
            int64_t r = nx_predenc_avro(enc, &pred, 0, raw, sizeof raw);
            CHECK(r == n - 5 && memcmp(raw, buf + 5, (size_t)r) == 0);
        }
    }

    /* JSON lines: exact text, escapes, bounds */
    float probs[4] = {0.25f, 0.125f, 0.5f, 0.125f};
    nx_prediction_t pred = {.user_id = "u\"1\\\n",
                            .user_id_len = 5,
                            .event_ts_ms = 1700000000000LL,
                            .topic = "clicks",
                            .partition = 3,
                            .offset = 42,
                            .predicted_at_ms = 1700000000007LL,
                            .horizon_ms = 1800000,
                            .probs = probs,
                            .model_version = 9};
    char line[512];
    int64_t n = nx_predenc_json(enc, &pred, line, sizeof line);
    const char *want = "{\"user_id\":\"u\\\"1\\\\\\u000a\",\"event_ts\":1700000000000,"
                       "\"topic\":\"clicks\",\"partition\":3,\"offset\":42,"
                       "\"predicted_at\":1700000000007,\"horizon_ms\":1800000,"
                       "\"probabilities\":{\"click\":0.25,\"cart\":0.125,\"purchase\":0.5,"
                       "\"none\":0.125},\"next_action\":\"purchase\",\"model_version\":9,"
                       "\"model_state\":\"serving\"}\n";
    CHECK_EQ_I(n, (int64_t)strlen(want));
    CHECK(n > 0 && memcmp(line, want, (size_t)n) == 0);
    for (int64_t c = 0; c < n; c++)
        CHECK_EQ_I(nx_predenc_json(enc, &pred, line, (size_t)c), -1);

    /* a record with reasons, read with the schema before they existed */
    static const nx_reason_t why[2] = {{"session_carts", 2.5f, 1.25f},
                                       {"item_revisits", 1.5f, 0.5f}};
    pred.model_state = NX_MODEL_FALLBACK;
    pred.reasons = why;
    pred.n_reasons = 2;
    check_old_reader(schema, enc, &pred);

    cfg->output.format = (char *)"xml";
    CHECK(nx_predenc_new(cfg, err, sizeof err) == NULL);
    nx_predenc_destroy(enc);
    nx_predenc_destroy(NULL);
    avro_schema_decref(schema);
    free(json);
    if (t_failures) {
        fprintf(stderr, "test_codec_predenc: %d failure(s)\n", t_failures);
        return 1;
    }
    printf("test_codec_predenc: ok\n");
    return 0;
}
