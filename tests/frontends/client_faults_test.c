/*
 * The C client against a server that misbehaves: a scripted ROUTER socket
 * that answers late, never, or with a malformed result, and a signal that
 * interrupts the client's wait. Every case must end with an answer or a
 * clear status in time, never a hang or a lost reply.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "core/util.h"
#include "frontend_helpers.h"
#include "frontends/client_wire.h"

typedef enum script_kind {
    ANSWER,    /* after delay_ms, the value "ok" for every call */
    SILENT,    /* takes the calls, never answers */
    MALFORMED, /* [2, [[id, 0, 5]]]: a value that is no value */
} script_kind;

typedef struct scripted_server {
    const char *endpoint;
    script_kind script;
    int delay_ms;
    atomic_int calls; /* calls received */
    atomic_int stop;
    pthread_t thread;
    void *context;
    void *socket;
} scripted_server;

/* Answers every call of one CALL frame as the script says. */
static void
answer_frame(scripted_server *s, zmq_msg_t *identity, const void *data, size_t len)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object root;
    assert_int_equal(msgpack_unpack(data, len, NULL, &zone, &root), MSGPACK_UNPACK_SUCCESS);
    int64_t n = mpb__client_call_count(&root);
    assert_true(n > 0);
    atomic_fetch_add(&s->calls, (int)n);
    if (s->script == SILENT) {
        msgpack_zone_destroy(&zone);
        return;
    }
    usleep((useconds_t)s->delay_ms * 1000);
    mpb__wire_buf out;
    mpb__wire_buf_init(&out);
    mpb__client_pack_results_begin(&out, (uint32_t)n);
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        mpb__client_call call;
        int id_known = 0;
        assert_int_equal(mpb__client_call_at(&root, i, &call, &id_known), 0);
        if (s->script == MALFORMED) {
            msgpack_pack_array(&out.pk, 3);
            msgpack_pack_uint64(&out.pk, call.id);
            msgpack_pack_uint8(&out.pk, 0);
            msgpack_pack_uint8(&out.pk, 5);
        } else {
            mpb_result *ok = mpb_result_new_value("ok", 2);
            mpb__client_pack_result(&out, call.id, ok);
            mpb_result_destroy(&ok);
        }
    }
    zmq_msg_send(identity, s->socket, ZMQ_SNDMORE);
    zmq_send(s->socket, out.sbuf.data, out.sbuf.size, 0);
    mpb__wire_buf_free(&out);
    msgpack_zone_destroy(&zone);
}

static void *
serve(void *arg)
{
    scripted_server *s = arg;
    while (!atomic_load(&s->stop)) {
        zmq_pollitem_t item = {.socket = s->socket, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 20) <= 0) {
            continue;
        }
        zmq_msg_t identity, body;
        zmq_msg_init(&identity);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&identity, s->socket, 0) >= 0 && zmq_msg_recv(&body, s->socket, 0) >= 0) {
            answer_frame(s, &identity, zmq_msg_data(&body), zmq_msg_size(&body));
        }
        zmq_msg_close(&identity);
        zmq_msg_close(&body);
    }
    return NULL;
}

