/*
 * The Open Inference Protocol codec: requests become items, items become
 * responses, and what comes back out reads as the same numbers; metadata
 * and error bodies are the protocol's JSON.
 */
#include <float.h>
#include <math.h>

#include "kserve_helpers.h"

/* Six values of a [2, 3] tensor: as JSON text, and as native elements. */
typedef struct dtype_case {
    const char *datatype;
    const char *json;
    const void *native;
    size_t size;
} dtype_case;

static const float fp32_values[] = {0.1f, -0.0f, FLT_MAX, FLT_MIN, 1.4e-45f, 1.0f / 3};
static const double fp64_values[] = {0.1, -0.0, DBL_MAX, DBL_MIN, 4.9e-324, 1.0 / 3};
static const int8_t int8_values[] = {INT8_MIN, INT8_MAX, 0, -1, 1, 42};
static const int16_t int16_values[] = {INT16_MIN, INT16_MAX, 0, -1, 1, 4242};
static const int32_t int32_values[] = {INT32_MIN, INT32_MAX, 0, -1, 1, 424242};
static const int64_t int64_values[] = {-9007199254740991, 9007199254740991, 0, -1, 1, 4242424242};
static const uint8_t uint8_values[] = {0, UINT8_MAX, 1, 128, 7, 42};
static const uint16_t uint16_values[] = {0, UINT16_MAX, 1, 32768, 7, 4242};
static const uint32_t uint32_values[] = {0, UINT32_MAX, 1, 2147483648u, 7, 424242};
static const uint64_t uint64_values[] = {0, 9007199254740991, 1, 4294967296, 7, 4242424242};
static const uint8_t bool_values[] = {1, 0, 0, 1, 1, 0};

static const dtype_case dtype_cases[] = {
    {"FP32", "[0.1, -0.0, 3.4028235e38, 1.17549435e-38, 1e-45, 0.33333334]", fp32_values, 4},
    {"FP64",
     "[0.1, -0, 1.7976931348623157e308, 2.2250738585072014e-308, 5e-324, 0.3333333333333333]",
     fp64_values, 8},
    {"INT8", "[-128, 127, 0, -1, 1, 42]", int8_values, 1},
    {"INT16", "[-32768, 32767, 0, -1, 1, 4242]", int16_values, 2},
    {"INT32", "[-2147483648, 2147483647, 0, -1, 1, 424242]", int32_values, 4},
    {"INT64", "[-9007199254740991, 9007199254740991, 0, -1, 1.0, 4242424242]", int64_values, 8},
    {"UINT8", "[0, 255, 1, 128, 7, 42]", uint8_values, 1},
    {"UINT16", "[0, 65535, 1, 32768, 7, 4242]", uint16_values, 2},
    {"UINT32", "[0, 4294967295, 1, 2147483648, 7, 424242]", uint32_values, 4},
    {"UINT64", "[0, 9007199254740991, 1, 4294967296, 7e0, 4242424242]", uint64_values, 8},
    {"BOOL", "[true, false, false, true, true, false]", bool_values, 1},
};

/* A JSON value read back as the native element of c's datatype. */
static void
json_to_native(const dtype_case *c, const cJSON *v, unsigned char *out)
{
    if (strcmp(c->datatype, "BOOL") == 0) {
        assert_true(cJSON_IsBool(v));
        out[0] = cJSON_IsTrue(v) ? 1 : 0;
        return;
    }
    assert_true(cJSON_IsNumber(v));
    if (strcmp(c->datatype, "FP32") == 0) {
        float f = (float)v->valuedouble;
        memcpy(out, &f, sizeof f);
    } else if (strcmp(c->datatype, "FP64") == 0) {
        memcpy(out, &v->valuedouble, sizeof(double));
    } else {
        /* Two's complement: the low bytes of the int64 are the narrower value. */
        uint64_t bits = (uint64_t)(int64_t)v->valuedouble;
        memcpy(out, &bits, c->size);
    }
}

