/*
 * DESIGN
 * What a served figure is compared with, measured in the same run:
 *
 *   bare  the plugin's call() in this process on batches of batch_size,
 *         rows fresh for every call (cycling through 32 MiB, as served
 *         items arrive fresh): what the model alone does on one thread.
 *   raw   the same items, batch_size to a message packed as a msgpack
 *         array of bin, sent over ZeroMQ ipc to as many echo processes as
 *         workers, unpacked and packed again there and unpacked here; four
 *         messages in flight per process: the transport with no framework.
 *   rtt   one 16-byte message to one echo process and back, one at a time:
 *         the floor of a call's latency.
 *
 * Echo processes are this program again (`mpb bench --echo ENDPOINT`),
 * started with posix_spawn: no fork of a process with threads.
 */
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "core/batch.h"
#include "core/options.h"
#include "core/os/process.h"
#include "core/plugin.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "tools/bench/bench_int.h"

#define MAX_ECHOES 64
#define WINDOW 4

double
mpb__bench_bare(const bench_plan *plan, long long batch_size, char *err, size_t err_len)
{
    mpb__plugin *plugin = NULL;
    if (plan->plugin == NULL || mpb__plugin_load(plan->plugin, &plugin, err, err_len) != 0) {
        return 0;
    }
    mpb_options *options = mpb__options_new();
    for (size_t i = 0; plan->plugin_options != NULL && plan->plugin_options[i] != NULL; i++) {
        mpb__options_set_pair(options, plan->plugin_options[i]);
    }
    size_t per_call = batch_size > 0 ? (size_t)batch_size : 1;
    mpb_worker_info info = {.name = "bare", .batch_size = (unsigned)per_call, .cpus = ""};
    void *state = NULL;
    double rate = 0;
    if (plugin->def->init == NULL || plugin->def->init(&info, options, &state, err, err_len) == 0) {
        size_t len = plan->item_bytes;
        size_t batches = (32u << 20) / (per_call * (len ? len : 1)) + 1;
        unsigned char *rows = mpb_malloc(batches * per_call * (len ? len : 1));
        for (size_t i = 0; i < batches * per_call; i++) {
            memcpy(rows + i * len, plan->item, len);
        }
        mpb_batch batch;
        mpb__batch_init(&batch, 1u << 30);
        double seconds = plan->seconds > 0 ? plan->seconds : 1.0;
        int64_t start = mpb_now_ns();
        int64_t end = start + (int64_t)(seconds * 1e9);
        size_t done = 0;
        for (size_t call = 0; mpb_now_ns() < end; call++) {
            unsigned char *batch_rows = rows + (call % batches) * per_call * len;
            mpb__batch_reset(&batch);
            for (size_t i = 0; i < per_call; i++) {
                mpb__batch_add(&batch, batch_rows + i * len, len);
            }
            plugin->def->call(state, &batch);
            mpb__batch_settle(&batch, 0);
            done += per_call;
        }
        rate = (double)done / ((double)(mpb_now_ns() - start) / 1e9);
        mpb__batch_free(&batch);
        free(rows);
        if (plugin->def->cleanup != NULL) {
            plugin->def->cleanup(state);
        }
    }
    mpb__options_destroy(&options);
    mpb__plugin_unload(&plugin);
    return rate;
}

/* ---- the echo process ---- */

int
mpb__bench_echo(const char *endpoint)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, endpoint) != 0) {
        return 1;
    }
    zmq_send(s, "R", 1, 0);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    for (;;) {
        if (zmq_msg_recv(&msg, s, 0) < 0 || zmq_msg_size(&msg) == 0) {
            break;
        }
        /* unpack the items and pack them again, as a worker would */
        msgpack_object obj;
        size_t off = 0;
        msgpack_zone_clear(&zone);
        if (msgpack_unpack(zmq_msg_data(&msg), zmq_msg_size(&msg), &off, &zone, &obj) !=
                MSGPACK_UNPACK_SUCCESS ||
            obj.type != MSGPACK_OBJECT_ARRAY) {
            break;
        }
        msgpack_sbuffer_clear(&out);
        msgpack_pack_array(&pk, obj.via.array.size);
        for (uint32_t i = 0; i < obj.via.array.size; i++) {
            const msgpack_object *item = &obj.via.array.ptr[i];
            msgpack_pack_bin(&pk, item->via.bin.size);
            msgpack_pack_bin_body(&pk, item->via.bin.ptr, item->via.bin.size);
        }
        zmq_send(s, out.data, out.size, 0);
    }
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&out);
    zmq_msg_close(&msg);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}

typedef struct echoes {
    void *ctx;
    void *router;
    char endpoint[128];
    pid_t pids[MAX_ECHOES];
    unsigned char ids[MAX_ECHOES][16];
    size_t id_len[MAX_ECHOES];
    unsigned n;
} echoes;

