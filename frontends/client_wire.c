/*
 * Encoding and decoding of the client protocol's frames. The shapes are
 * those of the worker protocol (core/wire.c): one msgpack array per frame,
 * type first, fields by position, extra trailing fields ignored.
 */
#include <stdlib.h>
#include <string.h>

#include "core/result_int.h"
#include "core/util.h"
#include "frontends/client_wire.h"
#include "mpbatch/error.h"

static void
pack_text(msgpack_packer *pk, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, text ? text : "", len);
}

int64_t
mpb__client_call_count(const msgpack_object *root)
{
    if (root->via.array.size < 2 || root->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY) {
        return -1;
    }
    return root->via.array.ptr[1].via.array.size;
}

int
mpb__client_call_at(const msgpack_object *root, uint32_t index, mpb__client_call *out,
                    int *id_known)
{
    const msgpack_object *entry = &root->via.array.ptr[1].via.array.ptr[index];
    memset(out, 0, sizeof *out);
    *id_known = 0;
    if (entry->type != MSGPACK_OBJECT_ARRAY || entry->via.array.size < 1) {
        return MPB_EPROTO;
    }
    const msgpack_object *f = entry->via.array.ptr;
    uint32_t n = entry->via.array.size;
    if (mpb__wire_as_uint(&f[0], &out->id) != 0) {
        return MPB_EPROTO;
    }
    *id_known = 1; /* from here on, the call's own id gets the error */
    if (n < 2) {
        return MPB_EPROTO;
    }
    if (mpb__wire_as_bytes(&f[1], &out->payload, &out->len) != 0) {
        return MPB_EPROTO;
    }
    if (n > 2 && f[2].type != MSGPACK_OBJECT_NIL && mpb__wire_as_uint(&f[2], &out->deadline_ms)) {
        return MPB_EPROTO;
    }
    if (n > 3 && f[3].type != MSGPACK_OBJECT_NIL && mpb__wire_as_str(&f[3], &out->target)) {
        return MPB_EPROTO;
    }
    return 0;
}

void
mpb__client_pack_calls_begin(mpb__wire_buf *buf, uint32_t count)
{
    msgpack_pack_array(&buf->pk, 2);
    msgpack_pack_uint8(&buf->pk, MPB_CLIENT_CALL);
    msgpack_pack_array(&buf->pk, count);
}

void
mpb__client_pack_call(mpb__wire_buf *buf, uint64_t id, const void *payload, size_t len,
                      uint64_t deadline_ms, const char *target)
{
    int fields = target != NULL && *target ? 4 : deadline_ms ? 3 : 2;
    msgpack_pack_array(&buf->pk, (size_t)fields);
    msgpack_pack_uint64(&buf->pk, id);
    msgpack_pack_bin(&buf->pk, len);
    msgpack_pack_bin_body(&buf->pk, payload, len);
    if (fields > 2) {
        msgpack_pack_uint64(&buf->pk, deadline_ms);
    }
    if (fields > 3) {
        pack_text(&buf->pk, target);
    }
}

void
mpb__client_pack_results_begin(mpb__wire_buf *buf, uint32_t count)
{
    msgpack_pack_array(&buf->pk, 2);
    msgpack_pack_uint8(&buf->pk, MPB_CLIENT_RESULTS);
    msgpack_pack_array(&buf->pk, count);
}

void
mpb__client_pack_result_error(mpb__wire_buf *buf, uint64_t id, const char *type,
                              const char *message, const char *servlet)
{
    msgpack_pack_array(&buf->pk, 7);
    msgpack_pack_uint64(&buf->pk, id);
    msgpack_pack_uint8(&buf->pk, 1);
    pack_text(&buf->pk, type);
    pack_text(&buf->pk, message);
    pack_text(&buf->pk, servlet);
    pack_text(&buf->pk, "");
    msgpack_pack_int64(&buf->pk, 0);
}

void
mpb__client_pack_result(mpb__wire_buf *buf, uint64_t id, const mpb_result *result)
{
    const mpb_item_error *e = mpb_result_error(result);
    if (e != NULL) {
        msgpack_pack_array(&buf->pk, 7);
        msgpack_pack_uint64(&buf->pk, id);
        msgpack_pack_uint8(&buf->pk, 1);
        pack_text(&buf->pk, e->type);
        pack_text(&buf->pk, e->message);
        pack_text(&buf->pk, e->servlet);
        pack_text(&buf->pk, e->worker);
        msgpack_pack_int64(&buf->pk, e->pid);
        return;
    }
    size_t len;
    const void *value = mpb_result_value(result, &len);
    msgpack_pack_array(&buf->pk, 3);
    msgpack_pack_uint64(&buf->pk, id);
    msgpack_pack_uint8(&buf->pk, 0);
    if (mpb_result_is_array(result)) {
        msgpack_sbuffer_write(&buf->sbuf, value, len); /* already one msgpack array */
    } else {
        msgpack_pack_bin(&buf->pk, len);
        msgpack_pack_bin_body(&buf->pk, value, len);
    }
}

void
mpb__client_pack_error(mpb__wire_buf *buf, int has_id, uint64_t id, int64_t code,
                       const char *message)
{
    msgpack_pack_array(&buf->pk, 4);
    msgpack_pack_uint8(&buf->pk, MPB_CLIENT_ERROR);
    if (has_id) {
        msgpack_pack_uint64(&buf->pk, id);
    } else {
        msgpack_pack_nil(&buf->pk);
    }
    msgpack_pack_int64(&buf->pk, code);
    pack_text(&buf->pk, message);
}

static char *
text_of(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        return mpb_strdup("");
    }
    return mpb_strndup(o->via.str.ptr, o->via.str.size);
}

int
mpb__client_result_at(const msgpack_object *root, uint32_t index, uint64_t *id, mpb_result **out)
{
    *out = NULL;
    const msgpack_object *entry = &root->via.array.ptr[1].via.array.ptr[index];
    uint64_t status;
    if (entry->type != MSGPACK_OBJECT_ARRAY || entry->via.array.size < 3 ||
        mpb__wire_as_uint(&entry->via.array.ptr[0], id) != 0 ||
        mpb__wire_as_uint(&entry->via.array.ptr[1], &status) != 0) {
        return MPB_EPROTO;
    }
    const msgpack_object *f = entry->via.array.ptr;
    if (status == 0) {
        *out = mpb__result_from_msgpack(&f[2], 0);
        return *out ? 0 : MPB_EPROTO;
    }
    if (entry->via.array.size < 7) {
        return MPB_EPROTO;
    }
    char *texts[4] = {text_of(&f[2]), text_of(&f[3]), text_of(&f[4]), text_of(&f[5])};
    int64_t pid = 0;
    mpb__wire_as_int(&f[6], &pid);
    *out = mpb_result_new_error(texts[0], texts[1], texts[2], texts[3], pid);
    for (int i = 0; i < 4; i++) {
        free(texts[i]);
    }
    return 0;
}
