/*
 * Helpers shared by the tracking tests: temp folders, file reading, a store
 * fixture, child processes with deadlines. Include after cmocka.h.
 */
#ifndef MPB_TESTS_TRACKING_HELPERS_H
#define MPB_TESTS_TRACKING_HELPERS_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

/* A fresh folder below $TMPDIR (or /tmp); caller frees and removes it. */
static inline char *
th_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = mpb_asprintf("%s/mpb-test-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(path) == NULL) {
        fail_msg("mkdtemp failed");
    }
    return path;
}

/* Like th_tempdir, on tmpfs (/dev/shm) when there is one: for tests that
 * create thousands of folders, which a loaded disk makes slow. */
static inline char *
th_tempdir_fast(void)
{
    if (access("/dev/shm", W_OK) == 0) {
        char *path = mpb_strdup("/dev/shm/mpb-test-XXXXXX");
        if (mkdtemp(path) != NULL) {
            return path;
        }
        free(path);
    }
    return th_tempdir();
}

static inline void
th_cleanup(char **dir_p)
{
    if (*dir_p != NULL) {
        assert_int_equal(mpb__fs_rm_rf(*dir_p), 0);
        free(*dir_p);
        *dir_p = NULL;
    }
}

/* Whole file as a string (NULL when missing); caller frees. */
static inline char *
th_read(const char *path)
{
    char *text = NULL;
    if (mpb__fs_read_file(path, 64 << 20, &text, NULL) < 0) {
        return NULL;
    }
    return text;
}

/* Fails unless the file at path holds exactly `expected`. */
static inline void
th_assert_file(const char *path, const char *expected)
{
    char *text = th_read(path);
    if (text == NULL) {
        fail_msg("%s is missing", path);
    }
    assert_string_equal(text, expected);
    free(text);
}

static inline char *th_pathf(const char *fmt, ...) MPB_PRINTF(1, 2);

static inline char *
th_pathf(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *text = NULL;
    if (vasprintf(&text, fmt, args) < 0) {
        fail_msg("vasprintf");
    }
    va_end(args);
    return text;
}

/* Opens <dir>/mlruns, failing the test on error. */
static inline mpb_store *
th_open(const char *dir)
{
    char err[512] = "";
    char *root = mpb__path_join(dir, "mlruns");
    mpb_store *store = NULL;
    int rc = mpb_store_open(root, &store, err, sizeof err);
    if (rc != 0) {
        fail_msg("mpb_store_open(%s): %s", root, err);
    }
    free(root);
    return store;
}

/* Creates an experiment, failing the test on error; caller frees the id. */
static inline char *
th_experiment(mpb_store *store, const char *name)
{
    char err[512] = "";
    char *id = NULL;
    int rc = mpb_store_create_experiment(store, name, NULL, NULL, 0, &id, err, sizeof err);
    if (rc != 0) {
        fail_msg("create_experiment(%s): %s", name, err);
    }
    return id;
}

static inline char *
th_run(mpb_store *store, const char *experiment_id, const char *name)
{
    char err[512] = "";
    char *id = NULL;
    int rc = mpb_store_create_run(store, experiment_id, "tester", -1, name, NULL, 0, &id, err,
                                  sizeof err);
    if (rc != 0) {
        fail_msg("create_run: %s", err);
    }
    return id;
}

/* A file store in a fresh folder with one experiment (none when experiment
 * is NULL) and, when run_name is not NULL, one run in it (user "tester"):
 * what most store tests start from. Free with th_fixture_teardown. */
typedef struct th_fixture {
    char *dir;  /* the temp folder */
    char *root; /* the store's mlruns folder, a plain path */
    mpb_store *store;
    char *exp_id;   /* NULL without an experiment */
    char *run_id;   /* NULL without a run */
    char err[1024]; /* for the test's own calls */
} th_fixture;

static inline th_fixture *
th_fixture_new(const char *experiment, const char *run_name)
{
    th_fixture *f = mpb_calloc(1, sizeof *f);
    f->dir = th_tempdir();
    f->store = th_open(f->dir);
    f->root = mpb__file_uri_to_path(mpb_store_uri(f->store));
    if (experiment != NULL) {
        f->exp_id = th_experiment(f->store, experiment);
    }
    if (run_name != NULL) {
        f->run_id = th_run(f->store, f->exp_id, run_name);
    }
    return f;
}

/* A cmocka teardown for a th_fixture state: closes the store, removes the folder. */
static inline int
th_fixture_teardown(void **state)
{
    th_fixture *f = *state;
    mpb_store_destroy(&f->store);
    th_cleanup(&f->dir);
    free(f->root);
    free(f->exp_id);
    free(f->run_id);
    free(f);
    *state = NULL;
    return 0;
}

/* A cmocka setup: th_fixture_new("exp-a", "first-run") holding what a used
 * store holds: the experiment tag team=vision and one batch of the run
 * (metric loss 0.5 at step 1, param lr=0.1, tag stage=train). */
static inline int
th_sample_setup(void **state)
{
    th_fixture *f = th_fixture_new("exp-a", "first-run");
    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, f->exp_id, "team", "vision", f->err, sizeof f->err),
        0);
    mpb_metric metric = {"loss", 0.5, 1000, 1};
    mpb_param param = {"lr", "0.1"};
    mpb_tag tag = {"stage", "train"};
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, &metric, 1, &param, 1, &tag, 1,
                                         f->err, sizeof f->err),
                     0);
    *state = f;
    return 0;
}

/* Waits for a child at most timeout_ms; kills it on timeout (test fails).
 * Returns the exit status. */
static inline int
th_wait_child(pid_t pid, int timeout_ms)
{
    int64_t deadline = mpb_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int status = 0;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            if (WIFSIGNALED(status)) {
                fail_msg("child %d died of signal %d", (int)pid, WTERMSIG(status));
            }
            return WEXITSTATUS(status);
        }
        if (done < 0) {
            fail_msg("waitpid failed");
        }
        if (mpb_now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("child %d missed its deadline of %d ms", (int)pid, timeout_ms);
        }
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* Runs `<build>/bin/mpb runs <args...>` (args NULL-terminated) with
 * standard output and error into files of dir, waits at most timeout_ms;
 * *out and *err (replaced; the caller's) get what it wrote. The exit
 * status; skips the test without MPB_BUILD_DIR. */
static inline int
th_mpb_runs(const char *dir, const char *const *args, int timeout_ms, char **out, char **err)
{
    extern char **environ;
    const char *build = getenv("MPB_BUILD_DIR");
    if (build == NULL) {
        skip();
    }
    char *mpb = th_pathf("%s/bin/mpb", build);
    char *argv[32] = {mpb, "runs"};
    int n = 2;
    for (; *args != NULL && n < 31; args++) {
        argv[n++] = (char *)*args;
    }
    argv[n] = NULL;
    char *out_path = th_pathf("%s/stdout", dir);
    char *err_path = th_pathf("%s/stderr", dir);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, mpb, &actions, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    int status = th_wait_child(pid, timeout_ms);
    free(*out);
    free(*err);
    *out = th_read(out_path);
    *err = th_read(err_path);
    free(err_path);
    free(out_path);
    free(mpb);
    return status;
}

#endif
