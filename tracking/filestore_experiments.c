/*
 * File store: experiments. Folders <root>/<id> (active) and <root>/.trash/<id>
 * (deleted), each with meta.yaml and tags/; names are unique across both,
 * under the root lock. Deleting moves the folder to .trash and marks its runs
 * deleted; restoring brings back the runs deleted with it.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "tracking/filestore_int.h"
#include "tracking/fs_util.h"
#include "tracking/search.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/yaml_meta.h"

/* Finds an experiment by name among all folders; MPB_ENOTFOUND if none. */
static int
find_experiment_by_name(const mpb__filestore *fs, const char *name, mpb_experiment *out)
{
    char **dirs = NULL;
    size_t n = 0;
    int rc = mpb__filestore_experiment_dirs(fs, &dirs, &n);
    if (rc < 0) {
        return rc;
    }
    rc = MPB_ENOTFOUND;
    for (size_t i = 0; i < n && rc == MPB_ENOTFOUND; i++) {
        mpb_experiment experiment;
        int deleted = strncmp(dirs[i], fs->trash, strlen(fs->trash)) == 0;
        if (mpb__filestore_read_experiment(dirs[i], deleted, &experiment, NULL, 0) < 0) {
            continue;
        }
        if (strcmp(experiment.name, name) == 0) {
            *out = experiment;
            rc = 0;
        } else {
            mpb__experiment_clear(&experiment);
        }
    }
    mpb__fs_names_free(dirs, n);
    return rc;
}

int
mpb__filestore_make_experiment(mpb__filestore *fs, const char *id, const char *name,
                               const char *artifact_location, const mpb_tag *tags, size_t n_tags,
                               char *err, size_t err_len)
{
    char *dir = mpb__path_join(fs->root, id);
    int rc = mpb__fs_mkdir(dir);
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot create %s: %s", dir, mpb_strerror(rc));
        goto out_free_dir;
    }
    for (size_t i = 0; rc == 0 && i < n_tags; i++) {
        rc = mpb__filestore_write_value(dir, "tags", tags[i].key, tags[i].value);
    }
    int64_t now = mpb_wall_ms();
    char *default_location = NULL;
    if (artifact_location == NULL) {
        default_location = mpb__path_to_file_uri(dir);
    }
    mpb_experiment experiment = {
        .experiment_id = (char *)id,
        .name = (char *)name,
        .artifact_location = (char *)(artifact_location ? artifact_location : default_location),
        .lifecycle_stage = "active",
        .creation_time = now,
        .last_update_time = now,
    };
    if (rc == 0) {
        rc = mpb__filestore_write_experiment_meta(dir, &experiment);
    }
    free(default_location);
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot write experiment %s: %s", dir,
                            mpb_strerror(rc));
        (void)mpb__fs_rm_rf(dir);
    }
out_free_dir:
    free(dir);
    return rc;
}

int
mpb__filestore_create_experiment(void *backend, const char *name, const char *artifact_location,
                                 const mpb_tag *tags, size_t n_tags, char **out_experiment_id,
                                 char *err, size_t err_len)
{
    mpb__filestore *fs = backend;
    int lock = -1;
    int rc = mpb__filestore_lock_root(fs, 0, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    mpb_experiment existing;
    rc = find_experiment_by_name(fs, name, &existing);
    if (rc == 0) {
        int deleted = strcmp(existing.lifecycle_stage, "deleted") == 0;
        rc = mpb__set_error(err, err_len, MPB_EEXIST,
                            deleted ? "Experiment '%s' already exists in deleted state. You can "
                                      "restore the experiment, or permanently delete it from "
                                      "the .trash folder under the tracking root."
                                    : "Experiment '%s' already exists.",
                            name);
        mpb__experiment_clear(&existing);
        goto out_unlock;
    }
    if (rc != MPB_ENOTFOUND) {
        rc = mpb__set_error(err, err_len, rc, "cannot list experiments in %s: %s", fs->root,
                            mpb_strerror(rc));
        goto out_unlock;
    }
    char id[19];
    char *taken = NULL;
    do {
        free(taken);
        rc = mpb__experiment_id_new(id);
        if (rc < 0) {
            goto out_unlock;
        }
        taken = mpb__filestore_experiment_dir(fs, id, NULL);
    } while (taken != NULL);
    rc =
        mpb__filestore_make_experiment(fs, id, name, artifact_location, tags, n_tags, err, err_len);
    if (rc == 0 && out_experiment_id != NULL) {
        *out_experiment_id = mpb_strdup(id);
    }
out_unlock:
    mpb__fs_unlock(lock);
    return rc;
}

int
mpb__filestore_get_experiment(void *backend, const char *experiment_id, mpb_experiment **out,
                              char *err, size_t err_len)
{
    mpb__filestore *fs = backend;
    int deleted = 0;
    char *dir = mpb__filestore_experiment_dir(fs, experiment_id, &deleted);
    if (dir == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Could not find experiment with ID %s",
                              experiment_id);
    }
    mpb_experiment *experiment = mpb_calloc(1, sizeof *experiment);
    int rc = mpb__filestore_read_experiment(dir, deleted, experiment, err, err_len);
    free(dir);
    if (rc < 0) {
        free(experiment);
        return rc;
    }
    *out = experiment;
    return 0;
}

