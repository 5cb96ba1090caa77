/*
 * test_xstats.c: the item and category statistics table (features/xstats.h)
 * against sums computed here in double: decay, late additions, the rates
 * and their prior, the replacement rule within the memory bound, and
 * save/restore (bit-identical into a table of the same size, keys kept in
 * one of another size, refusals).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "features_check.h"
#include "xstats.h"

#define T0  1700000000000LL /* ms */
#define WIN 3600000LL       /* ms: the decay time constant of the tests */
#define C   4               /* classes: click, cart, purchase, none */

/* Decay, late additions and the rates of one key, against double sums. */
static void test_counts(void) {
    char err[256];
    nx_xstats_t *xs = nx_xstats_new(1 << 20, C, WIN, err, sizeof err);
    CHECK(xs, "new: %s", err);
    if (!xs)
        return;
    CHECK(nx_xstats_bytes(xs) <= (1 << 20) && nx_xstats_bytes(xs) >= (1 << 19), "%zu bytes",
          nx_xstats_bytes(xs));
    float ev, rate[C];
    /* unseen, no label anywhere: nothing, uniform rates */
    nx_xstats_read(xs, 77, T0, &ev, rate);
    CHECK(ev == 0.0f, "unseen key has %g events", (double)ev);
    for (int c = 0; c < C; c++)
        CHECK_NEAR(rate[c], 0.25, 1e-6);
    /* key 0 is no key: never an empty slot's counters */
    nx_xstats_read(xs, 0, T0, &ev, rate);
    CHECK(ev == 0.0f, "key 0 read %g events", (double)ev);

    /* events at T0, T0 + 30 min, a late one at T0 + 10 min; read at T0 + 2 h */
    nx_xstats_event(xs, 77, T0);
    nx_xstats_event(xs, 77, T0 + 1800000);
    nx_xstats_event(xs, 77, T0 + 600000);
    double want = exp(-7200.0 / 3600) + exp(-5400.0 / 3600) + exp(-6600.0 / 3600);
    nx_xstats_read(xs, 77, T0 + 7200000, &ev, rate);
    CHECK_NEAR(ev, want, 2e-6);
    /* read before the key's time: its counters as they stand */
    nx_xstats_read(xs, 77, T0, &ev, rate);
    CHECK_NEAR(ev, 1.0 + exp(-0.5) + exp(-20.0 / 60), 2e-6);

    /* labels: key 77 gets 3 carts at T0 and a none at T0; key 88 (the
     * prior's only other labels) 2 purchases. Rates shrink towards the
     * prior's shares by NX_XSTATS_PRIOR pseudo-labels. */
    for (int k = 0; k < 3; k++)
        nx_xstats_label(xs, 77, T0, 1);
    nx_xstats_label(xs, 77, T0, 3);
    nx_xstats_label(xs, 88, T0, 2);
    nx_xstats_label(xs, 88, T0, 2);
    nx_xstats_label(xs, 88, T0, 9);  /* out of range: ignored */
    nx_xstats_label(xs, 88, T0, -1); /* likewise */
    double A = NX_XSTATS_PRIOR, prior[C] = {0, 3.0 / 6, 2.0 / 6, 1.0 / 6};
    double own[C] = {0, 3, 0, 1}, n = 4;
    /* the key's time is T0 + 30 min: labels at T0 count decayed to it,
     * and a read an hour later decays them all alike */
    double f = exp(-0.5);
    nx_xstats_read(xs, 77, T0 + 1800000, &ev, rate);
    for (int c = 0; c < C; c++)
        CHECK_NEAR(rate[c], (f * own[c] + A * prior[c]) / (f * n + A), 2e-6);
    nx_xstats_read(xs, 77, T0 + 1800000 + WIN, &ev, rate);
    for (int c = 0; c < C; c++)
        CHECK_NEAR(rate[c], (f * own[c] * exp(-1) + A * prior[c]) / (f * n * exp(-1) + A), 2e-6);
    /* an unseen key reads the prior */
    nx_xstats_read(xs, 99, T0, &ev, rate);
    for (int c = 0; c < C; c++)
        CHECK_NEAR(rate[c], prior[c], 1e-6);
    /* the prior decays too: a label a window later weighs e times the old ones */
    nx_xstats_label(xs, 88, T0 + WIN, 0);
    double pz = 6 * exp(-1) + 1;
    nx_xstats_read(xs, 99, T0 + WIN, &ev, rate);
    CHECK_NEAR(rate[0], 1.0 / pz, 2e-6);
    CHECK_NEAR(rate[1], 3 * exp(-1) / pz, 2e-6);
    nx_xstats_destroy(xs);
    nx_xstats_destroy(NULL);
}

