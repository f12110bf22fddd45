#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tools/json_out.h"

/* A JSON string; bytes that are not UTF-8 become U+FFFD, so the line stays
 * valid JSON whatever a worker put in its error text. */
static void
write_escaped(FILE *out, const unsigned char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        size_t n = mpb__utf8_sequence_len(s + i, len - i);
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
    if (mpb__utf8_valid_len(bytes, len) == len) {
        write_escaped(out, bytes, len);
        return;
    }
    fputs("{\"base64\": ", out);
    write_base64(out, bytes, len);
    fputc('}', out);
}

/* The shortest %g text that reads back to the same float (6 to 9 digits;
 * fewer digits never round-trip where 6 do not print them already). */
static void
write_float(FILE *out, float v)
{
    char text[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)v);
        if (strtof(text, NULL) == v) {
            break;
        }
    }
    fputs(text, out);
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
            write_float(out, v);
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

void
mpb__json_print_document(const char *json)
{
    /* cJSON passes bytes of 0x80 and above through as they are; the JSON
     * around strings is ASCII, so whatever is not UTF-8 sits in a string
     * and becomes U+FFFD there */
    const unsigned char *s = (const unsigned char *)json;
    size_t len = strlen(json);
    for (size_t i = 0; i < len;) {
        size_t n = mpb__utf8_sequence_len(s + i, len - i);
        if (n == 0) {
            fputs("\xef\xbf\xbd", stdout);
            i++;
            continue;
        }
        fwrite(s + i, 1, n, stdout);
        i += n;
    }
    fputc('\n', stdout);
}
