/*
 * fail: echoes items, except where a rule says otherwise. Rules look at an
 * item's leading bytes, so which items fail does not depend on batching.
 * For tests of error routing, timeouts and crash recovery.
 *
 * Options: see fail_options below; all are optional, and each *_prefix is
 * compared with the start of every item.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpbatch/worker.h"

typedef struct fail_state {
    const char *fail;
    const char *unset;
    const char *batch;
    const char *preprocess;
    const char *preprocess_fail;
    const char *crash;
    const char *exit_now;
    const char *hang;
    long long hang_ms;
} fail_state;

static int
starts_with(const void *item, size_t len, const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;
    return n > 0 && len >= n && memcmp(item, prefix, n) == 0;
}

static int
fail_init(const mpb_worker_info *info, const mpb_options *options, void **state, char *err,
          size_t err_len)
{
    (void)info;
    int init_fail = 0;
    mpb_options_get_bool(options, "init_fail", 0, &init_fail);
    if (init_fail) {
        strncpy(err, "init_fail=1 asked init to fail", err_len - 1);
        err[err_len - 1] = '\0';
        return -1;
    }
    long long init_ms = 0;
    mpb_options_get_int(options, "init_ms", 0, &init_ms);
    if (init_ms > 0) { /* a model that takes long to load */
        struct timespec ts = {init_ms / 1000, (init_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    fail_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        return -1;
    }
    st->fail = mpb_options_get(options, "fail_prefix");
    st->unset = mpb_options_get(options, "unset_prefix");
    st->batch = mpb_options_get(options, "batch_prefix");
    st->preprocess = mpb_options_get(options, "preprocess_prefix");
    st->preprocess_fail = mpb_options_get(options, "preprocess_fail_prefix");
    st->crash = mpb_options_get(options, "crash_prefix");
    st->exit_now = mpb_options_get(options, "exit_prefix");
    st->hang = mpb_options_get(options, "hang_prefix");
    mpb_options_get_int(options, "hang_ms", 60000, &st->hang_ms);
    *state = st;
    return 0;
}

static int
fail_preprocess(void *state, mpb_batch *item)
{
    fail_state *st = state;
    size_t len;
    const void *data = mpb_batch_item(item, 0, &len);
    if (starts_with(data, len, st->preprocess)) {
        mpb_batch_set_error(item, 0, "PreprocessError", "preprocess rejected '%.*s'",
                            (int)(len < 32 ? len : 32), (const char *)data);
    }
    if (starts_with(data, len, st->preprocess_fail)) {
        mpb_batch_fail(item, "DecodeError", "preprocess cannot decode '%.*s'",
                       (int)(len < 32 ? len : 32), (const char *)data);
    }
    return 0;
}

static int
fail_call(void *state, mpb_batch *batch)
{
    fail_state *st = state;
    size_t n = mpb_batch_size(batch);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *item = mpb_batch_item(batch, i, &len);
        if (starts_with(item, len, st->crash)) {
            abort();
        }
        if (starts_with(item, len, st->exit_now)) {
            _exit(3);
        }
        if (starts_with(item, len, st->hang)) {
            struct timespec ts = {st->hang_ms / 1000, (st->hang_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        if (starts_with(item, len, st->batch)) {
            mpb_batch_fail(batch, "BatchError", "batch failed because of '%.*s'",
                           (int)(len < 32 ? len : 32), item);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *item = mpb_batch_item(batch, i, &len);
        if (starts_with(item, len, st->fail)) {
            mpb_batch_set_error(batch, i, "ValueError", "rejected '%.*s'",
                                (int)(len < 32 ? len : 32), item);
        } else if (!starts_with(item, len, st->unset)) {
            mpb_batch_set_value_borrowed(batch, i, item, len);
        }
    }
    return 0;
}

static void
fail_cleanup(void *state)
{
    free(state);
}

static const mpb_option_def fail_options[] = {
    {"fail_prefix", MPB_OPTION_STRING, NULL, "items starting with this get a ValueError"},
    {"unset_prefix", MPB_OPTION_STRING, NULL,
     "call() leaves these items unset (the host answers NoResult)"},
    {"batch_prefix", MPB_OPTION_STRING, NULL,
     "the whole batch holding such an item fails (BatchError)"},
    {"preprocess_prefix", MPB_OPTION_STRING, NULL,
     "preprocess() fails these items (PreprocessError)"},
    {"preprocess_fail_prefix", MPB_OPTION_STRING, NULL,
     "preprocess() fails these with mpb_batch_fail (DecodeError)"},
    {"crash_prefix", MPB_OPTION_STRING, NULL, "the worker aborts on these items (a crash)"},
    {"exit_prefix", MPB_OPTION_STRING, NULL, "the worker process exits with status 3"},
    {"hang_prefix", MPB_OPTION_STRING, NULL, "call() sleeps hang_ms before answering"},
    {"hang_ms", MPB_OPTION_INT, "60000", "how long hang_prefix items hang, in milliseconds"},
    {"init_fail", MPB_OPTION_BOOL, "false", "init() fails with a message"},
    {"init_ms", MPB_OPTION_INT, "0", "init() takes this long first, in milliseconds"},
    {0},
};

/* No tensors declared: values are the items, so whatever type comes in goes
 * out (the HTTP front end answers in the request's datatype). */
MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "fail",
    .init = fail_init,
    .call = fail_call,
    .preprocess = fail_preprocess,
    .cleanup = fail_cleanup,
    .batch_size = 16,
    .options = fail_options,
    .doc = "echoes items but fails, hangs or crashes on the ones its options pick, for tests",
};
