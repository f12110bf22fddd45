/*
 * The server: runs a servlet tree behind a thread-safe API. One dispatcher
 * thread owns every socket; callers hand it items and get results back in
 * order, errors in their items' places.
 *
 * Threading: call, submit, stream, stats and stop may be called from any
 *   thread, concurrently. Callbacks (submit's done, on_batch) run on the
 *   dispatcher thread: they must return quickly and must not call call,
 *   stream, stop or destroy on the same server (submit with timeout 0 is
 *   allowed). stream's callbacks run on the thread that called stream.
 * Processes: do not fork while a server runs (use posix_spawn/exec).
 * Ownership: inputs are copied before the call returns; see each callback
 *   for who owns its result.
 */
#ifndef MPBATCH_SERVER_H
#define MPBATCH_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"
#include "mpbatch/result.h"
#include "mpbatch/servlet.h"
#include "mpbatch/telemetry.h"

typedef struct mpb_server mpb_server;

/* Called on the dispatcher thread for every batch a worker reports. */
typedef void (*mpb_telemetry_fn)(void *ctx, const mpb_batch_telemetry *telemetry);
/* Called on the dispatcher thread for every item answered. */
typedef void (*mpb_item_fn)(void *ctx, const mpb_item_record *record);
/* Called on the dispatcher thread at the end of every interval. */
typedef void (*mpb_interval_fn)(void *ctx, const mpb_interval_telemetry *interval);

/* CURVE on every tcp:// endpoint the server binds (pools' `bind`, the
 * ZeroMQ front end); docs/security.md. Paths are copied by mpb_server_new. */
typedef struct mpb_curve_options {
    /* The coordinator's secret certificate (`mpb keygen NAME` writes
     * NAME.key and NAME.pub); NULL: no CURVE. */
    const char *secret_file;
    /* Folder of the public certificates (.pub) of the workers and clients
     * allowed in; read again when it changes. Required with secret_file. */
    const char *clients_dir;
    /* Optional comma-separated IP addresses peers must come from; NULL:
     * any address. */
    const char *allow;
} mpb_curve_options;

/* What call and submit do when the server holds `capacity` items. */
typedef enum mpb_overload {
    /* Wait for room, up to the call's timeout (then a Timeout error for
     * call, MPB_ETIMEDOUT for submit); submit's timeout 0 fails at once,
     * call's timeout <= 0 waits without limit. */
    MPB_OVERLOAD_BLOCK = 0,
    /* Fail at once whatever the timeout: call answers an Overloaded error
     * (MPB_EITEM), submit and call_many MPB_EAGAIN. Streams still wait:
     * they pace themselves. */
    MPB_OVERLOAD_REJECT = 1,
} mpb_overload;

typedef struct mpb_server_options {
    /* Items accepted and not yet answered at most (waiting in queues and
     * at workers): what bounds the server's memory under any load; 0:
     * 1024; at most 4194304. Beyond it, see overload. */
    size_t capacity;
    /* How long stop waits for workers to leave before killing them; 0: 10000. */
    int stop_timeout_ms;
    /* Optional per-batch observer (dispatcher thread; must not block). */
    mpb_telemetry_fn on_batch;
    void *on_batch_ctx;
    /* Optional per-item observer (dispatcher thread; must not block; the
     * record's pointers are valid during the call only). */
    mpb_item_fn on_item;
    void *on_item_ctx;
    /* Optional interval observer (dispatcher thread; must not block), every
     * interval_ms (0: 1000) while the server runs, and once at stop. */
    mpb_interval_fn on_interval;
    void *on_interval_ctx;
    int interval_ms;
    /* CURVE for tcp:// endpoints; secret_file NULL: none. */
    mpb_curve_options curve;
    /* What call and submit do past capacity (default MPB_OVERLOAD_BLOCK). */
    mpb_overload overload;
} mpb_server_options;

