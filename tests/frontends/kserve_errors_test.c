/*
 * The Open Inference Protocol codec on bad bodies: every mistake is
 * MPB_EINVAL (MPB_ELIMIT for sizes) with a message naming the field, and no
 * body, however cut or mangled, crashes it or leaks.
 */
#include <math.h>

#include "kserve_helpers.h"

typedef struct bad_body {
    const char *body;
    const char *needle;  /* the message holds it */
    const char *needle2; /* and this, unless NULL */
} bad_body;

#define ONE_INPUT(fields) "{\"inputs\":[{" fields "}]}"
#define FP32_2x2 "\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2]"
#define WITH_OUTPUTS(outputs)                                                                      \
    "{\"inputs\":[{" FP32_2x2 ",\"data\":[1,2,3,4]}],\"outputs\":" outputs "}"

static const bad_body bad_bodies[] = {
    {"{", "body is not valid JSON near byte", NULL},
    {"{\"inputs\":[1,]}", "body is not valid JSON near byte 13", NULL},
    {"[1]", "body must be a JSON object", NULL},
    {"{} {}", "more text after the JSON value at byte 3", NULL},
    {"{}", "inputs is missing", NULL},
    {"{\"inputs\":{}}", "inputs must be an array", NULL},
    {"{\"inputs\":[]}", "inputs has 0 tensors", "takes one input"},
    {"{\"inputs\":[{},{}]}", "inputs has 2 tensors", "takes one input"},
    {"{\"inputs\":[7]}", "inputs[0] must be an object", NULL},
    {"{\"inputs\":[{}],\"inputs\":[{}]}", "inputs appears twice", NULL},
    {"{\"id\":5,\"inputs\":[{}]}", "id must be a string", NULL},
    {"{\"parameters\":[],\"inputs\":[{}]}", "parameters must be an object", NULL},
    {ONE_INPUT("\"datatype\":\"FP32\""), "inputs[0].name is missing", NULL},
    {ONE_INPUT("\"name\":1,\"datatype\":\"FP32\""), "inputs[0].name must be a string", NULL},
    {ONE_INPUT("\"name\":\"x\""), "inputs[0].datatype is missing", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP16\""),
     "inputs[0].datatype 'FP16' is not supported", "FP32, FP64, INT8"},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"fp32\""), "inputs[0].datatype 'fp32'", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\""), "inputs[0].shape is missing", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":2"),
     "inputs[0].shape must be an array", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[]"), "inputs[0].shape is empty",
     "batch"},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,-1]"),
     "inputs[0].shape[1] must be a non-negative integer", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1.5]"),
     "inputs[0].shape[0] must be a non-negative integer", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[\"2\"]"),
     "inputs[0].shape[0] must be a non-negative integer", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,1,1,1,1,1,1,1,1]"),
     "inputs[0].shape has 9 dimensions, at most 8", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"shape\":[1]"),
     "inputs[0].shape appears twice", NULL},
    {ONE_INPUT(FP32_2x2), "inputs[0].data is missing", NULL},
    {ONE_INPUT(FP32_2x2 ",\"data\":{}"), "inputs[0].data must be an array", NULL},
    {ONE_INPUT(FP32_2x2 ",\"parameters\":{\"binary_data_size\":16}"),
     "inputs[0].parameters.binary_data_size", "binary tensor data extension is not supported"},
    {ONE_INPUT(FP32_2x2 ",\"parameters\":{\"shared_memory_region\":\"r\"}"),
     "inputs[0].parameters.shared_memory_region", "shared memory extension is not supported"},
    {ONE_INPUT(FP32_2x2 ",\"parameters\":7"), "inputs[0].parameters must be an object", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,4],\"data\":[1,2,3,4,5,6,7]"),
     "inputs[0].data has 7 values, shape [2,4] needs 8", NULL},
    {ONE_INPUT(FP32_2x2 ",\"data\":[1,2,3,4,5]"),
     "inputs[0].data has 5 values, shape [2,2] needs 4", NULL},
    {ONE_INPUT(FP32_2x2 ",\"data\":[[1,2]]"), "inputs[0].data has 1 entry, shape [2,2] needs 2",
     "dimension 0"},
    {ONE_INPUT(FP32_2x2 ",\"data\":[[1,2],[3]]"), "inputs[0].data[1] has 1 entry", "dimension 1"},
    {ONE_INPUT(FP32_2x2 ",\"data\":[[1,2],3]"), "inputs[0].data[1] must be an array", NULL},
    {ONE_INPUT(FP32_2x2 ",\"data\":[1,2,[3],4]"), "inputs[0].data[2] is an array, not a value",
     NULL},
    {ONE_INPUT(FP32_2x2 ",\"data\":[[1,2],[3,[4]]]"), "inputs[0].data[1][1] is an array", NULL},
    {ONE_INPUT(FP32_2x2 ",\"data\":[1,2,{},4]"), "inputs[0].data[2] is an object", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[[1],[2]]"),
     "inputs[0].data[0] is an array", NULL},
    {ONE_INPUT(FP32_2x2 ",\"data\":[1,2,\"3\",4]"), "inputs[0].data[2] must be a number (FP32)",
     NULL},
    {ONE_INPUT(FP32_2x2 ",\"data\":[[1,2],[3,1e39]]"),
     "inputs[0].data[1][1] is out of range for FP32", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1],\"data\":[-1e999]"),
     "inputs[0].data[0] is out of range for FP64", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[2],\"data\":[1,128]"),
     "inputs[0].data[1] is 128, out of range for INT8 (-128..127)", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"UINT16\",\"shape\":[1],\"data\":[-1]"),
     "inputs[0].data[0] is -1, out of range for UINT16", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[2],\"data\":[1,2.5]"),
     "inputs[0].data[1] is 2.5, not an integer (INT32)", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[1],\"data\":[9007199254740993]"),
     "inputs[0].data[0]", "out of range for INT64"},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"UINT64\",\"shape\":[1],\"data\":[1e19]"),
     "inputs[0].data[0]", "out of range for UINT64"},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,1]"),
     "inputs[0].data[1] must be true or false (BOOL)", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"a\",5]"),
     "inputs[0].data[1] must be a string (BYTES)", NULL},
    {ONE_INPUT("\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[2,3],\"data\":[]"),
     "inputs[0].shape [2,3]: BYTES inputs need shape [N] or [N,1]", NULL},
    {WITH_OUTPUTS("{\"name\":\"y\"}"), "outputs must be an array", NULL},
    {WITH_OUTPUTS("[{\"name\":\"y\"},2]"), "outputs[1] must be an object", NULL},
    {WITH_OUTPUTS("[{\"nam\":\"y\"}]"), "outputs[0].name is missing", NULL},
    {ONE_INPUT("\"name\":\"a\\u0000b\",\"datatype\":\"BYTES\",\"shape\":[0],\"data\":[]"),
     "\\u0000 escape at byte 21", "NUL"},
};

