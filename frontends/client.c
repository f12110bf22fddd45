/*
 * DESIGN
 * mpb_client: a DEALER socket speaking the client protocol. Every call
 * gets an id from one counter per client, so a reply that arrives after
 * its caller gave up (a timeout, a stopped stream) carries an id nobody
 * waits for and is dropped. A stream packs up to CALLS_PER_FRAME calls per
 * message and keeps up to `window` in flight; results land in a ring by
 * input position and leave it in input order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "core/curve.h"
#include "core/util.h"
#include "core/zmq_util.h"
#include "frontends/client_wire.h"
#include "mpbatch/client.h"
#include "mpbatch/error.h"

#define CALLS_PER_FRAME 64
#define DEFAULT_WINDOW 256
#define DEFAULT_TIMEOUT_MS 60000

struct mpb_client {
    void *context;
    void *socket;
    int connected; /* connect was called (keys go on the socket before) */
    uint64_t next_id;
    msgpack_zone zone;
    mpb__wire_buf out;
};

/* Where received results go: ids in [lo, hi) are wanted, and the result
 * for id lands in slots[(id - base) % cap]. */
typedef struct reply_sink {
    uint64_t base;
    uint64_t lo;
    uint64_t hi;
    size_t cap;
    mpb_result **slots;
    int protocol_error; /* an ERROR frame without an id */
    char message[256];
    mpb_health *health; /* set when a HEALTH reply with health_id is wanted */
    uint64_t health_id;
    int health_seen;
} reply_sink;

mpb_client *
mpb_client_new(void)
{
    mpb_client *self = mpb_calloc(1, sizeof *self);
    self->next_id = 1;
    msgpack_zone_init(&self->zone, 8192);
    mpb__wire_buf_init(&self->out);
    return self;
}

static int
open_socket(mpb_client *self, char *err, size_t err_len)
{
    if (self->socket != NULL) {
        return 0;
    }
    self->context = zmq_ctx_new();
    self->socket = self->context ? zmq_socket(self->context, ZMQ_DEALER) : NULL;
    if (self->socket == NULL) {
        return mpb__set_error(err, err_len, MPB_EMFILE, "cannot create a ZeroMQ socket");
    }
    mpb__zmq_set_int(self->socket, ZMQ_LINGER, 0);
    mpb__zmq_set_int(self->socket, ZMQ_SNDHWM, 0);
    mpb__zmq_set_int(self->socket, ZMQ_RCVHWM, 0);
    return 0;
}

int
mpb_client_set_curve(mpb_client *self, const char *server_key_file, const char *key_file, char *err,
                     size_t err_len)
{
    if (self->connected) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "set CURVE keys before connect");
    }
    int rc = open_socket(self, err, err_len);
    if (rc == 0) {
        rc = mpb__curve_client_apply(self->socket, server_key_file, key_file, err, err_len);
    }
    return rc;
}

int
mpb_client_connect(mpb_client *self, const char *endpoint, char *err, size_t err_len)
{
    if (self->connected) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "the client is already connected");
    }
    int rc = open_socket(self, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (zmq_connect(self->socket, endpoint) != 0) {
        /* not connected: another endpoint may be tried on the same socket */
        return mpb__set_error(err, err_len, mpb__zmq_status(), "connect %s: %s", endpoint,
                              zmq_strerror(zmq_errno()));
    }
    self->connected = 1;
    return 0;
}

static mpb_result **
slot_for(reply_sink *sink, uint64_t id)
{
    if (sink->slots == NULL || id < sink->lo || id >= sink->hi) {
        return NULL;
    }
    return &sink->slots[(id - sink->base) % sink->cap];
}

static void
take_health(reply_sink *sink, const msgpack_object *root)
{
    const msgpack_object *f = root->via.array.ptr;
    uint64_t id = 0;
    if (sink->health == NULL || root->via.array.size < 7 || mpb__wire_as_uint(&f[1], &id) != 0 ||
        id != sink->health_id) {
        return;
    }
    sink->health->live = f[2].type == MSGPACK_OBJECT_BOOLEAN && f[2].via.boolean;
    sink->health->ready = f[3].type == MSGPACK_OBJECT_BOOLEAN && f[3].via.boolean;
    mpb__wire_as_uint(&f[4], &sink->health->workers);
    mpb__wire_as_uint(&f[5], &sink->health->in_flight);
    mpb__wire_as_uint(&f[6], &sink->health->capacity);
    sink->health_seen = 1;
}

