/*
 * Server telemetry lands in a tracking run: one step per batch, sizes that
 * add up to the items served, in a real file store.
 */
#include <unistd.h>

#include "support.h"

#include "mpbatch/server_tracker.h"
#include "mpbatch/store.h"

static void
every_batch_becomes_metrics_of_the_run(void **state)
{
    char dir[] = "/tmp/mpb-telemetry-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *uri = mpb_asprintf("file:%s/mlruns", dir);
    mpb_store *store = NULL;
    char err[512] = "";
    assert_int_equal(mpb_store_open(uri, &store, err, sizeof err), 0);
    char *run_id = NULL;
    assert_int_equal(
        mpb_store_create_run(store, "0", "tester", -1, "served", NULL, 0, &run_id, err, sizeof err),
        0);
    mpb_server_tracker *tracker = mpb_server_tracker_new(store, run_id);
    assert_int_equal(mpb_server_tracker_start(tracker, err, sizeof err), 0);

    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .workers = 2,
                    .batch_size = 16,
                    .batch_wait_us = 500,
                    .on_batch = mpb_server_tracker_on_batch,
                    .on_batch_ctx = tracker};
    mpb_server *server = test_server_start(&tp);
    index_stream s = {.n = 5000};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, NULL), 0);
    mpb_server_stop(server);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    mpb_server_destroy(&server);
    assert_int_equal(mpb_server_tracker_flush(tracker, 10000), 0);
    assert_int_equal(mpb_server_tracker_logged(tracker), stats.batches);
    assert_int_equal(mpb_server_tracker_dropped(tracker), 0);
    mpb_server_tracker_destroy(&tracker);

    mpb_metric_history *sizes = NULL;
    assert_int_equal(mpb_store_get_metric_history(store, run_id, "passthrough/batch_size", &sizes,
                                                  err, sizeof err),
                     0);
    assert_int_equal(sizes->n_metrics, stats.batches);
    double items = 0;
    for (size_t i = 0; i < sizes->n_metrics; i++) {
        assert_int_equal(sizes->metrics[i].step, (int64_t)i);
        assert_true(sizes->metrics[i].value >= 1 && sizes->metrics[i].value <= 16);
        items += sizes->metrics[i].value;
    }
    assert_true(items == 5000.0);
    mpb_metric_history_free(&sizes);
    mpb_metric_history *compute = NULL;
    assert_int_equal(mpb_store_get_metric_history(store, run_id, "passthrough/compute_us", &compute,
                                                  err, sizeof err),
                     0);
    assert_int_equal(compute->n_metrics, stats.batches);
    mpb_metric_history_free(&compute);

    mpb_store_destroy(&store);
    free(run_id);
    char *rm = mpb_asprintf("rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
    free(rm);
    free(uri);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_batch_becomes_metrics_of_the_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
