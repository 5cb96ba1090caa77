/*
 * test_replay.c: `nextactd replay` as a user runs it (a subprocess).
 *
 * - determinism: the same input, config and seed give byte-identical
 *   prediction files (Avro OCF and JSON lines) and checkpoints, however the
 *   input is read (batches of 1, 7, 1024 and 5000 events) and whatever the
 *   threads' timing (both threads on one CPU); another model seed gives
 *   other predictions (so the comparison can fail);
 * - the Avro output reads back with Avro C against its own schema, one
 *   record per event, each with the input offset it answers;
 * - --summary writes one JSON object with every documented key;
 * - --truth (the generator's truth file): the summary adds the oracle's log
 *   loss and AUCs, close to what the generator reports for the stream, and
 *   the model's excess log loss; the predictions are the same as without
 *   it; a truth file of another stream fails the replay, and --truth with
 *   --checkpoint is refused;
 * - --metrics-every N writes a CSV row each N events;
 * - CSV replay of the Taobao and REES46 samples in tests/data: events,
 *   predictions at the right line numbers, bad rows counted and reported
 *   with their line numbers, the replay going on;
 * - a damaged OCF input is survived (exit 0, fewer events);
 * - input that is neither OCF nor CSV fails (an OCF whose magic lost its
 *   first byte, a text file whose every row is bad): exit status 1;
 * - a block whose header is cut is reported as an unknown loss, never as
 *   "0 record(s) lost", and an absurd block record count adds nothing to
 *   bad_records.
 *
 * usage: test_replay NEXTACTD SOURCE_DIR
 */
#include <avro.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blas.h"
#include "check.h"

/* Events generated for the determinism runs: enough for some training
 * steps (batch 32) and several OCF blocks; about 1 s of replay. */
#define GEN_EVENTS    20000
#define METRICS_EVERY 5000
/* kafka.poll_batch's default: replay's batch size, so the granularity of
 * the metrics rows. */
#define POLL_BATCH 1024

static const char *nextactd, *srcdir;
static char dir[] = "/tmp/test_replay.XXXXXX";
/* >= 0: run() pins the child to this CPU (the trainer thread then takes
 * turns with the main thread instead of running beside it) */
static int pin_cpu = -1;

/* Runs argv (NULL-terminated) with stdout to out_path and stderr to
 * err_path (NULL = /dev/null); returns the exit status, -1 if it died. */
static int run(char *const argv[], const char *out_path, const char *err_path) {
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        if (pin_cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(pin_cpu, &set);
            if (sched_setaffinity(0, sizeof set, &set) < 0)
                _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* The whole file, NUL-terminated; caller frees. NULL if unreadable. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return b;
}

/* 1 when both files exist and are byte-identical. */
static int same_bytes(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    if (!same)
        fprintf(stderr, "%s (%zu bytes) and %s (%zu bytes) differ\n", a, la, b, lb);
    free(x);
    free(y);
    return same;
}

static void path_of(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", dir, name);
}

/* A configuration file in the temp dir: the common part (no broker is
 * needed by replay, but the table requires the keys) plus `extra`. */
static void write_conf(const char *name, const char *extra) {
    char path[512];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "log_level = \"warning\";\n"
            "kafka: { brokers = \"none\"; input_topics = [\"in\"]; output_topic = \"out\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "%s\n",
            srcdir, extra);
    fclose(f);
}

/* Value of "key": NUMBER in a flat JSON object; NAN when absent/null. */
static double json_num(const char *json, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p)
        return NAN;
    p += strlen(pat);
    if (strncmp(p, "null", 4) == 0)
        return NAN;
    return strtod(p, NULL);
}

