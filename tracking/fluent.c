/*
 * DESIGN
 * One process-wide state behind one lock: the store (opened on first use
 * from the explicit URI or MLFLOW_TRACKING_URI), an async logging queue
 * writing to it, the resolved experiment and the stack of active run ids.
 * Log calls enqueue fire-and-forget under the lock; run creation and
 * experiments are synchronous store calls. end_run enqueues the end status
 * (so it is written after the run's data) and waits for it outside the lock.
 * At exit our atexit handler runs before the queue module's drain (it is
 * registered after it): it ends the active runs and shuts the queue down
 * within the exit timeout, and leaves the store open for the queues the
 * drain has still to write (a server tracker on mpb_tracking_store()). After fork() the child drops the parent's state
 * (its writer thread did not come along) and starts afresh.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "mpbatch/tracking.h"
#include "tracking/logging_queue_int.h"
#include "tracking/tracking_util_int.h"

static struct fluent {
    pthread_mutex_t lock;
    pid_t pid;
    char *uri; /* explicit; NULL: mpb_store_default_uri() */
    mpb_store *store;
    mpb_logging_queue *queue;
    char *experiment_id; /* resolved on first need */
    char **stack;        /* active run ids, innermost last */
    size_t depth;
    size_t cap;
    uint64_t failed_seen;
} fl = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void at_exit(void);

static void
before_fork(void)
{
    pthread_mutex_lock(&fl.lock);
}

static void
after_fork(void)
{
    pthread_mutex_unlock(&fl.lock);
}

static void
install_hooks(void)
{
    mpb__logging_exit_install(); /* first, so that our handler runs before the drain */
    atexit(at_exit);
    pthread_atfork(before_fork, after_fork, after_fork);
}

/* Under lock: in a forked child, forget the parent's objects (their threads
 * stayed behind; freeing could meet locks held at fork). */
static void
adopt_process(void)
{
    pid_t self = getpid();
    if (fl.pid != self) {
        fl.store = NULL;
        fl.queue = NULL;
        fl.stack = NULL;
        fl.depth = fl.cap = 0;
        fl.experiment_id = NULL;
        fl.failed_seen = 0;
        fl.pid = self;
    }
}

/* Under lock: opens the store and starts the queue on first use. */
static int
open_locked(char *err, size_t err_len)
{
    adopt_process();
    if (fl.queue != NULL) {
        return 0;
    }
    pthread_once(&hooks_once, install_hooks);
    int rc = mpb_store_open(fl.uri, &fl.store, err, err_len);
    if (rc != 0) {
        return rc;
    }
    fl.queue = mpb_logging_queue_new(fl.store, NULL);
    rc = mpb_logging_queue_start(fl.queue, err, err_len);
    if (rc != 0) {
        mpb_logging_queue_destroy(&fl.queue);
        mpb_store_destroy(&fl.store);
    }
    return rc;
}

static int64_t
exit_timeout_ms(void)
{
    int64_t ms = 10000;
    mpb__exit_timeout_ms(&ms, NULL, 0);
    return ms;
}

/* ---- experiments ---------------------------------------------------------------------------- */

/* Under lock: the id of the named experiment, created if missing. */
static int
experiment_by_name(const char *name, char **id_out, char *err, size_t err_len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        mpb_experiment *exp = NULL;
        int rc = mpb_store_get_experiment_by_name(fl.store, name, &exp, err, err_len);
        if (rc == 0) {
            int deleted = strcmp(exp->lifecycle_stage, "deleted") == 0;
            if (!deleted) {
                *id_out = mpb_strdup(exp->experiment_id);
            }
            mpb_experiment_free(&exp);
            if (deleted) {
                return mpb__set_error(err, err_len, MPB_EINVAL,
                                      "experiment '%s' is deleted: restore it or pick another "
                                      "name",
                                      name);
            }
            return 0;
        }
        if (rc != MPB_ENOTFOUND) {
            return rc;
        }
        rc = mpb_store_create_experiment(fl.store, name, NULL, NULL, 0, id_out, err, err_len);
        if (rc != MPB_EEXIST) { /* EEXIST: another process created it; read it again */
            return rc;
        }
    }
    return mpb__set_error(err, err_len, MPB_ESTORE, "experiment '%s' could not be created", name);
}

