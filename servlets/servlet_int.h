/*
 * The contract between the server and its servlets. Every servlet kind is
 * one static const mpb__servlet_ops table; every slot runs on the server's
 * dispatcher thread (the only thread that touches servlet state).
 *
 * A task is one item on its way through a servlet: the submitter owns it
 * and its input until the servlet calls task->done exactly once, handing
 * over the result (value or error). Composite servlets make tasks for their
 * members and complete their own task from the members' results.
 */
#ifndef MPB_SERVLETS_SERVLET_INT_H
#define MPB_SERVLETS_SERVLET_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/curve.h"
#include "core/loop.h"
#include "servlets/metrics.h"
#include "mpbatch/result.h"
#include "mpbatch/server.h"
#include "mpbatch/servlet.h"
#include "mpbatch/worker.h"

/* The name the root servlet cannot take: tracking logs the server's end
 * to end figures under "server/..." beside each servlet's "<path>/...". */
#define MPB__SERVER_RESERVED_NAME "server"

typedef struct mpb__task mpb__task;

/* Work to do once the dispatcher finishes its current round: a sleeper to
 * wake (a frame of 64 results costs one wake-up, not 64), a pool's items
 * to send (all the round's submissions in one frame). Dispatcher only. */
typedef struct mpb__waker mpb__waker;
struct mpb__waker {
    void (*wake)(mpb__waker *waker);
    mpb__waker *next;
};

/* Receives the task's result; the callee owns result. */
typedef void (*mpb__task_done_fn)(mpb__task *task, mpb_result *result);

struct mpb__task {
    const void *input; /* borrowed until done is called */
    size_t len;
    int64_t deadline_ns; /* monotonic; 0: none */
    mpb__task_done_fn done;
    uint64_t token; /* the servlet holding the task may keep an id here (cancel) */
};

/* Counters updated by the dispatcher, read by any thread. */
typedef struct mpb__stats {
    atomic_uint_fast64_t batches;
    atomic_uint_fast64_t batched_items;
    atomic_uint_fast64_t closed[3];
    atomic_int_fast64_t compute_us;
    atomic_int_fast64_t first_wait_us;
    atomic_uint_fast64_t protocol_errors;
    atomic_uint_fast64_t workers_lost;
    atomic_uint_fast64_t shm_items;
    atomic_uint_fast64_t shm_values;
    char last_exit[192]; /* the latest worker death, described; under env.info_lock */
} mpb__stats;

/* What a servlet gets from its server at start. */
typedef struct mpb__servlet_env {
    mpb__loop *loop;
    pthread_mutex_t *info_lock; /* held while worker lists change or are read */
    void *zmq_context;
    mpb__stats *stats;
    mpb_telemetry_fn on_batch;
    void *on_batch_ctx;
    /* cpus: auto spreads the workers of the whole tree over the cores:
     * pools take consecutive places in a spread of auto_total workers. */
    unsigned auto_total;
    unsigned *auto_next;
    /* Queues waker for the end of the dispatcher's current round. */
    void (*defer)(void *ctx, mpb__waker *waker);
    void *defer_ctx;
    /* CURVE for tcp:// binds (NULL: none): the coordinator's keys, and
     * its secret file, which its own workers use as their key too. */
    const mpb__curve_keys *curve;
    const char *curve_key_file;
} mpb__servlet_env;

