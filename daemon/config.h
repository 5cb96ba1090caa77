/*
 * config.h: nextactd's configuration, read from a libconfig file through one
 * descriptor table (config_table.c: nx_config_table). Loading, defaults, range
 * checks, --dump-config and the test of conf/nextactd.conf all come from that
 * table.
 *
 * Ownership: nx_config_t owns every string and list in it (copied out of
 * libconfig, whose strings die with config_destroy). Free with
 * nx_config_destroy(). Not thread-safe; read it from the main thread.
 *
 * Durations are stored in the unit their key's name says, as integers:
 * milliseconds for keys ending in _ms, seconds for keys ending in _s; the
 * code converts where it uses them.
 */
#ifndef NX_CONFIG_H
#define NX_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event.h"

/* sysexits.h EX_CONFIG: systemd's RestartPreventExitStatus uses it. */
#define NX_EXIT_CONFIG 78
/* EX_TEMPFAIL: a service the start needs did not answer; systemd restarts. */
#define NX_EXIT_TEMPFAIL 75

#define NX_CONFIG_MAX_LIST 16

/* A list of strings, owned. */
typedef struct nx_strlist {
    int n;
    char *v[NX_CONFIG_MAX_LIST];
} nx_strlist_t;

/* A list of integers. */
typedef struct nx_intlist {
    int n;
    int64_t v[NX_CONFIG_MAX_LIST];
} nx_intlist_t;

/* A list of doubles. */
typedef struct nx_dbllist {
    int n;
    double v[NX_CONFIG_MAX_LIST];
} nx_dbllist_t;

/* An ordered string -> string map (type_map, topic_types, pass-through
 * librdkafka properties), owned. */
#define NX_CONFIG_MAX_MAP 64
typedef struct nx_strmap {
    int n;
    char *key[NX_CONFIG_MAX_MAP];
    char *val[NX_CONFIG_MAX_MAP];
    int line[NX_CONFIG_MAX_MAP]; /* source line, for messages; 0 = default */
} nx_strmap_t;

/* A Schema Registry connection (input.schema_registry, output.schema_registry). */
typedef struct nx_config_registry {
    int enabled;                  /* output only: register the prediction schema at start */
    char *url;                    /* base URL(s), comma-separated; "" = none */
    char *basic_auth_user_info;   /* "user:password", "" = no authentication */
    char *ca_location;            /* PEM CA bundle, "" = the system's */
    char *certificate_location;   /* client certificate (PEM), "" = none */
    char *key_location;           /* its private key (PEM), "" = none */
    char *key_password;           /* the key's passphrase, "" = none */
    int64_t timeout_ms;           /* one request, connecting included */
    int64_t retry_backoff_ms;     /* input: first wait after a failed fetch */
    int64_t retry_backoff_max_ms; /* input: the doubling wait's bound */
    int64_t not_found_retry_ms;   /* input: an id the registry lacks is asked again after */
    int64_t start_timeout_ms;     /* output: registration keeps trying this long at start */
} nx_config_registry_t;

