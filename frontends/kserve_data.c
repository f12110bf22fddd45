/*
 * DESIGN: the datatypes of the Open Inference Protocol and the reading of an
 * input's "data". The data is walked twice: the first walk checks its
 * nesting against the shape and counts elements (and, for BYTES, string
 * bytes) without allocating; after the caller's limits hold, the second
 * converts and range-checks every value into the items' storage.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "frontends/kserve.h"
#include "frontends/kserve_int.h"
#include "mpbatch/error.h"

/* The smallest double that rounds to infinity as a float: FLT_MAX plus half
 * an ulp (a tie, which rounds to the even infinity). */
#define FP32_OVERFLOW 0x1.ffffffp+127

const char mpb__kserve_dtype_names[] =
    "FP32, FP64, INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64, BOOL, BYTES";

static const mpb__kserve_dtype dtypes[] = {
    {"FP32", MPB_KSERVE_FLOAT, 4, 0, 0},
    {"FP64", MPB_KSERVE_FLOAT, 8, 0, 0},
    {"INT8", MPB_KSERVE_INT, 1, INT8_MIN, INT8_MAX},
    {"INT16", MPB_KSERVE_INT, 2, INT16_MIN, INT16_MAX},
    {"INT32", MPB_KSERVE_INT, 4, INT32_MIN, INT32_MAX},
    {"INT64", MPB_KSERVE_INT, 8, -MPB_KSERVE_EXACT_INT_MAX, MPB_KSERVE_EXACT_INT_MAX},
    {"UINT8", MPB_KSERVE_UINT, 1, 0, UINT8_MAX},
    {"UINT16", MPB_KSERVE_UINT, 2, 0, UINT16_MAX},
    {"UINT32", MPB_KSERVE_UINT, 4, 0, UINT32_MAX},
    {"UINT64", MPB_KSERVE_UINT, 8, 0, MPB_KSERVE_EXACT_INT_MAX},
    {"BOOL", MPB_KSERVE_BOOL, 1, 0, 1},
    {"BYTES", MPB_KSERVE_BYTES, 0, 0, 0},
};

const mpb__kserve_dtype *
mpb__kserve_dtype_find(const char *name)
{
    for (size_t i = 0; i < MPB_ARRAY_LEN(dtypes); i++) {
        if (strcmp(dtypes[i].name, name) == 0) {
            return &dtypes[i];
        }
    }
    return NULL;
}

size_t
mpb__kserve_count(const cJSON *node)
{
    size_t n = 0;
    for (const cJSON *child = node->child; child != NULL; child = child->next) {
        n++;
    }
    return n;
}

const char *
mpb__kserve_shape_text(const int64_t *shape, unsigned ndim, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (unsigned d = 0; d < ndim && used < size; d++) {
        used +=
            (size_t)snprintf(buf + used, size - used, "%s%lld", d ? "," : "", (long long)shape[d]);
    }
    if (used < size) {
        snprintf(buf + used, size - used, "]");
    }
    return buf;
}

/* Walks of inputs[0].data: checking (storage NULL) or converting. */
typedef struct data_walk {
    const mpb__kserve_dtype *dtype;
    mpb__kserve_request *req;
    unsigned leaf_depth;              /* 0 for flat data, ndim - 1 for nested */
    size_t path[MPB_TENSOR_MAX_DIMS]; /* index at each depth, for messages */
    size_t count;                     /* elements seen */
    size_t string_bytes;              /* BYTES: bytes of the strings seen */
    unsigned char *storage;           /* converting: where elements go */
    char *err;
    size_t err_len;
} data_walk;

/* MPB_EINVAL with "inputs[0].data[i][j] <message>" for the first depth indices. */
static int walk_fail(const data_walk *w, unsigned depth, const char *fmt, ...) MPB_PRINTF(3, 4);

static int
walk_fail(const data_walk *w, unsigned depth, const char *fmt, ...)
{
    char message[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    char where[256] = "inputs[0].data";
    size_t used = strlen(where);
    for (unsigned d = 0; d < depth && used < sizeof where; d++) {
        used += (size_t)snprintf(where + used, sizeof where - used, "[%zu]", w->path[d]);
    }
    return mpb__set_error(w->err, w->err_len, MPB_EINVAL, "%s %s", where, message);
}

/* Stores an in-range integer as size native bytes. Through uint64_t: the
 * low bytes of the two's complement are the narrower type's value. */
static void
store_integer(unsigned char *dst, size_t size, int64_t value)
{
    uint64_t bits = (uint64_t)value;
    if (size == 1) {
        uint8_t narrow = (uint8_t)bits;
        memcpy(dst, &narrow, sizeof narrow);
    } else if (size == 2) {
        uint16_t narrow = (uint16_t)bits;
        memcpy(dst, &narrow, sizeof narrow);
    } else if (size == 4) {
        uint32_t narrow = (uint32_t)bits;
        memcpy(dst, &narrow, sizeof narrow);
    } else {
        memcpy(dst, &bits, sizeof bits);
    }
}

/* A number for a message: the shortest of 15 to 17 digits that is exact. */
static const char *
number_text(double value, char *text, size_t size)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, size, "%.*g", digits, value);
        if (strtod(text, NULL) == value) {
            break;
        }
    }
    return text;
}

static int
put_integer(const data_walk *w, double value, unsigned depth, unsigned char *dst)
{
    const mpb__kserve_dtype *t = w->dtype;
    char text[32];
    char min[32];
    char max[32];
    if (value != floor(value)) {
        return walk_fail(w, depth, "is %s, not an integer (%s)",
                         number_text(value, text, sizeof text), t->name);
    }
    if (value < t->min || value > t->max) {
        return walk_fail(w, depth, "is %s, out of range for %s (%s..%s%s)",
                         number_text(value, text, sizeof text), t->name,
                         number_text(t->min, min, sizeof min), number_text(t->max, max, sizeof max),
                         t->size == 8 ? ": larger integers are not exact as JSON numbers" : "");
    }
    store_integer(dst, t->size, (int64_t)value);
    return 0;
}

