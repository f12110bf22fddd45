/* File store: runs (create, read, update, delete, restore, search). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "tracking/filestore_int.h"
#include "tracking/fs_util.h"
#include "tracking/search.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/yaml_meta.h"

/* Folder names inside an experiment that are never runs. */
static int
is_reserved_experiment_entry(const char *name)
{
    return name[0] == '.' || strcmp(name, "tags") == 0 || strcmp(name, "datasets") == 0 ||
           strcmp(name, "traces") == 0 || strcmp(name, "models") == 0;
}

static int
has_required_folders(const char *run_dir)
{
    static const char *const required[] = {"metrics", "params", "artifacts"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(required); i++) {
        char *sub = mpb__path_join(run_dir, required[i]);
        int ok = mpb__fs_is_dir(sub);
        free(sub);
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

int
mpb__filestore_read_run(const char *run_dir, mpb_run *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (!has_required_folders(run_dir)) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND,
                              "Run '%s' not found: its folder lacks metrics/, params/ or "
                              "artifacts/",
                              mpb__filestore_base_name(run_dir));
    }
    int rc = mpb__filestore_read_run_info(run_dir, &out->info, err, err_len);
    if (rc < 0) {
        return rc;
    }
    rc = mpb__filestore_read_values(run_dir, "params", (mpb_tag **)&out->params, &out->n_params);
    if (rc == 0) {
        rc = mpb__filestore_read_values(run_dir, "tags", &out->tags, &out->n_tags);
    }
    if (rc == 0) {
        rc = mpb__filestore_read_latest_metrics(run_dir, &out->metrics, &out->n_metrics, err,
                                                err_len);
    } else {
        rc = mpb__set_error(err, err_len, rc, "cannot read run %s: %s", run_dir, mpb_strerror(rc));
    }
    if (rc < 0) {
        mpb__run_clear(out);
        return rc;
    }
    if (out->info.run_name[0] == '\0') {
        const char *name = mpb__tag_find(out->tags, out->n_tags, MPB_TAG_RUN_NAME);
        if (name != NULL) {
            free(out->info.run_name);
            out->info.run_name = mpb_strdup(name);
        }
    }
    return 0;
}

int
mpb__filestore_create_run(void *backend, const char *experiment_id, const char *user_id,
                          int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                          size_t n_tags, char **out_run_id, char *err, size_t err_len)
{
    mpb__filestore *fs = backend;
    int lock = -1;
    int rc = mpb__filestore_lock_root(fs, 1, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    int deleted = 0;
    char *exp_dir = mpb__filestore_experiment_dir(fs, experiment_id, &deleted);
    mpb_experiment experiment = {0};
    char *run_dir = NULL;
    if (exp_dir == NULL || deleted) {
        rc = mpb__set_error(err, err_len, exp_dir ? MPB_EINVAL : MPB_ENOTFOUND,
                            exp_dir ? "Could not create run under non-active experiment with "
                                      "ID %s."
                                    : "Could not find experiment with ID %s",
                            experiment_id);
        goto out_unlock;
    }
    rc = mpb__filestore_read_experiment(exp_dir, 0, &experiment, err, err_len);
    char run_id[33];
    while (rc == 0) {
        rc = mpb__uuid4_hex(run_id);
        free(run_dir);
        run_dir = mpb__path_join(exp_dir, run_id);
        rc = rc < 0 ? rc : mpb__fs_mkdir(run_dir);
        if (rc != MPB_EEXIST) {
            break;
        }
        rc = 0;
    }
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot create a run folder in %s: %s", exp_dir,
                            mpb_strerror(rc));
        goto out_unlock;
    }
    static const char *const subdirs[] = {"metrics", "params", "artifacts", "tags"};
    for (size_t i = 0; rc == 0 && i < MPB_ARRAY_LEN(subdirs); i++) {
        char *sub = mpb__path_join(run_dir, subdirs[i]);
        rc = mpb__fs_mkdir(sub);
        free(sub);
    }
    for (size_t i = 0; rc == 0 && i < n_tags; i++) {
        rc = mpb__filestore_write_value(run_dir, "tags", tags[i].key, tags[i].value);
    }
    char *artifact_uri = mpb_asprintf("%s/%s/artifacts", experiment.artifact_location, run_id);
    mpb_run_info info = {
        .run_id = run_id,
        .experiment_id = (char *)experiment_id,
        .run_name = (char *)run_name,
        .user_id = (char *)user_id,
        .status = MPB_RUN_RUNNING,
        .start_time = start_time_ms,
        .end_time = -1,
        .artifact_uri = artifact_uri,
        .lifecycle_stage = "active",
        .deleted_time = -1,
    };
    if (rc == 0) {
        rc = mpb__filestore_write_run_meta(run_dir, &info, 1);
    }
    free(artifact_uri);
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot create run in %s: %s", exp_dir,
                            mpb_strerror(rc));
        (void)mpb__fs_rm_rf(run_dir);
    } else if (out_run_id != NULL) {
        *out_run_id = mpb_strdup(run_id);
    }
out_unlock:
    mpb__experiment_clear(&experiment);
    free(run_dir);
    free(exp_dir);
    mpb__fs_unlock(lock);
    return rc;
}

