/*
 * DESIGN: the infer request parser of the Open Inference Protocol codec.
 * The body is checked as text (UTF-8, no NUL, no \u0000 escape, which
 * cJSON would silently cut a string at), parsed by cJSON, and read field by
 * field. The one input's "data" is walked twice: the first walk checks its
 * nesting against the shape and counts elements (and, for BYTES, string
 * bytes) so that the limits hold before anything sized by the body is
 * allocated; the second converts and range-checks every value into the
 * items' storage. Anything wrong in the body is MPB_EINVAL (MPB_ELIMIT for
 * sizes) with a message naming the field, never an assertion.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "frontends/kserve.h"
#include "frontends/kserve_int.h"
#include "mpbatch/error.h"

void
mpb__kserve_request_destroy(mpb__kserve_request **request_p)
{
    if (request_p == NULL || *request_p == NULL) {
        return;
    }
    mpb__kserve_request *req = *request_p;
    free(req->id);
    free(req->input_name);
    for (size_t i = 0; i < req->n_outputs; i++) {
        free(req->output_names[i]);
    }
    free(req->output_names);
    free(req->items);
    free(req->storage);
    free(req);
    *request_p = NULL;
}

/* Text-level checks cJSON does not make: the protocol's JSON is UTF-8, and
 * a NUL (raw, or escaped as \u0000) would silently end a string. */
static int
check_body_text(const char *body, size_t len, char *err, size_t err_len)
{
    if (len == 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "body is empty: expected a JSON object");
    }
    const char *nul = memchr(body, '\0', len);
    if (nul != NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "body has a NUL byte at byte %zu",
                              (size_t)(nul - body));
    }
    size_t valid = mpb__utf8_valid_len(body, len);
    if (valid < len) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "body is not valid UTF-8 at byte %zu",
                              valid);
    }
    for (size_t i = 0; i + 1 < len; i++) {
        if (body[i] != '\\') {
            continue;
        }
        if (body[i + 1] == 'u' && len - i >= 6 && memcmp(body + i + 2, "0000", 4) == 0) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "body has a \\u0000 escape at byte %zu: strings with NUL "
                                  "characters are not supported",
                                  i);
        }
        i++; /* the escaped character, so "\\\\u0000" is no escape of NUL */
    }
    return 0;
}

static cJSON *
parse_json(const char *body, size_t len, char *err, size_t err_len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (root == NULL) {
        /* end, not cJSON_GetErrorPtr(): that one is a global, shared by threads. */
        size_t at = end != NULL && end >= body ? (size_t)(end - body) : 0;
        mpb__set_error(err, err_len, MPB_EINVAL, "body is not valid JSON near byte %zu", at);
        return NULL;
    }
    while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) {
        end++;
    }
    if (end != body + len) {
        cJSON_Delete(root);
        mpb__set_error(err, err_len, MPB_EINVAL,
                       "body has more text after the JSON value at byte %zu", (size_t)(end - body));
        return NULL;
    }
    return root;
}

/* Finds the members called keys[0..n) of object in one pass; a key given
 * twice is an error. where names the object in messages. */
static int
members(const cJSON *object, const char *where, const char *const *keys, size_t n,
        const cJSON **out, char *err, size_t err_len)
{
    for (size_t k = 0; k < n; k++) {
        out[k] = NULL;
    }
    for (const cJSON *child = object->child; child != NULL; child = child->next) {
        for (size_t k = 0; k < n && child->string != NULL; k++) {
            if (strcmp(child->string, keys[k]) != 0) {
                continue;
            }
            if (out[k] != NULL) {
                return mpb__set_error(err, err_len, MPB_EINVAL, "%s%s%s appears twice", where,
                                      *where ? "." : "", keys[k]);
            }
            out[k] = child;
        }
    }
    return 0;
}

static int
require_string(const cJSON *node, const char *what, char *err, size_t err_len)
{
    if (node == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "%s is missing", what);
    }
    if (!cJSON_IsString(node)) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "%s must be a string", what);
    }
    return 0;
}

static int
read_shape(const cJSON *shape, const mpb__kserve_dtype *dtype, mpb__kserve_request *req, char *err,
           size_t err_len)
{
    if (shape == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "inputs[0].shape is missing");
    }
    if (!cJSON_IsArray(shape)) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs[0].shape must be an array of dimensions");
    }
    size_t n = mpb__kserve_count(shape);
    if (n == 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs[0].shape is empty: it needs at least the leading (batch) "
                              "dimension");
    }
    if (n > MPB_TENSOR_MAX_DIMS) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs[0].shape has %zu dimensions, at most %d are supported", n,
                              MPB_TENSOR_MAX_DIMS);
    }
    unsigned d = 0;
    for (const cJSON *dim = shape->child; dim != NULL; dim = dim->next, d++) {
        double v = cJSON_IsNumber(dim) ? dim->valuedouble : -1;
        if (!(v >= 0 && v <= MPB_KSERVE_EXACT_INT_MAX && v == floor(v))) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "inputs[0].shape[%u] must be a non-negative integer", d);
        }
        req->shape[d] = (int64_t)v;
    }
    req->ndim = d;
    if (dtype->kind == MPB_KSERVE_BYTES && !(d == 1 || (d == 2 && req->shape[1] == 1))) {
        char text[192];
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs[0].shape %s: BYTES inputs need shape [N] or [N,1] (one "
                              "string per item)",
                              mpb__kserve_shape_text(req->shape, req->ndim, text, sizeof text));
    }
    return 0;
}

