/*
 * The server API's promises under concurrency and odd callers: stop from
 * two threads, callers blocked at capacity, callbacks that submit again,
 * streams whose input fails or trickles.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "support.h"

static void *
stop_server(void *arg)
{
    mpb_server_stop(arg);
    return NULL;
}

static void
stop_from_two_threads_returns_in_both(void **state)
{
    test_pool tp = {.kind = "process", .plugin = "passthrough", .workers = 1};
    mpb_server *server = test_server_start(&tp);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, stop_server, server), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    }
    assert_false(mpb_server_is_running(server));
    mpb_server_destroy(&server);
}

typedef struct load {
    mpb_server *server;
    atomic_uint done;
    atomic_uint refused;
} load;

static void
count_done(void *ctx, mpb_result *result)
{
    load *l = ctx;
    if (!mpb_result_is_error(result)) {
        atomic_fetch_add(&l->done, 1);
    }
    mpb_result_destroy(&result);
}

static void *
submit_many(void *arg)
{
    load *l = arg;
    for (int i = 0; i < 300; i++) {
        if (mpb_server_submit(l->server, "x", 1, -1, count_done, l) != 0) {
            atomic_fetch_add(&l->refused, 1);
        }
    }
    return NULL;
}

static void
callers_blocked_at_capacity_all_get_through(void **state)
{
    test_pool tp = {
        .kind = "thread", .plugin = "passthrough", .workers = 1, .batch_size = 1, .capacity = 1};
    load l = {.server = test_server_start(&tp)};
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, submit_many, &l), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    }
    mpb_server_stop(l.server);
    assert_int_equal(atomic_load(&l.refused), 0);
    assert_int_equal(atomic_load(&l.done), 1200);
    mpb_server_destroy(&l.server);
}

typedef struct chain {
    mpb_server *server;
    atomic_int left;
    atomic_int failures;
} chain;

static void
resubmit(void *ctx, mpb_result *result)
{
    chain *c = ctx;
    mpb_result_destroy(&result);
    if (atomic_fetch_sub(&c->left, 1) > 1) {
        /* The server is at capacity (1) while this callback runs: our own
         * item's room must already be free, so timeout 0 succeeds. */
        if (mpb_server_submit(c->server, "again", 5, 0, resubmit, c) != 0) {
            atomic_fetch_add(&c->failures, 1);
        }
    }
}

static void
done_callback_may_submit_again_at_capacity(void **state)
{
    test_pool tp = {.kind = "process", .plugin = "passthrough", .workers = 1, .capacity = 1};
    chain c = {.server = test_server_start(&tp), .left = 50};
    assert_int_equal(mpb_server_submit(c.server, "first", 5, 0, resubmit, &c), 0);
    for (int i = 0; i < 1000 && atomic_load(&c.left) > 0; i++) {
        usleep(10000);
    }
    assert_int_equal(atomic_load(&c.left), 0);
    assert_int_equal(atomic_load(&c.failures), 0);
    mpb_server_destroy(&c.server);
}

typedef struct failing_input {
    index_stream s;
    uint64_t fail_at;
} failing_input;

static int
next_until_failure(void *ctx, const void **data, size_t *len)
{
    failing_input *f = ctx;
    if (f->s.next == f->fail_at) {
        return MPB_EIO;
    }
    return index_next(&f->s, data, len);
}

static void
input_failure_still_delivers_what_was_computed(void **state)
{
    test_pool tp = {.kind = "process", .plugin = "passthrough", .workers = 2, .batch_size = 8};
    mpb_server *server = test_server_start(&tp);
    failing_input f = {.s = {.n = 1000}, .fail_at = 500};
    assert_int_equal(mpb_server_stream(server, next_until_failure, index_output, &f.s, NULL),
                     MPB_EIO);
    assert_int_equal(f.s.outputs, 500); /* every item read before the failure */
    assert_int_equal(f.s.out_of_order, 0);
    assert_int_equal(f.s.wrong_value, 0);
    mpb_server_destroy(&server);
}

