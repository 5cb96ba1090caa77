/*
 * featurize.c: the feature schema and the featurizer's tables, built from
 * the layout in featurize.h (which holds the per-event code and says how to
 * add a feature).
 */
#include "featurize.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "event.h"

/* How a family repeats (NX_LAYOUT's second column). */
enum { REP_ONCE, REP_TYPE, REP_CLASS, REP_WINDOW, REP_WINDOW_TYPE };

/* The layout as data: per family its bit, repetition and row names. */
#define NX_ROW_NAME(row, name)       name,
#define NX_FAM_NAMES(fam, rep, rows) static const char *const names_##fam[] = {rows(NX_ROW_NAME)};
NX_LAYOUT(NX_FAM_NAMES)

static const struct nx_family {
    uint32_t bit; /* NX_FEAT_* */
    int repeat;   /* REP_* */
    int n_rows;
    const char *const *names; /* (n_rows) printf patterns: window, then type name */
} layout[NX_FAM_N] = {
#define NX_FAM_ENTRY(fam, rep, rows) {NX_FEAT_##fam, REP_##rep, NX_NROWS_##fam, names_##fam},
    NX_LAYOUT(NX_FAM_ENTRY)};

/* Repetitions of a family under params p. */
static int family_reps(int repeat, const nx_store_params_t *p) {
    switch (repeat) {
    case REP_TYPE:
        return p->n_types;
    case REP_CLASS:
        return p->n_types + 1;
    case REP_WINDOW:
        return p->n_windows;
    case REP_WINDOW_TYPE:
        return p->n_windows * p->n_types;
    default:
        return 1;
    }
}

static void fmt_dur(char *buf, size_t size, int64_t ms) {
    if (ms % 3600000 == 0)
        snprintf(buf, size, "%" PRId64 "h", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, size, "%" PRId64 "m", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%" PRId64 "s", ms / 1000);
    else
        snprintf(buf, size, "%" PRId64 "ms", ms);
}

/* Names (from the layout's patterns), offsets and the schema hash. */
static int build_schema(nx_featurizer_t *fz, const nx_store_params_t *p, char *errstr,
                        size_t errstr_size) {
    size_t dim = 0;
    for (int f = 0; f < NX_FAM_N; f++) {
        fz->at[f] = -1;
        if (p->families & layout[f].bit) {
            fz->at[f] = (int16_t)dim;
            dim += (size_t)family_reps(layout[f].repeat, p) * (size_t)layout[f].n_rows;
        }
    }
    if (dim == 0) {
        snprintf(errstr, errstr_size, "features: every family is switched off");
        return -1;
    }
    fz->names = calloc(dim, sizeof *fz->names);
    if (!fz->names) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    char win[NX_STORE_MAX_WINDOWS][24];
    for (int w = 0; w < p->n_windows; w++)
        fmt_dur(win[w], sizeof win[w], p->window_ms[w]);
    size_t d = 0;
    for (int f = 0; f < NX_FAM_N; f++) {
        if (fz->at[f] < 0)
            continue;
        int reps = family_reps(layout[f].repeat, p);
        for (int r = 0; r < reps; r++) {
            /* the pattern's arguments: window, then type, as it repeats */
            const char *a = "", *b = "";
            switch (layout[f].repeat) {
            case REP_TYPE:
                a = p->type_names[r];
                break;
            case REP_CLASS:
                a = r < p->n_types ? p->type_names[r] : "none";
                break;
            case REP_WINDOW:
                a = win[r];
                break;
            case REP_WINDOW_TYPE:
                a = win[r / p->n_types];
                b = p->type_names[r % p->n_types];
                break;
            }
            for (int row = 0; row < layout[f].n_rows; row++)
                snprintf(fz->names[d++], NX_STORE_FEATURE_NAME_MAX, layout[f].names[row], a, b);
        }
    }
    fz->dim = d;
    /* Hash: window kind tag, then the names, newline-separated. */
    size_t len = 16 + d * NX_STORE_FEATURE_NAME_MAX, off = 0;
    char *buf = malloc(len);
    if (!buf) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    off += (size_t)snprintf(buf, len, "decay-v1\n");
    for (size_t i = 0; i < d; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s\n", fz->names[i]);
    fz->schema_hash = nx_event_id_hash(buf, off);
    free(buf);
    return 0;
}

int nx_featurize_init(nx_featurizer_t *fz, const nx_store_params_t *p, char *errstr,
                      size_t errstr_size) {
    if (build_schema(fz, p, errstr, errstr_size))
        return -1;
    for (int w = 0; w < p->n_windows; w++)
        fz->inv_window_ms[w] = (float)(1.0 / (double)p->window_ms[w]);
    for (int q = 0; q < 96; q++) {
        double a = 2.0 * M_PI * q / 96.0;
        fz->q_sin[q] = (float)sin(a);
        fz->q_cos[q] = (float)cos(a);
    }
    for (int dw = 0; dw < 7; dw++) {
        float b = (float)dw * (float)(2.0 * M_PI / 7.0);
        fz->dow_sin[dw] = sinf(b);
        fz->dow_cos[dw] = cosf(b);
    }
    for (int n = 0; n < 256; n++)
        fz->log1p_u8[n] = (float)log1p((double)n);
    int nc = p->n_windows * p->n_types, ncv = nc + p->n_windows;
    fz->vec_counters = ncv % 4 == 0;
    fz->layout333 = p->n_types == 3 && p->n_windows == 3 &&
                    (p->families & NX_FEAT_BASE) == NX_FEAT_BASE && !p->force_generic;
    for (int k = 0; k < ncv; k++) {
        int w = k < nc ? k / p->n_types : k - nc;
        fz->lane_win[k] = (uint8_t)w;
        fz->lane_val[k] = k < nc ? 0 : -1;
        fz->lane_unit[k] = k < nc ? 1.0f : NX_VALUE_UNIT;
        for (int t = 0; t < p->n_types; t++)
            fz->lane_inc[t][k] = k < nc && k % p->n_types == t ? 1.0f : 0.0f;
    }
#ifndef NDEBUG
    /* the unrolled read-out's constants are the table's offsets */
    if (p->n_types == 3 && p->n_windows == 3 && p->families == NX_FEAT_ALL) {
        static const int16_t at333[NX_FAM_N] = {
#define NX_AT333_ENTRY(fam, rep, rows) NX_AT333_##fam,
            NX_LAYOUT(NX_AT333_ENTRY)};
        assert(fz->dim == NX_DIM333 && memcmp(fz->at, at333, sizeof at333) == 0);
    }
    /* the later families come after the first eight: those keep their
     * places whichever of the later ones are on */
    if (p->n_types == 3 && p->n_windows == 3 && (p->families & NX_FEAT_BASE) == NX_FEAT_BASE)
        assert(fz->at[NX_FAM_PRICE] == NX_AT333_PRICE);
#endif
    return 0;
}

void nx_featurize_free(nx_featurizer_t *fz) {
    free(fz->names);
    fz->names = NULL;
}

size_t nx_store_dim(const nx_store_t *store) {
    return store->fz.dim;
}
const char *nx_store_feature_name(const nx_store_t *store, size_t i) {
    return i < store->fz.dim ? store->fz.names[i] : NULL;
}
uint64_t nx_store_schema_hash(const nx_store_t *store) {
    return store->fz.schema_hash;
}

nx_norm_t *nx_store_norm(nx_store_t *store) {
    return store->norm;
}
