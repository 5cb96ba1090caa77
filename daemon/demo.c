/*
 * demo.c: `nextactd demo`: the clickstream generator feeds the daemon's
 * own loop (run_int.h) through Kafka: librdkafka's in-process mock cluster
 * by default (conf/demo.conf), or the brokers a -c CONF names. Live figures
 * every second, a summary at the end.
 *
 * The feeding runs in the loop's thread, as the loop's per-iteration hook,
 * through a producer of its own: the daemon consumes exactly what a real
 * producer would have written. State lives in a temporary directory,
 * removed at the end.
 */
#include "run.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"
#include "log.h"
#include "preflight.h"
#include "run_int.h"

/* The generator feeding the mock cluster at a bounded rate, from the loop's
 * thread through a producer of its own. */
typedef struct demo_feed {
    nx_gen_t *gen;
    rd_kafka_t *producer;
    const char *topic;
    double rate; /* events/s */
    int64_t t0;  /* when paced feeding began (the probe's prediction was delivered), 0 = not yet */
    int64_t probe_at; /* when the probe event was produced */
    uint64_t produced;
    double seconds;   /* how long paced feeding lasts */
    int64_t loop_t0;  /* when the loop began, ms (monotonic) */
    int64_t drain_at; /* when the time was up and feeding stopped, 0 = not yet */
    uint8_t buf[2048];
} demo_feed_t;

