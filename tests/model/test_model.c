/*
 * test_model.c: unit tests of model/ (layers, MLP, optimizers, predictor,
 * metrics, checkpoint). Links only nx_model.
 *
 * The references live here and only here: naive loop twins of the layer
 * functions in double precision, central finite differences in double, a
 * hand-derived Adam step, an exact sort-based AUC. Returns non-zero when any
 * check fails; every failure prints file:line and the values compared.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "explain.h"
#include "layers.h"
#include "merge.h"
#include "metrics.h"
#include "mlp.h"
#include "rng.h"

static int failures;
static int checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* |a - b| <= atol + rtol |b|, printed on failure. */
#define CHECK_CLOSE(a, b, atol, rtol)                                                              \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        CHECK(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_), "%s = %.9g, %s = %.9g", #a, a_, #b, b_);  \
    } while (0)

static nx_rng_t trng; /* the tests' own data stream */

static float urand(float lo, float hi) {
    return lo + (hi - lo) * (float)nx_rng_uniform(&trng);
}

static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = urand(lo, hi);
}

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

/* ---- metrics ---- */

static double gauss(void) {
    const double u1 = 1.0 - nx_rng_uniform(&trng), u2 = nx_rng_uniform(&trng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

typedef struct {
    float s;
    int pos;
} scored_t;

static int cmp_scored(const void *a, const void *b) {
    const float x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return (x > y) - (x < y);
}

/* Exact ROC AUC: sort by score, average ranks over ties (Mann-Whitney U). */
static double auc_exact(scored_t *v, size_t n) {
    qsort(v, n, sizeof(*v), cmp_scored);
    double rank_sum = 0, np = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].s == v[i].s)
            j++;
        const double avg_rank = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
        for (size_t t = i; t < j; t++)
            if (v[t].pos) {
                rank_sum += avg_rank;
                np++;
            }
        i = j;
    }
    const double nn = (double)n - np;
    return (rank_sum - np * (np + 1) / 2) / (np * nn);
}

/* Scores like a model's: softmax of sep * onehot(label) + noise, classes
 * with skewed frequencies (one rare), plus a case with heavy exact ties
 * (scores rounded to 0.05). Figures against direct recomputation. */
