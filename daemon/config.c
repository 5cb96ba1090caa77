/*
 * config.c: the configuration table and its loader (config.h).
 *
 * Every key is one row of nx_config_table: name, type, field, default (in
 * libconfig syntax, parsed by the same code that reads the file), range, and
 * help. Defaults, the file, --dump-config and the conf-file test all go
 * through that table.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mlp.h"
#include "store.h"

typedef enum nx_cfg_type {
    NX_CT_INT,     /* int64_t; min/max bound the value */
    NX_CT_DOUBLE,  /* double; min/max bound the value */
    NX_CT_BOOL,    /* int 0/1 */
    NX_CT_STRING,  /* char *; min/max bound the length */
    NX_CT_PATH,    /* char *; relative paths resolve against the file's dir */
    NX_CT_ENUM,    /* char *, one of `choices` */
    NX_CT_INTS,    /* nx_intlist_t; min/max bound each element */
    NX_CT_DOUBLES, /* nx_dbllist_t; min/max bound each element */
    NX_CT_STRINGS, /* nx_strlist_t; min/max bound each element's length */
    NX_CT_MAP,     /* nx_strmap_t of string values */
    NX_CT_RDKAFKA, /* nx_strmap_t of librdkafka properties */
} nx_cfg_type_t;

#define NX_CF_REQUIRED 1 /* no default: the file must set it */

typedef struct nx_cfg_desc {
    const char *name; /* dotted path, groups first */
    nx_cfg_type_t type;
    size_t offset;
    const char *def; /* libconfig literal; NULL for required keys */
    double min, max;
    const char *choices; /* NX_CT_ENUM: "a|b|c" */
    int flags;
    const char *help;
} nx_cfg_desc_t;

#define OFF(field) offsetof(nx_config_t, field)
#define LEN_MAX    4096.0 /* longest path or string we accept in the file */
#define TOPIC_MAX  249.0  /* Kafka's limit on topic name length */

