/*
 * model_check.h: what the unit tests of model/ share (test_model.c,
 * test_model_metrics.c, test_model_checkpoint.c, test_model_explain.c):
 * the CHECK macros, which count and print every failure with file:line and
 * the values compared, and the tests' own seeded data stream. Each test
 * executable includes it once; nothing here is linked.
 */
#ifndef NX_MODEL_CHECK_H
#define NX_MODEL_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rng.h"

static int failures;
static int checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* |a - b| <= atol + rtol |b|, printed on failure. */
#define CHECK_CLOSE(a, b, atol, rtol)                                                              \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        CHECK(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_), "%s = %.9g, %s = %.9g", #a, a_, #b, b_);  \
    } while (0)

static nx_rng_t trng; /* the tests' own data stream */

/* Seeds trng; called first by every test's main. */
static inline void test_rng_seed(void) {
    nx_rng_seed(&trng, 20240601);
}

static inline float urand(float lo, float hi) {
    return lo + (hi - lo) * (float)nx_rng_uniform(&trng);
}

static inline void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = urand(lo, hi);
}

/* The exit status: prints the counts, non-zero when any check failed. */
static inline int check_exit(const char *name) {
    printf("%s: %d checks, %d failed\n", name, checks, failures);
    return failures ? 1 : 0;
}

#endif /* NX_MODEL_CHECK_H */
