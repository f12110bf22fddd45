/*
 * Internals shared by the file store's sources, each calling only those
 * above it in this list: filestore_disk.c (the root lock, meta.yaml and
 * value files, experiment and run folders, the run lock); filestore_log.c
 * (log_batch, tags, metric files); filestore_runs.c (runs);
 * filestore_experiments.c (experiments); filestore.c (open, the ops
 * table). docs/tracking-format.md is the layout these write.
 *
 * Locks (flock(2) on folders, so they exclude threads and processes alike):
 *   root folder  exclusive: create/delete/restore experiment, default experiment
 *                shared:    create_run (the experiment cannot move meanwhile)
 *   run folder   exclusive: every change of one run (log_batch, tags, update,
 *                delete, restore), so param immutability holds across processes
 * Readers take no lock: every file is replaced by rename(2) or appended with one
 * write(2), and a metric line without its newline yet is ignored.
 * Threading/Processes/Ownership: as tracking/store_int.h.
 */
#ifndef MPB_TRACKING_FILESTORE_INT_H
#define MPB_TRACKING_FILESTORE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mpbatch/store.h"
#include "tracking/text.h"
#include "tracking/yaml_meta.h"

typedef struct mpb__filestore {
    char *root;  /* absolute path of the mlruns folder */
    char *trash; /* root/.trash */
} mpb__filestore;

/* The largest value file (a param or tag) read back. */
#define MPB__FILESTORE_VALUE_LIMIT (1 << 20)

/* The last component of a path (no copy). */
static inline const char *
mpb__filestore_base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---- filestore_disk.c: the root, meta.yaml and value files, folders, the run lock ---- */

/* Takes the root lock (shared = 1 for run creation, else exclusive); the
 * message names the root when it cannot. Release with mpb__fs_unlock. */
int mpb__filestore_lock_root(const mpb__filestore *fs, int shared, int *out_lock, char *err,
                             size_t err_len);

/* 1 when <dir>/meta.yaml is a file: the folder is a whole experiment or run. */
int mpb__filestore_has_meta(const char *dir);

/* Reads and parses a meta.yaml; a missing file is MPB_ENOTFOUND. */
int mpb__filestore_read_meta(const char *meta_path, mpb__yaml_map *out, char *err, size_t err_len);

/* Writes <dir>/meta.yaml atomically from yaml, which it empties. */
int mpb__filestore_write_meta(const char *dir, mpb__strbuf *yaml);

/* 1 when <base_dir>/<key> cannot hold a value: a prefix of the key is a
 * file, or the key itself is a folder ("a" vs "a/b"). */
int mpb__filestore_key_conflict(const char *base_dir, const char *key);

/* Writes one value file (params/ or tags/ of a run, tags/ of an experiment)
 * atomically, with the temp file in `owner_dir`; keys with '/' get folders. */
int mpb__filestore_write_value(const char *owner_dir, const char *sub, const char *key,
                               const char *value);

/* Reads every value file below <owner_dir>/<sub> into key/value pairs. */
int mpb__filestore_read_values(const char *owner_dir, const char *sub, mpb_tag **out,
                               size_t *out_n);

/* Folder of an experiment: active ones in the root, deleted ones in .trash.
 * NULL when neither holds a meta.yaml. Caller frees. */
char *mpb__filestore_experiment_dir(const mpb__filestore *fs, const char *experiment_id,
                                    int *out_deleted);

/* Every experiment folder (root first, then .trash), skipping reserved names. */
int mpb__filestore_experiment_dirs(const mpb__filestore *fs, char ***out_dirs, size_t *out_n);

/* Reads <dir>/meta.yaml and <dir>/tags; the id must match the folder name. */
int mpb__filestore_read_experiment(const char *dir, int deleted, mpb_experiment *out, char *err,
                                   size_t err_len);

/* Writes <dir>/meta.yaml atomically from an experiment's fields. */
int mpb__filestore_write_experiment_meta(const char *dir, const mpb_experiment *experiment);

/* Folder of a run in any experiment (active or deleted); NULL if none. */
char *mpb__filestore_run_dir(const mpb__filestore *fs, const char *run_id);

/* Reads <run_dir>/meta.yaml (run_name may still be empty: see read_run). */
int mpb__filestore_read_run_info(const char *run_dir, mpb_run_info *out, char *err, size_t err_len);

/* Writes <run_dir>/meta.yaml atomically. deleted_time is written when >= 0,
 * as null when `creating`, else left out (MLflow's behaviour). */
int mpb__filestore_write_run_meta(const char *run_dir, const mpb_run_info *info, int creating);

/* A run folder under its exclusive lock, with the info read under the lock. */
typedef struct mpb__filestore_locked_run {
    char *dir;
    int lock;
    mpb_run_info info;
} mpb__filestore_locked_run;

/* Finds, locks and reads a run; with must_be_active a deleted run is
 * MPB_EINVAL ("must be in the 'active' state"). */
int mpb__filestore_lock_run(mpb__filestore *fs, const char *run_id, int must_be_active,
                            mpb__filestore_locked_run *out, char *err, size_t err_len);
void mpb__filestore_unlock_run(mpb__filestore_locked_run *run);

/* ---- filestore_log.c ---- */

