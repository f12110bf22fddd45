/*
 * DESIGN
 * Frames are msgpack arrays [type, field...]; docs/protocol.md is the
 * reference. Encoding appends to a reusable sbuffer. Decoding uses
 * msgpack_unpack with a caller-owned zone that is cleared per frame, so a
 * hot loop allocates nothing once the zone has grown; decoded strings and
 * binaries point into the received bytes (zero copy). ITEMS and RESULTS
 * entries are validated one by one when read, so one bad entry costs one
 * item, not the whole frame. Extra trailing fields are ignored, which lets a
 * newer peer add fields without breaking an older one.
 */
#include <string.h>

#include "core/util.h"
#include "core/wire.h"
#include "mpbatch/error.h"

/* Values in one frame, at most: msgpack-c spends ~24 bytes of zone per
 * value, so this bounds what one frame can make the receiver allocate
 * (~25 MB). Real frames hold a few thousand. */
#define MAX_ELEMENTS (1u << 20)
#define MAX_SETTINGS_OPTIONS 1024

int
mpb__wire_as_uint(const msgpack_object *obj, uint64_t *out)
{
    if (obj->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return MPB_EPROTO;
    }
    *out = obj->via.u64;
    return 0;
}

int
mpb__wire_as_int(const msgpack_object *obj, int64_t *out)
{
    if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (obj->via.u64 > INT64_MAX) {
            return MPB_EPROTO;
        }
        *out = (int64_t)obj->via.u64;
        return 0;
    }
    if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = obj->via.i64;
        return 0;
    }
    return MPB_EPROTO;
}

static int
as_u32(const msgpack_object *obj, uint32_t *out)
{
    uint64_t value;
    if (mpb__wire_as_uint(obj, &value) != 0 || value > UINT32_MAX) {
        return MPB_EPROTO;
    }
    *out = (uint32_t)value;
    return 0;
}

int
mpb__wire_as_str(const msgpack_object *obj, mpb__wire_str *out)
{
    if (obj->type != MSGPACK_OBJECT_STR) {
        return MPB_EPROTO;
    }
    out->ptr = obj->via.str.ptr;
    out->len = obj->via.str.size;
    return 0;
}

int
mpb__wire_as_bytes(const msgpack_object *obj, const void **data, size_t *len)
{
    if (obj->type == MSGPACK_OBJECT_BIN) {
        *data = obj->via.bin.ptr;
        *len = obj->via.bin.size;
        return 0;
    }
    if (obj->type == MSGPACK_OBJECT_STR) {
        *data = obj->via.str.ptr;
        *len = obj->via.str.size;
        return 0;
    }
    return MPB_EPROTO;
}

static uint64_t
read_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Walks msgpack bytes without allocating and checks that every declared
 * length and element count fits in what is left of the frame, and that the
 * frame holds exactly one value of at most MAX_ELEMENTS values in all.
 * msgpack_unpack sizes its allocations from
 * declared counts, so an array header claiming 2^32 elements in a 5-byte
 * frame must be refused before it gets there. Returns 1 when it fits, 0
 * when it does not, -1 when it holds more than MAX_ELEMENTS values. */
static int
bounds_ok(const unsigned char *p, size_t len)
{
    size_t pos = 0;
    uint64_t pending = 1;
    uint64_t elements = 0;
    while (pending > 0) {
        if (pos >= len || pending > len - pos) {
            return 0;
        }
        unsigned char b = p[pos++];
        pending--;
        uint64_t skip = 0;  /* payload bytes after the header */
        uint64_t items = 0; /* elements that follow */
        size_t width = 0;   /* bytes of a length or count field */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            continue;
        } else if (b >= 0x80 && b <= 0x8f) {
            items = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            items = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xc5:
            case 0xc6: /* bin 8/16/32 */
            case 0xd9:
            case 0xda:
            case 0xdb: /* str 8/16/32 */
                width = (size_t)1 << (b == 0xc4 || b == 0xd9 ? 0 : b == 0xc5 || b == 0xda ? 1 : 2);
                break;
            case 0xc7:
            case 0xc8:
            case 0xc9: /* ext 8/16/32: length, type, data */
                width = (size_t)1 << (b - 0xc7);
                skip = 1;
                break;
            case 0xca:
                skip = 4;
                break;
            case 0xcb:
                skip = 8;
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4:
                skip = 2;
                break;
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xdc:
            case 0xdd: /* array 16/32 */
            case 0xde:
            case 0xdf: /* map 16/32 */
                width = b == 0xdc || b == 0xde ? 2 : 4;
                break;
            default:
                return 0; /* 0xc1: never used */
            }
        }
        if (width > 0) {
            if (len - pos < width) {
                return 0;
            }
            uint64_t n = read_be(p + pos, width);
            pos += width;
            if (b >= 0xdc) {
                items = b >= 0xde ? 2 * n : n;
            } else {
                skip += n;
            }
        }
        if (skip > len - pos || items > len - pos) {
            return 0;
        }
        pos += (size_t)skip;
        pending += items;
        elements += items;
        if (elements > MAX_ELEMENTS) {
            return -1;
        }
    }
    return pos == len;
}

