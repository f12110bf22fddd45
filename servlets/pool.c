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
 * Peers: a ROUTER socket; a peer becomes a worker by sending a valid READY
 * (launched here, or started by hand elsewhere and connected to `bind`).
 * Anything a peer sends that does not decode, or does not fit its state, is
 * a protocol error: counted, logged, answered with ERROR, never fatal.
 *
 * Failure: when a launcher reports a worker dead, every item in flight on it
 * is answered with a WorkerCrashed error (nothing is resent: the item may be
 * what killed it), and the worker is relaunched unless the pool is stopping.
 */
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

#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define MAX_ITEMS_PER_FRAME 512
#define RESTART_BURST 16
#define RESTART_WINDOW_MS 60000
#define DEATH_GRACE_MS 50
#define REUSE_CONNS_FROM 64
#define MAX_CONNS 4096

static const char *
pool_path(const mpb__pool *pool)
{
    return pool->base.path ? pool->base.path : pool->base.name;
}

/* ---- slots and the waiting ring ---- */

/* A free slot for task, or UINT32_MAX when the pool holds SLOT_MASK items. */
static uint32_t
slot_take(mpb__pool *pool, mpb__task *task)
{
    if (pool->n_free == 0) {
        size_t grow = pool->n_slots ? pool->n_slots : 256;
        if (pool->n_slots + grow > SLOT_MASK) {
            grow = SLOT_MASK - pool->n_slots;
        }
        if (grow == 0) {
            return UINT32_MAX;
        }
        pool->slots = mpb_realloc(pool->slots, (pool->n_slots + grow) * sizeof(mpb__slot));
        pool->free_slots = mpb_realloc(pool->free_slots, (pool->n_slots + grow) * sizeof(uint32_t));
        for (size_t i = 0; i < grow; i++) {
            size_t index = pool->n_slots + grow - 1 - i;
            pool->slots[index] = (mpb__slot){NULL, 0, -1};
            pool->free_slots[pool->n_free++] = (uint32_t)index;
        }
        pool->n_slots += grow;
    }
    uint32_t index = pool->free_slots[--pool->n_free];
    mpb__slot *slot = &pool->slots[index];
    slot->task = task;
    slot->seq++;
    slot->conn = -1;
    return index;
}

static uint64_t
slot_id(const mpb__pool *pool, uint32_t index)
{
    return (pool->slots[index].seq << SLOT_BITS) | index;
}

/* The slot an id names, if that id is still in flight on conn. */
static mpb__slot *
slot_lookup(mpb__pool *pool, uint64_t id, int conn)
{
    uint32_t index = (uint32_t)(id & SLOT_MASK);
    if (index >= pool->n_slots) {
        return NULL;
    }
    mpb__slot *slot = &pool->slots[index];
    if (slot->task == NULL || slot->seq != (id >> SLOT_BITS) || slot->conn != conn) {
        return NULL;
    }
    return slot;
}

static void
slot_complete(mpb__pool *pool, mpb__slot *slot, mpb_result *result)
{
    mpb__task *task = slot->task;
    if (slot->conn >= 0) {
        pool->conns[slot->conn].in_flight--;
    }
    slot->task = NULL;
    slot->conn = -1;
    pool->free_slots[pool->n_free++] = (uint32_t)(slot - pool->slots);
    task->done(task, result);
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

static uint32_t
waiting_pop(mpb__pool *pool)
{
    uint32_t index = pool->waiting[pool->wait_head];
    pool->wait_head = (pool->wait_head + 1) % pool->wait_cap;
    pool->wait_count--;
    return index;
}

static void conn_lost(mpb__pool *pool, size_t i, const char *how);

/* Connection states are read by other threads (mpb_server_workers). */
static void
set_conn_state(mpb__pool *pool, mpb__conn *conn, mpb__conn_state state)
{
    pthread_mutex_lock(pool->env.info_lock);
    conn->state = state;
    pthread_mutex_unlock(pool->env.info_lock);
}

/* ---- sending ---- */

static int
send_to(mpb__pool *pool, mpb__conn *conn)
{
    int rc = mpb__zmq_send(pool->router, conn->rid, conn->rid_len, ZMQ_SNDMORE);
    if (rc == 0) {
        rc = mpb__zmq_send(pool->router, pool->out.sbuf.data, pool->out.sbuf.size, 0);
    }
    if (rc == 0) {
        conn->last_send_ns = mpb_now_ns();
    }
    return rc;
}

static int
send_signal(mpb__pool *pool, mpb__conn *conn, mpb__frame_type type)
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
    if (mpb__zmq_send(pool->router, rid, rid_len, ZMQ_SNDMORE) == 0) {
        mpb__zmq_send(pool->router, pool->out.sbuf.data, pool->out.sbuf.size, 0);
    }
}

static void
protocol_error(mpb__pool *pool, const void *rid, size_t rid_len, const char *who,
               const char *reason)
{
    atomic_fetch_add(&pool->env.stats->protocol_errors, 1);
    mpb_log_warn("pool", "%s: protocol error from %s: %s", pool_path(pool), who, reason);
    send_error_to_peer(pool, rid, rid_len, reason);
}

