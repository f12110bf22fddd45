#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "tracking/test_child.h"

extern char **environ;

static int
overridden(const char *entry, const char *const *extra)
{
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        size_t name_len = strcspn(extra[i], "=") + 1;
        if (strncmp(entry, extra[i], name_len) == 0) {
            return 1;
        }
    }
    return 0;
}

static char **
environment_with(const char *const *extra)
{
    size_t n = 0;
    size_t n_extra = 0;
    while (environ[n] != NULL) {
        n++;
    }
    while (extra != NULL && extra[n_extra] != NULL) {
        n_extra++;
    }
    char **env = mpb_calloc(n + n_extra + 1, sizeof *env);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (!overridden(environ[i], extra)) {
            env[out++] = environ[i];
        }
    }
    for (size_t i = 0; i < n_extra; i++) {
        env[out++] = (char *)extra[i];
    }
    env[out] = NULL;
    return env;
}

int
test_child_run(const char *const *args, const char *const *extra_env, const char *stderr_path,
               int timeout_ms)
{
    size_t n_args = 0;
    while (args[n_args] != NULL) {
        n_args++;
    }
    char **argv = mpb_calloc(n_args + 2, sizeof *argv);
    argv[0] = "/proc/self/exe";
    for (size_t i = 0; i < n_args; i++) {
        argv[i + 1] = (char *)args[i];
    }
    char **env = environment_with(extra_env);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (stderr_path != NULL) {
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path,
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &actions, NULL, argv, env);
    posix_spawn_file_actions_destroy(&actions);
    free(argv);
    free(env);
    if (rc != 0) {
        return -1;
    }
    int64_t deadline = mpb_now_ns() + (int64_t)timeout_ms * 1000000;
    int status = 0;
    for (;;) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            break;
        }
        if (mpb_now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec pause = {.tv_nsec = 5000000};
        nanosleep(&pause, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