/* `nextactd replay -c CONF [args...] INPUT`; returns the exit status. */
static int replay(const char *conf, const char *const *args, int n_args, const char *input,
                  const char *out_path, const char *err_path) {
    char cpath[512];
    char *argv[32];
    int k = 0;
    path_of(cpath, sizeof cpath, conf);
    argv[k++] = (char *)nextactd;
    argv[k++] = "replay";
    argv[k++] = "-c";
    argv[k++] = cpath;
    for (int i = 0; i < n_args && k < 30; i++)
        argv[k++] = (char *)args[i];
    argv[k++] = (char *)input;
    argv[k] = NULL;
    return run(argv, out_path, err_path);
}

/* Reads an OCF of predictions with Avro C; returns the records, checks
 * offsets grow by one from 0 (a generated file has no bad record). */
static long count_avro_predictions(const char *path) {
    avro_file_reader_t fr;
    if (avro_file_reader(path, &fr) != 0) {
        fprintf(stderr, "%s: %s\n", path, avro_strerror());
        return -1;
    }
    avro_schema_t schema = avro_file_reader_get_writer_schema(fr);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t v, f;
    avro_generic_value_new(iface, &v);
    long n = 0, bad_offsets = 0;
    while (avro_file_reader_read_value(fr, &v) == 0) {
        int64_t off = -1;
        if (avro_value_get_by_name(&v, "offset", &f, NULL) == 0)
            avro_value_get_long(&f, &off);
        bad_offsets += off != n;
        n++;
    }
    CHECK_INT(bad_offsets, 0);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    avro_file_reader_close(fr);
    return n;
}

/* Replays a copy of src with 64 bytes in its middle overwritten: exit 0,
 * not all events, and every record is either an event or a bad record. */
static void check_damaged(const char *src, const char *summ, const char *out, const char *err) {
    size_t len = 0;
    char *b = slurp(src, &len);
    CHECK(b != NULL && len > 4096);
    if (b && len > 4096) {
        char dmg[512];
        path_of(dmg, sizeof dmg, "damaged.avro");
        for (size_t i = len / 2; i < len / 2 + 64; i++)
            b[i] = (char)0xff; /* a run of 0xff: not a valid datum */
        FILE *f = fopen(dmg, "wb");
        CHECK(f && fwrite(b, 1, len, f) == len);
        if (f)
            fclose(f);
        const char *d_args[] = {"--summary", summ};
        CHECK_INT(replay("seed42.conf", d_args, 2, dmg, out, err), 0);
        char *ds = slurp(summ, NULL);
        double ev = json_num(ds, "events"), bad = json_num(ds, "bad_records");
        CHECK(ev < GEN_EVENTS && bad > 0);
        CHECK_INT(ev + bad, GEN_EVENTS);
        free(ds);
    }
    free(b);
}

