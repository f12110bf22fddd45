/*
 * DESIGN
 * The HTTP front end: libmicrohttpd in external-epoll mode, so the daemon
 * has no thread of its own: its epoll descriptor sits in the dispatcher's
 * loop, and MHD_run runs there when it is readable (and on a slow timer
 * for connection timeouts). Routes follow the Open Inference Protocol v2
 * (docs/http.md): health, metadata, infer; and GET /metrics, Prometheus
 * text (frontends/prometheus.c), alone on an address of its own or beside
 * the others.
 *
 * An infer request is parsed by the codec (frontends/kserve.c), split into
 * one job per item against the server's shared capacity, and its
 * connection is suspended; the last item's result builds the response and
 * resumes it. A client that goes away leaves its record behind until its
 * jobs are answered. A request the server cannot take gets 503; a
 * malformed one 400; one over the size limit 413; items that fail make the
 * whole answer an error naming the first failed item (the protocol has no
 * per-item errors).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <microhttpd.h>

#include "core/util.h"
#include "frontends/http_int.h"
#include "frontends/kserve.h"
#include "mpbatch/error.h"
#include "mpbatch/frontend.h"
#include "mpbatch/log.h"
#include "servlets/server_int.h"

#define DEFAULT_MAX_MESSAGE_BYTES ((size_t)64 << 20)
#define CONNECTION_LIMIT 1024
#define CONNECTION_TIMEOUT_S 60
#define TIMEOUT_TICK_MS 250

/* ---- requests ---- */

/* MHD is done with a request (answered, or its client went away). */
static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    http_request *rq = *con_cls;
    if (rq == NULL) {
        return;
    }
    *con_cls = NULL;
    rq->conn = NULL;
    if (rq->pending > 0) {
        rq->orphaned = 1; /* the last job frees it */
        return;
    }
    mpb__http_request_free(rq);
}

/* 1 when the front end wants no token or the request carries it
 * (compared in constant time). */
static int
authorized(const http_frontend *fe, struct MHD_Connection *conn)
{
    if (fe->token == NULL) {
        return 1;
    }
    const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0) {
        return 0;
    }
    const char *given = header + 7;
    size_t want = strlen(fe->token);
    if (strlen(given) != want) {
        return 0;
    }
    unsigned char diff = 0;
    for (size_t i = 0; i < want; i++) {
        diff |= (unsigned char)(given[i] ^ fe->token[i]);
    }
    return diff == 0;
}

static enum MHD_Result
respond_unauthorized(struct MHD_Connection *conn)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(
        strlen("{\"error\": \"a bearer token is required\"}"),
        (void *)"{\"error\": \"a bearer token is required\"}", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_UNAUTHORIZED, response);
    MHD_destroy_response(response);
    return rc;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_frontend *fe = cls;
    http_request *rq = *con_cls;
    if (rq == NULL) {
        rq = mpb__http_request_new(fe, conn);
        rq->unauthorized = !authorized(fe, conn);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!rq->unauthorized) {
            mpb__http_request_append(rq, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->unauthorized) {
        return respond_unauthorized(conn);
    }
    if (rq->response != NULL) { /* resumed: the items are answered */
        char *body = rq->response;
        rq->response = NULL;
        return mpb__http_respond(conn, rq->status, body);
    }
    if (rq->too_large) {
        return mpb__http_respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                                       "the body is larger than max_message_bytes (%zu)",
                                       fe->max_message_bytes);
    }
    return mpb__http_route(fe, rq, url, method);
}

/* ---- the daemon in the loop ---- */

/* Lets MHD work until it has nothing ready: with edge-triggered epoll it
 * keeps connections whose data it has not finished reading to itself,
 * and says so with a timeout of 0. */
static void
http_run(http_frontend *fe)
{
    MHD_UNSIGNED_LONG_LONG timeout = 1;
    for (int round = 0; round < 64; round++) {
        MHD_run(fe->daemon);
        if (MHD_get_timeout(fe->daemon, &timeout) != MHD_YES || timeout != 0) {
            break;
        }
    }
}

