/*
 * A result is one allocation: the header, then the value bytes or the error
 * strings, so making, copying and freeing one costs one malloc and one free.
 * An array result (an ensemble's) also owns its members; its bytes are the
 * members encoded as one msgpack array, so the next stage of a pipeline
 * takes it as an ordinary input (docs/protocol.md, "ensemble values").
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "core/util.h"
#include "core/result_int.h"
#include "mpbatch/result.h"

enum result_kind { KIND_VALUE, KIND_ERROR, KIND_ARRAY };

struct mpb_result {
    enum result_kind kind;
    uint32_t batch;   /* the batch it was computed in, numbered in its pool; 0: none */
    size_t len;       /* bytes after the header */
    size_t value_len; /* value and array results */
    union {
        mpb_item_error error; /* error results; strings point after the header */
        const char *origin;   /* value results: the path of the pool that computed it */
    };
    mpb_result **members; /* array results */
    size_t n_members;
    _Alignas(16) unsigned char bytes[];
};

static mpb_result *
result_alloc(enum result_kind kind, size_t len)
{
    mpb_result *r = mpb_malloc(sizeof *r + len);
    r->kind = kind;
    r->batch = 0;
    r->len = len;
    r->value_len = 0;
    memset(&r->error, 0, sizeof r->error);
    r->members = NULL;
    r->n_members = 0;
    return r;
}

mpb_result *
mpb_result_new_value(const void *data, size_t len)
{
    mpb_result *r = result_alloc(KIND_VALUE, len);
    r->value_len = len;
    if (len > 0) {
        memcpy(r->bytes, data, len);
    }
    return r;
}

static const char *
place(unsigned char **cursor, const char *text, size_t len)
{
    char *at = (char *)*cursor;
    memcpy(at, text, len);
    at[len] = '\0';
    *cursor += len + 1;
    return at;
}

mpb_result *
mpb_result_new_error(const char *type, const char *message, const char *servlet, const char *worker,
                     int64_t pid)
{
    const char *texts[4] = {type ? type : "", message ? message : "", servlet ? servlet : "",
                            worker ? worker : ""};
    size_t lens[4];
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        lens[i] = strlen(texts[i]);
        total += lens[i] + 1;
    }
    mpb_result *r = result_alloc(KIND_ERROR, total);
    unsigned char *cursor = r->bytes;
    r->error.type = place(&cursor, texts[0], lens[0]);
    r->error.message = place(&cursor, texts[1], lens[1]);
    r->error.servlet = place(&cursor, texts[2], lens[2]);
    r->error.worker = place(&cursor, texts[3], lens[3]);
    r->error.pid = pid;
    return r;
}

static void
pack_text(msgpack_packer *pk, const char *text)
{
    size_t len = strlen(text);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, text, len);
}

static void
pack_member(msgpack_packer *pk, const mpb_result *member)
{
    if (member->kind == KIND_VALUE) {
        msgpack_pack_bin(pk, member->value_len);
        msgpack_pack_bin_body(pk, member->bytes, member->value_len);
        return;
    }
    if (member->kind == KIND_ARRAY) {
        /* the nested array's encoding, inlined rather than wrapped in bin */
        msgpack_pack_array(pk, member->n_members);
        for (size_t i = 0; i < member->n_members; i++) {
            pack_member(pk, member->members[i]);
        }
        return;
    }
    const mpb_item_error *e = &member->error;
    msgpack_pack_map(pk, 1);
    pack_text(pk, "error");
    msgpack_pack_map(pk, 5);
    const char *keys[4] = {"type", "message", "servlet", "worker"};
    const char *values[4] = {e->type, e->message, e->servlet, e->worker};
    for (int i = 0; i < 4; i++) {
        pack_text(pk, keys[i]);
        pack_text(pk, values[i]);
    }
    pack_text(pk, "pid");
    msgpack_pack_int64(pk, e->pid);
}

mpb_result *
mpb_result_new_array(mpb_result **members, size_t n)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        MPB_ASSERT(members[i] != NULL);
        pack_member(&pk, members[i]);
    }
    mpb_result *r = result_alloc(KIND_ARRAY, sbuf.size);
    r->value_len = sbuf.size;
    memcpy(r->bytes, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy(&sbuf);
    r->members = mpb_calloc(n ? n : 1, sizeof *r->members);
    r->n_members = n;
    for (size_t i = 0; i < n; i++) {
        r->members[i] = members[i];
        members[i] = NULL;
    }
    return r;
}

