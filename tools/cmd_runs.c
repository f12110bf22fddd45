/*
 * `mpb runs`: browse a tracking store from the shell. Tables for people,
 * --json (cJSON) for scripts, the metric history as CSV. Reads only; every
 * subcommand goes through the public store API.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tools/commands.h"
#include "tools/runs_int.h"
#include "tools/table.h"
#include "tracking/store_int.h"
#include "tracking/text.h"


static const char general_usage[] =
    "usage: mpb runs [--tracking-uri URI] [--json] <command> [options]\n"
    "\n"
    "Browse a tracking store (MLflow's SQLite schema or mlruns/ layout).\n"
    "\n"
    "commands:\n"
    "  experiments          list experiments\n"
    "  list                 list runs, optionally filtered and ordered\n"
    "  show RUN_ID          one run: info, params, latest metrics, tags\n"
    "  metrics RUN_ID KEY   a metric's history as CSV (step,timestamp,value)\n"
    "  compare RUN_ID...    params and latest metrics of runs side by side\n"
    "  migrate              copy a whole store into another one, then verify it\n"
    "  gc                   permanently remove deleted runs and experiments\n"
    "  create               make a run to hold artifacts (a model); prints its id\n"
    "  log-artifact RUN_ID FILE [PATH]  put a file into a run; prints its runs:/ URI\n"
    "\n"
    "options (anywhere on the line):\n"
    "  --tracking-uri URI  tracking URI: sqlite:///PATH.db, file:PATH or a path\n"
    "                      (--uri is the same; default: $MLFLOW_TRACKING_URI, else\n"
    "                      ./mlruns if it holds experiments, else sqlite:///mlflow.db)\n"
    "  --json              JSON output for scripts, numbers exact as MLflow's REST API\n"
    "\n"
    "'mpb runs <command> --help' describes a command.\n";

int
mpb_runs_fail(runs_cli *cli, int status)
{
    fprintf(stderr, "mpb runs: %s\n", cli->err[0] ? cli->err : mpb_strerror(status));
    return 1;
}

int
mpb_runs_usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "mpb runs: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

int
mpb_runs_open_store(runs_cli *cli)
{
    return mpb_store_open(cli->uri, &cli->store, cli->err, sizeof cli->err);
}

int
mpb_runs_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int
mpb_runs_answer_help(int argc, char **argv, const char *usage)
{
    if (argc == 2 && mpb_runs_is_help(argv[1])) {
        fputs(usage, stdout);
        return 1;
    }
    return 0;
}

/* ---- experiments ---- */

static const char experiments_usage[] =
    "usage: mpb runs experiments [--all | --deleted]\n"
    "  Lists active experiments (--deleted: deleted ones, --all: both).\n";

int
mpb_runs_view_option(const char *arg, mpb_view_type *view)
{
    if (strcmp(arg, "--all") == 0) {
        *view = MPB_VIEW_ALL;
    } else if (strcmp(arg, "--deleted") == 0) {
        *view = MPB_VIEW_DELETED_ONLY;
    } else {
        return 0;
    }
    return 1;
}

int
mpb_runs_all_experiments(runs_cli *cli, mpb_view_type view, mpb_experiment_page **out)
{
    mpb_search_opts opts = {.view_type = view, .max_results = MPB_SEARCH_MAX_RESULTS_THRESHOLD};
    return mpb_store_search_experiments(cli->store, &opts, out, cli->err, sizeof cli->err);
}

static int
cmd_experiments(runs_cli *cli, int argc, char **argv)
{
    mpb_view_type view = MPB_VIEW_ACTIVE_ONLY;
    for (int i = 1; i < argc; i++) {
        if (mpb_runs_is_help(argv[i])) {
            fputs(experiments_usage, stdout);
            return 0;
        }
        if (!mpb_runs_view_option(argv[i], &view)) {
            return mpb_runs_usage_error(experiments_usage, "unknown argument '%s'", argv[i]);
        }
    }
    mpb_experiment_page *page = NULL;
    int rc = mpb_runs_open_store(cli);
    if (rc == 0) {
        rc = mpb_runs_all_experiments(cli, view, &page);
    }
    if (rc < 0) {
        return mpb_runs_fail(cli, rc);
    }
    if (cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(root, "experiments");
        for (size_t i = 0; i < page->n_experiments; i++) {
            const mpb_experiment *e = &page->experiments[i];
            cJSON *item = cJSON_CreateObject();
            cJSON_AddStringToObject(item, "experiment_id", e->experiment_id);
            cJSON_AddStringToObject(item, "name", e->name);
            cJSON_AddStringToObject(item, "artifact_location", e->artifact_location);
            cJSON_AddStringToObject(item, "lifecycle_stage", e->lifecycle_stage);
            cJSON_AddItemToObject(item, "creation_time", mpb_runs_json_int(e->creation_time));
            cJSON_AddItemToObject(item, "last_update_time", mpb_runs_json_int(e->last_update_time));
            cJSON_AddItemToObject(item, "tags", mpb_runs_json_key_values(e->tags, e->n_tags));
            cJSON_AddItemToArray(list, item);
        }
        mpb_runs_print_json(root);
    } else {
        const char *headers[] = {"ID", "NAME", "STAGE", "CREATED (UTC)"};
        mpb_table *table = mpb_table_new(4, headers);
        for (size_t i = 0; i < page->n_experiments; i++) {
            const mpb_experiment *e = &page->experiments[i];
            char created[32];
            mpb_runs_format_time(e->creation_time, created);
            const char *cells[] = {e->experiment_id, e->name, e->lifecycle_stage, created};
            mpb_table_add_row(table, cells);
        }
        mpb_table_print(table, stdout, mpb_runs_table_width());
        mpb_table_destroy(&table);
    }
    mpb_experiment_page_free(&page);
    return 0;
}

