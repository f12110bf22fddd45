/*
 * mpb-bench-serve: items/s through a server, next to two baselines measured
 * in the same run: the bare model called in-process on batches of the same
 * size (what the framework adds to the model), and raw ZeroMQ ipc round
 * trips through worker processes with the same items per message (what the
 * transport alone costs). Each figure is the median of --repeat runs.
 *
 *   mpb-bench-serve --plugin passthrough --workers 2 --batch-size 64
 *   mpb-bench-serve --plugin mlp --workers 2 --batch-size 1 --items 50000
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "core/batch.h"
#include "core/options.h"
#include "core/plugin.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/server.h"

typedef struct bench_args {
    const char *plugin;
    const char *kind;
    unsigned workers;
    long long batch_size;
    long long wait_us;
    long long items;
    int repeat;
    int dim;
    long long shm_bytes;
    unsigned capacity;
} bench_args;

typedef struct feed {
    long long n;
    long long made;
    float *vector;
    size_t len;
} feed;

static int
feed_next(void *ctx, const void **data, size_t *len)
{
    feed *f = ctx;
    if (f->made == f->n) {
        return 0;
    }
    f->vector[0] = (float)f->made++;
    *data = f->vector;
    *len = f->len;
    return 1;
}

static int
feed_output(void *ctx, uint64_t index, const mpb_result *result)
{
    return mpb_result_is_error(result) ? MPB_EITEM : 0;
}

static int
compare_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof *values, compare_double);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/* "input_dim=N", or NULL for a plugin that declares options without
 * input_dim (it would refuse to start with it). */
static const char *
dim_option(const bench_args *a, char *buf, size_t len)
{
    const mpb__plugin *plugin = NULL;
    if (mpb__plugin_find(a->plugin, &plugin, NULL, 0) == 0 &&
        mpb__plugin_check_option(plugin->def, "input_dim", "1", NULL, 0) != 0) {
        return NULL;
    }
    snprintf(buf, len, "input_dim=%d", a->dim);
    return buf;
}

