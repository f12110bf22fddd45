/*
 * The mpbatch demo: a two-layer perceptron (the mlp plugin) served by two
 * worker processes pinned one per core, fed 100,000 generated vectors
 * through an ordered stream. Prints throughput and how batches formed, and
 * tracks the run (parameters, every batch's telemetry, a summary) into the
 * default store (mpb_store_default_uri(): $MLFLOW_TRACKING_URI, else
 * sqlite:///mlflow.db, or ./mlruns where that holds experiments), which MLflow opens.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpbatch/error.h"
#include "mpbatch/server.h"
#include "mpbatch/server_tracker.h"
#include "mpbatch/store.h"
#include "mpbatch/tracking.h"

#define ITEMS 100000
#define INPUT_DIM 256
#define OUTPUT_DIM 16

typedef struct demo {
    float vector[INPUT_DIM];
    uint64_t made;
    uint64_t rng;
    uint64_t answered;
    uint64_t bad;
} demo;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
next_vector(void *ctx, const void **data, size_t *len)
{
    demo *d = ctx;
    if (d->made == ITEMS) {
        return 0;
    }
    for (int i = 0; i < INPUT_DIM; i++) {
        d->rng = d->rng * 6364136223846793005ull + 1442695040888963407ull;
        d->vector[i] = (float)(d->rng >> 40) / (float)(1 << 24) - 0.5f;
    }
    d->made++;
    *data = d->vector;
    *len = sizeof d->vector;
    return 1;
}

static int
check_output(void *ctx, uint64_t index, const mpb_result *result)
{
    demo *d = ctx;
    size_t len = 0;
    d->answered++;
    if (mpb_result_value(result, &len) == NULL || len != OUTPUT_DIM * sizeof(float)) {
        d->bad++;
    }
    return 0;
}

/* Starts the demo's tracked run and the tracker that logs every batch. */
static mpb_server_tracker *
start_tracking(char *run_id, size_t run_id_len)
{
    char err[512];
    if (mpb_tracking_set_experiment("mpbatch-demo", err, sizeof err) != 0 ||
        mpb_tracking_start_run("mlp-2-workers-batch-64", run_id, run_id_len, err, sizeof err) !=
            0) {
        fprintf(stderr, "demo: tracking: %s\n", err);
        return NULL;
    }
    const char *params[][2] = {
        {"plugin", "mlp"},         {"workers", "2"},    {"cpus", "auto"},      {"batch_size", "64"},
        {"batch_wait_us", "2000"}, {"items", "100000"}, {"dims", "256-256-16"}};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        mpb_tracking_log_param(params[i][0], params[i][1]);
    }
    mpb_server_tracker *tracker = mpb_server_tracker_new(mpb_tracking_store(NULL, 0), run_id);
    if (mpb_server_tracker_start(tracker, err, sizeof err) != 0) {
        fprintf(stderr, "demo: tracking: %s\n", err);
        mpb_server_tracker_destroy(&tracker);
    }
    return tracker;
}

static void
finish_tracking(mpb_server_tracker *tracker, const mpb_server_stats *stats, double items_per_s)
{
    char err[256];
    /* the queued metrics, then the per-item table (items.json) */
    if (mpb_server_tracker_finish(tracker, err, sizeof err) != 0) {
        fprintf(stderr, "demo: tracking: %s\n", err);
    }
    uint64_t logged = mpb_server_tracker_logged(tracker);
    uint64_t dropped = mpb_server_tracker_dropped(tracker);
    mpb_server_tracker_destroy(&tracker);
    double mean = stats->batches ? (double)stats->batched_items / (double)stats->batches : 0.0;
    mpb_tracking_log_metric("items_per_s", items_per_s, 0);
    mpb_tracking_log_metric("mean_batch_size", mean, 0);
    mpb_tracking_log_metric("batches_closed_full", (double)stats->closed_full, 0);
    mpb_tracking_log_metric("batches_closed_timer", (double)stats->closed_timer, 0);
    mpb_tracking_log_metric("batches_closed_drained", (double)stats->closed_drained, 0);
    mpb_tracking_log_metric("errors", (double)stats->errors, 0);
    char run_id[64] = "";
    mpb_tracking_active_run_id(run_id, sizeof run_id);
    if (mpb_tracking_end_run(MPB_RUN_FINISHED, err, sizeof err) != 0) {
        fprintf(stderr, "demo: tracking: %s\n", err);
        return;
    }
    char *uri = mpb_store_default_uri();
    printf("tracked: run %s of experiment mpbatch-demo in %s (%llu batches logged, %llu "
           "dropped; sampled items in the table items.json)\n",
           run_id, uri, (unsigned long long)logged, (unsigned long long)dropped);
    printf("  see it: ./build/bin/mpb runs show %s\n", run_id);
    printf("  or in MLflow: %smlflow ui --backend-store-uri %s\n",
           strncmp(uri, "sqlite:", 7) == 0 ? "" : "MLFLOW_ALLOW_FILE_STORE=true ", uri);
    free(uri);
}

