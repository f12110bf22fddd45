/*
 * Bump allocator over a list of blocks: allocations never move, and reset
 * frees everything at once while keeping the first block for reuse.
 * Threading: one thread. Processes: n/a. Ownership: the arena owns every
 * allocation; pointers die at reset or free.
 */
#ifndef MPB_CORE_ARENA_H
#define MPB_CORE_ARENA_H

#include <stddef.h>

typedef struct mpb__arena_block mpb__arena_block;

typedef struct mpb__arena {
    mpb__arena_block *head;
    size_t block_size;
} mpb__arena;

void mpb__arena_init(mpb__arena *arena, size_t block_size);
/* Returns len bytes aligned to 16; aborts on out-of-memory (callers bound len). */
void *mpb__arena_alloc(mpb__arena *arena, size_t len);
char *mpb__arena_strdup(mpb__arena *arena, const char *text);
void mpb__arena_reset(mpb__arena *arena);
void mpb__arena_free(mpb__arena *arena);

#endif
