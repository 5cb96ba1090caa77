/*
 * config_override.c: the -X key=value overrides (config.h:
 * nx_config_overrides_add, nx_config_load_ex), applied over the file by the
 * file's own reader (config_int.h).
 */
#include "config_int.h"

#include <ctype.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* -X key=value: each override is parsed by libconfig as the line
 * `key = value;` nested in its groups, and applied by the same code as the
 * file (walk), so it gets the same type and range checks and unknown keys
 * are refused alike. An entry of a map row is merged into the map instead
 * of replacing it. */

int nx_config_overrides_add(nx_config_overrides_t *ov, const char *arg) {
    if (ov->n >= NX_CONFIG_MAX_OVERRIDES) {
        fprintf(stderr, "nextactd: more than %d -X overrides\n", NX_CONFIG_MAX_OVERRIDES);
        return -1;
    }
    ov->v[ov->n++] = arg;
    return 0;
}

/* Appends s to the buffer, a libconfig string literal when quote is set. */
static void text_put(char *buf, size_t size, const char *s, int quote) {
    size_t n = strlen(buf);
    if (quote && n + 1 < size)
        buf[n++] = '"';
    for (; *s && n + 2 < size; s++) {
        if (quote && (*s == '"' || *s == '\\'))
            buf[n++] = '\\';
        buf[n++] = *s;
    }
    if (quote && n + 1 < size)
        buf[n++] = '"';
    buf[n] = '\0';
}

/* Whether a row of this type holds one string, which an unquoted value
 * spells directly. */
static bool is_string_type(nx_cfg_type_t t) {
    return t == NX_CT_STRING || t == NX_CT_PATH || t == NX_CT_ENUM;
}

/* Whether libconfig reads `value` as a value. */
static bool is_value(const char *value) {
    char text[4096] = "v = ";
    text_put(text, sizeof text, value, 0);
    text_put(text, sizeof text, ";", 0);
    config_t probe;
    config_init(&probe);
    bool ok = config_read_string(&probe, text) == CONFIG_TRUE;
    config_destroy(&probe);
    return ok;
}

/* One entry of a map row: parsed as `v = { name = value; };` by the file's
 * map reader (librdkafka's checks included), then added or replaced. */
static int override_map_entry(nx_cfg_ctx_t *ctx, nx_config_t *cfg, const nx_cfg_desc_t *d,
                              const char *name, const char *value) {
    char text[4096] = "v = { ";
    char lname[256];
    snprintf(lname, sizeof lname, "%s", name);
    if (d->type == NX_CT_RDKAFKA)
        for (char *p = lname; *p; p++)
            if (*p == '.')
                *p = '_'; /* librdkafka's dotted name, as the file spells it */
    text_put(text, sizeof text, lname, 0);
    text_put(text, sizeof text, " = ", 0);
    /* a bare word (SSL, /etc/ssl/ca.pem) is a string */
    int quote = value[0] != '"' && (d->type == NX_CT_MAP || !is_value(value));
    text_put(text, sizeof text, value, quote);
    text_put(text, sizeof text, "; };", 0);

    nx_strmap_t one = {0};
    config_t c;
    config_init(&c);
    int rc = -1;
    if (nx_config_scan_ints(ctx, text) < 0)
        goto out;
    if (config_read_string(&c, text) != CONFIG_TRUE) {
        nx_config_fail(ctx, 0,
                       "%s: write numbers as 10 or 1.5, booleans as true or false and strings "
                       "in quotes",
                       config_error_text(&c));
        goto out;
    }
    if (nx_config_get_map(ctx, config_lookup(&c, "v"), d, &one) < 0 || one.n != 1)
        goto out;
    nx_strmap_t *m = nx_config_field(cfg, d);
    int i = 0;
    while (i < m->n && strcmp(m->key[i], one.key[0]) != 0)
        i++;
    if (i == NX_CONFIG_MAX_MAP) {
        nx_config_fail(ctx, 0, "%s has %d entries; at most %d allowed", d->name, i + 1,
                       NX_CONFIG_MAX_MAP);
        goto out;
    }
    if (i < m->n) {
        free(m->key[i]);
        free(m->val[i]);
    } else {
        m->n++;
    }
    m->key[i] = one.key[0];
    m->val[i] = one.val[0];
    m->line[i] = 0;
    one.n = 0; /* moved into m */
    rc = 0;
out:
    nx_config_strmap_clear(&one);
    config_destroy(&c);
    return rc;
}

