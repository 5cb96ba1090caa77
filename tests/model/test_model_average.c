/*
 * test_model_average.c: unit tests of the MLP's weight averaging (mlp.h,
 * avg_decay and avg_reset): the average is the documented moving average
 * of the weights and what predictions use; it leaves training alone (the
 * weights are the same bits with it or without); on a noisy stream it
 * predicts better than the last weights; it restarts at a drift and not on
 * a steady stream; it follows a merge (detach/attach); the checkpoint keeps
 * it, and a checkpoint without one restarts it. Links only nx_model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "mlp.h"
#include "model_check.h"
#include "rng.h"

#define N_IN 4
#define B    16

static nx_mlp_t *make(float avg_decay, float avg_reset, float lr) {
    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, N_IN, 2);
    p.n_hidden = 1;
    p.hidden[0] = 8;
    p.lr = lr;
    p.max_batch = 256;
    p.avg_decay = avg_decay;
    p.avg_reset = avg_reset;
    nx_mlp_t *m = nx_mlp_new(&p, err, sizeof err);
    CHECK(m != NULL, "%s", err);
    if (!m)
        exit(1);
    return m;
}

/* A noisy concept: P(y = 1) = sigmoid(2 (x0 - x1) + x2), x uniform in
 * [-1, 1]^4; flipped, the labels are swapped. */
static void concept(float *x, int32_t *y, int n, int flipped) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * N_IN;
        fill(r, N_IN, -1, 1);
        const double p = 1.0 / (1.0 + exp(-(2.0 * (r[0] - r[1]) + r[2])));
        const int32_t v = nx_rng_uniform(&trng) < p;
        y[i] = flipped ? 1 - v : v;
    }
}

/* Mean log loss of m's predictions on n rows. */
static double log_loss(nx_mlp_t *m, const float *x, const int32_t *y, int n) {
    float probs[256 * 2];
    double sum = 0;
    for (int i = 0; i < n; i += 256) {
        const int b = n - i < 256 ? n - i : 256;
        nx_mlp_predict(m, x + (size_t)i * N_IN, b, probs);
        for (int r = 0; r < b; r++) {
            const double pt = probs[2 * r + y[i + r]];
            sum -= log(pt > 1e-7 ? pt : 1e-7);
        }
    }
    return sum / n;
}

/* The average after each step is b a + (1 - b) w with b = min(d, (1 + n) /
 * (10 + n)), from the initial weights; predictions and the predictor use it;
 * training is the same bits as without averaging. */
static void test_moving_average(void) {
    nx_mlp_t *m = make(0.9f, 0.0f, 0.05f), *plain = make(0.0f, 0.0f, 0.05f);
    char err[256];
    CHECK(nx_mlp_average(plain) == NULL, "averaging off has no average");
    const size_t np = nx_mlp_num_params(m);
    double *ref = malloc(np * sizeof *ref);
    for (size_t i = 0; i < np; i++)
        ref[i] = nx_mlp_weights(m)[i];
    CHECK(memcmp(nx_mlp_average(m), nx_mlp_weights(m), np * 4) == 0, "starts at the weights");
    float x[B * N_IN];
    int32_t y[B];
    for (int s = 1; s <= 60; s++) {
        concept(x, y, B, 0);
        CHECK(nx_mlp_train(m, x, y, B, NULL) == 0, "train");
        CHECK(nx_mlp_train(plain, x, y, B, NULL) == 0, "train");
        double b = (1.0 + s) / (10.0 + s);
        b = b > 0.9 ? 0.9 : b;
        for (size_t i = 0; i < np; i++)
            ref[i] = b * ref[i] + (1.0 - b) * nx_mlp_weights(m)[i];
    }
    double worst = 0;
    for (size_t i = 0; i < np; i++)
        worst = fmax(worst, fabs(ref[i] - nx_mlp_average(m)[i]));
    CHECK(worst < 1e-5, "average differs from the reference by %g", worst);
    CHECK(memcmp(nx_mlp_weights(m), nx_mlp_weights(plain), np * 4) == 0,
          "averaging changed the training");
    nx_mlp_avg_state_t st;
    nx_mlp_avg_state(m, &st);
    CHECK(st.steps == 60 && st.restarts == 0, "steps %llu restarts %llu",
          (unsigned long long)st.steps, (unsigned long long)st.restarts);

    /* predictions: nx_mlp_predict and a predictor both use the average */
    nx_mlp_predictor_t *pred = nx_mlp_predictor_new(m, err, sizeof err);
    CHECK(pred != NULL, "%s", err);
    if (pred) {
        CHECK(memcmp(nx_mlp_predictor_weights(pred), nx_mlp_average(m), np * 4) == 0,
              "predictor holds the average");
        float pa[B * 2], pb[B * 2], pw[B * 2];
        concept(x, y, B, 0);
        nx_mlp_predict(m, x, B, pa);
        nx_mlp_predictor_predict(pred, x, B, pb);
        nx_mlp_predict(plain, x, B, pw);
        CHECK(memcmp(pa, pb, sizeof pa) == 0, "predict and predictor differ");
        CHECK(memcmp(pa, pw, sizeof pa) != 0, "predictions equal the last weights'");
    }
    nx_mlp_predictor_destroy(pred);

    /* restart: the average becomes the weights; detach/attach keeps the
     * average's offset from weights that change in between */
    float *a = nx_mlp_average(m), *w = nx_mlp_weights(m);
    const double off0 = (double)a[3] - w[3];
    nx_mlp_average_detach(m);
    for (size_t i = 0; i < np; i++)
        w[i] += 0.25f;
    nx_mlp_average_attach(m);
    CHECK_CLOSE((double)a[3] - w[3], off0, 1e-6, 0);
    nx_mlp_average_restart(m);
    CHECK(memcmp(a, w, np * 4) == 0, "restart: the average is the weights");
    nx_mlp_avg_state(m, &st);
    CHECK(st.steps == 0, "restart: steps %llu", (unsigned long long)st.steps);
    free(ref);
    nx_mlp_destroy(m);
    nx_mlp_destroy(plain);
}

