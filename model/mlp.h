/*
 * mlp.h: the online multilayer perceptron nextact trains and predicts with.
 *
 * A network of n_hidden fully connected layers with one activation, then a
 * softmax over K classes trained with cross-entropy (or, for K = 2 with
 * binary_head set, a single sigmoid logit trained with binary cross-entropy,
 * the seed's purchase head). It knows nothing of features, Kafka or Avro:
 * it sees float rows and int32 class labels.
 *
 * Layout (after llm.c): all parameters live in one flat float slab; layer l
 * owns W_l (d[l+1], d[l]) row-major, then b_l (d[l+1]), l = 0 .. n_hidden,
 * with d[0] = n_in, d[1..n_hidden] the hidden sizes and d[n_hidden+1] = K
 * (1 for the binary head). Gradients and optimizer moments are slabs of the
 * same layout, so the optimizer is one flat loop.
 *
 * Memory: every buffer (slabs, activations and gradients for max_batch rows)
 * is allocated by nx_mlp_new; nx_mlp_train, nx_mlp_predict, nx_mlp_keep and
 * the predictor's predict and publish allocate nothing and print nothing.
 *
 * Determinism: weights are initialised from a splitmix64 stream of the seed
 * (He uniform for ReLU, Xavier uniform for tanh/sigmoid, zero biases); the
 * negative down-sampling decisions come from a xoshiro256** stream of the
 * seed. With BLAS on one thread, the same params, seed and example order
 * give bit-identical weights and predictions. OpenBLAS's thread count is
 * process-global: nx_mlp_new calls openblas_set_num_threads(params.threads),
 * default 1. More threads may be faster for large batches but OpenBLAS then
 * splits sums differently and results are no longer bit-reproducible.
 *
 * Threads: one nx_mlp_t belongs to one thread (the trainer). To predict on
 * another thread, create an nx_mlp_predictor_t: the trainer publishes
 * weight snapshots into it (triple-buffered, lock-free) and the predicting
 * thread takes the newest one at a point of its choosing (see below).
 *
 * Negative down-sampling: when neg_rate r < 1, nx_mlp_keep keeps an example
 * of class neg_class with probability r (every other example always), so
 * the network learns q, the class distribution with negatives thinned by r.
 * Every probability nx_mlp_predict or a predictor publishes is corrected
 * back to the true distribution (He et al., "Practical lessons from
 * predicting clicks on ads at Facebook", 2014, generalised to K classes):
 *     p_neg = (q_neg / r) / Z,   p_k = q_k / Z  (k != neg),
 *     Z = q_neg / r + sum_{k != neg} q_k,
 * which for K = 2 is p = q / (q + (1 - q) / r) for the positive class.
 * Class weights scale each example's loss by w[label]; unlike
 * down-sampling they are not corrected for, so weighted models output
 * scores skewed towards the up-weighted classes.
 */
#ifndef NX_MLP_H
#define NX_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"
#include "rng.h"

#define NX_MLP_MAX_HIDDEN  8    /* hidden layers; the daemon default uses 1 */
#define NX_MLP_MAX_CLASSES 16   /* event types (NX_EVENT_MAX_TYPES = 8) + none, with room */
#define NX_MLP_MAX_WIDTH   4096 /* neurons per layer; guards size overflow */
/* head_init above plain Xavier only adds saturated first predictions; the
 * cap is a sanity bound, not a tuned value */
#define NX_MLP_MAX_HEAD_INIT 10.0f

typedef enum nx_opt {
    NX_OPT_ADAM = 0, /* default, lr 1e-3, as in the seed */
    NX_OPT_SGD,
    NX_OPT_MOMENTUM, /* SGD with (heavy-ball) momentum, as torch.optim.SGD */
    NX_OPT_ADAGRAD,
} nx_opt_t;

