/*
 * Helpers shared by the tracking tests: temp folders, file reading, child
 * processes with deadlines. Include after cmocka.h.
 */
#ifndef MPB_TESTS_TRACKING_HELPERS_H
#define MPB_TESTS_TRACKING_HELPERS_H

#include <signal.h>
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

#endif
