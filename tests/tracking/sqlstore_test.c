/*
 * The SQLite store as MLflow sees its database: a new database holds exactly
 * MLflow's schema (tracking/mlflow_schema.sql) and rows; a database built from
 * that schema by MLflow's own steps is written through the core tables; a
 * database missing a column is refused by name; values, statuses and
 * latest_metrics are checked with SQL; four processes log 20000 metrics each
 * into one database and nothing is lost; `mpb runs` reads it.
 * (MLflow itself cannot be installed here: compatibility is checked against
 * the schema dump, docs/tracking.md says so.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <sqlite3.h>

#include "helpers.h"
#include "tracking/sqlstore_int.h"

typedef struct sql_fixture {
    char *dir;
    char *db_path;
    char *uri;
    char err[1024];
} sql_fixture;

static int
setup(void **state)
{
    sql_fixture *f = mpb_calloc(1, sizeof *f);
    f->dir = th_tempdir_fast();
    f->db_path = th_pathf("%s/mlflow.db", f->dir);
    f->uri = th_pathf("sqlite:///%s", f->db_path);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    sql_fixture *f = *state;
    th_cleanup(&f->dir);
    free(f->db_path);
    free(f->uri);
    free(f);
    return 0;
}

static mpb_store *
open_store(sql_fixture *f)
{
    mpb_store_open_opts opts = {.artifact_root = f->dir};
    mpb_store *store = NULL;
    if (mpb_store_open_with(f->uri, &opts, &store, f->err, sizeof f->err) != 0) {
        fail_msg("open %s: %s", f->uri, f->err);
    }
    return store;
}

static sqlite3 *
open_raw(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 20000);
    return db;
}

static void
exec_sql(sqlite3 *db, const char *sql)
{
    char *message = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
        fail_msg("%s: %s", sql, message);
    }
}

/* The rows of a query as one text: columns joined by '|', rows by '\n'. */
static char *
query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    }
    mpb__strbuf out = {0};
    mpb__strbuf_puts(&out, "");
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(stmt); i++) {
            const unsigned char *text = sqlite3_column_text(stmt, i);
            mpb__strbuf_printf(&out, "%s%s", i ? "|" : "", text ? (const char *)text : "NULL");
        }
        mpb__strbuf_puts(&out, "\n");
    }
    sqlite3_finalize(stmt);
    return mpb__strbuf_take(&out);
}

static void
assert_query(sqlite3 *db, const char *sql, const char *expected)
{
    char *got = query_text(db, sql);
    if (strcmp(got, expected) != 0) {
        fail_msg("%s\n got:\n%s\n expected:\n%s", sql, got, expected);
    }
    free(got);
}

static char *
schema_file(void)
{
    const char *source = getenv("MPB_SOURCE_DIR");
    assert_non_null(source);
    char *path = th_pathf("%s/tracking/mlflow_schema.sql", source);
    char *text = th_read(path);
    assert_non_null(text);
    free(path);
    return text;
}

/* A database made the way MLflow makes one: its schema, then its rows. */
static void
make_mlflow_database(const char *path)
{
    sqlite3 *db = open_raw(path);
    char *schema = schema_file();
    exec_sql(db, schema);
    exec_sql(db, "INSERT INTO alembic_version VALUES('7d34483879f0');"
                 "INSERT INTO workspaces VALUES('default','Default workspace for legacy "
                 "resources',NULL);"
                 "INSERT INTO experiments VALUES(0,'Default','/home/me/proj/mlruns/0','active',"
                 "1795646860204,1795646860204,'default');");
    free(schema);
    sqlite3_close(db);
}

