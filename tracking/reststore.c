/*
 * REST store (tracking URI `http://HOST:PORT[/prefix]` or `https://...`): an
 * MLflow tracking server's REST API (/api/2.0/mlflow/...), the way a fleet of
 * servers on many machines shares one tracking backend. This file: open and
 * close, the ops table, experiments; runs, search and logging in
 * reststore_runs.c; artifacts in reststore_artifacts.c; HTTP in
 * reststore_http.c; JSON in reststore_json.c. docs/tracking-rest.md says
 * which documented MLflow facts each part follows.
 *
 * DESIGN
 * Who runs where: every call runs on the caller's thread: one or more HTTP
 *   exchanges, each on a curl handle of the store's pool. No background
 *   thread; the async logging queue's writer calls the slots like any thread.
 * What flows: JSON requests and answers as MLflow's REST API defines them.
 *   Search page tokens are the server's next_page_token, passed through.
 * On failure: see reststore_http.c (retries, error mapping). A batch larger
 *   than one request's limits is split and is then not atomic: parts sent
 *   before a refused part stay written (MLflow's client behaves the same).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/reststore_int.h"
#include "tracking/store_int.h"

/* ---- Open and close ---- */

static char *
setting(const char *from_opts, const char *env_name)
{
    if (from_opts != NULL && *from_opts != '\0') {
        return mpb_strdup(from_opts);
    }
    const char *env = getenv(env_name);
    return env != NULL && *env != '\0' ? mpb_strdup(env) : NULL;
}

static double
env_number(const char *name, double fallback)
{
    const char *text = getenv(name);
    char *end = NULL;
    double value = text != NULL ? strtod(text, &end) : 0;
    return text != NULL && *text != '\0' && *end == '\0' && value >= 0 ? value : fallback;
}

static void
reststore_close(void *backend)
{
    mpb__reststore *store = backend;
    if (store == NULL) {
        return;
    }
    mpb__rest_handles_free(store);
    pthread_mutex_destroy(&store->lock);
    free(store->base);
    free(store->username);
    if (store->password != NULL) {
        memset(store->password, 0, strlen(store->password));
    }
    free(store->password);
    if (store->token != NULL) {
        memset(store->token, 0, strlen(store->token));
    }
    free(store->token);
    free(store->ca_bundle);
    free(store->client_cert);
    free(store);
}

/* The base URL without trailing '/'; NULL when it is not http(s)://host... or
 * carries credentials (they belong in the environment, never in a URI that
 * may be printed). */
static char *
base_url(const char *uri)
{
    size_t scheme = strncasecmp(uri, "http://", 7) == 0    ? 7
                    : strncasecmp(uri, "https://", 8) == 0 ? 8
                                                           : 0;
    if (scheme == 0 || uri[scheme] == '\0' || uri[scheme] == '/') {
        return NULL;
    }
    size_t authority = strcspn(uri + scheme, "/?#");
    if (memchr(uri + scheme, '@', authority) != NULL || strpbrk(uri, "?#") != NULL) {
        return NULL;
    }
    char *base = mpb_strdup(uri);
    size_t len = strlen(base);
    while (len > scheme && base[len - 1] == '/') {
        base[--len] = '\0';
    }
    return base;
}

static int
reststore_open(const char *uri, const mpb_store_open_opts *opts, void **out_backend, char **out_uri,
               char *err, size_t err_len)
{
    char *base = base_url(uri);
    if (base == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "a REST tracking URI is http(s)://HOST[:PORT][/PREFIX] without "
                              "credentials, query or fragment (credentials go in "
                              "MLFLOW_TRACKING_USERNAME/_PASSWORD or MLFLOW_TRACKING_TOKEN)");
    }
    mpb__reststore *store = mpb_calloc(1, sizeof *store);
    pthread_mutex_init(&store->lock, NULL);
    store->base = base;
    store->username = setting(opts->username, "MLFLOW_TRACKING_USERNAME");
    store->password = setting(opts->password, "MLFLOW_TRACKING_PASSWORD");
    store->token = setting(opts->token, "MLFLOW_TRACKING_TOKEN");
    store->ca_bundle = setting(opts->ca_bundle, "MLFLOW_TRACKING_SERVER_CERT_PATH");
    store->client_cert = setting(opts->client_cert, "MLFLOW_TRACKING_CLIENT_CERT_PATH");
    const char *insecure = getenv("MLFLOW_TRACKING_INSECURE_TLS");
    store->insecure_tls =
        opts->insecure_tls ||
        (insecure != NULL && (strcasecmp(insecure, "true") == 0 || strcmp(insecure, "1") == 0));
    store->timeout_ms = opts->timeout_ms > 0
                            ? opts->timeout_ms
                            : (int64_t)(env_number("MLFLOW_HTTP_REQUEST_TIMEOUT",
                                                   MPB__REST_DEFAULT_TIMEOUT_MS / 1000.0) *
                                        1000);
    store->timeout_ms = store->timeout_ms > 0 ? store->timeout_ms : MPB__REST_DEFAULT_TIMEOUT_MS;
    /* max_retries: 0 means the default, negative means none. */
    store->max_retries =
        opts->max_retries > 0 ? opts->max_retries
        : opts->max_retries < 0
            ? 0
            : (int)env_number("MLFLOW_HTTP_REQUEST_MAX_RETRIES", MPB__REST_DEFAULT_MAX_RETRIES);
    store->backoff_factor =
        env_number("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", MPB__REST_DEFAULT_BACKOFF_FACTOR);
    store->backoff_jitter =
        env_number("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", MPB__REST_DEFAULT_BACKOFF_JITTER);
    *out_backend = store;
    *out_uri = mpb_strdup(store->base);
    return 0;
}