typedef struct nx_mlp_params {
    int n_in;                      /* input features */
    int n_hidden;                  /* hidden layers, 0 .. NX_MLP_MAX_HIDDEN */
    int hidden[NX_MLP_MAX_HIDDEN]; /* their widths */
    nx_act_t act;                  /* hidden activation */
    int n_classes;                 /* K, 2 .. NX_MLP_MAX_CLASSES */
    int binary_head;               /* K = 2 only: one sigmoid logit + BCE */
    nx_opt_t opt;                  /* optimizer */
    float lr;                      /* base learning rate */
    float momentum;                /* NX_OPT_MOMENTUM */
    float beta1, beta2;            /* NX_OPT_ADAM moment decays */
    float eps;                     /* Adam / AdaGrad denominator guard */
    float head_init;               /* output layer's init bound = Xavier's * this, 0 .. 10 */
    float weight_decay;            /* L2: adds wd * w to every gradient, as torch.optim */
    float clip_norm;               /* clip the global gradient L2 norm to this; 0 = off */
    int warmup_steps;              /* lr ramps linearly from lr/warmup to lr; 0 = off */
    float lr_decay;                /* after warm-up, lr_t falls from lr towards lr_min: */
    float lr_min;                  /* lr_min + (lr - lr_min) / (1 + lr_decay * t'); 0 .. lr */
    int max_batch;                 /* rows per train/predict call, scratch sized by it */
    uint64_t seed;                 /* initialisation and down-sampling streams */
    float class_weights[NX_MLP_MAX_CLASSES]; /* loss weight per class, default 1 */
    int neg_class;                           /* class down-sampled (`none`); -1 = none */
    float neg_rate;                          /* keep probability of neg_class, (0, 1]; 1 = off */
    int threads;                             /* OpenBLAS threads; 1 = deterministic (default) */
} nx_mlp_params_t;

typedef struct nx_mlp nx_mlp_t;
typedef struct nx_mlp_predictor nx_mlp_predictor_t;

/* Fills *params with the defaults: hidden 64, 32; ReLU; Adam lr 1e-3,
 * betas 0.9/0.999, eps 1e-8 (torch's defaults); momentum 0.9; plain
 * Xavier output layer (head_init 1); no decay, floor, clipping, warm-up,
 * class weights or down-sampling; max_batch 256; seed 1; one BLAS thread.
 * The daemon's defaults differ (daemon/config.c: tuned on the generator). */
void nx_mlp_params_default(nx_mlp_params_t *params, int n_in, int n_classes);

/* Checks params; 0, or -1 with the reason in errstr. */
int nx_mlp_params_check(const nx_mlp_params_t *params, char *errstr, size_t errstr_size);

/* Creates a network with freshly initialised weights (step 0). Copies
 * params. NULL with the reason in errstr on bad params or out of memory.
 * Caller frees with nx_mlp_destroy. */
nx_mlp_t *nx_mlp_new(const nx_mlp_params_t *params, char *errstr, size_t errstr_size);
void nx_mlp_destroy(nx_mlp_t *mlp);

/* The params the network was created with (valid for its lifetime). */
const nx_mlp_params_t *nx_mlp_params(const nx_mlp_t *mlp);

/* Training steps taken so far: the model version. */
uint64_t nx_mlp_step(const nx_mlp_t *mlp);

/* Forward pass for prediction: x (B, n_in) in, probs (B, K) out, corrected
 * for down-sampling. 0, or -1 if B is not in 1 .. max_batch. */
int nx_mlp_predict(nx_mlp_t *mlp, const float *x, int B, float *probs);

/* One optimizer step on a labelled mini-batch x (B, n_in), y (B): forward,
 * backward, clipping, optimizer. *loss (may be NULL) receives the mean
 * (weighted) loss before the step, on the training (down-sampled)
 * distribution. Returns -1 and leaves the weights and step untouched when B
 * is not in 1 .. max_batch, a label is outside [0, K), or the loss is not
 * finite (a NaN/inf input must not poison the weights). */
int nx_mlp_train(nx_mlp_t *mlp, const float *x, const int32_t *y, int B, float *loss);

/* Down-sampling decision for one labelled example: 1 = train on it, 0 =
 * drop it. Always 1 unless label == neg_class and neg_rate < 1; then 1 with
 * probability neg_rate, from the model's own seeded stream (saved in the
 * checkpoint), so decisions are deterministic. */
int nx_mlp_keep(nx_mlp_t *mlp, int32_t label);

/* Applies the down-sampling correction (above) in place to probs (B, K). */
void nx_mlp_correct(const nx_mlp_params_t *params, float *probs, int B);

/* The learning rate step t would use. Warm-up: lr * (t + 1) / warmup_steps
 * for t < warmup_steps. After it, with t' = t - warmup_steps, the rate
 * falls from lr towards the floor lr_min and keeps it for good:
 *     lr_t = lr_min + (lr - lr_min) / (1 + lr_decay * t').
 * With lr_decay = 0 it is lr throughout; with lr_min = 0 it is the plain
 * inverse-time decay, which tends to 0 (a model that stops learning). A
 * pure function of params and t, so a restored step continues the same
 * schedule. */
