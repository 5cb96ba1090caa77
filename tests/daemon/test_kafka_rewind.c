/*
 * test_kafka_rewind: nx_kafka_rewind on librdkafka's mock cluster.
 *
 * 4 input partitions of 100 records. Partition 0 is sent back three times
 * (to offsets 10, 40 and 70, as the loop does for a record whose schema is
 * not in yet: the record and the rest of the partition's batch are not
 * tracked) and held 300 ms each time. Checks:
 * - every partition delivers its offsets in order, each exactly once
 *   counting from where it was sent back (no gap, nothing skipped);
 * - partition 0 delivers nothing while held, and resumes at the offset it
 *   was sent back to;
 * - other partitions flow meanwhile: records produced to partition 1
 *   during the first hold arrive before partition 0 resumes;
 * - the counters (rewinds, held partitions) say so.
 *
 * usage: test_kafka_rewind
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "kafka.h"
#include "log.h"

#define PARTS   4
#define RECORDS 100
#define EXTRA   50 /* produced to partition 1 during the first hold */
#define HOLD_MS 300

static void produce(rd_kafka_t *p, int32_t part, int n) {
    for (int i = 0; i < n; i++) {
        char v[32];
        snprintf(v, sizeof v, "%d:%d", (int)part, i);
        CHECK_INT(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("in"), RD_KAFKA_V_PARTITION(part),
                                    RD_KAFKA_V_VALUE(v, strlen(v)),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                  0);
    }
    CHECK_INT(rd_kafka_flush(p, 10000), 0);
}

int main(void) {
    char err[512];
    nx_log_set_level(NX_LOG_WARNING);
    nx_config_t *cfg = nx_config_new_defaults();
    CHECK(cfg != NULL);
    if (!cfg)
        return nx_check_exit("test_kafka_rewind");
    cfg->kafka.brokers = strdup("mock");
    cfg->kafka.input_topics.v[cfg->kafka.input_topics.n++] = strdup("in");
    cfg->kafka.output_topic = strdup("out");
    /* the mock cluster answers a fetch with nothing new only after this
     * long: keep it well under the hold */
    cfg->kafka.consumer.key[0] = strdup("fetch.wait.max.ms");
    cfg->kafka.consumer.val[0] = strdup("10");
    cfg->kafka.consumer.n = 1;
    nx_kafka_t *kafka = nx_kafka_new(cfg, NULL, err, sizeof err);
    CHECK(kafka != NULL);
    if (!kafka) {
        fprintf(stderr, "%s\n", err);
        nx_config_destroy(cfg);
        return nx_check_exit("test_kafka_rewind");
    }
    rd_kafka_t *p = nx_kafka_producer(kafka);
    for (int32_t part = 0; part < PARTS; part++)
        produce(p, part, RECORDS);

    static const int64_t send_back[] = {10, 40, 70};
    int64_t want[PARTS] = {0}, hold_end = 0;
    long long out_of_order = 0, while_held = 0, extra_before_resume = 0;
    int rewinds = 0, extra_produced = 0;
    int64_t deadline = nx_now_mono_ms() + 60000;
    rd_kafka_message_t *msgs[16];
    while (nx_now_mono_ms() < deadline) {
        int done = 1;
        for (int i = 0; i < PARTS; i++)
            done &= want[i] == RECORDS + (i == 1 ? EXTRA : 0);
        if (done)
            break;
        int n = nx_kafka_poll_batch(kafka, msgs, 16, 50);
        CHECK(n >= 0);
        int skip0 = 0;
        int64_t now = nx_now_mono_ms();
        for (int i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            int32_t part = m->partition;
            if (part == 0 && skip0) { /* the rest of the batch: read again later */
                rd_kafka_message_destroy(m);
                continue;
            }
            if (part == 0 && now < hold_end)
                while_held++;
            if (m->offset != want[part]) {
                fprintf(stderr, "partition %d: offset %lld, want %lld\n", (int)part,
                        (long long)m->offset, (long long)want[part]);
                out_of_order++;
            }
            if (part == 0 && rewinds < 3 && m->offset == send_back[rewinds]) {
                CHECK_INT(nx_kafka_rewind(kafka, 0, 0, m->offset, HOLD_MS), 0);
                rewinds++;
                hold_end = now + HOLD_MS;
                skip0 = 1;
                want[0] = m->offset; /* delivered again from here */
                rd_kafka_message_destroy(m);
                continue;
            }
            if (part == 1 && m->offset >= RECORDS && hold_end && rewinds == 1 && now < hold_end)
                extra_before_resume++;
            nx_kafka_done(kafka, nx_kafka_track(kafka, m));
            want[part] = m->offset + 1;
            rd_kafka_message_destroy(m);
        }
        if (rewinds == 1 && !extra_produced) {
            produce(p, 1, EXTRA);
            extra_produced = 1;
        }
        nx_kafka_stats_t st;
        nx_kafka_stats(kafka, &st);
        if (now < hold_end - 20) /* the hold's own clock read may be a bit later */
            CHECK_INT(st.held_partitions, 1);
    }
    fprintf(stderr,
            "delivered up to %lld %lld %lld %lld; %d rewinds, %lld out of order, %lld while "
            "held, %lld of partition 1's extra records during the first hold\n",
            (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3], rewinds,
            out_of_order, while_held, extra_before_resume);
    for (int i = 0; i < PARTS; i++)
        CHECK_INT(want[i], RECORDS + (i == 1 ? EXTRA : 0));
    CHECK_INT(rewinds, 3);
    CHECK_INT(out_of_order, 0);
    CHECK_INT(while_held, 0);
    CHECK(extra_before_resume > 0);
    nx_kafka_stats_t st;
    nx_kafka_stats(kafka, &st);
    CHECK_INT(st.rewinds, 3);
    CHECK_INT(st.held_partitions, 0);
    CHECK_INT(nx_kafka_rewind(kafka, 0, 9, 0, HOLD_MS), -1); /* not assigned */
    nx_kafka_close(kafka);
    nx_kafka_destroy(kafka);
    nx_config_destroy(cfg);
    return nx_check_exit("test_kafka_rewind");
}
