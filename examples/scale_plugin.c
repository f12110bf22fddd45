/* scale: multiplies float32 vectors by the option `factor`, a batch at a time. */
#include <stdio.h>
#include <stdlib.h>

#include <mpbatch/worker.h>

typedef struct scale {
    float factor;
} scale;

static int
scale_init(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
           size_t err_len)
{
    double factor;
    if (mpb_options_get_double(options, "factor", 2.0, &factor) != 0) {
        snprintf(err, err_len, "factor must be a number");
        return -1;
    }
    scale *s = malloc(sizeof *s);
    s->factor = (float)factor;
    *state = s;
    return 0;
}

static int
scale_call(void *state, mpb_batch *batch)
{
    const scale *s = state;
    size_t row_bytes;
    const float *in = mpb_batch_matrix(batch, &row_bytes); /* the batch as one matrix */
    if (in == NULL) {
        mpb_batch_fail(batch, "ValueError", "all vectors of a batch must have the same length");
        return -1;
    }
    float *out = mpb_batch_output_matrix(batch, row_bytes); /* row i answers item i */
    for (size_t i = 0; i < mpb_batch_size(batch) * row_bytes / sizeof(float); i++) {
        out[i] = in[i] * s->factor;
    }
    return 0;
}

/* What `mpb plugins show scale` prints; options not listed are refused. */
static const mpb_option_def scale_options[] = {
    {"factor", MPB_OPTION_FLOAT, "2", "every value is multiplied by this"},
    {0},
};

static const mpb_tensor_def scale_inputs[] = {
    {.name = "input", .datatype = "FP32", .ndim = 1, .shape = {-1}}, /* any length */
    {0},
};

static const mpb_tensor_def scale_outputs[] = {
    {.name = "output", .datatype = "FP32", .ndim = 1, .shape = {-1}},
    {0},
};

MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "scale",
    .init = scale_init,
    .call = scale_call,
    .cleanup = free,
    .batch_size = 32,
    .batch_wait_us = 1000,
    .options = scale_options,
    .inputs = scale_inputs,
    .outputs = scale_outputs,
    .doc = "multiplies float32 vectors by factor, a batch at a time",
};
