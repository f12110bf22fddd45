/*
 * SQLite store: runs (create, read, update, delete, restore, search). Status
 * is stored by name ("RUNNING", ...), source_type 'UNKNOWN' and the legacy
 * source fields '' as MLflow's SQL store writes them; a run's latest metrics
 * come from latest_metrics.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/search.h"
#include "tracking/sqlstore_int.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

static int
read_run_info(mpb__sqlstore *store, const char *run_id, mpb_run_info *out, char *err,
              size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT run_uuid, experiment_id, name, user_id, status, start_time, "
                              "end_time, artifact_uri, lifecycle_stage, deleted_time FROM runs "
                              "WHERE run_uuid = ?",
                              "s", run_id);
    if (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 0) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
    }
    if (rc == 1) {
        rc = 0;
        char *status = mpb__sql_text(stmt, 4);
        if (mpb_run_status_parse(status, &out->status) < 0) {
            rc = mpb__set_error(err, err_len, MPB_ESTORE, "%s: run %s has unknown status '%s'",
                                store->path, run_id, status);
        }
        free(status);
    }
    if (rc == 0) {
        out->run_id = mpb__sql_text(stmt, 0);
        out->experiment_id = mpb__sql_text(stmt, 1);
        out->run_name = mpb__sql_text(stmt, 2);
        out->user_id = mpb__sql_text(stmt, 3);
        out->start_time = mpb__sql_int(stmt, 5, -1);
        out->end_time = mpb__sql_int(stmt, 6, -1);
        out->artifact_uri = mpb__sql_text(stmt, 7);
        out->lifecycle_stage = mpb__sql_text(stmt, 8);
        out->deleted_time = mpb__sql_int(stmt, 9, -1);
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* Reads key/value rows of a run's params or tags. */
static int
read_values(mpb__sqlstore *store, const char *sql, const char *run_id, mpb_tag **out, size_t *out_n,
            char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len, sql, "s", run_id);
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        *out = mpb_realloc(*out, (*out_n + 1) * sizeof **out);
        (*out)[*out_n].key = mpb__sql_text(stmt, 0);
        (*out)[*out_n].value = mpb__sql_text(stmt, 1);
        (*out_n)++;
        rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static int
read_latest_metrics(mpb__sqlstore *store, mpb_run *run, char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT key, value, timestamp, step, is_nan FROM latest_metrics "
                              "WHERE run_uuid = ? ORDER BY key",
                              "s", run->info.run_id);
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        run->metrics = mpb_realloc(run->metrics, (run->n_metrics + 1) * sizeof *run->metrics);
        run->metrics[run->n_metrics++] = (mpb_metric){
            .key = mpb__sql_text(stmt, 0),
            .value = mpb__sqlstore_metric_from_sql(sqlite3_column_double(stmt, 1),
                                                   sqlite3_column_int(stmt, 4)),
            .timestamp_ms = mpb__sql_int(stmt, 2, 0),
            .step = mpb__sql_int(stmt, 3, 0),
        };
        rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

int
mpb__sqlstore_load_run(mpb__sqlstore *store, const char *run_id, mpb_run *out, char *err,
                       size_t err_len)
{
    memset(out, 0, sizeof *out);
    int rc = read_run_info(store, run_id, &out->info, err, err_len);
    if (rc == 0) {
        rc = read_values(store, "SELECT key, value FROM params WHERE run_uuid = ? ORDER BY key",
                         run_id, (mpb_tag **)&out->params, &out->n_params, err, err_len);
    }
    if (rc == 0) {
        rc = read_values(store, "SELECT key, value FROM tags WHERE run_uuid = ? ORDER BY key",
                         run_id, &out->tags, &out->n_tags, err, err_len);
    }
    if (rc == 0) {
        rc = read_latest_metrics(store, out, err, err_len);
    }
    if (rc < 0) {
        mpb__run_clear(out);
    }
    return rc;
}

int
mpb__sqlstore_run_stage(mpb__sqlstore *store, const char *run_id, char **out, char *err,
                        size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", "s", run_id);
    if (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 0) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
    }
    if (rc == 1) {
        *out = mpb__sql_text(stmt, 0);
        rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

int
mpb__sqlstore_check_active_run(mpb__sqlstore *store, const char *run_id, char *err, size_t err_len)
{
    char *stage = NULL;
    int rc = mpb__sqlstore_run_stage(store, run_id, &stage, err, err_len);
    if (rc == 0 && strcmp(stage, "active") != 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "The run %s must be in the 'active' state. Current state is %s.",
                            run_id, stage);
    }
    free(stage);
    return rc;
}