static void test_metrics(void) {
    enum { K = 4, N = 100000, W = 5000 };
    char err[256];
    const double freq[K] = {0.6, 0.3, 0.08, 0.02};
    for (int variant = 0; variant < 3; variant++) {
        nx_metrics_t *m = nx_metrics_new(K, W, err, sizeof(err));
        nx_metrics_t *tail = nx_metrics_new(K, W, err, sizeof(err));
        CHECK(m && tail, "%s", err);
        if (!m || !tail)
            return;
        float *P = malloc(sizeof(float) * N * K);
        int32_t *Y = malloc(sizeof(int32_t) * N);
        const double sep = variant == 1 ? 4.0 : 1.0, noise = variant == 1 ? 2.0 : 1.0;
        for (int i = 0; i < N; i++) {
            double u = nx_rng_uniform(&trng), c = 0;
            int y = K - 1;
            for (int k = 0; k < K; k++)
                if (u < (c += freq[k])) {
                    y = k;
                    break;
                }
            double z[K], s = 0;
            for (int k = 0; k < K; k++)
                s += z[k] = exp((k == y ? sep : 0.0) + noise * gauss() + log(freq[k]));
            for (int k = 0; k < K; k++) {
                float p = (float)(z[k] / s);
                if (variant == 2)
                    p = roundf(p * 20) / 20;
                P[i * K + k] = p;
            }
            Y[i] = y;
            CHECK(nx_metrics_add(m, P + i * K, y) == 0, "add");
            if (i >= N - W)
                nx_metrics_add(tail, P + i * K, y);
        }
        nx_metrics_report_t r, rw, rt;
        nx_metrics_report(m, NX_METRICS_CUMULATIVE, &r);
        nx_metrics_report(m, NX_METRICS_WINDOW, &rw);
        nx_metrics_report(tail, NX_METRICS_CUMULATIVE, &rt);
        CHECK(r.n == N && rw.n == W, "n %llu window %llu", (unsigned long long)r.n,
              (unsigned long long)rw.n);
        /* The window is exactly the metrics of the last W examples. */
        CHECK(memcmp(&rw, &rt, sizeof(rw)) == 0 ||
                  (rw.log_loss == rt.log_loss && rw.ece == rt.ece && rw.auc[3] == rt.auc[3]),
              "window differs from a fresh count of the last %d", W);
        CHECK(rw.log_loss == rt.log_loss, "%.17g vs %.17g", rw.log_loss, rt.log_loss);
        for (int k = 0; k < K; k++)
            CHECK(rw.auc[k] == rt.auc[k] || (isnan(rw.auc[k]) && isnan(rt.auc[k])),
                  "window auc %d: %.17g vs %.17g", k, rw.auc[k], rt.auc[k]);
        /* Direct recomputation. */
        double ll = 0, ent = 0, cal_c[10] = {0}, cal_p[10] = {0};
        long correct = 0, tp[K] = {0}, pn[K] = {0}, ln[K] = {0};
        scored_t *v = malloc(sizeof(scored_t) * N);
        for (int i = 0; i < N; i++) {
            const float *p = P + i * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                best = p[k] > p[best] ? k : best;
            ll += -log(fmax(p[Y[i]], 1e-7f));
            correct += best == Y[i];
            tp[Y[i]] += best == Y[i];
            pn[best]++;
            ln[Y[i]]++;
            int b = (int)(p[best] * 10);
            b = b > 9 ? 9 : b;
            cal_c[b] += best == Y[i];
            cal_p[b] += p[best];
        }
        double ece = 0;
        for (int b = 0; b < 10; b++)
            ece += fabs(cal_c[b] - cal_p[b]) / N;
        for (int k = 0; k < K; k++)
            ent -= (double)ln[k] / N * log((double)ln[k] / N);
        CHECK_CLOSE(r.log_loss, ll / N, 1e-6, 0);
        CHECK_CLOSE(r.norm_entropy, ll / N / ent, 1e-6, 0);
        CHECK_CLOSE(r.accuracy, (double)correct / N, 1e-12, 0);
        CHECK_CLOSE(r.ece, ece, 1e-6, 0);
        for (int k = 0; k < K; k++) {
            CHECK(r.count[k] == (uint64_t)ln[k], "count");
            if (pn[k])
                CHECK_CLOSE(r.precision[k], (double)tp[k] / pn[k], 1e-12, 0);
            CHECK_CLOSE(r.recall[k], (double)tp[k] / ln[k], 1e-12, 0);
            for (int i = 0; i < N; i++) {
                v[i].s = P[i * K + k];
                v[i].pos = Y[i] == k;
            }
            const double exact = auc_exact(v, N);
            CHECK(fabs(r.auc[k] - exact) < 0.001,
                  "variant %d class %d: binned AUC %.6f, exact %.6f", variant, k, r.auc[k], exact);
            CHECK(exact > 0.55, "variant %d class %d: AUC %.3f, scores carry no signal", variant, k,
                  exact);
        }
        free(v);
        free(P);
        free(Y);
        nx_metrics_destroy(m);
        nx_metrics_destroy(tail);
    }
    /* Bins are monotone in p across the whole range. */
    int prev = -1, ok = 1;
    for (float p = 0.0f; p <= 1.0f; p += 1e-5f) {
        const int b = nx_metrics_auc_bin(p);
        ok &= b >= prev && b < nx_metrics_auc_bins();
        prev = b;
    }
    CHECK(ok, "AUC bins not monotone");
    float bad[4] = {NAN, 0.5f, 0.25f, 0.25f};
    nx_metrics_t *m = nx_metrics_new(4, 10, err, sizeof(err));
    CHECK(nx_metrics_add(m, bad, 0) == -1, "NaN accepted");
    CHECK(nx_metrics_add(m, bad + 1, 4) == -1, "label 4 of 4 accepted");
    nx_metrics_report_t r;
    nx_metrics_report(m, NX_METRICS_CUMULATIVE, &r);
    CHECK(r.n == 0 && isnan(r.log_loss) && isnan(r.auc[0]), "empty report");
    nx_metrics_destroy(m);
    CHECK(nx_metrics_new(1, 10, err, sizeof(err)) == NULL, "1 class accepted");
}

/* ---- checkpoint ---- */

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fclose(f);
    return n;
}

static unsigned char *slurp(const char *path, long *n) {
    *n = file_size(path);
    unsigned char *b = malloc(*n > 0 ? (size_t)*n : 1);
    FILE *f = fopen(path, "rb");
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n)
        *n = -1;
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, long n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, (size_t)n, f);
    fclose(f);
}

/* A section of 300000 bytes (more than four chunks) written in odd pieces. */
#define BIG 300000
static unsigned char big_byte(size_t i) {
    return (unsigned char)(i * 131 + (i >> 9));
}

