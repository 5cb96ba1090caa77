/*
 * layers.h: the MLP's pure layer functions (forward and backward).
 *
 * Every function reads its inputs and writes its outputs only, holds no
 * state and allocates nothing; shapes are given in comments as (rows, cols)
 * of row-major float arrays, B being the batch size. The linear layer runs
 * through cblas_sgemm; tests/model/ holds a naive loop twin of each function
 * and checks the two agree, and checks every backward against a
 * finite-difference gradient computed in double precision.
 *
 * Threads: the functions are re-entrant; BLAS threading is set by nx_mlp_new
 * (see mlp.h).
 */
#ifndef NX_LAYERS_H
#define NX_LAYERS_H

#include <stdint.h>

typedef enum nx_act {
    NX_ACT_RELU = 0, /* default, as in the seed */
    NX_ACT_TANH,
    NX_ACT_SIGMOID,
} nx_act_t;

/* Fully connected layer, weights stored as in torch.nn.Linear:
 *   out (B, n_out) = in (B, n_in) . W^T (n_in, n_out) + b (n_out) */
void nx_linear_forward(float *out, const float *in, const float *W, const float *b, int B, int n_in,
                       int n_out);

/* Gradients of the linear layer, given dout (B, n_out):
 *   dW (n_out, n_in) = dout^T . in    (overwritten)
 *   db (n_out)       = column sums of dout (overwritten)
 *   din (B, n_in)    = dout . W       (overwritten; skipped when din is NULL,
 *                                      as for the first layer) */
void nx_linear_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                        const float *W, int B, int n_in, int n_out);

/* Element-wise activation, in place on x (n). */
void nx_act_forward(nx_act_t act, float *x, int n);

/* dx (n) *= act'(.) expressed through the activation's output y (n):
 * relu: y > 0; tanh: 1 - y^2; sigmoid: y (1 - y). */
void nx_act_backward(nx_act_t act, float *restrict dx, const float *restrict y, int n);

/* Softmax cross-entropy over K classes.
 *   logits (B, K) in, probs (B, K) out, y (B) labels in [0, K),
 *   w (K) class weights or NULL for all 1,
 *   dlogits (B, K) = w[y] (probs - onehot(y)) / B, or not written when NULL.
 * Returns the mean over the batch of w[y] * -log p[y] (p floored at
 * NX_LOSS_PMIN so one confident mistake cannot return inf). With y NULL
 * (prediction) only probs is written and 0 is returned. */
float nx_softmax_xent(float *probs, float *dlogits, const float *logits, const int32_t *y,
                      const float *w, int B, int K);

/* Sigmoid binary cross-entropy, the K = 2 head with a single logit:
 *   logits (B, 1) in; probs (B, 2) out with probs[.,1] = sigmoid(logit);
 *   y (B) in {0, 1}; w (2) class weights or NULL;
 *   dlogits (B, 1) = w[y] (p1 - y) / B, or not written when NULL.
 * Returns the mean weighted binary cross-entropy; y NULL as above. */
float nx_sigmoid_bce(float *probs, float *dlogits, const float *logits, const int32_t *y,
                     const float *w, int B);

/* Probabilities are floored here before taking logs (and so is the loss
 * bounded by -log(1e-7) ~ 16.1): float resolution near 1 is ~6e-8, so a
 * smaller floor would not change what a float can express. */
#define NX_LOSS_PMIN 1e-7f

#endif /* NX_LAYERS_H */
