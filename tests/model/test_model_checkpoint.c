/*
 * test_model_checkpoint.c: unit tests of model/checkpoint.h: CRC32C test
 * vectors, a round trip that restores the model bit-identically and trains
 * on identically, caller sections in odd pieces, refusals (truncation,
 * corruption, another format version, other dimensions), and an older
 * checkpoint's unversioned model section still read. Links only nx_model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "mlp.h"
#include "model_check.h"
#include "rng.h"

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fclose(f);
    return n;
}

static unsigned char *slurp(const char *path, long *n) {
    *n = file_size(path);
    unsigned char *b = malloc(*n > 0 ? (size_t)*n : 1);
    FILE *f = fopen(path, "rb");
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n)
        *n = -1;
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, long n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, (size_t)n, f);
    fclose(f);
}

/* Trains m for `steps` batches of B random rows (inputs in [-1, 1], labels
 * uniform over K classes); keep >= 0 also draws the down-sampling RNG. */
static void train_random(nx_mlp_t *m, int steps, int B, int n_in, int K, int keep) {
    float x[32 * 12];
    int32_t y[32];
    for (int s = 0; s < steps; s++) {
        fill(x, (size_t)B * (size_t)n_in, -1, 1);
        for (int r = 0; r < B; r++)
            y[r] = (int32_t)(nx_rng_next(&trng) % (uint64_t)K);
        if (keep >= 0)
            nx_mlp_keep(m, keep);
        nx_mlp_train(m, x, y, B, NULL);
    }
}

/* b holds a's state bit for bit: weights, moments, step, RNG. */
static void check_same_state(nx_mlp_t *a, nx_mlp_t *b, const char *what) {
    const size_t n = nx_mlp_num_params(a);
    CHECK(memcmp(nx_mlp_weights(a), nx_mlp_weights(b), n * 4) == 0, "%s: weights differ", what);
    CHECK(memcmp(nx_mlp_opt_m(a), nx_mlp_opt_m(b), n * 4) == 0, "%s: m differs", what);
    CHECK(memcmp(nx_mlp_opt_v(a), nx_mlp_opt_v(b), n * 4) == 0, "%s: v differs", what);
    CHECK(nx_mlp_step(a) == nx_mlp_step(b), "%s: step", what);
    CHECK(memcmp(nx_mlp_rng(a), nx_mlp_rng(b), sizeof(nx_rng_t)) == 0, "%s: rng", what);
}

/* A section of 300000 bytes (more than four chunks) written in odd pieces. */
#define BIG 300000
static unsigned char big_byte(size_t i) {
    return (unsigned char)(i * 131 + (i >> 9));
}

static int write_ckpt(const char *path, nx_mlp_t *mlp, uint64_t schema) {
    char err[256];
    nx_checkpoint_writer_t *w = nx_checkpoint_begin(path, schema, err, sizeof(err));
    CHECK(w != NULL, "%s", err);
    if (!w)
        return -1;
    unsigned char piece[777];
    CHECK(nx_checkpoint_section_begin(w, "store") == 0, "section");
    for (size_t i = 0; i < BIG; i += sizeof(piece)) {
        const size_t n = BIG - i < sizeof(piece) ? BIG - i : sizeof(piece);
        for (size_t j = 0; j < n; j++)
            piece[j] = big_byte(i + j);
        nx_checkpoint_write(w, piece, n);
    }
    CHECK(nx_checkpoint_section_end(w) == 0, "section end");
    CHECK(nx_checkpoint_put_mlp(w, mlp) == 0, "put mlp");
    CHECK(nx_checkpoint_section_begin(w, "empty") == 0 && nx_checkpoint_section_end(w) == 0,
          "empty section");
    const int rc = nx_checkpoint_commit(w, err, sizeof(err));
    CHECK(rc == 0, "%s", err);
    return rc;
}

static void expect_refused(const char *path, uint64_t schema, const char *reason) {
    char err[256] = "";
    nx_checkpoint_reader_t *r = nx_checkpoint_open(path, schema, err, sizeof(err));
    CHECK(r == NULL, "accepted a file that should fail with \"%s\"", reason);
    CHECK(strstr(err, reason) != NULL, "message \"%s\" does not name \"%s\"", err, reason);
    nx_checkpoint_close(r);
}

