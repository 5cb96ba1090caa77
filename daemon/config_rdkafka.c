/*
 * config_rdkafka.c: the librdkafka pass-through properties (kafka.consumer,
 * kafka.producer) as the loader checks them: librdkafka's own verdict on a
 * name and value, and the properties nextactd refuses because delivery
 * rests on them (config_int.h).
 */
#include "config_int.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Asks librdkafka whether it knows `name` = `value` (client-level first,
 * then topic-level properties, which librdkafka also takes on its conf).
 * On success, canon holds librdkafka's own spelling of the value ("all" and
 * "-1" both read "-1", "T" and "true" read "true"). */
int nx_config_rdkafka_check(const char *name, const char *value, char *canon, size_t canon_size,
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
    {"isolation.level", NX_RDK_CONSUMER, NX_RDK_ONLY, "read_committed",
     "only read_committed: records of transactions aborted upstream would be predicted, "
     "trained on and counted into the users' windows"},
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
     "kafka.transactional = true derives it from kafka.group_id and state.instance_id, so "
     "that a restarted instance fences its predecessor"},
};
/* clang-format on */

/* Whether `list` ("a|b", or a property's comma list when sep is ',') holds
 * `word`, case-insensitively. */
bool nx_config_list_has(const char *list, char sep, const char *word) {
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
const char *nx_config_rdkafka_refused(int side, const char *property, const char *canon) {
    for (size_t i = 0; i < sizeof nx_rdk_refused / sizeof nx_rdk_refused[0]; i++) {
        const nx_rdk_refusal_t *r = &nx_rdk_refused[i];
        if (!(r->side & side) || strcmp(r->property, property) != 0)
            continue;
        bool refused = true;
        switch (r->rule) {
        case NX_RDK_ANY:
            break;
        case NX_RDK_ONLY:
            refused = !nx_config_list_has(r->values, '|', canon);
            break;
        case NX_RDK_NOT:
            refused = nx_config_list_has(r->values, '|', canon);
            break;
        case NX_RDK_NOT_WITH:
            refused = nx_config_list_has(canon, ',', r->values);
            break;
        }
        if (refused)
            return r->why;
    }
    return NULL;
}
