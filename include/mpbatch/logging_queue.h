/*
 * Async logging queue: log calls copy their input, enqueue it and return at
 * once; one writer thread per queue writes the batches to a tracking store in
 * the order they were logged, merging consecutive batches of the same run up
 * to MLflow's batch limits (1000 entities, 100 params, 100 tags).
 *
 * Threading: every function is thread-safe; any thread may log, wait, flush
 *   or shut down. The writer thread makes every store call of the queue.
 * Processes: a queue does not cross fork(): in the child its copy is inert
 *   (there is no writer thread there, and the exit drain skips it). Create a
 *   new queue in the child.
 * Ownership: log calls copy run ids, keys and values; the queue borrows the
 *   store, which must outlive the queue. A handle is the caller's until
 *   mpb_logging_handle_release(), whether or not it has completed; it may
 *   outlive the queue (a destroyed queue's memory is freed with its last
 *   handle).
 *
 * Semantics (docs/tracking.md has the comparison with MLflow):
 * - Order: one writer, first in first out, so a run's metric lines reach the
 *   store in the order they were logged, and an update_run (end status) is
 *   written after everything logged to the run before it.
 * - Bounds: the queue holds at most `capacity` entities (a batch with none
 *   counts as one). When a batch does not fit, the BLOCK policy waits up to
 *   block_timeout_ms for room, FAIL_FAST returns at once; both return
 *   MPB_EFULL and enqueue nothing. A batch larger than the whole capacity
 *   is refused with MPB_ELIMIT.
 * - A batch over MLflow's limits is split into store-sized parts (params and
 *   tags by 100, metrics filling each part to 1000); its handle completes when
 *   every part has, with the first error.
 * - Deadlines: every wait takes a timeout. A store call that runs longer than
 *   store_call_timeout_ms, or a writer thread that dies, fails the queue: the
 *   batches in that call complete with MPB_ETIMEDOUT, every other queued one
 *   with MPB_EWRITER_DIED, and later log calls return MPB_EWRITER_DIED.
 * - Exit: a started queue is drained when the process exits normally (exit()
 *   or return from main), for at most MPB_TRACKING_EXIT_TIMEOUT_MS
 *   milliseconds in total (default 10000); what could not be written is
 *   reported on stderr.
 */
#ifndef MPBATCH_LOGGING_QUEUE_H
#define MPBATCH_LOGGING_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"
#include "mpbatch/store.h"

typedef struct mpb_logging_queue mpb_logging_queue;

/* Completion of one log call: success or the error that stopped it. */
typedef struct mpb_logging_handle mpb_logging_handle;

/* MLflow's QueueStatus, plus FAILED for a writer that died or hung. */
typedef enum mpb_logging_status {
    MPB_LOGGING_QUEUE_ACTIVE = 1,    /* accepting and writing */
    MPB_LOGGING_QUEUE_TEAR_DOWN = 2, /* shutting down: refusing, still writing */
    MPB_LOGGING_QUEUE_IDLE = 3,      /* not started, or shut down */
    MPB_LOGGING_QUEUE_FAILED = 4,    /* writer died or hung: nothing more is written */
} mpb_logging_status;

typedef enum mpb_logging_full_policy {
    MPB_LOGGING_QUEUE_BLOCK = 0,     /* wait up to block_timeout_ms for room */
    MPB_LOGGING_QUEUE_FAIL_FAST = 1, /* MPB_EFULL at once */
} mpb_logging_full_policy;

/* Zero-initialised options mean the defaults. */
typedef struct mpb_logging_queue_options {
    size_t capacity; /* entities held at once; 0: 100000 */
    mpb_logging_full_policy when_full;
    int64_t block_timeout_ms;      /* BLOCK: longest wait for room; 0: 5000 */
    int64_t store_call_timeout_ms; /* a longer store call fails the queue; 0: 30000 */
    int no_exit_drain;             /* nonzero: do not drain this queue at exit */
    /* The writer waits up to linger_ms after a batch arrives for more to
     * merge into the same store call (0: it writes at once). A flush,
     * shutdown, a waiter, or a store call's worth (1000 entities) queued
     * ends the wait. For producers that log often, such as a server's
     * per-batch telemetry: fewer, larger store calls. */
    int64_t linger_ms;
    /* Added to the writer thread's nice value (Linux schedules threads
     * one by one), 0..19: a queue fed by a busy server yields the CPU to
     * the work it measures instead of preempting it. */
    int writer_nice;
} mpb_logging_queue_options;

/* Counters since the queue was created. A call over MLflow's limits counts
 * once per store-sized part. */
