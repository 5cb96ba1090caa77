/* log.c: stderr logging with syslog prefixes and rate limiting (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = NX_LOG_INFO;

static const char *const level_names[] = {
    [NX_LOG_ERR] = "error", [NX_LOG_WARNING] = "warning", [NX_LOG_NOTICE] = "notice",
    [NX_LOG_INFO] = "info", [NX_LOG_DEBUG] = "debug",
};

void nx_log_set_level(int level) {
    atomic_store(&log_level, level);
}

int nx_log_get_level(void) {
    return atomic_load(&log_level);
}

int nx_log_level_parse(const char *name) {
    for (int i = NX_LOG_ERR; i <= NX_LOG_DEBUG; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *nx_log_level_name(int level) {
    if (level < NX_LOG_ERR || level > NX_LOG_DEBUG)
        return "?";
    return level_names[level];
}

int64_t nx_now_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t nx_now_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How a line starts, decided at the first line: on a terminal (and not
 * under journald, whose JOURNAL_STREAM names the stream stderr is) the local
 * time to the millisecond and the level's name, for a person reading it;
 * anywhere else the syslog prefix, which journald turns back into the
 * level and tests and log shippers match on. */
enum { STYLE_UNKNOWN, STYLE_PREFIX, STYLE_TERMINAL };
static _Atomic int log_style = STYLE_UNKNOWN;

static int journal_stderr(void) {
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat sb;
    return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &sb) == 0 &&
           (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

static int style(void) {
    int st = atomic_load(&log_style);
    if (st == STYLE_UNKNOWN) {
        st = isatty(STDERR_FILENO) && !journal_stderr() ? STYLE_TERMINAL : STYLE_PREFIX;
        atomic_store(&log_style, st);
    }
    return st;
}

static int line_start(char *line, size_t size, int level) {
    if (style() == STYLE_PREFIX)
        return snprintf(line, size, "<%d>", level);
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    return snprintf(line, size, "%02d:%02d:%02d.%03ld %-7s ", tm.tm_hour, tm.tm_min, tm.tm_sec,
                    ts.tv_nsec / 1000000, nx_log_level_name(level));
}

static void log_write(int level, const char *suffix, const char *fmt, va_list ap) {
    /* One buffer, one write(2): concurrent lines never interleave. Long
     * lines are cut at 1 KiB, which no message of ours reaches. */
    char line[1024];
    int n = line_start(line, sizeof line, level);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    if (suffix) {
        size_t s = strlen(suffix);
        if (len + s > sizeof line - 2)
            s = sizeof line - 2 - len;
        memcpy(line + len, suffix, s);
        len += s;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed write to stderr */
}

void nx_log(int level, const char *fmt, ...) {
    if (level > atomic_load(&log_level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_write(level, NULL, fmt, ap);
    va_end(ap);
}

void nx_log_rl(nx_log_rl_t *rl, int level, const char *fmt, ...) {
    if (level > atomic_load(&log_level))
        return;
    int64_t now = nx_now_mono_ms();
    int64_t start = atomic_load_explicit(&rl->window_start_ms, memory_order_relaxed);
    int64_t suppressed = 0;
    if (now - start >= NX_LOG_RL_PERIOD_MS || start == 0) {
        atomic_store_explicit(&rl->window_start_ms, now, memory_order_relaxed);
        atomic_store_explicit(&rl->used, 0, memory_order_relaxed);
        suppressed = atomic_exchange_explicit(&rl->suppressed, 0, memory_order_relaxed);
    }
    if (atomic_fetch_add_explicit(&rl->used, 1, memory_order_relaxed) >= NX_LOG_RL_BURST) {
        atomic_fetch_add_explicit(&rl->suppressed, 1, memory_order_relaxed);
        return;
    }
    char suffix[64];
    if (suppressed > 0)
        snprintf(suffix, sizeof suffix, " (%lld similar lines suppressed)", (long long)suppressed);
    va_list ap;
    va_start(ap, fmt);
    log_write(level, suppressed > 0 ? suffix : NULL, fmt, ap);
    va_end(ap);
}

int nx_errf(char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
    return -1;
}
