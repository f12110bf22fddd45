/*
 * Loads a worker plugin: a shared object exporting `mpb_worker`.
 * Threading: load/unload from any one thread at a time per plugin.
 * Processes: load after exec, never before fork.
 * Ownership: the plugin owns its dlopen handle; def is borrowed from it.
 *
 * A name without '/' is looked up as mpb_<name>.so in, in order:
 * $MPB_PLUGIN_PATH (':'-separated), <executable dir>/../lib,
 * <executable dir>/../lib/mpbatch, <libmpbatch dir>, <libmpbatch dir>/mpbatch,
 * the installed plugin directory.
 */
#ifndef MPB_CORE_PLUGIN_H
#define MPB_CORE_PLUGIN_H

#include <stddef.h>

#include "mpbatch/worker.h"

typedef struct mpb__plugin {
    void *handle;
    /* The plugin's table, copied; fields newer than the plugin's ABI
     * version are zero, so readers never look past a v1 table's end. */
    const mpb_worker_def *def;
    mpb_worker_def def_copy;
    char *path;
} mpb__plugin;

int mpb__plugin_load(const char *name_or_path, mpb__plugin **out, char *err, size_t err_len);

/* Resolves a plugin name to a file path without loading it (caller frees). */
int mpb__plugin_resolve(const char *name_or_path, char **path, char *err, size_t err_len);

void mpb__plugin_unload(mpb__plugin **self_p);

/* The name a plugin goes by when nothing names it: "mlp" for "mlp" and for
 * "/opt/x/mpb_mlp.so". */
void mpb__plugin_short_name(const char *name_or_path, char *buf, size_t size);

#endif
