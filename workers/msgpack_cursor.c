#include <string.h>

#include "msgpack_cursor.h"

size_t
mpb__cursor_left(const mpb__cursor *c)
{
    return c->len - c->pos;
}

/* A big-endian unsigned of width bytes. */
static int
read_be(mpb__cursor *c, size_t width, uint64_t *out)
{
    if (mpb__cursor_left(c) < width) {
        return 0;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < width; i++) {
        value = (value << 8) | c->bytes[c->pos + i];
    }
    c->pos += width;
    *out = value;
    return 1;
}

/* A container header: fix form fix_lo..fix_lo + 15, else the 16- and
 * 32-bit forms; bytes_per_entry is 1 for arrays, 2 for maps. */
static int
read_container(mpb__cursor *c, unsigned char fix_lo, unsigned char b16, unsigned char b32,
               size_t bytes_per_entry, uint64_t *count)
{
    size_t start = c->pos;
    if (mpb__cursor_left(c) < 1) {
        return 0;
    }
    unsigned char b = c->bytes[c->pos++];
    uint64_t n = 0;
    int ok = 1;
    if (b >= fix_lo && b <= fix_lo + 15) {
        n = (uint64_t)(b - fix_lo);
    } else if (b == b16 || b == b32) {
        ok = read_be(c, b == b16 ? 2 : 4, &n);
    } else {
        ok = 0;
    }
    if (!ok || n > mpb__cursor_left(c) / bytes_per_entry) {
        c->pos = start;
        return 0;
    }
    *count = n;
    return 1;
}

int
mpb__cursor_read_array(mpb__cursor *c, uint64_t *count)
{
    return read_container(c, 0x90, 0xdc, 0xdd, 1, count);
}

int
mpb__cursor_read_map(mpb__cursor *c, uint64_t *count)
{
    return read_container(c, 0x80, 0xde, 0xdf, 2, count);
}

/* str (fixstr a0..bf, str8/16/32 d9..db) or bin (bin8/16/32 c4..c6). */
static int
read_bytes(mpb__cursor *c, int want_bin, mpb__text *out)
{
    size_t start = c->pos;
    if (mpb__cursor_left(c) < 1) {
        return 0;
    }
    unsigned char b = c->bytes[c->pos++];
    uint64_t len = 0;
    int ok = 0;
    if (!want_bin && b >= 0xa0 && b <= 0xbf) {
        len = b & 0x1f;
        ok = 1;
    } else if (!want_bin && b >= 0xd9 && b <= 0xdb) {
        ok = read_be(c, (size_t)1 << (b - 0xd9), &len);
    } else if (want_bin && b >= 0xc4 && b <= 0xc6) {
        ok = read_be(c, (size_t)1 << (b - 0xc4), &len);
    }
    if (!ok || len > mpb__cursor_left(c)) {
        c->pos = start;
        return 0;
    }
    out->ptr = (const char *)c->bytes + c->pos;
    out->len = (size_t)len;
    c->pos += (size_t)len;
    return 1;
}

int
mpb__cursor_read_str(mpb__cursor *c, mpb__text *out)
{
    return read_bytes(c, 0, out);
}

int
mpb__cursor_read_bin(mpb__cursor *c, mpb__text *out)
{
    return read_bytes(c, 1, out);
}

int
mpb__cursor_read_int(mpb__cursor *c, int64_t *out)
{
    size_t start = c->pos;
    if (mpb__cursor_left(c) < 1) {
        return 0;
    }
    unsigned char b = c->bytes[c->pos++];
    uint64_t raw = 0;
    if (b <= 0x7f || b >= 0xe0) { /* positive and negative fixint */
        *out = (int8_t)b;
        return 1;
    }
    /* cc..cf: uint 8/16/32/64, d0..d3: int 8/16/32/64 */
    if (b < 0xcc || b > 0xd3 || !read_be(c, (size_t)1 << ((b - 0xcc) & 3), &raw)) {
        c->pos = start;
        return 0;
    }
    if (b <= 0xcf) {
        *out = raw > INT64_MAX ? INT64_MAX : (int64_t)raw;
        return 1;
    }
    unsigned bits = 8u << ((b - 0xd0) & 3);
    if (bits < 64 && (raw & ((uint64_t)1 << (bits - 1))) != 0) {
        raw |= ~(uint64_t)0 << bits; /* sign-extend */
    }
    memcpy(out, &raw, sizeof *out);
    return 1;
}

int
mpb__cursor_skip_scalar(mpb__cursor *c)
{
    static const struct {
        unsigned char byte;
        size_t size;
    } fixed[] = {{0xc0, 1}, {0xc2, 1}, {0xc3, 1}, {0xca, 5}, {0xcb, 9}};
    mpb__text ignored;
    int64_t number;
    for (size_t i = 0; mpb__cursor_left(c) > 0 && i < sizeof fixed / sizeof fixed[0]; i++) {
        if (c->bytes[c->pos] == fixed[i].byte) {
            if (mpb__cursor_left(c) < fixed[i].size) {
                return 0;
            }
            c->pos += fixed[i].size;
            return 1;
        }
    }
    return mpb__cursor_read_str(c, &ignored) || mpb__cursor_read_bin(c, &ignored) ||
           mpb__cursor_read_int(c, &number);
}

mpb__msgpack_kind
mpb__cursor_peek(const mpb__cursor *c)
{
    if (mpb__cursor_left(c) < 1) {
        return MPB_MSGPACK_END;
    }
    unsigned char b = c->bytes[c->pos];
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
        return MPB_MSGPACK_INT;
    } else if (b <= 0x8f || b == 0xde || b == 0xdf) {
        return MPB_MSGPACK_MAP;
    } else if (b <= 0x9f || b == 0xdc || b == 0xdd) {
        return MPB_MSGPACK_ARRAY;
    } else if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) {
        return MPB_MSGPACK_STR;
    } else if (b >= 0xc4 && b <= 0xc6) {
        return MPB_MSGPACK_BIN;
    }
    return MPB_MSGPACK_OTHER;
}

const char *
mpb__msgpack_kind_name(mpb__msgpack_kind kind)
{
    switch (kind) {
    case MPB_MSGPACK_END:
        return "nothing (the item ends)";
    case MPB_MSGPACK_INT:
        return "an integer";
    case MPB_MSGPACK_MAP:
        return "a map";
    case MPB_MSGPACK_ARRAY:
        return "an array";
    case MPB_MSGPACK_STR:
        return "a string";
    case MPB_MSGPACK_BIN:
        return "bin";
    case MPB_MSGPACK_OTHER:
        break;
    }
    return "nil, a bool, a float or an ext";
}

int
mpb__text_is(mpb__text t, const char *literal)
{
    return t.len == strlen(literal) && memcmp(t.ptr, literal, t.len) == 0;
}