static int
decode_ready(const msgpack_object_array *a, mpb__ready *r)
{
    if (a->size < MPB_WIRE_READY_FIELDS) {
        return MPB_EPROTO;
    }
    const msgpack_object *f = a->ptr;
    if (as_u32(&f[1], &r->version) || mpb__wire_as_str(&f[2], &r->name) ||
        mpb__wire_as_int(&f[3], &r->pid) || mpb__wire_as_str(&f[4], &r->cpus) ||
        as_u32(&f[5], &r->capacity) || mpb__wire_as_str(&f[6], &r->plugin) ||
        as_u32(&f[7], &r->batch_size) || mpb__wire_as_int(&f[8], &r->batch_wait_us) ||
        mpb__wire_as_str(&f[9], &r->host)) {
        return MPB_EPROTO;
    }
    return 0;
}

static int
decode_telemetry(const msgpack_object_array *a, mpb_batch_telemetry *t)
{
    if (a->size < MPB_WIRE_TELEMETRY_FIELDS) {
        return MPB_EPROTO;
    }
    const msgpack_object *f = a->ptr;
    uint32_t closed_by;
    memset(t, 0, sizeof *t);
    if (as_u32(&f[1], &t->size) || as_u32(&f[2], &t->errors) ||
        mpb__wire_as_int(&f[3], &t->first_wait_us) || mpb__wire_as_int(&f[4], &t->compute_us) ||
        as_u32(&f[5], &closed_by) || as_u32(&f[6], &t->queued_after) ||
        closed_by > MPB_BATCH_CLOSED_DRAINED) {
        return MPB_EPROTO;
    }
    t->closed_by = (mpb_batch_close)closed_by;
    return 0;
}

int
mpb__wire_decode_hello(const msgpack_object_array *a, mpb__hello *out)
{
    uint64_t version;
    if (a->size < MPB_WIRE_HELLO_FIELDS || mpb__wire_as_uint(&a->ptr[1], &version) != 0 ||
        version > UINT32_MAX || mpb__wire_as_str(&a->ptr[2], &out->name) != 0 ||
        mpb__wire_as_str(&a->ptr[3], &out->plugin) != 0 ||
        mpb__wire_as_str(&a->ptr[4], &out->host) != 0) {
        return MPB_EPROTO;
    }
    out->version = (uint32_t)version;
    return 0;
}

int
mpb__wire_decode_settings(const msgpack_object_array *a, mpb__settings *out)
{
    uint64_t isolate;
    if (a->size < MPB_WIRE_SETTINGS_FIELDS || mpb__wire_as_str(&a->ptr[1], &out->plugin) != 0 ||
        mpb__wire_as_int(&a->ptr[2], &out->batch_size) != 0 ||
        mpb__wire_as_int(&a->ptr[3], &out->batch_wait_us) != 0 ||
        mpb__wire_as_int(&a->ptr[4], &out->capacity) != 0 ||
        mpb__wire_as_int(&a->ptr[5], &out->max_item_bytes) != 0 ||
        mpb__wire_as_uint(&a->ptr[6], &isolate) != 0 || a->ptr[7].type != MSGPACK_OBJECT_ARRAY ||
        a->ptr[7].via.array.size > MAX_SETTINGS_OPTIONS) {
        return MPB_EPROTO;
    }
    out->isolate_bisect = isolate != 0;
    out->options = a->ptr[7].via.array.ptr;
    out->n_options = a->ptr[7].via.array.size;
    for (uint32_t i = 0; i < out->n_options; i++) {
        if (out->options[i].type != MSGPACK_OBJECT_STR) {
            return MPB_EPROTO;
        }
    }
    return 0;
}

