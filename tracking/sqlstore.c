/*
 * SQLite store (tracking URI `sqlite:///relative.db` or `sqlite:////abs.db`,
 * SQLAlchemy's form): MLflow's own SQLite schema, so `mlflow ui
 * --backend-store-uri sqlite:///mlflow.db` reads what this writes. This file:
 * open, the ops table, transactions and statement helpers; the schema in
 * sqlstore_schema.c, experiments in sqlstore_experiments.c, runs and search
 * in sqlstore_runs.c, logging in sqlstore_log.c.
 *
 * DESIGN
 * Who runs where: every call runs on the caller's thread, on the store's one
 *   connection, under the store's mutex; there is no background thread.
 * What flows: SQL on MLflow's core tables only (experiments, experiment_tags,
 *   runs, tags, params, metrics, latest_metrics). Connection settings as
 *   MLflow's (foreign_keys=ON, case_sensitive_like, a busy timeout), plus the
 *   WAL journal for a database made here, so readers never wait for a
 *   writer (one made by others keeps its journal mode). Every call is one
 *   transaction; writes start with BEGIN IMMEDIATE, so two processes never
 *   both hold a read lock they then try to upgrade.
 * On failure: a transaction that fails is rolled back whole (a batch is all
 *   or nothing). One that finds the database locked past the busy timeout,
 *   or loses a race SQLite reports as SQLITE_BUSY, is rolled back and run
 *   again after a growing pause (1 ms doubling to 100 ms, with jitter) until
 *   the store's timeout has passed; then the call fails with MPB_EBUSY.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/fs_util.h"
#include "tracking/sqlstore_int.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

#define DEFAULT_TIMEOUT_MS 20000 /* MLflow's busy_timeout */
#define DEFAULT_ARTIFACT_ROOT "mlruns"
#define MAX_BACKOFF_NS (100 * 1000 * 1000)

int
mpb__sqlstore_error(mpb__sqlstore *store, int sqlite_rc, const char *what, char *err,
                    size_t err_len)
{
    int primary = sqlite_rc & 0xff;
    int status = primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? MPB_EBUSY : MPB_ESTORE;
    return mpb__set_error(err, err_len, status, "%s: %s (%s)", store->path, what,
                          store->db != NULL ? sqlite3_errmsg(store->db)
                                            : sqlite3_errstr(sqlite_rc));
}

static int
bind_args(mpb__sqlstore *store, sqlite3_stmt *stmt, const char *types, va_list args, char *err,
          size_t err_len)
{
    for (int i = 0; types != NULL && types[i] != '\0'; i++) {
        int rc = SQLITE_OK;
        if (types[i] == 's') {
            const char *text = va_arg(args, const char *);
            rc = text ? sqlite3_bind_text(stmt, i + 1, text, -1, SQLITE_TRANSIENT)
                      : sqlite3_bind_null(stmt, i + 1);
        } else if (types[i] == 'i') {
            rc = sqlite3_bind_int64(stmt, i + 1, va_arg(args, int64_t));
        } else {
            MPB_ASSERT(types[i] == 'd');
            rc = sqlite3_bind_double(stmt, i + 1, va_arg(args, double));
        }
        if (rc != SQLITE_OK) {
            return mpb__sqlstore_error(store, rc, "bind", err, err_len);
        }
    }
    return 0;
}

static int
prepare_va(mpb__sqlstore *store, sqlite3_stmt **out, char *err, size_t err_len, const char *sql,
           const char *types, va_list args)
{
    *out = NULL;
    int rc = sqlite3_prepare_v2(store->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        return mpb__sqlstore_error(store, rc, "prepare", err, err_len);
    }
    rc = bind_args(store, *out, types, args, err, err_len);
    if (rc < 0) {
        sqlite3_finalize(*out);
        *out = NULL;
    }
    return rc;
}

int
mpb__sql_prepare(mpb__sqlstore *store, sqlite3_stmt **out, char *err, size_t err_len,
                 const char *sql, const char *types, ...)
{
    va_list args;
    va_start(args, types);
    int rc = prepare_va(store, out, err, err_len, sql, types, args);
    va_end(args);
    return rc;
}

int
mpb__sql_step(mpb__sqlstore *store, sqlite3_stmt *stmt, char *err, size_t err_len)
{
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        return 1;
    }
    if (rc == SQLITE_DONE) {
        return 0;
    }
    return mpb__sqlstore_error(store, rc, "step", err, err_len);
}

