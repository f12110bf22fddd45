/*
 * File store (tracking URI `file:PATH` or a plain path): MLflow's FileStore
 * layout, docs/tracking-format.md. This file: open and the ops table;
 * experiments in filestore_experiments.c, runs in filestore_runs.c, logging
 * in filestore_log.c, and below them all, what is on disk (locks,
 * meta.yaml and value files, folders) in filestore_disk.c.
 *
 * DESIGN
 * Who runs where: every call runs on the caller's thread; there is no
 *   background thread and no state in memory beyond the root path, so any
 *   number of threads and processes may share one mlruns/ folder.
 * What flows: files only. Whole files (meta.yaml, params, tags) are written
 *   to a temp file beside them and renamed; metric lines are appended with
 *   one write(2). Changes that read-then-write hold flock(2) on a folder:
 *   the run folder for run changes (param immutability across processes),
 *   the root for experiment changes (unique names) and, shared, for run
 *   creation (the experiment cannot move to .trash meanwhile). See
 *   tracking/filestore_int.h.
 * On failure: a write that fails leaves the last complete version of every
 *   file (rename) or no partial metric line (ftruncate back); a run or
 *   experiment that fails half-made is removed, and meta.yaml is written
 *   last so readers never see one. A batch that fails on I/O after passing
 *   validation may be partly applied (as MLflow's); each write is whole.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/filestore_int.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/yaml_meta.h"

/* Creates .trash and, in a root without experiments, the Default experiment. */
static int
init_root(mpb__filestore *fs, char *err, size_t err_len)
{
    int lock = -1;
    int rc = mpb__filestore_lock_root(fs, 0, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    char **names = NULL;
    size_t n = 0;
    rc = mpb__fs_list(fs->root, 0, &names, &n);
    int empty = 1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        empty = empty && strcmp(names[i], ".trash") == 0;
    }
    mpb__fs_names_free(names, n);
    if (rc == 0) {
        rc = mpb__fs_mkdir_p(fs->trash);
    }
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot prepare %s: %s", fs->root, mpb_strerror(rc));
    } else if (empty) {
        rc = mpb__filestore_make_experiment(fs, MPB_DEFAULT_EXPERIMENT_ID, "Default", NULL, NULL, 0,
                                            err, err_len);
    }
    mpb__fs_unlock(lock);
    return rc;
}

static void
filestore_close(void *backend)
{
    mpb__filestore *fs = backend;
    if (fs != NULL) {
        free(fs->root);
        free(fs->trash);
        free(fs);
    }
}

static int
filestore_open(const char *uri, const mpb_store_open_opts *opts, void **out_backend, char **out_uri,
               char *err, size_t err_len)
{
    (void)opts; /* nothing to tune: no timeouts, no credentials */
    char *path = strncmp(uri, "file:", 5) == 0 ? mpb__file_uri_to_path(uri) : mpb_strdup(uri);
    if (path == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "tracking URI '%s' names no local folder (use file:PATH, "
                              "file:///abs/path or a plain path)",
                              uri);
    }
    int rc = mpb__fs_mkdir_p(path);
    char resolved[PATH_MAX];
    if (rc == 0 && realpath(path, resolved) == NULL) {
        rc = -errno;
    }
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot open store folder '%s': %s", path,
                            mpb_strerror(rc));
        free(path);
        return rc;
    }
    free(path);
    mpb__filestore *fs = mpb_calloc(1, sizeof *fs);
    fs->root = mpb_strdup(resolved);
    fs->trash = mpb__path_join(resolved, ".trash");
    rc = init_root(fs, err, err_len);
    if (rc < 0) {
        filestore_close(fs);
        return rc;
    }
    *out_backend = fs;
    *out_uri = mpb__path_to_file_uri(fs->root);
    return 0;
}

/* The artifact URI of a run, read from its meta.yaml. Caller frees. */
static int
run_artifact_uri(void *backend, const char *run_id, char **out, char *err, size_t err_len)
{
    char *dir = mpb__filestore_run_dir(backend, run_id);
    if (dir == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
    }
    mpb_run_info info;
    int rc = mpb__filestore_read_run_info(dir, &info, err, err_len);
    free(dir);
    if (rc == 0) {
        *out = info.artifact_uri;
        info.artifact_uri = NULL;
        mpb__run_info_clear(&info);
    }
    return rc;
}

static const mpb__store_ops filestore_ops = {
    .name = "file",
    .open = filestore_open,
    .close = filestore_close,
    .create_experiment = mpb__filestore_create_experiment,
    .get_experiment = mpb__filestore_get_experiment,
    .get_experiment_by_name = mpb__filestore_get_experiment_by_name,
    .search_experiments = mpb__filestore_search_experiments,
    .delete_experiment = mpb__filestore_delete_experiment,
    .restore_experiment = mpb__filestore_restore_experiment,
    .set_experiment_tag = mpb__filestore_set_experiment_tag,
    .create_run = mpb__filestore_create_run,
    .update_run = mpb__filestore_update_run,
    .get_run = mpb__filestore_get_run,
    .search_runs = mpb__filestore_search_runs,
    .delete_run = mpb__filestore_delete_run,
    .restore_run = mpb__filestore_restore_run,
    .log_batch = mpb__filestore_log_batch,
    .delete_tag = mpb__filestore_delete_tag,
    .get_metric_history = mpb__filestore_get_metric_history,
    .run_artifact_uri = run_artifact_uri,
    .purge_run = mpb__filestore_purge_run,
    .purge_experiment = mpb__filestore_purge_experiment,
    .create_registered_model = mpb__filestore_create_registered_model,
    .get_registered_model = mpb__filestore_get_registered_model,
    .list_registered_models = mpb__filestore_list_registered_models,
    .delete_registered_model = mpb__filestore_delete_registered_model,
    .create_model_version = mpb__filestore_create_model_version,
    .get_model_version = mpb__filestore_get_model_version,
    .list_model_versions = mpb__filestore_list_model_versions,
    .set_model_alias = mpb__filestore_set_model_alias,
    .delete_model_alias = mpb__filestore_delete_model_alias,
    .get_model_version_by_alias = mpb__filestore_get_model_version_by_alias,
};

const mpb__store_ops *
mpb__filestore_backend(void)
{
    return &filestore_ops;
}
