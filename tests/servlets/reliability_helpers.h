/*
 * Helpers for the tests of things going wrong (reliability_test.c,
 * recovery_test.c, peers_test.c): tallies of answers, feeds of named
 * items that keep every result, and waits for workers to die or serve.
 */
#ifndef MPB_TESTS_SERVLETS_RELIABILITY_HELPERS_H
#define MPB_TESTS_SERVLETS_RELIABILITY_HELPERS_H

#include <stdatomic.h>
#include <unistd.h>

#include "support.h"

typedef struct tally {
    atomic_uint values;
    atomic_uint errors;
} tally;

/* A done function counting values and errors in a tally. */
static inline void
count_result(void *ctx, mpb_result *result)
{
    tally *t = ctx;
    if (mpb_result_is_error(result)) {
        atomic_fetch_add(&t->errors, 1);
    } else {
        atomic_fetch_add(&t->values, 1);
    }
    mpb_result_destroy(&result);
}

static inline void
wait_for_tally(tally *t, unsigned errors, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms && atomic_load(&t->errors) < errors; waited += 10) {
        usleep(10000);
    }
}

/* A stream over fixed strings, keeping a copy of every result by index. */
typedef struct named_feed {
    const char *const *items;
    size_t n;
    size_t next;
    mpb_result **results;
} named_feed;

static inline int
named_next(void *ctx, const void **data, size_t *len)
{
    named_feed *f = ctx;
    if (f->next == f->n) {
        return 0;
    }
    *data = f->items[f->next];
    *len = strlen(f->items[f->next++]);
    return 1;
}

static inline int
named_keep(void *ctx, uint64_t index, const mpb_result *result)
{
    named_feed *f = ctx;
    f->results[index] = mpb_result_copy(result);
    return 0;
}

/* The server's stats once at least `lost` workers died (up to 2 s). */
static inline mpb_server_stats
wait_for_workers_lost(mpb_server *server, uint64_t lost)
{
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    for (int tries = 0; tries < 200 && stats.workers_lost < lost; tries++) {
        usleep(10000);
        mpb_server_stats_get(server, &stats);
    }
    return stats;
}

/* 1 once a call of "fine" is answered with a value (a worker serves
 * again), trying for up to about 30 s. */
static inline int
serves_again(mpb_server *server)
{
    for (int tries = 0; tries < 300; tries++) {
        mpb_result *r = NULL;
        int ok = mpb_server_call(server, "fine", 4, 10000, &r) == 0;
        mpb_result_destroy(&r);
        if (ok) {
            return 1;
        }
        usleep(100000);
    }
    return 0;
}

#endif
