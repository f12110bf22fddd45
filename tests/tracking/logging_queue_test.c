/*
 * The async logging queue against a test sink: writing, order, merging,
 * splitting, store errors, bounds. (logging_queue_failure_test.c: deadlines,
 * a dead or hung writer, shutdown, the exit drain.)
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
#include "tracking/queue_helpers.h"
#include "tracking/test_sink.h"

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
    mpb_logging_queue *q = start_busy_queue(&sink, NULL, NULL);
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
    mpb_logging_queue *q = start_busy_queue(&sink, NULL, NULL);
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
    mpb_logging_queue *q = start_busy_queue(&sink, NULL, NULL);
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
    mpb_logging_queue *q = start_busy_queue(&sink, NULL, NULL);
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
    /* A batch larger than the whole capacity can never fit. */
    mpb_metric big[5] = {
        {"m", 4, 1, 4}, {"m", 5, 1, 5}, {"m", 6, 1, 6}, {"m", 7, 1, 7}, {"m", 8, 1, 8}};
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", big, 5, NULL, 0, NULL, 0, NULL),
                     MPB_ELIMIT);
    test_sink_release(&sink);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", big, 4, NULL, 0, NULL, 0, NULL), 0);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_run_in_order(&sink, "r1", 8);
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

static void
lingering_writer_merges_and_wakes_for_flush_and_a_full_call(void **state)
{
    (void)state;
    test_sink sink;
    test_sink_init(&sink);
    /* a minute of lingering: only a flush, a store call's worth, or
     * shutdown makes the writer write */
    mpb_logging_queue_options options = {.linger_ms = 60000, .writer_nice = 5};
    mpb_logging_queue *q = start_queue(&sink, &options);
    for (int64_t step = 0; step < 10; step++) {
        assert_int_equal(log_metric(q, "r1", "m", step, NULL), 0);
    }
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_int_equal(sink.n_calls, 1); /* the ten in one call */
    assert_int_equal(sink.calls[0].n_metrics, 10);
    for (int64_t step = 10; step < 1010; step++) {
        assert_int_equal(log_metric(q, "r1", "m", step, NULL), 0);
    }
    /* 1000 queued: written without a flush */
    assert_true(test_sink_wait_entered(&sink, 2));
    assert_int_equal(sink.calls[1].n_metrics, 1000);
    assert_int_equal(mpb_logging_queue_flush(q, HANG_MS), 0);
    assert_run_in_order(&sink, "r1", 1010);
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);

    /* a small queue: half its capacity ends the wait, and so does a
     * producer it refused (FAIL_FAST has no room waiters to do it) */
    test_sink_init(&sink);
    mpb_logging_queue_options small = {
        .capacity = 100, .when_full = MPB_LOGGING_QUEUE_FAIL_FAST, .linger_ms = 60000};
    q = start_queue(&sink, &small);
    mpb_metric many[70];
    for (int i = 0; i < 70; i++) {
        many[i] = (mpb_metric){"m", (double)i, 1000 + i, i};
    }
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", many, 40, NULL, 0, NULL, 0, NULL), 0);
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", many, 70, NULL, 0, NULL, 0, NULL),
                     MPB_EFULL);
    assert_true(test_sink_wait_entered(&sink, 1)); /* written well before the minute */
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
    test_sink_init(&sink);
    q = start_queue(&sink, &small);
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", many, 30, NULL, 0, NULL, 0, NULL), 0);
    assert_int_equal(mpb_logging_queue_log_batch(q, "r1", many, 30, NULL, 0, NULL, 0, NULL), 0);
    assert_true(test_sink_wait_entered(&sink, 1)); /* 60 of 100 queued: past half */
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);

    test_sink_init(&sink);
    options.writer_nice = 20; /* out of range */
    q = mpb__logging_queue_new_with_sink(&test_sink_vtable, &sink, &options);
    char err[256] = "";
    assert_int_equal(mpb_logging_queue_start(q, err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "writer_nice"));
    mpb_logging_queue_destroy(&q);
    test_sink_free(&sink);
}

int
main(void)
{
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
        cmocka_unit_test(lingering_writer_merges_and_wakes_for_flush_and_a_full_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
