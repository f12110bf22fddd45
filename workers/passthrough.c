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

/* No options: any option given is refused. */
static const mpb_option_def passthrough_options[] = {{0}};

/* No tensors declared: values are the items, so whatever type comes in goes
 * out (the HTTP front end answers in the request's datatype). */
MPB_PLUGIN_EXPORT const mpb_worker_def mpb_worker = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "passthrough",
    .call = passthrough_call,
    .batch_size = 64,
    .options = passthrough_options,
    .doc = "returns every item as it is; measures the framework's own cost",
};
