/*
 * DESIGN
 * mpb_server_stream: the caller's thread pulls inputs, submits them in
 * bulk, and delivers outputs in input order. A ring of `capacity` result
 * slots is indexed by input position; the dispatcher drops each result in
 * its slot and signals only when the caller waits for exactly that slot.
 * Once the stream decides to stop (end of input, an error without
 * return_exceptions, a callback's request, a closed server) it submits no
 * more, and still waits for every item in flight, so no result is left
 * behind in a freed ring.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "servlets/server_int.h"

#define FILL_MAX 256
#define NOT_WAITING UINT64_MAX

typedef struct stream {
    mpb__waker waker; /* first: the waker's address is the stream's */
    mpb_server *server;
    pthread_mutex_t lock;
    pthread_cond_t ready;
    mpb_result **ring;
    size_t cap;
    uint64_t waiting_for;
    int wake_queued; /* a deferred wake is pending: the stream must not end */
} stream;

static void
wake_stream(mpb__waker *waker)
{
    stream *st = (stream *)waker;
    pthread_mutex_lock(&st->lock);
    st->wake_queued = 0;
    pthread_cond_broadcast(&st->ready);
    pthread_mutex_unlock(&st->lock);
}

/* Dispatcher thread: drops the result in its slot; the caller is woken
 * once per dispatcher round, after every result of the round landed. */
static void
finish_stream(mpb__job *job, mpb_result *result)
{
    stream *st = job->ctx;
    pthread_mutex_lock(&st->lock);
    st->ring[job->index % st->cap] = result;
    if (st->waiting_for != NOT_WAITING && st->ring[st->waiting_for % st->cap] != NULL &&
        !st->wake_queued) {
        st->wake_queued = 1;
        mpb__server_defer_wake(st->server, &st->waker);
    }
    pthread_mutex_unlock(&st->lock);
}

/* Submits up to `limit` inputs; returns how many went in. Sets *ended at
 * the end of input, and *status when input or submission failed. */
static size_t
fill(mpb_server *server, stream *st, uint64_t issued, size_t limit, mpb_next_fn next, void *ctx,
     const mpb_stream_options *opts, int *ended, int *status)
{
    mpb__job *jobs[FILL_MAX];
    size_t n = 0;
    while (n < limit) {
        const void *data = NULL;
        size_t len = 0;
        int rc = next(ctx, &data, &len);
        if (rc > 0 && len > MPB_SERVER_MAX_ITEM_BYTES) {
            rc = MPB_ELIMIT;
        }
        if (rc <= 0) {
            *ended = 1;
            *status = rc;
            break;
        }
        mpb__job *job = mpb__job_new(server, data, len, opts->item_timeout_ms);
        job->finish = finish_stream;
        job->ctx = st;
        job->index = issued + n;
        jobs[n++] = job;
    }
    if (n == 0) {
        return 0;
    }
    size_t queued = 0;
    int rc = mpb__server_enqueue(server, jobs, n, -1, &queued);
    if (rc != 0) {
        for (size_t i = queued; i < n; i++) {
            free(jobs[i]);
        }
        *ended = 1;
        *status = rc;
    }
    return queued;
}

static mpb_result *
take_next(stream *st, uint64_t index, int block)
{
    pthread_mutex_lock(&st->lock);
    mpb_result **slot = &st->ring[index % st->cap];
    while (*slot == NULL && block) {
        st->waiting_for = index;
        pthread_cond_wait(&st->ready, &st->lock);
    }
    st->waiting_for = NOT_WAITING;
    mpb_result *result = *slot;
    *slot = NULL;
    pthread_mutex_unlock(&st->lock);
    return result;
}

int
mpb_server_stream(mpb_server *self, mpb_next_fn next, mpb_output_fn on_output, void *ctx,
                  const mpb_stream_options *options)
{
    if (next == NULL || on_output == NULL) {
        return MPB_EINVAL;
    }
    mpb_stream_options opts = {0};
    if (options != NULL) {
        opts = *options;
    }
    stream st = {.waker = {.wake = wake_stream}, .server = self, .waiting_for = NOT_WAITING};
    st.cap = opts.capacity ? opts.capacity : self->options.capacity;
    st.ring = mpb_calloc(st.cap, sizeof(mpb_result *));
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.ready, NULL);

    uint64_t issued = 0;
    uint64_t delivered = 0;
    int ended = 0;      /* no more input goes in */
    int delivering = 1; /* outputs still go to on_output */
    int status = 0;
    while (!ended || delivered < issued) {
        uint64_t in_flight = issued - delivered;
        if (!ended && in_flight < st.cap) {
            /* Chunks grow with the items in flight: with nothing in flight an
             * input goes in at once, so a slow source is never held back by
             * batching, while a fast one submits up to FILL_MAX per lock. */
            size_t limit = in_flight < 1 ? 1 : in_flight;
            limit = limit < FILL_MAX ? limit : FILL_MAX;
            limit = limit < st.cap - in_flight ? limit : (size_t)(st.cap - in_flight);
            issued += fill(self, &st, issued, limit, next, ctx, &opts, &ended, &status);
        }
        /* Wait for the oldest result only when no more input can go in;
         * then take every result already there, in order. */
        int must_wait = ended || issued - delivered >= st.cap;
        while (delivered < issued) {
            mpb_result *result = take_next(&st, delivered, must_wait);
            if (result == NULL) {
                break;
            }
            must_wait = 0;
            if (delivering) {
                int is_error = mpb_result_is_error(result);
                int rc = on_output(ctx, delivered, result);
                if (rc != 0 || (is_error && !opts.return_exceptions)) {
                    status = rc != 0 ? rc : MPB_EITEM;
                    delivering = 0; /* drop the rest, but wait for it */
                    ended = 1;
                }
            }
            mpb_result_destroy(&result);
            delivered++;
        }
    }
    pthread_mutex_lock(&st.lock);
    while (st.wake_queued) {
        pthread_cond_wait(&st.ready, &st.lock); /* the dispatcher still holds &st */
    }
    pthread_mutex_unlock(&st.lock);
    pthread_cond_destroy(&st.ready);
    pthread_mutex_destroy(&st.lock);
    free(st.ring);
    return status;
}