/* Trains each of the n models on the same `steps` batches of the concept. */
static void train_on(nx_mlp_t **models, int n, int steps, int flipped) {
    float x[B * N_IN];
    int32_t y[B];
    for (int s = 0; s < steps; s++) {
        concept(x, y, B, flipped);
        for (int i = 0; i < n; i++)
            CHECK(nx_mlp_train(models[i], x, y, B, NULL) == 0, "train");
    }
}

/* A fast rate on a noisy concept: the average predicts fresh rows better
 * than the weights it averages (the point of it), and restarts never. Then
 * the concept flips: with avg_reset the average restarts and soon predicts
 * the new concept as well as the weights do; without it, it still trails. */
static void test_noise_and_drift(void) {
    enum { STEADY = 3000, AFTER = 150, TEST = 20000 };
    nx_mlp_t *avg = make(0.999f, 0.02f, 0.03f), *stale = make(0.999f, 0.0f, 0.03f),
             *plain = make(0.0f, 0.0f, 0.03f);
    float *x = malloc((size_t)TEST * N_IN * sizeof *x);
    int32_t *y = malloc(TEST * sizeof *y);
    nx_mlp_avg_state_t st;
    nx_mlp_t *all[] = {avg, stale, plain};
    train_on(all, 3, STEADY, 0);
    concept(x, y, TEST, 0);
    const double l_avg = log_loss(avg, x, y, TEST), l_plain = log_loss(plain, x, y, TEST);
    printf("steady: log loss averaged %.5f, last weights %.5f\n", l_avg, l_plain);
    CHECK(l_avg < l_plain - 0.002, "average %.5f not better than the weights %.5f", l_avg, l_plain);
    nx_mlp_avg_state(avg, &st);
    CHECK(st.restarts == 0, "%llu restart(s) on a steady stream", (unsigned long long)st.restarts);

    train_on(all, 3, AFTER, 1);
    concept(x, y, TEST, 1);
    const double d_avg = log_loss(avg, x, y, TEST), d_stale = log_loss(stale, x, y, TEST),
                 d_plain = log_loss(plain, x, y, TEST);
    nx_mlp_avg_state(avg, &st);
    printf("%d steps after a flip: log loss with restarts %.5f (%llu restart(s)), without "
           "%.5f, last weights %.5f\n",
           AFTER, d_avg, (unsigned long long)st.restarts, d_stale, d_plain);
    CHECK(st.restarts >= 1, "no restart after the flip");
    CHECK(d_avg < d_plain * 1.05, "restarted average %.5f trails the weights %.5f", d_avg, d_plain);
    CHECK(d_stale > d_plain * 1.2, "without restarts %.5f should still trail %.5f", d_stale,
          d_plain);
    free(x);
    free(y);
    nx_mlp_destroy(avg);
    nx_mlp_destroy(stale);
    nx_mlp_destroy(plain);
}

