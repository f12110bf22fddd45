/*
 * Server telemetry lands in a tracking run in a real file store: one step
 * per batch, sizes that add up to the items served; interval metrics whose
 * steps add up to the run; and the sampled per-item table, in the JSON
 * that mlflow.load_table reads, listed in mlflow.loggedArtifacts.
 */
#include <unistd.h>

#include <cjson/cJSON.h>

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
        assert_int_equal(sizes->metrics[i].step, (int64_t)i + 1); /* batches count from 1 */
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

typedef struct tracked {
    char dir[64];
    char *uri;
    mpb_store *store;
    char *run_id;
    mpb_server_tracker *tracker;
} tracked;

static void
tracked_open(tracked *t, const mpb_server_tracker_options *options)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/mpb-telemetry-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    t->uri = mpb_asprintf("file:%s/mlruns", t->dir);
    char err[512] = "";
    assert_int_equal(mpb_store_open(t->uri, &t->store, err, sizeof err), 0);
    assert_int_equal(mpb_store_create_run(t->store, "0", "tester", -1, "items", NULL, 0, &t->run_id,
                                          err, sizeof err),
                     0);
    t->tracker = mpb_server_tracker_new_with(t->store, t->run_id, options);
    assert_int_equal(mpb_server_tracker_start(t->tracker, err, sizeof err), 0);
}

static void
tracked_close(tracked *t)
{
    mpb_store_destroy(&t->store);
    free(t->run_id);
    char *rm = mpb_asprintf("rm -rf %s", t->dir);
    assert_int_equal(system(rm), 0);
    free(rm);
    free(t->uri);
}

/* A server over a fail pool (items starting "bad" fail) reporting to t. */
static mpb_server *
tracked_server(tracked *t, int interval_ms)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 8,
                    .batch_wait_us = 1000,
                    .options = {"fail_prefix=bad"}};
    mpb_servlet *root = test_pool_servlet(&tp);
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.on_batch = mpb_server_tracker_on_batch;
    opts.on_batch_ctx = t->tracker;
    opts.on_item = mpb_server_tracker_on_item;
    opts.on_item_ctx = t->tracker;
    opts.on_interval = mpb_server_tracker_on_interval;
    opts.on_interval_ctx = t->tracker;
    opts.interval_ms = interval_ms;
    return test_server_over(&root, &opts);
}

typedef struct paced {
    uint64_t next;
    uint64_t n;
    int pause_us;
    char text[32];
} paced;

static int
paced_next(void *ctx, const void **data, size_t *len)
{
    paced *p = ctx;
    if (p->next == p->n) {
        return 0;
    }
    if (p->pause_us > 0 && p->next % 100 == 0) {
        usleep((useconds_t)p->pause_us);
    }
    snprintf(p->text, sizeof p->text, "%s%llu", p->next % 10 == 0 ? "bad" : "ok",
             (unsigned long long)p->next);
    *data = p->text;
    *len = strlen(p->text);
    p->next++;
    return 1;
}

static int
ignore_output(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)ctx;
    (void)index;
    (void)result;
    return 0;
}

/* Streams p's items through a server reporting to t (intervals every
 * interval_ms), stops it, and writes the tracker's table. */
static void
run_tracked(tracked *t, int interval_ms, paced p)
{
    mpb_server *server = tracked_server(t, interval_ms);
    mpb_stream_options so = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, paced_next, ignore_output, &p, &so), 0);
    mpb_server_stop(server);
    mpb_server_destroy(&server);
    char err[512] = "";
    assert_int_equal(mpb_server_tracker_finish(t->tracker, err, sizeof err), 0);
    mpb_server_tracker_destroy(&t->tracker);
}

static double
metric_sum(tracked *t, const char *key, size_t *n_steps)
{
    mpb_metric_history *h = NULL;
    char err[256];
    assert_int_equal(mpb_store_get_metric_history(t->store, t->run_id, key, &h, err, sizeof err),
                     0);
    double sum = 0;
    for (size_t i = 0; i < h->n_metrics; i++) {
        /* at most one step per interval (some only when non-zero) */
        assert_true(i == 0 || h->metrics[i].step > h->metrics[i - 1].step);
        sum += h->metrics[i].value;
    }
    if (n_steps != NULL) {
        *n_steps = h->n_metrics;
    }
    mpb_metric_history_free(&h);
    return sum;
}

