/*
 * notify.h: the daemon's side of systemd's service notification protocol
 * (sd_notify(3)): READY=1, STATUS=..., WATCHDOG=1, STOPPING=1.
 *
 * Guarantees: without $NOTIFY_SOCKET (not under systemd, or Type=simple)
 * every call is a cheap no-op. Watchdog pings are sent at most once per half
 * of the interval systemd asks for ($WATCHDOG_USEC, only when $WATCHDOG_PID
 * is ours), and only from nx_notify_watchdog(), which the main loop calls
 * once per iteration: a loop that stops iterating stops pinging, and systemd
 * restarts the service (WatchdogSec, Restart=on-failure).
 *
 * Ownership: the caller owns nx_notify_t (nx_notify_new / nx_notify_destroy).
 * Threads: main thread only. Nothing here allocates after nx_notify_new.
 */
#ifndef NX_NOTIFY_H
#define NX_NOTIFY_H

#include <stdint.h>

typedef struct nx_notify nx_notify_t;

/* Reads the watchdog interval from the environment. NULL only on OOM. */
nx_notify_t *nx_notify_new(void);
void nx_notify_destroy(nx_notify_t *notify);

/* Start-up is complete (configuration, checkpoint, consumer). */
void nx_notify_ready(nx_notify_t *notify);

/* STATUS= line shown by `systemctl status` (truncated to 255 bytes). */
void nx_notify_status(nx_notify_t *notify, const char *status);

/* WATCHDOG=1 if half the watchdog interval passed since the last ping.
 * now_mono_ms: monotonic clock. */
void nx_notify_watchdog(nx_notify_t *notify, int64_t now_mono_ms);

/* Shutdown has begun. */
void nx_notify_stopping(nx_notify_t *notify);

#endif /* NX_NOTIFY_H */
