/*
 * What a servlet has done, for exporters (Prometheus, interval telemetry):
 * counters and cumulative histograms a pool (and the server, end to end)
 * updates as items are answered and batches reported, and gauges read
 * when asked. An interval's figures are the difference of two snapshots.
 *
 * Threading: the dispatcher thread updates and reads (exporters run on its
 * loop). Processes: n/a. Ownership: a servlet owns its metrics.
 */
#ifndef MPB_SERVLETS_METRICS_H
#define MPB_SERVLETS_METRICS_H

#include <stdint.h>

#include "core/histogram.h"
#include "mpbatch/result.h"
#include "mpbatch/telemetry.h"

/* Error types counted one by one; the rest are counted together. */
#define MPB_METRICS_ERROR_TYPES 12

typedef struct mpb__error_count {
    char type[64]; /* longer types are counted by their first 63 bytes */
    uint64_t count;
} mpb__error_count;

typedef struct mpb__metrics {
    uint64_t items;  /* answered: values and errors */
    uint64_t errors; /* of which errors */
    mpb__error_count by_type[MPB_METRICS_ERROR_TYPES];
    size_t n_types;
    uint64_t other_errors; /* errors of types past the table */
    uint64_t batches;
    uint64_t batched_items;
    uint64_t restarts;      /* workers lost (a pool relaunches them) */
    mpb__histogram latency; /* ns from entering the servlet to its answer */
    mpb__histogram batch_size;
    mpb__histogram first_wait; /* ns a batch's first item waited in its worker */
    mpb__histogram compute;    /* ns of the plugin's call */
} mpb__metrics;

/* Right now, for what is not counted: items waiting for a worker's credit,
 * items on workers, workers ready. */
typedef struct mpb__gauges {
    uint64_t queue_depth;
    uint64_t in_flight;
    uint64_t workers_alive;
    uint64_t workers_wanted;
    double workers_cpu_s;       /* CPU seconds of the workers launched here, alive now */
    uint64_t workers_rss_bytes; /* their resident memory */
} mpb__gauges;

mpb__metrics *mpb__metrics_new(void);
void mpb__metrics_free(mpb__metrics **metrics_p);

/* An item answered: its latency since start_ns, its error type if any. */
void mpb__metrics_answer(mpb__metrics *m, int64_t start_ns, int64_t now_ns,
                         const mpb_result *result);
/* A batch a worker reported. */
void mpb__metrics_batch(mpb__metrics *m, const mpb_batch_telemetry *t);

#endif
