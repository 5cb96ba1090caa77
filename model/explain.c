/* explain.c: DeepLIFT (rescale) attributions of a class score (explain.h). */
#include "explain.h"

#include "layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

struct nx_explainer {
    nx_mlp_params_t p;
    int L;                        /* linear layers: n_hidden + 1 */
    int d[NX_MLP_MAX_HIDDEN + 2]; /* widths: d[0] = n_in, d[L] = outputs */
    size_t w_off[NX_MLP_MAX_HIDDEN + 1], b_off[NX_MLP_MAX_HIDDEN + 1];
    float *z[NX_MLP_MAX_HIDDEN + 1];  /* (B, d[l+1]) pre-activations of the rows */
    float *a[NX_MLP_MAX_HIDDEN + 1];  /* (B, d[l+1]) activations (hidden layers) */
    float *z0[NX_MLP_MAX_HIDDEN + 1]; /* (d[l+1]) pre-activations of the baseline */
    float *a0[NX_MLP_MAX_HIDDEN + 1]; /* (d[l+1]) activations of the baseline */
    float *g, *g2;                    /* (B, max width) multipliers being carried back */
    float *weff;                      /* (K, d[L-1]) the score's weights on the last hidden layer */
    int rows;                         /* rows of the last forward pass */
    float *mem;
};

