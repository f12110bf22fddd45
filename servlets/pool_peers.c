/*
 * DESIGN
 * The pool's peers (see pool.c for the item flow, pool_transport.c for
 * how frames arrive, pool_recovery.c for deaths and relaunches): what
 * their frames mean, workers joining with READY, leaving with BYE or by
 * being lost, when the items they held fail in place or, with retry, go
 * to another worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "core/affinity.h"
#include "core/plugin.h"
#include "core/result_int.h"
#include "core/util.h"
#include "core/worker_loop.h"
#include "core/zmq_util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "servlets/pool.h"

#define REUSE_CONNS_FROM 64
#define MAX_PEER_CAPACITY (1u << 20) /* items a worker may ask for in flight */
#define MAX_CONNS 4096

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

/* 1 when a worker's plugin (a name or a path; "" says nothing) is the
 * pool's: the same short name, or the name the plugin declares. */
static int
same_plugin(const mpb__pool *pool, mpb__wire_str theirs)
{
    if (theirs.len == 0) {
        return 1;
    }
    char given[256];
    char want[256];
    char *text = mpb_strndup(theirs.ptr, theirs.len);
    mpb__plugin_short_name(text, given, sizeof given);
    free(text);
    mpb__plugin_short_name(pool->plugin, want, sizeof want);
    return strcmp(given, want) == 0 ||
           (pool->declared != NULL && strcmp(given, pool->declared->name) == 0);
}

/* A peer's string fit for a log line: at most cap - 1 bytes, anything
 * but printable ASCII shown as '?'. */
static const char *
printable(mpb__wire_str s, char *out, size_t cap)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
    return out;
}

static void
refuse_plugin(mpb__pool *pool, const void *rid, size_t rid_len, mpb__wire_str theirs)
{
    char reason[512];
    char plugin[128];
    snprintf(reason, sizeof reason,
             "servlet %s runs plugin %s, and this worker runs %s: start it with --plugin %s "
             "(or without --plugin)",
             mpb__pool_path(pool), pool->plugin, printable(theirs, plugin, sizeof plugin),
             pool->plugin);
    mpb__pool_protocol_error(pool, rid, rid_len, "a joining worker", reason);
}

/* A worker started by hand asks for the servlet's settings; it gets them
 * (or why not) and the pool keeps nothing of it. */
static void
handle_hello(mpb__pool *pool, const void *rid, size_t rid_len, const mpb__hello *hello)
{
    if (hello->version != MPB_PROTOCOL_VERSION) {
        char reason[128];
        snprintf(reason, sizeof reason, "worker speaks protocol %u, coordinator speaks %u",
                 hello->version, MPB_PROTOCOL_VERSION);
        mpb__pool_protocol_error(pool, rid, rid_len, "a joining worker", reason);
        return;
    }
    if (!same_plugin(pool, hello->plugin)) {
        refuse_plugin(pool, rid, rid_len, hello->plugin);
        return;
    }
    if (!mpb__pool_reply_budget(pool, 1)) {
        return;
    }
    size_t n_options = 0;
    while (pool->options != NULL && pool->options[n_options] != NULL) {
        n_options++;
    }
    mpb__wire_buf_reset(&pool->out);
    mpb__wire_pack_settings(&pool->out, pool->plugin, pool->batch_size < 0 ? -1 : pool->batch_size,
                            pool->batch_wait_us, pool->capacity > 0 ? (int64_t)pool->capacity : -1,
                            (int64_t)pool->max_item_bytes, pool->isolate_bisect,
                            (const char *const *)pool->options, n_options);
    mpb__pool_send_out(pool, rid, rid_len);
    char name[128];
    char host[128];
    mpb_log_info("pool", "%s: sent settings to joining worker %s on %s", mpb__pool_path(pool),
                 printable(hello->name, name, sizeof name),
                 printable(hello->host, host, sizeof host));
}

