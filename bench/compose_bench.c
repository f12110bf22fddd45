/*
 * mpb-bench-compose: what composition and the front end cost, each figure
 * a ratio to a reference measured in the same run, rounds interleaved so
 * drift hits both sides alike (medians over --rounds):
 *
 *   ensemble latency   one call at a time through an ensemble of two process
 *                      pools vs one process pool alone (batch_wait_us 0):
 *                      p50 and p99, ratio of p50s; and the cost of waking a
 *                      process on another core, which only the ensemble pays
 *   sequential stream  items/s streamed through a sequential of two
 *                      passthrough process pools vs one pool
 *   front end          items/s from one pipelining client through the
 *                      ZeroMQ front end (what `mpb serve` runs) vs the same
 *                      servlet streamed in-process
 *   call latency       one call at a time: in-process, through the ZeroMQ
 *                      front end (mpb_client_call), and one-item infer
 *                      requests over a kept-alive HTTP connection
 *
 *   mpb-bench-compose [--rounds 7] [--calls 2000] [--items 200000]
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <sched.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "bench/bench_util.h"
#include "core/util.h"
#include "mpbatch/client.h"
#include "mpbatch/error.h"
#include "mpbatch/frontend.h"
#include "mpbatch/server.h"

typedef struct bench_args {
    int rounds;
    int calls;
    long long items;
} bench_args;

static mpb_servlet *
pool(const char *name, long long batch_size, long long wait_us)
{
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.plugin = "passthrough";
    cfg.name = name;
    cfg.workers = 1;
    cfg.batch_size = batch_size;
    cfg.batch_wait_us = wait_us;
    return mpb_process_servlet_new(&cfg);
}

static mpb_server *
start(mpb_servlet *root)
{
    mpb_server *server = mpb_server_new(&root, NULL);
    char err[512];
    if (mpb_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-bench-compose: %s\n", err);
        exit(1);
    }
    return server;
}

/* p50 and p99 in microseconds of n calls, one at a time. */
static void
call_latency(mpb_server *server, int n, double *p50, double *p99)
{
    double *us = mpb_malloc((size_t)n * sizeof *us);
    char item[16] = "0123456789abcde";
    for (int i = 0; i < n; i++) {
        int64_t start_ns = mpb_now_ns();
        mpb_result *r = NULL;
        if (mpb_server_call(server, item, sizeof item, 5000, &r) != 0) {
            fprintf(stderr, "mpb-bench-compose: a call failed\n");
            exit(1);
        }
        us[i] = (double)(mpb_now_ns() - start_ns) / 1e3;
        mpb_result_destroy(&r);
    }
    *p50 = bench_percentile(us, (size_t)n, 0.5);
    *p99 = bench_percentile(us, (size_t)n, 0.99);
    free(us);
}

typedef struct feed {
    long long n;
    long long made;
    char item[16];
} feed;

static int
feed_next(void *ctx, const void **data, size_t *len)
{
    feed *f = ctx;
    if (f->made == f->n) {
        return 0;
    }
    memcpy(f->item, &f->made, sizeof f->made);
    f->made++;
    *data = f->item;
    *len = sizeof f->item;
    return 1;
}

static int
feed_output(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)ctx;
    (void)index;
    return mpb_result_is_error(result) ? MPB_EITEM : 0;
}

static double
stream_rate(mpb_server *server, long long items)
{
    feed f = {.n = items};
    int64_t start_ns = mpb_now_ns();
    if (mpb_server_stream(server, feed_next, feed_output, &f, NULL) != 0) {
        fprintf(stderr, "mpb-bench-compose: a stream failed\n");
        exit(1);
    }
    return (double)items / ((double)(mpb_now_ns() - start_ns) / 1e9);
}

static double
client_rate(mpb_client *client, long long items)
{
    feed f = {.n = items};
    mpb_client_stream_options opts = {.window = 1024};
    int64_t start_ns = mpb_now_ns();
    if (mpb_client_stream(client, feed_next, feed_output, &f, &opts) != 0) {
        fprintf(stderr, "mpb-bench-compose: a client stream failed\n");
        exit(1);
    }
    return (double)items / ((double)(mpb_now_ns() - start_ns) / 1e9);
}

static void
pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* Round trips of an eventfd ping-pong between two processes pinned to
 * cpus 0 and 1, one at a time with a pause between (as calls come): what
 * waking a sleeping process on another core costs on this machine, twice.
 * p50 in microseconds; 0 with fewer than 2 CPUs. */