/* The memory bound: a table of 4096 bytes holds 128 keys; more keys replace
 * the ones updated longest ago in their bucket, which then read as unseen,
 * and the newest keys are all there. */
static void test_bound(void) {
    char err[256];
    nx_xstats_t *xs = nx_xstats_new(4096, C, WIN, err, sizeof err);
    CHECK(xs && nx_xstats_bytes(xs) == 4096, "new: %s", xs ? "" : err);
    if (!xs)
        return;
    float ev, rate[C];
    int seen = 0;
    for (uint32_t k = 1; k <= 1000; k++)
        nx_xstats_event(xs, k * 2654435761u | 1u, T0 + (int64_t)k * 1000);
    for (uint32_t k = 1; k <= 1000; k++) {
        nx_xstats_read(xs, k * 2654435761u | 1u, T0 + 1000000, &ev, rate);
        seen += ev > 0.0f;
    }
    CHECK(seen > 0 && seen <= 128, "%d keys kept in 128 slots", seen);
    /* the last key written is always there */
    nx_xstats_read(xs, 1000u * 2654435761u | 1u, T0 + 1000000, &ev, rate);
    CHECK_NEAR(ev, 1.0, 1e-6);
    nx_xstats_destroy(xs);
    CHECK(!nx_xstats_new(1000, C, WIN, err, sizeof err), "a table under 4096 bytes");
    CHECK(!nx_xstats_new(4096, 0, WIN, err, sizeof err), "no classes");
    CHECK(!nx_xstats_new(4096, NX_XSTATS_MAX_CLASSES + 1, WIN, err, sizeof err), "classes");
    CHECK(!nx_xstats_new(4096, C, 0, err, sizeof err), "window 0");
    /* many classes: 64-byte slots */
    xs = nx_xstats_new(4096, NX_XSTATS_MAX_CLASSES, WIN, err, sizeof err);
    CHECK(xs, "new: %s", err);
    if (xs) {
        float r13[NX_XSTATS_MAX_CLASSES];
        nx_xstats_label(xs, 5, T0, NX_XSTATS_MAX_CLASSES - 1);
        nx_xstats_read(xs, 5, T0, &ev, r13);
        CHECK_NEAR(r13[NX_XSTATS_MAX_CLASSES - 1], 1.0, 1e-6);
        nx_xstats_destroy(xs);
    }
}

/* Feeds a deterministic mix of events and labels over many keys. */
static void feed(nx_xstats_t *xs, uint64_t *s, int n, int64_t t) {
    for (int i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t key = (uint32_t)(*s >> 40) % 3000 + 1;
        int64_t ts = t + (int64_t)i * 500 - (int64_t)((*s >> 20) % 4) * 60000;
        if ((*s >> 8) % 3)
            nx_xstats_event(xs, key, ts);
        else
            nx_xstats_label(xs, key, ts, (int)((*s >> 12) % C));
    }
}

/* Reads of every key, as one buffer (events then rates per key). */
static float *read_all(const nx_xstats_t *xs, int64_t t) {
    float *out = malloc(3000 * (1 + C) * sizeof *out);
    for (uint32_t k = 1; k <= 3000; k++)
        nx_xstats_read(xs, k, t, out + (k - 1) * (1 + C), out + (k - 1) * (1 + C) + 1);
    return out;
}