static int write_ckpt(const char *path, nx_mlp_t *mlp, uint64_t schema) {
    char err[256];
    nx_checkpoint_writer_t *w = nx_checkpoint_begin(path, schema, err, sizeof(err));
    CHECK(w != NULL, "%s", err);
    if (!w)
        return -1;
    unsigned char piece[777];
    CHECK(nx_checkpoint_section_begin(w, "store") == 0, "section");
    for (size_t i = 0; i < BIG; i += sizeof(piece)) {
        const size_t n = BIG - i < sizeof(piece) ? BIG - i : sizeof(piece);
        for (size_t j = 0; j < n; j++)
            piece[j] = big_byte(i + j);
        nx_checkpoint_write(w, piece, n);
    }
    CHECK(nx_checkpoint_section_end(w) == 0, "section end");
    CHECK(nx_checkpoint_put_mlp(w, mlp) == 0, "put mlp");
    CHECK(nx_checkpoint_section_begin(w, "empty") == 0 && nx_checkpoint_section_end(w) == 0,
          "empty section");
    const int rc = nx_checkpoint_commit(w, err, sizeof(err));
    CHECK(rc == 0, "%s", err);
    return rc;
}

static void expect_refused(const char *path, uint64_t schema, const char *reason) {
    char err[256] = "";
    nx_checkpoint_reader_t *r = nx_checkpoint_open(path, schema, err, sizeof(err));
    CHECK(r == NULL, "accepted a file that should fail with \"%s\"", reason);
    CHECK(strstr(err, reason) != NULL, "message \"%s\" does not name \"%s\"", err, reason);
    nx_checkpoint_close(r);
}

