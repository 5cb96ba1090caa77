/*
 * test_ops_systemd: the systemd unit and the install rules.
 *
 * - `systemd-analyze verify` is clean on the configured unit (ExecStart
 *   pointed at the built binary, since verify checks it is executable);
 * - `systemd-analyze security --offline=true` rates it 1.5 or lower ("OK");
 * - the unit has what operations rely on (Type=notify, WatchdogSec, ...);
 * - `cmake --install` with DESTDIR puts binary, unit, configuration and
 *   schemas in their places (the configuration under the prefix, in /etc
 *   for the /usr prefix), the unit naming them.
 * Without systemd-analyze the first two are skipped (reported).
 *
 * usage: test_ops_systemd BUILD_DIR NEXTACTD UNIT PREFIX
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Runs cmd, output into buf; returns the exit status. */
static int run(const char *cmd, char *buf, size_t size) {
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(buf, 1, size - 1, p);
    buf[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *dir, const char *rel) {
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return stat(path, &sb) == 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: test_ops_systemd BUILD_DIR NEXTACTD UNIT PREFIX\n");
        return 2;
    }
    const char *build = argv[1], *nextactd = argv[2], *unit = argv[3], *prefix = argv[4];
    char dir[] = "/tmp/test_ops_systemd.XXXXXX", cmd[4096], out[1 << 16];
    CHECK(mkdtemp(dir) != NULL);

    const char *text = slurp(unit);
    CHECK(text != NULL);
    static const char *want[] = {
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "WatchdogSec=",
        "StateDirectory=nextactd",
        "ConfigurationDirectory=nextactd",
        "DynamicUser=yes",
        "TimeoutStopSec=",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    };
    for (size_t i = 0; text && i < sizeof want / sizeof want[0]; i++)
        CHECK_STR_HAS(text, want[i]);

    /* the unit with ExecStart on the built binary */
    char local[1100];
    snprintf(local, sizeof local, "%s/nextactd.service", dir);
    snprintf(cmd, sizeof cmd, "sed 's#^ExecStart=[^ ]*#ExecStart=%s#' '%s' > '%s'", nextactd, unit,
             local);
    CHECK_INT(system(cmd), 0);
    if (system("command -v systemd-analyze >/dev/null 2>&1") == 0) {
        /* Documentation=man:... pages: the build's man directory */
        snprintf(cmd, sizeof cmd, "MANPATH='%s/man' systemd-analyze verify '%s' 2>&1", build,
                 local);
        int rc = run(cmd, out, sizeof out);
        CHECK_INT(rc, 0);
        CHECK_INT(strlen(out), 0); /* clean: not a single warning */
        if (out[0])
            fprintf(stderr, "verify said:\n%s", out);
        snprintf(cmd, sizeof cmd,
                 "systemd-analyze security --offline=true --no-pager '%s' 2>&1 | "
                 "sed -n 's/.*Overall exposure level for [^:]*: \\([0-9.]*\\) \\([A-Z]*\\).*/\\1 "
                 "\\2/p'",
                 local);
        run(cmd, out, sizeof out);
        double score = 99;
        char rating[32] = "";
        CHECK_INT(sscanf(out, "%lf %31s", &score, rating), 2);
        fprintf(stderr, "systemd-analyze security: %.1f %s\n", score, rating);
        CHECK(score <= 1.5);
        CHECK_STR_HAS(rating, "OK");
    } else {
        fprintf(stderr, "systemd-analyze not found: verify and security skipped\n");
    }

    /* install into DESTDIR */
    snprintf(cmd, sizeof cmd, "DESTDIR='%s/root' cmake --install '%s' >/dev/null", dir, build);
    CHECK_INT(system(cmd), 0);
    char root[1100], pre[2200], exec[2400];
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(pre, sizeof pre, "%s%s", root, prefix);
    CHECK(exists(pre, "bin/nextactd"));
    CHECK(exists(pre, "lib/systemd/system/nextactd.service"));
    /* the configuration under the prefix (/etc only for the /usr prefix) */
    int usr = strcmp(prefix, "/usr") == 0;
    CHECK(exists(usr ? root : pre, "etc/nextactd/nextactd.conf"));
    CHECK(exists(usr ? root : pre, "etc/nextactd/schemas/event.avsc"));
    CHECK(exists(usr ? root : pre, "etc/nextactd/schemas/prediction.avsc"));
    /* the installed unit runs the installed binary on the installed file */
    snprintf(cmd, sizeof cmd, "%s/lib/systemd/system/nextactd.service", pre);
    snprintf(exec, sizeof exec, "ExecStart=%s/bin/nextactd run -c %s/etc/nextactd/nextactd.conf",
             prefix, usr ? "" : prefix);
    CHECK_STR_HAS(slurp(cmd), exec);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
    return nx_check_exit("test_ops_systemd");
}
