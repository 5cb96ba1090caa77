/*
 * gen_cmd.c: `nextactd gen`, the command line over the generator (gen.h).
 *
 *   nextactd gen --events N --users U --seed S [--horizon SEC]
 *                [--truth FILE.csv] [--bad-rate F] [--report] [-c CONF]
 *                (--output FILE.avro | --topic T [--rate R] [--brokers B] | --null)
 *
 * --output writes an Avro Object Container File (deflate) with the writer
 * schema of the config's input.writer_schema, or --schema, or
 * conf/schemas/event.avsc; fields are found by name. --topic produces each
 * event to Kafka as raw Avro binary keyed by user id, at most R events/s
 * (token bucket), counts delivery reports and flushes at the end; --bad-rate
 * F makes that share of the messages malformed, deterministically from the
 * seed (extra messages: --events counts the good ones). --null generates and
 * discards (speed, truth, report). --truth writes one CSV row per good event
 * with the true next-action probabilities; --report prints the oracle's log
 * loss and AUCs against the stream's own labels.
 *
 * nx_gen_main parses the options, opens the run (open_run), writes each
 * event (write_event), finishes the outputs and reports; everything a run
 * holds is freed by one cleanup path (gen_run_free). The Avro and Kafka
 * objects are created once, the per-event path reuses them.
 */
#include "gen.h"

#include "config.h"
#include "ocf_writer.h"

#include <avro.h>
#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2

/* ---- Avro: field mapping by name ----------------------------------------- */

enum { F_USER, F_TS, F_TYPE, F_ITEM, F_CATEGORY, F_PRICE, F_QUANTITY, F_SESSION, F_COUNT };
enum { K_STRING, K_LONG, K_INT, K_DOUBLE };

static const char *const field_default_name[F_COUNT] = {
    "user_id", "ts", "event_type", "item_id", "category", "price", "quantity", "session_id"};
static const int field_kind[F_COUNT] = {K_STRING, K_LONG,   K_STRING, K_STRING,
                                        K_STRING, K_DOUBLE, K_INT,    K_STRING};
/* user id and timestamp must exist; the others may be absent (the type too:
 * a config may give each topic a fixed type). A name "" means "not used". */
static const int field_required[F_COUNT] = {1, 1, 0, 0, 0, 0, 0, 0};

typedef struct field_map {
    int index;        /* in the record, -1 = not in the schema */
    int union_branch; /* branch holding the value, -1 = not a union */
    int null_branch;  /* -1 = no null branch */
} field_map_t;

typedef struct avro_out {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t rec;
    int have_rec;
    field_map_t map[F_COUNT];
    char *json;            /* the writer schema's text, for the container header */
    nx_ocf_writer_t *file; /* --output */
    avro_writer_t mem;     /* raw binary into buf, for --topic and --output */
    char buf[4096];        /* ids are short: a record is < 200 bytes */
} avro_out_t;

static int kind_matches(avro_schema_t s, int kind) {
    switch (kind) {
    case K_STRING:
        return is_avro_string(s);
    case K_LONG:
        return is_avro_int64(s);
    case K_INT:
        return is_avro_int32(s) || is_avro_int64(s);
    default:
        return is_avro_double(s) || is_avro_float(s);
    }
}