static mpb__conn *
pick_worker(mpb__pool *pool)
{
    mpb__conn *best = NULL;
    uint32_t best_credit = 0;
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__conn *c = &pool->conns[i];
        if (c->state != MPB_CONN_READY || c->in_flight >= c->capacity) {
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

static mpb_result *
framework_error(const mpb__pool *pool, const mpb__conn *conn, const char *type, const char *msg)
{
    return mpb_result_new_error(type, msg, pool_path(pool), conn ? conn->name : "",
                                conn ? conn->pid : 0);
}

/* Sends up to n waiting items to conn in one frame; expired items are
 * answered with Timeout instead. */
static void
send_items(mpb__pool *pool, mpb__conn *conn, uint32_t n)
{
    int conn_index = (int)(conn - pool->conns);
    int64_t now = mpb_now_ns();
    if (n > pool->cap_outgoing) {
        pool->cap_outgoing = n;
        pool->outgoing = mpb_realloc(pool->outgoing, n * sizeof *pool->outgoing);
    }
    uint32_t *batch = pool->outgoing;
    uint32_t count = 0;
    while (count < n && pool->wait_count > 0) {
        uint32_t index = waiting_pop(pool);
        mpb__task *task = pool->slots[index].task;
        if (task->deadline_ns != 0 && task->deadline_ns <= now) {
            slot_complete(pool, &pool->slots[index],
                          framework_error(pool, NULL, MPB_ERROR_TIMEOUT,
                                          "the item's deadline passed before a worker took it"));
            continue;
        }
        batch[count++] = index;
    }
    if (count > 0) {
        mpb__wire_buf_reset(&pool->out);
        mpb__wire_pack_items_begin(&pool->out, count);
        for (uint32_t i = 0; i < count; i++) {
            mpb__task *task = pool->slots[batch[i]].task;
            uint64_t budget_us = 0;
            if (task->deadline_ns != 0) {
                budget_us = (uint64_t)((task->deadline_ns - now) / 1000);
                budget_us = budget_us ? budget_us : 1;
            }
            mpb__wire_pack_item(&pool->out, slot_id(pool, batch[i]), budget_us, task->input,
                                task->len);
            pool->slots[batch[i]].conn = conn_index;
        }
        conn->in_flight += count;
        int rc = send_to(pool, conn);
        if (rc != 0) {
            char how[128];
            snprintf(how, sizeof how, "is unreachable (%s)", mpb_strerror(rc));
            conn_lost(pool, (size_t)conn_index, how);
        }
    }
}

/* Answers Timeout for waiting items whose deadline passed (no worker had
 * credit for them in time); keeps the others in order. */
static void
expire_waiting(mpb__pool *pool, int64_t now)
{
    size_t n = pool->wait_count;
    for (size_t i = 0; i < n; i++) {
        uint32_t index = waiting_pop(pool);
        mpb__task *task = pool->slots[index].task;
        if (task->deadline_ns != 0 && task->deadline_ns <= now) {
            slot_complete(pool, &pool->slots[index],
                          framework_error(pool, NULL, MPB_ERROR_TIMEOUT,
                                          "the item's deadline passed while it waited for a "
                                          "worker"));
        } else {
            waiting_push(pool, index);
        }
    }
}

static void
pump(mpb__pool *pool)
{
    if (pool->pumping) {
        return; /* a completion inside send_items submitted here: the outer pump continues */
    }
    pool->pumping = 1;
    while (pool->wait_count > 0) {
        mpb__conn *conn = pick_worker(pool);
        if (conn == NULL) {
            break;
        }
        uint32_t credit = conn->capacity - conn->in_flight;
        uint32_t n = credit < MAX_ITEMS_PER_FRAME ? credit : MAX_ITEMS_PER_FRAME;
        send_items(pool, conn, n);
    }
    pool->pumping = 0;
}

static void
pool_submit(mpb_servlet *self, mpb__task *task)
{
    mpb__pool *pool = (mpb__pool *)self;
    if (task->len > pool->max_item_bytes) {
        char message[128];
        snprintf(message, sizeof message, "item of %zu bytes exceeds the limit of %zu bytes",
                 task->len, pool->max_item_bytes);
        task->done(task, framework_error(pool, NULL, "ItemTooLarge", message));
        return;
    }
    uint32_t slot = slot_take(pool, task);
    if (slot == UINT32_MAX) {
        task->done(task, framework_error(pool, NULL, "Overloaded",
                                         "too many items in flight in this servlet"));
        return;
    }
    waiting_push(pool, slot);
    pump(pool);
}

/* ---- receiving ---- */

/* The connection a routing id belongs to, gone ones included (ROUTER never
 * reuses an id, so a late frame from a gone worker is recognised). */
static mpb__conn *
find_conn(mpb__pool *pool, const void *rid, size_t rid_len)
{
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__conn *c = &pool->conns[i];
        if (c->rid_len == rid_len && memcmp(c->rid, rid, rid_len) == 0) {
            return c;
        }
    }
    return NULL;
}

static char *
wire_strdup(mpb__wire_str s)
{
    return mpb_strndup(s.ptr ? s.ptr : "", s.len);
}

static int
launched_index(const mpb__pool *pool, const mpb__ready *ready)
{
    /* Launched workers are named <pool>-<index>; others join as -1. */
    size_t base_len = strlen(pool->base.name);
    if (ready->name.len <= base_len + 1 ||
        memcmp(ready->name.ptr, pool->base.name, base_len) != 0 ||
        ready->name.ptr[base_len] != '-') {
        return -1;
    }
    int index = 0;
    for (size_t i = base_len + 1; i < ready->name.len; i++) {
        char c = ready->name.ptr[i];
        if (c < '0' || c > '9' || index > 100000) {
            return -1;
        }
        index = index * 10 + (c - '0');
    }
    return index < (int)pool->workers ? index : -1;
}

/* A connection entry for a new worker: a fresh one while the table is
 * small (gone entries stay, so late frames of a gone worker are known), then
 * the first gone entry with nothing in flight; NULL at MAX_CONNS live. */
static mpb__conn *
new_conn(mpb__pool *pool)
{
    if (pool->n_conns >= REUSE_CONNS_FROM) {
        for (size_t i = 0; i < pool->n_conns; i++) {
            if (pool->conns[i].state == MPB_CONN_GONE && pool->conns[i].in_flight == 0) {
                return &pool->conns[i];
            }
        }
        if (pool->n_conns >= MAX_CONNS) {
            return NULL;
        }
    }
    pthread_mutex_lock(pool->env.info_lock);
    if (pool->n_conns == pool->cap_conns) {
        pool->cap_conns = pool->cap_conns ? pool->cap_conns * 2 : 8;
        pool->conns = mpb_realloc(pool->conns, pool->cap_conns * sizeof(mpb__conn));
    }
    mpb__conn *c = &pool->conns[pool->n_conns++];
    memset(c, 0, sizeof *c);
    pthread_mutex_unlock(pool->env.info_lock);
    return c;
}

static void
handle_ready(mpb__pool *pool, const void *rid, size_t rid_len, const mpb__ready *ready)
{
    char reason[256];
    if (ready->version != MPB_PROTOCOL_VERSION) {
        snprintf(reason, sizeof reason, "worker speaks protocol %u, coordinator speaks %u",
                 ready->version, MPB_PROTOCOL_VERSION);
        protocol_error(pool, rid, rid_len, "a new peer", reason);
        return;
    }
    if (rid_len > sizeof pool->conns[0].rid || ready->capacity == 0) {
        protocol_error(pool, rid, rid_len, "a new peer", "READY with capacity 0");
        return;
    }
    mpb__conn *c = new_conn(pool);
    if (c == NULL) {
        snprintf(reason, sizeof reason, "pool already has %d workers; READY refused", MAX_CONNS);
        protocol_error(pool, rid, rid_len, "a new peer", reason);
        return;
    }
    pthread_mutex_lock(pool->env.info_lock);
    free(c->name);
    free(c->cpus);
    free(c->host);
    memset(c, 0, sizeof *c);
    memcpy(c->rid, rid, rid_len);
    c->rid_len = rid_len;
    c->name = wire_strdup(ready->name);
    c->cpus = wire_strdup(ready->cpus);
    c->host = wire_strdup(ready->host);
    c->pid = ready->pid;
    c->capacity = ready->capacity;
    c->batch_size = ready->batch_size;
    c->batch_wait_us = ready->batch_wait_us;
    c->state = pool->stopping ? MPB_CONN_LEAVING : MPB_CONN_READY;
    c->last_recv_ns = mpb_now_ns();
    c->index = launched_index(pool, ready);
    pthread_mutex_unlock(pool->env.info_lock);
    mpb_log_info("pool", "%s: worker %s (pid %lld on %s, cpus %s, capacity %u) ready",
                 pool_path(pool), c->name, (long long)c->pid, c->host, c->cpus, c->capacity);
    if (pool->stopping) {
        send_signal(pool, c, MPB_FRAME_SHUTDOWN);
    }
}

static void
handle_results(mpb__pool *pool, mpb__conn *conn, const mpb__frame *frame)
{
    int conn_index = (int)(conn - pool->conns);
    uint32_t malformed = 0;
    uint32_t unknown = 0;
    for (uint32_t i = 0; i < frame->u.list.count; i++) {
        mpb__wire_result r;
        if (mpb__wire_result_at(frame, i, &r) != 0) {
            malformed++;
            continue;
        }
        mpb__slot *slot = slot_lookup(pool, r.id, conn_index);
        if (slot == NULL) {
            unknown++;
            continue;
        }
        mpb_result *result;
        if (r.is_error) {
            char *type = wire_strdup(r.type);
            char *message = wire_strdup(r.message);
            result = mpb_result_new_error(type, message, pool_path(pool), conn->name, conn->pid);
            free(type);
            free(message);
        } else {
            result = mpb_result_new_value(r.data, r.len);
        }
        slot_complete(pool, slot, result);
        conn = &pool->conns[conn_index]; /* a completion may have grown conns */
    }
    if (malformed + unknown > 0) {
        char reason[160];
        snprintf(reason, sizeof reason,
                 "RESULTS frame with %u malformed entries and %u results for items not in "
                 "flight on this worker (dropped)",
                 malformed, unknown);
        protocol_error(pool, conn->rid, conn->rid_len, conn->name, reason);
    }
}

static void
handle_telemetry(mpb__pool *pool, const mpb__conn *conn, mpb_batch_telemetry *t)
{
    mpb__stats *stats = pool->env.stats;
    atomic_fetch_add(&stats->batches, 1);
    atomic_fetch_add(&stats->batched_items, t->size);
    atomic_fetch_add(&stats->closed[t->closed_by], 1);
    atomic_fetch_add(&stats->compute_us, t->compute_us);
    atomic_fetch_add(&stats->first_wait_us, t->first_wait_us);
    if (pool->env.on_batch != NULL) {
        t->servlet = pool_path(pool);
        t->worker = conn->name;
        t->pid = conn->pid;
        pool->env.on_batch(pool->env.on_batch_ctx, t);
    }
}

static void
handle_frame(mpb__pool *pool, const void *rid, size_t rid_len, const void *data, size_t len)
{
    mpb__frame frame;
    char reason[200];
    mpb__conn *conn = find_conn(pool, rid, rid_len);
    const char *who = conn ? conn->name : "an unknown peer";
    if (mpb__wire_decode(&pool->zone, data, len, &frame, reason, sizeof reason) != 0) {
        protocol_error(pool, rid, rid_len, who, reason);
        return;
    }
    if (conn == NULL) {
        if (frame.type == MPB_FRAME_READY) {
            handle_ready(pool, rid, rid_len, &frame.u.ready);
        } else if (frame.type == MPB_FRAME_ERROR) {
            char *message = wire_strdup(frame.u.error.message);
            if (!pool->started) {
                if (pool->start_error[0] == '\0') {
                    snprintf(pool->start_error, sizeof pool->start_error, "%s", message);
                }
            } else {
                mpb_log_err("pool", "%s: a worker failed before READY: %s", pool_path(pool),
                            message);
            }
            free(message);
        } else {
            snprintf(reason, sizeof reason, "%s frame before READY",
                     mpb__frame_type_name(frame.type));
            protocol_error(pool, rid, rid_len, who, reason);
        }
        return;
    }
    if (conn->state == MPB_CONN_GONE) {
        mpb_log_debug("pool", "%s: ignoring %s from %s, which already left", pool_path(pool),
                      mpb__frame_type_name(frame.type), conn->name);
        return;
    }
    conn->last_recv_ns = mpb_now_ns();
    switch (frame.type) {
    case MPB_FRAME_RESULTS:
        handle_results(pool, conn, &frame);
        break;
    case MPB_FRAME_TELEMETRY:
        handle_telemetry(pool, conn, &frame.u.telemetry);
        break;
    case MPB_FRAME_HEARTBEAT:
        break;
    case MPB_FRAME_BYE:
        if (conn->in_flight > 0) {
            conn_lost(pool, (size_t)(conn - pool->conns), "left (BYE) with items unanswered");
        } else {
            set_conn_state(pool, conn, MPB_CONN_GONE);
        }
        break;
    case MPB_FRAME_ERROR: {
        char *message = wire_strdup(frame.u.error.message);
        mpb_log_warn("pool", "%s: worker %s reports: %s", pool_path(pool), conn->name, message);
        free(message);
        break;
    }
    default:
        snprintf(reason, sizeof reason, "unexpected %s frame from a worker",
                 mpb__frame_type_name(frame.type));
        protocol_error(pool, rid, rid_len, who, reason);
        break;
    }
}

/* Handles every message waiting on the ROUTER socket, then feeds workers. */
static void
receive_all(mpb__pool *pool)
{
    zmq_msg_t rid;
    zmq_msg_t part;
    zmq_msg_init(&rid);
    zmq_msg_init(&part);
    while (zmq_msg_recv(&rid, pool->router, ZMQ_DONTWAIT) >= 0) {
        int more = zmq_msg_more(&rid);
        while (more && zmq_msg_recv(&part, pool->router, 0) >= 0) {
            more = zmq_msg_more(&part);
            handle_frame(pool, zmq_msg_data(&rid), zmq_msg_size(&rid), zmq_msg_data(&part),
                         zmq_msg_size(&part));
        }
    }
    zmq_msg_close(&part);
    zmq_msg_close(&rid);
    pump(pool);
}

static void
on_router(mpb__loop *loop, void *arg)
{
    (void)loop;
    receive_all(arg);
}

static void
on_heartbeat(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__pool *pool = arg;
    int64_t now = mpb_now_ns();
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__conn *c = &pool->conns[i];
        if (c->state != MPB_CONN_GONE &&
            now - c->last_send_ns >= MPB_DEFAULT_HEARTBEAT_MS * 1000000LL &&
            send_signal(pool, c, MPB_FRAME_HEARTBEAT) != 0) {
            /* The transport dropped the peer (ZMTP heartbeats or a closed
             * connection): what it holds will never come back. */
            conn_lost(pool, i, "disconnected");
        }
    }
    expire_waiting(pool, now);
    pump(pool);
}

