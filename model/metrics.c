/* metrics.c: see metrics.h. */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fixed point for sums of log losses and confidences: 2^24 units per 1.
 * A loss is at most -ln(1e-7) ~ 16.1, so 2^63 units hold > 3e10 examples. */
#define NX_METRICS_FIX 16777216.0

/* Bins of one half of [0, 1]: exponents -E .. -2 with 2^M mantissa steps
 * each, plus 0.5 itself. */
#define HALF_BINS (((NX_METRICS_AUC_MIN_EXP - 1) << NX_METRICS_AUC_MANT_BITS) + 1)
#define AUC_BINS  (2 * HALF_BINS)

/* Per-span sums; a window subtracts exactly what it added. */
typedef struct nx_metrics_acc {
    int64_t n;
    int64_t loss_fix;                        /* sum of -ln p[label], fixed point */
    int64_t correct;                         /* arg-max == label */
    int64_t label_n[NX_METRICS_MAX_CLASSES]; /* examples per label */
    int64_t pred_n[NX_METRICS_MAX_CLASSES];  /* examples per arg-max */
    int64_t tp[NX_METRICS_MAX_CLASSES];      /* arg-max == label == k */
    int64_t cal_n[NX_METRICS_CALIB_BINS];
    int64_t cal_conf_fix[NX_METRICS_CALIB_BINS];
    int64_t cal_correct[NX_METRICS_CALIB_BINS];
    uint64_t *pos; /* (K, AUC_BINS) scores of class k when the label is k */
    uint64_t *neg; /* (K, AUC_BINS) scores of class k when the label is not k */
} nx_metrics_acc_t;

/* What one example adds to the sums, computed once: added to both spans,
 * and kept in the window's ring to be subtracted when it leaves (a log, two
 * llrounds and K bin searches per example instead of three times that). */
typedef struct nx_metrics_entry {
    int64_t loss_fix; /* -ln p[label], fixed point */
    int32_t conf_fix; /* p[best], fixed point (<= 2^24) */
    uint8_t label, best, cb;
    uint16_t bin[NX_METRICS_MAX_CLASSES]; /* AUC bin of each class's score */
} nx_metrics_entry_t;
_Static_assert(NX_METRICS_MAX_CLASSES <= 255 && NX_METRICS_CALIB_BINS <= 255,
               "labels and calibration bins fit a byte");

struct nx_metrics {
    int n_classes;
    uint32_t window;          /* examples */
    uint32_t ring_len;        /* examples in the ring, <= window */
    uint32_t ring_head;       /* next slot to write */
    nx_metrics_entry_t *ring; /* (window) */
    nx_metrics_acc_t acc[2];  /* NX_METRICS_CUMULATIVE, NX_METRICS_WINDOW */
};

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

/* Index of q in [0, 0.5] among the HALF_BINS lower-half bins. */
static int half_bin(float q) {
    const float qmin = 0x1.0p-24f; /* 2^-NX_METRICS_AUC_MIN_EXP */
    const uint32_t base = float_bits(qmin) >> (23 - NX_METRICS_AUC_MANT_BITS);
    if (!(q > qmin))
        return 0;
    if (q > 0.5f)
        q = 0.5f;
    return (int)((float_bits(q) >> (23 - NX_METRICS_AUC_MANT_BITS)) - base);
}

int nx_metrics_auc_bin(float p) {
    if (p <= 0.5f)
        return half_bin(p);
    return AUC_BINS - 1 - half_bin(1.0f - p);
}

int nx_metrics_auc_bins(void) {
    return AUC_BINS;
}
_Static_assert(AUC_BINS <= 65536, "an AUC bin fits 16 bits");

nx_metrics_t *nx_metrics_new(int n_classes, uint32_t window, char *errstr, size_t errstr_size) {
    nx_metrics_t *metrics = NULL;
    if (n_classes < 2 || n_classes > NX_METRICS_MAX_CLASSES) {
        snprintf(errstr, errstr_size, "metrics: %d classes, not in 2..%d", n_classes,
                 NX_METRICS_MAX_CLASSES);
        goto err;
    }
    if (window < 1) {
        snprintf(errstr, errstr_size, "metrics: window must hold at least 1 example");
        goto err;
    }
    metrics = calloc(1, sizeof(*metrics));
    if (!metrics)
        goto oom;
    metrics->n_classes = n_classes;
    metrics->window = window;
    metrics->ring = calloc(window, sizeof(*metrics->ring));
    if (!metrics->ring)
        goto oom;
    for (int s = 0; s < 2; s++) {
        metrics->acc[s].pos = calloc((size_t)n_classes * AUC_BINS, sizeof(uint64_t));
        metrics->acc[s].neg = calloc((size_t)n_classes * AUC_BINS, sizeof(uint64_t));
        if (!metrics->acc[s].pos || !metrics->acc[s].neg)
            goto oom;
    }
    return metrics;
oom:
    snprintf(errstr, errstr_size, "metrics: out of memory");
err:
    nx_metrics_destroy(metrics);
    return NULL;
}

