/*
 * Small helpers of the tracking clients: MLflow's key/value truncation and
 * the user name MLflow records.
 * Threading: thread-safe. Processes: no state. Ownership: see each.
 */
#ifndef MPB_TRACKING_UTIL_INT_H
#define MPB_TRACKING_UTIL_INT_H

#include <stddef.h>

/* A copy of text cut to at most max_chars code points (an invalid UTF-8 byte
 * counts as one), the last three being
 * "..." when cut (MLflow's _truncate_and_ellipsize); *truncated says whether it
 * was. max_chars must be > 3. Caller frees. */
char *
mpb__truncate_ellipsis(const char *text, size_t max_chars, int *truncated);

/* The user name runs are attributed to: $LOGNAME, $USER, the account of the
 * real uid, else "unknown". Caller frees. */
char *
mpb__tracking_user(void);

#endif