static void
on_epoll(mpb__loop *loop, void *arg)
{
    (void)loop;
    http_run(arg);
}

/* End of the dispatcher round in which answers were made: resumed
 * connections take them now, not at the next tick. */
static void
on_round_end(mpb__waker *waker)
{
    http_frontend *fe = (http_frontend *)((char *)waker - offsetof(http_frontend, waker));
    fe->run_armed = 0;
    if (fe->daemon != NULL) {
        http_run(fe);
    }
}

static void
log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    mpb_log_debug("http", "%s", line);
}

static void
fe_close(mpb__frontend *self)
{
    ((http_frontend *)self)->closing = 1;
}

static int
fe_idle(mpb__frontend *self)
{
    http_frontend *fe = (http_frontend *)self;
    for (http_request *rq = fe->requests; rq != NULL; rq = rq->next) {
        if (rq->pending > 0 || rq->response != NULL) {
            if (rq->response != NULL) {
                http_run(fe); /* let a resumed connection take its answer */
            }
            return 0;
        }
    }
    return 1;
}

static void
fe_stop(mpb__frontend *self)
{
    http_frontend *fe = (http_frontend *)self;
    if (fe->daemon == NULL) {
        return;
    }
    http_run(fe);
    mpb__loop *loop = mpb__server_loop(fe->server);
    mpb__loop_remove_fd(loop, fe->epoll_fd);
    mpb__loop_cancel_timer(loop, fe->tick);
    MHD_stop_daemon(fe->daemon); /* frees its requests through on_completed */
    fe->daemon = NULL;
    while (fe->requests != NULL) { /* orphans whose jobs never ended */
        mpb__http_request_free(fe->requests);
    }
}

static void
fe_destroy(mpb__frontend *self)
{
    http_frontend *fe = (http_frontend *)self;
    free(fe->address);
    if (fe->token != NULL) {
        explicit_bzero(fe->token, strlen(fe->token));
        free(fe->token);
    }
    free(fe);
}

static const mpb__frontend_ops http_frontend_ops = {
    .kind = "http",
    .close = fe_close,
    .idle = fe_idle,
    .stop = fe_stop,
    .destroy = fe_destroy,
};

/* "HOST:PORT" (IPv4, a name that resolves to one, or [IPv6]). */
static int
parse_address(const char *address, struct sockaddr_storage *out, socklen_t *out_len, char *err,
              size_t err_len)
{
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon[1] == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "HTTP address '%s' must be HOST:PORT, e.g. 127.0.0.1:8000", address);
    }
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - address), address);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &found);
    if (rc != 0 || found == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "HTTP address '%s': %s", address,
                              gai_strerror(rc));
    }
    memcpy(out, found->ai_addr, found->ai_addrlen);
    *out_len = found->ai_addrlen;
    freeaddrinfo(found);
    return 0;
}

static int
start_daemon(http_frontend *fe, const struct sockaddr_storage *addr, char *err, size_t err_len)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (addr->ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    fe->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, fe, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, fe, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, fe, MHD_OPTION_END);
    if (fe->daemon == NULL) {
        return mpb__set_error(err, err_len, MPB_EADDRINUSE,
                              "HTTP on %s: cannot listen (address in use, or not local?)",
                              fe->address);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(fe->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    fe->epoll_fd = info->epoll_fd;
    info = MHD_get_daemon_info(fe->daemon, MHD_DAEMON_INFO_BIND_PORT);
    char host[128] = "";
    if (addr->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, host, sizeof host);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, host, sizeof host);
    }
    free(fe->address);
    fe->address =
        mpb_asprintf(addr->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, (unsigned)info->port);
    return 0;
}

static void
on_tick(mpb__loop *loop, void *arg)
{
    (void)loop;
    http_run(arg);
}

