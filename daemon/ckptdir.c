/* ckptdir.c: numbered checkpoints, fallback on load, forked writes (ckptdir.h). */
#include "ckptdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Checkpoints one directory can list when loading; far above any useful
 * checkpoint.keep (config caps it at 100), so stale leftovers fit too. */
#define MAX_FILES 1024

/* Longest a background writer may run: ten minutes is far beyond writing
 * millions of users (about 1 s per million here). */
#define CHILD_TIMEOUT_S 600

struct nx_ckptdir {
    char *dir;
    int keep;
    uint64_t next_seq; /* sequence number of the next checkpoint */
    pid_t child;       /* background writer, 0 = none */
    uint64_t child_seq;
    int64_t child_start_ms; /* monotonic */
    int child_err;          /* read end of the pipe the child writes its error to, -1 = none */
    nx_ckptdir_stats_t stats;
};

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void nx_ckptdir_path(const nx_ckptdir_t *ckdir, uint64_t seq, char *buf, size_t size) {
    snprintf(buf, size, "%s/ckpt-%012" PRIu64 ".nxc", ckdir->dir, seq);
}

/* "ckpt-<digits>.nxc" -> seq; 0 if the name is something else. */
static uint64_t parse_name(const char *name) {
    size_t len = strlen(name);
    if (len < 10 || strncmp(name, "ckpt-", 5) != 0 || strcmp(name + len - 4, ".nxc") != 0)
        return 0;
    uint64_t seq = 0;
    for (const char *p = name + 5; p < name + len - 4; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        seq = seq * 10 + (uint64_t)(*p - '0');
    }
    return seq;
}

static int cmp_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Sequence numbers present, newest first. Returns the count (<= cap). */
static int list_seqs(const nx_ckptdir_t *ckdir, uint64_t *seqs, int cap) {
    DIR *d = opendir(ckdir->dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < cap) {
        uint64_t seq = parse_name(de->d_name);
        if (seq)
            seqs[n++] = seq;
    }
    closedir(d);
    qsort(seqs, (size_t)n, sizeof *seqs, cmp_desc);
    return n;
}

static void remove_tmp(const nx_ckptdir_t *ckdir) {
    DIR *d = opendir(ckdir->dir);
    if (!d)
        return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
            snprintf(path, sizeof path, "%s/%s", ckdir->dir, de->d_name);
            if (unlink(path) == 0)
                nx_notice("checkpoint: removed %s, left by an interrupted write", path);
        }
    }
    closedir(d);
}

