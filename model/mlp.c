/* mlp.c: see mlp.h. */
#include "mlp.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#define NX_MLP_MAX_LAYERS (NX_MLP_MAX_HIDDEN + 1)

/* Buffers start on 64-byte boundaries (a cache line, and the widest AVX-512
 * vector): 16 floats. */
#define NX_MLP_ALIGN_FLOATS 16

/* Shape shared by the trainer and its predictors. */
typedef struct nx_mlp_shape {
    int n_layers;                    /* n_hidden + 1 */
    int d[NX_MLP_MAX_LAYERS + 1];    /* widths: d[0] = n_in, d[n_layers] = logits */
    size_t w_off[NX_MLP_MAX_LAYERS]; /* offset of W_l in the slab */
    size_t b_off[NX_MLP_MAX_LAYERS]; /* offset of b_l in the slab */
    size_t n_params;                 /* floats in the slab */
    int max_width;                   /* max over d[] */
} nx_mlp_shape_t;

/* Forward scratch for max_batch rows. */
typedef struct nx_mlp_acts {
    float *out[NX_MLP_MAX_LAYERS + 1]; /* out[l] (B, d[l]), l >= 1; out[n_layers] = logits */
    float *probs;                      /* (B, K) */
} nx_mlp_acts_t;

struct nx_mlp {
    nx_mlp_params_t params;
    nx_mlp_shape_t shape;
    float *weights; /* (n_params) */
    float *grads;   /* (n_params) */
    float *m, *v;   /* (n_params) optimizer moments */
    nx_mlp_acts_t acts;
    float *dbuf[2]; /* (B, max_width) ping-pong gradients of activations */
    uint64_t step;
    float lr_scale; /* the guard's multiplier of the schedule's rate, 1 = none */
    nx_rng_t rng;   /* down-sampling stream */
    void *mem;      /* the one allocation all of the above point into */
};

/* Triple buffer slots: index in the low bits, FRESH set by the writer. */
#define NX_PRED_FRESH 4u

struct nx_mlp_predictor {
    nx_mlp_params_t params;
    nx_mlp_shape_t shape;
    float *slab[3];      /* (n_params) each */
    uint64_t version[3]; /* step each slab holds */
    nx_mlp_acts_t acts;
    int front; /* reader's slab */
    /* Writer-owned fields on their own cache line: no false sharing with
     * the reader's. */
    _Alignas(64) int back;             /* writer's slab */
    _Alignas(64) _Atomic unsigned mid; /* middle slab | NX_PRED_FRESH */
    _Atomic uint64_t published;        /* newest published version */
    void *mem;
};

void nx_mlp_params_default(nx_mlp_params_t *params, int n_in, int n_classes) {
    memset(params, 0, sizeof(*params));
    params->n_in = n_in;
    params->n_hidden = 2;
    params->hidden[0] = 64; /* the seed's network */
    params->hidden[1] = 32;
    params->act = NX_ACT_RELU;
    params->n_classes = n_classes;
    params->opt = NX_OPT_ADAM;
    params->lr = 1e-3f; /* Adam's usual rate, the seed's */
    params->momentum = 0.9f;
    params->beta1 = 0.9f; /* torch.optim.Adam defaults */
    params->beta2 = 0.999f;
    params->eps = 1e-8f;
    params->head_init = 1.0f; /* plain Xavier, as torch's init */
    params->max_batch = 256;
    params->seed = 1;
    for (int k = 0; k < NX_MLP_MAX_CLASSES; k++)
        params->class_weights[k] = 1.0f;
    params->neg_class = -1;
    params->neg_rate = 1.0f;
    params->threads = 1;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(errstr, errstr_size, __VA_ARGS__);                                                \
        return -1;                                                                                 \
    } while (0)

