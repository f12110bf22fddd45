#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/os/process.h"
#include "core/plugin.h"
#include "core/util.h"
#include "mpbatch/error.h"

#ifndef MPB_INSTALL_PLUGIN_DIR
#define MPB_INSTALL_PLUGIN_DIR "/usr/local/lib/mpbatch"
#endif

/* A growing list of directories, canonical where they exist, no repeats. */
typedef struct dir_list {
    char **dirs;
    size_t count;
    size_t cap;
} dir_list;

static void
add_dir(dir_list *list, const char *dir, size_t len)
{
    if (len == 0) {
        return;
    }
    char *given = mpb_strndup(dir, len);
    char *canonical = realpath(given, NULL);
    char *entry = canonical != NULL ? canonical : given;
    if (canonical != NULL) {
        free(given);
    }
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->dirs[i], entry) == 0) {
            free(entry);
            return;
        }
    }
    if (list->count + 1 >= list->cap) {
        list->cap = list->cap ? list->cap * 2 : 8;
        list->dirs = mpb_realloc(list->dirs, list->cap * sizeof *list->dirs);
    }
    list->dirs[list->count++] = entry;
    list->dirs[list->count] = NULL;
}

static void
add_dir_text(dir_list *list, const char *dir)
{
    add_dir(list, dir, strlen(dir));
}

char **
mpb__plugin_search_dirs(size_t *n_dirs)
{
    dir_list list = {0};
    const char *env = getenv("MPB_PLUGIN_PATH");
    while (env != NULL && *env != '\0') {
        const char *end = strchr(env, ':');
        add_dir(&list, env, end ? (size_t)(end - env) : strlen(env));
        env = end ? end + 1 : NULL;
    }
    /* Next to the program (build tree: bin/ and lib/), then next to the
     * library itself (an installed prefix: lib/ and lib/mpbatch/). */
    char *dirs[2] = {mpb__executable_dir(), mpb__library_dir()};
    const char *suffixes[2][2] = {{"/../lib", "/../lib/mpbatch"}, {"", "/mpbatch"}};
    for (size_t d = 0; d < 2; d++) {
        for (size_t i = 0; i < 2 && dirs[d] != NULL; i++) {
            char *dir = mpb_asprintf("%s%s", dirs[d], suffixes[d][i]);
            add_dir_text(&list, dir);
            free(dir);
        }
        free(dirs[d]);
    }
    add_dir_text(&list, MPB_INSTALL_PLUGIN_DIR);
    if (list.dirs == NULL) {
        list.dirs = mpb_calloc(1, sizeof *list.dirs);
    }
    if (n_dirs != NULL) {
        *n_dirs = list.count;
    }
    return list.dirs;
}

void
mpb__plugin_search_dirs_free(char ***dirs_p)
{
    if (dirs_p == NULL || *dirs_p == NULL) {
        return;
    }
    for (char **dir = *dirs_p; *dir != NULL; dir++) {
        free(*dir);
    }
    free(*dirs_p);
    *dirs_p = NULL;
}

int
mpb__plugin_resolve(const char *name_or_path, char **path, char *err, size_t err_len)
{
    *path = NULL;
    if (name_or_path == NULL || *name_or_path == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL, "no plugin named");
    }
    if (strchr(name_or_path, '/') != NULL) {
        if (access(name_or_path, R_OK) != 0) {
            return mpb__set_error(err, err_len, MPB_ENOENT, "plugin file %s: %s", name_or_path,
                                  strerror(errno));
        }
        *path = mpb_strdup(name_or_path);
        return 0;
    }
    char **dirs = mpb__plugin_search_dirs(NULL);
    for (size_t i = 0; dirs[i] != NULL && *path == NULL; i++) {
        char *candidate = mpb_asprintf("%s/mpb_%s.so", dirs[i], name_or_path);
        if (access(candidate, R_OK) == 0) {
            *path = candidate;
        } else {
            free(candidate);
        }
    }
    mpb__plugin_search_dirs_free(&dirs);
    if (*path != NULL) {
        return 0;
    }
    return mpb__set_error(err, err_len, MPB_ENOENT,
                          "plugin '%s' not found: looked for mpb_%s.so in $MPB_PLUGIN_PATH, "
                          "next to the executable (../lib), next to libmpbatch and in %s",
                          name_or_path, name_or_path, MPB_INSTALL_PLUGIN_DIR);
}