int
mpb__sqlstore_put_tag(mpb__sqlstore *store, const char *run_id, const char *key, const char *value,
                      char *err, size_t err_len)
{
    int rc = mpb__sql_exec(store, err, err_len,
                           "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
                           "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
                           "sss", key, value, run_id);
    if (rc == 0 && strcmp(key, MPB_TAG_RUN_NAME) == 0) {
        rc = mpb__sql_exec(store, err, err_len, "UPDATE runs SET name = ? WHERE run_uuid = ?", "ss",
                           value, run_id);
    }
    return rc;
}

typedef struct new_run {
    const char *experiment_id;
    const char *user_id;
    int64_t start_time_ms;
    const char *run_name;
    const mpb_tag *tags;
    size_t n_tags;
    char run_id[33];
} new_run;

static int
insert_run(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    new_run *create = ctx;
    mpb_experiment *experiment = NULL;
    int rc = mpb__sqlstore_get_experiment_in_txn(store, create->experiment_id, &experiment, err,
                                                 err_len);
    if (rc == 0 && strcmp(experiment->lifecycle_stage, "active") != 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "Could not create run under non-active experiment with ID %s.",
                            create->experiment_id);
    }
    if (rc == 0) {
        rc = mpb__uuid4_hex(create->run_id);
    }
    if (rc < 0) {
        mpb_experiment_free(&experiment);
        return rc;
    }
    char *artifact_uri =
        mpb_asprintf("%s/%s/artifacts", experiment->artifact_location, create->run_id);
    rc = mpb__sql_exec(store, err, err_len,
                       "INSERT INTO runs (run_uuid, name, source_type, source_name, "
                       "entry_point_name, user_id, status, start_time, end_time, source_version, "
                       "lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
                       "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, "
                       "?, NULL)",
                       "sssiss", create->run_id, create->run_name, create->user_id,
                       create->start_time_ms, artifact_uri, experiment->experiment_id);
    for (size_t i = 0; rc == 0 && i < create->n_tags; i++) {
        rc = mpb__sqlstore_put_tag(store, create->run_id, create->tags[i].key,
                                   create->tags[i].value, err, err_len);
    }
    free(artifact_uri);
    mpb_experiment_free(&experiment);
    return rc;
}

int
mpb__sqlstore_create_run(void *backend, const char *experiment_id, const char *user_id,
                         int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                         size_t n_tags, char **out_run_id, char *err, size_t err_len)
{
    new_run create = {experiment_id, user_id, start_time_ms, run_name, tags, n_tags, ""};
    int rc = mpb__sqlstore_transact(backend, 1, insert_run, &create, err, err_len);
    if (rc == 0 && out_run_id != NULL) {
        *out_run_id = mpb_strdup(create.run_id);
    }
    return rc;
}

typedef struct run_update {
    const char *run_id;
    mpb_run_status status;
    int64_t end_time_ms;
    const char *run_name;
} run_update;

static int
update_run(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    run_update *update = ctx;
    int rc = mpb__sqlstore_check_active_run(store, update->run_id, err, err_len);
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "UPDATE runs SET status = ?, end_time = CASE WHEN ? < 0 THEN end_time "
                           "ELSE ? END WHERE run_uuid = ?",
                           "siis", mpb_run_status_name(update->status), update->end_time_ms,
                           update->end_time_ms, update->run_id);
    }
    if (rc == 0 && update->run_name != NULL) {
        rc = mpb__sqlstore_put_tag(store, update->run_id, MPB_TAG_RUN_NAME, update->run_name, err,
                                   err_len);
    }
    return rc;
}

int
mpb__sqlstore_update_run(void *backend, const char *run_id, mpb_run_status status,
                         int64_t end_time_ms, const char *run_name, char *err, size_t err_len)
{
    run_update update = {run_id, status, end_time_ms, run_name};
    return mpb__sqlstore_transact(backend, 1, update_run, &update, err, err_len);
}

typedef struct run_query {
    const char *run_id;
    mpb_run *run;
} run_query;

static int
load_one_run(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    run_query *query = ctx;
    mpb__run_clear(query->run);
    return mpb__sqlstore_load_run(store, query->run_id, query->run, err, err_len);
}