static void
handle_ready(mpb__pool *pool, const void *rid, size_t rid_len, const mpb__ready *ready)
{
    char reason[256];
    if (ready->version != MPB_PROTOCOL_VERSION) {
        snprintf(reason, sizeof reason, "worker speaks protocol %u, coordinator speaks %u",
                 ready->version, MPB_PROTOCOL_VERSION);
        mpb__pool_protocol_error(pool, rid, rid_len, "a new peer", reason);
        return;
    }
    if (!same_plugin(pool, ready->plugin)) {
        refuse_plugin(pool, rid, rid_len, ready->plugin);
        return;
    }
    if (rid_len > sizeof pool->conns[0].rid || ready->capacity == 0 ||
        ready->capacity > MAX_PEER_CAPACITY) {
        snprintf(reason, sizeof reason, "READY with capacity %u (1 to %u)", ready->capacity,
                 MAX_PEER_CAPACITY);
        mpb__pool_protocol_error(pool, rid, rid_len, "a new peer", reason);
        return;
    }
    mpb__conn *c = new_conn(pool);
    if (c == NULL) {
        snprintf(reason, sizeof reason, "pool already has %d workers; READY refused", MAX_CONNS);
        mpb__pool_protocol_error(pool, rid, rid_len, "a new peer", reason);
        return;
    }
    pthread_mutex_lock(pool->env.info_lock);
    free(c->name);
    free(c->cpus);
    free(c->host);
    free(c->marks);
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
                 mpb__pool_path(pool), c->name, (long long)c->pid, c->host, c->cpus, c->capacity);
    if (pool->stopping) {
        mpb__pool_send_signal(pool, c, MPB_FRAME_SHUTDOWN);
    }
    mpb__pool_check_available(pool);
}

/* The batches conn announced just before a RESULTS frame of count
 * results, if their sizes add up to it (else the results rode in none). */
static size_t
batch_marks_for(const mpb__conn *conn, uint32_t count)
{
    uint64_t total = 0;
    for (size_t i = 0; i < conn->n_marks; i++) {
        total += conn->marks[i].size;
    }
    return total == count ? conn->n_marks : 0;
}

static void
handle_results(mpb__pool *pool, mpb__conn *conn, const mpb__frame *frame)
{
    int conn_index = (int)(conn - pool->conns);
    uint32_t malformed = 0;
    uint32_t unknown = 0;
    /* the marks move out of conn: a completion may grow pool->conns */
    mpb__batch_mark *marks = conn->marks;
    size_t n_marks = batch_marks_for(conn, frame->u.list.count);
    size_t cap_marks = conn->cap_marks;
    conn->marks = NULL;
    conn->n_marks = conn->cap_marks = 0;
    size_t mark = 0;
    uint32_t left_in_mark = n_marks ? marks[0].size : 0;
    for (uint32_t i = 0; i < frame->u.list.count; i++) {
        uint32_t batch = 0;
        if (n_marks > 0) {
            while (left_in_mark == 0 && mark + 1 < n_marks) {
                left_in_mark = marks[++mark].size;
            }
            batch = marks[mark].seq;
            left_in_mark--;
        }
        mpb__wire_result r;
        if (mpb__wire_result_at(frame, i, &r) != 0) {
            malformed++;
            continue;
        }
        if (r.in_shm) {
            /* read (or not) now: either way the worker may reuse the span */
            conn->values_read++;
            const mpb__shm_ring *ring =
                pool->vrings && conn->index >= 0 ? &pool->vrings[conn->index] : NULL;
            if (ring == NULL || r.shm_offset > ring->size || r.len > ring->size - r.shm_offset) {
                r.is_error = 1; /* its item is answered, not left in flight */
                r.type = (mpb__wire_str){MPB_ERROR_PROTOCOL, strlen(MPB_ERROR_PROTOCOL)};
                r.message = (mpb__wire_str){"value outside the worker's value ring", 37};
                malformed++;
            } else {
                r.data = ring->map + r.shm_offset;
                atomic_fetch_add_explicit(&pool->env.stats->shm_values, 1, memory_order_relaxed);
            }
        }
        mpb__slot *slot = mpb__pool_slot_lookup(pool, r.id, conn_index);
        if (slot == NULL) {
            unknown++;
            continue;
        }
        mpb_result *result;
        if (r.is_error) {
            char *type = wire_strdup(r.type);
            char *message = wire_strdup(r.message);
            result =
                mpb_result_new_error(type, message, mpb__pool_path(pool), conn->name, conn->pid);
            free(type);
            free(message);
        } else {
            if (r.len > pool->max_item_bytes) { /* checked before anything is allocated */
                r.is_error = 1;
                malformed++;
            }
            result = r.is_error ? mpb_result_new_error(MPB_ERROR_PROTOCOL,
                                                       "the worker's value exceeds max_item_bytes",
                                                       mpb__pool_path(pool), conn->name, conn->pid)
                                : mpb_result_new_value(r.data, r.len);
        }
        mpb__result_set_origin(result, mpb__pool_path(pool), batch);
        mpb__pool_slot_complete(pool, slot, result);
        conn = &pool->conns[conn_index]; /* a completion may have grown conns */
    }
    conn = &pool->conns[conn_index];
    if (conn->marks == NULL) { /* give the array back for the next message */
        conn->marks = marks;
        conn->cap_marks = cap_marks;
    } else {
        free(marks);
    }
    if (malformed + unknown > 0) {
        char reason[160];
        snprintf(reason, sizeof reason,
                 "RESULTS frame with %u malformed entries and %u results for items not in "
                 "flight on this worker (dropped)",
                 malformed, unknown);
        mpb__pool_protocol_error(pool, conn->rid, conn->rid_len, conn->name, reason);
    }
}

