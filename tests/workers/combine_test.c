/*
 * The combine plugin through a thread servlet: ensemble values built by hand
 * with msgpack-c (bin vectors, errors kept in place, nested arrays) come out
 * as one float32 vector, a MemberError, or a ValueError for malformed input;
 * the worker survives every bad item.
 */
#include <math.h>

#include <msgpack.h>

#include "support.h"

/* An ensemble value under construction. */
typedef struct ensemble_value {
    msgpack_sbuffer buf;
    msgpack_packer pk;
} ensemble_value;

static void
value_begin(ensemble_value *v, uint32_t members)
{
    msgpack_sbuffer_init(&v->buf);
    msgpack_packer_init(&v->pk, &v->buf, msgpack_sbuffer_write);
    msgpack_pack_array(&v->pk, members);
}

/* A member's float32 vector, little-endian as the plugin reads it. */
static void
value_add_vector(ensemble_value *v, const float *values, size_t n)
{
    msgpack_pack_bin(&v->pk, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], sizeof bits);
        unsigned char le[4] = {(unsigned char)bits, (unsigned char)(bits >> 8),
                               (unsigned char)(bits >> 16), (unsigned char)(bits >> 24)};
        msgpack_pack_bin_body(&v->pk, le, sizeof le);
    }
}

static void
pack_str(msgpack_packer *pk, const char *text)
{
    msgpack_pack_str_with_body(pk, text, strlen(text));
}

/* A member's error kept in place: {"error": {type, message, servlet, worker, pid}}. */
static void
value_add_error(ensemble_value *v, const char *type, const char *message)
{
    msgpack_pack_map(&v->pk, 1);
    pack_str(&v->pk, "error");
    msgpack_pack_map(&v->pk, 5);
    pack_str(&v->pk, "type");
    pack_str(&v->pk, type);
    pack_str(&v->pk, "message");
    pack_str(&v->pk, message);
    pack_str(&v->pk, "servlet");
    pack_str(&v->pk, "ens/member");
    pack_str(&v->pk, "worker");
    pack_str(&v->pk, "member-0");
    pack_str(&v->pk, "pid");
    msgpack_pack_int64(&v->pk, 4242);
}

static mpb_server *
combine_server(const char *op, const char *on_error)
{
    char op_option[32];
    char error_option[32];
    test_pool tp = {.kind = "thread", .plugin = "combine", .workers = 1};
    size_t n = 0;
    if (op != NULL) {
        snprintf(op_option, sizeof op_option, "op=%s", op);
        tp.options[n++] = op_option;
    }
    if (on_error != NULL) {
        snprintf(error_option, sizeof error_option, "on_error=%s", on_error);
        tp.options[n++] = error_option;
    }
    return test_server_start(&tp);
}

/* Calls the server with raw bytes; returns the result (caller destroys). */
static mpb_result *
call_bytes(mpb_server *server, const void *bytes, size_t len)
{
    mpb_result *r = NULL;
    int rc = mpb_server_call(server, bytes, len, 10000, &r);
    assert_true(rc == 0 || rc == MPB_EITEM);
    assert_non_null(r);
    return r;
}

static mpb_result *
call_value(mpb_server *server, ensemble_value *v)
{
    mpb_result *r = call_bytes(server, v->buf.data, v->buf.size);
    msgpack_sbuffer_destroy(&v->buf);
    return r;
}

static void
assert_floats(const mpb_result *r, const float *expect, size_t n)
{
    if (mpb_result_is_error(r)) {
        fail_msg("expected a value, got %s: %s", mpb_result_error(r)->type,
                 mpb_result_error(r)->message);
    }
    size_t len = 0;
    const unsigned char *value = mpb_result_value(r, &len);
    assert_int_equal(len, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)value[4 * i] | (uint32_t)value[4 * i + 1] << 8 |
                        (uint32_t)value[4 * i + 2] << 16 | (uint32_t)value[4 * i + 3] << 24;
        float got;
        memcpy(&got, &bits, sizeof got);
        if (fabsf(got - expect[i]) > 1e-5f) {
            fail_msg("element %zu: got %g, expected %g", i, (double)got, (double)expect[i]);
        }
    }
}

static void
assert_error(const mpb_result *r, const char *type, const char *needle)
{
    assert_true(mpb_result_is_error(r));
    const mpb_item_error *e = mpb_result_error(r);
    print_message("%s: %s\n", e->type, e->message);
    assert_string_equal(e->type, type);
    if (strstr(e->message, needle) == NULL) {
        fail_msg("'%s' does not contain '%s'", e->message, needle);
    }
}

