/*
 * test_ops_http: the metrics endpoint (http.h) against clients that
 * misbehave, and its probes.
 *
 * 1. /healthz and /readyz follow what the loop published: "not ready:
 *    starting" before anything is, the loop's reason while it is not ready,
 *    "ready" once it is.
 * 2. Lock-out: with 64 connections from 127.0.0.1 open and idle (half of
 *    them in the middle of a request that never ends), GET /healthz from
 *    the same address still answers 200 within 1 s, and so does /metrics.
 * 3. With 128 such connections from 127.0.0.1 (one address's whole share),
 *    a probe from 127.0.0.2 still answers within 1 s.
 * 4. The idle connections are closed by the server within
 *    NX_HTTP_IDLE_TIMEOUT_S (plus slack).
 *
 * Loopback only; at most 64 + 128 client connections, every wait bounded.
 *
 * usage: test_ops_http
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "http.h"
#include "log.h"

#define IDLE_SAME_IP 64
#define IDLE_ONE_IP  NX_HTTP_MAX_PER_IP

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A loopback port nobody listens on right now. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* A connection to 127.0.0.1:port from source address `from` (127.0.0.x),
 * with 2 s send and receive timeouts so nothing here waits for ever. */
static int connect_from(const char *from, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, from, &src.sin_addr);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* GET path from `from`; the response into buf (head and body). Returns the
 * status, -1 on failure; *ms: how long it took. */
static int get(const char *from, int port, const char *path, char *buf, size_t size, int64_t *ms) {
    int64_t t0 = mono_ms();
    int code = -1;
    buf[0] = '\0';
    int fd = connect_from(from, port);
    if (fd >= 0) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
        size_t len = 0;
        ssize_t r;
        if (write(fd, req, (size_t)n) == n)
            while (len + 1 < size && (r = read(fd, buf + len, size - 1 - len)) > 0)
                len += (size_t)r;
        buf[len] = '\0';
        sscanf(buf, "HTTP/1.%*d %d", &code);
        close(fd);
    }
    *ms = mono_ms() - t0;
    return code;
}

static const char *body_of(const char *resp) {
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* Opens n connections from `from`; every other one sends the start of a
 * request and stops there. Returns how many opened. */
static int open_idle(const char *from, int port, int *fds, int n) {
    static const char partial[] = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n";
    int opened = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = connect_from(from, port);
        if (fds[i] < 0)
            continue;
        opened++;
        if (i % 2 && write(fds[i], partial, sizeof partial - 1) < 0)
            fprintf(stderr, "partial request %d: %s\n", i, strerror(errno));
    }
    return opened;
}

/* Waits (bounded by deadline_ms) until the server closed every fd; returns
 * how many it closed. */
static int wait_closed(int *fds, int n, int64_t deadline_ms) {
    int closed = 0;
    char buf[256];
    while (mono_ms() < deadline_ms && closed < n) {
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0)
                continue;
            struct pollfd p = {fds[i], POLLIN, 0};
            if (poll(&p, 1, 0) == 1) {
                ssize_t r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    close(fds[i]);
                    fds[i] = -1;
                    closed++;
                }
            }
        }
        usleep(50000);
    }
    return closed;
}

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

static void test_probes(nx_http_t *http, int port) {
    char resp[4096];
    int64_t ms;
    CHECK_INT(get("127.0.0.1", port, "/readyz", resp, sizeof resp, &ms), 503);
    CHECK(strcmp(body_of(resp), "not ready: starting\n") == 0);
    CHECK_INT(get("127.0.0.1", port, "/healthz", resp, sizeof resp, &ms), 503);

    nx_http_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    snprintf(m->not_ready, sizeof m->not_ready, "no input partitions assigned");
    nx_http_publish(http, m);
    CHECK_INT(get("127.0.0.1", port, "/healthz", resp, sizeof resp, &ms), 200);
    CHECK_INT(get("127.0.0.1", port, "/readyz", resp, sizeof resp, &ms), 503);
    CHECK(strcmp(body_of(resp), "not ready: no input partitions assigned\n") == 0);

    m->ready = 1;
    nx_http_publish(http, m);
    CHECK_INT(get("127.0.0.1", port, "/readyz", resp, sizeof resp, &ms), 200);
    CHECK(strcmp(body_of(resp), "ready\n") == 0);
    CHECK_INT(get("127.0.0.1", port, "/nothing", resp, sizeof resp, &ms), 404);
    free(m);
}

