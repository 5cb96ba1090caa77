/* changelog_restore.c: restore on assignment (changelog.h, Restore). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "changelog_int.h"
#include "log.h"

/* ---- restore -------------------------------------------------------------------------- */

void nx_changelog_drop_partition(nx_changelog_t *cl, int32_t p) {
    nx_pipeline_drop_partition(cl->pipe, p);
    for (int t = 0; t < cl->n_topics; t++) {
        nx_offsets_remove(cl->offs, t, p);
        *nx_changelog_committed_at(cl, t, p) = -1;
    }
}

/* Points the restore reader at every partition being restored: new ones
 * from the beginning, the others where they stand. */
void nx_changelog_reader_assign(nx_changelog_t *cl) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(cl->n_parts);
    for (int32_t p = 0; p < cl->n_parts; p++)
        if (cl->state[p] == P_RESTORING)
            rd_kafka_topic_partition_list_add(l, cl->topic, p)->offset =
                cl->rs[p].next >= 0 ? cl->rs[p].next : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(cl->reader, l->cnt ? l : NULL);
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        nx_err("changelog: assigning the restore reader: %s", rd_kafka_err2str(err));
}

void nx_changelog_restore_begin(nx_changelog_t *cl, int32_t p) {
    restore_t *rs = &cl->rs[p];
    memset(rs, 0, sizeof *rs);
    rs->next = -1;
    rs->started_mono = nx_now_mono_ms();
    for (int t = 0; t < NX_CONFIG_MAX_LIST; t++) {
        rs->offset[t] = -1;
        rs->clock[t] = INT64_MIN;
    }
    cl->state[p] = P_RESTORING;
    cl->tail[p] = -1; /* known again at its end */
    nx_notice("changelog: restoring partition %d", (int)p);
}

static void bad_record(nx_changelog_t *cl, const rd_kafka_message_t *m, const char *why) {
    cl->st.bad_records++;
    cl->rs[m->partition].bad++;
    NX_LOG_RL(NX_LOG_WARNING, "changelog: %s [%d] @%lld: bad record skipped: %s", cl->topic,
              (int)m->partition, (long long)m->offset, why);
}

static void apply_position(nx_changelog_t *cl, const rd_kafka_message_t *m) {
    const uint8_t *b = m->payload;
    size_t len = m->len, n = 10;
    if (!b || len < n || b[0] != POSITION_VERSION) {
        bad_record(cl, m, "position record of another version or truncated");
        return;
    }
    if (nx_changelog_get_u64(b + 2) != cl->key_fp) {
        bad_record(cl, m,
                   "position record written under another user-id hash key: every "
                   "instance of the group needs the same key file");
        return;
    }
    int64_t off[NX_CONFIG_MAX_LIST], clk[NX_CONFIG_MAX_LIST];
    for (int t = 0; t < NX_CONFIG_MAX_LIST; t++) {
        off[t] = -1;
        clk[t] = INT64_MIN;
    }
    for (int k = 0; k < b[1]; k++) {
        if (n + 2 > len || n + 2 + nx_changelog_get_u16(b + n) + 16 > len) {
            bad_record(cl, m, "position record truncated");
            return;
        }
        size_t nl = nx_changelog_get_u16(b + n);
        char name[256];
        if (nl >= sizeof name) {
            bad_record(cl, m, "position record with a topic name too long");
            return;
        }
        memcpy(name, b + n + 2, nl);
        name[nl] = '\0';
        n += 2 + nl;
        int t = nx_offsets_topic(cl->offs, name);
        if (t >= 0) {
            off[t] = (int64_t)nx_changelog_get_u64(b + n);
            clk[t] = (int64_t)nx_changelog_get_u64(b + n + 8);
        }
        n += 16;
    }
    restore_t *rs = &cl->rs[m->partition];
    memcpy(rs->offset, off, sizeof off);
    memcpy(rs->clock, clk, sizeof clk);
    rs->have_position = 1;
}

static void apply_record(nx_changelog_t *cl, const rd_kafka_message_t *m) {
    char why[256];
    restore_t *rs = &cl->rs[m->partition];
    cl->st.restore_records++;
    rs->records++;
    cl->st.restore_bytes += m->key_len + m->len;
    rs->bytes += m->key_len + m->len;
    if (m->key_len == sizeof POSITION_KEY - 1 &&
        memcmp(m->key, POSITION_KEY, sizeof POSITION_KEY - 1) == 0) {
        apply_position(cl, m);
        return;
    }
    if (m->key_len != 8) {
        bad_record(cl, m, "key is neither a user hash nor the position");
        return;
    }
    uint64_t user = 0;
    const uint8_t *k = m->key;
    for (int i = 0; i < 8; i++)
        user = user << 8 | k[i];
    if (!m->payload) {
        rs->removed += (uint64_t)nx_store_remove_user(cl->store, user);
        return;
    }
    uint64_t got;
    if (nx_store_put_user(cl->store, m->payload, m->len, &got, why, sizeof why) < 0) {
        bad_record(cl, m, why);
        return;
    }
    if (got != user) {
        nx_store_remove_user(cl->store, got);
        bad_record(cl, m, "record of another user than its key");
        return;
    }
    rs->users++;
    cl->st.restored_users++;
}

