/*
 * Lines of a file as items, for mpb run and mpb call: each line's bytes
 * (text), or a JSON array of numbers sent as float32 (f32). Reads the
 * descriptor itself (not through stdio), so it can tell whether a whole
 * line is there before anyone waits for one.
 * Threading: one reader per thread. Ownership: the item handed out is
 *   borrowed until the next call of either function.
 */
#ifndef MPB_TOOLS_LINE_INPUT_H
#define MPB_TOOLS_LINE_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mpb__line_input {
    int fd;
    int f32;
    char *buf; /* bytes read, from start to len not yet handed out */
    size_t start;
    size_t len;
    size_t cap;
    int eof;
    float *vector;
    size_t vector_cap;
    uint64_t read;
    char bad_input[256]; /* why the last read failed, for the user */
} mpb__line_input;

/* Reads from fd (not closed here). */
void mpb__line_input_init(mpb__line_input *input, int fd, int f32);

/* An mpb_next_fn over ctx = mpb__line_input: 1 with the next item, 0 at
 * the end, MPB_EINVAL with bad_input set for a line f32 cannot read or a
 * read that failed. Blocks until a whole line is there. */
int mpb__line_input_next(void *ctx, const void **data, size_t *len);

/* The stream's input_ready over the same ctx: 1 when next() would not
 * block (a whole line is there, or the input ended), else 0 with *wait_fd
 * set to the descriptor to wait on. Reads what is there without blocking. */
int mpb__line_input_ready(void *ctx, int *wait_fd);

void mpb__line_input_free(mpb__line_input *input);

/* Line-buffered output on a terminal, so a person sees each result as it
 * is printed; pipes and files keep full buffering (one write per line
 * would cost more than the results). */
void mpb__line_output_setup(FILE *out);

#endif
