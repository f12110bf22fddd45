/*
 * File store: the model registry as MLflow's registry FileStore keeps it
 * beside the experiments:
 *
 *   <root>/models/<name>/meta.yaml              the registered model
 *   <root>/models/<name>/tags/<key>             its tags (raw value)
 *   <root>/models/<name>/aliases/<alias>        an alias: the version number as text
 *   <root>/models/<name>/version-<n>/meta.yaml  a version
 *
 * A model folder without meta.yaml is one being made (or broken) and is not
 * shown. Every change of one model (new version, alias, meta.yaml rewrite)
 * holds flock(2) on its folder, so version numbers stay distinct across
 * processes; readers take no lock (files are replaced by rename(2)).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/filestore_int.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/yaml_meta.h"

#define MODELS_DIR "models"
#define VERSION_PREFIX "version-"
#define DELETED_STAGE "Deleted_Internal"

static char *
model_dir(const mpb__filestore *fs, const char *name)
{
    return mpb_asprintf("%s/" MODELS_DIR "/%s", fs->root, name);
}

static int
io_error(int rc, const char *path, char *err, size_t err_len)
{
    return mpb__set_error(err, err_len, rc, "cannot write %s: %s", path, mpb_strerror(rc));
}

static int
write_model_meta(const char *dir, const mpb_registered_model *model)
{
    mpb__strbuf buf = {0};
    mpb__yaml_put_time(&buf, "creation_timestamp", model->creation_time);
    if (model->description != NULL && *model->description != '\0') {
        mpb__yaml_put_string(&buf, "description", model->description);
    } else {
        mpb__yaml_put_raw(&buf, "description", "null");
    }
    mpb__yaml_put_time(&buf, "last_updated_timestamp", model->last_updated_time);
    mpb__yaml_put_string(&buf, "name", model->name);
    return mpb__filestore_write_meta(dir, &buf);
}

static void
put_null_or_string(mpb__strbuf *buf, const char *key, const char *value)
{
    if (value != NULL && *value != '\0') {
        mpb__yaml_put_string(buf, key, value);
    } else {
        mpb__yaml_put_raw(buf, key, "null");
    }
}

static int
write_version_meta(const char *dir, const mpb_model_version *version)
{
    mpb__strbuf buf = {0};
    mpb__yaml_put_raw(&buf, "aliases", "[]");
    mpb__yaml_put_time(&buf, "creation_timestamp", version->creation_time);
    mpb__yaml_put_string(&buf, "current_stage", "None");
    mpb__yaml_put_raw(&buf, "description", "null");
    mpb__yaml_put_time(&buf, "last_updated_timestamp", version->last_updated_time);
    mpb__yaml_put_string(&buf, "name", version->name);
    put_null_or_string(&buf, "run_id", version->run_id);
    mpb__yaml_put_raw(&buf, "run_link", "null");
    mpb__yaml_put_string(&buf, "source", version->source);
    mpb__yaml_put_string(&buf, "status", version->status);
    mpb__yaml_put_raw(&buf, "status_message", "null");
    mpb__yaml_put_string(&buf, "storage_location", version->source);
    mpb__yaml_put_raw(&buf, "user_id", "null");
    mpb__yaml_put_int(&buf, "version", version->version);
    return mpb__filestore_write_meta(dir, &buf);
}

static int
read_aliases(const char *dir, mpb_model_alias **out, size_t *out_n)
{
    mpb_tag *files = NULL;
    size_t n = 0;
    int rc = mpb__filestore_read_values(dir, "aliases", &files, &n);
    if (rc < 0) {
        return rc;
    }
    *out = NULL;
    *out_n = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t version = 0;
        if (mpb__parse_int64(files[i].value, &version) == 0 && version > 0) {
            *out = mpb_realloc(*out, (*out_n + 1) * sizeof **out);
            (*out)[*out_n].alias = mpb_strdup(files[i].key);
            (*out)[(*out_n)++].version = version;
        }
    }
    mpb__tags_free(files, n);
    mpb__model_aliases_sort(*out, *out_n);
    return 0;
}

static void
aliases_free(mpb_model_alias *aliases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(aliases[i].alias);
    }
    free(aliases);
}

/* Reads <dir>/meta.yaml, tags and aliases; MPB_ENOTFOUND without meta.yaml. */
static int
read_model(const char *dir, const char *name, mpb_registered_model *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    char *meta_path = mpb__path_join(dir, "meta.yaml");
    mpb__yaml_map meta;
    int rc = mpb__filestore_read_meta(meta_path, &meta, err, err_len);
    free(meta_path);
    if (rc == MPB_ENOTFOUND) {
        return mpb__registry_model_not_found(name, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    const char *stored_name = mpb__yaml_map_string(&meta, "name");
    const char *description = mpb__yaml_map_string(&meta, "description");
    out->name = mpb_strdup(stored_name != NULL ? stored_name : name);
    out->description = mpb_strdup(description != NULL ? description : "");
    out->creation_time = -1;
    out->last_updated_time = -1;
    mpb__yaml_map_int(&meta, "creation_timestamp", &out->creation_time);
    mpb__yaml_map_int(&meta, "last_updated_timestamp", &out->last_updated_time);
    mpb__yaml_map_clear(&meta);
    rc = mpb__filestore_read_values(dir, "tags", &out->tags, &out->n_tags);
    if (rc == 0) {
        rc = read_aliases(dir, &out->aliases, &out->n_aliases);
    }
    if (rc < 0) {
        mpb__registered_model_clear(out);
        return mpb__set_error(err, err_len, rc, "cannot read %s: %s", dir, mpb_strerror(rc));
    }
    return 0;
}

/* Reads <model_dir>/version-<n>/meta.yaml; MPB_ENOTFOUND when absent or
 * marked deleted. Aliases are not filled. */
static int
read_version(const char *dir, const char *name, int64_t number, mpb_model_version *out, char *err,
             size_t err_len)
{
    memset(out, 0, sizeof *out);
    char *meta_path = mpb_asprintf("%s/" VERSION_PREFIX "%lld/meta.yaml", dir, (long long)number);
    mpb__yaml_map meta;
    int rc = mpb__filestore_read_meta(meta_path, &meta, err, err_len);
    free(meta_path);
    if (rc == MPB_ENOTFOUND) {
        return mpb__registry_version_not_found(name, number, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    const char *stage = mpb__yaml_map_string(&meta, "current_stage");
    const char *source = mpb__yaml_map_string(&meta, "source");
    const char *run_id = mpb__yaml_map_string(&meta, "run_id");
    const char *status = mpb__yaml_map_string(&meta, "status");
    if (stage != NULL && strcmp(stage, DELETED_STAGE) == 0) {
        rc = mpb__registry_version_not_found(name, number, err, err_len);
    } else {
        out->name = mpb_strdup(name);
        out->version = number;
        out->source = mpb_strdup(source != NULL ? source : "");
        out->run_id = mpb_strdup(run_id != NULL ? run_id : "");
        out->status = mpb_strdup(status != NULL ? status : "READY");
        out->creation_time = -1;
        out->last_updated_time = -1;
        mpb__yaml_map_int(&meta, "creation_timestamp", &out->creation_time);
        mpb__yaml_map_int(&meta, "last_updated_timestamp", &out->last_updated_time);
    }
    mpb__yaml_map_clear(&meta);
    return rc;
}

/* The version numbers of a model's version-<n> folders, unsorted. */
static int
version_numbers(const char *dir, int64_t **out, size_t *out_n)
{
    char **names = NULL;
    size_t n = 0;
    int rc = mpb__fs_list(dir, 1, &names, &n);
    *out = mpb_calloc(n + 1, sizeof **out);
    *out_n = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t number = 0;
        if (strncmp(names[i], VERSION_PREFIX, strlen(VERSION_PREFIX)) == 0 &&
            mpb__parse_int64(names[i] + strlen(VERSION_PREFIX), &number) == 0 && number > 0) {
            (*out)[(*out_n)++] = number;
        }
    }
    mpb__fs_names_free(names, n);
    return rc;
}

/* The model's folder, locked exclusively, when its meta.yaml exists. */
static int
lock_model(mpb__filestore *fs, const char *name, char **out_dir, int *out_lock, char *err,
           size_t err_len)
{
    char *dir = model_dir(fs, name);
    if (!mpb__filestore_has_meta(dir)) {
        free(dir);
        return mpb__registry_model_not_found(name, err, err_len);
    }
    int rc = mpb__fs_lock(dir, 0, out_lock);
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot lock %s: %s", dir, mpb_strerror(rc));
        free(dir);
        return rc;
    }
    *out_dir = dir;
    return 0;
}

/* Rewrites the model's meta.yaml with last_updated_timestamp = now (lock held). */
static int
touch_model(const char *dir, const char *name, char *err, size_t err_len)
{
    mpb_registered_model model;
    int rc = read_model(dir, name, &model, err, err_len);
    if (rc < 0) {
        return rc;
    }
    model.last_updated_time = mpb_wall_ms();
    rc = write_model_meta(dir, &model);
    mpb__registered_model_clear(&model);
    return rc < 0 ? io_error(rc, dir, err, err_len) : 0;
}

/* ---- Slots ---- */

int
mpb__filestore_create_registered_model(void *backend, const char *name, const char *description,
                                       const mpb_tag *tags, size_t n_tags, char *err,
                                       size_t err_len)
{
    mpb__filestore *fs = backend;
    char *models = mpb__path_join(fs->root, MODELS_DIR);
    char *dir = model_dir(fs, name);
    int rc = mpb__fs_mkdir_p(models);
    if (rc == 0) {
        rc = mpb__fs_mkdir(dir);
        if (rc == MPB_EEXIST) {
            rc = mpb__set_error(err, err_len, MPB_EEXIST,
                                "Registered Model (name=%s) already exists.", name);
            goto out;
        }
    }
    for (size_t i = 0; rc == 0 && i < n_tags; i++) {
        rc = mpb__filestore_write_value(dir, "tags", tags[i].key, tags[i].value);
    }
    if (rc == 0) {
        int64_t now = mpb_wall_ms();
        mpb_registered_model model = {.name = (char *)name,
                                      .description = (char *)description,
                                      .creation_time = now,
                                      .last_updated_time = now};
        rc = write_model_meta(dir, &model); /* last: the model now exists */
    }
    if (rc < 0) {
        mpb__fs_rm_rf(dir);
        rc = io_error(rc, dir, err, err_len);
    }
out:
    free(dir);
    free(models);
    return rc;
}

int
mpb__filestore_get_registered_model(void *backend, const char *name, mpb_registered_model **out,
                                    char *err, size_t err_len)
{
    char *dir = model_dir(backend, name);
    mpb_registered_model *model = mpb_calloc(1, sizeof *model);
    int rc = read_model(dir, name, model, err, err_len);
    free(dir);
    if (rc < 0) {
        free(model);
        return rc;
    }
    *out = model;
    return 0;
}

int
mpb__filestore_list_registered_models(void *backend, mpb_registered_model_list **out, char *err,
                                      size_t err_len)
{
    mpb__filestore *fs = backend;
    char *models = mpb__path_join(fs->root, MODELS_DIR);
    char **names = NULL;
    size_t n = 0;
    int rc = mpb__fs_list(models, 1, &names, &n);
    if (rc == MPB_ENOENT) {
        rc = 0;
    }
    mpb_registered_model_list *list = mpb_calloc(1, sizeof *list);
    list->models = mpb_calloc(n + 1, sizeof *list->models);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *dir = mpb__path_join(models, names[i]);
        if (names[i][0] != '.' && mpb__filestore_has_meta(dir)) {
            rc = read_model(dir, names[i], &list->models[list->n_models], err, err_len);
            list->n_models += rc == 0;
        }
        free(dir);
    }
    mpb__fs_names_free(names, n);
    free(models);
    return mpb__registry_models_hand_out(list, rc, out);
}

int
mpb__filestore_delete_registered_model(void *backend, const char *name, char *err, size_t err_len)
{
    char *dir = NULL;
    int lock = -1;
    int rc = lock_model(backend, name, &dir, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    rc = mpb__fs_rm_rf(dir);
    mpb__fs_unlock(lock);
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot remove %s: %s", dir, mpb_strerror(rc));
    }
    free(dir);
    return rc;
}

/* Fills a version's aliases from its model's folder. */
static int
add_aliases(const char *dir, mpb_model_version *versions, size_t n)
{
    mpb_model_alias *aliases = NULL;
    size_t n_aliases = 0;
    int rc = read_aliases(dir, &aliases, &n_aliases);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        mpb__model_version_take_aliases(&versions[i], aliases, n_aliases);
    }
    aliases_free(aliases, n_aliases);
    return rc;
}

