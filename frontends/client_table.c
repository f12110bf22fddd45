/* Open addressing, linear probing, FNV-1a over the routing id. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "frontends/client_table.h"

static mpb__client tombstone_record;
#define TOMBSTONE (&tombstone_record)

static uint64_t
hash_rid(const unsigned char *rid, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ rid[i]) * 1099511628211ULL;
    }
    return h;
}

void
mpb__client_table_init(mpb__client_table *table)
{
    memset(table, 0, sizeof *table);
}

static void
insert(mpb__client_table *table, mpb__client *client)
{
    size_t mask = table->cap - 1;
    size_t i = hash_rid(client->rid, client->rid_len) & mask;
    while (table->slots[i] != NULL && table->slots[i] != TOMBSTONE) {
        i = (i + 1) & mask;
    }
    if (table->slots[i] == NULL) {
        table->used++;
    }
    table->slots[i] = client;
    table->live++;
}

static void
grow(mpb__client_table *table)
{
    mpb__client **old = table->slots;
    size_t old_cap = table->cap;
    table->cap = table->live * 4 > 16 ? table->live * 4 : 16;
    size_t cap = 16;
    while (cap < table->cap) {
        cap *= 2;
    }
    table->cap = cap;
    table->slots = mpb_calloc(cap, sizeof *table->slots);
    table->used = 0;
    table->live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] != NULL && old[i] != TOMBSTONE) {
            insert(table, old[i]);
        }
    }
    free(old);
}

static size_t
find(const mpb__client_table *table, const void *rid, size_t rid_len)
{
    size_t mask = table->cap - 1;
    for (size_t i = hash_rid(rid, rid_len) & mask;; i = (i + 1) & mask) {
        mpb__client *c = table->slots[i];
        if (c == NULL) {
            return SIZE_MAX;
        }
        if (c != TOMBSTONE && c->rid_len == rid_len && memcmp(c->rid, rid, rid_len) == 0) {
            return i;
        }
    }
}

mpb__client *
mpb__client_table_get(mpb__client_table *table, const void *rid, size_t rid_len, void *owner)
{
    MPB_ASSERT(rid_len <= MPB_CLIENT_RID_MAX);
    if (table->cap > 0) {
        size_t i = find(table, rid, rid_len);
        if (i != SIZE_MAX) {
            return table->slots[i];
        }
    }
    if ((table->used + 1) * 2 > table->cap) {
        grow(table);
    }
    mpb__client *client = mpb_calloc(1, sizeof *client);
    memcpy(client->rid, rid, rid_len);
    client->rid_len = rid_len;
    client->owner = owner;
    mpb__wire_buf_init(&client->replies);
    insert(table, client);
    return client;
}

void
mpb__client_table_remove(mpb__client_table *table, mpb__client *client)
{
    size_t i = find(table, client->rid, client->rid_len);
    MPB_ASSERT(i != SIZE_MAX && table->slots[i] == client);
    table->slots[i] = TOMBSTONE;
    table->live--;
    mpb__wire_buf_free(&client->replies);
    free(client);
}

void
mpb__client_table_free(mpb__client_table *table)
{
    for (size_t i = 0; i < table->cap; i++) {
        mpb__client *c = table->slots[i];
        if (c != NULL && c != TOMBSTONE) {
            mpb__wire_buf_free(&c->replies);
            free(c);
        }
    }
    free(table->slots);
    memset(table, 0, sizeof *table);
}