/* Answers every item in flight on conn i with WorkerCrashed; forgets it. */
static void
conn_lost(mpb__pool *pool, size_t i, const char *how)
{
    mpb__conn *c = &pool->conns[i];
    char message[256];
    snprintf(message, sizeof message, "worker %s (pid %lld) %s", c->name, (long long)c->pid, how);
    if (c->in_flight > 0 || !pool->stopping) {
        mpb_log_err("pool", "%s: %s with %u items in flight", pool_path(pool), message,
                    c->in_flight);
    }
    set_conn_state(pool, c, MPB_CONN_GONE);
    for (size_t s = 0; s < pool->n_slots; s++) {
        if (pool->slots[s].task != NULL && pool->slots[s].conn == (int)i) {
            slot_complete(
                pool, &pool->slots[s],
                framework_error(pool, &pool->conns[i], MPB_ERROR_WORKER_CRASHED, message));
        }
    }
}

/* Starts a replacement for worker index, unless workers die too fast
 * (RESTART_BURST restarts within RESTART_WINDOW_MS): then the worker stays
 * down and the pool serves with the rest. A failed launch is retried. */
static void relaunch(mpb__pool *pool, int index);

struct mpb__death {
    mpb__death *next;
    uint64_t timer;
    mpb__pool *pool;
    int index;
    int64_t pid;
    char how[128];
};