float nx_mlp_lr_at(const nx_mlp_params_t *params, uint64_t step);

/* A multiplier of the learning-rate schedule (1 at creation), for a guard
 * that rolls the model back and lowers its rate for a while. Not part of
 * the checkpoint. */
void nx_mlp_set_lr_scale(nx_mlp_t *mlp, float scale);

/* Views of the state, for tests, the checkpoint and the benchmark. The
 * slabs hold nx_mlp_num_params floats in the layout above; m and v are the
 * optimizer moments (m: Adam first moment or momentum buffer; v: Adam second
 * moment or AdaGrad sum of squares; zero when unused). Valid until
 * nx_mlp_destroy. Writing through them is allowed between calls. */
size_t nx_mlp_num_params(const nx_mlp_t *mlp);
float *nx_mlp_weights(nx_mlp_t *mlp);
float *nx_mlp_grads(nx_mlp_t *mlp);
float *nx_mlp_opt_m(nx_mlp_t *mlp);
float *nx_mlp_opt_v(nx_mlp_t *mlp);
nx_rng_t *nx_mlp_rng(nx_mlp_t *mlp);
void nx_mlp_set_step(nx_mlp_t *mlp, uint64_t step);
/* Offset in the slab of W_l and b_l, and layer l's (n_out, n_in). */
size_t nx_mlp_w_offset(const nx_mlp_t *mlp, int l);
size_t nx_mlp_b_offset(const nx_mlp_t *mlp, int l);
int nx_mlp_layer_in(const nx_mlp_t *mlp, int l);
int nx_mlp_layer_out(const nx_mlp_t *mlp, int l);
int nx_mlp_num_layers(const nx_mlp_t *mlp); /* n_hidden + 1 */

/* FLOPs of one forward pass of one row (2 per multiply-add), for the
 * benchmark's GFLOP/s; a training step costs about three times this. */
double nx_mlp_forward_flops(const nx_mlp_t *mlp);

/*
 * Predictor: a weight snapshot another thread predicts from.
 *
 * Three slabs rotate (triple buffering): the trainer writes into its back
 * slab in nx_mlp_publish and swaps it into the middle with one atomic
 * exchange; the predicting thread's nx_mlp_predictor_acquire swaps the
 * middle into its front slab if a newer one is there. Neither side waits or
 * allocates, and the front slab never changes under a prediction.
 *
 * Determinism: acquire takes the newest snapshot, which depends on timing.
 * A pipeline that must be reproducible decides which version each
 * prediction uses (e.g. the version published after step N * k) and waits
 * for it with nx_mlp_predictor_published before acquiring; publish is cheap
 * (one memcpy of the slab) so publishing every N steps is fine.
 */

/* A predictor for networks of mlp's shape, holding mlp's current weights
 * (already acquired). Caller frees with nx_mlp_predictor_destroy. */
nx_mlp_predictor_t *nx_mlp_predictor_new(const nx_mlp_t *mlp, char *errstr, size_t errstr_size);
void nx_mlp_predictor_destroy(nx_mlp_predictor_t *pred);

/* Trainer thread: copy mlp's weights and step into the predictor. pred
 * must have been created from mlp. Wait-free. */
void nx_mlp_publish(const nx_mlp_t *mlp, nx_mlp_predictor_t *pred);

/* Predicting thread: newest version published so far (atomic load). */
uint64_t nx_mlp_predictor_published(const nx_mlp_predictor_t *pred);

/* Predicting thread: switch to the newest published snapshot, if any is
 * newer; returns the version now in use. */
uint64_t nx_mlp_predictor_acquire(nx_mlp_predictor_t *pred);

/* Predicting thread: version in use (the step of the acquired snapshot). */
uint64_t nx_mlp_predictor_version(const nx_mlp_predictor_t *pred);

/* Predicting thread: the acquired snapshot's parameter slab (layout as
 * above), e.g. to explain its predictions (explain.h). Valid until the next
 * acquire. */
const float *nx_mlp_predictor_weights(const nx_mlp_predictor_t *pred);

/* Predicting thread: as nx_mlp_predict, from the acquired snapshot. */
int nx_mlp_predictor_predict(nx_mlp_predictor_t *pred, const float *x, int B, float *probs);

#endif /* NX_MLP_H */
