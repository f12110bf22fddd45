/*
 * DESIGN
 * The ZeroMQ front end: a ROUTER socket on the dispatcher's loop speaking
 * the client protocol. Each readable round reads what is there (up to a
 * bound, for fairness), turns every call into a job against the server's
 * shared capacity, and answers at once what cannot be taken (Overloaded,
 * UnknownServlet, Unavailable, Protocol). Results of one dispatcher round
 * are coalesced per client into one RESULTS frame, sent when the round
 * ends (a deferred waker), so a pipelining client gets batches back.
 *
 * Limits: a message larger than max_message_bytes gets an ERROR (libzmq
 * drops connections whose messages exceed twice that, before reading
 * them); a client with client_max_in_flight calls pending gets Overloaded
 * for more. A reply a client does not read is dropped once its queue is
 * full (the send never blocks the dispatcher) and counted.
 *
 * Failure: nothing a peer sends can stop the front end; every bad frame is
 * answered with an ERROR or an error result and logged at debug level.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "core/os/cleanup.h"
#include "core/util.h"
#include "core/zmq_util.h"
#include "frontends/client_table.h"
#include "frontends/client_wire.h"
#include "mpbatch/error.h"
#include "mpbatch/frontend.h"
#include "mpbatch/log.h"
#include "servlets/server_int.h"

/* A client's result entries are sent once they pass this, mid-round. */
#define REPLY_FLUSH_BYTES ((size_t)64 << 10)
#define DEFAULT_MAX_MESSAGE_BYTES ((size_t)64 << 20)
#define MESSAGES_PER_ROUND 4096
#define REPLY_HWM 1000
#define LINGER_MS 2000

typedef struct zmq_frontend {
    mpb__frontend base;
    mpb__waker waker;
    mpb_server *server;
    void *socket;
    char *endpoint;
    char *ipc_path; /* the socket file it bound, removed at close; or NULL */
    size_t max_message_bytes;
    unsigned client_max_in_flight;
    mpb__client_table clients;
    mpb__client *flush; /* clients with replies waiting for the round's end */
    int flush_armed;
    int closing;
    uint64_t in_flight;
    uint64_t dropped_replies;
    msgpack_zone zone;
    mpb__wire_buf out;
} zmq_frontend;

void
mpb_frontend_options_init(mpb_frontend_options *options)
{
    memset(options, 0, sizeof *options);
}

/* ---- sending ---- */

