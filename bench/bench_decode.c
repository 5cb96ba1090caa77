/*
 * bench_decode.c: decode throughput of the validating codec, per core, and
 * replay read throughput from OCF (null, deflate) and CSV files.
 *
 * Usage: bench_decode [EVENTS]   (default 1,000,000; files go to /tmp)
 *
 * Prints one line per figure: events/s and ns/event, validation included.
 * Events are generated once with a fixed seed (the tests' generator), so
 * runs are comparable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ocf_writer.h"
#include "predenc.h"
#include "replay_source.h"
#include "test_codec_util.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Payloads laid end to end, with their offsets. */
typedef struct corpus {
    uint8_t *data;
    size_t *off; /* n + 1 entries */
    size_t n;
} corpus_t;

static int make_corpus(corpus_t *c, size_t n, int64_t schema_id) {
    c->data = malloc(n * 256); /* an event encodes in < 160 bytes */
    c->off = malloc((n + 1) * sizeof *c->off);
    if (!c->data || !c->off)
        return -1;
    c->n = n;
    c->off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        nx_codec_record_t rec = t_random_record();
        int64_t len = nx_codec_encode_event(&rec, schema_id, c->data + c->off[i], 256);
        if (len < 0)
            return -1;
        c->off[i + 1] = c->off[i] + (size_t)len;
    }
    return 0;
}

static void bench_codec(const char *label, nx_codec_t *codec, const corpus_t *c) {
    nx_event_t ev;
    uint64_t sink = 0, ok = 0;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) { /* best of 3: the machine is shared */
        double t0 = now_s();
        for (size_t i = 0; i < c->n; i++) {
            if (nx_codec_decode(codec, c->data + c->off[i], c->off[i + 1] - c->off[i], -1, T_NOW_MS,
                                &ev) == NX_CODEC_OK) {
                sink += ev.item;
                ok++;
            }
        }
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    printf("decode %-10s %10.0f events/s  %6.1f ns/event  (%zu events, %.1f%% ok, sink %llx)\n",
           label, (double)c->n / best, best * 1e9 / (double)c->n, c->n,
           100.0 * (double)ok / (3.0 * (double)c->n), (unsigned long long)(sink & 0xff));
}

