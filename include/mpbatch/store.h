/*
 * Tracking store: experiments, runs, params, metrics, tags and artifacts in a
 * backend MLflow itself can read, chosen by tracking URI as MLflow does
 * (`file:PATH` or a plain path: MLflow's FileStore layout; `sqlite:///rel.db`
 * or `sqlite:////abs.db`: MLflow's SQLite schema; `http(s)://HOST:PORT`: an
 * MLflow tracking server's REST API, docs/tracking-rest.md).
 * Every backend keeps one contract (tests/tracking/store_contract_test.c).
 *
 * Threading: one mpb_store may be used from several threads at once; calls on
 *   different runs proceed in parallel, calls on one run are serialised.
 * Processes: several processes may open the same store and log to different
 *   runs at once. Do not carry an open store across fork(); open it again.
 * Ownership: every entity returned through an out-parameter is the caller's
 *   and is released with its *_free function; input arrays and strings are
 *   borrowed for the call only.
 *
 * Every call returns 0 or a negative MPB_E* status. `err` (may be NULL) gets
 * a one-line human explanation, as MLflow's message would give it.
 * MPB_EINVAL: input MLflow would reject (INVALID_PARAMETER_VALUE);
 * MPB_ENOTFOUND: no such experiment/run (RESOURCE_DOES_NOT_EXIST);
 * MPB_EEXIST: name already taken (RESOURCE_ALREADY_EXISTS);
 * other negative values: the OS or the backend failed (MPB_ESTORE, -errno).
 */
#ifndef MPBATCH_STORE_H
#define MPBATCH_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"

/* MLflow's limits (mlflow/utils/validation.py). */
#define MPB_MAX_PARAMS_TAGS_PER_BATCH 100
#define MPB_MAX_METRICS_PER_BATCH 1000
#define MPB_MAX_ENTITIES_PER_BATCH 1000
#define MPB_MAX_PARAM_VAL_LENGTH 6000
#define MPB_MAX_TAG_VAL_LENGTH 8000
#define MPB_MAX_ENTITY_KEY_LENGTH 250
#define MPB_MAX_EXPERIMENT_NAME_LENGTH 500
#define MPB_MAX_EXPERIMENT_TAG_VAL_LENGTH 5000
#define MPB_SEARCH_MAX_RESULTS_DEFAULT 1000
#define MPB_SEARCH_MAX_RESULTS_THRESHOLD 50000

/* The experiment every store starts with (named "Default"; cannot be deleted). */
#define MPB_DEFAULT_EXPERIMENT_ID "0"

/* System tags MLflow clients read (mlflow/utils/mlflow_tags.py). */
#define MPB_TAG_RUN_NAME "mlflow.runName"
#define MPB_TAG_USER "mlflow.user"
#define MPB_TAG_PARENT_RUN_ID "mlflow.parentRunId"
#define MPB_TAG_SOURCE_NAME "mlflow.source.name"
#define MPB_TAG_SOURCE_TYPE "mlflow.source.type"
#define MPB_TAG_NOTE "mlflow.note.content"

typedef struct mpb_store mpb_store;

/* Run status: the integers MLflow's FileStore writes (the SQL store writes
 * the names, mpb_run_status_name). */
typedef enum mpb_run_status {
    MPB_RUN_RUNNING = 1,
    MPB_RUN_SCHEDULED = 2,
    MPB_RUN_FINISHED = 3,
    MPB_RUN_FAILED = 4,
    MPB_RUN_KILLED = 5,
} mpb_run_status;

typedef enum mpb_view_type {
    MPB_VIEW_ACTIVE_ONLY = 1,
    MPB_VIEW_DELETED_ONLY = 2,
    MPB_VIEW_ALL = 3,
} mpb_view_type;

typedef struct mpb_metric {
    const char *key;
    double value;
    int64_t timestamp_ms;
    int64_t step;
} mpb_metric;

typedef struct mpb_param {
    const char *key;
    const char *value;
} mpb_param;

typedef struct mpb_tag {
    const char *key;
    const char *value;
} mpb_tag;

