/*
 * Servlets: what a server runs. A ProcessServlet runs a worker plugin in N
 * local `mpb-worker` processes pinned to CPUs; a ThreadServlet runs the same
 * plugin on N threads of the calling process. Both batch greedily inside
 * each worker and answer every item with one result. Sequential, ensemble
 * and switch servlets compose others into a tree.
 *
 * Threading: build a servlet on one thread, then hand it to mpb_server_new,
 *   which owns it from then on.
 * Processes: a ProcessServlet spawns its workers when its server starts
 *   (posix_spawn; nothing of this process crosses into them).
 * Ownership: constructors copy the config; the caller owns the servlet
 *   until mpb_server_new consumes it (or frees it with mpb_servlet_destroy).
 */
#ifndef MPBATCH_SERVLET_H
#define MPBATCH_SERVLET_H

#include <stddef.h>

#include "mpbatch/common.h"

typedef struct mpb_servlet mpb_servlet;

typedef struct mpb_pool_config {
    /* Name in errors, telemetry and paths; default: the plugin's name. */
    const char *name;
    /* Plugin name ("mlp" finds mpb_mlp.so) or path to a .so. Required. */
    const char *plugin;
    /* Workers to start; default 1. 0 with `bind`: serve only with workers
     * that join from elsewhere (items wait until one does). */
    unsigned workers;
    /* "auto": one core each, spread by topology (default for processes);
     * "none": no pinning (default for threads); or one CPU list per worker
     * separated by ';', e.g. "0;1" or "0-1;2-3". */
    const char *cpus;
    /* Items per call: -1 the plugin's default, 0 call per item. */
    long long batch_size;
    /* Wait after the first item: -1 the plugin's default, 0 never wait,
     * MPB_BATCH_WAIT_AUTO (worker.h) wait only while more items are coming. */
    long long batch_wait_us;
    /* Items in flight per worker (credit); 0: 6 x batch_size, at least 64. */
    unsigned capacity;
    /* Plugin options as "key=value" strings; NULL-terminated, may be NULL. */
    const char *const *options;
    /* Process servlets: endpoint to bind so workers on other hosts can join
     * ("tcp://127.0.0.1:5555"); NULL: a private ipc:// endpoint. */
    const char *bind;
    /* Process servlets: the worker executable; NULL finds mpb-worker
     * ($MPB_WORKER_EXE, next to this program, ../bin, the install dir). */
    const char *worker_exe;
    /* How long start waits for every worker's READY; 0: 30000. */
    int start_timeout_ms;
    /* Largest item or value in bytes; 0: 64 MiB. */
    size_t max_item_bytes;
    /* Process servlets: bytes of each of the two shared-memory rings of a
     * local worker: it reads items of 256 bytes or more in place from one
     * and writes such values into the other (only descriptors cross the
     * socket); -1: 8 MiB; 0: every item and value travels on the socket.
     * Workers that join over tcp:// always use the socket. */
    long long shm_bytes;
    /* While the pool has no live worker (all crashed and backing off, or
     * none joined yet), items wait this long and then fail with
     * ServletUnavailable, naming the last crash; new items fail at once
     * until a worker is back. 0: 10000; -1: wait forever. */
    int unavailable_timeout_ms;
    /* A batch that runs longer than this is hung: its items fail with
     * Timeout and its worker is killed and replaced. 0: the plugin's
     * declared default (mpb_worker_def.batch_timeout_ms), else off; -1: off
     * whatever the plugin says. */
    int batch_timeout_ms;
    /* For idempotent plugins: items of a worker that crashed, hung or left
     * go to another worker, at most this many times, before they fail
     * with the last error (at-least-once instead of at-most-once; see
     * docs/reliability.md). 0: off. */
    unsigned retry;
    /* "bisect": a batch whose call() fails as a whole (BatchError, or a
     * nonzero status) runs again in halves, down to single items, so only
     * the items that fail get the error; and the items of a process worker
     * that crashed run again in halves, each alone on an idle worker, so
     * only the item that crashes it fails WorkerCrashed (then crashes are
     * bisected, not retried). NULL or "none": the whole batch fails. Costs
     * extra calls only when a batch fails. */
    const char *isolate;
} mpb_pool_config;

