/*
 * A result: the outcome of one item, either a value (bytes) or an error
 * that took the item's place. An ensemble's result is an array: one member
 * result (value, error or array) per ensemble member, readable one by one;
 * its value bytes are the members encoded as one msgpack array (bin for a
 * value, array for a nested ensemble, {"error": {...}} for an error), which
 * is what the next stage of a pipeline receives.
 * Threading: a result is immutable once made; read it from any thread.
 * Processes: n/a.
 * Ownership: whoever receives a mpb_result * that is not const owns it and
 *   releases it with mpb_result_destroy; const pointers are borrowed for the
 *   callback that receives them (mpb_result_copy keeps one).
 */
#ifndef MPBATCH_RESULT_H
#define MPBATCH_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"

typedef struct mpb_result mpb_result;

/* An item's error. Strings are borrowed from the result that holds it. */
typedef struct mpb_item_error {
    const char *type; /* "ValueError", "Timeout", "WorkerCrashed", "Protocol", "NoResult"... */
    const char *message;
    const char *servlet; /* path of the servlet that failed, "pipeline/mlp" ("" if none) */
    const char *worker;  /* worker name ("" if the item never reached one) */
    int64_t pid;         /* worker process id (0 if none) */
} mpb_item_error;

/* Error types the framework itself produces. */
#define MPB_ERROR_TIMEOUT "Timeout"
#define MPB_ERROR_WORKER_CRASHED "WorkerCrashed"
/* A servlet with no live worker for its unavailable_timeout_ms. */
#define MPB_ERROR_UNAVAILABLE_SERVLET "ServletUnavailable"
#define MPB_ERROR_PROTOCOL "Protocol"
#define MPB_ERROR_NO_RESULT "NoResult"
#define MPB_ERROR_CANCELLED "Cancelled"
#define MPB_ERROR_ROUTE "RouteError"

/* A value result holding a copy of data. Caller owns it. */
MPB_EXPORT mpb_result *mpb_result_new_value(const void *data, size_t len);

/* An error result; every string is copied (NULL reads as ""). Caller owns it. */
MPB_EXPORT mpb_result *mpb_result_new_error(const char *type, const char *message,
                                            const char *servlet, const char *worker, int64_t pid);

/* An array result holding members[0..n), which it consumes (each entry is
 * set to NULL). Caller owns it. */
MPB_EXPORT mpb_result *mpb_result_new_array(mpb_result **members, size_t n);

/* A deep copy. Caller owns it. */
MPB_EXPORT mpb_result *mpb_result_copy(const mpb_result *result);

/* NULL-safe, idempotent; sets *result_p = NULL. */
MPB_EXPORT void mpb_result_destroy(mpb_result **result_p);

/* 1 when the result is an error, 0 when it is a value. */
MPB_EXPORT int mpb_result_is_error(const mpb_result *result);

/* 1 when the result is an array (an ensemble's), 0 otherwise. */
MPB_EXPORT int mpb_result_is_array(const mpb_result *result);

/* Members of an array result; 0 for a value or an error. */
MPB_EXPORT size_t mpb_result_member_count(const mpb_result *result);

/* Member index of an array result (borrowed from it), or NULL. */
MPB_EXPORT const mpb_result *mpb_result_member(const mpb_result *result, size_t index);

/* The value's bytes (an array's msgpack encoding; borrowed from the
 * result) or NULL for an error. */
MPB_EXPORT const void *mpb_result_value(const mpb_result *result, size_t *len);

/* The error (borrowed from the result) or NULL for a value. */
MPB_EXPORT const mpb_item_error *mpb_result_error(const mpb_result *result);

#endif