int nx_mlp_params_check(const nx_mlp_params_t *p, char *errstr, size_t errstr_size) {
    if (p->n_in < 1 || p->n_in > NX_MLP_MAX_WIDTH)
        FAIL("n_in %d not in 1..%d", p->n_in, NX_MLP_MAX_WIDTH);
    if (p->n_hidden < 0 || p->n_hidden > NX_MLP_MAX_HIDDEN)
        FAIL("%d hidden layers, at most %d", p->n_hidden, NX_MLP_MAX_HIDDEN);
    for (int i = 0; i < p->n_hidden; i++)
        if (p->hidden[i] < 1 || p->hidden[i] > NX_MLP_MAX_WIDTH)
            FAIL("hidden layer %d width %d not in 1..%d", i, p->hidden[i], NX_MLP_MAX_WIDTH);
    if (p->act != NX_ACT_RELU && p->act != NX_ACT_TANH && p->act != NX_ACT_SIGMOID)
        FAIL("unknown activation %d", (int)p->act);
    if (p->n_classes < 2 || p->n_classes > NX_MLP_MAX_CLASSES)
        FAIL("n_classes %d not in 2..%d", p->n_classes, NX_MLP_MAX_CLASSES);
    if (p->binary_head && p->n_classes != 2)
        FAIL("binary_head needs n_classes 2, not %d", p->n_classes);
    if (p->opt != NX_OPT_ADAM && p->opt != NX_OPT_SGD && p->opt != NX_OPT_MOMENTUM &&
        p->opt != NX_OPT_ADAGRAD)
        FAIL("unknown optimizer %d", (int)p->opt);
    if (!(p->lr > 0.0f) || !isfinite(p->lr))
        FAIL("learning rate %g must be > 0", (double)p->lr);
    if (!(p->momentum >= 0.0f && p->momentum < 1.0f))
        FAIL("momentum %g not in [0, 1)", (double)p->momentum);
    if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f))
        FAIL("Adam betas %g, %g not in [0, 1)", (double)p->beta1, (double)p->beta2);
    if (!(p->eps > 0.0f))
        FAIL("eps %g must be > 0", (double)p->eps);
    if (!(p->weight_decay >= 0.0f) || !isfinite(p->weight_decay))
        FAIL("weight decay %g must be >= 0", (double)p->weight_decay);
    if (!(p->clip_norm >= 0.0f) || !isfinite(p->clip_norm))
        FAIL("clip norm %g must be >= 0 (0 = off)", (double)p->clip_norm);
    if (p->warmup_steps < 0)
        FAIL("warm-up steps %d must be >= 0", p->warmup_steps);
    if (!(p->lr_decay >= 0.0f) || !isfinite(p->lr_decay))
        FAIL("lr decay %g must be >= 0", (double)p->lr_decay);
    if (!(p->head_init >= 0.0f && p->head_init <= NX_MLP_MAX_HEAD_INIT))
        FAIL("output-layer init scale %g not in [0, %g]", (double)p->head_init,
             (double)NX_MLP_MAX_HEAD_INIT);
    if (!(p->lr_min >= 0.0f && p->lr_min <= p->lr))
        FAIL("lr floor %g not in [0, lr = %g]", (double)p->lr_min, (double)p->lr);
    /* 1 << 20 rows: far above any micro-batch, and keeps sizes in range. */
    if (p->max_batch < 1 || p->max_batch > (1 << 20))
        FAIL("max batch %d not in 1..%d", p->max_batch, 1 << 20);
    for (int k = 0; k < p->n_classes; k++)
        if (!(p->class_weights[k] >= 0.0f) || !isfinite(p->class_weights[k]))
            FAIL("class weight %d is %g, must be >= 0", k, (double)p->class_weights[k]);
    if (p->neg_class < -1 || p->neg_class >= p->n_classes)
        FAIL("negative class %d not in -1..%d", p->neg_class, p->n_classes - 1);
    if (!(p->neg_rate > 0.0f && p->neg_rate <= 1.0f))
        FAIL("negative sampling rate %g not in (0, 1]", (double)p->neg_rate);
    if (p->threads < 1 || p->threads > 256)
        FAIL("BLAS threads %d not in 1..256", p->threads);
    return 0;
}

static size_t round_up(size_t n) {
    return (n + NX_MLP_ALIGN_FLOATS - 1) / NX_MLP_ALIGN_FLOATS * NX_MLP_ALIGN_FLOATS;
}