static void
send_frame(zmq_frontend *fe, mpb__client *client, const void *data, size_t len)
{
    int rc = mpb__zmq_send(fe->socket, client->rid, client->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc == 0 && client->req_envelope) {
        rc = mpb__zmq_send(fe->socket, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    }
    if (rc == 0) {
        rc = mpb__zmq_send(fe->socket, data, len, ZMQ_DONTWAIT);
    }
    if (rc != 0) {
        fe->dropped_replies++;
        mpb_log_debug("frontend", "%s: reply to a client dropped: %s", fe->endpoint,
                      mpb_strerror(rc));
    }
}

static void
forget_if_done(zmq_frontend *fe, mpb__client *client)
{
    if (client->in_flight == 0 && client->n_replies == 0 && !client->flush_listed) {
        mpb__client_table_remove(&fe->clients, client);
    }
}

/* Sends a client's gathered result entries as one RESULTS frame. */
static void
send_replies(zmq_frontend *fe, mpb__client *client)
{
    mpb__wire_buf_reset(&fe->out);
    mpb__client_pack_results_begin(&fe->out, client->n_replies);
    msgpack_sbuffer_write(&fe->out.sbuf, client->replies.sbuf.data, client->replies.sbuf.size);
    send_frame(fe, client, fe->out.sbuf.data, fe->out.sbuf.size);
    mpb__wire_buf_reset(&client->replies);
    client->n_replies = 0;
    if (fe->out.sbuf.alloc > 2 * REPLY_FLUSH_BYTES) { /* do not keep a flood's buffer */
        mpb__wire_buf_free(&fe->out);
        mpb__wire_buf_init(&fe->out);
    }
}

/* End of a dispatcher round: one RESULTS frame per client with results. */
static void
flush_replies(mpb__waker *waker)
{
    zmq_frontend *fe = (zmq_frontend *)((char *)waker - offsetof(zmq_frontend, waker));
    fe->flush_armed = 0;
    while (fe->flush != NULL) {
        mpb__client *client = fe->flush;
        fe->flush = client->next_flush;
        client->next_flush = NULL;
        client->flush_listed = 0;
        if (client->n_replies > 0) {
            send_replies(fe, client);
        }
        forget_if_done(fe, client);
    }
}

/* A reply entry was added to client->replies: it goes out at the end of
 * the round, or at once when the client's entries pass REPLY_FLUSH_BYTES
 * (a round may read thousands of frames of calls the front end answers
 * itself; their answers must not pile up without bound). */
static void
queue_for_flush(zmq_frontend *fe, mpb__client *client)
{
    client->n_replies++;
    if (!client->flush_listed) {
        client->flush_listed = 1;
        client->next_flush = fe->flush;
        fe->flush = client;
    }
    if (client->replies.sbuf.size >= REPLY_FLUSH_BYTES) {
        send_replies(fe, client); /* stays listed: the flush finds it empty */
    }
    if (!fe->flush_armed) {
        fe->flush_armed = 1;
        mpb__server_defer_wake(fe->server, &fe->waker);
    }
}

static void
reply_error_entry(zmq_frontend *fe, mpb__client *client, uint64_t id, const char *type,
                  const char *message, const char *servlet)
{
    mpb__client_pack_result_error(&client->replies, id, type, message, servlet);
    queue_for_flush(fe, client);
}

static void
reply_error_frame(zmq_frontend *fe, mpb__client *client, int has_id, uint64_t id, int code,
                  const char *message)
{
    mpb__wire_buf_reset(&fe->out);
    mpb__client_pack_error(&fe->out, has_id, id, code, message);
    send_frame(fe, client, fe->out.sbuf.data, fe->out.sbuf.size);
}

/* ---- calls ---- */

static void
call_finished(mpb__job *job, mpb_result *result)
{
    mpb__client *client = job->ctx;
    zmq_frontend *fe = client->owner;
    client->in_flight--;
    fe->in_flight--;
    mpb__client_pack_result(&client->replies, job->index, result);
    mpb_result_destroy(&result);
    queue_for_flush(fe, client);
}

/* The servlet a call names: the root for "", else by path. */
static mpb_servlet *
target_of(zmq_frontend *fe, const mpb__wire_str *target)
{
    mpb_servlet *root = mpb__server_root(fe->server);
    if (target->len == 0) {
        return root;
    }
    char path[512];
    if (target->len >= sizeof path || memchr(target->ptr, '\0', target->len) != NULL) {
        return NULL; /* a NUL would cut the path short and name another servlet */
    }
    memcpy(path, target->ptr, target->len);
    path[target->len] = '\0';
    return mpb__servlet_find(root, path);
}

static void
take_call(zmq_frontend *fe, mpb__client *client, const mpb__client_call *call)
{
    mpb_servlet *target = target_of(fe, &call->target);
    char message[160];
    if (target == NULL) {
        snprintf(message, sizeof message, "no servlet at path '%.*s'", (int)call->target.len,
                 call->target.ptr);
        reply_error_entry(fe, client, call->id, "UnknownServlet", message, "");
        return;
    }
    if (fe->closing) {
        reply_error_entry(fe, client, call->id, "Unavailable", "the server is stopping", "");
        return;
    }
    if (client->in_flight >= fe->client_max_in_flight) {
        snprintf(message, sizeof message,
                 "this client has %u calls in flight (client_max_in_flight)", client->in_flight);
        atomic_fetch_add(&fe->server->rejected, 1);
        reply_error_entry(fe, client, call->id, "Overloaded", message, "");
        return;
    }
    int64_t deadline = call->deadline_ms > 0 && call->deadline_ms < (1ull << 40)
                           ? mpb_now_ns() + (int64_t)call->deadline_ms * 1000000
                           : 0;
    client->in_flight++;
    fe->in_flight++;
    int rc = mpb__server_submit_here(fe->server, target, call->payload, call->len, deadline,
                                     call_finished, client, call->id);
    if (rc != 0) {
        client->in_flight--;
        fe->in_flight--;
        reply_error_entry(fe, client, call->id,
                          rc == MPB_EAGAIN   ? "Overloaded"
                          : rc == MPB_ELIMIT ? "ItemTooLarge"
                                             : "Unavailable",
                          rc == MPB_EAGAIN   ? "the server is at capacity"
                          : rc == MPB_ELIMIT ? "the item is larger than 1 GiB"
                                             : "the server is stopping",
                          "");
    }
}

static void
take_calls(zmq_frontend *fe, mpb__client *client, const msgpack_object *root)
{
    int64_t count = mpb__client_call_count(root);
    if (count < 0) {
        reply_error_frame(fe, client, 0, 0, MPB_EPROTO,
                          "a CALL frame is [1, [[id, payload, deadline_ms, target], ...]]");
        return;
    }
    for (uint32_t i = 0; i < (uint32_t)count; i++) {
        mpb__client_call call;
        int id_known = 0;
        if (mpb__client_call_at(root, i, &call, &id_known) != 0) {
            if (id_known) {
                reply_error_entry(fe, client, call.id, MPB_ERROR_PROTOCOL,
                                  "a call is [id, payload (bin or str), deadline_ms, target]", "");
            } else {
                reply_error_frame(fe, client, 0, 0, MPB_EPROTO,
                                  "a call is [id, payload, ...] with an unsigned id");
            }
            continue;
        }
        take_call(fe, client, &call);
    }
}

/* ---- health and info ---- */

static void
count_workers(mpb_servlet *servlet, size_t *count)
{
    mpb_worker_status none;
    servlet->ops->workers(servlet, &none, 0, count);
}

static void
reply_health(zmq_frontend *fe, mpb__client *client, uint64_t id)
{
    size_t workers = 0;
    pthread_mutex_lock(&fe->server->info_lock);
    count_workers(mpb__server_root(fe->server), &workers);
    pthread_mutex_unlock(&fe->server->info_lock);
    mpb__wire_buf_reset(&fe->out);
    msgpack_packer *pk = &fe->out.pk;
    msgpack_pack_array(pk, 8);
    msgpack_pack_uint8(pk, MPB_CLIENT_HEALTH_REPLY);
    msgpack_pack_uint64(pk, id);
    msgpack_pack_true(pk);
    if (!fe->closing && mpb__server_ready(fe->server)) {
        msgpack_pack_true(pk);
    } else {
        msgpack_pack_false(pk);
    }
    msgpack_pack_uint64(pk, workers);
    msgpack_pack_uint64(pk, atomic_load(&fe->server->in_flight));
    msgpack_pack_uint64(pk, fe->server->options.capacity);
    msgpack_pack_uint8(pk, MPB_CLIENT_PROTOCOL_VERSION);
    send_frame(fe, client, fe->out.sbuf.data, fe->out.sbuf.size);
}

static size_t
count_servlets(const mpb_servlet *servlet)
{
    size_t n = 1;
    for (size_t i = 0; i < servlet->n_members; i++) {
        n += count_servlets(servlet->members[i]);
    }
    return n;
}

static void
pack_servlets(msgpack_packer *pk, const mpb_servlet *servlet)
{
    const char *path = servlet->path ? servlet->path : servlet->name;
    const char *kind = servlet->ops->kind;
    msgpack_pack_array(pk, 2);
    msgpack_pack_str_with_body(pk, path, strlen(path));
    msgpack_pack_str_with_body(pk, kind, strlen(kind));
    for (size_t i = 0; i < servlet->n_members; i++) {
        pack_servlets(pk, servlet->members[i]);
    }
}

static void
reply_info(zmq_frontend *fe, mpb__client *client, uint64_t id)
{
    mpb_servlet *root = mpb__server_root(fe->server);
    mpb__wire_buf_reset(&fe->out);
    msgpack_packer *pk = &fe->out.pk;
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, MPB_CLIENT_INFO_REPLY);
    msgpack_pack_uint64(pk, id);
    msgpack_pack_array(pk, count_servlets(root));
    pack_servlets(pk, root);
    send_frame(fe, client, fe->out.sbuf.data, fe->out.sbuf.size);
}

