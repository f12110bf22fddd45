#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tools/table.h"
#include "tracking/text.h"

struct mpb_table {
    size_t n_cols;
    size_t n_rows; /* including the header row */
    char **cells;  /* n_rows * n_cols */
};

mpb_table *
mpb_table_new(size_t n_cols, const char *const *headers)
{
    MPB_ASSERT(n_cols > 0);
    mpb_table *self = mpb_calloc(1, sizeof *self);
    self->n_cols = n_cols;
    mpb_table_add_row(self, headers);
    return self;
}

void
mpb_table_add_row(mpb_table *self, const char *const *cells)
{
    self->cells = mpb_realloc(self->cells, (self->n_rows + 1) * self->n_cols * sizeof *self->cells);
    for (size_t c = 0; c < self->n_cols; c++) {
        const char *cell = cells[c] ? cells[c] : "-";
        /* One line per cell: newlines and tabs would break the layout. */
        char *copy = mpb_strdup(cell);
        for (char *p = copy; *p; p++) {
            if (*p == '\n' || *p == '\t' || *p == '\r') {
                *p = ' ';
            }
        }
        self->cells[self->n_rows * self->n_cols + c] = copy;
    }
    self->n_rows++;
}

size_t
mpb_table_rows(const mpb_table *self)
{
    return self->n_rows - 1;
}

static size_t
text_width(const char *text)
{
    long len = mpb__utf8_length(text);
    return len < 0 ? strlen(text) : (size_t)len;
}

/* Byte length of the first `chars` characters of valid UTF-8 text. */
static size_t
prefix_bytes(const char *text, size_t chars)
{
    const char *p = text;
    for (size_t i = 0; i < chars && *p; i++) {
        (void)mpb__utf8_next(&p);
    }
    return (size_t)(p - text);
}

void
mpb_table_print(const mpb_table *self, FILE *out, size_t max_width)
{
    size_t *widths = mpb_calloc(self->n_cols, sizeof *widths);
    for (size_t r = 0; r < self->n_rows; r++) {
        for (size_t c = 0; c < self->n_cols; c++) {
            size_t w = text_width(self->cells[r * self->n_cols + c]);
            w = max_width && w > max_width ? max_width : w;
            widths[c] = w > widths[c] ? w : widths[c];
        }
    }
    for (size_t r = 0; r < self->n_rows; r++) {
        for (size_t c = 0; c < self->n_cols; c++) {
            const char *cell = self->cells[r * self->n_cols + c];
            size_t w = text_width(cell);
            int last = c + 1 == self->n_cols;
            if (max_width && w > max_width) {
                fprintf(out, "%.*s...", (int)prefix_bytes(cell, max_width - 3), cell);
                w = max_width;
            } else {
                fputs(cell, out);
            }
            if (!last) {
                fprintf(out, "%*s", (int)(widths[c] - w + 2), "");
            }
        }
        fputc('\n', out);
    }
    free(widths);
}

void
mpb_table_destroy(mpb_table **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_table *self = *self_p;
    for (size_t i = 0; i < self->n_rows * self->n_cols; i++) {
        free(self->cells[i]);
    }
    free(self->cells);
    free(self);
    *self_p = NULL;
}