/* Runs a moment after the exit was seen, so results the worker sent before
 * dying are read first. */
static void
on_death(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__death *d = arg;
    mpb__pool *pool = d->pool;
    for (mpb__death **p = &pool->deaths; *p != NULL; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
    receive_all(pool);
    int had_conn = 0;
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__conn *c = &pool->conns[i];
        if (c->pid == d->pid && c->index == d->index && c->state != MPB_CONN_GONE) {
            conn_lost(pool, i, d->how);
            had_conn = 1;
        }
    }
    if (!pool->stopping) {
        atomic_fetch_add(&pool->env.stats->workers_lost, 1);
        if (!had_conn) {
            mpb_log_warn("pool", "%s: worker %d (pid %lld) %s before READY", pool_path(pool),
                         d->index, (long long)d->pid, d->how);
        }
        if (d->index >= 0) {
            relaunch(pool, d->index);
        }
    }
    free(d);
    pump(pool);
}

typedef struct retry {
    mpb__pool *pool;
    int index;
} retry;

static void
on_retry(mpb__loop *loop, void *arg)
{
    (void)loop;
    retry *r = arg;
    if (!r->pool->stopping) {
        relaunch(r->pool, r->index);
    }
    r->pool->retries_pending--;
    free(r);
}

static void
relaunch(mpb__pool *pool, int index)
{
    int64_t now = mpb_now_ns();
    int64_t oldest = pool->restart_times[pool->restart_next];
    if (oldest != 0 && now - oldest < (int64_t)RESTART_WINDOW_MS * 1000000) {
        mpb_log_err("pool", "%s: %d workers restarted within %d s; worker %d stays down",
                    pool_path(pool), RESTART_BURST, RESTART_WINDOW_MS / 1000, index);
        return;
    }
    pool->restart_times[pool->restart_next] = now;
    pool->restart_next = (pool->restart_next + 1) % RESTART_BURST;
    char err[256];
    if (pool->launcher->launch(pool, (unsigned)index, err, sizeof err) != 0) {
        mpb_log_err("pool",
                    "%s: starting a replacement for worker %d failed (%s); retrying in "
                    "1 s",
                    pool_path(pool), index, err);
        retry *r = mpb_malloc(sizeof *r);
        *r = (retry){pool, index};
        pool->retries_pending++;
        mpb__loop_add_timer(pool->env.loop, 1000, 0, on_retry, r);
    }
}

