/*
 * What happens when things go wrong or end: stop drains, deadlines become
 * Timeout errors, garbage on the coordinator's socket is a protocol error,
 * a crashed worker's items fail in place and the server keeps serving.
 */
#include <stdatomic.h>
#include <signal.h>
#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

#include "support.h"

#include "core/wire.h"

typedef struct tally {
    atomic_uint values;
    atomic_uint errors;
} tally;

static void
count_result(void *ctx, mpb_result *result)
{
    tally *t = ctx;
    if (mpb_result_is_error(result)) {
        atomic_fetch_add(&t->errors, 1);
    } else {
        atomic_fetch_add(&t->values, 1);
    }
    mpb_result_destroy(&result);
}

static void
stop_drains_everything_in_flight(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "sleep",
                    .workers = 2,
                    .batch_size = 4,
                    .batch_wait_us = TP_ZERO,
                    .options = {"batch_cost_us=5000", "item_cost_us=0"}};
    mpb_server *server = test_server_start(&tp);
    tally t = {0};
    for (int i = 0; i < 200; i++) {
        assert_int_equal(mpb_server_submit(server, "x", 1, -1, count_result, &t), 0);
    }
    assert_int_equal(mpb_server_stop(server), 0);
    assert_int_equal(atomic_load(&t.values), 200);
    assert_int_equal(atomic_load(&t.errors), 0);
    assert_int_equal(mpb_server_submit(server, "x", 1, -1, count_result, &t), MPB_ECLOSED);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.completed, 200);
    assert_int_equal(stats.in_flight, 0);
    mpb_server_destroy(&server);
}

static void
call_past_its_timeout_returns_timeout(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"hang_prefix=hang", "hang_ms=1500"}};
    mpb_server *server = test_server_start(&tp);
    mpb_result *r = NULL;
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_call(server, "hang", 4, 200, &r), MPB_ETIMEDOUT);
    int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
    assert_non_null(r);
    assert_string_equal(mpb_result_error(r)->type, MPB_ERROR_TIMEOUT);
    assert_true(elapsed_ms >= 200);
    assert_true(elapsed_ms < 1400);
    mpb_result_destroy(&r);
    assert_int_equal(mpb_server_call(server, "fine", 4, 10000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
submit_fails_fast_at_capacity(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .capacity = 2,
                    .options = {"hang_prefix=hang", "hang_ms=300"}};
    mpb_server *server = test_server_start(&tp);
    tally t = {0};
    assert_int_equal(mpb_server_submit(server, "hang", 4, 0, count_result, &t), 0);
    assert_int_equal(mpb_server_submit(server, "hang", 4, 0, count_result, &t), 0);
    assert_int_equal(mpb_server_submit(server, "x", 1, 0, count_result, &t), MPB_EAGAIN);
    assert_int_equal(mpb_server_submit(server, "x", 1, 50, count_result, &t), MPB_ETIMEDOUT);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.rejected, 2); /* both counted as overload */
    assert_int_equal(mpb_server_submit(server, "x", 1, 5000, count_result, &t), 0);
    mpb_server_destroy(&server);
    assert_int_equal(atomic_load(&t.values), 3);
}

