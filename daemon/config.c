/*
 * config.c: the configuration loader (config.h). It reads a libconfig file
 * through the table (config_table.c): defaults first, then the file's keys
 * with their types and ranges, unknown keys refused, then the -X overrides
 * (config_override.c) and the checks that need more than one key.
 */
#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mlp.h"
#include "store.h"

static int load_file(nx_config_t *cfg, const char *path, config_t *c, bool *seen, char *errstr,
                     size_t errstr_size);

void nx_config_strmap_clear(nx_strmap_t *m) {
    for (int i = 0; i < m->n; i++) {
        free(m->key[i]);
        free(m->val[i]);
    }
    memset(m, 0, sizeof *m);
}

static void strlist_clear(nx_strlist_t *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    memset(l, 0, sizeof *l);
}

static void field_clear(nx_config_t *cfg, const nx_cfg_desc_t *d) {
    void *p = nx_config_field(cfg, d);
    switch (d->type) {
    case NX_CT_STRING:
    case NX_CT_PATH:
    case NX_CT_ENUM:
        free(*(char **)p);
        *(char **)p = NULL;
        break;
    case NX_CT_STRINGS:
        strlist_clear(p);
        break;
    case NX_CT_MAP:
    case NX_CT_RDKAFKA:
        nx_config_strmap_clear(p);
        break;
    case NX_CT_INTS: /* emptied, so that `[]` in a file is an empty list, not the default */
        ((nx_intlist_t *)p)->n = 0;
        break;
    case NX_CT_DOUBLES:
        ((nx_dbllist_t *)p)->n = 0;
        break;
    default:
        break;
    }
}

void nx_config_destroy(nx_config_t *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < nx_config_n_rows; i++)
        field_clear(cfg, &nx_config_table[i]);
    for (int i = 0; i < cfg->n_overrides; i++)
        free(cfg->overrides[i]);
    free(cfg->overrides);
    free(cfg->path);
    free(cfg);
}

int nx_config_fail(nx_cfg_ctx_t *ctx, int line, const char *fmt, ...) {
    int n = ctx->no_line ? snprintf(ctx->errstr, ctx->errstr_size, "%s: ", ctx->file)
                         : snprintf(ctx->errstr, ctx->errstr_size, "%s:%d: ", ctx->file, line);
    if (n < 0 || (size_t)n >= ctx->errstr_size)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errstr + n, ctx->errstr_size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *type_word(int t) {
    switch (t) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "nothing";
    }
}

static const char *desc_type_word(const nx_cfg_desc_t *d) {
    switch (d->type) {
    case NX_CT_INT:
        return "an integer";
    case NX_CT_DOUBLE:
        return "a number";
    case NX_CT_BOOL:
        return "true or false";
    case NX_CT_STRING:
    case NX_CT_PATH:
    case NX_CT_ENUM:
        return "a string";
    case NX_CT_INTS:
        return "an array of integers";
    case NX_CT_DOUBLES:
        return "an array of numbers";
    case NX_CT_STRINGS:
        return "an array of strings";
    default:
        return "a group";
    }
}

static int num_from(const config_setting_t *s, double *out) {
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        *out = (double)config_setting_get_int64(s);
        return 0;
    case CONFIG_TYPE_FLOAT:
        *out = config_setting_get_float(s);
        return 0;
    default:
        return -1;
    }
}

static int check_range(nx_cfg_ctx_t *ctx, int line, const nx_cfg_desc_t *d, double v) {
    if (!isfinite(v) || v < d->min || v > d->max)
        return nx_config_fail(ctx, line, "%s = %.17g is out of range; allowed %.17g to %.17g",
                              d->name, v, d->min, d->max);
    return 0;
}