void
mpb__pool_worker_died(mpb__pool *pool, int index, int64_t pid, const char *how)
{
    mpb__death *d = mpb_calloc(1, sizeof *d);
    d->pool = pool;
    d->index = index;
    d->pid = pid;
    snprintf(d->how, sizeof d->how, "%s", how);
    d->next = pool->deaths;
    pool->deaths = d;
    d->timer = mpb__loop_add_timer(pool->env.loop, DEATH_GRACE_MS, 0, on_death, d);
}

/* ---- lifecycle ---- */

static int
resolve_cpus(mpb__pool *pool, char *err, size_t err_len)
{
    const char *spec = pool->cpus_spec ? pool->cpus_spec : pool->launcher->default_cpus;
    pool->cpu_lists = mpb_calloc(pool->workers, sizeof(char *));
    if (strcmp(spec, "none") == 0) {
        return 0;
    }
    if (strcmp(spec, "auto") == 0) {
        for (unsigned i = 0; i < pool->workers; i++) {
            pool->cpu_lists[i] = mpb__affinity_auto(i, pool->workers);
        }
        return 0;
    }
    char *copy = mpb_strdup(spec);
    char *save = NULL;
    unsigned n = 0;
    int rc = 0;
    for (char *list = strtok_r(copy, ";", &save); list != NULL; list = strtok_r(NULL, ";", &save)) {
        while (*list == ' ') {
            list++;
        }
        if (n < pool->workers) {
            rc = mpb__affinity_check(list, err, err_len);
            if (rc != 0) {
                break;
            }
            pool->cpu_lists[n] = mpb_strdup(list);
        }
        n++;
    }
    free(copy);
    if (rc == 0 && n != pool->workers) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "cpus '%s' names %u CPU lists for %u workers (one list per worker, "
                            "separated by ';', or \"auto\" or \"none\")",
                            spec, n, pool->workers);
    }
    return rc;
}

