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

/* A cell as one line of valid UTF-8: control characters (newlines, tabs,
 * escapes) become spaces and bytes that are not UTF-8 '?', so the layout
 * holds and nothing reaches the terminal as a command. */
static char *
printable(const char *cell)
{
    size_t len = strlen(cell);
    char *copy = mpb_malloc(len + 1);
    size_t out = 0;
    const unsigned char *s = (const unsigned char *)cell;
    for (size_t i = 0; i < len;) {
        size_t n = mpb__utf8_sequence_len(s + i, len - i);
        if (n == 0) {
            copy[out++] = '?';
            i++;
        } else if (n == 1) {
            copy[out++] = s[i] < 0x20 || s[i] == 0x7f ? ' ' : (char)s[i];
            i++;
        } else {
            memcpy(copy + out, s + i, n);
            out += n;
            i += n;
        }
    }
    copy[out] = '\0';
    return copy;
}

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
        self->cells[self->n_rows * self->n_cols + c] = printable(cells[c] ? cells[c] : "-");
    }
    self->n_rows++;
}

size_t
mpb_table_rows(const mpb_table *self)
{
    return self->n_rows - 1;
}

/* Columns a character takes on a terminal: 0 for combining marks and
 * zero-width ones, 2 for East Asian wide and fullwidth forms and emoji,
 * else 1 (the common ranges, as wcwidth gives them). */
static size_t
char_width(uint32_t c)
{
    if ((c >= 0x300 && c <= 0x36f) || (c >= 0x200b && c <= 0x200f) ||
        (c >= 0xfe00 && c <= 0xfe0f)) {
        return 0;
    }
    if ((c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf && c != 0x303f) ||
        (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
        (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
        (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
        (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x20000 && c <= 0x3fffd)) {
        return 2;
    }
    return 1;
}

/* Display columns of a cell (valid UTF-8: cells are made printable). */
static size_t
text_width(const char *text)
{
    size_t width = 0;
    while (*text != '\0') {
        width += char_width(mpb__utf8_next(&text));
    }
    return width;
}

/* Byte length of the longest prefix of text at most `columns` wide; its
 * width in *width. */
static size_t
prefix_bytes(const char *text, size_t columns, size_t *width)
{
    const char *p = text;
    *width = 0;
    while (*p != '\0') {
        const char *next = p;
        size_t w = char_width(mpb__utf8_next(&next));
        if (*width + w > columns) {
            break;
        }
        *width += w;
        p = next;
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
                size_t shown;
                fprintf(out, "%.*s...", (int)prefix_bytes(cell, max_width - 3, &shown), cell);
                w = shown + 3;
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
