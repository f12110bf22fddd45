/*
 * Workers that crash, hang or crash-loop: a crashed worker's items fail in
 * place (or go to another worker with retry) and it is replaced; a hung
 * batch times out and its worker is killed; a crash loop backs off and
 * fails items ServletUnavailable instead of spinning or giving up; a
 * poison item costs its retries and then fails.
 */
#include <signal.h>

#include "reliability_helpers.h"

static void
crashed_worker_fails_its_items_and_is_replaced(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"crash_prefix=die"}};
    mpb_server *server = test_server_start(&tp);
    mpb_worker_status before[2];
    assert_int_equal(mpb_server_workers(server, before, 2), 1);

    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "die now", 7, 10000, &r), MPB_EITEM);
    const mpb_item_error *e = mpb_result_error(r);
    assert_string_equal(e->type, MPB_ERROR_WORKER_CRASHED);
    assert_int_equal(e->pid, before[0].pid);
    assert_non_null(strstr(e->message, "signal"));
    mpb_result_destroy(&r);

    /* A replacement serves the next items. */
    index_stream s = {.n = 2000};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, NULL), 0);
    assert_int_equal(s.outputs, s.n);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.wrong_value, 0);
    mpb_worker_status after[2];
    assert_int_equal(mpb_server_workers(server, after, 2), 1);
    assert_int_not_equal(after[0].pid, before[0].pid);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.workers_lost, 1);
    mpb_server_destroy(&server);
}

static void
crash_in_a_stream_loses_nothing(void **state)
{
    /* Item 500 kills its worker; items in flight with it fail in place,
     * every other item is answered, and the order holds. */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 8,
                    .batch_wait_us = 200,
                    .options = {"exit_prefix=item-500"}};
    mpb_server *server = test_server_start(&tp);
    index_stream s = {.n = 5000};
    s.keep = mpb_calloc(s.n, sizeof(mpb_result *));
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, &opts), 0);
    assert_int_equal(s.outputs, s.n);
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(s.wrong_value, 0);
    assert_true(mpb_result_is_error(s.keep[500]));
    assert_string_equal(mpb_result_error(s.keep[500])->type, MPB_ERROR_WORKER_CRASHED);
    assert_true(s.errors >= 1);
    for (uint64_t i = 0; i < s.n; i++) {
        if (mpb_result_is_error(s.keep[i])) {
            assert_string_equal(mpb_result_error(s.keep[i])->type, MPB_ERROR_WORKER_CRASHED);
        }
        mpb_result_destroy(&s.keep[i]);
    }
    free(s.keep);
    mpb_server_destroy(&server);
}

typedef struct outcome_count {
    unsigned left; /* "die" items still to send */
    unsigned crashed;
    unsigned unavailable;
    unsigned other;
    char unavailable_message[320];
} outcome_count;

static int
count_outcome(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)index;
    outcome_count *c = ctx;
    const mpb_item_error *e = mpb_result_error(result);
    if (e != NULL && strcmp(e->type, MPB_ERROR_WORKER_CRASHED) == 0) {
        c->crashed++;
    } else if (e != NULL && strcmp(e->type, MPB_ERROR_UNAVAILABLE_SERVLET) == 0) {
        c->unavailable++;
        snprintf(c->unavailable_message, sizeof c->unavailable_message, "%s", e->message);
    } else {
        c->other++;
    }
    return 0;
}

static int
die_next(void *ctx, const void **data, size_t *len)
{
    outcome_count *c = ctx;
    if (c->left == 0) {
        return 0;
    }
    c->left--;
    *data = "die";
    *len = 3;
    return 1;
}

/* One worker that dies on every item ("die..."): a crash loop. */
static mpb_server *
crash_loop_server(int unavailable_timeout_ms)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"crash_prefix=die"},
                    .unavailable_timeout_ms = unavailable_timeout_ms};
    return test_server_start(&tp);
}

