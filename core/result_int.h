/*
 * Results from their msgpack form: the array format of ensemble values
 * (bin: a value, array: a nested array, {"error": {...}}: an error); and
 * where a result was computed.
 * Threading: pure. Ownership: the caller owns what is returned.
 */
#ifndef MPB_CORE_RESULT_INT_H
#define MPB_CORE_RESULT_INT_H

#include <msgpack.h>

#include "mpbatch/result.h"

/* A result from one decoded value (depth: 0 at the top), or NULL when it
 * is not in that format. */
mpb_result *mpb__result_from_msgpack(const msgpack_object *o, int depth);

/* Where a result was computed, for per-item records: the pool's path
 * (borrowed: valid while its server runs; errors keep error.servlet) and
 * the batch's number in that pool (from 1; 0: none). Copies do not keep
 * it. The header has room for it without growing (a 4-byte hole and the
 * error fields a value does not use). */
void mpb__result_set_origin(mpb_result *r, const char *servlet, uint32_t batch);
uint32_t mpb__result_batch(const mpb_result *r);
/* The pool's path, or the failed servlet's for errors; "" if unknown. */
const char *mpb__result_servlet(const mpb_result *r);

#endif