static void
round_trip_one(const dtype_case *c)
{
    char *body = input_body(c->datatype, "[2, 3]", c->json);
    mpb__kserve_request *req = parse_ok(body);
    assert_string_equal(req->datatype, c->datatype);
    assert_int_equal(req->element_size, c->size);
    assert_int_equal(req->ndim, 2);
    assert_int_equal(req->n_items, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(req->items[i].len, 3 * c->size);
        assert_memory_equal(req->items[i].data, (const char *)c->native + i * 3 * c->size,
                            3 * c->size);
    }

    cJSON *resp = echo_response(req, NULL);
    cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "outputs"), 0);
    assert_string_equal(cJSON_GetObjectItem(out, "name")->valuestring, "y");
    assert_string_equal(cJSON_GetObjectItem(out, "datatype")->valuestring, c->datatype);
    assert_json_ints(cJSON_GetObjectItem(out, "shape"), (const long long[]){2, 3}, 2);
    cJSON *data = cJSON_GetObjectItem(out, "data");
    assert_int_equal(cJSON_GetArraySize(data), 6);
    for (size_t k = 0; k < 6; k++) {
        unsigned char back[8];
        json_to_native(c, cJSON_GetArrayItem(data, (int)k), back);
        if (memcmp(back, (const char *)c->native + k * c->size, c->size) != 0) {
            fail_msg("%s element %zu did not read back exactly", c->datatype, k);
        }
    }
    cJSON_Delete(resp);
    mpb__kserve_request_destroy(&req);
    assert_null(req);
    free(body);
}

static void
every_datatype_round_trips_exactly(void **state)
{
    for (size_t i = 0; i < MPB_ARRAY_LEN(dtype_cases); i++) {
        round_trip_one(&dtype_cases[i]);
    }
}

static void
response_text_is_compact_and_shortest(void **state)
{
    mpb__kserve_request *req = parse_ok(
        "{\"id\":\"r\\\"1\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],"
        "\"data\":[1.0, 0.5, 0.1, 1e20]}]}");
    assert_string_equal(req->id, "r\"1");
    assert_string_equal(req->input_name, "x");
    mpb__kserve_output out = {"y", "FP32", req->n_items, req->items, NULL};
    char *text = mpb__kserve_infer_response("m", NULL, req->id, &out, 1, NULL, 0);
    assert_string_equal(text,
                        "{\"model_name\":\"m\",\"id\":\"r\\\"1\",\"outputs\":[{\"name\":\"y\","
                        "\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,0.5,0.1,1e+20]}]}");
    free(text);
    mpb__kserve_request_destroy(&req);
}

static void
flat_and_nested_data_give_the_same_items(void **state)
{
    mpb__kserve_request *flat = parse_owned(input_body("INT32", "[2,2,2]", "[1,2,3,4,5,6,7,8]"));
    mpb__kserve_request *nested =
        parse_owned(input_body("INT32", "[2,2,2]", "[[[1,2],[3,4]],[[5,6],[7,8]]]"));
    assert_int_equal(flat->n_items, 2);
    assert_int_equal(nested->n_items, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(flat->items[i].len, 16);
        assert_int_equal(nested->items[i].len, 16);
        assert_memory_equal(flat->items[i].data, nested->items[i].data, 16);
    }
    int32_t second[4];
    memcpy(second, nested->items[1].data, sizeof second);
    assert_int_equal(second[0], 5);
    assert_int_equal(second[3], 8);
    mpb__kserve_request_destroy(&flat);
    mpb__kserve_request_destroy(&nested);
}

static void
bytes_items_are_the_strings_utf8(void **state)
{
    static const char *const want[] = {"hello", "h\xc3\xa9llo", "tab\t\"q\"\\", "\xf0\x9f\x98\x80",
                                       ""};
    mpb__kserve_request *req = parse_ok(
        "{\"inputs\":[{\"name\":\"t\",\"datatype\":\"BYTES\",\"shape\":[5],\"data\":[\"hello\","
        "\"h\\u00e9llo\",\"tab\\t\\\"q\\\"\\\\\",\"\\ud83d\\ude00\",\"\"]}]}");
    assert_int_equal(req->element_size, 0);
    assert_int_equal(req->n_items, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(req->items[i].len, strlen(want[i]));
        assert_memory_equal(req->items[i].data, want[i], strlen(want[i]));
    }
    cJSON *resp = echo_response(req, NULL);
    cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "outputs"), 0);
    assert_json_ints(cJSON_GetObjectItem(out, "shape"), (const long long[]){5}, 1);
    for (size_t i = 0; i < 5; i++) {
        cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(out, "data"), (int)i);
        assert_string_equal(s->valuestring, want[i]);
    }
    cJSON_Delete(resp);
    mpb__kserve_request_destroy(&req);

    /* [N, 1], nested: still one string per item. */
    req = parse_owned(input_body("BYTES", "[2,1]", "[[\"a\"],[\"bc\"]]"));
    assert_int_equal(req->n_items, 2);
    assert_int_equal(req->items[1].len, 2);
    assert_memory_equal(req->items[1].data, "bc", 2);
    mpb__kserve_request_destroy(&req);
}