static void shape_init(nx_mlp_shape_t *s, const nx_mlp_params_t *p) {
    s->n_layers = p->n_hidden + 1;
    s->d[0] = p->n_in;
    for (int i = 0; i < p->n_hidden; i++)
        s->d[i + 1] = p->hidden[i];
    s->d[s->n_layers] = p->binary_head ? 1 : p->n_classes;
    size_t off = 0;
    s->max_width = 0;
    for (int l = 0; l < s->n_layers; l++) {
        s->w_off[l] = off;
        off += (size_t)s->d[l + 1] * (size_t)s->d[l];
        s->b_off[l] = off;
        off += (size_t)s->d[l + 1];
    }
    for (int l = 0; l <= s->n_layers; l++)
        s->max_width = s->d[l] > s->max_width ? s->d[l] : s->max_width;
    s->n_params = off;
}

/* Floats of forward scratch for B rows. */
static size_t acts_size(const nx_mlp_shape_t *s, int K, int B) {
    size_t n = 0;
    for (int l = 1; l <= s->n_layers; l++)
        n += round_up((size_t)B * (size_t)s->d[l]);
    return n + round_up((size_t)B * (size_t)K);
}

static float *acts_carve(nx_mlp_acts_t *a, const nx_mlp_shape_t *s, int K, int B, float *p) {
    for (int l = 1; l <= s->n_layers; l++) {
        a->out[l] = p;
        p += round_up((size_t)B * (size_t)s->d[l]);
    }
    a->probs = p;
    return p + round_up((size_t)B * (size_t)K);
}

static void *alloc_floats(size_t n) {
    void *mem = NULL;
    if (posix_memalign(&mem, NX_MLP_ALIGN_FLOATS * sizeof(float), n * sizeof(float)) != 0)
        return NULL;
    memset(mem, 0, n * sizeof(float));
    return mem;
}

/* He uniform (ReLU) or Xavier uniform (tanh, sigmoid, and the output layer,
 * which feeds a softmax): bounds sqrt(6 / fan_in) and sqrt(6 / (fan_in +
 * fan_out)) give variances 2 / fan_in and 2 / (fan_in + fan_out). The
 * output layer's bound is then scaled by head_init: small logits at step 0
 * mean first predictions near uniform instead of a random network's
 * confident guesses. The stream is drawn the same whatever the scale. */
static void init_weights(nx_mlp_t *mlp) {
    const nx_mlp_shape_t *s = &mlp->shape;
    uint64_t x = mlp->params.seed;
    for (int l = 0; l < s->n_layers; l++) {
        const int fan_in = s->d[l], fan_out = s->d[l + 1];
        const int he = mlp->params.act == NX_ACT_RELU && l < s->n_layers - 1;
        double bound = he ? sqrt(6.0 / fan_in) : sqrt(6.0 / (fan_in + fan_out));
        if (l == s->n_layers - 1)
            bound *= mlp->params.head_init;
        float *W = mlp->weights + s->w_off[l];
        for (size_t i = 0; i < (size_t)fan_in * (size_t)fan_out; i++) {
            const double u = (double)(nx_rng_splitmix64(&x) >> 11) * 0x1.0p-53;
            W[i] = (float)((2.0 * u - 1.0) * bound);
        }
        memset(mlp->weights + s->b_off[l], 0, sizeof(float) * (size_t)fan_out);
    }
}

/* Separates the down-sampling stream from the initialisation stream, which
 * is splitmix64 of the bare seed (an arbitrary odd constant: "NXSAMPLE"). */
#define NX_MLP_SAMPLE_STREAM 0x4e5853414d504c45ULL

