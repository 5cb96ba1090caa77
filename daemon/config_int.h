/*
 * config_int.h: private to the configuration module (config.c, the loader;
 * config_table.c, the table; config_override.c, -X; config_rdkafka.c, the
 * librdkafka properties; config_dump.c, dump-config and man-config). Nothing
 * outside those files includes it: the public API is config.h.
 *
 * The table is the one description of every key; the loader's pieces below
 * are shared so that defaults, the file and -X overrides go through the same
 * type and range checks. Not thread-safe, like config.h.
 */
#ifndef NX_CONFIG_INT_H
#define NX_CONFIG_INT_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef enum nx_cfg_type {
    NX_CT_INT,     /* int64_t; min/max bound the value */
    NX_CT_DOUBLE,  /* double; min/max bound the value */
    NX_CT_BOOL,    /* int 0/1 */
    NX_CT_STRING,  /* char *; min/max bound the length */
    NX_CT_PATH,    /* char *; relative paths resolve against the file's dir */
    NX_CT_ENUM,    /* char *, one of `choices` */
    NX_CT_INTS,    /* nx_intlist_t; min/max bound each element */
    NX_CT_DOUBLES, /* nx_dbllist_t; min/max bound each element */
    NX_CT_STRINGS, /* nx_strlist_t; min/max bound each element's length */
    NX_CT_MAP,     /* nx_strmap_t of string values */
    NX_CT_RDKAFKA, /* nx_strmap_t of librdkafka properties */
} nx_cfg_type_t;

#define NX_CF_REQUIRED 1 /* no default: the file must set it */
#define NX_CF_SECRET   2 /* a password or key: dump-config masks it */

typedef struct nx_cfg_desc {
    const char *name; /* dotted path, groups first */
    nx_cfg_type_t type;
    size_t offset;
    const char *def; /* libconfig literal; NULL for required keys */
    double min, max;
    const char *choices; /* NX_CT_ENUM: "a|b|c" */
    int flags;
    const char *help;
} nx_cfg_desc_t;

#define OFF(field) offsetof(nx_config_t, field)

/* The table (config_table.c): nx_config_n_rows rows, in dump order. */
extern const nx_cfg_desc_t nx_config_table[];
extern const size_t nx_config_n_rows;

static inline void *nx_config_field(nx_config_t *cfg, const nx_cfg_desc_t *d) {
    return (char *)cfg + d->offset;
}

static inline const void *nx_config_cfield(const nx_config_t *cfg, const nx_cfg_desc_t *d) {
    return (const char *)cfg + d->offset;
}

/* Error context: the file name for messages, "(default)" for defaults. */
typedef struct nx_cfg_ctx {
    const char *file;
    const char *dir; /* directory of the file, for relative paths; NULL = cwd */
    char *errstr;
    size_t errstr_size;
    int no_line; /* a -X argument: "file" is the argument, with no line */
} nx_cfg_ctx_t;

/* config.c: the loader's pieces. */

/* Writes "file:line: message" to ctx->errstr; returns -1. */
int nx_config_fail(nx_cfg_ctx_t *ctx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Frees the map's strings and empties it. */
void nx_config_strmap_clear(nx_strmap_t *m);
/* Refuses integer literals in `text` that libconfig would silently wrap. */
int nx_config_scan_ints(nx_cfg_ctx_t *ctx, const char *text);
/* Reads group `s` into map `m` of row `d` (librdkafka's checks for
 * NX_CT_RDKAFKA rows); on error m holds what was read, caller clears it. */
int nx_config_get_map(nx_cfg_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                      nx_strmap_t *m);
/* Applies every setting under group `g` (named `prefix`) to cfg through the
 * table, marking the rows it sets in seen[]; unknown keys are errors. */
int nx_config_walk(nx_cfg_ctx_t *ctx, nx_config_t *cfg, const config_setting_t *g,
                   const char *prefix, bool *seen);

/* config_override.c: applies the n -X arguments over cfg, marking seen[];
 * copies them into cfg->overrides for nx_config_reload. */
int nx_config_overrides_apply(nx_config_t *cfg, const char *const *overrides, int n, bool *seen,
                              char *errstr, size_t errstr_size);

/* config_rdkafka.c */
#define NX_RDK_CONSUMER 1
#define NX_RDK_PRODUCER 2
#define NX_RDK_BOTH     (NX_RDK_CONSUMER | NX_RDK_PRODUCER)

/* Whether `list` ("a|b", or a property's comma list when sep is ',') holds
 * `word`, case-insensitively. */
bool nx_config_list_has(const char *list, char sep, const char *word);
/* librdkafka's verdict on `name` = `value`: 0 if it takes it; canon then
 * holds its spelling of the value. -1 with the reason in why. */
int nx_config_rdkafka_check(const char *name, const char *value, char *canon, size_t canon_size,
                            char *why, size_t why_size);
/* The reason `property` = `canon` is refused on `side` (NX_RDK_*), or NULL. */
const char *nx_config_rdkafka_refused(int side, const char *property, const char *canon);

#endif
