/*
 * The REST store's test server: the tracking endpoints of MLflow's REST API
 * (/api/2.0/mlflow/...), each a thin layer over mpb_store_* of the server's
 * SQLite store, answering the JSON shapes of MLflow's API. Threads as
 * rest_test_server.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/rest_test_server.h"
#include "tracking/reststore_int.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

static const char *
need(rts_request *r, const char *name, char *err, size_t err_len, int *rc)
{
    const char *value = rts_field(r, name);
    if (value == NULL && *rc == 0) {
        *rc = mpb__set_error(err, err_len, MPB_EINVAL,
                             "Missing value for required parameter '%s'. See the API docs for "
                             "more information about request parameters.",
                             name);
    }
    return value;
}

/* An int64 field: 1 read, 0 absent, MPB_EINVAL malformed. */
static int
int_field(rts_request *r, const char *name, int64_t *out)
{
    if (r->is_post) {
        return mpb__rest_json_int64(r->body, name, out);
    }
    const char *text = rts_field(r, name);
    return text == NULL ? 0 : mpb__parse_int64(text, out) == 0 ? 1 : MPB_EINVAL;
}

static cJSON *
item(rts_request *r, const char *name)
{
    return r->body != NULL ? cJSON_GetObjectItemCaseSensitive(r->body, name) : NULL;
}

/* ---- Experiments ---- */

static int
experiment_answer(rts_request *r, const char *id, cJSON *answer, char *err, size_t err_len)
{
    mpb_experiment *experiment = NULL;
    int rc = mpb_store_get_experiment(r->server->store, id, &experiment, err, err_len);
    if (rc == 0) {
        cJSON_AddItemToObject(answer, "experiment", mpb__rest_experiment_to_json(experiment));
        mpb_experiment_free(&experiment);
    }
    return rc;
}

static int
experiments_create(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    mpb_tag *tags = NULL;
    size_t n_tags = 0;
    if (rc == 0 && mpb__rest_tags_from_json(item(r, "tags"), &tags, &n_tags) < 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid tags");
    }
    char *id = NULL;
    if (rc == 0) {
        rc = mpb_store_create_experiment(r->server->store, name, rts_field(r, "artifact_location"),
                                         tags, n_tags, &id, err, err_len);
    }
    if (rc == 0) {
        cJSON_AddStringToObject(answer, "experiment_id", id);
    }
    free(id);
    mpb__tags_free(tags, n_tags);
    return rc;
}

static int
experiments_get(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *id = need(r, "experiment_id", err, err_len, &rc);
    return rc < 0 ? rc : experiment_answer(r, id, answer, err, err_len);
}

static int
experiments_get_by_name(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *name = need(r, "experiment_name", err, err_len, &rc);
    mpb_experiment *experiment = NULL;
    if (rc == 0) {
        rc = mpb_store_get_experiment_by_name(r->server->store, name, &experiment, err, err_len);
    }
    if (rc == 0) {
        cJSON_AddItemToObject(answer, "experiment", mpb__rest_experiment_to_json(experiment));
        mpb_experiment_free(&experiment);
    }
    return rc;
}

/* Search options from the body; order_by strings borrowed from it. */
static int
search_opts(rts_request *r, const char *view_field, int64_t default_max, mpb_search_opts *opts,
            const char ***order, char *err, size_t err_len)
{
    int64_t max_results = default_max;
    if (int_field(r, "max_results", &max_results) < 0 || max_results <= 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid value %lld for parameter 'max_results' supplied",
                              (long long)max_results);
    }
    const cJSON *list = item(r, "order_by");
    *order = mpb_calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof **order);
    size_t n = 0;
    const cJSON *entry = NULL;
    cJSON_ArrayForEach(entry, list)
    {
        if (cJSON_IsString(entry)) {
            (*order)[n++] = entry->valuestring;
        }
    }
    *opts = (mpb_search_opts){
        .filter = rts_field(r, "filter"),
        .order_by = *order,
        .n_order_by = n,
        .view_type = mpb__rest_view_type_parse(rts_field(r, view_field)),
        .max_results = (size_t)max_results,
        .page_token = rts_field(r, "page_token"),
    };
    return 0;
}

