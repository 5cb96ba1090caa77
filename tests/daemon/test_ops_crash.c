/*
 * test_ops_crash: kill -9 and restart on the real broker; state and input
 * must agree through checkpoints.
 *
 * 300k generated events on one input topic x 4 partitions (keyed by user).
 * Two groups consume them with `nextactd run`, each into its own output
 * topic:
 * - the reference: one uninterrupted run;
 * - the crash run: checkpoints every second, `kill -9` at 5 random moments
 *   (a fixed-seed schedule, 2-9 s after each start: during the group join,
 *   mid-stream, or during a background checkpoint write), a restart after
 *   each, then a run to the end.
 * Both end with SIGTERM (exit 0) once every input offset has a prediction
 * in their output, dumping the store (NX_DEBUG_DUMP_STORE, every user
 * sorted by hash); their committed offsets are then the end offsets.
 * Checks:
 * - every input offset has at least one prediction in the crash run's
 *   output (none lost); duplicates are counted and printed;
 * - the reference has exactly one per offset;
 * - the per-user feature state (windows, last-event times, session,
 *   recent items and categories) of the crash run equals the reference's,
 *   user for user (both runs share one user-id hash key), the pending
 *   example left out; compared only when neither run had a late or
 *   dropped event, otherwise reported (nx_drun_compare says why).
 * Events re-read after a crash (offsets between the checkpoint and the
 * crash) must not count twice in any window: that holds only because state
 * and offsets come from the same checkpoint.
 *
 * usage: test_ops_crash NEXTACTD SOURCE_DIR [EVENTS]
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "drun.h"

#define KILLS 5

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_ops_crash NEXTACTD SOURCE_DIR [EVENTS]\n");
        return 2;
    }
    long long n_events = argc > 3 ? atoll(argv[3]) : 300000;
    nx_drun_t dr;
    char ref_out[128], crash_out[128];
    if (nx_drun_init(&dr, argv[1], argv[2], "test_ops_crash") < 0 ||
        nx_drun_topic("crash-ref-out", ref_out, sizeof ref_out) < 0 ||
        nx_drun_topic("crash-out", crash_out, sizeof crash_out) < 0)
        return 1;
    CHECK_INT(nx_drun_produce(&dr, n_events), 0);
    CHECK_INT(nx_drun_write_conf(&dr, &(nx_drun_conf_t){.name = "ref", .out_topic = ref_out}), 0);
    CHECK_INT(nx_drun_write_conf(
                  &dr, &(nx_drun_conf_t){.name = "crash", .out_topic = crash_out, .interval_s = 1}),
              0);
    char ref_dump[300], crash_dump[300];
    snprintf(ref_dump, sizeof ref_dump, "%s/ref.dump", dr.dir);
    snprintf(crash_dump, sizeof crash_dump, "%s/crash.dump", dr.dir);
    CHECK_INT(nx_drun_commit_zero(&dr, "ref"), 0);
    CHECK_INT(nx_drun_commit_zero(&dr, "crash"), 0);
    nx_drun_out_t *ref_o = nx_drun_out_new(&dr, ref_out);
    nx_drun_out_t *crash_o = nx_drun_out_new(&dr, crash_out);
    CHECK(ref_o && crash_o);
    if (!ref_o || !crash_o)
        return nx_check_exit("test_ops_crash");

    /* the crash run first and the reference meanwhile: both consume the
     * same input, each in its own group */
    pid_t ref = nx_drun_start(&dr, "ref", ref_dump, 0);
    int64_t ref_start = nx_drun_mono_ms();
    uint64_t rng = 0x2545f4914f6cdd1dULL;
    int64_t t0 = nx_drun_mono_ms();
    pid_t pid = nx_drun_start(&dr, "crash", NULL, 0);
    int64_t last_start = nx_drun_mono_ms();
    for (int k = 0; k < KILLS; k++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        useconds_t wait_ms = (useconds_t)(2000 + rng % 7000); /* 2-9 s */
        usleep(wait_ms * 1000);
        CHECK(nx_drun_kill(pid));
        fprintf(stderr, "kill -9 #%d after %u ms (%.1f s into the run)\n", k + 1, wait_ms,
                (double)(nx_drun_mono_ms() - t0) / 1000);
        pid = nx_drun_start(&dr, "crash", k == KILLS - 1 ? crash_dump : NULL, 0);
        last_start = nx_drun_mono_ms();
    }
    CHECK_INT(nx_drun_finish(crash_o, pid, last_start, 240000, "crash"), 0);
    CHECK(nx_drun_committed_at_end(&dr, "crash"));
    CHECK_INT(nx_drun_finish(ref_o, ref, ref_start, 240000, "ref"), 0);
    CHECK(nx_drun_committed_at_end(&dr, "ref"));
    fprintf(stderr, "crash run done %.1f s after its first start\n",
            (double)(nx_drun_mono_ms() - t0) / 1000);

    CHECK_INT(nx_drun_out_drain(ref_o, 120000), 0);
    CHECK_INT(nx_drun_out_drain(crash_o, 120000), 0);
    fprintf(stderr,
            "reference: %lld predictions, %lld duplicates, %lld missing; crash run: %lld "
            "predictions for %lld input events, %lld duplicates (%.2f%%), %lld missing\n",
            ref_o->got, ref_o->dups, ref_o->missing, crash_o->got, n_events, crash_o->dups,
            100.0 * (double)crash_o->dups / (double)n_events, crash_o->missing);
    CHECK_INT(ref_o->missing, 0);
    CHECK_INT(ref_o->dups, 0);
    CHECK_INT(ref_o->bad + crash_o->bad, 0);
    CHECK_INT(crash_o->missing, 0);
    CHECK_INT(crash_o->got, n_events + crash_o->dups);

    nx_drun_state_t st;
    CHECK_INT(nx_drun_compare(ref_dump, crash_dump, "crash run", 0, &st), 0);
    CHECK(st.users_ref > 1000);
    CHECK(st.late_ref >= 0 && st.late_run >= 0 && st.dropped_ref >= 0 && st.dropped_run >= 0);
    if (st.comparable)
        CHECK_INT(st.diff, 0);
    nx_drun_out_destroy(ref_o);
    nx_drun_out_destroy(crash_o);
    nx_drun_cleanup(&dr, nx_check_failures, (const char *[]){"crash", NULL});
    return nx_check_exit("test_ops_crash");
}
