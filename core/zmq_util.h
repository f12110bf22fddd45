/*
 * Small helpers over libzmq: status conversion and sends.
 * Threading: a socket belongs to one thread; these helpers add no state.
 */
#ifndef MPB_CORE_ZMQ_UTIL_H
#define MPB_CORE_ZMQ_UTIL_H

#include <stddef.h>

#include <zmq.h>

#include "mpbatch/error.h"

/* libzmq reports failure through errno: turn it into a status. */
static inline int
mpb__zmq_status(void)
{
    int e = zmq_errno();
    return e > 0 ? -e : MPB_EIO;
}

static inline int
mpb__zmq_send(void *socket, const void *data, size_t len, int flags)
{
    for (;;) {
        if (zmq_send(socket, data, len, flags) >= 0) {
            return 0;
        }
        if (zmq_errno() != EINTR) {
            return mpb__zmq_status();
        }
    }
}

static inline void
mpb__zmq_set_int(void *socket, int option, int value)
{
    zmq_setsockopt(socket, option, &value, sizeof value);
}

#endif
