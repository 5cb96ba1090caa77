/*
 * main.c: nextactd's command line. Sub-commands:
 *   nextactd [run] -c CONF          the daemon (Kafka in, predictions out)
 *   nextactd replay -c CONF ...     the same pipeline over files
 *   nextactd gen ...                the synthetic clickstream generator
 * and the configuration tools check-config, dump-config, features and
 * man-config (also spelt --check-config, ...), and help [COMMAND]. Every
 * command that loads a configuration takes -X KEY=VALUE overrides
 * (config.h: nx_config_load_ex).
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
    fputs("usage: nextactd COMMAND [OPTIONS]   (nextactd COMMAND --help describes each)\n"
          "  run -c CONF                   run the daemon (also: nextactd -c CONF)\n"
          "  demo [-c CONF]                the main job on an in-process mock cluster\n"
          "  replay -c CONF INPUT...       the pipeline over Avro/CSV files\n"
          "  gen --events N ...            synthetic clickstream with its truth\n"
          "  check-config CONF             validate CONF and what it names: exit 0, or 78\n"
          "  dump-config [-c CONF]         print the effective configuration\n"
          "  features -c CONF              print the feature schema\n"
          "  man-config                    print the nextactd.conf(5) manual page\n"
          "  help [COMMAND]                this text, or COMMAND's (as COMMAND --help)\n"
          "  --help, --version\n"
          "run, demo, replay, check-config, dump-config and features take -X KEY=VALUE\n"
          "(repeatable) to override a configuration key, e.g. -X kafka.brokers=host:9092.\n"
          "The forms --check-config CONF, --dump-config, --features -c CONF and\n"
          "--man-config work too.\n",
          out);
}

/* The configuration the file and the -X overrides make; NULL after printing
 * why. Without a file, the defaults. */
