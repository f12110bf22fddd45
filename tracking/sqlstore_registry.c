/*
 * SQLite store: the model registry in MLflow's tables (registered_models,
 * registered_model_tags, model_versions, registered_model_aliases), every row
 * in workspace 'default' as MLflow writes them. A version is numbered inside
 * the write transaction that inserts it (1 + the highest of the model), so
 * concurrent creators get distinct numbers. Versions MLflow marked deleted
 * (current_stage 'Deleted_Internal') are invisible, as in MLflow.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/sqlstore_int.h"
#include "tracking/store_int.h"

#define WORKSPACE "default"
#define LIVE_VERSION "current_stage IS NOT 'Deleted_Internal'"

/* Everything one registry call needs inside its transaction. */
typedef struct registry_call {
    const char *name;
    const char *description;
    const mpb_tag *tags;
    size_t n_tags;
    const char *source;
    const char *run_id;
    const char *alias;
    int64_t version;
    mpb_registered_model *model;
    mpb_registered_model_list *models;
    mpb_model_version *found;
    mpb_model_version_list *versions;
} registry_call;

/* 1 when the model exists, 0 when not, or a negative status. */
static int
model_exists(mpb__sqlstore *store, const char *name, char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT 1 FROM registered_models WHERE workspace = ? AND name = ?",
                              "ss", WORKSPACE, name);
    if (rc == 0) {
        rc = mpb__sql_step(store, stmt, err, err_len);
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* 0 when the model exists, its not-found error when not, or a status. */
static int
require_model(mpb__sqlstore *store, const char *name, char *err, size_t err_len)
{
    int rc = model_exists(store, name, err, err_len);
    return rc == 1 ? 0 : rc == 0 ? mpb__registry_model_not_found(name, err, err_len) : rc;
}

static int
touch_model(mpb__sqlstore *store, const char *name, char *err, size_t err_len)
{
    return mpb__sql_exec(store, err, err_len,
                         "UPDATE registered_models SET last_updated_time = ? "
                         "WHERE workspace = ? AND name = ?",
                         "iss", mpb_wall_ms(), WORKSPACE, name);
}

/* The aliases of a model, sorted. */
static int
read_aliases(mpb__sqlstore *store, const char *name, mpb_model_alias **out, size_t *out_n,
             char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT alias, version FROM registered_model_aliases "
                              "WHERE workspace = ? AND name = ? ORDER BY alias",
                              "ss", WORKSPACE, name);
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        *out = mpb_realloc(*out, (*out_n + 1) * sizeof **out);
        (*out)[*out_n].alias = mpb__sql_text(stmt, 0);
        (*out)[*out_n].version = mpb__sql_int(stmt, 1, 0);
        (*out_n)++;
        rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static int
load_model(mpb__sqlstore *store, const char *name, mpb_registered_model *model, char *err,
           size_t err_len)
{
    memset(model, 0, sizeof *model);
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT name, description, creation_time, last_updated_time "
                              "FROM registered_models WHERE workspace = ? AND name = ?",
                              "ss", WORKSPACE, name);
    if (rc == 0) {
        rc = mpb__sql_step(store, stmt, err, err_len);
    }
    if (rc == 1) {
        model->name = mpb__sql_text(stmt, 0);
        model->description = mpb__sql_text(stmt, 1);
        model->creation_time = mpb__sql_int(stmt, 2, -1);
        model->last_updated_time = mpb__sql_int(stmt, 3, -1);
        rc = 0;
    } else if (rc == 0) {
        rc = mpb__registry_model_not_found(name, err, err_len);
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    if (rc == 0) {
        rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT key, value FROM registered_model_tags "
                              "WHERE workspace = ? AND name = ? ORDER BY key",
                              "ss", WORKSPACE, name);
    }
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        model->tags = mpb_realloc(model->tags, (model->n_tags + 1) * sizeof *model->tags);
        model->tags[model->n_tags].key = mpb__sql_text(stmt, 0);
        model->tags[model->n_tags].value = mpb__sql_text(stmt, 1);
        model->n_tags++;
        rc = 0;
    }
    sqlite3_finalize(stmt);
    if (rc == 0) {
        rc = read_aliases(store, name, &model->aliases, &model->n_aliases, err, err_len);
    }
    if (rc != 0) {
        mpb__registered_model_clear(model);
    }
    return rc;
}

