/*
 * mpb-worker against a coordinator played by this test: a real process, a
 * real ROUTER socket, frames built with the codec. Checks what the worker
 * says and how it treats garbage, shutdown and silence.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "support.h"

#include "core/os/process.h"
#include "core/wire.h"

typedef struct fake {
    void *ctx;
    void *router;
    char endpoint[128];
    pid_t pid;
    int pidfd;
    unsigned char rid[256];
    size_t rid_len;
    msgpack_zone zone;
    mpb__wire_buf buf;
    mpb__frame frame;
    zmq_msg_t msg;
} fake;

static void
fake_start(fake *f, const char *const *extra)
{
    memset(f, 0, sizeof *f);
    f->ctx = zmq_ctx_new();
    f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
    int timeout = 10000;
    zmq_setsockopt(f->router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    snprintf(f->endpoint, sizeof f->endpoint, "ipc:///tmp/mpb-worker-test-%d.ipc", (int)getpid());
    assert_int_equal(zmq_bind(f->router, f->endpoint), 0);
    msgpack_zone_init(&f->zone, 1024);
    mpb__wire_buf_init(&f->buf);
    zmq_msg_init(&f->msg);

    char *dir = mpb__executable_dir();
    char *exe = mpb_asprintf("%s/../bin/mpb-worker", dir);
    char *connect = mpb_asprintf("--connect=%s", f->endpoint);
    char *parent = mpb_asprintf("--parent-pid=%d", (int)getpid()); /* dies with the test */
    /* --launched: this test plays a coordinator that gives every setting */
    const char *argv[32] = {exe, connect, "--name=w-0", parent, "--launched"};
    size_t n = 5;
    for (size_t i = 0; extra[i] != NULL; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    char err[256];
    assert_int_equal(mpb__spawn(exe, (char *const *)argv, &f->pid, &f->pidfd, err, sizeof err), 0);
    free(parent);
    free(connect);
    free(exe);
    free(dir);
}

/* Receives one message, decodes its first frame into f->frame. */
static int
fake_recv(fake *f)
{
    zmq_msg_t rid;
    zmq_msg_init(&rid);
    if (zmq_msg_recv(&rid, f->router, 0) < 0) {
        zmq_msg_close(&rid);
        return -1;
    }
    f->rid_len = zmq_msg_size(&rid);
    memcpy(f->rid, zmq_msg_data(&rid), f->rid_len);
    zmq_msg_close(&rid);
    assert_true(zmq_msg_recv(&f->msg, f->router, 0) >= 0);
    int more = zmq_msg_more(&f->msg);
    assert_int_equal(mpb__wire_decode(&f->zone, zmq_msg_data(&f->msg), zmq_msg_size(&f->msg),
                                      &f->frame, NULL, 0),
                     0);
    return more;
}

/* Reads the next part of the message fake_recv began into f->frame; 1
 * when more parts follow it. */
static int
fake_recv_part(fake *f)
{
    assert_true(zmq_msg_recv(&f->msg, f->router, 0) >= 0);
    int more = zmq_msg_more(&f->msg);
    assert_int_equal(mpb__wire_decode(&f->zone, zmq_msg_data(&f->msg), zmq_msg_size(&f->msg),
                                      &f->frame, NULL, 0),
                     0);
    return more;
}

/* Receives one message of results: a TELEMETRY frame per batch (copied to
 * tel, at most max), then one RESULTS frame (left in f->frame) holding
 * exactly those batches' items. Returns the number of batches. */
static size_t
fake_recv_results(fake *f, mpb_batch_telemetry *tel, size_t max)
{
    int more = fake_recv(f);
    size_t n = 0;
    uint64_t batched = 0;
    while (f->frame.type == MPB_FRAME_TELEMETRY) {
        assert_true(more && n < max);
        batched += f->frame.u.telemetry.size;
        tel[n++] = f->frame.u.telemetry;
        more = fake_recv_part(f);
    }
    assert_int_equal(more, 0);
    assert_int_equal(f->frame.type, MPB_FRAME_RESULTS);
    if (n > 0) {
        assert_int_equal(batched, f->frame.u.list.count);
    }
    return n;
}

