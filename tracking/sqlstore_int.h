/*
 * Internals shared by the SQLite store's sources (sqlstore.c: open, the ops
 * table, transactions and statement helpers; sqlstore_schema.c: the embedded
 * MLflow schema, a new database's rows, checking an existing one;
 * sqlstore_experiments.c: experiments; sqlstore_runs.c: runs and search;
 * sqlstore_log.c: log_batch, tags, metric history).
 *
 * Threading: one connection per store, used under the store's mutex: every
 *   slot runs its statements inside mpb__sqlstore_transact, which holds it.
 * Processes: other processes open their own connections; SQLite's file locks
 *   (WAL journal, busy timeout, BEGIN IMMEDIATE for writes) order them, and
 *   a transaction that still finds the database locked is rolled back and
 *   run again with backoff until the store's timeout.
 * Ownership: as tracking/store_int.h; strings from the mpb__sql_* getters
 *   are the caller's.
 */
#ifndef MPB_TRACKING_SQLSTORE_INT_H
#define MPB_TRACKING_SQLSTORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "mpbatch/store.h"

/* The alembic revision of tracking/mlflow_schema.sql, stamped into every
 * database this store creates. */
#define MPB__MLFLOW_SCHEMA_REVISION "7d34483879f0"

/* How MLflow stores +-inf in SQL (NaN is 0 with is_nan = 1). */
#define MPB__SQL_INF_VALUE 1.7976931348623157e308

typedef struct mpb__sqlstore {
    sqlite3 *db;
    pthread_mutex_t lock;
    char *path;          /* absolute path of the database file */
    char *artifact_root; /* new experiments keep artifacts in <artifact_root>/<id> */
    int64_t timeout_ms;  /* busy timeout, and how long a transaction is retried */
} mpb__sqlstore;

/* MLflow's schema as shipped in tracking/mlflow_schema.sql (NUL-terminated;
 * generated at build time from that file). */
extern const char mpb__mlflow_schema_sql[];

/* One unit of work run inside a transaction; returns 0 or a negative status.
 * MPB_EBUSY (from the mpb__sql_* helpers) means another process holds the
 * lock: the transaction is rolled back and the work run again. */
typedef int (*mpb__sql_work_fn)(mpb__sqlstore *store, void *ctx, char *err, size_t err_len);

/* Runs work in one transaction under the store's mutex: BEGIN IMMEDIATE when
 * `write`, else a deferred (read) transaction; commits on 0, rolls back
 * otherwise. Retries on lock contention with backoff until timeout_ms. */
int mpb__sqlstore_transact(mpb__sqlstore *store, int write, mpb__sql_work_fn work, void *ctx,
                           char *err, size_t err_len);

/* Prepares sql and binds its parameters from `types`, one letter each:
 * 's' const char * (NULL binds NULL), 'i' int64_t, 'd' double. */
int mpb__sql_prepare(mpb__sqlstore *store, sqlite3_stmt **out, char *err, size_t err_len,
                     const char *sql, const char *types, ...);

/* Steps a statement: 1 with a row, 0 when done, else a negative status
 * (MPB_EBUSY when locked) with the message in err. */
int mpb__sql_step(mpb__sqlstore *store, sqlite3_stmt *stmt, char *err, size_t err_len);

/* Prepares, binds, steps to the end and finalizes a statement. */
int mpb__sql_exec(mpb__sqlstore *store, char *err, size_t err_len, const char *sql,
                  const char *types, ...);

/* Column getters: a copy of the text ("" for NULL, caller frees); the
 * integer, or `if_null`. */
char *mpb__sql_text(sqlite3_stmt *stmt, int column);
int64_t mpb__sql_int(sqlite3_stmt *stmt, int column, int64_t if_null);

/* A status and message for a failed SQLite call (MPB_EBUSY when locked,
 * MPB_ESTORE otherwise). */
int mpb__sqlstore_error(mpb__sqlstore *store, int sqlite_rc, const char *what, char *err,
                        size_t err_len);

/* An experiment id as SQL holds it (a non-negative integer); MPB_EINVAL when
 * the text is not one (no experiment of this store has that id). */
int mpb__sqlstore_parse_experiment_id(const char *experiment_id, int64_t *out);

/* Metric values as MLflow stores them and back (NaN, +-inf). */
void mpb__sqlstore_metric_to_sql(double value, double *out_value, int *out_is_nan);
double mpb__sqlstore_metric_from_sql(double value, int is_nan);

/* Creates MLflow's schema and a new database's rows (alembic stamp, default
 * workspace, experiment 0) in an empty database, or checks that an existing
 * one has every column this store writes. Runs inside a write transaction. */
int mpb__sqlstore_prepare_schema(mpb__sqlstore *store, void *ctx, char *err, size_t err_len);

/* Reads one experiment with its tags inside the caller's transaction;
 * MPB_ENOTFOUND (MLflow's message) if none. *out is the caller's. */
int mpb__sqlstore_get_experiment_in_txn(mpb__sqlstore *store, const char *experiment_id,
                                        mpb_experiment **out, char *err, size_t err_len);