static void test_checkpoint(void) {
    /* RFC 3720 B.4 test vectors, and the usual check value. */
    unsigned char v[32];
    CHECK(nx_crc32c(0, "123456789", 9) == 0xe3069283u, "%08x", nx_crc32c(0, "123456789", 9));
    memset(v, 0, 32);
    CHECK(nx_crc32c(0, v, 32) == 0x8a9136aau, "zeros %08x", nx_crc32c(0, v, 32));
    memset(v, 0xff, 32);
    CHECK(nx_crc32c(0, v, 32) == 0x62a8ab43u, "ones %08x", nx_crc32c(0, v, 32));
    for (int i = 0; i < 32; i++)
        v[i] = (unsigned char)i;
    CHECK(nx_crc32c(0, v, 32) == 0x46dd794eu, "incrementing %08x", nx_crc32c(0, v, 32));
    CHECK(nx_crc32c(nx_crc32c(0, v, 13), v + 13, 19) == 0x46dd794eu, "incremental");

    char dir[] = "/tmp/nx_test_ckpt_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[128], bad[128];
    snprintf(path, sizeof(path), "%s/model.ckpt", dir);
    snprintf(bad, sizeof(bad), "%s/bad.ckpt", dir);
    const uint64_t schema = 0x0123456789abcdefULL;

    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, 12, 5);
    p.max_batch = 32;
    p.neg_class = 4;
    p.neg_rate = 0.5f;
    /* the whole schedule: the 20 steps before the save cross the warm-up
     * and the 5 after it are on the decay towards the floor, which must
     * continue from the restored step */
    p.warmup_steps = 8;
    p.lr_decay = 0.1f;
    p.lr_min = 2e-4f;
    p.head_init = 0.1f;
    nx_mlp_t *a = nx_mlp_new(&p, err, sizeof(err)), *b = NULL;
    p.seed = 77; /* different initial weights: the load must overwrite them */
    b = nx_mlp_new(&p, err, sizeof(err));
    CHECK(a && b, "%s", err);
    if (!a || !b)
        goto out;
    float x[32 * 12];
    int32_t y[32];
    for (int s = 0; s < 20; s++) {
        fill(x, 32 * 12, -1, 1);
        for (int r = 0; r < 32; r++)
            y[r] = (int32_t)(nx_rng_next(&trng) % 5);
        nx_mlp_keep(a, 4);
        nx_mlp_train(a, x, y, 32, NULL);
    }
    if (write_ckpt(path, a, schema) != 0)
        goto out;
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "temporary file left behind");

    nx_checkpoint_reader_t *r = nx_checkpoint_open(path, schema, err, sizeof(err));
    CHECK(r != NULL, "%s", err);
    if (r) {
        CHECK(nx_checkpoint_get_mlp(r, b, err, sizeof(err)) == 0, "%s", err);
        const size_t n = nx_mlp_num_params(a);
        CHECK(memcmp(nx_mlp_weights(a), nx_mlp_weights(b), n * 4) == 0, "weights differ");
        CHECK(memcmp(nx_mlp_opt_m(a), nx_mlp_opt_m(b), n * 4) == 0, "m differs");
        CHECK(memcmp(nx_mlp_opt_v(a), nx_mlp_opt_v(b), n * 4) == 0, "v differs");
        CHECK(nx_mlp_step(a) == nx_mlp_step(b), "step");
        CHECK(memcmp(nx_mlp_rng(a), nx_mlp_rng(b), sizeof(nx_rng_t)) == 0, "rng");
        /* Training on continues identically. */
        for (int s = 0; s < 5; s++) {
            nx_mlp_train(a, x, y, 32, NULL);
            nx_mlp_train(b, x, y, 32, NULL);
            CHECK(nx_mlp_keep(a, 4) == nx_mlp_keep(b, 4), "keep");
        }
        CHECK(memcmp(nx_mlp_weights(a), nx_mlp_weights(b), n * 4) == 0, "diverged after load");
        /* The caller's section, read back in other pieces. */
        CHECK(nx_checkpoint_section_open(r, "store") == 0, "store section");
        CHECK(nx_checkpoint_section_left(r) == BIG, "left %llu",
              (unsigned long long)nx_checkpoint_section_left(r));
        unsigned char piece[1000];
        int same = 1;
        for (size_t i = 0; i < BIG; i += sizeof(piece)) {
            const size_t k = BIG - i < sizeof(piece) ? BIG - i : sizeof(piece);
            same &= nx_checkpoint_read(r, piece, k) == 0;
            for (size_t j = 0; j < k; j++)
                same &= piece[j] == big_byte(i + j);
        }
        CHECK(same, "store section differs");
        CHECK(nx_checkpoint_read(r, piece, 1) == -1, "read past the section end");
        CHECK(nx_checkpoint_section_open(r, "empty") == 0 && nx_checkpoint_section_left(r) == 0,
              "empty section");
        CHECK(nx_checkpoint_section_open(r, "absent") == -1, "absent section found");
        nx_checkpoint_close(r);
    }
    /* A model of other dimensions is refused, and left unchanged. */
    {
        nx_mlp_params_t q = p;
        q.hidden[1] = 31;
        nx_mlp_t *c = nx_mlp_new(&q, err, sizeof(err));
        r = nx_checkpoint_open(path, schema, err, sizeof(err));
        CHECK(c && r, "%s", err);
        if (c && r) {
            float w0 = nx_mlp_weights(c)[0];
            CHECK(nx_checkpoint_get_mlp(r, c, err, sizeof(err)) == -1, "other dims accepted");
            CHECK(strstr(err, "dimensions") != NULL, "message: %s", err);
            CHECK(nx_mlp_weights(c)[0] == w0 && nx_mlp_step(c) == 0, "changed on refusal");
        }
        nx_checkpoint_close(r);
        nx_mlp_destroy(c);
    }
    /* Corruption cases. */
    long n;
    unsigned char *file = slurp(path, &n);
    CHECK(n > BIG, "file size %ld", n);
    expect_refused(path, schema ^ 1, "feature schema");
    const long cuts[] = {0, 10, 39, 40, 41, 48, BIG / 2, n - 5, n - 4, n - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        spit(bad, file, cuts[i]);
        expect_refused(bad, schema, "truncated");
    }
    const long flips[] = {20, 30, 47, 1000, BIG / 3, n - 300, n - 6, n - 2};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        file[flips[i]] ^= 0x10;
        spit(bad, file, n);
        expect_refused(bad, schema, "corrupted");
        file[flips[i]] ^= 0x10;
    }
    file[0] = 'X';
    spit(bad, file, n);
    expect_refused(bad, schema, "not a nextact checkpoint");
    file[0] = 'N';
    /* Another format version, header CRC made consistent. */
    uint32_t version = NX_CHECKPOINT_VERSION + 1, hcrc;
    memcpy(file + 8, &version, 4);
    hcrc = nx_crc32c(0, file, 36);
    memcpy(file + 36, &hcrc, 4);
    spit(bad, file, n);
    expect_refused(bad, schema, "format version 2");
    free(file);
    expect_refused("/nonexistent/dir/x.ckpt", schema, "No such file");
    /* Failing to write leaves no file and says why. */
    CHECK(nx_checkpoint_begin("/nonexistent/dir/x.ckpt", schema, err, sizeof(err)) == NULL,
          "begin in a missing directory");
    unlink(bad);
    unlink(path);
    rmdir(dir);
