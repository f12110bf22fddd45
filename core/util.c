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
