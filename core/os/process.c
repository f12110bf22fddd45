#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/os/process.h"
#include "core/util.h"
#include "mpbatch/error.h"

extern char **environ;

static int
open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        return fd;
    }
#endif
    (void)pid;
    return -1;
}

int
mpb__spawn(const char *exe, char *const argv[], pid_t *pid, int *pidfd, char *err, size_t err_len)
{
    return mpb__spawn_with_fds(exe, argv, NULL, 0, pid, pidfd, err, err_len);
}

static void
close_all(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        close(fds[i]);
    }
}

int
mpb__spawn_with_fds(const char *exe, char *const argv[], const int *fds, size_t n_fds, pid_t *pid,
                    int *pidfd, char *err, size_t err_len)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    /* Copies above every target first, so no dup2 overwrites a source not
     * yet copied (and none is a no-op that would keep close-on-exec). */
    int high[8];
    if (n_fds > MPB_ARRAY_LEN(high)) {
        posix_spawn_file_actions_destroy(&actions);
        return mpb__set_error(err, err_len, MPB_EINVAL, "at most %zu fds to a child",
                              MPB_ARRAY_LEN(high));
    }
    for (size_t i = 0; i < n_fds; i++) {
        high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + (int)n_fds);
        if (high[i] < 0) {
            int e = errno;
            close_all(high, i);
            posix_spawn_file_actions_destroy(&actions);
            return mpb__set_error(err, err_len, mpb_status_from_errno(e), "dup: %s", strerror(e));
        }
        /* dup2 clears close-on-exec on the copy */
        posix_spawn_file_actions_adddup2(&actions, high[i], 3 + (int)i);
    }
    /* nothing else of this process: an application's sockets, files and
     * pipes stay out of its workers, close-on-exec or not */
    posix_spawn_file_actions_addclosefrom_np(&actions, 3 + (int)n_fds);
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigset_t defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGCHLD);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    /* A group of its own: a terminal's Ctrl-C (SIGINT to the foreground
     * group) reaches the coordinator, which drains and then stops its
     * workers, instead of killing the workers under their items. */
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    int rc = posix_spawn(pid, exe, &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close_all(high, n_fds);
    if (rc != 0) {
        return mpb__set_error(err, err_len, -rc, "cannot start %s: %s", exe, strerror(rc));
    }
    *pidfd = open_pidfd(*pid);
    return 0;
}

int
mpb__signal_child(pid_t pid, int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0) {
        return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0
                   ? 0
                   : mpb_status_from_errno(errno);
    }
#endif
    (void)pidfd;
    return kill(pid, sig) == 0 ? 0 : mpb_status_from_errno(errno);
}

int
mpb__reap(pid_t pid, int *wait_status)
{
    for (;;) {
        pid_t got = waitpid(pid, wait_status, WNOHANG);
        if (got == pid) {
            return 1;
        }
        if (got == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return mpb_status_from_errno(errno);
        }
    }
}

void
mpb__describe_exit(int wait_status, char *out, size_t out_len)
{
    if (WIFEXITED(wait_status)) {
        snprintf(out, out_len, "exited with status %d", WEXITSTATUS(wait_status));
    } else if (WIFSIGNALED(wait_status)) {
        snprintf(out, out_len, "killed by signal %d (%s)", WTERMSIG(wait_status),
                 strsignal(WTERMSIG(wait_status)));
    } else {
        snprintf(out, out_len, "ended with wait status %d", wait_status);
    }
}

char *
mpb__executable_dir(void)
{
    char path[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len <= 0) {
        return NULL;
    }
    path[len] = '\0';
    char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return NULL;
    }
    *slash = '\0';
    return mpb_strdup(path);
}

char *
mpb__library_dir(void)
{
    Dl_info info;
    if (dladdr((void *)mpb__library_dir, &info) == 0 || info.dli_fname == NULL) {
        return NULL;
    }
    char path[PATH_MAX];
    if (realpath(info.dli_fname, path) == NULL) {
        return NULL;
    }
    char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return NULL;
    }
    *slash = '\0';
    return mpb_strdup(path);
}

int
mpb__process_usage(pid_t pid, double *cpu_s, uint64_t *rss_bytes)
{
    char path[64];
    if (pid == 0) {
        snprintf(path, sizeof path, "/proc/self/stat");
    } else {
        snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return MPB_ENOENT;
    }
    char line[1024];
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    /* the command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')' */
    char *p = got ? strrchr(line, ')') : NULL;
    if (p == NULL) {
        return MPB_ENOENT;
    }
    unsigned long long utime = 0, stime = 0;
    long long rss_pages = 0;
    /* after ')': state(3) ... utime(14) stime(15) ... rss(24) */
    int n = sscanf(p + 1,
                   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
                   "%*u %*u %lld",
                   &utime, &stime, &rss_pages);
    if (n != 3) {
        return MPB_ENOENT;
    }
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    *cpu_s = (double)(utime + stime) / (double)(ticks > 0 ? ticks : 100);
    *rss_bytes = rss_pages > 0 ? (uint64_t)rss_pages * (uint64_t)(page > 0 ? page : 4096) : 0;
    return 0;
}