static int get_int(nx_cfg_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                   int64_t *out) {
    int t = config_setting_type(s);
    int line = config_setting_source_line(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return nx_config_fail(ctx, line, "%s must be an integer, not %s", d->name, type_word(t));
    int64_t v = config_setting_get_int64(s);
    if (check_range(ctx, line, d, (double)v) < 0)
        return -1;
    *out = v;
    return 0;
}

static int get_double(nx_cfg_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                      double *out) {
    double v;
    int line = config_setting_source_line(s);
    if (num_from(s, &v) < 0)
        return nx_config_fail(ctx, line, "%s must be a number, not %s", d->name,
                              type_word(config_setting_type(s)));
    if (check_range(ctx, line, d, v) < 0)
        return -1;
    *out = v;
    return 0;
}

static int check_len(nx_cfg_ctx_t *ctx, int line, const nx_cfg_desc_t *d, const char *v) {
    size_t len = strlen(v);
    if ((double)len < d->min || (double)len > d->max)
        return nx_config_fail(ctx, line, "%s = \"%.64s\" has length %zu; allowed %.0f to %.0f",
                              d->name, v, len, d->min, d->max);
    return 0;
}

static int resolve_path(nx_cfg_ctx_t *ctx, int line, const char *v, char **out) {
    if (v[0] == '\0' || v[0] == '/' || !ctx->dir) {
        *out = strdup(v);
    } else {
        size_t n = strlen(ctx->dir) + 1 + strlen(v) + 1;
        *out = malloc(n);
        if (*out)
            snprintf(*out, n, "%s/%s", ctx->dir, v);
    }
    if (!*out)
        return nx_config_fail(ctx, line, "out of memory");
    return 0;
}

static int get_string(nx_cfg_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                      char **out) {
    int line = config_setting_source_line(s);
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return nx_config_fail(ctx, line, "%s must be a string, not %s", d->name,
                              type_word(config_setting_type(s)));
    const char *v = config_setting_get_string(s);
    if (d->type == NX_CT_ENUM) {
        size_t len = strlen(v);
        const char *c = d->choices;
        bool ok = false;
        while (*c) {
            const char *bar = strchr(c, '|');
            size_t clen = bar ? (size_t)(bar - c) : strlen(c);
            if (clen == len && strncmp(c, v, len) == 0)
                ok = true;
            c += clen + (bar ? 1 : 0);
        }
        if (!ok)
            return nx_config_fail(ctx, line, "%s = \"%.64s\" is not allowed; one of %s", d->name, v,
                                  d->choices);
    } else if (check_len(ctx, line, d, v) < 0) {
        return -1;
    }
    if (d->type == NX_CT_PATH)
        return resolve_path(ctx, line, v, out);
    *out = strdup(v);
    if (!*out)
        return nx_config_fail(ctx, line, "out of memory");
    return 0;
}

static int get_list(nx_cfg_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d, void *p) {
    int line = config_setting_source_line(s);
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return nx_config_fail(ctx, line, "%s must be %s, not %s", d->name, desc_type_word(d),
                              type_word(t));
    int n = config_setting_length(s);
    if (n > NX_CONFIG_MAX_LIST)
        return nx_config_fail(ctx, line, "%s has %d elements; at most %d allowed", d->name, n,
                              NX_CONFIG_MAX_LIST);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int r;
        switch (d->type) {
        case NX_CT_INTS: {
            nx_intlist_t *l = p;
            r = get_int(ctx, e, d, &l->v[i]);
            if (r == 0)
                l->n = i + 1;
            break;
        }
        case NX_CT_DOUBLES: {
            nx_dbllist_t *l = p;
            r = get_double(ctx, e, d, &l->v[i]);
            if (r == 0)
                l->n = i + 1;
            break;
        }
        default: {
            nx_strlist_t *l = p;
            r = get_string(ctx, e, d, &l->v[i]);
            if (r == 0)
                l->n = i + 1;
            break;
        }
        }
        if (r < 0)
            return -1;
    }
    return 0;
}

