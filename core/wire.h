/*
 * Wire codec: every frame between coordinator and worker is one msgpack
 * array whose first element is the frame type (docs/protocol.md).
 * core/wire.c decodes, core/wire_pack.c encodes.
 * Threading: a mpb__wire_buf or a decode zone belongs to one thread.
 * Processes: no state. Ownership: decoded frames point into the received
 *   bytes and the zone; they are valid until either is released or reused.
 *
 * Decoding never trusts the peer: a frame that is not what the protocol
 * says is reported as MPB_EPROTO with a reason, never asserted on.
 */
#ifndef MPB_CORE_WIRE_H
#define MPB_CORE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "mpbatch/telemetry.h"

#define MPB_PROTOCOL_VERSION 2 /* 2: TELEMETRY frames before their RESULTS frame */

/* Fields of the fixed-size frames, the type included (docs/protocol.md). */
#define MPB_WIRE_READY_FIELDS 10
#define MPB_WIRE_TELEMETRY_FIELDS 7
#define MPB_WIRE_HELLO_FIELDS 5
#define MPB_WIRE_SETTINGS_FIELDS 8

typedef enum mpb__frame_type {
    MPB_FRAME_READY = 1,     /* worker -> coordinator: hello, who and where I am */
    MPB_FRAME_ITEMS = 2,     /* coordinator -> worker: items to compute */
    MPB_FRAME_RESULTS = 3,   /* worker -> coordinator: one result per item */
    MPB_FRAME_TELEMETRY = 4, /* worker -> coordinator: one per batch */
    MPB_FRAME_HEARTBEAT = 5, /* both ways, when nothing else was sent for a while */
    MPB_FRAME_SHUTDOWN = 6,  /* coordinator -> worker: finish and leave */
    MPB_FRAME_BYE = 7,       /* worker -> coordinator: everything sent, leaving */
    MPB_FRAME_ERROR = 8,     /* both ways: the receiver could not use a frame, or init failed */
    MPB_FRAME_HELLO = 9,     /* joining worker -> coordinator: which settings do I take? */
    MPB_FRAME_SETTINGS = 10, /* coordinator -> joining worker: the servlet's settings */
} mpb__frame_type;

typedef struct mpb__wire_str {
    const char *ptr;
    size_t len;
} mpb__wire_str;

typedef struct mpb__ready {
    uint32_t version;
    mpb__wire_str name;
    int64_t pid;
    mpb__wire_str cpus; /* hwloc list syntax, "0-1,4"; "" when unpinned */
    uint32_t capacity;  /* items the worker accepts in flight (its credit) */
    mpb__wire_str plugin;
    uint32_t batch_size;
    int64_t batch_wait_us;
    mpb__wire_str host;
} mpb__ready;

/* A worker started by hand asks for its servlet's settings before it
 * loads its plugin (core/join.c). plugin: what the worker was told to
 * run, "" when it takes the servlet's. */
typedef struct mpb__hello {
    uint32_t version;
    mpb__wire_str name;
    mpb__wire_str plugin;
    mpb__wire_str host;
} mpb__hello;

/* The answer: a servlet's settings (-1: the servlet leaves it to the
 * worker; batch_wait_us may also be MPB_BATCH_WAIT_AUTO). */
typedef struct mpb__settings {
    mpb__wire_str plugin;
    int64_t batch_size;
    int64_t batch_wait_us;
    int64_t capacity;
    int64_t max_item_bytes;
    uint32_t isolate_bisect;
    const msgpack_object *options; /* "KEY=VALUE" strings */
    uint32_t n_options;
} mpb__settings;

typedef struct mpb__wire_item {
    uint64_t id;
    uint64_t budget_us; /* time left when sent; 0 = no deadline */
    const void *data;   /* inline payload (NULL for a shared-memory item) */
    size_t len;
    int in_shm; /* the payload is len bytes at shm_offset of the worker's ring */
    uint64_t shm_offset;
} mpb__wire_item;

typedef struct mpb__wire_result {
    uint64_t id;
    int is_error;
    const void *data; /* value bytes when !is_error (NULL for a shared-memory value) */
    size_t len;
    int in_shm; /* the value is len bytes at shm_offset of the worker's value ring */
    uint64_t shm_offset;
    mpb__wire_str type; /* when is_error */
    mpb__wire_str message;
} mpb__wire_result;

typedef struct mpb__frame {
    mpb__frame_type type;
    union {
        mpb__ready ready;
        struct {
            const msgpack_object *entries; /* ITEMS / RESULTS entries, decoded lazily */
            uint32_t count;
            uint64_t backlog;     /* ITEMS: items waiting in the coordinator (0 if unsaid) */
            uint64_t values_read; /* ITEMS: shared-memory values read so far (0 if unsaid) */
        } list;
        mpb_batch_telemetry telemetry;
        mpb__hello hello;
        mpb__settings settings;
        struct {
            int64_t code;
            mpb__wire_str message;
        } error;
    } u;
} mpb__frame;

