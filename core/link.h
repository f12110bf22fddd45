/*
 * A link: the channel between the coordinator and one worker process it
 * launched on this host, in place of a ZeroMQ socket. Two rings of
 * messages in one memfd, one each way, and two eventfds, one per side,
 * written only when that side sleeps: a frame costs a copy into the ring
 * and at most one wake-up, with no I/O thread in between.
 *
 * Threading: each side's calls come from one thread (the dispatcher, the
 *   worker's thread); the two sides run concurrently.
 * Processes: the coordinator opens the link and hands its three fds to
 *   the worker at spawn (mpb__link_fds); the worker attaches to them.
 * Ownership: a link owns its mapping and fds; a message from recv is
 *   borrowed until the next recv, arm or close on that side.
 */
#ifndef MPB_CORE_LINK_H
#define MPB_CORE_LINK_H

#include <stddef.h>
#include <stdint.h>

typedef struct mpb__link mpb__link;

/* Bytes of each ring when the caller does not say. */
#define MPB_LINK_DEFAULT_BYTES ((size_t)1 << 20)
/* The longest message: a longer one breaks the link (as a peer writing
 * outside the format does). */
#define MPB_LINK_MAX_MESSAGE ((size_t)1 << 31)

/* Coordinator: a new link with rings of ring_bytes each way (a power of
 * two, at least 4 KiB). 0, or a status with err. */
int mpb__link_open(mpb__link **out, size_t ring_bytes, char *err, size_t err_len);

/* Worker: the link whose fds (memfd, coordinator's eventfd, worker's
 * eventfd) the coordinator passed; takes them over (closes them when it
 * fails). */
int mpb__link_attach(mpb__link **out, const int fds[3], char *err, size_t err_len);

/* The three fds a worker is given, in mpb__link_attach's order. */
void mpb__link_fds(const mpb__link *link, int fds[3]);

/* Coordinator, while no worker is attached (before a replacement starts):
 * empties both rings, drops messages still queued, and leaves this side
 * armed, so the new worker's first message writes the wake fd. */
void mpb__link_reset(mpb__link *link);

/* Sends one message. Never blocks: what does not fit in the ring now is
 * queued here and goes as space frees up (mpb__link_flush), in order.
 * Messages of any size are cut into records the peer joins again. */
void mpb__link_send(mpb__link *link, const void *data, size_t len);

/* Sends what is queued, as far as space allows; returns bytes still queued. */
size_t mpb__link_flush(mpb__link *link);

/* The next message: 1 with *data and *len (borrowed, see above; the
 * bytes may be in shared memory the peer can still write: copy what must
 * not change under you), 0 when none is there now (or a long message is
 * still arriving), MPB_EPROTO when the peer broke the ring's format or
 * sent a message over MPB_LINK_MAX_MESSAGE (the link is then dead: every
 * later call returns it too). */
int mpb__link_recv(mpb__link *link, const void **data, size_t *len);

/* The fd that becomes readable when the peer sent a message or freed room
 * for queued ones, once this side armed it. */
int mpb__link_wake_fd(const mpb__link *link);

/* Before sleeping on the wake fd: releases the last message, asks the
 * peer to write the fd, and returns 1 when a message is already there
 * (do not sleep then). After a wake-up, call mpb__link_clear. */
int mpb__link_arm(mpb__link *link);

/* Consumes the wake fd's count after a wake-up. */
void mpb__link_clear(mpb__link *link);

/* Makes this side's own wake fd readable: a reader that stopped before
 * the end of what was there comes back to it. */
void mpb__link_nudge(mpb__link *link);

/* Worker, before it exits: waits up to timeout_ms for queued messages to
 * go out. Returns bytes still queued. */
size_t mpb__link_drain(mpb__link *link, int timeout_ms);

void mpb__link_close(mpb__link **link_p);

#endif
