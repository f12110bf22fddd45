/*
 * Artifacts of a run. The public calls check their arguments and go through
 * the backend's slots; the mpb__local_artifacts_* helpers are the artifact
 * repository of backends whose runs keep local artifact URIs (MLflow's
 * LocalArtifactRepository): files below the folder named by the run's
 * artifact_uri. Every file appears whole: it is copied to a temp name in the
 * destination folder and renamed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/validate.h"

/* Local folder of a run's artifacts; MPB_ENOTSUP for non-local URIs. */
static int
artifact_root(const char *uri, const char *run_id, char **out_dir, char *err, size_t err_len)
{
    char *dir = uri[0] == '/' ? mpb_strdup(uri) : mpb__file_uri_to_path(uri);
    if (dir == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP,
                              "artifact URI '%s' of run %s is not a local file: URI", uri, run_id);
    }
    *out_dir = dir;
    return 0;
}

static char *
join_optional(const char *dir, const char *path)
{
    return path == NULL || *path == '\0' ? mpb_strdup(dir) : mpb__path_join(dir, path);
}

/* MPB_EINVAL when a component of path (below root) that exists is a
 * symbolic link: following it would read or write outside the run's
 * artifacts. */
static int
check_no_links(const char *root, const char *path, char *err, size_t err_len)
{
    if (path == NULL || *path == '\0') {
        return 0;
    }
    char *prefix = mpb__path_join(root, path);
    size_t root_len = strlen(root);
    int rc = 0;
    for (char *end = prefix + root_len + 1; rc == 0 && end != NULL;) {
        char *slash = strchr(end, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        struct stat st;
        if (lstat(prefix, &st) == 0 && S_ISLNK(st.st_mode)) {
            rc = mpb__set_error(err, err_len, MPB_EINVAL,
                                "artifact path '%s' goes through a symbolic link (%s): refused",
                                path, prefix + root_len + 1);
        }
        if (slash != NULL) {
            *slash = '/';
            end = slash + 1;
        } else {
            end = NULL;
        }
    }
    free(prefix);
    return rc;
}

/* Local path of `path` (NULL or "" for the root) among a run's artifacts,
 * path being known to stay inside and to pass through no symbolic link.
 * Caller frees *out. */
static int
artifact_local_path(const char *uri, const char *run_id, const char *path, char **out, char *err,
                    size_t err_len)
{
    char *root = NULL;
    int rc = artifact_root(uri, run_id, &root, err, err_len);
    if (rc == 0) {
        rc = check_no_links(root, path, err, err_len);
    }
    if (rc == 0) {
        *out = join_optional(root, path);
    }
    free(root);
    return rc;
}

static const char *
base_name(const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') {
        len--;
    }
    const char *at = path + len;
    while (at > path && at[-1] != '/') {
        at--;
    }
    return at;
}

int
mpb__local_artifacts_log(const char *artifact_uri, const char *run_id, const char *local_path,
                         const char *artifact_path, char *err, size_t err_len)
{
    int rc = 0;
    struct stat st;
    if (stat(local_path, &st) < 0) {
        rc = mpb__set_error(err, err_len, -errno, "cannot read '%s': %s", local_path,
                            mpb_strerror(-errno));
    }
    char *root = NULL;
    if (rc == 0) {
        rc = artifact_root(artifact_uri, run_id, &root, err, err_len);
    }
    if (rc == 0) {
        rc = check_no_links(root, artifact_path, err, err_len);
    }
    if (rc < 0) {
        free(root);
        return rc;
    }
    char *dest_dir = join_optional(root, artifact_path);
    rc = mpb__fs_mkdir_p(dest_dir);
    if (rc == 0 && S_ISDIR(st.st_mode)) {
        rc = mpb__fs_copy_tree(local_path, dest_dir);
    } else if (rc == 0) {
        char *dest = mpb__path_join(dest_dir, base_name(local_path));
        rc = mpb__fs_copy_file(local_path, dest);
        free(dest);
    }
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot copy '%s' into %s: %s", local_path, dest_dir,
                            mpb_strerror(rc));
    }
    free(dest_dir);
    free(root);
    return rc;
}

