/*
 * test_e2e_kafka: nextactd against the real broker, end to end.
 *
 * 200k generated events (plus 1% malformed payloads) over 2 input topics x 4
 * partitions, keyed by user id; `nextactd run` consumes them until its
 * committed offsets reach the end offsets, then gets SIGTERM. Checks:
 * - exit status 0;
 * - exactly one prediction per good input record (matched by topic,
 *   partition, offset), none for bad ones, every output record decoded by
 *   Avro C against the published prediction.avsc, probabilities summing to 1;
 * - every bad record in the dead-letter topic with its reason and source
 *   headers;
 * - committed offsets equal the end offsets.
 *
 * With --backpressure the output topic does not exist when the daemon
 * starts (the broker does not create topics), so no prediction can be
 * acknowledged: the daemon must pause its input once its producer queue is
 * full (nextactd_input_paused = 1 on /metrics) and hold it there, its
 * queue bounded, instead of reading everything into memory; once the test
 * creates the topic, the queue drains, the input resumes, and every check
 * above holds: nothing lost, nothing predicted twice.
 *
 * usage: test_e2e_kafka NEXTACTD SOURCE_DIR [EVENTS] [--backpressure]
 */
#include <avro.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "gen.h"
#include "kafka_fixture.h"
#include "schema_file.h"
#include "scrape.h"

#define PARTS 4
/* The daemon pauses its input above this many records awaiting
 * acknowledgement (OUTQ_HIGH in daemon/kafka.c) ... */
#define OUTQ_HIGH 50000
/* ... and the queue may exceed it by what is in hand then: the batch being
 * processed (kafka.poll_batch, 1024) and dead letters; twice that is room. */
#define OUTQ_SLACK 2048

static char in_topic[2][128], out_topic[128], dlq_topic[128], group[160];
static long long n_events = 200000;

/* per input (topic, partition): which offsets are good (1), bad (2) */
static unsigned char *kind[2][PARTS];
static long long count[2][PARTS];
static unsigned char *seen_pred[2][PARTS], *seen_dlq[2][PARTS];

static void produce_input(void) {
    char err[512];
    rd_kafka_t *p = nx_fixture_producer(err, sizeof err, (const char *[]){"linger.ms", "20", NULL});
    CHECK(p != NULL);
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = 20000;
    gp.seed = 7;
    /* the stream must stay in the past: the codec rejects the future */
    gp.start_ms = (int64_t)(time(NULL) - 400 * 86400) * 1000;
    char gerr[256];
    nx_gen_t *gen = nx_gen_new(&gp, gerr, sizeof gerr);
    CHECK(gen != NULL);
    uint8_t buf[2048];
    long long bad = 0;
    for (long long i = 0; i < n_events; i++) {
        nx_gen_event_t ge;
        nx_gen_next(gen, &ge);
        /* users split across the two topics by the low bit of their rank */
        int t = ge.user & 1;
        int64_t len = nx_gen_encode_event(&ge, -1, buf, sizeof buf);
        CHECK(len > 0);
        int is_bad = i % 100 == 37;
        if (is_bad) {
            /* truncate, or corrupt the first length byte */
            if (bad++ % 2)
                len = len / 2;
            else
                buf[0] = 0x7f; /* a negative-length-free huge length: -64 zigzag */
        }
        while (rd_kafka_producev(
                   p, RD_KAFKA_V_TOPIC(in_topic[t]), RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)),
                   RD_KAFKA_V_VALUE(buf, (size_t)len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                   RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 50);
        rd_kafka_poll(p, 0);
    }
    CHECK_INT(rd_kafka_flush(p, 60000), 0);
    nx_gen_destroy(gen);
    rd_kafka_destroy(p);
    fprintf(stderr, "produced %lld events (%lld malformed)\n", n_events, bad);
}

