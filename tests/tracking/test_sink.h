/*
 * A logging-queue sink for tests: records every call and can fail, block or
 * end the writer thread on demand (the fault seam of tracking/logging_queue_int.h).
 * Threading: the sink's calls come from the writer thread; the test thread
 * reads and steers it under its lock (test_sink_* helpers).
 */
#ifndef MPB_TESTS_TRACKING_TEST_SINK_H
#define MPB_TESTS_TRACKING_TEST_SINK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "tracking/logging_queue_int.h"

typedef enum test_call_kind {
    TEST_CALL_CREATE_RUN = 1,
    TEST_CALL_LOG_BATCH = 2,
    TEST_CALL_UPDATE_RUN = 3,
} test_call_kind;

typedef struct test_call {
    test_call_kind kind;
    char *run_id;
    size_t n_metrics;
    size_t n_params;
    size_t n_tags;
    int status; /* what the sink returned */
    mpb_run_status run_status;
} test_call;

typedef struct test_metric {
    char *run_id;
    char *key;
    double value;
    int64_t timestamp_ms;
    int64_t step;
} test_metric;

typedef struct test_kv {
    char *key;
    char *value;
} test_kv;

typedef struct test_sink {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* behaviour, set by the test */
    int fail_status;          /* every call fails with this */
    const char *fail_key;     /* log_batch calls holding this metric key fail with EINVAL */
    int block;                /* calls wait until test_sink_release() */
    int exit_thread;          /* a call ends the writer thread (pthread_exit) */
    int fail_create;          /* create_run fails with MPB_EIO */
    int calls_entered;        /* calls that started (for waiting on a blocked sink) */
    /* record */
    test_call *calls;
    size_t n_calls;
    size_t calls_cap;
    test_metric *metrics;
    size_t n_metrics;
    size_t metrics_cap;
    size_t n_params;
    size_t n_tags;
    test_kv *params; /* every param and tag written, create_run's tags included */
    test_kv *tags;
    int next_run;
} test_sink;

extern const mpb__log_sink test_sink_vtable;

void
test_sink_init(test_sink *sink);
void
test_sink_free(test_sink *sink);

/* Lets blocked calls (and later ones) through. */
void
test_sink_release(test_sink *sink);

/* Waits (up to 10 s) until `count` calls have started; returns 1 when they have. */
int
test_sink_wait_entered(test_sink *sink, int count);

#endif