nx_mlp_t *nx_mlp_new(const nx_mlp_params_t *params, char *errstr, size_t errstr_size) {
    nx_mlp_t *mlp = NULL;
    if (nx_mlp_params_check(params, errstr, errstr_size) != 0)
        goto err;
    mlp = calloc(1, sizeof(*mlp));
    if (!mlp) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    mlp->params = *params;
    shape_init(&mlp->shape, params);
    const nx_mlp_shape_t *s = &mlp->shape;
    const int B = params->max_batch, K = params->n_classes;
    const size_t np = round_up(s->n_params);
    const size_t nd = round_up((size_t)B * (size_t)s->max_width);
    const size_t total = 4 * np + acts_size(s, K, B) + 2 * nd;
    mlp->mem = alloc_floats(total);
    if (!mlp->mem) {
        snprintf(errstr, errstr_size, "out of memory (%zu floats of model state)", total);
        goto err;
    }
    float *p = mlp->mem;
    mlp->weights = p, p += np;
    mlp->grads = p, p += np;
    mlp->m = p, p += np;
    mlp->v = p, p += np;
    p = acts_carve(&mlp->acts, s, K, B, p);
    mlp->dbuf[0] = p, p += nd;
    mlp->dbuf[1] = p, p += nd;
    assert((size_t)(p - (float *)mlp->mem) == total);
    init_weights(mlp);
    nx_rng_seed(&mlp->rng, params->seed ^ NX_MLP_SAMPLE_STREAM);
    mlp->lr_scale = 1.0f;
    openblas_set_num_threads(params->threads);
    return mlp;
err:
    nx_mlp_destroy(mlp);
    return NULL;
}

void nx_mlp_destroy(nx_mlp_t *mlp) {
    if (!mlp)
        return;
    free(mlp->mem);
    free(mlp);
}

const nx_mlp_params_t *nx_mlp_params(const nx_mlp_t *mlp) {
    return &mlp->params;
}

uint64_t nx_mlp_step(const nx_mlp_t *mlp) {
    return mlp->step;
}

/* Forward through every layer; leaves probs (uncorrected) in a->probs and
 * returns the loss when y is given (0 otherwise), writing dlogits if not
 * NULL. */
static float forward(const nx_mlp_params_t *p, const nx_mlp_shape_t *s, const float *W,
                     nx_mlp_acts_t *a, const float *x, const int32_t *y, int B, float *dlogits) {
    const float *in = x;
    const int L = s->n_layers;
    for (int l = 0; l < L; l++) {
        float *out = a->out[l + 1];
        nx_linear_forward(out, in, W + s->w_off[l], W + s->b_off[l], B, s->d[l], s->d[l + 1]);
        if (l < L - 1)
            nx_act_forward(p->act, out, B * s->d[l + 1]);
        in = out;
    }
    if (p->binary_head)
        return nx_sigmoid_bce(a->probs, dlogits, a->out[L], y, p->class_weights, B);
    return nx_softmax_xent(a->probs, dlogits, a->out[L], y, p->class_weights, B, p->n_classes);
}

void nx_mlp_correct(const nx_mlp_params_t *p, float *probs, int B) {
    if (p->neg_class < 0 || p->neg_rate >= 1.0f)
        return;
    const int K = p->n_classes, neg = p->neg_class;
    const float inv_r = 1.0f / p->neg_rate;
    for (int r = 0; r < B; r++) {
        float *q = probs + (size_t)r * K;
        q[neg] *= inv_r;
        float z = 0.0f;
        for (int k = 0; k < K; k++)
            z += q[k];
        const float inv_z = 1.0f / z;
        for (int k = 0; k < K; k++)
            q[k] *= inv_z;
    }
}

int nx_mlp_predict(nx_mlp_t *mlp, const float *x, int B, float *probs) {
    if (B < 1 || B > mlp->params.max_batch)
        return -1;
    forward(&mlp->params, &mlp->shape, mlp->weights, &mlp->acts, x, NULL, B, NULL);
    memcpy(probs, mlp->acts.probs, sizeof(float) * (size_t)B * (size_t)mlp->params.n_classes);
    nx_mlp_correct(&mlp->params, probs, B);
    return 0;
}

float nx_mlp_lr_at(const nx_mlp_params_t *p, uint64_t step) {
    double lr = p->lr;
    uint64_t after = step;
    if (p->warmup_steps > 0) {
        if (step < (uint64_t)p->warmup_steps)
            return (float)(lr * (double)(step + 1) / (double)p->warmup_steps);
        after = step - (uint64_t)p->warmup_steps;
    }
    if (p->lr_decay > 0.0f) {
        const double floor = p->lr_min;
        lr = floor + (lr - floor) / (1.0 + (double)p->lr_decay * (double)after);
    }
    return (float)lr;
}

