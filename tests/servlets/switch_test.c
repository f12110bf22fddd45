/*
 * SwitchServlet: one member per item, chosen by a function, a router
 * plugin or a field of a msgpack map; results keep input order even when
 * members answer at different speeds; unroutable items fail in place.
 */
#include <msgpack.h>

#include "tree_helpers.h"

static mpb_server *
start_switch(mpb_servlet **members, size_t n, const mpb_switch_config *config)
{
    mpb_servlet *sw = mpb_switch_servlet_new(members, n, config);
    return test_server_over(&sw, NULL);
}

/* Items starting with 's' go to member 1 (slow), others to member 0. */
static int
route_first_letter(void *state, const void *item, size_t len)
{
    int *calls = state;
    (*calls)++;
    return len > 0 && ((const char *)item)[0] == 's' ? 1 : 0;
}

static void
test_route_function_keeps_order(void **state)
{
    (void)state;
    int calls = 0;
    mpb_switch_config cfg;
    mpb_switch_config_init(&cfg);
    cfg.route = route_first_letter;
    cfg.route_state = &calls;
    mpb_servlet *members[2] = {tag_pool("process", "fast", 1, NULL),
                               tag_pool("thread", "slow", 1, "delay_us=3000")};
    mpb_server *server = start_switch(members, 2, &cfg);
    enum { N = 600 };
    const char **inputs = mpb_calloc(N, sizeof(char *));
    char(*texts)[32] = mpb_calloc(N, 32);
    for (size_t i = 0; i < N; i++) {
        snprintf(texts[i], 32, "%s%zu", i % 5 == 0 ? "s" : "f", i);
        inputs[i] = texts[i];
    }
    mpb_result **results = stream_strings(server, inputs, N);
    for (size_t i = 0; i < N; i++) {
        char expect[64];
        snprintf(expect, sizeof expect, "%s|%s", texts[i], i % 5 == 0 ? "slow" : "fast");
        assert_value(results[i], expect);
    }
    mpb_server_destroy(&server);
    assert_int_equal(calls, N);
    free_results(results, N);
    free(texts);
    free(inputs);
}

/* A msgpack map {key: value} as an item. */
static size_t
map_item(char *buf, size_t size, const char *key, const char *text, long long number)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "text", 4);
    msgpack_pack_str_with_body(&pk, "hello", 5);
    msgpack_pack_str_with_body(&pk, key, strlen(key));
    if (text != NULL) {
        msgpack_pack_str_with_body(&pk, text, strlen(text));
    } else {
        msgpack_pack_long_long(&pk, number);
    }
    size_t len = sbuf.size < size ? sbuf.size : size;
    memcpy(buf, sbuf.data, len);
    msgpack_sbuffer_destroy(&sbuf);
    return len;
}

