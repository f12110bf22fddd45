/*
 * DESIGN
 * The coordinator side of the worker protocol (core/worker_loop.c has the
 * other side). All of it runs on the dispatcher thread.
 *
 * Items: submit() takes a slot (id = seq << 24 | slot index, so a late or
 * duplicated result for a reused slot is recognised and dropped) and queues
 * it. pump() sends queued items to workers with credit (capacity minus in
 * flight), fullest credit first, many items per ITEMS frame. A RESULTS
 * frame completes slots and returns credit, then pump() runs again.
 *
 * Peers: workers launched here talk through a shared-memory link each,
 * others (started by hand elsewhere, connected to `bind`) through a ROUTER
 * socket (pool_transport.c); a peer becomes a worker by sending a valid
 * READY (pool_peers.c).
 * Anything a peer sends that does not decode, or does not fit its state, is
 * a protocol error: counted, logged, answered with ERROR, never fatal.
 *
 * Failure: when a launcher reports a worker dead, every item in flight on it
 * is answered with a WorkerCrashed error (nothing is resent: the item may be
 * what killed it), and the worker is relaunched unless the pool is stopping.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "core/affinity.h"
#include "core/util.h"
#include "core/worker_loop.h"
#include "core/zmq_util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "servlets/pool.h"

#define MAX_ITEMS_PER_FRAME 512

const char *
mpb__pool_path(const mpb__pool *pool)
{
    return pool->base.path ? pool->base.path : pool->base.name;
}

#define ERROR_REPLIES_PER_S 100

/* ---- slots and the waiting ring ---- */

/* A free slot for task, or UINT32_MAX when the pool holds MPB_POOL_SLOT_MASK items. */
static uint32_t
slot_take(mpb__pool *pool, mpb__task *task)
{
    if (pool->n_free == 0) {
        size_t grow = pool->n_slots ? pool->n_slots : 256;
        if (pool->n_slots + grow > MPB_POOL_SLOT_MASK) {
            grow = MPB_POOL_SLOT_MASK - pool->n_slots;
        }
        if (grow == 0) {
            return UINT32_MAX;
        }
        pool->slots = mpb_realloc(pool->slots, (pool->n_slots + grow) * sizeof(mpb__slot));
        pool->free_slots = mpb_realloc(pool->free_slots, (pool->n_slots + grow) * sizeof(uint32_t));
        for (size_t i = 0; i < grow; i++) {
            size_t index = pool->n_slots + grow - 1 - i;
            pool->slots[index] =
                (mpb__slot){.conn = -1, .shm_index = -1, .heap_pos = MPB_POOL_NO_DEADLINE};
            pool->free_slots[pool->n_free++] = (uint32_t)index;
        }
        pool->n_slots += grow;
    }
    uint32_t index = pool->free_slots[--pool->n_free];
    mpb__slot *slot = &pool->slots[index];
    slot->task = task;
    slot->seq++;
    slot->conn = -1;
    slot->busy = 1;
    slot->shm_index = -1;
    slot->retries = 0;
    slot->group = 0;
    slot->start_ns = mpb__loop_now(pool->env.loop);
    return index;
}

static uint64_t
slot_id(const mpb__pool *pool, uint32_t index)
{
    return (pool->slots[index].seq << MPB_POOL_SLOT_BITS) | index;
}

void
mpb__pool_answer(mpb__pool *pool, mpb__task *task, int64_t start_ns, mpb_result *result)
{
    if (pool->base.metrics != NULL) {
        mpb__metrics_answer(pool->base.metrics, start_ns, mpb__loop_now(pool->env.loop), result);
    }
    task->done(task, result);
}

/* The slot an id names, if that id is still in flight on conn. */
mpb__slot *
mpb__pool_slot_lookup(mpb__pool *pool, uint64_t id, int conn)
{
    uint32_t index = (uint32_t)(id & MPB_POOL_SLOT_MASK);
    if (index >= pool->n_slots) {
        return NULL;
    }
    mpb__slot *slot = &pool->slots[index];
    if (!slot->busy || slot->seq != (id >> MPB_POOL_SLOT_BITS) || slot->conn != conn) {
        return NULL;
    }
    return slot;
}

