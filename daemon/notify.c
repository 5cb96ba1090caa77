/* notify.c: sd_notify READY / STATUS / WATCHDOG / STOPPING (notify.h). */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "log.h"

struct nx_notify {
    int enabled;         /* $NOTIFY_SOCKET set */
    int64_t watchdog_ms; /* systemd's interval, 0 = off */
    int64_t last_ping;   /* monotonic ms of the last WATCHDOG=1, 0 = never */
};

nx_notify_t *nx_notify_new(void) {
    nx_notify_t *notify = calloc(1, sizeof *notify);
    if (!notify)
        return NULL;
    notify->enabled = getenv("NOTIFY_SOCKET") != NULL;
    uint64_t usec = 0;
    /* unset_environment = 0: children (the checkpoint writer) never ping,
     * since they _exit() without reaching the loop */
    if (sd_watchdog_enabled(0, &usec) > 0)
        notify->watchdog_ms = (int64_t)(usec / 1000);
    if (notify->watchdog_ms > 0)
        nx_info("systemd watchdog: %lld ms, pinging every %lld ms", (long long)notify->watchdog_ms,
                (long long)notify->watchdog_ms / 2);
    return notify;
}

void nx_notify_destroy(nx_notify_t *notify) {
    free(notify);
}

static void send_state(const nx_notify_t *notify, const char *state) {
    if (!notify || !notify->enabled)
        return;
    int rc = sd_notify(0, state);
    if (rc < 0)
        NX_LOG_RL(NX_LOG_WARNING, "sd_notify: error %d", rc);
}

void nx_notify_ready(nx_notify_t *notify) {
    send_state(notify, "READY=1");
}

void nx_notify_status(nx_notify_t *notify, const char *status) {
    /* "STATUS=" + 255 bytes: systemctl shows one line anyway */
    char buf[7 + 256];
    snprintf(buf, sizeof buf, "STATUS=%s", status);
    send_state(notify, buf);
}

void nx_notify_watchdog(nx_notify_t *notify, int64_t now_mono_ms) {
    if (!notify || notify->watchdog_ms <= 0)
        return;
    /* half the interval, as sd_watchdog_enabled(3) recommends: one late
     * iteration does not get the service killed */
    if (notify->last_ping && now_mono_ms - notify->last_ping < notify->watchdog_ms / 2)
        return;
    notify->last_ping = now_mono_ms;
    send_state(notify, "WATCHDOG=1");
}

void nx_notify_stopping(nx_notify_t *notify) {
    send_state(notify, "STOPPING=1");
}
