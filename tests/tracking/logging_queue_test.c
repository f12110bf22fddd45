/*
 * The async logging queue against a test sink: order, merging, splitting,
 * bounds, failures of the store and of the writer, deadlines, shutdown and
 * the exit drain (in re-executed child processes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/logging_queue.h"
#include "tracking/logging_queue_int.h"
#include "tracking/test_child.h"
#include "tracking/test_sink.h"

/* Generous: fires only on a hang. */
#define HANG_MS 20000

static mpb_logging_queue *
start_queue(test_sink *sink, const mpb_logging_queue_options *options)
{
    mpb_logging_queue *q = mpb__logging_queue_new_with_sink(&test_sink_vtable, sink, options);
    char err[256] = "";
    int rc = mpb_logging_queue_start(q, err, sizeof err);
    if (rc != 0) {
        fail_msg("start: %s", err);
    }
    return q;
}

static void
set_block(test_sink *sink, int block)
{
    pthread_mutex_lock(&sink->lock);
    sink->block = block;
    pthread_mutex_unlock(&sink->lock);
}

static int
log_metric(mpb_logging_queue *q, const char *run_id, const char *key, int64_t step,
           mpb_logging_handle **handle)
{
    mpb_metric m = {.key = key, .value = (double)step, .timestamp_ms = 1000 + step, .step = step};
    return mpb_logging_queue_log_batch(q, run_id, &m, 1, NULL, 0, NULL, 0, handle);
}

/* Steps of one run's metrics as the sink saw them must be 0, 1, 2, ... */
static void
assert_run_in_order(test_sink *sink, const char *run_id, int64_t expected)
{
    int64_t next = 0;
    for (size_t i = 0; i < sink->n_metrics; i++) {
        if (strcmp(sink->metrics[i].run_id, run_id) == 0) {
            assert_int_equal(sink->metrics[i].step, next);
            next++;
        }
    }
    assert_int_equal(next, expected);
}