static int
experiments_search(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    mpb_search_opts opts;
    const char **order = NULL;
    mpb_experiment_page *page = NULL;
    /* MLflow's FileStore refuses an unset max_results; so does this server. */
    int rc = search_opts(r, "view_type", 0, &opts, &order, err, err_len);
    if (rc == 0) {
        rc = mpb_store_search_experiments(r->server->store, &opts, &page, err, err_len);
    }
    if (rc == 0) {
        cJSON *list = cJSON_AddArrayToObject(answer, "experiments");
        for (size_t i = 0; i < page->n_experiments; i++) {
            cJSON_AddItemToArray(list, mpb__rest_experiment_to_json(&page->experiments[i]));
        }
        if (page->next_page_token != NULL) {
            cJSON_AddStringToObject(answer, "next_page_token", page->next_page_token);
        }
        mpb_experiment_page_free(&page);
    }
    free(order);
    return rc;
}

static int
experiments_delete(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *id = need(r, "experiment_id", err, err_len, &rc);
    return rc < 0 ? rc : mpb_store_delete_experiment(r->server->store, id, err, err_len);
}

static int
experiments_restore(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *id = need(r, "experiment_id", err, err_len, &rc);
    return rc < 0 ? rc : mpb_store_restore_experiment(r->server->store, id, err, err_len);
}

static int
experiments_set_tag(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *id = need(r, "experiment_id", err, err_len, &rc);
    const char *key = need(r, "key", err, err_len, &rc);
    const char *value = need(r, "value", err, err_len, &rc);
    return rc < 0 ? rc
                  : mpb_store_set_experiment_tag(r->server->store, id, key, value, err, err_len);
}

/* ---- Runs ---- */

static const char *
run_id_of(rts_request *r, char *err, size_t err_len, int *rc)
{
    const char *id = rts_field(r, "run_id");
    id = id != NULL ? id : rts_field(r, "run_uuid");
    return id != NULL ? id : need(r, "run_id", err, err_len, rc);
}

static int
run_answer(rts_request *r, const char *run_id, const char *field, cJSON *answer, char *err,
           size_t err_len)
{
    mpb_run *run = NULL;
    int rc = mpb_store_get_run(r->server->store, run_id, &run, err, err_len);
    if (rc == 0) {
        cJSON *json = mpb__rest_run_to_json(run);
        if (strcmp(field, "run_info") == 0) {
            cJSON_AddItemToObject(answer, field, cJSON_DetachItemFromObject(json, "info"));
            cJSON_Delete(json);
        } else {
            cJSON_AddItemToObject(answer, field, json);
        }
        mpb_run_free(&run);
    }
    return rc;
}

static int
runs_create(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *experiment_id = need(r, "experiment_id", err, err_len, &rc);
    int64_t start_time = 0; /* MLflow's server stores 0 when the client sends none */
    if (rc == 0 && int_field(r, "start_time", &start_time) < 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid value for 'start_time'");
    }
    const char *user = rts_field(r, "user_id");
    mpb_tag *tags = NULL;
    size_t n_tags = 0;
    if (rc == 0 && mpb__rest_tags_from_json(item(r, "tags"), &tags, &n_tags) < 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid tags");
    }
    char *run_id = NULL;
    if (rc == 0) {
        rc = mpb_store_create_run(r->server->store, experiment_id, user ? user : "", start_time,
                                  rts_field(r, "run_name"), tags, n_tags, &run_id, err, err_len);
    }
    if (rc == 0) {
        rc = run_answer(r, run_id, "run", answer, err, err_len);
    }
    free(run_id);
    mpb__tags_free(tags, n_tags);
    return rc;
}

static int
runs_update(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *run_id = run_id_of(r, err, err_len, &rc);
    const char *status_name = rts_field(r, "status");
    mpb_run_status status = MPB_RUN_RUNNING;
    int64_t end_time = -1;
    if (rc == 0 && status_name != NULL && mpb_run_status_parse(status_name, &status) < 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid value '%s' for parameter 'status'",
                            status_name);
    }
    if (rc == 0 && status_name == NULL) { /* unchanged */
        mpb_run *run = NULL;
        rc = mpb_store_get_run(r->server->store, run_id, &run, err, err_len);
        status = rc == 0 ? run->info.status : status;
        mpb_run_free(&run);
    }
    if (rc == 0 && int_field(r, "end_time", &end_time) < 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid value for 'end_time'");
    }
    if (rc == 0) {
        rc = mpb_store_update_run(r->server->store, run_id, status, end_time,
                                  rts_field(r, "run_name"), err, err_len);
    }
    return rc < 0 ? rc : run_answer(r, run_id, "run_info", answer, err, err_len);
}