static void
bad_bodies_are_einval_naming_the_field(void **state)
{
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad_bodies); i++) {
        const bad_body *b = &bad_bodies[i];
        expect_parse_error(b->body, strlen(b->body), MPB_EINVAL, b->needle, b->needle2, NULL);
    }
}

static void
bodies_that_are_not_utf8_json_text(void **state)
{
    expect_parse_error("", 0, MPB_EINVAL, "body is empty", NULL);
    expect_parse_error(NULL, 0, MPB_EINVAL, "body is empty", NULL);
    static const char with_nul[] = "{\"inputs\":\0[]}";
    expect_parse_error(with_nul, sizeof with_nul - 1, MPB_EINVAL, "NUL byte at byte 10", NULL);
    const char *latin1 = ONE_INPUT("\"name\":\"caf\xe9\"");
    expect_parse_error(latin1, strlen(latin1), MPB_EINVAL, "not valid UTF-8 at byte 23", NULL);
    /* An escaped backslash before "u0000" is no NUL. */
    mpb__kserve_request *req = parse_owned(input_body("BYTES", "[1]", "[\"\\\\u0000\"]"));
    assert_int_equal(req->items[0].len, 6);
    assert_memory_equal(req->items[0].data, "\\u0000", 6);
    mpb__kserve_request_destroy(&req);
    /* The length is what counts, not a NUL at the end. */
    const char *body = "{\"inputs\":[]}trailing";
    expect_parse_error(body, 13, MPB_EINVAL, "inputs has 0 tensors", NULL);
}

static void
limits_are_elimit_before_the_data_is_read(void **state)
{
    mpb__kserve_request *req = NULL;
    char err[256] = "";
    char *body = input_body("FP32", "[5,1]", "[1,2,3,4,5]");
    assert_int_equal(mpb__kserve_parse_infer(body, strlen(body), 4, 1000, &req, err, sizeof err),
                     MPB_ELIMIT);
    assert_non_null(strstr(err, "inputs[0].shape[0] is 5 items, the limit is 4"));
    assert_int_equal(mpb__kserve_parse_infer(body, strlen(body), 5, 19, &req, err, sizeof err),
                     MPB_ELIMIT);
    assert_non_null(strstr(err, "inputs[0] is 20 bytes of FP32, the limit is 19"));
    assert_int_equal(mpb__kserve_parse_infer(body, strlen(body), 5, 20, &req, err, sizeof err), 0);
    mpb__kserve_request_destroy(&req);
    free(body);

    /* Declared sizes fail on the shape, whatever the data says. */
    body = input_body("FP64", "[1000000,1000000]", "[]");
    assert_int_equal(
        mpb__kserve_parse_infer(body, strlen(body), SIZE_MAX, 1 << 20, &req, err, sizeof err),
        MPB_ELIMIT);
    assert_non_null(strstr(err, "bytes of FP64, the limit is 1048576"));
    free(body);
    body = input_body("UINT8", "[2,4503599627370496,4503599627370496]", "[]");
    assert_int_equal(
        mpb__kserve_parse_infer(body, strlen(body), SIZE_MAX, SIZE_MAX, &req, err, sizeof err),
        MPB_ELIMIT);
    assert_non_null(
        strstr(err, "inputs[0].shape [2,4503599627370496,4503599627370496] is too large"));
    free(body);

    /* BYTES: the strings' bytes. */
    body = input_body("BYTES", "[2]", "[\"abc\",\"def\"]");
    assert_int_equal(mpb__kserve_parse_infer(body, strlen(body), 2, 5, &req, err, sizeof err),
                     MPB_ELIMIT);
    assert_non_null(strstr(err, "inputs[0] is 6 bytes of BYTES, the limit is 5"));
    assert_null(req);
    free(body);
}

