/*
 * Internals of `mpb runs migrate`: tools/cmd_runs_migrate.c copies,
 * tools/runs_migrate_verify.c lists and counts both sides.
 * Threading: single-threaded tool. Ownership: a migration owns its stores,
 * source entities and id map (cmd_runs_migrate.c frees them).
 */
#ifndef MPB_TOOLS_RUNS_MIGRATE_INT_H
#define MPB_TOOLS_RUNS_MIGRATE_INT_H

#include <stddef.h>

#include "mpbatch/store.h"

typedef struct run_map {
    char *src;
    char *dst; /* NULL: skipped (already in the target) */
} run_map;

typedef struct experiment_copy {
    mpb_experiment *src;
    char *dst_id;
    mpb_run *runs; /* the source runs, all lifecycles */
    size_t n_runs;
    run_map *map; /* one per run */
} experiment_copy;

typedef struct migration {
    mpb_store *from;
    mpb_store *to;
    int into_existing;
    const char *artifact_root;
    experiment_copy *experiments;
    size_t n_experiments;
    size_t n_runs_total;
    char err[1024];
} migration;

/* Every experiment of store, all lifecycles, in one page (*out the caller's). */
int mpb__migrate_all_experiments(mpb_store *store, mpb_experiment_page **out, char *err,
                                 size_t err_len);

/* Adds the number of artifact files under path (recursively) to *count. */
int mpb__migrate_count_artifacts(mpb_store *store, const char *run_id, const char *path,
                                 size_t *count, char *err, size_t err_len);

/* Prints both sides' counts; *out_bad gets the number of mismatches.
 * 0, or a negative status (reason in m->err). */
int mpb__migrate_verify(migration *m, int *out_bad);

#endif
