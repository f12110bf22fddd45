/*
 * combine: the last stage after an ensemble servlet. An item is the
 * ensemble's value, a msgpack array with one element per member in member
 * order: `bin` (that member's value), `array` (a nested ensemble's value)
 * or {"error": {"type", "message", "servlet", "worker", "pid"}} (a member's
 * error kept in place). Each bin is a little-endian float32 vector, all of
 * the same length; the value is one float32 vector: their element-wise
 * mean, sum, max or min, or their concatenation (option `op`).
 *
 * on_error=fail (default): a member's error makes the item a `MemberError`
 * naming the member and quoting its error. on_error=skip: errors are left
 * out, and the item fails only when no member is left. Anything else
 * (nested arrays, unequal lengths, bytes that are not msgpack) is a
 * per-item `ValueError`.
 *
 * Items are read in place (workers/msgpack_cursor.h), not with
 * msgpack_unpack: msgpack_unpack allocates from declared counts before it
 * sees the elements, so a 5-byte item claiming 2^32 members would ask for
 * ~100 GB (core/wire.c guards whole frames the same way).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpbatch/worker.h"
#include "msgpack_cursor.h"

#define VALUE_ERROR "ValueError"
#define MEMBER_ERROR "MemberError"
/* Characters of a member's error text quoted in a MemberError. */
#define MAX_QUOTED 300

typedef enum combine_op { OP_MEAN, OP_SUM, OP_MAX, OP_MIN, OP_CONCAT } combine_op;

static const struct {
    const char *name;
    combine_op op;
} op_names[] = {
    {"mean", OP_MEAN}, {"sum", OP_SUM}, {"max", OP_MAX}, {"min", OP_MIN}, {"concat", OP_CONCAT},
};

typedef struct combine_state {
    combine_op op;
    int skip_errors;
    const unsigned char **vectors; /* the current item's member vectors */
    size_t cap_vectors;
} combine_state;

/* One member's error, borrowed from the item. */
typedef struct member_error {
    mpb__text type;
    mpb__text message;
    mpb__text servlet;
    mpb__text worker;
    int64_t pid;
} member_error;

/* Fields of an error that must be there (servlet, worker, pid may not). */
enum { HAS_TYPE = 1, HAS_MESSAGE = 2 };

/* One field of {"type", "message", "servlet", "worker", "pid"}; *seen
 * collects HAS_TYPE and HAS_MESSAGE. */
static int
read_error_field(mpb__cursor *c, member_error *e, unsigned *seen)
{
    mpb__text key;
    if (!mpb__cursor_read_str(c, &key)) {
        return 0;
    }
    mpb__text *fields[] = {&e->type, &e->message, &e->servlet, &e->worker};
    const char *names[] = {"type", "message", "servlet", "worker"};
    for (size_t i = 0; i < 4; i++) {
        if (mpb__text_is(key, names[i])) {
            *seen |= i == 0 ? HAS_TYPE : i == 1 ? HAS_MESSAGE : 0;
            return mpb__cursor_read_str(c, fields[i]);
        }
    }
    if (mpb__text_is(key, "pid")) {
        return mpb__cursor_read_int(c, &e->pid);
    }
    return mpb__cursor_skip_scalar(c); /* a field of a newer peer */
}

/* {"error": {...}} with at least a type and a message (either may be ""). */
static int
read_member_error(mpb__cursor *c, member_error *e)
{
    uint64_t n = 0;
    mpb__text key;
    unsigned seen = 0;
    memset(e, 0, sizeof *e);
    e->type.ptr = e->message.ptr = e->servlet.ptr = e->worker.ptr = "";
    if (!mpb__cursor_read_map(c, &n) || n != 1 || !mpb__cursor_read_str(c, &key) ||
        !mpb__text_is(key, "error") || !mpb__cursor_read_map(c, &n)) {
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!read_error_field(c, e, &seen)) {
            return 0;
        }
    }
    return seen == (HAS_TYPE | HAS_MESSAGE);
}

/* ---- combining ---- */

static float
load_f32(const unsigned char *p)
{
    uint32_t bits =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static void
store_f32(unsigned char *p, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(bits >> (8 * i));
    }
}

static void
reduce(combine_op op, const unsigned char *const *vectors, size_t n_vectors, size_t floats,
       unsigned char *out)
{
    for (size_t j = 0; j < floats; j++) {
        double acc = load_f32(vectors[0] + 4 * j);
        for (size_t k = 1; k < n_vectors; k++) {
            double x = load_f32(vectors[k] + 4 * j);
            if (op == OP_MAX) {
                acc = x > acc ? x : acc;
            } else if (op == OP_MIN) {
                acc = x < acc ? x : acc;
            } else {
                acc += x;
            }
        }
        if (op == OP_MEAN) {
            acc /= (double)n_vectors;
        }
        store_f32(out + 4 * j, (float)acc);
    }
}