typedef struct mpb_logging_stats {
    uint64_t enqueued;    /* batches accepted */
    uint64_t written;     /* batches the store accepted */
    uint64_t failed;      /* batches completed with an error */
    uint64_t rejected;    /* log calls refused with MPB_EFULL */
    uint64_t store_calls; /* store calls made; merging makes this smaller than written */
    size_t queued;        /* entities in the queue now */
    int last_error;       /* status of the latest failed batch, 0 if none */
} mpb_logging_stats;

/* Allocates a queue writing to `store` (borrowed); options may be NULL.
 * No thread runs until mpb_logging_queue_start(). Caller destroys. */
MPB_EXPORT mpb_logging_queue *mpb_logging_queue_new(mpb_store *store,
                                                    const mpb_logging_queue_options *options);

/* Starts the writer thread (IDLE -> ACTIVE) and, unless no_exit_drain,
 * enrols the queue in the exit drain. MPB_EINVAL: bad options; MPB_ECONFIG:
 * MPB_TRACKING_EXIT_TIMEOUT_MS is not a number of milliseconds; MPB_EBUSY:
 * already started. */
MPB_EXPORT int mpb_logging_queue_start(mpb_logging_queue *self, char *err, size_t err_len);

/* Enqueues metrics, params and tags for a run (all copied) and returns at
 * once. With handle_out, *handle_out is the caller's handle; with NULL the
 * call is fire-and-forget: failures are counted in the stats and logged.
 * MPB_EFULL: no room (see the policy); MPB_ELIMIT: more entities than the
 * capacity; MPB_ECLOSED: not started or shutting down; MPB_EWRITER_DIED: the
 * queue failed. */
MPB_EXPORT int mpb_logging_queue_log_batch(mpb_logging_queue *self, const char *run_id,
                                           const mpb_metric *metrics, size_t n_metrics,
                                           const mpb_param *params, size_t n_params,
                                           const mpb_tag *tags, size_t n_tags,
                                           mpb_logging_handle **handle_out);

/* Enqueues a status change of a run (end_time_ms < 0 leaves it as is); it
 * is written after everything enqueued before it. Returns as log_batch. */
MPB_EXPORT int mpb_logging_queue_update_run(mpb_logging_queue *self, const char *run_id,
                                            mpb_run_status status, int64_t end_time_ms,
                                            mpb_logging_handle **handle_out);

/* Waits until everything enqueued before this call has completed (written or
 * failed). 0; MPB_ETIMEDOUT when timeout_ms passes first; MPB_EWRITER_DIED
 * when the queue failed. The queue stays ACTIVE. */
MPB_EXPORT int mpb_logging_queue_flush(mpb_logging_queue *self, int64_t timeout_ms);

/* Refuses new batches, writes what is queued and stops the writer
 * (ACTIVE -> TEAR_DOWN -> IDLE); the queue may be started again. When
 * timeout_ms passes first, queued batches not yet handed to the store
 * complete with MPB_ECANCELED, err says which runs lost what, and the call
 * returns MPB_ETIMEDOUT. MPB_EWRITER_DIED when the queue had failed. */
MPB_EXPORT int mpb_logging_queue_shutdown(mpb_logging_queue *self, int64_t timeout_ms, char *err,
                                          size_t err_len);

/* Shuts down (within MPB_TRACKING_EXIT_TIMEOUT_MS, reporting losses on
 * stderr) and frees; NULL-safe, idempotent, sets *self_p = NULL. A writer
 * stuck in a store call past that deadline is left running and the queue's
 * memory is not freed (it would be used after free). */
MPB_EXPORT void mpb_logging_queue_destroy(mpb_logging_queue **self_p);

MPB_EXPORT mpb_logging_status mpb_logging_queue_status(const mpb_logging_queue *self);

MPB_EXPORT void mpb_logging_queue_stats(const mpb_logging_queue *self, mpb_logging_stats *out);

/* Waits up to timeout_ms for the handle to complete. Returns the write's
 * status (0, the store's error, MPB_ETIMEDOUT for a hung store call,
 * MPB_EWRITER_DIED, MPB_ECANCELED) with its message in err; or MPB_ETIMEDOUT
 * when timeout_ms passed first, in which case mpb_logging_handle_is_done()
 * is false and the handle may be waited on again. */
MPB_EXPORT int mpb_logging_handle_wait(mpb_logging_handle *self, int64_t timeout_ms, char *err,
                                       size_t err_len);

/* True once the handle has completed; never blocks. */
MPB_EXPORT int mpb_logging_handle_is_done(const mpb_logging_handle *self);

/* Gives the handle back; before completion the write still happens.
 * NULL-safe, sets *self_p = NULL. */
MPB_EXPORT void mpb_logging_handle_release(mpb_logging_handle **self_p);

#endif
