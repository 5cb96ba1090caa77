/*
 * test_model.c: unit tests of model/'s network (layers, MLP, optimizers,
 * predictor, down-sampling, parameter checks). Links only nx_model. The
 * metrics, the checkpoint and the explanations have test executables of
 * their own (test_model_metrics.c, test_model_checkpoint.c,
 * test_model_explain.c).
 *
 * The references live here and only here: naive loop twins of the layer
 * functions in double precision, central finite differences in double, a
 * hand-derived Adam step. Returns non-zero when any check fails; every
 * failure prints file:line and the values compared.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "mlp.h"
#include "model_check.h"
#include "rng.h"

/* ---- naive double-precision twins ---- */

static void lin_d(double *out, const double *in, const double *W, const double *b, int B, int ni,
                  int no) {
    for (int r = 0; r < B; r++)
        for (int j = 0; j < no; j++) {
            double s = b[j];
            for (int i = 0; i < ni; i++)
                s += in[r * ni + i] * W[j * ni + i];
            out[r * no + j] = s;
        }
}

static void lin_back_d(double *din, double *dW, double *db, const double *dout, const double *in,
                       const double *W, int B, int ni, int no) {
    for (int j = 0; j < no; j++) {
        db[j] = 0;
        for (int i = 0; i < ni; i++)
            dW[j * ni + i] = 0;
    }
    for (int r = 0; r < B; r++)
        for (int j = 0; j < no; j++) {
            db[j] += dout[r * no + j];
            for (int i = 0; i < ni; i++)
                dW[j * ni + i] += dout[r * no + j] * in[r * ni + i];
        }
    for (int r = 0; r < B; r++)
        for (int i = 0; i < ni; i++) {
            double s = 0;
            for (int j = 0; j < no; j++)
                s += dout[r * no + j] * W[j * ni + i];
            din[r * ni + i] = s;
        }
}

static double act_d(nx_act_t act, double x) {
    switch (act) {
    case NX_ACT_RELU:
        return x > 0 ? x : 0;
    case NX_ACT_TANH:
        return tanh(x);
    case NX_ACT_SIGMOID:
        return 1 / (1 + exp(-x));
    }
    return 0;
}

static double xent_d(const double *z, const int32_t *y, const float *w, int B, int K) {
    double loss = 0;
    for (int r = 0; r < B; r++) {
        double m = z[r * K];
        for (int k = 1; k < K; k++)
            m = z[r * K + k] > m ? z[r * K + k] : m;
        double s = 0;
        for (int k = 0; k < K; k++)
            s += exp(z[r * K + k] - m);
        loss += (w ? w[y[r]] : 1.0) * -(z[r * K + y[r]] - m - log(s));
    }
    return loss / B;
}

static double bce_d(const double *z, const int32_t *y, const float *w, int B) {
    double loss = 0;
    for (int r = 0; r < B; r++) {
        double p = 1 / (1 + exp(-z[r]));
        loss += (w ? w[y[r]] : 1.0) * -(y[r] ? log(p) : log(1 - p));
    }
    return loss / B;
}

/* Whole-network loss in double from a float slab. */
static double net_loss_d(nx_mlp_t *mlp, const double *wslab, const float *x, const int32_t *y,
                         int B) {
    const nx_mlp_params_t *p = nx_mlp_params(mlp);
    const int L = nx_mlp_num_layers(mlp);
    double *a = malloc(sizeof(double) * (size_t)B * 4096), *o = malloc(sizeof(double) * B * 4096);
    for (int i = 0; i < B * p->n_in; i++)
        a[i] = x[i];
    for (int l = 0; l < L; l++) {
        const int ni = nx_mlp_layer_in(mlp, l), no = nx_mlp_layer_out(mlp, l);
        lin_d(o, a, wslab + nx_mlp_w_offset(mlp, l), wslab + nx_mlp_b_offset(mlp, l), B, ni, no);
        for (int i = 0; i < B * no; i++)
            a[i] = l < L - 1 ? act_d(p->act, o[i]) : o[i];
    }
    const double loss = p->binary_head ? bce_d(a, y, p->class_weights, B)
                                       : xent_d(a, y, p->class_weights, B, p->n_classes);
    free(a);
    free(o);
    return loss;
}

/* ---- layers: BLAS against naive twins, backward against finite differences ---- */