/* ---- Experiments ---- */

char *
mpb__reststore_query1(const char *name, const char *value)
{
    char *escaped = mpb__rest_escape(value);
    char *query = mpb_asprintf("%s=%s", name, escaped);
    free(escaped);
    return query;
}

int
mpb__reststore_malformed(mpb__reststore *store, const char *what, char *err, size_t err_len)
{
    return mpb__set_error(err, err_len, MPB_ESTORE,
                          "%s: the answer of %s lacks fields MLflow's API defines", what,
                          store->base);
}

int
mpb__reststore_create_experiment(void *backend, const char *name, const char *artifact_location,
                                 const mpb_tag *tags, size_t n_tags, char **out_experiment_id,
                                 char *err, size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", name);
    if (artifact_location != NULL) {
        cJSON_AddStringToObject(body, "artifact_location", artifact_location);
    }
    if (n_tags > 0) {
        cJSON_AddItemToObject(body, "tags", mpb__rest_tags_to_json(tags, n_tags));
    }
    cJSON *answer = NULL;
    int rc =
        mpb__rest_call(backend, "POST", "experiments/create", NULL, body, &answer, err, err_len);
    const char *id = rc == 0 ? mpb__rest_json_str(answer, "experiment_id") : NULL;
    if (rc == 0 && id == NULL) {
        rc = mpb__reststore_malformed(backend, "POST experiments/create", err, err_len);
    }
    if (rc == 0 && out_experiment_id != NULL) {
        *out_experiment_id = mpb_strdup(id);
    }
    cJSON_Delete(answer);
    return rc;
}

static int
get_experiment_by(mpb__reststore *store, const char *endpoint, const char *query,
                  mpb_experiment **out, char *err, size_t err_len)
{
    cJSON *answer = NULL;
    int rc = mpb__rest_call(store, "GET", endpoint, query, NULL, &answer, err, err_len);
    if (rc == 0) {
        mpb_experiment *experiment = mpb_calloc(1, sizeof *experiment);
        rc = mpb__rest_experiment_from_json(cJSON_GetObjectItemCaseSensitive(answer, "experiment"),
                                            experiment);
        if (rc < 0) {
            mpb_experiment_free(&experiment);
            rc = mpb__reststore_malformed(store, endpoint, err, err_len);
        }
        *out = experiment;
    }
    cJSON_Delete(answer);
    return rc;
}

int
mpb__reststore_get_experiment(void *backend, const char *experiment_id, mpb_experiment **out,
                              char *err, size_t err_len)
{
    char *query = mpb__reststore_query1("experiment_id", experiment_id);
    int rc = get_experiment_by(backend, "experiments/get", query, out, err, err_len);
    free(query);
    return rc;
}

int
mpb__reststore_get_experiment_by_name(void *backend, const char *name, mpb_experiment **out,
                                      char *err, size_t err_len)
{
    char *query = mpb__reststore_query1("experiment_name", name);
    int rc = get_experiment_by(backend, "experiments/get-by-name", query, out, err, err_len);
    free(query);
    return rc;
}

/* The search fields both searches share; max_results always sent (a
 * FileStore server refuses 0 or none). */
void
mpb__reststore_add_search_opts(cJSON *body, const mpb_search_opts *opts, const char *view_field)
{
    mpb_search_opts none = {0};
    opts = opts != NULL ? opts : &none;
    mpb__rest_json_add_int64(body, "max_results",
                             opts->max_results > 0 ? (int64_t)opts->max_results
                                                   : MPB_SEARCH_MAX_RESULTS_DEFAULT);
    if (opts->filter != NULL && *opts->filter != '\0') {
        cJSON_AddStringToObject(body, "filter", opts->filter);
    }
    if (opts->n_order_by > 0) {
        cJSON *order = cJSON_AddArrayToObject(body, "order_by");
        for (size_t i = 0; i < opts->n_order_by; i++) {
            cJSON_AddItemToArray(order, cJSON_CreateString(opts->order_by[i]));
        }
    }
    cJSON_AddStringToObject(body, view_field, mpb__rest_view_type_name(opts->view_type));
    if (opts->page_token != NULL) {
        cJSON_AddStringToObject(body, "page_token", opts->page_token);
    }
}