/* ---- receiving ---- */

static void
handle_frame(zmq_frontend *fe, mpb__client *client, const void *data, size_t len)
{
    char err[160];
    if (len > fe->max_message_bytes) {
        snprintf(err, sizeof err, "a message of %zu bytes is larger than max_message_bytes (%zu)",
                 len, fe->max_message_bytes);
        reply_error_frame(fe, client, 0, 0, MPB_ELIMIT, err);
        return;
    }
    msgpack_object root;
    uint64_t type;
    int rc = mpb__wire_unpack(&fe->zone, data, len, &root, &type, err, sizeof err);
    if (rc != 0) {
        reply_error_frame(fe, client, 0, 0, rc, err);
        return;
    }
    uint64_t id = 0;
    int has_id = root.via.array.size >= 2 && mpb__wire_as_uint(&root.via.array.ptr[1], &id) == 0;
    if (type == MPB_CLIENT_CALL) {
        take_calls(fe, client, &root);
    } else if ((type == MPB_CLIENT_HEALTH || type == MPB_CLIENT_INFO) && !has_id) {
        snprintf(err, sizeof err, "a %s request is [%llu, id] with an unsigned id",
                 type == MPB_CLIENT_HEALTH ? "HEALTH" : "INFO", (unsigned long long)type);
        reply_error_frame(fe, client, 0, 0, MPB_EPROTO, err);
    } else if (type == MPB_CLIENT_HEALTH) {
        reply_health(fe, client, id);
    } else if (type == MPB_CLIENT_INFO) {
        reply_info(fe, client, id);
    } else if (type == MPB_CLIENT_ERROR) {
        /* never answered: two peers answering ERROR with ERROR would loop */
        mpb_log_debug("frontend", "%s: a client sent an ERROR frame", fe->endpoint);
    } else {
        snprintf(err, sizeof err,
                 "unknown request type %llu (1 CALL, 3 HEALTH [3, id], 5 INFO [5, id])",
                 (unsigned long long)type);
        reply_error_frame(fe, client, has_id, id, MPB_EPROTO, err);
    }
}

