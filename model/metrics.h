/*
 * metrics.h: streaming progressive-validation metrics of a classifier.
 *
 * Feed each example's published probabilities (K classes) and its label
 * *before* training on it: the figures are then honest out-of-sample
 * estimates (progressive validation, as in Vowpal Wabbit and River). Two
 * sets are kept: cumulative since creation, and over a rolling window of the
 * last N examples.
 *
 * Figures: log loss; normalised entropy (log loss over the entropy of the
 * observed class frequencies, < 1 means better than predicting the base
 * rate); accuracy of the arg-max; per class precision and recall of the
 * arg-max; one-vs-rest ROC AUC per class; expected calibration error of the
 * top-label confidence over 10 equal-width bins.
 *
 * AUC is computed from score histograms with ties inside a bin counted as
 * half, like exact ties. Bins are logarithmic at both ends of [0, 1]: a
 * probability p <= 0.5 is binned by the top bits of its float representation
 * (exponent and NX_METRICS_AUC_MANT_BITS mantissa bits, i.e. a relative
 * width of 2^-7 = 0.8%), p > 0.5 likewise by 1 - p, and values below 2^-24
 * (or above 1 - 2^-24) share the end bins. So rare classes whose scores are
 * all near 0 keep fine resolution. tests/model/ checks the result against an
 * exact sort-based AUC to within 0.001.
 *
 * Memory: constant after nx_metrics_new (histograms, and a ring of N
 * examples for the window); about 2 x K x 47 KB of histograms plus
 * N x (K + 1) x 4 bytes. nx_metrics_add is O(K) and allocates nothing;
 * nx_metrics_report is O(K x bins). Sums are kept in 64-bit fixed point
 * (2^-24 resolution) so the window can subtract an expired example exactly:
 * no drift, and the same input gives bit-identical figures.
 *
 * Threads: one nx_metrics_t belongs to one thread.
 */
#ifndef NX_METRICS_H
#define NX_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "mlp.h" /* NX_MLP_MAX_CLASSES */

#define NX_METRICS_MAX_CLASSES   NX_MLP_MAX_CLASSES
#define NX_METRICS_CALIB_BINS    10 /* the usual ECE binning */
#define NX_METRICS_AUC_MANT_BITS 7  /* 2^-7 relative bin width; < 0.001 AUC error in tests */
#define NX_METRICS_AUC_MIN_EXP   24 /* scores below 2^-24 share a bin (float resolution near 1) */

typedef struct nx_metrics nx_metrics_t;

typedef enum nx_metrics_span {
    NX_METRICS_CUMULATIVE = 0,
    NX_METRICS_WINDOW = 1,
} nx_metrics_span_t;

/* Figures at one moment. Undefined figures (no example, a class never seen
 * or never predicted, AUC with no positive or no negative) are NaN. */
typedef struct nx_metrics_report {
    uint64_t n; /* examples */
    int n_classes;
    double log_loss;     /* mean -ln p[label], p floored at 1e-7 */
    double norm_entropy; /* log_loss / entropy of the observed class frequencies */
    double accuracy;
    double ece;                             /* expected calibration error, top label, 10 bins */
    uint64_t count[NX_METRICS_MAX_CLASSES]; /* examples per label */
    double precision[NX_METRICS_MAX_CLASSES];
    double recall[NX_METRICS_MAX_CLASSES];
    double auc[NX_METRICS_MAX_CLASSES]; /* one vs rest */
} nx_metrics_report_t;

/* n_classes in 2..NX_METRICS_MAX_CLASSES; window >= 1 examples. NULL with
 * the reason in errstr. Caller frees with nx_metrics_destroy. */
nx_metrics_t *nx_metrics_new(int n_classes, uint32_t window, char *errstr, size_t errstr_size);
void nx_metrics_destroy(nx_metrics_t *metrics);

/* One scored example: probs (K) as published, label in [0, K). Returns -1
 * (and counts nothing) if the label is out of range or a probability is not
 * finite. */
int nx_metrics_add(nx_metrics_t *metrics, const float *probs, int32_t label);

void nx_metrics_report(const nx_metrics_t *metrics, nx_metrics_span_t span,
                       nx_metrics_report_t *report);

/* The AUC histogram bin of a probability (exposed for the tests). */
int nx_metrics_auc_bin(float p);
int nx_metrics_auc_bins(void);

#endif /* NX_METRICS_H */
