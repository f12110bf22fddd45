/*
 * DESIGN
 * ThreadServlet: a pool whose workers are threads of this process running
 * the same worker loop as mpb-worker, connected over inproc:// through the
 * server's ZeroMQ context. The plugin is loaded once; each thread calls its
 * init and owns its own state. A thread cannot be killed: stop asks it to
 * leave (SHUTDOWN, then a cancel flag it checks at least every 100 ms) and
 * joins it; a thread stuck inside the plugin is detached and reported.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/options.h"
#include "core/plugin.h"
#include "core/util.h"
#include "core/worker_loop.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "servlets/pool.h"

#define THREAD_JOIN_TIMEOUT_MS 5000

atomic_int mpb__stuck_threads;

typedef struct worker_thread {
    mpb__worker_config config;
    char *name;
    pthread_t thread;
    int launched;
    atomic_int finished;
    int rc;
    char err[512];
} worker_thread;

typedef struct thread_state {
    mpb__plugin *plugin;
    mpb_options *options;
    worker_thread *threads;
    atomic_int cancel;
} thread_state;

static void *
thread_main(void *arg)
{
    worker_thread *t = arg;
    /* A failure before READY reaches the pool's start as an ERROR frame;
     * afterwards the only ways out are SHUTDOWN and cancel. */
    t->rc = mpb__worker_run(&t->config, t->err, sizeof t->err);
    atomic_store(&t->finished, 1);
    return NULL;
}

static int
thread_prepare(mpb__pool *pool, char *err, size_t err_len)
{
    thread_state *st = mpb_calloc(1, sizeof *st);
    pool->launcher_state = st;
    st->threads = mpb_calloc(pool->workers, sizeof(worker_thread));
    st->options = mpb__options_new();
    for (size_t i = 0; pool->options[i] != NULL; i++) {
        if (mpb__options_set_pair(st->options, pool->options[i]) != 0) {
            return mpb__set_error(err, err_len, MPB_EINVAL, "option '%s' is not key=value",
                                  pool->options[i]);
        }
    }
    return mpb__plugin_load(pool->plugin, &st->plugin, err, err_len);
}

/* Joins t by the absolute CLOCK_MONOTONIC deadline; detaches it past that.
 * The wait itself is pthread_timedjoin_np's (ThreadSanitizer knows that
 * join, not pthread_clockjoin_np), on the wall-clock time that is as far
 * away now: only a clock jump during this one wait moves it. */
static int
join_thread(worker_thread *t, const struct timespec *deadline)
{
    int64_t left_ns = ((int64_t)deadline->tv_sec * 1000000000 + deadline->tv_nsec) - mpb_now_ns();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t at = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec + (left_ns > 0 ? left_ns : 0);
    struct timespec wall_deadline = {.tv_sec = (time_t)(at / 1000000000),
                                     .tv_nsec = (long)(at % 1000000000)};
    if (pthread_timedjoin_np(t->thread, NULL, &wall_deadline) != 0) {
        mpb_log_err("thread-worker",
                    "%s did not leave in time (stuck in its plugin?); detaching it", t->name);
        pthread_detach(t->thread);
        atomic_fetch_add(&mpb__stuck_threads, 1);
        t->launched = 0;
        return MPB_ETIMEDOUT;
    }
    t->launched = 0;
    return 0;
}