static void test_determinism(void) {
    char in[512], a_avro[512], b_avro[512], c_avro[512], a_ckpt[512], b_ckpt[512];
    char a_json[512], b_json[512], summ[512], mcsv[512], err[512], out[512];
    path_of(in, sizeof in, "in.avro");
    path_of(a_avro, sizeof a_avro, "a.avro");
    path_of(b_avro, sizeof b_avro, "b.avro");
    path_of(c_avro, sizeof c_avro, "c.avro");
    path_of(a_ckpt, sizeof a_ckpt, "a.ckpt");
    path_of(b_ckpt, sizeof b_ckpt, "b.ckpt");
    path_of(a_json, sizeof a_json, "a.jsonl");
    path_of(b_json, sizeof b_json, "b.jsonl");
    path_of(summ, sizeof summ, "summary.json");
    path_of(mcsv, sizeof mcsv, "metrics.csv");
    path_of(err, sizeof err, "stderr.txt");
    path_of(out, sizeof out, "stdout.txt");

    char events[16];
    snprintf(events, sizeof events, "%d", GEN_EVENTS);
    char *gen[] = {(char *)nextactd, "gen",  "--events", events, "--users", "500", "--seed", "11",
                   "--codec",        "null", "--output", in,     NULL};
    CHECK_INT(run(gen, NULL, err), 0);

    char every[16];
    snprintf(every, sizeof every, "%d", METRICS_EVERY);
    char conf[1024];
    snprintf(conf, sizeof conf,
             "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
             "model: { seed = %d; };",
             srcdir, 42);
    write_conf("seed42.conf", conf);
    snprintf(conf, sizeof conf,
             "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
             "model: { seed = %d; };",
             srcdir, 43);
    write_conf("seed43.conf", conf);
    const char *a_args[] = {"--output",        a_avro, "--checkpoint",  a_ckpt, "--summary", summ,
                            "--metrics-every", every,  "--metrics-csv", mcsv};
    CHECK_INT(replay("seed42.conf", a_args, 10, in, out, err), 0);
    const char *b_args[] = {"--output", b_avro, "--checkpoint", b_ckpt};
    CHECK_INT(replay("seed42.conf", b_args, 4, in, out, err), 0);
    CHECK(same_bytes(a_avro, b_avro));
    CHECK(same_bytes(a_ckpt, b_ckpt));

    const char *ja[] = {"--output", a_json}, *jb[] = {"--output", b_json};
    CHECK_INT(replay("seed42.conf", ja, 2, in, out, err), 0);
    CHECK_INT(replay("seed42.conf", jb, 2, in, out, err), 0);
    CHECK(same_bytes(a_json, b_json));

    /* the input read in other batches, and both threads on one CPU: which
     * weights predict each event is fixed by the input alone */
    static const char *const polls[] = {"kafka.poll_batch=1", "kafka.poll_batch=7",
                                        "kafka.poll_batch=5000"};
    for (size_t i = 0; i < sizeof polls / sizeof polls[0]; i++) {
        const char *args[] = {"-X", polls[i], "--output", b_avro};
        CHECK_INT(replay("seed42.conf", args, 4, in, out, err), 0);
        if (!same_bytes(a_avro, b_avro))
            fprintf(stderr, "  (read with %s)\n", polls[i]);
        CHECK(same_bytes(a_avro, b_avro));
    }
    pin_cpu = sched_getcpu() >= 0 ? sched_getcpu() : 0;
    CHECK_INT(replay("seed42.conf", b_args, 4, in, out, err), 0);
    pin_cpu = -1;
    CHECK(same_bytes(a_avro, b_avro));
    CHECK(same_bytes(a_ckpt, b_ckpt));

    /* another seed: another model, other probabilities (the check above
     * would catch a difference) */
    const char *c_args[] = {"--output", c_avro};
    CHECK_INT(replay("seed43.conf", c_args, 2, in, out, err), 0);
    size_t la = 0, lc = 0;
    char *fa = slurp(a_avro, &la), *fc = slurp(c_avro, &lc);
    CHECK(fa && fc && (la != lc || memcmp(fa, fc, la) != 0));
    free(fa);
    free(fc);

    /* one record per event, read by Avro C, in each codec (a_avro has the
     * default, snappy); one line per event */
    CHECK_INT(count_avro_predictions(a_avro), GEN_EVENTS);
    char n_avro[512], d_avro[512], in_snappy[512], n2_avro[512];
    path_of(n_avro, sizeof n_avro, "n.avro");
    path_of(d_avro, sizeof d_avro, "d.avro");
    path_of(in_snappy, sizeof in_snappy, "in_snappy.avro");
    path_of(n2_avro, sizeof n2_avro, "n2.avro");
    const char *n_args[] = {"--output", n_avro, "--codec", "null"};
    const char *d_args[] = {"--output", d_avro, "--codec", "deflate"};
    CHECK_INT(replay("seed42.conf", n_args, 4, in, out, err), 0);
    CHECK_INT(replay("seed42.conf", d_args, 4, in, out, err), 0);
    CHECK_INT(count_avro_predictions(n_avro), GEN_EVENTS);
    CHECK_INT(count_avro_predictions(d_avro), GEN_EVENTS);
    /* a snappy input reads as the same events as the null one */
    char *gen_snappy[] = {
        (char *)nextactd, "gen",    "--events", events,    "--users", "500", "--seed", "11",
        "--codec",        "snappy", "--output", in_snappy, NULL};
    CHECK_INT(run(gen_snappy, NULL, err), 0);
    const char *n2_args[] = {"--output", n2_avro, "--codec", "null"};
    CHECK_INT(replay("seed42.conf", n2_args, 4, in_snappy, out, err), 0);
    CHECK(same_bytes(n_avro, n2_avro));
    char *j = slurp(a_json, NULL);
    long lines = 0;
    for (const char *p = j; p && (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    CHECK_INT(lines, GEN_EVENTS);
    CHECK_STR_HAS(j, "\"probabilities\":{\"click\":");
    free(j);

    /* the summary: one object with the documented keys */
    char *s = slurp(summ, NULL);
    CHECK(s != NULL);
    static const char *keys[] = {"events",   "predictions",        "bad_records",      "users",
                                 "seconds",  "events_per_second",  "labelled",         "logloss",
                                 "accuracy", "normalized_entropy", "calibration_error"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\": ", keys[i]);
        CHECK_STR_HAS(s, pat);
    }
    CHECK(s && s[0] == '{' && strchr(s, '}') && strrchr(s, '}')[1] == '\n');
    CHECK_STR_HAS(s, "\"auc\": {\"click\": ");
    CHECK_STR_HAS(s, "\"purchase\": ");
    CHECK_STR_HAS(s, "\"none\": ");
    CHECK_INT(json_num(s, "events"), GEN_EVENTS);
    CHECK_INT(json_num(s, "predictions"), GEN_EVENTS);
    CHECK_INT(json_num(s, "bad_records"), 0);
    CHECK(json_num(s, "users") > 0 && json_num(s, "users") <= 500);
    CHECK(json_num(s, "labelled") > GEN_EVENTS * 0.9);
    double ll = json_num(s, "logloss");
    CHECK(ll > 0 && ll < 1.386); /* learnt something: below ln 4, the uniform guess */
    double acc = json_num(s, "accuracy");
    CHECK(acc > 0 && acc <= 1);
    free(s);

    /* the metrics CSV: a header, then a row each METRICS_EVERY events */
    FILE *m = fopen(mcsv, "r");
    CHECK(m != NULL);
    if (m) {
        char line[1024];
        int rows = 0, cols0 = 0, bad = 0;
        while (fgets(line, sizeof line, m)) {
            int cols = 1;
            for (char *p = line; *p; p++)
                cols += *p == ',';
            if (rows == 0 && cols0 == 0) {
                cols0 = cols;
                CHECK(strncmp(line, "events,labelled,steps,window_logloss", 36) == 0);
                CHECK_STR_HAS(line, "window_auc_purchase");
                continue;
            }
            long long ev = strtoll(line, NULL, 10);
            /* rows come at batch ends: the first batch end at or past
             * each multiple of METRICS_EVERY */
            long long due = (long long)(rows + 1) * METRICS_EVERY;
            bad +=
                cols != cols0 || ev < due || ev >= due + POLL_BATCH || strstr(line, "nan") != NULL;
            rows++;
        }
        fclose(m);
        CHECK_INT(rows, GEN_EVENTS / METRICS_EVERY);
        CHECK_INT(bad, 0);
    }

    /* a damaged input: a block lost, the replay goes on (null and snappy
     * blocks; a snappy block's CRC catches what decoding would not) */
    check_damaged(in, summ, out, err);
    check_damaged(in_snappy, summ, out, err);
}

/* Writes len bytes of b to the temp file `name`; its path in out. */
static void write_file(char *out, size_t size, const char *name, const char *b, size_t len) {
    path_of(out, size, name);
    FILE *f = fopen(out, "wb");
    CHECK(f && fwrite(b, 1, len, f) == len);
    if (f)
        fclose(f);
}

/* Where the first block starts in an OCF image: after the header, which
 * ends with the sync marker that also closes the file. 0 if not found. */
static size_t first_block_at(const char *b, size_t len) {
    if (len < 32)
        return 0;
    const char *s = memmem(b, len, b + len - 16, 16);
    return s && s != b + len - 16 ? (size_t)(s - b) + 16 : 0;
}

/* Input that is neither an Avro container nor CSV is an error (exit 1),
 * not a replay of bad rows that exits 0. */
static void test_not_ocf_nor_csv(void) {
    char in[512], bad[512], err[512], summ[512];
    path_of(in, sizeof in, "in.avro");
    path_of(err, sizeof err, "notcsv.err");
    path_of(summ, sizeof summ, "notcsv.json");
    const char *args[] = {"--summary", summ};
    size_t len = 0;
    char *b = slurp(in, &len);
    CHECK(b != NULL && len > 4096);
    if (!b)
        return;
    b[0] = 'X'; /* "Obj\x01" -> "Xbj\x01" */
    write_file(bad, sizeof bad, "badmagic.avro", b, len);
    CHECK_INT(replay("seed42.conf", args, 2, bad, NULL, err), 1);
    char *e = slurp(err, NULL);
    CHECK_STR_HAS(e, "not CSV");
    CHECK_STR_HAS(e, "damaged");
    free(e);
    free(b);

    /* text, but not one row the configured columns can read */
    static const char text[] = "Dear reader,\nthis is a letter, not events.\n";
    write_file(bad, sizeof bad, "letter.txt", text, sizeof text - 1);
    CHECK_INT(replay("seed42.conf", args, 2, bad, NULL, err), 1);
    e = slurp(err, NULL);
    CHECK_STR_HAS(e, "all 2 row(s) bad");
    free(e);
}

/* A block whose header is cut: its records are lost, how many is unknown,
 * and the log says so instead of "0 record(s) lost". A block whose record
 * count says 2^31 - 1 over a block of 1 MiB: bad_records counts none of
 * it, the datums that are there are replayed, the loss is unknown. */
static void test_unknown_loss(void) {
    char in[512], bad[512], err[512], summ[512];
    path_of(in, sizeof in, "in.avro");
    path_of(err, sizeof err, "unknown.err");
    path_of(summ, sizeof summ, "unknown.json");
    const char *args[] = {"--summary", summ};
    size_t len = 0;
    char *b = slurp(in, &len);
    size_t at = b ? first_block_at(b, len) : 0;
    /* the first block's count (thousands of records) is a varint of 2+
     * bytes: cut after its first byte */
    CHECK(at > 0 && (unsigned char)b[at] >= 0x80);
    if (!b || at == 0) {
        free(b);
        return;
    }
    write_file(bad, sizeof bad, "cut_header.avro", b, at + 1);
    CHECK_INT(replay("seed42.conf", args, 2, bad, NULL, err), 0);
    char *e = slurp(err, NULL), *sj = slurp(summ, NULL);
    CHECK_STR_HAS(e, "1 corrupt block(s) skipped, an unknown number of records lost");
    CHECK(e && !strstr(e, " 0 record(s)"));
    CHECK_INT(json_num(sj, "events"), 0);
    CHECK_INT(json_num(sj, "bad_records"), 0);
    free(e);
    free(sj);

    /* the first block's count replaced by INT32_MAX (a 5-byte varint) */
    size_t k = at;
    while (k < len && ((unsigned char)b[k] & 0x80))
        k++;
    k++; /* past the count's last byte */
    static const unsigned char big[5] = {0xfe, 0xff, 0xff, 0xff, 0x0f}; /* zig-zag 2^32 - 2 */
    char *c = malloc(len + sizeof big);
    CHECK(c != NULL && k < len);
    if (c && k < len) {
        memcpy(c, b, at);
        memcpy(c + at, big, sizeof big);
        memcpy(c + at + sizeof big, b + k, len - k);
        size_t clen = at + sizeof big + (len - k);
        write_file(bad, sizeof bad, "big_count.avro", c, clen);
        CHECK_INT(replay("seed42.conf", args, 2, bad, NULL, err), 0);
        e = slurp(err, NULL);
        sj = slurp(summ, NULL);
        double bad_records = json_num(sj, "bad_records");
        CHECK(bad_records >= 0 && bad_records <= (double)clen); /* bounded by the bytes */
        CHECK_INT(bad_records, 0);
        CHECK_INT(json_num(sj, "events"), GEN_EVENTS); /* every datum is there */
        CHECK_STR_HAS(e, "an unknown number of records lost");
        free(e);
        free(sj);
    }
    free(c);
    free(b);
}

/* OpenBLAS kernels (model/blas.h): where the library fell back to its
 * generic kernels on a CPU with better ones, replay restarts itself with
 * OPENBLAS_CORETYPE set, once, and still does its job; a variable the user
 * set is obeyed (no restart). Runs on in.avro of test_determinism. */
static void test_blas_kernels(void) {
    char in[512], summ[512], err[512];
    path_of(in, sizeof in, "in.avro");
    path_of(summ, sizeof summ, "blas_summary.json");
    path_of(err, sizeof err, "blas_stderr.txt");
    const char *args[] = {"--summary", summ};
    /* what this process got: the library read the environment at load */
    const char *user_core = getenv("OPENBLAS_CORETYPE");
    const char *better = nx_blas_better_core();
    printf("test_replay: OpenBLAS here %s, better %s, OPENBLAS_CORETYPE %s\n", nx_blas_core(),
           better ? better : "none", user_core ? user_core : "unset");
    char *saved = user_core ? strdup(user_core) : NULL;

    unsetenv("OPENBLAS_CORETYPE");
    CHECK_INT(replay("seed42.conf", args, 2, in, NULL, err), 0);
    char *e = slurp(err, NULL);
    CHECK(e != NULL);
    char want[128];
    int restarts = 0;
    for (const char *q = e; q && (q = strstr(q, "restarting with OPENBLAS_CORETYPE=")); q++)
        restarts++;
    if (!user_core) { /* else this process's pick is not the library's own */
        CHECK_INT(restarts, better ? 1 : 0);
        if (better) {
            snprintf(want, sizeof want, "restarting with OPENBLAS_CORETYPE=%s\n", better);
            CHECK_STR_HAS(e, want);
        }
    } else {
        CHECK(restarts <= 1);
    }
    free(e);
    char *s = slurp(summ, NULL);
    CHECK_INT(json_num(s, "predictions"), GEN_EVENTS);
    free(s);

    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    CHECK_INT(replay("seed42.conf", args, 2, in, NULL, err), 0);
    e = slurp(err, NULL);
    CHECK(e && !strstr(e, "restarting with OPENBLAS_CORETYPE"));
    free(e);
    s = slurp(summ, NULL);
    CHECK_INT(json_num(s, "predictions"), GEN_EVENTS);
    free(s);

    if (saved)
        setenv("OPENBLAS_CORETYPE", saved, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
    free(saved);
}

/* Taobao UserBehavior: user,item,category,behavior,epoch seconds, no
 * header. Rows: 1-2 pv, 3 fav (skipped), 4 cart, 5 buy, 6 a timestamp
 * before 2000, 7 a missing column, 8 "soon", 9 pv. */
static void test_csv_taobao(void) {
    char in[512], out[512], err[512], summ[512];
    snprintf(in, sizeof in, "%s/tests/data/taobao_small.csv", srcdir);
    path_of(out, sizeof out, "taobao.jsonl");
    path_of(err, sizeof err, "taobao.err");
    path_of(summ, sizeof summ, "taobao.json");
    write_conf(
        "taobao.conf",
        "input: { framing = \"confluent\"; schema_dir = \"/nonexistent\";\n"
        "  fields: { user_id = \"user_id\"; timestamp = \"timestamp\"; type = \"type\";\n"
        "    item = \"item\"; category = \"category\"; price = \"\"; quantity = \"\";\n"
        "    session = \"\"; };\n"
        "  type_map = { pv = \"click\"; cart = \"cart\"; buy = \"purchase\"; fav = \"\"; };\n"
        "  csv: { columns = [\"user_id\", \"item\", \"category\", \"type\", \"timestamp\"];\n"
        "    header = false; timestamp = \"epoch_s\"; }; };");
    const char *args[] = {"--output", "-", "--summary", summ};
    CHECK_INT(replay("taobao.conf", args, 4, in, out, err), 0);
    char *s = slurp(summ, NULL), *e = slurp(err, NULL), *o = slurp(out, NULL);
    CHECK_INT(json_num(s, "events"), 5);
    CHECK_INT(json_num(s, "predictions"), 5);
    CHECK_INT(json_num(s, "bad_records"), 3);
    CHECK_INT(json_num(s, "users"), 3);
    CHECK_STR_HAS(e, "line 6: ts_too_old");
    CHECK_STR_HAS(e, "line 7: bad_row");
    CHECK_STR_HAS(e, "line 8: bad_timestamp");
    /* predictions answer lines 1, 2, 4, 5 and 9, in order */
    static const int want[] = {1, 2, 4, 5, 9};
    const char *p = o;
    for (int i = 0; i < 5; i++) {
        p = p ? strstr(p, "\"offset\":") : NULL;
        CHECK(p != NULL);
        if (!p)
            break;
        p += 9;
        CHECK_INT(strtol(p, NULL, 10), want[i]);
    }
    CHECK_STR_HAS(o, "\"user_id\":\"1000\",\"event_ts\":1511755000000");
    free(s);
    free(e);
    free(o);
}

/* REES46 (Kaggle "eCommerce behavior data"): a header line, datetime
 * "YYYY-MM-DD HH:MM:SS UTC", quoted fields with commas. Lines 2 view,
 * 3 cart, 4 remove_from_cart (skipped), 5 purchase, 6 price -1, 7 price
 * "cheap", 8 month 13, 9 no user id, 10 blank, 11 view with ms. */
static void test_csv_rees46(void) {
    char in[512], out[512], err[512], summ[512];
    snprintf(in, sizeof in, "%s/tests/data/rees46_small.csv", srcdir);
    path_of(out, sizeof out, "rees46.jsonl");
    path_of(err, sizeof err, "rees46.err");
    path_of(summ, sizeof summ, "rees46.json");
    write_conf("rees46.conf",
               "input: { framing = \"confluent\"; schema_dir = \"/nonexistent\";\n"
               "  fields: { user_id = \"user_id\"; timestamp = \"event_time\";\n"
               "    type = \"event_type\"; item = \"product_id\"; category = \"category_id\";\n"
               "    price = \"price\"; quantity = \"\"; session = \"user_session\"; };\n"
               "  type_map = { view = \"click\"; cart = \"cart\"; purchase = \"purchase\";\n"
               "    remove_from_cart = \"\"; };\n"
               "  csv: { columns = []; header = true; timestamp = \"datetime\"; }; };");
    const char *args[] = {"--output", "-", "--summary", summ};
    CHECK_INT(replay("rees46.conf", args, 4, in, out, err), 0);
    char *s = slurp(summ, NULL), *e = slurp(err, NULL), *o = slurp(out, NULL);
    CHECK_INT(json_num(s, "events"), 4);
    CHECK_INT(json_num(s, "predictions"), 4);
    CHECK_INT(json_num(s, "bad_records"), 4);
    CHECK_STR_HAS(e, "line 6: bad_price");
    CHECK_STR_HAS(e, "line 7: bad_number");
    CHECK_STR_HAS(e, "line 8: bad_timestamp");
    CHECK_STR_HAS(e, "line 9: empty_user_id");
    CHECK_STR_HAS(o, "\"user_id\":\"541312140\",\"event_ts\":1569888000000");
    CHECK_STR_HAS(o, "\"event_ts\":1569888011250,\"topic\":\"replay\",\"partition\":-1,"
                     "\"offset\":11");
    free(s);
    free(e);
    free(o);
}

/* --truth: the oracle on the same examples. */
static void test_truth(void) {
    char in[512], truth[512], other[512], err[512], summ[512], a[512], b[512], rep_path[512];
    path_of(in, sizeof in, "truth_in.avro");
    path_of(truth, sizeof truth, "truth.csv");
    path_of(other, sizeof other, "truth_other.csv");
    path_of(err, sizeof err, "truth.err");
    path_of(rep_path, sizeof rep_path, "truth.report");
    path_of(summ, sizeof summ, "truth.json");
    path_of(a, sizeof a, "truth_a.avro");
    path_of(b, sizeof b, "truth_b.avro");
    char events[16];
    snprintf(events, sizeof events, "%d", GEN_EVENTS);
    char *gen[] = {(char *)nextactd, "gen", "--events", events, "--users",  "500", "--seed", "12",
                   "--output",       in,    "--truth",  truth,  "--report", NULL};
    CHECK_INT(run(gen, NULL, rep_path), 0);
    /* the same number of events of another stream */
    char *gen2[] = {(char *)nextactd, "gen", "--events", events,    "--users", "500",
                    "--seed",         "13",  "--null",   "--truth", other,     NULL};
    CHECK_INT(run(gen2, NULL, NULL), 0);

    const char *args[] = {"--truth", truth, "--summary", summ, "--output", a};
    CHECK_INT(replay("seed42.conf", args, 6, in, NULL, err), 0);
    char *s = slurp(summ, NULL), *r = slurp(rep_path, NULL);
    double ll = json_num(s, "logloss"), oll = json_num(s, "oracle_logloss");
    double excess = json_num(s, "excess_logloss");
    const char *oauc = s ? strstr(s, "\"oracle_auc\": {") : NULL;
    CHECK(oauc != NULL);
    double opurchase = json_num(oauc, "purchase"), ocart = json_num(oauc, "cart");
    /* the generator's own oracle figure on the stream's labels (its set of
     * labelled examples differs from the replay's only at the stream's end) */
    const char *g = r ? strstr(r, "labelled: log loss ") : NULL;
    double gen_ll = g ? strtod(g + strlen("labelled: log loss "), NULL) : NAN;
    fprintf(stderr, "truth: model %.4f, oracle %.4f (gen: %.4f), excess %.4f\n", ll, oll, gen_ll,
            excess);
    CHECK(oll > 0 && oll < ll);
    CHECK(fabs(oll - gen_ll) < 0.01 * gen_ll);
    CHECK(fabs(excess - (ll / oll - 1)) < 1e-4);
    CHECK(opurchase > 0.8 && opurchase <= 1 && ocart > 0.6 && ocart <= 1);
    free(s);
    free(r);

    /* the oracle rides beside the model: the predictions are the same */
    const char *plain[] = {"--output", b};
    CHECK_INT(replay("seed42.conf", plain, 2, in, NULL, err), 0);
    CHECK(same_bytes(a, b));

    /* a truth file of another stream: refused at its first row */
    const char *wrong[] = {"--truth", other, "--summary", summ};
    CHECK_INT(replay("seed42.conf", wrong, 4, in, NULL, err), 1);
    char *e = slurp(err, NULL);
    CHECK_STR_HAS(e, "is not the stream's event 1");
    free(e);
    /* with --checkpoint: refused (the store would hold the oracle's scores) */
    const char *ck[] = {"--truth", truth, "--checkpoint", summ};
    CHECK_INT(replay("seed42.conf", ck, 4, in, NULL, err), 2);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_replay NEXTACTD SOURCE_DIR\n");
        return 2;
    }
    nextactd = argv[1];
    srcdir = argv[2];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_determinism();
    test_truth();
    test_blas_kernels();
    test_not_ocf_nor_csv();
    test_unknown_loss();
    test_csv_taobao();
    test_csv_rees46();
    if (nx_check_failures == 0) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "files kept in %s\n", dir);
    }
    return nx_check_exit("test_replay");
}
