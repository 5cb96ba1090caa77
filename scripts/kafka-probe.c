/*
 * kafka-probe: exits 0 once the broker at BROKERS answers a metadata
 * request within TIMEOUT_MS, 1 otherwise. scripts/kafka compiles it once
 * into its cache and uses it to tell that a started broker is ready.
 *
 * usage: kafka-probe BROKERS [TIMEOUT_MS]
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    char err[512];
    if (argc < 2) {
        fprintf(stderr, "usage: kafka-probe BROKERS [TIMEOUT_MS]\n");
        return 2;
    }
    int timeout_ms = argc > 2 ? atoi(argv[2]) : 2000;
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
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    int ok = e == RD_KAFKA_RESP_ERR_NO_ERROR && md->broker_cnt > 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return ok ? 0 : 1;
}
