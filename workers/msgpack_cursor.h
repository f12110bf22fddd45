/*
 * Reading msgpack in place, for built-in plugins that take structured
 * items: a cursor over one item's bytes that never reads past them and
 * allocates nothing. Unlike msgpack_unpack, which allocates from declared
 * counts before it sees the elements, a container whose count cannot fit
 * in the bytes left is refused.
 * Threading: a cursor belongs to one thread. Processes: n/a.
 * Ownership: the cursor and every text it returns borrow the item's bytes.
 */
#ifndef MPB_WORKERS_MSGPACK_CURSOR_H
#define MPB_WORKERS_MSGPACK_CURSOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct mpb__cursor {
    const unsigned char *bytes;
    size_t len;
    size_t pos;
} mpb__cursor;

/* Bytes of a str or bin, not NUL-terminated. */
typedef struct mpb__text {
    const char *ptr;
    size_t len;
} mpb__text;

typedef enum mpb__msgpack_kind {
    MPB_MSGPACK_END, /* no bytes left */
    MPB_MSGPACK_INT,
    MPB_MSGPACK_MAP,
    MPB_MSGPACK_ARRAY,
    MPB_MSGPACK_STR,
    MPB_MSGPACK_BIN,
    MPB_MSGPACK_OTHER, /* nil, bool, float, ext, the unused byte */
} mpb__msgpack_kind;

/* Bytes not yet read. */
size_t mpb__cursor_left(const mpb__cursor *c);

/* The type of the next value, from its first byte (nothing is read). */
mpb__msgpack_kind mpb__cursor_peek(const mpb__cursor *c);

/* "an array", "bin"...: the kind for messages. */
const char *mpb__msgpack_kind_name(mpb__msgpack_kind kind);

/* Each reads one value of its type and returns 1, or returns 0 with the
 * cursor unmoved when the next value is another type or is cut short. A
 * container's count must fit in the bytes left (entries take one byte or
 * more); its elements follow, unread. */
int mpb__cursor_read_array(mpb__cursor *c, uint64_t *count);
int mpb__cursor_read_map(mpb__cursor *c, uint64_t *count);
int mpb__cursor_read_str(mpb__cursor *c, mpb__text *out);
int mpb__cursor_read_bin(mpb__cursor *c, mpb__text *out);
/* Any integer format; a uint64 above INT64_MAX reads as INT64_MAX. */
int mpb__cursor_read_int(mpb__cursor *c, int64_t *out);
/* Skips nil, a bool, an integer, a float, a str or a bin (not a container). */
int mpb__cursor_skip_scalar(mpb__cursor *c);

/* True when t holds exactly the text of literal. */
int mpb__text_is(mpb__text t, const char *literal);

#endif
