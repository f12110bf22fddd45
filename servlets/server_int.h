/*
 * Internals shared by the server's files: server.c (lifecycle and the
 * dispatcher thread) and server_calls.c (call, submit, stream).
 */
#ifndef MPB_SERVLETS_SERVER_INT_H
#define MPB_SERVLETS_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/zap.h"
#include "mpbatch/server.h"
#include "servlets/servlet_int.h"

typedef enum mpb__server_state {
    MPB_SERVER_NEW = 0,
    MPB_SERVER_STARTING,
    MPB_SERVER_RUNNING,
    MPB_SERVER_STOPPING,
    MPB_SERVER_STOPPED,
    MPB_SERVER_FAILED,
} mpb__server_state;

/* No item may be larger, whatever the servlets allow (inputs are copied). */
#define MPB_SERVER_MAX_ITEM_BYTES ((size_t)1 << 30)

typedef struct mpb__job mpb__job;
typedef struct mpb__interval mpb__interval;

/* Hands a finished job's result to whoever waits for it; owns result. */
typedef void (*mpb__job_finish_fn)(mpb__job *job, mpb_result *result);

/* A front end (frontends/): sockets on the dispatcher's loop that turn
 * requests into jobs. Every slot runs on the dispatcher thread but
 * destroy, which runs on the thread that destroys the server. */
typedef struct mpb__frontend mpb__frontend;
typedef struct mpb__frontend_ops {
    const char *kind;
    /* The server began to stop: take no new requests (answer them as
     * unavailable); replies to accepted ones still go out. */
    void (*close)(mpb__frontend *self);
    /* 1 when every accepted request has been answered. */
    int (*idle)(mpb__frontend *self);
    /* The dispatcher is about to end: close sockets, leave the loop. */
    void (*stop)(mpb__frontend *self);
    void (*destroy)(mpb__frontend *self);
} mpb__frontend_ops;

struct mpb__frontend {
    const mpb__frontend_ops *ops;
    mpb__frontend *next;
};

/* A function run on the dispatcher thread for another thread. */
typedef struct mpb__loop_call mpb__loop_call;
struct mpb__loop_call {
    int (*fn)(mpb_server *server, void *arg);
    void *arg;
    int rc;
    int done;
    mpb__loop_call *next;
};

struct mpb__job {
    mpb__task task; /* first: the servlet's done() gets &job->task */
    mpb_server *server;
    mpb__job_finish_fn finish;
    void *ctx;
    union {             /* what finish needs besides ctx (one or the other: a smaller header) */
        uint64_t index; /* the item's place (stream, many, front ends) */
        mpb_done_fn user_done; /* the caller's function (submit) */
    };
    int64_t start_ns; /* when it was submitted: its end-to-end latency counts from here */
    uint64_t seq;     /* its number in the server, in the order the dispatcher took it */
    _Alignas(8) unsigned char input[];
};

struct mpb_server {
    mpb_servlet *root;
    mpb_server_options options;
    void *zmq_context;
    mpb__loop *loop;
    pthread_t thread;
    int thread_started;
    int wake_fd;
    pthread_mutex_t lock;
    pthread_mutex_t info_lock;
    pthread_cond_t state_changed;
    pthread_cond_t space_freed;
    mpb__server_state state;
    int start_rc;
    char start_error[512];
    /* submissions waiting for the dispatcher (under lock) */
    mpb__job **queue;
    size_t n_queue;
    size_t cap_queue;
    /* the dispatcher's array from its last round, empty: swapped in for
     * queue at the next, so handing jobs over allocates nothing */
    mpb__job **spare;
    size_t cap_spare;
    int wake_pending;
    mpb__waker *wakers;       /* deferred wake-ups of this round (dispatcher only) */
    mpb__loop_call *calls;    /* waiting to run on the dispatcher (under lock) */
    mpb__frontend *frontends; /* dispatcher thread only */
    atomic_size_t in_flight;
    atomic_int space_waiters;
    atomic_int stop_requested;
    atomic_uint_fast64_t submitted;
    atomic_uint_fast64_t completed;
    atomic_uint_fast64_t rejected; /* items refused at capacity (overload) */
    atomic_uint_fast64_t errors;
    mpb__stats stats;
    mpb__metrics *metrics;   /* end to end: from submission to answer (dispatcher thread) */
    uint64_t next_seq;       /* the next job's number (dispatcher thread) */
    mpb__interval *interval; /* on_interval's state (server_interval.c), or NULL */
    /* CURVE: copies of options.curve's paths, the keys, and the ZAP
     * handler on the dispatcher's loop (NULL without CURVE) */
    char *curve_secret_file;
    char *curve_clients_dir;
    char *curve_allow;
    mpb__curve_keys curve_keys;
    mpb__zap *zap;
};

