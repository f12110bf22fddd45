/*
 * DESIGN
 * CURVE keys and the ZAP handler (core/curve.h).
 *
 * ZeroMQ asks a context's ZAP handler (a REP socket bound at
 * inproc://zeromq.zap.01 in that context) about every peer that completes
 * a CURVE handshake with a CURVE server socket, before the peer's first
 * message. Our handler lives in the coordinator's own context and answers
 * on the coordinator's loop: no thread of its own, no process-wide czmq
 * context, no handlers installed behind the application's back. czmq's
 * zcertstore holds the folder of allowed certificates (it reloads the
 * folder when it changes); zcert reads and writes key files.
 *
 * The handler must be bound before any CURVE server socket of the context
 * is: a context without a ZAP handler lets every CURVE client in.
 *
 * czmq installs SIGINT/SIGTERM handlers the first time some of its calls
 * run, unless told not to: every czmq use here goes through quiet_czmq()
 * first, which tells it to leave signals to the application.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "core/curve.h"
#include "core/util.h"
#include "core/zmq_util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_LOG_PER_SECOND 5

static pthread_once_t czmq_once = PTHREAD_ONCE_INIT;

static void
quiet_czmq_once(void)
{
    zsys_handler_set(NULL); /* the application keeps its own signal handling */
}

static void
quiet_czmq(void)
{
    pthread_once(&czmq_once, quiet_czmq_once);
}

static int
file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int
mpb__curve_keygen(const char *name, char *err, size_t err_len)
{
    quiet_czmq();
    char *secret_path = mpb_asprintf("%s.key", name);
    char *public_path = mpb_asprintf("%s.pub", name);
    int rc = 0;
    if (file_exists(secret_path) || file_exists(public_path)) {
        rc = mpb__set_error(err, err_len, MPB_EEXIST,
                            "%s or %s already exists; remove it or choose another name",
                            secret_path, public_path);
        goto out_free;
    }
    zcert_t *cert = zcert_new();
    if (cert == NULL) {
        rc = mpb__set_error(err, err_len, MPB_EIO, "cannot make a key pair (libsodium)");
        goto out_free;
    }
    const char *base = strrchr(name, '/');
    zcert_set_meta(cert, "name", "%s", base != NULL ? base + 1 : name);
    zcert_set_meta(cert, "made-by", "mpb keygen");
    /* The secret file is made 0600 before a key is written into it. */
    int fd = open(secret_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = mpb__set_error(err, err_len, -errno, "%s: %s", secret_path, strerror(errno));
        goto out_destroy;
    }
    close(fd);
    if (zcert_save_secret(cert, secret_path) != 0 || chmod(secret_path, 0600) != 0) {
        rc = mpb__set_error(err, err_len, MPB_EIO, "cannot write %s", secret_path);
        unlink(secret_path);
        goto out_destroy;
    }
    if (zcert_save_public(cert, public_path) != 0) {
        rc = mpb__set_error(err, err_len, MPB_EIO, "cannot write %s", public_path);
        unlink(public_path);
        unlink(secret_path);
        goto out_destroy;
    }
out_destroy:
    zcert_destroy(&cert);
out_free:
    free(secret_path);
    free(public_path);
    return rc;
}

static int
load_cert(const char *path, zcert_t **out, char *err, size_t err_len)
{
    quiet_czmq();
    struct stat st;
    if (path == NULL || *path == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL, "no key file given");
    }
    if (stat(path, &st) != 0) {
        return mpb__set_error(err, err_len, -errno, "key file %s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "key file %s is not a regular file", path);
    }
    *out = zcert_load(path);
    if (*out == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "key file %s is not a certificate (make one with mpb keygen)", path);
    }
    return 0;
}

static int
is_null_key(const char *txt)
{
    return strspn(txt, "0") == 40; /* zcert's text for an absent key */
}

int
mpb__curve_load_secret(const char *path, mpb__curve_keys *out, char *err, size_t err_len)
{
    zcert_t *cert = NULL;
    int rc = load_cert(path, &cert, err, err_len);
    if (rc != 0) {
        return rc;
    }
    struct stat st;
    if (is_null_key(zcert_secret_txt(cert))) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "%s holds no secret key (a .pub file? give the .key file)", path);
    } else if (stat(path, &st) == 0 && (st.st_mode & 077) != 0) {
        rc = mpb__set_error(err, err_len, MPB_EACCES,
                            "secret key file %s may be read by others (mode %03o); "
                            "run chmod 600 %s",
                            path, (unsigned)(st.st_mode & 0777), path);
    } else {
        snprintf(out->public_txt, sizeof out->public_txt, "%s", zcert_public_txt(cert));
        snprintf(out->secret_txt, sizeof out->secret_txt, "%s", zcert_secret_txt(cert));
    }
    zcert_destroy(&cert);
    return rc;
}