#define VERSION_SELECT                                                                             \
    "SELECT name, version, creation_time, last_updated_time, source, run_id, status "              \
    "FROM model_versions WHERE workspace = ? AND name = ? AND " LIVE_VERSION " "

/* Reads every version the statement yields (VERSION_SELECT's columns) with
 * its aliases; finalizes the statement. */
static int
read_versions(mpb__sqlstore *store, sqlite3_stmt *stmt, const char *name,
              mpb_model_version_list *out, char *err, size_t err_len)
{
    int rc = 0;
    while ((rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        out->versions = mpb_realloc(out->versions, (out->n_versions + 1) * sizeof *out->versions);
        mpb_model_version *version = &out->versions[out->n_versions++];
        memset(version, 0, sizeof *version);
        version->name = mpb__sql_text(stmt, 0);
        version->version = mpb__sql_int(stmt, 1, 0);
        version->creation_time = mpb__sql_int(stmt, 2, -1);
        version->last_updated_time = mpb__sql_int(stmt, 3, -1);
        version->source = mpb__sql_text(stmt, 4);
        version->run_id = mpb__sql_text(stmt, 5);
        version->status = mpb__sql_text(stmt, 6);
    }
    sqlite3_finalize(stmt);
    mpb_model_alias *aliases = NULL;
    size_t n_aliases = 0;
    if (rc == 0) {
        rc = read_aliases(store, name, &aliases, &n_aliases, err, err_len);
    }
    for (size_t i = 0; rc == 0 && i < out->n_versions; i++) {
        mpb__model_version_take_aliases(&out->versions[i], aliases, n_aliases);
    }
    for (size_t i = 0; i < n_aliases; i++) {
        free(aliases[i].alias);
    }
    free(aliases);
    return rc;
}

static int
load_version(mpb__sqlstore *store, const char *name, int64_t number, mpb_model_version **out,
             char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    mpb_model_version_list list = {0};
    int rc = mpb__sql_prepare(store, &stmt, err, err_len, VERSION_SELECT "AND version = ?", "ssi",
                              WORKSPACE, name, number);
    if (rc == 0) {
        rc = read_versions(store, stmt, name, &list, err, err_len);
    }
    if (rc == 0 && list.n_versions == 0) {
        rc = model_exists(store, name, err, err_len);
        rc = rc == 0   ? mpb__registry_model_not_found(name, err, err_len)
             : rc == 1 ? mpb__registry_version_not_found(name, number, err, err_len)
                       : rc;
    }
    if (rc == 0) {
        *out = mpb_malloc(sizeof **out);
        **out = list.versions[0];
    } else {
        for (size_t i = 0; i < list.n_versions; i++) {
            mpb__model_version_clear(&list.versions[i]);
        }
    }
    free(list.versions);
    return rc;
}

/* ---- Work inside transactions ---- */

static int
create_model_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    int rc = model_exists(store, call->name, err, err_len);
    if (rc == 1) {
        return mpb__set_error(err, err_len, MPB_EEXIST,
                              "Registered Model (name=%s) already exists.", call->name);
    }
    int64_t now = mpb_wall_ms();
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "INSERT INTO registered_models (name, creation_time, "
                           "last_updated_time, description, workspace) VALUES (?, ?, ?, ?, ?)",
                           "siiss", call->name, now, now, call->description, WORKSPACE);
    }
    for (size_t i = 0; rc == 0 && i < call->n_tags; i++) {
        rc = mpb__sql_exec(store, err, err_len,
                           "INSERT OR REPLACE INTO registered_model_tags (key, value, name, "
                           "workspace) VALUES (?, ?, ?, ?)",
                           "ssss", call->tags[i].key, call->tags[i].value, call->name, WORKSPACE);
    }
    return rc;
}

static int
get_model_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    mpb_registered_model *model = mpb_calloc(1, sizeof *model);
    int rc = load_model(store, call->name, model, err, err_len);
    if (rc != 0) {
        free(model);
        return rc;
    }
    call->model = model;
    return 0;
}