static int mkdir_p(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

nx_ckptdir_t *nx_ckptdir_open(const char *dir, int keep, char *errstr, size_t errstr_size) {
    nx_ckptdir_t *ckdir = NULL;
    uint64_t *seqs = NULL;
    if (keep < 1) {
        nx_errf(errstr, errstr_size, "checkpoint.keep must be at least 1");
        goto err;
    }
    if (mkdir_p(dir) < 0) {
        nx_errf(errstr, errstr_size, "checkpoint directory %s: %s", dir, strerror(errno));
        goto err;
    }
    if (!(ckdir = calloc(1, sizeof *ckdir)) || !(ckdir->dir = strdup(dir)) ||
        !(seqs = malloc(MAX_FILES * sizeof *seqs))) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    ckdir->keep = keep;
    ckdir->child_err = -1;
    remove_tmp(ckdir);
    int n = list_seqs(ckdir, seqs, MAX_FILES);
    ckdir->next_seq = n ? seqs[0] + 1 : 1;
    free(seqs);
    return ckdir;
err:
    free(seqs);
    nx_ckptdir_destroy(ckdir);
    return NULL;
}

void nx_ckptdir_destroy(nx_ckptdir_t *ckdir) {
    if (!ckdir)
        return;
    if (ckdir->child)
        nx_ckptdir_poll(ckdir, 1);
    free(ckdir->dir);
    free(ckdir);
}

int64_t nx_ckptdir_load(nx_ckptdir_t *ckdir, nx_ckptdir_load_fn load, void *opaque, char *errstr,
                        size_t errstr_size) {
    uint64_t *seqs = malloc(MAX_FILES * sizeof *seqs);
    char path[4096], why[1024], first[1024] = "";
    if (!seqs)
        return nx_errf(errstr, errstr_size, "out of memory");
    int n = list_seqs(ckdir, seqs, MAX_FILES);
    int64_t loaded = n ? -1 : 0;
    for (int i = 0; i < n; i++) {
        nx_ckptdir_path(ckdir, seqs[i], path, sizeof path);
        if (load(opaque, path, why, sizeof why) == 0) {
            loaded = (int64_t)seqs[i];
            if (i > 0)
                nx_err("checkpoint: FELL BACK to %s, %d newer checkpoint(s) refused", path, i);
            else
                nx_notice("checkpoint: loaded %s", path);
            ckdir->stats.last_seq = seqs[i];
            break;
        }
        nx_err("checkpoint: %s refused: %s%s", path, why,
               i + 1 < n ? "; trying the previous one" : "");
        if (i == 0)
            snprintf(first, sizeof first, "%.512s: %.500s", path, why);
    }
    free(seqs);
    if (loaded < 0)
        nx_errf(errstr, errstr_size, "no loadable checkpoint (newest %s)", first);
    return loaded;
}

/* Keeps the newest `keep` checkpoints. */
static void prune(nx_ckptdir_t *ckdir) {
    uint64_t *seqs = malloc(MAX_FILES * sizeof *seqs);
    char path[4096];
    if (!seqs)
        return;
    int n = list_seqs(ckdir, seqs, MAX_FILES);
    for (int i = ckdir->keep; i < n; i++) {
        nx_ckptdir_path(ckdir, seqs[i], path, sizeof path);
        if (unlink(path) < 0)
            nx_warn("checkpoint: cannot remove %s: %s", path, strerror(errno));
    }
    free(seqs);
}

/* A write that failed: counted, its reason kept for the metrics and the
 * readiness answer until a write succeeds. */
static void failed(nx_ckptdir_t *ckdir, const char *why) {
    ckdir->stats.failed++;
    ckdir->stats.failing = 1;
    snprintf(ckdir->stats.last_error, sizeof ckdir->stats.last_error, "%s", why);
}

/* What a failed write leaves behind, in words an operator can act on. */
static const char *left_behind(const nx_ckptdir_t *ckdir) {
    return ckdir->stats.last_seq ? "the previous checkpoint stays the newest"
                                 : "no checkpoint exists yet: the state is not durable";
}

static void written(nx_ckptdir_t *ckdir, uint64_t seq, int64_t ms) {
    ckdir->stats.written++;
    ckdir->stats.failing = 0;
    ckdir->stats.last_error[0] = '\0';
    ckdir->stats.last_wall_ms = nx_now_wall_ms();
    ckdir->stats.last_ms = ms;
    ckdir->stats.last_seq = seq;
    prune(ckdir);
}

int nx_ckptdir_save(nx_ckptdir_t *ckdir, nx_ckptdir_write_fn write, void *opaque, char *errstr,
                    size_t errstr_size) {
    char path[4096];
    if (ckdir->child)
        nx_ckptdir_poll(ckdir, 1);
    uint64_t seq = ckdir->next_seq++;
    nx_ckptdir_path(ckdir, seq, path, sizeof path);
    int64_t t0 = nx_now_mono_ms();
    if (write(opaque, path, errstr, errstr_size) < 0) {
        failed(ckdir, errstr);
        unlink(path);
        return -1;
    }
    written(ckdir, seq, nx_now_mono_ms() - t0);
    return 0;
}

/* write(2) of all len bytes (the child's error text to its pipe). */
static ssize_t write_all(int fd, const char *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Reads what the reaped child wrote to its error pipe (it has exited: all
 * of it is there). Returns its length, 0 if none. */
static ssize_t child_reason(nx_ckptdir_t *ckdir, char *buf, size_t size) {
    if (ckdir->child_err < 0)
        return 0;
    ssize_t n = read(ckdir->child_err, buf, size - 1);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? n : 0;
}

static void close_child_err(nx_ckptdir_t *ckdir) {
    if (ckdir->child_err >= 0)
        close(ckdir->child_err);
    ckdir->child_err = -1;
}

int nx_ckptdir_save_bg(nx_ckptdir_t *ckdir, nx_ckptdir_write_fn write, void *opaque, char *errstr,
                       size_t errstr_size) {
    char path[4096];
    if (ckdir->child)
        return nx_errf(errstr, errstr_size, "a checkpoint write is still running (pid %d)",
                       (int)ckdir->child);
    uint64_t seq = ckdir->next_seq;
    nx_ckptdir_path(ckdir, seq, path, sizeof path);
    /* stdio buffers would be flushed twice (parent and child) */
    fflush(stdout);
    fflush(stderr);
    /* the child's reason for a failure (with its errno text) comes back
     * through a pipe, so the parent can log, count and show it */
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return nx_errf(errstr, errstr_size, "pipe: %s", strerror(errno));
    int64_t t0 = mono_us();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return nx_errf(errstr, errstr_size, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        /* the child: a snapshot of the parent at the fork; write and go,
         * without atexit handlers or stdio flushes of the parent's state */
        char why[1024];
        /* die with the parent: an orphaned writer racing the next process's
         * own writer for the same file name would be worse than none */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        /* a writer stuck on a lock some thread of the parent held at the
         * fork (the child has only this thread) must not block checkpoints
         * for ever: it dies, counted as failed, and the next one is tried */
        alarm(CHILD_TIMEOUT_S);
        signal(SIGALRM, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_IGN); /* a terminal's ^C is for the parent */
        signal(SIGHUP, SIG_IGN);
        close(fds[0]);
        if (write(opaque, path, why, sizeof why) < 0) {
            ssize_t w = write_all(fds[1], why, strlen(why));
            (void)w;
            _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    ckdir->child_err = fds[0];
    ckdir->stats.fork_us = mono_us() - t0;
    ckdir->next_seq++;
    ckdir->child = pid;
    ckdir->child_seq = seq;
    ckdir->child_start_ms = nx_now_mono_ms();
    return 0;
}

int nx_ckptdir_poll(nx_ckptdir_t *ckdir, int wait) {
    if (!ckdir->child)
        return 0;
    int status = 0;
    pid_t got;
    do
        got = waitpid(ckdir->child, &status, wait ? 0 : WNOHANG);
    while (got < 0 && errno == EINTR);
    if (got == 0)
        return 0;
    pid_t pid = ckdir->child;
    ckdir->child = 0;
    char path[4096];
    int ok = got > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    nx_ckptdir_path(ckdir, ckdir->child_seq, path, sizeof path);
    if (ok) {
        close_child_err(ckdir);
        written(ckdir, ckdir->child_seq, nx_now_mono_ms() - ckdir->child_start_ms);
        nx_info("checkpoint: wrote %s in %lld ms (fork paused the loop %lld us)", path,
                (long long)ckdir->stats.last_ms, (long long)ckdir->stats.fork_us);
        return 1;
    }
    char why[1024] = "";
    if (got > 0 && WIFSIGNALED(status))
        snprintf(why, sizeof why, "writer %d killed by signal %d", (int)pid, WTERMSIG(status));
    else if (child_reason(ckdir, why, sizeof why) <= 0)
        snprintf(why, sizeof why, "writer %d failed", (int)pid);
    failed(ckdir, why);
    nx_err("checkpoint: %s failed: %s; %s", path, why, left_behind(ckdir));
    close_child_err(ckdir);
    /* a writer that died mid-way leaves its temporary file (or nothing) */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    return -1;
}

void nx_ckptdir_cancel(nx_ckptdir_t *ckdir) {
    if (!ckdir->child)
        return;
    kill(ckdir->child, SIGKILL);
    nx_ckptdir_poll(ckdir, 1);
}

int nx_ckptdir_busy(const nx_ckptdir_t *ckdir) {
    return ckdir->child != 0;
}

pid_t nx_ckptdir_child(const nx_ckptdir_t *ckdir) {
    return ckdir->child;
}

void nx_ckptdir_stats(const nx_ckptdir_t *ckdir, nx_ckptdir_stats_t *stats) {
    *stats = ckdir->stats;
}
