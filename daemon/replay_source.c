/* replay_source.c: format sniffing and dispatch of replay inputs
 * (replay_source.h). */
#include "replay_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "csv_reader.h"
#include "ocf.h"
#include "ocf_reader.h"

struct nx_replay_source {
    FILE *fp;
    char *path;
    nx_replay_stats_t st;
    nx_ocf_reader_t *ocf; /* exactly one of ocf and csv, once open */
    nx_csv_reader_t *csv;
};

const nx_replay_stats_t *nx_replay_source_stats(const nx_replay_source_t *src) {
    return &src->st;
}

const char *nx_replay_source_format(const nx_replay_source_t *src) {
    return src->ocf ? "ocf" : "csv";
}

const char *nx_replay_source_error(const nx_replay_source_t *src) {
    return src->ocf ? nx_ocf_reader_error(src->ocf) : nx_csv_reader_error(src->csv);
}

int nx_replay_source_next(nx_replay_source_t *src, nx_event_t *evs, int max, int64_t now_ms) {
    if (max <= 0)
        return 0;
    return src->ocf ? nx_ocf_reader_next(src->ocf, evs, max, now_ms)
                    : nx_csv_reader_next(src->csv, evs, max, now_ms);
}

void nx_replay_source_close(nx_replay_source_t *src) {
    if (!src)
        return;
    nx_ocf_reader_destroy(src->ocf);
    nx_csv_reader_destroy(src->csv);
    if (src->fp && src->fp != stdin)
        fclose(src->fp);
    free(src->path);
    free(src);
}

nx_replay_source_t *nx_replay_source_open(const nx_config_t *cfg, nx_codec_t *codec,
                                          const char *path, char *errstr, size_t errstr_size) {
    nx_replay_source_t *src = calloc(1, sizeof *src);
    if (!src || !(src->path = strdup(path))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    src->fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!src->fp) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto err;
    }
    struct stat sb;
    if (fstat(fileno(src->fp), &sb) == 0 && S_ISREG(sb.st_mode))
        src->st.file_size = (uint64_t)sb.st_size;

    /* Sniff: an OCF starts with its magic. Peeked with getc/ungetc so that
     * stdin works for CSV. */
    int is_ocf = 0;
    int c0 = getc(src->fp);
    if (c0 != EOF)
        ungetc(c0, src->fp);
    if (c0 == 'O' && src->fp != stdin) {
        uint8_t m[NX_OCF_MAGIC_LEN] = {0};
        size_t got = fread(m, 1, NX_OCF_MAGIC_LEN, src->fp);
        rewind(src->fp);
        is_ocf = got == NX_OCF_MAGIC_LEN && memcmp(m, nx_ocf_magic, NX_OCF_MAGIC_LEN) == 0;
    }
    if (is_ocf)
        src->ocf = nx_ocf_reader_new(codec, src->fp, src->path, &src->st, errstr, errstr_size);
    else
        src->csv = nx_csv_reader_new(cfg, codec, src->fp, src->path, &src->st, errstr, errstr_size);
    if (!src->ocf && !src->csv)
        goto err;
    return src;
err:
    nx_replay_source_close(src);
    return NULL;
}