/* Returned entities own every string and array they point to. */
typedef struct mpb_experiment {
    char *experiment_id;
    char *name;
    char *artifact_location;
    char *lifecycle_stage; /* "active" | "deleted" */
    int64_t creation_time;
    int64_t last_update_time;
    mpb_tag *tags;
    size_t n_tags;
} mpb_experiment;

typedef struct mpb_run_info {
    char *run_id;
    char *experiment_id;
    char *run_name;
    char *user_id;
    mpb_run_status status;
    int64_t start_time;
    int64_t end_time; /* -1 while unset */
    char *artifact_uri;
    char *lifecycle_stage;
    int64_t deleted_time; /* -1 unless the run is deleted (added after the contract) */
} mpb_run_info;

typedef struct mpb_run {
    mpb_run_info info;
    mpb_metric *metrics; /* latest value per key */
    size_t n_metrics;
    mpb_param *params;
    size_t n_params;
    mpb_tag *tags;
    size_t n_tags;
} mpb_run;

/* How to reach a store. Zero/NULL fields mean the backend's default; a
 * backend ignores the fields that do not apply to it (the file store uses
 * none; the SQLite store uses timeout_ms and artifact_root; the REST store
 * uses timeout_ms and the connection fields, each falling back to MLflow's
 * environment variable when unset). */
typedef struct mpb_store_open_opts {
    /* SQLite: how long one call waits for another process's lock (busy
     * timeout and retries; default 20000). REST: per request (default 120000). */
    int64_t timeout_ms;
    /* REST: retries of a retryable failure (408, 429, 5xx, timeouts); 0 means
     * the default (7), negative means none. */
    int max_retries;
    /* SQLite: where new experiments keep artifacts (a local folder or a
     * file: URI); default ./mlruns resolved at open, as MLflow's client. */
    const char *artifact_root;
    /* REST: HTTP basic auth (MLFLOW_TRACKING_USERNAME / _PASSWORD). */
    const char *username;
    const char *password;
    /* REST: bearer token (MLFLOW_TRACKING_TOKEN). */
    const char *token;
    /* REST: 1 skips TLS certificate checks (MLFLOW_TRACKING_INSECURE_TLS). */
    int insecure_tls;
    /* REST: CA bundle and client certificate files (MLFLOW_TRACKING_SERVER_CERT_PATH,
     * MLFLOW_TRACKING_CLIENT_CERT_PATH). */
    const char *ca_bundle;
    const char *client_cert;
} mpb_store_open_opts;

/* The tracking URI used when none is given: MLFLOW_TRACKING_URI when set and
 * not empty; else "./mlruns" when that folder already holds an experiment
 * (a sub-folder with meta.yaml), else "sqlite:///mlflow.db" (MLflow's rule
 * since 3.7). Caller frees. */
MPB_EXPORT char *mpb_store_default_uri(void);

/* Opens (creating if needed) the store named by a tracking URI; NULL uri
 * means mpb_store_default_uri(). On success *out is the caller's
 * (mpb_store_destroy). Same as mpb_store_open_with(uri, NULL, ...). */
MPB_EXPORT int mpb_store_open(const char *uri, mpb_store **out, char *err, size_t err_len);

/* Same, with options (NULL: all defaults); opts is borrowed for the call. */
MPB_EXPORT int mpb_store_open_with(const char *uri, const mpb_store_open_opts *opts,
                                   mpb_store **out, char *err, size_t err_len);

/* Closes the store; NULL-safe, idempotent, sets *self_p = NULL. */
MPB_EXPORT void mpb_store_destroy(mpb_store **self_p);

/* The store's tracking URI as given or resolved (borrowed until destroy). */
MPB_EXPORT const char *mpb_store_uri(const mpb_store *self);

/* Creates a run in an experiment. start_time_ms < 0 means now; run_name may
 * be NULL (then a random MLflow-style name); tags are written with the run
 * (mlflow.runName and mlflow.user are added when absent). *out_run_id is the
 * caller's (free()). */
MPB_EXPORT int mpb_store_create_run(mpb_store *self, const char *experiment_id, const char *user_id,
                                    int64_t start_time_ms, const char *run_name,
                                    const mpb_tag *tags, size_t n_tags, char **out_run_id,
                                    char *err, size_t err_len);

/* Sets status and end time (end_time_ms < 0: leave as is); run_name NULL
 * keeps the name. */
