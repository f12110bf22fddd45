/*
 * Re-executing the test binary as a helper process, with deadlines.
 * Threading: call from the test thread. Processes: posix_spawn of
 * /proc/self/exe; the child is reaped (and killed past its deadline).
 * Ownership: the caller's buffers.
 */
#ifndef MPB_TESTS_TRACKING_TEST_CHILD_H
#define MPB_TESTS_TRACKING_TEST_CHILD_H

#include <stddef.h>

/* Runs this binary with argv[1..] = args (NULL-terminated) and extra
 * environment entries ("NAME=value", NULL-terminated; the list may be NULL),
 * its stderr going to stderr_path (may be NULL). Waits up to timeout_ms;
 * returns the exit status (0..255), or -1 when it did not exit normally or in
 * time (then it is killed). */
int test_child_run(const char *const *args, const char *const *extra_env, const char *stderr_path,
                   int timeout_ms);

#endif
