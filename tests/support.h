/*
 * Helpers shared by the tests: cmocka includes, a server built in one line,
 * and streams over arrays of items.
 */
#ifndef MPB_TESTS_SUPPORT_H
#define MPB_TESTS_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/server.h"
#include "mpbatch/worker.h"

/* In a test_pool, 0 leaves batch_size / batch_wait_us to the plugin's
 * defaults; TP_ZERO asks for an explicit 0; TP_AUTO for batch_wait_us:
 * auto. */
#define TP_ZERO (-2)
#define TP_AUTO (-3)

typedef struct test_pool {
    const char *kind; /* "process" | "thread" */
    const char *plugin;
    const char *name;        /* NULL: the plugin's */
    unsigned workers;        /* 0: one */
    int joined_only;         /* no local workers: only those that join through bind */
    long long batch_size;    /* 0: plugin default; TP_ZERO: call per item */
    long long batch_wait_us; /* 0: plugin default; TP_ZERO: never wait */
    const char *cpus;
    const char *bind;
    const char *options[8];
    int unavailable_timeout_ms; /* 0: the default */
    int batch_timeout_ms;
    unsigned retry;
    const char *isolate;
    size_t max_item_bytes; /* 0: the default */
    mpb_telemetry_fn on_batch;
    void *on_batch_ctx;
    size_t capacity;
} test_pool;

/* A pool servlet as tp describes it (caller owns it). */
static inline mpb_servlet *
test_pool_servlet(const test_pool *tp)
{
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.plugin = tp->plugin;
    cfg.name = tp->name;
    cfg.workers = tp->joined_only ? 0 : tp->workers ? tp->workers : 1;
    cfg.batch_size = tp->batch_size == 0 ? -1 : tp->batch_size == TP_ZERO ? 0 : tp->batch_size;
    cfg.batch_wait_us = tp->batch_wait_us == 0         ? -1
                        : tp->batch_wait_us == TP_ZERO ? 0
                        : tp->batch_wait_us == TP_AUTO ? MPB_BATCH_WAIT_AUTO
                                                       : tp->batch_wait_us;
    cfg.cpus = tp->cpus;
    cfg.bind = tp->bind;
    cfg.options = tp->options[0] ? tp->options : NULL;
    cfg.unavailable_timeout_ms = tp->unavailable_timeout_ms;
    cfg.batch_timeout_ms = tp->batch_timeout_ms;
    cfg.retry = tp->retry;
    cfg.isolate = tp->isolate;
    cfg.max_item_bytes = tp->max_item_bytes;
    return strcmp(tp->kind, "thread") == 0 ? mpb_thread_servlet_new(&cfg)
                                           : mpb_process_servlet_new(&cfg);
}

/* Starts a server over the tree *root_p (consumed); fails the test if it
 * does not start. opts may be NULL. */
static inline mpb_server *
test_server_over(mpb_servlet **root_p, const mpb_server_options *opts)
{
    mpb_server *server = mpb_server_new(root_p, opts);
    char err[512] = "";
    int rc = mpb_server_start(server, err, sizeof err);
    if (rc != 0) {
        fail_msg("server start failed: %s (%s)", err, mpb_err_name(rc));
    }
    return server;
}

/* A test plugin built into the test directory (tests/plugins/NAME.c). */
static inline const char *
test_plugin_path(const char *name)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    const char *build = getenv("MPB_BUILD_DIR");
    snprintf(path, sizeof paths[0], "%s/tests/plugins/mpb_%s.so", build ? build : ".", name);
    return path;
}

/* Runs argv[0] with its standard input and output on pipes (*to_child,
 * *from_child) and its standard error discarded; returns its pid. */
static inline pid_t
spawn_with_pipes(char *const argv[], int *to_child, int *from_child)
{
    int in[2];
    int out[2];
    if (pipe(in) != 0 || pipe(out) != 0) {
        fail_msg("pipe failed");
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        if (freopen("/dev/null", "w", stderr) == NULL) {
            _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *to_child = in[1];
    *from_child = out[0];
    return pid;
}

/* Reads what fd has within timeout_ms into buf (NUL-terminated); the
 * length, or -1 when nothing came in time. */
static inline ssize_t
read_within(int fd, char *buf, size_t size, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1) {
        return -1;
    }
    ssize_t got = read(fd, buf, size - 1);
    buf[got > 0 ? got : 0] = '\0';
    return got;
}

/* Starts a server over one pool; fails the test if it does not start. */
static inline mpb_server *
test_server_start(const test_pool *tp)
{
    mpb_servlet *servlet = test_pool_servlet(tp);
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.on_batch = tp->on_batch;
    opts.on_batch_ctx = tp->on_batch_ctx;
    if (tp->capacity) {
        opts.capacity = tp->capacity;
    }
    return test_server_over(&servlet, &opts);
}

/* A stream over n items "item-<i>" (or fixed 8-byte indices when binary). */
typedef struct index_stream {
    uint64_t n;
    uint64_t next;
    int binary;
    char text[64];
    uint64_t value;
    /* outputs */
    uint64_t outputs;
    uint64_t out_of_order;
    uint64_t wrong_value;
    uint64_t errors;
    mpb_result **keep; /* when non-NULL, results are kept by index */
} index_stream;

static inline int
index_next(void *ctx, const void **data, size_t *len)
{
    index_stream *s = ctx;
    if (s->next >= s->n) {
        return 0;
    }
    if (s->binary) {
        s->value = s->next++;
        *data = &s->value;
        *len = sizeof s->value;
    } else {
        *len =
            (size_t)snprintf(s->text, sizeof s->text, "item-%llu", (unsigned long long)s->next++);
        *data = s->text;
    }
    return 1;
}

static inline int
index_output(void *ctx, uint64_t index, const mpb_result *result)
{
    index_stream *s = ctx;
    if (index != s->outputs) {
        s->out_of_order++;
    }
    s->outputs++;
    if (s->keep != NULL) {
        s->keep[index] = mpb_result_copy(result);
    }
    if (mpb_result_is_error(result)) {
        s->errors++;
        return 0;
    }
    size_t len;
    const void *value = mpb_result_value(result, &len);
    if (s->binary) {
        if (len != sizeof(uint64_t) || memcmp(value, &index, sizeof index) != 0) {
            s->wrong_value++;
        }
    } else {
        char expect[64];
        int n = snprintf(expect, sizeof expect, "item-%llu", (unsigned long long)index);
        if (len != (size_t)n || memcmp(value, expect, len) != 0) {
            s->wrong_value++;
        }
    }
    return 0;
}

#endif
