/* kafka.c: consumer group, producer, rebalances, commits and back-pressure
 * (kafka.h); the tickets of the at-least-once bookkeeping are kafka_track.c's,
 * the shutdown kafka_close.c's. */
#include "kafka.h"

#include <inttypes.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_int.h"
#include "log.h"
#include "txn.h"

/* Pause input when the producer holds this many unacknowledged records,
 * resume below half of it. librdkafka's own queue takes 100000 by default. */
#define OUTQ_HIGH 50000
/* Longest wait on the consumer before delivery reports are served again. */
#define POLL_SLICE_MS 2

/* Consumer. queued.min.messages: records librdkafka keeps fetched ahead
 * (its default: 100000). Once the local queue holds that many, librdkafka
 * 2.0 stops fetching and looks again only when its broker thread next
 * wakes, up to 1 s later (rdkafka_broker.c serves an up broker in 1000 ms
 * slices; 2.1 added fetch.queue.backoff.ms for it), so the daemon would
 * drain the queue and then wait. The queue must hold about a second of
 * input at full speed, at ~0.4 KB of memory per queued record; the
 * measurements are in bench/NOTES.md. kafka.consumer overrides any of
 * these. */
const char *const nx_kafka_consumer_tuning[] = {
    "queued.min.messages",
    "400000",
    NULL,
};

/* Producer: idempotent, so librdkafka's own retries neither duplicate nor
 * reorder. linger.ms: how long a prediction may wait for others to share
 * its request. kafka.producer overrides any of these. */
const char *const nx_kafka_producer_tuning[] = {
    "enable.idempotence", "true", "linger.ms", "1", NULL,
};

/* ---- callbacks ------------------------------------------------------------ */

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    /* librdkafka's levels are syslog's */
    nx_log(level < NX_LOG_ERR ? NX_LOG_ERR : level, "kafka: %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        nx_err("kafka: fatal error: %s", why);
        return;
    }
    /* Client errors are informational: librdkafka recovers by itself. */
    NX_LOG_RL(NX_LOG_WARNING, "kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    nx_kafka_t *kafka = opaque;
    nx_ticket_t ticket = (nx_ticket_t)(uintptr_t)m->_private;
    int is_dlq = kafka->dlq_topic && strcmp(rd_kafka_topic_name(m->rkt), kafka->dlq_topic) == 0;
    if (ticket == NX_TICKET_NONE && kafka->transactional) {
        /* the changelog's records, in the same transaction (txn.h): not
         * predictions; a failure aborts the transaction */
        if (m->err)
            kafka->stats.produce_failures++;
        if (kafka->other_dr)
            kafka->other_dr(kafka->other_dr_opaque, m);
        return;
    }
    if (m->err && kafka->transactional) {
        /* The record's transaction cannot commit now: txn.c aborts it and
         * the span is processed again. Producing it again here would put it
         * into the next transaction besides its twin. */
        kafka->stats.produce_failures++;
        if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
            NX_LOG_RL(NX_LOG_WARNING, "kafka: delivery to %s failed: %s; its transaction aborts",
                      rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        if (kafka->hooks.delivered)
            kafka->hooks.delivered(kafka->hooks.opaque, is_dlq, m->err, 0, -1);
        return;
    }
    if (m->err) {
        /* Never skip a prediction: produce it again. librdkafka has already
         * retried within message.timeout.ms; this covers what is left. */
        kafka->stats.produce_failures++;
        NX_LOG_RL(NX_LOG_WARNING, "kafka: delivery to %s failed: %s; producing again",
                  rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        rd_kafka_headers_t *hdrs = NULL;
        const rd_kafka_headers_t *h0 = NULL;
        if (rd_kafka_message_headers(m, (rd_kafka_headers_t **)&h0) == RD_KAFKA_RESP_ERR_NO_ERROR)
            hdrs = rd_kafka_headers_copy(h0);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(rd_kafka_topic_name(m->rkt)), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(m->_private), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!err) {
            kafka->stats.produce_retries++;
            return;
        }
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        nx_err("kafka: cannot produce again to %s: %s; its input offset will not be committed",
               rd_kafka_topic_name(m->rkt), rd_kafka_err2str(err));
        if (kafka->hooks.delivered)
            kafka->hooks.delivered(kafka->hooks.opaque, is_dlq, m->err, 0, -1);
        return;
    }
    if (is_dlq)
        kafka->stats.dead_letters++;
    else
        kafka->stats.produced++;
    int64_t in_ts = nx_kafka_ticket_done(kafka, ticket);
    if (kafka->hooks.delivered) {
        int64_t now = kafka->dr_now_ms ? kafka->dr_now_ms : nx_now_wall_ms();
        kafka->hooks.delivered(kafka->hooks.opaque, is_dlq, RD_KAFKA_RESP_ERR_NO_ERROR,
                               in_ts > 0 ? now - in_ts : -1, rd_kafka_message_latency(m));
    }
}

/* Serves the producer's delivery reports already queued, with the wall
 * clock read once for all of them (a clock read per report was 1% of the
 * loop at 140k events/s; they are all served within a millisecond or so). */
static void serve_deliveries(nx_kafka_t *kafka) {
    kafka->dr_now_ms = nx_now_wall_ms();
    rd_kafka_poll(kafka->producer, 0);
    kafka->dr_now_ms = 0;
}

/* Result of a commit (async ones are served by the consumer poll). */
static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    nx_kafka_t *kafka = opaque;
    if (!err) {
        for (int i = 0; offsets && i < offsets->cnt; i++)
            if (offsets->elems[i].err)
                err = offsets->elems[i].err;
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        kafka->stats.commits++;
    } else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        kafka->stats.commit_failures++;
        NX_LOG_RL(NX_LOG_WARNING, "kafka: offset commit failed: %s; the next commit covers them",
                  rd_kafka_err2str(err));
    }
}

