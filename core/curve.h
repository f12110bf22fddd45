/*
 * CURVE security for tcp:// endpoints: key files, socket options and
 * connections (the ZAP handler that decides which peers may connect is
 * core/zap.h).
 *
 * Keys live in czmq certificate files (zcert's text format): a secret file
 * (mode 0600) holds a public and a secret key, a public file only the
 * public key. A coordinator's bound sockets are CURVE servers with its
 * secret key; workers and clients are CURVE clients with their own secret
 * file and the coordinator's public (or secret) file. czmq's types stay in
 * core/curve.c.
 *
 * Threading: key loading may be called from any thread. A mpb__zap belongs
 *   to the thread that runs the loop its socket is registered in.
 * Processes: nothing here crosses fork().
 * Ownership: paths and keys are borrowed for the call; mpb__zap_open's
 *   object is the caller's (mpb__zap_close).
 */
#ifndef MPB_CORE_CURVE_H
#define MPB_CORE_CURVE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A key pair as ZeroMQ's Z85 text (40 characters and a NUL). */
typedef struct mpb__curve_keys {
    char public_txt[41];
    char secret_txt[41];
} mpb__curve_keys;

/* Tells czmq, once, to leave signals to the application; every use of
 * czmq goes through it first. */
void mpb__czmq_quiet(void);

/* Writes a new certificate: `<name>.key` (public and secret key, mode
 * 0600) and `<name>.pub` (public key only, to hand to the other side).
 * Refuses to overwrite either file. */
int mpb__curve_keygen(const char *name, char *err, size_t err_len);

/* Loads a secret certificate file. Refuses one that others may read (any
 * group or other permission bit), as ssh does with private keys. */
int mpb__curve_load_secret(const char *path, mpb__curve_keys *out, char *err, size_t err_len);

/* Loads the public key of a certificate file (a public or a secret one). */
int mpb__curve_load_public(const char *path, char out_txt[41], char *err, size_t err_len);

/* Makes socket (not yet bound) a CURVE server with keys; peers are checked
 * by the ZAP handler of the socket's context. */
int mpb__curve_server_apply(void *socket, const mpb__curve_keys *keys, char *err, size_t err_len);

/* Makes socket (not yet connected) a CURVE client: key_file is its own
 * secret certificate, server_key_file the coordinator's certificate. */
int mpb__curve_client_apply(void *socket, const char *server_key_file, const char *key_file,
                            char *err, size_t err_len);

/* Connects socket (of context) to endpoint. With key files (both or
 * neither), as a CURVE client that waits for the handshake's outcome, up
 * to timeout_ms (< 0: until cancel turns nonzero): a refused key or a
 * wrong server certificate is an error that says so. */
int mpb__curve_connect(void *context, void *socket, const char *endpoint,
                       const char *server_key_file, const char *key_file, int64_t timeout_ms,
                       const atomic_int *cancel, char *err, size_t err_len);

/* 1 when endpoint is tcp:// on an address other than loopback (127.0.0.0/8,
 * ::1, localhost). */
int mpb__endpoint_is_remote_tcp(const char *endpoint);

#endif
