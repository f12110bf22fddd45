#include <stdlib.h>
#include <string.h>

#include "core/item_queue.h"
#include "core/util.h"

void
mpb__item_queue_init(mpb__item_queue *q)
{
    memset(q, 0, sizeof *q);
}

void
mpb__item_queue_free(mpb__item_queue *q)
{
    free(q->ring);
    free(q->bytes);
    memset(q, 0, sizeof *q);
}

static void
grow_ring(mpb__item_queue *q)
{
    size_t cap = q->ring_cap ? q->ring_cap * 2 : 256;
    mpb__queued_item *ring = mpb_malloc(cap * sizeof *ring);
    for (size_t i = 0; i < q->count; i++) {
        ring[i] = q->ring[(q->head + i) % q->ring_cap];
    }
    free(q->ring);
    q->ring = ring;
    q->ring_cap = cap;
    q->head = 0;
}

/* Makes room for len more payload bytes: slide queued bytes to the front
 * when that frees enough, else grow. */
static void
reserve_bytes(mpb__item_queue *q, size_t len)
{
    if (q->bytes_tail + len <= q->bytes_cap) {
        return;
    }
    size_t live = q->bytes_tail - q->bytes_head;
    if (q->bytes_head > 0 && live + len <= q->bytes_cap && q->bytes_head >= live) {
        memmove(q->bytes, q->bytes + q->bytes_head, live);
        for (size_t i = 0; i < q->count; i++) {
            q->ring[(q->head + i) % q->ring_cap].offset -= q->bytes_head;
        }
        q->bytes_tail = live;
        q->bytes_head = 0;
        return;
    }
    size_t cap = q->bytes_cap ? q->bytes_cap : 65536;
    while (cap < q->bytes_tail + len) {
        cap *= 2;
    }
    q->bytes = mpb_realloc(q->bytes, cap);
    q->bytes_cap = cap;
}

void
mpb__item_queue_push(mpb__item_queue *q, uint64_t id, int64_t arrived_ns, int64_t deadline_ns,
                     const void *data, size_t len)
{
    if (q->count == q->ring_cap) {
        grow_ring(q);
    }
    reserve_bytes(q, len);
    if (len > 0) {
        memcpy(q->bytes + q->bytes_tail, data, len);
    }
    q->ring[(q->head + q->count) % q->ring_cap] =
        (mpb__queued_item){id, arrived_ns, deadline_ns, q->bytes_tail, len, NULL};
    q->bytes_tail += len;
    q->count++;
}

void
mpb__item_queue_push_borrowed(mpb__item_queue *q, uint64_t id, int64_t arrived_ns,
                              int64_t deadline_ns, const void *data, size_t len)
{
    if (q->count == q->ring_cap) {
        grow_ring(q);
    }
    /* offset: where its bytes would be, so the byte ring's bounds stay in order */
    q->ring[(q->head + q->count) % q->ring_cap] =
        (mpb__queued_item){id, arrived_ns, deadline_ns, q->bytes_tail, len, data};
    q->count++;
}

const mpb__queued_item *
mpb__item_queue_peek(const mpb__item_queue *q)
{
    MPB_ASSERT(q->count > 0);
    return &q->ring[q->head];
}

mpb__queued_item
mpb__item_queue_pop(mpb__item_queue *q, const void **data)
{
    MPB_ASSERT(q->count > 0);
    mpb__queued_item item = q->ring[q->head];
    q->head = (q->head + 1) % q->ring_cap;
    q->count--;
    *data = item.borrowed ? item.borrowed : q->bytes + item.offset;
    if (q->count == 0) {
        q->bytes_head = 0;
        q->bytes_tail = 0;
    } else {
        q->bytes_head = q->ring[q->head].offset;
    }
    return item;
}