static int
open_router(mpb__pool *pool, char *err, size_t err_len)
{
    pool->router = zmq_socket(pool->env.zmq_context, ZMQ_ROUTER);
    if (pool->router == NULL) {
        return mpb__set_error(err, err_len, mpb__zmq_status(), "zmq_socket(ROUTER): %s",
                              zmq_strerror(zmq_errno()));
    }
    mpb__zmq_set_int(pool->router, ZMQ_ROUTER_MANDATORY, 1);
    mpb__zmq_set_int(pool->router, ZMQ_SNDHWM, 0);
    mpb__zmq_set_int(pool->router, ZMQ_RCVHWM, 0);
    mpb__zmq_set_int(pool->router, ZMQ_LINGER, 0);
    /* Transport-level liveness, kept by libzmq's I/O thread even while a
     * worker's only thread is busy in its plugin: a peer silent for 10 s is
     * disconnected, and the next send to it fails (conn_lost). */
    mpb__zmq_set_int(pool->router, ZMQ_HEARTBEAT_IVL, MPB_DEFAULT_HEARTBEAT_MS);
    mpb__zmq_set_int(pool->router, ZMQ_HEARTBEAT_TIMEOUT, MPB_DEFAULT_COORDINATOR_TIMEOUT_MS);
    static atomic_uint counter;
    unsigned n = atomic_fetch_add(&counter, 1);
    if (pool->bind != NULL) {
        pool->endpoint = mpb_strdup(pool->bind);
    } else if (strcmp(pool->launcher->endpoint_scheme, "inproc") == 0) {
        pool->endpoint = mpb_asprintf("inproc://mpb-%d-%u", (int)getpid(), n);
    } else {
        const char *dir = getenv("MPB_RUNTIME_DIR");
        pool->ipc_path =
            mpb_asprintf("%s/mpb-%d-%u.ipc", dir && *dir ? dir : "/tmp", (int)getpid(), n);
        pool->endpoint = mpb_asprintf("ipc://%s", pool->ipc_path);
    }
    if (zmq_bind(pool->router, pool->endpoint) != 0) {
        return mpb__set_error(err, err_len, mpb__zmq_status(), "bind %s: %s", pool->endpoint,
                              zmq_strerror(zmq_errno()));
    }
    char last[256];
    size_t size = sizeof last;
    if (zmq_getsockopt(pool->router, ZMQ_LAST_ENDPOINT, last, &size) == 0 && size > 1) {
        free(pool->endpoint);
        pool->endpoint = mpb_strdup(last); /* resolves tcp://...:* to the real port */
    }
    return 0;
}

static unsigned
ready_launched(const mpb__pool *pool)
{
    unsigned ready = 0;
    for (size_t i = 0; i < pool->n_conns; i++) {
        ready += pool->conns[i].state == MPB_CONN_READY && pool->conns[i].index >= 0;
    }
    return ready;
}

static int
wait_until_ready(mpb__pool *pool, char *err, size_t err_len)
{
    int timeout_ms = pool->start_timeout_ms > 0 ? pool->start_timeout_ms : 30000;
    int64_t deadline = mpb_now_ns() + (int64_t)timeout_ms * 1000000;
    while (ready_launched(pool) < pool->workers) {
        if (pool->start_error[0] != '\0') {
            return mpb__set_error(err, err_len, MPB_EPLUGIN, "%s", pool->start_error);
        }
        int rc = pool->launcher->check_early_exit(pool, err, err_len);
        if (rc != 0) {
            /* The worker may have said why just before it left: prefer that. */
            zmq_pollitem_t item = {.socket = pool->router, .events = ZMQ_POLLIN};
            zmq_poll(&item, 1, 200);
            receive_all(pool);
            if (pool->start_error[0] != '\0') {
                return mpb__set_error(err, err_len, MPB_EPLUGIN, "%s", pool->start_error);
            }
            return rc;
        }
        if (mpb_now_ns() > deadline) {
            return mpb__set_error(err, err_len, MPB_ETIMEDOUT,
                                  "%u of %u workers ready after %d ms (start_timeout_ms)",
                                  ready_launched(pool), pool->workers, timeout_ms);
        }
        zmq_pollitem_t item = {.socket = pool->router, .events = ZMQ_POLLIN};
        zmq_poll(&item, 1, 50);
        receive_all(pool);
    }
    return 0;
}