/* Commits list: async (result served by the next poll) or here and now. */
static int commit_list(nx_kafka_t *kafka, rd_kafka_topic_partition_list_t *list, int async) {
    if (list->cnt == 0)
        return 0;
    uint64_t before = kafka->stats.commits;
    if (async) {
        rd_kafka_resp_err_t err = rd_kafka_commit(kafka->consumer, list, 1);
        if (err) {
            kafka->stats.commit_failures++;
            NX_LOG_RL(NX_LOG_WARNING, "kafka: offset commit: %s", rd_kafka_err2str(err));
            return -1;
        }
        return 0;
    }
    rd_kafka_commit_queue(kafka->consumer, list, NULL, commit_cb, kafka);
    return kafka->stats.commits > before ? 0 : -1;
}

/* Pauses the partitions the owner holds (nx_kafka_hold). */
static void pause_held(nx_kafka_t *kafka) {
    rd_kafka_topic_partition_list_t *list = NULL;
    for (int i = 0; i < MAX_TRACKERS; i++) {
        tracker_t *t = &kafka->trackers[i];
        if (!t->used || !t->held)
            continue;
        if (!list)
            list = rd_kafka_topic_partition_list_new(kafka->n_trackers);
        rd_kafka_topic_partition_list_add(list, kafka->topics.v[t->topic], t->partition);
    }
    if (list) {
        rd_kafka_pause_partitions(kafka->consumer, list);
        rd_kafka_topic_partition_list_destroy(list);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    nx_kafka_t *kafka = opaque;
    /* The protocol is always eager: configuration refuses cooperative-sticky
     * (config_rdkafka.c). Asking librdkafka (rd_kafka_rebalance_protocol)
     * is a request to its group thread, which no longer answers once a
     * consumer close has ended the group: from the revoke inside that close
     * the call can wait without end. */
    kafka->stats.rebalances++;
    if (kafka->closed && (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS || kafka->close_assigned)) {
        /* A join under way when the close unsubscribed can still end in an
         * assignment. Nothing is read from it, so it is not taken: no
         * tracking, no state loaded, no committed offsets asked for (a
         * request a group being left may never answer, which would hold
         * the shutdown for its whole timeout). Its revocation has no owner
         * hook either. */
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
            kafka->close_assigned = 1;
            nx_notice("kafka: %d partition(s) assigned while leaving the group; not taken",
                      parts->cnt);
        } else {
            kafka->close_assigned = 0;
        }
        rd_kafka_assign(rk, NULL);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            int topic = nx_kafka_topic_of(kafka, parts->elems[i].topic);
            if (topic < 0 || !nx_kafka_tracker_add(kafka, topic, parts->elems[i].partition))
                nx_err("kafka: cannot track %s [%" PRId32 "]", parts->elems[i].topic,
                       parts->elems[i].partition);
        }
        if (kafka->hooks.assigned)
            kafka->hooks.assigned(kafka->hooks.opaque, parts);
        /* A start offset the hook chose (a checkpoint's) is where the
         * owner's state ends and everything before it was acknowledged:
         * store it, so the group's committed offset follows even when no
         * record comes after it. */
        for (int i = 0; i < parts->cnt; i++) {
            int topic = nx_kafka_topic_of(kafka, parts->elems[i].topic);
            tracker_t *t =
                topic < 0 ? NULL : nx_kafka_tracker_find(kafka, topic, parts->elems[i].partition);
            if (t && parts->elems[i].offset >= 0) {
                t->stored = parts->elems[i].offset;
                t->dirty = 1;
            }
        }
        nx_notice("kafka: assigned %d partition(s)", parts->cnt);
        err = rd_kafka_assign(rk, parts);
        if (err)
            nx_err("kafka: assign: %s", rd_kafka_err2str(err));
        if (kafka->paused)
            rd_kafka_pause_partitions(rk, parts);
        else
            pause_held(kafka);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        /* Deliver what was produced for these partitions while we still
         * own them; the owner's hook commits what it may (nx_kafka_commit_*)
         * and saves their state, then they go. */
        int left = rd_kafka_flush(kafka->producer, kafka->flush_timeout_ms);
        if (left > 0)
            nx_warn("kafka: %d prediction(s) undelivered at revoke; they will be re-read", left);
        serve_deliveries(kafka);
        kafka->revoke_lost = rd_kafka_assignment_lost(rk);
        if (kafka->hooks.revoked)
            kafka->hooks.revoked(kafka->hooks.opaque, parts);
        /* librdkafka keeps a partition's pause across revoke and assign: one
         * leaving paused (back-pressure, a rewind) would come back paused
         * for good. Resuming one that is not paused is not a no-op in 2.0.2
         * (it can move the fetch position), so only the paused ones. */
        rd_kafka_topic_partition_list_t *was_paused = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++) {
            int topic = nx_kafka_topic_of(kafka, parts->elems[i].topic);
            tracker_t *t =
                topic < 0 ? NULL : nx_kafka_tracker_find(kafka, topic, parts->elems[i].partition);
            if (kafka->paused || (t && (t->hold_until || t->held)))
                rd_kafka_topic_partition_list_add(was_paused, parts->elems[i].topic,
                                                  parts->elems[i].partition);
            if (t)
                nx_kafka_tracker_remove(kafka, t);
        }
        if (was_paused->cnt)
            rd_kafka_resume_partitions(rk, was_paused);
        rd_kafka_topic_partition_list_destroy(was_paused);
        kafka->revoke_lost = 0;
        nx_notice("kafka: revoked %d partition(s)%s", parts->cnt,
                  rd_kafka_assignment_lost(rk) ? " (lost)" : "");
        rd_kafka_assign(rk, NULL);
    } else {
        nx_err("kafka: rebalance failed: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
}

/* librdkafka's statistics: consumer lag and brokers up (kafka_stats.c). */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    (void)len;
    nx_kafka_t *kafka = opaque;
    nx_kafka_parsed_stats_t st;
    nx_kafka_parse_stats(json, kafka->topics.v, kafka->topics.n, kafka->lags, NX_KAFKA_MAX_LAGS,
                         &st);
    kafka->n_lags = st.n_lags;
    kafka->stats.brokers_up = st.brokers_up;
    kafka->stats.consumer_lag = st.consumer_lag;
    return 0; /* librdkafka frees json */
}

