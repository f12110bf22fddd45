/*
 * DESIGN
 * mpb_server_stream: the caller's thread pulls inputs, submits them in
 * bulk, and delivers outputs in input order. A ring of `capacity` result
 * slots is indexed by input position; the dispatcher drops each result in
 * its slot, and when the caller waits for exactly that slot it writes the
 * stream's eventfd once, at the end of its round.
 *
 * The caller waits with poll() on that eventfd and, when the source has
 * said it would block (input_ready), on the source's descriptor too: so
 * it passes finished outputs on while no input comes, and reads input the
 * moment it comes. A source without input_ready is read as before: next()
 * may block, and outputs wait meanwhile.
 *
 * Once the stream decides to stop (end of input, an error without
 * return_exceptions, a callback's request, a closed server) it submits no
 * more, and still waits for every item in flight, so no result is left
 * behind in a freed ring.
 */
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "servlets/server_int.h"

#define FILL_MAX 256
#define NOT_WAITING UINT64_MAX

typedef struct stream {
    mpb__waker waker; /* first: the waker's address is the stream's */
    mpb_server *server;
    int wake_fd; /* written by the dispatcher when the awaited slot fills */
    _Atomic(mpb_result *) *ring;
    size_t cap;
    /* The caller publishes the slot it sleeps on, then looks at the slot
     * once more; the dispatcher fills a slot, then looks at waiting_for.
     * Both sequentially consistent: one of the two sees the other, so a
     * result never lands unseen while the caller sleeps. */
    atomic_uint_fast64_t waiting_for;
    atomic_int wake_queued; /* a deferred wake is pending: the stream must not end */
    /* The dispatcher is inside finish_stream: set before it files a result
     * and cleared after its last look at the stream. A caller that takes
     * that result at once may reach stream_close meanwhile, and must wait
     * for it to clear before the stream (on its stack) goes away. */
    atomic_int filing;
} stream;

/* What the caller's loop knows about its source and its outputs. */
typedef struct source {
    mpb_next_fn next;
    void *ctx;
    const mpb_stream_options *opts;
    int ended;   /* no more input goes in */
    int status;  /* why it ended, when not at the end of input */
    int blocked; /* input_ready said next() would block */
    int wait_fd; /* ... and this descriptor tells when it may not */
} source;

static void
wake_stream(mpb__waker *waker)
{
    stream *st = (stream *)waker;
    uint64_t one = 1;
    ssize_t put = write(st->wake_fd, &one, sizeof one);
    (void)put;
    atomic_store(&st->wake_queued, 0); /* last touch of st by the dispatcher */
}

/* Dispatcher thread: drops the result in its slot; the caller is woken
 * once per dispatcher round, after every result of the round landed. */
static void
finish_stream(mpb__job *job, mpb_result *result)
{
    stream *st = job->ctx;
    atomic_store(&st->filing, 1);
    atomic_store(&st->ring[job->index % st->cap], result);
    uint64_t waiting = atomic_load(&st->waiting_for);
    if (waiting != NOT_WAITING && atomic_load(&st->ring[waiting % st->cap]) != NULL &&
        !atomic_load_explicit(&st->wake_queued, memory_order_relaxed)) {
        atomic_store(&st->wake_queued, 1);
        mpb__server_defer_wake(st->server, &st->waker);
    }
    atomic_store(&st->filing, 0); /* last touch of st in this call */
}

/* Submits up to `limit` inputs; returns how many went in. */
static size_t
fill(mpb_server *server, stream *st, uint64_t issued, size_t limit, source *src)
{
    mpb__job *jobs[FILL_MAX];
    size_t n = 0;
    src->blocked = 0;
    while (n < limit) {
        if (src->opts->input_ready != NULL) {
            int fd = -1;
            if (!src->opts->input_ready(src->ctx, &fd)) {
                src->blocked = 1;
                src->wait_fd = fd;
                break;
            }
        }
        const void *data = NULL;
        size_t len = 0;
        int rc = src->next(src->ctx, &data, &len);
        if (rc > 0 && len > MPB_SERVER_MAX_ITEM_BYTES) {
            rc = MPB_ELIMIT;
        }
        if (rc <= 0) {
            src->ended = 1;
            src->status = rc;
            break;
        }
        mpb__job *job = mpb__job_new(server, data, len, src->opts->item_timeout_ms);
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
        src->ended = 1;
        src->status = rc;
    }
    return queued;
}

