/*
 * What happens at the edges of normal work: stop drains everything in
 * flight, deadlines become Timeout errors on time (waiting or in flight,
 * however many items wait), a full server refuses or waits as asked.
 */
#include "reliability_helpers.h"

static void
stop_drains_everything_in_flight(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "sleep",
                    .workers = 2,
                    .batch_size = 4,
                    .batch_wait_us = TP_ZERO,
                    .options = {"batch_cost_us=5000", "item_cost_us=0"}};
    mpb_server *server = test_server_start(&tp);
    tally t = {0};
    for (int i = 0; i < 200; i++) {
        assert_int_equal(mpb_server_submit(server, "x", 1, -1, count_result, &t), 0);
    }
    assert_int_equal(mpb_server_stop(server), 0);
    assert_int_equal(atomic_load(&t.values), 200);
    assert_int_equal(atomic_load(&t.errors), 0);
    assert_int_equal(mpb_server_submit(server, "x", 1, -1, count_result, &t), MPB_ECLOSED);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.completed, 200);
    assert_int_equal(stats.in_flight, 0);
    mpb_server_destroy(&server);
}

static void
call_past_its_timeout_returns_timeout(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"hang_prefix=hang", "hang_ms=2500"}};
    mpb_server *server = test_server_start(&tp);
    mpb_result *r = NULL;
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_call(server, "hang", 4, 200, &r), MPB_ETIMEDOUT);
    int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
    assert_non_null(r);
    assert_string_equal(mpb_result_error(r)->type, MPB_ERROR_TIMEOUT);
    assert_true(elapsed_ms >= 200);
    assert_true(elapsed_ms < 2000); /* at the timeout, well before the hang ends */
    mpb_result_destroy(&r);
    assert_int_equal(mpb_server_call(server, "fine", 4, 10000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
submit_fails_fast_at_capacity(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .capacity = 2,
                    .options = {"hang_prefix=hang", "hang_ms=300"}};
    mpb_server *server = test_server_start(&tp);
    tally t = {0};
    assert_int_equal(mpb_server_submit(server, "hang", 4, 0, count_result, &t), 0);
    assert_int_equal(mpb_server_submit(server, "hang", 4, 0, count_result, &t), 0);
    assert_int_equal(mpb_server_submit(server, "x", 1, 0, count_result, &t), MPB_EAGAIN);
    assert_int_equal(mpb_server_submit(server, "x", 1, 50, count_result, &t), MPB_ETIMEDOUT);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.rejected, 2); /* both counted as overload */
    assert_int_equal(mpb_server_submit(server, "x", 1, 5000, count_result, &t), 0);
    mpb_server_destroy(&server);
    assert_int_equal(atomic_load(&t.values), 3);
}

static void
items_past_their_deadline_are_answered_in_time(void **state)
{
    /* "hang" holds the only worker for 2.5 s; both items have a 300 ms
     * deadline: both are answered Timeout at their deadline, not when the
     * worker is done. The worker's late answer is dropped quietly and its
     * credit comes back. */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"hang_prefix=hang", "hang_ms=2500"}};
    mpb_server *server = test_server_start(&tp);
    const char *items[] = {"hang", "later"};
    mpb_result *results[2] = {NULL, NULL};
    named_feed feed = {items, 2, 0, results};
    mpb_stream_options opts = {.return_exceptions = 1, .item_timeout_ms = 300};
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_stream(server, named_next, named_keep, &feed, &opts), 0);
    int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
    print_message("both answered after %lld ms\n", (long long)elapsed_ms);
    assert_true(elapsed_ms >= 300);
    assert_true(elapsed_ms < 1800); /* well before the worker is done */
    for (int i = 0; i < 2; i++) {
        const mpb_item_error *e = mpb_result_error(results[i]);
        assert_non_null(e);
        assert_string_equal(e->type, MPB_ERROR_TIMEOUT);
        assert_string_equal(e->worker, "fail-0");
        mpb_result_destroy(&results[i]);
    }
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "fine", 4, 10000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.protocol_errors, 0);
    assert_int_equal(stats.in_flight, 0);
    mpb_server_destroy(&server);
}

static void
deadlines_fire_on_time_behind_thousands_of_items(void **state)
{
    (void)state;
    /* the only worker hangs 2 s on each of the first items and holds its
     * credit; 5000 items without a deadline wait behind them. 100 items
     * with a 100 ms deadline must come back Timeout at their deadline, not
     * at the next periodic sweep and not after a walk of every slot */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"hang_prefix=hang", "hang_ms=2000"}};
    mpb_servlet *root = test_pool_servlet(&tp);
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.capacity = 8192;
    opts.stop_timeout_ms = 200; /* then the hung worker is killed */
    mpb_server *server = test_server_over(&root, &opts);
    tally t = {0};
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(mpb_server_submit(server, "hang", 4, -1, count_result, &t), 0);
    }
    usleep(100000); /* they are in, the worker's credit is taken */
    enum { N = 100 };
    const void *inputs[N];
    size_t lens[N];
    mpb_result *out[N];
    for (int i = 0; i < N; i++) {
        inputs[i] = "late";
        lens[i] = 4;
    }
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_call_many(server, inputs, lens, N, 100, out), 0);
    int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
    print_message("100 deadlines of 100 ms answered after %lld ms\n", (long long)elapsed_ms);
    assert_true(elapsed_ms >= 100);
    assert_true(elapsed_ms < 350); /* a 500 ms sweep would miss this half the time */
    for (int i = 0; i < N; i++) {
        assert_string_equal(mpb_result_error(out[i])->type, MPB_ERROR_TIMEOUT);
        mpb_result_destroy(&out[i]);
    }
    mpb_server_destroy(&server);
    assert_int_equal(atomic_load(&t.values) + atomic_load(&t.errors), 5000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stop_drains_everything_in_flight),
        cmocka_unit_test(call_past_its_timeout_returns_timeout),
        cmocka_unit_test(submit_fails_fast_at_capacity),
        cmocka_unit_test(items_past_their_deadline_are_answered_in_time),
        cmocka_unit_test(deadlines_fire_on_time_behind_thousands_of_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