static void
a_crash_loop_backs_off_and_fails_items_unavailable(void **state)
{
    (void)state;
    /* every worker dies on its first item: a crash loop. Relaunches back
     * off instead of spinning (or stopping for good); while none lives,
     * waiting items fail ServletUnavailable after 300 ms, naming the last
     * death; once the items are gone a worker comes back and serves */
    mpb_server *server = crash_loop_server(300);
    outcome_count c = {.left = 3000};
    mpb_stream_options opts = {.return_exceptions = 1};
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_stream(server, die_next, count_outcome, &c, &opts), 0);
    int64_t seconds = (mpb_now_ns() - start) / 1000000000;
    print_message("%u crashed, %u unavailable in %lld s\n", c.crashed, c.unavailable,
                  (long long)seconds);
    assert_int_equal(c.crashed + c.unavailable, 3000); /* each answered, nothing else */
    assert_int_equal(c.other, 0);
    assert_true(c.unavailable > 0);
    assert_non_null(strstr(c.unavailable_message, "no live worker"));
    assert_non_null(strstr(c.unavailable_message, "signal 6"));
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    /* backoff: 3000 items that each kill a worker did not cost thousands of launches */
    assert_true(stats.workers_lost < 20);
    assert_non_null(strstr(stats.last_exit, "killed by signal 6"));
    /* and it never gives up: a worker comes back and serves */
    assert_true(serves_again(server));
    mpb_server_destroy(&server);
}

typedef struct kept {
    _Atomic(mpb_result *) result;
} kept;

static void
keep_result(void *ctx, mpb_result *result)
{
    atomic_store(&((kept *)ctx)->result, result);
}

static void
stopping_does_not_wait_out_a_backoff(void **state)
{
    (void)state;
    /* a worker that dies on every item: after six quick deaths its next
     * launch waits 3.2 s; stopping the server then must not wait for it */
    mpb_server *server = crash_loop_server(-1);
    mpb_server_stats stats = {0};
    for (int tries = 0; tries < 400 && stats.workers_lost < 6; tries++) {
        mpb_result *r = NULL;
        mpb_server_call(server, "die", 3, 10000, &r);
        mpb_result_destroy(&r);
        mpb_server_stats_get(server, &stats);
    }
    assert_true(stats.workers_lost >= 6);
    int64_t start = mpb_now_ns();
    mpb_server_destroy(&server);
    int64_t ms = (mpb_now_ns() - start) / 1000000;
    print_message("stopped in %lld ms with a relaunch pending\n", (long long)ms);
    assert_true(ms < 1500);
}

static void
a_hung_batch_times_out_and_its_worker_is_replaced(void **state)
{
    (void)state;
    const char *kinds[] = {"process", "thread"};
    for (int k = 0; k < 2; k++) {
        /* "hang" blocks its worker's call() for a minute (processes) or
         * 2.5 s (threads); batch_timeout_ms 300: its item fails Timeout
         * then, a process worker is killed and replaced, a thread keeps its
         * credit until it returns; the other worker serves meanwhile */
        int thread = k == 1;
        test_pool tp = {.kind = kinds[k],
                        .plugin = "fail",
                        .workers = 2,
                        .batch_size = 1,
                        .options = {"hang_prefix=hang", thread ? "hang_ms=2500" : "hang_ms=60000"},
                        .batch_timeout_ms = 300};
        mpb_server *server = test_server_start(&tp);
        kept hung = {NULL};
        int64_t start = mpb_now_ns();
        assert_int_equal(mpb_server_submit(server, "hang", 4, -1, keep_result, &hung), 0);
        usleep(50000);
        for (int i = 0; i < 20; i++) { /* the other worker has the most credit: these go there */
            mpb_result *r = NULL;
            assert_int_equal(mpb_server_call(server, "fine", 4, 5000, &r), 0);
            mpb_result_destroy(&r);
        }
        for (int tries = 0; tries < 300 && atomic_load(&hung.result) == NULL; tries++) {
            usleep(10000);
        }
        int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
        print_message("%s: the hung item answered after %lld ms\n", kinds[k],
                      (long long)elapsed_ms);
        mpb_result *r = atomic_load(&hung.result);
        assert_non_null(r);
        assert_true(elapsed_ms >= 300 && elapsed_ms < 2000); /* at the timeout, not the hang */
        const mpb_item_error *e = mpb_result_error(r);
        assert_non_null(e);
        assert_string_equal(e->type, MPB_ERROR_TIMEOUT);
        assert_non_null(strstr(e->message, "batch_timeout_ms"));
        mpb_result_destroy(&r);
        mpb_server_stats stats;
        if (!thread) {
            stats = wait_for_workers_lost(server, 1);
            assert_int_equal(stats.workers_lost, 1);
            assert_non_null(strstr(stats.last_exit, "signal 9"));
        }
        /* both workers serve again (a replacement, or the thread returned) */
        usleep(thread ? 1500000 : 300000);
        mpb_worker_status workers[4];
        assert_int_equal(mpb_server_workers(server, workers, 4), 2);
        assert_int_equal(mpb_server_call(server, "fine", 4, 10000, &r), 0);
        mpb_result_destroy(&r);
        mpb_server_stats_get(server, &stats);
        assert_int_equal(stats.protocol_errors, 0);
        mpb_server_destroy(&server);
    }
}

