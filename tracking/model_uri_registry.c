/*
 * A model named by MLflow's registry URI, `models:/<name>/<version>`,
 * `models:/<name>@<alias>` or `models:/<name>/latest`, as a local copy: the
 * registry gives the version's source, which is then fetched as a runs:/
 * URI is (through the run's artifacts, into the model cache), or copied
 * into the cache when it is a local path or file: URI. A source that lies
 * inside its run's artifacts (<artifact root of run_id>/artifacts/<path>,
 * what MLflow's clients register) is fetched as runs:/<run_id>/<path>, so
 * it resolves whatever the artifact store's scheme.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tracking/fs_util.h"
#include "tracking/model_uri_int.h"
#include "tracking/text.h"

#define MODELS_SCHEME "models:/"
#define RUNS_SCHEME "runs:/"

int
mpb_model_uri_is_models(const char *value)
{
    return value != NULL && strncmp(value, MODELS_SCHEME, strlen(MODELS_SCHEME)) == 0;
}

/* The version a models:/ URI names; *out is the caller's. */
static int
lookup_version(mpb_store *store, const char *uri, mpb_model_version **out, char *err,
               size_t err_len)
{
    const char *rest = uri + strlen(MODELS_SCHEME);
    while (*rest == '/') {
        rest++;
    }
    const char *slash = strchr(rest, '/');
    const char *at = strrchr(rest, '@');
    int rc = 0;
    if (slash != NULL && slash != rest && slash[1] != '\0') {
        char *name = mpb_strndup(rest, (size_t)(slash - rest));
        const char *which = slash + 1;
        int64_t number = 0;
        if (strcmp(which, "latest") == 0) {
            mpb_model_version_list *list = NULL;
            rc = mpb_store_list_model_versions(store, name, &list, err, err_len);
            if (rc == 0 && list->n_versions == 0) {
                rc = mpb__set_error(err, err_len, MPB_ENOTFOUND,
                                    "registered model '%s' has no version yet", name);
            }
            if (rc == 0) {
                number = list->versions[list->n_versions - 1].version;
            }
            mpb_model_version_list_free(&list);
        } else if (mpb__parse_int64(which, &number) < 0 || number < 1) {
            rc = mpb__set_error(err, err_len, MPB_EINVAL,
                                "'%s': after the model name comes a version number or 'latest' "
                                "(stages are not supported: use models:/<name>@<alias>)",
                                uri);
        }
        if (rc == 0) {
            rc = mpb_store_get_model_version(store, name, number, out, err, err_len);
        }
        free(name);
        return rc;
    }
    if (slash == NULL && at != NULL && at != rest && at[1] != '\0') {
        char *name = mpb_strndup(rest, (size_t)(at - rest));
        rc = mpb_store_get_model_version_by_alias(store, name, at + 1, out, err, err_len);
        free(name);
        return rc;
    }
    return mpb__set_error(err, err_len, MPB_EINVAL,
                          "'%s' is not models:/<name>/<version>, models:/<name>@<alias> or "
                          "models:/<name>/latest",
                          uri);
}

/* runs:/<run_id>/<path> when source lies in the run's artifacts; else NULL. */
static char *
as_runs_uri(const mpb_model_version *version)
{
    if (strncmp(version->source, RUNS_SCHEME, strlen(RUNS_SCHEME)) == 0) {
        return mpb_strdup(version->source);
    }
    if (version->run_id == NULL || *version->run_id == '\0') {
        return NULL;
    }
    char *marker = mpb_asprintf("/%s/artifacts/", version->run_id);
    const char *found = strstr(version->source, marker);
    char *uri = NULL;
    if (found != NULL && found[strlen(marker)] != '\0') {
        uri = mpb_asprintf(RUNS_SCHEME "%s/%s", version->run_id, found + strlen(marker));
    }
    free(marker);
    return uri;
}

/* Copies a local file or folder into <cache>/sources/<key>/<its name>,
 * key a digest of the store and the source path (a model deleted and made
 * again, or the same name in another store, never finds another's copy),
 * unless a copy is there; whole or absent, as runs:/ copies. */