/* ---- list ---- */

/* ---- show ---- */

static const char show_usage[] = "usage: mpb runs show RUN_ID\n"
                                 "  Shows a run: info, params, latest metrics and tags.\n";

static void
print_key_values(const char *title, const mpb_tag *items, size_t n)
{
    printf("\n%s:\n", title);
    if (n == 0) {
        printf("  (none)\n");
        return;
    }
    const char *headers[] = {"  KEY", "VALUE"};
    mpb_table *table = mpb_table_new(2, headers);
    for (size_t i = 0; i < n; i++) {
        char *key = mpb_asprintf("  %s", items[i].key);
        const char *cells[] = {key, items[i].value};
        mpb_table_add_row(table, cells);
        free(key);
    }
    mpb_table_print(table, stdout, mpb_runs_table_width() * 2);
    mpb_table_destroy(&table);
}

static void
print_run(const mpb_run *run, const char *experiment_name)
{
    const mpb_run_info *info = &run->info;
    char start[32];
    char end[32];
    char duration[32];
    mpb_runs_format_time(info->start_time, start);
    mpb_runs_format_time(info->end_time, end);
    mpb_runs_format_duration(info->start_time, info->end_time, duration);
    printf("run_id:      %s\n", info->run_id);
    printf("name:        %s\n", info->run_name);
    printf("experiment:  %s (%s)\n", info->experiment_id, experiment_name);
    printf("status:      %s\n", mpb_run_status_name(info->status));
    printf("lifecycle:   %s\n", info->lifecycle_stage);
    printf("user:        %s\n", info->user_id);
    printf("start (UTC): %s\n", start);
    printf("end (UTC):   %s\n", end);
    printf("duration:    %s\n", duration);
    printf("artifacts:   %s\n", info->artifact_uri);
    print_key_values("params", (const mpb_tag *)run->params, run->n_params);
    printf("\nmetrics (latest):\n");
    if (run->n_metrics == 0) {
        printf("  (none)\n");
    } else {
        const char *headers[] = {"  KEY", "VALUE", "STEP", "TIMESTAMP"};
        mpb_table *table = mpb_table_new(4, headers);
        for (size_t i = 0; i < run->n_metrics; i++) {
            char *key = mpb_asprintf("  %s", run->metrics[i].key);
            char value[32];
            char step[32];
            char stamp[32];
            mpb__format_double(run->metrics[i].value, value);
            snprintf(step, sizeof step, "%" PRId64, run->metrics[i].step);
            snprintf(stamp, sizeof stamp, "%" PRId64, run->metrics[i].timestamp_ms);
            const char *cells[] = {key, value, step, stamp};
            mpb_table_add_row(table, cells);
            free(key);
        }
        mpb_table_print(table, stdout, 0);
        mpb_table_destroy(&table);
    }
    print_key_values("tags", run->tags, run->n_tags);
}

static int
cmd_show(runs_cli *cli, int argc, char **argv)
{
    if (mpb_runs_answer_help(argc, argv, show_usage)) {
        return 0;
    }
    if (argc != 2) {
        return mpb_runs_usage_error(show_usage, "%s", "show takes one RUN_ID");
    }
    mpb_run *run = NULL;
    int rc = mpb_runs_open_store(cli);
    if (rc == 0) {
        rc = mpb_store_get_run(cli->store, argv[1], &run, cli->err, sizeof cli->err);
    }
    if (rc < 0) {
        return mpb_runs_fail(cli, rc);
    }
    if (cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "run", mpb_runs_json_run(run));
        mpb_runs_print_json(root);
    } else {
        mpb_experiment *experiment = NULL;
        (void)mpb_store_get_experiment(cli->store, run->info.experiment_id, &experiment, NULL, 0);
        print_run(run, experiment ? experiment->name : "?");
        mpb_experiment_free(&experiment);
    }
    mpb_run_free(&run);
    return 0;
}