int
mpb__plugin_load(const char *name_or_path, mpb__plugin **out, char *err, size_t err_len)
{
    *out = NULL;
    char *path = NULL;
    int rc = mpb__plugin_resolve(name_or_path, &path, err, err_len);
    if (rc != 0) {
        return rc;
    }
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        rc = mpb__set_error(err, err_len, MPB_EPLUGIN, "plugin %s: %s", path, dlerror());
        goto out_free_path;
    }
    const mpb_worker_def *def = dlsym(handle, "mpb_worker");
    if (def == NULL) {
        rc = mpb__set_error(err, err_len, MPB_EPLUGIN,
                            "plugin %s does not export 'mpb_worker' (MPB_PLUGIN_EXPORT const "
                            "mpb_worker_def mpb_worker = {...})",
                            path);
        goto out_close_handle;
    }
    if (def->abi_version < MPB_WORKER_ABI_VERSION_MIN ||
        def->abi_version > MPB_WORKER_ABI_VERSION) {
        rc =
            mpb__set_error(err, err_len, MPB_EPLUGIN,
                           "plugin %s was built for worker ABI %u, this host speaks %u to %u", path,
                           def->abi_version, MPB_WORKER_ABI_VERSION_MIN, MPB_WORKER_ABI_VERSION);
        goto out_close_handle;
    }
    if (def->name == NULL || *def->name == '\0' || def->call == NULL) {
        rc = mpb__set_error(err, err_len, MPB_EPLUGIN,
                            "plugin %s: mpb_worker needs a name and call()", path);
        goto out_close_handle;
    }
    mpb__plugin *plugin = mpb_calloc(1, sizeof *plugin);
    plugin->handle = handle;
    /* an older plugin's table is shorter: copy what it has, zero the rest */
    size_t known = def->abi_version >= 3   ? sizeof *def
                   : def->abi_version == 2 ? offsetof(mpb_worker_def, batch_timeout_ms)
                                           : offsetof(mpb_worker_def, options);
    memcpy(&plugin->def_copy, def, known);
    plugin->def = &plugin->def_copy;
    plugin->path = path;
    *out = plugin;
    return 0;

out_close_handle:
    dlclose(handle);
out_free_path:
    free(path);
    return rc;
}

void
mpb__plugin_unload(mpb__plugin **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb__plugin *self = *self_p;
    dlclose(self->handle);
    free(self->path);
    free(self);
    *self_p = NULL;
}

void
mpb__plugin_short_name(const char *name_or_path, char *buf, size_t size)
{
    const char *base = strrchr(name_or_path, '/');
    snprintf(buf, size, "%s", base ? base + 1 : name_or_path);
    if (base == NULL) {
        return;
    }
    size_t len = strlen(buf);
    if (len > 3 && strcmp(buf + len - 3, ".so") == 0) { /* only the ending: mpb_a.sorted.so */
        buf[len - 3] = '\0';
    }
    if (strncmp(buf, "mpb_", 4) == 0) {
        memmove(buf, buf + 4, strlen(buf + 4) + 1);
    }
}

/* Plugins found so far, by canonical path; never unloaded. */
typedef struct found_plugin {
    char *path;
    mpb__plugin *plugin;
    struct found_plugin *next;
} found_plugin;

static pthread_mutex_t found_lock = PTHREAD_MUTEX_INITIALIZER;
static found_plugin *found_plugins;

int
mpb__plugin_find(const char *name_or_path, const mpb__plugin **out, char *err, size_t err_len)
{
    *out = NULL;
    char *path = NULL;
    int rc = mpb__plugin_resolve(name_or_path, &path, err, err_len);
    if (rc != 0) {
        return rc;
    }
    char *canonical = realpath(path, NULL);
    if (canonical == NULL) {
        int saved = errno;
        rc = mpb__set_error(err, err_len, -saved, "plugin file %s: %s", path, strerror(saved));
        free(path);
        return rc;
    }
    free(path);
    pthread_mutex_lock(&found_lock);
    found_plugin *found = found_plugins;
    while (found != NULL && strcmp(found->path, canonical) != 0) {
        found = found->next;
    }
    if (found == NULL) {
        mpb__plugin *plugin = NULL;
        rc = mpb__plugin_load(canonical, &plugin, err, err_len);
        if (rc == 0) {
            found = mpb_calloc(1, sizeof *found);
            found->path = canonical;
            canonical = NULL;
            found->plugin = plugin;
            found->next = found_plugins;
            found_plugins = found;
        }
    }
    if (found != NULL) {
        *out = found->plugin;
    }
    pthread_mutex_unlock(&found_lock);
    free(canonical);
    return rc;
}
