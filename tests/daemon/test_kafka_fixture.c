/*
 * test_kafka_fixture: the real broker round-trips records. Creates a topic
 * with 4 partitions, produces 4000 keyed records with delivery reports,
 * consumes them with a consumer group, and checks that each arrives exactly
 * once, that one key always lands on one partition, and that the group's
 * committed offsets reach the end offsets.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "kafka_fixture.h"

#define N_RECORDS  4000
#define PARTITIONS 4
#define N_KEYS     97 /* prime, so keys spread over all partitions */

static int delivered, delivery_failed;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err)
        delivery_failed++;
    else
        delivered++;
}

int main(void) {
    char err[512], topic[128];
    static unsigned char seen[N_RECORDS];
    int key_partition[N_KEYS];
    memset(key_partition, -1, sizeof key_partition);

    nx_fixture_topic_name(topic, sizeof topic, "fixture");
    if (nx_fixture_create_topic(topic, PARTITIONS, err, sizeof err) < 0) {
        fprintf(stderr, "create topic: %s\n", err);
        nx_fixture_print_log();
        return 1;
    }

    /* produce */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", nx_fixture_brokers(), err, sizeof err) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    CHECK(prod != NULL);
    if (!prod)
        return nx_check_exit("test_kafka_fixture");
    for (int i = 0; i < N_RECORDS; i++) {
        char key[16], val[32];
        int kl = snprintf(key, sizeof key, "user-%d", i % N_KEYS);
        int vl = snprintf(val, sizeof val, "%d", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, kl),
                                      RD_KAFKA_V_VALUE(val, vl),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(prod, 100);
        CHECK_INT(e, RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_poll(prod, 0);
    }
    CHECK_INT(rd_kafka_flush(prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK_INT(delivered, N_RECORDS);
    CHECK_INT(delivery_failed, 0);
    long long ends[PARTITIONS];
    CHECK_INT(nx_fixture_end_offsets(prod, topic, PARTITIONS, ends), N_RECORDS);
    for (int p = 0; p < PARTITIONS; p++)
        CHECK(ends[p] > 0); /* every partition got records */
    rd_kafka_destroy(prod);

    /* consume with a group, committing as we go */
    char group[160];
    snprintf(group, sizeof group, "%s-group", topic);
    rd_kafka_t *cons = nx_fixture_consumer(group, err, sizeof err, NULL);
    CHECK(cons != NULL);
    if (!cons)
        return nx_check_exit("test_kafka_fixture");
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    CHECK_INT(rd_kafka_subscribe(cons, sub), 0);
    rd_kafka_topic_partition_list_destroy(sub);
    int got = 0, dups = 0;
    /* bounded: 60 s covers group join (~3 s) and the fetches */
    time_t deadline = time(NULL) + 60;
    while (got < N_RECORDS && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
        if (!m)
            continue;
        if (!m->err) {
            char buf[32];
            size_t n = m->len < sizeof buf - 1 ? m->len : sizeof buf - 1;
            memcpy(buf, m->payload, n);
            buf[n] = '\0';
            int i = atoi(buf);
            CHECK(i >= 0 && i < N_RECORDS);
            if (i >= 0 && i < N_RECORDS) {
                if (seen[i])
                    dups++;
                seen[i] = 1;
                int k = i % N_KEYS;
                if (key_partition[k] < 0)
                    key_partition[k] = m->partition;
                CHECK_INT(key_partition[k], m->partition);
            }
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    CHECK_INT(got, N_RECORDS);
    CHECK_INT(dups, 0);
    CHECK_INT(rd_kafka_commit(cons, NULL, 0), 0);

    /* committed offsets reach the end offsets */
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p);
    CHECK_INT(rd_kafka_committed(cons, parts, 10000), 0);
    for (int p = 0; p < PARTITIONS; p++)
        CHECK_INT(parts->elems[p].offset, ends[p]);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);

    if (nx_check_failures)
        nx_fixture_print_log();
    return nx_check_exit("test_kafka_fixture");
}
