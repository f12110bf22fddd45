/*
 * tag: a test plugin whose value shows which stages an item went through.
 * value = item + "|" + tag. An item containing "!" + tag fails here with a
 * ValueError (so a test picks the stage where an item fails); delay_us
 * makes every call that long.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpbatch/worker.h"

typedef struct tag_state {
    char tag[64];
    char mark[66];
    long long delay_us;
} tag_state;

static int
tag_init(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
         size_t err_len)
{
    (void)info;
    tag_state *st = calloc(1, sizeof *st);
    const char *tag = mpb_options_get(options, "tag");
    snprintf(st->tag, sizeof st->tag, "%s", tag ? tag : "tag");
    snprintf(st->mark, sizeof st->mark, "!%s", st->tag);
    if (mpb_options_get_int(options, "delay_us", 0, &st->delay_us) != 0) {
        snprintf(err, err_len, "delay_us must be an integer");
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static int
contains(const char *item, size_t len, const char *mark)
{
    size_t n = strlen(mark);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(item + i, mark, n) == 0 && (i + n == len || item[i + n] == '|')) {
            return 1;
        }
    }
    return 0;
}

static int
tag_call(void *state, mpb_batch *batch)
{
    tag_state *st = state;
    if (st->delay_us > 0) {
        struct timespec ts = {st->delay_us / 1000000, (st->delay_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    size_t tag_len = strlen(st->tag);
    for (size_t i = 0; i < mpb_batch_size(batch); i++) {
        size_t len;
        const char *item = mpb_batch_item(batch, i, &len);
        if (contains(item, len, st->mark)) {
            mpb_batch_set_error(batch, i, "ValueError", "failed at %s", st->tag);
            continue;
        }
        char *out = mpb_batch_value_buffer(batch, i, len + 1 + tag_len);
        memcpy(out, item, len);
        out[len] = '|';
        memcpy(out + len + 1, st->tag, tag_len);
    }
    return 0;
}

static const mpb_option_def tag_options[] = {
    {"tag", MPB_OPTION_STRING, "tag", "appended to every value after '|'"},
    {"delay_us", MPB_OPTION_INT, "0", "sleep this long in every call"},
    {0},
};

MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "tag",
    .init = tag_init,
    .call = tag_call,
    .cleanup = free,
    .batch_size = 16,
    .batch_wait_us = MPB_BATCH_WAIT_NONE,
    .options = tag_options,
};