/* Latest value per metric key (max by step, timestamp, value). */
int mpb__filestore_read_latest_metrics(const char *run_dir, mpb_metric **out, size_t *out_n,
                                       char *err, size_t err_len);

/* ---- filestore_runs.c ---- */

/* Reads a whole run: info, params, tags, latest metrics. MPB_ENOTFOUND when
 * the folder lacks metrics/, params/ or artifacts/ (as MLflow). */
int mpb__filestore_read_run(const char *run_dir, mpb_run *out, char *err, size_t err_len);

/* Marks a run deleted (deleted_time = when) or, with when < 0, restores it
 * if it was deleted at or after `restore_since`. Takes the run lock. */
int mpb__filestore_set_run_lifecycle(const char *run_dir, int delete, int64_t when,
                                     int64_t restore_since);

/* ---- filestore_experiments.c ---- */

/* Creates <root>/<id> with tags, then meta.yaml last: a reader never sees a
 * half-made experiment. Caller holds the root lock. */
int mpb__filestore_make_experiment(mpb__filestore *fs, const char *id, const char *name,
                                   const char *artifact_location, const mpb_tag *tags,
                                   size_t n_tags, char *err, size_t err_len);

/* The store contract's slots (tracking/store_int.h), by source file. */
int mpb__filestore_create_experiment(void *backend, const char *name, const char *artifact_location,
                                     const mpb_tag *tags, size_t n_tags, char **out_experiment_id,
                                     char *err, size_t err_len);
int mpb__filestore_get_experiment(void *backend, const char *experiment_id, mpb_experiment **out,
                                  char *err, size_t err_len);
int mpb__filestore_get_experiment_by_name(void *backend, const char *name, mpb_experiment **out,
                                          char *err, size_t err_len);
int mpb__filestore_search_experiments(void *backend, const mpb_search_opts *opts,
                                      mpb_experiment_page **out, char *err, size_t err_len);
int mpb__filestore_delete_experiment(void *backend, const char *experiment_id, char *err,
                                     size_t err_len);
int mpb__filestore_restore_experiment(void *backend, const char *experiment_id, char *err,
                                      size_t err_len);
int mpb__filestore_set_experiment_tag(void *backend, const char *experiment_id, const char *key,
                                      const char *value, char *err, size_t err_len);

int mpb__filestore_log_batch(void *backend, const char *run_id, const mpb_metric *metrics,
                             size_t n_metrics, const mpb_param *params, size_t n_params,
                             const mpb_tag *tags, size_t n_tags, char *err, size_t err_len);
int mpb__filestore_delete_tag(void *backend, const char *run_id, const char *key, char *err,
                              size_t err_len);
int mpb__filestore_get_metric_history(void *backend, const char *run_id, const char *key,
                                      mpb_metric_history **out, char *err, size_t err_len);

int mpb__filestore_create_run(void *backend, const char *experiment_id, const char *user_id,
                              int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                              size_t n_tags, char **out_run_id, char *err, size_t err_len);
int mpb__filestore_update_run(void *backend, const char *run_id, mpb_run_status status,
                              int64_t end_time_ms, const char *run_name, char *err, size_t err_len);
int mpb__filestore_get_run(void *backend, const char *run_id, mpb_run **out, char *err,
                           size_t err_len);
int mpb__filestore_search_runs(void *backend, const char *const *experiment_ids,
                               size_t n_experiment_ids, const mpb_search_opts *opts,
                               mpb_run_page **out, char *err, size_t err_len);
int mpb__filestore_delete_run(void *backend, const char *run_id, char *err, size_t err_len);
int mpb__filestore_restore_run(void *backend, const char *run_id, char *err, size_t err_len);
/* tracking/filestore_purge.c */
int mpb__filestore_purge_run(void *backend, const char *run_id, char *err, size_t err_len);
int mpb__filestore_purge_experiment(void *backend, const char *experiment_id, char *err,
                                    size_t err_len);

/* tracking/filestore_registry.c: the model registry */
int mpb__filestore_create_registered_model(void *backend, const char *name, const char *description,
                                           const mpb_tag *tags, size_t n_tags, char *err,
                                           size_t err_len);
int mpb__filestore_get_registered_model(void *backend, const char *name, mpb_registered_model **out,
                                        char *err, size_t err_len);
int mpb__filestore_list_registered_models(void *backend, mpb_registered_model_list **out, char *err,
                                          size_t err_len);
int mpb__filestore_delete_registered_model(void *backend, const char *name, char *err,
                                           size_t err_len);
int mpb__filestore_create_model_version(void *backend, const char *name, const char *source,
                                        const char *run_id, mpb_model_version **out, char *err,
                                        size_t err_len);
int mpb__filestore_get_model_version(void *backend, const char *name, int64_t version,
                                     mpb_model_version **out, char *err, size_t err_len);
int mpb__filestore_list_model_versions(void *backend, const char *name,
                                       mpb_model_version_list **out, char *err, size_t err_len);
int mpb__filestore_set_model_alias(void *backend, const char *name, const char *alias,
                                   int64_t version, char *err, size_t err_len);
int mpb__filestore_delete_model_alias(void *backend, const char *name, const char *alias, char *err,
                                      size_t err_len);
int mpb__filestore_get_model_version_by_alias(void *backend, const char *name, const char *alias,
                                              mpb_model_version **out, char *err, size_t err_len);

#endif