/* Partition p's changelog is read to its end: offsets, clock, input. */
static void restore_end(nx_changelog_t *cl, int32_t p) {
    restore_t *rs = &cl->rs[p];
    for (int t = 0; t < cl->n_topics; t++) {
        if (rs->have_position && rs->offset[t] >= 0) {
            nx_kafka_offset_t *o = nx_offsets_find(cl->offs, t, p, 1);
            if (o)
                o->offset = rs->offset[t];
            *nx_changelog_committed_at(cl, t, p) = rs->offset[t];
        }
        /* with no position, no state covers the partition: its clock
         * starts over (INT64_MIN), or its input, read from the committed
         * offset, would be judged against the watermark of the partitions
         * this instance read further, and dropped as too old */
        nx_pipeline_set_partition_clock(cl->pipe, t, p,
                                        rs->have_position ? rs->clock[t] : INT64_MIN);
        nx_kafka_release(cl->kafka, t, p);
    }
    cl->state[p] = P_LIVE;
    /* The state is the changelog's up to where the reader stands (0 when
     * it read nothing: any earlier tail is right too, only slower, since
     * reading a user's records again ends at the newest, the state's). */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, cl->topic, p);
    int64_t at =
        rd_kafka_position(cl->reader, l) == RD_KAFKA_RESP_ERR_NO_ERROR ? l->elems[0].offset : -1;
    cl->tail[p] = at >= 0 ? at : rs->next >= 0 ? rs->next : 0;
    rd_kafka_topic_partition_list_destroy(l);
    double s = (double)(nx_now_mono_ms() - rs->started_mono) / 1000;
    cl->st.restore_seconds += s;
    char kept[80] = "";
    if (rs->kept)
        snprintf(kept, sizeof kept, "; on %llu user(s) kept at its revoke",
                 (unsigned long long)rs->kept);
    nx_notice("changelog: partition %d restored in %.2f s: %llu user(s), %llu removed, %llu "
              "record(s) (%.1f MB), %llu bad; input resumes %s%s",
              (int)p, s, (unsigned long long)rs->users, (unsigned long long)rs->removed,
              (unsigned long long)rs->records, (double)rs->bytes / 1e6, (unsigned long long)rs->bad,
              rs->have_position ? "where the restored state ends"
                                : "at the committed offset (no position record)",
              kept);
}

/* 1 if the group's committed offsets of partition p are those of the
 * position read so far. A read_committed reader ends at the partition's
 * last stable offset: while a transaction of a crashed instance is still
 * open there, later committed records (its successor's) are not read yet,
 * and the group's offsets, committed with them, are ahead of the position.
 * Until the broker aborts that transaction the two disagree and the
 * restore reads on. A position of -1 (none) agrees with no offset or 0. */
static int position_agrees(nx_changelog_t *cl, int32_t p) {
    const restore_t *rs = &cl->rs[p];
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(cl->n_topics);
    for (int t = 0; t < cl->n_topics; t++)
        rd_kafka_topic_partition_list_add(l, cl->cfg->kafka.input_topics.v[t], p);
    int ok = nx_kafka_committed(cl->kafka, l, 2000) == 0;
    for (int t = 0; ok && t < cl->n_topics; t++) {
        int64_t want = rs->have_position ? rs->offset[t] : -1, got = l->elems[t].offset;
        ok = want >= 0 ? got == want : got <= 0;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return ok;
}

/* Reads restore records until the budget is spent or nothing is waiting;
 * ends the restores whose partitions were read to the end and agree with
 * the group's committed offsets. */
void nx_changelog_restore_slice(nx_changelog_t *cl, int64_t budget_us) {
    int64_t deadline = nx_now_mono_ms() * 1000 + budget_us;
    int ended = 0;
    for (int k = 0;; k++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cl->reader, 0);
        if (!m)
            break;
        int32_t p = m->partition;
        if (p < 0 || p >= cl->n_parts || cl->state[p] != P_RESTORING) {
            rd_kafka_message_destroy(m); /* of an earlier assignment */
        } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            cl->rs[p].at_end = 1;
        } else if (m->err) {
            NX_LOG_RL(NX_LOG_WARNING, "changelog: restore reader: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        } else {
            cl->rs[p].next = m->offset + 1;
            apply_record(cl, m);
            rd_kafka_message_destroy(m);
        }
        if ((k & 255) == 255 && nx_now_mono_ms() * 1000 >= deadline)
            break;
    }
    int64_t now = nx_now_mono_ms();
    for (int32_t p = 0; p < cl->n_parts; p++) {
        restore_t *rs = &cl->rs[p];
        if (cl->state[p] != P_RESTORING)
            continue;
        if (rs->retry_mono && now >= rs->retry_mono) {
            rs->retry_mono = 0;
            ended = 1; /* reassigned below: the reader reads on and ends again */
        }
        if (!rs->at_end)
            continue;
        rs->at_end = 0;
        if (position_agrees(cl, p)) {
            restore_end(cl, p);
        } else if (now - rs->started_mono >= RESTORE_AGREE_MS) {
            nx_err("changelog: partition %d: the restored position still disagrees with the "
                   "group's committed offsets after %d s (a state gap: input resumes at the "
                   "committed offset)",
                   (int)p, RESTORE_AGREE_MS / 1000);
            restore_end(cl, p);
        } else {
            NX_LOG_RL(NX_LOG_INFO,
                      "changelog: partition %d: position behind the committed "
                      "offsets (an open transaction?); reading on",
                      (int)p);
            rs->retry_mono = now + RESTORE_RETRY_MS;
            continue;
        }
        ended = 1;
    }
    if (ended)
        nx_changelog_reader_assign(cl);
}