static void test_linear(void) {
    enum { B = 7, NI = 13, NO = 9 };
    float in[B * NI], W[NO * NI], b[NO], out[B * NO], dout[B * NO], din[B * NI], dW[NO * NI],
        db[NO];
    double ind[B * NI], Wd[NO * NI], bd[NO], outd[B * NO], doutd[B * NO], dind[B * NI],
        dWd[NO * NI], dbd[NO];
    fill(in, B * NI, -1, 1);
    fill(W, NO * NI, -1, 1);
    fill(b, NO, -1, 1);
    fill(dout, B * NO, -1, 1);
    for (int i = 0; i < B * NI; i++)
        ind[i] = in[i];
    for (int i = 0; i < NO * NI; i++)
        Wd[i] = W[i];
    for (int i = 0; i < NO; i++)
        bd[i] = b[i];
    for (int i = 0; i < B * NO; i++)
        doutd[i] = dout[i];
    nx_linear_forward(out, in, W, b, B, NI, NO);
    lin_d(outd, ind, Wd, bd, B, NI, NO);
    for (int i = 0; i < B * NO; i++)
        CHECK_CLOSE(out[i], outd[i], 1e-5, 1e-5);
    nx_linear_backward(din, dW, db, dout, in, W, B, NI, NO);
    lin_back_d(dind, dWd, dbd, doutd, ind, Wd, B, NI, NO);
    for (int i = 0; i < B * NI; i++)
        CHECK_CLOSE(din[i], dind[i], 1e-5, 1e-5);
    for (int i = 0; i < NO * NI; i++)
        CHECK_CLOSE(dW[i], dWd[i], 1e-5, 1e-5);
    for (int i = 0; i < NO; i++)
        CHECK_CLOSE(db[i], dbd[i], 1e-5, 1e-5);

    /* Finite differences of f = sum(dout . linear(in)) in double, against
     * the float BLAS backward: d f / d W_ji, d f / d in_ri, d f / d b_j. */
    const double h = 1e-6;
    double *params[3] = {Wd, ind, bd};
    float *grads[3] = {dW, din, db};
    int sizes[3] = {NO * NI, B * NI, NO};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < sizes[t]; i++) {
            double f[2];
            const double save = params[t][i];
            for (int s = 0; s < 2; s++) {
                params[t][i] = save + (s ? -h : h);
                lin_d(outd, ind, Wd, bd, B, NI, NO);
                f[s] = 0;
                for (int k = 0; k < B * NO; k++)
                    f[s] += doutd[k] * outd[k];
            }
            params[t][i] = save;
            CHECK_CLOSE(grads[t][i], (f[0] - f[1]) / (2 * h), 1e-4, 1e-4);
        }
}

static void test_activations(void) {
    enum { N = 64 };
    for (int a = NX_ACT_RELU; a <= NX_ACT_SIGMOID; a++) {
        float x[N], y[N], dx[N], g[N];
        fill(x, N, -3, 3);
        fill(g, N, -1, 1);
        memcpy(y, x, sizeof(x));
        nx_act_forward((nx_act_t)a, y, N);
        memcpy(dx, g, sizeof(g));
        nx_act_backward((nx_act_t)a, dx, y, N);
        for (int i = 0; i < N; i++) {
            CHECK_CLOSE(y[i], act_d((nx_act_t)a, x[i]), 1e-6, 1e-6);
            if (a == NX_ACT_RELU && fabsf(x[i]) < 1e-3f)
                continue; /* the kink: no derivative to compare with */
            const double h = 1e-6;
            const double fd =
                (act_d((nx_act_t)a, (double)x[i] + h) - act_d((nx_act_t)a, (double)x[i] - h)) /
                (2 * h);
            CHECK_CLOSE(dx[i], g[i] * fd, 1e-5, 1e-4);
        }
    }
}

static void test_losses(void) {
    enum { B = 6, K = 5 };
    float z[B * K], p[B * K], dz[B * K], w[K] = {1, 2, 0.5f, 1, 3};
    double zd[B * K];
    int32_t y[B] = {0, 4, 2, 1, 3, 4};
    fill(z, B * K, -4, 4);
    for (int i = 0; i < B * K; i++)
        zd[i] = z[i];
    for (int wi = 0; wi < 2; wi++) {
        const float *ww = wi ? w : NULL;
        const float loss = nx_softmax_xent(p, dz, z, y, ww, B, K);
        CHECK_CLOSE(loss, xent_d(zd, y, ww, B, K), 1e-5, 1e-5);
        for (int r = 0; r < B; r++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += p[r * K + k];
            CHECK_CLOSE(s, 1.0, 1e-6, 0);
        }
        for (int i = 0; i < B * K; i++) {
            const double h = 1e-6, save = zd[i];
            zd[i] = save + h;
            const double fp = xent_d(zd, y, ww, B, K);
            zd[i] = save - h;
            const double fm = xent_d(zd, y, ww, B, K);
            zd[i] = save;
            CHECK_CLOSE(dz[i], (fp - fm) / (2 * h), 1e-5, 1e-4);
        }
        /* binary head */
        int32_t yb[B] = {0, 1, 1, 0, 1, 0};
        float pb[B * 2], dzb[B];
        const float lb = nx_sigmoid_bce(pb, dzb, z, yb, ww, B);
        CHECK_CLOSE(lb, bce_d(zd, yb, ww, B), 1e-5, 1e-5);
        for (int r = 0; r < B; r++) {
            const double h = 1e-6, save = zd[r];
            zd[r] = save + h;
            const double fp = bce_d(zd, yb, ww, B);
            zd[r] = save - h;
            const double fm = bce_d(zd, yb, ww, B);
            zd[r] = save;
            CHECK_CLOSE(dzb[r], (fp - fm) / (2 * h), 1e-5, 1e-4);
            CHECK_CLOSE(pb[2 * r] + pb[2 * r + 1], 1.0, 1e-6, 0);
        }
    }
}

