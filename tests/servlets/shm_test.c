/*
 * Items and values through the shared rings of local workers: every size from below
 * the threshold to larger than the ring, a ring small enough to wrap and
 * to fill (items then travel on the socket), a worker that crashes with
 * items in its ring, and the ring turned off.
 */
#include "support.h"

typedef struct sized_stream {
    uint64_t n;
    uint64_t next;
    unsigned char buf[40000];
    uint64_t outputs;
    uint64_t wrong;
    uint64_t errors;
} sized_stream;

/* Item i: i's bytes repeated, of a length that varies from 8 to 33 KB. */
static size_t
item_len(uint64_t i)
{
    return 8 + (size_t)((i * 7919) % 33000);
}

static void
fill_item(unsigned char *buf, uint64_t i, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        buf[k] = (unsigned char)(i + k * 31);
    }
}

static int
sized_next(void *ctx, const void **data, size_t *len)
{
    sized_stream *s = ctx;
    if (s->next >= s->n) {
        return 0;
    }
    *len = item_len(s->next);
    fill_item(s->buf, s->next, *len);
    s->next++;
    *data = s->buf;
    return 1;
}

static int
sized_output(void *ctx, uint64_t index, const mpb_result *result)
{
    sized_stream *s = ctx;
    s->outputs++;
    if (mpb_result_is_error(result)) {
        s->errors++;
        return 0;
    }
    size_t len;
    const unsigned char *value = mpb_result_value(result, &len);
    unsigned char expect[40000];
    fill_item(expect, index, item_len(index));
    s->wrong += len != item_len(index) || memcmp(value, expect, len) != 0;
    return 0;
}

static mpb_server *
start(long long shm_bytes, const char *plugin, const char *option)
{
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.plugin = plugin;
    cfg.workers = 2;
    cfg.batch_size = 8;
    cfg.batch_wait_us = 0;
    cfg.shm_bytes = shm_bytes;
    const char *options[] = {option, NULL};
    cfg.options = option ? options : NULL;
    mpb_servlet *servlet = mpb_process_servlet_new(&cfg);
    return test_server_over(&servlet, NULL);
}

static void
every_size_arrives_intact_through_a_small_ring(void **state)
{
    (void)state;
    /* 64 KiB rings: items up to 33 KB wrap it constantly and often find it
     * full (then they go on the socket) */
    mpb_server *server = start(65536, "passthrough", NULL);
    sized_stream *s = mpb_calloc(1, sizeof *s);
    s->n = 3000;
    assert_int_equal(mpb_server_stream(server, sized_next, sized_output, s, NULL), 0);
    assert_int_equal(s->outputs, 3000);
    assert_int_equal(s->errors, 0);
    assert_int_equal(s->wrong, 0);
    /* both ways used the rings for some items, and the socket for others
     * (small ones, and large ones that found a ring full) */
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_true(stats.shm_items > 100 && stats.shm_items < 3000);
    assert_true(stats.shm_values > 100 && stats.shm_values < 3000);
    free(s);
    mpb_server_destroy(&server);
}

static void
without_a_ring_items_travel_on_the_socket(void **state)
{
    (void)state;
    mpb_server *server = start(0, "passthrough", NULL);
    sized_stream *s = mpb_calloc(1, sizeof *s);
    s->n = 500;
    assert_int_equal(mpb_server_stream(server, sized_next, sized_output, s, NULL), 0);
    assert_int_equal(s->wrong, 0);
    assert_int_equal(s->outputs, 500);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.shm_items, 0);
    assert_int_equal(stats.shm_values, 0);
    free(s);
    mpb_server_destroy(&server);
}

/* A worker that dies with items in its ring: those items are answered
 * WorkerCrashed, its replacement reads the ring afresh, and later items
 * come back intact. */
static void
a_crash_with_items_in_the_ring(void **state)
{
    (void)state;
    mpb_server *server = start(1 << 20, "fail", "crash_prefix=boom");
    unsigned char item[2048];
    memset(item, 'x', sizeof item);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, item, sizeof item, 5000, &r), 0);
    mpb_result_destroy(&r);
    memcpy(item, "boom", 4);
    assert_int_equal(mpb_server_call(server, item, sizeof item, 5000, &r), MPB_EITEM);
    assert_string_equal(mpb_result_error(r)->type, MPB_ERROR_WORKER_CRASHED);
    mpb_result_destroy(&r);
    memset(item, 'y', sizeof item);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(mpb_server_call(server, item, sizeof item, 10000, &r), 0);
        size_t len;
        const void *value = mpb_result_value(r, &len);
        assert_int_equal(len, sizeof item);
        assert_memory_equal(value, item, len);
        mpb_result_destroy(&r);
    }
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_size_arrives_intact_through_a_small_ring),
        cmocka_unit_test(without_a_ring_items_travel_on_the_socket),
        cmocka_unit_test(a_crash_with_items_in_the_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
