/*
 * Queueing client (MLflow's autologging client): create_run returns a pending
 * run usable at once; params, metrics, tags and the end status of each run
 * only queue up in memory until flush() hands them, one job per run, to an
 * async logging queue, whose writer makes the store calls in MLflow's order
 * and chunks:
 *   1. create_run, with up to 1000 tags: its own, then the oldest queued tags;
 *   2. log_batch calls of up to 100 params and 100 tags, each filled with
 *      metrics up to 1000 entities;
 *   3. the remaining metrics, 1000 per log_batch;
 *   4. set_terminated (update_run with the end status) last.
 * A failed call does not stop the later ones (except that nothing is logged
 * to a run whose creation failed); awaiting the flush reports every failure
 * together. Param and tag keys longer than 250 characters, param values over
 * 6000 and tag values over 8000 are cut to that length, ending in "...", with
 * a warning on stderr (characters are UTF-8 code points, as MLflow counts).
 *
 * Threading: a client is not thread-safe: one thread at a time may call it
 *   (MLflow's is not either). An mpb_queueing_ops may be awaited and
 *   destroyed from any one thread.
 * Processes: as the logging queue (do not carry across fork()).
 * Ownership: every input is copied. A pending run is borrowed from the client
 *   until mpb_queueing_client_destroy(). The logging queue is borrowed and
 *   must outlive the client and its unfinished operations. mpb_queueing_ops
 *   is the caller's (mpb_queueing_ops_destroy()).
 */
#ifndef MPBATCH_QUEUEING_CLIENT_H
#define MPBATCH_QUEUEING_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"
#include "mpbatch/logging_queue.h"
#include "mpbatch/store.h"

typedef struct mpb_queueing_client mpb_queueing_client;

/* MLflow's PendingRunId: a run that may not exist yet. */
typedef struct mpb_pending_run mpb_pending_run;

/* The outcome of one flush. */
typedef struct mpb_queueing_ops mpb_queueing_ops;

/* Allocates a client whose flushes go through `queue` (borrowed, started by
 * the caller). Caller destroys. */
MPB_EXPORT mpb_queueing_client *mpb_queueing_client_new(mpb_logging_queue *queue);

/* Frees the client; operations queued and not flushed are dropped with a
 * warning, flushed ones still complete. NULL-safe, sets *self_p = NULL. */
MPB_EXPORT void mpb_queueing_client_destroy(mpb_queueing_client **self_p);

/* Queues the creation of a run in an experiment. run_name may be NULL (the
 * store picks one); start_time_ms <= 0 means now; tags are copied and
 * truncated. The user is $LOGNAME / $USER / the account name. */
MPB_EXPORT mpb_pending_run *mpb_queueing_client_create_run(mpb_queueing_client *self,
                                                           const char *experiment_id,
                                                           const char *run_name,
                                                           int64_t start_time_ms,
                                                           const mpb_tag *tags, size_t n_tags);

/* A pending run standing for a run that already exists in the store. */
MPB_EXPORT mpb_pending_run *mpb_queueing_client_existing_run(mpb_queueing_client *self,
                                                             const char *run_id);

/* The store's run id once the run exists (after the flush that created it has
 * been awaited); NULL before, or when its creation failed. Borrowed until the
 * client is destroyed. */
MPB_EXPORT const char *mpb_pending_run_id(const mpb_pending_run *run);

/* Queue params / metrics / tags for a run; never block, never touch the
 * store. A metric with timestamp_ms <= 0 gets the time of this call. */
MPB_EXPORT int mpb_queueing_client_log_params(mpb_queueing_client *self, mpb_pending_run *run,
                                              const mpb_param *params, size_t n_params);
MPB_EXPORT int mpb_queueing_client_log_metrics(mpb_queueing_client *self, mpb_pending_run *run,
                                               const mpb_metric *metrics, size_t n_metrics);
MPB_EXPORT int mpb_queueing_client_set_tags(mpb_queueing_client *self, mpb_pending_run *run,
                                            const mpb_tag *tags, size_t n_tags);

/* Queues the end of a run (end_time_ms <= 0 means the time of this call);
 * written after everything else of the run. MPB_EEXIST the second time. */
MPB_EXPORT int mpb_queueing_client_set_terminated(mpb_queueing_client *self, mpb_pending_run *run,
                                                  mpb_run_status status, int64_t end_time_ms);

/* Hands every queued operation to the logging queue and returns at once;
 * *ops_out is the caller's. Runs the queue refused are failures of *ops_out,
 * and their operations stay queued for the next flush. */
MPB_EXPORT int mpb_queueing_client_flush(mpb_queueing_client *self, mpb_queueing_ops **ops_out);

/* flush(), then await() within timeout_ms; returns as await. */
MPB_EXPORT int mpb_queueing_client_flush_sync(mpb_queueing_client *self, int64_t timeout_ms,
                                              char *err, size_t err_len);

/* Waits up to timeout_ms for every operation of the flush. 0 when all
 * succeeded; else the first failure's status, with err holding every
 * failure, one per line ("N failures, one per line:" first): a store call
 * that failed, the operations skipped for a run not created, or a run the
 * queue refused, each saying how many operations it held. MPB_ETIMEDOUT when
 * the deadline passed first; await may be called again. */
MPB_EXPORT int mpb_queueing_ops_await(mpb_queueing_ops *self, int64_t timeout_ms, char *err,
                                      size_t err_len);

/* The full failure report of the last await ("" when none); borrowed until
 * destroy. */
MPB_EXPORT const char *mpb_queueing_ops_report(const mpb_queueing_ops *self);

/* Number of failures (lines of the report) found by the last await. */
MPB_EXPORT size_t mpb_queueing_ops_failed(const mpb_queueing_ops *self);

/* Frees the handle (operations not done still complete). NULL-safe. */
MPB_EXPORT void mpb_queueing_ops_destroy(mpb_queueing_ops **self_p);

#endif
