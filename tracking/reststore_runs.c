/*
 * REST store: runs, run search, log-batch (split to the server's limits),
 * tags and metric history (followed page by page). Threads and failures as
 * reststore.c says.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/batch_split_int.h"
#include "tracking/reststore_int.h"
#include "tracking/store_int.h"

int
mpb__reststore_create_run(void *backend, const char *experiment_id, const char *user_id,
                          int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                          size_t n_tags, char **out_run_id, char *err, size_t err_len)
{
    /* start_time and user_id always: a server stores 0 and "" without them. */
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "experiment_id", experiment_id);
    cJSON_AddStringToObject(body, "user_id", user_id);
    cJSON_AddStringToObject(body, "run_name", run_name);
    mpb__rest_json_add_int64(body, "start_time", start_time_ms);
    if (n_tags > 0) {
        cJSON_AddItemToObject(body, "tags", mpb__rest_tags_to_json(tags, n_tags));
    }
    cJSON *answer = NULL;
    int rc = mpb__rest_call(backend, "POST", "runs/create", NULL, body, &answer, err, err_len);
    if (rc == 0) {
        const cJSON *info = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(answer, "run"), "info");
        const char *id = mpb__rest_json_str(info, "run_id");
        id = id != NULL ? id : mpb__rest_json_str(info, "run_uuid");
        if (id == NULL) {
            rc = mpb__reststore_malformed(backend, "POST runs/create", err, err_len);
        } else {
            *out_run_id = mpb_strdup(id);
        }
    }
    cJSON_Delete(answer);
    return rc;
}

static cJSON *
run_body(const char *run_id)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "run_id", run_id);
    return body;
}

int
mpb__reststore_update_run(void *backend, const char *run_id, mpb_run_status status,
                          int64_t end_time_ms, const char *run_name, char *err, size_t err_len)
{
    cJSON *body = run_body(run_id);
    cJSON_AddStringToObject(body, "run_uuid", run_id); /* older servers read this one */
    cJSON_AddStringToObject(body, "status", mpb_run_status_name(status));
    if (end_time_ms >= 0) {
        mpb__rest_json_add_int64(body, "end_time", end_time_ms);
    }
    if (run_name != NULL) {
        cJSON_AddStringToObject(body, "run_name", run_name);
    }
    return mpb__reststore_post(backend, "runs/update", body, err, err_len);
}

int
mpb__reststore_get_run(void *backend, const char *run_id, mpb_run **out, char *err, size_t err_len)
{
    char *query = mpb__reststore_query1("run_id", run_id);
    cJSON *answer = NULL;
    int rc = mpb__rest_call(backend, "GET", "runs/get", query, NULL, &answer, err, err_len);
    free(query);
    if (rc == 0) {
        mpb_run *run = mpb_calloc(1, sizeof *run);
        if (mpb__rest_run_from_json(cJSON_GetObjectItemCaseSensitive(answer, "run"), run) < 0) {
            mpb_run_free(&run);
            rc = mpb__reststore_malformed(backend, "GET runs/get", err, err_len);
        }
        *out = run;
    }
    cJSON_Delete(answer);
    return rc;
}

int
mpb__reststore_search_runs(void *backend, const char *const *experiment_ids,
                           size_t n_experiment_ids, const mpb_search_opts *opts, mpb_run_page **out,
                           char *err, size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(body, "experiment_ids");
    for (size_t i = 0; i < n_experiment_ids; i++) {
        cJSON_AddItemToArray(ids, cJSON_CreateString(experiment_ids[i]));
    }
    mpb__reststore_add_search_opts(body, opts, "run_view_type");
    cJSON *answer = NULL;
    int rc = mpb__rest_call(backend, "POST", "runs/search", NULL, body, &answer, err, err_len);
    if (rc < 0) {
        return rc;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(answer, "runs");
    mpb_run_page *page = mpb_calloc(1, sizeof *page);
    page->runs = mpb_calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *page->runs);
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, list)
    {
        if (rc == 0) {
            rc = mpb__rest_run_from_json(item, &page->runs[page->n_runs]);
            page->n_runs += rc == 0;
        }
    }
    page->next_page_token = mpb__reststore_page_token(answer);
    cJSON_Delete(answer);
    if (rc < 0) {
        mpb_run_page_free(&page);
        return mpb__reststore_malformed(backend, "POST runs/search", err, err_len);
    }
    *out = page;
    return 0;
}

int
mpb__reststore_delete_run(void *backend, const char *run_id, char *err, size_t err_len)
{
    return mpb__reststore_post(backend, "runs/delete", run_body(run_id), err, err_len);
}

int
mpb__reststore_restore_run(void *backend, const char *run_id, char *err, size_t err_len)
{
    return mpb__reststore_post(backend, "runs/restore", run_body(run_id), err, err_len);
}

/* ---- Logging ---- */