static int
echoes_start(echoes *e, unsigned n, char *err, size_t err_len)
{
    memset(e, 0, sizeof *e);
    static int serial;
    snprintf(e->endpoint, sizeof e->endpoint, "ipc:///tmp/mpb-bench-%d-%d.ipc", (int)getpid(),
             serial++);
    e->ctx = zmq_ctx_new();
    e->router = zmq_socket(e->ctx, ZMQ_ROUTER);
    if (zmq_bind(e->router, e->endpoint) != 0) {
        return mpb__set_error(err, err_len, MPB_EIO, "bind %s: %s", e->endpoint,
                              zmq_strerror(zmq_errno()));
    }
    char *dir = mpb__executable_dir();
    char *exe = mpb_asprintf("%s/mpb", dir ? dir : ".");
    free(dir);
    char *argv[] = {exe, "bench", "--echo", e->endpoint, NULL};
    int rc = 0;
    for (unsigned i = 0; i < n && i < MAX_ECHOES && rc == 0; i++) {
        int pidfd = -1;
        rc = mpb__spawn(exe, argv, &e->pids[i], &pidfd, err, err_len);
        if (rc == 0) {
            e->n++;
            if (pidfd >= 0) {
                close(pidfd);
            }
        }
    }
    free(exe);
    int timeout = 10000;
    zmq_setsockopt(e->router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    for (unsigned i = 0; i < e->n && rc == 0; i++) {
        char hello;
        int got = zmq_recv(e->router, e->ids[i], sizeof e->ids[i], 0);
        if (got <= 0 || zmq_recv(e->router, &hello, 1, 0) != 1) {
            rc = mpb__set_error(err, err_len, MPB_ETIMEDOUT, "an echo process did not start");
        }
        e->id_len[i] = got > 0 ? (size_t)got : 0;
    }
    return rc;
}

static void
echoes_stop(echoes *e)
{
    for (unsigned i = 0; i < e->n; i++) {
        if (e->id_len[i] > 0) {
            zmq_send(e->router, e->ids[i], e->id_len[i], ZMQ_SNDMORE);
            zmq_send(e->router, "", 0, 0);
        }
    }
    for (unsigned i = 0; i < e->n; i++) {
        int status;
        if (waitpid(e->pids[i], &status, WNOHANG) == 0) {
            usleep(10000);
            if (waitpid(e->pids[i], &status, WNOHANG) == 0) {
                kill(e->pids[i], SIGKILL);
                waitpid(e->pids[i], &status, 0);
            }
        }
    }
    int linger = 0;
    zmq_setsockopt(e->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(e->router);
    zmq_ctx_term(e->ctx);
    unlink(e->endpoint + 6);
}

static void
send_to(echoes *e, unsigned i, const void *data, size_t len)
{
    zmq_send(e->router, e->ids[i], e->id_len[i], ZMQ_SNDMORE);
    zmq_send(e->router, data, len, 0);
}

/* A message of n items, packed afresh each time as a sender would. */
static void
pack_items(msgpack_packer *pk, msgpack_sbuffer *buf, const bench_plan *plan, size_t n)
{
    msgpack_sbuffer_clear(buf);
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t k = 0; k < n; k++) {
        msgpack_pack_bin(pk, plan->item_bytes);
        msgpack_pack_bin_body(pk, plan->item, plan->item_bytes);
    }
}

double
mpb__bench_raw(const bench_plan *plan, long long workers, long long batch_size, char *err,
               size_t err_len)
{
    echoes e;
    if (echoes_start(&e, (unsigned)workers, err, err_len) != 0) {
        echoes_stop(&e);
        return 0;
    }
    size_t per_msg = batch_size > 0 ? (size_t)batch_size : 1;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    unsigned char id[16];
    double seconds = plan->seconds > 0 ? plan->seconds : 1.0;
    int64_t start = mpb_now_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    long long in_flight = 0;
    long long items = 0;
    /* a new message of per_msg items each time: packing is part of it */
    for (unsigned i = 0; i < e.n; i++) {
        for (int w = 0; w < WINDOW; w++) {
            pack_items(&pk, &buf, plan, per_msg);
            send_to(&e, i, buf.data, buf.size);
            in_flight++;
        }
    }
    while (in_flight > 0) {
        int got = zmq_recv(e.router, id, sizeof id, 0);
        if (got < 0 || zmq_msg_recv(&msg, e.router, 0) < 0) {
            break;
        }
        in_flight--;
        msgpack_object obj;
        size_t off = 0;
        msgpack_zone_clear(&zone);
        if (msgpack_unpack(zmq_msg_data(&msg), zmq_msg_size(&msg), &off, &zone, &obj) ==
                MSGPACK_UNPACK_SUCCESS &&
            obj.type == MSGPACK_OBJECT_ARRAY) {
            items += obj.via.array.size;
        }
        if (mpb_now_ns() < end) {
            pack_items(&pk, &buf, plan, per_msg);
            zmq_send(e.router, id, (size_t)got, ZMQ_SNDMORE);
            zmq_send(e.router, buf.data, buf.size, 0);
            in_flight++;
        }
    }
    double rate = (double)items / ((double)(mpb_now_ns() - start) / 1e9);
    zmq_msg_close(&msg);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&buf);
    echoes_stop(&e);
    return rate;
}

static int
compare_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

int
mpb__bench_rtt(int calls, double *p50_us, double *p99_us, char *err, size_t err_len)
{
    echoes e;
    int rc = echoes_start(&e, 1, err, err_len);
    double *us = mpb_malloc((size_t)calls * sizeof *us);
    unsigned char one[24];
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_bin(&pk, 16);
    msgpack_pack_bin_body(&pk, "0123456789abcdef", 16);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    int done = 0;
    for (; rc == 0 && done < calls; done++) {
        int64_t t0 = mpb_now_ns();
        send_to(&e, 0, buf.data, buf.size);
        if (zmq_recv(e.router, one, sizeof one, 0) < 0 || zmq_msg_recv(&msg, e.router, 0) < 0) {
            rc = mpb__set_error(err, err_len, MPB_EIO, "the echo process stopped answering");
            break;
        }
        us[done] = (double)(mpb_now_ns() - t0) / 1e3;
    }
    if (done > 0) {
        qsort(us, (size_t)done, sizeof *us, compare_double);
        *p50_us = us[(size_t)(0.5 * (done - 1) + 0.5)];
        *p99_us = us[(size_t)(0.99 * (done - 1) + 0.5)];
    }
    zmq_msg_close(&msg);
    msgpack_sbuffer_destroy(&buf);
    free(us);
    echoes_stop(&e);
    return rc;
}
