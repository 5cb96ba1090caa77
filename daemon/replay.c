/* replay.c: `nextactd replay` (replay.h). */
#include "replay.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "log.h"
#include "ocf_writer.h"
#include "pipeline.h"
#include "replay_source.h"
#include "siphash.h"
#include "truth.h"

typedef struct replay_out {
    FILE *jsonl;          /* JSON lines, or NULL */
    nx_ocf_writer_t *ocf; /* Avro container, or NULL */
    uint64_t errors;
} replay_out_t;

static int emit(void *opaque, size_t index, const nx_event_t *ev, const void *rec, size_t len) {
    (void)index;
    (void)ev;
    replay_out_t *o = opaque;
    if (o->jsonl)
        return fwrite(rec, 1, len, o->jsonl) == len ? 0 : -1;
    if (o->ocf) {
        char err[256];
        if (nx_ocf_writer_append(o->ocf, rec, len, err, sizeof err) < 0) {
            if (o->errors++ == 0)
                nx_err("replay: output: %s", err);
            return -1;
        }
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    char tmp[4096];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0)
        fwrite(tmp, 1, r, m);
    fclose(f);
    fclose(m);
    return buf;
}

static void progress(const nx_replay_stats_t *rs, uint64_t events, double secs, int final) {
    double rate = secs > 0 ? (double)events / secs : 0;
    if (rs && rs->file_size > 0) {
        double frac = (double)rs->bytes_read / (double)rs->file_size;
        double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
        fprintf(stderr, "\r%llu events  %.0f events/s  %5.1f%%  ETA %.0f s   %s",
                (unsigned long long)events, rate, 100 * frac, eta, final ? "\n" : "");
    } else {
        fprintf(stderr, "\r%llu events  %.0f events/s   %s", (unsigned long long)events, rate,
                final ? "\n" : "");
    }
}

static void metrics_row(FILE *f, const nx_pipeline_t *pipe, int header) {
    nx_pipeline_stats_t s;
    nx_pipeline_stats(pipe, &s);
    if (header) {
        fputs("events,labelled,steps,window_logloss,window_accuracy", f);
        for (int k = 0; k < s.n_classes; k++)
            fprintf(f, ",window_auc_%s", nx_pipeline_class_name(pipe, k));
        fputs(",logloss,accuracy\n", f);
        return;
    }
    fprintf(f, "%llu,%llu,%llu,%.6f,%.6f", (unsigned long long)s.events,
            (unsigned long long)s.labelled, (unsigned long long)s.steps, s.window_logloss,
            s.window_accuracy);
    for (int k = 0; k < s.n_classes; k++)
        fprintf(f, ",%.6f", s.window_auc[k]);
    fprintf(f, ",%.6f,%.6f\n", s.logloss, s.accuracy);
}

/* The command line. */
typedef struct replay_opts {
    nx_config_overrides_t ov;
    const char *conf, *output, *summary, *ckpt, *mcsv, *truth_path;
    const char *ocf_codec;
    long long every;
} replay_opts_t;

/* What one replay run holds, from its outputs to its counters. */
typedef struct replay_run {
    nx_config_t *cfg;
    nx_codec_t *codec;
    nx_pipeline_t *pipe;
    nx_event_t *evs; /* one batch */
    int batch, n_classes;
    nx_truth_t *truth;
    float *oracle; /* (batch, classes) the truth of each event read */
    replay_out_t out;
    FILE *mf; /* --metrics-every rows */
    char *schema;
    uint64_t events, bad;
    uint64_t every, next_row; /* --metrics-every: its period, the next row's event count */
    int tty;
    int64_t t0, last_progress;
} replay_run_t;

static void usage(FILE *f) {
    fputs("usage: nextactd replay -c CONF [OPTIONS] INPUT...\n"
          "  INPUT               Avro container (.avro) or CSV files of events, in order\n"
          "  -c, --config CONF   configuration file (libconfig)\n"
          "  -X KEY=VALUE        override a configuration key (repeatable)\n"
          "  --output PATH|-     predictions: Avro container if PATH ends in .avro, else\n"
          "                      JSON lines (- = stdout)\n"
          "  --codec C           block codec of an .avro --output: snappy|deflate|null\n"
          "  --summary PATH|-    the run's summary as one JSON object (- = stdout)\n"
          "  --metrics-every N   progressive-validation metrics every N events\n"
          "  --metrics-csv PATH  where --metrics-every writes its CSV (default stdout)\n"
          "  --checkpoint PATH   the final model and state as a checkpoint\n"
          "  --truth FILE.csv    the generator's truth of the same stream (nextactd gen\n"
          "                      --truth): --summary adds the oracle's log loss and AUCs\n"
          "                      on the same examples and the model's excess log loss\n"
          "  -h, --help          this text\n",
          f);
}

