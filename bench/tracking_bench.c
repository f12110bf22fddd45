/*
 * mpb-bench-tracking: what the async logging queue costs the caller and how
 * fast it writes to the file store, against direct synchronous
 * mpb_store_log_batch calls measured in the same run (real files in a
 * temporary folder, removed at the end).
 *
 *   mpb-bench-tracking [--metrics N] [--rounds R] [--direct N]
 *
 * Figures, printed on stdout:
 *   enqueue ns/metric  median over R rounds of 10000 log calls (1 metric each,
 *                      fire-and-forget; with a handle; 100 metrics per call),
 *                      rounds of the three interleaved, after warm-up rounds
 *   queue metrics/s    N single-metric log calls until flush() returns
 *   direct metrics/s   mpb_store_log_batch, 1 metric per call (N/10 calls by
 *                      default, --direct) and 1000 metrics per call (N)
 * No assertion on speed: these machines are shared and noisy.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "mpbatch/error.h"
#include "mpbatch/logging_queue.h"
#include "mpbatch/store.h"

#define ROUND_CALLS 10000
#define RUN_KEY "loss"

typedef struct bench {
    mpb_store *store;
    long metrics;
    long direct_calls;
    int rounds;
} bench;

static int64_t
now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t
wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static char *
new_run(bench *b, const char *name)
{
    char err[512] = "";
    char *run_id = NULL;
    if (mpb_store_create_run(b->store, "0", "bench", -1, name, NULL, 0, &run_id, err, sizeof err) !=
        0) {
        fprintf(stderr, "mpb-bench-tracking: create_run: %s\n", err);
        exit(1);
    }
    return run_id;
}

static mpb_logging_queue *
start_queue(bench *b, size_t capacity)
{
    mpb_logging_queue_options opts = {.capacity = capacity, .block_timeout_ms = 60000};
    mpb_logging_queue *queue = mpb_logging_queue_new(b->store, &opts);
    char err[512] = "";
    if (mpb_logging_queue_start(queue, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-bench-tracking: %s\n", err);
        exit(1);
    }
    return queue;
}

/* ns per metric of one round of log calls of `per_call` metrics each. */
static double
enqueue_round(mpb_logging_queue *queue, const char *run_id, int per_call, int with_handle,
              int64_t *step)
{
    mpb_metric metrics[100];
    int64_t ts = wall_ms();
    int calls = ROUND_CALLS / per_call;
    int64_t start = now_ns();
    for (int c = 0; c < calls; c++) {
        for (int i = 0; i < per_call; i++) {
            metrics[i] = (mpb_metric){RUN_KEY, (double)*step, ts, *step};
            (*step)++;
        }
        mpb_logging_handle *handle = NULL;
        int rc = mpb_logging_queue_log_batch(queue, run_id, metrics, (size_t)per_call, NULL, 0,
                                             NULL, 0, with_handle ? &handle : NULL);
        if (rc != 0) {
            fprintf(stderr, "mpb-bench-tracking: log_batch: %s\n", mpb_strerror(rc));
            exit(1);
        }
        mpb_logging_handle_release(&handle);
    }
    return (double)(now_ns() - start) / (calls * per_call);
}

/* Median ns/metric of each configuration; rounds interleave the
 * configurations so that they meet the same machine noise, after warm-up
 * rounds (heap growth, first page faults) that are not counted. */
#define N_CONFIGS 3
#define WARMUP_ROUNDS 3

static void
enqueue_costs(bench *b, double medians[N_CONFIGS])
{
    static const int per_call[N_CONFIGS] = {1, 1, 100};
    static const int with_handle[N_CONFIGS] = {0, 1, 0};
    mpb_logging_queue *queues[N_CONFIGS];
    char *run_ids[N_CONFIGS];
    int64_t steps[N_CONFIGS] = {0};
    double *samples = calloc((size_t)(N_CONFIGS * b->rounds), sizeof *samples);
    for (int c = 0; c < N_CONFIGS; c++) {
        queues[c] = start_queue(b, 2 * ROUND_CALLS);
        run_ids[c] = new_run(b, "enqueue");
    }
    for (int r = -WARMUP_ROUNDS; r < b->rounds; r++) {
        for (int c = 0; c < N_CONFIGS; c++) {
            double ns =
                enqueue_round(queues[c], run_ids[c], per_call[c], with_handle[c], &steps[c]);
            mpb_logging_queue_flush(queues[c], 600000); /* the next round meets an idle writer */
            if (r >= 0) {
                samples[c * b->rounds + r] = ns;
            }
        }
    }
    for (int c = 0; c < N_CONFIGS; c++) {
        medians[c] = bench_median(samples + c * b->rounds, (size_t)b->rounds);
        mpb_logging_queue_destroy(&queues[c]);
        free(run_ids[c]);
    }
    free(samples);
}

