/*
 * Worker plugin API: a model is a shared object that exports one
 * `mpb_worker_def` named `mpb_worker`. The same plugin runs on threads of the
 * coordinator (ThreadServlet), in local `mpb-worker` processes
 * (ProcessServlet) or in `mpb-worker` processes started by hand on other hosts.
 *
 * Threading: each worker (thread or process) calls init once, then call and
 *   preprocess from that one thread only, then cleanup; a plugin whose state
 *   is per worker needs no locks. Under a ThreadServlet several workers share
 *   the process: globals of the plugin are shared, its state is not.
 * Processes: a plugin never forks or execs by itself.
 * Ownership: batches and their items belong to the host and are valid only
 *   during the call that receives them; see each function for results.
 *
 * A minimal plugin:
 *
 *     static int upper(void *state, mpb_batch *batch) {
 *         for (size_t i = 0; i < mpb_batch_size(batch); i++) {
 *             size_t len;
 *             const char *in = mpb_batch_item(batch, i, &len);
 *             char *out = mpb_batch_value_buffer(batch, i, len);
 *             for (size_t k = 0; k < len; k++) out[k] = (char)toupper(in[k]);
 *         }
 *         return 0;
 *     }
 *     MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
 *         .abi_version = MPB_WORKER_ABI_VERSION, .name = "upper", .call = upper,
 *         .batch_size = 64,
 *     };
 */
#ifndef MPBATCH_WORKER_H
#define MPBATCH_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"

/* Version 2 added options, inputs and outputs (declarations); version 3
 * batch_timeout_ms. Plugins built for an older version still load, with
 * the newer fields zero (version 1: run without option checks). */
#define MPB_WORKER_ABI_VERSION 3
#define MPB_WORKER_ABI_VERSION_MIN 1
#define MPB_PLUGIN_EXPORT __attribute__((visibility("default")))

/* batch_wait_us value meaning "never wait for more items". */
#define MPB_BATCH_WAIT_NONE (-1)
/* batch_wait_us value meaning "wait only while more items are coming
 * soon": an item that arrives alone is computed at once, and under load
 * batches fill (up to MPB_BATCH_WAIT_DEFAULT_US). Config: `auto`. */
#define MPB_BATCH_WAIT_AUTO (-2)
/* Wait used when batch_size > 1 and neither plugin nor config sets one. */
#define MPB_BATCH_WAIT_DEFAULT_US 10000

typedef struct mpb_batch mpb_batch;
typedef struct mpb_options mpb_options;

/* What a worker knows about itself when its plugin initialises. */
typedef struct mpb_worker_info {
    const char *name;      /* unique per servlet, e.g. "mlp-1" */
    unsigned index;        /* 0..workers-1 within its servlet; 0 for remote workers */
    unsigned batch_size;   /* effective: 0 = call per item */
    int64_t batch_wait_us; /* effective: 0 = take only what is already there */
    const char *cpus;      /* CPUs the worker is bound to, hwloc list syntax ("" if none) */
} mpb_worker_info;

/* The type of a declared plugin option; values arrive as strings and are
 * checked against it before init runs. */
typedef enum mpb_option_type {
    MPB_OPTION_STRING = 1, /* any text */
    MPB_OPTION_INT,        /* a decimal integer (strtoll) */
    MPB_OPTION_FLOAT,      /* a number (strtod) */
    MPB_OPTION_BOOL,       /* true|false|1|0|yes|no */
} mpb_option_type;

/* One option a plugin takes. An array of these ends with a zeroed entry. */
typedef struct mpb_option_def {
    const char *name;
    mpb_option_type type;
    const char *default_value; /* as text, shown by `mpb plugins show`; NULL: none */
    const char *doc;           /* one line */
} mpb_option_def;

#define MPB_TENSOR_MAX_DIMS 8

/* One input or output of the model, per item (the batch dimension is not
 * part of shape). datatype uses the Open Inference Protocol's names:
 * "FP32", "FP64", "INT32", "INT64", "UINT8", "BOOL", "BYTES". A dimension
 * of -1 is variable (for example set by an option). An array of these ends
 * with a zeroed entry. */
typedef struct mpb_tensor_def {
    const char *name;
    const char *datatype;
    unsigned ndim;
    int64_t shape[MPB_TENSOR_MAX_DIMS];
} mpb_tensor_def;

