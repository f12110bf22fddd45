/*
 * A pool: the leaf servlet that feeds items to workers over one ROUTER
 * socket. ProcessServlet and ThreadServlet are pools that differ only in
 * how workers are launched, watched and stopped (the launcher table).
 * Threading: dispatcher thread only. Ownership: the pool owns its config
 * copy, sockets, workers and launcher state.
 */
#ifndef MPB_SERVLETS_POOL_H
#define MPB_SERVLETS_POOL_H

#include <msgpack.h>

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
    void (*release)(mpb__pool *pool);
} mpb__pool_launcher;

typedef enum mpb__conn_state {
    MPB_CONN_READY = 1,
    MPB_CONN_LEAVING = 2, /* SHUTDOWN sent */
    MPB_CONN_GONE = 3,
} mpb__conn_state;

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
    int index; /* launched worker index, -1 for workers that joined by themselves */
} mpb__conn;

typedef struct mpb__slot {
    mpb__task *task;
    uint64_t seq;
    int conn; /* -1 while waiting for credit */
} mpb__slot;

struct mpb__pool {
    mpb_servlet base;
    const mpb__pool_launcher *launcher;
    void *launcher_state;
    /* config (owned copies) */
    char *plugin;
    char *plugin_path; /* resolved file, when the launcher resolved it */
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
    mpb__death *deaths;        /* exits seen, not yet handled (each waits on a timer) */
    int64_t restart_times[16]; /* ring of the latest restarts (RESTART_BURST) */
    unsigned restart_next;
    int retries_pending; /* relaunch retries waiting on a timer */
    char start_error[512];
};

mpb_servlet *mpb__pool_new(const mpb_pool_config *config, const mpb__pool_launcher *launcher);

/* Launchers report a worker that died (index -1 if not launched here), with
 * a description of how: its items in flight fail, and it is relaunched. */
void mpb__pool_worker_died(mpb__pool *pool, int index, int64_t pid, const char *how);

/* argv for mpb-worker index i (NULL-terminated; free with mpb__pool_free_argv). */
char **mpb__pool_worker_argv(const mpb__pool *pool, const char *exe, unsigned index);
void mpb__pool_free_argv(char **argv);

#endif
