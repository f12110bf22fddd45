/*
 * The model registry as each store keeps it, looked at from outside: the
 * files of mlruns/models/ as MLflow's registry FileStore reads them, and the
 * rows of MLflow's registry tables (workspace 'default') in SQLite. Also
 * checks that models/ is never taken for an experiment, and that threads
 * adding versions at once (each with its own store) get distinct numbers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>

#include "helpers.h"

static void
write_atomic_text(const char *path, const char *text)
{
    char *parent = mpb_strdup(path);
    *strrchr(parent, '/') = '\0';
    assert_int_equal(mpb__fs_write_atomic(parent, path, text, strlen(text)), 0);
    free(parent);
}

static void
register_mlp(mpb_store *store, const char *source)
{
    char err[512] = "";
    mpb_tag tags[] = {{"team", "vision"}};
    if (mpb_store_create_registered_model(store, "mlp", NULL, tags, 1, err, sizeof err) != 0 ||
        mpb_store_create_model_version(store, "mlp", source, NULL, NULL, err, sizeof err) != 0 ||
        mpb_store_create_model_version(store, "mlp", "/srv/w2.bin", NULL, NULL, err, sizeof err) !=
            0 ||
        mpb_store_set_model_alias(store, "mlp", "champion", 1, err, sizeof err) != 0) {
        fail_msg("register mlp: %s", err);
    }
}

static void
file_store_keeps_mlflows_registry_layout(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    mpb_store *store = th_open(dir);
    char *source = mpb_strdup("runs:/0123456789abcdef0123456789abcdef/models/w.bin");
    register_mlp(store, source);

    char *path = th_pathf("%s/mlruns/models/mlp/meta.yaml", dir);
    char *meta = th_read(path);
    assert_non_null(strstr(meta, "name: \"mlp\"\n"));
    assert_non_null(strstr(meta, "creation_timestamp: "));
    assert_non_null(strstr(meta, "last_updated_timestamp: "));
    free(meta);
    free(path);
    path = th_pathf("%s/mlruns/models/mlp/tags/team", dir);
    th_assert_file(path, "vision");
    free(path);
    path = th_pathf("%s/mlruns/models/mlp/aliases/champion", dir);
    th_assert_file(path, "1");
    free(path);
    path = th_pathf("%s/mlruns/models/mlp/version-1/meta.yaml", dir);
    meta = th_read(path);
    assert_non_null(strstr(meta, "\nversion: 1\n"));
    assert_non_null(
        strstr(meta, "source: \"runs:/0123456789abcdef0123456789abcdef/models/w.bin\""));
    assert_non_null(strstr(meta, "run_id: \"0123456789abcdef0123456789abcdef\"\n"));
    assert_non_null(strstr(meta, "current_stage: \"None\"\n"));
    assert_non_null(strstr(meta, "status: \"READY\"\n"));
    free(meta);
    free(path);
    path = th_pathf("%s/mlruns/models/mlp/version-2/meta.yaml", dir);
    meta = th_read(path);
    assert_non_null(strstr(meta, "\nversion: 2\n"));
    assert_non_null(strstr(meta, "run_id: null\n"));
    free(meta);
    free(path);

    /* a version MLflow marked deleted is gone; models/ is no experiment */
    path = th_pathf("%s/mlruns/models/mlp/version-2/meta.yaml", dir);
    write_atomic_text(path, "name: mlp\nversion: 2\ncurrent_stage: Deleted_Internal\nsource: x\n");
    free(path);
    char err[512] = "";
    mpb_model_version_list *versions = NULL;
    assert_int_equal(mpb_store_list_model_versions(store, "mlp", &versions, err, sizeof err), 0);
    assert_int_equal(versions->n_versions, 1);
    mpb_model_version_list_free(&versions);
    mpb_model_version *version = NULL;
    assert_int_equal(mpb_store_get_model_version(store, "mlp", 2, &version, err, sizeof err),
                     MPB_ENOTFOUND);
    mpb_experiment_page *page = NULL;
    assert_int_equal(mpb_store_search_experiments(store, NULL, &page, err, sizeof err), 0);
    assert_int_equal(page->n_experiments, 1); /* Default only */
    mpb_experiment_page_free(&page);

    mpb_store_destroy(&store);
    free(source);
    th_cleanup(&dir);
}

/* Runs sql, which must give exactly one row, whose columns read as text
 * are `columns` (NULL ended). */
static void
expect_one_row(sqlite3 *db, const char *sql, const char *const *columns)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    for (int i = 0; columns[i] != NULL; i++) {
        const char *got = (const char *)sqlite3_column_text(stmt, i);
        if (got == NULL || strcmp(got, columns[i]) != 0) {
            fail_msg("%s: column %d is '%s', not '%s'", sql, i, got ? got : "NULL", columns[i]);
        }
    }
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
}