/* Sends one frame from a rogue DEALER and returns the reply's frame type. */
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

    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int timeout = 5000;
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(dealer, endpoint), 0);
    char message[256] = "";
    /* Not msgpack at all. */
    assert_int_equal(rogue_exchange(dealer, "\xc1garbage", 8, message, sizeof message), 8);
    assert_non_null(strstr(message, "msgpack"));
    /* Valid msgpack, not a frame. */
    assert_int_equal(rogue_exchange(dealer, "\x93\x01\x02\x03", 4, message, sizeof message), 8);
    /* A RESULTS frame from a peer that never said READY. */
    assert_int_equal(rogue_exchange(dealer, "\x92\x03\x90", 3, message, sizeof message), 8);
    assert_non_null(strstr(message, "before READY"));
    zmq_close(dealer);
    zmq_ctx_term(ctx);

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
    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(dealer, endpoint), 0);
    for (int i = 0; i < 5000; i++) {
        zmq_send(dealer, "\xc1garbage", 8, 0);
    }
    int replies = 0;
    char buf[512];
    int timeout = 1500;
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
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

    zmq_close(dealer);
    zmq_ctx_term(ctx);
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

    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int timeout = 5000;
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(dealer, endpoint), 0);
    mpb__wire_buf buf;
    mpb__wire_buf_init(&buf);
    mpb__ready ready = {.version = MPB_PROTOCOL_VERSION,
                        .name = {"rogue", 5},
                        .pid = getpid(),
                        .cpus = {"", 0},
                        .capacity = 4,
                        .plugin = {"passthrough", 11},
                        .batch_size = 1,
                        .host = {"localhost", 9}};
    mpb__wire_pack_ready(&buf, &ready);
    assert_true(zmq_send(dealer, buf.sbuf.data, buf.sbuf.size, 0) >= 0);

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
    zmq_close(dealer);
    zmq_ctx_term(ctx);
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

static void
crashed_worker_fails_its_items_and_is_replaced(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"crash_prefix=die"}};
    mpb_server *server = test_server_start(&tp);
    mpb_worker_status before[2];
    assert_int_equal(mpb_server_workers(server, before, 2), 1);

    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "die now", 7, 10000, &r), MPB_EITEM);
    const mpb_item_error *e = mpb_result_error(r);
    assert_string_equal(e->type, MPB_ERROR_WORKER_CRASHED);
    assert_int_equal(e->pid, before[0].pid);
    assert_non_null(strstr(e->message, "signal"));
    mpb_result_destroy(&r);

    /* A replacement serves the next items. */
    index_stream s = {.n = 2000};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, NULL), 0);
    assert_int_equal(s.outputs, s.n);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.wrong_value, 0);
    mpb_worker_status after[2];
    assert_int_equal(mpb_server_workers(server, after, 2), 1);
    assert_int_not_equal(after[0].pid, before[0].pid);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.workers_lost, 1);
    mpb_server_destroy(&server);
}

static void
crash_in_a_stream_loses_nothing(void **state)
{
    /* Item 500 kills its worker; items in flight with it fail in place,
     * every other item is answered, and the order holds. */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 8,
                    .batch_wait_us = 200,
                    .options = {"exit_prefix=item-500"}};
    mpb_server *server = test_server_start(&tp);
    index_stream s = {.n = 5000};
    s.keep = mpb_calloc(s.n, sizeof(mpb_result *));
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &s, &opts), 0);
    assert_int_equal(s.outputs, s.n);
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(s.wrong_value, 0);
    assert_true(mpb_result_is_error(s.keep[500]));
    assert_string_equal(mpb_result_error(s.keep[500])->type, MPB_ERROR_WORKER_CRASHED);
    assert_true(s.errors >= 1);
    for (uint64_t i = 0; i < s.n; i++) {
        if (mpb_result_is_error(s.keep[i])) {
            assert_string_equal(mpb_result_error(s.keep[i])->type, MPB_ERROR_WORKER_CRASHED);
        }
        mpb_result_destroy(&s.keep[i]);
    }
    free(s.keep);
    mpb_server_destroy(&server);
}

typedef struct named_feed {
    const char *const *items;
    size_t n;
    size_t next;
    mpb_result **results;
} named_feed;

static int
named_next(void *ctx, const void **data, size_t *len)
{
    named_feed *f = ctx;
    if (f->next == f->n) {
        return 0;
    }
    *data = f->items[f->next];
    *len = strlen(f->items[f->next++]);
    return 1;
}

static int
named_keep(void *ctx, uint64_t index, const mpb_result *result)
{
    named_feed *f = ctx;
    f->results[index] = mpb_result_copy(result);
    return 0;
}

