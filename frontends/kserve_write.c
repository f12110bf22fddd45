/*
 * DESIGN: the writers of the Open Inference Protocol codec: infer responses
 * re-assembled from one value per item, model and server metadata, error
 * bodies. JSON is written straight into a growing buffer rather than built
 * as a cJSON tree (a node per element would cost more than the values, and
 * cJSON prints every number through a double). Numbers are written in the
 * shortest text that reads back to the same value; values JSON cannot hold
 * (NaN, infinities, text that is not UTF-8) fail the response with a
 * message naming the output and the item.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "frontends/kserve.h"
#include "frontends/kserve_int.h"
#include "mpbatch/error.h"
#include "tracking/text.h"

/* A JSON string of len bytes; bytes that are not UTF-8 become U+FFFD. */
static void
put_string(mpb__strbuf *out, const void *bytes, size_t len)
{
    const unsigned char *s = bytes;
    size_t copied = 0; /* s[copied..i) goes out as it is */
    mpb__strbuf_append(out, "\"", 1);
    if (len == 0) {
        mpb__strbuf_append(out, "\"", 1);
        return;
    }
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 1 : mpb__utf8_sequence_len(s + i, len - i);
        char escape[8] = "";
        if (n == 0) {
            strcpy(escape, "\\ufffd");
            n = 1;
        } else if (c == '"' || c == '\\') {
            snprintf(escape, sizeof escape, "\\%c", c);
        } else if (c == '\n') {
            strcpy(escape, "\\n");
        } else if (c == '\r') {
            strcpy(escape, "\\r");
        } else if (c == '\t') {
            strcpy(escape, "\\t");
        } else if (c < 0x20) {
            snprintf(escape, sizeof escape, "\\u%04x", c);
        }
        if (escape[0] != '\0') {
            mpb__strbuf_append(out, (const char *)s + copied, i - copied);
            mpb__strbuf_puts(out, escape);
            copied = i + n;
        }
        i += n;
    }
    mpb__strbuf_append(out, (const char *)s + copied, len - copied);
    mpb__strbuf_append(out, "\"", 1);
}

static void
put_text(mpb__strbuf *out, const char *text)
{
    put_string(out, text, strlen(text));
}

static void
put_shape(mpb__strbuf *out, const int64_t *shape, unsigned ndim)
{
    mpb__strbuf_append(out, "[", 1);
    for (unsigned d = 0; d < ndim; d++) {
        mpb__strbuf_printf(out, "%s%lld", d ? "," : "", (long long)shape[d]);
    }
    mpb__strbuf_append(out, "]", 1);
}

/* Shortest "%g" text that reads back to v. A normal float with a text of 6
 * digits or fewer is printed that way by "%.6g" (its rounding error is far
 * below half a step of the 6th digit), so the search starts there; 9 digits
 * always read back. Subnormals have fewer bits: they start at 1 digit. */
static void
format_float(float v, char *text, size_t size)
{
    for (int digits = fabsf(v) < FLT_MIN ? 1 : 6; digits <= 9; digits++) {
        snprintf(text, size, "%.*g", digits, (double)v);
        if (strtof(text, NULL) == v) {
            return;
        }
    }
}

/* The same for doubles: from 15 digits (1 for subnormals) to 17. */
static void
format_double(double v, char *text, size_t size)
{
    for (int digits = fabs(v) < DBL_MIN ? 1 : 15; digits <= 17; digits++) {
        snprintf(text, size, "%.*g", digits, v);
        if (strtod(text, NULL) == v) {
            return;
        }
    }
}

static int64_t
load_signed(const unsigned char *p, size_t size)
{
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    switch (size) {
    case 1:
        memcpy(&i8, p, sizeof i8);
        return i8;
    case 2:
        memcpy(&i16, p, sizeof i16);
        return i16;
    case 4:
        memcpy(&i32, p, sizeof i32);
        return i32;
    default:
        memcpy(&i64, p, sizeof i64);
        return i64;
    }
}

static uint64_t
load_unsigned(const unsigned char *p, size_t size)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (size) {
    case 1:
        memcpy(&u8, p, sizeof u8);
        return u8;
    case 2:
        memcpy(&u16, p, sizeof u16);
        return u16;
    case 4:
        memcpy(&u32, p, sizeof u32);
        return u32;
    default:
        memcpy(&u64, p, sizeof u64);
        return u64;
    }
}

/* The JSON text of the element at p; NULL when it has none, with the
 * reason in text. */
static const char *
element_text(const mpb__kserve_dtype *t, const unsigned char *p, char *text, size_t size)
{
    float f;
    double d;
    switch (t->kind) {
    case MPB_KSERVE_FLOAT:
        if (t->size == 4) {
            memcpy(&f, p, sizeof f);
            d = f;
        } else {
            memcpy(&d, p, sizeof d);
        }
        if (!isfinite(d)) {
            snprintf(text, size, "is %s: JSON numbers cannot be NaN or infinite",
                     isnan(d) ? "NaN" : "infinite");
            return NULL;
        }
        if (t->size == 4) {
            format_float(f, text, size);
        } else {
            format_double(d, text, size);
        }
        return text;
    case MPB_KSERVE_INT:
        snprintf(text, size, "%lld", (long long)load_signed(p, t->size));
        return text;
    case MPB_KSERVE_UINT:
        snprintf(text, size, "%llu", (unsigned long long)load_unsigned(p, t->size));
        return text;
    default: /* BOOL */
        if (*p > 1) {
            snprintf(text, size, "is byte %u, not 0 (false) or 1 (true)", *p);
            return NULL;
        }
        return *p ? "true" : "false";
    }
}