static void
fake_send_raw(fake *f, const void *data, size_t len)
{
    assert_true(zmq_send(f->router, f->rid, f->rid_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(f->router, data, len, 0) >= 0);
}

static void
fake_send(fake *f)
{
    fake_send_raw(f, f->buf.sbuf.data, f->buf.sbuf.size);
    mpb__wire_buf_reset(&f->buf);
}

static int
fake_wait_exit(fake *f, int timeout_ms)
{
    int status = -1;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (mpb__reap(f->pid, &status) == 1) {
            return status;
        }
        usleep(10000);
    }
    kill(f->pid, SIGKILL);
    waitpid(f->pid, &status, 0);
    fail_msg("worker did not exit within %d ms", timeout_ms);
    return status;
}

static void
fake_stop(fake *f)
{
    if (f->pidfd >= 0) {
        close(f->pidfd);
    }
    zmq_msg_close(&f->msg);
    zmq_close(f->router);
    zmq_ctx_term(f->ctx);
    unlink(f->endpoint + strlen("ipc://"));
    msgpack_zone_destroy(&f->zone);
    mpb__wire_buf_free(&f->buf);
}

/* Receives results until `expect` came, passing each result and each
 * batch's telemetry (when on_batch is not NULL) to the callbacks. */
static void
fake_collect(fake *f, int expect, void (*on_result)(const mpb__wire_result *, void *),
             void (*on_batch)(const mpb_batch_telemetry *, void *), void *ctx)
{
    int answered = 0;
    while (answered < expect) {
        mpb_batch_telemetry tel[64];
        size_t n_tel = fake_recv_results(f, tel, 64);
        for (size_t b = 0; on_batch != NULL && b < n_tel; b++) {
            on_batch(&tel[b], ctx);
        }
        for (uint32_t i = 0; i < f->frame.u.list.count; i++) {
            mpb__wire_result r;
            assert_int_equal(mpb__wire_result_at(&f->frame, i, &r), 0);
            on_result(&r, ctx);
            answered++;
        }
    }
}