void
mpb__pool_slot_complete(mpb__pool *pool, mpb__slot *slot, mpb_result *result)
{
    mpb__task *task = slot->task;
    if (pool->isolation_gave_up && result != NULL && !mpb_result_is_error(result)) {
        pool->isolation_gave_up = 0; /* the plugin serves again: isolation may help again */
    }
    if (slot->conn >= 0) {
        pool->conns[slot->conn].in_flight--;
    }
    if (slot->shm_index >= 0) { /* the worker is done with the bytes (or gone) */
        mpb__shm_ring_free(&pool->rings[slot->shm_index], slot->shm_seq);
        slot->shm_index = -1;
    }
    if (slot->heap_pos != MPB_POOL_NO_DEADLINE) {
        mpb__pool_deadline_remove(pool, (uint32_t)(slot - pool->slots));
    }
    slot->task = NULL;
    slot->conn = -1;
    slot->busy = 0;
    pool->free_slots[pool->n_free++] = (uint32_t)(slot - pool->slots);
    if (task != NULL) {
        mpb__pool_answer(pool, task, slot->start_ns, result);
    } else {
        mpb_result_destroy(&result); /* answered at its deadline already */
    }
}

static void
waiting_push(mpb__pool *pool, uint32_t index)
{
    if (pool->wait_count == pool->wait_cap) {
        size_t cap = pool->wait_cap ? pool->wait_cap * 2 : 256;
        uint32_t *ring = mpb_malloc(cap * sizeof *ring);
        for (size_t i = 0; i < pool->wait_count; i++) {
            ring[i] = pool->waiting[(pool->wait_head + i) % pool->wait_cap];
        }
        free(pool->waiting);
        pool->waiting = ring;
        pool->wait_cap = cap;
        pool->wait_head = 0;
    }
    pool->waiting[(pool->wait_head + pool->wait_count++) % pool->wait_cap] = index;
}

uint32_t
mpb__pool_waiting_pop(mpb__pool *pool)
{
    uint32_t index = pool->waiting[pool->wait_head];
    pool->wait_head = (pool->wait_head + 1) % pool->wait_cap;
    pool->wait_count--;
    return index;
}

void
mpb__pool_requeue(mpb__pool *pool, uint32_t index)
{
    mpb__slot *slot = &pool->slots[index];
    if (slot->conn >= 0) {
        pool->conns[slot->conn].in_flight--;
    }
    if (slot->shm_index >= 0) { /* its bytes were in the failed worker's ring */
        mpb__shm_ring_free(&pool->rings[slot->shm_index], slot->shm_seq);
        slot->shm_index = -1;
    }
    slot->conn = -1;
    slot->seq++;
    slot->retries++;
    slot->task->token = slot_id(pool, index);
    if (pool->wait_count == pool->wait_cap) {
        waiting_push(pool, index); /* grows the ring; then move it to the front */
        pool->wait_count--;
    }
    pool->wait_head = (pool->wait_head + pool->wait_cap - 1) % pool->wait_cap;
    pool->waiting[pool->wait_head] = index;
    pool->wait_count++;
}

/* Connection states are read by other threads (mpb_server_workers). */
void
mpb__pool_set_conn_state(mpb__pool *pool, mpb__conn *conn, mpb__conn_state state)
{
    pthread_mutex_lock(pool->env.info_lock);
    conn->state = state;
    pthread_mutex_unlock(pool->env.info_lock);
}

/* ---- sending ---- */

static int
send_to(mpb__pool *pool, mpb__conn *conn)
{
    int rc = mpb__pool_send_out(pool, conn->rid, conn->rid_len);
    if (rc == 0) {
        conn->last_send_ns = mpb_now_ns();
    }
    return rc;
}

int
mpb__pool_send_signal(mpb__pool *pool, mpb__conn *conn, mpb__frame_type type)
{
    mpb__wire_buf_reset(&pool->out);
    mpb__wire_pack_signal(&pool->out, type);
    return send_to(pool, conn);
}

static void
send_error_to_peer(mpb__pool *pool, const void *rid, size_t rid_len, const char *message)
{
    mpb__wire_buf_reset(&pool->out);
    mpb__wire_pack_error(&pool->out, MPB_EPROTO, message);
    mpb__pool_send_out(pool, rid, rid_len);
}

int
mpb__pool_reply_budget(mpb__pool *pool, int hello)
{
    int64_t now = mpb_now_ns();
    if (hello) {
        if (now - pool->hello_window_ns >= 1000000000) {
            pool->hello_window_ns = now;
            pool->hellos_in_window = 0;
        }
        return pool->hellos_in_window++ < ERROR_REPLIES_PER_S;
    }
    if (now - pool->error_window_ns >= 1000000000) {
        if (pool->errors_suppressed > 0) {
            mpb_log_warn("pool", "%s: %llu more protocol errors (not answered, not logged)",
                         mpb__pool_path(pool), (unsigned long long)pool->errors_suppressed);
        }
        pool->error_window_ns = now;
        pool->errors_in_window = 0;
        pool->errors_suppressed = 0;
    }
    if (pool->errors_in_window >= ERROR_REPLIES_PER_S) {
        pool->errors_suppressed++;
        return 0;
    }
    pool->errors_in_window++;
    return 1;
}

