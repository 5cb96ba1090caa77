/*
 * test_replay_io.c: replay readers (OCF null/deflate, CSV Taobao and REES46
 * shaped) and the OCF writer.
 *
 * - OCF written by our writer and by Avro C's own value
 *   writer (an evolved schema, small blocks) reads back to the events the
 *   codec makes of the same payloads;
 * - our writer's files are byte-identical for one seed (null and deflate,
 *   several blocks), Avro C's own reader reads them back datum for datum,
 *   and writing leaves the process-wide rand() alone;
 * - damaged files (a datum, a sync marker, a truncated tail, deflate
 *   garbage) are reported and never stop the replay;
 * - the two CSV fixtures in tests/data give the expected events, skips and
 *   bad rows with their line numbers;
 * - input that is neither (an OCF with a damaged magic, binary bytes, a
 *   CSV whose every row is bad) is an error, at open or at its end;
 * - a block whose record count cannot be read, or is more than its bytes
 *   can hold, is an unknown loss (unreadable_blocks), never counted into
 *   lost_records, so lost and bad records stay bounded by the bytes read.
 */
#include <unistd.h>

#include "csv_reader.h"
#include "ocf_writer.h"
#include "replay_source.h"
#include "test_codec_util.h"

#define N_EVENTS 3000

static char tmpdir[] = "/tmp/test_replay_io.XXXXXX";

/* Reads a whole file into memory; caller frees. */
static uint8_t *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    rewind(fp);
    uint8_t *b = malloc(*len ? *len : 1);
    if (b && fread(b, 1, *len, fp) != *len) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len) {
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp)
        return;
    CHECK(fwrite(b, 1, len, fp) == len);
    fclose(fp);
}

/* Replays a file to the end; returns the number of events, checks each
 * event's offset grows. */
static uint64_t drain(const nx_config_t *cfg, nx_codec_t *codec, const char *path, int batch,
                      nx_replay_stats_t *st) {
    char err[256];
    nx_event_t evs[64];
    nx_replay_source_t *src = nx_replay_source_open(cfg, codec, path, err, sizeof err);
    CHECK(src != NULL);
    if (!src) {
        fprintf(stderr, "open %s: %s\n", path, err);
        return 0;
    }
    uint64_t total = 0;
    int64_t last = -1;
    int n;
    while ((n = nx_replay_source_next(src, evs, batch, T_NOW_MS)) > 0) {
        for (int i = 0; i < n; i++) {
            CHECK(evs[i].offset > last);
            last = evs[i].offset;
        }
        total += (uint64_t)n;
    }
    CHECK_EQ_I(n, 0);
    *st = *nx_replay_source_stats(src);
    nx_replay_source_close(src);
    return total;
}

