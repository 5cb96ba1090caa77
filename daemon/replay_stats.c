/* replay_stats.c: counting bad records of a replay input (replay_stats.h). */
#include "replay_stats.h"

/* The first few are kept for the caller to report (replay.c logs them;
 * logging here too printed each twice). */
void nx_replay_stats_note_bad(nx_replay_stats_t *st, uint64_t where, nx_codec_reason_t reason) {
    st->bad++;
    st->by_reason[reason]++;
    if (st->n_first_bad < NX_REPLAY_STATS_FIRST_BAD)
        st->first_bad[st->n_first_bad++] = (nx_replay_bad_t){where, reason};
}