static int
thread_launch(mpb__pool *pool, unsigned index, char *err, size_t err_len)
{
    thread_state *st = pool->launcher_state;
    worker_thread *t = &st->threads[index];
    if (t->launched) {
        struct timespec deadline;
        mpb__monotonic_deadline(&deadline, THREAD_JOIN_TIMEOUT_MS);
        join_thread(t, &deadline);
    }
    free(t->name);
    t->name = mpb_asprintf("%s-%u", pool->base.name, index);
    t->config = (mpb__worker_config){
        .def = st->plugin->def,
        .plugin_name = pool->plugin,
        .endpoint = pool->endpoint,
        .zmq_context = pool->env.zmq_context,
        .name = t->name,
        .index = index,
        .batch_size = pool->batch_size,
        .batch_wait_us = pool->batch_wait_us,
        .capacity = pool->capacity,
        .cpus = pool->cpu_lists[index],
        .bind_scope = MPB_BIND_THREAD,
        .options = st->options,
        .max_item_bytes = pool->max_item_bytes,
        .isolate_bisect = pool->isolate_bisect,
        .curve_server_key_file = mpb__pool_uses_curve(pool) ? pool->env.curve_key_file : NULL,
        .curve_key_file = mpb__pool_uses_curve(pool) ? pool->env.curve_key_file : NULL,
        .heartbeat_ms = 100,
        .coordinator_timeout_ms = -1,
        .cancel = &st->cancel,
    };
    atomic_store(&t->finished, 0);
    t->err[0] = '\0';
    int rc = pthread_create(&t->thread, NULL, thread_main, t);
    if (rc != 0) {
        return mpb__set_error(err, err_len, -rc, "pthread_create: %s", strerror(rc));
    }
    t->launched = 1;
    return 0;
}

static int
thread_check_early_exit(mpb__pool *pool, char *err, size_t err_len)
{
    thread_state *st = pool->launcher_state;
    for (unsigned i = 0; i < pool->workers; i++) {
        worker_thread *t = &st->threads[i];
        if (t->launched && atomic_load(&t->finished)) {
            struct timespec deadline;
            mpb__monotonic_deadline(&deadline, THREAD_JOIN_TIMEOUT_MS);
            join_thread(t, &deadline);
            return mpb__set_error(err, err_len, t->rc ? t->rc : MPB_EWORKER_DIED,
                                  "worker thread %s ended before READY: %s", t->name,
                                  t->err[0] ? t->err : "no reason given");
        }
    }
    return 0;
}

static int
thread_all_gone(mpb__pool *pool)
{
    thread_state *st = pool->launcher_state;
    for (unsigned i = 0; st != NULL && i < pool->workers; i++) {
        if (st->threads[i].launched && !atomic_load(&st->threads[i].finished)) {
            return 0;
        }
    }
    return 1;
}

static void
thread_kill_all(mpb__pool *pool)
{
    thread_state *st = pool->launcher_state;
    if (st == NULL) {
        return;
    }
    atomic_store(&st->cancel, 1);
    struct timespec deadline; /* one deadline for all: stop waits once, not per thread */
    mpb__monotonic_deadline(&deadline, THREAD_JOIN_TIMEOUT_MS);
    for (unsigned i = 0; i < pool->workers; i++) {
        if (st->threads[i].launched) {
            join_thread(&st->threads[i], &deadline);
        }
    }
}

static void
thread_release(mpb__pool *pool)
{
    thread_state *st = pool->launcher_state;
    if (st == NULL) {
        return;
    }
    thread_kill_all(pool);
    pool->launcher_state = NULL;
    for (unsigned i = 0; i < pool->workers; i++) {
        if (st->threads[i].config.def != NULL && !atomic_load(&st->threads[i].finished)) {
            /* A detached thread may still run plugin code: keep all it uses. */
            mpb_log_err("thread-worker", "%s: leaking the plugin state of a stuck thread",
                        pool->base.name);
            return;
        }
    }
    for (unsigned i = 0; i < pool->workers; i++) {
        free(st->threads[i].name);
    }
    free(st->threads);
    mpb__plugin_unload(&st->plugin);
    mpb__options_destroy(&st->options);
    free(st);
}

static const mpb__pool_launcher thread_launcher = {
    .kind = "thread",
    .default_cpus = "none",
    .endpoint_scheme = "inproc",
    .prepare = thread_prepare,
    .launch = thread_launch,
    .check_early_exit = thread_check_early_exit,
    .all_gone = thread_all_gone,
    .kill_all = thread_kill_all,
    .release = thread_release,
};

mpb_servlet *
mpb_thread_servlet_new(const mpb_pool_config *config)
{
    return mpb__pool_new(config, &thread_launcher);
}
