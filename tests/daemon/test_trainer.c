/*
 * test_trainer: the training thread beside prediction (daemon/trainer.h).
 *
 * - live, a trainer far slower than the pushes: pushes never wait, the
 *   examples the queue has no room for are dropped and counted, and every
 *   example added is either trained on or counted as dropped;
 * - live, a checkpoint's quiesce drops the queued segments instead of
 *   waiting for them;
 * - replay, the same pushes: none is dropped (the main thread waits);
 * - replay, the snapshot that predicts is the one after the newest segment
 *   stamped at least lag_ms of event time before the prediction, exactly
 *   (the main thread waits for a slow trainer), and at most
 *   NX_TRAINER_MAX_LAG segments behind the last pushed on a dense stream;
 * - live, the thread runs at the priority asked for: nice 19 for "low",
 *   SCHED_IDLE for "idle" (read back from /proc and sched_getscheduler);
 * - MERGE (the group's model sync): the exchange gets the model as it was
 *   and the examples trained since the previous merge; the model becomes
 *   the example-weighted mean and takes the larger step; with nothing to
 *   blend in it stays as it was.
 *
 * Not timed: a slow model (two hidden layers of 512) makes the trainer slow
 * on any machine; the checks are on counts.
 */
#include <dirent.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mlp.h"
#include "trainer.h"

#define DIM   16
#define K     4
#define SEG   512
#define BATCH 32

static nx_mlp_t *mlp_of(int width) {
    char err[256];
    nx_mlp_params_t p;
    nx_mlp_params_default(&p, DIM, K);
    p.n_hidden = 2;
    p.hidden[0] = width;
    p.hidden[1] = width;
    nx_mlp_t *mlp = nx_mlp_new(&p, err, sizeof err);
    if (!mlp)
        fprintf(stderr, "nx_mlp_new: %s\n", err);
    return mlp;
}

static nx_mlp_t *slow_mlp(void) {
    return mlp_of(512);
}

/* One segment of SEG examples (SEG / BATCH training steps, nothing is
 * down-sampled), added and pushed. */
static void add_segment(nx_trainer_t *tr, int s) {
    static float x[DIM];
    for (int r = 0; r < SEG; r++) {
        for (int j = 0; j < DIM; j++)
            x[j] = (float)((r * 7 + j * 3 + s) % 11) / 11.0f;
        nx_trainer_add(tr, x, (r + s) % K);
    }
    nx_trainer_push(tr);
}

/* Adds segs full segments of examples (pushed by nx_trainer_add when full),
 * predicting between them as the pipeline does; returns the examples added. */
static uint64_t feed(nx_trainer_t *tr, int segs) {
    static float x[DIM];
    uint64_t added = 0;
    for (int s = 0; s < segs; s++) {
        for (int r = 0; r < SEG; r++) {
            for (int j = 0; j < DIM; j++)
                x[j] = (float)((r * 7 + j * 3 + s) % 11) / 11.0f;
            nx_trainer_add(tr, x, (r + s) % K);
            added++;
        }
        nx_trainer_push(tr);
        CHECK(nx_trainer_predictor(tr, 0) != NULL);
    }
    return added;
}

/* The trainer thread's tid (named "nx-trainer"), 0 if not found. */
static pid_t trainer_tid(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    pid_t tid = 0;
    while (d && (e = readdir(d)) != NULL && !tid) {
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(name, sizeof name, f) && strncmp(name, "nx-trainer", 10) == 0)
            tid = (pid_t)atoi(e->d_name);
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return tid;
}

/* Field 19 of /proc/self/task/TID/stat: the thread's nice value. */
static int thread_nice(pid_t tid) {
    char path[100], buf[1024];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        if (f)
            fclose(f);
        return -100;
    }
    fclose(f);
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    int field = 2, nice = -100;
    for (; p && *p; p++) {
        if (*p == ' ' && ++field == 19) {
            nice = atoi(p + 1);
            break;
        }
    }
    return nice;
}

