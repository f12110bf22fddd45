/*
 * Helpers of the Open Inference Protocol codec tests: request bodies of one
 * input, parsing that must succeed, and responses read back with cJSON.
 */
#ifndef MPB_TESTS_FRONTENDS_KSERVE_HELPERS_H
#define MPB_TESTS_FRONTENDS_KSERVE_HELPERS_H

#include <cjson/cJSON.h>

#include "frontends/kserve.h"
#include "support.h"

/* {"inputs": [{"name": "x", "datatype", "shape", "data"}]}; caller frees. */
static inline char *
input_body(const char *datatype, const char *shape, const char *data)
{
    return mpb_asprintf("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"%s\",\"shape\":%s,"
                        "\"data\":%s}]}",
                        datatype, shape, data);
}

/* Parses body without limits; fails the test with the message otherwise. */
static inline mpb__kserve_request *
parse_ok(const char *body)
{
    mpb__kserve_request *req = NULL;
    char err[512] = "";
    int rc = mpb__kserve_parse_infer(body, strlen(body), SIZE_MAX, SIZE_MAX, &req, err, sizeof err);
    if (rc != 0) {
        fail_msg("parse failed: %s (%s)\nbody: %s", err, mpb_err_name(rc), body);
    }
    assert_non_null(req);
    return req;
}

/* parse_ok of a body from input_body, which it frees. */
static inline mpb__kserve_request *
parse_owned(char *body)
{
    mpb__kserve_request *req = parse_ok(body);
    free(body);
    return req;
}

/* Parses body, which must fail with status rc and a message containing
 * every NULL-terminated needle. */
static inline void
expect_parse_error(const char *body, size_t len, int rc, const char *needle, ...)
{
    mpb__kserve_request *req = NULL;
    char err[512] = "";
    int got = mpb__kserve_parse_infer(body, len, 1000, 1 << 20, &req, err, sizeof err);
    if (got != rc) {
        fail_msg("expected %s, got %s (%s)\nbody: %.*s", mpb_err_name(rc), mpb_err_name(got), err,
                 (int)len, body);
    }
    assert_null(req);
    va_list args;
    va_start(args, needle);
    for (const char *n = needle; n != NULL; n = va_arg(args, const char *)) {
        if (strstr(err, n) == NULL) {
            fail_msg("message \"%s\" lacks \"%s\"\nbody: %.*s", err, n, (int)len, body);
        }
    }
    va_end(args);
}

/* Parses JSON text that must be valid, and frees the text. */
static inline cJSON *
parse_json_text(char *text)
{
    assert_non_null(text);
    cJSON *json = cJSON_Parse(text);
    if (json == NULL) {
        fail_msg("not JSON: %s", text);
    }
    free(text);
    return json;
}

/* The response to model "m" whose one output "y" is the request's items as
 * they are, read back. */
static inline cJSON *
echo_response(const mpb__kserve_request *req, const mpb_tensor_def *declared)
{
    mpb__kserve_output out = {.name = "y",
                              .datatype = req->datatype,
                              .n_items = req->n_items,
                              .items = req->items,
                              .declared = declared};
    char err[512] = "";
    char *text = mpb__kserve_infer_response("m", "1", req->id, &out, 1, err, sizeof err);
    if (text == NULL) {
        fail_msg("response failed: %s", err);
    }
    return parse_json_text(text);
}

/* Asserts that a JSON array holds exactly the integers of want. */
static inline void
assert_json_ints(const cJSON *array, const long long *want, size_t n)
{
    assert_true(cJSON_IsArray(array));
    assert_int_equal(cJSON_GetArraySize(array), n);
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(array, (int)i);
        assert_true(cJSON_IsNumber(v));
        assert_true(v->valuedouble == (double)want[i]);
    }
}

#endif
