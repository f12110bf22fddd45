/*
 * The file store on disk, below every other part of it: the root's lock,
 * meta.yaml files, value files (params and tags), experiment folders and
 * run folders with the run lock. filestore_log.c, filestore_runs.c,
 * filestore_experiments.c and filestore.c build on these and this file
 * calls none of them. docs/tracking-format.md is the layout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/filestore_int.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/validate.h"
#include "tracking/yaml_meta.h"

/* MLflow's SourceType.LOCAL, written into every run's meta.yaml */
#define SOURCE_TYPE_LOCAL 4
/* The largest meta.yaml read */
#define META_LIMIT (1 << 20)

typedef struct value_list {
    mpb_tag *items;
    size_t n;
} value_list;

/* ---- the root, and meta.yaml files ---- */

int
mpb__filestore_lock_root(const mpb__filestore *fs, int shared, int *out_lock, char *err,
                         size_t err_len)
{
    int rc = mpb__fs_lock(fs->root, shared, out_lock);
    if (rc < 0) {
        return mpb__set_error(err, err_len, rc, "cannot lock %s: %s", fs->root, mpb_strerror(rc));
    }
    return 0;
}

int
mpb__filestore_has_meta(const char *dir)
{
    char *meta = mpb__path_join(dir, "meta.yaml");
    int found = mpb__fs_is_file(meta);
    free(meta);
    return found;
}

int
mpb__filestore_read_meta(const char *meta_path, mpb__yaml_map *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    int rc = mpb__fs_read_file(meta_path, META_LIMIT, &text, &len);
    if (rc < 0) {
        return mpb__set_error(err, err_len, rc == MPB_ENOENT ? MPB_ENOTFOUND : rc,
                              "cannot read %s: %s", meta_path, mpb_strerror(rc));
    }
    rc = mpb__yaml_map_parse(text, len, out, err, err_len);
    free(text);
    return rc;
}

int
mpb__filestore_write_meta(const char *dir, mpb__strbuf *yaml)
{
    char *path = mpb__path_join(dir, "meta.yaml");
    int rc = mpb__fs_write_atomic(dir, path, yaml->text, yaml->len);
    free(path);
    mpb__strbuf_clear(yaml);
    return rc;
}

/* ---- value files (params, tags) ---- */

int
mpb__filestore_key_conflict(const char *base_dir, const char *key)
{
    char *path = mpb__path_join(base_dir, key);
    size_t base_len = strlen(base_dir) + 1;
    struct stat st;
    int conflict = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
    for (char *slash = strchr(path + base_len, '/'); !conflict && slash;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        conflict = lstat(path, &st) == 0 && !S_ISDIR(st.st_mode);
        *slash = '/';
    }
    free(path);
    return conflict;
}

int
mpb__filestore_write_value(const char *owner_dir, const char *sub, const char *key,
                           const char *value)
{
    char *base = mpb__path_join(owner_dir, sub);
    char *path = mpb__path_join(base, key);
    int rc = mpb__fs_mkdir_parent(path);
    if (rc == 0) {
        rc = mpb__fs_write_atomic(owner_dir, path, value, strlen(value));
    }
    free(path);
    free(base);
    return rc;
}

static int
collect_value(const char *rel_path, const char *abs_path, void *ctx)
{
    value_list *list = ctx;
    if (mpb__validate_key("tag", rel_path, NULL, 0) < 0) {
        return 0; /* not a name MLflow could have written: not ours to show */
    }
    char *value = NULL;
    int rc = mpb__fs_read_file(abs_path, MPB__FILESTORE_VALUE_LIMIT, &value, NULL);
    if (rc == MPB_ENOENT) {
        return 0; /* deleted meanwhile */
    }
    if (rc < 0) {
        return rc;
    }
    list->items = mpb_realloc(list->items, (list->n + 1) * sizeof *list->items);
    list->items[list->n].key = mpb_strdup(rel_path);
    list->items[list->n].value = value;
    list->n++;
    return 0;
}

int
mpb__filestore_read_values(const char *owner_dir, const char *sub, mpb_tag **out, size_t *out_n)
{
    char *dir = mpb__path_join(owner_dir, sub);
    value_list list = {0};
    int rc = mpb__fs_walk_files(dir, collect_value, &list);
    free(dir);
    if (rc == MPB_ENOENT) {
        rc = 0;
    }
    if (rc < 0) {
        mpb__tags_free(list.items, list.n);
        return rc;
    }
    *out = list.items;
    *out_n = list.n;
    return 0;
}

