#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/shm_ring.h"
#include "core/util.h"
#include "mpbatch/error.h"

int
mpb__shm_ring_open(mpb__shm_ring *ring, size_t size, const char *name, char *err, size_t err_len)
{
    memset(ring, 0, sizeof *ring);
    ring->fd = -1;
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        return mpb__set_error(err, err_len, mpb_status_from_errno(errno), "memfd_create: %s",
                              strerror(errno));
    }
    /* keep it above the descriptors a child is given by number */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    if (high < 0 || ftruncate(high, (off_t)size) != 0) {
        int e = errno;
        if (high >= 0) {
            close(high);
        }
        return mpb__set_error(err, err_len, mpb_status_from_errno(e),
                              "shared item ring of %zu bytes: %s", size, strerror(e));
    }
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, high, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        close(high);
        return mpb__set_error(err, err_len, mpb_status_from_errno(e), "mmap: %s", strerror(e));
    }
    ring->fd = high;
    ring->map = map;
    ring->size = size;
    return 0;
}

int
mpb__shm_ring_attach(mpb__shm_ring *ring, int fd, size_t size, char *err, size_t err_len)
{
    memset(ring, 0, sizeof *ring);
    ring->fd = -1;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        return mpb__set_error(err, err_len, mpb_status_from_errno(errno), "mmap: %s",
                              strerror(errno));
    }
    ring->fd = fd;
    ring->map = map;
    ring->size = size;
    return 0;
}

static void
push_span(mpb__shm_ring *ring, size_t offset, size_t len, int freed)
{
    if (ring->spans_count == ring->spans_cap) {
        size_t cap = ring->spans_cap ? ring->spans_cap * 2 : 256;
        mpb__shm_span *spans = mpb_malloc(cap * sizeof *spans);
        for (size_t i = 0; i < ring->spans_count; i++) {
            spans[i] = ring->spans[(ring->spans_head + i) % ring->spans_cap];
        }
        free(ring->spans);
        ring->spans = spans;
        ring->spans_cap = cap;
        ring->spans_head = 0;
    }
    ring->spans[(ring->spans_head + ring->spans_count++) % ring->spans_cap] =
        (mpb__shm_span){offset, len, freed};
    ring->tail = offset + len == ring->size ? 0 : offset + len;
    ring->used += len;
}

int
mpb__shm_ring_alloc(mpb__shm_ring *ring, size_t len, size_t *offset, uint64_t *seq)
{
    if (len == 0 || len > ring->size || ring->size - ring->used < len) {
        return MPB_EAGAIN;
    }
    if (ring->spans_count == 0) {
        ring->head = ring->tail = 0; /* empty: start over at 0, most room in one piece */
    }
    if (ring->spans_count == 0 || ring->tail > ring->head ||
        (ring->tail == ring->head && ring->used == 0)) {
        size_t at_end = ring->size - ring->tail;
        if (len > at_end) {
            if (len > ring->head) {
                return MPB_EAGAIN; /* neither after the tail nor before the head */
            }
            push_span(ring, ring->tail, at_end, 1); /* the end's unused bytes, freed */
        }
    } else if (len > ring->head - ring->tail) {
        return MPB_EAGAIN; /* wrapped: room only up to the head */
    }
    *offset = ring->tail;
    *seq = ring->first_seq + ring->spans_count;
    push_span(ring, ring->tail, len, 0);
    return 0;
}

void
mpb__shm_ring_free(mpb__shm_ring *ring, uint64_t seq)
{
    if (seq < ring->first_seq || seq - ring->first_seq >= ring->spans_count) {
        return; /* forgotten by a reset */
    }
    ring->spans[(ring->spans_head + (seq - ring->first_seq)) % ring->spans_cap].freed = 1;
    while (ring->spans_count > 0 && ring->spans[ring->spans_head].freed) {
        mpb__shm_span *oldest = &ring->spans[ring->spans_head];
        ring->used -= oldest->len;
        ring->head = oldest->offset + oldest->len == ring->size ? 0 : oldest->offset + oldest->len;
        ring->spans_head = (ring->spans_head + 1) % ring->spans_cap;
        ring->spans_count--;
        ring->first_seq++;
    }
}

void
mpb__shm_ring_reset(mpb__shm_ring *ring)
{
    ring->first_seq += ring->spans_count;
    ring->spans_count = 0;
    ring->spans_head = 0;
    ring->used = 0;
    ring->head = ring->tail = 0;
}

void
mpb__shm_ring_close(mpb__shm_ring *ring)
{
    if (ring->map != NULL) {
        munmap(ring->map, ring->size);
    }
    if (ring->fd >= 0) {
        close(ring->fd);
    }
    free(ring->spans);
    memset(ring, 0, sizeof *ring);
    ring->fd = -1;
}
