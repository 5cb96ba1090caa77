/* txn.c: exactly-once spans, one Kafka transaction each (txn.h). */
#include "txn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Blocking calls of the transactional API: long enough for a broker to
 * answer under load, short enough that a stuck one is reported (as the
 * changelog's). */
#define TXN_TIMEOUT_MS 30000
/* A commit that times out or fails with a retriable error is tried again
 * this many times before the transaction is aborted. */
#define COMMIT_ATTEMPTS 3
/* The test-only poison record: over the broker's default max.message.bytes
 * (1048588), under the producer's limit the test sets. */
#define POISON_BYTES (2u << 20)

/* Upper bounds of the duration buckets, ms: a transaction lives about
 * kafka.transaction_interval_ms (100 ms by default) plus its commit. */
static const double dur_le_ms[NX_TXN_BUCKETS] = {10,  25,   50,   100,  150,   200,   300,
                                                 500, 1000, 2000, 5000, 10000, 30000, INFINITY};

struct nx_txn {
    const nx_config_t *cfg;
    nx_kafka_t *kafka;
    nx_changelog_t *cl;
    rd_kafka_t *producer; /* kafka's, borrowed */
    nx_txn_hooks_t hooks;
    char id[512]; /* transactional.id, for messages */
    int open;
    int64_t opened_mono_us;
    int64_t *in_ts; /* (cap_ts) input timestamps of the open transaction's predictions */
    size_t n_ts, cap_ts;
    uint64_t events;     /* predictions in the open transaction */
    long long poison_at; /* NX_DEBUG_TXN_POISON; 0 = off */
    uint64_t n_nonempty; /* non-empty transactions so far (poison counting) */
    int revoking;        /* inside nx_txn_revoke: an abort needs no rewind */
    nx_txn_stats_t st;
};

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double nx_txn_bucket_le(int i) {
    return dur_le_ms[i] / 1000;
}

void nx_txn_instance(const nx_config_t *cfg, char *buf, size_t size) {
    if (cfg->state.instance_id[0]) {
        snprintf(buf, size, "%s", cfg->state.instance_id);
        return;
    }
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0])
        snprintf(host, sizeof host, "nextactd");
    snprintf(buf, size, "%s", host);
}

void nx_txn_id(const nx_config_t *cfg, char *buf, size_t size) {
    char inst[256];
    nx_txn_instance(cfg, inst, sizeof inst);
    snprintf(buf, size, "%s-state-%s", cfg->kafka.group_id, inst);
}

/* ---- errors ------------------------------------------------------------------------- */

/* Fenced, or the producer failed for good: nothing this process writes can
 * commit any more. Takes e. */
static void fail(nx_txn_t *txn, const char *what, rd_kafka_error_t *e) {
    nx_err("exactly-once: %s: %s: this process can no longer commit transactions (fenced: "
           "another process runs with transactional.id %s, i.e. the same state.instance_id; "
           "or the producer failed for good); stopping with exit status %d",
           what, rd_kafka_error_string(e), txn->id, NX_EXIT_FENCED);
    rd_kafka_error_destroy(e);
    txn->st.failed = 1;
    txn->open = 0;
}

static void span_reset(nx_txn_t *txn) {
    txn->n_ts = 0;
    txn->events = 0;
}

static int begin(nx_txn_t *txn) {
    rd_kafka_error_t *e = rd_kafka_begin_transaction(txn->producer);
    if (e) {
        fail(txn, "begin_transaction", e);
        return -1;
    }
    txn->open = 1;
    txn->opened_mono_us = mono_us();
    span_reset(txn);
    return 0;
}

/* A non-fatal error: the transaction is aborted and, with rewind, the
 * state rewound to what the last committed one covers. Takes e. 1, or -1
 * if the abort failed too (then nothing can be committed any more). */
