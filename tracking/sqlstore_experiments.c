/*
 * SQLite store: experiments (table experiments, tags in experiment_tags).
 * Ids are SQLite's integer keys (1, 2, 3, ... as MLflow's SQL store; 0 is
 * "Default"). Deleting only changes lifecycle_stage (of the experiment and of
 * its active runs); restoring brings back the runs deleted with it, as the
 * file store does.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/search.h"
#include "tracking/sqlstore_int.h"
#include "tracking/store_int.h"

#define EXPERIMENT_SELECT                                                                          \
    "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, "              \
    "last_update_time FROM experiments "

static int
read_experiment_tags(mpb__sqlstore *store, mpb_experiment *experiment, char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT key, value FROM experiment_tags WHERE experiment_id = ? "
                              "ORDER BY key",
                              "s", experiment->experiment_id);
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        experiment->tags =
            mpb_realloc(experiment->tags, (experiment->n_tags + 1) * sizeof *experiment->tags);
        experiment->tags[experiment->n_tags].key = mpb__sql_text(stmt, 0);
        experiment->tags[experiment->n_tags].value = mpb__sql_text(stmt, 1);
        experiment->n_tags++;
        rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* Reads every experiment the statement yields (EXPERIMENT_SELECT's columns)
 * with its tags; finalizes the statement. */
static int
read_experiments(mpb__sqlstore *store, sqlite3_stmt *stmt, mpb_experiment **out, size_t *out_n,
                 char *err, size_t err_len)
{
    mpb_experiment *list = mpb_calloc(1, sizeof *list);
    size_t n = 0;
    int rc = 0;
    while ((rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        list = mpb_realloc(list, (n + 1) * sizeof *list);
        mpb_experiment *experiment = &list[n++];
        memset(experiment, 0, sizeof *experiment);
        experiment->experiment_id = mpb__sql_text(stmt, 0);
        experiment->name = mpb__sql_text(stmt, 1);
        experiment->artifact_location = mpb__sql_text(stmt, 2);
        experiment->lifecycle_stage = mpb__sql_text(stmt, 3);
        experiment->creation_time = mpb__sql_int(stmt, 4, -1);
        experiment->last_update_time = mpb__sql_int(stmt, 5, -1);
    }
    sqlite3_finalize(stmt);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = read_experiment_tags(store, &list[i], err, err_len);
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            mpb__experiment_clear(&list[i]);
        }
        free(list);
        return rc;
    }
    *out = list;
    *out_n = n;
    return 0;
}

/* One experiment by id (by_name 0) or name; MPB_ENOTFOUND with MLflow's message. */
typedef struct experiment_query {
    const char *key;
    int by_name;
    mpb_experiment *found;
} experiment_query;

static int
find_experiment(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    experiment_query *query = ctx;
    int64_t id = 0;
    if (!query->by_name && mpb__sqlstore_parse_experiment_id(query->key, &id) < 0) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Could not find experiment with ID %s",
                              query->key);
    }
    sqlite3_stmt *stmt = NULL;
    int rc = query->by_name
                 ? mpb__sql_prepare(store, &stmt, err, err_len, EXPERIMENT_SELECT "WHERE name = ?",
                                    "s", query->key)
                 : mpb__sql_prepare(store, &stmt, err, err_len,
                                    EXPERIMENT_SELECT "WHERE experiment_id = ?", "i", id);
    mpb_experiment *list = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = read_experiments(store, stmt, &list, &n, err, err_len);
    }
    if (rc == 0 && n == 0) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND,
                            query->by_name ? "Could not find experiment with name '%s'"
                                           : "Could not find experiment with ID %s",
                            query->key);
    }
    if (rc == 0) {
        mpb_experiment_free(&query->found);
        query->found = mpb_malloc(sizeof *query->found);
        *query->found = list[0];
        for (size_t i = 1; i < n; i++) {
            mpb__experiment_clear(&list[i]);
        }
    }
    free(list);
    return rc;
}

int
mpb__sqlstore_get_experiment_in_txn(mpb__sqlstore *store, const char *experiment_id,
                                    mpb_experiment **out, char *err, size_t err_len)
{
    experiment_query query = {.key = experiment_id};
    int rc = find_experiment(store, &query, err, err_len);
    *out = query.found;
    return rc;
}