static int
write_value(const combine_state *st, mpb_batch *batch, size_t index, size_t n_vectors,
            size_t vector_bytes)
{
    size_t out_bytes = st->op == OP_CONCAT ? vector_bytes * n_vectors : vector_bytes;
    if (out_bytes == 0) {
        return mpb_batch_set_value(batch, index, "", 0);
    }
    unsigned char *out = mpb_batch_value_buffer(batch, index, out_bytes);
    if (out == NULL) {
        return mpb_batch_set_error(batch, index, VALUE_ERROR,
                                   "the combined value of %zu bytes is over the item limit",
                                   out_bytes);
    }
    if (st->op == OP_CONCAT) {
        for (size_t k = 0; k < n_vectors; k++) {
            memcpy(out + k * vector_bytes, st->vectors[k], vector_bytes);
        }
    } else {
        reduce(st->op, st->vectors, n_vectors, vector_bytes / 4, out);
    }
    return 0;
}

/* Sets item index's error; returns 1, "this item is done". */
static int item_error(mpb_batch *batch, size_t index, const char *type, const char *fmt, ...)
    MPB_PRINTF(4, 5);

static int
item_error(mpb_batch *batch, size_t index, const char *type, const char *fmt, ...)
{
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    mpb_batch_set_error(batch, index, type, "%s", message);
    return 1;
}

/* Up to max characters of t, for "%.*s". */
static int
shown(mpb__text t, size_t max)
{
    return (int)(t.len < max ? t.len : max);
}

static int
member_failed(mpb_batch *batch, size_t index, size_t member, const member_error *e,
              const char *lead)
{
    char where[256] = "";
    if (e->servlet.len > 0 || e->worker.len > 0) {
        snprintf(where, sizeof where, " (servlet %.*s, worker %.*s, pid %lld)",
                 shown(e->servlet, 64), e->servlet.ptr, shown(e->worker, 64), e->worker.ptr,
                 (long long)e->pid);
    }
    return item_error(batch, index, MEMBER_ERROR, "%smember %zu failed with %.*s: %.*s%s", lead,
                      member, shown(e->type, 64), e->type.ptr, shown(e->message, MAX_QUOTED),
                      e->message.ptr, where);
}

/* The progress of one item through its members. */
typedef struct item_scan {
    size_t n_vectors;
    size_t vector_bytes;
    size_t first_vector; /* member index of vectors[0] */
    size_t n_errors;
    size_t first_error; /* member index of `error` */
    member_error error;
} item_scan;

static int
add_vector(combine_state *st, mpb_batch *batch, size_t index, size_t i, mpb__text vector,
           item_scan *scan)
{
    if (vector.len % 4 != 0) {
        return item_error(batch, index, VALUE_ERROR,
                          "member %zu has %zu bytes, not a whole number of float32", i, vector.len);
    }
    if (scan->n_vectors > 0 && vector.len != scan->vector_bytes) {
        return item_error(batch, index, VALUE_ERROR,
                          "member %zu has %zu float32 where member %zu has %zu: members must "
                          "have the same length",
                          i, vector.len / 4, scan->first_vector, scan->vector_bytes / 4);
    }
    if (scan->n_vectors == 0) {
        scan->first_vector = i;
        scan->vector_bytes = vector.len;
    }
    st->vectors[scan->n_vectors++] = (const unsigned char *)vector.ptr;
    return 0;
}

/* Reads member i; returns 0 to go on, 1 once the item has its error. */
static int
scan_member(combine_state *st, mpb_batch *batch, size_t index, mpb__cursor *c, size_t i,
            item_scan *scan)
{
    mpb__text vector;
    member_error e;
    mpb__msgpack_kind k = mpb__cursor_peek(c);
    if (k == MPB_MSGPACK_BIN) {
        if (!mpb__cursor_read_bin(c, &vector)) {
            return item_error(batch, index, VALUE_ERROR,
                              "member %zu is a truncated bin: it claims more bytes than the "
                              "item has",
                              i);
        }
        return add_vector(st, batch, index, i, vector, scan);
    }
    if (k == MPB_MSGPACK_ARRAY) {
        return item_error(batch, index, VALUE_ERROR,
                          "member %zu is a nested ensemble's value (an array): give that "
                          "ensemble its own combine stage first",
                          i);
    }
    if (k != MPB_MSGPACK_MAP) {
        return item_error(batch, index, VALUE_ERROR,
                          "member %zu is %s, not bin (a float32 vector) or an error", i,
                          mpb__msgpack_kind_name(k));
    }
    if (!read_member_error(c, &e)) {
        return item_error(batch, index, VALUE_ERROR,
                          "member %zu is a map but not an error {\"error\": {\"type\": str, "
                          "\"message\": str, ...}}",
                          i);
    }
    if (!st->skip_errors) {
        return member_failed(batch, index, i, &e, "");
    }
    if (scan->n_errors++ == 0) {
        scan->first_error = i;
        scan->error = e;
    }
    return 0;
}

