/*
 * DESIGN
 * mpb_batch is what a plugin sees. Items are borrowed pointers into the
 * worker's receive buffer; when the worker stored them back to back (it does
 * for items of equal length that arrived in order) the matrix view is those
 * bytes themselves, otherwise the first mpb_batch_matrix call copies once.
 * Every value or message a plugin hands over is either borrowed until the
 * call returns or copied into an arena whose allocations never move, so
 * buffers returned by mpb_batch_value_buffer stay valid while others are
 * added. After the call, settle() turns "unset" into NoResult and a failed
 * call into errors, so every item leaves with exactly one outcome.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/batch.h"
#include "core/util.h"
#include "mpbatch/error.h"

void
mpb__batch_init(mpb_batch *batch, size_t max_item_bytes)
{
    memset(batch, 0, sizeof *batch);
    batch->max_item_bytes = max_item_bytes;
    mpb__arena_init(&batch->arena, 1 << 16);
}

void
mpb__batch_free(mpb_batch *batch)
{
    free(batch->items);
    free(batch->results);
    mpb__arena_free(&batch->arena);
    memset(batch, 0, sizeof *batch);
}

void
mpb__batch_reset(mpb_batch *batch)
{
    batch->count = 0;
    batch->matrix = NULL;
    batch->row_bytes = 0;
    batch->matrix_checked = 0;
    batch->output_matrix = NULL;
    batch->output_row_bytes = 0;
    batch->fail_type = NULL;
    batch->fail_message = NULL;
    mpb__arena_reset(&batch->arena);
}

/* Where empty items and the matrix of empty rows point: never NULL. */
static const unsigned char no_bytes[1];

void
mpb__batch_add(mpb_batch *batch, const void *data, size_t len)
{
    if (batch->count == batch->cap) {
        batch->cap = batch->cap ? batch->cap * 2 : 64;
        batch->items = mpb_realloc(batch->items, batch->cap * sizeof *batch->items);
        batch->results = mpb_realloc(batch->results, batch->cap * sizeof *batch->results);
    }
    /* an empty item still points somewhere: plugins may memcpy 0 bytes of it */
    batch->items[batch->count] = (mpb__batch_item){data != NULL ? data : no_bytes, len};
    memset(&batch->results[batch->count], 0, sizeof batch->results[0]);
    batch->count++;
}

size_t
mpb_batch_size(const mpb_batch *batch)
{
    return batch->count;
}

const void *
mpb_batch_item(const mpb_batch *batch, size_t index, size_t *len)
{
    if (index >= batch->count) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = batch->items[index].len;
    }
    return batch->items[index].data;
}

static void
find_matrix(mpb_batch *batch)
{
    batch->matrix_checked = 1;
    if (batch->count == 0) {
        return;
    }
    size_t row = batch->items[0].len;
    const unsigned char *first = batch->items[0].data;
    int contiguous = 1;
    for (size_t i = 1; i < batch->count; i++) {
        if (batch->items[i].len != row) {
            return;
        }
        if ((const unsigned char *)batch->items[i].data != first + i * row) {
            contiguous = 0;
        }
    }
    batch->row_bytes = row;
    if (row == 0) {
        /* items of no bytes: a matrix of empty rows, which has no bytes to
         * point at but must not read as "no matrix" */
        batch->matrix = no_bytes;
        return;
    }
    if (contiguous) {
        batch->matrix = first;
        return;
    }
    unsigned char *copy = mpb__arena_alloc(&batch->arena, row * batch->count);
    for (size_t i = 0; i < batch->count; i++) {
        memcpy(copy + i * row, batch->items[i].data, row);
    }
    batch->matrix = copy;
}

const void *
mpb_batch_matrix(const mpb_batch *batch, size_t *row_bytes)
{
    mpb_batch *self = (mpb_batch *)batch;
    if (!self->matrix_checked) {
        find_matrix(self);
    }
    if (row_bytes != NULL) {
        *row_bytes = self->matrix ? self->row_bytes : 0;
    }
    return self->matrix;
}