static void
new_database_holds_exactly_mlflows_schema_and_rows(void **state)
{
    sql_fixture *f = *state;
    int64_t before = mpb_wall_ms();
    mpb_store *store = open_store(f);
    char *reference_path = th_pathf("%s/reference.db", f->dir);
    make_mlflow_database(reference_path);
    sqlite3 *ours = open_raw(f->db_path);
    sqlite3 *reference = open_raw(reference_path);
    const char *ddl = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name";
    char *expected = query_text(reference, ddl);
    assert_non_null(strstr(expected, "table|latest_metrics|latest_metrics|"));
    assert_query(ours, ddl, expected);
    free(expected);
    assert_query(ours, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", "48\n");
    assert_query(ours, "SELECT * FROM alembic_version", MPB__MLFLOW_SCHEMA_REVISION "\n");
    char *schema = schema_file(); /* the stamp is the revision the schema file is from */
    assert_non_null(strstr(schema, "alembic revision " MPB__MLFLOW_SCHEMA_REVISION " "));
    free(schema);
    assert_query(ours, "SELECT * FROM workspaces",
                 "default|Default workspace for legacy resources|NULL\n");
    char *row = th_pathf("0|Default|%s/0|active|default\n", f->dir);
    assert_query(ours,
                 "SELECT experiment_id, name, artifact_location, lifecycle_stage, workspace "
                 "FROM experiments",
                 row);
    free(row);
    char *times = query_text(ours, "SELECT creation_time, last_update_time FROM experiments");
    long long created = 0;
    long long updated = 0;
    assert_int_equal(sscanf(times, "%lld|%lld", &created, &updated), 2);
    assert_true(created >= before && created <= mpb_wall_ms());
    assert_int_equal(updated, created);
    free(times);
    assert_query(ours, "PRAGMA journal_mode", "wal\n");
    sqlite3_close(reference);
    sqlite3_close(ours);
    mpb_store_destroy(&store);

    /* Reopening a database this store made changes nothing. */
    store = open_store(f);
    ours = open_raw(f->db_path);
    assert_query(ours, "SELECT count(*) FROM experiments", "1\n");
    sqlite3_close(ours);
    mpb_store_destroy(&store);
    free(reference_path);
}

static void
mlflow_made_database_is_written_through_the_core_tables(void **state)
{
    sql_fixture *f = *state;
    make_mlflow_database(f->db_path);
    mpb_store *store = open_store(f);
    char *exp_id = th_experiment(store, "probe");
    assert_string_equal(exp_id, "1"); /* SQL ids count up, as MLflow's */
    mpb_tag tags[] = {{"origin", "c"}};
    char *run_id = NULL;
    assert_int_equal(mpb_store_create_run(store, exp_id, "tester", 1000, "first", tags, 1, &run_id,
                                          f->err, sizeof f->err),
                     0);
    mpb_metric metrics[] = {{"loss", 0.5, 1001, 1}, {"loss", 0.25, 1002, 2}};
    mpb_param params[] = {{"lr", "0.1"}};
    assert_int_equal(
        mpb_store_log_batch(store, run_id, metrics, 2, params, 1, NULL, 0, f->err, sizeof f->err),
        0);
    assert_int_equal(
        mpb_store_set_experiment_tag(store, exp_id, "team", "vision", f->err, sizeof f->err), 0);
    assert_int_equal(
        mpb_store_update_run(store, run_id, MPB_RUN_FAILED, 2000, NULL, f->err, sizeof f->err), 0);
    mpb_store_destroy(&store);

    sqlite3 *db = open_raw(f->db_path);
    char *row = th_pathf("1|probe|%s/1|active|default\n", f->dir);
    assert_query(db,
                 "SELECT experiment_id, name, artifact_location, lifecycle_stage, workspace "
                 "FROM experiments WHERE experiment_id = 1",
                 row);
    free(row);
    /* MLflow's own row for experiment 0 is untouched. */
    assert_query(db, "SELECT artifact_location FROM experiments WHERE experiment_id = 0",
                 "/home/me/proj/mlruns/0\n");
    char *sql =
        th_pathf("SELECT run_uuid, name, source_type, source_name, entry_point_name, "
                 "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                 "artifact_uri, experiment_id, deleted_time FROM runs WHERE run_uuid = '%s'",
                 run_id);
    row = th_pathf("%s|first|UNKNOWN|||tester|FAILED|1000|2000||active|%s/1/%s/artifacts|1|NULL\n",
                   run_id, f->dir, run_id);
    assert_query(db, sql, row);
    free(row);
    free(sql);
    sql = th_pathf("SELECT key, value FROM tags WHERE run_uuid = '%s' ORDER BY key", run_id);
    assert_query(db, sql, "mlflow.runName|first\nmlflow.user|tester\norigin|c\n");
    free(sql);
    sql = th_pathf("SELECT key, value FROM params WHERE run_uuid = '%s'", run_id);
    assert_query(db, sql, "lr|0.1\n");
    free(sql);
    assert_query(db, "SELECT key, value, experiment_id FROM experiment_tags", "team|vision|1\n");
    sql = th_pathf("SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = '%s' "
                   "ORDER BY step",
                   run_id);
    assert_query(db, sql, "loss|0.5|1001|1|0\nloss|0.25|1002|2|0\n");
    free(sql);
    assert_query(db, "PRAGMA foreign_key_check", "");
    assert_query(db, "PRAGMA integrity_check", "ok\n");
    /* MLflow's database keeps its journal mode: only ours are made WAL */
    assert_query(db, "PRAGMA journal_mode", "delete\n");
    sqlite3_close(db);
    free(run_id);
    free(exp_id);
}

static void
assert_open_refused(sql_fixture *f, const char *const *expect)
{
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open(f->uri, &store, f->err, sizeof f->err), MPB_ESTORE);
    assert_null(store);
    for (size_t i = 0; expect[i] != NULL; i++) {
        if (strstr(f->err, expect[i]) == NULL) {
            fail_msg("'%s' lacks '%s'", f->err, expect[i]);
        }
    }
}