static void
logs_and_waits(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    assert_int_equal(mpb_logging_queue_status(q), MPB_LOGGING_QUEUE_ACTIVE);

    mpb_metric metrics[2] = {{"loss", 0.5, 1000, 1}, {"acc", 0.9, 1000, 1}};
    mpb_param params[1] = {{"lr", "0.01"}};
    mpb_tag tags[1] = {{"team", "a"}};
    mpb_logging_handle *h = NULL;
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", metrics, 2, params, 1, tags, 1, &h), 0);
    char err[256];
    assert_int_equal(mpb_logging_handle_wait(h, HANG_MS, err, sizeof err), 0);
    assert_true(mpb_logging_handle_is_done(h));
    mpb_logging_handle_release(&h);
    assert_null(h);

    assert_int_equal(sink.n_calls, 1);
    assert_int_equal(sink.calls[0].n_metrics, 2);
    assert_int_equal(sink.n_params, 1);
    assert_int_equal(sink.n_tags, 1);
    assert_string_equal(sink.metrics[0].key, "loss");

    mpb_logging_stats stats;
    mpb_logging_queue_stats(q, &stats);
    assert_int_equal(stats.enqueued, 1);
    assert_int_equal(stats.written, 1);
    assert_int_equal(stats.failed, 0);

    assert_int_equal(mpb_logging_queue_shutdown(q, HANG_MS, err, sizeof err), 0);
    assert_int_equal(mpb_logging_queue_status(q), MPB_LOGGING_QUEUE_IDLE);
    mpb_logging_queue_destroy(&q);
    assert_null(q);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

static void
input_is_copied(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    char key[16];
    char run[16];
    strcpy(key, "loss");
    strcpy(run, "r1");
    assert_int_equal(log_metric(q, run, key, 0, NULL), 0);
    strcpy(key, "XXXX");
    strcpy(run, "XX");
    test_sink_release(&sink);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_string_equal(sink.metrics[0].key, "loss");
    assert_string_equal(sink.metrics[0].run_id, "r1");
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

/* While the writer is busy, batches pile up and go out merged, in order. */
static void
merges_consecutive_batches_of_a_run(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    assert_int_equal(log_metric(q, "r1", "m", 0, NULL), 0);
    assert_true(test_sink_wait_entered(&sink, 1));
    for (int64_t step = 1; step < 3000; step++) {
        assert_int_equal(log_metric(q, "r1", "m", step, NULL), 0);
    }
    test_sink_release(&sink);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);

    assert_int_equal(sink.n_calls, 4); /* 1, then 2999 merged as 1000 + 1000 + 999 */
    assert_int_equal(sink.calls[1].n_metrics, 1000);
    assert_int_equal(sink.calls[2].n_metrics, 1000);
    assert_int_equal(sink.calls[3].n_metrics, 999);
    assert_run_in_order(&sink, "r1", 3000);
    mpb_logging_stats stats;
    mpb_logging_queue_stats(q, &stats);
    assert_int_equal(stats.written, 3000);
    assert_int_equal(stats.store_calls, 4);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

static void
merging_stops_at_limits_runs_and_repeated_keys(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    assert_int_equal(log_metric(q, "r1", "m", 0, NULL), 0);
    assert_true(test_sink_wait_entered(&sink, 1));
    char key[32];
    for (int i = 0; i < 150; i++) { /* 150 distinct params: 100 + 50 */
        snprintf(key, sizeof key, "p%d", i);
        mpb_param p = {key, "v"};
        assert_int_equal(mpb_logging_queue_log_batch(q, "r1", NULL, 0, &p, 1, NULL, 0, NULL), 0);
    }
    mpb_tag t = {"t", "1"};
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", NULL, 0, NULL, 0, &t, 1, NULL), 0);
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", NULL, 0, NULL, 0, &t, 1, NULL), 0);
    assert_int_equal(log_metric(q, "r2", "m", 0, NULL), 0);
    assert_int_equal(log_metric(q, "r1", "m", 1, NULL), 0);
    test_sink_release(&sink);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);

    assert_int_equal(sink.n_calls, 6);
    assert_int_equal(sink.calls[1].n_params, 100);
    assert_int_equal(sink.calls[2].n_params, 50);
    assert_int_equal(sink.calls[2].n_tags, 1); /* the first tag joins the 50 params */
    assert_int_equal(sink.calls[3].n_tags, 1); /* the repeated tag key starts a new call */
    assert_string_equal(sink.calls[4].run_id, "r2");
    assert_string_equal(sink.calls[5].run_id, "r1");
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

/* One log call over MLflow's limits becomes store-sized calls, one handle. */
static void
splits_a_batch_over_the_limits(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    size_t n_metrics = 2101;
    size_t n_params = 101;
    mpb_metric *metrics = mpb_calloc(n_metrics, sizeof *metrics);
    mpb_param *params = mpb_calloc(n_params, sizeof *params);
    char(*names)[16] = mpb_calloc(n_params, sizeof *names);
    for (size_t i = 0; i < n_metrics; i++) {
        metrics[i] = (mpb_metric){"m", (double)i, 1, (int64_t)i};
    }
    for (size_t i = 0; i < n_params; i++) {
        snprintf(names[i], sizeof names[i], "p%zu", i);
        params[i] = (mpb_param){names[i], "v"};
    }
    mpb_logging_handle *h = NULL;
    assert_int_equal(
        mpb_logging_queue_log_batch(q, "r1", metrics, n_metrics, params, n_params, NULL, 0, &h), 0);
    assert_int_equal(mpb_logging_handle_wait(h, HANG_MS, NULL, 0), 0);
    mpb_logging_handle_release(&h);

    /* (100 params + 900 metrics) (1 param + 999 metrics) (202 metrics), maybe merged less */
    size_t total_metrics = 0;
    for (size_t i = 0; i < sink.n_calls; i++) {
        assert_true(sink.calls[i].n_params <= 100);
        assert_true(sink.calls[i].n_metrics + sink.calls[i].n_params <= 1000);
        total_metrics += sink.calls[i].n_metrics;
    }
    assert_int_equal(total_metrics, n_metrics);
    assert_int_equal(sink.n_params, n_params);
    assert_run_in_order(&sink, "r1", (int64_t)n_metrics);
    free(metrics);
    free(params);
    free(names);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

static void
update_run_comes_after_earlier_batches(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    assert_int_equal(log_metric(q, "r1", "m", 0, NULL), 0);
    assert_true(test_sink_wait_entered(&sink, 1));
    assert_int_equal(log_metric(q, "r1", "m", 1, NULL), 0);
    mpb_logging_handle *h = NULL;
    assert_int_equal(mpb_logging_queue_update_run(q, "r1", MPB_RUN_FINISHED, 5, &h), 0);
    assert_int_equal(log_metric(q, "r1", "m", 2, NULL), 0);
    test_sink_release(&sink);
    assert_int_equal(mpb_logging_handle_wait(h, HANG_MS, NULL, 0), 0);
    mpb_logging_handle_release(&h);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_int_equal(sink.n_calls, 4);
    assert_int_equal(sink.calls[2].kind, TEST_CALL_UPDATE_RUN);
    assert_int_equal(sink.calls[2].run_status, MPB_RUN_FINISHED);
    assert_int_equal(sink.calls[3].kind, TEST_CALL_LOG_BATCH);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

/* A store that refuses everything: every handle says so, none says success. */
static void
every_handle_reports_a_failing_store(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    sink.fail_status = MPB_EROFS;
    mpb_logging_queue *q = start_queue(&sink, NULL);
    enum { N = 200 };
    mpb_logging_handle *handles[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(log_metric(q, i % 2 ? "r1" : "r2", "m", i, &handles[i]), 0);
    }
    assert_int_equal(log_metric(q, "r1", "m", N, NULL), 0); /* fire-and-forget: logged */
    for (int i = 0; i < N; i++) {
        char err[256] = "";
        assert_int_equal(mpb_logging_handle_wait(handles[i], HANG_MS, err, sizeof err), MPB_EROFS);
        assert_non_null(strstr(err, "test sink"));
        mpb_logging_handle_release(&handles[i]);
    }
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    mpb_logging_stats stats;
    mpb_logging_queue_stats(q, &stats);
    assert_int_equal(stats.failed, N + 1);
    assert_int_equal(stats.written, 0);
    assert_int_equal(stats.last_error, MPB_EROFS);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

/* An invalid batch merged with valid ones fails alone. */
static void
invalid_batch_does_not_fail_its_neighbours(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    sink.fail_key = "bad";
    set_block(&sink, 1);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    assert_int_equal(log_metric(q, "r1", "m", 0, NULL), 0);
    assert_true(test_sink_wait_entered(&sink, 1));
    mpb_logging_handle *good1 = NULL;
    mpb_logging_handle *bad = NULL;
    mpb_logging_handle *good2 = NULL;
    assert_int_equal(log_metric(q, "r1", "m", 1, &good1), 0);
    assert_int_equal(log_metric(q, "r1", "bad", 0, &bad), 0);
    assert_int_equal(log_metric(q, "r1", "m", 2, &good2), 0);
    test_sink_release(&sink);
    assert_int_equal(mpb_logging_handle_wait(good1, HANG_MS, NULL, 0), 0);
    assert_int_equal(mpb_logging_handle_wait(bad, HANG_MS, NULL, 0), MPB_EINVAL);
    assert_int_equal(mpb_logging_handle_wait(good2, HANG_MS, NULL, 0), 0);
    mpb_logging_handle_release(&good1);
    mpb_logging_handle_release(&bad);
    mpb_logging_handle_release(&good2);
    assert_run_in_order(&sink, "r1", 3);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

static void
fail_fast_when_full(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue_options opts = {.capacity = 10, .when_full = MPB_LOGGING_QUEUE_FAIL_FAST};
    mpb_logging_queue *q = start_queue(&sink, &opts);
    int accepted = 0;
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = log_metric(q, "r1", "m", i, NULL);
        accepted += rc == 0;
    }
    assert_int_equal(rc, MPB_EFULL);
    assert_int_equal(accepted, 10);
    mpb_logging_stats stats;
    mpb_logging_queue_stats(q, &stats);
    assert_int_equal(stats.rejected, 1);
    assert_int_equal(stats.queued, 10);
    test_sink_release(&sink);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_int_equal(log_metric(q, "r1", "m", accepted, NULL), 0);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_run_in_order(&sink, "r1", accepted + 1);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

static void
block_policy_times_out_then_gets_room(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue_options opts = {.capacity = 4, .block_timeout_ms = 50};
    mpb_logging_queue *q = start_queue(&sink, &opts);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(log_metric(q, "r1", "m", i, NULL), 0);
    }
    int64_t t0 = mpb_now_ns();
    assert_int_equal(log_metric(q, "r1", "m", 4, NULL), MPB_EFULL);
    assert_true(mpb_now_ns() - t0 >= 40 * 1000000); /* it did wait */
    /* A batch larger than the capacity is accepted once the queue is empty. */
    test_sink_release(&sink);
    mpb_metric big[6] = {{"m", 4, 1, 4}, {"m", 5, 1, 5}, {"m", 6, 1, 6},
                         {"m", 7, 1, 7}, {"m", 8, 1, 8}, {"m", 9, 1, 9}};
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", big, 6, NULL, 0, NULL, 0, NULL), 0);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_run_in_order(&sink, "r1", 10);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

typedef struct producer {
    mpb_logging_queue *q;
    char run_id[16];
    int count;
    int failures;
} producer;

static void *
produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < p->count; i++) {
        if (log_metric(p->q, p->run_id, "m", i, NULL) != 0) {
            p->failures++;
        }
    }
    return NULL;
}

/* Blocked producers proceed as the writer makes room, none fails. */
static void
blocked_producers_resume(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    mpb_logging_queue_options opts = {.capacity = 64, .block_timeout_ms = HANG_MS};
    mpb_logging_queue *q = start_queue(&sink, &opts);
    producer p = {.q = q, .run_id = "r1", .count = 20000};
    pthread_t thread;
    pthread_create(&thread, NULL, produce, &p);
    pthread_join(thread, NULL);
    assert_int_equal(p.failures, 0);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_run_in_order(&sink, "r1", 20000);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

/* 4 threads x 50k metrics: all written, none twice, each run in order. */
static void
four_threads_keep_each_run_in_order(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    producer producers[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        producers[t] = (producer){.q = q, .count = 50000};
        snprintf(producers[t].run_id, sizeof producers[t].run_id, "run-%d", t);
        pthread_create(&threads[t], NULL, produce, &producers[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(producers[t].failures, 0);
    }
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_int_equal(sink.n_metrics, 200000);
    for (int t = 0; t < 4; t++) {
        assert_run_in_order(&sink, producers[t].run_id, 50000);
    }
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

/* ---- deadlines and failures ------------------------------------------------------------------ */

static void
wait_and_flush_have_deadlines(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    mpb_logging_handle *h = NULL;
    assert_int_equal(log_metric(q, "r1", "m", 0, &h), 0);
    assert_int_equal(mpb_logging_handle_wait(h, 50, NULL, 0), MPB_ETIMEDOUT);
    assert_false(mpb_logging_handle_is_done(h));
    assert_int_equal(mpb_logging_queue_flush(q, 50), MPB_ETIMEDOUT);
    assert_int_equal(mpb_logging_handle_wait(h, -1, NULL, 0), MPB_EINVAL);
    test_sink_release(&sink);
    assert_int_equal(mpb_logging_handle_wait(h, HANG_MS, NULL, 0), 0);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    mpb_logging_handle_release(&h);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

/* A store call that never returns is reported as such, not waited on. */
static void
hung_store_call_fails_the_queue(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue_options opts = {.store_call_timeout_ms = 200};
    mpb_logging_queue *q = start_queue(&sink, &opts);
    mpb_logging_handle *in_call = NULL;
    mpb_logging_handle *queued = NULL;
    assert_int_equal(log_metric(q, "r1", "m", 0, &in_call), 0);
    assert_true(test_sink_wait_entered(&sink, 1));
    assert_int_equal(log_metric(q, "r1", "m", 1, &queued), 0);

    char err[256] = "";
    assert_int_equal(mpb_logging_handle_wait(in_call, HANG_MS, err, sizeof err), MPB_ETIMEDOUT);
    assert_true(mpb_logging_handle_is_done(in_call));
    assert_non_null(strstr(err, "has not returned"));
    assert_int_equal(mpb_logging_handle_wait(queued, HANG_MS, NULL, 0), MPB_EWRITER_DIED);
    assert_int_equal(mpb_logging_queue_status(q), MPB_LOGGING_QUEUE_FAILED);
    assert_int_equal(log_metric(q, "r1", "m", 2, NULL), MPB_EWRITER_DIED);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), MPB_EWRITER_DIED);

    test_sink_release(&sink); /* the stuck call returns at last; its result is ignored */
    assert_int_equal(mpb_logging_queue_shutdown(q, HANG_MS, err, sizeof err), MPB_EWRITER_DIED);
    assert_int_equal(mpb_logging_queue_status(q), MPB_LOGGING_QUEUE_IDLE);
    mpb_logging_handle_release(&in_call);
    mpb_logging_handle_release(&queued);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

/* The writer thread ends inside a store call: every waiter hears about it. */
static void
dead_writer_is_reported(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    mpb_logging_handle *handles[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(log_metric(q, "r1", "m", i, &handles[i]), 0);
    }
    assert_true(test_sink_wait_entered(&sink, 1));
    pthread_mutex_lock(&sink.lock);
    sink.exit_thread = 1;
    sink.block = 0;
    pthread_cond_broadcast(&sink.cond);
    pthread_mutex_unlock(&sink.lock);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mpb_logging_handle_wait(handles[i], HANG_MS, NULL, 0), MPB_EWRITER_DIED);
        mpb_logging_handle_release(&handles[i]);
    }
    assert_int_equal(log_metric(q, "r1", "m", 3, NULL), MPB_EWRITER_DIED);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), MPB_EWRITER_DIED);
    assert_int_equal(mpb_logging_queue_shutdown(q, HANG_MS, NULL, 0), MPB_EWRITER_DIED);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

static void
shutdown_past_its_deadline_says_what_was_lost(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    set_block(&sink, 1);
    mpb_logging_queue *q = start_queue(&sink, NULL);
    mpb_logging_handle *in_call = NULL;
    mpb_logging_handle *lost = NULL;
    assert_int_equal(log_metric(q, "r1", "m", 0, &in_call), 0);
    assert_true(test_sink_wait_entered(&sink, 1));
    assert_int_equal(log_metric(q, "r1", "m", 1, &lost), 0);
    assert_int_equal(log_metric(q, "r1", "m", 2, NULL), 0);
    assert_int_equal(log_metric(q, "r2", "m", 0, NULL), 0);

    char err[1024] = "";
    assert_int_equal(mpb_logging_queue_shutdown(q, 100, err, sizeof err), MPB_ETIMEDOUT);
    assert_non_null(strstr(err, "run r1: 2 batches (2 metrics, 0 params, 0 tags)"));
    assert_non_null(strstr(err, "run r2: 1 batches"));
    assert_int_equal(mpb_logging_handle_wait(lost, HANG_MS, NULL, 0), MPB_ECANCELED);
    assert_false(mpb_logging_handle_is_done(in_call));
    assert_int_equal(mpb_logging_queue_status(q), MPB_LOGGING_QUEUE_TEAR_DOWN);
    assert_int_equal(log_metric(q, "r1", "m", 3, NULL), MPB_ECLOSED);

    test_sink_release(&sink);
    assert_int_equal(mpb_logging_handle_wait(in_call, HANG_MS, NULL, 0), 0);
    assert_int_equal(mpb_logging_queue_shutdown(q, HANG_MS, NULL, 0), 0);
    assert_int_equal(mpb_logging_queue_status(q), MPB_LOGGING_QUEUE_IDLE);
    mpb_logging_handle_release(&in_call);
    mpb_logging_handle_release(&lost);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

static void
lifecycle_and_restart(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    mpb_logging_queue *q = mpb__logging_queue_new_with_sink(&test_sink_vtable, &sink, NULL);
    assert_int_equal(mpb_logging_queue_status(q), MPB_LOGGING_QUEUE_IDLE);
    assert_int_equal(log_metric(q, "r1", "m", 0, NULL), MPB_ECLOSED);
    assert_int_equal(mpb_logging_queue_flush(q, 0), 0);
    assert_int_equal(mpb_logging_queue_shutdown(q, 0, NULL, 0), 0);
    assert_int_equal(mpb_logging_queue_start(q, NULL, 0), 0);
    assert_int_equal(mpb_logging_queue_start(q, NULL, 0), MPB_EBUSY);
    assert_int_equal(log_metric(q, "r1", "m", 0, NULL), 0);
    assert_int_equal(mpb_logging_queue_shutdown(q, HANG_MS, NULL, 0), 0);
    assert_int_equal(log_metric(q, "r1", "m", 1, NULL), MPB_ECLOSED);
    assert_int_equal(mpb_logging_queue_start(q, NULL, 0), 0);
    assert_int_equal(log_metric(q, "r1", "m", 1, NULL), 0);
    /* A handle given back before completion: the write still happens. */
    mpb_logging_handle *h = NULL;
    assert_int_equal(log_metric(q, "r1", "m", 2, &h), 0);
    mpb_logging_handle_release(&h);
    mpb_logging_handle_release(&h);
    /* A handle kept past destroy stays readable. */
    mpb_logging_handle *kept = NULL;
    assert_int_equal(log_metric(q, "r1", "m", 3, &kept), 0);
    mpb_logging_queue_destroy(&q);
    assert_int_equal(mpb_logging_handle_wait(kept, 0, NULL, 0), 0);
    mpb_logging_handle_release(&kept);
    assert_run_in_order(&sink, "r1", 4);
    test_sink_free(&sink);

    mpb_logging_queue_options bad = {.block_timeout_ms = -1};
    q = mpb__logging_queue_new_with_sink(&test_sink_vtable, &sink, &bad);
    char err[256] = "";
    assert_int_equal(mpb_logging_queue_start(q, err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "timeouts"));
    mpb_logging_queue_destroy(&q);
}

static void
exit_timeout_is_parsed_strictly(void **state)
{
    int64_t ms = -1;
    char err[256] = "";
    assert_int_equal(mpb__exit_timeout_parse(NULL, &ms, NULL, 0), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(mpb__exit_timeout_parse("", &ms, NULL, 0), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(mpb__exit_timeout_parse("0", &ms, NULL, 0), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(mpb__exit_timeout_parse("2500", &ms, NULL, 0), 0);
    assert_int_equal(ms, 2500);
    const char *bad[] = {"abc", "-5", "12x", " 5", "1e3", "99999999999999999999", "86400001"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        assert_int_equal(mpb__exit_timeout_parse(bad[i], &ms, err, sizeof err), MPB_ECONFIG);
        assert_non_null(strstr(err, "MPB_TRACKING_EXIT_TIMEOUT_MS"));
    }
}

/* ---- the exit drain, in child processes ------------------------------------------------------ */

/* A sink appending "run key step" lines to a file with one write each. */
static int
line_sink_log_batch(void *ctx, const char *run_id, const mpb_metric *metrics, size_t n_metrics,
                    const mpb_param *params, size_t n_params, const mpb_tag *tags, size_t n_tags,
                    char *err, size_t err_len)
{
    int fd = *(int *)ctx;
    for (size_t i = 0; i < n_metrics; i++) {
        dprintf(fd, "%s %s %lld\n", run_id, metrics[i].key, (long long)metrics[i].step);
    }
    return 0;
}

static int
line_sink_update_run(void *ctx, const char *run_id, mpb_run_status status, int64_t end_time_ms,
                     char *err, size_t err_len)
{
    dprintf(*(int *)ctx, "%s status %d\n", run_id, (int)status);
    return 0;
}

static const mpb__log_sink line_sink = {
    .log_batch = line_sink_log_batch,
    .update_run = line_sink_update_run,
};

static int child_fd = -1;
static test_sink child_sink;

/* Logs and returns from main without flushing or destroying. */
static int
child_logs_and_returns(const char *path)
{
    child_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    mpb_logging_queue *q = mpb__logging_queue_new_with_sink(&line_sink, &child_fd, NULL);
    if (mpb_logging_queue_start(q, NULL, 0) != 0) {
        return 2;
    }
    for (int i = 0; i < 20000; i++) {
        if (log_metric(q, "child", "m", i, NULL) != 0) {
            return 3;
        }
    }
    mpb_logging_queue_update_run(q, "child", MPB_RUN_FINISHED, -1, NULL);
    return 0;
}

/* The writer is stuck: the drain gives up after MPB_TRACKING_EXIT_TIMEOUT_MS. */
static int
child_stuck_at_exit(void)
{
    test_sink_init(&child_sink);
    child_sink.block = 1;
    mpb_logging_queue *q = mpb__logging_queue_new_with_sink(&test_sink_vtable, &child_sink, NULL);
    if (mpb_logging_queue_start(q, NULL, 0) != 0) {
        return 2;
    }
    log_metric(q, "run-stuck", "m", 0, NULL);
    test_sink_wait_entered(&child_sink, 1);
    for (int i = 1; i <= 5; i++) {
        log_metric(q, "run-stuck", "m", i, NULL);
    }
    return 0;
}

static int
child_with_bad_env(void)
{
    mpb_logging_queue *q = mpb__logging_queue_new_with_sink(&test_sink_vtable, &child_sink, NULL);
    char err[256] = "";
    int rc = mpb_logging_queue_start(q, err, sizeof err);
    fprintf(stderr, "%s\n", err);
    mpb_logging_queue_destroy(&q);
    return rc == MPB_ECONFIG ? 7 : 1;
}

static void
exit_drains_what_main_left(void **state)
{
    char *dir = test_make_temp_dir("mpb-drain");
    assert_non_null(dir);
    char *path = mpb_asprintf("%s/lines", dir);
    const char *args[] = {"--child-returns", path, NULL};
    assert_int_equal(test_child_run(args, NULL, NULL, HANG_MS), 0);
    char *text = test_read_file(path);
    assert_non_null(text);
    int64_t step = 0;
    char *line = text;
    char expect[64];
    while (step < 20000) {
        snprintf(expect, sizeof expect, "child m %lld\n", (long long)step);
        assert_memory_equal(line, expect, strlen(expect));
        line += strlen(expect);
        step++;
    }
    assert_string_equal(line, "child status 3\n");
    free(text);
    free(path);
    test_remove_tree(dir);
    free(dir);
}

static void
exit_drain_is_bounded_and_reports(void **state)
{
    char *dir = test_make_temp_dir("mpb-drain");
    char *log_path = mpb_asprintf("%s/stderr", dir);
    const char *args[] = {"--child-stuck", NULL};
    int64_t t0 = mpb_now_ns();
    assert_int_equal(test_child_run(args,
                                    (const char *[]){"MPB_TRACKING_EXIT_TIMEOUT_MS=300", NULL},
                                    log_path, HANG_MS),
                     0);
    assert_true(mpb_now_ns() - t0 >= 300 * INT64_C(1000000));
    char *text = test_read_file(log_path);
    assert_non_null(text);
    assert_non_null(strstr(text, "not written"));
    assert_non_null(strstr(text, "run run-stuck: 5 batches (5 metrics"));
    free(text);
    free(log_path);
    test_remove_tree(dir);
    free(dir);
}

static void
bad_exit_timeout_fails_start(void **state)
{
    char *dir = test_make_temp_dir("mpb-drain");
    char *log_path = mpb_asprintf("%s/stderr", dir);
    const char *args[] = {"--child-bad-env", NULL};
    assert_int_equal(test_child_run(args,
                                    (const char *[]){"MPB_TRACKING_EXIT_TIMEOUT_MS=soon", NULL},
                                    log_path, HANG_MS),
                     7);
    char *text = test_read_file(log_path);
    assert_non_null(strstr(text, "MPB_TRACKING_EXIT_TIMEOUT_MS=\"soon\""));
    free(text);
    free(log_path);
    test_remove_tree(dir);
    free(dir);
}

int
main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child-returns") == 0) {
        return child_logs_and_returns(argv[2]);
    }
    if (argc >= 2 && strcmp(argv[1], "--child-stuck") == 0) {
        return child_stuck_at_exit();
    }
    if (argc >= 2 && strcmp(argv[1], "--child-bad-env") == 0) {
        return child_with_bad_env();
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(logs_and_waits),
        cmocka_unit_test(input_is_copied),
        cmocka_unit_test(merges_consecutive_batches_of_a_run),
        cmocka_unit_test(merging_stops_at_limits_runs_and_repeated_keys),
        cmocka_unit_test(splits_a_batch_over_the_limits),
        cmocka_unit_test(update_run_comes_after_earlier_batches),
        cmocka_unit_test(every_handle_reports_a_failing_store),
        cmocka_unit_test(invalid_batch_does_not_fail_its_neighbours),
        cmocka_unit_test(fail_fast_when_full),
        cmocka_unit_test(block_policy_times_out_then_gets_room),
        cmocka_unit_test(blocked_producers_resume),
        cmocka_unit_test(four_threads_keep_each_run_in_order),
        cmocka_unit_test(wait_and_flush_have_deadlines),
        cmocka_unit_test(hung_store_call_fails_the_queue),
        cmocka_unit_test(dead_writer_is_reported),
        cmocka_unit_test(shutdown_past_its_deadline_says_what_was_lost),
        cmocka_unit_test(lifecycle_and_restart),
        cmocka_unit_test(exit_timeout_is_parsed_strictly),
        cmocka_unit_test(exit_drains_what_main_left),
        cmocka_unit_test(exit_drain_is_bounded_and_reports),
        cmocka_unit_test(bad_exit_timeout_fails_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
