/*
 * A client of `mpb serve` (or of any server with a ZeroMQ front end,
 * frontend.h): calls items remotely over the client protocol and gets
 * results back as mpb_result values, errors and ensembles' arrays
 * included, exactly as a local mpb_server_call would.
 *
 * Threading: a client belongs to one thread at a time (it owns a ZeroMQ
 *   socket); use one client per thread.
 * Processes: do not use a client across fork.
 * Ownership: results handed to the caller are the caller's; results passed
 *   to on_output are borrowed for that call.
 */
#ifndef MPBATCH_CLIENT_H
#define MPBATCH_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"
#include "mpbatch/result.h"
#include "mpbatch/server.h"

typedef struct mpb_client mpb_client;

typedef struct mpb_health {
    int live;           /* the server answered */
    int ready;          /* every worker of its tree is connected and ready */
    uint64_t workers;   /* workers connected */
    uint64_t in_flight; /* items in flight in the server */
    uint64_t capacity;  /* the server's capacity */
} mpb_health;

typedef struct mpb_client_stream_options {
    /* Calls in flight at most; 0: 256. */
    size_t window;
    /* 1: errors come out in place; 0: the stream stops at the first error
     * (in input order) with MPB_EITEM after passing it to on_output. */
    int return_exceptions;
    /* Per-item deadline in ms (a Timeout error past it); 0: none. */
    int item_timeout_ms;
    /* Servlet path to call ("pipeline/models/a"); NULL: the root. */
    const char *target;
    /* How long to wait for a reply before giving up on the server with
     * MPB_ETIMEDOUT; 0: 60000. */
    int idle_timeout_ms;
    /* As mpb_stream_options.input_ready: with it, next() is only called
     * when it would not block, and results are passed on meanwhile. */
    int (*input_ready)(void *ctx, int *wait_fd);
} mpb_client_stream_options;

/* Allocates only. */
MPB_EXPORT mpb_client *mpb_client_new(void);

/* Makes the connection CURVE (call before connect): server_key_file is
 * the server's certificate (its .pub file), key_file this client's secret
 * certificate (mpb keygen's .key file), whose .pub the server's clients
 * folder must hold. Returns 0, or a status with err (a missing or
 * unreadable file, a secret file others may read). */
MPB_EXPORT int mpb_client_set_curve(mpb_client *self, const char *server_key_file,
                                    const char *key_file, char *err, size_t err_len);

/* Connects to endpoint (tcp://127.0.0.1:5555, ipc://...). ZeroMQ connects
 * in the background: a server that is not there yet is found when it
 * comes. Returns 0, or a status with err. */
MPB_EXPORT int mpb_client_connect(mpb_client *self, const char *endpoint, char *err,
                                  size_t err_len);

/* One item, waiting up to timeout_ms (<= 0: 60000) for its result. target
 * NULL calls the root. Returns as mpb_server_call does: 0 with a value,
 * MPB_EITEM with an error result (MPB_ETIMEDOUT with a Timeout error when
 * no answer came in time), or another status with *out NULL. */
MPB_EXPORT int mpb_client_call(mpb_client *self, const char *target, const void *input, size_t len,
                               int timeout_ms, mpb_result **out);

/* Pulls inputs from next, keeps up to window calls in flight (many per
 * message), and passes results to on_output in input order. Returns 0
 * when every input was answered, or why it stopped. */
MPB_EXPORT int mpb_client_stream(mpb_client *self, mpb_next_fn next, mpb_output_fn on_output,
                                 void *ctx, const mpb_client_stream_options *options);

/* Asks the server how it is. Returns 0 with *out filled, or
 * MPB_ETIMEDOUT when no answer came within timeout_ms. */
MPB_EXPORT int mpb_client_health(mpb_client *self, int timeout_ms, mpb_health *out);

/* NULL-safe; closes the connection and sets *self_p = NULL. */
MPB_EXPORT void mpb_client_destroy(mpb_client **self_p);

#endif