static void
error_buffers_may_be_small_or_absent(void **state)
{
    mpb__kserve_request *req = NULL;
    char err[8];
    memset(err, 'x', sizeof err);
    assert_int_equal(mpb__kserve_parse_infer("{}", 2, 1, 1, &req, err, sizeof err), MPB_EINVAL);
    assert_string_equal(err, "inputs ");
    assert_int_equal(mpb__kserve_parse_infer("{}", 2, 1, 1, &req, NULL, 0), MPB_EINVAL);
    assert_null(req);
    float nan = NAN;
    mpb__kserve_item item = {&nan, sizeof nan};
    mpb__kserve_output out = {"y", "FP32", 1, &item, NULL};
    assert_null(mpb__kserve_infer_response("m", NULL, NULL, &out, 1, NULL, 0));
}

/* xorshift64*: the same mutations every run. */
static uint64_t
next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Parses len bytes from an allocation of exactly that size (so ASan sees
 * any read past the end); a success is turned back into a response. */
static void
parse_must_not_crash(const char *bytes, size_t len)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, bytes, len);
    mpb__kserve_request *req = NULL;
    char err[256] = "";
    int rc = mpb__kserve_parse_infer(copy, len, 64, 4096, &req, err, sizeof err);
    if (rc == 0) {
        mpb__kserve_output out = {"y", req->datatype, req->n_items, req->items, NULL};
        free(mpb__kserve_infer_response("m", NULL, req->id, &out, 1, err, sizeof err));
        mpb__kserve_request_destroy(&req);
    } else {
        if (rc != MPB_EINVAL && rc != MPB_ELIMIT) {
            fail_msg("unexpected %s (%s) for %.*s", mpb_err_name(rc), err, (int)len, bytes);
        }
        assert_true(err[0] != '\0');
        assert_null(req);
    }
    free(copy);
}

static const char *const fuzz_seeds[] = {
    "{\"id\":\"a\\\"b\",\"parameters\":{\"k\":[1,{\"x\":null}]},\"inputs\":[{\"name\":\"x\","
    "\"datatype\":\"FP32\",\"shape\":[2,2,2],\"data\":[[[1.5,-2e3],[0,1e-7]],[[3,4],[5,6]]]}],"
    "\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":false}}]}",
    "{\"inputs\":[{\"name\":\"t\",\"datatype\":\"BYTES\",\"shape\":[3,1],\"data\":[[\"h\\u00e9\"],"
    "[\"\\ud83d\\ude00\\n\"],[\"\"]]}]}",
    "{\"inputs\":[{\"name\":\"b\",\"datatype\":\"BOOL\",\"shape\":[4],\"data\":[true,false,true,"
    "false]}]}",
    "{\"inputs\":[{\"name\":\"i\",\"datatype\":\"INT16\",\"shape\":[2,3],\"data\":[-32768,32767,0,"
    "1,-1,2]}]}",
};

static void
truncated_and_mutated_bodies_never_crash(void **state)
{
    static const char specials[] = "[]{}\",:\\0-.eE1u \x7f\xc3\xff";
    uint64_t seed = 0x6d70626174636821ull;
    for (size_t s = 0; s < MPB_ARRAY_LEN(fuzz_seeds); s++) {
        const char *body = fuzz_seeds[s];
        size_t len = strlen(body);
        mpb__kserve_request *req = parse_ok(body);
        mpb__kserve_request_destroy(&req);
        for (size_t cut = 0; cut < len; cut++) {
            parse_must_not_crash(body, cut);
        }
        char *mutated = malloc(len);
        for (int round = 0; round < 5000; round++) {
            memcpy(mutated, body, len);
            int flips = 1 + (int)(next_random(&seed) % 3);
            for (int f = 0; f < flips; f++) {
                size_t at = next_random(&seed) % len;
                uint64_t r = next_random(&seed);
                if (r % 8 == 0) {
                    mutated[at] = (char)(r >> 8); /* any byte */
                } else if (r & 1) {
                    mutated[at] = specials[(r >> 1) % (sizeof specials - 1)];
                } else {
                    mutated[at] = (char)(' ' + (r >> 8) % 95); /* printable ASCII */
                }
            }
            size_t keep = round % 4 == 0 ? next_random(&seed) % (len + 1) : len;
            parse_must_not_crash(mutated, keep);
        }
        free(mutated);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_bodies_are_einval_naming_the_field),
        cmocka_unit_test(bodies_that_are_not_utf8_json_text),
        cmocka_unit_test(limits_are_elimit_before_the_data_is_read),
        cmocka_unit_test(error_buffers_may_be_small_or_absent),
        cmocka_unit_test(truncated_and_mutated_bodies_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
