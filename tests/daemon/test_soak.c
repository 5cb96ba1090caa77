/*
 * test_soak.c: 100k malformed messages through nextactd on the real broker
 * must grow its resident memory by less than 1 MB.
 *
 * `nextactd run` consumes a fresh 2-partition topic. Warm-up rounds (bad
 * and good messages, each as many as the soak) run first, each until the
 * group's committed offsets reach the end offsets; VmRSS is read from
 * /proc/PID/status (the least of several readings, the daemon idle, with
 * one glibc arena that trims: see below). Then SOAK malformed
 * messages of every kind the codec rejects (truncated, trailing bytes,
 * garbage, negative and huge lengths, an empty payload, empty or over-long
 * user id, timestamp before 2000, unknown type), with a few good ones
 * between them, run the same way; VmRSS again; three times. Checks:
 * growth < 1 MB in a round (the smallest of the three: see main), every
 * bad message in the dead-letter topic, committed offsets at the end, exit
 * status 0 after SIGTERM.
 *
 * usage: test_soak NEXTACTD SOURCE_DIR [SOAK]
 */
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "kafka_fixture.h"

#define PARTS 2
/* Warm-up rounds, each as large as the soak. */
#define WARMUP_ROUNDS 2
/* RSS is the least of this many readings 200 ms apart, once idle. */
#define RSS_SAMPLES 10
/* A good message after every this many bad ones during the soak. */
#define GOOD_EVERY 100
/* Measured soak rounds (see main). */
#define SOAK_ROUNDS 3
/* The bound on resident memory growth a soak may show. */
#define RSS_GROWTH_MAX_KB 1024
/* Each phase must drain within this (s): 100k messages take a few here. */
#define PHASE_TIMEOUT_S 120

static char in_topic[128], out_topic[128], dlq_topic[128], group[160];
static long long n_bad, n_good;

static uint64_t rng_state = 0x50a450a450a4ULL;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A valid event of user u at a recent time. */
static nx_codec_record_t good_record(char *uid, size_t size, long long i) {
    /* 500 users: the warm-up sees them all, the store stops growing */
    snprintf(uid, size, "u%llu", (unsigned long long)(rnd() % 500));
    nx_codec_record_t rec = {
        .user_id = uid,
        .ts_ms = (int64_t)time(NULL) * 1000 - 3600000 + i % 1000,
        .event_type = "click",
        .item_id = "i1",
        .category = "c1",
        .price = 9.99,
        .has_quantity = 0,
        .session_id = "s1",
    };
    return rec;
}

/* A malformed payload of kind k into buf; returns its length. */
static size_t bad_payload(int k, uint8_t *buf, size_t cap, long long i) {
    char uid[300];
    nx_codec_record_t rec = good_record(uid, sizeof uid, i);
    int64_t n;
    switch (k) {
    case 0: /* truncated */
        n = nx_codec_encode_event(&rec, -1, buf, cap);
        return (size_t)(n / 2);
    case 1: /* a trailing byte */
        n = nx_codec_encode_event(&rec, -1, buf, cap);
        buf[n] = 0x02;
        return (size_t)n + 1;
    case 2: /* garbage */
        n = 1 + (int64_t)(rnd() % 200);
        for (int64_t j = 0; j < n; j++)
            buf[j] = (uint8_t)rnd();
        return (size_t)n;
    case 3: /* a negative string length (zig-zag 0x01 = -1) */
        n = nx_codec_encode_event(&rec, -1, buf, cap);
        buf[0] = 0x01;
        return (size_t)n;
    case 4: /* a huge string length: 0xff ff ff ff 0f */
        memcpy(buf, "\xff\xff\xff\xff\x0f", 5);
        return 5;
    case 5: /* empty user id */
        rec.user_id = "";
        break;
    case 6: /* over-long user id (max_user_id_len 128) */
        memset(uid, 'x', 200);
        uid[200] = '\0';
        rec.user_id = uid;
        break;
    case 7: /* before 2000 */
        rec.ts_ms = 86400000;
        break;
    case 8: /* unknown type */
        rec.event_type = "teleport";
        break;
    default: /* empty payload */
        return 0;
    }
    n = nx_codec_encode_event(&rec, -1, buf, cap);
    return n > 0 ? (size_t)n : 0;
}
#define BAD_KINDS 10

static int produce(rd_kafka_t *prod, const void *buf, size_t len, long long i) {
    char key[32];
    snprintf(key, sizeof key, "k%lld", i % 997);
    for (int tries = 0; tries < 1000; tries++) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(in_topic), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)buf, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return -1;
        rd_kafka_poll(prod, 10);
    }
    return -1;
}

/* Produces n_bad_now malformed and n_good_now good messages, interleaved,
 * and waits for their delivery. */