int
mpb__filestore_get_experiment_by_name(void *backend, const char *name, mpb_experiment **out,
                                      char *err, size_t err_len)
{
    mpb_experiment experiment;
    int rc = find_experiment_by_name(backend, name, &experiment);
    if (rc == MPB_ENOTFOUND) {
        return mpb__set_error(err, err_len, rc, "Could not find experiment with name '%s'", name);
    }
    if (rc < 0) {
        return mpb__set_error(err, err_len, rc, "cannot list experiments: %s", mpb_strerror(rc));
    }
    *out = mpb_malloc(sizeof **out);
    **out = experiment;
    return 0;
}

int
mpb__filestore_search_experiments(void *backend, const mpb_search_opts *opts,
                                  mpb_experiment_page **out, char *err, size_t err_len)
{
    mpb__filestore *fs = backend;
    size_t offset = 0;
    int rc = mpb__page_token_decode(opts ? opts->page_token : NULL, &offset, err, err_len);
    if (rc < 0) {
        return rc;
    }
    char **dirs = NULL;
    size_t n = 0;
    rc = mpb__filestore_experiment_dirs(fs, &dirs, &n);
    if (rc < 0) {
        return mpb__set_error(err, err_len, rc, "cannot list %s: %s", fs->root, mpb_strerror(rc));
    }
    mpb_experiment *experiments = mpb_calloc(n ? n : 1, sizeof *experiments);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int deleted = strncmp(dirs[i], fs->trash, strlen(fs->trash)) == 0;
        char why[256];
        if (mpb__filestore_read_experiment(dirs[i], deleted, &experiments[kept], why, sizeof why) ==
            0) {
            kept++;
        } else {
            mpb_log_debug("filestore", "skipping experiment folder %s: %s", dirs[i], why);
        }
    }
    mpb__fs_names_free(dirs, n);
    size_t next = 0;
    rc = mpb__search_experiments_in_memory(experiments, kept, opts, offset, out, &next, err,
                                           err_len);
    if (rc == 0 && next > 0) {
        (*out)->next_page_token = mpb__page_token_encode(next);
    }
    return rc;
}

/* Experiment meta rewritten with a new lifecycle and last_update_time. */
static int
rewrite_experiment_meta(const char *dir, int deleted, const char *stage, int64_t when)
{
    mpb_experiment experiment;
    int rc = mpb__filestore_read_experiment(dir, deleted, &experiment, NULL, 0);
    if (rc < 0) {
        return rc;
    }
    free(experiment.lifecycle_stage);
    experiment.lifecycle_stage = mpb_strdup(stage);
    experiment.last_update_time = when;
    rc = mpb__filestore_write_experiment_meta(dir, &experiment);
    mpb__experiment_clear(&experiment);
    return rc;
}

/* Deletes (delete = 1, when = deletion time) or restores (runs deleted at or
 * after `when`) every run folder of an experiment. */
static int
set_runs_lifecycle(const char *dir, int delete, int64_t when)
{
    char **names = NULL;
    size_t n = 0;
    int rc = mpb__fs_list(dir, 1, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *run_dir = mpb__path_join(dir, names[i]);
        if (mpb__filestore_has_meta(run_dir)) {
            rc = mpb__filestore_set_run_lifecycle(run_dir, delete, delete ? when : -1, when);
        }
        free(run_dir);
    }
    mpb__fs_names_free(names, n);
    return rc;
}