MPB_EXPORT int mpb_store_update_run(mpb_store *self, const char *run_id, mpb_run_status status,
                                    int64_t end_time_ms, const char *run_name, char *err,
                                    size_t err_len);

/* Logs metrics, params and tags to a run in one call, within MLflow's batch
 * limits; validated as a whole before anything is written. */
MPB_EXPORT int mpb_store_log_batch(mpb_store *self, const char *run_id, const mpb_metric *metrics,
                                   size_t n_metrics, const mpb_param *params, size_t n_params,
                                   const mpb_tag *tags, size_t n_tags, char *err, size_t err_len);

/* Reads a run with its latest metrics, params and tags; *out is the caller's. */
MPB_EXPORT int mpb_store_get_run(mpb_store *self, const char *run_id, mpb_run **out, char *err,
                                 size_t err_len);

MPB_EXPORT void mpb_run_free(mpb_run **run_p);

MPB_EXPORT void mpb_experiment_free(mpb_experiment **experiment_p);

/* Name of a status as MLflow spells it ("FINISHED"); "UNKNOWN" when out of range. */
MPB_EXPORT const char *mpb_run_status_name(mpb_run_status status);

/* Parses "RUNNING", "FINISHED", ... (case-insensitive); 0 on success, MPB_EINVAL otherwise. */
MPB_EXPORT int mpb_run_status_parse(const char *name, mpb_run_status *out);

/* ---- Experiments ------------------------------------------------------ */

/* Creates an experiment. artifact_location NULL means the store's default
 * (file://<root>/<id> for the file store, <artifact_root>/<id> for the
 * SQLite store). Names are unique among active and
 * deleted experiments (MPB_EEXIST otherwise). *out_experiment_id is the
 * caller's (free()); out_experiment_id may be NULL. */
MPB_EXPORT int mpb_store_create_experiment(mpb_store *self, const char *name,
                                           const char *artifact_location, const mpb_tag *tags,
                                           size_t n_tags, char **out_experiment_id, char *err,
                                           size_t err_len);

/* Reads an experiment (active or deleted) with its tags; *out is the caller's. */
MPB_EXPORT int mpb_store_get_experiment(mpb_store *self, const char *experiment_id,
                                        mpb_experiment **out, char *err, size_t err_len);

/* Same, looked up by exact name among active and deleted experiments. */
MPB_EXPORT int mpb_store_get_experiment_by_name(mpb_store *self, const char *name,
                                                mpb_experiment **out, char *err, size_t err_len);

/* Marks the experiment and its active runs deleted (the file store moves the
 * folder to .trash/, the SQLite store changes lifecycle_stage). The default experiment cannot be deleted. */
MPB_EXPORT int mpb_store_delete_experiment(mpb_store *self, const char *experiment_id, char *err,
                                           size_t err_len);

/* Undoes mpb_store_delete_experiment, restoring the runs it deleted. */
MPB_EXPORT int mpb_store_restore_experiment(mpb_store *self, const char *experiment_id, char *err,
                                            size_t err_len);

/* Sets (overwrites) a tag of an active experiment. */
MPB_EXPORT int mpb_store_set_experiment_tag(mpb_store *self, const char *experiment_id,
                                            const char *key, const char *value, char *err,
                                            size_t err_len);

/* ---- Search ------------------------------------------------------------- */

/* Options of both searches. All fields may be zero/NULL (match everything,
 * default order, active only, 1000 results, first page). The filter is MLflow's
 * search syntax (docs/tracking-format.md, "Search"): clauses joined by AND,
 * e.g. "params.lr = '0.1' AND metrics.loss < 1". */
typedef struct mpb_search_opts {
    const char *filter;
    const char *const *order_by; /* e.g. "metrics.loss DESC", "attributes.start_time" */
    size_t n_order_by;
    mpb_view_type view_type; /* 0 means MPB_VIEW_ACTIVE_ONLY */
    size_t max_results;      /* 0 means 1000; more than 50000 is MPB_EINVAL */
    const char *page_token;  /* NULL: first page; else a next_page_token of the same
                              * store and search (opaque: each backend has its own) */
} mpb_search_opts;

