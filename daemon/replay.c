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

int nx_replay_main(int argc, char **argv) {
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
    nx_config_overrides_t ov = {0};
    const char *conf = NULL, *output = NULL, *summary = NULL, *ckpt = NULL, *mcsv = NULL;
    const char *truth_path = NULL;
    /* of an Avro container --output: snappy, half of null's size at about
     * its speed (deflate is smaller but much slower; bench/NOTES.md) */
    const char *ocf_codec = "snappy";
    long long every = 0;
    int opt, rc = 1;
    char err[1024];
    nx_config_t *cfg = NULL;
    nx_codec_t *codec = NULL;
    nx_pipeline_t *pipe = NULL;
    nx_event_t *evs = NULL;
    nx_truth_t *truth = NULL;
    float *oracle = NULL; /* (batch, classes) the truth of each event read */
    replay_out_t out = {0};
    FILE *mf = NULL;
    char *schema = NULL;
    uint64_t bad = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:X:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            conf = optarg;
            break;
        case 'X':
            if (nx_config_overrides_add(&ov, optarg) < 0)
                return 2;
            break;
        case O_OUTPUT:
            output = optarg;
            break;
        case O_SUMMARY:
            summary = optarg;
            break;
        case O_EVERY:
            every = atoll(optarg);
            break;
        case O_MCSV:
            mcsv = optarg;
            break;
        case O_CKPT:
            ckpt = optarg;
            break;
        case O_TRUTH:
            truth_path = optarg;
            break;
        case O_CODEC:
            if (strcmp(optarg, "null") != 0 && strcmp(optarg, "deflate") != 0 &&
                strcmp(optarg, "snappy") != 0) {
                fprintf(stderr, "replay: --codec is snappy, deflate or null\n");
                return 2;
            }
            ocf_codec = optarg;
            break;
        case 'h':
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
                  stdout);
            return 0;
        default:
            return 2;
        }
    }
    if (!conf || optind >= argc) {
        fprintf(stderr, "usage: nextactd replay -c CONF [options] INPUT...\n");
        return 2;
    }
    /* the oracle's scores ride in the store's pending examples: a daemon
     * could not load a checkpoint of that store */
    if (truth_path && ckpt) {
        fprintf(stderr, "replay: --truth and --checkpoint cannot be combined\n");
        return 2;
    }
    if (!(cfg = nx_config_load_ex(conf, ov.v, ov.n, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return NX_EXIT_CONFIG;
    }
    nx_log_set_level(nx_log_level_parse(cfg->log_level));

    /* output format follows the file name */
    if (output) {
        const char *fmt = ends_with(output, ".avro") ? "avro" : "json";
        if (strcmp(fmt, "avro") == 0 && strcmp(cfg->output.format, "avro") != 0)
            nx_notice("replay: %s is an Avro container: writing unframed Avro records", output);
        free(cfg->output.format);
        cfg->output.format = strdup(fmt);
        if (strcmp(fmt, "avro") == 0) {
            if (!(schema = slurp(cfg->output.schema))) {
                nx_err("replay: cannot read %s", cfg->output.schema);
                goto out;
            }
            if (!(out.ocf = nx_ocf_writer_open(output, schema, ocf_codec, (uint64_t)cfg->model.seed,
                                               err, sizeof err))) {
                nx_err("replay: %s", err);
                goto out;
            }
        } else if (strcmp(output, "-") == 0) {
            out.jsonl = stdout;
        } else if (!(out.jsonl = fopen(output, "w"))) {
            nx_err("replay: cannot create %s", output);
            goto out;
        }
    }
    if (every > 0) {
        mf = mcsv ? fopen(mcsv, "w") : (output && strcmp(output, "-") == 0 ? stderr : stdout);
        if (!mf) {
            nx_err("replay: cannot create %s", mcsv);
            goto out;
        }
    }

    if (!(codec = nx_codec_new(cfg, err, sizeof err))) {
        nx_err("replay: %s", err);
        goto out;
    }
    /* reproducible anywhere: the hash key comes from the seed */
    uint8_t key[NX_SIPHASH_KEY_LEN];
    for (int i = 0; i < NX_SIPHASH_KEY_LEN; i++)
        key[i] = (uint8_t)((uint64_t)cfg->model.seed >> (8 * (i % 8))) ^ (uint8_t)(0x5a + i);
    nx_pipeline_out_t po = {emit, &out};
    if (!(pipe = nx_pipeline_new(cfg, key, truth_path ? NX_PIPELINE_ORACLE : 0, &po, err,
                                 sizeof err))) {
        nx_err("replay: %s", err);
        goto out;
    }
    int batch = (int)cfg->kafka.poll_batch, K = cfg->event_types.n + 1;
    evs = malloc((size_t)batch * sizeof *evs);
    if (!evs)
        goto out;
    if (truth_path) {
        const char *names[NX_PIPELINE_MAX_CLASSES];
        for (int k = 0; k < K && k < NX_PIPELINE_MAX_CLASSES; k++)
            names[k] = nx_pipeline_class_name(pipe, k);
        if (!(truth = nx_truth_open(truth_path, names, K, err, sizeof err))) {
            nx_err("replay: --truth: %s", err);
            goto out;
        }
        if (!(oracle = malloc((size_t)batch * (size_t)K * sizeof *oracle)))
            goto out;
    }
    if (mf)
        metrics_row(mf, pipe, 1);

    int tty = isatty(STDERR_FILENO);
    int64_t t0 = nx_now_mono_ms(), last_progress = t0;
    uint64_t next_row = (uint64_t)every, events = 0;
    const char *topic0 = "replay";
    rc = 0;
    for (int f = optind; f < argc && rc == 0; f++) {
        nx_replay_source_t *src = nx_replay_source_open(cfg, codec, argv[f], err, sizeof err);
        if (!src) {
            nx_err("replay: %s", err);
            rc = 1;
            break;
        }
        int n;
        /* a replay is a backtest: no event is "in the future" */
        while ((n = nx_replay_source_next(src, evs, batch, INT64_MAX)) > 0) {
            /* prediction time = event time, so outputs are reproducible */
            /* (no nx_pipeline_tick: replay's maintenance and label
             * expiry run inside process, at fixed points of the input) */
            for (int i = 0; truth && i < n; i++) {
                if (nx_truth_next(truth, &evs[i], oracle + (size_t)i * (size_t)K, err, sizeof err) <
                    0) {
                    nx_err("replay: --truth: %s", err);
                    rc = 1;
                    break;
                }
            }
            if (rc)
                break;
            nx_pipeline_process_oracle(pipe, evs, oracle, (size_t)n, &topic0, evs[n - 1].ts_ms);
            events += (uint64_t)n;
            /* the full figures (AUC bins) only when a row is due */
            while (mf && events >= next_row) {
                metrics_row(mf, pipe, 0);
                next_row += (uint64_t)every;
            }
            int64_t now = nx_now_mono_ms();
            if (tty && now - last_progress >= 500) {
                progress(nx_replay_source_stats(src), events, (double)(now - t0) / 1000, 0);
                last_progress = now;
            }
        }
        const nx_replay_stats_t *rs = nx_replay_source_stats(src);
        bad += rs->bad;
        for (int i = 0; i < rs->n_first_bad; i++)
            nx_warn("replay: %s: %s %llu: %s", argv[f],
                    strcmp(nx_replay_source_format(src), "csv") == 0 ? "line" : "record",
                    (unsigned long long)rs->first_bad[i].where,
                    nx_codec_reason_name(rs->first_bad[i].reason));
        if (rs->bad)
            nx_notice("replay: %s: %llu bad record(s) skipped", argv[f],
                      (unsigned long long)rs->bad);
        /* records of a block that cannot be read (bad sync, size, CRC or
         * compressed data) are bad records too: counted, never silent.
         * Where a block's record count is unreadable or implausible the
         * loss is unknown: said so, and not guessed into bad_records. */
        if (rs->corrupt_blocks && !rs->unreadable_blocks) {
            nx_warn("replay: %s: %llu corrupt block(s) skipped, %llu record(s) in them lost",
                    argv[f], (unsigned long long)rs->corrupt_blocks,
                    (unsigned long long)rs->lost_records);
        } else if (rs->unreadable_blocks && rs->lost_records) {
            nx_warn("replay: %s: %llu corrupt block(s) skipped, %llu record(s) or more lost "
                    "(%llu block(s) with an unknown record count)",
                    argv[f], (unsigned long long)rs->corrupt_blocks,
                    (unsigned long long)rs->lost_records,
                    (unsigned long long)rs->unreadable_blocks);
        } else if (rs->unreadable_blocks) {
            nx_warn("replay: %s: %llu corrupt block(s) skipped, an unknown number of records lost "
                    "(%llu block(s) with an unknown record count)",
                    argv[f], (unsigned long long)rs->corrupt_blocks,
                    (unsigned long long)rs->unreadable_blocks);
        }
        bad += rs->lost_records;
        if (n < 0) {
            nx_err("replay: %s: %s", argv[f], nx_replay_source_error(src));
            rc = 1;
        }
        if (tty)
            progress(rs, events, (double)(nx_now_mono_ms() - t0) / 1000, 1);
        nx_replay_source_close(src);
    }
    nx_pipeline_finish(pipe);
    double secs = (double)(nx_now_mono_ms() - t0) / 1000;

    if (summary) {
        FILE *sf = strcmp(summary, "-") == 0 ? stdout : fopen(summary, "w");
        if (!sf) {
            nx_err("replay: cannot create %s", summary);
            rc = 1;
        } else {
            nx_pipeline_write_summary(pipe, sf, secs, bad);
            if (sf != stdout)
                fclose(sf);
        }
    }
    if (ckpt && nx_pipeline_save(pipe, ckpt, NULL, 0, err, sizeof err) < 0) {
        nx_err("replay: checkpoint: %s", err);
        rc = 1;
    }
    if (!summary) {
        nx_pipeline_stats_t s;
        nx_pipeline_stats(pipe, &s);
        char loss[32] = "no labelled example"; /* no log loss to show, not a NaN */
        if (isfinite(s.logloss))
            snprintf(loss, sizeof loss, "log loss %.4f", s.logloss);
        nx_info("replay: %llu events, %llu predictions, %llu bad, %.1f s (%.0f events/s), %s",
                (unsigned long long)s.events, (unsigned long long)s.predictions,
                (unsigned long long)bad, secs, secs > 0 ? (double)s.events / secs : 0, loss);
    }
out:
    if (out.ocf && nx_ocf_writer_close(out.ocf, err, sizeof err) < 0) {
        nx_err("replay: output: %s", err);
        rc = 1;
    }
    if (out.jsonl && out.jsonl != stdout)
        fclose(out.jsonl);
    else if (out.jsonl)
        fflush(stdout);
    if (mf && mf != stdout && mf != stderr)
        fclose(mf);
    free(evs);
    free(oracle);
    nx_truth_close(truth);
    free(schema);
    nx_pipeline_destroy(pipe);
    nx_codec_destroy(codec);
    nx_config_destroy(cfg);
    return rc;
}