/* Elements per item and in all; checks the limits that the shape alone
 * decides (items, and bytes for numeric types). */
static int
size_input(const mpb__kserve_request *req, const mpb__kserve_dtype *dtype, size_t max_items,
           size_t max_bytes, size_t *row_elems, size_t *elems, char *err, size_t err_len)
{
    char text[192];
    size_t n = (size_t)req->shape[0];
    if (n > max_items) {
        return mpb__set_error(err, err_len, MPB_ELIMIT,
                              "inputs[0].shape[0] is %zu items, the limit is %zu", n, max_items);
    }
    int has_zero = 0;
    for (unsigned d = 1; d < req->ndim; d++) {
        has_zero |= req->shape[d] == 0;
    }
    size_t row = has_zero ? 0 : 1;
    int overflow = 0;
    for (unsigned d = 1; d < req->ndim && !has_zero; d++) {
        overflow |= __builtin_mul_overflow(row, (size_t)req->shape[d], &row);
    }
    size_t bytes = 0;
    overflow |= __builtin_mul_overflow(row, n, elems);
    overflow |= __builtin_mul_overflow(*elems, dtype->size, &bytes);
    if (overflow) {
        return mpb__set_error(err, err_len, MPB_ELIMIT, "inputs[0].shape %s is too large",
                              mpb__kserve_shape_text(req->shape, req->ndim, text, sizeof text));
    }
    if (bytes > max_bytes) {
        return mpb__set_error(err, err_len, MPB_ELIMIT,
                              "inputs[0] is %zu bytes of %s, the limit is %zu", bytes, dtype->name,
                              max_bytes);
    }
    *row_elems = row;
    return 0;
}

static int
check_input_parameters(const cJSON *parameters, char *err, size_t err_len)
{
    if (parameters == NULL) {
        return 0;
    }
    if (!cJSON_IsObject(parameters)) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "inputs[0].parameters must be an object");
    }
    if (cJSON_GetObjectItemCaseSensitive(parameters, "binary_data_size") != NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs[0].parameters.binary_data_size: the binary tensor data "
                              "extension is not supported; send \"data\" as JSON");
    }
    if (cJSON_GetObjectItemCaseSensitive(parameters, "shared_memory_region") != NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs[0].parameters.shared_memory_region: the shared memory "
                              "extension is not supported; send \"data\" as JSON");
    }
    return 0;
}

enum { IN_NAME, IN_DATATYPE, IN_SHAPE, IN_PARAMETERS, IN_DATA, IN_KEYS };
static const char *const input_keys[IN_KEYS] = {"name", "datatype", "shape", "parameters", "data"};

static int
read_input(const cJSON *input, mpb__kserve_request *req, size_t max_items, size_t max_bytes,
           char *err, size_t err_len)
{
    const cJSON *field[IN_KEYS];
    if (!cJSON_IsObject(input)) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs[0] must be an object with name, shape, datatype and data");
    }
    int rc = members(input, "inputs[0]", input_keys, IN_KEYS, field, err, err_len);
    if (rc == 0) {
        rc = require_string(field[IN_NAME], "inputs[0].name", err, err_len);
    }
    if (rc == 0) {
        rc = require_string(field[IN_DATATYPE], "inputs[0].datatype", err, err_len);
    }
    if (rc != 0) {
        return rc;
    }
    req->input_name = mpb_strdup(field[IN_NAME]->valuestring);
    const mpb__kserve_dtype *dtype = mpb__kserve_dtype_find(field[IN_DATATYPE]->valuestring);
    if (dtype == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs[0].datatype '%s' is not supported (%s)",
                              field[IN_DATATYPE]->valuestring, mpb__kserve_dtype_names);
    }
    req->datatype = dtype->name;
    req->element_size = dtype->size;
    size_t row_elems = 0;
    size_t elems = 0;
    rc = check_input_parameters(field[IN_PARAMETERS], err, err_len);
    if (rc == 0) {
        rc = read_shape(field[IN_SHAPE], dtype, req, err, err_len);
    }
    if (rc == 0) {
        rc = size_input(req, dtype, max_items, max_bytes, &row_elems, &elems, err, err_len);
    }
    if (rc != 0) {
        return rc;
    }
    req->n_items = (size_t)req->shape[0];
    if (field[IN_DATA] == NULL || !cJSON_IsArray(field[IN_DATA])) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "inputs[0].data %s",
                              field[IN_DATA] == NULL ? "is missing" : "must be an array");
    }
    return mpb__kserve_read_data(field[IN_DATA], dtype, req, max_bytes, row_elems, elems, err,
                                 err_len);
}