static void pool_shutdown_conns(mpb__pool *pool);

static int
pool_start(mpb_servlet *self, const mpb__servlet_env *env, const char *parent_path, char *err,
           size_t err_len)
{
    mpb__pool *pool = (mpb__pool *)self;
    char reason[512] = "";
    mpb__servlet_set_path(self, parent_path);
    pool->env = *env;
    int rc = 0;
    if (pool->workers == 0 && pool->bind == NULL) {
        rc = mpb__set_error(reason, sizeof reason, MPB_EINVAL,
                            "workers: 0 needs a bind endpoint for workers to join");
    }
    if (rc == 0) {
        rc = resolve_cpus(pool, reason, sizeof reason);
    }
    if (rc == 0) {
        rc = open_router(pool, reason, sizeof reason);
    }
    if (rc == 0) {
        rc = pool->launcher->prepare(pool, reason, sizeof reason);
    }
    for (unsigned i = 0; rc == 0 && i < pool->workers; i++) {
        rc = pool->launcher->launch(pool, i, reason, sizeof reason);
    }
    if (rc == 0) {
        rc = wait_until_ready(pool, reason, sizeof reason);
    }
    if (rc != 0) {
        pool_shutdown_conns(pool);
        pool->launcher->kill_all(pool);
        return mpb__set_error(err, err_len, rc, "servlet %s (%s %s): %s", pool_path(pool),
                              pool->launcher->kind, pool->plugin, reason);
    }
    pool->started = 1;
    mpb__loop_add_socket(env->loop, pool->router, on_router, pool);
    pool->heartbeat_timer =
        mpb__loop_add_timer(env->loop, MPB_DEFAULT_HEARTBEAT_MS / 2, 1, on_heartbeat, pool);
    return 0;
}

static void
pool_shutdown(mpb_servlet *self)
{
    pool_shutdown_conns((mpb__pool *)self);
}

static void
pool_shutdown_conns(mpb__pool *pool)
{
    pool->stopping = 1;
    for (size_t i = 0; i < pool->n_conns; i++) {
        if (pool->conns[i].state == MPB_CONN_READY) {
            set_conn_state(pool, &pool->conns[i], MPB_CONN_LEAVING);
            send_signal(pool, &pool->conns[i], MPB_FRAME_SHUTDOWN);
        }
    }
}

static int
pool_stopped(mpb_servlet *self)
{
    mpb__pool *pool = (mpb__pool *)self;
    if (pool->deaths != NULL || pool->retries_pending > 0) {
        return 0;
    }
    for (size_t i = 0; i < pool->n_conns; i++) {
        if (pool->conns[i].state != MPB_CONN_GONE) {
            return 0;
        }
    }
    return pool->launcher->all_gone(pool);
}

static void
pool_kill(mpb_servlet *self)
{
    mpb__pool *pool = (mpb__pool *)self;
    pool_shutdown_conns(pool);
    pool->launcher->kill_all(pool);
    for (size_t i = 0; i < pool->n_conns; i++) {
        set_conn_state(pool, &pool->conns[i], MPB_CONN_GONE);
    }
    while (pool->wait_count > 0) {
        waiting_pop(pool);
    }
    for (size_t s = 0; s < pool->n_slots; s++) {
        if (pool->slots[s].task != NULL) {
            slot_complete(pool, &pool->slots[s],
                          framework_error(pool, NULL, MPB_ERROR_CANCELLED,
                                          "the server stopped before a worker answered"));
        }
    }
}

static void
free_strv(char **strv, size_t n)
{
    for (size_t i = 0; strv != NULL && i < n; i++) {
        free(strv[i]);
    }
    free(strv);
}

static void
pool_destroy(mpb_servlet *self)
{
    mpb__pool *pool = (mpb__pool *)self;
    pool->launcher->release(pool);
    while (pool->deaths != NULL) {
        mpb__death *d = pool->deaths;
        pool->deaths = d->next;
        mpb__loop_cancel_timer(pool->env.loop, d->timer);
        free(d);
    }
    if (pool->router != NULL) {
        if (pool->started) {
            mpb__loop_remove_socket(pool->env.loop, pool->router);
            mpb__loop_cancel_timer(pool->env.loop, pool->heartbeat_timer);
        }
        zmq_close(pool->router);
    }
    if (pool->ipc_path != NULL) {
        unlink(pool->ipc_path);
    }
    for (size_t i = 0; i < pool->n_conns; i++) {
        free(pool->conns[i].name);
        free(pool->conns[i].cpus);
        free(pool->conns[i].host);
    }
    size_t n_options = 0;
    while (pool->options && pool->options[n_options]) {
        n_options++;
    }
    free_strv(pool->options, n_options);
    free_strv(pool->cpu_lists, pool->cpu_lists ? pool->workers : 0);
    free(pool->conns);
    free(pool->slots);
    free(pool->free_slots);
    free(pool->waiting);
    free(pool->outgoing);
    free(pool->endpoint);
    free(pool->ipc_path);
    free(pool->plugin);
    free(pool->plugin_path);
    free(pool->cpus_spec);
    free(pool->bind);
    free(pool->worker_exe);
    free(pool->base.name);
    free(pool->base.path);
    msgpack_zone_destroy(&pool->zone);
    mpb__wire_buf_free(&pool->out);
    free(pool);
}