static int
experiment_by_id(const char *id, char *err, size_t err_len)
{
    mpb_experiment *exp = NULL;
    int rc = mpb_store_get_experiment(fl.store, id, &exp, err, err_len);
    if (rc != 0) {
        return rc;
    }
    int deleted = strcmp(exp->lifecycle_stage, "deleted") == 0;
    mpb_experiment_free(&exp);
    if (deleted) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "experiment %s is deleted", id);
    }
    fl.experiment_id = mpb_strdup(id);
    return 0;
}

/* Under lock, store open: explicit > MLFLOW_EXPERIMENT_NAME > _ID > "0". */
static int
resolve_experiment(char *err, size_t err_len)
{
    if (fl.experiment_id != NULL) {
        return 0;
    }
    const char *name = getenv("MLFLOW_EXPERIMENT_NAME");
    if (name != NULL && *name != '\0') {
        return experiment_by_name(name, &fl.experiment_id, err, err_len);
    }
    const char *id = getenv("MLFLOW_EXPERIMENT_ID");
    if (id != NULL && *id != '\0') {
        return experiment_by_id(id, err, err_len);
    }
    fl.experiment_id = mpb_strdup(MPB_DEFAULT_EXPERIMENT_ID);
    return 0;
}

int
mpb_tracking_set_experiment(const char *name, char *err, size_t err_len)
{
    MPB_ASSERT(name != NULL);
    pthread_mutex_lock(&fl.lock);
    int rc = open_locked(err, err_len);
    char *id = NULL;
    if (rc == 0) {
        rc = experiment_by_name(name, &id, err, err_len);
    }
    if (rc == 0) {
        free(fl.experiment_id);
        fl.experiment_id = id;
    }
    pthread_mutex_unlock(&fl.lock);
    return rc;
}

int
mpb_tracking_set_tracking_uri(const char *uri, char *err, size_t err_len)
{
    MPB_ASSERT(uri != NULL);
    pthread_mutex_lock(&fl.lock);
    adopt_process();
    if (fl.depth > 0) {
        pthread_mutex_unlock(&fl.lock);
        return mpb__set_error(err, err_len, MPB_EBUSY,
                              "a run is active: end it before changing the tracking URI");
    }
    pthread_mutex_unlock(&fl.lock);
    int rc = mpb_tracking_shutdown(0, err, err_len); /* closes the current store, if any */
    pthread_mutex_lock(&fl.lock);
    free(fl.uri);
    fl.uri = mpb_strdup(uri);
    pthread_mutex_unlock(&fl.lock);
    return rc;
}

/* ---- runs ----------------------------------------------------------------------------------- */

static void
push_run(char *run_id)
{
    if (fl.depth == fl.cap) {
        fl.cap = fl.cap ? 2 * fl.cap : 4;
        fl.stack = mpb_realloc(fl.stack, fl.cap * sizeof *fl.stack);
    }
    fl.stack[fl.depth++] = run_id;
}

/* Under lock: the outermost run resumes MLFLOW_RUN_ID. */
static int
resume_run(const char *run_id, const char *run_name, char *err, size_t err_len)
{
    mpb_run *run = NULL;
    int rc = mpb_store_get_run(fl.store, run_id, &run, err, err_len);
    if (rc != 0) {
        return rc;
    }
    int deleted = strcmp(run->info.lifecycle_stage, "deleted") == 0;
    mpb_run_free(&run);
    if (deleted) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "MLFLOW_RUN_ID %s is a deleted run",
                              run_id);
    }
    rc = mpb_store_update_run(fl.store, run_id, MPB_RUN_RUNNING, -1, run_name, err, err_len);
    if (rc == 0) {
        push_run(mpb_strdup(run_id));
    }
    return rc;
}

/* Under lock, store open. */
static int
start_run_locked(const char *run_name, char *err, size_t err_len)
{
    const char *resume = getenv("MLFLOW_RUN_ID");
    if (fl.depth == 0 && resume != NULL && *resume != '\0') {
        return resume_run(resume, run_name, err, err_len);
    }
    int rc = resolve_experiment(err, err_len);
    if (rc != 0) {
        return rc;
    }
    char *user = mpb__tracking_user();
    mpb_tag tags[5];
    size_t n_tags = 0;
    tags[n_tags++] = (mpb_tag){MPB_TAG_USER, user};
    tags[n_tags++] = (mpb_tag){MPB_TAG_SOURCE_NAME, program_invocation_name};
    tags[n_tags++] = (mpb_tag){MPB_TAG_SOURCE_TYPE, "LOCAL"};
    if (run_name != NULL) {
        tags[n_tags++] = (mpb_tag){MPB_TAG_RUN_NAME, run_name};
    }
    if (fl.depth > 0) {
        tags[n_tags++] = (mpb_tag){MPB_TAG_PARENT_RUN_ID, fl.stack[fl.depth - 1]};
    }
    char *run_id = NULL;
    rc = mpb_store_create_run(fl.store, fl.experiment_id, user, -1, run_name, tags, n_tags, &run_id,
                              err, err_len);
    free(user);
    if (rc == 0) {
        push_run(run_id);
    }
    return rc;
}