static void
database_missing_a_column_is_refused_by_name(void **state)
{
    sql_fixture *f = *state;
    make_mlflow_database(f->db_path);
    sqlite3 *db = open_raw(f->db_path);
    /* Another revision with every column this store writes: fine. */
    exec_sql(db, "UPDATE alembic_version SET version_num = '0123456789ab'");
    mpb_store *store = open_store(f);
    free(th_run(store, "0", "on-a-later-revision"));
    mpb_store_destroy(&store);
    exec_sql(db, "ALTER TABLE runs DROP COLUMN deleted_time;"
                 "UPDATE alembic_version SET version_num = 'bf29a5ff90ea';");
    sqlite3_close(db);
    const char *expect[] = {"runs", "deleted_time", "bf29a5ff90ea", "mlflow db upgrade", NULL};
    assert_open_refused(f, expect);
    /* Nothing was changed by the refusal. */
    db = open_raw(f->db_path);
    assert_query(db, "SELECT version_num FROM alembic_version", "bf29a5ff90ea\n");
    sqlite3_close(db);

    /* A database of something else altogether. */
    assert_int_equal(unlink(f->db_path), 0);
    db = open_raw(f->db_path);
    exec_sql(db, "CREATE TABLE notes (text TEXT)");
    sqlite3_close(db);
    const char *other[] = {"experiments", "revision none", NULL};
    assert_open_refused(f, other);
}

/* A database another process keeps locked: the call gives up after the
 * store's timeout with a clear error, and works once the lock is gone. */
static void
locked_database_is_a_clear_error_after_the_timeout(void **state)
{
    sql_fixture *f = *state;
    mpb_store_open_opts opts = {.timeout_ms = 200, .artifact_root = f->dir};
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open_with(f->uri, &opts, &store, f->err, sizeof f->err), 0);
    char *run_id = th_run(store, "0", "locked");
    sqlite3 *holder = open_raw(f->db_path);
    exec_sql(holder, "BEGIN EXCLUSIVE");
    mpb_metric metric = {"m", 1, 1, 1};
    assert_int_equal(
        mpb_store_log_batch(store, run_id, &metric, 1, NULL, 0, NULL, 0, f->err, sizeof f->err),
        MPB_EBUSY);
    assert_non_null(strstr(f->err, "stayed locked by another process"));
    exec_sql(holder, "COMMIT");
    sqlite3_close(holder);
    assert_int_equal(
        mpb_store_log_batch(store, run_id, &metric, 1, NULL, 0, NULL, 0, f->err, sizeof f->err), 0);
    mpb_store_destroy(&store);
    free(run_id);
}

