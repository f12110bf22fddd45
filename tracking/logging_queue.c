/*
 * DESIGN
 * Callers (any thread) copy each log call into one allocation (a node),
 * append it to a FIFO under the queue's lock and wake the writer only when it
 * sleeps. The writer thread (logging_queue_writer.c) takes the oldest run of
 * mergeable nodes, makes one store call for them without the lock, then
 * completes their handles under the lock. A handle is two references (the
 * caller's and the queue's) so it costs one small allocation and no thread;
 * fire-and-forget calls have none.
 * Failure: nobody waits without a deadline. Waiters wake at least every
 * store_call_timeout_ms and fail the queue when the store call in progress
 * has run longer than that; a writer thread that exits in a sink completes
 * everything from its cleanup handler. Shutdown past its deadline cancels
 * what the store has not been handed and says which runs lost what.
 * Files: this one is the API (start, flush, shutdown, stats);
 * logging_queue_enqueue.c makes nodes and handles; logging_queue_writer.c
 * is the writer thread; logging_queue_exit.c drains queues at exit; all of
 * them call down to logging_queue_state.c, what is done under the lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "tracking/batch_split_int.h"
#include "tracking/logging_queue_state_int.h"

#define DEFAULT_CAPACITY 100000
#define DEFAULT_BLOCK_TIMEOUT_MS 5000
#define DEFAULT_CALL_TIMEOUT_MS 30000

mpb_logging_queue *
mpb__logging_queue_new_with_sink(const mpb__log_sink *sink, void *sink_ctx,
                                 const mpb_logging_queue_options *options)
{
    MPB_ASSERT(sink != NULL);
    mpb_logging_queue *q = mpb_calloc(1, sizeof *q);
    q->sink = sink;
    q->sink_ctx = sink_ctx;
    if (options != NULL) {
        q->opts = *options;
    }
    q->writer_ctx.queue = q;
    atomic_init(&q->refs, 1);
    pthread_mutex_init(&q->lock, NULL);
    mpb__cond_init_monotonic(&q->work_cond);
    mpb__cond_init_monotonic(&q->room_cond);
    mpb__cond_init_monotonic(&q->done_cond);
    q->status = MPB_LOGGING_QUEUE_IDLE;
    return q;
}

mpb_logging_queue *
mpb_logging_queue_new(mpb_store *store, const mpb_logging_queue_options *options)
{
    MPB_ASSERT(store != NULL);
    return mpb__logging_queue_new_with_sink(&mpb__store_log_sink, store, options);
}

static int
resolve_options(mpb_logging_queue_options *opts, char *err, size_t err_len)
{
    if (opts->writer_nice < 0 || opts->writer_nice > 19) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "logging queue: writer_nice is 0..19");
    }
    if (opts->block_timeout_ms < 0 || opts->store_call_timeout_ms < 0 || opts->linger_ms < 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "logging queue: timeouts and linger must be >= 0");
    }
    if (opts->when_full != MPB_LOGGING_QUEUE_BLOCK &&
        opts->when_full != MPB_LOGGING_QUEUE_FAIL_FAST) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "logging queue: unknown when_full policy");
    }
    if (opts->capacity == 0) {
        opts->capacity = DEFAULT_CAPACITY;
    }
    if (opts->block_timeout_ms == 0) {
        opts->block_timeout_ms = DEFAULT_BLOCK_TIMEOUT_MS;
    }
    if (opts->store_call_timeout_ms == 0) {
        opts->store_call_timeout_ms = DEFAULT_CALL_TIMEOUT_MS;
    }
    return 0;
}

int
mpb_logging_queue_start(mpb_logging_queue *self, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int64_t exit_timeout_ms;
    int rc = mpb__exit_timeout_ms(&exit_timeout_ms, err, err_len);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&self->lock);
    if (self->status != MPB_LOGGING_QUEUE_IDLE || self->writer_running) {
        pthread_mutex_unlock(&self->lock);
        return mpb__set_error(err, err_len, MPB_EBUSY, "logging queue: already started");
    }
    rc = resolve_options(&self->opts, err, err_len);
    if (rc != 0) {
        pthread_mutex_unlock(&self->lock);
        return rc;
    }
    self->stopping = 0;
    self->writer_exited = 0;
    self->join_claimed = 0;
    atomic_store(&self->failed, 0);
    rc = pthread_create(&self->writer, NULL, mpb__logging_writer_main, self);
    if (rc != 0) {
        pthread_mutex_unlock(&self->lock);
        return mpb__set_error(err, err_len, -rc, "logging queue: cannot start the writer: %s",
                              strerror(rc));
    }
    self->writer_running = 1;
    self->status = MPB_LOGGING_QUEUE_ACTIVE;
    self->owner_pid = getpid();
    pthread_mutex_unlock(&self->lock);
    if (!self->opts.no_exit_drain) {
        mpb__logging_exit_install();
        mpb__logging_exit_enrol(self);
    }
    return 0;
}

/* ---- waiting for the queue ------------------------------------------------------------------ */

