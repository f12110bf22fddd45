/*
 * The REST store's test server (rest_test_server.h): the daemon, request
 * dispatch, injected faults, error answers and the artifact proxy. The
 * tracking endpoints are in rest_test_server_routes.c.
 *
 * DESIGN
 * Who runs where: libmicrohttpd's listening thread and one thread per
 *   connection; every request runs its route on its connection's thread
 *   against one mpb_store (the SQLite store serialises calls itself).
 * What flows: HTTP/1.1 on 127.0.0.1; request bodies are gathered whole
 *   before the route runs.
 * On failure: a route's MPB_E* status becomes MLflow's error JSON and status
 *   (RESOURCE_DOES_NOT_EXIST 404, RESOURCE_ALREADY_EXISTS 400,
 *   INVALID_PARAMETER_VALUE 400, INTERNAL_ERROR 500).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/fs_util.h"
#include "tracking/rest_test_server.h"
#include "tracking/reststore_int.h"

#define FLASK_404                                                                                  \
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The "   \
    "requested URL was not found on the server. If you entered the URL manually please check "     \
    "your spelling and try again.</p>\n"

typedef struct pending {
    char *data;
    size_t len;
    int started;
} pending;

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type, const char *body, size_t len,
      const char *retry_after)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(response, "Content-Type", type);
    if (retry_after != NULL && *retry_after != '\0') {
        MHD_add_response_header(response, "Retry-After", retry_after);
    }
    enum MHD_Result result = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result
reply_json(struct MHD_Connection *conn, unsigned status, cJSON *json, const char *retry_after)
{
    char *text = cJSON_PrintUnformatted(json);
    enum MHD_Result result =
        reply(conn, status, "application/json", text, strlen(text), retry_after);
    cJSON_free(text);
    return result;
}

static enum MHD_Result
reply_error(struct MHD_Connection *conn, unsigned status, const char *code, const char *message,
            const char *retry_after)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "error_code", code);
    cJSON_AddStringToObject(json, "message", message);
    enum MHD_Result result = reply_json(conn, status, json, retry_after);
    cJSON_Delete(json);
    return result;
}

static enum MHD_Result
reply_status(rest_server *s, struct MHD_Connection *conn, int rc, const char *err)
{
    if (rc == MPB_ENOTFOUND) {
        return reply_error(conn, 404, "RESOURCE_DOES_NOT_EXIST", err, NULL);
    }
    if (rc == MPB_EEXIST) {
        return reply_error(conn, 400, "RESOURCE_ALREADY_EXISTS", err, NULL);
    }
    if (rc == MPB_EINVAL) {
        pthread_mutex_lock(&s->lock);
        int status = s->param_change_status;
        pthread_mutex_unlock(&s->lock);
        if (status == 500 && strstr(err, "Changing param values is not allowed") != NULL) {
            return reply_error(conn, 500, "INTERNAL_ERROR", err, NULL); /* FileStore */
        }
        return reply_error(conn, 400, "INVALID_PARAMETER_VALUE", err, NULL);
    }
    return reply_error(conn, 500, "INTERNAL_ERROR", err, NULL);
}

const char *
rts_field(rts_request *r, const char *name)
{
    if (r->is_post) {
        return mpb__rest_json_str(r->body, name);
    }
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- Records and faults ---- */

static void
count_request(rest_server *s, const char *endpoint, struct MHD_Connection *conn, const char *body,
              int *out_fail, int *out_delay_ms, char *retry_after)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&s->lock);
    s->total++;
    for (int i = 0; i < RTS_MAX_ENDPOINTS; i++) {
        if (s->endpoints[i] == NULL) {
            s->endpoints[i] = mpb_strdup(endpoint);
        }
        if (strcmp(s->endpoints[i], endpoint) == 0) {
            s->counts[i]++;
            break;
        }
    }
    free(s->last_authorization);
    s->last_authorization = mpb_strdup(auth != NULL ? auth : "");
    if (strcmp(endpoint, "runs/log-batch") == 0) {
        s->batch_bodies =
            mpb_realloc(s->batch_bodies, (s->n_batch_bodies + 1) * sizeof *s->batch_bodies);
        s->batch_bodies[s->n_batch_bodies++] = mpb_strdup(body != NULL ? body : "");
    }
    *out_delay_ms = s->slow_n > 0 ? s->slow_ms : 0;
    s->slow_n -= s->slow_n > 0;
    *out_fail = s->fail_n > 0 ? s->fail_status : 0;
    s->fail_n -= s->fail_n > 0;
    snprintf(retry_after, 16, "%s", s->retry_after);
    pthread_mutex_unlock(&s->lock);
}