/* "outputs[0] 'scores'", for messages. */
static const char *
output_where(const mpb__kserve_output *o, size_t index, char *buf, size_t size)
{
    snprintf(buf, size, "outputs[%zu] '%s'", index, o->name);
    return buf;
}

/* The response shape of a numeric output whose items hold elems elements:
 * [n, declared dims...] when the declared shape fits (one -1 is inferred),
 * else [n, elems]. Without items, [0, declared dims...] or [0]. */
static unsigned
numeric_shape(const mpb__kserve_output *o, size_t elems, int64_t *shape)
{
    const mpb_tensor_def *def = o->declared;
    shape[0] = (int64_t)o->n_items;
    if (def != NULL && def->ndim <= MPB_TENSOR_MAX_DIMS) {
        size_t known = 1;
        int variable = -1;
        int usable = 1;
        for (unsigned d = 0; d < def->ndim; d++) {
            if (def->shape[d] == -1 && variable < 0) {
                variable = (int)d;
            } else if (def->shape[d] < 0 ||
                       __builtin_mul_overflow(known, (size_t)def->shape[d], &known)) {
                usable = 0;
            }
        }
        if (o->n_items == 0) {
            usable = usable && variable < 0;
        } else if (variable < 0) {
            usable = usable && known == elems;
        } else {
            usable = usable && known > 0 && elems % known == 0;
        }
        if (usable) {
            for (unsigned d = 0; d < def->ndim; d++) {
                shape[1 + d] = (int)d == variable ? (int64_t)(elems / known) : def->shape[d];
            }
            return 1 + def->ndim;
        }
    }
    if (o->n_items == 0) {
        return 1;
    }
    shape[1] = (int64_t)elems;
    return 2;
}

/* Elements per item of a numeric output: every item the same whole number
 * of elements. */
static int
numeric_elems(const mpb__kserve_output *o, size_t index, const mpb__kserve_dtype *t, size_t *elems,
              char *err, size_t err_len)
{
    char where[160];
    for (size_t i = 0; i < o->n_items; i++) {
        size_t len = o->items[i].len;
        if (len % t->size != 0) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "%s item %zu has %zu bytes, not a whole number of %s (%zu "
                                  "bytes each)",
                                  output_where(o, index, where, sizeof where), i, len, t->name,
                                  t->size);
        }
        if (len != o->items[0].len) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "%s item %zu has %zu bytes, item 0 has %zu: the items of a "
                                  "tensor have the same size",
                                  output_where(o, index, where, sizeof where), i, len,
                                  o->items[0].len);
        }
    }
    *elems = o->n_items > 0 ? o->items[0].len / t->size : 0;
    return 0;
}

static int
put_numeric_data(mpb__strbuf *out, const mpb__kserve_output *o, size_t index,
                 const mpb__kserve_dtype *t, size_t elems, char *err, size_t err_len)
{
    char text[64];
    char where[160];
    for (size_t i = 0; i < o->n_items; i++) {
        const unsigned char *row = o->items[i].data;
        for (size_t k = 0; k < elems; k++) {
            const char *value = element_text(t, row + k * t->size, text, sizeof text);
            if (value == NULL) {
                return mpb__set_error(err, err_len, MPB_EINVAL, "%s item %zu: %s element %zu %s",
                                      output_where(o, index, where, sizeof where), i, t->name, k,
                                      text);
            }
            if (i > 0 || k > 0) {
                mpb__strbuf_append(out, ",", 1);
            }
            mpb__strbuf_puts(out, value);
        }
    }
    return 0;
}

static int
put_bytes_data(mpb__strbuf *out, const mpb__kserve_output *o, size_t index, char *err,
               size_t err_len)
{
    char where[160];
    for (size_t i = 0; i < o->n_items; i++) {
        size_t len = o->items[i].len;
        size_t valid = mpb__utf8_valid_len(o->items[i].data, len);
        if (valid < len) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "%s item %zu is not valid UTF-8 (at byte %zu): BYTES are "
                                  "written as JSON strings",
                                  output_where(o, index, where, sizeof where), i, valid);
        }
        if (i > 0) {
            mpb__strbuf_append(out, ",", 1);
        }
        put_string(out, o->items[i].data, len);
    }
    return 0;
}