static void
copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void
pool_workers(mpb_servlet *self, mpb_worker_status *out, size_t max, size_t *count)
{
    mpb__pool *pool = (mpb__pool *)self;
    for (size_t i = 0; i < pool->n_conns; i++) {
        const mpb__conn *c = &pool->conns[i];
        if (c->state == MPB_CONN_GONE) {
            continue;
        }
        if (*count < max) {
            mpb_worker_status *w = &out[*count];
            copy_text(w->servlet, sizeof w->servlet, pool_path(pool));
            copy_text(w->name, sizeof w->name, c->name);
            copy_text(w->host, sizeof w->host, c->host);
            copy_text(w->cpus, sizeof w->cpus, c->cpus);
            w->pid = c->pid;
            w->capacity = c->capacity;
            w->batch_size = c->batch_size;
            w->batch_wait_us = c->batch_wait_us;
        }
        (*count)++;
    }
}

static const mpb__servlet_ops pool_ops = {
    .kind = "pool",
    .start = pool_start,
    .submit = pool_submit,
    .shutdown = pool_shutdown,
    .stopped = pool_stopped,
    .kill = pool_kill,
    .workers = pool_workers,
    .destroy = pool_destroy,
};

static char *
dup_or_null(const char *text)
{
    return text ? mpb_strdup(text) : NULL;
}

mpb_servlet *
mpb__pool_new(const mpb_pool_config *config, const mpb__pool_launcher *launcher)
{
    MPB_ASSERT(config != NULL);
    mpb__pool *pool = mpb_calloc(1, sizeof *pool);
    pool->base.ops = &pool_ops;
    pool->launcher = launcher;
    pool->plugin = mpb_strdup(config->plugin ? config->plugin : "");
    pool->base.name = mpb_strdup(config->name && *config->name ? config->name : pool->plugin);
    pool->workers = config->workers; /* 0: only workers that join through `bind` */
    pool->cpus_spec = dup_or_null(config->cpus);
    pool->batch_size = config->batch_size;
    pool->batch_wait_us = config->batch_wait_us;
    pool->capacity = config->capacity;
    size_t n_options = 0;
    while (config->options && config->options[n_options]) {
        n_options++;
    }
    pool->options = mpb_calloc(n_options + 1, sizeof(char *));
    for (size_t i = 0; i < n_options; i++) {
        pool->options[i] = mpb_strdup(config->options[i]);
    }
    pool->bind = dup_or_null(config->bind);
    pool->worker_exe = dup_or_null(config->worker_exe);
    pool->start_timeout_ms = config->start_timeout_ms;
    pool->max_item_bytes =
        config->max_item_bytes ? config->max_item_bytes : MPB_DEFAULT_MAX_ITEM_BYTES;
    msgpack_zone_init(&pool->zone, 65536);
    mpb__wire_buf_init(&pool->out);
    return &pool->base;
}

char **
mpb__pool_worker_argv(const mpb__pool *pool, const char *exe, unsigned index)
{
    size_t n_options = 0;
    while (pool->options[n_options]) {
        n_options++;
    }
    char **argv = mpb_calloc(32 + 2 * n_options, sizeof(char *));
    size_t n = 0;
    argv[n++] = mpb_strdup(exe);
    argv[n++] = mpb_asprintf("--plugin=%s", pool->plugin_path ? pool->plugin_path : pool->plugin);
    argv[n++] = mpb_asprintf("--connect=%s", pool->endpoint);
    argv[n++] = mpb_asprintf("--name=%s-%u", pool->base.name, index);
    argv[n++] = mpb_asprintf("--index=%u", index);
    argv[n++] = mpb_asprintf("--parent-pid=%d", (int)getpid());
    argv[n++] = mpb_asprintf("--max-item-bytes=%zu", pool->max_item_bytes);
    if (pool->cpu_lists[index] != NULL) {
        argv[n++] = mpb_asprintf("--cpus=%s", pool->cpu_lists[index]);
    }
    if (pool->batch_size >= 0) {
        argv[n++] = mpb_asprintf("--batch-size=%lld", pool->batch_size);
    }
    if (pool->batch_wait_us >= 0) {
        argv[n++] = mpb_asprintf("--batch-wait-us=%lld", pool->batch_wait_us);
    }
    if (pool->capacity > 0) {
        argv[n++] = mpb_asprintf("--capacity=%u", pool->capacity);
    }
    for (size_t i = 0; i < n_options; i++) {
        argv[n++] = mpb_asprintf("--option=%s", pool->options[i]);
    }
    argv[n] = NULL;
    return argv;
}

void
mpb__pool_free_argv(char **argv)
{
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) {
        free(argv[i]);
    }
    free(argv);
}

void
mpb_pool_config_init(mpb_pool_config *config)
{
    memset(config, 0, sizeof *config);
    config->workers = 1;
    config->batch_size = -1;
    config->batch_wait_us = -1;
}
