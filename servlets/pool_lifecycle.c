/*
 * DESIGN
 * A pool's life: start binds the ROUTER, launches the workers through the
 * launcher and waits for every READY (or the first reason one cannot
 * start); shutdown asks workers to leave once nothing is in flight; kill
 * forces them and fails what is left; destroy frees. Also the pool's config
 * copy (the mpb-worker command line is the process launcher's,
 * servlets/process.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "core/affinity.h"
#include "core/os/cleanup.h"
#include "core/os/process.h"
#include "core/plugin.h"
#include "core/util.h"
#include "core/worker_loop.h"
#include "core/zmq_util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "servlets/pool.h"

/* ---- lifecycle ---- */

static int
resolve_cpus(mpb__pool *pool, char *err, size_t err_len)
{
    const char *spec = pool->cpus_spec ? pool->cpus_spec : pool->launcher->default_cpus;
    pool->cpu_lists = mpb_calloc(pool->workers, sizeof(char *));
    if (strcmp(spec, "none") == 0) {
        return 0;
    }
    if (strcmp(spec, "auto") == 0) {
        /* this pool's place in the tree's spread (alone: the whole spread) */
        unsigned base = 0;
        unsigned total = pool->workers;
        if (pool->env.auto_next != NULL && pool->env.auto_total >= pool->workers) {
            base = *pool->env.auto_next;
            total = pool->env.auto_total;
            *pool->env.auto_next += pool->workers;
        }
        for (unsigned i = 0; i < pool->workers; i++) {
            pool->cpu_lists[i] = mpb__affinity_auto(base + i, total);
        }
        return 0;
    }
    char *copy = mpb_strdup(spec);
    char *save = NULL;
    unsigned n = 0;
    int rc = 0;
    for (char *list = strtok_r(copy, ";", &save); list != NULL; list = strtok_r(NULL, ";", &save)) {
        while (*list == ' ') {
            list++;
        }
        if (n < pool->workers) {
            rc = mpb__affinity_check(list, err, err_len);
            if (rc != 0) {
                break;
            }
            pool->cpu_lists[n] = mpb_strdup(list);
        }
        n++;
    }
    free(copy);
    if (rc == 0 && n != pool->workers) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "cpus '%s' names %u CPU lists for %u workers (one list per worker, "
                            "separated by ';', or \"auto\" or \"none\")",
                            spec, n, pool->workers);
    }
    return rc;
}

int
mpb__pool_uses_curve(const mpb__pool *pool)
{
    return pool->env.curve != NULL && pool->endpoint != NULL &&
           strncmp(pool->endpoint, "tcp://", 6) == 0;
}

