/*
 * Overload: a server holds at most `capacity` items. With overload
 * reject, calls and submits past it fail at once with Overloaded; with
 * block (the default) they wait for room up to their timeout. The HTTP
 * front end answers 503 past it, and every refusal is counted.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "http_helpers.h"

/* One slow passthrough-like worker: each item costs 300 ms. */
static mpb_server *
slow_server(size_t capacity, mpb_overload overload)
{
    test_pool tp = {.kind = "thread",
                    .plugin = "sleep",
                    .name = "slow",
                    .batch_size = TP_ZERO,
                    .options = {"batch_cost_us=300000", "item_cost_us=0"}};
    mpb_servlet *root = test_pool_servlet(&tp);
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.capacity = capacity;
    opts.overload = overload;
    return test_server_over(&root, &opts);
}

static void
count_done(void *ctx, mpb_result *result)
{
    atomic_int *done = ctx;
    mpb_result_destroy(&result);
    atomic_fetch_add(done, 1);
}

/* Fills the server: capacity items in, none answered yet. */
static void
fill(mpb_server *server, size_t capacity, atomic_int *done)
{
    for (size_t i = 0; i < capacity; i++) {
        assert_int_equal(mpb_server_submit(server, "x", 1, 0, count_done, done), 0);
    }
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.in_flight, capacity);
}

static const char *
error_type(const mpb_result *result)
{
    assert_true(mpb_result_is_error(result));
    return mpb_result_error(result)->type;
}

static void
reject_fails_at_once_whatever_the_timeout(void **state)
{
    (void)state;
    atomic_int done = 0;
    mpb_server *server = slow_server(2, MPB_OVERLOAD_REJECT);
    fill(server, 2, &done);
    mpb_result *out = NULL;
    /* a 60 s timeout would have waited for room under block */
    assert_int_equal(mpb_server_call(server, "y", 1, 60000, &out), MPB_EITEM);
    assert_string_equal(error_type(out), "Overloaded");
    mpb_result_destroy(&out);
    assert_int_equal(mpb_server_submit(server, "y", 1, -1, count_done, &done), MPB_EAGAIN);
    const void *inputs[3] = {"a", "b", "c"};
    size_t lens[3] = {1, 1, 1};
    mpb_result *many[3];
    assert_int_equal(mpb_server_call_many(server, inputs, lens, 3, 0, many), MPB_EAGAIN);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(error_type(many[i]), "Overloaded");
        mpb_result_destroy(&many[i]);
    }
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.rejected, 5);
    assert_int_equal(stats.in_flight, 2); /* nothing refused went in */
    mpb_server_destroy(&server);
    assert_int_equal(atomic_load(&done), 2); /* what went in was answered */
}

static void
block_waits_for_room_up_to_the_timeout(void **state)
{
    (void)state;
    atomic_int done = 0;
    mpb_server *server = slow_server(2, MPB_OVERLOAD_BLOCK);
    fill(server, 2, &done);
    mpb_result *out = NULL;
    /* too short to see room: Timeout, and counted as refused */
    assert_int_equal(mpb_server_call(server, "y", 1, 50, &out), MPB_ETIMEDOUT);
    assert_string_equal(error_type(out), "Timeout");
    mpb_result_destroy(&out);
    /* long enough: room comes as the filled items finish, then its value */
    assert_int_equal(mpb_server_call(server, "z", 1, 60000, &out), 0);
    size_t len;
    assert_memory_equal(mpb_result_value(out, &len), "z", 1);
    mpb_result_destroy(&out);
    assert_int_equal(mpb_server_submit(server, "y", 1, 0, count_done, &done), 0);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.rejected, 1);
    mpb_server_destroy(&server);
    assert_int_equal(atomic_load(&done), 3);
}

typedef struct http_call {
    const char *address;
    int status;
} http_call;

static const char *const infer_body = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":"
                                      "\"BYTES\",\"data\":[\"hi\"]}]}";

static void *
infer_in_background(void *arg)
{
    http_call *c = arg;
    http_reply r = http(c->address, "POST", "/v2/models/slow/infer", infer_body);
    c->status = r.status;
    free(r.body);
    return NULL;
}

static void
http_answers_503_past_capacity(void **state)
{
    (void)state;
    mpb_server *server = slow_server(2, MPB_OVERLOAD_BLOCK);
    char address[128];
    char err[256];
    assert_int_equal(mpb_server_serve_http(server, "127.0.0.1:0", NULL, address, sizeof address,
                                           err, sizeof err),
                     0);
    http_call calls[2] = {{address, 0}, {address, 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, infer_in_background, &calls[i]), 0);
    }
    mpb_server_stats stats;
    for (int i = 0; i < 500; i++) { /* both in before the third comes */
        mpb_server_stats_get(server, &stats);
        if (stats.in_flight == 2) {
            break;
        }
        usleep(1000);
    }
    assert_int_equal(stats.in_flight, 2);
    http_reply r = http(address, "POST", "/v2/models/slow/infer", infer_body);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "at capacity"));
    free(r.body);
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(calls[i].status, 200);
    }
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.rejected, 1);
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reject_fails_at_once_whatever_the_timeout),
        cmocka_unit_test(block_waits_for_room_up_to_the_timeout),
        cmocka_unit_test(http_answers_503_past_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