/* ---- experiment folders ---- */

static int
is_reserved_root_name(const char *name)
{
    return name[0] == '.' || strcmp(name, "models") == 0;
}

char *
mpb__filestore_experiment_dir(const mpb__filestore *fs, const char *experiment_id, int *out_deleted)
{
    const char *parents[2] = {fs->root, fs->trash};
    for (int i = 0; i < 2; i++) {
        char *dir = mpb__path_join(parents[i], experiment_id);
        if (mpb__filestore_has_meta(dir)) {
            if (out_deleted != NULL) {
                *out_deleted = i == 1;
            }
            return dir;
        }
        free(dir);
    }
    return NULL;
}

int
mpb__filestore_experiment_dirs(const mpb__filestore *fs, char ***out_dirs, size_t *out_n)
{
    char **dirs = NULL;
    size_t n = 0;
    const char *parents[2] = {fs->root, fs->trash};
    for (int i = 0; i < 2; i++) {
        char **names = NULL;
        size_t n_names = 0;
        int rc = mpb__fs_list(parents[i], 1, &names, &n_names);
        if (rc < 0 && !(i == 1 && rc == MPB_ENOENT)) {
            mpb__fs_names_free(dirs, n);
            return rc;
        }
        dirs = mpb_realloc(dirs, (n + n_names + 1) * sizeof *dirs);
        for (size_t k = 0; k < n_names; k++) {
            if (!is_reserved_root_name(names[k])) {
                dirs[n++] = mpb__path_join(parents[i], names[k]);
            }
        }
        mpb__fs_names_free(names, n_names);
    }
    *out_dirs = dirs;
    *out_n = n;
    return 0;
}

int
mpb__filestore_read_experiment(const char *dir, int deleted, mpb_experiment *out, char *err,
                               size_t err_len)
{
    memset(out, 0, sizeof *out);
    char *meta_path = mpb__path_join(dir, "meta.yaml");
    mpb__yaml_map meta;
    int rc = mpb__filestore_read_meta(meta_path, &meta, err, err_len);
    if (rc < 0) {
        goto out_free_path;
    }
    const char *id = mpb__yaml_map_string(&meta, "experiment_id");
    const char *name = mpb__yaml_map_string(&meta, "name");
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    if (id == NULL || name == NULL || strcmp(id, base) != 0) {
        rc = mpb__set_error(err, err_len, MPB_ESTORE,
                            "%s: experiment_id must equal the folder name and name must be set",
                            meta_path);
        goto out_clear_meta;
    }
    const char *location = mpb__yaml_map_string(&meta, "artifact_location");
    out->experiment_id = mpb_strdup(id);
    out->name = mpb_strdup(name);
    out->artifact_location = mpb_strdup(location ? location : "");
    out->lifecycle_stage = mpb_strdup(deleted ? "deleted" : "active");
    out->creation_time = -1;
    out->last_update_time = -1;
    (void)mpb__yaml_map_int(&meta, "creation_time", &out->creation_time);
    (void)mpb__yaml_map_int(&meta, "last_update_time", &out->last_update_time);
    rc = mpb__filestore_read_values(dir, "tags", &out->tags, &out->n_tags);
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot read the tags of %s: %s", dir,
                            mpb_strerror(rc));
        mpb__experiment_clear(out);
    }
out_clear_meta:
    mpb__yaml_map_clear(&meta);
out_free_path:
    free(meta_path);
    return rc;
}

int
mpb__filestore_write_experiment_meta(const char *dir, const mpb_experiment *experiment)
{
    mpb__strbuf buf = {0};
    mpb__yaml_put_string(&buf, "artifact_location", experiment->artifact_location);
    mpb__yaml_put_time(&buf, "creation_time", experiment->creation_time);
    mpb__yaml_put_string(&buf, "experiment_id", experiment->experiment_id);
    mpb__yaml_put_time(&buf, "last_update_time", experiment->last_update_time);
    mpb__yaml_put_string(&buf, "lifecycle_stage", experiment->lifecycle_stage);
    mpb__yaml_put_string(&buf, "name", experiment->name);
    return mpb__filestore_write_meta(dir, &buf);
}

/* ---- run folders and their lock ---- */

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
    if (run_id == NULL || strcmp(run_id, mpb__filestore_base_name(run_dir)) != 0 || experiment_id == NULL ||
        strcmp(experiment_id, mpb__filestore_base_name(parent)) != 0 || read_status(&meta, &status) < 0) {
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
