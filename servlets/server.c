/*
 * DESIGN
 * The dispatcher thread owns the servlet tree and every ZeroMQ socket in it.
 * Callers never touch a socket: they append jobs to a mutex-protected queue
 * and, when the dispatcher may be asleep, poke an eventfd it polls. (This
 * replaces a per-thread inproc socket: any thread can submit without owning
 * a socket, and a stream hands over hundreds of items per wake-up.)
 *
 *   caller threads --jobs+eventfd--> dispatcher --ITEMS--> workers
 *   caller threads <--finish(job)--- dispatcher <--RESULTS- workers
 *
 * Capacity: in_flight counts accepted, unanswered jobs; enqueue blocks (or
 * fails fast) at capacity, and a finished job wakes blocked callers only if
 * some are waiting, so the common path takes no extra lock.
 *
 * Stop: refuse new jobs, let every accepted job finish (or fail it when
 * stop_timeout_ms passes), ask workers to leave, kill what does not leave
 * in time, then end the dispatcher thread.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <zmq.h>

#include "core/os/cleanup.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "servlets/server_int.h"

#define DEFAULT_CAPACITY 1024
#define MAX_CAPACITY ((size_t)1 << 22)
#define DEFAULT_STOP_TIMEOUT_MS 10000

void
mpb_server_options_init(mpb_server_options *options)
{
    memset(options, 0, sizeof *options);
    options->capacity = DEFAULT_CAPACITY;
    options->stop_timeout_ms = DEFAULT_STOP_TIMEOUT_MS;
}

mpb_server *
mpb_server_new(mpb_servlet **root_p, const mpb_server_options *options)
{
    MPB_ASSERT(root_p != NULL && *root_p != NULL);
    mpb_server *self = mpb_calloc(1, sizeof *self);
    self->metrics = mpb__metrics_new();
    self->root = *root_p;
    *root_p = NULL;
    if (options != NULL) {
        self->options = *options;
    } else {
        mpb_server_options_init(&self->options);
    }
    if (self->options.capacity == 0) {
        self->options.capacity = DEFAULT_CAPACITY;
    }
    if (self->options.capacity > MAX_CAPACITY) {
        self->options.capacity = MAX_CAPACITY;
    }
    if (self->options.stop_timeout_ms <= 0) {
        self->options.stop_timeout_ms = DEFAULT_STOP_TIMEOUT_MS;
    }
    mpb__server_curve_copy(self);
    self->wake_fd = -1;
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->info_lock, NULL);
    mpb__cond_init_monotonic(&self->state_changed);
    mpb__cond_init_monotonic(&self->space_freed);
    return self;
}

static void
set_state(mpb_server *self, mpb__server_state state)
{
    pthread_mutex_lock(&self->lock);
    self->state = state;
    pthread_cond_broadcast(&self->state_changed);
    pthread_cond_broadcast(&self->space_freed);
    pthread_mutex_unlock(&self->lock);
}

static void
run_calls(mpb_server *self, mpb__loop_call *calls)
{
    while (calls != NULL) {
        mpb__loop_call *call = calls;
        calls = call->next;
        int rc = call->fn(self, call->arg);
        pthread_mutex_lock(&self->lock);
        call->rc = rc;
        call->done = 1;
        pthread_cond_broadcast(&self->state_changed);
        pthread_mutex_unlock(&self->lock);
    }
}

/* Dispatcher: takes every queued job and hands it to the root servlet. */
static void
on_wake(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb_server *self = arg;
    uint64_t count;
    ssize_t got = read(self->wake_fd, &count, sizeof count);
    (void)got;
    pthread_mutex_lock(&self->lock);
    mpb__job **jobs = self->queue;
    size_t n = self->n_queue;
    size_t cap = self->cap_queue;
    self->queue = self->spare;
    self->n_queue = 0;
    self->cap_queue = self->cap_spare;
    self->wake_pending = 0;
    mpb__loop_call *calls = self->calls;
    self->calls = NULL;
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < n; i++) {
        jobs[i]->seq = self->next_seq++;
        self->root->ops->submit(self->root, &jobs[i]->task);
    }
    self->spare = jobs; /* ours alone until the next round swaps it in */
    self->cap_spare = cap;
    run_calls(self, calls);
}

void
mpb__server_defer_wake(mpb_server *server, mpb__waker *waker)
{
    waker->next = server->wakers;
    server->wakers = waker;
}

static void
defer_for_servlets(void *ctx, mpb__waker *waker)
{
    mpb__server_defer_wake(ctx, waker);
}

static void
run_deferred_wakes(mpb_server *self)
{
    while (self->wakers != NULL) {
        mpb__waker *waker = self->wakers;
        self->wakers = waker->next;
        waker->wake(waker); /* may free the waker's owner: read next first */
    }
}

