/*
 * replay_source.h: one replay input file, whatever its format: sniffs it
 * and hands it to the reader for that format (ocf_reader.h, csv_reader.h).
 *
 * The format: a file that starts with the Avro container magic "Obj\x01"
 * is an Avro Object Container File; anything else is CSV. stdin ("-") is
 * read as CSV.
 *
 * Bad input is never fatal: bad rows and datums, corrupt blocks and lost
 * records are counted in the stats (replay_stats.h) for the caller to
 * report (nothing here prints). Only I/O errors end a replay early.
 *
 * Ownership: the source borrows cfg and codec (both must outlive it) and
 * owns the file. Events' user_id bytes live in the reader's buffers and
 * stay valid until the next nx_replay_source_next() or
 * nx_replay_source_close(). offset = record number (OCF, from 0) or line
 * number (CSV, from 1); partition = -1; topic = 0.
 *
 * Memory: the reader's (ocf_reader.h, csv_reader.h). Not thread-safe; one
 * source per thread.
 */
#ifndef NX_REPLAY_SOURCE_H
#define NX_REPLAY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "event.h"
#include "replay_stats.h"

typedef struct nx_replay_source nx_replay_source_t;

/* Opens PATH ("-" = stdin, CSV only). For OCF the header is read and the
 * file's schema compiled now; a missing or unreadable file, a bad header, an
 * unknown codec or unmapped CSV columns fail here with errstr. Caller
 * closes with nx_replay_source_close(). */
nx_replay_source_t *nx_replay_source_open(const nx_config_t *cfg, nx_codec_t *codec,
                                          const char *path, char *errstr, size_t errstr_size);

/* Fills up to max events. Returns how many (> 0), 0 at the end of the
 * file, -1 on an I/O error (nx_replay_source_error() says which). now_ms is
 * passed to the codec's ts_in_future check (INT64_MAX disables it). */
int nx_replay_source_next(nx_replay_source_t *src, nx_event_t *evs, int max, int64_t now_ms);

/* Valid until nx_replay_source_close(). */
const nx_replay_stats_t *nx_replay_source_stats(const nx_replay_source_t *src);
/* "ocf" or "csv". */
const char *nx_replay_source_format(const nx_replay_source_t *src);
/* The last I/O error, "" if none. */
const char *nx_replay_source_error(const nx_replay_source_t *src);
/* Closes the file and frees src; NULL does nothing. */
void nx_replay_source_close(nx_replay_source_t *src);

#endif /* NX_REPLAY_SOURCE_H */
