/*
 * The queueing client against a recording sink: pending runs, MLflow's call
 * order and chunk boundaries, truncation, failures reported together.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/queueing_client.h"
#include "tracking/logging_queue_int.h"
#include "tracking/test_sink.h"
#include "tracking/text.h"
#include "tracking/tracking_util_int.h"

#define HANG_MS 20000

typedef struct fixture {
    test_sink sink;
    mpb_logging_queue *queue;
    mpb_queueing_client *client;
} fixture;

static int
setup(void **state)
{
    fixture *f = mpb_calloc(1, sizeof *f);
    test_sink_init(&f->sink);
    mpb_logging_queue_options opts = {.no_exit_drain = 1};
    f->queue = mpb__logging_queue_new_with_sink(&test_sink_vtable, &f->sink, &opts);
    if (mpb_logging_queue_start(f->queue, NULL, 0) != 0) {
        return -1;
    }
    f->client = mpb_queueing_client_new(f->queue);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    mpb_queueing_client_destroy(&f->client);
    mpb_logging_queue_destroy(&f->queue);
    test_sink_free(&f->sink);
    free(f);
    return 0;
}

/* n entities named prefix0, prefix1, ... (names live in one block). */
typedef struct entities {
    char (*names)[24];
    mpb_param *params;
    mpb_tag *tags;
    mpb_metric *metrics;
} entities;

static entities
make_entities(const char *prefix, size_t n)
{
    entities e = {
        .names = mpb_calloc(n + 1, sizeof *e.names),
        .params = mpb_calloc(n + 1, sizeof *e.params),
        .tags = mpb_calloc(n + 1, sizeof *e.tags),
        .metrics = mpb_calloc(n + 1, sizeof *e.metrics),
    };
    for (size_t i = 0; i < n; i++) {
        snprintf(e.names[i], sizeof e.names[i], "%s%zu", prefix, i);
        e.params[i] = (mpb_param){e.names[i], "v"};
        e.tags[i] = (mpb_tag){e.names[i], "v"};
        e.metrics[i] = (mpb_metric){"m", (double)i, 1, (int64_t)i};
    }
    return e;
}

static void
free_entities(entities *e)
{
    free(e->names);
    free(e->params);
    free(e->tags);
    free(e->metrics);
}

static void
pending_run_is_usable_before_it_exists(void **state)
{
    fixture *f = *state;
    mpb_tag tag = {"source", "test"};
    mpb_pending_run *run = mpb_queueing_client_create_run(f->client, "0", "my-run", 0, &tag, 1);
    assert_null(mpb_pending_run_id(run));
    mpb_param param = {"lr", "0.1"};
    mpb_metric metric = {"loss", 0.5, 0, 3};
    assert_int_equal(mpb_queueing_client_log_params(f->client, run, &param, 1), 0);
    assert_int_equal(mpb_queueing_client_log_metrics(f->client, run, &metric, 1), 0);
    assert_int_equal(mpb_queueing_client_set_terminated(f->client, run, MPB_RUN_FINISHED, 0), 0);
    assert_int_equal(mpb_queueing_client_set_terminated(f->client, run, MPB_RUN_FAILED, 0),
                     MPB_EEXIST);
    mpb_tag late = {"late", "1"};
    assert_int_equal(mpb_queueing_client_set_tags(f->client, run, &late, 1), 0);
    assert_int_equal(f->sink.n_calls, 0); /* nothing touched the store yet */

    char err[512] = "";
    assert_int_equal(mpb_queueing_client_flush_sync(f->client, HANG_MS, err, sizeof err), 0);
    assert_string_equal(mpb_pending_run_id(run), "run0");
    assert_int_equal(f->sink.n_calls, 3);
    assert_int_equal(f->sink.calls[0].kind, TEST_CALL_CREATE_RUN);
    assert_int_equal(f->sink.calls[0].n_tags, 2); /* the late tag went with create_run */
    assert_int_equal(f->sink.calls[1].kind, TEST_CALL_LOG_BATCH);
    assert_string_equal(f->sink.calls[1].run_id, "run0");
    assert_int_equal(f->sink.metrics[0].step, 3);
    assert_int_equal(f->sink.calls[2].kind, TEST_CALL_UPDATE_RUN); /* last */
    assert_int_equal(f->sink.calls[2].run_status, MPB_RUN_FINISHED);
    /* Nothing left: a second flush makes no call. */
    assert_int_equal(mpb_queueing_client_flush_sync(f->client, HANG_MS, NULL, 0), 0);
    assert_int_equal(f->sink.n_calls, 3);
}

typedef struct shape {
    size_t params;
    size_t tags;
    size_t metrics;
} shape;