mpb_result *
mpb_result_copy(const mpb_result *result)
{
    if (result->kind == KIND_ERROR) {
        const mpb_item_error *e = &result->error;
        return mpb_result_new_error(e->type, e->message, e->servlet, e->worker, e->pid);
    }
    mpb_result *r = mpb_result_new_value(result->bytes, result->value_len);
    if (result->kind == KIND_ARRAY) {
        r->kind = KIND_ARRAY;
        r->members = mpb_calloc(result->n_members ? result->n_members : 1, sizeof *r->members);
        r->n_members = result->n_members;
        for (size_t i = 0; i < result->n_members; i++) {
            r->members[i] = mpb_result_copy(result->members[i]);
        }
    }
    return r;
}

void
mpb_result_destroy(mpb_result **result_p)
{
    if (result_p == NULL || *result_p == NULL) {
        return;
    }
    mpb_result *r = *result_p;
    for (size_t i = 0; i < r->n_members; i++) {
        mpb_result_destroy(&r->members[i]);
    }
    free(r->members);
    free(r);
    *result_p = NULL;
}

int
mpb_result_is_error(const mpb_result *result)
{
    return result->kind == KIND_ERROR;
}

int
mpb_result_is_array(const mpb_result *result)
{
    return result->kind == KIND_ARRAY;
}

const void *
mpb_result_value(const mpb_result *result, size_t *len)
{
    if (result->kind == KIND_ERROR) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = result->value_len;
    }
    return result->bytes;
}

const mpb_item_error *
mpb_result_error(const mpb_result *result)
{
    return result->kind == KIND_ERROR ? &result->error : NULL;
}

size_t
mpb_result_member_count(const mpb_result *result)
{
    return result->n_members;
}

const mpb_result *
mpb_result_member(const mpb_result *result, size_t index)
{
    return index < result->n_members ? result->members[index] : NULL;
}

static void
copy_text(const msgpack_object *o, char *buf, size_t size)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        size_t n = o->via.str.size < size - 1 ? o->via.str.size : size - 1;
        memcpy(buf, o->via.str.ptr, n);
        buf[n] = '\0';
    } else {
        buf[0] = '\0';
    }
}

static mpb_result *
error_from_map(const msgpack_object *map)
{
    char texts[4][1024];
    const char *keys[4] = {"type", "message", "servlet", "worker"};
    int64_t pid = 0;
    memset(texts, 0, sizeof texts);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        const msgpack_object *v = &map->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) {
            continue;
        }
        for (int t = 0; t < 4; t++) {
            if (k->via.str.size == strlen(keys[t]) &&
                memcmp(k->via.str.ptr, keys[t], k->via.str.size) == 0) {
                copy_text(v, texts[t], sizeof texts[t]);
            }
        }
        if (k->via.str.size == 3 && memcmp(k->via.str.ptr, "pid", 3) == 0 &&
            (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
             v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
            pid = v->via.i64;
        }
    }
    return mpb_result_new_error(texts[0][0] ? texts[0] : "Error", texts[1], texts[2], texts[3],
                                pid);
}

mpb_result *
mpb__result_from_msgpack(const msgpack_object *o, int depth)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        return mpb_result_new_value(o->via.bin.ptr, o->via.bin.size);
    }
    if (o->type == MSGPACK_OBJECT_STR) {
        return mpb_result_new_value(o->via.str.ptr, o->via.str.size);
    }
    if (o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 1 &&
        o->via.map.ptr[0].key.type == MSGPACK_OBJECT_STR &&
        o->via.map.ptr[0].key.via.str.size == 5 &&
        memcmp(o->via.map.ptr[0].key.via.str.ptr, "error", 5) == 0 &&
        o->via.map.ptr[0].val.type == MSGPACK_OBJECT_MAP) {
        return error_from_map(&o->via.map.ptr[0].val);
    }
    if (o->type != MSGPACK_OBJECT_ARRAY || depth > 32) {
        return NULL;
    }
    size_t n = o->via.array.size;
    mpb_result **members = mpb_calloc(n ? n : 1, sizeof *members);
    for (size_t i = 0; i < n; i++) {
        members[i] = mpb__result_from_msgpack(&o->via.array.ptr[i], depth + 1);
        if (members[i] == NULL) {
            for (size_t j = 0; j < i; j++) {
                mpb_result_destroy(&members[j]);
            }
            free(members);
            return NULL;
        }
    }
    mpb_result *r = mpb_result_new_array(members, n);
    free(members);
    return r;
}

void
mpb__result_set_origin(mpb_result *r, const char *servlet, uint32_t batch)
{
    r->batch = batch;
    if (r->kind == KIND_VALUE) {
        r->origin = servlet;
    }
}

uint32_t
mpb__result_batch(const mpb_result *r)
{
    return r->batch;
}

const char *
mpb__result_servlet(const mpb_result *r)
{
    const char *servlet = r->kind == KIND_ERROR   ? r->error.servlet
                          : r->kind == KIND_VALUE ? r->origin
                                                  : NULL;
    return servlet != NULL ? servlet : "";
}