static double
cross_core_wake_rtt(int n)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        return 0;
    }
    int ping = eventfd(0, 0);
    int pong = eventfd(0, 0);
    int result[2];
    if (ping < 0 || pong < 0 || pipe(result) != 0) {
        return 0;
    }
    uint64_t one = 1;
    pid_t echo = fork();
    if (echo == 0) {
        pin_to(1);
        for (int i = 0; i < n; i++) {
            if (read(ping, &one, sizeof one) < 0 || write(pong, &one, sizeof one) < 0) {
                break;
            }
        }
        _exit(0);
    }
    pid_t timer = fork();
    if (timer == 0) {
        pin_to(0);
        double *us = mpb_malloc((size_t)n * sizeof *us);
        for (int i = 0; i < n; i++) {
            usleep(50);
            int64_t t0 = mpb_now_ns();
            if (write(ping, &one, sizeof one) < 0 || read(pong, &one, sizeof one) < 0) {
                _exit(1);
            }
            us[i] = (double)(mpb_now_ns() - t0) / 1e3;
        }
        double p50 = bench_percentile(us, (size_t)n, 0.5);
        _exit(write(result[1], &p50, sizeof p50) == sizeof p50 ? 0 : 1);
    }
    double p50 = 0;
    if (read(result[0], &p50, sizeof p50) != sizeof p50) {
        p50 = 0;
    }
    waitpid(timer, NULL, 0);
    waitpid(echo, NULL, 0);
    close(ping);
    close(pong);
    close(result[0]);
    close(result[1]);
    return p50;
}

static void
bench_ensemble(const bench_args *a)
{
    mpb_server *single = start(pool("single", 1, 0));
    mpb_servlet *members[2] = {pool("a", 1, 0), pool("b", 1, 0)};
    mpb_server *ensemble = start(mpb_ensemble_servlet_new(members, 2, NULL));
    double s50[64], s99[64], e50[64], e99[64], ratio[64], wake[64];
    double warm50, warm99;
    call_latency(single, a->calls / 4, &warm50, &warm99);
    call_latency(ensemble, a->calls / 4, &warm50, &warm99);
    for (int r = 0; r < a->rounds; r++) {
        call_latency(single, a->calls, &s50[r], &s99[r]);
        call_latency(ensemble, a->calls, &e50[r], &e99[r]);
        wake[r] = cross_core_wake_rtt(a->calls);
        ratio[r] = e50[r] / s50[r];
    }
    double single50 = bench_percentile(s50, (size_t)a->rounds, 0.5);
    double ensemble50 = bench_percentile(e50, (size_t)a->rounds, 0.5);
    printf("ensemble latency   single pool p50 %.1f us p99 %.1f us | ensemble of two p50 %.1f us "
           "p99 %.1f us | p50 ratio %.2f x (target <= 1.5)\n",
           single50, bench_percentile(s99, (size_t)a->rounds, 0.5), ensemble50,
           bench_percentile(e99, (size_t)a->rounds, 0.5),
           bench_percentile(ratio, (size_t)a->rounds, 0.5));
    /* The two members' workers sit on two cores: an ensemble call wakes a
     * sleeping process on another core at least once, a single pool's call
     * need not (its worker may share the dispatcher's core). */
    printf("                   waking a process on another core and back (eventfd, cpus 0 and 1) "
           "p50 %.1f us: the ensemble's extra %.1f us is %.2f of those\n",
           bench_percentile(wake, (size_t)a->rounds, 0.5), ensemble50 - single50,
           (ensemble50 - single50) / bench_percentile(wake, (size_t)a->rounds, 0.5));
    mpb_server_destroy(&single);
    mpb_server_destroy(&ensemble);
}

static void
bench_sequential(const bench_args *a)
{
    mpb_server *single = start(pool("single", 64, 200));
    mpb_servlet *stages[2] = {pool("first", 64, 200), pool("second", 64, 200)};
    mpb_server *seq = start(mpb_sequential_servlet_new(stages, 2));
    double one[64], two[64], ratio[64];
    stream_rate(single, a->items / 4);
    stream_rate(seq, a->items / 4);
    for (int r = 0; r < a->rounds; r++) {
        one[r] = stream_rate(single, a->items);
        two[r] = stream_rate(seq, a->items);
        ratio[r] = two[r] / one[r];
    }
    printf("sequential stream  one pool %.0f items/s | sequential of two %.0f items/s | ratio "
           "%.2f x (target >= 0.5)\n",
           bench_percentile(one, (size_t)a->rounds, 0.5),
           bench_percentile(two, (size_t)a->rounds, 0.5),
           bench_percentile(ratio, (size_t)a->rounds, 0.5));
    mpb_server_destroy(&single);
    mpb_server_destroy(&seq);
}

