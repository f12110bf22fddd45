/*
 * A pool: the leaf servlet that feeds items to workers, over a
 * shared-memory link each for the local processes it launched, over one
 * ROUTER socket for the rest. ProcessServlet and ThreadServlet are pools
 * that differ only in how workers are launched, watched and stopped (the
 * launcher table). pool.c: items; pool_deadlines.c: their deadlines;
 * pool_peers.c: workers and their frames; pool_recovery.c: deaths,
 * relaunches, availability, hung batches; pool_isolate.c: the items of a
 * worker that crashed, run again in halves (isolate: bisect);
 * pool_transport.c: bytes in and out; pool_lifecycle.c: start, stop, free.
 * Threading: dispatcher thread only. Ownership: the pool owns its config
 * copy, sockets, workers and launcher state.
 */
#ifndef MPB_SERVLETS_POOL_H
#define MPB_SERVLETS_POOL_H

#include <msgpack.h>

#include "core/link.h"
#include "core/shm_ring.h"
#include "core/wire.h"
#include "servlets/servlet_int.h"

typedef struct mpb__pool mpb__pool;
typedef struct mpb__death mpb__death;

typedef struct mpb__pool_launcher {
    const char *kind;            /* "process" | "thread" */
    const char *default_cpus;    /* "auto" | "none" */
    const char *endpoint_scheme; /* "ipc" | "inproc" */
    /* Prepares launcher state once, before the first launch. */
    int (*prepare)(mpb__pool *pool, char *err, size_t err_len);
    /* Starts worker index (again, after a crash). Non-blocking. */
    int (*launch)(mpb__pool *pool, unsigned index, char *err, size_t err_len);
    /* During start: nonzero with err when a launched worker already died. */
    int (*check_early_exit)(mpb__pool *pool, char *err, size_t err_len);
    /* 1 once every launched worker is gone (reaped / joined). */
    int (*all_gone)(mpb__pool *pool);
    void (*kill_all)(mpb__pool *pool);
    /* Kills worker index now (its death is reported as usual); NULL where
     * workers cannot be killed (threads). */
    void (*kill_one)(mpb__pool *pool, unsigned index);
    void (*release)(mpb__pool *pool);
} mpb__pool_launcher;

/* The shared-memory link to one launched worker (process pools): frames
 * to and from that worker go through it instead of the ROUTER socket. In
 * the pool's tables the worker is known by a routing id made from its
 * index and generation (MPB_POOL_LINK_RID_LEN bytes, a 0 first byte and a
 * length no ZeroMQ peer id has), so a replacement is a new peer. */
typedef struct mpb__pool_link {
    mpb__pool *pool;
    unsigned index;
    uint32_t generation; /* launches of this index so far */
    int64_t pid;         /* the process on the other end */
    int pidfd;           /* its pidfd (the launcher's), or -1 */
    int broken;          /* it wrote outside the link's format: not read again */
    mpb__link *link;
} mpb__pool_link;

#define MPB_POOL_LINK_RID_LEN 10

typedef enum mpb__conn_state {
    MPB_CONN_READY = 1,
    MPB_CONN_LEAVING = 2, /* SHUTDOWN sent */
    MPB_CONN_GONE = 3,
} mpb__conn_state;

/* A batch whose TELEMETRY arrived before its results: its size and number. */
typedef struct mpb__batch_mark {
    uint32_t size;
    uint32_t seq;
} mpb__batch_mark;

typedef struct mpb__conn {
    unsigned char rid[256];
    size_t rid_len;
    char *name;
    char *cpus;
    char *host;
    int64_t pid;
    uint32_t capacity;
    uint32_t batch_size;
    int64_t batch_wait_us;
    uint32_t in_flight;
    int64_t last_recv_ns;
    int64_t last_send_ns;
    mpb__conn_state state;
    int index;             /* launched worker index, -1 for workers that joined by themselves */
    uint64_t values_read;  /* values read from its value ring (told back in ITEMS) */
    int64_t busy_since_ns; /* when it last got items while it held none */
    uint32_t isolating;    /* an isolation group it runs alone (nothing else goes to it), or 0 */
    /* batches of the message being read, waiting for its RESULTS frame
     * (frames of other workers' messages may come in between) */
    mpb__batch_mark *marks;
    size_t n_marks;
    size_t cap_marks;
} mpb__conn;