static int read_file(const char *path, char **out, size_t *len, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* a schema file; 1 MiB is far beyond any real one */
    buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (!buf || ferror(f)) {
        snprintf(errstr, errstr_size, "%s: read failed", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static void avro_out_destroy(avro_out_t *ao) {
    if (!ao)
        return;
    if (ao->file) {
        char err[256];
        nx_ocf_writer_close(ao->file, err, sizeof err);
    }
    free(ao->json);
    if (ao->mem)
        avro_writer_free(ao->mem);
    if (ao->have_rec)
        avro_value_decref(&ao->rec);
    if (ao->iface)
        avro_value_iface_decref(ao->iface);
    if (ao->schema)
        avro_schema_decref(ao->schema);
    free(ao);
}

static avro_out_t *avro_out_new(const char *schema_path, const char *const names[F_COUNT],
                                char *errstr, size_t errstr_size) {
    avro_out_t *ao = calloc(1, sizeof *ao);
    char *json = NULL;
    size_t json_len;
    if (!ao) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (read_file(schema_path, &json, &json_len, errstr, errstr_size) < 0)
        goto err;
    if (avro_schema_from_json_length(json, json_len, &ao->schema) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", schema_path, avro_strerror());
        goto err;
    }
    if (!is_avro_record(ao->schema)) {
        snprintf(errstr, errstr_size, "%s: the writer schema must be a record", schema_path);
        goto err;
    }
    for (int f = 0; f < F_COUNT; f++) {
        field_map_t *m = &ao->map[f];
        m->index = names[f][0] ? avro_schema_record_field_get_index(ao->schema, names[f]) : -1;
        m->union_branch = m->null_branch = -1;
        if (m->index < 0) {
            if (field_required[f]) {
                snprintf(errstr, errstr_size, "%s: no field \"%s\"", schema_path, names[f]);
                goto err;
            }
            continue;
        }
        avro_schema_t fs = avro_schema_record_field_get_by_index(ao->schema, m->index);
        int ok = 0;
        if (is_avro_union(fs)) {
            for (size_t b = 0; b < avro_schema_union_size(fs); b++) {
                avro_schema_t bs = avro_schema_union_branch(fs, b);
                if (is_avro_null(bs) && m->null_branch < 0)
                    m->null_branch = (int)b;
                else if (kind_matches(bs, field_kind[f]) && m->union_branch < 0)
                    m->union_branch = (int)b;
            }
            ok = m->union_branch >= 0;
        } else {
            ok = kind_matches(fs, field_kind[f]);
        }
        if (!ok) {
            snprintf(errstr, errstr_size, "%s: field \"%s\" has a type gen cannot write (%s)",
                     schema_path, names[f],
                     field_kind[f] == K_STRING   ? "string"
                     : field_kind[f] == K_DOUBLE ? "double"
                                                 : "int or long");
            goto err;
        }
    }
    /* every other field must be nullable or gen cannot fill it */
    size_t n_fields = avro_schema_record_size(ao->schema);
    for (size_t i = 0; i < n_fields; i++) {
        int ours = 0;
        for (int f = 0; f < F_COUNT; f++)
            ours |= ao->map[f].index == (int)i;
        avro_schema_t fs = avro_schema_record_field_get_by_index(ao->schema, (int)i);
        if (!ours && !(is_avro_union(fs) && is_avro_null(avro_schema_union_branch(fs, 0)))) {
            snprintf(errstr, errstr_size, "%s: field \"%s\" is neither known to gen nor nullable",
                     schema_path, avro_schema_record_field_name(ao->schema, (int)i));
            goto err;
        }
    }
    ao->iface = avro_generic_class_from_schema(ao->schema);
    if (!ao->iface || avro_generic_value_new(ao->iface, &ao->rec) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", schema_path, avro_strerror());
        goto err;
    }
    ao->have_rec = 1;
    /* Unknown nullable fields: null once; the value is reused. */
    for (size_t i = 0; i < n_fields; i++) {
        int ours = 0;
        for (int f = 0; f < F_COUNT; f++)
            ours |= ao->map[f].index == (int)i;
        if (ours)
            continue;
        avro_value_t fv, branch;
        if (avro_value_get_by_index(&ao->rec, i, &fv, NULL) != 0 ||
            avro_value_set_branch(&fv, 0, &branch) != 0 || avro_value_set_null(&branch) != 0) {
            snprintf(errstr, errstr_size, "%s: %s", schema_path, avro_strerror());
            goto err;
        }
    }
    ao->json = json;
    return ao;
err:
    free(json);
    avro_out_destroy(ao);
    return NULL;
}

/* Sets field f to the string s / the number x; absent (NULL or NaN or
 * quantity 0) sets the null branch when there is one. */
static int avro_set(avro_out_t *ao, int f, const char *s, double x, int64_t n, int absent) {
    const field_map_t *m = &ao->map[f];
    avro_value_t fv, v;
    if (m->index < 0)
        return 0;
    if (avro_value_get_by_index(&ao->rec, (size_t)m->index, &fv, NULL) != 0)
        return -1;
    if (m->union_branch >= 0) {
        if (absent && m->null_branch >= 0) {
            if (avro_value_set_branch(&fv, m->null_branch, &v) != 0)
                return -1;
            return avro_value_set_null(&v);
        }
        if (avro_value_set_branch(&fv, m->union_branch, &v) != 0)
            return -1;
    } else {
        v = fv;
    }
    switch (avro_value_get_type(&v)) {
    case AVRO_STRING:
        return avro_value_set_string(&v, s);
    case AVRO_INT64:
        return avro_value_set_long(&v, n);
    case AVRO_INT32:
        return avro_value_set_int(&v, (int32_t)n);
    case AVRO_DOUBLE:
        return avro_value_set_double(&v, x);
    case AVRO_FLOAT:
        return avro_value_set_float(&v, (float)x);
    default:
        return -1;
    }
}

static int avro_fill(avro_out_t *ao, const nx_gen_event_t *ev) {
    if (avro_set(ao, F_USER, ev->user_id, 0, 0, 0) || avro_set(ao, F_TS, NULL, 0, ev->ts_ms, 0) ||
        avro_set(ao, F_TYPE, ev->type_name, 0, 0, 0) ||
        avro_set(ao, F_ITEM, ev->item_id, 0, 0, 0) ||
        avro_set(ao, F_CATEGORY, ev->category, 0, 0, 0) ||
        avro_set(ao, F_PRICE, NULL, ev->price, 0, 0) ||
        avro_set(ao, F_QUANTITY, NULL, 0, ev->quantity, ev->quantity == 0) ||
        avro_set(ao, F_SESSION, ev->session_id, 0, 0, 0))
        return -1;
    return 0;
}

/* Raw Avro binary of the filled record into ao->buf; returns its length or
 * -1. */
static int64_t avro_encode(avro_out_t *ao) {
    avro_writer_reset(ao->mem);
    if (avro_value_write(ao->mem, &ao->rec) != 0)
        return -1;
    return avro_writer_tell(ao->mem);
}

/* ---- malformed payloads (--bad-rate) ------------------------------------- */

/* The classes the ingest side must reject, one reason each. */
enum {
    BAD_TRUNCATED,
    BAD_GARBAGE,
    BAD_HUGE_LENGTH,
    BAD_NEGATIVE_LENGTH,
    BAD_UNION_INDEX,
    BAD_TIMESTAMP,
    BAD_EMPTY_USER,
    BAD_PRICE,
    BAD_TRAILING,
    BAD_KINDS
};
static const char *const bad_name[BAD_KINDS] = {
    "truncated",     "garbage",       "huge_length",  "negative_length", "bad_union_index",
    "bad_timestamp", "empty_user_id", "absurd_price", "trailing_bytes"};

static size_t put_varint(uint8_t *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    size_t n = 0;
    while (z >= 0x80) {
        p[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (uint8_t)z;
    return n;
}

static int get_varint(const uint8_t *p, size_t len, size_t *pos, int64_t *v) {
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -1;
        uint8_t b = p[(*pos)++];
        z |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 0;
        }
    }
    return -1;
}

/* Skips one value of a primitive or union-of-primitives schema. */
static int skip_value(avro_schema_t s, const uint8_t *p, size_t len, size_t *pos) {
    int64_t v;
    if (is_avro_union(s)) {
        if (get_varint(p, len, pos, &v) < 0 || v < 0 || (size_t)v >= avro_schema_union_size(s))
            return -1;
        return skip_value(avro_schema_union_branch(s, (int)v), p, len, pos);
    }
    if (is_avro_string(s) || is_avro_bytes(s)) {
        if (get_varint(p, len, pos, &v) < 0 || v < 0 || (uint64_t)v > len - *pos)
            return -1;
        *pos += (size_t)v;
        return 0;
    }
    if (is_avro_int32(s) || is_avro_int64(s))
        return get_varint(p, len, pos, &v);
    size_t w = is_avro_double(s) ? 8 : is_avro_float(s) ? 4 : is_avro_boolean(s) ? 1 : 0;
    if (!is_avro_null(s) && w == 0)
        return -1; /* records, arrays, ...: not walked */
    if (w > len - *pos)
        return -1;
    *pos += w;
    return 0;
}

/* Start offsets of the top-level fields of the record in p (n + 1 entries,
 * the last = end); -1 if the schema has more than 32 fields or one gen
 * cannot walk. */
#define MAX_WALK 32
static int walk_fields(avro_schema_t schema, const uint8_t *p, size_t len, size_t *off) {
    size_t n = avro_schema_record_size(schema), pos = 0;
    if (n > MAX_WALK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        off[i] = pos;
        if (skip_value(avro_schema_record_field_get_by_index(schema, (int)i), p, len, &pos) < 0)
            return -1;
    }
    off[n] = pos;
    return 0;
}

/* Replaces bytes [a, b) of the good encoding with rep[0..rep_len) into out. */
static size_t splice(uint8_t *out, const uint8_t *good, size_t len, size_t a, size_t b,
                     const uint8_t *rep, size_t rep_len) {
    memcpy(out, good, a);
    memcpy(out + a, rep, rep_len);
    memcpy(out + a + rep_len, good + b, len - b);
    return a + rep_len + (len - b);
}

/* A malformed payload of class `kind` made from the good encoding; returns
 * its length (may be 0). out holds len + 64 bytes. */
static size_t make_bad(int kind, const avro_out_t *ao, const uint8_t *good, size_t len,
                       nx_gen_rng_t *rng, uint8_t *out) {
    size_t off[MAX_WALK + 1];
    uint8_t rep[32];
    int walked = walk_fields(ao->schema, good, len, off) == 0;
    const field_map_t *m = ao->map;
    size_t pos, n;
    int64_t v;
    switch (walked ? kind : BAD_GARBAGE) {
    case BAD_TRUNCATED:
        n = (size_t)(nx_gen_rng_next(rng) % len); /* 0 .. len - 1 bytes kept */
        memcpy(out, good, n);
        return n;
    case BAD_HUGE_LENGTH:
    case BAD_NEGATIVE_LENGTH:
    case BAD_EMPTY_USER:
        /* the user id string: replace its length (and, if empty, bytes) */
        pos = off[m[F_USER].index];
        if (m[F_USER].union_branch >= 0 && get_varint(good, len, &pos, &v) < 0)
            break;
        {
            size_t a = pos;
            if (get_varint(good, len, &pos, &v) < 0)
                break;
            /* 2^31 - 1: a length no 5-byte-per-varint message can hold */
            int64_t bad_len = kind == BAD_HUGE_LENGTH       ? 2147483647
                              : kind == BAD_NEGATIVE_LENGTH ? -3
                                                            : 0;
            n = put_varint(rep, bad_len);
            return splice(out, good, len, a, kind == BAD_EMPTY_USER ? pos + (size_t)v : pos, rep,
                          n);
        }
    case BAD_UNION_INDEX:
        /* the first union field's branch index, set beyond its branches */
        for (int i = 0; i < (int)avro_schema_record_size(ao->schema); i++) {
            avro_schema_t fs = avro_schema_record_field_get_by_index(ao->schema, i);
            if (!is_avro_union(fs))
                continue;
            pos = off[i];
            if (get_varint(good, len, &pos, &v) < 0)
                break;
            n = put_varint(rep, (int64_t)avro_schema_union_size(fs) + 5);
            return splice(out, good, len, off[i], pos, rep, n);
        }
        break;
    case BAD_TIMESTAMP: {
        /* alternately 1990-01-01 (before 2000) and 30 days ahead of the event */
        pos = off[m[F_TS].index];
        size_t a = pos;
        if (get_varint(good, len, &pos, &v) < 0)
            break;
        int64_t ts = (nx_gen_rng_next(rng) & 1) ? 631152000000LL : v + 30LL * 86400000;
        n = put_varint(rep, ts);
        return splice(out, good, len, a, pos, rep, n);
    }
    case BAD_PRICE:
        /* 1e15: no shop sells at that price (ingest caps input.max_price) */
        if (m[F_PRICE].index < 0 || m[F_PRICE].union_branch < 0 ||
            !is_avro_double(avro_schema_union_branch(
                avro_schema_record_field_get_by_index(ao->schema, m[F_PRICE].index),
                m[F_PRICE].union_branch)))
            break;
        {
            n = put_varint(rep, m[F_PRICE].union_branch);
            double x = 1e15;
            memcpy(rep + n, &x, 8); /* Avro doubles are little-endian, as is this host */
            return splice(out, good, len, off[m[F_PRICE].index], off[m[F_PRICE].index + 1], rep,
                          n + 8);
        }
    case BAD_TRAILING:
        memcpy(out, good, len);
        n = 1 + (size_t)(nx_gen_rng_next(rng) % 8); /* 1..8 stray bytes */
        for (size_t i = 0; i < n; i++)
            out[len + i] = (uint8_t)nx_gen_rng_next(rng);
        return len + n;
    default:
        break;
    }
    /* garbage, or a class this schema cannot express: random bytes, 1..64 */
    n = 1 + (size_t)(nx_gen_rng_next(rng) % 64);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)nx_gen_rng_next(rng);
    return n;
}

/* ---- Kafka --------------------------------------------------------------- */

typedef struct kafka_out {
    rd_kafka_t *rk;
    uint64_t delivered, failed;
    char last_error[256];
} kafka_out_t;

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    kafka_out_t *ko = opaque;
    (void)rk;
    if (msg->err) {
        if (ko->failed++ == 0)
            snprintf(ko->last_error, sizeof ko->last_error, "%s", rd_kafka_err2str(msg->err));
    } else {
        ko->delivered++;
    }
}

/* props: librdkafka producer properties passed through (config
 * kafka.producer), NULL for none. */
static kafka_out_t *kafka_out_new(const char *brokers, const nx_strmap_t *props, char *errstr,
                                  size_t errstr_size) {
    kafka_out_t *ko = calloc(1, sizeof *ko);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!ko || !conf) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    /* "mock" = librdkafka's in-process mock cluster (tests, demos) */
    rd_kafka_conf_res_t res =
        strcmp(brokers, "mock") == 0
            ? rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr, errstr_size)
            : rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size);
    /* 5 ms linger batches well at load-test rates and adds little latency */
    if (res != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "linger.ms", "5", errstr, errstr_size) != RD_KAFKA_CONF_OK)
        goto err;
    for (int i = 0; props && i < props->n; i++)
        if (rd_kafka_conf_set(conf, props->key[i], props->val[i], errstr, errstr_size) !=
            RD_KAFKA_CONF_OK)
            goto err;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, ko);
    ko->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!ko->rk)
        goto err;
    return ko; /* rd_kafka_new took conf */