static void
bench_frontend(const bench_args *a)
{
    mpb_server *server = start(pool("served", 64, 200));
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-bench-compose-%d.ipc", (int)getpid());
    char err[256];
    if (mpb_server_serve_zmq(server, endpoint, NULL, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-bench-compose: %s\n", err);
        exit(1);
    }
    mpb_client *client = mpb_client_new();
    mpb_client_connect(client, endpoint, err, sizeof err);
    double local[64], remote[64], ratio[64];
    stream_rate(server, a->items / 4);
    client_rate(client, a->items / 4);
    for (int r = 0; r < a->rounds; r++) {
        local[r] = stream_rate(server, a->items);
        remote[r] = client_rate(client, a->items);
        ratio[r] = remote[r] / local[r];
    }
    printf("front end          in-process stream %.0f items/s | one pipelining client over the "
           "ZeroMQ front end %.0f items/s | ratio %.2f x (target >= 0.5)\n",
           bench_percentile(local, (size_t)a->rounds, 0.5),
           bench_percentile(remote, (size_t)a->rounds, 0.5),
           bench_percentile(ratio, (size_t)a->rounds, 0.5));
    mpb_client_destroy(&client);
    mpb_server_destroy(&server);
}

/* One kept-alive HTTP connection to 127.0.0.1:port. */
static int
http_connect(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "mpb-bench-compose: cannot connect to the HTTP front end\n");
        exit(1);
    }
    return fd;
}

/* Sends one request and reads its whole answer (Content-Length). */
static void
http_infer(int fd, const char *request, size_t len)
{
    if (send(fd, request, len, MSG_NOSIGNAL) != (ssize_t)len) {
        fprintf(stderr, "mpb-bench-compose: HTTP send failed\n");
        exit(1);
    }
    char buf[4096];
    size_t got = 0;
    size_t want = SIZE_MAX;
    while (got < want) {
        ssize_t n = recv(fd, buf + got, sizeof buf - got - 1, 0);
        if (n <= 0) {
            fprintf(stderr, "mpb-bench-compose: HTTP answer cut short\n");
            exit(1);
        }
        got += (size_t)n;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *length = strcasestr(buf, "content-length:");
        if (end != NULL && length != NULL) {
            want = (size_t)(end + 4 - buf) + strtoul(length + 15, NULL, 10);
        }
    }
}

static void
http_latency(int fd, int n, double *p50)
{
    const char *body = "{\"inputs\": [{\"name\": \"x\", \"shape\": [1], \"datatype\": "
                       "\"BYTES\", \"data\": [\"0123456789abcdef\"]}]}";
    char *request = mpb_asprintf("POST /v2/models/served/infer HTTP/1.1\r\nHost: bench\r\n"
                                 "Content-Length: %zu\r\n\r\n%s",
                                 strlen(body), body);
    double *us = mpb_malloc((size_t)n * sizeof *us);
    for (int i = 0; i < n; i++) {
        int64_t start_ns = mpb_now_ns();
        http_infer(fd, request, strlen(request));
        us[i] = (double)(mpb_now_ns() - start_ns) / 1e3;
    }
    *p50 = bench_percentile(us, (size_t)n, 0.5);
    free(us);
    free(request);
}

static void
client_latency(mpb_client *client, int n, double *p50)
{
    double *us = mpb_malloc((size_t)n * sizeof *us);
    char item[16] = "0123456789abcde";
    for (int i = 0; i < n; i++) {
        int64_t start_ns = mpb_now_ns();
        mpb_result *r = NULL;
        if (mpb_client_call(client, NULL, item, sizeof item, 5000, &r) != 0) {
            fprintf(stderr, "mpb-bench-compose: a client call failed\n");
            exit(1);
        }
        us[i] = (double)(mpb_now_ns() - start_ns) / 1e3;
        mpb_result_destroy(&r);
    }
    *p50 = bench_percentile(us, (size_t)n, 0.5);
    free(us);
}

/* The raw reference: one 16-byte message at a time echoed by a process
 * over ipc:// (ROUTER here, DEALER there), no framework at all. */