/* Whole network: the gradient slab nx_mlp_train leaves (computed before its
 * step) against central differences of the double-precision network. */
static void test_network_gradients(void) {
    for (int a = NX_ACT_RELU; a <= NX_ACT_SIGMOID; a++)
        for (int head = 0; head < 3; head++) {
            nx_mlp_params_t p;
            char err[256];
            const int K = head == 2 ? 4 : 2;
            nx_mlp_params_default(&p, 5, K);
            p.hidden[0] = 7;
            p.hidden[1] = 6;
            p.act = (nx_act_t)a;
            p.binary_head = head == 1;
            p.opt = NX_OPT_SGD;
            p.max_batch = 8;
            p.seed = 10 + (uint64_t)a;
            p.class_weights[1] = 2.5f;
            nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof(err));
            CHECK(mlp != NULL, "%s", err);
            if (!mlp)
                continue;
            const size_t n = nx_mlp_num_params(mlp);
            /* Non-zero biases so every parameter matters. */
            float *w = nx_mlp_weights(mlp);
            for (int l = 0; l < nx_mlp_num_layers(mlp); l++)
                fill(w + nx_mlp_b_offset(mlp, l), (size_t)nx_mlp_layer_out(mlp, l), -0.3f, 0.3f);
            double *wd = malloc(sizeof(double) * n);
            for (size_t i = 0; i < n; i++)
                wd[i] = w[i];
            float x[8 * 5];
            int32_t y[8];
            fill(x, 8 * 5, -2, 2);
            for (int r = 0; r < 8; r++)
                y[r] = (int32_t)(nx_rng_next(&trng) % (uint64_t)K);
            float loss;
            CHECK(nx_mlp_train(mlp, x, y, 8, &loss) == 0, "train");
            CHECK_CLOSE(loss, net_loss_d(mlp, wd, x, y, 8), 1e-5, 1e-5);
            const float *g = nx_mlp_grads(mlp);
            for (size_t i = 0; i < n; i++) {
                const double h = 1e-6, save = wd[i];
                wd[i] = save + h;
                const double fp = net_loss_d(mlp, wd, x, y, 8);
                wd[i] = save - h;
                const double fm = net_loss_d(mlp, wd, x, y, 8);
                wd[i] = save;
                CHECK_CLOSE(g[i], (fp - fm) / (2 * h), 1e-5, 1e-3);
            }
            free(wd);
            nx_mlp_destroy(mlp);
        }
}

/* One logistic unit (no hidden layer, binary head), two Adam steps against
 * the update written out by hand:
 *   z = w x + b, p = sigmoid(z), dL/dw = (p - y) x, dL/db = p - y
 *   m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2
 *   w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Step 1 from w = 0.5, b = 0, x = 2, y = 1: z = 1, p = 0.7310585786,
 * g_w = -0.5378828427, g_b = -0.2689414214; m_hat = g, v_hat = g^2, so each
 * parameter moves by lr g / (|g| + eps) = +0.001 (to 1e-8 relative). */
static void test_adam_step(void) {
    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, 1, 2);
    p.n_hidden = 0;
    p.binary_head = 1;
    nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof(err));
    CHECK(mlp != NULL, "%s", err);
    if (!mlp)
        return;
    float *w = nx_mlp_weights(mlp);
    w[0] = 0.5f;
    w[1] = 0.0f;
    const float x = 2.0f;
    const int32_t y = 1;
    float loss;
    CHECK(nx_mlp_train(mlp, &x, &y, 1, &loss) == 0, "train");
    CHECK_CLOSE(loss, -log(0.7310585786), 1e-6, 0);
    CHECK_CLOSE(w[0], 0.501, 1e-7, 0);
    CHECK_CLOSE(w[1], 0.001, 1e-7, 0);
    CHECK_CLOSE(nx_mlp_opt_m(mlp)[0], 0.1 * -0.5378828427, 1e-7, 0);
    CHECK_CLOSE(nx_mlp_opt_v(mlp)[0], 0.001 * 0.5378828427 * 0.5378828427, 1e-8, 0);
    /* Step 2 at w = 0.501, b = 0.001: z = 1.003, p = sigmoid(1.003). */
    const double p2 = 1 / (1 + exp(-1.003)), gw1 = -0.5378828427, gw2 = (p2 - 1) * 2;
    const double m = 0.9 * 0.1 * gw1 + 0.1 * gw2;
    const double v = 0.999 * 0.001 * gw1 * gw1 + 0.001 * gw2 * gw2;
    const double mh = m / (1 - 0.81), vh = v / (1 - 0.999 * 0.999);
    const double w2 = 0.501 - 1e-3 * mh / (sqrt(vh) + 1e-8);
    CHECK(nx_mlp_train(mlp, &x, &y, 1, &loss) == 0, "train");
    CHECK_CLOSE(w[0], w2, 2e-7, 0);
    CHECK(nx_mlp_step(mlp) == 2, "step %llu", (unsigned long long)nx_mlp_step(mlp));
    nx_mlp_destroy(mlp);
}

