/*
 * Internals of the tracking store: the backend contract (one static const
 * table of function pointers per backend, picked by URI scheme), entity
 * helpers shared by backends, and the file store's fault-injection seam.
 *
 * Threading: every slot may be called from several threads at once on one
 *   backend; the backend serialises what needs it (the file store: flock on
 *   the run folder for run writes, on the root folder for experiment changes;
 *   the SQLite store: its connection's mutex and one SQLite transaction per
 *   call).
 *   Every slot may block on disk or network I/O.
 * Processes: a backend is never carried across fork().
 * Ownership: inputs are borrowed for the call. Out-parameters are the
 *   caller's. Inputs reaching a slot have passed mpb_store_*'s argument
 *   validation (ids well-formed, keys and lengths within MLflow's rules,
 *   batch limits, search options in range); slots check stored state
 *   (existence, lifecycle, immutable params).
 */
#ifndef MPB_TRACKING_STORE_INT_H
#define MPB_TRACKING_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/store.h"

typedef struct mpb__store_ops {
    const char *name; /* "file", "sqlite" */

    /* Opens the backend named by `uri` (the URI as given, scheme included or
     * a plain path) with `opts` (never NULL; fields that do not apply to the
     * backend are ignored); *out_uri is the resolved URI, the caller's. */
    int (*open)(const char *uri, const mpb_store_open_opts *opts, void **out_backend,
                char **out_uri, char *err, size_t err_len);
    void (*close)(void *backend);

    int (*create_experiment)(void *backend, const char *name, const char *artifact_location,
                             const mpb_tag *tags, size_t n_tags, char **out_experiment_id,
                             char *err, size_t err_len);
    int (*get_experiment)(void *backend, const char *experiment_id, mpb_experiment **out, char *err,
                          size_t err_len);
    int (*get_experiment_by_name)(void *backend, const char *name, mpb_experiment **out, char *err,
                                  size_t err_len);
    int (*search_experiments)(void *backend, const mpb_search_opts *opts, mpb_experiment_page **out,
                              char *err, size_t err_len);
    int (*delete_experiment)(void *backend, const char *experiment_id, char *err, size_t err_len);
    int (*restore_experiment)(void *backend, const char *experiment_id, char *err, size_t err_len);
    int (*set_experiment_tag)(void *backend, const char *experiment_id, const char *key,
                              const char *value, char *err, size_t err_len);

    /* run_name and user_id are resolved by the caller (never NULL); tags
     * already hold mlflow.runName and mlflow.user. */
    int (*create_run)(void *backend, const char *experiment_id, const char *user_id,
                      int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                      size_t n_tags, char **out_run_id, char *err, size_t err_len);
    int (*update_run)(void *backend, const char *run_id, mpb_run_status status, int64_t end_time_ms,
                      const char *run_name, char *err, size_t err_len);
    int (*get_run)(void *backend, const char *run_id, mpb_run **out, char *err, size_t err_len);
    int (*search_runs)(void *backend, const char *const *experiment_ids, size_t n_experiment_ids,
                       const mpb_search_opts *opts, mpb_run_page **out, char *err, size_t err_len);
    int (*delete_run)(void *backend, const char *run_id, char *err, size_t err_len);
    int (*restore_run)(void *backend, const char *run_id, char *err, size_t err_len);
    int (*log_batch)(void *backend, const char *run_id, const mpb_metric *metrics, size_t n_metrics,
                     const mpb_param *params, size_t n_params, const mpb_tag *tags, size_t n_tags,
                     char *err, size_t err_len);
    int (*delete_tag)(void *backend, const char *run_id, const char *key, char *err,
                      size_t err_len);
    int (*get_metric_history)(void *backend, const char *run_id, const char *key,
                              mpb_metric_history **out, char *err, size_t err_len);

    /* Artifacts of a run. A backend whose runs keep local artifact URIs
     * (a path or file:) sets only run_artifact_uri: the run's artifact_uri
     * in *out (the caller's), and the public calls use the local
     * repository (mpb__local_artifacts_*). Another sets the three slots
     * below, called as mpb_store_log_artifact / _list_artifacts /
     * _download_artifacts (paths already checked: relative, no '..'). */
    int (*run_artifact_uri)(void *backend, const char *run_id, char **out, char *err,
                            size_t err_len);
    int (*log_artifact)(void *backend, const char *run_id, const char *local_path,
                        const char *artifact_path, char *err, size_t err_len);
    int (*list_artifacts)(void *backend, const char *run_id, const char *path,
                          mpb_artifact_list **out, char *err, size_t err_len);
    int (*download_artifacts)(void *backend, const char *run_id, const char *path,
                              const char *dst_dir, char **out_local_path, char *err,
                              size_t err_len);

    /* Permanent deletion (`mpb runs gc`); kept last so other slots merge
     * cleanly. NULL: the backend cannot (the wrappers answer MPB_ENOTSUP).
     * purge_run removes a run in the deleted lifecycle stage with its
     * params, tags, metrics and local artifacts (MPB_EINVAL for an active
     * run); purge_experiment removes a deleted experiment with every run in
     * it, their artifacts, and its tags. */
    int (*purge_run)(void *backend, const char *run_id, char *err, size_t err_len);
    int (*purge_experiment)(void *backend, const char *experiment_id, char *err, size_t err_len);

    /* Model registry (mpb_store_*_registered_model, *_model_version*,
     * *_model_alias). NULL: the backend has no registry (the wrappers
     * answer MPB_ENOTSUP). Names, aliases, sources and versions have passed
     * validation; slots check what is stored: MPB_EEXIST for a taken model
     * name, MPB_ENOTFOUND for an unknown model, version or alias (with
     * MLflow's message). create_model_version numbers versions 1 + the
     * highest so far, atomically against concurrent creators; run_id may be
     * NULL. set_model_alias checks the version exists. Lists are sorted (models
     * by name, versions by version, aliases by alias). */
    int (*create_registered_model)(void *backend, const char *name, const char *description,
                                   const mpb_tag *tags, size_t n_tags, char *err, size_t err_len);
    int (*get_registered_model)(void *backend, const char *name, mpb_registered_model **out,
                                char *err, size_t err_len);
    int (*list_registered_models)(void *backend, mpb_registered_model_list **out, char *err,
                                  size_t err_len);
    int (*delete_registered_model)(void *backend, const char *name, char *err, size_t err_len);
    int (*create_model_version)(void *backend, const char *name, const char *source,
                                const char *run_id, mpb_model_version **out, char *err,
                                size_t err_len);
    int (*get_model_version)(void *backend, const char *name, int64_t version,
                             mpb_model_version **out, char *err, size_t err_len);
    int (*list_model_versions)(void *backend, const char *name, mpb_model_version_list **out,
                               char *err, size_t err_len);
    int (*set_model_alias)(void *backend, const char *name, const char *alias, int64_t version,
                           char *err, size_t err_len);
    int (*delete_model_alias)(void *backend, const char *name, const char *alias, char *err,
                              size_t err_len);
    int (*get_model_version_by_alias)(void *backend, const char *name, const char *alias,
                                      mpb_model_version **out, char *err, size_t err_len);
} mpb__store_ops;

