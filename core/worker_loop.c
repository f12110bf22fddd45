/*
 * DESIGN
 * One thread owns one DEALER socket connected to the coordinator's ROUTER.
 *
 *   worker                         coordinator
 *   READY(name, pid, cpus, capacity) ->
 *                                <- ITEMS (up to the credit: capacity - in flight)
 *   TELEMETRY... + RESULTS       ->      (frees credit; one message per batch,
 *                                        or per several while more are queued)
 *   HEARTBEAT                   <->      (when nothing else was sent for a while)
 *                                <- SHUTDOWN
 *   BYE                          ->
 *
 * Batching is greedy: block for the first item, then keep receiving until
 * batch_size items are queued or batch_wait_us has passed since the first
 * one arrived (0: take only what is there). Waits use the socket's ZMQ_FD
 * (or the link's eventfd) with ppoll, so timers have microsecond
 * resolution rather than zmq_poll's milliseconds. Items that cannot reach call() (preprocess
 * failed, deadline passed, malformed entry) are answered with an error result at once. The loop
 * leaves on SHUTDOWN (after answering everything queued), when the coordinator stays silent past
 * its timeout, or when the parent dies.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "core/batch.h"
#include "core/item_queue.h"
#include "core/util.h"
#include "core/wire.h"
#include "core/worker_int.h"
#include "core/worker_loop.h"
#include "core/zmq_util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "mpbatch/result.h"

int
mpb__worker_send_frame(worker *w, const mpb__wire_buf *buf, int flags)
{
    int rc = 0;
    if (w->link != NULL) {
        /* each part its own message: the coordinator reads parts as frames */
        mpb__link_send(w->link, buf->sbuf.data, buf->sbuf.size);
    } else {
        rc = mpb__zmq_send(w->socket, buf->sbuf.data, buf->sbuf.size, flags);
    }
    if (rc == 0 && !(flags & ZMQ_SNDMORE)) {
        w->last_send_ns = mpb_now_ns();
    }
    return rc;
}

void
mpb__worker_send_error(worker *w, int code, const char *message)
{
    mpb__wire_buf_reset(&w->telemetry);
    mpb__wire_pack_error(&w->telemetry, code, message);
    mpb__worker_send_frame(w, &w->telemetry, 0);
}

static void
send_signal(worker *w, mpb__frame_type type)
{
    mpb__wire_buf_reset(&w->telemetry);
    mpb__wire_pack_signal(&w->telemetry, type);
    mpb__worker_send_frame(w, &w->telemetry, 0);
}

static void
add_early_error(worker *w, uint64_t id, const char *type, const char *message)
{
    if (w->n_errors == w->cap_errors) {
        w->cap_errors = w->cap_errors ? w->cap_errors * 2 : 16;
        w->errors = mpb_realloc(w->errors, w->cap_errors * sizeof *w->errors);
    }
    w->errors[w->n_errors++] = (early_error){id, mpb_strdup(type), mpb_strdup(message)};
}

static void
flush_early_errors(worker *w)
{
    if (w->n_errors == 0) {
        return;
    }
    mpb__wire_buf_reset(&w->results);
    mpb__wire_pack_results_begin(&w->results, (uint32_t)w->n_errors);
    for (size_t i = 0; i < w->n_errors; i++) {
        mpb__wire_pack_result_error(&w->results, w->errors[i].id, w->errors[i].type,
                                    w->errors[i].message);
        free(w->errors[i].type);
        free(w->errors[i].message);
    }
    w->n_errors = 0;
    mpb__worker_send_frame(w, &w->results, 0);
}

