/*
 * replay_source.h: one replay input file, whatever its format: sniffs it
 * and hands it to the reader for that format (ocf_reader.h, csv_reader.h).
 *
 * The format: a file that starts with the Avro container magic "Obj\x01"
 * is an Avro Object Container File; anything else must be CSV, which is
 * text: a file that is neither is an error, never a run of bad rows.
 * csv_reader.h has the rule: a control byte (but tab, LF, VT, FF, CR) in
 * the first 4 KiB fails the open, which catches an Avro container with a
 * damaged magic (its version byte and metadata varints are control
 * bytes); a CSV file whose every row is bad fails at its end. stdin ("-")
 * is read as CSV.
 *
 * Bad records are never fatal: bad rows and datums, corrupt blocks and lost
 * records (or blocks whose loss is unknown) are counted in the stats
 * (replay_stats.h) for the caller to report (nothing here prints). Only
 * I/O errors and input that is not OCF nor CSV end a replay early.
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
 * unknown codec, binary data that is not OCF, or unmapped CSV columns fail
 * here with errstr. Caller closes with nx_replay_source_close(). */
nx_replay_source_t *nx_replay_source_open(const nx_config_t *cfg, nx_codec_t *codec,
                                          const char *path, char *errstr, size_t errstr_size);

/* Fills up to max events. Returns how many (> 0), 0 at the end of the
 * file, -1 on an I/O error or at the end of a CSV file whose every row was
 * bad (nx_replay_source_error() says which). now_ms is passed to the
 * codec's ts_in_future check (INT64_MAX disables it). */
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
