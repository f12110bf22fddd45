#include <dlfcn.h>
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

static char *
try_dir(const char *dir, size_t dir_len, const char *name)
{
    char *candidate = mpb_asprintf("%.*s/mpb_%s.so", (int)dir_len, dir, name);
    if (access(candidate, R_OK) == 0) {
        return candidate;
    }
    free(candidate);
    return NULL;
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
    const char *env = getenv("MPB_PLUGIN_PATH");
    while (env != NULL && *env != '\0') {
        const char *end = strchr(env, ':');
        size_t len = end ? (size_t)(end - env) : strlen(env);
        if (len > 0 && (*path = try_dir(env, len, name_or_path)) != NULL) {
            return 0;
        }
        env = end ? end + 1 : NULL;
    }
    /* Next to the program (build tree: bin/ and lib/), then next to the
     * library itself (an installed prefix: lib/ and lib/mpbatch/). */
    char *dirs[2] = {mpb__executable_dir(), mpb__library_dir()};
    const char *suffixes[2][2] = {{"/../lib", "/../lib/mpbatch"}, {"", "/mpbatch"}};
    for (size_t d = 0; d < 2; d++) {
        for (size_t i = 0; i < 2 && dirs[d] != NULL && *path == NULL; i++) {
            char *dir = mpb_asprintf("%s%s", dirs[d], suffixes[d][i]);
            *path = try_dir(dir, strlen(dir), name_or_path);
            free(dir);
        }
        free(dirs[d]);
    }
    if (*path != NULL) {
        return 0;
    }
    *path = try_dir(MPB_INSTALL_PLUGIN_DIR, strlen(MPB_INSTALL_PLUGIN_DIR), name_or_path);
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
        rc = mpb__set_error(err, err_len, MPB_EPLUGIN,
                            "plugin %s was built for worker ABI %u, this host speaks %u to %u",
                            path, def->abi_version, MPB_WORKER_ABI_VERSION_MIN,
                            MPB_WORKER_ABI_VERSION);
        goto out_close_handle;
    }
    if (def->name == NULL || *def->name == '\0' || def->call == NULL) {
        rc = mpb__set_error(err, err_len, MPB_EPLUGIN,
                            "plugin %s: mpb_worker needs a name and call()", path);
        goto out_close_handle;
    }
    mpb__plugin *plugin = mpb_calloc(1, sizeof *plugin);
    plugin->handle = handle;
    if (def->abi_version >= 2) {
        plugin->def_copy = *def;
    } else {
        memcpy(&plugin->def_copy, def, offsetof(mpb_worker_def, options));
    }
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
    char *suffix = strstr(buf, ".so");
    if (suffix != NULL) {
        *suffix = '\0';
    }
    if (strncmp(buf, "mpb_", 4) == 0) {
        memmove(buf, buf + 4, strlen(buf + 4) + 1);
    }
}