static void
items_past_their_deadline_are_answered_in_time(void **state)
{
    /* "hang" holds the only worker for 1 s; both items have a 300 ms
     * deadline: both are answered Timeout at their deadline, not when the
     * worker is done. The worker's late answer is dropped quietly and its
     * credit comes back. */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"hang_prefix=hang", "hang_ms=1000"}};
    mpb_server *server = test_server_start(&tp);
    const char *items[] = {"hang", "later"};
    mpb_result *results[2] = {NULL, NULL};
    named_feed feed = {items, 2, 0, results};
    mpb_stream_options opts = {.return_exceptions = 1, .item_timeout_ms = 300};
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_stream(server, named_next, named_keep, &feed, &opts), 0);
    int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
    print_message("both answered after %lld ms\n", (long long)elapsed_ms);
    assert_true(elapsed_ms >= 300);
    assert_true(elapsed_ms < 900);
    for (int i = 0; i < 2; i++) {
        const mpb_item_error *e = mpb_result_error(results[i]);
        assert_non_null(e);
        assert_string_equal(e->type, MPB_ERROR_TIMEOUT);
        assert_string_equal(e->worker, "fail-0");
        mpb_result_destroy(&results[i]);
    }
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "fine", 4, 10000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.protocol_errors, 0);
    assert_int_equal(stats.in_flight, 0);
    mpb_server_destroy(&server);
}

static void
deadlines_fire_on_time_behind_thousands_of_items(void **state)
{
    (void)state;
    /* the only worker hangs 2 s on each of the first items and holds its
     * credit; 5000 items without a deadline wait behind them. 100 items
     * with a 100 ms deadline must come back Timeout at their deadline, not
     * at the next periodic sweep and not after a walk of every slot */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"hang_prefix=hang", "hang_ms=2000"}};
    mpb_servlet *root = test_pool_servlet(&tp);
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.capacity = 8192;
    opts.stop_timeout_ms = 200; /* then the hung worker is killed */
    mpb_server *server = test_server_over(&root, &opts);
    tally t = {0};
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(mpb_server_submit(server, "hang", 4, -1, count_result, &t), 0);
    }
    usleep(100000); /* they are in, the worker's credit is taken */
    enum { N = 100 };
    const void *inputs[N];
    size_t lens[N];
    mpb_result *out[N];
    for (int i = 0; i < N; i++) {
        inputs[i] = "late";
        lens[i] = 4;
    }
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_call_many(server, inputs, lens, N, 100, out), 0);
    int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
    print_message("100 deadlines of 100 ms answered after %lld ms\n", (long long)elapsed_ms);
    assert_true(elapsed_ms >= 100);
    assert_true(elapsed_ms < 350); /* a 500 ms sweep would miss this half the time */
    for (int i = 0; i < N; i++) {
        assert_string_equal(mpb_result_error(out[i])->type, MPB_ERROR_TIMEOUT);
        mpb_result_destroy(&out[i]);
    }
    mpb_server_destroy(&server);
    assert_int_equal(atomic_load(&t.values) + atomic_load(&t.errors), 5000);
}

typedef struct outcome_count {
    unsigned left; /* "die" items still to send */
    unsigned crashed;
    unsigned unavailable;
    unsigned other;
    char unavailable_message[320];
} outcome_count;

static int
count_outcome(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)index;
    outcome_count *c = ctx;
    const mpb_item_error *e = mpb_result_error(result);
    if (e != NULL && strcmp(e->type, MPB_ERROR_WORKER_CRASHED) == 0) {
        c->crashed++;
    } else if (e != NULL && strcmp(e->type, MPB_ERROR_UNAVAILABLE_SERVLET) == 0) {
        c->unavailable++;
        snprintf(c->unavailable_message, sizeof c->unavailable_message, "%s", e->message);
    } else {
        c->other++;
    }
    return 0;
}

static int
die_next(void *ctx, const void **data, size_t *len)
{
    outcome_count *c = ctx;
    if (c->left == 0) {
        return 0;
    }
    c->left--;
    *data = "die";
    *len = 3;
    return 1;
}