static nx_config_t *load(const char *path, const nx_config_overrides_t *ov) {
    char err[1024];
    nx_config_t *cfg = nx_config_load_ex(path, ov->v, ov->n, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    return cfg;
}

static int print_features(const char *conf, const nx_config_overrides_t *ov) {
    char err[1024];
    nx_config_t *cfg = load(conf, ov);
    if (!cfg)
        return NX_EXIT_CONFIG;
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

/* The file, then what a start would trip over because of it. */
static int check_config(const char *conf, const nx_config_overrides_t *ov) {
    char problems[4096];
    nx_config_t *cfg = load(conf, ov);
    if (!cfg)
        return NX_EXIT_CONFIG;
    int rc = nx_preflight_check(cfg, problems, sizeof problems);
    nx_config_destroy(cfg);
    if (rc < 0) {
        fprintf(stderr, "%s\n", problems);
        return NX_EXIT_CONFIG;
    }
    printf("%s: ok\n", conf);
    return 0;
}

static int dump_config(const char *conf, const nx_config_overrides_t *ov, int flags) {
    nx_config_t *cfg = load(conf, ov);
    if (!cfg)
        return NX_EXIT_CONFIG;
    nx_config_dump(cfg, stdout, flags);
    nx_config_destroy(cfg);
    return 0;
}

/* check-config, dump-config, features and man-config as sub-commands: one
 * parser, each taking what applies to it. */
enum { CMD_CHECK, CMD_DUMP, CMD_FEATURES, CMD_MAN };

static const struct {
    const char *name, *synopsis, *help;
} config_cmds[] = {
    [CMD_CHECK] = {"check-config", "[-X KEY=VALUE]... CONF",
                   "Validates CONF and what it names (files, directories): exit 0, or 78\n"
                   "with the problems.\n"},
    [CMD_DUMP] = {"dump-config", "[-c CONF] [--comments] [--show-secrets] [-X KEY=VALUE]...",
                  "Prints the effective configuration (the defaults without -c); passwords and\n"
                  "keys as " NX_CONFIG_MASK " unless --show-secrets.\n"},
    [CMD_FEATURES] = {"features", "-c CONF [-X KEY=VALUE]...",
                      "Prints the feature schema CONF gives the model.\n"},
    [CMD_MAN] = {"man-config", "", "Prints the nextactd.conf(5) manual page (troff).\n"},
};

static void config_cmd_usage(int cmd, FILE *out) {
    fprintf(out, "usage: nextactd %s %s\n%s", config_cmds[cmd].name, config_cmds[cmd].synopsis,
            config_cmds[cmd].help);
    if (cmd != CMD_MAN) {
        if (cmd != CMD_CHECK)
            fputs("  -c, --config CONF     configuration file (libconfig)\n", out);
        if (cmd == CMD_DUMP)
            fputs("  --comments            each key with its help text, default and range\n"
                  "  --show-secrets        passwords and keys as they are (not masked)\n",
                  out);
        fputs(
            "  -X KEY=VALUE          override a configuration key (repeatable), e.g.\n"
            "                        -X model.hidden=[32] -X kafka.consumer.fetch_wait_max_ms=5\n",
            out);
    }
    fputs("  -h, --help            this text\n", out);
}

static int config_cmd_main(int cmd, int argc, char **argv) {
    enum { OPT_COMMENTS = 256, OPT_SECRETS };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"comments", no_argument, NULL, OPT_COMMENTS},
        {"show-secrets", no_argument, NULL, OPT_SECRETS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    nx_config_overrides_t ov = {0};
    const char *conf = NULL;
    int comments = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:X:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'c':
            conf = optarg;
            bad = cmd == CMD_CHECK || cmd == CMD_MAN;
            break;
        case OPT_COMMENTS:
            comments |= NX_CONFIG_DUMP_COMMENTS;
            bad = cmd != CMD_DUMP;
            break;
        case OPT_SECRETS:
            comments |= NX_CONFIG_DUMP_SECRETS;
            bad = cmd != CMD_DUMP;
            break;
        case 'X':
            bad = cmd == CMD_MAN || nx_config_overrides_add(&ov, optarg) < 0;
            break;
        case 'h':
            config_cmd_usage(cmd, stdout);
            return 0;
        default:
            bad = 1;
        }
        if (bad) {
            config_cmd_usage(cmd, stderr);
            return 2;
        }
    }
    if (cmd == CMD_CHECK && optind == argc - 1)
        conf = argv[optind++];
    if (optind != argc || ((cmd == CMD_CHECK || cmd == CMD_FEATURES) && !conf)) {
        config_cmd_usage(cmd, stderr);
        return 2;
    }
    switch (cmd) {
    case CMD_CHECK:
        return check_config(conf, &ov);
    case CMD_DUMP:
        return dump_config(conf, &ov, comments);
    case CMD_FEATURES:
        return print_features(conf, &ov);
    default:
        nx_config_man(stdout, NX_VERSION);
        return 0;
    }
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
    enum { OPT_CHECK = 256, OPT_DUMP, OPT_COMMENTS, OPT_SECRETS, OPT_FEATURES, OPT_MAN };
    /* `nextactd help [COMMAND]`, as git and systemctl have it: the usage, or
     * `nextactd COMMAND --help` */
    if (argc > 1 && strcmp(argv[1], "help") == 0) {
        static char help_opt[] = "--help";
        if (argc == 2) {
            usage(stdout);
            return 0;
        }
        if (argc > 3 || argv[2][0] == '-') {
            usage(stderr);
            return 2;
        }
        char *args[] = {argv[0], argv[2], help_opt, NULL};
        return main(3, args);
    }
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
        for (int k = 0; k < (int)(sizeof config_cmds / sizeof config_cmds[0]); k++)
            if (strcmp(cmd, config_cmds[k].name) == 0)
                return config_cmd_main(k, argc - 1, argv + 1);
        fprintf(stderr, "nextactd: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    /* the option forms of the same commands */
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, OPT_CHECK},
        {"dump-config", no_argument, NULL, OPT_DUMP},
        {"comments", no_argument, NULL, OPT_COMMENTS},
        {"show-secrets", no_argument, NULL, OPT_SECRETS},
        {"features", no_argument, NULL, OPT_FEATURES},
        {"man-config", no_argument, NULL, OPT_MAN},
        {"start-afresh", no_argument, NULL, 'A'}, /* nextactd -c CONF: run's own */
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    nx_config_overrides_t ov = {0};
    const char *conf_path = NULL, *check_path = NULL;
    int dump = 0, comments = 0, features = 0, opt;

    while ((opt = getopt_long(argc, argv, "c:X:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            conf_path = optarg;
            break;
        case 'X':
            if (nx_config_overrides_add(&ov, optarg) < 0)
                return 2;
            break;
        case 'A':
            break;
        case OPT_CHECK:
            check_path = optarg;
            break;
        case OPT_DUMP:
            dump = 1;
            break;
        case OPT_COMMENTS:
            comments |= NX_CONFIG_DUMP_COMMENTS;
            break;
        case OPT_SECRETS:
            comments |= NX_CONFIG_DUMP_SECRETS;
            break;
        case OPT_FEATURES:
            features = 1;
            break;
        case OPT_MAN:
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
    if (check_path)
        return check_config(check_path, &ov);
    if (dump)
        return dump_config(conf_path, &ov, comments);
    if (features) {
        if (!conf_path) {
            fprintf(stderr, "nextactd --features needs -c CONF\n");
            return 2;
        }
        return print_features(conf_path, &ov);
    }
    /* `nextactd -c CONF` runs the daemon, as `nextactd run -c CONF` */
    if (conf_path) {
        blas_reexec(argv);
        return nx_run_main(argc, argv);
    }
    usage(stderr);
    return 2;
}
