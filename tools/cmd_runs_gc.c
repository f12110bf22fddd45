/*
 * `mpb runs gc`: permanently removes runs and experiments in the deleted
 * lifecycle stage, as `mlflow gc` does: their rows or folders and their
 * local artifacts. --older-than keeps what was deleted more recently (runs
 * by deleted_time, experiments by last_update_time; a run without a
 * deleted_time is kept then).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tools/runs_int.h"
#include "tracking/store_int.h"

#define MAX_IDS 256

static const char gc_usage[] =
    "usage: mpb runs gc [--older-than DURATION] [--run-ids ID,...] [--experiment-ids ID,...]\n"
    "  Permanently removes deleted runs and experiments with their artifacts\n"
    "  (default: every deleted run and experiment of the store).\n"
    "  --older-than      only what was deleted at least this long ago, e.g. 30d,\n"
    "                    1d2h30m, 90s (units d, h, m, s)\n"
    "  --run-ids         only these runs (each must be deleted)\n"
    "  --experiment-ids  only these experiments (each must be deleted), with\n"
    "                    all their runs\n";

/* "1d2h3m4s" -> ms; MPB_EINVAL when malformed. */
static int
parse_duration(const char *text, int64_t *out_ms)
{
    int64_t total = 0;
    const char *p = text;
    if (*p == '\0') {
        return MPB_EINVAL;
    }
    while (*p != '\0') {
        if (!isdigit((unsigned char)*p)) {
            return MPB_EINVAL;
        }
        char *end = NULL;
        long long n = strtoll(p, &end, 10);
        int64_t unit = *end == 'd' ? 86400000 : *end == 'h' ? 3600000 : *end == 'm' ? 60000
                     : *end == 's' ? 1000 : 0;
        if (unit == 0 || n > INT64_MAX / unit / 2 || total > INT64_MAX / 2 - (int64_t)n * unit) {
            return MPB_EINVAL; /* a term, or the sum, past what a time holds */
        }
        total += (int64_t)n * unit;
        p = end + 1;
    }
    *out_ms = total;
    return 0;
}

/* Splits "a,b,c" in place into ids; 0 when it names none or more than
 * max (an empty list must never mean "everything"). */
static size_t
split_ids(char *list, char **ids, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == max) {
            return 0;
        }
        ids[n++] = tok;
    }
    return n;
}

typedef struct gc_args {
    int64_t older_than_ms; /* -1: any age */
    char *run_ids[MAX_IDS];
    size_t n_run_ids;
    char *experiment_ids[MAX_IDS];
    size_t n_experiment_ids;
    char *lists[2];
} gc_args;

static int
parse_gc_args(int argc, char **argv, gc_args *args)
{
    memset(args, 0, sizeof *args);
    args->older_than_ms = -1;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (mpb_runs_is_help(argv[i])) {
            fputs(gc_usage, stdout);
            return 1;
        } else if (value == NULL) {
            return mpb_runs_usage_error(gc_usage, "'%s' needs a value or is unknown", argv[i]);
        } else if (strcmp(argv[i], "--older-than") == 0) {
            if (parse_duration(value, &args->older_than_ms) < 0) {
                return mpb_runs_usage_error(gc_usage, "bad duration '%s' (e.g. 30d, 1d2h, 90s)",
                                            value);
            }
        } else if (strcmp(argv[i], "--run-ids") == 0 && args->lists[0] == NULL) {
            args->lists[0] = mpb_strdup(value);
            args->n_run_ids = split_ids(args->lists[0], args->run_ids, MAX_IDS);
            if (args->n_run_ids == 0) {
                return mpb_runs_usage_error(gc_usage, "--run-ids '%s' names no run, or too many",
                                            value);
            }
        } else if (strcmp(argv[i], "--experiment-ids") == 0 && args->lists[1] == NULL) {
            args->lists[1] = mpb_strdup(value);
            args->n_experiment_ids = split_ids(args->lists[1], args->experiment_ids, MAX_IDS);
            if (args->n_experiment_ids == 0) {
                return mpb_runs_usage_error(
                    gc_usage, "--experiment-ids '%s' names no experiment, or too many", value);
            }
        } else {
            return mpb_runs_usage_error(gc_usage, "bad argument '%s'", argv[i]);
        }
        i++;
    }
    return 0;
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 when something deleted at `when` (-1 unknown) is old enough. */
static int
old_enough(const gc_args *args, int64_t when)
{
    return args->older_than_ms < 0 || (when >= 0 && when <= now_ms() - args->older_than_ms);
}

static int
purge_run(runs_cli *cli, const gc_args *args, const mpb_run_info *info, int explicit_id,
          size_t *count)
{
    if (strcmp(info->lifecycle_stage, "deleted") != 0) {
        if (!explicit_id) {
            return 0;
        }
        return mpb__set_error(cli->err, sizeof cli->err, MPB_EINVAL,
                              "Run %s is not in the deleted lifecycle stage; only deleted runs "
                              "can be deleted permanently",
                              info->run_id);
    }
    if (!old_enough(args, info->deleted_time)) {
        return 0;
    }
    int rc = mpb__store_purge_run(cli->store, info->run_id, cli->err, sizeof cli->err);
    if (rc == 0) {
        if (!cli->json) {
            printf("removed run %s (experiment %s)\n", info->run_id, info->experiment_id);
        }
        (*count)++;
    }
    return rc;
}