static void
nan_and_infinities_are_stored_as_mlflow_stores_them(void **state)
{
    sql_fixture *f = *state;
    mpb_store *store = open_store(f);
    char *run_id = th_run(store, "0", "odd");
    mpb_metric values[] = {{"n", NAN, 1, 0}, {"p", INFINITY, 1, 0}, {"q", -INFINITY, 1, 0}};
    assert_int_equal(
        mpb_store_log_batch(store, run_id, values, 3, NULL, 0, NULL, 0, f->err, sizeof f->err), 0);
    sqlite3 *db = open_raw(f->db_path);
    const char *tables[] = {"metrics", "latest_metrics"};
    for (int i = 0; i < 2; i++) {
        char *sql = th_pathf("SELECT key, value = 0, value = 1.7976931348623157e308, "
                             "value = -1.7976931348623157e308, is_nan FROM %s ORDER BY key",
                             tables[i]);
        assert_query(db, sql, "n|1|0|0|1\np|0|1|0|0\nq|0|0|1|0\n");
        free(sql);
    }
    sqlite3_close(db);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(store, run_id, &run, f->err, sizeof f->err), 0);
    assert_true(isnan(mpb__metric_find(run->metrics, run->n_metrics, "n")->value));
    assert_true(mpb__metric_find(run->metrics, run->n_metrics, "p")->value == INFINITY);
    assert_true(mpb__metric_find(run->metrics, run->n_metrics, "q")->value == -INFINITY);
    mpb_run_free(&run);
    mpb_store_destroy(&store);
    free(run_id);
}

static void
latest_metrics_rows_follow_step_then_timestamp_then_value(void **state)
{
    sql_fixture *f = *state;
    mpb_store *store = open_store(f);
    char *run_id = th_run(store, "0", "latest");
    mpb_metric batches[][3] = {
        {{"a", 1.0, 100, 5}, {"b", 9.0, 100, 0}, {"c", 0.5, 100, 1}},
        {{"a", 2.0, 50, 4}, {"b", 1.0, 101, 0}, {"c", 0.7, 100, 1}},  /* a: lower step */
        {{"a", 3.0, 10, 6}, {"b", 5.0, 99, 0}, {"c", 0.6, 100, 1}},   /* c: lower value */
        {{"a", NAN, 10, 6}, {"b", 2.0, 101, 0}, {"c", -1.0, 100, 1}}, /* ties on step+time */
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(batches); i++) {
        assert_int_equal(mpb_store_log_batch(store, run_id, batches[i], 3, NULL, 0, NULL, 0, f->err,
                                             sizeof f->err),
                         0);
    }
    sqlite3 *db = open_raw(f->db_path);
    char *sql = th_pathf("SELECT key, value, timestamp, step, is_nan FROM latest_metrics "
                         "WHERE run_uuid = '%s' ORDER BY key",
                         run_id);
    /* a: step 6 twice at time 10: 3.0 beats NaN (stored as 0); b: step 0, latest
     * time 101 twice: 2.0 beats 1.0; c: step 1 time 100: the greatest value 0.7. */
    assert_query(db, sql, "a|3.0|10|6|0\nb|2.0|101|0|0\nc|0.7|100|1|0\n");
    free(sql);
    sql = th_pathf("SELECT count(*) FROM metrics WHERE run_uuid = '%s'", run_id);
    assert_query(db, sql, "12\n");
    free(sql);
    sqlite3_close(db);
    mpb_store_destroy(&store);
    free(run_id);
}

/* ---- Many processes, one database ---- */

#define N_WORKERS 4
#define N_METRICS 20000
#define BATCH 100

/* One worker process: its own run with N_METRICS values of "m" (step j,
 * value worker * 1e6 + j) in batches of BATCH, and after each batch one
 * value of "shared" to the shared run. Exit status 0 on success. */