/* One flat loop per optimizer over the whole slab (the point of the slab).
 * The loops run over the padded length n, a multiple of NX_MLP_ALIGN_FLOATS
 * (the padding holds zero weights and zero gradients, which every update
 * leaves at zero), with restrict-qualified arguments, so they vectorise
 * (sqrtf needs -fno-math-errno for that, which the build passes; the
 * library is built with -fvect-cost-model=cheap, see model/CMakeLists.txt).
 * Adam's sqrt and divide per weight made this loop the trainer's largest
 * cost with SSE2, x86-64's baseline: each optimizer is compiled three
 * times, for AVX-512, AVX2 and the baseline, and the loader picks the
 * widest the CPU runs (GCC function multi-versioning). The results are the
 * same bits in every version: ISO C mode (CMAKE_C_EXTENSIONS OFF) keeps GCC
 * from contracting a * b + c into an FMA, and vector sqrt and divide are
 * correctly rounded as the scalar ones are. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NX_OPT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NX_OPT_CLONES
#endif
NX_OPT_CLONES static void sgd_update(size_t n, float *restrict w, const float *restrict g, float lr,
                                     float wd) {
    for (size_t i = 0; i < n; i++)
        w[i] -= lr * (g[i] + wd * w[i]);
}

/* Optimizer moments of weights whose gradients stay at or near zero (a
 * dead ReLU unit, a feature that never fires) decay geometrically into
 * subnormal floats, where x86 arithmetic takes a slow microcode path: at
 * ~10% subnormal moments Adam's loop ran 5x slower in replay (30x on a
 * fully subnormal slab, bench in the commit). Moments below FLT_MIN
 * (1.2e-38, far below anything that moves a weight) are set to 0 instead,
 * in both the vector and scalar versions, so results stay the same bits on
 * every CPU. */
static inline float flush_tiny(float x) {
    return fabsf(x) < FLT_MIN ? 0.0f : x;
}

/* torch.optim.SGD with momentum: buf = mu buf + g; w -= lr buf (buf starts
 * at 0, so the first step is buf = g as in torch). */
NX_OPT_CLONES static void momentum_update(size_t n, float *restrict w, const float *restrict g,
                                          float *restrict m, float lr, float wd, float mu) {
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * w[i];
        m[i] = flush_tiny(mu * m[i] + gi);
        w[i] -= lr * m[i];
    }
}

/* torch.optim.Adagrad: sum += g^2; w -= lr g / (sqrt(sum) + eps). */
NX_OPT_CLONES static void adagrad_update(size_t n, float *restrict w, const float *restrict g,
                                         float *restrict v, float lr, float wd, float eps) {
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * w[i];
        v[i] += gi * gi;
        w[i] -= lr * gi / (sqrtf(v[i]) + eps);
    }
}

/* torch.optim.Adam with the bias corrections folded into two scalars:
 * a = lr / (1 - b1^t), inv_c2 = 1 / sqrt(1 - b2^t). */
NX_OPT_CLONES static void adam_update(size_t n, float *restrict w, const float *restrict g,
                                      float *restrict m, float *restrict v, float a, float inv_c2,
                                      float wd, float b1, float b2, float eps) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * w[i];
        m[i] = flush_tiny(b1 * m[i] + c1 * gi);
        v[i] = flush_tiny(b2 * v[i] + c2 * gi * gi);
        w[i] -= a * m[i] / (sqrtf(v[i]) * inv_c2 + eps);
    }
}

static void opt_step(nx_mlp_t *mlp) {
    const nx_mlp_params_t *p = &mlp->params;
    const size_t n = round_up(mlp->shape.n_params);
    const float lr = nx_mlp_lr_at(p, mlp->step) * mlp->lr_scale;
    const float wd = p->weight_decay;
    switch (p->opt) {
    case NX_OPT_SGD:
        sgd_update(n, mlp->weights, mlp->grads, lr, wd);
        break;
    case NX_OPT_MOMENTUM:
        momentum_update(n, mlp->weights, mlp->grads, mlp->m, lr, wd, p->momentum);
        break;
    case NX_OPT_ADAGRAD:
        adagrad_update(n, mlp->weights, mlp->grads, mlp->v, lr, wd, p->eps);
        break;
    case NX_OPT_ADAM: {
        /* step t = step + 1; 1 - beta^t in double once per step */
        const double t = (double)(mlp->step + 1);
        const float a = (float)((double)lr / (1.0 - pow((double)p->beta1, t)));
        const float inv_c2 = (float)(1.0 / sqrt(1.0 - pow((double)p->beta2, t)));
        adam_update(n, mlp->weights, mlp->grads, mlp->m, mlp->v, a, inv_c2, wd, p->beta1, p->beta2,
                    p->eps);
        break;
    }
    }
}

