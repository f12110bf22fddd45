#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tools/json_out.h"

/* Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid. */
static size_t
utf8_sequence(const unsigned char *s, size_t len, size_t i)
{
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    unsigned char c = s[i];
    size_t extra;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        extra = 1;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        extra = 2;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        extra = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t k = 1; k <= extra; k++) {
        if (i + k >= len || (s[i + k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min_cp[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return extra + 1;
}

static int
valid_utf8(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(s, len, i);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD, so the line stays
 * valid JSON whatever a worker put in its error text. */
static void
write_escaped(FILE *out, const unsigned char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(s, len, i);
        unsigned char c = s[i];
        if (n == 0) {
            fputs("\\ufffd", out);
            i++;
            continue;
        }
        if (n > 1) {
            fwrite(s + i, 1, n, out);
        } else if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\r') {
            fputs("\\r", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
        } else {
            fputc(c, out);
        }
        i += n;
    }
    fputc('"', out);
}

static void
write_base64(FILE *out, const unsigned char *s, size_t len)
{
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', out);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)s[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= s[i + 2];
        }
        fputc(table[(v >> 18) & 63], out);
        fputc(table[(v >> 12) & 63], out);
        fputc(i + 1 < len ? table[(v >> 6) & 63] : '=', out);
        fputc(i + 2 < len ? table[v & 63] : '=', out);
    }
    fputc('"', out);
}

void
mpb__json_write_string(FILE *out, const void *bytes, size_t len)
{
    if (valid_utf8(bytes, len)) {
        write_escaped(out, bytes, len);
        return;
    }
    fputs("{\"base64\": ", out);
    write_base64(out, bytes, len);
    fputc('}', out);
}

void
mpb__json_write_floats(FILE *out, const float *values, size_t count)
{
    fputc('[', out);
    for (size_t i = 0; i < count; i++) {
        float v;
        memcpy(&v, &values[i], sizeof v); /* values may be unaligned */
        if (i > 0) {
            fputs(", ", out);
        }
        if (isfinite(v)) {
            fprintf(out, "%.9g", (double)v);
        } else {
            fputs("null", out);
        }
    }
    fputc(']', out);
}

static void
write_text(FILE *out, const char *text)
{
    write_escaped(out, (const unsigned char *)text, strlen(text));
}

void
mpb__json_write_error(FILE *out, const mpb_item_error *error)
{
    fputs("{\"error\": {\"type\": ", out);
    write_text(out, error->type);
    fputs(", \"message\": ", out);
    write_text(out, error->message);
    fputs(", \"servlet\": ", out);
    write_text(out, error->servlet);
    fputs(", \"worker\": ", out);
    write_text(out, error->worker);
    fprintf(out, ", \"pid\": %lld}}", (long long)error->pid);
}

void
mpb__json_write_result(FILE *out, const mpb_result *result, int f32)
{
    const mpb_item_error *e = mpb_result_error(result);
    if (e != NULL) {
        mpb__json_write_error(out, e);
        return;
    }
    if (mpb_result_is_array(result)) {
        fputc('[', out);
        for (size_t i = 0; i < mpb_result_member_count(result); i++) {
            if (i > 0) {
                fputs(", ", out);
            }
            mpb__json_write_result(out, mpb_result_member(result, i), f32);
        }
        fputc(']', out);
        return;
    }
    size_t len;
    const void *value = mpb_result_value(result, &len);
    if (f32 && len % sizeof(float) == 0) {
        mpb__json_write_floats(out, value, len / sizeof(float));
    } else {
        mpb__json_write_string(out, value, len);
    }
}