static int
runs_get(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *run_id = run_id_of(r, err, err_len, &rc);
    return rc < 0 ? rc : run_answer(r, run_id, "run", answer, err, err_len);
}

static int
runs_search(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    mpb_search_opts opts;
    const char **order = NULL;
    const cJSON *list = item(r, "experiment_ids");
    const char **ids = mpb_calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *ids);
    size_t n_ids = 0;
    const cJSON *entry = NULL;
    cJSON_ArrayForEach(entry, list)
    {
        if (cJSON_IsString(entry)) {
            ids[n_ids++] = entry->valuestring;
        }
    }
    mpb_run_page *page = NULL;
    int rc = search_opts(r, "run_view_type", MPB_SEARCH_MAX_RESULTS_DEFAULT, &opts, &order, err,
                         err_len);
    if (rc == 0) {
        rc = mpb_store_search_runs(r->server->store, ids, n_ids, &opts, &page, err, err_len);
    }
    if (rc == 0) {
        cJSON *runs = cJSON_AddArrayToObject(answer, "runs");
        for (size_t i = 0; i < page->n_runs; i++) {
            cJSON_AddItemToArray(runs, mpb__rest_run_to_json(&page->runs[i]));
        }
        if (page->next_page_token != NULL) {
            cJSON_AddStringToObject(answer, "next_page_token", page->next_page_token);
        }
        mpb_run_page_free(&page);
    }
    free(order);
    free(ids);
    return rc;
}

static int
runs_delete(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *run_id = run_id_of(r, err, err_len, &rc);
    return rc < 0 ? rc : mpb_store_delete_run(r->server->store, run_id, err, err_len);
}

static int
runs_restore(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *run_id = run_id_of(r, err, err_len, &rc);
    return rc < 0 ? rc : mpb_store_restore_run(r->server->store, run_id, err, err_len);
}

/* metrics[i] of a log-batch body; keys borrowed from the body. */
static int
batch_metrics(rts_request *r, mpb_metric **out, size_t *out_n, char *err, size_t err_len)
{
    const cJSON *list = item(r, "metrics");
    mpb_metric *metrics = mpb_calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *metrics);
    size_t n = 0;
    const cJSON *entry = NULL;
    int rc = 0;
    cJSON_ArrayForEach(entry, list)
    {
        mpb_metric *m = &metrics[n];
        m->key = mpb__rest_json_str(entry, "key");
        const char *missing = m->key == NULL                                          ? "key"
                              : mpb__rest_json_double(entry, "value", &m->value) != 1 ? "value"
                              : mpb__rest_json_int64(entry, "timestamp", &m->timestamp_ms) != 1
                                  ? "timestamp"
                              : mpb__rest_json_int64(entry, "step", &m->step) < 0 ? "step"
                                                                                  : NULL;
        if (missing != NULL && rc == 0) {
            rc = mpb__set_error(err, err_len, MPB_EINVAL,
                                "Missing value for required parameter 'metrics[%zu].%s'", n,
                                missing);
        }
        n++;
    }
    *out = metrics;
    *out_n = n;
    return rc;
}

static int
runs_log_batch(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *run_id = run_id_of(r, err, err_len, &rc);
    mpb_metric *metrics = NULL;
    size_t n_metrics = 0;
    mpb_tag *params = NULL;
    size_t n_params = 0;
    mpb_tag *tags = NULL;
    size_t n_tags = 0;
    if (rc == 0) {
        rc = batch_metrics(r, &metrics, &n_metrics, err, err_len);
    }
    if (rc == 0 && (mpb__rest_tags_from_json(item(r, "params"), &params, &n_params) < 0 ||
                    mpb__rest_tags_from_json(item(r, "tags"), &tags, &n_tags) < 0)) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid params or tags");
    }
    if (rc == 0) {
        rc = mpb_store_log_batch(r->server->store, run_id, metrics, n_metrics,
                                 (const mpb_param *)params, n_params, tags, n_tags, err, err_len);
    }
    mpb__tags_free(params, n_params);
    mpb__tags_free(tags, n_tags);
    free(metrics);
    return rc;
}

