/*
 * REST store: a run's artifacts. A run whose artifact_uri is
 * `mlflow-artifacts:/PATH` (what a server with proxied artifacts gives) goes
 * through the server's artifact proxy: PUT .../mlflow-artifacts/artifacts/
 * PATH/FILE uploads a file, GET of the same path downloads it, GET
 * .../mlflow-artifacts/artifacts?path=PATH lists a folder's children
 * (basenames, is_dir, file_size). `mlflow-artifacts://HOST:PORT/PATH` names
 * another proxy server. A local path or file: URI (a shared filesystem) is
 * read and written directly; any other scheme (s3:, gs:, ...) is MPB_ENOTSUP.
 * Threads and failures as reststore.c says; each file is one exchange.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/fs_util.h"
#include "tracking/reststore_int.h"
#include "tracking/store_int.h"

#define PROXY_SCHEME "mlflow-artifacts:"

typedef struct proxy {
    mpb__reststore *store;
    const char *run_id;
    char *base; /* the server's base URL */
    char *root; /* the run's folder below the proxy root, no leading '/' */
} proxy;

static void
proxy_clear(proxy *p)
{
    free(p->base);
    free(p->root);
}

/* The run's artifact URI (caller frees). */
static int
artifact_uri(mpb__reststore *store, const char *run_id, char **out, char *err, size_t err_len)
{
    mpb_run *run = NULL;
    int rc = mpb__reststore_get_run(store, run_id, &run, err, err_len);
    if (rc == 0) {
        *out = mpb_strdup(run->info.artifact_uri);
        mpb_run_free(&run);
    }
    return rc;
}

/* 1: proxied (p filled); 0: a local URI; MPB_ENOTSUP otherwise. */
static int
resolve(mpb__reststore *store, const char *run_id, const char *uri, proxy *p, char *err,
        size_t err_len)
{
    if (uri[0] == '/' || strncasecmp(uri, "file:", 5) == 0) {
        return 0;
    }
    if (strncasecmp(uri, PROXY_SCHEME, strlen(PROXY_SCHEME)) != 0) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP,
                              "artifact URI '%s' of run %s: the REST store reaches artifacts "
                              "through the server's proxy (mlflow-artifacts:) or a local path "
                              "only",
                              uri, run_id);
    }
    const char *rest = uri + strlen(PROXY_SCHEME);
    *p = (proxy){.store = store, .run_id = run_id};
    if (strncmp(rest, "//", 2) == 0) { /* mlflow-artifacts://host:port/path */
        size_t host = strcspn(rest + 2, "/");
        const char *scheme_end = strstr(store->base, "://");
        p->base = mpb_asprintf("%.*s://%.*s", (int)(scheme_end - store->base), store->base,
                               (int)host, rest + 2);
        rest += 2 + host;
    } else {
        p->base = mpb_strdup(store->base);
    }
    while (*rest == '/') {
        rest++;
    }
    p->root = mpb_strdup(rest);
    return 1;
}

/* The proxy URL of root/path, each segment escaped (caller frees). */
static char *
file_url(const proxy *p, const char *path)
{
    char *joined =
        path != NULL && *path != '\0' ? mpb_asprintf("%s/%s", p->root, path) : mpb_strdup(p->root);
    char *url = mpb_asprintf("%s%s", p->base, MPB__REST_ARTIFACTS_API);
    char *save = NULL;
    for (char *segment = strtok_r(joined, "/", &save); segment != NULL;
         segment = strtok_r(NULL, "/", &save)) {
        char *escaped = mpb__rest_escape(segment);
        char *longer = mpb_asprintf("%s/%s", url, escaped);
        free(escaped);
        free(url);
        url = longer;
    }
    free(joined);
    return url;
}

static char *
join_rel(const char *dir, const char *name)
{
    return dir != NULL && *dir != '\0' ? mpb_asprintf("%s/%s", dir, name) : mpb_strdup(name);
}

