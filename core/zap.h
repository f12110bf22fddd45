/*
 * The ZAP handler (ZeroMQ's authentication protocol, RFC 27) of a
 * coordinator's context: which CURVE peers may connect (core/zap.c).
 *
 * Threading: a mpb__zap belongs to the thread that runs the loop its
 *   socket is registered in (it may be closed by another once that loop
 *   has stopped). Processes: nothing crosses fork(). Ownership: the
 *   object is the caller's (mpb__zap_close).
 */
#ifndef MPB_CORE_ZAP_H
#define MPB_CORE_ZAP_H

#include <stddef.h>

typedef struct mpb__zap mpb__zap;

/* Binds a ZAP handler in zmq_context: CURVE peers whose public key is in
 * a certificate of clients_dir (read again when the folder changes), or
 * equals own_public (the coordinator's own workers), are accepted;
 * allow_list (NULL or "": any address) is a comma-separated list of IP
 * addresses a peer must come from. Every other peer is refused and logged
 * (at most a few lines a second). */
int mpb__zap_open(void *zmq_context, const char *clients_dir, const char *allow_list,
                  const char *own_public, mpb__zap **out, char *err, size_t err_len);

/* The handler's socket, to register in the owner's loop. */
void *mpb__zap_socket(mpb__zap *self);

/* Answers every request waiting on the socket (never blocks). */
void mpb__zap_handle(mpb__zap *self);

/* Counts of answered requests since open. */
size_t mpb__zap_accepted(const mpb__zap *self);
size_t mpb__zap_refused(const mpb__zap *self);

/* NULL-safe; closes the socket and sets *self_p = NULL. */
void mpb__zap_close(mpb__zap **self_p);

#endif