/* The input offset partition (topic t, p) goes back to after an aborted
 * transaction: the last one this process committed; else the group's
 * committed offset (where the partition started: no transaction of ours
 * moved it); else its beginning (auto.offset.reset is earliest). */
static int64_t rewind_offset(nx_changelog_t *cl, int t, int32_t p) {
    int64_t off = *nx_changelog_committed_at(cl, t, p);
    if (off >= 0)
        return off;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, cl->cfg->kafka.input_topics.v[t], p);
    if (nx_kafka_committed(cl->kafka, l, 10000) == 0 && l->elems[0].offset >= 0)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
}

void nx_changelog_rewind(nx_changelog_t *cl) {
    int any = 0;
    for (int32_t p = 0; p < cl->n_parts; p++) {
        if (cl->state[p] != P_LIVE)
            continue;
        /* the offsets first: dropping the partition forgets them */
        for (int t = 0; t < cl->n_topics; t++) {
            int64_t off = rewind_offset(cl, t, p);
            if (nx_kafka_hold(cl->kafka, t, p) == 0)
                nx_kafka_seek_back(cl->kafka, t, p, off);
        }
        nx_changelog_drop_partition(cl, p);
        nx_changelog_restore_begin(cl, p);
        any = 1;
    }
    if (any)
        nx_changelog_reader_assign(cl);
}

/* ---- partitions kept over a rebalance ------------------------------------------------- */

typedef struct kuser {
    int64_t clock;
    uint64_t user;
} kuser_t;

typedef struct kcollect {
    kuser_t **v; /* (n_parts) users of each partition to keep, NULL for the others */
    size_t *n, *cap;
    int32_t n_parts;
    int oom;
} kcollect_t;

static void collect(void *opaque, uint64_t user, int32_t partition, int64_t clock_ms) {
    kcollect_t *c = opaque;
    if (partition < 0 || partition >= c->n_parts || !c->cap[partition] || c->oom)
        return;
    if (c->n[partition] == c->cap[partition]) {
        size_t cap = 2 * c->cap[partition];
        kuser_t *v = realloc(c->v[partition], cap * sizeof *v);
        if (!v) {
            c->oom = 1;
            return;
        }
        c->v[partition] = v;
        c->cap[partition] = cap;
    }
    c->v[partition][c->n[partition]++] = (kuser_t){clock_ms, user};
}

/* Oldest clock first, as the store's expiry order; ties by hash. */
static int by_clock(const void *a, const void *b) {
    const kuser_t *x = a, *y = b;
    if (x->clock != y->clock)
        return x->clock < y->clock ? -1 : 1;
    return x->user < y->user ? -1 : x->user > y->user;
}

static int kept_append(kept_t *k, const void *bytes, size_t n) {
    if (k->len + n > k->cap) {
        size_t cap = k->cap ? k->cap : 65536;
        while (cap < k->len + n)
            cap *= 2;
        uint8_t *buf = realloc(k->buf, cap);
        if (!buf)
            return -1;
        k->buf = buf;
        k->cap = cap;
    }
    memcpy(k->buf + k->len, bytes, n);
    k->len += n;
    return 0;
}

void nx_changelog_kept_free(nx_changelog_t *cl, int32_t p) {
    kept_t *k = &cl->kept[p];
    free(k->buf);
    memset(k, 0, sizeof *k);
}