int
mpb__sql_exec(mpb__sqlstore *store, char *err, size_t err_len, const char *sql, const char *types,
              ...)
{
    sqlite3_stmt *stmt = NULL;
    va_list args;
    va_start(args, types);
    int rc = prepare_va(store, &stmt, err, err_len, sql, types, args);
    va_end(args);
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

char *
mpb__sql_text(sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    return mpb_strdup(text != NULL ? (const char *)text : "");
}

int64_t
mpb__sql_int(sqlite3_stmt *stmt, int column, int64_t if_null)
{
    if (sqlite3_column_type(stmt, column) == SQLITE_NULL) {
        return if_null;
    }
    return sqlite3_column_int64(stmt, column);
}

int
mpb__sqlstore_parse_experiment_id(const char *experiment_id, int64_t *out)
{
    char canonical[24] = "";
    if (mpb__parse_int64(experiment_id, out) == 0 && *out >= 0) {
        snprintf(canonical, sizeof canonical, "%lld", (long long)*out);
    }
    return strcmp(canonical, experiment_id) == 0 ? 0 : MPB_EINVAL; /* "007" is not 7 */
}

void
mpb__sqlstore_metric_to_sql(double value, double *out_value, int *out_is_nan)
{
    *out_is_nan = isnan(value) != 0;
    *out_value = isnan(value)   ? 0.0
                 : isinf(value) ? (value > 0 ? MPB__SQL_INF_VALUE : -MPB__SQL_INF_VALUE)
                                : value;
}

double
mpb__sqlstore_metric_from_sql(double value, int is_nan)
{
    if (is_nan) {
        return NAN;
    }
    if (value == MPB__SQL_INF_VALUE || value == -MPB__SQL_INF_VALUE) {
        return value > 0 ? INFINITY : -INFINITY;
    }
    return value;
}

/* ---- Transactions ---- */

static void
backoff_pause(int64_t *pause_ns)
{
    uint32_t jitter = 0;
    (void)mpb__random_bytes(&jitter, sizeof jitter);
    int64_t ns = *pause_ns + (int64_t)(jitter % (uint32_t)(*pause_ns + 1));
    struct timespec pause = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&pause, NULL);
    *pause_ns = *pause_ns * 2 > MAX_BACKOFF_NS ? MAX_BACKOFF_NS : *pause_ns * 2;
}

static int
run_once(mpb__sqlstore *store, int write, mpb__sql_work_fn work, void *ctx, char *err,
         size_t err_len)
{
    int rc = mpb__sql_exec(store, err, err_len, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL);
    if (rc == 0) {
        rc = work(store, ctx, err, err_len);
    }
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len, "COMMIT", NULL);
    }
    if (rc < 0 && !sqlite3_get_autocommit(store->db)) {
        (void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int
mpb__sqlstore_transact(mpb__sqlstore *store, int write, mpb__sql_work_fn work, void *ctx, char *err,
                       size_t err_len)
{
    int64_t deadline = mpb_now_ns() + store->timeout_ms * 1000000;
    int64_t pause_ns = 1000000;
    pthread_mutex_lock(&store->lock);
    int rc = run_once(store, write, work, ctx, err, err_len);
    while (rc == MPB_EBUSY && mpb_now_ns() < deadline) {
        backoff_pause(&pause_ns);
        rc = run_once(store, write, work, ctx, err, err_len);
    }
    pthread_mutex_unlock(&store->lock);
    if (rc == MPB_EBUSY) {
        rc = mpb__set_error(err, err_len, MPB_EBUSY,
                            "%s stayed locked by another process for %lld ms; try again or raise "
                            "the store's timeout",
                            store->path, (long long)store->timeout_ms);
    }
    return rc;
}

/* ---- Open and close ---- */

/* The database path of a sqlite:/// URI, made absolute; NULL when the URI
 * names none (in-memory, a host, query options). Caller frees. */
static char *
uri_to_path(const char *uri)
{
    const char *prefix = "sqlite:///";
    if (strncasecmp(uri, prefix, strlen(prefix)) != 0) {
        return NULL;
    }
    const char *path = uri + strlen(prefix);
    if (*path == '\0' || strchr(path, '?') != NULL) {
        return NULL;
    }
    if (path[0] == '/') {
        return mpb_strdup(path);
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        return NULL;
    }
    return mpb__path_join(cwd, strncmp(path, "./", 2) == 0 ? path + 2 : path);
}

/* An absolute folder for a relative artifact root; URIs and absolute paths as given. */
static char *
absolute_root(const char *root)
{
    char cwd[PATH_MAX];
    if (root[0] == '/' || strchr(root, ':') != NULL || getcwd(cwd, sizeof cwd) == NULL) {
        return mpb_strdup(root);
    }
    return mpb__path_join(cwd, strncmp(root, "./", 2) == 0 ? root + 2 : root);
}

static void
sqlstore_close(void *backend)
{
    mpb__sqlstore *store = backend;
    if (store == NULL) {
        return;
    }
    sqlite3_close_v2(store->db);
    pthread_mutex_destroy(&store->lock);
    free(store->path);
    free(store->artifact_root);
    free(store);
}

static int
set_wal(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    (void)ctx;
    return mpb__sql_exec(store, err, err_len, "PRAGMA journal_mode=WAL", NULL);
}

/* Connection settings, then for a database this store creates the WAL
 * journal (outside any transaction, retried while another process holds
 * the file; a database someone else made keeps its journal mode, which
 * the file records for good), then the schema. */
static int
connect_db(mpb__sqlstore *store, char *err, size_t err_len)
{
    struct stat st;
    int fresh = stat(store->path, &st) != 0 || st.st_size == 0;
    int rc =
        sqlite3_open_v2(store->path, &store->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        return mpb__sqlstore_error(store, rc, "cannot open the database", err, err_len);
    }
    sqlite3_extended_result_codes(store->db, 1);
    sqlite3_busy_timeout(store->db, (int)store->timeout_ms);
    rc = mpb__sql_exec(store, err, err_len, "PRAGMA foreign_keys=ON", NULL);
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len, "PRAGMA case_sensitive_like=true", NULL);
    }
    int64_t deadline = mpb_now_ns() + store->timeout_ms * 1000000;
    int64_t pause_ns = 1000000;
    while (rc == 0 && fresh && (rc = set_wal(store, NULL, err, err_len)) == MPB_EBUSY &&
           mpb_now_ns() < deadline) {
        backoff_pause(&pause_ns);
        rc = 0;
    }
    if (rc == 0) {
        rc = mpb__sqlstore_transact(store, 1, mpb__sqlstore_prepare_schema, NULL, err, err_len);
    }
    return rc;
}