void
mpb__pool_protocol_error(mpb__pool *pool, const void *rid, size_t rid_len, const char *who,
                         const char *reason)
{
    atomic_fetch_add(&pool->env.stats->protocol_errors, 1);
    /* a peer sending garbage gets ERROR replies (and log lines) at most
     * ERROR_REPLIES_PER_S a second: it cannot make us do more than that */
    if (!mpb__pool_reply_budget(pool, 0)) {
        return;
    }
    mpb_log_warn("pool", "%s: protocol error from %s: %s", mpb__pool_path(pool), who, reason);
    send_error_to_peer(pool, rid, rid_len, reason);
}

/* The ready worker with the most credit; with idle_only, one that holds
 * nothing (for an isolation group). A worker running a group takes
 * nothing else until it is done with it. */
static mpb__conn *
pick_worker(mpb__pool *pool, int idle_only)
{
    mpb__conn *best = NULL;
    uint32_t best_credit = 0;
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__conn *c = &pool->conns[i];
        if (c->in_flight == 0 && c->isolating != 0) {
            c->isolating = 0;
            pool->isolation_crashes = 0; /* a group came back whole: isolation is working */
        }
        if (c->state != MPB_CONN_READY || c->in_flight >= c->capacity || c->isolating != 0 ||
            (idle_only && c->in_flight > 0)) {
            continue;
        }
        uint32_t credit = c->capacity - c->in_flight;
        if (credit > best_credit) {
            best = c;
            best_credit = credit;
        }
    }
    return best;
}

mpb_result *
mpb__pool_error(const mpb__pool *pool, const mpb__conn *conn, const char *type, const char *msg)
{
    return mpb_result_new_error(type, msg, mpb__pool_path(pool), conn ? conn->name : "",
                                conn ? conn->pid : 0);
}

/* One ITEMS entry: a large item bound for a local worker is written into
 * that worker's shared ring and sent as [offset, len]; anything else (or
 * when the ring is full) travels inline. */
static void
pack_item(mpb__pool *pool, const mpb__conn *conn, mpb__slot *slot, uint64_t id, uint64_t budget_us)
{
    const mpb__task *task = slot->task;
    if (pool->rings != NULL && conn->index >= 0 && task->len >= MPB_SHM_MIN_BYTES) {
        mpb__shm_ring *ring = &pool->rings[conn->index];
        size_t offset;
        if (mpb__shm_ring_alloc(ring, task->len, &offset, &slot->shm_seq) == 0) {
            memcpy(ring->map + offset, task->input, task->len);
            slot->shm_index = conn->index;
            atomic_fetch_add_explicit(&pool->env.stats->shm_items, 1, memory_order_relaxed);
            mpb__wire_pack_item_shm(&pool->out, id, budget_us, offset, task->len);
            return;
        }
    }
    mpb__wire_pack_item(&pool->out, id, budget_us, task->input, task->len);
}

/* Sends up to n waiting items to conn in one frame: items of isolation
 * group `group` only (0: ungrouped items, up to the first grouped one).
 * Expired items are answered with Timeout instead. */
static void
send_items(mpb__pool *pool, mpb__conn *conn, uint32_t n, uint32_t group)
{
    int conn_index = (int)(conn - pool->conns);
    int64_t now = mpb_now_ns();
    if (n > pool->cap_outgoing) {
        pool->cap_outgoing = n;
        pool->outgoing = mpb_realloc(pool->outgoing, n * sizeof *pool->outgoing);
    }
    uint32_t *batch = pool->outgoing;
    uint32_t count = 0;
    while (count < n && pool->wait_count > 0 &&
           pool->slots[pool->waiting[pool->wait_head]].group == group) {
        uint32_t index = mpb__pool_waiting_pop(pool);
        mpb__task *task = pool->slots[index].task;
        if (task == NULL) {
            mpb__pool_slot_complete(pool, &pool->slots[index], NULL); /* cancelled */
            continue;
        }
        if (task->deadline_ns != 0 && task->deadline_ns <= now) {
            /* done() may cancel tasks of other servlets, never one in batch */
            mpb__pool_slot_complete(
                pool, &pool->slots[index],
                mpb__pool_error(pool, NULL, MPB_ERROR_TIMEOUT,
                                "the item's deadline passed before a worker took it"));
            continue;
        }
        batch[count++] = index;
    }
    if (count > 0) {
        mpb__wire_buf_reset(&pool->out);
        mpb__wire_pack_items_begin_backlog(&pool->out, count);
        for (uint32_t i = 0; i < count; i++) {
            mpb__task *task = pool->slots[batch[i]].task;
            uint64_t budget_us = 0;
            if (task->deadline_ns != 0) {
                budget_us = (uint64_t)((task->deadline_ns - now) / 1000);
                budget_us = budget_us ? budget_us : 1;
            }
            pack_item(pool, conn, &pool->slots[batch[i]], slot_id(pool, batch[i]), budget_us);
            pool->slots[batch[i]].conn = conn_index;
        }
        /* what still waits here for credit: a worker that waits for its
         * batch to fill (batch_wait_us: auto) knows more is coming */
        mpb__wire_pack_items_end_backlog(&pool->out, pool->wait_count, conn->values_read);
        if (conn->in_flight == 0) {
            conn->busy_since_ns = now; /* from idle to busy: its batch clock starts */
        }
        conn->in_flight += count;
        int rc = send_to(pool, conn);
        if (rc != 0) {
            char how[128];
            snprintf(how, sizeof how, "is unreachable (%s)", mpb_strerror(rc));
            mpb__pool_conn_lost(pool, (size_t)conn_index, how);
        }
    }
}

