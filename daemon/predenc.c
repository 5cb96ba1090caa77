/* predenc.c: Prediction records as Avro binary or JSON (see predenc.h). */
#include "predenc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avrobin.h"

/* Longest class name kept (event type names are short words). */
#define CLASS_NAME_MAX 63

struct nx_predenc {
    nx_predenc_format_t format;
    uint32_t schema_id;
    int n_classes;
    char name[NX_PREDENC_MAX_CLASSES][CLASS_NAME_MAX + 1];
    size_t name_len[NX_PREDENC_MAX_CLASSES];
    /* The map's fixed bytes, pre-encoded: block count, then per class the
     * key (length + bytes); floats go between the keys. */
    uint8_t key[NX_PREDENC_MAX_CLASSES][CLASS_NAME_MAX + 1 + NX_AVROBIN_VARINT_MAX];
    size_t key_len[NX_PREDENC_MAX_CLASSES];
};

nx_predenc_t *nx_predenc_new(const nx_config_t *cfg, char *errstr, size_t errstr_size) {
    nx_predenc_t *enc = calloc(1, sizeof *enc);
    if (!enc) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    const char *fmt = cfg->output.format ? cfg->output.format : "avro";
    if (strcmp(fmt, "avro") == 0) {
        enc->format = NX_PREDENC_AVRO;
    } else if (strcmp(fmt, "confluent") == 0) {
        enc->format = NX_PREDENC_CONFLUENT;
    } else if (strcmp(fmt, "json") == 0) {
        enc->format = NX_PREDENC_JSON;
    } else {
        snprintf(errstr, errstr_size, "output.format: \"%s\" is not avro, confluent or json", fmt);
        goto err;
    }
    if (cfg->output.schema_id < 0 || cfg->output.schema_id > UINT32_MAX) {
        snprintf(errstr, errstr_size, "output.schema_id: %" PRId64 " is not a 32-bit id",
                 cfg->output.schema_id);
        goto err;
    }
    enc->schema_id = (uint32_t)cfg->output.schema_id;
    if (cfg->event_types.n < 1 || cfg->event_types.n > NX_EVENT_MAX_TYPES) {
        snprintf(errstr, errstr_size, "event_types: need 1..%d types", NX_EVENT_MAX_TYPES);
        goto err;
    }
    enc->n_classes = cfg->event_types.n + 1;
    for (int i = 0; i < enc->n_classes; i++) {
        const char *name = i < cfg->event_types.n ? cfg->event_types.v[i] : "none";
        size_t len = strlen(name);
        if (len == 0 || len > CLASS_NAME_MAX) {
            snprintf(errstr, errstr_size, "event_types: \"%s\" must be 1..%d bytes", name,
                     CLASS_NAME_MAX);
            goto err;
        }
        for (size_t k = 0; k < len; k++) {
            /* names go into JSON unescaped */
            if (name[k] == '"' || name[k] == '\\' || (unsigned char)name[k] < 0x20) {
                snprintf(errstr, errstr_size,
                         "event_types: \"%s\" has a quote, backslash or "
                         "control character",
                         name);
                goto err;
            }
        }
        memcpy(enc->name[i], name, len + 1);
        enc->name_len[i] = len;
        nx_avrobin_t w;
        nx_avrobin_init(&w, enc->key[i], sizeof enc->key[i]);
        nx_avrobin_bytes(&w, name, len);
        enc->key_len[i] = (size_t)(w.p - enc->key[i]);
    }
    return enc;
err:
    free(enc);
    return NULL;
}

void nx_predenc_destroy(nx_predenc_t *enc) {
    free(enc);
}

int nx_predenc_n_classes(const nx_predenc_t *enc) {
    return enc->n_classes;
}

const char *nx_predenc_class(const nx_predenc_t *enc, int i) {
    return (i >= 0 && i < enc->n_classes) ? enc->name[i] : NULL;
}

/* First index of the largest probability (NaN never wins). */
static int argmax(const float *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        if (p[i] > p[best])
            best = i;
    }
    return best;
}

