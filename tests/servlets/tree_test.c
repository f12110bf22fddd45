/*
 * Trees three deep with process and thread pools mixed: values flow
 * through every level, results keep input order, and an error names the
 * exact stage that failed while its neighbours pass untouched.
 */
#include <unistd.h>

#include <msgpack.h>

#include "tree_helpers.h"

/* pipeline = sequential(pre, models = ensemble(a, chain = sequential(b1, b2)), post) */
static mpb_servlet *
three_deep(void)
{
    mpb_servlet *chain_stages[2] = {tag_pool("thread", "b1", 1, NULL),
                                    tag_pool("process", "b2", 2, NULL)};
    mpb_servlet *chain = mpb_sequential_servlet_new(chain_stages, 2);
    mpb_servlet_rename(chain, "chain");
    mpb_servlet *models_members[2] = {tag_pool("process", "a", 1, NULL), chain};
    mpb_servlet *models = mpb_ensemble_servlet_new(models_members, 2, NULL);
    mpb_servlet_rename(models, "models");
    test_pool post = {.kind = "process", .plugin = "passthrough", .name = "post"};
    mpb_servlet *stages[3] = {tag_pool("thread", "pre", 1, NULL), models, test_pool_servlet(&post)};
    mpb_servlet *pipeline = mpb_sequential_servlet_new(stages, 3);
    mpb_servlet_rename(pipeline, "pipeline");
    return pipeline;
}

/* post passes the ensemble's msgpack array through: decode and check. */
static void
assert_members(const mpb_result *r, const char *first, const char *second)
{
    if (mpb_result_is_error(r)) {
        fail_msg("error %s at %s", mpb_result_error(r)->type, mpb_result_error(r)->servlet);
    }
    size_t len;
    const char *bytes = mpb_result_value(r, &len);
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    assert_int_equal(msgpack_unpack_next(&msg, bytes, len, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(msg.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(msg.data.via.array.size, 2);
    const char *expect[2] = {first, second};
    for (int i = 0; i < 2; i++) {
        const msgpack_object *o = &msg.data.via.array.ptr[i];
        assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
        if (o->via.bin.size != strlen(expect[i]) ||
            memcmp(o->via.bin.ptr, expect[i], o->via.bin.size) != 0) {
            fail_msg("member %d: expected %s, got %.*s", i, expect[i], (int)o->via.bin.size,
                     o->via.bin.ptr);
        }
    }
    msgpack_unpacked_destroy(&msg);
}

static void
test_three_deep_mixed_kinds(void **state)
{
    (void)state;
    mpb_servlet *root = three_deep();
    mpb_server *server = test_server_over(&root, NULL);
    mpb_worker_status workers[16];
    assert_int_equal(mpb_server_workers(server, workers, 16), 6);
    int found_b2 = 0;
    for (int i = 0; i < 6; i++) {
        found_b2 += strcmp(workers[i].servlet, "pipeline/models/chain/b2") == 0;
    }
    assert_int_equal(found_b2, 2);

    enum { N = 3000 };
    const char **inputs = mpb_calloc(N, sizeof(char *));
    char(*texts)[32] = mpb_calloc(N, 32);
    for (size_t i = 0; i < N; i++) {
        const char *mark = i % 13 == 4 ? "!b2" : i % 17 == 9 ? "!pre" : "";
        snprintf(texts[i], 32, "i%zu%s", i, mark);
        inputs[i] = texts[i];
    }
    mpb_result **results = stream_strings(server, inputs, N);
    for (size_t i = 0; i < N; i++) {
        if (i % 13 == 4) {
            assert_error(results[i], "ValueError", "pipeline/models/chain/b2");
        } else if (i % 17 == 9) {
            assert_error(results[i], "ValueError", "pipeline/pre");
        } else {
            char a[64];
            char b[64];
            snprintf(a, sizeof a, "i%zu|pre|a", i);
            snprintf(b, sizeof b, "i%zu|pre|b1|b2", i);
            assert_members(results[i], a, b);
        }
    }
    free_results(results, N);
    free(texts);
    free(inputs);
    mpb_server_destroy(&server);
}

/* cpus: auto spreads the workers of the whole tree, not each pool alone:
 * two one-worker pools get different cores. */
static void
auto_pinning_spreads_the_tree(void **state)
{
    (void)state;
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        skip();
    }
    mpb_servlet *members[2] = {tag_pool("process", "a", 1, NULL),
                               tag_pool("process", "b", 1, NULL)};
    mpb_servlet *root = mpb_ensemble_servlet_new(members, 2, NULL);
    mpb_server *server = test_server_over(&root, NULL);
    mpb_worker_status workers[2];
    assert_int_equal(mpb_server_workers(server, workers, 2), 2);
    assert_true(workers[0].cpus[0] != '\0' && workers[1].cpus[0] != '\0');
    assert_string_not_equal(workers[0].cpus, workers[1].cpus);
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_deep_mixed_kinds),
        cmocka_unit_test(auto_pinning_spreads_the_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