err:
    if (conf)
        rd_kafka_conf_destroy(conf);
    free(ko);
    return NULL;
}

/* Produces one message, waiting on a full queue; -1 on other errors. */
static int kafka_send(kafka_out_t *ko, const char *topic, const char *key, const void *val,
                      size_t len, char *errstr, size_t errstr_size) {
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(ko->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)val, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            snprintf(errstr, errstr_size, "produce to %s: %s", topic, rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_poll(ko->rk, 100); /* let delivery reports drain the queue */
    }
    rd_kafka_poll(ko->rk, 0);
    return 0;
}

static void kafka_out_destroy(kafka_out_t *ko) {
    if (!ko)
        return;
    if (ko->rk)
        rd_kafka_destroy(ko->rk);
    free(ko);
}

/* ---- rate limit ------------------------------------------------------------ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Token bucket: `rate` tokens per second, at most `burst`. */
typedef struct bucket {
    double rate, burst, tokens, last;
} bucket_t;

/* Waits (serving Kafka callbacks) until one token is there, then takes it. */
static void bucket_take(bucket_t *b, rd_kafka_t *rk) {
    if (b->rate <= 0)
        return;
    for (;;) {
        double t = now_s();
        b->tokens += (t - b->last) * b->rate;
        b->last = t;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        if (b->tokens >= 1.0) {
            b->tokens -= 1.0;
            return;
        }
        double wait_ms = (1.0 - b->tokens) / b->rate * 1000.0;
        if (rk && wait_ms >= 1.0) {
            rd_kafka_poll(rk, (int)wait_ms);
        } else {
            struct timespec ts = {0, (long)(wait_ms * 1e6) + 1};
            nanosleep(&ts, NULL);
        }
    }
}

