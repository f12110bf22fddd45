/*
 * DESIGN
 * HELLO / SETTINGS (core/join.h, docs/protocol.md): the worker's side of
 * the exchange (the frames' codec is core/wire.c and core/wire_pack.c).
 * The coordinator's side is
 * servlets/pool_peers.c: it answers a HELLO from any peer with SETTINGS
 * (or ERROR) and keeps no state for it, so the exchange cannot hold a
 * place among the pool's workers. The worker asks on a socket of its own
 * and closes it before it connects for real.
 */
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "core/curve.h"
#include "core/join.h"
#include "core/util.h"
#include "core/wire.h"
#include "core/zmq_util.h"
#include "mpbatch/error.h"

/* Limits a coordinator's settings to what a worker accepts. */
static int
check_settings(const mpb__settings *s)
{
    return s->plugin.len > 0 && s->batch_size >= -1 && s->batch_size <= (1 << 20) &&
           s->batch_wait_us >= MPB_BATCH_WAIT_AUTO && s->batch_wait_us <= 3600LL * 1000000 &&
           s->capacity >= -1 && s->capacity <= (1 << 20) && s->max_item_bytes >= -1 &&
           s->max_item_bytes <= (1LL << 30);
}

static void
take_settings(const mpb__settings *s, mpb__joined *out)
{
    memset(out, 0, sizeof *out);
    out->plugin = mpb_strndup(s->plugin.ptr, s->plugin.len);
    out->batch_size = s->batch_size;
    out->batch_wait_us = s->batch_wait_us;
    out->capacity = s->capacity;
    out->max_item_bytes = s->max_item_bytes;
    out->isolate_bisect = (int)s->isolate_bisect;
    out->n_options = s->n_options;
    out->options = mpb_calloc(s->n_options + 1, sizeof *out->options);
    for (uint32_t i = 0; i < s->n_options; i++) {
        const msgpack_object_str *o = &s->options[i].via.str;
        out->options[i] = mpb_strndup(o->ptr, o->size);
    }
}

/* Waits for one answer to HELLO on socket and decodes it into out. */
static int
await_settings(void *socket, const mpb__worker_config *cfg, mpb__joined *out, char *err,
               size_t err_len)
{
    int64_t timeout_ms = cfg->coordinator_timeout_ms ? cfg->coordinator_timeout_ms
                                                     : MPB_DEFAULT_COORDINATOR_TIMEOUT_MS;
    zmq_pollitem_t item = {.socket = socket, .events = ZMQ_POLLIN};
    int ready = zmq_poll(&item, 1, timeout_ms < 0 ? -1 : (long)timeout_ms);
    if (ready <= 0) {
        return mpb__set_error(err, err_len, MPB_ETIMEDOUT,
                              "no coordinator answered at %s within %lld ms (is it running, and "
                              "is this its pool's bind endpoint?)",
                              cfg->endpoint, (long long)timeout_ms);
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    int rc = zmq_msg_recv(&msg, socket, 0) < 0 ? mpb__zmq_status() : 0;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    mpb__frame frame;
    char reason[200];
    if (rc == 0 && mpb__wire_decode(&zone, zmq_msg_data(&msg), zmq_msg_size(&msg), &frame, reason,
                                    sizeof reason) != 0) {
        rc = mpb__set_error(err, err_len, MPB_EPROTO, "the coordinator's answer: %s", reason);
    } else if (rc == 0 && frame.type == MPB_FRAME_ERROR) {
        rc = mpb__set_error(err, err_len, MPB_EPLUGIN, "the coordinator refused this worker: %.*s",
                            (int)frame.u.error.message.len, frame.u.error.message.ptr);
    } else if (rc == 0 &&
               (frame.type != MPB_FRAME_SETTINGS || !check_settings(&frame.u.settings))) {
        rc = mpb__set_error(err, err_len, MPB_EPROTO,
                            "the coordinator answered HELLO with an unusable %s frame",
                            mpb__frame_type_name(frame.type));
    } else if (rc == 0) {
        take_settings(&frame.u.settings, out);
    }
    msgpack_zone_destroy(&zone);
    zmq_msg_close(&msg);
    return rc;
}

int
mpb__worker_join(const mpb__worker_config *cfg, const char *plugin, mpb__joined *out, char *err,
                 size_t err_len)
{
    memset(out, 0, sizeof *out);
    void *ctx = zmq_ctx_new();
    void *socket = ctx != NULL ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    int rc = 0;
    if (socket == NULL) {
        rc = mpb__set_error(err, err_len, MPB_EMFILE, "cannot create a ZeroMQ socket");
        goto out_term;
    }
    mpb__zmq_set_int(socket, ZMQ_LINGER, 0);
    int64_t max_message = 1 << 20; /* SETTINGS is small: nothing larger is read */
    zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &max_message, sizeof max_message);
    int64_t timeout_ms = cfg->coordinator_timeout_ms ? cfg->coordinator_timeout_ms
                                                     : MPB_DEFAULT_COORDINATOR_TIMEOUT_MS;
    rc = mpb__curve_connect(ctx, socket, cfg->endpoint, cfg->curve_server_key_file,
                            cfg->curve_key_file, timeout_ms, cfg->cancel, err, err_len);
    if (rc == 0) {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        mpb__wire_buf buf;
        mpb__wire_buf_init(&buf);
        mpb__wire_pack_hello(&buf, cfg->name, plugin, host);
        rc = mpb__zmq_send(socket, buf.sbuf.data, buf.sbuf.size, 0);
        mpb__wire_buf_free(&buf);
        rc = rc != 0 ? mpb__set_error(err, err_len, rc, "send HELLO: %s", mpb_strerror(rc))
                     : await_settings(socket, cfg, out, err, err_len);
    }
    zmq_close(socket);
out_term:
    if (ctx != NULL) {
        zmq_ctx_term(ctx);
    }
    return rc;
}

void
mpb__joined_free(mpb__joined *joined)
{
    for (size_t i = 0; i < joined->n_options; i++) {
        free(joined->options[i]);
    }
    free(joined->options);
    free(joined->plugin);
    memset(joined, 0, sizeof *joined);
}