int nx_kafka_lags(const nx_kafka_t *kafka, nx_kafka_lag_t *out, int max) {
    int n = kafka->n_lags < max ? kafka->n_lags : max;
    memcpy(out, kafka->lags, (size_t)n * sizeof *out);
    return n;
}

/* ---- set-up ----------------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                    size_t errstr_size) {
    char why[512];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK)
        return nx_errf(errstr, errstr_size, "kafka: %s = %s: %s", name, value, why);
    return 0;
}

static int conf_apply_map(rd_kafka_conf_t *conf, const nx_strmap_t *m, char *errstr,
                          size_t errstr_size) {
    for (int i = 0; i < m->n; i++)
        if (conf_set(conf, m->key[i], m->val[i], errstr, errstr_size) < 0)
            return -1;
    return 0;
}

static int conf_apply_list(rd_kafka_conf_t *conf, const char *const *kv, char *errstr,
                           size_t errstr_size) {
    for (; kv[0] && kv[1]; kv += 2)
        if (conf_set(conf, kv[0], kv[1], errstr, errstr_size) < 0)
            return -1;
    return 0;
}

static rd_kafka_conf_t *base_conf(nx_kafka_t *kafka, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char lvl[8];
    snprintf(lvl, sizeof lvl, "%d", nx_log_get_level());
    if (conf_set(conf, "bootstrap.servers", kafka->brokers, errstr, errstr_size) < 0 ||
        conf_set(conf, "log_level", lvl, errstr, errstr_size) < 0 ||
        conf_set(conf, "client.id", "nextactd", errstr, errstr_size) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, kafka);
    return conf;
}

static int start_mock(nx_kafka_t *kafka, const nx_config_t *cfg, char *errstr, size_t errstr_size) {
    char why[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    /* this handle only hosts the mock cluster: its "no bootstrap.servers"
     * notice is noise */
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    kafka->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!kafka->mock_rk) {
        rd_kafka_conf_destroy(conf);
        return nx_errf(errstr, errstr_size, "kafka: mock cluster handle: %s", why);
    }
    kafka->mock = rd_kafka_mock_cluster_new(kafka->mock_rk, 1);
    if (!kafka->mock)
        return nx_errf(errstr, errstr_size, "kafka: cannot start the mock cluster");
    /* The demo's topics: 4 input partitions, so the consumer exercises the
     * same per-partition bookkeeping as against a real cluster. */
    for (int i = 0; i < cfg->kafka.input_topics.n; i++)
        rd_kafka_mock_topic_create(kafka->mock, cfg->kafka.input_topics.v[i], 4, 1);
    rd_kafka_mock_topic_create(kafka->mock, cfg->kafka.output_topic, 4, 1);
    if (cfg->kafka.dead_letter_topic[0])
        rd_kafka_mock_topic_create(kafka->mock, cfg->kafka.dead_letter_topic, 1, 1);
    kafka->brokers = strdup(rd_kafka_mock_cluster_bootstraps(kafka->mock));
    nx_notice("kafka: in-process mock cluster at %s", kafka->brokers);
    return kafka->brokers ? 0 : nx_errf(errstr, errstr_size, "out of memory");
}

