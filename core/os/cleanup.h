/*
 * Files this process made that must not outlive it (ipc socket files): the
 * code that makes one registers it and removes it in the normal course;
 * a program leaving at once (a second Ctrl-C) calls mpb__cleanup_files()
 * first, so none is left behind.
 * Threading: thread-safe (a mutex). Processes: the registry is this
 * process's; a child starts with a copy it must not act on.
 * Ownership: paths are copied.
 */
#ifndef MPB_CORE_OS_CLEANUP_H
#define MPB_CORE_OS_CLEANUP_H

void mpb__cleanup_register(const char *path);
/* Forgets path (after its owner removed it). */
void mpb__cleanup_forget(const char *path);
/* Removes every registered file; the registry is empty afterwards. */
void mpb__cleanup_files(void);

#endif
