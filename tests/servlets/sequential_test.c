/*
 * SequentialServlet: each stage's value feeds the next, results keep input
 * order, an error at a stage is the item's result and later stages never
 * see that item, and pools of both kinds mix in one pipeline.
 */
#include "tree_helpers.h"

static mpb_server *
start_seq(mpb_servlet **stages, size_t n, path_counts *counts)
{
    mpb_servlet *seq = mpb_sequential_servlet_new(stages, n);
    for (size_t i = 0; i < n; i++) {
        assert_null(stages[i]); /* consumed */
    }
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.on_batch = counts ? count_batch : NULL;
    opts.on_batch_ctx = counts;
    return test_server_over(&seq, &opts);
}

static void
test_stages_run_in_order(void **state)
{
    (void)state;
    mpb_servlet *stages[3] = {tag_pool("thread", "a", 1, NULL), tag_pool("process", "b", 2, NULL),
                              tag_pool("thread", "c", 2, NULL)};
    mpb_server *server = start_seq(stages, 3, NULL);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "x", 1, 5000, &r), 0);
    assert_value(r, "x|a|b|c");
    mpb_result_destroy(&r);

    enum { N = 2000 };
    const char **inputs = mpb_calloc(N, sizeof(char *));
    char(*texts)[32] = mpb_calloc(N, 32);
    for (size_t i = 0; i < N; i++) {
        snprintf(texts[i], 32, "item-%zu", i);
        inputs[i] = texts[i];
    }
    mpb_result **results = stream_strings(server, inputs, N);
    for (size_t i = 0; i < N; i++) {
        char expect[64];
        snprintf(expect, sizeof expect, "item-%zu|a|b|c", i);
        assert_value(results[i], expect);
    }
    free_results(results, N);
    free(texts);
    free(inputs);
    mpb_server_destroy(&server);
}

static void
test_error_at_a_stage_skips_the_rest(void **state)
{
    (void)state;
    path_counts counts = {0};
    mpb_servlet *stages[3] = {tag_pool("process", "a", 1, NULL), tag_pool("process", "b", 1, NULL),
                              tag_pool("thread", "c", 1, NULL)};
    mpb_server *server = start_seq(stages, 3, &counts);
    enum { N = 300 };
    const char **inputs = mpb_calloc(N, sizeof(char *));
    char(*texts)[32] = mpb_calloc(N, 32);
    size_t failing = 0;
    for (size_t i = 0; i < N; i++) {
        /* every 7th item fails at b, every 11th at a */
        const char *mark = i % 11 == 5 ? "!a" : i % 7 == 3 ? "!b" : "";
        snprintf(texts[i], 32, "i%zu%s", i, mark);
        failing += *mark != '\0';
        inputs[i] = texts[i];
    }
    mpb_result **results = stream_strings(server, inputs, N);
    mpb_server_stop(server);
    for (size_t i = 0; i < N; i++) {
        char expect[64];
        if (i % 11 == 5) {
            assert_error(results[i], "ValueError", "sequential/a");
            assert_string_equal(mpb_result_error(results[i])->message, "failed at a");
        } else if (i % 7 == 3) {
            assert_error(results[i], "ValueError", "sequential/b");
            assert_true(mpb_result_error(results[i])->pid > 0);
        } else {
            snprintf(expect, sizeof expect, "i%zu|a|b|c", i);
            assert_value(results[i], expect);
        }
    }
    /* c computed only the items that passed a and b */
    assert_int_equal(items_at(&counts, "sequential/c"), N - failing);
    assert_int_equal(items_at(&counts, "sequential/a"), N);
    free_results(results, N);
    free(texts);
    free(inputs);
    mpb_server_destroy(&server);
}

/* 100k items through two process pools: in order, none lost or doubled. */
static void
test_two_process_pools_100k(void **state)
{
    (void)state;
    test_pool first = {.kind = "process",
                       .plugin = "passthrough",
                       .name = "first",
                       .batch_size = 64,
                       .batch_wait_us = 200};
    test_pool second = {.kind = "process",
                        .plugin = "passthrough",
                        .name = "second",
                        .batch_size = 64,
                        .batch_wait_us = 200};
    mpb_servlet *stages[2] = {test_pool_servlet(&first), test_pool_servlet(&second)};
    mpb_server *server = start_seq(stages, 2, NULL);
    index_stream s = {.n = 100000, .binary = 1};
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, &opts), 0);
    assert_int_equal(s.outputs, 100000);
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(s.wrong_value, 0);
    assert_int_equal(s.errors, 0);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.completed, 100000);
    assert_int_equal(stats.batched_items, 200000); /* each item computed once per stage */
    mpb_server_destroy(&server);
}

static void
test_deadline_covers_every_stage(void **state)
{
    (void)state;
    mpb_servlet *stages[2] = {tag_pool("thread", "a", 1, NULL),
                              tag_pool("thread", "slow", 1, "delay_us=1500000")};
    mpb_server *server = start_seq(stages, 2, NULL);
    mpb_result *r = NULL;
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_call(server, "x", 1, 100, &r), MPB_ETIMEDOUT);
    assert_true(mpb_now_ns() - start < 1000 * 1000000LL); /* not after the slow stage */
    assert_string_equal(mpb_result_error(r)->type, MPB_ERROR_TIMEOUT);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
test_members_need_distinct_names(void **state)
{
    (void)state;
    mpb_servlet *stages[2] = {tag_pool("thread", "a", 1, NULL), tag_pool("thread", "a", 1, NULL)};
    mpb_servlet *seq = mpb_sequential_servlet_new(stages, 2);
    mpb_server *server = mpb_server_new(&seq, NULL);
    char err[512];
    assert_int_equal(mpb_server_start(server, err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "both named 'a'"));
    mpb_server_destroy(&server);

    mpb_servlet *renamed[2] = {tag_pool("thread", "a", 1, NULL), tag_pool("thread", "a", 1, NULL)};
    assert_int_equal(mpb_servlet_rename(renamed[1], "a2"), 0);
    assert_int_equal(mpb_servlet_rename(renamed[1], "a/b"), MPB_EINVAL);
    seq = mpb_sequential_servlet_new(renamed, 2);
    assert_int_equal(mpb_servlet_rename(seq, "pipeline"), 0);
    server = test_server_over(&seq, NULL);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "y!a", 3, 5000, &r), MPB_EITEM);
    assert_error(r, "ValueError", "pipeline/a");
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
test_a_failed_start_stops_started_members(void **state)
{
    (void)state;
    test_pool bad = {.kind = "process", .plugin = "no-such-plugin"};
    mpb_servlet *stages[2] = {tag_pool("process", "a", 2, NULL), test_pool_servlet(&bad)};
    mpb_servlet *seq = mpb_sequential_servlet_new(stages, 2);
    mpb_server *server = mpb_server_new(&seq, NULL);
    char err[512];
    assert_int_not_equal(mpb_server_start(server, err, sizeof err), 0);
    assert_non_null(strstr(err, "no-such-plugin"));
    assert_int_equal(mpb_server_workers(server, NULL, 0), 0);
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stages_run_in_order),
        cmocka_unit_test(test_error_at_a_stage_skips_the_rest),
        cmocka_unit_test(test_two_process_pools_100k),
        cmocka_unit_test(test_deadline_covers_every_stage),
        cmocka_unit_test(test_members_need_distinct_names),
        cmocka_unit_test(test_a_failed_start_stops_started_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