/* ---- metrics ---- */

static const char metrics_usage[] =
    "usage: mpb runs metrics RUN_ID KEY\n"
    "  Prints every logged value of a metric, in logged order, as CSV with the\n"
    "  header step,timestamp,value (timestamp in ms since the epoch).\n";

static int
cmd_metrics(runs_cli *cli, int argc, char **argv)
{
    if (mpb_runs_answer_help(argc, argv, metrics_usage)) {
        return 0;
    }
    if (argc != 3) {
        return mpb_runs_usage_error(metrics_usage, "%s", "metrics takes RUN_ID and KEY");
    }
    mpb_metric_history *history = NULL;
    int rc = mpb_runs_open_store(cli);
    if (rc == 0) {
        rc = mpb_store_get_metric_history(cli->store, argv[1], argv[2], &history, cli->err,
                                          sizeof cli->err);
    }
    if (rc < 0) {
        return mpb_runs_fail(cli, rc);
    }
    if (cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "run_id", history->run_id);
        cJSON_AddStringToObject(root, "key", history->key);
        cJSON *list = cJSON_AddArrayToObject(root, "metrics");
        for (size_t i = 0; i < history->n_metrics; i++) {
            cJSON_AddItemToArray(list, mpb_runs_json_metric(&history->metrics[i]));
        }
        mpb_runs_print_json(root);
    } else {
        printf("step,timestamp,value\n");
        for (size_t i = 0; i < history->n_metrics; i++) {
            char value[32];
            mpb__format_double(history->metrics[i].value, value);
            printf("%" PRId64 ",%" PRId64 ",%s\n", history->metrics[i].step,
                   history->metrics[i].timestamp_ms, value);
        }
    }
    mpb_metric_history_free(&history);
    return 0;
}

/* ---- dispatch ---- */

static const runs_subcommand subcommands[] = {
    {"experiments", cmd_experiments, NULL},
    {"list", mpb_runs_list, NULL},
    {"show", cmd_show, NULL},
    {"metrics", cmd_metrics, NULL},
    {"compare", mpb_runs_compare, NULL},
    {"migrate", mpb_runs_migrate, NULL},
    {"gc", mpb_runs_gc, NULL},
    {"create", mpb_runs_create, NULL},
    {"log-artifact", mpb_runs_log_artifact, NULL},
};

int
mpb_runs_dispatch(const char *tool, const char *usage, const runs_subcommand *table, size_t n,
                  int argc, char **argv)
{
    runs_cli cli = {0};
    /* Global options may appear anywhere; the rest goes to the subcommand. */
    char **rest = mpb_calloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            cli.json = 1;
        } else if ((strcmp(argv[i], "--tracking-uri") == 0 || strcmp(argv[i], "--uri") == 0) &&
                   i + 1 < argc) {
            cli.uri = argv[++i];
        } else if (strncmp(argv[i], "--tracking-uri=", 15) == 0) {
            cli.uri = argv[i] + 15;
        } else if (strncmp(argv[i], "--uri=", 6) == 0) {
            cli.uri = argv[i] + 6;
        } else {
            rest[n_rest++] = argv[i];
        }
    }
    int status = -1;
    if (n_rest == 0 || mpb_runs_is_help(rest[0])) {
        fputs(usage, n_rest == 0 ? stderr : stdout);
        status = n_rest == 0 ? 2 : 0;
    }
    for (size_t i = 0; status < 0 && i < n; i++) {
        if (strcmp(rest[0], table[i].name) != 0) {
            continue;
        }
        if (table[i].usage != NULL && n_rest == 2 && mpb_runs_is_help(rest[1])) {
            fputs(table[i].usage, stdout);
            status = 0;
        } else {
            status = table[i].main(&cli, n_rest, rest);
        }
    }
    if (status < 0) {
        fprintf(stderr, "%s: unknown command '%s'\n%s", tool, rest[0], usage);
        status = 2;
    }
    mpb_store_destroy(&cli.store);
    free(rest);
    return status;
}

int
mpb_cmd_runs(int argc, char **argv)
{
    return mpb_runs_dispatch("mpb runs", general_usage, subcommands, MPB_ARRAY_LEN(subcommands),
                             argc, argv);
}
