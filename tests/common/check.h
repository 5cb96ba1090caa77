/*
 * check.h: the assertion macros every test executable uses. A failed check
 * prints file:line, the expression and the values, counts the failure and
 * goes on, so one run shows every broken case; nx_check_exit() turns the
 * count into the exit status ctest reads.
 */
#ifndef NX_CHECK_H
#define NX_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int nx_check_failures;
static int nx_check_count;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        nx_check_count++;                                                                          \
        if (!(cond)) {                                                                             \
            nx_check_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long nx_a = (long long)(a), nx_b = (long long)(b);                                    \
        nx_check_count++;                                                                          \
        if (nx_a != nx_b) {                                                                        \
            nx_check_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,  \
                    #a, #b, nx_a, nx_b);                                                           \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double nx_a = (double)(a), nx_b = (double)(b);                                             \
        nx_check_count++;                                                                          \
        if (!(fabs(nx_a - nx_b) <= (tol))) {                                                       \
            nx_check_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s ~ %s (%.9g vs %.9g, tol %g)\n", __FILE__,     \
                    __LINE__, #a, #b, nx_a, nx_b, (double)(tol));                                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR_HAS(hay, needle)                                                                 \
    do {                                                                                           \
        const char *nx_h = (hay), *nx_n = (needle);                                                \
        nx_check_count++;                                                                          \
        if (!nx_h || !strstr(nx_h, nx_n)) {                                                        \
            nx_check_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: \"%s\" does not contain \"%s\"\n", __FILE__,     \
                    __LINE__, nx_h ? nx_h : "(null)", nx_n);                                       \
        }                                                                                          \
    } while (0)

static inline int nx_check_exit(const char *name) {
    printf("%s: %d checks, %d failed\n", name, nx_check_count, nx_check_failures);
    return nx_check_failures ? 1 : 0;
}

#endif /* NX_CHECK_H */
