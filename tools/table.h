/*
 * Aligned text tables for the `mpb` tool: columns as wide as their widest
 * cell (in terminal columns: wide East Asian characters count two), two
 * spaces apart, header first. Control characters print as spaces and
 * bytes that are not UTF-8 as '?'.
 * Threading: one table per thread. Processes: n/a.
 * Ownership: cells are copied; the table owns them until mpb_table_destroy.
 */
#ifndef MPB_TOOLS_TABLE_H
#define MPB_TOOLS_TABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct mpb_table mpb_table;

/* A table with the given column headers (n_cols of them). */
mpb_table *mpb_table_new(size_t n_cols, const char *const *headers);

/* Appends a row of n_cols cells; NULL cells print as "-". */
void mpb_table_add_row(mpb_table *self, const char *const *cells);

/* Cells wider than max_width columns are cut with "..." (0: never). */
void mpb_table_print(const mpb_table *self, FILE *out, size_t max_width);

size_t mpb_table_rows(const mpb_table *self);

void mpb_table_destroy(mpb_table **self_p);

#endif
