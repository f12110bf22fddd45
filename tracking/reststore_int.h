/*
 * Internals shared by the REST store's sources (reststore.c: open, the ops
 * table, experiments; reststore_runs.c: runs, search, logging, metric
 * history; reststore_artifacts.c: artifacts through the server's proxy;
 * reststore_http.c: HTTP exchanges with retries, auth and TLS;
 * reststore_json.c: JSON of MLflow's REST API, exact int64 and NaN/Inf).
 *
 * Threading: every slot may run on several threads at once. The store keeps
 *   a pool of idle curl easy handles under its mutex; an exchange takes one
 *   (or makes one), uses it alone and gives it back, so a handle is never
 *   used by two threads at a time and connections are reused.
 * Processes: a store is not carried across fork() (curl handles hold sockets).
 * Ownership: as tracking/store_int.h; cJSON trees returned here are the
 *   caller's (cJSON_Delete).
 */
#ifndef MPB_TRACKING_RESTSTORE_INT_H
#define MPB_TRACKING_RESTSTORE_INT_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mpbatch/store.h"

/* MLflow's client defaults (mlflow/environment_variables.py). */
#define MPB__REST_DEFAULT_TIMEOUT_MS 120000
#define MPB__REST_DEFAULT_MAX_RETRIES 7
#define MPB__REST_DEFAULT_BACKOFF_FACTOR 2.0
#define MPB__REST_DEFAULT_BACKOFF_JITTER 1.0
#define MPB__REST_BACKOFF_MAX_S 120.0
/* metrics/get-history page size the client asks for (always sent). */
#define MPB__REST_HISTORY_PAGE 25000

#define MPB__REST_API "/api/2.0/mlflow/"
#define MPB__REST_ARTIFACTS_API "/api/2.0/mlflow-artifacts/artifacts"

typedef struct mpb__reststore {
    char *base; /* scheme://host[:port][/prefix], no trailing '/' and no credentials */
    char *username;
    char *password;
    char *token;
    char *ca_bundle;
    char *client_cert;
    int insecure_tls;
    int64_t timeout_ms; /* per request */
    int max_retries;
    double backoff_factor; /* seconds */
    double backoff_jitter; /* seconds */
    pthread_mutex_t lock;  /* guards the idle handle pool */
    void **idle;           /* CURL * */
    size_t n_idle;
    size_t cap_idle;
} mpb__reststore;

/* One HTTP exchange. In: method, url, what (names the call in messages,
 * e.g. "POST runs/log-batch"), and at most one body source (json_body for
 * POST, upload_path for PUT); download_path receives a 2xx body (written to
 * a temp name beside it and renamed). Out: status and, unless downloaded, the
 * body (NUL-terminated), which the caller frees with mpb__rest_exchange_clear. */
typedef struct mpb__rest_exchange {
    const char *method;
    const char *url;
    const char *what;
    const char *json_body;
    const char *upload_path;
    const char *download_path;
    long status;
    char *body;
    size_t body_len;
    int attempts; /* requests sent, retries included */
} mpb__rest_exchange;

/* Runs an exchange with MLflow's retry policy (408, 429, 500, 502, 503, 504
 * and connection failures; exponential backoff with jitter, Retry-After
 * honoured; "Changing param values is not allowed" never retried). 0 on a
 * 2xx answer; else a negative MPB_E* mapped from the error_code or status,
 * with the server's message in err. */
int mpb__rest_exchange_run(mpb__reststore *store, mpb__rest_exchange *x, char *err, size_t err_len);
void mpb__rest_exchange_clear(mpb__rest_exchange *x);

/* POST (body non-NULL; serialised and deleted here) or GET (query, already
 * encoded, may be NULL) of one endpoint of the tracking API ("runs/get");
 * *out (may be NULL) is the parsed answer. */
int mpb__rest_call(mpb__reststore *store, const char *method, const char *endpoint,
                   const char *query, cJSON *body, cJSON **out, char *err, size_t err_len);

/* Percent-encodes one query value or path segment (caller frees). */
char *mpb__rest_escape(const char *text);

/* Drops the idle handles (at close). */
void mpb__rest_handles_free(mpb__reststore *store);