typedef struct trickle {
    mpb_server *server;
    int calls;
    int first_was_submitted;
    char item[8];
} trickle;

static int
trickle_next(void *ctx, const void **data, size_t *len)
{
    trickle *t = ctx;
    if (t->calls == 2) {
        return 0;
    }
    if (t->calls == 1) {
        /* A slow source: before handing over the second item, check that the
         * first one was already submitted (it gets answered meanwhile). */
        mpb_server_stats stats;
        for (int i = 0; i < 300; i++) {
            mpb_server_stats_get(t->server, &stats);
            if (stats.completed >= 1) {
                t->first_was_submitted = 1;
                break;
            }
            usleep(10000);
        }
    }
    snprintf(t->item, sizeof t->item, "item-%d", t->calls++);
    *data = t->item;
    *len = strlen(t->item);
    return 1;
}

static int
ignore_output(void *ctx, uint64_t index, const mpb_result *result)
{
    return 0;
}

static void
slow_source_is_not_held_back(void **state)
{
    test_pool tp = {.kind = "process", .plugin = "passthrough", .workers = 1, .batch_size = 1};
    trickle t = {.server = test_server_start(&tp)};
    assert_int_equal(mpb_server_stream(t.server, trickle_next, ignore_output, &t, NULL), 0);
    assert_true(t.first_was_submitted);
    mpb_server_destroy(&t.server);
}

static void
a_root_named_server_is_refused(void **state)
{
    (void)state;
    /* tracking keeps "server/..." for the end-to-end figures */
    test_pool tp = {.kind = "thread", .plugin = "passthrough", .name = "server"};
    mpb_servlet *root = test_pool_servlet(&tp);
    mpb_server *server = mpb_server_new(&root, NULL);
    char err[256] = "";
    assert_int_equal(mpb_server_start(server, err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "cannot be named 'server'"));
    mpb_server_destroy(&server);
}

/* A batch in, a batch out: results in the items' order, errors in place,
 * more items than the server's capacity, deadlines, a stopped server. */
static void
call_many_answers_every_item_in_place(void **state)
{
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 16,
                    .capacity = 64,
                    .options = {"fail_prefix=bad"}};
    mpb_server *server = test_server_start(&tp);
    enum { N = 1000 };
    char(*texts)[16] = mpb_calloc(N, 16);
    const void **inputs = mpb_calloc(N, sizeof(void *));
    size_t *lens = mpb_calloc(N, sizeof(size_t));
    mpb_result **out = mpb_calloc(N, sizeof(mpb_result *));
    for (size_t i = 0; i < N; i++) {
        lens[i] = (size_t)snprintf(texts[i], 16, "%s%zu", i % 9 == 4 ? "bad" : "ok", i);
        inputs[i] = texts[i];
    }
    assert_int_equal(mpb_server_call_many(server, inputs, lens, N, 0, out), 0);
    for (size_t i = 0; i < N; i++) {
        if (i % 9 == 4) {
            assert_string_equal(mpb_result_error(out[i])->type, "ValueError");
        } else {
            size_t len;
            const char *value = mpb_result_value(out[i], &len);
            assert_int_equal(len, lens[i]);
            assert_memory_equal(value, texts[i], len);
        }
        mpb_result_destroy(&out[i]);
    }
    assert_int_equal(mpb_server_call_many(server, NULL, NULL, 0, 0, NULL), 0);
    mpb_server_stop(server);
    assert_int_equal(mpb_server_call_many(server, inputs, lens, 3, 0, out), MPB_ECLOSED);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(mpb_result_error(out[i])->type, "Unavailable");
        mpb_result_destroy(&out[i]);
    }
    mpb_server_destroy(&server);

    /* a deadline for each item */
    test_pool slow = {
        .kind = "thread", .plugin = "sleep", .batch_size = 1, .options = {"batch_cost_us=300000"}};
    server = test_server_start(&slow);
    assert_int_equal(mpb_server_call_many(server, inputs, lens, 2, 50, out), 0);
    assert_string_equal(mpb_result_error(out[0])->type, MPB_ERROR_TIMEOUT);
    assert_string_equal(mpb_result_error(out[1])->type, MPB_ERROR_TIMEOUT);
    mpb_result_destroy(&out[0]);
    mpb_result_destroy(&out[1]);
    mpb_server_destroy(&server);
    free(out);
    free(lens);
    free(inputs);
    free(texts);
}

