/*
 * DESIGN
 * The client thread appends operations to per-run lists (struct run_ops) in
 * memory. flush() moves each run's lists into a job and submits it to the
 * logging queue; the job runs on the queue's writer thread, makes the run's
 * store calls in MLflow's order and chunks (tracking/batch_split.c), keeps
 * going past failures and returns them as one message, one line per failed
 * call. Each job's handle is one entry of the mpb_queueing_ops; await joins
 * their messages. A pending run is shared by the client and its jobs
 * (reference counted); the writer publishes the created run id atomically.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "tracking/queueing_client_int.h"
#include "tracking/tracking_util_int.h"

/* ---- lists ---------------------------------------------------------------------------------- */

#define LIST_RESERVE(list, more)                                                                   \
    do {                                                                                           \
        if ((list)->n + (more) > (list)->cap) {                                                    \
            size_t cap_ = (list)->cap ? (list)->cap : 16;                                          \
            while (cap_ < (list)->n + (more)) {                                                    \
                cap_ *= 2;                                                                         \
            }                                                                                      \
            (list)->items = mpb_realloc((list)->items, cap_ * sizeof *(list)->items);              \
            (list)->cap = cap_;                                                                    \
        }                                                                                          \
    } while (0)

static void
free_kv_strings(const char *key, const char *value)
{
    free((char *)key);
    free((char *)value);
}

void
mpb__run_ops_clear(run_ops *ops)
{
    free(ops->experiment_id);
    free(ops->run_name);
    free(ops->user);
    for (size_t i = 0; i < ops->create_tags.n; i++) {
        free_kv_strings(ops->create_tags.items[i].key, ops->create_tags.items[i].value);
    }
    for (size_t i = 0; i < ops->tags.n; i++) {
        free_kv_strings(ops->tags.items[i].key, ops->tags.items[i].value);
    }
    for (size_t i = 0; i < ops->params.n; i++) {
        free_kv_strings(ops->params.items[i].key, ops->params.items[i].value);
    }
    for (size_t i = 0; i < ops->metrics.n; i++) {
        free((char *)ops->metrics.items[i].key);
    }
    free(ops->create_tags.items);
    free(ops->tags.items);
    free(ops->params.items);
    free(ops->metrics.items);
    memset(ops, 0, sizeof *ops);
}

size_t
mpb__run_ops_count(const run_ops *ops)
{
    return (size_t)ops->create + ops->params.n + ops->tags.n + ops->metrics.n +
           (size_t)ops->terminate;
}

/* Copies key and value, cut to MLflow's limits with a warning. */
static void
copy_truncated(const char *what, const char *key, const char *value, size_t max_value,
               const char **key_out, const char **value_out)
{
    int key_cut = 0;
    int value_cut = 0;
    char *k = mpb__truncate_ellipsis(key, MPB_MAX_ENTITY_KEY_LENGTH, &key_cut);
    char *v = mpb__truncate_ellipsis(value, max_value, &value_cut);
    if (key_cut) {
        mpb_log_warn("tracking", "%s key %.40s... cut to %d characters", what, k,
                     MPB_MAX_ENTITY_KEY_LENGTH);
    }
    if (value_cut) {
        mpb_log_warn("tracking", "value of %s %.40s cut to %zu characters", what, k, max_value);
    }
    *key_out = k;
    *value_out = v;
}

static void
append_tags(tag_list *list, const mpb_tag *tags, size_t n)
{
    LIST_RESERVE(list, n);
    for (size_t i = 0; i < n; i++) {
        MPB_ASSERT(tags[i].key != NULL && tags[i].value != NULL);
        mpb_tag *t = &list->items[list->n++];
        copy_truncated("tag", tags[i].key, tags[i].value, MPB_MAX_TAG_VAL_LENGTH, &t->key,
                       &t->value);
    }
}

/* ---- pending runs --------------------------------------------------------------------------- */

void
mpb__pending_run_unref(mpb_pending_run *run)
{
    if (atomic_fetch_sub(&run->refs, 1) == 1) {
        mpb__run_ops_clear(&run->queued);
        free(atomic_load(&run->run_id));
        free(run);
    }
}

static mpb_pending_run *
pending_run_new(mpb_queueing_client *self)
{
    mpb_pending_run *run = mpb_calloc(1, sizeof *run);
    atomic_init(&run->refs, 1);
    atomic_init(&run->run_id, NULL);
    run->serial = ++self->next_serial;
    *self->runs_end = run;
    self->runs_end = &run->next;
    return run;
}