int
mpb__local_artifacts_list(const char *artifact_uri, const char *run_id, const char *path,
                          mpb_artifact_list **out, char *err, size_t err_len)
{
    char *dir = NULL;
    int rc = artifact_local_path(artifact_uri, run_id, path, &dir, err, err_len);
    if (rc < 0) {
        return rc;
    }
    mpb_artifact_list *list = mpb_calloc(1, sizeof *list);
    char **names = NULL;
    size_t n = 0;
    if (mpb__fs_is_dir(dir) && (rc = mpb__fs_list(dir, 0, &names, &n)) < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot list %s: %s", dir, mpb_strerror(rc));
    }
    list->files = mpb_calloc(n ? n : 1, sizeof *list->files);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(names[i], MPB__TMP_PREFIX, strlen(MPB__TMP_PREFIX)) == 0) {
            continue;
        }
        char *full = mpb__path_join(dir, names[i]);
        struct stat st;
        if (lstat(full, &st) == 0 && !S_ISLNK(st.st_mode)) { /* links are not artifacts */
            mpb_artifact_file *file = &list->files[list->n_files++];
            file->path = path == NULL || *path == '\0' ? mpb_strdup(names[i])
                                                       : mpb__path_join(path, names[i]);
            file->is_dir = S_ISDIR(st.st_mode);
            file->file_size = file->is_dir ? -1 : (int64_t)st.st_size;
        }
        free(full);
    }
    mpb__fs_names_free(names, n);
    free(dir);
    if (rc < 0) {
        mpb_artifact_list_free(&list);
        return rc;
    }
    *out = list;
    return 0;
}

int
mpb__local_artifacts_download(const char *artifact_uri, const char *run_id, const char *path,
                              const char *dst_dir, char **out_local_path, char *err, size_t err_len)
{
    char *src = NULL;
    int rc = artifact_local_path(artifact_uri, run_id, path, &src, err, err_len);
    if (rc < 0) {
        return rc;
    }
    int whole = path == NULL || *path == '\0';
    char *dest = whole ? mpb_strdup(dst_dir) : mpb__path_join(dst_dir, base_name(path));
    struct stat st;
    if (stat(src, &st) < 0) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "No artifact '%s' in run %s",
                            path ? path : "", run_id);
    } else {
        rc = mpb__fs_mkdir_p(dst_dir);
        if (rc == 0) {
            rc = S_ISDIR(st.st_mode) ? mpb__fs_copy_tree_nolinks(src, dest)
                                     : mpb__fs_copy_file(src, dest);
        }
        if (rc < 0) {
            rc = mpb__set_error(err, err_len, rc, "cannot copy %s to %s: %s", src, dest,
                                mpb_strerror(rc));
        }
    }
    if (rc == 0 && out_local_path != NULL) {
        *out_local_path = dest;
        dest = NULL;
    }
    free(dest);
    free(src);
    return rc;
}

/* ---- The public calls ---- */

/* Checks run_id and path; with a local-artifact backend also gets the
 * run's artifact URI (*uri, the caller's; NULL for other backends). */
static int
prepare(mpb_store *self, const char *run_id, const char *path, char **uri, char *err,
        size_t err_len)
{
    *uri = NULL;
    int rc = mpb__validate_run_id(run_id, err, err_len);
    if (rc == 0) {
        rc = mpb__validate_artifact_path(path, err, err_len);
    }
    if (rc == 0 && self->ops->run_artifact_uri != NULL) {
        rc = self->ops->run_artifact_uri(self->backend, run_id, uri, err, err_len);
    }
    return rc;
}

int
mpb_store_log_artifact(mpb_store *self, const char *run_id, const char *local_path,
                       const char *artifact_path, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && local_path != NULL);
    char *uri = NULL;
    int rc = prepare(self, run_id, artifact_path, &uri, err, err_len);
    if (rc == 0) {
        rc = uri != NULL
                 ? mpb__local_artifacts_log(uri, run_id, local_path, artifact_path, err, err_len)
                 : self->ops->log_artifact(self->backend, run_id, local_path, artifact_path, err,
                                           err_len);
    }
    free(uri);
    return rc;
}

int
mpb_store_list_artifacts(mpb_store *self, const char *run_id, const char *path,
                         mpb_artifact_list **out, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    char *uri = NULL;
    int rc = prepare(self, run_id, path, &uri, err, err_len);
    if (rc == 0) {
        rc = uri != NULL
                 ? mpb__local_artifacts_list(uri, run_id, path, out, err, err_len)
                 : self->ops->list_artifacts(self->backend, run_id, path, out, err, err_len);
    }
    free(uri);
    return rc;
}

int
mpb_store_download_artifacts(mpb_store *self, const char *run_id, const char *path,
                             const char *dst_dir, char **out_local_path, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && dst_dir != NULL);
    char *uri = NULL;
    int rc = prepare(self, run_id, path, &uri, err, err_len);
    if (rc == 0) {
        rc = uri != NULL ? mpb__local_artifacts_download(uri, run_id, path, dst_dir, out_local_path,
                                                         err, err_len)
                         : self->ops->download_artifacts(self->backend, run_id, path, dst_dir,
                                                         out_local_path, err, err_len);
    }
    free(uri);
    return rc;
}
