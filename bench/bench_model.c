/*
 * bench_model.c: throughput of the nextact MLP on one core.
 *
 * The reference network (DESIGN.md, Model): 64 inputs, hidden 64 and 32 (ReLU), 4 classes,
 * softmax, Adam; one BLAS thread. Prints, one figure a line as
 * "name value unit" (bench/model_vs_torch.py parses them):
 *   sgemm_peak      single-core sgemm GFLOP/s on 1024^3 (the roof)
 *   train_b32 / train_b256   training examples per second
 *   predict_b256            predictions per second
 *   *_gflops / *_share      GFLOP/s reached and its share of sgemm_peak
 * Each figure runs for about SECONDS (argument, default 0.5): keep it short
 * on a shared machine. Like the daemon, it first asks for the CPU's best
 * OpenBLAS kernels (model/blas.h: it may execute itself again once) and
 * names the kernels it runs on stderr; OPENBLAS_CORETYPE set by the caller
 * is obeyed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "blas.h"
#include "mlp.h"
#include "rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1024: large enough for OpenBLAS to reach its kernel's steady state, small
 * enough (12 MB) to allocate anywhere. */
#define PEAK_N 1024

static double sgemm_peak(double seconds) {
    float *a = malloc(sizeof(float) * PEAK_N * PEAK_N);
    float *b = malloc(sizeof(float) * PEAK_N * PEAK_N);
    float *c = malloc(sizeof(float) * PEAK_N * PEAK_N);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0.0;
    }
    for (int i = 0; i < PEAK_N * PEAK_N; i++)
        a[i] = b[i] = 1.0f / (float)(1 + i % 7);
    double best = 0.0, t_end = now() + seconds;
    do {
        const double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a,
                    PEAK_N, b, PEAK_N, 0.0f, c, PEAK_N);
        const double g = 2.0 * PEAK_N * PEAK_N * PEAK_N / (now() - t0) * 1e-9;
        best = g > best ? g : best;
    } while (now() < t_end);
    free(a), free(b), free(c);
    return best;
}

/* Data: NBATCH distinct batches cycled, so the figures include reading
 * fresh inputs, as a stream would. */
#define NBATCH 64

int main(int argc, char **argv) {
    char err[256];
    if (nx_blas_reexec(argv, NULL, err, sizeof err) < 0)
        fprintf(stderr, "bench_model: %s\n", err);
    fprintf(stderr, "bench_model: OpenBLAS %s kernels\n", nx_blas_core());
    const double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    nx_mlp_params_t p;
    nx_mlp_params_default(&p, 64, 4);
    p.max_batch = 256;
    nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof(err));
    if (!mlp) {
        fprintf(stderr, "bench_model: %s\n", err);
        return 1;
    }
    float *x = malloc(sizeof(float) * NBATCH * 256 * 64);
    int32_t *y = malloc(sizeof(int32_t) * NBATCH * 256);
    float *probs = malloc(sizeof(float) * 256 * 4);
    nx_rng_t rng;
    nx_rng_seed(&rng, 42);
    for (int i = 0; i < NBATCH * 256 * 64; i++)
        x[i] = (float)(2.0 * nx_rng_uniform(&rng) - 1.0);
    for (int i = 0; i < NBATCH * 256; i++)
        y[i] = (int32_t)(nx_rng_next(&rng) % 4);

    const double peak = sgemm_peak(seconds);
    printf("sgemm_peak %.2f GFLOP/s\n", peak);
    const double fwd = nx_mlp_forward_flops(mlp);
    /* backward: dW of every layer (= forward) plus din of all but the first */
    const double train_flops = 3.0 * fwd - 2.0 * 64 * 64;

    const int batches[2] = {32, 256};
    for (int bi = 0; bi < 2; bi++) {
        const int B = batches[bi];
        long n = 0;
        int k = 0;
        for (int w = 0; w < 20; w++) /* warm caches and OpenBLAS buffers */
            nx_mlp_train(mlp, x, y, B, NULL);
        const double t0 = now();
        double t1;
        do {
            for (int j = 0; j < 64; j++, k = (k + 1) % NBATCH) {
                nx_mlp_train(mlp, x + (size_t)k * 256 * 64, y + (size_t)k * 256, B, NULL);
                n += B;
            }
            t1 = now();
        } while (t1 - t0 < seconds);
        const double eps = (double)n / (t1 - t0);
        printf("train_b%d %.0f examples/s\n", B, eps);
        printf("train_b%d_gflops %.2f GFLOP/s\n", B, eps * train_flops * 1e-9);
        printf("train_b%d_share %.1f %%\n", B, 100.0 * eps * train_flops * 1e-9 / peak);
    }
    {
        const int B = 256;
        long n = 0;
        int k = 0;
        const double t0 = now();
        double t1;
        do {
            for (int j = 0; j < 64; j++, k = (k + 1) % NBATCH) {
                nx_mlp_predict(mlp, x + (size_t)k * 256 * 64, B, probs);
                n += B;
            }
            t1 = now();
        } while (t1 - t0 < seconds);
        const double pps = (double)n / (t1 - t0);
        printf("predict_b256 %.0f predictions/s\n", pps);
        printf("predict_b256_gflops %.2f GFLOP/s\n", pps * fwd * 1e-9);
        printf("predict_b256_share %.1f %%\n", 100.0 * pps * fwd * 1e-9 / peak);
    }
    free(x);
    free(y);
    free(probs);
    nx_mlp_destroy(mlp);
    return 0;
}