/* SHUTDOWN, expect BYE and a clean exit, release everything. */
static void
fake_shutdown(fake *f)
{
    mpb__wire_pack_signal(&f->buf, MPB_FRAME_SHUTDOWN);
    fake_send(f);
    assert_int_equal(fake_recv(f), 0);
    assert_int_equal(f->frame.type, MPB_FRAME_BYE);
    int status = fake_wait_exit(f, 5000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fake_stop(f);
}

static void
ready_describes_the_worker(void **state)
{
    fake f;
    const char *extra[] = {"--plugin=passthrough", "--cpus=0",      "--batch-size=8",
                           "--batch-wait-us=300",  "--capacity=24", NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    assert_int_equal(f.frame.type, MPB_FRAME_READY);
    mpb__ready *r = &f.frame.u.ready;
    assert_int_equal(r->version, MPB_PROTOCOL_VERSION);
    assert_int_equal(r->pid, f.pid);
    assert_int_equal(r->capacity, 24);
    assert_int_equal(r->batch_size, 8);
    assert_int_equal(r->batch_wait_us, 300);
    assert_int_equal(r->name.len, 3);
    assert_memory_equal(r->name.ptr, "w-0", 3);
    assert_int_equal(r->cpus.len, 1);
    assert_memory_equal(r->cpus.ptr, "0", 1);
    fake_shutdown(&f);
}

static void
check_good_and_malformed(const mpb__wire_result *r, void *ctx)
{
    if (r->id == 5) {
        assert_false(r->is_error);
        assert_memory_equal(r->data, "hi", 2);
    } else {
        assert_int_equal(r->id, 6);
        assert_true(r->is_error);
        assert_memory_equal(r->type.ptr, "Protocol", 8);
    }
}

static void
garbage_gets_an_error_frame_and_service_goes_on(void **state)
{
    fake f;
    const char *extra[] = {"--plugin=passthrough", "--batch-size=4", "--batch-wait-us=0", NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    fake_send_raw(&f, "\xc1\xc1\xc1", 3);
    assert_int_equal(fake_recv(&f), 0);
    assert_int_equal(f.frame.type, MPB_FRAME_ERROR);
    assert_int_equal(f.frame.u.error.code, MPB_EPROTO);
    /* An ITEMS frame with one good entry and one whose payload is a number. */
    const char items[] = "\x92\x02\x92\x93\x05\x00\xc4\x02hi\x93\x06\x00\x07";
    fake_send_raw(&f, items, sizeof items - 1);
    fake_collect(&f, 2, check_good_and_malformed, NULL, NULL);
    fake_shutdown(&f);
}

static void
batches_follow_the_limits(void **state)
{
    fake f;
    const char *extra[] = {"--plugin=passthrough", "--batch-size=4", "--batch-wait-us=100000",
                           NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    /* 10 items at once: two full batches of 4, then 2 items after the wait. */
    mpb__wire_pack_items_begin(&f.buf, 10);
    for (uint64_t i = 0; i < 10; i++) {
        mpb__wire_pack_item(&f.buf, i, 0, &i, sizeof i);
    }
    fake_send(&f);
    /* Each message: one TELEMETRY frame per batch whose results it carries,
     * then their results in one RESULTS frame (results of a batch wait for
     * the next one's while more items are queued). */
    uint32_t sizes[3];
    mpb_batch_close reasons[3];
    uint64_t expect_id = 0;
    size_t b = 0;
    while (b < 3) {
        mpb_batch_telemetry tel[3];
        size_t n_tel = fake_recv_results(&f, tel, 3 - b);
        assert_true(n_tel > 0);
        for (size_t i = 0; i < n_tel; i++, b++) {
            sizes[b] = tel[i].size;
            reasons[b] = tel[i].closed_by;
            if (b == 2) {
                assert_true(tel[i].first_wait_us >= 100000);
            }
        }
        for (uint32_t i = 0; i < f.frame.u.list.count; i++) {
            mpb__wire_result r;
            assert_int_equal(mpb__wire_result_at(&f.frame, i, &r), 0);
            assert_int_equal(r.id, expect_id);
            assert_memory_equal(r.data, &expect_id, sizeof expect_id);
            expect_id++;
        }
    }
    assert_int_equal(expect_id, 10);
    assert_int_equal(sizes[0], 4);
    assert_int_equal(sizes[1], 4);
    assert_int_equal(sizes[2], 2);
    assert_int_equal(reasons[0], MPB_BATCH_CLOSED_FULL);
    assert_int_equal(reasons[1], MPB_BATCH_CLOSED_FULL);
    assert_int_equal(reasons[2], MPB_BATCH_CLOSED_TIMER);
    fake_shutdown(&f);
}

static void
check_late_and_fine(const mpb__wire_result *r, void *ctx)
{
    if (r->id == 1) {
        assert_true(r->is_error);
        assert_memory_equal(r->type.ptr, "Timeout", 7);
    } else {
        assert_false(r->is_error);
    }
}

static void
only_fine_computed(const mpb_batch_telemetry *t, void *ctx)
{
    assert_int_equal(t->size, 1); /* only "fine" reached the plugin */
}

static void
item_past_its_budget_is_not_computed(void **state)
{
    fake f;
    const char *extra[] = {"--plugin=passthrough", "--batch-size=4", "--batch-wait-us=20000", NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    /* Item 1 has 1 us left when sent: by the time its batch closes (20 ms
     * wait) it is past due and answered Timeout; item 2 has no deadline. */
    mpb__wire_pack_items_begin(&f.buf, 2);
    mpb__wire_pack_item(&f.buf, 1, 1, "late", 4);
    mpb__wire_pack_item(&f.buf, 2, 0, "fine", 4);
    fake_send(&f);
    fake_collect(&f, 2, check_late_and_fine, only_fine_computed, NULL);
    fake_shutdown(&f);
}

static void
init_failure_is_reported_before_exit(void **state)
{
    fake f;
    const char *extra[] = {"--plugin=fail", "--option=init_fail=1", NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    assert_int_equal(f.frame.type, MPB_FRAME_ERROR);
    assert_int_equal(f.frame.u.error.code, MPB_EPLUGIN);
    int status = fake_wait_exit(&f, 5000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    fake_stop(&f);
}

static void
silent_coordinator_makes_the_worker_leave(void **state)
{
    fake f;
    const char *extra[] = {"--plugin=passthrough", "--coordinator-timeout-ms=300", NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    int status = fake_wait_exit(&f, 5000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    fake_stop(&f);
}

static void
one_batch_per_message(const mpb_batch_telemetry *t, void *ctx)
{
    (void)t;
    (*(int *)ctx)++;
}

static void
expect_a_value(const mpb__wire_result *r, void *ctx)
{
    (void)ctx;
    assert_false(r->is_error);
}

static void
slow_batches_send_their_results_at_once(void **state)
{
    /* results wait for the next batch's only while calls are quick: held
     * across a 150 ms call, the coordinator would hear nothing for two
     * calls and take a healthy worker for a hung one */
    fake f;
    const char *extra[] = {"--plugin=sleep",
                           "--option=batch_cost_us=150000",
                           "--option=item_cost_us=0",
                           "--batch-size=1",
                           "--batch-wait-us=0",
                           NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    mpb__wire_pack_items_begin(&f.buf, 3);
    for (uint64_t i = 0; i < 3; i++) {
        mpb__wire_pack_item(&f.buf, i, 0, &i, sizeof i);
    }
    fake_send(&f);
    for (int m = 0; m < 3; m++) {
        mpb_batch_telemetry tel[3];
        assert_int_equal(fake_recv_results(&f, tel, 3), 1); /* one batch per message */
        assert_int_equal(f.frame.u.list.count, 1);
    }
    fake_shutdown(&f);
}

static void
a_slow_init_is_not_coordinator_silence(void **state)
{
    /* init takes 600 ms, twice the coordinator timeout: the silence counts
     * from READY, so the item sent right after it is served */
    fake f;
    const char *extra[] = {"--plugin=fail", "--option=init_ms=600",
                           "--coordinator-timeout-ms=300", NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    assert_int_equal(f.frame.type, MPB_FRAME_READY);
    mpb__wire_pack_items_begin(&f.buf, 1);
    mpb__wire_pack_item(&f.buf, 1, 0, "x", 1);
    fake_send(&f);
    int batches = 0;
    fake_collect(&f, 1, expect_a_value, one_batch_per_message, &batches);
    assert_int_equal(batches, 1);
    fake_shutdown(&f);
}

static void
check_decode_error(const mpb__wire_result *r, void *ctx)
{
    (void)ctx;
    if (r->id == 1) {
        assert_true(r->is_error);
        assert_int_equal(r->type.len, strlen("DecodeError"));
        assert_memory_equal(r->type.ptr, "DecodeError", r->type.len);
    } else {
        assert_false(r->is_error);
    }
}

static void
preprocess_may_fail_its_item_with_batch_fail(void **state)
{
    fake f;
    const char *extra[] = {"--plugin=fail", "--option=preprocess_fail_prefix=bad",
                           "--batch-wait-us=0", NULL};
    fake_start(&f, extra);
    assert_int_equal(fake_recv(&f), 0);
    /* item 3's budget is past what int64 nanoseconds hold: no deadline */
    mpb__wire_pack_items_begin(&f.buf, 3);
    mpb__wire_pack_item(&f.buf, 1, 0, "bad", 3);
    mpb__wire_pack_item(&f.buf, 2, 0, "good", 4);
    mpb__wire_pack_item(&f.buf, 3, UINT64_MAX, "huge budget", 11);
    fake_send(&f);
    fake_collect(&f, 3, check_decode_error, NULL, NULL);
    fake_shutdown(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ready_describes_the_worker),
        cmocka_unit_test(garbage_gets_an_error_frame_and_service_goes_on),
        cmocka_unit_test(batches_follow_the_limits),
        cmocka_unit_test(item_past_its_budget_is_not_computed),
        cmocka_unit_test(init_failure_is_reported_before_exit),
        cmocka_unit_test(silent_coordinator_makes_the_worker_leave),
        cmocka_unit_test(slow_batches_send_their_results_at_once),
        cmocka_unit_test(a_slow_init_is_not_coordinator_silence),
        cmocka_unit_test(preprocess_may_fail_its_item_with_batch_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