int
mpb__curve_load_public(const char *path, char out_txt[41], char *err, size_t err_len)
{
    zcert_t *cert = NULL;
    int rc = load_cert(path, &cert, err, err_len);
    if (rc != 0) {
        return rc;
    }
    snprintf(out_txt, 41, "%s", zcert_public_txt(cert));
    zcert_destroy(&cert);
    return 0;
}

static int
set_text_option(void *socket, int option, const char *text, char *err, size_t err_len)
{
    if (zmq_setsockopt(socket, option, text, 40) != 0) {
        return mpb__set_error(err, err_len, mpb__zmq_status(), "CURVE option: %s",
                              zmq_strerror(zmq_errno()));
    }
    return 0;
}

int
mpb__curve_server_apply(void *socket, const mpb__curve_keys *keys, char *err, size_t err_len)
{
    if (!zmq_has("curve")) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP, "this libzmq was built without CURVE");
    }
    mpb__zmq_set_int(socket, ZMQ_CURVE_SERVER, 1);
    zmq_setsockopt(socket, ZMQ_ZAP_DOMAIN, "mpbatch", 7);
    return set_text_option(socket, ZMQ_CURVE_SECRETKEY, keys->secret_txt, err, err_len);
}

int
mpb__curve_client_apply(void *socket, const char *server_key_file, const char *key_file, char *err,
                        size_t err_len)
{
    if (!zmq_has("curve")) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP, "this libzmq was built without CURVE");
    }
    if (server_key_file == NULL || key_file == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "CURVE needs both the server's key file and this side's own");
    }
    char server_public[41];
    mpb__curve_keys own;
    int rc = mpb__curve_load_public(server_key_file, server_public, err, err_len);
    if (rc == 0) {
        rc = mpb__curve_load_secret(key_file, &own, err, err_len);
    }
    if (rc == 0) {
        rc = set_text_option(socket, ZMQ_CURVE_SERVERKEY, server_public, err, err_len);
    }
    if (rc == 0) {
        rc = set_text_option(socket, ZMQ_CURVE_PUBLICKEY, own.public_txt, err, err_len);
    }
    if (rc == 0) {
        rc = set_text_option(socket, ZMQ_CURVE_SECRETKEY, own.secret_txt, err, err_len);
    }
    explicit_bzero(&own, sizeof own);
    return rc;
}

int
mpb__endpoint_is_remote_tcp(const char *endpoint)
{
    if (endpoint == NULL || strncmp(endpoint, "tcp://", 6) != 0) {
        return 0;
    }
    const char *host = endpoint + 6;
    const char *semi = strchr(host, ';'); /* tcp://source;dest: the address we bind is dest */
    if (semi != NULL) {
        host = semi + 1;
    }
    char name[256];
    size_t len;
    if (*host == '[') { /* [::1]:5555 */
        const char *close = strchr(host, ']');
        len = close != NULL ? (size_t)(close - host - 1) : 0;
        host++;
    } else {
        const char *colon = strrchr(host, ':');
        len = colon != NULL ? (size_t)(colon - host) : strlen(host);
    }
    if (len == 0 || len >= sizeof name) {
        return 1;
    }
    memcpy(name, host, len);
    name[len] = '\0';
    if (strcasecmp(name, "localhost") == 0 || strcmp(name, "::1") == 0) {
        return 0;
    }
    struct in_addr addr;
    if (inet_pton(AF_INET, name, &addr) == 1) {
        return (ntohl(addr.s_addr) >> 24) != 127;
    }
    struct in6_addr addr6;
    if (inet_pton(AF_INET6, name, &addr6) == 1) {
        int mapped_loopback = IN6_IS_ADDR_V4MAPPED(&addr6) && addr6.s6_addr[12] == 127;
        return !IN6_IS_ADDR_LOOPBACK(&addr6) && !mapped_loopback;
    }
    return 1; /* a wildcard, an interface name, any other host */
}

