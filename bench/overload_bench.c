/*
 * mpb-bench-overload: offers an `mpb serve` far more than it can serve,
 * through both front ends, and prints what it served, what it refused,
 * the offered/servable ratio and the server process's RSS each second.
 *
 *   build/bin/mpb-bench-overload [--seconds N] [--clients N] [--window N]
 *
 * The server (a child process) runs a sleep model of known cost: 2 thread
 * workers, 1 ms per item, so it serves about 2000 items/s, with capacity
 * 256. ZeroMQ clients keep --window calls in flight each (far more than
 * the capacity), and one HTTP client posts infer requests back to back;
 * the server answers what does not fit Overloaded (HTTP 503) at once, and
 * the clients send again. The figure that matters is RSS: flat from the
 * first second to the last while the offered load stays well above 10x
 * what is served.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "mpbatch/client.h"
#include "mpbatch/error.h"

typedef struct shared {
    char endpoint[128];
    int http_port;
    int window;
    atomic_int stop;
    atomic_uint_fast64_t served;
    atomic_uint_fast64_t refused;
    atomic_uint_fast64_t other;
    atomic_uint_fast64_t http_200;
    atomic_uint_fast64_t http_503;
} shared;

static int
next_item(void *ctx, const void **data, size_t *len)
{
    shared *s = ctx;
    if (atomic_load(&s->stop)) {
        return 0;
    }
    *data = "x";
    *len = 1;
    return 1;
}

static int
count_output(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)index;
    shared *s = ctx;
    const mpb_item_error *e = mpb_result_error(result);
    if (e == NULL) {
        atomic_fetch_add(&s->served, 1);
    } else if (strcmp(e->type, "Overloaded") == 0) {
        atomic_fetch_add(&s->refused, 1);
    } else {
        atomic_fetch_add(&s->other, 1);
    }
    return 0;
}

static void *
zmq_client(void *arg)
{
    shared *s = arg;
    mpb_client *client = mpb_client_new();
    char err[256];
    if (mpb_client_connect(client, s->endpoint, err, sizeof err) != 0) {
        fprintf(stderr, "connect: %s\n", err);
        exit(1);
    }
    mpb_client_stream_options opts = {.window = (size_t)s->window, .return_exceptions = 1};
    int rc = mpb_client_stream(client, next_item, count_output, s, &opts);
    if (rc != 0) {
        fprintf(stderr, "stream: %s\n", mpb_strerror(rc));
    }
    mpb_client_destroy(&client);
    return NULL;
}

/* One infer request on its own connection; the HTTP status. */
static int
http_infer(int port)
{
    static const char body[] = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"BYTES\","
                               "\"data\":[\"x\"]}]}";
    char request[512];
    int n = snprintf(request, sizeof request,
                     "POST /v2/models/slow/infer HTTP/1.1\r\nHost: localhost\r\nConnection: "
                     "close\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int status = -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        send(fd, request, (size_t)n, MSG_NOSIGNAL) == n) {
        char reply[1024];
        ssize_t got = recv(fd, reply, sizeof reply - 1, MSG_WAITALL);
        if (got > 12) {
            reply[got] = '\0';
            sscanf(reply, "HTTP/1.1 %d", &status);
        }
    }
    close(fd);
    return status;
}

static void *
http_client(void *arg)
{
    shared *s = arg;
    while (!atomic_load(&s->stop)) {
        int status = http_infer(s->http_port);
        atomic_fetch_add(status == 200 ? &s->http_200 : &s->http_503, 1);
    }
    return NULL;
}

static double
rss_mb_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    char line[256];
    double kb = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtod(line + 6, NULL);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb / 1024;
}