nx_kafka_t *nx_kafka_new(const nx_config_t *cfg, const nx_kafka_hooks_t *hooks, char *errstr,
                         size_t errstr_size) {
    nx_kafka_t *kafka = calloc(1, sizeof *kafka);
    rd_kafka_conf_t *pconf = NULL, *cconf = NULL;
    rd_kafka_topic_partition_list_t *sub = NULL;
    char why[512];
    if (!kafka) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (hooks)
        kafka->hooks = *hooks;
    kafka->stats.consumer_lag = -1;
    kafka->stats.brokers_up = -1;
    kafka->flush_timeout_ms = (int)cfg->kafka.flush_timeout_ms;
    for (int i = 0; i < cfg->kafka.input_topics.n; i++)
        kafka->topics.v[kafka->topics.n++] = strdup(cfg->kafka.input_topics.v[i]);
    kafka->output_topic = strdup(cfg->kafka.output_topic);
    if (cfg->kafka.dead_letter_topic[0])
        kafka->dlq_topic = strdup(cfg->kafka.dead_letter_topic);

    if (strcmp(cfg->kafka.brokers, "mock") == 0) {
        if (start_mock(kafka, cfg, errstr, errstr_size) < 0)
            goto err;
    } else {
        kafka->brokers = strdup(cfg->kafka.brokers);
    }

    /* producer: the user's pass-through properties come last */
    if (!(pconf = base_conf(kafka, errstr, errstr_size)))
        goto err;
    if (conf_apply_list(pconf, nx_kafka_producer_tuning, errstr, errstr_size) < 0)
        goto err;
    kafka->transactional = cfg->kafka.transactional;
    if (kafka->transactional) {
        /* exactly-once (txn.h): the id fences a predecessor; an open
         * transaction of a crashed process holds back read_committed
         * readers (and the next owner's restore) until the coordinator
         * aborts it: 10 s instead of librdkafka's 60 s default */
        char txid[512];
        nx_txn_id(cfg, txid, sizeof txid);
        if (conf_set(pconf, "transactional.id", txid, errstr, errstr_size) < 0 ||
            conf_set(pconf, "transaction.timeout.ms", "10000", errstr, errstr_size) < 0)
            goto err;
    }
    if (conf_apply_map(pconf, &cfg->kafka.producer, errstr, errstr_size) < 0)
        goto err;
    rd_kafka_conf_set_dr_msg_cb(pconf, dr_cb);
    kafka->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, why, sizeof why);
    if (!kafka->producer) {
        nx_errf(errstr, errstr_size, "kafka: producer: %s", why);
        goto err;
    }
    pconf = NULL;

    /* consumer */
    if (!(cconf = base_conf(kafka, errstr, errstr_size)))
        goto err;
    if (conf_set(cconf, "group.id", cfg->kafka.group_id, errstr, errstr_size) < 0 ||
        conf_set(cconf, "enable.auto.offset.store", "false", errstr, errstr_size) < 0 ||
        conf_set(cconf, "enable.auto.commit", "false", errstr, errstr_size) < 0 ||
        conf_set(cconf, "auto.offset.reset", "earliest", errstr, errstr_size) < 0 ||
        conf_set(cconf, "partition.assignment.strategy", "range,roundrobin", errstr, errstr_size) <
            0 ||
        conf_set(cconf, "statistics.interval.ms", "5000", errstr, errstr_size) < 0 ||
        conf_apply_list(cconf, nx_kafka_consumer_tuning, errstr, errstr_size) < 0 ||
        conf_apply_map(cconf, &cfg->kafka.consumer, errstr, errstr_size) < 0)
        goto err;
    rd_kafka_conf_set_rebalance_cb(cconf, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(cconf, commit_cb);
    rd_kafka_conf_set_stats_cb(cconf, stats_cb);
    kafka->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, why, sizeof why);
    if (!kafka->consumer) {
        nx_errf(errstr, errstr_size, "kafka: consumer: %s", why);
        goto err;
    }
    cconf = NULL;
    rd_kafka_poll_set_consumer(kafka->consumer);

    sub = rd_kafka_topic_partition_list_new(kafka->topics.n);
    for (int i = 0; i < kafka->topics.n; i++)
        rd_kafka_topic_partition_list_add(sub, kafka->topics.v[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(kafka->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        nx_errf(errstr, errstr_size, "kafka: subscribe: %s", rd_kafka_err2str(err));
        goto err;
    }
    return kafka;

err:
    if (pconf)
        rd_kafka_conf_destroy(pconf);
    if (cconf)
        rd_kafka_conf_destroy(cconf);
    kafka->closed = 1; /* nothing to commit */
    nx_kafka_destroy(kafka);
    return NULL;
}

const char *nx_kafka_brokers(const nx_kafka_t *kafka) {
    return kafka->brokers;
}

rd_kafka_t *nx_kafka_producer(nx_kafka_t *kafka) {
    return kafka->producer;
}

/* ---- the loop's calls --------------------------------------------------------- */

/* 1 if the tracker of this assigned partition holds it paused: its owner
 * (nx_kafka_hold) or a rewind (nx_kafka_rewind). */
static int held(nx_kafka_t *kafka, const rd_kafka_topic_partition_t *p) {
    int topic = nx_kafka_topic_of(kafka, p->topic);
    tracker_t *t = topic < 0 ? NULL : nx_kafka_tracker_find(kafka, topic, p->partition);
    return t && (t->held || t->hold_until);
}

static void set_paused(nx_kafka_t *kafka, int pause) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(kafka->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (pause) {
        rd_kafka_pause_partitions(kafka->consumer, parts);
    } else {
        /* partitions their owner holds (nx_kafka_hold) or a rewind holds
         * stay paused until released */
        for (int i = parts->cnt - 1; i >= 0; i--)
            if (held(kafka, &parts->elems[i]))
                rd_kafka_topic_partition_list_del_by_idx(parts, i);
        rd_kafka_resume_partitions(kafka->consumer, parts);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    kafka->paused = pause;
    kafka->stats.pauses += pause;
}

/* Seeks a held partition to its rewind offset; 0, or -1 (logged) if
 * librdkafka refused it (it is tried again at the next poll). The seek is
 * asynchronous: librdkafka delivers nothing the partition fetched before
 * it from the call on (a version barrier), and applies it in the
 * partition's thread, before the resume. (2.0.2 also waits a thousandth of
 * the timeout it is given.) */
static int seek_held(nx_kafka_t *kafka, tracker_t *t) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, kafka->topics.v[t->topic], t->partition)->offset =
        t->rewind_to;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(kafka->consumer, list, 0);
    rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : list->elems[0].err;
    if (err == RD_KAFKA_RESP_ERR__IN_PROGRESS)
        err = RD_KAFKA_RESP_ERR_NO_ERROR; /* under way */
    if (err)
        NX_LOG_RL(NX_LOG_WARNING,
                  "kafka: seeking %s [%" PRId32 "] back to %" PRId64 ": %s; "
                  "it stays paused and is sought again",
                  kafka->topics.v[t->topic], t->partition, t->rewind_to,
                  e ? rd_kafka_error_string(e) : rd_kafka_err2str(err));
    if (e)
        rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(list);
    t->seek_due = err != RD_KAFKA_RESP_ERR_NO_ERROR;
    return t->seek_due ? -1 : 0;
}