static int
put_output(mpb__strbuf *out, const mpb__kserve_output *o, size_t index, char *err, size_t err_len)
{
    char where[160];
    MPB_ASSERT(o->name != NULL);
    MPB_ASSERT(o->items != NULL || o->n_items == 0);
    const mpb__kserve_dtype *t = o->datatype ? mpb__kserve_dtype_find(o->datatype) : NULL;
    if (t == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "%s: datatype '%s' is not supported (%s)",
                              output_where(o, index, where, sizeof where),
                              o->datatype ? o->datatype : "(none)", mpb__kserve_dtype_names);
    }
    int64_t shape[1 + MPB_TENSOR_MAX_DIMS];
    unsigned ndim = 1;
    size_t elems = 1;
    shape[0] = (int64_t)o->n_items;
    if (t->kind != MPB_KSERVE_BYTES) {
        int rc = numeric_elems(o, index, t, &elems, err, err_len);
        if (rc != 0) {
            return rc;
        }
        ndim = numeric_shape(o, elems, shape);
    }
    mpb__strbuf_puts(out, "{\"name\":");
    put_text(out, o->name);
    mpb__strbuf_printf(out, ",\"datatype\":\"%s\",\"shape\":", t->name);
    put_shape(out, shape, ndim);
    mpb__strbuf_puts(out, ",\"data\":[");
    int rc = t->kind == MPB_KSERVE_BYTES ? put_bytes_data(out, o, index, err, err_len)
                                         : put_numeric_data(out, o, index, t, elems, err, err_len);
    mpb__strbuf_puts(out, "]}");
    return rc;
}

char *
mpb__kserve_infer_response(const char *model_name, const char *model_version_or_null,
                           const char *id_or_null, const mpb__kserve_output *outputs,
                           size_t n_outputs, char *err, size_t err_len)
{
    MPB_ASSERT(model_name != NULL);
    MPB_ASSERT(outputs != NULL || n_outputs == 0);
    mpb__strbuf out = {0};
    mpb__strbuf_puts(&out, "{\"model_name\":");
    put_text(&out, model_name);
    if (model_version_or_null != NULL) {
        mpb__strbuf_puts(&out, ",\"model_version\":");
        put_text(&out, model_version_or_null);
    }
    if (id_or_null != NULL) {
        mpb__strbuf_puts(&out, ",\"id\":");
        put_text(&out, id_or_null);
    }
    mpb__strbuf_puts(&out, ",\"outputs\":[");
    for (size_t i = 0; i < n_outputs; i++) {
        if (i > 0) {
            mpb__strbuf_append(&out, ",", 1);
        }
        if (put_output(&out, &outputs[i], i, err, err_len) != 0) {
            mpb__strbuf_clear(&out);
            return NULL;
        }
    }
    mpb__strbuf_puts(&out, "]}");
    return mpb__strbuf_take(&out);
}

static void
put_tensor_defs(mpb__strbuf *out, const mpb_tensor_def *defs)
{
    mpb__strbuf_append(out, "[", 1);
    for (size_t i = 0; defs != NULL && defs[i].name != NULL; i++) {
        const mpb_tensor_def *def = &defs[i];
        int64_t shape[1 + MPB_TENSOR_MAX_DIMS] = {-1};
        unsigned ndim = def->ndim <= MPB_TENSOR_MAX_DIMS ? def->ndim : MPB_TENSOR_MAX_DIMS;
        memcpy(shape + 1, def->shape, ndim * sizeof shape[0]);
        mpb__strbuf_puts(out, i > 0 ? ",{\"name\":" : "{\"name\":");
        put_text(out, def->name);
        mpb__strbuf_puts(out, ",\"datatype\":");
        put_text(out, def->datatype != NULL ? def->datatype : "BYTES");
        mpb__strbuf_puts(out, ",\"shape\":");
        put_shape(out, shape, 1 + ndim);
        mpb__strbuf_append(out, "}", 1);
    }
    mpb__strbuf_append(out, "]", 1);
}

char *
mpb__kserve_model_metadata(const char *name, const char *platform, const mpb_tensor_def *inputs,
                           const mpb_tensor_def *outputs)
{
    MPB_ASSERT(name != NULL);
    mpb__strbuf out = {0};
    mpb__strbuf_puts(&out, "{\"name\":");
    put_text(&out, name);
    mpb__strbuf_puts(&out, ",\"versions\":[\"1\"],\"platform\":");
    put_text(&out, platform != NULL ? platform : "");
    mpb__strbuf_puts(&out, ",\"inputs\":");
    put_tensor_defs(&out, inputs);
    mpb__strbuf_puts(&out, ",\"outputs\":");
    put_tensor_defs(&out, outputs);
    mpb__strbuf_append(&out, "}", 1);
    return mpb__strbuf_take(&out);
}

char *
mpb__kserve_server_metadata(void)
{
    return mpb_asprintf("{\"name\":\"mpbatch\",\"version\":\"%d.%d.%d\",\"extensions\":[]}",
                        MPB_VERSION_MAJOR, MPB_VERSION_MINOR, MPB_VERSION_PATCH);
}

char *
mpb__kserve_error_json(const char *message)
{
    MPB_ASSERT(message != NULL);
    mpb__strbuf out = {0};
    mpb__strbuf_puts(&out, "{\"error\":");
    put_text(&out, message);
    mpb__strbuf_append(&out, "}", 1);
    return mpb__strbuf_take(&out);
}
