/*
 * refrun.h: the reference run of the integration tests that hold a daemon
 * which was killed, fenced, starved or rebalanced against one that was not
 * (test_txn, test_ops_durable).
 *
 * The reference is one uninterrupted at-least-once `nextactd run` of a set
 * (drun.h) named "ref", in its own group "ref" (committed at offset 0 on
 * every partition before it starts), into an output topic of its own,
 * started beside the daemons under test. When it stops it dumps its store
 * to <dir>/ref.dump, the dump every tested run's is compared with.
 *
 * Checks: these functions cannot count into a test's check.h counters
 * (they are private to each test file), so each returns the number of its
 * expectations that failed, having printed every one on stderr with the
 * expression, and the test CHECKs that number is 0. What is expected
 * beyond the common core is chosen once, at nx_refrun_start, from the
 * NX_REFRUN_* flags, so each test keeps its own strictness.
 *
 * One thread calls them; every call blocks, with bounded timeouts. The
 * caller owns the nx_refrun_t (zero it before the first call) and the set,
 * which must outlive it.
 */
#ifndef NX_REFRUN_H
#define NX_REFRUN_H

#include <stdint.h>
#include <sys/types.h>

#include "drun.h"

/* Expectations added to the common core (see the functions). */
enum {
    /* nx_refrun_finish: exactly one prediction per input offset (no
     * duplicate and no bad record), not only none missing */
    NX_REFRUN_ONCE = 1 << 0,
    /* nx_refrun_finish: the group's committed offsets are the input's end
     * offsets once the reference has stopped */
    NX_REFRUN_COMMITTED = 1 << 1,
    /* nx_refrun_check_state: both dumps carry the late and dropped
     * counters */
    NX_REFRUN_COUNTERS = 1 << 2,
};

typedef struct nx_refrun {
    const nx_drun_t *dr; /* the set; not owned */
    unsigned checks;     /* NX_REFRUN_* */
    pid_t pid;           /* the daemon; 0: not started */
    int64_t started_ms;  /* its start, nx_drun_mono_ms */
    nx_drun_out_t *out;  /* its output, owned until nx_refrun_finish or _kill */
    char dump[300];      /* <dir>/ref.dump, written when it stops */
} nx_refrun_t;

/* Writes the configuration "ref" (checkpoint interval 0: an uninterrupted
 * run needs no checkpoint), creates its output topic (named from
 * topic_prefix, see nx_drun_topic), commits offset 0 for the group "ref",
 * starts reading the output and starts the daemon. 0, or -1 (said on
 * stderr); after -1 too, nx_refrun_kill cleans up. */
int nx_refrun_start(nx_refrun_t *ref, const nx_drun_t *dr, const char *topic_prefix,
                    unsigned checks);

/* Runs the reference to the end (nx_drun_finish, up to timeout_ms) and
 * reads its output to its end (nx_drun_out_drain, 120 s), prints its
 * figures and frees the output. Expected: exit status 0, the output's end
 * reached, no input offset without a prediction, and what ref->checks
 * adds. Returns the number of failed expectations. Call once, after
 * nx_drun_produce_wait. */
int nx_refrun_finish(nx_refrun_t *ref, int timeout_ms);

/* Compares the store dump of a tested run (label names it) with the
 * reference's (nx_drun_compare, strict as there), after nx_refrun_finish.
 * Expected: both dumps readable, more than 1000 users in the reference's,
 * as many in the run's, no differing feature-state line when the
 * comparison is meaningful (comparable), and what ref->checks adds.
 * Returns the number of failed expectations. */
int nx_refrun_check_state(const nx_refrun_t *ref, const char *dump, const char *label, int strict);

/* A test that ends early: kills the reference if it runs and frees its
 * output. Does nothing on a zeroed or finished nx_refrun_t. */
void nx_refrun_kill(nx_refrun_t *ref);

#endif /* NX_REFRUN_H */
