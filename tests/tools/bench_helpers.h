/*
 * Helpers for the `mpb bench` tests: a folder per test, the bench run in
 * it, and readers of what it wrote (JSON rows, CSV lines, the tracked runs).
 */
#ifndef MPB_TESTS_TOOLS_BENCH_HELPERS_H
#define MPB_TESTS_TOOLS_BENCH_HELPERS_H

#include <cjson/cJSON.h>

#include "tool_helpers.h"

#include "mpbatch/store.h"

typedef struct bench_dir {
    char path[64];
    char out[128];
    char err[128];
} bench_dir;

static inline void
make_dir(bench_dir *d)
{
    snprintf(d->path, sizeof d->path, "/tmp/mpb-bench-test-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    snprintf(d->out, sizeof d->out, "%s/stdout", d->path);
    snprintf(d->err, sizeof d->err, "%s/stderr", d->path);
}

static inline void
remove_dir(bench_dir *d)
{
    char *rm = mpb_asprintf("rm -rf %s", d->path);
    assert_int_equal(system(rm), 0);
    free(rm);
}

/* Runs mpb bench with args in d (tracking into d/mlruns); exit status. */
static inline int
bench(const bench_dir *d, const char *args)
{
    char *mpb = tool_path("mpb");
    char *cmd = mpb_asprintf("cd %s && MLFLOW_TRACKING_URI=file:%s/mlruns %s bench %s > %s 2> %s",
                             d->path, d->path, mpb, args, d->out, d->err);
    int status = shell_status(cmd);
    free(cmd);
    free(mpb);
    return status;
}

static inline int
exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

static inline double
number(const cJSON *json, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(json, key);
    assert_non_null(item);
    assert_true(cJSON_IsNumber(item));
    return item->valuedouble;
}

static inline int
count_lines(const char *text)
{
    int n = 0;
    for (const char *c = text; *c; c++) {
        n += *c == '\n';
    }
    return n;
}

/* The parent run's id, from what mpb bench said on stderr. */
static inline void
tracked_run_id(const bench_dir *d, char run_id[33])
{
    char *err = slurp(d->err);
    char *at = strstr(err, "tracked as run ");
    assert_non_null(at);
    memcpy(run_id, at + strlen("tracked as run "), 32);
    run_id[32] = '\0';
    free(err);
}

static inline const char *
param(const mpb_run *run, const char *key)
{
    for (size_t i = 0; i < run->n_params; i++) {
        if (strcmp(run->params[i].key, key) == 0) {
            return run->params[i].value;
        }
    }
    return NULL;
}

static inline int
has_metric(const mpb_run *run, const char *key)
{
    for (size_t i = 0; i < run->n_metrics; i++) {
        if (strcmp(run->metrics[i].key, key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The nested runs of the sweep tracked in d (caller frees the page). */
static inline mpb_run_page *
nested_runs(mpb_store *store, const mpb_run *parent)
{
    char filter[128];
    snprintf(filter, sizeof filter, "tags.mlflow.parentRunId = '%s'", parent->info.run_id);
    mpb_search_opts opts = {.filter = filter, .max_results = 50};
    const char *experiments[] = {parent->info.experiment_id};
    mpb_run_page *page = NULL;
    char msg[256];
    assert_int_equal(mpb_store_search_runs(store, experiments, 1, &opts, &page, msg, sizeof msg),
                     0);
    return page;
}

static inline void
open_store(const bench_dir *d, mpb_store **store)
{
    char *uri = mpb_asprintf("file:%s/mlruns", d->path);
    char msg[256];
    assert_int_equal(mpb_store_open(uri, store, msg, sizeof msg), 0);
    free(uri);
}

/* The run the bench tracked in d's store (*store opened, the caller's). */
static inline mpb_run *
tracked_run(const bench_dir *d, mpb_store **store)
{
    char run_id[33];
    tracked_run_id(d, run_id);
    open_store(d, store);
    mpb_run *run = NULL;
    char msg[256];
    assert_int_equal(mpb_store_get_run(*store, run_id, &run, msg, sizeof msg), 0);
    return run;
}

#endif
