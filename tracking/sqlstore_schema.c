/*
 * SQLite store: the schema. A database without tables gets MLflow's schema
 * exactly as tracking/mlflow_schema.sql holds it (embedded at build time) and
 * the rows MLflow puts in a new database: the alembic stamp, the default
 * workspace and experiment 0 "Default". A database that already has tables
 * (made by MLflow, any revision since 3.0, or by us) is used as it is once
 * PRAGMA table_info shows every column this store writes; it is never
 * migrated.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/sqlstore_int.h"
#include "tracking/store_int.h"

/* The columns of MLflow's core tables this store reads and writes. */
static const struct core_table {
    const char *name;
    const char *columns[15];
} core_tables[] = {
    {"experiments",
     {"experiment_id", "name", "artifact_location", "lifecycle_stage", "creation_time",
      "last_update_time"}},
    {"experiment_tags", {"key", "value", "experiment_id"}},
    {"runs",
     {"run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id", "status",
      "start_time", "end_time", "source_version", "lifecycle_stage", "artifact_uri",
      "experiment_id", "deleted_time"}},
    {"tags", {"key", "value", "run_uuid"}},
    {"params", {"key", "value", "run_uuid"}},
    {"metrics", {"key", "value", "timestamp", "run_uuid", "step", "is_nan"}},
    {"latest_metrics", {"key", "value", "timestamp", "step", "is_nan", "run_uuid"}},
};

static int
count_tables(mpb__sqlstore *store, const char *name, int64_t *out, char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                              "(? IS NULL OR name = ?)",
                              "ss", name, name);
    if (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        *out = sqlite3_column_int64(stmt, 0);
        rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* The alembic revision a database is stamped with ("none" if unstamped). */
static char *
alembic_revision(mpb__sqlstore *store)
{
    sqlite3_stmt *stmt = NULL;
    char *revision = NULL;
    if (mpb__sql_prepare(store, &stmt, NULL, 0, "SELECT version_num FROM alembic_version", NULL) ==
            0 &&
        mpb__sql_step(store, stmt, NULL, 0) == 1) {
        revision = mpb__sql_text(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return revision != NULL ? revision : mpb_strdup("none");
}

/* 1 when the table has the column, 0 when not, or a negative status. */
static int
has_column(mpb__sqlstore *store, const char *table, const char *column, char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", "ss",
                              table, column);
    if (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        rc = sqlite3_column_int64(stmt, 0) > 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static int
check_existing(mpb__sqlstore *store, char *err, size_t err_len)
{
    int64_t stamped = 0;
    int rc = count_tables(store, "alembic_version", &stamped, err, err_len);
    for (size_t t = 0; rc == 0 && t < MPB_ARRAY_LEN(core_tables); t++) {
        const struct core_table *table = &core_tables[t];
        for (size_t c = 0; rc == 0 && table->columns[c] != NULL; c++) {
            rc = has_column(store, table->name, table->columns[c], err, err_len);
            if (rc == 0) {
                char *revision = stamped ? alembic_revision(store) : mpb_strdup("none");
                rc = mpb__set_error(
                    err, err_len, MPB_ESTORE,
                    "%s is not a tracking database this version can write: table %s lacks "
                    "column %s (alembic revision %s; expected MLflow 3.x, revision %s or a "
                    "later one). Upgrade it with `mlflow db upgrade sqlite:///%s`, or use "
                    "another file",
                    store->path, table->name, table->columns[c], revision,
                    MPB__MLFLOW_SCHEMA_REVISION, store->path);
                free(revision);
            } else if (rc == 1) {
                rc = 0;
            }
        }
    }
    return rc;
}

static int
create_schema(mpb__sqlstore *store, char *err, size_t err_len)
{
    char *message = NULL;
    int rc = sqlite3_exec(store->db, mpb__mlflow_schema_sql, NULL, NULL, &message);
    if (rc != SQLITE_OK) {
        int status = mpb__sqlstore_error(store, rc, "cannot create MLflow's tables", err, err_len);
        sqlite3_free(message);
        return status;
    }
    char *location = mpb_asprintf("%s/%s", store->artifact_root, MPB_DEFAULT_EXPERIMENT_ID);
    int64_t now = mpb_wall_ms();
    rc = mpb__sql_exec(store, err, err_len, "INSERT INTO alembic_version (version_num) VALUES (?)",
                       "s", MPB__MLFLOW_SCHEMA_REVISION);
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "INSERT INTO workspaces (name, description, default_artifact_root) "
                           "VALUES ('default', 'Default workspace for legacy resources', NULL)",
                           NULL);
    }
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "INSERT INTO experiments (experiment_id, name, artifact_location, "
                           "lifecycle_stage, creation_time, last_update_time) "
                           "VALUES (0, 'Default', ?, 'active', ?, ?)",
                           "sii", location, now, now);
    }
    free(location);
    return rc;
}

int
mpb__sqlstore_prepare_schema(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    (void)ctx;
    int64_t n_tables = 0;
    int rc = count_tables(store, NULL, &n_tables, err, err_len);
    if (rc < 0) {
        return rc;
    }
    return n_tables == 0 ? create_schema(store, err, err_len) : check_existing(store, err, err_len);
}
