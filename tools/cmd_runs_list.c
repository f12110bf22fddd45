/*
 * `mpb runs list`: the runs of some experiments (default: every active
 * one), filtered and ordered by the store, as a table or --json.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tools/runs_int.h"
#include "tools/table.h"

#define MAX_EXPERIMENTS 64
#define MAX_ORDER_BY 8

static const char list_usage[] =
    "usage: mpb runs list [--experiment NAME]... [--filter EXPR] [--order-by CLAUSE]...\n"
    "                     [--max N] [--all | --deleted]\n"
    "  Lists runs of the named experiments (an id works too; default: every\n"
    "  active experiment), newest first.\n"
    "  --filter    MLflow search syntax, e.g. \"params.lr = '0.1' AND metrics.loss < 1\"\n"
    "  --order-by  e.g. \"metrics.loss DESC\" or \"attributes.start_time\"\n"
    "  --max       at most N runs (default: all)\n";

typedef struct list_args {
    const char *experiments[MAX_EXPERIMENTS];
    size_t n_experiments;
    const char *filter;
    const char *order_by[MAX_ORDER_BY];
    size_t n_order_by;
    size_t max;
    mpb_view_type view;
} list_args;

static int
parse_list_args(int argc, char **argv, list_args *args)
{
    memset(args, 0, sizeof *args);
    args->view = MPB_VIEW_ACTIVE_ONLY;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (mpb_runs_is_help(arg)) {
            fputs(list_usage, stdout);
            return 1;
        } else if (mpb_runs_view_option(arg, &args->view)) {
            continue;
        } else if (value == NULL) {
            return mpb_runs_usage_error(list_usage, "'%s' needs a value or is unknown", arg);
        } else if (strcmp(arg, "--experiment") == 0) {
            if (args->n_experiments == MAX_EXPERIMENTS) {
                return mpb_runs_usage_error(list_usage, "%s: at most 64 --experiment options",
                                            value);
            }
            args->experiments[args->n_experiments++] = value;
        } else if (strcmp(arg, "--filter") == 0) {
            args->filter = value;
        } else if (strcmp(arg, "--order-by") == 0 && args->n_order_by < MAX_ORDER_BY) {
            args->order_by[args->n_order_by++] = value;
        } else if (strcmp(arg, "--max") == 0 && atol(value) > 0) {
            args->max = (size_t)atol(value);
        } else {
            return mpb_runs_usage_error(list_usage, "bad argument '%s'", arg);
        }
        i++;
    }
    return 0;
}

/* Experiment ids for names (or ids) given, or of every active experiment,
 * however many. Fills *ids_out and *names_out (the caller frees each entry
 * and both arrays): an id -> name lookup table. */
static int
resolve_experiments(runs_cli *cli, const list_args *args, char ***ids_out, char ***names_out,
                    size_t *n)
{
    *n = 0;
    if (args->n_experiments == 0) {
        mpb_experiment_page *page = NULL;
        int rc = mpb_runs_all_experiments(cli, MPB_VIEW_ACTIVE_ONLY, &page);
        size_t count = rc == 0 ? page->n_experiments : 0;
        char **ids = *ids_out = mpb_calloc(count ? count : 1, sizeof *ids);
        char **names = *names_out = mpb_calloc(count ? count : 1, sizeof *names);
        for (size_t i = 0; i < count; i++) {
            ids[*n] = mpb_strdup(page->experiments[i].experiment_id);
            names[(*n)++] = mpb_strdup(page->experiments[i].name);
        }
        mpb_experiment_page_free(&page);
        return rc;
    }
    char **ids = *ids_out = mpb_calloc(args->n_experiments, sizeof *ids);
    char **names = *names_out = mpb_calloc(args->n_experiments, sizeof *names);
    for (size_t i = 0; i < args->n_experiments; i++) {
        mpb_experiment *experiment = NULL;
        int rc = mpb_store_get_experiment_by_name(cli->store, args->experiments[i], &experiment,
                                                  cli->err, sizeof cli->err);
        if (rc == MPB_ENOTFOUND || rc == MPB_EINVAL) {
            char by_name[sizeof cli->err];
            memcpy(by_name, cli->err, sizeof by_name);
            rc = mpb_store_get_experiment(cli->store, args->experiments[i], &experiment, NULL, 0);
            if (rc < 0) {
                memcpy(cli->err, by_name, sizeof by_name);
                return MPB_ENOTFOUND;
            }
        }
        if (rc < 0) {
            return rc;
        }
        ids[*n] = mpb_strdup(experiment->experiment_id);
        names[(*n)++] = mpb_strdup(experiment->name);
        mpb_experiment_free(&experiment);
    }
    return 0;
}

