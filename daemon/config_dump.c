/*
 * config_dump.c: the configuration as text, from the table
 * (config_int.h): dump-config (a loadable libconfig file, optionally with
 * every key's help as a comment) and man-config (the CONFIGURATION section
 * of nextactd(8)).
 */
#include "config_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* --dump-config */

static void put_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void put_double(FILE *out, double v) {
    /* %.17g round-trips; force a decimal point so libconfig reads a float */
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    double back = strtod(buf, NULL);
    for (int prec = 1; prec < 17; prec++) {
        char b2[64];
        snprintf(b2, sizeof b2, "%.*g", prec, v);
        if (strtod(b2, NULL) == back) {
            memcpy(buf, b2, sizeof b2);
            break;
        }
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".eEn"))
        fputs(".0", out);
}

static void put_int(FILE *out, int64_t v) {
    /* libconfig needs L for values beyond 32 bits */
    fprintf(out, "%lld%s", (long long)v, (v > INT32_MAX || v < INT32_MIN) ? "L" : "");
}

/* 1 if a pass-through property of this name holds a secret (librdkafka's
 * sasl.password, ssl.key.password, sasl.oauthbearer.client.secret, ...). */
static int secret_name(const char *name) {
    static const char *const words[] = {"password", "secret", "token", "credentials"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(name, words[i]))
            return 1;
    return 0;
}

/* A secret's value: masked unless shown, and "" stays "" (unset is no secret). */
static void put_secret(FILE *out, const char *s, int show) {
    put_string(out, show || !s || !*s ? (s ? s : "") : NX_CONFIG_MASK);
}

static void put_value(FILE *out, const nx_config_t *cfg, const nx_cfg_desc_t *d, int indent,
                      int show) {
    const void *p = nx_config_cfield(cfg, d);
    switch (d->type) {
    case NX_CT_INT:
        put_int(out, *(const int64_t *)p);
        break;
    case NX_CT_DOUBLE:
        put_double(out, *(const double *)p);
        break;
    case NX_CT_BOOL:
        fputs(*(const int *)p ? "true" : "false", out);
        break;
    case NX_CT_STRING:
    case NX_CT_PATH:
    case NX_CT_ENUM:
        if (d->flags & NX_CF_SECRET)
            put_secret(out, *(char *const *)p, show);
        else
            put_string(out, *(char *const *)p ? *(char *const *)p : "");
        break;
    case NX_CT_INTS: {
        const nx_intlist_t *l = p;
        fputc('[', out);
        for (int i = 0; i < l->n; i++) {
            fputs(i ? ", " : "", out);
            put_int(out, l->v[i]);
        }
        fputc(']', out);
        break;
    }
    case NX_CT_DOUBLES: {
        const nx_dbllist_t *l = p;
        fputc('[', out);
        for (int i = 0; i < l->n; i++) {
            fputs(i ? ", " : "", out);
            put_double(out, l->v[i]);
        }
        fputc(']', out);
        break;
    }
    case NX_CT_STRINGS: {
        const nx_strlist_t *l = p;
        fputc('[', out);
        for (int i = 0; i < l->n; i++) {
            fputs(i ? ", " : "", out);
            put_string(out, l->v[i]);
        }
        fputc(']', out);
        break;
    }
    case NX_CT_MAP:
    case NX_CT_RDKAFKA: {
        const nx_strmap_t *m = p;
        if (m->n == 0) {
            fputs("{ }", out);
            break;
        }
        fputs("{\n", out);
        for (int i = 0; i < m->n; i++) {
            char key[256];
            snprintf(key, sizeof key, "%s", m->key[i]);
            if (d->type == NX_CT_RDKAFKA)
                for (char *c = key; *c; c++)
                    if (*c == '.')
                        *c = '_';
            fprintf(out, "%*s%s = ", indent + 2, "", key);
            put_secret(out, m->val[i], show || d->type != NX_CT_RDKAFKA || !secret_name(m->key[i]));
            fputs(";\n", out);
        }
        fprintf(out, "%*s}", indent, "");
        break;
    }
    }
}

/* Number of leading dotted components two names share as groups. */
static int common_groups(const char *a, const char *b, int *depth_b) {
    int common = 0, db = 0;
    bool same = a != NULL;
    for (const char *p = b; *p; p++)
        if (*p == '.')
            db++;
    *depth_b = db;
    if (!same)
        return 0;
    const char *pa = a, *pb = b;
    while (common < db) {
        size_t la = strcspn(pa, "."), lb = strcspn(pb, ".");
        if (pa[la] != '.' || la != lb || strncmp(pa, pb, la) != 0)
            break;
        common++;
        pa += la + 1;
        pb += lb + 1;
    }
    return common;
}

/* Text for troff: a leading dot or quote would start a request; backslash
 * is troff's escape. */
static void man_text(FILE *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && (s[i] == '.' || s[i] == '\''))
            fputs("\\&", out);
        if (s[i] == '\\')
            fputs("\\e", out);
        else if (s[i] == '-')
            fputs("\\-", out);
        else
            fputc(s[i], out);
    }
}