static const char *
base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

/* ---- Upload ---- */

static int
put_file(const proxy *p, const char *rel_path, const char *local, char *err, size_t err_len)
{
    char *url = file_url(p, rel_path);
    mpb__rest_exchange x = {
        .method = "PUT", .url = url, .what = "PUT mlflow-artifacts", .upload_path = local};
    int rc = mpb__rest_exchange_run(p->store, &x, err, err_len);
    mpb__rest_exchange_clear(&x);
    free(url);
    return rc;
}

typedef struct upload_walk {
    const proxy *p;
    const char *artifact_path;
    char *err;
    size_t err_len;
} upload_walk;

static int
upload_one(const char *rel_path, const char *abs_path, void *ctx)
{
    upload_walk *walk = ctx;
    char *dest = join_rel(walk->artifact_path, rel_path);
    int rc = put_file(walk->p, dest, abs_path, walk->err, walk->err_len);
    free(dest);
    return rc;
}

int
mpb__reststore_log_artifact(void *backend, const char *run_id, const char *local_path,
                            const char *artifact_path, char *err, size_t err_len)
{
    char *uri = NULL;
    proxy p = {0};
    int rc = artifact_uri(backend, run_id, &uri, err, err_len);
    rc = rc < 0 ? rc : resolve(backend, run_id, uri, &p, err, err_len);
    if (rc == 0) {
        rc = mpb__local_artifacts_log(uri, run_id, local_path, artifact_path, err, err_len);
    } else if (rc == 1) {
        struct stat st;
        if (stat(local_path, &st) < 0) {
            rc = mpb__set_error(err, err_len, MPB_ENOENT, "cannot read '%s'", local_path);
        } else if (S_ISDIR(st.st_mode)) {
            upload_walk walk = {&p, artifact_path, err, err_len};
            rc = mpb__fs_walk_files(local_path, upload_one, &walk);
        } else {
            char *dest = join_rel(artifact_path, base_name(local_path));
            rc = put_file(&p, dest, local_path, err, err_len);
            free(dest);
        }
    }
    proxy_clear(&p);
    free(uri);
    return rc;
}

/* ---- List ---- */

static int
compare_files(const void *a, const void *b)
{
    return strcmp(((const mpb_artifact_file *)a)->path, ((const mpb_artifact_file *)b)->path);
}

static int
list_proxy(const proxy *p, const char *path, mpb_artifact_list **out, char *err, size_t err_len)
{
    char *joined =
        path != NULL && *path != '\0' ? mpb_asprintf("%s/%s", p->root, path) : mpb_strdup(p->root);
    char *escaped = mpb__rest_escape(joined);
    char *url = mpb_asprintf("%s%s?path=%s", p->base, MPB__REST_ARTIFACTS_API, escaped);
    free(escaped);
    free(joined);
    mpb__rest_exchange x = {.method = "GET", .url = url, .what = "GET mlflow-artifacts list"};
    int rc = mpb__rest_exchange_run(p->store, &x, err, err_len);
    cJSON *answer =
        rc == 0 ? mpb__rest_json_parse(x.body ? x.body : "{}", x.body ? x.body_len : 2) : NULL;
    if (rc == 0 && !cJSON_IsObject(answer)) {
        rc = mpb__reststore_malformed(p->store, x.what, err, err_len);
    }
    mpb__rest_exchange_clear(&x);
    free(url);
    if (rc < 0) {
        cJSON_Delete(answer);
        return rc;
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(answer, "files");
    mpb_artifact_list *list = mpb_calloc(1, sizeof *list);
    list->files = mpb_calloc((size_t)cJSON_GetArraySize(files) + 1, sizeof *list->files);
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, files)
    {
        const char *name = mpb__rest_json_str(item, "path");
        if (name == NULL || strstr(name, "..") != NULL) {
            continue; /* nothing may point outside the folder */
        }
        mpb_artifact_file *file = &list->files[list->n_files++];
        file->path = join_rel(path, base_name(name));
        file->is_dir = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "is_dir"));
        file->file_size = -1;
        if (!file->is_dir) {
            (void)mpb__rest_json_int64(item, "file_size", &file->file_size);
        }
    }
    cJSON_Delete(answer);
    qsort(list->files, list->n_files, sizeof *list->files, compare_files);
    *out = list;
    return 0;
}

