/*
 * Status codes: 0 is success, a negative MPB_E* value is an error.
 * Threading: every function here is thread-safe. Processes: no state.
 * Ownership: returned strings are static; never free them.
 *
 * OS errors are -errno; mpbatch's own codes start at -4000. Add a code by
 * adding one line to MPB_ERRNO_MAP: the enum, mpb_strerror() and
 * mpb_err_name() all follow from it.
 */
#ifndef MPBATCH_ERROR_H
#define MPBATCH_ERROR_H

#include <errno.h>

#include "mpbatch/common.h"

#define MPB_ERRNO_MAP(X)                                                                           \
    X(EPERM, -EPERM, "operation not permitted")                                                    \
    X(ENOENT, -ENOENT, "no such file or directory")                                                \
    X(EINTR, -EINTR, "interrupted system call")                                                    \
    X(EIO, -EIO, "i/o error")                                                                      \
    X(E2BIG, -E2BIG, "argument list too long")                                                     \
    X(ECHILD, -ECHILD, "no child processes")                                                       \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                                         \
    X(ENOMEM, -ENOMEM, "not enough memory")                                                        \
    X(EACCES, -EACCES, "permission denied")                                                        \
    X(EBUSY, -EBUSY, "resource busy")                                                              \
    X(EEXIST, -EEXIST, "already exists")                                                           \
    X(ENOTDIR, -ENOTDIR, "not a directory")                                                        \
    X(EISDIR, -EISDIR, "is a directory")                                                           \
    X(EINVAL, -EINVAL, "invalid argument")                                                         \
    X(EMFILE, -EMFILE, "too many open files")                                                      \
    X(EFBIG, -EFBIG, "file too large")                                                             \
    X(ENOSPC, -ENOSPC, "no space left on device")                                                  \
    X(EROFS, -EROFS, "read-only file system")                                                      \
    X(EPIPE, -EPIPE, "broken pipe")                                                                \
    X(ERANGE, -ERANGE, "result out of range")                                                      \
    X(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                                                \
    X(ENOTEMPTY, -ENOTEMPTY, "directory not empty")                                                \
    X(ENOTSUP, -ENOTSUP, "operation not supported")                                                \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                                           \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                           \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                          \
    X(ECANCELED, -ECANCELED, "operation canceled")                                                 \
    X(ECLOSED, -4000, "object is closed or stopping")                                              \
    X(EPROTO, -4001, "protocol error: a frame failed to decode")                                   \
    X(EVERSION, -4002, "peer speaks another protocol version")                                     \
    X(EWORKER_DIED, -4003, "worker process died")                                                  \
    X(EITEM, -4004, "the item failed; its result holds the error")                                 \
    X(ECONFIG, -4005, "invalid configuration")                                                     \
    X(EPLUGIN, -4006, "worker plugin failed to load or initialise")                                \
    X(ENOTFOUND, -4007, "resource does not exist")                                                 \
    X(ESTORE, -4008, "tracking store failure")                                                     \
    X(EWRITER_DIED, -4009, "background writer thread died")                                        \
    X(EFULL, -4010, "queue is full")                                                               \
    X(ELIMIT, -4011, "input exceeds a size limit")                                                 \
    X(EAMBIGUOUS, -4020, "more than one resource matches")

typedef enum mpb_errno {
#define MPB_ERRNO_ENUM(name, value, text) MPB_##name = (value),
    MPB_ERRNO_MAP(MPB_ERRNO_ENUM)
#undef MPB_ERRNO_ENUM
} mpb_errno;

/* Human text for a status code; never NULL. */
MPB_EXPORT const char *mpb_strerror(int status);

/* Symbolic name of a status code ("MPB_ETIMEDOUT"); "MPB_UNKNOWN" when unknown. */
MPB_EXPORT const char *mpb_err_name(int status);

/* Converts errno (positive) to a status code: -errno. */
MPB_EXPORT int mpb_status_from_errno(int errnum);

#endif