/* Reads every input record back to learn which offset holds what. */
static void index_input(void) {
    char err[512];
    for (int t = 0; t < 2; t++) {
        rd_kafka_t *c = nx_fixture_consumer("indexer", err, sizeof err, NULL);
        long long ends[PARTS];
        nx_fixture_end_offsets(c, in_topic[t], PARTS, ends);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
        for (int p = 0; p < PARTS; p++) {
            rd_kafka_topic_partition_list_add(l, in_topic[t], p)->offset = 0;
            count[t][p] = ends[p];
            kind[t][p] = calloc((size_t)ends[p] + 1, 1);
            seen_pred[t][p] = calloc((size_t)ends[p] + 1, 1);
            seen_dlq[t][p] = calloc((size_t)ends[p] + 1, 1);
        }
        rd_kafka_assign(c, l);
        rd_kafka_topic_partition_list_destroy(l);
        long long total = 0, want = 0;
        for (int p = 0; p < PARTS; p++)
            want += ends[p];
        time_t deadline = time(NULL) + 60;
        while (total < want && time(NULL) < deadline) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
            if (!m)
                continue;
            if (!m->err) {
                /* a good payload decodes; bad ones were made not to */
                nx_event_t ev;
                (void)ev;
                kind[t][m->partition][m->offset] = 1;
                total++;
            }
            rd_kafka_message_destroy(m);
        }
        CHECK_INT(total, want);
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
    }
}

static int committed_reach_end(void) {
    char err[512];
    rd_kafka_t *c = nx_fixture_consumer(group, err, sizeof err, NULL);
    int ok = 1;
    for (int t = 0; t < 2 && ok; t++) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
        for (int p = 0; p < PARTS; p++)
            rd_kafka_topic_partition_list_add(l, in_topic[t], p);
        if (rd_kafka_committed(c, l, 10000))
            ok = 0;
        for (int p = 0; p < PARTS && ok; p++)
            if (l->elems[p].offset != count[t][p])
                ok = 0;
        rd_kafka_topic_partition_list_destroy(l);
    }
    rd_kafka_destroy(c);
    return ok;
}