static void test_lockout(int port) {
    int same[IDLE_SAME_IP], one[IDLE_ONE_IP];
    char resp[65536];
    int64_t ms, worst = 0;

    CHECK_INT(open_idle("127.0.0.1", port, same, IDLE_SAME_IP), IDLE_SAME_IP);
    usleep(200000); /* the server has taken them all in */
    int64_t opened_at = mono_ms();
    for (int i = 0; i < 5; i++) {
        CHECK_INT(get("127.0.0.1", port, "/healthz", resp, sizeof resp, &ms), 200);
        worst = ms > worst ? ms : worst;
    }
    CHECK_INT(get("127.0.0.1", port, "/metrics", resp, sizeof resp, &ms), 200);
    CHECK_STR_HAS(resp, "nextactd_events_processed_total");
    worst = ms > worst ? ms : worst;
    fprintf(stderr, "%d idle connections from 127.0.0.1: slowest probe %lld ms\n", IDLE_SAME_IP,
            (long long)worst);
    CHECK(worst < 1000);

    /* the server closes idle connections; a client that never finishes its
     * request holds its slot no longer than one that never starts */
    int closed = wait_closed(same, IDLE_SAME_IP, opened_at + NX_HTTP_IDLE_TIMEOUT_S * 1000 + 3000);
    fprintf(stderr, "%d of %d idle connections closed by the server after %lld ms\n", closed,
            IDLE_SAME_IP, (long long)(mono_ms() - opened_at));
    CHECK_INT(closed, IDLE_SAME_IP);
    close_all(same, IDLE_SAME_IP);

    /* one address's whole share taken: another address still gets in */
    CHECK_INT(open_idle("127.0.0.1", port, one, IDLE_ONE_IP), IDLE_ONE_IP);
    usleep(200000);
    worst = 0;
    for (int i = 0; i < 5; i++) {
        CHECK_INT(get("127.0.0.2", port, "/healthz", resp, sizeof resp, &ms), 200);
        worst = ms > worst ? ms : worst;
    }
    fprintf(stderr, "%d idle connections from 127.0.0.1: slowest probe from 127.0.0.2 %lld ms\n",
            IDLE_ONE_IP, (long long)worst);
    CHECK(worst < 1000);
    close_all(one, IDLE_ONE_IP);
}

int main(void) {
    nx_log_set_level(NX_LOG_ERR);
    char listen[64], err[512];
    int port = free_port();
    CHECK(port > 0);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    nx_http_t *http = nx_http_start(listen, err, sizeof err);
    CHECK(http != NULL);
    if (!http) {
        fprintf(stderr, "%s\n", err);
        return nx_check_exit("test_ops_http");
    }
    test_probes(http, port);
    /* a live loop publishes continuously; /healthz would go stale after
     * NX_HTTP_STALE_MS, far beyond this test */
    test_lockout(port);
    nx_http_stop(http);

    /* the listen address parser, as preflight and start-up use it */
    struct sockaddr_storage ss;
    int v6 = -1;
    CHECK_INT(nx_http_parse_listen("127.0.0.1:9464", &ss, &v6, err, sizeof err), 0);
    CHECK_INT(v6, 0);
    CHECK_INT(nx_http_parse_listen("[::1]:9464", &ss, &v6, err, sizeof err), 0);
    CHECK_INT(v6, 1);
    CHECK_INT(nx_http_parse_listen("127.0.0.1:70000", &ss, &v6, err, sizeof err), -1);
    CHECK_STR_HAS(err, "1..65535");
    CHECK_INT(nx_http_parse_listen("127.0.0.1:0", &ss, &v6, err, sizeof err), -1);
    CHECK_INT(nx_http_parse_listen("localhost:9464", &ss, &v6, err, sizeof err), -1);
    CHECK_STR_HAS(err, "not an IPv4 address");
    CHECK_INT(nx_http_parse_listen("9464", &ss, &v6, err, sizeof err), -1);
    return nx_check_exit("test_ops_http");
}