static void
pause_unless_stopping(rest_server *s, int delay_ms)
{
    for (int waited = 0; waited < delay_ms && !__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
         waited += 10) {
        struct timespec step = {0, 10 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
}

static int
authorized(rest_server *s, struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&s->lock);
    int ok = s->require_auth == NULL || (auth != NULL && strcmp(auth, s->require_auth) == 0);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* ---- Artifact proxy ---- */

typedef struct trickle {
    rest_server *server;
    char *data;
    size_t len;
    int gap_ms;
} trickle;

static ssize_t
trickle_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    trickle *t = cls;
    if (pos >= t->len) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    pause_unless_stopping(t->server, t->gap_ms);
    (void)max;
    buf[0] = t->data[pos];
    return 1;
}

static void
trickle_free(void *cls)
{
    trickle *t = cls;
    free(t->data);
    free(t);
}

/* A 200 answer of data (taken) sent a byte per gap_ms: a slow link. */
static enum MHD_Result
reply_trickle(rest_server *s, struct MHD_Connection *conn, char *data, size_t len, int gap_ms)
{
    trickle *t = mpb_calloc(1, sizeof *t);
    *t = (trickle){s, data, len, gap_ms};
    struct MHD_Response *response =
        MHD_create_response_from_callback(len, 1, trickle_read, t, trickle_free);
    MHD_add_response_header(response, "Content-Type", "application/octet-stream");
    enum MHD_Result result = MHD_queue_response(conn, 200, response);
    MHD_destroy_response(response);
    return result;
}

static int
safe_path(const char *path)
{
    return strstr(path, "..") == NULL;
}

static enum MHD_Result
artifacts(rest_server *s, struct MHD_Connection *conn, const char *method, const char *rest,
          const pending *p)
{
    while (*rest == '/') {
        rest++;
    }
    int listing = *rest == '\0';
    const char *rel =
        listing ? MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "path") : rest;
    rel = rel != NULL ? rel : "";
    if (!safe_path(rel)) {
        return reply_error(conn, 400, "INVALID_PARAMETER_VALUE", "Invalid path", NULL);
    }
    char *local = *rel ? mpb__path_join(s->artifacts, rel) : mpb_strdup(s->artifacts);
    enum MHD_Result result;
    if (strcmp(method, "PUT") == 0 && !listing) {
        int rc = mpb__fs_mkdir_parent(local);
        rc =
            rc < 0 ? rc : mpb__fs_write_atomic(s->artifacts, local, p->data ? p->data : "", p->len);
        result = rc < 0 ? reply_error(conn, 500, "INTERNAL_ERROR", "write failed", NULL)
                        : reply(conn, 200, "application/json", "{}", 2, NULL);
    } else if (strcmp(method, "GET") == 0 && listing) {
        char **names = NULL;
        size_t n = 0;
        cJSON *json = cJSON_CreateObject();
        if (mpb__fs_list(local, 0, &names, &n) == 0 && n > 0) {
            cJSON *files = cJSON_AddArrayToObject(json, "files");
            for (size_t i = 0; i < n; i++) {
                char *child = mpb__path_join(local, names[i]);
                struct stat st;
                if (names[i][0] != '.' && stat(child, &st) == 0) {
                    cJSON *file = cJSON_CreateObject();
                    cJSON_AddStringToObject(file, "path", names[i]);
                    cJSON_AddBoolToObject(file, "is_dir", S_ISDIR(st.st_mode));
                    if (!S_ISDIR(st.st_mode)) {
                        mpb__rest_json_add_int64(file, "file_size", (int64_t)st.st_size);
                    }
                    cJSON_AddItemToArray(files, file);
                }
                free(child);
            }
        }
        mpb__fs_names_free(names, n);
        result = reply_json(conn, 200, json, NULL);
        cJSON_Delete(json);
    } else if (strcmp(method, "GET") == 0) {
        char *data = NULL;
        size_t len = 0;
        pthread_mutex_lock(&s->lock);
        int gap_ms = s->trickle_gap_ms;
        pthread_mutex_unlock(&s->lock);
        if (mpb__fs_is_file(local) && mpb__fs_read_file(local, 1 << 30, &data, &len) == 0) {
            result = gap_ms > 0 ? reply_trickle(s, conn, data, len, gap_ms)
                                : reply(conn, 200, "application/octet-stream", data, len, NULL);
            data = gap_ms > 0 ? NULL : data; /* the trickle owns it */
        } else {
            result = reply_error(conn, 404, "RESOURCE_DOES_NOT_EXIST", "No such artifact", NULL);
        }
        free(data);
    } else {
        result = reply(conn, 405, "text/html", "Method Not Allowed", 18, NULL);
    }
    free(local);
    return result;
}

