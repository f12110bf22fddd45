#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/text.h"

void
mpb__strbuf_append(mpb__strbuf *buf, const char *text, size_t len)
{
    if (buf->len + len + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 64;
        while (cap < buf->len + len + 1) {
            cap *= 2;
        }
        buf->text = mpb_realloc(buf->text, cap);
        buf->cap = cap;
    }
    memcpy(buf->text + buf->len, text, len);
    buf->len += len;
    buf->text[buf->len] = '\0';
}

void
mpb__strbuf_puts(mpb__strbuf *buf, const char *text)
{
    mpb__strbuf_append(buf, text, strlen(text));
}

void
mpb__strbuf_printf(mpb__strbuf *buf, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *text = NULL;
    int len = vasprintf(&text, fmt, args);
    va_end(args);
    MPB_ASSERT(len >= 0);
    mpb__strbuf_append(buf, text, (size_t)len);
    free(text);
}

char *
mpb__strbuf_take(mpb__strbuf *buf)
{
    char *text = buf->text ? buf->text : mpb_strdup("");
    buf->text = NULL;
    buf->len = 0;
    buf->cap = 0;
    return text;
}

void
mpb__strbuf_clear(mpb__strbuf *buf)
{
    free(buf->text);
    buf->text = NULL;
    buf->len = 0;
    buf->cap = 0;
}

long
mpb__utf8_length(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    long count = 0;
    while (*p) {
        uint32_t cp;
        int extra;
        if (*p < 0x80) {
            p++;
            count++;
            continue;
        } else if ((*p & 0xE0) == 0xC0) {
            cp = *p & 0x1F;
            extra = 1;
        } else if ((*p & 0xF0) == 0xE0) {
            cp = *p & 0x0F;
            extra = 2;
        } else if ((*p & 0xF8) == 0xF0) {
            cp = *p & 0x07;
            extra = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xC0) != 0x80) {
                return -1;
            }
            cp = (cp << 6) | (*p & 0x3F);
        }
        static const uint32_t min_for_extra[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_for_extra[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return -1;
        }
        count++;
    }
    return count;
}