static void
take_results(reply_sink *sink, const msgpack_object *root)
{
    if (root->via.array.size < 2 || root->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY) {
        return;
    }
    for (uint32_t i = 0; i < root->via.array.ptr[1].via.array.size; i++) {
        uint64_t id = 0; /* no call has id 0 */
        mpb_result *r = NULL;
        if (mpb__client_result_at(root, i, &id, &r) != 0) {
            /* a malformed result for a call someone waits on answers that
             * call now, rather than let it wait out its timeout */
            mpb_result **slot = slot_for(sink, id);
            if (slot != NULL && *slot == NULL) {
                *slot = mpb_result_new_error(MPB_ERROR_PROTOCOL,
                                             "the server sent a malformed result", "", "", 0);
            }
            continue;
        }
        mpb_result **slot = slot_for(sink, id);
        if (slot != NULL && *slot == NULL) {
            *slot = r;
        } else {
            mpb_result_destroy(&r); /* late: its caller gave up */
        }
    }
}

static void
take_error(reply_sink *sink, const msgpack_object *root)
{
    const msgpack_object *f = root->via.array.ptr;
    mpb__wire_str text = {"", 0};
    uint64_t id = 0;
    if (root->via.array.size >= 4) {
        mpb__wire_as_str(&f[3], &text);
    }
    char message[256];
    int shown = text.len < sizeof message ? (int)text.len : (int)sizeof message - 1;
    snprintf(message, sizeof message, "%.*s", shown, text.ptr);
    if (root->via.array.size >= 2 && mpb__wire_as_uint(&f[1], &id) == 0 &&
        slot_for(sink, id) != NULL) {
        mpb_result **slot = slot_for(sink, id);
        if (*slot == NULL) {
            *slot = mpb_result_new_error(MPB_ERROR_PROTOCOL, message, "", "", 0);
        }
        return;
    }
    sink->protocol_error = 1;
    snprintf(sink->message, sizeof sink->message, "%s", message);
}

/* Waits up to timeout_ms for one message and files what it says. Returns
 * 0, MPB_ETIMEDOUT, or a ZeroMQ status. */
static int
receive_or_input(mpb_client *self, reply_sink *sink, int timeout_ms, int input_fd)
{
    zmq_pollitem_t items[2] = {{.socket = self->socket, .events = ZMQ_POLLIN},
                               {.socket = NULL, .fd = input_fd, .events = ZMQ_POLLIN}};
    int n = zmq_poll(items, input_fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0) {
        /* a signal: the caller waits again for what is left of its time */
        return zmq_errno() == EINTR ? 0 : mpb__zmq_status();
    }
    if (n == 0) {
        return MPB_ETIMEDOUT;
    }
    if (!(items[0].revents & ZMQ_POLLIN)) {
        return 0; /* only the input is readable */
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, self->socket, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return 0;
    }
    msgpack_object root;
    uint64_t type;
    if (mpb__wire_unpack(&self->zone, zmq_msg_data(&msg), zmq_msg_size(&msg), &root, &type, NULL,
                         0) == 0) {
        if (type == MPB_CLIENT_RESULTS) {
            take_results(sink, &root);
        } else if (type == MPB_CLIENT_HEALTH_REPLY) {
            take_health(sink, &root);
        } else if (type == MPB_CLIENT_ERROR) {
            take_error(sink, &root);
        }
    }
    zmq_msg_close(&msg);
    return 0;
}

static int
receive(mpb_client *self, reply_sink *sink, int timeout_ms)
{
    return receive_or_input(self, sink, timeout_ms, -1);
}

static int
send_out(mpb_client *self)
{
    return mpb__zmq_send(self->socket, self->out.sbuf.data, self->out.sbuf.size, 0);
}

static int
status_of(const mpb_result *r)
{
    const mpb_item_error *e = mpb_result_error(r);
    if (e == NULL) {
        return 0;
    }
    return strcmp(e->type, MPB_ERROR_TIMEOUT) == 0 ? MPB_ETIMEDOUT : MPB_EITEM;
}