typedef struct mpb__servlet_ops {
    const char *kind;
    /* Starts workers; returns once all are ready. May block (dispatcher
     * thread, before it serves). path is the parent's path ("" at the root). */
    int (*start)(mpb_servlet *self, const mpb__servlet_env *env, const char *parent_path, char *err,
                 size_t err_len);
    /* Takes a task; must call task->done exactly once, now or later. */
    void (*submit)(mpb_servlet *self, mpb__task *task);
    /* The task's owner no longer needs its result: withdraw the work that
     * has not started. done is still called exactly once, now (with a
     * Cancelled error) or later (with whatever the task came to). Work a
     * worker already holds runs to its end. May recurse into done. */
    void (*cancel)(mpb_servlet *self, mpb__task *task);
    /* Workers of the subtree that cpus: auto will pin (before start). */
    unsigned (*auto_workers)(const mpb_servlet *self);
    /* 1 when every worker of the subtree is connected and ready. */
    int (*ready)(mpb_servlet *self);
    /* After start: the tensors an item and a value hold, as the plugins
     * declare them (arrays ending with a zeroed entry, borrowed while the
     * servlet lives); NULL when not declared. */
    void (*tensors)(mpb_servlet *self, const mpb_tensor_def **inputs,
                    const mpb_tensor_def **outputs);
    /* Nothing is in flight any more: ask workers to leave. Non-blocking. */
    void (*shutdown)(mpb_servlet *self);
    /* 1 once every worker has left. */
    int (*stopped)(mpb_servlet *self);
    /* Forces the workers that did not leave in time. */
    void (*kill)(mpb_servlet *self);
    /* Any thread, under env->info_lock: copies connected workers into
     * out[0..max) starting at out[*count], advancing *count past max too. */
    void (*workers)(mpb_servlet *self, mpb_worker_status *out, size_t max, size_t *count);
    /* Dispatcher thread: queue depth, in flight and workers now (pools;
     * NULL for composites, whose figures are their members'). */
    void (*gauges)(mpb_servlet *self, mpb__gauges *out);
    /* Frees the servlet (stopped, or never started). */
    void (*destroy)(mpb_servlet *self);
} mpb__servlet_ops;

struct mpb_servlet {
    const mpb__servlet_ops *ops;
    char *name;
    char *path;            /* "parent/name", set at start */
    mpb_servlet **members; /* a composite's children, in order; NULL for pools */
    size_t n_members;
    mpb__servlet_env env;        /* set at start */
    mpb_tensor_def *tensor_list; /* a composite's own list of outputs (ensemble), or NULL */
    mpb__metrics *metrics;       /* pools: what they did (servlets/metrics.h); else NULL */
};

/* Calls fn for the servlet and each one below it, parents first. */
void mpb__servlet_walk(mpb_servlet *self, void (*fn)(mpb_servlet *servlet, void *ctx), void *ctx);

/* Worker threads detached while stuck in their plugin (process-wide). */
extern atomic_int mpb__stuck_threads;

/* Sets name and path fields; path = parent_path + "/" + name. */
void mpb__servlet_set_path(mpb_servlet *self, const char *parent_path);

/* The servlet at path (names joined by '/', the root's name first; "" is
 * the root itself), or NULL. */
mpb_servlet *mpb__servlet_find(mpb_servlet *root, const char *path);

/* ---- composites (sequential, ensemble, switch) share these ---- */

/* Takes members[0..n) (nulling them) into self; the caller sets ops. */
void mpb__composite_init(mpb_servlet *self, const char *name, mpb_servlet **members, size_t n);
/* Sets the path, checks member names are unique, starts every member. */
int mpb__composite_start(mpb_servlet *self, const mpb__servlet_env *env, const char *parent_path,
                         char *err, size_t err_len);
void mpb__composite_shutdown(mpb_servlet *self);
int mpb__composite_stopped(mpb_servlet *self);
void mpb__composite_kill(mpb_servlet *self);
int mpb__composite_ready(mpb_servlet *self);
unsigned mpb__composite_auto_workers(const mpb_servlet *self);
void mpb__composite_workers(mpb_servlet *self, mpb_worker_status *out, size_t max, size_t *count);
/* Inputs of the first member, outputs of the last (sequential). */
void mpb__composite_tensors_chain(mpb_servlet *self, const mpb_tensor_def **inputs,
                                  const mpb_tensor_def **outputs);
/* Inputs and outputs of the first member (switch: every member takes the
 * same input; the first stands for all). */
void mpb__composite_tensors_first(mpb_servlet *self, const mpb_tensor_def **inputs,
                                  const mpb_tensor_def **outputs);
/* Frees members, name and path (not self). */
void mpb__composite_free(mpb_servlet *self);

#endif