static cJSON *
read_table(tracked *t, const char *name)
{
    char *path = mpb_asprintf("%s/mlruns/0/%s/artifacts/%s", t->dir, t->run_id, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = mpb_malloc(1 << 22);
    size_t len = fread(text, 1, (1 << 22) - 1, f);
    text[len] = '\0';
    fclose(f);
    free(path);
    cJSON *table = cJSON_Parse(text);
    free(text);
    assert_non_null(table);
    return table;
}

static void
intervals_and_item_table_land_in_the_run(void **state)
{
    (void)state;
    enum { N = 1000 };
    tracked t;
    mpb_server_tracker_options options;
    mpb_server_tracker_options_init(&options);
    options.log_payloads = 1;
    tracked_open(&t, &options);
    run_tracked(&t, 50, (paced){.n = N, .pause_us = 40000});
    char err[512] = "";

    /* intervals: one step each, adding up to the run */
    size_t steps = 0;
    assert_true(metric_sum(&t, "fail/interval/errors", &steps) == N / 10);
    assert_true(steps >= 3);
    size_t item_steps = 0;
    metric_sum(&t, "fail/interval/items_per_s", &item_steps);
    assert_int_equal(item_steps, steps); /* every interval, 0, 1, ... */
    assert_true(metric_sum(&t, "fail/interval/error_type/ValueError", NULL) == N / 10);
    assert_true(metric_sum(&t, "server/interval/errors", NULL) == N / 10);
    size_t cpu_steps = 0;
    metric_sum(&t, "system/coordinator_rss_mb", &cpu_steps);
    assert_int_equal(cpu_steps, steps);

    /* the item table: every item (under the default first 10000) */
    cJSON *table = read_table(&t, "items.json");
    const cJSON *columns = cJSON_GetObjectItemCaseSensitive(table, "columns");
    const char *expect[] = {"index",      "servlet", "status", "error_type",
                            "latency_us", "batch",   "input",  "value"};
    assert_int_equal(cJSON_GetArraySize(columns), 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(cJSON_GetArrayItem(columns, i)->valuestring, expect[i]);
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(table, "data");
    assert_int_equal(cJSON_GetArraySize(data), N);
    int seen[N] = {0};
    const cJSON *row;
    cJSON_ArrayForEach(row, data)
    {
        int index = cJSON_GetArrayItem(row, 0)->valueint;
        assert_true(index >= 0 && index < N);
        seen[index]++;
        assert_string_equal(cJSON_GetArrayItem(row, 1)->valuestring, "fail");
        int bad = index % 10 == 0;
        assert_string_equal(cJSON_GetArrayItem(row, 2)->valuestring, bad ? "error" : "ok");
        if (bad) {
            assert_string_equal(cJSON_GetArrayItem(row, 3)->valuestring, "ValueError");
            assert_true(cJSON_IsNull(cJSON_GetArrayItem(row, 7)));
        } else {
            assert_true(cJSON_IsNull(cJSON_GetArrayItem(row, 3)));
            assert_string_equal(cJSON_GetArrayItem(row, 7)->valuestring,
                                cJSON_GetArrayItem(row, 6)->valuestring); /* echoed */
        }
        assert_true(cJSON_GetArrayItem(row, 4)->valuedouble >= 0);
        assert_true(cJSON_GetArrayItem(row, 5)->valueint >= 1); /* a batch */
        char input[32];
        snprintf(input, sizeof input, "%s%d", bad ? "bad" : "ok", index);
        assert_string_equal(cJSON_GetArrayItem(row, 6)->valuestring, input);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(seen[i], 1);
    }
    cJSON_Delete(table);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(t.store, t.run_id, &run, err, sizeof err), 0);
    int tagged = 0;
    for (size_t i = 0; i < run->n_tags; i++) {
        if (strcmp(run->tags[i].key, "mlflow.loggedArtifacts") == 0) {
            assert_string_equal(run->tags[i].value,
                                "[{\"path\": \"items.json\", \"type\": \"table\"}]");
            tagged = 1;
        }
    }
    assert_true(tagged);
    mpb_run_free(&run);
    assert_true(metric_sum(&t, "tracking/items_recorded", NULL) == N);
    assert_true(metric_sum(&t, "tracking/items_dropped", NULL) == 0);
    tracked_close(&t);
}

static void
items_past_the_first_are_sampled_then_capped(void **state)
{
    (void)state;
    enum { N = 300 };
    tracked t;
    mpb_server_tracker_options options;
    mpb_server_tracker_options_init(&options);
    options.items_first = 100;
    options.items_every = 5; /* then answers 100, 105, ... 295: 40 */
    options.items_max = 120; /* of which 20 fit */
    options.items_artifact = "tables/sampled.json";
    tracked_open(&t, &options);
    run_tracked(&t, 1000, (paced){.n = N});
    cJSON *table = read_table(&t, "tables/sampled.json");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(table, "columns")), 6);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(table, "data")), 120);
    cJSON_Delete(table);
    assert_true(metric_sum(&t, "tracking/items_recorded", NULL) == 120);
    assert_true(metric_sum(&t, "tracking/items_sampled_out", NULL) == 160);
    assert_true(metric_sum(&t, "tracking/items_dropped", NULL) == 20);
    tracked_close(&t);
}

static void
a_large_tree_keeps_every_interval_figure(void **state)
{
    (void)state;
    /* 40 pools of 12 figures each, more than a fixed table once held: the
     * system figures, added last, must be there too */
    tracked t;
    tracked_open(&t, NULL);
    enum { POOLS = 40 };
    mpb_servlet_interval pools[POOLS];
    char names[POOLS][32];
    for (int i = 0; i < POOLS; i++) {
        snprintf(names[i], sizeof names[i], "tree/m%d", i);
        pools[i] = (mpb_servlet_interval){.servlet = names[i], .items_per_s = i};
    }
    mpb_interval_telemetry it = {.index = 0,
                                 .seconds = 1,
                                 .server = {.servlet = "server", .items_per_s = 1},
                                 .servlets = pools,
                                 .n_servlets = POOLS,
                                 .coordinator_cpu = 0.5};
    mpb_server_tracker_on_interval(t.tracker, &it);
    char err[512] = "";
    assert_int_equal(mpb_server_tracker_finish(t.tracker, err, sizeof err), 0);
    mpb_server_tracker_destroy(&t.tracker);
    size_t steps = 0;
    assert_true(metric_sum(&t, "system/coordinator_cpu", &steps) == 0.5);
    assert_int_equal(steps, 1);
    assert_true(metric_sum(&t, "tree/m39/interval/items_per_s", &steps) == 39);
    assert_true(metric_sum(&t, "tree/m39/interval/workers_rss_mb", &steps) == 0);
    assert_int_equal(steps, 1);
    tracked_close(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_batch_becomes_metrics_of_the_run),
        cmocka_unit_test(intervals_and_item_table_land_in_the_run),
        cmocka_unit_test(items_past_the_first_are_sampled_then_capped),
        cmocka_unit_test(a_large_tree_keeps_every_interval_figure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
