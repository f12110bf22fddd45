/*
 * Internals shared by the `mpb runs` sources: cmd_runs.c (dispatch,
 * experiments, list, show, metrics), cmd_runs_compare.c, runs_format.c
 * (time, duration and JSON shapes).
 * Threading: single-threaded tool. Processes: n/a.
 * Ownership: cJSON values returned are the caller's (cJSON_Delete or attach).
 */
#ifndef MPB_TOOLS_RUNS_INT_H
#define MPB_TOOLS_RUNS_INT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "mpbatch/store.h"

typedef struct runs_cli {
    const char *uri;
    int json;
    mpb_store *store;
    char err[1024];
} runs_cli;

/* Prints the last error and returns the exit status 1. */
int mpb_runs_fail(runs_cli *cli, int status);

/* Prints a usage problem and the usage; returns the exit status 2. */
int mpb_runs_usage_error(const char *usage, const char *fmt, const char *arg);

int mpb_runs_open_store(runs_cli *cli);

/* A subcommand of mpb runs or mpb models. usage NULL: it answers --help
 * itself; else `<command> --help` prints usage. */
typedef struct runs_subcommand {
    const char *name;
    int (*main)(runs_cli *cli, int argc, char **argv);
    const char *usage;
} runs_subcommand;

/* The shared main of mpb runs and mpb models: --tracking-uri (--uri) and
 * --json anywhere on the line, then the subcommand of the table; tool
 * ("mpb models") prefixes its messages. The exit status. */
int mpb_runs_dispatch(const char *tool, const char *usage, const runs_subcommand *table, size_t n,
                      int argc, char **argv);

/* 1 when arg asks for help ("--help" or "-h"). */
int mpb_runs_is_help(const char *arg);

/* Prints usage to stdout and returns 1 when argv is "<command> --help"; else 0. */
int mpb_runs_answer_help(int argc, char **argv, const char *usage);

/* "2026-11-03 10:00:00" (UTC) or "-" for a negative time. */
void mpb_runs_format_time(int64_t ms, char out[32]);

/* "12.3s", "3m12s" or "-". */
void mpb_runs_format_duration(int64_t start, int64_t end, char out[32]);

/* Widest cell of a table on a terminal; 0 (no limit) into a pipe. */
size_t mpb_runs_table_width(void);

/* MLflow REST JSON. A double as the shortest text that reads back to the
 * same double, non-finite ones as "NaN", "Infinity", "-Infinity"; an int64
 * (steps, timestamps) as its digits, never through a double. */
cJSON *mpb_runs_json_number(double value);
cJSON *mpb_runs_json_int(int64_t value);
cJSON *mpb_runs_json_key_values(const mpb_tag *items, size_t n);
cJSON *mpb_runs_json_metric(const mpb_metric *metric);
cJSON *mpb_runs_json_run(const mpb_run *run);
/* Prints and deletes root. */
void mpb_runs_print_json(cJSON *root);

/* 1 when arg is --all or --deleted (*view set), else 0. */
int mpb_runs_view_option(const char *arg, mpb_view_type *view);
/* Every experiment of a view, all pages (*out the caller's). */
int mpb_runs_all_experiments(runs_cli *cli, mpb_view_type view, mpb_experiment_page **out);

int mpb_runs_list(runs_cli *cli, int argc, char **argv);
int mpb_runs_compare(runs_cli *cli, int argc, char **argv);
int mpb_runs_migrate(runs_cli *cli, int argc, char **argv);
int mpb_runs_gc(runs_cli *cli, int argc, char **argv);
int mpb_runs_log_artifact(runs_cli *cli, int argc, char **argv);
int mpb_runs_create(runs_cli *cli, int argc, char **argv);

#endif
