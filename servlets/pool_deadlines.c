/*
 * DESIGN
 * Item deadlines of a pool: a binary min-heap of (deadline, slot) for every
 * item that has one, whether it waits for credit or a worker holds it. The
 * slot knows its place in the heap, so an item answered before its
 * deadline leaves the heap at once (O(log n)) and the heap holds only what
 * is still pending. One loop timer is armed for the earliest deadline;
 * when it fires, every item due is answered Timeout, and the timer is
 * armed for the next. Expiry costs O(log n) per item and nothing for items
 * without a deadline, and fires within the loop's millisecond timer
 * resolution of the deadline, however many items are in flight.
 *
 * An item that expires while waiting leaves a tombstone in the waiting
 * ring (its task is gone, the slot stays taken until the ring reaches
 * it); one a worker holds keeps its slot, and so its credit, until the
 * worker's late answer arrives and is dropped.
 */
#include <stdlib.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "servlets/pool.h"

static void arm(mpb__pool *pool);

static void
place(mpb__pool *pool, size_t pos, mpb__deadline entry)
{
    pool->deadlines[pos] = entry;
    pool->slots[entry.slot].heap_pos = (uint32_t)pos;
}

static void
sift_up(mpb__pool *pool, size_t pos)
{
    mpb__deadline entry = pool->deadlines[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (pool->deadlines[parent].at_ns <= entry.at_ns) {
            break;
        }
        place(pool, pos, pool->deadlines[parent]);
        pos = parent;
    }
    place(pool, pos, entry);
}

static void
sift_down(mpb__pool *pool, size_t pos)
{
    mpb__deadline entry = pool->deadlines[pos];
    size_t n = pool->n_deadlines;
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n && pool->deadlines[child + 1].at_ns < pool->deadlines[child].at_ns) {
            child++;
        }
        if (pool->deadlines[child].at_ns >= entry.at_ns) {
            break;
        }
        place(pool, pos, pool->deadlines[child]);
        pos = child;
    }
    place(pool, pos, entry);
}

void
mpb__pool_deadline_add(mpb__pool *pool, uint32_t slot, int64_t at_ns)
{
    if (pool->n_deadlines == pool->cap_deadlines) {
        pool->cap_deadlines = pool->cap_deadlines ? pool->cap_deadlines * 2 : 256;
        pool->deadlines =
            mpb_realloc(pool->deadlines, pool->cap_deadlines * sizeof *pool->deadlines);
    }
    size_t pos = pool->n_deadlines++;
    pool->deadlines[pos] = (mpb__deadline){at_ns, slot};
    sift_up(pool, pos);
    if (pool->slots[slot].heap_pos == 0) {
        arm(pool); /* the earliest now */
    }
}

void
mpb__pool_deadline_remove(mpb__pool *pool, uint32_t slot)
{
    uint32_t pos = pool->slots[slot].heap_pos;
    if (pos == MPB_POOL_NO_DEADLINE) {
        return;
    }
    pool->slots[slot].heap_pos = MPB_POOL_NO_DEADLINE;
    mpb__deadline last = pool->deadlines[--pool->n_deadlines];
    if (pos == pool->n_deadlines) {
        return; /* it was the last */
    }
    place(pool, pos, last);
    if (pos > 0 && pool->deadlines[(pos - 1) / 2].at_ns > last.at_ns) {
        sift_up(pool, pos);
    } else {
        sift_down(pool, pos);
    }
    /* a later top only makes the armed timer early: on_due re-arms */
}

static void
on_due(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__pool *pool = arg;
    pool->deadline_armed = 0;
    int64_t now = mpb_now_ns();
    while (pool->n_deadlines > 0 && pool->deadlines[0].at_ns <= now) {
        uint32_t index = pool->deadlines[0].slot;
        mpb__pool_deadline_remove(pool, index);
        mpb__slot *slot = &pool->slots[index];
        mpb__task *task = slot->task;
        if (!slot->busy || task == NULL) {
            continue;
        }
        slot->task = NULL; /* the slot stays taken: a tombstone, or the worker's */
        const mpb__conn *conn = slot->conn >= 0 ? &pool->conns[slot->conn] : NULL;
        mpb__pool_answer(pool, task, slot->start_ns,
                         mpb__pool_error(pool, conn, MPB_ERROR_TIMEOUT,
                                         conn ? "no answer by the item's deadline"
                                              : "the item's deadline passed while it waited "
                                                "for a worker"));
    }
    arm(pool);
}

/* Arms the timer for the earliest deadline, unless it already is. */
static void
arm(mpb__pool *pool)
{
    if (pool->n_deadlines == 0 || pool->env.loop == NULL) {
        return;
    }
    int64_t due = pool->deadlines[0].at_ns;
    if (pool->deadline_armed) {
        if (pool->deadline_due <= due) {
            return;
        }
        mpb__loop_cancel_timer(pool->env.loop, pool->deadline_timer);
    }
    int64_t ms = (due - mpb_now_ns() + 999999) / 1000000;
    pool->deadline_armed = 1;
    pool->deadline_due = due;
    pool->deadline_timer = mpb__loop_add_timer(pool->env.loop, ms > 0 ? ms : 0, 0, on_due, pool);
}

void
mpb__pool_deadlines_free(mpb__pool *pool)
{
    if (pool->deadline_armed && pool->env.loop != NULL) {
        mpb__loop_cancel_timer(pool->env.loop, pool->deadline_timer);
        pool->deadline_armed = 0;
    }
    free(pool->deadlines);
    pool->deadlines = NULL;
    pool->n_deadlines = pool->cap_deadlines = 0;
}