/* Under lock: is a node with seq <= target pending or being written? */
static int
work_left_up_to(const mpb_logging_queue *q, uint64_t target)
{
    return (q->group != NULL && q->group->seq <= target) ||
           (q->head != NULL && q->head->seq <= target);
}

static void
leave_done_wait(mpb_logging_queue *q)
{
    if (--q->done_waiters == 0) {
        pthread_cond_broadcast(&q->done_cond);
    }
}

int
mpb_logging_queue_flush(mpb_logging_queue *self, int64_t timeout_ms)
{
    MPB_ASSERT(self != NULL);
    if (timeout_ms < 0) {
        return MPB_EINVAL;
    }
    int64_t deadline = mpb__deadline_after_ms(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    uint64_t target = self->last_seq;
    self->done_waiters++;
    mpb__logging_wake_lingering(self);
    for (;;) {
        if (atomic_load(&self->failed)) {
            rc = MPB_EWRITER_DIED;
            break;
        }
        if (!work_left_up_to(self, target)) {
            break;
        }
        int64_t now = mpb_now_ns();
        if (now >= deadline) {
            rc = MPB_ETIMEDOUT;
            break;
        }
        mpb__logging_cond_wait(self, &self->done_cond,
                               mpb__logging_check_hung(self, now, deadline));
    }
    leave_done_wait(self);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* ---- shutdown ------------------------------------------------------------------------------- */

#define REPORT_RUNS 8

typedef struct run_loss {
    const char *run_id;
    size_t batches;
    size_t metrics;
    size_t params;
    size_t tags;
} run_loss;

/* Appends "run R: B batches (M metrics, P params, T tags)" lines to err. */
static void
report_losses(char *err, size_t err_len, int64_t timeout_ms, const run_loss *losses,
              size_t n_losses, size_t more_runs)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    int used = snprintf(
        err, err_len,
        "logging queue: shutdown deadline (%lld ms) passed; not written:", (long long)timeout_ms);
    for (size_t i = 0; i < n_losses && used >= 0 && (size_t)used < err_len; i++) {
        const run_loss *l = &losses[i];
        used += snprintf(err + used, err_len - (size_t)used,
                         "%s run %s: %zu batches (%zu metrics, %zu params, %zu tags)", i ? ";" : "",
                         l->run_id, l->batches, l->metrics, l->params, l->tags);
    }
    if (more_runs > 0 && used >= 0 && (size_t)used < err_len) {
        snprintf(err + used, err_len - (size_t)used, "; and %zu more runs", more_runs);
    }
}

static void
count_loss(run_loss *losses, size_t *n_losses, size_t *more_runs, const mpb__log_node *node)
{
    size_t i = 0;
    while (i < *n_losses && strcmp(losses[i].run_id, node->run_id) != 0) {
        i++;
    }
    if (i == *n_losses) {
        if (*n_losses == REPORT_RUNS) {
            (*more_runs)++;
            return;
        }
        losses[i] = (run_loss){.run_id = node->run_id};
        (*n_losses)++;
    }
    losses[i].batches++;
    losses[i].metrics += node->n_metrics;
    losses[i].params += node->n_params;
    losses[i].tags += node->n_tags;
}

/* Under lock: cancels every pending node and describes the loss in err. */
static void
cancel_pending(mpb_logging_queue *q, int64_t timeout_ms, char *err, size_t err_len)
{
    run_loss losses[REPORT_RUNS];
    size_t n_losses = 0;
    size_t more_runs = 0;
    mpb__log_node *cancelled = q->head;
    q->head = q->tail = NULL;
    for (mpb__log_node *node = cancelled; node != NULL; node = node->next) {
        count_loss(losses, &n_losses, &more_runs, node);
        mpb__logging_complete_node(q, node, MPB_ECANCELED,
                                   "not written: the queue shut down before the store got it");
        q->queued -= node->cost;
    }
    if (n_losses > 0) {
        report_losses(err, err_len, timeout_ms, losses, n_losses, more_runs);
    } else {
        mpb__set_error(err, err_len, MPB_ETIMEDOUT,
                       "logging queue: shutdown deadline (%lld ms) passed during a store call",
                       (long long)timeout_ms);
    }
    while (cancelled != NULL) { /* the report points into the nodes */
        mpb__log_node *next = cancelled->next;
        mpb__logging_free_node(cancelled);
        cancelled = next;
    }
    pthread_cond_broadcast(&q->room_cond);
}

/* Under lock: joins the exited writer once, whoever gets here first. */
static void
join_writer(mpb_logging_queue *q)
{
    if (!q->join_claimed) {
        q->join_claimed = 1;
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->writer, NULL);
        pthread_mutex_lock(&q->lock);
        q->writer_running = 0;
        pthread_cond_broadcast(&q->done_cond);
        return;
    }
    while (q->writer_running) {
        pthread_cond_wait(&q->done_cond, &q->lock);
    }
}

