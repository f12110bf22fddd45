/* The worker protocol's frames, as the coordinator reads a worker's and a
 * worker reads the coordinator's: decode, then every entry. */
#include <msgpack.h>

#include "core/wire.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    mpb__frame frame;
    char err[256];
    if (mpb__wire_decode(&zone, data, size, &frame, err, sizeof err) == 0) {
        if (frame.type == MPB_FRAME_ITEMS) {
            for (uint32_t i = 0; i < frame.u.list.count; i++) {
                mpb__wire_item item;
                int id_known;
                mpb__wire_item_at(&frame, i, &item, &id_known);
            }
        } else if (frame.type == MPB_FRAME_RESULTS) {
            for (uint32_t i = 0; i < frame.u.list.count; i++) {
                mpb__wire_result r;
                mpb__wire_result_at(&frame, i, &r);
            }
        }
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