int nx_config_get_map(nx_cfg_ctx_t *ctx, const config_setting_t *s, const nx_cfg_desc_t *d,
                      nx_strmap_t *m) {
    int line = config_setting_source_line(s);
    if (config_setting_type(s) != CONFIG_TYPE_GROUP)
        return nx_config_fail(ctx, line, "%s must be a group { name = value; ... }, not %s",
                              d->name, type_word(config_setting_type(s)));
    int n = config_setting_length(s);
    if (n > NX_CONFIG_MAX_MAP)
        return nx_config_fail(ctx, line, "%s has %d entries; at most %d allowed", d->name, n,
                              NX_CONFIG_MAX_MAP);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(e);
        int eline = config_setting_source_line(e);
        char num[64];
        const char *val = NULL;
        switch (config_setting_type(e)) {
        case CONFIG_TYPE_STRING:
            val = config_setting_get_string(e);
            break;
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
            if (d->type == NX_CT_RDKAFKA) {
                snprintf(num, sizeof num, "%lld", (long long)config_setting_get_int64(e));
                val = num;
            }
            break;
        case CONFIG_TYPE_FLOAT:
            if (d->type == NX_CT_RDKAFKA) {
                snprintf(num, sizeof num, "%.17g", config_setting_get_float(e));
                val = num;
            }
            break;
        case CONFIG_TYPE_BOOL:
            if (d->type == NX_CT_RDKAFKA)
                val = config_setting_get_bool(e) ? "true" : "false";
            break;
        default:
            break;
        }
        if (!val)
            return nx_config_fail(ctx, eline, "%s.%s must be %s, not %s", d->name, name,
                                  d->type == NX_CT_RDKAFKA ? "a string, number or boolean"
                                                           : "a string",
                                  type_word(config_setting_type(e)));
        /* libconfig names cannot hold dots: librdkafka's
         * "security.protocol" is written security_protocol. A name that
         * librdkafka knows with its underscores (log_level) stays as is. */
        char key[256];
        snprintf(key, sizeof key, "%s", name);
        if (d->type == NX_CT_RDKAFKA) {
            char why[512], canon[512];
            for (char *c = key; *c; c++)
                if (*c == '_')
                    *c = '.';
            if (nx_config_rdkafka_check(key, val, canon, sizeof canon, why, sizeof why) < 0) {
                char why2[512];
                if (nx_config_rdkafka_check(name, val, canon, sizeof canon, why2, sizeof why2) == 0)
                    snprintf(key, sizeof key, "%s", name);
                else
                    return nx_config_fail(ctx, eline, "%s.%s: librdkafka refuses %s = \"%s\": %s",
                                          d->name, name, key, val, why);
            }
            int side = d->offset == OFF(kafka.producer) ? NX_RDK_PRODUCER : NX_RDK_CONSUMER;
            const char *refused = nx_config_rdkafka_refused(side, key, canon);
            if (refused)
                return nx_config_fail(ctx, eline, "%s.\"%s\": refused: %s", d->name, key, refused);
        }
        m->key[i] = strdup(key);
        m->val[i] = strdup(val);
        m->line[i] = eline;
        m->n = i + 1;
        if (!m->key[i] || !m->val[i])
            return nx_config_fail(ctx, eline, "out of memory");
    }
    return 0;
}

/* Reads setting `s` into the field of `d`, replacing what was there. */
static int apply(nx_cfg_ctx_t *ctx, nx_config_t *cfg, const nx_cfg_desc_t *d,
                 const config_setting_t *s) {
    void *p = nx_config_field(cfg, d);
    field_clear(cfg, d);
    switch (d->type) {
    case NX_CT_INT:
        return get_int(ctx, s, d, p);
    case NX_CT_DOUBLE:
        return get_double(ctx, s, d, p);
    case NX_CT_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return nx_config_fail(ctx, config_setting_source_line(s),
                                  "%s must be true or false, not %s", d->name,
                                  type_word(config_setting_type(s)));
        *(int *)p = config_setting_get_bool(s);
        return 0;
    case NX_CT_STRING:
    case NX_CT_PATH:
    case NX_CT_ENUM:
        return get_string(ctx, s, d, p);
    case NX_CT_INTS:
    case NX_CT_DOUBLES:
    case NX_CT_STRINGS:
        return get_list(ctx, s, d, p);
    case NX_CT_MAP:
    case NX_CT_RDKAFKA:
        return nx_config_get_map(ctx, s, d, p);
    }
    return -1;
}

