/*
 * The ZeroMQ front end and the C client: calls come back right and in
 * order through a tree, limits answer Overloaded, every malformed request
 * gets an error while the server goes on serving, and stop drains.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "core/os/process.h"

#include "frontend_helpers.h"

typedef struct served {
    mpb_server *server;
    char endpoint[128];
} served;

/* pipeline = sequential(pre: tag, models = ensemble(a: tag, b: tag)) */
static void
serve_tree(served *s, size_t capacity, unsigned client_max, const char *b_option)
{
    mpb_servlet *models_members[2] = {tag_pool("process", "a", 1, NULL),
                                      tag_pool("thread", "b", 1, b_option)};
    mpb_servlet *models = mpb_ensemble_servlet_new(models_members, 2, NULL);
    mpb_servlet_rename(models, "models");
    mpb_servlet *stages[2] = {tag_pool("thread", "pre", 1, NULL), models};
    mpb_servlet *root = mpb_sequential_servlet_new(stages, 2);
    mpb_servlet_rename(root, "pipeline");
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.capacity = capacity;
    s->server = test_server_over(&root, &opts);
    mpb_frontend_options fo;
    mpb_frontend_options_init(&fo);
    fo.client_max_in_flight = client_max;
    fo.max_message_bytes = 4096;
    char err[256];
    const char *endpoint = test_endpoint();
    if (mpb_server_serve_zmq(s->server, endpoint, &fo, s->endpoint, sizeof s->endpoint, err,
                             sizeof err) != 0) {
        fail_msg("serve_zmq: %s", err);
    }
}

static void
calls_through_a_tree(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 0, 0, NULL);
    mpb_client *client = test_client(s.endpoint);
    mpb_result *r = NULL;
    assert_int_equal(mpb_client_call(client, NULL, "x", 1, 5000, &r), 0);
    assert_true(mpb_result_is_array(r));
    assert_value(mpb_result_member(r, 0), "x|pre|a");
    assert_value(mpb_result_member(r, 1), "x|pre|b");
    mpb_result_destroy(&r);
    /* one member by path */
    assert_int_equal(mpb_client_call(client, "pipeline/models/b", "y", 1, 5000, &r), 0);
    assert_value(r, "y|b");
    mpb_result_destroy(&r);
    /* an error names its stage; pid and worker survive the trip */
    assert_int_equal(mpb_client_call(client, NULL, "z!a", 3, 5000, &r), MPB_EITEM);
    assert_error(r, "ValueError", "pipeline/models/a");
    assert_true(mpb_result_error(r)->pid > 0);
    assert_string_equal(mpb_result_error(r)->worker, "a-0");
    mpb_result_destroy(&r);
    assert_int_equal(mpb_client_call(client, "pipeline/nope", "w", 1, 5000, &r), MPB_EITEM);
    assert_string_equal(mpb_result_error(r)->type, "UnknownServlet");
    mpb_result_destroy(&r);
    mpb_health health;
    assert_int_equal(mpb_client_health(client, 5000, &health), 0);
    assert_true(health.live && health.ready);
    assert_int_equal(health.workers, 3);
    mpb_client_destroy(&client);
    mpb_server_destroy(&s.server);
}

