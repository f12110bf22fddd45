/*
 * Lines of a file as items, for mpb run and mpb call: each line's bytes
 * (text), or a JSON array of numbers sent as float32 (f32).
 * Threading: one reader per thread. Ownership: the item handed out is
 *   borrowed until the next read.
 */
#ifndef MPB_TOOLS_LINE_INPUT_H
#define MPB_TOOLS_LINE_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mpb__line_input {
    FILE *in;
    int f32;
    char *line;
    size_t line_cap;
    float *vector;
    size_t vector_cap;
    uint64_t read;
    char bad_input[256]; /* why the last read failed, for the user */
} mpb__line_input;

/* An mpb_next_fn over ctx = mpb__line_input: 1 with the next item, 0 at
 * the end, MPB_EINVAL with bad_input set for a line f32 cannot read. */
int mpb__line_input_next(void *ctx, const void **data, size_t *len);

void mpb__line_input_free(mpb__line_input *input);

/* Line-buffered output on a terminal, so a person sees each result as it
 * is printed; pipes and files keep full buffering (one write per line
 * would cost more than the results). */
void mpb__line_output_setup(FILE *out);

#endif
