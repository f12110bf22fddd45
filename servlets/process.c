/*
 * DESIGN
 * ProcessServlet: a pool whose workers are local `mpb-worker` processes,
 * started with posix_spawn and watched through pidfds in the dispatcher's
 * loop (a 100 ms waitpid poll where the kernel lacks pidfd_open). A worker
 * that exits while the pool runs is reported to the pool, which fails its
 * items in flight and starts a replacement. Each worker also watches its
 * parent pid and leaves if this process dies, so none outlive us.
 * Unless shm_bytes is 0, each worker gets, as fds 3 to 7, a shared ring
 * for large items, one for large values, and a link (core/link.h) its
 * frames travel through instead of the pool's socket. Every setting goes
 * on the worker's command line (--launched: it asks for none).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/os/process.h"
#include "core/plugin.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "servlets/pool.h"

#ifndef MPB_INSTALL_BIN_DIR
#define MPB_INSTALL_BIN_DIR "/usr/local/bin"
#endif

typedef struct child {
    mpb__pool *pool;
    unsigned index;
    pid_t pid;
    int pidfd;
    int running;
} child;

typedef struct process_state {
    char *exe;
    child *children;
    uint64_t poll_timer;
} process_state;

static char *
find_worker_exe(const char *configured)
{
    if (configured != NULL) {
        return access(configured, X_OK) == 0 ? mpb_strdup(configured) : NULL;
    }
    const char *env = getenv("MPB_WORKER_EXE");
    if (env != NULL && *env != '\0') {
        return access(env, X_OK) == 0 ? mpb_strdup(env) : NULL;
    }
    /* Next to the program or in ../bin (build tree), then ../bin from the
     * library (an installed prefix). */
    char *dirs[2] = {mpb__executable_dir(), mpb__library_dir()};
    const char *candidates[] = {"%s/mpb-worker", "%s/../bin/mpb-worker"};
    char *found = NULL;
    for (size_t d = 0; d < 2; d++) {
        for (size_t i = 0; dirs[d] != NULL && found == NULL && i < MPB_ARRAY_LEN(candidates); i++) {
            char *path = mpb_asprintf(candidates[i], dirs[d]);
            if (access(path, X_OK) == 0) {
                found = path;
            } else {
                free(path);
            }
        }
        free(dirs[d]);
    }
    if (found != NULL) {
        return found;
    }
    if (access(MPB_INSTALL_BIN_DIR "/mpb-worker", X_OK) == 0) {
        return mpb_strdup(MPB_INSTALL_BIN_DIR "/mpb-worker");
    }
    return NULL;
}

/* The child is reaped: its pid may belong to another process from now on. */
static void
reaped(child *c)
{
    c->running = 0;
    if (c->pool->links != NULL) {
        c->pool->links[c->index].pid = 0;
        c->pool->links[c->index].pidfd = -1;
    }
}

static void
child_exited(child *c, int wait_status)
{
    char how[128];
    mpb__describe_exit(wait_status, how, sizeof how);
    reaped(c);
    if (c->pidfd >= 0) {
        mpb__loop_remove_fd(c->pool->env.loop, c->pidfd);
        close(c->pidfd);
        c->pidfd = -1;
    }
    mpb__pool_worker_died(c->pool, (int)c->index, c->pid, how);
}

static void
check_child(child *c)
{
    int status = 0;
    if (!c->running) {
        return;
    }
    int rc = mpb__reap(c->pid, &status);
    if (rc == 1) {
        child_exited(c, status);
    } else if (rc < 0) {
        child_exited(c, 0); /* reaped elsewhere (SIGCHLD ignored?): gone all the same */
    }
}

static void
on_pidfd(mpb__loop *loop, void *arg)
{
    (void)loop;
    check_child(arg);
}

static void
on_poll_timer(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__pool *pool = arg;
    process_state *st = pool->launcher_state;
    for (unsigned i = 0; i < pool->workers; i++) {
        check_child(&st->children[i]);
    }
}

/* Per worker: a link for its frames and shared rings for large items and
 * values (shm_bytes 0: none, everything on the socket). */