static void
a_pipelined_stream_keeps_order(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 0, 0, NULL);
    mpb_client *client = test_client(s.endpoint);
    string_stream st = {0};
    enum { N = 20000 };
    const char **inputs = mpb_calloc(N, sizeof(char *));
    char(*texts)[24] = mpb_calloc(N, 24);
    for (size_t i = 0; i < N; i++) {
        snprintf(texts[i], 24, "%zu%s", i, i % 97 == 5 ? "!pre" : "");
        inputs[i] = texts[i];
    }
    st.inputs = inputs;
    st.n = N;
    st.results = mpb_calloc(N, sizeof(mpb_result *));
    mpb_client_stream_options opts = {.return_exceptions = 1, .window = 512};
    assert_int_equal(mpb_client_stream(client, string_next, string_output, &st, &opts), 0);
    assert_int_equal(st.outputs, N);
    assert_int_equal(st.out_of_order, 0);
    for (size_t i = 0; i < N; i++) {
        if (i % 97 == 5) {
            assert_error(st.results[i], "ValueError", "pipeline/pre");
            continue;
        }
        char expect[48];
        snprintf(expect, sizeof expect, "%zu|pre|b", i);
        assert_value(mpb_result_member(st.results[i], 1), expect);
    }
    free_results(st.results, N);
    free(texts);
    free(inputs);
    /* without return_exceptions the stream stops at the first error, after
     * every earlier result */
    const char *some[4] = {"a", "b", "c!pre", "d"};
    string_stream stop = {.inputs = some, .n = 4};
    stop.results = mpb_calloc(4, sizeof(mpb_result *));
    mpb_client_stream_options at_pre = {.target = "pipeline/pre"};
    assert_int_equal(mpb_client_stream(client, string_next, string_output, &stop, &at_pre),
                     MPB_EITEM);
    assert_int_equal(stop.outputs, 3);
    assert_value(stop.results[1], "b|pre");
    assert_error(stop.results[2], "ValueError", "pipeline/pre");
    free_results(stop.results, 4);
    mpb_client_destroy(&client);
    mpb_server_destroy(&s.server);
}

static void
limits_answer_overloaded(void **state)
{
    (void)state;
    served s;
    /* b takes 50 ms per call; a client may have 4 calls pending */
    serve_tree(&s, 0, 4, "delay_us=50000");
    raw_peer peer;
    raw_open(&peer, s.endpoint);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_array(&pk, 10);
    for (int i = 0; i < 10; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint8(&pk, (uint8_t)i);
        msgpack_pack_bin_with_body(&pk, "v", 1);
    }
    assert_int_equal(zmq_send(peer.socket, sbuf.data, sbuf.size, 0), (int)sbuf.size);
    msgpack_sbuffer_destroy(&sbuf);
    int overloaded = 0;
    int values = 0;
    char buf[4096];
    while (overloaded + values < 10) {
        int len = raw_recv(&peer, buf, sizeof buf, 5000);
        msgpack_unpacked msg;
        msgpack_unpacked_init(&msg);
        assert_int_equal(reply_type(&msg, buf, len), 2);
        msgpack_object_array *entries = &msg.data.via.array.ptr[1].via.array;
        for (uint32_t i = 0; i < entries->size; i++) {
            msgpack_object_array *e = &entries->ptr[i].via.array;
            if (e->ptr[1].via.u64 == 1) {
                assert_memory_equal(e->ptr[2].via.str.ptr, "Overloaded", 10);
                overloaded++;
            } else {
                values++;
            }
        }
        msgpack_unpacked_destroy(&msg);
    }
    assert_int_equal(values, 4);
    assert_int_equal(overloaded, 6);
    raw_close(&peer);
    mpb_server_destroy(&s.server);
}

static void
refusals_go_out_in_bounded_messages(void **state)
{
    (void)state;
    served s;
    /* b takes 50 ms per call; a client may have 4 calls pending: almost
     * every call of the flood is answered Overloaded by the front end */
    serve_tree(&s, 0, 4, "delay_us=50000");
    raw_peer peer;
    raw_open(&peer, s.endpoint);
    enum { FRAMES = 6, CALLS = 600 };
    for (int f = 0; f < FRAMES; f++) {
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init(&sbuf);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_array(&pk, CALLS);
        for (int i = 0; i < CALLS; i++) {
            msgpack_pack_array(&pk, 2);
            msgpack_pack_uint32(&pk, (uint32_t)(f * CALLS + i));
            msgpack_pack_bin_with_body(&pk, "", 0);
        }
        assert_true(sbuf.size <= 4096); /* max_message_bytes */
        assert_int_equal(zmq_send(peer.socket, sbuf.data, sbuf.size, 0), (int)sbuf.size);
        msgpack_sbuffer_destroy(&sbuf);
    }
    static char buf[1 << 20];
    int entries = 0;
    int messages = 0;
    int largest = 0;
    while (entries < FRAMES * CALLS) {
        int len = raw_recv(&peer, buf, sizeof buf, 5000);
        msgpack_unpacked msg;
        msgpack_unpacked_init(&msg);
        assert_int_equal(reply_type(&msg, buf, len), 2);
        entries += (int)msg.data.via.array.ptr[1].via.array.size;
        msgpack_unpacked_destroy(&msg);
        messages++;
        largest = len > largest ? len : largest;
    }
    print_message("%d answers in %d messages, the largest %d bytes\n", entries, messages, largest);
    assert_int_equal(entries, FRAMES * CALLS);
    assert_true(largest <= (64 << 10) + 1024); /* 64 KiB of entries, and one more */
    raw_close(&peer);
    mpb_server_destroy(&s.server);
}

