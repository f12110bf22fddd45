/*
 * A plugin as built against worker ABI 1: its table ends after
 * batch_wait_us (the layout is spelled out here, since mpb_worker_def has
 * grown). It prefixes every item with its option `prefix` and answers the
 * item "options?" with the number of options it was given, so a test can
 * see that options reach it unchecked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpbatch/worker.h"

typedef struct abi1_worker_def {
    uint32_t abi_version;
    const char *name;
    int (*init)(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
                size_t err_len);
    int (*call)(void *state, mpb_batch *batch);
    int (*preprocess)(void *state, mpb_batch *item);
    void (*cleanup)(void *state);
    unsigned batch_size;
    int64_t batch_wait_us;
} abi1_worker_def;

typedef struct abi1_state {
    char prefix[64];
    size_t n_options;
} abi1_state;

static int
abi1_init(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
          size_t err_len)
{
    (void)info;
    abi1_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    const char *prefix = mpb_options_get(options, "prefix");
    snprintf(st->prefix, sizeof st->prefix, "%s", prefix ? prefix : "");
    st->n_options = mpb_options_count(options);
    *state = st;
    return 0;
}

static int
abi1_call(void *state, mpb_batch *batch)
{
    const abi1_state *st = state;
    for (size_t i = 0; i < mpb_batch_size(batch); i++) {
        size_t len;
        const char *item = mpb_batch_item(batch, i, &len);
        char out[256];
        int n;
        if (len == 8 && memcmp(item, "options?", 8) == 0) {
            n = snprintf(out, sizeof out, "%zu", st->n_options);
        } else {
            n = snprintf(out, sizeof out, "%s%.*s", st->prefix, (int)(len < 128 ? len : 128), item);
        }
        mpb_batch_set_value(batch, i, out, (size_t)n);
    }
    return 0;
}

MPB_PLUGIN_EXPORT const abi1_worker_def mpb_worker = {
    .abi_version = 1,
    .name = "abi1",
    .init = abi1_init,
    .call = abi1_call,
    .cleanup = free,
    .batch_size = 4,
    .batch_wait_us = 500,
};
