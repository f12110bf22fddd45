/*
 * Spawning workers: a child gets /dev/null, stdout, stderr and the
 * descriptors it is given, nothing else of its parent (not even fds left
 * without close-on-exec), and is signalled through its pidfd.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"
#include "core/os/process.h"

/* The descriptor numbers open in process pid, as a bit set of 0..63. */
static uint64_t
open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    uint64_t set = 0;
    /* the child may still be between fork and exec (it holds the parent's
     * descriptors until then): wait for sleep to run, however loaded the
     * machine, and say so if it never does */
    int running = 0;
    for (int tries = 0; tries < 3000 && !running; tries++) {
        char exe[256] = "";
        char link[64];
        snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
        ssize_t n = readlink(link, exe, sizeof exe - 1);
        running = n > 0 && strstr(exe, "sleep") != NULL;
        if (!running) {
            usleep(10000);
        }
    }
    assert_true(running);
    DIR *dir = opendir(path);
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] != '.') {
            int fd = atoi(e->d_name);
            assert_true(fd < 64);
            set |= (uint64_t)1 << fd;
        }
    }
    closedir(dir);
    return set;
}

/* the child of the running test, killed by the teardown if an assertion
 * stopped the test before it could (else ctest waits for sleep to end) */
static pid_t child = -1;

static int
kill_child(void **state)
{
    (void)state;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    return 0;
}

static void
children_get_only_what_they_are_given(void **state)
{
    (void)state;
    int leaked[2];
    assert_int_equal(pipe(leaked), 0); /* no O_CLOEXEC: exec alone would pass these on */
    int given[2];
    assert_int_equal(pipe2(given, O_CLOEXEC), 0);
    char *argv[] = {"/bin/sleep", "30", NULL};
    pid_t pid;
    int pidfd = -1;
    char err[256];
    assert_int_equal(
        mpb__spawn_with_fds("/bin/sleep", argv, &given[0], 1, &pid, &pidfd, err, sizeof err), 0);
    child = pid;
    /* 0, 1, 2 and the one given as 3. Right after exec the dynamic loader
     * briefly holds its own descriptors (ld.so.cache, libc) above those;
     * they close before main, while anything inherited stays for good, so
     * wait up to 5 s for the set to settle and then require it exact. */
    uint64_t fds = open_fds(pid);
    for (int tries = 0; tries < 500 && fds != (uint64_t)0xF; tries++) {
        usleep(10000);
        fds = open_fds(pid);
    }
    assert_int_equal(fds, (uint64_t)0xF);

    assert_true(pidfd >= 0);
    assert_int_equal(mpb__signal_child(pid, pidfd, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    child = -1;
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* reaped: the pidfd names no process now, whatever has the pid */
    assert_int_not_equal(mpb__signal_child(pid, pidfd, 0), 0);
    close(pidfd);
    close(leaked[0]);
    close(leaked[1]);
    close(given[0]);
    close(given[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(children_get_only_what_they_are_given, kill_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