int
mpb_logging_queue_shutdown(mpb_logging_queue *self, int64_t timeout_ms, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    if (timeout_ms < 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "logging queue: timeout must be >= 0");
    }
    int64_t deadline = mpb__deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&self->lock);
    if (!self->writer_running) {
        pthread_mutex_unlock(&self->lock);
        return 0;
    }
    if (self->status == MPB_LOGGING_QUEUE_ACTIVE) {
        self->status = MPB_LOGGING_QUEUE_TEAR_DOWN;
    }
    self->stopping = 1;
    pthread_cond_signal(&self->work_cond);
    pthread_cond_broadcast(&self->room_cond);
    self->done_waiters++;
    for (;;) {
        int64_t now = mpb_now_ns();
        if (self->writer_exited || now >= deadline) {
            break;
        }
        mpb__logging_cond_wait(self, &self->done_cond,
                               mpb__logging_check_hung(self, now, deadline));
    }
    leave_done_wait(self);
    if (!self->writer_exited) {
        cancel_pending(self, timeout_ms, err, err_len);
        pthread_mutex_unlock(&self->lock);
        return MPB_ETIMEDOUT;
    }
    join_writer(self);
    int rc = 0;
    if (self->status == MPB_LOGGING_QUEUE_FAILED) {
        rc = mpb__set_error(err, err_len, MPB_EWRITER_DIED, "logging queue had failed: %s",
                            self->last_error_text);
    }
    self->status = MPB_LOGGING_QUEUE_IDLE;
    pthread_mutex_unlock(&self->lock);
    return rc;
}

void
mpb_logging_queue_destroy(mpb_logging_queue **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_logging_queue *q = *self_p;
    *self_p = NULL;
    mpb__logging_exit_withdraw(q);
    int64_t timeout_ms = 10000;
    if (mpb__exit_timeout_ms(&timeout_ms, NULL, 0) != 0) {
        timeout_ms = 10000;
    }
    char err[1024];
    int rc = mpb_logging_queue_shutdown(q, timeout_ms, err, sizeof err);
    if (rc != 0 && rc != MPB_EWRITER_DIED) {
        mpb_log_err("tracking", "%s", err);
    }
    pthread_mutex_lock(&q->lock);
    if (q->writer_running && !q->writer_exited) {
        pthread_mutex_unlock(&q->lock);
        mpb_log_err("tracking", "logging queue: the writer is stuck in a store call; "
                                "leaving it running and not freeing the queue");
        pthread_detach(q->writer);
        return;
    }
    if (q->writer_running) {
        join_writer(q);
    }
    while (q->done_waiters > 0 || q->room_waiters > 0) {
        pthread_cond_wait(&q->done_cond, &q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    mpb__logging_queue_unref(q);
}

mpb_logging_status
mpb_logging_queue_status(const mpb_logging_queue *self)
{
    MPB_ASSERT(self != NULL);
    mpb_logging_queue *q = (mpb_logging_queue *)self;
    pthread_mutex_lock(&q->lock);
    mpb_logging_status status = q->status;
    pthread_mutex_unlock(&q->lock);
    return status;
}

void
mpb_logging_queue_stats(const mpb_logging_queue *self, mpb_logging_stats *out)
{
    MPB_ASSERT(self != NULL && out != NULL);
    mpb_logging_queue *q = (mpb_logging_queue *)self;
    pthread_mutex_lock(&q->lock);
    *out = q->stats;
    out->queued = q->queued;
    pthread_mutex_unlock(&q->lock);
    out->store_calls = atomic_load(&q->store_calls);
}