typedef struct mpb_server_stats {
    uint64_t submitted;       /* items accepted */
    uint64_t completed;       /* items answered (values and errors) */
    uint64_t errors;          /* items answered with an error */
    uint64_t in_flight;       /* accepted, not yet answered */
    uint64_t batches;         /* batches reported by workers */
    uint64_t batched_items;   /* items in those batches */
    uint64_t closed_full;     /* batches closed because batch_size items were there */
    uint64_t closed_timer;    /* ... because batch_wait_us passed */
    uint64_t closed_drained;  /* ... because nothing more was queued */
    int64_t compute_us;       /* sum of call() times */
    int64_t first_wait_us;    /* sum of first-item waits */
    uint64_t protocol_errors; /* frames that failed to decode or made no sense */
    uint64_t workers_lost;    /* workers that died while the server ran */
    uint64_t shm_items;       /* items handed to local workers through shared memory */
    uint64_t shm_values;      /* values local workers returned through shared memory */
    uint64_t rejected;        /* items refused at capacity: call's and submit's Overloaded or
                               * Timeout waiting for room, front ends' Overloaded (HTTP 503,
                               * and a client past client_max_in_flight) */
    char last_exit[192];      /* the latest worker death: "mlp/worker mlp-0 (pid 123) killed by
                               * signal 9 (Killed)"; "" when none died */
} mpb_server_stats;

/* A connected worker, as it described itself in its READY. */
typedef struct mpb_worker_status {
    char servlet[128]; /* servlet path */
    char name[128];
    char host[128];
    char cpus[128]; /* CPUs it is bound to (hwloc list syntax), "" if unpinned */
    int64_t pid;
    uint32_t capacity;     /* items it accepts in flight */
    uint32_t batch_size;   /* effective batch size (0: one call per item) */
    int64_t batch_wait_us; /* effective wait after a batch's first item; -2: auto */
} mpb_worker_status;

/* Stream input: returns 1 with *data and *len holding an item (borrowed until
 * next is called again), 0 at the end of input, or a negative status that
 * stops the stream. */
typedef int (*mpb_next_fn)(void *ctx, const void **data, size_t *len);

/* Stream output: index counts inputs from 0; result is borrowed for the
 * call. Returns 0 to go on, nonzero to stop (the stream returns that value). */
typedef int (*mpb_output_fn)(void *ctx, uint64_t index, const mpb_result *result);

typedef struct mpb_stream_options {
    /* Items of this stream in flight at most; 0: the server's capacity. */
    size_t capacity;
    /* 1: errors come out in place as results; 0: the first error (in input
     * order) is passed to on_output, then the stream stops with MPB_EITEM. */
    int return_exceptions;
    /* Per-item deadline in ms (a Timeout error past it); 0: none. */
    int item_timeout_ms;
    /* Optional, for a source that can block (a pipe, a socket, a terminal):
     * 1 when next() would return at once (an item is buffered, or the
     * input ended), 0 when it would block, with *wait_fd set to a
     * descriptor that becomes readable when there may be more. With it, the
     * stream calls next() only when it would not block, and passes outputs
     * on while it waits for input, so no finished output waits for the
     * next input. Without it, next() may block, and outputs wait while it
     * does. Runs on the stream's thread, like next. */
    int (*input_ready)(void *ctx, int *wait_fd);
} mpb_stream_options;

/* Called with each submitted item's result on the dispatcher thread; the
 * callback owns result and frees it with mpb_result_destroy. */
typedef void (*mpb_done_fn)(void *ctx, mpb_result *result);

/* Fills options with defaults. */
MPB_EXPORT void mpb_server_options_init(mpb_server_options *options);

/* A server for the servlet tree *root_p, which it consumes (sets it to
 * NULL). options may be NULL. Allocates only. */
MPB_EXPORT mpb_server *mpb_server_new(mpb_servlet **root_p, const mpb_server_options *options);

/* Starts the dispatcher and every servlet; returns once every worker said
 * READY, or fails with err naming the servlet and the reason. */
MPB_EXPORT int mpb_server_start(mpb_server *self, char *err, size_t err_len);

/* Runs one item and waits up to timeout_ms (<= 0: no limit). Returns 0 with
 * a value in *out; MPB_EITEM with an error result in *out (MPB_ETIMEDOUT
 * with a Timeout error when the deadline passed, or when the server stayed
 * at capacity that long; an Overloaded error at once at capacity with
 * MPB_OVERLOAD_REJECT; an item larger than its
 * servlet's max_item_bytes is an ItemTooLarge error); another negative
 * status (MPB_ECLOSED, MPB_EINVAL, MPB_ELIMIT over 1 GiB) with *out NULL
 * when the item could not be submitted. The caller owns *out. */
