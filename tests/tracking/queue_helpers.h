/*
 * Helpers of the logging queue tests: a started (or busy) queue on a test
 * sink, one metric per log call, and the order check. Include after cmocka.h.
 */
#ifndef MPB_TESTS_TRACKING_QUEUE_HELPERS_H
#define MPB_TESTS_TRACKING_QUEUE_HELPERS_H

#include <string.h>

#include "mpbatch/logging_queue.h"
#include "tracking/logging_queue_int.h"
#include "tracking/test_sink.h"

/* Generous: fires only on a hang. */
#define HANG_MS 20000

static inline mpb_logging_queue *
start_queue(test_sink *sink, const mpb_logging_queue_options *options)
{
    mpb_logging_queue *q = mpb__logging_queue_new_with_sink(&test_sink_vtable, sink, options);
    char err[256] = "";
    int rc = mpb_logging_queue_start(q, err, sizeof err);
    if (rc != 0) {
        fail_msg("start: %s", err);
    }
    return q;
}

static inline void
set_block(test_sink *sink, int block)
{
    pthread_mutex_lock(&sink->lock);
    sink->block = block;
    pthread_mutex_unlock(&sink->lock);
}

static inline int
log_metric(mpb_logging_queue *q, const char *run_id, const char *key, int64_t step,
           mpb_logging_handle **handle)
{
    mpb_metric m = {.key = key, .value = (double)step, .timestamp_ms = 1000 + step, .step = step};
    return mpb_logging_queue_log_batch(q, run_id, &m, 1, NULL, 0, NULL, 0, handle);
}

/* A started queue whose writer is inside its first store call, for the
 * metric m of run r1 at step 0 (*first its handle unless NULL), until
 * test_sink_release(): what the test logs meanwhile waits in the queue. */
static inline mpb_logging_queue *
start_busy_queue(test_sink *sink, const mpb_logging_queue_options *options,
                 mpb_logging_handle **first)
{
    set_block(sink, 1);
    mpb_logging_queue *q = start_queue(sink, options);
    assert_int_equal(log_metric(q, "r1", "m", 0, first), 0);
    assert_true(test_sink_wait_entered(sink, 1));
    return q;
}

/* Steps of one run's metrics as the sink saw them must be 0, 1, 2, ... */
static inline void
assert_run_in_order(test_sink *sink, const char *run_id, int64_t expected)
{
    int64_t next = 0;
    for (size_t i = 0; i < sink->n_metrics; i++) {
        if (strcmp(sink->metrics[i].run_id, run_id) == 0) {
            assert_int_equal(sink->metrics[i].step, next);
            next++;
        }
    }
    assert_int_equal(next, expected);
}

#endif
