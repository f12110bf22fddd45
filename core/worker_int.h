/*
 * Internals of the worker, shared by core/worker_loop.c (frames, batching,
 * the serve loop) and core/worker_session.c (socket, pinning, plugin init,
 * READY, teardown). One worker belongs to one thread.
 */
#ifndef MPB_CORE_WORKER_INT_H
#define MPB_CORE_WORKER_INT_H

#include <msgpack.h>

#include "core/batch.h"
#include "core/item_queue.h"
#include "core/link.h"
#include "core/shm_ring.h"
#include "core/wire.h"
#include "core/worker_loop.h"

typedef struct early_error {
    uint64_t id;
    char *type;
    char *message;
} early_error;

typedef struct worker {
    const mpb__worker_config *cfg;
    unsigned batch_size;
    int64_t wait_ns; /* the wait, or with auto_wait its upper bound */
    /* batch_wait_us: auto. What the worker has seen lately: the time
     * between items (per item of a frame) and a batch's compute time, as
     * moving averages; and the coordinator's backlog in its last ITEMS. */
    int auto_wait;
    int64_t gap_ns;
    int64_t compute_ns;
    int64_t last_items_ns;
    uint64_t backlog;
    unsigned capacity;
    size_t max_item_bytes;
    void *ctx;
    int own_ctx;
    void *socket; /* NULL when the worker talks through link */
    int socket_fd;
    mpb__link *link;
    int link_broken;
    msgpack_zone zone;
    mpb__wire_buf results;
    mpb__wire_buf telemetry;
    /* results of batches computed but not sent yet (entries only), and
     * their batches' telemetry: sent together when nothing more is queued */
    mpb__wire_buf pending;
    uint32_t n_pending;
    int64_t pending_since_ns;
    mpb_batch_telemetry *pending_tel;
    size_t n_tel;
    size_t cap_tel;
    mpb__item_queue queue;
    early_error *errors;
    size_t n_errors;
    size_t cap_errors;
    uint64_t *ids;
    size_t cap_ids;
    uint64_t *call_ids; /* a batch's ids and items, kept for bisection */
    mpb__batch_item *call_items;
    mpb_batch batch;
    mpb_batch prep;
    void *state;
    int64_t last_send_ns;
    int64_t last_recv_ns;
    int stopping;
    char *cpus;
    const unsigned char *shm; /* the coordinator's item ring, mapped read-only; or NULL */
    size_t shm_bytes;
    /* the ring large values go back through, and the spans sent in it not
     * yet read by the coordinator, oldest first */
    mpb__shm_ring values;
    int has_values_ring;
    uint64_t *value_spans;
    size_t value_spans_cap;
    size_t value_spans_head;
    size_t value_spans_count;
    uint64_t values_freed; /* spans given back so far (the coordinator counts reads) */
} worker;

/* Sends one frame (more: ZMQ_SNDMORE, another part follows). */
int mpb__worker_send_frame(worker *w, const mpb__wire_buf *buf, int flags);
/* Sends an ERROR frame to the coordinator. */
void mpb__worker_send_error(worker *w, int code, const char *message);
/* Serves until SHUTDOWN (0) or until the coordinator or parent is gone. */
int mpb__worker_serve(worker *w, char *err, size_t err_len);

#endif
