/*
 * The async logging queue when things go wrong: deadlines, a store call that
 * never returns, a writer thread that dies, shutdown past its deadline,
 * restart, and the exit drain in re-executed child processes.
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
#include "tracking/helpers.h"
#include "tracking/logging_queue_int.h"
#include "tracking/queue_helpers.h"
#include "tracking/test_child.h"
#include "tracking/test_sink.h"

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
    mpb_logging_queue_options opts = {.store_call_timeout_ms = 200};
    mpb_logging_handle *in_call = NULL;
    mpb_logging_handle *queued = NULL;
    mpb_logging_queue *q = start_busy_queue(&sink, &opts, &in_call);
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
    mpb_logging_handle *in_call = NULL;
    mpb_logging_handle *lost = NULL;
    mpb_logging_queue *q = start_busy_queue(&sink, NULL, &in_call);
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
    char *dir = th_tempdir();
    char *path = mpb_asprintf("%s/lines", dir);
    const char *args[] = {"--child-returns", path, NULL};
    assert_int_equal(test_child_run(args, NULL, NULL, HANG_MS), 0);
    char *text = th_read(path);
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
    th_cleanup(&dir);
}

/* Runs this binary with args and extra environment entries; checks its exit
 * status and returns what it wrote to stderr (caller frees). */
static char *
child_stderr(const char *const *args, const char *const *env, int expected_status)
{
    char *dir = th_tempdir();
    char *log_path = mpb_asprintf("%s/stderr", dir);
    assert_int_equal(test_child_run(args, env, log_path, HANG_MS), expected_status);
    char *text = th_read(log_path);
    assert_non_null(text);
    free(log_path);
    th_cleanup(&dir);
    return text;
}

static void
exit_drain_is_bounded_and_reports(void **state)
{
    const char *args[] = {"--child-stuck", NULL};
    const char *env[] = {"MPB_TRACKING_EXIT_TIMEOUT_MS=300", NULL};
    int64_t t0 = mpb_now_ns();
    char *text = child_stderr(args, env, 0);
    assert_true(mpb_now_ns() - t0 >= 300 * INT64_C(1000000));
    assert_non_null(strstr(text, "not written"));
    assert_non_null(strstr(text, "run run-stuck: 5 batches (5 metrics"));
    free(text);
}

static void
bad_exit_timeout_fails_start(void **state)
{
    const char *args[] = {"--child-bad-env", NULL};
    const char *env[] = {"MPB_TRACKING_EXIT_TIMEOUT_MS=soon", NULL};
    char *text = child_stderr(args, env, 7);
    assert_non_null(strstr(text, "MPB_TRACKING_EXIT_TIMEOUT_MS=\"soon\""));
    free(text);
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