/* Produces the generator's next event; 0 if the producer's queue is full. */
static int demo_feed_one(demo_feed_t *feed) {
    nx_gen_event_t ge;
    nx_gen_next(feed->gen, &ge);
    int64_t len = nx_gen_encode_event(&ge, -1, feed->buf, sizeof feed->buf);
    if (len < 0)
        return 1; /* not encodable: skipped */
    rd_kafka_resp_err_t e = rd_kafka_producev(
        feed->producer, RD_KAFKA_V_TOPIC(feed->topic),
        RD_KAFKA_V_KEY(ge.user_id, strlen(ge.user_id)), RD_KAFKA_V_VALUE(feed->buf, (size_t)len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(feed->producer, 10);
        return 0;
    }
    feed->produced++;
    return 1;
}

/* One event goes first, alone; paced feeding starts once its prediction is
 * delivered (delivered: predictions the daemon's producer has had
 * acknowledged). Until the consumer fetches and the output producer knows
 * its topic, which takes a second or two after the partitions are
 * assigned, fed events just wait, and the demo's latency figures would
 * measure that start-up wait instead of the pipeline. A probe not delivered in
 * 10 s (a configured cluster without the output topic, say) does not hold
 * the demo back any longer. */
static void demo_feed_step(demo_feed_t *feed, int64_t now_mono, uint64_t delivered) {
    if (feed->produced == 0) {
        demo_feed_one(feed);
        feed->probe_at = now_mono;
    } else if (feed->t0 == 0 && (delivered > 0 || now_mono - feed->probe_at > 10000)) {
        feed->t0 = now_mono;
    } else if (feed->t0) {
        uint64_t due = 1 + (uint64_t)((double)(now_mono - feed->t0) / 1000 * feed->rate);
        /* at most 20000 per step, so the loop keeps consuming */
        for (int i = 0; feed->produced < due && i < 20000; i++)
            if (!demo_feed_one(feed))
                break;
    }
    rd_kafka_poll(feed->producer, 0);
}

/* The loop's hook: feed while the time lasts, then let the loop consume
 * what was fed. The time counts from the first paced event; waiting for the
 * cluster (assignment, the probe) may take 30 s more. */
static int demo_step(void *opaque, nx_run_t *r, int64_t now) {
    demo_feed_t *feed = opaque;
    if (!feed->loop_t0)
        feed->loop_t0 = now;
    int64_t start = feed->t0 ? feed->t0 : feed->loop_t0;
    double limit = feed->t0 ? feed->seconds : feed->seconds + 30;
    if ((double)(now - start) / 1000 >= limit) {
        if (!feed->t0)
            return 1;
        if (!feed->drain_at)
            feed->drain_at = now;
    }
    nx_kafka_stats_t ks;
    nx_kafka_stats(r->kafka, &ks);
    if (feed->drain_at) {
        /* time is up: no more events; those fed are still consumed (for 5 s
         * at most), so the summary counts them */
        if (ks.consumed >= feed->produced || now - feed->drain_at > 5000)
            return 1;
        rd_kafka_poll(feed->producer, 0);
    } else if (ks.assigned_partitions > 0) {
        /* feed once the consumer owns its partitions, so the first events
         * do not wait out the group join */
        demo_feed_step(feed, now, ks.produced);
    }
    return 0;
}

static void demo_usage(FILE *out) {
    fputs("usage: nextactd demo [--seconds S] [--rate R] [--users U] [-c CONF] [-X KEY=VALUE]...\n"
          "  -s, --seconds S     how long the generator feeds events (default 20)\n"
          "  -r, --rate R        events per second fed (default 20000)\n"
          "  -u, --users U       users the generator simulates (default 20000)\n"
          "  -c, --config CONF   configuration (default conf/demo.conf, mock cluster)\n"
          "  -X KEY=VALUE        override a configuration key (repeatable)\n"
          "  -h, --help          this text\n",
          out);
}

int nx_demo_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"seconds", required_argument, NULL, 's'}, {"rate", required_argument, NULL, 'r'},
        {"users", required_argument, NULL, 'u'},   {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    nx_config_overrides_t ov = {0};
    double seconds = 20, rate = 20000;
    long users = 20000;
    const char *conf = NULL;
    char err[1024];
    int opt, rc = 1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:r:u:c:X:h", opts, NULL)) != -1) {
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
        case 'X':
            if (nx_config_overrides_add(&ov, optarg) < 0)
                return 2;
            break;
        case 'h':
            demo_usage(stdout);
            return 0;
        default:
            demo_usage(stderr);
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 3600 || rate <= 0 || rate > 1e6 || users < 1 ||
        users > 10000000) {
        fprintf(stderr, "demo: --seconds in (0, 3600], --rate in (0, 1e6], --users in "
                        "[1, 1e7]\n");
        return 2;
    }
    nx_run_t r = {.demo = 1};
    demo_feed_t feed = {0};
    char state[] = "/tmp/nextactd-demo.XXXXXX";
    if (!mkdtemp(state)) {
        perror("demo: mkdtemp");
        return 1;
    }
    /* the embedded default: the shipped configuration, or -c CONF, with an
     * in-process mock cluster unless the file names real brokers */
    const char *path = conf ? conf : NX_SOURCE_DIR "/conf/demo.conf";
    if (!(r.cfg = nx_config_load_ex(path, ov.v, ov.n, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        rmdir(state);
        return NX_EXIT_CONFIG;
    }
    free(r.cfg->state_dir);
    r.cfg->state_dir = strdup(state);
    /* checked with the state directory the demo uses */
    if (nx_preflight_check(r.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_config_destroy(r.cfg);
        rmdir(state);
        return NX_EXIT_CONFIG;
    }
    nx_log_set_level(nx_log_level_parse(r.cfg->log_level));
    nx_run_install_signals();
    r.status_tty = isatty(STDERR_FILENO);
    int status;
    if (nx_run_setup(&r, &status, err, sizeof err) < 0) {
        rc = status;
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
    feed.seconds = seconds;
    fprintf(stderr,
            "nextactd demo: generator -> %s (%s) -> nextactd -> %s, %.0f events/s, %ld users, "
            "%.0f s\n",
            feed.topic, nx_kafka_brokers(r.kafka), r.cfg->kafka.output_topic, rate, users, seconds);
    nx_notify_ready(r.notify);
    nx_run_hook_t hook = {demo_step, &feed, 1.0};
    rc = nx_run_loop(&r, &hook);
    int stop = nx_run_stop(&r);
    if (rc == 0)
        rc = stop;

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
    printf("\n  latency from event produce to prediction %s: p50 %lld ms, p99 %lld ms\n",
           r.txn ? "committed" : "acknowledged", (long long)nx_run_latency_quantile(&r.lat, 0.5),
           (long long)nx_run_latency_quantile(&r.lat, 0.99));
out:
    if (feed.producer) {
        rd_kafka_flush(feed.producer, 1000);
        rd_kafka_destroy(feed.producer);
    }
    nx_gen_destroy(feed.gen);
    nx_run_teardown(&r);
    nx_config_destroy(r.cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", state);
    if (system(cmd) != 0)
        nx_warn("demo: could not remove %s", state);
    return rc;
}