/* ---- JSON (reststore_json.c; the test server uses these too) ---- */

/* Parses JSON text with every integer literal kept exact: integers are
 * turned into strings of their digits before cJSON (whose numbers are
 * doubles) sees them, so mpb__rest_json_int64 reads any int64 exactly. */
cJSON *mpb__rest_json_parse(const char *text, size_t len);

/* Field readers: the string (NULL if absent or not a string); an int64
 * (1 read, 0 absent, MPB_EINVAL not an integer); a double from a number or
 * from "NaN", "Infinity", "-Infinity" or a numeric string (same returns). */
const char *mpb__rest_json_str(const cJSON *object, const char *name);
int mpb__rest_json_int64(const cJSON *object, const char *name, int64_t *out);
int mpb__rest_json_double(const cJSON *object, const char *name, double *out);

/* Writers: int64 as an exact JSON number; doubles as numbers that read back
 * exactly, NaN and +-Inf as MLflow's strings. */
void mpb__rest_json_add_int64(cJSON *object, const char *name, int64_t value);
void mpb__rest_json_add_double(cJSON *object, const char *name, double value);

/* Entities as MLflow's REST API spells them (proto field names, enums as
 * names, unset fields omitted) and back. Readers fill *out (cleared first)
 * and return 0 or MPB_ESTORE for a malformed answer. */
cJSON *mpb__rest_tags_to_json(const mpb_tag *tags, size_t n);
cJSON *mpb__rest_metric_to_json(const mpb_metric *metric, const char *run_id);
cJSON *mpb__rest_experiment_to_json(const mpb_experiment *experiment);
cJSON *mpb__rest_run_to_json(const mpb_run *run);
int mpb__rest_tags_from_json(const cJSON *array, mpb_tag **out, size_t *out_n);
int mpb__rest_metric_from_json(const cJSON *object, mpb_metric *out, char **out_key);
int mpb__rest_experiment_from_json(const cJSON *object, mpb_experiment *out);
int mpb__rest_run_from_json(const cJSON *object, mpb_run *out);

/* The view type names of MLflow's ViewType enum and back (0 if unknown). */
const char *mpb__rest_view_type_name(mpb_view_type view);
mpb_view_type mpb__rest_view_type_parse(const char *name);

/* The ops table (tracking/reststore.c), for tracking/store.c's scheme table. */
struct mpb__store_ops;
const struct mpb__store_ops *mpb__reststore_backend(void);

/* ---- Shared by the slots (reststore.c) ---- */

/* The search fields both searches send; max_results always (a FileStore
 * server refuses 0 or none). view_field: "view_type" or "run_view_type". */
void mpb__reststore_add_search_opts(cJSON *body, const mpb_search_opts *opts,
                                    const char *view_field);
/* The answer's next_page_token, NULL when absent or empty (caller frees). */
char *mpb__reststore_page_token(const cJSON *answer);
/* A POST whose answer is {} (body deleted here). */
int mpb__reststore_post(mpb__reststore *store, const char *endpoint, cJSON *body, char *err,
                        size_t err_len);
/* "name=<escaped value>" (caller frees). */
char *mpb__reststore_query1(const char *name, const char *value);
/* MPB_ESTORE for an answer lacking what MLflow's API defines. */
int mpb__reststore_malformed(mpb__reststore *store, const char *what, char *err, size_t err_len);

/* ---- Slots, by source file ---- */
int mpb__reststore_create_experiment(void *backend, const char *name, const char *artifact_location,
                                     const mpb_tag *tags, size_t n_tags, char **out_experiment_id,
                                     char *err, size_t err_len);
int mpb__reststore_get_experiment(void *backend, const char *experiment_id, mpb_experiment **out,
                                  char *err, size_t err_len);
int mpb__reststore_get_experiment_by_name(void *backend, const char *name, mpb_experiment **out,
                                          char *err, size_t err_len);
int mpb__reststore_search_experiments(void *backend, const mpb_search_opts *opts,
                                      mpb_experiment_page **out, char *err, size_t err_len);
int mpb__reststore_delete_experiment(void *backend, const char *experiment_id, char *err,
                                     size_t err_len);
