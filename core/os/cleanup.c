#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/os/cleanup.h"
#include "core/util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char **paths;
static size_t n_paths;
static pid_t owner; /* the process that registered them (not a forked child) */

void
mpb__cleanup_register(const char *path)
{
    pthread_mutex_lock(&lock);
    if (owner != getpid()) {
        for (size_t i = 0; i < n_paths; i++) {
            free(paths[i]); /* a parent's, copied by fork: not ours to remove */
        }
        n_paths = 0;
        owner = getpid();
    }
    paths = mpb_realloc(paths, (n_paths + 1) * sizeof *paths);
    paths[n_paths++] = mpb_strdup(path);
    pthread_mutex_unlock(&lock);
}

void
mpb__cleanup_forget(const char *path)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_paths; i++) {
        if (strcmp(paths[i], path) == 0) {
            free(paths[i]);
            paths[i] = paths[--n_paths];
            break;
        }
    }
    if (n_paths == 0) {
        free(paths);
        paths = NULL;
    }
    pthread_mutex_unlock(&lock);
}

void
mpb__cleanup_files(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_paths && owner == getpid(); i++) {
        unlink(paths[i]);
    }
    for (size_t i = 0; i < n_paths; i++) {
        free(paths[i]);
    }
    free(paths);
    paths = NULL;
    n_paths = 0;
    pthread_mutex_unlock(&lock);
}
