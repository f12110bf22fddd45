/*
 * The enqueue side of the logging queue: copying a log call into nodes,
 * appending them under the bounded-capacity policy, and handles.
 * (logging_queue.c has the DESIGN comment.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "tracking/batch_split_int.h"
#include "tracking/logging_queue_state_int.h"

/* ---- nodes ---------------------------------------------------------------------------------- */

static size_t
align8(size_t size)
{
    return (size + 7) & ~(size_t)7;
}

static char *
copy_string(char **cursor, const char *text)
{
    size_t len = strlen(text) + 1;
    char *copy = *cursor;
    memcpy(copy, text, len);
    *cursor += len;
    return copy;
}

/* One allocation: node, arrays, then every string. */
static mpb__log_node *
node_new_batch(const char *run_id, const mpb_metric *metrics, const mpb_param *params,
               const mpb_tag *tags, const mpb__batch_part *part)
{
    size_t strings = strlen(run_id) + 1;
    for (size_t i = 0; i < part->n_metrics; i++) {
        MPB_ASSERT(metrics[part->metric_first + i].key != NULL);
        strings += strlen(metrics[part->metric_first + i].key) + 1;
    }
    for (size_t i = 0; i < part->n_params; i++) {
        const mpb_param *p = &params[part->param_first + i];
        MPB_ASSERT(p->key != NULL && p->value != NULL);
        strings += strlen(p->key) + strlen(p->value) + 2;
    }
    for (size_t i = 0; i < part->n_tags; i++) {
        const mpb_tag *t = &tags[part->tag_first + i];
        MPB_ASSERT(t->key != NULL && t->value != NULL);
        strings += strlen(t->key) + strlen(t->value) + 2;
    }
    size_t metrics_at = align8(sizeof(mpb__log_node));
    size_t params_at = metrics_at + align8(part->n_metrics * sizeof(mpb_metric));
    size_t tags_at = params_at + align8(part->n_params * sizeof(mpb_param));
    size_t strings_at = tags_at + align8(part->n_tags * sizeof(mpb_tag));
    char *block = mpb_malloc(strings_at + strings);
    mpb__log_node *node = (mpb__log_node *)block;
    memset(node, 0, sizeof *node);
    mpb_metric *m = (mpb_metric *)(block + metrics_at);
    mpb_param *p = (mpb_param *)(block + params_at);
    mpb_tag *t = (mpb_tag *)(block + tags_at);
    char *cursor = block + strings_at;

    node->kind = MPB__NODE_BATCH;
    node->run_id = copy_string(&cursor, run_id);
    for (size_t i = 0; i < part->n_metrics; i++) {
        m[i] = metrics[part->metric_first + i];
        m[i].key = copy_string(&cursor, m[i].key);
    }
    for (size_t i = 0; i < part->n_params; i++) {
        p[i].key = copy_string(&cursor, params[part->param_first + i].key);
        p[i].value = copy_string(&cursor, params[part->param_first + i].value);
    }
    for (size_t i = 0; i < part->n_tags; i++) {
        t[i].key = copy_string(&cursor, tags[part->tag_first + i].key);
        t[i].value = copy_string(&cursor, tags[part->tag_first + i].value);
    }
    node->metrics = m;
    node->n_metrics = part->n_metrics;
    node->params = p;
    node->n_params = part->n_params;
    node->tags = t;
    node->n_tags = part->n_tags;
    node->cost = part->n_metrics + part->n_params + part->n_tags;
    if (node->cost == 0) {
        node->cost = 1;
    }
    return node;
}

static mpb__log_node *
node_new_plain(mpb__log_node_kind kind, const char *run_id)
{
    size_t len = strlen(run_id) + 1;
    size_t at = align8(sizeof(mpb__log_node));
    char *block = mpb_malloc(at + len);
    mpb__log_node *node = (mpb__log_node *)block;
    memset(node, 0, sizeof *node);
    memcpy(block + at, run_id, len);
    node->kind = kind;
    node->run_id = block + at;
    node->cost = 1;
    return node;
}

static void
free_node_list(mpb__log_node *node)
{
    while (node != NULL) {
        mpb__log_node *next = node->next;
        mpb__logging_free_node(node);
        node = next;
    }
}