/* SGD, weight decay, clipping and the schedule, each against its formula. */
static void test_sgd_clip_schedule(void) {
    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, 3, 3);
    p.opt = NX_OPT_SGD;
    p.lr = 0.1f;
    p.weight_decay = 0.01f;
    p.clip_norm = 0.05f;
    nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof(err));
    CHECK(mlp != NULL, "%s", err);
    if (!mlp)
        return;
    const size_t n = nx_mlp_num_params(mlp);
    float *w0 = malloc(sizeof(float) * n);
    memcpy(w0, nx_mlp_weights(mlp), sizeof(float) * n);
    float x[4 * 3];
    int32_t y[4] = {0, 1, 2, 1};
    fill(x, 12, -3, 3);
    CHECK(nx_mlp_train(mlp, x, y, 4, NULL) == 0, "train");
    /* Gradient slab holds the clipped gradient, norm == clip. */
    double norm = 0;
    const float *g = nx_mlp_grads(mlp), *w = nx_mlp_weights(mlp);
    for (size_t i = 0; i < n; i++)
        norm += (double)g[i] * g[i];
    CHECK_CLOSE(sqrt(norm), 0.05, 1e-6, 0);
    for (size_t i = 0; i < n; i++)
        CHECK_CLOSE(w[i], w0[i] - 0.1 * (g[i] + 0.01 * w0[i]), 1e-7, 1e-6);
    free(w0);
    nx_mlp_destroy(mlp);

    nx_mlp_params_default(&p, 3, 3);
    p.lr = 1.0f;
    p.warmup_steps = 4;
    p.lr_decay = 0.5f;
    CHECK_CLOSE(nx_mlp_lr_at(&p, 0), 0.25, 1e-7, 0);
    CHECK_CLOSE(nx_mlp_lr_at(&p, 3), 1.0, 1e-7, 0);
    CHECK_CLOSE(nx_mlp_lr_at(&p, 4), 1.0, 1e-7, 0);
    CHECK_CLOSE(nx_mlp_lr_at(&p, 6), 0.5, 1e-7, 0);

    /* with a floor: lr_min + (lr - lr_min) / (1 + d t'), computed here in
     * double; non-increasing after warm-up, never below the floor, at the
     * floor (to float precision) however long the daemon runs */
    p.lr_min = 0.2f;
    CHECK_CLOSE(nx_mlp_lr_at(&p, 0), 0.25, 1e-7, 0); /* warm-up ignores the floor */
    CHECK_CLOSE(nx_mlp_lr_at(&p, 4), 1.0, 1e-7, 0);
    CHECK_CLOSE(nx_mlp_lr_at(&p, 6), 0.2 + 0.8 / 2.0, 1e-7, 0);
    CHECK_CLOSE(nx_mlp_lr_at(&p, 4 + 1000), 0.2 + 0.8 / 501.0, 1e-7, 1e-6);
    float prev = nx_mlp_lr_at(&p, 4);
    int monotone = 1, above = 1;
    for (uint64_t t = 5; t < 100000; t += 7) {
        const float lr = nx_mlp_lr_at(&p, t);
        monotone &= lr <= prev;
        above &= lr >= p.lr_min;
        prev = lr;
    }
    CHECK(monotone && above, "schedule not non-increasing (%d) or below the floor (%d)", monotone,
          above);
    CHECK_CLOSE(nx_mlp_lr_at(&p, (uint64_t)1 << 62), 0.2, 0, 1e-6);
    /* the daemon's defaults (config.c): 0.01 -> 0.001, decay 0.005 */
    nx_mlp_params_default(&p, 3, 3);
    p.lr = 0.01f;
    p.lr_min = 0.001f;
    p.lr_decay = 0.005f;
    CHECK_CLOSE(nx_mlp_lr_at(&p, 0), 0.01, 1e-9, 0);
    CHECK_CLOSE(nx_mlp_lr_at(&p, 200), 0.001 + 0.009 / 2.0, 0, 1e-6);
    CHECK_CLOSE(nx_mlp_lr_at(&p, 20000), 0.001 + 0.009 / 101.0, 0, 1e-6);
    CHECK_CLOSE(nx_mlp_lr_at(&p, (uint64_t)1 << 40), 0.001, 0, 1e-6);
    /* floor = lr: constant */
    p.lr_min = p.lr;
    CHECK(nx_mlp_lr_at(&p, 12345) == p.lr, "floor = lr gave %g", (double)nx_mlp_lr_at(&p, 12345));
}