static void
enqueue_item(worker *w, const mpb__wire_item *item, int64_t now)
{
    if (item->len > w->max_item_bytes) {
        char message[128];
        snprintf(message, sizeof message, "item of %zu bytes exceeds the worker's limit of %zu",
                 item->len, w->max_item_bytes);
        add_early_error(w, item->id, "ItemTooLarge", message);
        return;
    }
    /* a budget past what int64 nanoseconds hold is as good as none */
    int64_t deadline = 0;
    if (item->budget_us != 0) {
        deadline = item->budget_us < (uint64_t)(INT64_MAX - now) / 1000
                       ? now + (int64_t)item->budget_us * 1000
                       : INT64_MAX;
    }
    const void *data = item->data;
    if (item->in_shm) {
        /* the coordinator keeps these bytes until it has the item's result */
        if (w->shm == NULL || item->shm_offset > w->shm_bytes ||
            item->len > w->shm_bytes - item->shm_offset) {
            add_early_error(w, item->id, MPB_ERROR_PROTOCOL,
                            "item in shared memory outside the worker's mapped ring");
            return;
        }
        data = w->shm + item->shm_offset;
    }
    const mpb_worker_def *def = w->cfg->def;
    if (def->preprocess == NULL) {
        if (item->in_shm) {
            mpb__item_queue_push_borrowed(&w->queue, item->id, now, deadline, data, item->len);
        } else {
            mpb__item_queue_push(&w->queue, item->id, now, deadline, data, item->len);
        }
        return;
    }
    mpb__batch_reset(&w->prep);
    mpb__batch_add(&w->prep, data, item->len);
    int rc = def->preprocess(w->state, &w->prep);
    const mpb__batch_result *r = &w->prep.results[0];
    if (r->outcome == MPB_OUTCOME_ERROR) {
        add_early_error(w, item->id, r->type, r->message);
    } else if (w->prep.fail_type != NULL) { /* mpb_batch_fail: the item's error */
        add_early_error(w, item->id, w->prep.fail_type, w->prep.fail_message);
    } else if (rc != 0) {
        char message[64];
        snprintf(message, sizeof message, "preprocess() failed with status %d", rc);
        add_early_error(w, item->id, "PreprocessError", message);
    } else if (r->outcome == MPB_OUTCOME_VALUE) {
        mpb__item_queue_push(&w->queue, item->id, now, deadline, r->data, r->len);
    } else {
        mpb__item_queue_push(&w->queue, item->id, now, deadline, data, item->len);
    }
}

/* The coordinator has read `read` of the values sent through the value
 * ring, oldest first: their spans are free again. */
static void
give_back_values(worker *w, uint64_t read)
{
    while (w->values_freed < read && w->value_spans_count > 0) {
        mpb__shm_ring_free(&w->values, w->value_spans[w->value_spans_head]);
        w->value_spans_head = (w->value_spans_head + 1) % w->value_spans_cap;
        w->value_spans_count--;
        w->values_freed++;
    }
}

/* Packs one value: through the value ring when it is large and there is
 * room, else inline. */
static void
pack_value(worker *w, uint64_t id, const void *data, size_t len)
{
    size_t offset;
    uint64_t seq;
    if (w->has_values_ring && len >= MPB_SHM_MIN_BYTES &&
        mpb__shm_ring_alloc(&w->values, len, &offset, &seq) == 0) {
        if (w->value_spans_count == w->value_spans_cap) {
            size_t cap = w->value_spans_cap ? w->value_spans_cap * 2 : 256;
            uint64_t *spans = mpb_malloc(cap * sizeof *spans);
            for (size_t i = 0; i < w->value_spans_count; i++) {
                spans[i] = w->value_spans[(w->value_spans_head + i) % w->value_spans_cap];
            }
            free(w->value_spans);
            w->value_spans = spans;
            w->value_spans_cap = cap;
            w->value_spans_head = 0;
        }
        w->value_spans[(w->value_spans_head + w->value_spans_count++) % w->value_spans_cap] = seq;
        memcpy(w->values.map + offset, data, len);
        mpb__wire_pack_result_value_shm(&w->pending, id, offset, len);
        return;
    }
    mpb__wire_pack_result_value(&w->pending, id, data, len);
}

/* A moving average that forgets in about eight samples. */
static int64_t
smooth(int64_t average, int64_t sample)
{
    return average == 0 ? sample : (average * 7 + sample) / 8;
}

static void
handle_items(worker *w, const mpb__frame *frame)
{
    int64_t now = mpb_now_ns();
    if (frame->u.list.count > 0) {
        if (w->last_items_ns != 0) {
            w->gap_ns = smooth(w->gap_ns, (now - w->last_items_ns) / frame->u.list.count);
        }
        w->last_items_ns = now;
    }
    w->backlog = frame->u.list.backlog;
    give_back_values(w, frame->u.list.values_read);
    for (uint32_t i = 0; i < frame->u.list.count; i++) {
        mpb__wire_item item;
        int id_known;
        if (mpb__wire_item_at(frame, i, &item, &id_known) == 0) {
            enqueue_item(w, &item, now);
        } else if (id_known) {
            add_early_error(w, item.id, MPB_ERROR_PROTOCOL, "malformed item entry");
        } else {
            mpb__worker_send_error(w, MPB_EPROTO, "ITEMS entry without a readable id");
        }
    }
}

