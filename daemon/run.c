/* run.c: the daemon's main loop and the demo (run.h). */
#include "run.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "gen.h"
#include "kafka.h"
#include "log.h"
#include "pipeline.h"
#include "siphash.h"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig) {
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- latency histogram ---------------------------------------------------- */

/* Upper bounds (ms) of the latency buckets: fine where the p99 target (20
 * ms) lies, coarse beyond a second. */
static const int64_t lat_bounds[] = {1,   2,   3,    4,    5,    6,     8,     10,    12,       15,
                                     20,  25,  30,   40,   50,   75,    100,   150,   200,      300,
                                     500, 750, 1000, 2000, 5000, 10000, 30000, 60000, INT64_MAX};
#define N_LAT (sizeof lat_bounds / sizeof lat_bounds[0])

typedef struct latency {
    uint64_t count[N_LAT];
    uint64_t n;
} latency_t;

static void latency_add(latency_t *l, int64_t ms) {
    size_t i = 0;
    while (ms > lat_bounds[i])
        i++;
    l->count[i]++;
    l->n++;
}

static int64_t latency_quantile(const latency_t *l, double q) {
    if (l->n == 0)
        return -1;
    uint64_t want = (uint64_t)ceil(q * (double)l->n), seen = 0;
    for (size_t i = 0; i < N_LAT; i++) {
        seen += l->count[i];
        if (seen >= want)
            return lat_bounds[i];
    }
    return lat_bounds[N_LAT - 1];
}

/* ---- the loop --------------------------------------------------------------- */

typedef struct run {
    nx_config_t *cfg;
    nx_kafka_t *kafka;
    nx_codec_t *codec;
    nx_pipeline_t *pipe;
    rd_kafka_message_t **msgs;
    nx_event_t *evs;
    nx_ticket_t *tickets;
    const char **topics;
    latency_t lat, lat_window;
    uint64_t bad, skipped, stale;
    int status_tty; /* live status line on a terminal */
} run_t;

static int emit(void *opaque, size_t index, const nx_event_t *ev, const void *rec, size_t len) {
    run_t *r = opaque;
    return nx_kafka_produce(r->kafka, r->tickets[index], ev->user_id, ev->user_id_len, rec, len);
}

static void delivered(void *opaque, int is_dlq, rd_kafka_resp_err_t err, int64_t latency_ms) {
    run_t *r = opaque;
    if (!is_dlq && !err && latency_ms >= 0) {
        latency_add(&r->lat, latency_ms);
        latency_add(&r->lat_window, latency_ms);
    }
}

static void process_batch(run_t *r, int n) {
    int64_t now = nx_now_wall_ms();
    size_t ng = 0;
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = r->msgs[i];
        nx_ticket_t t = nx_kafka_track(r->kafka, m);
        if (t == NX_TICKET_NONE) {
            r->stale++; /* its partition was revoked during the poll */
            continue;
        }
        int topic = nx_kafka_topic_index(r->kafka, m);
        nx_event_t *ev = &r->evs[ng];
        nx_codec_reason_t why = nx_codec_decode(r->codec, m->payload, m->len, topic, now, ev);
        if (why == NX_CODEC_OK) {
            ev->partition = m->partition;
            ev->offset = m->offset;
            ev->topic = topic;
            r->tickets[ng++] = t;
        } else if (why == NX_CODEC_SKIPPED) {
            r->skipped++;
            nx_kafka_done(r->kafka, t);
        } else {
            r->bad++;
            NX_LOG_RL(NX_LOG_WARNING, "bad record %s [%d] @%lld: %s", rd_kafka_topic_name(m->rkt),
                      (int)m->partition, (long long)m->offset, nx_codec_reason_name(why));
            nx_kafka_dead_letter(r->kafka, t, m, nx_codec_reason_name(why));
        }
    }
    if (ng)
        nx_pipeline_process(r->pipe, r->evs, ng, r->topics, now);
    for (int i = 0; i < n; i++)
        rd_kafka_message_destroy(r->msgs[i]);
}

