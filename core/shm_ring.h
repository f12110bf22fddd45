/*
 * A shared-memory ring for items on their way to one local worker: a
 * memfd the coordinator maps read-write and the worker read-only. The
 * coordinator writes an item's bytes into a span and sends [offset, len]
 * instead of the bytes; it frees the span when the item's result is back.
 * Spans are handed out in order, back to back (a batch of equal items is
 * one contiguous matrix for the plugin), and freed in any order: the ring
 * reclaims space from its oldest end once the oldest spans are free.
 *
 * Threading: the coordinator's dispatcher thread only.
 * Processes: the fd is passed to the worker at spawn; nothing else crosses.
 * Ownership: the ring owns its fd and mapping.
 */
#ifndef MPB_CORE_SHM_RING_H
#define MPB_CORE_SHM_RING_H

#include <stddef.h>
#include <stdint.h>

/* Items and values this large or larger go through a shared ring. */
#define MPB_SHM_MIN_BYTES 256

typedef struct mpb__shm_span {
    size_t offset;
    size_t len; /* bytes taken, padding at the ring's end included */
    int freed;
} mpb__shm_span;

typedef struct mpb__shm_ring {
    int fd;
    unsigned char *map;
    size_t size;
    size_t head;          /* first byte of the oldest span still taken */
    size_t tail;          /* where the next span starts */
    size_t used;          /* bytes taken */
    mpb__shm_span *spans; /* FIFO of spans, oldest first */
    size_t spans_cap;
    size_t spans_head;
    size_t spans_count;
    uint64_t first_seq; /* sequence number of the oldest span */
} mpb__shm_ring;

/* Creates a memfd of size bytes and maps it. 0, or a status with err. */
int mpb__shm_ring_open(mpb__shm_ring *ring, size_t size, const char *name, char *err,
                       size_t err_len);

/* Maps a ring another process created (fd received at spawn) to write
 * into it: the worker's side of a value ring. Does not own fd's origin but
 * closes fd at close. */
int mpb__shm_ring_attach(mpb__shm_ring *ring, int fd, size_t size, char *err, size_t err_len);

/* Takes len contiguous bytes; 0 with *offset and *seq (to free it by), or
 * MPB_EAGAIN when there is no room now (send the item inline instead). */
int mpb__shm_ring_alloc(mpb__shm_ring *ring, size_t len, size_t *offset, uint64_t *seq);

/* Gives the span seq back; the oldest free spans are reclaimed. */
void mpb__shm_ring_free(mpb__shm_ring *ring, uint64_t seq);

/* Forgets every span (the worker that read them is gone). */
void mpb__shm_ring_reset(mpb__shm_ring *ring);

void mpb__shm_ring_close(mpb__shm_ring *ring);

#endif