typedef struct mpb__slot {
    mpb__task *task; /* NULL in a busy slot: answered (deadline), the worker still has it */
    uint64_t seq;
    int conn; /* -1 while waiting for credit */
    int busy;
    int shm_index;     /* the launched worker whose ring holds the item's bytes; -1: inline */
    uint64_t shm_seq;  /* its span there */
    int64_t start_ns;  /* when the pool took the item (its latency counts from here) */
    uint32_t heap_pos; /* its place in pool->deadlines, or MPB_POOL_NO_DEADLINE */
    uint32_t retries;  /* times it went to another worker after its worker failed */
    uint32_t group;    /* an isolation group (pool_isolate.c): sent alone to an idle worker; 0 */
} mpb__slot;

#define MPB_POOL_NO_DEADLINE UINT32_MAX

/* A launched worker's restarts: a worker that dies soon after its launch
 * is relaunched later each time (backoff), one that lived long is not. */
typedef struct mpb__restart {
    int64_t launched_ns;
    unsigned failures; /* quick deaths in a row */
    int expected;      /* it died running an isolation group: no backoff for that */
    void *retry;       /* a relaunch waiting on retry_timer, or NULL */
    uint64_t retry_timer;
} mpb__restart;

/* An item's deadline in the pool's heap (pool_deadlines.c). */
typedef struct mpb__deadline {
    int64_t at_ns;
    uint32_t slot;
} mpb__deadline;

struct mpb__pool {
    mpb_servlet base;
    const mpb__pool_launcher *launcher;
    void *launcher_state;
    /* config (owned copies) */
    char *plugin;
    char *plugin_path;              /* resolved file, when the launcher resolved it */
    const mpb_worker_def *declared; /* the plugin's table read here, or NULL */
    unsigned workers;
    char *cpus_spec;
    char **cpu_lists; /* one per worker, NULL entries: unpinned */
    long long batch_size;
    long long batch_wait_us;
    unsigned capacity;
    char **options; /* NULL-terminated "key=value" */
    char *bind;
    char *worker_exe;
    int start_timeout_ms;
    size_t max_item_bytes;
    long long shm_bytes;      /* per launched worker: its shared item ring; 0: none */
    mpb__shm_ring *rings;     /* items, one per launched worker (process pools), or NULL */
    mpb__shm_ring *vrings;    /* values coming back, one per launched worker, or NULL */
    mpb__pool_link *links;    /* frames, one per launched worker, or NULL (on the socket) */
    unsigned char *link_copy; /* a frame read from a link, copied out to decode */
    size_t link_copy_cap;
    /* runtime */
    mpb__servlet_env env;
    void *router;
    char *endpoint;
    char *ipc_path; /* unlinked at destroy */
    mpb__conn *conns;
    size_t n_conns;
    size_t cap_conns;
    mpb__slot *slots;
    size_t n_slots;
    uint32_t *free_slots;
    size_t n_free;
    uint32_t *waiting; /* ring of slot indices waiting for credit */
    size_t wait_head;
    size_t wait_count;
    size_t wait_cap;
    uint32_t *outgoing; /* slot indices of the ITEMS frame being built */
    size_t cap_outgoing;
    msgpack_zone zone;
    mpb__wire_buf out;
    uint64_t heartbeat_timer;
    int started;
    int stopping;
    int pumping;
    mpb__waker pump_waker; /* sends the round's submissions at its end */
    int pump_armed;
    mpb__deadline *deadlines; /* min-heap of the deadlines of items not yet answered */
    size_t n_deadlines;
    size_t cap_deadlines;
    int deadline_armed; /* a timer is set for the earliest */
    int64_t deadline_due;
    uint64_t deadline_timer;
    mpb__death *deaths;         /* exits seen, not yet handled (each waits on a timer) */
    mpb__restart *restarts;     /* per launched worker: when, and failures in a row */
    int unavailable_timeout_ms; /* < 0: items wait for a worker forever */
    int64_t unavailable_since;  /* when the last live worker went; 0 while one lives */
    int unavailable;            /* past unavailable_timeout_ms: items fail at once */
    uint64_t unavailable_timer;
    int unavailable_armed;
    char last_exit[160];  /* the latest worker death, described */
    int batch_timeout_ms; /* 0: off */
    unsigned retry;       /* items of a failed worker go to another this many times */
    int isolate_bisect;   /* workers re-run a batch that failed whole in halves, and the
                           * items of a worker that crashed run again in halves */
    uint32_t next_group;  /* the last isolation group made */
    unsigned isolation_crashes; /* isolation groups that crashed since one came back */
    int isolation_gave_up;      /* set by a give-up, cleared by the next value answered */
    uint64_t hung_timer;  /* looks for workers past it (batch_timeout_ms > 0) */
    int retries_pending;  /* relaunch retries waiting on a timer */
    uint32_t batch_seq;   /* batches, numbered as their TELEMETRY arrives */
    char start_error[512];
    int64_t error_window_ns; /* protocol errors answered in the second since then */
    unsigned errors_in_window;
    uint64_t errors_suppressed;
    int64_t hello_window_ns; /* HELLOs answered in the second since then (a budget of */
    unsigned hellos_in_window; /* their own: garbage cannot starve joining workers) */
};

