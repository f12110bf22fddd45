/*
 * Text helpers of the tracking stores: a growable string buffer, UTF-8 checks,
 * base64, MLflow-readable number formatting, random ids, file URIs, string
 * arrays.
 * Threading: all thread-safe (no shared state). Processes: n/a.
 * Ownership: returned char * are the caller's (free()); inputs are borrowed.
 */
#ifndef MPB_TRACKING_TEXT_H
#define MPB_TRACKING_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"

/* Growable NUL-terminated buffer; aborts on out-of-memory like mpb_malloc. */
typedef struct mpb__strbuf {
    char *text;
    size_t len;
    size_t cap;
} mpb__strbuf;

void mpb__strbuf_append(mpb__strbuf *buf, const char *text, size_t len);
void mpb__strbuf_puts(mpb__strbuf *buf, const char *text);
void mpb__strbuf_printf(mpb__strbuf *buf, const char *fmt, ...) MPB_PRINTF(2, 3);
/* Hands the text to the caller (never NULL) and empties the buffer. */
char *mpb__strbuf_take(mpb__strbuf *buf);
void mpb__strbuf_clear(mpb__strbuf *buf);

/* Code points of valid UTF-8 text, or -1 when the text is not valid UTF-8
 * (overlongs, surrogates and values above U+10FFFF are invalid). */
long mpb__utf8_length(const char *text);

/* Decodes one code point at *text (valid UTF-8 assumed), advancing *text. */
uint32_t mpb__utf8_next(const char **text);

/* Standard base64 with padding; decoding returns NULL on malformed input. */
char *mpb__base64_encode(const void *bytes, size_t len);
unsigned char *mpb__base64_decode(const char *text, size_t *out_len);

/* Shortest text that reads back to the same double; "nan", "inf", "-inf"
 * otherwise (all of which Python's float() reads). out needs 32 bytes. */
void mpb__format_double(double value, char out[32]);

/* Fills buf with random bytes (getrandom); 0 or a negative status. */
int mpb__random_bytes(void *buf, size_t len);

/* uuid4().hex: 32 lowercase hex digits. out needs 33 bytes. */
int mpb__uuid4_hex(char out[33]);

/* An 18-digit decimal experiment id without a leading zero. out needs 19 bytes. */
int mpb__experiment_id_new(char out[19]);

/* A random MLflow-style run name "adjective-noun-NNN" (at most 20 chars). */
char *mpb__run_name_new(void);

/* file:// URI of an absolute path, percent-encoding all but [A-Za-z0-9_.~/-]. */
char *mpb__path_to_file_uri(const char *abs_path);

/* Local path of a "file:" URI ("file:///a%20b", "file://localhost/a",
 * "file:rel/path"); NULL when uri is no local file URI. */
char *mpb__file_uri_to_path(const char *uri);

/* Parses a whole decimal int64; 0 or MPB_EINVAL. */
int mpb__parse_int64(const char *text, int64_t *out);

/* qsort/bsearch comparator of an array of strings (const char *), by strcmp. */
int mpb__compare_strings(const void *a, const void *b);

/* Sorts an array of strings and drops repeats; returns how many stay. */
size_t mpb__strings_sort_unique(const char **strings, size_t n);

#endif
