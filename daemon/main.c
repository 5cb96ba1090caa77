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

#include "blas.h"
#include "config.h"
#include "gen.h"
#include "log.h"
#include "pipeline.h"
#include "preflight.h"
#include "replay.h"
#include "run.h"

static void usage(FILE *out) {
    fputs("usage: nextactd [run] -c CONF           run the daemon\n"
          "       nextactd demo [--seconds S] [--rate R] [--users U] [-c CONF]\n"
          "                                         the main job on an in-process mock cluster\n"
          "       nextactd replay -c CONF [--output PATH|-] [--summary PATH] INPUT...\n"
          "                                         the pipeline over Avro/CSV files\n"
          "       nextactd gen --events N --users U --seed S (--output F.avro | --topic T)\n"
          "                                         synthetic clickstream with its truth\n"
          "       nextactd --features -c CONF       print the feature schema\n"
          "       nextactd --check-config CONF      validate CONF and what it names (files,\n"
          "                                         directories): exit 0, or 78 with the problems\n"
          "       nextactd --dump-config [-c CONF] [--comments]\n"
          "                                         print the effective configuration\n"
          "       nextactd --man-config             print the nextactd.conf(5) manual page\n"
          "       nextactd --help | --version\n",
          out);
}

static int print_features(const char *conf) {
    char err[1024];
    nx_config_t *cfg = nx_config_load(conf, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return NX_EXIT_CONFIG;
    }
    uint8_t key[NX_SIPHASH_KEY_LEN] = {0}; /* the schema does not depend on the key */
    nx_pipeline_t *pipe = nx_pipeline_new(cfg, key, 0, NULL, err, sizeof err);
    int rc = 0;
    if (!pipe) {
        fprintf(stderr, "%s\n", err);
        rc = NX_EXIT_CONFIG;
    } else {
        nx_pipeline_print_features(pipe, stdout);
    }
    nx_pipeline_destroy(pipe);
    nx_config_destroy(cfg);
    return rc;
}

/* Commands that train or predict run with the best OpenBLAS kernels the
 * CPU has (model/blas.h): if the library fell back to its generic ones,
 * the program executes itself again with OPENBLAS_CORETYPE set, before
 * anything is opened. */
static void announce_blas(const char *from, const char *to) {
    nx_info("OpenBLAS fell back to its %s kernels on this CPU; restarting with "
            "OPENBLAS_CORETYPE=%s",
            from, to);
}

static void blas_reexec(char **argv) {
    char err[256];
    if (nx_blas_reexec(argv, announce_blas, err, sizeof err) < 0)
        nx_warn("could not restart for faster OpenBLAS kernels (%s); going on with %s", err,
                nx_blas_core());
}

int main(int argc, char **argv) {
    enum { OPT_CHECK = 256, OPT_DUMP, OPT_COMMENTS, OPT_FEATURES, OPT_MAN };
    if (argc > 1 && argv[1][0] != '-') {
        const char *cmd = argv[1];
        if (strcmp(cmd, "run") == 0 || strcmp(cmd, "demo") == 0 || strcmp(cmd, "replay") == 0)
            blas_reexec(argv);
        if (strcmp(cmd, "run") == 0)
            return nx_run_main(argc - 1, argv + 1);
        if (strcmp(cmd, "demo") == 0)
            return nx_demo_main(argc - 1, argv + 1);
        if (strcmp(cmd, "replay") == 0)
            return nx_replay_main(argc - 1, argv + 1);
        if (strcmp(cmd, "gen") == 0)
            return nx_gen_main(argc - 1, argv + 1);
        fprintf(stderr, "nextactd: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, OPT_CHECK},
        {"dump-config", no_argument, NULL, OPT_DUMP},
        {"comments", no_argument, NULL, OPT_COMMENTS},
        {"features", no_argument, NULL, OPT_FEATURES},
        {"man-config", no_argument, NULL, OPT_MAN},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = NULL, *check_path = NULL;
    int dump = 0, comments = 0, features = 0, opt;
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
        case OPT_FEATURES:
            features = 1;
            break;
        case OPT_MAN:
            /* nextactd.conf(5), generated at build time from the table */
            nx_config_man(stdout, NX_VERSION);
            return 0;
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
        /* the file, then what a start would trip over because of it */
        char problems[4096];
        nx_config_t *cfg = nx_config_load(check_path, err, sizeof err);
        if (!cfg) {
            fprintf(stderr, "%s\n", err);
            return NX_EXIT_CONFIG;
        }
        int rc = nx_preflight_check(cfg, problems, sizeof problems);
        nx_config_destroy(cfg);
        if (rc < 0) {
            fprintf(stderr, "%s\n", problems);
            return NX_EXIT_CONFIG;
        }
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
    if (features) {
        if (!conf_path) {
            fprintf(stderr, "nextactd --features needs -c CONF\n");
            return 2;
        }
        return print_features(conf_path);
    }
    /* `nextactd -c CONF` runs the daemon, as `nextactd run -c CONF` */
    if (conf_path) {
        blas_reexec(argv);
        return nx_run_main(argc, argv);
    }
    usage(stderr);
    return 2;
}