mpb_servlet *mpb__pool_new(const mpb_pool_config *config, const mpb__pool_launcher *launcher);

/* Launchers report a worker that died (index -1 if not launched here), with
 * a description of how: its items in flight fail, and it is relaunched. */
void mpb__pool_worker_died(mpb__pool *pool, int index, int64_t pid, const char *how);

/* ---- internals shared by pool.c (items), pool_deadlines.c,
 * pool_peers.c (workers coming and going), pool_recovery.c (losing them),
 * pool_transport.c (bytes) and pool_lifecycle.c (start, stop, free);
 * dispatcher thread ---- */

#define MPB_POOL_SLOT_BITS 24
#define MPB_POOL_SLOT_MASK ((1u << MPB_POOL_SLOT_BITS) - 1)

const char *mpb__pool_path(const mpb__pool *pool);
void mpb__pool_submit(mpb_servlet *self, mpb__task *task);
void mpb__pool_cancel(mpb_servlet *self, mpb__task *task);
/* Sends waiting items to workers with credit. */
void mpb__pool_pump(mpb__pool *pool);
/* pool_deadlines.c: items with a deadline enter the heap when the pool
 * takes them and leave it when answered; past it they are answered
 * Timeout by a timer (waiting or in flight). */
void mpb__pool_deadline_add(mpb__pool *pool, uint32_t slot, int64_t at_ns);
void mpb__pool_deadline_remove(mpb__pool *pool, uint32_t slot);
void mpb__pool_deadlines_free(mpb__pool *pool);
/* Answers task, counting it in the pool's metrics. */
void mpb__pool_answer(mpb__pool *pool, mpb__task *task, int64_t start_ns, mpb_result *result);
/* The in-flight slot an id names on conn, or NULL (late, duplicate, invented). */
mpb__slot *mpb__pool_slot_lookup(mpb__pool *pool, uint64_t id, int conn);
/* Frees the slot and hands result to its task (owned by the task). */
void mpb__pool_slot_complete(mpb__pool *pool, mpb__slot *slot, mpb_result *result);
uint32_t mpb__pool_waiting_pop(mpb__pool *pool);
/* An error result naming this pool and (if any) the worker. */
mpb_result *mpb__pool_error(const mpb__pool *pool, const mpb__conn *conn, const char *type,
                            const char *msg);
/* Connection states are also read by other threads (mpb_server_workers). */
void mpb__pool_set_conn_state(mpb__pool *pool, mpb__conn *conn, mpb__conn_state state);
int mpb__pool_send_signal(mpb__pool *pool, mpb__conn *conn, mpb__frame_type type);
/* Counts, logs and answers a peer's protocol error. */
/* 1 when the pool may answer a peer that is not a worker now: at most
 * ERROR_REPLIES_PER_S ERRORs a second, and as many SETTINGS (hello: 1)
 * on a budget of their own, so a peer cannot make the pool do more than
 * that, and garbage cannot crowd out workers that join. */