static void test_live_sheds(void) {
    char err[256];
    nx_mlp_t *mlp = slow_mlp();
    CHECK(mlp != NULL);
    if (!mlp)
        return;
    nx_trainer_t *tr =
        nx_trainer_new(mlp, DIM, BATCH, SEG, 1, NX_TRAINER_PRIO_LOW, 1000, err, sizeof err);
    CHECK(tr != NULL);
    if (tr) {
        uint64_t added = feed(tr, 200);
        /* 200 segments of 512 examples through a 512x512 network take the
         * trainer seconds; the pushes took next to nothing, so most were
         * dropped instead of waited for */
        uint64_t shed = nx_trainer_shed(tr);
        CHECK(shed > 0);
        CHECK(shed % SEG == 0); /* whole segments */
        nx_trainer_finish(tr);
        CHECK(nx_trainer_steps(tr) > 0);
        CHECK_INT(nx_trainer_kept(tr) + nx_trainer_shed(tr), added);
        nx_trainer_destroy(tr);
    }
    nx_mlp_destroy(mlp);
}

/* Live, a checkpoint's quiesce waits for the segment in training only:
 * six segments fit the queue (none dropped by a push), the slow trainer is
 * still on the first when quiesce comes, so the others are dropped. */
static void test_live_quiesce(void) {
    char err[256];
    nx_mlp_t *mlp = slow_mlp();
    CHECK(mlp != NULL);
    if (!mlp)
        return;
    nx_trainer_t *tr =
        nx_trainer_new(mlp, DIM, BATCH, SEG, 1, NX_TRAINER_PRIO_LOW, 1000, err, sizeof err);
    CHECK(tr != NULL);
    if (tr) {
        uint64_t added = feed(tr, 6);
        CHECK_INT(nx_trainer_shed(tr), 0);
        nx_trainer_quiesce(tr);
        CHECK(nx_trainer_shed(tr) > 0);
        CHECK(nx_trainer_shed(tr) % SEG == 0);
        CHECK_INT(nx_trainer_kept(tr) + nx_trainer_shed(tr), added); /* all accounted for */
        added += feed(tr, 2); /* after it, segments are trained again */
        nx_trainer_finish(tr);
        CHECK_INT(nx_trainer_kept(tr) + nx_trainer_shed(tr), added);
        CHECK(nx_trainer_kept(tr) >= 2 * SEG);
        nx_trainer_destroy(tr);
    }
    nx_mlp_destroy(mlp);
}

static void test_replay_waits(void) {
    char err[256];
    nx_mlp_t *mlp = slow_mlp();
    CHECK(mlp != NULL);
    if (!mlp)
        return;
    nx_trainer_t *tr =
        nx_trainer_new(mlp, DIM, BATCH, SEG, 0, NX_TRAINER_PRIO_LOW, 1000, err, sizeof err);
    CHECK(tr != NULL);
    if (tr) {
        uint64_t added = feed(tr, 24);
        nx_trainer_finish(tr);
        CHECK_INT(nx_trainer_shed(tr), 0);
        CHECK_INT(nx_trainer_kept(tr), added);
        nx_trainer_destroy(tr);
    }
    nx_mlp_destroy(mlp);
}

/* Replay's snapshot in event time. Segment j is stamped at 500 j ms and a
 * prediction at 500 j + 250 ms follows it: with a lag of 1000 ms it must
 * use the snapshot after segment j - 2 (stamped 750 ms before), whose
 * version is its training steps, (j - 1) SEG / BATCH; before segment 0
 * qualifies, the initial weights (version 0). Then a dense stream (stamps
 * 1 ms apart): the snapshot is NX_TRAINER_MAX_LAG segments behind the last
 * one pushed. width: the model's hidden layers, wide (128) to make the
 * main thread wait, narrow (16) to let the trainer keep up. */