/* clang-format off */
static const nx_cfg_desc_t nx_config_table[] = {
    {"log_level", NX_CT_ENUM, OFF(log_level), "\"info\"", 0, 0, "error|warning|notice|info|debug", 0,
     "Highest syslog priority written to stderr. SIGHUP re-reads it."},
    {"state_dir", NX_CT_PATH, OFF(state_dir), "\"/var/lib/nextactd\"", 1, LEN_MAX, NULL, 0,
     "State directory: the SipHash key of user ids (mode 0600) and checkpoints."},
    {"event_types", NX_CT_STRINGS, OFF(event_types), "[\"click\", \"cart\", \"purchase\"]", 1, 32, NULL, 0,
     "Event types, in class order. The model predicts these plus `none`."},

    {"kafka.brokers", NX_CT_STRING, OFF(kafka.brokers), NULL, 1, LEN_MAX, NULL, NX_CF_REQUIRED,
     "Bootstrap servers, host:port[,host:port]. \"mock\" runs librdkafka's in-process mock cluster."},
    {"kafka.group_id", NX_CT_STRING, OFF(kafka.group_id), "\"nextactd\"", 1, TOPIC_MAX, NULL, 0,
     "Consumer group id; daemons in one group share the input partitions."},
    {"kafka.input_topics", NX_CT_STRINGS, OFF(kafka.input_topics), NULL, 1, TOPIC_MAX, NULL, NX_CF_REQUIRED,
     "Input topics of click, cart and purchase events (at most 16)."},
    {"kafka.output_topic", NX_CT_STRING, OFF(kafka.output_topic), NULL, 1, TOPIC_MAX, NULL, NX_CF_REQUIRED,
     "Topic the predictions are produced to, keyed by user id."},
    {"kafka.dead_letter_topic", NX_CT_STRING, OFF(kafka.dead_letter_topic), "\"\"", 0, TOPIC_MAX, NULL, 0,
     "Topic for records that fail decoding, with reason headers. \"\" = off (still counted)."},
    {"kafka.commit_interval_ms", NX_CT_INT, OFF(kafka.commit_interval_ms), "5000", 100, 3600000, NULL, 0,
     "Milliseconds between offset commits when checkpoint.interval_s = 0 (no durable\n"
     "state): acknowledged offsets are committed then, and on revoke and shutdown. With\n"
     "periodic checkpoints, offsets are committed when a checkpoint covering them is durable."},
    {"kafka.poll_batch", NX_CT_INT, OFF(kafka.poll_batch), "1024", 1, 65536, NULL, 0,
     "Most events taken from the consumer per micro-batch."},
    {"kafka.poll_timeout_ms", NX_CT_INT, OFF(kafka.poll_timeout_ms), "100", 1, 10000, NULL, 0,
     "Longest wait for a batch, milliseconds; bounds the tick of maintenance work."},
    {"kafka.flush_timeout_ms", NX_CT_INT, OFF(kafka.flush_timeout_ms), "10000", 0, 600000, NULL, 0,
     "Longest producer flush at shutdown, milliseconds; keep under TimeoutStopSec."},
    {"kafka.transactional", NX_CT_BOOL, OFF(kafka.transactional), "false", 0, 0, NULL, 0,
     "Exactly-once (transactional producer): not implemented yet, must be false;\n"
     "delivery is at least once, each prediction carrying its input offset."},
    {"kafka.consumer", NX_CT_RDKAFKA, OFF(kafka.consumer), "{}", 0, 0, NULL, 0,
     "librdkafka consumer properties passed through, dots written as underscores\n"
     "(security_protocol = \"SSL\"; ssl_ca_location = \"/etc/ssl/ca.pem\";). Refused: those\n"
     "nextactd owns (group_id, bootstrap_servers: use the keys above; enable_auto_commit,\n"
     "auto_commit_interval_ms, enable_auto_offset_store), auto_offset_reset other than\n"
     "earliest, a cooperative-sticky partition_assignment_strategy."},
    {"kafka.producer", NX_CT_RDKAFKA, OFF(kafka.producer), "{}", 0, 0, NULL, 0,
     "librdkafka producer properties passed through, as kafka.consumer. Refused, as they\n"
     "would lose or duplicate predictions: acks other than all, enable_idempotence =\n"
     "false, max_in_flight over 5, retries = 0, delivery_report_only_error,\n"
     "transactional_id; and bootstrap_servers."},

    {"input.framing", NX_CT_ENUM, OFF(input.framing), "\"raw\"", 0, 0, "raw|confluent", 0,
     "Payload framing: raw Avro binary (writer_schema) or Confluent wire format (schema_dir)."},
    {"input.writer_schema", NX_CT_PATH, OFF(input.writer_schema), "\"schemas/event.avsc\"", 1, LEN_MAX, NULL, 0,
     "Writer schema of raw payloads. Relative paths are relative to this file's directory."},
    {"input.schema_dir", NX_CT_PATH, OFF(input.schema_dir), "\"schemas/registry\"", 1, LEN_MAX, NULL, 0,
     "Directory of <id>.avsc writer schemas for Confluent framing."},
    {"input.schema_registry.url", NX_CT_STRING, OFF(input.schema_registry.url), "\"\"", 0, LEN_MAX, NULL, 0,
     "Schema Registry for Confluent framing: base URL (http:// or https://; several,\n"
     "comma-separated, are tried in turn). Writer schemas are fetched by id (GET\n"
     "/schemas/ids/{id}) and cached; schema_dir then serves only ids the registry does not\n"
     "have. Events wait (not dead-lettered) while the registry is unreachable. \"\" = off."},
    {"input.schema_registry.basic_auth_user_info", NX_CT_STRING, OFF(input.schema_registry.basic_auth_user_info), "\"\"", 0, LEN_MAX, NULL, 0,
     "\"user:password\" for HTTP basic authentication (Confluent Cloud: \"key:secret\"); \"\" = none."},
    {"input.schema_registry.ca_location", NX_CT_PATH, OFF(input.schema_registry.ca_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "PEM file of the CA certificates that sign the registry's; \"\" = the system's."},
    {"input.schema_registry.certificate_location", NX_CT_PATH, OFF(input.schema_registry.certificate_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "Client certificate (PEM) for mutual TLS; \"\" = none."},
    {"input.schema_registry.key_location", NX_CT_PATH, OFF(input.schema_registry.key_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "Private key (PEM) of the client certificate; \"\" = none."},
    {"input.schema_registry.key_password", NX_CT_STRING, OFF(input.schema_registry.key_password), "\"\"", 0, LEN_MAX, NULL, 0,
     "Passphrase of key_location; \"\" = none."},
    {"input.schema_registry.timeout_ms", NX_CT_INT, OFF(input.schema_registry.timeout_ms), "5000", 100, 600000, NULL, 0,
     "Longest one request may take, connecting included, milliseconds."},
    {"input.schema_registry.retry_backoff_ms", NX_CT_INT, OFF(input.schema_registry.retry_backoff_ms), "100", 1, 600000, NULL, 0,
     "After a failed fetch (no answer, timeout, HTTP 5xx, ...) the id is fetched again after\n"
     "this long, milliseconds; the wait doubles with each failure up to retry_backoff_max_ms."},
    {"input.schema_registry.retry_backoff_max_ms", NX_CT_INT, OFF(input.schema_registry.retry_backoff_max_ms), "10000", 1, 3600000, NULL, 0,
     "Longest wait between fetches of an id that keep failing, milliseconds."},
    {"input.schema_registry.not_found_retry_ms", NX_CT_INT, OFF(input.schema_registry.not_found_retry_ms), "60000", 1000, 86400000, NULL, 0,
     "An id the registry says it does not have (404, error 40403) dead-letters its events\n"
     "(unknown_schema_id) and is asked again after this long, milliseconds: a schema may be\n"
     "registered late."},
    {"input.fields.user_id", NX_CT_STRING, OFF(input.field_user_id), "\"user_id\"", 1, 128, NULL, 0,
     "Field holding the user id (string, bytes, int or long)."},
    {"input.fields.timestamp", NX_CT_STRING, OFF(input.field_timestamp), "\"ts\"", 1, 128, NULL, 0,
     "Field holding the event time (long timestamp-millis, or int/long seconds)."},
    {"input.fields.type", NX_CT_STRING, OFF(input.field_type), "\"event_type\"", 0, 128, NULL, 0,
     "Field holding the event type (string or enum); \"\" when input.topic_types fixes it."},
    {"input.fields.item", NX_CT_STRING, OFF(input.field_item), "\"item_id\"", 0, 128, NULL, 0,
     "Field holding the item id; \"\" = not used."},
    {"input.fields.category", NX_CT_STRING, OFF(input.field_category), "\"category\"", 0, 128, NULL, 0,
     "Field holding the category; \"\" = not used."},
    {"input.fields.price", NX_CT_STRING, OFF(input.field_price), "\"price\"", 0, 128, NULL, 0,
     "Field holding the unit price; \"\" = not used."},
    {"input.fields.quantity", NX_CT_STRING, OFF(input.field_quantity), "\"quantity\"", 0, 128, NULL, 0,
     "Field holding the quantity; \"\" = not used."},
    {"input.fields.session", NX_CT_STRING, OFF(input.field_session), "\"session_id\"", 0, 128, NULL, 0,
     "Field holding the session id; \"\" = sessions by features.session_gap_s."},
    {"input.type_map", NX_CT_MAP, OFF(input.type_map),
     "{ click = \"click\"; view = \"click\"; cart = \"cart\"; purchase = \"purchase\"; }", 0, 0, NULL, 0,
     "Event type values in the input -> configured event types; \"\" skips that value\n"
     "(counted, not an error). Example for Taobao: pv = \"click\"; buy = \"purchase\"; fav = \"\";"},
    {"input.topic_types", NX_CT_MAP, OFF(input.topic_types), "{}", 0, 0, NULL, 0,
     "Topics whose events all have one type: topic = \"type\"; (dashes in topic names as _)."},
    {"input.max_user_id_len", NX_CT_INT, OFF(input.max_user_id_len), "128", 1, 256, NULL, 0,
     "Longest accepted user id, bytes."},
    {"input.max_string_len", NX_CT_INT, OFF(input.max_string_len), "4096", 1, 1048576, NULL, 0,
     "Longest accepted string or bytes value of any other field, bytes."},
    {"input.max_collection", NX_CT_INT, OFF(input.max_collection), "1024", 0, 1000000, NULL, 0,
     "Most items accepted in one Avro array or map block."},
    {"input.max_price", NX_CT_DOUBLE, OFF(input.max_price), "10000000.0", 0, 1e15, NULL, 0,
     "Highest accepted unit price; above it the event is rejected as bad_price."},
    {"input.max_future_ms", NX_CT_INT, OFF(input.max_future_ms), "86400000", 0, 31536000000.0, NULL, 0,
     "Events timestamped further ahead of the wall clock are rejected, milliseconds."},
    {"input.csv.columns", NX_CT_STRINGS, OFF(input.csv_columns),
     "[\"user_id\", \"item_id\", \"category\", \"event_type\", \"ts\"]", 0, 32, NULL, 0,
     "CSV replay: for each column, the input field it holds, named as in input.fields\n"
     "(user_id, ts, event_type, item_id, ... by default), or \"-\" to ignore the column;\n"
     "[] takes the names from the header line. The default reads Taobao UserBehavior."},
    {"input.csv.header", NX_CT_BOOL, OFF(input.csv_header), "false", 0, 0, NULL, 0,
     "CSV replay: the first line is a header."},
    {"input.csv.delimiter", NX_CT_STRING, OFF(input.csv_delimiter), "\",\"", 1, 1, NULL, 0,
     "CSV replay: the column separator (one character)."},
    {"input.csv.timestamp", NX_CT_ENUM, OFF(input.csv_timestamp), "\"epoch_s\"", 0, 0,
     "epoch_s|epoch_ms|datetime", 0,
     "CSV replay: timestamps in epoch seconds, epoch ms, or \"YYYY-MM-DD HH:MM:SS UTC\"."},

    {"output.format", NX_CT_ENUM, OFF(output.format), "\"avro\"", 0, 0, "avro|confluent|json", 0,
     "Prediction records: Avro binary, Avro with Confluent framing, or JSON (debugging)."},
    {"output.schema", NX_CT_PATH, OFF(output.schema), "\"schemas/prediction.avsc\"", 0, LEN_MAX, NULL, 0,
     "Schema of prediction records (published in conf/schemas/); required unless\n"
     "output.format is json."},
    {"output.schema_id", NX_CT_INT, OFF(output.schema_id), "0", 0, 2147483647, NULL, 0,
     "Schema id written in the Confluent framing of predictions."},
    {"output.explain", NX_CT_INT, OFF(output.explain), "0", 0, 16, NULL, 0,
     "Reasons per prediction: the N features that pushed next_action most, with their\n"
     "value and contribution (DeepLIFT against the average event; they add up to the\n"
     "class score's difference from it). 0 = off (the field is null)."},
    {"output.explain_class", NX_CT_STRING, OFF(output.explain_class), "\"\"", 0, 64, NULL, 0,
     "The class the reasons explain: \"\" = each prediction's next_action, or a class name\n"
     "(an event type, or \"none\"), e.g. \"purchase\" for why a shopper would buy."},
    {"output.schema_registry.enabled", NX_CT_BOOL, OFF(output.schema_registry.enabled), "false", 0, 0, NULL, 0,
     "At start, register `schema` under the subject <output_topic>-value (POST\n"
     "/subjects/{subject}/versions) and frame predictions with the id it gets instead of\n"
     "schema_id; needs format = \"confluent\". A refusal (409: incompatible with the\n"
     "subject's earlier versions) or any error stops the start (exit 78)."},
    {"output.schema_registry.url", NX_CT_STRING, OFF(output.schema_registry.url), "\"\"", 0, LEN_MAX, NULL, 0,
     "Registry of the prediction schema, as input.schema_registry.url; \"\" = input.schema_registry\n"
     "with all its settings."},
    {"output.schema_registry.basic_auth_user_info", NX_CT_STRING, OFF(output.schema_registry.basic_auth_user_info), "\"\"", 0, LEN_MAX, NULL, 0,
     "As input.schema_registry.basic_auth_user_info."},
    {"output.schema_registry.ca_location", NX_CT_PATH, OFF(output.schema_registry.ca_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "As input.schema_registry.ca_location."},
    {"output.schema_registry.certificate_location", NX_CT_PATH, OFF(output.schema_registry.certificate_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "As input.schema_registry.certificate_location."},
    {"output.schema_registry.key_location", NX_CT_PATH, OFF(output.schema_registry.key_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "As input.schema_registry.key_location."},
    {"output.schema_registry.key_password", NX_CT_STRING, OFF(output.schema_registry.key_password), "\"\"", 0, LEN_MAX, NULL, 0,
     "As input.schema_registry.key_password."},
    {"output.schema_registry.timeout_ms", NX_CT_INT, OFF(output.schema_registry.timeout_ms), "5000", 100, 600000, NULL, 0,
     "Longest the registration request may take, milliseconds."},

    {"features.windows_s", NX_CT_INTS, OFF(features.windows_s), "[300, 3600, 86400]", 1, 2592000, NULL, 0,
     "Rolling window lengths, seconds (at most 4): exponentially decayed counters with\n"
     "these time constants (constant memory per user, O(1) update in any time order)."},
    {"features.user_ttl_s", NX_CT_INT, OFF(features.user_ttl_s), "172800", 60, 31536000, NULL, 0,
     "Users idle this long (event time) are expired, seconds."},
    {"features.max_users", NX_CT_INT, OFF(features.max_users), "1000000", 1, 1000000000, NULL, 0,
     "Hard cap on users in the store; the least recently active are evicted."},
    {"features.session_gap_s", NX_CT_INT, OFF(features.session_gap_s), "1800", 1, 86400, NULL, 0,
     "A gap this long starts a new session when events carry no session id, seconds."},
    {"features.recent_items", NX_CT_INT, OFF(features.recent_items), "8", 0, 64, NULL, 0,
     "Recently seen items kept per user, to count revisits."},
    {"features.clip", NX_CT_DOUBLE, OFF(features.clip), "5.0", 0.5, 100, NULL, 0,
     "Normalised features are clipped to [-clip, clip]."},
    {"features.counts", NX_CT_BOOL, OFF(features.counts), "true", 0, 0, NULL, 0,
     "Family: event counts per window and type."},
    {"features.value", NX_CT_BOOL, OFF(features.value), "true", 0, 0, NULL, 0,
     "Family: purchase value per window."},
    {"features.recency", NX_CT_BOOL, OFF(features.recency), "true", 0, 0, NULL, 0,
     "Family: time since the last event of each type (log-scaled, with a missing flag)."},
    {"features.session", NX_CT_BOOL, OFF(features.session), "true", 0, 0, NULL, 0,
     "Family: session position, length and duration."},
    {"features.revisits", NX_CT_BOOL, OFF(features.revisits), "true", 0, 0, NULL, 0,
     "Family: revisits of the same item and category."},
    {"features.event", NX_CT_BOOL, OFF(features.event), "true", 0, 0, NULL, 0,
     "Family: the event's own type, one-hot."},
    {"features.time", NX_CT_BOOL, OFF(features.time), "true", 0, 0, NULL, 0,
     "Family: hour of day and day of week as sin/cos."},
    {"features.price", NX_CT_BOOL, OFF(features.price), "true", 0, 0, NULL, 0,
     "Family: log price of the event's item."},
    {"features.maintenance_budget_us", NX_CT_INT, OFF(features.maintenance_budget_us), "500", 10, 100000, NULL, 0,
     "Time budget per main-loop tick for expiry and rehash, microseconds."},

    {"labels.horizon_s", NX_CT_INT, OFF(labels.horizon_s), "1800", 1, 604800, NULL, 0,
     "Prediction horizon H: the next action counts if it comes within H, seconds."},
    {"labels.allowed_lateness_ms", NX_CT_INT, OFF(labels.allowed_lateness_ms), "5000", 0, 86400000, NULL, 0,
     "Watermark = largest event time seen minus this, per partition, milliseconds."},
    {"labels.idle_advance_ms", NX_CT_INT, OFF(labels.idle_advance_ms), "10000", 100, 3600000, NULL, 0,
     "Live mode: a partition quiet this long advances its watermark by wall clock, ms."},

    {"model.enabled", NX_CT_BOOL, OFF(model.enabled), "true", 0, 0, NULL, 0,
     "false: decode, features and produce only (predictions carry no probabilities)."},
    {"model.hidden", NX_CT_INTS, OFF(model.hidden), "[64, 32]", 1, 4096, NULL, 0,
     "Hidden layer widths (at most 8 layers; [] for a linear model). [64, 32] as in the\n"
     "seed (DESIGN.md). On the generator (tests/daemon/test_quality.c) one layer of 32\n"
     "is as good or slightly better at under a third of the FLOPs: a cheaper choice\n"
     "for streams of similar shape."},
    {"model.activation", NX_CT_ENUM, OFF(model.activation), "\"relu\"", 0, 0, "relu|tanh|sigmoid", 0,
     "Activation of the hidden layers."},
    {"model.optimizer", NX_CT_ENUM, OFF(model.optimizer), "\"adam\"", 0, 0, "adam|sgd|momentum|adagrad", 0,
     "Optimizer."},
    {"model.learning_rate", NX_CT_DOUBLE, OFF(model.learning_rate), "0.01", 1e-9, 10, NULL, 0,
     "Learning rate at the start (after warm-up); see lr_decay and lr_floor."},
    {"model.momentum", NX_CT_DOUBLE, OFF(model.momentum), "0.9", 0, 0.9999, NULL, 0,
     "Momentum (optimizer = momentum)."},
    {"model.beta1", NX_CT_DOUBLE, OFF(model.beta1), "0.9", 0, 0.9999, NULL, 0, "Adam beta1."},
    {"model.beta2", NX_CT_DOUBLE, OFF(model.beta2), "0.999", 0, 0.999999, NULL, 0, "Adam beta2."},
    {"model.epsilon", NX_CT_DOUBLE, OFF(model.epsilon), "1e-08", 1e-12, 1, NULL, 0,
     "Adam and AdaGrad epsilon."},
    {"model.weight_decay", NX_CT_DOUBLE, OFF(model.weight_decay), "0.0", 0, 1, NULL, 0,
     "L2 weight decay."},
    {"model.clip_norm", NX_CT_DOUBLE, OFF(model.clip_norm), "0.0", 0, 1e6, NULL, 0,
     "Gradient-norm clipping; 0 = off."},
    {"model.warmup_steps", NX_CT_INT, OFF(model.warmup_steps), "0", 0, 1000000000, NULL, 0,
     "Linear learning-rate warm-up, steps; 0 = off."},
    {"model.lr_decay", NX_CT_DOUBLE, OFF(model.lr_decay), "0.005", 0, 0.5, NULL, 0,
     "Learning-rate decay after warm-up: the rate at step t is\n"
     "lr_min + (lr - lr_min) / (1 + lr_decay * t), lr_min = lr_floor * lr; 0 = off.\n"
     "The defaults learn fast from a cold start (0.01) and are within 10% of the floor\n"
     "after 20k steps (640k examples at batch 32)."},
    {"model.lr_floor", NX_CT_DOUBLE, OFF(model.lr_floor), "0.1", 0, 1, NULL, 0,
     "The rate the decay settles at and keeps for good, as a share of learning_rate; 0 =\n"
     "decay to 0, a model that stops learning. Measured on the generator with a concept\n"
     "drift (test_quality --drift), 0.1 is back within 1.7% of the oracle's log loss\n"
     "50k-100k events after it (0.03: 3.9%, a rate decayed to ~0: 31%); 0.2-0.3 follow\n"
     "a little faster but are noisier on a stream that does not change."},
    {"model.head_init_scale", NX_CT_DOUBLE, OFF(model.head_init_scale), "0.1", 0, 10, NULL, 0,
     "Output layer's initial weights: Xavier's bound times this. Small = near-uniform\n"
     "first predictions; 1 = plain Xavier, confident random ones (+0.7% log loss over\n"
     "the first 200k generator events, +1.7% with hidden [64, 32])."},
    {"model.batch_size", NX_CT_INT, OFF(model.batch_size), "32", 1, 4096, NULL, 0,
     "Training mini-batch size, examples."},
    {"model.seed", NX_CT_INT, OFF(model.seed), "42", 0, 4611686018427387904.0, NULL, 0,
     "Seed of weight initialisation and down-sampling: same seed, same model."},
    {"model.class_weights", NX_CT_DOUBLES, OFF(model.class_weights), "[]", 1e-6, 1e6, NULL, 0,
     "Per-class loss weights, one per event type plus `none`; [] = all 1."},
    {"model.negative_rate", NX_CT_DOUBLE, OFF(model.negative_rate), "1.0", 1e-4, 1, NULL, 0,
     "Share of `none` examples trained on; probabilities are corrected to stay calibrated."},
    {"model.threads", NX_CT_INT, OFF(model.threads), "1", 1, 64, NULL, 0,
     "OpenBLAS threads; 1 keeps results bit-identical run to run."},
    {"model.metrics_window", NX_CT_INT, OFF(model.metrics_window), "10000", 100, 10000000, NULL, 0,
     "Examples in the rolling window of the progressive-validation metrics."},
    {"model.guard", NX_CT_BOOL, OFF(model.guard), "true", 0, 0, NULL, 0,
     "The model guard: predictions serve the running prior of the classes (model_state\n"
     "warming) until the model's loss beats the prior's over a window; two windows in a row\n"
     "whose loss, relative to the prior's, is worse than the best recent one by more than\n"
     "guard_margin, or a non-finite output, roll the model back to its last good\n"
     "snapshot (fallback) and halve its learning rate until it recovers."},
    {"model.guard_window", NX_CT_INT, OFF(model.guard_window), "2000", 100, 10000000, NULL, 0,
     "Labelled examples per guard window."},
    {"model.guard_margin", NX_CT_DOUBLE, OFF(model.guard_margin), "0.25", 0.01, 10, NULL, 0,
     "Relative degradation of a window's loss (against the prior's) that rolls back."},

    {"checkpoint.dir", NX_CT_PATH, OFF(checkpoint.dir), "\"\"", 0, LEN_MAX, NULL, 0,
     "Checkpoint directory; \"\" = <state_dir>/checkpoints."},
    {"checkpoint.interval_s", NX_CT_INT, OFF(checkpoint.interval_s), "60", 0, 86400, NULL, 0,
     "Seconds between checkpoints (also on revoke and shutdown). Input offsets are committed\n"
     "when a checkpoint covering them is durable, so this bounds the input read again after\n"
     "a crash. 0 = only on revoke and shutdown, offsets committed as predictions are\n"
     "acknowledged (kafka.commit_interval_ms): a crash then loses the state since the start."},
    {"checkpoint.keep", NX_CT_INT, OFF(checkpoint.keep), "2", 1, 100, NULL, 0,
     "Checkpoints kept; a corrupt newest one falls back to the previous."},

    {"state.changelog", NX_CT_STRING, OFF(state.changelog), "\"\"", 0, TOPIC_MAX, NULL, 0,
     "Compacted topic holding every user's state (e.g. \"<group_id>-state\"); \"\" = off.\n"
     "On: changed users are written to it every kafka.commit_interval_ms in one transaction\n"
     "with the input offsets they cover, and a partition assigned to this instance is\n"
     "restored from it before its input resumes. The input topics must be co-partitioned\n"
     "and keyed by user id; the topic is created (cleanup.policy=compact, as many partitions\n"
     "as the input topics) when missing. Every instance of the group needs the same user-id\n"
     "hash key file."},
    {"state.replication_factor", NX_CT_INT, OFF(state.replication_factor), "-1", -1, 32767, NULL, 0,
     "Replication factor of the changelog topic when nextactd creates it; -1 = the broker's\n"
     "default."},
    {"state.instance_id", NX_CT_STRING, OFF(state.instance_id), "\"\"", 0, 200, NULL, 0,
     "Name of this instance, stable across restarts: its changelog producer's\n"
     "transactional.id is \"<group_id>-state-<instance_id>\", so a restarted instance fences\n"
     "its previous self. \"\" = the host name."},

    {"metrics.listen", NX_CT_STRING, OFF(metrics.listen), "\"127.0.0.1:9464\"", 0, 256, NULL, 0,
     "host:port of the /metrics and /healthz endpoint; \"\" = off."},
    {"metrics.status_interval_s", NX_CT_INT, OFF(metrics.status_interval_s), "5", 1, 3600, NULL, 0,
     "Seconds between live status lines (systemd STATUS=, terminal)."},
};
/* clang-format on */

#define N_DESC (sizeof nx_config_table / sizeof nx_config_table[0])

/* ------------------------------------------------------------------ */

static void *field_ptr(nx_config_t *cfg, const nx_cfg_desc_t *d) {
    return (char *)cfg + d->offset;
}

static const void *cfield_ptr(const nx_config_t *cfg, const nx_cfg_desc_t *d) {
    return (const char *)cfg + d->offset;
}

static void strmap_clear(nx_strmap_t *m) {
    for (int i = 0; i < m->n; i++) {
        free(m->key[i]);
        free(m->val[i]);
    }
    memset(m, 0, sizeof *m);
}

static void strlist_clear(nx_strlist_t *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    memset(l, 0, sizeof *l);
}

static void field_clear(nx_config_t *cfg, const nx_cfg_desc_t *d) {
    void *p = field_ptr(cfg, d);
    switch (d->type) {
    case NX_CT_STRING:
    case NX_CT_PATH:
    case NX_CT_ENUM:
        free(*(char **)p);
        *(char **)p = NULL;
        break;
    case NX_CT_STRINGS:
        strlist_clear(p);
        break;
    case NX_CT_MAP:
    case NX_CT_RDKAFKA:
        strmap_clear(p);
        break;
    case NX_CT_INTS: /* emptied, so that `[]` in a file is an empty list, not the default */
        ((nx_intlist_t *)p)->n = 0;
        break;
    case NX_CT_DOUBLES:
        ((nx_dbllist_t *)p)->n = 0;
        break;
    default:
        break;
    }
}

void nx_config_destroy(nx_config_t *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < N_DESC; i++)
        field_clear(cfg, &nx_config_table[i]);
    for (int i = 0; i < cfg->n_overrides; i++)
        free(cfg->overrides[i]);
    free(cfg->overrides);
    free(cfg->path);
    free(cfg);
}

const char *const *nx_config_keys(void) {
    static const char *keys[N_DESC + 1];
    if (!keys[0])
        for (size_t i = 0; i < N_DESC; i++)
            keys[i] = nx_config_table[i].name;
    return keys;
}

/* Error context: the file name for messages, "(default)" for defaults. */
typedef struct load_ctx {
    const char *file;
    const char *dir; /* directory of the file, for relative paths; NULL = cwd */
    char *errstr;
    size_t errstr_size;
    int no_line; /* a -X argument: "file" is the argument, with no line */
} load_ctx_t;

static int fail(load_ctx_t *ctx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int load_file(nx_config_t *cfg, const char *path, config_t *c, bool *seen, char *errstr,
                     size_t errstr_size);
static int overrides_apply(nx_config_t *cfg, const char *const *overrides, int n, bool *seen,
                           char *errstr, size_t errstr_size);

static int fail(load_ctx_t *ctx, int line, const char *fmt, ...) {
    int n = ctx->no_line ? snprintf(ctx->errstr, ctx->errstr_size, "%s: ", ctx->file)
                         : snprintf(ctx->errstr, ctx->errstr_size, "%s:%d: ", ctx->file, line);
    if (n < 0 || (size_t)n >= ctx->errstr_size)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errstr + n, ctx->errstr_size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *type_word(int t) {
    switch (t) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "nothing";
    }
}

static const char *desc_type_word(const nx_cfg_desc_t *d) {
    switch (d->type) {
    case NX_CT_INT:
        return "an integer";
    case NX_CT_DOUBLE:
        return "a number";
    case NX_CT_BOOL:
        return "true or false";
    case NX_CT_STRING:
    case NX_CT_PATH:
    case NX_CT_ENUM:
        return "a string";
    case NX_CT_INTS:
        return "an array of integers";
    case NX_CT_DOUBLES:
        return "an array of numbers";
    case NX_CT_STRINGS:
        return "an array of strings";
    default:
        return "a group";
    }
}

static int num_from(const config_setting_t *s, double *out) {
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        *out = (double)config_setting_get_int64(s);
        return 0;
    case CONFIG_TYPE_FLOAT:
        *out = config_setting_get_float(s);
        return 0;
    default:
        return -1;
    }
}

static int check_range(load_ctx_t *ctx, int line, const nx_cfg_desc_t *d, double v) {
    if (!isfinite(v) || v < d->min || v > d->max)
        return fail(ctx, line, "%s = %.17g is out of range; allowed %.17g to %.17g", d->name, v,
                    d->min, d->max);
    return 0;
}

static int get_int(load_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                   int64_t *out) {
    int t = config_setting_type(s);
    int line = config_setting_source_line(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return fail(ctx, line, "%s must be an integer, not %s", d->name, type_word(t));
    int64_t v = config_setting_get_int64(s);
    if (check_range(ctx, line, d, (double)v) < 0)
        return -1;
    *out = v;
    return 0;
}

static int get_double(load_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                      double *out) {
    double v;
    int line = config_setting_source_line(s);
    if (num_from(s, &v) < 0)
        return fail(ctx, line, "%s must be a number, not %s", d->name,
                    type_word(config_setting_type(s)));
    if (check_range(ctx, line, d, v) < 0)
        return -1;
    *out = v;
    return 0;
}

static int check_len(load_ctx_t *ctx, int line, const nx_cfg_desc_t *d, const char *v) {
    size_t len = strlen(v);
    if ((double)len < d->min || (double)len > d->max)
        return fail(ctx, line, "%s = \"%.64s\" has length %zu; allowed %.0f to %.0f", d->name, v,
                    len, d->min, d->max);
    return 0;
}

static int resolve_path(load_ctx_t *ctx, int line, const char *v, char **out) {
    if (v[0] == '\0' || v[0] == '/' || !ctx->dir) {
        *out = strdup(v);
    } else {
        size_t n = strlen(ctx->dir) + 1 + strlen(v) + 1;
        *out = malloc(n);
        if (*out)
            snprintf(*out, n, "%s/%s", ctx->dir, v);
    }
    if (!*out)
        return fail(ctx, line, "out of memory");
    return 0;
}

static int get_string(load_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                      char **out) {
    int line = config_setting_source_line(s);
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(ctx, line, "%s must be a string, not %s", d->name,
                    type_word(config_setting_type(s)));
    const char *v = config_setting_get_string(s);
    if (d->type == NX_CT_ENUM) {
        size_t len = strlen(v);
        const char *c = d->choices;
        bool ok = false;
        while (*c) {
            const char *bar = strchr(c, '|');
            size_t clen = bar ? (size_t)(bar - c) : strlen(c);
            if (clen == len && strncmp(c, v, len) == 0)
                ok = true;
            c += clen + (bar ? 1 : 0);
        }
        if (!ok)
            return fail(ctx, line, "%s = \"%.64s\" is not allowed; one of %s", d->name, v,
                        d->choices);
    } else if (check_len(ctx, line, d, v) < 0) {
        return -1;
    }
    if (d->type == NX_CT_PATH)
        return resolve_path(ctx, line, v, out);
    *out = strdup(v);
    if (!*out)
        return fail(ctx, line, "out of memory");
    return 0;
}

static int get_list(load_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d, void *p) {
    int line = config_setting_source_line(s);
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return fail(ctx, line, "%s must be %s, not %s", d->name, desc_type_word(d), type_word(t));
    int n = config_setting_length(s);
    if (n > NX_CONFIG_MAX_LIST)
        return fail(ctx, line, "%s has %d elements; at most %d allowed", d->name, n,
                    NX_CONFIG_MAX_LIST);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int r;
        switch (d->type) {
        case NX_CT_INTS: {
            nx_intlist_t *l = p;
            r = get_int(ctx, e, d, &l->v[i]);
            if (r == 0)
                l->n = i + 1;
            break;
        }
        case NX_CT_DOUBLES: {
            nx_dbllist_t *l = p;
            r = get_double(ctx, e, d, &l->v[i]);
            if (r == 0)
                l->n = i + 1;
            break;
        }
        default: {
            nx_strlist_t *l = p;
            r = get_string(ctx, e, d, &l->v[i]);
            if (r == 0)
                l->n = i + 1;
            break;
        }
        }
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Asks librdkafka whether it knows `name` = `value` (client-level first,
 * then topic-level properties, which librdkafka also takes on its conf).
 * On success, canon holds librdkafka's own spelling of the value ("all" and
 * "-1" both read "-1", "T" and "true" read "true"). */
static int rdkafka_check(const char *name, const char *value, char *canon, size_t canon_size,
                         char *why, size_t why_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, why, why_size);
    size_t n = canon_size;
    if (res != RD_KAFKA_CONF_OK || rd_kafka_conf_get(conf, name, canon, &n) != RD_KAFKA_CONF_OK)
        snprintf(canon, canon_size, "%s", value);
    rd_kafka_conf_destroy(conf);
    return res == RD_KAFKA_CONF_OK ? 0 : -1;
}

/* Pass-through properties nextactd refuses. kafka.c applies kafka.consumer
 * and kafka.producer after its own settings, so without this table one line
 * of configuration could silently undo what delivery rests on: offsets
 * stored only after a prediction is acknowledged, commits only of offsets
 * the durable state covers, predictions acknowledged by every in-sync
 * replica and never duplicated by retries. Keys the table has a key of its
 * own for (kafka.brokers, kafka.group_id, kafka.commit_interval_ms) are
 * refused too, so each setting has one place. Aliases get rows of their
 * own; values are compared in librdkafka's spelling (rdkafka_check). */
typedef enum nx_rdk_rule {
    NX_RDK_ANY,      /* refused whatever the value */
    NX_RDK_ONLY,     /* refused unless the value is one of `values` */
    NX_RDK_NOT,      /* refused if the value is one of `values` */
    NX_RDK_NOT_WITH, /* refused if the value (a list) names `values` */
} nx_rdk_rule_t;

#define NX_RDK_CONSUMER 1
#define NX_RDK_PRODUCER 2
#define NX_RDK_BOTH     (NX_RDK_CONSUMER | NX_RDK_PRODUCER)

typedef struct nx_rdk_refusal {
    const char *property;
    int side; /* NX_RDK_CONSUMER, _PRODUCER or _BOTH */
    nx_rdk_rule_t rule;
    const char *values; /* "a|b" */
    const char *why;
} nx_rdk_refusal_t;

#define WHY_BROKERS  "set kafka.brokers (both clients and the mock cluster use it)"
#define WHY_COMMIT   "nextactd commits offsets itself, only those its durable state covers"
#define WHY_ACKS     "only all (-1): a prediction is delivered once every in-sync replica has it"
#define WHY_INFLIGHT "1 to 5 only: the idempotent producer keeps order with at most 5"
#define WHY_RETRIES  "at least 1: the idempotent producer needs retries"

/* clang-format off */
static const nx_rdk_refusal_t nx_rdk_refused[] = {
    {"bootstrap.servers", NX_RDK_BOTH, NX_RDK_ANY, NULL, WHY_BROKERS},
    {"metadata.broker.list", NX_RDK_BOTH, NX_RDK_ANY, NULL, WHY_BROKERS},
    {"group.id", NX_RDK_BOTH, NX_RDK_ANY, NULL, "set kafka.group_id"},
    {"enable.auto.commit", NX_RDK_CONSUMER, NX_RDK_ANY, NULL, WHY_COMMIT},
    {"auto.commit.enable", NX_RDK_CONSUMER, NX_RDK_ANY, NULL, WHY_COMMIT},
    {"auto.commit.interval.ms", NX_RDK_CONSUMER, NX_RDK_ANY, NULL, "set kafka.commit_interval_ms"},
    {"enable.auto.offset.store", NX_RDK_CONSUMER, NX_RDK_ANY, NULL,
     "nextactd stores an offset only once the record's prediction is acknowledged "
     "(at least once); stored on poll, a crash would lose records"},
    {"offset.store.method", NX_RDK_CONSUMER, NX_RDK_ONLY, "broker",
     "offsets live in the consumer group (file storage bypasses the group)"},
    {"auto.offset.reset", NX_RDK_CONSUMER, NX_RDK_ONLY, "smallest",
     "only earliest: a partition with no usable committed offset starts at its first "
     "record (latest would skip records never predicted, error would stop input)"},
    {"partition.assignment.strategy", NX_RDK_CONSUMER, NX_RDK_NOT_WITH, "cooperative-sticky",
     "librdkafka 2.0.2 aborts when a cooperative-sticky consumer closes before its "
     "first assignment"},
    {"acks", NX_RDK_PRODUCER, NX_RDK_ONLY, "-1", WHY_ACKS},
    {"request.required.acks", NX_RDK_PRODUCER, NX_RDK_ONLY, "-1", WHY_ACKS},
    {"enable.idempotence", NX_RDK_PRODUCER, NX_RDK_ONLY, "true",
     "only true: a retried request must not duplicate or reorder predictions"},
    {"max.in.flight.requests.per.connection", NX_RDK_PRODUCER, NX_RDK_ONLY, "1|2|3|4|5",
     WHY_INFLIGHT},
    {"max.in.flight", NX_RDK_PRODUCER, NX_RDK_ONLY, "1|2|3|4|5", WHY_INFLIGHT},
    {"retries", NX_RDK_PRODUCER, NX_RDK_NOT, "0", WHY_RETRIES},
    {"message.send.max.retries", NX_RDK_PRODUCER, NX_RDK_NOT, "0", WHY_RETRIES},
    {"delivery.report.only.error", NX_RDK_PRODUCER, NX_RDK_ANY, NULL,
     "an input offset advances on its prediction's delivery report"},
    {"transactional.id", NX_RDK_PRODUCER, NX_RDK_ANY, NULL,
     "exactly-once is kafka.transactional (not implemented yet)"},
};
/* clang-format on */

/* Whether `list` ("a|b", or a property's comma list when sep is ',') holds
 * `word`, case-insensitively. */
static bool list_has(const char *list, char sep, const char *word) {
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        size_t l = strcspn(p, sep == ',' ? ", " : "|");
        if (l == wl && strncasecmp(p, word, wl) == 0)
            return true;
        p += l;
        while (*p == sep || *p == ' ')
            p++;
    }
    return false;
}

/* The reason `property` = `canon` is refused on this side, or NULL. */
static const char *rdk_refused(int side, const char *property, const char *canon) {
    for (size_t i = 0; i < sizeof nx_rdk_refused / sizeof nx_rdk_refused[0]; i++) {
        const nx_rdk_refusal_t *r = &nx_rdk_refused[i];
        if (!(r->side & side) || strcmp(r->property, property) != 0)
            continue;
        bool refused = true;
        switch (r->rule) {
        case NX_RDK_ANY:
            break;
        case NX_RDK_ONLY:
            refused = !list_has(r->values, '|', canon);
            break;
        case NX_RDK_NOT:
            refused = list_has(r->values, '|', canon);
            break;
        case NX_RDK_NOT_WITH:
            refused = list_has(canon, ',', r->values);
            break;
        }
        if (refused)
            return r->why;
    }
    return NULL;
}

static int get_map(load_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                   nx_strmap_t *m) {
    int line = config_setting_source_line(s);
    if (config_setting_type(s) != CONFIG_TYPE_GROUP)
        return fail(ctx, line, "%s must be a group { name = value; ... }, not %s", d->name,
                    type_word(config_setting_type(s)));
    int n = config_setting_length(s);
    if (n > NX_CONFIG_MAX_MAP)
        return fail(ctx, line, "%s has %d entries; at most %d allowed", d->name, n,
                    NX_CONFIG_MAX_MAP);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(e);
        int eline = config_setting_source_line(e);
        char num[64];
        const char *val = NULL;
        switch (config_setting_type(e)) {
        case CONFIG_TYPE_STRING:
            val = config_setting_get_string(e);
            break;
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
            if (d->type == NX_CT_RDKAFKA) {
                snprintf(num, sizeof num, "%lld", (long long)config_setting_get_int64(e));
                val = num;
            }
            break;
        case CONFIG_TYPE_FLOAT:
            if (d->type == NX_CT_RDKAFKA) {
                snprintf(num, sizeof num, "%.17g", config_setting_get_float(e));
                val = num;
            }
            break;
        case CONFIG_TYPE_BOOL:
            if (d->type == NX_CT_RDKAFKA)
                val = config_setting_get_bool(e) ? "true" : "false";
            break;
        default:
            break;
        }
        if (!val)
            return fail(ctx, eline, "%s.%s must be %s, not %s", d->name, name,
                        d->type == NX_CT_RDKAFKA ? "a string, number or boolean" : "a string",
                        type_word(config_setting_type(e)));
        /* libconfig names cannot hold dots: librdkafka's
         * "security.protocol" is written security_protocol. A name that
         * librdkafka knows with its underscores (log_level) stays as is. */
        char key[256];
        snprintf(key, sizeof key, "%s", name);
        if (d->type == NX_CT_RDKAFKA) {
            char why[512], canon[512];
            for (char *c = key; *c; c++)
                if (*c == '_')
                    *c = '.';
            if (rdkafka_check(key, val, canon, sizeof canon, why, sizeof why) < 0) {
                char why2[512];
                if (rdkafka_check(name, val, canon, sizeof canon, why2, sizeof why2) == 0)
                    snprintf(key, sizeof key, "%s", name);
                else
                    return fail(ctx, eline, "%s.%s: librdkafka refuses %s = \"%s\": %s", d->name,
                                name, key, val, why);
            }
            int side = d->offset == OFF(kafka.producer) ? NX_RDK_PRODUCER : NX_RDK_CONSUMER;
            const char *refused = rdk_refused(side, key, canon);
            if (refused)
                return fail(ctx, eline, "%s.\"%s\": refused: %s", d->name, key, refused);
        }
        m->key[i] = strdup(key);
        m->val[i] = strdup(val);
        m->line[i] = eline;
        m->n = i + 1;
        if (!m->key[i] || !m->val[i])
            return fail(ctx, eline, "out of memory");
    }
    return 0;
}

/* Reads setting `s` into the field of `d`, replacing what was there. */
static int apply(load_ctx_t *ctx, nx_config_t *cfg, const nx_cfg_desc_t *d,
                 const config_setting_t *s) {
    void *p = field_ptr(cfg, d);
    field_clear(cfg, d);
    switch (d->type) {
    case NX_CT_INT:
        return get_int(ctx, s, d, p);
    case NX_CT_DOUBLE:
        return get_double(ctx, s, d, p);
    case NX_CT_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return fail(ctx, config_setting_source_line(s), "%s must be true or false, not %s",
                        d->name, type_word(config_setting_type(s)));
        *(int *)p = config_setting_get_bool(s);
        return 0;
    case NX_CT_STRING:
    case NX_CT_PATH:
    case NX_CT_ENUM:
        return get_string(ctx, s, d, p);
    case NX_CT_INTS:
    case NX_CT_DOUBLES:
    case NX_CT_STRINGS:
        return get_list(ctx, s, d, p);
    case NX_CT_MAP:
    case NX_CT_RDKAFKA:
        return get_map(ctx, s, d, p);
    }
    return -1;
}

static int apply_defaults(nx_config_t *cfg, char *errstr, size_t errstr_size) {
    load_ctx_t ctx = {"(default)", NX_SOURCE_DIR "/conf", errstr, errstr_size, 0};
    for (size_t i = 0; i < N_DESC; i++) {
        const nx_cfg_desc_t *d = &nx_config_table[i];
        if (!d->def)
            continue;
        /* Each default is parsed by libconfig and applied by the same code
         * as the file, so a default can never be something the file could
         * not say. */
        char text[512];
        snprintf(text, sizeof text, "v = %s;", d->def);
        config_t c;
        config_init(&c);
        int ok = config_read_string(&c, text) == CONFIG_TRUE;
        int r = ok ? apply(&ctx, cfg, d, config_lookup(&c, "v")) : -1;
        if (!ok)
            fail(&ctx, 0, "bad default for %s: %s", d->name, config_error_text(&c));
        config_destroy(&c);
        if (r < 0)
            return -1;
    }
    /* Default paths are for a run from the source tree; an installed
     * config sets its own. */
    return 0;
}

nx_config_t *nx_config_new_defaults(void) {
    char err[512];
    nx_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    if (apply_defaults(cfg, err, sizeof err) < 0) {
        nx_err("%s", err); /* a programming error: the table's own default */
        nx_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

/* ------------------------------------------------------------------ */
/* Integer literals. libconfig 1.5 stores an integer without the L suffix in
 * 32 bits and silently wraps larger ones (3000000000 reads as -1294967296),
 * and wraps L literals past 64 bits. Before parsing, scan the text for
 * integer literals and refuse those that do not fit. */

static int scan_int_literals(load_ctx_t *ctx, const char *text) {
    int line = 1;
    const char *p = text;
    while (*p) {
        char c = *p;
        if (c == '\n') {
            line++;
            p++;
        } else if (c == '"') { /* string, with \" escapes */
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (*p == '\n')
                    line++;
                p++;
            }
            if (*p)
                p++;
        } else if (c == '#' || (c == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                p++;
        } else if (c == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(*p == '*' && p[1] == '/')) {
                if (*p == '\n')
                    line++;
                p++;
            }
            if (*p)
                p += 2;
        } else if (isdigit((unsigned char)c) && (p == text || !(isalnum((unsigned char)p[-1]) ||
                                                                p[-1] == '_' || p[-1] == '.'))) {
            const char *start = p;
            bool hex = c == '0' && (p[1] == 'x' || p[1] == 'X');
            if (hex)
                p += 2;
            while (isalnum((unsigned char)*p) || *p == '.' ||
                   ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E') && !hex))
                p++;
            size_t len = (size_t)(p - start);
            char lit[64];
            if (len >= sizeof lit)
                return fail(ctx, line, "number %.32s... is too long", start);
            memcpy(lit, start, len);
            lit[len] = '\0';
            if (!hex && strpbrk(lit, ".eE"))
                continue; /* a float; range-checked after parsing */
            bool is64 = len > 0 && (lit[len - 1] == 'L' || lit[len - 1] == 'l');
            if (is64) {
                lit[--len] = '\0';
                if (len > 0 && (lit[len - 1] == 'L' || lit[len - 1] == 'l'))
                    lit[--len] = '\0';
            }
            errno = 0;
            char *end;
            unsigned long long u = strtoull(lit, &end, 0);
            if (*end != '\0')
                continue; /* not a number libconfig would take; it reports it */
            bool neg = start > text && start[-1] == '-';
            unsigned long long lim32 = neg ? 2147483648ULL : 2147483647ULL;
            unsigned long long lim64 = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
            if (hex)
                lim32 = 0xffffffffULL; /* libconfig reads 0xFFFFFFFF as -1 */
            if (errno == ERANGE || u > lim64)
                return fail(ctx, line, "integer %s%s does not fit 64 bits", neg ? "-" : "", lit);
            if (!is64 && u > lim32)
                return fail(ctx, line,
                            "integer %s%s does not fit libconfig's 32-bit integers; write it "
                            "with an L suffix (%s%sL)",
                            neg ? "-" : "", lit, neg ? "-" : "", lit);
        } else {
            p++;
        }
    }
    return 0;
}

static char *read_file(const char *path, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        snprintf(errstr, errstr_size, "%s:0: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* A configuration file over 1 MiB is a mistake, not a config. */
    const size_t max = 1 << 20;
    buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr || n > max) {
        snprintf(errstr, errstr_size, "%s:0: %s", path,
                 !buf   ? "out of memory"
                 : rerr ? "read error"
                        : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Walks the file's settings: every leaf must be a key of the table, every
 * group a prefix of one. */
static int walk(load_ctx_t *ctx, nx_config_t *cfg, const config_setting_t *g, const char *prefix,
                bool *seen) {
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", config_setting_name(s));
        size_t plen = strlen(path);
        const nx_cfg_desc_t *hit = NULL;
        bool is_prefix = false;
        for (size_t k = 0; k < N_DESC; k++) {
            const char *name = nx_config_table[k].name;
            if (strcmp(name, path) == 0) {
                hit = &nx_config_table[k];
                if (apply(ctx, cfg, hit, s) < 0)
                    return -1;
                seen[k] = true;
                break;
            }
            if (strncmp(name, path, plen) == 0 && name[plen] == '.')
                is_prefix = true;
        }
        if (hit)
            continue;
        int line = config_setting_source_line(s);
        if (is_prefix) {
            if (config_setting_type(s) != CONFIG_TYPE_GROUP)
                return fail(ctx, line, "%s must be a group, not %s", path,
                            type_word(config_setting_type(s)));
            if (walk(ctx, cfg, s, path, seen) < 0)
                return -1;
            continue;
        }
        /* Unknown: list what the group does allow. */
        char allowed[1024] = "";
        size_t alen = 0, pre = strlen(prefix);
        for (size_t k = 0; k < N_DESC && alen < sizeof allowed - 64; k++) {
            const char *name = nx_config_table[k].name;
            if (pre && !(strncmp(name, prefix, pre) == 0 && name[pre] == '.'))
                continue;
            const char *rest = name + (pre ? pre + 1 : 0);
            size_t rl = strcspn(rest, ".");
            char word[256];
            snprintf(word, sizeof word, "%.*s", (int)rl, rest);
            if (list_has(allowed, ',', word))
                continue; /* a group already listed */
            alen += (size_t)snprintf(allowed + alen, sizeof allowed - alen, "%s%.*s",
                                     alen ? ", " : "", (int)rl, rest);
        }
        return fail(ctx, line, "unknown key '%s'; allowed %s%s%s: %s", path,
                    pre ? "in group '" : "at top level", pre ? prefix : "", pre ? "'" : "",
                    allowed);
    }
    return 0;
}

static int find_line(const nx_config_t *cfg, const config_t *c, const char *name) {
    (void)cfg;
    const config_setting_t *s = config_lookup(c, name);
    return s ? config_setting_source_line(s) : 0;
}

/* Checks that need more than one key. */
static int cross_check(load_ctx_t *ctx, nx_config_t *cfg, const config_t *c) {
    int nt = cfg->event_types.n;
    if (nt > NX_EVENT_MAX_TYPES)
        return fail(ctx, find_line(cfg, c, "event_types"),
                    "event_types has %d types; at most %d allowed", nt, NX_EVENT_MAX_TYPES);
    for (int i = 0; i < nt; i++) {
        if (strcmp(cfg->event_types.v[i], "none") == 0)
            return fail(ctx, find_line(cfg, c, "event_types"),
                        "event_types must not name \"none\": it is the class of no next action");
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->event_types.v[i], cfg->event_types.v[j]) == 0)
                return fail(ctx, find_line(cfg, c, "event_types"), "event_types names \"%s\" twice",
                            cfg->event_types.v[i]);
    }
    const nx_strmap_t *maps[2] = {&cfg->input.type_map, &cfg->input.topic_types};
    const char *mapnames[2] = {"input.type_map", "input.topic_types"};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < maps[m]->n; i++) {
            const char *v = maps[m]->val[i];
            if ((m == 0 && v[0] == '\0') || nx_config_type_index(cfg, v) >= 0)
                continue;
            char types[256] = "";
            for (int t = 0; t < nt; t++)
                snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s", t ? ", " : "",
                         cfg->event_types.v[t]);
            return fail(ctx, maps[m]->line[i], "%s.%s = \"%s\" is not an event type; one of %s%s",
                        mapnames[m], maps[m]->key[i], v, types, m == 0 ? " or \"\" (skip)" : "");
        }
    if (cfg->features.windows_s.n < 1 || cfg->features.windows_s.n > NX_STORE_MAX_WINDOWS)
        return fail(ctx, find_line(cfg, c, "features.windows_s"),
                    "features.windows_s has %d windows; 1 to %d allowed", cfg->features.windows_s.n,
                    NX_STORE_MAX_WINDOWS);
    if (cfg->kafka.transactional)
        return fail(ctx, find_line(cfg, c, "kafka.transactional"),
                    "kafka.transactional = true (exactly-once) is not implemented yet; "
                    "nextactd delivers at least once: set it to false");
    if (cfg->model.hidden.n > NX_MLP_MAX_HIDDEN)
        return fail(ctx, find_line(cfg, c, "model.hidden"), "model.hidden has %d layers; at most %d allowed",
                    cfg->model.hidden.n, NX_MLP_MAX_HIDDEN);
    if (cfg->model.class_weights.n != 0 && cfg->model.class_weights.n != nt + 1)
        return fail(ctx, find_line(cfg, c, "model.class_weights"),
                    "model.class_weights has %d entries; give none or %d (one per event type "
                    "plus none)",
                    cfg->model.class_weights.n, nt + 1);
    if (strcmp(cfg->input.framing, "raw") == 0 && cfg->input.field_type[0] == '\0') {
        /* Without a type field, every input topic needs a fixed type. */
        for (int i = 0; i < cfg->kafka.input_topics.n; i++) {
            bool found = false;
            for (int k = 0; k < cfg->input.topic_types.n; k++)
                if (strcmp(cfg->input.topic_types.key[k], cfg->kafka.input_topics.v[i]) == 0)
                    found = true;
            if (!found)
                return fail(ctx, find_line(cfg, c, "input.fields.type"),
                            "input.fields.type is \"\" but topic \"%s\" has no entry in "
                            "input.topic_types",
                            cfg->kafka.input_topics.v[i]);
        }
    }
    return 0;
}

nx_config_t *nx_config_load(const char *path, char *errstr, size_t errstr_size) {
    return nx_config_load_ex(path, NULL, 0, errstr, errstr_size);
}

nx_config_t *nx_config_load_ex(const char *path, const char *const *overrides, int n_overrides,
                               char *errstr, size_t errstr_size) {
    nx_config_t *cfg = NULL;
    config_t c;
    bool seen[N_DESC] = {0};

    config_init(&c);
    cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        snprintf(errstr, errstr_size, "%s:0: out of memory", path ? path : "(default)");
        goto err;
    }
    if (apply_defaults(cfg, errstr, errstr_size) < 0)
        goto err;
    if (path && load_file(cfg, path, &c, seen, errstr, errstr_size) < 0)
        goto err;
    if (overrides_apply(cfg, overrides, n_overrides, seen, errstr, errstr_size) < 0)
        goto err;
    load_ctx_t ctx = {path ? path : "(default)", NULL, errstr, errstr_size, 0};
    for (size_t k = 0; path && k < N_DESC; k++)
        if ((nx_config_table[k].flags & NX_CF_REQUIRED) && !seen[k]) {
            fail(&ctx, 0, "missing required key '%s': %s", nx_config_table[k].name,
                 nx_config_table[k].help);
            goto err;
        }
    if (cross_check(&ctx, cfg, &c) < 0)
        goto err;
    config_destroy(&c);
    return cfg;

err:
    config_destroy(&c);
    nx_config_destroy(cfg);
    return NULL;
}

/* Reads the file at `path` over the defaults in cfg, marking the keys it
 * sets in seen[]; `c` keeps the parsed file, for the line numbers of later
 * messages. */
static int load_file(nx_config_t *cfg, const char *path, config_t *c, bool *seen, char *errstr,
                     size_t errstr_size) {
    char *text = NULL, *dir = NULL;
    int rc = -1;
    cfg->path = strdup(path);
    dir = strdup(path);
    if (!cfg->path || !dir) {
        snprintf(errstr, errstr_size, "%s:0: out of memory", path);
        goto err;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    load_ctx_t ctx = {path, dir, errstr, errstr_size, 0};

    if (!(text = read_file(path, errstr, errstr_size)))
        goto err;
    if (scan_int_literals(&ctx, text) < 0)
        goto err;
    if (config_read_string(c, text) != CONFIG_TRUE) {
        fail(&ctx, config_error_line(c), "syntax error: %s", config_error_text(c));
        goto err;
    }
    /* Relative paths in the file resolve against the file's directory; the
     * defaults' relative paths do too, so re-apply those against it. */
    for (size_t k = 0; k < N_DESC; k++) {
        const nx_cfg_desc_t *d = &nx_config_table[k];
        if (d->type != NX_CT_PATH || !d->def)
            continue;
        char t[512];
        snprintf(t, sizeof t, "v = %s;", d->def);
        config_t dc;
        config_init(&dc);
        int r = config_read_string(&dc, t) == CONFIG_TRUE
                    ? apply(&ctx, cfg, d, config_lookup(&dc, "v"))
                    : -1;
        config_destroy(&dc);
        if (r < 0)
            goto err;
    }
    if (walk(&ctx, cfg, config_root_setting(c), "", seen) < 0)
        goto err;
    rc = 0;
err:
    free(text);
    free(dir);
    return rc;
}

nx_config_t *nx_config_reload(const nx_config_t *cfg, char *errstr, size_t errstr_size) {
    return nx_config_load_ex(cfg->path, (const char *const *)cfg->overrides, cfg->n_overrides,
                             errstr, errstr_size);
}

/* ------------------------------------------------------------------ */
/* -X key=value: each override is parsed by libconfig as the line
 * `key = value;` nested in its groups, and applied by the same code as the
 * file (walk), so it gets the same type and range checks and unknown keys
 * are refused alike. An entry of a map row is merged into the map instead
 * of replacing it. */

int nx_config_overrides_add(nx_config_overrides_t *ov, const char *arg) {
    if (ov->n >= NX_CONFIG_MAX_OVERRIDES) {
        fprintf(stderr, "nextactd: more than %d -X overrides\n", NX_CONFIG_MAX_OVERRIDES);
        return -1;
    }
    ov->v[ov->n++] = arg;
    return 0;
}

/* Appends s to the buffer, a libconfig string literal when quote is set. */
static void text_put(char *buf, size_t size, const char *s, int quote) {
    size_t n = strlen(buf);
    if (quote && n + 1 < size)
        buf[n++] = '"';
    for (; *s && n + 2 < size; s++) {
        if (quote && (*s == '"' || *s == '\\'))
            buf[n++] = '\\';
        buf[n++] = *s;
    }
    if (quote && n + 1 < size)
        buf[n++] = '"';
    buf[n] = '\0';
}

/* Whether a row of this type holds one string, which an unquoted value
 * spells directly. */
static bool is_string_type(nx_cfg_type_t t) {
    return t == NX_CT_STRING || t == NX_CT_PATH || t == NX_CT_ENUM;
}

/* Whether libconfig reads `value` as a value. */
static bool is_value(const char *value) {
    char text[4096] = "v = ";
    text_put(text, sizeof text, value, 0);
    text_put(text, sizeof text, ";", 0);
    config_t probe;
    config_init(&probe);
    bool ok = config_read_string(&probe, text) == CONFIG_TRUE;
    config_destroy(&probe);
    return ok;
}

/* One entry of a map row: parsed as `v = { name = value; };` by the file's
 * map reader (librdkafka's checks included), then added or replaced. */
static int override_map_entry(load_ctx_t *ctx, nx_config_t *cfg, const nx_cfg_desc_t *d,
                              const char *name, const char *value) {
    char text[4096] = "v = { ";
    char lname[256];
    snprintf(lname, sizeof lname, "%s", name);
    if (d->type == NX_CT_RDKAFKA)
        for (char *p = lname; *p; p++)
            if (*p == '.')
                *p = '_'; /* librdkafka's dotted name, as the file spells it */
    text_put(text, sizeof text, lname, 0);
    text_put(text, sizeof text, " = ", 0);
    /* a bare word (SSL, /etc/ssl/ca.pem) is a string */
    int quote = value[0] != '"' && (d->type == NX_CT_MAP || !is_value(value));
    text_put(text, sizeof text, value, quote);
    text_put(text, sizeof text, "; };", 0);

    nx_strmap_t one = {0};
    config_t c;
    config_init(&c);
    int rc = -1;
    if (scan_int_literals(ctx, text) < 0)
        goto out;
    if (config_read_string(&c, text) != CONFIG_TRUE) {
        fail(ctx, 0,
             "%s: write numbers as 10 or 1.5, booleans as true or false and strings "
             "in quotes",
             config_error_text(&c));
        goto out;
    }
    if (get_map(ctx, config_lookup(&c, "v"), d, &one) < 0 || one.n != 1)
        goto out;
    nx_strmap_t *m = field_ptr(cfg, d);
    int i = 0;
    while (i < m->n && strcmp(m->key[i], one.key[0]) != 0)
        i++;
    if (i == NX_CONFIG_MAX_MAP) {
        fail(ctx, 0, "%s has %d entries; at most %d allowed", d->name, i + 1, NX_CONFIG_MAX_MAP);
        goto out;
    }
    if (i < m->n) {
        free(m->key[i]);
        free(m->val[i]);
    } else {
        m->n++;
    }
    m->key[i] = one.key[0];
    m->val[i] = one.val[0];
    m->line[i] = 0;
    one.n = 0; /* moved into m */
    rc = 0;
out:
    strmap_clear(&one);
    config_destroy(&c);
    return rc;
}

static int override_one(nx_config_t *cfg, const char *arg, bool *seen, char *errstr,
                        size_t errstr_size) {
    char where[512], key[256];
    snprintf(where, sizeof where, "-X %s", arg);
    load_ctx_t ctx = {where, NULL, errstr, errstr_size, 1};
    const char *eq = strchr(arg, '=');
    if (!eq)
        return fail(&ctx, 0, "expected key=value");
    const char *k0 = arg, *k1 = eq;
    while (k0 < k1 && isspace((unsigned char)*k0))
        k0++;
    while (k1 > k0 && isspace((unsigned char)k1[-1]))
        k1--;
    const char *value = eq + 1;
    while (isspace((unsigned char)*value))
        value++;
    size_t klen = (size_t)(k1 - k0);
    if (klen == 0 || klen >= sizeof key)
        return fail(&ctx, 0, "expected key=value with a key of 1 to %zu characters",
                    sizeof key - 1);
    memcpy(key, k0, klen);
    key[klen] = '\0';
    for (size_t i = 0; i < klen; i++)
        if (!(isalnum((unsigned char)key[i]) || key[i] == '_' || key[i] == '-' ||
              (key[i] == '.' && i > 0 && i + 1 < klen && key[i + 1] != '.')))
            return fail(&ctx, 0, "'%s' is not a key: dotted names of letters, digits, _ and -",
                        key);

    const nx_cfg_desc_t *row = NULL;
    for (size_t k = 0; k < N_DESC && !row; k++) {
        const nx_cfg_desc_t *d = &nx_config_table[k];
        size_t nl = strlen(d->name);
        if (strcmp(d->name, key) == 0)
            row = d;
        else if ((d->type == NX_CT_MAP || d->type == NX_CT_RDKAFKA) &&
                 strncmp(d->name, key, nl) == 0 && key[nl] == '.')
            return override_map_entry(&ctx, cfg, d, key + nl + 1, value);
    }

    /* `a.b.c = value` as the groups `a: { b: { c = value; }; };` */
    char text[4096] = "";
    int depth = 0;
    const char *p = key;
    for (const char *dot; (dot = strchr(p, '.')); p = dot + 1, depth++) {
        char group[256];
        snprintf(group, sizeof group, "%.*s: { ", (int)(dot - p), p);
        text_put(text, sizeof text, group, 0);
    }
    text_put(text, sizeof text, p, 0);
    text_put(text, sizeof text, " = ", 0);
    /* an unknown key's value is quoted when it does not parse, so the key
     * is what the message is about */
    bool quote = value[0] != '"' && (row ? is_string_type(row->type) : !is_value(value));
    text_put(text, sizeof text, value, quote);
    text_put(text, sizeof text, ";", 0);
    while (depth-- > 0)
        text_put(text, sizeof text, " };", 0);

    config_t c;
    config_init(&c);
    int rc = -1;
    if (scan_int_literals(&ctx, text) < 0)
        goto out;
    if (config_read_string(&c, text) != CONFIG_TRUE) {
        fail(&ctx, 0,
             "%s: write numbers as 10 or 1.5, booleans as true or false, lists as "
             "[1, 2] and strings in quotes",
             config_error_text(&c));
        goto out;
    }
    rc = walk(&ctx, cfg, config_root_setting(&c), "", seen);
out:
    config_destroy(&c);
    return rc;
}

static int overrides_apply(nx_config_t *cfg, const char *const *overrides, int n, bool *seen,
                           char *errstr, size_t errstr_size) {
    if (n <= 0)
        return 0;
    if (!(cfg->overrides = calloc((size_t)n, sizeof *cfg->overrides))) {
        snprintf(errstr, errstr_size, "-X: out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (override_one(cfg, overrides[i], seen, errstr, errstr_size) < 0)
            return -1;
        if (!(cfg->overrides[i] = strdup(overrides[i]))) {
            snprintf(errstr, errstr_size, "-X: out of memory");
            return -1;
        }
        cfg->n_overrides = i + 1;
    }
    return 0;
}

int nx_config_type_index(const nx_config_t *cfg, const char *name) {
    for (int i = 0; i < cfg->event_types.n; i++)
        if (strcmp(cfg->event_types.v[i], name) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------ */
/* --dump-config */

static void put_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void put_double(FILE *out, double v) {
    /* %.17g round-trips; force a decimal point so libconfig reads a float */
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    double back = strtod(buf, NULL);
    for (int prec = 1; prec < 17; prec++) {
        char b2[64];
        snprintf(b2, sizeof b2, "%.*g", prec, v);
        if (strtod(b2, NULL) == back) {
            memcpy(buf, b2, sizeof b2);
            break;
        }
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".eEn"))
        fputs(".0", out);
}

static void put_int(FILE *out, int64_t v) {
    /* libconfig needs L for values beyond 32 bits */
    fprintf(out, "%lld%s", (long long)v, (v > INT32_MAX || v < INT32_MIN) ? "L" : "");
}

static void put_value(FILE *out, const nx_config_t *cfg, const nx_cfg_desc_t *d, int indent) {
    const void *p = cfield_ptr(cfg, d);
    switch (d->type) {
    case NX_CT_INT:
        put_int(out, *(const int64_t *)p);
        break;
    case NX_CT_DOUBLE:
        put_double(out, *(const double *)p);
        break;
    case NX_CT_BOOL:
        fputs(*(const int *)p ? "true" : "false", out);
        break;
    case NX_CT_STRING:
    case NX_CT_PATH:
    case NX_CT_ENUM:
        put_string(out, *(char *const *)p ? *(char *const *)p : "");
        break;
    case NX_CT_INTS: {
        const nx_intlist_t *l = p;
        fputc('[', out);
        for (int i = 0; i < l->n; i++) {
            fputs(i ? ", " : "", out);
            put_int(out, l->v[i]);
        }
        fputc(']', out);
        break;
    }
    case NX_CT_DOUBLES: {
        const nx_dbllist_t *l = p;
        fputc('[', out);
        for (int i = 0; i < l->n; i++) {
            fputs(i ? ", " : "", out);
            put_double(out, l->v[i]);
        }
        fputc(']', out);
        break;
    }
    case NX_CT_STRINGS: {
        const nx_strlist_t *l = p;
        fputc('[', out);
        for (int i = 0; i < l->n; i++) {
            fputs(i ? ", " : "", out);
            put_string(out, l->v[i]);
        }
        fputc(']', out);
        break;
    }
    case NX_CT_MAP:
    case NX_CT_RDKAFKA: {
        const nx_strmap_t *m = p;
        if (m->n == 0) {
            fputs("{ }", out);
            break;
        }
        fputs("{\n", out);
        for (int i = 0; i < m->n; i++) {
            char key[256];
            snprintf(key, sizeof key, "%s", m->key[i]);
            if (d->type == NX_CT_RDKAFKA)
                for (char *c = key; *c; c++)
                    if (*c == '.')
                        *c = '_';
            fprintf(out, "%*s%s = ", indent + 2, "", key);
            put_string(out, m->val[i]);
            fputs(";\n", out);
        }
        fprintf(out, "%*s}", indent, "");
        break;
    }
    }
}

/* Number of leading dotted components two names share as groups. */
static int common_groups(const char *a, const char *b, int *depth_b) {
    int common = 0, db = 0;
    bool same = a != NULL;
    for (const char *p = b; *p; p++)
        if (*p == '.')
            db++;
    *depth_b = db;
    if (!same)
        return 0;
    const char *pa = a, *pb = b;
    while (common < db) {
        size_t la = strcspn(pa, "."), lb = strcspn(pb, ".");
        if (pa[la] != '.' || la != lb || strncmp(pa, pb, la) != 0)
            break;
        common++;
        pa += la + 1;
        pb += lb + 1;
    }
    return common;
}

/* Text for troff: a leading dot or quote would start a request; backslash
 * is troff's escape. */
static void man_text(FILE *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && (s[i] == '.' || s[i] == '\''))
            fputs("\\&", out);
        if (s[i] == '\\')
            fputs("\\e", out);
        else if (s[i] == '-')
            fputs("\\-", out);
        else
            fputc(s[i], out);
    }
}

void nx_config_man(FILE *out, const char *version) {
    fprintf(out,
            ".\\\" Generated by `nextactd --man-config` from the configuration table\n"
            ".\\\" (daemon/config.c): edit the table, not this page.\n"
            ".TH NEXTACTD.CONF 5 \"\" \"nextactd %s\" \"File Formats\"\n"
            ".SH NAME\nnextactd.conf \\- configuration of the nextactd prediction daemon\n"
            ".SH SYNOPSIS\n/etc/nextactd/nextactd.conf\n"
            ".SH DESCRIPTION\n"
            "A libconfig file. Keys are grouped (\\fBkafka: { brokers = \"...\"; };\\fR);\n"
            "a key written as \\fIgroup.key\\fR below lives in that group. Unknown keys,\n"
            "values out of range and wrong types stop the start with\n"
            "\\fIfile\\fR:\\fIline\\fR and exit status 78;\n"
            "\\fBnextactd \\-\\-check\\-config\\fR finds them without starting.\n"
            "Relative paths resolve against the directory of the file.\n"
            "\\fBnextactd \\-\\-dump\\-config \\-\\-comments\\fR prints every key with its default.\n"
            ".SH KEYS\n",
            version);
    for (size_t k = 0; k < N_DESC; k++) {
        const nx_cfg_desc_t *d = &nx_config_table[k];
        fputs(".TP\n.B ", out);
        man_text(out, d->name, strlen(d->name));
        fputc('\n', out);
        const char *h = d->help;
        while (*h) {
            size_t l = strcspn(h, "\n");
            man_text(out, h, l);
            fputc('\n', out);
            h += l + (h[l] ? 1 : 0);
        }
        char line[512];
        if (d->type == NX_CT_INT || d->type == NX_CT_DOUBLE || d->type == NX_CT_INTS ||
            d->type == NX_CT_DOUBLES)
            snprintf(line, sizeof line, "Range: %.17g to %.17g. Default: %s", d->min, d->max,
                     d->def ? d->def : "none (required)");
        else if (d->type == NX_CT_ENUM)
            snprintf(line, sizeof line, "One of: %s. Default: %s", d->choices,
                     d->def ? d->def : "none (required)");
        else
            snprintf(line, sizeof line, "Default: %s", d->def ? d->def : "none (required)");
        fputs(".br\n", out);
        man_text(out, line, strlen(line));
        fputc('\n', out);
    }
    fputs(".SH SEE ALSO\n.BR nextactd (8)\n", out);
}

void nx_config_dump(const nx_config_t *cfg, FILE *out, int comments) {
    const char *prev = NULL;
    int open = 0; /* groups open */
    if (comments)
        fputs("# nextactd configuration (libconfig syntax). Generated by\n"
              "# `nextactd --dump-config --comments`; every key with its default.\n",
              out);
    for (size_t k = 0; k < N_DESC; k++) {
        const nx_cfg_desc_t *d = &nx_config_table[k];
        int depth;
        int common = common_groups(prev, d->name, &depth);
        if (common > open)
            common = open;
        while (open > common) {
            open--;
            fprintf(out, "%*s};\n", open * 2, "");
        }
        const char *p = d->name;
        for (int i = 0; i < common; i++)
            p += strcspn(p, ".") + 1;
        while (open < depth) {
            size_t l = strcspn(p, ".");
            fprintf(out, "\n%*s%.*s:\n%*s{\n", open * 2, "", (int)l, p, open * 2, "");
            p += l + 1;
            open++;
        }
        const char *leaf = strrchr(d->name, '.');
        leaf = leaf ? leaf + 1 : d->name;
        int ind = open * 2;
        if (comments) {
            fputc('\n', out);
            const char *h = d->help;
            while (*h) {
                size_t l = strcspn(h, "\n");
                fprintf(out, "%*s# %.*s\n", ind, "", (int)l, h);
                h += l + (h[l] ? 1 : 0);
            }
            if (d->type == NX_CT_INT || d->type == NX_CT_DOUBLE || d->type == NX_CT_INTS ||
                d->type == NX_CT_DOUBLES)
                fprintf(out, "%*s# Range: %.17g to %.17g.", ind, "", d->min, d->max);
            else if (d->type == NX_CT_ENUM)
                fprintf(out, "%*s# One of: %s.", ind, "", d->choices);
            else
                fprintf(out, "%*s#", ind, "");
            fprintf(out, " Default: %s\n", d->def ? d->def : "none (required)");
        }
        bool unset =
            (d->flags & NX_CF_REQUIRED) &&
            (d->type == NX_CT_STRING
                 ? *(char *const *)cfield_ptr(cfg, d) == NULL
                 : d->type == NX_CT_STRINGS && ((const nx_strlist_t *)cfield_ptr(cfg, d))->n == 0);
        if (unset) {
            fprintf(out, "%*s# %s = ...;  (required)\n", ind, "", leaf);
        } else {
            fprintf(out, "%*s%s = ", ind, "", leaf);
            put_value(out, cfg, d, ind);
            fputs(";\n", out);
        }
        prev = d->name;
    }
    while (open > 0) {
        open--;
        fprintf(out, "%*s};\n", open * 2, "");
    }
}