/* Pauses t's partition, seeks it to offset and holds it for hold_ms. */
static void seek_back(nx_kafka_t *kafka, tracker_t *t, int64_t offset, int64_t hold_ms) {
    /* Paused first: librdkafka drops what it fetched ahead for the
     * partition at once, and the seek then sets where fetching resumes
     * (a seek also forgets the position the application last read, which
     * a later pause would otherwise go back to). */
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, kafka->topics.v[t->topic], t->partition);
    rd_kafka_pause_partitions(kafka->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (!t->hold_until)
        kafka->n_held++;
    t->hold_until = nx_now_mono_ms() + (hold_ms > 0 ? hold_ms : 1);
    t->rewind_to = offset;
    seek_held(kafka, t);
}

int nx_kafka_rewind(nx_kafka_t *kafka, int topic, int32_t partition, int64_t offset,
                    int64_t hold_ms) {
    tracker_t *t = topic < 0 ? NULL : nx_kafka_tracker_find(kafka, topic, partition);
    if (!t)
        return -1;
    seek_back(kafka, t, offset, hold_ms);
    t->rewound = 1;
    kafka->stats.rewinds++;
    return 0;
}

int nx_kafka_seek_back(nx_kafka_t *kafka, int topic, int32_t partition, int64_t offset) {
    tracker_t *t = topic < 0 ? NULL : nx_kafka_tracker_find(kafka, topic, partition);
    if (!t)
        return -1;
    seek_back(kafka, t, offset, 1);
    return 0;
}