static int
get_experiment(mpb__sqlstore *store, const char *key, int by_name, mpb_experiment **out, char *err,
               size_t err_len)
{
    experiment_query query = {.key = key, .by_name = by_name};
    int rc = mpb__sqlstore_transact(store, 0, find_experiment, &query, err, err_len);
    if (rc < 0) {
        mpb_experiment_free(&query.found);
        return rc;
    }
    *out = query.found;
    return 0;
}

int
mpb__sqlstore_get_experiment(void *backend, const char *experiment_id, mpb_experiment **out,
                             char *err, size_t err_len)
{
    return get_experiment(backend, experiment_id, 0, out, err, err_len);
}

int
mpb__sqlstore_get_experiment_by_name(void *backend, const char *name, mpb_experiment **out,
                                     char *err, size_t err_len)
{
    return get_experiment(backend, name, 1, out, err, err_len);
}

static int
put_experiment_tag(mpb__sqlstore *store, const char *id, const char *key, const char *value,
                   char *err, size_t err_len)
{
    return mpb__sql_exec(store, err, err_len,
                         "INSERT INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?) "
                         "ON CONFLICT (key, experiment_id) DO UPDATE SET value = excluded.value",
                         "sss", key, value, id);
}

typedef struct new_experiment {
    const char *name;
    const char *artifact_location;
    const mpb_tag *tags;
    size_t n_tags;
    char *id;
} new_experiment;

static int
insert_experiment(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    new_experiment *create = ctx;
    experiment_query query = {.key = create->name, .by_name = 1};
    int rc = find_experiment(store, &query, err, err_len);
    if (rc == 0) {
        int deleted = strcmp(query.found->lifecycle_stage, "deleted") == 0;
        mpb_experiment_free(&query.found);
        return mpb__set_error(err, err_len, MPB_EEXIST,
                              deleted ? "Experiment '%s' already exists in deleted state. You can "
                                        "restore the experiment, or permanently delete it with "
                                        "`mlflow gc`."
                                      : "Experiment '%s' already exists.",
                              create->name);
    }
    if (rc != MPB_ENOTFOUND) {
        return rc;
    }
    int64_t now = mpb_wall_ms();
    rc = mpb__sql_exec(store, err, err_len,
                       "INSERT INTO experiments (name, artifact_location, lifecycle_stage, "
                       "creation_time, last_update_time) VALUES (?, ?, 'active', ?, ?)",
                       "ssii", create->name, create->artifact_location, now, now);
    if (rc < 0) {
        return rc;
    }
    free(create->id);
    create->id = mpb_asprintf("%" PRId64, (int64_t)sqlite3_last_insert_rowid(store->db));
    if (create->artifact_location == NULL) {
        char *location = mpb_asprintf("%s/%s", store->artifact_root, create->id);
        rc = mpb__sql_exec(store, err, err_len,
                           "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                           "ss", location, create->id);
        free(location);
    }
    for (size_t i = 0; rc == 0 && i < create->n_tags; i++) {
        rc = put_experiment_tag(store, create->id, create->tags[i].key, create->tags[i].value, err,
                                err_len);
    }
    return rc;
}

int
mpb__sqlstore_create_experiment(void *backend, const char *name, const char *artifact_location,
                                const mpb_tag *tags, size_t n_tags, char **out_experiment_id,
                                char *err, size_t err_len)
{
    new_experiment create = {name, artifact_location, tags, n_tags, NULL};
    int rc = mpb__sqlstore_transact(backend, 1, insert_experiment, &create, err, err_len);
    if (rc == 0 && out_experiment_id != NULL) {
        *out_experiment_id = create.id;
        create.id = NULL;
    }
    free(create.id);
    return rc;
}

typedef struct experiment_list {
    mpb_experiment *experiments;
    size_t n;
} experiment_list;

static int
list_experiments(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    experiment_list *list = ctx;
    for (size_t i = 0; i < list->n; i++) { /* a retried transaction starts over */
        mpb__experiment_clear(&list->experiments[i]);
    }
    free(list->experiments);
    list->experiments = NULL;
    list->n = 0;
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len, EXPERIMENT_SELECT, NULL);
    return rc < 0 ? rc : read_experiments(store, stmt, &list->experiments, &list->n, err, err_len);
}

