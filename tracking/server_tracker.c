/*
 * DESIGN
 * The bridge between a server's per-batch telemetry and a tracking run. It
 * owns a logging queue of its own, created FAIL_FAST, so the dispatcher
 * thread that calls on_batch never waits for the store: a full queue drops
 * that batch's metrics and counts the drop. Steps number the batches in the
 * order the dispatcher saw them (one counter per tracker; only the
 * dispatcher touches it).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "mpbatch/logging_queue.h"
#include "mpbatch/server_tracker.h"

#define DRAIN_TIMEOUT_MS 30000

struct mpb_server_tracker {
    mpb_logging_queue *queue;
    char *run_id;
    int64_t step; /* dispatcher thread only */
    atomic_uint_fast64_t logged;
    atomic_uint_fast64_t dropped;
};

mpb_server_tracker *
mpb_server_tracker_new(mpb_store *store, const char *run_id)
{
    MPB_ASSERT(store != NULL && run_id != NULL);
    mpb_server_tracker *self = mpb_calloc(1, sizeof *self);
    mpb_logging_queue_options options = {.when_full = MPB_LOGGING_QUEUE_FAIL_FAST};
    self->queue = mpb_logging_queue_new(store, &options);
    self->run_id = mpb_strdup(run_id);
    return self;
}

int
mpb_server_tracker_start(mpb_server_tracker *self, char *err, size_t err_len)
{
    return mpb_logging_queue_start(self->queue, err, err_len);
}

void
mpb_server_tracker_on_batch(void *ctx, const mpb_batch_telemetry *t)
{
    mpb_server_tracker *self = ctx;
    char keys[4][160];
    const char *names[4] = {"batch_size", "first_wait_us", "compute_us", "errors"};
    double values[4] = {t->size, (double)t->first_wait_us, (double)t->compute_us, t->errors};
    int64_t now = mpb_wall_ms();
    mpb_metric metrics[4];
    for (int i = 0; i < 4; i++) {
        snprintf(keys[i], sizeof keys[i], "%s/%s", t->servlet ? t->servlet : "server", names[i]);
        metrics[i] = (mpb_metric){keys[i], values[i], now, self->step};
    }
    self->step++;
    int rc =
        mpb_logging_queue_log_batch(self->queue, self->run_id, metrics, 4, NULL, 0, NULL, 0, NULL);
    atomic_fetch_add(rc == 0 ? &self->logged : &self->dropped, 1);
}

int
mpb_server_tracker_flush(mpb_server_tracker *self, int64_t timeout_ms)
{
    return mpb_logging_queue_flush(self->queue, timeout_ms);
}

uint64_t
mpb_server_tracker_logged(const mpb_server_tracker *self)
{
    return atomic_load(&((mpb_server_tracker *)self)->logged);
}

uint64_t
mpb_server_tracker_dropped(const mpb_server_tracker *self)
{
    return atomic_load(&((mpb_server_tracker *)self)->dropped);
}

void
mpb_server_tracker_destroy(mpb_server_tracker **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_server_tracker *self = *self_p;
    char err[256];
    if (mpb_logging_queue_shutdown(self->queue, DRAIN_TIMEOUT_MS, err, sizeof err) != 0) {
        mpb_log_err("tracking", "server telemetry not fully written: %s", err);
    }
    mpb_logging_queue_destroy(&self->queue);
    free(self->run_id);
    free(self);
    *self_p = NULL;
}