static int
read_outputs(const cJSON *outputs, mpb__kserve_request *req, char *err, size_t err_len)
{
    if (outputs == NULL) {
        return 0;
    }
    if (!cJSON_IsArray(outputs)) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "outputs must be an array");
    }
    req->output_names = mpb_calloc(mpb__kserve_count(outputs) + 1, sizeof *req->output_names);
    size_t i = 0;
    for (const cJSON *output = outputs->child; output != NULL; output = output->next, i++) {
        static const char *const keys[] = {"name"};
        const cJSON *name;
        char where[48];
        snprintf(where, sizeof where, "outputs[%zu]", i);
        if (!cJSON_IsObject(output)) {
            return mpb__set_error(err, err_len, MPB_EINVAL, "%s must be an object", where);
        }
        int rc = members(output, where, keys, 1, &name, err, err_len);
        if (rc == 0) {
            snprintf(where, sizeof where, "outputs[%zu].name", i);
            rc = require_string(name, where, err, err_len);
        }
        if (rc != 0) {
            return rc;
        }
        req->output_names[req->n_outputs++] = mpb_strdup(name->valuestring);
    }
    return 0;
}

/* parameters.timeout: microseconds, as Triton takes it (a whole number
 * from 1 to 2^40); absent: no deadline. */
static int
read_timeout(const cJSON *parameters, mpb__kserve_request *req, char *err, size_t err_len)
{
    const cJSON *timeout =
        parameters ? cJSON_GetObjectItemCaseSensitive(parameters, "timeout") : NULL;
    if (timeout == NULL) {
        return 0;
    }
    double us = cJSON_IsNumber(timeout) ? timeout->valuedouble : -1;
    if (us < 1 || us > 1099511627776.0 || us != (double)(int64_t)us) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "parameters.timeout must be a whole number of microseconds from 1 "
                              "to 2^40");
    }
    req->timeout_us = (int64_t)us;
    return 0;
}

enum { REQ_ID, REQ_PARAMETERS, REQ_INPUTS, REQ_OUTPUTS, REQ_KEYS };
static const char *const request_keys[REQ_KEYS] = {"id", "parameters", "inputs", "outputs"};

static int
read_request(const cJSON *root, mpb__kserve_request *req, size_t max_items, size_t max_bytes,
             char *err, size_t err_len)
{
    const cJSON *field[REQ_KEYS];
    if (!cJSON_IsObject(root)) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "body must be a JSON object with \"inputs\"");
    }
    int rc = members(root, "", request_keys, REQ_KEYS, field, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (field[REQ_ID] != NULL) {
        if (!cJSON_IsString(field[REQ_ID])) {
            return mpb__set_error(err, err_len, MPB_EINVAL, "id must be a string");
        }
        req->id = mpb_strdup(field[REQ_ID]->valuestring);
    }
    if (field[REQ_PARAMETERS] != NULL && !cJSON_IsObject(field[REQ_PARAMETERS])) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "parameters must be an object");
    }
    rc = read_timeout(field[REQ_PARAMETERS], req, err, err_len);
    if (rc != 0) {
        return rc;
    }
    const cJSON *inputs = field[REQ_INPUTS];
    if (inputs == NULL || !cJSON_IsArray(inputs)) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "inputs %s",
                              inputs == NULL ? "is missing: the body needs one input tensor"
                                             : "must be an array of one input tensor");
    }
    size_t n = mpb__kserve_count(inputs);
    if (n != 1) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "inputs has %zu tensors: the model takes one input (an mpbatch item "
                              "is one byte string)",
                              n);
    }
    rc = read_input(inputs->child, req, max_items, max_bytes, err, err_len);
    if (rc == 0) {
        rc = read_outputs(field[REQ_OUTPUTS], req, err, err_len);
    }
    return rc;
}

int
mpb__kserve_parse_infer(const char *body, size_t len, size_t max_items, size_t max_bytes,
                        mpb__kserve_request **out, char *err, size_t err_len)
{
    MPB_ASSERT(out != NULL);
    MPB_ASSERT(body != NULL || len == 0);
    *out = NULL;
    int rc = check_body_text(body, len, err, err_len);
    if (rc != 0) {
        return rc;
    }
    cJSON *root = parse_json(body, len, err, err_len);
    if (root == NULL) {
        return MPB_EINVAL;
    }
    mpb__kserve_request *req = mpb_calloc(1, sizeof *req);
    rc = read_request(root, req, max_items, max_bytes, err, err_len);
    cJSON_Delete(root);
    if (rc != 0) {
        mpb__kserve_request_destroy(&req);
        return rc;
    }
    *out = req;
    return 0;
}
