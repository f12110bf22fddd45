/*
 * A model named by MLflow's `runs:/<run_id>/<artifact path>` URI, as a
 * local file or folder a worker can open: the artifact is copied once
 * into a cache (<cache>/<run_id>/<artifact path>) through the store's
 * artifact slots, whatever the store (file, SQLite, a tracking server),
 * and later resolutions of the same URI use the copy. Its SHA-256 says
 * exactly what is served.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tracking/fs_util.h"
#include "tracking/model_uri_int.h"
#include "tracking/validate.h"

#define RUNS_SCHEME "runs:/"

int
mpb_model_uri_is_runs(const char *value)
{
    return value != NULL && strncmp(value, RUNS_SCHEME, strlen(RUNS_SCHEME)) == 0;
}

/* runs:/<run_id>/<path>: *run_id and *path are the caller's. */
static int
parse_runs_uri(const char *uri, char **run_id, char **path, char *err, size_t err_len)
{
    const char *rest = uri + strlen(RUNS_SCHEME);
    while (*rest == '/') {
        rest++;
    }
    const char *slash = strchr(rest, '/');
    if (slash == NULL || slash == rest || slash[1] == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "'%s' is not runs:/<run_id>/<artifact path>", uri);
    }
    *run_id = mpb_strndup(rest, (size_t)(slash - rest));
    *path = mpb_strdup(slash + 1);
    size_t len = strlen(*path);
    while (len > 0 && (*path)[len - 1] == '/') {
        (*path)[--len] = '\0';
    }
    /* checked before any path is built from them: the cache is a folder
     * of this host, and a URI may come from a remote registry */
    int rc = mpb__validate_run_id(*run_id, err, err_len);
    if (rc == 0) {
        rc = len == 0 ? mpb__set_error(err, err_len, MPB_EINVAL, "'%s' names no artifact", uri)
                      : mpb__validate_artifact_path(*path, err, err_len);
    }
    if (rc != 0) {
        free(*run_id);
        free(*path);
        *run_id = NULL;
        *path = NULL;
    }
    return rc;
}

void
mpb__model_cache_key(const char *text, char out[33])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)text, strlen(text));
    for (size_t i = 0; i < 16; i++) {
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    }
}

static int
hash_file(const char *path, crypto_hash_sha256_state *state, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return mpb__set_error(err, err_len, -errno, "%s: %s", path, strerror(errno));
    }
    unsigned char buf[1 << 16];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        crypto_hash_sha256_update(state, buf, (unsigned long long)got);
    }
    int rc = got < 0 ? mpb__set_error(err, err_len, -errno, "%s: %s", path, strerror(errno)) : 0;
    close(fd);
    return rc;
}

static int
name_order(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Feeds a tag byte and a 64-bit length (big-endian): what follows is then
 * read one way only. */
static void
hash_header(crypto_hash_sha256_state *state, unsigned char tag, uint64_t length)
{
    unsigned char header[9] = {tag};
    for (int i = 0; i < 8; i++) {
        header[1 + i] = (unsigned char)(length >> (56 - 8 * i));
    }
    crypto_hash_sha256_update(state, header, sizeof header);
}

/* A folder's digest covers, in name order, each entry's kind, name and,
 * for a file, its length and content (recursively): two copies of one
 * artifact folder hash alike, and different folders never do. A file
 * given alone hashes as its content, what sha256sum prints. */
static int
hash_tree(const char *path, int top, crypto_hash_sha256_state *state, char *err, size_t err_len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return mpb__set_error(err, err_len, -errno, "%s: %s", path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        if (!top) {
            hash_header(state, 'f', (uint64_t)st.st_size);
        }
        return hash_file(path, state, err, err_len);
    }
    struct dirent **entries = NULL;
    int n = scandir(path, &entries, NULL, name_order);
    if (n < 0) {
        return mpb__set_error(err, err_len, -errno, "%s: %s", path, strerror(errno));
    }
    uint64_t count = 0; /* with it, where a folder ends is known */
    for (int i = 0; i < n; i++) {
        count += strcmp(entries[i]->d_name, ".") != 0 && strcmp(entries[i]->d_name, "..") != 0;
    }
    hash_header(state, 'd', count);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = entries[i]->d_name;
        if (rc == 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            hash_header(state, 'n', strlen(name));
            crypto_hash_sha256_update(state, (const unsigned char *)name, strlen(name));
            char *child = mpb_asprintf("%s/%s", path, name);
            rc = hash_tree(child, 0, state, err, err_len);
            free(child);
        }
        free(entries[i]);
    }
    free(entries);
    return rc;
}