static int
load_version(const char *dir, const char *name, int64_t number, mpb_model_version **out, char *err,
             size_t err_len)
{
    mpb_model_version *version = mpb_calloc(1, sizeof *version);
    int rc = read_version(dir, name, number, version, err, err_len);
    if (rc == 0) {
        rc = add_aliases(dir, version, 1);
        if (rc < 0) {
            mpb__model_version_clear(version);
            rc = mpb__set_error(err, err_len, rc, "cannot read %s: %s", dir, mpb_strerror(rc));
        }
    }
    if (rc < 0) {
        free(version);
        return rc;
    }
    *out = version;
    return 0;
}

int
mpb__filestore_create_model_version(void *backend, const char *name, const char *source,
                                    const char *run_id, mpb_model_version **out, char *err,
                                    size_t err_len)
{
    char *dir = NULL;
    int lock = -1;
    int rc = lock_model(backend, name, &dir, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    int64_t *numbers = NULL;
    size_t n = 0;
    rc = version_numbers(dir, &numbers, &n);
    int64_t next = 1;
    for (size_t i = 0; i < n; i++) {
        next = numbers[i] >= next ? numbers[i] + 1 : next;
    }
    free(numbers);
    char *version_dir = mpb_asprintf("%s/" VERSION_PREFIX "%lld", dir, (long long)next);
    if (rc == 0) {
        rc = mpb__fs_mkdir(version_dir);
    }
    if (rc == 0) {
        int64_t now = mpb_wall_ms();
        mpb_model_version version = {.name = (char *)name,
                                     .version = next,
                                     .creation_time = now,
                                     .last_updated_time = now,
                                     .source = (char *)source,
                                     .run_id = (char *)run_id,
                                     .status = "READY"};
        rc = write_version_meta(version_dir, &version);
        if (rc < 0) {
            mpb__fs_rm_rf(version_dir);
        }
    }
    if (rc < 0) {
        rc = io_error(rc, version_dir, err, err_len);
    }
    if (rc == 0) {
        rc = touch_model(dir, name, err, err_len);
    }
    mpb__fs_unlock(lock);
    if (rc == 0) {
        rc = load_version(dir, name, next, out, err, err_len);
    }
    free(version_dir);
    free(dir);
    return rc;
}

int
mpb__filestore_get_model_version(void *backend, const char *name, int64_t version,
                                 mpb_model_version **out, char *err, size_t err_len)
{
    char *dir = model_dir(backend, name);
    int rc = mpb__filestore_has_meta(dir) ? load_version(dir, name, version, out, err, err_len)
                                          : mpb__registry_model_not_found(name, err, err_len);
    free(dir);
    return rc;
}

int
mpb__filestore_list_model_versions(void *backend, const char *name, mpb_model_version_list **out,
                                   char *err, size_t err_len)
{
    char *dir = model_dir(backend, name);
    if (!mpb__filestore_has_meta(dir)) {
        free(dir);
        return mpb__registry_model_not_found(name, err, err_len);
    }
    int64_t *numbers = NULL;
    size_t n = 0;
    int rc = version_numbers(dir, &numbers, &n);
    mpb_model_version_list *list = mpb_calloc(1, sizeof *list);
    list->versions = mpb_calloc(n + 1, sizeof *list->versions);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = read_version(dir, name, numbers[i], &list->versions[list->n_versions], err, err_len);
        if (rc == MPB_ENOTFOUND) {
            rc = 0; /* deleted, or being made */
        } else if (rc == 0) {
            list->n_versions++;
        }
    }
    if (rc == 0) {
        rc = add_aliases(dir, list->versions, list->n_versions);
    }
    free(numbers);
    free(dir);
    return mpb__registry_versions_hand_out(list, rc, out);
}