static void test_checkpoint(void) {
    /* RFC 3720 B.4 test vectors, and the usual check value. */
    unsigned char v[32];
    CHECK(nx_crc32c(0, "123456789", 9) == 0xe3069283u, "%08x", nx_crc32c(0, "123456789", 9));
    memset(v, 0, 32);
    CHECK(nx_crc32c(0, v, 32) == 0x8a9136aau, "zeros %08x", nx_crc32c(0, v, 32));
    memset(v, 0xff, 32);
    CHECK(nx_crc32c(0, v, 32) == 0x62a8ab43u, "ones %08x", nx_crc32c(0, v, 32));
    for (int i = 0; i < 32; i++)
        v[i] = (unsigned char)i;
    CHECK(nx_crc32c(0, v, 32) == 0x46dd794eu, "incrementing %08x", nx_crc32c(0, v, 32));
    CHECK(nx_crc32c(nx_crc32c(0, v, 13), v + 13, 19) == 0x46dd794eu, "incremental");

    char dir[] = "/tmp/nx_test_ckpt_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[128], bad[128];
    snprintf(path, sizeof(path), "%s/model.ckpt", dir);
    snprintf(bad, sizeof(bad), "%s/bad.ckpt", dir);
    const uint64_t schema = 0x0123456789abcdefULL;

    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, 12, 5);
    p.max_batch = 32;
    p.neg_class = 4;
    p.neg_rate = 0.5f;
    /* the whole schedule: the 20 steps before the save cross the warm-up
     * and the 5 after it are on the decay towards the floor, which must
     * continue from the restored step */
    p.warmup_steps = 8;
    p.lr_decay = 0.1f;
    p.lr_min = 2e-4f;
    p.head_init = 0.1f;
    nx_mlp_t *a = nx_mlp_new(&p, err, sizeof(err)), *b = NULL;
    p.seed = 77; /* different initial weights: the load must overwrite them */
    b = nx_mlp_new(&p, err, sizeof(err));
    CHECK(a && b, "%s", err);
    if (!a || !b)
        goto out;
    train_random(a, 20, 32, 12, 5, 4);
    if (write_ckpt(path, a, schema) != 0)
        goto out;
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "temporary file left behind");

    nx_checkpoint_reader_t *r = nx_checkpoint_open(path, schema, err, sizeof(err));
    CHECK(r != NULL, "%s", err);
    if (r) {
        CHECK(nx_checkpoint_get_mlp(r, b, err, sizeof(err)) == 0, "%s", err);
        const size_t n = nx_mlp_num_params(a);
        check_same_state(a, b, "round trip");
        /* Training on continues identically. */
        float x[32 * 12];
        int32_t y[32];
        fill(x, 32 * 12, -1, 1);
        for (int i = 0; i < 32; i++)
            y[i] = (int32_t)(nx_rng_next(&trng) % 5);
        for (int s = 0; s < 5; s++) {
            nx_mlp_train(a, x, y, 32, NULL);
            nx_mlp_train(b, x, y, 32, NULL);
            CHECK(nx_mlp_keep(a, 4) == nx_mlp_keep(b, 4), "keep");
        }
        CHECK(memcmp(nx_mlp_weights(a), nx_mlp_weights(b), n * 4) == 0, "diverged after load");
        /* The caller's section, read back in other pieces. */
        CHECK(nx_checkpoint_section_open(r, "store") == 0, "store section");
        CHECK(nx_checkpoint_section_left(r) == BIG, "left %llu",
              (unsigned long long)nx_checkpoint_section_left(r));
        unsigned char piece[1000];
        int same = 1;
        for (size_t i = 0; i < BIG; i += sizeof(piece)) {
            const size_t k = BIG - i < sizeof(piece) ? BIG - i : sizeof(piece);
            same &= nx_checkpoint_read(r, piece, k) == 0;
            for (size_t j = 0; j < k; j++)
                same &= piece[j] == big_byte(i + j);
        }
        CHECK(same, "store section differs");
        CHECK(nx_checkpoint_read(r, piece, 1) == -1, "read past the section end");
        CHECK(nx_checkpoint_section_open(r, "empty") == 0 && nx_checkpoint_section_left(r) == 0,
              "empty section");
        CHECK(nx_checkpoint_section_open(r, "absent") == -1, "absent section found");
        nx_checkpoint_close(r);
    }
    /* A model of other dimensions is refused, and left unchanged. */
    {
        nx_mlp_params_t q = p;
        q.hidden[1] = 31;
        nx_mlp_t *c = nx_mlp_new(&q, err, sizeof(err));
        r = nx_checkpoint_open(path, schema, err, sizeof(err));
        CHECK(c && r, "%s", err);
        if (c && r) {
            float w0 = nx_mlp_weights(c)[0];
            CHECK(nx_checkpoint_get_mlp(r, c, err, sizeof(err)) == -1, "other dims accepted");
            CHECK(strstr(err, "dimensions") != NULL, "message: %s", err);
            CHECK(nx_mlp_weights(c)[0] == w0 && nx_mlp_step(c) == 0, "changed on refusal");
        }
        nx_checkpoint_close(r);
        nx_mlp_destroy(c);
    }
    /* Corruption cases. */
    long n;
    unsigned char *file = slurp(path, &n);
    CHECK(n > BIG, "file size %ld", n);
    expect_refused(path, schema ^ 1, "feature schema");
    const long cuts[] = {0, 10, 39, 40, 41, 48, BIG / 2, n - 5, n - 4, n - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        spit(bad, file, cuts[i]);
        expect_refused(bad, schema, "truncated");
    }
    const long flips[] = {20, 30, 47, 1000, BIG / 3, n - 300, n - 6, n - 2};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        file[flips[i]] ^= 0x10;
        spit(bad, file, n);
        expect_refused(bad, schema, "corrupted");
        file[flips[i]] ^= 0x10;
    }
    file[0] = 'X';
    spit(bad, file, n);
    expect_refused(bad, schema, "not a nextact checkpoint");
    file[0] = 'N';
    /* Another format version, header CRC made consistent. */
    uint32_t version = NX_CHECKPOINT_VERSION + 1, hcrc;
    memcpy(file + 8, &version, 4);
    hcrc = nx_crc32c(0, file, 36);
    memcpy(file + 36, &hcrc, 4);
    spit(bad, file, n);
    expect_refused(bad, schema, "format version 2");
    free(file);
    expect_refused("/nonexistent/dir/x.ckpt", schema, "No such file");
    /* Failing to write leaves no file and says why. */
    CHECK(nx_checkpoint_begin("/nonexistent/dir/x.ckpt", schema, err, sizeof(err)) == NULL,
          "begin in a missing directory");
    unlink(bad);
    unlink(path);
    rmdir(dir);