static void
sqlite_store_writes_mlflows_registry_rows(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    char *uri = th_pathf("sqlite:///%s/mlflow.db", dir);
    char err[512] = "";
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open(uri, &store, err, sizeof err), 0);
    register_mlp(store, "runs:/0123456789abcdef0123456789abcdef/models/w.bin");
    mpb_store_destroy(&store);

    char *path = th_pathf("%s/mlflow.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *stmt = NULL;
    const char *model_row[] = {"default", "mlp", "1", NULL};
    expect_one_row(db, "SELECT workspace, name, creation_time > 0 FROM registered_models",
                   model_row);

    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT version, source, run_id, status, current_stage, "
                                        "storage_location, workspace FROM model_versions "
                                        "WHERE name = 'mlp' ORDER BY version",
                                        -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(stmt, 0), 1);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 1),
                        "runs:/0123456789abcdef0123456789abcdef/models/w.bin");
    assert_string_equal((const char *)sqlite3_column_text(stmt, 2),
                        "0123456789abcdef0123456789abcdef");
    assert_string_equal((const char *)sqlite3_column_text(stmt, 3), "READY");
    assert_string_equal((const char *)sqlite3_column_text(stmt, 4), "None");
    assert_string_equal((const char *)sqlite3_column_text(stmt, 6), "default");
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(stmt, 0), 2);
    assert_int_equal(sqlite3_column_type(stmt, 2), SQLITE_NULL);
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);

    const char *alias_row[] = {"champion", "1", "mlp", "default", NULL};
    expect_one_row(db, "SELECT alias, version, name, workspace FROM registered_model_aliases",
                   alias_row);

    const char *tag_row[] = {"team", "vision", "default", NULL};
    expect_one_row(db, "SELECT key, value, workspace FROM registered_model_tags WHERE name = 'mlp'",
                   tag_row);

    /* a version MLflow marked deleted is not shown */
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE model_versions SET current_stage = 'Deleted_Internal' "
                                  "WHERE version = 2",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(mpb_store_open(uri, &store, err, sizeof err), 0);
    mpb_model_version *version = NULL;
    assert_int_equal(mpb_store_get_model_version(store, "mlp", 2, &version, err, sizeof err),
                     MPB_ENOTFOUND);
    /* and its number is not given again */
    assert_int_equal(mpb_store_create_model_version(store, "mlp", "/srv/w3.bin", NULL, &version,
                                                    err, sizeof err),
                     0);
    assert_int_equal(version->version, 3);
    mpb_model_version_free(&version);
    mpb_store_destroy(&store);
    free(path);
    free(uri);
    th_cleanup(&dir);
}

#define CREATORS 4
#define VERSIONS_EACH 5

static void *
create_versions(void *arg)
{
    const char *uri = arg;
    mpb_store *store = NULL;
    char err[512] = "";
    intptr_t failures = mpb_store_open(uri, &store, err, sizeof err) != 0;
    for (int i = 0; failures == 0 && i < VERSIONS_EACH; i++) {
        failures += mpb_store_create_model_version(store, "mlp", "/srv/w.bin", NULL, NULL, err,
                                                   sizeof err) != 0;
    }
    mpb_store_destroy(&store);
    return (void *)failures;
}

static void
concurrent_creators_get_distinct_versions(const char *uri)
{
    char err[512] = "";
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open(uri, &store, err, sizeof err), 0);
    assert_int_equal(
        mpb_store_create_registered_model(store, "mlp", NULL, NULL, 0, err, sizeof err), 0);
    pthread_t threads[CREATORS];
    for (int i = 0; i < CREATORS; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, create_versions, (void *)uri), 0);
    }
    for (int i = 0; i < CREATORS; i++) {
        void *failures = NULL;
        pthread_join(threads[i], &failures);
        assert_null(failures);
    }
    mpb_model_version_list *list = NULL;
    assert_int_equal(mpb_store_list_model_versions(store, "mlp", &list, err, sizeof err), 0);
    assert_int_equal(list->n_versions, CREATORS * VERSIONS_EACH);
    for (size_t i = 0; i < list->n_versions; i++) {
        assert_int_equal(list->versions[i].version, (int64_t)i + 1);
    }
    mpb_model_version_list_free(&list);
    mpb_store_destroy(&store);
}

static void
versions_made_at_once_are_numbered_apart(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    char *file_uri = th_pathf("file:%s/mlruns", dir);
    char *sqlite_uri = th_pathf("sqlite:///%s/mlflow.db", dir);
    concurrent_creators_get_distinct_versions(file_uri);
    concurrent_creators_get_distinct_versions(sqlite_uri);
    free(sqlite_uri);
    free(file_uri);
    th_cleanup(&dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_store_keeps_mlflows_registry_layout),
        cmocka_unit_test(sqlite_store_writes_mlflows_registry_rows),
        cmocka_unit_test(versions_made_at_once_are_numbered_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
