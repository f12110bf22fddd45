/*
 * What each endpoint of the HTTP front end answers (docs/http.md): health,
 * server and model metadata, and infer, whose items run as jobs of the
 * server and whose answer is built when the last one is back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "frontends/http_int.h"
#include "frontends/prometheus.h"
#include "mpbatch/error.h"

#define PLATFORM "mpbatch"

/* ---- infer: the answer ---- */

static unsigned
status_for(const char *type)
{
    if (strcmp(type, "Overloaded") == 0 || strcmp(type, "Unavailable") == 0 ||
        strcmp(type, MPB_ERROR_CANCELLED) == 0) {
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    if (strcmp(type, MPB_ERROR_TIMEOUT) == 0) {
        return MHD_HTTP_GATEWAY_TIMEOUT;
    }
    if (strcmp(type, "ItemTooLarge") == 0) {
        return MHD_HTTP_CONTENT_TOO_LARGE;
    }
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* The first failed item (or member of an item) makes the whole answer an
 * error: the protocol has no place for one item's error. */
static int
error_answer(http_request *rq)
{
    for (size_t i = 0; i < rq->n_items; i++) {
        const mpb_result *r = rq->results[i];
        size_t members = mpb_result_member_count(r);
        for (size_t m = 0; m <= members; m++) {
            const mpb_result *part = m < members ? mpb_result_member(r, m) : r;
            const mpb_item_error *e = mpb_result_error(part);
            if (e == NULL) {
                continue;
            }
            char message[768];
            snprintf(message, sizeof message, "item %zu: %s: %s (servlet %s%s%s)", i, e->type,
                     e->message, e->servlet[0] ? e->servlet : rq->model,
                     e->worker[0] ? ", worker " : "", e->worker);
            rq->status = status_for(e->type);
            rq->response = mpb__kserve_error_json(message);
            return 1;
        }
    }
    return 0;
}

static const char *
output_type(const mpb_tensor_def *declared, const http_request *rq)
{
    if (declared != NULL && declared->name != NULL && declared->datatype != NULL) {
        return declared->datatype;
    }
    return rq->parsed->datatype; /* undeclared: the model answers in the input's type */
}

static size_t
count_declared(const mpb_tensor_def *list)
{
    size_t n = 0;
    while (list != NULL && list[n].name != NULL) {
        n++;
    }
    return n;
}

/* Index of name among the output names, or SIZE_MAX. */
static size_t
output_index(char *const *names, size_t n, const char *name)
{
    for (size_t o = 0; o < n; o++) {
        if (strcmp(names[o], name) == 0) {
            return o;
        }
    }
    return SIZE_MAX;
}

/* Which outputs the request asked for (all when it named none); 0, or an
 * error answer for a name no output has. */
static int
pick_outputs(http_request *rq, char *const *names, size_t n, unsigned char *keep)
{
    memset(keep, rq->parsed->n_outputs == 0, n);
    for (size_t k = 0; k < rq->parsed->n_outputs; k++) {
        size_t o = output_index(names, n, rq->parsed->output_names[k]);
        if (o == SIZE_MAX) {
            char message[512];
            snprintf(message, sizeof message, "outputs[%zu]: %s has no output '%s' (it has %s%s)",
                     k, rq->model, rq->parsed->output_names[k], names[0], n > 1 ? ", ..." : "");
            rq->status = MHD_HTTP_BAD_REQUEST;
            rq->response = mpb__kserve_error_json(message);
            return -1;
        }
        keep[o] = 1;
    }
    return 0;
}

/* The values of output o (member o of array results) for every item. */
static int
gather(http_request *rq, int arrays, size_t n_outputs, size_t o, mpb__kserve_item *items, char *err,
       size_t err_len)
{
    for (size_t i = 0; i < rq->n_items; i++) {
        const mpb_result *r = arrays ? mpb_result_member(rq->results[i], o) : rq->results[i];
        if (r == NULL || mpb_result_is_array(r) ||
            (arrays && mpb_result_member_count(rq->results[i]) != n_outputs) ||
            (!arrays && mpb_result_is_array(rq->results[i]))) {
            snprintf(err, err_len, "item %zu: its result has no tensor form like item 0's", i);
            return -1;
        }
        items[i].data = mpb_result_value(r, &items[i].len);
    }
    return 0;
}

/* Whether the target answers each item with an array (one member per
 * output): its result comes from an ensemble, at the end of a sequential
 * or in a switch's members. Read from the tree, so a request of no items
 * gets the same outputs as one with items. */
static int
answers_in_arrays(const mpb_servlet *s)
{
    for (;;) {
        if (strcmp(s->ops->kind, "ensemble") == 0) {
            return 1;
        }
        if (s->n_members == 0) {
            return 0;
        }
        s = strcmp(s->ops->kind, "sequential") == 0 ? s->members[s->n_members - 1]
                                                    : s->members[0];
    }
}

static void
build_answer(http_request *rq)
{
    if (error_answer(rq)) {
        return;
    }
    const mpb_tensor_def *inputs = NULL;
    const mpb_tensor_def *declared = NULL;
    rq->target->ops->tensors(rq->target, &inputs, &declared);
    int arrays = rq->n_items > 0 ? mpb_result_is_array(rq->results[0])
                                  : answers_in_arrays(rq->target);
    size_t n_outputs = !arrays          ? 1
                       : rq->n_items > 0 ? mpb_result_member_count(rq->results[0])
                                         : count_declared(declared);
    /* declarations describe these outputs only when they count as many */
    if (count_declared(declared) != n_outputs) {
        declared = NULL;
    }
    char **names = mpb_calloc(n_outputs ? n_outputs : 1, sizeof *names);
    for (size_t o = 0; o < n_outputs; o++) {
        names[o] = declared         ? mpb_strdup(declared[o].name)
                   : n_outputs == 1 ? mpb_strdup("output")
                                    : mpb_asprintf("output_%zu", o);
    }
    unsigned char *keep = mpb_calloc(n_outputs ? n_outputs : 1, 1);
    mpb__kserve_output *outs = mpb_calloc(n_outputs ? n_outputs : 1, sizeof *outs);
    mpb__kserve_item *items =
        mpb_calloc(n_outputs * (rq->n_items ? rq->n_items : 1), sizeof *items);
    char err[512] = "";
    size_t n_kept = 0;
    if (pick_outputs(rq, names, n_outputs, keep) == 0) {
        for (size_t o = 0; o < n_outputs && err[0] == '\0'; o++) {
            if (!keep[o]) {
                continue;
            }
            const mpb_tensor_def *decl = declared ? &declared[o] : NULL;
            mpb__kserve_item *values = &items[o * rq->n_items];
            outs[n_kept++] = (mpb__kserve_output){.name = names[o],
                                                  .datatype = output_type(decl, rq),
                                                  .n_items = rq->n_items,
                                                  .items = values,
                                                  .declared = decl};
            gather(rq, arrays, n_outputs, o, values, err, sizeof err);
        }
        char *json = err[0] ? NULL
                            : mpb__kserve_infer_response(rq->model, "1", rq->parsed->id, outs,
                                                         n_kept, err, sizeof err);
        rq->status = json ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR;
        rq->response = json ? json : mpb__kserve_error_json(err);
    }
    for (size_t o = 0; o < n_outputs; o++) {
        free(names[o]);
    }
    free(names);
    free(keep);
    free(items);
    free(outs);
}

static void
item_done(mpb__job *job, mpb_result *result)
{
    http_request *rq = job->ctx;
    rq->results[job->index] = result;
    if (--rq->pending > 0 || rq->submitting) {
        return;
    }
    if (rq->orphaned) {
        mpb__http_request_free(rq);
        return;
    }
    build_answer(rq);
    MHD_resume_connection(rq->conn);
    mpb__http_run_soon(rq->fe);
}

/* ---- infer: the request ---- */

static enum MHD_Result
start_infer(http_frontend *fe, http_request *rq, mpb_servlet *target, const char *model)
{
    char err[512] = "";
    if (fe->closing) {
        return mpb__http_respond_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                       "the server is stopping");
    }
    size_t capacity = fe->server->options.capacity;
    int rc = mpb__kserve_parse_infer(rq->body ? rq->body : "", rq->len, capacity,
                                     fe->max_message_bytes, &rq->parsed, err, sizeof err);
    if (rc != 0) {
        return mpb__http_respond_error(
            rq->conn, rc == MPB_ELIMIT ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST, "%s",
            err);
    }
    size_t n = rq->parsed->n_items;
    if (atomic_load(&fe->server->in_flight) + n > capacity) {
        atomic_fetch_add(&fe->server->rejected, n);
        return mpb__http_respond_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                       "the server is at capacity: %zu items do not fit now", n);
    }
    rq->target = target;
    rq->model = mpb_strdup(model);
    rq->n_items = n;
    rq->pending = n;
    rq->results = mpb_calloc(n ? n : 1, sizeof *rq->results);
    rq->submitting = 1;
    int64_t deadline = rq->parsed->timeout_us ? mpb_now_ns() + rq->parsed->timeout_us * 1000 : 0;
    for (size_t i = 0; i < n; i++) {
        rc = mpb__server_submit_here(fe->server, target, rq->parsed->items[i].data,
                                     rq->parsed->items[i].len, deadline, item_done, rq, i);
        if (rc != 0) {
            rq->results[i] = mpb_result_new_error(rc == MPB_EAGAIN ? "Overloaded" : "Unavailable",
                                                  "the server could not take the item", "", "", 0);
            rq->pending--;
        }
    }
    rq->submitting = 0;
    if (rq->pending == 0) { /* every item answered at once */
        build_answer(rq);
        char *body = rq->response;
        rq->response = NULL;
        return mpb__http_respond(rq->conn, rq->status, body);
    }
    MHD_suspend_connection(rq->conn);
    return MHD_YES;
}

