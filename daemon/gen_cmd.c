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
#include "gen_avro.h"
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
    const char *names[NX_GEN_AVRO_FIELDS]; /* writer schema field per role, "" = none */
    const nx_strmap_t *producer_props;     /* the config's kafka.producer, or NULL */
} gen_opts_t;

/* What a run holds. Every pointer starts NULL and is freed by
 * gen_run_free(), the one cleanup path. */
typedef struct gen_run {
    nx_gen_t *gen;
    nx_gen_avro_t *ga;     /* --output or --topic */
    nx_ocf_writer_t *file; /* --output */
    kafka_out_t *ko;
    nx_gen_oracle_t *oracle;
    FILE *truth;
    uint8_t *bad_buf; /* a malformed payload, --topic only */
    nx_gen_rng_t bad_rng;
    bucket_t bucket;
    uint64_t bad_count[NX_GEN_AVRO_BAD_KINDS], n_bad;
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
    for (int f = 0; f < NX_GEN_AVRO_FIELDS; f++)
        o->names[f] = nx_gen_avro_default_name(f);
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
        const char *cf[NX_GEN_AVRO_FIELDS] = {c->input.field_user_id,  c->input.field_timestamp,
                                              c->input.field_type,     c->input.field_item,
                                              c->input.field_category, c->input.field_price,
                                              c->input.field_quantity, c->input.field_session};
        for (int f = 0; f < NX_GEN_AVRO_FIELDS; f++)
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
static int open_ocf_output(const gen_opts_t *o, gen_run_t *run, char *errstr, size_t errstr_size) {
    run->file = nx_ocf_writer_open(o->output, nx_gen_avro_schema_json(run->ga), o->codec,
                                   o->params.seed, errstr, errstr_size);
    return run->file ? 0 : -1;
}

/* --topic: the producer, and room for a malformed payload (--bad-rate). */
static int open_kafka_output(const gen_opts_t *o, gen_run_t *run, char *errstr,
                             size_t errstr_size) {
    run->bad_buf = malloc(NX_GEN_AVRO_MAX_RECORD + NX_GEN_AVRO_BAD_EXTRA);
    if (!run->bad_buf) {
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
        run->ga = nx_gen_avro_new(o->schema_path, o->names, errstr, errstr_size);
        if (!run->ga)
            return -1;
    }
    if (o->output && open_ocf_output(o, run, errstr, errstr_size) < 0)
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

/* Produces the encoded event (buf, len bytes) to the topic, after the
 * malformed messages that --bad-rate draws before it. */
static int send_event(const gen_opts_t *o, gen_run_t *run, const nx_gen_event_t *ev,
                      const uint8_t *buf, size_t len, char *errstr, size_t errstr_size) {
    while (o->bad_rate > 0 && nx_gen_rng_uniform(&run->bad_rng) <= o->bad_rate) {
        int kind = (int)(nx_gen_rng_next(&run->bad_rng) % NX_GEN_AVRO_BAD_KINDS);
        size_t bl = nx_gen_avro_bad(run->ga, kind, buf, len, &run->bad_rng, run->bad_buf);
        run->bad_count[kind]++;
        run->n_bad++;
        bucket_take(&run->bucket, run->ko->rk);
        if (kafka_send(run->ko, o->topic, ev->user_id, run->bad_buf, bl, errstr, errstr_size) < 0)
            return -1;
    }
    bucket_take(&run->bucket, run->ko->rk);
    return kafka_send(run->ko, o->topic, ev->user_id, buf, len, errstr, errstr_size);
}

/* One generated event to the oracle and every output. 0 or -1 + errstr. */
static int write_event(const gen_opts_t *o, gen_run_t *run, const nx_gen_event_t *ev, char *errstr,
                       size_t errstr_size) {
    nx_gen_avro_t *ga = run->ga;
    const uint8_t *buf = NULL;
    if (ev->ts_ms > run->max_ts)
        run->max_ts = ev->ts_ms;
    if (nx_gen_oracle_add(run->oracle, ev) < 0) {
        snprintf(errstr, errstr_size, "out of memory (--report scores)");
        return -1;
    }
    if (ga && nx_gen_avro_fill(ga, ev) < 0) {
        snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
        return -1;
    }
    int64_t len = ga ? nx_gen_avro_encode(ga, &buf) : 0;
    if (len < 0) {
        snprintf(errstr, errstr_size, "avro encode: %s", avro_strerror());
        return -1;
    }
    if (o->output && nx_ocf_writer_append(run->file, buf, (size_t)len, errstr, errstr_size) < 0)
        return -1;
    if (o->topic && send_event(o, run, ev, buf, (size_t)len, errstr, errstr_size) < 0)
        return -1;
    if (run->truth)
        truth_row(run->truth, ev);
    return 0;
}

/* Closes the container file, waits for Kafka's delivery reports and closes
 * the truth file, reporting the first failure. 0 or -1 + errstr. */
static int finish_outputs(const gen_opts_t *o, gen_run_t *run, char *errstr, size_t errstr_size) {
    if (o->output) {
        nx_ocf_writer_t *file = run->file;
        run->file = NULL;
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
        for (int k = 0; k < NX_GEN_AVRO_BAD_KINDS; k++)
            if (run->bad_count[k])
                fprintf(stderr, " %s=%llu", nx_gen_avro_bad_name(k),
                        (unsigned long long)run->bad_count[k]);
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
    if (run->file) {
        char err[256]; /* a run that failed already says why */
        nx_ocf_writer_close(run->file, err, sizeof err);
    }
    nx_gen_avro_destroy(run->ga);
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
