#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/util.h"

struct mpb__arena_block {
    mpb__arena_block *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char bytes[];
};

void
mpb__arena_init(mpb__arena *arena, size_t block_size)
{
    arena->head = NULL;
    arena->block_size = block_size ? block_size : 65536;
}

void *
mpb__arena_alloc(mpb__arena *arena, size_t len)
{
    size_t need = (len + 15) & ~(size_t)15;
    mpb__arena_block *block = arena->head;
    if (block == NULL || block->size - block->used < need) {
        size_t size = need > arena->block_size ? need : arena->block_size;
        block = mpb_malloc(sizeof *block + size);
        block->size = size;
        block->used = 0;
        block->next = arena->head;
        arena->head = block;
    }
    void *ptr = block->bytes + block->used;
    block->used += need;
    return ptr;
}

char *
mpb__arena_strdup(mpb__arena *arena, const char *text)
{
    size_t len = strlen(text);
    char *copy = mpb__arena_alloc(arena, len + 1);
    memcpy(copy, text, len + 1);
    return copy;
}

void
mpb__arena_reset(mpb__arena *arena)
{
    mpb__arena_block *block = arena->head;
    if (block == NULL) {
        return;
    }
    /* Keep the oldest block (the one of the standard size) for reuse. */
    while (block->next != NULL) {
        mpb__arena_block *next = block->next;
        free(block);
        block = next;
    }
    block->used = 0;
    arena->head = block;
}

void
mpb__arena_free(mpb__arena *arena)
{
    mpb__arena_block *block = arena->head;
    while (block != NULL) {
        mpb__arena_block *next = block->next;
        free(block);
        block = next;
    }
    arena->head = NULL;
}