int mpb__pool_reply_budget(mpb__pool *pool, int hello);
void mpb__pool_protocol_error(mpb__pool *pool, const void *rid, size_t rid_len, const char *who,
                              const char *reason);
/* Cancels the relaunches waiting out a backoff (the pool stops). */
void mpb__pool_cancel_retries(mpb__pool *pool);
/* Keeps track of whether any worker lives: with none for
 * unavailable_timeout_ms, waiting items fail ServletUnavailable. */
void mpb__pool_check_available(mpb__pool *pool);
/* Answers WorkerCrashed for every item in flight on conn i; forgets it. */
void mpb__pool_conn_lost(mpb__pool *pool, size_t i, const char *how);
/* The same for a worker whose process died: with isolate: bisect its items
 * are run again in halves (pool_isolate.c) instead. */
void mpb__pool_conn_died(mpb__pool *pool, size_t i, const char *how);
/* Puts an item a failed worker held back in front of the waiting ring,
 * under a new id (a late answer from that worker matches nothing). */
void mpb__pool_requeue(mpb__pool *pool, uint32_t index);
/* The same with an error of type (Timeout for a hung worker); with retry,
 * items that have retries left are requeued instead. */
void mpb__pool_conn_fail(mpb__pool *pool, size_t i, const char *type, const char *how);
/* Loop timer (batch_timeout_ms > 0): workers silent on a batch past it are
 * hung: their items fail Timeout, and they are killed and replaced. */
void mpb__pool_on_hung_check(mpb__loop *loop, void *arg);
/* pool_transport.c: pool->out to the peer rid names, through its link or
 * the socket (MPB_ECLOSED for a link's earlier worker). */
int mpb__pool_send_out(mpb__pool *pool, const void *rid, size_t rid_len);
/* pool_peers.c: one frame from the peer rid names. */
void mpb__pool_handle_frame(mpb__pool *pool, const void *rid, size_t rid_len, const void *data,
                            size_t len);
/* Handles every message waiting on the ROUTER socket and the links, then
 * pumps. */
void mpb__pool_receive_all(mpb__pool *pool);
void mpb__pool_on_router(mpb__loop *loop, void *arg);
/* Loop callback of a link's wake fd (arg: its mpb__pool_link). */
void mpb__pool_on_link(mpb__loop *loop, void *arg);
/* Waits up to timeout_ms for a message on the socket or a link (start). */
void mpb__pool_wait_peers(mpb__pool *pool, int timeout_ms);
/* The routing id of a link's current worker; the link a routing id names,
 * or NULL (a socket peer, or a worker an earlier launch of the index). */
void mpb__pool_link_rid(const mpb__pool_link *pl, unsigned char rid[MPB_POOL_LINK_RID_LEN]);
mpb__pool_link *mpb__pool_link_of(mpb__pool *pool, const void *rid, size_t rid_len);
void mpb__pool_on_heartbeat(mpb__loop *loop, void *arg);
/* Frees deaths still waiting for their grace timer (at destroy). */
void mpb__pool_forget_deaths(mpb__pool *pool);
/* Stops feeding and sends SHUTDOWN to every ready worker. */
void mpb__pool_shutdown_conns(mpb__pool *pool);

/* The ring's size when the config does not say (virtual: pages are touched
 * only as items use them). */
#define MPB_POOL_SHM_DEFAULT_BYTES ((size_t)8 << 20)

/* isolate: bisect for crashes (pool_isolate.c). When worker conn_index
 * crashed: its items run again in two halves, each alone on an idle
 * worker, down to single items, which then fail with message. Returns 1
 * when it took the worker's items, 0 when the caller fails them. */
int mpb__pool_isolate_crash(mpb__pool *pool, size_t conn_index, const char *message);

/* 1 when the pool's socket is a CURVE server: a tcp:// endpoint of a
 * server with CURVE. Its workers on the socket then need keys. */
int mpb__pool_uses_curve(const mpb__pool *pool);

#endif
