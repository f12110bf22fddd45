/*
 * Batching as users see it: size limits, wait limits, order, and the CPU
 * sets workers run on. Real mpb-worker processes and real sockets.
 */
#include <sched.h>
#include <unistd.h>

#include "support.h"

typedef struct batch_log {
    uint64_t batches;
    uint64_t items;
    uint32_t max_size;
    uint64_t closed[3];
    int64_t max_first_wait_us;
    mpb_batch_close first_closed[8]; /* the first batches, in order */
    uint32_t first_size[8];
} batch_log;

static void
record_batch(void *ctx, const mpb_batch_telemetry *t)
{
    batch_log *log = ctx;
    if (log->batches < 8) {
        log->first_closed[log->batches] = t->closed_by;
        log->first_size[log->batches] = t->size;
    }
    log->batches++;
    log->items += t->size;
    if (t->size > log->max_size) {
        log->max_size = t->size;
    }
    log->closed[t->closed_by]++;
    if (t->first_wait_us > log->max_first_wait_us) {
        log->max_first_wait_us = t->first_wait_us;
    }
}

static void
batch_never_exceeds_batch_size(void **state)
{
    batch_log log = {0};
    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .workers = 2,
                    .batch_size = 8,
                    .batch_wait_us = 1000,
                    .on_batch = record_batch,
                    .on_batch_ctx = &log};
    mpb_server *server = test_server_start(&tp);
    index_stream s = {.n = 20000};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, NULL), 0);
    mpb_server_stop(server);
    assert_int_equal(s.outputs, s.n);
    assert_int_equal(log.items, s.n);
    assert_true(log.max_size <= 8);
    assert_int_equal(log.max_size, 8);
    mpb_server_destroy(&server);
}

static void
fast_producer_fills_batches(void **state)
{
    /* Each call costs 2 ms whatever its size: items pile up while the worker
     * computes, so batches should come out (nearly) full. */
    batch_log log = {0};
    test_pool tp = {.kind = "process",
                    .plugin = "sleep",
                    .workers = 1,
                    .batch_size = 16,
                    .batch_wait_us = 5000,
                    .on_batch = record_batch,
                    .on_batch_ctx = &log,
                    .options = {"batch_cost_us=2000", "item_cost_us=0"}};
    mpb_server *server = test_server_start(&tp);
    index_stream s = {.n = 1600};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, NULL), 0);
    mpb_server_stop(server);
    assert_int_equal(s.wrong_value, 0);
    double mean = (double)log.items / (double)log.batches;
    print_message("mean batch size %.2f over %llu batches\n", mean,
                  (unsigned long long)log.batches);
    assert_true(mean >= 0.9 * 16);
    assert_true(log.closed[MPB_BATCH_CLOSED_FULL] >= log.batches - 2);
    mpb_server_destroy(&server);
}

static void
wait_zero_never_waits(void **state)
{
    batch_log log = {0};
    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .workers = 1,
                    .batch_size = 64,
                    .batch_wait_us = TP_ZERO,
                    .on_batch = record_batch,
                    .on_batch_ctx = &log};
    mpb_server *server = test_server_start(&tp);
    for (int i = 0; i < 200; i++) {
        mpb_result *r = NULL;
        assert_int_equal(mpb_server_call(server, "x", 1, 5000, &r), 0);
        mpb_result_destroy(&r);
    }
    index_stream s = {.n = 5000};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, NULL), 0);
    mpb_server_stop(server);
    assert_int_equal(log.closed[MPB_BATCH_CLOSED_TIMER], 0);
    assert_true(log.closed[MPB_BATCH_CLOSED_DRAINED] >= 200);
    assert_int_equal(log.items, 200 + s.n);
    mpb_server_destroy(&server);
}

static void
lone_item_answered_after_the_wait(void **state)
{
    const int64_t wait_us = 200000;
    batch_log log = {0};
    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .workers = 1,
                    .batch_size = 64,
                    .batch_wait_us = wait_us,
                    .on_batch = record_batch,
                    .on_batch_ctx = &log};
    mpb_server *server = test_server_start(&tp);
    mpb_result *r = NULL;
    int64_t start = mpb_now_us();
    assert_int_equal(mpb_server_call(server, "lonely", 6, 10000, &r), 0);
    int64_t elapsed = mpb_now_us() - start;
    mpb_result_destroy(&r);
    mpb_server_stop(server);
    print_message("lone item took %lld us with batch_wait_us %lld\n", (long long)elapsed,
                  (long long)wait_us);
    assert_true(elapsed >= wait_us);
    assert_true(elapsed < wait_us + 2000000); /* slack for a loaded machine */
    assert_int_equal(log.batches, 1);
    assert_int_equal(log.closed[MPB_BATCH_CLOSED_TIMER], 1);
    assert_true(log.max_first_wait_us >= wait_us);
    mpb_server_destroy(&server);
}

/* batch_wait_us: auto. Calls one at a time are computed at once (their
 * batches close drained, never on the 10 ms timer); a stream that keeps
 * the worker busy still fills its batches. */
