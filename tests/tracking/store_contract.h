/*
 * The store contract's fixture, shared by store_contract_test.c and
 * store_contract_search_test.c: one table of backends (the file store, the
 * SQLite store, and the REST store whose start() launches the test tracking
 * server of rest_test_server.h and whose stop() ends it), a fresh store of the backend
 * under test per test, and helpers. Tests use only the public mpb_store_*
 * API: nothing looks at a backend's files or tables. Include after cmocka.h.
 */
#ifndef MPB_TESTS_TRACKING_STORE_CONTRACT_H
#define MPB_TESTS_TRACKING_STORE_CONTRACT_H

#include "helpers.h"
#include "tracking/rest_test_server.h"

/* How to make a fresh store of one backend inside a temp folder. */
typedef struct contract_backend {
    const char *name;
    /* Fills opts for a store living in dir; returns its URI (caller frees). */
    char *(*start)(const char *dir, mpb_store_open_opts *opts);
    /* Undoes start (a server to stop); may be NULL. */
    void (*stop)(const char *dir);
    /* 1 when runs come back without deleted_time (MLflow's RunInfo message
     * has no such field, so a REST store cannot report it). */
    int lacks_deleted_time;
} contract_backend;

static inline char *
file_start(const char *dir, mpb_store_open_opts *opts)
{
    (void)opts;
    return th_pathf("file://%s/mlruns", dir);
}

static inline char *
sqlite_start(const char *dir, mpb_store_open_opts *opts)
{
    static char artifact_root[4096];
    snprintf(artifact_root, sizeof artifact_root, "%s/mlartifacts", dir);
    opts->artifact_root = artifact_root;
    return th_pathf("sqlite:///%s/mlflow.db", dir);
}

static rest_server *contract_server; /* the REST backend's, while a test runs */

static inline char *
rest_start(const char *dir, mpb_store_open_opts *opts)
{
    (void)opts;
    contract_server = rest_server_start(dir);
    return mpb_strdup(rest_server_url(contract_server));
}

static inline void
rest_stop(const char *dir)
{
    (void)dir;
    rest_server_stop(&contract_server);
}

static const contract_backend backends[] = {
    {"file", file_start, NULL, 0},
    {"sqlite", sqlite_start, NULL, 0},
    {"rest", rest_start, rest_stop, 1},
};

static const contract_backend *backend; /* the one being run (each test file has its own) */

typedef struct contract {
    char *dir;
    char *uri;
    mpb_store_open_opts opts;
    mpb_store *store;
    char *exp_id; /* experiment "contract" */
    char err[1024];
} contract;

static inline mpb_store *
open_store(contract *c)
{
    mpb_store *store = NULL;
    char err[1024] = "";
    if (mpb_store_open_with(c->uri, &c->opts, &store, err, sizeof err) != 0) {
        fail_msg("[%s] open %s: %s", backend->name, c->uri, err);
    }
    return store;
}

static inline int
contract_setup(void **state)
{
    contract *c = mpb_calloc(1, sizeof *c);
    c->dir = th_tempdir();
    c->uri = backend->start(c->dir, &c->opts);
    c->store = open_store(c);
    c->exp_id = th_experiment(c->store, "contract");
    *state = c;
    return 0;
}

static inline int
contract_teardown(void **state)
{
    contract *c = *state;
    mpb_store_destroy(&c->store);
    if (backend->stop != NULL) {
        backend->stop(c->dir);
    }
    th_cleanup(&c->dir);
    free(c->uri);
    free(c->exp_id);
    free(c);
    return 0;
}

static inline mpb_run *
get_run(contract *c, const char *run_id)
{
    mpb_run *run = NULL;
    if (mpb_store_get_run(c->store, run_id, &run, c->err, sizeof c->err) != 0) {
        fail_msg("[%s] get_run: %s", backend->name, c->err);
    }
    return run;
}

static inline void
assert_err(contract *c, const char *text)
{
    if (strstr(c->err, text) == NULL) {
        fail_msg("[%s] '%s' lacks '%s'", backend->name, c->err, text);
    }
}

static inline void
write_file(const char *path, const char *text)
{
    char *parent = mpb_strdup(path);
    *strrchr(parent, '/') = '\0';
    assert_int_equal(mpb__fs_mkdir_p(parent), 0);
    assert_int_equal(mpb__fs_write_atomic(parent, path, text, strlen(text)), 0);
    free(parent);
}

#define CONTRACT_TEST(name) cmocka_unit_test_setup_teardown(name, contract_setup, contract_teardown)

#endif
