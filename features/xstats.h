/*
 * xstats.h: cross-user statistics of items and categories, in one bounded
 * table of decayed counters.
 *
 * What it keeps, per key (a 32-bit fingerprint of an item or a category,
 * never 0): the decayed count of events on the key (its popularity) and,
 * per class, the decayed count of the resolved next-action labels of the
 * events on it (how often an event on it was followed by a click, a cart,
 * a purchase, nothing). Over all keys it keeps the same label counts once
 * more: the prior that a key's rates shrink towards while it has few
 * labels. Counters decay exponentially in event time with one time
 * constant (window_ms): count = sum of exp(-(T - ts) / window) over the
 * key's events (labels count at their example's time), T the key's latest
 * time; an update at a time before T adds its weight decayed to T.
 *
 * Layout and why: a fixed array of 32-byte slots (64 with more than 5
 * classes), a power of two of them within the byte budget given at
 * creation, never grown: memory is bounded whatever the catalogue. A key
 * lives in one of the two slots of its bucket (one 64-byte line); a new
 * key takes the first empty one, else replaces the one updated longest ago
 * in event time. So a rare or stale key may be forgotten (it reads as
 * unseen: popularity 0, the prior's rates), and two keys with the same
 * fingerprint share counters: hashed counters, as in a count-min sketch
 * of depth one with a replacement rule.
 *
 * Guarantees: nx_xstats_event, nx_xstats_label and nx_xstats_read are
 * O(1) and allocate nothing; the same calls in the same order give the same
 * bits on any IEEE machine (the decay's exp is computed here, not by libm).
 * The table is mapped lazily zeroed (MAP_NORESERVE): untouched slots cost
 * no memory. Not thread-safe: one owner. nx_xstats_new's result is the
 * caller's, freed with nx_xstats_destroy.
 */
#ifndef NX_XSTATS_H
#define NX_XSTATS_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"

#define NX_XSTATS_MAX_CLASSES 13 /* label classes per key at most (slot of 64 bytes) */

typedef struct nx_xstats nx_xstats_t;

/* A table of at most bytes (>= 4096) for n_classes (1..NX_XSTATS_MAX_CLASSES)
 * label classes, decaying with time constant window_ms (> 0). NULL + errstr
 * on bad arguments or when the mapping fails. */
nx_xstats_t *nx_xstats_new(size_t bytes, int n_classes, int64_t window_ms, char *errstr,
                           size_t errstr_size);
void nx_xstats_destroy(nx_xstats_t *xs);

/* Bytes the table spans (slots * slot size, within the budget). */
size_t nx_xstats_bytes(const nx_xstats_t *xs);

/* Counts an event on key (!= 0) at ts_ms. */
void nx_xstats_event(nx_xstats_t *xs, uint32_t key, int64_t ts_ms);

/* Counts a resolved label (class 0..n_classes-1) of an event on key (!= 0)
 * made at ts_ms, into the key's counters and the prior's. */
void nx_xstats_label(nx_xstats_t *xs, uint32_t key, int64_t ts_ms, int label);

/* Reads key at ts_ms: *events = its decayed event count (0 if unseen), and
 * rate[c] for each class c = (labels_c + A prior_c) / (labels + A), the
 * key's label shares shrunk towards the prior's by A = NX_XSTATS_PRIOR
 * pseudo-labels (the prior's shares are uniform before any label). Changes
 * nothing. */
void nx_xstats_read(const nx_xstats_t *xs, uint32_t key, int64_t ts_ms, float *events, float *rate);

/* Prefetches the line of key's bucket (a hint; nothing else happens). */
void nx_xstats_prefetch(const nx_xstats_t *xs, uint32_t key);

/* Saves the table (a versioned header, the prior, the used slots) /
 * restores it into a table of any size: keys return to their slots when
 * the size is the same (so a restored table continues bit-identically),
 * else each is placed by the insertion rule. Restore needs the same
 * n_classes and window. 0 or -1 (+ errstr). */
int nx_xstats_save(const nx_xstats_t *xs, nx_stream_write_fn write, void *opaque);
int nx_xstats_restore(nx_xstats_t *xs, nx_stream_read_fn read, void *opaque, char *errstr,
                      size_t errstr_size);

/* Pseudo-labels of the prior in each key's rates: a key's own shares take
 * over after a few dozen labels; one or two labels move it only a little. */
#define NX_XSTATS_PRIOR 10.0f

#endif /* NX_XSTATS_H */