/* ---- the command ------------------------------------------------------------- */

static void usage(FILE *out) {
    fputs("usage: nextactd gen --events N [OPTIONS] (--output FILE.avro | --topic T | --null)\n"
          "  --events N          good events to generate\n"
          "  --users U           users simulated (default 10000)\n"
          "  --seed S            seed: the same seed, the same stream (default 1)\n"
          "  --horizon SEC       horizon of the true next-action labels (default 1800)\n"
          "  --items N           items in the catalogue (default 20000)\n"
          "  --categories N      item categories (default 50)\n"
          "  --start MS          event time of the first event, epoch ms (2026-01-05)\n"
          "  --jitter MS         out-of-order event times by up to MS (default 0)\n"
          "  --truth FILE.csv    the true next-action probabilities, a row per good event\n"
          "  --report            print the oracle's log loss and AUCs on the stream\n"
          "  -c, --config CONF   field names, writer schema, brokers and producer properties\n"
          "  --schema FILE.avsc  writer schema (default the config's, or conf/schemas/event.avsc)\n"
          "  --output FILE.avro  write an Avro container file\n"
          "  --codec C           its block codec: deflate|snappy|null (default deflate)\n"
          "  --topic T           produce to Kafka topic T (raw Avro, keyed by user id)\n"
          "  --brokers B         bootstrap servers for --topic (default the config's)\n"
          "  --rate R            at most R events per second to --topic (default no limit)\n"
          "  --bad-rate F        with --topic, this share of the messages malformed\n"
          "  --null              generate and discard (speed, --truth, --report)\n"
          "  -h, --help          this text\n",
          out);
}