static int
sqlstore_open(const char *uri, const mpb_store_open_opts *opts, void **out_backend, char **out_uri,
              char *err, size_t err_len)
{
    char *path = uri_to_path(uri);
    if (path == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "tracking URI '%s' names no database file (use "
                              "sqlite:///relative/path.db or sqlite:////absolute/path.db)",
                              uri);
    }
    int rc = mpb__fs_mkdir_parent(path);
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot create the folder of %s: %s", path,
                            mpb_strerror(rc));
        free(path);
        return rc;
    }
    mpb__sqlstore *store = mpb_calloc(1, sizeof *store);
    pthread_mutex_init(&store->lock, NULL);
    store->path = path;
    store->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    store->artifact_root = absolute_root(
        opts->artifact_root && *opts->artifact_root ? opts->artifact_root : DEFAULT_ARTIFACT_ROOT);
    rc = connect_db(store, err, err_len);
    if (rc < 0) {
        sqlstore_close(store);
        return rc;
    }
    *out_backend = store;
    *out_uri = mpb_asprintf("sqlite:///%s", store->path);
    return 0;
}

/* ---- Artifacts: local artifact URIs, as the file store's ---- */

typedef struct artifact_uri_query {
    const char *run_id;
    char *uri;
} artifact_uri_query;

static int
read_artifact_uri(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    artifact_uri_query *query = ctx;
    sqlite3_stmt *stmt = NULL;
    int rc =
        mpb__sql_prepare(store, &stmt, err, err_len,
                         "SELECT artifact_uri FROM runs WHERE run_uuid = ?", "s", query->run_id);
    if (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        free(query->uri);
        query->uri = mpb__sql_text(stmt, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", query->run_id);
    }
    sqlite3_finalize(stmt);
    return rc;
}

static int
run_artifact_uri(void *backend, const char *run_id, char **out, char *err, size_t err_len)
{
    artifact_uri_query query = {.run_id = run_id};
    int rc = mpb__sqlstore_transact(backend, 0, read_artifact_uri, &query, err, err_len);
    if (rc < 0) {
        free(query.uri);
        return rc;
    }
    *out = query.uri;
    return 0;
}

static const mpb__store_ops sqlstore_ops = {
    .name = "sqlite",
    .open = sqlstore_open,
    .close = sqlstore_close,
    .create_experiment = mpb__sqlstore_create_experiment,
    .get_experiment = mpb__sqlstore_get_experiment,
    .get_experiment_by_name = mpb__sqlstore_get_experiment_by_name,
    .search_experiments = mpb__sqlstore_search_experiments,
    .delete_experiment = mpb__sqlstore_delete_experiment,
    .restore_experiment = mpb__sqlstore_restore_experiment,
    .set_experiment_tag = mpb__sqlstore_set_experiment_tag,
    .create_run = mpb__sqlstore_create_run,
    .update_run = mpb__sqlstore_update_run,
    .get_run = mpb__sqlstore_get_run,
    .search_runs = mpb__sqlstore_search_runs,
    .delete_run = mpb__sqlstore_delete_run,
    .restore_run = mpb__sqlstore_restore_run,
    .log_batch = mpb__sqlstore_log_batch,
    .delete_tag = mpb__sqlstore_delete_tag,
    .get_metric_history = mpb__sqlstore_get_metric_history,
    .run_artifact_uri = run_artifact_uri,
    .purge_run = mpb__sqlstore_purge_run,
    .purge_experiment = mpb__sqlstore_purge_experiment,
    .create_registered_model = mpb__sqlstore_create_registered_model,
    .get_registered_model = mpb__sqlstore_get_registered_model,
    .list_registered_models = mpb__sqlstore_list_registered_models,
    .delete_registered_model = mpb__sqlstore_delete_registered_model,
    .create_model_version = mpb__sqlstore_create_model_version,
    .get_model_version = mpb__sqlstore_get_model_version,
    .list_model_versions = mpb__sqlstore_list_model_versions,
    .set_model_alias = mpb__sqlstore_set_model_alias,
    .delete_model_alias = mpb__sqlstore_delete_model_alias,
    .get_model_version_by_alias = mpb__sqlstore_get_model_version_by_alias,
};

const mpb__store_ops *
mpb__sqlstore_backend(void)
{
    return &sqlstore_ops;
}