/* head_init scales the output layer's initial weights and nothing else:
 * the hidden layers and the drawn stream are the same; at 0 the first
 * predictions are exactly uniform (zero logits), and training still
 * moves every layer after the first step. */
static void test_head_init(void) {
    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, 5, 4);
    nx_mlp_t *ref = nx_mlp_new(&p, err, sizeof(err));
    p.head_init = 0.1f;
    nx_mlp_t *small = nx_mlp_new(&p, err, sizeof(err));
    p.head_init = 0.0f;
    nx_mlp_t *zero = nx_mlp_new(&p, err, sizeof(err));
    CHECK(ref && small && zero, "%s", err);
    if (!ref || !small || !zero)
        goto out;
    const int last = nx_mlp_num_layers(ref) - 1;
    const size_t w_last = nx_mlp_w_offset(ref, last), n = nx_mlp_num_params(ref);
    const float *wr = nx_mlp_weights(ref), *ws = nx_mlp_weights(small), *wz = nx_mlp_weights(zero);
    int hidden_same = 1, head_scaled = 1, head_zero = 1;
    for (size_t i = 0; i < w_last; i++)
        hidden_same &= wr[i] == ws[i] && wr[i] == wz[i];
    for (size_t i = w_last; i < n; i++) {
        head_scaled &=
            fabs((double)ws[i] - 0.1 * (double)wr[i]) <= 1e-7 * fabs((double)wr[i]) + 1e-9;
        head_zero &= wz[i] == 0.0f;
    }
    CHECK(hidden_same, "hidden layers depend on head_init");
    CHECK(head_scaled, "output layer not 0.1 x the plain one");
    CHECK(head_zero, "head_init 0: output layer not zero");

    float x[3 * 5], probs[3 * 4];
    fill(x, 3 * 5, -5, 5);
    CHECK(nx_mlp_predict(zero, x, 3, probs) == 0, "predict");
    for (int i = 0; i < 3 * 4; i++)
        CHECK(probs[i] == 0.25f, "head_init 0: p[%d] = %.9g, not 1/4", i, (double)probs[i]);
    /* at 0.1 the logits are a tenth of the plain network's (zero biases):
     * compared as log-odds log(p_k / p_0), inputs small enough that the
     * plain network's probabilities are not saturated */
    float pr[3 * 4], ps[3 * 4];
    fill(x, 3 * 5, -1, 1);
    CHECK(nx_mlp_predict(ref, x, 3, pr) == 0 && nx_mlp_predict(small, x, 3, ps) == 0, "predict");
    for (int r = 0; r < 3; r++)
        for (int k = 1; k < 4; k++)
            CHECK_CLOSE(log((double)ps[4 * r + k] / ps[4 * r]),
                        0.1 * log((double)pr[4 * r + k] / pr[4 * r]), 1e-5, 1e-4);
    /* two steps from a zero head: the first moves the head only (the
     * hidden layers' gradient passes through W_last = 0), the second
     * every layer */
    int32_t y[3] = {0, 1, 3};
    float *w0 = malloc(sizeof(float) * n);
    memcpy(w0, wz, sizeof(float) * n);
    CHECK(nx_mlp_train(zero, x, y, 3, NULL) == 0, "train");
    CHECK(memcmp(w0, wz, sizeof(float) * w_last) == 0, "step 1 moved a hidden layer");
    CHECK(memcmp(w0 + w_last, wz + w_last, sizeof(float) * (n - w_last)) != 0,
          "step 1 left the head");
    CHECK(nx_mlp_train(zero, x, y, 3, NULL) == 0, "train");
    CHECK(memcmp(w0, wz, sizeof(float) * nx_mlp_b_offset(zero, 0)) != 0,
          "step 2 left the first layer");
    free(w0);

    nx_mlp_params_default(&p, 5, 4);
    p.head_init = -0.1f;
    CHECK(nx_mlp_params_check(&p, err, sizeof(err)) == -1, "head_init < 0 accepted");
    p.head_init = 11.0f;
    CHECK(nx_mlp_params_check(&p, err, sizeof(err)) == -1, "head_init 11 accepted");
    nx_mlp_params_default(&p, 5, 4);
    p.lr_min = 2 * p.lr;
    CHECK(nx_mlp_params_check(&p, err, sizeof(err)) == -1, "lr_min > lr accepted");
    CHECK(strstr(err, "floor") != NULL, "message: %s", err);
    p.lr_min = -1e-4f;
    CHECK(nx_mlp_params_check(&p, err, sizeof(err)) == -1, "lr_min < 0 accepted");
