/* trainer.c: the training thread and its segment queue (trainer.h). */
#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "merge.h"

typedef struct segment {
    float *x;       /* (cap, dim) */
    int32_t *label; /* (cap) */
    size_t n, cap;
    unsigned cmd;              /* NX_TRAINER_* commands applied before its examples */
    float lr_scale;            /* with NX_TRAINER_SET_LR */
    nx_trainer_merge_t *merge; /* with NX_TRAINER_MERGE */
} segment_t;

struct nx_trainer {
    nx_mlp_t *mlp; /* borrowed */
    size_t dim;
    int live;

    int priority; /* NX_TRAINER_PRIO_*, applied by the thread to itself */

    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* the main thread waits on it: trained changed */
    sem_t work;          /* the trainer waits on it: pushed or stop changed */
    segment_t seg[NX_TRAINER_QUEUE];
    _Atomic int64_t pushed;  /* segments handed over; written by the main thread */
    int idle;                /* main thread: trainer known idle since the last push */
    _Atomic int64_t trained; /* segments trained and published, -1 = none; written by
                              * the trainer (and by reset, while it is idle) */
    _Atomic int stop;
    _Atomic uint64_t shed;      /* live: examples dropped while the queue was full */
    _Atomic int64_t skip_below; /* live: segments before this one are not trained on */
    segment_t *fill;            /* the segment being filled by the main thread */

    nx_mlp_predictor_t *slot[NX_TRAINER_NSLOT];
    nx_mlp_predictor_t *initial; /* the weights before any training */

    /* replay's choice of snapshot (main thread only) */
    int64_t lag_ms;                     /* event time between a stamp and its use */
    int64_t clock_ms;                   /* stamp of the next push; INT64_MIN = none yet */
    int64_t stamp_ms[NX_TRAINER_NSLOT]; /* segment j's stamp at j % NSLOT */
    int64_t need;                       /* segment whose snapshot predicts; -1 = initial */

    _Atomic uint64_t steps; /* nx_mlp_step, readable from the main thread */
    _Atomic uint64_t kept;  /* examples trained on */
    _Atomic uint64_t step_count[NX_TRAINER_STEP_BUCKETS]; /* steps per duration bucket */
    _Atomic uint64_t step_ns;                             /* their durations added */

    /* trainer-owned mini-batch */
    float *tx;   /* (batch, dim) */
    int32_t *ty; /* (batch) */
    int tn, tcap;

    /* the guard's last good snapshot: weights and optimizer moments */
    float *snap;    /* (3, n_params): weights, m, v */
    int snap_valid; /* 0: a rollback goes back to the initial weights */

    uint64_t kept_at_merge; /* trainer thread: `kept` at the last MERGE */
};

/* Upper bounds of the step-duration buckets, ns (trainer.h); the last is
 * +Inf. */
static const uint64_t step_le_ns[NX_TRAINER_STEP_BUCKETS - 1] = {
    10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 100000000,
};

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Trainer thread (or the main thread once the trainer is idle): one
 * mini-batch step, timed, then on. */
