/*
 * Internals of the HTTP front end: http_frontend.c (the daemon in the
 * loop) uses http_routes.c (what each endpoint answers); both use
 * http_request.c (a request's life and JSON answers). Threading: the dispatcher thread only. Ownership: the front
 * end owns its requests; a request owns its body, parse and results.
 */
#ifndef MPB_FRONTENDS_HTTP_INT_H
#define MPB_FRONTENDS_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "frontends/kserve.h"
#include "servlets/server_int.h"

typedef struct http_request http_request;

typedef struct http_frontend {
    mpb__frontend base;
    mpb__waker waker; /* runs MHD at the end of a round that made answers */
    int run_armed;
    mpb_server *server;
    struct MHD_Daemon *daemon;
    int epoll_fd;
    uint64_t tick;
    char *address;
    size_t max_message_bytes;
    int closing;
    int metrics_only; /* mpb_server_serve_metrics: GET /metrics and nothing else */
    char *token;      /* the bearer token every request must carry, or NULL */
    http_request *requests; /* every request MHD or a job still holds */
} http_frontend;

struct http_request {
    http_frontend *fe;
    struct MHD_Connection *conn; /* NULL once MHD is done with it */
    http_request *prev;
    http_request *next;
    char *body;
    size_t len;
    size_t cap;
    int too_large;
    int unauthorized; /* no valid bearer token: the body is not kept, the answer is 401 */
    /* an infer in progress */
    mpb__kserve_request *parsed;
    mpb_servlet *target;
    char *model;
    size_t n_items;
    size_t pending; /* items not yet answered */
    mpb_result **results;
    int submitting; /* items are still going in: results are only filed */
    int orphaned;   /* the client went away: the last result frees the request */
    unsigned status;
    char *response; /* the answer, waiting for the connection to resume */
};

/* A request for conn, on the front end's list (http_request.c). */
http_request *mpb__http_request_new(http_frontend *fe, struct MHD_Connection *conn);
/* Adds body bytes; past max_message_bytes the request is marked too large. */
void mpb__http_request_append(http_request *rq, const char *data, size_t len);
/* Frees a request and takes it off the front end's list. */
void mpb__http_request_free(http_request *rq);

/* Queues a JSON answer (json is consumed; NULL sends {}). */
enum MHD_Result mpb__http_respond(struct MHD_Connection *conn, unsigned status, char *json);
/* Queues a text answer of content_type (text is consumed). */
enum MHD_Result mpb__http_respond_text(struct MHD_Connection *conn, unsigned status, char *text,
                                       const char *content_type);
enum MHD_Result mpb__http_respond_error(struct MHD_Connection *conn, unsigned status,
                                        const char *fmt, ...) MPB_PRINTF(3, 4);

/* Runs MHD at the end of this dispatcher round (once however often asked):
 * the waker, http_frontend.c's, runs MHD until it has nothing ready now. */
static inline void
mpb__http_run_soon(http_frontend *fe)
{
    if (!fe->run_armed) {
        fe->run_armed = 1;
        mpb__server_defer_wake(fe->server, &fe->waker);
    }
}

/* Answers a complete request (dispatcher thread, inside MHD's callback). */
enum MHD_Result mpb__http_route(http_frontend *fe, http_request *rq, const char *url,
                                const char *method);

#endif