out:
    nx_mlp_destroy(ref);
    nx_mlp_destroy(small);
    nx_mlp_destroy(zero);
}

/* Two moons (noise 0.1), an XOR of quadrants, each to >= 98% on fresh data. */
static void moons(float *x, int32_t *y, int n) {
    for (int i = 0; i < n; i++) {
        const int c = (int)(nx_rng_next(&trng) & 1);
        const float t = urand(0, 3.14159265f);
        x[2 * i] = c ? 1 - cosf(t) : cosf(t);
        x[2 * i + 1] = c ? 0.5f - sinf(t) : sinf(t);
        x[2 * i] += urand(-0.1f, 0.1f);
        x[2 * i + 1] += urand(-0.1f, 0.1f);
        y[i] = c;
    }
}

static void xor4(float *x, int32_t *y, int n) {
    for (int i = 0; i < n; i++) {
        x[2 * i] = urand(-1, 1);
        x[2 * i + 1] = urand(-1, 1);
        y[i] = (x[2 * i] > 0) ^ (x[2 * i + 1] > 0);
    }
}

static double accuracy(nx_mlp_t *mlp, const float *x, const int32_t *y, int n) {
    const int K = nx_mlp_params(mlp)->n_classes;
    float probs[64 * NX_MLP_MAX_CLASSES];
    int right = 0;
    for (int i = 0; i < n; i += 64) {
        const int B = n - i < 64 ? n - i : 64;
        nx_mlp_predict(mlp, x + 2 * i, B, probs);
        for (int r = 0; r < B; r++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                best = probs[r * K + k] > probs[r * K + best] ? k : best;
            right += best == y[i + r];
        }
    }
    return (double)right / n;
}

static void test_learns(void) {
    enum { NTRAIN = 4096, NTEST = 2048, STEPS = 3000, B = 32 };
    float *x = malloc(sizeof(float) * 2 * NTRAIN), *xt = malloc(sizeof(float) * 2 * NTEST);
    int32_t *y = malloc(sizeof(int32_t) * NTRAIN), *yt = malloc(sizeof(int32_t) * NTEST);
    struct {
        const char *name;
        int xor_data, binary_head;
        nx_opt_t opt;
        nx_act_t act;
        float lr;
        float lr_min, lr_decay, head_init; /* 0, 0, 1: the library's defaults */
    } cases[] = {
        {"moons adam relu softmax", 0, 0, NX_OPT_ADAM, NX_ACT_RELU, 1e-2f, 0, 0, 1},
        {"moons adam tanh sigmoid-head", 0, 1, NX_OPT_ADAM, NX_ACT_TANH, 1e-2f, 0, 0, 1},
        {"xor adam relu", 1, 0, NX_OPT_ADAM, NX_ACT_RELU, 1e-2f, 0, 0, 1},
        {"xor sgd relu", 1, 0, NX_OPT_SGD, NX_ACT_RELU, 0.2f, 0, 0, 1},
        {"xor momentum relu", 1, 0, NX_OPT_MOMENTUM, NX_ACT_RELU, 0.05f, 0, 0, 1},
        {"xor adagrad relu", 1, 0, NX_OPT_ADAGRAD, NX_ACT_RELU, 0.05f, 0, 0, 1},
        {"xor adam sigmoid", 1, 1, NX_OPT_ADAM, NX_ACT_SIGMOID, 1e-2f, 0, 0, 1},
        /* the daemon's schedule and head (config.c) */
        {"moons adam relu, floor, head 0.1", 0, 0, NX_OPT_ADAM, NX_ACT_RELU, 1e-2f, 1e-3f, 5e-3f,
         0.1f},
        {"xor adam relu, floor, head 0", 1, 0, NX_OPT_ADAM, NX_ACT_RELU, 1e-2f, 1e-3f, 5e-3f, 0.0f},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        (cases[c].xor_data ? xor4 : moons)(x, y, NTRAIN);
        (cases[c].xor_data ? xor4 : moons)(xt, yt, NTEST);
        nx_mlp_params_t p;
        char err[256];
        nx_mlp_params_default(&p, 2, 2);
        p.binary_head = cases[c].binary_head;
        p.opt = cases[c].opt;
        p.act = cases[c].act;
        p.lr = cases[c].lr;
        p.lr_min = cases[c].lr_min;
        p.lr_decay = cases[c].lr_decay;
        p.head_init = cases[c].head_init;
        nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof(err));
        CHECK(mlp != NULL, "%s", err);
        if (!mlp)
            continue;
        for (int s = 0; s < STEPS; s++) {
            const int off = (s * B) % NTRAIN;
            CHECK(nx_mlp_train(mlp, x + 2 * off, y + off, B, NULL) == 0, "train");
        }
        const double acc = accuracy(mlp, xt, yt, NTEST);
        CHECK(acc >= 0.98, "%s: test accuracy %.4f < 0.98", cases[c].name, acc);
        nx_mlp_destroy(mlp);
    }
    free(x);
    free(xt);
    free(y);
    free(yt);
}

