/*
 * mpb-bench-telemetry: what tracking costs a server, in one run. For each
 * model (the demo's mlp on 2 workers, and passthrough on 1 worker, where
 * the framework is all there is), streams the same items with
 *
 *   off        no observers (the metrics Prometheus reads are always kept)
 *   batches    per-batch telemetry into a tracking run
 *   all        per-batch, per-item records (default sampling) and
 *              interval telemetry every second
 *
 * into a file store in a temporary folder, and prints items/s (medians of
 * interleaved rounds) with the ratio to off. The target (issue 8): all
 * within 3 % of off. Writing the item table after the run is timed apart.
 *
 *   mpb-bench-telemetry [--rounds 5] [--mlp-items 200000] [--items 2000000]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "mpbatch/server.h"
#include "mpbatch/server_tracker.h"
#include "mpbatch/store.h"

enum { OFF, BATCHES, ALL, MODES };
static const char *const mode_names[MODES] = {"off", "batches", "all"};

typedef struct model {
    const char *name;
    const char *plugin;
    unsigned workers;
    const char *const *options;
    size_t item_len;
    uint64_t items;
} model;

static const char *const mlp_options[] = {"input_dim=256", "hidden_dim=256", "output_dim=16",
                                          "seed=7", NULL};

typedef struct feed {
    uint64_t n;
    uint64_t made;
    float *item;
    size_t len;
} feed;

static int
next_item(void *ctx, const void **data, size_t *len)
{
    feed *f = ctx;
    if (f->made == f->n) {
        return 0;
    }
    f->item[0] = (float)(f->made++ % 1000) / 1000.0f;
    *data = f->item;
    *len = f->len;
    return 1;
}

static int
on_output(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)ctx;
    (void)index;
    return mpb_result_is_error(result);
}

/* One round: items/s of the stream; *finish_s the tracker's finish. */
static double
run_once(const model *m, int mode, mpb_store *store, double *finish_s)
{
    mpb_pool_config pool;
    mpb_pool_config_init(&pool);
    pool.name = m->name;
    pool.plugin = m->plugin;
    pool.workers = m->workers;
    pool.cpus = "auto";
    pool.batch_size = 64;
    pool.batch_wait_us = 2000;
    pool.options = m->options;
    mpb_servlet *servlet = mpb_process_servlet_new(&pool);
    mpb_server_options options;
    mpb_server_options_init(&options);
    options.capacity = 1024;
    char err[512];
    char *run_id = NULL;
    mpb_server_tracker *tracker = NULL;
    if (mode != OFF) {
        if (mpb_store_create_run(store, "0", "bench", -1, mode_names[mode], NULL, 0, &run_id, err,
                                 sizeof err) != 0) {
            fprintf(stderr, "mpb-bench-telemetry: %s\n", err);
            exit(1);
        }
        tracker = mpb_server_tracker_new(store, run_id);
        if (mpb_server_tracker_start(tracker, err, sizeof err) != 0) {
            fprintf(stderr, "mpb-bench-telemetry: %s\n", err);
            exit(1);
        }
        options.on_batch = mpb_server_tracker_on_batch;
        options.on_batch_ctx = tracker;
        if (mode == ALL) {
            options.on_item = mpb_server_tracker_on_item;
            options.on_item_ctx = tracker;
            options.on_interval = mpb_server_tracker_on_interval;
            options.on_interval_ctx = tracker;
        }
    }
    mpb_server *server = mpb_server_new(&servlet, &options);
    if (mpb_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-bench-telemetry: %s\n", err);
        exit(1);
    }
    feed f = {.n = m->items, .item = calloc(1, m->item_len), .len = m->item_len};
    double start = bench_now_s();
    if (mpb_server_stream(server, next_item, on_output, &f, NULL) != 0) {
        fprintf(stderr, "mpb-bench-telemetry: stream failed\n");
        exit(1);
    }
    double seconds = bench_now_s() - start;
    mpb_server_stop(server);
    mpb_server_destroy(&server);
    *finish_s = 0;
    if (tracker != NULL) {
        double t0 = bench_now_s();
        if (mpb_server_tracker_finish(tracker, err, sizeof err) != 0) {
            fprintf(stderr, "mpb-bench-telemetry: %s\n", err);
        }
        *finish_s = bench_now_s() - t0;
        if (mpb_server_tracker_dropped(tracker) > 0) {
            fprintf(stderr, "  (%s: %llu batches' metrics dropped, queue full)\n", mode_names[mode],
                    (unsigned long long)mpb_server_tracker_dropped(tracker));
        }
        mpb_server_tracker_destroy(&tracker);
    }
    free(run_id);
    free(f.item);
    return (double)m->items / seconds;
}