static void
raw_rtt(int n, double *p50, double *p99)
{
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-bench-rtt-%d.ipc", (int)getpid());
    pid_t child = fork();
    if (child == 0) {
        void *ctx = zmq_ctx_new();
        void *s = zmq_socket(ctx, ZMQ_DEALER);
        zmq_connect(s, endpoint);
        zmq_send(s, "R", 1, 0);
        char buf[64];
        int len;
        while ((len = zmq_recv(s, buf, sizeof buf, 0)) > 0) {
            zmq_send(s, buf, (size_t)len, 0);
        }
        zmq_close(s);
        zmq_ctx_term(ctx);
        _exit(0);
    }
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    zmq_bind(router, endpoint);
    unsigned char id[16];
    char buf[64];
    int id_len = zmq_recv(router, id, sizeof id, 0);
    zmq_recv(router, buf, sizeof buf, 0);
    double *us = mpb_malloc((size_t)n * sizeof *us);
    for (int i = 0; i < n; i++) {
        int64_t t0 = mpb_now_ns();
        zmq_send(router, id, (size_t)id_len, ZMQ_SNDMORE);
        zmq_send(router, "0123456789abcdef", 16, 0);
        zmq_recv(router, id, sizeof id, 0);
        zmq_recv(router, buf, sizeof buf, 0);
        us[i] = (double)(mpb_now_ns() - t0) / 1e3;
    }
    zmq_send(router, id, (size_t)id_len, ZMQ_SNDMORE);
    zmq_send(router, "", 0, 0);
    waitpid(child, NULL, 0);
    zmq_close(router);
    zmq_ctx_term(ctx);
    unlink(endpoint + 6);
    *p50 = bench_percentile(us, (size_t)n, 0.5);
    *p99 = bench_percentile(us, (size_t)n, 0.99);
    free(us);
}

static void
bench_call_latency(const bench_args *a)
{
    mpb_server *server = start(pool("served", 1, 0));
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-bench-compose-lat-%d.ipc", (int)getpid());
    char err[256];
    char bound[64];
    if (mpb_server_serve_zmq(server, endpoint, NULL, NULL, 0, err, sizeof err) != 0 ||
        mpb_server_serve_http(server, "127.0.0.1:0", NULL, bound, sizeof bound, err, sizeof err) !=
            0) {
        fprintf(stderr, "mpb-bench-compose: %s\n", err);
        exit(1);
    }
    mpb_client *client = mpb_client_new();
    mpb_client_connect(client, endpoint, err, sizeof err);
    int fd = http_connect(atoi(strrchr(bound, ':') + 1));
    double local[64], local99[64], raw[64], raw99[64], zmq[64], http[64], unused;
    call_latency(server, a->calls / 4, &unused, &unused);
    client_latency(client, a->calls / 4, &unused);
    http_latency(fd, a->calls / 4, &unused);
    for (int r = 0; r < a->rounds; r++) {
        raw_rtt(a->calls, &raw[r], &raw99[r]);
        call_latency(server, a->calls, &local[r], &local99[r]);
        client_latency(client, a->calls, &zmq[r]);
        http_latency(fd, a->calls, &http[r]);
    }
    double l = bench_percentile(local, (size_t)a->rounds, 0.5);
    double l99 = bench_percentile(local99, (size_t)a->rounds, 0.5);
    double rr = bench_percentile(raw, (size_t)a->rounds, 0.5);
    double rr99 = bench_percentile(raw99, (size_t)a->rounds, 0.5);
    double z = bench_percentile(zmq, (size_t)a->rounds, 0.5);
    double h = bench_percentile(http, (size_t)a->rounds, 0.5);
    printf("call latency       raw ZeroMQ ipc round trip p50 %.1f us p99 %.1f us | in-process "
           "call (wait 0) p50 %.1f us (%.2f x raw, target <= 2) p99 %.1f us (%.2f x raw, target "
           "<= 5)\n",
           rr, rr99, l, l / rr, l99, l99 / rr99);
    printf("                   ZeroMQ front end %.1f us (%.2f x the in-process call) | HTTP "
           "infer of one item %.1f us (%.2f x)\n",
           z, z / l, h, h / l);
    close(fd);
    mpb_client_destroy(&client);
    mpb_server_destroy(&server);
}

int
main(int argc, char **argv)
{
    bench_args a = {.rounds = 7, .calls = 2000, .items = 200000};
    static const struct option options[] = {{"rounds", required_argument, NULL, 'r'},
                                            {"calls", required_argument, NULL, 'c'},
                                            {"items", required_argument, NULL, 'n'},
                                            {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'r') {
            a.rounds = atoi(optarg);
        } else if (opt == 'c') {
            a.calls = atoi(optarg);
        } else if (opt == 'n') {
            a.items = atoll(optarg);
        } else {
            fprintf(stderr, "usage: mpb-bench-compose [--rounds N] [--calls N] [--items N]\n");
            return 2;
        }
    }
    if (a.rounds < 1 || a.rounds > 64 || a.calls < 4 || a.items < 4) {
        fprintf(stderr, "mpb-bench-compose: rounds 1..64, calls and items >= 4\n");
        return 2;
    }
    printf("mpb-bench-compose: %d rounds, medians; 16-byte items, passthrough workers\n", a.rounds);
    bench_ensemble(&a);
    bench_sequential(&a);
    bench_frontend(&a);
    bench_call_latency(&a);
    return 0;
}
