/* changelog.c: user state in a compacted Kafka topic (changelog.h). */
#include "changelog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "changelog_int.h"
#include "kadmin.h"
#include "log.h"
#include "txn.h"

/* ---- helpers -------------------------------------------------------------------- */

static void user_key(uint8_t k[8], uint64_t user) {
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(user >> (56 - 8 * i));
}

static int push(sent_t **v, size_t *n, size_t *cap, uint64_t user, int32_t partition) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4096;
        sent_t *p = realloc(*v, c * sizeof *p);
        if (!p)
            return -1;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = (sent_t){user, partition};
    return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    nx_log(level < NX_LOG_ERR ? NX_LOG_ERR : level, "changelog: %s: %s", fac, buf);
}

/* The changelog's own producer (not with exactly-once: kafka.c's then):
 * the offsets its records land at, so that a kept partition's users are
 * known to be the state up to them (kept_t). */
static void note_offset(nx_changelog_t *cl, const rd_kafka_message_t *m) {
    if (!cl->pend_max || m->err || m->partition < 0 || m->partition >= cl->n_parts)
        return;
    if (m->offset > cl->pend_max[m->partition])
        cl->pend_max[m->partition] = m->offset;
}

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->_private)
        note_offset(m->_private, m);
}

/* Exactly-once: the predictions' producer writes the changelog too. */
static void delivered_borrowed(void *opaque, const rd_kafka_message_t *m) {
    nx_changelog_t *cl = opaque;
    if (m->rkt && strcmp(rd_kafka_topic_name(m->rkt), cl->topic) == 0)
        note_offset(cl, m);
}

/* ---- start: topics ------------------------------------------------------------------ */

/* Input topics co-partitioned, changelog topic there with as many
 * partitions. 0, or -1 + *status. */
static int check_topics(nx_changelog_t *cl, int *status, char *errstr, size_t errstr_size) {
    const nx_strlist_t *in = &cl->cfg->kafka.input_topics;
    *status = 1;
    for (int i = 0; i < in->n; i++) {
        int n = nx_kadmin_partitions(cl->producer, in->v[i], ADMIN_TIMEOUT_MS, errstr, errstr_size);
        if (n < 0)
            return -1;
        if (n == 0) {
            *status = NX_EXIT_CONFIG;
            return nx_errf(errstr, errstr_size,
                           "changelog: input topic %s does not exist; with state.changelog the "
                           "input topics must exist (co-partitioned) at start",
                           in->v[i]);
        }
        if (i > 0 && n != cl->n_parts) {
            *status = NX_EXIT_CONFIG;
            return nx_errf(errstr, errstr_size,
                           "changelog: input topics are not co-partitioned: %s has %d "
                           "partitions, %s %d; a user's events must all land on one partition "
                           "number",
                           in->v[0], (int)cl->n_parts, in->v[i], n);
        }
        cl->n_parts = n;
    }
    int n = nx_kadmin_partitions(cl->producer, cl->topic, ADMIN_TIMEOUT_MS, errstr, errstr_size);
    if (n < 0)
        return -1;
    if (n == 0 && (nx_kadmin_create_compacted(cl->producer, cl->topic, (int)cl->n_parts,
                                              (int)cl->cfg->state.replication_factor, NULL,
                                              ADMIN_TIMEOUT_MS, errstr, errstr_size) < 0 ||
                   (n = nx_kadmin_partitions(cl->producer, cl->topic, ADMIN_TIMEOUT_MS, errstr,
                                             errstr_size)) < 0))
        return -1;
    if (n != cl->n_parts) {
        *status = NX_EXIT_CONFIG;
        return nx_errf(errstr, errstr_size,
                       "changelog: topic %s has %d partitions, the input topics %d: changelog "
                       "partition p must hold the users of input partition p",
                       cl->topic, n, (int)cl->n_parts);
    }
    return 0;
}

/* ---- start and end ------------------------------------------------------------------- */

