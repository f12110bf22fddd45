/*
 * The encoding half of the wire codec (core/wire.h; decoding is
 * core/wire.c): each frame is packed into a reusable sbuffer, one msgpack
 * array per frame, fields in the order docs/protocol.md gives.
 */
#include <string.h>

#include "core/wire.h"

void
mpb__wire_buf_init(mpb__wire_buf *buf)
{
    msgpack_sbuffer_init(&buf->sbuf);
    msgpack_packer_init(&buf->pk, &buf->sbuf, msgpack_sbuffer_write);
}

void
mpb__wire_buf_reset(mpb__wire_buf *buf)
{
    buf->sbuf.size = 0;
}

void
mpb__wire_buf_free(mpb__wire_buf *buf)
{
    msgpack_sbuffer_destroy(&buf->sbuf);
    memset(buf, 0, sizeof *buf);
}

static void
pack_cstr(msgpack_packer *pk, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    msgpack_pack_str_with_body(pk, text ? text : "", len);
}

static void
pack_wstr(msgpack_packer *pk, mpb__wire_str s)
{
    msgpack_pack_str_with_body(pk, s.ptr ? s.ptr : "", s.len);
}

void
mpb__wire_pack_ready(mpb__wire_buf *buf, const mpb__ready *r)
{
    msgpack_packer *pk = &buf->pk;
    msgpack_pack_array(pk, MPB_WIRE_READY_FIELDS);
    msgpack_pack_uint8(pk, MPB_FRAME_READY);
    msgpack_pack_uint32(pk, r->version);
    pack_wstr(pk, r->name);
    msgpack_pack_int64(pk, r->pid);
    pack_wstr(pk, r->cpus);
    msgpack_pack_uint32(pk, r->capacity);
    pack_wstr(pk, r->plugin);
    msgpack_pack_uint32(pk, r->batch_size);
    msgpack_pack_int64(pk, r->batch_wait_us);
    pack_wstr(pk, r->host);
}

/* [type, [entries...]]: the caller packs the count entries. */
static void
pack_list_begin(mpb__wire_buf *buf, mpb__frame_type type, uint32_t count)
{
    msgpack_pack_array(&buf->pk, 2);
    msgpack_pack_uint8(&buf->pk, (uint8_t)type);
    msgpack_pack_array(&buf->pk, count);
}

void
mpb__wire_pack_items_begin_backlog(mpb__wire_buf *buf, uint32_t count)
{
    msgpack_pack_array(&buf->pk, 4);
    msgpack_pack_uint8(&buf->pk, MPB_FRAME_ITEMS);
    msgpack_pack_array(&buf->pk, count);
}

void
mpb__wire_pack_items_end_backlog(mpb__wire_buf *buf, uint64_t backlog, uint64_t values_read)
{
    msgpack_pack_uint64(&buf->pk, backlog);
    msgpack_pack_uint64(&buf->pk, values_read);
}

void
mpb__wire_pack_items_begin(mpb__wire_buf *buf, uint32_t count)
{
    pack_list_begin(buf, MPB_FRAME_ITEMS, count);
}

void
mpb__wire_pack_result_value_shm(mpb__wire_buf *buf, uint64_t id, uint64_t offset, uint64_t len)
{
    msgpack_pack_array(&buf->pk, 3);
    msgpack_pack_uint64(&buf->pk, id);
    msgpack_pack_uint8(&buf->pk, 0);
    msgpack_pack_array(&buf->pk, 2);
    msgpack_pack_uint64(&buf->pk, offset);
    msgpack_pack_uint64(&buf->pk, len);
}

void
mpb__wire_pack_item_shm(mpb__wire_buf *buf, uint64_t id, uint64_t budget_us, uint64_t offset,
                        uint64_t len)
{
    msgpack_pack_array(&buf->pk, 3);
    msgpack_pack_uint64(&buf->pk, id);
    msgpack_pack_uint64(&buf->pk, budget_us);
    msgpack_pack_array(&buf->pk, 2);
    msgpack_pack_uint64(&buf->pk, offset);
    msgpack_pack_uint64(&buf->pk, len);
}