static const char *
name_of(char **ids, char **names, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ids[i], id) == 0) {
            return names[i];
        }
    }
    return id;
}

static void
print_runs_table(const mpb_run_page *const *pages, size_t n_pages, char **ids, char **names,
                 size_t n_ids)
{
    const char *headers[] = {"RUN_ID", "NAME", "STATUS", "START (UTC)", "DURATION", "EXPERIMENT"};
    mpb_table *table = mpb_table_new(6, headers);
    for (size_t p = 0; p < n_pages; p++) {
        for (size_t i = 0; i < pages[p]->n_runs; i++) {
            const mpb_run_info *info = &pages[p]->runs[i].info;
            char start[32];
            char duration[32];
            mpb_runs_format_time(info->start_time, start);
            mpb_runs_format_duration(info->start_time, info->end_time, duration);
            const char *cells[] = {
                info->run_id, info->run_name, mpb_run_status_name(info->status),
                start,        duration,       name_of(ids, names, n_ids, info->experiment_id)};
            mpb_table_add_row(table, cells);
        }
    }
    mpb_table_print(table, stdout, mpb_runs_table_width());
    mpb_table_destroy(&table);
}

static int
search_all_pages(runs_cli *cli, const list_args *args, char **ids, size_t n_ids,
                 mpb_run_page ***out_pages, size_t *out_n)
{
    mpb_run_page **pages = NULL;
    size_t n_pages = 0;
    size_t total = 0;
    char *token = NULL;
    int rc = 0;
    do {
        size_t want = args->max ? args->max - total : MPB_SEARCH_MAX_RESULTS_DEFAULT;
        mpb_search_opts opts = {
            .filter = args->filter,
            .order_by = args->order_by,
            .n_order_by = args->n_order_by,
            .view_type = args->view,
            .max_results =
                want < MPB_SEARCH_MAX_RESULTS_DEFAULT ? want : MPB_SEARCH_MAX_RESULTS_DEFAULT,
            .page_token = token,
        };
        mpb_run_page *page = NULL;
        rc = mpb_store_search_runs(cli->store, (const char *const *)ids, n_ids, &opts, &page,
                                   cli->err, sizeof cli->err);
        free(token);
        token = NULL;
        if (rc < 0) {
            break;
        }
        pages = mpb_realloc(pages, (n_pages + 1) * sizeof *pages);
        pages[n_pages++] = page;
        total += page->n_runs;
        if (page->next_page_token != NULL && (args->max == 0 || total < args->max)) {
            token = mpb_strdup(page->next_page_token);
        }
    } while (token != NULL);
    *out_pages = pages;
    *out_n = n_pages;
    return rc;
}

int
mpb_runs_list(runs_cli *cli, int argc, char **argv)
{
    list_args args;
    int parsed = parse_list_args(argc, argv, &args);
    if (parsed != 0) {
        return parsed == 1 ? 0 : parsed;
    }
    char **ids = NULL;
    char **names = NULL;
    size_t n_ids = 0;
    mpb_run_page **pages = NULL;
    size_t n_pages = 0;
    int rc = mpb_runs_open_store(cli);
    if (rc == 0) {
        rc = resolve_experiments(cli, &args, &ids, &names, &n_ids);
    }
    if (rc == 0 && n_ids > 0) {
        rc = search_all_pages(cli, &args, ids, n_ids, &pages, &n_pages);
    }
    if (rc == 0 && cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *runs = cJSON_AddArrayToObject(root, "runs");
        for (size_t p = 0; p < n_pages; p++) {
            for (size_t i = 0; i < pages[p]->n_runs; i++) {
                cJSON_AddItemToArray(runs, mpb_runs_json_run(&pages[p]->runs[i]));
            }
        }
        mpb_runs_print_json(root);
    } else if (rc == 0) {
        print_runs_table((const mpb_run_page *const *)pages, n_pages, ids, names, n_ids);
    }
    for (size_t p = 0; p < n_pages; p++) {
        mpb_run_page_free(&pages[p]);
    }
    free(pages);
    for (size_t i = 0; i < n_ids; i++) {
        free(ids[i]);
        free(names[i]);
    }
    free(ids);
    free(names);
    return rc < 0 ? mpb_runs_fail(cli, rc) : 0;
}
