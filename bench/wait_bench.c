/*
 * mpb-bench-wait: batch_wait_us: auto against fixed waits, in one run.
 * One process worker of the sleep plugin (a call costs batch_cost_us plus
 * item_cost_us per item, so batches pay); for each wait setting:
 *
 *   low load     one call at a time: p50 and p99 latency
 *   saturation   a stream that keeps the server full: items/s
 *
 * Targets (docs/performance.md): auto's p50 at low load within 1.5 x of
 * wait 0's; auto's items/s at saturation within 10 % of the best fixed
 * wait's. Settings are measured in interleaved rounds; medians.
 *
 *   mpb-bench-wait [--rounds 5] [--calls 300] [--items 20000]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/server.h"
#include "mpbatch/worker.h"

#define SETTINGS 4
static const long long waits[SETTINGS] = {0, 2000, 10000, MPB_BATCH_WAIT_AUTO};
static const char *const names[SETTINGS] = {"wait 0", "wait 2000 us", "wait 10000 us", "auto"};

static mpb_server *
start(long long wait_us)
{
    const char *options[] = {"batch_cost_us=500", "item_cost_us=10", NULL};
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.plugin = "sleep";
    cfg.workers = 1;
    cfg.batch_size = 32;
    cfg.batch_wait_us = wait_us;
    cfg.options = options;
    mpb_servlet *servlet = mpb_process_servlet_new(&cfg);
    mpb_server *server = mpb_server_new(&servlet, NULL);
    char err[512];
    if (mpb_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-bench-wait: %s\n", err);
        exit(1);
    }
    return server;
}

static void
low_load(mpb_server *server, int calls, double *p50, double *p99)
{
    double *us = mpb_malloc((size_t)calls * sizeof *us);
    for (int i = 0; i < calls; i++) {
        int64_t t0 = mpb_now_ns();
        mpb_result *r = NULL;
        if (mpb_server_call(server, "x", 1, 10000, &r) != 0) {
            fprintf(stderr, "mpb-bench-wait: a call failed\n");
            exit(1);
        }
        us[i] = (double)(mpb_now_ns() - t0) / 1e3;
        mpb_result_destroy(&r);
    }
    *p50 = bench_percentile(us, (size_t)calls, 0.5);
    *p99 = bench_percentile(us, (size_t)calls, 0.99);
    free(us);
}

typedef struct feed {
    long long n;
    long long made;
} feed;

static int
feed_next(void *ctx, const void **data, size_t *len)
{
    feed *f = ctx;
    if (f->made == f->n) {
        return 0;
    }
    f->made++;
    *data = "y";
    *len = 1;
    return 1;
}

static int
feed_output(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)ctx;
    (void)index;
    return mpb_result_is_error(result) ? MPB_EITEM : 0;
}

static double
saturation(mpb_server *server, long long items)
{
    feed f = {.n = items};
    int64_t t0 = mpb_now_ns();
    if (mpb_server_stream(server, feed_next, feed_output, &f, NULL) != 0) {
        fprintf(stderr, "mpb-bench-wait: a stream failed\n");
        exit(1);
    }
    return (double)items / ((double)(mpb_now_ns() - t0) / 1e9);
}

int
main(int argc, char **argv)
{
    int rounds = 5;
    int calls = 300;
    long long items = 20000;
    static const struct option options[] = {{"rounds", required_argument, NULL, 'r'},
                                            {"calls", required_argument, NULL, 'c'},
                                            {"items", required_argument, NULL, 'n'},
                                            {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'r') {
            rounds = atoi(optarg);
        } else if (opt == 'c') {
            calls = atoi(optarg);
        } else if (opt == 'n') {
            items = atoll(optarg);
        } else {
            fprintf(stderr, "usage: mpb-bench-wait [--rounds N] [--calls N] [--items N]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 32 || calls < 10 || items < 100) {
        fprintf(stderr, "mpb-bench-wait: rounds 1..32, calls >= 10, items >= 100\n");
        return 2;
    }
    mpb_server *servers[SETTINGS];
    for (int s = 0; s < SETTINGS; s++) {
        servers[s] = start(waits[s]);
    }
    double p50[SETTINGS][32], p99[SETTINGS][32], rate[SETTINGS][32];
    for (int r = 0; r < rounds; r++) {
        for (int s = 0; s < SETTINGS; s++) {
            low_load(servers[s], calls, &p50[s][r], &p99[s][r]);
            rate[s][r] = saturation(servers[s], items);
        }
    }
    printf("mpb-bench-wait: sleep plugin (500 us + 10 us per item), 1 worker, batch_size 32, "
           "%d rounds, medians\n",
           rounds);
    printf("%-14s %12s %12s %14s\n", "setting", "p50 (us)", "p99 (us)", "items/s");
    double m50[SETTINGS], mrate[SETTINGS];
    for (int s = 0; s < SETTINGS; s++) {
        m50[s] = bench_percentile(p50[s], (size_t)rounds, 0.5);
        mrate[s] = bench_percentile(rate[s], (size_t)rounds, 0.5);
        printf("%-14s %12.0f %12.0f %14.0f\n", names[s], m50[s],
               bench_percentile(p99[s], (size_t)rounds, 0.5), mrate[s]);
        mpb_server_destroy(&servers[s]);
    }
    double best = mrate[0] > mrate[1] ? mrate[0] : mrate[1];
    best = mrate[2] > best ? mrate[2] : best;
    printf("auto at low load: p50 %.2f x wait 0's (target <= 1.5)\n", m50[3] / m50[0]);
    printf("auto at saturation: %.2f x the best fixed wait's items/s (target >= 0.9)\n",
           mrate[3] / best);
    return 0;
}