/* Resumes held partitions whose time has come (their seek applied), unless
 * back-pressure holds the whole input, which resumes them with the rest. */
static void release_held(nx_kafka_t *kafka) {
    int64_t now = nx_now_mono_ms();
    for (int i = 0; kafka->n_held && i < MAX_TRACKERS; i++) {
        tracker_t *t = &kafka->trackers[i];
        if (!t->used || !t->hold_until || (t->seek_due && seek_held(kafka, t) < 0) ||
            now < t->hold_until)
            continue;
        t->hold_until = 0;
        kafka->n_held--;
        if (kafka->paused || t->held)
            continue;
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, kafka->topics.v[t->topic], t->partition);
        rd_kafka_resume_partitions(kafka->consumer, list);
        rd_kafka_topic_partition_list_destroy(list);
    }
}

static int ring_full(const nx_kafka_t *kafka) {
    /* leave room for one more polled batch (65536 max) */
    for (int i = 0; i < MAX_TRACKERS; i++) {
        const tracker_t *t = &kafka->trackers[i];
        if (t->used && t->tail - t->head > TRACK_CAP / 2)
            return 1;
    }
    return 0;
}

int nx_kafka_poll_batch(nx_kafka_t *kafka, rd_kafka_message_t **msgs, int max, int timeout_ms) {
    /* delivery reports first: they advance stored offsets */
    serve_deliveries(kafka);
    nx_kafka_store_offsets(kafka);
    if (kafka->n_held)
        release_held(kafka);

    int outq = rd_kafka_outq_len(kafka->producer);
    if (!kafka->paused && (outq > OUTQ_HIGH || ring_full(kafka))) {
        nx_debug("kafka: back-pressure: %d records in the producer queue; pausing input", outq);
        set_paused(kafka, 1);
    } else if (kafka->paused && outq < OUTQ_HIGH / 2 && !ring_full(kafka)) {
        set_paused(kafka, 0);
    }
    if (kafka->paused) {
        /* drain the producer instead of waiting on the consumer */
        rd_kafka_poll(kafka->producer, timeout_ms);
        timeout_ms = 0;
    }

    /* Wait for the first record in slices, serving delivery reports in
     * between: acknowledgements then reach the offsets (and the latency
     * figures) within a slice instead of a whole poll timeout. */
    int n = 0;
    int64_t deadline = nx_now_mono_ms() + timeout_ms;
    while (n < max) {
        int wait = 0;
        if (n == 0) {
            int64_t left = deadline - nx_now_mono_ms();
            wait = left <= 0 ? 0 : left < POLL_SLICE_MS ? (int)left : POLL_SLICE_MS;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kafka->consumer, wait);
        if (!m && n == 0 && wait > 0) {
            serve_deliveries(kafka);
            continue;
        }
        if (!m)
            break;
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                rd_kafka_message_destroy(m);
                continue;
            }
            int fatal = m->err == RD_KAFKA_RESP_ERR__FATAL;
            NX_LOG_RL(fatal ? NX_LOG_ERR : NX_LOG_WARNING, "kafka: consumer: %s",
                      rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (fatal) {
                for (int i = 0; i < n; i++)
                    rd_kafka_message_destroy(msgs[i]);
                return -1;
            }
            continue;
        }
        msgs[n++] = m;
    }
    kafka->stats.consumed += (uint64_t)n;
    return n;
}

