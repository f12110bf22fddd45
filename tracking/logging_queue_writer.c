/*
 * The logging queue's writer thread, its store calls timed, and its death
 * in a sink (logging_queue.c has the DESIGN comment).
 *
 * The writer sleeps until a node is pending, takes the oldest group under
 * the lock, writes it without the lock, and completes it under the lock. A
 * group is one update_run, one job, or consecutive batches of one run whose
 * sum stays within MLflow's limits and repeats no param or tag key (a
 * repeated key would make the store judge two calls as one).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/batch_split_int.h"
#include "tracking/logging_queue_state_int.h"

/* ---- store calls, timed ------------------------------------------------------------------- */

static int
call_begin(mpb_logging_queue *q, const void *slot, char *err, size_t err_len)
{
    if (atomic_load(&q->failed)) {
        return mpb__set_error(err, err_len, MPB_EWRITER_DIED,
                              "not written: the queue's writer failed");
    }
    if (slot == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP, "the store cannot do this");
    }
    int64_t now = mpb_now_ns();
    atomic_store(&q->call_started_ns, now != 0 ? now : 1);
    atomic_fetch_add(&q->store_calls, 1);
    return 0;
}

static void
call_end(mpb_logging_queue *q)
{
    atomic_store(&q->call_started_ns, 0);
}

int
mpb__log_writer_create_run(mpb__log_writer *writer, const char *experiment_id, const char *user_id,
                           int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                           size_t n_tags, char **out_run_id, char *err, size_t err_len)
{
    mpb_logging_queue *q = writer->queue;
    int rc = call_begin(q, (const void *)q->sink->create_run, err, err_len);
    if (rc == 0) {
        rc = q->sink->create_run(q->sink_ctx, experiment_id, user_id, start_time_ms, run_name, tags,
                                 n_tags, out_run_id, err, err_len);
        call_end(q);
    }
    return rc;
}

int
mpb__log_writer_log_batch(mpb__log_writer *writer, const char *run_id, const mpb_metric *metrics,
                          size_t n_metrics, const mpb_param *params, size_t n_params,
                          const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    mpb_logging_queue *q = writer->queue;
    int rc = call_begin(q, (const void *)q->sink->log_batch, err, err_len);
    if (rc == 0) {
        rc = q->sink->log_batch(q->sink_ctx, run_id, metrics, n_metrics, params, n_params, tags,
                                n_tags, err, err_len);
        call_end(q);
    }
    return rc;
}

int
mpb__log_writer_update_run(mpb__log_writer *writer, const char *run_id, mpb_run_status status,
                           int64_t end_time_ms, char *err, size_t err_len)
{
    mpb_logging_queue *q = writer->queue;
    int rc = call_begin(q, (const void *)q->sink->update_run, err, err_len);
    if (rc == 0) {
        rc = q->sink->update_run(q->sink_ctx, run_id, status, end_time_ms, err, err_len);
        call_end(q);
    }
    return rc;
}

/* ---- groups ------------------------------------------------------------------------------- */