static int save(const char *path, nx_mlp_t *m) {
    char err[256];
    nx_checkpoint_writer_t *w = nx_checkpoint_begin(path, 7, err, sizeof err);
    CHECK(w != NULL, "%s", err);
    if (!w)
        return -1;
    CHECK(nx_checkpoint_put_mlp(w, m) == 0, "put");
    const int rc = nx_checkpoint_commit(w, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    return rc;
}

static int load(const char *path, nx_mlp_t *m) {
    char err[256];
    nx_checkpoint_reader_t *r = nx_checkpoint_open(path, 7, err, sizeof err);
    CHECK(r != NULL, "%s", err);
    if (!r)
        return -1;
    const int rc = nx_checkpoint_get_mlp(r, m, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    nx_checkpoint_close(r);
    return rc;
}

/* The checkpoint keeps the average and its state; a model without
 * averaging reads past it; one with averaging restarts it from a
 * checkpoint that has none. */
static void test_checkpoint(void) {
    char dir[] = "/tmp/nx_test_avg_XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/m.ckpt", dir);
    nx_mlp_t *a = make(0.99f, 0.02f, 0.03f), *b = make(0.99f, 0.02f, 0.03f),
             *off = make(0.0f, 0.0f, 0.03f);
    float x[B * N_IN];
    int32_t y[B];
    for (int s = 0; s < 200; s++) {
        concept(x, y, B, 0);
        nx_mlp_train(a, x, y, B, NULL);
    }
    const size_t np = nx_mlp_num_params(a);
    nx_mlp_avg_state_t sa, sb;
    if (save(path, a) == 0 && load(path, b) == 0 && load(path, off) == 0) {
        CHECK(memcmp(nx_mlp_average(a), nx_mlp_average(b), np * 4) == 0, "average differs");
        CHECK(memcmp(nx_mlp_weights(a), nx_mlp_weights(b), np * 4) == 0, "weights differ");
        nx_mlp_avg_state(a, &sa);
        nx_mlp_avg_state(b, &sb);
        CHECK(memcmp(&sa, &sb, sizeof sa) == 0, "average state differs");
        CHECK(memcmp(nx_mlp_weights(a), nx_mlp_weights(off), np * 4) == 0 &&
                  nx_mlp_step(off) == 200,
              "read without averaging: weights or step differ");
        /* and both go on the same: same bits after more training */
        for (int s = 0; s < 20; s++) {
            concept(x, y, B, 0);
            nx_mlp_train(a, x, y, B, NULL);
            nx_mlp_train(b, x, y, B, NULL);
        }
        CHECK(memcmp(nx_mlp_average(a), nx_mlp_average(b), np * 4) == 0,
              "average differs after training on");
    }
    if (save(path, off) == 0 && load(path, b) == 0) {
        CHECK(memcmp(nx_mlp_average(b), nx_mlp_weights(b), np * 4) == 0,
              "no average stored: it restarts from the weights");
        nx_mlp_avg_state(b, &sb);
        CHECK(sb.steps == 0, "steps %llu", (unsigned long long)sb.steps);
    }
    unlink(path);
    rmdir(dir);
    nx_mlp_destroy(a);
    nx_mlp_destroy(b);
    nx_mlp_destroy(off);
}

static void test_params(void) {
    nx_mlp_params_t p;
    char err[256];
    nx_mlp_params_default(&p, N_IN, 2);
    CHECK(p.avg_decay == 0.0f && p.avg_reset == 0.0f, "the library's default is off");
    const float bad_decay[] = {1.0f, -0.1f, NAN}, bad_reset[] = {-1.0f, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        p.avg_decay = bad_decay[i];
        p.avg_reset = 0;
        CHECK(nx_mlp_params_check(&p, err, sizeof err) != 0, "decay %g accepted",
              (double)bad_decay[i]);
        p.avg_decay = 0.999f;
        p.avg_reset = bad_reset[i];
        CHECK(nx_mlp_params_check(&p, err, sizeof err) != 0, "reset %g accepted",
              (double)bad_reset[i]);
    }
}

int main(void) {
    test_rng_seed();
    test_moving_average();
    test_noise_and_drift();
    test_checkpoint();
    test_params();
    return check_exit("test_model_average");
}