/* Page tokens: search_experiments and search_runs get opts->page_token as
 * the caller got it from an earlier page of the same backend: the format is
 * the backend's own (made and parsed by it alone), and a token it cannot
 * parse is MPB_EINVAL. */

struct mpb_store {
    const mpb__store_ops *ops;
    void *backend;
    char *uri;
};

/* The backends' ops tables (static consts in tracking/filestore.c and
 * tracking/sqlstore.c). */
const mpb__store_ops *mpb__filestore_backend(void);
const mpb__store_ops *mpb__sqlstore_backend(void);

/* ---- Permanent deletion (tracking/store_purge.c) ----
 * The wrappers of the purge slots: MPB_ENOTSUP when the backend lacks them,
 * MPB_EINVAL for the default experiment. */
int mpb__store_purge_run(mpb_store *self, const char *run_id, char *err, size_t err_len);
int mpb__store_purge_experiment(mpb_store *self, const char *experiment_id, char *err,
                                size_t err_len);
/* Removes a local artifact folder (a path or a file: URI; others are left
 * alone); a missing folder is not an error. */
int mpb__local_artifacts_remove(const char *artifact_uri);

/* ---- Local artifact repository (tracking/artifacts.c) ----
 * For runs whose artifact_uri is a local path or a file: URI (MLflow's
 * LocalArtifactRepository); run_id only names the run in messages. */
int mpb__local_artifacts_log(const char *artifact_uri, const char *run_id, const char *local_path,
                             const char *artifact_path, char *err, size_t err_len);
int mpb__local_artifacts_list(const char *artifact_uri, const char *run_id, const char *path,
                              mpb_artifact_list **out, char *err, size_t err_len);
int mpb__local_artifacts_download(const char *artifact_uri, const char *run_id, const char *path,
                                  const char *dst_dir, char **out_local_path, char *err,
                                  size_t err_len);

/* ---- Entity helpers (tracking/entities.c) ---- */

void mpb__run_info_clear(mpb_run_info *info);
void mpb__run_clear(mpb_run *run);
void mpb__experiment_clear(mpb_experiment *experiment);
/* Frees the keys and values of n tags (or params: same layout) and the array. */
void mpb__tags_free(mpb_tag *tags, size_t n);
/* The value of the last tag with this key, or NULL. */
const char *mpb__tag_find(const mpb_tag *tags, size_t n, const char *key);
const char *mpb__param_find(const mpb_param *params, size_t n, const char *key);
const mpb_metric *mpb__metric_find(const mpb_metric *metrics, size_t n, const char *key);

/* ---- Registry entity helpers (tracking/model_registry.c) ---- */
void mpb__registered_model_clear(mpb_registered_model *model);
void mpb__model_version_clear(mpb_model_version *version);
/* Sorts models by name, versions by version, aliases by alias. */
void mpb__registered_models_sort(mpb_registered_model *models, size_t n);
void mpb__model_versions_sort(mpb_model_version *versions, size_t n);
void mpb__model_aliases_sort(mpb_model_alias *aliases, size_t n);
/* MPB_ENOTFOUND with MLflow's message for a missing model or version. */
int mpb__registry_model_not_found(const char *name, char *err, size_t err_len);
/* The end of a backend's list call: rc < 0 frees list and returns rc;
 * else the list, sorted, goes to *out (0). */
int mpb__registry_models_hand_out(mpb_registered_model_list *list, int rc,
                                  mpb_registered_model_list **out);
int mpb__registry_versions_hand_out(mpb_model_version_list *list, int rc,
                                    mpb_model_version_list **out);
int mpb__registry_version_not_found(const char *name, int64_t version, char *err, size_t err_len);
/* Fills version->aliases from a model's aliases that point at it. */
void mpb__model_version_take_aliases(mpb_model_version *version, const mpb_model_alias *aliases,
                                     size_t n_aliases);

/* ---- Fault injection for tests (implemented in tracking/fs_util.c) ----
 * After `succeed_first` more successful writing file operations (open for
 * writing, write, rename, mkdir, unlink) of this process, every further one
 * fails with `status` until disarmed. Process-wide; tests only. */
void mpb__fs_fault_arm(int succeed_first, int status);
void mpb__fs_fault_disarm(void);

#endif