int
mpb__sqlstore_get_run(void *backend, const char *run_id, mpb_run **out, char *err, size_t err_len)
{
    run_query query = {run_id, mpb_calloc(1, sizeof(mpb_run))};
    int rc = mpb__sqlstore_transact(backend, 0, load_one_run, &query, err, err_len);
    if (rc < 0) {
        mpb_run_free(&query.run);
        return rc;
    }
    *out = query.run;
    return 0;
}

typedef struct run_lifecycle {
    const char *run_id;
    int delete;
} run_lifecycle;

static int
change_run(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    run_lifecycle *change = ctx;
    char *stage = NULL;
    int rc = mpb__sqlstore_run_stage(store, change->run_id, &stage, err, err_len);
    free(stage);
    if (rc == 0 && change->delete) {
        rc = mpb__sql_exec(store, err, err_len,
                           "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? "
                           "WHERE run_uuid = ? AND lifecycle_stage = 'active'",
                           "is", mpb_wall_ms(), change->run_id);
    } else if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL "
                           "WHERE run_uuid = ?",
                           "s", change->run_id);
    }
    return rc;
}

int
mpb__sqlstore_delete_run(void *backend, const char *run_id, char *err, size_t err_len)
{
    run_lifecycle change = {run_id, 1};
    return mpb__sqlstore_transact(backend, 1, change_run, &change, err, err_len);
}

int
mpb__sqlstore_restore_run(void *backend, const char *run_id, char *err, size_t err_len)
{
    run_lifecycle change = {run_id, 0};
    return mpb__sqlstore_transact(backend, 1, change_run, &change, err, err_len);
}

/* The candidate runs of a search: every run of the named experiments. */
typedef struct run_candidates {
    const char *const *experiment_ids;
    size_t n_experiment_ids;
    mpb_run *runs;
    size_t n;
} run_candidates;

static int
load_experiment_runs(mpb__sqlstore *store, const char *experiment_id, run_candidates *found,
                     char *err, size_t err_len)
{
    mpb_experiment *experiment = NULL;
    int rc = mpb__sqlstore_get_experiment_in_txn(store, experiment_id, &experiment, err, err_len);
    mpb_experiment_free(&experiment);
    sqlite3_stmt *stmt = NULL;
    if (rc == 0) {
        rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT run_uuid FROM runs WHERE experiment_id = ?", "s",
                              experiment_id);
    }
    char **ids = NULL;
    size_t n_ids = 0;
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        ids = mpb_realloc(ids, (n_ids + 1) * sizeof *ids);
        ids[n_ids++] = mpb__sql_text(stmt, 0);
        rc = 0;
    }
    sqlite3_finalize(stmt);
    found->runs = mpb_realloc(found->runs, (found->n + n_ids + 1) * sizeof *found->runs);
    for (size_t i = 0; i < n_ids; i++) {
        if (rc == 0) {
            rc = mpb__sqlstore_load_run(store, ids[i], &found->runs[found->n], err, err_len);
            found->n += rc == 0;
        }
        free(ids[i]);
    }
    free(ids);
    return rc;
}

static int
load_candidates(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    run_candidates *found = ctx;
    for (size_t i = 0; i < found->n; i++) {
        mpb__run_clear(&found->runs[i]);
    }
    found->n = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < found->n_experiment_ids; i++) {
        rc = load_experiment_runs(store, found->experiment_ids[i], found, err, err_len);
    }
    return rc;
}

/* Candidate runs come from SQL by experiment; the filter, order and paging
 * are the shared in-memory evaluator's (tracking/search_eval.c), not
 * translated to SQL, so both stores answer every search alike. */
int
mpb__sqlstore_search_runs(void *backend, const char *const *experiment_ids, size_t n_experiment_ids,
                          const mpb_search_opts *opts, mpb_run_page **out, char *err,
                          size_t err_len)
{
    size_t offset = 0;
    int rc = mpb__page_token_decode(opts ? opts->page_token : NULL, &offset, err, err_len);
    run_candidates found = {experiment_ids, n_experiment_ids, mpb_calloc(1, sizeof(mpb_run)), 0};
    if (rc == 0) {
        rc = mpb__sqlstore_transact(backend, 0, load_candidates, &found, err, err_len);
    }
    if (rc < 0) {
        for (size_t i = 0; i < found.n; i++) {
            mpb__run_clear(&found.runs[i]);
        }
        free(found.runs);
        return rc;
    }
    size_t next = 0;
    rc = mpb__search_runs_in_memory(found.runs, found.n, opts, offset, out, &next, err, err_len);
    if (rc == 0 && next > 0) {
        (*out)->next_page_token = mpb__page_token_encode(next);
    }
    return rc;
}
