/*
 * DESIGN
 * Rows live in blocks of ROWS_PER_BLOCK, so adding never copies the rows
 * already kept; servlet paths and error types are interned (a run has few),
 * so a row is 48 bytes plus its payloads. Payloads that are printable,
 * well-formed UTF-8 are written as JSON strings, anything else (and text
 * that starts "base64:") as "base64:..."; names with bytes that are not
 * UTF-8 get U+FFFD for them: the file always decodes as UTF-8 JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/item_table.h"

#define ROWS_PER_BLOCK 4096
#define MAX_NAMES 256 /* distinct servlets or error types; more share "other" */

typedef struct row {
    uint64_t index;
    int64_t latency_us;
    uint32_t batch;
    uint16_t servlet;    /* in names */
    uint16_t error_type; /* in names; 0: none */
    char *input;         /* payloads (payload_max > 0), with their lengths */
    char *value;
    uint32_t input_len;
    uint32_t value_len;
} row;

struct mpb__item_table {
    uint64_t first;
    uint64_t every;
    uint64_t max;
    size_t payload_max;
    uint64_t seen;
    uint64_t n_rows;
    uint64_t sampled_out;
    uint64_t dropped;
    row **blocks;
    size_t n_blocks;
    char *names[MAX_NAMES]; /* [0] = "" */
    size_t n_names;
};

mpb__item_table *
mpb__item_table_new(uint64_t first, uint64_t every, uint64_t max, size_t payload_max)
{
    mpb__item_table *self = mpb_calloc(1, sizeof *self);
    self->first = first;
    self->every = every;
    self->max = max;
    self->payload_max = payload_max;
    self->names[0] = mpb_strdup("");
    self->n_names = 1;
    return self;
}

void
mpb__item_table_free(mpb__item_table **self_p)
{
    mpb__item_table *self = *self_p;
    if (self == NULL) {
        return;
    }
    for (uint64_t i = 0; i < self->n_rows; i++) {
        row *r = &self->blocks[i / ROWS_PER_BLOCK][i % ROWS_PER_BLOCK];
        free(r->input);
        free(r->value);
    }
    for (size_t b = 0; b < self->n_blocks; b++) {
        free(self->blocks[b]);
    }
    free(self->blocks);
    for (size_t i = 0; i < self->n_names; i++) {
        free(self->names[i]);
    }
    free(self);
    *self_p = NULL;
}

static uint16_t
intern(mpb__item_table *self, const char *name)
{
    if (name == NULL || *name == '\0') {
        return 0;
    }
    for (size_t i = self->n_names; i-- > 1;) { /* the newest first: usually the same */
        if (strcmp(self->names[i], name) == 0) {
            return (uint16_t)i;
        }
    }
    if (self->n_names == MAX_NAMES) {
        return MAX_NAMES - 1;
    }
    self->names[self->n_names] = mpb_strdup(self->n_names == MAX_NAMES - 1 ? "other" : name);
    return (uint16_t)self->n_names++;
}

static char *
copy_payload(const mpb__item_table *self, const void *data, size_t len, uint32_t *out_len)
{
    if (data == NULL) {
        *out_len = 0;
        return NULL;
    }
    size_t n = len < self->payload_max ? len : self->payload_max;
    char *copy = mpb_malloc(n + 1);
    memcpy(copy, data, n);
    copy[n] = '\0';
    *out_len = (uint32_t)n;
    return copy;
}

void
mpb__item_table_add(mpb__item_table *self, const mpb_item_record *record)
{
    uint64_t seen = self->seen++;
    if (seen >= self->first && (self->every == 0 || (seen - self->first) % self->every != 0)) {
        self->sampled_out++;
        return;
    }
    if (self->n_rows >= self->max) {
        self->dropped++;
        return;
    }
    if (self->n_rows == self->n_blocks * ROWS_PER_BLOCK) {
        self->blocks = mpb_realloc(self->blocks, (self->n_blocks + 1) * sizeof *self->blocks);
        self->blocks[self->n_blocks++] = mpb_malloc(ROWS_PER_BLOCK * sizeof(row));
    }
    row *r = &self->blocks[self->n_rows / ROWS_PER_BLOCK][self->n_rows % ROWS_PER_BLOCK];
    self->n_rows++;
    r->index = record->index;
    r->latency_us = record->latency_us;
    r->batch = record->batch;
    r->servlet = intern(self, record->servlet);
    r->error_type = intern(self, record->error_type);
    r->input = NULL;
    r->value = NULL;
    r->input_len = r->value_len = 0;
    if (self->payload_max > 0) {
        r->input = copy_payload(self, record->input, record->input_len, &r->input_len);
        r->value = copy_payload(self, record->value, record->value_len, &r->value_len);
    }
}

