/*
 * DESIGN
 * One watcher thread takes SIGINT and SIGTERM with sigtimedwait (they are
 * blocked everywhere else), waking every 50 ms to see whether the tool is
 * done. The first signal is stored and written to an eventfd; the tool
 * decides what stopping means. A second signal exits the process at once.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "mpbatch/server.h"
#include "tools/interrupt.h"

static void *
watch_signals(void *arg)
{
    mpb__interrupt *in = arg;
    struct timespec tick = {0, 50 * 1000000};
    while (!atomic_load(&in->done)) {
        int sig = sigtimedwait(&in->signals, NULL, &tick);
        if (sig <= 0) {
            continue;
        }
        if (atomic_load(&in->signal) == 0) {
            fprintf(stderr, "\n%s: %s: %s (signal again to exit now)\n", in->tool, strsignal(sig),
                    in->note);
            atomic_store(&in->signal, sig);
            uint64_t one = 1;
            ssize_t put = write(in->wake_fd, &one, sizeof one);
            (void)put;
        } else {
            fprintf(stderr, "%s: second signal: exiting now\n", in->tool);
            mpb_emergency_cleanup();
            _exit(128 + sig);
        }
    }
    return NULL;
}

void
mpb__interrupt_start(mpb__interrupt *in, const char *tool, const char *note)
{
    atomic_store(&in->signal, 0);
    atomic_store(&in->done, 0);
    in->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    in->tool = tool;
    in->note = note;
    sigemptyset(&in->signals);
    sigaddset(&in->signals, SIGINT);
    sigaddset(&in->signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &in->signals, NULL);
    pthread_create(&in->watcher, NULL, watch_signals, in);
}

int
mpb__interrupt_signal(mpb__interrupt *in)
{
    return atomic_load(&in->signal);
}

void
mpb__interrupt_stop(mpb__interrupt *in)
{
    atomic_store(&in->done, 1);
    pthread_join(in->watcher, NULL);
    close(in->wake_fd);
    in->wake_fd = -1;
}