static void
handle_frame(worker *w, const void *data, size_t len)
{
    mpb__frame frame;
    char reason[160];
    if (mpb__wire_decode(&w->zone, data, len, &frame, reason, sizeof reason) != 0) {
        mpb_log_warn("worker", "protocol error from coordinator: %s", reason);
        mpb__worker_send_error(w, MPB_EPROTO, reason);
        return;
    }
    switch (frame.type) {
    case MPB_FRAME_ITEMS:
        handle_items(w, &frame);
        break;
    case MPB_FRAME_HEARTBEAT:
        break;
    case MPB_FRAME_SHUTDOWN:
        w->stopping = 1;
        break;
    case MPB_FRAME_ERROR:
        /* Never answered with ERROR (no ping-pong between two confused peers). */
        mpb_log_warn("worker", "coordinator reports: %.*s", (int)frame.u.error.message.len,
                     frame.u.error.message.ptr);
        break;
    default:
        snprintf(reason, sizeof reason, "unexpected %s frame sent to a worker",
                 mpb__frame_type_name(frame.type));
        mpb__worker_send_error(w, MPB_EPROTO, reason);
        break;
    }
}

/* Handles every message waiting on the link. A link the coordinator's
 * side broke cannot be read any more: leave as when it goes silent. */
static void
receive_from_link(worker *w)
{
    const void *data;
    size_t len;
    int rc;
    mpb__link_flush(w->link);
    while ((rc = mpb__link_recv(w->link, &data, &len)) == 1) {
        w->last_recv_ns = mpb_now_ns();
        handle_frame(w, data, len);
    }
    if (rc < 0) {
        w->link_broken = 1; /* check_liveness says so and leaves */
    }
}

