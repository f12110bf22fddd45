/*
 * Front ends: ways for other programs to call a running server. The
 * ZeroMQ front end speaks the client protocol of docs/protocol.md (msgpack
 * over a ROUTER socket; clients/python and mpb_client speak it); the HTTP
 * front end speaks the Open Inference Protocol v2 (docs/http.md). Both run
 * on the server's dispatcher loop and count against its capacity.
 *
 * Threading: call from any thread while the server runs; each call waits
 *   until its front end is bound (or failed) on the dispatcher thread.
 * Processes: do not fork while a server runs.
 * Ownership: a front end belongs to its server: it stops taking requests
 *   when the server stops, answers what it took, and is freed with it.
 */
#ifndef MPBATCH_FRONTEND_H
#define MPBATCH_FRONTEND_H

#include <stddef.h>

#include "mpbatch/common.h"
#include "mpbatch/server.h"

typedef struct mpb_frontend_options {
    /* Largest request accepted, in bytes; 0: 64 MiB. ZeroMQ: a larger
     * message (up to twice this) is answered with an error; beyond that
     * the connection is dropped before it is read (ZMQ_MAXMSGSIZE). */
    size_t max_message_bytes;
    /* Requests one client may have in flight; 0: the server's capacity.
     * Calls beyond it are answered Overloaded at once. */
    unsigned client_max_in_flight;
    /* HTTP only: a file (mode 0600) whose first line is a bearer token;
     * every request without `Authorization: Bearer <token>` is answered
     * 401 (its body discarded as it arrives). NULL: no token. */
    const char *token_file;
} mpb_frontend_options;

MPB_EXPORT void mpb_frontend_options_init(mpb_frontend_options *options);

/* Binds endpoint (tcp://, ipc://) and serves the client protocol on it.
 * bound (optional) receives the endpoint as bound (tcp ports resolved).
 * Returns 0, or a status with err saying why ("bind tcp://127.0.0.1:5555:
 * Address already in use"); MPB_ECLOSED unless the server runs. */
MPB_EXPORT int mpb_server_serve_zmq(mpb_server *server, const char *endpoint,
                                    const mpb_frontend_options *options, char *bound,
                                    size_t bound_len, char *err, size_t err_len);

/* Listens on address ("127.0.0.1:8000"; port 0 picks one) and serves the
 * Open Inference Protocol v2 over HTTP/JSON (docs/http.md): health, model
 * metadata and infer, for the root and every servlet path. bound
 * (optional) receives "HOST:PORT" as bound. Returns 0 or a status with err. */
MPB_EXPORT int mpb_server_serve_http(mpb_server *server, const char *address,
                                     const mpb_frontend_options *options, char *bound,
                                     size_t bound_len, char *err, size_t err_len);

/* Listens on address ("127.0.0.1:9464"; port 0 picks one) and answers GET
 * /metrics with the server's metrics in Prometheus's text format
 * (docs/metrics.md): per servlet path, items, errors by type, batches,
 * batch sizes, queue wait, compute time, latency, queue depth, workers
 * alive, restarts; the server's end-to-end figures; CPU and memory. The
 * HTTP front end answers GET /metrics too. bound as for
 * mpb_server_serve_http. Returns 0 or a status with err. */
MPB_EXPORT int mpb_server_serve_metrics(mpb_server *server, const char *address, char *bound,
                                        size_t bound_len, char *err, size_t err_len);

#endif