int
mpb__filestore_update_run(void *backend, const char *run_id, mpb_run_status status,
                          int64_t end_time_ms, const char *run_name, char *err, size_t err_len)
{
    mpb__filestore_locked_run run;
    int rc = mpb__filestore_lock_run(backend, run_id, 1, &run, err, err_len);
    if (rc < 0) {
        return rc;
    }
    run.info.status = status;
    if (end_time_ms >= 0) {
        run.info.end_time = end_time_ms;
    }
    run.info.deleted_time = -1;
    if (run_name != NULL) {
        free(run.info.run_name);
        run.info.run_name = mpb_strdup(run_name);
        rc = mpb__filestore_write_value(run.dir, "tags", MPB_TAG_RUN_NAME, run_name);
    }
    if (rc == 0) {
        rc = mpb__filestore_write_run_meta(run.dir, &run.info, 0);
    }
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot update run %s: %s", run_id, mpb_strerror(rc));
    }
    mpb__filestore_unlock_run(&run);
    return rc;
}

int
mpb__filestore_get_run(void *backend, const char *run_id, mpb_run **out, char *err, size_t err_len)
{
    mpb_run *run = mpb_calloc(1, sizeof *run);
    int rc = MPB_ENOTFOUND;
    /* A second look: the experiment may have just moved to or from .trash. */
    for (int attempt = 0; attempt < 3 && rc == MPB_ENOTFOUND; attempt++) {
        char *dir = mpb__filestore_run_dir(backend, run_id);
        if (dir == NULL) {
            rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
            continue;
        }
        rc = mpb__filestore_read_run(dir, run, err, err_len);
        free(dir);
    }
    if (rc < 0) {
        free(run);
        return rc;
    }
    *out = run;
    return 0;
}

int
mpb__filestore_set_run_lifecycle(const char *run_dir, int delete, int64_t when,
                                 int64_t restore_since)
{
    int lock = -1;
    int rc = mpb__fs_lock(run_dir, 0, &lock);
    if (rc < 0) {
        return rc;
    }
    mpb_run_info info;
    rc = mpb__filestore_read_run_info(run_dir, &info, NULL, 0);
    if (rc < 0) {
        mpb__fs_unlock(lock);
        return rc;
    }
    int active = strcmp(info.lifecycle_stage, "active") == 0;
    int change = delete ? active : !active && info.deleted_time >= restore_since;
    if (change) {
        free(info.lifecycle_stage);
        info.lifecycle_stage = mpb_strdup(delete ? "deleted" : "active");
        info.deleted_time = delete ? when : -1;
        rc = mpb__filestore_write_run_meta(run_dir, &info, 0);
    }
    mpb__run_info_clear(&info);
    mpb__fs_unlock(lock);
    return rc;
}

static int
change_lifecycle(mpb__filestore *fs, const char *run_id, int delete, char *err, size_t err_len)
{
    char *dir = mpb__filestore_run_dir(fs, run_id);
    if (dir == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
    }
    int rc = mpb__filestore_set_run_lifecycle(dir, delete, delete ? mpb_wall_ms() : -1, INT64_MIN);
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot %s run %s: %s", delete ? "delete" : "restore",
                            run_id, mpb_strerror(rc));
    }
    free(dir);
    return rc;
}

int
mpb__filestore_delete_run(void *backend, const char *run_id, char *err, size_t err_len)
{
    return change_lifecycle(backend, run_id, 1, err, err_len);
}

int
mpb__filestore_restore_run(void *backend, const char *run_id, char *err, size_t err_len)
{
    return change_lifecycle(backend, run_id, 0, err, err_len);
}

/* Appends every readable run of one experiment folder to *runs. */
static int
read_experiment_runs(const char *exp_dir, mpb_run **runs, size_t *n, size_t *cap)
{
    char **names = NULL;
    size_t n_names = 0;
    int rc = mpb__fs_list(exp_dir, 1, &names, &n_names);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < n_names; i++) {
        if (is_reserved_experiment_entry(names[i])) {
            continue;
        }
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *runs = mpb_realloc(*runs, *cap * sizeof **runs);
        }
        char *run_dir = mpb__path_join(exp_dir, names[i]);
        char why[256] = "";
        if (mpb__filestore_read_run(run_dir, &(*runs)[*n], why, sizeof why) == 0) {
            (*n)++;
        } else {
            mpb_log_debug("filestore", "skipping run folder %s: %s", run_dir, why);
        }
        free(run_dir);
    }
    mpb__fs_names_free(names, n_names);
    return 0;
}

int
mpb__filestore_search_runs(void *backend, const char *const *experiment_ids,
                           size_t n_experiment_ids, const mpb_search_opts *opts, mpb_run_page **out,
                           char *err, size_t err_len)
{
    mpb__filestore *fs = backend;
    mpb_run *runs = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t offset = 0;
    int rc = mpb__page_token_decode(opts ? opts->page_token : NULL, &offset, err, err_len);
    for (size_t i = 0; rc == 0 && i < n_experiment_ids; i++) {
        char *exp_dir = mpb__filestore_experiment_dir(fs, experiment_ids[i], NULL);
        if (exp_dir == NULL) {
            rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Could not find experiment with ID %s",
                                experiment_ids[i]);
            break;
        }
        rc = read_experiment_runs(exp_dir, &runs, &n, &cap);
        if (rc < 0) {
            rc = mpb__set_error(err, err_len, rc, "cannot list runs of %s: %s", exp_dir,
                                mpb_strerror(rc));
        }
        free(exp_dir);
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            mpb__run_clear(&runs[i]);
        }
        free(runs);
        return rc;
    }
    size_t next = 0;
    rc = mpb__search_runs_in_memory(runs ? runs : mpb_calloc(1, sizeof *runs), n, opts, offset, out,
                                    &next, err, err_len);
    if (rc == 0 && next > 0) {
        (*out)->next_page_token = mpb__page_token_encode(next);
    }
    return rc;
}