/* ---- routes ---- */

static char *
readiness(int ready, const char *key)
{
    return mpb_asprintf("{\"%s\": %s}", key, ready ? "true" : "false");
}

/* GET, or HEAD (the same answer; the library leaves out the body). */
static int
reads(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static enum MHD_Result
model_route(http_frontend *fe, http_request *rq, const char *rest, const char *method)
{
    char path[512];
    snprintf(path, sizeof path, "%s", rest);
    const char *action = "";
    size_t len = strlen(path);
    if (len > 6 && strcmp(path + len - 6, "/infer") == 0) {
        action = "infer";
        path[len - 6] = '\0';
    } else if (len > 6 && strcmp(path + len - 6, "/ready") == 0) {
        action = "ready";
        path[len - 6] = '\0';
    }
    mpb_servlet *target = path[0] ? mpb__servlet_find(mpb__server_root(fe->server), path) : NULL;
    if (target == NULL) {
        return mpb__http_respond_error(rq->conn, MHD_HTTP_NOT_FOUND,
                                       "no model '%s' (models are servlet paths such as %s)", path,
                                       mpb__server_root(fe->server)->name);
    }
    if (strcmp(action, "infer") == 0) {
        return strcmp(method, "POST") == 0
                   ? start_infer(fe, rq, target, path)
                   : mpb__http_respond_error(rq->conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                             "infer takes POST");
    }
    if (!reads(method)) {
        return mpb__http_respond_error(rq->conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                       "%s: /v2/models/%s%s%s takes GET (POST goes to infer)",
                                       method, path, action[0] ? "/" : "", action);
    }
    if (strcmp(action, "ready") == 0) {
        int ready = !fe->closing && target->ops->ready(target);
        return mpb__http_respond(rq->conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                                 readiness(ready, "ready"));
    }
    const mpb_tensor_def *inputs = NULL;
    const mpb_tensor_def *outputs = NULL;
    target->ops->tensors(target, &inputs, &outputs);
    return mpb__http_respond(rq->conn, MHD_HTTP_OK,
                             mpb__kserve_model_metadata(path, PLATFORM, inputs, outputs));
}

enum MHD_Result
mpb__http_route(http_frontend *fe, http_request *rq, const char *url, const char *method)
{
    int get = reads(method);
    if (strcmp(url, "/metrics") == 0) {
        return get ? mpb__http_respond_text(rq->conn, MHD_HTTP_OK, mpb__prometheus_text(fe->server),
                                            MPB_PROMETHEUS_CONTENT_TYPE)
                   : mpb__http_respond_error(rq->conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                             "/metrics takes GET");
    }
    if (fe->metrics_only) {
        return mpb__http_respond_error(rq->conn, MHD_HTTP_NOT_FOUND,
                                       "no endpoint %s: this address serves GET /metrics only",
                                       url);
    }
    if (strncmp(url, "/v2/models/", 11) == 0) {
        return model_route(fe, rq, url + 11, method);
    }
    int known = strcmp(url, "/v2") == 0 || strcmp(url, "/v2/") == 0 ||
                strcmp(url, "/v2/health/live") == 0 || strcmp(url, "/v2/health/ready") == 0;
    if (known && !get) {
        return mpb__http_respond_error(rq->conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                       "%s %s: takes GET (only infer takes POST)", method, url);
    }
    if (strcmp(url, "/v2") == 0 || strcmp(url, "/v2/") == 0) {
        return mpb__http_respond(rq->conn, MHD_HTTP_OK, mpb__kserve_server_metadata());
    }
    if (strcmp(url, "/v2/health/live") == 0) {
        return mpb__http_respond(rq->conn, MHD_HTTP_OK, readiness(1, "live"));
    }
    if (strcmp(url, "/v2/health/ready") == 0) {
        int ready = !fe->closing && mpb__server_ready(fe->server);
        return mpb__http_respond(rq->conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                                 readiness(ready, "ready"));
    }
    return mpb__http_respond_error(rq->conn, MHD_HTTP_NOT_FOUND,
                                   "no endpoint %s (see docs/http.md: /v2, /v2/health/live, "
                                   "/v2/health/ready, /v2/models/{name}[/ready|/infer], /metrics)",
                                   url);
}
