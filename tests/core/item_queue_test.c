/*
 * The worker's item queue: FIFO order, payloads back to back (what makes
 * the zero-copy matrix view possible), and data intact across compaction
 * and growth.
 */
#include "support.h"

#include "core/item_queue.h"

static void
items_come_out_in_order_and_contiguous(void **state)
{
    mpb__item_queue q;
    mpb__item_queue_init(&q);
    for (uint64_t i = 0; i < 10; i++) {
        mpb__item_queue_push(&q, i, 0, 0, &i, sizeof i);
    }
    const unsigned char *first = NULL;
    for (uint64_t i = 0; i < 10; i++) {
        const void *data;
        mpb__queued_item item = mpb__item_queue_pop(&q, &data);
        assert_int_equal(item.id, i);
        assert_memory_equal(data, &i, sizeof i);
        if (i == 0) {
            first = data;
        }
        assert_ptr_equal(data, first + i * sizeof i);
    }
    assert_int_equal(q.count, 0);
    mpb__item_queue_free(&q);
}

/* Borrowed items (shared memory) come out where they are, in order with
 * copied ones, and do not disturb the copied ones' bytes. */
static void
borrowed_items_are_not_copied(void **state)
{
    mpb__item_queue q;
    mpb__item_queue_init(&q);
    static const char outside[] = "shared bytes";
    for (uint64_t i = 0; i < 6; i++) {
        if (i % 2) {
            mpb__item_queue_push_borrowed(&q, i, 0, 0, outside, sizeof outside);
        } else {
            mpb__item_queue_push(&q, i, 0, 0, &i, sizeof i);
        }
    }
    for (uint64_t i = 0; i < 6; i++) {
        const void *data;
        mpb__queued_item item = mpb__item_queue_pop(&q, &data);
        assert_int_equal(item.id, i);
        if (i % 2) {
            assert_ptr_equal(data, outside);
            assert_int_equal(item.len, sizeof outside);
        } else {
            assert_memory_equal(data, &i, sizeof i);
        }
    }
    mpb__item_queue_free(&q);
}

static void
payloads_survive_compaction_and_growth(void **state)
{
    mpb__item_queue q;
    mpb__item_queue_init(&q);
    uint64_t pushed = 0;
    uint64_t popped = 0;
    unsigned char payload[3000];
    /* Keep a window of queued items while pushing far more bytes than the
     * initial buffer holds, in sizes that force both compaction and growth. */
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(pushed * 37 % sizeof payload);
        memset(payload, (int)(pushed & 0xff), len);
        mpb__item_queue_push(&q, pushed, 0, 0, payload, len);
        pushed++;
        while (q.count > (size_t)(round % 50)) {
            const void *data;
            mpb__queued_item item = mpb__item_queue_pop(&q, &data);
            assert_int_equal(item.id, popped);
            size_t expect_len = (size_t)(popped * 37 % sizeof payload);
            assert_int_equal(item.len, expect_len);
            for (size_t k = 0; k < item.len; k++) {
                assert_int_equal(((const unsigned char *)data)[k], popped & 0xff);
            }
            popped++;
        }
    }
    assert_true(q.bytes_cap < 4 * 1024 * 1024); /* compaction kept it bounded */
    mpb__item_queue_free(&q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(items_come_out_in_order_and_contiguous),
        cmocka_unit_test(borrowed_items_are_not_copied),
        cmocka_unit_test(payloads_survive_compaction_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
