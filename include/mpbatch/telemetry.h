/*
 * Telemetry: what a worker reports after every call() of its plugin (per
 * batch), what became of each item (per item), and what every servlet did
 * in an interval, as the server hands them to observers and tracking.
 * Threading: plain data. Processes: n/a.
 * Ownership: strings inside are borrowed for the duration of the callback
 *   that receives the struct.
 */
#ifndef MPBATCH_TELEMETRY_H
#define MPBATCH_TELEMETRY_H

#include <stdint.h>

#include "mpbatch/common.h"

/* Why a worker stopped collecting items and called the model. */
typedef enum mpb_batch_close {
    MPB_BATCH_CLOSED_FULL = 0,    /* batch_size items were there (or batch_size 0: per item) */
    MPB_BATCH_CLOSED_TIMER = 1,   /* batch_wait_us passed since the first item arrived */
    MPB_BATCH_CLOSED_DRAINED = 2, /* nothing more queued and waiting was pointless */
} mpb_batch_close;

typedef struct mpb_batch_telemetry {
    uint32_t size;         /* items passed to call() */
    uint32_t errors;       /* items of this batch answered with an error */
    int64_t first_wait_us; /* how long the first item waited in the worker */
    int64_t compute_us;    /* wall time of call() */
    mpb_batch_close closed_by;
    uint32_t queued_after; /* items still waiting in the worker after the batch closed */
    const char *servlet;   /* servlet path, e.g. "pipeline/mlp" (filled by the coordinator) */
    const char *worker;    /* worker name */
    int64_t pid;           /* worker process id */
    uint32_t seq;          /* the batch's number in its servlet, from 1 (filled by the coordinator);
                            * per-item records name it */
} mpb_batch_telemetry;

/* One item's outcome (mpb_server_options.on_item), for per-item records. */
typedef struct mpb_item_record {
    uint64_t index;         /* its number in the server, in the order taken, from 0 */
    const char *servlet;    /* the pool that computed it (errors: the servlet that failed); "" */
    const char *error_type; /* NULL for a value */
    int64_t latency_us;     /* from submission to answer */
    uint32_t batch;         /* its batch's number in that servlet (mpb_batch_telemetry.seq); 0 */
    const void *input;      /* the item's bytes */
    size_t input_len;
    const void *value; /* a value's bytes; NULL for errors and array results */
    size_t value_len;
} mpb_item_record;

typedef struct mpb_error_count {
    const char *type;
    uint64_t count;
} mpb_error_count;

/* What one servlet (a pool), or the server end to end, did in an interval. */
typedef struct mpb_servlet_interval {
    const char *servlet; /* a pool's path; "server" for end to end */
    uint64_t items;      /* answered in the interval, values and errors */
    double items_per_s;
    uint64_t errors;
    const mpb_error_count *errors_by_type; /* n_error_types entries with a count > 0 */
    size_t n_error_types;
    double p50_us; /* latency of the interval's items (0 without items) */
    double p99_us;
    uint64_t batches; /* pools only, from here on */
    double mean_batch;
    uint64_t queue_depth; /* now: items waiting for credit */
    uint64_t in_flight;   /* now: items on workers (server: submitted, not answered) */
    uint32_t workers_alive;
    uint32_t workers_wanted;
    uint64_t restarts;  /* workers lost in the interval */
    double workers_cpu; /* cores its worker processes kept busy (CPU s / interval s) */
    uint64_t workers_rss_bytes;
} mpb_servlet_interval;

/* Every interval (mpb_server_options.interval_ms), and once more at stop. */
typedef struct mpb_interval_telemetry {
    uint64_t index; /* 0, 1, ... */
    double seconds; /* the interval's length */
    mpb_servlet_interval server;
    const mpb_servlet_interval *servlets; /* each pool of the tree, parents first */
    size_t n_servlets;
    double coordinator_cpu; /* cores the coordinator process kept busy */
    uint64_t coordinator_rss_bytes;
    double workers_cpu; /* all pools' worker processes */
    uint64_t workers_rss_bytes;
} mpb_interval_telemetry;

/* "full", "timer" or "drained". */
MPB_EXPORT const char *mpb_batch_close_name(mpb_batch_close reason);

#endif
