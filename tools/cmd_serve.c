/*
 * DESIGN
 * mpb serve --config pipeline.yaml [--bind ENDPOINT] [--http ADDR]: runs
 * the config's servlet tree as a long-lived server with front ends on its
 * dispatcher loop. The main thread only waits for signals (SIGINT and
 * SIGTERM are blocked in every thread and taken with sigtimedwait): the
 * first stops the server on a helper thread (front ends refuse new calls,
 * everything accepted is answered, workers stop) and the tool exits 0; a
 * second one exits at once with status 130 (workers notice their parent
 * is gone and leave).
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/curve.h"
#include "core/util.h"
#include "mpbatch/config.h"
#include "mpbatch/error.h"
#include "mpbatch/frontend.h"
#include "mpbatch/server.h"
#include "mpbatch/tracking.h"
#include "tools/commands.h"
#include "tools/tool_tracking.h"

#define DEFAULT_BIND "tcp://127.0.0.1:5555"

typedef struct serve_args {
    int insecure;
    const char *config_path;
    const char *bind;
    const char *http;
    const char *metrics;
    const char *http_token_file;
    int curve; /* the config has a curve: section */
    size_t max_message_bytes;
    unsigned client_max_in_flight;
} serve_args;

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: mpb serve --config pipeline.yaml [--bind ENDPOINT] [--http HOST:PORT]\n"
            "                 [--http-token-file FILE] [--metrics HOST:PORT]\n"
            "                 [--max-message-bytes N] [--client-max-in-flight N] [--insecure]\n"
            "  Runs the config's servlet tree until SIGINT or SIGTERM, which stop it\n"
            "  gracefully (every accepted call is answered); a second signal exits at once.\n"
            "  --bind      ZeroMQ endpoint for the client protocol (docs/protocol.md);\n"
            "              default: serve.bind of the config, else %s\n"
            "  --http      address for the HTTP/JSON front end (docs/http.md), e.g.\n"
            "              127.0.0.1:8000; default: serve.http of the config, else none\n"
            "  --metrics   address for Prometheus metrics at GET /metrics (docs/metrics.md),\n"
            "              e.g. 127.0.0.1:9464; default: serve.metrics of the config, else\n"
            "              none (the HTTP front end answers /metrics too)\n"
            "  --max-message-bytes     largest request (default 64 MiB)\n"
            "  --client-max-in-flight  calls one client may have pending (default: the\n"
            "                          server's capacity)\n"
            "  --http-token-file FILE  HTTP requests must carry Authorization: Bearer and\n"
            "              the file's first line (default: serve.http_token_file, else none)\n"
            "  --insecure  allow addresses other hosts can reach without authentication.\n"
            "              Without it, a tcp:// endpoint (--bind, a pool's bind:) off\n"
            "              loopback needs the config's curve: section, --http needs a\n"
            "              token file, and --metrics must stay on loopback\n"
            "              (docs/security.md)\n",
            DEFAULT_BIND);
}

