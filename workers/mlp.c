/*
 * mlp: a two-layer perceptron over float32 vectors, the vectorised model of
 * the demo and benchmarks. Per batch: H = relu(X W1 + b1), Y = H W2 + b2,
 * one cblas_sgemm per layer over the whole batch (single-threaded OpenBLAS:
 * the worker is pinned to its core). Items are input_dim little-endian
 * float32 values; values are output_dim float32 values.
 *
 * Options: see mlp_options below. Random weights are drawn uniform in
 * +-1/sqrt(fan_in) from the seed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "mpbatch/worker.h"

typedef struct mlp {
    int in;
    int hidden;
    int out;
    float *w1; /* in x hidden */
    float *b1;
    float *w2; /* hidden x out */
    float *b2;
    float *h; /* batch x hidden scratch */
    float *x; /* batch x in scratch, for batches with some bad items */
    float *y; /* batch x out scratch, idem */
    size_t scratch_rows;
} mlp;

static void
fill_random(float *w, size_t n, int fan_in, uint64_t *rng)
{
    float scale = 1.0f / sqrtf((float)fan_in);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = *rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *rng = x;
        w[i] = scale * (2.0f * (float)((x >> 11) * (1.0 / 9007199254740992.0)) - 1.0f);
    }
}

static int
load_weights(mlp *m, const char *path, char *err, size_t err_len)
{
    size_t counts[4] = {(size_t)m->in * m->hidden, (size_t)m->hidden, (size_t)m->hidden * m->out,
                        (size_t)m->out};
    float *dest[4] = {m->w1, m->b1, m->w2, m->b2};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_len, "weights file %s: cannot open", path);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        if (fread(dest[i], sizeof(float), counts[i], f) != counts[i]) {
            snprintf(err, err_len,
                     "weights file %s is shorter than the %d+%d+%d+%d floats "
                     "that input_dim/hidden_dim/output_dim ask for",
                     path, (int)counts[0], (int)counts[1], (int)counts[2], (int)counts[3]);
            rc = -1;
        }
    }
    if (rc == 0 && fgetc(f) != EOF) {
        snprintf(err, err_len, "weights file %s is longer than the dimensions ask for", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

static void
mlp_free(mlp *m)
{
    free(m->w1);
    free(m->b1);
    free(m->w2);
    free(m->b2);
    free(m->h);
    free(m->x);
    free(m->y);
    free(m);
}

static int
mlp_init(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
         size_t err_len)
{
    (void)info;
    long long in, hidden, out, seed;
    if (mpb_options_get_int(options, "input_dim", 256, &in) ||
        mpb_options_get_int(options, "hidden_dim", 256, &hidden) ||
        mpb_options_get_int(options, "output_dim", 16, &out) ||
        mpb_options_get_int(options, "seed", 1, &seed) || in < 1 || hidden < 1 || out < 1 ||
        in > 65536 || hidden > 65536 || out > 65536) {
        snprintf(err, err_len,
                 "input_dim, hidden_dim and output_dim must be integers in "
                 "1..65536, seed an integer");
        return -1;
    }
    mlp *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, err_len, "cannot allocate the model");
        return -1;
    }
    m->in = (int)in;
    m->hidden = (int)hidden;
    m->out = (int)out;
    m->w1 = malloc(sizeof(float) * (size_t)(in * hidden));
    m->b1 = malloc(sizeof(float) * (size_t)hidden);
    m->w2 = malloc(sizeof(float) * (size_t)(hidden * out));
    m->b2 = malloc(sizeof(float) * (size_t)out);
    if (m->w1 == NULL || m->b1 == NULL || m->w2 == NULL || m->b2 == NULL) {
        snprintf(err, err_len,
                 "cannot allocate %.1f MiB of weights for input_dim %lld, hidden_dim %lld, "
                 "output_dim %lld",
                 (double)sizeof(float) * (double)(in * hidden + hidden + hidden * out + out) /
                     (1 << 20),
                 in, hidden, out);
        mlp_free(m);
        return -1;
    }
    const char *path = mpb_options_get(options, "weights");
    if (path != NULL) {
        if (load_weights(m, path, err, err_len) != 0) {
            mlp_free(m);
            return -1;
        }
    } else {
        uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
        rng = rng != 0 ? rng : 0x2545F4914F6CDD1Dull; /* xorshift stays at 0 from 0 */
        fill_random(m->w1, (size_t)(in * hidden), m->in, &rng);
        fill_random(m->b1, (size_t)hidden, m->in, &rng);
        fill_random(m->w2, (size_t)(hidden * out), m->hidden, &rng);
        fill_random(m->b2, (size_t)out, m->hidden, &rng);
    }
    openblas_set_num_threads(1);
    *state = m;
    return 0;
}

/* Scratch for rows rows; 0, or -1 when it cannot be had (then nothing
 * changed). */