/* Interval telemetry (server_interval.c; dispatcher thread): start adds
 * its timer, finish emits the last interval and stops. */
mpb__interval *mpb__interval_start(mpb_server *server);
void mpb__interval_finish(mpb__interval *interval);
void mpb__interval_free(mpb__interval **interval_p);

/* CURVE (server_curve.c). copy: options.curve's paths become the
 * server's own (mpb_server_new); load: its keys, at start (caller's
 * thread); open: the ZAP handler on the loop and the keys in env, before
 * the tree starts (dispatcher); close: at destroy, once the tree's sockets
 * are closed (any thread, the dispatcher gone); free: at destroy. */
void mpb__server_curve_copy(mpb_server *server);
int mpb__server_curve_load(mpb_server *server, char *err, size_t err_len);
int mpb__server_curve_open(mpb_server *server, mpb__servlet_env *env, char *err, size_t err_len);
void mpb__server_curve_close(mpb_server *server);
void mpb__server_curve_free(mpb_server *server);

/* Queues waker->wake for the end of the dispatcher's current round. */
void mpb__server_defer_wake(mpb_server *server, mpb__waker *waker);

/* Runs fn(server, arg) on the dispatcher thread and returns what it
 * returns; MPB_ECLOSED unless the server is running. Any other thread. */
int mpb__server_run_on_loop(mpb_server *server, int (*fn)(mpb_server *server, void *arg),
                            void *arg);

/* ---- for front ends, dispatcher thread only ---- */

mpb__loop *mpb__server_loop(mpb_server *server);
void *mpb__server_zmq_context(mpb_server *server);
/* The server's CURVE keys, or NULL without CURVE: tcp:// binds use them. */
const mpb__curve_keys *mpb__server_curve(mpb_server *server);
mpb_servlet *mpb__server_root(mpb_server *server);
/* 1 while the server runs and every worker of the tree is ready. */
int mpb__server_ready(mpb_server *server);
/* Any thread: runs bind(server, arg) on the dispatcher thread (it opens
 * the front end's sockets and joins the loop) and, when it succeeds, gives
 * the front end to the server, which closes, stops and frees it. On
 * failure the front end is destroyed and err says why. */
int mpb__server_attach_frontend(mpb_server *server, mpb__frontend *frontend,
                                int (*bind)(mpb_server *server, void *arg), void *arg, char *err,
                                size_t err_len);
/* Submits a copy of input to target (the root when NULL) as a job that
 * counts against the server's capacity; finish(job, result) runs later on
 * this thread with job->ctx and job->index as given. MPB_EAGAIN at
 * capacity, MPB_ECLOSED once stopping; nothing is submitted then. */
int mpb__server_submit_here(mpb_server *server, mpb_servlet *target, const void *input, size_t len,
                            int64_t deadline_ns, mpb__job_finish_fn finish, void *ctx,
                            uint64_t index);

/* A job carrying a copy of input; caller fills finish/ctx. */
mpb__job *mpb__job_new(mpb_server *server, const void *input, size_t len, int timeout_ms);

/* Queues jobs for the dispatcher, waiting for capacity up to timeout_ms
 * (0 fail fast, < 0 forever). On failure *queued tells how many went in;
 * the rest still belong to the caller. */
int mpb__server_enqueue(mpb_server *server, mpb__job **jobs, size_t n, int timeout_ms,
                        size_t *queued);

#endif
