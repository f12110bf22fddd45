/*
 * Server telemetry into a tracking run: every batch a worker reports
 * becomes metrics of one run (<servlet>/batch_size, /first_wait_us,
 * /compute_us, /errors, step = the batch's number), written through a
 * fail-fast async logging queue so the server's dispatcher never blocks;
 * when the queue is full a batch's metrics are dropped and counted.
 *
 * Threading: mpb_server_tracker_on_batch runs on the server's dispatcher
 *   (pass it as mpb_server_options.on_batch with the tracker as ctx); the
 *   other calls from any one thread, after the server stopped.
 * Processes: n/a.
 * Ownership: the tracker borrows the store until destroy; run_id is copied.
 */
#ifndef MPBATCH_SERVER_TRACKER_H
#define MPBATCH_SERVER_TRACKER_H

#include <stdint.h>

#include "mpbatch/common.h"
#include "mpbatch/store.h"
#include "mpbatch/telemetry.h"

typedef struct mpb_server_tracker mpb_server_tracker;

/* A tracker logging to run_id in store. Allocates only. */
MPB_EXPORT mpb_server_tracker *mpb_server_tracker_new(mpb_store *store, const char *run_id);

/* Starts its logging queue. */
MPB_EXPORT int mpb_server_tracker_start(mpb_server_tracker *self, char *err, size_t err_len);

/* The mpb_telemetry_fn to give the server (ctx: the tracker). */
MPB_EXPORT void mpb_server_tracker_on_batch(void *ctx, const mpb_batch_telemetry *telemetry);

/* Waits up to timeout_ms until every accepted metric is written. */
MPB_EXPORT int mpb_server_tracker_flush(mpb_server_tracker *self, int64_t timeout_ms);

/* Batches whose metrics the queue accepted, and batches it refused (full). */
MPB_EXPORT uint64_t mpb_server_tracker_logged(const mpb_server_tracker *self);
MPB_EXPORT uint64_t mpb_server_tracker_dropped(const mpb_server_tracker *self);

/* Drains (bounded by MPB_TRACKING_EXIT_TIMEOUT_MS semantics of the queue)
 * and frees; NULL-safe, sets *self_p = NULL. */
MPB_EXPORT void mpb_server_tracker_destroy(mpb_server_tracker **self_p);

#endif