out:
    nx_mlp_destroy(a);
    nx_mlp_destroy(b);
}

/* The model section as daemons wrote it before sections were versioned: a
 * section named "mlp" holding the dimensions (int32 n_in, n_hidden,
 * hidden[NX_MLP_MAX_HIDDEN], n_classes, binary_head, optimizer; 4 bytes of
 * padding; u64 parameter count), u64 step, the RNG's four u64, weights,
 * first and second moments. Spelt out here, byte for byte, rather than
 * taken from checkpoint.c: the test must fail if the reader stops reading
 * what older daemons wrote. */
static int write_legacy_mlp(nx_checkpoint_writer_t *w, nx_mlp_t *mlp) {
    const nx_mlp_params_t *p = nx_mlp_params(mlp);
    int32_t dims[5 + NX_MLP_MAX_HIDDEN + 1] = {0}; /* the last: padding */
    dims[0] = p->n_in;
    dims[1] = p->n_hidden;
    for (int i = 0; i < p->n_hidden; i++)
        dims[2 + i] = p->hidden[i];
    dims[2 + NX_MLP_MAX_HIDDEN] = p->n_classes;
    dims[3 + NX_MLP_MAX_HIDDEN] = p->binary_head;
    dims[4 + NX_MLP_MAX_HIDDEN] = (int32_t)p->opt;
    const uint64_t n = nx_mlp_num_params(mlp), step = nx_mlp_step(mlp);
    int rc = nx_checkpoint_section_begin(w, "mlp");
    rc |= nx_checkpoint_write(w, dims, sizeof dims);
    rc |= nx_checkpoint_write(w, &n, sizeof n);
    rc |= nx_checkpoint_write(w, &step, sizeof step);
    rc |= nx_checkpoint_write(w, nx_mlp_rng(mlp), 4 * sizeof(uint64_t));
    rc |= nx_checkpoint_write(w, nx_mlp_weights(mlp), n * sizeof(float));
    rc |= nx_checkpoint_write(w, nx_mlp_opt_m(mlp), n * sizeof(float));
    rc |= nx_checkpoint_write(w, nx_mlp_opt_v(mlp), n * sizeof(float));
    rc |= nx_checkpoint_section_end(w);
    return rc ? -1 : 0;
}