static void
id_parameters_and_requested_outputs(void **state)
{
    mpb__kserve_request *req = parse_ok(
        "{\"id\":\"42\",\"parameters\":{\"any\":[1,{\"thing\":null}]},\"inputs\":[{\"name\":"
        "\"in\",\"datatype\":\"UINT8\",\"shape\":[0,3],\"parameters\":{\"p\":1},\"data\":[]}],"
        "\"outputs\":[{\"name\":\"a\",\"parameters\":{\"binary_data\":true}},{\"name\":\"b\"}]}");
    assert_string_equal(req->id, "42");
    assert_string_equal(req->input_name, "in");
    assert_int_equal(req->n_items, 0);
    assert_int_equal(req->shape[1], 3);
    assert_int_equal(req->n_outputs, 2);
    assert_string_equal(req->output_names[0], "a");
    assert_string_equal(req->output_names[1], "b");
    mpb__kserve_request_destroy(&req);

    req = parse_owned(input_body("FP64", "[1]", "[2.5]"));
    assert_null(req->id);
    assert_int_equal(req->n_outputs, 0);
    assert_null(req->output_names);
    mpb__kserve_request_destroy(&req);
    mpb__kserve_request_destroy(&req); /* idempotent */
    mpb__kserve_request_destroy(NULL);
}

/* The response shape of output "y": FP32, n items of elems floats each. */
static cJSON *
shape_for(size_t n, size_t elems, const mpb_tensor_def *declared)
{
    static const float zeros[16];
    mpb__kserve_item items[4];
    for (size_t i = 0; i < n; i++) {
        items[i] = (mpb__kserve_item){zeros, elems * sizeof(float)};
    }
    mpb__kserve_output out = {"y", "FP32", n, items, declared};
    char err[256] = "";
    char *text = mpb__kserve_infer_response("m", NULL, NULL, &out, 1, err, sizeof err);
    if (text == NULL) {
        fail_msg("%s", err);
    }
    cJSON *resp = parse_json_text(text);
    cJSON *shape = cJSON_DetachItemFromObject(
        cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "outputs"), 0), "shape");
    cJSON_Delete(resp);
    return shape;
}

static void
check_shape(size_t n, size_t elems, const mpb_tensor_def *declared, const long long *want,
            size_t ndim)
{
    cJSON *shape = shape_for(n, elems, declared);
    assert_json_ints(shape, want, ndim);
    cJSON_Delete(shape);
}

static void
response_shapes_follow_the_declared_shape_when_it_fits(void **state)
{
    const mpb_tensor_def known = {"y", "FP32", 2, {2, 3}};
    const mpb_tensor_def variable = {"y", "FP32", 2, {-1, 3}};
    const mpb_tensor_def wrong = {"y", "FP32", 1, {4}};
    const mpb_tensor_def two_variable = {"y", "FP32", 2, {-1, -1}};
    const mpb_tensor_def scalar = {"y", "FP32", 0, {0}};
    check_shape(2, 6, NULL, (const long long[]){2, 6}, 2);
    check_shape(2, 6, &known, (const long long[]){2, 2, 3}, 3);
    check_shape(2, 6, &variable, (const long long[]){2, 2, 3}, 3);
    check_shape(2, 7, &variable, (const long long[]){2, 7}, 2);
    check_shape(2, 6, &wrong, (const long long[]){2, 6}, 2);
    check_shape(2, 6, &two_variable, (const long long[]){2, 6}, 2);
    check_shape(3, 1, &scalar, (const long long[]){3}, 1);
    check_shape(0, 0, NULL, (const long long[]){0}, 1);
    check_shape(0, 0, &known, (const long long[]){0, 2, 3}, 3);
    check_shape(0, 0, &variable, (const long long[]){0}, 1);
}