static int
parse_size(const char *text, const char *what, size_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] == '\0' || text[0] == '-' || *end != '\0' || v == 0 || v > (1ull << 31)) {
        fprintf(stderr, "mpb serve: %s must be a positive integer (got '%s')\n", what, text);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

static int
parse_args(int argc, char **argv, serve_args *a)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"bind", required_argument, NULL, 'b'},
                                            {"http", required_argument, NULL, 'H'},
                                            {"metrics", required_argument, NULL, 'M'},
                                            {"max-message-bytes", required_argument, NULL, 'm'},
                                            {"client-max-in-flight", required_argument, NULL, 'f'},
                                            {"insecure", no_argument, NULL, 'I'},
                                            {"http-token-file", required_argument, NULL, 'T'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int opt;
    size_t n;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:b:h", options, NULL)) != -1) {
        if (opt == 'c') {
            a->config_path = optarg;
        } else if (opt == 'b') {
            a->bind = optarg;
        } else if (opt == 'H') {
            a->http = optarg;
        } else if (opt == 'M') {
            a->metrics = optarg;
        } else if (opt == 'm') {
            if (parse_size(optarg, "--max-message-bytes", &a->max_message_bytes) != 0) {
                return 2;
            }
        } else if (opt == 'f') {
            if (parse_size(optarg, "--client-max-in-flight", &n) != 0) {
                return 2;
            }
            a->client_max_in_flight = (unsigned)n;
        } else if (opt == 'I') {
            a->insecure = 1;
        } else if (opt == 'T') {
            a->http_token_file = optarg;
        } else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (a->config_path == NULL || optind < argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* 1 for an address other hosts can reach: a ZeroMQ endpoint other than
 * ipc://, inproc:// and tcp:// on loopback (tipc://, ws://... count as
 * reachable), or an HTTP HOST:PORT off loopback. */
static int
reachable_from_others(const char *address)
{
    if (strncmp(address, "ipc://", 6) == 0 || strncmp(address, "inproc://", 9) == 0) {
        return 0;
    }
    if (strncmp(address, "tcp://", 6) == 0) {
        return mpb__endpoint_is_remote_tcp(address);
    }
    if (strstr(address, "://") != NULL) {
        return 1;
    }
    if (address[0] == ':' && strchr(address + 1, ':') == NULL) {
        return 0; /* HTTP ":PORT": no host binds loopback */
    }
    char tcp[512];
    snprintf(tcp, sizeof tcp, "tcp://%s", address);
    return mpb__endpoint_is_remote_tcp(tcp);
}

/* CURVE covers tcp:// only: other network transports stay unauthenticated. */
static int
covered_by_curve(const serve_args *a, const char *endpoint)
{
    return a->curve && strncmp(endpoint, "tcp://", 6) == 0;
}

static int
refuse_exposure(const char *what, const char *address, const char *remedy)
{
    fprintf(stderr,
            "mpb serve: %s %s can be reached from other hosts without authentication: %s, "
            "bind 127.0.0.1 (or ipc://), or pass --insecure to serve it anyway "
            "(docs/security.md)\n",
            what, address, remedy);
    return -1;
}

/* Other hosts reach an endpoint only with authentication, unless asked:
 * ZeroMQ endpoints (the client protocol, pools' bind:) need CURVE, HTTP a
 * bearer token; the metrics address has no authentication at all. */
static int
check_exposure(const serve_args *a, const mpb_config *config)
{
    if (a->insecure) {
        return 0;
    }
    const char *remedy_curve = "add a curve: section to the config";
    if (!covered_by_curve(a, a->bind) && reachable_from_others(a->bind)) {
        return refuse_exposure("--bind", a->bind, remedy_curve);
    }
    for (size_t i = 0; i < mpb_config_count(config); i++) {
        const char *key = mpb_config_key(config, i);
        size_t len = strlen(key);
        const char *value = mpb_config_value(config, i);
        if (strncmp(key, "servlet", 7) == 0 && len >= 5 && strcmp(key + len - 5, ".bind") == 0 &&
            !covered_by_curve(a, value) && reachable_from_others(value)) {
            return refuse_exposure(key, mpb_config_value(config, i), remedy_curve);
        }
    }
    if (a->http != NULL && a->http_token_file == NULL && reachable_from_others(a->http)) {
        return refuse_exposure("--http", a->http, "give --http-token-file");
    }
    if (a->metrics != NULL && reachable_from_others(a->metrics)) {
        return refuse_exposure("--metrics", a->metrics, "put it behind a proxy that checks");
    }
    return 0;
}

/* Settings of the config's serve: section the command line did not give. */
static int
apply_config(serve_args *a, const mpb_config *config)
{
    if (a->bind == NULL) {
        a->bind = mpb_config_get(config, "serve.bind");
    }
    if (a->bind == NULL) {
        a->bind = DEFAULT_BIND;
    }
    if (a->http == NULL) {
        a->http = mpb_config_get(config, "serve.http");
    }
    if (a->metrics == NULL) {
        a->metrics = mpb_config_get(config, "serve.metrics");
    }
    if (a->http_token_file == NULL) {
        a->http_token_file = mpb_config_get(config, "serve.http_token_file");
    }
    const char *secret = mpb_config_get(config, "curve.secret");
    a->curve = secret != NULL && *secret != '\0';
    const char *text = mpb_config_get(config, "serve.max_message_bytes");
    if (a->max_message_bytes == 0 && text != NULL) {
        a->max_message_bytes = (size_t)strtoull(text, NULL, 10);
    }
    text = mpb_config_get(config, "serve.client_max_in_flight");
    if (a->client_max_in_flight == 0 && text != NULL) {
        a->client_max_in_flight = (unsigned)strtoul(text, NULL, 10);
    }
    return 0;
}

typedef struct stopper {
    mpb_server *server;
    atomic_int done;
} stopper;

static void *
stop_server(void *arg)
{
    stopper *s = arg;
    mpb_server_stop(s->server);
    atomic_store(&s->done, 1);
    return NULL;
}

/* Waits for SIGINT or SIGTERM, stops the server, and returns once it has
 * stopped; a second signal ends the process at once. */
static void
wait_for_signals(mpb_server *server, const sigset_t *signals)
{
    int sig;
    while ((sig = sigwaitinfo(signals, NULL)) < 0) {
    }
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    fprintf(stderr,
            "mpb serve: %s: stopping, answering %llu calls in flight (signal again to exit "
            "now)\n",
            strsignal(sig), (unsigned long long)stats.in_flight);
    stopper s = {.server = server};
    pthread_t thread;
    pthread_create(&thread, NULL, stop_server, &s);
    struct timespec tick = {0, 50 * 1000000};
    while (!atomic_load(&s.done)) {
        int again = sigtimedwait(signals, NULL, &tick);
        if (again > 0) {
            fprintf(stderr, "mpb serve: second signal: exiting now\n");
            mpb_emergency_cleanup(); /* ipc files; workers die with this process */
            _exit(128 + again);
        }
    }
    pthread_join(thread, NULL);
}

static int start_frontends(mpb_server *server, const serve_args *a);

typedef struct starter {
    mpb_server *server;
    const serve_args *args;
    atomic_int done;
    int rc;
} starter;

static void *
start_all(void *arg)
{
    starter *s = arg;
    char err[1024];
    s->rc = mpb_server_start(s->server, err, sizeof err);
    if (s->rc != 0) {
        fprintf(stderr, "mpb serve: %s\n", err);
    } else {
        s->rc = start_frontends(s->server, s->args);
    }
    atomic_store(&s->done, 1);
    return NULL;
}

/* Starts the tree and the front ends on a helper thread (a pool may take
 * start_timeout_ms) while this one keeps taking signals: nothing has been
 * accepted yet, so a signal now ends the process at once. */
static int
start_watching_signals(mpb_server *server, const serve_args *a, const sigset_t *signals)
{
    starter s = {.server = server, .args = a};
    pthread_t thread;
    pthread_create(&thread, NULL, start_all, &s);
    struct timespec tick = {0, 50 * 1000000};
    while (!atomic_load(&s.done)) {
        int sig = sigtimedwait(signals, NULL, &tick);
        if (sig > 0) {
            fprintf(stderr, "mpb serve: %s while starting: exiting\n", strsignal(sig));
            mpb_emergency_cleanup();
            _exit(128 + sig);
        }
    }
    pthread_join(thread, NULL);
    return s.rc;
}

static int
start_frontends(mpb_server *server, const serve_args *a)
{
    mpb_frontend_options options;
    mpb_frontend_options_init(&options);
    options.max_message_bytes = a->max_message_bytes;
    options.client_max_in_flight = a->client_max_in_flight;
    options.token_file = a->http_token_file;
    char bound[256];
    char err[512];
    if (mpb_server_serve_zmq(server, a->bind, &options, bound, sizeof bound, err, sizeof err) !=
        0) {
        fprintf(stderr, "mpb serve: %s\n", err);
        return 1;
    }
    fprintf(stderr, "mpb serve: client protocol on %s\n", bound);
    if (a->http != NULL) {
        if (mpb_server_serve_http(server, a->http, &options, bound, sizeof bound, err,
                                  sizeof err) != 0) {
            fprintf(stderr, "mpb serve: %s\n", err);
            return 1;
        }
        fprintf(stderr, "mpb serve: HTTP (Open Inference Protocol v2) on http://%s/v2\n", bound);
    }
    if (a->metrics != NULL) {
        if (mpb_server_serve_metrics(server, a->metrics, bound, sizeof bound, err, sizeof err) !=
            0) {
            fprintf(stderr, "mpb serve: %s\n", err);
            return 1;
        }
        fprintf(stderr, "mpb serve: Prometheus metrics on http://%s/metrics\n", bound);
    }
    return 0;
}

int
mpb_cmd_serve(int argc, char **argv)
{
    serve_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) {
        return rc;
    }
    char err[1024];
    mpb_config *config = NULL;
    if (mpb_config_load(a.config_path, &config, err, sizeof err) != 0) {
        fprintf(stderr, "mpb serve: %s\n", err);
        return 2;
    }
    apply_config(&a, config);
    if (check_exposure(&a, config) != 0 || mpb__tool_resolve_models(config, "mpb serve") != 0) {
        mpb_config_destroy(&config);
        return 2;
    }
    /* Blocked before any thread starts, so every thread inherits the mask
     * and only sigwaitinfo below takes these signals. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    mpb_server_tracker *tracker = NULL;
    mpb_server *server = mpb__tool_server_new(config, "mpb serve", &tracker);
    int status = 1;
    int64_t start_ns = mpb_now_ns();
    if (start_watching_signals(server, &a, &signals) == 0) {
        fprintf(stderr, "mpb serve: ready (%zu workers); SIGINT or SIGTERM stops\n",
                mpb_server_workers(server, NULL, 0));
        wait_for_signals(server, &signals);
        status = 0;
    }
    mpb_server_stop(server);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    fprintf(stderr, "mpb serve: stopped after %llu calls (%llu errors)\n",
            (unsigned long long)stats.completed, (unsigned long long)stats.errors);
    if (tracker != NULL) {
        /* SIGTERM is how a server ends: a graceful stop is FINISHED */
        mpb__tool_tracking_finish(tracker, server, start_ns,
                                  status == 0 ? MPB_RUN_FINISHED : MPB_RUN_FAILED, "mpb serve");
    }
    mpb_server_destroy(&server);
    mpb_config_destroy(&config);
    return status;
}
