/*
 * Servlets: what a server runs. A ProcessServlet runs a worker plugin in N
 * local `mpb-worker` processes pinned to CPUs; a ThreadServlet runs the same
 * plugin on N threads of the calling process. Both batch greedily inside
 * each worker and answer every item with one result.
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
    /* Wait after the first item: -1 the plugin's default, 0 never wait. */
    long long batch_wait_us;
    /* Items in flight per worker (credit); 0: 2 x batch_size, at least 16. */
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
} mpb_pool_config;

/* Fills a config with the defaults above (batch_size and wait -1). */
MPB_EXPORT void mpb_pool_config_init(mpb_pool_config *config);

/* A servlet running the plugin in local worker processes. Allocates only:
 * the config is checked and the workers start in mpb_server_start. */
MPB_EXPORT mpb_servlet *mpb_process_servlet_new(const mpb_pool_config *config);

/* A servlet running the plugin on threads of this process (inproc). */
MPB_EXPORT mpb_servlet *mpb_thread_servlet_new(const mpb_pool_config *config);

/* The servlet's name (borrowed while the servlet lives). */
MPB_EXPORT const char *mpb_servlet_name(const mpb_servlet *servlet);

/* Frees a servlet that no server owns; NULL-safe, sets *servlet_p = NULL. */
MPB_EXPORT void mpb_servlet_destroy(mpb_servlet **servlet_p);

#endif
