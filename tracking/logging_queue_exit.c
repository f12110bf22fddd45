/*
 * DESIGN
 * The exit drain: one atexit handler per process shuts down every enrolled
 * logging queue of this process, all within MPB_TRACKING_EXIT_TIMEOUT_MS in
 * total, and reports on stderr what it could not write. The variable is
 * parsed once; a bad value makes mpb_logging_queue_start() fail with the
 * reason rather than surprise the writer later. After fork() the child
 * forgets every enrolled queue: their writer threads stayed in the parent.
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
#include "tracking/logging_queue_state_int.h"

#define EXIT_TIMEOUT_ENV "MPB_TRACKING_EXIT_TIMEOUT_MS"
#define DEFAULT_EXIT_TIMEOUT_MS 10000
#define MAX_EXIT_TIMEOUT_MS INT64_C(86400000)

int
mpb__exit_timeout_parse(const char *text, int64_t *out_ms, char *err, size_t err_len)
{
    if (text == NULL || *text == '\0') {
        *out_ms = DEFAULT_EXIT_TIMEOUT_MS;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || value < 0 ||
        value > MAX_EXIT_TIMEOUT_MS) {
        return mpb__set_error(err, err_len, MPB_ECONFIG,
                              "%s=\"%s\": expected whole milliseconds from 0 to %lld",
                              EXIT_TIMEOUT_ENV, text, (long long)MAX_EXIT_TIMEOUT_MS);
    }
    *out_ms = value;
    return 0;
}

static pthread_once_t timeout_once = PTHREAD_ONCE_INIT;
static int timeout_status;
static int64_t timeout_ms = DEFAULT_EXIT_TIMEOUT_MS;
static char timeout_error[256];

static void
parse_timeout_env(void)
{
    timeout_status = mpb__exit_timeout_parse(getenv(EXIT_TIMEOUT_ENV), &timeout_ms, timeout_error,
                                             sizeof timeout_error);
}

int
mpb__exit_timeout_ms(int64_t *out_ms, char *err, size_t err_len)
{
    pthread_once(&timeout_once, parse_timeout_env);
    if (timeout_status != 0) {
        return mpb__set_error(err, err_len, timeout_status, "%s", timeout_error);
    }
    *out_ms = timeout_ms;
    return 0;
}

/* ---- the registry --------------------------------------------------------------------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mpb_logging_queue *enrolled;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void
drain_queue(mpb_logging_queue *q, int64_t deadline_ns)
{
    mpb_logging_stats before;
    mpb_logging_stats after;
    char err[1024];
    int64_t left_ms = (deadline_ns - mpb_now_ns()) / MPB__NS_PER_MS;
    mpb_logging_queue_stats(q, &before);
    int rc = mpb_logging_queue_shutdown(q, left_ms > 0 ? left_ms : 0, err, sizeof err);
    if (rc != 0) {
        mpb_log_err("tracking", "at exit: %s", err);
    }
    mpb_logging_queue_stats(q, &after);
    uint64_t failed = after.failed - before.failed;
    if (failed > 0 && rc == 0) {
        pthread_mutex_lock(&q->lock);
        mpb_log_err("tracking", "at exit: %llu batches failed to write; the last: %s",
                    (unsigned long long)failed, q->last_error_text);
        pthread_mutex_unlock(&q->lock);
    }
}

static void
drain_at_exit(void)
{
    int64_t budget_ms = DEFAULT_EXIT_TIMEOUT_MS;
    if (mpb__exit_timeout_ms(&budget_ms, NULL, 0) != 0) {
        budget_ms = DEFAULT_EXIT_TIMEOUT_MS;
    }
    int64_t deadline = mpb__deadline_after_ms(budget_ms);
    pid_t self = getpid();
    pthread_mutex_lock(&registry_lock);
    for (mpb_logging_queue *q = enrolled; q != NULL; q = q->exit_next) {
        if (q->owner_pid == self) {
            drain_queue(q, deadline);
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

static void
before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
}

static void
after_fork_parent(void)
{
    pthread_mutex_unlock(&registry_lock);
}

static void
after_fork_child(void)
{
    enrolled = NULL;
    pthread_mutex_unlock(&registry_lock);
}

static void
install(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    atexit(drain_at_exit);
}

void
mpb__logging_exit_install(void)
{
    pthread_once(&install_once, install);
}

void
mpb__logging_exit_enrol(mpb_logging_queue *queue)
{
    pthread_mutex_lock(&registry_lock);
    if (!queue->exit_enrolled) {
        queue->exit_enrolled = 1;
        queue->exit_next = enrolled;
        enrolled = queue;
    }
    pthread_mutex_unlock(&registry_lock);
}

void
mpb__logging_exit_withdraw(mpb_logging_queue *queue)
{
    pthread_mutex_lock(&registry_lock);
    if (queue->exit_enrolled) {
        mpb_logging_queue **link = &enrolled;
        while (*link != queue) {
            link = &(*link)->exit_next;
        }
        *link = queue->exit_next;
        queue->exit_enrolled = 0;
    }
    pthread_mutex_unlock(&registry_lock);
}
