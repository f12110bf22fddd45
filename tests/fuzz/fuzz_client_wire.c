/* The client protocol as the ZeroMQ front end reads a client's message:
 * unpack, then every call of a CALL frame, or a client's view of replies. */
#include <msgpack.h>

#include "core/wire.h"
#include "frontends/client_wire.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object root;
    uint64_t type;
    char err[256];
    if (mpb__wire_unpack(&zone, data, size, &root, &type, err, sizeof err) == 0) {
        int64_t count = mpb__client_call_count(&root);
        for (int64_t i = 0; i < count; i++) {
            mpb__client_call call;
            int id_known;
            mpb__client_call_at(&root, (uint32_t)i, &call, &id_known);
        }
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