int nx_kafka_topic_index(nx_kafka_t *kafka, const rd_kafka_message_t *msg) {
    return nx_kafka_topic_of(kafka, rd_kafka_topic_name(msg->rkt));
}

int nx_kafka_produce(nx_kafka_t *kafka, nx_ticket_t ticket, const void *key, size_t key_len,
                     const void *value, size_t value_len) {
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            kafka->producer, RD_KAFKA_V_TOPIC(kafka->output_topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)ticket), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            NX_LOG_RL(NX_LOG_ERR, "kafka: produce to %s: %s", kafka->output_topic,
                      rd_kafka_err2str(err));
            return -1;
        }
        /* Queue full: serve delivery reports until there is room. The loop
         * pauses input long before this (OUTQ_HIGH), so this is rare. */
        rd_kafka_poll(kafka->producer, 10);
    }
}

int nx_kafka_dead_letter(nx_kafka_t *kafka, nx_ticket_t ticket, const rd_kafka_message_t *msg,
                         const char *reason) {
    if (!kafka->dlq_topic) {
        nx_kafka_done(kafka, ticket);
        return 0;
    }
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, msg->partition);
    snprintf(off, sizeof off, "%" PRId64, msg->offset);
    const char *topic = rd_kafka_topic_name(msg->rkt);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "nx-reason", -1, reason, -1);
    rd_kafka_header_add(h, "nx-source-topic", -1, topic, -1);
    rd_kafka_header_add(h, "nx-source-partition", -1, part, -1);
    rd_kafka_header_add(h, "nx-source-offset", -1, off, -1);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            kafka->producer, RD_KAFKA_V_TOPIC(kafka->dlq_topic),
            RD_KAFKA_V_KEY(msg->key, msg->key_len), RD_KAFKA_V_VALUE(msg->payload, msg->len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)ticket), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0; /* the producer owns h now */
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_headers_destroy(h);
            NX_LOG_RL(NX_LOG_ERR, "kafka: produce to %s: %s", kafka->dlq_topic,
                      rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_poll(kafka->producer, 10);
    }
}