/* Same seed and data: bit-identical weights and optimizer state; another
 * seed: different weights. The predictor serves bit-identical
 * probabilities once it has acquired the published snapshot. */
static void test_determinism_predictor(void) {
    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, 16, 5);
    p.max_batch = 64;
    p.neg_class = 4;
    p.neg_rate = 0.3f;
    nx_mlp_t *m[3];
    for (int i = 0; i < 3; i++) {
        p.seed = i == 2 ? 99 : 7;
        m[i] = nx_mlp_new(&p, err, sizeof(err));
        CHECK(m[i] != NULL, "%s", err);
        if (!m[i])
            return;
    }
    float x[64 * 16];
    int32_t y[64];
    nx_rng_t save = trng;
    for (int i = 0; i < 3; i++) {
        trng = save;
        for (int s = 0; s < 50; s++) {
            fill(x, 64 * 16, -1, 1);
            int B = 0;
            for (int r = 0; r < 64; r++) {
                const int32_t label = (int32_t)(nx_rng_next(&trng) % 5);
                if (nx_mlp_keep(m[i], label))
                    y[B++] = label;
            }
            CHECK(nx_mlp_train(m[i], x, y, B, NULL) == 0, "train");
        }
    }
    const size_t n = nx_mlp_num_params(m[0]);
    CHECK(memcmp(nx_mlp_weights(m[0]), nx_mlp_weights(m[1]), n * sizeof(float)) == 0,
          "same seed, different weights");
    CHECK(memcmp(nx_mlp_opt_v(m[0]), nx_mlp_opt_v(m[1]), n * sizeof(float)) == 0,
          "same seed, different Adam state");
    CHECK(memcmp(nx_mlp_weights(m[0]), nx_mlp_weights(m[2]), n * sizeof(float)) != 0,
          "different seeds, same weights");

    nx_mlp_predictor_t *pred = nx_mlp_predictor_new(m[0], err, sizeof(err));
    CHECK(pred != NULL, "%s", err);
    if (pred) {
        float pa[64 * 5], pb[64 * 5];
        fill(x, 64 * 16, -1, 1);
        CHECK(nx_mlp_predictor_version(pred) == 50, "version %llu",
              (unsigned long long)nx_mlp_predictor_version(pred));
        nx_mlp_predict(m[0], x, 64, pa);
        nx_mlp_predictor_predict(pred, x, 64, pb);
        CHECK(memcmp(pa, pb, sizeof(pa)) == 0, "predictor differs from trainer");
        /* Train on; the predictor keeps its snapshot until it acquires. */
        int32_t y0[64] = {0};
        nx_mlp_train(m[0], x, y0, 64, NULL);
        nx_mlp_publish(m[0], pred);
        nx_mlp_train(m[0], x, y0, 64, NULL);
        nx_mlp_publish(m[0], pred);
        CHECK(nx_mlp_predictor_published(pred) == 52, "published");
        nx_mlp_predictor_predict(pred, x, 64, pb);
        CHECK(memcmp(pa, pb, sizeof(pa)) == 0, "snapshot changed before acquire");
        CHECK(nx_mlp_predictor_acquire(pred) == 52, "acquire");
        nx_mlp_predict(m[0], x, 64, pa);
        nx_mlp_predictor_predict(pred, x, 64, pb);
        CHECK(memcmp(pa, pb, sizeof(pa)) == 0, "predictor differs after acquire");
        CHECK(nx_mlp_predictor_acquire(pred) == 52, "acquire without publish");
        for (int i = 0; i < 7; i++) { /* cycle the three slabs */
            nx_mlp_train(m[0], x, y0, 64, NULL);
            nx_mlp_publish(m[0], pred);
            if (i % 2)
                nx_mlp_predictor_acquire(pred);
        }
        CHECK(nx_mlp_predictor_acquire(pred) == 59, "acquire after cycling");
        nx_mlp_predict(m[0], x, 64, pa);
        nx_mlp_predictor_predict(pred, x, 64, pb);
        CHECK(memcmp(pa, pb, sizeof(pa)) == 0, "predictor differs after cycling");
    }
    nx_mlp_predictor_destroy(pred);
    for (int i = 0; i < 3; i++)
        nx_mlp_destroy(m[i]);
}

