/*
 * Plugin options: an ordered list of key/value strings, given in a servlet
 * config and passed to mpb-worker as repeated --option key=value.
 * Threading: build on one thread; read from any after that.
 * Processes: n/a. Ownership: the list owns copies of its strings.
 */
#ifndef MPB_CORE_OPTIONS_H
#define MPB_CORE_OPTIONS_H

#include <stddef.h>

#include "mpbatch/worker.h"

mpb_options *mpb__options_new(void);
void mpb__options_destroy(mpb_options **self_p);
/* Sets key to value (replacing an earlier value of the same key). */
void mpb__options_set(mpb_options *self, const char *key, const char *value);
/* Parses "key=value"; MPB_EINVAL without '=' or with an empty key. */
int mpb__options_set_pair(mpb_options *self, const char *pair);
mpb_options *mpb__options_copy(const mpb_options *self);

/* Parsers shared by the getters and the option checks (core/plugin_options.c),
 * so a value that passes a check reads back the same. Each returns 0 and sets
 * *out, or MPB_EINVAL (*out untouched). Integers: the whole text in base 10
 * (strtoll); doubles: the whole text (strtod), finite; bools: true, false, 1,
 * 0, yes, no in any case. */
int mpb__parse_int(const char *text, long long *out);
int mpb__parse_double(const char *text, double *out);
int mpb__parse_bool(const char *text, int *out);

#endif