typedef struct mpb_worker_def {
    /* MPB_WORKER_ABI_VERSION: the host refuses a plugin built for another. */
    uint32_t abi_version;
    /* Short name used in logs, errors and telemetry. Required. */
    const char *name;
    /* Optional. Builds the worker's state from its options; runs once per
     * worker on the worker's thread and may block (load weights...). Returns
     * 0, or nonzero with a message in err: the worker then reports the failure
     * and the servlet does not start. */
    int (*init)(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
                size_t err_len);
    /* Required. Computes one batch: sets a value or an error for every item
     * (an item left without either gets a `NoResult` error). Returning
     * nonzero fails the whole batch: every item without an error set gets the
     * message given to mpb_batch_fail, or a generic `WorkerError`. */
    int (*call)(void *state, mpb_batch *batch);
    /* Optional. Runs once per item as it arrives, before batching. The item
     * is a batch of one: mpb_batch_set_value (or _value_buffer) replaces its
     * bytes, mpb_batch_set_error sends it straight to the output as an error
     * and call() never sees it; doing neither keeps the item as it is. */
    int (*preprocess)(void *state, mpb_batch *item);
    /* Optional. Releases the state; runs once on the worker's thread. */
    void (*cleanup)(void *state);
    /* Defaults when the servlet's config does not say: batch_size 0 calls per
     * item; batch_wait_us 0 means MPB_BATCH_WAIT_DEFAULT_US when batch_size > 1
     * (MPB_BATCH_WAIT_NONE never waits). */
    unsigned batch_size;
    int64_t batch_wait_us;
    /* ABI 2. Optional declarations, each array ending with a zeroed entry.
     * With options declared, the host refuses an option not in the list or
     * a value not of its type (config errors name file, line and column);
     * a plugin that declares none gets its options unchecked. inputs and
     * outputs are what the HTTP metadata endpoint and `mpb plugins show`
     * report. */
    const mpb_option_def *options;
    const mpb_tensor_def *inputs;
    const mpb_tensor_def *outputs;
    /* One line describing the plugin, for `mpb plugins`. */
    const char *doc;
    /* ABI 3. How long one call() may take before the batch counts as hung
     * (its items fail Timeout, a process worker is replaced) when the
     * servlet's config does not set batch_timeout_ms; 0: no default. */
    int batch_timeout_ms;
} mpb_worker_def;

/* Items in the batch. */
MPB_EXPORT size_t mpb_batch_size(const mpb_batch *batch);

/* Item i's bytes (borrowed for the call); *len gets its length. Never
 * NULL for an item of the batch, even of 0 bytes. */
MPB_EXPORT const void *mpb_batch_item(const mpb_batch *batch, size_t index, size_t *len);

/* When every item has the same length, the whole batch as one row-major
 * matrix of mpb_batch_size() rows of *row_bytes bytes (borrowed for the
 * call); NULL when lengths differ. No copy is made when items arrived
 * contiguously, which is the common case. */
MPB_EXPORT const void *mpb_batch_matrix(const mpb_batch *batch, size_t *row_bytes);

/* Sets item i's value to a copy of data. Returns 0, MPB_EINVAL for a bad
 * index, MPB_ELIMIT when len exceeds the maximum item size. */
MPB_EXPORT int mpb_batch_set_value(mpb_batch *batch, size_t index, const void *data, size_t len);

/* Sets item i's value to data without copying. The host reads it just
 * after the plugin's call (or preprocess) returns, before calling the plugin
 * again: data must outlive that return, so a buffer in the plugin's state
 * or the item itself will do, a local array will not. */
MPB_EXPORT int mpb_batch_set_value_borrowed(mpb_batch *batch, size_t index, const void *data,
                                            size_t len);

/* Returns a host-owned buffer of len bytes that becomes item i's value; the
 * plugin writes the value into it before its call returns. NULL on a bad
 * index or a len over the limit. */
MPB_EXPORT void *mpb_batch_value_buffer(mpb_batch *batch, size_t index, size_t len);

/* Returns a host-owned row-major matrix of mpb_batch_size() rows of
 * row_bytes; row i becomes item i's value (unless item i gets an error).
 * The natural output of one sgemm over the batch. */
MPB_EXPORT void *mpb_batch_output_matrix(mpb_batch *batch, size_t row_bytes);

/* Sets item i's error: a type such as "ValueError" and a message. */
MPB_EXPORT int mpb_batch_set_error(mpb_batch *batch, size_t index, const char *type,
                                   const char *fmt, ...) MPB_PRINTF(4, 5);

/* Fails the whole batch: every item without an error set gets this one,
 * whatever call() then returns (values already set are discarded). */
MPB_EXPORT void mpb_batch_fail(mpb_batch *batch, const char *type, const char *fmt, ...)
    MPB_PRINTF(3, 4);

/* Option value by key (borrowed for the worker's life), or NULL. */
MPB_EXPORT const char *mpb_options_get(const mpb_options *options, const char *key);

/* Option parsed as a base-10 integer / a finite double; def when absent.
 * Returns 0, or MPB_EINVAL when present but not a number (*out untouched).
 * These read values exactly as MPB_OPTION_INT / MPB_OPTION_FLOAT check them. */
MPB_EXPORT int mpb_options_get_int(const mpb_options *options, const char *key, long long def,
                                   long long *out);
MPB_EXPORT int mpb_options_get_double(const mpb_options *options, const char *key, double def,
                                      double *out);

/* Option parsed as MPB_OPTION_BOOL does (true|false|1|0|yes|no, any case):
 * *out gets 1 or 0; def when absent. Returns 0, or MPB_EINVAL. */
MPB_EXPORT int mpb_options_get_bool(const mpb_options *options, const char *key, int def, int *out);

/* Number of options, and the key and value at a position (borrowed). */
MPB_EXPORT size_t mpb_options_count(const mpb_options *options);
MPB_EXPORT const char *mpb_options_key(const mpb_options *options, size_t index);
MPB_EXPORT const char *mpb_options_value(const mpb_options *options, size_t index);

#endif