void
mpb__wire_pack_item(mpb__wire_buf *buf, uint64_t id, uint64_t budget_us, const void *data,
                    size_t len)
{
    msgpack_pack_array(&buf->pk, 3);
    msgpack_pack_uint64(&buf->pk, id);
    msgpack_pack_uint64(&buf->pk, budget_us);
    msgpack_pack_bin_with_body(&buf->pk, data, len);
}

void
mpb__wire_pack_results_begin(mpb__wire_buf *buf, uint32_t count)
{
    pack_list_begin(buf, MPB_FRAME_RESULTS, count);
}

void
mpb__wire_pack_result_value(mpb__wire_buf *buf, uint64_t id, const void *data, size_t len)
{
    msgpack_pack_array(&buf->pk, 3);
    msgpack_pack_uint64(&buf->pk, id);
    msgpack_pack_uint8(&buf->pk, 0);
    msgpack_pack_bin_with_body(&buf->pk, data, len);
}

void
mpb__wire_pack_result_error(mpb__wire_buf *buf, uint64_t id, const char *type, const char *message)
{
    msgpack_pack_array(&buf->pk, 4);
    msgpack_pack_uint64(&buf->pk, id);
    msgpack_pack_uint8(&buf->pk, 1);
    pack_cstr(&buf->pk, type);
    pack_cstr(&buf->pk, message);
}

void
mpb__wire_pack_telemetry(mpb__wire_buf *buf, const mpb_batch_telemetry *t)
{
    msgpack_packer *pk = &buf->pk;
    msgpack_pack_array(pk, MPB_WIRE_TELEMETRY_FIELDS);
    msgpack_pack_uint8(pk, MPB_FRAME_TELEMETRY);
    msgpack_pack_uint32(pk, t->size);
    msgpack_pack_uint32(pk, t->errors);
    msgpack_pack_int64(pk, t->first_wait_us);
    msgpack_pack_int64(pk, t->compute_us);
    msgpack_pack_uint32(pk, (uint32_t)t->closed_by);
    msgpack_pack_uint32(pk, t->queued_after);
}

void
mpb__wire_pack_signal(mpb__wire_buf *buf, mpb__frame_type type)
{
    msgpack_pack_array(&buf->pk, 1);
    msgpack_pack_uint8(&buf->pk, (uint8_t)type);
}

void
mpb__wire_pack_error(mpb__wire_buf *buf, int64_t code, const char *message)
{
    msgpack_pack_array(&buf->pk, 3);
    msgpack_pack_uint8(&buf->pk, MPB_FRAME_ERROR);
    msgpack_pack_int64(&buf->pk, code);
    pack_cstr(&buf->pk, message);
}

void
mpb__wire_pack_hello(mpb__wire_buf *buf, const char *name, const char *plugin, const char *host)
{
    msgpack_packer *pk = &buf->pk;
    msgpack_pack_array(pk, MPB_WIRE_HELLO_FIELDS);
    msgpack_pack_uint8(pk, MPB_FRAME_HELLO);
    msgpack_pack_uint32(pk, MPB_PROTOCOL_VERSION);
    pack_cstr(pk, name);
    pack_cstr(pk, plugin);
    pack_cstr(pk, host);
}

void
mpb__wire_pack_settings(mpb__wire_buf *buf, const char *plugin, int64_t batch_size,
                        int64_t batch_wait_us, int64_t capacity, int64_t max_item_bytes,
                        int isolate_bisect, const char *const *options, size_t n_options)
{
    msgpack_packer *pk = &buf->pk;
    msgpack_pack_array(pk, MPB_WIRE_SETTINGS_FIELDS);
    msgpack_pack_uint8(pk, MPB_FRAME_SETTINGS);
    pack_cstr(pk, plugin);
    msgpack_pack_int64(pk, batch_size);
    msgpack_pack_int64(pk, batch_wait_us);
    msgpack_pack_int64(pk, capacity);
    msgpack_pack_int64(pk, max_item_bytes);
    msgpack_pack_uint32(pk, isolate_bisect ? 1 : 0);
    msgpack_pack_array(pk, (uint32_t)n_options);
    for (size_t i = 0; i < n_options; i++) {
        pack_cstr(pk, options[i]);
    }
}