static int
decode_body(const msgpack_object_array *a, uint64_t type, mpb__frame *out)
{
    switch (type) {
    case MPB_FRAME_READY:
        return decode_ready(a, &out->u.ready);
    case MPB_FRAME_ITEMS:
    case MPB_FRAME_RESULTS:
        if (a->size < 2 || a->ptr[1].type != MSGPACK_OBJECT_ARRAY) {
            return MPB_EPROTO;
        }
        out->u.list.entries = a->ptr[1].via.array.ptr;
        out->u.list.count = a->ptr[1].via.array.size;
        if (type == MPB_FRAME_ITEMS && a->size >= 3) {
            mpb__wire_as_uint(&a->ptr[2], &out->u.list.backlog); /* optional hint */
        }
        if (type == MPB_FRAME_ITEMS && a->size >= 4) {
            mpb__wire_as_uint(&a->ptr[3], &out->u.list.values_read);
        }
        return 0;
    case MPB_FRAME_TELEMETRY:
        return decode_telemetry(a, &out->u.telemetry);
    case MPB_FRAME_HELLO:
        return mpb__wire_decode_hello(a, &out->u.hello);
    case MPB_FRAME_SETTINGS:
        return mpb__wire_decode_settings(a, &out->u.settings);
    case MPB_FRAME_HEARTBEAT:
    case MPB_FRAME_SHUTDOWN:
    case MPB_FRAME_BYE:
        return 0;
    case MPB_FRAME_ERROR:
        if (a->size < 3 || mpb__wire_as_int(&a->ptr[1], &out->u.error.code) ||
            mpb__wire_as_str(&a->ptr[2], &out->u.error.message)) {
            return MPB_EPROTO;
        }
        return 0;
    default:
        return MPB_EPROTO;
    }
}

int
mpb__msgpack_unpack_bounded(msgpack_zone *zone, const void *data, size_t len,
                            msgpack_object *root)
{
    size_t offset = 0;
    if (len == 0 || bounds_ok(data, len) != 1 ||
        msgpack_unpack(data, len, &offset, zone, root) != MSGPACK_UNPACK_SUCCESS) {
        return MPB_EPROTO;
    }
    return 0;
}

int
mpb__wire_unpack(msgpack_zone *zone, const void *data, size_t len, msgpack_object *root,
                 uint64_t *type, char *err, size_t err_len)
{
    size_t offset = 0;
    msgpack_zone_clear(zone);
    if (len == 0) {
        return mpb__set_error(err, err_len, MPB_EPROTO, "empty frame");
    }
    int bounds = bounds_ok(data, len);
    if (bounds < 0) {
        return mpb__set_error(err, err_len, MPB_ELIMIT,
                              "frame of %zu bytes holds more than %u msgpack values; send it in "
                              "smaller frames",
                              len, MAX_ELEMENTS);
    }
    if (bounds == 0 || msgpack_unpack(data, len, &offset, zone, root) != MSGPACK_UNPACK_SUCCESS) {
        return mpb__set_error(err, err_len, MPB_EPROTO,
                              "frame of %zu bytes is not one msgpack value", len);
    }
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 1) {
        return mpb__set_error(err, err_len, MPB_EPROTO, "frame is not a msgpack array [type, ...]");
    }
    if (mpb__wire_as_uint(&root->via.array.ptr[0], type) != 0) {
        return mpb__set_error(err, err_len, MPB_EPROTO, "frame type is not an unsigned integer");
    }
    return 0;
}