/* Serialises partition p's users (c->v[p], sorted here) into cl->kept[p]. */
static int keep_one(nx_changelog_t *cl, int32_t p, kuser_t *v, size_t n) {
    kept_t *k = &cl->kept[p];
    qsort(v, n, sizeof *v, by_clock);
    for (size_t i = 0; i < n; i++) {
        long len = nx_store_user_record(cl->store, v[i].user, cl->rec, cl->rec_size);
        if (len < 0)
            continue;
        uint32_t m = (uint32_t)len;
        if (kept_append(k, &v[i].user, sizeof v[i].user) | kept_append(k, &m, sizeof m) |
            kept_append(k, cl->rec, m))
            return -1;
        k->users++;
    }
    k->tail = cl->tail[p];
    for (int t = 0; t < NX_CONFIG_MAX_LIST; t++) {
        const nx_kafka_offset_t *o = t < cl->n_topics ? nx_offsets_find(cl->offs, t, p, 0) : NULL;
        k->offset[t] = o ? o->offset : -1;
        k->clock[t] = t < cl->n_topics ? nx_pipeline_partition_clock(cl->pipe, t, p) : INT64_MIN;
    }
    k->have = 1;
    nx_info("changelog: partition %d: %llu user(s) kept until the next assignment (%.1f MB)",
            (int)p, (unsigned long long)k->users, (double)k->len / 1e6);
    return 0;
}

void nx_changelog_keep(nx_changelog_t *cl, const uint8_t *which) {
    kcollect_t c = {.n_parts = cl->n_parts};
    c.v = calloc((size_t)cl->n_parts, sizeof *c.v);
    c.n = calloc((size_t)cl->n_parts, sizeof *c.n);
    c.cap = calloc((size_t)cl->n_parts, sizeof *c.cap);
    int any = 0;
    c.oom = !c.v || !c.n || !c.cap;
    for (int32_t p = 0; !c.oom && p < cl->n_parts; p++) {
        nx_changelog_kept_free(cl, p);
        if (!which[p])
            continue;
        c.cap[p] = 1024;
        c.oom = !(c.v[p] = malloc(c.cap[p] * sizeof *c.v[p]));
        any = 1;
    }
    if (any && !c.oom)
        nx_store_foreach(cl->store, collect, &c); /* one pass over the store for all */
    for (int32_t p = 0; any && p < cl->n_parts; p++) {
        if (!which[p])
            continue;
        if (c.oom || keep_one(cl, p, c.v[p], c.n[p]) < 0) {
            nx_changelog_kept_free(cl, p);
            nx_warn("changelog: partition %d: out of memory keeping its users; if it comes back "
                    "it is restored whole",
                    (int)p);
        }
        free(c.v[p]);
    }
    free(c.v);
    free(c.n);
    free(c.cap);
}

int nx_changelog_unkeep(nx_changelog_t *cl, int32_t p) {
    kept_t *k = &cl->kept[p];
    char why[256] = "truncated";
    size_t at = 0;
    uint64_t put = 0;
    int ok = 1;
    while (ok && at < k->len) {
        uint64_t user, got;
        uint32_t n;
        ok = at + sizeof user + sizeof n <= k->len;
        if (!ok)
            break;
        memcpy(&user, k->buf + at, sizeof user);
        memcpy(&n, k->buf + at + sizeof user, sizeof n);
        at += sizeof user + sizeof n;
        ok = at + n <= k->len &&
             nx_store_put_user(cl->store, k->buf + at, n, &got, why, sizeof why) == 0 &&
             got == user;
        at += n;
        put += ok;
    }
    if (!ok) {
        nx_err("changelog: partition %d: its kept users could not be put back (%s); restoring it "
               "whole",
               (int)p, why);
        nx_changelog_drop_partition(cl, p);
        nx_changelog_kept_free(cl, p);
        return -1;
    }
    nx_changelog_restore_begin(cl, p);
    restore_t *rs = &cl->rs[p];
    rs->next = k->tail;
    rs->have_position = 1;
    memcpy(rs->offset, k->offset, sizeof rs->offset);
    memcpy(rs->clock, k->clock, sizeof rs->clock);
    rs->kept = put;
    cl->st.restores_kept++;
    nx_notice("changelog: partition %d: %llu user(s) kept since its revoke put back; its "
              "changelog is read from offset %lld, after them",
              (int)p, (unsigned long long)put, (long long)k->tail);
    nx_changelog_kept_free(cl, p);
    return 0;
}

/* Partitions being restored. */
int nx_changelog_restoring(const nx_changelog_t *cl) {
    int n = 0;
    for (int32_t p = 0; p < cl->n_parts; p++)
        n += cl->state[p] == P_RESTORING;
    return n;
}