/* Sends one raw message and expects a reply of type want (ERROR 8 or
 * RESULTS 2 holding one Protocol error), then a normal call to work. */
static void
expect_reply(const char *endpoint, mpb_client *client, const void *data, size_t len, int multipart,
             uint64_t want, const char *needle)
{
    raw_peer peer;
    raw_open(&peer, endpoint);
    if (multipart) {
        zmq_send(peer.socket, "extra", 5, ZMQ_SNDMORE);
    }
    zmq_send(peer.socket, data, len, 0);
    static char buf[1 << 16];
    int got = raw_recv(&peer, buf, sizeof buf, 5000);
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    assert_int_equal(reply_type(&msg, buf, got), want);
    char text[512];
    msgpack_object_print_buffer(text, sizeof text, msg.data);
    if (strstr(text, needle) == NULL) {
        fail_msg("reply %s does not mention '%s'", text, needle);
    }
    msgpack_unpacked_destroy(&msg);
    raw_close(&peer);
    mpb_result *r = NULL;
    assert_int_equal(mpb_client_call(client, "pipeline/pre", "ok", 2, 5000, &r), 0);
    assert_value(r, "ok|pre");
    mpb_result_destroy(&r);
}

static void
bad_requests_get_errors_and_serving_goes_on(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 0, 0, NULL);
    mpb_client *client = test_client(s.endpoint);
    expect_reply(s.endpoint, client, "garbage!", 8, 0, 8, "not one msgpack value");
    /* [1, [[7, "ab truncated */
    expect_reply(s.endpoint, client,
                 "\x92\x01\x91\x92\x07\xa5"
                 "ab",
                 8, 0, 8, "not one msgpack value");
    expect_reply(s.endpoint, client, "\x92\x63\x01", 3, 0, 8, "unknown request type 99");
    expect_reply(s.endpoint, client, "\x92\x01\x05", 3, 0, 8, "a CALL frame is");
    /* a call whose id reads but whose payload is an integer: a Protocol result */
    expect_reply(s.endpoint, client, "\x92\x01\x91\x92\x07\x05", 6, 0, 2, "Protocol");
    /* an id alone is still the call's id: a Protocol result for it */
    expect_reply(s.endpoint, client, "\x92\x01\x91\x91\x05", 5, 0, 2, "Protocol");
    /* a NUL in a target would cut the path short: no such servlet */
    expect_reply(s.endpoint, client,
                 "\x92\x01\x91\x94\x04\xc4\x01z\x00\xabpipeline\x00zz", 21, 0, 2,
                 "UnknownServlet");
    /* a call without a readable id: ERROR */
    expect_reply(s.endpoint, client, "\x92\x01\x91\x92\xa1x\x05", 7, 0, 8, "unsigned id");
    expect_reply(s.endpoint, client, "\x92\x03\x01", 3, 1, 8, "one message part");
    expect_reply(s.endpoint, client, "\x91\x03", 2, 0, 8, "a HEALTH request is [3, id]");
    /* over max_message_bytes (4096) but under twice that: an error reply */
    char big[6000];
    memset(big, 'x', sizeof big);
    expect_reply(s.endpoint, client, big, sizeof big, 0, 8, "max_message_bytes");
    /* past twice the limit: ZeroMQ drops the connection; others are served */
    raw_peer peer;
    raw_open(&peer, s.endpoint);
    static char huge[20000];
    zmq_send(peer.socket, huge, sizeof huge, 0);
    char buf[256];
    assert_int_equal(raw_recv(&peer, buf, sizeof buf, 300), -1);
    raw_close(&peer);
    mpb_result *r = NULL;
    assert_int_equal(mpb_client_call(client, NULL, "still", 5, 5000, &r), 0);
    mpb_result_destroy(&r);
    mpb_client_destroy(&client);
    mpb_server_destroy(&s.server);
}