/* Options into *o; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, replay_opts_t *o) {
    enum { O_OUTPUT = 256, O_SUMMARY, O_EVERY, O_CKPT, O_MCSV, O_CODEC, O_TRUTH };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, O_OUTPUT},
        {"summary", required_argument, NULL, O_SUMMARY},
        {"metrics-every", required_argument, NULL, O_EVERY},
        {"metrics-csv", required_argument, NULL, O_MCSV},
        {"checkpoint", required_argument, NULL, O_CKPT},
        {"codec", required_argument, NULL, O_CODEC},
        {"truth", required_argument, NULL, O_TRUTH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* of an Avro container --output: snappy, half of null's size at about
     * its speed (deflate is smaller but much slower; bench/NOTES.md) */
    o->ocf_codec = "snappy";
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:X:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->conf = optarg;
            break;
        case 'X':
            if (nx_config_overrides_add(&o->ov, optarg) < 0)
                return 2;
            break;
        case O_OUTPUT:
            o->output = optarg;
            break;
        case O_SUMMARY:
            o->summary = optarg;
            break;
        case O_EVERY:
            o->every = atoll(optarg);
            break;
        case O_MCSV:
            o->mcsv = optarg;
            break;
        case O_CKPT:
            o->ckpt = optarg;
            break;
        case O_TRUTH:
            o->truth_path = optarg;
            break;
        case O_CODEC:
            if (strcmp(optarg, "null") != 0 && strcmp(optarg, "deflate") != 0 &&
                strcmp(optarg, "snappy") != 0) {
                fprintf(stderr, "replay: --codec is snappy, deflate or null\n");
                return 2;
            }
            o->ocf_codec = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return 2;
        }
    }
    if (!o->conf || optind >= argc) {
        fprintf(stderr, "usage: nextactd replay -c CONF [options] INPUT...\n");
        return 2;
    }
    /* the oracle's scores ride in the store's pending examples: a daemon
     * could not load a checkpoint of that store */
    if (o->truth_path && o->ckpt) {
        fprintf(stderr, "replay: --truth and --checkpoint cannot be combined\n");
        return 2;
    }
    return -1;
}

/* The predictions' output (its format follows the file name) and the
 * metrics rows' file. */
static int open_outputs(replay_run_t *r, const replay_opts_t *o) {
    nx_config_t *cfg = r->cfg;
    char err[512];
    if (o->output) {
        const char *fmt = ends_with(o->output, ".avro") ? "avro" : "json";
        if (strcmp(fmt, "avro") == 0 && strcmp(cfg->output.format, "avro") != 0)
            nx_notice("replay: %s is an Avro container: writing unframed Avro records", o->output);
        free(cfg->output.format);
        cfg->output.format = strdup(fmt);
        if (strcmp(fmt, "avro") == 0) {
            if (!(r->schema = slurp(cfg->output.schema))) {
                nx_err("replay: cannot read %s", cfg->output.schema);
                return -1;
            }
            if (!(r->out.ocf = nx_ocf_writer_open(o->output, r->schema, o->ocf_codec,
                                                  (uint64_t)cfg->model.seed, err, sizeof err))) {
                nx_err("replay: %s", err);
                return -1;
            }
        } else if (strcmp(o->output, "-") == 0) {
            r->out.jsonl = stdout;
        } else if (!(r->out.jsonl = fopen(o->output, "w"))) {
            nx_err("replay: cannot create %s", o->output);
            return -1;
        }
    }
    if (o->every > 0) {
        r->mf = o->mcsv ? fopen(o->mcsv, "w")
                        : (o->output && strcmp(o->output, "-") == 0 ? stderr : stdout);
        if (!r->mf) {
            nx_err("replay: cannot create %s", o->mcsv);
            return -1;
        }
    }
    return 0;
}

/* Codec, pipeline (its user-id hash key from the seed, so a replay is
 * reproducible anywhere), batch buffers and the --truth reader. */