/* Down-sampling: keep rate, the correction formula, and calibration. Data:
 * one feature u ~ U(-3, 3), P(class 1 | u) = sigmoid(2u - 2.5) (~29%
 * positives); class 0 is `none`, kept at rate 0.2. The corrected
 * probabilities must be calibrated on the full distribution: their mean
 * within 0.01 of the true mean, and the expected calibration error over 10
 * bins (against the true probabilities) under 0.02, while the uncorrected
 * scores q = p / (p + r (1 - p)) would be 0.1 or more off. */
static void test_downsampling(void) {
    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, 1, 3);
    p.neg_class = 1;
    p.neg_rate = 0.25f;
    float q[3] = {0.2f, 0.6f, 0.2f};
    nx_mlp_correct(&p, q, 1);
    /* q_neg / r = 2.4, Z = 2.8 */
    CHECK_CLOSE(q[0], 0.2 / 2.8, 1e-7, 0);
    CHECK_CLOSE(q[1], 2.4 / 2.8, 1e-7, 0);
    CHECK_CLOSE(q[2], 0.2 / 2.8, 1e-7, 0);

    const float r = 0.2f;
    nx_mlp_params_default(&p, 1, 2);
    p.neg_class = 0;
    p.neg_rate = r;
    p.lr = 1e-2f;
    p.lr_decay = 1e-2f; /* settle down: calibration needs a converged fit */
    p.max_batch = 64;
    nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof(err));
    CHECK(mlp != NULL, "%s", err);
    if (!mlp)
        return;
    int kept = 0, negs = 0;
    float xb[64];
    int32_t yb[64];
    int B = 0;
    for (int i = 0; i < 1000000; i++) {
        const float u = urand(-3, 3);
        const int32_t label = nx_rng_uniform(&trng) < 1 / (1 + exp(-(2 * u - 2.5)));
        negs += label == 0;
        if (!nx_mlp_keep(mlp, label))
            continue;
        kept += label == 0;
        xb[B] = u;
        yb[B++] = label;
        if (B == 64) {
            nx_mlp_train(mlp, xb, yb, B, NULL);
            B = 0;
        }
    }
    CHECK_CLOSE((double)kept / negs, r, 0.005, 0);
    double sum_p[10] = {0}, sum_t[10] = {0}, tp = 0, tt = 0, tq = 0;
    const int N = 50000;
    for (int i = 0; i < N; i++) {
        const float u = urand(-3, 3);
        const double pt = 1 / (1 + exp(-(2 * u - 2.5)));
        float pr[2];
        nx_mlp_predict(mlp, &u, 1, pr);
        int b = (int)(pr[1] * 10);
        b = b > 9 ? 9 : b;
        sum_p[b] += pr[1];
        sum_t[b] += pt;
        tp += pr[1];
        tt += pt;
        tq += pr[1] / (pr[1] + r * (1 - pr[1]));
    }
    CHECK_CLOSE(tp / N, tt / N, 0.01, 0);
    CHECK(tq / N - tt / N > 0.1, "uncorrected mean %.4f, true %.4f: test too weak", tq / N, tt / N);
    double ece = 0;
    for (int b = 0; b < 10; b++)
        ece += fabs(sum_p[b] - sum_t[b]) / N;
    CHECK(ece < 0.02, "expected calibration error %.4f >= 0.02", ece);
    nx_mlp_destroy(mlp);
}

static void test_params_check(void) {
    nx_mlp_params_t p;
    char err[256] = "";
    nx_mlp_params_default(&p, 4, 3);
    p.binary_head = 1;
    CHECK(nx_mlp_new(&p, err, sizeof(err)) == NULL, "binary head with K = 3 accepted");
    CHECK(strstr(err, "binary_head") != NULL, "message: %s", err);
    nx_mlp_params_default(&p, 4, 3);
    p.neg_rate = 0;
    CHECK(nx_mlp_params_check(&p, err, sizeof(err)) == -1, "neg_rate 0 accepted");
    nx_mlp_params_default(&p, 4, 3);
    nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof(err));
    float x[4] = {0};
    int32_t y = 3;
    CHECK(nx_mlp_train(mlp, x, &y, 1, NULL) == -1, "label out of range accepted");
    y = 0;
    x[0] = NAN;
    CHECK(nx_mlp_train(mlp, x, &y, 1, NULL) == -1, "NaN input accepted");
    CHECK(nx_mlp_step(mlp) == 0, "step moved on a refused batch");
    CHECK(nx_mlp_train(mlp, x, &y, 257, NULL) == -1, "batch above max accepted");
    nx_mlp_destroy(mlp);
    nx_mlp_destroy(NULL);
}

int main(void) {
    test_rng_seed();
    test_linear();
    test_activations();
    test_losses();
    test_network_gradients();
    test_adam_step();
    test_sgd_clip_schedule();
    test_learns();
    test_determinism_predictor();
    test_downsampling();
    test_params_check();
    test_head_init(); /* its data draws from trng would move the others' */
    return check_exit("test_model");
}
