/*
 * log.h: logging to stderr with syslog priority prefixes ("<3>" ...), which
 * journald turns back into levels (sd-daemon(3)); on a terminal (not under
 * journald) lines start with the local time and the level's name instead.
 * One line per call, written with a single write(2) so lines from
 * librdkafka's threads do not interleave.
 *
 * Rate limiting: nx_log_rl() keeps a per-call-site budget (NX_LOG_RL_BURST
 * lines per NX_LOG_RL_PERIOD_MS); lines over budget are counted and the count
 * is reported when the site next logs. Per-message errors go through it.
 *
 * Thread-safe: the level is an atomic int; rate-limit state is per site and
 * updated with relaxed atomics (a race can let one extra line through, never
 * lose the suppressed count by more than the racing lines).
 */
#ifndef NX_LOG_H
#define NX_LOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* syslog(3) priorities */
enum {
    NX_LOG_ERR = 3,
    NX_LOG_WARNING = 4,
    NX_LOG_NOTICE = 5,
    NX_LOG_INFO = 6,
    NX_LOG_DEBUG = 7,
};

/* Burst of 5 lines per 10 s per call site: enough to see what is wrong, not
 * enough to flood the journal at 100k bad messages/s. */
#define NX_LOG_RL_BURST     5
#define NX_LOG_RL_PERIOD_MS 10000

typedef struct nx_log_rl {
    _Atomic int64_t window_start_ms;
    _Atomic int32_t used;
    _Atomic int64_t suppressed;
} nx_log_rl_t;

/* Sets the highest priority that is written. */
void nx_log_set_level(int level);
int nx_log_get_level(void);

/* Parses "error", "warning", "notice", "info", "debug"; -1 if unknown. */
int nx_log_level_parse(const char *name);
const char *nx_log_level_name(int level);

void nx_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rate-limited nx_log for one call site; use NX_LOG_RL below. */
void nx_log_rl(nx_log_rl_t *rl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define NX_LOG_RL(level, ...)                                                                      \
    do {                                                                                           \
        static nx_log_rl_t nx__rl;                                                                 \
        nx_log_rl(&nx__rl, (level), __VA_ARGS__);                                                  \
    } while (0)

#define nx_err(...)    nx_log(NX_LOG_ERR, __VA_ARGS__)
#define nx_warn(...)   nx_log(NX_LOG_WARNING, __VA_ARGS__)
#define nx_notice(...) nx_log(NX_LOG_NOTICE, __VA_ARGS__)
#define nx_info(...)   nx_log(NX_LOG_INFO, __VA_ARGS__)
#define nx_debug(...)  nx_log(NX_LOG_DEBUG, __VA_ARGS__)

/* Writes a message into a caller's errstr (STYLE: errors as return value
 * plus errstr) and returns -1, so `return nx_errf(errstr, size, ...);`
 * reads as the error return. */
int nx_errf(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Monotonic and wall clocks in ms. */
int64_t nx_now_mono_ms(void);
int64_t nx_now_wall_ms(void);

#endif /* NX_LOG_H */
