/* kafka_fixture.c: real-broker helpers for integration tests (see .h). */
#include "kafka_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const char *nx_fixture_brokers(void) {
    static char buf[64];
    const char *b = getenv("NX_TEST_BROKERS");
    const char *port = getenv("NX_KAFKA_PORT"); /* as scripts/kafka reads it */
    if (b && *b)
        return b;
    snprintf(buf, sizeof buf, "127.0.0.1:%s", port && *port ? port : "39092");
    return buf;
}

void nx_fixture_topic_name(char *buf, size_t size, const char *prefix) {
    static int counter;
    snprintf(buf, size, "%s-%d-%d-%lld", prefix, (int)getpid(), ++counter, (long long)time(NULL));
}

static rd_kafka_conf_t *base_conf(char *err, size_t err_size, const char *const *props) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", nx_fixture_brokers(), err, err_size) !=
        RD_KAFKA_CONF_OK)
        goto err;
    for (; props && props[0]; props += 2)
        if (rd_kafka_conf_set(conf, props[0], props[1], err, err_size) != RD_KAFKA_CONF_OK)
            goto err;
    return conf;
err:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *nx_fixture_producer(char *err, size_t err_size, const char *const *props) {
    rd_kafka_conf_t *conf = base_conf(err, err_size, props);
    if (!conf)
        return NULL;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

rd_kafka_t *nx_fixture_consumer(const char *group, char *err, size_t err_size,
                                const char *const *props) {
    rd_kafka_conf_t *conf = base_conf(err, err_size, props);
    if (!conf)
        return NULL;
    if (rd_kafka_conf_set(conf, "group.id", group, err, err_size) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, err_size) !=
            RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, err_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

int nx_fixture_create_topic(const char *topic, int partitions, char *err, size_t err_size) {
    int rc = -1;
    rd_kafka_t *rk = nx_fixture_producer(err, err_size, NULL);
    rd_kafka_queue_t *q = NULL;
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_event_t *ev = NULL;
    if (!rk)
        return -1;
    q = rd_kafka_queue_new(rk);
    nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, err_size);
    if (!nt)
        goto out;
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    /* topic creation on a single local broker takes well under a second */
    ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        snprintf(err, err_size, "CreateTopics: no answer in 30 s");
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(err, err_size, "CreateTopics: %s", rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    if (n != 1 || rd_kafka_topic_result_error(tr[0])) {
        snprintf(err, err_size, "CreateTopics %s: %s", topic,
                 n ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
        goto out;
    }
    /* wait until metadata shows every partition with a leader */
    for (int tries = 0; tries < 100; tries++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        int ready = 0;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt == partitions) {
            ready = 1;
            for (int p = 0; p < partitions; p++)
                if (md->topics[0].partitions[p].leader < 0)
                    ready = 0;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        if (ready) {
            rc = 0;
            goto out;
        }
        usleep(100 * 1000);
    }
    snprintf(err, err_size, "topic %s has no leaders after 10 s", topic);
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    if (q)
        rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

long long nx_fixture_end_offsets(rd_kafka_t *rk, const char *topic, int partitions,
                                 long long *per_partition) {
    long long sum = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000))
            return -1;
        if (per_partition)
            per_partition[p] = hi;
        sum += hi;
    }
    return sum;
}

void nx_fixture_print_log(void) {
    char cmd[256];
    const char *b = nx_fixture_brokers();
    const char *port = strrchr(b, ':');
    snprintf(cmd, sizeof cmd, "tail -n 60 /tmp/nextact-kafka-%s/broker.log 1>&2",
             port ? port + 1 : "39092");
    fprintf(stderr, "---- broker log (last 60 lines) ----\n");
    if (system(cmd) != 0)
        fprintf(stderr, "(no broker log)\n");
}

pid_t nx_fixture_start_daemon(const char *nextactd, const char *conf, const char *log,
                              const char *dump) {
    return nx_fixture_start_daemon_fsize(nextactd, conf, log, dump, 0);
}

pid_t nx_fixture_start_daemon_fsize(const char *nextactd, const char *conf, const char *log,
                                    const char *dump, long long max_file_bytes) {
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit lim = {(rlim_t)max_file_bytes, (rlim_t)max_file_bytes};
        if (max_file_bytes > 0 && setrlimit(RLIMIT_FSIZE, &lim) < 0)
            _exit(125);
        if (!freopen(log, "a", stderr))
            _exit(126);
        if (dump)
            setenv("NX_DEBUG_DUMP_STORE", dump, 1);
        execl(nextactd, nextactd, "run", "-c", conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int nx_fixture_port(int slot) {
    return 20000 + (int)(getpid() % 1200) * 10 + slot % 10;
}