static void test_save_restore(void) {
    char err[256];
    nx_xstats_t *a = nx_xstats_new(64 << 10, C, WIN, err, sizeof err);
    nx_xstats_t *b = nx_xstats_new(64 << 10, C, WIN, err, sizeof err);
    nx_xstats_t *big = nx_xstats_new(1 << 20, C, WIN, err, sizeof err);
    CHECK(a && b && big, "new: %s", err);
    if (!a || !b || !big)
        return;
    uint64_t s = 1;
    feed(a, &s, 20000, T0);
    membuf_t m = {0};
    CHECK(nx_xstats_save(a, mem_write, &m) == 0, "save");
    /* b held other keys: restore replaces them all */
    uint64_t s2 = 99;
    feed(b, &s2, 500, T0);
    CHECK(nx_xstats_restore(b, mem_read, &m, err, sizeof err) == 0, "restore: %s", err);
    /* both go on with the same calls: the same bits */
    uint64_t sa = s, sb = s;
    feed(a, &sa, 5000, T0 + 20000000);
    feed(b, &sb, 5000, T0 + 20000000);
    float *ra = read_all(a, T0 + 30000000), *rb = read_all(b, T0 + 30000000);
    CHECK(memcmp(ra, rb, 3000 * (1 + C) * sizeof *ra) == 0, "restored table differs");
    membuf_t ma = {0}, mb = {0};
    CHECK(nx_xstats_save(a, mem_write, &ma) == 0 && nx_xstats_save(b, mem_write, &mb) == 0, "save");
    CHECK(ma.len == mb.len && memcmp(ma.data, mb.data, ma.len) == 0, "saved states differ");

    /* into a larger table: every key the small one held reads the same */
    ma.pos = 0;
    CHECK(nx_xstats_restore(big, mem_read, &ma, err, sizeof err) == 0, "restore: %s", err);
    float *rbig = read_all(big, T0 + 30000000);
    /* (a key may still meet two others in its bucket there: it is then
     * replaced, and reads as unseen, never as another's) */
    int same = 0, held = 0, wrong = 0;
    for (int k = 0; k < 3000; k++) {
        if (ra[k * (1 + C)] == 0.0f)
            continue;
        held++;
        if (memcmp(ra + k * (1 + C), rbig + k * (1 + C), (1 + C) * sizeof *ra) == 0)
            same++;
        else if (rbig[k * (1 + C)] != 0.0f)
            wrong++;
    }
    CHECK(held > 1000 && same >= held - held / 50 && wrong == 0,
          "%d of %d keys kept in a larger table, %d changed", same, held, wrong);

    /* refusals: another class count, window, version; a short stream */
    nx_xstats_t *other = nx_xstats_new(64 << 10, C + 1, WIN, err, sizeof err);
    ma.pos = 0;
    CHECK(other && nx_xstats_restore(other, mem_read, &ma, err, sizeof err) < 0,
          "a stream of another class count is refused");
    nx_xstats_destroy(other);
    other = nx_xstats_new(64 << 10, C, 2 * WIN, err, sizeof err);
    ma.pos = 0;
    CHECK(other && nx_xstats_restore(other, mem_read, &ma, err, sizeof err) < 0,
          "a stream of another window is refused");
    nx_xstats_destroy(other);
    membuf_t cut = {ma.data, ma.len - 7, ma.cap, 0};
    CHECK(nx_xstats_restore(b, mem_read, &cut, err, sizeof err) < 0, "a short stream is refused");
    uint32_t version = 99;
    memcpy(ma.data + 4, &version, sizeof version);
    ma.pos = 0;
    CHECK(nx_xstats_restore(b, mem_read, &ma, err, sizeof err) < 0 && strstr(err, "newer"),
          "a newer version is refused: %s", err);
    free(ra);
    free(rb);
    free(rbig);
    free(m.data);
    free(ma.data);
    free(mb.data);
    nx_xstats_destroy(a);
    nx_xstats_destroy(b);
    nx_xstats_destroy(big);
}

int main(void) {
    test_counts();
    test_bound();
    test_save_restore();
    return check_exit("test_xstats");
}
