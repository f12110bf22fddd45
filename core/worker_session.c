/*
 * DESIGN
 * A worker's session around its serve loop (core/worker_loop.c): connect a
 * DEALER (or attach to the coordinator's shared-memory link), pin to the configured CPUs and read
 * the binding back, run the plugin's init, say READY with the effective batching settings, serve,
 * then clean up. Options are checked against the plugin's declarations
 * before init. A worker that cannot start (an option refused, init failed)
 * says why in an ERROR frame, so the coordinator's start fails with the
 * real reason.
 */
#include <poll.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "core/batch.h"
#include "core/curve.h"
#include "core/item_queue.h"
#include "core/plugin.h"
#include "core/util.h"
#include "core/wire.h"
#include "core/worker_int.h"
#include "core/worker_loop.h"
#include "core/zmq_util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "mpbatch/result.h"

void
mpb__worker_batching(const mpb_worker_def *def, long long batch_size, long long batch_wait_us,
                     unsigned *size_out, int64_t *wait_out, int *auto_out)
{
    unsigned size = batch_size >= 0 ? (unsigned)batch_size : def->batch_size;
    int64_t wait;
    *auto_out = batch_wait_us == MPB_BATCH_WAIT_AUTO ||
                (batch_wait_us < 0 && def->batch_wait_us == MPB_BATCH_WAIT_AUTO);
    if (*auto_out) {
        wait = size > 1 ? MPB_BATCH_WAIT_DEFAULT_US : 0; /* the bound of an auto wait */
    } else if (batch_wait_us >= 0) {
        wait = batch_wait_us;
    } else if (def->batch_wait_us == MPB_BATCH_WAIT_NONE) {
        wait = 0;
    } else if (def->batch_wait_us > 0) {
        wait = def->batch_wait_us;
    } else {
        wait = size > 1 ? MPB_BATCH_WAIT_DEFAULT_US : 0;
    }
    *size_out = size;
    *wait_out = wait;
}

/* Connects the socket; with CURVE, waits for the handshake's outcome
 * before the plugin starts: a refused key is an error that says so. */
static int
connect_socket(worker *w, char *err, size_t err_len)
{
    const mpb__worker_config *cfg = w->cfg;
    int64_t timeout_ms = cfg->coordinator_timeout_ms ? cfg->coordinator_timeout_ms
                                                     : MPB_DEFAULT_COORDINATOR_TIMEOUT_MS;
    return mpb__curve_connect(w->ctx, w->socket, cfg->endpoint, cfg->curve_server_key_file,
                              cfg->curve_key_file, timeout_ms, cfg->cancel, err, err_len);
}

static int
open_channel(worker *w, char *err, size_t err_len)
{
    const mpb__worker_config *cfg = w->cfg;
    if (cfg->has_link) {
        /* no socket, no context, no I/O thread: frames go through memory */
        return mpb__link_attach(&w->link, cfg->link_fds, err, err_len);
    }
    w->ctx = cfg->zmq_context;
    if (w->ctx == NULL) {
        w->ctx = zmq_ctx_new();
        w->own_ctx = 1;
        if (w->ctx == NULL) {
            return mpb__set_error(err, err_len, mpb__zmq_status(), "zmq_ctx_new failed");
        }
    }
    w->socket = zmq_socket(w->ctx, ZMQ_DEALER);
    if (w->socket == NULL) {
        return mpb__set_error(err, err_len, mpb__zmq_status(), "zmq_socket(DEALER): %s",
                              zmq_strerror(zmq_errno()));
    }
    mpb__zmq_set_int(w->socket, ZMQ_LINGER, 2000);
    mpb__zmq_set_int(w->socket, ZMQ_SNDHWM, 0);
    mpb__zmq_set_int(w->socket, ZMQ_RCVHWM, 0);
    mpb__zmq_set_int(w->socket, ZMQ_HEARTBEAT_IVL, MPB_DEFAULT_HEARTBEAT_MS);
    mpb__zmq_set_int(w->socket, ZMQ_HEARTBEAT_TIMEOUT, MPB_DEFAULT_COORDINATOR_TIMEOUT_MS);
    int rc = connect_socket(w, err, err_len);
    if (rc != 0) {
        return rc;
    }
    size_t size = sizeof w->socket_fd;
    if (zmq_getsockopt(w->socket, ZMQ_FD, &w->socket_fd, &size) != 0) {
        return mpb__set_error(err, err_len, mpb__zmq_status(), "ZMQ_FD: %s",
                              zmq_strerror(zmq_errno()));
    }
    return 0;
}

