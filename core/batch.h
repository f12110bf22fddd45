/*
 * The host side of mpb_batch: the worker loop fills a batch with borrowed
 * items, hands it to the plugin, then reads one outcome per item.
 * Threading: one worker thread. Processes: n/a.
 * Ownership: items are borrowed from the caller until mpb__batch_reset;
 *   values and error texts live in the batch's arena until the next reset.
 */
#ifndef MPB_CORE_BATCH_H
#define MPB_CORE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "mpbatch/worker.h"

typedef enum mpb__outcome {
    MPB_OUTCOME_UNSET = 0,
    MPB_OUTCOME_VALUE = 1,
    MPB_OUTCOME_ERROR = 2,
} mpb__outcome;

typedef struct mpb__batch_item {
    const void *data;
    size_t len;
} mpb__batch_item;

typedef struct mpb__batch_result {
    mpb__outcome outcome;
    const void *data; /* value */
    size_t len;
    const char *type; /* error */
    const char *message;
} mpb__batch_result;

struct mpb_batch {
    size_t count;
    size_t cap;
    mpb__batch_item *items;
    mpb__batch_result *results;
    const void *matrix;
    size_t row_bytes;
    int matrix_checked;
    unsigned char *output_matrix;
    size_t output_row_bytes;
    size_t max_item_bytes;
    const char *fail_type;
    const char *fail_message;
    mpb__arena arena;
};

void mpb__batch_init(mpb_batch *batch, size_t max_item_bytes);
void mpb__batch_free(mpb_batch *batch);
/* Forgets items and outcomes; keeps memory for the next batch. */
void mpb__batch_reset(mpb_batch *batch);
void mpb__batch_add(mpb_batch *batch, const void *data, size_t len);
/* Settles every item after the plugin returned: call_status != 0 fails the
 * items left without an error; items left unset get NoResult. Returns the
 * number of items that ended as errors. */
size_t mpb__batch_settle(mpb_batch *batch, int call_status);

#endif