/* One page of runs; owns everything. next_page_token is NULL on the last page. */
typedef struct mpb_run_page {
    mpb_run *runs;
    size_t n_runs;
    char *next_page_token;
} mpb_run_page;

typedef struct mpb_experiment_page {
    mpb_experiment *experiments;
    size_t n_experiments;
    char *next_page_token;
} mpb_experiment_page;

/* Searches experiments (filter over name, creation_time, last_update_time and
 * tags; order_by name, experiment_id, creation_time, last_update_time; default
 * order: creation_time DESC, experiment_id). *out is the caller's. */
MPB_EXPORT int mpb_store_search_experiments(mpb_store *self, const mpb_search_opts *opts,
                                            mpb_experiment_page **out, char *err, size_t err_len);

/* Searches the runs of the given experiments (filter over attributes, tags,
 * params, metrics; default order: start_time DESC, run_id). *out is the caller's. */
MPB_EXPORT int mpb_store_search_runs(mpb_store *self, const char *const *experiment_ids,
                                     size_t n_experiment_ids, const mpb_search_opts *opts,
                                     mpb_run_page **out, char *err, size_t err_len);

MPB_EXPORT void mpb_run_page_free(mpb_run_page **page_p);

MPB_EXPORT void mpb_experiment_page_free(mpb_experiment_page **page_p);

/* ---- Runs --------------------------------------------------------------- */

/* Marks a run deleted (it stays on disk and in MPB_VIEW_DELETED_ONLY searches). */
MPB_EXPORT int mpb_store_delete_run(mpb_store *self, const char *run_id, char *err, size_t err_len);

/* Marks a deleted run active again. */
MPB_EXPORT int mpb_store_restore_run(mpb_store *self, const char *run_id, char *err,
                                     size_t err_len);

/* Sets (overwrites) one tag of an active run; mlflow.runName also renames the run. */
MPB_EXPORT int mpb_store_set_tag(mpb_store *self, const char *run_id, const char *key,
                                 const char *value, char *err, size_t err_len);

/* Removes a tag of an active run; MPB_ENOTFOUND when the run has no such tag. */
MPB_EXPORT int mpb_store_delete_tag(mpb_store *self, const char *run_id, const char *key, char *err,
                                    size_t err_len);

/* Every logged value of one metric, in the order it was logged. Owns its
 * strings; metrics[i].key points to key. */
typedef struct mpb_metric_history {
    char *run_id;
    char *key;
    mpb_metric *metrics;
    size_t n_metrics;
} mpb_metric_history;

/* Reads a metric's history; an unknown key gives an empty history. *out is the caller's. */
MPB_EXPORT int mpb_store_get_metric_history(mpb_store *self, const char *run_id, const char *key,
                                            mpb_metric_history **out, char *err, size_t err_len);

MPB_EXPORT void mpb_metric_history_free(mpb_metric_history **history_p);

/* ---- Artifacts ---------------------------------------------------------- */

typedef struct mpb_artifact_file {
    char *path; /* relative to the run's artifact root, '/'-separated */
    int is_dir;
    int64_t file_size; /* -1 for folders */
} mpb_artifact_file;

typedef struct mpb_artifact_list {
    mpb_artifact_file *files; /* sorted by path */
    size_t n_files;
} mpb_artifact_list;

/* Copies a local file or folder into the run's artifacts under artifact_path
 * (NULL or "" = the root). A file lands at <artifact_path>/<basename>; a
 * folder's CONTENTS land under <artifact_path>/ (MLflow's log_artifact and
 * log_artifacts). Each file appears whole (copied to a temp name, renamed). */
MPB_EXPORT int mpb_store_log_artifact(mpb_store *self, const char *run_id, const char *local_path,
                                      const char *artifact_path, char *err, size_t err_len);

/* Lists the direct children of an artifact folder (path NULL or "" = root). */
MPB_EXPORT int mpb_store_list_artifacts(mpb_store *self, const char *run_id, const char *path,
                                        mpb_artifact_list **out, char *err, size_t err_len);

/* Copies an artifact file or folder (path NULL or "" = everything) into the
 * local folder dst_dir (created if missing); *out_local_path (may be NULL) is
 * the copy's path, the caller's (free()). */