static int parse_u64(const char *s, uint64_t *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return -1;
    *v = x;
    return 0;
}

static int parse_dbl(const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return (errno || end == s || *end || !isfinite(*v)) ? -1 : 0;
}

/* The default schema: conf/schemas/event.avsc from the working directory,
 * else from the source tree the binary was built from. */
static const char *default_schema(void) {
    static const char *rel = "conf/schemas/event.avsc";
    FILE *f = fopen(rel, "rb");
    if (f) {
        fclose(f);
        return rel;
    }
#ifdef NX_SOURCE_DIR
    return NX_SOURCE_DIR "/conf/schemas/event.avsc";
#else
    return rel;
#endif
}

/* What the command line (and -c CONF) asks for. Strings point into argv
 * or into the configuration, which outlives the run. */
typedef struct gen_opts {
    nx_gen_params_t params;
    uint64_t n_events;
    double bad_rate, rate, horizon_s;
    const char *truth_path, *output, *topic, *brokers, *schema_path, *conf_path, *codec;
    int have_events, report, null_sink;
    const char *names[F_COUNT];        /* writer schema field per role, "" = none */
    const nx_strmap_t *producer_props; /* the config's kafka.producer, or NULL */
} gen_opts_t;

/* What a run holds. Every pointer starts NULL and is freed by
 * gen_run_free(), the one cleanup path. */
typedef struct gen_run {
    nx_gen_t *gen;
    avro_out_t *ao; /* --output or --topic */
    kafka_out_t *ko;
    nx_gen_oracle_t *oracle;
    FILE *truth;
    uint8_t *bad_buf; /* a malformed payload, --topic only */
    nx_gen_rng_t bad_rng;
    bucket_t bucket;
    uint64_t bad_count[BAD_KINDS], n_bad;
    int64_t max_ts; /* newest event time seen (ms) */
} gen_run_t;

/* Exit status of a parse that lets the command go on. */
#define GEN_GO (-1)

/* Parses argv into o. GEN_GO, or the exit status (0 after --help, usage
 * errors EXIT_USAGE, with the message printed). */
