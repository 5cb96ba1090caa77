/*
 * scrape.h: reading nextactd's /metrics from a test.
 *
 * Blocking, loopback only, for tests: a plain HTTP/1.0 GET and a lookup of
 * one sample in the Prometheus text.
 */
#ifndef NX_SCRAPE_H
#define NX_SCRAPE_H

#include <stddef.h>

/* GET path from 127.0.0.1:port; the whole response (head and body,
 * NUL-terminated, cut at size - 1) into buf. Returns the status code, or -1
 * if the connection or request failed. */
int nx_scrape_get(int port, const char *path, char *buf, size_t size);

/* The value of the sample whose name, labels included, is exactly name
 * (e.g. "nextactd_events_in_total{topic=\"clicks\"}"); -1 if absent. */
long long nx_scrape_metric(const char *text, const char *name);

#endif /* NX_SCRAPE_H */
