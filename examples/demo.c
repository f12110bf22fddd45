/*
 * The mpbatch demo: a two-layer perceptron (the mlp plugin) served by two
 * worker processes pinned one per core, fed 100,000 generated vectors
 * through an ordered stream. Prints throughput and how batches formed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpbatch/error.h"
#include "mpbatch/server.h"

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

    mpb_server_options server_options;
    mpb_server_options_init(&server_options);
    server_options.capacity = 1024;
    mpb_server *server = mpb_server_new(&servlet, &server_options);

    char err[512];
    double t0 = now_s();
    if (mpb_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "demo: %s\n", err);
        mpb_server_destroy(&server);
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
    return rc == 0 && d.bad == 0 ? 0 : 1;
}