static void
a_crash_loop_backs_off_and_fails_items_unavailable(void **state)
{
    (void)state;
    /* every worker dies on its first item: a crash loop. Relaunches back
     * off instead of spinning (or stopping for good); while none lives,
     * waiting items fail ServletUnavailable after 300 ms, naming the last
     * death; once the items are gone a worker comes back and serves */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"crash_prefix=die"},
                    .unavailable_timeout_ms = 300};
    mpb_server *server = test_server_start(&tp);
    outcome_count c = {.left = 3000};
    mpb_stream_options opts = {.return_exceptions = 1};
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_server_stream(server, die_next, count_outcome, &c, &opts), 0);
    int64_t seconds = (mpb_now_ns() - start) / 1000000000;
    print_message("%u crashed, %u unavailable in %lld s\n", c.crashed, c.unavailable,
                  (long long)seconds);
    assert_int_equal(c.crashed + c.unavailable, 3000); /* each answered, nothing else */
    assert_int_equal(c.other, 0);
    assert_true(c.unavailable > 0);
    assert_non_null(strstr(c.unavailable_message, "no live worker"));
    assert_non_null(strstr(c.unavailable_message, "signal 6"));
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    /* backoff: 3000 items that each kill a worker did not cost thousands of launches */
    assert_true(stats.workers_lost < 20);
    assert_non_null(strstr(stats.last_exit, "killed by signal 6"));
    /* and it never gives up: a worker comes back and serves */
    int served = 0;
    for (int tries = 0; tries < 300 && !served; tries++) {
        mpb_result *r = NULL;
        served = mpb_server_call(server, "fine", 4, 10000, &r) == 0;
        mpb_result_destroy(&r);
        if (!served) {
            usleep(100000);
        }
    }
    assert_true(served);
    mpb_server_destroy(&server);
}

typedef struct kept {
    _Atomic(mpb_result *) result;
} kept;

static void
keep_result(void *ctx, mpb_result *result)
{
    atomic_store(&((kept *)ctx)->result, result);
}

static void
stopping_does_not_wait_out_a_backoff(void **state)
{
    (void)state;
    /* a worker that dies on every item: after six quick deaths its next
     * launch waits 3.2 s; stopping the server then must not wait for it */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"crash_prefix=die"},
                    .unavailable_timeout_ms = -1};
    mpb_server *server = test_server_start(&tp);
    mpb_server_stats stats = {0};
    for (int tries = 0; tries < 400 && stats.workers_lost < 6; tries++) {
        mpb_result *r = NULL;
        mpb_server_call(server, "die", 3, 10000, &r);
        mpb_result_destroy(&r);
        mpb_server_stats_get(server, &stats);
    }
    assert_true(stats.workers_lost >= 6);
    int64_t start = mpb_now_ns();
    mpb_server_destroy(&server);
    int64_t ms = (mpb_now_ns() - start) / 1000000;
    print_message("stopped in %lld ms with a relaunch pending\n", (long long)ms);
    assert_true(ms < 1500);
}