/* Unpacks data, exactly one msgpack value of at most 2^20 values, into
 * zone, after checking every declared length and count against the bytes
 * there (msgpack_unpack would size allocations from a 5-byte header
 * claiming 2^32 elements). 0, or MPB_EPROTO. For values from outside,
 * such as items a switch routes on. */
int mpb__msgpack_unpack_bounded(msgpack_zone *zone, const void *data, size_t len,
                                msgpack_object *root);

/* Checks and unpacks one frame holding a msgpack array whose first element
 * is an unsigned type. The zone is cleared first and holds the tree. For
 * protocols other than the worker's (the client protocol). */
int mpb__wire_unpack(msgpack_zone *zone, const void *data, size_t len, msgpack_object *root,
                     uint64_t *type, char *err, size_t err_len);

/* Typed reads of decoded values: 0, or MPB_EPROTO for another type.
 * as_bytes takes bin or str. */
int mpb__wire_as_uint(const msgpack_object *obj, uint64_t *out);
int mpb__wire_as_int(const msgpack_object *obj, int64_t *out);
int mpb__wire_as_str(const msgpack_object *obj, mpb__wire_str *out);
int mpb__wire_as_bytes(const msgpack_object *obj, const void **data, size_t *len);

/* Decodes one frame. The zone is cleared first and holds the decoded tree. */
int mpb__wire_decode(msgpack_zone *zone, const void *data, size_t len, mpb__frame *out, char *err,
                     size_t err_len);

/* Reads entry i of an ITEMS frame. On MPB_EPROTO, *id_known tells whether
 * out->id could still be read (so the item can be answered with an error). */
int mpb__wire_item_at(const mpb__frame *frame, uint32_t index, mpb__wire_item *out, int *id_known);

/* Reads entry i of a RESULTS frame. */
int mpb__wire_result_at(const mpb__frame *frame, uint32_t index, mpb__wire_result *out);

/* Growable encode buffer; reused across frames to avoid allocation. */
typedef struct mpb__wire_buf {
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
} mpb__wire_buf;

void mpb__wire_buf_init(mpb__wire_buf *buf);
void mpb__wire_buf_reset(mpb__wire_buf *buf);
void mpb__wire_buf_free(mpb__wire_buf *buf);

void mpb__wire_pack_ready(mpb__wire_buf *buf, const mpb__ready *ready);
/* HELLO and SETTINGS (core/join.h). options: n "KEY=VALUE" strings. */
void mpb__wire_pack_hello(mpb__wire_buf *buf, const char *name, const char *plugin,
                          const char *host);
void mpb__wire_pack_settings(mpb__wire_buf *buf, const char *plugin, int64_t batch_size,
                             int64_t batch_wait_us, int64_t capacity, int64_t max_item_bytes,
                             int isolate_bisect, const char *const *options, size_t n_options);
int mpb__wire_decode_hello(const msgpack_object_array *frame, mpb__hello *out);
int mpb__wire_decode_settings(const msgpack_object_array *frame, mpb__settings *out);
void mpb__wire_pack_items_begin(mpb__wire_buf *buf, uint32_t count);
/* An ITEMS frame that ends with the coordinator's backlog and how many of
 * this worker's shared-memory values it has read: begin with
 * _begin_backlog, pack count items, end with _end_backlog. */
void mpb__wire_pack_items_begin_backlog(mpb__wire_buf *buf, uint32_t count);
void mpb__wire_pack_items_end_backlog(mpb__wire_buf *buf, uint64_t backlog, uint64_t values_read);
void mpb__wire_pack_item(mpb__wire_buf *buf, uint64_t id, uint64_t budget_us, const void *data,
                         size_t len);
/* An item whose payload the coordinator wrote into the worker's shared
 * ring: [id, budget_us, [offset, len]]. */
void mpb__wire_pack_item_shm(mpb__wire_buf *buf, uint64_t id, uint64_t budget_us, uint64_t offset,
                             uint64_t len);
void mpb__wire_pack_results_begin(mpb__wire_buf *buf, uint32_t count);
void mpb__wire_pack_result_value(mpb__wire_buf *buf, uint64_t id, const void *data, size_t len);
/* A value the worker wrote into its value ring: [id, 0, [offset, len]]. */
void mpb__wire_pack_result_value_shm(mpb__wire_buf *buf, uint64_t id, uint64_t offset,
                                     uint64_t len);
void mpb__wire_pack_result_error(mpb__wire_buf *buf, uint64_t id, const char *type,
                                 const char *message);
void mpb__wire_pack_telemetry(mpb__wire_buf *buf, const mpb_batch_telemetry *telemetry);
/* HEARTBEAT, SHUTDOWN, BYE: frames with no fields. */
void mpb__wire_pack_signal(mpb__wire_buf *buf, mpb__frame_type type);
void mpb__wire_pack_error(mpb__wire_buf *buf, int64_t code, const char *message);

const char *mpb__frame_type_name(int type);

#endif
