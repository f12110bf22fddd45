/*
 * DESIGN
 * The memfd holds a header page and two rings, ring 0 carrying messages
 * to the worker and ring 1 to the coordinator. Each ring has one producer
 * and one consumer, and positions that only grow: the producer publishes
 * `head` after writing a record, the consumer publishes `tail` after it is
 * done with one. A record is an 8-byte header (length, flags) and its
 * bytes, padded to 8; a record that would cross the ring's end is preceded
 * by a WRAP record filling the rest, so every record is contiguous and a
 * message is read in place. Messages longer than a quarter of the ring are
 * cut into records flagged MORE, joined again by the consumer.
 *
 * Wake-ups follow the eventcount pattern: before it sleeps, a consumer
 * sets `consumer_sleeping`, issues a full fence and looks at `head` once
 * more; a producer publishes `head`, fences, and writes the consumer's
 * eventfd only if it finds the flag set (and clears it, so a burst costs
 * one write). A producer whose message does not fit keeps it in a local
 * queue and sets `producer_waiting` the same way; the consumer, after
 * moving `tail`, writes the producer's eventfd if that flag is set.
 *
 * Nothing read from the shared pages is trusted: a record whose length or
 * position does not fit the ring makes recv fail with MPB_EPROTO, and the
 * link stays dead.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/link.h"
#include "core/util.h"
#include "mpbatch/error.h"

#define LINK_MAGIC 0x6d70626c696e6b31ULL /* "mpblink1" */
#define HEADER_BYTES 4096
#define RECORD_HEADER 8
#define FLAG_MORE 1u
#define FLAG_WRAP 2u

typedef struct ring_ctl {
    _Alignas(64) atomic_uint_fast64_t head; /* written by the producer */
    atomic_uint producer_waiting;
    _Alignas(64) atomic_uint_fast64_t tail; /* written by the consumer */
    atomic_uint consumer_sleeping;
} ring_ctl;

typedef struct link_header {
    uint64_t magic;
    uint64_t ring_bytes;
    ring_ctl ring[2];
} link_header;

_Static_assert(sizeof(link_header) <= HEADER_BYTES, "link header fits its page");

typedef struct queued {
    struct queued *next;
    size_t len;
    size_t sent; /* bytes already in the ring (a message cut mid-way) */
    unsigned char bytes[];
} queued;

struct mpb__link {
    int memfd;
    int own_wake_fd;  /* we sleep on it */
    int peer_wake_fd; /* we write it to wake the peer */
    unsigned char *map;
    size_t map_bytes;
    size_t ring_bytes;
    link_header *hdr;
    ring_ctl *out; /* the ring we produce into */
    ring_ctl *in;  /* the ring we consume */
    unsigned char *out_data;
    const unsigned char *in_data;
    /* producer side */
    uint64_t head; /* ours: the shared copy is only published, never read */
    queued *queue_head;
    queued *queue_tail;
    size_t queued_bytes;
    /* consumer side */
    uint64_t release_to;   /* tail to publish once the borrowed message is done */
    unsigned char *joined; /* a message cut into records, joined */
    size_t joined_len;
    size_t joined_cap;
    int joined_ready; /* joined holds a whole message handed out */
    int dead;
};

static size_t
align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t
max_record(const mpb__link *link)
{
    return link->ring_bytes / 4;
}

static int
high_fd(int fd)
{
    /* above the descriptors a child is given by number */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return high;
}

static void
wake(int fd)
{
    uint64_t one = 1;
    ssize_t rc;
    do {
        rc = write(fd, &one, sizeof one);
    } while (rc < 0 && errno == EINTR);
}

static int
map_link(mpb__link *link, char *err, size_t err_len)
{
    void *map = mmap(NULL, link->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, link->memfd, 0);
    if (map == MAP_FAILED) {
        return mpb__set_error(err, err_len, mpb_status_from_errno(errno), "link mmap: %s",
                              strerror(errno));
    }
    link->map = map;
    link->hdr = map;
    return 0;
}

static void
set_side(mpb__link *link, int worker_side)
{
    unsigned char *rings = link->map + HEADER_BYTES;
    link->out = &link->hdr->ring[worker_side ? 1 : 0];
    link->in = &link->hdr->ring[worker_side ? 0 : 1];
    link->out_data = rings + (worker_side ? link->ring_bytes : 0);
    link->in_data = rings + (worker_side ? 0 : link->ring_bytes);
    link->release_to = atomic_load_explicit(&link->in->tail, memory_order_relaxed);
    link->head = atomic_load_explicit(&link->out->head, memory_order_relaxed);
}

