/*
 * Results from their msgpack form: the array format of ensemble values
 * (bin: a value, array: a nested array, {"error": {...}}: an error).
 * Threading: pure. Ownership: the caller owns what is returned.
 */
#ifndef MPB_CORE_RESULT_INT_H
#define MPB_CORE_RESULT_INT_H

#include <msgpack.h>

#include "mpbatch/result.h"

/* A result from one decoded value (depth: 0 at the top), or NULL when it
 * is not in that format. */
mpb_result *mpb__result_from_msgpack(const msgpack_object *o, int depth);

#endif
