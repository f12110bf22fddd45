/*
 * `mpb`: the command-line front end. Each subcommand lives in its own file
 * (cmd_<name>.c) and is listed in the table below.
 */
#include <stdio.h>
#include <string.h>

#include "tools/commands.h"

struct command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"run", mpb_cmd_run, "stream input lines through a servlet built from a YAML config"},
    {"serve", mpb_cmd_serve, "serve a YAML config's servlet tree to clients (ZeroMQ, HTTP)"},
    {"call", mpb_cmd_call, "send input lines to a running mpb serve, print results in order"},
    {"runs", mpb_cmd_runs, "browse a tracking store: experiments, runs, metrics"},
    {"models", mpb_cmd_models, "the model registry: register versions, list, show, aliases"},
    {"plugins", mpb_cmd_plugins, "list the worker plugins found, or show what one declares"},
    {"bench", mpb_cmd_bench, "sweep batch size, wait, workers and load; tables, plots, runs"},
    {"keygen", mpb_cmd_keygen, "write a CURVE certificate pair (NAME.key, NAME.pub)"},
};

static void
print_usage(FILE *out)
{
    fprintf(out, "usage: mpb <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\n'mpb <command> --help' describes a command.\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].main(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "mpb: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return 2;
}