/* Reads a run whole (info, params, tags, latest metrics); MPB_ENOTFOUND if none. */
int mpb__sqlstore_load_run(mpb__sqlstore *store, const char *run_id, mpb_run *out, char *err,
                           size_t err_len);

/* Reads a run's lifecycle_stage (caller frees); MPB_ENOTFOUND if no such run. */
int mpb__sqlstore_run_stage(mpb__sqlstore *store, const char *run_id, char **out, char *err,
                            size_t err_len);

/* MPB_ENOTFOUND or MPB_EINVAL unless the run exists and is active. */
int mpb__sqlstore_check_active_run(mpb__sqlstore *store, const char *run_id, char *err,
                                   size_t err_len);

/* Sets (overwrites) one run tag; mlflow.runName also renames the run. */
int mpb__sqlstore_put_tag(mpb__sqlstore *store, const char *run_id, const char *key,
                          const char *value, char *err, size_t err_len);

/* The store contract's slots (tracking/store_int.h), by source file. */
int mpb__sqlstore_create_experiment(void *backend, const char *name, const char *artifact_location,
                                    const mpb_tag *tags, size_t n_tags, char **out_experiment_id,
                                    char *err, size_t err_len);
int mpb__sqlstore_get_experiment(void *backend, const char *experiment_id, mpb_experiment **out,
                                 char *err, size_t err_len);
int mpb__sqlstore_get_experiment_by_name(void *backend, const char *name, mpb_experiment **out,
                                         char *err, size_t err_len);
int mpb__sqlstore_search_experiments(void *backend, const mpb_search_opts *opts,
                                     mpb_experiment_page **out, char *err, size_t err_len);
int mpb__sqlstore_delete_experiment(void *backend, const char *experiment_id, char *err,
                                    size_t err_len);
int mpb__sqlstore_restore_experiment(void *backend, const char *experiment_id, char *err,
                                     size_t err_len);
int mpb__sqlstore_set_experiment_tag(void *backend, const char *experiment_id, const char *key,
                                     const char *value, char *err, size_t err_len);

int mpb__sqlstore_create_run(void *backend, const char *experiment_id, const char *user_id,
                             int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                             size_t n_tags, char **out_run_id, char *err, size_t err_len);
int mpb__sqlstore_update_run(void *backend, const char *run_id, mpb_run_status status,
                             int64_t end_time_ms, const char *run_name, char *err, size_t err_len);
int mpb__sqlstore_get_run(void *backend, const char *run_id, mpb_run **out, char *err,
                          size_t err_len);
int mpb__sqlstore_search_runs(void *backend, const char *const *experiment_ids,
                              size_t n_experiment_ids, const mpb_search_opts *opts,
                              mpb_run_page **out, char *err, size_t err_len);
int mpb__sqlstore_delete_run(void *backend, const char *run_id, char *err, size_t err_len);
int mpb__sqlstore_restore_run(void *backend, const char *run_id, char *err, size_t err_len);
/* tracking/sqlstore_purge.c */
int mpb__sqlstore_purge_run(void *backend, const char *run_id, char *err, size_t err_len);
int mpb__sqlstore_purge_experiment(void *backend, const char *experiment_id, char *err,
                                   size_t err_len);

int mpb__sqlstore_log_batch(void *backend, const char *run_id, const mpb_metric *metrics,
                            size_t n_metrics, const mpb_param *params, size_t n_params,
                            const mpb_tag *tags, size_t n_tags, char *err, size_t err_len);
int mpb__sqlstore_delete_tag(void *backend, const char *run_id, const char *key, char *err,
                             size_t err_len);
int mpb__sqlstore_get_metric_history(void *backend, const char *run_id, const char *key,
                                     mpb_metric_history **out, char *err, size_t err_len);

/* tracking/sqlstore_registry.c: the model registry */
int mpb__sqlstore_create_registered_model(void *backend, const char *name, const char *description,
                                          const mpb_tag *tags, size_t n_tags, char *err,
                                          size_t err_len);
int mpb__sqlstore_get_registered_model(void *backend, const char *name, mpb_registered_model **out,
                                       char *err, size_t err_len);
int mpb__sqlstore_list_registered_models(void *backend, mpb_registered_model_list **out, char *err,
                                         size_t err_len);
int mpb__sqlstore_delete_registered_model(void *backend, const char *name, char *err,
                                          size_t err_len);
int mpb__sqlstore_create_model_version(void *backend, const char *name, const char *source,
                                       const char *run_id, mpb_model_version **out, char *err,
                                       size_t err_len);
int mpb__sqlstore_get_model_version(void *backend, const char *name, int64_t version,
                                    mpb_model_version **out, char *err, size_t err_len);
int mpb__sqlstore_list_model_versions(void *backend, const char *name, mpb_model_version_list **out,
                                      char *err, size_t err_len);
int mpb__sqlstore_set_model_alias(void *backend, const char *name, const char *alias,
                                  int64_t version, char *err, size_t err_len);
int mpb__sqlstore_delete_model_alias(void *backend, const char *name, const char *alias, char *err,
                                     size_t err_len);
int mpb__sqlstore_get_model_version_by_alias(void *backend, const char *name, const char *alias,
                                             mpb_model_version **out, char *err, size_t err_len);

#endif