/* The model alone: the plugin's call() on batches of batch_size, in-process. */
static double
bare_model(const bench_args *a, float *vector, size_t len)
{
    char err[512];
    mpb__plugin *plugin = NULL;
    if (mpb__plugin_load(a->plugin, &plugin, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    mpb_options *options = mpb__options_new();
    char dim[64];
    if (dim_option(a, dim, sizeof dim) != NULL) {
        mpb__options_set_pair(options, dim);
    }
    mpb_worker_info info = {.name = "bare", .batch_size = (unsigned)a->batch_size, .cpus = ""};
    void *state = NULL;
    if (plugin->def->init && plugin->def->init(&info, options, &state, err, sizeof err) != 0) {
        fprintf(stderr, "bench: init: %s\n", err);
        exit(1);
    }
    size_t per_call = a->batch_size > 0 ? (size_t)a->batch_size : 1;
    /* Fresh rows for every call, cycling through 32 MiB, as served items
     * arrive fresh: one batch reused would sit in the cache. */
    size_t batches = (32u << 20) / (per_call * len) + 1;
    unsigned char *rows = mpb_malloc(batches * per_call * len);
    for (size_t i = 0; i < batches * per_call; i++) {
        memcpy(rows + i * len, vector, len);
    }
    mpb_batch batch;
    mpb__batch_init(&batch, 1u << 26);
    int64_t start = mpb_now_ns();
    size_t call = 0;
    for (long long done = 0; done < a->items; done += (long long)per_call, call++) {
        unsigned char *batch_rows = rows + (call % batches) * per_call * len;
        mpb__batch_reset(&batch);
        for (size_t i = 0; i < per_call; i++) {
            mpb__batch_add(&batch, batch_rows + i * len, len);
        }
        plugin->def->call(state, &batch);
        mpb__batch_settle(&batch, 0);
    }
    double seconds = (double)(mpb_now_ns() - start) / 1e9;
    mpb__batch_free(&batch);
    free(rows);
    if (plugin->def->cleanup) {
        plugin->def->cleanup(state);
    }
    mpb__options_destroy(&options);
    mpb__plugin_unload(&plugin);
    return (double)a->items / seconds;
}

/* Raw ZeroMQ: forked echo processes, a window of messages of batch_size
 * items each, no framing beyond concatenated bytes. */
static void
echo_child(const char *endpoint)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(s, endpoint);
    zmq_send(s, "R", 1, 0);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (;;) {
        if (zmq_msg_recv(&msg, s, 0) < 0 || zmq_msg_size(&msg) == 0) {
            break;
        }
        zmq_msg_send(&msg, s, 0);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
}

static double
raw_zmq(const bench_args *a, size_t len)
{
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-bench-%d.ipc", (int)getpid());
    pid_t children[64];
    unsigned n = a->workers < 64 ? a->workers : 64;
    for (unsigned i = 0; i < n; i++) {
        if ((children[i] = fork()) == 0) {
            echo_child(endpoint);
        }
    }
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    zmq_bind(router, endpoint);
    unsigned char ids[64][16];
    size_t id_len[64];
    for (unsigned i = 0; i < n; i++) {
        char hello;
        id_len[i] = (size_t)zmq_recv(router, ids[i], sizeof ids[i], 0);
        zmq_recv(router, &hello, 1, 0);
    }
    size_t per_msg = a->batch_size > 0 ? (size_t)a->batch_size : 1;
    size_t msg_len = per_msg * (len + 8);
    unsigned char *payload = mpb_calloc(1, msg_len);
    long long messages = a->items / (long long)per_msg;
    long long sent = 0;
    long long received = 0;
    int window = 4; /* messages in flight per worker */
    int64_t start = mpb_now_ns();
    for (unsigned i = 0; i < n; i++) {
        for (int w = 0; w < window && sent < messages; w++, sent++) {
            zmq_send(router, ids[i], id_len[i], ZMQ_SNDMORE);
            zmq_send(router, payload, msg_len, 0);
        }
    }
    unsigned char id[16];
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (received < messages) {
        int got = zmq_recv(router, id, sizeof id, 0);
        zmq_msg_recv(&msg, router, 0);
        received++;
        if (sent < messages) {
            zmq_send(router, id, (size_t)got, ZMQ_SNDMORE);
            zmq_send(router, payload, msg_len, 0);
            sent++;
        }
    }
    double seconds = (double)(mpb_now_ns() - start) / 1e9;
    for (unsigned i = 0; i < n; i++) {
        zmq_send(router, ids[i], id_len[i], ZMQ_SNDMORE);
        zmq_send(router, "", 0, 0);
    }
    for (unsigned i = 0; i < n; i++) {
        waitpid(children[i], NULL, 0);
    }
    zmq_msg_close(&msg);
    zmq_close(router);
    zmq_ctx_term(ctx);
    free(payload);
    unlink(endpoint + 6);
    return (double)(messages * (long long)per_msg) / seconds;
}

static double
served(const bench_args *a, float *vector, size_t len, mpb_server_stats *stats)
{
    char dim[64];
    const char *options[] = {dim_option(a, dim, sizeof dim), NULL};
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.plugin = a->plugin;
    cfg.workers = a->workers;
    cfg.batch_size = a->batch_size;
    cfg.batch_wait_us = a->wait_us;
    cfg.cpus = getenv("MPB_BENCH_CPUS");
    cfg.shm_bytes = a->shm_bytes;
    cfg.capacity = a->capacity;
    cfg.options = options;
    mpb_servlet *servlet = strcmp(a->kind, "thread") == 0 ? mpb_thread_servlet_new(&cfg)
                                                          : mpb_process_servlet_new(&cfg);
    mpb_server *server = mpb_server_new(&servlet, NULL);
    char err[512];
    if (mpb_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    feed f = {.n = a->items, .vector = vector, .len = len};
    int64_t start = mpb_now_ns();
    int rc = mpb_server_stream(server, feed_next, feed_output, &f, NULL);
    double seconds = (double)(mpb_now_ns() - start) / 1e9;
    mpb_server_stats_get(server, stats);
    mpb_server_destroy(&server);
    if (rc != 0) {
        fprintf(stderr, "bench: stream failed: %s\n", mpb_strerror(rc));
        exit(1);
    }
    return (double)a->items / seconds;
}

static void
parse(int argc, char **argv, bench_args *a)
{
    static const struct option options[] = {{"plugin", required_argument, NULL, 'p'},
                                            {"kind", required_argument, NULL, 'k'},
                                            {"workers", required_argument, NULL, 'w'},
                                            {"batch-size", required_argument, NULL, 'b'},
                                            {"wait-us", required_argument, NULL, 't'},
                                            {"items", required_argument, NULL, 'n'},
                                            {"repeat", required_argument, NULL, 'r'},
                                            {"dim", required_argument, NULL, 'd'},
                                            {"shm-bytes", required_argument, NULL, 's'},
                                            {"capacity", required_argument, NULL, 'c'},
                                            {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            a->plugin = optarg;
            break;
        case 'k':
            a->kind = optarg;
            break;
        case 'w':
            a->workers = (unsigned)atoi(optarg);
            break;
        case 'b':
            a->batch_size = atoll(optarg);
            break;
        case 't':
            a->wait_us = atoll(optarg);
            break;
        case 'n':
            a->items = atoll(optarg);
            break;
        case 'r':
            a->repeat = atoi(optarg);
            break;
        case 's':
            a->shm_bytes = atoll(optarg);
            break;
        case 'c':
            a->capacity = (unsigned)atoi(optarg);
            break;
        case 'd':
            a->dim = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: mpb-bench-serve [--plugin P] [--kind process|thread] "
                            "[--workers N] [--batch-size N] [--wait-us N] [--items N] "
                            "[--repeat N] [--dim N] [--shm-bytes N] [--capacity N]\n");
            exit(2);
        }
    }
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    bench_args a = {.plugin = "passthrough",
                    .kind = "process",
                    .workers = 2,
                    .batch_size = 64,
                    .wait_us = 2000,
                    .items = 200000,
                    .repeat = 5,
                    .dim = 256,
                    .shm_bytes = -1};
    parse(argc, argv, &a);
    if (a.repeat < 1 || a.repeat > 99 || a.items < 1 || a.workers < 1) {
        fprintf(stderr, "bench: --repeat 1..99, --items and --workers >= 1\n");
        return 2;
    }
    size_t len = (size_t)a.dim * sizeof(float);
    float *vector = mpb_calloc((size_t)a.dim, sizeof(float));
    double bare[99];
    double raw[99];
    double serve[99];
    mpb_server_stats stats;
    for (int r = 0; r < a.repeat; r++) {
        bare[r] = bare_model(&a, vector, len);
        raw[r] = raw_zmq(&a, len);
        serve[r] = served(&a, vector, len, &stats);
        fprintf(stderr, "  run %d: bare %.0f, raw zmq %.0f, served %.0f items/s\n", r + 1, bare[r],
                raw[r], serve[r]);
    }
    double m_bare = median(bare, a.repeat);
    double m_raw = median(raw, a.repeat);
    double m_serve = median(serve, a.repeat);
    printf("plugin=%s kind=%s workers=%u batch_size=%lld wait_us=%lld items=%lld item_bytes=%zu "
           "repeat=%d\n",
           a.plugin, a.kind, a.workers, a.batch_size, a.wait_us, a.items, len, a.repeat);
    printf("  served:               %10.0f items/s (median)\n", m_serve);
    printf("  bare model, 1 thread: %10.0f items/s  served/bare = %.2f (x%u workers ideal)\n",
           m_bare, m_serve / m_bare, a.workers);
    printf("  raw zmq echo:         %10.0f items/s  served/raw  = %.2f\n", m_raw, m_serve / m_raw);
    printf("  last run: %llu batches, mean size %.1f, closed full/timer/drained %llu/%llu/%llu\n",
           (unsigned long long)stats.batches,
           stats.batches ? (double)stats.batched_items / (double)stats.batches : 0.0,
           (unsigned long long)stats.closed_full, (unsigned long long)stats.closed_timer,
           (unsigned long long)stats.closed_drained);
    free(vector);
    return 0;
}