/* metrics/s from the first log call until flush() returns. */
static double
queue_throughput(bench *b, uint64_t *store_calls)
{
    mpb_logging_queue *queue = start_queue(b, 0);
    char *run_id = new_run(b, "queue");
    int64_t ts = wall_ms();
    int64_t start = now_ns();
    for (long i = 0; i < b->metrics; i++) {
        mpb_metric m = {RUN_KEY, (double)i, ts, i};
        mpb_logging_queue_log_batch(queue, run_id, &m, 1, NULL, 0, NULL, 0, NULL);
    }
    int rc = mpb_logging_queue_flush(queue, 600000);
    double seconds = (double)(now_ns() - start) / 1e9;
    mpb_logging_stats stats;
    mpb_logging_queue_stats(queue, &stats);
    if (rc != 0 || stats.failed != 0) {
        fprintf(stderr, "mpb-bench-tracking: queue: %s, %llu failed\n", mpb_strerror(rc),
                (unsigned long long)stats.failed);
        exit(1);
    }
    *store_calls = stats.store_calls;
    free(run_id);
    mpb_logging_queue_destroy(&queue);
    return (double)b->metrics / seconds;
}

/* metrics/s of synchronous mpb_store_log_batch calls of `per_call` metrics. */
static double
direct_throughput(bench *b, long total, int per_call)
{
    char *run_id = new_run(b, "direct");
    mpb_metric *metrics = calloc((size_t)per_call, sizeof *metrics);
    int64_t ts = wall_ms();
    char err[512] = "";
    int64_t start = now_ns();
    for (long done = 0; done < total; done += per_call) {
        for (int i = 0; i < per_call; i++) {
            metrics[i] = (mpb_metric){RUN_KEY, (double)(done + i), ts, done + i};
        }
        if (mpb_store_log_batch(b->store, run_id, metrics, (size_t)per_call, NULL, 0, NULL, 0, err,
                                sizeof err) != 0) {
            fprintf(stderr, "mpb-bench-tracking: log_batch: %s\n", err);
            exit(1);
        }
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    free(metrics);
    free(run_id);
    return (double)total / seconds;
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void
parse_args(int argc, char **argv, bench *b)
{
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--metrics") == 0 && value) {
            b->metrics = atol(argv[++i]);
        } else if (strcmp(argv[i], "--rounds") == 0 && value) {
            b->rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--direct") == 0 && value) {
            b->direct_calls = atol(argv[++i]);
        } else {
            fprintf(stderr, "usage: mpb-bench-tracking [--metrics N] [--rounds R] [--direct N]\n");
            exit(2);
        }
    }
    if (b->metrics < 1000 || b->rounds < 1 || b->direct_calls < 1) {
        fprintf(stderr, "mpb-bench-tracking: need --metrics >= 1000, --rounds >= 1, "
                        "--direct >= 1\n");
        exit(2);
    }
}

int
main(int argc, char **argv)
{
    bench b = {.metrics = 200000, .rounds = 31, .direct_calls = 20000};
    parse_args(argc, argv, &b);
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/mpb-bench-tracking-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mpb-bench-tracking: mkdtemp");
        return 1;
    }
    char root[4200];
    snprintf(root, sizeof root, "%s/mlruns", dir);
    char err[512] = "";
    if (mpb_store_open(root, &b.store, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-bench-tracking: %s\n", err);
        return 1;
    }

    double enqueue[N_CONFIGS];
    enqueue_costs(&b, enqueue);
    uint64_t store_calls = 0;
    double queued = queue_throughput(&b, &store_calls);
    double direct_one = direct_throughput(&b, b.direct_calls, 1);
    double direct_1000 = direct_throughput(&b, b.metrics, 1000);

    printf("mpb-bench-tracking: file store in %s, %d rounds, %ld metrics\n", root, b.rounds,
           b.metrics);
    printf("enqueue, 1 metric per call, no handle   %8.0f ns/metric (median)\n", enqueue[0]);
    printf("enqueue, 1 metric per call, with handle %8.0f ns/metric (median)\n", enqueue[1]);
    printf("enqueue, 100 metrics per call           %8.0f ns/metric (median)\n", enqueue[2]);
    printf("direct log_batch, 1 metric per call     %8.0f ns/metric (%ld calls)\n",
           1e9 / direct_one, b.direct_calls);
    printf("queue, 1 metric per call, until flushed %10.0f metrics/s (%llu store calls)\n", queued,
           (unsigned long long)store_calls);
    printf("direct log_batch, 1 metric per call     %10.0f metrics/s\n", direct_one);
    printf("direct log_batch, 1000 metrics per call %10.0f metrics/s\n", direct_1000);
    printf("ratio: direct 1-metric call time / enqueue time       %8.1fx\n",
           (1e9 / direct_one) / enqueue[0]);
    printf("ratio: queue metrics/s / direct 1-metric metrics/s   %8.1fx\n", queued / direct_one);
    printf("ratio: queue metrics/s / direct 1000-metric metrics/s %7.2fx\n", queued / direct_1000);

    mpb_store_destroy(&b.store);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