int
mpb__link_open(mpb__link **out, size_t ring_bytes, char *err, size_t err_len)
{
    if (ring_bytes < 4096 || (ring_bytes & (ring_bytes - 1)) != 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "link rings must be a power of two of at least 4096 bytes");
    }
    mpb__link *link = mpb_calloc(1, sizeof *link);
    link->memfd = link->own_wake_fd = link->peer_wake_fd = -1;
    link->ring_bytes = ring_bytes;
    link->map_bytes = HEADER_BYTES + 2 * ring_bytes;
    int rc = 0;
    int memfd = memfd_create("mpb-link", MFD_CLOEXEC);
    link->memfd = memfd >= 0 ? high_fd(memfd) : -1;
    int a = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    link->own_wake_fd = a >= 0 ? high_fd(a) : -1;
    int b = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    link->peer_wake_fd = b >= 0 ? high_fd(b) : -1;
    if (link->memfd < 0 || link->own_wake_fd < 0 || link->peer_wake_fd < 0 ||
        ftruncate(link->memfd, (off_t)link->map_bytes) != 0) {
        rc = mpb__set_error(err, err_len, mpb_status_from_errno(errno), "link of %zu bytes: %s",
                            link->map_bytes, strerror(errno));
    }
    if (rc == 0) {
        rc = map_link(link, err, err_len);
    }
    if (rc != 0) {
        mpb__link_close(&link);
        return rc;
    }
    link->hdr->magic = LINK_MAGIC;
    link->hdr->ring_bytes = ring_bytes;
    set_side(link, 0);
    *out = link;
    return 0;
}

int
mpb__link_attach(mpb__link **out, const int fds[3], char *err, size_t err_len)
{
    mpb__link *link = mpb_calloc(1, sizeof *link);
    link->memfd = fds[0];
    link->peer_wake_fd = fds[1]; /* the coordinator sleeps on the first eventfd */
    link->own_wake_fd = fds[2];
    struct stat st;
    int rc = 0;
    if (fstat(link->memfd, &st) != 0 || st.st_size <= HEADER_BYTES) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "fd %d is not a link", fds[0]);
    }
    if (rc == 0) {
        link->map_bytes = (size_t)st.st_size;
        rc = map_link(link, err, err_len);
    }
    if (rc == 0) {
        size_t ring_bytes = link->hdr->ring_bytes;
        if (link->hdr->magic != LINK_MAGIC || ring_bytes < 4096 ||
            (ring_bytes & (ring_bytes - 1)) != 0 ||
            HEADER_BYTES + 2 * ring_bytes != link->map_bytes) {
            rc = mpb__set_error(err, err_len, MPB_EINVAL, "fd %d is not a link", fds[0]);
        }
        link->ring_bytes = ring_bytes;
    }
    if (rc != 0) {
        mpb__link_close(&link);
        return rc;
    }
    for (int i = 0; i < 3; i++) {
        fcntl(fds[i], F_SETFD, FD_CLOEXEC); /* spawn cleared it to pass them */
    }
    set_side(link, 1);
    *out = link;
    return 0;
}

void
mpb__link_fds(const mpb__link *link, int fds[3])
{
    /* attach swaps the eventfds: ours is the peer's to write */
    fds[0] = link->memfd;
    fds[1] = link->own_wake_fd;
    fds[2] = link->peer_wake_fd;
}

static void
drop_queue(mpb__link *link)
{
    while (link->queue_head != NULL) {
        queued *q = link->queue_head;
        link->queue_head = q->next;
        free(q);
    }
    link->queue_tail = NULL;
    link->queued_bytes = 0;
}

void
mpb__link_reset(mpb__link *link)
{
    for (int i = 0; i < 2; i++) {
        ring_ctl *r = &link->hdr->ring[i];
        atomic_store(&r->head, 0);
        atomic_store(&r->tail, 0);
        atomic_store(&r->producer_waiting, 0);
        atomic_store(&r->consumer_sleeping, 0);
    }
    /* this side sleeps in its loop until the new peer's first message */
    atomic_store(&link->in->consumer_sleeping, 1);
    drop_queue(link);
    link->release_to = 0;
    link->head = 0;
    link->joined_len = 0;
    link->joined_ready = 0;
    link->dead = 0;
    mpb__link_clear(link);
    uint64_t count;
    while (read(link->peer_wake_fd, &count, sizeof count) > 0) {
    }
}

/* ---- producing ---- */