static void status_line(run_t *r, double secs, uint64_t events_before, double interval) {
    nx_pipeline_stats_t s;
    nx_kafka_stats_t ks;
    nx_pipeline_stats(r->pipe, &s);
    nx_kafka_stats(r->kafka, &ks);
    int purchase = nx_config_type_index(r->cfg, "purchase");
    double auc = purchase >= 0 ? s.window_auc[purchase] : NAN;
    char line[512];
    snprintf(line, sizeof line,
             "%6.0fs  %8.0f ev/s  events %llu  users %llu  pending %llu  bad %llu  "
             "logloss %.4f  auc(purchase) %.3f  latency p50 %lld ms p99 %lld ms",
             secs, (double)(s.events - events_before) / interval, (unsigned long long)s.events,
             (unsigned long long)s.users, (unsigned long long)s.pending, (unsigned long long)r->bad,
             s.window_logloss, auc, (long long)latency_quantile(&r->lat_window, 0.5),
             (long long)latency_quantile(&r->lat_window, 0.99));
    if (r->status_tty)
        fprintf(stderr, "\r%s\033[K", line);
    else
        nx_info("%s", line);
    memset(&r->lat_window, 0, sizeof r->lat_window);
}

static void reload(run_t *r) {
    char err[1024];
    nx_config_t *fresh = nx_config_load(r->cfg->path, err, sizeof err);
    if (!fresh) {
        nx_err("reload: %s; keeping the running configuration", err);
        return;
    }
    nx_log_set_level(nx_log_level_parse(fresh->log_level));
    nx_notice("reload: log_level = %s applied; other settings take effect at restart",
              fresh->log_level);
    nx_config_destroy(fresh);
}

/* The generator feeding the mock cluster at a bounded rate, from the loop's
 * thread through a producer of its own. */
typedef struct demo_feed {
    nx_gen_t *gen;
    rd_kafka_t *producer;
    const char *topic;
    double rate; /* events/s */
    int64_t t0;
    uint64_t produced;
    uint8_t buf[2048];
} demo_feed_t;

static void demo_feed_step(demo_feed_t *feed, int64_t now_mono);

static int run_loop(run_t *r, demo_feed_t *feed, double max_seconds) {
    int batch = (int)r->cfg->kafka.poll_batch;
    int64_t t0 = nx_now_mono_ms(), last_status = t0;
    uint64_t events_at_status = 0;
    int rc = 0;
    while (!stop_requested) {
        int64_t now = nx_now_mono_ms();
        /* the demo's time counts from its first event */
        int64_t start = feed && feed->t0 ? feed->t0 : t0;
        if (max_seconds > 0 && (double)(now - start) / 1000 >= max_seconds)
            break;
        if (feed) {
            /* feed once the consumer owns its partitions, so the first
             * events do not wait out the group join */
            nx_kafka_stats_t ks;
            nx_kafka_stats(r->kafka, &ks);
            if (ks.assigned_partitions > 0)
                demo_feed_step(feed, now);
        }
        int n = nx_kafka_poll_batch(r->kafka, r->msgs, batch, (int)r->cfg->kafka.poll_timeout_ms);
        if (n < 0) {
            nx_err("kafka: fatal consumer error; stopping");
            rc = 1;
            break;
        }
        if (n > 0)
            process_batch(r, n);
        nx_pipeline_tick(r->pipe, nx_now_wall_ms());
        if (reload_requested) {
            reload_requested = 0;
            reload(r);
        }
        now = nx_now_mono_ms();
        double interval = feed ? 1.0 : (double)r->cfg->metrics.status_interval_s;
        if ((double)(now - last_status) / 1000 >= interval) {
            nx_pipeline_stats_t s;
            nx_pipeline_stats(r->pipe, &s);
            status_line(r, (double)(now - t0) / 1000, events_at_status,
                        (double)(now - last_status) / 1000);
            events_at_status = s.events;
            last_status = now;
        }
    }
    if (r->status_tty)
        fputc('\n', stderr);
    return rc;
}

