/*
 * passthrough: every item's value is the item itself. The cheapest possible
 * model, for measuring the framework's own cost.
 */
#include "mpbatch/worker.h"

static int
passthrough_call(void *state, mpb_batch *batch)
{
    (void)state;
    for (size_t i = 0; i < mpb_batch_size(batch); i++) {
        size_t len;
        const void *item = mpb_batch_item(batch, i, &len);
        mpb_batch_set_value_borrowed(batch, i, item, len);
    }
    return 0;
}

MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "passthrough",
    .call = passthrough_call,
    .batch_size = 64,
};