typedef struct nx_config {
    char *path;       /* file it came from, NULL for defaults only */
    char **overrides; /* the -X key=value arguments applied over the file, owned */
    int n_overrides;

    /* top level */
    char *log_level; /* error|warning|notice|info|debug */
    char *state_dir;

    /* kafka */
    struct {
        char *brokers; /* "mock" = librdkafka's in-process mock cluster */
        char *group_id;
        nx_strlist_t input_topics;
        char *output_topic;
        char *dead_letter_topic; /* "" = off */
        int64_t commit_interval_ms;
        int64_t poll_batch; /* events per polled batch */
        int64_t poll_timeout_ms;
        int64_t flush_timeout_ms;        /* producer flush bound at shutdown */
        int transactional;               /* exactly-once (txn.h) */
        int64_t transaction_interval_ms; /* commit the open transaction after this long */
        int64_t transaction_max_events;  /* or once it holds this many predictions */
        nx_strmap_t consumer;            /* librdkafka pass-through */
        nx_strmap_t producer;
    } kafka;

    /* input decoding */
    struct {
        char *framing;                        /* raw|confluent */
        char *writer_schema;                  /* path of the writer schema (raw framing) */
        char *schema_dir;                     /* <id>.avsc files (confluent framing) */
        nx_config_registry_t schema_registry; /* writer schemas by id (confluent framing) */
        char *field_user_id;
        char *field_timestamp;
        char *field_type; /* "" when every topic has a fixed type */
        char *field_item;
        char *field_category;
        char *field_price;
        char *field_quantity;
        char *field_session;
        nx_strmap_t type_map;    /* source value -> configured event type */
        nx_strmap_t topic_types; /* topic -> fixed event type */
        int64_t max_user_id_len; /* bytes */
        int64_t max_string_len;  /* bytes, any other string/bytes */
        int64_t max_collection;  /* items in one array/map */
        double max_price;
        int64_t max_future_ms; /* timestamps further ahead are rejected */
        /* CSV replay */
        nx_strlist_t csv_columns; /* column names; "" or "-" = ignored */
        int csv_header;
        char *csv_delimiter;
        char *csv_timestamp; /* epoch_s|epoch_ms|datetime */
    } input;

    /* output */
    struct {
        char *format;                         /* avro|confluent|json */
        char *schema;                         /* path of prediction.avsc */
        int64_t schema_id;                    /* confluent framing */
        int64_t explain;                      /* reasons per prediction, 0 = off */
        char *explain_class;                  /* the class explained, "" = next_action */
        nx_config_registry_t schema_registry; /* where `schema` is registered at start */
    } output;

    /* event types: classes are these plus `none` */
    nx_strlist_t event_types;

    /* features */
    struct {
        nx_intlist_t windows_s; /* window lengths, seconds */
        int64_t user_ttl_s;
        int64_t max_users;
        int64_t session_gap_s;
        int64_t recent_items;
        double clip; /* normalised features are clipped to ±clip */
        int counts, value, recency, session, revisits, event, time, price;
        int labels, item_popularity, item_rates; /* the label families */
        double label_decay;                      /* per resolved label */
        int64_t item_stats_mb;                   /* the item table's memory */
        int64_t item_stats_window_s;             /* its decay time constant */
        int64_t maintenance_budget_us;           /* per tick */
    } features;

    /* labels */
    struct {
        int64_t horizon_s;
        int64_t allowed_lateness_ms;
        int64_t idle_advance_ms; /* live mode: wall-clock watermark advance */
    } labels;

    /* model */
    struct {
        nx_intlist_t hidden;
        char *activation; /* relu|tanh|sigmoid */
        char *optimizer;  /* adam|sgd|momentum|adagrad */
        double learning_rate;
        double momentum;
        double beta1, beta2, epsilon;
        double weight_decay;
        double clip_norm; /* 0 = off */
        int64_t warmup_steps;
        double lr_decay;        /* inverse-time decay towards the floor, 0 = off */
        double lr_floor;        /* the floor as a share of learning_rate, 0 .. 1 */
        double head_init_scale; /* output layer's init bound, times Xavier's */
        int64_t batch_size;
        int64_t seed;
        nx_dbllist_t class_weights; /* empty = all 1 */
        double negative_rate;       /* keep this share of `none` examples, 1 = all */
        int64_t threads;            /* BLAS threads; 1 = deterministic */
        char *trainer_priority;     /* normal|low|idle: the live trainer thread */
        int64_t replay_lag_ms;      /* replay: event time between training and its use */
        int enabled;                /* 0: decode, features, produce only */
        int64_t metrics_window;
        int guard;                /* the model guard (warming, rollback) */
        int64_t guard_window;     /* examples per guard window */
        double guard_margin;      /* degradation that rolls back, relative */
        int64_t sync_interval_ms; /* between model syncs of a group, 0 = off */
        char *sync_topic;         /* "" = <group_id>-model with state.changelog, else off */
    } model;

    /* checkpoints */
    struct {
        char *dir; /* "" = <state_dir>/checkpoints */
        int64_t interval_s;
        int64_t keep;
    } checkpoint;

    /* user state in Kafka (changelog.h) */
    struct {
        char *changelog;            /* compacted changelog topic, "" = off */
        int64_t replication_factor; /* of the topic when it is created, -1 = broker default */
        char *instance_id;          /* "" = the host name */
    } state;

    /* metrics endpoint */
    struct {
        char *listen; /* host:port, "" = off */
        int64_t status_interval_s;
    } metrics;
} nx_config_t;

