/* refrun.c: the reference run of the integration tests (refrun.h). */
#include "refrun.h"

#include <stdio.h>

/* One expectation: a failed one is said with where and what, and counted
 * in the caller's `failed`. */
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failed++;                                                                              \
            fprintf(stderr, "%s:%d: reference run: expected %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                                          \
    } while (0)

int nx_refrun_start(nx_refrun_t *ref, const nx_drun_t *dr, const char *topic_prefix,
                    unsigned checks) {
    char topic[128];
    ref->dr = dr;
    ref->checks = checks;
    snprintf(ref->dump, sizeof ref->dump, "%s/ref.dump", dr->dir);
    if (nx_drun_topic(topic_prefix, topic, sizeof topic) < 0 ||
        nx_drun_write_conf(dr, &(nx_drun_conf_t){.name = "ref", .out_topic = topic}) < 0 ||
        nx_drun_commit_zero(dr, "ref") < 0 || !(ref->out = nx_drun_out_new(dr, topic)))
        return -1;
    pid_t pid = nx_drun_start(dr, "ref", ref->dump, 0);
    if (pid <= 0)
        return -1;
    ref->pid = pid;
    ref->started_ms = nx_drun_mono_ms();
    return 0;
}

int nx_refrun_finish(nx_refrun_t *ref, int timeout_ms) {
    int failed = 0;
    nx_drun_out_t *out = ref->out;
    EXPECT(nx_drun_finish(out, ref->pid, ref->started_ms, timeout_ms, "ref") == 0);
    ref->pid = 0; /* reaped, whatever it returned */
    if (ref->checks & NX_REFRUN_COMMITTED)
        EXPECT(nx_drun_committed_at_end(ref->dr, "ref"));
    EXPECT(nx_drun_out_drain(out, 120000) == 0);
    fprintf(stderr, "reference: %lld predictions, %lld duplicates, %lld missing, %lld bad\n",
            out->got, out->dups, out->missing, out->bad);
    EXPECT(out->missing == 0);
    if (ref->checks & NX_REFRUN_ONCE) {
        EXPECT(out->dups == 0);
        EXPECT(out->bad == 0);
    }
    nx_drun_out_destroy(out);
    ref->out = NULL;
    return failed;
}

int nx_refrun_check_state(const nx_refrun_t *ref, const char *dump, const char *label, int strict) {
    int failed = 0;
    nx_drun_state_t st;
    EXPECT(nx_drun_compare(ref->dump, dump, label, strict, &st) == 0);
    EXPECT(st.users_ref > 1000);
    EXPECT(st.users_run == st.users_ref);
    if (ref->checks & NX_REFRUN_COUNTERS)
        EXPECT(st.late_ref >= 0 && st.late_run >= 0 && st.dropped_ref >= 0 && st.dropped_run >= 0);
    if (st.comparable)
        EXPECT(st.diff == 0);
    return failed;
}

void nx_refrun_kill(nx_refrun_t *ref) {
    nx_drun_kill(ref->pid);
    ref->pid = 0;
    nx_drun_out_destroy(ref->out);
    ref->out = NULL;
}