static void train_flush(nx_trainer_t *tr) {
    if (tr->tn == 0)
        return;
    float loss;
    uint64_t t0 = mono_ns();
    if (nx_mlp_train(tr->mlp, tr->tx, tr->ty, tr->tn, &loss) < 0)
        NX_LOG_RL(NX_LOG_WARNING, "model: training step refused (non-finite loss); batch skipped");
    uint64_t ns = mono_ns() - t0;
    int b = 0;
    while (b < NX_TRAINER_STEP_BUCKETS - 1 && ns > step_le_ns[b])
        b++;
    atomic_fetch_add_explicit(&tr->step_count[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&tr->step_ns, ns, memory_order_relaxed);
    atomic_fetch_add(&tr->kept, (uint64_t)tr->tn);
    atomic_store(&tr->steps, nx_mlp_step(tr->mlp));
    tr->tn = 0;
}

/* Trainer thread: down-sampling, mini-batches, in segment order. */
static void train_segment(nx_trainer_t *tr, const segment_t *seg) {
    for (size_t r = 0; r < seg->n; r++) {
        int32_t y = seg->label[r];
        if (!nx_mlp_keep(tr->mlp, y))
            continue;
        memcpy(tr->tx + (size_t)tr->tn * tr->dim, seg->x + r * tr->dim, tr->dim * sizeof *tr->tx);
        tr->ty[tr->tn++] = y;
        if (tr->tn == tr->tcap)
            train_flush(tr);
    }
}

/* Trainer thread: MERGE (trainer.h). */
static void merge_replicas(nx_trainer_t *tr, nx_trainer_merge_t *m) {
    const size_t np = nx_mlp_num_params(tr->mlp), bytes = np * sizeof(float);
    float *slab[3] = {nx_mlp_weights(tr->mlp), nx_mlp_opt_m(tr->mlp), nx_mlp_opt_v(tr->mlp)};
    uint64_t step = nx_mlp_step(tr->mlp);
    if (m->snap) {
        if (m->acc_weight > 0) {
            for (int k = 0; k < 3; k++)
                nx_merge_rebase(slab[k], m->acc + (size_t)k * np, m->acc_weight,
                                m->snap + (size_t)k * np, np, k == 2);
            m->deviation = nx_merge_rel_l2_mean(slab[0], m->acc, m->acc_weight, np);
        }
    } else {
        uint64_t kept = atomic_load(&tr->kept);
        m->local_examples = kept - tr->kept_at_merge;
        m->local_step = step;
        tr->kept_at_merge = kept;
        for (int k = 0; k < 3; k++) {
            memcpy(m->local + (size_t)k * np, slab[k], bytes);
            if (m->acc_weight > 0)
                nx_merge_apply(slab[k], m->acc + (size_t)k * np, np, (double)m->local_examples,
                               m->acc_weight);
        }
    }
    if (m->acc_weight > 0 && m->max_step > step) {
        nx_mlp_set_step(tr->mlp, m->max_step);
        atomic_store(&tr->steps, m->max_step);
    }
    atomic_store(&m->done, 1);
}

/* Trainer thread: the commands attached to a segment (the guard's, and the
 * group's MERGE), before its examples (so the guard's fall at the same
 * place of the training sequence in every run). */
static void apply_commands(nx_trainer_t *tr, const segment_t *seg) {
    const size_t np = nx_mlp_num_params(tr->mlp), bytes = np * sizeof(float);
    if (seg->cmd & NX_TRAINER_ROLLBACK) {
        if (tr->snap_valid) {
            memcpy(nx_mlp_weights(tr->mlp), tr->snap, bytes);
            memcpy(nx_mlp_opt_m(tr->mlp), tr->snap + np, bytes);
            memcpy(nx_mlp_opt_v(tr->mlp), tr->snap + 2 * np, bytes);
        } else {
            /* no good snapshot yet: the weights it started from */
            memcpy(nx_mlp_weights(tr->mlp), nx_mlp_predictor_weights(tr->initial), bytes);
            memset(nx_mlp_opt_m(tr->mlp), 0, bytes);
            memset(nx_mlp_opt_v(tr->mlp), 0, bytes);
        }
        tr->tn = 0; /* the mini-batch in hand came from the stretch rolled back */
    }
    if (seg->cmd & NX_TRAINER_SNAPSHOT) {
        memcpy(tr->snap, nx_mlp_weights(tr->mlp), bytes);
        memcpy(tr->snap + np, nx_mlp_opt_m(tr->mlp), bytes);
        memcpy(tr->snap + 2 * np, nx_mlp_opt_v(tr->mlp), bytes);
        tr->snap_valid = 1;
    }
    if (seg->cmd & NX_TRAINER_SET_LR)
        nx_mlp_set_lr_scale(tr->mlp, seg->lr_scale);
    if ((seg->cmd & NX_TRAINER_MERGE) && seg->merge)
        merge_replicas(tr, seg->merge);
}

/* Trainer thread, live: steps aside for the loop. "low" is nice 19 (a few
 * percent of a core under contention, never none); "idle" is SCHED_IDLE
 * (only what nothing else wants). Lowering one's own priority needs no
 * privilege; raising it back would, so it is set once for the thread's
 * life. */
static void lower_priority(int priority) {
    if (priority == NX_TRAINER_PRIO_LOW) {
        /* Linux: a thread id as `who` sets that thread's nice value only */
        if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) < 0)
            nx_warn("model: cannot lower the trainer's priority (nice 19): %s", strerror(errno));
    } else if (priority == NX_TRAINER_PRIO_IDLE) {
        struct sched_param sp = {0};
        int err = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
        if (err)
            nx_warn("model: cannot put the trainer in SCHED_IDLE: %s", strerror(err));
    }
}

