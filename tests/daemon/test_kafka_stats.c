/*
 * test_kafka_stats: the consumer lag and brokers up read from librdkafka's
 * statistics JSON (kafka_stats.c), on documents shaped as librdkafka 2.0.2
 * writes them (its STATISTICS.md): brokers with their nodeid and state,
 * the bootstrap and internal brokers (nodeid -1), topics with partitions
 * (the -1 partition of unassigned messages among them), the group's own
 * lower-case state. Also truncated and foreign documents.
 */
#include <string.h>

#include "check.h"
#include "kafka_int.h"

static char *topics[] = {"clicks", "orders"};

static const char doc[] =
    "{\"name\":\"rdkafka#consumer-1\",\"type\":\"consumer\",\"ts\":1,"
    "\"brokers\":{"
    "\"127.0.0.1:39092/bootstrap\":{\"name\":\"127.0.0.1:39092/bootstrap\",\"nodeid\":-1,"
    "\"state\":\"UP\",\"toppars\":{}},"
    "\"GroupCoordinator\":{\"name\":\"GroupCoordinator\",\"nodeid\":-1,\"state\":\"UP\"},"
    "\"127.0.0.1:39092/1\":{\"name\":\"127.0.0.1:39092/1\",\"nodeid\":1,\"state\":\"UP\","
    "\"toppars\":{\"clicks-0\":{\"topic\":\"clicks\",\"partition\":0}}},"
    "\"127.0.0.1:39093/2\":{\"name\":\"127.0.0.1:39093/2\",\"nodeid\":2,\"state\":\"DOWN\"}},"
    "\"topics\":{"
    "\"clicks\":{\"topic\":\"clicks\",\"partitions\":{"
    "\"0\":{\"partition\":0,\"leader\":1,\"consumer_lag\":120,\"consumer_lag_stored\":100},"
    "\"1\":{\"partition\":1,\"leader\":1,\"consumer_lag\":7,\"consumer_lag_stored\":-1},"
    "\"2\":{\"partition\":2,\"leader\":1,\"consumer_lag\":-1,\"consumer_lag_stored\":-1},"
    "\"-1\":{\"partition\":-1,\"leader\":-1,\"consumer_lag\":-1}}},"
    "\"other\":{\"topic\":\"other\",\"partitions\":{"
    "\"0\":{\"partition\":0,\"consumer_lag\":999}}},"
    "\"orders\":{\"topic\":\"orders\",\"partitions\":{"
    "\"3\":{\"partition\":3,\"consumer_lag\":40,\"consumer_lag_stored\":30}}}},"
    "\"cgrp\":{\"state\":\"up\",\"join_state\":\"steady\"}}";

int main(void) {
    nx_kafka_lag_t lags[NX_KAFKA_MAX_LAGS];
    nx_kafka_parsed_stats_t st;

    /* stored lag over committed lag; unknown (-1) and foreign topics left
     * out; one broker up (the bootstrap and coordinator have no id) */
    nx_kafka_parse_stats(doc, topics, 2, lags, NX_KAFKA_MAX_LAGS, &st);
    CHECK_INT(st.n_lags, 3);
    CHECK_INT(st.consumer_lag, 100 + 7 + 30);
    CHECK_INT(st.brokers_up, 1);
    CHECK_INT(lags[0].topic, 0);
    CHECK_INT(lags[0].partition, 0);
    CHECK_INT(lags[0].lag, 100);
    CHECK_INT(lags[1].partition, 1);
    CHECK_INT(lags[1].lag, 7);
    CHECK_INT(lags[2].topic, 1);
    CHECK_INT(lags[2].partition, 3);
    CHECK_INT(lags[2].lag, 30);

    /* room for one: the first only */
    nx_kafka_parse_stats(doc, topics, 2, lags, 1, &st);
    CHECK_INT(st.n_lags, 1);
    CHECK_INT(st.consumer_lag, 100);

    /* no lag known yet (a consumer before its first fetch) */
    nx_kafka_parse_stats("{\"topics\":{\"clicks\":{\"topic\":\"clicks\",\"partitions\":{"
                         "\"0\":{\"partition\":0,\"consumer_lag\":-1}}}}}",
                         topics, 2, lags, NX_KAFKA_MAX_LAGS, &st);
    CHECK_INT(st.n_lags, 0);
    CHECK_INT(st.consumer_lag, -1);
    CHECK_INT(st.brokers_up, 0);

    /* every prefix of the document (a truncated one), and documents that
     * are not librdkafka's: no crash, nothing invented */
    static char buf[sizeof doc];
    for (size_t n = 0; n < sizeof doc; n++) {
        memcpy(buf, doc, n);
        buf[n] = '\0';
        nx_kafka_parse_stats(buf, topics, 2, lags, NX_KAFKA_MAX_LAGS, &st);
        CHECK(st.n_lags <= 3);
        CHECK(st.brokers_up <= 1);
    }
    const char *odd[] = {"",
                         "\"",
                         "\"topic\":\"",
                         "\"topic\":\"clicks",
                         "\"partition\":",
                         "\"consumer_lag\":12",
                         "\"nodeid\":3,\"state\":",
                         "[1,2,3]"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        nx_kafka_parse_stats(odd[i], topics, 2, lags, NX_KAFKA_MAX_LAGS, &st);
        CHECK_INT(st.n_lags, 0);
        CHECK_INT(st.brokers_up, 0);
    }
    return nx_check_exit("test_kafka_stats");
}