/* Defaults only. Caller frees with nx_config_destroy(). NULL on OOM. */
nx_config_t *nx_config_new_defaults(void);

/* Loads FILE over the defaults and validates every value, including
 * librdkafka pass-through properties (asked of librdkafka itself).
 * On error returns NULL and writes "FILE:LINE: what and what is allowed" to
 * errstr. Caller frees with nx_config_destroy(). */
nx_config_t *nx_config_load(const char *path, char *errstr, size_t errstr_size);

/* nx_config_load, then the command line's `-X key=value` overrides, in order,
 * before any check that involves more than one key. A key is the dotted name
 * of a table row (model.hidden, kafka.brokers) or an entry of a map row
 * (kafka.consumer.fetch_wait_max_ms: the one entry is added or replaced);
 * the value is libconfig syntax ([32, 16], true, 10, "text"), and a string
 * row takes an unquoted value as the text itself. Each value gets the file's
 * type and range checks; an error reads "-X key=value: what and why".
 * path NULL = the defaults instead of a file (required keys not demanded).
 * The overrides are copied into the result, so nx_config_reload can apply
 * them again. */
nx_config_t *nx_config_load_ex(const char *path, const char *const *overrides, int n_overrides,
                               char *errstr, size_t errstr_size);

/* The file cfg came from, read again with the same overrides (SIGHUP). */
nx_config_t *nx_config_reload(const nx_config_t *cfg, char *errstr, size_t errstr_size);

/* -X arguments as a command line collects them; the strings are not copied
 * (they point into argv). */
#define NX_CONFIG_MAX_OVERRIDES 64
typedef struct nx_config_overrides {
    int n;
    const char *v[NX_CONFIG_MAX_OVERRIDES];
} nx_config_overrides_t;

/* Adds one; -1 (with a message on stderr) past NX_CONFIG_MAX_OVERRIDES. */
int nx_config_overrides_add(nx_config_overrides_t *ov, const char *arg);

/* The nextactd.conf(5) manual page (troff) from the same table, so the page
 * and the daemon cannot disagree. */
void nx_config_man(FILE *out, const char *version);

/* nx_config_dump flags. */
enum {
    NX_CONFIG_DUMP_COMMENTS = 1, /* each key preceded by its help text, default and range */
    NX_CONFIG_DUMP_SECRETS = 2,  /* passwords and keys as they are, not masked */
};

/* Writes the effective configuration in libconfig syntax. Unless flags has
 * NX_CONFIG_DUMP_SECRETS, a secret's value (the table's secret keys, and
 * pass-through librdkafka properties whose name says password,
 * secret, token or credentials) is written as NX_CONFIG_MASK, so a dump can
 * be pasted into a ticket or a log. */
#define NX_CONFIG_MASK "********"
void nx_config_dump(const nx_config_t *cfg, FILE *out, int flags);

void nx_config_destroy(nx_config_t *cfg);

/* Index of an event type name in cfg->event_types, -1 if unknown. */
int nx_config_type_index(const nx_config_t *cfg, const char *name);

/* Names of every key of the table, in order (for the conf-file test).
 * Valid for the program's lifetime; NULL-terminated. */
const char *const *nx_config_keys(void);

#endif /* NX_CONFIG_H */
