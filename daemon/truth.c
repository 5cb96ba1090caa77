/* truth.c: the generator's truth file beside a replay (truth.h). */
#include "truth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mlp.h" /* NX_MLP_MAX_CLASSES */

/* The fixed leading columns: index, user, ts, type. */
#define LEAD_COLS 4
/* Columns a row may hold at most (the lead ones and a probability per
 * class). */
#define MAX_COLS (LEAD_COLS + NX_MLP_MAX_CLASSES)

struct nx_truth {
    FILE *f;
    char *path;
    char *line; /* getline's buffer */
    size_t cap;
    unsigned long long row; /* rows read, the header not counted */
    int K;
    int col[NX_MLP_MAX_CLASSES]; /* the column of class k */
};

/* Splits line (modified) at commas into at most MAX_COLS fields; returns
 * their number, the trailing newline dropped. */
static int split(char *line, char *field[MAX_COLS]) {
    line[strcspn(line, "\r\n")] = '\0';
    int n = 0;
    for (char *p = line; n < MAX_COLS;) {
        field[n++] = p;
        char *c = strchr(p, ',');
        if (!c)
            return n;
        *c = '\0';
        p = c + 1;
    }
    return MAX_COLS + 1; /* more than a row can hold */
}

nx_truth_t *nx_truth_open(const char *path, const char *const *class_names, int K, char *errstr,
                          size_t errstr_size) {
    nx_truth_t *t = calloc(1, sizeof *t);
    if (!t || K < 2 || K > NX_MLP_MAX_CLASSES) {
        if (t)
            nx_errf(errstr, errstr_size, "truth: %d classes", K);
        else
            nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    t->K = K;
    if (!(t->path = strdup(path))) {
        nx_errf(errstr, errstr_size, "out of memory");
        goto err;
    }
    if (!(t->f = fopen(path, "r"))) {
        nx_errf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto err;
    }
    char *field[MAX_COLS];
    if (getline(&t->line, &t->cap, t->f) < 0) {
        nx_errf(errstr, errstr_size, "%s: empty, not a truth file", path);
        goto err;
    }
    int n = split(t->line, field);
    if (n < LEAD_COLS + K || n > MAX_COLS || strcmp(field[0], "index") != 0 ||
        strcmp(field[1], "user") != 0 || strcmp(field[2], "ts") != 0) {
        nx_errf(errstr, errstr_size,
                "%s: not a truth file (header index,user,ts,type,p_<class>... expected)", path);
        goto err;
    }
    for (int k = 0; k < K; k++) {
        t->col[k] = -1;
        for (int c = LEAD_COLS; c < n; c++)
            if (strncmp(field[c], "p_", 2) == 0 && strcmp(field[c] + 2, class_names[k]) == 0)
                t->col[k] = c;
        if (t->col[k] < 0) {
            nx_errf(errstr, errstr_size, "%s: no column p_%s", path, class_names[k]);
            goto err;
        }
    }
    return t;
err:
    nx_truth_close(t);
    return NULL;
}

int nx_truth_next(nx_truth_t *t, const nx_event_t *ev, float *p, char *errstr, size_t errstr_size) {
    char *field[MAX_COLS];
    if (getline(&t->line, &t->cap, t->f) < 0)
        return nx_errf(errstr, errstr_size, "%s: no row for event %llu (the file has %llu)",
                       t->path, t->row + 1, t->row);
    t->row++;
    int n = split(t->line, field);
    if (n < LEAD_COLS + t->K || n > MAX_COLS)
        return nx_errf(errstr, errstr_size, "%s: row %llu: %d columns", t->path, t->row, n);
    char *end;
    errno = 0;
    long long ts = strtoll(field[2], &end, 10);
    if (strlen(field[1]) != ev->user_id_len ||
        memcmp(field[1], ev->user_id, ev->user_id_len) != 0 || *end || errno || ts != ev->ts_ms)
        return nx_errf(errstr, errstr_size,
                       "%s: row %llu is not the stream's event %llu (user %s at %s, the "
                       "event's: %.*s at %lld): a truth file of another stream?",
                       t->path, t->row, t->row, field[1], field[2], (int)ev->user_id_len,
                       ev->user_id, (long long)ev->ts_ms);
    for (int k = 0; k < t->K; k++) {
        double v = strtod(field[t->col[k]], &end);
        if (*end || !(v >= 0.0 && v <= 1.0))
            return nx_errf(errstr, errstr_size, "%s: row %llu: bad probability \"%s\"", t->path,
                           t->row, field[t->col[k]]);
        p[k] = (float)v;
    }
    return 0;
}

void nx_truth_close(nx_truth_t *t) {
    if (!t)
        return;
    if (t->f)
        fclose(t->f);
    free(t->line);
    free(t->path);
    free(t);
}
