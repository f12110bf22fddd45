/* The file store's permanent deletion: run and experiment folders removed
 * whole, under the root's exclusive lock, with their local artifacts. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/filestore_int.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"

int
mpb__filestore_purge_run(void *backend, const char *run_id, char *err, size_t err_len)
{
    mpb__filestore *fs = backend;
    int lock = -1;
    int rc = mpb__filestore_lock_root(fs, 0, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    mpb_run_info info = {0};
    char *dir = mpb__filestore_run_dir(fs, run_id);
    if (dir == NULL) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
    } else {
        rc = mpb__filestore_read_run_info(dir, &info, err, err_len);
    }
    if (rc == 0 && strcmp(info.lifecycle_stage, "deleted") != 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "Run %s is not in the deleted lifecycle stage; only deleted runs "
                            "can be deleted permanently",
                            run_id);
    }
    if (rc == 0) {
        rc = mpb__local_artifacts_remove(info.artifact_uri);
    }
    if (rc == 0) {
        rc = mpb__fs_rm_rf(dir);
    }
    if (rc < 0 && err != NULL && err[0] == '\0') {
        rc = mpb__set_error(err, err_len, rc, "cannot remove run %s: %s", run_id, mpb_strerror(rc));
    }
    mpb__run_info_clear(&info);
    free(dir);
    mpb__fs_unlock(lock);
    return rc;
}

int
mpb__filestore_purge_experiment(void *backend, const char *experiment_id, char *err, size_t err_len)
{
    mpb__filestore *fs = backend;
    int lock = -1;
    int rc = mpb__filestore_lock_root(fs, 0, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    int deleted = 0;
    mpb_experiment experiment = {0};
    char *dir = mpb__filestore_experiment_dir(fs, experiment_id, &deleted);
    if (dir == NULL) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "No Experiment with id=%s exists",
                            experiment_id);
    } else if (!deleted) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "Experiment %s is not in the deleted lifecycle stage; only deleted "
                            "experiments can be deleted permanently",
                            experiment_id);
    } else {
        rc = mpb__filestore_read_experiment(dir, 1, &experiment, err, err_len);
    }
    /* Runs keep their artifacts under the experiment's location by default;
     * a run pointing elsewhere is removed with its own folder below. */
    char **runs = NULL;
    size_t n_runs = 0;
    if (rc == 0) {
        rc = mpb__fs_list(dir, 1, &runs, &n_runs);
    }
    for (size_t i = 0; rc == 0 && i < n_runs; i++) {
        char *run_dir = mpb__path_join(dir, runs[i]);
        mpb_run_info info = {0};
        if (mpb__filestore_has_meta(run_dir) &&
            mpb__filestore_read_run_info(run_dir, &info, NULL, 0) == 0) {
            rc = mpb__local_artifacts_remove(info.artifact_uri);
        }
        mpb__run_info_clear(&info);
        free(run_dir);
    }
    mpb__fs_names_free(runs, n_runs);
    /* the experiment's artifact location itself stays, as with mlflow gc:
     * it may be a folder shared with others; its runs' artifacts are gone */
    if (rc == 0) {
        rc = mpb__fs_rm_rf(dir);
    }
    if (rc < 0 && err != NULL && err[0] == '\0') {
        rc = mpb__set_error(err, err_len, rc, "cannot remove experiment %s: %s", experiment_id,
                            mpb_strerror(rc));
    }
    mpb__experiment_clear(&experiment);
    free(dir);
    mpb__fs_unlock(lock);
    return rc;
}
