/*
 * Tracking store: experiments, runs, params, metrics, tags and artifacts in a
 * backend MLflow itself can read, chosen by tracking URI as MLflow does
 * (`file:PATH` or a plain path: MLflow's FileStore layout; later `sqlite:///`
 * and `http(s)://`).
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

typedef struct mpb_store mpb_store;

/* Run status: the integers MLflow's FileStore writes. */
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

/* Opens (creating if needed) the store named by a tracking URI; NULL uri
 * means MLFLOW_TRACKING_URI, else "./mlruns". On success *out is the
 * caller's (mpb_store_destroy). */
MPB_EXPORT int mpb_store_open(const char *uri, mpb_store **out, char *err, size_t err_len);

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

#endif
