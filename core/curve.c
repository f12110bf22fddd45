/*
 * DESIGN
 * CURVE keys and CURVE connections (core/curve.h); the ZAP handler that
 * checks peers is core/zap.c.
 *
 * czmq installs SIGINT/SIGTERM handlers the first time some of its calls
 * run, unless told not to: every czmq use here goes through mpb__czmq_quiet()
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

static pthread_once_t czmq_once = PTHREAD_ONCE_INIT;

static void
quiet_czmq_once(void)
{
    zsys_handler_set(NULL); /* the application keeps its own signal handling */
}

void
mpb__czmq_quiet(void)
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
    mpb__czmq_quiet();
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
    mpb__czmq_quiet();
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