static int start_clients(nx_changelog_t *cl, int *status, char *errstr, size_t errstr_size) {
    const nx_config_t *cfg = cl->cfg;
    char txid[512], inst[256], group[512], why[512];
    nx_txn_instance(cfg, inst, sizeof inst);
    nx_txn_id(cfg, txid, sizeof txid);
    snprintf(group, sizeof group, "%s-state-restore-%s", cfg->kafka.group_id, inst);
    const char *pprops[] = {"transactional.id",
                            txid,
                            "client.id",
                            "nextactd-state",
                            "transaction.timeout.ms",
                            TXN_ABORT_AFTER_MS,
                            "linger.ms",
                            "5",
                            "compression.type",
                            "lz4",
                            NULL};
    rd_kafka_conf_t *conf = NULL;
    if (cfg->kafka.transactional) {
        /* exactly-once: the predictions' producer, made transactional under
         * the same id, writes the state too (txn.h) */
        cl->producer = nx_kafka_producer(cl->kafka);
        cl->borrowed = 1;
        nx_kafka_on_other_delivery(cl->kafka, delivered_borrowed, cl);
    } else if (!(conf = nx_kadmin_client_conf("changelog", nx_kafka_brokers(cl->kafka),
                                              &cfg->kafka.producer, pprops, log_cb, errstr,
                                              errstr_size))) {
        return -1;
    } else if ((rd_kafka_conf_set_dr_msg_cb(conf, delivered),
                !(cl->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why)))) {
        rd_kafka_conf_destroy(conf);
        return nx_errf(errstr, errstr_size, "changelog: producer: %s", why);
    }
    if (check_topics(cl, status, errstr, errstr_size) < 0)
        return -1;
    *status = 1;
    cl->rkt = rd_kafka_topic_new(cl->producer, cl->topic, NULL);
    /* fences an earlier process of this instance and aborts what it left
     * open */
    rd_kafka_error_t *e = rd_kafka_init_transactions(cl->producer, TXN_TIMEOUT_MS);
    if (e) {
        nx_errf(errstr, errstr_size, "changelog: init_transactions (%s): %s", txid,
                rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return -1;
    }
    /* The restore reader: no group membership (manual assignment), no
     * commits; large fetches, one partition read front to back. */
    const char *cprops[] = {"group.id", group, "client.id", "nextactd-state-restore",
                            "enable.auto.commit", "false", "enable.auto.offset.store", "false",
                            "enable.partition.eof", "true", "isolation.level", "read_committed",
                            "auto.offset.reset", "earliest", "max.partition.fetch.bytes", "4194304",
                            /* an idle partition's end is seen at once */
                            "fetch.wait.max.ms", "10", NULL};
    if (!(conf = nx_kadmin_client_conf("changelog", nx_kafka_brokers(cl->kafka),
                                       &cfg->kafka.consumer, cprops, log_cb, errstr, errstr_size)))
        return -1;
    if (!(cl->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why))) {
        rd_kafka_conf_destroy(conf);
        return nx_errf(errstr, errstr_size, "changelog: restore consumer: %s", why);
    }
    rd_kafka_poll_set_consumer(cl->reader);
    nx_notice("changelog: topic %s, %d partitions, transactional.id %s", cl->topic,
              (int)cl->n_parts, txid);
    return 0;
}

nx_changelog_t *nx_changelog_new(const nx_config_t *cfg, nx_kafka_t *kafka, nx_pipeline_t *pipe,
                                 nx_offsets_t *offs, uint64_t key_fp, int *status, char *errstr,
                                 size_t errstr_size) {
    nx_changelog_t *cl = calloc(1, sizeof *cl);
    *status = 1;
    if (!cl) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    cl->cfg = cfg;
    cl->kafka = kafka;
    cl->pipe = pipe;
    cl->store = nx_pipeline_store(pipe);
    cl->offs = offs;
    cl->key_fp = key_fp;
    cl->n_topics = cfg->kafka.input_topics.n;
    cl->topic = strdup(cfg->state.changelog);
    if (!cl->topic)
        goto oom;
    if (start_clients(cl, status, errstr, errstr_size) < 0)
        goto err;
    cl->state = calloc((size_t)cl->n_parts, 1);
    cl->rs = calloc((size_t)cl->n_parts, sizeof *cl->rs);
    cl->committed = malloc((size_t)cl->n_parts * (size_t)cl->n_topics * sizeof *cl->committed);
    cl->kept = calloc((size_t)cl->n_parts, sizeof *cl->kept);
    cl->tail = malloc((size_t)cl->n_parts * sizeof *cl->tail);
    cl->pend_max = malloc((size_t)cl->n_parts * sizeof *cl->pend_max);
    cl->take = malloc(TAKE_SLICE * sizeof *cl->take);
    cl->rec_size = nx_store_user_record_size(cl->store);
    cl->rec = malloc(cl->rec_size);
    if (!cl->state || !cl->rs || !cl->committed || !cl->kept || !cl->tail || !cl->pend_max ||
        !cl->take || !cl->rec)
        goto oom;
    for (int32_t p = 0; p < cl->n_parts; p++)
        cl->tail[p] = cl->pend_max[p] = -1;
    for (int i = 0; i < cl->n_parts * cl->n_topics; i++)
        cl->committed[i] = -1;
    if (nx_store_track_changes(cl->store, 1) < 0)
        goto oom;
    cl->last_flush_mono = nx_now_mono_ms();
    *status = 0;
    return cl;
oom:
    nx_errf(errstr, errstr_size, "out of memory");
    *status = 1;
err:
    nx_changelog_destroy(cl);
    return NULL;
}