static int apply_defaults(nx_config_t *cfg, char *errstr, size_t errstr_size) {
    nx_cfg_ctx_t ctx = {"(default)", NX_SOURCE_DIR "/conf", errstr, errstr_size, 0};
    for (size_t i = 0; i < nx_config_n_rows; i++) {
        const nx_cfg_desc_t *d = &nx_config_table[i];
        if (!d->def)
            continue;
        /* Each default is parsed by libconfig and applied by the same code
         * as the file, so a default can never be something the file could
         * not say. */
        char text[512];
        snprintf(text, sizeof text, "v = %s;", d->def);
        config_t c;
        config_init(&c);
        int ok = config_read_string(&c, text) == CONFIG_TRUE;
        int r = ok ? apply(&ctx, cfg, d, config_lookup(&c, "v")) : -1;
        if (!ok)
            nx_config_fail(&ctx, 0, "bad default for %s: %s", d->name, config_error_text(&c));
        config_destroy(&c);
        if (r < 0)
            return -1;
    }
    /* Default paths are for a run from the source tree; an installed
     * config sets its own. */
    return 0;
}

nx_config_t *nx_config_new_defaults(void) {
    char err[512];
    nx_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    if (apply_defaults(cfg, err, sizeof err) < 0) {
        nx_err("%s", err); /* a programming error: the table's own default */
        nx_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

/* ------------------------------------------------------------------ */
/* Integer literals. libconfig 1.5 stores an integer without the L suffix in
 * 32 bits and silently wraps larger ones (3000000000 reads as -1294967296),
 * and wraps L literals past 64 bits. Before parsing, scan the text for
 * integer literals and refuse those that do not fit. */

int nx_config_scan_ints(nx_cfg_ctx_t *ctx, const char *text) {
    int line = 1;
    const char *p = text;
    while (*p) {
        char c = *p;
        if (c == '\n') {
            line++;
            p++;
        } else if (c == '"') { /* string, with \" escapes */
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (*p == '\n')
                    line++;
                p++;
            }
            if (*p)
                p++;
        } else if (c == '#' || (c == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                p++;
        } else if (c == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(*p == '*' && p[1] == '/')) {
                if (*p == '\n')
                    line++;
                p++;
            }
            if (*p)
                p += 2;
        } else if (isdigit((unsigned char)c) && (p == text || !(isalnum((unsigned char)p[-1]) ||
                                                                p[-1] == '_' || p[-1] == '.'))) {
            const char *start = p;
            bool hex = c == '0' && (p[1] == 'x' || p[1] == 'X');
            if (hex)
                p += 2;
            while (isalnum((unsigned char)*p) || *p == '.' ||
                   ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E') && !hex))
                p++;
            size_t len = (size_t)(p - start);
            char lit[64];
            if (len >= sizeof lit)
                return nx_config_fail(ctx, line, "number %.32s... is too long", start);
            memcpy(lit, start, len);
            lit[len] = '\0';
            if (!hex && strpbrk(lit, ".eE"))
                continue; /* a float; range-checked after parsing */
            bool is64 = len > 0 && (lit[len - 1] == 'L' || lit[len - 1] == 'l');
            if (is64) {
                lit[--len] = '\0';
                if (len > 0 && (lit[len - 1] == 'L' || lit[len - 1] == 'l'))
                    lit[--len] = '\0';
            }
            errno = 0;
            char *end;
            unsigned long long u = strtoull(lit, &end, 0);
            if (*end != '\0')
                continue; /* not a number libconfig would take; it reports it */
            bool neg = start > text && start[-1] == '-';
            unsigned long long lim32 = neg ? 2147483648ULL : 2147483647ULL;
            unsigned long long lim64 = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
            if (hex)
                lim32 = 0xffffffffULL; /* libconfig reads 0xFFFFFFFF as -1 */
            if (errno == ERANGE || u > lim64)
                return nx_config_fail(ctx, line, "integer %s%s does not fit 64 bits",
                                      neg ? "-" : "", lit);
            if (!is64 && u > lim32)
                return nx_config_fail(
                    ctx, line,
                    "integer %s%s does not fit libconfig's 32-bit integers; write it "
                    "with an L suffix (%s%sL)",
                    neg ? "-" : "", lit, neg ? "-" : "", lit);
        } else {
            p++;
        }
    }
    return 0;
}

static char *read_file(const char *path, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        snprintf(errstr, errstr_size, "%s:0: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* A configuration file over 1 MiB is a mistake, not a config. */
    const size_t max = 1 << 20;
    buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr || n > max) {
        snprintf(errstr, errstr_size, "%s:0: %s", path,
                 !buf   ? "out of memory"
                 : rerr ? "read error"
                        : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Walks the file's settings: every leaf must be a key of the table, every
 * group a prefix of one. */
int nx_config_walk(nx_cfg_ctx_t *ctx, nx_config_t *cfg, const config_setting_t *g,
                   const char *prefix, bool *seen) {
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", config_setting_name(s));
        size_t plen = strlen(path);
        const nx_cfg_desc_t *hit = NULL;
        bool is_prefix = false;
        for (size_t k = 0; k < nx_config_n_rows; k++) {
            const char *name = nx_config_table[k].name;
            if (strcmp(name, path) == 0) {
                hit = &nx_config_table[k];
                if (apply(ctx, cfg, hit, s) < 0)
                    return -1;
                seen[k] = true;
                break;
            }
            if (strncmp(name, path, plen) == 0 && name[plen] == '.')
                is_prefix = true;
        }
        if (hit)
            continue;
        int line = config_setting_source_line(s);
        if (is_prefix) {
            if (config_setting_type(s) != CONFIG_TYPE_GROUP)
                return nx_config_fail(ctx, line, "%s must be a group, not %s", path,
                                      type_word(config_setting_type(s)));
            if (nx_config_walk(ctx, cfg, s, path, seen) < 0)
                return -1;
            continue;
        }
        /* Unknown: list what the group does allow. */
        char allowed[1024] = "";
        size_t alen = 0, pre = strlen(prefix);
        for (size_t k = 0; k < nx_config_n_rows && alen < sizeof allowed - 64; k++) {
            const char *name = nx_config_table[k].name;
            if (pre && !(strncmp(name, prefix, pre) == 0 && name[pre] == '.'))
                continue;
            const char *rest = name + (pre ? pre + 1 : 0);
            size_t rl = strcspn(rest, ".");
            char word[256];
            snprintf(word, sizeof word, "%.*s", (int)rl, rest);
            if (nx_config_list_has(allowed, ',', word))
                continue; /* a group already listed */
            alen += (size_t)snprintf(allowed + alen, sizeof allowed - alen, "%s%.*s",
                                     alen ? ", " : "", (int)rl, rest);
        }
        return nx_config_fail(ctx, line, "unknown key '%s'; allowed %s%s%s: %s", path,
                              pre ? "in group '" : "at top level", pre ? prefix : "",
                              pre ? "'" : "", allowed);
    }
    return 0;
}

static int find_line(const nx_config_t *cfg, const config_t *c, const char *name) {
    (void)cfg;
    const config_setting_t *s = config_lookup(c, name);
    return s ? config_setting_source_line(s) : 0;
}

/* Checks that need more than one key. */
static int cross_check(nx_cfg_ctx_t *ctx, nx_config_t *cfg, const config_t *c) {
    int nt = cfg->event_types.n;
    if (nt > NX_EVENT_MAX_TYPES)
        return nx_config_fail(ctx, find_line(cfg, c, "event_types"),
                              "event_types has %d types; at most %d allowed", nt,
                              NX_EVENT_MAX_TYPES);
    for (int i = 0; i < nt; i++) {
        if (strcmp(cfg->event_types.v[i], "none") == 0)
            return nx_config_fail(
                ctx, find_line(cfg, c, "event_types"),
                "event_types must not name \"none\": it is the class of no next action");
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->event_types.v[i], cfg->event_types.v[j]) == 0)
                return nx_config_fail(ctx, find_line(cfg, c, "event_types"),
                                      "event_types names \"%s\" twice", cfg->event_types.v[i]);
    }
    const nx_strmap_t *maps[2] = {&cfg->input.type_map, &cfg->input.topic_types};
    const char *mapnames[2] = {"input.type_map", "input.topic_types"};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < maps[m]->n; i++) {
            const char *v = maps[m]->val[i];
            if ((m == 0 && v[0] == '\0') || nx_config_type_index(cfg, v) >= 0)
                continue;
            char types[256] = "";
            for (int t = 0; t < nt; t++)
                snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s", t ? ", " : "",
                         cfg->event_types.v[t]);
            return nx_config_fail(ctx, maps[m]->line[i],
                                  "%s.%s = \"%s\" is not an event type; one of %s%s", mapnames[m],
                                  maps[m]->key[i], v, types, m == 0 ? " or \"\" (skip)" : "");
        }
    if (cfg->features.windows_s.n < 1 || cfg->features.windows_s.n > NX_STORE_MAX_WINDOWS)
        return nx_config_fail(ctx, find_line(cfg, c, "features.windows_s"),
                              "features.windows_s has %d windows; 1 to %d allowed",
                              cfg->features.windows_s.n, NX_STORE_MAX_WINDOWS);
    /* exactly-once puts the users' state into the predictions' transaction:
     * without a changelog a restart could not get back to what the last
     * committed transaction covers */
    if (cfg->kafka.transactional && !cfg->state.changelog[0])
        return nx_config_fail(ctx, find_line(cfg, c, "kafka.transactional"),
                              "kafka.transactional = true needs state.changelog (a compacted "
                              "topic, e.g. \"%s-state\"): the users' state goes into the same "
                              "transaction as the predictions and input offsets",
                              cfg->kafka.group_id);
    if (cfg->model.hidden.n > NX_MLP_MAX_HIDDEN)
        return nx_config_fail(ctx, find_line(cfg, c, "model.hidden"),
                              "model.hidden has %d layers; at most %d allowed", cfg->model.hidden.n,
                              NX_MLP_MAX_HIDDEN);
    if (cfg->model.class_weights.n != 0 && cfg->model.class_weights.n != nt + 1)
        return nx_config_fail(
            ctx, find_line(cfg, c, "model.class_weights"),
            "model.class_weights has %d entries; give none or %d (one per event type "
            "plus none)",
            cfg->model.class_weights.n, nt + 1);
    if (strcmp(cfg->input.framing, "raw") == 0 && cfg->input.field_type[0] == '\0') {
        /* Without a type field, every input topic needs a fixed type. */
        for (int i = 0; i < cfg->kafka.input_topics.n; i++) {
            bool found = false;
            for (int k = 0; k < cfg->input.topic_types.n; k++)
                if (strcmp(cfg->input.topic_types.key[k], cfg->kafka.input_topics.v[i]) == 0)
                    found = true;
            if (!found)
                return nx_config_fail(ctx, find_line(cfg, c, "input.fields.type"),
                                      "input.fields.type is \"\" but topic \"%s\" has no entry in "
                                      "input.topic_types",
                                      cfg->kafka.input_topics.v[i]);
        }
    }
    return 0;
}

