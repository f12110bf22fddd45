/*
 * DESIGN
 * Handlers live in an array rebuilt into a zmq_pollitem_t array whenever
 * registrations change. Removal during dispatch only marks the handler
 * dead; the array is compacted after the dispatch round, so callbacks may
 * add or remove handlers (their own included) freely. Timers are few
 * (heartbeats, stop deadlines): a plain array scanned per round.
 */
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "core/loop.h"
#include "core/util.h"
#include "core/zmq_util.h"

typedef struct handler {
    void *socket;
    int fd;
    mpb__loop_fn fn;
    void *arg;
    int dead;
} handler;

typedef struct timer {
    uint64_t id;
    int64_t interval_ns;
    int64_t due_ns;
    int repeat;
    mpb__loop_fn fn;
    void *arg;
    int dead;
} timer;

struct mpb__loop {
    handler *handlers;
    size_t n_handlers;
    size_t cap_handlers;
    zmq_pollitem_t *items;
    size_t cap_items;
    timer *timers;
    size_t n_timers;
    size_t cap_timers;
    uint64_t next_timer_id;
    int dirty;
    int64_t now_ns; /* when the current round's poll returned */
};

mpb__loop *
mpb__loop_new(void)
{
    mpb__loop *self = mpb_calloc(1, sizeof *self);
    self->next_timer_id = 1;
    self->now_ns = mpb_now_ns();
    return self;
}

void
mpb__loop_destroy(mpb__loop **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb__loop *self = *self_p;
    free(self->handlers);
    free(self->items);
    free(self->timers);
    free(self);
    *self_p = NULL;
}

static void
add_handler(mpb__loop *self, void *socket, int fd, mpb__loop_fn fn, void *arg)
{
    if (self->n_handlers == self->cap_handlers) {
        self->cap_handlers = self->cap_handlers ? self->cap_handlers * 2 : 16;
        self->handlers = mpb_realloc(self->handlers, self->cap_handlers * sizeof(handler));
    }
    self->handlers[self->n_handlers++] = (handler){socket, fd, fn, arg, 0};
}

void
mpb__loop_add_socket(mpb__loop *self, void *socket, mpb__loop_fn fn, void *arg)
{
    add_handler(self, socket, -1, fn, arg);
}

void
mpb__loop_add_fd(mpb__loop *self, int fd, mpb__loop_fn fn, void *arg)
{
    add_handler(self, NULL, fd, fn, arg);
}

static void
remove_handler(mpb__loop *self, void *socket, int fd)
{
    for (size_t i = 0; i < self->n_handlers; i++) {
        handler *h = &self->handlers[i];
        if (!h->dead &&
            ((socket != NULL && h->socket == socket) || (socket == NULL && h->fd == fd))) {
            h->dead = 1;
            self->dirty = 1;
        }
    }
}

void
mpb__loop_remove_socket(mpb__loop *self, void *socket)
{
    remove_handler(self, socket, -1);
}

void
mpb__loop_remove_fd(mpb__loop *self, int fd)
{
    remove_handler(self, NULL, fd);
}

uint64_t
mpb__loop_add_timer(mpb__loop *self, int64_t interval_ms, int repeat, mpb__loop_fn fn, void *arg)
{
    if (self->n_timers == self->cap_timers) {
        self->cap_timers = self->cap_timers ? self->cap_timers * 2 : 8;
        self->timers = mpb_realloc(self->timers, self->cap_timers * sizeof(timer));
    }
    int64_t interval_ns = interval_ms * 1000000;
    uint64_t id = self->next_timer_id++;
    self->timers[self->n_timers++] =
        (timer){id, interval_ns, mpb_now_ns() + interval_ns, repeat, fn, arg, 0};
    return id;
}

void
mpb__loop_cancel_timer(mpb__loop *self, uint64_t id)
{
    for (size_t i = 0; i < self->n_timers; i++) {
        if (self->timers[i].id == id) {
            self->timers[i].dead = 1;
            self->dirty = 1;
        }
    }
}

static void
compact(mpb__loop *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->n_handlers; i++) {
        if (!self->handlers[i].dead) {
            self->handlers[kept++] = self->handlers[i];
        }
    }
    self->n_handlers = kept;
    kept = 0;
    for (size_t i = 0; i < self->n_timers; i++) {
        if (!self->timers[i].dead) {
            self->timers[kept++] = self->timers[i];
        }
    }
    self->n_timers = kept;
    self->dirty = 0;
}

static int64_t
poll_timeout_ms(const mpb__loop *self, int64_t max_wait_ms)
{
    int64_t timeout = max_wait_ms;
    int64_t now = mpb_now_ns();
    for (size_t i = 0; i < self->n_timers; i++) {
        int64_t left = (self->timers[i].due_ns - now + 999999) / 1000000;
        if (left < 0) {
            left = 0;
        }
        if (timeout < 0 || left < timeout) {
            timeout = left;
        }
    }
    return timeout;
}

static void
run_timers(mpb__loop *self)
{
    int64_t now = mpb_now_ns();
    size_t n = self->n_timers; /* timers added by callbacks wait for the next round */
    for (size_t i = 0; i < n; i++) {
        timer *t = &self->timers[i];
        if (t->dead || t->due_ns > now) {
            continue;
        }
        if (t->repeat) {
            t->due_ns = now + t->interval_ns;
        } else {
            t->dead = 1;
            self->dirty = 1;
        }
        mpb__loop_fn fn = t->fn;
        void *arg = t->arg;
        fn(self, arg); /* may realloc self->timers: do not touch t afterwards */
    }
}

int
mpb__loop_run_once(mpb__loop *self, int64_t max_wait_ms)
{
    if (self->dirty) {
        compact(self);
    }
    size_t n = self->n_handlers;
    if (n > self->cap_items) {
        self->cap_items = n * 2;
        self->items = mpb_realloc(self->items, self->cap_items * sizeof(zmq_pollitem_t));
    }
    for (size_t i = 0; i < n; i++) {
        self->items[i] = (zmq_pollitem_t){
            .socket = self->handlers[i].socket, .fd = self->handlers[i].fd, .events = ZMQ_POLLIN};
    }
    long timeout = (long)poll_timeout_ms(self, max_wait_ms);
    int ready = zmq_poll(self->items, (int)n, timeout);
    self->now_ns = mpb_now_ns();
    if (ready < 0) {
        return zmq_errno() == EINTR ? 0 : mpb__zmq_status();
    }
    for (size_t i = 0; i < n && ready > 0; i++) {
        if (!(self->items[i].revents & ZMQ_POLLIN)) {
            continue;
        }
        ready--;
        handler h = self->handlers[i]; /* copy: callbacks may grow the array */
        if (!self->handlers[i].dead) {
            h.fn(self, h.arg);
        }
    }
    run_timers(self);
    return 0;
}

int64_t
mpb__loop_now(const mpb__loop *self)
{
    return self->now_ns;
}
