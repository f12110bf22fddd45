/*
 * JSON lines for the command-line tools: strings, float vectors and item
 * errors written straight to a FILE, without building a document.
 * Threading: one FILE per thread. Ownership: arguments are borrowed.
 */
#ifndef MPB_TOOLS_JSON_OUT_H
#define MPB_TOOLS_JSON_OUT_H

#include <stddef.h>
#include <stdio.h>

#include "mpbatch/result.h"

/* Valid UTF-8 as a JSON string; other bytes as {"base64": "..."}. */
void mpb__json_write_string(FILE *out, const void *bytes, size_t len);

/* [f0, f1, ...], each the shortest text that reads back to the same float
 * (at most 9 significant digits); NaN and infinities as null. */
void mpb__json_write_floats(FILE *out, const float *values, size_t count);

/* {"error": {"type", "message", "servlet", "worker", "pid"}} */
void mpb__json_write_error(FILE *out, const mpb_item_error *error);

/* A whole result: an error as above, a value as a string (or, with f32
 * set and a length that allows it, as an array of floats), an ensemble's
 * array result as a JSON array of its members, recursively. */
void mpb__json_write_result(FILE *out, const mpb_result *result, int f32);

/* Prints a JSON document made by cJSON and a newline on stdout, bytes that
 * are not UTF-8 (read back from a store as they were written) replaced by
 * U+FFFD, so the output is valid JSON. */
void mpb__json_print_document(const char *json);

#endif
