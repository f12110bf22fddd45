/*
 * Helpers for the front-end tests: a server over a small tree with a front
 * end attached, and raw sockets that send what a broken client would.
 */
#ifndef MPB_TESTS_FRONTENDS_FRONTEND_HELPERS_H
#define MPB_TESTS_FRONTENDS_FRONTEND_HELPERS_H

#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

#include "../servlets/tree_helpers.h"
#include "mpbatch/client.h"
#include "mpbatch/frontend.h"

/* A unique ipc endpoint for this process. */
static inline const char *
test_endpoint(void)
{
    static char endpoint[128];
    static int n;
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-fe-test-%d-%d.ipc", (int)getpid(), n++);
    return endpoint;
}

static inline mpb_client *
test_client(const char *endpoint)
{
    mpb_client *client = mpb_client_new();
    char err[256];
    if (mpb_client_connect(client, endpoint, err, sizeof err) != 0) {
        fail_msg("connect: %s", err);
    }
    return client;
}

/* A raw DEALER socket, for frames no real client would send. */
typedef struct raw_peer {
    void *context;
    void *socket;
} raw_peer;

static inline void
raw_open(raw_peer *peer, const char *endpoint)
{
    peer->context = zmq_ctx_new();
    peer->socket = zmq_socket(peer->context, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(peer->socket, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(peer->socket, endpoint), 0);
}

static inline void
raw_close(raw_peer *peer)
{
    zmq_close(peer->socket);
    zmq_ctx_term(peer->context);
}

/* Receives one message (up to timeout_ms) into buf; its length, or -1. */
static inline int
raw_recv(raw_peer *peer, char *buf, size_t size, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = peer->socket, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, timeout_ms) <= 0) {
        return -1;
    }
    return zmq_recv(peer->socket, buf, size, 0);
}

/* The frame type of a reply, and its decoded root (in msg). */
static inline uint64_t
reply_type(msgpack_unpacked *msg, const char *buf, int len)
{
    assert_true(len > 0);
    assert_int_equal(msgpack_unpack_next(msg, buf, (size_t)len, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(msg->data.type, MSGPACK_OBJECT_ARRAY);
    return msg->data.via.array.ptr[0].via.u64;
}

#endif