typedef struct bind_args {
    http_frontend *fe;
    struct sockaddr_storage addr;
    char *err;
    size_t err_len;
} bind_args;

/* Dispatcher thread: listens and joins the loop. */
static int
bind_here(mpb_server *server, void *arg)
{
    bind_args *a = arg;
    int rc = start_daemon(a->fe, &a->addr, a->err, a->err_len);
    if (rc != 0) {
        return rc;
    }
    mpb__loop *loop = mpb__server_loop(server);
    mpb__loop_add_fd(loop, a->fe->epoll_fd, on_epoll, a->fe);
    a->fe->tick = mpb__loop_add_timer(loop, TIMEOUT_TICK_MS, 1, on_tick, a->fe);
    return 0;
}

/* The first line of a token file only its owner may read. */
static int
read_token(const char *path, char **out, char *err, size_t err_len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return mpb__set_error(err, err_len, -errno, "token file %s: %s", path, strerror(errno));
    }
    if ((st.st_mode & 077) != 0) {
        return mpb__set_error(err, err_len, MPB_EACCES,
                              "token file %s may be read by others (mode %03o); run chmod 600 %s",
                              path, (unsigned)(st.st_mode & 0777), path);
    }
    FILE *f = fopen(path, "re");
    char line[1024] = "";
    if (f == NULL || fgets(line, sizeof line, f) == NULL) {
        if (f != NULL) {
            fclose(f);
        }
        return mpb__set_error(err, err_len, MPB_EINVAL, "token file %s is empty or unreadable",
                              path);
    }
    fclose(f);
    size_t len = strcspn(line, "\r\n");
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')) {
        len--;
    }
    line[len] = '\0';
    int rc = 0;
    if (len < 16) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "token in %s is shorter than 16 characters (try: head -c 32 "
                            "/dev/urandom | base64 > %s)",
                            path, path);
    } else {
        *out = mpb_strdup(line);
    }
    explicit_bzero(line, sizeof line);
    return rc;
}

static int
serve(mpb_server *server, const char *address, const mpb_frontend_options *options,
      int metrics_only, char *bound, size_t bound_len, char *err, size_t err_len)
{
    if (address == NULL || *address == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL, "no HTTP address to listen on");
    }
    bind_args args = {.err = err, .err_len = err_len};
    socklen_t addr_len = 0;
    int rc = parse_address(address, &args.addr, &addr_len, err, err_len);
    if (rc != 0) {
        return rc;
    }
    char *token = NULL;
    if (options != NULL && options->token_file != NULL) {
        rc = read_token(options->token_file, &token, err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    http_frontend *fe = mpb_calloc(1, sizeof *fe);
    fe->token = token;
    fe->base.ops = &http_frontend_ops;
    fe->waker.wake = on_round_end;
    fe->server = server;
    fe->address = mpb_strdup(address);
    fe->metrics_only = metrics_only;
    fe->max_message_bytes = options && options->max_message_bytes ? options->max_message_bytes
                                                                  : DEFAULT_MAX_MESSAGE_BYTES;
    args.fe = fe;
    rc = mpb__server_attach_frontend(server, &fe->base, bind_here, &args, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (bound != NULL && bound_len > 0) {
        snprintf(bound, bound_len, "%s", fe->address);
    }
    return 0;
}

int
mpb_server_serve_http(mpb_server *server, const char *address, const mpb_frontend_options *options,
                      char *bound, size_t bound_len, char *err, size_t err_len)
{
    return serve(server, address, options, 0, bound, bound_len, err, err_len);
}

int
mpb_server_serve_metrics(mpb_server *server, const char *address, char *bound, size_t bound_len,
                         char *err, size_t err_len)
{
    mpb_frontend_options options;
    mpb_frontend_options_init(&options);
    options.max_message_bytes = 64 << 10; /* GETs: no bodies to speak of */
    return serve(server, address, &options, 1, bound, bound_len, err, err_len);
}
