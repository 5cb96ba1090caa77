/* kadmin.c: topic metadata and creation at start (kadmin.h). */
#include "kadmin.h"

#include <stdio.h>
#include <unistd.h>

#include "log.h"

static int conf_set(rd_kafka_conf_t *conf, const char *who, const char *name, const char *value,
                    char *errstr, size_t errstr_size) {
    char why[512];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK)
        return nx_errf(errstr, errstr_size, "%s: %s = %s: %s", who, name, value, why);
    return 0;
}

rd_kafka_conf_t *nx_kadmin_client_conf(const char *who, const char *brokers,
                                       const nx_strmap_t *pass, const char *const *props,
                                       void (*log_cb)(const rd_kafka_t *, int, const char *,
                                                      const char *),
                                       char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char lvl[8];
    snprintf(lvl, sizeof lvl, "%d", nx_log_get_level());
    if (conf_set(conf, who, "bootstrap.servers", brokers, errstr, errstr_size) ||
        conf_set(conf, who, "log_level", lvl, errstr, errstr_size))
        goto err;
    for (int i = 0; i < pass->n; i++)
        if (conf_set(conf, who, pass->key[i], pass->val[i], errstr, errstr_size))
            goto err;
    for (int i = 0; props[i]; i += 2)
        if (conf_set(conf, who, props[i], props[i + 1], errstr, errstr_size))
            goto err;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
err:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int nx_kadmin_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                         size_t errstr_size) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (err)
        return nx_errf(errstr, errstr_size, "metadata of %s: %s", topic, rd_kafka_err2str(err));
    int n = 0;
    if (md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    else if (md->topic_cnt == 1 && md->topics[0].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        n = nx_errf(errstr, errstr_size, "metadata of %s: %s", topic,
                    rd_kafka_err2str(md->topics[0].err));
    rd_kafka_metadata_destroy(md);
    return n;
}

int nx_kadmin_create_compacted(rd_kafka_t *rk, const char *topic, int partitions, int replication,
                               const char *const *configs, int timeout_ms, char *errstr,
                               size_t errstr_size) {
    char why[512];
    int rc = -1;
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, replication, why, sizeof why);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    if (!nt) {
        nx_errf(errstr, errstr_size, "topic %s: %s", topic, why);
        goto out;
    }
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    for (int i = 0; configs && configs[i]; i += 2)
        rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    /* the broker answers within the request timeout; a little more here */
    ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (!res) {
        nx_errf(errstr, errstr_size, "creating %s: %s", topic,
                ev ? rd_kafka_event_error_string(ev) : "no answer");
        goto out;
    }
    size_t n;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    rd_kafka_resp_err_t err = n == 1 ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
    if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        nx_errf(errstr, errstr_size, "creating %s: %s", topic,
                n == 1 && rd_kafka_topic_result_error_string(tr[0])
                    ? rd_kafka_topic_result_error_string(tr[0])
                    : rd_kafka_err2str(err));
        goto out;
    }
    if (!err)
        nx_notice("created topic %s (%d partition(s), cleanup.policy=compact)", topic, partitions);
    /* the metadata catches up: 50 looks 100 ms apart */
    int have = 0;
    for (int k = 0; k < 50 && have == 0; k++) {
        if ((have = nx_kadmin_partitions(rk, topic, timeout_ms, errstr, errstr_size)) < 0)
            goto out;
        if (have == 0)
            usleep(100000);
    }
    if (have == 0) {
        nx_errf(errstr, errstr_size, "topic %s created but not in the metadata after 5 s", topic);
        goto out;
    }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    return rc;
}
