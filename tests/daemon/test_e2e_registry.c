/*
 * test_e2e_registry: nextactd with a Schema Registry (the registry fixture)
 * on the real broker.
 *
 * 2 x 2000 generated events, Confluent-framed: input partition 0's with
 * schema id 7, partition 1's with id 5. The fixture serves both ids, but
 * answers 500 for id 7 from the daemon's first request for it until 3 s
 * later. The prediction schema is registered at start
 * (output.schema_registry.enabled, the input's registry). Checks:
 * - while id 7 fails, partition 1 flows (all its records consumed) and
 *   partition 0 waits (none of its records consumed, one partition
 *   waiting), nothing dead-lettered;
 * - afterwards every input record has exactly one prediction, none goes to
 *   the dead-letter topic, committed offsets reach the end offsets, exit 0;
 * - partition 1's predictions were made before id 7 was served, partition
 *   0's after;
 * - /metrics shows the failed fetches and their retries, both schemas
 *   found, the partition's waits, no unknown_schema_id;
 * - predictions carry the Confluent header with the id the registry gave
 *   the prediction schema, and decode with Avro C against prediction.avsc.
 *
 * usage: test_e2e_registry NEXTACTD SOURCE_DIR
 */
#include <avro.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "gen.h"
#include "kafka_fixture.h"
#include "log.h"
#include "registry_fixture.h"
#include "schema_file.h"
#include "scrape.h"

#define PARTS    2
#define PER_PART 2000
#define FAIL_MS  3000
#define SLOW_ID  7 /* partition 0's schema id: fails for FAIL_MS */
#define FAST_ID  5 /* partition 1's */

static char in_topic[128], out_topic[128], dlq_topic[128], group[160];
static long long count[PARTS];
static unsigned char seen[PARTS][PER_PART];

static int slurp(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return 0;
}

static void produce_input(void) {
    char err[512];
    rd_kafka_t *p = nx_fixture_producer(err, sizeof err, (const char *[]){"linger.ms", "20", NULL});
    CHECK(p != NULL);
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = 500;
    gp.seed = 11;
    gp.start_ms = (int64_t)(time(NULL) - 400 * 86400) * 1000;
    char gerr[256];
    nx_gen_t *gen = nx_gen_new(&gp, gerr, sizeof gerr);
    CHECK(gen != NULL);
    uint8_t buf[2048];
    for (int i = 0; i < PARTS * PER_PART; i++) {
        nx_gen_event_t ge;
        nx_gen_next(gen, &ge);
        int part = i % PARTS;
        int64_t len = nx_gen_encode_event(&ge, part == 0 ? SLOW_ID : FAST_ID, buf, sizeof buf);
        CHECK(len > 5);
        while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(in_topic), RD_KAFKA_V_PARTITION(part),
                                 RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)),
                                 RD_KAFKA_V_VALUE(buf, (size_t)len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 50);
        rd_kafka_poll(p, 0);
    }
    CHECK_INT(rd_kafka_flush(p, 60000), 0);
    nx_gen_destroy(gen);
    long long ends[PARTS];
    CHECK_INT(nx_fixture_end_offsets(p, in_topic, PARTS, ends), PARTS * PER_PART);
    for (int i = 0; i < PARTS; i++)
        count[i] = ends[i];
    rd_kafka_destroy(p);
}

static int committed_reach_end(void) {
    char err[512];
    rd_kafka_t *c = nx_fixture_consumer(group, err, sizeof err, NULL);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, in_topic, p);
    int ok = rd_kafka_committed(c, l, 10000) == 0;
    for (int p = 0; p < PARTS && ok; p++)
        ok = l->elems[p].offset == count[p];
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return ok;
}

static long long metric(const char *body, const char *name) {
    return nx_scrape_metric(body, name);
}

/* Reads the output and dead-letter topics: one prediction per input
 * record, framed with schema_id; partition 0's made at or after
 * released_ms, partition 1's before. */