static void
server_start(scripted_server *s, script_kind script, int delay_ms)
{
    s->endpoint = test_endpoint();
    s->script = script;
    s->delay_ms = delay_ms;
    atomic_init(&s->calls, 0);
    atomic_init(&s->stop, 0);
    s->context = zmq_ctx_new();
    s->socket = zmq_socket(s->context, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(s->socket, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(s->socket, s->endpoint), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void
server_stop(scripted_server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    zmq_close(s->socket);
    zmq_ctx_term(s->context);
    unlink(s->endpoint + strlen("ipc://"));
}

static void
a_failed_connect_leaves_the_client_usable(void **state)
{
    (void)state;
    scripted_server s;
    server_start(&s, ANSWER, 0);
    mpb_client *client = mpb_client_new();
    char err[256];
    mpb_result *r = NULL;
    assert_int_equal(mpb_client_call(client, NULL, "x", 1, 500, &r), MPB_EINVAL);
    assert_int_not_equal(mpb_client_connect(client, "tcp://", err, sizeof err), 0);
    /* not connected: calls are refused at once rather than hang in send */
    assert_int_equal(mpb_client_call(client, NULL, "x", 1, 500, &r), MPB_EINVAL);
    assert_null(r);
    assert_int_equal(mpb_client_connect(client, s.endpoint, err, sizeof err), 0);
    assert_int_equal(mpb_client_call(client, NULL, "x", 1, 5000, &r), 0);
    size_t len;
    const char *value = mpb_result_value(r, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(value, "ok", 2);
    mpb_result_destroy(&r);
    mpb_client_destroy(&client);
    server_stop(&s);
}

static atomic_int signals_seen;

static void
on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&signals_seen, 1);
}

typedef struct signaller {
    pthread_t target;
    int after_ms;
} signaller;

static void *
signal_later(void *arg)
{
    signaller *g = arg;
    usleep((useconds_t)g->after_ms * 1000);
    pthread_kill(g->target, SIGUSR1);
    return NULL;
}

static void
a_signal_does_not_fail_a_call(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&signals_seen, 0);
    scripted_server s;
    server_start(&s, ANSWER, 500);
    mpb_client *client = test_client(s.endpoint);
    signaller g = {.target = pthread_self(), .after_ms = 100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, signal_later, &g), 0);
    mpb_result *r = NULL;
    /* the server answers after 500 ms; the signal comes at 100 ms */
    assert_int_equal(mpb_client_call(client, NULL, "x", 1, 5000, &r), 0);
    assert_non_null(r);
    assert_false(mpb_result_is_error(r));
    mpb_result_destroy(&r);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&signals_seen), 1);
    mpb_client_destroy(&client);
    server_stop(&s);
    sigaction(SIGUSR1, &old, NULL);
}

static void
a_malformed_result_answers_its_call_at_once(void **state)
{
    (void)state;
    scripted_server s;
    server_start(&s, MALFORMED, 0);
    mpb_client *client = test_client(s.endpoint);
    mpb_result *r = NULL;
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_client_call(client, NULL, "x", 1, 10000, &r), MPB_EITEM);
    int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
    assert_true(elapsed_ms < 5000); /* not at the call's timeout */
    const mpb_item_error *e = mpb_result_error(r);
    assert_non_null(e);
    assert_string_equal(e->type, MPB_ERROR_PROTOCOL);
    assert_non_null(strstr(e->message, "malformed"));
    mpb_result_destroy(&r);
    mpb_client_destroy(&client);
    server_stop(&s);
}

/* A source with one input, then nothing: it says it would block on a
 * pipe nobody writes to. */
typedef struct stalled_source {
    int given;
    int pipe[2];
    int outputs;
} stalled_source;

static int
stalled_ready(void *ctx, int *wait_fd)
{
    stalled_source *src = ctx;
    *wait_fd = src->pipe[0];
    return src->given == 0;
}

static int
stalled_next(void *ctx, const void **data, size_t *len)
{
    stalled_source *src = ctx;
    src->given++;
    *data = "x";
    *len = 1;
    return 1;
}

static int
count_output(void *ctx, uint64_t index, const mpb_result *r)
{
    (void)index;
    (void)r;
    ((stalled_source *)ctx)->outputs++;
    return 0;
}

static void
a_stream_waiting_on_its_source_still_times_out_on_replies(void **state)
{
    (void)state;
    scripted_server s;
    server_start(&s, SILENT, 0);
    mpb_client *client = test_client(s.endpoint);
    stalled_source src = {0};
    assert_int_equal(pipe(src.pipe), 0);
    mpb_client_stream_options opts = {
        .idle_timeout_ms = 300, .input_ready = stalled_ready, .return_exceptions = 1};
    int64_t start = mpb_now_ns();
    int rc = mpb_client_stream(client, stalled_next, count_output, &src, &opts);
    int64_t elapsed_ms = (mpb_now_ns() - start) / 1000000;
    print_message("the stream gave up after %lld ms\n", (long long)elapsed_ms);
    assert_int_equal(rc, MPB_ETIMEDOUT);
    assert_true(elapsed_ms >= 300);
    assert_true(elapsed_ms < 3000); /* it waited forever before */
    assert_int_equal(src.given, 1);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(src.outputs, 0);
    close(src.pipe[0]);
    close(src.pipe[1]);
    mpb_client_destroy(&client);
    server_stop(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_failed_connect_leaves_the_client_usable),
        cmocka_unit_test(a_signal_does_not_fail_a_call),
        cmocka_unit_test(a_malformed_result_answers_its_call_at_once),
        cmocka_unit_test(a_stream_waiting_on_its_source_still_times_out_on_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
