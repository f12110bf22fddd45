/*
 * Logging to stderr: lines read "pid:role UTC level tag message".
 * Threading: all functions are thread-safe; a line is written with one write(2).
 * Processes: the role and level are per process (set them after exec).
 * Ownership: format arguments are borrowed for the call.
 *
 * The level comes from MPB_LOG_LEVEL (error, warn, info, debug; default warn).
 */
#ifndef MPBATCH_LOG_H
#define MPBATCH_LOG_H

#include "mpbatch/common.h"

typedef enum mpb_log_level {
    MPB_LOG_ERROR = 0,
    MPB_LOG_WARN = 1,
    MPB_LOG_INFO = 2,
    MPB_LOG_DEBUG = 3,
} mpb_log_level;

/* Names this process in every line ("coordinator", "worker-0"); copied. */
MPB_EXPORT void mpb_log_set_role(const char *role);

/* Lines above this level are dropped. */
MPB_EXPORT void mpb_log_set_level(mpb_log_level level);

/* True when a line at this level would be written. */
MPB_EXPORT int mpb_log_enabled(mpb_log_level level);

/* Writes one line at the given level. */
MPB_EXPORT void mpb_log(mpb_log_level level, const char *tag, const char *fmt, ...)
    MPB_PRINTF(3, 4);

#define mpb_log_err(tag, ...) mpb_log(MPB_LOG_ERROR, (tag), __VA_ARGS__)
#define mpb_log_warn(tag, ...) mpb_log(MPB_LOG_WARN, (tag), __VA_ARGS__)
#define mpb_log_info(tag, ...) mpb_log(MPB_LOG_INFO, (tag), __VA_ARGS__)
#define mpb_log_debug(tag, ...)                                                                    \
    do {                                                                                           \
        if (mpb_log_enabled(MPB_LOG_DEBUG)) {                                                      \
            mpb_log(MPB_LOG_DEBUG, (tag), __VA_ARGS__);                                            \
        }                                                                                          \
    } while (0)

#endif