static int
runs_set_tag(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *run_id = run_id_of(r, err, err_len, &rc);
    const char *key = need(r, "key", err, err_len, &rc);
    const char *value = need(r, "value", err, err_len, &rc);
    return rc < 0 ? rc : mpb_store_set_tag(r->server->store, run_id, key, value, err, err_len);
}

static int
runs_delete_tag(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *run_id = run_id_of(r, err, err_len, &rc);
    const char *key = need(r, "key", err, err_len, &rc);
    return rc < 0 ? rc : mpb_store_delete_tag(r->server->store, run_id, key, err, err_len);
}

/* ---- Metric history ---- */

static int
metrics_get_history(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *run_id = run_id_of(r, err, err_len, &rc);
    const char *key = need(r, "metric_key", err, err_len, &rc);
    const char *token = rts_field(r, "page_token");
    int64_t max_results = 0;
    int64_t offset = 0;
    if (rc < 0) {
        return rc;
    }
    if (int_field(r, "max_results", &max_results) != 1) {
        /* MLflow 3.4+: no max_results gives no metrics and a token that never advances. */
        cJSON_AddStringToObject(answer, "next_page_token", token != NULL ? token : "0");
        return 0;
    }
    if (token != NULL && (mpb__parse_int64(token, &offset) < 0 || offset < 0)) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "Invalid page token '%s'", token);
    }
    pthread_mutex_lock(&r->server->lock);
    int64_t limit = r->server->history_page;
    int stuck = r->server->history_stuck;
    pthread_mutex_unlock(&r->server->lock);
    limit = limit > 0 && limit < max_results ? limit : max_results;
    mpb_metric_history *history = NULL;
    rc = mpb_store_get_metric_history(r->server->store, run_id, key, &history, err, err_len);
    if (rc < 0) {
        return rc;
    }
    cJSON *list = cJSON_AddArrayToObject(answer, "metrics");
    int64_t end =
        offset + limit < (int64_t)history->n_metrics ? offset + limit : (int64_t)history->n_metrics;
    for (int64_t i = offset; i < end; i++) {
        cJSON_AddItemToArray(list, mpb__rest_metric_to_json(&history->metrics[i], run_id));
    }
    char next[32];
    snprintf(next, sizeof next, "%lld", (long long)end);
    if (stuck && token != NULL) {
        cJSON_AddStringToObject(answer, "next_page_token", token);
    } else if (end < (int64_t)history->n_metrics) {
        cJSON_AddStringToObject(answer, "next_page_token", next);
    }
    mpb_metric_history_free(&history);
    return 0;
}

static const struct {
    const char *method;
    const char *endpoint;
    rts_route_fn fn;
} routes[] = {
    {"POST", "experiments/create", experiments_create},
    {"GET", "experiments/get", experiments_get},
    {"GET", "experiments/get-by-name", experiments_get_by_name},
    {"POST", "experiments/search", experiments_search},
    {"POST", "experiments/delete", experiments_delete},
    {"POST", "experiments/restore", experiments_restore},
    {"POST", "experiments/set-experiment-tag", experiments_set_tag},
    {"POST", "runs/create", runs_create},
    {"POST", "runs/update", runs_update},
    {"GET", "runs/get", runs_get},
    {"POST", "runs/search", runs_search},
    {"POST", "runs/delete", runs_delete},
    {"POST", "runs/restore", runs_restore},
    {"POST", "runs/log-batch", runs_log_batch},
    {"POST", "runs/set-tag", runs_set_tag},
    {"POST", "runs/delete-tag", runs_delete_tag},
    {"GET", "metrics/get-history", metrics_get_history},
};

rts_route_fn
rts_route(const char *method, const char *endpoint)
{
    for (size_t i = 0; i < MPB_ARRAY_LEN(routes); i++) {
        if (strcmp(routes[i].method, method) == 0 && strcmp(routes[i].endpoint, endpoint) == 0) {
            return routes[i].fn;
        }
    }
    return rts_registry_route(method, endpoint);
}
