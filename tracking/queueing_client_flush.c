/*
 * The queueing client's flush: one job per run on the logging queue's writer
 * thread, in MLflow's order and chunks, and the await that gathers their
 * failures (queueing_client.c has the DESIGN comment).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/batch_split_int.h"
#include "tracking/logging_queue_int.h"
#include "tracking/queueing_client_int.h"

/* ---- the per-run job, on the writer thread -------------------------------------------------- */

typedef struct run_job {
    mpb_pending_run *run;
    run_ops ops;
    char *report; /* failed calls, one per line */
    int first_error;
} run_job;

static void
job_failed(run_job *job, int rc, const char *call, const char *err)
{
    char *line = mpb_asprintf("%s%s%s: %s", job->report ? job->report : "", job->report ? "\n" : "",
                              call, err[0] != '\0' ? err : mpb_strerror(rc));
    free(job->report);
    job->report = line;
    if (job->first_error == 0) {
        job->first_error = rc;
    }
}

/* create_run with its own tags and the oldest queued ones, up to 1000; returns
 * how many queued tags went with it. */
static size_t
job_create_run(run_job *job, mpb__log_writer *writer)
{
    run_ops *ops = &job->ops;
    size_t folded = 0;
    if (ops->create_tags.n < MPB_MAX_ENTITIES_PER_BATCH) {
        folded = MPB_MAX_ENTITIES_PER_BATCH - ops->create_tags.n;
        folded = folded < ops->tags.n ? folded : ops->tags.n;
    }
    size_t n_tags = ops->create_tags.n + folded;
    mpb_tag *tags = mpb_malloc((n_tags ? n_tags : 1) * sizeof *tags);
    if (ops->create_tags.n > 0) {
        memcpy(tags, ops->create_tags.items, ops->create_tags.n * sizeof *tags);
    }
    if (folded > 0) {
        memcpy(tags + ops->create_tags.n, ops->tags.items, folded * sizeof *tags);
    }
    char err[512] = "";
    char *run_id = NULL;
    int rc = mpb__log_writer_create_run(writer, ops->experiment_id, ops->user, ops->start_time_ms,
                                        ops->run_name, tags, n_tags, &run_id, err, sizeof err);
    free(tags);
    if (rc != 0) {
        char call[128];
        snprintf(call, sizeof call, "create_run (experiment %s, %zu tags)", ops->experiment_id,
                 n_tags);
        job_failed(job, rc, call, err);
        return folded;
    }
    atomic_store(&job->run->run_id, run_id);
    return folded;
}

static void
job_log_batches(run_job *job, mpb__log_writer *writer, const char *run_id, size_t tags_done)
{
    run_ops *ops = &job->ops;
    mpb__batch_split split;
    mpb__batch_part part;
    mpb__batch_split_init(&split, ops->metrics.n, ops->params.n, ops->tags.n - tags_done);
    while (mpb__batch_split_next(&split, &part)) {
        char err[512] = "";
        int rc = mpb__log_writer_log_batch(
            writer, run_id, part.n_metrics ? ops->metrics.items + part.metric_first : NULL,
            part.n_metrics, part.n_params ? ops->params.items + part.param_first : NULL,
            part.n_params, part.n_tags ? ops->tags.items + tags_done + part.tag_first : NULL,
            part.n_tags, err, sizeof err);
        if (rc != 0) {
            char call[128];
            snprintf(call, sizeof call, "log_batch (%zu params, %zu tags, %zu metrics)",
                     part.n_params, part.n_tags, part.n_metrics);
            job_failed(job, rc, call, err);
        }
    }
}

static int
run_job_fn(void *ctx, mpb__log_writer *writer, char **message)
{
    run_job *job = ctx;
    run_ops *ops = &job->ops;
    size_t tags_done = 0;
    if (ops->create) {
        tags_done = job_create_run(job, writer);
    }
    const char *run_id = atomic_load(&job->run->run_id);
    size_t rest = ops->params.n + (ops->tags.n - tags_done) + ops->metrics.n + ops->terminate;
    if (run_id == NULL) {
        if (rest > 0) {
            char call[96];
            snprintf(call, sizeof call, "%zu operations skipped", rest);
            job_failed(job, MPB_ENOTFOUND, call, "the run was not created");
        }
    } else {
        job_log_batches(job, writer, run_id, tags_done);
        if (ops->terminate) {
            char err[512] = "";
            int rc = mpb__log_writer_update_run(writer, run_id, ops->end_status, ops->end_time_ms,
                                                err, sizeof err);
            if (rc != 0) {
                job_failed(job, rc, "set_terminated", err);
            }
        }
    }
    *message = job->report;
    job->report = NULL;
    return job->first_error;
}

static void
run_job_free(void *ctx)
{
    run_job *job = ctx;
    mpb__run_ops_clear(&job->ops);
    free(job->report);
    mpb__pending_run_unref(job->run);
    free(job);
}

/* ---- flush and await ------------------------------------------------------------------------ */

static char *
run_label(const mpb_pending_run *run)
{
    const char *id = mpb_pending_run_id(run);
    return id ? mpb_asprintf("run %s", id) : mpb_asprintf("pending run #%u", run->serial);
}