static void check_outputs(const char *schema_path, int64_t schema_id, int64_t released_ms) {
    char err[512];
    avro_schema_t schema;
    CHECK_INT(nx_schema_file(schema_path, &schema), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t val;
    avro_generic_value_new(iface, &val);

    rd_kafka_t *c = nx_fixture_consumer("checker", err, sizeof err, NULL);
    long long out_ends[PARTS], dlq_end = 0;
    long long want = nx_fixture_end_offsets(c, out_topic, PARTS, out_ends);
    CHECK_INT(nx_fixture_end_offsets(c, dlq_topic, 1, &dlq_end), 0);
    CHECK_INT(want, PARTS * PER_PART);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, out_topic, p)->offset = 0;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    long long got = 0, bad_frame = 0, bad_decode = 0, dups = 0, early = 0, late = 0;
    time_t deadline = time(NULL) + 60;
    while (got < want && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        got++;
        const uint8_t *b = m->payload;
        if (m->len < 5 || b[0] != 0 ||
            ((int64_t)b[1] << 24 | (int64_t)b[2] << 16 | (int64_t)b[3] << 8 | b[4]) != schema_id) {
            bad_frame++;
            rd_kafka_message_destroy(m);
            continue;
        }
        avro_reader_t rd = avro_reader_memory((const char *)b + 5, (int64_t)m->len - 5);
        avro_value_reset(&val);
        avro_value_t fld;
        const char *topic = "";
        size_t tl;
        int32_t part = -1;
        int64_t off = -1, at = 0;
        if (avro_value_read(rd, &val) != 0) {
            bad_decode++;
        } else {
            avro_value_get_by_name(&val, "topic", &fld, NULL);
            avro_value_get_string(&fld, &topic, &tl);
            avro_value_get_by_name(&val, "partition", &fld, NULL);
            avro_value_get_int(&fld, &part);
            avro_value_get_by_name(&val, "offset", &fld, NULL);
            avro_value_get_long(&fld, &off);
            avro_value_get_by_name(&val, "predicted_at", &fld, NULL);
            avro_value_get_long(&fld, &at);
            if (strcmp(topic, in_topic) != 0 || part < 0 || part >= PARTS || off < 0 ||
                off >= count[part])
                bad_decode++;
            else if (seen[part][off]++)
                dups++;
            else if (part == 0 && at < released_ms)
                early++;
            else if (part == 1 && at >= released_ms)
                late++;
        }
        avro_reader_free(rd);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    long long missing = 0;
    for (int p = 0; p < PARTS; p++)
        for (long long o = 0; o < count[p]; o++)
            missing += !seen[p][o];
    fprintf(stderr,
            "outputs: %lld predictions (%lld badly framed, %lld undecodable, %lld duplicates, "
            "%lld missing), %lld dead letters; partition 0 early %lld, partition 1 late %lld\n",
            got, bad_frame, bad_decode, dups, missing, dlq_end, early, late);
    CHECK_INT(got, PARTS * PER_PART);
    CHECK_INT(bad_frame, 0);
    CHECK_INT(bad_decode, 0);
    CHECK_INT(dups, 0);
    CHECK_INT(missing, 0);
    CHECK_INT(early, 0);
    CHECK_INT(late, 0);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_e2e_registry NEXTACTD SOURCE_DIR\n");
        return 2;
    }
    const char *nextactd = argv[1], *src = argv[2];
    char err[512], path[4096], event_schema[4096];
    nx_fixture_topic_name(in_topic, sizeof in_topic, "e2e-reg-in");
    nx_fixture_topic_name(out_topic, sizeof out_topic, "e2e-reg-pred");
    nx_fixture_topic_name(dlq_topic, sizeof dlq_topic, "e2e-reg-dlq");
    snprintf(group, sizeof group, "%s-group", out_topic);
    if (nx_fixture_create_topic(in_topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(out_topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(dlq_topic, 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_fixture_print_log();
        return 1;
    }
    produce_input();

    snprintf(path, sizeof path, "%s/conf/schemas/event.avsc", src);
    CHECK_INT(slurp(path, event_schema, sizeof event_schema), 0);
    nx_registry_fixture_t *fx = nx_registry_fixture_start();
    CHECK(fx != NULL);
    if (!fx)
        return nx_check_exit("test_e2e_registry");
    CHECK_INT(nx_registry_fixture_add(fx, FAST_ID, event_schema), 0);
    CHECK_INT(nx_registry_fixture_add(fx, SLOW_ID, event_schema), 0);
    nx_registry_fixture_fail(fx, SLOW_ID, 500, -1);

    char dir[] = "/tmp/nx_e2e_reg.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char conf[256], log[256], listen[64];
    snprintf(conf, sizeof conf, "%s/nextactd.conf", dir);
    snprintf(log, sizeof log, "%s/nextactd.log", dir);
    int port = nx_fixture_port(0);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "state_dir = \"%s/state\";\n"
            "kafka: { brokers = \"%s\"; group_id = \"%s\"; input_topics = [\"%s\"];\n"
            "  output_topic = \"%s\"; dead_letter_topic = \"%s\"; commit_interval_ms = 500; };\n"
            "input: { framing = \"confluent\"; schema_dir = \"%s/no-local-schemas\";\n"
            "  schema_registry: { url = \"%s\"; retry_backoff_ms = 100;\n"
            "    retry_backoff_max_ms = 1000; }; };\n"
            "output: { format = \"confluent\"; schema = \"%s/conf/schemas/prediction.avsc\";\n"
            "  schema_registry: { enabled = true; }; };\n"
            "checkpoint: { interval_s = 0; };\nmetrics: { listen = \"%s\"; };\n",
            dir, nx_fixture_brokers(), group, in_topic, out_topic, dlq_topic, dir,
            nx_registry_fixture_url(fx), src, listen);
    fclose(f);

    pid_t pid = nx_fixture_start_daemon(nextactd, conf, log, NULL);
    static char body[1 << 17];

    /* id 7 fails for FAIL_MS from the daemon's first request for it */
    int64_t first[1];
    time_t deadline = time(NULL) + 60;
    while (nx_registry_fixture_gets(fx, SLOW_ID, first, 1) == 0 && time(NULL) < deadline)
        usleep(10 * 1000);
    CHECK(nx_registry_fixture_gets(fx, SLOW_ID, NULL, 0) > 0);
    while (nx_now_mono_ms() < first[0] + FAIL_MS - 300)
        usleep(20 * 1000);
    /* near the end of the outage: partition 1 all through, partition 0
     * waiting at its first record, nothing dead-lettered */
    char name[256];
    snprintf(name, sizeof name, "nextactd_events_in_total{topic=\"%s\"}", in_topic);
    /* the waiting partition counts from its first stop until that record
     * is read with its schema, fetches between retries included; the
     * snapshot behind /metrics is a moment old, so a few scrapes: it must
     * be seen waiting, and never more than the one */
    long long in_during = -1, waiting = -1;
    for (int k = 0; k < 5 && waiting != 1; k++) {
        if (k)
            usleep(40 * 1000);
        CHECK_INT(nx_scrape_get(port, "/metrics", body, sizeof body), 200);
        in_during = metric(body, name);
        long long w = metric(body, "nextactd_schema_waiting_partitions");
        waiting = w > waiting ? w : waiting;
    }
    fprintf(stderr, "during the outage: %lld records in, %lld partition(s) waiting\n", in_during,
            waiting);
    CHECK_INT(in_during, count[1]);
    CHECK_INT(waiting, 1);
    CHECK_INT(metric(body, "nextactd_schema_registry_pending_ids"), 1);
    CHECK_INT(metric(body, "nextactd_dead_letters_total"), 0);
    while (nx_now_mono_ms() < first[0] + FAIL_MS)
        usleep(10 * 1000);
    int64_t released = nx_now_wall_ms();
    nx_registry_fixture_fail(fx, SLOW_ID, 500, 0);

    deadline = time(NULL) + 120;
    int done = 0;
    while (!done && time(NULL) < deadline) {
        sleep(1);
        done = committed_reach_end();
    }
    CHECK(done);
    CHECK_INT(nx_scrape_get(port, "/metrics", body, sizeof body), 200);
    long long failed = metric(body, "nextactd_schema_registry_fetches_total{result=\"failed\"}");
    long long retries = metric(body, "nextactd_schema_registry_retries_total");
    long long waits = metric(body, "nextactd_schema_waits_total");
    fprintf(stderr, "metrics: %lld failed fetches, %lld retries, %lld waits\n", failed, retries,
            waits);
    CHECK(failed >= 3); /* 100, 200, 400, 800, 1000 ms waits within 3 s */
    CHECK(retries >= failed - 1 && retries <= failed);
    CHECK(waits >= 1);
    CHECK_INT(metric(body, "nextactd_schema_registry_fetches_total{result=\"found\"}"), 2);
    CHECK_INT(metric(body, "nextactd_schema_registry_fetches_total{result=\"not_found\"}"), 0);
    CHECK_INT(metric(body, "nextactd_schema_registry_pending_ids"), 0);
    CHECK_INT(metric(body, "nextactd_schema_waiting_partitions"), 0);
    CHECK_INT(metric(body, "nextactd_dead_letters_total"), 0);
    CHECK_INT(metric(body, "nextactd_decode_errors_total{reason=\"unknown_schema_id\"}"), 0);
    CHECK_INT(metric(body, name), PARTS * PER_PART);
    CHECK_INT(nx_registry_fixture_gets(fx, SLOW_ID, NULL, 0), failed + 1);

    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), 0);

    char subject[200];
    snprintf(subject, sizeof subject, "%s-value", out_topic);
    char *registered = NULL;
    int64_t pred_id = nx_registry_fixture_registered(fx, subject, &registered);
    CHECK(pred_id >= 100);
    snprintf(path, sizeof path, "%s/conf/schemas/prediction.avsc", src);
    char pred_schema[8192];
    CHECK_INT(slurp(path, pred_schema, sizeof pred_schema), 0);
    CHECK(registered && strcmp(registered, pred_schema) == 0);
    free(registered);
    check_outputs(path, pred_id, released);

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
    nx_registry_fixture_stop(fx);
    return nx_check_exit("test_e2e_registry");
}
