/*
 * Internals of the async logging queue shared by the queueing client, the
 * fluent API and the tests: the sink the writer writes through (the fault
 * seam), jobs that run on the writer thread, and the exit drain.
 *
 * Threading: sink slots and jobs run on the queue's writer thread only, one
 *   call at a time. The other functions are thread-safe.
 * Processes: as the public header.
 * Ownership: see each function.
 */
#ifndef MPB_TRACKING_LOGGING_QUEUE_INT_H
#define MPB_TRACKING_LOGGING_QUEUE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/logging_queue.h"
#include "mpbatch/store.h"

/*
 * Where the writer writes. Every slot is called on the writer thread, may
 * block (the queue times it out with store_call_timeout_ms), borrows its
 * arguments for the call, and returns 0 or a negative MPB_E* status with a
 * one-line message in err. mpb__store_log_sink calls the mpb_store_* functions
 * (ctx is the mpb_store *); tests plug in sinks that fail, block or record.
 */
typedef struct mpb__log_sink {
    int (*create_run)(void *ctx, const char *experiment_id, const char *user_id,
                      int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                      size_t n_tags, char **out_run_id, char *err, size_t err_len);
    int (*log_batch)(void *ctx, const char *run_id, const mpb_metric *metrics, size_t n_metrics,
                     const mpb_param *params, size_t n_params, const mpb_tag *tags, size_t n_tags,
                     char *err, size_t err_len);
    int (*update_run)(void *ctx, const char *run_id, mpb_run_status status, int64_t end_time_ms,
                      char *err, size_t err_len);
} mpb__log_sink;

extern const mpb__log_sink mpb__store_log_sink;

/* Allocates a queue writing through `sink` with `sink_ctx` (both borrowed
 * until destroy). Caller destroys. */
mpb_logging_queue *
mpb__logging_queue_new_with_sink(const mpb__log_sink *sink, void *sink_ctx,
                                 const mpb_logging_queue_options *options);

/*
 * Jobs: a function run on the writer thread in queue order, for work that
 * needs several store calls in sequence (the queueing client's per-run
 * flush). The job makes its store calls through the writer so that each is
 * timed out like the queue's own. It returns a status and, on failure, may
 * set *message (malloc'd; the queue frees it) to complete its handle.
 */
typedef struct mpb__log_writer mpb__log_writer;
typedef int (*mpb__log_job_fn)(void *ctx, mpb__log_writer *writer, char **message);

int
mpb__log_writer_create_run(mpb__log_writer *writer, const char *experiment_id,
                           const char *user_id, int64_t start_time_ms, const char *run_name,
                           const mpb_tag *tags, size_t n_tags, char **out_run_id, char *err,
                           size_t err_len);
int
mpb__log_writer_log_batch(mpb__log_writer *writer, const char *run_id, const mpb_metric *metrics,
                          size_t n_metrics, const mpb_param *params, size_t n_params,
                          const mpb_tag *tags, size_t n_tags, char *err, size_t err_len);
int
mpb__log_writer_update_run(mpb__log_writer *writer, const char *run_id, mpb_run_status status,
                           int64_t end_time_ms, char *err, size_t err_len);

/* Enqueues a job for `run_id` (copied; named in reports) holding `cost`
 * entities of the capacity. On success ctx is consumed: free_ctx(ctx) runs
 * once, on the writer thread after the job, or when the job is dropped
 * without running. On failure ctx stays the caller's. */
int
mpb__logging_queue_submit_job(mpb_logging_queue *self, const char *run_id, size_t cost,
                              mpb__log_job_fn fn, void (*free_ctx)(void *ctx), void *ctx,
                              mpb_logging_handle **handle_out);

/* The message a completed handle failed with (NULL on success or before
 * completion); borrowed until the handle is released. */
const char *
mpb__logging_handle_message(const mpb_logging_handle *handle);

/* Parses an exit timeout in milliseconds (0 .. one day); pure, for tests. */
int
mpb__exit_timeout_parse(const char *text, int64_t *out_ms, char *err, size_t err_len);

/* MPB_TRACKING_EXIT_TIMEOUT_MS, parsed once per process: 0 and the value,
 * or MPB_ECONFIG with the reason in err on every call. */
int
mpb__exit_timeout_ms(int64_t *out_ms, char *err, size_t err_len);

/* Installs, once per process, the atexit handler that drains every enrolled
 * queue. A module whose own atexit work must run before the drain (ending
 * runs) calls this first, then atexit(): handlers run in reverse order. */
void
mpb__logging_exit_install(void);

/* Enrols / withdraws a queue from the exit drain; both idempotent. */
void
mpb__logging_exit_enrol(mpb_logging_queue *queue);
void
mpb__logging_exit_withdraw(mpb_logging_queue *queue);

#endif