/* Room for n member vectors; 0, or 1 once the item has its error. */
static int
ensure_vectors(combine_state *st, mpb_batch *batch, size_t index, size_t n)
{
    if (n <= st->cap_vectors) {
        return 0;
    }
    const unsigned char **grown = realloc(st->vectors, n * sizeof *grown);
    if (grown == NULL) {
        return item_error(batch, index, VALUE_ERROR, "no memory for %zu members", n);
    }
    st->vectors = grown;
    st->cap_vectors = n;
    return 0;
}

static void
combine_item(combine_state *st, mpb_batch *batch, size_t index)
{
    size_t len;
    const void *item = mpb_batch_item(batch, index, &len);
    mpb__cursor c = {item, len, 0};
    uint64_t n = 0;
    if (!mpb__cursor_read_array(&c, &n)) {
        mpb__msgpack_kind k = mpb__cursor_peek(&c);
        if (k == MPB_MSGPACK_ARRAY) {
            item_error(batch, index, VALUE_ERROR,
                       "truncated msgpack array: it claims more members than the item has");
        } else {
            item_error(batch, index, VALUE_ERROR,
                       "expected a msgpack array of ensemble members, got %s",
                       mpb__msgpack_kind_name(k));
        }
        return;
    }
    if (n == 0) {
        item_error(batch, index, VALUE_ERROR, "the ensemble value has no members");
        return;
    }
    if (ensure_vectors(st, batch, index, (size_t)n) != 0) {
        return;
    }
    item_scan scan = {0};
    for (size_t i = 0; i < (size_t)n; i++) {
        if (scan_member(st, batch, index, &c, i, &scan) != 0) {
            return;
        }
    }
    if (mpb__cursor_left(&c) > 0) {
        item_error(batch, index, VALUE_ERROR, "%zu stray byte(s) after the %zu member(s)",
                   mpb__cursor_left(&c), (size_t)n);
        return;
    }
    if (scan.n_vectors == 0) {
        char lead[64];
        snprintf(lead, sizeof lead, "all %zu members failed; the first, ", (size_t)n);
        member_failed(batch, index, scan.first_error, &scan.error, lead);
        return;
    }
    write_value(st, batch, index, scan.n_vectors, scan.vector_bytes);
}

static int
combine_call(void *state, mpb_batch *batch)
{
    for (size_t i = 0; i < mpb_batch_size(batch); i++) {
        combine_item(state, batch, i);
    }
    return 0;
}

static int
combine_init(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
             size_t err_len)
{
    (void)info;
    const char *op = mpb_options_get(options, "op");
    const char *on_error = mpb_options_get(options, "on_error");
    combine_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    size_t i = 0;
    while (op != NULL && i < sizeof op_names / sizeof op_names[0] &&
           strcmp(op, op_names[i].name) != 0) {
        i++;
    }
    if (i == sizeof op_names / sizeof op_names[0]) {
        snprintf(err, err_len, "op must be mean, sum, max, min or concat (got '%.40s')", op);
        free(st);
        return -1;
    }
    st->op = op != NULL ? op_names[i].op : OP_MEAN;
    if (on_error != NULL && strcmp(on_error, "fail") != 0 && strcmp(on_error, "skip") != 0) {
        snprintf(err, err_len, "on_error must be fail or skip (got '%.40s')", on_error);
        free(st);
        return -1;
    }
    st->skip_errors = on_error != NULL && strcmp(on_error, "skip") == 0;
    *state = st;
    return 0;
}

static void
combine_cleanup(void *state)
{
    combine_state *st = state;
    free(st->vectors);
    free(st);
}

static const mpb_option_def combine_options[] = {
    {"op", MPB_OPTION_STRING, "mean", "mean, sum, max, min (element-wise) or concat"},
    {"on_error", MPB_OPTION_STRING, "fail",
     "fail: a member's error fails the item (MemberError); skip: leave it out"},
    {0},
};

static const mpb_tensor_def combine_inputs[] = {
    {.name = "input", .datatype = "BYTES", .ndim = 1, .shape = {1}},
    {0},
};

static const mpb_tensor_def combine_outputs[] = {
    {.name = "output", .datatype = "FP32", .ndim = 1, .shape = {-1}},
    {0},
};

MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "combine",
    .init = combine_init,
    .call = combine_call,
    .cleanup = combine_cleanup,
    .batch_size = 64,
    .batch_wait_us = MPB_BATCH_WAIT_NONE,
    .options = combine_options,
    .inputs = combine_inputs,
    .outputs = combine_outputs,
    .doc = "combines an ensemble's float32 vectors: mean, sum, max, min or concat",
};