static int
list_models_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT name FROM registered_models WHERE workspace = ? "
                              "ORDER BY name",
                              "s", WORKSPACE);
    char **names = NULL;
    size_t n = 0;
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        names = mpb_realloc(names, (n + 1) * sizeof *names);
        names[n++] = mpb__sql_text(stmt, 0);
        rc = 0;
    }
    sqlite3_finalize(stmt);
    mpb_registered_model_list *list = mpb_calloc(1, sizeof *list);
    list->models = mpb_calloc(n + 1, sizeof *list->models);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = load_model(store, names[i], &list->models[i], err, err_len);
        list->n_models += rc == 0;
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    if (rc != 0) {
        mpb_registered_model_list_free(&list);
        return rc;
    }
    mpb__registered_models_sort(list->models, list->n_models);
    call->models = list;
    return 0;
}

static int
delete_model_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    int rc = require_model(store, call->name, err, err_len);
    static const char *const tables[] = {"model_version_tags", "registered_model_aliases",
                                         "model_versions", "registered_model_tags",
                                         "registered_models"};
    for (size_t i = 0; rc >= 0 && i < MPB_ARRAY_LEN(tables); i++) {
        char *sql = mpb_asprintf("DELETE FROM %s WHERE workspace = ? AND name = ?", tables[i]);
        rc = mpb__sql_exec(store, err, err_len, sql, "ss", WORKSPACE, call->name);
        free(sql);
    }
    return rc < 0 ? rc : 0;
}

static int
create_version_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    int rc = require_model(store, call->name, err, err_len);
    sqlite3_stmt *stmt = NULL;
    if (rc == 0) {
        rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions "
                              "WHERE workspace = ? AND name = ?",
                              "ss", WORKSPACE, call->name);
    }
    if (rc == 0) {
        rc = mpb__sql_step(store, stmt, err, err_len);
    }
    int64_t number = rc == 1 ? mpb__sql_int(stmt, 0, 1) : 0;
    sqlite3_finalize(stmt);
    if (rc < 0) {
        return rc;
    }
    int64_t now = mpb_wall_ms();
    rc = mpb__sql_exec(store, err, err_len,
                       "INSERT INTO model_versions (name, version, creation_time, "
                       "last_updated_time, current_stage, source, run_id, status, "
                       "storage_location, workspace) "
                       "VALUES (?, ?, ?, ?, 'None', ?, ?, 'READY', ?, ?)",
                       "siiissss", call->name, number, now, now, call->source, call->run_id,
                       call->source, WORKSPACE);
    if (rc == 0) {
        rc = touch_model(store, call->name, err, err_len);
    }
    if (rc == 0) {
        rc = load_version(store, call->name, number, &call->found, err, err_len);
    }
    return rc;
}

static int
get_version_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    return load_version(store, call->name, call->version, &call->found, err, err_len);
}

static int
list_versions_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    int rc = require_model(store, call->name, err, err_len);
    sqlite3_stmt *stmt = NULL;
    mpb_model_version_list *list = mpb_calloc(1, sizeof *list);
    if (rc == 0) {
        rc = mpb__sql_prepare(store, &stmt, err, err_len, VERSION_SELECT "ORDER BY version", "ss",
                              WORKSPACE, call->name);
    }
    if (rc == 0) {
        rc = read_versions(store, stmt, call->name, list, err, err_len);
    }
    if (rc != 0) {
        mpb_model_version_list_free(&list);
        return rc;
    }
    call->versions = list;
    return 0;
}

static int
set_alias_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    mpb_model_version *version = NULL;
    int rc = load_version(store, call->name, call->version, &version, err, err_len);
    mpb_model_version_free(&version);
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "INSERT OR REPLACE INTO registered_model_aliases (alias, version, "
                           "name, workspace) VALUES (?, ?, ?, ?)",
                           "siss", call->alias, call->version, call->name, WORKSPACE);
    }
    return rc == 0 ? touch_model(store, call->name, err, err_len) : rc;
}

static int
delete_alias_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    int rc = require_model(store, call->name, err, err_len);
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "DELETE FROM registered_model_aliases "
                           "WHERE workspace = ? AND name = ? AND alias = ?",
                           "sss", WORKSPACE, call->name, call->alias);
    }
    if (rc == 0 && sqlite3_changes(store->db) == 0) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Registered model alias %s not found.",
                              call->alias);
    }
    return rc == 0 ? touch_model(store, call->name, err, err_len) : rc;
}

