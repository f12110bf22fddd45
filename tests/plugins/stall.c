/*
 * stall: a test plugin that declares a default batch_timeout_ms (ABI 3).
 * An item starting with "stall" makes its call() sleep 1.5 s; any other
 * item comes back as it is.
 */
#include <string.h>
#include <time.h>

#include "mpbatch/worker.h"

static int
stall_call(void *state, mpb_batch *batch)
{
    (void)state;
    for (size_t i = 0; i < mpb_batch_size(batch); i++) {
        size_t len;
        const void *item = mpb_batch_item(batch, i, &len);
        if (len >= 5 && memcmp(item, "stall", 5) == 0) {
            struct timespec pause = {1, 500 * 1000000};
            while (nanosleep(&pause, &pause) != 0) {
            }
        }
        mpb_batch_set_value(batch, i, item, len);
    }
    return 0;
}

MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "stall",
    .call = stall_call,
    .batch_size = 1,
    .doc = "test: items starting with 'stall' take 1.5 s; declares batch_timeout_ms 200",
    .batch_timeout_ms = 200,
};