uint32_t
mpb__utf8_next(const char **text)
{
    const unsigned char *p = (const unsigned char *)*text;
    uint32_t cp;
    int extra;
    if (*p < 0x80) {
        cp = *p;
        extra = 0;
    } else if ((*p & 0xE0) == 0xC0) {
        cp = *p & 0x1F;
        extra = 1;
    } else if ((*p & 0xF0) == 0xE0) {
        cp = *p & 0x0F;
        extra = 2;
    } else {
        cp = *p & 0x07;
        extra = 3;
    }
    p++;
    for (int i = 0; i < extra && (*p & 0xC0) == 0x80; i++, p++) {
        cp = (cp << 6) | (*p & 0x3F);
    }
    *text = (const char *)p;
    return cp;
}

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
mpb__base64_encode(const void *bytes, size_t len)
{
    const unsigned char *in = bytes;
    char *out = mpb_malloc((len + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t chunk = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            chunk |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            chunk |= in[i + 2];
        }
        out[o++] = base64_alphabet[(chunk >> 18) & 63];
        out[o++] = base64_alphabet[(chunk >> 12) & 63];
        out[o++] = i + 1 < len ? base64_alphabet[(chunk >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? base64_alphabet[chunk & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int
base64_value(char c)
{
    const char *at = c ? strchr(base64_alphabet, c) : NULL;
    return at ? (int)(at - base64_alphabet) : -1;
}

unsigned char *
mpb__base64_decode(const char *text, size_t *out_len)
{
    size_t len = strlen(text);
    if (len == 0 || len % 4 != 0) {
        return NULL;
    }
    unsigned char *out = mpb_malloc(len / 4 * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = base64_value(text[i + k]);
        }
        int pad2 = text[i + 2] == '=' && text[i + 3] == '=' && i + 4 == len;
        int pad3 = !pad2 && text[i + 3] == '=' && i + 4 == len;
        if (v[0] < 0 || v[1] < 0 || (v[2] < 0 && !pad2) || (v[3] < 0 && !pad2 && !pad3)) {
            free(out);
            return NULL;
        }
        uint32_t chunk = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12);
        out[o++] = (unsigned char)(chunk >> 16);
        if (!pad2) {
            chunk |= (uint32_t)v[2] << 6;
            out[o++] = (unsigned char)(chunk >> 8);
        }
        if (!pad2 && !pad3) {
            chunk |= (uint32_t)v[3];
            out[o++] = (unsigned char)chunk;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

void
mpb__format_double(double value, char out[32])
{
    if (isnan(value)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(value)) {
        strcpy(out, value > 0 ? "inf" : "-inf");
        return;
    }
    /* Whole numbers below 1e15 (counts, sizes, microseconds: most metrics)
     * come out as their digits, which is what the search below ends in for
     * them, at a fraction of the cost (no snprintf/strtod rounds). */
    if (fabs(value) < 1e15 && value == (double)(long long)value && /* magnitude first */
        !(value == 0 && signbit(value))) {
        long long whole = (long long)value;
        char digits[24];
        int n = 0;
        unsigned long long magnitude =
            whole < 0 ? 0ull - (unsigned long long)whole : (unsigned long long)whole;
        do {
            digits[n++] = (char)('0' + magnitude % 10);
            magnitude /= 10;
        } while (magnitude > 0);
        int o = 0;
        if (whole < 0) {
            out[o++] = '-';
        }
        while (n > 0) {
            out[o++] = digits[--n];
        }
        out[o] = '\0';
        return;
    }
    /* Shortest digits that round-trip, laid out as Python's repr: fixed
     * notation for exponents -4..15, else d.ddde+XX. */
    /* Round-tripping is monotonic in the precision: binary search 1..17. */
    int low = 1;
    int high = 17;
    while (low < high) {
        int mid = (low + high) / 2;
        snprintf(out, 32, "%.*e", mid - 1, value);
        if (strtod(out, NULL) == value) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    int precision = low;
    snprintf(out, 32, "%.*e", precision - 1, value);
    int exponent = atoi(strchr(out, 'e') + 1);
    if (exponent >= -4 && exponent < 16) {
        int decimals = precision - 1 - exponent;
        snprintf(out, 32, "%.*f", decimals > 0 ? decimals : 0, value);
    }
}

int
mpb__random_bytes(void *buf, size_t len)
{
    unsigned char *at = buf;
    while (len > 0) {
        ssize_t got = getrandom(at, len, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        at += got;
        len -= (size_t)got;
    }
    return 0;
}

int
mpb__uuid4_hex(char out[33])
{
    unsigned char bytes[16];
    int rc = mpb__random_bytes(bytes, sizeof bytes);
    if (rc < 0) {
        return rc;
    }
    bytes[6] = (unsigned char)((bytes[6] & 0x0F) | 0x40);
    bytes[8] = (unsigned char)((bytes[8] & 0x3F) | 0x80);
    for (int i = 0; i < 16; i++) {
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    }
    return 0;
}

int
mpb__experiment_id_new(char out[19])
{
    unsigned char bytes[18];
    int rc = mpb__random_bytes(bytes, sizeof bytes);
    if (rc < 0) {
        return rc;
    }
    for (int i = 0; i < 18; i++) {
        out[i] = (char)('0' + bytes[i] % 10);
    }
    out[0] = (char)('1' + bytes[0] % 9);
    out[18] = '\0';
    return 0;
}

/* Our own word lists; lengths keep names within MLflow's 20 characters. */
static const char *const name_adjectives[] = {
    "amber",  "bold",   "brisk",  "calm",   "clever", "crisp",  "dapper", "eager",
    "fleet",  "gentle", "glossy", "hardy",  "jolly",  "keen",   "lively", "lucid",
    "mellow", "nimble", "placid", "quiet",  "rapid",  "sturdy", "sunny",  "tidy",
    "vivid",  "witty",  "zesty",  "silent", "steady", "polite", "proud",  "royal",
};
static const char *const name_nouns[] = {
    "badger", "bison", "crane", "dingo", "eagle",  "falcon", "ferret", "gecko",
    "heron",  "ibis",  "koala", "lemur", "lynx",   "marten", "moose",  "newt",
    "otter",  "owl",   "panda", "quail", "raven",  "seal",   "shrew",  "skunk",
    "stoat",  "tapir", "toad",  "vole",  "walrus", "wombat", "yak",    "zebra",
};

char *
mpb__run_name_new(void)
{
    unsigned char pick[4] = {0, 0, 0, 0};
    (void)mpb__random_bytes(pick, sizeof pick);
    unsigned number = ((unsigned)pick[2] << 8 | pick[3]) % 1000;
    return mpb_asprintf("%s-%s-%u", name_adjectives[pick[0] % MPB_ARRAY_LEN(name_adjectives)],
                        name_nouns[pick[1] % MPB_ARRAY_LEN(name_nouns)], number);
}

char *
mpb__path_to_file_uri(const char *abs_path)
{
    mpb__strbuf buf = {0};
    mpb__strbuf_puts(&buf, "file://");
    for (const unsigned char *p = (const unsigned char *)abs_path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("_.~/-", *p) != NULL) {
            mpb__strbuf_append(&buf, (const char *)p, 1);
        } else {
            mpb__strbuf_printf(&buf, "%%%02X", *p);
        }
    }
    return mpb__strbuf_take(&buf);
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

char *
mpb__file_uri_to_path(const char *uri)
{
    if (strncmp(uri, "file:", 5) != 0) {
        return NULL;
    }
    const char *path = uri + 5;
    if (strncmp(path, "//", 2) == 0) {
        path += 2;
        if (strncmp(path, "localhost/", 10) == 0) {
            path += 9;
        } else if (*path != '/') {
            return NULL; /* a remote host */
        }
    }
    if (*path == '\0') {
        return NULL;
    }
    mpb__strbuf buf = {0};
    for (const char *p = path; *p; p++) {
        int hi = p[0] == '%' ? hex_value(p[1]) : -1;
        int lo = hi >= 0 ? hex_value(p[2]) : -1;
        if (hi >= 0 && lo >= 0 && (hi || lo)) {
            char c = (char)(hi * 16 + lo);
            mpb__strbuf_append(&buf, &c, 1);
            p += 2;
        } else {
            mpb__strbuf_append(&buf, p, 1);
        }
    }
    return mpb__strbuf_take(&buf);
}

int
mpb__parse_int64(const char *text, int64_t *out)
{
    if (text == NULL || *text == '\0') {
        return MPB_EINVAL;
    }
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        return MPB_EINVAL;
    }
    *out = (int64_t)value;
    return 0;
}

int
mpb__compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t
mpb__strings_sort_unique(const char **strings, size_t n)
{
    qsort(strings, n, sizeof *strings, mpb__compare_strings);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (kept == 0 || strcmp(strings[kept - 1], strings[i]) != 0) {
            strings[kept++] = strings[i];
        }
    }
    return kept;
}