static int produce_batch(rd_kafka_t *prod, long long n_bad_now, long long every) {
    uint8_t buf[1024];
    char uid[300];
    for (long long i = 0; i < n_bad_now; i++) {
        size_t len = bad_payload((int)(i % BAD_KINDS), buf, sizeof buf, i);
        if (produce(prod, buf, len, i) < 0)
            return -1;
        n_bad++;
        if (i % every == every - 1) {
            nx_codec_record_t rec = good_record(uid, sizeof uid, i);
            int64_t n = nx_codec_encode_event(&rec, -1, buf, sizeof buf);
            if (n < 0 || produce(prod, buf, (size_t)n, i) < 0)
                return -1;
            n_good++;
        }
        if ((i & 1023) == 0)
            rd_kafka_poll(prod, 0);
    }
    return rd_kafka_flush(prod, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* Sum of the group's committed offsets on the input topic; -1 on error. */
static long long committed_sum(rd_kafka_t *rk) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, in_topic, p);
    long long sum = 0;
    if (rd_kafka_committed(rk, l, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        sum = -1;
    for (int i = 0; sum >= 0 && i < l->cnt; i++)
        sum += l->elems[i].offset > 0 ? l->elems[i].offset : 0;
    rd_kafka_topic_partition_list_destroy(l);
    return sum;
}

/* Waits until the committed offsets reach `end`; 0 or -1 on timeout. */
static int wait_committed(rd_kafka_t *rk, long long end) {
    time_t deadline = time(NULL) + PHASE_TIMEOUT_S;
    long long c = -1;
    while (time(NULL) < deadline) {
        c = committed_sum(rk);
        if (c >= end)
            return 0;
        usleep(200000);
    }
    fprintf(stderr, "committed %lld of %lld after %d s\n", c, end, PHASE_TIMEOUT_S);
    return -1;
}

/* VmRSS of pid in kB, -1 if unreadable. */
static long rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* The least VmRSS over RSS_SAMPLES readings, after a second of quiet. */
static long idle_rss_kb(pid_t pid) {
    long least = -1;
    sleep(1);
    for (int k = 0; k < RSS_SAMPLES; k++) {
        long v = rss_kb(pid);
        if (v >= 0 && (least < 0 || v < least))
            least = v;
        usleep(200000);
    }
    return least;
}

/* Resident kB per mapping of pid (from /proc/PID/smaps), to say where a
 * growth went when the check fails. */
#define MAX_MAPS 2048
typedef struct map_rss {
    unsigned long start;
    long rss_kb, huge_kb;
    char name[96];
} map_rss_t;

static int read_maps(pid_t pid, map_rss_t *m, int max) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    int n = -1;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char name[96] = "";
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %95s", &a, &b, name) >= 2 && strchr(line, '-') &&
            line[0] != ' ' && strncmp(line, "Rss", 3) != 0 && strchr(line, ':') != line + 3) {
            if (n + 1 >= max)
                break;
            n++;
            m[n] = (map_rss_t){.start = a};
            snprintf(m[n].name, sizeof m[n].name, "%s", name[0] ? name : "[anon]");
        } else if (n >= 0 && strncmp(line, "Rss:", 4) == 0) {
            m[n].rss_kb = strtol(line + 4, NULL, 10);
        } else if (n >= 0 && strncmp(line, "AnonHugePages:", 14) == 0) {
            m[n].huge_kb = strtol(line + 14, NULL, 10);
        }
    }
    if (f)
        fclose(f);
    return n + 1;
}

/* Prints the mappings whose resident size grew by 64 kB or more. */
static void print_growth(const map_rss_t *a, int na, const map_rss_t *b, int nb) {
    for (int j = 0; j < nb; j++) {
        long was = 0;
        for (int i = 0; i < na; i++)
            if (a[i].start == b[j].start)
                was = a[i].rss_kb;
        if (b[j].rss_kb - was >= 64)
            fprintf(stderr, "  grew: %lx %s %ld -> %ld kB (huge pages %ld kB)\n", b[j].start,
                    b[j].name, was, b[j].rss_kb, b[j].huge_kb);
    }
}