static int
open_router(mpb__pool *pool, char *err, size_t err_len)
{
    pool->router = zmq_socket(pool->env.zmq_context, ZMQ_ROUTER);
    if (pool->router == NULL) {
        return mpb__set_error(err, err_len, mpb__zmq_status(), "zmq_socket(ROUTER): %s",
                              zmq_strerror(zmq_errno()));
    }
    mpb__zmq_set_int(pool->router, ZMQ_ROUTER_MANDATORY, 1);
    /* What a peer (a worker joining over tcp:// may be anyone) can make us
     * hold: messages no larger than a batch of the largest values (at most
     * 1 GiB; larger ones drop the connection before they are read), and
     * finite queues each way. Credit keeps honest workers far below both
     * HWMs; a peer that never reads holds at most its credit of items. */
    const int64_t most = (int64_t)1 << 30;
    int64_t per_batch = pool->batch_size > 0 ? (int64_t)pool->batch_size : 64;
    int64_t item = (int64_t)pool->max_item_bytes;
    /* the product may pass int64 for a batch size a C caller set past the
     * config's cap: compare before multiplying */
    int64_t max_message = item > (most - (1 << 20)) / per_batch ? most
                                                                 : item * per_batch + (1 << 20);
    max_message = max_message < most ? max_message : most;
    zmq_setsockopt(pool->router, ZMQ_MAXMSGSIZE, &max_message, sizeof max_message);
    mpb__zmq_set_int(pool->router, ZMQ_SNDHWM, 100000);
    mpb__zmq_set_int(pool->router, ZMQ_RCVHWM, 10000);
    mpb__zmq_set_int(pool->router, ZMQ_LINGER, 0);
    /* Transport-level liveness, kept by libzmq's I/O thread even while a
     * worker's only thread is busy in its plugin: a peer silent for 10 s is
     * disconnected, and the next send to it fails (conn_lost). */
    mpb__zmq_set_int(pool->router, ZMQ_HEARTBEAT_IVL, MPB_DEFAULT_HEARTBEAT_MS);
    mpb__zmq_set_int(pool->router, ZMQ_HEARTBEAT_TIMEOUT, MPB_DEFAULT_COORDINATOR_TIMEOUT_MS);
    static atomic_uint counter;
    unsigned n = atomic_fetch_add(&counter, 1);
    if (pool->bind != NULL) {
        pool->endpoint = mpb_strdup(pool->bind);
    } else if (strcmp(pool->launcher->endpoint_scheme, "inproc") == 0) {
        pool->endpoint = mpb_asprintf("inproc://mpb-%d-%u", (int)getpid(), n);
    } else {
        const char *dir = getenv("MPB_RUNTIME_DIR");
        pool->ipc_path =
            mpb_asprintf("%s/mpb-%d-%u.ipc", dir && *dir ? dir : "/tmp", (int)getpid(), n);
        pool->endpoint = mpb_asprintf("ipc://%s", pool->ipc_path);
    }
    if (mpb__pool_uses_curve(pool)) {
        int rc = mpb__curve_server_apply(pool->router, pool->env.curve, err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    if (zmq_bind(pool->router, pool->endpoint) != 0) {
        int rc = mpb__zmq_status();
        free(pool->ipc_path); /* not ours: never remove a path we failed to bind */
        pool->ipc_path = NULL;
        return mpb__set_error(err, err_len, rc, "bind %s: %s", pool->endpoint,
                              zmq_strerror(zmq_errno()));
    }
    if (pool->ipc_path == NULL && strncmp(pool->endpoint, "ipc://", 6) == 0 &&
        pool->endpoint[6] != '@') { /* '@': the abstract namespace has no file */
        pool->ipc_path = mpb_strdup(pool->endpoint + 6); /* bound here: removed at destroy */
    }
    if (pool->ipc_path != NULL) {
        mpb__cleanup_register(pool->ipc_path); /* removed even if the program leaves at once */
    }
    char last[256];
    size_t size = sizeof last;
    if (zmq_getsockopt(pool->router, ZMQ_LAST_ENDPOINT, last, &size) == 0 && size > 1) {
        free(pool->endpoint);
        pool->endpoint = mpb_strdup(last); /* resolves tcp://...:* to the real port */
    }
    return 0;
}

static unsigned
ready_launched(const mpb__pool *pool)
{
    unsigned ready = 0;
    for (size_t i = 0; i < pool->n_conns; i++) {
        ready += pool->conns[i].state == MPB_CONN_READY && pool->conns[i].index >= 0;
    }
    return ready;
}

static int
wait_until_ready(mpb__pool *pool, char *err, size_t err_len)
{
    int timeout_ms = pool->start_timeout_ms > 0 ? pool->start_timeout_ms : 30000;
    int64_t deadline = mpb_now_ns() + (int64_t)timeout_ms * 1000000;
    while (ready_launched(pool) < pool->workers) {
        if (pool->start_error[0] != '\0') {
            return mpb__set_error(err, err_len, MPB_EPLUGIN, "%s", pool->start_error);
        }
        int rc = pool->launcher->check_early_exit(pool, err, err_len);
        if (rc != 0) {
            /* The worker may have said why just before it left: prefer that. */
            mpb__pool_wait_peers(pool, 200);
            mpb__pool_receive_all(pool);
            if (pool->start_error[0] != '\0') {
                return mpb__set_error(err, err_len, MPB_EPLUGIN, "%s", pool->start_error);
            }
            return rc;
        }
        if (mpb_now_ns() > deadline) {
            return mpb__set_error(err, err_len, MPB_ETIMEDOUT,
                                  "%u of %u workers ready after %d ms (start_timeout_ms)",
                                  ready_launched(pool), pool->workers, timeout_ms);
        }
        /* Pools of the tree that started before this one keep their
         * heartbeats and sockets going meanwhile: their workers would
         * leave after 10 s of silence. */
        mpb__loop_run_once(pool->env.loop, 0);
        mpb__pool_wait_peers(pool, 50);
        mpb__pool_receive_all(pool);
    }
    return 0;
}

static int
pool_start(mpb_servlet *self, const mpb__servlet_env *env, const char *parent_path, char *err,
           size_t err_len)
{
    mpb__pool *pool = (mpb__pool *)self;
    char reason[512] = "";
    mpb__servlet_set_path(self, parent_path);
    pool->env = *env;
    int rc = 0;
    if (pool->workers == 0 && pool->bind == NULL) {
        rc = mpb__set_error(reason, sizeof reason, MPB_EINVAL,
                            "workers: 0 needs a bind endpoint for workers to join");
    }
    if (rc == 0) {
        rc = resolve_cpus(pool, reason, sizeof reason);
    }
    if (rc == 0) {
        rc = open_router(pool, reason, sizeof reason);
    }
    if (rc == 0) {
        rc = pool->launcher->prepare(pool, reason, sizeof reason);
    }
    const mpb__plugin *described = NULL;
    if (rc == 0 && mpb__plugin_find(pool->plugin_path ? pool->plugin_path : pool->plugin,
                                    &described, NULL, 0) == 0) {
        pool->declared = described->def; /* what the metadata endpoints report */
    }
    for (unsigned i = 0; rc == 0 && i < pool->workers; i++) {
        rc = pool->launcher->launch(pool, i, reason, sizeof reason);
    }
    if (rc == 0) {
        rc = wait_until_ready(pool, reason, sizeof reason);
    }
    if (rc != 0) {
        mpb__pool_shutdown_conns(pool);
        pool->launcher->kill_all(pool);
        return mpb__set_error(err, err_len, rc, "servlet %s (%s %s): %s", mpb__pool_path(pool),
                              pool->launcher->kind, pool->plugin, reason);
    }
    pool->started = 1;
    if (pool->batch_timeout_ms == 0 && pool->declared != NULL) {
        pool->batch_timeout_ms = pool->declared->batch_timeout_ms; /* the plugin's default */
    }
    if (pool->batch_timeout_ms > 0) {
        int every = pool->batch_timeout_ms / 4;
        every = every < 10 ? 10 : every > 250 ? 250 : every;
        pool->hung_timer =
            mpb__loop_add_timer(pool->env.loop, every, 1, mpb__pool_on_hung_check, pool);
    }
    mpb__pool_check_available(pool); /* a pool of joining workers starts with none */
    mpb__loop_add_socket(env->loop, pool->router, mpb__pool_on_router, pool);
    pool->heartbeat_timer = mpb__loop_add_timer(env->loop, MPB_DEFAULT_HEARTBEAT_MS / 2, 1,
                                                mpb__pool_on_heartbeat, pool);
    return 0;
}

static void
pool_shutdown(mpb_servlet *self)
{
    mpb__pool_shutdown_conns((mpb__pool *)self);
}

void
mpb__pool_shutdown_conns(mpb__pool *pool)
{
    pool->stopping = 1;
    mpb__pool_cancel_retries(pool); /* a worker in backoff is not waited for */
    for (size_t i = 0; i < pool->n_conns; i++) {
        if (pool->conns[i].state == MPB_CONN_READY) {
            mpb__pool_set_conn_state(pool, &pool->conns[i], MPB_CONN_LEAVING);
            mpb__pool_send_signal(pool, &pool->conns[i], MPB_FRAME_SHUTDOWN);
        }
    }
}

static int
pool_stopped(mpb_servlet *self)
{
    mpb__pool *pool = (mpb__pool *)self;
    if (pool->deaths != NULL || pool->retries_pending > 0) {
        return 0;
    }
    for (size_t i = 0; i < pool->n_conns; i++) {
        if (pool->conns[i].state != MPB_CONN_GONE) {
            return 0;
        }
    }
    return pool->launcher->all_gone(pool);
}

static void
pool_kill(mpb_servlet *self)
{
    mpb__pool *pool = (mpb__pool *)self;
    mpb__pool_shutdown_conns(pool);
    pool->launcher->kill_all(pool);
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__pool_set_conn_state(pool, &pool->conns[i], MPB_CONN_GONE);
    }
    while (pool->wait_count > 0) {
        mpb__pool_waiting_pop(pool);
    }
    for (size_t s = 0; s < pool->n_slots; s++) {
        if (pool->slots[s].busy) {
            mpb__pool_slot_complete(pool, &pool->slots[s],
                                    mpb__pool_error(pool, NULL, MPB_ERROR_CANCELLED,
                                                    "the server stopped before a worker answered"));
        }
    }
}

static void
free_strv(char **strv, size_t n)
{
    for (size_t i = 0; strv != NULL && i < n; i++) {
        free(strv[i]);
    }
    free(strv);
}

static void
pool_destroy(mpb_servlet *self)
{
    mpb__pool *pool = (mpb__pool *)self;
    pool->launcher->release(pool);
    mpb__pool_forget_deaths(pool);
    mpb__pool_deadlines_free(pool);
    if (pool->env.loop != NULL) {
        mpb__pool_cancel_retries(pool);
    }
    if (pool->hung_timer != 0) {
        mpb__loop_cancel_timer(pool->env.loop, pool->hung_timer);
    }
    if (pool->unavailable_armed) {
        mpb__loop_cancel_timer(pool->env.loop, pool->unavailable_timer);
    }
    free(pool->restarts);
    if (pool->router != NULL) {
        if (pool->started) {
            mpb__loop_remove_socket(pool->env.loop, pool->router);
            mpb__loop_cancel_timer(pool->env.loop, pool->heartbeat_timer);
        }
        zmq_close(pool->router);
    }
    if (pool->ipc_path != NULL) {
        unlink(pool->ipc_path);
        mpb__cleanup_forget(pool->ipc_path);
    }
    for (size_t i = 0; i < pool->n_conns; i++) {
        free(pool->conns[i].name);
        free(pool->conns[i].cpus);
        free(pool->conns[i].host);
        free(pool->conns[i].marks);
    }
    size_t n_options = 0;
    while (pool->options && pool->options[n_options]) {
        n_options++;
    }
    free_strv(pool->options, n_options);
    free_strv(pool->cpu_lists, pool->cpu_lists ? pool->workers : 0);
    free(pool->conns);
    free(pool->slots);
    free(pool->free_slots);
    free(pool->waiting);
    free(pool->outgoing);
    free(pool->endpoint);
    free(pool->ipc_path);
    free(pool->plugin);
    free(pool->plugin_path);
    free(pool->cpus_spec);
    free(pool->bind);
    free(pool->worker_exe);
    free(pool->base.name);
    free(pool->base.path);
    msgpack_zone_destroy(&pool->zone);
    free(pool->link_copy);
    mpb__metrics_free(&pool->base.metrics);
    mpb__wire_buf_free(&pool->out);
    free(pool);
}

static void
copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void
pool_workers(mpb_servlet *self, mpb_worker_status *out, size_t max, size_t *count)
{
    mpb__pool *pool = (mpb__pool *)self;
    for (size_t i = 0; i < pool->n_conns; i++) {
        const mpb__conn *c = &pool->conns[i];
        if (c->state == MPB_CONN_GONE) {
            continue;
        }
        if (*count < max) {
            mpb_worker_status *w = &out[*count];
            copy_text(w->servlet, sizeof w->servlet, mpb__pool_path(pool));
            copy_text(w->name, sizeof w->name, c->name);
            copy_text(w->host, sizeof w->host, c->host);
            copy_text(w->cpus, sizeof w->cpus, c->cpus);
            w->pid = c->pid;
            w->capacity = c->capacity;
            w->batch_size = c->batch_size;
            w->batch_wait_us = c->batch_wait_us;
        }
        (*count)++;
    }
}

static int
pool_ready(mpb_servlet *self)
{
    mpb__pool *pool = (mpb__pool *)self;
    if (!pool->started || pool->stopping) {
        return 0;
    }
    if (pool->workers > 0) {
        return ready_launched(pool) >= pool->workers;
    }
    for (size_t i = 0; i < pool->n_conns; i++) {
        if (pool->conns[i].state == MPB_CONN_READY) {
            return 1; /* a pool of joined workers is ready once one has joined */
        }
    }
    return 0;
}

/* The plugin's declarations, read in this process (without running the
 * plugin) when the plugin file is here. */
static void
pool_tensors(mpb_servlet *self, const mpb_tensor_def **inputs, const mpb_tensor_def **outputs)
{
    mpb__pool *pool = (mpb__pool *)self;
    *inputs = pool->declared ? pool->declared->inputs : NULL;
    *outputs = pool->declared ? pool->declared->outputs : NULL;
}

static unsigned
pool_auto_workers(const mpb_servlet *self)
{
    const mpb__pool *pool = (const mpb__pool *)self;
    const char *spec = pool->cpus_spec ? pool->cpus_spec : pool->launcher->default_cpus;
    return strcmp(spec, "auto") == 0 ? pool->workers : 0;
}

static void
pool_gauges(mpb_servlet *self, mpb__gauges *out)
{
    mpb__pool *pool = (mpb__pool *)self;
    memset(out, 0, sizeof *out);
    out->queue_depth = pool->wait_count;
    out->workers_wanted = pool->workers;
    for (size_t i = 0; i < pool->n_conns; i++) {
        const mpb__conn *c = &pool->conns[i];
        out->in_flight += c->in_flight;
        out->workers_alive += c->state == MPB_CONN_READY;
        double cpu = 0;
        uint64_t rss = 0;
        /* processes launched here (a thread pool's workers are this process) */
        if (c->index >= 0 && c->state != MPB_CONN_GONE && c->pid > 0 && c->pid != getpid() &&
            mpb__process_usage((pid_t)c->pid, &cpu, &rss) == 0) {
            out->workers_cpu_s += cpu;
            out->workers_rss_bytes += rss;
        }
    }
}

static const mpb__servlet_ops pool_ops = {
    .kind = "pool",
    .start = pool_start,
    .submit = mpb__pool_submit,
    .cancel = mpb__pool_cancel,
    .auto_workers = pool_auto_workers,
    .ready = pool_ready,
    .tensors = pool_tensors,
    .shutdown = pool_shutdown,
    .stopped = pool_stopped,
    .kill = pool_kill,
    .workers = pool_workers,
    .gauges = pool_gauges,
    .destroy = pool_destroy,
};

static char *
dup_or_null(const char *text)
{
    return text ? mpb_strdup(text) : NULL;
}

mpb_servlet *
mpb__pool_new(const mpb_pool_config *config, const mpb__pool_launcher *launcher)
{
    MPB_ASSERT(config != NULL);
    mpb__pool *pool = mpb_calloc(1, sizeof *pool);
    pool->base.ops = &pool_ops;
    pool->base.metrics = mpb__metrics_new();
    pool->launcher = launcher;
    pool->plugin = mpb_strdup(config->plugin ? config->plugin : "");
    char short_name[256];
    mpb__plugin_short_name(pool->plugin, short_name, sizeof short_name);
    pool->base.name = mpb_strdup(config->name && *config->name ? config->name : short_name);
    pool->workers = config->workers; /* 0: only workers that join through `bind` */
    pool->cpus_spec = dup_or_null(config->cpus);
    pool->batch_size = config->batch_size;
    pool->batch_wait_us = config->batch_wait_us;
    pool->capacity = config->capacity;
    size_t n_options = 0;
    while (config->options && config->options[n_options]) {
        n_options++;
    }
    pool->options = mpb_calloc(n_options + 1, sizeof(char *));
    for (size_t i = 0; i < n_options; i++) {
        pool->options[i] = mpb_strdup(config->options[i]);
    }
    pool->bind = dup_or_null(config->bind);
    pool->worker_exe = dup_or_null(config->worker_exe);
    pool->start_timeout_ms = config->start_timeout_ms;
    pool->unavailable_timeout_ms = config->unavailable_timeout_ms == 0 ? 10000
                                   : config->unavailable_timeout_ms < 0
                                       ? -1
                                       : config->unavailable_timeout_ms;
    /* 0: the plugin's default (read at start); < 0: off */
    pool->batch_timeout_ms = config->batch_timeout_ms;
    pool->retry = config->retry;
    pool->isolate_bisect = config->isolate != NULL && strcmp(config->isolate, "bisect") == 0;
    pool->restarts = mpb_calloc(config->workers ? config->workers : 1, sizeof *pool->restarts);
    pool->max_item_bytes =
        config->max_item_bytes ? config->max_item_bytes : MPB_DEFAULT_MAX_ITEM_BYTES;
    pool->shm_bytes =
        config->shm_bytes < 0 ? (long long)MPB_POOL_SHM_DEFAULT_BYTES : config->shm_bytes;
    msgpack_zone_init(&pool->zone, 65536);
    mpb__wire_buf_init(&pool->out);
    return &pool->base;
}

void
mpb_pool_config_init(mpb_pool_config *config)
{
    memset(config, 0, sizeof *config);
    config->workers = 1;
    config->batch_size = -1;
    config->batch_wait_us = -1;
    config->shm_bytes = -1;
}