static int
copy_id(const char *run_id, char *out, size_t out_len)
{
    if (out == NULL) {
        return 0;
    }
    if (strlen(run_id) >= out_len) {
        return MPB_ERANGE;
    }
    strcpy(out, run_id);
    return 0;
}

int
mpb_tracking_start_run(const char *run_name, char *run_id_out, size_t run_id_len, char *err,
                       size_t err_len)
{
    pthread_mutex_lock(&fl.lock);
    int rc = open_locked(err, err_len);
    if (rc == 0) {
        rc = start_run_locked(run_name, err, err_len);
    }
    if (rc == 0) {
        rc = copy_id(fl.stack[fl.depth - 1], run_id_out, run_id_len);
    }
    pthread_mutex_unlock(&fl.lock);
    return rc;
}

int
mpb_tracking_end_run(mpb_run_status status, char *err, size_t err_len)
{
    pthread_mutex_lock(&fl.lock);
    adopt_process();
    if (fl.depth == 0) {
        pthread_mutex_unlock(&fl.lock);
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "no active run to end");
    }
    char *run_id = fl.stack[fl.depth - 1];
    mpb_logging_handle *handle = NULL;
    int rc = mpb_logging_queue_update_run(fl.queue, run_id, status, mpb_wall_ms(), &handle);
    if (rc != 0) {
        /* the run stays active: end_run may be tried again, and the exit
         * handler ends it otherwise */
        rc = mpb__set_error(err, err_len, rc,
                            "run %s: end status not queued: %s (the run is still active)",
                            run_id, mpb_strerror(rc));
        pthread_mutex_unlock(&fl.lock);
        return rc;
    }
    fl.depth--;
    pthread_mutex_unlock(&fl.lock);
    rc = mpb_logging_handle_wait(handle, exit_timeout_ms(), err, err_len);
    mpb_logging_handle_release(&handle);
    free(run_id);
    return rc;
}

int
mpb_tracking_active_run_id(char *run_id_out, size_t run_id_len)
{
    MPB_ASSERT(run_id_out != NULL);
    pthread_mutex_lock(&fl.lock);
    adopt_process();
    int rc = MPB_ENOTFOUND;
    if (fl.depth > 0) {
        rc = copy_id(fl.stack[fl.depth - 1], run_id_out, run_id_len);
    }
    pthread_mutex_unlock(&fl.lock);
    return rc;
}

/* ---- logging -------------------------------------------------------------------------------- */

/* Under lock: the active run, started (unnamed) when there is none. */
static const char *
active_run_locked(int *rc, char *err, size_t err_len)
{
    *rc = open_locked(err, err_len);
    if (*rc == 0 && fl.depth == 0) {
        *rc = start_run_locked(NULL, err, err_len);
    }
    return *rc == 0 ? fl.stack[fl.depth - 1] : NULL;
}

static int
log_locked(const mpb_metric *metric, const mpb_param *param, const mpb_tag *tag)
{
    pthread_mutex_lock(&fl.lock);
    char err[256];
    int rc;
    const char *run_id = active_run_locked(&rc, err, sizeof err);
    if (rc == 0) {
        rc = mpb_logging_queue_log_batch(fl.queue, run_id, metric, metric ? 1 : 0, param,
                                         param ? 1 : 0, tag, tag ? 1 : 0, NULL);
    }
    pthread_mutex_unlock(&fl.lock);
    return rc;
}

int
mpb_tracking_log_param(const char *key, const char *value)
{
    mpb_param param = {key, value};
    return log_locked(NULL, &param, NULL);
}

int
mpb_tracking_log_metric(const char *key, double value, int64_t step)
{
    mpb_metric metric = {key, value, mpb_wall_ms(), step};
    return log_locked(&metric, NULL, NULL);
}

int
mpb_tracking_set_tag(const char *key, const char *value)
{
    mpb_tag tag = {key, value};
    return log_locked(NULL, NULL, &tag);
}