static int
copy_local(mpb_store *store, const mpb_model_version *version, char *source_path, const char *cache,
           char **out, char *err, size_t err_len)
{
    struct stat st;
    if (stat(source_path, &st) != 0) {
        return mpb__set_error(
            err, err_len, MPB_ENOTFOUND, "version %lld of model '%s': source %s: %s",
            (long long)version->version, version->name, source_path, strerror(errno));
    }
    size_t len = strlen(source_path);
    while (len > 1 && source_path[len - 1] == '/') { /* file:///dir/ names dir */
        source_path[--len] = '\0';
    }
    const char *base = strrchr(source_path, '/');
    base = base != NULL && base[1] != '\0' ? base + 1 : "source";
    char *identity = mpb_asprintf("%s\n%s", mpb_store_uri(store), source_path);
    char key[33];
    mpb__model_cache_key(identity, key);
    free(identity);
    char *dir = mpb_asprintf("%s/sources/%s", cache, key);
    char *target = mpb_asprintf("%s/%s", dir, base);
    if (stat(target, &st) == 0) {
        free(dir);
        *out = target;
        return 0;
    }
    int rc = mpb__fs_mkdir_p(dir);
    char *staging = mpb_asprintf("%s/.fetch-XXXXXX", dir);
    if (rc == 0 && mkdtemp(staging) == NULL) {
        rc = -errno;
    }
    char *copy = mpb_asprintf("%s/%s", staging, base);
    if (rc == 0) {
        rc = S_ISDIR(st.st_mode) ? mpb__fs_copy_tree_nolinks(source_path, copy)
                                 : mpb__fs_copy_file(source_path, copy);
    }
    if (rc == 0 && rename(copy, target) != 0) {
        int why = errno; /* kept: the stat below would overwrite it */
        if (stat(target, &st) != 0) { /* no other process put it there first */
            rc = -why;
        }
    }
    if (rc != 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot copy %s into %s: %s", source_path, dir,
                            mpb_strerror(rc));
    }
    mpb__fs_rm_rf(staging);
    free(copy);
    free(staging);
    free(dir);
    if (rc != 0) {
        free(target);
        return rc;
    }
    *out = target;
    return 0;
}

static int
fetch_source(mpb_store *store, const mpb_model_version *version, const char *cache, char **out,
             char sha256_hex[65], char *err, size_t err_len)
{
    char *runs_uri = as_runs_uri(version);
    if (runs_uri != NULL) {
        int rc = mpb_store_resolve_runs_uri(store, runs_uri, cache, out, sha256_hex, err, err_len);
        free(runs_uri);
        return rc;
    }
    char *path = mpb__file_uri_to_path(version->source);
    if (path == NULL && version->source[0] == '/') {
        path = mpb_strdup(version->source);
    }
    if (path == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP,
                              "version %lld of model '%s' has source '%s', which this store "
                              "cannot fetch (register a runs:/ URI, a local path or a file: URI)",
                              (long long)version->version, version->name, version->source);
    }
    int rc = copy_local(store, version, path, cache, out, err, err_len);
    free(path);
    if (rc == 0) {
        rc = mpb_model_sha256(*out, sha256_hex, err, err_len);
    }
    return rc;
}

int
mpb_store_resolve_model_uri(mpb_store *self, const char *uri, const char *cache_dir,
                            char **out_path, char sha256_hex[65], int64_t *out_version, char *err,
                            size_t err_len)
{
    MPB_ASSERT(self != NULL && out_path != NULL);
    *out_path = NULL;
    if (out_version != NULL) {
        *out_version = 0;
    }
    if (mpb_model_uri_is_runs(uri)) {
        return mpb_store_resolve_runs_uri(self, uri, cache_dir, out_path, sha256_hex, err, err_len);
    }
    if (!mpb_model_uri_is_models(uri)) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "'%s' is neither a runs:/ nor a models:/ URI", uri);
    }
    mpb_model_version *version = NULL;
    int rc = lookup_version(self, uri, &version, err, err_len);
    char *cache = cache_dir != NULL ? mpb_strdup(cache_dir) : mpb_model_cache_dir();
    if (rc == 0) {
        rc = fetch_source(self, version, cache, out_path, sha256_hex, err, err_len);
    }
    if (rc == 0 && out_version != NULL) {
        *out_version = version->version;
    }
    if (rc != 0) {
        free(*out_path);
        *out_path = NULL;
    }
    free(cache);
    mpb_model_version_free(&version);
    return rc;
}