static void
several_outputs_in_order(void **state)
{
    const int64_t labels[2] = {3, -4};
    const char *words[2] = {"cat", "dog"};
    mpb__kserve_item label_items[2] = {{&labels[0], 8}, {&labels[1], 8}};
    mpb__kserve_item word_items[2] = {{words[0], 3}, {words[1], 3}};
    mpb__kserve_output outs[2] = {{"label", "INT64", 2, label_items, NULL},
                                  {"word", "BYTES", 2, word_items, NULL}};
    cJSON *resp = parse_json_text(mpb__kserve_infer_response("m", "7", "i", outs, 2, NULL, 0));
    assert_string_equal(cJSON_GetObjectItem(resp, "model_name")->valuestring, "m");
    assert_string_equal(cJSON_GetObjectItem(resp, "model_version")->valuestring, "7");
    assert_string_equal(cJSON_GetObjectItem(resp, "id")->valuestring, "i");
    cJSON *list = cJSON_GetObjectItem(resp, "outputs");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    cJSON *label = cJSON_GetArrayItem(list, 0);
    assert_json_ints(cJSON_GetObjectItem(label, "shape"), (const long long[]){2, 1}, 2);
    assert_json_ints(cJSON_GetObjectItem(label, "data"), (const long long[]){3, -4}, 2);
    cJSON *word = cJSON_GetArrayItem(list, 1);
    assert_string_equal(cJSON_GetObjectItem(word, "datatype")->valuestring, "BYTES");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(word, "data"), 1)->valuestring,
                        "dog");
    cJSON_Delete(resp);
}

/* Builds a one-output response that must fail with a message holding every
 * NULL-terminated needle. */
static void
expect_response_error(const char *datatype, const mpb__kserve_item *items, size_t n,
                      const char *needle, ...)
{
    mpb__kserve_output out = {"y", datatype, n, items, NULL};
    char err[512] = "";
    char *text = mpb__kserve_infer_response("m", NULL, NULL, &out, 1, err, sizeof err);
    if (text != NULL) {
        fail_msg("expected an error, got %s", text);
    }
    va_list args;
    va_start(args, needle);
    for (const char *s = needle; s != NULL; s = va_arg(args, const char *)) {
        if (strstr(err, s) == NULL) {
            fail_msg("message \"%s\" lacks \"%s\"", err, s);
        }
    }
    va_end(args);
}

static void
values_json_cannot_hold_are_errors_naming_the_item(void **state)
{
    const float floats[3] = {1, NAN, 2};
    const double doubles[2] = {0, -INFINITY};
    const uint8_t bools[3] = {0, 1, 2};
    const char *text[3] = {"ok", "fine", "bad\xff"};
    mpb__kserve_item f[2] = {{&floats[0], 4}, {&floats[1], 4}};
    expect_response_error("FP32", f, 2, "outputs[0] 'y' item 1", "element 0", "NaN", NULL);
    mpb__kserve_item d[1] = {{doubles, 16}};
    expect_response_error("FP64", d, 1, "item 0", "element 1", "infinite", NULL);
    mpb__kserve_item b[1] = {{bools, 3}};
    expect_response_error("BOOL", b, 1, "item 0", "element 2", "byte 2", NULL);
    mpb__kserve_item s[3] = {{text[0], 2}, {text[1], 4}, {text[2], 4}};
    expect_response_error("BYTES", s, 3, "item 2", "not valid UTF-8", NULL);
    mpb__kserve_item odd[2] = {{floats, 4}, {floats, 6}};
    expect_response_error("FP32", odd, 2, "item 1 has 6 bytes", "FP32", NULL);
    mpb__kserve_item uneven[2] = {{floats, 4}, {floats, 8}};
    expect_response_error("FP32", uneven, 2, "item 1 has 8 bytes, item 0 has 4", NULL);
    expect_response_error("FP16", f, 1, "datatype 'FP16' is not supported", NULL);
}