int
mpb__reststore_list_artifacts(void *backend, const char *run_id, const char *path,
                              mpb_artifact_list **out, char *err, size_t err_len)
{
    char *uri = NULL;
    proxy p = {0};
    int rc = artifact_uri(backend, run_id, &uri, err, err_len);
    rc = rc < 0 ? rc : resolve(backend, run_id, uri, &p, err, err_len);
    if (rc == 0) {
        rc = mpb__local_artifacts_list(uri, run_id, path, out, err, err_len);
    } else if (rc == 1) {
        rc = list_proxy(&p, path, out, err, err_len);
    }
    proxy_clear(&p);
    free(uri);
    return rc;
}

/* ---- Download ---- */

static int
get_file(const proxy *p, const char *path, const char *dest, char *err, size_t err_len)
{
    char *url = file_url(p, path);
    mpb__rest_exchange x = {
        .method = "GET", .url = url, .what = "GET mlflow-artifacts", .download_path = dest};
    int rc = mpb__rest_exchange_run(p->store, &x, err, err_len);
    if (rc < 0 && x.status == 404) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "No artifact '%s' in run %s", path,
                            p->run_id);
    }
    mpb__rest_exchange_clear(&x);
    free(url);
    return rc;
}

/* Copies the folder `path` into the local folder dest, recursively. */
static int
get_tree(const proxy *p, const char *path, const char *dest, char *err, size_t err_len)
{
    mpb_artifact_list *list = NULL;
    int rc = list_proxy(p, path, &list, err, err_len);
    if (rc == 0) {
        rc = mpb__fs_mkdir_p(dest);
    }
    for (size_t i = 0; rc == 0 && i < list->n_files; i++) {
        char *local = mpb__path_join(dest, base_name(list->files[i].path));
        rc = list->files[i].is_dir ? get_tree(p, list->files[i].path, local, err, err_len)
                                   : get_file(p, list->files[i].path, local, err, err_len);
        free(local);
    }
    mpb_artifact_list_free(&list);
    return rc;
}

int
mpb__reststore_download_artifacts(void *backend, const char *run_id, const char *path,
                                  const char *dst_dir, char **out_local_path, char *err,
                                  size_t err_len)
{
    char *uri = NULL;
    proxy p = {0};
    int rc = artifact_uri(backend, run_id, &uri, err, err_len);
    rc = rc < 0 ? rc : resolve(backend, run_id, uri, &p, err, err_len);
    if (rc == 0) {
        rc =
            mpb__local_artifacts_download(uri, run_id, path, dst_dir, out_local_path, err, err_len);
    } else if (rc == 1) {
        int whole = path == NULL || *path == '\0';
        char *dest = whole ? mpb_strdup(dst_dir) : mpb__path_join(dst_dir, base_name(path));
        mpb_artifact_list *children = NULL;
        /* A folder lists children; a file (or nothing) lists none, as MLflow decides. */
        rc = whole ? 0 : list_proxy(&p, path, &children, err, err_len);
        int is_dir = whole || (rc == 0 && children->n_files > 0);
        mpb_artifact_list_free(&children);
        if (rc == 0) {
            rc = is_dir ? get_tree(&p, path, dest, err, err_len)
                        : get_file(&p, path, dest, err, err_len);
        }
        if (rc == 0 && out_local_path != NULL) {
            *out_local_path = dest;
            dest = NULL;
        }
        free(dest);
    }
    proxy_clear(&p);
    free(uri);
    return rc;
}
