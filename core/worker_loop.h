/*
 * The worker: connects a DEALER to a coordinator (or attaches to the
 * shared-memory link the coordinator made for it), says READY, then batches
 * items greedily and answers each with one result. Runs as the body of an
 * mpb-worker process or of a ThreadServlet thread.
 * Threading: mpb__worker_run blocks its calling thread until the
 *   coordinator says SHUTDOWN, goes silent, or the parent process dies.
 * Processes: never forks. Ownership: config is borrowed for the run.
 */
#ifndef MPB_CORE_WORKER_LOOP_H
#define MPB_CORE_WORKER_LOOP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/affinity.h"
#include "mpbatch/worker.h"

#define MPB_DEFAULT_MAX_ITEM_BYTES (64u << 20)
#define MPB_DEFAULT_HEARTBEAT_MS 1000
#define MPB_DEFAULT_COORDINATOR_TIMEOUT_MS 10000

typedef struct mpb__worker_config {
    const mpb_worker_def *def;
    const char *plugin_name;
    const char *endpoint; /* ipc://, tcp:// or inproc:// */
    void *zmq_context;    /* required for inproc; NULL makes one */
    const char *name;
    unsigned index;
    long long batch_size;    /* < 0: the plugin's default */
    long long batch_wait_us; /* < 0: the plugin's default */
    unsigned capacity;       /* items in flight; 0: 6 x batch_size, at least 64 */
    const char *cpus;        /* NULL or "": do not pin */
    mpb__bind_scope bind_scope;
    const mpb_options *options;
    size_t max_item_bytes;          /* 0: MPB_DEFAULT_MAX_ITEM_BYTES */
    int isolate_bisect;             /* a batch whose call() fails whole runs again in halves */
    /* CURVE (core/curve.h): the coordinator's certificate file and this
     * worker's secret one; NULL: a plain connection. */
    const char *curve_server_key_file;
    const char *curve_key_file;
    int64_t heartbeat_ms;           /* 0: default */
    int64_t coordinator_timeout_ms; /* 0: default; < 0: never give up */
    pid_t parent_pid;               /* leave when the parent changes; 0: do not check */
    const atomic_int *cancel;       /* leave soon after it turns nonzero; may be NULL */
    int shm_fd;                     /* the coordinator's ring for items (when shm_bytes) */
    size_t shm_bytes;               /* its size; 0: items only arrive inline */
    int values_shm_fd;              /* the ring to write large values into */
    size_t values_shm_bytes;        /* its size; 0: values all go inline */
    /* A shared-memory link to the coordinator instead of the socket
     * (core/link.h; a worker the coordinator launched on this host): its
     * memfd and the two eventfds; has_link 0: connect to endpoint. */
    int has_link;
    int link_fds[3];
} mpb__worker_config;

/* Effective batch size and wait from config and plugin defaults
 * (batch_wait_us -1: the plugin's; MPB_BATCH_WAIT_AUTO: auto). With
 * *auto_out set, *wait_out is the longest an auto wait lasts. */
void mpb__worker_batching(const mpb_worker_def *def, long long batch_size, long long batch_wait_us,
                          unsigned *size_out, int64_t *wait_out, int *auto_out);

/* Tells the coordinator at config->endpoint (with config's CURVE keys) why
 * this worker cannot start (an ERROR frame with code), for failures before
 * mpb__worker_run (plugin not loadable). Best effort: waits at most a
 * second for delivery. */
void mpb__worker_report_failure(const mpb__worker_config *config, int code, const char *message);

/* Runs until SHUTDOWN (returns 0) or failure (negative status, err set). */
int mpb__worker_run(const mpb__worker_config *config, char *err, size_t err_len);

#endif
