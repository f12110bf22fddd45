/*
 * What every side of the logging queue does under its lock: completing and
 * freeing nodes and handles, timed waits, the hung-call check, failing the
 * queue, waking a lingering writer, and dropping the queue's memory.
 * logging_queue.c (the API; it has the DESIGN comment), the enqueue side
 * and the writer thread all call down to here, and this file calls none of
 * them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "tracking/logging_queue_state_int.h"

/* ---- waiting, and failing the queue ------------------------------------------------------ */

void
mpb__logging_cond_wait(mpb_logging_queue *q, pthread_cond_t *cond, int64_t deadline_ns)
{
    struct timespec at = {.tv_sec = (time_t)(deadline_ns / 1000000000),
                          .tv_nsec = (long)(deadline_ns % 1000000000)};
    pthread_cond_timedwait(cond, &q->lock, &at);
}

static int64_t
call_timeout_ns(const mpb_logging_queue *q)
{
    int64_t ms = q->opts.store_call_timeout_ms > 0 ? q->opts.store_call_timeout_ms : 30000;
    return ms * MPB__NS_PER_MS;
}

int64_t
mpb__logging_check_hung(mpb_logging_queue *q, int64_t now_ns, int64_t deadline_ns)
{
    int64_t limit = call_timeout_ns(q);
    int64_t wake = now_ns > INT64_MAX - limit ? INT64_MAX : now_ns + limit;
    int64_t started = atomic_load(&q->call_started_ns);
    if (started != 0 && !atomic_load(&q->failed)) {
        if (now_ns - started >= limit) {
            char why[160];
            snprintf(why, sizeof why, "a store call has not returned after %lld ms",
                     (long long)(limit / MPB__NS_PER_MS));
            mpb__logging_fail(q, MPB_ETIMEDOUT, why);
            return now_ns;
        }
        wake = started + limit;
    }
    return wake < deadline_ns ? wake : deadline_ns;
}

void
mpb__logging_fail(mpb_logging_queue *q, int group_status, const char *why)
{
    if (atomic_load(&q->failed)) {
        return;
    }
    atomic_store(&q->failed, 1);
    q->status = MPB_LOGGING_QUEUE_FAILED;
    for (mpb__log_node *node = q->group; node != NULL; node = node->next) {
        mpb__logging_complete_node(q, node, group_status, why); /* the writer still owns it */
    }
    char message[256];
    snprintf(message, sizeof message, "not written: the queue's writer failed (%s)", why);
    mpb__log_node *node = q->head;
    q->head = q->tail = NULL;
    while (node != NULL) {
        mpb__log_node *next = node->next;
        mpb__logging_complete_node(q, node, MPB_EWRITER_DIED, message);
        q->queued -= node->cost;
        mpb__logging_free_node(node);
        node = next;
    }
    snprintf(q->last_error_text, sizeof q->last_error_text, "%s", why);
    pthread_cond_broadcast(&q->work_cond);
    pthread_cond_broadcast(&q->room_cond);
    pthread_cond_broadcast(&q->done_cond);
}

/* Entities worth one store call: a lingering writer stops waiting at this
 * many, or at half the queue's capacity when that is less. */
#define LINGER_ENOUGH 1000

size_t
mpb__logging_linger_enough(const mpb_logging_queue *q)
{
    return q->opts.capacity / 2 < LINGER_ENOUGH ? q->opts.capacity / 2 : LINGER_ENOUGH;
}

void
mpb__logging_wake_lingering(mpb_logging_queue *q)
{
    if (q->writer_lingering) {
        pthread_cond_signal(&q->work_cond);
    }
}

/* ---- nodes and handles ------------------------------------------------------------------- */

void
mpb__logging_free_node(mpb__log_node *node)
{
    if (node->kind == MPB__NODE_JOB && node->free_ctx != NULL) {
        node->free_ctx(node->ctx);
    }
    free(node->result_message);
    free(node);
}

void
mpb__logging_handle_unref(mpb_logging_handle *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
        free(h->message);
        free(h);
    }
}

#define WARN_INTERVAL_NS (10000 * MPB__NS_PER_MS)

/* Under lock: a fire-and-forget batch failed and nobody will look at a handle;
 * say so on stderr, at most one line per status change or 10 s. */
static void
warn_unobserved_failure(mpb_logging_queue *q, const mpb__log_node *node, int status,
                        const char *message)
{
    int64_t now = mpb_now_ns();
    if (status == q->warned_status && now - q->warned_at_ns < WARN_INTERVAL_NS) {
        q->warn_suppressed++;
        return;
    }
    char suppressed[64] = "";
    if (q->warn_suppressed > 0) {
        snprintf(suppressed, sizeof suppressed, " (%llu similar lines suppressed)",
                 (unsigned long long)q->warn_suppressed);
    }
    mpb_log_warn("tracking", "run %s: %zu metrics, %zu params, %zu tags not written: %s%s",
                 node->run_id, node->n_metrics, node->n_params, node->n_tags,
                 message ? message : mpb_strerror(status), suppressed);
    q->warned_status = status;
    q->warned_at_ns = now;
    q->warn_suppressed = 0;
}

void
mpb__logging_complete_node(mpb_logging_queue *q, mpb__log_node *node, int status,
                           const char *message)
{
    if (status == 0) {
        q->stats.written++;
    } else {
        q->stats.failed++;
        q->stats.last_error = status;
        snprintf(q->last_error_text, sizeof q->last_error_text, "run %s: %s", node->run_id,
                 message ? message : mpb_strerror(status));
    }
    mpb_logging_handle *h = node->handle;
    node->handle = NULL;
    if (h == NULL) {
        if (status != 0 && status != MPB_ECANCELED) { /* cancels are reported by shutdown */
            warn_unobserved_failure(q, node, status, message);
        }
        return;
    }
    if (status != 0 && h->status == 0) {
        h->status = status;
        h->message = mpb_strdup(message ? message : mpb_strerror(status));
    }
    MPB_ASSERT(h->parts_left > 0);
    if (--h->parts_left == 0) {
        atomic_store_explicit(&h->done, 1, memory_order_release);
        mpb__logging_handle_unref(h);
    }
}
/* ---- the queue's memory ------------------------------------------------------------------ */

void
mpb__logging_queue_unref(mpb_logging_queue *q)
{
    if (atomic_fetch_sub(&q->refs, 1) != 1) {
        return;
    }
    free(q->merge_metrics);
    free(q->merge_params);
    free(q->merge_tags);
    pthread_cond_destroy(&q->work_cond);
    pthread_cond_destroy(&q->room_cond);
    pthread_cond_destroy(&q->done_cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