/* Runs the stop sequence; returns 1 once the dispatcher may end. */
static int
stop_step(mpb_server *self, int *phase, int64_t *deadline)
{
    int64_t now = mpb_now_ns();
    int64_t timeout_ns = (int64_t)self->options.stop_timeout_ms * 1000000;
    if (*phase == 0) {
        *phase = 1;
        *deadline = now + timeout_ns;
        for (mpb__frontend *fe = self->frontends; fe != NULL; fe = fe->next) {
            fe->ops->close(fe);
        }
    }
    if (*phase == 1) {
        on_wake(self->loop, self); /* jobs accepted before stop still run */
        int idle = 1;
        for (mpb__frontend *fe = self->frontends; fe != NULL; fe = fe->next) {
            idle &= fe->ops->idle(fe);
        }
        if ((atomic_load(&self->in_flight) > 0 || !idle) && now < *deadline) {
            return 0;
        }
        if (atomic_load(&self->in_flight) > 0) {
            mpb_log_err("server", "%zu items still in flight after %d ms; stopping workers",
                        atomic_load(&self->in_flight), self->options.stop_timeout_ms);
            self->root->ops->kill(self->root);    /* answers them Cancelled */
            mpb__interval_finish(self->interval); /* the last interval counts those too */
            return 1;
        }
        mpb__interval_finish(self->interval); /* the last interval, workers still up */
        self->root->ops->shutdown(self->root);
        *phase = 2;
        *deadline = now + timeout_ns;
    }
    if (self->root->ops->stopped(self->root)) {
        return 1;
    }
    if (now >= *deadline) {
        mpb_log_warn("server", "workers did not leave within %d ms; killing them",
                     self->options.stop_timeout_ms);
        self->root->ops->kill(self->root);
        return 1;
    }
    return 0;
}

/* Calls that can no longer run (the dispatcher ended) fail. */
static void
fail_calls(mpb_server *self)
{
    pthread_mutex_lock(&self->lock);
    for (mpb__loop_call *call = self->calls; call != NULL; call = call->next) {
        call->rc = MPB_ECLOSED;
        call->done = 1;
    }
    self->calls = NULL;
    pthread_cond_broadcast(&self->state_changed);
    pthread_mutex_unlock(&self->lock);
}

static void *
dispatcher_main(void *arg)
{
    mpb_server *self = arg;
    mpb_log_set_role("coordinator");
    unsigned auto_next = 0;
    mpb__servlet_env env = {
        .loop = self->loop,
        .info_lock = &self->info_lock,
        .zmq_context = self->zmq_context,
        .stats = &self->stats,
        .on_batch = self->options.on_batch,
        .on_batch_ctx = self->options.on_batch_ctx,
        .auto_total = self->root->ops->auto_workers(self->root),
        .auto_next = &auto_next,
        .defer = defer_for_servlets,
        .defer_ctx = self,
    };
    char err[512] = "";
    int rc = 0;
    if (strcmp(self->root->name, MPB__SERVER_RESERVED_NAME) == 0) {
        rc = mpb__set_error(err, sizeof err, MPB_EINVAL,
                            "the root servlet cannot be named '%s': tracking keeps %s/... for "
                            "the server's end-to-end figures; rename it",
                            MPB__SERVER_RESERVED_NAME, MPB__SERVER_RESERVED_NAME);
    }
    if (rc == 0) {
        rc = mpb__server_curve_open(self, &env, err, sizeof err);
    }
    if (rc == 0) {
        rc = self->root->ops->start(self->root, &env, "", err, sizeof err);
    }
    pthread_mutex_lock(&self->lock);
    self->start_rc = rc;
    snprintf(self->start_error, sizeof self->start_error, "%s", err);
    pthread_mutex_unlock(&self->lock);
    if (rc != 0) {
        set_state(self, MPB_SERVER_FAILED);
        return NULL;
    }
    mpb__loop_add_fd(self->loop, self->wake_fd, on_wake, self);
    if (self->options.on_interval != NULL) {
        self->interval = mpb__interval_start(self);
    }
    set_state(self, MPB_SERVER_RUNNING);
    int phase = 0;
    int64_t deadline = 0;
    for (;;) {
        int stopping = atomic_load(&self->stop_requested);
        mpb__loop_run_once(self->loop, stopping ? 10 : 1000);
        run_deferred_wakes(self);
        if (stopping && stop_step(self, &phase, &deadline)) {
            break;
        }
    }
    run_deferred_wakes(self);
    for (mpb__frontend *fe = self->frontends; fe != NULL; fe = fe->next) {
        fe->ops->stop(fe);
    }
    mpb__loop_remove_fd(self->loop, self->wake_fd);
    set_state(self, MPB_SERVER_STOPPED);
    fail_calls(self);
    return NULL;
}