/* ---- A client's connection ---- */

/* One event from a socket monitor: 0 with *event and *value, or -1 when
 * none came within timeout_ms. */
static int
read_monitor_event(void *monitor, int timeout_ms, uint16_t *event, uint32_t *value)
{
    zmq_pollitem_t item = {.socket = monitor, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, timeout_ms) <= 0) {
        return -1;
    }
    zmq_msg_t head;
    zmq_msg_init(&head);
    int got = zmq_msg_recv(&head, monitor, 0);
    if (got == 6) {
        memcpy(event, zmq_msg_data(&head), 2);
        memcpy(value, (const char *)zmq_msg_data(&head) + 2, 4);
    }
    int more = zmq_msg_more(&head);
    zmq_msg_close(&head);
    while (more) { /* the endpoint */
        zmq_msg_t part;
        zmq_msg_init(&part);
        zmq_msg_recv(&part, monitor, 0);
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
    return got == 6 ? 0 : -1;
}

typedef struct handshake {
    const char *endpoint;
    const char *server_key_file;
    const char *key_file;
    int64_t timeout_ms;
    const atomic_int *cancel;
} handshake;

static int
await_handshake(const handshake *h, void *monitor, char *err, size_t err_len)
{
    int64_t deadline = mpb_now_ns() + h->timeout_ms * 1000000;
    for (;;) {
        int64_t left_ms = h->timeout_ms < 0 ? 1000 : (deadline - mpb_now_ns()) / 1000000;
        if (h->timeout_ms >= 0 && left_ms <= 0) {
            return mpb__set_error(err, err_len, MPB_ETIMEDOUT,
                                  "no CURVE handshake with %s within %lld ms: is the "
                                  "coordinator up, and is %s its certificate?",
                                  h->endpoint, (long long)h->timeout_ms, h->server_key_file);
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (read_monitor_event(monitor, (int)(left_ms < 1000 ? left_ms : 1000), &event, &value) !=
            0) {
            if (h->cancel != NULL && atomic_load(h->cancel)) {
                return MPB_ECANCELED;
            }
            continue;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            return 0;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            return mpb__set_error(err, err_len, MPB_EACCES,
                                  "the server at %s refused this key (ZAP status %u): the public "
                                  "certificate of %s must be in its curve clients folder (and "
                                  "this host in its allow list, if it has one)",
                                  h->endpoint, (unsigned)value, h->key_file);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            return mpb__set_error(err, err_len, MPB_EPROTO,
                                  "CURVE handshake with %s failed: does the server use CURVE, "
                                  "and is %s its certificate?",
                                  h->endpoint, h->server_key_file);
        }
    }
}

int
mpb__curve_connect(void *context, void *socket, const char *endpoint, const char *server_key_file,
                   const char *key_file, int64_t timeout_ms, const atomic_int *cancel, char *err,
                   size_t err_len)
{
    void *monitor = NULL;
    char monitor_endpoint[64];
    if (key_file != NULL || server_key_file != NULL) {
        int rc = mpb__curve_client_apply(socket, server_key_file, key_file, err, err_len);
        if (rc != 0) {
            return rc;
        }
        snprintf(monitor_endpoint, sizeof monitor_endpoint, "inproc://mpb-handshake-%p", socket);
        if (zmq_socket_monitor(socket, monitor_endpoint,
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
            monitor = zmq_socket(context, ZMQ_PAIR);
            if (monitor != NULL && zmq_connect(monitor, monitor_endpoint) != 0) {
                zmq_close(monitor);
                monitor = NULL;
            }
        }
    }
    int rc = 0;
    if (zmq_connect(socket, endpoint) != 0) {
        rc = mpb__set_error(err, err_len, mpb__zmq_status(), "connect %s: %s", endpoint,
                            zmq_strerror(zmq_errno()));
    } else if (monitor != NULL) {
        handshake h = {endpoint, server_key_file, key_file, timeout_ms, cancel};
        rc = await_handshake(&h, monitor, err, err_len);
    }
    if (key_file != NULL || server_key_file != NULL) {
        zmq_socket_monitor(socket, NULL, 0);
    }
    if (monitor != NULL) {
        zmq_close(monitor);
    }
    return rc;
}

/* ---- The ZAP handler ---- */

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
    quiet_czmq();
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