out:
    nx_mlp_destroy(a);
    nx_mlp_destroy(b);
}

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

/* Model averaging (merge.h) against the formula spelled out per element,
 * in double, and the distance's landmarks. */
static void test_merge(void) {
    enum { N = 1003 };
    static float a[N], b[N], c[N], x[N], zero[N], neg[N];
    static double acc[N];
    fill(a, N, -1, 1);
    fill(b, N, -2, 2);
    fill(c, N, -0.5f, 0.5f);
    memset(acc, 0, sizeof acc);
    nx_merge_add(acc, a, N, 2.0);
    nx_merge_add(acc, b, N, 1.0);
    memcpy(x, c, sizeof x);
    nx_merge_apply(x, acc, N, 3.0, 3.0);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = (3.0 * c[i] + 2.0 * a[i] + 1.0 * b[i]) / 6.0;
        worst = fmax(worst, fabs(x[i] - want));
    }
    CHECK(worst < 1e-6, "weighted mean off by %g", worst);
    /* a replica that trained nothing takes the others' mean */
    memcpy(x, c, sizeof x);
    nx_merge_apply(x, acc, N, 0.0, 3.0);
    worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(x[i] - (2.0 * a[i] + b[i]) / 3.0));
    CHECK(worst < 1e-6, "others' mean off by %g", worst);
    /* no weight anywhere: unchanged, bit for bit */
    memcpy(x, c, sizeof x);
    nx_merge_apply(x, acc, N, 0.0, 0.0);
    CHECK(memcmp(x, c, sizeof x) == 0, "changed without weight");
    /* the order the others come in changes rounding only */
    static double acc2[N];
    memset(acc2, 0, sizeof acc2);
    nx_merge_add(acc2, b, N, 1.0);
    nx_merge_add(acc2, a, N, 2.0);
    worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(acc[i] - acc2[i]));
    CHECK(worst < 1e-12, "order moved the sum by %g", worst);
    for (int i = 0; i < N; i++)
        neg[i] = -a[i];
    CHECK_CLOSE(nx_merge_rel_l2(a, a, N), 0.0, 0, 0);
    CHECK_CLOSE(nx_merge_rel_l2(a, neg, N), 2.0, 1e-9, 0);
    CHECK_CLOSE(nx_merge_rel_l2(a, zero, N), sqrt(2.0), 1e-9, 0);
    CHECK_CLOSE(nx_merge_rel_l2(zero, zero, N), 0.0, 0, 0);
    CHECK_CLOSE(nx_merge_rel_l2(a, b, N), nx_merge_rel_l2(b, a, N), 0, 0);
    /* rebase on the mean, keeping what moved since the copy; clamped */
    static float snap[N], y[N];
    for (int i = 0; i < N; i++) {
        snap[i] = c[i] - 0.25f;
        y[i] = c[i];
    }
    nx_merge_rebase(y, acc, 3.0, snap, N, 0);
    worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(y[i] - ((2.0 * a[i] + b[i]) / 3.0 + 0.25)));
    CHECK(worst < 1e-6, "rebase off by %g", worst);
    memcpy(y, c, sizeof y);
    nx_merge_rebase(y, acc, 3.0, snap, N, 1);
    int negative = 0;
    for (int i = 0; i < N; i++)
        negative += y[i] < 0;
    CHECK(negative == 0, "%d negative after a clamped rebase", negative);
    memcpy(y, c, sizeof y);
    nx_merge_rebase(y, acc, 0.0, snap, N, 0);
    CHECK(memcmp(y, c, sizeof y) == 0, "rebased without weight");
    /* the distance from a mean: as from the mean written out */
    static float mean[N];
    for (int i = 0; i < N; i++)
        mean[i] = (float)(acc[i] / 3.0);
    CHECK_CLOSE(nx_merge_rel_l2_mean(c, acc, 3.0, N), nx_merge_rel_l2(c, mean, N), 1e-6, 1e-5);
    /* against the definition */
    double d2 = 0, a2 = 0, b2 = 0;
    for (int i = 0; i < N; i++) {
        d2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        a2 += (double)a[i] * a[i];
        b2 += (double)b[i] * b[i];
    }
    CHECK_CLOSE(nx_merge_rel_l2(a, b, N), sqrt(d2) / sqrt((a2 + b2) / 2), 1e-12, 1e-9);
}

int main(void) {
    nx_rng_seed(&trng, 20240601);
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
    test_metrics();
    test_checkpoint();
    test_head_init(); /* its data draws from trng would move the others' */
    test_explain();
    test_merge();
    printf("test_model: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