static mpb_result *
take(stream *st, uint64_t index)
{
    _Atomic(mpb_result *) *slot = &st->ring[index % st->cap];
    mpb_result *result = atomic_load_explicit(slot, memory_order_acquire);
    if (result != NULL) {
        atomic_store_explicit(slot, NULL, memory_order_relaxed); /* only refilled by index + cap */
    }
    return result;
}

/* Sleeps until the result at index may be there (results_pending), the
 * source's descriptor may be readable (input_fd >= 0), or, for a blocked
 * source that gave no descriptor (retry_soon), 10 ms passed. */
static void
await(stream *st, uint64_t index, int results_pending, int input_fd, int retry_soon)
{
    if (results_pending) {
        atomic_store(&st->waiting_for, index);
        if (atomic_load(&st->ring[index % st->cap]) != NULL) {
            atomic_store(&st->waiting_for, NOT_WAITING);
            return;
        }
    }
    struct pollfd fds[2] = {{.fd = results_pending ? st->wake_fd : -1, .events = POLLIN},
                            {.fd = input_fd, .events = POLLIN}};
    poll(fds, 2, retry_soon ? 10 : -1);
    uint64_t count;
    ssize_t got = read(st->wake_fd, &count, sizeof count); /* non-blocking: clears it */
    (void)got;
    atomic_store(&st->waiting_for, NOT_WAITING);
}

/* The dispatcher may still be filing the last result, or hold &st for a
 * deferred wake: wait both out. */
static void
stream_close(stream *st)
{
    while (atomic_load(&st->filing)) {
        sched_yield(); /* a few instructions of the dispatcher's */
    }
    while (atomic_load(&st->wake_queued)) {
        struct pollfd fd = {.fd = st->wake_fd, .events = POLLIN};
        poll(&fd, 1, 10);
    }
    close(st->wake_fd);
    free((void *)st->ring);
}

/* How many inputs to read now. A source that says when it would block is
 * read for all it has; one that may block is read at once while nothing
 * is in flight (a slow source is never held back), and in chunks that
 * grow with the items in flight while it is busy. */
static size_t
fill_limit(const stream *st, const source *src, uint64_t in_flight)
{
    size_t room = (size_t)(st->cap - in_flight);
    size_t limit = src->opts->input_ready ? FILL_MAX : in_flight < 1 ? 1 : (size_t)in_flight;
    limit = limit < FILL_MAX ? limit : FILL_MAX;
    return limit < room ? limit : room;
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
    stream st = {.waker = {.wake = wake_stream}, .server = self};
    st.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (st.wake_fd < 0) {
        return mpb_status_from_errno(errno);
    }
    st.cap = opts.capacity ? opts.capacity : self->options.capacity;
    st.ring = mpb_calloc(st.cap, sizeof *st.ring);
    atomic_init(&st.waiting_for, NOT_WAITING);

    source src = {.next = next, .ctx = ctx, .opts = &opts, .wait_fd = -1};
    uint64_t issued = 0;
    uint64_t delivered = 0;
    int delivering = 1; /* outputs still go to on_output */
    while (!src.ended || delivered < issued) {
        if (!src.ended && issued - delivered < st.cap) {
            issued += fill(self, &st, issued, fill_limit(&st, &src, issued - delivered), &src);
        }
        /* every result already there, in order */
        int progressed = 0;
        mpb_result *result;
        while (delivered < issued && (result = take(&st, delivered)) != NULL) {
            progressed = 1;
            if (delivering) {
                int is_error = mpb_result_is_error(result);
                int rc = on_output(ctx, delivered, result);
                if (rc != 0 || (is_error && !opts.return_exceptions)) {
                    src.status = rc != 0 ? rc : MPB_EITEM;
                    delivering = 0; /* drop the rest, but wait for it */
                    src.ended = 1;
                }
            }
            mpb_result_destroy(&result);
            delivered++;
        }
        if (src.ended && delivered == issued) {
            break; /* nothing more to read or to wait for */
        }
        int can_read = !src.ended && issued - delivered < st.cap;
        if (progressed || (can_read && !src.blocked)) {
            continue; /* more may be ready at once */
        }
        int blocked = can_read && src.blocked;
        await(&st, delivered, delivered < issued, blocked ? src.wait_fd : -1,
              blocked && src.wait_fd < 0);
    }
    stream_close(&st);
    return src.status;
}