/* Options against the plugin's declarations; a plugin that declares none
 * (ABI 1, or no .options) gets them as they are, with one warning from
 * the servlet's first worker. */
static int
check_options(const mpb__worker_config *cfg, char *err, size_t err_len)
{
    size_t count = mpb_options_count(cfg->options);
    if (cfg->def->options != NULL) {
        return mpb__plugin_check_options(cfg->def, cfg->options, err, err_len);
    }
    if (count > 0 && cfg->index == 0) {
        mpb_log_warn("worker",
                     "plugin %s declares no options, so its %zu option(s) are passed unchecked "
                     "(declare .options in its mpb_worker_def to have them checked)",
                     cfg->def->name, count);
    }
    return 0;
}

static int
pin_and_init(worker *w, char *err, size_t err_len)
{
    const mpb__worker_config *cfg = w->cfg;
    int rc;
    if (cfg->cpus != NULL && *cfg->cpus != '\0') {
        rc = mpb__affinity_bind(cfg->cpus, cfg->bind_scope, &w->cpus, err, err_len);
    } else {
        rc = mpb__affinity_current(cfg->bind_scope, &w->cpus);
        if (rc != 0) {
            rc = 0;
            w->cpus = mpb_strdup("");
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (cfg->def->init == NULL) {
        return 0;
    }
    mpb_worker_info info = {
        .name = cfg->name,
        .index = cfg->index,
        .batch_size = w->batch_size,
        .batch_wait_us = w->auto_wait ? MPB_BATCH_WAIT_AUTO : w->wait_ns / 1000,
        .cpus = w->cpus,
    };
    char reason[512] = "";
    rc = cfg->def->init(&info, cfg->options, &w->state, reason, sizeof reason);
    if (rc != 0) {
        return mpb__set_error(err, err_len, MPB_EPLUGIN, "plugin %s init failed: %s",
                              cfg->def->name, reason[0] ? reason : "no reason given");
    }
    return 0;
}

static void
send_ready(worker *w)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const mpb__worker_config *cfg = w->cfg;
    const char *plugin = cfg->plugin_name ? cfg->plugin_name : cfg->def->name;
    mpb__ready ready = {
        .version = MPB_PROTOCOL_VERSION,
        .name = {cfg->name, strlen(cfg->name)},
        .pid = (int64_t)getpid(),
        .cpus = {w->cpus, strlen(w->cpus)},
        .capacity = w->capacity,
        .plugin = {plugin, strlen(plugin)},
        .batch_size = w->batch_size,
        .batch_wait_us = w->auto_wait ? MPB_BATCH_WAIT_AUTO : w->wait_ns / 1000,
        .host = {host, strlen(host)},
    };
    mpb__wire_buf_reset(&w->telemetry);
    mpb__wire_pack_ready(&w->telemetry, &ready);
    mpb__worker_send_frame(w, &w->telemetry, 0);
}

static void
worker_init(worker *w, const mpb__worker_config *cfg)
{
    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    int64_t wait_us;
    mpb__worker_batching(cfg->def, cfg->batch_size, cfg->batch_wait_us, &w->batch_size, &wait_us,
                         &w->auto_wait);
    w->wait_ns = wait_us * 1000;
    w->capacity = cfg->capacity;
    if (w->capacity == 0) {
        w->capacity = w->batch_size * 6 > 64 ? w->batch_size * 6 : 64;
    }
    w->max_item_bytes = cfg->max_item_bytes ? cfg->max_item_bytes : MPB_DEFAULT_MAX_ITEM_BYTES;
    msgpack_zone_init(&w->zone, 4096);
    mpb__wire_buf_init(&w->results);
    mpb__wire_buf_init(&w->pending);
    mpb__wire_buf_init(&w->telemetry);
    mpb__item_queue_init(&w->queue);
    mpb__batch_init(&w->batch, w->max_item_bytes);
    mpb__batch_init(&w->prep, w->max_item_bytes);
    w->last_recv_ns = mpb_now_ns();
    if (cfg->shm_bytes > 0) {
        void *map = mmap(NULL, cfg->shm_bytes, PROT_READ, MAP_SHARED, cfg->shm_fd, 0);
        if (map != MAP_FAILED) {
            w->shm = map;
            w->shm_bytes = cfg->shm_bytes;
        } else {
            /* items in it would fail one by one: say why once */
            mpb_log_err("worker", "cannot map the shared item ring: %s", strerror(errno));
        }
    }
    if (cfg->values_shm_bytes > 0) {
        char err[128];
        if (mpb__shm_ring_attach(&w->values, cfg->values_shm_fd, cfg->values_shm_bytes, err,
                                 sizeof err) == 0) {
            w->has_values_ring = 1;
        } else {
            mpb_log_err("worker", "cannot map the shared value ring: %s", err);
        }
    }
}

static void
worker_free(worker *w)
{
    for (size_t i = 0; i < w->n_errors; i++) {
        free(w->errors[i].type);
        free(w->errors[i].message);
    }
    free(w->errors);
    free(w->ids);
    free(w->call_ids);
    free(w->call_items);
    free(w->cpus);
    mpb__batch_free(&w->batch);
    mpb__batch_free(&w->prep);
    mpb__item_queue_free(&w->queue);
    mpb__wire_buf_free(&w->results);
    mpb__wire_buf_free(&w->pending);
    free(w->pending_tel);
    mpb__wire_buf_free(&w->telemetry);
    msgpack_zone_destroy(&w->zone);
    if (w->shm != NULL) {
        munmap((void *)w->shm, w->shm_bytes);
    }
    if (w->has_values_ring) {
        mpb__shm_ring_close(&w->values);
    }
    free(w->value_spans);
    if (w->link != NULL) {
        /* what the ring had no room for yet (a BYE, last results) */
        mpb__link_drain(w->link, 2000);
        mpb__link_close(&w->link);
    }
    if (w->socket != NULL) {
        zmq_close(w->socket);
    }
    if (w->own_ctx) {
        zmq_ctx_term(w->ctx);
    }
}

int
mpb__worker_run(const mpb__worker_config *cfg, char *err, size_t err_len)
{
    worker w;
    worker_init(&w, cfg);
    int rc = open_channel(&w, err, err_len);
    if (rc != 0) {
        goto out_free;
    }
    rc = check_options(cfg, err, err_len);
    if (rc == 0) {
        rc = pin_and_init(&w, err, err_len);
    }
    if (rc != 0) {
        /* Tell the coordinator why, so its start fails with this message. */
        mpb__worker_send_error(&w, rc, err);
        goto out_free;
    }
    send_ready(&w);
    rc = mpb__worker_serve(&w, err, err_len);
    if (cfg->def->cleanup != NULL) {
        cfg->def->cleanup(w.state);
    }
out_free:
    worker_free(&w);
    return rc;
}

void
mpb__worker_report_failure(const mpb__worker_config *config, int code, const char *message)
{
    void *ctx = zmq_ctx_new();
    void *socket = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    if (socket != NULL) {
        mpb__zmq_set_int(socket, ZMQ_LINGER, 1000);
        char ignored[256];
        int keyed = config->curve_key_file == NULL ||
                    mpb__curve_client_apply(socket, config->curve_server_key_file,
                                            config->curve_key_file, ignored, sizeof ignored) == 0;
        if (keyed && zmq_connect(socket, config->endpoint) == 0) {
            mpb__wire_buf buf;
            mpb__wire_buf_init(&buf);
            mpb__wire_pack_error(&buf, code, message);
            mpb__zmq_send(socket, buf.sbuf.data, buf.sbuf.size, 0);
            mpb__wire_buf_free(&buf);
        }
        zmq_close(socket);
    }
    if (ctx != NULL) {
        zmq_ctx_term(ctx);
    }
}
