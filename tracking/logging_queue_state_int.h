/*
 * The logging queue's private state, shared by logging_queue.c (the API
 * callers use), logging_queue_enqueue.c (log calls and handles),
 * logging_queue_writer.c (the writer thread) and logging_queue_exit.c (the
 * drain at exit); the operations all of them use under the lock are in
 * logging_queue_state.c, which calls none of them.
 *
 * Threading: fields are guarded by `lock` unless marked otherwise; a node's
 *   payload is immutable once enqueued; the group being written belongs to
 *   the writer thread (only its handles' completion is under the lock).
 * Processes: n/a. Ownership: the queue owns pending nodes; the writer owns
 *   the group it took; a handle is freed by the last of completion and
 *   release.
 */
#ifndef MPB_TRACKING_LOGGING_QUEUE_STATE_INT_H
#define MPB_TRACKING_LOGGING_QUEUE_STATE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "core/util.h"
#include "tracking/logging_queue_int.h"

typedef enum mpb__log_node_kind {
    MPB__NODE_BATCH = 1,
    MPB__NODE_UPDATE_RUN = 2,
    MPB__NODE_JOB = 3,
} mpb__log_node_kind;

/* One queue entry; strings and arrays live in the same allocation. */
typedef struct mpb__log_node {
    struct mpb__log_node *next;
    mpb__log_node_kind kind;
    size_t cost;                /* capacity units held */
    mpb_logging_handle *handle; /* under lock; NULL: none, or completed */
    uint64_t seq;
    const char *run_id;
    const mpb_metric *metrics;
    size_t n_metrics;
    const mpb_param *params;
    size_t n_params;
    const mpb_tag *tags;
    size_t n_tags;
    mpb_run_status run_status;
    int64_t end_time_ms;
    mpb__log_job_fn job;
    void (*free_ctx)(void *ctx);
    void *ctx;
    int result;           /* writer thread: outcome of this node's write */
    char *result_message; /* writer thread: malloc'd, NULL on success */
} mpb__log_node;

struct mpb_logging_handle {
    mpb_logging_queue *queue;
    atomic_int refs; /* completion side + caller side */
    atomic_int done;
    size_t parts_left; /* under the queue's lock */
    int status;        /* first error of the parts; final once done */
    char *message;
};

struct mpb__log_writer {
    mpb_logging_queue *queue;
};

struct mpb_logging_queue {
    const mpb__log_sink *sink;
    void *sink_ctx;
    mpb_logging_queue_options opts; /* defaults resolved */
    atomic_int refs;                /* the owner's + one per unreleased handle */
    mpb__log_writer writer_ctx;

    pthread_mutex_t lock;
    pthread_cond_t work_cond; /* writer: batches or stop */
    pthread_cond_t room_cond; /* producers: capacity */
    pthread_cond_t done_cond; /* waiters: completions, failure, writer exit */

    mpb_logging_status status;
    int stopping;
    int writer_sleeping;
    int writer_lingering; /* waiting for more to merge (opts.linger_ms) */
    int refused;          /* a log call found the queue full since the writer last lingered */
    int writer_running; /* a writer thread exists and is not joined */
    int writer_exited;  /* it has done its last act */
    int join_claimed;
    pthread_t writer;
    atomic_int failed;             /* writer died or hung (read by the writer unlocked) */
    atomic_llong call_started_ns;  /* start of the store call in progress, 0 if none */
    atomic_ullong store_calls;

    mpb__log_node *head; /* pending, oldest first */
    mpb__log_node *tail;
    mpb__log_node *group; /* taken by the writer, in progress */
    size_t queued;        /* capacity units of pending + group */
    size_t room_waiters;
    size_t done_waiters;
    uint64_t last_seq;

    mpb_logging_stats stats; /* but store_calls and queued: see above */
    char last_error_text[256];
    int warned_status; /* rate limit of fire-and-forget failure lines */
    int64_t warned_at_ns;
    uint64_t warn_suppressed;

    int exit_enrolled; /* guarded by the exit registry's lock */
    pid_t owner_pid;
    mpb_logging_queue *exit_next;

    /* Writer thread only: merged arrays for one store call. */
    mpb_metric *merge_metrics;
    size_t merge_metrics_cap;
    mpb_param *merge_params;
    mpb_tag *merge_tags;
};

#define MPB__NS_PER_MS INT64_C(1000000)

/* Monotonic deadline timeout_ms from now (ns), saturating. */
static inline int64_t
mpb__deadline_after_ms(int64_t timeout_ms)
{
    int64_t now = mpb_now_ns();
    if (timeout_ms > (INT64_MAX - now) / MPB__NS_PER_MS) {
        return INT64_MAX;
    }
    return now + timeout_ms * MPB__NS_PER_MS;
}

/* Drops a reference; the last one frees the queue's memory. */
void
mpb__logging_queue_unref(mpb_logging_queue *q);

/* Writer thread entry point (logging_queue_writer.c). */
void *
mpb__logging_writer_main(void *arg);

/* Under lock: completes one node's share of its handle and its stats. */
void
mpb__logging_complete_node(mpb_logging_queue *q, mpb__log_node *node, int status,
                           const char *message);

/* Drops a handle's reference; the last one frees it. */
void
mpb__logging_handle_unref(mpb_logging_handle *h);

/* Under lock: frees a node that is off every list, running free_ctx. */
void
mpb__logging_free_node(mpb__log_node *node);

/* Under lock: the writer died or hung. The group's batches complete with
 * group_status, pending ones with MPB_EWRITER_DIED; later calls are refused. */
void
mpb__logging_fail(mpb_logging_queue *q, int group_status, const char *why);

/* Under lock: fails the queue when the store call in progress has run past
 * the call timeout. Returns when the caller should look again (monotonic ns),
 * never after `deadline_ns`. */
int64_t
mpb__logging_check_hung(mpb_logging_queue *q, int64_t now_ns, int64_t deadline_ns);

/* Under lock: waits on cond until deadline_ns (monotonic ns). */
void
mpb__logging_cond_wait(mpb_logging_queue *q, pthread_cond_t *cond, int64_t deadline_ns);

/* Queued entities at which a lingering writer stops waiting. */
size_t
mpb__logging_linger_enough(const mpb_logging_queue *q);

/* Under lock: a writer lingering for more to merge writes now. */
void
mpb__logging_wake_lingering(mpb_logging_queue *q);

#endif