nx_explainer_t *nx_explainer_new(const nx_mlp_params_t *params, char *errstr, size_t errstr_size) {
    if (nx_mlp_params_check(params, errstr, errstr_size) < 0)
        return NULL;
    nx_explainer_t *ex = calloc(1, sizeof *ex);
    if (!ex) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    ex->p = *params;
    ex->L = params->n_hidden + 1;
    ex->d[0] = params->n_in;
    for (int l = 0; l < params->n_hidden; l++)
        ex->d[l + 1] = params->hidden[l];
    ex->d[ex->L] = params->binary_head ? 1 : params->n_classes;
    size_t off = 0, floats = 0, B = (size_t)params->max_batch;
    int wmax = 0;
    for (int l = 0; l < ex->L; l++) {
        ex->w_off[l] = off;
        off += (size_t)ex->d[l + 1] * (size_t)ex->d[l];
        ex->b_off[l] = off;
        off += (size_t)ex->d[l + 1];
        floats += 2 * (B + 1) * (size_t)ex->d[l + 1];
    }
    for (int l = 0; l <= ex->L; l++)
        wmax = ex->d[l] > wmax ? ex->d[l] : wmax;
    floats += 2 * B * (size_t)wmax + (size_t)params->n_classes * (size_t)ex->d[ex->L - 1];
    if (!(ex->mem = malloc(floats * sizeof(float)))) {
        free(ex);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    float *m = ex->mem;
    for (int l = 0; l < ex->L; l++) {
        size_t n = (size_t)ex->d[l + 1];
        ex->z[l] = m, m += B * n;
        ex->a[l] = m, m += B * n;
        ex->z0[l] = m, m += n;
        ex->a0[l] = m, m += n;
    }
    ex->g = m, m += B * (size_t)wmax;
    ex->g2 = m, m += B * (size_t)wmax;
    ex->weff = m;
    return ex;
}

void nx_explainer_destroy(nx_explainer_t *ex) {
    if (!ex)
        return;
    free(ex->mem);
    free(ex);
}

static float dact1(nx_act_t act, float z) {
    switch (act) {
    case NX_ACT_TANH: {
        float t = tanhf(z);
        return 1.0f - t * t;
    }
    case NX_ACT_SIGMOID: {
        float s = 1.0f / (1.0f + expf(-z));
        return s * (1.0f - s);
    }
    default:
        return z > 0.0f ? 1.0f : 0.0f;
    }
}

/* The rescale multiplier of an activation between z0 and z. Where the two
 * are too close for the ratio to be exact in float, the derivative is the
 * ratio's limit; the difference it carries is then tiny anyway. */
static inline float rescale(nx_act_t act, float z, float z0, float a, float a0) {
    float dz = z - z0;
    if (fabsf(dz) > 1e-6f * (1.0f + fabsf(z)))
        return (a - a0) / dz;
    return dact1(act, z);
}

/* a (n) = f(z) (n), the activation written out once per kind so the loop
 * vectorises. */
static void activate(nx_act_t act, const float *restrict z, float *restrict a, size_t n) {
    switch (act) {
    case NX_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            a[i] = tanhf(z[i]);
        break;
    case NX_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            a[i] = 1.0f / (1.0f + expf(-z[i]));
        break;
    default:
        for (size_t i = 0; i < n; i++)
            a[i] = z[i] > 0.0f ? z[i] : 0.0f;
        break;
    }
}

/* Forward pass of n rows keeping pre-activations: z[l], a[l]. The linear
 * layers are nx_linear_forward's (bias rows, then one sgemm with beta 1),
 * so the logits are the bits the predictor computes. */
static void forward(const nx_explainer_t *ex, const float *W, const float *x, int n, float **z,
                    float **a) {
    const float *in = x;
    for (int l = 0; l < ex->L; l++) {
        const int no = ex->d[l + 1], ni = ex->d[l];
        nx_linear_forward(z[l], in, W + ex->w_off[l], W + ex->b_off[l], n, ni, no);
        if (l == ex->L - 1)
            break;
        activate(ex->p.act, z[l], a[l], (size_t)n * (size_t)no);
        in = a[l];
    }
}

int nx_explain_forward(nx_explainer_t *ex, const float *W, const float *x, int B, float *probs) {
    if (B < 1 || B > ex->p.max_batch)
        return -1;
    forward(ex, W, x, B, ex->z, ex->a);
    ex->rows = B;
    const float *logits = ex->z[ex->L - 1];
    if (ex->p.binary_head)
        nx_sigmoid_bce(probs, NULL, logits, NULL, ex->p.class_weights, B);
    else
        nx_softmax_xent(probs, NULL, logits, NULL, ex->p.class_weights, B, ex->p.n_classes);
    nx_mlp_correct(&ex->p, probs, B);
    return 0;
}

/* Coefficients of the explained score on the output units: c (d[L]). */
static void score_coef(const nx_explainer_t *ex, int cls, float *c) {
    const int K = ex->d[ex->L];
    if (ex->p.binary_head) {
        c[0] = cls == 1 ? 1.0f : -1.0f;
        return;
    }
    for (int k = 0; k < K; k++)
        c[k] = (k == cls ? 1.0f : 0.0f) - 1.0f / (float)K;
}

int nx_explain(nx_explainer_t *ex, const float *W, const float *x, const float *x0,
               const int32_t *cls, int B, float *contrib, float *delta) {
    if (B < 1 || B > ex->p.max_batch)
        return -1;
    forward(ex, W, x, B, ex->z, ex->a);
    ex->rows = B;
    return nx_explain_rows(ex, W, x, x0, cls, B, contrib, delta);
}

int nx_explain_rows(nx_explainer_t *ex, const float *W, const float *x, const float *x0,
                    const int32_t *cls, int B, float *contrib, float *delta) {
    if (B < 1 || B != ex->rows)
        return -1;
    for (int b = 0; b < B; b++)
        if (cls[b] < 0 || cls[b] >= ex->p.n_classes)
            return -1;
    const int L = ex->L, K = ex->d[L];
    forward(ex, W, x0, 1, ex->z0, ex->a0);

    /* The score's multipliers on the last hidden layer's outputs (or the
     * input, without hidden layers): g[b] = c_b . W_last, c_b the score's
     * coefficients on the output units, which depend on the class only: one
     * row per class, computed once. And the score differences. */
    const int nl = ex->d[L - 1];
    const float *Wl = W + ex->w_off[L - 1];
    float c[NX_MLP_MAX_CLASSES];
    for (int k = 0; k < ex->p.n_classes; k++) {
        score_coef(ex, k, c);
        float *row = ex->weff + (size_t)k * nl;
        memset(row, 0, sizeof(float) * (size_t)nl);
        for (int o = 0; o < K; o++) {
            const float *w = Wl + (size_t)o * nl;
            for (int j = 0; j < nl; j++)
                row[j] += c[o] * w[j];
        }
    }
    for (int b = 0; b < B; b++) {
        memcpy(ex->g + (size_t)b * nl, ex->weff + (size_t)cls[b] * nl, sizeof(float) * (size_t)nl);
        if (delta) {
            score_coef(ex, cls[b], c);
            double ds = 0;
            for (int k = 0; k < K; k++)
                ds += (double)c[k] * ((double)ex->z[L - 1][(size_t)b * K + k] - ex->z0[L - 1][k]);
            delta[b] = (float)ds;
        }
    }
    /* Back through the hidden layers: scale by the activations'
     * multipliers, then carry through the linear layer below. */
    for (int l = L - 2; l >= 0; l--) {
        const int no = ex->d[l + 1], ni = ex->d[l];
        const float *z0 = ex->z0[l], *a0 = ex->a0[l];
        for (int b = 0; b < B; b++) {
            float *g = ex->g + (size_t)b * no;
            const float *z = ex->z[l] + (size_t)b * no, *a = ex->a[l] + (size_t)b * no;
            if (ex->p.act == NX_ACT_RELU) {
                /* The ratio is exactly 1 where row and baseline are both
                 * active (the same difference above and below) and 0 where
                 * both are not; written without branches so it vectorises.
                 * Where the difference is too small for the ratio, the
                 * derivative. */
                for (int j = 0; j < no; j++) {
                    float d = z[j] - z0[j], lim = 1e-6f * (1.0f + fabsf(z[j]));
                    int far = fabsf(d) > lim;
                    float r = (a[j] - a0[j]) / (far ? d : 1.0f);
                    g[j] *= far ? r : (z[j] > 0.0f ? 1.0f : 0.0f);
                }
            } else {
                for (int j = 0; j < no; j++)
                    g[j] *= rescale(ex->p.act, z[j], z0[j], a[j], a0[j]);
            }
        }
        /* g2 (B, ni) = g (B, no) . W_l (no, ni) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, ni, no, 1.0f, ex->g, no,
                    W + ex->w_off[l], ni, 0.0f, ex->g2, ni);
        float *t = ex->g;
        ex->g = ex->g2;
        ex->g2 = t;
    }
    const int n = ex->d[0];
    for (int b = 0; b < B; b++) {
        const float *g = ex->g + (size_t)b * n, *xb = x + (size_t)b * n;
        float *cb = contrib + (size_t)b * n;
        for (int j = 0; j < n; j++)
            cb[j] = g[j] * (xb[j] - x0[j]);
    }
    return 0;
}
