/*
 * The worker's FIFO of received items. Payload bytes are stored back to
 * back in arrival order, so a batch of equal-length items is already one
 * contiguous matrix. Bytes stay valid until the next push after a pop.
 * Borrowed items (shared memory) are not copied at all.
 * Threading: one thread. Processes: n/a. Ownership: the queue owns copies.
 */
#ifndef MPB_CORE_ITEM_QUEUE_H
#define MPB_CORE_ITEM_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mpb__queued_item {
    uint64_t id;
    int64_t arrived_ns;
    int64_t deadline_ns; /* 0: none */
    size_t offset;
    size_t len;
    const void *borrowed; /* bytes kept elsewhere (shared memory), or NULL */
} mpb__queued_item;

typedef struct mpb__item_queue {
    mpb__queued_item *ring;
    size_t ring_cap;
    size_t head;
    size_t count;
    unsigned char *bytes;
    size_t bytes_cap;
    size_t bytes_head; /* first byte still queued */
    size_t bytes_tail; /* where the next payload goes */
} mpb__item_queue;

void mpb__item_queue_init(mpb__item_queue *q);
void mpb__item_queue_free(mpb__item_queue *q);
void mpb__item_queue_push(mpb__item_queue *q, uint64_t id, int64_t arrived_ns, int64_t deadline_ns,
                          const void *data, size_t len);
/* Queues an item whose bytes stay where they are (valid until it is
 * answered): a shared-memory item, never copied. */
void mpb__item_queue_push_borrowed(mpb__item_queue *q, uint64_t id, int64_t arrived_ns,
                                   int64_t deadline_ns, const void *data, size_t len);
/* The oldest item; q must not be empty. */
const mpb__queued_item *mpb__item_queue_peek(const mpb__item_queue *q);
/* Pops the oldest item; *data points at its bytes until the next push. */
mpb__queued_item mpb__item_queue_pop(mpb__item_queue *q, const void **data);

#endif
