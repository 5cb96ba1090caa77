/* kafka_stats.c: librdkafka's statistics JSON, read for the consumer lag
 * and the brokers up (kafka_int.h).
 *
 * A plain scan in document order rather than a JSON parser: the document
 * comes every statistics.interval.ms and only a few numbers are wanted.
 * The "topics" object names each topic ("topic":"...") before its
 * partitions, and each partition object has "partition":N before
 * "consumer_lag":N and "consumer_lag_stored":N (the brokers' "toppars" also
 * name topic and partition, but carry no lag). Each broker object has
 * "nodeid":N before its "state" (N is -1 for the internal broker and for
 * bootstrap brokers not yet known by id; the group's own "state":"up" is
 * lower case and has no nodeid).
 */
#include <stdlib.h>
#include <string.h>

#include "kafka_int.h"

/* The index of the input topic named by the quoted string at name, or -1. */
static int topic_index(const char *name, char *const *topics, int n_topics) {
    const char *end = strchr(name, '"');
    if (!end)
        return -1;
    for (int i = 0; i < n_topics; i++)
        if (strlen(topics[i]) == (size_t)(end - name) &&
            strncmp(topics[i], name, (size_t)(end - name)) == 0)
            return i;
    return -1;
}

void nx_kafka_parse_stats(const char *json, char *const *topics, int n_topics, nx_kafka_lag_t *lags,
                          int max_lags, nx_kafka_parsed_stats_t *out) {
    static const char k_topic[] = "\"topic\":\"", k_part[] = "\"partition\":",
                      k_lag[] = "\"consumer_lag\":", k_stored[] = "\"consumer_lag_stored\":",
                      k_node[] = "\"nodeid\":", k_state[] = "\"state\":";
    int topic = -1, n = 0, up = 0;
    long long partition = -1, node = -1;
    for (const char *p = json; *p; p++) {
        if (*p != '"')
            continue;
        if (strncmp(p, k_topic, sizeof k_topic - 1) == 0) {
            topic = topic_index(p + sizeof k_topic - 1, topics, n_topics);
        } else if (strncmp(p, k_part, sizeof k_part - 1) == 0) {
            partition = strtoll(p + sizeof k_part - 1, NULL, 10);
        } else if (strncmp(p, k_lag, sizeof k_lag - 1) == 0) {
            /* partition -1 is librdkafka's unassigned-messages queue */
            if (partition >= 0 && partition <= INT32_MAX && topic >= 0 && n < max_lags)
                lags[n++] = (nx_kafka_lag_t){topic, (int32_t)partition,
                                             strtoll(p + sizeof k_lag - 1, NULL, 10)};
        } else if (strncmp(p, k_stored, sizeof k_stored - 1) == 0) {
            /* lag behind the offsets we stored (acknowledged predictions):
             * known as soon as one is stored, where consumer_lag waits for
             * librdkafka to learn the committed offset */
            long long v = strtoll(p + sizeof k_stored - 1, NULL, 10);
            if (n > 0 && v >= 0 && lags[n - 1].topic == topic && lags[n - 1].partition == partition)
                lags[n - 1].lag = v;
        } else if (strncmp(p, k_node, sizeof k_node - 1) == 0) {
            node = strtoll(p + sizeof k_node - 1, NULL, 10);
        } else if (strncmp(p, k_state, sizeof k_state - 1) == 0) {
            up += node >= 0 && strncmp(p + sizeof k_state - 1, "\"UP\"", 4) == 0;
            node = -1;
        }
    }
    /* -1 means unknown (not fetching yet): left out */
    int64_t sum = 0;
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (lags[i].lag >= 0) {
            sum += lags[i].lag;
            lags[kept++] = lags[i];
        }
    out->n_lags = kept;
    out->consumer_lag = kept ? sum : -1;
    out->brokers_up = up;
}
