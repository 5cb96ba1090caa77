/* stages.c: the stage latency histograms (stages.h). */
#include "stages.h"

#include <math.h>

/* Upper bounds, microseconds; the last bucket is +Inf. */
static const int64_t le_us[NX_STAGES_BUCKETS - 1] = {
    50,    100,   250,   500,   1000,  2000,   3000,   4000,   5000,    7500,    10000,
    15000, 20000, 30000, 50000, 75000, 100000, 250000, 500000, 1000000, 5000000,
};

static const char *const names[NX_STAGE_N] = {"fetch",   "queued", "decode",
                                              "predict", "ack",    "to_produce"};

void nx_stages_add(nx_stages_t *st, nx_stage_t stage, int64_t us, uint64_t n) {
    if (us < 0)
        us = 0;
    int b = 0;
    while (b < NX_STAGES_BUCKETS - 1 && us > le_us[b])
        b++;
    st->count[stage][b] += n;
    st->sum_s[stage] += (double)us * 1e-6 * (double)n;
}

double nx_stages_le(int b) {
    return b < NX_STAGES_BUCKETS - 1 ? (double)le_us[b] * 1e-6 : INFINITY;
}

const char *nx_stage_name(nx_stage_t stage) {
    return stage >= 0 && stage < NX_STAGE_N ? names[stage] : "?";
}
