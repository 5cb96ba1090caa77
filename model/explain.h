/*
 * explain.h: why the network scored a row as it did: per-feature
 * attributions of one class's score, which add up exactly to the score's
 * difference from a baseline input's.
 *
 * Method: DeepLIFT with the rescale rule (Shrikumar, Greenside and
 * Kundaje, "Learning Important Features Through Propagating Activation
 * Differences", 2017). Every unit's difference from its value at the
 * baseline x0 is carried back through the network: a linear layer carries
 * differences exactly, and an activation f carries them by the multiplier
 * m = (f(z) - f(z0)) / (z - z0) (its derivative where z = z0). So for each
 * row b, with s the explained score,
 *     sum_j contrib[b, j] = s(x_b) - s(x0)          (completeness)
 * up to float rounding, in one forward pass of the rows, one of the
 * baseline and one backward pass: about three forward passes' work, where
 * integrated gradients would need one backward per step and still only
 * approach completeness. For a network without hidden layers the
 * contributions are w_j (x_j - x0_j).
 *
 * Score: for a softmax head, the class's logit minus the mean of the
 * logits, s_k = z_k - mean_j z_j = log p_k - mean_j log p_j: invariant to
 * the softmax's shift, so it says what favours class k over the others.
 * For the binary head (one logit z), s_1 = z and s_0 = -z.
 *
 * Shapes as in mlp.h: W is a parameter slab in its layout (layer l owns
 * W_l (d[l+1], d[l]) row-major, then b_l (d[l+1])). The explainer owns
 * its scratch, sized for max_batch rows at creation; nx_explain allocates
 * nothing. Deterministic; one explainer per thread.
 */
#ifndef NX_EXPLAIN_H
#define NX_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "mlp.h"

typedef struct nx_explainer nx_explainer_t;

/* An explainer for networks of params' shape (n_in, hidden layers,
 * activation, classes, head), for up to params->max_batch rows. NULL +
 * errstr. Caller frees with nx_explainer_destroy. */
nx_explainer_t *nx_explainer_new(const nx_mlp_params_t *params, char *errstr, size_t errstr_size);
void nx_explainer_destroy(nx_explainer_t *ex);

/* The forward pass of rows x (B, n_in) under weights W, keeping what an
 * explanation needs; probs (B, K) out, the bits nx_mlp_predict or a
 * predictor gives (same layers, down-sampling corrected): a caller that
 * explains predicts through this, not twice. 0, or -1 if B is not in
 * 1 .. max_batch. */
int nx_explain_forward(nx_explainer_t *ex, const float *W, const float *x, int B, float *probs);

/* After nx_explain_forward of the same W and x (B rows): the
 * attributions, as nx_explain below. 0, or -1 if B differs from the
 * forward's or a class is out of range. */
int nx_explain_rows(nx_explainer_t *ex, const float *W, const float *x, const float *x0,
                    const int32_t *cls, int B, float *contrib, float *delta);

/* Attributions of class cls[b]'s score for each row of x (B, n_in) against
 * the baseline x0 (n_in), under weights W (the slab):
 *   contrib (B, n_in) out, delta (B) out = s(x_b) - s(x0) (may be NULL).
 * 0, or -1 if B is not in 1 .. max_batch or a class is out of range. */
int nx_explain(nx_explainer_t *ex, const float *W, const float *x, const float *x0,
               const int32_t *cls, int B, float *contrib, float *delta);

#endif /* NX_EXPLAIN_H */
