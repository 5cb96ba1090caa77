/* layers.c: see layers.h. */
#include "layers.h"

#include <math.h>
#include <string.h>

#include <cblas.h>

/* The element-wise loops run in two parts: a body whose trip count is a
 * multiple of 16 (n & ~15) and a scalar tail. GCC's -O2 vectoriser ("very
 * cheap" cost model) only takes loops it can vectorise without an epilogue;
 * this shape gives it one. Body and tail compute the same expression, so
 * results do not depend on where the split falls. */
#define NX_VEC_BODY(n) ((n) & ~15)

void nx_linear_forward(float *out, const float *in, const float *W, const float *b, int B, int n_in,
                       int n_out) {
    /* Broadcast the bias, then accumulate the product onto it (beta = 1). */
    for (int r = 0; r < B; r++)
        memcpy(out + (size_t)r * n_out, b, sizeof(float) * (size_t)n_out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, n_out, n_in, 1.0f, in, n_in, W, n_in,
                1.0f, out, n_out);
}

void nx_linear_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                        const float *W, int B, int n_in, int n_out) {
    /* dW = dout^T (n_out, B) . in (B, n_in) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, B, 1.0f, dout, n_out, in,
                n_in, 0.0f, dW, n_in);
    /* db: row-by-row sums keep the inner loop contiguous (vectorises). */
    memcpy(db, dout, sizeof(float) * (size_t)n_out);
    const int n16 = NX_VEC_BODY(n_out);
    for (int r = 1; r < B; r++) {
        const float *restrict row = dout + (size_t)r * n_out;
        float *restrict acc = db;
        int j;
        for (j = 0; j < n16; j++)
            acc[j] += row[j];
        for (; j < n_out; j++)
            acc[j] += row[j];
    }
    /* din = dout (B, n_out) . W (n_out, n_in) */
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, n_in, n_out, 1.0f, dout, n_out, W,
                    n_in, 0.0f, din, n_in);
}

static inline float relu1(float x) {
    return x > 0.0f ? x : 0.0f;
}

void nx_act_forward(nx_act_t act, float *x, int n) {
    const int n16 = NX_VEC_BODY(n);
    int i;
    switch (act) {
    case NX_ACT_RELU:
        for (i = 0; i < n16; i++)
            x[i] = relu1(x[i]);
        for (; i < n; i++)
            x[i] = relu1(x[i]);
        break;
    case NX_ACT_TANH: /* libm calls: no vector variant at -O2 */
        for (i = 0; i < n; i++)
            x[i] = tanhf(x[i]);
        break;
    case NX_ACT_SIGMOID:
        for (i = 0; i < n; i++)
            x[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    }
}

void nx_act_backward(nx_act_t act, float *restrict dx, const float *restrict y, int n) {
    const int n16 = NX_VEC_BODY(n);
    int i;
    switch (act) {
    case NX_ACT_RELU:
        for (i = 0; i < n16; i++)
            dx[i] = y[i] > 0.0f ? dx[i] : 0.0f;
        for (; i < n; i++)
            dx[i] = y[i] > 0.0f ? dx[i] : 0.0f;
        break;
    case NX_ACT_TANH:
        for (i = 0; i < n16; i++)
            dx[i] *= 1.0f - y[i] * y[i];
        for (; i < n; i++)
            dx[i] *= 1.0f - y[i] * y[i];
        break;
    case NX_ACT_SIGMOID:
        for (i = 0; i < n16; i++)
            dx[i] *= y[i] * (1.0f - y[i]);
        for (; i < n; i++)
            dx[i] *= y[i] * (1.0f - y[i]);
        break;
    }
}

float nx_softmax_xent(float *probs, float *dlogits, const float *logits, const int32_t *y,
                      const float *w, int B, int K) {
    double loss = 0.0;
    const float inv_b = 1.0f / (float)B;
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t)r * K;
        float *p = probs + (size_t)r * K;
        /* Subtract the row maximum so expf cannot overflow. */
        float zmax = z[0];
        for (int k = 1; k < K; k++)
            zmax = z[k] > zmax ? z[k] : zmax;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) {
            p[k] = expf(z[k] - zmax);
            sum += p[k];
        }
        const float inv = 1.0f / sum;
        for (int k = 0; k < K; k++)
            p[k] *= inv;
        if (!y)
            continue;
        const int t = y[r];
        const float wt = w ? w[t] : 1.0f;
        const float pt = p[t] > NX_LOSS_PMIN ? p[t] : NX_LOSS_PMIN;
        loss += (double)wt * -log((double)pt);
        if (dlogits) {
            float *d = dlogits + (size_t)r * K;
            const float s = wt * inv_b;
            for (int k = 0; k < K; k++)
                d[k] = s * p[k];
            d[t] -= s;
        }
    }
    return (float)(loss / B);
}

float nx_sigmoid_bce(float *probs, float *dlogits, const float *logits, const int32_t *y,
                     const float *w, int B) {
    double loss = 0.0;
    const float inv_b = 1.0f / (float)B;
    for (int r = 0; r < B; r++) {
        const float p1 = 1.0f / (1.0f + expf(-logits[r]));
        probs[2 * r] = 1.0f - p1;
        probs[2 * r + 1] = p1;
        if (!y)
            continue;
        const int t = y[r];
        const float wt = w ? w[t] : 1.0f;
        float pt = t ? p1 : 1.0f - p1;
        pt = pt > NX_LOSS_PMIN ? pt : NX_LOSS_PMIN;
        loss += (double)wt * -log((double)pt);
        if (dlogits)
            dlogits[r] = wt * inv_b * (p1 - (float)t);
    }
    return (float)(loss / B);
}