int
mpb_model_sha256(const char *path, char hex[65], char *err, size_t err_len)
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init(&state);
    int rc = hash_tree(path, 1, &state, err, err_len);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&state, digest);
    for (size_t i = 0; i < sizeof digest; i++) {
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    }
    return rc;
}

char *
mpb_model_cache_dir(void)
{
    const char *env = getenv("MPB_MODEL_CACHE");
    if (env != NULL && *env != '\0') {
        return mpb_strdup(env);
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg != NULL && *xdg == '/') {
        return mpb_asprintf("%s/mpbatch/models", xdg);
    }
    const char *home = getenv("HOME");
    return mpb_asprintf("%s/.cache/mpbatch/models", home != NULL && *home ? home : "/tmp");
}

/* Copies the artifact into <cache>/<run_id>/<key>/<its name>, key a digest
 * of its path: each URI has a folder of its own, so a folder artifact's
 * copy never holds only what another URI fetched inside it. Downloaded
 * into a fresh folder beside it, then renamed into place, so a copy is
 * whole or absent (two processes may race: the first rename wins). */
static int
fetch(mpb_store *store, const char *run_id, const char *path, const char *cache, char **out,
      char *err, size_t err_len)
{
    char key[33];
    mpb__model_cache_key(path, key);
    const char *name = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    char *target = mpb_asprintf("%s/%s/%s/%s", cache, run_id, key, name);
    struct stat st;
    if (stat(target, &st) == 0) {
        *out = target;
        return 0;
    }
    char *run_dir = mpb_asprintf("%s/%s", cache, run_id);
    int rc = mpb__fs_mkdir_p(run_dir);
    if (rc != 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot make %s: %s", run_dir, mpb_strerror(rc));
    }
    char *staging = mpb_asprintf("%s/.fetch-XXXXXX", run_dir);
    if (rc == 0 && mkdtemp(staging) == NULL) {
        rc = mpb__set_error(err, err_len, -errno, "%s: %s", staging, strerror(errno));
    }
    char *fetched = NULL;
    if (rc == 0) {
        rc = mpb_store_download_artifacts(store, run_id, path, staging, &fetched, err, err_len);
    }
    if (rc == 0) {
        rc = mpb__fs_mkdir_parent(target);
        if (rc != 0) {
            rc = mpb__set_error(err, err_len, rc, "cannot make the folder of %s: %s", target,
                                mpb_strerror(rc));
        }
    }
    if (rc == 0 && rename(fetched, target) != 0) {
        int why = errno; /* kept: the stat below would overwrite it */
        if (stat(target, &st) != 0) { /* no other process put it there first */
            rc = mpb__set_error(err, err_len, -why, "rename %s: %s", target, strerror(why));
        }
    }
    mpb__fs_rm_rf(staging);
    free(fetched);
    free(staging);
    free(run_dir);
    if (rc != 0) {
        free(target);
        return rc;
    }
    *out = target;
    return 0;
}

int
mpb_store_resolve_runs_uri(mpb_store *store, const char *uri, const char *cache_dir,
                           char **out_path, char sha256_hex[65], char *err, size_t err_len)
{
    *out_path = NULL;
    if (!mpb_model_uri_is_runs(uri)) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "'%s' is not a runs:/ URI", uri);
    }
    if (sodium_init() < 0) {
        return mpb__set_error(err, err_len, MPB_EIO, "libsodium did not initialise");
    }
    char *run_id = NULL;
    char *path = NULL;
    int rc = parse_runs_uri(uri, &run_id, &path, err, err_len);
    mpb_run *run = NULL;
    if (rc == 0) {
        rc = mpb_store_get_run(store, run_id, &run, err, err_len);
    }
    char *cache = cache_dir != NULL ? mpb_strdup(cache_dir) : mpb_model_cache_dir();
    if (rc == 0) {
        rc = fetch(store, run_id, path, cache, out_path, err, err_len);
    }
    if (rc == 0) {
        rc = mpb_model_sha256(*out_path, sha256_hex, err, err_len);
    }
    if (rc != 0) {
        free(*out_path);
        *out_path = NULL;
    }
    mpb_run_free(&run);
    free(cache);
    free(path);
    free(run_id);
    return rc;
}