static void
handle_telemetry(mpb__pool *pool, mpb__conn *conn, mpb_batch_telemetry *t)
{
    mpb__stats *stats = pool->env.stats;
    atomic_fetch_add(&stats->batches, 1);
    atomic_fetch_add(&stats->batched_items, t->size);
    atomic_fetch_add(&stats->closed[t->closed_by], 1);
    atomic_fetch_add(&stats->compute_us, t->compute_us);
    atomic_fetch_add(&stats->first_wait_us, t->first_wait_us);
    mpb__metrics_batch(pool->base.metrics, t);
    t->seq = ++pool->batch_seq;
    if (conn->n_marks == conn->cap_marks) {
        conn->cap_marks = conn->cap_marks ? conn->cap_marks * 2 : 16;
        conn->marks = mpb_realloc(conn->marks, conn->cap_marks * sizeof *conn->marks);
    }
    conn->marks[conn->n_marks++] = (mpb__batch_mark){t->size, t->seq};
    if (pool->env.on_batch != NULL) {
        t->servlet = mpb__pool_path(pool);
        t->worker = conn->name;
        t->pid = conn->pid;
        pool->env.on_batch(pool->env.on_batch_ctx, t);
    }
}

void
mpb__pool_handle_frame(mpb__pool *pool, const void *rid, size_t rid_len, const void *data,
                       size_t len)
{
    mpb__frame frame;
    char reason[200];
    mpb__conn *conn = find_conn(pool, rid, rid_len);
    const char *who = conn ? conn->name : "an unknown peer";
    if (mpb__wire_decode(&pool->zone, data, len, &frame, reason, sizeof reason) != 0) {
        mpb__pool_protocol_error(pool, rid, rid_len, who, reason);
        return;
    }
    if (conn == NULL) {
        if (frame.type == MPB_FRAME_READY) {
            handle_ready(pool, rid, rid_len, &frame.u.ready);
        } else if (frame.type == MPB_FRAME_HELLO) {
            handle_hello(pool, rid, rid_len, &frame.u.hello);
        } else if (frame.type == MPB_FRAME_ERROR) {
            char *message = wire_strdup(frame.u.error.message);
            if (!pool->started) {
                if (pool->start_error[0] == '\0') {
                    snprintf(pool->start_error, sizeof pool->start_error, "%s", message);
                }
            } else {
                mpb_log_err("pool", "%s: a worker failed before READY: %s", mpb__pool_path(pool),
                            message);
            }
            free(message);
        } else {
            snprintf(reason, sizeof reason, "%s frame before READY",
                     mpb__frame_type_name(frame.type));
            mpb__pool_protocol_error(pool, rid, rid_len, who, reason);
        }
        return;
    }
    if (conn->state == MPB_CONN_GONE) {
        mpb_log_debug("pool", "%s: ignoring %s from %s, which already left", mpb__pool_path(pool),
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
            mpb__pool_conn_lost(pool, (size_t)(conn - pool->conns),
                                "left (BYE) with items unanswered");
        } else {
            mpb__pool_set_conn_state(pool, conn, MPB_CONN_GONE);
        }
        mpb__pool_check_available(pool);
        break;
    case MPB_FRAME_ERROR: {
        char *message = wire_strdup(frame.u.error.message);
        mpb_log_warn("pool", "%s: worker %s reports: %s", mpb__pool_path(pool), conn->name,
                     message);
        free(message);
        break;
    }
    default:
        snprintf(reason, sizeof reason, "unexpected %s frame from a worker",
                 mpb__frame_type_name(frame.type));
        mpb__pool_protocol_error(pool, rid, rid_len, who, reason);
        break;
    }
}

