/*
 * Internal helpers every module uses: allocation that aborts on
 * out-of-memory, always-on assertions, clocks, error buffers.
 * Threading: all thread-safe. Processes: no state. Ownership: see each.
 */
#ifndef MPB_CORE_UTIL_H
#define MPB_CORE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "mpbatch/common.h"

#define MPB_ASSERT(expr)                                                                           \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            mpb__assert_fail(__FILE__, __LINE__, #expr);                                           \
        }                                                                                          \
    } while (0)

#define MPB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

_Noreturn void mpb__assert_fail(const char *file, int line, const char *expr);

/* Small allocations: abort with a message when memory runs out. Caller frees. */
void *mpb_malloc(size_t size);
void *mpb_calloc(size_t count, size_t size);
void *mpb_realloc(void *ptr, size_t size);
char *mpb_strdup(const char *text);
char *mpb_strndup(const char *text, size_t len);
char *mpb_asprintf(const char *fmt, ...) MPB_PRINTF(1, 2);

/* Length of the valid UTF-8 sequence that starts s (len > 0), or 0 when the
 * bytes there are not one (overlongs, surrogates and values above U+10FFFF
 * are invalid). */
size_t mpb__utf8_sequence_len(const unsigned char *s, size_t len);

/* Length of the longest prefix of bytes made of valid UTF-8 sequences: len
 * when all of it is UTF-8, else the offset of the first bad byte. */
size_t mpb__utf8_valid_len(const void *bytes, size_t len);

/* Formats into an optional error buffer (err may be NULL); returns status. */
int mpb__set_error(char *err, size_t err_len, int status, const char *fmt, ...) MPB_PRINTF(4, 5);

/* Monotonic clock in nanoseconds / microseconds; wall clock in milliseconds. */
int64_t mpb_now_ns(void);
static inline int64_t
mpb_now_us(void)
{
    return mpb_now_ns() / 1000;
}
int64_t mpb_wall_ms(void);

/* A condition variable whose timed waits run on CLOCK_MONOTONIC, so a
 * wall-clock jump moves no deadline; its deadlines come from
 * mpb__monotonic_deadline (so do pthread_clockjoin_np's). */
void mpb__cond_init_monotonic(pthread_cond_t *cond);
void mpb__monotonic_deadline(struct timespec *ts, int64_t ms);

/* The name in known[0..n_known) nearest to key by edit distance, when it is
 * close enough to be a likely typo (at most 2 edits, or a third of the
 * shorter name's length when that is more, and fewer edits than key has
 * characters; the first of equally near names wins), else NULL. For "did
 * you mean ...?" hints. Returns one of known (borrowed). */
const char *mpb__nearest_name(const char *key, const char *const *known, size_t n_known);

#endif