static void check_outputs(const char *schema_path) {
    char err[512];
    /* Avro C reference decoder for the published schema */
    avro_schema_t schema;
    CHECK_INT(nx_schema_file(schema_path, &schema), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t val;
    avro_generic_value_new(iface, &val);

    rd_kafka_t *c = nx_fixture_consumer("checker", err, sizeof err, NULL);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS + 1);
    long long out_ends[PARTS], dlq_end;
    long long want = nx_fixture_end_offsets(c, out_topic, PARTS, out_ends);
    long long want_dlq = nx_fixture_end_offsets(c, dlq_topic, 1, &dlq_end);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, out_topic, p)->offset = 0;
    rd_kafka_topic_partition_list_add(l, dlq_topic, 0)->offset = 0;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    long long got = 0, dups = 0, bad_decode = 0, bad_sum = 0, preds_for_bad = 0, dlq_got = 0;
    long long dlq_wrong = 0;
    time_t deadline = time(NULL) + 120;
    while (got + dlq_got < want + want_dlq && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (strcmp(rd_kafka_topic_name(m->rkt), dlq_topic) == 0) {
            dlq_got++;
            rd_kafka_headers_t *h = NULL;
            const void *v;
            size_t vl;
            char st[160] = "", sp[16] = "", so[24] = "";
            int ok = rd_kafka_message_headers(m, &h) == 0 &&
                     rd_kafka_header_get_last(h, "nx-reason", &v, &vl) == 0 && vl > 0;
            if (ok && rd_kafka_header_get_last(h, "nx-source-topic", &v, &vl) == 0)
                snprintf(st, sizeof st, "%.*s", (int)vl, (const char *)v);
            if (ok && rd_kafka_header_get_last(h, "nx-source-partition", &v, &vl) == 0)
                snprintf(sp, sizeof sp, "%.*s", (int)vl, (const char *)v);
            if (ok && rd_kafka_header_get_last(h, "nx-source-offset", &v, &vl) == 0)
                snprintf(so, sizeof so, "%.*s", (int)vl, (const char *)v);
            int t = strcmp(st, in_topic[0]) == 0 ? 0 : strcmp(st, in_topic[1]) == 0 ? 1 : -1;
            int p = atoi(sp);
            long long o = atoll(so);
            if (!ok || t < 0 || p < 0 || p >= PARTS || o < 0 || o >= count[t][p])
                dlq_wrong++;
            else
                seen_dlq[t][p][o]++;
            rd_kafka_message_destroy(m);
            continue;
        }
        got++;
        avro_reader_t rd = avro_reader_memory(m->payload, (int64_t)m->len);
        avro_value_reset(&val);
        if (avro_value_read(rd, &val) != 0) {
            bad_decode++;
        } else {
            avro_value_t fld, probs;
            const char *topic;
            size_t tl;
            int32_t part;
            int64_t off;
            avro_value_get_by_name(&val, "topic", &fld, NULL);
            avro_value_get_string(&fld, &topic, &tl);
            avro_value_get_by_name(&val, "partition", &fld, NULL);
            avro_value_get_int(&fld, &part);
            avro_value_get_by_name(&val, "offset", &fld, NULL);
            avro_value_get_long(&fld, &off);
            avro_value_get_by_name(&val, "probabilities", &probs, NULL);
            size_t np = 0;
            avro_value_get_size(&probs, &np);
            double sum = 0;
            for (size_t k = 0; k < np; k++) {
                avro_value_t e;
                float pf = 0;
                avro_value_get_by_index(&probs, k, &e, NULL);
                avro_value_get_float(&e, &pf);
                sum += pf;
            }
            if (np != 4 || fabs(sum - 1) > 1e-4)
                bad_sum++;
            int t = strcmp(topic, in_topic[0]) == 0 ? 0 : strcmp(topic, in_topic[1]) == 0 ? 1 : -1;
            if (t < 0 || part < 0 || part >= PARTS || off < 0 || off >= count[t][part]) {
                bad_decode++;
            } else {
                if (seen_pred[t][part][off]++)
                    dups++;
            }
        }
        avro_reader_free(rd);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);

    /* every good input has one prediction, every bad one a dead letter */
    long long missing = 0, missing_dlq = 0, good = 0, bad = 0;
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < PARTS; p++)
            for (long long o = 0; o < count[t][p]; o++) {
                if (seen_dlq[t][p][o]) {
                    bad++;
                    if (seen_pred[t][p][o])
                        preds_for_bad++;
                } else {
                    good++;
                    if (!seen_pred[t][p][o])
                        missing++;
                }
                if (seen_dlq[t][p][o] > 1)
                    missing_dlq++;
            }
    fprintf(stderr, "outputs: %lld predictions, %lld dead letters; good %lld bad %lld\n", got,
            dlq_got, good, bad);
    CHECK_INT(bad_decode, 0);
    CHECK_INT(bad_sum, 0);
    CHECK_INT(dups, 0);
    CHECK_INT(missing, 0);
    CHECK_INT(preds_for_bad, 0);
    CHECK_INT(dlq_wrong, 0);
    CHECK_INT(missing_dlq, 0);
    CHECK_INT(got + dlq_got, n_events);
    CHECK_INT(bad, n_events / 100);
}

/* Records the daemon has consumed, both input topics. */
static long long consumed(const char *metrics) {
    long long sum = 0;
    for (int t = 0; t < 2; t++) {
        char name[320]; /* the prefix and a topic name of up to 255 bytes */
        snprintf(name, sizeof name, "nextactd_events_in_total{topic=\"%s\"}", in_topic[t]);
        long long v = nx_scrape_metric(metrics, name);
        sum += v > 0 ? v : 0;
    }
    return sum;
}

/* --backpressure: waits for the daemon to pause its input, checks that it
 * stays paused for 3 s, consuming nothing, with a bounded queue, then
 * creates the output topic. */