static int abort_span(nx_txn_t *txn, const char *what, rd_kafka_error_t *e,
                      rd_kafka_topic_partition_list_t *offsets, int final, int rewind) {
    NX_LOG_RL(NX_LOG_WARNING,
              "exactly-once: %s: %s; transaction aborted: the state goes back to the last "
              "committed transaction and its %llu prediction(s) are made again",
              what, rd_kafka_error_string(e), (unsigned long long)txn->events);
    rd_kafka_error_destroy(e);
    rd_kafka_error_t *ae = rd_kafka_abort_transaction(txn->producer, TXN_TIMEOUT_MS);
    nx_changelog_txn_end(txn->cl, offsets, 0);
    if (ae) {
        fail(txn, "abort_transaction", ae);
        return -1;
    }
    txn->open = 0;
    txn->st.aborted++;
    /* what was in flight belonged to the aborted transaction */
    nx_kafka_forget_inflight(txn->kafka);
    if (rewind)
        nx_changelog_rewind(txn->cl);
    span_reset(txn);
    if (!final && begin(txn) < 0)
        return -1;
    return 1;
}

/* ---- the test-only poison record ------------------------------------------------------ */

static void poison(nx_txn_t *txn) {
    char *big = calloc(1, POISON_BYTES);
    if (!big)
        return;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        txn->producer, RD_KAFKA_V_TOPIC(txn->cfg->kafka.output_topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY("nextactd.test-poison", 20), RD_KAFKA_V_VALUE(big, POISON_BYTES),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    free(big);
    nx_warn("NX_DEBUG_TXN_POISON: a record the broker refuses is in transaction %llu (test "
            "only)%s%s",
            (unsigned long long)txn->n_nonempty, err ? ": " : "", err ? rd_kafka_err2str(err) : "");
}

/* ---- set-up ---------------------------------------------------------------------------- */

nx_txn_t *nx_txn_new(const nx_config_t *cfg, nx_kafka_t *kafka, nx_changelog_t *cl,
                     const nx_txn_hooks_t *hooks, char *errstr, size_t errstr_size) {
    nx_txn_t *txn = calloc(1, sizeof *txn);
    if (!txn) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    txn->cfg = cfg;
    txn->kafka = kafka;
    txn->cl = cl;
    txn->producer = nx_kafka_producer(kafka);
    if (hooks)
        txn->hooks = *hooks;
    nx_txn_id(cfg, txn->id, sizeof txn->id);
    const char *env = getenv("NX_DEBUG_TXN_POISON");
    txn->poison_at = env ? atoll(env) : 0;
    if (begin(txn) < 0) {
        nx_errf(errstr, errstr_size, "exactly-once: cannot open a transaction (%s)", txn->id);
        nx_txn_destroy(txn);
        return NULL;
    }
    nx_notice("exactly-once: transactional.id %s, a transaction every %lld ms or %lld "
              "predictions",
              txn->id, (long long)cfg->kafka.transaction_interval_ms,
              (long long)cfg->kafka.transaction_max_events);
    return txn;
}

void nx_txn_destroy(nx_txn_t *txn) {
    if (!txn)
        return;
    free(txn->in_ts);
    free(txn);
}

/* ---- the span ------------------------------------------------------------------------- */

void nx_txn_note(nx_txn_t *txn, int64_t in_ts_ms) {
    txn->events++;
    if (txn->n_ts == txn->cap_ts) {
        size_t cap = txn->cap_ts ? txn->cap_ts * 2 : 4096;
        int64_t *p = realloc(txn->in_ts, cap * sizeof *p);
        if (!p)
            return; /* its latency goes unmeasured; nothing else depends on it */
        txn->in_ts = p;
        txn->cap_ts = cap;
    }
    txn->in_ts[txn->n_ts++] = in_ts_ms;
}

int nx_txn_wait_ms(const nx_txn_t *txn, int64_t now_mono, int wait_ms) {
    if (!txn->open)
        return wait_ms;
    int64_t due = txn->opened_mono_us / 1000 + txn->cfg->kafka.transaction_interval_ms - now_mono;
    if (due < 0)
        due = 0;
    return due < wait_ms ? (int)due : wait_ms;
}

void nx_txn_tick(nx_txn_t *txn, int64_t now_mono) {
    if (txn->st.failed)
        return;
    if (!txn->open) {
        begin(txn);
        return;
    }
    if (now_mono - txn->opened_mono_us / 1000 < txn->cfg->kafka.transaction_interval_ms &&
        txn->events < (uint64_t)txn->cfg->kafka.transaction_max_events)
        return;
    nx_txn_commit(txn, 0);
}

int nx_txn_commit(nx_txn_t *txn, int final) {
    if (txn->st.failed)
        return -1;
    if (!txn->open && begin(txn) < 0)
        return -1;
    int64_t t0 = mono_us();
    size_t written = 0;
    rd_kafka_error_t *e = NULL;
    const char *what = "writing the changelog";
    rd_kafka_topic_partition_list_t *offsets = nx_changelog_txn_write(txn->cl, &written, &e);
    int empty = !e && !offsets && written == 0 && txn->events == 0;
    if (!empty)
        txn->n_nonempty++;
    if (!e && !empty && txn->poison_at > 0 && txn->n_nonempty == (uint64_t)txn->poison_at)
        poison(txn);
    if (!e && offsets) {
        what = "send_offsets_to_transaction";
        rd_kafka_consumer_group_metadata_t *gm =
            rd_kafka_consumer_group_metadata(nx_kafka_consumer(txn->kafka));
        e = rd_kafka_send_offsets_to_transaction(txn->producer, offsets, gm, TXN_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(gm);
    }
    if (!e) {
        what = "commit_transaction";
        /* An empty transaction commits at no cost: nothing was sent. */
        for (int attempt = 1;; attempt++) {
            e = rd_kafka_commit_transaction(txn->producer, TXN_TIMEOUT_MS);
            if (!e || !rd_kafka_error_is_retriable(e) || attempt == COMMIT_ATTEMPTS)
                break;
            rd_kafka_error_destroy(e);
        }
    }
    int64_t t1 = mono_us();
    txn->st.commit_s += (double)(t1 - t0) / 1e6;
    int rc;
    if (!e) {
        nx_changelog_txn_end(txn->cl, offsets, 1);
        txn->open = 0;
        if (!empty) {
            txn->st.committed++;
            double ms = (double)(t1 - txn->opened_mono_us) / 1000;
            int i = 0;
            while (ms > dur_le_ms[i])
                i++;
            txn->st.dur_count[i]++;
            txn->st.dur_sum_s += ms / 1000;
            if (txn->hooks.committed && txn->n_ts)
                txn->hooks.committed(txn->hooks.opaque, txn->in_ts, txn->n_ts, nx_now_wall_ms());
        }
        span_reset(txn);
        rc = final || begin(txn) == 0 ? 0 : -1;
    } else if (rd_kafka_error_is_fatal(e)) {
        nx_changelog_txn_end(txn->cl, offsets, 0);
        fail(txn, what, e);
        rc = -1;
    } else {
        rc = abort_span(txn, what, e, offsets, final, !txn->revoking);
    }
    if (offsets)
        rd_kafka_topic_partition_list_destroy(offsets);
    return rc;
}

/* Revokes are eager (kafka.h: the assignor), so every partition goes: an
 * abort here needs no rewind, the changelog drops them all and their next
 * owner restores them and reads on from the last committed offsets. */
int nx_txn_revoke(nx_txn_t *txn, int lost) {
    if (txn->st.failed)
        return -1;
    if (!lost) {
        txn->revoking = 1;
        int rc = nx_txn_commit(txn, 0);
        txn->revoking = 0;
        return rc;
    }
    /* this member's generation is over: an offset commit would be refused */
    if (txn->open)
        abort_span(txn, "partitions lost",
                   rd_kafka_error_new(RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST,
                                      "the group took the partitions away"),
                   NULL, 0, 0);
    return 1;
}

int nx_txn_failed(const nx_txn_t *txn) {
    return txn && txn->st.failed;
}

void nx_txn_stats(const nx_txn_t *txn, nx_txn_stats_t *stats) {
    *stats = txn->st;
}
