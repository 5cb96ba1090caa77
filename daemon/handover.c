/* handover.c: a revoked partition's users on local disk (handover.h). */
#include "handover.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define HANDOVER_MAGIC   0x4f48584eu /* "NXHO" */
#define HANDOVER_VERSION 2u

static int file_write(void *opaque, const void *buf, size_t len) {
    return fwrite(buf, 1, len, opaque) == len ? 0 : -1;
}

static int file_read(void *opaque, void *buf, size_t len) {
    return fread(buf, 1, len, opaque) == len ? 0 : -1;
}

static void path_of(const nx_handover_t *ho, int32_t partition, char *buf, size_t size) {
    snprintf(buf, size, "%s/p%d.nxs", ho->dir, (int)partition);
}

int nx_handover_init(nx_handover_t *ho, const char *state_dir, char *errstr, size_t errstr_size) {
    snprintf(ho->dir, sizeof ho->dir, "%s/handover", state_dir);
    if (mkdir(ho->dir, 0700) < 0 && errno != EEXIST)
        return nx_errf(errstr, errstr_size, "%.900s: %s", ho->dir, strerror(errno));
    DIR *d = opendir(ho->dir);
    if (!d)
        return nx_errf(errstr, errstr_size, "%.900s: %s", ho->dir, strerror(errno));
    struct dirent *de;
    char path[8192];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", ho->dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    return 0;
}

long long nx_handover_save(const nx_handover_t *ho, nx_pipeline_t *pipe, nx_offsets_t *offs,
                           int32_t partition, const int *topics, int n) {
    char path[4200], tmp[4300];
    path_of(ho, partition, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = f ? 0 : -1, saved_errno = f ? 0 : errno;
    if (f) {
        uint32_t head[3] = {HANDOVER_MAGIC, HANDOVER_VERSION, (uint32_t)n};
        rc |= file_write(f, head, sizeof head);
        for (int i = 0; i < n; i++) {
            const nx_kafka_offset_t *o = nx_offsets_find(offs, topics[i], partition, 0);
            int64_t next = o ? o->offset : -1;
            const char *name = offs->topics[topics[i]];
            uint16_t nl = (uint16_t)strlen(name);
            rc |= file_write(f, &nl, sizeof nl) | file_write(f, name, nl) |
                  file_write(f, &next, sizeof next);
        }
        rc |= nx_pipeline_save_partition(pipe, partition, file_write, f);
        if (rc == 0 && fflush(f) != 0)
            rc = -1;
        if (rc)
            saved_errno = errno;
        if (fclose(f) != 0 && !rc) {
            rc = -1;
            saved_errno = errno;
        }
    }
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -1;
        saved_errno = errno;
    }
    if (rc < 0) {
        /* keep the users and their offsets: if the partition comes back
         * here, nothing was lost; elsewhere, its new owner starts from the
         * committed offsets */
        nx_err("hand-over: cannot save partition %d to %s: %s; keeping its users", (int)partition,
               path, saved_errno ? strerror(saved_errno) : "write failed");
        unlink(tmp);
        return -1;
    }
    size_t dropped = nx_pipeline_drop_partition(pipe, partition);
    for (int i = 0; i < n; i++)
        nx_offsets_remove(offs, topics[i], partition);
    nx_info("hand-over: partition %d: %zu user(s) saved to %s", (int)partition, dropped, path);
    return (long long)dropped;
}

int nx_handover_restore(const nx_handover_t *ho, nx_pipeline_t *pipe, nx_offsets_t *offs,
                        int32_t partition) {
    char path[4200], err[512] = "bad header";
    path_of(ho, partition, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint32_t head[3] = {0};
    int ok = file_read(f, head, sizeof head) == 0 && head[0] == HANDOVER_MAGIC &&
             head[1] == HANDOVER_VERSION && head[2] <= NX_OFFSETS_MAX;
    /* offsets go to the map only once the users are restored */
    nx_kafka_offset_t got[NX_OFFSETS_MAX];
    int n_got = 0;
    for (uint32_t i = 0; ok && i < head[2]; i++) {
        uint16_t nl;
        char name[256];
        int64_t next;
        ok = file_read(f, &nl, sizeof nl) == 0 && nl < sizeof name && file_read(f, name, nl) == 0 &&
             file_read(f, &next, sizeof next) == 0;
        name[ok ? nl : 0] = '\0';
        int topic = ok ? nx_offsets_topic(offs, name) : -1;
        if (topic >= 0 && next >= 0)
            got[n_got++] = (nx_kafka_offset_t){topic, partition, next};
    }
    if (ok && nx_pipeline_restore_partition(pipe, file_read, f, err, sizeof err) < 0)
        ok = 0;
    fclose(f);
    unlink(path);
    if (!ok) {
        nx_err("hand-over: %s unreadable (%s); partition %d starts from its committed offset", path,
               err, (int)partition);
        return -1;
    }
    for (int i = 0; i < n_got; i++) {
        nx_kafka_offset_t *o = nx_offsets_find(offs, got[i].topic, partition, 1);
        if (o)
            o->offset = got[i].offset;
    }
    nx_info("hand-over: partition %d restored from %s", (int)partition, path);
    return 1;
}