typedef struct stopper {
    mpb_server *server;
} stopper;

static void *
stop_later(void *arg)
{
    usleep(100 * 1000);
    mpb_server_stop(((stopper *)arg)->server);
    return NULL;
}

static void
stop_answers_what_it_took(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 0, 0, "delay_us=50000");
    mpb_client *client = test_client(s.endpoint);
    pthread_t thread;
    stopper st = {s.server};
    pthread_create(&thread, NULL, stop_later, &st);
    /* 40 calls, b takes 50 ms per batch of 16: still running when stop comes */
    index_stream calls = {.n = 40};
    mpb_client_stream_options opts = {.return_exceptions = 1, .window = 40};
    int rc = mpb_client_stream(client, index_next, index_output, &calls, &opts);
    pthread_join(thread, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(calls.outputs, 40);
    assert_int_equal(calls.out_of_order, 0);
    mpb_client_destroy(&client);
    mpb_server_destroy(&s.server);
}

/* Ready means every worker is there: a pool that only serves workers
 * joining from elsewhere is not ready until one has joined. */
static void
ready_once_workers_are_there(void **state)
{
    (void)state;
    char join[128];
    snprintf(join, sizeof join, "ipc:///tmp/mpb-fe-join-%d.ipc", (int)getpid());
    test_pool tp = {.kind = "process", .plugin = "passthrough", .joined_only = 1, .bind = join};
    mpb_servlet *root = test_pool_servlet(&tp);
    mpb_server *server = test_server_over(&root, NULL);
    char endpoint[128];
    char err[256];
    assert_int_equal(mpb_server_serve_zmq(server, test_endpoint(), NULL, endpoint, sizeof endpoint,
                                          err, sizeof err),
                     0);
    mpb_client *client = test_client(endpoint);
    mpb_health health;
    assert_int_equal(mpb_client_health(client, 5000, &health), 0);
    assert_true(health.live);
    assert_false(health.ready);
    assert_int_equal(health.workers, 0);

    char *dir = mpb__executable_dir();
    char *exe = mpb_asprintf("%s/../bin/mpb-worker", dir);
    char *connect = mpb_asprintf("--connect=%s", join);
    char *plugin = mpb_asprintf("--plugin=%s/../lib/mpb_passthrough.so", dir);
    char *parent = mpb_asprintf("--parent-pid=%d", (int)getpid());
    char *argv[] = {exe, connect, "--name=joined", plugin, parent, NULL};
    pid_t pid;
    int pidfd;
    assert_int_equal(mpb__spawn(exe, argv, &pid, &pidfd, err, sizeof err), 0);
    for (int i = 0; i < 500 && !health.ready; i++) {
        usleep(10000);
        assert_int_equal(mpb_client_health(client, 5000, &health), 0);
    }
    assert_true(health.ready);
    assert_int_equal(health.workers, 1);
    mpb_client_destroy(&client);
    mpb_server_destroy(&server); /* the joined worker leaves on SHUTDOWN */
    waitpid(pid, NULL, 0);
    if (pidfd >= 0) {
        close(pidfd);
    }
    free(parent);
    free(plugin);
    free(connect);
    free(exe);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(calls_through_a_tree),
        cmocka_unit_test(a_pipelined_stream_keeps_order),
        cmocka_unit_test(limits_answer_overloaded),
        cmocka_unit_test(refusals_go_out_in_bounded_messages),
        cmocka_unit_test(bad_requests_get_errors_and_serving_goes_on),
        cmocka_unit_test(stop_answers_what_it_took),
        cmocka_unit_test(ready_once_workers_are_there),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