/* Logs the counts to an existing run and checks the log_batch calls made. */
static void
check_chunks(fixture *f, shape input, const shape *expected, size_t n_expected)
{
    entities e = make_entities("k", input.params > input.tags ? input.params : input.tags);
    entities m = make_entities("m", input.metrics);
    mpb_pending_run *run = mpb_queueing_client_existing_run(f->client, "existing");
    mpb_queueing_client_log_params(f->client, run, e.params, input.params);
    mpb_queueing_client_set_tags(f->client, run, e.tags, input.tags);
    mpb_queueing_client_log_metrics(f->client, run, m.metrics, input.metrics);
    size_t first = f->sink.n_calls;
    assert_int_equal(mpb_queueing_client_flush_sync(f->client, HANG_MS, NULL, 0), 0);
    assert_int_equal(f->sink.n_calls - first, n_expected);
    for (size_t i = 0; i < n_expected; i++) {
        const test_call *call = &f->sink.calls[first + i];
        assert_int_equal(call->n_params, expected[i].params);
        assert_int_equal(call->n_tags, expected[i].tags);
        assert_int_equal(call->n_metrics, expected[i].metrics);
    }
    free_entities(&e);
    free_entities(&m);
}

static void
chunks_params_at_100(void **state)
{
    fixture *f = *state;
    check_chunks(f, (shape){99, 0, 0}, (shape[]){{99, 0, 0}}, 1);
    check_chunks(f, (shape){100, 0, 0}, (shape[]){{100, 0, 0}}, 1);
    check_chunks(f, (shape){101, 0, 0}, (shape[]){{100, 0, 0}, {1, 0, 0}}, 2);
    check_chunks(f, (shape){0, 101, 0}, (shape[]){{0, 100, 0}, {0, 1, 0}}, 2);
}

static void
chunks_entities_at_1000(void **state)
{
    fixture *f = *state;
    check_chunks(f, (shape){0, 0, 999}, (shape[]){{0, 0, 999}}, 1);
    check_chunks(f, (shape){0, 0, 1000}, (shape[]){{0, 0, 1000}}, 1);
    check_chunks(f, (shape){0, 0, 1001}, (shape[]){{0, 0, 1000}, {0, 0, 1}}, 2);
    check_chunks(f, (shape){99, 100, 800}, (shape[]){{99, 100, 800}}, 1);
    check_chunks(f, (shape){100, 100, 800}, (shape[]){{100, 100, 800}}, 1);
    check_chunks(f, (shape){100, 100, 801}, (shape[]){{100, 100, 800}, {0, 0, 1}}, 2);
    check_chunks(f, (shape){100, 0, 1001}, (shape[]){{100, 0, 900}, {0, 0, 101}}, 2);
    check_chunks(f, (shape){101, 1, 2500}, (shape[]){{100, 1, 899}, {1, 0, 999}, {0, 0, 602}}, 3);
}

/* create_run takes its own tags plus queued ones up to 1000; the rest follow. */
static void
create_run_folds_in_up_to_1000_tags(void **state)
{
    fixture *f = *state;
    entities own = make_entities("own", 5);
    entities queued = make_entities("q", 1200);
    mpb_pending_run *run = mpb_queueing_client_create_run(f->client, "0", NULL, 0, own.tags, 5);
    mpb_queueing_client_set_tags(f->client, run, queued.tags, 1200);
    assert_int_equal(mpb_queueing_client_flush_sync(f->client, HANG_MS, NULL, 0), 0);
    assert_int_equal(f->sink.n_calls, 4);
    assert_int_equal(f->sink.calls[0].kind, TEST_CALL_CREATE_RUN);
    assert_int_equal(f->sink.calls[0].n_tags, 1000);
    assert_int_equal(f->sink.calls[1].n_tags, 100);
    assert_int_equal(f->sink.calls[2].n_tags, 100);
    assert_int_equal(f->sink.calls[3].n_tags, 5);
    assert_string_equal(f->sink.tags[0].key, "own0");
    assert_string_equal(f->sink.tags[5].key, "q0");
    assert_string_equal(f->sink.tags[1204].key, "q1199");
    free_entities(&own);
    free_entities(&queued);
}

static char *
repeat(const char *unit, size_t times)
{
    size_t len = strlen(unit);
    char *text = mpb_malloc(len * times + 1);
    for (size_t i = 0; i < times; i++) {
        memcpy(text + i * len, unit, len);
    }
    text[len * times] = '\0';
    return text;
}