static int
open_shared(mpb__pool *pool, char *err, size_t err_len)
{
    if (pool->shm_bytes == 0 || pool->workers == 0) {
        return 0;
    }
    pool->rings = mpb_calloc(pool->workers, sizeof *pool->rings);
    pool->vrings = mpb_calloc(pool->workers, sizeof *pool->vrings);
    pool->links = mpb_calloc(pool->workers, sizeof *pool->links);
    for (unsigned i = 0; i < pool->workers; i++) {
        pool->rings[i].fd = -1;
        pool->vrings[i].fd = -1;
        pool->links[i] = (mpb__pool_link){.pool = pool, .index = i, .pidfd = -1};
    }
    for (unsigned i = 0; i < pool->workers; i++) {
        int rc = mpb__link_open(&pool->links[i].link, MPB_LINK_DEFAULT_BYTES, err, err_len);
        if (rc != 0) {
            return rc;
        }
        mpb__loop_add_fd(pool->env.loop, mpb__link_wake_fd(pool->links[i].link), mpb__pool_on_link,
                         &pool->links[i]);
    }
    for (unsigned i = 0; i < pool->workers; i++) {
        char name[64];
        snprintf(name, sizeof name, "mpb-items-%u", i);
        int rc = mpb__shm_ring_open(&pool->rings[i], (size_t)pool->shm_bytes, name, err, err_len);
        snprintf(name, sizeof name, "mpb-values-%u", i);
        if (rc == 0) {
            rc = mpb__shm_ring_open(&pool->vrings[i], (size_t)pool->shm_bytes, name, err, err_len);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
process_prepare(mpb__pool *pool, char *err, size_t err_len)
{
    process_state *st = mpb_calloc(1, sizeof *st);
    pool->launcher_state = st;
    st->children = mpb_calloc(pool->workers, sizeof(child));
    for (unsigned i = 0; i < pool->workers; i++) {
        st->children[i] = (child){pool, i, 0, -1, 0};
    }
    st->exe = find_worker_exe(pool->worker_exe);
    if (st->exe == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOENT,
                              "worker executable %s not found (set worker_exe or MPB_WORKER_EXE)",
                              pool->worker_exe ? pool->worker_exe : "mpb-worker");
    }
    /* Local workers load the same file: resolve it here, once, so a missing
     * plugin fails the start with this process's search path in the message. */
    char *path = NULL;
    int rc = mpb__plugin_resolve(pool->plugin, &path, err, err_len);
    if (rc == 0) {
        free(pool->plugin_path);
        pool->plugin_path = path;
    }
    return rc == 0 ? open_shared(pool, err, err_len) : rc;
}

/* argv for mpb-worker index (NULL-terminated; free with free_argv): every
 * setting on the command line, so the worker asks the coordinator for none. */
static char **
worker_argv(const mpb__pool *pool, const char *exe, unsigned index)
{
    size_t n_options = 0;
    while (pool->options[n_options]) {
        n_options++;
    }
    char **argv = mpb_calloc(32 + 2 * n_options, sizeof(char *));
    size_t n = 0;
    argv[n++] = mpb_strdup(exe);
    argv[n++] = mpb_asprintf("--plugin=%s", pool->plugin_path ? pool->plugin_path : pool->plugin);
    argv[n++] = mpb_asprintf("--connect=%s", pool->endpoint);
    argv[n++] = mpb_asprintf("--name=%s-%u", pool->base.name, index);
    argv[n++] = mpb_asprintf("--index=%u", index);
    argv[n++] = mpb_strdup("--launched"); /* every setting is on this command line */
    argv[n++] = mpb_asprintf("--parent-pid=%d", (int)getpid());
    argv[n++] = mpb_asprintf("--max-item-bytes=%zu", pool->max_item_bytes);
    if (pool->isolate_bisect) {
        argv[n++] = mpb_strdup("--isolate=bisect");
    }
    if (pool->cpu_lists[index] != NULL) {
        argv[n++] = mpb_asprintf("--cpus=%s", pool->cpu_lists[index]);
    }
    if (pool->batch_size >= 0) {
        argv[n++] = mpb_asprintf("--batch-size=%lld", pool->batch_size);
    }
    if (pool->batch_wait_us == MPB_BATCH_WAIT_AUTO) {
        argv[n++] = mpb_strdup("--batch-wait-us=auto");
    } else if (pool->batch_wait_us >= 0) {
        argv[n++] = mpb_asprintf("--batch-wait-us=%lld", pool->batch_wait_us);
    }
    if (pool->capacity > 0) {
        argv[n++] = mpb_asprintf("--capacity=%u", pool->capacity);
    }
    if (mpb__pool_uses_curve(pool)) { /* the coordinator's own key: its ZAP handler knows it */
        argv[n++] = mpb_asprintf("--curve-server-key=%s", pool->env.curve_key_file);
        argv[n++] = mpb_asprintf("--curve-key=%s", pool->env.curve_key_file);
    }
    if (pool->rings != NULL) { /* the launcher hands the rings over as fds 3 and 4 */
        argv[n++] = mpb_strdup("--items-shm-fd=3");
        argv[n++] = mpb_asprintf("--items-shm-bytes=%zu", pool->rings[index].size);
        argv[n++] = mpb_strdup("--values-shm-fd=4");
        argv[n++] = mpb_asprintf("--values-shm-bytes=%zu", pool->vrings[index].size);
    }
    if (pool->links != NULL) { /* and the link as fds 5, 6 and 7 */
        argv[n++] = mpb_strdup("--link-fds=5,6,7");
    }
    for (size_t i = 0; i < n_options; i++) {
        argv[n++] = mpb_asprintf("--option=%s", pool->options[i]);
    }
    argv[n] = NULL;
    return argv;
}

static void
free_argv(char **argv)
{
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) {
        free(argv[i]);
    }
    free(argv);
}

static int
process_launch(mpb__pool *pool, unsigned index, char *err, size_t err_len)
{
    process_state *st = pool->launcher_state;
    child *c = &st->children[index];
    char **argv = worker_argv(pool, st->exe, index);
    int fds[5] = {-1, -1, -1, -1, -1};
    size_t n_fds = 0;
    mpb__pool_link *pl = pool->links != NULL ? &pool->links[index] : NULL;
    if (pool->rings != NULL) {
        /* the last worker on them is gone: start afresh, as a new peer */
        mpb__shm_ring_reset(&pool->rings[index]);
        mpb__shm_ring_reset(&pool->vrings[index]);
        mpb__link_reset(pl->link);
        pl->generation++;
        pl->broken = 0;
        fds[0] = pool->rings[index].fd;
        fds[1] = pool->vrings[index].fd;
        mpb__link_fds(pl->link, fds + 2);
        n_fds = 5;
    }
    int rc = mpb__spawn_with_fds(st->exe, argv, fds, n_fds, &c->pid, &c->pidfd, err, err_len);
    free_argv(argv);
    if (rc != 0) {
        return rc;
    }
    if (pl != NULL) {
        pl->pid = c->pid;
        pl->pidfd = c->pidfd;
    }
    c->running = 1;
    if (c->pidfd >= 0) {
        mpb__loop_add_fd(pool->env.loop, c->pidfd, on_pidfd, c);
    } else if (st->poll_timer == 0) {
        st->poll_timer = mpb__loop_add_timer(pool->env.loop, 100, 1, on_poll_timer, pool);
    }
    return 0;
}

static int
process_check_early_exit(mpb__pool *pool, char *err, size_t err_len)
{
    process_state *st = pool->launcher_state;
    for (unsigned i = 0; i < pool->workers; i++) {
        child *c = &st->children[i];
        int status = 0;
        if (c->running && mpb__reap(c->pid, &status) == 1) {
            reaped(c);
            if (c->pidfd >= 0) {
                mpb__loop_remove_fd(pool->env.loop, c->pidfd);
                close(c->pidfd);
                c->pidfd = -1;
            }
            char how[128];
            mpb__describe_exit(status, how, sizeof how);
            return mpb__set_error(err, err_len, MPB_EWORKER_DIED,
                                  "worker %u (pid %d) %s before READY; its log is above", i,
                                  (int)c->pid, how);
        }
    }
    return 0;
}

static int
process_all_gone(mpb__pool *pool)
{
    process_state *st = pool->launcher_state;
    for (unsigned i = 0; st != NULL && i < pool->workers; i++) {
        check_child(&st->children[i]);
        if (st->children[i].running) {
            return 0;
        }
    }
    return 1;
}

static void
process_kill_all(mpb__pool *pool)
{
    process_state *st = pool->launcher_state;
    for (unsigned i = 0; st != NULL && i < pool->workers; i++) {
        child *c = &st->children[i];
        if (!c->running) {
            continue;
        }
        mpb__signal_child(c->pid, c->pidfd, SIGKILL);
        int status;
        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
        }
        reaped(c);
        if (c->pidfd >= 0) {
            mpb__loop_remove_fd(pool->env.loop, c->pidfd);
            close(c->pidfd);
            c->pidfd = -1;
        }
    }
}

