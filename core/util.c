#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

void
mpb__assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

static void *
check_alloc(void *ptr, size_t size)
{
    if (ptr == NULL && size > 0) {
        fprintf(stderr, "mpbatch: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return ptr;
}

void *
mpb_malloc(size_t size)
{
    return check_alloc(malloc(size ? size : 1), size);
}

void *
mpb_calloc(size_t count, size_t size)
{
    return check_alloc(calloc(count ? count : 1, size ? size : 1), count * size);
}

void *
mpb_realloc(void *ptr, size_t size)
{
    return check_alloc(realloc(ptr, size ? size : 1), size);
}

char *
mpb_strdup(const char *text)
{
    return mpb_strndup(text, strlen(text));
}

char *
mpb_strndup(const char *text, size_t len)
{
    char *copy = mpb_malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    return copy;
}

char *
mpb_asprintf(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *text = NULL;
    int len = vasprintf(&text, fmt, args);
    va_end(args);
    if (len < 0) {
        fprintf(stderr, "mpbatch: out of memory formatting a string\n");
        abort();
    }
    return text;
}

int
mpb__set_error(char *err, size_t err_len, int status, const char *fmt, ...)
{
    if (err != NULL && err_len > 0) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err, err_len, fmt, args);
        va_end(args);
    }
    return status;
}

size_t
mpb__utf8_sequence_len(const unsigned char *s, size_t len)
{
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    unsigned char lead = s[0];
    size_t extra;
    uint32_t cp;
    if (lead < 0x80) {
        return 1;
    } else if ((lead & 0xE0) == 0xC0) {
        extra = 1;
        cp = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
        extra = 2;
        cp = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
        extra = 3;
        cp = lead & 0x07;
    } else {
        return 0;
    }
    for (size_t k = 1; k <= extra; k++) {
        if (k >= len || (s[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min_cp[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return extra + 1;
}

size_t
mpb__utf8_valid_len(const void *bytes, size_t len)
{
    const unsigned char *s = bytes;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = mpb__utf8_sequence_len(s + i, len - i);
        if (n == 0) {
            break;
        }
        i += n;
    }
    return i;
}

int64_t
mpb_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int64_t
mpb_wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Levenshtein distance; names longer than the row buffer count as far apart. */
static size_t
edit_distance(const char *a, const char *b)
{
    enum { MAX_NAME = 63 };
    size_t len_a = strlen(a);
    size_t len_b = strlen(b);
    if (len_a > MAX_NAME || len_b > MAX_NAME) {
        return SIZE_MAX;
    }
    size_t row[MAX_NAME + 1];
    for (size_t j = 0; j <= len_b; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= len_a; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= len_b; j++) {
            size_t above = row[j];
            size_t cost = diagonal + (a[i - 1] != b[j - 1]);
            if (above + 1 < cost) {
                cost = above + 1;
            }
            if (row[j - 1] + 1 < cost) {
                cost = row[j - 1] + 1;
            }
            row[j] = cost;
            diagonal = above;
        }
    }
    return row[len_b];
}

/* Edits that still read as a typo of a name: 2, or a third of the shorter
 * name for long ones ("batch_cost" for "batch_cost_us"), and never as many
 * as the key has characters ("x" is no typo of "op"). */
static size_t
max_typo_edits(size_t key_len, size_t name_len)
{
    size_t shorter = key_len < name_len ? key_len : name_len;
    size_t edits = shorter / 3 > 2 ? shorter / 3 : 2;
    if (key_len == 0) {
        return 0;
    }
    return edits < key_len ? edits : key_len - 1;
}

const char *
mpb__nearest_name(const char *key, const char *const *known, size_t n_known)
{
    const char *nearest = NULL;
    size_t best = SIZE_MAX;
    size_t key_len = strlen(key);
    for (size_t i = 0; i < n_known; i++) {
        size_t distance = edit_distance(key, known[i]);
        if (distance < best && distance <= max_typo_edits(key_len, strlen(known[i]))) {
            best = distance;
            nearest = known[i];
        }
    }
    return nearest;
}

void
mpb__cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

void
mpb__monotonic_deadline(struct timespec *ts, int64_t ms)
{
    int64_t at = mpb_now_ns() + ms * 1000000;
    ts->tv_sec = (time_t)(at / 1000000000);
    ts->tv_nsec = (long)(at % 1000000000);
}
