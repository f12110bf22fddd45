/*
 * The client protocol (docs/protocol.md, "Client protocol"): how programs
 * call `mpb serve` over ZeroMQ. Both sides: the front end decodes requests
 * and encodes replies; the C client does the reverse.
 * Threading: a decode zone or an encode buffer belongs to one thread.
 * Processes: n/a. Ownership: decoded strings and payloads point into the
 *   zone or the frame and live until the next decode into that zone.
 */
#ifndef MPB_FRONTENDS_CLIENT_WIRE_H
#define MPB_FRONTENDS_CLIENT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "core/wire.h"
#include "mpbatch/result.h"

#define MPB_CLIENT_PROTOCOL_VERSION 1

typedef enum mpb__client_frame {
    MPB_CLIENT_CALL = 1,         /* client: [1, [[id, payload, deadline_ms?, target?], ...]] */
    MPB_CLIENT_RESULTS = 2,      /* server: [2, [[id, 0, value] | [id, 1, type, msg, servlet,
                                    worker, pid], ...]] */
    MPB_CLIENT_HEALTH = 3,       /* client: [3, id] */
    MPB_CLIENT_HEALTH_REPLY = 4, /* server: [4, id, live, ready, workers, in_flight, capacity,
                                    version] */
    MPB_CLIENT_INFO = 5,         /* client: [5, id] */
    MPB_CLIENT_INFO_REPLY = 6,   /* server: [6, id, [[path, kind], ...]] */
    MPB_CLIENT_ERROR = 8,        /* server: [8, id or nil, code, message] */
} mpb__client_frame;

/* One call of a CALL frame. */
typedef struct mpb__client_call {
    uint64_t id;
    const void *payload;
    size_t len;
    uint64_t deadline_ms; /* 0: none */
    mpb__wire_str target; /* len 0: the root */
} mpb__client_call;

/* Reads call i of a decoded CALL frame (root: the frame's array). On
 * MPB_EPROTO, *id_known says whether out->id could be read. */
int mpb__client_call_at(const msgpack_object *root, uint32_t index, mpb__client_call *out,
                        int *id_known);
/* Calls in a decoded CALL frame, or -1 when its shape is wrong. */
int64_t mpb__client_call_count(const msgpack_object *root);

void mpb__client_pack_calls_begin(mpb__wire_buf *buf, uint32_t count);
void mpb__client_pack_call(mpb__wire_buf *buf, uint64_t id, const void *payload, size_t len,
                           uint64_t deadline_ms, const char *target);
void mpb__client_pack_results_begin(mpb__wire_buf *buf, uint32_t count);
/* One result entry: a value (an array result in its array form) or an error. */
void mpb__client_pack_result(mpb__wire_buf *buf, uint64_t id, const mpb_result *result);
/* An error entry made from parts (results the front end makes itself). */
void mpb__client_pack_result_error(mpb__wire_buf *buf, uint64_t id, const char *type,
                                   const char *message, const char *servlet);
void mpb__client_pack_error(mpb__wire_buf *buf, int has_id, uint64_t id, int64_t code,
                            const char *message);

/* Reads one entry of a RESULTS frame into a new result (caller owns it).
 * MPB_EPROTO for a malformed entry; *id is set when the entry's id could
 * be read, else left as it was. */
int mpb__client_result_at(const msgpack_object *root, uint32_t index, uint64_t *id,
                          mpb_result **out);

#endif
