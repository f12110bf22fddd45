/*
 * Router plugins: a shared object exporting one `mpb_router_def` named
 * `mpb_router` chooses, for a switch servlet, which member takes each item
 * (config: `router: NAME`). It is found like a worker plugin
 * (mpb_<name>.so on the plugin search path, or a path to a .so).
 *
 * Threading: init, route and cleanup run on the server's dispatcher thread
 *   only; route must not block (it runs between every other item).
 * Processes: loaded into the coordinator's process; it must not fork.
 * Ownership: the item is borrowed for the call; the state belongs to the
 *   plugin from init until cleanup.
 */
#ifndef MPBATCH_ROUTER_H
#define MPBATCH_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"
#include "mpbatch/worker.h"

#define MPB_ROUTER_ABI_VERSION 1

typedef struct mpb_router_def {
    uint32_t abi_version; /* MPB_ROUTER_ABI_VERSION */
    const char *name;
    /* Optional: builds the state from the switch's router_options; returns
     * 0, or nonzero with a message in err (the server does not start). */
    int (*init)(const mpb_options *options, size_t n_members, void **state, char *err,
                size_t err_len);
    /* Required: the member (0..n_members-1) that takes the item, or a
     * negative number when none should (the item fails with RouteError). */
    int (*route)(void *state, const void *item, size_t len);
    /* Optional: frees the state. */
    void (*cleanup)(void *state);
    const char *doc; /* one line */
} mpb_router_def;

#endif