char *
mpb__reststore_page_token(const cJSON *answer)
{
    const char *token = mpb__rest_json_str(answer, "next_page_token");
    return token != NULL && *token != '\0' ? mpb_strdup(token) : NULL;
}

int
mpb__reststore_search_experiments(void *backend, const mpb_search_opts *opts,
                                  mpb_experiment_page **out, char *err, size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    mpb__reststore_add_search_opts(body, opts, "view_type");
    cJSON *answer = NULL;
    int rc =
        mpb__rest_call(backend, "POST", "experiments/search", NULL, body, &answer, err, err_len);
    if (rc < 0) {
        return rc;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(answer, "experiments");
    mpb_experiment_page *page = mpb_calloc(1, sizeof *page);
    page->experiments = mpb_calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *page->experiments);
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, list)
    {
        if (rc == 0) {
            rc = mpb__rest_experiment_from_json(item, &page->experiments[page->n_experiments]);
            page->n_experiments += rc == 0;
        }
    }
    page->next_page_token = mpb__reststore_page_token(answer);
    cJSON_Delete(answer);
    if (rc < 0) {
        mpb_experiment_page_free(&page);
        return mpb__reststore_malformed(backend, "POST experiments/search", err, err_len);
    }
    *out = page;
    return 0;
}

int
mpb__reststore_post(mpb__reststore *store, const char *endpoint, cJSON *body, char *err,
                    size_t err_len)
{
    return mpb__rest_call(store, "POST", endpoint, NULL, body, NULL, err, err_len);
}

int
mpb__reststore_delete_experiment(void *backend, const char *experiment_id, char *err,
                                 size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "experiment_id", experiment_id);
    return mpb__reststore_post(backend, "experiments/delete", body, err, err_len);
}

int
mpb__reststore_restore_experiment(void *backend, const char *experiment_id, char *err,
                                  size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "experiment_id", experiment_id);
    return mpb__reststore_post(backend, "experiments/restore", body, err, err_len);
}

int
mpb__reststore_set_experiment_tag(void *backend, const char *experiment_id, const char *key,
                                  const char *value, char *err, size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "experiment_id", experiment_id);
    cJSON_AddStringToObject(body, "key", key);
    cJSON_AddStringToObject(body, "value", value);
    return mpb__reststore_post(backend, "experiments/set-experiment-tag", body, err, err_len);
}

static const mpb__store_ops reststore_ops = {
    .name = "rest",
    .open = reststore_open,
    .close = reststore_close,
    .create_experiment = mpb__reststore_create_experiment,
    .get_experiment = mpb__reststore_get_experiment,
    .get_experiment_by_name = mpb__reststore_get_experiment_by_name,
    .search_experiments = mpb__reststore_search_experiments,
    .delete_experiment = mpb__reststore_delete_experiment,
    .restore_experiment = mpb__reststore_restore_experiment,
    .set_experiment_tag = mpb__reststore_set_experiment_tag,
    .create_run = mpb__reststore_create_run,
    .update_run = mpb__reststore_update_run,
    .get_run = mpb__reststore_get_run,
    .search_runs = mpb__reststore_search_runs,
    .delete_run = mpb__reststore_delete_run,
    .restore_run = mpb__reststore_restore_run,
    .log_batch = mpb__reststore_log_batch,
    .delete_tag = mpb__reststore_delete_tag,
    .get_metric_history = mpb__reststore_get_metric_history,
    .log_artifact = mpb__reststore_log_artifact,
    .list_artifacts = mpb__reststore_list_artifacts,
    .download_artifacts = mpb__reststore_download_artifacts,
    .create_registered_model = mpb__reststore_create_registered_model,
    .get_registered_model = mpb__reststore_get_registered_model,
    .list_registered_models = mpb__reststore_list_registered_models,
    .delete_registered_model = mpb__reststore_delete_registered_model,
    .create_model_version = mpb__reststore_create_model_version,
    .get_model_version = mpb__reststore_get_model_version,
    .list_model_versions = mpb__reststore_list_model_versions,
    .set_model_alias = mpb__reststore_set_model_alias,
    .delete_model_alias = mpb__reststore_delete_model_alias,
    .get_model_version_by_alias = mpb__reststore_get_model_version_by_alias,
};

const mpb__store_ops *
mpb__reststore_backend(void)
{
    return &reststore_ops;
}