void nx_changelog_destroy(nx_changelog_t *cl) {
    if (!cl)
        return;
    if (cl->borrowed)
        nx_kafka_on_other_delivery(cl->kafka, NULL, NULL);
    if (cl->reader) {
        rd_kafka_consumer_close(cl->reader);
        rd_kafka_destroy(cl->reader);
    }
    if (cl->rkt)
        rd_kafka_topic_destroy(cl->rkt);
    if (cl->producer && !cl->borrowed)
        rd_kafka_destroy(cl->producer);
    if (cl->store)
        nx_store_track_changes(cl->store, 0);
    free(cl->rec);
    free(cl->deferred);
    free(cl->sent);
    free(cl->take);
    free(cl->committed);
    for (int32_t p = 0; cl->kept && p < cl->n_parts; p++)
        nx_changelog_kept_free(cl, p);
    free(cl->kept);
    free(cl->tail);
    free(cl->pend_max);
    free(cl->rs);
    free(cl->state);
    free(cl->topic);
    free(cl);
}

/* ---- flush ---------------------------------------------------------------------------- */

/* Produces one record to the open transaction; waits while librdkafka's
 * queue is full. 0 or -1 (an error the commit reports as well). */
static int produce(nx_changelog_t *cl, int32_t partition, const void *key, size_t klen,
                   const void *val, size_t vlen) {
    for (;;) {
        /* the opaque tells delivered() its changelog; kafka.c's callback
         * (exactly-once) takes a record without one for the changelog's */
        if (rd_kafka_produce(cl->rkt, partition, RD_KAFKA_MSG_F_COPY, (void *)val, vlen, key, klen,
                             cl->borrowed ? NULL : cl) == 0) {
            cl->st.bytes += klen + vlen;
            return 0;
        }
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            NX_LOG_RL(NX_LOG_ERR, "changelog: produce: %s", rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_poll(cl->producer, 10);
    }
}

/* The position record of live partition p. */
static int produce_position(nx_changelog_t *cl, int32_t p) {
    uint8_t buf[2 + 8 + NX_CONFIG_MAX_LIST * (2 + 256 + 16)];
    size_t n = 0;
    buf[n++] = POSITION_VERSION;
    buf[n++] = (uint8_t)cl->n_topics;
    nx_changelog_put_u64(buf + n, cl->key_fp);
    n += 8;
    for (int t = 0; t < cl->n_topics; t++) {
        const char *name = cl->cfg->kafka.input_topics.v[t];
        size_t len = strlen(name);
        nx_kafka_offset_t *o = nx_offsets_find(cl->offs, t, p, 0);
        nx_changelog_put_u16(buf + n, (uint16_t)len);
        memcpy(buf + n + 2, name, len);
        n += 2 + len;
        nx_changelog_put_u64(buf + n, (uint64_t)(o ? o->offset : -1));
        nx_changelog_put_u64(buf + n + 8, (uint64_t)nx_pipeline_partition_clock(cl->pipe, t, p));
        n += 16;
    }
    return produce(cl, p, POSITION_KEY, sizeof POSITION_KEY - 1, buf, n);
}

/* Takes the store's changes: those of live partitions are produced into
 * the open transaction; those of partitions still restoring wait for a
 * later flush; others (not ours) are left out. */
static int produce_changes(nx_changelog_t *cl) {
    size_t k;
    while ((k = nx_store_take_changes(cl->store, cl->take, TAKE_SLICE)) > 0) {
        for (size_t i = 0; i < k; i++) {
            const nx_store_change_t *c = &cl->take[i];
            int32_t p = c->partition;
            uint8_t st = p >= 0 && p < cl->n_parts ? cl->state[p] : P_NONE;
            if (st == P_RESTORING) {
                if (push(&cl->deferred, &cl->n_deferred, &cl->cap_deferred, c->user, p) < 0)
                    return -1;
                continue;
            }
            if (st != P_LIVE)
                continue;
            uint8_t key[8];
            user_key(key, c->user);
            long len =
                c->removed ? 0 : nx_store_user_record(cl->store, c->user, cl->rec, cl->rec_size);
            if (len < 0)
                continue; /* not there after all: its removal follows */
            if (push(&cl->sent, &cl->n_sent, &cl->cap_sent, c->user, p) < 0 ||
                produce(cl, p, key, 8, c->removed ? NULL : cl->rec, (size_t)len) < 0)
                return -1;
            if (c->removed)
                cl->st.tombstones++;
            else
                cl->st.records++;
        }
    }
    return 0;
}

/* Offsets of the live partitions that moved since the last commit; NULL
 * when none did. */
static rd_kafka_topic_partition_list_t *moved_offsets(nx_changelog_t *cl) {
    rd_kafka_topic_partition_list_t *list = NULL;
    for (int32_t p = 0; p < cl->n_parts; p++) {
        if (cl->state[p] != P_LIVE)
            continue;
        for (int t = 0; t < cl->n_topics; t++) {
            nx_kafka_offset_t *o = nx_offsets_find(cl->offs, t, p, 0);
            if (!o || o->offset < 0 || o->offset == *nx_changelog_committed_at(cl, t, p))
                continue;
            if (!list)
                list = rd_kafka_topic_partition_list_new(cl->n_parts * cl->n_topics);
            rd_kafka_topic_partition_list_add(list, cl->cfg->kafka.input_topics.v[t], p)->offset =
                o->offset;
        }
    }
    return list;
}

/* After a transaction: what it committed becomes the baseline (ok), or
 * its users are listed again (aborted). */
static void txn_done(nx_changelog_t *cl, rd_kafka_topic_partition_list_t *offsets, int ok) {
    if (ok) {
        for (int i = 0; offsets && i < offsets->cnt; i++) {
            int t = nx_offsets_topic(cl->offs, offsets->elems[i].topic);
            if (t >= 0)
                *nx_changelog_committed_at(cl, t, offsets->elems[i].partition) =
                    offsets->elems[i].offset;
        }
        /* what this process's state covers now ends after its records */
        for (int32_t p = 0; p < cl->n_parts; p++)
            if (cl->state[p] == P_LIVE && cl->pend_max[p] + 1 > cl->tail[p])
                cl->tail[p] = cl->pend_max[p] + 1;
        cl->st.flushes++;
    } else {
        for (size_t i = 0; i < cl->n_sent; i++)
            nx_store_mark_changed(cl->store, cl->sent[i].user, cl->sent[i].partition);
        cl->st.aborts++;
    }
    cl->n_sent = 0;
    for (int32_t p = 0; p < cl->n_parts; p++)
        cl->pend_max[p] = -1;
}

/* An error of the transactional API: abortable ones abort (returns 0, the
 * flush failed but the next may succeed), fatal ones (fenced) fail the
 * changelog (-1). */
static int txn_error(nx_changelog_t *cl, const char *what, rd_kafka_error_t *e) {
    int abortable = rd_kafka_error_txn_requires_abort(e);
    int fatal = rd_kafka_error_is_fatal(e);
    if (fatal || !abortable) {
        nx_err("changelog: %s: %s; this instance can no longer write the state (fenced by "
               "a newer instance of the same state.instance_id, or the producer failed): "
               "stopping",
               what, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        cl->st.failed = 1;
        return -1;
    }
    NX_LOG_RL(NX_LOG_WARNING,
              "changelog: %s: %s; transaction aborted, its users are written "
              "by the next flush",
              what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    e = rd_kafka_abort_transaction(cl->producer, TXN_TIMEOUT_MS);
    if (e) {
        nx_err("changelog: abort_transaction: %s: stopping", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        cl->st.failed = 1;
        return -1;
    }
    return 0;
}

/* One flush. drain_ms: longest wait for the predictions. Returns 0 (done,
 * or nothing to do), 1 (postponed: predictions unacknowledged, or the
 * transaction aborted), -1 (failed for good). */
static int flush(nx_changelog_t *cl, int drain_ms) {
    if (cl->st.failed)
        return -1;
    int left = nx_kafka_flush(cl->kafka, drain_ms);
    if (left > 0) {
        NX_LOG_RL(NX_LOG_WARNING,
                  "changelog: %d prediction(s) unacknowledged after %d ms; flush postponed", left,
                  drain_ms);
        return 1;
    }
    rd_kafka_error_t *e = rd_kafka_begin_transaction(cl->producer);
    if (e)
        return txn_error(cl, "begin_transaction", e) < 0 ? -1 : 1;
    rd_kafka_topic_partition_list_t *offsets = NULL;
    int rc = 1;
    uint64_t lost = nx_store_changes_lost(cl->store);
    if (lost != cl->lost_seen) {
        nx_err("changelog: %llu change(s) dropped (the store's change list was full): those "
               "users are written when they change again",
               (unsigned long long)(lost - cl->lost_seen));
        cl->lost_seen = lost;
    }
    if (produce_changes(cl) < 0) {
        e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "producing the changes failed");
        goto abort;
    }
    offsets = moved_offsets(cl);
    if (offsets || cl->n_sent) {
        for (int32_t p = 0; p < cl->n_parts; p++)
            if (cl->state[p] == P_LIVE && produce_position(cl, p) < 0) {
                e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "producing a position failed");
                goto abort;
            }
    }
    if (offsets) {
        rd_kafka_consumer_group_metadata_t *gm =
            rd_kafka_consumer_group_metadata(nx_kafka_consumer(cl->kafka));
        e = rd_kafka_send_offsets_to_transaction(cl->producer, offsets, gm, TXN_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(gm);
        if (e)
            goto abort;
    }
    /* An empty transaction commits at no cost: nothing was sent. */
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_commit_transaction(cl->producer, TXN_TIMEOUT_MS);
        if (!e || !rd_kafka_error_is_retriable(e) || attempt == 2)
            break;
        rd_kafka_error_destroy(e);
    }
    if (e)
        goto abort;
    txn_done(cl, offsets, 1);
    rc = 0;
    goto out;
abort:
    if (txn_error(cl, "transaction", e) < 0)
        rc = -1;
    txn_done(cl, offsets, 0);
out:
    if (offsets)
        rd_kafka_topic_partition_list_destroy(offsets);
    for (size_t i = 0; i < cl->n_deferred; i++)
        nx_store_mark_changed(cl->store, cl->deferred[i].user, cl->deferred[i].partition);
    cl->n_deferred = 0;
    return rc;
}

int nx_changelog_flush(nx_changelog_t *cl) {
    int rc = flush(cl, (int)cl->cfg->kafka.flush_timeout_ms);
    if (rc != 0)
        nx_err("changelog: the final flush failed: the input since the last flush will be "
               "read again by the partitions' next owner");
    return rc == 0 ? 0 : -1;
}

/* ---- rebalances and the tick ----------------------------------------------------------- */

/* 1 if parts->elems[i]'s partition number came earlier in the list. */
static int seen_before(const rd_kafka_topic_partition_list_t *parts, int i) {
    for (int j = 0; j < i; j++)
        if (parts->elems[j].partition == parts->elems[i].partition)
            return 1;
    return 0;
}

void nx_changelog_assign(nx_changelog_t *cl, const rd_kafka_topic_partition_list_t *parts) {
    int added = 0;
    for (int i = 0; i < parts->cnt; i++) {
        int t = nx_offsets_topic(cl->offs, parts->elems[i].topic);
        int32_t p = parts->elems[i].partition;
        if (t < 0)
            continue;
        nx_kafka_hold(cl->kafka, t, p);
        if (seen_before(parts, i) || p >= cl->n_parts || cl->state[p] != P_NONE)
            continue;
        /* the changelog is the truth: what this process held of it is stale */
        nx_changelog_drop_partition(cl, p);
        if (!cl->kept[p].have || nx_changelog_unkeep(cl, p) < 0)
            nx_changelog_restore_begin(cl, p);
        added = 1;
    }
    /* the partitions that went elsewhere: their next owner restores them */
    for (int32_t p = 0; p < cl->n_parts; p++)
        nx_changelog_kept_free(cl, p);
    if (added)
        nx_changelog_reader_assign(cl);
}

void nx_changelog_revoke(nx_changelog_t *cl, const rd_kafka_topic_partition_list_t *parts, int lost,
                         int committed) {
    int stopped = 0;
    /* while they are still ours: their changes and offsets go out now
     * (exactly-once: nx_txn_revoke has committed them) */
    if (!lost && !cl->cfg->kafka.transactional) {
        committed = flush(cl, (int)cl->cfg->kafka.flush_timeout_ms) == 0;
        if (!committed)
            nx_warn("changelog: flush at revoke failed; the partitions' next owner reads their "
                    "input again from the last flush");
    }
    /* every change of a live partition is in the changelog up to its tail:
     * its users are that state, worth keeping */
    uint8_t *keep = calloc((size_t)cl->n_parts, 1);
    int any = 0;
    for (int i = 0; keep && !lost && committed && !cl->st.failed && i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p >= 0 && p < cl->n_parts && cl->state[p] == P_LIVE && cl->tail[p] >= 0)
            any = keep[p] = 1;
    }
    if (any)
        nx_changelog_keep(cl, keep);
    free(keep);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (seen_before(parts, i) || p < 0 || p >= cl->n_parts || cl->state[p] == P_NONE)
            continue;
        if (cl->state[p] == P_RESTORING)
            stopped = 1;
        cl->state[p] = P_NONE;
        nx_changelog_drop_partition(cl, p);
    }
    if (stopped)
        nx_changelog_reader_assign(cl);
}

