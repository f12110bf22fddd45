/*
 * Joining: a worker started by hand (on this host or another) takes its
 * servlet's settings from the coordinator instead of its own defaults. It
 * connects a short-lived DEALER, sends HELLO, and gets SETTINGS (the
 * servlet's plugin, batch size and wait, capacity, item limit, isolation,
 * plugin options) or an ERROR saying why it is refused (another plugin).
 * Then it runs as any worker: connect, init, READY.
 *
 * Threading: the caller's thread. Processes: none. Ownership: a
 *   mpb__joined's strings are its own (mpb__joined_free).
 */
#ifndef MPB_CORE_JOIN_H
#define MPB_CORE_JOIN_H

#include <stddef.h>

#include "core/worker_loop.h"

typedef struct mpb__joined {
    char *plugin;            /* the servlet's plugin, a name or a path */
    long long batch_size;    /* -1: the worker's own */
    long long batch_wait_us; /* -1: the worker's own; MPB_BATCH_WAIT_AUTO */
    long long capacity;      /* -1: the worker's own */
    long long max_item_bytes;
    int isolate_bisect;
    char **options; /* "KEY=VALUE" */
    size_t n_options;
} mpb__joined;

/* Asks the coordinator at config->endpoint (with config's CURVE keys) for
 * its servlet's settings, waiting up to config->coordinator_timeout_ms
 * (0: 10 s; < 0: forever). plugin: what this worker was told to run, or
 * NULL. Returns 0 with *out filled, or a status with err (refused: the
 * coordinator's reason; no answer in time). */
int mpb__worker_join(const mpb__worker_config *config, const char *plugin, mpb__joined *out,
                     char *err, size_t err_len);

void mpb__joined_free(mpb__joined *joined);

#endif
