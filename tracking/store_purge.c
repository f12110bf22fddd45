/*
 * Permanent deletion (`mpb runs gc`, MLflow's `mlflow gc`): the public-side
 * wrappers of the purge slots, and the local artifact folders a purge
 * removes. A backend without the slots (REST) answers MPB_ENOTSUP.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

int
mpb__store_purge_run(mpb_store *self, const char *run_id, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && run_id != NULL);
    if (self->ops->purge_run == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP,
                              "the %s store cannot delete runs permanently", self->ops->name);
    }
    return self->ops->purge_run(self->backend, run_id, err, err_len);
}

int
mpb__store_purge_experiment(mpb_store *self, const char *experiment_id, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && experiment_id != NULL);
    if (self->ops->purge_experiment == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP,
                              "the %s store cannot delete experiments permanently",
                              self->ops->name);
    }
    if (strcmp(experiment_id, MPB_DEFAULT_EXPERIMENT_ID) == 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "The default experiment cannot be deleted permanently");
    }
    return self->ops->purge_experiment(self->backend, experiment_id, err, err_len);
}

int
mpb__local_artifacts_remove(const char *artifact_uri)
{
    if (artifact_uri == NULL || *artifact_uri == '\0') {
        return 0;
    }
    char *path = artifact_uri[0] == '/' ? mpb_strdup(artifact_uri)
                                        : mpb__file_uri_to_path(artifact_uri);
    if (path == NULL) {
        return 0; /* not local: left to its own store */
    }
    int rc = mpb__fs_rm_rf(path);
    free(path);
    return rc;
}
