/* `mpb runs compare`: params and latest metrics of runs side by side. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/store.h"
#include "tools/runs_int.h"
#include "tools/table.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

static const char compare_usage[] =
    "usage: mpb runs compare RUN_ID...\n"
    "  Shows the params and latest metrics of several runs side by side\n"
    "  (one column per run, '-' where a run lacks the key).\n";

/* Sorted distinct keys (params when metrics == 0) across runs; borrowed. */
static const char **
union_keys(mpb_run **runs, size_t n_runs, int metrics, size_t *out_n)
{
    size_t total = 0;
    for (size_t r = 0; r < n_runs; r++) {
        total += metrics ? runs[r]->n_metrics : runs[r]->n_params;
    }
    const char **keys = mpb_calloc(total ? total : 1, sizeof *keys);
    size_t n = 0;
    for (size_t r = 0; r < n_runs; r++) {
        size_t count = metrics ? runs[r]->n_metrics : runs[r]->n_params;
        for (size_t i = 0; i < count; i++) {
            keys[n++] = metrics ? runs[r]->metrics[i].key : runs[r]->params[i].key;
        }
    }
    *out_n = mpb__strings_sort_unique(keys, n);
    return keys;
}

/* The cell of run r for a key; value buffer for metrics. NULL when absent. */
static const char *
compare_cell(const mpb_run *run, const char *key, int metrics, char value[32])
{
    if (!metrics) {
        return mpb__param_find(run->params, run->n_params, key);
    }
    const mpb_metric *metric = mpb__metric_find(run->metrics, run->n_metrics, key);
    if (metric == NULL) {
        return NULL;
    }
    mpb__format_double(metric->value, value);
    return value;
}

static void
print_compare(mpb_run **runs, size_t n_runs, const char **params, size_t n_params,
              const char **metrics, size_t n_metrics)
{
    const char **headers = mpb_calloc(n_runs + 1, sizeof *headers);
    char **labels = mpb_calloc(n_runs, sizeof *labels);
    headers[0] = "KEY";
    for (size_t r = 0; r < n_runs; r++) {
        labels[r] = mpb_asprintf("%s (%.8s)", runs[r]->info.run_name, runs[r]->info.run_id);
        headers[r + 1] = labels[r];
    }
    mpb_table *table = mpb_table_new(n_runs + 1, headers);
    const char **cells = mpb_calloc(n_runs + 1, sizeof *cells);
    char(*values)[32] = mpb_calloc(n_runs, sizeof *values);
    for (int pass = 0; pass < 2; pass++) {
        const char **keys = pass ? metrics : params;
        size_t n_keys = pass ? n_metrics : n_params;
        for (size_t k = 0; k < n_keys; k++) {
            char *label = mpb_asprintf("%s.%s", pass ? "metrics" : "params", keys[k]);
            cells[0] = label;
            for (size_t r = 0; r < n_runs; r++) {
                cells[r + 1] = compare_cell(runs[r], keys[k], pass, values[r]);
            }
            mpb_table_add_row(table, cells);
            free(label);
        }
    }
    mpb_table_print(table, stdout, mpb_runs_table_width());
    mpb_table_destroy(&table);
    free(values);
    free(cells);
    for (size_t r = 0; r < n_runs; r++) {
        free(labels[r]);
    }
    free(labels);
    free(headers);
}

static cJSON *
compare_json(mpb_run **runs, size_t n_runs, const char **params, size_t n_params,
             const char **metrics, size_t n_metrics)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "runs");
    for (size_t r = 0; r < n_runs; r++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "run_id", runs[r]->info.run_id);
        cJSON_AddStringToObject(item, "run_name", runs[r]->info.run_name);
        cJSON_AddItemToArray(list, item);
    }
    cJSON *json_params = cJSON_AddObjectToObject(root, "params");
    for (size_t k = 0; k < n_params; k++) {
        cJSON *values = cJSON_AddArrayToObject(json_params, params[k]);
        for (size_t r = 0; r < n_runs; r++) {
            const char *value = mpb__param_find(runs[r]->params, runs[r]->n_params, params[k]);
            cJSON_AddItemToArray(values, value ? cJSON_CreateString(value) : cJSON_CreateNull());
        }
    }
    cJSON *json_metrics = cJSON_AddObjectToObject(root, "metrics");
    for (size_t k = 0; k < n_metrics; k++) {
        cJSON *values = cJSON_AddArrayToObject(json_metrics, metrics[k]);
        for (size_t r = 0; r < n_runs; r++) {
            const mpb_metric *m =
                mpb__metric_find(runs[r]->metrics, runs[r]->n_metrics, metrics[k]);
            cJSON_AddItemToArray(values, m ? mpb_runs_json_number(m->value) : cJSON_CreateNull());
        }
    }
    return root;
}

int
mpb_runs_compare(runs_cli *cli, int argc, char **argv)
{
    if (mpb_runs_answer_help(argc, argv, compare_usage)) {
        return 0;
    }
    if (argc < 2) {
        return mpb_runs_usage_error(compare_usage, "%s", "compare takes at least one RUN_ID");
    }
    size_t n_runs = (size_t)argc - 1;
    mpb_run **runs = mpb_calloc(n_runs, sizeof *runs);
    int rc = mpb_runs_open_store(cli);
    for (size_t r = 0; rc == 0 && r < n_runs; r++) {
        rc = mpb_store_get_run(cli->store, argv[r + 1], &runs[r], cli->err, sizeof cli->err);
    }
    if (rc == 0) {
        size_t n_params = 0;
        size_t n_metrics = 0;
        const char **params = union_keys(runs, n_runs, 0, &n_params);
        const char **metrics = union_keys(runs, n_runs, 1, &n_metrics);
        if (cli->json) {
            mpb_runs_print_json(compare_json(runs, n_runs, params, n_params, metrics, n_metrics));
        } else {
            print_compare(runs, n_runs, params, n_params, metrics, n_metrics);
        }
        free(params);
        free(metrics);
    }
    for (size_t r = 0; r < n_runs; r++) {
        mpb_run_free(&runs[r]);
    }
    free(runs);
    return rc < 0 ? mpb_runs_fail(cli, rc) : 0;
}
