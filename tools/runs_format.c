/* Time, duration and JSON shapes of `mpb runs`. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpbatch/store.h"
#include "tools/json_out.h"
#include "tracking/reststore_int.h"
#include "tools/runs_int.h"
#include "tracking/text.h"

#define CELL_WIDTH 48

void
mpb_runs_format_time(int64_t ms, char out[32])
{
    if (ms < 0) {
        strcpy(out, "-");
        return;
    }
    time_t seconds = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&seconds, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

void
mpb_runs_format_duration(int64_t start, int64_t end, char out[32])
{
    if (start < 0 || end < start) {
        strcpy(out, "-");
    } else if (end - start < 60000) {
        snprintf(out, 32, "%.1fs", (double)(end - start) / 1000.0);
    } else {
        int64_t s = (end - start) / 1000;
        snprintf(out, 32, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    }
}

size_t
mpb_runs_table_width(void)
{
    return isatty(STDOUT_FILENO) ? CELL_WIDTH : 0;
}

/* ---- JSON shapes (MLflow REST: non-finite numbers as strings) ----
 * Numbers are exact: cJSON would print a double with 15 digits or 17 (never
 * the shortest that reads back) and an int64 through a double, so numbers go
 * in as raw text made here. */

cJSON *
mpb_runs_json_number(double value)
{
    if (isnan(value)) {
        return cJSON_CreateString("NaN");
    }
    if (isinf(value)) {
        return cJSON_CreateString(value > 0 ? "Infinity" : "-Infinity");
    }
    char text[32];
    mpb__format_double(value, text);
    return cJSON_CreateRaw(text);
}

cJSON *
mpb_runs_json_int(int64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, value);
    return cJSON_CreateRaw(text);
}

cJSON *
mpb_runs_json_key_values(const mpb_tag *items, size_t n)
{
    return mpb__rest_tags_to_json(items, n); /* --json answers as MLflow's REST API */
}

cJSON *
mpb_runs_json_metric(const mpb_metric *metric)
{
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "key", metric->key);
    cJSON_AddItemToObject(item, "value", mpb_runs_json_number(metric->value));
    cJSON_AddItemToObject(item, "timestamp", mpb_runs_json_int(metric->timestamp_ms));
    cJSON_AddItemToObject(item, "step", mpb_runs_json_int(metric->step));
    return item;
}

cJSON *
mpb_runs_json_run(const mpb_run *run)
{
    const mpb_run_info *info = &run->info;
    cJSON *root = cJSON_CreateObject();
    cJSON *json_info = cJSON_AddObjectToObject(root, "info");
    cJSON_AddStringToObject(json_info, "run_id", info->run_id);
    cJSON_AddStringToObject(json_info, "run_name", info->run_name);
    cJSON_AddStringToObject(json_info, "experiment_id", info->experiment_id);
    cJSON_AddStringToObject(json_info, "user_id", info->user_id);
    cJSON_AddStringToObject(json_info, "status", mpb_run_status_name(info->status));
    cJSON_AddItemToObject(json_info, "start_time", mpb_runs_json_int(info->start_time));
    if (info->end_time >= 0) {
        cJSON_AddItemToObject(json_info, "end_time", mpb_runs_json_int(info->end_time));
    }
    cJSON_AddStringToObject(json_info, "artifact_uri", info->artifact_uri);
    cJSON_AddStringToObject(json_info, "lifecycle_stage", info->lifecycle_stage);
    cJSON *data = cJSON_AddObjectToObject(root, "data");
    cJSON *metrics = cJSON_AddArrayToObject(data, "metrics");
    for (size_t i = 0; i < run->n_metrics; i++) {
        cJSON_AddItemToArray(metrics, mpb_runs_json_metric(&run->metrics[i]));
    }
    cJSON_AddItemToObject(data, "params",
                          mpb_runs_json_key_values((const mpb_tag *)run->params, run->n_params));
    cJSON_AddItemToObject(data, "tags", mpb_runs_json_key_values(run->tags, run->n_tags));
    return root;
}

void
mpb_runs_print_json(cJSON *root)
{
    char *text = cJSON_Print(root);
    mpb__json_print_document(text);
    free(text);
    cJSON_Delete(root);
}