int
mpb_queueing_client_flush(mpb_queueing_client *self, mpb_queueing_ops **ops_out)
{
    MPB_ASSERT(self != NULL && ops_out != NULL);
    mpb_queueing_ops *ops = mpb_calloc(1, sizeof *ops);
    size_t n_runs = 0;
    for (mpb_pending_run *run = self->runs; run != NULL; run = run->next) {
        n_runs++;
    }
    ops->handles = mpb_calloc(n_runs ? n_runs : 1, sizeof *ops->handles);
    ops->runs = mpb_calloc(n_runs ? n_runs : 1, sizeof *ops->runs);
    for (mpb_pending_run *run = self->runs; run != NULL; run = run->next) {
        size_t count = mpb__run_ops_count(&run->queued);
        if (count == 0) {
            continue;
        }
        run_job *job = mpb_calloc(1, sizeof *job);
        job->run = run;
        atomic_fetch_add(&run->refs, 1);
        job->ops = run->queued;
        memset(&run->queued, 0, sizeof run->queued);
        char *label = run_label(run);
        mpb_logging_handle *handle = NULL;
        int rc = mpb__logging_queue_submit_job(self->queue, label, count, run_job_fn, run_job_free,
                                               job, &handle);
        if (rc != 0) {
            char *line = mpb_asprintf("%s%s%s: %zu operations not queued: %s",
                                      ops->refused ? ops->refused : "", ops->refused ? "\n" : "",
                                      label, count, mpb_strerror(rc));
            free(ops->refused);
            ops->refused = line;
            ops->refused_status = ops->refused_status ? ops->refused_status : rc;
            /* the operations stay queued for the next flush */
            run->queued = job->ops;
            memset(&job->ops, 0, sizeof job->ops);
            run_job_free(job);
        } else {
            atomic_fetch_add(&run->refs, 1);
            ops->runs[ops->n_handles] = run;
            ops->handles[ops->n_handles++] = handle;
        }
        free(label);
    }
    *ops_out = ops;
    return 0;
}

int
mpb_queueing_client_flush_sync(mpb_queueing_client *self, int64_t timeout_ms, char *err,
                               size_t err_len)
{
    mpb_queueing_ops *ops = NULL;
    int rc = mpb_queueing_client_flush(self, &ops);
    if (rc == 0) {
        rc = mpb_queueing_ops_await(ops, timeout_ms, err, err_len);
    }
    mpb_queueing_ops_destroy(&ops);
    return rc;
}

/* Appends each line of `text` to *report as "label: line"; returns the count. */
static size_t
add_lines(char **report, const char *label, const char *text)
{
    size_t count = 0;
    while (*text != '\0') {
        size_t len = strcspn(text, "\n");
        char *joined = mpb_asprintf("%s%s%s%s%.*s", *report ? *report : "", *report ? "\n" : "",
                                    label ? label : "", label ? ": " : "", (int)len, text);
        free(*report);
        *report = joined;
        count++;
        text += len;
        if (*text == '\n') {
            text++;
        }
    }
    return count;
}

int
mpb_queueing_ops_await(mpb_queueing_ops *self, int64_t timeout_ms, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    if (timeout_ms < 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "await: timeout must be >= 0");
    }
    int64_t deadline_ms = mpb_now_ns() / 1000000 + timeout_ms;
    for (size_t i = 0; i < self->n_handles; i++) {
        int64_t left = deadline_ms - mpb_now_ns() / 1000000;
        mpb_logging_handle_wait(self->handles[i], left > 0 ? left : 0, NULL, 0);
        if (!mpb_logging_handle_is_done(self->handles[i])) {
            return mpb__set_error(err, err_len, MPB_ETIMEDOUT, "flush not finished within %lld ms",
                                  (long long)timeout_ms);
        }
    }
    free(self->report);
    self->report = NULL;
    self->failed = 0;
    int first = 0;
    if (self->refused != NULL) {
        self->failed += add_lines(&self->report, NULL, self->refused);
        first = self->refused_status;
    }
    for (size_t i = 0; i < self->n_handles; i++) {
        int rc = mpb_logging_handle_wait(self->handles[i], 0, NULL, 0);
        if (rc == 0) {
            continue;
        }
        char *label = run_label(self->runs[i]);
        const char *message = mpb__logging_handle_message(self->handles[i]);
        self->failed += add_lines(&self->report, label, message ? message : mpb_strerror(rc));
        free(label);
        first = first ? first : rc;
    }
    if (first != 0) {
        mpb__set_error(err, err_len, first, "%zu failures, one per line:\n%s", self->failed,
                       self->report);
    }
    return first;
}

const char *
mpb_queueing_ops_report(const mpb_queueing_ops *self)
{
    MPB_ASSERT(self != NULL);
    return self->report ? self->report : "";
}

size_t
mpb_queueing_ops_failed(const mpb_queueing_ops *self)
{
    MPB_ASSERT(self != NULL);
    return self->failed;
}

void
mpb_queueing_ops_destroy(mpb_queueing_ops **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_queueing_ops *self = *self_p;
    for (size_t i = 0; i < self->n_handles; i++) {
        mpb_logging_handle_release(&self->handles[i]);
        mpb__pending_run_unref(self->runs[i]);
    }
    free(self->handles);
    free(self->runs);
    free(self->refused);
    free(self->report);
    free(self);
    *self_p = NULL;
}
