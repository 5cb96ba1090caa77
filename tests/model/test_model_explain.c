/*
 * test_model_explain.c: unit tests of model/explain.h (DeepLIFT rescale
 * attributions) against a naive double-precision twin written unit by
 * unit, and against the network's own log-probabilities. Links only
 * nx_model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "mlp.h"
#include "model_check.h"
#include "rng.h"

/* Naive twin of nx_explain, in double: the rescale rule written out unit by
 * unit. Returns the score difference; contributions into c (n_in). */
static double explain_naive(const nx_mlp_params_t *p, const float *W, const float *x,
                            const float *x0, int cls, double *c) {
    int L = p->n_hidden + 1, d[NX_MLP_MAX_HIDDEN + 2];
    d[0] = p->n_in;
    for (int l = 0; l < p->n_hidden; l++)
        d[l + 1] = p->hidden[l];
    d[L] = p->binary_head ? 1 : p->n_classes;
    double z[NX_MLP_MAX_HIDDEN + 1][64], z0[NX_MLP_MAX_HIDDEN + 1][64];
    double a[NX_MLP_MAX_HIDDEN + 1][64], a0[NX_MLP_MAX_HIDDEN + 1][64];
    double in[64], in0[64];
    for (int j = 0; j < d[0]; j++)
        in[j] = x[j], in0[j] = x0[j];
    size_t off = 0, woff[NX_MLP_MAX_HIDDEN + 1];
    for (int l = 0; l < L; l++) {
        woff[l] = off;
        const float *Wl = W + off, *bl = W + off + (size_t)d[l + 1] * d[l];
        for (int o = 0; o < d[l + 1]; o++) {
            double s = bl[o], s0 = bl[o];
            for (int i = 0; i < d[l]; i++) {
                s += (double)Wl[(size_t)o * d[l] + i] * in[i];
                s0 += (double)Wl[(size_t)o * d[l] + i] * in0[i];
            }
            z[l][o] = s, z0[l][o] = s0;
            if (p->act == NX_ACT_TANH)
                a[l][o] = tanh(s), a0[l][o] = tanh(s0);
            else if (p->act == NX_ACT_SIGMOID)
                a[l][o] = 1 / (1 + exp(-s)), a0[l][o] = 1 / (1 + exp(-s0));
            else
                a[l][o] = s > 0 ? s : 0, a0[l][o] = s0 > 0 ? s0 : 0;
        }
        for (int o = 0; o < d[l + 1]; o++)
            in[o] = a[l][o], in0[o] = a0[l][o];
        off += (size_t)d[l + 1] * d[l] + (size_t)d[l + 1];
    }
    double coef[NX_MLP_MAX_CLASSES], g[64], g2[64], ds = 0;
    for (int k = 0; k < d[L]; k++) {
        coef[k] = p->binary_head ? (cls == 1 ? 1 : -1) : (k == cls) - 1.0 / d[L];
        ds += coef[k] * (z[L - 1][k] - z0[L - 1][k]);
    }
    for (int j = 0; j < d[L - 1]; j++) {
        g[j] = 0;
        for (int k = 0; k < d[L]; k++)
            g[j] += coef[k] * W[woff[L - 1] + (size_t)k * d[L - 1] + j];
    }
    for (int l = L - 2; l >= 0; l--) {
        for (int o = 0; o < d[l + 1]; o++) {
            double dz = z[l][o] - z0[l][o];
            double m = fabs(dz) > 1e-9 ? (a[l][o] - a0[l][o]) / dz
                                       : (p->act == NX_ACT_RELU ? (z[l][o] > 0) : 0.0);
            g[o] *= m;
        }
        for (int i = 0; i < d[l]; i++) {
            g2[i] = 0;
            for (int o = 0; o < d[l + 1]; o++)
                g2[i] += g[o] * W[woff[l] + (size_t)o * d[l] + i];
        }
        for (int i = 0; i < d[l]; i++)
            g[i] = g2[i];
    }
    for (int j = 0; j < d[0]; j++)
        c[j] = g[j] * ((double)x[j] - x0[j]);
    return ds;
}

/* DeepLIFT attributions: they add up to the score difference (and that
 * difference is log p_k - mean log p against the baseline's, from the
 * network's own predictions), they match the naive twin, and without
 * hidden layers they are w (x - x0). */
