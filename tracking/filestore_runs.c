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

#define SOURCE_TYPE_LOCAL 4

/* Folder names inside an experiment that are never runs. */
static int
is_reserved_experiment_entry(const char *name)
{
    return name[0] == '.' || strcmp(name, "tags") == 0 || strcmp(name, "datasets") == 0 ||
           strcmp(name, "traces") == 0 || strcmp(name, "models") == 0;
}

static const char *
base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

char *
mpb__filestore_run_dir(const mpb__filestore *fs, const char *run_id)
{
    char **dirs = NULL;
    size_t n = 0;
    if (mpb__filestore_experiment_dirs(fs, &dirs, &n) < 0) {
        return NULL;
    }
    char *found = NULL;
    for (size_t i = 0; i < n && found == NULL; i++) {
        char *run_dir = mpb__path_join(dirs[i], run_id);
        if (mpb__filestore_has_meta(run_dir)) {
            found = run_dir;
        } else {
            free(run_dir);
        }
    }
    mpb__fs_names_free(dirs, n);
    return found;
}

static int
read_status(const mpb__yaml_map *meta, mpb_run_status *out)
{
    int64_t number = 0;
    int rc = mpb__yaml_map_int(meta, "status", &number);
    if (rc == 0 && number >= MPB_RUN_RUNNING && number <= MPB_RUN_KILLED) {
        *out = (mpb_run_status)number;
        return 0;
    }
    /* Be lenient with a status written as its name. */
    return mpb_run_status_parse(mpb__yaml_map_string(meta, "status"), out);
}

int
mpb__filestore_read_run_info(const char *run_dir, mpb_run_info *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    char *meta_path = mpb__path_join(run_dir, "meta.yaml");
    mpb__yaml_map meta;
    int rc = mpb__filestore_read_meta(meta_path, &meta, err, err_len);
    if (rc < 0) {
        free(meta_path);
        return rc;
    }
    const char *run_id = mpb__yaml_map_string(&meta, "run_id");
    run_id = run_id ? run_id : mpb__yaml_map_string(&meta, "run_uuid");
    const char *experiment_id = mpb__yaml_map_string(&meta, "experiment_id");
    char *parent = mpb_strdup(run_dir);
    *strrchr(parent, '/') = '\0';
    mpb_run_status status = MPB_RUN_RUNNING;
    if (run_id == NULL || strcmp(run_id, base_name(run_dir)) != 0 || experiment_id == NULL ||
        strcmp(experiment_id, base_name(parent)) != 0 || read_status(&meta, &status) < 0) {
        rc = mpb__set_error(err, err_len, MPB_ESTORE,
                            "%s is malformed: run_id and experiment_id must match the folders, "
                            "status must be 1..5",
                            meta_path);
        goto out_clear;
    }
    const char *user = mpb__yaml_map_string(&meta, "user_id");
    const char *name = mpb__yaml_map_string(&meta, "run_name");
    const char *uri = mpb__yaml_map_string(&meta, "artifact_uri");
    const char *stage = mpb__yaml_map_string(&meta, "lifecycle_stage");
    out->run_id = mpb_strdup(run_id);
    out->experiment_id = mpb_strdup(experiment_id);
    out->user_id = mpb_strdup(user ? user : "");
    out->run_name = mpb_strdup(name ? name : "");
    out->artifact_uri = mpb_strdup(uri ? uri : "");
    out->lifecycle_stage = mpb_strdup(stage ? stage : "active");
    out->status = status;
    out->start_time = -1;
    out->end_time = -1;
    out->deleted_time = -1;
    (void)mpb__yaml_map_int(&meta, "start_time", &out->start_time);
    (void)mpb__yaml_map_int(&meta, "end_time", &out->end_time);
    (void)mpb__yaml_map_int(&meta, "deleted_time", &out->deleted_time);
out_clear:
    free(parent);
    mpb__yaml_map_clear(&meta);
    free(meta_path);
    return rc;
}

int
mpb__filestore_write_run_meta(const char *run_dir, const mpb_run_info *info, int creating)
{
    mpb__strbuf buf = {0};
    mpb__yaml_put_string(&buf, "artifact_uri", info->artifact_uri);
    if (info->deleted_time >= 0 || creating) {
        mpb__yaml_put_time(&buf, "deleted_time", info->deleted_time);
    }
    mpb__yaml_put_time(&buf, "end_time", info->end_time);
    mpb__yaml_put_string(&buf, "entry_point_name", "");
    mpb__yaml_put_string(&buf, "experiment_id", info->experiment_id);
    mpb__yaml_put_string(&buf, "lifecycle_stage", info->lifecycle_stage);
    mpb__yaml_put_string(&buf, "run_id", info->run_id);
    mpb__yaml_put_string(&buf, "run_name", info->run_name);
    mpb__yaml_put_string(&buf, "run_uuid", info->run_id);
    mpb__yaml_put_string(&buf, "source_name", "");
    mpb__yaml_put_int(&buf, "source_type", SOURCE_TYPE_LOCAL);
    mpb__yaml_put_string(&buf, "source_version", "");
    mpb__yaml_put_time(&buf, "start_time", info->start_time);
    mpb__yaml_put_int(&buf, "status", info->status);
    mpb__yaml_put_raw(&buf, "tags", "[]");
    mpb__yaml_put_string(&buf, "user_id", info->user_id);
    return mpb__filestore_write_meta(run_dir, &buf);
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
                              base_name(run_dir));
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

void
mpb__filestore_unlock_run(mpb__filestore_locked_run *run)
{
    mpb__run_info_clear(&run->info);
    mpb__fs_unlock(run->lock);
    free(run->dir);
    run->dir = NULL;
    run->lock = -1;
}

static int
lock_run_once(mpb__filestore *fs, const char *run_id, mpb__filestore_locked_run *out, char *err,
              size_t err_len)
{
    memset(out, 0, sizeof *out);
    out->lock = -1;
    out->dir = mpb__filestore_run_dir(fs, run_id);
    if (out->dir == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
    }
    int rc = mpb__fs_lock(out->dir, 0, &out->lock);
    if (rc == 0) {
        rc = mpb__filestore_read_run_info(out->dir, &out->info, err, err_len);
    } else if (rc == MPB_ENOENT) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
    } else {
        rc = mpb__set_error(err, err_len, rc, "cannot lock run %s: %s", out->dir, mpb_strerror(rc));
    }
    if (rc < 0) {
        mpb__filestore_unlock_run(out);
    }
    return rc;
}

int
mpb__filestore_lock_run(mpb__filestore *fs, const char *run_id, int must_be_active,
                        mpb__filestore_locked_run *out, char *err, size_t err_len)
{
    int rc = lock_run_once(fs, run_id, out, err, err_len);
    /* Another look or two: the experiment may have just moved to or from .trash. */
    for (int attempt = 0; attempt < 2 && rc == MPB_ENOTFOUND; attempt++) {
        rc = lock_run_once(fs, run_id, out, err, err_len);
    }
    if (rc == 0 && must_be_active && strcmp(out->info.lifecycle_stage, "active") != 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "The run %s must be in the 'active' state. Current state is %s.",
                            run_id, out->info.lifecycle_stage);
        mpb__filestore_unlock_run(out);
    }
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