static void *trainer_main(void *arg) {
    nx_trainer_t *tr = arg;
    pthread_setname_np(pthread_self(), "nx-trainer"); /* for top -H, perf */
    if (tr->live)
        lower_priority(tr->priority);
    for (;;) {
        int64_t s = atomic_load(&tr->trained) + 1;
        if (s >= atomic_load(&tr->pushed)) {
            if (atomic_load(&tr->stop))
                break; /* stop, and nothing left */
            /* Posted once per push and at stop: a post after the check
             * above is not lost. Posts pile up while the trainer is busy
             * (it waits only when idle): the spare ones are taken here, the
             * counts are read again at the top anyway. */
            while (sem_wait(&tr->work) < 0 && errno == EINTR)
                ;
            while (sem_trywait(&tr->work) == 0)
                ;
            continue;
        }
        segment_t *seg = &tr->seg[s % NX_TRAINER_QUEUE];
        if (seg->cmd)
            apply_commands(tr, seg);
        if (s < atomic_load(&tr->skip_below))
            atomic_fetch_add_explicit(&tr->shed, seg->n, memory_order_relaxed);
        else
            train_segment(tr, seg);
        nx_mlp_publish(tr->mlp, tr->slot[s % NX_TRAINER_NSLOT]);
        /* stored before the broadcast, which is under the mutex the
         * waiters test it under: no wake-up is lost */
        atomic_store(&tr->trained, s);
        pthread_mutex_lock(&tr->mu);
        pthread_cond_broadcast(&tr->cond);
        pthread_mutex_unlock(&tr->mu);
    }
    return NULL;
}