void nx_metrics_destroy(nx_metrics_t *metrics) {
    if (!metrics)
        return;
    for (int s = 0; s < 2; s++) {
        free(metrics->acc[s].pos);
        free(metrics->acc[s].neg);
    }
    free(metrics->ring);
    free(metrics);
}

static void entry_make(nx_metrics_entry_t *e, int K, const float *probs, int32_t label) {
    int best = 0;
    for (int k = 1; k < K; k++)
        best = probs[k] > probs[best] ? k : best;
    const float pl = probs[label] > 1e-7f ? probs[label] : 1e-7f; /* as NX_LOSS_PMIN */
    e->loss_fix = (int64_t)llround(-log((double)pl) * NX_METRICS_FIX);
    const float conf = probs[best];
    int cb = (int)(conf * NX_METRICS_CALIB_BINS);
    cb = cb < 0 ? 0 : cb >= NX_METRICS_CALIB_BINS ? NX_METRICS_CALIB_BINS - 1 : cb;
    e->conf_fix = (int32_t)llround((double)conf * NX_METRICS_FIX);
    e->label = (uint8_t)label;
    e->best = (uint8_t)best;
    e->cb = (uint8_t)cb;
    for (int k = 0; k < K; k++)
        e->bin[k] = (uint16_t)nx_metrics_auc_bin(probs[k]);
}

/* Adds (sign +1) or removes (sign -1) one example. */
static void acc_update(nx_metrics_acc_t *a, int K, const nx_metrics_entry_t *e, int sign) {
    const int label = e->label, best = e->best, hit = best == label;
    a->n += sign;
    a->loss_fix += sign * e->loss_fix;
    a->correct += sign * hit;
    a->label_n[label] += sign;
    a->pred_n[best] += sign;
    a->tp[label] += sign * hit;
    a->cal_n[e->cb] += sign;
    a->cal_conf_fix[e->cb] += sign * (int64_t)e->conf_fix;
    a->cal_correct[e->cb] += sign * hit;
    for (int k = 0; k < K; k++) {
        uint64_t *h = (k == label ? a->pos : a->neg) + (size_t)k * AUC_BINS;
        h[e->bin[k]] += (uint64_t)(int64_t)sign;
    }
}

int nx_metrics_add(nx_metrics_t *metrics, const float *probs, int32_t label) {
    const int K = metrics->n_classes;
    if (label < 0 || label >= K)
        return -1;
    for (int k = 0; k < K; k++)
        if (!isfinite(probs[k]))
            return -1;
    nx_metrics_entry_t *slot = &metrics->ring[metrics->ring_head];
    if (metrics->ring_len == metrics->window)
        acc_update(&metrics->acc[NX_METRICS_WINDOW], K, slot, -1);
    else
        metrics->ring_len++;
    entry_make(slot, K, probs, label);
    acc_update(&metrics->acc[NX_METRICS_CUMULATIVE], K, slot, +1);
    acc_update(&metrics->acc[NX_METRICS_WINDOW], K, slot, +1);
    metrics->ring_head = (metrics->ring_head + 1) % metrics->window;
    return 0;
}

static double ratio(int64_t num, int64_t den) {
    return den > 0 ? (double)num / (double)den : NAN;
}

void nx_metrics_report(const nx_metrics_t *metrics, nx_metrics_span_t span,
                       nx_metrics_report_t *r) {
    const nx_metrics_acc_t *a = &metrics->acc[span];
    const int K = metrics->n_classes;
    memset(r, 0, sizeof(*r));
    r->n = (uint64_t)a->n;
    r->n_classes = K;
    r->log_loss = a->n > 0 ? (double)a->loss_fix / NX_METRICS_FIX / (double)a->n : NAN;
    r->accuracy = ratio(a->correct, a->n);
    double h = 0.0;
    for (int k = 0; k < K; k++) {
        r->count[k] = (uint64_t)a->label_n[k];
        r->precision[k] = ratio(a->tp[k], a->pred_n[k]);
        r->recall[k] = ratio(a->tp[k], a->label_n[k]);
        if (a->label_n[k] > 0) {
            const double f = (double)a->label_n[k] / (double)a->n;
            h -= f * log(f);
        }
        /* One vs rest: pairs (positive, negative) ranked right, ties half. */
        const uint64_t *pos = a->pos + (size_t)k * AUC_BINS, *neg = a->neg + (size_t)k * AUC_BINS;
        double num = 0.0, neg_below = 0.0, np = 0.0;
        for (int b = 0; b < AUC_BINS; b++) {
            num += (double)pos[b] * (neg_below + 0.5 * (double)neg[b]);
            neg_below += (double)neg[b];
            np += (double)pos[b];
        }
        r->auc[k] = np > 0 && neg_below > 0 ? num / (np * neg_below) : NAN;
    }
    r->norm_entropy = a->n > 0 && h > 0.0 ? r->log_loss / h : NAN;
    double ece = 0.0;
    for (int b = 0; b < NX_METRICS_CALIB_BINS; b++)
        ece += fabs((double)a->cal_correct[b] - (double)a->cal_conf_fix[b] / NX_METRICS_FIX);
    r->ece = a->n > 0 ? ece / (double)a->n : NAN;
}