/* Deleted runs of every experiment (active or deleted) when no ids are given. */
static int
gc_all_runs(runs_cli *cli, const gc_args *args, size_t *count)
{
    mpb_search_opts eopts = {.view_type = MPB_VIEW_ALL,
                             .max_results = MPB_SEARCH_MAX_RESULTS_THRESHOLD};
    mpb_experiment_page *experiments = NULL;
    int rc = mpb_store_search_experiments(cli->store, &eopts, &experiments, cli->err,
                                          sizeof cli->err);
    for (size_t e = 0; rc == 0 && e < experiments->n_experiments; e++) {
        const char *ids[] = {experiments->experiments[e].experiment_id};
        mpb_search_opts opts = {.view_type = MPB_VIEW_DELETED_ONLY,
                                .max_results = MPB_SEARCH_MAX_RESULTS_THRESHOLD};
        mpb_run_page *page = NULL;
        rc = mpb_store_search_runs(cli->store, ids, 1, &opts, &page, cli->err, sizeof cli->err);
        for (size_t r = 0; rc == 0 && r < page->n_runs; r++) {
            rc = purge_run(cli, args, &page->runs[r].info, 0, count);
        }
        mpb_run_page_free(&page);
    }
    mpb_experiment_page_free(&experiments);
    return rc;
}

static int
purge_experiment(runs_cli *cli, const gc_args *args, const mpb_experiment *e, int explicit_id,
                 size_t *count)
{
    if (strcmp(e->lifecycle_stage, "deleted") != 0) {
        if (!explicit_id) {
            return 0;
        }
        return mpb__set_error(cli->err, sizeof cli->err, MPB_EINVAL,
                              "Experiment %s is not in the deleted lifecycle stage; only deleted "
                              "experiments can be deleted permanently",
                              e->experiment_id);
    }
    if (!old_enough(args, e->last_update_time)) {
        return 0;
    }
    int rc = mpb__store_purge_experiment(cli->store, e->experiment_id, cli->err, sizeof cli->err);
    if (rc == 0) {
        if (!cli->json) {
            printf("removed experiment %s (%s) with its runs\n", e->experiment_id, e->name);
        }
        (*count)++;
    }
    return rc;
}

static int
run_gc(runs_cli *cli, const gc_args *args, size_t *runs, size_t *experiments)
{
    int rc = 0;
    int everything = args->n_run_ids == 0 && args->n_experiment_ids == 0;
    for (size_t i = 0; rc == 0 && i < args->n_run_ids; i++) {
        mpb_run *run = NULL;
        rc = mpb_store_get_run(cli->store, args->run_ids[i], &run, cli->err, sizeof cli->err);
        if (rc == 0) {
            rc = purge_run(cli, args, &run->info, 1, runs);
        }
        mpb_run_free(&run);
    }
    if (rc == 0 && everything) {
        rc = gc_all_runs(cli, args, runs);
    }
    mpb_experiment_page *page = NULL;
    if (rc == 0 && everything) {
        mpb_search_opts opts = {.view_type = MPB_VIEW_DELETED_ONLY,
                                .max_results = MPB_SEARCH_MAX_RESULTS_THRESHOLD};
        rc = mpb_store_search_experiments(cli->store, &opts, &page, cli->err, sizeof cli->err);
        for (size_t i = 0; rc == 0 && i < page->n_experiments; i++) {
            rc = purge_experiment(cli, args, &page->experiments[i], 0, experiments);
        }
    }
    mpb_experiment_page_free(&page);
    for (size_t i = 0; rc == 0 && i < args->n_experiment_ids; i++) {
        mpb_experiment *e = NULL;
        rc = mpb_store_get_experiment(cli->store, args->experiment_ids[i], &e, cli->err,
                                      sizeof cli->err);
        if (rc == 0) {
            rc = purge_experiment(cli, args, e, 1, experiments);
        }
        mpb_experiment_free(&e);
    }
    return rc;
}

int
mpb_runs_gc(runs_cli *cli, int argc, char **argv)
{
    gc_args args;
    int parsed = parse_gc_args(argc, argv, &args);
    size_t runs = 0;
    size_t experiments = 0;
    int rc = 0;
    if (parsed == 0) {
        rc = mpb_runs_open_store(cli);
        if (rc == 0) {
            rc = run_gc(cli, &args, &runs, &experiments);
        }
        if (cli->json) {
            cJSON *root = cJSON_CreateObject();
            cJSON_AddNumberToObject(root, "runs_removed", (double)runs);
            cJSON_AddNumberToObject(root, "experiments_removed", (double)experiments);
            mpb_runs_print_json(root);
        } else {
            printf("gc: %zu run(s), %zu experiment(s) removed\n", runs, experiments);
        }
    }
    free(args.lists[0]);
    free(args.lists[1]);
    if (parsed != 0) {
        return parsed == 1 ? 0 : parsed;
    }
    return rc < 0 ? mpb_runs_fail(cli, rc) : 0;
}