/* A model section as a later daemon might write it: "mlp.v" with a
 * version this build does not know, and bytes it cannot read. */
static int write_future_mlp(nx_checkpoint_writer_t *w) {
    const uint32_t version = 1000;
    const unsigned char junk[64] = {0};
    int rc = nx_checkpoint_section_begin(w, "mlp.v");
    rc |= nx_checkpoint_write(w, &version, sizeof version);
    rc |= nx_checkpoint_write(w, junk, sizeof junk);
    rc |= nx_checkpoint_section_end(w);
    return rc ? -1 : 0;
}

/* A newer build reads an older checkpoint's unversioned model section
 * bit-identically; a section of a version newer than this build is
 * refused, naming the version, and leaves the model unchanged. */
static void test_checkpoint_versions(void) {
    char dir[] = "/tmp/nx_test_ckptv_XXXXXX", path[128], err[256];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/old.ckpt", dir);
    const uint64_t schema = 0xfeedfacecafebeefULL;
    nx_mlp_params_t p;
    nx_mlp_params_default(&p, 9, 3);
    p.max_batch = 16;
    nx_mlp_t *a = nx_mlp_new(&p, err, sizeof err), *b = NULL;
    p.seed = 5;
    b = nx_mlp_new(&p, err, sizeof err);
    CHECK(a && b, "%s", err);
    if (!a || !b)
        goto out;
    train_random(a, 7, 16, 9, 3, -1);
    for (int future = 0; future < 2; future++) {
        nx_checkpoint_writer_t *w = nx_checkpoint_begin(path, schema, err, sizeof err);
        CHECK(w != NULL, "%s", err);
        if (!w)
            goto out;
        CHECK((future ? write_future_mlp(w) : write_legacy_mlp(w, a)) == 0, "section");
        CHECK(nx_checkpoint_commit(w, err, sizeof err) == 0, "%s", err);
        nx_checkpoint_reader_t *r = nx_checkpoint_open(path, schema, err, sizeof err);
        CHECK(r != NULL, "%s", err);
        if (!r)
            goto out;
        if (!future) {
            CHECK(nx_checkpoint_get_mlp(r, b, err, sizeof err) == 0, "older section: %s", err);
            check_same_state(a, b, "older section");
            CHECK(nx_mlp_step(b) == 7, "step %llu", (unsigned long long)nx_mlp_step(b));
        } else {
            nx_mlp_t *c = nx_mlp_new(&p, err, sizeof err);
            CHECK(c != NULL, "%s", err);
            if (c) {
                const float w0 = nx_mlp_weights(c)[0];
                CHECK(nx_checkpoint_get_mlp(r, c, err, sizeof err) == -1, "newer section read");
                CHECK(strstr(err, "version 1000") != NULL, "message: %s", err);
                CHECK(nx_mlp_weights(c)[0] == w0 && nx_mlp_step(c) == 0, "changed on refusal");
            }
            nx_mlp_destroy(c);
        }
        nx_checkpoint_close(r);
    }
    unlink(path);
    rmdir(dir);
out:
    nx_mlp_destroy(a);
    nx_mlp_destroy(b);
}

int main(void) {
    test_rng_seed();
    test_checkpoint();
    test_checkpoint_versions();
    return check_exit("test_model_checkpoint");
}