void nx_changelog_tick(nx_changelog_t *cl, int64_t now_mono, int64_t budget_us) {
    if (cl->st.failed)
        return;
    if (nx_changelog_restoring(cl))
        nx_changelog_restore_slice(cl, budget_us);
    if (cl->cfg->kafka.transactional)
        return; /* txn.c commits */
    if (now_mono - cl->last_flush_mono < cl->cfg->kafka.commit_interval_ms ||
        now_mono < cl->retry_mono)
        return;
    int rc = flush(cl, DRAIN_PERIODIC_MS);
    if (rc == 1)
        cl->retry_mono = now_mono + DRAIN_RETRY_MS;
    else
        cl->last_flush_mono = now_mono;
}

void nx_changelog_stats(const nx_changelog_t *cl, nx_changelog_stats_t *stats) {
    *stats = cl->st;
    stats->restoring = nx_changelog_restoring(cl);
}

/* ---- exactly-once: the transaction is txn.c's ----------------------------------------------- */

rd_kafka_topic_partition_list_t *nx_changelog_txn_write(nx_changelog_t *cl, size_t *written,
                                                        rd_kafka_error_t **e) {
    uint64_t before = cl->st.records + cl->st.tombstones;
    rd_kafka_topic_partition_list_t *offsets = NULL;
    *e = NULL;
    if (produce_changes(cl) < 0) {
        *e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "producing the changes failed");
    } else if ((offsets = moved_offsets(cl)) || cl->n_sent) {
        for (int32_t p = 0; p < cl->n_parts && !*e; p++)
            if (cl->state[p] == P_LIVE && produce_position(cl, p) < 0)
                *e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "producing a position failed");
    }
    *written = (size_t)(cl->st.records + cl->st.tombstones - before);
    return offsets;
}

void nx_changelog_txn_end(nx_changelog_t *cl, rd_kafka_topic_partition_list_t *offsets, int ok) {
    txn_done(cl, offsets, ok);
    for (size_t i = 0; i < cl->n_deferred; i++)
        nx_store_mark_changed(cl->store, cl->deferred[i].user, cl->deferred[i].partition);
    cl->n_deferred = 0;
}
