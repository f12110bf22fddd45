/*
 * Server telemetry into a tracking run: every batch a worker reports
 * becomes metrics of one run (<servlet>/batch_size, /first_wait_us,
 * /compute_us, /errors, step = the batch's number in its servlet), every
 * interval metrics per servlet and of the system (step = the interval's
 * number), and items a sampled table artifact (docs/metrics.md). Metrics
 * go through a fail-fast async logging queue so the server's dispatcher
 * never blocks; when the queue is full they are dropped and counted.
 *
 * Threading: the on_* functions run on the server's dispatcher (pass them
 *   as mpb_server_options.on_batch, on_item, on_interval with the tracker
 *   as ctx); the other calls from any one thread, after the server
 *   stopped.
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

typedef struct mpb_server_tracker_options {
    /* Per-item records (mpb_server_tracker_on_item): every item up to
     * items_first (default 10000), then 1 in items_every (default 100; 0:
     * none after the first), at most items_max rows (default 100000; more
     * are dropped and counted). items_first = items_max = 0: no records. */
    uint64_t items_first;
    uint64_t items_every;
    uint64_t items_max;
    /* Keep each row's input and value (up to payload_max bytes each;
     * default 256): the table gets input and value columns. */
    int log_payloads;
    size_t payload_max;
    /* The table's artifact path; default "items.json". */
    const char *items_artifact;
} mpb_server_tracker_options;

MPB_EXPORT void mpb_server_tracker_options_init(mpb_server_tracker_options *options);

/* A tracker logging to run_id in store (options NULL: the defaults).
 * Allocates only. */
MPB_EXPORT mpb_server_tracker *mpb_server_tracker_new(mpb_store *store, const char *run_id);
MPB_EXPORT mpb_server_tracker *
mpb_server_tracker_new_with(mpb_store *store, const char *run_id,
                            const mpb_server_tracker_options *options);

/* Starts its logging queue. */
MPB_EXPORT int mpb_server_tracker_start(mpb_server_tracker *self, char *err, size_t err_len);

/* The mpb_telemetry_fn to give the server (ctx: the tracker). Batches'
 * metrics gather on the dispatcher and reach the queue in bunches: while
 * batches flow, within 100 ms; when they stop, at the next interval (give
 * the server on_interval too) or at flush, finish or destroy. */
MPB_EXPORT void mpb_server_tracker_on_batch(void *ctx, const mpb_batch_telemetry *telemetry);

/* The mpb_item_fn to give the server (ctx: the tracker): samples the
 * record into the run's item table (written by finish). */
MPB_EXPORT void mpb_server_tracker_on_item(void *ctx, const mpb_item_record *record);

/* The mpb_interval_fn to give the server (ctx: the tracker): logs the
 * interval as metrics at step = its index: per servlet path P (and
 * "server" end to end) P/interval/items_per_s, p50_us, p99_us, errors,
 * error_type/<type>, in_flight, and for pools mean_batch, queue_depth,
 * workers_alive, restarts, workers_cpu, workers_rss_mb; and
 * system/coordinator_cpu, coordinator_rss_mb, workers_cpu,
 * workers_rss_mb. */
MPB_EXPORT void mpb_server_tracker_on_interval(void *ctx, const mpb_interval_telemetry *interval);

/* After the server stopped: writes what is queued, then the item table as
 * an artifact (listed in the run's mlflow.loggedArtifacts tag, as
 * mlflow.log_table does) and the counts tracking/items_recorded,
 * tracking/items_sampled_out, tracking/items_dropped and
 * tracking/batches_dropped as metrics. Returns 0 or a status with err. */
MPB_EXPORT int mpb_server_tracker_finish(mpb_server_tracker *self, char *err, size_t err_len);

/* Waits up to timeout_ms until every accepted metric is written. */
MPB_EXPORT int mpb_server_tracker_flush(mpb_server_tracker *self, int64_t timeout_ms);

/* Batches whose metrics the queue accepted, and batches it refused (full). */
MPB_EXPORT uint64_t mpb_server_tracker_logged(const mpb_server_tracker *self);
MPB_EXPORT uint64_t mpb_server_tracker_dropped(const mpb_server_tracker *self);

/* Drains (bounded by MPB_TRACKING_EXIT_TIMEOUT_MS semantics of the queue)
 * and frees; NULL-safe, sets *self_p = NULL. */
MPB_EXPORT void mpb_server_tracker_destroy(mpb_server_tracker **self_p);

#endif