int
main(void)
{
    const char *options[] = {"input_dim=256", "hidden_dim=256", "output_dim=16", "seed=7", NULL};
    mpb_pool_config pool;
    mpb_pool_config_init(&pool);
    pool.name = "mlp";
    pool.plugin = "mlp";
    pool.workers = 2;
    pool.cpus = "auto";
    pool.batch_size = 64;
    pool.batch_wait_us = 2000;
    pool.options = options;
    mpb_servlet *servlet = mpb_process_servlet_new(&pool);

    char run_id[64] = "";
    mpb_server_tracker *tracker = start_tracking(run_id, sizeof run_id);
    mpb_server_options server_options;
    mpb_server_options_init(&server_options);
    server_options.capacity = 1024;
    if (tracker != NULL) {
        server_options.on_batch = mpb_server_tracker_on_batch; /* every batch */
        server_options.on_batch_ctx = tracker;
        server_options.on_item = mpb_server_tracker_on_item; /* sampled items */
        server_options.on_item_ctx = tracker;
        server_options.on_interval = mpb_server_tracker_on_interval; /* every second */
        server_options.on_interval_ctx = tracker;
    }
    mpb_server *server = mpb_server_new(&servlet, &server_options);

    char err[512];
    double t0 = now_s();
    if (mpb_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "demo: %s\n", err);
        mpb_server_destroy(&server);
        mpb_server_tracker_destroy(&tracker);
        mpb_tracking_shutdown(1, NULL, 0);
        return 1;
    }
    mpb_worker_status workers[8];
    size_t n_workers = mpb_server_workers(server, workers, 8);
    printf("mpbatch demo: mlp %d -> 256 -> %d on %zu worker processes, started in %.0f ms\n",
           INPUT_DIM, OUTPUT_DIM, n_workers, (now_s() - t0) * 1e3);
    for (size_t i = 0; i < n_workers && i < 8; i++) {
        printf("  worker %s: pid %lld, cpus %s\n", workers[i].name, (long long)workers[i].pid,
               workers[i].cpus);
    }

    demo d = {.rng = 42};
    double start = now_s();
    int rc = mpb_server_stream(server, next_vector, check_output, &d, NULL);
    double seconds = now_s() - start;
    mpb_server_stop(server);

    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    printf("%llu items in %.2f s: %.0f items/s (%llu errors, %llu malformed outputs)\n",
           (unsigned long long)d.answered, seconds, (double)d.answered / seconds,
           (unsigned long long)stats.errors, (unsigned long long)d.bad);
    printf("batches: %llu, mean size %.1f of 64; closed: %llu full, %llu timer, %llu drained\n",
           (unsigned long long)stats.batches,
           stats.batches ? (double)stats.batched_items / (double)stats.batches : 0.0,
           (unsigned long long)stats.closed_full, (unsigned long long)stats.closed_timer,
           (unsigned long long)stats.closed_drained);
    if (stats.batches > 0) {
        printf("per batch: first item waited %.0f us, compute %.0f us (means)\n",
               (double)stats.first_wait_us / (double)stats.batches,
               (double)stats.compute_us / (double)stats.batches);
    }
    mpb_server_destroy(&server);
    if (tracker != NULL) {
        finish_tracking(tracker, &stats, (double)d.answered / seconds);
    }
    return rc == 0 && d.bad == 0 ? 0 : 1;
}