int main(int argc, char **argv) {
    char err[512];
    long long soak = 100000;
    if (argc < 3) {
        fprintf(stderr, "usage: test_soak NEXTACTD SOURCE_DIR [SOAK]\n");
        return 2;
    }
    if (argc > 3)
        soak = atoll(argv[3]);
    nx_fixture_topic_name(in_topic, sizeof in_topic, "soak-in");
    nx_fixture_topic_name(out_topic, sizeof out_topic, "soak-pred");
    nx_fixture_topic_name(dlq_topic, sizeof dlq_topic, "soak-dlq");
    snprintf(group, sizeof group, "%s-group", in_topic);
    if (nx_fixture_create_topic(in_topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(out_topic, PARTS, err, sizeof err) < 0 ||
        nx_fixture_create_topic(dlq_topic, 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        nx_fixture_print_log();
        return 1;
    }
    const char *pprops[] = {"linger.ms", "20", "queue.buffering.max.messages", "200000", NULL};
    rd_kafka_t *prod = nx_fixture_producer(err, sizeof err, pprops);
    rd_kafka_t *watch = prod ? nx_fixture_consumer(group, err, sizeof err, NULL) : NULL;
    if (!prod || !watch) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    char dir[] = "/tmp/test_soak.XXXXXX", conf[256], log[256];
    if (!mkdtemp(dir))
        return 1;
    snprintf(conf, sizeof conf, "%s/nextactd.conf", dir);
    snprintf(log, sizeof log, "%s/nextactd.log", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "state_dir = \"%s/state\";\n"
            "kafka: { brokers = \"%s\"; group_id = \"%s\"; input_topics = [\"%s\"];\n"
            "  output_topic = \"%s\"; dead_letter_topic = \"%s\"; commit_interval_ms = 200;\n"
            /* librdkafka's buffers capped, so their fill level does not
             * swamp the reading (fetch queue 1 MiB, produce queue 8 MiB) */
            "  consumer = { queued_max_messages_kbytes = \"1024\"; fetch_max_bytes = \"1048576\";\n"
            "    max_partition_fetch_bytes = \"262144\"; };\n"
            "  producer = { queue_buffering_max_kbytes = \"8192\"; }; };\n"
            "input: { writer_schema = \"%s/conf/schemas/event.avsc\"; };\n"
            "output: { schema = \"%s/conf/schemas/prediction.avsc\"; };\n"
            "checkpoint: { interval_s = 0; };\nmetrics: { listen = \"\"; };\n",
            dir, nx_fixture_brokers(), group, in_topic, out_topic, dlq_topic, argv[2], argv[2]);
    fclose(f);

    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr))
            _exit(127);
        /* one malloc arena that gives freed memory back (trim and mmap
         * thresholds of 64 KiB): otherwise RSS wanders by megabytes with
         * what librdkafka's threads freed last, hiding what is kept */
        setenv("GLIBC_TUNABLES",
               "glibc.malloc.arena_max=1:glibc.malloc.trim_threshold=65536:"
               "glibc.malloc.mmap_threshold=65536",
               1);
        execl(argv[1], argv[1], "run", "-c", conf, (char *)NULL);
        _exit(127);
    }

    /* warm-up: every path (decode, DLQ, prediction) allocates what it keeps */
    for (int r = 0; r < WARMUP_ROUNDS; r++) {
        CHECK(produce_batch(prod, soak, GOOD_EVERY) == 0);
        CHECK(wait_committed(watch, n_bad + n_good) == 0);
    }
    /* Three soak rounds, each measured: a leak grows every one (10 bytes
     * kept per malformed message is 1 MB a round), while a one-off step (a
     * huge page collapsed by khugepaged, a BLAS buffer page touched for the
     * first time, the heap's high-water mark rising when a busy machine lets
     * more messages pile up in flight) lands in one or two: CI saw +1.5 MB
     * and +7.3 MB of [heap] in two rounds under a CPU-bound neighbour. The
     * bound holds for the smallest growth. */
    static map_rss_t maps0[MAX_MAPS], maps1[MAX_MAPS];
    long growth[SOAK_ROUNDS];
    long least = LONG_MAX; /* growths may be negative: no -1 sentinel */
    for (int r = 0; r < SOAK_ROUNDS; r++) {
        long before = idle_rss_kb(pid);
        int n_maps0 = read_maps(pid, maps0, MAX_MAPS);
        time_t t0 = time(NULL);
        long long good0 = n_good;
        CHECK(produce_batch(prod, soak, GOOD_EVERY) == 0);
        CHECK(wait_committed(watch, n_bad + n_good) == 0);
        long after = idle_rss_kb(pid);
        growth[r] = after - before;
        printf("soak round %d: %lld malformed + %lld good messages in %ld s; VmRSS %ld kB -> %ld "
               "kB (%+ld kB)\n",
               r + 1, soak, n_good - good0, (long)(time(NULL) - t0), before, after, growth[r]);
        CHECK(before > 0 && after > 0);
        if (growth[r] >= RSS_GROWTH_MAX_KB / 4)
            print_growth(maps0, n_maps0, maps1, read_maps(pid, maps1, MAX_MAPS));
        if (growth[r] < least)
            least = growth[r];
    }
    CHECK(least < RSS_GROWTH_MAX_KB);

    /* every malformed message reached the dead-letter topic */
    long long dlq = nx_fixture_end_offsets(prod, dlq_topic, 1, NULL);
    CHECK_INT(dlq, n_bad);

    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    rd_kafka_consumer_close(watch);
    rd_kafka_destroy(watch);
    rd_kafka_destroy(prod);
    if (nx_check_failures) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "tail -n 30 %s 1>&2", log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    } else {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return nx_check_exit("test_soak");
}