nx_config_t *nx_config_load(const char *path, char *errstr, size_t errstr_size) {
    return nx_config_load_ex(path, NULL, 0, errstr, errstr_size);
}

nx_config_t *nx_config_load_ex(const char *path, const char *const *overrides, int n_overrides,
                               char *errstr, size_t errstr_size) {
    nx_config_t *cfg = NULL;
    bool *seen = NULL; /* seen[k]: the file or an override set row k */
    config_t c;

    config_init(&c);
    cfg = calloc(1, sizeof *cfg);
    seen = calloc(nx_config_n_rows, sizeof *seen);
    if (!cfg || !seen) {
        snprintf(errstr, errstr_size, "%s:0: out of memory", path ? path : "(default)");
        goto err;
    }
    if (apply_defaults(cfg, errstr, errstr_size) < 0)
        goto err;
    if (path && load_file(cfg, path, &c, seen, errstr, errstr_size) < 0)
        goto err;
    if (nx_config_overrides_apply(cfg, overrides, n_overrides, seen, errstr, errstr_size) < 0)
        goto err;
    nx_cfg_ctx_t ctx = {path ? path : "(default)", NULL, errstr, errstr_size, 0};
    for (size_t k = 0; path && k < nx_config_n_rows; k++)
        if ((nx_config_table[k].flags & NX_CF_REQUIRED) && !seen[k]) {
            nx_config_fail(&ctx, 0, "missing required key '%s': %s", nx_config_table[k].name,
                           nx_config_table[k].help);
            goto err;
        }
    if (cross_check(&ctx, cfg, &c) < 0)
        goto err;
    config_destroy(&c);
    free(seen);
    return cfg;

err:
    config_destroy(&c);
    free(seen);
    nx_config_destroy(cfg);
    return NULL;
}