uint64_t
mpb__item_table_rows(const mpb__item_table *self)
{
    return self->n_rows;
}

uint64_t
mpb__item_table_sampled_out(const mpb__item_table *self)
{
    return self->sampled_out;
}

uint64_t
mpb__item_table_dropped(const mpb__item_table *self)
{
    return self->dropped;
}

/* ---- writing ---- */

/* 1 when data is well-formed UTF-8 with no control characters but tab and
 * newline. */
static int
printable_utf8(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = mpb__utf8_sequence_len(p + i, len - i);
        if (n == 0 || (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n') || p[i] == 0x7F) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* text as a JSON string; bytes that are not well-formed UTF-8 become
 * U+FFFD, so the file always decodes. */
static void
json_text(FILE *out, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t n = mpb__utf8_sequence_len(p + i, len - i);
        if (n == 0) {
            fputs("\\ufffd", out);
            i++;
            continue;
        }
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c < 0x20 || c == 0x7F) {
            fprintf(out, "\\u%04x", c);
        } else {
            fwrite(p + i, 1, n, out);
        }
        i += n;
    }
    fputc('"', out);
}

static void
json_payload(FILE *out, const char *data, uint32_t len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (data == NULL) {
        fputs("null", out);
        return;
    }
    /* a text that itself starts "base64:" is encoded too, so the prefix
     * always means what it says */
    if (printable_utf8((const unsigned char *)data, len) &&
        !(len >= 7 && memcmp(data, "base64:", 7) == 0)) {
        json_text(out, data, len);
        return;
    }
    fputs("\"base64:", out);
    const unsigned char *p = (const unsigned char *)data;
    for (uint32_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        v |= i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0;
        v |= i + 2 < len ? p[i + 2] : 0;
        fputc(b64[(v >> 18) & 63], out);
        fputc(b64[(v >> 12) & 63], out);
        fputc(i + 1 < len ? b64[(v >> 6) & 63] : '=', out);
        fputc(i + 2 < len ? b64[v & 63] : '=', out);
    }
    fputc('"', out);
}

int
mpb__item_table_write(const mpb__item_table *self, const char *path, char *err, size_t err_len)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        return mpb__set_error(err, err_len, MPB_EIO, "%s: %s", path, strerror(errno));
    }
    fputs("{\"columns\": [\"index\", \"servlet\", \"status\", \"error_type\", \"latency_us\", "
          "\"batch\"",
          out);
    if (self->payload_max > 0) {
        fputs(", \"input\", \"value\"", out);
    }
    fputs("], \"data\": [", out);
    for (uint64_t i = 0; i < self->n_rows; i++) {
        const row *r = &self->blocks[i / ROWS_PER_BLOCK][i % ROWS_PER_BLOCK];
        const char *servlet = self->names[r->servlet];
        fprintf(out, "%s[%llu, ", i ? ", " : "", (unsigned long long)r->index);
        json_text(out, servlet, strlen(servlet));
        fprintf(out, ", \"%s\", ", r->error_type ? "error" : "ok");
        if (r->error_type) {
            const char *type = self->names[r->error_type];
            json_text(out, type, strlen(type));
        } else {
            fputs("null", out);
        }
        fprintf(out, ", %lld, ", (long long)r->latency_us);
        if (r->batch) {
            fprintf(out, "%u", r->batch);
        } else {
            fputs("null", out);
        }
        if (self->payload_max > 0) {
            fputs(", ", out);
            json_payload(out, r->input, r->input_len);
            fputs(", ", out);
            json_payload(out, r->value, r->value_len);
        }
        fputc(']', out);
    }
    fputs("]}\n", out);
    if (ferror(out) | (fclose(out) != 0)) {
        return mpb__set_error(err, err_len, MPB_EIO, "%s: write failed", path);
    }
    return 0;
}
