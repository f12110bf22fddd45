/*
 * Peers that misbehave on a pool's worker socket: garbage is a protocol
 * error answered at a bounded rate, oversize frames and values are refused
 * before anything is allocated, a worker that leaves with items fails them
 * at once; the pool serves on.
 */
#include <msgpack.h>
#include <zmq.h>

#include "reliability_helpers.h"

#include "core/wire.h"

/* A raw DEALER on a pool's worker endpoint, for frames no worker sends. */
typedef struct rogue {
    void *ctx;
    void *dealer;
} rogue;

static void
rogue_connect(rogue *r, const char *endpoint, int timeout_ms)
{
    r->ctx = zmq_ctx_new();
    r->dealer = zmq_socket(r->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(r->dealer, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_setsockopt(r->dealer, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(r->dealer, endpoint), 0);
}

/* Says READY as a worker of that plugin with that pid and credit. */
static void
rogue_ready(rogue *r, int64_t pid, uint32_t capacity, const char *plugin, uint32_t batch_size)
{
    mpb__wire_buf buf;
    mpb__wire_buf_init(&buf);
    mpb__ready ready = {.version = MPB_PROTOCOL_VERSION,
                        .name = {"rogue", 5},
                        .pid = pid,
                        .cpus = {"", 0},
                        .capacity = capacity,
                        .plugin = {plugin, strlen(plugin)},
                        .batch_size = batch_size,
                        .host = {"localhost", 9}};
    mpb__wire_pack_ready(&buf, &ready);
    assert_true(zmq_send(r->dealer, buf.sbuf.data, buf.sbuf.size, 0) >= 0);
    mpb__wire_buf_free(&buf);
}

/* A peer that says READY (as a passthrough worker), so it is sent items. */
static void
rogue_join(rogue *r, const char *endpoint)
{
    rogue_connect(r, endpoint, 10000);
    rogue_ready(r, 1, 8, "passthrough", 8);
}

static void
rogue_close(rogue *r)
{
    zmq_close(r->dealer);
    zmq_ctx_term(r->ctx);
}

static int
rogue_exchange(void *dealer, const void *data, size_t len, char *message, size_t message_len)
{
    assert_true(zmq_send(dealer, data, len, 0) >= 0);
    char reply[512];
    int got = zmq_recv(dealer, reply, sizeof reply, 0);
    assert_true(got > 0);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(reply, (size_t)got, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(obj.type, MSGPACK_OBJECT_ARRAY);
    int type = (int)obj.via.array.ptr[0].via.u64;
    if (type == 8) {
        snprintf(message, message_len, "%.*s", (int)obj.via.array.ptr[2].via.str.size,
                 obj.via.array.ptr[2].via.str.ptr);
    }
    msgpack_zone_destroy(&zone);
    return type;
}

static void
garbage_on_the_worker_socket_is_a_protocol_error(void **state)
{
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-rogue-test-%d.ipc", (int)getpid());
    test_pool tp = {.kind = "process", .plugin = "passthrough", .workers = 1, .bind = endpoint};
    mpb_server *server = test_server_start(&tp);

    rogue peer;
    rogue_connect(&peer, endpoint, 5000);
    void *dealer = peer.dealer;
    char message[256] = "";
    /* Not msgpack at all. */
    assert_int_equal(rogue_exchange(dealer, "\xc1garbage", 8, message, sizeof message), 8);
    assert_non_null(strstr(message, "msgpack"));
    /* Valid msgpack, not a frame. */
    assert_int_equal(rogue_exchange(dealer, "\x93\x01\x02\x03", 4, message, sizeof message), 8);
    /* A RESULTS frame from a peer that never said READY. */
    assert_int_equal(rogue_exchange(dealer, "\x92\x03\x90", 3, message, sizeof message), 8);
    assert_non_null(strstr(message, "before READY"));
    rogue_close(&peer);

    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.protocol_errors, 3);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "still here", 10, 5000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
hostile_peers_are_bounded(void **state)
{
    (void)state;
    /* a peer that floods garbage gets ERROR replies at a bounded rate; a
     * frame past the socket's message limit (a batch of the largest
     * values: 64 MiB + 1 MiB here) is dropped unread; the pool serves on */
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-hostile-test-%d.ipc", (int)getpid());
    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .workers = 1,
                    .batch_size = 1,
                    .bind = endpoint};
    mpb_server *server = test_server_start(&tp);
    rogue peer;
    rogue_connect(&peer, endpoint, 1500);
    void *dealer = peer.dealer;
    for (int i = 0; i < 5000; i++) {
        zmq_send(dealer, "\xc1garbage", 8, 0);
    }
    int replies = 0;
    char buf[512];
    while (zmq_recv(dealer, buf, sizeof buf, 0) >= 0) {
        replies++;
    }
    print_message("5000 garbage frames: %d ERROR replies\n", replies);
    assert_true(replies >= 1 && replies <= 300); /* 100 a second at most */
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.protocol_errors, 5000); /* each counted, though not answered */

    size_t big = (size_t)70 << 20;
    char *huge = mpb_malloc(big);
    memset(huge, 0xc1, big);
    assert_true(zmq_send(dealer, huge, big, 0) >= 0);
    free(huge);
    usleep(500000);
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.protocol_errors, 5000); /* never read: nothing to count */

    rogue_close(&peer);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "still here", 10, 5000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

/* A worker that joined by itself answers its one item wrongly (oversize:
 * a value past max_item_bytes, else a value "in its value ring", which it
 * does not have): the item is answered with a Protocol error, not left in
 * flight, and the frame is counted. */
static void
rogue_answer_is_a_protocol_error(int oversize)
{
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-rogue-shm-test-%d.ipc", (int)getpid());
    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .joined_only = 1,
                    .bind = endpoint,
                    .max_item_bytes = 1024};
    mpb_server *server = test_server_start(&tp);

    rogue peer;
    rogue_connect(&peer, endpoint, 5000);
    rogue_ready(&peer, getpid(), 4, "passthrough", 1);
    void *dealer = peer.dealer;
    mpb__wire_buf buf;
    mpb__wire_buf_init(&buf);

    tally t = {0};
    assert_int_equal(mpb_server_submit(server, "x", 1, 5000, count_result, &t), 0);
    char frame_bytes[512];
    int got = zmq_recv(dealer, frame_bytes, sizeof frame_bytes, 0);
    assert_true(got > 0);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    mpb__frame frame;
    char err[128];
    assert_int_equal(mpb__wire_decode(&zone, frame_bytes, (size_t)got, &frame, err, sizeof err), 0);
    assert_int_equal(frame.type, MPB_FRAME_ITEMS);
    mpb__wire_item item;
    int id_known;
    assert_int_equal(mpb__wire_item_at(&frame, 0, &item, &id_known), 0);
    mpb__wire_buf_reset(&buf);
    mpb__wire_pack_results_begin(&buf, 1);
    char value[4096] = {0};
    if (oversize) {
        mpb__wire_pack_result_value(&buf, item.id, value, sizeof value);
    } else {
        mpb__wire_pack_result_value_shm(&buf, item.id, 0, 1);
    }
    assert_true(zmq_send(dealer, buf.sbuf.data, buf.sbuf.size, 0) >= 0);
    msgpack_zone_destroy(&zone);

    for (int i = 0; i < 500 && atomic_load(&t.errors) == 0; i++) {
        usleep(10000);
    }
    assert_int_equal(atomic_load(&t.errors), 1);
    assert_int_equal(atomic_load(&t.values), 0);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.protocol_errors, 1);
    assert_int_equal(stats.in_flight, 0);
    assert_int_equal(stats.shm_values, 0);
    mpb__wire_buf_free(&buf);
    rogue_close(&peer);
    mpb_server_destroy(&server);
}

