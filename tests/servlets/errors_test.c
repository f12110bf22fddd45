/*
 * Errors are values: each lands in its item's place, in input order, with
 * the servlet, worker and pid that produced it; nothing else is disturbed.
 */
#include "support.h"

typedef struct marked_stream {
    index_stream base;
    unsigned every;     /* item i gets the marker when i % every == every - 1 */
    const char *marker; /* prefix that triggers the plugin's rule */
} marked_stream;

static int
marked_next(void *ctx, const void **data, size_t *len)
{
    marked_stream *s = ctx;
    if (s->base.next >= s->base.n) {
        return 0;
    }
    uint64_t i = s->base.next++;
    const char *prefix = (i % s->every == s->every - 1) ? s->marker : "ok";
    *len = (size_t)snprintf(s->base.text, sizeof s->base.text, "%s-%llu", prefix,
                            (unsigned long long)i);
    *data = s->base.text;
    return 1;
}

static int
is_marked(const marked_stream *s, uint64_t i)
{
    return i % s->every == s->every - 1;
}

/* Streams n items through tp with return_exceptions and keeps every result. */
static mpb_result **
run_marked(const test_pool *tp, marked_stream *s)
{
    mpb_server *server = test_server_start(tp);
    s->base.keep = mpb_calloc(s->base.n, sizeof(mpb_result *));
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, marked_next, index_output, s, &opts), 0);
    assert_int_equal(s->base.outputs, s->base.n);
    assert_int_equal(s->base.out_of_order, 0);
    mpb_server_destroy(&server);
    return s->base.keep;
}

static void
free_results(mpb_result **results, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mpb_result_destroy(&results[i]);
    }
    free(results);
}

static void
assert_echo(const mpb_result *r, uint64_t i)
{
    char expect[64];
    int n = snprintf(expect, sizeof expect, "ok-%llu", (unsigned long long)i);
    size_t len;
    const char *value = mpb_result_value(r, &len);
    assert_non_null(value);
    assert_int_equal(len, (size_t)n);
    assert_memory_equal(value, expect, len);
}

static void
results_over_max_item_bytes_are_errors_not_crashes(void **state)
{
    (void)state;
    /* mlp answers 3 float32 (12 bytes) per item; the pool allows 8 */
    test_pool tp = {.kind = "thread",
                    .plugin = "mlp",
                    .batch_size = 4,
                    .max_item_bytes = 8,
                    .options = {"input_dim=1", "hidden_dim=4", "output_dim=3"}};
    mpb_server *server = test_server_start(&tp);
    const float one = 1.0f;
    const float two = 2.0f;
    const void *inputs[] = {&one, &two, "", &one};
    size_t lens[] = {4, 4, 0, 4};
    mpb_result *out[4];
    assert_int_equal(mpb_server_call_many(server, inputs, lens, 4, 10000, out), 0);
    for (int i = 0; i < 4; i++) {
        const mpb_item_error *e = mpb_result_error(out[i]);
        assert_non_null(e);
        assert_string_equal(e->type, "ValueError");
        mpb_result_destroy(&out[i]);
    }
    mpb_server_destroy(&server);
}

static void
check_item_errors(const char *kind, const char *option, const char *marker, const char *error_type)
{
    test_pool tp = {.kind = kind,
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 8,
                    .batch_wait_us = 500,
                    .options = {option}};
    marked_stream s = {.base = {.n = 3000}, .every = 7, .marker = marker};
    mpb_result **results = run_marked(&tp, &s);
    for (uint64_t i = 0; i < s.base.n; i++) {
        const mpb_item_error *e = mpb_result_error(results[i]);
        if (is_marked(&s, i)) {
            assert_non_null(e);
            assert_string_equal(e->type, error_type);
            assert_string_equal(e->servlet, "fail");
            assert_true(strncmp(e->worker, "fail-", 5) == 0);
            assert_true(e->pid > 0);
        } else {
            assert_null(e);
            assert_echo(results[i], i);
        }
    }
    free_results(results, s.base.n);
}

static void
item_errors_land_in_place(void **state)
{
    check_item_errors("process", "fail_prefix=bad", "bad", "ValueError");
    check_item_errors("thread", "fail_prefix=bad", "bad", "ValueError");
}

static void
items_left_unset_get_no_result(void **state)
{
    check_item_errors("process", "unset_prefix=skip", "skip", MPB_ERROR_NO_RESULT);
}

static void
preprocess_errors_skip_the_model(void **state)
{
    check_item_errors("process", "preprocess_prefix=pre", "pre", "PreprocessError");
    check_item_errors("thread", "preprocess_prefix=pre", "pre", "PreprocessError");
}