static int
worker_main(const char *uri, int worker, const char *shared_run)
{
    char err[1024] = "";
    mpb_store *store = NULL;
    char *run_id = NULL;
    char name[32];
    snprintf(name, sizeof name, "worker-%d", worker);
    int rc = mpb_store_open(uri, &store, err, sizeof err);
    if (rc == 0) {
        rc =
            mpb_store_create_run(store, "0", "tester", -1, name, NULL, 0, &run_id, err, sizeof err);
    }
    mpb_metric batch[BATCH];
    for (int b = 0; rc == 0 && b < N_METRICS / BATCH; b++) {
        for (int k = 0; k < BATCH; k++) {
            int64_t step = (int64_t)b * BATCH + k;
            batch[k] = (mpb_metric){"m", worker * 1e6 + (double)step, 1000 + step, step};
        }
        mpb_param param = {"worker", name};
        rc = mpb_store_log_batch(store, run_id, batch, BATCH, &param, 1, NULL, 0, err, sizeof err);
        mpb_metric shared = {"shared", worker, 1000 + b, (int64_t)worker * 1000 + b};
        if (rc == 0 && shared_run != NULL) {
            rc = mpb_store_log_batch(store, shared_run, &shared, 1, NULL, 0, NULL, 0, err,
                                     sizeof err);
        }
    }
    if (rc != 0) {
        fprintf(stderr, "worker %d: %s\n", worker, err);
    }
    free(run_id);
    mpb_store_destroy(&store);
    return rc == 0 ? 0 : 1;
}

/* Forks N_WORKERS workers (none carries an open store) and waits for them. */
static void
run_workers(const char *uri, const char *shared_run)
{
    pid_t pids[N_WORKERS];
    for (int i = 0; i < N_WORKERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            _exit(worker_main(uri, i, shared_run));
        }
    }
    for (int i = 0; i < N_WORKERS; i++) {
        assert_int_equal(th_wait_child(pids[i], 240000), 0);
    }
}

static void
four_processes_log_20k_metrics_each_and_nothing_is_lost(void **state)
{
    sql_fixture *f = *state;
    mpb_store *store = open_store(f);
    char *shared = th_run(store, "0", "shared");
    mpb_store_destroy(&store);

    int64_t started = mpb_now_ns();
    run_workers(f->uri, shared);
    double seconds = (double)(mpb_now_ns() - started) / 1e9;
    print_message("%d processes x %d metrics (+%d shared) in %.2f s\n", N_WORKERS, N_METRICS,
                  N_METRICS / BATCH, seconds);

    store = open_store(f);
    const char *ids[] = {"0"};
    mpb_search_opts opts = {.filter = "attributes.run_name LIKE 'worker-%'"};
    mpb_run_page *page = NULL;
    assert_int_equal(mpb_store_search_runs(store, ids, 1, &opts, &page, f->err, sizeof f->err), 0);
    assert_int_equal(page->n_runs, N_WORKERS);
    for (size_t r = 0; r < page->n_runs; r++) {
        const mpb_run *run = &page->runs[r];
        int worker = atoi(run->info.run_name + strlen("worker-"));
        const mpb_metric *latest = mpb__metric_find(run->metrics, run->n_metrics, "m");
        assert_int_equal(latest->step, N_METRICS - 1);
        assert_true(latest->value == worker * 1e6 + (N_METRICS - 1));
        mpb_metric_history *history = NULL;
        assert_int_equal(mpb_store_get_metric_history(store, run->info.run_id, "m", &history,
                                                      f->err, sizeof f->err),
                         0);
        assert_int_equal(history->n_metrics, N_METRICS);
        for (size_t i = 0; i < history->n_metrics; i++) {
            assert_int_equal(history->metrics[i].step, (int64_t)i); /* all there, in order */
        }
        mpb_metric_history_free(&history);
    }
    mpb_run_page_free(&page);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(store, shared, "shared", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, N_WORKERS * N_METRICS / BATCH);
    mpb_metric_history_free(&history);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(store, shared, &run, f->err, sizeof f->err), 0);
    const mpb_metric *latest = mpb__metric_find(run->metrics, run->n_metrics, "shared");
    assert_int_equal(latest->step, (N_WORKERS - 1) * 1000 + N_METRICS / BATCH - 1);
    assert_true(latest->value == N_WORKERS - 1);
    mpb_run_free(&run);
    mpb_store_destroy(&store);

    sqlite3 *db = open_raw(f->db_path);
    char *count = th_pathf("%d\n", N_WORKERS * N_METRICS + N_WORKERS * N_METRICS / BATCH);
    assert_query(db, "SELECT count(*) FROM metrics", count);
    free(count);
    assert_query(db, "PRAGMA integrity_check", "ok\n");
    sqlite3_close(db);
    free(shared);
}