static int
ensure_scratch(mlp *m, size_t rows)
{
    if (rows <= m->scratch_rows) {
        return 0;
    }
    size_t cap = rows * 2;
    float *h = malloc(sizeof(float) * cap * (size_t)m->hidden);
    float *x = malloc(sizeof(float) * cap * (size_t)m->in);
    float *y = malloc(sizeof(float) * cap * (size_t)m->out);
    if (h == NULL || x == NULL || y == NULL) {
        free(h);
        free(x);
        free(y);
        return -1;
    }
    free(m->h);
    free(m->x);
    free(m->y);
    m->h = h;
    m->x = x;
    m->y = y;
    m->scratch_rows = cap;
    return 0;
}

/* Y (rows x out) = relu(X W1 + b1) W2 + b2 */
static void
forward(mlp *m, const float *x, float *y, int rows)
{
    if (rows == 0) {
        return;
    }
    for (int r = 0; r < rows; r++) {
        memcpy(m->h + (size_t)r * m->hidden, m->b1, sizeof(float) * (size_t)m->hidden);
        memcpy(y + (size_t)r * m->out, m->b2, sizeof(float) * (size_t)m->out);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, m->hidden, m->in, 1.0f, x, m->in,
                m->w1, m->hidden, 1.0f, m->h, m->hidden);
    for (size_t i = 0; i < (size_t)rows * m->hidden; i++) {
        m->h[i] = m->h[i] > 0.0f ? m->h[i] : 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, m->out, m->hidden, 1.0f, m->h,
                m->hidden, m->w2, m->out, 1.0f, y, m->out);
}

static int
mlp_call(void *state, mpb_batch *batch)
{
    mlp *m = state;
    size_t n = mpb_batch_size(batch);
    size_t in_bytes = sizeof(float) * (size_t)m->in;
    size_t out_bytes = sizeof(float) * (size_t)m->out;
    if (ensure_scratch(m, n) != 0) {
        mpb_batch_fail(batch, "MemoryError", "cannot allocate scratch for %zu rows", n);
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    size_t row_bytes = 0;
    const float *x = mpb_batch_matrix(batch, &row_bytes);
    if (x != NULL && row_bytes == in_bytes) {
        float *y = mpb_batch_output_matrix(batch, out_bytes);
        if (y == NULL) { /* only when a result is over max_item_bytes */
            mpb_batch_fail(batch, "ValueError",
                           "a result of %d float32 (%zu bytes) is over the servlet's "
                           "max_item_bytes",
                           m->out, out_bytes);
            return -1;
        }
        forward(m, x, y, (int)n);
        return 0;
    }
    /* Some items have the wrong size: answer those with errors, compute the rest. */
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const void *item = mpb_batch_item(batch, i, &len);
        if (len == in_bytes) {
            memcpy(m->x + good++ * (size_t)m->in, item, in_bytes);
        }
    }
    forward(m, m->x, m->y, (int)good);
    good = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        mpb_batch_item(batch, i, &len);
        if (len == in_bytes) {
            if (mpb_batch_set_value(batch, i, m->y + good++ * (size_t)m->out, out_bytes) != 0) {
                mpb_batch_set_error(batch, i, "ValueError",
                                    "a result of %zu bytes is over the servlet's max_item_bytes",
                                    out_bytes);
            }
        } else {
            mpb_batch_set_error(batch, i, "ValueError",
                                "expected %d float32 (%zu bytes), got %zu bytes", m->in, in_bytes,
                                len);
        }
    }
    return 0;
}

static void
mlp_cleanup(void *state)
{
    mlp_free(state);
}

static const mpb_option_def mlp_options[] = {
    {"input_dim", MPB_OPTION_INT, "256", "float32 values per item (1..65536)"},
    {"hidden_dim", MPB_OPTION_INT, "256", "units of the hidden layer (1..65536)"},
    {"output_dim", MPB_OPTION_INT, "16", "float32 values per result (1..65536)"},
    {"seed", MPB_OPTION_INT, "1", "seed of the random weights"},
    {"weights", MPB_OPTION_STRING, NULL,
     "raw float32 file of W1, b1, W2, b2, row-major; overrides seed"},
    {0},
};

/* Lengths come from input_dim and output_dim. */
static const mpb_tensor_def mlp_inputs[] = {
    {.name = "input", .datatype = "FP32", .ndim = 1, .shape = {-1}},
    {0},
};

static const mpb_tensor_def mlp_outputs[] = {
    {.name = "output", .datatype = "FP32", .ndim = 1, .shape = {-1}},
    {0},
};

MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "mlp",
    .init = mlp_init,
    .call = mlp_call,
    .cleanup = mlp_cleanup,
    .batch_size = 64,
    .options = mlp_options,
    .inputs = mlp_inputs,
    .outputs = mlp_outputs,
    .doc = "two-layer perceptron over float32 vectors, one OpenBLAS sgemm per layer per batch",
};
