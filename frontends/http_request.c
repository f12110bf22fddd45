/*
 * An HTTP request's life in the front end: made when its headers arrive,
 * its body gathered (up to max_message_bytes), answered with JSON, freed
 * when both libmicrohttpd and its jobs are done with it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "frontends/http_int.h"

enum MHD_Result
mpb__http_respond_text(struct MHD_Connection *conn, unsigned status, char *text,
                       const char *content_type)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    enum MHD_Result rc = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return rc;
}

enum MHD_Result
mpb__http_respond(struct MHD_Connection *conn, unsigned status, char *json)
{
    return mpb__http_respond_text(conn, status, json != NULL ? json : mpb_strdup("{}"),
                                  "application/json");
}

enum MHD_Result
mpb__http_respond_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
{
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return mpb__http_respond(conn, status, mpb__kserve_error_json(message));
}

void
mpb__http_request_free(http_request *rq)
{
    http_frontend *fe = rq->fe;
    if (rq->prev != NULL) {
        rq->prev->next = rq->next;
    } else {
        fe->requests = rq->next;
    }
    if (rq->next != NULL) {
        rq->next->prev = rq->prev;
    }
    for (size_t i = 0; rq->results != NULL && i < rq->n_items; i++) {
        mpb_result_destroy(&rq->results[i]);
    }
    free(rq->results);
    mpb__kserve_request_destroy(&rq->parsed);
    free(rq->response);
    free(rq->body);
    free(rq->model);
    free(rq);
}

http_request *
mpb__http_request_new(http_frontend *fe, struct MHD_Connection *conn)
{
    http_request *rq = mpb_calloc(1, sizeof *rq);
    rq->fe = fe;
    rq->conn = conn;
    rq->next = fe->requests;
    if (fe->requests != NULL) {
        fe->requests->prev = rq;
    }
    fe->requests = rq;
    return rq;
}

void
mpb__http_request_append(http_request *rq, const char *data, size_t len)
{
    if (rq->too_large || rq->len + len > rq->fe->max_message_bytes) {
        rq->too_large = 1;
        return;
    }
    if (rq->len + len + 1 > rq->cap) {
        rq->cap = (rq->len + len + 1) * 2;
        rq->body = mpb_realloc(rq->body, rq->cap);
    }
    memcpy(rq->body + rq->len, data, len);
    rq->len += len;
    rq->body[rq->len] = '\0';
}