static mpb_logging_handle *
handle_new(mpb_logging_queue *q, size_t parts)
{
    mpb_logging_handle *h = mpb_calloc(1, sizeof *h);
    h->queue = q;
    atomic_init(&h->refs, 2);
    atomic_init(&h->done, 0);
    h->parts_left = parts;
    atomic_fetch_add(&q->refs, 1); /* a handle keeps the queue's memory */
    return h;
}

/* ---- enqueue -------------------------------------------------------------------------------- */

static int
refusal_status(const mpb_logging_queue *q)
{
    if (q->status == MPB_LOGGING_QUEUE_ACTIVE) {
        return 0;
    }
    return q->status == MPB_LOGGING_QUEUE_FAILED ? MPB_EWRITER_DIED : MPB_ECLOSED;
}

/* Under lock: waits for room for `cost` units per the policy. Only a job
 * (whose memory exists already) may exceed the capacity, in an empty queue. */
static int
wait_for_room(mpb_logging_queue *q, size_t cost, int is_job)
{
    int64_t deadline = 0;
    for (;;) {
        int rc = refusal_status(q);
        if (rc != 0) {
            return rc;
        }
        if (cost > q->opts.capacity && !is_job) {
            return MPB_ELIMIT;
        }
        if (q->queued == 0 || q->queued + cost <= q->opts.capacity) {
            return 0;
        }
        if (q->opts.when_full == MPB_LOGGING_QUEUE_FAIL_FAST) {
            q->refused = 1; /* full: a lingering writer has waited long enough */
            mpb__logging_wake_lingering(q);
            return MPB_EFULL;
        }
        int64_t now = mpb_now_ns();
        if (deadline == 0) {
            deadline = mpb__deadline_after_ms(q->opts.block_timeout_ms);
        }
        if (now >= deadline) {
            return MPB_EFULL;
        }
        int64_t wake = mpb__logging_check_hung(q, now, deadline);
        q->room_waiters++;
        mpb__logging_wake_lingering(q);
        mpb__logging_cond_wait(q, &q->room_cond, wake);
        q->room_waiters--;
    }
}

/* Appends a list of nodes (with their handle) as one unit, or frees them. */
static int
enqueue_nodes(mpb_logging_queue *q, mpb__log_node *first, size_t parts,
              mpb_logging_handle **handle_out)
{
    size_t cost = 0;
    mpb__log_node *last = first;
    for (mpb__log_node *n = first; n != NULL; n = n->next) {
        cost += n->cost;
        last = n;
    }
    mpb_logging_handle *handle = handle_out != NULL ? handle_new(q, parts) : NULL;

    pthread_mutex_lock(&q->lock);
    int rc = wait_for_room(q, cost, first->kind == MPB__NODE_JOB);
    if (rc != 0) {
        if (rc == MPB_EFULL) {
            q->stats.rejected++;
        }
        pthread_mutex_unlock(&q->lock);
        if (handle != NULL) {
            free(handle);
            mpb__logging_queue_unref(q);
        }
        return rc;
    }
    for (mpb__log_node *n = first; n != NULL; n = n->next) {
        n->handle = handle;
        n->seq = ++q->last_seq;
    }
    if (q->tail != NULL) {
        q->tail->next = first;
    } else {
        q->head = first;
    }
    q->tail = last;
    q->queued += cost;
    q->stats.enqueued += parts;
    if (q->writer_sleeping) {
        q->writer_sleeping = 0;
        pthread_cond_signal(&q->work_cond);
    } else if (q->queued >= mpb__logging_linger_enough(q)) {
        mpb__logging_wake_lingering(q); /* a store call's worth is here */
    }
    pthread_mutex_unlock(&q->lock);
    if (handle_out != NULL) {
        *handle_out = handle;
    }
    return 0;
}