int
mpb_server_start(mpb_server *self, char *err, size_t err_len)
{
    pthread_mutex_lock(&self->lock);
    if (self->state != MPB_SERVER_NEW) {
        pthread_mutex_unlock(&self->lock);
        return mpb__set_error(err, err_len, MPB_EINVAL, "server was already started");
    }
    self->state = MPB_SERVER_STARTING;
    pthread_mutex_unlock(&self->lock);
    int rc = mpb__server_curve_load(self, err, err_len);
    if (rc != 0) {
        set_state(self, MPB_SERVER_FAILED);
        return rc;
    }

    self->zmq_context = zmq_ctx_new();
    self->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->zmq_context == NULL || self->wake_fd < 0) {
        set_state(self, MPB_SERVER_FAILED);
        return mpb__set_error(err, err_len, MPB_EMFILE, "cannot create zmq context or eventfd");
    }
    zmq_ctx_set(self->zmq_context, ZMQ_BLOCKY, 0);
    self->loop = mpb__loop_new();

    /* The dispatcher takes no signals: they stay with the application. */
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&self->thread, NULL, dispatcher_main, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        set_state(self, MPB_SERVER_FAILED);
        return mpb__set_error(err, err_len, -rc, "pthread_create: %s", strerror(rc));
    }
    self->thread_started = 1;

    pthread_mutex_lock(&self->lock);
    while (self->state == MPB_SERVER_STARTING) {
        pthread_cond_wait(&self->state_changed, &self->lock);
    }
    rc = self->start_rc;
    if (rc != 0) {
        mpb__set_error(err, err_len, rc, "%s", self->start_error);
    }
    pthread_mutex_unlock(&self->lock);
    if (rc != 0) {
        pthread_join(self->thread, NULL);
        self->thread_started = 0;
    }
    return rc;
}

int
mpb_server_is_running(mpb_server *self)
{
    pthread_mutex_lock(&self->lock);
    int running = self->state == MPB_SERVER_RUNNING;
    pthread_mutex_unlock(&self->lock);
    return running;
}

int
mpb_server_stop(mpb_server *self)
{
    pthread_mutex_lock(&self->lock);
    if (self->state == MPB_SERVER_RUNNING) {
        self->state = MPB_SERVER_STOPPING;
        atomic_store(&self->stop_requested, 1);
        uint64_t one = 1;
        ssize_t put = write(self->wake_fd, &one, sizeof one);
        (void)put;
        pthread_cond_broadcast(&self->space_freed);
    }
    while (self->state == MPB_SERVER_STOPPING) {
        pthread_cond_wait(&self->state_changed, &self->lock);
    }
    int join = self->thread_started; /* exactly one caller joins */
    self->thread_started = 0;
    pthread_mutex_unlock(&self->lock);
    if (join) {
        pthread_join(self->thread, NULL);
    }
    return 0;
}

void
mpb_emergency_cleanup(void)
{
    mpb__cleanup_files();
}

void
mpb_server_destroy(mpb_server **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_server *self = *self_p;
    mpb_server_stop(self);
    while (self->frontends != NULL) {
        mpb__frontend *fe = self->frontends;
        self->frontends = fe->next;
        fe->ops->destroy(fe);
    }
    mpb_servlet_destroy(&self->root);
    /* Only now: a context without a ZAP handler lets every CURVE peer in,
     * and the tree's sockets were open until the line above. Peers that
     * knock meanwhile wait unanswered, which keeps them out. */
    mpb__server_curve_close(self);
    for (size_t i = 0; i < self->n_queue; i++) {
        free(self->queue[i]);
    }
    free(self->queue);
    free(self->spare);
    mpb__metrics_free(&self->metrics);
    mpb__interval_free(&self->interval);
    mpb__server_curve_free(self);
    mpb__loop_destroy(&self->loop);
    if (self->wake_fd >= 0) {
        close(self->wake_fd);
    }
    if (self->zmq_context != NULL) {
        if (atomic_load(&mpb__stuck_threads) == 0) {
            zmq_ctx_term(self->zmq_context);
        } else {
            /* A detached worker thread still owns a socket of this context:
             * terminating would wait for it forever. */
            mpb_log_err("server",
                        "leaving the ZeroMQ context open: %d worker threads are stuck "
                        "in their plugin",
                        atomic_load(&mpb__stuck_threads));
        }
    }
    pthread_cond_destroy(&self->space_freed);
    pthread_cond_destroy(&self->state_changed);
    pthread_mutex_destroy(&self->lock);
    pthread_mutex_destroy(&self->info_lock);
    free(self);
    *self_p = NULL;
}