int mpb__reststore_restore_experiment(void *backend, const char *experiment_id, char *err,
                                      size_t err_len);
int mpb__reststore_set_experiment_tag(void *backend, const char *experiment_id, const char *key,
                                      const char *value, char *err, size_t err_len);

int mpb__reststore_create_run(void *backend, const char *experiment_id, const char *user_id,
                              int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                              size_t n_tags, char **out_run_id, char *err, size_t err_len);
int mpb__reststore_update_run(void *backend, const char *run_id, mpb_run_status status,
                              int64_t end_time_ms, const char *run_name, char *err, size_t err_len);
int mpb__reststore_get_run(void *backend, const char *run_id, mpb_run **out, char *err,
                           size_t err_len);
int mpb__reststore_search_runs(void *backend, const char *const *experiment_ids,
                               size_t n_experiment_ids, const mpb_search_opts *opts,
                               mpb_run_page **out, char *err, size_t err_len);
int mpb__reststore_delete_run(void *backend, const char *run_id, char *err, size_t err_len);
int mpb__reststore_restore_run(void *backend, const char *run_id, char *err, size_t err_len);
int mpb__reststore_log_batch(void *backend, const char *run_id, const mpb_metric *metrics,
                             size_t n_metrics, const mpb_param *params, size_t n_params,
                             const mpb_tag *tags, size_t n_tags, char *err, size_t err_len);
int mpb__reststore_delete_tag(void *backend, const char *run_id, const char *key, char *err,
                              size_t err_len);
int mpb__reststore_get_metric_history(void *backend, const char *run_id, const char *key,
                                      mpb_metric_history **out, char *err, size_t err_len);

int mpb__reststore_log_artifact(void *backend, const char *run_id, const char *local_path,
                                const char *artifact_path, char *err, size_t err_len);
int mpb__reststore_list_artifacts(void *backend, const char *run_id, const char *path,
                                  mpb_artifact_list **out, char *err, size_t err_len);
int mpb__reststore_download_artifacts(void *backend, const char *run_id, const char *path,
                                      const char *dst_dir, char **out_local_path, char *err,
                                      size_t err_len);

/* Registry entities as MLflow's REST API spells them (versions as strings
 * of digits) and back; readers return 0 or MPB_ESTORE (reststore_registry.c). */
cJSON *mpb__rest_registered_model_to_json(const mpb_registered_model *model);
cJSON *mpb__rest_model_version_to_json(const mpb_model_version *version);
int mpb__rest_registered_model_from_json(const cJSON *object, mpb_registered_model *out);
int mpb__rest_model_version_from_json(const cJSON *object, mpb_model_version *out);

/* tracking/reststore_registry.c: the model registry */
int mpb__reststore_create_registered_model(void *backend, const char *name, const char *description,
                                           const mpb_tag *tags, size_t n_tags, char *err,
                                           size_t err_len);
int mpb__reststore_get_registered_model(void *backend, const char *name, mpb_registered_model **out,
                                        char *err, size_t err_len);
int mpb__reststore_list_registered_models(void *backend, mpb_registered_model_list **out, char *err,
                                          size_t err_len);
int mpb__reststore_delete_registered_model(void *backend, const char *name, char *err,
                                           size_t err_len);
int mpb__reststore_create_model_version(void *backend, const char *name, const char *source,
                                        const char *run_id, mpb_model_version **out, char *err,
                                        size_t err_len);
int mpb__reststore_get_model_version(void *backend, const char *name, int64_t version,
                                     mpb_model_version **out, char *err, size_t err_len);
int mpb__reststore_list_model_versions(void *backend, const char *name,
                                       mpb_model_version_list **out, char *err, size_t err_len);
int mpb__reststore_set_model_alias(void *backend, const char *name, const char *alias,
                                   int64_t version, char *err, size_t err_len);
int mpb__reststore_delete_model_alias(void *backend, const char *name, const char *alias, char *err,
                                      size_t err_len);
int mpb__reststore_get_model_version_by_alias(void *backend, const char *name, const char *alias,
                                              mpb_model_version **out, char *err, size_t err_len);

#endif