static void
auto_wait_serves_lone_items_at_once_and_fills_under_load(void **state)
{
    batch_log log = {0};
    test_pool tp = {.kind = "process",
                    .plugin = "sleep",
                    .workers = 1,
                    .batch_size = 16,
                    .batch_wait_us = TP_AUTO,
                    .options = {"batch_cost_us=2000", "item_cost_us=0"},
                    .on_batch = record_batch,
                    .on_batch_ctx = &log};
    mpb_server *server = test_server_start(&tp);
    mpb_worker_status w;
    assert_int_equal(mpb_server_workers(server, &w, 1), 1);
    assert_int_equal(w.batch_wait_us, MPB_BATCH_WAIT_AUTO);
    for (int i = 0; i < 5; i++) {
        mpb_result *r = NULL;
        assert_int_equal(mpb_server_call(server, "one", 3, 10000, &r), 0);
        mpb_result_destroy(&r);
    }
    index_stream s = {.n = 640};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, NULL), 0);
    mpb_server_stop(server); /* telemetry is read after this */
    /* the five lone calls: each its own batch, closed at once (a fixed wait
     * would have closed them on its timer) */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(log.first_size[i], 1);
        assert_int_equal(log.first_closed[i], MPB_BATCH_CLOSED_DRAINED);
    }
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(log.items, 5 + 640);
    uint64_t stream_batches = log.batches - 5;
    print_message("640 items in %llu batches\n", (unsigned long long)stream_batches);
    assert_true(stream_batches <= 640 / 8); /* batches of 8 or more on average */
    mpb_server_destroy(&server);
}

static void
random_latency_keeps_order(void **state)
{
    /* Two workers whose batches take 0-300 us at random finish out of order;
     * the stream must still give every item once, in input order. */
    const char *kinds[] = {"process", "thread"};
    for (int k = 0; k < 2; k++) {
        test_pool tp = {.kind = kinds[k],
                        .plugin = "sleep",
                        .workers = 2,
                        .batch_size = 32,
                        .batch_wait_us = 100,
                        .options = {"batch_cost_us=0", "item_cost_us=0", "jitter_us=300"}};
        mpb_server *server = test_server_start(&tp);
        index_stream s = {.n = 100000, .binary = 1};
        mpb_stream_options opts = {.capacity = 512};
        assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, &opts), 0);
        assert_int_equal(s.outputs, s.n);
        assert_int_equal(s.out_of_order, 0);
        assert_int_equal(s.wrong_value, 0);
        assert_int_equal(s.errors, 0);
        mpb_server_stats stats;
        mpb_server_stats_get(server, &stats);
        assert_int_equal(stats.completed, s.n);
        assert_int_equal(stats.in_flight, 0);
        mpb_server_destroy(&server);
    }
}

static void
workers_run_on_their_configured_cpus(void **state)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const char *cpus = ncpu >= 2 ? "1;0" : "0;0";
    const char *expect[2] = {ncpu >= 2 ? "1" : "0", "0"};
    test_pool tp = {.kind = "process", .plugin = "passthrough", .workers = 2, .cpus = cpus};
    mpb_server *server = test_server_start(&tp);
    mpb_worker_status workers[4];
    assert_int_equal(mpb_server_workers(server, workers, 4), 2);
    for (int i = 0; i < 2; i++) {
        int index = workers[i].name[strlen(workers[i].name) - 1] - '0';
        assert_string_equal(workers[i].cpus, expect[index]);
        /* The kernel agrees with what the worker reported. */
        cpu_set_t set;
        assert_int_equal(sched_getaffinity((pid_t)workers[i].pid, sizeof set, &set), 0);
        assert_int_equal(CPU_COUNT(&set), 1);
        assert_true(CPU_ISSET(expect[index][0] - '0', &set));
    }
    mpb_server_destroy(&server);
}

static void
auto_cpus_give_each_worker_one_core(void **state)
{
    test_pool tp = {.kind = "process", .plugin = "passthrough", .workers = 2, .cpus = "auto"};
    mpb_server *server = test_server_start(&tp);
    mpb_worker_status workers[4];
    assert_int_equal(mpb_server_workers(server, workers, 4), 2);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu >= 2) {
        assert_string_not_equal(workers[0].cpus, workers[1].cpus);
    }
    for (int i = 0; i < 2; i++) {
        assert_true(strlen(workers[i].cpus) > 0);
        assert_null(strchr(workers[i].cpus, ','));
    }
    mpb_server_destroy(&server);
}

static void
batch_size_zero_calls_per_item(void **state)
{
    batch_log log = {0};
    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .workers = 2,
                    .batch_size = TP_ZERO,
                    .batch_wait_us = 50000,
                    .on_batch = record_batch,
                    .on_batch_ctx = &log};
    mpb_server *server = test_server_start(&tp);
    index_stream s = {.n = 500};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, NULL), 0);
    mpb_server_stop(server);
    assert_int_equal(s.wrong_value, 0);
    assert_int_equal(log.batches, 500);
    assert_int_equal(log.max_size, 1);
    assert_int_equal(log.closed[MPB_BATCH_CLOSED_FULL], 500);
    mpb_server_destroy(&server);
}

static void
plugin_defaults_apply_when_config_is_silent(void **state)
{
    /* passthrough declares batch_size 64 and no wait: the framework's
     * default wait (10 ms, as mpservice) applies because 64 > 1. */
    test_pool tp = {.kind = "thread", .plugin = "passthrough", .workers = 1};
    mpb_server *server = test_server_start(&tp);
    mpb_worker_status w;
    assert_int_equal(mpb_server_workers(server, &w, 1), 1);
    assert_int_equal(w.batch_size, 64);
    assert_int_equal(w.batch_wait_us, 10000);
    assert_int_equal(w.capacity, 384); /* 6 x batch_size */
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_never_exceeds_batch_size),
        cmocka_unit_test(fast_producer_fills_batches),
        cmocka_unit_test(wait_zero_never_waits),
        cmocka_unit_test(lone_item_answered_after_the_wait),
        cmocka_unit_test(auto_wait_serves_lone_items_at_once_and_fills_under_load),
        cmocka_unit_test(random_latency_keeps_order),
        cmocka_unit_test(workers_run_on_their_configured_cpus),
        cmocka_unit_test(auto_cpus_give_each_worker_one_core),
        cmocka_unit_test(batch_size_zero_calls_per_item),
        cmocka_unit_test(plugin_defaults_apply_when_config_is_silent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
