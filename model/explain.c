/* explain.c: DeepLIFT (rescale) attributions of a class score (explain.h). */
#include "explain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

struct nx_explainer {
    nx_mlp_params_t p;
    int L;                       /* linear layers: n_hidden + 1 */
    int d[NX_MLP_MAX_HIDDEN + 2]; /* widths: d[0] = n_in, d[L] = outputs */
    size_t w_off[NX_MLP_MAX_HIDDEN + 1], b_off[NX_MLP_MAX_HIDDEN + 1];
    float *z[NX_MLP_MAX_HIDDEN + 1];  /* (B, d[l+1]) pre-activations of the rows */
    float *a[NX_MLP_MAX_HIDDEN + 1];  /* (B, d[l+1]) activations (hidden layers) */
    float *z0[NX_MLP_MAX_HIDDEN + 1]; /* (d[l+1]) pre-activations of the baseline */
    float *a0[NX_MLP_MAX_HIDDEN + 1]; /* (d[l+1]) activations of the baseline */
    float *g, *g2;                    /* (B, max width) multipliers being carried back */
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
    floats += 2 * B * (size_t)wmax;
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
    ex->g2 = m;
    return ex;
}

void nx_explainer_destroy(nx_explainer_t *ex) {
    if (!ex)
        return;
    free(ex->mem);
    free(ex);
}

static float act1(nx_act_t act, float z) {
    switch (act) {
    case NX_ACT_TANH:
        return tanhf(z);
    case NX_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-z));
    default:
        return z > 0.0f ? z : 0.0f;
    }
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
static float rescale(nx_act_t act, float z, float z0, float a, float a0) {
    float dz = z - z0;
    if (fabsf(dz) > 1e-6f * (1.0f + fabsf(z)))
        return (a - a0) / dz;
    return dact1(act, z);
}

/* Forward pass of n rows keeping pre-activations: z[l], a[l]. */
static void forward(const nx_explainer_t *ex, const float *W, const float *x, int n, float **z,
                    float **a) {
    const float *in = x;
    for (int l = 0; l < ex->L; l++) {
        const int no = ex->d[l + 1], ni = ex->d[l];
        float *out = z[l];
        for (int r = 0; r < n; r++)
            memcpy(out + (size_t)r * no, W + ex->b_off[l], sizeof(float) * (size_t)no);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, no, ni, 1.0f, in, ni,
                    W + ex->w_off[l], ni, 1.0f, out, no);
        if (l == ex->L - 1)
            break;
        for (size_t i = 0; i < (size_t)n * (size_t)no; i++)
            a[l][i] = act1(ex->p.act, out[i]);
        in = a[l];
    }
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
    for (int b = 0; b < B; b++)
        if (cls[b] < 0 || cls[b] >= ex->p.n_classes)
            return -1;
    const int L = ex->L, K = ex->d[L];
    forward(ex, W, x, B, ex->z, ex->a);
    forward(ex, W, x0, 1, ex->z0, ex->a0);

    /* The score's multipliers on the last hidden layer's outputs (or the
     * input, without hidden layers): g[b] = c_b . W_last, c_b the score's
     * coefficients on the output units; and the score differences. */
    const int nl = ex->d[L - 1];
    const float *Wl = W + ex->w_off[L - 1];
    float c[NX_MLP_MAX_CLASSES];
    for (int b = 0; b < B; b++) {
        score_coef(ex, cls[b], c);
        float *g = ex->g + (size_t)b * nl;
        memset(g, 0, sizeof(float) * (size_t)nl);
        double ds = 0;
        for (int k = 0; k < K; k++) {
            const float *row = Wl + (size_t)k * nl;
            for (int j = 0; j < nl; j++)
                g[j] += c[k] * row[j];
            ds += (double)c[k] * ((double)ex->z[L - 1][(size_t)b * K + k] - ex->z0[L - 1][k]);
        }
        if (delta)
            delta[b] = (float)ds;
    }
    /* Back through the hidden layers: scale by the activations'
     * multipliers, then carry through the linear layer below. */
    for (int l = L - 2; l >= 0; l--) {
        const int no = ex->d[l + 1], ni = ex->d[l];
        for (int b = 0; b < B; b++) {
            float *g = ex->g + (size_t)b * no;
            const float *z = ex->z[l] + (size_t)b * no, *a = ex->a[l] + (size_t)b * no;
            for (int j = 0; j < no; j++)
                g[j] *= rescale(ex->p.act, z[j], ex->z0[l][j], a[j], ex->a0[l][j]);
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
