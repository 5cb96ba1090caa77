/*
 * features_check.h: what the unit tests of features/ share (test_features.c,
 * test_store.c, test_store_ref.c, test_store_persist.c, test_xstats.c): the CHECK macros
 * (a failure prints file:line and the values; the 21st stops the run), the
 * store's test key, a memory stream for saving and restoring (membuf.h), and the
 * events and example buffers the store tests feed and read. Each test
 * executable includes it once; nothing here is linked.
 */
#ifndef NX_FEATURES_CHECK_H
#define NX_FEATURES_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "membuf.h"
#include "quant.h"
#include "siphash.h"
#include "store.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            if (failures > 20)                                                                     \
                exit(1);                                                                           \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    CHECK(fabs((double)(a) - (double)(b)) <= (tol) * (1.0 + fabs((double)(b))),                    \
          "%s = %.9g, want %.9g", #a, (double)(a), (double)(b))

/* A counter feature, log1p(c), of a bfloat16 counter rounded n times
 * (stochastically: each rounding moves c by under one step, 2^-7 of it,
 * and log1p(c) by under 2^-7). */
#define CHECK_COUNTER(a, b, n)                                                                     \
    CHECK(fabs((double)(a) - (double)(b)) <= (n)*0x1p-7, "%s = %.9g, want %.9g (%d roundings)",    \
          #a, (double)(a), (double)(b), (n))

/* unused where no store is made (test_xstats.c) */
static const uint8_t test_key[NX_SIPHASH_KEY_LEN]
    __attribute__((unused)) = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* A feature as a resolved example gives it back: a normalised store with a
 * clip within NX_QUANT_CLIP_MAX keeps 8-bit codes (quant.h), any other
 * fp16. */
static inline float pend_rt(const nx_store_params_t *p, float x) {
    if (p->normalise && p->clip <= NX_QUANT_CLIP_MAX) {
        int8_t q;
        nx_quant_encode(NX_HALF_PORTABLE, &x, &q, 1, p->clip);
        float y;
        nx_quant_decode(NX_HALF_PORTABLE, &q, &y, 1, p->clip);
        return y;
    }
    return nx_half_to_float(nx_half_from_float(x));
}

/* --- store helpers -------------------------------------------------------- */

static inline nx_event_t mk_event(const char *user, int type, int64_t ts, uint64_t item,
                                  uint64_t cat, uint64_t session, double price, int qty,
                                  int partition) {
    nx_event_t e;
    memset(&e, 0, sizeof e);
    e.user_id = user;
    e.user_id_len = (uint32_t)strlen(user);
    e.type = type;
    e.ts_ms = ts;
    e.item = item;
    e.category = cat;
    e.session = session;
    e.price = price;
    e.quantity = qty;
    e.partition = partition;
    return e;
}

typedef struct exbuf {
    float *x;
    float *score; /* (cap, NX_STORE_MAX_SCORES) */
    int32_t label[4096];
    int64_t ts[4096];
    uint64_t user[4096];
    int32_t part[4096];
    nx_examples_t ex;
} exbuf_t;

static inline void exbuf_init(exbuf_t *b, size_t dim, size_t cap) {
    b->x = calloc(cap * dim, sizeof(float));
    b->score = calloc(cap * NX_STORE_MAX_SCORES, sizeof(float));
    b->ex = (nx_examples_t){.x = b->x,
                            .label = b->label,
                            .ts_ms = b->ts,
                            .user = b->user,
                            .partition = b->part,
                            .score = b->score,
                            .cap = cap};
}

static inline void exbuf_free(exbuf_t *b) {
    free(b->x);
    free(b->score);
}

/* Index of the feature named name, or dim if absent. */
/* Two stores with the same parameters and key (a run and its twin); 0, or
 * -1 (both NULL, the reason checked) if either cannot be made. */
static inline int twin_stores(const nx_store_params_t *p, nx_store_t **a, nx_store_t **b) {
    char err[256] = "";
    *a = nx_store_new(p, test_key, err, sizeof err);
    *b = nx_store_new(p, test_key, err, sizeof err);
    CHECK(*a && *b, "new: %s", err);
    if (*a && *b)
        return 0;
    nx_store_destroy(*a);
    nx_store_destroy(*b);
    *a = *b = NULL;
    return -1;
}

static inline size_t feat_index(const nx_store_t *store, const char *name) {
    size_t i = 0;
    while (i < nx_store_dim(store) && strcmp(nx_store_feature_name(store, i), name) != 0)
        i++;
    return i;
}

static inline uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* A random stream of n events over n_users users (partition = user % 4). */
static inline nx_event_t *make_stream(int n, int n_users, uint64_t seed, int64_t t0,
                                      char (*ids)[16]) {
    nx_event_t *ev = calloc((size_t)n, sizeof *ev);
    uint64_t s = seed;
    int64_t now = t0;
    for (int u = 0; u < n_users; u++)
        snprintf(ids[u], 16, "p-%d", u);
    for (int i = 0; i < n; i++) {
        now += (int64_t)(lcg(&s) % 20000);
        int u = (int)(lcg(&s) % (uint64_t)n_users);
        int64_t ts = lcg(&s) % 10 ? now : now - (int64_t)(lcg(&s) % 600000);
        ev[i] = mk_event(ids[u], (int)(lcg(&s) % 3), ts, 1 + lcg(&s) % 9, 1 + lcg(&s) % 3, 0,
                         lcg(&s) % 2 ? 9.5 : NAN, 1, u % 4);
    }
    return ev;
}

/* The exit status: non-zero when any check failed. */
static inline int check_exit(const char *name) {
    if (failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, failures);
        return 1;
    }
    printf("%s: all passed\n", name);
    return 0;
}

#endif /* NX_FEATURES_CHECK_H */