static void
a_hung_batch_times_out_and_its_worker_is_replaced(void **state)
{
    (void)state;
    const char *kinds[] = {"process", "thread"};
    for (int k = 0; k < 2; k++) {
        /* "hang" blocks its worker's call() for a minute (processes) or
         * 1.5 s (threads); batch_timeout_ms 300: its item fails Timeout
         * then, a process worker is killed and replaced, a thread keeps its
         * credit until it returns; the other worker serves meanwhile */
        int thread = k == 1;
        test_pool tp = {.kind = kinds[k],
                        .plugin = "fail",
                        .workers = 2,
                        .batch_size = 1,
                        .options = {"hang_prefix=hang", thread ? "hang_ms=1500" : "hang_ms=60000"},
                        .batch_timeout_ms = 300};
        mpb_server *server = test_server_start(&tp);
        kept hung = {NULL};
        int64_t start = mpb_now_ns();
        assert_int_equal(mpb_server_submit(server, "hang", 4, -1, keep_result, &hung), 0);
        usleep(50000);
        for (int i = 0; i < 20; i++) { /* the other worker has the most credit: these go there */
            mpb_result *r = NULL;
            assert_int_equal(mpb_server_call(server, "fine", 4, 5000, &r), 0);
            mpb_result_destroy(&r);
        }
        for (int tries = 0; tries < 300 && atomic_load(&hung.result) == NULL; tries++) {
            usleep(10000);
        }
        int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
        print_message("%s: the hung item answered after %lld ms\n", kinds[k],
                      (long long)elapsed_ms);
        mpb_result *r = atomic_load(&hung.result);
        assert_non_null(r);
        assert_true(elapsed_ms >= 300 && elapsed_ms < 1400); /* at the timeout, not the hang */
        const mpb_item_error *e = mpb_result_error(r);
        assert_non_null(e);
        assert_string_equal(e->type, MPB_ERROR_TIMEOUT);
        assert_non_null(strstr(e->message, "batch_timeout_ms"));
        mpb_result_destroy(&r);
        mpb_server_stats stats;
        mpb_server_stats_get(server, &stats);
        if (!thread) {
            for (int tries = 0; tries < 200 && stats.workers_lost == 0; tries++) {
                usleep(10000);
                mpb_server_stats_get(server, &stats);
            }
            assert_int_equal(stats.workers_lost, 1);
            assert_non_null(strstr(stats.last_exit, "signal 9"));
        }
        /* both workers serve again (a replacement, or the thread returned) */
        usleep(thread ? 1500000 : 300000);
        mpb_worker_status workers[4];
        assert_int_equal(mpb_server_workers(server, workers, 4), 2);
        assert_int_equal(mpb_server_call(server, "fine", 4, 10000, &r), 0);
        mpb_result_destroy(&r);
        mpb_server_stats_get(server, &stats);
        assert_int_equal(stats.protocol_errors, 0);
        mpb_server_destroy(&server);
    }
}

typedef struct killing_stream {
    index_stream s; /* first: index_next and index_output take it */
    pid_t victim;
    uint64_t kill_at;
    int killed;
} killing_stream;

static int
kill_midway(void *ctx, uint64_t index, const mpb_result *result)
{
    killing_stream *k = ctx;
    if (!k->killed && index == k->kill_at) {
        kill(k->victim, SIGKILL);
        k->killed = 1;
    }
    return index_output(&k->s, index, result);
}

static void
with_retry_a_killed_worker_costs_nothing(void **state)
{
    (void)state;
    /* retry: 1: a SIGKILL of one of two workers under a stream yields 0
     * errors, 0 lost, 0 duplicated, every value right and in order */
    test_pool tp = {
        .kind = "process", .plugin = "passthrough", .workers = 2, .batch_size = 64, .retry = 1};
    mpb_server *server = test_server_start(&tp);
    mpb_worker_status workers[2];
    assert_int_equal(mpb_server_workers(server, workers, 2), 2);
    killing_stream k = {
        .s = {.n = 300000, .binary = 1}, .victim = (pid_t)workers[1].pid, .kill_at = 100000};
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, index_next, kill_midway, &k, &opts), 0);
    assert_true(k.killed);
    assert_int_equal(k.s.outputs, k.s.n);
    assert_int_equal(k.s.out_of_order, 0);
    assert_int_equal(k.s.errors, 0);
    assert_int_equal(k.s.wrong_value, 0);
    mpb_server_stats stats;
    for (int tries = 0; tries < 200; tries++) {
        mpb_server_stats_get(server, &stats);
        if (stats.workers_lost == 1) {
            break;
        }
        usleep(10000);
    }
    assert_int_equal(stats.workers_lost, 1);
    assert_int_equal(stats.completed, k.s.n); /* nothing answered twice */
    assert_int_equal(stats.protocol_errors, 0);
    mpb_server_destroy(&server);
}