void
mpb__pool_pump(mpb__pool *pool)
{
    if (pool->pumping) {
        return; /* a completion inside send_items submitted here: the outer pump continues */
    }
    pool->pumping = 1;
    while (pool->wait_count > 0) {
        /* an isolation group goes alone to an idle worker; what queues
         * behind it waits for one (isolation is rare and short) */
        uint32_t group = pool->slots[pool->waiting[pool->wait_head]].group;
        mpb__conn *conn = pick_worker(pool, group != 0);
        if (conn == NULL) {
            break;
        }
        uint32_t credit = conn->capacity - conn->in_flight;
        uint32_t n = credit < MAX_ITEMS_PER_FRAME ? credit : MAX_ITEMS_PER_FRAME;
        send_items(pool, conn, n, group);
        conn->isolating = conn->in_flight > 0 ? group : 0;
    }
    pool->pumping = 0;
}

static void
pump_at_round_end(mpb__waker *waker)
{
    mpb__pool *pool = (mpb__pool *)((char *)waker - offsetof(mpb__pool, pump_waker));
    pool->pump_armed = 0;
    mpb__pool_pump(pool);
}

void
mpb__pool_submit(mpb_servlet *self, mpb__task *task)
{
    mpb__pool *pool = (mpb__pool *)self;
    if (task->len > pool->max_item_bytes) {
        char message[128];
        snprintf(message, sizeof message, "item of %zu bytes exceeds the limit of %zu bytes",
                 task->len, pool->max_item_bytes);
        mpb__pool_answer(pool, task, mpb__loop_now(pool->env.loop),
                         mpb__pool_error(pool, NULL, "ItemTooLarge", message));
        return;
    }
    if (pool->unavailable) {
        char message[320];
        snprintf(message, sizeof message, "no live worker for over %d ms%s%s",
                 pool->unavailable_timeout_ms, pool->last_exit[0] ? "; last: " : "",
                 pool->last_exit);
        mpb__pool_answer(pool, task, mpb__loop_now(pool->env.loop),
                         mpb__pool_error(pool, NULL, MPB_ERROR_UNAVAILABLE_SERVLET, message));
        return;
    }
    uint32_t slot = slot_take(pool, task);
    if (slot == UINT32_MAX) {
        mpb__pool_answer(
            pool, task, mpb__loop_now(pool->env.loop),
            mpb__pool_error(pool, NULL, "Overloaded", "too many items in flight in this servlet"));
        return;
    }
    task->token = slot_id(pool, slot);
    if (task->deadline_ns != 0) {
        mpb__pool_deadline_add(pool, slot, task->deadline_ns);
    }
    waiting_push(pool, slot);
    /* Sent at the end of the round, with every other item submitted in it:
     * a round that submits 200 items sends frames of many, not 200 of one. */
    if (!pool->pump_armed) {
        pool->pump_armed = 1;
        pool->pump_waker.wake = pump_at_round_end;
        pool->env.defer(pool->env.defer_ctx, &pool->pump_waker);
    }
}

/* A task still waiting for credit is answered Cancelled at once; its slot
 * stays taken (a tombstone in the waiting ring) until the ring reaches it.
 * A task a worker already holds runs on; its result comes as usual. */
void
mpb__pool_cancel(mpb_servlet *self, mpb__task *task)
{
    mpb__pool *pool = (mpb__pool *)self;
    mpb__slot *slot = mpb__pool_slot_lookup(pool, task->token, -1);
    if (slot == NULL || slot->task != task) {
        return;
    }
    slot->task = NULL;
    mpb__pool_deadline_remove(pool, (uint32_t)(slot - pool->slots));
    mpb__pool_answer(
        pool, task, slot->start_ns,
        mpb__pool_error(pool, NULL, MPB_ERROR_CANCELLED, "withdrawn before a worker took it"));
}
