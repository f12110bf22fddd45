#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

/* Fault injection: after `fault_budget` successful writing operations, every
 * further one fails with `fault_status` (tests only; -1 = disarmed). */
static atomic_int fault_budget = -1;
static atomic_int fault_status = 0;

void
mpb__fs_fault_arm(int succeed_first, int status)
{
    atomic_store(&fault_status, status);
    atomic_store(&fault_budget, succeed_first);
}

void
mpb__fs_fault_disarm(void)
{
    atomic_store(&fault_budget, -1);
}

static int
fault_check(void)
{
    int budget = atomic_load(&fault_budget);
    while (budget >= 0) {
        if (budget == 0) {
            return atomic_load(&fault_status);
        }
        if (atomic_compare_exchange_weak(&fault_budget, &budget, budget - 1)) {
            return 0;
        }
    }
    return 0;
}

char *
mpb__path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir);
    if (len > 0 && dir[len - 1] == '/') {
        return mpb_asprintf("%s%s", dir, name);
    }
    return mpb_asprintf("%s/%s", dir, name);
}

int
mpb__fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int
mpb__fs_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int
mpb__fs_mkdir(const char *path)
{
    int rc = fault_check();
    if (rc < 0) {
        return rc;
    }
    if (mkdir(path, 0777) < 0) {
        return errno == EEXIST ? MPB_EEXIST : -errno;
    }
    return 0;
}

int
mpb__fs_mkdir_p(const char *path)
{
    if (mpb__fs_is_dir(path)) {
        return 0;
    }
    char *copy = mpb_strdup(path);
    int rc = 0;
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        rc = mpb__fs_mkdir(copy);
        *p = '/';
        if (rc < 0 && rc != MPB_EEXIST) {
            goto out_free;
        }
    }
    rc = mpb__fs_mkdir(copy);
    if (rc == MPB_EEXIST) {
        rc = mpb__fs_is_dir(copy) ? 0 : MPB_ENOTDIR;
    }
out_free:
    free(copy);
    return rc;
}

int
mpb__fs_mkdir_parent(const char *path)
{
    char *parent = mpb_strdup(path);
    char *slash = strrchr(parent, '/');
    int rc = 0;
    if (slash != NULL) {
        *slash = '\0';
        rc = mpb__fs_mkdir_p(parent);
    }
    free(parent);
    return rc;
}

int
mpb__fs_read_file(const char *path, size_t limit, char **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    mpb__strbuf buf = {0};
    char chunk[8192];
    int rc = 0;
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            rc = -errno;
            break;
        }
        if (got == 0) {
            break;
        }
        if (buf.len + (size_t)got > limit) {
            rc = MPB_ELIMIT;
            break;
        }
        mpb__strbuf_append(&buf, chunk, (size_t)got);
    }
    close(fd);
    if (rc < 0) {
        mpb__strbuf_clear(&buf);
        return rc;
    }
    if (out_len != NULL) {
        *out_len = buf.len;
    }
    *out = mpb__strbuf_take(&buf);
    return 0;
}

static int
write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        int rc = fault_check();
        if (rc < 0) {
            return rc;
        }
        ssize_t done = write(fd, data, len);
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done < 0) {
            return -errno;
        }
        data += done;
        len -= (size_t)done;
    }
    return 0;
}

/* Opens a new uniquely named temp file in dir (mode 0666 minus umask, as
 * MLflow's files). */
static int
temp_open(const char *dir, char **out_path, int *out_fd)
{
    int rc = fault_check();
    if (rc < 0) {
        return rc;
    }
    for (int attempt = 0; attempt < 16; attempt++) {
        char suffix[33];
        rc = mpb__uuid4_hex(suffix);
        if (rc < 0) {
            return rc;
        }
        char *path = mpb_asprintf("%s/" MPB__TMP_PREFIX "%.12s", dir, suffix);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *out_path = path;
            *out_fd = fd;
            return 0;
        }
        rc = -errno;
        free(path);
        if (rc != MPB_EEXIST) {
            return rc;
        }
    }
    return MPB_EEXIST;
}

/* Closes a temp file from temp_open and, when rc (the writing) is 0, renames
 * it over path; otherwise removes it. Frees tmp_path; returns the outcome. */
static int
temp_finish(int fd, char *tmp_path, const char *path, int rc)
{
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = mpb__fs_rename(tmp_path, path);
    }
    if (rc < 0) {
        unlink(tmp_path);
    }
    free(tmp_path);
    return rc;
}

int
mpb__fs_write_atomic(const char *tmp_dir, const char *path, const char *data, size_t len)
{
    char *tmp_path = NULL;
    int fd = -1;
    int rc = temp_open(tmp_dir, &tmp_path, &fd);
    if (rc < 0) {
        return rc;
    }
    rc = write_all(fd, data, len);
    return temp_finish(fd, tmp_path, path, rc);
}

int
mpb__fs_append(const char *path, const char *data, size_t len)
{
    int rc = fault_check();
    if (rc < 0) {
        return rc;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out_close;
    }
    rc = fault_check();
    if (rc < 0) {
        goto out_close;
    }
    ssize_t done;
    do {
        done = write(fd, data, len);
    } while (done < 0 && errno == EINTR);
    if (done < 0) {
        rc = -errno;
    } else if ((size_t)done != len) {
        /* The caller holds the run lock: no other writer appended meanwhile. */
        rc = MPB_ENOSPC;
        if (ftruncate(fd, st.st_size) < 0) {
            rc = -errno;
        }
    }
out_close:
    close(fd);
    return rc;
}