static int
keys_repeat(const mpb__log_node *first, const mpb__log_node *next)
{
    if (next->n_params == 0 && next->n_tags == 0) {
        return 0;
    }
    for (const mpb__log_node *g = first; g != next; g = g->next) {
        for (size_t i = 0; i < next->n_params; i++) {
            for (size_t j = 0; j < g->n_params; j++) {
                if (strcmp(next->params[i].key, g->params[j].key) == 0) {
                    return 1;
                }
            }
        }
        for (size_t i = 0; i < next->n_tags; i++) {
            for (size_t j = 0; j < g->n_tags; j++) {
                if (strcmp(next->tags[i].key, g->tags[j].key) == 0) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* Under lock: detaches the oldest group from the pending list. */
static mpb__log_node *
take_group(mpb_logging_queue *q)
{
    mpb__log_node *first = q->head;
    mpb__log_node *last = first;
    if (first->kind == MPB__NODE_BATCH) {
        size_t metrics = first->n_metrics;
        size_t params = first->n_params;
        size_t tags = first->n_tags;
        for (mpb__log_node *next = first->next; next != NULL; next = next->next) {
            if (next->kind != MPB__NODE_BATCH || strcmp(next->run_id, first->run_id) != 0 ||
                !mpb__batch_fits_one_call(metrics + next->n_metrics, params + next->n_params,
                                          tags + next->n_tags) ||
                keys_repeat(first, next)) {
                break;
            }
            metrics += next->n_metrics;
            params += next->n_params;
            tags += next->n_tags;
            last = next;
        }
    }
    q->head = last->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    last->next = NULL;
    q->group = first;
    return first;
}

static void
set_result(mpb__log_node *node, int rc, const char *err)
{
    node->result = rc;
    if (rc != 0) {
        node->result_message = mpb_strdup(err[0] != '\0' ? err : mpb_strerror(rc));
    }
}

static int
write_one(mpb_logging_queue *q, const mpb__log_node *n, char *err, size_t err_len)
{
    err[0] = '\0';
    return mpb__log_writer_log_batch(&q->writer_ctx, n->run_id, n->metrics, n->n_metrics, n->params,
                                     n->n_params, n->tags, n->n_tags, err, err_len);
}

static void
write_batches(mpb_logging_queue *q, mpb__log_node *group)
{
    char err[512];
    if (group->next == NULL) {
        set_result(group, write_one(q, group, err, sizeof err), err);
        return;
    }
    if (q->merge_metrics == NULL) {
        q->merge_metrics = mpb_malloc(MPB_MAX_METRICS_PER_BATCH * sizeof(mpb_metric));
        q->merge_params = mpb_malloc(MPB_MAX_PARAMS_TAGS_PER_BATCH * sizeof(mpb_param));
        q->merge_tags = mpb_malloc(MPB_MAX_PARAMS_TAGS_PER_BATCH * sizeof(mpb_tag));
    }
    size_t n_metrics = 0;
    size_t n_params = 0;
    size_t n_tags = 0;
    for (const mpb__log_node *n = group; n != NULL; n = n->next) {
        memcpy(q->merge_metrics + n_metrics, n->metrics, n->n_metrics * sizeof(mpb_metric));
        memcpy(q->merge_params + n_params, n->params, n->n_params * sizeof(mpb_param));
        memcpy(q->merge_tags + n_tags, n->tags, n->n_tags * sizeof(mpb_tag));
        n_metrics += n->n_metrics;
        n_params += n->n_params;
        n_tags += n->n_tags;
    }
    err[0] = '\0';
    int rc = mpb__log_writer_log_batch(&q->writer_ctx, group->run_id, q->merge_metrics, n_metrics,
                                       q->merge_params, n_params, q->merge_tags, n_tags, err,
                                       sizeof err);
    if (rc == MPB_EINVAL) {
        /* The store validates a call as a whole before writing any of it: write each batch
         * alone so that one invalid batch does not fail its neighbours. */
        for (mpb__log_node *n = group; n != NULL; n = n->next) {
            set_result(n, write_one(q, n, err, sizeof err), err);
        }
        return;
    }
    for (mpb__log_node *n = group; n != NULL; n = n->next) {
        set_result(n, rc, err);
    }
}

static void
write_group(mpb_logging_queue *q, mpb__log_node *group)
{
    char err[512];
    err[0] = '\0';
    if (group->kind == MPB__NODE_UPDATE_RUN) {
        int rc = mpb__log_writer_update_run(&q->writer_ctx, group->run_id, group->run_status,
                                            group->end_time_ms, err, sizeof err);
        set_result(group, rc, err);
    } else if (group->kind == MPB__NODE_JOB) {
        char *message = NULL;
        int rc = group->job(group->ctx, &q->writer_ctx, &message);
        set_result(group, rc, message != NULL ? message : "");
        free(message);
    } else {
        write_batches(q, group);
    }
}

/* Under lock: completes the group unless a failure already did. */
static void
finish_group(mpb_logging_queue *q, mpb__log_node *group)
{
    int failed = atomic_load(&q->failed);
    for (mpb__log_node *n = group; n != NULL; n = n->next) {
        if (!failed) {
            mpb__logging_complete_node(q, n, n->result, n->result_message);
        }
        q->queued -= n->cost;
    }
    q->group = NULL;
    if (q->room_waiters > 0) {
        pthread_cond_broadcast(&q->room_cond);
    }
    if (q->done_waiters > 0) {
        pthread_cond_broadcast(&q->done_cond);
    }
}

static void
free_group(mpb__log_node *group)
{
    while (group != NULL) {
        mpb__log_node *next = group->next;
        mpb__logging_free_node(group);
        group = next;
    }
}

/* Under the lock, with work queued: waits up to linger_ms for more to
 * merge, unless someone waits on the queue or it is stopping. */
static void
linger(mpb_logging_queue *q)
{
    if (q->opts.linger_ms <= 0) {
        return;
    }
    int64_t until = mpb_now_ns() + q->opts.linger_ms * 1000000;
    q->writer_lingering = 1;
    while (!q->stopping && !atomic_load(&q->failed) && q->done_waiters == 0 &&
           q->room_waiters == 0 && q->queued < mpb__logging_linger_enough(q) && !q->refused &&
           mpb_now_ns() < until) {
        mpb__logging_cond_wait(q, &q->work_cond, until);
    }
    q->writer_lingering = 0;
    q->refused = 0;
}

static void
writer_loop(mpb_logging_queue *q)
{
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->head == NULL && !q->stopping && !atomic_load(&q->failed)) {
            q->writer_sleeping = 1;
            pthread_cond_wait(&q->work_cond, &q->lock);
        }
        q->writer_sleeping = 0;
        linger(q);
        if (q->head == NULL || atomic_load(&q->failed)) {
            break;
        }
        mpb__log_node *group = take_group(q);
        pthread_mutex_unlock(&q->lock);
        write_group(q, group);
        pthread_mutex_lock(&q->lock);
        finish_group(q, group);
        pthread_mutex_unlock(&q->lock);
        free_group(group);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
}

/* Runs when the writer returns, and when a sink ends the thread (pthread_exit)
 * in the middle of a store call: then the group is still set. */
static void
writer_on_exit(void *arg)
{
    mpb_logging_queue *q = arg;
    pthread_mutex_lock(&q->lock);
    mpb__log_node *group = q->group;
    if (group != NULL) {
        mpb__logging_fail(q, MPB_EWRITER_DIED, "the writer thread exited during a store call");
        for (mpb__log_node *n = group; n != NULL; n = n->next) {
            q->queued -= n->cost;
        }
        q->group = NULL;
    }
    atomic_store(&q->call_started_ns, 0);
    q->writer_exited = 1;
    pthread_cond_broadcast(&q->done_cond);
    pthread_cond_broadcast(&q->room_cond);
    pthread_mutex_unlock(&q->lock);
    free_group(group);
}

void *
mpb__logging_writer_main(void *arg)
{
    mpb_logging_queue *q = arg;
    if (q->opts.writer_nice > 0) {
        /* this thread only: a thread's id is its own scheduling entity */
        errno = 0;
        int now = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
        if (errno == 0) {
            setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), now + q->opts.writer_nice);
        }
    }
    pthread_cleanup_push(writer_on_exit, arg);
    writer_loop(arg);
    pthread_cleanup_pop(1);
    return NULL;
}