int
mpb__filestore_delete_experiment(void *backend, const char *experiment_id, char *err,
                                 size_t err_len)
{
    mpb__filestore *fs = backend;
    if (strcmp(experiment_id, MPB_DEFAULT_EXPERIMENT_ID) == 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Cannot delete the default experiment '0'. This is an internally "
                              "reserved experiment.");
    }
    int lock = -1;
    int rc = mpb__filestore_lock_root(fs, 0, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    int deleted = 0;
    char *dir = mpb__filestore_experiment_dir(fs, experiment_id, &deleted);
    char *trash_dir = mpb__path_join(fs->trash, experiment_id);
    if (dir == NULL || deleted) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND,
                            dir ? "Experiment %s is already deleted"
                                : "Could not find experiment with ID %s",
                            experiment_id);
        goto out_unlock;
    }
    int64_t now = mpb_wall_ms();
    rc = set_runs_lifecycle(dir, 1, now);
    if (rc == 0) {
        rc = rewrite_experiment_meta(dir, 0, "deleted", now);
    }
    if (rc == 0) {
        rc = mpb__fs_mkdir_p(fs->trash);
    }
    if (rc == 0 && access(trash_dir, F_OK) == 0) {
        rc = MPB_EEXIST;
    }
    if (rc == 0) {
        rc = mpb__fs_rename(dir, trash_dir);
    }
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot move experiment %s to %s: %s", experiment_id,
                            trash_dir, mpb_strerror(rc));
    }
out_unlock:
    free(trash_dir);
    free(dir);
    mpb__fs_unlock(lock);
    return rc;
}

int
mpb__filestore_restore_experiment(void *backend, const char *experiment_id, char *err,
                                  size_t err_len)
{
    mpb__filestore *fs = backend;
    int lock = -1;
    int rc = mpb__filestore_lock_root(fs, 0, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    int deleted = 0;
    char *dir = mpb__filestore_experiment_dir(fs, experiment_id, &deleted);
    char *active_dir = mpb__path_join(fs->root, experiment_id);
    mpb_experiment experiment = {0};
    if (dir == NULL || !deleted) {
        rc = mpb__set_error(err, err_len, dir ? MPB_EINVAL : MPB_ENOTFOUND,
                            dir ? "Cannot restore experiment %s: it is active"
                                : "Could not find experiment with ID %s",
                            experiment_id);
        goto out_unlock;
    }
    rc = mpb__filestore_read_experiment(dir, 1, &experiment, err, err_len);
    if (rc < 0) {
        goto out_unlock;
    }
    if (access(active_dir, F_OK) == 0) {
        rc = mpb__set_error(err, err_len, MPB_EEXIST,
                            "Cannot restore experiment with ID %s. An experiment with same ID "
                            "already exists.",
                            experiment_id);
        goto out_unlock;
    }
    int64_t deleted_at = experiment.last_update_time;
    rc = mpb__fs_rename(dir, active_dir);
    if (rc == 0) {
        rc = rewrite_experiment_meta(active_dir, 0, "active", mpb_wall_ms());
    }
    if (rc == 0) {
        rc = set_runs_lifecycle(active_dir, 0, deleted_at < 0 ? 0 : deleted_at);
    }
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot restore experiment %s: %s", experiment_id,
                            mpb_strerror(rc));
    }
out_unlock:
    mpb__experiment_clear(&experiment);
    free(active_dir);
    free(dir);
    mpb__fs_unlock(lock);
    return rc;
}

int
mpb__filestore_set_experiment_tag(void *backend, const char *experiment_id, const char *key,
                                  const char *value, char *err, size_t err_len)
{
    mpb__filestore *fs = backend;
    int deleted = 0;
    char *dir = mpb__filestore_experiment_dir(fs, experiment_id, &deleted);
    if (dir == NULL || deleted) {
        free(dir);
        return mpb__set_error(err, err_len, dir ? MPB_EINVAL : MPB_ENOTFOUND,
                              deleted ? "The experiment %s must be in the 'active' state. "
                                        "Current state is deleted."
                                      : "Could not find experiment with ID %s",
                              experiment_id);
    }
    char *tags_dir = mpb__path_join(dir, "tags");
    int rc = 0;
    if (mpb__filestore_key_conflict(tags_dir, key)) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "Tag '%s' clashes with a tag stored as a folder or file prefix", key);
    } else {
        rc = mpb__filestore_write_value(dir, "tags", key, value);
        if (rc < 0) {
            rc = mpb__set_error(err, err_len, rc, "cannot write tag '%s' of experiment %s: %s", key,
                                experiment_id, mpb_strerror(rc));
        }
    }
    free(tags_dir);
    free(dir);
    return rc;
}