int nx_mlp_train(nx_mlp_t *mlp, const float *x, const int32_t *y, int B, float *loss) {
    const nx_mlp_params_t *p = &mlp->params;
    const nx_mlp_shape_t *s = &mlp->shape;
    if (B < 1 || B > p->max_batch)
        return -1;
    for (int r = 0; r < B; r++)
        if (y[r] < 0 || y[r] >= p->n_classes)
            return -1;
    /* A NaN or inf input must be refused here: ReLU maps NaN to 0, so the
     * loss can stay finite while the first layer's gradient is NaN. One
     * BLAS sum of |x| is the cheap test (NaN and inf propagate through it). */
    if (!isfinite(cblas_sasum(B * p->n_in, x, 1)))
        return -1;
    const int L = s->n_layers;
    float *dcur = mlp->dbuf[0], *dnext = mlp->dbuf[1];
    const float f = forward(p, s, mlp->weights, &mlp->acts, x, y, B, dcur);
    if (!isfinite(f))
        return -1;
    for (int l = L - 1; l >= 0; l--) {
        const float *in = l == 0 ? x : mlp->acts.out[l];
        float *din = l == 0 ? NULL : dnext;
        nx_linear_backward(din, mlp->grads + s->w_off[l], mlp->grads + s->b_off[l], dcur, in,
                           mlp->weights + s->w_off[l], B, s->d[l], s->d[l + 1]);
        if (din) {
            nx_act_backward(p->act, din, mlp->acts.out[l], B * s->d[l]);
            float *t = dcur;
            dcur = dnext;
            dnext = t;
        }
    }
    if (p->clip_norm > 0.0f) {
        const float norm = cblas_snrm2((int)s->n_params, mlp->grads, 1);
        if (!isfinite(norm))
            return -1;
        if (norm > p->clip_norm)
            cblas_sscal((int)s->n_params, p->clip_norm / norm, mlp->grads, 1);
    }
    opt_step(mlp);
    mlp->step++;
    if (loss)
        *loss = f;
    return 0;
}

int nx_mlp_keep(nx_mlp_t *mlp, int32_t label) {
    if (label != mlp->params.neg_class || mlp->params.neg_rate >= 1.0f)
        return 1;
    return nx_rng_uniform(&mlp->rng) < (double)mlp->params.neg_rate;
}

size_t nx_mlp_num_params(const nx_mlp_t *mlp) {
    return mlp->shape.n_params;
}
float *nx_mlp_weights(nx_mlp_t *mlp) {
    return mlp->weights;
}
float *nx_mlp_grads(nx_mlp_t *mlp) {
    return mlp->grads;
}
float *nx_mlp_opt_m(nx_mlp_t *mlp) {
    return mlp->m;
}
float *nx_mlp_opt_v(nx_mlp_t *mlp) {
    return mlp->v;
}
nx_rng_t *nx_mlp_rng(nx_mlp_t *mlp) {
    return &mlp->rng;
}
void nx_mlp_set_step(nx_mlp_t *mlp, uint64_t step) {
    mlp->step = step;
}
size_t nx_mlp_w_offset(const nx_mlp_t *mlp, int l) {
    return mlp->shape.w_off[l];
}
size_t nx_mlp_b_offset(const nx_mlp_t *mlp, int l) {
    return mlp->shape.b_off[l];
}
int nx_mlp_layer_in(const nx_mlp_t *mlp, int l) {
    return mlp->shape.d[l];
}
int nx_mlp_layer_out(const nx_mlp_t *mlp, int l) {
    return mlp->shape.d[l + 1];
}
int nx_mlp_num_layers(const nx_mlp_t *mlp) {
    return mlp->shape.n_layers;
}

