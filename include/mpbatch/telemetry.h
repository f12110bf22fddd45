/*
 * Per-batch telemetry: what a worker reports after every call() of its
 * plugin, as the server hands it to observers and tracking.
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
} mpb_batch_telemetry;

/* "full", "timer" or "drained". */
MPB_EXPORT const char *mpb_batch_close_name(mpb_batch_close reason);

#endif