/* Receives every message already waiting, without blocking. */
static void
receive_available(worker *w)
{
    if (w->link != NULL) {
        receive_from_link(w);
        return;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (;;) {
        if (zmq_msg_recv(&msg, w->socket, ZMQ_DONTWAIT) < 0) {
            if (zmq_errno() == EINTR) {
                continue;
            }
            break;
        }
        w->last_recv_ns = mpb_now_ns();
        handle_frame(w, zmq_msg_data(&msg), zmq_msg_size(&msg));
    }
    zmq_msg_close(&msg);
}

/* Waits until the socket (or link) is readable or the monotonic deadline
 * passes. */
static void
wait_readable(worker *w, int64_t deadline_ns)
{
    if (w->link != NULL) {
        mpb__link_flush(w->link);
        if (mpb__link_arm(w->link)) {
            return;
        }
        int64_t left = deadline_ns - mpb_now_ns();
        struct timespec timeout = {left > 0 ? left / 1000000000 : 0,
                                   left > 0 ? left % 1000000000 : 0};
        struct pollfd pfd = {.fd = mpb__link_wake_fd(w->link), .events = POLLIN};
        if (ppoll(&pfd, 1, &timeout, NULL) > 0) {
            mpb__link_clear(w->link);
        }
        return;
    }
    for (;;) {
        int events = 0;
        size_t size = sizeof events;
        if (zmq_getsockopt(w->socket, ZMQ_EVENTS, &events, &size) == 0 && (events & ZMQ_POLLIN)) {
            return;
        }
        int64_t left = deadline_ns - mpb_now_ns();
        if (left <= 0) {
            return;
        }
        struct timespec timeout = {left / 1000000000, left % 1000000000};
        struct pollfd pfd = {.fd = w->socket_fd, .events = POLLIN};
        if (ppoll(&pfd, 1, &timeout, NULL) == 0) {
            return;
        }
    }
}

/* How many items the next batch takes now (0: wait until *wake_at). */
static size_t
batch_decision(const worker *w, int64_t now, mpb_batch_close *reason, int64_t *wake_at)
{
    size_t queued = w->queue.count;
    if (w->batch_size == 0) {
        *reason = MPB_BATCH_CLOSED_FULL;
        return 1;
    }
    if (queued >= w->batch_size) {
        *reason = MPB_BATCH_CLOSED_FULL;
        return w->batch_size;
    }
    if (w->stopping || w->wait_ns == 0) {
        *reason = MPB_BATCH_CLOSED_DRAINED;
        return queued;
    }
    int64_t due = mpb__item_queue_peek(&w->queue)->arrived_ns + w->wait_ns;
    if (now >= due) {
        *reason = MPB_BATCH_CLOSED_TIMER;
        return queued;
    }
    if (w->auto_wait && w->backlog == 0) {
        /* Wait only when the next item is due before this batch could be
         * computed anyway; then only until it is due (twice the gap). */
        if (w->gap_ns == 0 || w->gap_ns > w->compute_ns) {
            *reason = MPB_BATCH_CLOSED_DRAINED;
            return queued;
        }
        int64_t expected = w->last_items_ns + 2 * w->gap_ns;
        if (now >= expected) {
            *reason = MPB_BATCH_CLOSED_TIMER; /* what was coming did not */
            return queued;
        }
        due = expected < due ? expected : due;
    }
    *wake_at = due;
    return 0;
}

/* Sends one TELEMETRY frame per pending batch, then every pending result
 * in one RESULTS frame, all in one message: the results are the batches'
 * items in order, so the coordinator can tell which batch each rode in. */
static void
flush_results(worker *w)
{
    if (w->n_tel == 0) {
        return;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < w->n_tel; i++) {
        mpb__wire_buf_reset(&w->telemetry);
        mpb__wire_pack_telemetry(&w->telemetry, &w->pending_tel[i]);
        rc = mpb__worker_send_frame(w, &w->telemetry, ZMQ_SNDMORE);
    }
    if (rc == 0) {
        mpb__wire_buf_reset(&w->results);
        mpb__wire_pack_results_begin(&w->results, w->n_pending);
        msgpack_sbuffer_write(&w->results.sbuf, w->pending.sbuf.data, w->pending.sbuf.size);
        mpb__worker_send_frame(w, &w->results, 0);
    }
    mpb__wire_buf_reset(&w->pending);
    w->n_pending = 0;
    w->n_tel = 0;
}

/* A batch's results wait to travel with the next batches' while more items
 * are queued (one message instead of many), but never longer than
 * RESULTS_HOLD_NS (counting the next call, as long as calls take now), never
 * past RESULTS_HOLD_MAX items or bytes, and never half of the worker's
 * credit. Held across a slow call, results would leave the coordinator
 * without news for two calls, and its batch_timeout_ms would take a
 * healthy worker for a hung one. */
#define RESULTS_HOLD_NS (500 * 1000)
#define RESULTS_HOLD_MAX 1024
#define RESULTS_HOLD_BYTES ((size_t)1 << 20)

static void
queue_batch_results(worker *w, size_t n, const mpb_batch_telemetry *t, int64_t now)
{
    if (w->n_tel == 0) {
        w->pending_since_ns = now;
    }
    for (size_t i = 0; i < n; i++) {
        const mpb__batch_result *r = &w->batch.results[i];
        if (r->outcome == MPB_OUTCOME_VALUE) {
            pack_value(w, w->ids[i], r->data, r->len);
        } else {
            mpb__wire_pack_result_error(&w->pending, w->ids[i], r->type, r->message);
        }
    }
    w->n_pending += (uint32_t)n;
    if (w->n_tel == w->cap_tel) {
        w->cap_tel = w->cap_tel ? w->cap_tel * 2 : 16;
        w->pending_tel = mpb_realloc(w->pending_tel, w->cap_tel * sizeof *w->pending_tel);
    }
    w->pending_tel[w->n_tel++] = *t;
    /* never hold half the credit: the coordinator needs it back to keep
     * items coming while this worker computes */
    uint32_t hold_max = w->capacity / 2 < RESULTS_HOLD_MAX ? w->capacity / 2 : RESULTS_HOLD_MAX;
    if (w->queue.count == 0 || w->n_pending >= hold_max ||
        w->pending.sbuf.size >= RESULTS_HOLD_BYTES ||
        now - w->pending_since_ns + w->compute_ns >= RESULTS_HOLD_NS) {
        flush_results(w);
    }
}

/* Calls the plugin on n items (ids and items: copies the caller keeps)
 * and queues their results with the call's telemetry. With isolate_bisect,
 * a call that fails as a whole is not reported: its halves are called in
 * turn, down to single items, so only the items that fail get the error. */
static void
call_batch(worker *w, const uint64_t *ids, const mpb__batch_item *items, size_t n,
           mpb_batch_close reason, int64_t first_arrival)
{
    int64_t start = mpb_now_ns();
    mpb__batch_reset(&w->batch);
    for (size_t i = 0; i < n; i++) {
        w->ids[i] = ids[i];
        mpb__batch_add(&w->batch, items[i].data, items[i].len);
    }
    int rc = w->cfg->def->call(w->state, &w->batch);
    int64_t end = mpb_now_ns();
    w->compute_ns = smooth(w->compute_ns, end - start);
    if (w->cfg->isolate_bisect && n > 1 && (rc != 0 || w->batch.fail_type != NULL)) {
        size_t half = n / 2;
        call_batch(w, ids, items, half, reason, first_arrival);
        call_batch(w, ids + half, items + half, n - half, reason, first_arrival);
        return;
    }
    mpb_batch_telemetry t = {
        .size = (uint32_t)n,
        .errors = (uint32_t)mpb__batch_settle(&w->batch, rc),
        .first_wait_us = (start - first_arrival) / 1000,
        .compute_us = (end - start) / 1000,
        .closed_by = reason,
        .queued_after = (uint32_t)w->queue.count,
    };
    queue_batch_results(w, n, &t, end);
}

static void
run_batch(worker *w, size_t take, mpb_batch_close reason)
{
    int64_t start = mpb_now_ns();
    int64_t first_arrival = mpb__item_queue_peek(&w->queue)->arrived_ns;
    if (take > w->cap_ids) {
        w->cap_ids = take * 2;
        w->ids = mpb_realloc(w->ids, w->cap_ids * sizeof *w->ids);
        w->call_ids = mpb_realloc(w->call_ids, w->cap_ids * sizeof *w->call_ids);
        w->call_items = mpb_realloc(w->call_items, w->cap_ids * sizeof *w->call_items);
    }
    size_t n = 0;
    for (size_t i = 0; i < take; i++) {
        const void *data;
        mpb__queued_item item = mpb__item_queue_pop(&w->queue, &data);
        if (item.deadline_ns != 0 && item.deadline_ns <= start) {
            add_early_error(w, item.id, MPB_ERROR_TIMEOUT,
                            "the item's deadline passed before its batch was called");
            continue;
        }
        w->call_ids[n] = item.id;
        w->call_items[n++] = (mpb__batch_item){data, item.len};
    }
    if (n == 0) {
        return;
    }
    call_batch(w, w->call_ids, w->call_items, n, reason, first_arrival);
}

static void
drain_queue(worker *w)
{
    for (;;) {
        receive_available(w);
        flush_early_errors(w);
        if (w->queue.count == 0) {
            flush_results(w); /* nothing more to compute now: send */
            return;
        }
        mpb_batch_close reason;
        int64_t wake_at = 0;
        size_t take = batch_decision(w, mpb_now_ns(), &reason, &wake_at);
        if (take == 0) {
            flush_results(w); /* waiting for a batch to fill: send meanwhile */
            wait_readable(w, wake_at);
            continue;
        }
        run_batch(w, take, reason);
    }
}

/* 0 while the coordinator and parent look alive. */
static int
check_liveness(worker *w, int64_t now, char *err, size_t err_len)
{
    const mpb__worker_config *cfg = w->cfg;
    if (cfg->cancel != NULL && atomic_load(cfg->cancel)) {
        return mpb__set_error(err, err_len, MPB_ECANCELED, "worker cancelled by its host");
    }
    if (w->link_broken) {
        return mpb__set_error(err, err_len, MPB_EPROTO, "the link to the coordinator is corrupt");
    }
    if (cfg->parent_pid > 0 && getppid() != cfg->parent_pid) {
        return mpb__set_error(err, err_len, MPB_ECLOSED, "parent process %d is gone",
                              (int)cfg->parent_pid);
    }
    int64_t timeout_ms = cfg->coordinator_timeout_ms ? cfg->coordinator_timeout_ms
                                                     : MPB_DEFAULT_COORDINATOR_TIMEOUT_MS;
    if (timeout_ms > 0 && now - w->last_recv_ns > timeout_ms * 1000000) {
        return mpb__set_error(err, err_len, MPB_ETIMEDOUT, "coordinator at %s silent for %lld ms",
                              cfg->endpoint, (long long)timeout_ms);
    }
    return 0;
}

int
mpb__worker_serve(worker *w, char *err, size_t err_len)
{
    int64_t heartbeat_ns =
        (w->cfg->heartbeat_ms ? w->cfg->heartbeat_ms : MPB_DEFAULT_HEARTBEAT_MS) * 1000000;
    /* the coordinator's silence counts from READY: the plugin's init may
     * take longer than coordinator_timeout_ms */
    w->last_recv_ns = mpb_now_ns();
    for (;;) {
        drain_queue(w);
        if (w->stopping) {
            send_signal(w, MPB_FRAME_BYE);
            return 0;
        }
        int64_t now = mpb_now_ns();
        int rc = check_liveness(w, now, err, err_len);
        if (rc != 0) {
            return rc;
        }
        if (now - w->last_send_ns >= heartbeat_ns) {
            send_signal(w, MPB_FRAME_HEARTBEAT);
        }
        wait_readable(w, now + heartbeat_ns);
    }
}
