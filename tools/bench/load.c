/*
 * DESIGN
 * One point of a sweep: a server built from the plan's config with the
 * point's settings, then each load against it.
 *
 * The main thread feeds: mpb_server_submit per item, with a record (the
 * item's start time) the result's callback reads on the dispatcher thread,
 * which puts the latency in the load's histogram (the dispatcher is its
 * only writer) and gives the record back. Records come from a fixed pool,
 * the free ones in a single-producer ring (dispatcher in, feeder out), so
 * a closed loop of N callers is N records, and an open loop never has more
 * items in flight than the pool. Items go in with mpb_server_submit_many,
 * up to 256 a call, and the feeder sleeps on an eventfd the dispatcher
 * writes once enough records are free.
 *
 * Closed loop: submit whenever records are free (once an eighth of them
 * is: callers come back in bunches, not one wake-up per result); latency
 * from submission.
 * Open loop: arrivals at Poisson times from the offered rate; an item is
 * submitted at its time (or as soon as the feeder catches up) and its
 * latency counts from the time it was due, so a server that makes the
 * feeder wait is charged for it (no coordinated omission).
 *
 * CPU: the coordinator's from getrusage (the feeder included; thread
 * pools' workers too), each worker process's from its CPU-time clock.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/histogram.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/server.h"
#include "tools/bench/bench_int.h"

#define RECORDS_OPEN 65536
#define MAX_WORKERS 256
#define DRAIN_TIMEOUT_S 120
#define BUNCH 256 /* items submitted in one call at most */

typedef struct load_run load_run;

typedef struct record {
    load_run *run;
    int64_t due_ns;
    uint32_t index;
} record;

struct load_run {
    mpb__histogram *hist;
    record *records;
    uint32_t n_records;
    /* free records: the dispatcher pushes, the feeder pops; a feeder that
     * needs more than there are sets waiting_for and sleeps on wake_fd */
    uint32_t *free_ring;
    atomic_uint_fast64_t free_head; /* pushes so far */
    atomic_uint_fast64_t free_tail; /* pops so far */
    atomic_uint_fast64_t waiting_for;
    int wake_fd;
    atomic_uint_fast64_t done;
    atomic_uint_fast64_t errors;
    atomic_int_fast64_t last_done_ns;
};

struct bench_server {
    mpb_server *server;
    pid_t pids[MAX_WORKERS];
    size_t n_pids;
};

static void
on_done(void *ctx, mpb_result *result)
{
    record *r = ctx;
    load_run *run = r->run;
    int64_t now = mpb_now_ns();
    mpb__histogram_record(run->hist, (uint64_t)(now > r->due_ns ? now - r->due_ns : 0));
    if (mpb_result_is_error(result)) {
        atomic_fetch_add(&run->errors, 1);
    }
    mpb_result_destroy(&result);
    uint64_t at = atomic_load_explicit(&run->free_head, memory_order_relaxed);
    run->free_ring[at % run->n_records] = r->index;
    atomic_store_explicit(&run->free_head, at + 1, memory_order_release);
    atomic_store_explicit(&run->last_done_ns, now, memory_order_relaxed);
    /* wake the feeder once enough are free (not for every one) */
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t wanted = atomic_load_explicit(&run->waiting_for, memory_order_relaxed);
    if (wanted != 0 && at + 1 - atomic_load(&run->free_tail) >= wanted &&
        atomic_exchange(&run->waiting_for, 0) != 0) {
        uint64_t one = 1;
        ssize_t ignored = write(run->wake_fd, &one, sizeof one);
        (void)ignored;
    }
    /* last: once every item is done the feeder may reuse or free run (and
     * close wake_fd), so nothing here may touch it after this */
    atomic_fetch_add_explicit(&run->done, 1, memory_order_release);
}

static uint64_t
free_records(load_run *run)
{
    return atomic_load_explicit(&run->free_head, memory_order_acquire) -
           atomic_load_explicit(&run->free_tail, memory_order_relaxed);
}