static void
process_release(mpb__pool *pool)
{
    process_state *st = pool->launcher_state;
    if (st == NULL) {
        return;
    }
    process_kill_all(pool);
    if (st->poll_timer != 0) {
        mpb__loop_cancel_timer(pool->env.loop, st->poll_timer);
    }
    for (unsigned i = 0; pool->rings != NULL && i < pool->workers; i++) {
        mpb__shm_ring_close(&pool->rings[i]);
        mpb__shm_ring_close(&pool->vrings[i]);
        if (pool->links[i].link != NULL) {
            mpb__loop_remove_fd(pool->env.loop, mpb__link_wake_fd(pool->links[i].link));
            mpb__link_close(&pool->links[i].link);
        }
    }
    free(pool->rings);
    free(pool->vrings);
    free(pool->links);
    pool->rings = NULL;
    pool->vrings = NULL;
    pool->links = NULL;
    free(st->children);
    free(st->exe);
    free(st);
    pool->launcher_state = NULL;
}

static void
process_kill_one(mpb__pool *pool, unsigned index)
{
    process_state *st = pool->launcher_state;
    if (st != NULL && index < pool->workers && st->children[index].running) {
        mpb__signal_child(st->children[index].pid, st->children[index].pidfd, SIGKILL);
    }
}

static const mpb__pool_launcher process_launcher = {
    .kind = "process",
    .default_cpus = "auto",
    .endpoint_scheme = "ipc",
    .prepare = process_prepare,
    .launch = process_launch,
    .check_early_exit = process_check_early_exit,
    .all_gone = process_all_gone,
    .kill_all = process_kill_all,
    .kill_one = process_kill_one,
    .release = process_release,
};

mpb_servlet *
mpb_process_servlet_new(const mpb_pool_config *config)
{
    return mpb__pool_new(config, &process_launcher);
}