MPB_EXPORT int mpb_store_download_artifacts(mpb_store *self, const char *run_id, const char *path,
                                            const char *dst_dir, char **out_local_path, char *err,
                                            size_t err_len);

MPB_EXPORT void mpb_artifact_list_free(mpb_artifact_list **list_p);

/* ---- Models from runs (MLflow's runs:/<run_id>/<artifact path> URIs) ---- */

/* 1 when value starts with "runs:/". */
MPB_EXPORT int mpb_model_uri_is_runs(const char *value);

/* The artifact a runs:/ URI names, as a local path: copied once through
 * the store into cache_dir/<run_id>/<artifact path> (cache_dir NULL:
 * mpb_model_cache_dir()), reused afterwards. *out_path is the caller's
 * (free()); sha256_hex gets the SHA-256 of the file (of a folder: of its
 * names and contents in name order). Errors name the URI's problem (no
 * such run, no such artifact). */
MPB_EXPORT int mpb_store_resolve_runs_uri(mpb_store *self, const char *uri, const char *cache_dir,
                                          char **out_path, char sha256_hex[65], char *err,
                                          size_t err_len);

/* $MPB_MODEL_CACHE, else $XDG_CACHE_HOME/mpbatch/models, else
 * ~/.cache/mpbatch/models; the caller's (free()). */
MPB_EXPORT char *mpb_model_cache_dir(void);

/* SHA-256 as 64 hex digits: of a file's content (what sha256sum prints),
 * or of a folder's tree: each entry's kind, name and, for files, length and
 * content, in name order, encoded so that different trees never collide. */
MPB_EXPORT int mpb_model_sha256(const char *path, char hex[65], char *err, size_t err_len);

/* ---- Registry helpers (the way ForML uses MLflow as a model registry) --- */

/* The id of the experiment with this name: an active one as is, a deleted
 * one restored, none created. *out_created (may be NULL) says whether it was
 * created. *out_experiment_id is the caller's (free()). */
MPB_EXPORT int mpb_store_get_or_create_experiment(mpb_store *self, const char *name,
                                                  char **out_experiment_id, int *out_created,
                                                  char *err, size_t err_len);

/* The id of the one active run of the experiment carrying ALL the given tags
 * (exact values): one match is returned, none creates a run with those tags,
 * several are MPB_EAMBIGUOUS. *out_run_id is the caller's (free()). */
MPB_EXPORT int mpb_store_get_or_create_run(mpb_store *self, const char *experiment_id,
                                           const mpb_tag *tags, size_t n_tags, char **out_run_id,
                                           int *out_created, char *err, size_t err_len);

/* ---- Model registry (MLflow's registered models, versions and aliases) -- */

/* MLflow's limits for registry names. */
#define MPB_MAX_MODEL_NAME_LENGTH 256
#define MPB_MAX_MODEL_ALIAS_LENGTH 255
#define MPB_MAX_MODEL_SOURCE_LENGTH 500
#define MPB_MAX_MODEL_DESCRIPTION_LENGTH 5000

/* An alias of a registered model: a name pointing to one of its versions. */
typedef struct mpb_model_alias {
    char *alias;
    int64_t version;
} mpb_model_alias;

/* A registered model; owns every string and array. */
typedef struct mpb_registered_model {
    char *name;
    char *description; /* "" when none */
    int64_t creation_time;
    int64_t last_updated_time;
    mpb_tag *tags;
    size_t n_tags;
    mpb_model_alias *aliases; /* sorted by alias */
    size_t n_aliases;
} mpb_registered_model;

/* One version of a registered model; owns every string and array. */
typedef struct mpb_model_version {
    char *name;
    int64_t version; /* 1, 2, ... per model */
    int64_t creation_time;
    int64_t last_updated_time;
    char *source;   /* where the model lives: runs:/..., a path, a file: or mlflow-artifacts: URI */
    char *run_id;   /* "" when none */
    char *status;   /* "READY" */
    char **aliases; /* the aliases pointing here, sorted */
    size_t n_aliases;
} mpb_model_version;

typedef struct mpb_registered_model_list {
    mpb_registered_model *models; /* sorted by name */
    size_t n_models;
} mpb_registered_model_list;

typedef struct mpb_model_version_list {
    mpb_model_version *versions; /* sorted by version */
    size_t n_versions;
} mpb_model_version_list;