int
mpb_tracking_log_artifact(const char *local_path, const char *artifact_path, char *err,
                          size_t err_len)
{
    MPB_ASSERT(local_path != NULL);
    pthread_mutex_lock(&fl.lock);
    int rc;
    const char *run_id = active_run_locked(&rc, err, err_len);
    if (rc == 0) {
        rc = mpb_store_log_artifact(fl.store, run_id, local_path, artifact_path, err, err_len);
    }
    pthread_mutex_unlock(&fl.lock);
    return rc;
}

int
mpb_tracking_flush(int64_t timeout_ms)
{
    pthread_mutex_lock(&fl.lock);
    adopt_process();
    int rc = 0;
    if (fl.queue != NULL) {
        rc = mpb_logging_queue_flush(fl.queue, timeout_ms);
        mpb_logging_stats stats;
        mpb_logging_queue_stats(fl.queue, &stats);
        if (rc == 0 && stats.failed > fl.failed_seen) {
            rc = stats.last_error;
        }
        fl.failed_seen = stats.failed;
    }
    pthread_mutex_unlock(&fl.lock);
    return rc;
}

mpb_logging_queue *
mpb_tracking_queue(char *err, size_t err_len)
{
    pthread_mutex_lock(&fl.lock);
    mpb_logging_queue *queue = open_locked(err, err_len) == 0 ? fl.queue : NULL;
    pthread_mutex_unlock(&fl.lock);
    return queue;
}

mpb_store *
mpb_tracking_store(char *err, size_t err_len)
{
    pthread_mutex_lock(&fl.lock);
    mpb_store *store = open_locked(err, err_len) == 0 ? fl.store : NULL;
    pthread_mutex_unlock(&fl.lock);
    return store;
}

/* ---- shutdown ------------------------------------------------------------------------------- */

/* Ends every active run and shuts the queue down. An end status the queue
 * refuses (full, failed, closed) is written to the store directly once the
 * queue is drained, so no run is left RUNNING. With keep_store the store
 * stays open: at exit, trackers of servers may still write through it
 * (mpb_tracking_store) until the queue module's drain has run. */
static int
shutdown_locked(int exit_status, int keep_store, char *err, size_t err_len)
{
    int rc = 0;
    mpb_run_status status = exit_status == 0 ? MPB_RUN_FINISHED : MPB_RUN_FAILED;
    int64_t now = mpb_wall_ms();
    char **unqueued = mpb_calloc(fl.depth ? fl.depth : 1, sizeof *unqueued);
    size_t n_unqueued = 0;
    while (fl.depth > 0) {
        char *run_id = fl.stack[--fl.depth];
        if (fl.queue == NULL ||
            mpb_logging_queue_update_run(fl.queue, run_id, status, now, NULL) != 0) {
            unqueued[n_unqueued++] = run_id;
        } else {
            free(run_id);
        }
    }
    if (fl.queue != NULL) {
        rc = mpb_logging_queue_shutdown(fl.queue, exit_timeout_ms(), err, err_len);
        mpb_logging_queue_destroy(&fl.queue);
    }
    for (size_t i = 0; i < n_unqueued; i++) {
        char why[256];
        int written = fl.store ? mpb_store_update_run(fl.store, unqueued[i], status, now, NULL,
                                                      why, sizeof why)
                               : MPB_ECLOSED;
        if (written != 0 && rc == 0) {
            rc = mpb__set_error(err, err_len, written, "run %s: end status not written: %s",
                                unqueued[i], fl.store ? why : "no store");
        }
        free(unqueued[i]);
    }
    free(unqueued);
    if (!keep_store) {
        mpb_store_destroy(&fl.store);
    }
    free(fl.stack);
    fl.stack = NULL;
    fl.cap = 0;
    free(fl.experiment_id);
    fl.experiment_id = NULL;
    fl.failed_seen = 0;
    return rc;
}

int
mpb_tracking_shutdown(int exit_status, char *err, size_t err_len)
{
    pthread_mutex_lock(&fl.lock);
    adopt_process();
    int rc = shutdown_locked(exit_status, 0, err, err_len);
    pthread_mutex_unlock(&fl.lock);
    return rc;
}

static void
at_exit(void)
{
    pthread_mutex_lock(&fl.lock);
    int ours = fl.pid == getpid() && fl.queue != NULL;
    pthread_mutex_unlock(&fl.lock);
    if (!ours) {
        return;
    }
    char err[1024];
    pthread_mutex_lock(&fl.lock);
    int rc = shutdown_locked(0, 1, err, sizeof err);
    pthread_mutex_unlock(&fl.lock);
    if (rc != 0) {
        mpb_log_err("tracking", "at exit: %s", err);
    }
}