static int
version_by_alias_work(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    registry_call *call = ctx;
    int rc = require_model(store, call->name, err, err_len);
    sqlite3_stmt *stmt = NULL;
    if (rc == 0) {
        rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT version FROM registered_model_aliases "
                              "WHERE workspace = ? AND name = ? AND alias = ?",
                              "sss", WORKSPACE, call->name, call->alias);
    }
    if (rc == 0) {
        rc = mpb__sql_step(store, stmt, err, err_len);
    }
    int64_t number = rc == 1 ? mpb__sql_int(stmt, 0, 0) : 0;
    sqlite3_finalize(stmt);
    if (rc == 0) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Registered model alias %s not found.",
                              call->alias);
    }
    return rc < 0 ? rc : load_version(store, call->name, number, &call->found, err, err_len);
}

/* ---- Slots ---- */

/* Runs one registry call as a transaction; on failure what it read is
 * freed (a retried transaction may have read before), so the caller hands
 * out NULL. */
static int
run_call(void *backend, int write, mpb__sql_work_fn work, registry_call *call, char *err,
         size_t err_len)
{
    int rc = mpb__sqlstore_transact(backend, write, work, call, err, err_len);
    if (rc != 0) {
        mpb_registered_model_free(&call->model);
        mpb_registered_model_list_free(&call->models);
        mpb_model_version_free(&call->found);
        mpb_model_version_list_free(&call->versions);
    }
    return rc;
}

int
mpb__sqlstore_create_registered_model(void *backend, const char *name, const char *description,
                                      const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    registry_call call = {.name = name, .description = description, .tags = tags, .n_tags = n_tags};
    return mpb__sqlstore_transact(backend, 1, create_model_work, &call, err, err_len);
}

int
mpb__sqlstore_get_registered_model(void *backend, const char *name, mpb_registered_model **out,
                                   char *err, size_t err_len)
{
    registry_call call = {.name = name};
    int rc = run_call(backend, 0, get_model_work, &call, err, err_len);
    *out = call.model;
    return rc;
}

int
mpb__sqlstore_list_registered_models(void *backend, mpb_registered_model_list **out, char *err,
                                     size_t err_len)
{
    registry_call call = {0};
    int rc = run_call(backend, 0, list_models_work, &call, err, err_len);
    *out = call.models;
    return rc;
}

int
mpb__sqlstore_delete_registered_model(void *backend, const char *name, char *err, size_t err_len)
{
    registry_call call = {.name = name};
    return mpb__sqlstore_transact(backend, 1, delete_model_work, &call, err, err_len);
}

int
mpb__sqlstore_create_model_version(void *backend, const char *name, const char *source,
                                   const char *run_id, mpb_model_version **out, char *err,
                                   size_t err_len)
{
    registry_call call = {.name = name, .source = source, .run_id = run_id};
    int rc = run_call(backend, 1, create_version_work, &call, err, err_len);
    *out = call.found;
    return rc;
}

int
mpb__sqlstore_get_model_version(void *backend, const char *name, int64_t version,
                                mpb_model_version **out, char *err, size_t err_len)
{
    registry_call call = {.name = name, .version = version};
    int rc = run_call(backend, 0, get_version_work, &call, err, err_len);
    *out = call.found;
    return rc;
}

int
mpb__sqlstore_list_model_versions(void *backend, const char *name, mpb_model_version_list **out,
                                  char *err, size_t err_len)
{
    registry_call call = {.name = name};
    int rc = run_call(backend, 0, list_versions_work, &call, err, err_len);
    *out = call.versions;
    return rc;
}

int
mpb__sqlstore_set_model_alias(void *backend, const char *name, const char *alias, int64_t version,
                              char *err, size_t err_len)
{
    registry_call call = {.name = name, .alias = alias, .version = version};
    return mpb__sqlstore_transact(backend, 1, set_alias_work, &call, err, err_len);
}

int
mpb__sqlstore_delete_model_alias(void *backend, const char *name, const char *alias, char *err,
                                 size_t err_len)
{
    registry_call call = {.name = name, .alias = alias};
    return mpb__sqlstore_transact(backend, 1, delete_alias_work, &call, err, err_len);
}

int
mpb__sqlstore_get_model_version_by_alias(void *backend, const char *name, const char *alias,
                                         mpb_model_version **out, char *err, size_t err_len)
{
    registry_call call = {.name = name, .alias = alias};
    int rc = run_call(backend, 0, version_by_alias_work, &call, err, err_len);
    *out = call.found;
    return rc;
}