static void bench_replay(const char *label, const nx_config_t *cfg, nx_codec_t *codec,
                         const char *path) {
    char err[256];
    nx_event_t evs[1024];
    double t0 = now_s();
    nx_replay_source_t *src = nx_replay_source_open(cfg, codec, path, err, sizeof err);
    if (!src) {
        printf("replay %s: %s\n", label, err);
        return;
    }
    size_t total = 0;
    int n;
    while ((n = nx_replay_source_next(src, evs, 1024, T_NOW_MS)) > 0)
        total += (size_t)n;
    double dt = now_s() - t0;
    printf("replay %-10s %10.0f events/s  %6.1f ns/event  (%zu events)\n", label,
           (double)total / dt, dt * 1e9 / (double)total, total);
    nx_replay_source_close(src);
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    char err[256];
    corpus_t raw = {0}, cfl = {0};
    nx_codec_t *craw = NULL, *ccfl = NULL;
    int rc = 1;

    if (make_corpus(&raw, n, -1) < 0 || make_corpus(&cfl, n, 1) < 0)
        goto out;
    craw = nx_codec_new(t_config("raw"), err, sizeof err);
    ccfl = nx_codec_new(t_config("confluent"), err, sizeof err);
    if (!craw || !ccfl || nx_codec_add_schema(ccfl, 1, t_event_schema, err, sizeof err) < 0) {
        fprintf(stderr, "bench_decode: %s\n", err);
        goto out;
    }
    printf("average payload %.1f bytes\n", (double)raw.off[raw.n] / (double)raw.n);
    bench_codec("raw", craw, &raw);
    bench_codec("confluent", ccfl, &cfl);

    /* prediction encoding, Avro binary with the Confluent header */
    {
        nx_config_t *cfg = t_config("raw");
        cfg->output.format = (char *)"confluent";
        nx_predenc_t *enc = nx_predenc_new(cfg, err, sizeof err);
        if (!enc)
            goto out;
        float probs[4] = {0.1f, 0.2f, 0.3f, 0.4f};
        nx_prediction_t pred = {.user_id = "user-123456",
                                .user_id_len = 11,
                                .event_ts_ms = T_NOW_MS,
                                .topic = "clicks",
                                .partition = 3,
                                .horizon_ms = 1800000,
                                .probs = probs};
        uint8_t out[256];
        uint64_t sink = 0;
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            pred.offset = (int64_t)i;
            pred.predicted_at_ms = T_NOW_MS + (int64_t)i;
            pred.model_version = (int64_t)i;
            sink += (uint64_t)nx_predenc_encode(enc, &pred, out, sizeof out) + out[20];
        }
        double dt = now_s() - t0;
        printf("predenc confluent %10.0f records/s %6.1f ns/record (sink %llx)\n", (double)n / dt,
               dt * 1e9 / (double)n, (unsigned long long)(sink & 0xff));
        nx_predenc_destroy(enc);
    }

    /* replay files */
    const char *codecs[] = {"null", "deflate"};
    for (int k = 0; k < 2; k++) {
        char path[256];
        snprintf(path, sizeof path, "/tmp/bench_decode_%d.%s.avro", (int)getpid(), codecs[k]);
        nx_ocf_writer_t *w =
            nx_ocf_writer_open(path, t_event_schema, codecs[k], 1, err, sizeof err);
        if (!w) {
            fprintf(stderr, "bench_decode: %s\n", err);
            goto out;
        }
        for (size_t i = 0; i < raw.n; i++) {
            if (nx_ocf_writer_append(w, raw.data + raw.off[i], raw.off[i + 1] - raw.off[i], err,
                                     sizeof err) < 0) {
                fprintf(stderr, "bench_decode: %s\n", err);
                nx_ocf_writer_close(w, err, sizeof err);
                goto out;
            }
        }
        if (nx_ocf_writer_close(w, err, sizeof err) < 0) {
            fprintf(stderr, "bench_decode: %s\n", err);
            goto out;
        }
        char label[32];
        snprintf(label, sizeof label, "ocf-%s", codecs[k]);
        bench_replay(label, t_config("raw"), craw, path);
        unlink(path);
    }
    {
        char path[256];
        snprintf(path, sizeof path, "/tmp/bench_decode_%d.csv", (int)getpid());
        FILE *fp = fopen(path, "w");
        if (!fp)
            goto out;
        /* Taobao UserBehavior shape: user,item,category,behavior,epoch_s */
        static const char *beh[] = {"pv", "pv", "pv", "cart", "fav", "buy"};
        for (size_t i = 0; i < n; i++)
            fprintf(fp, "%llu,%llu,%llu,%s,%lld\n", (unsigned long long)(t_rand() % 1000000),
                    (unsigned long long)(t_rand() % 4000000),
                    (unsigned long long)(t_rand() % 10000), beh[t_rand() % 6],
                    (long long)(1511500000 + (int64_t)(t_rand() % 800000)));
        fclose(fp);
        nx_config_t *cfg = t_config("raw");
        static char *cols[] = {"user_id", "item_id", "category", "event_type", "ts"};
        cfg->input.csv_columns.n = 5;
        for (int i = 0; i < 5; i++)
            cfg->input.csv_columns.v[i] = cols[i];
        cfg->input.csv_timestamp = (char *)"epoch_s";
        bench_replay("csv-taobao", cfg, craw, path);
        unlink(path);
    }
    rc = 0;
out:
    nx_codec_destroy(craw);
    nx_codec_destroy(ccfl);
    free(raw.data);
    free(raw.off);
    free(cfl.data);
    free(cfl.off);
    return rc;
}
