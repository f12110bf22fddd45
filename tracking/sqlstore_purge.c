/* The SQLite store's permanent deletion: a run's rows (metrics, latest
 * metrics, params, tags, inputs, the run) in one transaction, then its local
 * artifacts; an experiment's runs the same way, then its tags and row. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/sqlstore_int.h"
#include "tracking/store_int.h"

typedef struct purge {
    const char *id;
    char **artifact_uris; /* local folders to remove once committed */
    size_t n_uris;
} purge;

static void
purge_clear(purge *p)
{
    for (size_t i = 0; i < p->n_uris; i++) {
        free(p->artifact_uris[i]);
    }
    free(p->artifact_uris);
    p->artifact_uris = NULL;
    p->n_uris = 0;
}

static void
purge_keep_uri(purge *p, char *uri)
{
    p->artifact_uris = mpb_realloc(p->artifact_uris, (p->n_uris + 1) * sizeof *p->artifact_uris);
    p->artifact_uris[p->n_uris++] = uri;
}

static int
delete_run_rows(mpb__sqlstore *store, const char *run_id, char *err, size_t err_len)
{
    static const char *const statements[] = {
        "DELETE FROM metrics WHERE run_uuid = ?",
        "DELETE FROM latest_metrics WHERE run_uuid = ?",
        "DELETE FROM params WHERE run_uuid = ?",
        "DELETE FROM tags WHERE run_uuid = ?",
        "DELETE FROM input_tags WHERE input_uuid IN (SELECT input_uuid FROM inputs WHERE "
        "destination_id = ?)",
        "DELETE FROM inputs WHERE destination_id = ?",
        "DELETE FROM runs WHERE run_uuid = ?",
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < MPB_ARRAY_LEN(statements); i++) {
        rc = mpb__sql_exec(store, err, err_len, statements[i], "s", run_id);
    }
    return rc;
}

static int
purge_run_txn(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    purge *p = ctx;
    purge_clear(p); /* a retried transaction starts over */
    mpb_run_info info = {0};
    int rc = mpb__sqlstore_run_stage(store, p->id, &info.lifecycle_stage, err, err_len);
    if (rc == 0 && strcmp(info.lifecycle_stage, "deleted") != 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "Run %s is not in the deleted lifecycle stage; only deleted runs "
                            "can be deleted permanently",
                            p->id);
    }
    sqlite3_stmt *stmt = NULL;
    if (rc == 0) {
        rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT artifact_uri FROM runs WHERE run_uuid = ?", "s", p->id);
    }
    if (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        purge_keep_uri(p, mpb__sql_text(stmt, 0));
        rc = 0;
    }
    sqlite3_finalize(stmt);
    if (rc == 0) {
        rc = delete_run_rows(store, p->id, err, err_len);
    }
    free(info.lifecycle_stage);
    return rc;
}

static int
remove_artifacts(purge *p, char *err, size_t err_len)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->n_uris; i++) {
        rc = mpb__local_artifacts_remove(p->artifact_uris[i]);
        if (rc < 0) {
            rc = mpb__set_error(err, err_len, rc, "cannot remove artifacts %s: %s",
                                p->artifact_uris[i], mpb_strerror(rc));
        }
    }
    return rc;
}

int
mpb__sqlstore_purge_run(void *backend, const char *run_id, char *err, size_t err_len)
{
    purge p = {run_id, NULL, 0};
    int rc = mpb__sqlstore_transact(backend, 1, purge_run_txn, &p, err, err_len);
    if (rc == 0) {
        rc = remove_artifacts(&p, err, err_len);
    }
    purge_clear(&p);
    return rc;
}

static int
purge_experiment_txn(mpb__sqlstore *store, void *ctx, char *err, size_t err_len)
{
    purge *p = ctx;
    purge_clear(p);
    int64_t id = 0;
    int rc = mpb__sqlstore_parse_experiment_id(p->id, &id);
    sqlite3_stmt *stmt = NULL;
    if (rc == 0) {
        rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT lifecycle_stage, artifact_location FROM experiments WHERE "
                              "experiment_id = ?",
                              "i", id);
    }
    if (rc == 0) {
        rc = mpb__sql_step(store, stmt, err, err_len);
        if (rc == 0) {
            rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "No Experiment with id=%s exists",
                                p->id);
        } else if (rc == 1) {
            char *stage = mpb__sql_text(stmt, 0);
            rc = strcmp(stage, "deleted") == 0
                     ? 0
                     : mpb__set_error(err, err_len, MPB_EINVAL,
                                      "Experiment %s is not in the deleted lifecycle stage; only "
                                      "deleted experiments can be deleted permanently",
                                      p->id);
            free(stage);
            /* its artifact location itself stays, as with mlflow gc: it
             * may be shared; the runs' artifacts below are removed */
        }
    } else {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "No Experiment with id=%s exists", p->id);
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    char **runs = NULL;
    size_t n_runs = 0;
    if (rc == 0) {
        rc = mpb__sql_prepare(store, &stmt, err, err_len,
                              "SELECT run_uuid, artifact_uri FROM runs WHERE experiment_id = ?",
                              "i", id);
    }
    while (rc == 0 && (rc = mpb__sql_step(store, stmt, err, err_len)) == 1) {
        runs = mpb_realloc(runs, (n_runs + 1) * sizeof *runs);
        runs[n_runs++] = mpb__sql_text(stmt, 0);
        purge_keep_uri(p, mpb__sql_text(stmt, 1));
        rc = 0;
    }
    sqlite3_finalize(stmt);
    for (size_t i = 0; rc == 0 && i < n_runs; i++) {
        rc = delete_run_rows(store, runs[i], err, err_len);
    }
    for (size_t i = 0; i < n_runs; i++) {
        free(runs[i]);
    }
    free(runs);
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len,
                           "DELETE FROM experiment_tags WHERE experiment_id = ?", "i", id);
    }
    if (rc == 0) {
        rc = mpb__sql_exec(store, err, err_len, "DELETE FROM experiments WHERE experiment_id = ?",
                           "i", id);
    }
    return rc;
}

int
mpb__sqlstore_purge_experiment(void *backend, const char *experiment_id, char *err, size_t err_len)
{
    purge p = {experiment_id, NULL, 0};
    int rc = mpb__sqlstore_transact(backend, 1, purge_experiment_txn, &p, err, err_len);
    if (rc == 0) {
        rc = remove_artifacts(&p, err, err_len);
    }
    purge_clear(&p);
    return rc;
}