/* Every experiment is fetched and the shared in-memory evaluator
 * (tracking/search_eval.c) filters, orders and pages them, so both stores
 * answer a search alike; experiments are few. */
int
mpb__sqlstore_search_experiments(void *backend, const mpb_search_opts *opts,
                                 mpb_experiment_page **out, char *err, size_t err_len)
{
    size_t offset = 0;
    int rc = mpb__page_token_decode(opts ? opts->page_token : NULL, &offset, err, err_len);
    experiment_list list = {0};
    if (rc == 0) {
        rc = mpb__sqlstore_transact(backend, 0, list_experiments, &list, err, err_len);
    }
    if (rc < 0) {
        for (size_t i = 0; i < list.n; i++) {
            mpb__experiment_clear(&list.experiments[i]);
        }
        free(list.experiments);
        return rc;
    }
    size_t next = 0;
    rc = mpb__search_experiments_in_memory(list.experiments, list.n, opts, offset, out, &next, err,
                                           err_len);
    if (rc == 0 && next > 0) {
        (*out)->next_page_token = mpb__page_token_encode(next);
    }
    return rc;
}

/* An experiment's lifecycle change: delete (restore = 0) or restore. */
typedef struct lifecycle_change {
    const char *id;
    int restore;
} lifecycle_change;

static int
change_experiment(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    lifecycle_change *change = ctx;
    experiment_query query = {.key = change->id};
    int rc = find_experiment(store, &query, err, err_len);
    if (rc < 0) {
        return rc;
    }
    int deleted = strcmp(query.found->lifecycle_stage, "deleted") == 0;
    int64_t deleted_at = query.found->last_update_time;
    mpb_experiment_free(&query.found);
    if (!change->restore && deleted) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Experiment %s is already deleted",
                              change->id);
    }
    if (change->restore && !deleted) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Cannot restore experiment %s: it is active", change->id);
    }
    int64_t now = mpb_wall_ms();
    rc = mpb__sql_exec(store, err, err_len,
                       "UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? "
                       "WHERE experiment_id = ?",
                       "sis", change->restore ? "active" : "deleted", now, change->id);
    if (rc == 0 && !change->restore) {
        rc = mpb__sql_exec(store, err, err_len,
                           "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? "
                           "WHERE experiment_id = ? AND lifecycle_stage = 'active'",
                           "is", now, change->id);
    } else if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL "
                           "WHERE experiment_id = ? AND lifecycle_stage = 'deleted' AND "
                           "deleted_time >= ?",
                           "si", change->id, deleted_at < 0 ? 0 : deleted_at);
    }
    return rc;
}

int
mpb__sqlstore_delete_experiment(void *backend, const char *experiment_id, char *err, size_t err_len)
{
    if (strcmp(experiment_id, MPB_DEFAULT_EXPERIMENT_ID) == 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Cannot delete the default experiment '0'. This is an internally "
                              "reserved experiment.");
    }
    lifecycle_change change = {experiment_id, 0};
    return mpb__sqlstore_transact(backend, 1, change_experiment, &change, err, err_len);
}

int
mpb__sqlstore_restore_experiment(void *backend, const char *experiment_id, char *err,
                                 size_t err_len)
{
    lifecycle_change change = {experiment_id, 1};
    return mpb__sqlstore_transact(backend, 1, change_experiment, &change, err, err_len);
}

typedef struct experiment_tag {
    const char *id;
    const char *key;
    const char *value;
} experiment_tag;

static int
set_experiment_tag(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    experiment_tag *tag = ctx;
    experiment_query query = {.key = tag->id};
    int rc = find_experiment(store, &query, err, err_len);
    if (rc < 0) {
        return rc;
    }
    int deleted = strcmp(query.found->lifecycle_stage, "deleted") == 0;
    mpb_experiment_free(&query.found);
    if (deleted) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "The experiment %s must be in the 'active' state. Current state is "
                              "deleted.",
                              tag->id);
    }
    return put_experiment_tag(store, tag->id, tag->key, tag->value, err, err_len);
}

int
mpb__sqlstore_set_experiment_tag(void *backend, const char *experiment_id, const char *key,
                                 const char *value, char *err, size_t err_len)
{
    experiment_tag tag = {experiment_id, key, value};
    return mpb__sqlstore_transact(backend, 1, set_experiment_tag, &tag, err, err_len);
}
