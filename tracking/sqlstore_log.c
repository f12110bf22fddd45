/*
 * SQLite store: log_batch, tags, metric history. A batch is one transaction
 * (BEGIN IMMEDIATE): the run must be active and no param may change value,
 * else nothing of it is written. Metrics go to `metrics` (NaN as 0 with
 * is_nan = 1, +-inf as +-1.7976931348623157e308, as MLflow) and
 * `latest_metrics` keeps, per key, the value with the greatest step, then
 * timestamp, then value (MLflow's rule). A metric logged twice with the same
 * key, timestamp, step and value is one row (the table's primary key), as in
 * MLflow's SQL store.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/sqlstore_int.h"
#include "tracking/store_int.h"

typedef struct batch {
    const char *run_id;
    const mpb_metric *metrics;
    size_t n_metrics;
    const mpb_param *params;
    size_t n_params;
    const mpb_tag *tags;
    size_t n_tags;
} batch;

/* Inserts a param unless it is there with the same value; a different value
 * is MLflow's "Changing param values is not allowed" error. */
static int
put_param(mpb__sqlstore *store, const char *run_id, const mpb_param *param, char *err,
          size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT value FROM params WHERE key = ? AND run_uuid = ?", "ss",
                              param->key, run_id);
    if (rc == 0) {
        rc = mpb__sql_step(store, stmt, err, err_len);
    }
    if (rc == 1) {
        const char *old = (const char *)sqlite3_column_text(stmt, 0);
        rc = old != NULL && strcmp(old, param->value) == 0
                 ? 0
                 : mpb__set_error(err, err_len, MPB_EINVAL,
                                  "Changing param values is not allowed. Param with key='%s' was "
                                  "already logged with value='%.200s' for run ID='%s'. Attempted "
                                  "logging new value '%.200s'.",
                                  param->key, old ? old : "", run_id, param->value);
        sqlite3_finalize(stmt);
        return rc;
    }
    sqlite3_finalize(stmt);
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", "sss",
                           param->key, param->value, run_id);
    }
    return rc;
}

static int
put_metric(mpb__sqlstore *store, const char *run_id, const mpb_metric *metric, char *err,
           size_t err_len)
{
    double value = 0;
    int is_nan = 0;
    mpb__sqlstore_metric_to_sql(metric->value, &value, &is_nan);
    int rc = mpb__sql_exec(store, err, err_len,
                           "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, "
                           "is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                           "sdisii", metric->key, value, metric->timestamp_ms, run_id, metric->step,
                           (int64_t)is_nan);
    if (rc == 0) {
        rc = mpb__sql_exec(
            store, err, err_len,
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key, run_uuid) DO UPDATE SET "
            "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
            "is_nan = excluded.is_nan WHERE excluded.step > latest_metrics.step OR "
            "(excluded.step = latest_metrics.step AND (excluded.timestamp > "
            "coalesce(latest_metrics.timestamp, -1) OR (excluded.timestamp = "
            "latest_metrics.timestamp AND excluded.value > latest_metrics.value)))",
            "sdiiis", metric->key, value, metric->timestamp_ms, metric->step, (int64_t)is_nan,
            run_id);
    }
    return rc;
}

static int
write_batch(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    batch *b = ctx;
    int rc = mpb__sqlstore_check_active_run(store, b->run_id, err, err_len);
    for (size_t i = 0; rc == 0 && i < b->n_params; i++) {
        rc = put_param(store, b->run_id, &b->params[i], err, err_len);
    }
    for (size_t i = 0; rc == 0 && i < b->n_tags; i++) {
        rc =
            mpb__sqlstore_put_tag(store, b->run_id, b->tags[i].key, b->tags[i].value, err, err_len);
    }
    for (size_t i = 0; rc == 0 && i < b->n_metrics; i++) {
        rc = put_metric(store, b->run_id, &b->metrics[i], err, err_len);
    }
    return rc;
}

int
mpb__sqlstore_log_batch(void *backend, const char *run_id, const mpb_metric *metrics,
                        size_t n_metrics, const mpb_param *params, size_t n_params,
                        const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    batch b = {run_id, metrics, n_metrics, params, n_params, tags, n_tags};
    return mpb__sqlstore_transact(backend, 1, write_batch, &b, err, err_len);
}

typedef struct tag_removal {
    const char *run_id;
    const char *key;
} tag_removal;

static int
remove_tag(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    tag_removal *removal = ctx;
    int rc = mpb__sqlstore_check_active_run(store, removal->run_id, err, err_len);
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len, "DELETE FROM tags WHERE key = ? AND run_uuid = ?",
                           "ss", removal->key, removal->run_id);
    }
    if (rc == 0 && sqlite3_changes(store->db) == 0) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "No tag with name: %s in run with id %s",
                            removal->key, removal->run_id);
    }
    return rc;
}

int
mpb__sqlstore_delete_tag(void *backend, const char *run_id, const char *key, char *err,
                         size_t err_len)
{
    tag_removal removal = {run_id, key};
    return mpb__sqlstore_transact(backend, 1, remove_tag, &removal, err, err_len);
}

static int
read_history(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    mpb_metric_history *history = ctx;
    history->n_metrics = 0;
    char *stage = NULL;
    int rc = mpb__sqlstore_run_stage(store, history->run_id, &stage, err, err_len);
    free(stage);
    sqlite3_stmt *stmt = NULL;
    if (rc == 0) {
        /* rowid order is the order the values were logged in. */
        rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT value, timestamp, step, is_nan FROM metrics "
                              "WHERE run_uuid = ? AND key = ? ORDER BY rowid",
                              "ss", history->run_id, history->key);
    }
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        history->metrics =
            mpb_realloc(history->metrics, (history->n_metrics + 1) * sizeof *history->metrics);
        history->metrics[history->n_metrics++] = (mpb_metric){
            .key = history->key,
            .value = mpb__sqlstore_metric_from_sql(sqlite3_column_double(stmt, 0),
                                                   sqlite3_column_int(stmt, 3)),
            .timestamp_ms = mpb__sql_int(stmt, 1, 0),
            .step = mpb__sql_int(stmt, 2, 0),
        };
        rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

int
mpb__sqlstore_get_metric_history(void *backend, const char *run_id, const char *key,
                                 mpb_metric_history **out, char *err, size_t err_len)
{
    mpb_metric_history *history = mpb_calloc(1, sizeof *history);
    history->run_id = mpb_strdup(run_id);
    history->key = mpb_strdup(key);
    int rc = mpb__sqlstore_transact(backend, 0, read_history, history, err, err_len);
    if (rc < 0) {
        mpb_metric_history_free(&history);
        return rc;
    }
    *out = history;
    return 0;
}