int
mpb__wire_decode(msgpack_zone *zone, const void *data, size_t len, mpb__frame *out, char *err,
                 size_t err_len)
{
    msgpack_object root;
    uint64_t type;
    memset(out, 0, sizeof *out);
    int status = mpb__wire_unpack(zone, data, len, &root, &type, err, err_len);
    if (status != 0) {
        return status;
    }
    out->type = (mpb__frame_type)type;
    if (decode_body(&root.via.array, type, out) != 0) {
        return mpb__set_error(err, err_len, MPB_EPROTO, "malformed %s frame (type %llu)",
                              mpb__frame_type_name((int)type), (unsigned long long)type);
    }
    return 0;
}

/* A span of a shared-memory ring, [offset, len], as ITEMS and RESULTS
 * entries carry it in place of bytes. */
static int
shm_span(const msgpack_object *o, uint64_t *offset, size_t *len)
{
    uint64_t n;
    if (o->via.array.size < 2 || mpb__wire_as_uint(&o->via.array.ptr[0], offset) ||
        mpb__wire_as_uint(&o->via.array.ptr[1], &n) || n > SIZE_MAX) {
        return MPB_EPROTO;
    }
    *len = (size_t)n;
    return 0;
}

int
mpb__wire_item_at(const mpb__frame *frame, uint32_t index, mpb__wire_item *out, int *id_known)
{
    MPB_ASSERT(frame->type == MPB_FRAME_ITEMS && index < frame->u.list.count);
    const msgpack_object *entry = &frame->u.list.entries[index];
    *id_known = 0;
    memset(out, 0, sizeof *out);
    if (entry->type != MSGPACK_OBJECT_ARRAY || entry->via.array.size < 1) {
        return MPB_EPROTO;
    }
    const msgpack_object *f = entry->via.array.ptr;
    if (mpb__wire_as_uint(&f[0], &out->id) != 0) {
        return MPB_EPROTO;
    }
    *id_known = 1;
    if (entry->via.array.size < 3 || mpb__wire_as_uint(&f[1], &out->budget_us)) {
        return MPB_EPROTO;
    }
    if (f[2].type == MSGPACK_OBJECT_ARRAY) { /* [offset, len] in shared memory */
        out->in_shm = 1;
        return shm_span(&f[2], &out->shm_offset, &out->len);
    }
    return mpb__wire_as_bytes(&f[2], &out->data, &out->len);
}

int
mpb__wire_result_at(const mpb__frame *frame, uint32_t index, mpb__wire_result *out)
{
    MPB_ASSERT(frame->type == MPB_FRAME_RESULTS && index < frame->u.list.count);
    const msgpack_object *entry = &frame->u.list.entries[index];
    memset(out, 0, sizeof *out);
    if (entry->type != MSGPACK_OBJECT_ARRAY || entry->via.array.size < 3) {
        return MPB_EPROTO;
    }
    const msgpack_object *f = entry->via.array.ptr;
    uint64_t status;
    if (mpb__wire_as_uint(&f[0], &out->id) || mpb__wire_as_uint(&f[1], &status) || status > 1) {
        return MPB_EPROTO;
    }
    out->is_error = (int)status;
    if (!out->is_error && f[2].type == MSGPACK_OBJECT_ARRAY) { /* [offset, len] */
        out->in_shm = 1;
        return shm_span(&f[2], &out->shm_offset, &out->len);
    }
    if (!out->is_error) {
        return mpb__wire_as_bytes(&f[2], &out->data, &out->len);
    }
    if (entry->via.array.size < 4 || mpb__wire_as_str(&f[2], &out->type) ||
        mpb__wire_as_str(&f[3], &out->message)) {
        return MPB_EPROTO;
    }
    return 0;
}

const char *
mpb__frame_type_name(int type)
{
    static const char *const names[] = {"?",         "READY",     "ITEMS",    "RESULTS",
                                        "TELEMETRY", "HEARTBEAT", "SHUTDOWN", "BYE",
                                        "ERROR",     "HELLO",     "SETTINGS"};
    if (type < 1 || type >= (int)MPB_ARRAY_LEN(names)) {
        return "unknown";
    }
    return names[type];
}

const char *
mpb_batch_close_name(mpb_batch_close reason)
{
    switch (reason) {
    case MPB_BATCH_CLOSED_FULL:
        return "full";
    case MPB_BATCH_CLOSED_TIMER:
        return "timer";
    case MPB_BATCH_CLOSED_DRAINED:
        return "drained";
    }
    return "unknown";
}