typedef struct killing_stream {
    index_stream s; /* first: index_next and index_output take it */
    pid_t victim;
    uint64_t kill_at;
    int killed;
} killing_stream;

static int
kill_midway(void *ctx, uint64_t index, const mpb_result *result)
{
    killing_stream *k = ctx;
    if (!k->killed && index == k->kill_at) {
        kill(k->victim, SIGKILL);
        k->killed = 1;
    }
    return index_output(&k->s, index, result);
}

static void
with_retry_a_killed_worker_costs_nothing(void **state)
{
    (void)state;
    /* retry: 1: a SIGKILL of one of two workers under a stream yields 0
     * errors, 0 lost, 0 duplicated, every value right and in order */
    test_pool tp = {
        .kind = "process", .plugin = "passthrough", .workers = 2, .batch_size = 64, .retry = 1};
    mpb_server *server = test_server_start(&tp);
    mpb_worker_status workers[2];
    assert_int_equal(mpb_server_workers(server, workers, 2), 2);
    killing_stream k = {
        .s = {.n = 300000, .binary = 1}, .victim = (pid_t)workers[1].pid, .kill_at = 100000};
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, index_next, kill_midway, &k, &opts), 0);
    assert_true(k.killed);
    assert_int_equal(k.s.outputs, k.s.n);
    assert_int_equal(k.s.out_of_order, 0);
    assert_int_equal(k.s.errors, 0);
    assert_int_equal(k.s.wrong_value, 0);
    mpb_server_stats stats = wait_for_workers_lost(server, 1);
    assert_int_equal(stats.workers_lost, 1);
    assert_int_equal(stats.completed, k.s.n); /* nothing answered twice */
    assert_int_equal(stats.protocol_errors, 0);
    mpb_server_destroy(&server);
}

static void
a_poison_item_is_retried_then_fails(void **state)
{
    (void)state;
    /* an item that kills every worker it reaches: retried once, then it
     * fails WorkerCrashed; the items around it are served */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 1,
                    .retry = 1,
                    .options = {"crash_prefix=poison"}};
    mpb_server *server = test_server_start(&tp);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "poison", 6, 20000, &r), MPB_EITEM);
    assert_string_equal(mpb_result_error(r)->type, MPB_ERROR_WORKER_CRASHED);
    mpb_result_destroy(&r);
    mpb_server_stats stats = wait_for_workers_lost(server, 2);
    assert_int_equal(stats.workers_lost, 2); /* the first try and the retry */
    assert_true(serves_again(server));
    mpb_server_destroy(&server);
}

/* A plugin may declare a default batch_timeout_ms (ABI 3): it applies when
 * the config says nothing; the config's -1 turns it off. */
static void
a_plugins_declared_batch_timeout_applies_unless_turned_off(void **state)
{
    (void)state;
    const int configured[] = {0, -1};
    for (int k = 0; k < 2; k++) {
        test_pool tp = {.kind = "thread",
                        .plugin = test_plugin_path("stall"),
                        .batch_timeout_ms = configured[k]};
        mpb_server *server = test_server_start(&tp);
        mpb_result *r = NULL;
        int rc = mpb_server_call(server, "stall", 5, 10000, &r);
        if (configured[k] == 0) { /* the plugin's 200 ms */
            assert_int_equal(rc, MPB_ETIMEDOUT);
            assert_string_equal(mpb_result_error(r)->type, MPB_ERROR_TIMEOUT);
            assert_non_null(strstr(mpb_result_error(r)->message, "batch_timeout_ms (200 ms)"));
        } else { /* off: the 1.5 s call finishes */
            assert_int_equal(rc, 0);
        }
        mpb_result_destroy(&r);
        mpb_server_destroy(&server);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crashed_worker_fails_its_items_and_is_replaced),
        cmocka_unit_test(crash_in_a_stream_loses_nothing),
        cmocka_unit_test(a_crash_loop_backs_off_and_fails_items_unavailable),
        cmocka_unit_test(stopping_does_not_wait_out_a_backoff),
        cmocka_unit_test(a_hung_batch_times_out_and_its_worker_is_replaced),
        cmocka_unit_test(with_retry_a_killed_worker_costs_nothing),
        cmocka_unit_test(a_poison_item_is_retried_then_fails),
        cmocka_unit_test(a_plugins_declared_batch_timeout_applies_unless_turned_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