static int parse_options(int argc, char **argv, gen_opts_t *o) {
    enum {
        O_EVENTS = 256,
        O_USERS,
        O_SEED,
        O_HORIZON,
        O_TRUTH,
        O_BAD,
        O_OUTPUT,
        O_TOPIC,
        O_RATE,
        O_BROKERS,
        O_SCHEMA,
        O_ITEMS,
        O_CATS,
        O_START,
        O_JITTER,
        O_REPORT,
        O_NULL,
        O_HELP,
        O_CODEC
    };
    static const struct option opts[] = {{"events", required_argument, 0, O_EVENTS},
                                         {"users", required_argument, 0, O_USERS},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"horizon", required_argument, 0, O_HORIZON},
                                         {"truth", required_argument, 0, O_TRUTH},
                                         {"bad-rate", required_argument, 0, O_BAD},
                                         {"output", required_argument, 0, O_OUTPUT},
                                         {"topic", required_argument, 0, O_TOPIC},
                                         {"rate", required_argument, 0, O_RATE},
                                         {"brokers", required_argument, 0, O_BROKERS},
                                         {"schema", required_argument, 0, O_SCHEMA},
                                         {"items", required_argument, 0, O_ITEMS},
                                         {"categories", required_argument, 0, O_CATS},
                                         {"start", required_argument, 0, O_START},
                                         {"jitter", required_argument, 0, O_JITTER},
                                         {"report", no_argument, 0, O_REPORT},
                                         {"null", no_argument, 0, O_NULL},
                                         {"help", no_argument, 0, O_HELP},
                                         {"config", required_argument, 0, 'c'},
                                         {"codec", required_argument, 0, O_CODEC},
                                         {0, 0, 0, 0}};
    nx_gen_params_t *params = &o->params;
    uint64_t v;

    memset(o, 0, sizeof *o);
    o->codec = "deflate";
    nx_gen_params_default(params);
    optind = 0; /* glibc: rescan from scratch, main may have run getopt */
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_EVENTS:
            bad = parse_u64(optarg, &o->n_events) < 0;
            o->have_events = 1;
            break;
        case O_USERS:
            bad = parse_u64(optarg, &v) < 0 || v < 1 || v > UINT32_MAX / 2;
            params->users = (uint32_t)v;
            break;
        case O_SEED:
            bad = parse_u64(optarg, &params->seed) < 0;
            break;
        case O_HORIZON:
            bad = parse_dbl(optarg, &o->horizon_s) < 0 || o->horizon_s <= 0 || o->horizon_s > 1e9;
            params->horizon_ms = (int64_t)llround(o->horizon_s * 1000.0);
            break;
        case O_ITEMS:
            bad = parse_u64(optarg, &v) < 0 || v < 1 || v > UINT32_MAX / 2;
            params->items = (uint32_t)v;
            break;
        case O_CATS:
            bad = parse_u64(optarg, &v) < 0 || v < 1 || v > UINT32_MAX / 2;
            params->categories = (uint32_t)v;
            break;
        case O_START:
            bad = parse_u64(optarg, &v) < 0 || v > (uint64_t)INT64_MAX / 2;
            params->start_ms = (int64_t)v;
            break;
        case O_JITTER:
            bad = parse_u64(optarg, &v) < 0 || v > 86400000; /* a day at most */
            params->jitter_ms = (int64_t)v;
            break;
        case O_TRUTH:
            o->truth_path = optarg;
            break;
        case O_BAD:
            /* below 1: each message is bad with probability F */
            bad = parse_dbl(optarg, &o->bad_rate) < 0 || o->bad_rate < 0 || o->bad_rate >= 1;
            break;
        case O_OUTPUT:
            o->output = optarg;
            break;
        case O_TOPIC:
            o->topic = optarg;
            break;
        case O_RATE:
            bad = parse_dbl(optarg, &o->rate) < 0 || o->rate < 0;
            break;
        case O_BROKERS:
            o->brokers = optarg;
            break;
        case O_SCHEMA:
            o->schema_path = optarg;
            break;
        case O_REPORT:
            o->report = 1;
            break;
        case O_NULL:
            o->null_sink = 1;
            break;
        case 'c':
            o->conf_path = optarg;
            break;
        case O_CODEC:
            o->codec = optarg;
            bad = strcmp(o->codec, "deflate") != 0 && strcmp(o->codec, "null") != 0 &&
                  strcmp(o->codec, "snappy") != 0;
            break;
        case O_HELP:
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
        if (bad) {
            const char *name = "?";
            for (const struct option *opt = opts; opt->name; opt++)
                if (opt->val == c)
                    name = opt->name;
            fprintf(stderr, "nextactd gen: bad value for --%s: %s\n", name, optarg);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nextactd gen: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!o->have_events || (!!o->output + !!o->topic + o->null_sink) != 1) {
        fprintf(stderr, "nextactd gen: need --events and one of --output, --topic, --null\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (o->bad_rate > 0 && !o->topic) {
        fprintf(stderr, "nextactd gen: --bad-rate needs --topic (files hold good events)\n");
        return EXIT_USAGE;
    }
    if (params->items < params->categories)
        params->items = params->categories;
    return GEN_GO;
}

/* Flags win over the config; the config over the built-in defaults. Loads
 * -c CONF into *cfg (the caller destroys it after the run). GEN_GO, or
 * NX_EXIT_CONFIG with the message printed. */
static int apply_config(gen_opts_t *o, nx_config_t **cfg) {
    char errstr[512] = "";
    for (int f = 0; f < F_COUNT; f++)
        o->names[f] = field_default_name[f];
    if (o->conf_path) {
        *cfg = nx_config_load(o->conf_path, errstr, sizeof errstr);
        if (!*cfg) {
            fprintf(stderr, "nextactd gen: %s\n", errstr);
            return NX_EXIT_CONFIG;
        }
        const nx_config_t *c = *cfg;
        if (!o->schema_path)
            o->schema_path = c->input.writer_schema;
        if (!o->brokers)
            o->brokers = c->kafka.brokers;
        if (o->horizon_s == 0)
            o->params.horizon_ms = c->labels.horizon_s * 1000;
        o->producer_props = &c->kafka.producer;
        const char *cf[F_COUNT] = {c->input.field_user_id,  c->input.field_timestamp,
                                   c->input.field_type,     c->input.field_item,
                                   c->input.field_category, c->input.field_price,
                                   c->input.field_quantity, c->input.field_session};
        for (int f = 0; f < F_COUNT; f++)
            o->names[f] = cf[f] ? cf[f] : "";
        /* Write the input value that type_map maps to each role (e.g. "pv"
         * for click); warn when the config does not know a role. */
        for (int k = 0; k < NX_GEN_TYPES; k++) {
            const char *role = o->params.type_names[k];
            for (int i = 0; i < c->input.type_map.n; i++) {
                if (strcmp(c->input.type_map.val[i], role) == 0) {
                    o->params.type_names[k] = c->input.type_map.key[i];
                    break;
                }
            }
            if (nx_config_type_index(c, role) < 0)
                fprintf(stderr, "nextactd gen: warning: %s: event_types has no \"%s\"\n",
                        o->conf_path, role);
        }
    }
    if (o->topic && !o->brokers)
        o->brokers = "localhost:9092";
    if (!o->schema_path)
        o->schema_path = default_schema();
    return GEN_GO;
}

/* --output: our container writer, whose sync marker comes from the seed,
 * so a file is bit-identical run to run. */
static int open_ocf_output(const gen_opts_t *o, avro_out_t *ao, char *errstr, size_t errstr_size) {
    ao->file =
        nx_ocf_writer_open(o->output, ao->json, o->codec, o->params.seed, errstr, errstr_size);
    return ao->file ? 0 : -1;
}