static void test_explain(void) {
    struct {
        int n_hidden, h0, h1, K, binary;
        nx_act_t act;
    } cases[] = {
        {2, 16, 8, 4, 0, NX_ACT_RELU},   {1, 12, 0, 3, 0, NX_ACT_TANH},
        {2, 8, 8, 2, 1, NX_ACT_SIGMOID}, {0, 0, 0, 4, 0, NX_ACT_RELU},
        {2, 16, 8, 2, 1, NX_ACT_RELU},
    };
    char err[256];
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int n_in = 10, B = 6;
        nx_mlp_params_t p;
        nx_mlp_params_default(&p, n_in, cases[t].K);
        p.n_hidden = cases[t].n_hidden;
        p.hidden[0] = cases[t].h0;
        p.hidden[1] = cases[t].h1;
        p.act = cases[t].act;
        p.binary_head = cases[t].binary;
        p.max_batch = 16;
        p.seed = 11 + t;
        nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof err);
        nx_explainer_t *ex = nx_explainer_new(&p, err, sizeof err);
        CHECK(mlp && ex, "explain case %zu: %s", t, err);
        if (!mlp || !ex)
            continue;
        /* a few steps, so biases are not zero */
        float xt[16 * 10], x[6 * 10], x0[10], contrib[6 * 10], delta[6], pr[7 * 16];
        int32_t yt[16], cls[6];
        for (int s = 0; s < 20; s++) {
            fill(xt, sizeof xt / sizeof xt[0], -2, 2);
            for (int i = 0; i < 16; i++)
                yt[i] = (int32_t)(nx_rng_next(&trng) % (uint64_t)cases[t].K);
            nx_mlp_train(mlp, xt, yt, 16, NULL);
        }
        fill(x, sizeof x / sizeof x[0], -2, 2);
        fill(x0, 10, -0.5f, 0.5f);
        for (int b = 0; b < B; b++)
            cls[b] = (int32_t)(b % cases[t].K);
        const float *W = nx_mlp_weights(mlp);
        CHECK(nx_explain(ex, W, x, x0, cls, B, contrib, delta) == 0, "explain case %zu", t);
        /* the network's own log-probabilities, for the score difference */
        float rows[7 * 10];
        memcpy(rows, x, sizeof x);
        memcpy(rows + 6 * 10, x0, sizeof x0);
        nx_mlp_predict(mlp, rows, 7, pr);
        const int K = cases[t].K;
        for (int b = 0; b < B; b++) {
            double sum = 0;
            for (int j = 0; j < n_in; j++)
                sum += contrib[b * n_in + j];
            CHECK_CLOSE(sum, delta[b], 1e-5, 1e-4);
            double sx = log(pr[b * K + cls[b]]), s0 = log(pr[6 * K + cls[b]]), mx = 0, m0 = 0;
            for (int k = 0; k < K; k++)
                mx += log(pr[b * K + k]) / K, m0 += log(pr[6 * K + k]) / K;
            double want = p.binary_head ? (cls[b] == 1 ? 1 : -1) * (log(pr[b * K + 1] / pr[b * K]) -
                                                                    log(pr[6 * K + 1] / pr[6 * K]))
                                        : (sx - mx) - (s0 - m0);
            CHECK_CLOSE(delta[b], want, 1e-4, 1e-3);
            double c[64];
            double ds = explain_naive(&p, W, x + b * n_in, x0, cls[b], c);
            CHECK_CLOSE(delta[b], ds, 1e-5, 1e-4);
            for (int j = 0; j < n_in; j++)
                CHECK_CLOSE(contrib[b * n_in + j], c[j], 1e-5, 1e-3);
        }
        /* predicting through the explainer gives the predictor's bits */
        float pe[7 * 16];
        CHECK(nx_explain_forward(ex, W, rows, 7, pe) == 0, "explain forward");
        CHECK(memcmp(pe, pr, sizeof(float) * 7 * (size_t)K) == 0,
              "explain forward: probabilities differ from nx_mlp_predict's (case %zu)", t);
        CHECK(nx_explain_rows(ex, W, rows, x0, cls, 6, contrib, delta) == -1,
              "rows must match the forward's");
        int32_t bad = (int32_t)K;
        CHECK(nx_explain(ex, W, x, x0, &bad, 1, contrib, delta) == -1, "class out of range");
        CHECK(nx_explain(ex, W, x, x0, cls, 0, contrib, delta) == -1, "empty batch");
        nx_explainer_destroy(ex);
        nx_mlp_destroy(mlp);
    }
}

int main(void) {
    test_rng_seed();
    test_explain();
    return check_exit("test_model_explain");
}