/* Workers that all open a database nobody has made yet: one creates it. */
static void
processes_opening_a_new_database_at_once_create_it_once(void **state)
{
    sql_fixture *f = *state;
    pid_t pids[N_WORKERS];
    for (int i = 0; i < N_WORKERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char err[512] = "";
            mpb_store *store = NULL;
            char *run_id = NULL;
            int rc = mpb_store_open(f->uri, &store, err, sizeof err);
            if (rc == 0) {
                rc = mpb_store_create_run(store, "0", "tester", -1, NULL, NULL, 0, &run_id, err,
                                          sizeof err);
            }
            if (rc != 0) {
                fprintf(stderr, "worker %d: %s\n", i, err);
            }
            free(run_id);
            mpb_store_destroy(&store);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    for (int i = 0; i < N_WORKERS; i++) {
        assert_int_equal(th_wait_child(pids[i], 120000), 0);
    }
    sqlite3 *db = open_raw(f->db_path);
    assert_query(db, "SELECT count(*) FROM experiments", "1\n");
    assert_query(db, "SELECT count(*) FROM alembic_version", "1\n");
    assert_query(db, "SELECT count(*) FROM workspaces", "1\n");
    assert_query(db, "SELECT count(*) FROM runs", "4\n");
    sqlite3_close(db);
}

/* ---- Tools read it through the store API ---- */

static void
mpb_runs_lists_a_sqlite_store(void **state)
{
    sql_fixture *f = *state;
    mpb_store *store = open_store(f);
    char *run_id = th_run(store, "0", "listed-run");
    mpb_store_destroy(&store);
    const char *build = getenv("MPB_BUILD_DIR");
    if (build == NULL) {
        skip();
    }
    char *out_path = th_pathf("%s/out.txt", f->dir);
    char *cmd = th_pathf("MLFLOW_TRACKING_URI='%s' %s/bin/mpb runs list > %s 2>&1", f->uri, build,
                         out_path);
    assert_int_equal(system(cmd), 0);
    char *out = th_read(out_path);
    assert_non_null(strstr(out, "listed-run"));
    free(out);
    free(cmd);
    cmd = th_pathf("%s/bin/mpb runs --uri '%s' show %s > %s 2>&1", build, f->uri, run_id, out_path);
    assert_int_equal(system(cmd), 0);
    out = th_read(out_path);
    assert_non_null(strstr(out, run_id));
    free(out);
    free(cmd);
    free(out_path);
    free(run_id);
}

int
main(void)
{
#define SQL_TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        SQL_TEST(new_database_holds_exactly_mlflows_schema_and_rows),
        SQL_TEST(mlflow_made_database_is_written_through_the_core_tables),
        SQL_TEST(database_missing_a_column_is_refused_by_name),
        SQL_TEST(locked_database_is_a_clear_error_after_the_timeout),
        SQL_TEST(nan_and_infinities_are_stored_as_mlflow_stores_them),
        SQL_TEST(latest_metrics_rows_follow_step_then_timestamp_then_value),
        SQL_TEST(processes_opening_a_new_database_at_once_create_it_once),
        SQL_TEST(four_processes_log_20k_metrics_each_and_nothing_is_lost),
        SQL_TEST(mpb_runs_lists_a_sqlite_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