static const float member_a[3] = {1, 2, 3};
static const float member_b[3] = {3, 4, 5};
static const float member_c[3] = {-1, 9, 0};

static mpb_result *
call_three_members(mpb_server *server)
{
    ensemble_value v;
    value_begin(&v, 3);
    value_add_vector(&v, member_a, 3);
    value_add_vector(&v, member_b, 3);
    value_add_vector(&v, member_c, 3);
    return call_value(server, &v);
}

static void
each_op_combines_member_vectors(void **state)
{
    static const struct {
        const char *op;
        float expect[9];
        size_t n;
    } cases[] = {
        {NULL, {1, 5, 8.0f / 3}, 3}, /* the default: mean */
        {"mean", {1, 5, 8.0f / 3}, 3},
        {"sum", {3, 15, 8}, 3},
        {"max", {3, 9, 5}, 3},
        {"min", {-1, 2, 0}, 3},
        {"concat", {1, 2, 3, 3, 4, 5, -1, 9, 0}, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mpb_server *server = combine_server(cases[i].op, NULL);
        mpb_result *r = call_three_members(server);
        assert_floats(r, cases[i].expect, cases[i].n);
        mpb_result_destroy(&r);
        mpb_server_destroy(&server);
    }
}

static void
a_member_error_fails_the_item_by_default(void **state)
{
    mpb_server *server = combine_server("sum", "fail");
    ensemble_value v;
    value_begin(&v, 3);
    value_add_vector(&v, member_a, 3);
    value_add_error(&v, "ValueError", "bad input 'x'");
    value_add_vector(&v, member_b, 3);
    mpb_result *r = call_value(server, &v);
    assert_error(r, "MemberError", "member 1 failed with ValueError: bad input 'x'");
    assert_non_null(strstr(mpb_result_error(r)->message, "ens/member"));
    mpb_result_destroy(&r);
    /* The next item is fine. */
    r = call_three_members(server);
    assert_floats(r, (const float[]){3, 15, 8}, 3);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
skip_leaves_member_errors_out(void **state)
{
    mpb_server *server = combine_server("mean", "skip");
    ensemble_value v;
    value_begin(&v, 3);
    value_add_error(&v, "Timeout", "member took too long");
    value_add_vector(&v, member_a, 3);
    value_add_vector(&v, member_b, 3);
    mpb_result *r = call_value(server, &v);
    assert_floats(r, (const float[]){2, 3, 4}, 3);
    mpb_result_destroy(&r);

    /* No member left: the item fails, quoting the first error. */
    value_begin(&v, 2);
    value_add_error(&v, "Timeout", "member took too long");
    value_add_error(&v, "WorkerCrashed", "worker died");
    r = call_value(server, &v);
    assert_error(r, "MemberError", "all 2 members failed; the first, member 0 failed with Timeout");
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

/* Errors from other peers: an empty message, no servlet/worker/pid, a
 * field this version does not know. Still errors. */
static void
sparse_errors_are_still_member_errors(void **state)
{
    mpb_server *server = combine_server(NULL, NULL);
    ensemble_value v;
    value_begin(&v, 2);
    value_add_vector(&v, member_a, 3);
    msgpack_pack_map(&v.pk, 1);
    pack_str(&v.pk, "error");
    msgpack_pack_map(&v.pk, 3);
    pack_str(&v.pk, "code");
    msgpack_pack_int(&v.pk, -7);
    pack_str(&v.pk, "message");
    pack_str(&v.pk, "");
    pack_str(&v.pk, "type");
    pack_str(&v.pk, "Timeout");
    mpb_result *r = call_value(server, &v);
    assert_error(r, "MemberError", "member 1 failed with Timeout: ");
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

/* Packs one malformed shape of ensemble value. */
typedef void (*pack_fn)(ensemble_value *v);

static void
pack_nested(ensemble_value *v)
{
    value_begin(v, 2);
    value_add_vector(v, member_a, 3);
    msgpack_pack_array(&v->pk, 1);
    value_add_vector(v, member_b, 3);
}

static void
pack_unequal(ensemble_value *v)
{
    value_begin(v, 2);
    value_add_vector(v, member_a, 3);
    value_add_vector(v, member_b, 2);
}

static void
pack_odd_bytes(ensemble_value *v)
{
    value_begin(v, 1);
    msgpack_pack_bin_with_body(&v->pk, "abcdef", 6);
}

static void
pack_string_member(ensemble_value *v)
{
    value_begin(v, 2);
    value_add_vector(v, member_a, 3);
    pack_str(&v->pk, "not a vector");
}

static void
pack_other_map(ensemble_value *v)
{
    value_begin(v, 1);
    msgpack_pack_map(&v->pk, 1);
    pack_str(&v->pk, "oops");
    msgpack_pack_int(&v->pk, 1);
}

static void
pack_error_without_message(ensemble_value *v)
{
    value_begin(v, 1);
    msgpack_pack_map(&v->pk, 1);
    pack_str(&v->pk, "error");
    msgpack_pack_map(&v->pk, 1);
    pack_str(&v->pk, "type");
    pack_str(&v->pk, "ValueError");
}

static void
pack_empty(ensemble_value *v)
{
    value_begin(v, 0);
}

static void
pack_not_array(ensemble_value *v)
{
    msgpack_sbuffer_init(&v->buf);
    msgpack_packer_init(&v->pk, &v->buf, msgpack_sbuffer_write);
    msgpack_pack_bin_with_body(&v->pk, "\0\0\0\0", 4);
}

static void
pack_trailing(ensemble_value *v)
{
    value_begin(v, 1);
    value_add_vector(v, member_a, 3);
    msgpack_pack_nil(&v->pk);
}

static void
malformed_values_are_value_errors(void **state)
{
    static const struct {
        pack_fn pack;
        const char *needle;
    } shapes[] = {
        {pack_nested, "member 1 is a nested ensemble's value"},
        {pack_unequal, "member 1 has 2 float32 where member 0 has 3"},
        {pack_odd_bytes, "member 0 has 6 bytes, not a whole number of float32"},
        {pack_string_member, "member 1 is a string"},
        {pack_other_map, "member 0 is a map but not an error"},
        {pack_error_without_message, "member 0 is a map but not an error"},
        {pack_empty, "no members"},
        {pack_not_array, "expected a msgpack array of ensemble members, got bin"},
        {pack_trailing, "1 stray byte(s) after the 1 member(s)"},
    };
    /* Raw bytes: text, an empty item, arrays claiming more than they hold. */
    static const struct {
        const char *bytes;
        size_t len;
        const char *needle;
    } raw[] = {
        {"hello", 5, "got an integer"},
        {"", 0, "got nothing"},
        {"\xdd\xff\xff\xff\xff", 5, "truncated msgpack array"},
        {"\x92\xc4\x08\x00\x00", 5, "member 0 is a truncated bin"},
        {"\x91\xdf\xff\xff\xff\xff", 6, "member 0 is a map but not an error"},
    };
    mpb_server *server = combine_server(NULL, "skip");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        ensemble_value v;
        shapes[i].pack(&v);
        mpb_result *r = call_value(server, &v);
        assert_error(r, "ValueError", shapes[i].needle);
        mpb_result_destroy(&r);
    }
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        mpb_result *r = call_bytes(server, raw[i].bytes, raw[i].len);
        assert_error(r, "ValueError", raw[i].needle);
        mpb_result_destroy(&r);
    }
    /* The worker is still there. */
    mpb_result *r = call_three_members(server);
    assert_floats(r, (const float[]){1, 5, 8.0f / 3}, 3);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
bad_op_fails_the_start(void **state)
{
    const char *cases[][2] = {
        {"op=median", "op must be mean, sum, max, min or concat (got 'median')"},
        {"on_error=ignore", "on_error must be fail or skip"},
        {"ops=sum", "unknown option ops of plugin combine (did you mean op?)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mpb_pool_config cfg;
        mpb_pool_config_init(&cfg);
        cfg.plugin = "combine";
        const char *options[] = {cases[i][0], NULL};
        cfg.options = options;
        mpb_servlet *servlet = mpb_thread_servlet_new(&cfg);
        mpb_server *server = mpb_server_new(&servlet, NULL);
        char err[512] = "";
        assert_int_not_equal(mpb_server_start(server, err, sizeof err), 0);
        if (strstr(err, cases[i][1]) == NULL) {
            fail_msg("'%s' does not contain '%s'", err, cases[i][1]);
        }
        mpb_server_destroy(&server);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_op_combines_member_vectors),
        cmocka_unit_test(a_member_error_fails_the_item_by_default),
        cmocka_unit_test(skip_leaves_member_errors_out),
        cmocka_unit_test(sparse_errors_are_still_member_errors),
        cmocka_unit_test(malformed_values_are_value_errors),
        cmocka_unit_test(bad_op_fails_the_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
