/*
 * EnsembleServlet: every member gets the item; the result is an array in
 * member order; the first error wins unless errors stay in place; members
 * that have not started withdraw an item whose result is already known.
 */
#include <msgpack.h>

#include "tree_helpers.h"

static mpb_server *
start_ensemble(mpb_servlet **members, size_t n, int in_place, path_counts *counts)
{
    mpb_ensemble_options eo;
    mpb_ensemble_options_init(&eo);
    eo.errors_in_place = in_place;
    mpb_servlet *ens = mpb_ensemble_servlet_new(members, n, &eo);
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.on_batch = counts ? count_batch : NULL;
    opts.on_batch_ctx = counts;
    return test_server_over(&ens, &opts);
}

static void
assert_bin(const msgpack_object *o, const char *expect)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(o->via.bin.size, strlen(expect));
    assert_memory_equal(o->via.bin.ptr, expect, o->via.bin.size);
}

static void
test_members_answer_in_member_order(void **state)
{
    (void)state;
    /* b is slowest and answers last, yet stays in the middle */
    mpb_servlet *members[3] = {tag_pool("process", "a", 1, NULL),
                               tag_pool("thread", "b", 1, "delay_us=2000"),
                               tag_pool("process", "c", 2, NULL)};
    mpb_server *server = start_ensemble(members, 3, 0, NULL);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "x", 1, 5000, &r), 0);
    assert_true(mpb_result_is_array(r));
    assert_int_equal(mpb_result_member_count(r), 3);
    assert_value(mpb_result_member(r, 0), "x|a");
    assert_value(mpb_result_member(r, 1), "x|b");
    assert_value(mpb_result_member(r, 2), "x|c");
    assert_null(mpb_result_member(r, 3));

    /* the value bytes are the same members as one msgpack array */
    size_t len;
    const char *bytes = mpb_result_value(r, &len);
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    assert_int_equal(msgpack_unpack_next(&msg, bytes, len, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(msg.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(msg.data.via.array.size, 3);
    assert_bin(&msg.data.via.array.ptr[0], "x|a");
    assert_bin(&msg.data.via.array.ptr[2], "x|c");
    msgpack_unpacked_destroy(&msg);

    mpb_result *copy = mpb_result_copy(r);
    mpb_result_destroy(&r);
    assert_value(mpb_result_member(copy, 1), "x|b");
    mpb_result_destroy(&copy);

    enum { N = 1000 };
    const char **inputs = mpb_calloc(N, sizeof(char *));
    char(*texts)[32] = mpb_calloc(N, 32);
    for (size_t i = 0; i < N; i++) {
        snprintf(texts[i], 32, "i%zu", i);
        inputs[i] = texts[i];
    }
    mpb_result **results = stream_strings(server, inputs, N);
    for (size_t i = 0; i < N; i++) {
        char expect[64];
        for (size_t m = 0; m < 3; m++) {
            snprintf(expect, sizeof expect, "i%zu|%c", i, (int)('a' + m));
            assert_value(mpb_result_member(results[i], m), expect);
        }
    }
    free_results(results, N);
    free(texts);
    free(inputs);
    mpb_server_destroy(&server);
}

static void
test_first_error_wins(void **state)
{
    (void)state;
    mpb_servlet *members[2] = {tag_pool("thread", "a", 1, NULL), tag_pool("process", "b", 1, NULL)};
    mpb_server *server = start_ensemble(members, 2, 0, NULL);
    const char *inputs[4] = {"ok0", "bad!b", "ok2", "bad!a"};
    mpb_result **results = stream_strings(server, inputs, 4);
    assert_true(mpb_result_is_array(results[0]));
    assert_value(mpb_result_member(results[0], 1), "ok0|b");
    assert_error(results[1], "ValueError", "ensemble/b");
    assert_string_equal(mpb_result_error(results[1])->message, "failed at b");
    assert_value(mpb_result_member(results[2], 0), "ok2|a");
    assert_error(results[3], "ValueError", "ensemble/a");
    free_results(results, 4);
    mpb_server_destroy(&server);
}

static void
test_errors_in_place(void **state)
{
    (void)state;
    mpb_servlet *members[3] = {tag_pool("thread", "a", 1, NULL), tag_pool("process", "b", 1, NULL),
                               tag_pool("thread", "c", 1, NULL)};
    mpb_server *server = start_ensemble(members, 3, 1, NULL);
    const char *inputs[3] = {"ok", "x!b", "y!a!c"};
    mpb_result **results = stream_strings(server, inputs, 3);
    assert_value(mpb_result_member(results[0], 2), "ok|c");
    assert_true(mpb_result_is_array(results[1]));
    assert_false(mpb_result_is_error(results[1]));
    assert_value(mpb_result_member(results[1], 0), "x!b|a");
    assert_error(mpb_result_member(results[1], 1), "ValueError", "ensemble/b");
    assert_value(mpb_result_member(results[1], 2), "x!b|c");
    /* "y!a!c": fails at a and at c ("!a" is followed by '!', not '|' or the
     * end, so a does not match; c does) */
    assert_value(mpb_result_member(results[2], 0), "y!a!c|a");
    assert_error(mpb_result_member(results[2], 2), "ValueError", "ensemble/c");

    /* an error in place is a {"error": {...}} map in the value bytes */
    size_t len;
    const char *bytes = mpb_result_value(results[1], &len);
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    assert_int_equal(msgpack_unpack_next(&msg, bytes, len, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *err = &msg.data.via.array.ptr[1];
    assert_int_equal(err->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(err->via.map.size, 1);
    assert_memory_equal(err->via.map.ptr[0].key.via.str.ptr, "error", 5);
    assert_int_equal(err->via.map.ptr[0].val.type, MSGPACK_OBJECT_MAP);
    msgpack_unpacked_destroy(&msg);
    free_results(results, 3);
    mpb_server_destroy(&server);
}

/* a fails every item at once; b is slow: once an item's a-result is in, b
 * withdraws the item if it has not started on it. */
static void
test_fail_fast_withdraws_waiting_work(void **state)
{
    (void)state;
    path_counts counts = {0};
    mpb_servlet *members[2] = {tag_pool("thread", "a", 1, NULL),
                               tag_pool("process", "b", 1, "delay_us=20000")};
    mpb_server *server = start_ensemble(members, 2, 0, &counts);
    enum { N = 400 };
    const char **inputs = mpb_calloc(N, sizeof(char *));
    char(*texts)[32] = mpb_calloc(N, 32);
    for (size_t i = 0; i < N; i++) {
        snprintf(texts[i], 32, "i%zu!a", i);
        inputs[i] = texts[i];
    }
    mpb_result **results = stream_strings(server, inputs, N);
    for (size_t i = 0; i < N; i++) {
        assert_error(results[i], "ValueError", "ensemble/a");
    }
    /* An item that passes a queues at b behind whatever b did not withdraw
     * (its queue is first in, first out): once it is answered, b has
     * computed all of that. */
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "last", 4, 30000, &r), 0);
    assert_value(mpb_result_member(r, 1), "last|b");
    mpb_result_destroy(&r);
    mpb_server_stop(server);
    /* b computed what it held when the errors came (its credit), not all
     * 400 items */
    uint64_t computed = items_at(&counts, "ensemble/b");
    print_message("b computed %llu of %d items\n", (unsigned long long)computed, N + 1);
    assert_true(computed < N / 4);
    free_results(results, N);
    free(texts);
    free(inputs);
    mpb_server_destroy(&server);
}

static void
test_nested_ensembles(void **state)
{
    (void)state;
    mpb_servlet *inner[2] = {tag_pool("thread", "x", 1, NULL), tag_pool("process", "y", 1, NULL)};
    mpb_servlet *members[2] = {tag_pool("thread", "a", 1, NULL),
                               mpb_ensemble_servlet_new(inner, 2, NULL)};
    mpb_servlet_rename(members[1], "inner");
    mpb_server *server = start_ensemble(members, 2, 0, NULL);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "v", 1, 5000, &r), 0);
    assert_value(mpb_result_member(r, 0), "v|a");
    const mpb_result *nested = mpb_result_member(r, 1);
    assert_true(mpb_result_is_array(nested));
    assert_value(mpb_result_member(nested, 1), "v|y");
    /* nested arrays are inlined as msgpack arrays, not wrapped in bin */
    size_t len;
    const char *bytes = mpb_result_value(r, &len);
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    assert_int_equal(msgpack_unpack_next(&msg, bytes, len, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(msg.data.via.array.ptr[1].type, MSGPACK_OBJECT_ARRAY);
    assert_bin(&msg.data.via.array.ptr[1].via.array.ptr[0], "v|x");
    msgpack_unpacked_destroy(&msg);
    mpb_result_destroy(&r);
    assert_int_equal(mpb_server_call(server, "w!y", 3, 5000, &r), MPB_EITEM);
    assert_error(r, "ValueError", "ensemble/inner/y");
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_answer_in_member_order),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_errors_in_place),
        cmocka_unit_test(test_fail_fast_withdraws_waiting_work),
        cmocka_unit_test(test_nested_ensembles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