typedef struct many_seen {
    atomic_uint calls;
    atomic_uint wrong;
} many_seen;

static void
count_many(void *ctx, mpb_result *result)
{
    /* ctx is the item's text: its value must be that text */
    many_seen *seen = *(many_seen **)ctx;
    const char *text = (const char *)ctx + sizeof(many_seen *);
    size_t len;
    const void *value = mpb_result_value(result, &len);
    if (mpb_result_is_error(result) || len != strlen(text) || memcmp(value, text, len) != 0) {
        atomic_fetch_add(&seen->wrong, 1);
    }
    atomic_fetch_add(&seen->calls, 1);
    mpb_result_destroy(&result);
}

/* submit_many: each item's done runs once, with its own ctx; at capacity
 * with no wait it takes what fits and says how many. */
static void
submit_many_calls_done_once_per_item(void **state)
{
    (void)state;
    test_pool tp = {.kind = "process", .plugin = "passthrough", .workers = 2, .capacity = 100};
    mpb_server *server = test_server_start(&tp);
    enum { N = 1000 };
    many_seen seen = {0};
    typedef struct {
        many_seen *seen;
        char text[16];
    } item;
    item *items = mpb_calloc(N, sizeof *items);
    const void **inputs = mpb_calloc(N, sizeof(void *));
    size_t *lens = mpb_calloc(N, sizeof(size_t));
    void **ctxs = mpb_calloc(N, sizeof(void *));
    for (size_t i = 0; i < N; i++) {
        items[i].seen = &seen;
        lens[i] = (size_t)snprintf(items[i].text, 16, "item %zu", i);
        inputs[i] = items[i].text;
        ctxs[i] = &items[i];
    }
    size_t submitted = 0;
    assert_int_equal(
        mpb_server_submit_many(server, inputs, lens, N, -1, count_many, ctxs, &submitted), 0);
    assert_int_equal(submitted, N);
    while (atomic_load(&seen.calls) < N) {
        usleep(1000);
    }
    assert_int_equal(atomic_load(&seen.wrong), 0);
    /* at most 100 in flight and no waiting: the rest are refused */
    assert_int_equal(
        mpb_server_submit_many(server, inputs, lens, N, 0, count_many, ctxs, &submitted),
        MPB_EAGAIN);
    assert_true(submitted >= 100 && submitted < N);
    while (atomic_load(&seen.calls) < N + submitted) {
        usleep(1000);
    }
    usleep(50000); /* no late calls for the refused ones */
    assert_int_equal(atomic_load(&seen.calls), N + submitted);
    assert_int_equal(mpb_server_submit_many(server, inputs, lens, N, -1, NULL, ctxs, &submitted),
                     MPB_EINVAL);
    assert_int_equal(submitted, 0);
    mpb_server_destroy(&server);
    free(items);
    free(inputs);
    free(lens);
    free(ctxs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stop_from_two_threads_returns_in_both),
        cmocka_unit_test(callers_blocked_at_capacity_all_get_through),
        cmocka_unit_test(done_callback_may_submit_again_at_capacity),
        cmocka_unit_test(input_failure_still_delivers_what_was_computed),
        cmocka_unit_test(slow_source_is_not_held_back),
        cmocka_unit_test(a_root_named_server_is_refused),
        cmocka_unit_test(call_many_answers_every_item_in_place),
        cmocka_unit_test(submit_many_calls_done_once_per_item),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