int nx_kafka_commit_acknowledged(nx_kafka_t *kafka, int async) {
    serve_deliveries(kafka);
    nx_kafka_store_offsets(kafka);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(kafka->n_trackers);
    for (int i = 0; i < MAX_TRACKERS; i++) {
        tracker_t *t = &kafka->trackers[i];
        if (t->used && t->stored >= 0 && t->stored != t->committed) {
            rd_kafka_topic_partition_list_add(list, kafka->topics.v[t->topic], t->partition)
                ->offset = t->stored;
            t->committed = t->stored;
        }
    }
    int rc = commit_list(kafka, list, async);
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

int nx_kafka_commit_offsets(nx_kafka_t *kafka, const nx_kafka_offset_t *offs, int n, int async) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        /* only partitions we own: another member's progress is not ours to
         * move, and a revoked partition's offset is its new owner's */
        tracker_t *t = nx_kafka_tracker_find(kafka, offs[i].topic, offs[i].partition);
        if (!t || offs[i].offset < 0 || offs[i].offset == t->committed)
            continue;
        rd_kafka_topic_partition_list_add(list, kafka->topics.v[t->topic], t->partition)->offset =
            offs[i].offset;
        t->committed = offs[i].offset;
    }
    int rc = commit_list(kafka, list, async);
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

int nx_kafka_committed(nx_kafka_t *kafka, rd_kafka_topic_partition_list_t *parts, int timeout_ms) {
    rd_kafka_resp_err_t err = rd_kafka_committed(kafka->consumer, parts, timeout_ms);
    if (err) {
        nx_warn("kafka: reading the group's committed offsets: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int64_t nx_kafka_log_start(nx_kafka_t *kafka, const char *topic, int32_t partition,
                           int timeout_ms) {
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(kafka->consumer, topic, partition, &lo, &hi, timeout_ms);
    return err ? -1 : lo;
}

int nx_kafka_hold(nx_kafka_t *kafka, int topic, int32_t partition) {
    tracker_t *t = nx_kafka_tracker_find(kafka, topic, partition);
    if (!t)
        return -1;
    t->held = 1;
    return 0;
}

void nx_kafka_release(nx_kafka_t *kafka, int topic, int32_t partition) {
    tracker_t *t = nx_kafka_tracker_find(kafka, topic, partition);
    if (!t || !t->held)
        return;
    t->held = 0;
    if (kafka->paused || t->hold_until)
        return; /* back-pressure, or the rewind's end, resumes it */
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, kafka->topics.v[topic], partition);
    rd_kafka_resume_partitions(kafka->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
}

int nx_kafka_holding(const nx_kafka_t *kafka) {
    int n = 0;
    for (int i = 0; i < MAX_TRACKERS; i++)
        n += kafka->trackers[i].used && kafka->trackers[i].held;
    return n;
}

void nx_kafka_on_other_delivery(nx_kafka_t *kafka,
                                void (*fn)(void *opaque, const rd_kafka_message_t *m),
                                void *opaque) {
    kafka->other_dr = fn;
    kafka->other_dr_opaque = opaque;
}

rd_kafka_t *nx_kafka_consumer(nx_kafka_t *kafka) {
    return kafka->consumer;
}

int nx_kafka_revoke_lost(const nx_kafka_t *kafka) {
    return kafka->revoke_lost;
}

int nx_kafka_flush(nx_kafka_t *kafka, int timeout_ms) {
    rd_kafka_flush(kafka->producer, timeout_ms);
    return rd_kafka_outq_len(kafka->producer);
}

void nx_kafka_stats(const nx_kafka_t *kafka, nx_kafka_stats_t *stats) {
    *stats = kafka->stats;
    stats->assigned_partitions = kafka->n_trackers;
    stats->paused = kafka->paused;
    /* a rewound partition waits from its rewind until its record is
     * tracked, including the fetch between its release and that record:
     * counting only the paused spell would flicker between retries */
    stats->held_partitions = 0;
    for (int i = 0; i < MAX_TRACKERS; i++)
        stats->held_partitions += kafka->trackers[i].used && kafka->trackers[i].rewound;
    stats->producer_queue = rd_kafka_outq_len(kafka->producer);
}