static void test_replay_fresh(int width) {
    char err[256];
    const uint64_t steps_per_seg = SEG / BATCH;
    nx_mlp_t *mlp = mlp_of(width);
    CHECK(mlp != NULL);
    if (!mlp)
        return;
    nx_trainer_t *tr =
        nx_trainer_new(mlp, DIM, BATCH, SEG, 0, NX_TRAINER_PRIO_NORMAL, 1000, err, sizeof err);
    CHECK(tr != NULL);
    if (tr) {
        int bad = 0, j = 0;
        for (; j < 12; j++) {
            nx_trainer_set_clock(tr, 500 * (int64_t)j);
            add_segment(tr, j);
            nx_mlp_predictor_t *pred = nx_trainer_predictor(tr, 500 * (int64_t)j + 250);
            uint64_t want = j >= 2 ? (uint64_t)(j - 1) * steps_per_seg : 0;
            if (nx_mlp_predictor_version(pred) != want) {
                fprintf(stderr, "segment %d: snapshot version %llu, want %llu\n", j,
                        (unsigned long long)nx_mlp_predictor_version(pred),
                        (unsigned long long)want);
                bad++;
            }
        }
        /* dense: 40 more segments within 40 ms; the time rule alone would
         * keep the snapshot of segment 10 (stamped 5000 ms) */
        int64_t t0 = 500 * (int64_t)j;
        for (int d = 0; d < 40; d++, j++) {
            nx_trainer_set_clock(tr, t0 + d);
            add_segment(tr, j);
            nx_mlp_predictor_t *pred = nx_trainer_predictor(tr, t0 + d);
            int64_t need = j - NX_TRAINER_MAX_LAG;
            if (need < 10)
                need = 10;
            uint64_t want = (uint64_t)(need + 1) * steps_per_seg;
            if (nx_mlp_predictor_version(pred) != want) {
                fprintf(stderr, "dense segment %d: snapshot version %llu, want %llu\n", j,
                        (unsigned long long)nx_mlp_predictor_version(pred),
                        (unsigned long long)want);
                bad++;
            }
        }
        CHECK_INT(bad, 0);
        nx_trainer_finish(tr);
        CHECK_INT(nx_trainer_kept(tr), (uint64_t)j * SEG);
        nx_trainer_destroy(tr);
    }
    nx_mlp_destroy(mlp);
}

static void test_priority(int priority) {
    char err[256];
    nx_mlp_t *mlp = slow_mlp();
    CHECK(mlp != NULL);
    if (!mlp)
        return;
    int nice_before = thread_nice(getpid());
    nx_trainer_t *tr = nx_trainer_new(mlp, DIM, BATCH, SEG, 1, priority, 1000, err, sizeof err);
    CHECK(tr != NULL);
    if (tr) {
        feed(tr, 1);
        nx_trainer_sync(tr); /* the thread has run, so it has set its priority */
        pid_t tid = trainer_tid();
        CHECK(tid > 0);
        if (priority == NX_TRAINER_PRIO_LOW) {
            CHECK_INT(thread_nice(tid), 19);
            CHECK_INT(sched_getscheduler(tid), SCHED_OTHER);
        } else {
            CHECK_INT(sched_getscheduler(tid), SCHED_IDLE);
        }
        /* the caller's thread is left as it was */
        CHECK_INT(thread_nice(getpid()), nice_before);
        CHECK_INT(sched_getscheduler(0), SCHED_OTHER);
        nx_trainer_destroy(tr);
    }
    nx_mlp_destroy(mlp);
}

/* Waits for the trainer to carry out a merge (bounded). */
static int merged(nx_trainer_merge_t *m) {
    for (int k = 0; k < 3000 && !atomic_load(&m->done); k++)
        usleep(10000);
    return atomic_load(&m->done);
}

