/*
 * DESIGN
 * isolate: bisect for batches that crash their worker. The worker bisects
 * a batch whose call() fails by itself (core/worker_loop.c); a batch that
 * kills the worker cannot be bisected there, so the coordinator does it.
 *
 * When a worker dies with items in flight, those items (one batch or a few:
 * the crash could be any of them) are the suspects. They go back to the
 * front of the waiting ring as two isolation groups, each half of them.
 * A group is sent only to an idle worker, which gets nothing else until it
 * has answered the group (pool.c: pick_worker, send_items), so a crash
 * while it runs the group says the culprit is in that group: the group is
 * halved again. A group that comes back answered was innocent. A group of
 * one that crashes its worker is the culprit: that item alone fails
 * WorkerCrashed. One bad item among n costs about log2(n) more crashes;
 * the worker deaths it causes are expected, so they relaunch at once
 * instead of backing off (pool_recovery.c). A plugin that crashes on
 * most items would make that a crash loop without backoff: after
 * MAX_ISOLATION_CRASHES groups in a row crash with none coming back,
 * isolation gives up, every item it holds fails WorkerCrashed, and
 * relaunches back off as for any crash loop; crashes are not isolated
 * again until some item gets a value.
 *
 * Items keep their deadlines meanwhile: one that expires while isolated is
 * answered Timeout as any other.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"
#include "mpbatch/log.h"
#include "servlets/pool.h"

#define MAX_ISOLATION_CRASHES 24 /* 2 bad items in 4096 need about that many */

/* Suspects in the order the pool took them. */
static int
by_start(const void *a, const void *b, void *pool_arg)
{
    const mpb__pool *pool = pool_arg;
    int64_t x = pool->slots[*(const uint32_t *)a].start_ns;
    int64_t y = pool->slots[*(const uint32_t *)b].start_ns;
    return (x > y) - (x < y);
}

/* Requeues suspects[from, to) at the front of the ring as group g, keeping
 * their order (requeue puts each at the very front: last one first). */
static void
requeue_group(mpb__pool *pool, const uint32_t *suspects, size_t from, size_t to, uint32_t g)
{
    for (size_t i = to; i > from; i--) {
        mpb__pool_requeue(pool, suspects[i - 1]);
        pool->slots[suspects[i - 1]].group = g;
    }
}

static uint32_t
new_group(mpb__pool *pool)
{
    pool->next_group = pool->next_group == UINT32_MAX ? 1 : pool->next_group + 1;
    return pool->next_group;
}

/* Isolation gives up: every item of a group (waiting, or on the dead
 * worker) fails with message. */
static void
give_up(mpb__pool *pool, mpb__conn *c, const char *message)
{
    char why[384];
    snprintf(why, sizeof why,
             "%s (isolate: bisect gave up after %u crashes in a row: the plugin crashes on "
             "most items)",
             message, pool->isolation_crashes);
    mpb_log_err("pool", "%s: %s", mpb__pool_path(pool), why);
    for (size_t s = 0; s < pool->n_slots; s++) {
        mpb__slot *slot = &pool->slots[s];
        if (!slot->busy || slot->task == NULL) {
            continue;
        }
        if (slot->conn == (int)(c - pool->conns)) { /* on the dead worker: done with it */
            slot->group = 0;
            mpb__pool_slot_complete(pool, slot,
                                    mpb__pool_error(pool, c, MPB_ERROR_WORKER_CRASHED, why));
        } else if (slot->conn < 0 && slot->group != 0) {
            /* waiting in the ring: answered now, its slot freed when the
             * ring reaches it (as for a cancelled item) */
            mpb__task *task = slot->task;
            slot->task = NULL;
            slot->group = 0;
            mpb__pool_deadline_remove(pool, (uint32_t)s);
            mpb__pool_answer(pool, task, slot->start_ns,
                             mpb__pool_error(pool, c, MPB_ERROR_WORKER_CRASHED, why));
        }
    }
    pool->isolation_crashes = 0;
    pool->isolation_gave_up = 1;
    c->isolating = 0;
}

int
mpb__pool_isolate_crash(mpb__pool *pool, size_t conn_index, const char *message)
{
    mpb__conn *c = &pool->conns[conn_index];
    if (pool->isolation_gave_up) {
        return 0; /* nothing has worked since the last give-up: fail as without isolate */
    }
    if (c->isolating != 0 && ++pool->isolation_crashes > MAX_ISOLATION_CRASHES) {
        give_up(pool, c, message);
        return 1;
    }
    uint32_t *suspects = mpb_malloc((c->in_flight ? c->in_flight : 1) * sizeof *suspects);
    size_t n = 0;
    for (size_t s = 0; s < pool->n_slots; s++) {
        mpb__slot *slot = &pool->slots[s];
        if (!slot->busy || slot->conn != (int)conn_index) {
            continue;
        }
        if (slot->task == NULL) { /* answered at its deadline already */
            mpb__pool_slot_complete(pool, slot, NULL);
        } else if (n < c->in_flight) {
            suspects[n++] = (uint32_t)s;
        }
    }
    if (n == 1) { /* alone on its worker when it crashed: the culprit */
        char why[320];
        snprintf(why, sizeof why, "%s (%s: isolate: bisect)", message,
                 c->isolating != 0 ? "the item crashed its worker when run alone"
                                   : "the only item its worker held when it crashed");
        mpb__pool_slot_complete(pool, &pool->slots[suspects[0]],
                                mpb__pool_error(pool, c, MPB_ERROR_WORKER_CRASHED, why));
    } else if (n > 1) {
        qsort_r(suspects, n, sizeof *suspects, by_start, pool);
        size_t half = n / 2;
        requeue_group(pool, suspects, half, n, new_group(pool));
        requeue_group(pool, suspects, 0, half, new_group(pool));
        mpb_log_warn("pool",
                     "%s: %s with %zu items in flight; running them again in halves "
                     "(isolate: bisect)",
                     mpb__pool_path(pool), message, n);
    }
    if (n > 0 && c->index >= 0 && c->isolating != 0) {
        pool->restarts[c->index].expected = 1; /* it was running a group: no backoff */
    }
    c->isolating = 0; /* gone: it came back with nothing */
    free(suspects);
    mpb__pool_pump(pool);
    return 1;
}
