/*
 * csv_reader.h: events from CSV files (replay input).
 *
 * Columns are named by input.csv_columns, or by the header line when
 * input.csv_header is set and csv_columns is empty; the user id, timestamp
 * and type columns are required. Delimiter input.csv_delimiter ("\t" for
 * a tab); timestamps per input.csv_timestamp (epoch_s, epoch_ms, or
 * datetime "YYYY-MM-DD HH:MM:SS[.fff][ UTC|Z]"); fields optionally in
 * double quotes ("" for a quote; no newlines inside quotes). Each row goes
 * through the codec's field checks (nx_codec_from_fields), as a Kafka
 * payload would.
 *
 * Bad rows are not fatal: a bad row is counted under its reason in st
 * (and in the codec, for the reasons only CSV has) with its line number; a
 * line longer than the buffer is one bad row. But a file that is not CSV
 * at all is an error, not a run of bad rows:
 *   - CSV is text: a control byte other than tab, LF, VT, FF or CR in the
 *     first NX_CSV_READER_TEXT_CHECK bytes fails nx_csv_reader_new(). An
 *     Avro container whose magic was damaged is caught so: its fourth
 *     byte is the format version 1, and its fifth the varint of the
 *     metadata's entry count (below 0x20 up to 15 entries);
 *   - a file whose every row is bad (at least one row, no event, no skip)
 *     makes nx_csv_reader_next() fail at its end.
 * Otherwise only I/O errors end reading early.
 *
 * Ownership: borrows cfg, codec, fp, path and st, which must outlive the
 * reader; the caller closes fp after nx_csv_reader_destroy(). Events'
 * user_id bytes live in the reader's buffer and stay valid until the next
 * nx_csv_reader_next() or nx_csv_reader_destroy(). offset = line number
 * (from 1); partition = -1; topic = 0.
 *
 * Memory: one buffer of NX_CSV_READER_BUF bytes. Reads fp sequentially
 * (stdin works). Not thread-safe.
 */
#ifndef NX_CSV_READER_H
#define NX_CSV_READER_H

#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "config.h"
#include "event.h"
#include "replay_stats.h"

/* Read buffer; a line longer than this is a bad row. */
#define NX_CSV_READER_BUF (4u << 20)
/* Bytes at the start of the file that must be text: a header line and a
 * few rows, far more than the 5 bytes that give an Avro header away. */
#define NX_CSV_READER_TEXT_CHECK 4096

typedef struct nx_csv_reader nx_csv_reader_t;

/* Reads the first buffer and checks that it is text, checks the CSV
 * settings of cfg, and, when the columns come from the header line, reads
 * it. NULL + errstr on binary data, a bad setting, a header that does not
 * name the required columns, or no header line. */
nx_csv_reader_t *nx_csv_reader_new(const nx_config_t *cfg, nx_codec_t *codec, FILE *fp,
                                   const char *path, nx_replay_stats_t *st, char *errstr,
                                   size_t errstr_size);

/* Fills up to max (> 0) events. Returns how many (> 0), 0 at the end of the
 * file, -1 on an I/O error or, at the end, when every row was bad
 * (nx_csv_reader_error() says which). now_ms is passed to the codec's
 * ts_in_future check (INT64_MAX disables it). */
int nx_csv_reader_next(nx_csv_reader_t *cr, nx_event_t *evs, int max, int64_t now_ms);

/* The last I/O error, "" if none. */
const char *nx_csv_reader_error(const nx_csv_reader_t *cr);

void nx_csv_reader_destroy(nx_csv_reader_t *cr);

#endif /* NX_CSV_READER_H */