static void test_merge(void) {
    char err[256];
    nx_mlp_t *mlp = slow_mlp();
    CHECK(mlp != NULL);
    if (!mlp)
        return;
    nx_trainer_t *tr =
        nx_trainer_new(mlp, DIM, BATCH, SEG, 1, NX_TRAINER_PRIO_NORMAL, 1000, err, sizeof err);
    CHECK(tr != NULL);
    size_t np = nx_mlp_num_params(mlp);
    float *before = malloc(3 * np * sizeof *before), *local = malloc(3 * np * sizeof *local);
    double *acc = malloc(3 * np * sizeof *acc);
    if (!tr || !before || !local || !acc)
        goto out;
    feed(tr, 2);
    nx_trainer_sync(tr); /* the model is this thread's until the next push */
    memcpy(before, nx_mlp_weights(mlp), np * sizeof *before);
    memcpy(before + np, nx_mlp_opt_m(mlp), np * sizeof *before);
    memcpy(before + 2 * np, nx_mlp_opt_v(mlp), np * sizeof *before);
    uint64_t step = nx_mlp_step(mlp), kept = nx_trainer_kept(tr);
    CHECK(kept > 0);
    /* the others: weight 3 on a slab of 0.5 (weights), 0 (m), 1 (v) */
    for (size_t i = 0; i < np; i++) {
        acc[i] = 3 * 0.5;
        acc[np + i] = 0;
        acc[2 * np + i] = 3 * 1.0;
    }
    nx_trainer_merge_t m = {.acc = acc, .acc_weight = 3, .max_step = step + 1000, .local = local};
    nx_trainer_merge(tr, &m);
    CHECK(merged(&m));
    nx_trainer_sync(tr);
    CHECK(memcmp(local, before, 3 * np * sizeof *local) == 0);
    CHECK_INT(m.local_step, step);
    CHECK_INT(m.local_examples, kept);
    double worst = 0, w = (double)kept;
    const float *slab[3] = {nx_mlp_weights(mlp), nx_mlp_opt_m(mlp), nx_mlp_opt_v(mlp)};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < np; i++) {
            double want = (w * before[k * np + i] + acc[k * np + i]) / (w + 3);
            double d = fabs(slab[k][i] - want) / (1 + fabs(want));
            worst = d > worst ? d : worst;
        }
    CHECK(worst < 1e-6);
    CHECK_INT(nx_mlp_step(mlp), step + 1000);
    CHECK_INT(nx_trainer_steps(tr), step + 1000);
    /* the predictors have the blend */
    nx_mlp_predictor_t *pred = nx_trainer_predictor(tr, 0);
    CHECK(memcmp(nx_mlp_predictor_weights(pred), nx_mlp_weights(mlp), np * sizeof(float)) == 0);
    /* rebase on a mean, keeping what moved since a copy: with the model
     * itself as the copy, the model becomes the mean */
    float *snap = malloc(3 * np * sizeof *snap);
    if (snap) {
        memcpy(snap, nx_mlp_weights(mlp), np * sizeof *snap);
        memcpy(snap + np, nx_mlp_opt_m(mlp), np * sizeof *snap);
        memcpy(snap + 2 * np, nx_mlp_opt_v(mlp), np * sizeof *snap);
        nx_trainer_merge_t m3 = {
            .acc = acc, .acc_weight = 3, .max_step = 0, .snap = snap, .local = local};
        nx_trainer_merge(tr, &m3);
        CHECK(merged(&m3));
        nx_trainer_sync(tr);
        worst = 0;
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; i < np; i++)
                worst = fmax(worst, fabs(slab[k][i] - acc[k * np + i] / 3));
        CHECK(worst < 1e-6);
        CHECK(m3.deviation < 1e-6);
        CHECK_INT(nx_mlp_step(mlp), step + 1000); /* a smaller step is not taken */
        free(snap);
    }
    /* nothing trained since and nothing to blend in: unchanged */
    memcpy(before, nx_mlp_weights(mlp), np * sizeof *before);
    nx_trainer_merge_t m2 = {.acc = acc, .acc_weight = 0, .max_step = 0, .local = local};
    nx_trainer_merge(tr, &m2);
    CHECK(merged(&m2));
    nx_trainer_sync(tr);
    CHECK_INT(m2.local_examples, 0);
    CHECK(memcmp(nx_mlp_weights(mlp), before, np * sizeof *before) == 0);
    CHECK_INT(nx_mlp_step(mlp), step + 1000);
out:
    free(before);
    free(local);
    free(acc);
    nx_trainer_destroy(tr);
    nx_mlp_destroy(mlp);
}

int main(void) {
    test_live_sheds();
    test_live_quiesce();
    test_replay_waits();
    test_replay_fresh(128);
    test_replay_fresh(16);
    test_priority(NX_TRAINER_PRIO_LOW);
    test_priority(NX_TRAINER_PRIO_IDLE);
    test_merge();
    return nx_check_exit("test_trainer");
}