static void test_ocf_round_trip(const char *codec_name) {
    char err[256], path[512];
    nx_codec_t *codec = nx_codec_new(t_config("raw"), err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    snprintf(path, sizeof path, "%s/rt-%s.avro", tmpdir, codec_name);
    static uint8_t payload[N_EVENTS][256];
    static size_t plen[N_EVENTS];
    nx_ocf_writer_t *w = nx_ocf_writer_open(path, t_event_schema, codec_name, 1, err, sizeof err);
    CHECK(w != NULL);
    if (!w) {
        nx_codec_destroy(codec);
        return;
    }
    for (int i = 0; i < N_EVENTS; i++) {
        nx_codec_record_t rec = t_random_record();
        int64_t n = nx_codec_encode_event(&rec, -1, payload[i], sizeof payload[i]);
        plen[i] = (size_t)n;
        CHECK(nx_ocf_writer_append(w, payload[i], plen[i], err, sizeof err) == 0);
    }
    CHECK(nx_ocf_writer_close(w, err, sizeof err) == 0);

    nx_replay_source_t *src = nx_replay_source_open(t_config("raw"), codec, path, err, sizeof err);
    CHECK(src != NULL);
    if (!src) {
        nx_codec_destroy(codec);
        return;
    }
    CHECK(strcmp(nx_replay_source_format(src), "ocf") == 0);
    nx_event_t evs[100];
    int n, seen = 0;
    while ((n = nx_replay_source_next(src, evs, 100, T_NOW_MS)) > 0) {
        for (int i = 0; i < n; i++) {
            int64_t k = evs[i].offset;
            CHECK(k >= 0 && k < N_EVENTS);
            if (k < 0 || k >= N_EVENTS)
                continue;
            nx_event_t want;
            CHECK_REASON(nx_codec_decode(codec, payload[k], plen[k], -1, T_NOW_MS, &want),
                         NX_CODEC_OK);
            CHECK_EQ_U(evs[i].user_id_len, want.user_id_len);
            CHECK(memcmp(evs[i].user_id, want.user_id, want.user_id_len) == 0);
            CHECK_EQ_I(evs[i].ts_ms, want.ts_ms);
            CHECK_EQ_I(evs[i].type, want.type);
            CHECK_EQ_U(evs[i].item, want.item);
            CHECK_EQ_U(evs[i].session, want.session);
            CHECK_EQ_I(evs[i].partition, -1);
            seen++;
        }
    }
    const nx_replay_stats_t *st = nx_replay_source_stats(src);
    CHECK_EQ_I(seen, N_EVENTS);
    CHECK_EQ_U(st->records, N_EVENTS);
    CHECK_EQ_U(st->corrupt_blocks, 0);
    CHECK_EQ_U(st->bytes_read, st->file_size);
    nx_replay_source_close(src);
    nx_codec_destroy(codec);
}

/* Writes n datums (t_random_record from a fixed state) with our writer. */
static void write_ocf(const char *path, const char *codec_name, uint64_t seed, int n,
                      uint8_t (*payload)[256], size_t *plen) {
    char err[256];
    uint64_t saved = t_rng_state;
    t_rng_state = 0x1234;
    nx_ocf_writer_t *w =
        nx_ocf_writer_open(path, t_event_schema, codec_name, seed, err, sizeof err);
    CHECK(w != NULL);
    for (int i = 0; w && i < n; i++) {
        nx_codec_record_t rec = t_random_record();
        int64_t len = nx_codec_encode_event(&rec, -1, payload[i], 256);
        CHECK(len > 0);
        plen[i] = (size_t)len;
        CHECK(nx_ocf_writer_append(w, payload[i], plen[i], err, sizeof err) == 0);
    }
    CHECK(nx_ocf_writer_close(w, err, sizeof err) == 0);
    t_rng_state = saved;
}

/* Our writer: byte-identical files from one seed (several blocks, both
 * codecs), another seed changes only the sync markers, Avro C's reader
 * reads every datum back to the same bytes, and rand() is left alone. */
static void test_ocf_writer_deterministic(const char *codec_name) {
    enum { N = 40000 }; /* ~2.5 MB of datums: three 1 MiB blocks */
    static uint8_t payload[N][256];
    static size_t plen[N];
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/det-a-%s.avro", tmpdir, codec_name);
    snprintf(b, sizeof b, "%s/det-b-%s.avro", tmpdir, codec_name);
    snprintf(c, sizeof c, "%s/det-c-%s.avro", tmpdir, codec_name);

    srand(42);
    int r_first = rand();
    srand(42);
    write_ocf(a, codec_name, 7, N, payload, plen);
    CHECK_EQ_I(rand(), r_first); /* the process-wide rand() was not reseeded */
    write_ocf(b, codec_name, 7, N, payload, plen);
    write_ocf(c, codec_name, 8, N, payload, plen);

    size_t la, lb, lc;
    uint8_t *fa = slurp(a, &la), *fb = slurp(b, &lb), *fc = slurp(c, &lc);
    CHECK(fa && fb && fc);
    if (!fa || !fb || !fc)
        goto out;
    CHECK_EQ_U(la, lb);
    CHECK(la == lb && memcmp(fa, fb, la) == 0);
    CHECK_EQ_U(la, lc); /* same data, other marker */
    CHECK(la != lc || memcmp(fa, fc, la) != 0);
    /* the header's marker closes the file, and there are several blocks */
    const uint8_t *sync = fa + la - 16;
    int markers = 0;
    for (const uint8_t *p = fa; (p = memmem(p, la - (size_t)(p - fa), sync, 16)) != NULL; p++)
        markers++;
    CHECK(markers >= 3); /* header + at least two blocks */

    /* Avro C reads it back: each value re-encodes to the datum written */
    avro_file_reader_t fr;
    CHECK(avro_file_reader(a, &fr) == 0);
    avro_schema_t wschema = avro_file_reader_get_writer_schema(fr);
    avro_value_iface_t *iface = avro_generic_class_from_schema(wschema);
    avro_value_t v;
    avro_generic_value_new(iface, &v);
    static char enc[256];
    avro_writer_t mem = avro_writer_memory(enc, sizeof enc);
    int i = 0, mismatches = 0;
    while (avro_file_reader_read_value(fr, &v) == 0) {
        avro_writer_reset(mem);
        CHECK(avro_value_write(mem, &v) == 0);
        int64_t len = avro_writer_tell(mem);
        if (i >= N || len != (int64_t)plen[i] || memcmp(enc, payload[i], plen[i]) != 0)
            mismatches++;
        i++;
    }
    CHECK_EQ_I(i, N);
    CHECK_EQ_I(mismatches, 0);
    avro_writer_free(mem);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(wschema);
    avro_file_reader_close(fr);

    /* and ours */
    char err[256];
    nx_codec_t *codec = nx_codec_new(t_config("raw"), err, sizeof err);
    CHECK(codec != NULL);
    if (codec) {
        nx_replay_stats_t st;
        CHECK_EQ_U(drain(t_config("raw"), codec, a, 64, &st), N);
        CHECK_EQ_U(st.corrupt_blocks, 0);
        CHECK_EQ_U(st.bad, 0);
        nx_codec_destroy(codec);
    }
    /* refusals at open */
    CHECK(nx_ocf_writer_open(c, t_event_schema, "lz4", 1, err, sizeof err) == NULL);
    CHECK(nx_ocf_writer_open(c, "{not json", "null", 1, err, sizeof err) == NULL);
    CHECK(nx_ocf_writer_open("/nonexistent/x.avro", t_event_schema, "null", 1, err, sizeof err) ==
          NULL);
out:
    free(fa);
    free(fb);
    free(fc);
}

/* Avro C writes (its own value path, small deflate blocks, an evolved
 * schema with a bytes user id and an enum type); we read. */
static void test_ocf_from_avro_c(void) {
    static const char schema_json[] =
        "{\"type\":\"record\",\"name\":\"X\",\"fields\":["
        "{\"name\":\"extra\",\"type\":{\"type\":\"map\",\"values\":\"double\"}},"
        "{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":\"K\",\"symbols\":"
        "[\"pv\",\"cart\",\"buy\",\"fav\"]}},"
        "{\"name\":\"user_id\",\"type\":\"bytes\"},{\"name\":\"ts\",\"type\":\"long\"},"
        "{\"name\":\"item_id\",\"type\":\"long\"}]}";
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/avroc.avro", tmpdir);
    avro_schema_t schema;
    CHECK(avro_schema_from_json_literal(schema_json, &schema) == 0);
    avro_file_writer_t fw;
    CHECK(avro_file_writer_create_with_codec(path, schema, &fw, "deflate", 2048) == 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    static const char *kinds[] = {"pv", "cart", "buy", "fav"};
    int want_events = 0;
    for (int i = 0; i < N_EVENTS; i++) {
        avro_value_t v, f;
        char item[24];
        nx_codec_record_t rec = t_random_record();
        rec.event_type = kinds[i % 4];
        want_events += i % 4 != 3; /* fav is skipped */
        snprintf(item, sizeof item, "%d", i);
        rec.item_id = item;
        avro_generic_value_new(iface, &v);
        for (size_t k = 0; k < 5; k++) {
            const char *name;
            char tmp[64];
            int mapped;
            avro_value_get_by_index(&v, k, &f, &name);
            const char *text = t_field_text(&rec, name, tmp, sizeof tmp, &mapped);
            if (mapped)
                t_set_field(&f, text);
            else
                t_fill_random(&f, 1);
        }
        CHECK(avro_file_writer_append_value(fw, &v) == 0);
        avro_value_decref(&v);
    }
    CHECK(avro_file_writer_close(fw) == 0);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);

    nx_codec_t *codec = nx_codec_new(t_config("confluent"), err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    nx_replay_stats_t st;
    uint64_t n = drain(t_config("confluent"), codec, path, 64, &st);
    CHECK_EQ_U(n, (uint64_t)want_events);
    CHECK_EQ_U(st.skipped, (uint64_t)(N_EVENTS - want_events));
    CHECK_EQ_U(st.bad, 0);
    CHECK_EQ_U(st.corrupt_blocks, 0);

    /* damage: flip bits all over a copy; the replay must go on to the end
     * and account for everything */
    size_t len;
    uint8_t *b = slurp(path, &len);
    CHECK(b != NULL);
    if (b) {
        char bad[600];
        snprintf(bad, sizeof bad, "%s.bad", path);
        for (int round = 0; round < 20; round++) {
            uint8_t *c = malloc(len);
            memcpy(c, b, len);
            for (int k = 0; k < 8; k++) {
                size_t at = 600 + t_rand() % (len - 600); /* past the header */
                c[at] ^= (uint8_t)(1u << (t_rand() % 8));
            }
            size_t clen = round % 4 == 0 ? len - t_rand() % (len / 2) : len;
            spit(bad, c, clen);
            n = drain(t_config("confluent"), codec, bad, 64, &st);
            CHECK(n < (uint64_t)want_events || round % 4); /* something was lost */
            CHECK(st.corrupt_blocks > 0 || st.bad > 0 || clen < len);
            free(c);
        }
        free(b);
    }
    nx_codec_destroy(codec);
}

/* A damaged datum in a null-codec file: the rest of its block is lost,
 * counted, and the blocks after it are read. */
/* 1000 clicks of users "user00000".."user00999" (fixed length: findable in
 * the file) written by Avro C's own container writer, 4 KiB blocks. */
static void write_avro_c_clicks(const char *path, const char *codec_name) {
    avro_schema_t schema;
    CHECK(avro_schema_from_json_literal(t_event_schema, &schema) == 0);
    avro_file_writer_t fw;
    CHECK(avro_file_writer_create_with_codec(path, schema, &fw, codec_name, 4096) == 0);
    for (int i = 0; i < 1000; i++) {
        uint8_t buf[256];
        char user[16];
        snprintf(user, sizeof user, "user%05d", i);
        nx_codec_record_t rec = {
            .user_id = user, .ts_ms = 1700000000000LL + i, .event_type = "click", .price = NAN};
        int64_t n = nx_codec_encode_event(&rec, -1, buf, sizeof buf);
        CHECK(avro_file_writer_append_encoded(fw, buf, n) == 0);
    }
    CHECK(avro_file_writer_close(fw) == 0);
    avro_schema_decref(schema);
}

/* Snappy blocks written by Avro C (interoperability) read back whole; a
 * block whose CRC-32 does not match its data is lost, counted, and the
 * next block is read. */
static void test_ocf_snappy_crc(void) {
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/snappy.avro", tmpdir);
    write_avro_c_clicks(path, "snappy");
    nx_codec_t *codec = nx_codec_new(t_config("raw"), err, sizeof err);
    CHECK(codec != NULL);
    nx_replay_stats_t st;
    CHECK_EQ_U(drain(t_config("raw"), codec, path, 64, &st), 1000);
    CHECK_EQ_U(st.corrupt_blocks, 0);

    size_t len;
    uint8_t *b = slurp(path, &len);
    CHECK(b != NULL && len > 16);
    if (b && len > 16) {
        /* the first block's CRC: the 4 bytes before its closing marker */
        uint8_t sync[16];
        memcpy(sync, b + len - 16, 16);
        uint8_t *s1 = memmem(b, len, sync, 16);
        uint8_t *s2 = s1 ? memmem(s1 + 16, len - (size_t)(s1 + 16 - b), sync, 16) : NULL;
        CHECK(s2 != NULL && s2 + 16 < b + len);
        if (s2) {
            s2[-1] ^= 0x01;
            spit(path, b, len);
            uint64_t n = drain(t_config("raw"), codec, path, 64, &st);
            CHECK_EQ_U(st.corrupt_blocks, 1);
            CHECK(st.lost_records > 0 && n > 0);
            CHECK_EQ_U(n + st.lost_records, 1000);
        }
    }
    free(b);
    nx_codec_destroy(codec);
}

static void test_ocf_corrupt_block(void) {
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/corrupt.avro", tmpdir);
    write_avro_c_clicks(path, "null");

    size_t len;
    uint8_t *b = slurp(path, &len);
    CHECK(b != NULL);
    if (!b)
        return;
    /* user00500's length byte (9 -> zig-zag 0x12) becomes -1 */
    uint8_t *hit = memmem(b, len, "user00500", 9);
    CHECK(hit != NULL && hit[-1] == 0x12);
    if (!hit) {
        free(b);
        return;
    }
    hit[-1] = 0x01;
    spit(path, b, len);
    nx_codec_t *codec = nx_codec_new(t_config("raw"), err, sizeof err);
    CHECK(codec != NULL);
    nx_replay_stats_t st;
    uint64_t n = drain(t_config("raw"), codec, path, 64, &st);
    CHECK_EQ_U(st.records + st.lost_records, 1000);
    CHECK_EQ_U(n + st.lost_records + st.bad, 1000);
    CHECK(st.lost_records > 0 && st.lost_records < 200);
    CHECK_EQ_U(st.corrupt_blocks, 1);
    CHECK(st.n_first_bad >= 1 && st.first_bad[0].where == 500);

    /* a damaged sync marker: the block is lost, reading goes on */
    hit[-1] = 0x12;
    uint8_t sync[16];
    memcpy(sync, b + len - 16, 16);         /* every block ends with the marker */
    uint8_t *s1 = memmem(b, len, sync, 16); /* the header's copy */
    uint8_t *s2 = s1 ? memmem(s1 + 16, len - (size_t)(s1 + 16 - b), sync, 16) : NULL;
    CHECK(s2 != NULL && s2 + 16 < b + len);
    if (s2)
        s2[3] ^= 0xff;
    spit(path, b, len);
    n = drain(t_config("raw"), codec, path, 64, &st);
    if (!(n < 1000 && n > 800))
        fprintf(stderr, "sync damage: n %llu corrupt %llu lost %llu records %llu\n",
                (unsigned long long)n, (unsigned long long)st.corrupt_blocks,
                (unsigned long long)st.lost_records, (unsigned long long)st.records);
    CHECK(n < 1000 && n > 800);
    CHECK(st.corrupt_blocks >= 1);
    /* and a file cut in its last block */
    if (s2)
        s2[3] ^= 0xff;
    spit(path, b, len - 100);
    n = drain(t_config("raw"), codec, path, 64, &st);
    CHECK(n < 1000 && n > 800);
    CHECK_EQ_U(st.corrupt_blocks, 1);
    free(b);
    nx_codec_destroy(codec);
}

/* The offsets where the blocks of an OCF image start (after the header
 * and after each block's closing sync marker); returns how many, at most
 * max. */
static int block_starts(const uint8_t *b, size_t len, size_t *at, int max) {
    int n = 0;
    const uint8_t *sync = b + len - 16;
    for (const uint8_t *p = b; n < max && (p = memmem(p, len - (size_t)(p - b), sync, 16)) != NULL;
         p += 16) {
        if (p + 16 < b + len)
            at[n++] = (size_t)(p + 16 - b);
    }
    return n;
}

/* A copy of b with the record count of the block at `at` replaced by the
 * varint `v` (vlen bytes); caller frees. */
static uint8_t *with_count(const uint8_t *b, size_t len, size_t at, const uint8_t *v, size_t vlen,
                           size_t *out_len) {
    size_t k = at;
    while (k < len && (b[k] & 0x80))
        k++;
    k++; /* past the old count */
    uint8_t *c = malloc(len + vlen);
    if (!c || k > len) {
        free(c);
        return NULL;
    }
    memcpy(c, b, at);
    memcpy(c + at, v, vlen);
    memcpy(c + at + vlen, b + k, len - k);
    *out_len = at + vlen + (len - k);
    return c;
}

/* INT32_MAX as a zig-zag varint: the largest count the reader takes from a
 * header, far more than any 4 KiB block holds. */
static const uint8_t huge_count[5] = {0xfe, 0xff, 0xff, 0xff, 0x0f};

/* Block counts that cannot be read or cannot be true: the loss is
 * unknown (unreadable_blocks), lost_records counts none of it. */
static void test_ocf_unknown_loss(void) {
    char err[256], path[512], dmg[600];
    snprintf(path, sizeof path, "%s/unknown.avro", tmpdir);
    snprintf(dmg, sizeof dmg, "%s/unknown-dmg.avro", tmpdir);
    write_avro_c_clicks(path, "null");
    nx_codec_t *codec = nx_codec_new(t_config("raw"), err, sizeof err);
    CHECK(codec != NULL);
    size_t len, at[64];
    uint8_t *b = slurp(path, &len);
    int n_blocks = b ? block_starts(b, len, at, 64) : 0;
    CHECK(n_blocks >= 4);
    if (!codec || n_blocks < 4) {
        free(b);
        nx_codec_destroy(codec);
        return;
    }
    nx_replay_stats_t st;

    /* the file cut inside the second block's count (a 2-byte varint) */
    CHECK(b[at[1]] & 0x80);
    spit(dmg, b, at[1] + 1);
    uint64_t n = drain(t_config("raw"), codec, dmg, 64, &st);
    CHECK(n > 0 && n < 1000);
    CHECK_EQ_U(st.corrupt_blocks, 1);
    CHECK_EQ_U(st.unreadable_blocks, 1);
    CHECK_EQ_U(st.lost_records, 0);

    /* the second block's count overwritten with a varint that never ends:
     * its records are unknown, the blocks after it are read */
    uint8_t *c = malloc(len);
    memcpy(c, b, len);
    memset(c + at[1], 0xff, 2);
    spit(dmg, c, len);
    n = drain(t_config("raw"), codec, dmg, 64, &st);
    CHECK(n > 800 && n < 1000);
    CHECK_EQ_U(st.unreadable_blocks, 1);
    CHECK_EQ_U(st.lost_records, 0);
    CHECK_EQ_U(st.bad, 0);
    free(c);

    /* the second block's count says INT32_MAX: its datums are all there
     * and read; the count is damage, the loss unknown, nothing counted */
    size_t clen;
    c = with_count(b, len, at[1], huge_count, sizeof huge_count, &clen);
    CHECK(c != NULL);
    if (c) {
        spit(dmg, c, clen);
        n = drain(t_config("raw"), codec, dmg, 64, &st);
        CHECK_EQ_U(n, 1000);
        CHECK_EQ_U(st.bad, 0);
        CHECK_EQ_U(st.lost_records, 0);
        CHECK_EQ_U(st.unreadable_blocks, 1);
        CHECK_EQ_U(st.corrupt_blocks, 1);

        /* and a datum of that block damaged: the rest of the block is
         * lost, its count still not believed */
        uint8_t *hit = memmem(c, clen, "user00200", 9);
        CHECK(hit != NULL && hit > c + at[1] && hit < c + at[2]);
        if (hit) {
            hit[-1] = 0x01; /* length -1 */
            spit(dmg, c, clen);
            n = drain(t_config("raw"), codec, dmg, 64, &st);
            CHECK(n > 800 && n < 1000);
            CHECK_EQ_U(st.bad, 1);
            CHECK_EQ_U(st.lost_records, 0);
            CHECK_EQ_U(st.unreadable_blocks, 1);
            CHECK(st.bad + st.lost_records <= clen);
        }
        free(c);
    }

    /* too small a count: bytes after its last datum hold records unknown */
    static const uint8_t two[1] = {0x04};
    c = with_count(b, len, at[1], two, sizeof two, &clen);
    CHECK(c != NULL);
    if (c) {
        spit(dmg, c, clen);
        n = drain(t_config("raw"), codec, dmg, 64, &st);
        CHECK(n > 800 && n < 1000);
        CHECK_EQ_U(st.unreadable_blocks, 1);
        CHECK_EQ_U(st.lost_records, 0);
        free(c);
    }
    free(b);

    /* snappy: a CRC that does not match and a count of INT32_MAX: a 4 KiB
     * block cannot uncompress to that many datums */
    snprintf(path, sizeof path, "%s/unknown-snappy.avro", tmpdir);
    write_avro_c_clicks(path, "snappy");
    b = slurp(path, &len);
    n_blocks = b ? block_starts(b, len, at, 64) : 0;
    CHECK(n_blocks >= 2);
    if (n_blocks >= 2) {
        b[at[1] - 17] ^= 0x01; /* the first block's CRC, before its marker */
        c = with_count(b, len, at[0], huge_count, sizeof huge_count, &clen);
        CHECK(c != NULL);
        if (c) {
            spit(dmg, c, clen);
            n = drain(t_config("raw"), codec, dmg, 64, &st);
            CHECK(n > 0 && n < 1000);
            CHECK_EQ_U(st.corrupt_blocks, 1);
            CHECK_EQ_U(st.unreadable_blocks, 1);
            CHECK_EQ_U(st.lost_records, 0);
            free(c);
        }
    }
    free(b);
    nx_codec_destroy(codec);
}

/* Neither OCF nor CSV: an error at open (binary data, an Avro container
 * with a damaged magic) or at the end (every row bad), never a replay of
 * bad rows that succeeds. */
static void test_not_ocf_nor_csv(void) {
    char err[256], path[512], dmg[600];
    snprintf(path, sizeof path, "%s/magic.avro", tmpdir);
    snprintf(dmg, sizeof dmg, "%s/magic-dmg.avro", tmpdir);
    static uint8_t payload[100][256];
    static size_t plen[100];
    write_ocf(path, "deflate", 1, 100, payload, plen);
    nx_config_t *cfg = t_config("raw");
    nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
    CHECK(codec != NULL);
    size_t len;
    uint8_t *b = slurp(path, &len);
    CHECK(b != NULL && len > 16);
    if (!codec || !b) {
        free(b);
        nx_codec_destroy(codec);
        return;
    }
    for (int i = 0; i < 4; i++) {
        /* each byte of the magic damaged in turn, then all of them */
        uint8_t saved[4];
        memcpy(saved, b, 4);
        if (i < 3)
            b[i] ^= 0x20;
        else
            memset(b, 'x', 4);
        spit(dmg, b, len);
        memcpy(b, saved, 4);
        err[0] = '\0';
        nx_replay_source_t *src = nx_replay_source_open(cfg, codec, dmg, err, sizeof err);
        CHECK(src == NULL);
        CHECK(strstr(err, "not CSV") != NULL);
        CHECK(strstr(err, "damaged") != NULL);
        nx_replay_source_close(src);
    }

    /* CSV with a NUL in its third line; then every row bad; then every row
     * skipped (not bad: no error) */
    static char *cols[] = {"user_id", "ts", "event_type"};
    cfg = t_config("confluent");
    cfg->input.csv_columns.n = 3;
    for (int i = 0; i < 3; i++)
        cfg->input.csv_columns.v[i] = cols[i];
    nx_codec_destroy(codec);
    codec = nx_codec_new(cfg, err, sizeof err);
    CHECK(codec != NULL);
    static const char nul[] = "u1,1700000000000,click\nu2,1700000000001,cart\nu3,17\0,click\n";
    spit(dmg, (const uint8_t *)nul, sizeof nul - 1);
    nx_replay_source_t *src = nx_replay_source_open(cfg, codec, dmg, err, sizeof err);
    CHECK(src == NULL);
    CHECK(strstr(err, "binary byte 0x00 at offset 50") != NULL);
    nx_replay_source_close(src);

    static const char letter[] = "Dear reader,\nthese are not events.\n\nYours\n";
    spit(dmg, (const uint8_t *)letter, sizeof letter - 1);
    src = nx_replay_source_open(cfg, codec, dmg, err, sizeof err);
    CHECK(src != NULL);
    if (src) {
        nx_event_t evs[8];
        CHECK_EQ_I(nx_replay_source_next(src, evs, 8, T_NOW_MS), -1);
        CHECK(strstr(nx_replay_source_error(src), "all 3 row(s) bad") != NULL);
        CHECK_EQ_U(nx_replay_source_stats(src)->bad, 3);
        nx_replay_source_close(src);
    }
    static const char skips[] = "u1,1700000000000,fav\nu2,1700000000001,fav\n";
    spit(dmg, (const uint8_t *)skips, sizeof skips - 1);
    nx_replay_stats_t st;
    CHECK_EQ_U(drain(cfg, codec, dmg, 8, &st), 0);
    CHECK_EQ_U(st.skipped, 2);
    free(b);
    nx_codec_destroy(codec);
}

static void test_csv_taobao(void) {
    char err[256];
    nx_config_t *cfg = t_config("raw");
    static char *cols[] = {"user_id", "item_id", "category_id", "behavior_type", "timestamp"};
    cfg->input.csv_columns.n = 5;
    for (int i = 0; i < 5; i++)
        cfg->input.csv_columns.v[i] = cols[i];
    cfg->input.field_timestamp = (char *)"timestamp";
    cfg->input.field_type = (char *)"behavior_type";
    cfg->input.field_category = (char *)"category_id";
    cfg->input.csv_timestamp = (char *)"epoch_s";
    nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
    CHECK(codec == NULL); /* event.avsc has no "timestamp" field: raw refuses */
    cfg->input.framing = (char *)"confluent";
    codec = nx_codec_new(cfg, err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    nx_replay_source_t *src = nx_replay_source_open(
        cfg, codec, NX_SOURCE_DIR "/tests/data/taobao_small.csv", err, sizeof err);
    CHECK(src != NULL);
    if (!src) {
        fprintf(stderr, "%s\n", err);
        nx_codec_destroy(codec);
        return;
    }
    CHECK(strcmp(nx_replay_source_format(src), "csv") == 0);
    nx_event_t evs[2];
    nx_event_t all[16];
    int total = 0, n;
    /* batches of 2: strings of a batch stay valid until the next call */
    while ((n = nx_replay_source_next(src, evs, 2, T_NOW_MS)) > 0) {
        for (int i = 0; i < n && total < 16; i++)
            all[total++] = evs[i];
        CHECK(memchr(evs[0].user_id, ',', evs[0].user_id_len) == NULL);
    }
    CHECK_EQ_I(total, 5);
    const nx_replay_stats_t *st = nx_replay_source_stats(src);
    CHECK_EQ_U(st->records, 9);
    CHECK_EQ_U(st->events, 5);
    CHECK_EQ_U(st->skipped, 1);
    CHECK_EQ_U(st->bad, 3);
    CHECK_EQ_U(st->by_reason[NX_CODEC_TS_TOO_OLD], 1);
    CHECK_EQ_U(st->by_reason[NX_CODEC_BAD_ROW], 1);
    CHECK_EQ_U(st->by_reason[NX_CODEC_BAD_TIMESTAMP], 1);
    CHECK_EQ_I(st->n_first_bad, 3);
    CHECK_EQ_U(st->first_bad[0].where, 6);
    CHECK_EQ_U(st->first_bad[1].where, 7);
    CHECK_EQ_U(st->first_bad[2].where, 8);
    CHECK_EQ_U(nx_codec_counters(codec)[NX_CODEC_BAD_ROW], 1);
    if (total == 5) {
        CHECK_EQ_I(all[0].offset, 1);
        CHECK_EQ_I(all[0].ts_ms, 1511544070000LL);
        CHECK_EQ_I(all[0].type, 0);
        CHECK_EQ_U(all[0].item, nx_event_id_hash("2268318", 7));
        CHECK_EQ_U(all[0].category, nx_event_id_hash("2520377", 7));
        CHECK(isnan(all[0].price));
        CHECK_EQ_I(all[2].type, 1); /* cart */
        CHECK_EQ_I(all[3].type, 2); /* buy -> purchase */
        CHECK_EQ_I(all[3].offset, 5);
        CHECK_EQ_I(all[4].offset, 9);
    }
    nx_replay_source_close(src);
    nx_codec_destroy(codec);
}

static void test_csv_rees46(void) {
    char err[256];
    nx_config_t *cfg = t_config("confluent");
    cfg->input.csv_header = 1; /* columns from the header */
    cfg->input.csv_timestamp = (char *)"datetime";
    cfg->input.field_timestamp = (char *)"event_time";
    cfg->input.field_item = (char *)"product_id";
    cfg->input.field_category = (char *)"category_id";
    cfg->input.field_session = (char *)"user_session";
    nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    nx_replay_stats_t st;
    uint64_t n = drain(cfg, codec, NX_SOURCE_DIR "/tests/data/rees46_small.csv", 64, &st);
    CHECK_EQ_U(n, 4);
    CHECK_EQ_U(st.records, 9);
    CHECK_EQ_U(st.skipped, 1);
    CHECK_EQ_U(st.bad, 4);
    CHECK_EQ_U(st.by_reason[NX_CODEC_BAD_PRICE], 1);
    CHECK_EQ_U(st.by_reason[NX_CODEC_BAD_NUMBER], 1);
    CHECK_EQ_U(st.by_reason[NX_CODEC_BAD_TIMESTAMP], 1);
    CHECK_EQ_U(st.by_reason[NX_CODEC_EMPTY_USER_ID], 1);
    CHECK_EQ_I(st.n_first_bad, 4);
    CHECK_EQ_U(st.first_bad[0].where, 6);
    CHECK_EQ_U(st.first_bad[3].where, 9);

    nx_replay_source_t *src = nx_replay_source_open(
        cfg, codec, NX_SOURCE_DIR "/tests/data/rees46_small.csv", err, sizeof err);
    CHECK(src != NULL);
    if (src) {
        nx_event_t evs[8];
        int k = nx_replay_source_next(src, evs, 8, T_NOW_MS);
        CHECK_EQ_I(k, 4);
        if (k == 4) {
            CHECK_EQ_I(evs[0].ts_ms, 1569888000000LL);
            CHECK_EQ_I(evs[0].offset, 2);
            CHECK(evs[0].price == 35.79);
            CHECK_EQ_U(evs[0].user_id_len, 9);
            CHECK(memcmp(evs[0].user_id, "541312140", 9) == 0);
            /* the quoted category_code with a comma kept the columns */
            CHECK_EQ_I(evs[1].type, 1);
            CHECK(evs[1].price == 33.20);
            CHECK_EQ_U(evs[1].category, nx_event_id_hash("2053013552326770905", 19));
            CHECK_EQ_U(evs[1].session,
                       nx_event_id_hash("9333dfbd-b87a-4708-9857-6336556b0fcc", 36));
            CHECK_EQ_I(evs[2].type, 2);
            CHECK_EQ_I(evs[3].ts_ms, 1569888011250LL);
            CHECK_EQ_I(evs[3].offset, 11);
        }
        nx_replay_source_close(src);
    }
    /* a header that does not name the required columns */
    cfg->input.field_user_id = (char *)"visitor";
    src = nx_replay_source_open(cfg, codec, NX_SOURCE_DIR "/tests/data/rees46_small.csv", err,
                                sizeof err);
    CHECK(src == NULL);
    CHECK(strstr(err, "visitor") != NULL);
    nx_codec_destroy(codec);
}

/* Lines longer than the buffer, no final newline, CRLF. */
static void test_csv_edges(void) {
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/edges.csv", tmpdir);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp)
        return;
    fprintf(fp, "u1,1700000000000,click\r\n");
    for (size_t i = 0; i < NX_CSV_READER_BUF + 10; i++)
        fputc('x', fp);
    fprintf(fp, ",1700000000000,click\n");
    fprintf(fp, "u2,1700000000001,cart\n");
    fprintf(fp, "u3,1700000000002,purchase"); /* no final newline */
    fclose(fp);
    nx_config_t *cfg = t_config("confluent");
    static char *cols[] = {"user_id", "ts", "event_type"};
    cfg->input.csv_columns.n = 3;
    for (int i = 0; i < 3; i++)
        cfg->input.csv_columns.v[i] = cols[i];
    nx_codec_t *codec = nx_codec_new(cfg, err, sizeof err);
    CHECK(codec != NULL);
    if (!codec)
        return;
    nx_replay_stats_t st;
    uint64_t n = drain(cfg, codec, path, 64, &st);
    CHECK_EQ_U(n, 3);
    CHECK_EQ_U(st.bad, 1);
    CHECK_EQ_U(st.by_reason[NX_CODEC_BAD_ROW], 1);
    CHECK_EQ_U(st.first_bad[0].where, 2);

    nx_replay_source_t *src = nx_replay_source_open(cfg, codec, path, err, sizeof err);
    nx_event_t evs[4];
    int k = src ? nx_replay_source_next(src, evs, 4, T_NOW_MS) : -1;
    CHECK_EQ_I(k, 1); /* the long line forces a refill after u1 */
    if (k == 1)
        CHECK_EQ_U(evs[0].user_id_len, 2);
    /* u2 comes with the refill; u3, without a newline, once EOF is seen */
    k = src ? nx_replay_source_next(src, evs, 4, T_NOW_MS) : -1;
    CHECK_EQ_I(k, 1);
    if (k == 1)
        CHECK_EQ_I(evs[0].offset, 3);
    k = src ? nx_replay_source_next(src, evs, 4, T_NOW_MS) : -1;
    CHECK_EQ_I(k, 1);
    if (k == 1) {
        CHECK_EQ_I(evs[0].offset, 4);
        CHECK_EQ_I(evs[0].type, 2);
    }
    CHECK_EQ_I(src ? nx_replay_source_next(src, evs, 4, T_NOW_MS) : -1, 0);
    nx_replay_source_close(src);
    CHECK(nx_replay_source_open(cfg, codec, "/nonexistent.csv", err, sizeof err) == NULL);
    nx_codec_destroy(codec);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_ocf_round_trip("null");
    test_ocf_round_trip("deflate");
    test_ocf_round_trip("snappy");
    test_ocf_writer_deterministic("null");
    test_ocf_writer_deterministic("deflate");
    test_ocf_writer_deterministic("snappy");
    test_ocf_snappy_crc();
    test_ocf_from_avro_c();
    test_ocf_corrupt_block();
    test_ocf_unknown_loss();
    test_not_ocf_nor_csv();
    test_csv_taobao();
    test_csv_rees46();
    test_csv_edges();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    if (t_failures) {
        fprintf(stderr, "test_replay_io: %d failure(s)\n", t_failures);
        return 1;
    }
    printf("test_replay_io: ok\n");
    return 0;
}