double nx_mlp_forward_flops(const nx_mlp_t *mlp) {
    double f = 0.0;
    for (int l = 0; l < mlp->shape.n_layers; l++)
        f += 2.0 * mlp->shape.d[l] * mlp->shape.d[l + 1];
    return f;
}

/* ---- predictor ---- */

nx_mlp_predictor_t *nx_mlp_predictor_new(const nx_mlp_t *mlp, char *errstr, size_t errstr_size) {
    nx_mlp_predictor_t *pred = NULL;
    if (posix_memalign((void **)&pred, 64, sizeof(*pred)) != 0) {
        pred = NULL;
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    memset(pred, 0, sizeof(*pred));
    pred->params = mlp->params;
    pred->shape = mlp->shape;
    const int B = mlp->params.max_batch, K = mlp->params.n_classes;
    const size_t np = round_up(mlp->shape.n_params);
    const size_t total = 3 * np + acts_size(&pred->shape, K, B);
    pred->mem = alloc_floats(total);
    if (!pred->mem) {
        snprintf(errstr, errstr_size, "out of memory (%zu floats of predictor state)", total);
        goto err;
    }
    float *p = pred->mem;
    for (int i = 0; i < 3; i++) {
        pred->slab[i] = p, p += np;
        memcpy(pred->slab[i], mlp->weights, sizeof(float) * mlp->shape.n_params);
        pred->version[i] = mlp->step;
    }
    acts_carve(&pred->acts, &pred->shape, K, B, p);
    pred->front = 0;
    atomic_init(&pred->mid, 1u);
    pred->back = 2;
    atomic_init(&pred->published, mlp->step);
    return pred;
err:
    nx_mlp_predictor_destroy(pred);
    return NULL;
}

void nx_mlp_predictor_destroy(nx_mlp_predictor_t *pred) {
    if (!pred)
        return;
    free(pred->mem);
    free(pred);
}

void nx_mlp_publish(const nx_mlp_t *mlp, nx_mlp_predictor_t *pred) {
    assert(pred->shape.n_params == mlp->shape.n_params);
    const int b = pred->back;
    memcpy(pred->slab[b], mlp->weights, sizeof(float) * mlp->shape.n_params);
    pred->version[b] = mlp->step;
    const unsigned old =
        atomic_exchange_explicit(&pred->mid, (unsigned)b | NX_PRED_FRESH, memory_order_acq_rel);
    pred->back = (int)(old & 3u);
    atomic_store_explicit(&pred->published, mlp->step, memory_order_release);
}

uint64_t nx_mlp_predictor_published(const nx_mlp_predictor_t *pred) {
    return atomic_load_explicit(&((nx_mlp_predictor_t *)pred)->published, memory_order_acquire);
}

uint64_t nx_mlp_predictor_acquire(nx_mlp_predictor_t *pred) {
    if (atomic_load_explicit(&pred->mid, memory_order_acquire) & NX_PRED_FRESH) {
        const unsigned old =
            atomic_exchange_explicit(&pred->mid, (unsigned)pred->front, memory_order_acq_rel);
        pred->front = (int)(old & 3u);
    }
    return pred->version[pred->front];
}

uint64_t nx_mlp_predictor_version(const nx_mlp_predictor_t *pred) {
    return pred->version[pred->front];
}

void nx_mlp_set_lr_scale(nx_mlp_t *mlp, float scale) {
    mlp->lr_scale = scale;
}

const float *nx_mlp_predictor_weights(const nx_mlp_predictor_t *pred) {
    return pred->slab[pred->front];
}

int nx_mlp_predictor_predict(nx_mlp_predictor_t *pred, const float *x, int B, float *probs) {
    if (B < 1 || B > pred->params.max_batch)
        return -1;
    forward(&pred->params, &pred->shape, pred->slab[pred->front], &pred->acts, x, NULL, B, NULL);
    memcpy(probs, pred->acts.probs, sizeof(float) * (size_t)B * (size_t)pred->params.n_classes);
    nx_mlp_correct(&pred->params, probs, B);
    return 0;
}
