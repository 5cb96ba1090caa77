/*
 * kafka-probe: the small Kafka client scripts/kafka needs.
 *
 *   kafka-probe BROKERS [TIMEOUT_MS]            exit 0 once the broker answers
 *                                               a metadata request in time
 *   kafka-probe BROKERS create TOPIC PARTITIONS create a topic (replication 1);
 *                                               an existing one is fine
 *
 * scripts/kafka compiles it once into its cache.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int create_topic(rd_kafka_t *rk, const char *topic, int partitions) {
    char err[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof err);
    if (!nt) {
        fprintf(stderr, "kafka-probe: %s\n", err);
        return 2;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 1;
    if (!ev) {
        fprintf(stderr, "kafka-probe: no answer to CreateTopics in 30 s\n");
    } else if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "kafka-probe: %s\n", rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t e =
            n == 1 ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = 0;
        else
            fprintf(stderr, "kafka-probe: %s: %s\n", topic, rd_kafka_err2str(e));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

int main(int argc, char **argv) {
    char err[512];
    if (argc < 2) {
        fprintf(stderr, "usage: kafka-probe BROKERS [TIMEOUT_MS] | BROKERS create TOPIC PARTS\n");
        return 2;
    }
    int create = argc == 5 && strcmp(argv[2], "create") == 0;
    int timeout_ms = !create && argc > 2 ? atoi(argv[2]) : 2000;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka-probe: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "kafka-probe: %s\n", err);
        return 2;
    }
    int rc;
    if (create) {
        rc = create_topic(rk, argv[3], atoi(argv[4]));
    } else {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
        rc = e == RD_KAFKA_RESP_ERR_NO_ERROR && md->broker_cnt > 0 ? 0 : 1;
        if (md)
            rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
    return rc;
}