static int override_one(nx_config_t *cfg, const char *arg, bool *seen, char *errstr,
                        size_t errstr_size) {
    char where[512], key[256];
    snprintf(where, sizeof where, "-X %s", arg);
    nx_cfg_ctx_t ctx = {where, NULL, errstr, errstr_size, 1};
    const char *eq = strchr(arg, '=');
    if (!eq)
        return nx_config_fail(&ctx, 0, "expected key=value");
    const char *k0 = arg, *k1 = eq;
    while (k0 < k1 && isspace((unsigned char)*k0))
        k0++;
    while (k1 > k0 && isspace((unsigned char)k1[-1]))
        k1--;
    const char *value = eq + 1;
    while (isspace((unsigned char)*value))
        value++;
    size_t klen = (size_t)(k1 - k0);
    if (klen == 0 || klen >= sizeof key)
        return nx_config_fail(&ctx, 0, "expected key=value with a key of 1 to %zu characters",
                              sizeof key - 1);
    memcpy(key, k0, klen);
    key[klen] = '\0';
    for (size_t i = 0; i < klen; i++)
        if (!(isalnum((unsigned char)key[i]) || key[i] == '_' || key[i] == '-' ||
              (key[i] == '.' && i > 0 && i + 1 < klen && key[i + 1] != '.')))
            return nx_config_fail(
                &ctx, 0, "'%s' is not a key: dotted names of letters, digits, _ and -", key);

    const nx_cfg_desc_t *row = NULL;
    for (size_t k = 0; k < nx_config_n_rows && !row; k++) {
        const nx_cfg_desc_t *d = &nx_config_table[k];
        size_t nl = strlen(d->name);
        if (strcmp(d->name, key) == 0)
            row = d;
        else if ((d->type == NX_CT_MAP || d->type == NX_CT_RDKAFKA) &&
                 strncmp(d->name, key, nl) == 0 && key[nl] == '.')
            return override_map_entry(&ctx, cfg, d, key + nl + 1, value);
    }

    /* `a.b.c = value` as the groups `a: { b: { c = value; }; };` */
    char text[4096] = "";
    int depth = 0;
    const char *p = key;
    for (const char *dot; (dot = strchr(p, '.')); p = dot + 1, depth++) {
        char group[256];
        snprintf(group, sizeof group, "%.*s: { ", (int)(dot - p), p);
        text_put(text, sizeof text, group, 0);
    }
    text_put(text, sizeof text, p, 0);
    text_put(text, sizeof text, " = ", 0);
    /* an unknown key's value is quoted when it does not parse, so the key
     * is what the message is about */
    bool quote = value[0] != '"' && (row ? is_string_type(row->type) : !is_value(value));
    text_put(text, sizeof text, value, quote);
    text_put(text, sizeof text, ";", 0);
    while (depth-- > 0)
        text_put(text, sizeof text, " };", 0);

    config_t c;
    config_init(&c);
    int rc = -1;
    if (nx_config_scan_ints(&ctx, text) < 0)
        goto out;
    if (config_read_string(&c, text) != CONFIG_TRUE) {
        nx_config_fail(&ctx, 0,
                       "%s: write numbers as 10 or 1.5, booleans as true or false, lists as "
                       "[1, 2] and strings in quotes",
                       config_error_text(&c));
        goto out;
    }
    rc = nx_config_walk(&ctx, cfg, config_root_setting(&c), "", seen);
out:
    config_destroy(&c);
    return rc;
}

int nx_config_overrides_apply(nx_config_t *cfg, const char *const *overrides, int n, bool *seen,
                              char *errstr, size_t errstr_size) {
    if (n <= 0)
        return 0;
    if (!(cfg->overrides = calloc((size_t)n, sizeof *cfg->overrides))) {
        snprintf(errstr, errstr_size, "-X: out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (override_one(cfg, overrides[i], seen, errstr, errstr_size) < 0)
            return -1;
        if (!(cfg->overrides[i] = strdup(overrides[i]))) {
            snprintf(errstr, errstr_size, "-X: out of memory");
            return -1;
        }
        cfg->n_overrides = i + 1;
    }
    return 0;
}