static void
a_shared_value_from_a_worker_without_a_ring_is_a_protocol_error(void **state)
{
    (void)state;
    rogue_answer_is_a_protocol_error(0);
}

static void
a_value_past_max_item_bytes_is_a_protocol_error(void **state)
{
    (void)state;
    rogue_answer_is_a_protocol_error(1);
}

/* Receives frames until an ITEMS frame; returns how many items it held. */
static uint32_t
rogue_take_items(rogue *r)
{
    char frame[4096];
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    uint32_t count = 0;
    for (;;) {
        int got = zmq_recv(r->dealer, frame, sizeof frame, 0);
        assert_true(got > 0);
        mpb__frame f;
        assert_int_equal(mpb__wire_decode(&zone, frame, (size_t)got, &f, NULL, 0), 0);
        if (f.type == MPB_FRAME_ITEMS) {
            count = f.u.list.count;
            break;
        }
    }
    msgpack_zone_destroy(&zone);
    return count;
}

static void
worker_leaving_with_items_fails_them_at_once(void **state)
{
    const char *how[] = {"bye", "disconnect"};
    for (int k = 0; k < 2; k++) {
        char endpoint[128];
        snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-leaver-test-%d.ipc", (int)getpid());
        test_pool tp = {
            .kind = "process", .plugin = "passthrough", .joined_only = 1, .bind = endpoint};
        mpb_server *server = test_server_start(&tp);
        rogue r;
        rogue_join(&r, endpoint);
        tally t = {0};
        assert_int_equal(mpb_server_submit(server, "a", 1, -1, count_result, &t), 0);
        assert_int_equal(mpb_server_submit(server, "b", 1, -1, count_result, &t), 0);
        uint32_t held = rogue_take_items(&r);
        if (held == 1) {
            held += rogue_take_items(&r);
        }
        assert_int_equal(held, 2);
        if (k == 0) {
            assert_true(zmq_send(r.dealer, "\x91\x07", 2, 0) >= 0); /* BYE */
        } else {
            rogue_close(&r);
        }
        wait_for_tally(&t, 2, 5000);
        print_message("%s: %u errors\n", how[k], atomic_load(&t.errors));
        assert_int_equal(atomic_load(&t.errors), 2); /* before stop, not by it */
        assert_int_equal(atomic_load(&t.values), 0);
        assert_int_equal(mpb_server_workers(server, NULL, 0), 0);
        if (k == 0) {
            rogue_close(&r);
        }
        mpb_server_destroy(&server);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(garbage_on_the_worker_socket_is_a_protocol_error),
        cmocka_unit_test(hostile_peers_are_bounded),
        cmocka_unit_test(a_shared_value_from_a_worker_without_a_ring_is_a_protocol_error),
        cmocka_unit_test(a_value_past_max_item_bytes_is_a_protocol_error),
        cmocka_unit_test(worker_leaving_with_items_fails_them_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
