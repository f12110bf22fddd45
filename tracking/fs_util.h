/*
 * File-system helpers of the file store: atomic rewrites (temp file in a
 * folder of the same file system + rename(2)), single-write appends, folder
 * locks (flock(2) on the folder itself, so no lock files appear in mlruns/),
 * listing, copying and removing trees.
 * Threading: thread-safe; every call opens its own descriptors (close-on-exec).
 * Processes: the folder locks exclude other processes and other threads alike.
 * Ownership: returned strings and name arrays are the caller's.
 *
 * Every function returns 0 or a negative status (-errno for OS failures).
 * Temp files are named ".mpb-tmp-<random>" and never placed in a folder
 * MLflow reads entries from (metrics/, params/, tags/).
 */
#ifndef MPB_TRACKING_FS_UTIL_H
#define MPB_TRACKING_FS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define MPB__TMP_PREFIX ".mpb-tmp-"

/* Joins two path parts with one '/'. Caller frees. */
char *mpb__path_join(const char *dir, const char *name);

int mpb__fs_is_dir(const char *path);
int mpb__fs_is_file(const char *path);

/* Creates one folder: 0, or MPB_EEXIST when something is already there. */
int mpb__fs_mkdir(const char *path);
/* Creates a folder and its missing parents; an existing folder is fine. */
int mpb__fs_mkdir_p(const char *path);
/* Creates the folder that holds `path`, as mpb__fs_mkdir_p. */
int mpb__fs_mkdir_parent(const char *path);

/* Reads a whole file of at most `limit` bytes (MPB_ELIMIT if larger),
 * NUL-terminated. Caller frees *out. */
int mpb__fs_read_file(const char *path, size_t limit, char **out, size_t *out_len);

/* Replaces `path` whole: writes a temp file in tmp_dir (same file system as
 * path), then renames it over path. Readers see the old or the new content. */
int mpb__fs_write_atomic(const char *tmp_dir, const char *path, const char *data, size_t len);

/* Appends with one write(2) on an O_APPEND descriptor; a short write is cut
 * back so no partial line stays in the file. */
int mpb__fs_append(const char *path, const char *data, size_t len);

int mpb__fs_rename(const char *from, const char *to);
int mpb__fs_unlink(const char *path);
/* Removes a file or a whole tree; a missing path is fine. */
int mpb__fs_rm_rf(const char *path);

/* Sorted entry names of a folder without "." and ".."; dirs_only keeps
 * folders only. Free with mpb__fs_names_free. */
int mpb__fs_list(const char *dir, int dirs_only, char ***out_names, size_t *out_n);
void mpb__fs_names_free(char **names, size_t n);

/* Calls cb for every regular file below dir (recursively, sorted), with its
 * '/'-joined path relative to dir; a non-zero return from cb stops the walk
 * and is returned. */
typedef int (*mpb__fs_file_fn)(const char *rel_path, const char *abs_path, void *ctx);
int mpb__fs_walk_files(const char *dir, mpb__fs_file_fn cb, void *ctx);

/* Copies a file so that dst appears whole (temp file next to dst + rename). */
int mpb__fs_copy_file(const char *src, const char *dst);
/* Copies the contents of src_dir into dst_dir (created as needed). */
int mpb__fs_copy_tree(const char *src_dir, const char *dst_dir);
/* The same, refusing (MPB_EINVAL) any symbolic link inside: for copies out
 * of a store, which must not reach outside it. */
int mpb__fs_copy_tree_nolinks(const char *src_dir, const char *dst_dir);

/* Takes an exclusive (shared = 0) or shared flock on a folder; *out_fd is
 * released by mpb__fs_unlock. */
int mpb__fs_lock(const char *dir, int shared, int *out_fd);
void mpb__fs_unlock(int fd);

#endif
