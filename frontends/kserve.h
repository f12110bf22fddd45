/*
 * Open Inference Protocol v2 (KServe / Triton HTTP/REST, JSON) codec: turns
 * an infer request body into mpbatch items and the items' results into an
 * infer response body; writes model metadata, server metadata and error
 * bodies. No sockets and no HTTP here: the HTTP front end reads the bodies
 * and routes the endpoints (docs/http.md).
 *
 * Threading: every function is reentrant and keeps no state; a request
 *   object belongs to the thread that uses it.
 * Processes: no state, nothing to inherit.
 * Ownership: mpb__kserve_parse_infer hands the caller a request, freed with
 *   mpb__kserve_request_destroy; everything it points to is the request's.
 *   Every `char *` returned is malloc'd JSON text the caller free()s.
 *   Arguments are borrowed for the call.
 *
 * Items: the input tensor is split along its leading (batch) dimension;
 * item i is row i as little-endian native bytes (FP32 rows are float
 * arrays, BOOL is one byte 0 or 1), or, for BYTES, the UTF-8 bytes of
 * string i. An output is re-assembled from one value per item in order.
 */
#ifndef MPB_FRONTENDS_KSERVE_H
#define MPB_FRONTENDS_KSERVE_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/worker.h"

/* One item's bytes (borrowed: see the struct that holds it). */
typedef struct mpb__kserve_item {
    const void *data;
    size_t len;
} mpb__kserve_item;

/* A parsed infer request. Read-only for the caller. */
typedef struct mpb__kserve_request {
    char *id;             /* the body's "id", or NULL */
    char *input_name;     /* inputs[0].name */
    const char *datatype; /* canonical name ("FP32"...), static */
    size_t element_size;  /* bytes per element; 0 for BYTES */
    unsigned ndim;        /* 1..MPB_TENSOR_MAX_DIMS */
    int64_t shape[MPB_TENSOR_MAX_DIMS];
    size_t n_items;          /* shape[0] */
    mpb__kserve_item *items; /* n_items entries pointing into the request */
    size_t n_outputs;        /* requested outputs; 0 when the body names none */
    char **output_names;     /* n_outputs names */
    int64_t timeout_us;      /* parameters.timeout (Triton's, microseconds); 0: none */
    void *storage;           /* private: the items' bytes, back to back */
} mpb__kserve_request;

/* Parses the body of POST /v2/models/{name}/infer (len bytes, need not end
 * with NUL). At most max_items items (the leading dimension) and max_bytes
 * bytes of items in all; pass SIZE_MAX for no limit. Returns 0 and sets
 * *out (caller destroys), MPB_EINVAL for a body that is not a valid request
 * or MPB_ELIMIT for one over a limit, both with a message naming the field
 * in err (err may be NULL), or MPB_ENOMEM. Limits are checked before the
 * items' storage is allocated; the JSON tree itself takes up to 40 times
 * the body's size, so the caller caps the body's length. */
int mpb__kserve_parse_infer(const char *body, size_t len, size_t max_items, size_t max_bytes,
                            mpb__kserve_request **out, char *err, size_t err_len);

/* Frees a request; NULL-safe, sets *request_p to NULL. */
void mpb__kserve_request_destroy(mpb__kserve_request **request_p);

/* One output tensor of a response: one value per item, in item order. */
typedef struct mpb__kserve_output {
    const char *name;
    const char *datatype; /* one of the names parse accepts */
    size_t n_items;
    const mpb__kserve_item *items; /* the model's raw bytes per item */
    /* Optional per-item shape (ndim and shape; -1 = variable); name and
     * datatype of the definition are not used. NULL: none declared. */
    const mpb_tensor_def *declared;
} mpb__kserve_output;

/* The body of an infer response: {"model_name", "model_version"?, "id"?,
 * "outputs": [...]}. A numeric output has shape [n_items, elements per
 * item], or [n_items, declared dims...] when the declared shape fits the
 * element count (one -1 is inferred). BYTES outputs have shape [n_items].
 * Returns malloc'd JSON (caller frees), or NULL with a message naming the
 * output and item in err when a value cannot be written as JSON: lengths
 * that do not fit the datatype, NaN or infinite floats, BOOL bytes other
 * than 0 and 1, BYTES that are not UTF-8. version and id may be NULL. */
char *mpb__kserve_infer_response(const char *model_name, const char *model_version_or_null,
                                 const char *id_or_null, const mpb__kserve_output *outputs,
                                 size_t n_outputs, char *err, size_t err_len);

/* The body of GET /v2/models/{name}: {"name", "versions": ["1"], "platform",
 * "inputs", "outputs"}, each tensor with shape [-1, dims...] (-1 is the
 * batch). inputs and outputs end with a zeroed entry (name NULL) and may be
 * NULL (an empty list); a NULL datatype is reported as BYTES, a NULL
 * platform as "". Caller frees. */
char *mpb__kserve_model_metadata(const char *name, const char *platform,
                                 const mpb_tensor_def *inputs, const mpb_tensor_def *outputs);

/* The body of GET /v2: {"name": "mpbatch", "version", "extensions": []}.
 * Caller frees. */
char *mpb__kserve_server_metadata(void);

/* An error body {"error": message}; bytes of message that are not UTF-8
 * become U+FFFD. Caller frees. */
char *mpb__kserve_error_json(const char *message);

#endif
