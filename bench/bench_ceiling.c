/* bench_ceiling.c: the Kafka ceiling beside the daemon (bench_ceiling.h). */
#include "bench_ceiling.h"

#include <stdint.h>
#include <stdio.h>

#include "bench_figures.h"
#include "kafka.h"
#include "kafka_fixture.h"

/* Delivery reports: records acknowledged, and when the last one was. */
static long long ceil_acked;
static int64_t ceil_last_ack;
static void ceil_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (!m->err) {
        ceil_acked++;
        ceil_last_ack = bench_now_us();
    }
}

double nx_bench_ceiling_run(const char *in_topic, int parts, long long total) {
    char err[512], out[128], cgroup[200];
    ceil_acked = 0;
    ceil_last_ack = 0;
    nx_fixture_topic_name(out, sizeof out, "bench-ceiling");
    snprintf(cgroup, sizeof cgroup, "%s-group", out);
    if (nx_fixture_create_topic(out, parts, err, sizeof err) < 0) {
        fprintf(stderr, "ceiling: %s\n", err);
        return 0;
    }
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set_dr_msg_cb(pc, ceil_dr);
    int bad = rd_kafka_conf_set(pc, "bootstrap.servers", nx_fixture_brokers(), err, sizeof err);
    for (const char *const *kv = nx_kafka_producer_tuning; !bad && kv[0]; kv += 2)
        bad = rd_kafka_conf_set(pc, kv[0], kv[1], err, sizeof err);
    rd_kafka_t *prod = bad ? NULL : rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    /* the daemon's consumer settings that matter for speed; no commits */
    const char *cprops[16] = {"auto.offset.reset", "earliest", "enable.auto.commit", "false"};
    int k = 4;
    for (const char *const *kv = nx_kafka_consumer_tuning; kv[0] && k < 14; kv += 2) {
        cprops[k++] = kv[0];
        cprops[k++] = kv[1];
    }
    cprops[k] = NULL;
    rd_kafka_t *cons = nx_fixture_consumer(cgroup, err, sizeof err, cprops);
    if (!prod || !cons) {
        fprintf(stderr, "ceiling: %s\n", err);
        if (prod)
            rd_kafka_destroy(prod);
        else if (bad)
            rd_kafka_conf_destroy(pc);
        if (cons)
            rd_kafka_destroy(cons);
        return 0;
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, in_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(cons, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(cons);
    rd_kafka_message_t *msgs[1024];
    long long copied = 0;
    int64_t first = 0, deadline = bench_now_us() + 300 * 1000000LL;
    while (ceil_acked < total && bench_now_us() < deadline) {
        /* what the client holds now; if nothing, wait for one record.
         * (With a timeout, a batch call waits for a full batch until it
         * expires: a ceiling held back by the timeout, not the client.) */
        ssize_t n = rd_kafka_consume_batch_queue(q, 0, msgs, 1024);
        if (n == 0 && copied < total)
            n = rd_kafka_consume_batch_queue(q, 10, msgs, 1);
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (!m->err) {
                if (!first)
                    first = bench_now_us();
                while (rd_kafka_producev(
                           prod, RD_KAFKA_V_TOPIC(out), RD_KAFKA_V_PARTITION(m->partition),
                           RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                           RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                    rd_kafka_poll(prod, 10);
                copied++;
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(prod, copied >= total ? 10 : 0);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    rd_kafka_flush(prod, 10000);
    rd_kafka_destroy(prod);
    if (ceil_acked < total || ceil_last_ack <= first) {
        printf("ceiling: only %lld of %lld records copied\n", ceil_acked, total);
        return 0;
    }
    return (double)total / ((double)(ceil_last_ack - first) / 1e6);
}