/* --topic: the producer, and room for a malformed payload (--bad-rate). */
static int open_kafka_output(const gen_opts_t *o, gen_run_t *run, char *errstr,
                             size_t errstr_size) {
    run->bad_buf = malloc(sizeof run->ao->buf + 64);
    if (!run->ao->mem || !run->bad_buf) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    run->ko = kafka_out_new(o->brokers, o->producer_props, errstr, errstr_size);
    return run->ko ? 0 : -1;
}

/* --truth: the file and its header line. */
static int open_truth(const gen_opts_t *o, gen_run_t *run, char *errstr, size_t errstr_size) {
    run->truth = fopen(o->truth_path, "w");
    if (!run->truth) {
        snprintf(errstr, errstr_size, "%s: %s", o->truth_path, strerror(errno));
        return -1;
    }
    fprintf(run->truth, "index,user,ts,type");
    for (int k = 0; k < NX_GEN_TYPES; k++)
        fprintf(run->truth, ",p_%s", o->params.type_names[k]);
    fprintf(run->truth, ",p_none\n");
    return 0;
}

/* One truth row: the event and its true next-action probabilities. */
static void truth_row(FILE *truth, const nx_gen_event_t *ev) {
    fprintf(truth, "%llu,%s,%lld,%s", (unsigned long long)ev->index, ev->user_id,
            (long long)ev->ts_ms, ev->type_name);
    /* %.17g: the exact double, so the oracle can be recomputed bit for bit */
    for (int k = 0; k <= NX_GEN_TYPES; k++)
        fprintf(truth, ",%.17g", ev->p[k]);
    fputc('\n', truth);
}

/* The generator and every output the options ask for. 0 or -1 + errstr;
 * what was opened is in run either way. */
static int open_run(const gen_opts_t *o, gen_run_t *run, char *errstr, size_t errstr_size) {
    run->gen = nx_gen_new(&o->params, errstr, errstr_size);
    if (!run->gen)
        return -1;
    if (o->output || o->topic) {
        run->ao = avro_out_new(o->schema_path, o->names, errstr, errstr_size);
        if (!run->ao)
            return -1;
        run->ao->mem = avro_writer_memory(run->ao->buf, sizeof run->ao->buf);
        if (!run->ao->mem) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
    }
    if (o->output && open_ocf_output(o, run->ao, errstr, errstr_size) < 0)
        return -1;
    if (o->topic && open_kafka_output(o, run, errstr, errstr_size) < 0)
        return -1;
    if (o->truth_path && open_truth(o, run, errstr, errstr_size) < 0)
        return -1;
    run->oracle = nx_gen_oracle_new(o->params.users, o->params.horizon_ms, o->report);
    if (!run->oracle) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    /* Bad payloads come from their own stream, so the good events are the
     * same with and without them. The constant only has to differ. */
    nx_gen_rng_seed(&run->bad_rng, o->params.seed ^ 0xbad0bad0bad0bad0ULL);
    /* 10 ms worth of events may go at once: smooth at ~1 ms sleep granularity */
    run->bucket = (bucket_t){o->rate, o->rate * 0.01 > 1.0 ? o->rate * 0.01 : 1.0, 1.0, now_s()};
    run->max_ts = INT64_MIN;
    return 0;
}

/* Produces the encoded event in ao->buf (len bytes) to the topic, after
 * the malformed messages that --bad-rate draws before it. */
static int send_event(const gen_opts_t *o, gen_run_t *run, const nx_gen_event_t *ev, size_t len,
                      char *errstr, size_t errstr_size) {
    avro_out_t *ao = run->ao;
    while (o->bad_rate > 0 && nx_gen_rng_uniform(&run->bad_rng) <= o->bad_rate) {
        int kind = (int)(nx_gen_rng_next(&run->bad_rng) % BAD_KINDS);
        size_t bl = make_bad(kind, ao, (const uint8_t *)ao->buf, len, &run->bad_rng, run->bad_buf);
        run->bad_count[kind]++;
        run->n_bad++;
        bucket_take(&run->bucket, run->ko->rk);
        if (kafka_send(run->ko, o->topic, ev->user_id, run->bad_buf, bl, errstr, errstr_size) < 0)
            return -1;
    }
    bucket_take(&run->bucket, run->ko->rk);
    return kafka_send(run->ko, o->topic, ev->user_id, ao->buf, len, errstr, errstr_size);
}

/* One generated event to the oracle and every output. 0 or -1 + errstr. */
static int write_event(const gen_opts_t *o, gen_run_t *run, const nx_gen_event_t *ev, char *errstr,
                       size_t errstr_size) {
    avro_out_t *ao = run->ao;
    if (ev->ts_ms > run->max_ts)
        run->max_ts = ev->ts_ms;
    if (nx_gen_oracle_add(run->oracle, ev) < 0) {
        snprintf(errstr, errstr_size, "out of memory (--report scores)");
        return -1;
    }
    if (ao && avro_fill(ao, ev) < 0) {
        snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
        return -1;
    }
    int64_t len = ao ? avro_encode(ao) : 0;
    if (len < 0) {
        snprintf(errstr, errstr_size, "avro encode: %s", avro_strerror());
        return -1;
    }
    if (o->output && nx_ocf_writer_append(ao->file, ao->buf, (size_t)len, errstr, errstr_size) < 0)
        return -1;
    if (o->topic && send_event(o, run, ev, (size_t)len, errstr, errstr_size) < 0)
        return -1;
    if (run->truth)
        truth_row(run->truth, ev);
    return 0;
}

/* Closes the container file, waits for Kafka's delivery reports and closes
 * the truth file, reporting the first failure. 0 or -1 + errstr. */