static void
truncates_like_mlflow(void **state)
{
    fixture *f = *state;
    char *key251 = repeat("k", 251);
    char *key250 = repeat("j", 250);
    char *value6000 = repeat("v", 6000);
    char *value6001 = repeat("v", 6001);
    char *tag8001 = repeat("\xc3\xa9", 8001); /* "é": cut by characters, not bytes */
    mpb_param params[3] = {{key251, "x"}, {key250, value6000}, {"p", value6001}};
    mpb_tag tag = {"t", tag8001};
    mpb_pending_run *run = mpb_queueing_client_existing_run(f->client, "existing");
    mpb_queueing_client_log_params(f->client, run, params, 3);
    mpb_queueing_client_set_tags(f->client, run, &tag, 1);
    assert_int_equal(mpb_queueing_client_flush_sync(f->client, HANG_MS, NULL, 0), 0);

    assert_int_equal(f->sink.n_params, 3);
    assert_int_equal(strlen(f->sink.params[0].key), 250);
    assert_string_equal(f->sink.params[0].key + 247, "...");
    assert_string_equal(f->sink.params[1].key, key250);
    assert_string_equal(f->sink.params[1].value, value6000);
    assert_int_equal(strlen(f->sink.params[2].value), 6000);
    assert_string_equal(f->sink.params[2].value + 5997, "...");
    assert_int_equal(mpb__utf8_length(f->sink.tags[0].value), 8000);
    assert_int_equal(strlen(f->sink.tags[0].value), 7997 * 2 + 3);
    free(key251);
    free(key250);
    free(value6000);
    free(value6001);
    free(tag8001);
}

/* Later calls still run after a failure; await reports all failures at once. */
static void
failures_are_reported_together(void **state)
{
    fixture *f = *state;
    f->sink.fail_key = "bad";
    entities m = make_entities("m", 2500);
    m.metrics[0].key = "bad";    /* in chunk 1 */
    m.metrics[1500].key = "bad"; /* in chunk 2 */
    mpb_pending_run *run = mpb_queueing_client_existing_run(f->client, "existing");
    mpb_queueing_client_log_metrics(f->client, run, m.metrics, 2500);
    mpb_queueing_client_set_terminated(f->client, run, MPB_RUN_FAILED, 0);
    mpb_queueing_ops *ops = NULL;
    assert_int_equal(mpb_queueing_client_flush(f->client, &ops), 0);
    char err[1024] = "";
    assert_int_equal(mpb_queueing_ops_await(ops, HANG_MS, err, sizeof err), MPB_EINVAL);
    assert_int_equal(mpb_queueing_ops_failed(ops), 2);
    const char *report = mpb_queueing_ops_report(ops);
    assert_non_null(strstr(report, "run existing: log_batch (0 params, 0 tags, 1000 metrics)"));
    assert_non_null(strchr(report, '\n'));
    assert_non_null(strstr(err, "2 failures, one per line"));
    assert_int_equal(f->sink.n_calls, 4); /* 3 batches and set_terminated */
    assert_int_equal(f->sink.calls[3].kind, TEST_CALL_UPDATE_RUN);
    assert_int_equal(f->sink.n_metrics, 500);
    mpb_queueing_ops_destroy(&ops);
    assert_null(ops);
    free_entities(&m);
}

static void
failed_creation_skips_the_run(void **state)
{
    fixture *f = *state;
    f->sink.fail_create = 1;
    mpb_pending_run *run = mpb_queueing_client_create_run(f->client, "0", "x", 0, NULL, 0);
    mpb_pending_run *other = mpb_queueing_client_existing_run(f->client, "other");
    mpb_param param = {"a", "b"};
    mpb_queueing_client_log_params(f->client, run, &param, 1);
    mpb_queueing_client_set_terminated(f->client, run, MPB_RUN_FINISHED, 0);
    mpb_queueing_client_log_params(f->client, other, &param, 1);
    mpb_queueing_ops *ops = NULL;
    mpb_queueing_client_flush(f->client, &ops);
    assert_int_equal(mpb_queueing_ops_await(ops, HANG_MS, NULL, 0), MPB_EIO);
    assert_int_equal(mpb_queueing_ops_failed(ops), 2);
    assert_non_null(strstr(mpb_queueing_ops_report(ops), "pending run #1: create_run"));
    assert_non_null(strstr(mpb_queueing_ops_report(ops), "2 operations skipped"));
    assert_null(mpb_pending_run_id(run));
    assert_int_equal(f->sink.n_params, 1); /* the other run was logged */
    mpb_queueing_ops_destroy(&ops);
}

