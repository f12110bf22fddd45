/*
 * Internals shared by the parts of the Open Inference Protocol codec: the
 * table of datatypes, reading an input's data, small helpers.
 * Threading: constant data only. Processes: no state. Ownership: static.
 */
#ifndef MPB_FRONTENDS_KSERVE_INT_H
#define MPB_FRONTENDS_KSERVE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "frontends/kserve.h"

/* 2^53 - 1: cJSON reads numbers as doubles, larger integers are not exact. */
#define MPB_KSERVE_EXACT_INT_MAX 9007199254740991.0

typedef enum mpb__kserve_kind {
    MPB_KSERVE_FLOAT = 1,
    MPB_KSERVE_INT,
    MPB_KSERVE_UINT,
    MPB_KSERVE_BOOL,
    MPB_KSERVE_BYTES,
} mpb__kserve_kind;

typedef struct mpb__kserve_dtype {
    const char *name; /* as the protocol spells it: "FP32" */
    mpb__kserve_kind kind;
    size_t size; /* bytes per element; 0 for BYTES */
    double min;  /* integers: the JSON numbers accepted */
    double max;
} mpb__kserve_dtype;

/* Every supported name, for messages: "FP32, FP64, ..., BYTES". */
extern const char mpb__kserve_dtype_names[];

/* The datatype spelled name (case-sensitive), or NULL when unsupported. */
const mpb__kserve_dtype *mpb__kserve_dtype_find(const char *name);

/* Children of a cJSON array or object. */
size_t mpb__kserve_count(const cJSON *node);

/* "[2,4]" into buf; returns buf. */
const char *mpb__kserve_shape_text(const int64_t *shape, unsigned ndim, char *buf, size_t size);

/* Reads inputs[0].data of req (whose shape, n_items and datatype are set)
 * into req->items and req->storage: elems values in all, row_elems per item;
 * BYTES data is held to max_bytes here (numeric sizes follow from the shape
 * and are checked by the caller). Returns 0, MPB_EINVAL or MPB_ELIMIT with a
 * message, or MPB_ENOMEM. */
int mpb__kserve_read_data(const cJSON *data, const mpb__kserve_dtype *dtype,
                          mpb__kserve_request *req, size_t max_bytes, size_t row_elems,
                          size_t elems, char *err, size_t err_len);

#endif