static void
model_metadata_lists_tensors_with_a_batch_dimension(void **state)
{
    const mpb_tensor_def inputs[] = {{"x", "FP32", 1, {256}}, {0}};
    const mpb_tensor_def outputs[] = {{"scores", "FP32", 2, {-1, 16}}, {"raw", NULL, 0, {0}}, {0}};
    cJSON *meta = parse_json_text(mpb__kserve_model_metadata("mlp", "mpbatch", inputs, outputs));
    assert_string_equal(cJSON_GetObjectItem(meta, "name")->valuestring, "mlp");
    assert_string_equal(cJSON_GetObjectItem(meta, "platform")->valuestring, "mpbatch");
    cJSON *versions = cJSON_GetObjectItem(meta, "versions");
    assert_int_equal(cJSON_GetArraySize(versions), 1);
    assert_string_equal(cJSON_GetArrayItem(versions, 0)->valuestring, "1");
    cJSON *in = cJSON_GetArrayItem(cJSON_GetObjectItem(meta, "inputs"), 0);
    assert_string_equal(cJSON_GetObjectItem(in, "name")->valuestring, "x");
    assert_string_equal(cJSON_GetObjectItem(in, "datatype")->valuestring, "FP32");
    assert_json_ints(cJSON_GetObjectItem(in, "shape"), (const long long[]){-1, 256}, 2);
    cJSON *outs = cJSON_GetObjectItem(meta, "outputs");
    assert_int_equal(cJSON_GetArraySize(outs), 2);
    assert_json_ints(cJSON_GetObjectItem(cJSON_GetArrayItem(outs, 0), "shape"),
                     (const long long[]){-1, -1, 16}, 3);
    cJSON *raw = cJSON_GetArrayItem(outs, 1);
    assert_string_equal(cJSON_GetObjectItem(raw, "datatype")->valuestring, "BYTES");
    assert_json_ints(cJSON_GetObjectItem(raw, "shape"), (const long long[]){-1}, 1);
    cJSON_Delete(meta);

    char *text = mpb__kserve_model_metadata("m", NULL, NULL, NULL);
    assert_string_equal(text,
                        "{\"name\":\"m\",\"versions\":[\"1\"],\"platform\":\"\",\"inputs\":[],"
                        "\"outputs\":[]}");
    free(text);
}

static void
server_metadata_and_error_bodies(void **state)
{
    cJSON *meta = parse_json_text(mpb__kserve_server_metadata());
    assert_string_equal(cJSON_GetObjectItem(meta, "name")->valuestring, "mpbatch");
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", MPB_VERSION_MAJOR, MPB_VERSION_MINOR,
             MPB_VERSION_PATCH);
    assert_string_equal(cJSON_GetObjectItem(meta, "version")->valuestring, version);
    cJSON *extensions = cJSON_GetObjectItem(meta, "extensions");
    assert_true(cJSON_IsArray(extensions));
    assert_int_equal(cJSON_GetArraySize(extensions), 0);
    cJSON_Delete(meta);

    char *text = mpb__kserve_error_json("say \"no\"\\\n\x01 caf\xc3\xa9 \xff!");
    assert_string_equal(text, "{\"error\":\"say \\\"no\\\"\\\\\\n\\u0001 caf\xc3\xa9 \\ufffd!\"}");
    cJSON *error = parse_json_text(text);
    assert_string_equal(cJSON_GetObjectItem(error, "error")->valuestring,
                        "say \"no\"\\\n\x01 caf\xc3\xa9 \xef\xbf\xbd!");
    cJSON_Delete(error);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_datatype_round_trips_exactly),
        cmocka_unit_test(response_text_is_compact_and_shortest),
        cmocka_unit_test(flat_and_nested_data_give_the_same_items),
        cmocka_unit_test(bytes_items_are_the_strings_utf8),
        cmocka_unit_test(id_parameters_and_requested_outputs),
        cmocka_unit_test(response_shapes_follow_the_declared_shape_when_it_fits),
        cmocka_unit_test(several_outputs_in_order),
        cmocka_unit_test(values_json_cannot_hold_are_errors_naming_the_item),
        cmocka_unit_test(model_metadata_lists_tensors_with_a_batch_dimension),
        cmocka_unit_test(server_metadata_and_error_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