/* Reads one message: [routing id][empty delimiter, from REQ]?[frame].
 * Returns 0 when none was waiting. */
static int
receive_one(zmq_frontend *fe)
{
    zmq_msg_t parts[3];
    int n = 0;
    int extra = 0;
    for (;;) {
        zmq_msg_t scratch;
        zmq_msg_t *part = n < 3 ? &parts[n] : &scratch;
        zmq_msg_init(part);
        if (zmq_msg_recv(part, fe->socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(part);
            break;
        }
        int more = zmq_msg_more(part);
        if (n < 3) {
            n++;
        } else {
            zmq_msg_close(&scratch);
            extra = 1;
        }
        if (!more) {
            break;
        }
    }
    if (n == 0) {
        return 0;
    }
    if (n >= 2 && zmq_msg_size(&parts[0]) <= MPB_CLIENT_RID_MAX) {
        mpb__client *client = mpb__client_table_get(&fe->clients, zmq_msg_data(&parts[0]),
                                                    zmq_msg_size(&parts[0]), fe);
        client->req_envelope = n == 3 && zmq_msg_size(&parts[1]) == 0;
        if (extra || (n == 3 && !client->req_envelope)) {
            reply_error_frame(fe, client, 0, 0, MPB_EPROTO,
                              "a request is one message part holding one msgpack frame");
        } else {
            zmq_msg_t *frame = &parts[n - 1];
            handle_frame(fe, client, zmq_msg_data(frame), zmq_msg_size(frame));
        }
        forget_if_done(fe, client);
    }
    for (int i = 0; i < n; i++) {
        zmq_msg_close(&parts[i]);
    }
    return 1;
}

static void
on_readable(mpb__loop *loop, void *arg)
{
    (void)loop;
    zmq_frontend *fe = arg;
    for (int i = 0; i < MESSAGES_PER_ROUND && receive_one(fe); i++) {
    }
}

/* ---- lifecycle ---- */

static void
fe_close(mpb__frontend *self)
{
    ((zmq_frontend *)self)->closing = 1;
}

static int
fe_idle(mpb__frontend *self)
{
    zmq_frontend *fe = (zmq_frontend *)self;
    return fe->in_flight == 0 && fe->flush == NULL;
}

static void
fe_stop(mpb__frontend *self)
{
    zmq_frontend *fe = (zmq_frontend *)self;
    if (fe->socket == NULL) {
        return;
    }
    flush_replies(&fe->waker);
    if (fe->dropped_replies > 0) {
        mpb_log_warn("frontend", "%s: %llu replies were dropped (clients gone or not reading)",
                     fe->endpoint, (unsigned long long)fe->dropped_replies);
    }
    mpb__loop_remove_socket(mpb__server_loop(fe->server), fe->socket);
    zmq_close(fe->socket); /* lingers LINGER_MS for replies still queued */
    fe->socket = NULL;
    if (fe->ipc_path != NULL) {
        unlink(fe->ipc_path); /* connected clients keep their connections */
        mpb__cleanup_forget(fe->ipc_path);
    }
}

static void
fe_destroy(mpb__frontend *self)
{
    zmq_frontend *fe = (zmq_frontend *)self;
    mpb__client_table_free(&fe->clients);
    msgpack_zone_destroy(&fe->zone);
    mpb__wire_buf_free(&fe->out);
    free(fe->endpoint);
    free(fe->ipc_path);
    free(fe);
}

static const mpb__frontend_ops zmq_frontend_ops = {
    .kind = "zmq",
    .close = fe_close,
    .idle = fe_idle,
    .stop = fe_stop,
    .destroy = fe_destroy,
};

typedef struct bind_args {
    zmq_frontend *fe;
    const char *endpoint;
    char *err;
    size_t err_len;
} bind_args;

static int
open_socket(zmq_frontend *fe, const char *endpoint, char *err, size_t err_len)
{
    fe->socket = zmq_socket(mpb__server_zmq_context(fe->server), ZMQ_ROUTER);
    if (fe->socket == NULL) {
        return mpb__set_error(err, err_len, mpb__zmq_status(), "zmq_socket: %s",
                              zmq_strerror(zmq_errno()));
    }
    int64_t hard_limit = (int64_t)(fe->max_message_bytes * 2 + 4096);
    zmq_setsockopt(fe->socket, ZMQ_MAXMSGSIZE, &hard_limit, sizeof hard_limit);
    mpb__zmq_set_int(fe->socket, ZMQ_ROUTER_MANDATORY, 1);
    mpb__zmq_set_int(fe->socket, ZMQ_SNDHWM, REPLY_HWM);
    mpb__zmq_set_int(fe->socket, ZMQ_RCVHWM, REPLY_HWM);
    mpb__zmq_set_int(fe->socket, ZMQ_LINGER, LINGER_MS);
    const mpb__curve_keys *curve = mpb__server_curve(fe->server);
    if (curve != NULL && strncmp(endpoint, "tcp://", 6) == 0) {
        int rc = mpb__curve_server_apply(fe->socket, curve, err, err_len);
        if (rc != 0) {
            zmq_close(fe->socket);
            fe->socket = NULL;
            return rc;
        }
    }
    if (zmq_bind(fe->socket, endpoint) != 0) {
        int rc = mpb__zmq_status();
        mpb__set_error(err, err_len, rc, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zmq_close(fe->socket);
        fe->socket = NULL;
        return rc;
    }
    char last[512];
    size_t size = sizeof last;
    if (zmq_getsockopt(fe->socket, ZMQ_LAST_ENDPOINT, last, &size) == 0 && size > 1) {
        fe->endpoint = mpb_strdup(last);
    } else {
        fe->endpoint = mpb_strdup(endpoint);
    }
    if (strncmp(fe->endpoint, "ipc://", 6) == 0 && fe->endpoint[6] != '@') { /* '@': abstract */
        fe->ipc_path = mpb_strdup(fe->endpoint + 6);
        mpb__cleanup_register(fe->ipc_path);
    }
    return 0;
}

/* Dispatcher thread: binds and joins the loop. */
static int
bind_here(mpb_server *server, void *arg)
{
    bind_args *a = arg;
    int rc = open_socket(a->fe, a->endpoint, a->err, a->err_len);
    if (rc == 0) {
        mpb__loop_add_socket(mpb__server_loop(server), a->fe->socket, on_readable, a->fe);
    }
    return rc;
}

int
mpb_server_serve_zmq(mpb_server *server, const char *endpoint, const mpb_frontend_options *options,
                     char *bound, size_t bound_len, char *err, size_t err_len)
{
    if (endpoint == NULL || *endpoint == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL, "no endpoint to bind");
    }
    zmq_frontend *fe = mpb_calloc(1, sizeof *fe);
    fe->base.ops = &zmq_frontend_ops;
    fe->waker.wake = flush_replies;
    fe->server = server;
    fe->max_message_bytes = options && options->max_message_bytes ? options->max_message_bytes
                                                                  : DEFAULT_MAX_MESSAGE_BYTES;
    fe->client_max_in_flight = options && options->client_max_in_flight
                                   ? options->client_max_in_flight
                                   : (unsigned)server->options.capacity;
    mpb__client_table_init(&fe->clients);
    msgpack_zone_init(&fe->zone, 8192);
    mpb__wire_buf_init(&fe->out);
    bind_args args = {fe, endpoint, err, err_len};
    int rc = mpb__server_attach_frontend(server, &fe->base, bind_here, &args, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (bound != NULL && bound_len > 0) {
        snprintf(bound, bound_len, "%s", fe->endpoint);
    }
    return 0;
}