static pid_t
start_server(const char *dir, shared *s)
{
    char config[160];
    snprintf(config, sizeof config, "%s/overload.yaml", dir);
    FILE *f = fopen(config, "w");
    fprintf(f, "servlet: {plugin: sleep, name: slow, kind: thread, workers: 2, batch_size: 1,\n"
               "          options: {batch_cost_us: 1000, item_cost_us: 0}}\n"
               "server: {capacity: 256}\n");
    fclose(f);
    snprintf(s->endpoint, sizeof s->endpoint, "ipc://%s/serve.ipc", dir);
    char http[64];
    s->http_port = 20000 + (int)(getpid() % 20000);
    snprintf(http, sizeof http, "127.0.0.1:%d", s->http_port);
    char exe[512];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[len > 0 ? len : 0] = '\0';
    char *slash = strrchr(exe, '/');
    snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), "mpb");
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (freopen("/dev/null", "w", stderr) == NULL) {
            _exit(126);
        }
        execl(exe, exe, "serve", "--config", config, "--bind", s->endpoint, "--http", http,
              (char *)NULL);
        _exit(127);
    }
    mpb_client *probe = mpb_client_new();
    mpb_client_connect(probe, s->endpoint, NULL, 0);
    mpb_health health = {0};
    for (int i = 0; i < 200 && !health.ready; i++) {
        mpb_client_health(probe, 100, &health);
    }
    mpb_client_destroy(&probe);
    if (!health.ready) {
        fprintf(stderr, "mpb serve did not start\n");
        kill(pid, SIGKILL);
        exit(1);
    }
    return pid;
}

int
main(int argc, char **argv)
{
    int seconds = 30;
    int clients = 4;
    shared s = {.window = 1024};
    static const struct option options[] = {{"seconds", required_argument, NULL, 's'},
                                            {"clients", required_argument, NULL, 'c'},
                                            {"window", required_argument, NULL, 'w'},
                                            {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 's') {
            seconds = atoi(optarg);
        } else if (opt == 'c') {
            clients = atoi(optarg);
        } else if (opt == 'w') {
            s.window = atoi(optarg);
        } else {
            fprintf(stderr, "usage: mpb-bench-overload [--seconds N] [--clients N] [--window N]\n");
            return 2;
        }
    }
    char dir[] = "/tmp/mpb-overload-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        return 1;
    }
    pid_t server = start_server(dir, &s);
    pthread_t threads[33];
    int n_threads = clients < 32 ? clients : 32;
    for (int i = 0; i < n_threads; i++) {
        pthread_create(&threads[i], NULL, zmq_client, &s);
    }
    pthread_create(&threads[n_threads], NULL, http_client, &s);
    printf("%4s %10s %10s %8s %10s %10s %8s\n", "s", "served/s", "refused/s", "ratio", "http 200",
           "http 503", "rss MB");
    double rss_first = 0;
    double rss_max = 0;
    uint64_t last_served = 0;
    uint64_t last_refused = 0;
    double ratios[3600];
    double start = bench_now_s();
    for (int t = 1; t <= seconds && t <= 3600; t++) {
        while (bench_now_s() < start + t) {
            usleep(10000);
        }
        uint64_t served = atomic_load(&s.served) + atomic_load(&s.http_200);
        uint64_t refused = atomic_load(&s.refused) + atomic_load(&s.http_503);
        double served_s = (double)(served - last_served);
        double refused_s = (double)(refused - last_refused);
        ratios[t - 1] = served_s > 0 ? (served_s + refused_s) / served_s : 0;
        double rss = rss_mb_of(server);
        rss_first = t == 1 ? rss : rss_first;
        rss_max = rss > rss_max ? rss : rss_max;
        printf("%4d %10.0f %10.0f %7.1fx %10llu %10llu %8.1f\n", t, served_s, refused_s,
               ratios[t - 1], (unsigned long long)atomic_load(&s.http_200),
               (unsigned long long)atomic_load(&s.http_503), rss);
        fflush(stdout);
        last_served = served;
        last_refused = refused;
    }
    double rss_last = rss_mb_of(server);
    atomic_store(&s.stop, 1);
    for (int i = 0; i <= n_threads; i++) {
        pthread_join(threads[i], NULL);
    }
    kill(server, SIGTERM);
    int status = 0;
    waitpid(server, &status, 0);
    char cleanup[96];
    snprintf(cleanup, sizeof cleanup, "rm -rf %s", dir);
    if (system(cleanup) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    printf("offered/served: median %.1fx; server RSS: %.1f MB after 1 s, %.1f MB at the end, "
           "%.1f MB at most; other errors %llu; mpb serve exit %d\n",
           bench_median(ratios, (size_t)seconds), rss_first, rss_last, rss_max,
           (unsigned long long)atomic_load(&s.other),
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