int
mpb_batch_set_value_borrowed(mpb_batch *batch, size_t index, const void *data, size_t len)
{
    if (index >= batch->count) {
        return MPB_EINVAL;
    }
    if (len > batch->max_item_bytes) {
        return MPB_ELIMIT;
    }
    mpb__batch_result *r = &batch->results[index];
    r->outcome = MPB_OUTCOME_VALUE;
    r->data = data;
    r->len = len;
    return 0;
}

void *
mpb_batch_value_buffer(mpb_batch *batch, size_t index, size_t len)
{
    if (index >= batch->count || len > batch->max_item_bytes) {
        return NULL;
    }
    void *buffer = mpb__arena_alloc(&batch->arena, len);
    mpb_batch_set_value_borrowed(batch, index, buffer, len);
    return buffer;
}

int
mpb_batch_set_value(mpb_batch *batch, size_t index, const void *data, size_t len)
{
    if (index >= batch->count) {
        return MPB_EINVAL;
    }
    if (len > batch->max_item_bytes) {
        return MPB_ELIMIT;
    }
    void *copy = mpb_batch_value_buffer(batch, index, len);
    if (len > 0) { /* data may be NULL for an empty value */
        memcpy(copy, data, len);
    }
    return 0;
}

void *
mpb_batch_output_matrix(mpb_batch *batch, size_t row_bytes)
{
    if (batch->count == 0 || row_bytes > batch->max_item_bytes) {
        return NULL;
    }
    batch->output_matrix = mpb__arena_alloc(&batch->arena, row_bytes * batch->count);
    batch->output_row_bytes = row_bytes;
    for (size_t i = 0; i < batch->count; i++) {
        if (batch->results[i].outcome != MPB_OUTCOME_ERROR) { /* an error set before stays */
            mpb_batch_set_value_borrowed(batch, i, batch->output_matrix + i * row_bytes,
                                         row_bytes);
        }
    }
    return batch->output_matrix;
}

static const char *
format_message(mpb_batch *batch, const char *fmt, va_list args)
{
    char text[1024];
    vsnprintf(text, sizeof text, fmt ? fmt : "", args);
    return mpb__arena_strdup(&batch->arena, text);
}

int
mpb_batch_set_error(mpb_batch *batch, size_t index, const char *type, const char *fmt, ...)
{
    if (index >= batch->count) {
        return MPB_EINVAL;
    }
    mpb__batch_result *r = &batch->results[index];
    va_list args;
    va_start(args, fmt);
    r->message = format_message(batch, fmt, args);
    va_end(args);
    r->type = mpb__arena_strdup(&batch->arena, type && *type ? type : "WorkerError");
    r->outcome = MPB_OUTCOME_ERROR;
    return 0;
}

void
mpb_batch_fail(mpb_batch *batch, const char *type, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    batch->fail_message = format_message(batch, fmt, args);
    va_end(args);
    batch->fail_type = mpb__arena_strdup(&batch->arena, type && *type ? type : "WorkerError");
}

size_t
mpb__batch_settle(mpb_batch *batch, int call_status)
{
    const char *fail_type = batch->fail_type;
    const char *fail_message = batch->fail_message;
    if (call_status != 0 && fail_type == NULL) {
        fail_type = "WorkerError";
        fail_message = mpb__arena_alloc(&batch->arena, 64);
        snprintf((char *)fail_message, 64, "call() failed with status %d", call_status);
    }
    int failed = call_status != 0 || fail_type != NULL;
    size_t errors = 0;
    for (size_t i = 0; i < batch->count; i++) {
        mpb__batch_result *r = &batch->results[i];
        if (failed && r->outcome != MPB_OUTCOME_ERROR) {
            r->outcome = MPB_OUTCOME_ERROR;
            r->type = fail_type;
            r->message = fail_message;
        } else if (r->outcome == MPB_OUTCOME_UNSET) {
            r->outcome = MPB_OUTCOME_ERROR;
            r->type = "NoResult";
            r->message = "the worker's call() set neither a value nor an error for this item";
        }
        errors += r->outcome == MPB_OUTCOME_ERROR;
    }
    return errors;
}