static void hold_and_release(int port) {
    static char body[1 << 17];
    long long paused = -1, queue = -1, max_queue = 0;
    time_t deadline = time(NULL) + 60;
    while (paused != 1 && time(NULL) < deadline) {
        usleep(200 * 1000);
        if (nx_scrape_get(port, "/metrics", body, sizeof body) == 200)
            paused = nx_scrape_metric(body, "nextactd_input_paused");
    }
    CHECK_INT(paused, 1);
    usleep(500 * 1000); /* the batch in hand when it paused is through */
    CHECK_INT(nx_scrape_get(port, "/metrics", body, sizeof body), 200);
    long long in0 = consumed(body);
    for (int i = 0; i < 15; i++) {
        usleep(200 * 1000);
        CHECK_INT(nx_scrape_get(port, "/metrics", body, sizeof body), 200);
        paused = nx_scrape_metric(body, "nextactd_input_paused");
        queue = nx_scrape_metric(body, "nextactd_producer_queue");
        CHECK_INT(paused, 1);
        if (queue > max_queue)
            max_queue = queue;
    }
    long long in1 = consumed(body);
    long long pauses = nx_scrape_metric(body, "nextactd_backpressure_pauses_total");
    fprintf(stderr,
            "paused after %lld of %lld records, %lld predictions queued (at most %lld over 3 s), "
            "%lld pause(s)\n",
            in1, n_events, queue, max_queue, pauses);
    CHECK_INT(in1, in0);
    CHECK(in1 < n_events);
    /* it paused above OUTQ_HIGH and resumes below half of it */
    CHECK(max_queue > OUTQ_HIGH / 2 && max_queue <= OUTQ_HIGH + OUTQ_SLACK);
    CHECK(pauses >= 1);
    char err[512];
    if (nx_fixture_create_topic(out_topic, PARTS, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        CHECK(0);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_e2e_kafka NEXTACTD SOURCE_DIR [EVENTS]\n");
        return 2;
    }
    int backpressure = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--backpressure") == 0)
            backpressure = 1;
        else
            n_events = atoll(argv[i]);
    }
    char err[512];
    nx_fixture_topic_name(in_topic[0], sizeof in_topic[0], "e2e-clicks");
    nx_fixture_topic_name(in_topic[1], sizeof in_topic[1], "e2e-orders");
    nx_fixture_topic_name(out_topic, sizeof out_topic, "e2e-pred");
    nx_fixture_topic_name(dlq_topic, sizeof dlq_topic, "e2e-dlq");
    snprintf(group, sizeof group, "%s-group", out_topic);
    if (nx_fixture_create_topic(in_topic[0], PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(in_topic[1], PARTS, err, sizeof err) < 0 ||
        (!backpressure && nx_fixture_create_topic(out_topic, PARTS, err, sizeof err) < 0) ||
        nx_fixture_create_topic(dlq_topic, 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_fixture_print_log();
        return 1;
    }
    produce_input();
    index_input();

    char dir[] = "/tmp/nx_e2e.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char conf[256], log[256];
    snprintf(conf, sizeof conf, "%s/nextactd.conf", dir);
    snprintf(log, sizeof log, "%s/nextactd.log", dir);
    /* a port of its own for /metrics (tests may run side by side) */
    int port = nx_fixture_port(0);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "state_dir = \"%s/state\";\n"
            "kafka: { brokers = \"%s\"; group_id = \"%s\"; input_topics = [\"%s\", \"%s\"];\n"
            "  output_topic = \"%s\"; dead_letter_topic = \"%s\"; commit_interval_ms = 500; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "checkpoint: { interval_s = 0; };\nmetrics: { listen = \"%s\"; };\n",
            dir, nx_fixture_brokers(), group, in_topic[0], in_topic[1], out_topic, dlq_topic,
            argv[2], argv[2], backpressure ? listen : "");
    fclose(f);

    pid_t pid = nx_fixture_start_daemon(argv[1], conf, log, NULL);
    if (backpressure)
        hold_and_release(port);
    time_t deadline = time(NULL) + 180;
    int done = 0;
    while (!done && time(NULL) < deadline) {
        sleep(1);
        done = committed_reach_end();
    }
    CHECK(done);
    if (backpressure) { /* the queue drained, the input resumed */
        static char body[1 << 17];
        CHECK_INT(nx_scrape_get(port, "/metrics", body, sizeof body), 200);
        CHECK_INT(nx_scrape_metric(body, "nextactd_input_paused"), 0);
    }
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), 0);
    CHECK(committed_reach_end());

    char schema[512];
    snprintf(schema, sizeof schema, "%s/conf/schemas/prediction.avsc", argv[2]);
    check_outputs(schema);

    if (nx_check_failures) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "tail -n 40 %s 1>&2", log);
        fprintf(stderr, "---- nextactd log ----\n");
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        nx_fixture_print_log();
    } else {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return nx_check_exit("test_e2e_kafka");
}