static void
a_poison_item_is_retried_then_fails(void **state)
{
    (void)state;
    /* an item that kills every worker it reaches: retried once, then it
     * fails WorkerCrashed; the items around it are served */
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 1,
                    .retry = 1,
                    .options = {"crash_prefix=poison"}};
    mpb_server *server = test_server_start(&tp);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "poison", 6, 20000, &r), MPB_EITEM);
    assert_string_equal(mpb_result_error(r)->type, MPB_ERROR_WORKER_CRASHED);
    mpb_result_destroy(&r);
    mpb_server_stats stats;
    for (int tries = 0; tries < 200; tries++) {
        mpb_server_stats_get(server, &stats);
        if (stats.workers_lost == 2) {
            break;
        }
        usleep(10000);
    }
    assert_int_equal(stats.workers_lost, 2); /* the first try and the retry */
    for (int tries = 0; tries < 300; tries++) {
        if (mpb_server_call(server, "fine", 4, 10000, &r) == 0) {
            break;
        }
        mpb_result_destroy(&r);
        usleep(10000);
    }
    assert_false(mpb_result_is_error(r));
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

/* A peer that says READY on a pool's endpoint, takes items, then leaves. */
typedef struct rogue {
    void *ctx;
    void *dealer;
} rogue;

static void
rogue_join(rogue *r, const char *endpoint)
{
    r->ctx = zmq_ctx_new();
    r->dealer = zmq_socket(r->ctx, ZMQ_DEALER);
    int timeout = 10000;
    int linger = 0;
    zmq_setsockopt(r->dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(r->dealer, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(r->dealer, endpoint), 0);
    mpb__wire_buf buf;
    mpb__wire_buf_init(&buf);
    mpb__ready ready = {.version = MPB_PROTOCOL_VERSION,
                        .name = {"rogue", 5},
                        .pid = 1,
                        .cpus = {"", 0},
                        .capacity = 8,
                        .plugin = {"none", 4},
                        .batch_size = 8,
                        .host = {"h", 1}};
    mpb__wire_pack_ready(&buf, &ready);
    assert_true(zmq_send(r->dealer, buf.sbuf.data, buf.sbuf.size, 0) >= 0);
    mpb__wire_buf_free(&buf);
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
rogue_close(rogue *r)
{
    zmq_close(r->dealer);
    zmq_ctx_term(r->ctx);
}

static void
wait_for_tally(tally *t, unsigned errors, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms && atomic_load(&t->errors) < errors; waited += 10) {
        usleep(10000);
    }
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
        cmocka_unit_test(stop_drains_everything_in_flight),
        cmocka_unit_test(call_past_its_timeout_returns_timeout),
        cmocka_unit_test(submit_fails_fast_at_capacity),
        cmocka_unit_test(garbage_on_the_worker_socket_is_a_protocol_error),
        cmocka_unit_test(hostile_peers_are_bounded),
        cmocka_unit_test(a_shared_value_from_a_worker_without_a_ring_is_a_protocol_error),
        cmocka_unit_test(a_value_past_max_item_bytes_is_a_protocol_error),
        cmocka_unit_test(crashed_worker_fails_its_items_and_is_replaced),
        cmocka_unit_test(crash_in_a_stream_loses_nothing),
        cmocka_unit_test(items_past_their_deadline_are_answered_in_time),
        cmocka_unit_test(deadlines_fire_on_time_behind_thousands_of_items),
        cmocka_unit_test(a_crash_loop_backs_off_and_fails_items_unavailable),
        cmocka_unit_test(stopping_does_not_wait_out_a_backoff),
        cmocka_unit_test(a_hung_batch_times_out_and_its_worker_is_replaced),
        cmocka_unit_test(with_retry_a_killed_worker_costs_nothing),
        cmocka_unit_test(a_poison_item_is_retried_then_fails),
        cmocka_unit_test(worker_leaving_with_items_fails_them_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
