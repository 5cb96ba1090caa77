/*
 * predenc.h: Prediction records out, per conf/schemas/prediction.avsc.
 *
 * A hand-written Avro binary encoder (the output hot path: no allocation,
 * well under a microsecond per record), optionally with the Confluent
 * header, and a JSON-lines encoder for debugging (`--output -`, format
 * json). The probabilities are an Avro map class -> float, written in class
 * order (the configured event types, then "none"); next_action is the first
 * most likely class; model_state and the optional reasons follow.
 *
 * Ownership: the encoder copies the class names at construction. Encoding
 * writes only into the caller's buffer. Not thread-safe (one per thread is
 * cheap).
 */
#ifndef NX_PREDENC_H
#define NX_PREDENC_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Classes: the event types plus "none". */
#define NX_PREDENC_MAX_CLASSES (NX_EVENT_MAX_TYPES + 1)

typedef enum nx_predenc_format {
    NX_PREDENC_AVRO,      /* Avro binary */
    NX_PREDENC_CONFLUENT, /* magic 0, schema id, Avro binary */
    NX_PREDENC_JSON       /* one JSON object and '\n' */
} nx_predenc_format_t;

/* What served a prediction (the schema's ModelState, in symbol order). */
typedef enum nx_model_state {
    NX_MODEL_SERVING = 0,
    NX_MODEL_WARMING = 1,
    NX_MODEL_FALLBACK = 2,
} nx_model_state_t;

/* One reason: a feature and its contribution to the predicted class. */
typedef struct nx_reason {
    const char *feature; /* NUL-terminated, borrowed */
    float value;         /* normalised value */
    float contribution;
} nx_reason_t;

typedef struct nx_prediction {
    const char *user_id; /* borrowed, not NUL-terminated */
    uint32_t user_id_len;
    int64_t event_ts_ms;
    const char *topic; /* NUL-terminated, "" in replay */
    int32_t partition;
    int64_t offset;
    int64_t predicted_at_ms;
    int64_t horizon_ms;
    const float *probs; /* one per class, in class order */
    int64_t model_version;
    nx_model_state_t model_state;
    const nx_reason_t *reasons; /* n_reasons of them, or NULL (the field is null) */
    int n_reasons;
} nx_prediction_t;

typedef struct nx_predenc nx_predenc_t;

/* Classes from cfg->event_types + "none"; format from cfg->output.format
 * (avro|confluent|json), schema id from cfg->output.schema_id. NULL with
 * errstr on bad configuration. Free with nx_predenc_destroy(). */
nx_predenc_t *nx_predenc_new(const nx_config_t *cfg, char *errstr, size_t errstr_size);
void nx_predenc_destroy(nx_predenc_t *enc);

int nx_predenc_n_classes(const nx_predenc_t *enc);
/* Class name i (static for the encoder's lifetime). */
const char *nx_predenc_class(const nx_predenc_t *enc, int i);

/* Encodes in the configured format. Returns the length, or -1 if the
 * record does not fit in cap (nothing useful is left in buf then). */
int64_t nx_predenc_encode(const nx_predenc_t *enc, const nx_prediction_t *pred, void *buf,
                          size_t cap);
/* Avro binary; confluent != 0 adds the Confluent header. */
int64_t nx_predenc_avro(const nx_predenc_t *enc, const nx_prediction_t *pred, int confluent,
                        void *buf, size_t cap);
/* One JSON object followed by '\n'. Floats as %.9g (round-trips a float). */
int64_t nx_predenc_json(const nx_predenc_t *enc, const nx_prediction_t *pred, void *buf,
                        size_t cap);

#endif /* NX_PREDENC_H */
