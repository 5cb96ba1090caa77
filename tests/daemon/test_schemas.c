/*
 * test_schemas: the schemas we publish in conf/schemas/ parse with Avro C,
 * and events written under each per-type schema (click.avsc, cart.avsc,
 * purchase.avsc: no type field, one topic per type) decode through the
 * shipped configuration mechanism (input.topic_types, input.fields.type =
 * "") with the topic's type; an event under event.avsc decodes with its own
 * event_type.
 *
 * usage: test_schemas SOURCE_DIR
 */
#include <avro.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "config.h"

static const char *src;

static avro_schema_t load_schema(const char *name) {
    char path[1024], json[8192];
    snprintf(path, sizeof path, "%s/conf/schemas/%s", src, name);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return NULL;
    size_t n = fread(json, 1, sizeof json - 1, f);
    fclose(f);
    json[n] = '\0';
    avro_schema_t s = NULL;
    CHECK_INT(avro_schema_from_json_length(json, n, &s), 0);
    return s;
}

static int64_t encode(avro_schema_t schema, const char *type, void *buf, size_t cap) {
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t v, f, b;
    avro_generic_value_new(iface, &v);
    avro_value_get_by_name(&v, "user_id", &f, NULL);
    avro_value_set_string(&f, "u-42");
    avro_value_get_by_name(&v, "ts", &f, NULL);
    avro_value_set_long(&f, 1767225600000LL); /* 2026-01-01 */
    if (avro_value_get_by_name(&v, "event_type", &f, NULL) == 0)
        avro_value_set_string(&f, type);
    avro_value_get_by_name(&v, "item_id", &f, NULL);
    avro_value_set_branch(&f, 1, &b);
    avro_value_set_string(&b, "i-7");
    avro_value_get_by_name(&v, "price", &f, NULL);
    avro_value_set_branch(&f, 1, &b);
    avro_value_set_double(&b, 19.5);
    const char *nulls[] = {"category", "quantity", "session_id"};
    for (int i = 0; i < 3; i++) {
        avro_value_get_by_name(&v, nulls[i], &f, NULL);
        avro_value_set_branch(&f, 0, &b);
        avro_value_set_null(&b);
    }
    avro_writer_t w = avro_writer_memory(buf, (int64_t)cap);
    int64_t len = avro_value_write(w, &v) == 0 ? avro_writer_tell(w) : -1;
    avro_writer_free(w);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    return len;
}

/* A configuration for one topic `topic` carrying schema `file`. */
static nx_config_t *config_for(const char *dir, const char *file, const char *topic,
                               const char *fixed_type) {
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/t.conf", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "kafka: { brokers = \"127.0.0.1:9092\"; input_topics = [\"%s\"]; "
            "output_topic = \"p\"; };\n"
            "input: { writer_schema = \"%s/conf/schemas/%s\";\n",
            topic, src, file);
    if (fixed_type)
        fprintf(f, "  fields: { type = \"\"; };\n  topic_types = { %s = \"%s\"; };\n", topic,
                fixed_type);
    fprintf(f, "};\n");
    fclose(f);
    nx_config_t *cfg = nx_config_load(path, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    CHECK(cfg != NULL);
    return cfg;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_schemas SOURCE_DIR\n");
        return 2;
    }
    src = argv[1];
    char dir[] = "/tmp/nx_test_schemas.XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    avro_schema_t pred = load_schema("prediction.avsc");
    CHECK(pred != NULL);
    avro_schema_decref(pred);

    const char *types[] = {"click", "cart", "purchase"};
    for (int t = 0; t < 3; t++) {
        char file[32], topic[32], err[512];
        snprintf(file, sizeof file, "%s.avsc", types[t]);
        snprintf(topic, sizeof topic, "%ss", types[t]);
        avro_schema_t s = load_schema(file);
        if (!s)
            continue;
        nx_config_t *cfg = config_for(dir, file, topic, types[t]);
        nx_codec_t *codec = cfg ? nx_codec_new(cfg, err, sizeof err) : NULL;
        if (cfg && !codec)
            fprintf(stderr, "%s: %s\n", file, err);
        CHECK(codec != NULL);
        uint8_t buf[256];
        int64_t len = encode(s, NULL, buf, sizeof buf);
        CHECK(len > 0);
        if (codec && len > 0) {
            nx_event_t ev;
            CHECK_INT(nx_codec_decode(codec, buf, (size_t)len, 0, INT64_MAX, &ev), NX_CODEC_OK);
            CHECK_INT(ev.type, t);
            CHECK_INT(ev.user_id_len, 4);
            CHECK_INT(ev.ts_ms, 1767225600000LL);
            CHECK(ev.price == 19.5);
            CHECK(ev.item == nx_event_id_hash("i-7", 3));
        }
        nx_codec_destroy(codec);
        nx_config_destroy(cfg);
        avro_schema_decref(s);
    }

    /* the generic schema carries its own type */
    avro_schema_t s = load_schema("event.avsc");
    nx_config_t *cfg = config_for(dir, "event.avsc", "events", NULL);
    char err[512];
    nx_codec_t *codec = cfg ? nx_codec_new(cfg, err, sizeof err) : NULL;
    CHECK(codec != NULL);
    uint8_t buf[256];
    for (int t = 0; t < 3 && codec && s; t++) {
        int64_t len = encode(s, types[t], buf, sizeof buf);
        nx_event_t ev;
        CHECK_INT(nx_codec_decode(codec, buf, (size_t)len, 0, INT64_MAX, &ev), NX_CODEC_OK);
        CHECK_INT(ev.type, t);
    }
    nx_codec_destroy(codec);
    nx_config_destroy(cfg);
    if (s)
        avro_schema_decref(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return nx_check_exit("test_schemas");
}
