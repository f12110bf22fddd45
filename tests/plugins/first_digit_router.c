/*
 * first_digit_router: a test router plugin. An item starting with digit d
 * goes to member d (when there is one); any other item to none (RouteError
 * or the default member). Option offset=K adds K to the member.
 */
#include <stdlib.h>

#include "mpbatch/router.h"

typedef struct router_state {
    size_t n_members;
    long long offset;
} router_state;

static int
router_init(const mpb_options *options, size_t n_members, void **state, char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    router_state *st = calloc(1, sizeof *st);
    st->n_members = n_members;
    mpb_options_get_int(options, "offset", 0, &st->offset);
    *state = st;
    return 0;
}

static int
router_route(void *state, const void *item, size_t len)
{
    const router_state *st = state;
    const char *text = item;
    if (len == 0 || text[0] < '0' || text[0] > '9') {
        return -1;
    }
    long long member = text[0] - '0' + st->offset;
    return member < (long long)st->n_members ? (int)member : -1;
}

MPB_PLUGIN_EXPORT const mpb_router_def mpb_router = {
    .abi_version = MPB_ROUTER_ABI_VERSION,
    .name = "first_digit",
    .init = router_init,
    .route = router_route,
    .cleanup = free,
};