void nx_config_man(FILE *out, const char *version) {
    fprintf(
        out,
        ".\\\" Generated by `nextactd --man-config` from the configuration table\n"
        ".\\\" (daemon/config.c): edit the table, not this page.\n"
        ".TH NEXTACTD.CONF 5 \"\" \"nextactd %s\" \"File Formats\"\n"
        ".SH NAME\nnextactd.conf \\- configuration of the nextactd prediction daemon\n"
        ".SH SYNOPSIS\n/etc/nextactd/nextactd.conf\n"
        ".SH DESCRIPTION\n"
        "A libconfig file. Keys are grouped (\\fBkafka: { brokers = \"...\"; };\\fR);\n"
        "a key written as \\fIgroup.key\\fR below lives in that group. Unknown keys,\n"
        "values out of range and wrong types stop the start with\n"
        "\\fIfile\\fR:\\fIline\\fR and exit status 78;\n"
        "\\fBnextactd \\-\\-check\\-config\\fR finds them without starting.\n"
        "Relative paths resolve against the directory of the file.\n"
        "\\fBnextactd \\-\\-dump\\-config \\-\\-comments\\fR prints every key with its default.\n"
        ".SH KEYS\n",
        version);
    for (size_t k = 0; k < nx_config_n_rows; k++) {
        const nx_cfg_desc_t *d = &nx_config_table[k];
        fputs(".TP\n.B ", out);
        man_text(out, d->name, strlen(d->name));
        fputc('\n', out);
        const char *h = d->help;
        while (*h) {
            size_t l = strcspn(h, "\n");
            man_text(out, h, l);
            fputc('\n', out);
            h += l + (h[l] ? 1 : 0);
        }
        char line[512];
        if (d->type == NX_CT_INT || d->type == NX_CT_DOUBLE || d->type == NX_CT_INTS ||
            d->type == NX_CT_DOUBLES)
            snprintf(line, sizeof line, "Range: %.17g to %.17g. Default: %s", d->min, d->max,
                     d->def ? d->def : "none (required)");
        else if (d->type == NX_CT_ENUM)
            snprintf(line, sizeof line, "One of: %s. Default: %s", d->choices,
                     d->def ? d->def : "none (required)");
        else
            snprintf(line, sizeof line, "Default: %s", d->def ? d->def : "none (required)");
        fputs(".br\n", out);
        man_text(out, line, strlen(line));
        fputc('\n', out);
    }
    fputs(".SH SEE ALSO\n.BR nextactd (8)\n", out);
}

void nx_config_dump(const nx_config_t *cfg, FILE *out, int flags) {
    const char *prev = NULL;
    int comments = flags & NX_CONFIG_DUMP_COMMENTS, show = flags & NX_CONFIG_DUMP_SECRETS;
    int open = 0; /* groups open */
    if (comments)
        fputs("# nextactd configuration (libconfig syntax). Generated by\n"
              "# `nextactd --dump-config --comments`; every key with its default.\n",
              out);
    for (size_t k = 0; k < nx_config_n_rows; k++) {
        const nx_cfg_desc_t *d = &nx_config_table[k];
        int depth;
        int common = common_groups(prev, d->name, &depth);
        if (common > open)
            common = open;
        while (open > common) {
            open--;
            fprintf(out, "%*s};\n", open * 2, "");
        }
        const char *p = d->name;
        for (int i = 0; i < common; i++)
            p += strcspn(p, ".") + 1;
        while (open < depth) {
            size_t l = strcspn(p, ".");
            fprintf(out, "\n%*s%.*s:\n%*s{\n", open * 2, "", (int)l, p, open * 2, "");
            p += l + 1;
            open++;
        }
        const char *leaf = strrchr(d->name, '.');
        leaf = leaf ? leaf + 1 : d->name;
        int ind = open * 2;
        if (comments) {
            fputc('\n', out);
            const char *h = d->help;
            while (*h) {
                size_t l = strcspn(h, "\n");
                fprintf(out, "%*s# %.*s\n", ind, "", (int)l, h);
                h += l + (h[l] ? 1 : 0);
            }
            if (d->type == NX_CT_INT || d->type == NX_CT_DOUBLE || d->type == NX_CT_INTS ||
                d->type == NX_CT_DOUBLES)
                fprintf(out, "%*s# Range: %.17g to %.17g.", ind, "", d->min, d->max);
            else if (d->type == NX_CT_ENUM)
                fprintf(out, "%*s# One of: %s.", ind, "", d->choices);
            else
                fprintf(out, "%*s#", ind, "");
            fprintf(out, " Default: %s\n", d->def ? d->def : "none (required)");
        }
        bool unset = (d->flags & NX_CF_REQUIRED) &&
                     (d->type == NX_CT_STRING
                          ? *(char *const *)nx_config_cfield(cfg, d) == NULL
                          : d->type == NX_CT_STRINGS &&
                                ((const nx_strlist_t *)nx_config_cfield(cfg, d))->n == 0);
        if (unset) {
            fprintf(out, "%*s# %s = ...;  (required)\n", ind, "", leaf);
        } else {
            fprintf(out, "%*s%s = ", ind, "", leaf);
            put_value(out, cfg, d, ind, show);
            fputs(";\n", out);
        }
        prev = d->name;
    }
    while (open > 0) {
        open--;
        fprintf(out, "%*s};\n", open * 2, "");
    }
}
