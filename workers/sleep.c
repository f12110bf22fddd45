/*
 * sleep: a model with a known cost, for batching studies. Each call costs
 * batch_cost_us + item_cost_us x items (+ a uniform random extra below
 * jitter_us); values echo the items. busy=1 spins instead of sleeping, to
 * model CPU-bound work.
 *
 * Options: see sleep_options below.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mpbatch/worker.h"

typedef struct sleep_state {
    long long batch_cost_us;
    long long item_cost_us;
    long long jitter_us;
    int busy;
    uint64_t rng;
} sleep_state;

static uint64_t
next_random(uint64_t *state)
{
    /* xorshift64: cheap, good enough for jitter */
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
spend(const sleep_state *st, int64_t us)
{
    if (us <= 0) {
        return;
    }
    if (st->busy) {
        int64_t end = now_ns() + us * 1000;
        while (now_ns() < end) {
        }
        return;
    }
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int
sleep_init(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
           size_t err_len)
{
    sleep_state *st = calloc(1, sizeof *st);
    long long seed = 0;
    if (st == NULL || mpb_options_get_int(options, "batch_cost_us", 1000, &st->batch_cost_us) ||
        mpb_options_get_int(options, "item_cost_us", 10, &st->item_cost_us) ||
        mpb_options_get_int(options, "jitter_us", 0, &st->jitter_us) ||
        mpb_options_get_bool(options, "busy", 0, &st->busy) ||
        mpb_options_get_int(options, "seed", (long long)info->index, &seed)) {
        free(st);
        snprintf(err, err_len,
                 "batch_cost_us, item_cost_us, jitter_us and seed must be integers, "
                 "busy true or false");
        return -1;
    }
    /* an hour a call at most: a batch's cost, per item times 2^20 items
     * and jitter, added in microseconds, stay far from overflow */
    const long long most = 3600LL * 1000000;
    if (st->batch_cost_us < 0 || st->batch_cost_us > most || st->item_cost_us < 0 ||
        st->item_cost_us > most || st->jitter_us < 0 || st->jitter_us > most) {
        snprintf(err, err_len,
                 "batch_cost_us, item_cost_us and jitter_us must be in 0..%lld (an hour)", most);
        free(st);
        return -1;
    }
    st->rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    st->rng = st->rng != 0 ? st->rng : 1; /* xorshift stays at 0 from 0 */
    *state = st;
    return 0;
}

static int
sleep_call(void *state, mpb_batch *batch)
{
    sleep_state *st = state;
    size_t n = mpb_batch_size(batch);
    int64_t cost = st->batch_cost_us + st->item_cost_us * (int64_t)n;
    if (st->jitter_us > 0) {
        cost += (int64_t)(next_random(&st->rng) % (uint64_t)st->jitter_us);
    }
    spend(st, cost);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const void *item = mpb_batch_item(batch, i, &len);
        mpb_batch_set_value_borrowed(batch, i, item, len);
    }
    return 0;
}

static void
sleep_cleanup(void *state)
{
    free(state);
}

static const mpb_option_def sleep_options[] = {
    {"batch_cost_us", MPB_OPTION_INT, "1000", "cost of each call, in microseconds"},
    {"item_cost_us", MPB_OPTION_INT, "10", "cost added per item of the batch, in microseconds"},
    {"jitter_us", MPB_OPTION_INT, "0", "adds a uniform random extra below this to each call"},
    {"busy", MPB_OPTION_BOOL, "false", "spin instead of sleeping, to model CPU-bound work"},
    {"seed", MPB_OPTION_INT, NULL, "seed of the jitter (default: the worker's index)"},
    {0},
};

/* No tensors declared: values are the items, so whatever type comes in goes
 * out (the HTTP front end answers in the request's datatype). */
MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "sleep",
    .init = sleep_init,
    .call = sleep_call,
    .cleanup = sleep_cleanup,
    .batch_size = 32,
    .options = sleep_options,
    .doc = "echoes items after a known cost per call and per item, for batching studies",
};