/* Creates a registered model (MPB_EEXIST when the name is taken). Names are
 * non-empty UTF-8 of at most 256 characters without '/', '\\' or '%' (so the
 * file store can keep one folder per model); description may be NULL; tags
 * as experiment tags. */
MPB_EXPORT int mpb_store_create_registered_model(mpb_store *self, const char *name,
                                                 const char *description, const mpb_tag *tags,
                                                 size_t n_tags, char *err, size_t err_len);

/* Reads a registered model with its tags and aliases; *out is the caller's. */
MPB_EXPORT int mpb_store_get_registered_model(mpb_store *self, const char *name,
                                              mpb_registered_model **out, char *err,
                                              size_t err_len);

/* Every registered model of the store, by name; *out is the caller's. */
MPB_EXPORT int mpb_store_list_registered_models(mpb_store *self, mpb_registered_model_list **out,
                                                char *err, size_t err_len);

/* Deletes a registered model with its versions, tags and aliases. */
MPB_EXPORT int mpb_store_delete_registered_model(mpb_store *self, const char *name, char *err,
                                                 size_t err_len);

/* Adds the next version (1 + the highest so far) of a registered model.
 * source names the model (at most 500 characters); run_id (may be NULL) the
 * run that produced it: when NULL and source is runs:/<run_id>/..., the
 * run is taken from the URI. *out (out may be NULL) is the caller's. */
MPB_EXPORT int mpb_store_create_model_version(mpb_store *self, const char *name, const char *source,
                                              const char *run_id, mpb_model_version **out,
                                              char *err, size_t err_len);

/* Reads one version; MPB_ENOTFOUND when the model or the version is unknown. */
MPB_EXPORT int mpb_store_get_model_version(mpb_store *self, const char *name, int64_t version,
                                           mpb_model_version **out, char *err, size_t err_len);

/* Every version of a registered model, by version; *out is the caller's. */
MPB_EXPORT int mpb_store_list_model_versions(mpb_store *self, const char *name,
                                             mpb_model_version_list **out, char *err,
                                             size_t err_len);

/* Points an alias of a model at one of its versions (moving it if it
 * pointed elsewhere). Aliases are [A-Za-z0-9_-], at most 255 characters,
 * neither "latest" nor v<digits> (those name versions in models:/ URIs). */
MPB_EXPORT int mpb_store_set_model_alias(mpb_store *self, const char *name, const char *alias,
                                         int64_t version, char *err, size_t err_len);

/* Removes an alias; MPB_ENOTFOUND when the model has no such alias. */
MPB_EXPORT int mpb_store_delete_model_alias(mpb_store *self, const char *name, const char *alias,
                                            char *err, size_t err_len);

/* The version an alias points to; MPB_ENOTFOUND when there is no such alias. */
MPB_EXPORT int mpb_store_get_model_version_by_alias(mpb_store *self, const char *name,
                                                    const char *alias, mpb_model_version **out,
                                                    char *err, size_t err_len);

MPB_EXPORT void mpb_registered_model_free(mpb_registered_model **model_p);
MPB_EXPORT void mpb_model_version_free(mpb_model_version **version_p);
MPB_EXPORT void mpb_registered_model_list_free(mpb_registered_model_list **list_p);
MPB_EXPORT void mpb_model_version_list_free(mpb_model_version_list **list_p);

/* 1 when value starts with "models:/". */
MPB_EXPORT int mpb_model_uri_is_models(const char *value);

/* The model a runs:/ URI or a models:/ URI (models:/<name>/<version>,
 * models:/<name>@<alias>, models:/<name>/latest) names, as a local path in
 * the model cache, as mpb_store_resolve_runs_uri. A models:/ URI is looked
 * up in the registry and its version's source resolved: a runs:/ URI
 * through the run's artifacts, a local path or file: URI copied into
 * cache_dir/models/<name>/<version>/. *out_version (may be NULL) is the
 * version served (0 for a runs:/ URI). */
MPB_EXPORT int mpb_store_resolve_model_uri(mpb_store *self, const char *uri, const char *cache_dir,
                                           char **out_path, char sha256_hex[65],
                                           int64_t *out_version, char *err, size_t err_len);

#endif