/* Converts one JSON value into the element at dst. */
static int
put_number(const data_walk *w, const cJSON *value, unsigned depth, unsigned char *dst)
{
    const mpb__kserve_dtype *t = w->dtype;
    if (t->kind == MPB_KSERVE_BOOL) {
        if (!cJSON_IsBool(value)) {
            return walk_fail(w, depth, "must be true or false (BOOL)");
        }
        *dst = cJSON_IsTrue(value) ? 1 : 0;
        return 0;
    }
    if (!cJSON_IsNumber(value)) {
        return walk_fail(w, depth, "must be a number (%s)", t->name);
    }
    double d = value->valuedouble;
    if (t->kind != MPB_KSERVE_FLOAT) {
        return put_integer(w, d, depth, dst);
    }
    if (!isfinite(d) || (t->size == 4 && fabs(d) >= FP32_OVERFLOW)) {
        return walk_fail(w, depth, "is out of range for %s", t->name);
    }
    if (t->size == 4) {
        float f = (float)d;
        memcpy(dst, &f, sizeof f);
    } else {
        memcpy(dst, &d, sizeof d);
    }
    return 0;
}

static int
visit_leaf(data_walk *w, const cJSON *value, unsigned depth)
{
    char shape[192];
    if (cJSON_IsArray(value) || cJSON_IsObject(value)) {
        return walk_fail(w, depth, "is an %s, not a value: data is flat or nested as shape %s",
                         cJSON_IsArray(value) ? "array" : "object",
                         mpb__kserve_shape_text(w->req->shape, w->req->ndim, shape, sizeof shape));
    }
    int is_string = cJSON_IsString(value);
    size_t index = w->count++;
    if (w->storage == NULL) {
        if (is_string) {
            w->string_bytes += strlen(value->valuestring);
        }
        return 0;
    }
    if (w->dtype->kind != MPB_KSERVE_BYTES) {
        return put_number(w, value, depth, w->storage + index * w->dtype->size);
    }
    if (!is_string) {
        return walk_fail(w, depth, "must be a string (BYTES)");
    }
    size_t len = strlen(value->valuestring);
    memcpy(w->storage + w->string_bytes, value->valuestring, len);
    w->req->items[index].data = w->storage + w->string_bytes;
    w->req->items[index].len = len;
    w->string_bytes += len;
    return 0;
}

static int
walk_array(data_walk *w, const cJSON *array, unsigned depth)
{
    char shape[192];
    size_t n = mpb__kserve_count(array);
    if (w->leaf_depth > 0 && n != (size_t)w->req->shape[depth]) {
        return walk_fail(w, depth, "has %zu %s, shape %s needs %lld at dimension %u", n,
                         n == 1 ? "entry" : "entries",
                         mpb__kserve_shape_text(w->req->shape, w->req->ndim, shape, sizeof shape),
                         (long long)w->req->shape[depth], depth);
    }
    size_t i = 0;
    for (const cJSON *child = array->child; child != NULL; child = child->next, i++) {
        int rc;
        w->path[depth] = i;
        if (depth >= w->leaf_depth) {
            rc = visit_leaf(w, child, depth + 1);
        } else if (!cJSON_IsArray(child)) {
            rc =
                walk_fail(w, depth + 1, "must be an array: nested data follows shape %s",
                          mpb__kserve_shape_text(w->req->shape, w->req->ndim, shape, sizeof shape));
        } else {
            rc = walk_array(w, child, depth + 1);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
mpb__kserve_read_data(const cJSON *data, const mpb__kserve_dtype *dtype, mpb__kserve_request *req,
                      size_t max_bytes, size_t row_elems, size_t elems, char *err, size_t err_len)
{
    char text[192];
    data_walk w = {.dtype = dtype, .req = req, .err = err, .err_len = err_len};
    w.leaf_depth = data->child != NULL && cJSON_IsArray(data->child) ? req->ndim - 1 : 0;
    int rc = walk_array(&w, data, 0);
    if (rc != 0) {
        return rc;
    }
    if (w.count != elems) {
        return mpb__set_error(
            err, err_len, MPB_EINVAL, "inputs[0].data has %zu values, shape %s needs %zu", w.count,
            mpb__kserve_shape_text(req->shape, req->ndim, text, sizeof text), elems);
    }
    size_t bytes = dtype->kind == MPB_KSERVE_BYTES ? w.string_bytes : elems * dtype->size;
    if (bytes > max_bytes) {
        return mpb__set_error(err, err_len, MPB_ELIMIT,
                              "inputs[0] is %zu bytes of %s, the limit is %zu", bytes, dtype->name,
                              max_bytes);
    }
    size_t n = req->n_items;
    req->items = calloc(n ? n : 1, sizeof *req->items);
    req->storage = malloc(bytes ? bytes : 1);
    if (req->items == NULL || req->storage == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOMEM,
                              "out of memory for inputs[0]: %zu items, %zu bytes", n, bytes);
    }
    w.storage = req->storage;
    w.count = 0;
    w.string_bytes = 0;
    rc = walk_array(&w, data, 0);
    if (rc != 0 || dtype->kind == MPB_KSERVE_BYTES) {
        return rc;
    }
    size_t row_bytes = row_elems * dtype->size;
    for (size_t i = 0; i < n; i++) {
        req->items[i].data = w.storage + i * row_bytes;
        req->items[i].len = row_bytes;
    }
    return 0;
}
