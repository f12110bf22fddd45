#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/test_sink.h"

void
test_sink_init(test_sink *sink)
{
    memset(sink, 0, sizeof *sink);
    pthread_mutex_init(&sink->lock, NULL);
    pthread_cond_init(&sink->cond, NULL);
}

void
test_sink_free(test_sink *sink)
{
    for (size_t i = 0; i < sink->n_calls; i++) {
        free(sink->calls[i].run_id);
    }
    for (size_t i = 0; i < sink->n_metrics; i++) {
        free(sink->metrics[i].run_id);
        free(sink->metrics[i].key);
    }
    for (size_t i = 0; i < sink->n_params; i++) {
        free(sink->params[i].key);
        free(sink->params[i].value);
    }
    for (size_t i = 0; i < sink->n_tags; i++) {
        free(sink->tags[i].key);
        free(sink->tags[i].value);
    }
    free(sink->params);
    free(sink->tags);
    free(sink->calls);
    free(sink->metrics);
    pthread_cond_destroy(&sink->cond);
    pthread_mutex_destroy(&sink->lock);
}

void
test_sink_release(test_sink *sink)
{
    pthread_mutex_lock(&sink->lock);
    sink->block = 0;
    pthread_cond_broadcast(&sink->cond);
    pthread_mutex_unlock(&sink->lock);
}

int
test_sink_wait_entered(test_sink *sink, int count)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&sink->lock);
    int rc = 0;
    while (sink->calls_entered < count && rc == 0) {
        rc = pthread_cond_timedwait(&sink->cond, &sink->lock, &deadline);
    }
    int ok = sink->calls_entered >= count;
    pthread_mutex_unlock(&sink->lock);
    return ok;
}

/* Under lock: the common start of every call. Returns a status to fail with. */
static int
enter_call(test_sink *sink)
{
    sink->calls_entered++;
    pthread_cond_broadcast(&sink->cond);
    while (sink->block) {
        pthread_cond_wait(&sink->cond, &sink->lock);
    }
    if (sink->exit_thread) {
        pthread_mutex_unlock(&sink->lock);
        pthread_exit(NULL);
    }
    return sink->fail_status;
}

/* Under lock. */
static void
record_kv(test_kv **list, size_t *count, const char *key, const char *value)
{
    *list = mpb_realloc(*list, (*count + 1) * sizeof **list);
    (*list)[*count].key = mpb_strdup(key);
    (*list)[*count].value = mpb_strdup(value);
    (*count)++;
}

static test_call *
record_call(test_sink *sink, test_call_kind kind, const char *run_id, int status)
{
    if (sink->n_calls == sink->calls_cap) {
        sink->calls_cap = sink->calls_cap ? 2 * sink->calls_cap : 64;
        sink->calls = mpb_realloc(sink->calls, sink->calls_cap * sizeof *sink->calls);
    }
    test_call *call = &sink->calls[sink->n_calls++];
    memset(call, 0, sizeof *call);
    call->kind = kind;
    call->run_id = mpb_strdup(run_id);
    call->status = status;
    return call;
}

static int
sink_create_run(void *ctx, const char *experiment_id, const char *user_id, int64_t start_time_ms,
                const char *run_name, const mpb_tag *tags, size_t n_tags, char **out_run_id,
                char *err, size_t err_len)
{
    test_sink *sink = ctx;
    pthread_mutex_lock(&sink->lock);
    int rc = enter_call(sink);
    if (rc == 0 && sink->fail_create) {
        rc = MPB_EIO;
    }
    char id[32];
    snprintf(id, sizeof id, "run%d", sink->next_run++);
    test_call *call = record_call(sink, TEST_CALL_CREATE_RUN, rc ? "" : id, rc);
    call->n_tags = n_tags;
    for (size_t i = 0; rc == 0 && i < n_tags; i++) {
        record_kv(&sink->tags, &sink->n_tags, tags[i].key, tags[i].value);
    }
    pthread_mutex_unlock(&sink->lock);
    if (rc != 0) {
        return mpb__set_error(err, err_len, rc, "test sink: create_run fails");
    }
    *out_run_id = mpb_strdup(id);
    return 0;
}

static int
holds_key(const mpb_metric *metrics, size_t n, const char *key)
{
    for (size_t i = 0; key != NULL && i < n; i++) {
        if (strcmp(metrics[i].key, key) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
sink_log_batch(void *ctx, const char *run_id, const mpb_metric *metrics, size_t n_metrics,
               const mpb_param *params, size_t n_params, const mpb_tag *tags, size_t n_tags,
               char *err, size_t err_len)
{
    test_sink *sink = ctx;
    pthread_mutex_lock(&sink->lock);
    int rc = enter_call(sink);
    if (rc == 0 && holds_key(metrics, n_metrics, sink->fail_key)) {
        rc = MPB_EINVAL;
    }
    test_call *call = record_call(sink, TEST_CALL_LOG_BATCH, run_id, rc);
    call->n_metrics = n_metrics;
    call->n_params = n_params;
    call->n_tags = n_tags;
    if (rc == 0) {
        while (sink->n_metrics + n_metrics > sink->metrics_cap) {
            sink->metrics_cap = sink->metrics_cap ? 2 * sink->metrics_cap : 1024;
            sink->metrics = mpb_realloc(sink->metrics, sink->metrics_cap * sizeof *sink->metrics);
        }
        for (size_t i = 0; i < n_metrics; i++) {
            test_metric *m = &sink->metrics[sink->n_metrics++];
            m->run_id = mpb_strdup(run_id);
            m->key = mpb_strdup(metrics[i].key);
            m->value = metrics[i].value;
            m->step = metrics[i].step;
            m->timestamp_ms = metrics[i].timestamp_ms;
        }
        for (size_t i = 0; i < n_params; i++) {
            record_kv(&sink->params, &sink->n_params, params[i].key, params[i].value);
        }
        for (size_t i = 0; i < n_tags; i++) {
            record_kv(&sink->tags, &sink->n_tags, tags[i].key, tags[i].value);
        }
    }
    pthread_mutex_unlock(&sink->lock);
    if (rc != 0) {
        return mpb__set_error(err, err_len, rc, "test sink: log_batch of run %s fails", run_id);
    }
    return 0;
}

static int
sink_update_run(void *ctx, const char *run_id, mpb_run_status status, int64_t end_time_ms,
                char *err, size_t err_len)
{
    test_sink *sink = ctx;
    pthread_mutex_lock(&sink->lock);
    int rc = enter_call(sink);
    test_call *call = record_call(sink, TEST_CALL_UPDATE_RUN, run_id, rc);
    call->run_status = status;
    pthread_mutex_unlock(&sink->lock);
    if (rc != 0) {
        return mpb__set_error(err, err_len, rc, "test sink: update_run fails");
    }
    return 0;
}

const mpb__log_sink test_sink_vtable = {
    .create_run = sink_create_run,
    .log_batch = sink_log_batch,
    .update_run = sink_update_run,
};