int
main(int argc, char **argv)
{
    int rounds = 5;
    uint64_t mlp_items = 200000;
    uint64_t items = 2000000;
    const char *only_model = NULL;
    int only_mode = -1;
    static const struct option opts[] = {
        {"rounds", required_argument, NULL, 'r'}, {"mlp-items", required_argument, NULL, 'm'},
        {"items", required_argument, NULL, 'n'},  {"model", required_argument, NULL, 'M'},
        {"only", required_argument, NULL, 'o'},   {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'r') {
            rounds = atoi(optarg);
        } else if (opt == 'm') {
            mlp_items = strtoull(optarg, NULL, 10);
        } else if (opt == 'n') {
            items = strtoull(optarg, NULL, 10);
        } else if (opt == 'M') {
            only_model = optarg;
        } else if (opt == 'o') {
            for (int mode = 0; mode < MODES; mode++) {
                only_mode = strcmp(optarg, mode_names[mode]) == 0 ? mode : only_mode;
            }
            if (only_mode < 0) {
                fprintf(stderr, "mpb-bench-telemetry: --only off|batches|all\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: mpb-bench-telemetry [--rounds 5] [--mlp-items 200000] "
                            "[--items 2000000] [--model mlp|passthrough] [--only MODE (to "
                            "profile one)]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 99) {
        fprintf(stderr, "mpb-bench-telemetry: --rounds must be 1..99\n");
        return 2;
    }
    const model models[2] = {
        {"mlp", "mlp", 2, mlp_options, 256 * sizeof(float), mlp_items},
        {"passthrough", "passthrough", 1, NULL, 16, items},
    };
    char dir[] = "/tmp/mpb-bench-telemetry-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char uri[128];
    snprintf(uri, sizeof uri, "file:%s/mlruns", dir);
    mpb_store *store = NULL;
    char err[512];
    if (mpb_store_open(uri, &store, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-bench-telemetry: %s\n", err);
        return 1;
    }
    printf("tracking cost: items/s, medians of %d interleaved rounds (store %s)\n", rounds, uri);
    printf("%-12s %-8s %12s %8s %10s\n", "model", "tracking", "items/s", "x off", "finish ms");
    for (int mi = 0; mi < 2; mi++) {
        if (only_model != NULL && strcmp(only_model, models[mi].name) != 0) {
            continue;
        }
        double rate[MODES][99] = {{0}};
        double finish[MODES][99] = {{0}};
        for (int r = 0; r < rounds; r++) {
            for (int mode = 0; mode < MODES; mode++) {
                if (only_mode < 0 || mode == only_mode) {
                    rate[mode][r] = run_once(&models[mi], mode, store, &finish[mode][r]);
                }
            }
            fprintf(stderr, "\r%s: round %d of %d", models[mi].name, r + 1, rounds);
        }
        fprintf(stderr, "\r%40s\r", "");
        double off = bench_median(rate[OFF], (size_t)rounds);
        for (int mode = 0; mode < MODES; mode++) {
            if (only_mode >= 0 && mode != only_mode) {
                continue;
            }
            double med = bench_median(rate[mode], (size_t)rounds);
            printf("%-12s %-8s %12.0f %8.3f %10.1f\n", models[mi].name, mode_names[mode], med,
                   med / off, bench_median(finish[mode], (size_t)rounds) * 1e3);
        }
    }
    mpb_store_destroy(&store);
    char rm[200];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0) {
        fprintf(stderr, "mpb-bench-telemetry: could not remove %s\n", dir);
    }
    return 0;
}
