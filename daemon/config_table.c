/*
 * config_table.c: the configuration table, nextactd's every key in one
 * structure (config_int.h). One row per key: name, type, field, default (in
 * libconfig syntax, parsed by the same code that reads the file), range and
 * help. The loader (config.c), the -X overrides (config_override.c), the
 * dump and the man page (config_dump.c) all read these rows.
 *
 * This file is long because it is one array, kept whole on purpose: the
 * order of its rows is the order of the dump, of conf/nextactd.conf and of
 * the man page, and each row's help text belongs next to its range. Cutting
 * it would scatter one list over several places.
 */
#include "config_int.h"

#include "mlp.h"
#include "store.h"

#define LEN_MAX   4096.0 /* longest path or string we accept in the file */
#define TOPIC_MAX 249.0  /* Kafka's limit on topic name length */

/* clang-format off */
const nx_cfg_desc_t nx_config_table[] = {
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
     "Exactly-once: one transactional producer writes each span of input's predictions,\n"
     "dead letters, changelog records and input offsets in one Kafka transaction (every\n"
     "transaction_interval_ms or transaction_max_events). Needs state.changelog; its\n"
     "transactional.id is \"<group_id>-state-<state.instance_id>\". Consumers of the output\n"
     "read with isolation.level=read_committed. false = at least once, each prediction\n"
     "carrying its input offset."},
    {"kafka.transaction_interval_ms", NX_CT_INT, OFF(kafka.transaction_interval_ms), "100", 10, 60000, NULL, 0,
     "With kafka.transactional: the open transaction commits after this many milliseconds;\n"
     "a prediction becomes visible to read_committed consumers at its commit."},
    {"kafka.transaction_max_events", NX_CT_INT, OFF(kafka.transaction_max_events), "50000", 1, 10000000, NULL, 0,
     "With kafka.transactional: the open transaction commits once it holds this many\n"
     "predictions, if transaction_interval_ms has not passed first."},
    {"kafka.consumer", NX_CT_RDKAFKA, OFF(kafka.consumer), "{}", 0, 0, NULL, 0,
     "librdkafka consumer properties passed through, dots written as underscores\n"
     "(security_protocol = \"SSL\"; ssl_ca_location = \"/etc/ssl/ca.pem\";). Refused: those\n"
     "nextactd owns (group_id, bootstrap_servers: use the keys above; enable_auto_commit,\n"
     "auto_commit_interval_ms, enable_auto_offset_store), auto_offset_reset other than\n"
     "earliest, isolation_level other than read_committed, a cooperative-sticky\n"
     "partition_assignment_strategy."},
    {"kafka.producer", NX_CT_RDKAFKA, OFF(kafka.producer), "{}", 0, 0, NULL, 0,
     "librdkafka producer properties passed through, as kafka.consumer. Refused, as they\n"
     "would lose or duplicate predictions: acks other than all, enable_idempotence =\n"
     "false, max_in_flight over 5, retries = 0, delivery_report_only_error,\n"
     "transactional_id (kafka.transactional derives it); and bootstrap_servers."},

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
    {"input.schema_registry.basic_auth_user_info", NX_CT_STRING, OFF(input.schema_registry.basic_auth_user_info), "\"\"", 0, LEN_MAX, NULL, NX_CF_SECRET,
     "\"user:password\" for HTTP basic authentication (Confluent Cloud: \"key:secret\"); \"\" = none."},
    {"input.schema_registry.ca_location", NX_CT_PATH, OFF(input.schema_registry.ca_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "PEM file of the CA certificates that sign the registry's; \"\" = the system's."},
    {"input.schema_registry.certificate_location", NX_CT_PATH, OFF(input.schema_registry.certificate_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "Client certificate (PEM) for mutual TLS; \"\" = none."},
    {"input.schema_registry.key_location", NX_CT_PATH, OFF(input.schema_registry.key_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "Private key (PEM) of the client certificate; \"\" = none."},
    {"input.schema_registry.key_password", NX_CT_STRING, OFF(input.schema_registry.key_password), "\"\"", 0, LEN_MAX, NULL, NX_CF_SECRET,
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
    {"output.schema_registry.basic_auth_user_info", NX_CT_STRING, OFF(output.schema_registry.basic_auth_user_info), "\"\"", 0, LEN_MAX, NULL, NX_CF_SECRET,
     "As input.schema_registry.basic_auth_user_info."},
    {"output.schema_registry.ca_location", NX_CT_PATH, OFF(output.schema_registry.ca_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "As input.schema_registry.ca_location."},
    {"output.schema_registry.certificate_location", NX_CT_PATH, OFF(output.schema_registry.certificate_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "As input.schema_registry.certificate_location."},
    {"output.schema_registry.key_location", NX_CT_PATH, OFF(output.schema_registry.key_location), "\"\"", 0, LEN_MAX, NULL, 0,
     "As input.schema_registry.key_location."},
    {"output.schema_registry.key_password", NX_CT_STRING, OFF(output.schema_registry.key_password), "\"\"", 0, LEN_MAX, NULL, NX_CF_SECRET,
     "As input.schema_registry.key_password."},
    {"output.schema_registry.timeout_ms", NX_CT_INT, OFF(output.schema_registry.timeout_ms), "5000", 100, 600000, NULL, 0,
     "Longest the registration request may take, milliseconds."},
    {"output.schema_registry.start_timeout_ms", NX_CT_INT, OFF(output.schema_registry.start_timeout_ms), "30000", 0, 3600000, NULL, 0,
     "While the registry does not answer (or answers 5xx), the start tries the registration again\n"
     "(waits doubling from input.schema_registry.retry_backoff_ms) for this long, milliseconds;\n"
     "then it exits 75 (EX_TEMPFAIL) and systemd starts it again. A refusal (409, 422, other\n"
     "4xx) exits 78 at once."},

    {"features.windows_s", NX_CT_INTS, OFF(features.windows_s), "[300, 3600, 86400]", 1, 2592000, NULL, 0,
     "Rolling window lengths, seconds (at most 4): exponentially decayed counters with\n"
     "these time constants (constant memory per user, O(1) update in any time order)."},
    {"features.user_ttl_s", NX_CT_INT, OFF(features.user_ttl_s), "31536000", 60, 31536000, NULL, 0,
     "Users idle this long (event time) are forgotten, seconds. A returning user's items\n"
     "and categories last seen and purchase history carry much of what predicts them, and\n"
     "the model sees how old they are: on the generator a 2-day TTL cost 0.015 of cart AUC\n"
     "(bench/NOTES.md). Memory is bounded by max_users whatever this is; shorten it for a\n"
     "data-retention rule."},
    {"features.max_users", NX_CT_INT, OFF(features.max_users), "1000000", 1, 1000000000, NULL, 0,
     "Hard cap on users in the store; the least recently active are evicted. About 160\n"
     "bytes a user with the default features (a million: ~160 MB)."},
    {"features.session_gap_s", NX_CT_INT, OFF(features.session_gap_s), "1800", 1, 86400, NULL, 0,
     "A gap this long starts a new session when events carry no session id, seconds."},
    {"features.recent_items", NX_CT_INT, OFF(features.recent_items), "8", 0, 32, NULL, 0,
     "Recently seen items kept per user, to count revisits."},
    {"features.clip", NX_CT_DOUBLE, OFF(features.clip), "5.0", 0.5, 100, NULL, 0,
     "Normalised features are clipped to [-clip, clip]. Up to 8, a user's pending example keeps "
     "them in 8 bits (error at most clip/254); above, in 16."},
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
    {"features.labels", NX_CT_BOOL, OFF(features.labels), "false", 0, 0, NULL, 0,
     "Family: the user's own label history, the share of each class (event types, none)\n"
     "among the user's resolved next actions, decayed by label_decay per label."},
    {"features.label_decay", NX_CT_DOUBLE, OFF(features.label_decay), "0.95", 0.01, 0.999, NULL, 0,
     "The labels family's counts are multiplied by this at each resolved label (0.95: about\n"
     "the last 20)."},
    {"features.item_popularity", NX_CT_BOOL, OFF(features.item_popularity), "false", 0, 0, NULL, 0,
     "Family: decayed events of all users on the event's item and category (item table)."},
    {"features.item_rates", NX_CT_BOOL, OFF(features.item_rates), "false", 0, 0, NULL, 0,
     "Family: per class, how often an event of any user on the item and on the category\n"
     "was followed by it within the horizon (item table; shrunk to the all-item share)."},
    {"features.item_stats_mb", NX_CT_INT, OFF(features.item_stats_mb), "32", 1, 4096, NULL, 0,
     "Memory of the item table, MB (items and categories, hashed, 32 bytes a slot): a\n"
     "bound, never grown; saved with the checkpoint."},
    {"features.item_stats_window_s", NX_CT_INT, OFF(features.item_stats_window_s), "86400", 60, 31536000, NULL, 0,
     "Decay time constant of the item table's counters, seconds."},
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
    {"model.hidden", NX_CT_INTS, OFF(model.hidden), "[48]", 1, 4096, NULL, 0,
     "Hidden layer widths (at most 8 layers; [] for a linear model). One layer of 48 is\n"
     "closer to the generator's truth than the seed's [64, 32] (with the learning rate\n"
     "and weight decay below: excess log loss 1.40% against 1.53%, at H = 1800 s and\n"
     "300 s alike; bench/NOTES.md) at under half the FLOPs; try [64, 32] where\n"
     "features interact more."},
    {"model.activation", NX_CT_ENUM, OFF(model.activation), "\"relu\"", 0, 0, "relu|tanh|sigmoid", 0,
     "Activation of the hidden layers."},
    {"model.optimizer", NX_CT_ENUM, OFF(model.optimizer), "\"adam\"", 0, 0, "adam|sgd|momentum|adagrad", 0,
     "Optimizer."},
    {"model.learning_rate", NX_CT_DOUBLE, OFF(model.learning_rate), "0.007", 1e-9, 10, NULL, 0,
     "Learning rate at the start (after warm-up); see lr_decay and lr_floor."},
    {"model.momentum", NX_CT_DOUBLE, OFF(model.momentum), "0.9", 0, 0.9999, NULL, 0,
     "Momentum (optimizer = momentum)."},
    {"model.beta1", NX_CT_DOUBLE, OFF(model.beta1), "0.9", 0, 0.9999, NULL, 0, "Adam beta1."},
    {"model.beta2", NX_CT_DOUBLE, OFF(model.beta2), "0.999", 0, 0.999999, NULL, 0, "Adam beta2."},
    {"model.epsilon", NX_CT_DOUBLE, OFF(model.epsilon), "1e-08", 1e-12, 1, NULL, 0,
     "Adam and AdaGrad epsilon."},
    {"model.weight_decay", NX_CT_DOUBLE, OFF(model.weight_decay), "1e-05", 0, 1, NULL, 0,
     "L2 weight decay (a little keeps weights from growing on a long stream)."},
    {"model.clip_norm", NX_CT_DOUBLE, OFF(model.clip_norm), "0.0", 0, 1e6, NULL, 0,
     "Gradient-norm clipping; 0 = off."},
    {"model.warmup_steps", NX_CT_INT, OFF(model.warmup_steps), "0", 0, 1000000000, NULL, 0,
     "Linear learning-rate warm-up, steps; 0 = off."},
    {"model.lr_decay", NX_CT_DOUBLE, OFF(model.lr_decay), "0.005", 0, 0.5, NULL, 0,
     "Learning-rate decay after warm-up: the rate at step t is\n"
     "lr_min + (lr - lr_min) / (1 + lr_decay * t), lr_min = lr_floor * lr; 0 = off.\n"
     "The defaults learn fast from a cold start (0.007) and are within 10% of the floor\n"
     "after 20k steps (640k examples at batch 32)."},
    {"model.lr_floor", NX_CT_DOUBLE, OFF(model.lr_floor), "0.1", 0, 1, NULL, 0,
     "The rate the decay settles at and keeps for good, as a share of learning_rate; 0 =\n"
     "decay to 0, a model that stops learning. Measured on the generator with a concept\n"
     "drift (test_quality --drift), 0.1 is back within 2% of the oracle's log loss\n"
     "50k-100k events after it (lower floors follow more slowly: 0.03 with [64, 32], 3.9%;\n"
     "a rate decayed to ~0, 31%); 0.2-0.3 follow a little faster but are noisier on a\n"
     "stream that does not change."},
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
    {"model.trainer_priority", NX_CT_ENUM, OFF(model.trainer_priority), "\"low\"", 0, 0, "normal|low|idle", 0,
     "Scheduling of the training thread in the live daemon, so that predictions never wait\n"
     "on training: low = nice 19 (under contention it gets a few percent of a core and the\n"
     "loop preempts it at once), idle = SCHED_IDLE (only CPU time nothing else wants; on a\n"
     "saturated host the model may stop learning), normal = as the loop. When the trainer\n"
     "falls 8 segments (about 2,000 events) behind, examples are dropped, counted in\n"
     "nextactd_training_examples_shed_total, rather than delaying predictions."},
    {"model.replay_lag_ms", NX_CT_INT, OFF(model.replay_lag_ms), "1000", 0, 86400000, NULL, 0,
     "Replay: each prediction uses the weights trained on the examples resolved at least\n"
     "this long (event time) before its event, as a live trainer with this latency would\n"
     "have them; 0 = every example resolved before it. At most 15 segments of 256 events\n"
     "behind the newest: on a stream denser than that in event time the bound is in events.\n"
     "The live daemon always predicts with the newest weights."},
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
    {"model.sync_interval_ms", NX_CT_INT, OFF(model.sync_interval_ms), "5000", 0, 3600000, NULL, 0,
     "Length of a model sync round in a group of daemons (model.sync_topic), milliseconds;\n"
     "rounds follow the wall clock. Each round every instance publishes a copy of its model\n"
     "and rebases it on the mean of the round's copies, weighted by the examples each\n"
     "trained since its previous copy. 0 = off."},
    {"model.sync_topic", NX_CT_STRING, OFF(model.sync_topic), "\"\"", 0, TOPIC_MAX, NULL, 0,
     "Compacted topic the group's models meet in, one record per instance (key =\n"
     "state.instance_id), created when missing. \"\" = \"<group_id>-model\" when\n"
     "state.changelog is set, off otherwise: a single daemon has no one to sync with, and\n"
     "without syncs its model stays deterministic. A new or restarted instance starts from\n"
     "the group's freshest model."},

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
     "host:port of the /metrics, /healthz and /readyz endpoint; \"\" = off."},
    {"metrics.status_interval_s", NX_CT_INT, OFF(metrics.status_interval_s), "5", 1, 3600, NULL, 0,
     "Seconds between live status lines (systemd STATUS=, terminal)."},
};
/* clang-format on */

#define N_ROWS (sizeof nx_config_table / sizeof nx_config_table[0])

const size_t nx_config_n_rows = N_ROWS;

const char *const *nx_config_keys(void) {
    static const char *keys[N_ROWS + 1];
    if (!keys[0])
        for (size_t i = 0; i < N_ROWS; i++)
            keys[i] = nx_config_table[i].name;
    return keys;
}