/* Waits until at least want records are free; returns how many are. */
static uint64_t
wait_free(load_run *run, uint64_t want)
{
    for (;;) {
        uint64_t n = free_records(run);
        if (n >= want) {
            return n;
        }
        atomic_store(&run->waiting_for, want);
        atomic_thread_fence(memory_order_seq_cst);
        n = free_records(run);
        if (n >= want) {
            atomic_store(&run->waiting_for, 0);
            return n;
        }
        struct pollfd pfd = {.fd = run->wake_fd, .events = POLLIN};
        poll(&pfd, 1, 1000);
        uint64_t count;
        ssize_t ignored = read(run->wake_fd, &count, sizeof count);
        (void)ignored;
    }
}

static record *
pop_record(load_run *run)
{
    uint64_t tail = atomic_load_explicit(&run->free_tail, memory_order_relaxed);
    record *r = &run->records[run->free_ring[tail % run->n_records]];
    atomic_store_explicit(&run->free_tail, tail + 1, memory_order_release);
    return r;
}

static void
run_init(load_run *run, mpb__histogram *hist, uint32_t n_records)
{
    memset(run, 0, sizeof *run);
    run->hist = hist;
    run->n_records = n_records;
    run->records = mpb_calloc(n_records, sizeof *run->records);
    run->free_ring = mpb_calloc(n_records, sizeof *run->free_ring);
    for (uint32_t i = 0; i < n_records; i++) {
        run->records[i] = (record){run, 0, i};
        run->free_ring[i] = i;
    }
    atomic_store(&run->free_head, n_records);
    run->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

static void
run_free(load_run *run)
{
    close(run->wake_fd);
    free(run->records);
    free(run->free_ring);
}

/* Waits until every submitted item is answered. */
static int
drain(load_run *run, uint64_t submitted)
{
    int64_t deadline = mpb_now_ns() + (int64_t)DRAIN_TIMEOUT_S * 1000000000;
    while (atomic_load_explicit(&run->done, memory_order_acquire) < submitted) {
        if (mpb_now_ns() > deadline) {
            return MPB_ETIMEDOUT;
        }
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }
    return 0;
}

static double
cpu_seconds_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double
worker_cpu_seconds(const bench_server *s)
{
    double total = 0;
    for (size_t i = 0; i < s->n_pids; i++) {
        clockid_t clock;
        struct timespec ts;
        if (clock_getcpuclockid(s->pids[i], &clock) == 0 && clock_gettime(clock, &ts) == 0) {
            total += (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
        }
    }
    return total;
}

/* A uniform number in (0, 1] from a xorshift state. */
static double
uniform(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return ((double)(*state >> 11) + 1.0) / 9007199254740992.0;
}

static void
sleep_until(int64_t when_ns)
{
    struct timespec ts = {when_ns / 1000000000, when_ns % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Submits the n records in bunch as one call. */
static int
submit_bunch(mpb_server *server, const bench_plan *plan, record **bunch, size_t n)
{
    const void *inputs[BUNCH];
    size_t lens[BUNCH];
    for (size_t i = 0; i < n; i++) {
        inputs[i] = plan->item;
        lens[i] = plan->item_bytes;
    }
    return mpb_server_submit_many(server, inputs, lens, n, -1, on_done, (void *const *)bunch, NULL);
}

/* Closed loop: whenever callers are free (a few at a time, not one wake-up
 * per result), each submits again. */
static long long
feed_closed(mpb_server *server, const bench_plan *plan, load_run *run, int64_t end_ns)
{
    uint64_t bunch_min = run->n_records / 8 ? run->n_records / 8 : 1;
    if (bunch_min > BUNCH) {
        bunch_min = BUNCH;
    }
    long long n = 0;
    record *bunch[BUNCH];
    while (!mpb__bench_interrupted(plan) &&
           (plan->items > 0 ? n < plan->items : mpb_now_ns() < end_ns)) {
        uint64_t free_now = wait_free(run, bunch_min);
        size_t k = free_now < BUNCH ? (size_t)free_now : BUNCH;
        if (plan->items > 0 && (long long)k > plan->items - n) {
            k = (size_t)(plan->items - n);
        }
        int64_t now = mpb_now_ns();
        for (size_t i = 0; i < k; i++) {
            bunch[i] = pop_record(run);
            bunch[i]->due_ns = now;
        }
        int rc = submit_bunch(server, plan, bunch, k);
        if (rc != 0) {
            return rc;
        }
        n += (long long)k;
    }
    return n;
}

/* Open loop: items are due at Poisson times; everything due goes in at
 * once (the feeder may lag: latency still counts from the due time). */
static long long
feed_open(mpb_server *server, const bench_plan *plan, load_run *run, double rate, int64_t start_ns,
          int64_t end_ns)
{
    uint64_t rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)start_ns;
    int64_t due = start_ns + (int64_t)(-log(uniform(&rng)) / rate * 1e9);
    long long n = 0;
    record *bunch[BUNCH];
    for (;;) {
        if (mpb__bench_interrupted(plan) || (plan->items > 0 ? n >= plan->items : due >= end_ns)) {
            return n;
        }
        int64_t now = mpb_now_ns();
        if (due > now) {
            /* sleep, never spin: a spinning feeder takes a core from the
             * workers (the timer slack is set small, see below) */
            sleep_until(due);
            now = mpb_now_ns();
        }
        size_t k = 0;
        while (k < BUNCH && due <= now &&
               (plan->items > 0 ? n + (long long)k < plan->items : due < end_ns)) {
            if (free_records(run) == 0 && (k > 0 || wait_free(run, 1) == 0)) {
                break; /* send what is ready; the next round waits for a record */
            }
            bunch[k] = pop_record(run);
            bunch[k]->due_ns = due;
            k++;
            due += (int64_t)(-log(uniform(&rng)) / rate * 1e9);
        }
        if (k > 0) {
            int rc = submit_bunch(server, plan, bunch, k);
            if (rc != 0) {
                return rc;
            }
            n += (long long)k;
        }
    }
}

int
mpb__bench_run_load(bench_server *s, const bench_plan *plan, const bench_load *load, double value,
                    bench_figures *fig, char *err, size_t err_len)
{
    memset(fig, 0, sizeof *fig);
    if (!(value > 0 && isfinite(value))) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "a load needs a finite value above 0");
    }
    mpb__histogram *hist = mpb_malloc(sizeof *hist);
    mpb__histogram_reset(hist);
    load_run run;
    run_init(&run, hist, load->kind == LOAD_CLOSED ? (uint32_t)value : RECORDS_OPEN);
    mpb_server_stats before;
    mpb_server_stats after;
    mpb_server_stats_get(s->server, &before);
    double cpu_self = cpu_seconds_self();
    double cpu_workers = worker_cpu_seconds(s);
    /* wake at an item's due time within microseconds, not the default
     * 50 us of timer slack (the open loop sleeps until each arrival) */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    int64_t start = mpb_now_ns();
    int64_t end_ns = start + (int64_t)(plan->seconds * 1e9);
    long long n = load->kind == LOAD_CLOSED
                      ? feed_closed(s->server, plan, &run, end_ns)
                      : feed_open(s->server, plan, &run, value, start, end_ns);
    int rc = n < 0 ? (int)n : drain(&run, (uint64_t)n);
    /* until the last answer; when none came, the window the load had (an
     * open loop whose first arrival falls after it sends nothing) */
    int64_t end = atomic_load(&run.last_done_ns);
    if (end < start) {
        int64_t now = mpb_now_ns();
        int whole = plan->items == 0 && !mpb__bench_interrupted(plan) && now < end_ns;
        end = whole ? end_ns : now;
    }
    mpb_server_stats_get(s->server, &after);
    if (rc != 0) {
        run_free(&run);
        free(hist);
        return mpb__set_error(err, err_len, rc, "a load of %s did not finish: %s",
                              load->kind == LOAD_CLOSED ? "closed" : "open", mpb_strerror(rc));
    }
    fig->concurrency = load->kind == LOAD_CLOSED ? value : 0;
    fig->offered_per_s = load->kind == LOAD_OPEN ? value : 0;
    fig->seconds = (double)(end - start) / 1e9;
    fig->items = (uint64_t)n;
    fig->errors = atomic_load(&run.errors);
    fig->items_per_s = fig->seconds > 0 ? (double)n / fig->seconds : 0;
    fig->p50_us = (double)mpb__histogram_quantile(hist, 0.5) / 1e3;
    fig->p90_us = (double)mpb__histogram_quantile(hist, 0.9) / 1e3;
    fig->p99_us = (double)mpb__histogram_quantile(hist, 0.99) / 1e3;
    fig->p999_us = (double)mpb__histogram_quantile(hist, 0.999) / 1e3;
    fig->max_us = (double)hist->max / 1e3;
    fig->mean_us = mpb__histogram_mean(hist) / 1e3;
    fig->batches = after.batches - before.batches;
    uint64_t batched = after.batched_items - before.batched_items;
    fig->mean_batch = fig->batches ? (double)batched / (double)fig->batches : 0;
    fig->closed_full = after.closed_full - before.closed_full;
    fig->closed_timer = after.closed_timer - before.closed_timer;
    fig->closed_drained = after.closed_drained - before.closed_drained;
    if (fig->batches > 0) {
        fig->first_wait_us =
            (double)(after.first_wait_us - before.first_wait_us) / (double)fig->batches;
        fig->compute_us = (double)(after.compute_us - before.compute_us) / (double)fig->batches;
    }
    fig->cpu_coordinator_s = cpu_seconds_self() - cpu_self;
    fig->cpu_workers_s = worker_cpu_seconds(s) - cpu_workers;
    run_free(&run);
    free(hist);
    return 0;
}

int
mpb__bench_server_start(const bench_plan *plan, const bench_point *point, bench_server **out,
                        char *err, size_t err_len)
{
    mpb_pool_override o;
    mpb_pool_override_init(&o);
    o.kind = point->kind;
    o.workers = point->workers;
    o.batch_size = point->batch_size;
    o.batch_wait_us = point->wait_us;
    mpb_servlet *root = mpb_config_servlet_with(plan->config, &o);
    mpb_server_options options;
    mpb_config_server_options(plan->config, &options);
    if (options.capacity < RECORDS_OPEN) {
        options.capacity = RECORDS_OPEN;
    }
    bench_server *s = mpb_calloc(1, sizeof *s);
    s->server = mpb_server_new(&root, &options);
    int rc = mpb_server_start(s->server, err, err_len);
    if (rc != 0) {
        mpb_server_destroy(&s->server);
        free(s);
        return rc;
    }
    mpb_worker_status w[MAX_WORKERS];
    size_t n = mpb_server_workers(s->server, w, MAX_WORKERS);
    for (size_t i = 0; i < n && i < MAX_WORKERS; i++) {
        if (w[i].pid != (int64_t)getpid()) {
            s->pids[s->n_pids++] = (pid_t)w[i].pid;
        }
    }
    /* warm up: caches, the first batches, the workers' first pages */
    bench_plan warm = *plan;
    warm.seconds = 0.3;
    warm.items = 0;
    bench_load closed = {LOAD_CLOSED, 64, 0};
    bench_figures ignored;
    rc = mpb__bench_run_load(s, &warm, &closed, 64, &ignored, err, err_len);
    if (rc != 0) {
        mpb_server_destroy(&s->server);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
mpb__bench_server_stop(bench_server **server_p)
{
    bench_server *s = *server_p;
    if (s == NULL) {
        return;
    }
    mpb_server_destroy(&s->server);
    free(s);
    *server_p = NULL;
}