int
mpb_logging_queue_log_batch(mpb_logging_queue *self, const char *run_id, const mpb_metric *metrics,
                            size_t n_metrics, const mpb_param *params, size_t n_params,
                            const mpb_tag *tags, size_t n_tags, mpb_logging_handle **handle_out)
{
    MPB_ASSERT(self != NULL && run_id != NULL);
    MPB_ASSERT((metrics != NULL || n_metrics == 0) && (params != NULL || n_params == 0) &&
               (tags != NULL || n_tags == 0));
    mpb__batch_part whole = {.n_metrics = n_metrics, .n_params = n_params, .n_tags = n_tags};
    if (mpb__batch_fits_one_call(n_metrics, n_params, n_tags)) {
        mpb__log_node *node = node_new_batch(run_id, metrics, params, tags, &whole);
        int rc = enqueue_nodes(self, node, 1, handle_out);
        if (rc != 0) {
            mpb__logging_free_node(node);
        }
        return rc;
    }
    mpb__batch_split split;
    mpb__batch_part part;
    mpb__log_node *first = NULL;
    mpb__log_node **link = &first;
    size_t parts = 0;
    mpb__batch_split_init(&split, n_metrics, n_params, n_tags);
    while (mpb__batch_split_next(&split, &part)) {
        *link = node_new_batch(run_id, metrics, params, tags, &part);
        link = &(*link)->next;
        parts++;
    }
    int rc = enqueue_nodes(self, first, parts, handle_out);
    if (rc != 0) {
        free_node_list(first);
    }
    return rc;
}

int
mpb_logging_queue_update_run(mpb_logging_queue *self, const char *run_id, mpb_run_status status,
                             int64_t end_time_ms, mpb_logging_handle **handle_out)
{
    MPB_ASSERT(self != NULL && run_id != NULL);
    mpb__log_node *node = node_new_plain(MPB__NODE_UPDATE_RUN, run_id);
    node->run_status = status;
    node->end_time_ms = end_time_ms;
    int rc = enqueue_nodes(self, node, 1, handle_out);
    if (rc != 0) {
        mpb__logging_free_node(node);
    }
    return rc;
}

int
mpb__logging_queue_submit_job(mpb_logging_queue *self, const char *run_id, size_t cost,
                              mpb__log_job_fn fn, void (*free_ctx)(void *ctx), void *ctx,
                              mpb_logging_handle **handle_out)
{
    MPB_ASSERT(self != NULL && run_id != NULL && fn != NULL);
    mpb__log_node *node = node_new_plain(MPB__NODE_JOB, run_id);
    node->job = fn;
    node->free_ctx = free_ctx;
    node->ctx = ctx;
    node->cost = cost > 0 ? cost : 1;
    int rc = enqueue_nodes(self, node, 1, handle_out);
    if (rc != 0) {
        node->free_ctx = NULL; /* ctx stays the caller's */
        mpb__logging_free_node(node);
    }
    return rc;
}

/* ---- handles -------------------------------------------------------------------------------- */

int
mpb_logging_handle_is_done(const mpb_logging_handle *self)
{
    MPB_ASSERT(self != NULL);
    return atomic_load_explicit(&self->done, memory_order_acquire);
}

int
mpb_logging_handle_wait(mpb_logging_handle *self, int64_t timeout_ms, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    if (timeout_ms < 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "logging handle: timeout must be >= 0");
    }
    if (!mpb_logging_handle_is_done(self)) {
        /* The handle keeps the queue's memory until released. */
        mpb_logging_queue *q = self->queue;
        int64_t deadline = mpb__deadline_after_ms(timeout_ms);
        pthread_mutex_lock(&q->lock);
        q->done_waiters++;
        mpb__logging_wake_lingering(q);
        while (!atomic_load_explicit(&self->done, memory_order_relaxed)) {
            int64_t now = mpb_now_ns();
            if (now >= deadline) {
                break;
            }
            mpb__logging_cond_wait(q, &q->done_cond, mpb__logging_check_hung(q, now, deadline));
        }
        q->done_waiters--;
        if (q->done_waiters == 0) {
            pthread_cond_broadcast(&q->done_cond); /* destroy may wait for waiters to leave */
        }
        pthread_mutex_unlock(&q->lock);
        if (!mpb_logging_handle_is_done(self)) {
            return mpb__set_error(err, err_len, MPB_ETIMEDOUT,
                                  "logging handle: not written within %lld ms",
                                  (long long)timeout_ms);
        }
    }
    if (self->status != 0) {
        return mpb__set_error(err, err_len, self->status, "%s",
                              self->message ? self->message : mpb_strerror(self->status));
    }
    return 0;
}

const char *
mpb__logging_handle_message(const mpb_logging_handle *handle)
{
    return mpb_logging_handle_is_done(handle) ? handle->message : NULL;
}

void
mpb_logging_handle_release(mpb_logging_handle **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_logging_queue *q = (*self_p)->queue;
    mpb__logging_handle_unref(*self_p);
    mpb__logging_queue_unref(q);
    *self_p = NULL;
}

