/*
 * DESIGN
 * The ZAP handler (core/zap.h). ZeroMQ asks a context's ZAP handler (a
 * REP socket bound at inproc://zeromq.zap.01 in that context) about every
 * peer that completes a CURVE handshake with a CURVE server socket, before
 * the peer's first message. This one lives in the coordinator's own
 * context and answers on the coordinator's loop: no thread of its own, no
 * process-wide czmq context. czmq's zcertstore holds the folder of allowed
 * certificates (it reloads the folder when it changes).
 *
 * It must be bound before any CURVE server socket of the context is, and
 * closed only after they are: a context without a ZAP handler lets every
 * CURVE client in. Requests left unanswered keep their peers out.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <czmq.h>

#include "core/curve.h"
#include "core/util.h"
#include "core/zap.h"
#include "core/zmq_util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_LOG_PER_SECOND 5

struct mpb__zap {
    void *socket;
    zcertstore_t *certs;
    char own_public[41];
    char **allow;
    size_t n_allow;
    size_t accepted;
    size_t refused;
    int64_t log_second;
    int logged_this_second;
};

static void
parse_allow_list(mpb__zap *zap, const char *list)
{
    if (list == NULL || *list == '\0') {
        return;
    }
    char *copy = mpb_strdup(list);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        zap->allow = mpb_realloc(zap->allow, (zap->n_allow + 1) * sizeof *zap->allow);
        zap->allow[zap->n_allow++] = mpb_strdup(tok);
    }
    free(copy);
}

int
mpb__zap_open(void *zmq_context, const char *clients_dir, const char *allow_list,
              const char *own_public, mpb__zap **out, char *err, size_t err_len)
{
    mpb__czmq_quiet();
    *out = NULL;
    struct stat st;
    if (clients_dir == NULL || stat(clients_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return mpb__set_error(err, err_len, MPB_ENOTDIR,
                              "curve clients folder %s is not a folder (it holds the .pub "
                              "certificates of the workers and clients allowed in)",
                              clients_dir ? clients_dir : "(none)");
    }
    mpb__zap *zap = mpb_calloc(1, sizeof *zap);
    snprintf(zap->own_public, sizeof zap->own_public, "%s", own_public ? own_public : "");
    parse_allow_list(zap, allow_list);
    zap->certs = zcertstore_new(clients_dir);
    zap->socket = zmq_socket(zmq_context, ZMQ_REP);
    if (zap->certs == NULL || zap->socket == NULL) {
        mpb__zap_close(&zap);
        return mpb__set_error(err, err_len, MPB_EIO, "cannot set up the ZAP handler");
    }
    mpb__zmq_set_int(zap->socket, ZMQ_LINGER, 0);
    if (zmq_bind(zap->socket, ZAP_ENDPOINT) != 0) {
        int rc = mpb__zmq_status();
        mpb__set_error(err, err_len, rc, "bind %s: %s", ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
        mpb__zap_close(&zap);
        return rc;
    }
    *out = zap;
    return 0;
}

void *
mpb__zap_socket(mpb__zap *self)
{
    return self->socket;
}

size_t
mpb__zap_accepted(const mpb__zap *self)
{
    return self->accepted;
}

size_t
mpb__zap_refused(const mpb__zap *self)
{
    return self->refused;
}

/* One ZAP request: version, request id, domain, address, routing id,
 * mechanism, then the mechanism's credentials (CURVE: the 32-byte key). */
enum {
    ZAP_VERSION,
    ZAP_REQUEST_ID,
    ZAP_DOMAIN,
    ZAP_ADDRESS,
    ZAP_IDENTITY,
    ZAP_MECHANISM,
    ZAP_CREDENTIAL,
    ZAP_FRAMES
};

typedef struct zap_request {
    zmq_msg_t parts[ZAP_FRAMES];
    size_t n;
    int too_many;
} zap_request;

static int
receive_request(mpb__zap *zap, zap_request *req)
{
    req->n = 0;
    req->too_many = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, zap->socket, req->n == 0 && !req->too_many ? ZMQ_DONTWAIT : 0) <
            0) {
            zmq_msg_close(&part);
            return req->n > 0 ? 0 : -1;
        }
        more = zmq_msg_more(&part);
        if (req->n < ZAP_FRAMES) {
            req->parts[req->n++] = part;
        } else {
            req->too_many = 1;
            zmq_msg_close(&part);
        }
    }
    return 0;
}

