/*
 * Ending a tool early (mpb run, mpb bench): SIGINT and SIGTERM are blocked
 * in every thread and taken by a watcher thread. The first is noted (the
 * tool polls mpb__interrupt_signal, or waits on wake_fd) so the tool can
 * finish what it has and exit 128 + the signal; a second exits at once,
 * after mpb_emergency_cleanup() removes the ipc files.
 * Threading: start and stop on the main thread, start before any other
 *   thread is made (threads inherit its signal mask); the rest anywhere.
 * Processes: the mask is inherited over fork; exec'd workers reset it.
 * Ownership: the caller owns the struct; stop releases what start made.
 */
#ifndef MPB_TOOLS_INTERRUPT_H
#define MPB_TOOLS_INTERRUPT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

typedef struct mpb__interrupt {
    sigset_t signals;
    atomic_int signal; /* the first SIGINT or SIGTERM taken, 0 before */
    atomic_int done;   /* stop was called: the watcher leaves */
    int wake_fd;       /* an eventfd written at the first signal */
    pthread_t watcher;
    const char *tool; /* "mpb run": prefixes what the watcher says */
    const char *note; /* what the tool does at the first signal */
} mpb__interrupt;

/* Blocks the signals and starts the watcher; tool and note are borrowed
 * until stop. The first signal prints "TOOL: SIGNAL: NOTE". */
void mpb__interrupt_start(mpb__interrupt *in, const char *tool, const char *note);

/* The first signal taken, 0 before any. */
int mpb__interrupt_signal(mpb__interrupt *in);

/* Ends the watcher and closes wake_fd (the signals stay blocked). */
void mpb__interrupt_stop(mpb__interrupt *in);

#endif
