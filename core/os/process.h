/*
 * Child processes: spawn with posix_spawn (no code runs between fork and
 * exec), watch with a pidfd, reap, kill.
 * Threading: thread-safe. Processes: this is where children come from.
 * Ownership: the caller owns the pid and the pidfd (close it after reaping).
 */
#ifndef MPB_CORE_OS_PROCESS_H
#define MPB_CORE_OS_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Starts exe with argv (NULL-terminated) and stdin from /dev/null. *pidfd
 * is a close-on-exec fd readable once the child exits, or -1 where the
 * kernel has no pidfd_open. */
int mpb__spawn(const char *exe, char *const argv[], pid_t *pid, int *pidfd, char *err,
               size_t err_len);

/* The same, giving the child fds[i] as its descriptor 3 + i (at most 8;
 * they stay close-on-exec here). The child gets no other descriptor of
 * this process but 0 (/dev/null), 1 and 2. */
int mpb__spawn_with_fds(const char *exe, char *const argv[], const int *fds, size_t n_fds,
                        pid_t *pid, int *pidfd, char *err, size_t err_len);

/* Sends sig to the child through its pidfd (which cannot name a process
 * that reused the pid), or by pid where pidfd is -1. Returns 0 or a
 * negative status. */
int mpb__signal_child(pid_t pid, int pidfd, int sig);

/* Reaps the child if it has exited: returns 1 and its wait status, 0 while
 * it runs, or a negative status (MPB_ECHILD when already reaped elsewhere). */
int mpb__reap(pid_t pid, int *wait_status);

/* Describes a wait status: "exited with status 1", "killed by signal 9". */
void mpb__describe_exit(int wait_status, char *out, size_t out_len);

/* CPU seconds (user + system) and resident bytes of process pid (0: this
 * one), from /proc. Returns 0, or MPB_ENOENT once it is gone. */
int mpb__process_usage(pid_t pid, double *cpu_s, uint64_t *rss_bytes);

/* Directory of the running executable (caller frees), or NULL. */
char *mpb__executable_dir(void);

/* Directory of the file (executable or shared library) that holds mpbatch's
 * code in this process (caller frees), or NULL. */
char *mpb__library_dir(void);

#endif