static void
whole_batch_failure_fails_exactly_its_batch(void **state)
{
    /* One worker, batches of 4 that fill at once: items 0-3 and 4-7. Item 5
     * fails its batch, so 4-7 carry BatchError and 0-3 are untouched. */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 4,
                    .batch_wait_us = 2000000,
                    .options = {"batch_prefix=boom"}};
    marked_stream s = {.base = {.n = 8}, .every = 6, .marker = "boom"};
    mpb_result **results = run_marked(&tp, &s);
    for (uint64_t i = 0; i < 8; i++) {
        const mpb_item_error *e = mpb_result_error(results[i]);
        if (i < 4) {
            assert_null(e);
            assert_echo(results[i], i);
        } else {
            assert_non_null(e);
            assert_string_equal(e->type, "BatchError");
            assert_non_null(strstr(e->message, "boom-5"));
        }
    }
    free_results(results, 8);
}

static void
bisection_fails_only_the_bad_items(void **state)
{
    (void)state;
    /* isolate: bisect: a batch of 64 that fails whole for one marked item
     * runs again in halves until only that item carries the BatchError;
     * the 63 others get their values. Both kinds of pool. */
    const char *kinds[] = {"process", "thread"};
    for (int k = 0; k < 2; k++) {
        test_pool tp = {.kind = kinds[k],
                        .plugin = "fail",
                        .workers = 1,
                        .batch_size = 64,
                        .batch_wait_us = 2000000,
                        .isolate = "bisect",
                        .options = {"batch_prefix=boom"}};
        marked_stream s = {.base = {.n = 640}, .every = 64, .marker = "boom"};
        mpb_result **results = run_marked(&tp, &s);
        for (uint64_t i = 0; i < 640; i++) {
            const mpb_item_error *e = mpb_result_error(results[i]);
            if (is_marked(&s, i)) {
                assert_non_null(e);
                assert_string_equal(e->type, "BatchError");
            } else {
                assert_null(e);
                assert_echo(results[i], i);
            }
        }
        free_results(results, 640);
    }
}

/* isolate: bisect for crashes: an item that aborts its worker makes the
 * coordinator run the dead worker's items again in halves, each alone on
 * an idle worker, until the crash is pinned on that item: it alone fails
 * WorkerCrashed, the other items of its batches get their values. Two
 * marked items in 640, batches of 16 (a worker holds up to 96 at once). */
static void
crashing_items_are_isolated_by_bisection(void **state)
{
    (void)state;
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 16,
                    .isolate = "bisect",
                    .options = {"crash_prefix=boom"}};
    marked_stream s = {.base = {.n = 640}, .every = 320, .marker = "boom"};
    mpb_server *server = test_server_start(&tp);
    s.base.keep = mpb_calloc(s.base.n, sizeof(mpb_result *));
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, marked_next, index_output, &s, &opts), 0);
    assert_int_equal(s.base.outputs, s.base.n);
    assert_int_equal(s.base.out_of_order, 0);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    print_message("2 crashing items in 640: %llu worker deaths\n",
                  (unsigned long long)stats.workers_lost);
    /* each bad item: its first crash, then about log2(96) more */
    assert_true(stats.workers_lost >= 2 && stats.workers_lost <= 2 * 9);
    mpb_server_destroy(&server);
    for (uint64_t i = 0; i < s.base.n; i++) {
        const mpb_item_error *e = mpb_result_error(s.base.keep[i]);
        if (is_marked(&s, i)) {
            assert_non_null(e);
            assert_string_equal(e->type, MPB_ERROR_WORKER_CRASHED);
            assert_non_null(strstr(e->message, "run alone"));
        } else {
            if (e != NULL) {
                fail_msg("item %llu: %s: %s", (unsigned long long)i, e->type, e->message);
            }
            assert_echo(s.base.keep[i], i);
        }
    }
    free_results(s.base.keep, s.base.n);
}

/* A plugin that crashes on every item: isolation cannot pin the crash on
 * a few items, gives up after a bounded number of crashes, fails what it
 * holds WorkerCrashed and lets the crash-loop backoff take over; every
 * item is still answered. */
static void
isolation_gives_up_on_a_plugin_that_always_crashes(void **state)
{
    (void)state;
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 8,
                    .isolate = "bisect",
                    .unavailable_timeout_ms = -1,
                    .options = {"crash_prefix=boom"}};
    marked_stream s = {.base = {.n = 200}, .every = 1, .marker = "boom"};
    mpb_server *server = test_server_start(&tp);
    s.base.keep = mpb_calloc(s.base.n, sizeof(mpb_result *));
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, marked_next, index_output, &s, &opts), 0);
    assert_int_equal(s.base.outputs, s.base.n);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    print_message("200 items that all crash: %llu worker deaths\n",
                  (unsigned long long)stats.workers_lost);
    assert_true(stats.workers_lost < 60); /* bounded: not two per item */
    mpb_server_destroy(&server);
    for (uint64_t i = 0; i < s.base.n; i++) {
        const mpb_item_error *e = mpb_result_error(s.base.keep[i]);
        assert_non_null(e);
        assert_string_equal(e->type, MPB_ERROR_WORKER_CRASHED);
    }
    free_results(s.base.keep, s.base.n);
}

static int
stop_counter_output(void *ctx, uint64_t index, const mpb_result *result)
{
    uint64_t *last = ctx;
    *last = index;
    return 0;
}