nx_trainer_t *nx_trainer_new(nx_mlp_t *mlp, size_t dim, int batch, size_t seg_cap, int live,
                             int priority, int64_t lag_ms, char *errstr, size_t errstr_size) {
    nx_trainer_t *tr = calloc(1, sizeof *tr);
    if (!tr) {
        nx_errf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    tr->mlp = mlp;
    tr->dim = dim;
    tr->live = live;
    tr->priority = priority;
    tr->lag_ms = lag_ms > 0 ? lag_ms : 0;
    tr->clock_ms = INT64_MIN;
    tr->need = -1;
    tr->tcap = batch;
    tr->tx = malloc((size_t)tr->tcap * dim * sizeof *tr->tx);
    tr->ty = malloc((size_t)tr->tcap * sizeof *tr->ty);
    if (!tr->tx || !tr->ty) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    for (int i = 0; i < NX_TRAINER_QUEUE; i++) {
        segment_t *g = &tr->seg[i];
        g->cap = seg_cap;
        g->x = malloc(g->cap * dim * sizeof *g->x);
        g->label = malloc(g->cap * sizeof *g->label);
        if (!g->x || !g->label) {
            nx_errf(errstr, errstr_size, "out of memory");
            goto err;
        }
    }
    if (!(tr->initial = nx_mlp_predictor_new(mlp, errstr, errstr_size)))
        goto err;
    if (!(tr->snap = malloc(3 * nx_mlp_num_params(mlp) * sizeof *tr->snap))) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    for (int i = 0; i < NX_TRAINER_NSLOT; i++)
        if (!(tr->slot[i] = nx_mlp_predictor_new(mlp, errstr, errstr_size)))
            goto err;
    tr->trained = -1;
    tr->fill = &tr->seg[0];
    pthread_mutex_init(&tr->mu, NULL);
    pthread_cond_init(&tr->cond, NULL);
    sem_init(&tr->work, 0, 0);
    if (pthread_create(&tr->thread, NULL, trainer_main, tr) != 0) {
        pthread_mutex_destroy(&tr->mu);
        pthread_cond_destroy(&tr->cond);
        sem_destroy(&tr->work);
        nx_errf(errstr, errstr_size, "cannot start the trainer thread");
        goto err;
    }
    tr->started = 1;
    return tr;
err:
    nx_trainer_destroy(tr);
    return NULL;
}

void nx_trainer_destroy(nx_trainer_t *tr) {
    if (!tr)
        return;
    if (tr->started) {
        atomic_store(&tr->stop, 1);
        sem_post(&tr->work);
        pthread_join(tr->thread, NULL);
        pthread_mutex_destroy(&tr->mu);
        pthread_cond_destroy(&tr->cond);
        sem_destroy(&tr->work);
    }
    for (int i = 0; i < NX_TRAINER_QUEUE; i++) {
        free(tr->seg[i].x);
        free(tr->seg[i].label);
    }
    for (int i = 0; i < NX_TRAINER_NSLOT; i++)
        nx_mlp_predictor_destroy(tr->slot[i]);
    nx_mlp_predictor_destroy(tr->initial);
    free(tr->tx);
    free(tr->ty);
    free(tr->snap);
    free(tr);
}

void nx_trainer_push(nx_trainer_t *tr) {
    int64_t pushed = atomic_load(&tr->pushed);
    if (pushed - atomic_load(&tr->trained) >= NX_TRAINER_QUEUE) {
        /* Pushing would make the slot being filled the one the trainer is
         * on. Live, the loop does not wait for it: the segment's examples
         * are dropped (counted) and its slot filled again; its commands stay
         * for the next push. Replay waits, so every example is trained. */
        if (tr->live) {
            atomic_fetch_add_explicit(&tr->shed, tr->fill->n, memory_order_relaxed);
            tr->fill->n = 0;
            return;
        }
        pthread_mutex_lock(&tr->mu);
        while (pushed - atomic_load(&tr->trained) >= NX_TRAINER_QUEUE)
            pthread_cond_wait(&tr->cond, &tr->mu);
        pthread_mutex_unlock(&tr->mu);
    }
    tr->stamp_ms[pushed % NX_TRAINER_NSLOT] = tr->clock_ms;
    atomic_store(&tr->pushed, pushed + 1);
    tr->idle = 0;
    sem_post(&tr->work);
    tr->fill = &tr->seg[(pushed + 1) % NX_TRAINER_QUEUE];
    tr->fill->n = 0;
    tr->fill->cmd = 0;
}

void nx_trainer_merge(nx_trainer_t *tr, nx_trainer_merge_t *m) {
    tr->fill->merge = m;
    tr->fill->cmd |= NX_TRAINER_MERGE;
    nx_trainer_push(tr);
}

void nx_trainer_command(nx_trainer_t *tr, unsigned cmd, float lr_scale) {
    tr->fill->cmd |= cmd;
    if (cmd & NX_TRAINER_SET_LR)
        tr->fill->lr_scale = lr_scale;
}

void nx_trainer_add(nx_trainer_t *tr, const float *x, int32_t label) {
    segment_t *g = tr->fill;
    if (g->n == g->cap)
        nx_trainer_push(tr), g = tr->fill;
    memcpy(g->x + g->n * tr->dim, x, tr->dim * sizeof *g->x);
    g->label[g->n++] = label;
}

void nx_trainer_set_clock(nx_trainer_t *tr, int64_t ms) {
    if (ms > tr->clock_ms)
        tr->clock_ms = ms;
}

/* Replay: the newest segment stamped at or before t_ms - lag_ms, but at
 * most NX_TRAINER_MAX_LAG behind the last pushed. Stamps never decrease
 * and neither does t_ms, so the answer only moves forward: it starts from
 * the last one. The stamps of the segments after it are all still in the
 * ring (at most NX_TRAINER_MAX_LAG of them). */
static int64_t replay_need(nx_trainer_t *tr, int64_t t_ms) {
    int64_t last = atomic_load(&tr->pushed) - 1, need = tr->need;
    if (need < last - NX_TRAINER_MAX_LAG)
        need = last - NX_TRAINER_MAX_LAG;
    if (t_ms >= INT64_MIN + tr->lag_ms) { /* t_ms - lag_ms does not overflow */
        int64_t cut = t_ms - tr->lag_ms;
        while (need < last && tr->stamp_ms[(need + 1) % NX_TRAINER_NSLOT] <= cut)
            need++;
    }
    tr->need = need;
    return need;
}

nx_mlp_predictor_t *nx_trainer_predictor(nx_trainer_t *tr, int64_t t_ms) {
    int64_t need;
    if (tr->live) {
        need = atomic_load(&tr->trained); /* the newest snapshot, without waiting */
    } else {
        need = replay_need(tr, t_ms);
        if (need >= 0 && atomic_load(&tr->trained) < need) {
            pthread_mutex_lock(&tr->mu);
            while (atomic_load(&tr->trained) < need)
                pthread_cond_wait(&tr->cond, &tr->mu);
            pthread_mutex_unlock(&tr->mu);
        }
    }
    if (need < 0)
        return tr->initial;
    /* Replay: the trainer is at most at segment pushed - 1 <= need +
     * MAX_LAG, so slot need % NSLOT holds exactly snapshot `need`: acquire
     * takes it.
     * (Live, a newer one may have replaced it: still a whole snapshot.) */
    nx_mlp_predictor_t *pred = tr->slot[need % NX_TRAINER_NSLOT];
    nx_mlp_predictor_acquire(pred);
    return pred;
}

void nx_trainer_sync(nx_trainer_t *tr) {
    if (!tr->started || tr->idle)
        return; /* idle: also true in a forked child, which has no trainer */
    int64_t pushed = atomic_load(&tr->pushed);
    if (atomic_load(&tr->trained) + 1 >= pushed)
        return;
    pthread_mutex_lock(&tr->mu);
    while (atomic_load(&tr->trained) + 1 < pushed)
        pthread_cond_wait(&tr->cond, &tr->mu);
    pthread_mutex_unlock(&tr->mu);
}

void nx_trainer_quiesce(nx_trainer_t *tr) {
    /* Live, the loop waits here (a checkpoint's fork): for the segment in
     * training only, the queued ones are dropped, counted as shed (their
     * guard commands still apply). */
    if (tr->live)
        atomic_store(&tr->skip_below, atomic_load(&tr->pushed));
    nx_trainer_sync(tr);
    tr->idle = 1;
}

void nx_trainer_finish(nx_trainer_t *tr) {
    if (tr->fill->n)
        nx_trainer_push(tr);
    nx_trainer_sync(tr);
    train_flush(tr); /* the trainer is idle: its state is ours */
}

uint64_t nx_trainer_steps(const nx_trainer_t *tr) {
    return atomic_load(&tr->steps);
}

uint64_t nx_trainer_kept(const nx_trainer_t *tr) {
    return atomic_load(&tr->kept);
}

uint64_t nx_trainer_shed(const nx_trainer_t *tr) {
    return atomic_load_explicit(&tr->shed, memory_order_relaxed);
}

void nx_trainer_step_hist(const nx_trainer_t *tr, nx_trainer_step_hist_t *h) {
    memset(h, 0, sizeof *h);
    for (int b = 0; b < NX_TRAINER_STEP_BUCKETS; b++) {
        h->le[b] = b < NX_TRAINER_STEP_BUCKETS - 1 ? (double)step_le_ns[b] / 1e9 : INFINITY;
        if (!tr)
            continue;
        h->count[b] = atomic_load_explicit(&tr->step_count[b], memory_order_relaxed);
        h->n += h->count[b];
    }
    if (tr)
        h->sum_s = (double)atomic_load_explicit(&tr->step_ns, memory_order_relaxed) / 1e9;
}

/* ---- checkpoints ------------------------------------------------------------- */

int nx_trainer_save(const nx_trainer_t *tr, nx_stream_write_fn write, void *w) {
    int32_t tn = tr ? tr->tn : 0;
    uint64_t fn = tr ? tr->fill->n : 0;
    int rc = write(w, &tn, sizeof tn);
    if (tn) {
        rc |= write(w, tr->tx, (size_t)tn * tr->dim * sizeof *tr->tx);
        rc |= write(w, tr->ty, (size_t)tn * sizeof *tr->ty);
    }
    rc |= write(w, &fn, sizeof fn);
    if (fn) {
        rc |= write(w, tr->fill->x, fn * tr->dim * sizeof *tr->fill->x);
        rc |= write(w, tr->fill->label, fn * sizeof *tr->fill->label);
    }
    return rc ? -1 : 0;
}

int nx_trainer_load(nx_trainer_t *tr, nx_stream_read_fn read, void *r) {
    int32_t tn;
    uint64_t fn;
    if (read(r, &tn, sizeof tn) < 0 || tn < 0 ||
        (tn &&
         (!tr || tn > tr->tcap || read(r, tr->tx, (size_t)tn * tr->dim * sizeof *tr->tx) < 0 ||
          read(r, tr->ty, (size_t)tn * sizeof *tr->ty) < 0)) ||
        read(r, &fn, sizeof fn) < 0 ||
        (fn && (!tr || fn > tr->fill->cap ||
                read(r, tr->fill->x, fn * tr->dim * sizeof *tr->fill->x) < 0 ||
                read(r, tr->fill->label, fn * sizeof *tr->fill->label) < 0)))
        return -1;
    if (tr) {
        tr->tn = tn;
        tr->fill->n = fn;
    }
    return 0;
}

void nx_trainer_reset(nx_trainer_t *tr) {
    nx_trainer_sync(tr);
    /* the trainer is idle: restart the segment count at 0 */
    atomic_store(&tr->pushed, 0);
    atomic_store(&tr->trained, -1);
    atomic_store(&tr->skip_below, 0);
    tr->clock_ms = INT64_MIN;
    tr->need = -1;
    tr->fill = &tr->seg[0];
    tr->fill->n = 0;
    tr->fill->cmd = 0;
    tr->tn = 0;
    tr->snap_valid = 0;
}

void nx_trainer_adopt(nx_trainer_t *tr) {
    nx_mlp_publish(tr->mlp, tr->initial);
    nx_mlp_predictor_acquire(tr->initial);
    for (int i = 0; i < NX_TRAINER_NSLOT; i++)
        nx_mlp_publish(tr->mlp, tr->slot[i]);
    atomic_store(&tr->steps, nx_mlp_step(tr->mlp));
}
