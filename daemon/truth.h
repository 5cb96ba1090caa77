/*
 * truth.h: the generator's truth file (`nextactd gen --truth`) read beside
 * a replay of the same stream, so that the replay can score the oracle's
 * probabilities on exactly the examples it scores the model's on.
 *
 * The file: a header "index,user,ts,type,p_<class>,..." then one row per
 * event of the stream, in stream order. Each row is checked against the
 * event it is read for (same user id and timestamp): a truth file of
 * another stream, or one cut short, is an error, never a silent
 * misalignment. Columns are found by name, so the probabilities come out in
 * the caller's class order whatever the file's.
 *
 * Ownership: the reader owns its file and its line buffer; class names are
 * copied. Not thread-safe: one reader, one thread.
 */
#ifndef NX_TRUTH_H
#define NX_TRUTH_H

#include <stddef.h>

#include "event.h"

typedef struct nx_truth nx_truth_t;

/* Opens path and maps its columns onto the K classes (class_names[k],
 * e.g. "click" ... "none": column p_<name>). Caller frees with
 * nx_truth_close. NULL + errstr when the file cannot be read or lacks a
 * column. */
nx_truth_t *nx_truth_open(const char *path, const char *const *class_names, int K, char *errstr,
                          size_t errstr_size);

/* Reads the row of the next event ev into p (K floats, each in [0, 1]).
 * 0, or -1 + errstr: no row left, a malformed row, or a row of another
 * event (user id or timestamp differ). */
int nx_truth_next(nx_truth_t *truth, const nx_event_t *ev, float *p, char *errstr,
                  size_t errstr_size);

void nx_truth_close(nx_truth_t *truth);

#endif /* NX_TRUTH_H */