static int open_pipeline(replay_run_t *r, const replay_opts_t *o) {
    char err[1024];
    if (!(r->codec = nx_codec_new(r->cfg, err, sizeof err))) {
        nx_err("replay: %s", err);
        return -1;
    }
    uint8_t key[NX_SIPHASH_KEY_LEN];
    for (int i = 0; i < NX_SIPHASH_KEY_LEN; i++)
        key[i] = (uint8_t)((uint64_t)r->cfg->model.seed >> (8 * (i % 8))) ^ (uint8_t)(0x5a + i);
    nx_pipeline_out_t po = {emit, &r->out};
    if (!(r->pipe = nx_pipeline_new(r->cfg, key, o->truth_path ? NX_PIPELINE_ORACLE : 0, &po, err,
                                    sizeof err))) {
        nx_err("replay: %s", err);
        return -1;
    }
    r->batch = (int)r->cfg->kafka.poll_batch;
    r->n_classes = r->cfg->event_types.n + 1;
    if (!(r->evs = malloc((size_t)r->batch * sizeof *r->evs)))
        return -1;
    if (o->truth_path) {
        int K = r->n_classes;
        const char *names[NX_PIPELINE_MAX_CLASSES];
        for (int k = 0; k < K && k < NX_PIPELINE_MAX_CLASSES; k++)
            names[k] = nx_pipeline_class_name(r->pipe, k);
        if (!(r->truth = nx_truth_open(o->truth_path, names, K, err, sizeof err))) {
            nx_err("replay: --truth: %s", err);
            return -1;
        }
        if (!(r->oracle = malloc((size_t)r->batch * (size_t)K * sizeof *r->oracle)))
            return -1;
    }
    return 0;
}

/* A file's bad records and unreadable blocks: counted, never silent. Where
 * a block's record count is unreadable or implausible the loss is unknown:
 * said so, and not guessed into the bad records. */
static void report_bad(replay_run_t *r, const char *path, nx_replay_source_t *src) {
    const nx_replay_stats_t *rs = nx_replay_source_stats(src);
    r->bad += rs->bad;
    for (int i = 0; i < rs->n_first_bad; i++)
        nx_warn("replay: %s: %s %llu: %s", path,
                strcmp(nx_replay_source_format(src), "csv") == 0 ? "line" : "record",
                (unsigned long long)rs->first_bad[i].where,
                nx_codec_reason_name(rs->first_bad[i].reason));
    if (rs->bad)
        nx_notice("replay: %s: %llu bad record(s) skipped", path, (unsigned long long)rs->bad);
    if (rs->corrupt_blocks && !rs->unreadable_blocks) {
        nx_warn("replay: %s: %llu corrupt block(s) skipped, %llu record(s) in them lost", path,
                (unsigned long long)rs->corrupt_blocks, (unsigned long long)rs->lost_records);
    } else if (rs->unreadable_blocks && rs->lost_records) {
        nx_warn("replay: %s: %llu corrupt block(s) skipped, %llu record(s) or more lost "
                "(%llu block(s) with an unknown record count)",
                path, (unsigned long long)rs->corrupt_blocks, (unsigned long long)rs->lost_records,
                (unsigned long long)rs->unreadable_blocks);
    } else if (rs->unreadable_blocks) {
        nx_warn("replay: %s: %llu corrupt block(s) skipped, an unknown number of records lost "
                "(%llu block(s) with an unknown record count)",
                path, (unsigned long long)rs->corrupt_blocks,
                (unsigned long long)rs->unreadable_blocks);
    }
    r->bad += rs->lost_records;
}

/* One input file through the pipeline, batch by batch. Prediction time is
 * event time and no event is "in the future" (a replay is a backtest), so
 * outputs are reproducible; maintenance and label expiry run inside
 * process, at fixed points of the input (no nx_pipeline_tick). */