typedef struct counting_input {
    marked_stream s;
    uint64_t last_output;
} counting_input;

static int
counting_output(void *ctx, uint64_t index, const mpb_result *result)
{
    counting_input *c = ctx;
    c->s.base.outputs++;
    c->last_output = index;
    if (mpb_result_is_error(result)) {
        c->s.base.errors++;
    }
    return 0;
}

static void
stream_without_return_exceptions_stops_at_first_error(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 8,
                    .options = {"fail_prefix=bad"}};
    mpb_server *server = test_server_start(&tp);
    counting_input c = {.s = {.base = {.n = 1000}, .every = 100, .marker = "bad"}};
    mpb_stream_options opts = {.return_exceptions = 0};
    int rc = mpb_server_stream(server, marked_next, counting_output, &c, &opts);
    assert_int_equal(rc, MPB_EITEM);
    /* Items 0..98 come out, then the error of item 99, then nothing. */
    assert_int_equal(c.s.base.outputs, 100);
    assert_int_equal(c.last_output, 99);
    assert_int_equal(c.s.base.errors, 1);
    /* The server is fine afterwards. */
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "ok", 2, 5000, &r), 0);
    mpb_result_destroy(&r);
    assert_int_equal(mpb_server_call(server, "bad", 3, 5000, &r), MPB_EITEM);
    assert_string_equal(mpb_result_error(r)->type, "ValueError");
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
    (void)stop_counter_output;
}

/* Starts a one-worker servlet of the kind that must fail with expect in
 * the start error; the server refuses calls afterwards. */
static void
assert_start_fails(const char *kind, const char *plugin, const char *cpus, const char *option,
                   const char *expect)
{
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.plugin = plugin;
    cfg.cpus = cpus;
    const char *options[] = {option, NULL};
    cfg.options = options;
    mpb_servlet *servlet =
        strcmp(kind, "process") == 0 ? mpb_process_servlet_new(&cfg) : mpb_thread_servlet_new(&cfg);
    mpb_server *server = mpb_server_new(&servlet, NULL);
    char err[512] = "";
    assert_int_not_equal(mpb_server_start(server, err, sizeof err), 0);
    print_message("%s: %s\n", kind, err);
    if (strstr(err, expect) == NULL) {
        fail_msg("'%s' does not contain '%s'", err, expect);
    }
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "x", 1, 100, &r), MPB_ECLOSED);
    assert_null(r);
    mpb_server_destroy(&server);
}

static void
start_failures_explain_themselves(void **state)
{
    struct {
        const char *plugin;
        const char *cpus;
        const char *option;
        const char *expect;
    } cases[] = {
        {"fail", NULL, "init_fail=1", "init_fail=1 asked init to fail"},
        {"no-such-plugin", NULL, NULL, "not found"},
        {"passthrough", "4096", NULL, "cpus '4096'"},
        {"passthrough", "0;0;0", NULL, "3 CPU lists for 1 workers"},
    };
    const char *kinds[] = {"process", "thread"};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            assert_start_fails(kinds[k], cases[i].plugin, cases[i].cpus, cases[i].option,
                               cases[i].expect);
        }
    }
}

/* Options are checked against the plugin's declarations before init, in
 * worker processes and on worker threads alike. */
static void
refused_options_fail_the_start(void **state)
{
    struct {
        const char *plugin;
        const char *option;
        const char *expect;
    } cases[] = {
        {"sleep", "per_batch_us=5",
         "unknown option per_batch_us of plugin sleep (known: batch_cost_us, item_cost_us, "
         "jitter_us, busy, seed)"},
        {"sleep", "batch_cost=5",
         "unknown option batch_cost of plugin sleep (did you mean "
         "batch_cost_us?)"},
        {"sleep", "item_cost_us=abc",
         "option item_cost_us of plugin sleep must be an integer (got 'abc')"},
        {"sleep", "busy=maybe",
         "option busy of plugin sleep must be true, false, yes, no, 1 or 0 (got 'maybe')"},
        {"passthrough", "alpha=1", "unknown option alpha: plugin passthrough takes no options"},
    };
    const char *kinds[] = {"process", "thread"};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            assert_start_fails(kinds[k], cases[i].plugin, NULL, cases[i].option, cases[i].expect);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(item_errors_land_in_place),
        cmocka_unit_test(results_over_max_item_bytes_are_errors_not_crashes),
        cmocka_unit_test(items_left_unset_get_no_result),
        cmocka_unit_test(preprocess_errors_skip_the_model),
        cmocka_unit_test(whole_batch_failure_fails_exactly_its_batch),
        cmocka_unit_test(bisection_fails_only_the_bad_items),
        cmocka_unit_test(crashing_items_are_isolated_by_bisection),
        cmocka_unit_test(isolation_gives_up_on_a_plugin_that_always_crashes),
        cmocka_unit_test(stream_without_return_exceptions_stops_at_first_error),
        cmocka_unit_test(start_failures_explain_themselves),
        cmocka_unit_test(refused_options_fail_the_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