int
mpb__fs_rename(const char *from, const char *to)
{
    int rc = fault_check();
    if (rc < 0) {
        return rc;
    }
    return rename(from, to) < 0 ? -errno : 0;
}

int
mpb__fs_unlink(const char *path)
{
    int rc = fault_check();
    if (rc < 0) {
        return rc;
    }
    return unlink(path) < 0 ? -errno : 0;
}

int
mpb__fs_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = mpb__fs_list(path, 0, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *child = mpb__path_join(path, names[i]);
        rc = mpb__fs_rm_rf(child);
        free(child);
    }
    mpb__fs_names_free(names, n);
    if (rc == 0 && rmdir(path) < 0 && errno != ENOENT) {
        rc = -errno;
    }
    return rc;
}

static int
compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
mpb__fs_list(const char *dir, int dirs_only, char ***out_names, size_t *out_n)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) {
            continue;
        }
        if (dirs_only) {
            int is_dir = entry->d_type == DT_DIR;
            if (entry->d_type == DT_UNKNOWN || entry->d_type == DT_LNK) {
                char *full = mpb__path_join(dir, entry->d_name);
                is_dir = mpb__fs_is_dir(full);
                free(full);
            }
            if (!is_dir) {
                continue;
            }
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = mpb_realloc(names, cap * sizeof *names);
        }
        names[n++] = mpb_strdup(entry->d_name);
    }
    closedir(d);
    if (n > 1) {
        qsort(names, n, sizeof *names, compare_names);
    }
    *out_names = names;
    *out_n = n;
    return 0;
}

void
mpb__fs_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

static int
walk_files(const char *dir, const char *rel_prefix, mpb__fs_file_fn cb, void *ctx)
{
    char **names = NULL;
    size_t n = 0;
    int rc = mpb__fs_list(dir, 0, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *abs_path = mpb__path_join(dir, names[i]);
        char *rel_path = rel_prefix ? mpb__path_join(rel_prefix, names[i]) : mpb_strdup(names[i]);
        struct stat st;
        if (stat(abs_path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                rc = walk_files(abs_path, rel_path, cb, ctx);
            } else if (S_ISREG(st.st_mode)) {
                rc = cb(rel_path, abs_path, ctx);
            }
        }
        free(rel_path);
        free(abs_path);
    }
    mpb__fs_names_free(names, n);
    return rc;
}

int
mpb__fs_walk_files(const char *dir, mpb__fs_file_fn cb, void *ctx)
{
    return walk_files(dir, NULL, cb, ctx);
}

int
mpb__fs_copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        return -errno;
    }
    char *dst_dir = mpb_strdup(dst);
    char *slash = strrchr(dst_dir, '/');
    if (slash == NULL) {
        strcpy(dst_dir, ".");
    } else if (slash == dst_dir) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    char *tmp_path = NULL;
    int out = -1;
    int rc = temp_open(dst_dir, &tmp_path, &out);
    if (rc < 0) {
        goto out_close_in;
    }
    char chunk[65536];
    for (;;) {
        ssize_t got = read(in, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            rc = got < 0 ? -errno : 0;
            break;
        }
        rc = write_all(out, chunk, (size_t)got);
        if (rc < 0) {
            break;
        }
    }
    rc = temp_finish(out, tmp_path, dst, rc);
out_close_in:
    close(in);
    free(dst_dir);
    return rc;
}

/* follow: a symbolic link is copied as what it points to; else it is
 * refused (MPB_EINVAL), so a copy out of a store stays inside it. */
static int
copy_tree(const char *src_dir, const char *dst_dir, int follow)
{
    int rc = mpb__fs_mkdir_p(dst_dir);
    if (rc < 0) {
        return rc;
    }
    char **names = NULL;
    size_t n = 0;
    rc = mpb__fs_list(src_dir, 0, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (strncmp(names[i], MPB__TMP_PREFIX, strlen(MPB__TMP_PREFIX)) == 0) {
            continue; /* a copy in progress */
        }
        char *src = mpb__path_join(src_dir, names[i]);
        char *dst = mpb__path_join(dst_dir, names[i]);
        struct stat st;
        if ((follow ? stat(src, &st) : lstat(src, &st)) < 0) {
            rc = -errno;
        } else if (S_ISLNK(st.st_mode)) {
            rc = MPB_EINVAL;
        } else if (S_ISDIR(st.st_mode)) {
            rc = copy_tree(src, dst, follow);
        } else if (S_ISREG(st.st_mode)) {
            rc = mpb__fs_copy_file(src, dst);
        }
        free(dst);
        free(src);
    }
    mpb__fs_names_free(names, n);
    return rc;
}

int
mpb__fs_copy_tree(const char *src_dir, const char *dst_dir)
{
    return copy_tree(src_dir, dst_dir, 1);
}

int
mpb__fs_copy_tree_nolinks(const char *src_dir, const char *dst_dir)
{
    return copy_tree(src_dir, dst_dir, 0);
}

int
mpb__fs_lock(const char *dir, int shared, int *out_fd)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    while (flock(fd, shared ? LOCK_SH : LOCK_EX) < 0) {
        if (errno != EINTR) {
            int rc = -errno;
            close(fd);
            return rc;
        }
    }
    *out_fd = fd;
    return 0;
}

void
mpb__fs_unlock(int fd)
{
    if (fd >= 0) {
        close(fd); /* closing the only descriptor releases the flock */
    }
}