static int replay_file(replay_run_t *r, const char *path) {
    char err[1024];
    nx_replay_source_t *src = nx_replay_source_open(r->cfg, r->codec, path, err, sizeof err);
    if (!src) {
        nx_err("replay: %s", err);
        return 1;
    }
    const char *topic0 = "replay";
    int n, rc = 0, K = r->n_classes;
    while (rc == 0 && (n = nx_replay_source_next(src, r->evs, r->batch, INT64_MAX)) > 0) {
        for (int i = 0; r->truth && i < n; i++) {
            if (nx_truth_next(r->truth, &r->evs[i], r->oracle + (size_t)i * (size_t)K, err,
                              sizeof err) < 0) {
                nx_err("replay: --truth: %s", err);
                rc = 1;
                break;
            }
        }
        if (rc)
            break;
        nx_pipeline_process_oracle(r->pipe, r->evs, r->oracle, (size_t)n, &topic0,
                                   r->evs[n - 1].ts_ms);
        r->events += (uint64_t)n;
        /* the full figures (AUC bins) only when a row is due */
        while (r->mf && r->events >= r->next_row) {
            metrics_row(r->mf, r->pipe, 0);
            r->next_row += r->every;
        }
        int64_t now = nx_now_mono_ms();
        if (r->tty && now - r->last_progress >= 500) {
            progress(nx_replay_source_stats(src), r->events, (double)(now - r->t0) / 1000, 0);
            r->last_progress = now;
        }
    }
    report_bad(r, path, src);
    if (rc == 0 && n < 0) {
        nx_err("replay: %s: %s", path, nx_replay_source_error(src));
        rc = 1;
    }
    if (r->tty)
        progress(nx_replay_source_stats(src), r->events, (double)(nx_now_mono_ms() - r->t0) / 1000,
                 1);
    nx_replay_source_close(src);
    return rc;
}

/* Summary, checkpoint, or the one-line report. */
static int finish(replay_run_t *r, const replay_opts_t *o, double secs) {
    int rc = 0;
    char err[512];
    if (o->summary) {
        FILE *sf = strcmp(o->summary, "-") == 0 ? stdout : fopen(o->summary, "w");
        if (!sf) {
            nx_err("replay: cannot create %s", o->summary);
            rc = 1;
        } else {
            nx_pipeline_write_summary(r->pipe, sf, secs, r->bad);
            if (sf != stdout)
                fclose(sf);
        }
    }
    if (o->ckpt && nx_pipeline_save(r->pipe, o->ckpt, NULL, 0, err, sizeof err) < 0) {
        nx_err("replay: checkpoint: %s", err);
        rc = 1;
    }
    if (!o->summary) {
        nx_pipeline_stats_t s;
        nx_pipeline_stats(r->pipe, &s);
        char loss[32] = "no labelled example"; /* no log loss to show, not a NaN */
        if (isfinite(s.logloss))
            snprintf(loss, sizeof loss, "log loss %.4f", s.logloss);
        nx_info("replay: %llu events, %llu predictions, %llu bad, %.1f s (%.0f events/s), %s",
                (unsigned long long)s.events, (unsigned long long)s.predictions,
                (unsigned long long)r->bad, secs, secs > 0 ? (double)s.events / secs : 0, loss);
    }
    return rc;
}

static int close_run(replay_run_t *r) {
    int rc = 0;
    char err[512];
    if (r->out.ocf && nx_ocf_writer_close(r->out.ocf, err, sizeof err) < 0) {
        nx_err("replay: output: %s", err);
        rc = 1;
    }
    if (r->out.jsonl && r->out.jsonl != stdout)
        fclose(r->out.jsonl);
    else if (r->out.jsonl)
        fflush(stdout);
    if (r->mf && r->mf != stdout && r->mf != stderr)
        fclose(r->mf);
    free(r->evs);
    free(r->oracle);
    nx_truth_close(r->truth);
    free(r->schema);
    nx_pipeline_destroy(r->pipe);
    nx_codec_destroy(r->codec);
    nx_config_destroy(r->cfg);
    return rc;
}

int nx_replay_main(int argc, char **argv) {
    replay_opts_t o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    replay_run_t r = {0};
    char err[1024];
    if (!(r.cfg = nx_config_load_ex(o.conf, o.ov.v, o.ov.n, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return NX_EXIT_CONFIG;
    }
    nx_log_set_level(nx_log_level_parse(r.cfg->log_level));
    rc = 1;
    if (open_outputs(&r, &o) == 0 && open_pipeline(&r, &o) == 0) {
        if (r.mf)
            metrics_row(r.mf, r.pipe, 1);
        r.tty = isatty(STDERR_FILENO);
        r.t0 = r.last_progress = nx_now_mono_ms();
        r.every = r.next_row = (uint64_t)o.every;
        rc = 0;
        for (int f = optind; f < argc && rc == 0; f++)
            rc = replay_file(&r, argv[f]);
        nx_pipeline_finish(r.pipe);
        double secs = (double)(nx_now_mono_ms() - r.t0) / 1000;
        if (finish(&r, &o, secs) != 0)
            rc = 1;
    }
    if (close_run(&r) != 0)
        rc = 1;
    return rc;
}