static int run_setup(run_t *r, char *err, size_t err_size) {
    uint8_t key[NX_SIPHASH_KEY_LEN];
    int created = 0;
    if (mkdir(r->cfg->state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "state_dir %s: %s", r->cfg->state_dir, strerror(errno));
        return -1;
    }
    if (nx_siphash_key_load(r->cfg->state_dir, key, &created, err, err_size) < 0)
        return -1;
    if (created)
        nx_notice("created the user-id hash key in %s", r->cfg->state_dir);
    if (!(r->codec = nx_codec_new(r->cfg, err, err_size)))
        return -1;
    nx_pipeline_out_t po = {emit, r};
    if (!(r->pipe = nx_pipeline_new(r->cfg, key, 1, &po, err, err_size)))
        return -1;
    nx_kafka_hooks_t hooks = {.delivered = delivered, .opaque = r};
    if (!(r->kafka = nx_kafka_new(r->cfg, &hooks, err, err_size)))
        return -1;
    size_t batch = (size_t)r->cfg->kafka.poll_batch;
    r->msgs = calloc(batch, sizeof *r->msgs);
    r->evs = calloc(batch, sizeof *r->evs);
    r->tickets = calloc(batch, sizeof *r->tickets);
    r->topics = calloc((size_t)r->cfg->kafka.input_topics.n, sizeof *r->topics);
    if (!r->msgs || !r->evs || !r->tickets || !r->topics) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    for (int i = 0; i < r->cfg->kafka.input_topics.n; i++)
        r->topics[i] = r->cfg->kafka.input_topics.v[i];
    return 0;
}

static void run_teardown(run_t *r) {
    if (r->kafka)
        nx_kafka_close(r->kafka);
    nx_kafka_destroy(r->kafka);
    nx_pipeline_destroy(r->pipe);
    nx_codec_destroy(r->codec);
    free(r->msgs);
    free(r->evs);
    free(r->tickets);
    free(r->topics);
}

int nx_run_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    const char *conf = NULL;
    char err[1024];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (opt == 'c')
            conf = optarg;
        else
            return 2;
    }
    if (!conf) {
        fprintf(stderr, "usage: nextactd run -c CONF\n");
        return 2;
    }
    run_t r = {0};
    if (!(r.cfg = nx_config_load(conf, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return NX_EXIT_CONFIG;
    }
    nx_log_set_level(nx_log_level_parse(r.cfg->log_level));
    install_signals();
    int rc = 1;
    if (run_setup(&r, err, sizeof err) < 0) {
        nx_err("start-up: %s", err);
        goto out;
    }
    nx_notice("nextactd %s running: %d input topic(s) -> %s", NX_VERSION,
              r.cfg->kafka.input_topics.n, r.cfg->kafka.output_topic);
    rc = run_loop(&r, NULL, 0);
    nx_notice("stopping: flushing predictions and committing offsets");
out:
    run_teardown(&r);
    nx_config_destroy(r.cfg);
    return rc;
}

/* ---- demo ------------------------------------------------------------------------ */

static void demo_feed_step(demo_feed_t *feed, int64_t now_mono) {
    if (feed->t0 == 0)
        feed->t0 = now_mono;
    uint64_t due = (uint64_t)((double)(now_mono - feed->t0) / 1000 * feed->rate);
    /* at most 20000 per step, so the loop keeps consuming */
    for (int i = 0; feed->produced < due && i < 20000; i++) {
        nx_gen_event_t ge;
        nx_gen_next(feed->gen, &ge);
        nx_codec_record_t rec = {
            .user_id = ge.user_id,
            .ts_ms = ge.ts_ms,
            .event_type = ge.type_name,
            .item_id = ge.item_id,
            .category = ge.category,
            .price = ge.price,
            .has_quantity = ge.quantity > 0,
            .quantity = ge.quantity,
            .session_id = ge.session_id,
        };
        int64_t len = nx_codec_encode_event(&rec, -1, feed->buf, sizeof feed->buf);
        if (len < 0)
            continue;
        rd_kafka_resp_err_t e =
            rd_kafka_producev(feed->producer, RD_KAFKA_V_TOPIC(feed->topic),
                              RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)),
                              RD_KAFKA_V_VALUE(feed->buf, (size_t)len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(feed->producer, 10);
            break;
        }
        feed->produced++;
    }
    rd_kafka_poll(feed->producer, 0);
}

