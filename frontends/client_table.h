/*
 * Clients of a ZeroMQ front end by routing id: an open-addressing hash
 * table of pointers, so a client record never moves while jobs point at it.
 * Threading: the front end's (dispatcher) thread only.
 * Ownership: the table owns its records; mpb__client_table_remove frees one.
 */
#ifndef MPB_FRONTENDS_CLIENT_TABLE_H
#define MPB_FRONTENDS_CLIENT_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/wire.h"

#define MPB_CLIENT_RID_MAX 255

typedef struct mpb__client mpb__client;
struct mpb__client {
    unsigned char rid[MPB_CLIENT_RID_MAX];
    size_t rid_len;
    int req_envelope;      /* the client sent an empty delimiter (REQ): echo it */
    uint32_t in_flight;    /* calls submitted, not yet answered */
    mpb__wire_buf replies; /* result entries waiting for this round's flush */
    uint32_t n_replies;
    mpb__client *next_flush; /* in the front end's flush list when flush_listed */
    int flush_listed;
    void *owner;             /* the front end the client talks to */
};

typedef struct mpb__client_table {
    mpb__client **slots; /* NULL: empty; TOMBSTONE: removed */
    size_t cap;          /* a power of two */
    size_t used;         /* live + tombstones */
    size_t live;
} mpb__client_table;

void mpb__client_table_init(mpb__client_table *table);
/* The client with this routing id, created (with owner) when absent. */
mpb__client *mpb__client_table_get(mpb__client_table *table, const void *rid, size_t rid_len,
                                   void *owner);
/* Removes and frees a client. */
void mpb__client_table_remove(mpb__client_table *table, mpb__client *client);
/* Frees every client and the table. */
void mpb__client_table_free(mpb__client_table *table);

#endif