/* Writes one record if it fits now. */
static int
put_record(mpb__link *link, const void *data, size_t len, uint32_t flags)
{
    ring_ctl *r = link->out;
    uint64_t head = link->head;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t need = RECORD_HEADER + align8(len);
    size_t offset = (size_t)(head & (link->ring_bytes - 1));
    size_t to_end = link->ring_bytes - offset;
    size_t total = need + (to_end < need ? to_end : 0);
    /* a tail the peer moved past head, or back by more than the ring,
     * reads as full: our writes stay in our ring whatever it does */
    if (tail > head || head - tail > link->ring_bytes ||
        link->ring_bytes - (size_t)(head - tail) < total) {
        return -1;
    }
    if (to_end < need) {
        uint32_t wrap[2] = {0, FLAG_WRAP};
        memcpy(link->out_data + offset, wrap, sizeof wrap);
        head += to_end;
        offset = 0;
    }
    uint32_t header[2] = {(uint32_t)len, flags};
    memcpy(link->out_data + offset, header, sizeof header);
    memcpy(link->out_data + offset + RECORD_HEADER, data, len);
    link->head = head + need;
    atomic_store_explicit(&r->head, link->head, memory_order_release);
    return 0;
}

/* Writes as much of a message from its byte `*sent` as fits; 1 when all. */
static int
put_message(mpb__link *link, const unsigned char *data, size_t len, size_t *sent)
{
    size_t max = max_record(link);
    do {
        size_t chunk = len - *sent < max ? len - *sent : max;
        uint32_t flags = *sent + chunk < len ? FLAG_MORE : 0;
        if (put_record(link, data + *sent, chunk, flags) != 0) {
            return 0;
        }
        *sent += chunk;
    } while (*sent < len);
    return 1;
}

static void
wake_consumer(mpb__link *link)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&link->out->consumer_sleeping, memory_order_relaxed) &&
        atomic_exchange(&link->out->consumer_sleeping, 0)) {
        wake(link->peer_wake_fd);
    }
}

static int
flush_queue(mpb__link *link)
{
    int moved = 0;
    while (link->queue_head != NULL) {
        queued *q = link->queue_head;
        size_t before = q->sent;
        int whole = put_message(link, q->bytes, q->len, &q->sent);
        moved |= q->sent != before;
        link->queued_bytes -= q->sent - before;
        if (!whole) {
            break;
        }
        link->queue_head = q->next;
        free(q);
    }
    if (link->queue_head == NULL) {
        link->queue_tail = NULL;
    }
    return moved;
}

size_t
mpb__link_flush(mpb__link *link)
{
    if (link->queue_head == NULL) {
        return 0;
    }
    int moved = flush_queue(link);
    if (link->queue_head != NULL) {
        /* ask for a wake-up when room frees, then look once more: the
         * consumer may have freed it before it could see the request */
        atomic_store(&link->out->producer_waiting, 1);
        atomic_thread_fence(memory_order_seq_cst);
        moved |= flush_queue(link);
    }
    if (moved) {
        wake_consumer(link);
    }
    return link->queued_bytes;
}

void
mpb__link_send(mpb__link *link, const void *data, size_t len)
{
    size_t sent = 0;
    if (link->queue_head != NULL) {
        mpb__link_flush(link);
    }
    if (link->queue_head == NULL && put_message(link, data, len, &sent)) {
        wake_consumer(link);
        return;
    }
    queued *q = mpb_malloc(sizeof *q + (len - sent));
    q->next = NULL;
    q->len = len - sent;
    q->sent = 0;
    memcpy(q->bytes, (const unsigned char *)data + sent, len - sent);
    /* the rest of a message cut mid-way continues its records: the peer
     * joins them whichever call writes them */
    if (link->queue_tail != NULL) {
        link->queue_tail->next = q;
    } else {
        link->queue_head = q;
    }
    link->queue_tail = q;
    link->queued_bytes += q->len;
    if (sent > 0) {
        wake_consumer(link);
    }
    mpb__link_flush(link);
}

/* ---- consuming ---- */

static void
release(mpb__link *link)
{
    ring_ctl *r = link->in;
    if (atomic_load_explicit(&r->tail, memory_order_relaxed) == link->release_to) {
        return;
    }
    atomic_store_explicit(&r->tail, link->release_to, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->producer_waiting, memory_order_relaxed) &&
        atomic_exchange(&r->producer_waiting, 0)) {
        wake(link->peer_wake_fd);
    }
}

static int
broken(mpb__link *link)
{
    link->dead = 1;
    return MPB_EPROTO;
}