static void
test_route_by_field(void **state)
{
    (void)state;
    mpb_route routes[3] = {{"en", 0}, {"de", 1}, {"7", 1}};
    mpb_switch_config cfg;
    mpb_switch_config_init(&cfg);
    cfg.route_by = "lang";
    cfg.routes = routes;
    cfg.n_routes = 3;
    mpb_servlet *members[2] = {tag_pool("thread", "english", 1, NULL),
                               tag_pool("process", "german", 1, NULL)};
    mpb_server *server = start_switch(members, 2, &cfg);
    char item[128];
    size_t len = map_item(item, sizeof item, "lang", "de", 0);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, item, len, 5000, &r), 0);
    size_t out_len;
    const char *out = mpb_result_value(r, &out_len);
    assert_int_equal(out_len, len + strlen("|german"));
    assert_memory_equal(out + len, "|german", 7);
    mpb_result_destroy(&r);

    len = map_item(item, sizeof item, "lang", NULL, 7); /* integers compare as text */
    assert_int_equal(mpb_server_call(server, item, len, 5000, &r), 0);
    out = mpb_result_value(r, &out_len);
    assert_memory_equal(out + len, "|german", 7);
    mpb_result_destroy(&r);

    /* no match, no default: RouteError naming the switch */
    len = map_item(item, sizeof item, "lang", "fr", 0);
    assert_int_equal(mpb_server_call(server, item, len, 5000, &r), MPB_EITEM);
    assert_error(r, MPB_ERROR_ROUTE, "switch");
    mpb_result_destroy(&r);
    assert_int_equal(mpb_server_call(server, "not msgpack", 11, 5000, &r), MPB_EITEM);
    assert_error(r, MPB_ERROR_ROUTE, "switch");
    mpb_result_destroy(&r);
    /* headers that claim 2^32 - 1 elements in 5 bytes (an array; a map
     * holding one as the field's value): refused before anything is
     * allocated for them, not a 128 GiB allocation */
    const char *bombs[] = {"\xdd\xff\xff\xff\xff", "\x81\xa4lang\xdd\xff\xff\xff\xff",
                           "\xdf\xff\xff\xff\xff"};
    const size_t bomb_lens[] = {5, 10, 5};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(mpb_server_call(server, bombs[i], bomb_lens[i], 5000, &r), MPB_EITEM);
        assert_error(r, MPB_ERROR_ROUTE, "switch");
        mpb_result_destroy(&r);
    }
    mpb_server_destroy(&server);

    /* with a default member, unmatched and non-map items go there */
    cfg.default_member = 0;
    mpb_servlet *again[2] = {tag_pool("thread", "english", 1, NULL),
                             tag_pool("thread", "german", 1, NULL)};
    server = start_switch(again, 2, &cfg);
    assert_int_equal(mpb_server_call(server, "plain", 5, 5000, &r), 0);
    assert_value(r, "plain|english");
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
test_router_plugin(void **state)
{
    (void)state;
    const char *options[] = {"offset=1", NULL};
    mpb_switch_config cfg;
    mpb_switch_config_init(&cfg);
    cfg.router = test_plugin_path("first_digit_router");
    cfg.router_options = options;
    cfg.default_member = 0;
    mpb_servlet *members[3] = {tag_pool("thread", "zero", 1, NULL),
                               tag_pool("thread", "one", 1, NULL),
                               tag_pool("process", "two", 1, NULL)};
    mpb_server *server = start_switch(members, 3, &cfg);
    const char *inputs[4] = {"0a", "1b", "x", "2c"};
    mpb_result **results = stream_strings(server, inputs, 4);
    assert_value(results[0], "0a|one"); /* digit 0 + offset 1 */
    assert_value(results[1], "1b|two");
    assert_value(results[2], "x|zero");  /* no route: the default */
    assert_value(results[3], "2c|zero"); /* 2 + 1 is past the last member */
    free_results(results, 4);
    mpb_server_destroy(&server);
}

static void
test_bad_switch_configs_fail_at_start(void **state)
{
    (void)state;
    mpb_switch_config cfg;
    mpb_switch_config_init(&cfg);
    cfg.default_member = 2;
    mpb_servlet *members[2] = {tag_pool("thread", "a", 1, NULL), tag_pool("thread", "b", 1, NULL)};
    mpb_servlet *sw = mpb_switch_servlet_new(members, 2, &cfg);
    mpb_server *server = mpb_server_new(&sw, NULL);
    char err[512];
    assert_int_equal(mpb_server_start(server, err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "default member 2"));
    mpb_server_destroy(&server);

    mpb_switch_config_init(&cfg);
    cfg.router = "no-such-router";
    mpb_servlet *more[1] = {tag_pool("thread", "a", 1, NULL)};
    sw = mpb_switch_servlet_new(more, 1, &cfg);
    server = mpb_server_new(&sw, NULL);
    assert_int_not_equal(mpb_server_start(server, err, sizeof err), 0);
    assert_non_null(strstr(err, "no-such-router"));
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_function_keeps_order),
        cmocka_unit_test(test_route_by_field),
        cmocka_unit_test(test_router_plugin),
        cmocka_unit_test(test_bad_switch_configs_fail_at_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