static int
part_is(zmq_msg_t *part, const char *text)
{
    size_t len = strlen(text);
    return zmq_msg_size(part) == len && memcmp(zmq_msg_data(part), text, len) == 0;
}

static void
part_text(zmq_msg_t *part, char *out, size_t cap)
{
    size_t len = zmq_msg_size(part) < cap - 1 ? zmq_msg_size(part) : cap - 1;
    memcpy(out, zmq_msg_data(part), len);
    out[len] = '\0';
}

static int
address_allowed(const mpb__zap *zap, const char *address)
{
    if (zap->n_allow == 0) {
        return 1;
    }
    for (size_t i = 0; i < zap->n_allow; i++) {
        if (strcmp(zap->allow[i], address) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Decides one request: 0 with the peer's key text in key_txt, or why not. */
static const char *
decide(mpb__zap *zap, zap_request *req, char key_txt[41], const char *address)
{
    key_txt[0] = '\0';
    if (req->too_many || req->n < ZAP_CREDENTIAL || !part_is(&req->parts[ZAP_VERSION], "1.0")) {
        return "malformed ZAP request";
    }
    if (!part_is(&req->parts[ZAP_MECHANISM], "CURVE") || req->n != ZAP_FRAMES ||
        zmq_msg_size(&req->parts[ZAP_CREDENTIAL]) != 32) {
        return "not a CURVE peer";
    }
    zmq_z85_encode(key_txt, zmq_msg_data(&req->parts[ZAP_CREDENTIAL]), 32);
    if (zap->own_public[0] != '\0' && strcmp(key_txt, zap->own_public) == 0) {
        return NULL; /* the coordinator's own workers, wherever the allow list points */
    }
    if (!address_allowed(zap, address)) {
        return "address not in the allow list";
    }
    if (zcertstore_lookup(zap->certs, key_txt) == NULL) {
        return "public key not in the clients folder";
    }
    return NULL;
}

static void
log_refusal(mpb__zap *zap, const char *address, const char *key_txt, const char *why)
{
    int64_t second = mpb_now_ns() / 1000000000;
    if (second != zap->log_second) {
        zap->log_second = second;
        zap->logged_this_second = 0;
    }
    if (zap->logged_this_second++ < ZAP_LOG_PER_SECOND) {
        mpb_log_warn("curve", "refused a peer from %s (key %s): %s", address,
                     key_txt[0] ? key_txt : "-", why);
    }
}

static void
send_reply(mpb__zap *zap, zmq_msg_t *request_id, const char *status, const char *text,
           const char *user)
{
    zmq_send(zap->socket, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap->socket, zmq_msg_data(request_id), zmq_msg_size(request_id), ZMQ_SNDMORE);
    zmq_send(zap->socket, status, 3, ZMQ_SNDMORE);
    zmq_send(zap->socket, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(zap->socket, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(zap->socket, "", 0, 0);
}

void
mpb__zap_handle(mpb__zap *self)
{
    zap_request req;
    while (receive_request(self, &req) == 0) {
        char address[64] = "?";
        if (req.n > ZAP_ADDRESS) {
            part_text(&req.parts[ZAP_ADDRESS], address, sizeof address);
        }
        char key_txt[41];
        const char *why = decide(self, &req, key_txt, address);
        zmq_msg_t empty;
        zmq_msg_init(&empty);
        zmq_msg_t *request_id = req.n > ZAP_REQUEST_ID ? &req.parts[ZAP_REQUEST_ID] : &empty;
        if (why == NULL) {
            self->accepted++;
            send_reply(self, request_id, "200", "OK", key_txt);
        } else {
            self->refused++;
            log_refusal(self, address, key_txt, why);
            send_reply(self, request_id, "400", why, "");
        }
        zmq_msg_close(&empty);
        for (size_t i = 0; i < req.n; i++) {
            zmq_msg_close(&req.parts[i]);
        }
    }
}

void
mpb__zap_close(mpb__zap **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb__zap *self = *self_p;
    if (self->socket != NULL) {
        zmq_close(self->socket);
    }
    zcertstore_destroy(&self->certs);
    for (size_t i = 0; i < self->n_allow; i++) {
        free(self->allow[i]);
    }
    free(self->allow);
    free(self);
    *self_p = NULL;
}