/* ---- Dispatch ---- */

static int
host_allowed(struct MHD_Connection *conn)
{
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    return host != NULL &&
           (strncmp(host, "127.0.0.1", 9) == 0 || strncmp(host, "localhost", 9) == 0);
}

static enum MHD_Result
dispatch(rest_server *s, struct MHD_Connection *conn, const char *url, const char *method,
         const pending *p)
{
    const char *api = NULL;
    if (strncmp(url, MPB__REST_API, strlen(MPB__REST_API)) == 0) {
        api = url + strlen(MPB__REST_API);
    }
    int is_artifacts = strncmp(url, MPB__REST_ARTIFACTS_API, strlen(MPB__REST_ARTIFACTS_API)) == 0;
    int fail = 0;
    int delay_ms = 0;
    char retry_after[16];
    count_request(s,
                  api            ? api
                  : is_artifacts ? "mlflow-artifacts"
                                 : url,
                  conn, p->data, &fail, &delay_ms, retry_after);
    if (!host_allowed(conn)) {
        const char *text = "Invalid Host header - possible DNS rebinding attack detected";
        return reply(conn, 403, "text/plain", text, strlen(text), NULL);
    }
    if (!authorized(s, conn)) {
        const char *text = "You are not authenticated. Please see the documentation.";
        return reply(conn, 401, "text/plain", text, strlen(text), NULL);
    }
    pause_unless_stopping(s, delay_ms);
    if (fail != 0) {
        const char *code = fail == 429   ? "REQUEST_LIMIT_EXCEEDED"
                           : fail == 503 ? "TEMPORARILY_UNAVAILABLE"
                                         : "INTERNAL_ERROR";
        return reply_error(conn, (unsigned)fail, code, "injected failure", retry_after);
    }
    if (is_artifacts) {
        return artifacts(s, conn, method, url + strlen(MPB__REST_ARTIFACTS_API), p);
    }
    rts_route_fn route = api != NULL ? rts_route(method, api) : NULL;
    if (route == NULL) {
        return reply(conn, 404, "text/html; charset=utf-8", FLASK_404, strlen(FLASK_404), NULL);
    }
    rts_request r = {.server = s,
                     .conn = conn,
                     .is_post = strcmp(method, "POST") == 0 || strcmp(method, "DELETE") == 0,
                     .raw_body = p->data};
    if (r.is_post) {
        const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (type == NULL || strncmp(type, "application/json", 16) != 0) {
            return reply_error(conn, 400, "BAD_REQUEST",
                               "Content-Type must be one of ['application/json']", NULL);
        }
        r.body = mpb__rest_json_parse(p->data ? p->data : "{}", p->data ? p->len : 2);
        if (!cJSON_IsObject(r.body)) {
            cJSON_Delete(r.body);
            return reply_error(conn, 400, "MALFORMED_REQUEST", "Malformed JSON body", NULL);
        }
    }
    cJSON *answer = cJSON_CreateObject();
    char err[1024] = "";
    int rc = route(&r, answer, err, sizeof err);
    enum MHD_Result result =
        rc == 0 ? reply_json(conn, 200, answer, NULL) : reply_status(s, conn, rc, err);
    cJSON_Delete(answer);
    cJSON_Delete(r.body);
    return result;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    pending *p = *con_cls;
    if (p == NULL) {
        *con_cls = mpb_calloc(1, sizeof *p);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        p->data = mpb_realloc(p->data, p->len + *upload_size + 1);
        memcpy(p->data + p->len, upload_data, *upload_size);
        p->len += *upload_size;
        p->data[p->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(cls, conn, url, method, p);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    pending *p = *con_cls;
    if (p != NULL) {
        free(p->data);
        free(p);
        *con_cls = NULL;
    }
}

/* ---- Life cycle and knobs ---- */

rest_server *
rest_server_start(const char *dir)
{
    rest_server *s = mpb_calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->param_change_status = 400;
    s->artifacts = mpb__path_join(dir, "mlartifacts");
    char *uri = mpb_asprintf("sqlite:///%s/server.db", dir);
    mpb_store_open_opts opts = {.artifact_root = "mlflow-artifacts:"};
    char err[512] = "";
    if (mpb_store_open_with(uri, &opts, &s->store, err, sizeof err) != 0 ||
        mpb__fs_mkdir_p(s->artifacts) != 0) {
        fprintf(stderr, "rest test server: %s\n", err);
        abort();
    }
    free(uri);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&addr,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        s->daemon != NULL ? MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_LISTEN_FD) : NULL;
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    if (info == NULL || getsockname(info->listen_fd, (struct sockaddr *)&bound, &len) != 0) {
        fprintf(stderr, "rest test server: cannot listen on 127.0.0.1\n");
        abort();
    }
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", (unsigned)ntohs(bound.sin_port));
    return s;
}

void
rest_server_stop(rest_server **server_p)
{
    rest_server *s = *server_p;
    if (s == NULL) {
        return;
    }
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    MHD_stop_daemon(s->daemon);
    mpb_store_destroy(&s->store);
    for (int i = 0; i < RTS_MAX_ENDPOINTS; i++) {
        free(s->endpoints[i]);
    }
    for (size_t i = 0; i < s->n_batch_bodies; i++) {
        free(s->batch_bodies[i]);
    }
    free(s->batch_bodies);
    free(s->last_authorization);
    free(s->require_auth);
    free(s->artifacts);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *server_p = NULL;
}

const char *
rest_server_url(const rest_server *server)
{
    return server->url;
}

void
rest_server_fail_next(rest_server *server, int n, int status, const char *retry_after)
{
    pthread_mutex_lock(&server->lock);
    server->fail_n = n;
    server->fail_status = status;
    snprintf(server->retry_after, sizeof server->retry_after, "%s", retry_after ? retry_after : "");
    pthread_mutex_unlock(&server->lock);
}

void
rest_server_trickle(rest_server *server, int gap_ms)
{
    pthread_mutex_lock(&server->lock);
    server->trickle_gap_ms = gap_ms;
    pthread_mutex_unlock(&server->lock);
}

void
rest_server_slow_next(rest_server *server, int n, int delay_ms)
{
    pthread_mutex_lock(&server->lock);
    server->slow_n = n;
    server->slow_ms = delay_ms;
    pthread_mutex_unlock(&server->lock);
}

void
rest_server_require_auth(rest_server *server, const char *authorization)
{
    pthread_mutex_lock(&server->lock);
    free(server->require_auth);
    server->require_auth = authorization ? mpb_strdup(authorization) : NULL;
    pthread_mutex_unlock(&server->lock);
}

void
rest_server_param_change_status(rest_server *server, int status)
{
    pthread_mutex_lock(&server->lock);
    server->param_change_status = status;
    pthread_mutex_unlock(&server->lock);
}

void
rest_server_history_pages(rest_server *server, int page_size, int stuck)
{
    pthread_mutex_lock(&server->lock);
    server->history_page = page_size;
    server->history_stuck = stuck;
    pthread_mutex_unlock(&server->lock);
}

int
rest_server_requests(rest_server *server, const char *endpoint)
{
    pthread_mutex_lock(&server->lock);
    int n = endpoint == NULL ? server->total : 0;
    for (int i = 0; endpoint != NULL && i < RTS_MAX_ENDPOINTS && server->endpoints[i]; i++) {
        if (strcmp(server->endpoints[i], endpoint) == 0) {
            n = server->counts[i];
        }
    }
    pthread_mutex_unlock(&server->lock);
    return n;
}

char *
rest_server_last_authorization(rest_server *server)
{
    pthread_mutex_lock(&server->lock);
    char *copy = mpb_strdup(server->last_authorization ? server->last_authorization : "");
    pthread_mutex_unlock(&server->lock);
    return copy;
}

size_t
rest_server_log_batch_bodies(rest_server *server, char ***out)
{
    pthread_mutex_lock(&server->lock);
    *out = server->batch_bodies;
    size_t n = server->n_batch_bodies;
    pthread_mutex_unlock(&server->lock);
    return n;
}