int
mpb_client_call(mpb_client *self, const char *target, const void *input, size_t len, int timeout_ms,
                mpb_result **out)
{
    *out = NULL;
    if (!self->connected || (input == NULL && len > 0)) {
        return MPB_EINVAL;
    }
    int wait_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    uint64_t id = self->next_id++;
    mpb__wire_buf_reset(&self->out);
    mpb__client_pack_calls_begin(&self->out, 1);
    mpb__client_pack_call(&self->out, id, input, len, timeout_ms > 0 ? (uint64_t)timeout_ms : 0,
                          target);
    int rc = send_out(self);
    if (rc != 0) {
        return rc;
    }
    mpb_result *slot = NULL;
    reply_sink sink = {.base = id, .lo = id, .hi = id + 1, .cap = 1, .slots = &slot};
    int64_t deadline = mpb_now_ns() + (int64_t)wait_ms * 1000000;
    while (slot == NULL && !sink.protocol_error) {
        int64_t left_ms = (deadline - mpb_now_ns()) / 1000000;
        rc = left_ms > 0 ? receive(self, &sink, (int)left_ms) : MPB_ETIMEDOUT;
        if (rc == MPB_ETIMEDOUT) {
            *out = mpb_result_new_error(MPB_ERROR_TIMEOUT, "no answer from the server in time", "",
                                        "", 0);
            return MPB_ETIMEDOUT;
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (slot == NULL) {
        *out = mpb_result_new_error(MPB_ERROR_PROTOCOL, sink.message, "", "", 0);
        return MPB_EPROTO;
    }
    *out = slot;
    return status_of(slot);
}

int
mpb_client_health(mpb_client *self, int timeout_ms, mpb_health *out)
{
    memset(out, 0, sizeof *out);
    if (!self->connected) {
        return MPB_EINVAL;
    }
    uint64_t id = self->next_id++;
    mpb__wire_buf_reset(&self->out);
    msgpack_pack_array(&self->out.pk, 2);
    msgpack_pack_uint8(&self->out.pk, MPB_CLIENT_HEALTH);
    msgpack_pack_uint64(&self->out.pk, id);
    int rc = send_out(self);
    reply_sink sink = {.health = out, .health_id = id};
    int64_t deadline = mpb_now_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 1) * 1000000;
    while (rc == 0 && !sink.health_seen) {
        int64_t left_ms = (deadline - mpb_now_ns()) / 1000000;
        rc = left_ms > 0 ? receive(self, &sink, (int)left_ms) : MPB_ETIMEDOUT;
    }
    return rc;
}

/* ---- stream ---- */

typedef struct client_stream {
    mpb_client *client;
    mpb_client_stream_options opts;
    reply_sink sink; /* slots: a ring of window results by input position */
    uint64_t base;   /* id of input 0 */
    uint64_t issued;
    uint64_t delivered;
    int ended;
    int status;
    int blocked; /* input_ready said next() would block ... */
    int wait_fd; /* ... until this descriptor is readable */
} client_stream;

/* Reads up to limit inputs into one CALL frame and sends it. */
static void
issue(client_stream *st, mpb_next_fn next, void *ctx, size_t limit)
{
    mpb_client *c = st->client;
    mpb__wire_buf_reset(&c->out);
    /* the count is patched in after reading: reserve an array32 header */
    msgpack_pack_array(&c->out.pk, 2);
    msgpack_pack_uint8(&c->out.pk, MPB_CLIENT_CALL);
    size_t header_at = c->out.sbuf.size;
    const unsigned char array32[5] = {0xdd, 0, 0, 0, 0};
    msgpack_sbuffer_write(&c->out.sbuf, (const char *)array32, sizeof array32);
    uint32_t n = 0;
    st->blocked = 0;
    while (n < limit) {
        if (st->opts.input_ready != NULL) {
            int fd = -1;
            if (!st->opts.input_ready(ctx, &fd)) {
                st->blocked = 1;
                st->wait_fd = fd;
                break;
            }
        }
        const void *data = NULL;
        size_t len = 0;
        int rc = next(ctx, &data, &len);
        if (rc <= 0) {
            st->ended = 1;
            st->status = rc;
            break;
        }
        mpb__client_pack_call(
            &c->out, st->base + st->issued + n, data, len,
            (uint64_t)(st->opts.item_timeout_ms > 0 ? st->opts.item_timeout_ms : 0),
            st->opts.target);
        n++;
    }
    if (n == 0) {
        return;
    }
    unsigned char *count = (unsigned char *)c->out.sbuf.data + header_at + 1;
    count[0] = (unsigned char)(n >> 24);
    count[1] = (unsigned char)(n >> 16);
    count[2] = (unsigned char)(n >> 8);
    count[3] = (unsigned char)n;
    int rc = send_out(c);
    if (rc != 0) {
        st->ended = 1;
        st->status = rc;
        return;
    }
    st->issued += n;
}

/* Passes every result already in, in order; 1 when the stream must stop. */
static int
deliver(client_stream *st, mpb_output_fn on_output, void *ctx)
{
    while (st->delivered < st->issued) {
        mpb_result **slot = &st->sink.slots[st->delivered % st->sink.cap];
        if (*slot == NULL) {
            return 0;
        }
        mpb_result *r = *slot;
        *slot = NULL;
        int rc = on_output(ctx, st->delivered, r);
        int is_error = mpb_result_is_error(r);
        mpb_result_destroy(&r);
        st->delivered++;
        if (rc != 0 || (is_error && !st->opts.return_exceptions)) {
            st->status = rc != 0 ? rc : MPB_EITEM;
            return 1;
        }
    }
    return 0;
}

/* Waits up to timeout_ms for a message (or input, input_fd >= 0); 1 when
 * the stream must stop. */
static int
await_results(client_stream *st, int timeout_ms, int input_fd)
{
    st->sink.lo = st->base + st->delivered;
    st->sink.hi = st->base + st->issued;
    int rc = receive_or_input(st->client, &st->sink, timeout_ms, input_fd);
    if (st->sink.protocol_error) {
        st->status = MPB_EPROTO;
        return 1;
    }
    if (rc != 0) {
        st->status = rc;
        return 1;
    }
    return 0;
}

int
mpb_client_stream(mpb_client *self, mpb_next_fn next, mpb_output_fn on_output, void *ctx,
                  const mpb_client_stream_options *options)
{
    if (!self->connected || next == NULL || on_output == NULL) {
        return MPB_EINVAL;
    }
    client_stream st = {.client = self, .base = self->next_id};
    if (options != NULL) {
        st.opts = *options;
    }
    size_t window = st.opts.window ? st.opts.window : DEFAULT_WINDOW;
    int idle_ms = st.opts.idle_timeout_ms > 0 ? st.opts.idle_timeout_ms : DEFAULT_TIMEOUT_MS;
    st.sink.base = st.base;
    st.sink.cap = window;
    st.sink.slots = mpb_calloc(window, sizeof(mpb_result *));
    int stop = 0;
    while (!stop && (!st.ended || st.delivered < st.issued)) {
        uint64_t in_flight = st.issued - st.delivered;
        if (!st.ended && in_flight < window) {
            /* a source that says when it would block: all it has; else at
             * once while nothing is in flight, chunks growing with it after */
            size_t limit = st.opts.input_ready ? CALLS_PER_FRAME
                           : in_flight < 1     ? 1
                                               : (size_t)in_flight;
            limit = limit < CALLS_PER_FRAME ? limit : CALLS_PER_FRAME;
            limit = limit < window - in_flight ? limit : (size_t)(window - in_flight);
            issue(&st, next, ctx, limit);
        }
        int can_send = !st.ended && st.issued - st.delivered < window;
        int blocked = can_send && st.blocked;
        if (st.delivered == st.issued && !blocked) {
            continue;
        }
        /* a blocked source waits with the replies; only replies time out:
         * idle_ms without a reply or input, with calls in flight */
        int timeout = can_send && !blocked                   ? 0
                      : blocked && st.delivered == st.issued ? -1
                                                             : idle_ms;
        stop = await_results(&st, timeout, blocked ? st.wait_fd : -1);
        if (stop && st.status == MPB_ETIMEDOUT && timeout == 0) {
            stop = 0; /* only a poll: more may go in */
            st.status = 0;
        }
        stop = stop || deliver(&st, on_output, ctx);
    }
    for (size_t i = 0; i < window; i++) {
        mpb_result_destroy(&st.sink.slots[i]);
    }
    free(st.sink.slots);
    self->next_id = st.base + st.issued; /* replies still coming are dropped */
    return st.status;
}

void
mpb_client_destroy(mpb_client **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_client *self = *self_p;
    if (self->socket != NULL) {
        zmq_close(self->socket);
    }
    if (self->context != NULL) {
        zmq_ctx_term(self->context);
    }
    msgpack_zone_destroy(&self->zone);
    mpb__wire_buf_free(&self->out);
    free(self);
    *self_p = NULL;
}