int64_t nx_predenc_avro(const nx_predenc_t *enc, const nx_prediction_t *pred, int confluent,
                        void *buf, size_t cap) {
    nx_avrobin_t w;
    int best = argmax(pred->probs, enc->n_classes);
    nx_avrobin_init(&w, buf, cap);
    if (confluent)
        nx_avrobin_confluent(&w, enc->schema_id);
    nx_avrobin_bytes(&w, pred->user_id, pred->user_id_len);
    nx_avrobin_long(&w, pred->event_ts_ms);
    nx_avrobin_string(&w, pred->topic ? pred->topic : "");
    nx_avrobin_long(&w, pred->partition);
    nx_avrobin_long(&w, pred->offset);
    nx_avrobin_long(&w, pred->predicted_at_ms);
    nx_avrobin_long(&w, pred->horizon_ms);
    /* map: one block of n_classes entries, then the 0 terminator */
    nx_avrobin_long(&w, enc->n_classes);
    for (int i = 0; i < enc->n_classes; i++) {
        nx_avrobin_raw(&w, enc->key[i], enc->key_len[i]);
        nx_avrobin_float(&w, pred->probs[i]);
    }
    nx_avrobin_long(&w, 0);
    nx_avrobin_raw(&w, enc->key[best], enc->key_len[best]); /* next_action */
    nx_avrobin_long(&w, pred->model_version);
    nx_avrobin_long(&w, pred->model_state); /* enum: the symbol's index */
    /* reasons: union index 0 = null, 1 = an array of one block */
    if (!pred->reasons || pred->n_reasons <= 0) {
        nx_avrobin_long(&w, 0);
    } else {
        nx_avrobin_long(&w, 1);
        nx_avrobin_long(&w, pred->n_reasons);
        for (int i = 0; i < pred->n_reasons; i++) {
            nx_avrobin_string(&w, pred->reasons[i].feature);
            nx_avrobin_float(&w, pred->reasons[i].value);
            nx_avrobin_float(&w, pred->reasons[i].contribution);
        }
        nx_avrobin_long(&w, 0);
    }
    if (!w.p)
        return -1;
    return (int64_t)(w.p - (uint8_t *)buf);
}

/* JSON writer over a buffer: stops (ok = 0) when full. */
typedef struct jw {
    char *p, *end;
    int ok;
} jw_t;

static void jw_raw(jw_t *j, const char *s, size_t n) {
    if (!j->ok || (size_t)(j->end - j->p) < n) {
        j->ok = 0;
        return;
    }
    memcpy(j->p, s, n);
    j->p += n;
}

static void jw_fmt(jw_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jw_fmt(jw_t *j, const char *fmt, ...) {
    if (!j->ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->p, (size_t)(j->end - j->p), fmt, ap);
    va_end(ap);
    if (n < 0 || n >= j->end - j->p) {
        j->ok = 0;
        return;
    }
    j->p += n;
}

/* A JSON string: quotes, backslashes and control bytes escaped; other
 * bytes (UTF-8) as they are. */
static void jw_str(jw_t *j, const char *s, size_t n) {
    jw_raw(j, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jw_raw(j, e, 2);
        } else if (c < 0x20) {
            jw_fmt(j, "\\u%04x", c);
        } else {
            jw_raw(j, (const char *)&s[i], 1);
        }
    }
    jw_raw(j, "\"", 1);
}

int64_t nx_predenc_json(const nx_predenc_t *enc, const nx_prediction_t *pred, void *buf,
                        size_t cap) {
    jw_t j = {.p = buf, .end = (char *)buf + cap, .ok = 1};
    const char *topic = pred->topic ? pred->topic : "";
    int best = argmax(pred->probs, enc->n_classes);
    jw_raw(&j, "{\"user_id\":", 11);
    jw_str(&j, pred->user_id, pred->user_id_len);
    jw_fmt(&j, ",\"event_ts\":%" PRId64 ",\"topic\":", pred->event_ts_ms);
    jw_str(&j, topic, strlen(topic));
    jw_fmt(&j,
           ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"predicted_at\":%" PRId64
           ",\"horizon_ms\":%" PRId64 ",\"probabilities\":{",
           pred->partition, pred->offset, pred->predicted_at_ms, pred->horizon_ms);
    for (int i = 0; i < enc->n_classes; i++)
        jw_fmt(&j, "%s\"%s\":%.9g", i ? "," : "", enc->name[i], (double)pred->probs[i]);
    static const char *const states[] = {"serving", "warming", "fallback"};
    jw_fmt(&j, "},\"next_action\":\"%s\",\"model_version\":%" PRId64 ",\"model_state\":\"%s\"",
           enc->name[best], pred->model_version, states[pred->model_state]);
    if (pred->reasons && pred->n_reasons > 0) {
        jw_raw(&j, ",\"reasons\":[", 12);
        for (int i = 0; i < pred->n_reasons; i++) {
            jw_raw(&j, i ? ",{\"feature\":" : "{\"feature\":", i ? 12 : 11);
            jw_str(&j, pred->reasons[i].feature, strlen(pred->reasons[i].feature));
            jw_fmt(&j, ",\"value\":%.9g,\"contribution\":%.9g}", (double)pred->reasons[i].value,
                   (double)pred->reasons[i].contribution);
        }
        jw_raw(&j, "]", 1);
    }
    jw_raw(&j, "}\n", 2);
    if (!j.ok)
        return -1;
    return (int64_t)(j.p - (char *)buf);
}

int64_t nx_predenc_encode(const nx_predenc_t *enc, const nx_prediction_t *pred, void *buf,
                          size_t cap) {
    if (enc->format == NX_PREDENC_JSON)
        return nx_predenc_json(enc, pred, buf, cap);
    return nx_predenc_avro(enc, pred, enc->format == NX_PREDENC_CONFLUENT, buf, cap);
}