static void
join(mpb__link *link, const unsigned char *data, size_t len)
{
    if (link->joined_len + len > link->joined_cap) {
        size_t cap = link->joined_cap ? link->joined_cap : 4096;
        while (cap < link->joined_len + len) {
            cap *= 2;
        }
        link->joined = mpb_realloc(link->joined, cap);
        link->joined_cap = cap;
    }
    memcpy(link->joined + link->joined_len, data, len);
    link->joined_len += len;
}

int
mpb__link_recv(mpb__link *link, const void **data, size_t *len)
{
    if (link->dead) {
        return MPB_EPROTO;
    }
    if (link->joined_ready) {
        link->joined_ready = 0;
        link->joined_len = 0;
    }
    release(link); /* the message handed out last is done with */
    uint64_t tail = link->release_to;
    /* what is there now, once: a peer that keeps writing does not keep
     * this call going */
    uint64_t head = atomic_load_explicit(&link->in->head, memory_order_acquire);
    for (;;) {
        if (head == tail) {
            link->release_to = tail;
            release(link);
            return 0;
        }
        size_t avail = (size_t)(head - tail);
        size_t offset = (size_t)(tail & (link->ring_bytes - 1));
        uint32_t header[2];
        if (avail > link->ring_bytes || avail < RECORD_HEADER) {
            return broken(link);
        }
        memcpy(header, link->in_data + offset, sizeof header);
        if (header[1] == FLAG_WRAP) {
            size_t to_end = link->ring_bytes - offset;
            if (to_end > avail) {
                return broken(link);
            }
            tail += to_end;
            continue;
        }
        size_t need = RECORD_HEADER + align8(header[0]);
        if ((header[1] & ~FLAG_MORE) != 0 || header[0] > max_record(link) || need > avail ||
            offset + need > link->ring_bytes) {
            return broken(link);
        }
        const unsigned char *bytes = link->in_data + offset + RECORD_HEADER;
        tail += need;
        if (link->joined_len + header[0] > MPB_LINK_MAX_MESSAGE) {
            return broken(link);
        }
        if (header[1] & FLAG_MORE) {
            join(link, bytes, header[0]);
            /* the joined copy is ours: the record's room can go back now */
            link->release_to = tail;
            release(link);
            continue;
        }
        link->release_to = tail;
        if (link->joined_len > 0) {
            join(link, bytes, header[0]);
            release(link);
            link->joined_ready = 1;
            *data = link->joined;
            *len = link->joined_len;
            return 1;
        }
        /* borrowed in place: released by the next recv or arm */
        *data = bytes;
        *len = header[0];
        return 1;
    }
}

int
mpb__link_wake_fd(const mpb__link *link)
{
    return link->own_wake_fd;
}

int
mpb__link_arm(mpb__link *link)
{
    release(link);
    atomic_store(&link->in->consumer_sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (link->dead ||
        atomic_load_explicit(&link->in->head, memory_order_acquire) != link->release_to) {
        /* not sleeping after all: spare the peer a write */
        atomic_store_explicit(&link->in->consumer_sleeping, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

void
mpb__link_clear(mpb__link *link)
{
    uint64_t count;
    while (read(link->own_wake_fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
}

void
mpb__link_nudge(mpb__link *link)
{
    wake(link->own_wake_fd);
}

size_t
mpb__link_drain(mpb__link *link, int timeout_ms)
{
    int64_t deadline = mpb_now_ns() + (int64_t)timeout_ms * 1000000;
    while (mpb__link_flush(link) > 0) {
        int64_t left_ms = (deadline - mpb_now_ns()) / 1000000;
        if (left_ms <= 0) {
            break;
        }
        struct pollfd pfd = {.fd = link->own_wake_fd, .events = POLLIN};
        if (poll(&pfd, 1, left_ms > 100 ? 100 : (int)left_ms) > 0) {
            mpb__link_clear(link);
        }
    }
    return link->queued_bytes;
}

void
mpb__link_close(mpb__link **link_p)
{
    mpb__link *link = *link_p;
    if (link == NULL) {
        return;
    }
    drop_queue(link);
    free(link->joined);
    if (link->map != NULL) {
        munmap(link->map, link->map_bytes);
    }
    if (link->memfd >= 0) {
        close(link->memfd);
    }
    if (link->own_wake_fd >= 0) {
        close(link->own_wake_fd);
    }
    if (link->peer_wake_fd >= 0) {
        close(link->peer_wake_fd);
    }
    free(link);
    *link_p = NULL;
}
