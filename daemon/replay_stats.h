/*
 * replay_stats.h: what a replay input reader counts (ocf_reader.h,
 * csv_reader.h), and what `nextactd replay` reports of it.
 *
 * Every row or datum read is an event, a skip (type mapped to "") or a bad
 * record counted under its reason; the first NX_REPLAY_STATS_FIRST_BAD bad
 * ones are kept with their place for the caller to report (readers print
 * nothing). OCF blocks that cannot be read are counted apart, with the
 * records lost in them where their number is known.
 *
 * Ownership: the struct is plain data, owned by whoever holds it (the
 * replay source); readers borrow it. Not thread-safe.
 */
#ifndef NX_REPLAY_STATS_H
#define NX_REPLAY_STATS_H

#include <stdint.h>

#include "codec.h"

/* Bad rows remembered (and logged) with their line numbers. */
#define NX_REPLAY_STATS_FIRST_BAD 10

typedef struct nx_replay_bad {
    uint64_t where; /* CSV line (from 1) or OCF record number (from 0) */
    nx_codec_reason_t reason;
} nx_replay_bad_t;

typedef struct nx_replay_stats {
    uint64_t records; /* rows or datums read (header excluded) */
    uint64_t events;  /* events returned */
    uint64_t skipped; /* type mapped to "" */
    uint64_t bad;     /* rows or datums rejected */
    uint64_t by_reason[NX_CODEC_N_REASONS];
    uint64_t corrupt_blocks; /* OCF: blocks skipped whole or in part */
    /* OCF: records in corrupt blocks never decoded, counted from the
     * block's record count when that count is plausible (ocf_reader.h) */
    uint64_t lost_records;
    /* OCF: corrupt blocks whose record count could not be read or is not
     * plausible: the records lost in them are unknown, and not in
     * lost_records */
    uint64_t unreadable_blocks;
    uint64_t bytes_read;
    uint64_t file_size; /* 0 when unknown (a pipe) */
    int n_first_bad;
    nx_replay_bad_t first_bad[NX_REPLAY_STATS_FIRST_BAD];
} nx_replay_stats_t;

/* Counts one rejected row or datum at `where` (line or record number). */
void nx_replay_stats_note_bad(nx_replay_stats_t *st, uint64_t where, nx_codec_reason_t reason);

#endif /* NX_REPLAY_STATS_H */