int
mpb__filestore_set_model_alias(void *backend, const char *name, const char *alias, int64_t version,
                               char *err, size_t err_len)
{
    char *dir = NULL;
    int lock = -1;
    int rc = lock_model(backend, name, &dir, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    mpb_model_version found;
    rc = read_version(dir, name, version, &found, err, err_len);
    if (rc == 0) {
        mpb__model_version_clear(&found);
        char number[24];
        snprintf(number, sizeof number, "%lld", (long long)version);
        rc = mpb__filestore_write_value(dir, "aliases", alias, number);
        if (rc < 0) {
            rc = io_error(rc, dir, err, err_len);
        }
    }
    if (rc == 0) {
        rc = touch_model(dir, name, err, err_len);
    }
    mpb__fs_unlock(lock);
    free(dir);
    return rc;
}

int
mpb__filestore_delete_model_alias(void *backend, const char *name, const char *alias, char *err,
                                  size_t err_len)
{
    char *dir = NULL;
    int lock = -1;
    int rc = lock_model(backend, name, &dir, &lock, err, err_len);
    if (rc < 0) {
        return rc;
    }
    char *path = mpb_asprintf("%s/aliases/%s", dir, alias);
    rc = mpb__fs_unlink(path);
    if (rc == MPB_ENOENT) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Registered model alias %s not found.",
                            alias);
    } else if (rc < 0) {
        rc = io_error(rc, path, err, err_len);
    }
    if (rc == 0) {
        rc = touch_model(dir, name, err, err_len);
    }
    mpb__fs_unlock(lock);
    free(path);
    free(dir);
    return rc;
}

int
mpb__filestore_get_model_version_by_alias(void *backend, const char *name, const char *alias,
                                          mpb_model_version **out, char *err, size_t err_len)
{
    char *dir = model_dir(backend, name);
    if (!mpb__filestore_has_meta(dir)) {
        free(dir);
        return mpb__registry_model_not_found(name, err, err_len);
    }
    char *path = mpb_asprintf("%s/aliases/%s", dir, alias);
    char *text = NULL;
    int rc = mpb__fs_read_file(path, 64, &text, NULL);
    int64_t number = 0;
    if (rc == MPB_ENOENT) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Registered model alias %s not found.",
                            alias);
    } else if (rc < 0 || mpb__parse_int64(text, &number) < 0) {
        rc = mpb__set_error(err, err_len, MPB_ESTORE, "%s does not hold a version number", path);
    }
    if (rc == 0) {
        rc = load_version(dir, name, number, out, err, err_len);
    }
    free(text);
    free(path);
    free(dir);
    return rc;
}