int nx_demo_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"seconds", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"users", required_argument, NULL, 'u'},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    double seconds = 20, rate = 20000;
    long users = 20000;
    const char *conf = NULL;
    char err[1024];
    int opt, rc = 1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:r:u:c:", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            seconds = atof(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 'u':
            users = atol(optarg);
            break;
        case 'c':
            conf = optarg;
            break;
        default:
            fprintf(stderr, "usage: nextactd demo [--seconds S] [--rate EVENTS_PER_S] "
                            "[--users U] [-c CONF]\n");
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 3600 || rate <= 0 || rate > 1e6 || users < 1 ||
        users > 10000000) {
        fprintf(stderr, "demo: --seconds in (0, 3600], --rate in (0, 1e6], --users in "
                        "[1, 1e7]\n");
        return 2;
    }
    run_t r = {0};
    demo_feed_t feed = {0};
    char state[] = "/tmp/nextactd-demo.XXXXXX";
    if (!mkdtemp(state)) {
        perror("demo: mkdtemp");
        return 1;
    }
    /* the embedded default: the shipped configuration, or -c CONF, with an
     * in-process mock cluster unless the file names real brokers */
    const char *path = conf ? conf : NX_SOURCE_DIR "/conf/demo.conf";
    if (!(r.cfg = nx_config_load(path, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return NX_EXIT_CONFIG;
    }
    free(r.cfg->state_dir);
    r.cfg->state_dir = strdup(state);
    nx_log_set_level(nx_log_level_parse(r.cfg->log_level));
    install_signals();
    r.status_tty = isatty(STDERR_FILENO);
    if (run_setup(&r, err, sizeof err) < 0) {
        nx_err("demo: %s", err);
        goto out;
    }
    nx_gen_params_t gp;
    nx_gen_params_default(&gp);
    gp.users = (uint32_t)users;
    gp.seed = (uint64_t)r.cfg->model.seed;
    gp.horizon_ms = r.cfg->labels.horizon_s * 1000;
    if (!(feed.gen = nx_gen_new(&gp, err, sizeof err))) {
        nx_err("demo: generator: %s", err);
        goto out;
    }
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set(pc, "bootstrap.servers", nx_kafka_brokers(r.kafka), err, sizeof err);
    rd_kafka_conf_set(pc, "linger.ms", "5", err, sizeof err);
    if (!(feed.producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err))) {
        rd_kafka_conf_destroy(pc);
        nx_err("demo: producer: %s", err);
        goto out;
    }
    feed.topic = r.cfg->kafka.input_topics.v[0];
    feed.rate = rate;
    fprintf(stderr,
            "nextactd demo: generator -> %s (%s) -> nextactd -> %s, %.0f events/s, %ld users, "
            "%.0f s\n",
            feed.topic, nx_kafka_brokers(r.kafka), r.cfg->kafka.output_topic, rate, users, seconds);
    rc = run_loop(&r, &feed, seconds);

    /* summary */
    nx_kafka_flush(r.kafka, 5000);
    nx_pipeline_stats_t s;
    nx_kafka_stats_t ks;
    nx_pipeline_stats(r.pipe, &s);
    nx_kafka_stats(r.kafka, &ks);
    double secs = feed.t0 ? (double)(nx_now_mono_ms() - feed.t0) / 1000 : 0;
    printf("\nsummary: %llu events generated, %llu consumed, %llu predictions delivered, "
           "%llu bad\n",
           (unsigned long long)feed.produced, (unsigned long long)ks.consumed,
           (unsigned long long)ks.produced, (unsigned long long)r.bad);
    printf("  %.0f events/s over %.1f s; %llu users (%.0f bytes each); %llu training steps\n",
           (double)s.events / secs, secs, (unsigned long long)s.users, s.bytes_per_user,
           (unsigned long long)s.steps);
    printf("  progressive validation on %llu labelled examples: log loss %.4f, accuracy "
           "%.3f, normalised entropy %.3f\n",
           (unsigned long long)s.labelled, s.logloss, s.accuracy, s.normalized_entropy);
    printf("  one-vs-rest AUC:");
    for (int k = 0; k < s.n_classes; k++)
        printf(" %s %.3f", nx_pipeline_class_name(r.pipe, k), s.auc[k]);
    printf("\n  latency from event produce to prediction acknowledged: p50 %lld ms, p99 %lld "
           "ms\n",
           (long long)latency_quantile(&r.lat, 0.5), (long long)latency_quantile(&r.lat, 0.99));
out:
    if (feed.producer) {
        rd_kafka_flush(feed.producer, 1000);
        rd_kafka_destroy(feed.producer);
    }
    nx_gen_destroy(feed.gen);
    run_teardown(&r);
    nx_config_destroy(r.cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", state);
    if (system(cmd) != 0)
        nx_warn("demo: could not remove %s", state);
    return rc;
}
