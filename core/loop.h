/*
 * The coordinator's event loop: ZeroMQ sockets, file descriptors and
 * millisecond timers, dispatched from one thread (a small ae.c on zmq_poll).
 * Threading: one thread owns a loop and everything registered in it.
 * Processes: do not carry across fork. Ownership: the loop borrows sockets
 *   and fds; callers close them after removing them.
 */
#ifndef MPB_CORE_LOOP_H
#define MPB_CORE_LOOP_H

#include <stdint.h>

typedef struct mpb__loop mpb__loop;
typedef void (*mpb__loop_fn)(mpb__loop *loop, void *arg);

mpb__loop *mpb__loop_new(void);
void mpb__loop_destroy(mpb__loop **self_p);

/* Calls fn whenever socket (a ZeroMQ socket) or fd is readable. */
void mpb__loop_add_socket(mpb__loop *self, void *socket, mpb__loop_fn fn, void *arg);
void mpb__loop_add_fd(mpb__loop *self, int fd, mpb__loop_fn fn, void *arg);
/* Safe to call from inside a callback. */
void mpb__loop_remove_socket(mpb__loop *self, void *socket);
void mpb__loop_remove_fd(mpb__loop *self, int fd);

/* Calls fn every interval_ms (repeat) or once; returns an id for cancel. */
uint64_t mpb__loop_add_timer(mpb__loop *self, int64_t interval_ms, int repeat, mpb__loop_fn fn,
                             void *arg);
void mpb__loop_cancel_timer(mpb__loop *self, uint64_t id);

/* Waits at most max_wait_ms (-1: until something happens) and dispatches
 * what is ready. Returns 0, or a negative status when polling failed. */
int mpb__loop_run_once(mpb__loop *self, int64_t max_wait_ms);

/* When the current round's poll returned (mpb_now_ns's clock): one clock
 * read per round for callbacks that stamp many items. */
int64_t mpb__loop_now(const mpb__loop *self);

#endif
