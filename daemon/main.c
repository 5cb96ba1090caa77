/*
 * main.c: nextactd's command line. Sub-commands:
 *   nextactd [run] -c CONF          the daemon (Kafka in, predictions out)
 *   nextactd replay -c CONF ...     the same pipeline over files
 *   nextactd gen ...                the synthetic clickstream generator
 * and the configuration tools --check-config, --dump-config, --features.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

static void usage(FILE *out) {
    fputs("usage: nextactd [run] -c CONF           run the daemon\n"
          "       nextactd --check-config CONF      validate CONF (exit 0, or 78 with FILE:LINE)\n"
          "       nextactd --dump-config [-c CONF] [--comments]\n"
          "                                         print the effective configuration\n"
          "       nextactd --help | --version\n",
          out);
}

int main(int argc, char **argv) {
    enum { OPT_CHECK = 256, OPT_DUMP, OPT_COMMENTS };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, OPT_CHECK},
        {"dump-config", no_argument, NULL, OPT_DUMP},
        {"comments", no_argument, NULL, OPT_COMMENTS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = NULL, *check_path = NULL;
    int dump = 0, comments = 0, opt;
    char err[1024];

    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            conf_path = optarg;
            break;
        case OPT_CHECK:
            check_path = optarg;
            break;
        case OPT_DUMP:
            dump = 1;
            break;
        case OPT_COMMENTS:
            comments = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("nextactd %s\n", NX_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }

    if (check_path) {
        nx_config_t *cfg = nx_config_load(check_path, err, sizeof err);
        if (!cfg) {
            fprintf(stderr, "%s\n", err);
            return NX_EXIT_CONFIG;
        }
        nx_config_destroy(cfg);
        printf("%s: ok\n", check_path);
        return 0;
    }
    if (dump) {
        nx_config_t *cfg =
            conf_path ? nx_config_load(conf_path, err, sizeof err) : nx_config_new_defaults();
        if (!cfg) {
            fprintf(stderr, "%s\n", conf_path ? err : "out of memory");
            return NX_EXIT_CONFIG;
        }
        nx_config_dump(cfg, stdout, comments);
        nx_config_destroy(cfg);
        return 0;
    }
    usage(stderr);
    return 2;
}