mpb_queueing_client *
mpb_queueing_client_new(mpb_logging_queue *queue)
{
    MPB_ASSERT(queue != NULL);
    mpb_queueing_client *self = mpb_calloc(1, sizeof *self);
    self->queue = queue;
    self->runs_end = &self->runs;
    return self;
}

void
mpb_queueing_client_destroy(mpb_queueing_client **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_queueing_client *self = *self_p;
    size_t dropped = 0;
    mpb_pending_run *run = self->runs;
    while (run != NULL) {
        mpb_pending_run *next = run->next;
        dropped += mpb__run_ops_count(&run->queued);
        mpb__pending_run_unref(run);
        run = next;
    }
    if (dropped > 0) {
        mpb_log_warn("tracking", "queueing client: %zu operations were never flushed; dropped",
                     dropped);
    }
    free(self);
    *self_p = NULL;
}

mpb_pending_run *
mpb_queueing_client_create_run(mpb_queueing_client *self, const char *experiment_id,
                               const char *run_name, int64_t start_time_ms, const mpb_tag *tags,
                               size_t n_tags)
{
    MPB_ASSERT(self != NULL && experiment_id != NULL && (tags != NULL || n_tags == 0));
    mpb_pending_run *run = pending_run_new(self);
    run_ops *ops = &run->queued;
    run->create_requested = 1;
    ops->create = 1;
    ops->experiment_id = mpb_strdup(experiment_id);
    ops->run_name = run_name ? mpb_strdup(run_name) : NULL;
    ops->user = mpb__tracking_user();
    ops->start_time_ms = start_time_ms > 0 ? start_time_ms : mpb_wall_ms();
    append_tags(&ops->create_tags, tags, n_tags);
    return run;
}

mpb_pending_run *
mpb_queueing_client_existing_run(mpb_queueing_client *self, const char *run_id)
{
    MPB_ASSERT(self != NULL && run_id != NULL);
    mpb_pending_run *run = pending_run_new(self);
    atomic_store(&run->run_id, mpb_strdup(run_id));
    return run;
}

const char *
mpb_pending_run_id(const mpb_pending_run *run)
{
    MPB_ASSERT(run != NULL);
    return atomic_load(&((mpb_pending_run *)run)->run_id);
}

int
mpb_queueing_client_log_params(mpb_queueing_client *self, mpb_pending_run *run,
                               const mpb_param *params, size_t n_params)
{
    MPB_ASSERT(self != NULL && run != NULL && (params != NULL || n_params == 0));
    param_list *list = &run->queued.params;
    LIST_RESERVE(list, n_params);
    for (size_t i = 0; i < n_params; i++) {
        MPB_ASSERT(params[i].key != NULL && params[i].value != NULL);
        mpb_param *p = &list->items[list->n++];
        copy_truncated("param", params[i].key, params[i].value, MPB_MAX_PARAM_VAL_LENGTH, &p->key,
                       &p->value);
    }
    return 0;
}

int
mpb_queueing_client_log_metrics(mpb_queueing_client *self, mpb_pending_run *run,
                                const mpb_metric *metrics, size_t n_metrics)
{
    MPB_ASSERT(self != NULL && run != NULL && (metrics != NULL || n_metrics == 0));
    metric_list *list = &run->queued.metrics;
    int64_t now = mpb_wall_ms();
    LIST_RESERVE(list, n_metrics);
    for (size_t i = 0; i < n_metrics; i++) {
        MPB_ASSERT(metrics[i].key != NULL);
        mpb_metric *m = &list->items[list->n++];
        *m = metrics[i];
        m->key = mpb_strdup(metrics[i].key);
        if (m->timestamp_ms <= 0) {
            m->timestamp_ms = now;
        }
    }
    return 0;
}

int
mpb_queueing_client_set_tags(mpb_queueing_client *self, mpb_pending_run *run, const mpb_tag *tags,
                             size_t n_tags)
{
    MPB_ASSERT(self != NULL && run != NULL && (tags != NULL || n_tags == 0));
    append_tags(&run->queued.tags, tags, n_tags);
    return 0;
}

int
mpb_queueing_client_set_terminated(mpb_queueing_client *self, mpb_pending_run *run,
                                   mpb_run_status status, int64_t end_time_ms)
{
    MPB_ASSERT(self != NULL && run != NULL);
    if (run->terminate_requested) {
        return MPB_EEXIST;
    }
    run->terminate_requested = 1;
    run->queued.terminate = 1;
    run->queued.end_status = status;
    run->queued.end_time_ms = end_time_ms > 0 ? end_time_ms : mpb_wall_ms();
    return 0;
}