static int
log_part(mpb__reststore *store, const char *run_id, const mpb_metric *metrics, size_t n_metrics,
         const mpb_param *params, size_t n_params, const mpb_tag *tags, size_t n_tags, char *err,
         size_t err_len)
{
    cJSON *body = run_body(run_id);
    cJSON *json_metrics = cJSON_AddArrayToObject(body, "metrics");
    for (size_t i = 0; i < n_metrics; i++) {
        cJSON_AddItemToArray(json_metrics, mpb__rest_metric_to_json(&metrics[i], NULL));
    }
    cJSON_AddItemToObject(body, "params",
                          mpb__rest_tags_to_json((const mpb_tag *)params, n_params));
    cJSON_AddItemToObject(body, "tags", mpb__rest_tags_to_json(tags, n_tags));
    return mpb__reststore_post(store, "runs/log-batch", body, err, err_len);
}

int
mpb__reststore_log_batch(void *backend, const char *run_id, const mpb_metric *metrics,
                         size_t n_metrics, const mpb_param *params, size_t n_params,
                         const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    /* Within one request's limits (1000 metrics, 100 params, 100 tags, 1000
     * entities) the batch goes whole; else in parts, in order. */
    mpb__batch_split split;
    mpb__batch_split_init(&split, n_metrics, n_params, n_tags);
    mpb__batch_part part;
    int sent = 0;
    int rc = 0;
    while (rc == 0 && mpb__batch_split_next(&split, &part)) {
        rc = log_part(backend, run_id, metrics + part.metric_first, part.n_metrics,
                      params + part.param_first, part.n_params, tags + part.tag_first, part.n_tags,
                      err, err_len);
        sent++;
    }
    if (rc == 0 && sent == 0) { /* nothing to log: the server still checks the run */
        rc = log_part(backend, run_id, NULL, 0, NULL, 0, NULL, 0, err, err_len);
    }
    return rc;
}

int
mpb__reststore_delete_tag(void *backend, const char *run_id, const char *key, char *err,
                          size_t err_len)
{
    cJSON *body = run_body(run_id);
    cJSON_AddStringToObject(body, "key", key);
    return mpb__reststore_post(backend, "runs/delete-tag", body, err, err_len);
}

/* ---- Metric history ---- */

static int
history_page(mpb__reststore *store, const char *run_id, const char *key, const char *token,
             mpb_metric_history *history, size_t *cap, char **out_token, char *err, size_t err_len)
{
    char *run_q = mpb__rest_escape(run_id);
    char *key_q = mpb__rest_escape(key);
    char *token_q = token != NULL ? mpb__rest_escape(token) : NULL;
    /* max_results always: without it a server answers no metrics and a page
     * token that never advances. */
    char *query =
        mpb_asprintf("run_id=%s&metric_key=%s&max_results=%d%s%s", run_q, key_q,
                     MPB__REST_HISTORY_PAGE, token_q ? "&page_token=" : "", token_q ? token_q : "");
    free(token_q);
    free(key_q);
    free(run_q);
    cJSON *answer = NULL;
    int rc =
        mpb__rest_call(store, "GET", "metrics/get-history", query, NULL, &answer, err, err_len);
    free(query);
    if (rc < 0) {
        return rc;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(answer, "metrics");
    size_t n = (size_t)cJSON_GetArraySize(list);
    if (history->n_metrics + n > *cap) {
        *cap = (history->n_metrics + n) * 2;
        history->metrics = mpb_realloc(history->metrics, *cap * sizeof *history->metrics);
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, list)
    {
        char *item_key = NULL;
        mpb_metric metric;
        if (rc == 0 && mpb__rest_metric_from_json(item, &metric, &item_key) == 0) {
            free(item_key);
            metric.key = history->key;
            history->metrics[history->n_metrics++] = metric;
        } else if (rc == 0) {
            rc = mpb__reststore_malformed(store, "GET metrics/get-history", err, err_len);
        }
    }
    *out_token = mpb__reststore_page_token(answer);
    cJSON_Delete(answer);
    return rc;
}

int
mpb__reststore_get_metric_history(void *backend, const char *run_id, const char *key,
                                  mpb_metric_history **out, char *err, size_t err_len)
{
    mpb__reststore *store = backend;
    mpb_metric_history *history = mpb_calloc(1, sizeof *history);
    history->run_id = mpb_strdup(run_id);
    history->key = mpb_strdup(key);
    size_t cap = 0;
    char *token = NULL;
    int rc = 0;
    do {
        char *next = NULL;
        rc = history_page(store, run_id, key, token, history, &cap, &next, err, err_len);
        if (rc == 0 && next != NULL && token != NULL && strcmp(next, token) == 0) {
            rc = mpb__set_error(err, err_len, MPB_ESTORE,
                                "GET metrics/get-history: %s answered the page token it was "
                                "given as the next one; stopped after %zu values of '%s' "
                                "(a server bug of MLflow 3.4 without max_results)",
                                store->base, history->n_metrics, key);
        }
        free(token);
        token = next;
    } while (rc == 0 && token != NULL);
    free(token);
    if (rc < 0) {
        mpb_metric_history_free(&history);
        return rc;
    }
    *out = history;
    return 0;
}
