/*
 * DESIGN
 * How bytes move between a pool and its workers (pool.c has the item flow,
 * pool_peers.c what the frames mean). A worker the pool launched talks
 * through its link (core/link.c); any other peer through the ROUTER
 * socket. Both end in mpb__pool_handle_frame with the peer's routing id:
 * for a link, an id made of the worker's index and launch count, shaped so
 * that no socket peer can have it, so a replacement is a new peer and a
 * late frame of its predecessor is recognised. Frames read from a link are
 * copied out before they are decoded (the worker can still write the
 * ring), and a link that breaks its format is not read again: its worker
 * is killed and handled as any crash.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "core/os/process.h"
#include "core/util.h"
#include "core/zmq_util.h"
#include "servlets/pool.h"

void
mpb__pool_link_rid(const mpb__pool_link *pl, unsigned char rid[MPB_POOL_LINK_RID_LEN])
{
    rid[0] = 0;
    rid[1] = 'L';
    memcpy(rid + 2, &pl->index, 4);
    memcpy(rid + 6, &pl->generation, 4);
}

mpb__pool_link *
mpb__pool_link_of(mpb__pool *pool, const void *rid, size_t rid_len)
{
    const unsigned char *r = rid;
    if (pool->links == NULL || rid_len != MPB_POOL_LINK_RID_LEN || r[0] != 0 || r[1] != 'L') {
        return NULL;
    }
    unsigned index;
    uint32_t generation;
    memcpy(&index, r + 2, 4);
    memcpy(&generation, r + 6, 4);
    if (index >= pool->workers || pool->links[index].generation != generation) {
        return NULL;
    }
    return &pool->links[index];
}

int
mpb__pool_send_out(mpb__pool *pool, const void *rid, size_t rid_len)
{
    const unsigned char *r = rid;
    if (rid_len == MPB_POOL_LINK_RID_LEN && r[0] == 0 && r[1] == 'L') {
        /* no socket peer has such an id: ZeroMQ's own start with 0 and
         * are 5 bytes, those peers choose never start with 0 */
        mpb__pool_link *pl = mpb__pool_link_of(pool, rid, rid_len);
        if (pl == NULL) {
            return MPB_ECLOSED; /* a worker an earlier launch started: gone */
        }
        mpb__link_send(pl->link, pool->out.sbuf.data, pool->out.sbuf.size);
        return 0;
    }
    /* never blocks the dispatcher: a peer whose queue is full (it stopped
     * reading: SNDHWM) is MPB_EAGAIN here, and the caller treats it as lost
     * (items) or drops the message (ERROR replies) */
    int rc = mpb__zmq_send(pool->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc == 0) {
        rc = mpb__zmq_send(pool->router, pool->out.sbuf.data, pool->out.sbuf.size, ZMQ_DONTWAIT);
    }
    return rc;
}

/* Messages read from one link before the loop's other sources get a turn. */
#define LINK_MESSAGES_PER_TURN 1024

/* Handles every message waiting on one link, and sends what waited for
 * room in it. A worker that broke the link's format is killed (its death
 * then fails its items and starts a replacement, as for any crash). */
static void
receive_link(mpb__pool *pool, mpb__pool_link *pl)
{
    if (pl->broken) {
        return;
    }
    unsigned char rid[MPB_POOL_LINK_RID_LEN];
    mpb__pool_link_rid(pl, rid);
    unsigned handled = 0;
    do {
        mpb__link_flush(pl->link);
        const void *data;
        size_t len;
        int rc;
        while ((rc = mpb__link_recv(pl->link, &data, &len)) == 1) {
            /* decoded from a private copy: the worker can still write the
             * ring, and the decoder reads some bytes twice */
            if (len > pool->link_copy_cap) {
                pool->link_copy_cap = len > 2 * pool->link_copy_cap ? len : 2 * pool->link_copy_cap;
                free(pool->link_copy);
                pool->link_copy = mpb_malloc(pool->link_copy_cap);
            }
            memcpy(pool->link_copy, data, len);
            mpb__pool_handle_frame(pool, rid, sizeof rid, pool->link_copy, len);
            if (++handled == LINK_MESSAGES_PER_TURN) {
                /* the others get a turn; the loop comes back for the rest */
                mpb__link_nudge(pl->link);
                return;
            }
        }
        if (rc < 0) {
            pl->broken = 1;
            mpb__pool_protocol_error(pool, rid, sizeof rid, "a local worker",
                                     "wrote outside its link's format; killing it");
            if (pl->pid > 0) {
                mpb__signal_child((pid_t)pl->pid, pl->pidfd, SIGKILL);
            }
            return;
        }
    } while (mpb__link_arm(pl->link));
}

void
mpb__pool_on_link(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__pool_link *pl = arg;
    mpb__link_clear(pl->link);
    receive_link(pl->pool, pl);
    mpb__pool_pump(pl->pool);
}

void
mpb__pool_wait_peers(mpb__pool *pool, int timeout_ms)
{
    unsigned links = pool->links != NULL ? pool->workers : 0;
    zmq_pollitem_t *items = mpb_calloc(1 + links, sizeof *items);
    int n = 0;
    items[n++] = (zmq_pollitem_t){.socket = pool->router, .events = ZMQ_POLLIN};
    for (unsigned i = 0; i < links; i++) {
        if (!pool->links[i].broken && mpb__link_arm(pool->links[i].link)) {
            timeout_ms = 0; /* a message is there already */
        }
        items[n++] =
            (zmq_pollitem_t){.fd = mpb__link_wake_fd(pool->links[i].link), .events = ZMQ_POLLIN};
    }
    zmq_poll(items, n, timeout_ms);
    for (unsigned i = 0; i < links; i++) {
        mpb__link_clear(pool->links[i].link);
    }
    free(items);
}

/* Handles every message waiting on the ROUTER socket and the links, then
 * feeds workers. */
void
mpb__pool_receive_all(mpb__pool *pool)
{
    for (unsigned i = 0; pool->links != NULL && i < pool->workers; i++) {
        receive_link(pool, &pool->links[i]);
    }
    zmq_msg_t rid;
    zmq_msg_t part;
    zmq_msg_init(&rid);
    zmq_msg_init(&part);
    while (zmq_msg_recv(&rid, pool->router, ZMQ_DONTWAIT) >= 0) {
        int more = zmq_msg_more(&rid);
        while (more && zmq_msg_recv(&part, pool->router, 0) >= 0) {
            more = zmq_msg_more(&part);
            mpb__pool_handle_frame(pool, zmq_msg_data(&rid), zmq_msg_size(&rid),
                                   zmq_msg_data(&part), zmq_msg_size(&part));
        }
    }
    zmq_msg_close(&part);
    zmq_msg_close(&rid);
    mpb__pool_pump(pool);
}

void
mpb__pool_on_router(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__pool_receive_all(arg);
}
