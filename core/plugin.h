/*
 * Loads a worker plugin: a shared object exporting `mpb_worker`, and checks
 * the options a servlet gives it against what the plugin declares.
 * Threading: load/unload from any one thread at a time per plugin;
 *   mpb__plugin_find, the search-path and check functions from any thread.
 * Processes: load after exec, never before fork.
 * Ownership: the plugin owns its dlopen handle; def is borrowed from it.
 *   Plugins from mpb__plugin_find belong to the process and are never
 *   unloaded.
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
/* The plugin at name_or_path (resolved as mpb__plugin_resolve does), loaded
 * the first time it is asked for and kept for the life of the process:
 * later calls for the same file, by any name, return the same plugin. For
 * reading a plugin's declarations without running it. *out is borrowed
 * forever. Thread-safe. */
int mpb__plugin_find(const char *name_or_path, const mpb__plugin **out, char *err, size_t err_len);

/* The directories a plugin name is looked up in, in lookup order (see the
 * top of this file): a NULL-terminated array of absolute or as-given paths,
 * canonical where the directory exists, without repeats. *n_dirs (may be
 * NULL) gets the count. Free with mpb__plugin_search_dirs_free. */
char **mpb__plugin_search_dirs(size_t *n_dirs);
void mpb__plugin_search_dirs_free(char ***dirs_p);

/* Checks one option against the plugin's declarations: 0 when the plugin
 * declares no options (def->options == NULL), or when key is declared and
 * value reads as its type. Otherwise MPB_ECONFIG with a message for the
 * user in err ("unknown option ... of plugin ... (did you mean ...?)",
 * "option ... of plugin ... must be an integer (got 'abc')"); MPB_EPLUGIN
 * when the declaration itself is broken (an unknown type). */
int mpb__plugin_check_option(const mpb_worker_def *def, const char *key, const char *value,
                             char *err, size_t err_len);

/* mpb__plugin_check_option over every option, in order; the first failure. */
int mpb__plugin_check_options(const mpb_worker_def *def, const mpb_options *options, char *err,
                              size_t err_len);

/* The declaration of option key, or NULL (also when none are declared). */
const mpb_option_def *mpb__plugin_option(const mpb_worker_def *def, const char *key);

/* "string", "int", "float", "bool"; "?" for a value outside the enum. */
const char *mpb__option_type_name(mpb_option_type type);

#endif