void
mpb_server_stats_get(mpb_server *self, mpb_server_stats *out)
{
    memset(out, 0, sizeof *out);
    out->submitted = atomic_load(&self->submitted);
    out->completed = atomic_load(&self->completed);
    out->rejected = atomic_load(&self->rejected);
    out->errors = atomic_load(&self->errors);
    out->in_flight = atomic_load(&self->in_flight);
    out->batches = atomic_load(&self->stats.batches);
    out->batched_items = atomic_load(&self->stats.batched_items);
    out->closed_full = atomic_load(&self->stats.closed[MPB_BATCH_CLOSED_FULL]);
    out->closed_timer = atomic_load(&self->stats.closed[MPB_BATCH_CLOSED_TIMER]);
    out->closed_drained = atomic_load(&self->stats.closed[MPB_BATCH_CLOSED_DRAINED]);
    out->compute_us = atomic_load(&self->stats.compute_us);
    out->first_wait_us = atomic_load(&self->stats.first_wait_us);
    out->protocol_errors = atomic_load(&self->stats.protocol_errors);
    out->workers_lost = atomic_load(&self->stats.workers_lost);
    out->shm_items = atomic_load(&self->stats.shm_items);
    out->shm_values = atomic_load(&self->stats.shm_values);
    pthread_mutex_lock(&self->info_lock);
    snprintf(out->last_exit, sizeof out->last_exit, "%s", self->stats.last_exit);
    pthread_mutex_unlock(&self->info_lock);
}

size_t
mpb_server_workers(mpb_server *self, mpb_worker_status *out, size_t max)
{
    size_t count = 0;
    pthread_mutex_lock(&self->info_lock);
    if (self->root != NULL) {
        self->root->ops->workers(self->root, out, max, &count);
    }
    pthread_mutex_unlock(&self->info_lock);
    return count;
}

int
mpb__server_run_on_loop(mpb_server *server, int (*fn)(mpb_server *server, void *arg), void *arg)
{
    mpb__loop_call call = {.fn = fn, .arg = arg};
    pthread_mutex_lock(&server->lock);
    if (server->state != MPB_SERVER_RUNNING) {
        pthread_mutex_unlock(&server->lock);
        return MPB_ECLOSED;
    }
    call.next = server->calls;
    server->calls = &call;
    uint64_t one = 1;
    ssize_t put = write(server->wake_fd, &one, sizeof one);
    (void)put;
    while (!call.done) {
        pthread_cond_wait(&server->state_changed, &server->lock);
    }
    pthread_mutex_unlock(&server->lock);
    return call.rc;
}

mpb__loop *
mpb__server_loop(mpb_server *server)
{
    return server->loop;
}

void *
mpb__server_zmq_context(mpb_server *server)
{
    return server->zmq_context;
}

const mpb__curve_keys *
mpb__server_curve(mpb_server *server)
{
    return server->zap != NULL ? &server->curve_keys : NULL;
}

mpb_servlet *
mpb__server_root(mpb_server *server)
{
    return server->root;
}

int
mpb__server_ready(mpb_server *server)
{
    return !atomic_load(&server->stop_requested) && server->root->ops->ready(server->root);
}

typedef struct attach_call {
    mpb__frontend *frontend;
    int (*bind)(mpb_server *server, void *arg);
    void *arg;
    char *err;
    size_t err_len;
} attach_call;

static int
attach_here(mpb_server *server, void *arg)
{
    attach_call *a = arg;
    if (atomic_load(&server->stop_requested)) {
        return mpb__set_error(a->err, a->err_len, MPB_ECLOSED, "the server is stopping");
    }
    int rc = a->bind(server, a->arg);
    if (rc == 0) {
        a->frontend->next = server->frontends;
        server->frontends = a->frontend;
    }
    return rc;
}

int
mpb__server_attach_frontend(mpb_server *server, mpb__frontend *frontend,
                            int (*bind)(mpb_server *server, void *arg), void *arg, char *err,
                            size_t err_len)
{
    if (err != NULL && err_len > 0) {
        *err = '\0';
    }
    attach_call call = {frontend, bind, arg, err, err_len};
    int rc = mpb__server_run_on_loop(server, attach_here, &call);
    if (rc != 0) {
        if (rc == MPB_ECLOSED && err != NULL && err_len > 0 && *err == '\0') {
            mpb__set_error(err, err_len, rc, "the server is not running");
        }
        frontend->ops->destroy(frontend);
    }
    return rc;
}