static int finish_outputs(const gen_opts_t *o, gen_run_t *run, char *errstr, size_t errstr_size) {
    if (o->output) {
        nx_ocf_writer_t *file = run->ao->file;
        run->ao->file = NULL;
        if (nx_ocf_writer_close(file, errstr, errstr_size) < 0)
            return -1;
    }
    if (run->ko) {
        /* 60 s: generous for a local broker, bounded for a dead one */
        rd_kafka_flush(run->ko->rk, 60000);
        int left = rd_kafka_outq_len(run->ko->rk);
        if (left > 0 || run->ko->failed > 0) {
            snprintf(errstr, errstr_size, "%llu messages not delivered, %d still queued%s%s",
                     (unsigned long long)run->ko->failed, left, run->ko->failed ? ": " : "",
                     run->ko->last_error);
            return -1;
        }
    }
    if (run->truth) {
        int e = fclose(run->truth);
        run->truth = NULL;
        if (e != 0) {
            snprintf(errstr, errstr_size, "%s: %s", o->truth_path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* The run's figures on stderr: event mix and speed, Kafka delivery and
 * malformed messages, a timestamp warning, and with --report the oracle's
 * scores against the stream's own labels. */
static void print_report(const gen_opts_t *o, const gen_run_t *run, double secs) {
    const char *const *type_names = o->params.type_names;
    uint64_t n_events = o->n_events;
    nx_gen_oracle_report_t rep;
    /* with jitter an event up to jitter_ms older than the newest may still
     * be unseen: only horizons closed before that are labelled none */
    nx_gen_oracle_finish(run->oracle, run->max_ts - o->params.jitter_ms, &rep);
    fprintf(stderr, "gen: %llu events", (unsigned long long)n_events);
    for (int k = 0; k < NX_GEN_TYPES; k++)
        fprintf(stderr, ", %s %.2f%%", type_names[k],
                n_events ? 100.0 * (double)rep.type_count[k] / (double)n_events : 0.0);
    fprintf(stderr, "; %.3f s, %.0f events/s\n", secs, secs > 0 ? (double)n_events / secs : 0.0);
    if (run->ko) {
        fprintf(stderr, "gen: %llu messages delivered, %llu bad",
                (unsigned long long)run->ko->delivered, (unsigned long long)run->n_bad);
        for (int k = 0; k < BAD_KINDS; k++)
            if (run->bad_count[k])
                fprintf(stderr, " %s=%llu", bad_name[k], (unsigned long long)run->bad_count[k]);
        fputc('\n', stderr);
    }
    /* Ingest rejects timestamps more than a day past the wall clock
     * (input.max_future_ms): say so before a live test trips over it. */
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t wall_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    if (n_events > 0 && run->max_ts > wall_ms)
        fprintf(stderr,
                "gen: warning: the stream runs %.1f days past the wall clock; a live "
                "daemon rejects events over a day ahead: use an earlier --start or more "
                "--users\n",
                (double)(run->max_ts - wall_ms) / 86400000.0);
    if (o->report) {
        fprintf(stderr, "gen: oracle over %llu labelled: log loss %.4f",
                (unsigned long long)rep.labelled, rep.log_loss);
        for (int k = 0; k <= NX_GEN_TYPES; k++)
            fprintf(stderr, ", AUC %s %.4f", k < NX_GEN_TYPES ? type_names[k] : "none", rep.auc[k]);
        fputc('\n', stderr);
        fprintf(stderr, "gen: labels");
        for (int k = 0; k <= NX_GEN_TYPES; k++)
            fprintf(stderr, " %s %.2f%% (mean p %.2f%%)", k < NX_GEN_TYPES ? type_names[k] : "none",
                    100.0 * (double)rep.label_count[k] / (double)(rep.labelled ? rep.labelled : 1),
                    100.0 * rep.sum_p[k] / (double)(rep.labelled ? rep.labelled : 1));
        fputc('\n', stderr);
    }
}

static void gen_run_free(gen_run_t *run) {
    if (run->truth)
        fclose(run->truth);
    free(run->bad_buf);
    nx_gen_oracle_destroy(run->oracle);
    kafka_out_destroy(run->ko);
    avro_out_destroy(run->ao);
    nx_gen_destroy(run->gen);
}

int nx_gen_main(int argc, char **argv) {
    gen_opts_t o;
    gen_run_t run = {0};
    nx_config_t *cfg = NULL;
    char errstr[512] = "";
    int rc = parse_options(argc, argv, &o);
    if (rc != GEN_GO)
        return rc;
    if ((rc = apply_config(&o, &cfg)) != GEN_GO)
        return rc;
    rc = 1;
    if (open_run(&o, &run, errstr, sizeof errstr) < 0)
        goto err;
    double t_start = now_s();
    nx_gen_event_t ev;
    for (uint64_t i = 0; i < o.n_events; i++) {
        nx_gen_next(run.gen, &ev);
        if (write_event(&o, &run, &ev, errstr, sizeof errstr) < 0)
            goto err;
    }
    if (finish_outputs(&o, &run, errstr, sizeof errstr) < 0)
        goto err;
    print_report(&o, &run, now_s() - t_start);
    rc = 0;
err:
    if (rc != 0)
        fprintf(stderr, "nextactd gen: %s\n", errstr);
    gen_run_free(&run);
    nx_config_destroy(cfg);
    return rc;
}