static void
await_has_a_deadline(void **state)
{
    fixture *f = *state;
    pthread_mutex_lock(&f->sink.lock);
    f->sink.block = 1;
    pthread_mutex_unlock(&f->sink.lock);
    mpb_pending_run *run = mpb_queueing_client_create_run(f->client, "0", NULL, 0, NULL, 0);
    mpb_queueing_ops *ops = NULL;
    mpb_queueing_client_flush(f->client, &ops);
    char err[256] = "";
    assert_int_equal(mpb_queueing_ops_await(ops, 50, err, sizeof err), MPB_ETIMEDOUT);
    assert_null(mpb_pending_run_id(run));
    test_sink_release(&f->sink);
    assert_int_equal(mpb_queueing_ops_await(ops, HANG_MS, err, sizeof err), 0);
    assert_non_null(mpb_pending_run_id(run));
    mpb_queueing_ops_destroy(&ops);
}

static void
refused_runs_are_failures(void **state)
{
    test_sink sink;
    test_sink_init(&sink);
    sink.block = 1;
    mpb_logging_queue_options opts = {.capacity = 10, .when_full = MPB_LOGGING_QUEUE_FAIL_FAST};
    mpb_logging_queue *queue = mpb__logging_queue_new_with_sink(&test_sink_vtable, &sink, &opts);
    assert_int_equal(mpb_logging_queue_start(queue, NULL, 0), 0);
    mpb_queueing_client *client = mpb_queueing_client_new(queue);
    entities m = make_entities("m", 20);
    mpb_pending_run *a = mpb_queueing_client_existing_run(client, "a");
    mpb_pending_run *b = mpb_queueing_client_existing_run(client, "b");
    mpb_queueing_client_log_metrics(client, a, m.metrics, 20); /* fits an empty queue */
    mpb_queueing_client_log_metrics(client, b, m.metrics, 20); /* does not fit */
    mpb_queueing_ops *ops = NULL;
    mpb_queueing_client_flush(client, &ops);
    test_sink_release(&sink);
    assert_int_equal(mpb_queueing_ops_await(ops, HANG_MS, NULL, 0), MPB_EFULL);
    assert_int_equal(mpb_queueing_ops_failed(ops), 1);
    assert_non_null(strstr(mpb_queueing_ops_report(ops), "run b: 20 operations not queued"));
    mpb_queueing_ops_destroy(&ops);
    /* b's operations stayed queued: the next flush, with room, writes them */
    assert_int_equal(sink.n_metrics, 20);
    assert_int_equal(mpb_queueing_client_flush_sync(client, HANG_MS, NULL, 0), 0);
    assert_int_equal(sink.n_metrics, 40);
    /* never flushed: dropped with a warning */
    mpb_queueing_client_log_metrics(client, a, m.metrics, 1);
    mpb_queueing_client_destroy(&client);
    mpb_logging_queue_destroy(&queue);
    test_sink_free(&sink);
    free_entities(&m);
}

static void
metric_timestamps_default_to_now(void **state)
{
    fixture *f = *state;
    mpb_pending_run *run = mpb_queueing_client_existing_run(f->client, "r");
    mpb_metric metric = {"m", 1.0, 0, 7};
    int64_t before = mpb_wall_ms();
    mpb_queueing_client_log_metrics(f->client, run, &metric, 1);
    assert_int_equal(mpb_queueing_client_flush_sync(f->client, HANG_MS, NULL, 0), 0);
    assert_int_equal(f->sink.metrics[0].step, 7);
    assert_true(f->sink.metrics[0].timestamp_ms >= before);
}

static void
truncation_counts_characters(void **state)
{
    int cut = -1;
    char *same = mpb__truncate_ellipsis("abcd", 4, &cut);
    assert_string_equal(same, "abcd");
    assert_int_equal(cut, 0);
    char *shorter = mpb__truncate_ellipsis("abcde", 4, &cut);
    assert_string_equal(shorter, "a...");
    assert_int_equal(cut, 1);
    char *accents = mpb__truncate_ellipsis("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 4, &cut);
    assert_string_equal(accents, "\xc3\xa9...");
    assert_int_equal(mpb__utf8_length("\xe2\x82\xac"
                                      "a"),
                     2);
    free(same);
    free(shorter);
    free(accents);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pending_run_is_usable_before_it_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(chunks_params_at_100, setup, teardown),
        cmocka_unit_test_setup_teardown(chunks_entities_at_1000, setup, teardown),
        cmocka_unit_test_setup_teardown(create_run_folds_in_up_to_1000_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(truncates_like_mlflow, setup, teardown),
        cmocka_unit_test_setup_teardown(failures_are_reported_together, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_creation_skips_the_run, setup, teardown),
        cmocka_unit_test_setup_teardown(await_has_a_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(metric_timestamps_default_to_now, setup, teardown),
        cmocka_unit_test(refused_runs_are_failures),
        cmocka_unit_test(truncation_counts_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