/* Fills a config with the defaults above (batch_size and wait -1). */
MPB_EXPORT void mpb_pool_config_init(mpb_pool_config *config);

/* A servlet running the plugin in local worker processes. Allocates only:
 * the config is checked and the workers start in mpb_server_start. */
MPB_EXPORT mpb_servlet *mpb_process_servlet_new(const mpb_pool_config *config);

/* A servlet running the plugin on threads of this process (inproc). */
MPB_EXPORT mpb_servlet *mpb_thread_servlet_new(const mpb_pool_config *config);

/* ---- composites: each consumes its members (the array's entries are set
 * to NULL); members may be pools or composites, nested to any depth. The
 * names of one composite's members must differ (they are path segments:
 * "pipeline/models/mlp"); start fails otherwise. ---- */

/* Stage i's value is stage i+1's input; an error at any stage is the
 * item's result, and later stages never see the item. Name "sequential". */
MPB_EXPORT mpb_servlet *mpb_sequential_servlet_new(mpb_servlet **members, size_t n);

typedef struct mpb_ensemble_options {
    /* 0 (default, fail fast): the first member error is the item's result,
     * and members that have not started on the item withdraw it. 1: each
     * member's error stays in its own slot of the array result. */
    int errors_in_place;
} mpb_ensemble_options;

MPB_EXPORT void mpb_ensemble_options_init(mpb_ensemble_options *options);

/* Every member gets the same input; the result is an array result with
 * one member result per member, in member order (result.h). options may
 * be NULL. Name "ensemble". */
MPB_EXPORT mpb_servlet *mpb_ensemble_servlet_new(mpb_servlet **members, size_t n,
                                                 const mpb_ensemble_options *options);

/* A switch's routing function: the member index that takes the item, or
 * negative for none (the item fails with RouteError). Runs on the server's
 * dispatcher thread and must not block. */
typedef int (*mpb_route_fn)(void *state, const void *item, size_t len);

/* Items whose route_by field equals value go to member `member`. */
typedef struct mpb_route {
    const char *value;
    size_t member;
} mpb_route;

typedef struct mpb_switch_config {
    /* One way to route, in this order of precedence: */
    mpb_route_fn route; /* a function of the caller's, with its state */
    void *route_state;
    const char *router;                /* a router plugin (router.h) by name or path, */
    const char *const *router_options; /* with "key=value" options, NULL-terminated */
    const char *route_by;              /* or a field of msgpack map items: */
    const mpb_route *routes;           /* its value (a string, integer or boolean, */
    size_t n_routes;                   /* compared as text) picks the member */
    /* Member for items no route matches; -1: they fail with RouteError. */
    long default_member;
} mpb_switch_config;

/* Fills a config with no route and default_member -1. */
MPB_EXPORT void mpb_switch_config_init(mpb_switch_config *config);

/* Each item goes to the one member its route picks. The config is copied.
 * Name "switch". */
MPB_EXPORT mpb_servlet *mpb_switch_servlet_new(mpb_servlet **members, size_t n,
                                               const mpb_switch_config *config);

/* Renames a servlet before it starts (the name is copied). Returns 0, or
 * MPB_EINVAL for an empty name or one with '/'. */
MPB_EXPORT int mpb_servlet_rename(mpb_servlet *servlet, const char *name);

/* The servlet's name (borrowed while the servlet lives). */
MPB_EXPORT const char *mpb_servlet_name(const mpb_servlet *servlet);

/* Frees a servlet that no server owns; NULL-safe, sets *servlet_p = NULL. */
MPB_EXPORT void mpb_servlet_destroy(mpb_servlet **servlet_p);

#endif