MPB_EXPORT int mpb_server_call(mpb_server *self, const void *input, size_t len, int timeout_ms,
                               mpb_result **out);

/* Runs n items at once, for a program that has a batch already: they go
 * in with one lock and one wake-up, and the call returns when every one
 * is answered, out[i] holding item i's result (value or error, in place;
 * the caller destroys each). timeout_ms (<= 0: none) is each item's
 * deadline: past it the item's result is a Timeout error. Returns 0, or
 * MPB_ECLOSED when the server stopped before some items went in (those
 * get an Unavailable error), MPB_EAGAIN with overload MPB_OVERLOAD_REJECT
 * when the server was at capacity (the items that did not go in get an
 * Overloaded error), MPB_EINVAL / MPB_ELIMIT with out untouched. */
MPB_EXPORT int mpb_server_call_many(mpb_server *self, const void *const *inputs, const size_t *lens,
                                    size_t n, int timeout_ms, mpb_result **out);

/* Submits one item; done(ctx, result) runs later on the dispatcher thread.
 * Blocks while the server is at capacity, up to timeout_ms (0: fail fast
 * with MPB_EAGAIN; < 0: no limit). */
MPB_EXPORT int mpb_server_submit(mpb_server *self, const void *input, size_t len, int timeout_ms,
                                 mpb_done_fn done, void *ctx);

/* Submits n items as n calls of mpb_server_submit would, with one lock
 * and one wake-up: done(ctxs[i], result) runs for item i on the dispatcher
 * thread (ctxs NULL: ctx NULL for every item). Blocks while the server is
 * at capacity, up to timeout_ms for each item (0: fail fast; < 0: no
 * limit). Returns 0 with every item in; or why it stopped (MPB_EAGAIN,
 * MPB_ETIMEDOUT, MPB_ECLOSED) with *submitted (may be NULL) telling how
 * many went in first: their done runs, the others were not taken;
 * MPB_EINVAL or MPB_ELIMIT with none taken. */
MPB_EXPORT int mpb_server_submit_many(mpb_server *self, const void *const *inputs,
                                      const size_t *lens, size_t n, int timeout_ms,
                                      mpb_done_fn done, void *const *ctxs, size_t *submitted);

/* Pulls inputs from next, keeps at most capacity in flight, and passes
 * results to on_output strictly in input order, on the calling thread:
 * each result as soon as it and every result before it are done. Inputs
 * go in as soon as they are read while the pipeline is idle, and in
 * chunks up to the number already in flight while it is busy (with
 * input_ready: only as many as are there). Without input_ready, finished
 * outputs wait while next blocks. Results of inputs read before a failure
 * of next (or of the server) are still delivered. Returns 0 when every
 * input was answered, or why it stopped. */
MPB_EXPORT int mpb_server_stream(mpb_server *self, mpb_next_fn next, mpb_output_fn on_output,
                                 void *ctx, const mpb_stream_options *options);

/* A snapshot of the counters. */
MPB_EXPORT void mpb_server_stats_get(mpb_server *self, mpb_server_stats *out);

/* Copies up to max connected workers into out; returns how many there are
 * (which may exceed max). */
MPB_EXPORT size_t mpb_server_workers(mpb_server *self, mpb_worker_status *out, size_t max);

/* 1 between a successful start and stop. */
MPB_EXPORT int mpb_server_is_running(mpb_server *self);

/* Stops accepting items, answers everything in flight, shuts workers down
 * (killing those that do not leave within stop_timeout_ms). Idempotent. */
MPB_EXPORT int mpb_server_stop(mpb_server *self);

/* Stops if needed, then frees everything; NULL-safe, sets *self_p = NULL. */
MPB_EXPORT void mpb_server_destroy(mpb_server **self_p);

/* For a program about to leave at once (_exit after a second SIGINT, with
 * servers still running): removes every ipc socket file mpbatch made in
 * this process. Worker processes need nothing: each is killed by the
 * kernel when its coordinator goes (PR_SET_PDEATHSIG). Any thread; not
 * from a signal handler. */
MPB_EXPORT void mpb_emergency_cleanup(void);

#endif