void
mpb__pool_on_heartbeat(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__pool *pool = arg;
    int64_t now = mpb_now_ns();
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__conn *c = &pool->conns[i];
        if (c->state != MPB_CONN_GONE &&
            now - c->last_send_ns >= MPB_DEFAULT_HEARTBEAT_MS * 1000000LL &&
            mpb__pool_send_signal(pool, c, MPB_FRAME_HEARTBEAT) != 0) {
            /* The transport dropped the peer (ZMTP heartbeats or a closed
             * connection): what it holds will never come back. */
            mpb__pool_conn_lost(pool, i, "disconnected");
        }
    }
    mpb__pool_check_available(pool);
    mpb__pool_pump(pool);
}

/* Answers every item in flight on conn i with WorkerCrashed; forgets it. */
static void conn_fail(mpb__pool *pool, size_t i, const char *type, const char *how, int died);

void
mpb__pool_conn_lost(mpb__pool *pool, size_t i, const char *how)
{
    conn_fail(pool, i, MPB_ERROR_WORKER_CRASHED, how, 0);
}

void
mpb__pool_conn_died(mpb__pool *pool, size_t i, const char *how)
{
    conn_fail(pool, i, MPB_ERROR_WORKER_CRASHED, how, 1);
}

void
mpb__pool_conn_fail(mpb__pool *pool, size_t i, const char *type, const char *how)
{
    conn_fail(pool, i, type, how, 0);
}

/* Fails (or retries, or with died and isolate: bisect, isolates) the
 * items of worker i; died: its process is known to have died. */
static void
conn_fail(mpb__pool *pool, size_t i, const char *type, const char *how, int died)
{
    mpb__conn *c = &pool->conns[i];
    char message[256];
    snprintf(message, sizeof message, "worker %s (pid %lld) %s", c->name, (long long)c->pid, how);
    if (c->in_flight > 0 || !pool->stopping) {
        mpb_log_err("pool", "%s: %s with %u items in flight", mpb__pool_path(pool), message,
                    c->in_flight);
    }
    mpb__pool_set_conn_state(pool, c, MPB_CONN_GONE);
    if (died && pool->isolate_bisect && !pool->stopping &&
        mpb__pool_isolate_crash(pool, i, message)) {
        return;
    }
    for (size_t s = 0; s < pool->n_slots; s++) {
        mpb__slot *slot = &pool->slots[s];
        if (slot->busy && slot->conn == (int)i && slot->task != NULL && !pool->stopping &&
            slot->retries < pool->retry) {
            mpb__pool_requeue(pool, (uint32_t)s); /* another worker takes it */
            continue;
        }
        if (pool->slots[s].busy && pool->slots[s].conn == (int)i) {
            mpb__pool_slot_complete(pool, &pool->slots[s],
                                    mpb__pool_error(pool, &pool->conns[i], type, message));
        }
    }
}
