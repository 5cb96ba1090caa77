/* guard.c: what serves predictions, and when the model rolls back
 * (guard.h). */
#include "guard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Recent good windows the best ratio is taken over: the model's quality
 * of the last ~RECENT windows, so slow drift moves the reference along. */
#define RECENT 8
/* Windows in fallback, still outside the margin, before the guard takes
 * the stream as changed (concept drift) rather than a burst. */
#define FALLBACK_WINDOWS 2
/* Learning-rate multiplier after a rollback, until the model recovers. */
#define GUARD_LR_SCALE 0.5f
/* Probabilities are floored here before the log, as the metrics do. */
#define PMIN         1e-7
#define SAVE_VERSION 1u

struct nx_guard {
    nx_guard_params_t p;
    nx_model_state_t state;
    double *count; /* (K) labels seen per class */
    double total;
    uint64_t n;                    /* examples in the current window */
    double loss_model, loss_prior; /* their sums */
    int nonfinite;                 /* a rollback for a non-finite output this window */
    double recent[RECENT];         /* ratios of recent good windows */
    int n_recent, next_recent;
    int fallback_left;
    int suspect; /* windows in a row outside the margin while serving */
    nx_guard_stats_t st;
};

nx_guard_t *nx_guard_new(const nx_guard_params_t *params, char *errstr, size_t errstr_size) {
    if (params->K < 2 || params->window < 1 || !(params->margin > 0)) {
        nx_errf(errstr, errstr_size, "guard: bad parameters");
        return NULL;
    }
    nx_guard_t *g = calloc(1, sizeof *g);
    if (!g || !(g->count = calloc((size_t)params->K, sizeof *g->count))) {
        free(g);
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    g->p = *params;
    g->state = params->enabled ? NX_MODEL_WARMING : NX_MODEL_SERVING;
    g->st.last_ratio = g->st.best_ratio = NAN;
    return g;
}

void nx_guard_destroy(nx_guard_t *g) {
    if (!g)
        return;
    free(g->count);
    free(g);
}

nx_model_state_t nx_guard_state(const nx_guard_t *g) {
    return g->state;
}

void nx_guard_prior(const nx_guard_t *g, float *q) {
    double denom = g->total + g->p.K;
    for (int k = 0; k < g->p.K; k++)
        q[k] = (float)((g->count[k] + 1) / denom);
}

/* The reference a window is judged against: the best ratio of the recent
 * good windows (a single bad window is not enough to roll back: see
 * window_end). */
static double best_recent(const nx_guard_t *g) {
    double best = INFINITY;
    for (int i = 0; i < g->n_recent; i++)
        if (g->recent[i] < best)
            best = g->recent[i];
    return best;
}

static void keep_good(nx_guard_t *g, double ratio, nx_guard_action_t *act) {
    g->recent[g->next_recent] = ratio;
    g->next_recent = (g->next_recent + 1) % RECENT;
    if (g->n_recent < RECENT)
        g->n_recent++;
    act->snapshot = 1;
    g->st.snapshots++;
}

static void roll_back(nx_guard_t *g, nx_guard_action_t *act, const char *why) {
    act->rollback = 1;
    act->lr = GUARD_LR_SCALE;
    g->suspect = 0;
    /* warming, the prior is served anyway: the model starts over */
    if (g->state != NX_MODEL_WARMING)
        g->state = NX_MODEL_FALLBACK;
    g->fallback_left = FALLBACK_WINDOWS;
    g->st.rollbacks++;
    nx_warn("model guard: %s; rolled back to the last good snapshot, learning rate x%.2g", why,
            (double)GUARD_LR_SCALE);
}

/* The window just ended: decide. */
static int window_end(nx_guard_t *g, nx_guard_action_t *act) {
    double ratio = g->loss_prior > 0 ? g->loss_model / g->loss_prior : NAN;
    double best = best_recent(g);
    char why[160];
    g->st.windows++;
    g->st.last_ratio = ratio;
    g->n = 0;
    g->loss_model = g->loss_prior = 0;
    g->nonfinite = 0;
    switch (g->state) {
    case NX_MODEL_WARMING:
        if (isfinite(ratio) && ratio < 1) {
            g->state = NX_MODEL_SERVING;
            keep_good(g, ratio, act);
            nx_notice("model guard: the model beats the prior (loss ratio %.3f); serving it",
                      ratio);
        }
        break;
    case NX_MODEL_SERVING:
        if (!isfinite(ratio)) {
            roll_back(g, act, "a window's loss is not finite");
        } else if (ratio > best * (1 + g->p.margin)) {
            /* one bad window can be noise (a burst of new users, a quiet
             * hour): the second in a row is not; the snapshot taken before
             * the first is the one restored either way */
            if (g->suspect++) {
                snprintf(why, sizeof why,
                         "two windows in a row at loss ratio %.3f against the best recent %.3f",
                         ratio, best);
                roll_back(g, act, why);
            }
        } else {
            g->suspect = 0;
            if (ratio <= best * (1 + g->p.margin / 2))
                keep_good(g, ratio, act);
        }
        break;
    case NX_MODEL_FALLBACK:
        if (isfinite(ratio) && ratio <= best * (1 + g->p.margin)) {
            g->state = NX_MODEL_SERVING;
            act->lr = 1.0f;
            nx_notice("model guard: recovered (loss ratio %.3f); serving the model", ratio);
        } else if (--g->fallback_left <= 0 && isfinite(ratio)) {
            /* Still worse after the rollback, with finite losses: not a
             * burst to ride out but a change of the stream (concept
             * drift), which the model must learn at its full rate. The
             * recent windows no longer say what good is: start over. */
            g->state = NX_MODEL_SERVING;
            act->lr = 1.0f;
            g->n_recent = g->next_recent = 0;
            keep_good(g, ratio, act);
            nx_notice("model guard: the stream changed (loss ratio %.3f after the rollback); "
                      "serving the model, learning at its full rate",
                      ratio);
        }
        break;
    }
    g->st.best_ratio = g->n_recent ? best_recent(g) : NAN;
    return act->snapshot || act->rollback || act->lr > 0;
}

int nx_guard_example(nx_guard_t *g, const float *p, int32_t y, nx_guard_action_t *act) {
    *act = (nx_guard_action_t){0};
    if (!g->p.enabled || y < 0 || y >= g->p.K)
        return 0;
    double pm = p[y], q = (g->count[y] + 1) / (g->total + g->p.K);
    g->loss_model += -log(isfinite(pm) && pm > PMIN ? pm : PMIN);
    g->loss_prior += -log(q);
    g->count[y]++;
    g->total++;
    if (++g->n < g->p.window)
        return 0;
    return window_end(g, act);
}

int nx_guard_nonfinite(nx_guard_t *g, nx_guard_action_t *act) {
    *act = (nx_guard_action_t){0};
    if (!g->p.enabled || g->nonfinite)
        return 0;
    g->nonfinite = 1;
    roll_back(g, act, "a prediction was not a finite probability");
    return 1;
}

void nx_guard_stats(const nx_guard_t *g, nx_guard_stats_t *stats) {
    *stats = g->st;
    stats->state = g->state;
}

void nx_guard_serve_loaded(nx_guard_t *g) {
    if (g->p.enabled)
        g->state = NX_MODEL_SERVING;
}

int nx_guard_save(const nx_guard_t *g, nx_stream_write_fn write, void *w) {
    uint32_t version = SAVE_VERSION, K = (uint32_t)g->p.K, state = (uint32_t)g->state;
    int32_t n_recent = g->n_recent, next_recent = g->next_recent, left = g->fallback_left;
    int rc =
        write(w, &version, sizeof version) | write(w, &K, sizeof K) |
        write(w, &state, sizeof state) | write(w, g->count, (size_t)g->p.K * sizeof *g->count) |
        write(w, &g->total, sizeof g->total) | write(w, &g->n, sizeof g->n) |
        write(w, &g->loss_model, sizeof g->loss_model) |
        write(w, &g->loss_prior, sizeof g->loss_prior) | write(w, g->recent, sizeof g->recent) |
        write(w, &n_recent, sizeof n_recent) | write(w, &next_recent, sizeof next_recent) |
        write(w, &left, sizeof left) | write(w, &g->st, sizeof g->st);
    return rc ? -1 : 0;
}

int nx_guard_load(nx_guard_t *g, nx_stream_read_fn read, void *r) {
    uint32_t version, K, state;
    int32_t n_recent, next_recent, left;
    if (read(r, &version, sizeof version) < 0 || version != SAVE_VERSION ||
        read(r, &K, sizeof K) < 0 || K != (uint32_t)g->p.K || read(r, &state, sizeof state) < 0 ||
        state > NX_MODEL_FALLBACK || read(r, g->count, (size_t)g->p.K * sizeof *g->count) < 0 ||
        read(r, &g->total, sizeof g->total) < 0 || read(r, &g->n, sizeof g->n) < 0 ||
        read(r, &g->loss_model, sizeof g->loss_model) < 0 ||
        read(r, &g->loss_prior, sizeof g->loss_prior) < 0 ||
        read(r, g->recent, sizeof g->recent) < 0 || read(r, &n_recent, sizeof n_recent) < 0 ||
        read(r, &next_recent, sizeof next_recent) < 0 || read(r, &left, sizeof left) < 0 ||
        read(r, &g->st, sizeof g->st) < 0 || n_recent < 0 || n_recent > RECENT || next_recent < 0 ||
        next_recent >= RECENT)
        return -1;
    g->state = g->p.enabled ? (nx_model_state_t)state : NX_MODEL_SERVING;
    g->n_recent = n_recent;
    g->next_recent = next_recent;
    g->fallback_left = left;
    return 0;
}
