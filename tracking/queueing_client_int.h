/*
 * The queueing client's private types, shared by queueing_client.c (the
 * calls that queue) and queueing_client_flush.c (jobs, flush and await).
 * Threading: run_ops of a pending run belong to the client's thread until a
 *   flush moves them into a job, which then belongs to the writer thread.
 * Processes: n/a. Ownership: lists own their strings.
 */
#ifndef MPB_TRACKING_QUEUEING_CLIENT_INT_H
#define MPB_TRACKING_QUEUEING_CLIENT_INT_H

#include <stdatomic.h>

#include "mpbatch/queueing_client.h"

typedef struct param_list {
    mpb_param *items;
    size_t n;
    size_t cap;
} param_list;

typedef struct tag_list {
    mpb_tag *items;
    size_t n;
    size_t cap;
} tag_list;

typedef struct metric_list {
    mpb_metric *items;
    size_t n;
    size_t cap;
} metric_list;

/* Operations of one run not yet flushed; strings owned. */
typedef struct run_ops {
    int create;
    char *experiment_id;
    char *run_name;
    char *user;
    int64_t start_time_ms;
    tag_list create_tags;
    param_list params;
    tag_list tags;
    metric_list metrics;
    int terminate;
    mpb_run_status end_status;
    int64_t end_time_ms;
} run_ops;

struct mpb_pending_run {
    atomic_int refs; /* client + unfinished jobs */
    char *_Atomic run_id;
    unsigned serial;
    int create_requested;
    int terminate_requested;
    run_ops queued; /* client thread only */
    mpb_pending_run *next;
};

struct mpb_queueing_client {
    mpb_logging_queue *queue;
    mpb_pending_run *runs; /* in creation order */
    mpb_pending_run **runs_end;
    unsigned next_serial;
};

struct mpb_queueing_ops {
    mpb_logging_handle **handles;
    mpb_pending_run **runs; /* referenced, parallel to handles */
    size_t n_handles;
    char *refused; /* runs the queue refused at flush, one line each */
    int refused_status;
    char *report;
    size_t failed;
};

/* Frees every string and array of ops and zeroes it. */
void
mpb__run_ops_clear(run_ops *ops);

/* Operations held in ops. */
size_t
mpb__run_ops_count(const run_ops *ops);

/* Drops one reference to a pending run. */
void
mpb__pending_run_unref(mpb_pending_run *run);

#endif