/* Reads the file at `path` over the defaults in cfg, marking the keys it
 * sets in seen[]; `c` keeps the parsed file, for the line numbers of later
 * messages. */
static int load_file(nx_config_t *cfg, const char *path, config_t *c, bool *seen, char *errstr,
                     size_t errstr_size) {
    char *text = NULL, *dir = NULL;
    int rc = -1;
    cfg->path = strdup(path);
    dir = strdup(path);
    if (!cfg->path || !dir) {
        snprintf(errstr, errstr_size, "%s:0: out of memory", path);
        goto err;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    nx_cfg_ctx_t ctx = {path, dir, errstr, errstr_size, 0};

    if (!(text = read_file(path, errstr, errstr_size)))
        goto err;
    if (nx_config_scan_ints(&ctx, text) < 0)
        goto err;
    if (config_read_string(c, text) != CONFIG_TRUE) {
        nx_config_fail(&ctx, config_error_line(c), "syntax error: %s", config_error_text(c));
        goto err;
    }
    /* Relative paths in the file resolve against the file's directory; the
     * defaults' relative paths do too, so re-apply those against it. */
    for (size_t k = 0; k < nx_config_n_rows; k++) {
        const nx_cfg_desc_t *d = &nx_config_table[k];
        if (d->type != NX_CT_PATH || !d->def)
            continue;
        char t[512];
        snprintf(t, sizeof t, "v = %s;", d->def);
        config_t dc;
        config_init(&dc);
        int r = config_read_string(&dc, t) == CONFIG_TRUE
                    ? apply(&ctx, cfg, d, config_lookup(&dc, "v"))
                    : -1;
        config_destroy(&dc);
        if (r < 0)
            goto err;
    }
    if (nx_config_walk(&ctx, cfg, config_root_setting(c), "", seen) < 0)
        goto err;
    rc = 0;
err:
    free(text);
    free(dir);
    return rc;
}

nx_config_t *nx_config_reload(const nx_config_t *cfg, char *errstr, size_t errstr_size) {
    return nx_config_load_ex(cfg->path, (const char *const *)cfg->overrides, cfg->n_overrides,
                             errstr, errstr_size);
}

int nx_config_type_index(const nx_config_t *cfg, const char *name) {
    for (int i = 0; i < cfg->event_types.n; i++)
        if (strcmp(cfg->event_types.v[i], name) == 0)
            return i;
    return -1;
}
